//! Answers as bytes: the items' pre-rendered JSON joined into the contract's list or object,
//! within Lambda's response limit.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use personalize_braze_core::item::{self, Item};
use personalize_braze_core::limits::MAX_ANSWER_ITEM_BYTES;
use personalize_braze_core::service::Recommended;

use crate::query::Format;

/// How many of `items`, best first, fit in `MAX_ANSWER_ITEM_BYTES`: the rest are cut rather
/// than have the whole answer refused.
pub(crate) fn fitting_items(items: &[Arc<Item>]) -> usize {
    let mut bytes = 0;
    items
        .iter()
        .take_while(|item| {
            bytes += item.wire_len() + 1;
            bytes <= MAX_ANSWER_ITEM_BYTES
        })
        .count()
}

/// The body is the items' pre-rendered JSON joined: no per-request serialization of items.
/// Promoted items get their promotion's name (`"promotion"`); an object answer names the
/// recommender that answered, when it has a name.
pub(crate) fn ok_response(
    found: &Recommended,
    format: Format,
    cache_control: HeaderValue,
) -> Response {
    let items_len = item::json_array_len(&found.items);
    let promoted = &found.promoted;
    let json = match format {
        Format::List => {
            let mut json = Vec::with_capacity(items_len);
            item::write_json_array(&found.items, promoted, &mut json);
            json
        }
        Format::Ids => {
            let mut json =
                Vec::with_capacity(2 + found.items.iter().map(|i| i.id().len() + 3).sum::<usize>());
            json.push(b'[');
            for (i, item) in found.items.iter().enumerate() {
                if i > 0 {
                    json.push(b',');
                }
                write_json_string(Some(item.id()), &mut json);
            }
            json.push(b']');
            json
        }
        Format::Object => {
            let id = found.recommendation_id.as_deref();
            let mut json = Vec::with_capacity(items_len + 64 + id.map_or(0, str::len));
            json.extend_from_slice(br#"{"items":"#);
            item::write_json_array(&found.items, promoted, &mut json);
            json.extend_from_slice(br#","recommendation_id":"#);
            write_json_string(id, &mut json);
            if let Some(name) = &found.recommender {
                json.extend_from_slice(br#","recommender":"#);
                write_json_string(Some(name), &mut json);
            }
            if let Some(source) = found.fallback {
                json.extend_from_slice(br#","fallback":"#);
                write_json_string(Some(source.name()), &mut json);
            }
            json.push(b'}');
            json
        }
    };
    let mut response = json_response(StatusCode::OK, json, cache_control);
    if let Some(source) = found.fallback {
        response
            .headers_mut()
            .insert(FALLBACK_HEADER, HeaderValue::from_static(source.name()));
    }
    response
}

/// Says which fallback answered, on answers a fallback gave (the bare list has no room for it).
pub const FALLBACK_HEADER: &str = "x-recommendations-fallback";

/// A JSON string, or `null`.
fn write_json_string(text: Option<&str>, json: &mut Vec<u8>) {
    match text {
        // A `str` always serializes; writing into a `Vec` cannot fail.
        Some(text) => serde_json::to_writer(json, text).unwrap_or_default(),
        None => json.extend_from_slice(b"null"),
    }
}

pub(crate) fn json_response(
    status: StatusCode,
    json: Vec<u8>,
    cache_control: HeaderValue,
) -> Response {
    let mut response = (status, json).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, cache_control);
    response
}
