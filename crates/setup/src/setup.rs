//! Bringing Personalize to what the setup file says, one resource at a time, in dependency order:
//! dataset group, schemas, datasets, import jobs, solutions, versions, campaigns, filters, the
//! event tracker. Every step first looks for what exists, by name; `plan` stops there and says
//! what `apply` would do, `apply` creates what is missing and waits for it.
//!
//! Nothing is derived from local state: a rerun, or a run after an interrupted one, finds what
//! the last one made (or is still making) and goes on from there. Names carry fingerprints where
//! Personalize's resources cannot change: a schema's is its JSON, an import job's the S3 object's
//! ETag, a solution's its recipe and settings. So a new file is a new import job, new settings are
//! a new solution, and newer data is a new solution version; nothing is replaced or deleted.

use std::time::Duration;

use aws_sdk_personalize::Client;
use aws_sdk_personalize::error::DisplayErrorContext;
use aws_sdk_personalize::types::{
    CampaignSummary, DataSource, HpoConfig, HpoObjective, HpoResourceConfig, SolutionConfig, Tag,
    TrainingMode,
};

use crate::config::{Config, Serves, Solution};

/// The tag on everything setup creates (but schemas, which take none): teardown deletes only
/// what carries it.
pub const TAG_KEY: &str = "personalize-braze:setup";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plan,
    Apply,
}

pub struct Options {
    pub mode: Mode,
    /// How often a long step is looked at.
    pub poll: Duration,
    /// Move the campaign to a new version even when its metrics are worse.
    pub promote: bool,
}

pub struct Setup<'a> {
    pub client: Client,
    pub s3: aws_sdk_s3::Client,
    pub config: &'a Config,
    pub options: Options,
    /// What a plan says, or an apply did, line by line.
    pub lines: Vec<String>,
    /// The stack's parameters, as far as known.
    pub parameters: Parameters,
    /// Solution versions trained, with their metrics, for the comparison.
    pub trained: Vec<Versions>,
}

#[derive(Debug, Default, Clone)]
pub struct Parameters {
    pub personalize_arn: Option<String>,
    pub related_items_arn: Option<String>,
    pub ranking_arn: Option<String>,
    pub filters: Vec<String>,
    pub promotions: Vec<String>,
    pub event_tracker_id: Option<String>,
}

/// A solution's active versions, newest last, with their metrics; and which one serves.
#[derive(Debug, Clone)]
pub struct Versions {
    pub solution: String,
    /// Whether it recommends for users, as the embedded model does (not related items or
    /// rankings): only then is the embedded model's score beside its versions.
    pub for_users: bool,
    pub versions: Vec<(String, std::collections::BTreeMap<String, f64>)>,
    pub serving: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// An SDK error in words, after what was being done.
pub fn sdk<E: std::error::Error + 'static, R: std::fmt::Debug>(
    what: &str,
) -> impl FnOnce(aws_sdk_personalize::error::SdkError<E, R>) -> SetupError + '_ {
    move |e| SetupError(format!("{what}: {}", DisplayErrorContext(e)))
}

/// A placeholder for what a plan would create: later steps name it.
fn planned(what: &str) -> String {
    format!("(new {what})")
}

