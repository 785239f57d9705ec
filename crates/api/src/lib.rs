//! HTTP: the router Braze talks to, the same inside Lambda and on a laptop. It turns requests
//! into calls of the core's `Service` and its results into the contract; [`metrics`] writes
//! the one request line each request gets (text, or JSON with CloudWatch EMF).

pub mod error;
pub mod events;
pub mod json;
pub mod metrics;
pub mod parameter;
pub mod query;
mod render;
mod request_line;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, RawQuery, Request as HttpRequest, State};
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::routing::{get, post};
use tower::ServiceExt;

use crate::metrics::RequestLog;
use crate::request_line::{Reply, RequestLines};
pub use error::ApiError;
use personalize_braze_core::catalog::Catalog;
use personalize_braze_core::recommender::{Operation, Recommender};
use personalize_braze_core::service::{Observed, Recommended, Service};
use query::{Format, Limits, Names, Params};
pub use render::FALLBACK_HEADER;

/// The largest request body taken (`POST /rankings`, `POST /events`): 500 ids of 256
/// characters fit, with room for filters and context.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Everything a request needs, built once per cold start.
pub struct App<R, C> {
    pub service: Service<R, C>,
    pub limits: Limits,
    /// `Cache-Control` of successful answers, rendered once.
    pub cache: CacheControl,
    /// Where each request's line (and its metrics) goes.
    pub log: RequestLog,
}

/// How long caches may keep a successful answer (`CACHE_MAX_AGE`), and which caches may.
pub struct CacheControl {
    /// `private, max-age=N`: an answer for one user. Braze may cache it per URL; a CDN or proxy in
    /// front of the API must not hand it to anyone else.
    per_user: HeaderValue,
    /// `public, max-age=N`: the same answer for every caller (related items without a user).
    shared: HeaderValue,
    /// `private, max-age=M`, M at most [`FALLBACK_MAX_AGE`]: a fallback answer, which the next
    /// call should replace with a personal one as soon as the recommender is back.
    fallback: HeaderValue,
}

/// The longest a caller may keep a fallback answer, in seconds.
pub const FALLBACK_MAX_AGE: u32 = 30;

impl CacheControl {
    pub fn new(max_age: u32) -> CacheControl {
        let header = |scope: &str| {
            HeaderValue::try_from(format!("{scope}, max-age={max_age}"))
                .unwrap_or(HeaderValue::from_static("no-store"))
        };
        CacheControl {
            per_user: header("private"),
            shared: header("public"),
            fallback: HeaderValue::try_from(format!(
                "private, max-age={}",
                max_age.min(FALLBACK_MAX_AGE)
            ))
            .unwrap_or(HeaderValue::from_static("no-store")),
        }
    }

    /// The header for an answer that depends on the user (when there is one) or not.
    fn for_user(&self, user_id: Option<&str>) -> &HeaderValue {
        match user_id {
            Some(_) => &self.per_user,
            None => &self.shared,
        }
    }
}

impl<R: Recommender, C: Catalog> App<R, C> {
    pub fn new(
        service: Service<R, C>,
        limits: Limits,
        cache_max_age: u32,
        log: RequestLog,
    ) -> Self {
        App {
            service,
            limits,
            cache: CacheControl::new(cache_max_age),
            log,
        }
    }

    /// What the names a request may use mean to this deployment's recommender.
    fn names(&self) -> Known<'_, R> {
        Known(self.service.recommender())
    }

    /// A 404 naming the setting, when this deployment does not serve `operation`.
    fn enabled(&self, route: &'static str, operation: Operation) -> Result<(), ApiError> {
        if self.service.recommender().supports(operation) {
            return Ok(());
        }
        let setting = match operation {
            Operation::Recommendations => "PERSONALIZE_ARN (or RECOMMENDERS)",
            Operation::RelatedItems => "RELATED_ITEMS_ARN",
            Operation::Rankings => "RANKING_ARN",
            Operation::Events => "EVENT_TRACKER_ID",
        };
        Err(ApiError::NotEnabled { route, setting })
    }
}

/// The recommender's names, as the query parser asks for them.
struct Known<'a, R>(&'a R);

