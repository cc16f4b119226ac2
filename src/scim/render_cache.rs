//! Rendered SCIM user resources, kept between requests.
//!
//! Identity providers look a user up by `userName eq "…"` (or by id) before nearly every
//! change, and rendering the resource (decrypting its stored attributes, building the JSON
//! tree, serialising it) was most of the cost of that request. A rendering is a pure
//! function of the user's record, the records of its groups, the personal-data keys and
//! the base URL, so an entry is reused only while all of those are what they were:
//!
//! - the user's `updated_seq`: every event that changes a user record moves it (it is
//!   also the resource's ETag), including membership changes and group deletions;
//! - each of its groups' `updated_seq` (a group's SCIM `displayName` is shown on the user);
//! - the personal-data keys' epoch (a purge destroys a key: the data then reads as erased);
//! - the base URL (`$ref` and `meta.location` are absolute).
//!
//! Point-in-time views use the same cache: a past user with the same `updated_seq` is the
//! same record.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How many users' renderings are kept. Past it the cache starts over (simple, bounded:
/// about 1.5 KB an entry).
const CAPACITY: usize = 16_384;

/// What a rendering depends on besides the user's name.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Stamp {
    pub updated_seq: u64,
    pub group_seqs: Vec<u64>,
    pub keys_epoch: u64,
    pub base: String,
}

/// One user's serialised resource (all attributes), with its ETag and location.
pub struct Rendered {
    pub json: Vec<u8>,
    pub version: String,
    pub location: String,
}

#[derive(Default)]
pub struct RenderCache {
    entries: Mutex<HashMap<String, (Stamp, Arc<Rendered>)>>,
}

impl RenderCache {
    pub fn get(&self, username: &str, stamp: &Stamp) -> Option<Arc<Rendered>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(username)
            .filter(|(s, _)| s == stamp)
            .map(|(_, r)| r.clone())
    }

    pub fn put(&self, username: &str, stamp: Stamp, rendered: Arc<Rendered>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CAPACITY && !entries.contains_key(username) {
            entries.clear();
        }
        entries.insert(username.to_string(), (stamp, rendered));
    }

    /// A deleted user's entry could never be reused (its stamp is gone with it); taken
    /// out at once so that create-and-delete traffic does not fill the cache for nothing.
    pub fn remove(&self, username: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(username);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(seq: u64) -> Stamp {
        Stamp {
            updated_seq: seq,
            group_seqs: vec![3, 4],
            keys_epoch: 0,
            base: "http://h/scim".into(),
        }
    }

    fn rendered(s: &str) -> Arc<Rendered> {
        Arc::new(Rendered {
            json: s.as_bytes().to_vec(),
            version: String::new(),
            location: String::new(),
        })
    }

    #[test]
    fn a_removed_entry_is_gone() {
        let c = RenderCache::default();
        c.put("alice", stamp(7), rendered("a7"));
        c.put("bob", stamp(7), rendered("b7"));
        c.remove("alice");
        assert!(c.get("alice", &stamp(7)).is_none());
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn an_entry_is_reused_only_with_the_same_stamp() {
        let c = RenderCache::default();
        c.put("alice", stamp(7), rendered("a7"));
        assert_eq!(c.get("alice", &stamp(7)).unwrap().json, b"a7");
        assert!(c.get("alice", &stamp(8)).is_none());
        assert!(c.get("bob", &stamp(7)).is_none());
        let mut other_group = stamp(7);
        other_group.group_seqs[1] = 5;
        assert!(c.get("alice", &other_group).is_none());
        let mut purged = stamp(7);
        purged.keys_epoch = 1;
        assert!(c.get("alice", &purged).is_none());
        let mut host = stamp(7);
        host.base = "http://other/scim".into();
        assert!(c.get("alice", &host).is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let c = RenderCache::default();
        for i in 0..CAPACITY + 10 {
            c.put(&format!("u{i}"), stamp(1), rendered("x"));
        }
        assert!(c.len() <= CAPACITY);
    }
}
