//! The item model: what one catalog item is, and how it renders for Braze. Every catalog
//! adapter builds `Item`s; the API joins their pre-rendered JSON into answers.

use std::collections::HashMap;
use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::value::RawValue;

/// `ITEM_URL_TEMPLATE` / `IMAGE_URL_TEMPLATE`: `{id}` is replaced by the item id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlTemplates {
    pub url: Option<String>,
    pub image: Option<String>,
}

/// One catalog item as Braze sees it: `id`, then every stored attribute.
///
/// Items are immutable and shared, so each is rendered to JSON once, when it is built; a
/// response is then the rendered items joined, not a serialization per request.
#[derive(Debug, Clone)]
pub struct Item {
    id: String,
    /// In response order: url, name, price, image first, the rest by name. Never holds `id`.
    attributes: Vec<(String, Value)>,
    json: Box<RawValue>,
    /// `json`'s length once escaped as a JSON string, as Lambda's response envelope carries it.
    wire_len: usize,
}

impl PartialEq for Item {
    fn eq(&self, other: &Self) -> bool {
        // `json` is a function of the other two.
        self.id == other.id && self.attributes == other.attributes
    }
}

/// An attribute value. Numbers keep the exact text they were stored with.
#[derive(Debug, Clone)]
pub enum Value {
    String(String),
    Number(Box<RawValue>),
    Bool(bool),
    Null,
    List(Vec<Value>),
    Map(Vec<(String, Value)>),
}

impl Value {
    /// A number from its stored text. Text that is not a JSON number (so could not be
    /// written as one without changing it) becomes a string instead.
    pub fn number(text: &str) -> Value {
        if is_json_number(text)
            && let Ok(raw) = RawValue::from_string(text.to_owned())
        {
            return Value::Number(raw);
        }
        Value::String(text.to_owned())
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::String(a), Value::String(b)) => a == b,
            (Value::Number(a), Value::Number(b)) => a.get() == b.get(),
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Null, Value::Null) => true,
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a == b,
            _ => false,
        }
    }
}

impl Item {
    /// Builds an item; `url` and `image` come from the templates when the attributes lack them.
    pub fn new(
        id: impl Into<String>,
        attributes: impl IntoIterator<Item = (String, Value)>,
        templates: &UrlTemplates,
    ) -> Item {
        let id = id.into();
        let mut attributes: Vec<(String, Value)> = attributes
            .into_iter()
            .filter(|(name, _)| name != "id")
            .collect();
        for (name, template) in [("url", &templates.url), ("image", &templates.image)] {
            if let Some(template) = template
                && !attributes.iter().any(|(n, _)| n == name)
            {
                attributes.push((name.to_owned(), Value::String(fill_template(template, &id))));
            }
        }
        attributes.sort_by(|(a, _), (b, _)| display_rank(a).cmp(&display_rank(b)).then(a.cmp(b)));
        let json = render(&id, &attributes);
        // Rendered JSON holds no raw control characters; quotes and backslashes gain a backslash.
        let wire_len = json.get().len()
            + json
                .get()
                .bytes()
                .filter(|b| matches!(b, b'"' | b'\\'))
                .count();
        Item {
            id,
            attributes,
            json,
            wire_len,
        }
    }

    /// An item from Items-dataset columns, as a CSV file or Personalize's `metadata` gives them,
    /// each by [`column_attribute`]'s rule.
    pub fn from_columns<'a>(
        id: &str,
        columns: impl IntoIterator<Item = (&'a str, &'a str)>,
        templates: &UrlTemplates,
    ) -> Item {
        let attributes = columns
            .into_iter()
            .filter_map(|(column, text)| column_attribute(column, text));
        Item::new(id, attributes, templates)
    }

    /// The item as a JSON object, rendered when it was built.
    pub fn json(&self) -> &str {
        self.json.get()
    }

    /// The bytes the item takes in a response as Lambda carries it: its JSON escaped into the
    /// envelope's `body` string.
    pub fn wire_len(&self) -> usize {
        self.wire_len
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The attributes in response order (`id` is not one of them).
    pub fn attributes(&self) -> &[(String, Value)] {
        &self.attributes
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// Roughly the bytes this item holds in memory: its id, attributes and rendered JSON.
    pub fn weight(&self) -> usize {
        std::mem::size_of::<Item>()
            + self.id.len()
            + self.json.get().len()
            + self
                .attributes
                .iter()
                .map(|(name, value)| {
                    std::mem::size_of::<(String, Value)>() + name.len() + value.weight()
                })
                .sum::<usize>()
    }
}

impl Value {
    /// Roughly the bytes this value holds on the heap.
    fn weight(&self) -> usize {
        match self {
            Value::String(text) => text.len(),
            Value::Number(raw) => raw.get().len(),
            Value::Bool(_) | Value::Null => 0,
            Value::List(values) => values
                .iter()
                .map(|v| std::mem::size_of::<Value>() + v.weight())
                .sum(),
            Value::Map(fields) => fields
                .iter()
                .map(|(k, v)| std::mem::size_of::<(String, Value)>() + k.len() + v.weight())
                .sum(),
        }
    }
}

/// The one rule for an Items-dataset column (a CSV file, Personalize's `metadata`, the catalog
/// loader): it becomes an attribute named by its lower-cased name; a value that is a JSON number
/// becomes that number with its exact text, anything else a string; an empty value is left out.
pub fn column_attribute(column: &str, text: &str) -> Option<(String, Value)> {
    (!text.is_empty()).then(|| (column.to_lowercase(), Value::number(text)))
}

/// Braze's examples read `id, url, name, price, image`; keep that order for people reading JSON.
fn display_rank(name: &str) -> u8 {
    match name {
        "url" => 0,
        "name" => 1,
        "price" => 2,
        "image" => 3,
        _ => 4,
    }
}

/// Replaces `{id}` with the id, percent-encoded so it stays one path segment.
pub fn fill_template(template: &str, id: &str) -> String {
    let mut encoded = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    template.replace("{id}", &encoded)
}

/// JSON's number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
pub fn is_json_number(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < bytes.len() && bytes[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    if bytes.first() == Some(&b'-') {
        i += 1;
    }
    match bytes.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == bytes.len()
}

/// `{"id":…, attributes…}` in that order.
struct Fields<'a>(&'a str, &'a [(String, Value)]);

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.1.len() + 1))?;
        map.serialize_entry("id", self.0)?;
        for (name, value) in self.1 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

