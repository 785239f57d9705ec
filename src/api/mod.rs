//! HTTP: the router Braze talks to, the same inside Lambda and on a laptop.

pub mod error;
pub mod query;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::ServiceExt;

use crate::catalog::{self, Catalog};
use crate::recommender::Recommender;
use crate::service::{Recommended, Service, Timings};
pub use error::ApiError;
use query::{Format, Limits};

/// Everything a request needs, built once per cold start.
pub struct App<R, C> {
    pub service: Service<R, C>,
    pub limits: Limits,
    /// `max-age=CACHE_MAX_AGE`, rendered once.
    pub cache_control: HeaderValue,
}

impl<R: Recommender, C: Catalog> App<R, C> {
    pub fn new(service: Service<R, C>, limits: Limits, cache_max_age: u32) -> Self {
        let cache_control = HeaderValue::try_from(format!("max-age={cache_max_age}"))
            .unwrap_or(HeaderValue::from_static("no-store"));
        App {
            service,
            limits,
            cache_control,
        }
    }
}

pub fn router<R: Recommender, C: Catalog>(app: Arc<App<R, C>>) -> Router {
    let routes = Router::new()
        .route(
            "/recommendations",
            get(recommendations::<R, C>).fallback(method_not_allowed),
        )
        .route("/health", get(health).fallback(method_not_allowed))
        .fallback(not_found)
        .with_state(app);
    // `Router::layer` runs after routing, too late to change the path; wrap the routes instead.
    Router::new().fallback_service(routes.map_request(strip_stage))
}

async fn recommendations<R: Recommender, C: Catalog>(
    State(app): State<Arc<App<R, C>>>,
    RawQuery(query): RawQuery,
) -> Response {
    let started = Instant::now();
    let mut timings = Timings::default();
    let result = match query::parse_recommendations(query.as_deref(), &app.limits, |name| {
        app.service.recommender().has_filter(name)
    }) {
        Err(invalid) => Err(ApiError::InvalidParameter(invalid)),
        Ok((query, format)) => app
            .service
            .recommend(query, &mut timings)
            .await
            .map(|found| (found, format))
            .map_err(ApiError::from),
    };

    let (response, items) = match result {
        Ok((found, format)) => (
            ok_response(&found, format, &app.cache_control),
            found.items.len(),
        ),
        Err(error) => (error.into_response_logged(), 0),
    };
    tracing::info!(
        route = "/recommendations",
        status = response.status().as_u16(),
        items,
        recommender_ms = timings.recommender.map(|d| d.as_secs_f64() * 1e3),
        catalog_ms = timings.catalog.map(|d| d.as_secs_f64() * 1e3),
        total_ms = started.elapsed().as_secs_f64() * 1e3,
        "request"
    );
    response
}

/// The body is the items' pre-rendered JSON joined: no per-request serialization of items.
fn ok_response(found: &Recommended, format: Format, cache_control: &HeaderValue) -> Response {
    let items_len = catalog::json_array_len(&found.items);
    let json = match format {
        Format::List => {
            let mut json = Vec::with_capacity(items_len);
            catalog::write_json_array(&found.items, &mut json);
            json
        }
        Format::Object => {
            let id = found.recommendation_id.as_deref();
            let mut json = Vec::with_capacity(items_len + 64 + id.map_or(0, str::len));
            json.extend_from_slice(br#"{"items":"#);
            catalog::write_json_array(&found.items, &mut json);
            json.extend_from_slice(br#","recommendation_id":"#);
            match id {
                // A `String` always serializes; writing into a `Vec` cannot fail.
                Some(id) => serde_json::to_writer(&mut json, id).unwrap_or_default(),
                None => json.extend_from_slice(b"null"),
            }
            json.push(b'}');
            json
        }
    };
    json_response(StatusCode::OK, json, cache_control.clone())
}

fn json_response(status: StatusCode, json: Vec<u8>, cache_control: HeaderValue) -> Response {
    let mut response = (status, json).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, cache_control);
    response
}

impl ApiError {
    /// Logs what the caller must not see (upstream detail), at a level that matches who must act.
    fn into_response_logged(self) -> Response {
        match &self {
            ApiError::Service(e) if e.upstream().is_transient() => {
                tracing::warn!(error = %e, "upstream unavailable")
            }
            ApiError::Service(e) => match e.upstream() {
                crate::upstream::UpstreamError::Rejected(_) => {
                    tracing::info!(error = %e, "upstream rejected the request")
                }
                _ => tracing::error!(error = %e, "deployment misconfigured"),
            },
            _ => {}
        }
        self.into_response()
    }
}

async fn health() -> Response {
    json_response(
        StatusCode::OK,
        br#"{"status":"ok"}"#.to_vec(),
        HeaderValue::from_static("no-store"),
    )
}

async fn not_found() -> Response {
    ApiError::NotFound.into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::MethodNotAllowed.into_response()
}

/// API Gateway REST stages (and named HTTP API stages) put `/{stage}` in front of the path
/// lambda_http gives us. Strip it, so `/Prod/recommendations` routes as `/recommendations`.
fn strip_stage(mut request: Request) -> Request {
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

    use super::*;
    use crate::catalog::{Item, Value};
    use crate::config::UrlTemplates;

    async fn body(found: &Recommended, format: Format) -> serde_json::Value {
        let response = ok_response(found, format, &HeaderValue::from_static("max-age=1"));
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).expect("the body is JSON")
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
        };
        let expected_items = serde_json::to_value(&found.items).unwrap();
        assert_eq!(body(&found, Format::List).await, expected_items);
        assert_eq!(
            body(&found, Format::Object).await,
            serde_json::json!({ "items": expected_items, "recommendation_id": "RID-\"1\"" })
        );

        let nothing = Recommended::default();
        assert_eq!(body(&nothing, Format::List).await, serde_json::json!([]));
        assert_eq!(
            body(&nothing, Format::Object).await,
            serde_json::json!({ "items": [], "recommendation_id": null })
        );
    }
}
