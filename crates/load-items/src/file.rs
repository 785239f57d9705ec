//! The items file, read whole and checked against everything DynamoDB would refuse, before any
//! write: Personalize's items CSV (the same column rules as local mode) or JSON Lines.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::Path;

use aws_sdk_dynamodb::types::AttributeValue;
use personalize_braze_core::dataset;
use personalize_braze_core::item::{Value, column_attribute, is_json_number};

use crate::Row;

/// DynamoDB's limit on one item.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// The whole file as DynamoDB items, or every problem in it.
pub fn read(path: &Path) -> Result<Vec<Row>, Vec<String>> {
    let json_lines = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("jsonl" | "ndjson")
    );
    let (rows, mut problems) = if json_lines {
        read_json_lines(path)?
    } else {
        read_csv(path)?
    };
    for (line, row) in &rows {
        for problem in refusals(row) {
            problems.push((*line, format!("{}, line {line}: {problem}", path.display())));
        }
    }
    if problems.is_empty() {
        Ok(rows.into_iter().map(|(_, row)| row).collect())
    } else {
        // In file order, whichever check found them.
        problems.sort_by_key(|(line, _)| *line);
        Err(problems.into_iter().map(|(_, p)| p).collect())
    }
}

/// Rows with their line numbers, and problems with theirs; `Err` when the file cannot be read.
type Read = Result<(Vec<(u64, Row)>, Vec<(u64, String)>), Vec<String>>;

/// Same column rules as local mode: `ITEM_ID` is `id`, other columns lower-cased, JSON-number
/// text stored as a number (its exact text), everything else as a string, empty fields left out.
fn read_csv(path: &Path) -> Read {
    let records = dataset::check_items(path)
        .map_err(|errors| errors.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
    let mut problems = Vec::new();
    let rows = records
        .into_iter()
        .enumerate()
        .map(|(n, record)| {
            let line = n as u64 + 2;
            let mut row = Attributes::new(record.id, "ITEM_ID");
            for (column, text) in record.fields {
                let Some((_, value)) = column_attribute(&column, &text) else {
                    continue;
                };
                if let Err(problem) = row.add(&column, attribute_value(value)) {
                    problems.push((line, format!("{}, line {line}: {problem}", path.display())));
                }
            }
            (line, row.row)
        })
        .collect();
    Ok((rows, problems))
}

/// An item's attributes, each under its lower-cased name, remembering the name it came as.
struct Attributes {
    row: Row,
    given_as: HashMap<String, String>,
}

impl Attributes {
    fn new(id: String, id_given_as: &str) -> Attributes {
        Attributes {
            row: Row::from([("id".to_owned(), AttributeValue::S(id))]),
            given_as: HashMap::from([("id".to_owned(), id_given_as.to_owned())]),
        }
    }

    /// Refuses a second field with the same lower-cased name (`Name` and `NAME`, or an `ID`
    /// column beside `ITEM_ID`): one of the two would be silently lost.
    fn add(&mut self, name: &str, value: AttributeValue) -> Result<(), String> {
        let attribute = name.to_lowercase();
        if let Some(first) = self.given_as.get(&attribute) {
            return Err(format!(
                "{first} and {name} would both be stored as the attribute {attribute:?}; rename one"
            ));
        }
        self.given_as.insert(attribute.clone(), name.to_owned());
        self.row.insert(attribute, value);
        Ok(())
    }
}

/// One JSON object per line: `ITEM_ID` (or `id`) and attributes. Numbers keep their exact text.
fn read_json_lines(path: &Path) -> Read {
    let file = std::fs::File::open(path)
        .map_err(|e| vec![format!("{}: cannot open: {e}", path.display())])?;
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    let mut seen = dataset::ItemIds::default();
    for (n, line) in std::io::BufReader::new(file).split(b'\n').enumerate() {
        let line_no = n as u64 + 1;
        let at = |message: String| {
            let text = format!("{}, line {line_no}: {message}", path.display());
            (line_no, text)
        };
        let bytes = match line {
            Ok(bytes) => bytes,
            Err(e) => {
                problems.push(at(format!("cannot read: {e}")));
                break;
            }
        };
        let Ok(text) = std::str::from_utf8(&bytes) else {
            problems.push(at("invalid UTF-8".into()));
            continue;
        };
        if text.trim().is_empty() {
            continue;
        }
        // Sorted, so problems name fields in the same order every run.
        let object: BTreeMap<String, Box<serde_json::value::RawValue>> =
            match serde_json::from_str(text) {
                Ok(object) => object,
                Err(e) => {
                    problems.push(at(format!("not a JSON object: {e}")));
                    continue;
                }
            };
        if object.contains_key("ITEM_ID") && object.contains_key("id") {
            problems.push(at(
                "both ITEM_ID and id are given, so which is the item's id is ambiguous; keep one"
                    .into(),
            ));
            continue;
        }
        let id = ["ITEM_ID", "id"]
            .iter()
            .find_map(|key| object.get(*key))
            .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok());
        let Some(id) = id else {
            problems.push(at("ITEM_ID is missing or not a string".into()));
            continue;
        };
        if let Err(problem) = seen.check(&id, line_no) {
            problems.push(at(problem));
            continue;
        }
        let id_key = if object.contains_key("ITEM_ID") {
            "ITEM_ID"
        } else {
            "id"
        };
        let mut row = Attributes::new(id, id_key);
        for (key, raw) in &object {
            if key == id_key {
                continue;
            }
            let Some(value) = json_value(raw.get()) else {
                continue;
            };
            if let Err(problem) = row.add(key, value) {
                problems.push(at(problem));
            }
        }
        rows.push((line_no, row.row));
    }
    Ok((rows, problems))
}

