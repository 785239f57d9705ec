//! Sends a Personalize batch inference output file to Braze: each user's recommended items,
//! joined with the catalog as the endpoint joins them, become one custom attribute (an array of
//! objects) set through `/users/track`.
//!
//! braze-sync FILE|s3://BUCKET/KEY [--items items.csv | --table TABLE] [options]; `--help` lists
//! them.
//!
//! `BRAZE_REST_ENDPOINT` and `BRAZE_API_KEY` (or `BRAZE_API_KEY_SECRET_ARN`, read from Secrets
//! Manager) say where to send. Inside Lambda (`AWS_LAMBDA_RUNTIME_API` set) the same code runs
//! for each S3 object an `Object Created` event names, configured by the environment alone.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use aws_config::{BehaviorVersion, SdkConfig};
use braze_sync::braze::{Braze, MAX_OBJECTS_PER_REQUEST, printable};
use braze_sync::checkpoint::{Checkpoint, InputIdentity};
use braze_sync::delta::{Delta, Setting};
use braze_sync::fields::Fields;
use braze_sync::limiter::{Limiter, RateLimit};
use braze_sync::{Destination, Journal, Options, Stop, Summary};
use clap::{ArgGroup, Parser};
use indicatif::{ProgressBar, ProgressStyle};
use lambda_runtime::{LambdaEvent, service_fn};
use personalize_braze_aws::dynamodb::DynamoDbCatalog;
use personalize_braze_core::catalog::Catalog;
use personalize_braze_core::catalog::cache::{CacheBudget, CachedCatalog};
use personalize_braze_core::dataset;
use personalize_braze_core::encoding::form_decode;
use personalize_braze_core::env::{self, Env, EnvError, invalid};
use personalize_braze_local::file_catalog::FileCatalog;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufRead, BufReader};

/// Sends a Personalize batch inference output file to Braze: each user's recommended items,
/// joined with the catalog, become one custom attribute (an array of objects) set through
/// /users/track.
///
/// BRAZE_REST_ENDPOINT (https://) and BRAZE_API_KEY, or BRAZE_API_KEY_SECRET_ARN, say where to
/// send.
///
/// Exit status: 0 every user sent, skipped or unchanged; 1 finished, but some users or lines
/// failed (each named on stderr); 2 could not start; 3 stopped early (key, endpoint, Braze
/// failing, or the input), nothing past the last finished batch recorded as done.
#[derive(Debug, Parser)]
#[command(name = "braze-sync", version)]
#[command(group(ArgGroup::new("catalog").required(true).args(["items", "table"])))]
struct Cli {
    /// The batch output: a file, or s3://BUCKET/KEY (streamed, never held whole)
    #[arg(value_name = "FILE|s3://BUCKET/KEY")]
    input: String,
    /// The catalog as an items CSV (local mode)
    #[arg(long, value_name = "FILE")]
    items: Option<PathBuf>,
    /// The catalog as the DynamoDB items table
    #[arg(long, env = "ITEMS_TABLE", value_name = "TABLE")]
    table: Option<String>,
    /// The custom attribute each user's list is written to
    #[arg(long, default_value = "recommendations", value_parser = attribute_name)]
    attribute: String,
    /// Items per user, the best first (1-500)
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u16).range(1..=500))]
    count: u16,
    /// Item fields, by the catalog's names, or `all`
    #[arg(long, default_value = "id,url,name,price,image", value_parser = Fields::parse)]
    fields: Fields,
    /// Users per request (1-75; some Braze contracts allow 50)
    #[arg(long, default_value_t = 75, value_parser = clap::value_parser!(u8).range(1..=75))]
    batch_size: u8,
    /// The most one user's array may take (Braze: 50 KB)
    #[arg(long, default_value_t = 51_200, value_parser = clap::value_parser!(u32).range(256..=1_048_576))]
    max_array_bytes: u32,
    /// Also create profiles for ids Braze does not know (default: `_update_existing_only`)
    #[arg(long)]
    create_profiles: bool,
    /// Send only users whose list changed since the last completed run
    #[arg(long)]
    changed_only: bool,
    /// Where --changed-only keeps its digests: a path or s3://BUCKET/KEY
    /// [default: ./braze-sync.ATTRIBUTE.state]
    #[arg(long, requires = "changed_only", value_name = "PATH|s3://BUCKET/KEY")]
    state: Option<String>,
    /// Where finished batches are recorded [default: ./braze-sync.INPUT.checkpoint]
    #[arg(long, value_name = "PATH")]
    checkpoint: Option<PathBuf>,
    /// Braze's rate limit for /users/track: N/Ds, N/Dms, or `off`
    #[arg(long, default_value = "3000/3s", value_parser = rate)]
    rate: Rate,
    /// Requests in flight (1-256)
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// Tries of one request (429, 408, 5xx, no answer) before the run stops (1-100)
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(1..=100))]
    max_attempts: u8,
    /// Join and check everything, send nothing (needs no key)
    #[arg(long)]
    dry_run: bool,
}

