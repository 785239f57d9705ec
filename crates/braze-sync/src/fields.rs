//! Which item fields go into a user's attribute, and how each item is shaped to Braze's rules for
//! arrays of objects.
//!
//! A message needs a handful of fields, not the whole catalog row: by default the endpoint's
//! contract, `id`, `url`, `name`, `price`, `image`. Braze refuses an object whose keys or string
//! values run past 255 characters, or whose keys hold a space. Rather than lose the item (and with
//! it, often, the user), a long string value is cut at a character boundary and a key Braze cannot
//! take is left out, each counted for the summary. Only an id Braze cannot take costs the item,
//! since a cut id would name another product.

use std::fmt;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use personalize_braze_core::item::{Item, Value};

/// Braze's limit on keys and string values inside nested custom attributes, in characters.
pub const MAX_STRING_CHARS: usize = 255;

/// The fields of each item in the attribute; `id` always comes first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fields {
    /// Every attribute the catalog holds.
    All,
    /// The ids alone: the attribute is an array of strings, the shape Braze's guide to
    /// recommendations uses with a Catalog (`catalog_items` reads the rest at send time).
    Ids,
    /// These, in this order, when the item has them.
    Only(Vec<String>),
}

impl Default for Fields {
    fn default() -> Fields {
        Fields::Only(["url", "name", "price", "image"].map(String::from).to_vec())
    }
}

impl Fields {
    /// `all`, or names separated by commas (`id,url,name,price,image`). Names are the catalog's
    /// attribute names, lower-cased as the items CSV's columns are.
    pub fn parse(text: &str) -> Result<Fields, String> {
        match text.trim() {
            "all" => return Ok(Fields::All),
            "ids" => return Ok(Fields::Ids),
            _ => {}
        }
        let mut names: Vec<String> = Vec::new();
        for name in text.split(',').map(str::trim) {
            if name.is_empty() {
                return Err(format!(
                    "{text:?} has an empty field name; give names separated by commas, such as id,url,name,price,image"
                ));
            }
            if name.contains(char::is_whitespace) || name.chars().count() > MAX_STRING_CHARS {
                return Err(format!(
                    "field {name:?}: Braze keys are at most {MAX_STRING_CHARS} characters, without spaces"
                ));
            }
            let name = name.to_lowercase();
            if name != "id" && !names.contains(&name) {
                names.push(name);
            }
        }
        Ok(Fields::Only(names))
    }
}

impl fmt::Display for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fields::All => f.write_str("all"),
            Fields::Ids => f.write_str("ids"),
            Fields::Only(names) => {
                f.write_str("id")?;
                for name in names {
                    write!(f, ",{name}")?;
                }
                Ok(())
            }
        }
    }
}

/// One item as it goes into Braze: its object's JSON, and what had to change to fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shaped {
    pub json: Box<str>,
    /// String values cut to 255 characters.
    pub cut: u32,
    /// Keys left out: a space in them, or longer than 255 characters.
    pub dropped: u32,
}

/// Why an item cannot go to Braze at all.
pub const ID_TOO_LONG: &str = "id over 255 characters";

/// The item's object with `fields`, within Braze's rules; `Err` when its id cannot be sent.
pub fn shape(item: &Item, fields: &Fields) -> Result<Shaped, &'static str> {
    if too_long(item.id()) {
        return Err(ID_TOO_LONG);
    }
    if *fields == Fields::Ids {
        // A JSON string: the attribute becomes an array of ids.
        let json = serde_json::to_string(item.id()).unwrap_or_else(|_| String::from("\"\""));
        return Ok(Shaped {
            json: json.into_boxed_str(),
            cut: 0,
            dropped: 0,
        });
    }
    let mut counts = Counts::default();
    let mut entries: Vec<(&str, Fitted<'_>)> = Vec::new();
    let chosen: Vec<(&str, &Value)> = match fields {
        Fields::Ids => Vec::new(),
        Fields::All => item
            .attributes()
            .iter()
            .map(|(n, v)| (n.as_str(), v))
            .collect(),
        Fields::Only(names) => names
            .iter()
            .filter_map(|n| Some((n.as_str(), item.get(n)?)))
            .collect(),
    };
    for (name, value) in chosen {
        if fits_key(name) {
            entries.push((name, fit(value, &mut counts)));
        } else {
            counts.dropped += 1;
        }
    }
    let object = Object {
        id: cut(item.id()),
        entries: &entries,
    };
    // Strings, raw numbers, bools and nulls always serialize.
    let json = serde_json::to_string(&object).unwrap_or_else(|_| String::from("{}"));
    Ok(Shaped {
        json: json.into_boxed_str(),
        cut: counts.cut,
        dropped: counts.dropped,
    })
}

#[derive(Default)]
struct Counts {
    cut: u32,
    dropped: u32,
}

