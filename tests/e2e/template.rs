//! What `template.yaml` deploys, checked on the CloudFormation that really deploys: the template
//! goes through the SAM transform (the `samtranslator` package that `sam deploy` uses, offline)
//! and CloudFormation's conditions, for each parameter combination that matters
//! (`tests/template/transform.py`). Reading the template's text is not enough: SAM silently
//! drops some constructs (an `Fn::If` around `Auth.ResourcePolicy`), and cfn-lint and
//! `sam validate` pass them.
//!
//! `tests/run` installs the SAM CLI (pinned) into a virtualenv and names its Python in
//! `SAM_PYTHON`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

pub(super) const CAMPAIGN: &str = "arn:aws:personalize:us-east-1:123456789012:campaign/shop";
const SIMS: &str = "arn:aws:personalize:us-east-1:123456789012:recommender/similar";
const RANKING: &str = "arn:aws:personalize:us-east-1:123456789012:campaign/ranking";
const FILTER: &str = "arn:aws:personalize:us-east-1:123456789012:filter/not-purchased";
const RANGES: [&str; 2] = ["203.0.113.0/24", "198.51.100.7/32"];

/// Every route the router serves.
const ROUTES: [(&str, &str); 6] = [
    ("/recommendations", "get"),
    ("/related-items", "get"),
    ("/rankings", "get"),
    ("/rankings", "post"),
    ("/events", "post"),
    ("/health", "get"),
];

pub(super) fn template_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml")
}

/// The resources and outputs a stack from `template` with `parameters` would have.
pub(super) fn deploy(template: &Path, parameters: &[(&str, &str)]) -> Value {
    let python = std::env::var("SAM_PYTHON").unwrap_or_else(|_| {
        panic!(
            "SAM_PYTHON is not set: the template tests run the SAM transform with the Python of \
             the virtualenv that tests/run installs; run tests/run"
        )
    });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/template/transform.py");
    let output = Command::new(&python)
        .arg(script)
        .arg(template)
        .args(
            parameters
                .iter()
                .map(|(name, value)| format!("{name}={value}")),
        )
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(
        output.status.success(),
        "the SAM transform failed for {parameters:?}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("transform.py prints JSON")
}

pub(super) fn resources_of_type<'a>(deployed: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    deployed["Resources"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, r)| r["Type"] == kind)
        .map(|(name, r)| (name.as_str(), r))
        .collect()
}

pub(super) fn one_of_type<'a>(deployed: &'a Value, kind: &str) -> &'a Value {
    let found = resources_of_type(deployed, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, found {found:?}");
    found[0].1
}

/// A string or a list of them, as IAM allows either.
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(list) => list.iter().flat_map(strings).collect(),
        Value::Null => Vec::new(),
        // `{"Fn::GetAtt": …}` and other unresolved references name one specific resource.
        other => vec![other.to_string()],
    }
}

/// Every Allow statement the stack's roles grant, with the role's name.
fn granted(deployed: &Value) -> Vec<(String, Value)> {
    let mut found = Vec::new();
    for (name, role) in resources_of_type(deployed, "AWS::IAM::Role") {
        for policy in role["Properties"]["Policies"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for statement in policy["PolicyDocument"]["Statement"]
                .as_array()
                .into_iter()
                .flatten()
            {
                found.push((name.to_owned(), statement.clone()));
            }
        }
    }
    found
}

/// Managed policies a role may carry (AWS's own, in any partition): logging and tracing, and
/// CodeDeploy's own for the role it assumes to shift the alias during a canary deploy.
const MANAGED_POLICIES: [&str; 4] = [
    ":iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    ":iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs",
    ":iam::aws:policy/AWSXrayWriteOnlyAccess",
    ":iam::aws:policy/service-role/AWSCodeDeployRoleForLambda",
];

