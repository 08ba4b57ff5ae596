//! `SmallMap`: a map kept as a vector sorted by key, for the maps every state record and
//! observation holds a few entries of (a record's `spec_fields`, its deployments, a deploy
//! record's file digests). A `BTreeMap` node has room for eleven entries whatever it holds:
//! ~540 bytes for four pairs of strings, ~370 for one boxed deploy record. At 10,000
//! certificates these maps were ~15 MB of `plan`'s peak; as sorted vectors they are sized to
//! what they hold. Iteration, equality and the serialized form (a map, keys in order) are the
//! `BTreeMap`'s, so the state files and the caches do not change.
//!
//! Lookups are binary searches; an insert shifts the entries after it, which is cheap for the
//! handful of entries these maps hold.

use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};

/// A map sorted by key, held in one vector (see the module).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SmallMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        SmallMap {
            entries: Vec::new(),
        }
    }
}

impl<K: Ord, V> SmallMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn find<Q>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.entries
            .binary_search_by(|(candidate, _)| candidate.borrow().cmp(key))
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.find(key).ok().map(|at| &self.entries[at].1)
    }

    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self.find(key) {
            Ok(at) => Some(&mut self.entries[at].1),
            Err(_) => None,
        }
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.find(key).is_ok()
    }

    /// Insert `value` under `key`; the value it replaces, if any.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(at) => Some(std::mem::replace(&mut self.entries[at].1, value)),
            Err(at) => {
                self.entries.insert(at, (key, value));
                None
            }
        }
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.find(key).ok().map(|at| self.entries.remove(at).1)
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.entries.retain_mut(|(key, value)| keep(key, value));
    }

    pub fn iter(&self) -> Iter<'_, K, V> {
        self.entries.iter().map(|(key, value)| (key, value))
    }

    pub fn iter_mut(&mut self) -> IterMut<'_, K, V> {
        self.entries.iter_mut().map(|(key, value)| (&*key, value))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + ExactSizeIterator + Clone {
        self.entries.iter().map(|(key, _)| key)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator + Clone {
        self.entries.iter().map(|(_, value)| value)
    }

    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut V> + ExactSizeIterator {
        self.entries.iter_mut().map(|(_, value)| value)
    }

    /// Entries sorted by key, the last of equal keys kept (as `BTreeMap` collects them).
    fn from_unsorted(mut entries: Vec<(K, V)>) -> Self {
        entries.reverse();
        // Stable: of equal keys, the one given last now comes first and is kept.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|later, kept| later.0 == kept.0);
        entries.shrink_to_fit();
        SmallMap { entries }
    }
}

pub type Iter<'a, K, V> =
    std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;
pub type IterMut<'a, K, V> =
    std::iter::Map<std::slice::IterMut<'a, (K, V)>, fn(&'a mut (K, V)) -> (&'a K, &'a mut V)>;

impl<K: Ord, V> FromIterator<(K, V)> for SmallMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self::from_unsorted(iter.into_iter().collect())
    }
}

impl<K: Ord, V> Extend<(K, V)> for SmallMap<K, V> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (key, value) in iter {
            self.insert(key, value);
        }
    }
}

impl<K: Ord, V, const N: usize> From<[(K, V); N]> for SmallMap<K, V> {
    fn from(entries: [(K, V); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl<K, V> IntoIterator for SmallMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'a, K: Ord, V> IntoIterator for &'a SmallMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, K: Ord, V> IntoIterator for &'a mut SmallMap<K, V> {
    type Item = (&'a K, &'a mut V);
    type IntoIter = IterMut<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

impl<K: Ord + Borrow<Q>, V, Q: Ord + ?Sized> std::ops::Index<&Q> for SmallMap<K, V> {
    type Output = V;

    /// The value under `key`; panics when there is none, as `BTreeMap`'s index does (tests).
    fn index(&self, key: &Q) -> &V {
        self.get(key).expect("no entry for the key in SmallMap")
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for SmallMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(key, value)| (key, value)))
            .finish()
    }
}

impl<K: Serialize, V: Serialize> Serialize for SmallMap<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (key, value) in &self.entries {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de, K: Deserialize<'de> + Ord, V: Deserialize<'de>> Deserialize<'de> for SmallMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<K, V>(PhantomData<(K, V)>);