/// An item attribute as DynamoDB stores it; numbers keep their text.
fn attribute_value(value: Value) -> AttributeValue {
    match value {
        Value::String(text) => AttributeValue::S(text),
        Value::Number(raw) => AttributeValue::N(raw.get().to_owned()),
        Value::Bool(b) => AttributeValue::Bool(b),
        Value::Null => AttributeValue::Null(true),
        Value::List(values) => AttributeValue::L(values.into_iter().map(attribute_value).collect()),
        Value::Map(fields) => AttributeValue::M(
            fields
                .into_iter()
                .map(|(k, v)| (k, attribute_value(v)))
                .collect(),
        ),
    }
}

/// A JSON value as a DynamoDB attribute; `null` and empty strings are left out. Numbers keep
/// their exact text, inside lists and maps too.
fn json_value(raw: &str) -> Option<AttributeValue> {
    use serde_json::value::RawValue;
    let raw = raw.trim();
    if is_json_number(raw) {
        return Some(AttributeValue::N(raw.to_owned()));
    }
    if raw.starts_with('[') {
        let values: Vec<Box<RawValue>> = serde_json::from_str(raw).ok()?;
        return Some(AttributeValue::L(
            values.iter().filter_map(|v| json_value(v.get())).collect(),
        ));
    }
    if raw.starts_with('{') {
        let fields: BTreeMap<String, Box<RawValue>> = serde_json::from_str(raw).ok()?;
        return Some(AttributeValue::M(
            fields
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), json_value(v.get())?)))
                .collect(),
        ));
    }
    match serde_json::from_str::<serde_json::Value>(raw).ok()? {
        serde_json::Value::String(s) if s.is_empty() => None,
        serde_json::Value::String(s) => Some(AttributeValue::S(s)),
        serde_json::Value::Bool(b) => Some(AttributeValue::Bool(b)),
        _ => None,
    }
}

/// What DynamoDB would refuse in this item: its size, empty attribute names, numbers it cannot
/// hold (anywhere, lists and maps included).
fn refusals(row: &Row) -> Vec<String> {
    let mut problems = Vec::new();
    let size = item_size(row);
    if size > MAX_ITEM_BYTES {
        problems.push(format!(
            "item is {size} bytes (attribute names included), over DynamoDB's 400 KB limit"
        ));
    }
    fn numbers(name: &str, value: &AttributeValue, problems: &mut Vec<String>) {
        match value {
            AttributeValue::N(text) => {
                if let Some(problem) = number_refusal(text) {
                    problems.push(format!("{name}: {problem}"));
                }
            }
            AttributeValue::L(list) => {
                for (i, v) in list.iter().enumerate() {
                    numbers(&format!("{name}[{i}]"), v, problems);
                }
            }
            AttributeValue::M(map) => {
                for (k, v) in map {
                    numbers(&format!("{name}.{k}"), v, problems);
                }
            }
            _ => {}
        }
    }
    let mut names: Vec<&String> = row.keys().collect();
    names.sort();
    for name in names {
        if name.is_empty() {
            problems.push("an attribute has an empty name (an empty column header?)".to_owned());
        }
        numbers(name, &row[name], &mut problems);
    }
    problems
}