/// What is wrong with the deployed stack's IAM, API key, routes and source-IP policy; empty when
/// nothing is. `ranges` are the `AllowedSourceIps` the stack was deployed with.
fn problems(deployed: &Value, ranges: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();

    // Least privilege.
    let statements = granted(deployed);
    if statements.is_empty() {
        problems.push("no IAM statements: the function cannot call anything".to_owned());
    }
    for (role, statement) in &statements {
        if statement.get("NotAction").is_some() || statement.get("NotResource").is_some() {
            problems.push(format!("{role}: NotAction/NotResource grants too much"));
        }
        if statement["Effect"] != "Allow" {
            continue;
        }
        let actions = strings(&statement["Action"]);
        for action in &actions {
            if action.contains('*') {
                problems.push(format!("{role}: wildcard action {action}"));
            }
        }
        let resources = strings(&statement["Resource"]);
        if resources.is_empty() {
            problems.push(format!("{role}: a statement without a resource"));
        }
        // PutEvents is authorized on no resource, so IAM takes only "*" for it; any other action
        // in the same statement would widen that.
        let put_events_only = actions == ["personalize:PutEvents"];
        for resource in resources {
            if resource.contains('*') && !(put_events_only && resource == "*") {
                problems.push(format!("{role}: wildcard resource {resource}"));
            }
        }
    }
    for (role, resource) in resources_of_type(deployed, "AWS::IAM::Role") {
        for arn in strings(&resource["Properties"]["ManagedPolicyArns"]) {
            // A `Fn::Sub` (`arn:${AWS::Partition}:…`) is shown as its JSON.
            let arn_text = arn.trim_end_matches("\"}");
            if !MANAGED_POLICIES.iter().any(|p| arn_text.ends_with(p)) {
                problems.push(format!("{role}: managed policy {arn}"));
            }
        }
    }

    // The API key, on every route.
    let api = one_of_type(deployed, "AWS::ApiGateway::RestApi");
    let body = &api["Properties"]["Body"];
    if body["securityDefinitions"]["api_key"]
        != json!({"type": "apiKey", "name": "x-api-key", "in": "header"})
    {
        problems.push("the API defines no x-api-key header key".to_owned());
    }
    for (path, method) in ROUTES {
        let operation = &body["paths"][path][method];
        if operation.is_null() {
            problems.push(format!("no {} {path} route", method.to_uppercase()));
        } else if !operation["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("api_key").is_some()))
        {
            problems.push(format!(
                "{} {path} does not need the API key",
                method.to_uppercase()
            ));
        }
    }
    for kind in [
        "AWS::ApiGateway::ApiKey",
        "AWS::ApiGateway::UsagePlan",
        "AWS::ApiGateway::UsagePlanKey",
    ] {
        if resources_of_type(deployed, kind).is_empty() {
            problems.push(format!("no {kind}: callers cannot get a key"));
        }
    }

    // The source-IP allowlist: with ranges, an Allow plus a Deny from anywhere else on every
    // route; without, no policy at all.
    let policy = &body["x-amazon-apigateway-policy"];
    if ranges.is_empty() {
        if !policy.is_null() {
            problems.push(format!(
                "a resource policy without AllowedSourceIps: {policy}"
            ));
        }
    } else {
        let statements = policy["Statement"].as_array().cloned().unwrap_or_default();
        let everywhere = |s: &Value| {
            s["Principal"] == "*"
                && strings(&s["Action"]) == ["execute-api:Invoke"]
                && strings(&s["Resource"]) == ["execute-api:/*"]
        };
        if !statements
            .iter()
            .any(|s| s["Effect"] == "Allow" && everywhere(s))
        {
            problems.push(format!("no Allow on execute-api:/* in the policy {policy}"));
        }
        let denies_others = statements.iter().any(|s| {
            s["Effect"] == "Deny"
                && everywhere(s)
                && strings(&s["Condition"]["NotIpAddress"]["aws:SourceIp"]) == ranges
        });
        if !denies_others {
            problems.push(format!(
                "no Deny for source IPs outside {ranges:?} on execute-api:/* in the policy {policy}"
            ));
        }
    }
    problems
}

fn assert_sound(deployed: &Value, ranges: &[&str]) {
    assert_eq!(problems(deployed, ranges), Vec::<String>::new());
}

/// The actions granted on each resource (a `Fn::GetAtt` shown as its JSON), sorted.
fn grants(deployed: &Value) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = granted(deployed)
        .into_iter()
        .filter(|(role, _)| role == "RecommendationsFunctionRole")
        .flat_map(|(_, statement)| {
            let actions = strings(&statement["Action"]);
            let resources = strings(&statement["Resource"]);
            actions
                .into_iter()
                .flat_map(move |a| resources.clone().into_iter().map(move |r| (a.clone(), r)))
        })
        .collect();
    found.sort();
    found
}

