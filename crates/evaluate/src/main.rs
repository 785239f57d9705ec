//! Offline quality of recommenders on your own interactions: precision@k, NDCG@k, MRR@k and
//! coverage for the embedded co-occurrence model, a popularity baseline, and optionally a live
//! Personalize campaign or recommender, side by side.
//!
//!   cargo run --release -p evaluate -- --interactions interactions.csv [options]
//!
//! With the users dataset (`--users users.csv [--by TIER]`), every score is also given per
//! segment, so a model that serves one kind of user worse shows it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use clap::Parser;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use personalize_braze_aws::personalize::PersonalizeArn;
use personalize_braze_aws::personalize::{Personalize, Target};
use personalize_braze_core::dataset::{read_interactions, read_items, read_users};
use personalize_braze_core::recommender::{RecommendationQuery, Recommender, Subject};
use personalize_braze_local::embedded::LocalRecommender;
use personalize_braze_local::evaluation::{self, Scores, Segmented, Split};
use personalize_braze_local::popularity::Popularity;
use personalize_braze_local::tuning;

/// Offline quality of the embedded model and the popularity baseline (and, with
/// --personalize-arn, a live campaign or recommender) on your interactions: each user's newest
/// events are held out and scored with precision, NDCG, MRR and coverage at K.
#[derive(Debug, Parser)]
#[command(name = "evaluate", version)]
struct Cli {
    /// Interactions in Personalize's CSV schema (USER_ID, ITEM_ID, TIMESTAMP, ...)
    #[arg(long, value_name = "FILE")]
    interactions: PathBuf,
    /// The catalog's items CSV: adds its items to the coverage denominator
    #[arg(long, value_name = "FILE")]
    items: Option<PathBuf>,
    /// The users dataset (USER_ID and metadata): scores are also given per segment of --by
    #[arg(long, value_name = "FILE")]
    users: Option<PathBuf>,
    /// The user field whose values are the segments [default: the users file's first field]
    #[arg(long, requires = "users", value_name = "FIELD")]
    by: Option<String>,
    /// Recommendations scored per user (1-500)
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=500))]
    k: u16,
    /// The newest fraction of each user's events is what they are tested on [default: 0.2]
    #[arg(long, value_parser = fraction, conflicts_with = "cutoff")]
    holdout: Option<f64>,
    /// Events at or after this time (Unix seconds or YYYY-MM-DD) are the test part
    #[arg(long, value_parser = time, value_name = "UNIX_SECONDS|YYYY-MM-DD")]
    cutoff: Option<i64>,
    /// Also score items users had already interacted with in training (as Personalize's own
    /// metrics do); by default only items new to the user count
    #[arg(long)]
    keep_seen: bool,
    /// Also ask this campaign or recommender (AWS credentials from the environment)
    #[arg(long, value_parser = arn, value_name = "ARN")]
    personalize_arn: Option<PersonalizeArn>,
    /// Requests per second to Personalize, at most (a campaign's minimum is 5)
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    tps: u32,
    /// Test only the first N users (by id), e.g. to keep a live campaign's bill small
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_users: Option<u64>,
    /// The results as JSON
    #[arg(long)]
    json: bool,
}

fn fraction(text: &str) -> Result<f64, String> {
    text.parse()
        .ok()
        .filter(|f| *f > 0.0 && *f < 1.0)
        .ok_or_else(|| "expected a fraction between 0 and 1, e.g. 0.2".to_owned())
}

fn time(text: &str) -> Result<i64, String> {
    parse_time(text).ok_or_else(|| "expected Unix seconds or a date YYYY-MM-DD".to_owned())
}

fn arn(text: &str) -> Result<PersonalizeArn, String> {
    PersonalizeArn::parse(text).map_err(|reason| reason.to_string())
}

#[derive(Debug)]
struct Args {
    interactions: PathBuf,
    items: Option<PathBuf>,
    users: Option<PathBuf>,
    by: Option<String>,
    k: usize,
    split: Split,
    personalize: Option<PersonalizeArn>,
    tps: u32,
    max_users: Option<usize>,
    keep_seen: bool,
    json: bool,
}

