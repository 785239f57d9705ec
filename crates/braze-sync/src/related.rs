//! A related-items (Similar-Items) batch output into a Braze Catalog: each item's related ids
//! become one array column of that item (`related_ids` unless named), edited 50 items a request
//! through the Catalogs API. The destination per-item lines lacked: a message reads them at send
//! time with `catalog_items`, beside the item's own fields.

use personalize_braze_catalogs::{Catalogs, MAX_ID_CHARS, MAX_ITEMS_PER_REQUEST, valid_name};
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::input::{Line, parse_line};

/// What a run did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub items: usize,
    /// Lines that were not an item's list (users, Personalize's errors, blank), counted.
    pub skipped: usize,
    /// Lines that could not be read, with their numbers and why.
    pub problems: Vec<(u64, String)>,
}

/// Writes each item's first `count` related ids (never itself, never an id the catalog could not
/// hold) into `column` of `catalog`; the column is added as an array field if missing.
pub async fn to_catalog(
    reader: impl AsyncBufRead + Unpin,
    catalogs: &Catalogs,
    catalog: &str,
    column: &str,
    count: usize,
) -> Result<Written, String> {
    let fields = catalogs
        .fields(catalog)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!("Braze has no catalog {catalog}: load the items first (load-items --braze-catalog {catalog})")
        })?;
    match fields.iter().find(|(name, _)| name == column) {
        None => catalogs
            .add_fields(catalog, &[(column.to_owned(), "array".to_owned())])
            .await
            .map_err(|e| e.to_string())?,
        Some((_, kind)) if kind != "array" => {
            return Err(format!(
                "catalog {catalog}'s field {column} is a {kind}; related ids need an array field"
            ));
        }
        Some(_) => {}
    }
    let mut written = Written::default();
    let mut batch: Vec<Value> = Vec::with_capacity(MAX_ITEMS_PER_REQUEST);
    let mut lines = reader;
    let mut buffer = Vec::new();
    let mut number = 0u64;
    loop {
        buffer.clear();
        let read = lines
            .read_until(b'\n', &mut buffer)
            .await
            .map_err(|e| format!("cannot read the input: {e}"))?;
        if read == 0 {
            break;
        }
        number += 1;
        match parse_line(&buffer) {
            Ok(Line::Related { item_id, item_ids }) if valid_name(&item_id, MAX_ID_CHARS) => {
                let related: Vec<&String> = item_ids
                    .iter()
                    .filter(|id| **id != item_id && valid_name(id, MAX_ID_CHARS))
                    .take(count)
                    .collect();
                batch.push(json!({"id": item_id, column: related}));
                if batch.len() == MAX_ITEMS_PER_REQUEST {
                    catalogs
                        .patch(catalog, &batch)
                        .await
                        .map_err(|e| e.to_string())?;
                    written.items += batch.len();
                    batch.clear();
                }
            }
            Ok(Line::Related { item_id, .. }) => written.problems.push((
                number,
                format!("itemId {item_id:?} is no id a Braze Catalog holds"),
            )),
            Ok(_) => written.skipped += 1,
            Err(why) => written.problems.push((number, why)),
        }
    }
    if !batch.is_empty() {
        catalogs
            .patch(catalog, &batch)
            .await
            .map_err(|e| e.to_string())?;
        written.items += batch.len();
    }
    Ok(written)
}
