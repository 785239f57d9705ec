//! check-datasets: one dataset file, streamed row by row through Personalize's rules
//! (`personalize_braze_core::rules`), into findings with their file, line and rule.
//!
//! Given a schema, each value is checked against its field. Without one, the schema is inferred
//! from the file in the same pass ([`rules::Schema::infer`]), and the rules that depend on it
//! (categorical and textual lengths) are applied to what the pass recorded.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use personalize_braze_core::rules::{
    self, ColumnStats, Dataset, MAX_CATEGORICAL_CHARS, MAX_INTERACTION_FIELDS_AND_TYPES,
    MAX_TEXTUAL_CHARS, Minimums, Schema,
};

/// How much a finding matters: an error fails the import job (or training); a warning is data
/// Personalize takes but likely not what was meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One broken rule, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// A short name for the rule: `timestamp-seconds`, `id-length`, `duplicate`, …
    pub rule: &'static str,
    pub line: Option<u64>,
    pub message: String,
}

/// What checking one file gave.
#[derive(Debug)]
pub struct Checked {
    pub schema: Schema,
    pub rows: u64,
    pub findings: Vec<Finding>,
    /// Findings past [`NAMED_PER_RULE`] for one rule, counted by rule.
    pub more: HashMap<&'static str, u64>,
    /// For interactions: the training minimums' counts.
    pub minimums: Option<Minimums>,
}

/// Findings of one rule named line by line; the rest are counted.
pub const NAMED_PER_RULE: usize = 20;

struct Findings {
    list: Vec<Finding>,
    per_rule: HashMap<&'static str, usize>,
    more: HashMap<&'static str, u64>,
}

impl Findings {
    fn add(&mut self, severity: Severity, rule: &'static str, line: Option<u64>, message: String) {
        let count = self.per_rule.entry(rule).or_default();
        *count += 1;
        if *count <= NAMED_PER_RULE {
            self.list.push(Finding {
                severity,
                rule,
                line,
                message,
            });
        } else {
            *self.more.entry(rule).or_default() += 1;
        }
    }

    fn error(&mut self, rule: &'static str, line: Option<u64>, message: String) {
        self.add(Severity::Error, rule, line, message);
    }
}

/// The rule a value's problem breaks, from the problem's words.
fn rule_of(problem: &str) -> &'static str {
    if problem.contains("milliseconds") || problem.contains("epoch seconds") {
        "timestamp-seconds"
    } else if problem.contains("EVENT_VALUE") {
        "event-value"
    } else if problem.contains("Personalize takes at most") && problem.contains("_ID") {
        "id-length"
    } else if problem.contains("categorical") {
        "categorical-length"
    } else if problem.contains("characters of text") {
        "textual-length"
    } else if problem.contains("is empty") {
        "required-value"
    } else {
        "type"
    }
}