pub(super) fn variable<'a>(deployed: &'a Value, name: &str) -> &'a Value {
    let function = one_of_type(deployed, "AWS::Lambda::Function");
    &function["Properties"]["Environment"]["Variables"][name]
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = list
        .iter()
        .map(|(a, r)| (a.to_string(), r.to_string()))
        .collect();
    pairs.sort();
    pairs
}

const TABLE_ARN: &str = r#"{"Fn::GetAtt":["ItemsTable","Arn"]}"#;

#[test]
fn with_source_ranges_every_route_denies_other_addresses() {
    let ranges = RANGES.join(",");
    let deployed = deploy(
        &template_path(),
        &[("PersonalizeArn", CAMPAIGN), ("AllowedSourceIps", &ranges)],
    );
    assert_sound(&deployed, &RANGES);
}

#[test]
fn without_source_ranges_there_is_no_resource_policy() {
    let deployed = deploy(&template_path(), &[("PersonalizeArn", CAMPAIGN)]);
    assert_sound(&deployed, &[]);
}

#[test]
fn metadata_from_dynamodb_reads_the_stacks_table_and_nothing_else() {
    let deployed = deploy(
        &template_path(),
        &[
            ("PersonalizeArn", CAMPAIGN),
            ("RelatedItemsArn", SIMS),
            ("RankingArn", RANKING),
            ("Filters", FILTER),
        ],
    );
    assert_sound(&deployed, &[]);
    assert_eq!(
        grants(&deployed),
        pairs(&[
            ("personalize:GetRecommendations", CAMPAIGN),
            ("personalize:GetRecommendations", SIMS),
            ("personalize:GetPersonalizedRanking", RANKING),
            ("personalize:GetRecommendations", FILTER),
            ("personalize:GetPersonalizedRanking", FILTER),
            ("dynamodb:BatchGetItem", TABLE_ARN),
        ])
    );
    let table = one_of_type(&deployed, "AWS::DynamoDB::Table");
    assert_eq!(
        table["DeletionPolicy"], "Retain",
        "the catalog outlives the stack"
    );
    assert_eq!(
        variable(&deployed, "ITEMS_TABLE"),
        &json!({"Ref": "ItemsTable"})
    );
    assert_eq!(variable(&deployed, "FILTERS"), FILTER);
}

#[test]
fn metadata_from_personalize_makes_no_table_and_caps_the_count() {
    let deployed = deploy(
        &template_path(),
        &[
            ("PersonalizeArn", CAMPAIGN),
            ("ItemMetadataSource", "personalize"),
            ("ItemMetadataColumns", "NAME,PRICE"),
        ],
    );
    assert_sound(&deployed, &[]);
    assert_eq!(
        grants(&deployed),
        pairs(&[("personalize:GetRecommendations", CAMPAIGN)])
    );
    assert!(resources_of_type(&deployed, "AWS::DynamoDB::Table").is_empty());
    assert_eq!(variable(&deployed, "ITEMS_TABLE"), "");
    assert_eq!(variable(&deployed, "MAX_COUNT"), "50");
    assert!(deployed["Outputs"].get("ItemsTableName").is_none());
}

