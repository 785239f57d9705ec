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

mod lambda;
mod sources;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use braze_sync::checkpoint::Checkpoint;
use braze_sync::delta::Setting;
use braze_sync::fields::Fields;
use braze_sync::limiter::{Limiter, RateLimit};
use braze_sync::{Destination, Journal, Options, Summary};
use clap::{ArgGroup, Parser};
use indicatif::{ProgressBar, ProgressStyle};
use personalize_braze_core::catalog::Catalog;
use personalize_braze_core::dataset;
use personalize_braze_core::env;
use personalize_braze_local::file_catalog::FileCatalog;
use tokio::io::AsyncBufRead;

use sources::{StateStore, braze_from_env, open_input, table_catalog};

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
#[command(group(ArgGroup::new("catalog").required(true).args(["items", "table", "related_to_catalog"])))]
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
    /// A related-items (Similar-Items) output instead: each item's related ids go into a column
    /// of this Braze Catalog's items (--catalog-column), not to users
    #[arg(long, value_name = "CATALOG")]
    related_to_catalog: Option<String>,
    /// The catalog column related ids go into
    #[arg(long, default_value = "related_ids", value_name = "FIELD")]
    catalog_column: String,
    /// The custom attribute each user's list is written to
    #[arg(long, default_value = "recommendations", value_parser = attribute_name)]
    attribute: String,
    /// Items per user, the best first (1-500)
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u16).range(1..=500))]
    count: u16,
    /// Item fields, by the catalog's names, or `all`; or `ids` for an array of ids alone (a
    /// Braze Catalog holds the rest)
    #[arg(long, default_value = "id,url,name,price,image", value_parser = Fields::parse)]
    fields: Fields,
    /// The same as --fields ids
    #[arg(long, conflicts_with = "fields")]
    ids_only: bool,
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
                fields: if cli.ids_only {
                    Fields::Ids
                } else {
                    cli.fields
                },
                batch_size: usize::from(cli.batch_size),
                max_array_bytes: cli.max_array_bytes as usize,
                update_existing_only: !cli.create_profiles,
                concurrency: usize::from(cli.concurrency),
                max_attempts: u32::from(cli.max_attempts),
            },
        }
    }
}

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
        return match lambda::lambda().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "braze-sync cannot start");
                ExitCode::FAILURE
            }
        };
    }
    logs.init();
    // `--help` and `--version` on stdout with 0; a usage error names the flag, with 2.
    let parsed = Cli::parse();
    if let Some(catalog) = parsed.related_to_catalog.clone() {
        return related_to_catalog(&parsed, &catalog).await;
    }
    let args = Args::from(parsed);
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

/// `--related-to-catalog`: a Similar-Items output into a catalog column.
async fn related_to_catalog(cli: &Cli, catalog: &str) -> ExitCode {
    let env = personalize_braze_core::env::process();
    let needs_aws = cli.input.starts_with("s3://") || env.get("BRAZE_API_KEY").is_none();
    let sdk = if needs_aws {
        personalize_braze_aws::sdk::batch_sdk_config().await
    } else {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .build()
    };
    let started = std::time::Instant::now();
    let result = async {
        let endpoint = env
            .get("BRAZE_REST_ENDPOINT")
            .ok_or("BRAZE_REST_ENDPOINT is not set (your workspace's REST endpoint)")?;
        let key = match (env.get("BRAZE_API_KEY"), env.get("BRAZE_API_KEY_SECRET_ARN")) {
            (Some(key), _) => key,
            (None, Some(secret)) => sources::secret_key(&sdk, &secret).await?,
            (None, None) => {
                return Err("BRAZE_API_KEY (or BRAZE_API_KEY_SECRET_ARN) is not set; the key needs the catalogs permissions".to_owned());
            }
        };
        let catalogs = personalize_braze_catalogs::Catalogs::new(&endpoint, &key)?;
        let (reader, _, _) = open_input(&sdk, &cli.input).await?;
        braze_sync::related::to_catalog(reader, &catalogs, catalog, &cli.catalog_column, usize::from(cli.count)).await
    }
    .await;
    match result {
        Ok(written) => {
            for (line, why) in &written.problems {
                eprintln!("line {line}: {why}");
            }
            println!(
                "{} items' related ids written to catalog {catalog}, column {}, in {:.1} s ({} other lines skipped, {} problems)",
                written.items,
                cli.catalog_column,
                started.elapsed().as_secs_f64(),
                written.skipped,
                written.problems.len()
            );
            if written.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("braze-sync: {e}");
            ExitCode::from(3)
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
}
