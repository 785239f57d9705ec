//! import-currents INPUT --output FILE [--custom-event NAME=PROPERTY[:TYPE]]… ; `--help` says all.

use std::process::ExitCode;

use clap::Parser;
use import_currents::mapping::{CustomEvent, Engagement, Mapping};
use import_currents::{Import, Summary, import};
use personalize_braze_files::Location;

/// Turns a Braze Currents export (Avro files, one folder per event type and date) into an Amazon
/// Personalize interactions CSV: USER_ID (the Braze external id), ITEM_ID, EVENT_TYPE,
/// EVENT_VALUE (a purchase's price) and TIMESTAMP (seconds).
///
/// Purchases are interactions (product_id is the item). Custom events and message engagement
/// are when a mapping names them. Each event is written once, even when Currents delivers it
/// twice, and a rerun reads only objects no earlier run read to the end: the state (next to the
/// output unless --state says) records them.
///
/// Exit status: 0 every object read; 1 done, but some objects or records could not be read (each
/// named on stderr; a failed object is read again next run); 2 nothing done.
#[derive(Debug, Parser)]
#[command(name = "import-currents", version)]
struct Cli {
    /// The export: a folder, one .avro file, or s3://BUCKET/PREFIX
    #[arg(value_name = "FOLDER|s3://BUCKET/PREFIX")]
    input: Location,
    /// The interactions CSV, appended to run after run: a file or s3://BUCKET/KEY
    #[arg(long, value_name = "FILE|s3://BUCKET/KEY")]
    output: Location,
    /// Where the run's state is kept [default: the output's name + .state.json]
    #[arg(long, value_name = "FILE|s3://BUCKET/KEY")]
    state: Option<Location>,
    /// EVENT_TYPE for purchases (users.behaviors.Purchase)
    #[arg(long, default_value = "purchase", value_name = "TYPE")]
    purchase_event_type: String,
    /// Leave purchases out
    #[arg(long)]
    no_purchases: bool,
    /// Custom events named NAME are interactions with the item in properties.PROPERTY, of type
    /// EVENT_TYPE (NAME if not given); repeatable
    #[arg(long = "custom-event", value_name = "NAME=PROPERTY[:EVENT_TYPE]")]
    custom_events: Vec<CustomEvent>,
    /// Events of a Currents type (users.messages.contentcard.Click, …) are interactions with the
    /// item in FIELD; repeatable
    #[arg(
        long = "engagement",
        value_name = "CURRENTS_EVENT_TYPE=FIELD[:EVENT_TYPE]"
    )]
    engagements: Vec<Engagement>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = Import {
        state: cli
            .state
            .clone()
            .unwrap_or_else(|| cli.output.with_suffix(".state.json")),
        mapping: Mapping {
            purchase: (!cli.no_purchases).then_some(cli.purchase_event_type),
            custom_events: cli.custom_events,
            engagements: cli.engagements,
        },
        input: cli.input,
        output: cli.output,
    };
    let (_runtime, store) = match personalize_braze_files::start() {
        Ok(started) => started,
        Err(e) => {
            eprintln!("import-currents: {e}");
            return ExitCode::from(2);
        }
    };
    let started = std::time::Instant::now();
    match import(&settings, &store) {
        Ok(summary) => report(&settings, &summary, started.elapsed()),
        Err(e) => {
            eprintln!("import-currents: {e}");
            ExitCode::from(2)
        }
    }
}

fn report(settings: &Import, summary: &Summary, took: std::time::Duration) -> ExitCode {
    for (name, object) in &summary.read {
        for (record, problem) in &object.rejections {
            eprintln!("{name}: record {record}: {problem}");
        }
        if object.rejected > object.rejections.len() as u64 {
            eprintln!(
                "{name}: {} more records rejected",
                object.rejected - object.rejections.len() as u64
            );
        }
        if let Some(error) = &object.error {
            eprintln!("{name}: {error}");
        }
    }
    if summary.cut_off > 0 {
        eprintln!(
            "import-currents: cut {} bytes an interrupted run had appended to {} (written again now)",
            summary.cut_off, settings.output
        );
    }
    let failed = summary.failed().count();
    let records = summary.total(|r| r.records);
    println!(
        "{} objects read ({} failed), {} already read, {} of unmapped event types skipped",
        summary.read.len(),
        failed,
        summary.already_read,
        summary.skipped
    );
    println!(
        "{records} records: {} interactions written, {} duplicates, {} without an external id, {} not mapped, {} rejected",
        summary.total(|r| r.interactions),
        summary.total(|r| r.duplicates),
        summary.total(|r| r.no_external_id),
        summary.total(|r| r.not_mapped),
        summary.total(|r| r.rejected),
    );
    let seconds = took.as_secs_f64();
    println!(
        "{} ({} bytes) in {seconds:.2} s, {:.0} records/s",
        settings.output,
        summary.output_bytes,
        records as f64 / seconds.max(1e-9)
    );
    if failed > 0 || summary.total(|r| r.rejected) > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
