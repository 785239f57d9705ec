//! Braze's REST API for the batch tools: [`rest`] (the endpoint, the key, the HTTPS client, as
//! every Braze client starts), and a client for its Catalogs API: a catalog's fields, its items (paged
//! 50 at a time through the `Link` header), and items replaced (`PUT`), edited (`PATCH`) or deleted
//! (`DELETE`) at most 50 to a request. A 429 is waited out (`Retry-After`, else
//! `X-RateLimit-Reset`), and a request is held back while `X-RateLimit-Remaining` says the window
//! is spent; a 5xx is tried again, up to five times in all. Braze's own errors (`invalid-ids`,
//! `invalid-fields`, …) come back with their ids and messages.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode, Uri};
use serde_json::{Map, Value, json};

/// Items one request takes, at most.
pub const MAX_ITEMS_PER_REQUEST: usize = 50;
/// An item id: letters, digits, `-` and `_`, at most this many.
pub const MAX_ID_CHARS: usize = 250;
/// A string value, at most.
pub const MAX_VALUE_CHARS: usize = 5000;
/// A field name: letters, digits, `-` and `_`, at most this many.
pub const MAX_FIELD_NAME_CHARS: usize = 250;

pub mod rest;

use rest::Rest;

/// What Braze's catalogs take as an item id or a field name.
pub fn valid_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.chars().count() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A failure, in words: Braze's error ids and messages, or what went wrong on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogError(pub String);

impl std::fmt::Display for CatalogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CatalogError {}

/// One catalog's items: id → the other fields.
pub type Items = BTreeMap<String, Map<String, Value>>;

pub struct Catalogs {
    rest: Rest,
}

impl Catalogs {
    /// `endpoint` is the workspace's REST endpoint (`https://rest.iad-01.braze.com`); plain
    /// `http://` only for a server on this machine. The key needs the catalogs permissions.
    pub fn new(endpoint: &str, api_key: &str) -> Result<Catalogs, String> {
        Ok(Catalogs {
            rest: Rest::new(endpoint, api_key)?,
        })
    }

    /// One call, with Braze's rate limit and 5xx answered by waiting and trying again.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, hyper::HeaderMap, Value), CatalogError> {
        let uri = format!("{}{path}", self.rest.base);
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let request = Request::builder()
                .method(method.clone())
                .uri(&uri)
                .header(AUTHORIZATION, self.rest.authorization.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(body.clone()))
                .map_err(|e| CatalogError(format!("{method} {path}: {e}")))?;
            let sent =
                tokio::time::timeout(Duration::from_secs(30), self.rest.client.request(request))
                    .await;
            let response = match sent {
                Ok(Ok(response)) => response,
                Ok(Err(e)) if attempt < 5 => {
                    tokio::time::sleep(backoff(attempt)).await;
                    let _ = e;
                    continue;
                }
                Ok(Err(e)) => {
                    return Err(CatalogError(format!(
                        "{method} {path}: cannot reach Braze: {e}"
                    )));
                }
                Err(_) if attempt < 5 => continue,
                Err(_) => {
                    return Err(CatalogError(format!(
                        "{method} {path}: Braze did not answer in 30 s"
                    )));
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            if status == StatusCode::TOO_MANY_REQUESTS && attempt < 20 {
                tokio::time::sleep(wait_from(&headers).unwrap_or(Duration::from_secs(1))).await;
                continue;
            }
            if status.is_server_error() && attempt < 5 {
                tokio::time::sleep(backoff(attempt)).await;
                continue;
            }
            if status.is_success() {
                // The window spent: wait for its reset before the next call.
                if remaining(&headers) == Some(0)
                    && let Some(wait) = wait_from(&headers)
                {
                    tokio::time::sleep(wait).await;
                }
                return Ok((status, headers, value));
            }
            return Err(CatalogError(format!(
                "{method} {path}: {}",
                refusal(status, &value)
            )));
        }
    }

