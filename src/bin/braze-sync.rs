//! Sends a Personalize batch inference output file to Braze: each user's recommended items,
//! joined with the catalog as the endpoint joins them, become one custom attribute (an array of
//! objects) set through `/users/track`.
//!
//! braze-sync FILE|s3://BUCKET/KEY [--items items.csv | --table TABLE] [--attribute NAME]
//!            [--count N] [--checkpoint PATH] [--rate 3000/3s|off] [--concurrency N] [--dry-run]
//!
//! `BRAZE_REST_ENDPOINT` and `BRAZE_API_KEY` (or `BRAZE_API_KEY_SECRET_ARN`, read from Secrets
//! Manager) say where to send. Inside Lambda (`AWS_LAMBDA_RUNTIME_API` set) the same code runs
//! for each S3 object an `Object Created` event names, configured by the environment alone.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use aws_config::{BehaviorVersion, SdkConfig};
use indicatif::{ProgressBar, ProgressStyle};
use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use personalize_braze::catalog::Catalog;
use personalize_braze::catalog::cache::{CacheBudget, CachedCatalog};
use personalize_braze::catalog::dynamodb::DynamoDbCatalog;
use personalize_braze::catalog::file::FileCatalog;
use personalize_braze::dataset;
use personalize_braze::item::UrlTemplates;
use personalize_braze::sync::braze::Braze;
use personalize_braze::sync::checkpoint::{Checkpoint, InputIdentity};
use personalize_braze::sync::limiter::{Limiter, RateLimit};
use personalize_braze::sync::{self, Destination, Options, Summary};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufRead, BufReader};

const USAGE: &str = "usage: braze-sync FILE|s3://BUCKET/KEY [--items items.csv | --table TABLE] [--attribute NAME] [--count N] [--checkpoint PATH] [--rate 3000/3s|off] [--concurrency N] [--dry-run]";

/// Read buffer for the input: large enough that S3's stream is read in few calls.
const READ_BUFFER: usize = 256 * 1024;

struct Args {
    input: String,
    items: Option<PathBuf>,
    table: Option<String>,
    checkpoint: Option<PathBuf>,
    rate: Option<RateLimit>,
    dry_run: bool,
    options: Options,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut input = None;
    let mut parsed = Args {
        input: String::new(),
        items: None,
        table: std::env::var("ITEMS_TABLE").ok().filter(|t| !t.is_empty()),
        checkpoint: None,
        rate: Some(RateLimit::BRAZE_DEFAULT),
        dry_run: false,
        options: Options::default(),
    };
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--items" => parsed.items = Some(PathBuf::from(value("--items")?)),
            "--table" => parsed.table = Some(value("--table")?),
            "--attribute" => parsed.options.attribute = attribute_name(&value("--attribute")?)?,
            "--count" => {
                parsed.options.count = value("--count")?
                    .parse()
                    .ok()
                    .filter(|n| (1..=500).contains(n))
                    .ok_or("--count needs a number from 1 to 500")?
            }
            "--checkpoint" => parsed.checkpoint = Some(PathBuf::from(value("--checkpoint")?)),
            "--rate" => {
                parsed.rate = match value("--rate")?.as_str() {
                    "off" => None,
                    rate => Some(RateLimit::parse(rate)?),
                }
            }
            "--concurrency" => {
                parsed.options.concurrency = value("--concurrency")?
                    .parse()
                    .ok()
                    .filter(|n| (1..=256).contains(n))
                    .ok_or("--concurrency needs a number from 1 to 256")?
            }
            "--dry-run" => parsed.dry_run = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other if other.starts_with('-') => {
                return Err(format!("unknown argument {other:?}\n{USAGE}"));
            }
            other if input.is_none() => input = Some(other.to_owned()),
            other => return Err(format!("one input only; {other:?} is a second\n{USAGE}")),
        }
    }
    parsed.input = input.ok_or_else(|| format!("the input file is required\n{USAGE}"))?;
    if parsed.items.is_some() == parsed.table.is_some() {
        return Err(format!(
            "the catalog is --items FILE (local mode) or --table TABLE (or ITEMS_TABLE), one of them\n{USAGE}"
        ));
    }
    Ok(parsed)
}

/// Braze's custom attribute names: at most 255 characters, no spaces, not starting with `$`.
fn attribute_name(name: &str) -> Result<String, String> {
    if name.is_empty()
        || name.chars().count() > 255
        || name.contains(char::is_whitespace)
        || name.starts_with('$')
    {
        return Err(format!(
            "--attribute {name:?}: Braze attribute names are 1-255 characters, without spaces or a leading $"
        ));
    }
    Ok(name.to_owned())
}

