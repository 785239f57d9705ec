//! Braze's REST API, the one call braze-sync makes: `POST /users/track` with attribute objects,
//! and Braze's rules for nested custom attributes, checked before anything is sent.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Uri};
use personalize_braze_catalogs::rest::{HttpsClient, Rest};
use serde::Deserialize;

/// Attribute objects one `/users/track` request may carry (some contracts allow only 50).
pub const MAX_OBJECTS_PER_REQUEST: usize = 75;
/// Braze's documented limit for one array of objects: 50 KB.
pub const MAX_ARRAY_BYTES: usize = 50 * 1024;
/// One request gives up after this long; it is then retried like a 5xx.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What Braze made of one request.
///
/// Only Braze's verdict on one user is final: an entry of a 2xx's `errors`, or a 400 for a
/// request of that one user. Anything said of a whole request is either worth a retry (429, 408,
/// 5xx, no answer) or a sign that nothing will go through (a wrong key or endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 2xx with Braze's JSON. Braze may still refuse single objects: their indexes in the
    /// request (each once, each within the request), with why.
    Accepted { refused: Vec<(usize, String)> },
    /// 400: something in this request is refused; split it to find which user.
    BadRequest { message: String },
    /// 429: over the rate limit; wait this long if Braze said.
    RateLimited { wait: Option<Duration> },
    /// 408, 5xx, a timeout, or no connection: worth trying again.
    Unavailable {
        reason: String,
        wait: Option<Duration>,
    },
    /// 401 or 403: the key is wrong or lacks `users.track`; no request will do better.
    Unauthorized { status: u16, message: String },
    /// 404, 405, 413, another 4xx, or a 2xx that is not Braze's answer: the endpoint is not
    /// Braze's `/users/track` as configured, and no request will do better.
    WrongEndpoint { status: u16, message: String },
}

/// Braze's rate-limit headers, sent with every answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindow {
    /// `X-RateLimit-Remaining`: requests left in the window.
    pub remaining: u64,
    /// `X-RateLimit-Reset`, from now: when the window resets.
    pub reset_in: Duration,
}

/// One answer, and the rate-limit window it reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub answer: Answer,
    pub window: Option<RateWindow>,
}

/// A client for one Braze REST endpoint and API key.
pub struct Braze {
    client: HttpsClient,
    track: Uri,
    authorization: HeaderValue,
}

impl Braze {
    /// `endpoint` is the workspace's REST endpoint (`https://rest.iad-01.braze.com`). The key
    /// travels only over TLS: plain `http://` is refused, but for a server on this machine.
    pub fn new(endpoint: &str, api_key: &str) -> Result<Braze, String> {
        let Rest {
            client,
            base,
            authorization,
        } = Rest::new(endpoint, api_key)?;
        let track: Uri = format!("{base}/users/track")
            .parse()
            .map_err(|e| format!("BRAZE_REST_ENDPOINT {endpoint:?} is not a URL ({e})"))?;
        Ok(Braze {
            client,
            track,
            authorization,
        })
    }

    /// Where requests go, for messages.
    pub fn endpoint(&self) -> String {
        self.track.to_string()
    }

    /// Sends one `/users/track` body carrying `objects` attribute objects.
    pub async fn track(&self, body: Bytes, objects: usize) -> Reply {
        let (answer, window) = self.exchange(body, objects).await;
        Reply { answer, window }
    }

    async fn exchange(&self, body: Bytes, objects: usize) -> (Answer, Option<RateWindow>) {
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.track.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body));
        let request = match request {
            Ok(request) => request,
            Err(e) => {
                let message = format!("the request could not be built: {e}");
                return (Answer::WrongEndpoint { status: 0, message }, None);
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
                return (Answer::Unavailable { reason, wait: None }, None);
            }
            Err(_) => {
                let reason = format!("no answer within {} s", REQUEST_TIMEOUT.as_secs());
                return (Answer::Unavailable { reason, wait: None }, None);
            }
        };
        let status = parts.status.as_u16();
        let now = SystemTime::now();
        let wait = wait_from(&parts.headers, now);
        let window = window_from(&parts.headers, now);
        let message = || {
            let text = String::from_utf8_lossy(&body);
            let text = text.trim();
            // Braze's errors are `{"message": "..."}`; keep anything else short.
            let text = serde_json::from_str::<Message>(text)
                .ok()
                .and_then(|m| m.message)
                .unwrap_or_else(|| text.chars().take(200).collect());
            printable(&text)
        };
        let answer = match status {
            200..=299 => match accepted(&body, objects) {
                Some(refused) => Answer::Accepted { refused },
                None => Answer::WrongEndpoint {
                    status,
                    message: format!("not Braze's answer: {}", message()),
                },
            },
            400 => Answer::BadRequest { message: message() },
            429 => Answer::RateLimited { wait },
            401 | 403 => Answer::Unauthorized {
                status,
                message: message(),
            },
            408 | 500..=599 => Answer::Unavailable {
                reason: format!("HTTP {status}: {}", message()),
                wait,
            },
            _ => Answer::WrongEndpoint {
                status,
                message: message(),
            },
        };
        (answer, window)
    }
}

