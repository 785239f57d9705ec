//! Our own reader of CloudWatch's Embedded Metric Format: it checks a log line against the
//! specification as CloudWatch Logs would before extracting metrics, and gives back the metrics
//! it declares, so tests can compare them with what the fakes did.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The units CloudWatch takes.
const UNITS: [&str; 27] = [
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// One metric as CloudWatch would store it.
#[derive(Debug, Clone, PartialEq)]
pub struct Datum {
    pub namespace: String,
    /// Dimension name → value; empty for the across-routes copy.
    pub dimensions: BTreeMap<String, String>,
    pub name: String,
    pub unit: String,
    pub value: f64,
}

/// A request line, read.
#[derive(Debug, Clone)]
pub struct Line {
    pub root: Map<String, Value>,
    pub data: Vec<Datum>,
}

impl Line {
    pub fn route(&self) -> &str {
        self.root["route"].as_str().unwrap_or_default()
    }

    pub fn status(&self) -> u64 {
        self.root["status"].as_u64().unwrap_or_default()
    }

    /// The metrics with the route dimension, by name.
    pub fn by_route(&self) -> BTreeMap<&str, f64> {
        self.data
            .iter()
            .filter(|d| d.dimensions.contains_key("route"))
            .map(|d| (d.name.as_str(), d.value))
            .collect()
    }

    /// The metrics without dimensions, by name.
    pub fn across_routes(&self) -> BTreeMap<&str, f64> {
        self.data
            .iter()
            .filter(|d| d.dimensions.is_empty())
            .map(|d| (d.name.as_str(), d.value))
            .collect()
    }
}

/// Reads `line` as an EMF document; `Err` says which rule of the specification it breaks.
pub fn read(line: &str) -> Result<Line, String> {
    if line.len() > 256 * 1024 {
        return Err("a log event is at most 256 KB".into());
    }
    let root: Map<String, Value> =
        serde_json::from_str(line).map_err(|e| format!("not one JSON object: {e}"))?;
    let aws = object(root.get("_aws"), "_aws")?;
    only(aws, &["Timestamp", "CloudWatchMetrics"], "_aws")?;
    let timestamp = aws
        .get("Timestamp")
        .and_then(Value::as_u64)
        .ok_or("_aws.Timestamp must be an integer of milliseconds")?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    if timestamp.abs_diff(now_ms) > 3_600_000 {
        return Err(format!("_aws.Timestamp {timestamp} is not now in ms"));
    }
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .ok_or("_aws.CloudWatchMetrics must be an array")?;
    let mut data = Vec::new();
    for directive in directives {
        let directive = object(Some(directive), "MetricDirective")?;
        only(
            directive,
            &["Namespace", "Dimensions", "Metrics"],
            "directive",
        )?;
        let namespace = directive
            .get("Namespace")
            .and_then(Value::as_str)
            .filter(|n| (1..=255).contains(&n.len()))
            .ok_or("Namespace must be a string of 1 to 255 characters")?;
        let sets = directive
            .get("Dimensions")
            .and_then(Value::as_array)
            .filter(|sets| !sets.is_empty())
            .ok_or("Dimensions must be a non-empty array of dimension sets")?;
        let metrics = directive
            .get("Metrics")
            .and_then(Value::as_array)
            .filter(|metrics| metrics.len() <= 100)
            .ok_or("Metrics must be an array of at most 100 definitions")?;
        let mut names = Vec::new();
        for definition in metrics {
            let definition = object(Some(definition), "MetricDefinition")?;
            only(
                definition,
                &["Name", "Unit", "StorageResolution"],
                "definition",
            )?;
            let name = definition
                .get("Name")
                .and_then(Value::as_str)
                .filter(|n| (1..=255).contains(&n.len()))
                .ok_or("a metric Name must be a string of 1 to 255 characters")?;
            let unit = match definition.get("Unit") {
                None => "None",
                Some(unit) => unit
                    .as_str()
                    .filter(|u| UNITS.contains(u))
                    .ok_or(format!("{name}: {unit} is not a CloudWatch unit"))?,
            };
            if names.contains(&name) {
                return Err(format!("{name} is defined twice in one directive"));
            }
            names.push(name);
            let value = root.get(name).and_then(Value::as_f64).ok_or(format!(
                "the metric {name} has no numeric member on the root"
            ))?;
            for set in sets {
                let keys = set
                    .as_array()
                    .filter(|keys| keys.len() <= 9)
                    .ok_or("a dimension set is an array of at most 9 keys")?;
                let mut dimensions = BTreeMap::new();
                for key in keys {
                    let key = key.as_str().ok_or("a dimension key is a string")?;
                    let value = root
                        .get(key)
                        .and_then(Value::as_str)
                        .ok_or(format!("the dimension {key} has no string member"))?;
                    dimensions.insert(key.to_owned(), value.to_owned());
                }
                data.push(Datum {
                    namespace: namespace.to_owned(),
                    dimensions,
                    name: name.to_owned(),
                    unit: unit.to_owned(),
                    value,
                });
            }
        }
    }
    Ok(Line { root, data })
}

/// Every request line in a service's log, each checked; panics naming the line that breaks the
/// specification.
pub fn request_lines(log: &str) -> Vec<Line> {
    log.lines()
        .filter(|line| line.contains(r#""message":"request""#))
        .map(|line| read(line).unwrap_or_else(|e| panic!("{e}:\n{line}")))
        .collect()
}

fn object<'a>(value: Option<&'a Value>, what: &str) -> Result<&'a Map<String, Value>, String> {
    value
        .and_then(Value::as_object)
        .ok_or(format!("{what} must be an object"))
}

/// Objects the specification defines must not carry other members.
fn only(object: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), String> {
    match object.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(format!(
            "{what} has a member the specification does not: {key}"
        )),
        None => Ok(()),
    }
}

