//! The item catalog into a Braze Catalog, the other place Braze's guide to recommendations reads
//! product data from at send time (`catalog_items`).
//!
//! The same rules as the table: the file is checked whole first, here also against the
//! catalog's limits (ids and field names of letters, digits, `-` and `_`, ids of at most 250
//! characters, values of at most 5,000), and a bad file sends nothing. Then only what differs from
//! the catalog is sent, 50 items a request, so a rerun sends nothing and a run stopped midway
//! is finished by the next; `--prune` deletes with the table's safety (`PrunePlan`).

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::StreamExt;
use personalize_braze_catalogs::{
    CatalogError, Catalogs, Items, MAX_FIELD_NAME_CHARS, MAX_ID_CHARS, MAX_ITEMS_PER_REQUEST,
    MAX_VALUE_CHARS, valid_name,
};
use serde_json::{Map, Value};

use crate::Row;
use crate::table::PrunePlan;

/// One item as the catalog holds it: its id, and its other fields as JSON.
pub fn to_json(row: &Row) -> (String, Map<String, Value>) {
    let id = match row.get("id") {
        Some(AttributeValue::S(id)) => id.clone(),
        _ => String::new(),
    };
    let fields = row
        .iter()
        .filter(|(name, _)| name.as_str() != "id")
        .map(|(name, value)| (name.clone(), json_of(value)))
        .collect();
    (id, fields)
}

fn json_of(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => n
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(n.clone())),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::L(list) => Value::Array(list.iter().map(json_of).collect()),
        AttributeValue::M(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), json_of(v))).collect())
        }
        _ => Value::Null,
    }
}

