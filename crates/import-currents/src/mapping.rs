//! Which Currents events become interactions, and how: purchases always (`product_id` is the
//! item, `price` the value), custom events by name (the item id is one of their `properties`),
//! and message engagement where the user names the field that holds the item.

use apache_avro::types::Value;
use personalize_braze_core::rules;

/// Braze caps a custom event's properties at 50 KB. A `properties` string past this cannot have
/// come from Braze intact, and is refused rather than parsed.
pub const MAX_PROPERTIES_BYTES: usize = 64 * 1024;

/// The Currents event types an export holds, as `event_type=` folders and schema names say them.
pub const PURCHASE: &str = "users.behaviors.Purchase";
pub const CUSTOM_EVENT: &str = "users.behaviors.CustomEvent";

/// How to turn Currents events into interactions.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    /// `EVENT_TYPE` for purchases; `None` leaves purchases out.
    pub purchase: Option<String>,
    pub custom_events: Vec<CustomEvent>,
    pub engagements: Vec<Engagement>,
}

impl Default for Mapping {
    fn default() -> Self {
        Mapping {
            purchase: Some("purchase".to_owned()),
            custom_events: Vec::new(),
            engagements: Vec::new(),
        }
    }
}

/// `NAME=PROPERTY[:EVENT_TYPE]`: custom events called NAME are interactions with the item whose
/// id is in `properties.PROPERTY`, of type EVENT_TYPE (NAME unless given).
#[derive(Debug, Clone, PartialEq)]
pub struct CustomEvent {
    pub name: String,
    pub property: String,
    pub event_type: String,
}

/// `CURRENTS_TYPE=FIELD[:EVENT_TYPE]`: every event of that Currents type (for example
/// `users.messages.contentcard.Click`) is an interaction with the item named by its FIELD, of
/// type EVENT_TYPE (the type's last part, lower-cased, unless given).
#[derive(Debug, Clone, PartialEq)]
pub struct Engagement {
    pub currents_type: String,
    pub field: String,
    pub event_type: String,
}

fn split_spec(spec: &str, what: &str) -> Result<(String, String, Option<String>), String> {
    let (key, rest) = spec
        .rsplit_once('=')
        .ok_or_else(|| format!("{spec:?}: expected {what}"))?;
    let (field, event_type) = match rest.split_once(':') {
        Some((field, event_type)) => (field, Some(event_type)),
        None => (rest, None),
    };
    if key.is_empty() || field.is_empty() || event_type.is_some_and(str::is_empty) {
        return Err(format!("{spec:?}: expected {what}, with no part empty"));
    }
    Ok((
        key.to_owned(),
        field.to_owned(),
        event_type.map(str::to_owned),
    ))
}

impl std::str::FromStr for CustomEvent {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let (name, property, event_type) = split_spec(spec, "NAME=PROPERTY[:EVENT_TYPE]")?;
        Ok(CustomEvent {
            event_type: event_type.unwrap_or_else(|| name.clone()),
            name,
            property,
        })
    }
}

impl std::str::FromStr for Engagement {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let (currents_type, field, event_type) =
            split_spec(spec, "CURRENTS_EVENT_TYPE=FIELD[:EVENT_TYPE]")?;
        if !currents_type.contains('.') || currents_type.contains('/') {
            return Err(format!(
                "{spec:?}: {currents_type:?} is not a Currents event type (users.messages.contentcard.Click, …)"
            ));
        }
        let event_type = event_type.unwrap_or_else(|| {
            currents_type
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .to_lowercase()
        });
        Ok(Engagement {
            currents_type,
            field,
            event_type,
        })
    }
}

/// One row of the interactions file.
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction {
    pub user_id: String,
    pub item_id: String,
    pub event_type: String,
    pub event_value: Option<f64>,
    pub timestamp: i64,
}

/// What one event becomes.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Interaction(Interaction),
    /// No `external_user_id`: Braze knows the user, Personalize would not.
    NoExternalId,
    /// A custom event of a name no mapping takes.
    NotMapped,
    /// Breaks the mapping (a missing item, `properties` that are not JSON, …); the reason.
    Rejected(String),
}

/// A Currents record's fields, by name; unions are looked through, and null is absent.
pub struct Record<'a>(pub &'a [(String, Value)]);

