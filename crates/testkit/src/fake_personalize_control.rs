//! A stand-in for Amazon Personalize's control plane, speaking its AWS JSON 1.1 protocol
//! (`POST /` with `X-Amz-Target: AmazonPersonalize.<Operation>`), for the resources a setup
//! creates: dataset groups, schemas, datasets, import jobs, solutions, solution versions (and
//! their metrics), campaigns, filters, event trackers and batch inference jobs.
//!
//! Every request is first checked against AWS's published model of the service
//! (`models/personalize-2018-05-22.json`): a request the service would refuse for a missing
//! member, a length, a pattern or an enum is refused here the same way, `InvalidInputException`.
//! Then it behaves as the service is documented to: names are unique (`ResourceAlreadyExists`),
//! what a request names must exist (`ResourceNotFound`), a resource with dependents cannot be
//! deleted and a solution trains one version at a time (`ResourceInUse`), and resources move
//! `CREATE PENDING` → `CREATE IN_PROGRESS` → `ACTIVE` (or `CREATE FAILED`, with a
//! `failureReason`), one step each time they are described.
//!
//! Tests make it fail a kind of job ([`FakePersonalizeControl::fail_next`]), give versions their
//! metrics ([`FakePersonalizeControl::set_metrics`]) and read what it was sent.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value, json};

use crate::service_model::ServiceModel;

const MODEL: &str = include_str!("../models/personalize-2018-05-22.json");
const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

/// A kind of resource: how its ARN, name and describe/list answers are spelled.
struct Kind {
    /// `datasetGroup`: the describe answer's member and the ARN member's stem.
    member: &'static str,
    /// `dataset-group`: the ARN's resource type.
    arn_type: &'static str,
    /// `name` or `jobName`.
    name_field: &'static str,
    /// `datasetGroups`: the list answer's member.
    list: &'static str,
    /// The member naming the resource it belongs to, which lists filter on.
    parent: Option<&'static str>,
    /// Whether it moves through states (schemas do not).
    stateful: bool,
}

const KINDS: &[Kind] = &[
    Kind {
        member: "datasetGroup",
        arn_type: "dataset-group",
        name_field: "name",
        list: "datasetGroups",
        parent: None,
        stateful: true,
    },
    Kind {
        member: "schema",
        arn_type: "schema",
        name_field: "name",
        list: "schemas",
        parent: None,
        stateful: false,
    },
    Kind {
        member: "dataset",
        arn_type: "dataset",
        name_field: "name",
        list: "datasets",
        parent: Some("datasetGroupArn"),
        stateful: true,
    },
    Kind {
        member: "datasetImportJob",
        arn_type: "dataset-import-job",
        name_field: "jobName",
        list: "datasetImportJobs",
        parent: Some("datasetArn"),
        stateful: true,
    },
    Kind {
        member: "solution",
        arn_type: "solution",
        name_field: "name",
        list: "solutions",
        parent: Some("datasetGroupArn"),
        stateful: true,
    },
    Kind {
        member: "solutionVersion",
        arn_type: "solution",
        name_field: "name",
        list: "solutionVersions",
        parent: Some("solutionArn"),
        stateful: true,
    },
    Kind {
        member: "campaign",
        arn_type: "campaign",
        name_field: "name",
        list: "campaigns",
        parent: Some("solutionArn"),
        stateful: true,
    },
    Kind {
        member: "filter",
        arn_type: "filter",
        name_field: "name",
        list: "Filters",
        parent: Some("datasetGroupArn"),
        stateful: true,
    },
    Kind {
        member: "eventTracker",
        arn_type: "event-tracker",
        name_field: "name",
        list: "eventTrackers",
        parent: Some("datasetGroupArn"),
        stateful: true,
    },
    Kind {
        member: "batchInferenceJob",
        arn_type: "batch-inference-job",
        name_field: "jobName",
        list: "batchInferenceJobs",
        parent: Some("solutionVersionArn"),
        stateful: true,
    },
];

fn kind(member: &str) -> &'static Kind {
    KINDS
        .iter()
        .find(|k| k.member == member)
        .expect("a known kind")
}

/// The kind an operation acts on: `CreateDatasetImportJob` → `datasetImportJob`.
fn kind_of_operation(operation: &str) -> Option<(&'static str, &'static Kind)> {
    let verbs = ["Create", "Describe", "Delete", "List", "Update"];
    let verb = verbs.iter().find(|v| operation.starts_with(*v))?;
    let rest = &operation[verb.len()..];
    let rest = if *verb == "List" {
        rest.strip_suffix('s')?
    } else {
        rest
    };
    let member = format!("{}{}", rest[..1].to_lowercase(), &rest[1..]);
    KINDS
        .iter()
        .find(|k| k.member == member)
        .map(|k| (*verb, k))
}

