//! The one line each request gets, written by one layer around every route.
//!
//! A handler returns a [`Reply`]: its flow's `Result<Answer, ApiError>` and what the service
//! observed on the way. The reply becomes the response (items, a 202, an error's status and body)
//! and leaves the metrics only it knows in the response's extensions; [`write`], the layer, adds
//! what every request has (route, status, latency, correlation ids) and writes the line, as text
//! or as CloudWatch EMF. No handler logs its own request.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use personalize_braze_core::catalog::Catalog;
use personalize_braze_core::recommender::Recommender;
use personalize_braze_core::service::Observed;

use crate::error::ApiError;
use crate::metrics::{Metric, RequestLine};
use crate::render::{fitting_items, json_response, ok_response};
use crate::{Answer, App, ROUTES};

/// What a handler hands back: how its flow ended, and what the service saw.
pub(crate) struct Reply {
    observed: Observed,
    result: Result<Answer, ApiError>,
}

impl Reply {
    pub(crate) fn new(observed: Observed, result: Result<Answer, ApiError>) -> Reply {
        Reply { observed, result }
    }
}

/// The part of a request's line that only its reply knows, carried to [`write`] in the
/// response's extensions.
#[derive(Clone, Default)]
struct Outcome {
    line: RequestLine<'static>,
    /// The upstream failure that ended the request, if one did.
    failed_upstream: Option<Metric>,
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let Reply { observed, result } = self;
        let mut outcome = Outcome::default();
        let line = &mut outcome.line;
        let mut response = match result {
            Ok(Answer::Items {
                mut found,
                format,
                cache_control,
            }) => {
                let fitting = fitting_items(&found.items);
                if fitting < found.items.len() {
                    tracing::warn!(
                        items = found.items.len(),
                        kept = fitting,
                        "answer cut to the items that fit Lambda's 6 MB response limit"
                    );
                    found.items.truncate(fitting);
                }
                line.count(Metric::ItemsReturned, found.items.len())
                    .flag(Metric::EmptyAnswers, found.items.is_empty())
                    .count(Metric::CatalogMisses, observed.catalog_misses);
                ok_response(&found, format, cache_control)
            }
            Ok(Answer::Accepted(accepted)) => {
                line.count(Metric::EventsAccepted, accepted)
                    .count(Metric::EventsRejected, 0);
                json_response(
                    StatusCode::ACCEPTED,
                    format!(r#"{{"accepted":{accepted}}}"#).into_bytes(),
                    HeaderValue::from_static("no-store"),
                )
            }
            Ok(Answer::Healthy) => json_response(
                StatusCode::OK,
                br#"{"status":"ok"}"#.to_vec(),
                HeaderValue::from_static("no-store"),
            ),
            Err(error) => {
                if let ApiError::PartlyRecorded(e) = &error {
                    line.count(Metric::EventsAccepted, e.accepted)
                        .count(Metric::EventsRejected, observed.events_rejected);
                }
                outcome.failed_upstream = error.upstream().and_then(Metric::for_upstream);
                error.into_response_logged()
            }
        };
        let line = &mut outcome.line;
        if let Some(d) = observed.recommender {
            line.duration(Metric::RecommenderLatency, d);
        }
        if let Some(d) = observed.catalog {
            line.duration(Metric::CatalogLatency, d);
        }
        if observed.cache.hits + observed.cache.misses > 0 {
            line.count(Metric::ItemCacheHits, observed.cache.hits)
                .count(Metric::ItemCacheMisses, observed.cache.misses);
        }
        response.extensions_mut().insert(outcome);
        response
    }
}

/// The layer: runs the request, then writes its line with the reply's metrics and its own.
pub(crate) async fn write<R: Recommender, C: Catalog>(
    State(app): State<Arc<App<R, C>>>,
    correlation: Correlation,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = route_of(request.extensions().get::<MatchedPath>());
    let mut response = next.run(request).await;
    let Outcome {
        mut line,
        failed_upstream,
    } = response
        .extensions_mut()
        .remove::<Outcome>()
        .unwrap_or_default();
    line.route = route;
    if calls_upstream(route) {
        for metric in Metric::UPSTREAM {
            line.flag(metric, failed_upstream == Some(metric));
        }
    }
    let status = response.status();
    line.status = status.as_u16();
    line.count(Metric::Requests, 1)
        .duration(Metric::Latency, started.elapsed())
        .flag(Metric::Errors4xx, status.is_client_error())
        .flag(Metric::Errors5xx, status.is_server_error());
    line.lambda_request_id = correlation.lambda_request_id.as_deref();
    line.api_request_id = correlation.api_request_id.as_deref();
    line.trace_id = correlation.trace_id.as_deref();
    app.log.write(&line);
    response
}

/// The route as the line names it: one of [`ROUTES`], or `other`, never a path a caller made up
/// (it is a metric dimension).
fn route_of(matched: Option<&MatchedPath>) -> &'static str {
    matched
        .and_then(|path| ROUTES.iter().find(|(route, _)| *route == path.as_str()))
        .map_or("other", |(route, _)| route)
}

/// Routes that call an upstream, whose lines say whether it failed and how.
fn calls_upstream(route: &str) -> bool {
    !matches!(route, "/health" | "other")
}

/// The ids that join a request's log line to Lambda's own lines, API Gateway's access log (keyed
/// on its request id) and X-Ray. Outside Lambda there are none.
#[derive(Debug, Default)]
pub(crate) struct Correlation {
    pub(crate) lambda_request_id: Option<String>,
    pub(crate) api_request_id: Option<String>,
    pub(crate) trace_id: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Correlation {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        use lambda_http::request::RequestContext;
        let lambda = parts.extensions.get::<lambda_http::Context>();
        let api_request_id = match parts.extensions.get::<RequestContext>() {
            Some(RequestContext::ApiGatewayV1(context)) => context.request_id.clone(),
            Some(RequestContext::ApiGatewayV2(context)) => context.request_id.clone(),
            _ => None,
        };
        // Lambda's context has the trace when X-Ray is on; API Gateway also passes it as a header.
        let trace_id = lambda
            .and_then(|context| context.xray_trace_id.clone())
            .or_else(|| {
                let header = parts.headers.get("x-amzn-trace-id")?;
                header.to_str().ok().map(str::to_owned)
            });
        Ok(Correlation {
            lambda_request_id: lambda
                .map(|context| context.request_id.clone())
                .filter(|id| !id.is_empty()),
            api_request_id,
            trace_id,
        })
    }
}
