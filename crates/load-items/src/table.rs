//! The table side: BatchWriteItem calls of 25 items, several in flight, unprocessed items sent
//! again with jittered backoff; and `--prune`'s plan, refused before anything is written when it
//! would empty the table or delete more than a tenth of it.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use personalize_braze_core::encoding::backoff;

use crate::Row;

/// The largest share of the table `--prune` deletes without `--force`.
pub const MAX_PRUNE_SHARE: f64 = 0.10;
/// Ids a dry run lists of those `--prune` would delete.
const PRUNE_SAMPLE: usize = 20;
/// BatchWriteItem's limit on requests per call.
const BATCH: usize = 25;

/// A write, scan or delete that did not finish.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// DynamoDB refused or failed a call (after the SDK's own retries).
    #[error("{0}")]
    Request(String),
    /// Throttling that would not drain.
    #[error("{items} items still unprocessed after {retries} retries")]
    Unprocessed { items: usize, retries: u32 },
}

/// Why `--prune` will not run without `--force`.
#[derive(Debug, thiserror::Error)]
pub enum PruneRefused {
    #[error(
        "refusing to prune: the file has no items, so every one of the {table_items} items in the \
         table would be deleted; pass --force if the table is really to be emptied"
    )]
    EmptyFile { table_items: usize },
    #[error(
        "refusing to prune: {stale} of the {table_items} items in the table ({percent:.0}%) would \
         be deleted, more than the {limit:.0}% --prune deletes without --force; check that the file \
         is complete (a truncated export looks like this), or pass --force",
        limit = MAX_PRUNE_SHARE * 100.0
    )]
    TooMuch {
        stale: usize,
        table_items: usize,
        percent: f64,
    },
}

/// What a write did.
pub struct Written {
    pub items: usize,
    /// BatchWriteItem calls sent again for their unprocessed items.
    pub retries: u64,
}

/// Writes every row, `concurrency` BatchWriteItem calls in flight; `written` hears of each
/// batch's items as they land.
pub async fn write(
    client: &Client,
    table: &str,
    rows: Vec<Row>,
    concurrency: usize,
    written: &(dyn Fn(u64) + Sync),
) -> Result<Written, TableError> {
    let items = rows.len();
    let retries = AtomicU64::new(0);
    let requests: Vec<WriteRequest> = rows
        .into_iter()
        .map(|row| {
            let put = PutRequest::builder()
                .set_item(Some(row))
                .build()
                .map_err(|e| TableError::Request(e.to_string()))?;
            Ok(WriteRequest::builder().put_request(put).build())
        })
        .collect::<Result<_, TableError>>()?;
    let batches: Vec<Vec<WriteRequest>> = requests.chunks(BATCH).map(<[_]>::to_vec).collect();
    stream::iter(batches.into_iter().map(Ok))
        .try_for_each_concurrent(concurrency, |batch| {
            let retries = &retries;
            async move {
                let n = batch.len() as u64;
                send_batch(client, table, batch, retries).await?;
                written(n);
                Ok::<(), TableError>(())
            }
        })
        .await?;
    Ok(Written {
        items,
        retries: retries.into_inner(),
    })
}

/// One BatchWriteItem, resending `UnprocessedItems` with full-jitter backoff until none are left.
async fn send_batch(
    client: &Client,
    table: &str,
    mut batch: Vec<WriteRequest>,
    retries: &AtomicU64,
) -> Result<(), TableError> {
    let mut attempt = 0u32;
    loop {
        let output = client
            .batch_write_item()
            .request_items(table, batch)
            .send()
            .await
            .map_err(|e| TableError::Request(DisplayErrorContext(e).to_string()))?;
        batch = output
            .unprocessed_items
            .and_then(|mut u| u.remove(table))
            .unwrap_or_default();
        if batch.is_empty() {
            return Ok(());
        }
        if attempt == 12 {
            return Err(TableError::Unprocessed {
                items: batch.len(),
                retries: attempt,
            });
        }
        retries.fetch_add(1, Ordering::Relaxed);
        let wait = backoff(
            attempt,
            Duration::from_millis(50),
            Duration::from_millis(3200),
        );
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

/// What `--prune` would do: the table's ids the file lacks, out of how many.
pub struct PrunePlan {
    pub stale: Vec<String>,
    pub table_items: usize,
    pub file_items: usize,
}

impl PrunePlan {
    /// `Err` says why the prune is refused without `--force`.
    pub fn verdict(&self, force: bool) -> Result<(), PruneRefused> {
        if force || self.stale.is_empty() {
            return Ok(());
        }
        if self.file_items == 0 {
            return Err(PruneRefused::EmptyFile {
                table_items: self.table_items,
            });
        }
        let share = self.stale.len() as f64 / self.table_items as f64;
        if share > MAX_PRUNE_SHARE {
            return Err(PruneRefused::TooMuch {
                stale: self.stale.len(),
                table_items: self.table_items,
                percent: share * 100.0,
            });
        }
        Ok(())
    }

    pub fn describe(&self, table: &str, file: &Path, dry_run: bool) -> String {
        let mut text = format!(
            "{table} has {} items; {} holds {}; --prune {} {} of them",
            self.table_items,
            file.display(),
            self.file_items,
            if dry_run { "would delete" } else { "deletes" },
            self.stale.len()
        );
        if dry_run && !self.stale.is_empty() {
            let mut sample: Vec<&str> = self.stale.iter().map(String::as_str).collect();
            sample.sort_unstable();
            let more = sample.len().saturating_sub(PRUNE_SAMPLE);
            sample.truncate(PRUNE_SAMPLE);
            text.push_str(&format!(": {}", sample.join(", ")));
            if more > 0 {
                text.push_str(&format!(" and {more} more"));
            }
            text.push_str(" (dry run: nothing written)");
        }
        text
    }
}

/// Scans the table's ids and keeps those not in `keep`.
pub async fn stale_ids(
    client: &Client,
    table: &str,
    keep: &HashSet<&str>,
) -> Result<PrunePlan, TableError> {
    let mut stale = Vec::new();
    let mut table_items = 0;
    let mut pages = client
        .scan()
        .table_name(table)
        .projection_expression("id")
        .into_paginator()
        .items()
        .send();
    while let Some(item) = pages.next().await {
        let item = item.map_err(|e| TableError::Request(DisplayErrorContext(e).to_string()))?;
        table_items += 1;
        if let Some(AttributeValue::S(id)) = item.get("id")
            && !keep.contains(id.as_str())
        {
            stale.push(id.clone());
        }
    }
    Ok(PrunePlan {
        stale,
        table_items,
        file_items: keep.len(),
    })
}

/// Deletes the items with these ids; returns how many.
pub async fn delete(
    client: &Client,
    table: &str,
    stale: Vec<String>,
    concurrency: usize,
) -> Result<usize, TableError> {
    let deleted = stale.len();
    let retries = AtomicU64::new(0);
    let requests: Vec<WriteRequest> = stale
        .into_iter()
        .map(|id| {
            let delete = DeleteRequest::builder()
                .key("id", AttributeValue::S(id))
                .build()
                .map_err(|e| TableError::Request(e.to_string()))?;
            Ok(WriteRequest::builder().delete_request(delete).build())
        })
        .collect::<Result<_, TableError>>()?;
    let batches: Vec<Vec<WriteRequest>> = requests.chunks(BATCH).map(<[_]>::to_vec).collect();
    stream::iter(batches)
        .map(|batch| send_batch(client, table, batch, &retries))
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(deleted)
}
