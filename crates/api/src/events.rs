//! `POST /events` body → validated `Event`s. The body is what a Braze webhook sends: one event
//! object, or a list of up to 10. Values may arrive as strings (Liquid renders text), so
//! numbers are also read from strings, and an empty string counts as not given.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::query::{InvalidParameter, check_id, comma_list, invalid};
use personalize_braze_core::limits::{
    MAX_ATTRIBUTION_SOURCE_CHARS, MAX_EVENT_TYPE_CHARS, MAX_EVENTS, MAX_IMPRESSION_IDS,
    MAX_PROPERTIES_CHARS,
};
use personalize_braze_core::recommender::Event;

/// Marks (and versions) the ids derived for events sent without one.
const DERIVED_ID_PREFIX: &str = "pb1-";
/// Later than this many seconds is surely milliseconds (the year 5138 in seconds).
const MAX_SENT_AT_SECONDS: f64 = 1e11;

const FIELDS: &[&str] = &[
    "event_id",
    "user_id",
    "session_id",
    "event_type",
    "item_id",
    "event_value",
    "sent_at",
    "properties",
    "recommendation_id",
    "impression",
    "attribution_source",
];

/// Keys PutEvents reserves for itself inside `properties` (compared without case).
const RESERVED_PROPERTIES: &[&str] = &[
    "userId",
    "sessionId",
    "eventType",
    "timestamp",
    "recommendationId",
    "impression",
];