struct Resource {
    kind: &'static str,
    object: Map<String, Value>,
    tags: Value,
    /// Describes still to come before the next state.
    fail_with: Option<String>,
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Call {
    pub operation: String,
    pub body: Value,
}

#[derive(Default)]
struct Shared {
    resources: BTreeMap<String, Resource>,
    /// Kind member → the reason the next one of that kind fails.
    fail_next: BTreeMap<String, String>,
    /// Solution version ARN → metrics; versions not set get metrics from their position.
    metrics: BTreeMap<String, Map<String, Value>>,
    calls: Vec<Call>,
    clock: i64,
    serial: u64,
}

pub struct FakePersonalizeControl {
    pub endpoint: String,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

struct App {
    model: ServiceModel,
    shared: Arc<Mutex<Shared>>,
}

impl FakePersonalizeControl {
    /// Serves on a free loopback port.
    pub async fn start() -> FakePersonalizeControl {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Mutex::new(Shared {
            clock: 1_764_547_200,
            ..Shared::default()
        }));
        let app = Arc::new(App {
            model: ServiceModel::parse(MODEL),
            shared: shared.clone(),
        });
        let router = Router::new().route("/", post(handle)).with_state(app);
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        FakePersonalizeControl {
            endpoint,
            shared,
            server,
        }
    }

    /// The next resource of this kind (`datasetImportJob`, `solutionVersion`, …) ends
    /// `CREATE FAILED` with `reason`.
    pub fn fail_next(&self, kind: &str, reason: &str) {
        self.shared
            .lock()
            .unwrap()
            .fail_next
            .insert(kind.to_owned(), reason.to_owned());
    }

    /// What `GetSolutionMetrics` answers for a version.
    pub fn set_metrics(&self, solution_version_arn: &str, metrics: Value) {
        let Value::Object(metrics) = metrics else {
            panic!("metrics are an object")
        };
        self.shared
            .lock()
            .unwrap()
            .metrics
            .insert(solution_version_arn.to_owned(), metrics);
    }

    /// Every request received, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().unwrap().calls.clone()
    }

    /// The operations received, in order.
    pub fn operations(&self) -> Vec<String> {
        self.calls().into_iter().map(|c| c.operation).collect()
    }

    /// The ARNs of the resources that exist, sorted.
    pub fn arns(&self) -> Vec<String> {
        self.shared
            .lock()
            .unwrap()
            .resources
            .keys()
            .cloned()
            .collect()
    }

    /// A resource as `Describe…` would show it, without moving it on.
    pub fn resource(&self, arn: &str) -> Option<Value> {
        let shared = self.shared.lock().unwrap();
        shared
            .resources
            .get(arn)
            .map(|r| Value::Object(r.object.clone()))
    }

    /// Adds a resource that exists before the test (a dataset group someone else made, …).
    pub fn existing(&self, kind_member: &str, object: Value) -> String {
        let Value::Object(object) = object else {
            panic!("an object")
        };
        let k = kind(kind_member);
        let arn = object[&format!("{}Arn", k.member)]
            .as_str()
            .expect("the object has its ARN")
            .to_owned();
        self.shared.lock().unwrap().resources.insert(
            arn.clone(),
            Resource {
                kind: k.member,
                object,
                tags: json!([]),
                fail_with: None,
            },
        );
        arn
    }
}

impl Drop for FakePersonalizeControl {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn error(status: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    let body = json!({"__type": kind, "message": message.into()});
    (
        status,
        [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amzn-errortype", kind),
        ],
        body.to_string(),
    )
        .into_response()
}

fn invalid(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "InvalidInputException", message)
}

fn ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/x-amz-json-1.1")],
        body.to_string(),
    )
        .into_response()
}

