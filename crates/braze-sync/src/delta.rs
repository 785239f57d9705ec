//! Delta sync: send only the users whose list changed since the last completed run.
//!
//! A daily batch mostly repeats yesterday's lists, and each unchanged list sent again costs Braze
//! data points and rate limit. The state remembers, for each user of the last completed run, a
//! digest of the object sent (or found unchanged). It belongs to one setting of the attribute
//! (its name, fields, count, catalog and profile rule): a state made under another is refused, not
//! misused.
//!
//! Format: one JSON line naming the setting, then 16 bytes a user (the digest of the external id
//! and of the object, little-endian `u64`s). A million users take 16 MB.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The setting a state belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    pub attribute: String,
    pub fields: String,
    pub count: usize,
    /// The items table or file the lists were joined with.
    pub catalog: String,
    pub update_existing_only: bool,
}

/// The last run's digests, and this run's.
#[derive(Debug)]
pub struct Delta {
    setting: Setting,
    previous: HashMap<u64, u64, foldhash::fast::RandomState>,
    next: Vec<(u64, u64)>,
}

impl Delta {
    /// No state yet: every user counts as changed.
    pub fn new(setting: Setting) -> Delta {
        Delta {
            setting,
            previous: HashMap::default(),
            next: Vec::new(),
        }
    }

    /// A state written by [`Delta::to_bytes`]; `name` says where it came from, for errors.
    pub fn load(bytes: &[u8], setting: Setting, name: &str) -> Result<Delta, String> {
        let newline = memchr::memchr(b'\n', bytes)
            .ok_or_else(|| format!("{name} is not a braze-sync state (no header line)"))?;
        let theirs: Setting = serde_json::from_slice(&bytes[..newline])
            .map_err(|e| format!("{name} is not a braze-sync state: {e}"))?;
        if theirs != setting {
            return Err(format!(
                "{name} was made for {} and this run is for {}; a state is kept per setting, so give another state path (or delete it to send every list once)",
                describe(&theirs),
                describe(&setting)
            ));
        }
        let records = &bytes[newline + 1..];
        if !records.len().is_multiple_of(16) {
            return Err(format!(
                "{name} is cut short ({} bytes of records); delete it to send every list once",
                records.len()
            ));
        }
        let mut previous =
            HashMap::with_capacity_and_hasher(records.len() / 16, Default::default());
        for record in records.chunks_exact(16) {
            let (key, list) = record.split_at(8);
            previous.insert(u64_le(key), u64_le(list));
        }
        Ok(Delta {
            setting,
            previous,
            next: Vec::new(),
        })
    }

    /// Users the last completed run recorded.
    pub fn previous_users(&self) -> usize {
        self.previous.len()
    }

    /// Whether the last completed run sent this user exactly this object.
    pub fn unchanged(&self, user: u64, object: u64) -> bool {
        self.previous.get(&user) == Some(&object)
    }

    /// This run sent the object, or found it unchanged.
    pub fn remember(&mut self, entries: impl IntoIterator<Item = (u64, u64)>) {
        self.next.extend(entries);
    }

    /// This run's state, to replace the last one when the run completed.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(&self.setting).unwrap_or_default();
        bytes.push(b'\n');
        bytes.reserve(self.next.len() * 16);
        for (user, object) in &self.next {
            bytes.extend_from_slice(&user.to_le_bytes());
            bytes.extend_from_slice(&object.to_le_bytes());
        }
        bytes
    }

    pub fn users(&self) -> usize {
        self.next.len()
    }
}

fn describe(setting: &Setting) -> String {
    format!(
        "attribute {:?} with fields {}, {} items, catalog {}{}",
        setting.attribute,
        setting.fields,
        setting.count,
        setting.catalog,
        if setting.update_existing_only {
            ""
        } else {
            ", creating profiles"
        }
    )
}

fn u64_le(bytes: &[u8]) -> u64 {
    let mut array = [0u8; 8];
    array.copy_from_slice(bytes);
    u64::from_le_bytes(array)
}

/// A stable 64-bit digest (the first 8 bytes of SHA-256): the same in every run and version.
pub fn digest(bytes: &[u8]) -> u64 {
    u64_le(&Sha256::digest(bytes)[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(attribute: &str) -> Setting {
        Setting {
            attribute: attribute.into(),
            fields: "id,url,name,price,image".into(),
            count: 10,
            catalog: "table Items".into(),
            update_existing_only: true,
        }
    }

    #[test]
    fn a_state_round_trips_and_tells_unchanged_lists() {
        let mut delta = Delta::new(setting("recommendations"));
        delta.remember([(digest(b"u1"), digest(b"[a,b]")), (digest(b"u2"), 7)]);
        let bytes = delta.to_bytes();
        let loaded = Delta::load(&bytes, setting("recommendations"), "state").unwrap();
        assert_eq!(loaded.previous_users(), 2);
        assert!(loaded.unchanged(digest(b"u1"), digest(b"[a,b]")));
        assert!(!loaded.unchanged(digest(b"u1"), digest(b"[a,c]")));
        assert!(!loaded.unchanged(digest(b"u3"), 7));
    }

    #[test]
    fn another_settings_state_is_refused_and_a_torn_one_named() {
        let bytes = Delta::new(setting("recommendations")).to_bytes();
        let err = Delta::load(&bytes, setting("picks"), "state").unwrap_err();
        assert!(
            err.contains("\"recommendations\"") && err.contains("\"picks\""),
            "{err}"
        );
        let mut torn = Delta::new(setting("a"));
        torn.remember([(1, 2)]);
        let mut bytes = torn.to_bytes();
        bytes.pop();
        assert!(
            Delta::load(&bytes, setting("a"), "state")
                .unwrap_err()
                .contains("cut short")
        );
        assert!(Delta::load(b"garbage", setting("a"), "state").is_err());
    }
}
