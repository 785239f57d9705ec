//! check-datasets [--interactions F] [--items F] [--users F] [--*-schema S] [--write-schemas DIR]

use std::path::PathBuf;
use std::process::ExitCode;

use check_datasets::{Checked, Severity, check};
use clap::Parser;
use personalize_braze_core::rules::{Dataset, Schema};
use personalize_braze_files::{Location, Store};

/// Checks Amazon Personalize dataset files before an import job: required columns and types,
/// timestamps in seconds, reserved names, categorical and textual limits, EVENT_VALUE, id
/// lengths, duplicates, and the minimums user-personalization needs to train (1,000
/// interactions; 25 users with at least 2 each).
///
/// Without a schema, one is inferred from each file; --write-schemas writes them as CreateSchema
/// takes them.
///
/// Each finding is printed as `error[RULE] FILE:LINE: what`. Exit status: 0 Personalize would
/// accept the files (warnings allowed); 1 it would not; 2 a file could not be read.
#[derive(Debug, Parser)]
#[command(name = "check-datasets", version)]
#[command(group(clap::ArgGroup::new("files").required(true).multiple(true).args(["interactions", "items", "users"])))]
struct Cli {
    /// The interactions CSV (USER_ID, ITEM_ID, TIMESTAMP, …)
    #[arg(long, value_name = "FILE|s3://BUCKET/KEY")]
    interactions: Option<Location>,
    /// The items CSV (ITEM_ID and metadata)
    #[arg(long, value_name = "FILE|s3://BUCKET/KEY")]
    items: Option<Location>,
    /// The users CSV (USER_ID and metadata)
    #[arg(long, value_name = "FILE|s3://BUCKET/KEY")]
    users: Option<Location>,
    /// The interactions schema (Avro JSON, as CreateSchema takes it) to check against
    #[arg(long, value_name = "FILE")]
    interactions_schema: Option<PathBuf>,
    /// The items schema to check against
    #[arg(long, value_name = "FILE")]
    items_schema: Option<PathBuf>,
    /// The users schema to check against
    #[arg(long, value_name = "FILE")]
    users_schema: Option<PathBuf>,
    /// Write each dataset's schema (given or inferred) to DIR/<dataset>.schema.json
    #[arg(long, value_name = "DIR")]
    write_schemas: Option<PathBuf>,
    /// Skip the training minimums (for an incremental import into a trained dataset group)
    #[arg(long)]
    no_minimums: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (_runtime, store) = match personalize_braze_files::start() {
        Ok(started) => started,
        Err(e) => {
            eprintln!("check-datasets: {e}");
            return ExitCode::from(2);
        }
    };
    let files = [
        (
            Dataset::Interactions,
            &cli.interactions,
            &cli.interactions_schema,
        ),
        (Dataset::Items, &cli.items, &cli.items_schema),
        (Dataset::Users, &cli.users, &cli.users_schema),
    ];
    match run(&cli, &store, &files) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("check-datasets: {e}");
            ExitCode::from(2)
        }
    }
}

type File<'a> = (Dataset, &'a Option<Location>, &'a Option<PathBuf>);

/// Checks every file given; says whether Personalize would accept them all.
fn run(cli: &Cli, store: &Store, files: &[File]) -> Result<bool, String> {
    let mut accepted = true;
    for (dataset, location, schema_file) in files {
        let Some(location) = location else { continue };
        let schema = match schema_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Some(
                    Schema::from_avro_json(*dataset, &text)
                        .map_err(|e| format!("{}: {e}", path.display()))?,
                )
            }
            None => None,
        };
        let listed = store.list(location, "")?;
        let key = match location {
            Location::Local(_) => String::new(),
            Location::S3 { key, .. } if listed.iter().any(|o| &o.key == key) => key.clone(),
            Location::S3 { .. } => return Err(format!("{location}: no such object")),
        };
        let input = store.open(location, &key)?;
        let checked = check(*dataset, input, schema);
        accepted &= report(cli, *dataset, location, &checked);
        if let Some(dir) = &cli.write_schemas {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot write {}: {e}", dir.display()))?;
            let path = dir.join(format!(
                "{}.schema.json",
                dataset.name().to_ascii_lowercase()
            ));
            std::fs::write(&path, checked.schema.to_avro_json() + "\n")
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            println!("{}: its schema is in {}", location, path.display());
        }
    }
    Ok(accepted)
}

fn report(cli: &Cli, dataset: Dataset, location: &Location, checked: &Checked) -> bool {
    let mut errors = 0;
    for finding in &checked.findings {
        let severity = match finding.severity {
            Severity::Error => {
                errors += 1;
                "error"
            }
            Severity::Warning => "warning",
        };
        let line = finding.line.map(|l| format!(":{l}")).unwrap_or_default();
        println!(
            "{severity}[{}] {location}{line}: {}",
            finding.rule, finding.message
        );
    }
    let mut more: Vec<_> = checked.more.iter().collect();
    more.sort();
    for (rule, count) in more {
        println!("… and {count} more [{rule}] findings in {location}");
        if checked
            .findings
            .iter()
            .any(|f| f.rule == *rule && f.severity == Severity::Error)
        {
            errors += 1;
        }
    }
    if let Some(minimums) = &checked.minimums
        && !cli.no_minimums
        && let Some(shortfall) = minimums.shortfall()
    {
        errors += 1;
        println!("error[minimums] {location}: {shortfall}");
    }
    let verdict = if errors == 0 {
        "Personalize would accept it"
    } else {
        "Personalize would refuse it"
    };
    println!(
        "{location}: {} {} rows, {} fields: {verdict}",
        checked.rows,
        dataset.name(),
        checked.schema.fields.len()
    );
    errors == 0
}
