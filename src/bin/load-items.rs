//! Loads the item catalog into the DynamoDB items table.
//!
//! load-items --table TABLE --file items.csv|items.jsonl [--dry-run] [--prune] [--concurrency 8]
//!
//! The file is validated whole before anything is written: every problem is reported with its
//! line and, if there is any, nothing is written and the exit code is 1. Writes are BatchWriteItem
//! calls of 25 items, several in flight, unprocessed items retried with jittered backoff.
//! Loading the same file again rewrites the same items; `--prune` also deletes items the file no
//! longer has.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use personalize_braze::catalog::is_json_number;
use personalize_braze::dataset;

/// DynamoDB's limit on one item.
const MAX_ITEM_BYTES: usize = 400 * 1024;
/// BatchWriteItem's limit on requests per call.
const BATCH: usize = 25;

type Row = HashMap<String, AttributeValue>;

struct Args {
    table: String,
    file: PathBuf,
    dry_run: bool,
    prune: bool,
    concurrency: usize,
}

const USAGE: &str = "usage: load-items --table TABLE --file items.csv|items.jsonl [--dry-run] [--prune] [--concurrency N]";

fn parse_args() -> Result<Args, String> {
    let mut table = None;
    let mut file = None;
    let mut args = Args {
        table: String::new(),
        file: PathBuf::new(),
        dry_run: false,
        prune: false,
        concurrency: 8,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--table" => table = it.next(),
            "--file" => file = it.next().map(PathBuf::from),
            "--dry-run" => args.dry_run = true,
            "--prune" => args.prune = true,
            "--concurrency" => {
                args.concurrency = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| (1..=64).contains(n))
                    .ok_or("--concurrency needs a number from 1 to 64")?
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    args.file = file.ok_or_else(|| format!("--file is required\n{USAGE}"))?;
    match table {
        Some(t) => args.table = t,
        None if args.dry_run => {}
        None => return Err(format!("--table is required\n{USAGE}")),
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rows = match read(&args.file) {
        Ok(rows) => rows,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!(
                "load-items: {} problem(s) in {}; nothing was written",
                problems.len(),
                args.file.display()
            );
            return ExitCode::FAILURE;
        }
    };
    if args.dry_run {
        println!(
            "{}: {} items, all valid (dry run: nothing written)",
            args.file.display(),
            rows.len()
        );
        return ExitCode::SUCCESS;
    }

    let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let client = Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(10))
            .build(),
    );
    let keep: HashSet<String> = rows
        .iter()
        .filter_map(|r| r.get("id")?.as_s().ok().cloned())
        .collect();
    let started = Instant::now();
    let written = match write(&client, &args.table, rows, args.concurrency).await {
        Ok(stats) => stats,
        Err(e) => {
            eprintln!("load-items: writing to {} failed: {e}", args.table);
            return ExitCode::FAILURE;
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "wrote {} items to {} in {elapsed:.1} s ({:.0} items/s, {} retried batches)",
        written.items,
        args.table,
        written.items as f64 / elapsed.max(1e-9),
        written.retries
    );
    if args.prune {
        match prune(&client, &args.table, &keep, args.concurrency).await {
            Ok(deleted) => println!(
                "pruned {deleted} items that {} no longer has",
                args.file.display()
            ),
            Err(e) => {
                eprintln!("load-items: pruning {} failed: {e}", args.table);
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// The whole file as DynamoDB items, or every problem in it.
fn read(path: &Path) -> Result<Vec<Row>, Vec<String>> {
    let json_lines = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("jsonl" | "ndjson")
    );
    let rows = if json_lines {
        read_json_lines(path)?
    } else {
        read_csv(path)?
    };
    let problems: Vec<String> = rows
        .iter()
        .filter_map(|(line, row)| {
            let size = item_size(row);
            (size > MAX_ITEM_BYTES).then(|| {
                format!(
                    "{}, line {line}: item is {size} bytes, over DynamoDB's 400 KB limit",
                    path.display()
                )
            })
        })
        .collect();
    if problems.is_empty() {
        Ok(rows.into_iter().map(|(_, row)| row).collect())
    } else {
        Err(problems)
    }
}

/// Same column rules as local mode: `ITEM_ID` is `id`, other columns lower-cased, JSON-number
/// text stored as a number (its exact text), everything else as a string, empty fields left out.
fn read_csv(path: &Path) -> Result<Vec<(u64, Row)>, Vec<String>> {
    let records = dataset::check_items(path)
        .map_err(|errors| errors.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
    Ok(records
        .into_iter()
        .enumerate()
        .map(|(n, record)| {
            let mut row: Row = record
                .fields
                .into_iter()
                .map(|(column, text)| {
                    let value = if is_json_number(&text) {
                        AttributeValue::N(text)
                    } else {
                        AttributeValue::S(text)
                    };
                    (column.to_lowercase(), value)
                })
                .collect();
            row.insert("id".into(), AttributeValue::S(record.id));
            (n as u64 + 2, row)
        })
        .collect())
}

/// One JSON object per line: `ITEM_ID` (or `id`) and attributes. Numbers keep their exact text.
fn read_json_lines(path: &Path) -> Result<Vec<(u64, Row)>, Vec<String>> {
    let file = std::fs::File::open(path)
        .map_err(|e| vec![format!("{}: cannot open: {e}", path.display())])?;
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for (n, line) in std::io::BufReader::new(file).split(b'\n').enumerate() {
        let line_no = n as u64 + 1;
        let at = |message: String| format!("{}, line {line_no}: {message}", path.display());
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
        let object: HashMap<String, Box<serde_json::value::RawValue>> =
            match serde_json::from_str(text) {
                Ok(object) => object,
                Err(e) => {
                    problems.push(at(format!("not a JSON object: {e}")));
                    continue;
                }
            };
        let mut row = Row::new();
        let mut id = None;
        for (key, raw) in object {
            let Some(value) = json_value(raw.get()) else {
                continue;
            };
            if key == "ITEM_ID" || key == "id" {
                id = value.as_s().ok().filter(|s| !s.is_empty()).cloned();
                continue;
            }
            row.insert(key.to_lowercase(), value);
        }
        let Some(id) = id else {
            problems.push(at("ITEM_ID is missing or not a non-empty string".into()));
            continue;
        };
        if let Some(first) = seen.insert(id.clone(), line_no) {
            problems.push(at(format!("ITEM_ID {id:?} repeats line {first}")));
            continue;
        }
        row.insert("id".into(), AttributeValue::S(id));
        rows.push((line_no, row));
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(problems)
    }
}

/// A JSON value as a DynamoDB attribute; `null` and empty strings are left out.
fn json_value(raw: &str) -> Option<AttributeValue> {
    let raw = raw.trim();
    if is_json_number(raw) {
        return Some(AttributeValue::N(raw.to_owned()));
    }
    match serde_json::from_str::<serde_json::Value>(raw).ok()? {
        serde_json::Value::String(s) if s.is_empty() => None,
        serde_json::Value::String(s) => Some(AttributeValue::S(s)),
        serde_json::Value::Bool(b) => Some(AttributeValue::Bool(b)),
        serde_json::Value::Null => None,
        serde_json::Value::Array(values) => Some(AttributeValue::L(
            values
                .iter()
                .filter_map(|v| json_value(&v.to_string()))
                .collect(),
        )),
        serde_json::Value::Object(map) => Some(AttributeValue::M(
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), json_value(&v.to_string())?)))
                .collect(),
        )),
        serde_json::Value::Number(n) => Some(AttributeValue::N(n.to_string())),
    }
}