impl<R: Recommender> Names for Known<'_, R> {
    fn has_filter(&self, name: &str) -> bool {
        self.0.has_filter(name)
    }

    fn has_recommender(&self, name: &str) -> bool {
        self.0.has_recommender(name)
    }

    fn default_recommender(&self) -> Option<&str> {
        self.0.default_recommender()
    }

    fn has_promotion(&self, name: &str) -> bool {
        self.0.has_promotion(name)
    }
}

pub fn router<R: Recommender, C: Catalog>(app: Arc<App<R, C>>) -> Router {
    let routes = Router::new()
        .route(
            "/recommendations",
            get(recommendations::<R, C>).fallback(wrong_method),
        )
        .route(
            "/related-items",
            get(related_items::<R, C>).fallback(wrong_method),
        )
        .route(
            "/rankings",
            get(rankings_get::<R, C>)
                .post(rankings_post::<R, C>)
                .fallback(wrong_method),
        )
        .route("/events", post(events::<R, C>).fallback(wrong_method))
        .route("/health", get(health).fallback(wrong_method))
        .fallback(not_found)
        // After routing, so the line names the route matched; the fallback's line says `other`.
        .layer(RequestLines::new(app.log.clone()))
        .with_state(app);
    // `Router::layer` runs after routing, too late to change the path; wrap the routes instead.
    Router::new().fallback_service(routes.map_request(strip_stage))
}

async fn recommendations<R: Recommender, C: Catalog>(
    State(app): State<Arc<App<R, C>>>,
    RawQuery(query): RawQuery,
) -> Reply {
    let mut observed = Observed::default();
    let result = recommend(&app, query, Operation::Recommendations, &mut observed).await;
    Reply::new(observed, result)
}

async fn related_items<R: Recommender, C: Catalog>(
    State(app): State<Arc<App<R, C>>>,
    RawQuery(query): RawQuery,
) -> Reply {
    let mut observed = Observed::default();
    let result = recommend(&app, query, Operation::RelatedItems, &mut observed).await;
    Reply::new(observed, result)
}

/// `GET /recommendations` and `GET /related-items`: one flow, each with its own parameters.
async fn recommend<R: Recommender, C: Catalog>(
    app: &App<R, C>,
    query: Option<String>,
    operation: Operation,
    observed: &mut Observed,
) -> Result<Answer, ApiError> {
    let route = match operation {
        Operation::RelatedItems => "/related-items",
        _ => "/recommendations",
    };
    app.enabled(route, operation)?;
    let (query, limits) = (query.as_deref(), &app.limits);
    let (query, seeds, shape) = match operation {
        Operation::RelatedItems => query::parse_related_items(query, limits, app.names())?,
        _ => {
            let (query, shape) = query::parse_recommendations(query, limits, app.names())?;
            (query, Vec::new(), shape)
        }
    };
    let mut cache_control = app.cache.for_user(query.subject.user_id()).clone();
    let recommender = query.recommender.clone();
    let diversify = shape.diversify.as_ref();
    let mut found = match seeds.len() {
        0 | 1 => app.service.recommend(query, diversify, observed).await?,
        _ => {
            app.service
                .related_to_seeds(query, &seeds, diversify, observed)
                .await?
        }
    };
    found.recommender = recommender;
    if found.fallback.is_some() {
        cache_control = app.cache.fallback.clone();
    }
    Ok(Answer::Items {
        found,
        format: shape.format,
        cache_control,
    })
}

async fn rankings_get<R: Recommender, C: Catalog>(
    State(app): State<Arc<App<R, C>>>,
    RawQuery(query): RawQuery,
) -> Reply {
    let mut observed = Observed::default();
    let params = Params::from_query(query.as_deref()).map_err(ApiError::from);
    let result = rankings(&app, params, Method::GET, &mut observed).await;
    Reply::new(observed, result)
}

/// The same as `GET`, for lists too long for a URL.
async fn rankings_post<R: Recommender, C: Catalog>(
    State(app): State<Arc<App<R, C>>>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let mut observed = Observed::default();
    let params = match declared_json(&headers) {
        Ok(()) => read_body(body)
            .await
            .and_then(|bytes| Ok(Params::from_json(&bytes)?)),
        Err(e) => Err(e),
    };
    let result = rankings(&app, params, Method::POST, &mut observed).await;
    Reply::new(observed, result)
}

