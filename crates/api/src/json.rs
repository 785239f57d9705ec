//! Request bodies read as JSON strictly: a key given twice in one object is refused, naming it,
//! as a repeated query parameter is. (serde_json keeps the last one silently, so
//! `{"user_id":"a","user_id":"b"}` would rank for `b` while the caller may think `a`.)

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::parameter::{InvalidParameter, invalid};

/// Why a body is not JSON we take.
#[derive(Debug)]
pub enum BodyError {
    /// Not JSON at all.
    Syntax(serde_json::Error),
    /// A key twice in one object, at this path (`user_id`, `events[1].item_id`).
    Duplicate(String),
}

impl BodyError {
    /// The 400 for it; `expected` says what the body should be ("a JSON object").
    pub fn invalid(self, expected: &str) -> InvalidParameter {
        match self {
            BodyError::Syntax(e) => invalid("body", format!("body must be {expected}: {e}")),
            BodyError::Duplicate(path) => {
                let message = format!("{path} is given more than once");
                invalid(path, message)
            }
        }
    }
}

/// Parses `body`; `root_list` names the elements of a top-level array in paths (`events` gives
/// `events[1].item_id`).
pub fn parse(body: &[u8], root_list: &str) -> Result<Value, BodyError> {
    let duplicate = RefCell::new(None);
    let root = Segment::Root(root_list);
    let seed = Strict {
        at: &root,
        duplicate: &duplicate,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = seed
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    match (parsed, duplicate.into_inner()) {
        (_, Some(path)) => Err(BodyError::Duplicate(path)),
        (Ok(value), None) => Ok(value),
        (Err(e), None) => Err(BodyError::Syntax(e)),
    }
}

/// Where a value sits, kept as a chain of borrows so a path is only written out for an error.
enum Segment<'a> {
    Root(&'a str),
    Key(&'a Segment<'a>, &'a str),
    Index(&'a Segment<'a>, usize),
}

impl fmt::Display for Segment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Root(_) => Ok(()),
            Segment::Key(Segment::Root(_), key) => write!(f, "{key}"),
            Segment::Key(parent, key) => write!(f, "{parent}.{key}"),
            Segment::Index(Segment::Root(list), i) => write!(f, "{list}[{i}]"),
            Segment::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

struct Strict<'a> {
    at: &'a Segment<'a>,
    duplicate: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut list = Vec::new();
        loop {
            let at = Segment::Index(self.at, list.len());
            let seed = Strict {
                at: &at,
                duplicate: self.duplicate,
            };
            match seq.next_element_seed(seed)? {
                Some(value) => list.push(value),
                None => return Ok(Value::Array(list)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let at = Segment::Key(self.at, &key);
            if object.contains_key(&key) {
                *self.duplicate.borrow_mut() = Some(at.to_string());
                return Err(de::Error::custom("a key is given twice"));
            }
            let seed = Strict {
                at: &at,
                duplicate: self.duplicate,
            };
            let value = map.next_value_seed(seed)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn duplicate(body: &str) -> String {
        match parse(body.as_bytes(), "events") {
            Err(BodyError::Duplicate(path)) => path,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn a_key_twice_in_any_object_is_named_by_its_path() {
        assert_eq!(duplicate(r#"{"user_id":"a","user_id":"b"}"#), "user_id");
        assert_eq!(
            duplicate(r#"[{"a":1},{"b":1,"c":{"d":1,"d":2}}]"#),
            "events[1].c.d"
        );
        assert_eq!(duplicate(r#"{"x":[[{"y":1,"y":1}]]}"#), "x[0][0].y");
    }

    #[test]
    fn everything_else_parses_as_serde_json_does() {
        let body = r#"{"s":"é\"\u00e9","n":-1,"u":18446744073709551615,"f":1.5e3,"b":true,"z":null,"l":[1,{"k":[]}],"o":{}}"#;
        let strict = parse(body.as_bytes(), "events").unwrap();
        let plain: Value = serde_json::from_str(body).unwrap();
        assert_eq!(strict, plain);
        assert_eq!(strict["f"], json!(1500.0));
        assert!(matches!(
            parse(b"{\"a\":1} x", "events"),
            Err(BodyError::Syntax(_))
        ));
        assert!(matches!(
            parse(b"{\"a\":", "events"),
            Err(BodyError::Syntax(_))
        ));
    }
}
