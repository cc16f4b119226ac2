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

/// The key of the maps written on the hot paths (user and group names, token ids): a
/// change to a persistent map copies the nodes on its path (16 keys a node, five deep
/// at a hundred thousand), and an `Arc<str>` is copied by a count where a `String` is
/// allocated and copied. With `String` keys those copies were 3.8k of the 97.6k
/// instructions of a group create (issue 18). Encoded as the string it holds.
pub type Name = Arc<str>;
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

    /// The record another owner (an event) already holds, shared rather than copied.
    pub fn from_arc(value: Arc<T>) -> Self {
        Shared(value)
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
pub fn edit<'a, K, T: Clone>(map: &'a mut OrdMap<K, Shared<T>>, key: &str) -> Option<&'a mut T>
where
    K: Ord + Clone + std::borrow::Borrow<str>,
{
    map.get_mut(key).map(Shared::make_mut)
}

/// A small ordered set kept as a sorted vector: a user's groups are a handful of names,
/// where a `BTreeSet` would allocate a node of eleven slots for one. Encodes exactly as
/// the `BTreeSet` it replaces (an ordered sequence).
/// INVARIANT: sorted, without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SortedSet<T>(Vec<T>);

impl<T: Ord> SortedSet<T> {
    pub fn new() -> Self {
        SortedSet(Vec::new())
    }

    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains<Q: Ord + ?Sized>(&self, value: &Q) -> bool
    where
        T: std::borrow::Borrow<Q>,
    {
        self.0.binary_search_by(|v| v.borrow().cmp(value)).is_ok()
    }

    /// Whether it was not there yet.
    pub fn insert(&mut self, value: T) -> bool {
        match self.0.binary_search(&value) {
            Ok(_) => false,
            Err(i) => {
                self.0.insert(i, value);
                self.0.shrink_to_fit();
                true
            }
        }
    }

    /// Whether it was there.
    pub fn remove<Q: Ord + ?Sized>(&mut self, value: &Q) -> bool
    where
        T: std::borrow::Borrow<Q>,
    {
        match self.0.binary_search_by(|v| v.borrow().cmp(value)) {
            Ok(i) => {
                self.0.remove(i);
                self.0.shrink_to_fit();
                true
            }
            Err(_) => false,
        }
    }
}

impl<T: Ord> FromIterator<T> for SortedSet<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut v: Vec<T> = iter.into_iter().collect();
        v.sort();
        v.dedup();
        v.shrink_to_fit();
        SortedSet(v)
    }
}

impl<'a, T> IntoIterator for &'a SortedSet<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<T> IntoIterator for SortedSet<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<T: Serialize> Serialize for SortedSet<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter())
    }
}

impl<'de, T: Deserialize<'de> + Ord> Deserialize<'de> for SortedSet<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Stored sorted (it was a `BTreeSet` or this): sorting again is a linear check.
        Vec::<T>::deserialize(d).map(|v| v.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn a_sorted_set_acts_and_encodes_like_a_btreeset() {
        let mut small = SortedSet::new();
        let mut big = BTreeSet::new();
        for (i, name) in ["m", "b", "z", "b", "a", "m"].into_iter().enumerate() {
            assert_eq!(
                small.insert(name.to_string()),
                big.insert(name.to_string()),
                "{i}"
            );
        }
        assert_eq!(small.remove("z"), big.remove("z"));
        assert_eq!(small.remove("q"), big.remove("q"));
        assert!(small.contains("a") && !small.contains("z"));
        assert_eq!(small.len(), big.len());
        assert_eq!(
            rmp_serde::to_vec(&small).unwrap(),
            rmp_serde::to_vec(&big).unwrap()
        );
        let back: SortedSet<String> =
            rmp_serde::from_slice(&rmp_serde::to_vec(&big).unwrap()).unwrap();
        assert_eq!(back, small);
    }
}