#[tokio::main]
async fn main() -> ExitCode {
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    if in_lambda {
        logs.json().without_time().init();
        return match lambda().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "braze-sync cannot start");
                ExitCode::FAILURE
            }
        };
    }
    logs.init();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match cli(args).await {
        Ok(summary) => {
            print!("{summary}");
            if summary.complete() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("braze-sync: {e}");
            ExitCode::from(2)
        }
    }
}

async fn cli(args: Args) -> Result<Summary, String> {
    // AWS only when something comes from it: S3, the table, or the key's secret. A dry run from
    // local files needs no account at all.
    let needs_aws = args.input.starts_with("s3://")
        || args.table.is_some()
        || (!args.dry_run && std::env::var_os("BRAZE_API_KEY").is_none());
    let sdk = if needs_aws {
        aws_config::defaults(BehaviorVersion::latest()).load().await
    } else {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .build()
    };
    let destination = if args.dry_run {
        None
    } else {
        Some(braze_from_env(&sdk).await?)
    };
    let (reader, identity, len) = open_input(&sdk, &args.input).await?;
    let mut checkpoint = match (&destination, args.checkpoint.clone()) {
        (None, _) => None,
        (Some(_), Some(path)) => Some(Checkpoint::open(&path, &identity)?),
        (Some(_), None) => Some(Checkpoint::open(
            &default_checkpoint(&args.input),
            &identity,
        )?),
    };
    if let Some(checkpoint) = &checkpoint {
        eprintln!("braze-sync: checkpoint {}", checkpoint.path().display());
    }
    let bar = progress(len);
    let limiter = Limiter::new(args.rate);
    let destination = match &destination {
        Some(braze) => Destination::Braze {
            braze,
            limiter: &limiter,
        },
        None => Destination::DryRun,
    };
    let read = Arc::new(AtomicU64::new(0));
    let ticker = {
        let (bar, read) = (bar.clone(), read.clone());
        tokio::spawn(async move {
            loop {
                bar.set_position(read.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let report = |problem: &sync::Problem| bar.suspend(|| eprintln!("{problem}"));
    let summary = match (&args.items, &args.table) {
        (Some(items), _) => {
            let records = dataset::read_items(items).map_err(|e| e.to_string())?;
            let catalog = FileCatalog::new(&records, &url_templates()?);
            drop(records);
            run(
                reader,
                &catalog,
                destination,
                checkpoint.as_mut(),
                &args.options,
                &read,
                report,
            )
            .await
        }
        (None, Some(table)) => {
            let catalog = table_catalog(&sdk, table)?;
            run(
                reader,
                &catalog,
                destination,
                checkpoint.as_mut(),
                &args.options,
                &read,
                report,
            )
            .await
        }
        (None, None) => unreachable!("parse_args requires a catalog"),
    };
    ticker.abort();
    bar.finish_and_clear();
    Ok(summary)
}

async fn run(
    reader: Box<dyn AsyncBufRead + Unpin + Send>,
    catalog: &impl Catalog,
    destination: Destination<'_>,
    checkpoint: Option<&mut Checkpoint>,
    options: &Options,
    read: &AtomicU64,
    report: impl FnMut(&sync::Problem),
) -> Summary {
    sync::run(
        reader,
        catalog,
        destination,
        checkpoint,
        options,
        read,
        report,
    )
    .await
}

/// `./braze-sync.<input's file name>.checkpoint`: in the working directory, since the input's
/// own may be read-only or a bucket.
fn default_checkpoint(input: &str) -> PathBuf {
    let name = input
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("input");
    PathBuf::from(format!("braze-sync.{name}.checkpoint"))
}

fn progress(len: Option<u64>) -> ProgressBar {
    let bar = ProgressBar::new(len.unwrap_or(0));
    bar.set_style(
        ProgressStyle::with_template(
            "braze-sync {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

fn url_templates() -> Result<UrlTemplates, String> {
    // Empty is unset, as the template passes an empty parameter.
    let template = |name: &str| match std::env::var(name).ok().filter(|t| !t.is_empty()) {
        Some(t) if !t.contains("{id}") => Err(format!("{name} must contain {{id}}")),
        other => Ok(other),
    };
    Ok(UrlTemplates {
        url: template("ITEM_URL_TEMPLATE")?,
        image: template("IMAGE_URL_TEMPLATE")?,
    })
}

/// The items table through a cache: a batch file names the same popular items again and again.
fn table_catalog(sdk: &SdkConfig, table: &str) -> Result<CachedCatalog<DynamoDbCatalog>, String> {
    let client = aws_sdk_dynamodb::Client::new(sdk);
    let catalog = DynamoDbCatalog::new(client, table, url_templates()?);
    let budget = CacheBudget {
        items: 200_000,
        bytes: 256 * 1024 * 1024,
    };
    Ok(CachedCatalog::new(
        catalog,
        budget,
        Duration::from_secs(3600),
    ))
}

/// The Braze client from `BRAZE_REST_ENDPOINT` and the key: `BRAZE_API_KEY`, or the secret
/// `BRAZE_API_KEY_SECRET_ARN` names (its plain text, or an `api_key` field of its JSON).
async fn braze_from_env(sdk: &SdkConfig) -> Result<Braze, String> {
    let endpoint = std::env::var("BRAZE_REST_ENDPOINT").map_err(|_| {
        "BRAZE_REST_ENDPOINT is not set (your workspace's REST endpoint, e.g. https://rest.iad-01.braze.com)".to_owned()
    })?;
    let key = match (
        std::env::var("BRAZE_API_KEY"),
        std::env::var("BRAZE_API_KEY_SECRET_ARN"),
    ) {
        (Ok(key), _) => key,
        (Err(_), Ok(secret)) => secret_key(sdk, &secret).await?,
        (Err(_), Err(_)) => {
            return Err("BRAZE_API_KEY (or BRAZE_API_KEY_SECRET_ARN) is not set; the key needs the users.track permission".into());
        }
    };
    Braze::new(&endpoint, &key)
}

async fn secret_key(sdk: &SdkConfig, secret: &str) -> Result<String, String> {
    let client = aws_sdk_secretsmanager::Client::new(sdk);
    let value = client
        .get_secret_value()
        .secret_id(secret)
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot read the Braze key from {secret}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e)
            )
        })?;
    let text = value
        .secret_string()
        .ok_or_else(|| format!("secret {secret} holds no text"))?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(fields)) => fields
            .get("api_key")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("secret {secret} is JSON without an \"api_key\" field")),
        _ => Ok(text.trim().to_owned()),
    }
}

type Input = (
    Box<dyn AsyncBufRead + Unpin + Send>,
    InputIdentity,
    Option<u64>,
);

/// The input as a stream, what it is, and its length when known.
async fn open_input(sdk: &SdkConfig, input: &str) -> Result<Input, String> {
    if let Some(location) = input.strip_prefix("s3://") {
        let (bucket, key) = location
            .split_once('/')
            .filter(|(b, k)| !b.is_empty() && !k.is_empty())
            .ok_or_else(|| format!("{input:?} is not s3://BUCKET/KEY"))?;
        return open_s3(&aws_sdk_s3::Client::new(sdk), bucket, key).await;
    }
    let path = Path::new(input);
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("cannot open {input}: {e}"))?;
    let meta = file
        .metadata()
        .await
        .map_err(|e| format!("cannot read {input}: {e}"))?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let identity = InputIdentity {
        input: std::fs::canonicalize(path)
            .map_or_else(|_| input.to_owned(), |p| p.display().to_string()),
        version: format!("{} bytes, modified {modified}", meta.len()),
    };
    Ok((
        Box::new(BufReader::with_capacity(READ_BUFFER, file)),
        identity,
        Some(meta.len()),
    ))
}