/// Read buffer for the input: large enough that S3's stream is read in few calls.
const READ_BUFFER: usize = 256 * 1024;

/// `--rate`: a limit, or none.
#[derive(Debug, Clone, Copy)]
struct Rate(Option<RateLimit>);

fn rate(text: &str) -> Result<Rate, String> {
    match text {
        "off" => Ok(Rate(None)),
        text => RateLimit::parse(text).map(|r| Rate(Some(r))),
    }
}

struct Args {
    input: String,
    items: Option<PathBuf>,
    table: Option<String>,
    checkpoint: Option<PathBuf>,
    rate: Option<RateLimit>,
    dry_run: bool,
    changed_only: bool,
    state: Option<String>,
    options: Options,
}

impl From<Cli> for Args {
    fn from(cli: Cli) -> Args {
        let table = cli.table.filter(|t| !t.is_empty() && cli.items.is_none());
        Args {
            input: cli.input,
            items: cli.items,
            table,
            checkpoint: cli.checkpoint,
            rate: cli.rate.0,
            dry_run: cli.dry_run,
            changed_only: cli.changed_only,
            state: cli.state,
            options: Options {
                attribute: cli.attribute,
                count: usize::from(cli.count),
                fields: cli.fields,
                batch_size: usize::from(cli.batch_size),
                max_array_bytes: cli.max_array_bytes as usize,
                update_existing_only: !cli.create_profiles,
                concurrency: usize::from(cli.concurrency),
                max_attempts: u32::from(cli.max_attempts),
            },
        }
    }
}