    /// The catalog's fields (name, type), or `None` when there is no such catalog.
    pub async fn fields(
        &self,
        catalog: &str,
    ) -> Result<Option<Vec<(String, String)>>, CatalogError> {
        let (_, _, body) = self.call(Method::GET, "/catalogs", None).await?;
        let found = body["catalogs"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == catalog);
        Ok(found.map(|c| {
            c["fields"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| {
                    (
                        f["name"].as_str().unwrap_or_default().to_owned(),
                        f["type"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        }))
    }

    /// Creates the catalog with `id` (a string) and these fields.
    pub async fn create(
        &self,
        catalog: &str,
        fields: &[(String, String)],
    ) -> Result<(), CatalogError> {
        let mut all = vec![json!({"name": "id", "type": "string"})];
        all.extend(fields.iter().map(|(n, t)| json!({"name": n, "type": t})));
        let body = json!({"catalogs": [{"name": catalog, "description": "Items for recommendations (personalize-braze)", "fields": all}]});
        self.call(Method::POST, "/catalogs", Some(&body))
            .await
            .map(drop)
    }

    /// Adds fields to the catalog.
    pub async fn add_fields(
        &self,
        catalog: &str,
        fields: &[(String, String)],
    ) -> Result<(), CatalogError> {
        let body = json!({"fields": fields.iter().map(|(n, t)| json!({"name": n, "type": t})).collect::<Vec<_>>()});
        self.call(
            Method::POST,
            &format!("/catalogs/{catalog}/fields"),
            Some(&body),
        )
        .await
        .map(drop)
    }

    /// Every item of the catalog, page by page.
    pub async fn items(&self, catalog: &str) -> Result<Items, CatalogError> {
        let mut items = Items::new();
        let mut path = format!("/catalogs/{catalog}/items");
        loop {
            let (_, headers, body) = self.call(Method::GET, &path, None).await?;
            for item in body["items"].as_array().into_iter().flatten() {
                let Some(mut fields) = item.as_object().cloned() else {
                    continue;
                };
                let Some(Value::String(id)) = fields.remove("id") else {
                    continue;
                };
                items.insert(id, fields);
            }
            match next_page(&headers) {
                Some(next) => path = next,
                None => return Ok(items),
            }
        }
    }

    /// Replaces (or creates) up to 50 items: each an object with its `id`.
    pub async fn put(&self, catalog: &str, items: &[Value]) -> Result<(), CatalogError> {
        self.write(Method::PUT, catalog, items).await
    }

    /// Edits up to 50 existing items: the fields given, the others kept.
    pub async fn patch(&self, catalog: &str, items: &[Value]) -> Result<(), CatalogError> {
        self.write(Method::PATCH, catalog, items).await
    }

    /// Deletes up to 50 items.
    pub async fn delete(&self, catalog: &str, ids: &[String]) -> Result<(), CatalogError> {
        let items: Vec<Value> = ids.iter().map(|id| json!({"id": id})).collect();
        self.write(Method::DELETE, catalog, &items).await
    }

    async fn write(
        &self,
        method: Method,
        catalog: &str,
        items: &[Value],
    ) -> Result<(), CatalogError> {
        assert!(
            items.len() <= MAX_ITEMS_PER_REQUEST,
            "at most 50 items a request"
        );
        let body = json!({"items": items});
        self.call(method, &format!("/catalogs/{catalog}/items"), Some(&body))
            .await
            .map(drop)
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200 * 2u64.pow(attempt.min(5)))
}

fn number(headers: &hyper::HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn remaining(headers: &hyper::HeaderMap) -> Option<u64> {
    number(headers, "x-ratelimit-remaining")
}

/// `Retry-After` seconds, else until `X-RateLimit-Reset` (epoch seconds); a minute at most.
fn wait_from(headers: &hyper::HeaderMap) -> Option<Duration> {
    let wait = match number(headers, "retry-after") {
        Some(seconds) => Duration::from_secs(seconds),
        None => {
            let reset = number(headers, "x-ratelimit-reset")?;
            let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
            Duration::from_secs(reset.saturating_sub(now))
        }
    };
    Some(wait.min(Duration::from_secs(60)))
}

/// The path of the `Link` header's `rel="next"`, if any.
fn next_page(headers: &hyper::HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    let next = link.split(',').find(|part| part.contains("rel=\"next\""))?;
    let url = next.split(['<', '>']).nth(1)?;
    let uri: Uri = url.parse().ok()?;
    uri.path_and_query().map(|p| p.to_string())
}

/// Braze's refusal in words: its error ids, messages and the values they name.
fn refusal(status: StatusCode, body: &Value) -> String {
    let errors: Vec<String> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let values = e["parameter_values"].as_array().map(|v| {
                v.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            format!(
                "{} ({}){}",
                e["id"].as_str().unwrap_or("error"),
                e["message"].as_str().unwrap_or_default(),
                values
                    .filter(|v| !v.is_empty())
                    .map(|v| format!(": {v}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    if errors.is_empty() {
        format!(
            "Braze answered {status}: {}",
            body["message"].as_str().unwrap_or("no message")
        )
    } else {
        format!("Braze answered {status}: {}", errors.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn names_and_ids_are_letters_digits_dashes_and_underscores() {
        assert!(valid_name("sku-10001_b", MAX_ID_CHARS));
        assert!(!valid_name("sku 1", MAX_ID_CHARS));
        assert!(!valid_name("sku/1", MAX_ID_CHARS));
        assert!(!valid_name("", MAX_ID_CHARS));
        assert!(!valid_name(&"a".repeat(251), MAX_ID_CHARS));
    }

    #[test]
    fn the_next_page_comes_from_the_link_header() {
        let mut headers = hyper::HeaderMap::new();
        headers.insert(
            "link",
            HeaderValue::from_static(
                r#"<https://rest.iad-01.braze.com/catalogs/shop/items?cursor=c2>; rel="next""#,
            ),
        );
        assert_eq!(
            next_page(&headers).as_deref(),
            Some("/catalogs/shop/items?cursor=c2")
        );
        assert_eq!(next_page(&hyper::HeaderMap::new()), None);
    }

    #[test]
    fn a_refusal_names_brazes_error_ids_and_values() {
        let body = json!({"errors": [{"id": "invalid-ids", "message": "Item ids can only include letters", "parameters": ["items"], "parameter_values": ["a b"]}], "message": "Invalid Request"});
        assert_eq!(
            refusal(StatusCode::BAD_REQUEST, &body),
            r#"Braze answered 400 Bad Request: invalid-ids (Item ids can only include letters): "a b""#
        );
    }
}