        impl<'de, K: Deserialize<'de> + Ord, V: Deserialize<'de>> Visitor<'de> for MapVisitor<K, V> {
            type Value = SmallMap<K, V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(0).min(64));
                while let Some(entry) = access.next_entry()? {
                    entries.push(entry);
                }
                Ok(SmallMap::from_unsorted(entries))
            }
        }

        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn pairs(keys: &[&str]) -> Vec<(String, usize)> {
        keys.iter()
            .enumerate()
            .map(|(i, key)| (key.to_string(), i))
            .collect()
    }

    #[test]
    fn it_behaves_as_a_btreemap_for_every_operation() {
        let input = pairs(&["c", "a", "b", "a", "d", "c"]);
        let small: SmallMap<String, usize> = input.clone().into_iter().collect();
        let btree: BTreeMap<String, usize> = input.into_iter().collect();
        assert_eq!(
            small.iter().collect::<Vec<_>>(),
            btree.iter().collect::<Vec<_>>(),
            "sorted, the last of equal keys kept"
        );
        assert_eq!(small.len(), 4);
        assert_eq!(small.get("a"), Some(&3));
        assert_eq!(small.get("z"), None);
        assert!(small.contains_key("d") && !small.contains_key("e"));
        let mut small = small;
        let mut btree = btree;
        for (key, value) in [("b", 10), ("e", 11), ("0", 12)] {
            assert_eq!(
                small.insert(key.to_string(), value),
                btree.insert(key.to_string(), value)
            );
        }
        for key in ["c", "x", "0"] {
            assert_eq!(small.remove(key), btree.remove(key));
        }
        if let Some(value) = small.get_mut("a") {
            *value += 100;
        }
        *btree.get_mut("a").expect("a") += 100;
        small.retain(|key, value| {
            *value += 1;
            key != "d"
        });
        btree.retain(|key, value| {
            *value += 1;
            key != "d"
        });
        small.extend([("f".to_string(), 1), ("a".to_string(), 2)]);
        btree.extend([("f".to_string(), 1), ("a".to_string(), 2)]);
        assert_eq!(
            small.clone().into_iter().collect::<Vec<_>>(),
            btree.clone().into_iter().collect::<Vec<_>>()
        );
        assert_eq!(
            small.keys().collect::<Vec<_>>(),
            btree.keys().collect::<Vec<_>>()
        );
        assert_eq!(format!("{small:?}"), format!("{btree:?}"));
        assert_eq!(small.is_empty(), btree.is_empty());
        assert!(SmallMap::<String, usize>::new().is_empty());
    }

    #[test]
    fn it_serializes_and_reads_as_a_map() {
        let small: SmallMap<String, String> = SmallMap::from([
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "1".to_string()),
        ]);
        let btree: BTreeMap<String, String> = small.clone().into_iter().collect();
        let json = serde_json::to_string(&small).expect("json");
        assert_eq!(json, serde_json::to_string(&btree).expect("json"));
        assert_eq!(json, r#"{"a":"1","b":"2"}"#);
        let back: SmallMap<String, String> = serde_json::from_str(&json).expect("back");
        assert_eq!(back, small);
        let toml_text = toml::to_string(&small).expect("toml");
        assert_eq!(toml_text, toml::to_string(&btree).expect("toml"));
        let from_toml: SmallMap<String, String> = toml::from_str(&toml_text).expect("toml back");
        assert_eq!(from_toml, small);
        let unsorted: SmallMap<String, String> =
            serde_json::from_str(r#"{"b":"2","a":"1"}"#).expect("unsorted");
        assert_eq!(unsorted, small);
        assert!(serde_json::from_str::<SmallMap<String, String>>("[1]").is_err());
    }
}
