//! Loads the item catalog into the DynamoDB items table.
//!
//! load-items --table TABLE --file items.csv|items.jsonl [--dry-run] [--prune [--force]] [--concurrency 8]
//!
//! The file is validated whole before anything is written, against everything DynamoDB itself
//! would refuse: every problem is reported with its line and, if there is any, nothing is written
//! and the exit code is 1. Writes are BatchWriteItem calls of 25 items, several in flight,
//! unprocessed items retried with jittered backoff. Loading the same file again rewrites the same
//! items; `--prune` also deletes items the file no longer has, but refuses (before writing
//! anything) to empty the table or to delete more than a tenth of it unless `--force` is given,
//! since a truncated export looks just like a shrunken catalog.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use clap::Parser;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use personalize_braze_core::dataset;
use personalize_braze_core::encoding::backoff;
use personalize_braze_core::item::{Value, column_attribute, is_json_number};

/// DynamoDB's limit on one item.
const MAX_ITEM_BYTES: usize = 400 * 1024;
/// The largest share of the table `--prune` deletes without `--force`.
const MAX_PRUNE_SHARE: f64 = 0.10;
/// Ids a dry run lists of those `--prune` would delete.
const PRUNE_SAMPLE: usize = 20;
/// BatchWriteItem's limit on requests per call.
const BATCH: usize = 25;

type Row = HashMap<String, AttributeValue>;

/// Loads an items file (Personalize's items CSV, or JSON Lines) into the DynamoDB items table the
/// endpoint reads. The whole file is checked first: a bad file writes nothing.
#[derive(Debug, Parser)]
#[command(name = "load-items", version)]
struct Args {
    /// The DynamoDB items table (not needed for a plain --dry-run)
    #[arg(long, env = "ITEMS_TABLE", value_name = "TABLE", default_value = "")]
    table: String,
    /// The items: a CSV with ITEM_ID and metadata columns, or JSON Lines
    #[arg(long, visible_alias = "file", value_name = "items.csv|items.jsonl")]
    items: PathBuf,
    /// Check the file (and with --prune, say what would be deleted); write nothing
    #[arg(long)]
    dry_run: bool,
    /// Also delete the table's items the file lacks (at most 10% of the table without --force)
    #[arg(long)]
    prune: bool,
    /// Let --prune delete more than 10% of the table
    #[arg(long, requires = "prune")]
    force: bool,
    /// BatchWriteItem calls in flight (1-64)
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..=64))]
    concurrency: u8,
}

impl Args {
    /// The table is needed unless the run only checks the file.
    fn check(&self) -> Result<(), String> {
        let only_checks = self.dry_run && !self.prune;
        if self.table.is_empty() && !only_checks {
            return Err("--table (or ITEMS_TABLE) is required, but for a plain --dry-run".into());
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // `--help` and `--version` on stdout with 0; a usage error names the flag, with 2.
    let args = Args::parse();
    if let Err(e) = args.check() {
        eprintln!("load-items: {e}");
        return ExitCode::from(2);
    }
    let rows = match read(&args.items) {
        Ok(rows) => rows,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!(
                "load-items: {} problem(s) in {}; nothing was written",
                problems.len(),
                args.items.display()
            );
            return ExitCode::FAILURE;
        }
    };
    if args.dry_run && !args.prune {
        println!(
            "{}: {} items, all valid (dry run: nothing written)",
            args.items.display(),
            rows.len()
        );
        return ExitCode::SUCCESS;
    }

    let sdk = personalize_braze_aws::sdk::batch_sdk_config().await;
    let client = Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(10))
            .build(),
    );

    // What a prune would delete is decided, and refused if need be, before anything is written.
    let stale = if args.prune {
        let keep: HashSet<&str> = rows
            .iter()
            .filter_map(|r| r.get("id")?.as_s().ok().map(String::as_str))
            .collect();
        match stale_ids(&client, &args.table, &keep).await {
            Ok(plan) => {
                let verdict = plan.verdict(args.force);
                println!("{}", plan.describe(&args.table, &args.items, args.dry_run));
                if let Err(refusal) = &verdict {
                    eprintln!("load-items: {refusal}");
                }
                if args.dry_run {
                    return ExitCode::SUCCESS;
                }
                if verdict.is_err() {
                    eprintln!("load-items: nothing was written");
                    return ExitCode::FAILURE;
                }
                plan.stale
            }
            Err(e) => {
                eprintln!("load-items: reading {} failed: {e}", args.table);
                return ExitCode::FAILURE;
            }
        }
    } else {
        Vec::new()
    };

    let started = Instant::now();
    let written = match write(&client, &args.table, rows, usize::from(args.concurrency)).await {
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
        match delete(&client, &args.table, stale, usize::from(args.concurrency)).await {
            Ok(deleted) => println!(
                "pruned {deleted} items that {} no longer has",
                args.items.display()
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
struct PrunePlan {
    stale: Vec<String>,
    table_items: usize,
    file_items: usize,
}

impl PrunePlan {
    /// `Err` says why the prune is refused without `--force`.
    fn verdict(&self, force: bool) -> Result<(), String> {
        if force || self.stale.is_empty() {
            return Ok(());
        }
        if self.file_items == 0 {
            return Err(format!(
                "refusing to prune: the file has no items, so every one of the {} items in the \
                 table would be deleted; pass --force if the table is really to be emptied",
                self.table_items
            ));
        }
        let share = self.stale.len() as f64 / self.table_items as f64;
        if share > MAX_PRUNE_SHARE {
            return Err(format!(
                "refusing to prune: {} of the {} items in the table ({:.0}%) would be deleted, \
                 more than the {:.0}% --prune deletes without --force; check that the file is \
                 complete (a truncated export looks like this), or pass --force",
                self.stale.len(),
                self.table_items,
                share * 100.0,
                MAX_PRUNE_SHARE * 100.0
            ));
        }
        Ok(())
    }

    fn describe(&self, table: &str, file: &Path, dry_run: bool) -> String {
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
async fn stale_ids(
    client: &Client,
    table: &str,
    keep: &HashSet<&str>,
) -> Result<PrunePlan, String> {
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
        let item = item.map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())?;
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
async fn delete(
    client: &Client,
    table: &str,
    stale: Vec<String>,
    concurrency: usize,
) -> Result<usize, String> {
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
    fn arguments_are_named_as_in_every_tool_and_checked() {
        let parse = |text: &str| {
            Args::try_parse_from(std::iter::once("load-items").chain(text.split_whitespace()))
        };
        let args = parse("--table t --items i.csv --prune --force --concurrency 4").unwrap();
        assert_eq!((args.table.as_str(), args.concurrency), ("t", 4));
        assert!(args.prune && args.force && args.check().is_ok());
        // The flag's older name still works.
        assert_eq!(
            parse("--table t --file i.csv").unwrap().items,
            PathBuf::from("i.csv")
        );
        if std::env::var_os("ITEMS_TABLE").is_none() {
            assert!(parse("--items i.csv --dry-run").unwrap().check().is_ok());
            assert!(parse("--items i.csv").unwrap().check().is_err());
        }
        for (bad, flag) in [
            ("--table t", "--items"),
            ("--table t --items i.csv --force", "--prune"),
            ("--table t --items i.csv --concurrency 65", "--concurrency"),
            ("--table t --items i.csv --bogus", "--bogus"),
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
            assert!(err.to_string().contains(flag), "{bad}: {err}");
        }
        assert_eq!(parse("--version").unwrap_err().exit_code(), 0);
    }

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
