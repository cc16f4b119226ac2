//! An index for the SCIM string filters `co`, `sw`, `ew` (and `eq`) on the user
//! attributes identity providers search by: `userName`, `displayName`, `nickName`,
//! `title`, `name.formatted|familyName|givenName` and `emails[.value]`.
//!
//! Without it such a filter renders every user (decrypting its stored attributes) and
//! evaluates the filter on each: hundreds of milliseconds on 100,000 users. The index
//! keeps, per user, the lower-cased values of those attributes *as the API renders
//! them* (taken from the rendered resource with the filter's own [`filter::values`], so
//! the index and the scan cannot disagree on what a value is), and a posting list of
//! byte trigrams per attribute. A pattern of three bytes or more is looked up through
//! its rarest trigram and each candidate checked against the stored value (so the
//! answer is exact); a shorter one is checked against every stored value, still without
//! rendering anyone. Lower-casing is [`filter::fold`], as the scan's comparison does.
//!
//! Entries are never changed in place: a changed user gets a new slot and its old slot
//! dies, so posting lists are append-only and stay sorted; they are compacted when
//! dead slots outnumber live ones.
//!
//! What keeps it current is the HTTP layer's business (`http/scim.rs`): the writer
//! notes every user an applied event names (`writer::ChangedUsers`) and the index
//! re-reads those users before it answers, so a write is seen from the next request on.

use super::filter::{self, AttrPath, Filter, Op};
use serde_json::Value;
use std::collections::HashMap;

/// The attribute paths the index answers for, by id (the id is the top byte of a
/// posting key). `externalId` (how some identity providers match their users) is
/// case-exact: the index's folded values narrow it down, the filter decides.
const PATHS: [(&str, Option<&str>); 9] = [
    ("username", None),
    ("displayname", None),
    ("nickname", None),
    ("title", None),
    ("name", Some("formatted")),
    ("name", Some("familyname")),
    ("name", Some("givenname")),
    ("emails", Some("value")),
    ("externalid", None),
];

/// Whether the index's (folded) values answer a comparison on path `id` exactly.
fn folded_is_exact(id: u8) -> bool {
    PATHS[id as usize].0 != "externalid"
}

/// The id of an indexed path, if `p` is one (in the core User schema; `emails` alone
/// compares `emails.value`, as the filter does for a complex multi-valued attribute).
pub fn path_id(p: &AttrPath) -> Option<u8> {
    if p.urn
        .as_deref()
        .is_some_and(|u| !u.eq_ignore_ascii_case(super::USER_SCHEMA))
    {
        return None;
    }
    let attr = p.attr.to_ascii_lowercase();
    let sub = p.sub.as_deref().map(str::to_ascii_lowercase);
    let sub = match (attr.as_str(), sub) {
        ("emails", None) => Some("value".to_string()),
        (_, s) => s,
    };
    PATHS
        .iter()
        .position(|(a, s)| *a == attr && *s == sub.as_deref())
        .map(|i| i as u8)
}

/// The lower-cased string values of the indexed paths in a rendered user resource.
pub fn values_of(resource: &Value) -> Vec<(u8, Box<str>)> {
    let mut out = Vec::new();
    for (i, (attr, sub)) in PATHS.iter().enumerate() {
        let path = AttrPath {
            urn: None,
            attr: attr.to_string(),
            sub: sub.map(str::to_string),
        };
        for v in filter::values(resource, &path, super::USER_SCHEMA) {
            if let Value::String(s) = v {
                out.push((i as u8, filter::fold(s).into_boxed_str()));
            }
        }
    }
    out
}

struct Entry {
    /// The user's key in the directory (its lower-case name).
    key: Box<str>,
    values: Box<[(u8, Box<str>)]>,
}

/// See the module documentation.
#[derive(Default)]
pub struct FilterIndex {
    /// `None`: dead (the user changed or is gone).
    slots: Vec<Option<Entry>>,
    by_key: HashMap<Box<str>, u32>,
    /// (path id << 24 | three bytes) -> slots, ascending.
    grams: HashMap<u32, Vec<u32>>,
    dead: usize,
}

/// Dead slots tolerated before a compaction (few in tests, so they compact often).
const COMPACT_AFTER: usize = if cfg!(test) { 16 } else { 1024 };