/// Several recommenders for an A/B test, and promotions: IAM names each ARN, no wildcard, and
/// the function gets the list as the template was given it.
#[test]
fn each_recommender_and_promotion_is_granted_by_its_own_arn() {
    const PICKS: &str = "arn:aws:personalize:eu-west-1:123456789012:recommender/picks";
    const PROMOTION: &str = "arn:aws:personalize:us-east-1:123456789012:filter/new-arrivals";
    let recommenders = format!("{CAMPAIGN},{PICKS}");
    let deployed = deploy(
        &template_path(),
        &[
            ("PersonalizeArn", &recommenders),
            ("DefaultRecommender", "picks"),
            ("Promotions", PROMOTION),
            ("PromotionPercent", "30"),
            ("RankingArn", RANKING),
        ],
    );
    assert_sound(&deployed, &[]);
    assert_eq!(
        grants(&deployed),
        pairs(&[
            ("personalize:GetRecommendations", CAMPAIGN),
            ("personalize:GetRecommendations", PICKS),
            ("personalize:GetRecommendations", PROMOTION),
            ("personalize:GetPersonalizedRanking", RANKING),
            ("dynamodb:BatchGetItem", TABLE_ARN),
        ])
    );
    assert_eq!(variable(&deployed, "RECOMMENDERS"), recommenders.as_str());
    assert_eq!(variable(&deployed, "DEFAULT_RECOMMENDER"), "picks");
    assert_eq!(variable(&deployed, "PROMOTIONS"), PROMOTION);
    assert_eq!(variable(&deployed, "PROMOTION_PERCENT"), "30");

    // Without /recommendations, promotions (which only it takes) grant nothing.
    let deployed = deploy(
        &template_path(),
        &[("RelatedItemsArn", SIMS), ("Promotions", PROMOTION)],
    );
    assert_sound(&deployed, &[]);
    assert_eq!(
        grants(&deployed),
        pairs(&[
            ("personalize:GetRecommendations", SIMS),
            ("dynamodb:BatchGetItem", TABLE_ARN),
        ])
    );
}

#[test]
fn the_popular_fallback_reads_its_campaign_and_nothing_more() {
    const POPULAR: &str = "arn:aws:personalize:us-east-1:123456789012:campaign/popular";
    let deployed = deploy(
        &template_path(),
        &[
            ("PersonalizeArn", CAMPAIGN),
            ("Fallback", "last-good,popular"),
            ("FallbackPopularArn", POPULAR),
        ],
    );
    assert_sound(&deployed, &[]);
    assert_eq!(
        grants(&deployed),
        pairs(&[
            ("personalize:GetRecommendations", CAMPAIGN),
            ("personalize:GetRecommendations", POPULAR),
            ("dynamodb:BatchGetItem", TABLE_ARN),
        ])
    );
    assert_eq!(variable(&deployed, "FALLBACK"), "last-good,popular");
    assert_eq!(variable(&deployed, "FALLBACK_POPULAR_ARN"), POPULAR);
    assert_eq!(variable(&deployed, "FALLBACK_UNFILTERED"), "false");
    // Off by default, and no grant for a list nobody reads.
    let plain = deploy(&template_path(), &[("PersonalizeArn", CAMPAIGN)]);
    assert_eq!(variable(&plain, "FALLBACK"), "off");
    assert!(
        !grants(&plain)
            .iter()
            .any(|(_, resource)| resource.contains("popular"))
    );
}

#[test]
fn events_only_may_put_events_and_nothing_else() {
    let deployed = deploy(&template_path(), &[("EventTrackerId", "tracker-1")]);
    assert_sound(&deployed, &[]);
    assert_eq!(grants(&deployed), pairs(&[("personalize:PutEvents", "*")]));
    assert!(resources_of_type(&deployed, "AWS::DynamoDB::Table").is_empty());
}

