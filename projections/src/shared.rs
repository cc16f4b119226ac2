//! Structural sharing between copies of the state.
//!
//! The server keeps more than one `State` at a time: the writer's (one batch ahead), the
//! readers' (what is flushed), a snapshot being written. Large maps are persistent
//! B-trees (`imbl::OrdMap`/`OrdSet`: cloning one is O(1), a change copies only the path
//! to the entry), and large records sit behind [`Shared`] (an `Arc`), so a copy of the
//! state shares everything that did not change since it was taken. Both encode exactly as
//! the `BTreeMap`/`BTreeSet`/record they replace (ordered maps and sequences), so the
//! canonical encoding and the digest do not depend on it.
//!
//! Why `imbl`: the maintained fork of `im` (persistent collections used in production by
//! e.g. the Matrix Rust SDK), B-tree nodes of 16 entries (a copy-on-write touches little),
//! ordered iteration and `range` like `BTreeMap`, and serde support behind a feature.

pub use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::ops::Deref;
use std::sync::Arc;

/// A record shared between copies of the state: cloning it is a reference count, and
/// [`Shared::make_mut`] copies it only when another copy still holds it. Encodes as the
/// record itself.
#[derive(Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shared<T>(Arc<T>);

impl<T> Shared<T> {
    pub fn new(value: T) -> Self {
        Shared(Arc::new(value))
    }
}

impl<T> Shared<T> {
    /// Whether both are the same record (not a copy of it).
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl<T: Clone> Shared<T> {
    /// The record to change, copied first when another copy of the state shares it.
    pub fn make_mut(&mut self) -> &mut T {
        Arc::make_mut(&mut self.0)
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> AsRef<T> for Shared<T> {
    fn as_ref(&self) -> &T {
        &self.0
    }
}

impl<T> From<T> for Shared<T> {
    fn from(value: T) -> Self {
        Shared::new(value)
    }
}

impl<T: Serialize> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.as_ref().serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Shared<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Shared::new)
    }
}

/// The record under `key` to change, copied first when another copy of the state shares
/// it (and the path to it in the map, likewise).
pub fn edit<'a, T: Clone>(map: &'a mut OrdMap<String, Shared<T>>, key: &str) -> Option<&'a mut T> {
    map.get_mut(key).map(Shared::make_mut)
}