/// DynamoDB's item size: attribute names plus values (numbers at most 21 bytes).
fn item_size(row: &Row) -> usize {
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

struct Written {
    items: usize,
    retries: u64,
}

fn progress(len: usize, what: &str) -> ProgressBar {
    // indicatif draws on stderr only when it is a terminal.
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} ({per_sec}, {eta} left)")
    {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    bar
}

async fn write(
    client: &Client,
    table: &str,
    rows: Vec<Row>,
    concurrency: usize,
) -> Result<Written, String> {
    let items = rows.len();
    let bar = progress(items, "writing");
    let retries = AtomicU64::new(0);
    let requests: Vec<WriteRequest> = rows
        .into_iter()
        .map(|row| {
            let put = PutRequest::builder()
                .set_item(Some(row))
                .build()
                .map_err(|e| e.to_string())?;
            Ok(WriteRequest::builder().put_request(put).build())
        })
        .collect::<Result<_, String>>()?;
    let batches: Vec<Vec<WriteRequest>> = requests.chunks(BATCH).map(<[_]>::to_vec).collect();
    stream::iter(batches.into_iter().map(Ok))
        .try_for_each_concurrent(concurrency, |batch| {
            let (bar, retries) = (&bar, &retries);
            async move {
                let n = batch.len() as u64;
                send_batch(client, table, batch, retries).await?;
                bar.inc(n);
                Ok::<(), String>(())
            }
        })
        .await?;
    bar.finish_and_clear();
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
) -> Result<(), String> {
    let mut attempt = 0u32;
    loop {
        let output = client
            .batch_write_item()
            .request_items(table, batch)
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())?;
        batch = output
            .unprocessed_items
            .and_then(|mut u| u.remove(table))
            .unwrap_or_default();
        if batch.is_empty() {
            return Ok(());
        }
        if attempt == 12 {
            return Err(format!(
                "{} items still unprocessed after {attempt} retries",
                batch.len()
            ));
        }
        retries.fetch_add(1, Ordering::Relaxed);
        let ceiling = Duration::from_millis(50 * 2u64.pow(attempt.min(6)));
        tokio::time::sleep(ceiling.mul_f64(fastrand::f64())).await;
        attempt += 1;
    }
}

/// Deletes every item whose id is not in `keep`; returns how many.
async fn prune(
    client: &Client,
    table: &str,
    keep: &HashSet<String>,
    concurrency: usize,
) -> Result<usize, String> {
    let mut stale = Vec::new();
    let mut pages = client
        .scan()
        .table_name(table)
        .projection_expression("id")
        .into_paginator()
        .items()
        .send();
    while let Some(item) = pages.next().await {
        let item = item.map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())?;
        if let Some(AttributeValue::S(id)) = item.get("id")
            && !keep.contains(id)
        {
            stale.push(id.clone());
        }
    }
    let deleted = stale.len();
    let retries = AtomicU64::new(0);
    let requests: Vec<WriteRequest> = stale
        .into_iter()
        .map(|id| {
            let delete = DeleteRequest::builder()
                .key("id", AttributeValue::S(id))
                .build()
                .map_err(|e| e.to_string())?;
            Ok(WriteRequest::builder().delete_request(delete).build())
        })
        .collect::<Result<_, String>>()?;
    let batches: Vec<Vec<WriteRequest>> = requests.chunks(BATCH).map(<[_]>::to_vec).collect();
    stream::iter(batches)
        .map(|batch| send_batch(client, table, batch, &retries))
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(deleted)
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
            json_value(r#"["a", 2]"#),
            Some(AttributeValue::L(vec![
                AttributeValue::S("a".into()),
                AttributeValue::N("2".into())
            ]))
        );
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