impl Record<'_> {
    pub fn get(&self, name: &str) -> Option<&Value> {
        let value = self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)?;
        match value {
            Value::Union(_, inner) => match inner.as_ref() {
                Value::Null => None,
                inner => Some(inner),
            },
            Value::Null => None,
            value => Some(value),
        }
    }

    pub fn string(&self, name: &str) -> Option<&str> {
        match self.get(name)? {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Seconds since the epoch: `time` is an int in Currents' schemas (a long is taken too).
    fn time(&self) -> Result<i64, String> {
        match self.get("time") {
            Some(Value::Int(t)) => Ok(i64::from(*t)),
            Some(Value::Long(t)) => Ok(*t),
            Some(other) => Err(format!("time is {}, not seconds", kind(other))),
            None => Err("time is missing".to_owned()),
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Int(_) | Value::Long(_) => "an integer",
        Value::Float(_) | Value::Double(_) => "a number",
        Value::Boolean(_) => "a boolean",
        _ => "another type",
    }
}

/// A field as an item id: a string, or an integer (Braze ids are often numeric).
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Int(n) => Some(n.to_string()),
        Value::Long(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Mapping {
    /// Whether events of this Currents type can become interactions at all: files of other types
    /// are listed as skipped, not read.
    pub fn reads(&self, currents_type: &str) -> bool {
        (currents_type == PURCHASE && self.purchase.is_some())
            || (currents_type == CUSTOM_EVENT && !self.custom_events.is_empty())
            || self
                .engagements
                .iter()
                .any(|e| e.currents_type == currents_type)
    }

    /// What one event of `currents_type` becomes.
    pub fn map(&self, currents_type: &str, record: &Record) -> Outcome {
        match self.item_and_type(currents_type, record) {
            Ok(None) => Outcome::NotMapped,
            Err(problem) => Outcome::Rejected(problem),
            Ok(Some((item_id, event_type, event_value))) => {
                let Some(user_id) = record
                    .string("external_user_id")
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                else {
                    return Outcome::NoExternalId;
                };
                // Personalize's rules for the row, so the file imports as written.
                let checked = rules::id("USER_ID", user_id)
                    .and_then(|()| rules::id("ITEM_ID", &item_id))
                    .and_then(|()| record.time())
                    .and_then(|t| rules::timestamp(&t.to_string()));
                match checked {
                    Ok(timestamp) => Outcome::Interaction(Interaction {
                        user_id: user_id.to_owned(),
                        item_id,
                        event_type: event_type.to_owned(),
                        event_value,
                        timestamp,
                    }),
                    Err(problem) => Outcome::Rejected(problem),
                }
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn item_and_type<'m>(
        &'m self,
        currents_type: &str,
        record: &Record,
    ) -> Result<Option<(String, &'m str, Option<f64>)>, String> {
        if currents_type == PURCHASE
            && let Some(event_type) = &self.purchase
        {
            let item = record
                .get("product_id")
                .and_then(id_text)
                .ok_or("product_id is missing or empty")?;
            let price = match record.get("price") {
                // As written: 3.14 stays 3.14, not the f32's 3.140000104904175.
                Some(Value::Float(p)) => p.to_string().parse().ok(),
                Some(Value::Double(p)) => Some(*p),
                _ => None,
            }
            .filter(|p| p.is_finite());
            return Ok(Some((item, event_type, price)));
        }
        if currents_type == CUSTOM_EVENT {
            let name = record.string("name").ok_or("name is missing")?;
            let Some(custom) = self.custom_events.iter().find(|c| c.name == name) else {
                return Ok(None);
            };
            let item = property(record, &custom.property)?;
            return Ok(Some((item, &custom.event_type, None)));
        }
        if let Some(engagement) = self
            .engagements
            .iter()
            .find(|e| e.currents_type == currents_type)
        {
            let item = record
                .get(&engagement.field)
                .and_then(id_text)
                .ok_or_else(|| format!("{} is missing or empty", engagement.field))?;
            return Ok(Some((item, &engagement.event_type, None)));
        }
        Ok(None)
    }
}

/// `properties.NAME` of a custom event, whose `properties` is a JSON object encoded as a string.
fn property(record: &Record, name: &str) -> Result<String, String> {
    let text = record.string("properties").ok_or("properties is missing")?;
    if text.len() > MAX_PROPERTIES_BYTES {
        return Err(format!(
            "properties is {} bytes; Braze caps event properties at 50 KB",
            text.len()
        ));
    }
    let properties: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| format!("properties is not a JSON object: {e}"))?;
    match properties.get(name) {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
        Some(other) => Err(format!("properties.{name} is {other}, not an item id")),
        None => Err(format!("properties has no {name}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &[(&str, Value)]) -> Vec<(String, Value)> {
        fields
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect()
    }

    fn some(s: &str) -> Value {
        Value::Union(1, Box::new(Value::String(s.to_owned())))
    }

    #[test]
    fn specs_parse_with_defaults_and_refuse_empty_parts() {
        let custom: CustomEvent = "Viewed Product=product_id:view".parse().unwrap();
        assert_eq!(
            custom,
            CustomEvent {
                name: "Viewed Product".into(),
                property: "product_id".into(),
                event_type: "view".into()
            }
        );
        let custom: CustomEvent = "wishlist=sku".parse().unwrap();
        assert_eq!(custom.event_type, "wishlist");
        let click: Engagement = "users.messages.contentcard.Click=campaign_name"
            .parse()
            .unwrap();
        assert_eq!(click.event_type, "click");
        for bad in ["name", "=sku", "name=", "name=sku:"] {
            assert!(bad.parse::<CustomEvent>().is_err(), "{bad}");
        }
        assert!(
            "Click=x"
                .parse::<Engagement>()
                .unwrap_err()
                .contains("not a Currents event type")
        );
    }

    #[test]
    fn a_purchase_is_its_product_price_and_seconds() {
        let fields = record(&[
            ("id", Value::String("e1".into())),
            ("external_user_id", some("u1")),
            ("time", Value::Int(1_700_000_000)),
            ("product_id", Value::String("sku-9".into())),
            ("price", Value::Float(19.5)),
        ]);
        assert_eq!(
            Mapping::default().map(PURCHASE, &Record(&fields)),
            Outcome::Interaction(Interaction {
                user_id: "u1".into(),
                item_id: "sku-9".into(),
                event_type: "purchase".into(),
                event_value: Some(19.5),
                timestamp: 1_700_000_000,
            })
        );
        let anonymous = record(&[
            ("external_user_id", Value::Union(0, Box::new(Value::Null))),
            ("time", Value::Int(1)),
            ("product_id", Value::String("sku-9".into())),
        ]);
        assert_eq!(
            Mapping::default().map(PURCHASE, &Record(&anonymous)),
            Outcome::NoExternalId
        );
        let long_id = record(&[
            ("external_user_id", some(&"u".repeat(257))),
            ("time", Value::Int(1)),
            ("product_id", Value::String("sku-9".into())),
        ]);
        assert_eq!(
            Mapping::default().map(PURCHASE, &Record(&long_id)),
            Outcome::Rejected(
                "USER_ID is 257 characters; Personalize takes at most 256".to_owned()
            )
        );
    }

    #[test]
    fn custom_events_take_their_item_from_properties() {
        let mapping = Mapping {
            custom_events: vec!["viewed=product_id:view".parse().unwrap()],
            ..Mapping::default()
        };
        let event = |name: &str, properties: &str| {
            record(&[
                ("external_user_id", some("u1")),
                ("time", Value::Int(5)),
                ("name", Value::String(name.into())),
                ("properties", Value::String(properties.into())),
            ])
        };
        let viewed = event("viewed", r#"{"product_id": 42, "other": [1]}"#);
        let Outcome::Interaction(row) = mapping.map(CUSTOM_EVENT, &Record(&viewed)) else {
            panic!()
        };
        assert_eq!(
            (row.item_id.as_str(), row.event_type.as_str()),
            ("42", "view")
        );
        let other = event("logged_in", "{}");
        assert_eq!(
            mapping.map(CUSTOM_EVENT, &Record(&other)),
            Outcome::NotMapped
        );
        for (properties, problem) in [
            ("{}", "properties has no product_id"),
            ("not json", "properties is not a JSON object"),
            (r#"{"product_id": null}"#, "properties.product_id is null"),
        ] {
            let Outcome::Rejected(reason) =
                mapping.map(CUSTOM_EVENT, &Record(&event("viewed", properties)))
            else {
                panic!("{properties}")
            };
            assert!(reason.starts_with(problem), "{reason}");
        }
        let huge = format!(
            r#"{{"product_id": "a", "blob": "{}"}}"#,
            "x".repeat(100_000)
        );
        let Outcome::Rejected(reason) = mapping.map(CUSTOM_EVENT, &Record(&event("viewed", &huge)))
        else {
            panic!()
        };
        assert!(
            reason.contains("Braze caps event properties at 50 KB"),
            "{reason}"
        );
    }
}
