//! Property tests through the real router (local mode, over the sample data): whatever query
//! string or body arrives, the answer is a 2xx, or a 4xx in the error shape; never a panic, never
//! a 5xx. And parameters that are valid come back parsed exactly as they were sent.

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use personalize_braze_api::query::{Limits, parse_recommendations};
use personalize_braze_core::recommender::Subject;
use proptest::prelude::*;
use serde_json::Value;

use crate::support::{Answer, local_app, send};

/// The local-mode router over the sample data, built once for every case.
fn router() -> &'static axum::Router {
    static ROUTER: OnceLock<axum::Router> = OnceLock::new();
    ROUTER.get_or_init(local_app)
}

fn answer(request: Request<Body>) -> Answer {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(send(router(), request))
}

/// A 2xx, or a 4xx whose body is `{"error":{"code","message",…}}`.
fn well_answered(answer: &Answer) -> Result<(), TestCaseError> {
    let status = answer.status;
    prop_assert!(
        status.is_success() || status.is_client_error(),
        "{status}: {}",
        answer.body
    );
    let json: Value = serde_json::from_str(&answer.body)
        .map_err(|e| TestCaseError::fail(format!("not JSON ({e}): {}", answer.body)))?;
    if status.is_client_error() {
        prop_assert!(json["error"]["code"].is_string(), "{json}");
        prop_assert!(json["error"]["message"].is_string(), "{json}");
    }
    Ok(())
}

/// Query strings as a URI can carry them: names and values of any URI characters, `%`s with or
/// without two hex digits after them, and the parameters the service knows.
fn query_string() -> impl Strategy<Value = String> {
    let known = prop::sample::select(vec![
        "user_id",
        "item_id",
        "item_ids",
        "count",
        "filter",
        "format",
        "filter_CATEGORY",
        "context_DEVICE",
        "filter_",
        "context_a-b",
    ]);
    let name = prop_oneof![known.prop_map(str::to_owned), "[A-Za-z0-9_%.~-]{0,12}"];
    let value = "([A-Za-z0-9_.~,+!$'()*;:@/?-]|%[0-9A-Fa-f]{2}|%[0-9A-Za-z]?){0,40}";
    let pair = (name, prop::option::of(value)).prop_map(|(name, value)| match value {
        Some(value) => format!("{name}={value}"),
        None => name,
    });
    prop::collection::vec(pair, 0..8).prop_map(|pairs| pairs.join("&"))
}

/// Any JSON value, nested a little.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::from),
        prop::sample::select(vec![
            "user-00001",
            "sku-10001",
            "purchase",
            "2026-11-28T10:00:00Z"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        let keys = prop_oneof![
            prop::sample::select(vec![
                "user_id",
                "item_ids",
                "item_id",
                "count",
                "event_type",
                "sent_at",
                "properties",
                "impression",
                "session_id",
                "event_value",
                "filter",
                "filter_CATEGORY",
            ])
            .prop_map(str::to_owned),
            "\\PC{0,8}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn any_query_string_is_answered_with_a_2xx_or_a_4xx(
        path in prop::sample::select(vec!["/recommendations", "/related-items", "/rankings", "/health"]),
        query in query_string(),
    ) {
        let uri = format!("{path}?{query}");
        let request = Request::get(&uri).body(Body::empty()).unwrap();
        well_answered(&answer(request))?;
    }

    #[test]
    fn any_json_body_is_answered_with_a_2xx_or_a_4xx(
        path in prop::sample::select(vec!["/rankings", "/events"]),
        body in json_value(),
    ) {
        let request = Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        well_answered(&answer(request))?;
    }

    #[test]
    fn any_bytes_as_a_body_are_answered_with_a_4xx(
        path in prop::sample::select(vec!["/rankings", "/events"]),
        body in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let request = Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body.clone()))
            .unwrap();
        let answer = answer(request);
        well_answered(&answer)?;
        if serde_json::from_slice::<Value>(&body).is_err() {
            prop_assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        }
    }

    /// Valid parameters, encoded as Braze's `url_param_escape` does, are parsed as sent.
    #[test]
    fn valid_parameters_are_parsed_as_sent(
        user_id in "[^\\p{Cc}]{1,256}",
        count in 1u32..=100,
        category in prop::collection::vec("[^\\p{Cc},]*[^\\p{Cc},\\s][^\\p{Cc},]*", 1..4),
        device in "[^\\p{Cc}]{1,100}",
    ) {
        let encode = |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
        let query = format!(
            "user_id={}&count={count}&filter=by-category&filter_CATEGORY={}&context_DEVICE={}",
            encode(&user_id),
            encode(&category.join(",")),
            encode(&device),
        );
        let limits = Limits {
            default_count: 10,
            max_count: 100,
            max_ranking_items: 500,
            default_filter: None,
        };
        let (parsed, _) = parse_recommendations(Some(&query), &limits, |name: &str| name == "by-category")
            .map_err(|e| TestCaseError::fail(format!("{query}: {e:?}")))?;
        prop_assert_eq!(parsed.subject, Subject::User(user_id));
        prop_assert_eq!(parsed.count, count);
        let trimmed: Vec<String> = category.iter().map(|c| c.trim().to_owned()).collect();
        prop_assert_eq!(
            parsed.refinement.filter_values,
            vec![("CATEGORY".to_owned(), trimmed)]
        );
        prop_assert_eq!(parsed.refinement.context, vec![("DEVICE".to_owned(), device)]);
    }
}