#[test]
fn the_logging_role_outlives_the_stack_and_the_api_waits_for_it() {
    let deployed = deploy(
        &template_path(),
        &[
            ("PersonalizeArn", CAMPAIGN),
            ("CreateApiGatewayLoggingRole", "true"),
        ],
    );
    assert_sound(&deployed, &[]);
    let resources = &deployed["Resources"];
    for name in ["ApiGatewayLoggingRole", "ApiGatewayAccount"] {
        assert_eq!(resources[name]["DeletionPolicy"], "Retain", "{name}");
        assert_eq!(resources[name]["UpdateReplacePolicy"], "Retain", "{name}");
    }
    // The API (so its stage and access logs) waits for the account setting.
    let (api, _) = resources_of_type(&deployed, "AWS::ApiGateway::RestApi")[0];
    let waits_on = strings(&resources[api]["DependsOn"]);
    assert!(
        waits_on.iter().any(|d| {
            resources[d.as_str()]["Metadata"]
                .to_string()
                .contains(r#"{"Ref":"ApiGatewayAccount"}"#)
        }),
        "the API does not wait for ApiGatewayAccount: DependsOn {waits_on:?}"
    );

    // Without the role, the API depends on nothing that would make one.
    let without = deploy(&template_path(), &[("PersonalizeArn", CAMPAIGN)]);
    assert!(without["Resources"].get("ApiGatewayAccount").is_none());
    assert!(without["Resources"].get("ApiGatewayLoggingRole").is_none());
}

/// X-Ray follows each request from API Gateway into the function.
#[test]
fn requests_are_traced_through_the_api_and_the_function() {
    let deployed = deploy(&template_path(), &[("PersonalizeArn", CAMPAIGN)]);
    let function = one_of_type(&deployed, "AWS::Lambda::Function");
    assert_eq!(
        function["Properties"]["TracingConfig"]["Mode"], "Active",
        "{function}"
    );
    let stage = one_of_type(&deployed, "AWS::ApiGateway::Stage");
    assert_eq!(stage["Properties"]["TracingEnabled"], true, "{stage}");
}

#[test]
fn the_function_is_built_for_arm64_with_cargo_lambda() {
    let deployed = deploy(&template_path(), &[("PersonalizeArn", CAMPAIGN)]);
    let function = one_of_type(&deployed, "AWS::Lambda::Function");
    assert_eq!(
        function["Metadata"]["BuildMethod"], "rust-cargolambda",
        "sam build uses cargo lambda"
    );
    let properties = &function["Properties"];
    assert_eq!(properties["Runtime"], "provided.al2023");
    assert_eq!(properties["Handler"], "bootstrap");
    assert_eq!(properties["Architectures"], json!(["arm64"]));
    assert_eq!(
        variable(&deployed, "AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH"),
        "true"
    );
}

/// Each check fails on the defect it guards against: on a stack edited after the transform,
/// and, for the allowlist, on the template that silently deployed without it.
#[test]
fn the_checks_catch_what_they_guard_against() {
    let ranges = RANGES.join(",");
    let deployed = deploy(
        &template_path(),
        &[
            ("PersonalizeArn", CAMPAIGN),
            ("EventTrackerId", "tracker-1"),
            ("AllowedSourceIps", &ranges),
        ],
    );
    assert_sound(&deployed, &RANGES);
    type Edit = Box<dyn Fn(&mut Value)>;
    let broken: Vec<(Edit, &str)> = vec![
        (
            Box::new(|d| statement(d, "ReadItemMetadata")["Action"] = json!("dynamodb:*")),
            "wildcard action dynamodb:*",
        ),
        (
            Box::new(|d| statement(d, "ReadItemMetadata")["Resource"] = json!("*")),
            "wildcard resource *",
        ),
        (
            Box::new(|d| {
                statement(d, "SendEventsToTheEventTracker")["Action"] =
                    json!(["personalize:PutEvents", "personalize:GetRecommendations"])
            }),
            "wildcard resource *",
        ),
        (
            Box::new(|d| {
                statement(d, "RecommendWithTheConfiguredCampaigns")["Resource"] =
                    json!("arn:aws:personalize:*:*:campaign/*")
            }),
            "wildcard resource arn:aws:personalize:*",
        ),
        (
            Box::new(|d| {
                d["Resources"]["RecommendationsFunctionRole"]["Properties"]["ManagedPolicyArns"] =
                    json!(["arn:aws:iam::aws:policy/AdministratorAccess"])
            }),
            "managed policy arn:aws:iam::aws:policy/AdministratorAccess",
        ),
        (
            Box::new(|d| {
                let api = api_name(d);
                let get =
                    &mut d["Resources"][&api]["Properties"]["Body"]["paths"]["/events"]["post"];
                get.as_object_mut().unwrap().remove("security");
            }),
            "POST /events does not need the API key",
        ),
        (
            Box::new(|d| {
                let api = api_name(d);
                let paths = &mut d["Resources"][&api]["Properties"]["Body"]["paths"];
                paths.as_object_mut().unwrap().remove("/related-items");
            }),
            "no GET /related-items route",
        ),
        (
            Box::new(|d| {
                let api = api_name(d);
                let body = &mut d["Resources"][&api]["Properties"]["Body"];
                body["x-amazon-apigateway-policy"] = json!({});
            }),
            "no Deny for source IPs",
        ),
        (
            Box::new(|d| {
                let api = api_name(d);
                let policy =
                    &mut d["Resources"][&api]["Properties"]["Body"]["x-amazon-apigateway-policy"];
                policy["Statement"][1]["Resource"] = json!("execute-api:/*/GET/recommendations");
            }),
            "no Deny for source IPs",
        ),
    ];
    for (edit, expected) in broken {
        let mut stack = deployed.clone();
        edit(&mut stack);
        let found = problems(&stack, &RANGES);
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "{expected:?} was not caught: {found:?}"
        );
    }

    // The allowlist as it used to be written: SAM drops the `Fn::If`, and the API is open.
    let text = std::fs::read_to_string(template_path()).unwrap();
    let old = text.replacen(
        "      Auth:\n        ApiKeyRequired: true\n",
        "      Auth:\n        ApiKeyRequired: true\n        ResourcePolicy: !If\n          - HasAllowedSourceIps\n          - IpRangeWhitelist: !Ref AllowedSourceIps\n          - !Ref AWS::NoValue\n",
        1,
    );
    let old = strip_definition_policy(&old);
    assert_ne!(
        old, text,
        "the template no longer has the Auth block this edits"
    );
    let file = std::env::temp_dir().join(format!("template-{}.yaml", std::process::id()));
    std::fs::write(&file, old).unwrap();
    let deployed = deploy(
        &file,
        &[("PersonalizeArn", CAMPAIGN), ("AllowedSourceIps", &ranges)],
    );
    let _ = std::fs::remove_file(&file);
    let found = problems(&deployed, &RANGES);
    assert!(
        found.iter().any(|p| p.contains("no Deny for source IPs")),
        "the dropped allowlist was not caught: {found:?}"
    );
}