impl From<Cli> for Args {
    fn from(cli: Cli) -> Args {
        let split = match (cli.cutoff, cli.holdout) {
            (Some(timestamp), _) => Split::Cutoff { timestamp },
            (None, fraction) => Split::Holdout {
                fraction: fraction.unwrap_or(0.2),
            },
        };
        Args {
            interactions: cli.interactions,
            items: cli.items,
            users: cli.users,
            by: cli.by,
            k: usize::from(cli.k),
            split,
            personalize: cli.personalize_arn,
            tps: cli.tps,
            max_users: cli.max_users.map(|n| n as usize),
            keep_seen: cli.keep_seen,
            json: cli.json,
        }
    }
}

/// Unix seconds, or a UTC date `YYYY-MM-DD` (its midnight), read as RFC 3339 (as `POST /events`
/// reads `sent_at`), so impossible dates are refused.
fn parse_time(text: &str) -> Option<i64> {
    if let Ok(seconds) = text.parse::<i64>() {
        return Some(seconds);
    }
    let is_date = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !is_date {
        return None;
    }
    let midnight = format!("{text}T00:00:00Z");
    let parsed = aws_smithy_types::DateTime::from_str(
        &midnight,
        aws_smithy_types::date_time::Format::DateTime,
    )
    .ok()?;
    Some(parsed.secs())
}

struct Outcome {
    name: &'static str,
    scores: Scores,
    /// Per segment of the users' --by field, when there are users.
    segments: Vec<(String, Scores)>,
    seconds: f64,
}

/// Each user's segment: their value of `by` (or of the first metadata field) in the users file.
fn segments(
    users: &std::path::Path,
    by: Option<&str>,
) -> Result<(String, HashMap<String, String>), String> {
    let records = read_users(users).map_err(|e| e.to_string())?;
    let field = match by {
        Some(by) => by.to_owned(),
        None => records
            .iter()
            .find_map(|r| r.fields.first().map(|(name, _)| name.clone()))
            .ok_or_else(|| {
                format!(
                    "{}: no user has a metadata field to segment by",
                    users.display()
                )
            })?,
    };
    let segment_of: HashMap<String, String> = records
        .into_iter()
        .filter_map(|r| {
            let value = r.fields.into_iter().find(|(name, _)| *name == field)?.1;
            Some((r.id, value))
        })
        .collect();
    if segment_of.is_empty() {
        return Err(format!("{}: no user has a {field} value", users.display()));
    }
    Ok((field, segment_of))
}

