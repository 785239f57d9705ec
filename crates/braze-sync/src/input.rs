//! Batch inference output: one JSON object per line, as Personalize writes it to S3.
//!
//! `{"input":{"userId":"u1"},"output":{"recommendedItems":["i1","i2"],"scores":[0.3,0.2]},"error":null}`
//!
//! A related-items (Similar-Items) job's lines carry `"input":{"itemId":"…"}` instead: lists per
//! item, not per user. A line whose `error` is not null is Personalize saying it could not answer
//! for that input.

use serde::Deserialize;

/// What one line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// Nothing to do: a blank line.
    Blank,
    /// The ranked item ids for one Braze user (`userId`).
    Ranked { key: String, item_ids: Vec<String> },
    /// A related-items line: the ranked ids for one item (`itemId`), not for a user.
    Related {
        item_id: String,
        item_ids: Vec<String>,
    },
    /// Personalize failed for this input; the text is its `error`.
    Failed { key: Option<String>, error: String },
}

/// Fields Personalize may add later are ignored, as in the input and output objects.
#[derive(Deserialize)]
struct RawLine {
    input: RawInput,
    #[serde(default)]
    output: Option<RawOutput>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// Inputs may carry more than the id (a ranking job's `itemList`, `context`); only the id is ours.
#[derive(Deserialize)]
struct RawInput {
    #[serde(rename = "userId")]
    user_id: Option<String>,
    #[serde(rename = "itemId")]
    item_id: Option<String>,
}

#[derive(Deserialize)]
struct RawOutput {
    #[serde(rename = "recommendedItems")]
    recommended_items: Option<Vec<String>>,
}

/// Reads one line. `Err` says what is wrong with it, for a message that names the line.
pub fn parse_line(bytes: &[u8]) -> Result<Line, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 ({e})"))?;
    // A file saved by an editor may start with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Ok(Line::Blank);
    }
    let raw: RawLine =
        serde_json::from_str(text).map_err(|e| format!("not a batch output line: {e}"))?;
    let item_id = raw.input.item_id.filter(|k| !k.trim().is_empty());
    let key = raw.input.user_id.filter(|k| !k.trim().is_empty());
    if key.is_none()
        && let Some(item_id) = item_id
    {
        let item_ids = raw
            .output
            .and_then(|o| o.recommended_items)
            .unwrap_or_default();
        return Ok(Line::Related { item_id, item_ids });
    }
    match raw.error {
        Some(serde_json::Value::Null) | None => {}
        Some(serde_json::Value::String(error)) => return Ok(Line::Failed { key, error }),
        Some(other) => {
            return Ok(Line::Failed {
                key,
                error: other.to_string(),
            });
        }
    }
    let key = key.ok_or("input has no userId")?;
    let item_ids = raw
        .output
        .and_then(|o| o.recommended_items)
        .ok_or("output has no recommendedItems, and error is null")?;
    Ok(Line::Ranked { key, item_ids })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranked(key: &str, ids: &[&str]) -> Line {
        Line::Ranked {
            key: key.into(),
            item_ids: ids.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn reads_user_inputs_with_their_ranked_ids_and_tells_item_inputs_apart() {
        let user = br#"{"input":{"userId":"u1"},"output":{"recommendedItems":["a","b"],"scores":[0.2,0.1]},"error":null}"#;
        assert_eq!(parse_line(user), Ok(ranked("u1", &["a", "b"])));
        let item =
            "\u{feff}{\"input\":{\"itemId\":\"i9\"},\"output\":{\"recommendedItems\":[\"c\"],\"scores\":[0.5]}}\r".as_bytes();
        assert_eq!(
            parse_line(item),
            Ok(Line::Related {
                item_id: "i9".into(),
                item_ids: vec!["c".into()]
            })
        );
        let bom =
            "\u{feff}{\"input\":{\"userId\":\"u9\"},\"output\":{\"recommendedItems\":[\"c\"]}}\r";
        assert_eq!(parse_line(bom.as_bytes()), Ok(ranked("u9", &["c"])));
        let ranking = br#"{"input":{"userId":"u2","itemList":["x","y"]},"output":{"recommendedItems":["y","x"],"scores":[0.6,0.4]},"error":null}"#;
        assert_eq!(parse_line(ranking), Ok(ranked("u2", &["y", "x"])));
    }

    #[test]
    fn an_error_line_is_personalizes_failure_not_a_malformed_line() {
        let line = br#"{"input":{"userId":"u3"},"output":null,"error":"User not found"}"#;
        assert_eq!(
            parse_line(line),
            Ok(Line::Failed {
                key: Some("u3".into()),
                error: "User not found".into()
            })
        );
    }

    #[test]
    fn blank_lines_are_nothing_and_broken_ones_say_why() {
        assert_eq!(parse_line(b"  \r"), Ok(Line::Blank));
        for (line, why) in [
            (&b"{\"input\":"[..], "not a batch output line"),
            (b"\xff\xfe", "not UTF-8"),
            (
                br#"{"input":{},"output":{"recommendedItems":[]}}"#,
                "no userId",
            ),
            (
                br#"{"input":{"userId":"u"},"output":{}}"#,
                "no recommendedItems",
            ),
            (
                br#"{"input":{"userId":"u"},"outptu":{}}"#,
                "no recommendedItems",
            ),
            (
                br#"{"input":"u1","output":{"recommendedItems":[]}}"#,
                "not a batch output line",
            ),
        ] {
            let err = parse_line(line).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }
}