/// The function role's statement `sid`.
fn statement<'a>(deployed: &'a mut Value, sid: &str) -> &'a mut Value {
    let policies =
        &mut deployed["Resources"]["RecommendationsFunctionRole"]["Properties"]["Policies"];
    let statements = policies[0]["PolicyDocument"]["Statement"]
        .as_array_mut()
        .unwrap();
    statements.iter_mut().find(|s| s["Sid"] == sid).unwrap()
}

fn api_name(deployed: &Value) -> String {
    resources_of_type(deployed, "AWS::ApiGateway::RestApi")[0]
        .0
        .to_owned()
}

/// The template without its `x-amazon-apigateway-policy` (the lines from that key to the end of
/// its `!If`).
fn strip_definition_policy(text: &str) -> String {
    let start = text
        .find("        x-amazon-apigateway-policy:")
        .expect("the template writes the policy into its definition");
    let end_marker = "          - !Ref AWS::NoValue\n";
    let end = start + text[start..].find(end_marker).unwrap() + end_marker.len();
    format!("{}{}", &text[..start], &text[end..])
}

const BRAZE_SECRET: &str =
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:braze-users-track-AbCdEf";

fn with_braze_sync() -> Value {
    with_braze_sync_and(&[])
}

/// The stack with the batch sync, and `more` parameters.
fn with_braze_sync_and(more: &[(&str, &str)]) -> Value {
    let mut parameters = vec![
        ("PersonalizeArn", CAMPAIGN),
        ("BatchOutputBucket", "batch-out"),
        ("BatchOutputPrefix", "personalize/output/"),
        ("BrazeRestEndpoint", "https://rest.iad-01.braze.com"),
        ("BrazeApiKeySecretArn", BRAZE_SECRET),
    ];
    parameters.extend_from_slice(more);
    deploy(&template_path(), &parameters)
}