async fn handle(State(app): State<Arc<App>>, headers: HeaderMap, body: String) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(operation) = target
        .strip_prefix(app.model.target_prefix())
        .and_then(|t| t.strip_prefix('.'))
        .filter(|op| app.model.has_operation(op))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            format!("unknown target {target:?}"),
        );
    };
    if !headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| {
            a.starts_with("AWS4-HMAC-SHA256 ") && a.contains("/personalize/aws4_request")
        })
    {
        return error(
            StatusCode::FORBIDDEN,
            "MissingAuthenticationTokenException",
            "requests must be signed for personalize",
        );
    }
    let body: Value = match serde_json::from_str(if body.is_empty() { "{}" } else { &body }) {
        Ok(body) => body,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "SerializationException",
                e.to_string(),
            );
        }
    };
    let problems = app.model.validate(operation, &body);
    let mut shared = app.shared.lock().unwrap();
    shared.calls.push(Call {
        operation: operation.to_owned(),
        body: body.clone(),
    });
    if !problems.is_empty() {
        return invalid(format!(
            "{} validation error(s) detected: {}",
            problems.len(),
            problems.join("; ")
        ));
    }
    shared.clock += 1;
    match operation {
        "GetSolutionMetrics" => metrics(&mut shared, &body),
        "UpdateCampaign" => update_campaign(&mut shared, &body),
        "ListTagsForResource" => {
            let arn = body["resourceArn"].as_str().unwrap_or_default();
            match shared.resources.get(arn) {
                Some(r) => ok(json!({"tags": r.tags})),
                None => error(
                    StatusCode::BAD_REQUEST,
                    "ResourceNotFoundException",
                    format!("Could not find resource {arn}"),
                ),
            }
        }
        _ => match kind_of_operation(operation) {
            Some(("Create", k)) => create(&mut shared, k, body),
            Some(("Describe", k)) => describe(&mut shared, k, &body),
            Some(("List", k)) => list(&shared, k, &body),
            Some(("Delete", k)) => delete(&mut shared, k, &body),
            _ => error(
                StatusCode::BAD_REQUEST,
                "UnknownOperationException",
                format!("{operation} is not played by this fake"),
            ),
        },
    }
}

fn arn(arn_type: &str, rest: &str) -> String {
    format!("arn:aws:personalize:{REGION}:{ACCOUNT}:{arn_type}/{rest}")
}

/// Members that name other resources, which must exist.
const REFERENCES: &[&str] = &[
    "datasetGroupArn",
    "schemaArn",
    "datasetArn",
    "solutionArn",
    "solutionVersionArn",
    "filterArn",
];

fn create(shared: &mut Shared, k: &'static Kind, body: Value) -> Response {
    let Value::Object(mut object) = body else {
        return invalid("the body is not an object");
    };
    for reference in REFERENCES {
        if let Some(target) = object.get(*reference).and_then(Value::as_str)
            && !shared.resources.contains_key(target)
        {
            return error(
                StatusCode::BAD_REQUEST,
                "ResourceNotFoundException",
                format!("Could not find resource {target}"),
            );
        }
    }
    let name = object
        .get(k.name_field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let arn = match k.member {
        "dataset" => {
            let group = object["datasetGroupArn"].as_str().unwrap_or_default();
            let group_name = group.rsplit('/').next().unwrap_or_default();
            let kind = object["datasetType"]
                .as_str()
                .unwrap_or_default()
                .to_uppercase();
            arn("dataset", &format!("{group_name}/{kind}"))
        }
        "solutionVersion" => {
            let solution = object["solutionArn"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if shared.resources.values().any(|r| {
                r.kind == "solutionVersion"
                    && r.object["solutionArn"] == solution.as_str()
                    && r.object["status"]
                        .as_str()
                        .is_some_and(|s| s.contains("PENDING") || s.contains("IN_PROGRESS"))
            }) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "ResourceInUseException",
                    format!("Solution {solution} has a version in training"),
                );
            }
            shared.serial += 1;
            format!("{solution}/{:08x}", shared.serial)
        }
        _ => arn(k.arn_type, &name),
    };
    if shared.resources.contains_key(&arn)
        || (k.member != "solutionVersion"
            && !name.is_empty()
            && shared.resources.values().any(|r| {
                r.kind == k.member
                    && r.object.get(k.name_field).and_then(Value::as_str) == Some(&name)
            }))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "ResourceAlreadyExistsException",
            format!("{} {name} already exists", k.member),
        );
    }
    if k.member == "dataset"
        && let Some(schema) = object["schemaArn"].as_str()
        && let Some(problem) = schema_problem(shared, schema, &object)
    {
        return invalid(problem);
    }
    if k.member == "filter"
        && let Some(expression) = object["filterExpression"].as_str()
        && !(expression.starts_with("INCLUDE ") || expression.starts_with("EXCLUDE "))
    {
        return invalid(format!("Invalid filter expression {expression}"));
    }
    let tags = object.remove("tags").unwrap_or(json!([]));
    let now = shared.clock;
    object.insert(format!("{}Arn", k.member), json!(arn));
    object.insert("creationDateTime".into(), json!(now));
    object.insert("lastUpdatedDateTime".into(), json!(now));
    if k.stateful {
        object.insert("status".into(), json!("CREATE PENDING"));
    }
    let mut answer = json!({ format!("{}Arn", k.member): arn });
    if k.member == "eventTracker" {
        shared.serial += 1;
        let tracking = format!(
            "{:08x}-0000-4000-8000-{:012x}",
            shared.serial, shared.serial
        );
        object.insert("trackingId".into(), json!(tracking));
        object.insert("accountId".into(), json!(ACCOUNT));
        answer["trackingId"] = json!(tracking);
    }
    if k.member == "datasetGroup" {
        answer["domain"] = object.get("domain").cloned().unwrap_or(Value::Null);
        if answer["domain"].is_null() {
            answer.as_object_mut().unwrap().remove("domain");
        }
    }
    let fail_with = shared.fail_next.remove(k.member);
    shared.resources.insert(
        arn,
        Resource {
            kind: k.member,
            object,
            tags,
            fail_with,
        },
    );
    ok(answer)
}

