//! What earlier runs did, so a rerun does only what is new: the objects already read, the ids of
//! the events already written (Currents delivers at least once, so the same event can arrive
//! again in a later object), and how long the output was when they were written.
//!
//! Ids are kept as 128-bit XXH3 hashes, 16 bytes each whatever the id's length: ten million
//! events are 160 MB in memory and 213 MB in the state file (base64). A collision between two
//! different ids is as likely as guessing a random 128-bit number.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;

use base64::Engine;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default)]
pub struct State {
    /// Objects read to the end, by key (relative to the input), with their size.
    pub objects: BTreeMap<String, u64>,
    /// The output's length when this state was saved: a longer output holds rows of a run that
    /// stopped before saving, which the next run cuts off and writes again.
    pub output_bytes: u64,
    pub seen: Seen,
}

/// The ids of the events already written.
#[derive(Debug, Default)]
pub struct Seen(HashSet<u128>);

impl Seen {
    /// Takes the `id` of an event of `currents_type` and says whether it is new. An id is
    /// unique to its event; the type is kept with it all the same, since Braze's sample files
    /// give every event type the same placeholder id.
    pub fn first_time(&mut self, currents_type: &str, id: &str) -> bool {
        let mut key = xxhash_rust::xxh3::Xxh3::new();
        key.update(currents_type.as_bytes());
        key.update(&[0]);
        key.update(id.as_bytes());
        self.0.insert(key.digest128())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Serialize, Deserialize)]
struct Stored {
    format: u32,
    output_bytes: u64,
    objects: BTreeMap<String, u64>,
    /// The hashes, 16 little-endian bytes each, base64.
    seen_event_ids: String,
}

const FORMAT: u32 = 1;

impl State {
    pub fn to_json(&self) -> Vec<u8> {
        // Encoded straight from the set: no second copy of the hashes, sorted or raw.
        let mut encoder =
            base64::write::EncoderStringWriter::new(&base64::engine::general_purpose::STANDARD);
        for hash in &self.seen.0 {
            encoder
                .write_all(&hash.to_le_bytes())
                .expect("writing to a string");
        }
        let stored = Stored {
            format: FORMAT,
            output_bytes: self.output_bytes,
            objects: self.objects.clone(),
            seen_event_ids: encoder.into_inner(),
        };
        serde_json::to_vec(&stored).expect("a state serializes")
    }

    pub fn from_json(text: &[u8]) -> Result<State, String> {
        let stored: Stored =
            serde_json::from_slice(text).map_err(|e| format!("not an import state: {e}"))?;
        if stored.format != FORMAT {
            return Err(format!(
                "state format {} is not {FORMAT}, the one this version writes",
                stored.format
            ));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(stored.seen_event_ids)
            .map_err(|e| format!("seen_event_ids is not base64: {e}"))?;
        if bytes.len() % 16 != 0 {
            return Err("seen_event_ids is not a whole number of 16-byte hashes".to_owned());
        }
        let seen = bytes
            .chunks_exact(16)
            .map(|h| u128::from_le_bytes(h.try_into().expect("16 bytes")))
            .collect();
        Ok(State {
            objects: stored.objects,
            output_bytes: stored.output_bytes,
            seen: Seen(seen),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_round_trips_and_remembers_ids() {
        let mut state = State::default();
        let id = "f47ac10b-58cc-4372-a567-0e02b2c3d479";
        assert!(state.seen.first_time("users.behaviors.Purchase", id));
        assert!(!state.seen.first_time("users.behaviors.Purchase", id));
        assert!(state.seen.first_time("users.behaviors.CustomEvent", id));
        assert!(state.seen.first_time("users.behaviors.Purchase", "another"));
        state.objects.insert("event_type=x/a.avro".into(), 2237);
        state.output_bytes = 99;
        let mut back = State::from_json(&state.to_json()).unwrap();
        assert_eq!(back.objects, state.objects);
        assert_eq!(back.output_bytes, 99);
        assert_eq!(back.seen.len(), 3);
        assert!(!back.seen.first_time("users.behaviors.Purchase", "another"));
        assert!(back.seen.first_time("users.behaviors.Purchase", "new"));
    }

    #[test]
    fn a_foreign_file_is_refused_with_a_reason() {
        assert!(
            State::from_json(b"{}")
                .unwrap_err()
                .starts_with("not an import state")
        );
        let other = br#"{"format":2,"output_bytes":0,"objects":{},"seen_event_ids":""}"#;
        assert!(State::from_json(other).unwrap_err().contains("format 2"));
        let torn = br#"{"format":1,"output_bytes":0,"objects":{},"seen_event_ids":"AAAA"}"#;
        assert!(State::from_json(torn).unwrap_err().contains("16-byte"));
    }
}
