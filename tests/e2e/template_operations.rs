//! What the template deploys to operate the service: alarms, the dashboard and canary deploys,
//! checked on the SAM-transformed stack, and checked against the metrics the code writes
//! (`personalize_braze_api::metrics::Metric`, the names the request lines carry).

use std::collections::BTreeSet;

use personalize_braze_api::metrics::Metric;
use serde_json::{Value, json};

use super::template::{CAMPAIGN, deploy, one_of_type, resources_of_type, template_path, variable};

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:on-call";

/// The alarms the canary deploy rolls back on.
const ROLLBACK: [&str; 6] = [
    "Api5xxAlarm",
    "UpstreamThrottledAlarm",
    "MisconfiguredAlarm",
    "LatencyAlarm",
    "FunctionErrorsAlarm",
    "FunctionThrottlesAlarm",
];

/// Every alarm, in the dashboard's order: the rollback ones and the fallback rate, which says
/// Personalize is struggling, not that the new code is wrong.
const ALARMS: [&str; 7] = [
    "Api5xxAlarm",
    "UpstreamThrottledAlarm",
    "MisconfiguredAlarm",
    "LatencyAlarm",
    "FallbackRateAlarm",
    "FunctionErrorsAlarm",
    "FunctionThrottlesAlarm",
];

fn names(resources: &[(&str, &Value)]) -> BTreeSet<String> {
    resources.iter().map(|(name, _)| name.to_string()).collect()
}

fn written_across_routes(name: &str) -> bool {
    Metric::ALL
        .iter()
        .any(|m| m.name() == name && m.across_routes())
}

#[test]
fn alarms_watch_metrics_that_are_written_and_notify_the_topic() {
    let deployed = deploy(
        &template_path(),
        &[
            ("PersonalizeArn", CAMPAIGN),
            ("AlarmEmail", "ops@example.com"),
            ("AlarmTopicArn", TOPIC),
        ],
    );
    let alarms = resources_of_type(&deployed, "AWS::CloudWatch::Alarm");
    assert_eq!(names(&alarms), ALARMS.map(String::from).into());

    let namespace = variable(&deployed, "METRICS_NAMESPACE").as_str().unwrap();
    assert_eq!(namespace, "PersonalizeBraze/braze-test", "one per stack");
    let api = one_of_type(&deployed, "AWS::ApiGateway::RestApi");
    let stage = one_of_type(&deployed, "AWS::ApiGateway::Stage");
    let (function, _) = resources_of_type(&deployed, "AWS::Lambda::Function")[0];
    for (name, alarm) in &alarms {
        let alarm = &alarm["Properties"];
        let metric = alarm["MetricName"].as_str().unwrap();
        match alarm["Namespace"].as_str().unwrap() {
            ours if ours == namespace => {
                // Without dimensions: the copy the request lines write across routes.
                assert!(alarm.get("Dimensions").is_none(), "{name}");
                assert!(
                    written_across_routes(metric),
                    "{name}: {metric} is not written without the route"
                );
            }
            "AWS/ApiGateway" => {
                assert_eq!(metric, "5XXError", "{name}");
                assert_eq!(
                    alarm["Dimensions"],
                    json!([
                        {"Name": "ApiName", "Value": api["Properties"]["Body"]["info"]["title"]},
                        {"Name": "Stage", "Value": stage["Properties"]["StageName"]},
                    ]),
                    "{name}"
                );
            }
            "AWS/Lambda" => {
                assert!(["Errors", "Throttles"].contains(&metric), "{name}");
                assert_eq!(
                    alarm["Dimensions"],
                    json!([{"Name": "FunctionName", "Value": {"Ref": function}}]),
                    "{name}"
                );
            }
            other => panic!("{name} watches the namespace {other}"),
        }
        let notified = json!([{"Ref": "AlarmTopic"}, TOPIC]);
        assert_eq!(alarm["AlarmActions"], notified, "{name}");
        assert_eq!(alarm["OKActions"], notified, "{name}");
    }
    // The latency alarm fires near the request budget, on the unit the lines write.
    let latency = &deployed["Resources"]["LatencyAlarm"]["Properties"];
    let budget: f64 = variable(&deployed, "REQUEST_BUDGET_MS")
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let threshold = latency["Threshold"].as_f64().unwrap();
    assert!((0.6 * budget..budget).contains(&threshold), "{threshold}");
    assert_eq!(latency["ExtendedStatistic"], "p99");
    assert_eq!(latency["Unit"], Metric::Latency.unit());
    // The fallback rate: the average of a 0/1 flag every answer with items carries.
    let fallback = &deployed["Resources"]["FallbackRateAlarm"]["Properties"];
    assert_eq!(fallback["MetricName"], Metric::FallbackAnswers.name());
    assert_eq!(fallback["Statistic"], "Average");
    assert_eq!(fallback["Threshold"], 0.05);

    let topic = one_of_type(&deployed, "AWS::SNS::Topic");
    assert_eq!(
        topic["Properties"]["Subscription"],
        json!([{"Protocol": "email", "Endpoint": "ops@example.com"}])
    );

    // Nothing given: the stack's topic alone, nobody subscribed yet.
    let quiet = deploy(&template_path(), &[("PersonalizeArn", CAMPAIGN)]);
    for (name, alarm) in resources_of_type(&quiet, "AWS::CloudWatch::Alarm") {
        assert_eq!(
            alarm["Properties"]["AlarmActions"],
            json!([{"Ref": "AlarmTopic"}]),
            "{name}"
        );
    }
    let topic = one_of_type(&quiet, "AWS::SNS::Topic");
    assert!(topic["Properties"].get("Subscription").is_none(), "{topic}");
}

