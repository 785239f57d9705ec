//! The one line each request gets, written by one layer around every route.
//!
//! A handler returns a [`Reply`]: its flow's `Result<Answer, ApiError>` and what the service
//! observed on the way. The reply becomes the response (items, a 202, an error's status and body)
//! and hands the metrics only it knows to the request's [`RequestLines`] layer, through a
//! task-local slot the layer opens for the request; the layer adds what every request has
//! (route, status, latency, correlation ids) and writes the line, as text or as CloudWatch EMF.
//! No handler logs its own request. (A task-local, not the response's extensions: it costs no
//! allocation, and the request path is measured in microseconds.)

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use personalize_braze_core::service::Observed;

use crate::error::ApiError;
use crate::metrics::{Metric, RequestLine, RequestLog};
use crate::render::{fitting_items, json_response, ok_response};
use crate::{Answer, ROUTES};

tokio::task_local! {
    /// The reply's part of the line, from the handler to the layer of the same request.
    static OUTCOME: Cell<Option<Outcome>>;
}

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
        let response = match result {
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
                    .count(Metric::CatalogMisses, observed.catalog_misses)
                    .flag(Metric::FallbackAnswers, found.fallback.is_some());
                line.fallback = found.fallback.map(|source| source.name());
                // Answered all the same, but the recommender's failure is still the upstream's.
                outcome.failed_upstream = observed
                    .recommender_failure
                    .as_ref()
                    .and_then(Metric::for_upstream);
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
        // Outside a layer (a unit test rendering a reply) there is no line to write.
        let _ = OUTCOME.try_with(|slot| slot.set(Some(outcome)));
        response
    }
}

/// The layer that writes each request's line, around every route of the router (after routing,
/// so the line names the route matched; the fallback's line says `other`).
#[derive(Clone)]
pub(crate) struct RequestLines {
    log: Arc<RequestLog>,
}

impl RequestLines {
    pub(crate) fn new(log: RequestLog) -> RequestLines {
        RequestLines { log: Arc::new(log) }
    }
}

impl<S> tower::Layer<S> for RequestLines {
    type Service = Logged<S>;

    fn layer(&self, inner: S) -> Logged<S> {
        Logged {
            inner,
            log: self.log.clone(),
        }
    }
}

/// A route with its line written.
#[derive(Clone)]
pub(crate) struct Logged<S> {
    inner: S,
    log: Arc<RequestLog>,
}

impl<S> tower::Service<Request> for Logged<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let route = route_of(request.extensions().get::<MatchedPath>());
        let correlation = Correlation::of(request.extensions(), request.headers());
        let called = self.inner.call(request);
        let answered = OUTCOME.scope(Cell::new(None), async move {
            let response = called.await;
            (response, OUTCOME.with(Cell::take))
        });
        let log = self.log.clone();
        Box::pin(async move {
            let (response, outcome) = answered.await;
            let response = response?;
            write(
                &log,
                route,
                started,
                &correlation,
                outcome.unwrap_or_default(),
                &response,
            );
            Ok(response)
        })
    }
}

/// The line of a request that ended in `response`.
fn write(
    log: &RequestLog,
    route: &'static str,
    started: Instant,
    correlation: &Correlation,
    outcome: Outcome,
    response: &Response,
) {
    let Outcome {
        mut line,
        failed_upstream,
    } = outcome;
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
    log.write(&line);
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

impl Correlation {
    /// The ids in a request's extensions (lambda_http puts its contexts there) and headers.
    pub(crate) fn of(extensions: &axum::http::Extensions, headers: &HeaderMap) -> Correlation {
        use lambda_http::request::RequestContext;
        let lambda = extensions.get::<lambda_http::Context>();
        let api_request_id = match extensions.get::<RequestContext>() {
            Some(RequestContext::ApiGatewayV1(context)) => context.request_id.clone(),
            Some(RequestContext::ApiGatewayV2(context)) => context.request_id.clone(),
            _ => None,
        };
        // Lambda's context has the trace when X-Ray is on; API Gateway also passes it as a header.
        let trace_id = lambda
            .and_then(|context| context.xray_trace_id.clone())
            .or_else(|| {
                let header = headers.get("x-amzn-trace-id")?;
                header.to_str().ok().map(str::to_owned)
            });
        Correlation {
            lambda_request_id: lambda
                .map(|context| context.request_id.clone())
                .filter(|id| !id.is_empty()),
            api_request_id,
            trace_id,
        }
    }
}
