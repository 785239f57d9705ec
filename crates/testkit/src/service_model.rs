//! Checks a request body against an AWS service model (the JSON model AWS publishes for its SDKs):
//! required members, types, lengths, ranges, patterns and enums, member by member, as the service
//! does before it acts. A fake that runs every request through it refuses what AWS would refuse.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

pub struct ServiceModel {
    model: Value,
    patterns: Mutex<HashMap<String, regex::Regex>>,
}

impl ServiceModel {
    pub fn parse(text: &str) -> ServiceModel {
        ServiceModel {
            model: serde_json::from_str(text).expect("a service model is JSON"),
            patterns: Mutex::new(HashMap::new()),
        }
    }

    /// `X-Amz-Target`'s prefix, `AmazonPersonalize` for Personalize.
    pub fn target_prefix(&self) -> &str {
        self.model["metadata"]["targetPrefix"]
            .as_str()
            .unwrap_or("")
    }

    pub fn has_operation(&self, name: &str) -> bool {
        self.model["operations"].get(name).is_some()
    }

    /// What is wrong with `body` as the input of `operation`, one line per problem.
    pub fn validate(&self, operation: &str, body: &Value) -> Vec<String> {
        let Some(input) = self.model["operations"][operation]["input"]["shape"].as_str() else {
            return vec![format!("{operation} is not an operation of this service")];
        };
        let mut problems = Vec::new();
        self.check(input, body, "", &mut problems);
        problems
    }

    fn check(&self, shape_name: &str, value: &Value, path: &str, problems: &mut Vec<String>) {
        let shape = &self.model["shapes"][shape_name];
        let at = if path.is_empty() { "the request" } else { path };
        let kind = shape["type"].as_str().unwrap_or("");
        match (kind, value) {
            ("structure", Value::Object(members)) => {
                for required in shape["required"].as_array().into_iter().flatten() {
                    let name = required.as_str().unwrap_or_default();
                    if members.get(name).is_none_or(Value::is_null) {
                        problems.push(format!("{at}: missing required member {name}"));
                    }
                }
                for (name, member) in members {
                    let child = join(path, name);
                    match shape["members"][name]["shape"].as_str() {
                        Some(member_shape) => self.check(member_shape, member, &child, problems),
                        None => problems.push(format!("{child}: not a member of {shape_name}")),
                    }
                }
            }
            ("string", Value::String(text)) => {
                let chars = text.chars().count() as u64;
                if let Some(min) = shape["min"].as_u64()
                    && chars < min
                {
                    problems.push(format!("{at}: shorter than {min}"));
                }
                if let Some(max) = shape["max"].as_u64()
                    && chars > max
                {
                    problems.push(format!("{at}: longer than {max}"));
                }
                if let Some(values) = shape["enum"].as_array()
                    && !values.iter().any(|v| v == text)
                {
                    problems.push(format!(
                        "{at}: {text:?} is not one of {}",
                        Value::Array(values.clone())
                    ));
                }
                if let Some(pattern) = shape["pattern"].as_str()
                    && !self.matches(pattern, text)
                {
                    problems.push(format!("{at}: {text:?} does not match {pattern}"));
                }
            }
            ("integer" | "long", Value::Number(n)) if n.is_i64() || n.is_u64() => {
                let n = n.as_f64().unwrap_or_default();
                range(shape, n, at, problems);
            }
            ("float" | "double", Value::Number(n)) => {
                range(shape, n.as_f64().unwrap_or_default(), at, problems);
            }
            ("boolean", Value::Bool(_)) => {}
            ("timestamp", Value::Number(_)) => {}
            ("blob", Value::String(_)) => {}
            ("list", Value::Array(items)) => {
                let count = items.len() as u64;
                if shape["min"].as_u64().is_some_and(|min| count < min) {
                    problems.push(format!("{at}: fewer than {} entries", shape["min"]));
                }
                if shape["max"].as_u64().is_some_and(|max| count > max) {
                    problems.push(format!("{at}: more than {} entries", shape["max"]));
                }
                let member = shape["member"]["shape"].as_str().unwrap_or_default();
                for (i, item) in items.iter().enumerate() {
                    self.check(member, item, &format!("{at}[{i}]"), problems);
                }
            }
            ("map", Value::Object(entries)) => {
                let count = entries.len() as u64;
                if shape["max"].as_u64().is_some_and(|max| count > max) {
                    problems.push(format!("{at}: more than {} entries", shape["max"]));
                }
                let key = shape["key"]["shape"].as_str().unwrap_or_default();
                let value_shape = shape["value"]["shape"].as_str().unwrap_or_default();
                for (name, entry) in entries {
                    self.check(
                        key,
                        &Value::String(name.clone()),
                        &format!("{at} key {name:?}"),
                        problems,
                    );
                    self.check(value_shape, entry, &join(path, name), problems);
                }
            }
            (_, Value::Null) => {}
            (kind, value) => problems.push(format!("{at}: expected {kind}, found {value}")),
        }
    }