fn render(id: &str, attributes: &[(String, Value)]) -> Box<RawValue> {
    // Strings, raw numbers, bools and nulls always serialize, so the fallback is never taken;
    // it keeps a bug from becoming a panic.
    serde_json::value::to_raw_value(&Fields(id, attributes)).unwrap_or_else(|_| {
        serde_json::value::to_raw_value(&serde_json::json!({ "id": id }))
            .unwrap_or_else(|_| RawValue::NULL.to_owned())
    })
}

/// Writes `items` as a JSON array of their pre-rendered objects; an item in `promoted` (id →
/// promotion name) also gets `"promotion": NAME`, after its own attributes.
pub fn write_json_array(
    items: &[Arc<Item>],
    promoted: &HashMap<String, String>,
    out: &mut Vec<u8>,
) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let json = item.json().as_bytes();
        match promoted.get(item.id()) {
            // Every item renders as an object, so its JSON ends in `}`.
            Some(name) if json.last() == Some(&b'}') => {
                out.extend_from_slice(&json[..json.len() - 1]);
                out.extend_from_slice(br#","promotion":"#);
                // A `str` always serializes; writing into a `Vec` cannot fail.
                serde_json::to_writer(&mut *out, name).unwrap_or_default();
                out.push(b'}');
            }
            _ => out.extend_from_slice(json),
        }
    }
    out.push(b']');
}

/// How many bytes [`write_json_array`] writes for `items`.
pub fn json_array_len(items: &[Arc<Item>]) -> usize {
    2 + items
        .iter()
        .map(|item| item.json().len() + 1)
        .sum::<usize>()
}

impl Serialize for Item {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(serializer)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::String(s) => serializer.serialize_str(s),
            Value::Number(raw) => raw.serialize(serializer),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Null => serializer.serialize_unit(),
            Value::List(values) => {
                let mut seq = serializer.serialize_seq(Some(values.len()))?;
                for v in values {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::String(v.to_owned())
    }

    #[test]
    fn numbers_render_exactly_as_stored() {
        for text in [
            "39.99",
            "0.5",
            "1200",
            "19.90",
            "-3",
            "1E+2",
            "0.1000000000000000055511151231257827",
        ] {
            let json = serde_json::to_string(&Value::number(text)).unwrap();
            assert_eq!(json, text);
        }
        // Not JSON numbers: kept verbatim as strings rather than altered.
        for text in ["+5", "007", ".5", "NaN", "1.", ""] {
            assert_eq!(Value::number(text), s(text), "{text}");
        }
    }

    #[test]
    fn serializes_id_first_then_known_fields_then_the_rest() {
        let item = Item::new(
            "abc123",
            [
                ("color".to_owned(), s("red")),
                ("price".to_owned(), Value::number("39.99")),
                ("name".to_owned(), s("First \"Item\", ü")),
                ("id".to_owned(), s("ignored: the key is the id")),
                (
                    "tags".to_owned(),
                    Value::List(vec![s("a"), Value::number("2")]),
                ),
            ],
            &UrlTemplates {
                url: Some("https://shop.example/p/{id}".into()),
                image: None,
            },
        );
        assert_eq!(
            serde_json::to_string(&item).unwrap(),
            r#"{"id":"abc123","url":"https://shop.example/p/abc123","name":"First \"Item\", ü","price":39.99,"color":"red","tags":["a",2]}"#
        );
    }

    #[test]
    fn templates_fill_only_missing_fields_and_encode_the_id() {
        let templates = UrlTemplates {
            url: Some("https://shop.example/p/{id}".into()),
            image: Some("https://cdn.example/{id}.jpg".into()),
        };
        let item = Item::new("a b/ü", [("url".to_owned(), s("https://own"))], &templates);
        assert_eq!(item.get("url"), Some(&s("https://own")));
        assert_eq!(
            item.get("image"),
            Some(&s("https://cdn.example/a%20b%2F%C3%BC.jpg"))
        );
    }
}