/// DynamoDB's numbers have at most 38 significant digits, and a magnitude from 1E-130 up to
/// 9.99…E+125 (zero aside). `text` is already a JSON number.
fn number_refusal(text: &str) -> Option<String> {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exponent) = unsigned.split_once(['e', 'E']).unwrap_or((unsigned, "0"));
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{whole}{fraction}");
    let significant = digits.trim_matches('0');
    if significant.is_empty() {
        return None;
    }
    if significant.len() > 38 {
        return Some(format!(
            "{text} has {} significant digits, and DynamoDB keeps at most 38 (store it as text: \
             a quoted string in JSON Lines)",
            significant.len()
        ));
    }
    let leading_zeros = (digits.len() - digits.trim_start_matches('0').len()) as i64;
    // The power of ten of the first significant digit: 123.4 is 1.234E2, 0.001 is 1E-3.
    let magnitude = exponent
        .parse::<i64>()
        .ok()
        .map(|e| whole.len() as i64 - leading_zeros - 1 + e);
    match magnitude {
        Some(m) if (-130..=125).contains(&m) => None,
        _ => Some(format!(
            "{text} is outside DynamoDB's number range (magnitudes from 1E-130 to 9.99…E+125)"
        )),
    }
}

/// DynamoDB's item size: attribute names plus values (numbers at most 21 bytes).
pub fn item_size(row: &Row) -> usize {
    fn value_size(value: &AttributeValue) -> usize {
        match value {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => n.len().div_ceil(2) + 1,
            AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
            AttributeValue::M(map) => {
                3 + map
                    .iter()
                    .map(|(k, v)| 1 + k.len() + value_size(v))
                    .sum::<usize>()
            }
            _ => 1,
        }
    }
    row.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_keep_exact_numbers_and_types() {
        assert_eq!(json_value("19.90"), Some(AttributeValue::N("19.90".into())));
        assert_eq!(
            json_value("\"19.90\""),
            Some(AttributeValue::S("19.90".into()))
        );
        assert_eq!(json_value("true"), Some(AttributeValue::Bool(true)));
        assert_eq!(json_value("null"), None);
        assert_eq!(json_value("\"\""), None);
        assert_eq!(
            json_value(r#"["a", 2, 19.90, null]"#),
            Some(AttributeValue::L(vec![
                AttributeValue::S("a".into()),
                AttributeValue::N("2".into()),
                AttributeValue::N("19.90".into()),
            ]))
        );
        assert_eq!(
            json_value(r#"{"w": 1E-5, "gone": ""}"#),
            Some(AttributeValue::M(HashMap::from([(
                "w".to_owned(),
                AttributeValue::N("1E-5".into())
            )])))
        );
    }

    #[test]
    fn numbers_dynamodb_cannot_hold_are_refused() {
        for fine in [
            "0",
            "-0.0",
            "19.90",
            "1E-130",
            "-9.9999999999999999999999999999999999999E+125",
            "12345678901234567890123456789012345678",
            "1234567890123456789012345678901234567800000",
            "0.000012345678901234567890123456789012345678",
            "1e125",
            "1000e-133",
        ] {
            assert_eq!(number_refusal(fine), None, "{fine}");
        }
        for (bad, says) in [
            (
                "123456789012345678901234567890123456789",
                "39 significant digits",
            ),
            (
                "1.00000000000000000000000000000000000001",
                "39 significant digits",
            ),
            ("1e126", "outside DynamoDB's number range"),
            ("-1E+126", "outside DynamoDB's number range"),
            ("1E-131", "outside DynamoDB's number range"),
            ("0.01e-129", "outside DynamoDB's number range"),
            (
                "1e99999999999999999999999",
                "outside DynamoDB's number range",
            ),
        ] {
            let refusal = number_refusal(bad).unwrap_or_default();
            assert!(refusal.contains(says), "{bad}: {refusal:?}");
        }
    }

    #[test]
    fn refusals_look_inside_lists_and_maps() {
        let row = Row::from([
            ("id".to_owned(), AttributeValue::S("a".into())),
            (
                "specs".to_owned(),
                AttributeValue::M(HashMap::from([(
                    "sizes".to_owned(),
                    AttributeValue::L(vec![AttributeValue::N("1e200".into())]),
                )])),
            ),
            (String::new(), AttributeValue::S("x".into())),
        ]);
        let problems = refusals(&row);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("empty name"), "{problems:?}");
        assert!(problems[1].starts_with("specs.sizes[0]: 1e200 is outside"));
    }

    #[test]
    fn item_size_counts_names_and_values() {
        let row = Row::from([
            ("id".to_owned(), AttributeValue::S("abc".into())),
            ("name".to_owned(), AttributeValue::S("x".repeat(10))),
        ]);
        assert_eq!(item_size(&row), 2 + 3 + 4 + 10);
    }
}