/// Parses the body; `now` (Unix seconds) is the `sent_at` of events that give none.
pub fn parse_events(body: &[u8], now: f64) -> Result<Vec<Event>, InvalidParameter> {
    let value = super::json::parse(body, "events")
        .map_err(|e| e.invalid("a JSON event object or a list of them"))?;
    let events = match value {
        Value::Object(fields) => vec![event(fields, "", 0, now)?],
        Value::Array(list) if list.is_empty() || list.len() > MAX_EVENTS => {
            return Err(invalid(
                "body",
                format!(
                    "body holds {} events; send 1 to {MAX_EVENTS} at a time",
                    list.len()
                ),
            ));
        }
        Value::Array(list) => list
            .into_iter()
            .enumerate()
            .map(|(i, value)| {
                let prefix = format!("events[{i}].");
                match value {
                    Value::Object(fields) => event(fields, &prefix, i, now),
                    _ => Err(invalid(
                        format!("events[{i}]"),
                        format!("events[{i}] must be a JSON object"),
                    )),
                }
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => {
            return Err(invalid(
                "body",
                "body must be a JSON event object or a list of them",
            ));
        }
    };
    // Personalize would train on only one of two events with the same id.
    for (i, event) in events.iter().enumerate() {
        if let Some(first) = events[..i]
            .iter()
            .position(|e| e.event_id == event.event_id)
        {
            return Err(invalid(
                format!("events[{i}].event_id"),
                format!(
                    "events[{i}].event_id repeats events[{first}].event_id; each event needs its own id"
                ),
            ));
        }
    }
    Ok(events)
}

/// One event object, the `index`th of its body; `prefix` (`events[2].`) makes field names in
/// errors exact.
fn event(
    mut fields: Map<String, Value>,
    prefix: &str,
    index: usize,
    now: f64,
) -> Result<Event, InvalidParameter> {
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(invalid(
            format!("{prefix}{unknown}"),
            format!(
                "{prefix}{unknown} is not an event field; the fields are {}",
                FIELDS.join(", ")
            ),
        ));
    }
    let mut take = |name: &str| {
        fields
            .remove(name)
            .filter(|v| !v.is_null() && v.as_str() != Some(""))
            .map(|v| (format!("{prefix}{name}"), v))
    };
    let event_id = take("event_id").map(id).transpose()?;
    let user_id = take("user_id").map(id).transpose()?;
    let session_id = take("session_id").map(id).transpose()?;
    let event_type = take("event_type")
        .map(|(name, v)| {
            let text = text(&name, v)?;
            if text.chars().count() > MAX_EVENT_TYPE_CHARS {
                return Err(invalid(
                    &name,
                    format!("{name} must be at most {MAX_EVENT_TYPE_CHARS} characters"),
                ));
            }
            Ok(text)
        })
        .transpose()?
        .ok_or_else(|| {
            invalid(
                format!("{prefix}event_type"),
                format!("{prefix}event_type is required (click, purchase, …)"),
            )
        })?;
    let item_id = take("item_id").map(id).transpose()?;
    let event_value = take("event_value").map(event_value).transpose()?;
    let given_sent_at = take("sent_at").map(sent_at).transpose()?;
    let properties = take("properties").map(properties).transpose()?;
    let recommendation_id = take("recommendation_id").map(id).transpose()?;
    let impression = take("impression").map(impression).transpose()?;
    let attribution_source = take("attribution_source")
        .map(attribution_source)
        .transpose()?;

    if user_id.is_none() && session_id.is_none() {
        return Err(invalid(
            format!("{prefix}user_id"),
            format!("{prefix}user_id is required (or session_id, for an anonymous visitor)"),
        ));
    }
    let mut event = Event {
        event_id: event_id.unwrap_or_default(),
        session_id: session_id.or_else(|| user_id.clone()).unwrap_or_default(),
        user_id,
        event_type,
        item_id,
        event_value,
        sent_at: given_sent_at.unwrap_or(now),
        properties,
        recommendation_id,
        impression: impression.unwrap_or_default(),
        attribution_source,
    };
    if event.event_id.is_empty() {
        event.event_id = derived_event_id(&event, index, given_sent_at);
    }
    Ok(event)
}

/// An id for an event that came without one, from what the caller sent and nothing else (not
/// the arrival time that stands in for a missing `sent_at`): the same body sent again yields the
/// same ids, so Personalize trains on its events once. The event's place in the body is part of
/// it, so two alike events in one body stay two.
fn derived_event_id(event: &Event, index: usize, given_sent_at: Option<f64>) -> String {
    // A JSON array of the fields: unambiguous, and stable across versions of this service.
    let fields = (
        index,
        &event.user_id,
        &event.session_id,
        &event.event_type,
        &event.item_id,
        event.event_value,
        given_sent_at,
        &event.properties,
        &event.recommendation_id,
        &event.impression,
    );
    // Serializing references and numbers into a `Vec` cannot fail.
    let text = serde_json::to_vec(&fields).unwrap_or_default();
    let digest = Sha256::digest(&text);
    let mut id = String::with_capacity(DERIVED_ID_PREFIX.len() + 32);
    id.push_str(DERIVED_ID_PREFIX);
    for byte in &digest[..16] {
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    id
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Personalize's `eventAttributionSource`: printable ASCII, not only spaces, 1024 at most. Not part
/// of a derived event id: the same interaction is one event whatever variant reports it.
fn attribution_source((name, value): (String, Value)) -> Result<String, InvalidParameter> {
    let source = text(&name, value)?;
    let printable = source.bytes().all(|b| (0x20..=0x7e).contains(&b));
    if !printable || source.trim().is_empty() || source.len() > MAX_ATTRIBUTION_SOURCE_CHARS {
        return Err(invalid(
            &name,
            format!(
                "{name} must be 1 to {MAX_ATTRIBUTION_SOURCE_CHARS} printable ASCII characters \
                 (not only spaces)"
            ),
        ));
    }
    Ok(source)
}

fn text(name: &str, value: Value) -> Result<String, InvalidParameter> {
    match value {
        Value::String(text) => Ok(text),
        _ => Err(invalid(name, format!("{name} must be a string"))),
    }
}

fn id((name, value): (String, Value)) -> Result<String, InvalidParameter> {
    // Numeric ids are common in CRMs; accept them as their text.
    let text = match value {
        Value::Number(n) => n.to_string(),
        other => text(&name, other)?,
    };
    check_id(&text, &name)?;
    Ok(text)
}

/// A number, or a string holding one.
fn number(value: &Value) -> Option<f64> {
    let n = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(text) => text.trim().parse::<f64>().ok(),
        _ => None,
    };
    n.filter(|n| n.is_finite())
}

fn event_value((name, value): (String, Value)) -> Result<f32, InvalidParameter> {
    number(&value)
        .map(|n| n as f32)
        .filter(|n| n.is_finite())
        .ok_or_else(|| invalid(&name, format!("{name} must be a number")))
}

/// Unix seconds (a number or numeric string) or an RFC 3339 date-time.
fn sent_at((name, value): (String, Value)) -> Result<f64, InvalidParameter> {
    let seconds = number(&value).or_else(|| {
        let text = value.as_str()?;
        let parsed = aws_smithy_types::DateTime::from_str(
            text.trim(),
            aws_smithy_types::date_time::Format::DateTime,
        )
        .ok()?;
        Some(parsed.as_secs_f64())
    });
    match seconds {
        Some(s) if s > MAX_SENT_AT_SECONDS => Err(invalid(
            &name,
            format!("{name} looks like milliseconds; send Unix seconds or an RFC 3339 date-time"),
        )),
        Some(s) if s > 0.0 => Ok(s),
        _ => Err(invalid(
            &name,
            format!("{name} must be Unix seconds or an RFC 3339 date-time (2026-11-28T12:00:00Z)"),
        )),
    }
}

/// A JSON object (or a string holding one) of the interaction schema's extra fields.
fn properties((name, value): (String, Value)) -> Result<String, InvalidParameter> {
    let object = match value {
        Value::Object(object) => object,
        Value::String(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(object)) => object,
            _ => return Err(invalid(&name, format!("{name} must be a JSON object"))),
        },
        _ => return Err(invalid(&name, format!("{name} must be a JSON object"))),
    };
    if let Some(key) = object.keys().find(|k| {
        RESERVED_PROPERTIES
            .iter()
            .any(|r| r.eq_ignore_ascii_case(k))
    }) {
        return Err(invalid(
            &name,
            format!("{name} must not hold {key}: Personalize reserves it; use the event field"),
        ));
    }
    let text = Value::Object(object).to_string();
    if text.chars().count() > MAX_PROPERTIES_CHARS {
        return Err(invalid(
            &name,
            format!("{name} must be at most {MAX_PROPERTIES_CHARS} characters as JSON"),
        ));
    }
    Ok(text)
}

/// The item ids the user was shown: a list, or a comma-separated string.
fn impression((name, value): (String, Value)) -> Result<Vec<String>, InvalidParameter> {
    let ids: Vec<String> = match value {
        Value::String(text) => comma_list(&text).map(str::to_owned).collect(),
        Value::Array(values) => values
            .into_iter()
            .map(|v| text(&name, v))
            .collect::<Result<_, _>>()
            .map_err(|_| invalid(&name, format!("{name} must be a list of item ids")))?,
        _ => return Err(invalid(&name, format!("{name} must be a list of item ids"))),
    };
    if ids.len() > MAX_IMPRESSION_IDS {
        return Err(invalid(
            &name,
            format!("{name} must hold at most {MAX_IMPRESSION_IDS} item ids"),
        ));
    }
    for id in &ids {
        check_id(id, &name)?;
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_795_000_000.0;

    fn parse(body: &str) -> Result<Vec<Event>, InvalidParameter> {
        parse_events(body.as_bytes(), NOW)
    }

    #[test]
    fn a_minimal_event_takes_the_defaults() {
        let events = parse(r#"{"user_id":"u1","event_type":"click","item_id":"sku-1"}"#).unwrap();
        let derived = events[0].event_id.clone();
        assert!(
            derived.starts_with("pb1-") && derived.len() == 36,
            "{derived}"
        );
        assert_eq!(
            events,
            [Event {
                event_id: derived,
                user_id: Some("u1".into()),
                session_id: "u1".into(),
                event_type: "click".into(),
                item_id: Some("sku-1".into()),
                event_value: None,
                sent_at: NOW,
                properties: None,
                recommendation_id: None,
                impression: vec![],
                attribution_source: None,
            }]
        );
    }

    #[test]
    fn every_field_as_a_webhook_renders_it() {
        let events = parse(
            r#"[{"event_id":"order-77","user_id":"u1","session_id":"s9","event_type":"purchase","item_id":"sku-1",
                 "event_value":"39.5","sent_at":"1795000100","properties":{"discount":"10"},
                 "recommendation_id":"RID-1","impression":"sku-1, sku-2"},
                {"user_id":42,"event_type":"view","sent_at":"2026-11-28T12:00:00Z",
                 "event_value":2,"properties":"{\"numberOfRatings\":\"12\"}","impression":["a","b"],
                 "item_id":""}]"#,
        )
        .unwrap();
        assert_eq!(events.len(), 2);
        let first = &events[0];
        assert_eq!(first.event_id, "order-77");
        assert_eq!(first.session_id, "s9");
        assert_eq!(first.event_value, Some(39.5));
        assert_eq!(first.sent_at, 1_795_000_100.0);
        assert_eq!(first.properties.as_deref(), Some(r#"{"discount":"10"}"#));
        assert_eq!(first.recommendation_id.as_deref(), Some("RID-1"));
        assert_eq!(first.impression, ["sku-1", "sku-2"]);
        let second = &events[1];
        assert_eq!(second.user_id.as_deref(), Some("42"));
        assert_eq!(second.session_id, "42");
        assert_eq!(second.sent_at, 1_795_867_200.0);
        assert_eq!(second.event_value, Some(2.0));
        assert_eq!(
            second.properties.as_deref(),
            Some(r#"{"numberOfRatings":"12"}"#)
        );
        assert_eq!(second.impression, ["a", "b"]);
        assert_eq!(second.item_id, None, "an empty string is not given");
    }

    /// Braze retries a failed webhook with the same body, at another time: every event must get
    /// the same id again, so Personalize trains on it once.
    #[test]
    fn events_without_an_id_get_one_that_a_retry_reproduces() {
        let body = r#"[{"user_id":"u1","event_type":"click","item_id":"a"},
                       {"user_id":"u1","event_type":"click","item_id":"a"},
                       {"user_id":"u1","event_type":"click","item_id":"b","sent_at":1795000100},
                       {"user_id":"u1","event_id":"mine","event_type":"view"}]"#;
        let ids = |now: f64| -> Vec<String> {
            parse_events(body.as_bytes(), now)
                .unwrap()
                .into_iter()
                .map(|e| e.event_id)
                .collect()
        };
        let first = ids(NOW);
        assert_eq!(
            first,
            ids(NOW + 3600.0),
            "the arrival time is not part of the id"
        );
        assert_eq!(first[3], "mine", "the caller's own id is kept");
        assert_ne!(first[0], first[1], "two alike events in one body stay two");
        assert_ne!(first[1], first[2]);

        // Any field the caller sent changes the id.
        let one = |event: &str| parse(event).unwrap()[0].event_id.clone();
        let base = one(r#"{"user_id":"u1","event_type":"click","item_id":"a"}"#);
        for changed in [
            r#"{"user_id":"u2","event_type":"click","item_id":"a"}"#,
            r#"{"user_id":"u1","event_type":"view","item_id":"a"}"#,
            r#"{"user_id":"u1","event_type":"click","item_id":"b"}"#,
            r#"{"user_id":"u1","session_id":"s","event_type":"click","item_id":"a"}"#,
            r#"{"user_id":"u1","event_type":"click","item_id":"a","sent_at":1795000000}"#,
            r#"{"user_id":"u1","event_type":"click","item_id":"a","event_value":1}"#,
            r#"{"user_id":"u1","event_type":"click","item_id":"a","recommendation_id":"r"}"#,
            r#"{"user_id":"u1","event_type":"click","item_id":"a","impression":"a,b"}"#,
            r#"{"user_id":"u1","event_type":"click","item_id":"a","properties":{"k":"v"}}"#,
        ] {
            assert_ne!(one(changed), base, "{changed}");
        }
        // Values that mean the same give the same id: how Liquid rendered them does not matter.
        assert_eq!(
            one(r#"{"user_id":"u1","event_type":"click","item_id":"a","event_value":"2"}"#),
            one(r#"{"user_id":"u1","event_type":"click","item_id":"a","event_value":2}"#),
        );
    }

    #[test]
    fn an_id_twice_in_one_body_is_refused() {
        let err = parse(
            r#"[{"user_id":"u","event_type":"v","event_id":"e1"},
                {"user_id":"u","event_type":"v","event_id":"e2"},
                {"user_id":"u","event_type":"v","event_id":"e1"}]"#,
        )
        .unwrap_err();
        assert_eq!(err.parameter, "events[2].event_id");
        assert!(
            err.message.contains("repeats events[0].event_id"),
            "{}",
            err.message
        );
    }

    /// A field twice in one event is refused, naming it, rather than the last one winning.
    #[test]
    fn a_field_twice_in_one_event_is_refused() {
        let err = parse(r#"{"user_id":"a","event_type":"v","user_id":"b"}"#).unwrap_err();
        assert_eq!(err.parameter, "user_id");
        assert_eq!(err.message, "user_id is given more than once");
        let err = parse(
            r#"[{"user_id":"a","event_type":"v"},
                {"user_id":"a","event_type":"v","properties":{"c":1,"c":2}}]"#,
        )
        .unwrap_err();
        assert_eq!(err.parameter, "events[1].properties.c");
    }

    #[test]
    fn an_anonymous_visitor_needs_a_session() {
        let events = parse(r#"{"session_id":"s1","event_type":"view"}"#).unwrap();
        assert_eq!(events[0].user_id, None);
        assert_eq!(events[0].session_id, "s1");
    }

    #[test]
    fn each_bad_field_is_named() {
        let eleven = format!(
            "[{}]",
            [r#"{"user_id":"u","event_type":"v"}"#; 11].join(",")
        );
        let long_properties = format!(
            r#"{{"user_id":"u","event_type":"v","properties":{{"k":"{}"}}}}"#,
            "x".repeat(1100)
        );
        let cases: &[(&str, &str, &str)] = &[
            ("not json", "body", "JSON"),
            ("[]", "body", "1 to 10"),
            (&eleven, "body", "1 to 10"),
            ("\"click\"", "body", "JSON event object"),
            (
                r#"[{"user_id":"u","event_type":"v"}, 3]"#,
                "events[1]",
                "JSON object",
            ),
            (r#"{"user_id":"u"}"#, "event_type", "required"),
            (
                r#"[{"user_id":"u","event_type":"v"},{"user_id":"u"}]"#,
                "events[1].event_type",
                "required",
            ),
            (r#"{"event_type":"v"}"#, "user_id", "session_id"),
            (
                r#"{"usr_id":"u","event_type":"v"}"#,
                "usr_id",
                "not an event field",
            ),
            (
                r#"{"user_id":"u","event_type":["v"]}"#,
                "event_type",
                "string",
            ),
            (
                r#"{"user_id":"a\nb","event_type":"v"}"#,
                "user_id",
                "control",
            ),
            (
                r#"{"user_id":"u","event_type":"v","event_value":"lots"}"#,
                "event_value",
                "number",
            ),
            (
                r#"{"user_id":"u","event_type":"v","sent_at":"yesterday"}"#,
                "sent_at",
                "RFC 3339",
            ),
            (
                r#"{"user_id":"u","event_type":"v","sent_at":1795000000000}"#,
                "sent_at",
                "milliseconds",
            ),
            (
                r#"{"user_id":"u","event_type":"v","sent_at":-5}"#,
                "sent_at",
                "Unix seconds",
            ),
            (
                r#"{"user_id":"u","event_type":"v","properties":"plain"}"#,
                "properties",
                "JSON object",
            ),
            (
                r#"{"user_id":"u","event_type":"v","properties":{"UserId":"x"}}"#,
                "properties",
                "reserves",
            ),
            (&long_properties, "properties", "at most 1024"),
            (
                r#"{"user_id":"u","event_type":"v","impression":{"a":1}}"#,
                "impression",
                "list of item ids",
            ),
            (
                r#"{"user_id":"u","event_type":"v","impression":[1]}"#,
                "impression",
                "list of item ids",
            ),
        ];
        for (body, parameter, message) in cases {
            let err = parse(body).expect_err(body);
            assert_eq!(&err.parameter, parameter, "{body}");
            assert!(err.message.contains(message), "{body}: {}", err.message);
            assert!(
                err.message.contains(parameter),
                "{body}: message must name {parameter}"
            );
        }
    }
}
