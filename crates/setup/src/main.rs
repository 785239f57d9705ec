//! personalize-setup plan|apply|teardown|batch FILE: one file to a serving Amazon Personalize.

mod config;
mod setup;
mod teardown;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use config::Config;
use setup::{Mode, Options, Setup, SetupError, Versions};

/// One file to a serving Amazon Personalize: the dataset group, schemas, datasets and their
/// import jobs, solutions (hyperparameters or HPO), trained versions compared by their metrics,
/// campaigns gated on them, filters and an event tracker; then the stack's parameters.
///
/// `plan` says what `apply` would do, and what it would cost, and changes nothing. `apply` does
/// it and waits for each long step; interrupted, it is run again and goes on. `teardown` deletes
/// what the file created, campaigns first.
///
/// Exit status: 0 done; 1 Personalize refused or failed (its reason on stderr); 2 the file or the
/// command line is wrong, or teardown was not confirmed.
#[derive(Debug, Parser)]
#[command(name = "personalize-setup", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Say what apply would create or change, and why, and the running cost
    Plan {
        /// The setup file (TOML)
        file: PathBuf,
    },
    /// Create what is missing, in dependency order, waiting for each long step
    Apply {
        file: PathBuf,
        /// Move campaigns to a new version even when its metrics are worse than the serving one's
        #[arg(long)]
        promote: bool,
        /// Seconds between looks at a long step (import, training)
        #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
        poll: f64,
        /// Also write the stack's parameters as a samconfig.toml section to this file
        #[arg(long, value_name = "FILE")]
        samconfig: Option<PathBuf>,
    },
    /// Delete what the file created, campaigns first
    Teardown {
        file: PathBuf,
        /// Do not ask: delete
        #[arg(long)]
        yes: bool,
        #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
        poll: f64,
    },
    /// Run a batch inference job on a solution's serving version, for braze-sync
    Batch {
        file: PathBuf,
        /// The solution's name in the file
        #[arg(long)]
        solution: String,
        /// JSON Lines of {"userId": …}: s3://BUCKET/KEY
        #[arg(long, value_name = "s3://BUCKET/KEY")]
        input: String,
        /// Where Personalize writes the output: s3://BUCKET/PREFIX/
        #[arg(long, value_name = "s3://BUCKET/PREFIX/")]
        output: String,
        /// Items per user
        #[arg(long, default_value_t = 25)]
        num_results: i32,
        #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
        poll: f64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let file = match &cli.command {
        Command::Plan { file }
        | Command::Apply { file, .. }
        | Command::Teardown { file, .. }
        | Command::Batch { file, .. } => file.clone(),
    };
    let config = match Config::load(&file) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("personalize-setup: {e}");
            return ExitCode::from(2);
        }
    };
    let (runtime, store) = match personalize_braze_files::start() {
        Ok(started) => started,
        Err(e) => {
            eprintln!("personalize-setup: {e}");
            return ExitCode::from(2);
        }
    };
    let client = aws_sdk_personalize::Client::new(&store.sdk);
    let result = runtime.block_on(async {
        match cli.command {
            Command::Plan { .. } => {
                run(
                    &config,
                    client,
                    store.s3.clone(),
                    Mode::Plan,
                    false,
                    0.0,
                    None,
                )
                .await
            }
            Command::Apply {
                promote,
                poll,
                samconfig,
                ..
            } => {
                run(
                    &config,
                    client,
                    store.s3.clone(),
                    Mode::Apply,
                    promote,
                    poll,
                    samconfig,
                )
                .await
            }
            Command::Teardown { yes, poll, .. } => teardown(&config, client, yes, poll).await,
            Command::Batch {
                solution,
                input,
                output,
                num_results,
                poll,
                ..
            } => {
                batch(
                    &config,
                    client,
                    &solution,
                    &input,
                    &output,
                    num_results,
                    poll,
                )
                .await
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("personalize-setup: {e}");
            ExitCode::from(1)
        }
    }
}

fn poll(seconds: f64) -> Duration {
    Duration::from_secs_f64(seconds.clamp(0.0, 3600.0))
}

async fn run(
    config: &Config,
    client: aws_sdk_personalize::Client,
    s3: aws_sdk_s3::Client,
    mode: Mode,
    promote: bool,
    poll_seconds: f64,
    samconfig: Option<PathBuf>,
) -> Result<ExitCode, SetupError> {
    let mut setup = Setup {
        client,
        s3,
        config,
        options: Options {
            mode,
            poll: poll(poll_seconds),
            promote,
        },
        lines: Vec::new(),
        parameters: Default::default(),
        trained: Vec::new(),
    };
    setup.run().await?;
    if mode == Mode::Plan {
        let changes = setup.lines.iter().filter(|l| !l.starts_with('=')).count();
        println!(
            "{}",
            if changes == 0 {
                "plan: nothing to do; apply would change nothing".to_owned()
            } else {
                format!("plan: {changes} changes; nothing was changed (apply makes them)")
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let embedded = match &config.compare {
        Some(compare) => Some(embedded_scores(&compare.interactions).await?),
        None => None,
    };
    for versions in &setup.trained {
        print!("{}", comparison(versions, embedded.as_ref()));
    }
    let overrides = setup.parameters.overrides();
    println!("sam deploy --parameter-overrides {overrides}");
    if let Some(path) = samconfig {
        let section = format!(
            "version = 0.1\n\n[default.deploy.parameters]\nparameter_overrides = {:?}\n",
            overrides
        );
        std::fs::write(&path, section)
            .map_err(|e| SetupError(format!("cannot write {}: {e}", path.display())))?;
        println!("written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

const COLUMNS: &[(&str, &str)] = &[
    ("NDCG@5", "normalized_discounted_cumulative_gain_at_5"),
    ("NDCG@10", "normalized_discounted_cumulative_gain_at_10"),
    ("NDCG@25", "normalized_discounted_cumulative_gain_at_25"),
    ("precision@5", "precision_at_5"),
    ("precision@10", "precision_at_10"),
    ("precision@25", "precision_at_25"),
    ("MRR@25", "mean_reciprocal_rank_at_25"),
    ("coverage", "coverage"),
];

/// A solution's versions side by side, and the embedded model on the same interactions.
fn comparison(versions: &Versions, embedded: Option<&Embedded>) -> String {
    let mut out = format!(
        "\n{}: versions by Personalize's offline metrics\n\n| version |",
        versions.solution
    );
    for (name, _) in COLUMNS {
        out.push_str(&format!(" {name} |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(COLUMNS.len()));
    out.push('\n');
    for (arn, metrics) in &versions.versions {
        let id = arn.rsplit('/').next().unwrap_or(arn);
        let serving = if versions.serving.as_deref() == Some(arn) {
            " (serving)"
        } else {
            ""
        };
        out.push_str(&format!("| {id}{serving} |"));
        for (_, key) in COLUMNS {
            match metrics.get(*key) {
                Some(v) => out.push_str(&format!(" {v:.4} |")),
                None => out.push_str(" – |"),
            }
        }
        out.push('\n');
    }
    if let Some(e) = embedded.filter(|_| versions.for_users) {
        out.push_str("| embedded model (evaluate, 20% holdout) |");
        for (_, key) in COLUMNS {
            match e.get(*key) {
                Some(v) => out.push_str(&format!(" {v:.4} |")),
                None => out.push_str(" – |"),
            }
        }
        out.push('\n');
    }
    out
}

type Embedded = std::collections::BTreeMap<String, f64>;

/// The embedded co-occurrence model's scores at 5, 10 and 25 on a local copy of the
/// interactions, named as Personalize names its metrics.
async fn embedded_scores(path: &std::path::Path) -> Result<Embedded, SetupError> {
    use personalize_braze_core::recommender::{RecommendationQuery, Recommender, Subject};
    use personalize_braze_local::evaluation::{self, Split, Tally};
    let interactions = personalize_braze_core::dataset::read_interactions(path)
        .map_err(|e| SetupError(e.to_string()))?;
    let catalog: std::collections::HashSet<String> =
        interactions.iter().map(|i| i.item_id.clone()).collect();
    let divided = evaluation::split(interactions, Split::Holdout { fraction: 0.2 }, false);
    let model = personalize_braze_local::tuning::train(&divided.training);
    let recommender = personalize_braze_local::embedded::LocalRecommender::new(
        model,
        &[],
        std::collections::BTreeMap::new(),
    );
    let mut scores = Embedded::new();
    for k in [5usize, 10, 25] {
        let mut tally = Tally::new(k, &catalog);
        for (user, truth) in &divided.test {
            let query = RecommendationQuery {
                subject: Subject::User(user.clone()),
                count: k as u32,
                ..RecommendationQuery::default()
            };
            match recommender.recommend(&query).await {
                Ok(answer) => tally.add(&answer.item_ids, truth),
                Err(_) => tally.fail(),
            }
        }
        let s = tally.scores();
        scores.insert(
            format!("normalized_discounted_cumulative_gain_at_{k}"),
            s.ndcg_at_k,
        );
        scores.insert(format!("precision_at_{k}"), s.precision_at_k);
        if k == 25 {
            scores.insert("mean_reciprocal_rank_at_25".into(), s.mrr_at_k);
            scores.insert("coverage".into(), s.coverage);
        }
    }
    Ok(scores)
}

async fn teardown(
    config: &Config,
    client: aws_sdk_personalize::Client,
    yes: bool,
    poll_seconds: f64,
) -> Result<ExitCode, SetupError> {
    let name = &config.dataset_group.name;
    if !yes {
        if !std::io::stdin().is_terminal() {
            eprintln!(
                "personalize-setup: teardown deletes the campaigns, solutions, datasets and dataset \
                 group {name} that setup created; nothing was deleted. Run it on a terminal to \
                 confirm, or pass --yes."
            );
            return Ok(ExitCode::from(2));
        }
        eprint!("Delete what setup created in dataset group {name}? Type its name to confirm: ");
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if answer.trim() != name {
            eprintln!("personalize-setup: not confirmed; nothing was deleted");
            return Ok(ExitCode::from(2));
        }
    }
    let mut teardown = teardown::Teardown {
        client,
        config,
        poll: poll(poll_seconds),
        lines: Vec::new(),
        kept: false,
    };
    teardown.run().await?;
    println!("teardown: {} steps", teardown.lines.len());
    Ok(ExitCode::SUCCESS)
}

async fn batch(
    config: &Config,
    client: aws_sdk_personalize::Client,
    solution: &str,
    input: &str,
    output: &str,
    num_results: i32,
    poll_seconds: f64,
) -> Result<ExitCode, SetupError> {
    use aws_sdk_personalize::types::{
        BatchInferenceJobInput, BatchInferenceJobOutput, S3DataConfig,
    };
    use setup::sdk;
    let Some(spec) = config.solutions.iter().find(|s| s.name == solution) else {
        return Err(SetupError(format!("the file names no solution {solution}")));
    };
    if !input.starts_with("s3://") || !output.starts_with("s3://") || !output.ends_with('/') {
        return Err(SetupError(
            "--input is s3://BUCKET/KEY, --output s3://BUCKET/PREFIX/".into(),
        ));
    }
    let groups = client
        .list_dataset_groups()
        .send()
        .await
        .map_err(sdk("listing dataset groups"))?;
    let group = groups
        .dataset_groups()
        .iter()
        .find(|g| g.name() == Some(config.dataset_group.name.as_str()))
        .and_then(|g| g.dataset_group_arn())
        .ok_or_else(|| SetupError("the dataset group does not exist: apply first".into()))?
        .to_owned();
    let solutions = client
        .list_solutions()
        .dataset_group_arn(&group)
        .send()
        .await
        .map_err(sdk("listing solutions"))?;
    let mut candidates: Vec<_> = solutions
        .solutions()
        .iter()
        .filter(|s| {
            s.name()
                .is_some_and(|n| n.starts_with(&format!("{}-", spec.name)))
        })
        .collect();
    candidates.sort_by_key(|s| s.creation_date_time().map(|t| t.secs()));
    let Some(solution_arn) = candidates.last().and_then(|s| s.solution_arn()) else {
        return Err(SetupError(format!(
            "solution {solution} has not been created: apply first"
        )));
    };
    let mut versions = client
        .list_solution_versions()
        .solution_arn(solution_arn)
        .send()
        .await
        .map_err(sdk("listing versions"))?
        .solution_versions()
        .to_vec();
    versions.retain(|v| v.status() == Some("ACTIVE"));
    versions.sort_by_key(|v| v.creation_date_time().map(|t| t.secs()));
    let Some(version) = versions.last().and_then(|v| v.solution_version_arn()) else {
        return Err(SetupError(format!(
            "{solution} has no trained version: apply first"
        )));
    };
    let job = format!(
        "{}-batch-{}",
        spec.name,
        setup::fingerprint(&format!("{version}{input}{output}{num_results}"))
    );
    let existing = client
        .list_batch_inference_jobs()
        .solution_version_arn(version)
        .send()
        .await
        .map_err(sdk("listing batch jobs"))?;
    let arn = match existing
        .batch_inference_jobs()
        .iter()
        .find(|j| j.job_name() == Some(job.as_str()))
    {
        Some(found) => {
            eprintln!("= batch job {job} exists");
            found
                .batch_inference_job_arn()
                .unwrap_or_default()
                .to_owned()
        }
        None => {
            eprintln!("+ batch job {job}: {input} → {output}");
            client
                .create_batch_inference_job()
                .job_name(&job)
                .solution_version_arn(version)
                .num_results(num_results)
                .job_input(
                    BatchInferenceJobInput::builder()
                        .s3_data_source(
                            S3DataConfig::builder()
                                .path(input)
                                .build()
                                .map_err(|e| SetupError(e.to_string()))?,
                        )
                        .build(),
                )
                .job_output(
                    BatchInferenceJobOutput::builder()
                        .s3_data_destination(
                            S3DataConfig::builder()
                                .path(output)
                                .build()
                                .map_err(|e| SetupError(e.to_string()))?,
                        )
                        .build(),
                )
                .role_arn(&config.role_arn)
                .tags(
                    aws_sdk_personalize::types::Tag::builder()
                        .tag_key(setup::TAG_KEY)
                        .tag_value(&config.dataset_group.name)
                        .build()
                        .map_err(|e| SetupError(e.to_string()))?,
                )
                .send()
                .await
                .map_err(sdk("starting the batch job"))?
                .batch_inference_job_arn()
                .unwrap_or_default()
                .to_owned()
        }
    };
    loop {
        let d = client
            .describe_batch_inference_job()
            .batch_inference_job_arn(&arn)
            .send()
            .await
            .map_err(sdk("describing the batch job"))?;
        let j = d.batch_inference_job();
        let status = j.and_then(|j| j.status()).unwrap_or_default();
        eprintln!("  batch job {job}: {status}");
        if status == "ACTIVE" {
            break;
        }
        if status.contains("FAILED") {
            return Err(SetupError(format!(
                "batch job {job} failed: {}",
                j.and_then(|j| j.failure_reason())
                    .unwrap_or("no reason given")
            )));
        }
        tokio::time::sleep(poll(poll_seconds)).await;
    }
    let file = input.rsplit('/').next().unwrap_or("input");
    println!(
        "braze-sync {output}{file}.out --table ITEMS_TABLE   (Personalize names its output after the input)"
    );
    Ok(ExitCode::SUCCESS)
}