/// A value as Braze will take it: strings cut, keys Braze refuses left out, at any depth.
enum Fitted<'a> {
    Same(&'a Value),
    Text(&'a str),
    List(Vec<Fitted<'a>>),
    Map(Vec<(&'a str, Fitted<'a>)>),
}

fn fit<'a>(value: &'a Value, counts: &mut Counts) -> Fitted<'a> {
    match value {
        Value::String(text) if too_long(text) => {
            counts.cut += 1;
            Fitted::Text(cut(text))
        }
        Value::List(values) => Fitted::List(values.iter().map(|v| fit(v, counts)).collect()),
        Value::Map(entries) => Fitted::Map(
            entries
                .iter()
                .filter_map(|(k, v)| {
                    if fits_key(k) {
                        Some((k.as_str(), fit(v, counts)))
                    } else {
                        counts.dropped += 1;
                        None
                    }
                })
                .collect(),
        ),
        other => Fitted::Same(other),
    }
}

fn fits_key(key: &str) -> bool {
    !key.contains(char::is_whitespace) && !too_long(key)
}

fn too_long(text: &str) -> bool {
    text.len() > MAX_STRING_CHARS && text.chars().count() > MAX_STRING_CHARS
}

/// The first 255 characters: never half a character.
fn cut(text: &str) -> &str {
    match text.char_indices().nth(MAX_STRING_CHARS) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

struct Object<'a> {
    id: &'a str,
    entries: &'a [(&'a str, Fitted<'a>)],
}

impl Serialize for Object<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len() + 1))?;
        map.serialize_entry("id", self.id)?;
        for (name, value) in self.entries {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl Serialize for Fitted<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Fitted::Same(value) => value.serialize(serializer),
            Fitted::Text(text) => serializer.serialize_str(text),
            Fitted::List(values) => {
                let mut seq = serializer.serialize_seq(Some(values.len()))?;
                for value in values {
                    seq.serialize_element(value)?;
                }
                seq.end()
            }
            Fitted::Map(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_only_makes_an_array_of_strings() {
        assert_eq!(Fields::parse("ids").unwrap(), Fields::Ids);
        assert_eq!(Fields::Ids.to_string(), "ids");
        let item = Item::new(
            "sku-\"1\"",
            [("name".to_owned(), Value::String("Boot".into()))],
            &personalize_braze_core::item::UrlTemplates::default(),
        );
        let shaped = shape(&item, &Fields::Ids).unwrap();
        assert_eq!(&*shaped.json, r#""sku-\"1\"""#);
        assert_eq!((shaped.cut, shaped.dropped), (0, 0));
    }
    use personalize_braze_core::item::UrlTemplates;

    fn item(id: &str, attributes: &[(&str, Value)]) -> Item {
        Item::new(
            id,
            attributes
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect::<Vec<_>>(),
            &UrlTemplates::default(),
        )
    }

    fn s(text: &str) -> Value {
        Value::String(text.to_owned())
    }

    #[test]
    fn the_default_is_the_endpoints_contract_in_its_order() {
        let shoe = item(
            "p1",
            &[
                ("description", s(&"long ".repeat(100))),
                ("price", Value::number("39.99")),
                ("name", s("Shoe")),
                ("url", s("https://shop.example/p1")),
            ],
        );
        let shaped = shape(&shoe, &Fields::default()).unwrap();
        assert_eq!(
            &*shaped.json,
            r#"{"id":"p1","url":"https://shop.example/p1","name":"Shoe","price":39.99}"#
        );
        assert_eq!((shaped.cut, shaped.dropped), (0, 0));
        let chosen = Fields::parse("name, description ,id").unwrap();
        assert_eq!(chosen.to_string(), "id,name,description");
        let shaped = shape(&shoe, &chosen).unwrap();
        assert_eq!(shaped.cut, 1);
        let value: serde_json::Value = serde_json::from_str(&shaped.json).unwrap();
        assert_eq!(value["description"].as_str().unwrap().chars().count(), 255);
    }

    #[test]
    fn long_values_are_cut_at_a_character_boundary_and_bad_keys_left_out() {
        let long = item(
            "p2",
            &[
                ("name", s(&"é".repeat(300))),
                ("list price", Value::number("3")),
                (
                    "tags",
                    Value::List(vec![Value::Map(vec![
                        ("x".into(), s(&"ü".repeat(256))),
                        ("a b".into(), Value::Null),
                    ])]),
                ),
            ],
        );
        let shaped = shape(&long, &Fields::All).unwrap();
        assert_eq!((shaped.cut, shaped.dropped), (2, 2));
        let value: serde_json::Value = serde_json::from_str(&shaped.json).unwrap();
        assert_eq!(value["name"], serde_json::json!("é".repeat(255)));
        assert_eq!(value["tags"][0]["x"], serde_json::json!("ü".repeat(255)));
        assert!(value.get("list price").is_none());
        // Exactly 255 is within the limit.
        let fine = item("p3", &[("name", s(&"é".repeat(255)))]);
        assert_eq!(shape(&fine, &Fields::All).unwrap().cut, 0);
    }

    #[test]
    fn an_id_braze_cannot_take_costs_only_that_item() {
        let long_id = item(&"x".repeat(256), &[("name", s("n"))]);
        assert_eq!(shape(&long_id, &Fields::All), Err(ID_TOO_LONG));
    }

    #[test]
    fn field_lists_are_checked() {
        assert_eq!(Fields::parse("all"), Ok(Fields::All));
        for bad in ["", "id,,name", "list price"] {
            assert!(Fields::parse(bad).is_err(), "{bad}");
        }
    }
}