/// Checks one CSV file of `dataset`, against `schema` when given.
pub fn check(dataset: Dataset, input: impl Read, schema: Option<Schema>) -> Checked {
    let mut findings = Findings {
        list: Vec::new(),
        per_rule: HashMap::new(),
        more: HashMap::new(),
    };
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|h| h.trim().to_owned()).collect(),
        Err(e) => {
            findings.error("csv", Some(1), csv_problem(&e));
            Vec::new()
        }
    };
    let empty = Schema {
        dataset,
        fields: Vec::new(),
    };
    let given = schema.is_some();
    if let Some(schema) = &schema {
        for problem in schema.problems() {
            findings.error("schema", None, problem);
        }
    }
    // Each column's field in the given schema; every column must be one.
    let mut columns: Vec<Option<usize>> = Vec::new();
    if let Some(schema) = &schema {
        for name in &header {
            let field = schema.fields.iter().position(|f| &f.name == name);
            if field.is_none() {
                findings.error(
                    "schema",
                    Some(1),
                    format!("column {name} is not a field of the schema"),
                );
            }
            columns.push(field);
        }
        for field in &schema.fields {
            if !field.nullable && !header.contains(&field.name) {
                findings.error(
                    "required-column",
                    Some(1),
                    format!(
                        "missing column {} (the schema says it is never null)",
                        field.name
                    ),
                );
            }
        }
    } else {
        for (name, _) in dataset.required() {
            if !header.iter().any(|h| h == name) {
                let near = header
                    .iter()
                    .find(|h| h.eq_ignore_ascii_case(name))
                    .map(|h| format!("; {h} is there, but names are case-sensitive"))
                    .unwrap_or_default();
                findings.error(
                    "required-column",
                    Some(1),
                    format!("missing column {name}{near}"),
                );
            }
        }
    }
    let mut seen_names = HashSet::new();
    for name in &header {
        if !seen_names.insert(name) {
            findings.error("csv", Some(1), format!("column {name} appears twice"));
        }
    }

    let mut stats = vec![ColumnStats::default(); header.len()];
    // Where a value would break a rule of an inferred categorical or textual field.
    let mut long_part: Vec<Option<(u64, usize)>> = vec![None; header.len()];
    let mut long_text: Vec<Option<(u64, usize)>> = vec![None; header.len()];
    let key = dataset
        .key()
        .and_then(|k| header.iter().position(|h| h == k));
    let mut keys: HashMap<String, u64> = HashMap::new();
    let mut rows_seen: HashMap<u64, u64> = HashMap::new();
    let user = header.iter().position(|h| h == "USER_ID");
    let event_type = header.iter().position(|h| h == "EVENT_TYPE");
    let mut event_types: HashSet<String> = HashSet::new();
    let mut minimums = (dataset == Dataset::Interactions).then(Minimums::default);
    let mut rows = 0;

    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map(|p| p.line());
                findings.error("csv", line, csv_problem(&e));
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    break;
                }
                continue;
            }
        }
        rows += 1;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if record.len() != header.len() {
            findings.error(
                "csv",
                Some(line),
                format!(
                    "{} fields, but the header has {}",
                    record.len(),
                    header.len()
                ),
            );
            continue;
        }
        let fixed_schema = schema.as_ref().unwrap_or(&empty);
        for (i, value) in record.iter().enumerate() {
            let name = &header[i];
            if let Some(Some(field)) = columns.get(i) {
                if let Err(problem) = fixed_schema.check(&fixed_schema.fields[*field], value) {
                    findings.error(rule_of(&problem), Some(line), problem);
                }
                continue;
            }
            if given {
                continue;
            }
            // No schema: the rules that hold whatever it would say, and what inference needs.
            let problem = match name.as_str() {
                "USER_ID" | "ITEM_ID" => rules::id(name, value).err(),
                "TIMESTAMP" | "CREATION_TIMESTAMP" if !value.is_empty() => {
                    rules::timestamp(value).err()
                }
                "EVENT_VALUE" => rules::event_value(value).err(),
                _ => None,
            };
            if let Some(problem) = problem {
                findings.error(rule_of(&problem), Some(line), problem);
            }
            stats[i].add(value);
            let chars = value.chars().count();
            if chars > MAX_TEXTUAL_CHARS && long_text[i].is_none() {
                long_text[i] = Some((line, chars));
            }
            let part = value
                .split('|')
                .map(|p| p.chars().count())
                .max()
                .unwrap_or(0);
            if part > MAX_CATEGORICAL_CHARS && long_part[i].is_none() {
                long_part[i] = Some((line, part));
            }
        }
        if let Some(key) = key {
            let id = record[key].to_owned();
            if let Some(first) = keys.get(&id) {
                findings.error(
                    "duplicate",
                    Some(line),
                    format!("{} {id:?} repeats line {first}", header[key]),
                );
            } else {
                keys.insert(id, line);
            }
        }
        if dataset == Dataset::Interactions {
            let hash =
                xxhash_rust::xxh3::xxh3_64(record.as_slice().as_bytes()) ^ (record.len() as u64);
            if let Some(first) = rows_seen.get(&hash) {
                findings.add(
                    Severity::Warning,
                    "duplicate",
                    Some(line),
                    format!("the same interaction as line {first}"),
                );
            } else {
                rows_seen.insert(hash, line);
            }
            if let (Some(minimums), Some(user)) = (&mut minimums, user) {
                minimums.add(&record[user]);
            }
            if let Some(event_type) = event_type
                && !event_types.contains(&record[event_type])
            {
                event_types.insert(record[event_type].to_owned());
            }
        }
    }

    let schema = schema.unwrap_or_else(|| {
        let inferred = Schema::infer(dataset, &header, &stats);
        for problem in inferred.problems() {
            findings.error("schema", None, problem);
        }
        for (i, field) in inferred.fields.iter().enumerate() {
            if field.categorical
                && let Some((line, chars)) = long_part[i]
            {
                findings.error(
                    "categorical-length",
                    Some(line),
                    format!(
                        "{} has a categorical value of {chars} characters; Personalize takes at \
                         most {MAX_CATEGORICAL_CHARS} (separate several with |)",
                        field.name
                    ),
                );
            }
            if field.textual
                && let Some((line, chars)) = long_text[i]
            {
                findings.add(
                    Severity::Warning,
                    "textual-length",
                    Some(line),
                    format!(
                        "{} is {chars} characters of text; Personalize reads the first \
                         {MAX_TEXTUAL_CHARS} and ignores the rest",
                        field.name
                    ),
                );
            }
        }
        inferred
    });
    if dataset == Dataset::Interactions {
        let optional = schema.fields.len() - dataset.required().len();
        let total = optional + event_types.len();
        if total > MAX_INTERACTION_FIELDS_AND_TYPES {
            findings.error(
                "field-count",
                None,
                format!(
                    "{optional} optional fields and {} event types make {total}; Personalize \
                     takes at most {MAX_INTERACTION_FIELDS_AND_TYPES} together",
                    event_types.len()
                ),
            );
        }
    }
    if rows == 0 {
        findings.error("empty", None, "the file has no rows".to_owned());
    }
    // Textual-length findings from a given schema are warnings too: Personalize truncates.
    for finding in &mut findings.list {
        if finding.rule == "textual-length" {
            finding.severity = Severity::Warning;
        }
    }
    findings
        .list
        .sort_by_key(|f| (f.line.unwrap_or(0), f.severity));
    Checked {
        schema,
        rows,
        findings: findings.list,
        more: findings.more,
        minimums,
    }
}

fn csv_problem(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "invalid UTF-8 (Personalize reads UTF-8)".to_owned(),
        _ => e.to_string(),
    }
}
