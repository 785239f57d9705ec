//! `Catalog` over a DynamoDB table keyed by `id` (S), read with BatchGetItem.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use futures_util::future::try_join_all;
use tokio::time::Instant;

use personalize_braze_core::catalog::Catalog;
use personalize_braze_core::encoding::backoff;
use personalize_braze_core::item::{Item, UrlTemplates, Value};
use personalize_braze_core::upstream::UpstreamError;

use crate::errors::upstream_error;

/// BatchGetItem's limit on keys per call.
const MAX_KEYS_PER_CALL: usize = 100;
/// DynamoDB's limit on a partition key's value.
const MAX_KEY_BYTES: usize = 2048;
/// Full-jitter backoff for `UnprocessedKeys`: first wait up to 20 ms, doubling to 320 ms.
const BACKOFF_BASE: Duration = Duration::from_millis(20);
const BACKOFF_CAP: Duration = Duration::from_millis(320);

pub struct DynamoDbCatalog {
    client: Client,
    table: String,
    templates: UrlTemplates,
}

impl DynamoDbCatalog {
    pub fn new(client: Client, table: impl Into<String>, templates: UrlTemplates) -> Self {
        DynamoDbCatalog {
            client,
            table: table.into(),
            templates,
        }
    }

    /// One chunk of at most 100 keys, retrying `UnprocessedKeys` until they drain or the
    /// deadline would pass during the next wait.
    async fn fetch_chunk(
        &self,
        mut keys: Vec<HashMap<String, AttributeValue>>,
        deadline: Instant,
    ) -> Result<Vec<Item>, UpstreamError> {
        let mut items = Vec::with_capacity(keys.len());
        let mut attempt = 0u32;
        loop {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .build()
                .map_err(|e| UpstreamError::Misconfigured(e.to_string()))?;
            let mut output = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| upstream_error(&e))?;

            if let Some(found) = output
                .responses
                .as_mut()
                .and_then(|r| r.remove(&self.table))
            {
                items.extend(found.into_iter().filter_map(|attrs| self.decode(attrs)));
            }
            keys = output
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.table))
                .map(|k| k.keys)
                .unwrap_or_default();
            if keys.is_empty() {
                return Ok(items);
            }

            let wait = backoff(attempt, BACKOFF_BASE, BACKOFF_CAP);
            if Instant::now() + wait >= deadline {
                return Err(UpstreamError::Throttled(format!(
                    "{} keys still unprocessed after {} retries",
                    keys.len(),
                    attempt
                )));
            }
            tracing::debug!(
                unprocessed = keys.len(),
                attempt,
                "retrying unprocessed keys"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// An item without a string `id` cannot be joined; it is skipped rather than guessed at.
    fn decode(&self, mut attributes: HashMap<String, AttributeValue>) -> Option<Item> {
        let id = match attributes.remove("id") {
            Some(AttributeValue::S(id)) => id,
            _ => return None,
        };
        let attributes = attributes
            .into_iter()
            .filter_map(|(name, value)| decode_value(value).map(|v| (name, v)));
        Some(Item::new(id, attributes, &self.templates))
    }
}

impl Catalog for DynamoDbCatalog {
    async fn items(
        &self,
        ids: &[String],
        deadline: Instant,
    ) -> Result<HashMap<String, Arc<Item>>, UpstreamError> {
        // A duplicate key makes BatchGetItem fail, so each id is asked for once. An id no key can
        // be (empty, or over DynamoDB's 2048 bytes) is surely not in the table, and asking would
        // fail the whole call with a ValidationException: it is simply missing.
        let mut seen = HashSet::with_capacity(ids.len());
        let keys: Vec<HashMap<String, AttributeValue>> = ids
            .iter()
            .filter(|id| (1..=MAX_KEY_BYTES).contains(&id.len()))
            .filter(|id| seen.insert(id.as_str()))
            .map(|id| HashMap::from([("id".to_owned(), AttributeValue::S(id.clone()))]))
            .collect();

        let mut chunks = Vec::with_capacity(keys.len().div_ceil(MAX_KEYS_PER_CALL));
        let mut keys = keys.into_iter().peekable();
        while keys.peek().is_some() {
            chunks.push(keys.by_ref().take(MAX_KEYS_PER_CALL).collect::<Vec<_>>());
        }
        let results = try_join_all(
            chunks
                .into_iter()
                .map(|chunk| self.fetch_chunk(chunk, deadline)),
        )
        .await?;

        Ok(results
            .into_iter()
            .flatten()
            .map(|item| (item.id().to_owned(), Arc::new(item)))
            .collect())
    }
}

fn decode_value(value: AttributeValue) -> Option<Value> {
    Some(match value {
        AttributeValue::S(s) => Value::String(s),
        AttributeValue::N(n) => Value::number(&n),
        AttributeValue::Bool(b) => Value::Bool(b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::L(list) => Value::List(list.into_iter().filter_map(decode_value).collect()),
        AttributeValue::M(map) => {
            let mut entries: Vec<(String, Value)> = map
                .into_iter()
                .filter_map(|(k, v)| decode_value(v).map(|v| (k, v)))
                .collect();
            entries.sort_by(|(a, _), (b, _)| a.cmp(b));
            Value::Map(entries)
        }
        AttributeValue::Ss(strings) => {
            Value::List(strings.into_iter().map(Value::String).collect())
        }
        AttributeValue::Ns(numbers) => {
            Value::List(numbers.iter().map(|n| Value::number(n)).collect())
        }
        AttributeValue::B(blob) => Value::String(aws_smithy_types::base64::encode(blob.as_ref())),
        AttributeValue::Bs(blobs) => Value::List(
            blobs
                .iter()
                .map(|b| Value::String(aws_smithy_types::base64::encode(b.as_ref())))
                .collect(),
        ),
        // A type newer than this SDK: leave it out rather than misrender it.
        _ => return None,
    })
}