fn gram_key(path: u8, w: &[u8]) -> u32 {
    (path as u32) << 24 | (w[0] as u32) << 16 | (w[1] as u32) << 8 | w[2] as u32
}

/// `attr[sub op "v"]`, one comparison of a sub-attribute inside a value path, as the
/// plain comparison `attr.sub op "v"` (the same users: one value matches either way).
fn value_path_as_compare(p: &AttrPath, inner: &Filter) -> Option<Filter> {
    match inner {
        Filter::Compare(ip, op, v) if ip.urn.is_none() && ip.sub.is_none() && p.sub.is_none() => {
            Some(Filter::Compare(
                AttrPath {
                    urn: p.urn.clone(),
                    attr: p.attr.clone(),
                    sub: Some(ip.attr.clone()),
                },
                *op,
                v.clone(),
            ))
        }
        _ => None,
    }
}

/// Which users a filter selects, as far as the index can tell.
pub struct Selection<'a> {
    /// Directory keys, in the directory's (byte) order.
    pub keys: Vec<&'a str>,
    /// `true`: exactly the users that match; `false`: a superset, to be checked with
    /// the whole filter.
    pub exact: bool,
}

impl FilterIndex {
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Forget everything (the personal-data keys changed, or too much changed to follow).
    pub fn clear(&mut self) {
        *self = FilterIndex::default();
    }

    /// Set (or replace) what user `key` shows.
    pub fn put(&mut self, key: &str, values: Vec<(u8, Box<str>)>) {
        self.remove(key);
        let slot = self.slots.len() as u32;
        self.post(slot, &values);
        self.slots.push(Some(Entry {
            key: key.into(),
            values: values.into_boxed_slice(),
        }));
        self.by_key.insert(key.into(), slot);
    }

    fn post(&mut self, slot: u32, values: &[(u8, Box<str>)]) {
        let mut keys: Vec<u32> = values
            .iter()
            .flat_map(|(p, s)| s.as_bytes().windows(3).map(move |w| gram_key(*p, w)))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        for k in keys {
            self.grams.entry(k).or_default().push(slot);
        }
    }

    /// User `key` is gone.
    pub fn remove(&mut self, key: &str) {
        if let Some(old) = self.by_key.remove(key) {
            self.slots[old as usize] = None;
            self.dead += 1;
            if self.dead > COMPACT_AFTER && self.dead > self.by_key.len() {
                self.compact();
            }
        }
    }

    /// Renumber the live slots and rebuild the posting lists without the dead ones.
    fn compact(&mut self) {
        let slots = std::mem::take(&mut self.slots);
        self.grams.clear();
        self.by_key.clear();
        self.dead = 0;
        for e in slots.into_iter().flatten() {
            let slot = self.slots.len() as u32;
            self.post(slot, &e.values);
            self.by_key.insert(e.key.clone(), slot);
            self.slots.push(Some(e));
        }
        self.grams.shrink_to_fit();
    }

    /// Live slots whose value at `path` passes `op` against the lower-cased `pattern`.
    fn matching(&self, path: u8, op: Op, pattern: &str) -> Vec<u32> {
        let check = |s: &str| match op {
            Op::Co => s.contains(pattern),
            Op::Sw => s.starts_with(pattern),
            Op::Ew => s.ends_with(pattern),
            _ => s == pattern,
        };
        let hit = |slot: u32| {
            self.slots[slot as usize]
                .as_ref()
                .is_some_and(|e| e.values.iter().any(|(p, s)| *p == path && check(s)))
        };
        if pattern.len() < 3 {
            return (0..self.slots.len() as u32).filter(|s| hit(*s)).collect();
        }
        // The rarest trigram's list; a trigram nobody has means nobody matches.
        let mut rarest: Option<&Vec<u32>> = None;
        for w in pattern.as_bytes().windows(3) {
            match self.grams.get(&gram_key(path, w)) {
                None => return vec![],
                Some(l) if rarest.is_none_or(|r| l.len() < r.len()) => rarest = Some(l),
                Some(_) => {}
            }
        }
        rarest
            .map(|l| l.iter().copied().filter(|s| hit(*s)).collect())
            .unwrap_or_default()
    }