/// What the catalog would refuse in the file's items, each with the item's line.
pub fn refusals(items: &[(String, Map<String, Value>)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (n, (id, fields)) in items.iter().enumerate() {
        let line = n + 2;
        if !valid_name(id, MAX_ID_CHARS) {
            problems.push(format!(
                "line {line}: id {id:?}: a Braze Catalog takes ids of 1 to {MAX_ID_CHARS} letters, digits, - and _"
            ));
        }
        for (name, value) in fields {
            if !valid_name(name, MAX_FIELD_NAME_CHARS) {
                problems.push(format!(
                    "line {line}: field {name:?}: a Braze Catalog's field names are letters, digits, - and _"
                ));
            }
            if let Some(long) = longest_string(value)
                && long > MAX_VALUE_CHARS
            {
                problems.push(format!(
                    "line {line}: {name} is {long} characters; a Braze Catalog takes values of at most {MAX_VALUE_CHARS}"
                ));
            }
        }
    }
    problems
}

fn longest_string(value: &Value) -> Option<usize> {
    match value {
        Value::String(s) => Some(s.chars().count()),
        Value::Array(values) => values.iter().filter_map(longest_string).max(),
        Value::Object(map) => map.values().filter_map(longest_string).max(),
        _ => None,
    }
}

/// The catalog's fields for these items: each column's type, `number` where every value is one.
pub fn fields(items: &[(String, Map<String, Value>)]) -> Vec<(String, String)> {
    let mut kinds: BTreeMap<&str, &'static str> = BTreeMap::new();
    for (_, item) in items {
        for (name, value) in item {
            let kind = match value {
                Value::Number(_) => "number",
                Value::Bool(_) => "boolean",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
                _ => "string",
            };
            let entry = kinds.entry(name).or_insert(kind);
            if *entry != kind {
                *entry = "string";
            }
        }
    }
    kinds
        .into_iter()
        .map(|(n, k)| (n.to_owned(), k.to_owned()))
        .collect()
}

/// What a load sends: the items new or changed, and the catalog's items the file lacks.
pub struct Changes {
    pub put: Vec<Value>,
    pub unchanged: usize,
    pub prune: PrunePlan,
}

/// Compares the file with the catalog's items.
pub fn changes(items: &[(String, Map<String, Value>)], existing: &Items) -> Changes {
    let mut put = Vec::new();
    let mut unchanged = 0;
    for (id, fields) in items {
        if existing.get(id) == Some(fields) {
            unchanged += 1;
            continue;
        }
        let mut item = Map::new();
        item.insert("id".into(), Value::String(id.clone()));
        item.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
        put.push(Value::Object(item));
    }
    let keep: std::collections::HashSet<&str> = items.iter().map(|(id, _)| id.as_str()).collect();
    let stale = existing
        .keys()
        .filter(|id| !keep.contains(id.as_str()))
        .cloned()
        .collect();
    Changes {
        put,
        unchanged,
        prune: PrunePlan {
            stale,
            table_items: existing.len(),
            file_items: items.len(),
        },
    }
}

/// Makes sure the catalog exists with every field the items need; says what it did.
pub async fn prepare(
    catalogs: &Catalogs,
    catalog: &str,
    needed: &[(String, String)],
) -> Result<Option<String>, CatalogError> {
    match catalogs.fields(catalog).await? {
        None => {
            catalogs.create(catalog, needed).await?;
            Ok(Some(format!(
                "created catalog {catalog} with fields id, {}",
                needed
                    .iter()
                    .map(|(n, t)| format!("{n} ({t})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
        Some(have) => {
            for (name, kind) in needed {
                if let Some((_, theirs)) = have.iter().find(|(n, _)| n == name)
                    && theirs != kind
                {
                    return Err(CatalogError(format!(
                        "catalog {catalog}'s field {name} is a {theirs}, and the file's values are {kind}s: change one of them"
                    )));
                }
            }
            let missing: Vec<(String, String)> = needed
                .iter()
                .filter(|(n, _)| !have.iter().any(|(h, _)| h == n))
                .cloned()
                .collect();
            if missing.is_empty() {
                return Ok(None);
            }
            catalogs.add_fields(catalog, &missing).await?;
            Ok(Some(format!(
                "added fields {} to catalog {catalog}",
                missing
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }
}

/// Sends `items` 50 to a request, `concurrency` requests at a time; `on_sent` hears each
/// request's item count.
pub async fn send(
    catalogs: &Catalogs,
    catalog: &str,
    items: Vec<Value>,
    concurrency: usize,
    on_sent: &(dyn Fn(u64) + Sync),
) -> Result<usize, CatalogError> {
    let chunks: Vec<&[Value]> = items.chunks(MAX_ITEMS_PER_REQUEST).collect();
    let mut sent = futures_util::stream::iter(chunks)
        .map(|chunk| async move {
            catalogs.put(catalog, chunk).await?;
            on_sent(chunk.len() as u64);
            Ok::<usize, CatalogError>(chunk.len())
        })
        .buffer_unordered(concurrency.max(1));
    let mut total = 0;
    while let Some(result) = sent.next().await {
        total += result?;
    }
    Ok(total)
}

/// Deletes `ids`, 50 to a request.
pub async fn delete(
    catalogs: &Catalogs,
    catalog: &str,
    ids: &[String],
) -> Result<usize, CatalogError> {
    for chunk in ids.chunks(MAX_ITEMS_PER_REQUEST) {
        catalogs.delete(catalog, chunk).await?;
    }
    Ok(ids.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(id: &str, fields: Value) -> (String, Map<String, Value>) {
        (id.to_owned(), fields.as_object().unwrap().clone())
    }

    #[test]
    fn rows_become_json_with_numbers_as_numbers() {
        let row: Row = [
            ("id".to_owned(), AttributeValue::S("sku-1".into())),
            ("price".to_owned(), AttributeValue::N("19.90".into())),
            ("name".to_owned(), AttributeValue::S("Boot".into())),
        ]
        .into();
        let (id, fields) = to_json(&row);
        assert_eq!(id, "sku-1");
        assert_eq!(
            Value::Object(fields),
            json!({"price": 19.9, "name": "Boot"})
        );
    }

    #[test]
    fn the_catalogs_limits_are_checked_with_lines() {
        let items = vec![
            item("ok-1", json!({"name": "fine"})),
            item("has space", json!({"name": "x"})),
            item("ok-2", json!({"bad field": "x", "text": "t".repeat(5001)})),
        ];
        let problems = refusals(&items);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].starts_with("line 3: id \"has space\""),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("line 4: field \"bad field\""))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("line 4: text is 5001 characters"))
        );
    }

    #[test]
    fn only_what_differs_is_sent_and_the_rest_is_stale() {
        let items = vec![
            item("a", json!({"price": 1.5})),
            item("b", json!({"price": 2})),
            item("c", json!({"price": 3})),
        ];
        let existing: Items = [
            (
                "a".to_owned(),
                json!({"price": 1.5}).as_object().unwrap().clone(),
            ),
            (
                "b".to_owned(),
                json!({"price": 9}).as_object().unwrap().clone(),
            ),
            (
                "z".to_owned(),
                json!({"price": 0}).as_object().unwrap().clone(),
            ),
        ]
        .into();
        let changes = changes(&items, &existing);
        assert_eq!(changes.unchanged, 1);
        let ids: Vec<&str> = changes
            .put
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(changes.prune.stale, ["z"]);
        assert_eq!(fields(&items), [("price".to_owned(), "number".to_owned())]);
    }
}