async fn rankings<R: Recommender, C: Catalog>(
    app: &App<R, C>,
    params: Result<Params, ApiError>,
    method: Method,
    observed: &mut Observed,
) -> Result<Answer, ApiError> {
    app.enabled("/rankings", Operation::Rankings)?;
    let (query, count, shape) = query::parse_rankings(params?, &app.limits, app.names())?;
    // Braze does not cache POSTs, nor do we.
    let cache_control = if method == Method::GET {
        app.cache.for_user(Some(&query.user_id)).clone()
    } else {
        HeaderValue::from_static("no-store")
    };
    let found = app
        .service
        .rank(query, count, shape.diversify.as_ref(), observed)
        .await?;
    Ok(Answer::Items {
        found,
        format: shape.format,
        cache_control,
    })
}

/// `202 {"accepted": n}` once the recommender has the events.
async fn events<R: Recommender, C: Catalog>(
    State(app): State<Arc<App<R, C>>>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let mut observed = Observed::default();
    let result = record(&app, &headers, body, &mut observed).await;
    Reply::new(observed, result)
}

async fn record<R: Recommender, C: Catalog>(
    app: &App<R, C>,
    headers: &HeaderMap,
    body: Body,
    observed: &mut Observed,
) -> Result<Answer, ApiError> {
    app.enabled("/events", Operation::Events)?;
    declared_json(headers)?;
    let body = read_body(body).await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let events = events::parse_events(&body, now)?;
    Ok(Answer::Accepted(
        app.service.record(&events, observed).await?,
    ))
}

/// POST bodies must say they are JSON (`application/json`, any parameters): anything else is a
/// 415. This also keeps a web page from posting into a local server cross-site, as a form or a
/// `text/plain` body could without the browser asking first.
fn declared_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
    if declared {
        Ok(())
    } else {
        Err(ApiError::NotJson)
    }
}

/// The body, up to `MAX_BODY_BYTES`.
async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::BodyTooLarge {
            limit: MAX_BODY_BYTES,
        })
}

/// What a flow produced, before it becomes a response.
enum Answer {
    /// A read endpoint's items.
    Items {
        found: Recommended,
        format: Format,
        cache_control: HeaderValue,
    },
    /// `POST /events`: how many events the recommender took.
    Accepted(usize),
    /// `GET /health`.
    Healthy,
}

/// The routes as request lines name them, with the methods each takes. The route is a metric
/// dimension, so it is always one of these (or `other`), never a path a caller made up.
pub const ROUTES: [(&str, &str); 5] = [
    ("/recommendations", "GET"),
    ("/related-items", "GET"),
    ("/rankings", "GET, POST"),
    ("/events", "POST"),
    ("/health", "GET"),
];

async fn health() -> Reply {
    Reply::new(Observed::default(), Ok(Answer::Healthy))
}

async fn not_found() -> Reply {
    Reply::new(Observed::default(), Err(ApiError::NotFound))
}

/// A 405 on a known route, with `Allow` listing the methods it takes.
async fn wrong_method(path: MatchedPath) -> Reply {
    let allow = ROUTES
        .into_iter()
        .find(|(route, _)| *route == path.as_str())
        .map_or("GET", |(_, allow)| allow);
    Reply::new(Observed::default(), Err(ApiError::MethodNotAllowed(allow)))
}