/// A dataset's schema must have been made for its type: its record name says which.
fn schema_problem(
    shared: &Shared,
    schema_arn: &str,
    dataset: &Map<String, Value>,
) -> Option<String> {
    let schema = &shared.resources.get(schema_arn)?.object;
    let text = schema["schema"].as_str()?;
    let parsed: Value = serde_json::from_str(text).ok()?;
    let fields = parsed["fields"].as_array()?;
    let has = |name: &str| fields.iter().any(|f| f["name"] == name);
    let needed: &[&str] = match dataset["datasetType"]
        .as_str()?
        .to_ascii_lowercase()
        .as_str()
    {
        "interactions" => &["USER_ID", "ITEM_ID", "TIMESTAMP"],
        "items" => &["ITEM_ID"],
        "users" => &["USER_ID"],
        _ => &[],
    };
    let missing: Vec<&str> = needed.iter().copied().filter(|n| !has(n)).collect();
    (!missing.is_empty()).then(|| {
        format!(
            "Schema {schema_arn} lacks the required field(s) {} for a {} dataset",
            missing.join(", "),
            dataset["datasetType"]
        )
    })
}

fn describe(shared: &mut Shared, k: &'static Kind, body: &Value) -> Response {
    let key = format!("{}Arn", k.member);
    let arn = body[&key].as_str().unwrap_or_default().to_owned();
    let now = shared.clock;
    let Some(resource) = shared.resources.get_mut(&arn) else {
        return error(
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
            format!("Could not find resource {arn}"),
        );
    };
    if k.stateful {
        let status = resource.object["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let next = match status.as_str() {
            "CREATE PENDING" => Some("CREATE IN_PROGRESS"),
            "CREATE IN_PROGRESS" if resource.fail_with.is_some() => Some("CREATE FAILED"),
            "CREATE IN_PROGRESS" | "UPDATE PENDING" | "UPDATE IN_PROGRESS" => Some("ACTIVE"),
            _ => None,
        };
        if let Some(next) = next {
            resource.object.insert("status".into(), json!(next));
            resource
                .object
                .insert("lastUpdatedDateTime".into(), json!(now));
            if next == "CREATE FAILED" {
                let reason = resource.fail_with.clone().unwrap_or_default();
                resource
                    .object
                    .insert("failureReason".into(), json!(reason));
            }
            if k.member == "campaign"
                && next == "ACTIVE"
                && let Some(update) = resource.object.get_mut("latestCampaignUpdate")
            {
                update["status"] = json!("ACTIVE");
            }
        }
    }
    ok(json!({ k.member: Value::Object(resource.object.clone()) }))
}

fn list(shared: &Shared, k: &'static Kind, body: &Value) -> Response {
    let parent = k
        .parent
        .and_then(|p| body.get(p).and_then(Value::as_str).map(|v| (p, v)));
    let items: Vec<Value> = shared
        .resources
        .values()
        .filter(|r| r.kind == k.member)
        .filter(|r| {
            parent.is_none_or(|(field, value)| {
                r.object.get(field).and_then(Value::as_str) == Some(value)
            })
        })
        .map(|r| Value::Object(r.object.clone()))
        .collect();
    ok(json!({ k.list: items }))
}

