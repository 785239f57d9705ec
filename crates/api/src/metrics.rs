//! The request line: one JSON object per request that is both the log line an operator queries
//! and, in CloudWatch's Embedded Metric Format (EMF), the metrics that dashboards and alarms read.
//! CloudWatch Logs extracts the metrics from the line as it arrives, so they cost no API call and
//! no latency.
//!
//! The line carries its correlation ids, a `_aws` member saying which of its members are metrics,
//! and the metric values as members of their own:
//!
//! ```json
//! {"timestamp":"…","level":"INFO","message":"request","route":"/recommendations","status":200,
//!  "lambda_request_id":"…","api_request_id":"…","trace_id":"…",
//!  "_aws":{"Timestamp":1764409973123,"CloudWatchMetrics":[
//!    {"Namespace":"PersonalizeBraze","Dimensions":[["route"]],"Metrics":[{"Name":"Requests","Unit":"Count"},…]},
//!    {"Namespace":"PersonalizeBraze","Dimensions":[[]],"Metrics":[{"Name":"Requests","Unit":"Count"},…]}]},
//!  "Requests":1,"Latency":12.41,…}
//! ```
//!
//! The only dimension is the route, a handful of values; never a user or an item. The metrics
//! that alarms watch are written a second time without it, so an alarm sees the whole API.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use personalize_braze_core::upstream::UpstreamError;

/// Where the metrics go unless `METRICS_NAMESPACE` says otherwise.
pub const DEFAULT_NAMESPACE: &str = "PersonalizeBraze";

/// Every metric the service writes. The names are a contract: the template's alarms and
/// dashboard, and operators' own, refer to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// 1 per request.
    Requests,
    /// From the request's arrival to its answer, in milliseconds.
    Latency,
    /// The recommender's call (Personalize, or the embedded model).
    RecommenderLatency,
    /// The catalog's part: item cache and DynamoDB.
    CatalogLatency,
    /// 1 when the answer is a 4xx, else 0: the average is the rate.
    Errors4xx,
    /// 1 when the answer is a 5xx, else 0.
    Errors5xx,
    /// 1 when an upstream throttled the request (a 503).
    UpstreamThrottled,
    /// 1 when an upstream failed or could not be reached (a 503).
    UpstreamUnavailable,
    /// 1 when the request's time budget ran out before an upstream answered (a 503).
    UpstreamTimeout,
    /// 1 when the deployment is wrong: missing campaign, access denied (a 500).
    Misconfigured,
    /// Items in a successful answer.
    ItemsReturned,
    /// 1 when a successful answer holds no item.
    EmptyAnswers,
    /// Ranked ids dropped because the catalog lacked them.
    CatalogMisses,
    /// Ids the item cache answered (an item, or "the catalog lacks it").
    ItemCacheHits,
    /// Ids the item cache had to fetch.
    ItemCacheMisses,
    /// Events the recommender recorded.
    EventsAccepted,
    /// Events of a valid body that the recommender did not record (an invalid body is a 4xx).
    EventsRejected,
    /// 1 when a fallback answered instead of the recommender, else 0 (answers with items only):
    /// the average is the fallback rate. Also written by the fallback's source
    /// (`fallback` dimension: `popular`, `last-good`) on the lines that had one.
    FallbackAnswers,
}

