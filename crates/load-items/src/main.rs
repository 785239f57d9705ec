//! load-items --table TABLE --items items.csv|items.jsonl [--dry-run] [--prune [--force]] [--concurrency 8]
//! load-items --braze-catalog NAME --items items.csv … (BRAZE_REST_ENDPOINT, BRAZE_API_KEY)
//!
//! The command line over the library (`load_items`): exit 0 when loaded, 1 when the file has
//! problems (nothing written) or DynamoDB failed, 2 for a usage error.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use aws_sdk_dynamodb::Client;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use load_items::file::read;
use load_items::table::{delete, stale_ids, write};

/// Loads an items file (Personalize's items CSV, or JSON Lines) into the DynamoDB items table the
/// endpoint reads. The whole file is checked first: a bad file writes nothing.
#[derive(Debug, Parser)]
#[command(name = "load-items", version)]
struct Args {
    /// The DynamoDB items table (not needed for a plain --dry-run)
    #[arg(long, env = "ITEMS_TABLE", value_name = "TABLE", default_value = "")]
    table: String,
    /// A Braze Catalog instead of the table (BRAZE_REST_ENDPOINT and BRAZE_API_KEY say where):
    /// created if missing, and only items that differ are sent
    #[arg(long, value_name = "NAME", conflicts_with = "table")]
    braze_catalog: Option<String>,
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
        if self.table.is_empty() && self.braze_catalog.is_none() && !only_checks {
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

    if let Some(catalog) = &args.braze_catalog {
        return to_catalog(&args, catalog, rows).await;
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
    let bar = progress(rows.len(), "writing");
    let on_written = |n| bar.inc(n);
    let concurrency = usize::from(args.concurrency);
    let written = write(&client, &args.table, rows, concurrency, &on_written).await;
    bar.finish_and_clear();
    let written = match written {
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

/// The items into a Braze Catalog: checked against its limits, then only what differs sent.
async fn to_catalog(args: &Args, catalog: &str, rows: Vec<load_items::Row>) -> ExitCode {
    use load_items::catalog;
    let items: Vec<_> = rows.iter().map(catalog::to_json).collect();
    drop(rows);
    let problems = catalog::refusals(&items);
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("{}, {p}", args.items.display());
        }
        eprintln!(
            "load-items: {} problem(s) for a Braze Catalog in {}; nothing was sent",
            problems.len(),
            args.items.display()
        );
        return ExitCode::FAILURE;
    }
    if args.dry_run && !args.prune {
        println!(
            "{}: {} items, all valid for a Braze Catalog (dry run: nothing sent)",
            args.items.display(),
            items.len()
        );
        return ExitCode::SUCCESS;
    }
    let endpoint = std::env::var("BRAZE_REST_ENDPOINT").unwrap_or_default();
    let key = std::env::var("BRAZE_API_KEY").unwrap_or_default();
    let catalogs = match personalize_braze_catalogs::Catalogs::new(&endpoint, &key) {
        Ok(catalogs) => catalogs,
        Err(e) => {
            eprintln!("load-items: {e}");
            return ExitCode::from(2);
        }
    };
    let failed = |what: &str, e: personalize_braze_catalogs::CatalogError| {
        eprintln!("load-items: {what} catalog {catalog} failed: {e}");
        ExitCode::FAILURE
    };
    let existing = match catalogs.fields(catalog).await {
        Ok(Some(_)) => match catalogs.items(catalog).await {
            Ok(items) => items,
            Err(e) => return failed("reading", e),
        },
        Ok(None) => Default::default(),
        Err(e) => return failed("reading", e),
    };
    let changes = catalog::changes(&items, &existing);
    // A prune is decided, and refused if need be, before anything is sent.
    if args.prune {
        let verdict = changes.prune.verdict(args.force);
        println!(
            "{}",
            changes.prune.describe(catalog, &args.items, args.dry_run)
        );
        if let Err(refusal) = &verdict {
            eprintln!("load-items: {refusal}");
        }
        if args.dry_run {
            return ExitCode::SUCCESS;
        }
        if verdict.is_err() {
            eprintln!("load-items: nothing was sent");
            return ExitCode::FAILURE;
        }
    }
    match catalog::prepare(&catalogs, catalog, &catalog::fields(&items)).await {
        Ok(Some(done)) => println!("{done}"),
        Ok(None) => {}
        Err(e) => return failed("preparing", e),
    }
    let started = Instant::now();
    let bar = progress(changes.put.len(), "sending");
    let on_sent = |n| bar.inc(n);
    let to_send = changes.put.len();
    let sent = catalog::send(
        &catalogs,
        catalog,
        changes.put,
        usize::from(args.concurrency),
        &on_sent,
    )
    .await;
    bar.finish_and_clear();
    let sent = match sent {
        Ok(sent) => sent,
        Err(e) => {
            eprintln!("load-items: the next run sends what is left (of {to_send})");
            return failed("writing to", e);
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "sent {sent} items to catalog {catalog} ({} unchanged) in {elapsed:.1} s ({:.0} items/s)",
        changes.unchanged,
        sent as f64 / elapsed.max(1e-9)
    );
    if args.prune {
        match catalog::delete(&catalogs, catalog, &changes.prune.stale).await {
            Ok(deleted) => println!(
                "pruned {deleted} items that {} no longer has",
                args.items.display()
            ),
            Err(e) => return failed("pruning", e),
        }
    }
    ExitCode::SUCCESS
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
}