    fn matches(&self, pattern: &str, text: &str) -> bool {
        let mut compiled = self.patterns.lock().unwrap();
        let regex = compiled.entry(pattern.to_owned()).or_insert_with(|| {
            regex::Regex::new(pattern).unwrap_or_else(|e| panic!("pattern {pattern}: {e}"))
        });
        regex.is_match(text)
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn range(shape: &Value, n: f64, at: &str, problems: &mut Vec<String>) {
    if shape["min"].as_f64().is_some_and(|min| n < min) {
        problems.push(format!("{at}: below {}", shape["min"]));
    }
    if shape["max"].as_f64().is_some_and(|max| n > max) {
        problems.push(format!("{at}: above {}", shape["max"]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn personalize() -> ServiceModel {
        ServiceModel::parse(include_str!("../models/personalize-2018-05-22.json"))
    }

    #[test]
    fn a_valid_request_passes() {
        let model = personalize();
        assert_eq!(model.target_prefix(), "AmazonPersonalize");
        let ok = json!({
            "name": "shop-for-you",
            "datasetGroupArn": "arn:aws:personalize:us-east-1:123456789012:dataset-group/shop",
            "recipeArn": "arn:aws:personalize:::recipe/aws-user-personalization-v2",
            "solutionConfig": {"algorithmHyperParameters": {"max_user_history_length_percentile": "0.99"}},
            "tags": [{"tagKey": "k", "tagValue": "v"}]
        });
        assert_eq!(model.validate("CreateSolution", &ok), Vec::<String>::new());
    }

    #[test]
    fn what_the_service_refuses_is_refused_with_where() {
        let model = personalize();
        let cases = [
            (
                "CreateSolution",
                json!({"name": "shop"}),
                "the request: missing required member datasetGroupArn",
            ),
            (
                "CreateSolution",
                json!({"name": "-shop", "datasetGroupArn": "arn:aws:personalize:us-east-1:123456789012:dataset-group/shop"}),
                "name: \"-shop\" does not match",
            ),
            (
                "CreateCampaign",
                json!({"name": "c", "solutionVersionArn": "arn:aws:personalize:us-east-1:123456789012:solution/s/1", "minProvisionedTPS": 0}),
                "minProvisionedTPS: below 1",
            ),
            (
                "CreateSolutionVersion",
                json!({"solutionArn": "arn:aws:personalize:us-east-1:123456789012:solution/s", "trainingMode": "PARTIAL"}),
                "trainingMode: \"PARTIAL\" is not one of",
            ),
            (
                "CreateDatasetGroup",
                json!({"name": "x".repeat(64)}),
                "name: longer than 63",
            ),
            (
                "CreateFilter",
                json!({"name": "f", "datasetGroupArn": "not-an-arn", "filterExpression": "EXCLUDE ItemID"}),
                "datasetGroupArn: \"not-an-arn\" does not match",
            ),
            (
                "CreateEventTracker",
                json!({"name": "t", "datasetGroupArn": 7}),
                "datasetGroupArn: expected string",
            ),
            (
                "CreateSchema",
                json!({"name": "s", "schema": "{}", "colour": "red"}),
                "colour: not a member of CreateSchemaRequest",
            ),
        ];
        for (operation, body, expected) in cases {
            let problems = model.validate(operation, &body);
            assert!(
                problems.iter().any(|p| p.starts_with(expected)),
                "{operation} {body}: {problems:?}"
            );
        }
    }
}
