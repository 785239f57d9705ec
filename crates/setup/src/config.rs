//! The setup file: what Personalize should have, in TOML. Checked whole before any call, each
//! problem naming its key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub dataset_group: DatasetGroup,
    /// The role Personalize reads the datasets (and writes batch output) with.
    pub role_arn: String,
    pub datasets: Datasets,
    #[serde(default)]
    pub solutions: Vec<Solution>,
    #[serde(default)]
    pub filters: Vec<Filter>,
    pub event_tracker: Option<EventTracker>,
    /// Our own offline evaluation of the embedded model, printed beside Personalize's metrics.
    pub compare: Option<Compare>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetGroup {
    pub name: String,
    /// `ECOMMERCE` or `VIDEO_ON_DEMAND`; a custom dataset group when absent.
    pub domain: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Datasets {
    pub interactions: Dataset,
    pub items: Option<Dataset>,
    pub users: Option<Dataset>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    /// `s3://BUCKET/KEY` of the CSV file.
    pub data: String,
    /// The schema's Avro JSON file (what `check-datasets --write-schemas` writes), relative to
    /// the setup file.
    pub schema: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Solution {
    pub name: String,
    #[serde(default = "default_recipe")]
    pub recipe: String,
    /// Hyperparameters by name (`min_user_history_length_percentile = "0.05"`).
    #[serde(default)]
    pub hyperparameters: BTreeMap<String, String>,
    /// Hyperparameter optimisation: off unless given.
    pub hpo: Option<Hpo>,
    /// Only interactions of this event type train it.
    pub event_type: Option<String>,
    /// Served through a campaign; batch only when absent.
    pub campaign: Option<Campaign>,
}

fn default_recipe() -> String {
    "aws-user-personalization-v2".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hpo {
    /// A metric `GetSolutionMetrics` reports (`normalized_discounted_cumulative_gain_at_25`, …).
    #[serde(default = "default_objective")]
    pub objective: String,
    /// `Maximize` or `Minimize`.
    #[serde(default = "default_direction")]
    pub direction: String,
    #[serde(default = "default_jobs")]
    pub jobs: u32,
    #[serde(default = "default_parallel")]
    pub parallel_jobs: u32,
}

fn default_objective() -> String {
    "normalized_discounted_cumulative_gain_at_25".to_owned()
}
fn default_direction() -> String {
    "Maximize".to_owned()
}
fn default_jobs() -> u32 {
    8
}
fn default_parallel() -> u32 {
    2
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Campaign {
    pub name: String,
    /// Billed every hour the campaign exists, used or not.
    #[serde(default = "default_tps")]
    pub min_tps: i32,
}

fn default_tps() -> i32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub name: String,
    pub expression: String,
    /// A promotion's filter (the stack's `Promotions`), not a caller's (`Filters`).
    #[serde(default)]
    pub promotion: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTracker {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compare {
    /// A local copy of the interactions file.
    pub interactions: PathBuf,
}

/// Which endpoint a solution's campaign serves, by its recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serves {
    Recommendations,
    RelatedItems,
    Ranking,
}

impl Solution {
    pub fn recipe_arn(&self) -> String {
        format!("arn:aws:personalize:::recipe/{}", self.recipe)
    }

    pub fn serves(&self) -> Serves {
        match self.recipe.as_str() {
            r if r.contains("similar-items") || r.contains("sims") => Serves::RelatedItems,
            r if r.contains("ranking") => Serves::Ranking,
            _ => Serves::Recommendations,
        }
    }
}

/// A Personalize resource name: 1-63 letters, digits, `-`, `_`, from a letter or digit.
fn valid_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

const RECIPES: &[&str] = &[
    "aws-user-personalization-v2",
    "aws-user-personalization",
    "aws-similar-items",
    "aws-sims",
    "aws-personalized-ranking-v2",
    "aws-personalized-ranking",
    "aws-popularity-count",
    "aws-trending-now",
];

impl Config {
    /// Reads and checks the file; schema paths become relative to it.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut config: Config =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for dataset in config.datasets_mut() {
            dataset.1.schema = base.join(&dataset.1.schema);
        }
        if let Some(compare) = &mut config.compare {
            compare.interactions = base.join(&compare.interactions);
        }
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(format!("{}:\n  {}", path.display(), problems.join("\n  ")))
        }
    }

    /// The datasets the file names, by Personalize's type name.
    pub fn datasets(&self) -> Vec<(&'static str, &Dataset)> {
        let mut all = vec![("Interactions", &self.datasets.interactions)];
        if let Some(items) = &self.datasets.items {
            all.push(("Items", items));
        }
        if let Some(users) = &self.datasets.users {
            all.push(("Users", users));
        }
        all
    }

    fn datasets_mut(&mut self) -> Vec<(&'static str, &mut Dataset)> {
        let mut all = vec![("Interactions", &mut self.datasets.interactions)];
        if let Some(items) = &mut self.datasets.items {
            all.push(("Items", items));
        }
        if let Some(users) = &mut self.datasets.users {
            all.push(("Users", users));
        }
        all
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut name = |key: String, value: &str| {
            if !valid_name(value) {
                problems.push(format!(
                    "{key} = {value:?}: 1-63 letters, digits, - and _, from a letter or digit"
                ));
            }
        };
        name("dataset_group.name".into(), &self.dataset_group.name);
        for (i, s) in self.solutions.iter().enumerate() {
            // Room for the configuration's fingerprint, which the solution's name carries.
            name(format!("solutions[{i}].name"), &s.name);
            if let Some(c) = &s.campaign {
                name(format!("solutions[{i}].campaign.name"), &c.name);
            }
        }
        for (i, f) in self.filters.iter().enumerate() {
            name(format!("filters[{i}].name"), &f.name);
        }
        if let Some(t) = &self.event_tracker {
            name("event_tracker.name".into(), &t.name);
        }
        if let Some(domain) = &self.dataset_group.domain
            && !["ECOMMERCE", "VIDEO_ON_DEMAND"].contains(&domain.as_str())
        {
            problems.push(format!(
                "dataset_group.domain = {domain:?}: ECOMMERCE or VIDEO_ON_DEMAND (or none, for a custom group)"
            ));
        }
        if !self.role_arn.starts_with("arn:aws") || !self.role_arn.contains(":role/") {
            problems.push(format!("role_arn = {:?}: an IAM role ARN", self.role_arn));
        }
        for (kind, dataset) in self.datasets() {
            if !dataset.data.starts_with("s3://") || dataset.data[5..].split_once('/').is_none() {
                problems.push(format!(
                    "datasets.{}.data = {:?}: s3://BUCKET/KEY",
                    kind.to_lowercase(),
                    dataset.data
                ));
            }
            if !dataset.schema.is_file() {
                problems.push(format!(
                    "datasets.{}.schema: {} does not exist (check-datasets --write-schemas writes it)",
                    kind.to_lowercase(),
                    dataset.schema.display()
                ));
            }
        }
        for (i, s) in self.solutions.iter().enumerate() {
            if s.name.len() > 54 {
                problems.push(format!(
                    "solutions[{i}].name: at most 54 characters (a fingerprint of its settings is added)"
                ));
            }
            if !RECIPES.contains(&s.recipe.as_str()) {
                problems.push(format!(
                    "solutions[{i}].recipe = {:?}: one of {}",
                    s.recipe,
                    RECIPES.join(", ")
                ));
            }
            if let Some(c) = &s.campaign
                && !(1..=100_000).contains(&c.min_tps)
            {
                problems.push(format!("solutions[{i}].campaign.min_tps: at least 1"));
            }
            if let Some(h) = &s.hpo
                && !["Maximize", "Minimize"].contains(&h.direction.as_str())
            {
                problems.push(format!(
                    "solutions[{i}].hpo.direction: Maximize or Minimize"
                ));
            }
        }
        let serving: Vec<Serves> = self
            .solutions
            .iter()
            .filter(|s| s.campaign.is_some())
            .map(Solution::serves)
            .collect();
        for serves in [
            Serves::Recommendations,
            Serves::RelatedItems,
            Serves::Ranking,
        ] {
            if serving.iter().filter(|s| **s == serves).count() > 1 {
                problems.push(format!(
                    "two campaigns serve {serves:?}: the stack takes one ARN for it"
                ));
            }
        }
        for (i, f) in self.filters.iter().enumerate() {
            if !(f.expression.starts_with("INCLUDE ") || f.expression.starts_with("EXCLUDE ")) {
                problems.push(format!(
                    "filters[{i}].expression: starts with INCLUDE or EXCLUDE (Personalize's filter syntax)"
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, String> {
        let dir = std::env::temp_dir().join(format!("setup-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("i.json"), "{}").unwrap();
        let path = dir.join(format!(
            "{:x}.toml",
            xxhash_rust::xxh3::xxh3_64(text.as_bytes())
        ));
        std::fs::write(&path, text).unwrap();
        Config::load(&path)
    }

    const GOOD: &str = r#"
role_arn = "arn:aws:iam::123456789012:role/PersonalizeS3Read"
[dataset_group]
name = "shop"
[datasets.interactions]
data = "s3://bucket/interactions.csv"
schema = "i.json"
[[solutions]]
name = "for-you"
[solutions.campaign]
name = "for-you"
"#;

    #[test]
    fn the_example_and_a_minimal_file_load_with_defaults() {
        let config = load(GOOD).unwrap();
        assert_eq!(config.solutions[0].recipe, "aws-user-personalization-v2");
        assert_eq!(config.solutions[0].campaign.as_ref().unwrap().min_tps, 1);
        assert_eq!(config.solutions[0].serves(), Serves::Recommendations);
        let example =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/setup/personalize.toml");
        let example = Config::load(&example).unwrap();
        assert_eq!(example.solutions[1].serves(), Serves::RelatedItems);
        assert!(
            example
                .filters
                .iter()
                .any(|f| f.expression.contains("CurrentUser.TIER"))
        );
    }

    #[test]
    fn every_problem_is_named_by_its_key_before_any_call() {
        let bad = GOOD
            .replace("name = \"shop\"", "name = \"-shop\"")
            .replace("s3://bucket/interactions.csv", "interactions.csv")
            .replace(
                "name = \"for-you\"\n[solutions.campaign]",
                "name = \"for-you\"\nrecipe = \"aws-magic\"\n[solutions.campaign]",
            )
            .replace("schema = \"i.json\"", "schema = \"missing.json\"");
        let problems = load(&bad).unwrap_err();
        for expected in [
            "dataset_group.name = \"-shop\": 1-63 letters",
            "datasets.interactions.data = \"interactions.csv\": s3://BUCKET/KEY",
            "datasets.interactions.schema:",
            "solutions[0].recipe = \"aws-magic\": one of",
        ] {
            assert!(
                problems.contains(expected),
                "{expected:?} not in {problems}"
            );
        }
        let unknown = load(&format!("{GOOD}\n[dataset_group2]\nname = \"x\"\n")).unwrap_err();
        assert!(
            unknown.contains("unknown field `dataset_group2`"),
            "{unknown}"
        );
    }
}
