//! Deleting what the setup file created, in dependency order: campaigns first (they are what
//! costs), then the event tracker, filters, solutions (with their versions), datasets, schemas and
//! the dataset group. Only resources carrying setup's tag for this dataset group are deleted;
//! anything else the group holds is named and left, and then the group stays too.

use std::time::Duration;

use aws_sdk_personalize::Client;
use aws_sdk_personalize::error::DisplayErrorContext;

use crate::config::Config;
use crate::setup::{SetupError, TAG_KEY};

pub struct Teardown<'a> {
    pub client: Client,
    pub config: &'a Config,
    pub poll: Duration,
    pub lines: Vec<String>,
    /// Whether something was left behind that setup did not create.
    pub kept: bool,
}

fn sdk<E: std::error::Error + 'static, R: std::fmt::Debug>(
    what: &str,
) -> impl FnOnce(aws_sdk_personalize::error::SdkError<E, R>) -> SetupError + '_ {
    move |e| SetupError(format!("{what}: {}", DisplayErrorContext(e)))
}

impl Teardown<'_> {
    fn say(&mut self, line: String) {
        eprintln!("{line}");
        self.lines.push(line);
    }

    async fn ours(&self, arn: &str) -> Result<bool, SetupError> {
        let tags = self
            .client
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .map_err(sdk("reading tags"))?;
        Ok(tags
            .tags()
            .iter()
            .any(|t| t.tag_key() == TAG_KEY && t.tag_value() == self.config.dataset_group.name))
    }

    /// Deletes `arn` if setup made it, and waits until Personalize no longer has it.
    async fn remove(&mut self, what: &str, arn: &str) -> Result<bool, SetupError> {
        if !self.ours(arn).await? {
            self.say(format!("= {what} was not created by setup: left"));
            self.kept = true;
            return Ok(false);
        }
        self.say(format!("- delete {what}"));
        let client = &self.client;
        let deleted = match arn.split(':').nth(5).and_then(|r| r.split('/').next()) {
            Some("campaign") => client
                .delete_campaign()
                .campaign_arn(arn)
                .send()
                .await
                .map(drop)
                .map_err(sdk("deleting a campaign")),
            Some("event-tracker") => client
                .delete_event_tracker()
                .event_tracker_arn(arn)
                .send()
                .await
                .map(drop)
                .map_err(sdk("deleting an event tracker")),
            Some("filter") => client
                .delete_filter()
                .filter_arn(arn)
                .send()
                .await
                .map(drop)
                .map_err(sdk("deleting a filter")),
            Some("solution") => client
                .delete_solution()
                .solution_arn(arn)
                .send()
                .await
                .map(drop)
                .map_err(sdk("deleting a solution")),
            Some("dataset") => client
                .delete_dataset()
                .dataset_arn(arn)
                .send()
                .await
                .map(drop)
                .map_err(sdk("deleting a dataset")),
            Some("dataset-group") => client
                .delete_dataset_group()
                .dataset_group_arn(arn)
                .send()
                .await
                .map(drop)
                .map_err(sdk("deleting the dataset group")),
            other => Err(SetupError(format!("{arn}: cannot delete a {other:?}"))),
        };
        deleted?;
        self.gone(arn).await?;
        Ok(true)
    }

    /// Waits until a deleted resource is no longer described.
    async fn gone(&self, arn: &str) -> Result<(), SetupError> {
        for _ in 0..10_000 {
            let client = &self.client;
            let found = match arn.split(':').nth(5).and_then(|r| r.split('/').next()) {
                Some("campaign") => client
                    .describe_campaign()
                    .campaign_arn(arn)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| e.into_service_error().is_resource_not_found_exception()),
                Some("event-tracker") => client
                    .describe_event_tracker()
                    .event_tracker_arn(arn)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| e.into_service_error().is_resource_not_found_exception()),
                Some("filter") => client
                    .describe_filter()
                    .filter_arn(arn)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| e.into_service_error().is_resource_not_found_exception()),
                Some("solution") => client
                    .describe_solution()
                    .solution_arn(arn)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| e.into_service_error().is_resource_not_found_exception()),
                Some("dataset") => client
                    .describe_dataset()
                    .dataset_arn(arn)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| e.into_service_error().is_resource_not_found_exception()),
                Some("dataset-group") => client
                    .describe_dataset_group()
                    .dataset_group_arn(arn)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| e.into_service_error().is_resource_not_found_exception()),
                _ => Err(true),
            };
            match found {
                Err(true) => return Ok(()),
                Err(false) => {
                    return Err(SetupError(format!("cannot tell whether {arn} is deleted")));
                }
                Ok(()) => tokio::time::sleep(self.poll).await,
            }
        }
        Err(SetupError(format!("{arn} is still being deleted")))
    }

    pub async fn run(&mut self) -> Result<(), SetupError> {
        let name = self.config.dataset_group.name.clone();
        let groups = self
            .client
            .list_dataset_groups()
            .send()
            .await
            .map_err(sdk("listing dataset groups"))?;
        let Some(group) = groups
            .dataset_groups()
            .iter()
            .find(|g| g.name() == Some(name.as_str()))
            .and_then(|g| g.dataset_group_arn())
            .map(str::to_owned)
        else {
            self.say(format!("= no dataset group {name}: nothing to delete"));
            return Ok(());
        };

        let campaigns = self
            .client
            .list_campaigns()
            .send()
            .await
            .map_err(sdk("listing campaigns"))?;
        for spec in self
            .config
            .solutions
            .iter()
            .filter_map(|s| s.campaign.as_ref())
        {
            if let Some(arn) = campaigns
                .campaigns()
                .iter()
                .find(|c| c.name() == Some(spec.name.as_str()))
                .and_then(|c| c.campaign_arn())
            {
                self.remove(&format!("campaign {}", spec.name), arn).await?;
            }
        }
        let trackers = self
            .client
            .list_event_trackers()
            .dataset_group_arn(&group)
            .send()
            .await
            .map_err(sdk("listing event trackers"))?;
        for tracker in trackers.event_trackers() {
            let (Some(tname), Some(arn)) = (tracker.name(), tracker.event_tracker_arn()) else {
                continue;
            };
            self.remove(&format!("event tracker {tname}"), arn).await?;
        }
        let filters = self
            .client
            .list_filters()
            .dataset_group_arn(&group)
            .send()
            .await
            .map_err(sdk("listing filters"))?;
        for filter in filters.filters() {
            let (Some(fname), Some(arn)) = (filter.name(), filter.filter_arn()) else {
                continue;
            };
            self.remove(&format!("filter {fname}"), arn).await?;
        }
        let solutions = self
            .client
            .list_solutions()
            .dataset_group_arn(&group)
            .send()
            .await
            .map_err(sdk("listing solutions"))?;
        for solution in solutions.solutions() {
            let (Some(sname), Some(arn)) = (solution.name(), solution.solution_arn()) else {
                continue;
            };
            self.remove(&format!("solution {sname} and its versions"), arn)
                .await?;
        }
        let datasets = self
            .client
            .list_datasets()
            .dataset_group_arn(&group)
            .send()
            .await
            .map_err(sdk("listing datasets"))?;
        let mut schemas = Vec::new();
        for dataset in datasets.datasets() {
            let (Some(kind), Some(arn)) = (dataset.dataset_type(), dataset.dataset_arn()) else {
                continue;
            };
            let schema = self
                .client
                .describe_dataset()
                .dataset_arn(arn)
                .send()
                .await
                .map_err(sdk("describing a dataset"))?
                .dataset()
                .and_then(|d| d.schema_arn())
                .map(str::to_owned);
            if self.remove(&format!("the {kind} dataset"), arn).await? {
                schemas.extend(schema);
            }
        }
        // Schemas take no tags: those of datasets setup made, named as setup names them.
        let prefix = format!("{}-", &name[..name.len().min(40)]);
        for schema in schemas {
            let schema_name = schema.rsplit('/').next().unwrap_or_default().to_owned();
            if !schema_name.starts_with(&prefix) {
                continue;
            }
            self.say(format!("- delete schema {schema_name}"));
            if let Err(e) = self.client.delete_schema().schema_arn(&schema).send().await {
                let e = e.into_service_error();
                if e.is_resource_in_use_exception() {
                    self.say(format!(
                        "= schema {schema_name} is used by another dataset: left"
                    ));
                } else if !e.is_resource_not_found_exception() {
                    return Err(SetupError(format!("deleting schema {schema_name}: {e}")));
                }
            }
        }
        if self.kept {
            self.say(format!(
                "= dataset group {name} holds what setup did not create: left"
            ));
            return Ok(());
        }
        self.remove(&format!("dataset group {name}"), &group)
            .await?;
        Ok(())
    }
}