#[test]
fn the_braze_sync_function_reads_only_its_files_its_secret_and_the_table() {
    let deployed = with_braze_sync();
    let functions = resources_of_type(&deployed, "AWS::Lambda::Function");
    let (_, sync) = functions
        .iter()
        .find(|(name, _)| name.starts_with("BrazeSyncFunction"))
        .expect("a sync function when the bucket and the secret are given");
    assert_eq!(sync["Metadata"]["BuildProperties"]["Binary"], "braze-sync");
    let properties = &sync["Properties"];
    assert_eq!(properties["ReservedConcurrentExecutions"], 1);
    let variables = &properties["Environment"]["Variables"];
    assert_eq!(variables["BRAZE_API_KEY_SECRET_ARN"], BRAZE_SECRET);
    assert!(
        variables.get("BRAZE_API_KEY").is_none(),
        "the key itself is never in the environment"
    );
    assert_eq!(
        variables["BRAZE_REST_ENDPOINT"],
        "https://rest.iad-01.braze.com"
    );

    let mut sync_grants: Vec<(String, String)> = granted(&deployed)
        .into_iter()
        .filter(|(role, _)| role == "BrazeSyncFunctionRole")
        .flat_map(|(_, statement)| {
            let resources = strings(&statement["Resource"]);
            strings(&statement["Action"])
                .into_iter()
                .flat_map(move |a| resources.clone().into_iter().map(move |r| (a.clone(), r)))
        })
        .collect();
    sync_grants.sort();
    assert_eq!(
        sync_grants,
        pairs(&[
            ("dynamodb:BatchGetItem", TABLE_ARN),
            (
                "s3:GetObject",
                "arn:aws:s3:::batch-out/personalize/output/*"
            ),
            ("secretsmanager:GetSecretValue", BRAZE_SECRET),
            (
                "sqs:SendMessage",
                r#"{"Fn::GetAtt":["BrazeSyncFailures","Arn"]}"#
            ),
        ])
    );
    // The endpoint's own role gains nothing from the sync.
    assert!(
        grants(&deployed)
            .iter()
            .all(|(action, _)| !action.starts_with("s3:") && !action.starts_with("secretsmanager:"))
    );

    let rule = one_of_type(&deployed, "AWS::Events::Rule");
    let pattern = &rule["Properties"]["EventPattern"];
    assert_eq!(pattern["source"], json!(["aws.s3"]));
    assert_eq!(pattern["detail-type"], json!(["Object Created"]));
    assert_eq!(pattern["detail"]["bucket"]["name"], json!(["batch-out"]));
    assert_eq!(
        pattern["detail"]["object"]["key"],
        json!([{"wildcard": "personalize/output/*.out"}])
    );
}