impl Metric {
    pub const ALL: [Metric; 18] = [
        Metric::Requests,
        Metric::Latency,
        Metric::RecommenderLatency,
        Metric::CatalogLatency,
        Metric::Errors4xx,
        Metric::Errors5xx,
        Metric::UpstreamThrottled,
        Metric::UpstreamUnavailable,
        Metric::UpstreamTimeout,
        Metric::Misconfigured,
        Metric::ItemsReturned,
        Metric::EmptyAnswers,
        Metric::CatalogMisses,
        Metric::ItemCacheHits,
        Metric::ItemCacheMisses,
        Metric::EventsAccepted,
        Metric::EventsRejected,
        Metric::FallbackAnswers,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Requests => "Requests",
            Metric::Latency => "Latency",
            Metric::RecommenderLatency => "RecommenderLatency",
            Metric::CatalogLatency => "CatalogLatency",
            Metric::Errors4xx => "Errors4xx",
            Metric::Errors5xx => "Errors5xx",
            Metric::UpstreamThrottled => "UpstreamThrottled",
            Metric::UpstreamUnavailable => "UpstreamUnavailable",
            Metric::UpstreamTimeout => "UpstreamTimeout",
            Metric::Misconfigured => "Misconfigured",
            Metric::ItemsReturned => "ItemsReturned",
            Metric::EmptyAnswers => "EmptyAnswers",
            Metric::CatalogMisses => "CatalogMisses",
            Metric::ItemCacheHits => "ItemCacheHits",
            Metric::ItemCacheMisses => "ItemCacheMisses",
            Metric::EventsAccepted => "EventsAccepted",
            Metric::EventsRejected => "EventsRejected",
            Metric::FallbackAnswers => "FallbackAnswers",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Metric::Latency | Metric::RecommenderLatency | Metric::CatalogLatency => "Milliseconds",
            _ => "Count",
        }
    }

    /// The flags every route that calls an upstream writes, one of them 1 when it failed.
    pub const UPSTREAM: [Metric; 4] = [
        Metric::UpstreamThrottled,
        Metric::UpstreamUnavailable,
        Metric::UpstreamTimeout,
        Metric::Misconfigured,
    ];

    /// The flag an upstream failure sets; none for a refused request or a full local model,
    /// which are the caller's or local mode's, not the upstream's health.
    pub fn for_upstream(error: &UpstreamError) -> Option<Metric> {
        match error {
            UpstreamError::Throttled(_) => Some(Metric::UpstreamThrottled),
            UpstreamError::Unavailable(_) => Some(Metric::UpstreamUnavailable),
            UpstreamError::TimedOut => Some(Metric::UpstreamTimeout),
            UpstreamError::Misconfigured(_) => Some(Metric::Misconfigured),
            UpstreamError::Rejected(_) | UpstreamError::Full(_) => None,
        }
    }

    /// Also written without the route dimension: what the template's alarms watch.
    pub fn across_routes(self) -> bool {
        matches!(
            self,
            Metric::Requests
                | Metric::Latency
                | Metric::Errors4xx
                | Metric::Errors5xx
                | Metric::UpstreamThrottled
                | Metric::UpstreamUnavailable
                | Metric::UpstreamTimeout
                | Metric::Misconfigured
                | Metric::FallbackAnswers
        )
    }
}

/// One request's line: where it went, how it ended, its correlation ids and its metrics.
/// Only the metrics that mean something for the request are set (a `/health` has no
/// `ItemsReturned`, a request that never reached the catalog no `CatalogLatency`).
#[derive(Debug, Clone, Default)]
pub struct RequestLine<'a> {
    pub route: &'static str,
    pub status: u16,
    pub lambda_request_id: Option<&'a str>,
    pub api_request_id: Option<&'a str>,
    pub trace_id: Option<&'a str>,
    /// The fallback that answered, if one did: a member of the line, and the `fallback`
    /// dimension of `FallbackAnswers`.
    pub fallback: Option<&'static str>,
    values: [Option<Value>; Metric::ALL.len()],
}

/// A metric's value, kept as integers so writing it needs no float formatting.
#[derive(Debug, Clone, Copy)]
enum Value {
    Count(u64),
    /// A duration, written as milliseconds with three decimals.
    Micros(u64),
}

impl<'a> RequestLine<'a> {
    pub fn new(route: &'static str, status: u16) -> Self {
        RequestLine {
            route,
            status,
            ..RequestLine::default()
        }
    }

    pub fn count(&mut self, metric: Metric, n: usize) -> &mut Self {
        self.values[metric as usize] = Some(Value::Count(n as u64));
        self
    }

    /// 1 if `happened`, else 0: averaged over requests, the rate.
    pub fn flag(&mut self, metric: Metric, happened: bool) -> &mut Self {
        self.count(metric, usize::from(happened))
    }

    pub fn duration(&mut self, metric: Metric, d: Duration) -> &mut Self {
        // Microsecond precision is plenty and keeps the line short.
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.values[metric as usize] = Some(Value::Micros(micros));
        self
    }

    /// The value, in its unit (milliseconds for durations).
    pub fn get(&self, metric: Metric) -> Option<f64> {
        self.values[metric as usize].map(|value| match value {
            Value::Count(n) => n as f64,
            Value::Micros(us) => us as f64 / 1e3,
        })
    }