    /// Slots selected by `f`, and whether exactly; `None` when the index cannot narrow
    /// `f` down (then every user must be checked).
    fn plan(&self, f: &Filter) -> Option<(Vec<u32>, bool)> {
        match f {
            Filter::Compare(p, op @ (Op::Co | Op::Sw | Op::Ew | Op::Eq), Value::String(v)) => {
                let path = path_id(p)?;
                Some((
                    self.matching(path, *op, &filter::fold(v)),
                    folded_is_exact(path),
                ))
            }
            // `emails[value eq "x"]` is `emails.value eq "x"` (Entra's form).
            Filter::ValuePath(p, inner) => self.plan(&value_path_as_compare(p, inner)?),
            Filter::And(a, b) => match (self.plan(a), self.plan(b)) {
                (Some((x, ex)), Some((y, ey))) => Some((intersect(&x, &y), ex && ey)),
                (Some((x, _)), None) | (None, Some((x, _))) => Some((x, false)),
                (None, None) => None,
            },
            Filter::Or(a, b) => {
                let (x, ex) = self.plan(a)?;
                let (y, ey) = self.plan(b)?;
                Some((union(&x, &y), ex && ey))
            }
            _ => None,
        }
    }

    /// The users `f` selects (see [`Selection`]), or `None`: ask every user.
    pub fn select(&self, f: &Filter) -> Option<Selection<'_>> {
        let (slots, exact) = self.plan(f)?;
        let mut keys: Vec<&str> = slots
            .into_iter()
            .filter_map(|s| self.slots[s as usize].as_ref().map(|e| &*e.key))
            .collect();
        keys.sort_unstable();
        Some(Selection { keys, exact })
    }

    /// Whether the index can narrow `f` down at all (before paying for building it).
    pub fn helps(f: &Filter) -> bool {
        match f {
            Filter::Compare(p, Op::Co | Op::Sw | Op::Ew | Op::Eq, Value::String(_)) => {
                path_id(p).is_some()
            }
            Filter::ValuePath(p, inner) => {
                value_path_as_compare(p, inner).is_some_and(|f| Self::helps(&f))
            }
            Filter::And(a, b) => Self::helps(a) || Self::helps(b),
            Filter::Or(a, b) => Self::helps(a) && Self::helps(b),
            _ => false,
        }
    }

    /// Bytes held, roughly (entries, strings, posting lists, maps), for the benchmark.
    pub fn heap_bytes(&self) -> usize {
        let entries: usize = self
            .slots
            .iter()
            .flatten()
            .map(|e| e.key.len() + e.values.iter().map(|(_, s)| 17 + s.len()).sum::<usize>())
            .sum();
        let slots = self.slots.capacity() * std::mem::size_of::<Option<Entry>>();
        let by_key = self.by_key.capacity() * (16 + 4 + 8)
            + self.by_key.keys().map(|k| k.len()).sum::<usize>();
        let grams: usize = self.grams.capacity() * (4 + 24 + 8)
            + self.grams.values().map(|l| l.capacity() * 4).sum::<usize>();
        entries + slots + by_key + grams
    }
}

/// The index of the live state, with the personal-data key epoch its values were
/// decrypted under (`None`: not built yet).
#[derive(Default)]
pub struct LiveIndex {
    pub index: FilterIndex,
    pub epoch: Option<u64>,
}

fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn union(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out: Vec<u32> = a.iter().chain(b).copied().collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    const U: &str = super::super::USER_SCHEMA;

    /// The index against the plain scan (`Filter::matches` on every resource), on random
    /// users that are created, changed, renamed and deleted, and random filters.
    #[test]
    fn the_index_agrees_with_the_scan() {
        // xorshift: a tiny deterministic generator, so a failure is reproducible.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        // Few letters, so patterns hit; upper case and non-ASCII for case folding
        // (`É` lower-cases to two bytes that differ from its own).
        let letters = ["a", "b", "A", "B", "é", "É", "-", "1", "ß", "@"];
        let word = |next: &mut dyn FnMut(usize) -> usize, max: usize| -> String {
            (0..next(max + 1))
                .map(|_| letters[next(letters.len())])
                .collect()
        };
        let paths = [
            "userName",
            "displayName",
            "title",
            "name.givenName",
            "name.familyName",
            "emails",
            "emails.value",
            "urn:ietf:params:scim:schemas:core:2.0:User:userName",
            "nickName",
            "externalId",
        ];
        let ops = ["co", "sw", "ew", "eq"];
        let mut users: BTreeMap<String, Value> = BTreeMap::new();
        let mut index = FilterIndex::default();
        let mut nonempty = 0;
        for round in 0..1500 {
            // A write: create or replace, rename, or delete.
            let key = word(&mut next, 4).to_lowercase();
            match next(4) {
                0 | 1 => {
                    let mut doc = json!({"userName": key.clone(), "id": key.clone()});
                    if next(2) == 0 {
                        doc["displayName"] = json!(word(&mut next, 6));
                    }
                    if next(2) == 0 {
                        doc["name"] = json!({"givenName": word(&mut next, 5), "familyName": word(&mut next, 5)});
                    }
                    let emails: Vec<Value> = (0..next(3))
                        .map(|_| json!({"value": word(&mut next, 6), "type": "work"}))
                        .collect();
                    if !emails.is_empty() {
                        doc["emails"] = json!(emails);
                    }
                    if next(3) == 0 {
                        doc["title"] = json!(word(&mut next, 3));
                    }
                    if next(2) == 0 {
                        doc["externalId"] = json!(word(&mut next, 5));
                    }
                    index.put(&key, values_of(&doc));
                    users.insert(key, doc);
                }
                2 => {
                    let to = word(&mut next, 4).to_lowercase();
                    if let Some(mut doc) = users.remove(&key) {
                        index.remove(&key);
                        users.remove(&to);
                        index.remove(&to);
                        doc["userName"] = json!(to.clone());
                        index.put(&to, values_of(&doc));
                        users.insert(to, doc);
                    }
                }
                _ => {
                    users.remove(&key);
                    index.remove(&key);
                }
            }
            assert_eq!(index.len(), users.len());
            // A few random filters, single and combined.
            for _ in 0..4 {
                let leaf = |next: &mut dyn FnMut(usize) -> usize| {
                    if next(6) == 0 {
                        // Entra's form of an e-mail filter.
                        return format!(
                            "emails[value {} {}]",
                            ops[next(ops.len())],
                            json!(word(next, 4))
                        );
                    }
                    format!(
                        "{} {} {}",
                        paths[next(paths.len())],
                        ops[next(ops.len())],
                        json!(word(next, 4))
                    )
                };
                let text = match next(5) {
                    0 => format!("{} and {}", leaf(&mut next), leaf(&mut next)),
                    1 => format!("{} or {}", leaf(&mut next), leaf(&mut next)),
                    2 => format!("{} and active eq true", leaf(&mut next)),
                    _ => leaf(&mut next),
                };
                let f = filter::parse(&text).unwrap();
                let expected: Vec<&str> = users
                    .iter()
                    .filter(|(_, d)| f.matches(d, U))
                    .map(|(k, _)| k.as_str())
                    .collect();
                nonempty += usize::from(!expected.is_empty());
                match index.select(&f) {
                    None => assert!(!FilterIndex::helps(&f), "{text}"),
                    Some(sel) => {
                        assert!(FilterIndex::helps(&f), "{text}");
                        let got: Vec<&str> = if sel.exact {
                            sel.keys
                        } else {
                            sel.keys
                                .into_iter()
                                .filter(|k| f.matches(&users[*k], U))
                                .collect()
                        };
                        assert_eq!(got, expected, "round {round}: {text}");
                    }
                }
            }
        }
        // Dead slots were compacted away now and then, and the answers stayed right.
        assert!(index.slots.len() < 1500);
        // The filters were not all vacuous.
        assert!(nonempty > 1000, "{nonempty}");
    }

    #[test]
    fn paths_the_index_answers() {
        for (p, id) in [
            ("userName", Some(0)),
            ("USERNAME", Some(0)),
            (
                "urn:ietf:params:scim:schemas:core:2.0:User:userName",
                Some(0),
            ),
            ("emails", Some(7)),
            ("emails.VALUE", Some(7)),
            ("emails.type", None),
            ("name", None),
            ("name.givenName", Some(6)),
            ("externalId", Some(8)),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:userName",
                None,
            ),
        ] {
            assert_eq!(path_id(&filter::parse_attr_path(p).unwrap()), id, "{p}");
        }
    }
}
