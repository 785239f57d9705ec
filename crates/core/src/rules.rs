//! Amazon Personalize's rules for dataset files, written once: what a bulk import job accepts,
//! checked before one is started. Local mode, `load-items`, `evaluate` and `check-datasets` read
//! files through them, so a file local mode takes is one Personalize takes.
//!
//! A schema is the Avro record `CreateSchema` takes: its fields are the CSV's columns, each a
//! type, perhaps nullable, and for strings perhaps `categorical` (values split on `|`, each at
//! most 1,000 characters) or `textual` (free text, of which Personalize reads 20,000
//! characters). [`Schema::infer`] writes one from a file's header and values.

use serde_json::{Value, json};

use crate::limits::MAX_ID_CHARS;

/// A categorical value (one of those between `|`) at most.
pub const MAX_CATEGORICAL_CHARS: usize = 1000;
/// A textual value: Personalize reads this many characters and ignores the rest.
pub const MAX_TEXTUAL_CHARS: usize = 20_000;
/// What user-personalization needs to train: interactions, users, and interactions per user.
pub const MIN_INTERACTIONS: u64 = 1000;
pub const MIN_USERS: u64 = 25;
pub const MIN_INTERACTIONS_PER_USER: u64 = 2;
/// Later than this (the year 2286) is milliseconds or microseconds, not seconds.
pub const MAX_TIMESTAMP_SECONDS: i64 = 9_999_999_999;
/// Metadata fields a dataset may have (reserved fields and the id excluded for interactions).
pub const MAX_ITEM_FIELDS: usize = 50;
pub const MAX_USER_FIELDS: usize = 25;
pub const MAX_INTERACTION_METADATA_FIELDS: usize = 5;
/// Interactions' optional fields (EVENT_TYPE, EVENT_VALUE and metadata) plus distinct event
/// types, at most.
pub const MAX_INTERACTION_FIELDS_AND_TYPES: usize = 10;

/// The three datasets of a Custom dataset group this project uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dataset {
    Interactions,
    Items,
    Users,
}

impl Dataset {
    pub fn name(self) -> &'static str {
        match self {
            Dataset::Interactions => "Interactions",
            Dataset::Items => "Items",
            Dataset::Users => "Users",
        }
    }

    /// The columns every file of this dataset has, with their types.
    pub fn required(self) -> &'static [(&'static str, Kind)] {
        match self {
            Dataset::Interactions => &[
                ("USER_ID", Kind::String),
                ("ITEM_ID", Kind::String),
                ("TIMESTAMP", Kind::Long),
            ],
            Dataset::Items => &[("ITEM_ID", Kind::String)],
            Dataset::Users => &[("USER_ID", Kind::String)],
        }
    }

    /// Names Personalize reserves in this dataset, with the type they must have.
    pub fn reserved(self) -> &'static [(&'static str, Kind)] {
        match self {
            Dataset::Interactions => &[
                ("EVENT_TYPE", Kind::String),
                ("EVENT_VALUE", Kind::Float),
                ("IMPRESSION", Kind::String),
                ("RECOMMENDATION_ID", Kind::String),
                ("EVENT_ATTRIBUTION_SOURCE", Kind::String),
            ],
            Dataset::Items => &[("CREATION_TIMESTAMP", Kind::Long)],
            Dataset::Users => &[],
        }
    }

    /// The id column rows are keyed by (duplicates are findings), if any.
    pub fn key(self) -> Option<&'static str> {
        match self {
            Dataset::Interactions => None,
            Dataset::Items => Some("ITEM_ID"),
            Dataset::Users => Some("USER_ID"),
        }
    }
}

/// A field's Avro type, as Personalize takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Int,
    Long,
    Float,
    Double,
    Boolean,
}

impl Kind {
    pub fn avro(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Int => "int",
            Kind::Long => "long",
            Kind::Float => "float",
            Kind::Double => "double",
            Kind::Boolean => "boolean",
        }
    }

    fn from_avro(name: &str) -> Option<Kind> {
        Some(match name {
            "string" => Kind::String,
            "int" => Kind::Int,
            "long" => Kind::Long,
            "float" => Kind::Float,
            "double" => Kind::Double,
            "boolean" => Kind::Boolean,
            _ => return None,
        })
    }

    /// Whether a value of `self` also fits where `wanted` is asked (an int is a long).
    fn fits(self, wanted: Kind) -> bool {
        self == wanted
            || matches!(
                (self, wanted),
                (Kind::Int, Kind::Long) | (Kind::Float, Kind::Double) | (Kind::Double, Kind::Float)
            )
    }
}