/// A number from `min` to `max`, or an error naming the variable.
/// Braze's custom attribute names: at most 255 characters, no spaces, not starting with `$`.
fn attribute_name(name: &str) -> Result<String, String> {
    if name.is_empty()
        || name.chars().count() > 255
        || name.contains(char::is_whitespace)
        || name.starts_with('$')
    {
        return Err(format!(
            "{name:?}: Braze attribute names are 1-255 characters, without spaces or a leading $"
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
        // Colours only for a person at a terminal, never escapes in a file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
    // `--help` and `--version` on stdout with 0; a usage error names the flag, with 2.
    let args = Args::from(Cli::parse());
    match cli(args).await {
        Ok(summary) => {
            print!("{summary}");
            ExitCode::from(summary.exit_code())
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
        || args
            .state
            .as_deref()
            .is_some_and(|s| s.starts_with("s3://"))
        || (!args.dry_run && std::env::var_os("BRAZE_API_KEY").is_none());
    let sdk = if needs_aws {
        personalize_braze_aws::sdk::batch_sdk_config().await
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
    let catalog_name = match (&args.items, &args.table) {
        (Some(items), _) => format!(
            "items file {}",
            std::fs::canonicalize(items)
                .unwrap_or_else(|_| items.clone())
                .display()
        ),
        (None, Some(table)) => format!("table {table}"),
        (None, None) => String::new(),
    };
    let state = args.changed_only.then(|| {
        StateStore::parse(
            args.state
                .clone()
                .unwrap_or_else(|| format!("braze-sync.{}.state", args.options.attribute)),
        )
    });
    let mut delta = match &state {
        Some(store) => Some(
            store
                .load(&sdk, setting(&args.options, &catalog_name))
                .await?,
        ),
        None => None,
    };
    if let (Some(store), Some(delta)) = (&state, &delta) {
        eprintln!(
            "braze-sync: --changed-only, {} users remembered in {store}",
            delta.previous_users()
        );
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
    let report = |problem: &braze_sync::Problem| bar.suspend(|| eprintln!("{problem}"));
    let journal = Journal {
        checkpoint: checkpoint.as_mut(),
        delta: delta.as_mut(),
    };
    let summary = match (&args.items, &args.table) {
        (Some(items), _) => {
            let records = dataset::read_items(items).map_err(|e| e.to_string())?;
            let templates = env::process().url_templates().map_err(|e| e.to_string())?;
            let catalog = FileCatalog::new(&records, &templates);
            drop(records);
            run(
                reader,
                &catalog,
                destination,
                journal,
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
                journal,
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
    if let (Some(store), Some(delta)) = (&state, &delta)
        && summary.finished()
        && !summary.dry_run
    {
        store.save(&sdk, delta).await?;
        eprintln!(
            "braze-sync: {} users' lists remembered in {store}",
            delta.users()
        );
    }
    Ok(summary)
}

/// The setting a delta state belongs to.
fn setting(options: &Options, catalog: &str) -> Setting {
    Setting {
        attribute: options.attribute.clone(),
        fields: options.fields.to_string(),
        count: options.count,
        catalog: catalog.to_owned(),
        update_existing_only: options.update_existing_only,
    }
}

/// Where the delta state lives: a local file, or an S3 object (Lambda).
enum StateStore {
    File(PathBuf),
    S3 { bucket: String, key: String },
}

impl std::fmt::Display for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateStore::File(path) => write!(f, "{}", path.display()),
            StateStore::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

impl StateStore {
    fn parse(text: String) -> StateStore {
        match text
            .strip_prefix("s3://")
            .and_then(|location| location.split_once('/'))
            .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        {
            Some((bucket, key)) => StateStore::S3 {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            },
            None => StateStore::File(PathBuf::from(text)),
        }
    }

    /// The last completed run's state, or an empty one when there is none yet.
    async fn load(&self, sdk: &SdkConfig, setting: Setting) -> Result<Delta, String> {
        let name = self.to_string();
        let bytes = match self {
            StateStore::File(path) => match std::fs::read(path) {
                Ok(bytes) => Some(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(format!("cannot read the state {name}: {e}")),
            },
            StateStore::S3 { bucket, key } => {
                let client = aws_sdk_s3::Client::new(sdk);
                match client.get_object().bucket(bucket).key(key).send().await {
                    Ok(object) => Some(
                        object
                            .body
                            .collect()
                            .await
                            .map_err(|e| format!("cannot read the state {name}: {e}"))?
                            .to_vec(),
                    ),
                    Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => None,
                    Err(e) => {
                        return Err(format!(
                            "cannot read the state {name}: {}",
                            aws_sdk_s3::error::DisplayErrorContext(e)
                        ));
                    }
                }
            }
        };
        match bytes {
            Some(bytes) => Delta::load(&bytes, setting, &name),
            None => Ok(Delta::new(setting)),
        }
    }

    /// Replaces the state with this run's, whole or not at all.
    async fn save(&self, sdk: &SdkConfig, delta: &Delta) -> Result<(), String> {
        let name = self.to_string();
        let bytes = delta.to_bytes();
        match self {
            StateStore::File(path) => {
                let temporary = path.with_extension("state-new");
                let write = || -> std::io::Result<()> {
                    let mut file = std::fs::File::create(&temporary)?;
                    std::io::Write::write_all(&mut file, &bytes)?;
                    file.sync_all()?;
                    std::fs::rename(&temporary, path)
                };
                write().map_err(|e| format!("cannot write the state {name}: {e}"))
            }
            StateStore::S3 { bucket, key } => aws_sdk_s3::Client::new(sdk)
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(bytes.into())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    format!(
                        "cannot write the state {name}: {}",
                        aws_sdk_s3::error::DisplayErrorContext(e)
                    )
                }),
        }
    }
}

async fn run(
    reader: Box<dyn AsyncBufRead + Unpin + Send>,
    catalog: &impl Catalog,
    destination: Destination<'_>,
    journal: Journal<'_>,
    options: &Options,
    read: &AtomicU64,
    report: impl FnMut(&braze_sync::Problem),
) -> Summary {
    braze_sync::run(reader, catalog, destination, journal, options, read, report).await
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

/// The items table through a cache: a batch file names the same popular items again and again.
fn table_catalog(sdk: &SdkConfig, table: &str) -> Result<CachedCatalog<DynamoDbCatalog>, String> {
    let client = aws_sdk_dynamodb::Client::new(sdk);
    let templates = env::process().url_templates().map_err(|e| e.to_string())?;
    let catalog = DynamoDbCatalog::new(client, table, templates);
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
    let env = env::process();
    let endpoint = env.get("BRAZE_REST_ENDPOINT").ok_or_else(|| {
        "BRAZE_REST_ENDPOINT is not set (your workspace's REST endpoint, e.g. https://rest.iad-01.braze.com)".to_owned()
    })?;
    let key = match (
        env.get("BRAZE_API_KEY"),
        env.get("BRAZE_API_KEY_SECRET_ARN"),
    ) {
        (Some(key), _) => key,
        (None, Some(secret)) => secret_key(sdk, &secret).await?,
        (None, None) => {
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
/// that leaves users unsent fails the invocation, so Lambda tries again (and after its retries,
/// the event goes to the on-failure destination); the checkpoint in `/tmp` lets a retry in the
/// same environment continue rather than start over. A key Braze refuses is read from Secrets
/// Manager again once, so a rotated key does not fail every warm environment.
async fn lambda() -> Result<(), lambda_runtime::Error> {
    let sdk = personalize_braze_aws::sdk::batch_sdk_config().await;
    let braze = Mutex::new(Arc::new(braze_from_env(&sdk).await?));
    let env = env::process();
    let table = env.required(
        "ITEMS_TABLE",
        " (the items table the lists are joined with)",
    )?;
    let catalog = table_catalog(&sdk, &table)?;
    let options = lambda_options(&env)?;
    let rate = match env.get("BRAZE_RATE_LIMIT") {
        Some(off) if off.trim() == "off" => None,
        Some(rate) => {
            Some(RateLimit::parse(&rate).map_err(|e| invalid("BRAZE_RATE_LIMIT", &rate, e))?)
        }
        None => Some(RateLimit::BRAZE_DEFAULT),
    };
    let state = env.get("BRAZE_SYNC_STATE").map(StateStore::parse);
    if let Some(StateStore::File(_)) = &state {
        return Err("BRAZE_SYNC_STATE must be s3://BUCKET/KEY inside Lambda".into());
    }
    let catalog_name = format!("table {table}");
    let limiter = Limiter::new(rate);
    let s3 = aws_sdk_s3::Client::new(&sdk);
    let context = (
        &braze,
        &limiter,
        &catalog,
        &options,
        &s3,
        &state,
        &sdk,
        &catalog_name,
    );
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        let (braze, limiter, catalog, options, s3, state, sdk, catalog_name) = context;
        let objects = objects_in(&event.payload);
        if objects.is_empty() {
            tracing::warn!(event = %event.payload, "the event names no S3 object; nothing to do");
        }
        let mut summaries = Vec::new();
        for (bucket, key) in objects {
            let mut delta = match state {
                Some(store) => Some(store.load(sdk, setting(options, catalog_name)).await?),
                None => None,
            };
            let mut summary = sync_object(
                s3,
                &bucket,
                &key,
                &current(braze),
                limiter,
                catalog,
                options,
                delta.as_mut(),
            )
            .await?;
            if matches!(summary.stopped, Some(Stop::Unauthorized(_)))
                && std::env::var_os("BRAZE_API_KEY_SECRET_ARN").is_some()
            {
                tracing::warn!("Braze refused the key; reading it from Secrets Manager again once");
                let fresh = Arc::new(braze_from_env(sdk).await?);
                *braze.lock().unwrap_or_else(|e| e.into_inner()) = fresh.clone();
                summary = sync_object(
                    s3,
                    &bucket,
                    &key,
                    &fresh,
                    limiter,
                    catalog,
                    options,
                    delta.as_mut(),
                )
                .await?;
            }
            tracing::info!(
                input = %format!("s3://{bucket}/{key}"),
                sent = summary.tally.sent,
                unchanged = summary.tally.unchanged,
                skipped = summary.tally.skipped,
                failed = summary.tally.failed,
                unsent = summary.unsent,
                requests = summary.requests,
                retries = summary.retries,
                values_cut = summary.values_cut,
                seconds = summary.elapsed.as_secs_f64(),
                "braze-sync finished"
            );
            if !summary.finished() {
                return Err(lambda_runtime::Error::from(format!(
                    "s3://{bucket}/{key}: {}",
                    summary.to_string().trim_end()
                )));
            }
            if let (Some(store), Some(delta)) = (state, &delta) {
                store.save(sdk, delta).await?;
            }
            summaries.push(serde_json::json!({
                "input": format!("s3://{bucket}/{key}"),
                "sent": summary.tally.sent,
                "unchanged": summary.tally.unchanged,
                "skipped": summary.tally.skipped,
                "failed": summary.tally.failed,
            }));
        }
        Ok::<_, lambda_runtime::Error>(Value::Array(summaries))
    }))
    .await
}

fn current(braze: &Mutex<Arc<Braze>>) -> Arc<Braze> {
    braze.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// One S3 object into Braze, resuming its checkpoint in `/tmp`.
#[allow(clippy::too_many_arguments)]
async fn sync_object(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    braze: &Braze,
    limiter: &Limiter,
    catalog: &impl Catalog,
    options: &Options,
    delta: Option<&mut Delta>,
) -> Result<Summary, String> {
    let (reader, identity, _) = open_s3(s3, bucket, key).await?;
    let digest = Sha256::digest(format!("{}\n{}", identity.input, identity.version));
    let name: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    let path = std::env::temp_dir().join(format!("braze-sync-{name}.checkpoint"));
    let mut checkpoint = Checkpoint::open(&path, &identity)?;
    let read = AtomicU64::new(0);
    let journal = Journal {
        checkpoint: Some(&mut checkpoint),
        delta,
    };
    let summary = braze_sync::run(reader, catalog, Destination::Braze { braze, limiter }, journal, options, &read, |p| {
        tracing::warn!(line = p.line, user = p.key.as_deref().unwrap_or(""), kind = p.kind, detail = %printable(&p.detail), "user not sent");
    })
    .await;
    Ok(summary)
}

/// The run's settings from the function's environment, by the rule every binary shares.
fn lambda_options<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Options, EnvError> {
    let mut options = Options::default();
    if let Some(name) = env.parsed("BRAZE_ATTRIBUTE", attribute_name)? {
        options.attribute = name;
    }
    if let Some(count) = env.optional_number("RECOMMENDATION_COUNT", 1, 500)? {
        options.count = count as usize;
    }
    if let Some(fields) = env.parsed("BRAZE_FIELDS", |f| {
        Fields::parse(f).map_err(|e| e.to_string())
    })? {
        options.fields = fields;
    }
    let most = MAX_OBJECTS_PER_REQUEST as u32;
    if let Some(size) = env.optional_number("BRAZE_BATCH_SIZE", 1, most)? {
        options.batch_size = size as usize;
    }
    if let Some(bytes) = env.optional_number("BRAZE_MAX_ARRAY_BYTES", 256, 1 << 20)? {
        options.max_array_bytes = bytes as usize;
    }
    options.update_existing_only = !env.flag("BRAZE_CREATE_PROFILES", false)?;
    Ok(options)
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
                // Notification keys are form-encoded, spaces as `+`.
                let key = form_decode(s3.pointer("/object/key")?.as_str()?)?;
                Some((bucket.to_owned(), key.into_owned()))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Result<Args, clap::Error> {
        Cli::try_parse_from(std::iter::once("braze-sync").chain(text.split_whitespace()))
            .map(Args::from)
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
        let parsed = args(
            "out.json --items i.csv --batch-size 50 --create-profiles --changed-only --fields id,name",
        )
        .unwrap();
        assert_eq!(parsed.options.batch_size, 50);
        assert!(!parsed.options.update_existing_only && parsed.changed_only);
        assert_eq!(parsed.options.fields.to_string(), "id,name");
        // ITEMS_TABLE in the environment is a catalog of its own.
        if std::env::var_os("ITEMS_TABLE").is_some() {
            return;
        }
        for (bad, flag) in [
            ("--items i.csv", "FILE|s3://BUCKET/KEY"),
            ("out.json", "--items"),
            ("out.json --items i.csv --table t", "--table"),
            ("out.json --items i.csv --count 0", "--count"),
            ("out.json --items i.csv --attribute $x", "--attribute"),
            ("out.json --items i.csv --attribute", "--attribute"),
            ("a b --items i.csv", "'b'"),
            ("out.json --items i.csv --bogus", "--bogus"),
            ("out.json --items i.csv --batch-size 76", "--batch-size"),
            ("out.json --items i.csv --state s.state", "--changed-only"),
            ("out.json --items i.csv --fields a,,b", "--fields"),
            // An absurd rate is an error that names the option, never a panic.
            (
                "out.json --items i.csv --rate 4294967295/18446744073709551615s",
                "--rate",
            ),
        ] {
            let err = args(bad).err().unwrap_or_else(|| panic!("{bad} was taken"));
            assert_eq!(err.exit_code(), 2, "{bad}");
            let text = err.to_string();
            assert!(text.contains(flag), "{bad}: {text}");
        }
        for ask in ["--help", "--version"] {
            let err = args(ask).err().unwrap();
            assert_eq!(err.exit_code(), 0, "{ask} is not an error");
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
