//! Guards on template.yaml that a review could miss: least-privilege IAM and the API key.

use serde_norway::Value;

fn template() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml"))
        .expect("template.yaml")
}

fn parse(text: &str) -> Value {
    serde_norway::from_str(text).expect("template.yaml is YAML")
}

/// Every IAM policy statement in the template, with where it is.
fn statements(template: &Value) -> Vec<(String, Value)> {
    let mut found = Vec::new();
    let Some(resources) = template["Resources"].as_mapping() else {
        return found;
    };
    for (name, resource) in resources {
        let name = name.as_str().unwrap_or_default().to_owned();
        let properties = &resource["Properties"];
        // SAM function policies are statements inline; IAM roles and policies wrap them in documents.
        let mut documents: Vec<&Value> = Vec::new();
        if let Some(policies) = properties["Policies"].as_sequence() {
            for policy in policies {
                documents.push(policy);
                documents.push(&policy["PolicyDocument"]);
            }
        }
        documents.push(&properties["PolicyDocument"]);
        for document in documents {
            if let Some(list) = document["Statement"].as_sequence() {
                found.extend(list.iter().flat_map(branches).map(|s| (name.clone(), s)));
            }
        }
    }
    found
}

/// A statement, or both branches of a conditional one (`!If [Cond, statement, !Ref AWS::NoValue]`).
fn branches(value: &Value) -> Vec<Value> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "If" => tagged
            .value
            .as_sequence()
            .map(|parts| {
                parts
                    .iter()
                    .skip(1)
                    .filter(|p| p.is_mapping())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default(),
        other => vec![other.clone()],
    }
}

/// All plain strings inside a value, through lists, maps and CloudFormation tags (`!Sub`, `!If`…).
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(list) => list.iter().flat_map(strings).collect(),
        Value::Mapping(map) => map.values().flat_map(strings).collect(),
        Value::Tagged(tagged) => strings(&tagged.value),
        _ => Vec::new(),
    }
}

/// What is wrong with the template's IAM and API key settings; empty when nothing is.
fn problems(template: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let statements = statements(template);
    if statements.is_empty() {
        problems.push("no IAM statements found: the function cannot call anything".to_owned());
    }
    for (resource, statement) in &statements {
        if statement["Effect"].as_str() != Some("Allow") {
            continue;
        }
        for action in strings(&statement["Action"]) {
            if action.contains('*') {
                problems.push(format!("{resource}: wildcard action {action}"));
            }
        }
        if statement.get("NotAction").is_some() || statement.get("NotResource").is_some() {
            problems.push(format!("{resource}: NotAction/NotResource grants too much"));
        }
        // `sts:AssumeRole` trust statements name a principal, not a resource.
        if statement.get("Principal").is_none() {
            let resources = strings(&statement["Resource"]);
            if resources.is_empty() {
                problems.push(format!("{resource}: a statement without a resource"));
            }
            // PutEvents is authorized on no resource, so IAM takes only "*" for it; any other
            // action in the same statement would widen that.
            let put_events_only = strings(&statement["Action"]) == ["personalize:PutEvents"];
            for r in resources {
                if r.contains('*') && !(put_events_only && r == "*") {
                    problems.push(format!("{resource}: wildcard resource {r}"));
                }
            }
        }
    }

    let api = &template["Resources"]["RecommendationsApi"]["Properties"];
    if api["Auth"]["ApiKeyRequired"].as_bool() != Some(true) {
        problems.push("RecommendationsApi: Auth.ApiKeyRequired must be true".to_owned());
    }
    let events = &template["Resources"]["RecommendationsFunction"]["Properties"]["Events"];
    let mut routes = Vec::new();
    for (name, event) in events.as_mapping().into_iter().flatten() {
        let properties = &event["Properties"];
        routes.push(format!(
            "{} {}",
            properties["Method"].as_str().unwrap_or_default(),
            properties["Path"].as_str().unwrap_or_default()
        ));
        if properties["Auth"]["ApiKeyRequired"].as_bool() == Some(false) {
            problems.push(format!(
                "event {}: turns the API key off",
                name.as_str().unwrap_or_default()
            ));
        }
    }
    // Every route the router serves.
    for route in [
        "GET /recommendations",
        "GET /related-items",
        "GET /rankings",
        "POST /rankings",
        "POST /events",
        "GET /health",
    ] {
        if !routes.iter().any(|r| r == route) {
            problems.push(format!("no {route} route on RecommendationsFunction"));
        }
    }
    problems
}

#[test]
fn iam_is_least_privilege_and_the_api_needs_a_key() {
    assert_eq!(problems(&parse(&template())), Vec::<String>::new());
}

#[test]
fn the_checks_catch_what_they_guard_against() {
    let text = template();
    let broken = [
        (
            "Action: dynamodb:BatchGetItem",
            "Action: dynamodb:*",
            "wildcard action dynamodb:*",
        ),
        (
            "Resource: !GetAtt ItemsTable.Arn",
            "Resource: \"*\"",
            "wildcard resource *",
        ),
        (
            "Action: personalize:PutEvents",
            "Action: [personalize:PutEvents, personalize:GetRecommendations]",
            "wildcard resource *",
        ),
        (
            "Resource: !Ref RankingArn",
            "Resource: arn:aws:personalize:*:*:campaign/*",
            "wildcard resource arn:aws:personalize:*",
        ),
        (
            "            Path: /events\n            Method: POST",
            "            Path: /events\n            Method: POST\n            Auth:\n              ApiKeyRequired: false",
            "turns the API key off",
        ),
        (
            "            Path: /related-items",
            "            Path: /related",
            "no GET /related-items route",
        ),
        (
            "        ApiKeyRequired: true",
            "        ApiKeyRequired: false",
            "ApiKeyRequired must be true",
        ),
        (
            "            Path: /recommendations\n            Method: GET",
            "            Path: /recommendations\n            Method: GET\n            Auth:\n              ApiKeyRequired: false",
            "turns the API key off",
        ),
    ];
    for (original, replacement, expected) in broken {
        assert!(
            text.contains(original),
            "the template no longer contains {original:?}"
        );
        let found = problems(&parse(&text.replacen(original, replacement, 1)));
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "{replacement:?} was not caught: {found:?}"
        );
    }
}

#[test]
fn the_function_is_built_for_arm64_with_cargo_lambda() {
    let template = parse(&template());
    let function = &template["Resources"]["RecommendationsFunction"];
    assert_eq!(
        function["Metadata"]["BuildMethod"].as_str(),
        Some("rust-cargolambda")
    );
    assert_eq!(
        function["Properties"]["Runtime"].as_str(),
        Some("provided.al2023")
    );
    assert_eq!(
        function["Properties"]["Handler"].as_str(),
        Some("bootstrap")
    );
    assert_eq!(strings(&function["Properties"]["Architectures"]), ["arm64"]);
    let variables = &function["Properties"]["Environment"]["Variables"];
    assert_eq!(
        variables["AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH"].as_str(),
        Some("true")
    );
}