/// Metric names a dashboard body shows: from `[namespace, name, …]` rows (`"."` repeats the row
/// above) and from `SEARCH('{namespace,…} MetricName="…"')` expressions, with their namespace.
fn dashboard_metrics(body: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for widget in body["widgets"].as_array().unwrap() {
        let mut previous: Vec<Value> = Vec::new();
        for row in widget["properties"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let row = row.as_array().unwrap();
            if let Some(expression) = row[0]["expression"].as_str() {
                for search in expression.split("SEARCH('{").skip(1) {
                    let namespace = search.split([',', '}']).next().unwrap();
                    let name = search
                        .split("MetricName=\"")
                        .nth(1)
                        .and_then(|rest| rest.split('"').next())
                        .unwrap();
                    found.push((namespace.to_owned(), name.to_owned()));
                }
                continue;
            }
            // "..." repeats the whole row above but its options.
            let row: Vec<Value> = if row[0] == "..." {
                previous.clone()
            } else {
                row.iter()
                    .enumerate()
                    .map(|(i, v)| match v {
                        Value::String(s) if s == "." => previous[i].clone(),
                        other => other.clone(),
                    })
                    .filter(|v| v.is_string())
                    .collect()
            };
            found.push((
                row[0].as_str().unwrap().to_owned(),
                row[1].as_str().unwrap().to_owned(),
            ));
            previous = row;
        }
    }
    found
}

#[test]
fn the_dashboard_shows_every_metric_written_next_to_api_gateway_and_lambda() {
    let deployed = deploy(&template_path(), &[("PersonalizeArn", CAMPAIGN)]);
    let dashboard = one_of_type(&deployed, "AWS::CloudWatch::Dashboard");
    // It names the function and the alarms, so the body stays a `Fn::Sub` of those.
    let text = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_str()
        .expect("the body is a Fn::Sub");
    let body: Value = serde_json::from_str(text).expect("the dashboard body is JSON");
    let namespace = variable(&deployed, "METRICS_NAMESPACE").as_str().unwrap();

    let shown = dashboard_metrics(&body);
    let ours: BTreeSet<&str> = shown
        .iter()
        .filter(|(ns, _)| ns == namespace)
        .map(|(_, name)| name.as_str())
        .collect();
    let written: BTreeSet<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
    assert_eq!(
        ours, written,
        "the dashboard shows exactly the metrics written"
    );
    let namespaces: BTreeSet<&str> = shown.iter().map(|(ns, _)| ns.as_str()).collect();
    assert_eq!(
        namespaces,
        [namespace, "AWS/ApiGateway", "AWS/Lambda"].into()
    );

    let alarms = body["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["type"] == "alarm")
        .expect("an alarm widget");
    let listed: Vec<String> = alarms["properties"]["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, ALARMS.map(|a| format!("${{{a}.Arn}}")));
}

#[test]
fn deploys_are_canaries_that_the_alarms_roll_back_and_the_api_calls_the_alias() {
    let deployed = deploy(&template_path(), &[("PersonalizeArn", CAMPAIGN)]);
    let (alias_name, alias) = resources_of_type(&deployed, "AWS::Lambda::Alias")[0];
    assert_eq!(alias["Properties"]["Name"], "live");
    assert!(
        alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"].is_object(),
        "CodeDeploy shifts the alias: {alias}"
    );

    let group = &one_of_type(&deployed, "AWS::CodeDeploy::DeploymentGroup")["Properties"];
    assert_eq!(
        group["DeploymentConfigName"],
        "CodeDeployDefault.LambdaCanary10Percent5Minutes"
    );
    assert_eq!(group["AlarmConfiguration"]["Enabled"], true);
    let rollback_on: Vec<&Value> = group["AlarmConfiguration"]["Alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["Name"]["Ref"])
        .collect();
    assert_eq!(
        rollback_on,
        ROLLBACK.map(Value::from).iter().collect::<Vec<_>>()
    );
    let events = group["AutoRollbackConfiguration"]["Events"].to_string();
    assert!(events.contains("DEPLOYMENT_STOP_ON_ALARM"), "{events}");

    // Every route's integration and invoke permission is the alias, not $LATEST.
    let api = one_of_type(&deployed, "AWS::ApiGateway::RestApi");
    let paths = api["Properties"]["Body"]["paths"].as_object().unwrap();
    let mut routes = 0;
    for (path, operations) in paths {
        for (method, operation) in operations.as_object().unwrap() {
            let uri = operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
                .as_str()
                .unwrap_or_default();
            assert!(
                uri.contains(&format!("${{{alias_name}}}")),
                "{method} {path} calls {uri}"
            );
            routes += 1;
        }
    }
    assert_eq!(routes, 6);
    let permissions = resources_of_type(&deployed, "AWS::Lambda::Permission");
    assert_eq!(permissions.len(), 6);
    for (name, permission) in permissions {
        assert_eq!(
            permission["Properties"]["FunctionName"],
            json!({"Ref": alias_name}),
            "{name}"
        );
    }

    // All at once, when asked, still through the alias and with the alarms.
    let at_once = deploy(
        &template_path(),
        &[
            ("PersonalizeArn", CAMPAIGN),
            ("DeploymentType", "AllAtOnce"),
        ],
    );
    let group = one_of_type(&at_once, "AWS::CodeDeploy::DeploymentGroup");
    assert_eq!(
        group["Properties"]["DeploymentConfigName"],
        "CodeDeployDefault.LambdaAllAtOnce"
    );
}