/// One field of a schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub kind: Kind,
    pub nullable: bool,
    pub categorical: bool,
    pub textual: bool,
}

/// A dataset's schema: its fields in the file's column order.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub dataset: Dataset,
    pub fields: Vec<Field>,
}

/// A rule a file breaks, in words.
pub type Problem = String;

/// A user or item id: given, and at most 256 characters.
pub fn id(column: &str, value: &str) -> Result<(), Problem> {
    if value.trim().is_empty() {
        return Err(format!("{column} is empty"));
    }
    let chars = value.chars().count();
    if chars > MAX_ID_CHARS {
        return Err(format!(
            "{column} is {chars} characters; Personalize takes at most {MAX_ID_CHARS}"
        ));
    }
    Ok(())
}

/// A `TIMESTAMP`: whole Unix epoch seconds, not milliseconds.
pub fn timestamp(value: &str) -> Result<i64, Problem> {
    let seconds: i64 = value
        .trim()
        .parse()
        .map_err(|_| format!("TIMESTAMP {value:?} is not Unix epoch seconds"))?;
    if seconds > MAX_TIMESTAMP_SECONDS {
        return Err(format!(
            "TIMESTAMP {seconds} is in milliseconds (or finer); Personalize takes seconds"
        ));
    }
    if seconds < 0 {
        return Err(format!("TIMESTAMP {seconds} is before 1970"));
    }
    Ok(seconds)
}

/// An `EVENT_VALUE`: a number, or nothing.
pub fn event_value(value: &str) -> Result<Option<f64>, Problem> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    match value.trim().parse::<f64>() {
        Ok(n) if n.is_finite() => Ok(Some(n)),
        _ => Err(format!("EVENT_VALUE {value:?} is not a number")),
    }
}

/// A field name Avro (and so Personalize) takes: a letter or `_`, then letters, digits, `_`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The kind a CSV value could be read as, narrowest first.
fn kind_of(value: &str) -> Kind {
    let v = value.trim();
    if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false") {
        Kind::Boolean
    } else if let Ok(n) = v.parse::<i64>() {
        if i32::try_from(n).is_ok() {
            Kind::Int
        } else {
            Kind::Long
        }
    } else if v.parse::<f64>().is_ok_and(f64::is_finite) {
        Kind::Double
    } else {
        Kind::String
    }
}

fn widen(a: Kind, b: Kind) -> Kind {
    use Kind::*;
    match (a, b) {
        (a, b) if a == b => a,
        (Int, Long) | (Long, Int) => Long,
        (Int | Long | Double | Float, Int | Long | Double | Float) => Double,
        _ => String,
    }
}

/// What [`Schema::infer`] learns from the values of one column.
#[derive(Debug, Clone, Default)]
pub struct ColumnStats {
    kind: Option<Kind>,
    empty: bool,
    longest: usize,
    has_separator: bool,
}

impl ColumnStats {
    pub fn add(&mut self, value: &str) {
        if value.trim().is_empty() {
            self.empty = true;
            return;
        }
        let kind = kind_of(value);
        self.kind = Some(self.kind.map_or(kind, |k| widen(k, kind)));
        self.longest = self.longest.max(value.chars().count());
        self.has_separator |= value.contains('|');
    }
}

impl Schema {
    /// A schema for a file, from its header and what each column's values were: ids and
    /// reserved fields as Personalize requires them, numbers as numbers, long free text as
    /// `textual`, other strings as `categorical`.
    pub fn infer(dataset: Dataset, header: &[String], stats: &[ColumnStats]) -> Schema {
        let fields = header
            .iter()
            .zip(stats)
            .map(|(name, stats)| {
                let upper = name.to_ascii_uppercase();
                let fixed = dataset
                    .required()
                    .iter()
                    .chain(dataset.reserved())
                    .find(|(n, _)| *n == upper);
                if let Some((name, kind)) = fixed {
                    let required = dataset.required().iter().any(|(n, _)| n == name);
                    return Field {
                        name: (*name).to_owned(),
                        kind: *kind,
                        nullable: !required && stats.empty,
                        categorical: false,
                        textual: false,
                    };
                }
                let kind = stats.kind.unwrap_or(Kind::String);
                let kind = match kind {
                    Kind::Double => Kind::Float,
                    other => other,
                };
                let text = kind == Kind::String;
                let textual = text && !stats.has_separator && stats.longest > 100;
                Field {
                    name: name.clone(),
                    kind,
                    nullable: stats.empty,
                    categorical: text && !textual,
                    textual,
                }
            })
            .collect();
        Schema { dataset, fields }
    }