async fn open_s3(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Input, String> {
    let object = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot read s3://{bucket}/{key}: {}",
                aws_sdk_s3::error::DisplayErrorContext(e)
            )
        })?;
    let identity = InputIdentity {
        input: format!("s3://{bucket}/{key}"),
        version: object.e_tag().unwrap_or_default().to_owned(),
    };
    let len = object.content_length().and_then(|n| u64::try_from(n).ok());
    let reader = BufReader::with_capacity(READ_BUFFER, object.body.into_async_read());
    Ok((Box::new(reader), identity, len))
}

/// Lambda: each `Object Created` event's objects, sent with the environment's settings. A run
/// that leaves users unsent fails the invocation, so Lambda tries again; the checkpoint in
/// `/tmp` lets a retry in the same environment continue rather than start over.
async fn lambda() -> Result<(), lambda_runtime::Error> {
    let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let braze = braze_from_env(&sdk).await?;
    let table = std::env::var("ITEMS_TABLE").map_err(|_| "ITEMS_TABLE is not set")?;
    let catalog = table_catalog(&sdk, &table)?;
    let mut options = Options::default();
    if let Ok(name) = std::env::var("BRAZE_ATTRIBUTE") {
        options.attribute = attribute_name(&name)?;
    }
    if let Ok(count) = std::env::var("RECOMMENDATION_COUNT") {
        options.count = count
            .parse()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or("RECOMMENDATION_COUNT must be a number from 1 to 500")?;
    }
    let rate = match std::env::var("BRAZE_RATE_LIMIT").as_deref() {
        Ok("off") => None,
        Ok(rate) => Some(RateLimit::parse(rate)?),
        Err(_) => Some(RateLimit::BRAZE_DEFAULT),
    };
    let limiter = Limiter::new(rate);
    let s3 = aws_sdk_s3::Client::new(&sdk);
    let context = (&braze, &limiter, &catalog, &options, &s3);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        let (braze, limiter, catalog, options, s3) = context;
        let objects = objects_in(&event.payload);
        if objects.is_empty() {
            tracing::warn!(event = %event.payload, "the event names no S3 object; nothing to do");
        }
        let mut summaries = Vec::new();
        for (bucket, key) in objects {
            let (reader, identity, _) = open_s3(s3, &bucket, &key).await?;
            let digest = Sha256::digest(format!("{}\n{}", identity.input, identity.version));
            let name: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            let path = std::env::temp_dir().join(format!("braze-sync-{name}.checkpoint"));
            let mut checkpoint = Checkpoint::open(&path, &identity)?;
            let read = AtomicU64::new(0);
            let destination = Destination::Braze { braze, limiter };
            let summary = sync::run(reader, catalog, destination, Some(&mut checkpoint), options, &read, |p| {
                tracing::warn!(line = p.line, user = p.key.as_deref().unwrap_or(""), kind = p.kind, detail = %p.detail, "user not sent");
            })
            .await;
            tracing::info!(
                input = %identity.input,
                sent = summary.tally.sent,
                skipped = summary.tally.skipped,
                failed = summary.tally.failed,
                unsent = summary.unsent,
                requests = summary.requests,
                retries = summary.retries,
                seconds = summary.elapsed.as_secs_f64(),
                "braze-sync finished"
            );
            if summary.stopped.is_some() || summary.unsent > 0 {
                return Err(lambda_runtime::Error::from(format!(
                    "s3://{bucket}/{key}: {}",
                    summary.to_string().trim_end()
                )));
            }
            summaries.push(serde_json::json!({
                "input": identity.input,
                "sent": summary.tally.sent,
                "skipped": summary.tally.skipped,
                "failed": summary.tally.failed,
            }));
        }
        Ok::<_, lambda_runtime::Error>(Value::Array(summaries))
    }))
    .await
}