#[test]
fn the_reader_refuses_what_cloudwatch_would() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let line = |directive: &str, members: &str| {
        format!(
            r#"{{"_aws":{{"Timestamp":{now},"CloudWatchMetrics":[{directive}]}},"route":"/r"{members}}}"#
        )
    };
    let good =
        r#"{"Namespace":"N","Dimensions":[["route"],[]],"Metrics":[{"Name":"M","Unit":"Count"}]}"#;
    let read_good = read(&line(good, r#","M":2"#)).unwrap();
    assert_eq!(read_good.by_route()["M"], 2.0);
    assert_eq!(read_good.across_routes()["M"], 2.0);

    for (directive, members, why) in [
        (good, "", "no value for M"),
        (good, r#","M":"2""#, "a string value"),
        (
            r#"{"Namespace":"N","Dimensions":[["stage"]],"Metrics":[{"Name":"M"}]}"#,
            r#","M":1"#,
            "a dimension without a member",
        ),
        (
            r#"{"Namespace":"N","Dimensions":[],"Metrics":[{"Name":"M"}]}"#,
            r#","M":1"#,
            "no dimension set",
        ),
        (
            r#"{"Namespace":"N","Dimensions":[[]],"Metrics":[{"Name":"M","Unit":"ms"}]}"#,
            r#","M":1"#,
            "an unknown unit",
        ),
        (
            r#"{"Namespace":"N","Dimensions":[[]],"Metrics":[{"Name":"M"},{"Name":"M"}]}"#,
            r#","M":1"#,
            "a metric twice",
        ),
        (
            r#"{"Namespace":"","Dimensions":[[]],"Metrics":[{"Name":"M"}]}"#,
            r#","M":1"#,
            "an empty namespace",
        ),
    ] {
        assert!(read(&line(directive, members)).is_err(), "{why}");
    }
    assert!(
        read(r#"{"_aws":{"CloudWatchMetrics":[]}}"#).is_err(),
        "no timestamp"
    );
    assert!(read("not json").is_err());
}