#[test]
fn a_file_that_fails_every_try_waits_in_a_queue_and_raises_alarms() {
    let deployed = with_braze_sync();
    let config = one_of_type(&deployed, "AWS::Lambda::EventInvokeConfig");
    assert_eq!(config["Properties"]["MaximumRetryAttempts"], 2);
    assert_eq!(
        config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"],
        json!({"Fn::GetAtt": ["BrazeSyncFailures", "Arn"]})
    );
    let queue = one_of_type(&deployed, "AWS::SQS::Queue");
    assert_eq!(queue["Properties"]["MessageRetentionPeriod"], 1_209_600);
    let alarms = resources_of_type(&deployed, "AWS::CloudWatch::Alarm");
    let alarm = |name: &str| {
        &alarms
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .1["Properties"]
    };
    let errors = alarm("BrazeSyncErrorsAlarm");
    assert_eq!(errors["MetricName"], "Errors");
    assert_eq!(
        errors["Dimensions"][0]["Value"],
        json!({"Ref": "BrazeSyncFunction"})
    );
    assert_eq!(errors["AlarmActions"][0], json!({"Ref": "AlarmTopic"}));
    let depth = alarm("BrazeSyncFailuresAlarm");
    assert_eq!(depth["MetricName"], "ApproximateNumberOfMessagesVisible");
    assert_eq!(
        depth["Dimensions"][0]["Value"],
        json!({"Fn::GetAtt": ["BrazeSyncFailures", "QueueName"]})
    );
    // Its logs are kept as long as the endpoint's, not forever.
    let functions = resources_of_type(&deployed, "AWS::Lambda::Function");
    let (_, sync) = functions
        .iter()
        .find(|(name, _)| name.starts_with("BrazeSyncFunction"))
        .unwrap();
    assert_eq!(
        sync["Properties"]["LoggingConfig"]["LogGroup"],
        json!({"Ref": "BrazeSyncLogs"})
    );
    let logs = resources_of_type(&deployed, "AWS::Logs::LogGroup");
    let (_, group) = logs.iter().find(|(n, _)| *n == "BrazeSyncLogs").unwrap();
    assert_eq!(group["Properties"]["RetentionInDays"], 30);
    // Without delta sync, no state and no right to write one.
    assert!(
        sync["Properties"]["Environment"]["Variables"]
            .get("BRAZE_SYNC_STATE")
            .is_none()
    );
}

#[test]
fn delta_sync_may_write_its_one_state_object_and_nothing_else() {
    let deployed = with_braze_sync_and(&[
        ("BrazeSyncChangedOnly", "true"),
        ("BrazeSyncFields", "id,name,description"),
        ("BrazeSyncBatchSize", "50"),
    ]);
    let functions = resources_of_type(&deployed, "AWS::Lambda::Function");
    let (_, sync) = functions
        .iter()
        .find(|(name, _)| name.starts_with("BrazeSyncFunction"))
        .unwrap();
    let variables = &sync["Properties"]["Environment"]["Variables"];
    assert_eq!(
        variables["BRAZE_SYNC_STATE"],
        "s3://batch-out/personalize/output/braze-sync.state"
    );
    assert_eq!(variables["BRAZE_FIELDS"], "id,name,description");
    assert_eq!(variables["BRAZE_BATCH_SIZE"], "50");
    assert_eq!(variables["BRAZE_CREATE_PROFILES"], "false");
    let writes: Vec<String> = granted(&deployed)
        .into_iter()
        .filter(|(role, _)| role == "BrazeSyncFunctionRole")
        .filter(|(_, statement)| strings(&statement["Action"]).contains(&"s3:PutObject".to_owned()))
        .flat_map(|(_, statement)| strings(&statement["Resource"]))
        .collect();
    assert_eq!(
        writes,
        vec!["arn:aws:s3:::batch-out/personalize/output/braze-sync.state".to_owned()]
    );
}

#[test]
fn without_a_bucket_and_a_secret_there_is_no_sync() {
    let deployed = deploy(&template_path(), &[("PersonalizeArn", CAMPAIGN)]);
    assert_eq!(
        resources_of_type(&deployed, "AWS::Lambda::Function").len(),
        1
    );
    assert!(resources_of_type(&deployed, "AWS::Events::Rule").is_empty());
}