#[tokio::main]
async fn main() -> ExitCode {
    // `--help` and `--version` on stdout with 0; a usage error names the flag, with 2.
    let args = Args::from(Cli::parse());
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("evaluate: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let started = Instant::now();
    let interactions = read_interactions(&args.interactions).map_err(|e| e.to_string())?;
    let total = interactions.len();
    let mut catalog: HashSet<String> = interactions.iter().map(|i| i.item_id.clone()).collect();
    if let Some(items) = &args.items {
        let records = read_items(items).map_err(|e| e.to_string())?;
        catalog.extend(records.into_iter().map(|r| r.id));
    }
    let mut divided = evaluation::split(interactions, args.split, args.keep_seen);
    if let Some(max) = args.max_users {
        divided.test.truncate(max);
    }
    if divided.test.is_empty() {
        return Err(
            "no user has events in the test part; try a larger --holdout or an earlier --cutoff"
                .into(),
        );
    }
    let test = Arc::new(divided.test);
    let (segment_field, segment_of) = match &args.users {
        Some(users) => {
            let (field, map) = segments(users, args.by.as_deref())?;
            (Some(field), map)
        }
        None => (None, HashMap::new()),
    };

    let mut outcomes = Vec::new();
    let clock = Instant::now();
    let model = tuning::train(&divided.training);
    let kind = model.kind().to_string();
    let embedded = LocalRecommender::new(model, &[], BTreeMap::new());
    let (scores, segments) =
        evaluate_embedded(&embedded, &test, &catalog, &segment_of, args.k).await;
    outcomes.push(Outcome {
        name: "embedded",
        scores,
        segments,
        seconds: clock.elapsed().as_secs_f64(),
    });
    drop(embedded);

    let clock = Instant::now();
    let popularity = Popularity::train(&divided.training, !args.keep_seen);
    let (scores, segments) =
        evaluate_embedded(&popularity, &test, &catalog, &segment_of, args.k).await;
    outcomes.push(Outcome {
        name: "popularity",
        scores,
        segments,
        seconds: clock.elapsed().as_secs_f64(),
    });

    if let Some(target) = &args.personalize {
        let clock = Instant::now();
        let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
        let client = aws_sdk_personalizeruntime::Client::from_conf(
            aws_sdk_personalizeruntime::config::Builder::from(&sdk)
                .region(aws_config::Region::new(target.region.clone()))
                .build(),
        );
        let personalize = Arc::new(Personalize::new(BTreeMap::new()).with_recommender(
            "personalize",
            Target {
                client,
                arn: target.clone(),
            },
        ));
        let (scores, segments) =
            evaluate_live(personalize, &test, &catalog, &segment_of, args.k, args.tps).await;
        outcomes.push(Outcome {
            name: "personalize",
            scores,
            segments,
            seconds: clock.elapsed().as_secs_f64(),
        });
    }

    let split = match args.split {
        Split::Holdout { fraction } => serde_json::json!({ "holdout": fraction }),
        Split::Cutoff { timestamp } => serde_json::json!({ "cutoff": timestamp }),
    };
    if args.json {
        let backends: Vec<_> = outcomes
            .iter()
            .map(|o| {
                let segments: serde_json::Map<String, serde_json::Value> = o
                    .segments
                    .iter()
                    .map(|(name, scores)| (name.clone(), serde_json::json!(scores)))
                    .collect();
                serde_json::json!({ "backend": o.name, "seconds": o.seconds, "scores": o.scores, "segments": segments })
            })
            .collect();
        let report = serde_json::json!({
            "k": args.k,
            "split": split,
            "keep_seen": args.keep_seen,
            "interactions": total,
            "training_interactions": divided.training.len(),
            "test_users": test.len(),
            "catalog_items": catalog.len(),
            "segmented_by": segment_field,
            "embedded_model": kind,
            "backends": backends,
        });
        println!("{report:#}");
    } else {
        println!(
            "{total} interactions, {} for training; {} test users; {} catalog items; split {split}{}",
            divided.training.len(),
            test.len(),
            catalog.len(),
            if args.keep_seen {
                ", seen items kept"
            } else {
                ""
            }
        );
        println!("embedded: {kind}");
        print!("{}", table(&outcomes, args.k, segment_field.as_deref()));
        eprintln!("evaluated in {:.1} s", started.elapsed().as_secs_f64());
    }
    Ok(())
}

fn table(outcomes: &[Outcome], k: usize, segmented_by: Option<&str>) -> String {
    let mut out = format!(
        "| backend | users | precision@{k} | NDCG@{k} | MRR@{k} | coverage | failed | seconds |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for o in outcomes {
        let rows = std::iter::once((o.name.to_owned(), &o.scores, format!("{:.1}", o.seconds)))
            .chain(o.segments.iter().map(|(segment, scores)| {
                let field = segmented_by.unwrap_or("segment");
                (
                    format!("{} · {field}={segment}", o.name),
                    scores,
                    String::new(),
                )
            }));
        for (name, s, seconds) in rows {
            out.push_str(&format!(
                "| {name} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {} | {seconds} |\n",
                s.users, s.precision_at_k, s.ndcg_at_k, s.mrr_at_k, s.coverage, s.failed,
            ));
        }
    }
    out
}

fn query(user_id: &str, k: usize) -> RecommendationQuery {
    RecommendationQuery {
        subject: Subject::User(user_id.to_owned()),
        count: k as u32,
        ..RecommendationQuery::default()
    }
}

async fn evaluate_embedded(
    recommender: &impl Recommender,
    test: &[(String, HashSet<String>)],
    catalog: &HashSet<String>,
    segment_of: &HashMap<String, String>,
    k: usize,
) -> (Scores, Vec<(String, Scores)>) {
    let mut tally = Segmented::new(k, catalog, segment_of);
    for (user, truth) in test {
        match recommender.recommend(&query(user, k)).await {
            Ok(answer) => tally.add(user, &answer.item_ids, truth),
            Err(_) => tally.fail(user),
        }
    }
    tally.scores()
}

/// Asks a live backend at most `tps` times a second, a few requests in flight, with a progress bar.
async fn evaluate_live<R: Recommender>(
    recommender: Arc<R>,
    test: &Arc<Vec<(String, HashSet<String>)>>,
    catalog: &HashSet<String>,
    segment_of: &HashMap<String, String>,
    k: usize,
    tps: u32,
) -> (Scores, Vec<(String, Scores)>) {
    let bar = ProgressBar::new(test.len() as u64);
    if let Ok(style) =
        ProgressStyle::with_template("personalize {bar:40} {pos}/{len} ({per_sec}, {eta} left)")
    {
        bar.set_style(style);
    }
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / tps);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ticker = Arc::new(tokio::sync::Mutex::new(ticker));
    let in_flight = (tps as usize).clamp(1, 32);

    let answers = futures_util::stream::iter(0..test.len())
        .map(|index| {
            let (recommender, ticker, test) = (recommender.clone(), ticker.clone(), test.clone());
            async move {
                ticker.lock().await.tick().await;
                let answer = recommender.recommend(&query(&test[index].0, k)).await;
                (index, answer)
            }
        })
        .buffer_unordered(in_flight);
    futures_util::pin_mut!(answers);

    let mut tally = Segmented::new(k, catalog, segment_of);
    let mut first_error = None;
    while let Some((index, answer)) = answers.next().await {
        bar.inc(1);
        let (user, truth) = &test[index];
        match answer {
            Ok(answer) => tally.add(user, &answer.item_ids, truth),
            Err(e) => {
                tally.fail(user);
                first_error.get_or_insert(e);
            }
        }
    }
    bar.finish_and_clear();
    if let Some(e) = first_error {
        eprintln!(
            "evaluate: {} Personalize requests failed, the first with: {e}",
            tally.all.scores().failed
        );
    }
    tally.scores()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_unix_seconds() {
        assert_eq!(parse_time("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_time("1970-01-01"), Some(0));
        assert_eq!(parse_time("2000-03-01"), Some(951_868_800));
        assert_eq!(parse_time("2026-11-28"), Some(1_795_824_000));
        assert_eq!(parse_time("2026-13-01"), None);
        assert_eq!(parse_time("2026-02-31"), None, "no such day");
        assert_eq!(parse_time("2024-02-29"), Some(1_709_164_800), "a leap day");
        assert_eq!(parse_time("2026-1-01"), None);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn arguments_are_checked_with_their_names() {
        let parse = |list: &[&str]| {
            Cli::try_parse_from(std::iter::once("evaluate").chain(list.iter().copied()))
                .map(Args::from)
                .map_err(|e| {
                    assert_eq!(e.exit_code(), 2);
                    e.to_string()
                })
        };
        assert!(parse(&[]).unwrap_err().contains("--interactions"));
        let e = parse(&[
            "--interactions",
            "x.csv",
            "--holdout",
            "0.2",
            "--cutoff",
            "5",
        ])
        .unwrap_err();
        assert!(e.contains("--cutoff"), "{e}");
        let e = parse(&["--interactions", "x.csv", "--holdout", "1.5"]).unwrap_err();
        assert!(e.contains("--holdout") && e.contains("1.5"), "{e}");
        let e = parse(&["--interactions", "x.csv", "--personalize-arn", "nope"]).unwrap_err();
        assert!(e.contains("--personalize-arn"), "{e}");
        let args = parse(&[
            "--interactions",
            "x.csv",
            "--cutoff",
            "2026-01-01",
            "--k",
            "25",
            "--json",
        ])
        .unwrap();
        assert_eq!(args.k, 25);
        assert!(args.json);
        assert_eq!(
            args.split,
            Split::Cutoff {
                timestamp: 1_767_225_600
            }
        );
    }
}