/// API Gateway REST stages (and named HTTP API stages) put `/{stage}` in front of the path
/// lambda_http gives us. Strip it, so `/Prod/recommendations` routes as `/recommendations`.
fn strip_stage(mut request: HttpRequest) -> HttpRequest {
    use lambda_http::request::RequestContext;
    let stage = match request.extensions().get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.stage.clone(),
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.stage.clone(),
        _ => None,
    };
    let Some(stage) = stage.filter(|s| s != "$default") else {
        return request;
    };
    let path = request.uri().path();
    let Some(rest) = path
        .strip_prefix('/')
        .and_then(|p| p.strip_prefix(stage.as_str()))
        .filter(|rest| rest.starts_with('/'))
    else {
        return request;
    };
    let path_and_query = match request.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_owned(),
    };
    let mut parts = request.uri().clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use personalize_braze_core::item::Item;

    use crate::render::ok_response;
    use crate::request_line::Correlation;

    use super::*;
    use personalize_braze_core::item::{UrlTemplates, Value};

    async fn body(found: &Recommended, format: Format) -> serde_json::Value {
        let response = ok_response(found, format, HeaderValue::from_static("max-age=1"));
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).expect("the body is JSON")
    }

    /// 25 items whose names hold 100,000 quotes each are 10 MB of JSON, and 15 MB once Lambda's
    /// envelope escapes them: Lambda would refuse it and API Gateway answer a bare 502.
    #[tokio::test]
    async fn an_answer_over_lambdas_limit_is_cut_to_the_items_that_fit() {
        let item = |i: usize| {
            let text = format!("{}{}", "ab\"".repeat(100_000), i);
            let name = ("name".to_owned(), Value::String(text));
            Arc::new(Item::new(format!("i{i}"), [name], &UrlTemplates::default()))
        };
        let found = Recommended {
            items: (0..25).map(item).collect(),
            recommendation_id: None,
            ..Recommended::default()
        };
        let answer = Answer::Items {
            found,
            format: Format::Object,
            cache_control: HeaderValue::from_static("private"),
        };
        let response = Reply::new(Observed::default(), Ok(answer)).into_response();
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let ids: Vec<&str> = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect();
        // Each item is 600 KB as Lambda carries it: eight fit in 5 MB, the best eight, in order.
        assert_eq!(ids, (0..8).map(|i| format!("i{i}")).collect::<Vec<_>>());
        // The body as Lambda's envelope carries it stays under the 6 MB limit with room to spare.
        let escaped = serde_json::to_string(std::str::from_utf8(&bytes).unwrap()).unwrap();
        assert!(escaped.len() < 5_100_000, "{}", escaped.len());
    }

    /// The ids a request's log line carries, from the request as lambda_http hands it over.
    #[test]
    fn correlation_ids_come_from_the_lambda_and_api_gateway_contexts() {
        let fixture = |name: &str| {
            // The SAM events at the workspace root.
            let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
            let json = std::fs::read_to_string(path).unwrap();
            lambda_http::request::from_str(&json).unwrap()
        };
        let ids = |request: lambda_http::Request| {
            Correlation::of(request.extensions(), request.headers())
        };

        // Inside Lambda, lambda_http adds the invocation's context to the request.
        let mut request = fixture("rest-api-get.json");
        let mut context = lambda_http::Context::default();
        context.request_id = "8476a536-e9f4-11e8-9739-2dfe598c3fcd".into();
        context.xray_trace_id = Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".into());
        request.extensions_mut().insert(context);
        let found = ids(request);
        assert_eq!(
            found.lambda_request_id.as_deref(),
            Some("8476a536-e9f4-11e8-9739-2dfe598c3fcd")
        );
        assert_eq!(
            found.api_request_id.as_deref(),
            Some("c6af9ac6-7b61-11e6-9a41-93e8deadbeef")
        );
        assert_eq!(
            found.trace_id.as_deref(),
            Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
        );

        // An HTTP API event without a Lambda context: API Gateway's id only.
        let found = ids(fixture("http-api-get.json"));
        assert_eq!(found.api_request_id.as_deref(), Some("JKJaXmPLvHcESHA="));
        assert_eq!(found.lambda_request_id, None);
    }

    #[tokio::test]
    async fn joined_bodies_are_the_json_a_serializer_would_write() {
        let item = |id: &str| {
            let name = ("name".to_owned(), Value::String("Quote \" and \\ é".into()));
            Arc::new(Item::new(id, [name], &UrlTemplates::default()))
        };
        let found = Recommended {
            items: vec![item("a"), item("b\"")],
            recommendation_id: Some("RID-\"1\"".into()),
            ..Recommended::default()
        };
        let expected_items = serde_json::to_value(&found.items).unwrap();
        assert_eq!(body(&found, Format::List).await, expected_items);
        assert_eq!(
            body(&found, Format::Object).await,
            serde_json::json!({ "items": expected_items, "recommendation_id": "RID-\"1\"" })
        );

        assert_eq!(
            body(&found, Format::Ids).await,
            serde_json::json!(["a", "b\""])
        );

        let nothing = Recommended::default();
        assert_eq!(body(&nothing, Format::List).await, serde_json::json!([]));
        assert_eq!(body(&nothing, Format::Ids).await, serde_json::json!([]));
        assert_eq!(
            body(&nothing, Format::Object).await,
            serde_json::json!({ "items": [], "recommendation_id": null })
        );
    }
}