/// Text from a server as it may be shown on a terminal or in a log: control characters (an
/// escape sequence among them) written as escapes, never passed through.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[derive(Deserialize)]
struct Message {
    message: Option<String>,
}

/// Braze's answer to a request of `objects` objects, or `None` when the body is not Braze's JSON.
/// Partial success: `{"message":"success","errors":[{"type":"…","input_array":"attributes","index":3}]}`:
/// the refused objects, each named once, and only indexes the request has.
fn accepted(body: &[u8], objects: usize) -> Option<Vec<(usize, String)>> {
    #[derive(Deserialize)]
    struct Success {
        message: String,
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
    let success = serde_json::from_slice::<Success>(body).ok()?;
    let _ = success.message;
    let mut refused: Vec<(usize, String)> = Vec::new();
    for error in success.errors {
        if error
            .input_array
            .as_deref()
            .is_some_and(|a| a != "attributes")
        {
            continue;
        }
        let Some(index) = error.index.filter(|&i| i < objects) else {
            tracing::warn!(index = ?error.index, objects, "Braze named an object the request does not have; ignored");
            continue;
        };
        if refused.iter().any(|(i, _)| *i == index) {
            continue;
        }
        let why = error.kind.unwrap_or_else(|| "refused by Braze".into());
        refused.push((index, printable(&why)));
    }
    Some(refused)
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

/// `X-RateLimit-Remaining` and `X-RateLimit-Reset` (epoch seconds), when Braze sent both.
pub fn window_from(headers: &hyper::HeaderMap, now: SystemTime) -> Option<RateWindow> {
    let number = |name| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
    let remaining = number("x-ratelimit-remaining")?;
    let reset = number("x-ratelimit-reset")?;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
    let reset_in = Duration::from_secs(reset.saturating_sub(now).min(60));
    Some(RateWindow {
        remaining,
        reset_in,
    })
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
    fn partial_success_names_the_refused_objects_once_each() {
        let body = br#"{"message":"success","attributes_processed":2,"errors":[{"type":"'external_id' is required","input_array":"attributes","index":1},{"type":"x","input_array":"events","index":0}]}"#;
        assert_eq!(
            accepted(body, 2),
            Some(vec![(1, "'external_id' is required".to_owned())])
        );
        assert_eq!(accepted(br#"{"message":"success"}"#, 3), Some(vec![]));
        // The same index twice, and one past the request: one user refused, not three.
        let twice = br#"{"message":"success","errors":[{"type":"a","input_array":"attributes","index":0},{"type":"b","input_array":"attributes","index":0},{"type":"c","input_array":"attributes","index":1}]}"#;
        assert_eq!(accepted(twice, 1), Some(vec![(0, "a".to_owned())]));
        // Not Braze's answer at all.
        assert_eq!(accepted(b"<html>ok</html>", 1), None);
        assert_eq!(accepted(b"", 1), None);
    }

    #[test]
    fn the_key_travels_over_tls_or_stays_on_this_machine() {
        for fine in [
            "https://rest.iad-01.braze.com",
            "http://127.0.0.1:9200",
            "http://localhost:80/",
            "http://[::1]:9200",
        ] {
            assert!(Braze::new(fine, "k").is_ok(), "{fine}");
        }
        for bad in [
            "http://rest.iad-01.braze.com",
            "http://10.0.0.1",
            "ftp://x",
            "rest.iad-01.braze.com",
        ] {
            let err = Braze::new(bad, "k").err().expect(bad);
            assert!(err.contains("https://"), "{err}");
        }
    }

    #[test]
    fn server_text_never_reaches_a_terminal_raw() {
        assert_eq!(printable("bad\u{1b}[2Jthing\n"), "bad\\u{1b}[2Jthing\\n");
    }

    #[test]
    fn the_window_comes_from_braze_headers() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut headers = hyper::HeaderMap::new();
        headers.insert("x-ratelimit-limit", "3000".parse().unwrap());
        headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
        headers.insert("x-ratelimit-reset", "1800000003".parse().unwrap());
        assert_eq!(
            window_from(&headers, now),
            Some(RateWindow {
                remaining: 0,
                reset_in: Duration::from_secs(3)
            })
        );
    }
}
