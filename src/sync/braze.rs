//! Braze's REST API, the one call braze-sync makes: `POST /users/track` with attribute objects,
//! and Braze's rules for nested custom attributes, checked before anything is sent.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

/// Attribute objects one `/users/track` request may carry.
pub const MAX_OBJECTS_PER_REQUEST: usize = 75;
/// An array of objects may serialize to at most this many bytes.
pub const MAX_ARRAY_BYTES: usize = 50_000;
/// One request gives up after this long; it is then retried like a 5xx.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What Braze made of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 2xx. Braze may still refuse single objects: their indexes in the request, with why.
    Accepted { refused: Vec<(usize, String)> },
    /// 429: over the rate limit; wait this long if Braze said.
    RateLimited { wait: Option<Duration> },
    /// 5xx, a timeout, or no connection: worth trying again.
    Unavailable {
        reason: String,
        wait: Option<Duration>,
    },
    /// 401 or 403: the key is wrong or lacks `users.track`; no request will do better.
    Unauthorized { status: u16, message: String },
    /// Any other 4xx: this request is refused as it is.
    Refused { status: u16, message: String },
}

/// A client for one Braze REST endpoint and API key.
pub struct Braze {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    track: Uri,
    authorization: HeaderValue,
}

impl Braze {
    /// `endpoint` is the workspace's REST endpoint (`https://rest.iad-01.braze.com`).
    pub fn new(endpoint: &str, api_key: &str) -> Result<Braze, String> {
        let track: Uri = format!("{}/users/track", endpoint.trim_end_matches('/'))
            .parse()
            .map_err(|e| format!("BRAZE_REST_ENDPOINT {endpoint:?} is not a URL: {e}"))?;
        if !matches!(track.scheme_str(), Some("https" | "http")) || track.host().is_none() {
            return Err(format!(
                "BRAZE_REST_ENDPOINT {endpoint:?} must be an https:// URL"
            ));
        }
        let api_key = api_key.trim();
        if api_key.is_empty() {
            return Err("BRAZE_API_KEY is empty".into());
        }
        let mut authorization = HeaderValue::from_str(&format!("Bearer {api_key}"))
            .map_err(|_| "BRAZE_API_KEY holds characters a header cannot".to_owned())?;
        authorization.set_sensitive(true);
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
            .map_err(|e| format!("no TLS root certificates: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(Braze {
            client,
            track,
            authorization,
        })
    }

    /// Sends one `/users/track` body.
    pub async fn track(&self, body: Bytes) -> Answer {
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.track.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body));
        let request = match request {
            Ok(request) => request,
            Err(e) => {
                return Answer::Refused {
                    status: 0,
                    message: e.to_string(),
                };
            }
        };
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                use std::error::Error;
                match e.source() {
                    Some(source) => format!("{e}: {source}"),
                    None => e.to_string(),
                }
            })?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| format!("reading Braze's answer: {e}"))?
                .to_bytes();
            Ok::<_, String>((parts, body))
        };
        let (parts, body) = match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(reason)) => {
                return Answer::Unavailable { reason, wait: None };
            }
            Err(_) => {
                return Answer::Unavailable {
                    reason: format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()),
                    wait: None,
                };
            }
        };
        let status = parts.status.as_u16();
        let wait = wait_from(&parts.headers, SystemTime::now());
        let message = || {
            let text = String::from_utf8_lossy(&body);
            let text = text.trim();
            // Braze's errors are `{"message": "..."}`; keep anything else short.
            serde_json::from_str::<Message>(text)
                .ok()
                .and_then(|m| m.message)
                .unwrap_or_else(|| text.chars().take(200).collect())
        };
        match status {
            200..=299 => Answer::Accepted {
                refused: refused_objects(&body),
            },
            429 => Answer::RateLimited { wait },
            401 | 403 => Answer::Unauthorized {
                status,
                message: message(),
            },
            400..=499 => Answer::Refused {
                status,
                message: message(),
            },
            _ => Answer::Unavailable {
                reason: format!("HTTP {status}: {}", message()),
                wait,
            },
        }
    }
}

#[derive(Deserialize)]
struct Message {
    message: Option<String>,
}

/// Braze's partial success: `{"message":"success","errors":[{"type":"…","input_array":"attributes","index":3}]}`.
fn refused_objects(body: &[u8]) -> Vec<(usize, String)> {
    #[derive(Deserialize)]
    struct Success {
        #[serde(default)]
        errors: Vec<ObjectError>,
    }
    #[derive(Deserialize)]
    struct ObjectError {
        #[serde(rename = "type")]
        kind: Option<String>,
        input_array: Option<String>,
        index: Option<usize>,
    }
    let Ok(success) = serde_json::from_slice::<Success>(body) else {
        return Vec::new();
    };
    success
        .errors
        .into_iter()
        .filter(|e| e.input_array.as_deref().is_none_or(|a| a == "attributes"))
        .filter_map(|e| {
            Some((
                e.index?,
                e.kind.unwrap_or_else(|| "refused by Braze".into()),
            ))
        })
        .collect()
}

/// How long Braze asked us to wait: `Retry-After` in seconds, else `X-RateLimit-Reset` (the Unix
/// time its window resets). At most a minute, whatever a header says.
pub fn wait_from(headers: &hyper::HeaderMap, now: SystemTime) -> Option<Duration> {
    let number = |name| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
    let wait = if let Some(seconds) = number(RETRY_AFTER.as_str()) {
        Duration::from_secs(seconds)
    } else {
        let reset = number("x-ratelimit-reset")?;
        let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
        Duration::from_secs(reset.saturating_sub(now))
    };
    Some(wait.min(Duration::from_secs(60)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_comes_from_retry_after_else_the_reset_time_and_is_bounded() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut headers = hyper::HeaderMap::new();
        assert_eq!(wait_from(&headers, now), None);
        headers.insert("x-ratelimit-reset", "1800000002".parse().unwrap());
        assert_eq!(wait_from(&headers, now), Some(Duration::from_secs(2)));
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(wait_from(&headers, now), Some(Duration::from_secs(7)));
        headers.insert(RETRY_AFTER, "86400".parse().unwrap());
        assert_eq!(wait_from(&headers, now), Some(Duration::from_secs(60)));
    }

    #[test]
    fn partial_success_names_the_refused_objects() {
        let body = br#"{"message":"success","attributes_processed":2,"errors":[{"type":"'external_id' is required","input_array":"attributes","index":1},{"type":"x","input_array":"events","index":0}]}"#;
        assert_eq!(
            refused_objects(body),
            vec![(1, "'external_id' is required".to_owned())]
        );
        assert_eq!(refused_objects(br#"{"message":"success"}"#), vec![]);
    }
}