    /// The metrics that are set, in `Metric::ALL`'s order.
    pub fn metrics(&self) -> impl Iterator<Item = (Metric, f64)> + '_ {
        Metric::ALL
            .into_iter()
            .filter_map(|m| self.get(m).map(|value| (m, value)))
    }

    fn set(&self) -> impl Iterator<Item = (Metric, Value)> + '_ {
        Metric::ALL
            .into_iter()
            .filter_map(|m| self.values[m as usize].map(|value| (m, value)))
    }

    /// Appends the line, as one EMF JSON object and a newline, to `out`. Written by hand, as
    /// plain byte copies: it runs on every request.
    pub fn write_emf(&self, namespace: &str, now: SystemTime, out: &mut Vec<u8>) {
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        out.extend_from_slice(br#"{"timestamp":""#);
        write_rfc3339(out, since_epoch);
        out.extend_from_slice(br#"","level":"INFO","message":"request","route":"#);
        json_string(out, self.route);
        out.extend_from_slice(br#","status":"#);
        write_u64(out, self.status.into());
        for (key, id) in [
            (&br#","lambda_request_id":"#[..], self.lambda_request_id),
            (br#","api_request_id":"#, self.api_request_id),
            (br#","trace_id":"#, self.trace_id),
        ] {
            if let Some(id) = id {
                out.extend_from_slice(key);
                json_string(out, id);
            }
        }
        if let Some(source) = self.fallback {
            out.extend_from_slice(br#","fallback":"#);
            json_string(out, source);
        }
        out.extend_from_slice(br#","_aws":{"Timestamp":"#);
        write_u64(out, since_epoch.as_millis() as u64);
        out.extend_from_slice(br#","CloudWatchMetrics":["#);
        self.write_directive(out, namespace, br#"[["route"]]"#, |_| true);
        if self.set().any(|(m, _)| m.across_routes()) {
            out.push(b',');
            self.write_directive(out, namespace, b"[[]]", Metric::across_routes);
        }
        if self.fallback.is_some() && self.get(Metric::FallbackAnswers).is_some() {
            out.push(b',');
            self.write_directive(out, namespace, br#"[["fallback"]]"#, |m| {
                m == Metric::FallbackAnswers
            });
        }
        out.extend_from_slice(b"]}");
        for (metric, value) in self.set() {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(metric.name().as_bytes());
            out.extend_from_slice(b"\":");
            match value {
                Value::Count(n) => write_u64(out, n),
                Value::Micros(us) => {
                    write_u64(out, us / 1000);
                    let fraction = us % 1000;
                    out.extend_from_slice(&[
                        b'.',
                        b'0' + (fraction / 100) as u8,
                        b'0' + (fraction / 10 % 10) as u8,
                        b'0' + (fraction % 10) as u8,
                    ]);
                }
            }
        }
        out.extend_from_slice(b"}\n");
    }

    fn write_directive(
        &self,
        out: &mut Vec<u8>,
        namespace: &str,
        dimensions: &[u8],
        include: impl Fn(Metric) -> bool,
    ) {
        out.extend_from_slice(br#"{"Namespace":"#);
        json_string(out, namespace);
        out.extend_from_slice(br#","Dimensions":"#);
        out.extend_from_slice(dimensions);
        out.extend_from_slice(br#","Metrics":["#);
        let metrics = self.set().filter(|(m, _)| include(*m));
        for (i, (metric, _)) in metrics.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(br#"{"Name":""#);
            out.extend_from_slice(metric.name().as_bytes());
            out.extend_from_slice(br#"","Unit":""#);
            out.extend_from_slice(metric.unit().as_bytes());
            out.extend_from_slice(br#""}"#);
        }
        out.extend_from_slice(b"]}");
    }
}

fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// `2026-11-29T10:03:39.228Z`: UTC, milliseconds.
fn write_rfc3339(out: &mut Vec<u8>, since_epoch: Duration) {
    let seconds = since_epoch.as_secs();
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    let two = |out: &mut Vec<u8>, n: u64| {
        out.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8])
    };
    write_u64(out, year);
    out.push(b'-');
    two(out, month);
    out.push(b'-');
    two(out, day);
    out.push(b'T');
    two(out, of_day / 3600);
    out.push(b':');
    two(out, of_day / 60 % 60);
    out.push(b':');
    two(out, of_day % 60);
    let millis = u64::from(since_epoch.subsec_millis());
    out.extend_from_slice(&[
        b'.',
        b'0' + (millis / 100) as u8,
        b'0' + (millis / 10 % 10) as u8,
        b'0' + (millis % 10) as u8,
        b'Z',
    ]);
}

/// Year, month, day of the `days`-th day after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

fn json_string(out: &mut Vec<u8>, s: &str) {
    // Serializing a `str` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// How request lines are written: EMF JSON on stdout (the default, what CloudWatch reads), or
/// through the text log for people (`LOG_FORMAT=text`, no metrics).
#[derive(Debug, Clone)]
pub enum RequestLog {
    Emf { namespace: String },
    Text,
}

impl RequestLog {
    /// Writes the line, if the log level lets `info` lines through.
    pub fn write(&self, line: &RequestLine<'_>) {
        if !tracing::enabled!(tracing::Level::INFO) {
            return;
        }
        match self {
            RequestLog::Emf { namespace } => {
                let mut out = Vec::with_capacity(1024);
                line.write_emf(namespace, SystemTime::now(), &mut out);
                // One `write_all` on the locked stdout: lines never interleave with other
                // requests' or with the tracing log's. A closed stdout loses the line, nothing else.
                let _ = std::io::stdout().lock().write_all(&out);
            }
            RequestLog::Text => {
                let metrics = line
                    .metrics()
                    .map(|(m, v)| format!("{}={v}", m.name()))
                    .collect::<Vec<_>>()
                    .join(" ");
                tracing::info!(
                    route = line.route,
                    status = line.status,
                    lambda_request_id = line.lambda_request_id,
                    api_request_id = line.api_request_id,
                    trace_id = line.trace_id,
                    metrics,
                    "request"
                );
            }
        }
    }
}

/// Why a `METRICS_NAMESPACE` is not one CloudWatch takes, if it is not.
pub fn check_namespace(namespace: &str) -> Result<(), &'static str> {
    if namespace.is_empty() || namespace.len() > 255 {
        return Err("must be 1 to 255 characters");
    }
    if namespace.starts_with("AWS/") {
        return Err("the AWS/ prefix is reserved for AWS's own metrics");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || ".-_/#: ".contains(c);
    if !namespace.chars().all(allowed) {
        return Err("may hold only letters, digits, spaces and . - _ / # :");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn written(line: &RequestLine<'_>) -> Value {
        let now = UNIX_EPOCH + Duration::from_millis(1_764_409_973_123);
        let mut out = Vec::new();
        line.write_emf("Shop/Prod", now, &mut out);
        assert_eq!(out.last(), Some(&b'\n'), "one line");
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        serde_json::from_slice(&out).expect("the line is one JSON object")
    }

    #[test]
    fn a_line_is_an_emf_document_with_its_values_at_the_top() {
        let mut line = RequestLine::new("/recommendations", 200);
        line.trace_id = Some("Root=1-5759e988-bd862e3fe1be46a994272793");
        line.count(Metric::Requests, 1)
            .duration(Metric::Latency, Duration::from_micros(12_345))
            .count(Metric::ItemsReturned, 3);

        let doc = written(&line);
        assert_eq!(
            doc,
            json!({
                "timestamp": "2025-11-29T09:52:53.123Z",
                "level": "INFO",
                "message": "request",
                "route": "/recommendations",
                "status": 200,
                "trace_id": "Root=1-5759e988-bd862e3fe1be46a994272793",
                "_aws": {
                    "Timestamp": 1_764_409_973_123_u64,
                    "CloudWatchMetrics": [
                        {
                            "Namespace": "Shop/Prod",
                            "Dimensions": [["route"]],
                            "Metrics": [
                                {"Name": "Requests", "Unit": "Count"},
                                {"Name": "Latency", "Unit": "Milliseconds"},
                                {"Name": "ItemsReturned", "Unit": "Count"},
                            ]
                        },
                        {
                            "Namespace": "Shop/Prod",
                            "Dimensions": [[]],
                            "Metrics": [
                                {"Name": "Requests", "Unit": "Count"},
                                {"Name": "Latency", "Unit": "Milliseconds"},
                            ]
                        }
                    ]
                },
                "Requests": 1,
                "Latency": 12.345,
                "ItemsReturned": 3,
            })
        );
    }

    #[test]
    fn ids_are_escaped_and_absent_ids_left_out() {
        let mut line = RequestLine::new("/events", 202);
        line.api_request_id = Some("a\"b\\c\n");
        line.count(Metric::EventsAccepted, 2);
        let doc = written(&line);
        assert_eq!(doc["api_request_id"], "a\"b\\c\n");
        assert!(doc.get("lambda_request_id").is_none());
        assert!(doc.get("trace_id").is_none());
        // No metric an alarm watches: no second directive.
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"].as_array().unwrap().len(),
            1
        );
    }

    #[test]
    fn every_metric_has_a_distinct_name_and_a_cloudwatch_unit() {
        let mut names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Metric::ALL.len());
        for (i, metric) in Metric::ALL.iter().enumerate() {
            assert_eq!(*metric as usize, i, "ALL is in declaration order");
            assert!(["Count", "Milliseconds"].contains(&metric.unit()));
        }
    }

    #[test]
    fn timestamps_are_utc_with_milliseconds_on_any_day() {
        let at = |seconds: u64, millis: u64| {
            let mut out = Vec::new();
            write_rfc3339(&mut out, Duration::from_millis(seconds * 1000 + millis));
            String::from_utf8(out).unwrap()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_709_251_199, 999), "2024-02-29T23:59:59.999Z");
        assert_eq!(at(1_795_946_619, 228), "2026-11-29T10:03:39.228Z");
        assert_eq!(at(4_102_444_800, 40), "2100-01-01T00:00:00.040Z");
    }

    #[test]
    fn namespaces_cloudwatch_refuses_are_refused() {
        assert_eq!(check_namespace("PersonalizeBraze"), Ok(()));
        assert_eq!(check_namespace("PersonalizeBraze/prod-stack #2"), Ok(()));
        assert!(check_namespace("").is_err());
        assert!(check_namespace("AWS/Lambda").is_err());
        assert!(check_namespace("ünïcode").is_err());
        assert!(check_namespace(&"n".repeat(256)).is_err());
    }
}