/// 8 hex digits of a stable hash.
pub fn fingerprint(text: &str) -> String {
    format!("{:08x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()) as u32)
}

fn tags(group: &str) -> Tag {
    Tag::builder()
        .tag_key(TAG_KEY)
        .tag_value(group)
        .build()
        .expect("key and value are set")
}

/// A resource setup waits on, by its ARN.
enum Resource<'a> {
    DatasetGroup(&'a str),
    Dataset(&'a str),
    ImportJob(&'a str),
    Solution(&'a str),
    Version(&'a str),
    Campaign(&'a str),
    Filter(&'a str),
    EventTracker(&'a str),
}

/// A resource's status as `Describe…` gives it.
struct Status {
    state: String,
    reason: Option<String>,
    /// When it last changed (an import job's end, for retraining), Unix seconds.
    updated: Option<i64>,
}

impl Resource<'_> {
    async fn status(&self, client: &Client) -> Result<Status, SetupError> {
        let status = |state: Option<&str>,
                      reason: Option<&str>,
                      updated: Option<&aws_smithy_types::DateTime>| Status {
            state: state.unwrap_or_default().to_owned(),
            reason: reason.map(str::to_owned),
            updated: updated.map(|t| t.secs()),
        };
        Ok(match *self {
            Resource::DatasetGroup(arn) => {
                let d = client
                    .describe_dataset_group()
                    .dataset_group_arn(arn)
                    .send()
                    .await
                    .map_err(sdk("describing the dataset group"))?;
                let g = d.dataset_group();
                status(
                    g.and_then(|g| g.status()),
                    g.and_then(|g| g.failure_reason()),
                    None,
                )
            }
            Resource::Dataset(arn) => {
                let d = client
                    .describe_dataset()
                    .dataset_arn(arn)
                    .send()
                    .await
                    .map_err(sdk("describing a dataset"))?;
                status(d.dataset().and_then(|d| d.status()), None, None)
            }
            Resource::ImportJob(arn) => {
                let d = client
                    .describe_dataset_import_job()
                    .dataset_import_job_arn(arn)
                    .send()
                    .await
                    .map_err(sdk("describing an import job"))?;
                let j = d.dataset_import_job();
                status(
                    j.and_then(|j| j.status()),
                    j.and_then(|j| j.failure_reason()),
                    j.and_then(|j| j.last_updated_date_time()),
                )
            }
            Resource::Solution(arn) => {
                let d = client
                    .describe_solution()
                    .solution_arn(arn)
                    .send()
                    .await
                    .map_err(sdk("describing a solution"))?;
                status(d.solution().and_then(|s| s.status()), None, None)
            }
            Resource::Version(arn) => {
                let d = client
                    .describe_solution_version()
                    .solution_version_arn(arn)
                    .send()
                    .await
                    .map_err(sdk("describing a solution version"))?;
                let v = d.solution_version();
                status(
                    v.and_then(|v| v.status()),
                    v.and_then(|v| v.failure_reason()),
                    None,
                )
            }
            Resource::Campaign(arn) => {
                let d = client
                    .describe_campaign()
                    .campaign_arn(arn)
                    .send()
                    .await
                    .map_err(sdk("describing a campaign"))?;
                let c = d.campaign();
                status(
                    c.and_then(|c| c.status()),
                    c.and_then(|c| c.failure_reason()),
                    None,
                )
            }
            Resource::Filter(arn) => {
                let d = client
                    .describe_filter()
                    .filter_arn(arn)
                    .send()
                    .await
                    .map_err(sdk("describing a filter"))?;
                let f = d.filter();
                status(
                    f.and_then(|f| f.status()),
                    f.and_then(|f| f.failure_reason()),
                    None,
                )
            }
            Resource::EventTracker(arn) => {
                let d = client
                    .describe_event_tracker()
                    .event_tracker_arn(arn)
                    .send()
                    .await
                    .map_err(sdk("describing an event tracker"))?;
                status(d.event_tracker().and_then(|t| t.status()), None, None)
            }
        })
    }
}

impl Setup<'_> {
    fn say(&mut self, line: impl Into<String>) {
        let line = line.into();
        eprintln!("{line}");
        self.lines.push(line);
    }

    fn applying(&self) -> bool {
        self.options.mode == Mode::Apply
    }

    /// Waits until the resource is done, printing each change of its status: `Ok` with its last
    /// description when `ACTIVE`, the failure reason as an error when it failed.
    async fn wait_for(&mut self, what: &str, resource: Resource<'_>) -> Result<Status, SetupError> {
        let started = std::time::Instant::now();
        let mut last = String::new();
        loop {
            let now = resource.status(&self.client).await?;
            if now.state != last {
                eprintln!(
                    "  {what}: {} ({:.0} s)",
                    now.state,
                    started.elapsed().as_secs_f64()
                );
                last = now.state.clone();
            }
            match now.state.as_str() {
                "ACTIVE" => return Ok(now),
                s if s.contains("FAILED") => {
                    return Err(SetupError(format!(
                        "{what} failed: {}",
                        now.reason
                            .unwrap_or_else(|| "Personalize gave no reason".to_owned())
                    )));
                }
                _ => tokio::time::sleep(self.options.poll).await,
            }
        }
    }

    /// Runs every step, in order.
    pub async fn run(&mut self) -> Result<(), SetupError> {
        let group = self.dataset_group().await?;
        let mut imported_at = None;
        for (kind, _) in self.config.datasets() {
            let dataset = self.dataset(&group, kind).await?;
            let at = self.import(&dataset, kind).await?;
            imported_at = imported_at.max(at);
        }
        for solution in &self.config.solutions {
            let (solution_arn, version) = self.solution(&group, solution, imported_at).await?;
            if let Some(campaign) = &solution.campaign {
                let arn = self
                    .campaign(solution, campaign, &solution_arn, version.as_deref())
                    .await?;
                match solution.serves() {
                    Serves::Recommendations => self.parameters.personalize_arn = Some(arn),
                    Serves::RelatedItems => self.parameters.related_items_arn = Some(arn),
                    Serves::Ranking => self.parameters.ranking_arn = Some(arn),
                }
            }
        }
        for filter in &self.config.filters {
            let arn = self
                .filter(&group, &filter.name, &filter.expression)
                .await?;
            if filter.promotion {
                self.parameters.promotions.push(arn);
            } else {
                self.parameters.filters.push(arn);
            }
        }
        if let Some(tracker) = &self.config.event_tracker {
            let id = self.event_tracker(&group, &tracker.name).await?;
            self.parameters.event_tracker_id = Some(id);
        }
        Ok(())
    }

    async fn dataset_group(&mut self) -> Result<String, SetupError> {
        let name = self.config.dataset_group.name.clone();
        let groups = self
            .client
            .list_dataset_groups()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(sdk("listing dataset groups"))?;
        if let Some(found) = groups.iter().find(|g| g.name() == Some(name.as_str())) {
            let arn = found.dataset_group_arn().unwrap_or_default().to_owned();
            self.say(format!("= dataset group {name} exists"));
            self.wait_dataset_group(&arn).await?;
            return Ok(arn);
        }
        let domain = self.config.dataset_group.domain.clone();
        self.say(format!(
            "+ create dataset group {name} ({})",
            domain.as_deref().unwrap_or("custom")
        ));
        if !self.applying() {
            return Ok(planned("dataset group"));
        }
        let created = self
            .client
            .create_dataset_group()
            .name(&name)
            .set_domain(domain.map(|d| d.as_str().into()))
            .tags(tags(&name))
            .send()
            .await
            .map_err(sdk("creating the dataset group"))?;
        let arn = created.dataset_group_arn().unwrap_or_default().to_owned();
        self.wait_dataset_group(&arn).await?;
        Ok(arn)
    }

    async fn wait_dataset_group(&mut self, arn: &str) -> Result<(), SetupError> {
        if !self.applying() {
            return Ok(());
        }
        self.wait_for("dataset group", Resource::DatasetGroup(arn))
            .await
            .map(drop)
    }

    /// The dataset of `kind`, with its schema (a new schema when the file's differs).
    async fn dataset(&mut self, group: &str, kind: &'static str) -> Result<String, SetupError> {
        let spec = self
            .config
            .datasets()
            .into_iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, d)| d.clone())
            .expect("a dataset the file names");
        let text = std::fs::read_to_string(&spec.schema)
            .map_err(|e| SetupError(format!("cannot read {}: {e}", spec.schema.display())))?;
        let compact: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| SetupError(format!("{}: not JSON: {e}", spec.schema.display())))?;
        let compact = compact.to_string();
        let group_name = &self.config.dataset_group.name;
        let schema_name = format!(
            "{}-{}-{}",
            &group_name[..group_name.len().min(40)],
            kind.to_lowercase(),
            fingerprint(&compact)
        );
        let schema_arn = self.schema(&schema_name, &compact).await?;

        let datasets = if group.starts_with("(new") {
            Vec::new()
        } else {
            self.client
                .list_datasets()
                .dataset_group_arn(group)
                .send()
                .await
                .map_err(sdk("listing datasets"))?
                .datasets()
                .to_vec()
        };
        if let Some(found) = datasets.iter().find(|d| {
            d.dataset_type()
                .is_some_and(|t| t.eq_ignore_ascii_case(kind))
        }) {
            let arn = found.dataset_arn().unwrap_or_default().to_owned();
            let described = self
                .client
                .describe_dataset()
                .dataset_arn(&arn)
                .send()
                .await
                .map_err(sdk("describing a dataset"))?;
            let current = described
                .dataset()
                .and_then(|d| d.schema_arn())
                .unwrap_or_default();
            if !schema_arn.starts_with("(new") && current != schema_arn {
                return Err(SetupError(format!(
                    "the {kind} dataset uses schema {current}, and the file's schema is another \
                     ({schema_name}): a dataset's schema is not replaced by setup. Restore the \
                     schema file, or tear the dataset group down and apply again."
                )));
            }
            self.say(format!("= {kind} dataset exists"));
            self.wait_dataset(&arn, kind).await?;
            return Ok(arn);
        }
        self.say(format!(
            "+ create the {kind} dataset (schema {schema_name})"
        ));
        if !self.applying() {
            return Ok(planned(&format!("{kind} dataset")));
        }
        let created = self
            .client
            .create_dataset()
            .name(format!("{}-{}", group_name, kind.to_lowercase()))
            .schema_arn(&schema_arn)
            .dataset_group_arn(group)
            .dataset_type(kind)
            .tags(tags(group_name))
            .send()
            .await
            .map_err(sdk("creating a dataset"))?;
        let arn = created.dataset_arn().unwrap_or_default().to_owned();
        self.wait_dataset(&arn, kind).await?;
        Ok(arn)
    }

    async fn wait_dataset(&mut self, arn: &str, kind: &str) -> Result<(), SetupError> {
        if !self.applying() {
            return Ok(());
        }
        self.wait_for(&format!("{kind} dataset"), Resource::Dataset(arn))
            .await
            .map(drop)
    }

    async fn schema(&mut self, name: &str, schema: &str) -> Result<String, SetupError> {
        let schemas = self
            .client
            .list_schemas()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(sdk("listing schemas"))?;
        if let Some(found) = schemas.iter().find(|s| s.name() == Some(name)) {
            self.say(format!("= schema {name} exists"));
            return Ok(found.schema_arn().unwrap_or_default().to_owned());
        }
        self.say(format!("+ create schema {name}"));
        if !self.applying() {
            return Ok(planned("schema"));
        }
        let domain = self.config.dataset_group.domain.clone();
        let created = self
            .client
            .create_schema()
            .name(name)
            .schema(schema)
            .set_domain(domain.map(|d| d.as_str().into()))
            .send()
            .await
            .map_err(sdk("creating a schema"))?;
        Ok(created.schema_arn().unwrap_or_default().to_owned())
    }

    /// Imports the dataset's S3 object unless this very object was imported: the job's name
    /// carries its ETag. Returns when the newest import finished (for retraining).
    async fn import(&mut self, dataset: &str, kind: &str) -> Result<Option<i64>, SetupError> {
        let data = self
            .config
            .datasets()
            .into_iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, d)| d.data.clone())
            .expect("a dataset the file names");
        let (bucket, key) = data[5..].split_once('/').expect("checked with the file");
        let head = self
            .s3
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                SetupError(format!(
                    "cannot read {data}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                ))
            })?;
        let etag = head
            .e_tag()
            .unwrap_or_default()
            .trim_matches('"')
            .to_owned();
        let group_name = &self.config.dataset_group.name;
        let job_name = format!(
            "{}-{}-{}",
            &group_name[..group_name.len().min(40)],
            kind.to_lowercase(),
            fingerprint(&format!("{data}#{etag}"))
        );
        let jobs = if dataset.starts_with("(new") {
            Vec::new()
        } else {
            self.client
                .list_dataset_import_jobs()
                .dataset_arn(dataset)
                .send()
                .await
                .map_err(sdk("listing import jobs"))?
                .dataset_import_jobs()
                .to_vec()
        };
        let arn = match jobs
            .iter()
            .find(|j| j.job_name() == Some(job_name.as_str()))
        {
            Some(job) => {
                let status = job.status().unwrap_or_default();
                if status == "CREATE FAILED" {
                    let reason = job.failure_reason().unwrap_or("no reason given");
                    return Err(SetupError(format!(
                        "importing {data} into the {kind} dataset failed: {reason}. Fix the file \
                         (check-datasets finds most causes) and apply again: a changed file is a \
                         new import."
                    )));
                }
                self.say(format!(
                    "= {data} is imported into the {kind} dataset ({job_name})"
                ));
                job.dataset_import_job_arn().unwrap_or_default().to_owned()
            }
            None => {
                self.say(format!(
                    "+ import {data} into the {kind} dataset (job {job_name}): {}",
                    if jobs.is_empty() {
                        "its first import"
                    } else {
                        "the object changed since the last import"
                    }
                ));
                if !self.applying() {
                    return Ok(Some(i64::MAX));
                }
                self.client
                    .create_dataset_import_job()
                    .job_name(&job_name)
                    .dataset_arn(dataset)
                    .data_source(DataSource::builder().data_location(&data).build())
                    .role_arn(&self.config.role_arn)
                    .import_mode("FULL".into())
                    .tags(tags(group_name))
                    .send()
                    .await
                    .map_err(sdk("starting an import job"))?
                    .dataset_import_job_arn()
                    .unwrap_or_default()
                    .to_owned()
            }
        };
        if !self.applying() {
            return Ok(None);
        }
        let what = format!("importing {data}");
        let finished = self
            .wait_for(&what, Resource::ImportJob(&arn))
            .await
            .map_err(|e| {
                SetupError(format!(
                    "{e}. Fix the file (check-datasets finds most causes) and apply again: a \
                     changed file is a new import."
                ))
            })?;
        Ok(finished.updated)
    }

    /// The solution for these settings, and its newest active version (trained if the data is
    /// newer than every version).
    async fn solution(
        &mut self,
        group: &str,
        spec: &Solution,
        imported_at: Option<i64>,
    ) -> Result<(String, Option<String>), SetupError> {
        let settings = serde_json::json!({
            "recipe": spec.recipe,
            "hyperparameters": spec.hyperparameters,
            "hpo": spec.hpo.as_ref().map(|h| (&h.objective, &h.direction, h.jobs, h.parallel_jobs)),
            "event_type": spec.event_type,
        });
        let name = format!("{}-{}", spec.name, fingerprint(&settings.to_string()));
        let solutions = if group.starts_with("(new") {
            Vec::new()
        } else {
            self.client
                .list_solutions()
                .dataset_group_arn(group)
                .send()
                .await
                .map_err(sdk("listing solutions"))?
                .solutions()
                .to_vec()
        };
        let arn = match solutions.iter().find(|s| s.name() == Some(name.as_str())) {
            Some(found) => {
                self.say(format!("= solution {name} exists ({})", spec.recipe));
                found.solution_arn().unwrap_or_default().to_owned()
            }
            None => {
                let earlier = solutions
                    .iter()
                    .filter_map(|s| s.name())
                    .filter(|n| n.starts_with(&format!("{}-", spec.name)))
                    .collect::<Vec<_>>();
                self.say(format!(
                    "+ create solution {name} ({}{}){}",
                    spec.recipe,
                    if spec.hpo.is_some() { ", with HPO" } else { "" },
                    if earlier.is_empty() {
                        String::new()
                    } else {
                        format!(": its settings changed (kept: {})", earlier.join(", "))
                    }
                ));
                if !self.applying() {
                    self.say(format!("+ train the first version of {name}"));
                    return Ok((planned("solution"), Some(planned("version"))));
                }
                let mut config = SolutionConfig::builder().set_algorithm_hyper_parameters(
                    (!spec.hyperparameters.is_empty())
                        .then(|| spec.hyperparameters.clone().into_iter().collect()),
                );
                if let Some(hpo) = &spec.hpo {
                    config = config.hpo_config(
                        HpoConfig::builder()
                            .hpo_objective(
                                HpoObjective::builder()
                                    .r#type(&hpo.direction)
                                    .metric_name(&hpo.objective)
                                    .build(),
                            )
                            .hpo_resource_config(
                                HpoResourceConfig::builder()
                                    .max_number_of_training_jobs(hpo.jobs.to_string())
                                    .max_parallel_training_jobs(hpo.parallel_jobs.to_string())
                                    .build(),
                            )
                            .build(),
                    );
                }
                self.client
                    .create_solution()
                    .name(&name)
                    .dataset_group_arn(group)
                    .recipe_arn(spec.recipe_arn())
                    .perform_hpo(spec.hpo.is_some())
                    .solution_config(config.build())
                    .set_event_type(spec.event_type.clone())
                    .tags(tags(&self.config.dataset_group.name))
                    .send()
                    .await
                    .map_err(sdk("creating a solution"))?
                    .solution_arn()
                    .unwrap_or_default()
                    .to_owned()
            }
        };
        if self.applying() {
            self.wait_for(&format!("solution {name}"), Resource::Solution(&arn))
                .await?;
        }
        let for_users = spec.serves() == Serves::Recommendations;
        let version = self.version(&arn, &name, imported_at, for_users).await?;
        Ok((arn, version))
    }

    async fn version(
        &mut self,
        solution: &str,
        name: &str,
        imported_at: Option<i64>,
        for_users: bool,
    ) -> Result<Option<String>, SetupError> {
        let mut versions = if solution.starts_with("(new") {
            Vec::new()
        } else {
            self.client
                .list_solution_versions()
                .solution_arn(solution)
                .send()
                .await
                .map_err(sdk("listing solution versions"))?
                .solution_versions()
                .to_vec()
        };
        versions.sort_by_key(|v| v.creation_date_time().map(|t| t.secs()));
        let newest = versions.last();
        let training = newest.is_some_and(|v| {
            v.status()
                .is_some_and(|s| s.contains("PENDING") || s.contains("IN_PROGRESS"))
        });
        let newer_data = match (newest, imported_at) {
            (None, _) => true,
            (Some(v), Some(at)) => v.creation_date_time().map(|t| t.secs()).unwrap_or(0) < at,
            (Some(_), None) => false,
        };
        let arn = if training {
            self.say(format!("= a version of {name} is training"));
            newest
                .and_then(|v| v.solution_version_arn())
                .unwrap_or_default()
                .to_owned()
        } else if newer_data {
            self.say(format!(
                "+ train a new version of {name}: {}",
                if newest.is_none() {
                    "it has none"
                } else {
                    "data was imported after its newest version"
                }
            ));
            if !self.applying() {
                return Ok(Some(planned("version")));
            }
            self.client
                .create_solution_version()
                .solution_arn(solution)
                .training_mode(TrainingMode::Full)
                .tags(tags(&self.config.dataset_group.name))
                .send()
                .await
                .map_err(sdk("starting training"))?
                .solution_version_arn()
                .unwrap_or_default()
                .to_owned()
        } else {
            let newest = newest.expect("a newest version");
            if newest.status() == Some("CREATE FAILED") {
                return Err(SetupError(format!(
                    "training {name} failed: {}. Fix the data and import it again: newer data \
                     trains a new version.",
                    newest
                        .failure_reason()
                        .unwrap_or("Personalize gave no reason")
                )));
            }
            self.say(format!("= {name} is trained on the newest data"));
            newest.solution_version_arn().unwrap_or_default().to_owned()
        };
        if !self.applying() {
            return Ok(Some(arn));
        }
        self.wait_for(&format!("training {name}"), Resource::Version(&arn))
            .await?;
        self.compare(solution, name, for_users).await?;
        Ok(Some(arn))
    }

    /// Records the solution's active versions and their metrics, for the comparison.
    async fn compare(
        &mut self,
        solution: &str,
        name: &str,
        for_users: bool,
    ) -> Result<(), SetupError> {
        let mut versions = self
            .client
            .list_solution_versions()
            .solution_arn(solution)
            .send()
            .await
            .map_err(sdk("listing solution versions"))?
            .solution_versions()
            .to_vec();
        versions.retain(|v| v.status() == Some("ACTIVE"));
        versions.sort_by_key(|v| v.creation_date_time().map(|t| t.secs()));
        let mut scored = Vec::new();
        for version in versions.iter().rev().take(5).rev() {
            let arn = version.solution_version_arn().unwrap_or_default();
            let metrics = self.metrics(arn).await?;
            scored.push((arn.to_owned(), metrics));
        }
        self.trained.push(Versions {
            solution: name.to_owned(),
            for_users,
            versions: scored,
            serving: None,
        });
        Ok(())
    }

    pub async fn metrics(
        &self,
        version: &str,
    ) -> Result<std::collections::BTreeMap<String, f64>, SetupError> {
        let answer = self
            .client
            .get_solution_metrics()
            .solution_version_arn(version)
            .send()
            .await
            .map_err(sdk("reading a version's metrics"))?;
        Ok(answer
            .metrics()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default())
    }

    async fn campaign(
        &mut self,
        spec: &Solution,
        campaign: &crate::config::Campaign,
        _solution: &str,
        version: Option<&str>,
    ) -> Result<String, SetupError> {
        let name = campaign.name.clone();
        let existing: Vec<CampaignSummary> = self
            .client
            .list_campaigns()
            .send()
            .await
            .map_err(sdk("listing campaigns"))?
            .campaigns()
            .to_vec();
        let tps = campaign.min_tps;
        let cost = format!(
            "billed for {tps} TPS every hour it exists ({} TPS-hours a month), used or not",
            tps * 24 * 30
        );
        let Some(found) = existing.iter().find(|c| c.name() == Some(name.as_str())) else {
            self.say(format!(
                "+ create campaign {name} on {}'s newest version: {cost}",
                spec.name
            ));
            if !self.applying() {
                return Ok(planned("campaign"));
            }
            let version =
                version.ok_or_else(|| SetupError("no trained version to serve".into()))?;
            let created = self
                .client
                .create_campaign()
                .name(&name)
                .solution_version_arn(version)
                .min_provisioned_tps(tps)
                .tags(tags(&self.config.dataset_group.name))
                .send()
                .await
                .map_err(sdk("creating a campaign"))?;
            let arn = created.campaign_arn().unwrap_or_default().to_owned();
            self.wait_campaign(&arn, &name).await?;
            self.mark_serving(version);
            return Ok(arn);
        };
        let arn = found.campaign_arn().unwrap_or_default().to_owned();
        let described = self
            .client
            .describe_campaign()
            .campaign_arn(&arn)
            .send()
            .await
            .map_err(sdk("describing a campaign"))?;
        let current = described
            .campaign()
            .cloned()
            .unwrap_or_else(|| aws_sdk_personalize::types::Campaign::builder().build());
        let serving = current
            .solution_version_arn()
            .unwrap_or_default()
            .to_owned();
        let current_tps = current.min_provisioned_tps().unwrap_or(0);
        let mut update_version = None;
        if let Some(version) = version
            && version != serving
        {
            let (new, old) = if self.applying() {
                (
                    self.metrics(version).await?,
                    self.metrics(&serving).await.unwrap_or_default(),
                )
            } else {
                Default::default()
            };
            let key = "normalized_discounted_cumulative_gain_at_10";
            let (new_score, old_score) = (
                new.get(key).copied().unwrap_or(0.0),
                old.get(key).copied().unwrap_or(0.0),
            );
            if !self.applying() {
                self.say(format!(
                    "~ campaign {name}: moves to the newest version if its NDCG@10 is no worse than the serving one's"
                ));
            } else if new_score >= old_score || self.options.promote {
                self.say(format!(
                    "~ campaign {name}: moves to the newest version (NDCG@10 {new_score:.4}, serving {old_score:.4}{})",
                    if new_score < old_score { "; --promote" } else { "" }
                ));
                update_version = Some(version.to_owned());
            } else {
                self.say(format!(
                    "! campaign {name} stays on its version: the newest one's NDCG@10 is {new_score:.4}, \
                     worse than the serving {old_score:.4} (--promote moves it anyway)"
                ));
            }
        }
        if current_tps != tps {
            self.say(format!(
                "~ campaign {name}: minimum TPS {current_tps} → {tps}: {cost}"
            ));
        }
        if update_version.is_none() && current_tps == tps {
            self.say(format!("= campaign {name} exists: {cost}"));
        }
        if self.applying() && (update_version.is_some() || current_tps != tps) {
            self.wait_campaign(&arn, &name).await?;
            self.client
                .update_campaign()
                .campaign_arn(&arn)
                .set_solution_version_arn(update_version.clone())
                .min_provisioned_tps(tps)
                .send()
                .await
                .map_err(sdk("updating a campaign"))?;
        }
        if self.applying() {
            self.wait_campaign(&arn, &name).await?;
        }
        self.mark_serving(update_version.as_deref().unwrap_or(&serving));
        Ok(arn)
    }

    fn mark_serving(&mut self, version: &str) {
        for versions in &mut self.trained {
            if versions.versions.iter().any(|(arn, _)| arn == version) {
                versions.serving = Some(version.to_owned());
            }
        }
    }

    async fn wait_campaign(&mut self, arn: &str, name: &str) -> Result<(), SetupError> {
        self.wait_for(&format!("campaign {name}"), Resource::Campaign(arn))
            .await
            .map(drop)
    }

    async fn filter(
        &mut self,
        group: &str,
        name: &str,
        expression: &str,
    ) -> Result<String, SetupError> {
        let filters = if group.starts_with("(new") {
            Vec::new()
        } else {
            self.client
                .list_filters()
                .dataset_group_arn(group)
                .send()
                .await
                .map_err(sdk("listing filters"))?
                .filters()
                .to_vec()
        };
        let arn = match filters.iter().find(|f| f.name() == Some(name)) {
            Some(found) => {
                let arn = found.filter_arn().unwrap_or_default().to_owned();
                let described = self
                    .client
                    .describe_filter()
                    .filter_arn(&arn)
                    .send()
                    .await
                    .map_err(sdk("describing a filter"))?;
                let current = described
                    .filter()
                    .and_then(|f| f.filter_expression())
                    .unwrap_or_default();
                if current != expression {
                    return Err(SetupError(format!(
                        "filter {name} exists with another expression ({current}); filters cannot \
                         change, and setup replaces nothing: give the new one another name"
                    )));
                }
                self.say(format!("= filter {name} exists"));
                arn
            }
            None => {
                self.say(format!("+ create filter {name}: {expression}"));
                if !self.applying() {
                    return Ok(planned("filter"));
                }
                self.client
                    .create_filter()
                    .name(name)
                    .dataset_group_arn(group)
                    .filter_expression(expression)
                    .tags(tags(&self.config.dataset_group.name))
                    .send()
                    .await
                    .map_err(sdk("creating a filter"))?
                    .filter_arn()
                    .unwrap_or_default()
                    .to_owned()
            }
        };
        if self.applying() {
            self.wait_for(&format!("filter {name}"), Resource::Filter(&arn))
                .await?;
        }
        Ok(arn)
    }

    async fn event_tracker(&mut self, group: &str, name: &str) -> Result<String, SetupError> {
        let trackers = if group.starts_with("(new") {
            Vec::new()
        } else {
            self.client
                .list_event_trackers()
                .dataset_group_arn(group)
                .send()
                .await
                .map_err(sdk("listing event trackers"))?
                .event_trackers()
                .to_vec()
        };
        let arn = match trackers.iter().find(|t| t.name() == Some(name)) {
            Some(found) => {
                self.say(format!("= event tracker {name} exists"));
                found.event_tracker_arn().unwrap_or_default().to_owned()
            }
            None => {
                self.say(format!("+ create event tracker {name}"));
                if !self.applying() {
                    return Ok(planned("event tracker's id"));
                }
                self.client
                    .create_event_tracker()
                    .name(name)
                    .dataset_group_arn(group)
                    .tags(tags(&self.config.dataset_group.name))
                    .send()
                    .await
                    .map_err(sdk("creating an event tracker"))?
                    .event_tracker_arn()
                    .unwrap_or_default()
                    .to_owned()
            }
        };
        if !self.applying() {
            let d = self
                .client
                .describe_event_tracker()
                .event_tracker_arn(&arn)
                .send()
                .await
                .map_err(sdk("describing an event tracker"))?;
            return Ok(d
                .event_tracker()
                .and_then(|t| t.tracking_id())
                .unwrap_or_default()
                .to_owned());
        }
        self.wait_for(
            &format!("event tracker {name}"),
            Resource::EventTracker(&arn),
        )
        .await?;
        let d = self
            .client
            .describe_event_tracker()
            .event_tracker_arn(&arn)
            .send()
            .await
            .map_err(sdk("describing an event tracker"))?;
        Ok(d.event_tracker()
            .and_then(|t| t.tracking_id())
            .unwrap_or_default()
            .to_owned())
    }
}

impl Parameters {
    /// The stack's parameters as `sam deploy --parameter-overrides` takes them.
    pub fn overrides(&self) -> String {
        let mut parts = Vec::new();
        let mut add = |name: &str, value: &str| {
            if !value.is_empty() {
                parts.push(format!("{name}={value}"));
            }
        };
        add(
            "PersonalizeArn",
            self.personalize_arn.as_deref().unwrap_or(""),
        );
        add(
            "RelatedItemsArn",
            self.related_items_arn.as_deref().unwrap_or(""),
        );
        add("RankingArn", self.ranking_arn.as_deref().unwrap_or(""));
        add("Filters", &self.filters.join(","));
        add("Promotions", &self.promotions.join(","));
        add(
            "EventTrackerId",
            self.event_tracker_id.as_deref().unwrap_or(""),
        );
        parts.join(" ")
    }
}