/// The objects an S3 event notification (`Records[].s3`) or an EventBridge `Object Created`
/// event (`detail`) names.
fn objects_in(event: &Value) -> Vec<(String, String)> {
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        return records
            .iter()
            .filter_map(|r| {
                let s3 = r.get("s3")?;
                let bucket = s3.pointer("/bucket/name")?.as_str()?;
                // Notification keys are URL-encoded, spaces as `+`.
                let key = s3.pointer("/object/key")?.as_str()?.replace('+', " ");
                let key = percent_decode(&key)?;
                Some((bucket.to_owned(), key))
            })
            .collect();
    }
    let bucket = event.pointer("/detail/bucket/name").and_then(Value::as_str);
    let key = event.pointer("/detail/object/key").and_then(Value::as_str);
    match (bucket, key) {
        (Some(bucket), Some(key)) => vec![(bucket.to_owned(), key.to_owned())],
        _ => Vec::new(),
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Result<Args, String> {
        parse_args(text.split_whitespace().map(String::from))
    }

    #[test]
    fn arguments_need_an_input_and_exactly_one_catalog() {
        let parsed = args("out.json --items items.csv --count 10 --rate 100/1s").unwrap();
        assert_eq!(parsed.input, "out.json");
        assert_eq!(parsed.options.count, 10);
        assert_eq!(parsed.rate.map(|r| r.requests), Some(100));
        assert!(
            args("out.json --rate off --items i.csv")
                .unwrap()
                .rate
                .is_none()
        );
        // ITEMS_TABLE in the environment is a catalog of its own.
        if std::env::var_os("ITEMS_TABLE").is_some() {
            return;
        }
        for bad in [
            "--items i.csv",
            "out.json",
            "out.json --items i.csv --table t",
            "out.json --items i.csv --count 0",
            "out.json --items i.csv --attribute $x",
            "out.json --items i.csv --attribute",
            "a b --items i.csv",
            "out.json --items i.csv --bogus",
        ] {
            assert!(args(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn both_kinds_of_object_created_events_name_their_objects() {
        let notification = serde_json::json!({"Records": [{"s3": {"bucket": {"name": "b"}, "object": {"key": "out/users+2026%2F11.json.out"}}}]});
        assert_eq!(
            objects_in(&notification),
            vec![("b".to_owned(), "out/users 2026/11.json.out".to_owned())]
        );
        let bridge = serde_json::json!({"detail-type": "Object Created", "detail": {"bucket": {"name": "b"}, "object": {"key": "out/users.json.out"}}});
        assert_eq!(
            objects_in(&bridge),
            vec![("b".to_owned(), "out/users.json.out".to_owned())]
        );
        assert!(objects_in(&serde_json::json!({})).is_empty());
    }
}