fn delete(shared: &mut Shared, k: &'static Kind, body: &Value) -> Response {
    let key = format!("{}Arn", k.member);
    let arn = body[&key].as_str().unwrap_or_default().to_owned();
    if !shared.resources.contains_key(&arn) {
        return error(
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
            format!("Could not find resource {arn}"),
        );
    }
    // Anything that names it (a dataset its group, a campaign its version's solution, …) must go
    // first.
    if let Some(dependent) = shared.resources.iter().find(|(other, r)| {
        *other != &arn
            && r.kind != "datasetImportJob"
            && r.kind != "batchInferenceJob"
            && r.kind != "solutionVersion"
            && r.object.values().any(|v| {
                // A campaign serving one of a solution's versions holds the solution too.
                v.as_str().is_some_and(|v| {
                    v == arn || (r.kind == "campaign" && v.starts_with(&format!("{arn}/")))
                })
            })
    }) {
        return error(
            StatusCode::BAD_REQUEST,
            "ResourceInUseException",
            format!("{arn} is in use by {}", dependent.0),
        );
    }
    shared.resources.remove(&arn);
    // What only lived under it goes with it. (Import jobs, versions and batch jobs have no
    // delete of their own: they are records of what they belong to, a batch job of a version of
    // the solution.)
    let below = format!("{arn}/");
    shared.resources.retain(|_, r| {
        !(matches!(
            r.kind,
            "datasetImportJob" | "solutionVersion" | "batchInferenceJob"
        ) && r.object.values().any(|v| {
            v.as_str()
                .is_some_and(|v| v == arn || v.starts_with(&below))
        }))
    });
    ok(json!({}))
}

fn metrics(shared: &mut Shared, body: &Value) -> Response {
    let arn = body["solutionVersionArn"].as_str().unwrap_or_default();
    let Some(version) = shared.resources.get(arn) else {
        return error(
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
            format!("Could not find resource {arn}"),
        );
    };
    if version.object["status"] != "ACTIVE" {
        return error(
            StatusCode::BAD_REQUEST,
            "ResourceInUseException",
            format!("Solution version {arn} is not ACTIVE"),
        );
    }
    let metrics = shared.metrics.get(arn).cloned().unwrap_or_else(|| {
        let rank = shared
            .resources
            .keys()
            .filter(|k| k.as_str() <= arn)
            .count() as f64;
        let mut m = Map::new();
        for (name, base) in [
            ("coverage", 0.30),
            ("mean_reciprocal_rank_at_25", 0.20),
            ("normalized_discounted_cumulative_gain_at_5", 0.15),
            ("normalized_discounted_cumulative_gain_at_10", 0.18),
            ("normalized_discounted_cumulative_gain_at_25", 0.22),
            ("precision_at_5", 0.05),
            ("precision_at_10", 0.04),
            ("precision_at_25", 0.03),
        ] {
            m.insert(name.into(), json!(base + rank / 1000.0));
        }
        m
    });
    ok(json!({"solutionVersionArn": arn, "metrics": metrics}))
}

fn update_campaign(shared: &mut Shared, body: &Value) -> Response {
    let arn = body["campaignArn"].as_str().unwrap_or_default().to_owned();
    if let Some(version) = body["solutionVersionArn"].as_str()
        && !shared.resources.contains_key(version)
    {
        return error(
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
            format!("Could not find resource {version}"),
        );
    }
    let now = shared.clock;
    let Some(campaign) = shared.resources.get_mut(&arn) else {
        return error(
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
            format!("Could not find resource {arn}"),
        );
    };
    if campaign.object["status"] != "ACTIVE" {
        return error(
            StatusCode::BAD_REQUEST,
            "ResourceInUseException",
            format!("Campaign {arn} is {}", campaign.object["status"]),
        );
    }
    let mut update = Map::new();
    for field in ["solutionVersionArn", "minProvisionedTPS", "campaignConfig"] {
        if let Some(value) = body.get(field) {
            campaign.object.insert(field.into(), value.clone());
            update.insert(field.into(), value.clone());
        }
    }
    update.insert("status".into(), json!("UPDATE PENDING"));
    update.insert("creationDateTime".into(), json!(now));
    update.insert("lastUpdatedDateTime".into(), json!(now));
    campaign
        .object
        .insert("latestCampaignUpdate".into(), Value::Object(update));
    campaign
        .object
        .insert("status".into(), json!("UPDATE PENDING"));
    ok(json!({"campaignArn": arn}))
}