    /// The schema as `CreateSchema` takes it (pretty-printed JSON, keys in Avro's usual order).
    pub fn to_avro_json(&self) -> String {
        #[derive(serde::Serialize)]
        struct Record<'a> {
            r#type: &'static str,
            name: &'static str,
            namespace: &'static str,
            fields: Vec<AvroField<'a>>,
            version: &'static str,
        }
        #[derive(serde::Serialize)]
        struct AvroField<'a> {
            name: &'a str,
            r#type: Value,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            categorical: bool,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            textual: bool,
        }
        let record = Record {
            r#type: "record",
            name: self.dataset.name(),
            namespace: "com.amazonaws.personalize.schema",
            fields: self
                .fields
                .iter()
                .map(|f| AvroField {
                    name: &f.name,
                    r#type: if f.nullable {
                        json!(["null", f.kind.avro()])
                    } else {
                        json!(f.kind.avro())
                    },
                    categorical: f.categorical,
                    textual: f.textual,
                })
                .collect(),
            version: "1.0",
        };
        serde_json::to_string_pretty(&record).expect("a schema serializes")
    }

    /// Reads a schema as `CreateSchema` takes it.
    pub fn from_avro_json(dataset: Dataset, text: &str) -> Result<Schema, Problem> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("the schema is not JSON: {e}"))?;
        if value["type"] != "record" {
            return Err("the schema is not an Avro record (\"type\": \"record\")".to_owned());
        }
        let fields = value["fields"]
            .as_array()
            .ok_or("the schema has no \"fields\" list")?;
        let fields = fields
            .iter()
            .map(|f| {
                let name = f["name"].as_str().ok_or("a field has no \"name\"")?;
                let (kind, nullable) = match &f["type"] {
                    Value::String(kind) => (kind.as_str(), false),
                    Value::Array(kinds) => {
                        let kinds: Vec<&str> = kinds.iter().filter_map(Value::as_str).collect();
                        match kinds.as_slice() {
                            ["null", kind] | [kind, "null"] => (*kind, true),
                            _ => {
                                return Err(format!(
                                    "{name}: a union type must be null and one type"
                                ));
                            }
                        }
                    }
                    _ => return Err(format!("{name}: its type is not an Avro type name")),
                };
                let kind = Kind::from_avro(kind)
                    .ok_or_else(|| format!("{name}: type {kind:?} is not one Personalize takes"))?;
                Ok(Field {
                    name: name.to_owned(),
                    kind,
                    nullable,
                    categorical: f["categorical"] == true,
                    textual: f["textual"] == true,
                })
            })
            .collect::<Result<Vec<_>, Problem>>()?;
        Ok(Schema { dataset, fields })
    }

    /// What is wrong with the schema itself: required fields, reserved names, types, names and
    /// field counts.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let dataset = self.dataset;
        let find = |name: &str| self.fields.iter().find(|f| f.name == name);
        for (name, kind) in dataset.required() {
            match find(name) {
                None => problems.push(format!("{} needs a {name} field", dataset.name())),
                Some(f) if !f.kind.fits(*kind) || f.nullable => {
                    problems.push(format!("{name} must be {}, not null", kind.avro()))
                }
                Some(_) => {}
            }
        }
        for (name, kind) in dataset.reserved() {
            if let Some(f) = find(name)
                && !f.kind.fits(*kind)
            {
                problems.push(format!(
                    "{name} is a reserved name in {}: it must be {}",
                    dataset.name(),
                    kind.avro()
                ));
            }
        }
        for f in &self.fields {
            if !valid_name(&f.name) {
                problems.push(format!(
                    "{:?} is not a field name Personalize takes (letters, digits and _, not first a digit)",
                    f.name
                ));
            }
            if (f.categorical || f.textual) && f.kind != Kind::String {
                problems.push(format!(
                    "{}: only a string can be categorical or textual",
                    f.name
                ));
            }
            if f.categorical && f.textual {
                problems.push(format!("{}: categorical or textual, not both", f.name));
            }
            if f.textual && dataset != Dataset::Items {
                problems.push(format!("{}: only Items fields can be textual", f.name));
            }
            let elsewhere = [Dataset::Interactions, Dataset::Items, Dataset::Users]
                .into_iter()
                .filter(|d| *d != dataset)
                .find(|d| d.reserved().iter().any(|(n, _)| *n == f.name));
            if let Some(other) = elsewhere {
                problems.push(format!(
                    "{} is reserved in {}; {} cannot use it",
                    f.name,
                    other.name(),
                    dataset.name()
                ));
            }
        }
        let metadata = self.metadata_fields();
        let (count, limit) = match dataset {
            Dataset::Items => (metadata, MAX_ITEM_FIELDS),
            Dataset::Users => (metadata, MAX_USER_FIELDS),
            Dataset::Interactions => (metadata, MAX_INTERACTION_METADATA_FIELDS),
        };
        if count > limit {
            problems.push(format!(
                "{} has {count} metadata fields; Personalize takes at most {limit}",
                dataset.name()
            ));
        }
        if dataset != Dataset::Interactions && count == 0 {
            problems.push(format!(
                "{} needs at least one metadata field beside its id",
                dataset.name()
            ));
        }
        problems
    }

    /// Fields that are neither required nor reserved.
    pub fn metadata_fields(&self) -> usize {
        let dataset = self.dataset;
        self.fields
            .iter()
            .filter(|f| {
                !dataset
                    .required()
                    .iter()
                    .chain(dataset.reserved())
                    .any(|(n, _)| *n == f.name)
            })
            .count()
    }

    /// What is wrong with one value of `field`.
    pub fn check(&self, field: &Field, value: &str) -> Result<(), Problem> {
        let name = &field.name;
        if value.is_empty() {
            return if field.nullable {
                Ok(())
            } else {
                Err(format!("{name} is empty, and its type is not nullable"))
            };
        }
        if self.dataset.required().iter().any(|(n, _)| n == name)
            && (name == "USER_ID" || name == "ITEM_ID")
        {
            return id(name, value);
        }
        match name.as_str() {
            "TIMESTAMP" | "CREATION_TIMESTAMP" => return timestamp(value).map(drop),
            "EVENT_VALUE" => return event_value(value).map(drop),
            _ => {}
        }
        match field.kind {
            Kind::String => {}
            Kind::Boolean => {
                if !(value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false")) {
                    return Err(format!("{name} {value:?} is not true or false"));
                }
            }
            Kind::Int | Kind::Long => {
                let fits = if field.kind == Kind::Int {
                    value.trim().parse::<i32>().is_ok()
                } else {
                    value.trim().parse::<i64>().is_ok()
                };
                if !fits {
                    return Err(format!("{name} {value:?} is not an {}", field.kind.avro()));
                }
            }
            Kind::Float | Kind::Double => {
                if !value.trim().parse::<f64>().is_ok_and(f64::is_finite) {
                    return Err(format!("{name} {value:?} is not a number"));
                }
            }
        }
        if field.categorical {
            for part in value.split('|') {
                let chars = part.chars().count();
                if chars > MAX_CATEGORICAL_CHARS {
                    return Err(format!(
                        "{name} has a categorical value of {chars} characters; Personalize takes \
                         at most {MAX_CATEGORICAL_CHARS} (separate several with |)"
                    ));
                }
            }
        }
        if field.textual {
            let chars = value.chars().count();
            if chars > MAX_TEXTUAL_CHARS {
                return Err(format!(
                    "{name} is {chars} characters of text; Personalize reads the first \
                     {MAX_TEXTUAL_CHARS} and ignores the rest"
                ));
            }
        }
        Ok(())
    }
}

/// Counts interactions per user for the training minimums.
#[derive(Debug, Default)]
pub struct Minimums {
    pub interactions: u64,
    per_user: std::collections::HashMap<String, u64>,
}

impl Minimums {
    pub fn add(&mut self, user: &str) {
        self.interactions += 1;
        *self.per_user.entry(user.to_owned()).or_default() += 1;
    }

    /// What user-personalization lacks to train on these interactions, if anything.
    pub fn shortfall(&self) -> Option<Problem> {
        let users = self
            .per_user
            .values()
            .filter(|n| **n >= MIN_INTERACTIONS_PER_USER)
            .count() as u64;
        if self.interactions >= MIN_INTERACTIONS && users >= MIN_USERS {
            return None;
        }
        Some(format!(
            "{} interactions, {users} users with at least {MIN_INTERACTIONS_PER_USER}: training \
             needs at least {MIN_INTERACTIONS} interactions and {MIN_USERS} such users",
            self.interactions
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn stats(columns: &[&[&str]]) -> Vec<ColumnStats> {
        columns
            .iter()
            .map(|values| {
                let mut s = ColumnStats::default();
                values.iter().for_each(|v| s.add(v));
                s
            })
            .collect()
    }

    #[test]
    fn an_inferred_items_schema_is_what_create_schema_takes() {
        let long = "A".repeat(150);
        let schema = Schema::infer(
            Dataset::Items,
            &header(&[
                "ITEM_ID",
                "PRICE",
                "CATEGORY",
                "DESCRIPTION",
                "STOCK",
                "CREATION_TIMESTAMP",
            ]),
            &stats(&[
                &["a", "b"],
                &["1.5", "2"],
                &["shoes|boots", "bags"],
                &[&long, ""],
                &["3", "4"],
                &["1700000000", "1700000001"],
            ]),
        );
        assert!(schema.problems().is_empty(), "{:?}", schema.problems());
        let json: Value = serde_json::from_str(&schema.to_avro_json()).unwrap();
        assert_eq!(
            json["fields"],
            json!([
                {"name": "ITEM_ID", "type": "string"},
                {"name": "PRICE", "type": "float"},
                {"name": "CATEGORY", "type": "string", "categorical": true},
                {"name": "DESCRIPTION", "type": ["null", "string"], "textual": true},
                {"name": "STOCK", "type": "int"},
                {"name": "CREATION_TIMESTAMP", "type": "long"},
            ])
        );
        assert_eq!(json["name"], "Items");
        let back = Schema::from_avro_json(Dataset::Items, &schema.to_avro_json()).unwrap();
        assert_eq!(back, schema);
    }

    #[test]
    fn schemas_that_break_the_rules_say_which() {
        let bad = Schema::from_avro_json(
            Dataset::Interactions,
            r#"{"type":"record","name":"Interactions","fields":[
                {"name":"USER_ID","type":"string"},
                {"name":"TIMESTAMP","type":"string"},
                {"name":"EVENT_VALUE","type":"string"},
                {"name":"CREATION_TIMESTAMP","type":"long"},
                {"name":"2FA","type":"string"},
                {"name":"NOTE","type":"string","textual":true}]}"#,
        )
        .unwrap();
        assert_eq!(
            bad.problems(),
            [
                "Interactions needs a ITEM_ID field",
                "TIMESTAMP must be long, not null",
                "EVENT_VALUE is a reserved name in Interactions: it must be float",
                "CREATION_TIMESTAMP is reserved in Items; Interactions cannot use it",
                "\"2FA\" is not a field name Personalize takes (letters, digits and _, not first a digit)",
                "NOTE: only Items fields can be textual",
            ]
        );
        assert!(
            Schema::from_avro_json(
                Dataset::Users,
                r#"{"type":"record","fields":[{"name":"X","type":"map"}]}"#
            )
            .unwrap_err()
            .contains("not one Personalize takes")
        );
    }

    #[test]
    fn values_are_checked_against_their_field() {
        let schema = Schema::infer(
            Dataset::Items,
            &header(&["ITEM_ID", "CATEGORY", "DESCRIPTION"]),
            &stats(&[&["a"], &["x"], &[&"d".repeat(200)]]),
        );
        let [item, category, description] = [0, 1, 2].map(|i| schema.fields[i].clone());
        assert!(schema.check(&item, &"i".repeat(256)).is_ok());
        assert!(
            schema
                .check(&item, &"i".repeat(257))
                .unwrap_err()
                .contains("257 characters; Personalize takes at most 256")
        );
        assert!(
            schema
                .check(&category, &format!("a|{}", "c".repeat(1000)))
                .is_ok()
        );
        assert!(
            schema
                .check(&category, &"c".repeat(1001))
                .unwrap_err()
                .contains("categorical value of 1001 characters")
        );
        assert!(
            schema
                .check(&description, &"t".repeat(20_001))
                .unwrap_err()
                .contains("reads the first 20000")
        );
        assert!(
            schema
                .check(&category, "")
                .unwrap_err()
                .contains("not nullable")
        );
    }

    #[test]
    fn timestamps_are_seconds_and_values_numbers() {
        assert_eq!(timestamp("1764547200"), Ok(1_764_547_200));
        assert!(
            timestamp("1764547200000")
                .unwrap_err()
                .contains("milliseconds")
        );
        assert!(
            timestamp("2025-12-01")
                .unwrap_err()
                .contains("not Unix epoch seconds")
        );
        assert_eq!(event_value("19.99"), Ok(Some(19.99)));
        assert_eq!(event_value(""), Ok(None));
        assert!(event_value("free").unwrap_err().contains("not a number"));
    }

    #[test]
    fn minimums_count_users_with_two_interactions() {
        let mut m = Minimums::default();
        for user in 0..25 {
            for _ in 0..40 {
                m.add(&format!("u{user}"));
            }
        }
        assert_eq!(m.shortfall(), None);
        let mut few = Minimums::default();
        for user in 0..30 {
            few.add(&format!("u{user}"));
        }
        few.add("u0");
        assert_eq!(
            few.shortfall().unwrap(),
            "31 interactions, 1 users with at least 2: training needs at least 1000 interactions and 25 such users"
        );
    }
}
