//! Finding the `line:column` of a key path in a YAML file.
//!
//! serde_yaml keeps no spans in its values, but it does attach the position of the event being
//! read to any error raised while reading it. So to locate `certificate.web.sans[1]` the file is
//! read once more, skipping everything off the path, and a marker error is raised inside the
//! wanted key or value; the error's location is the answer. That costs a parse per lookup, so
//! the positions of the top two levels (`certificate.web`, which every item's `Location` needs)
//! come from `ItemIndex`, one scan of the lines, trusted only where its keys match the parsed
//! tree exactly. Performs no I/O.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::tree::{Node, Segment};

const FOUND_SCALAR: &str = "\u{1}certform-located-scalar\u{1}";
const FOUND_CONTAINER: &str = "\u{1}certform-located-container\u{1}";
const NOT_FOUND: &str = "\u{1}certform-not-found\u{1}";

/// Whether the key or the value of the last segment is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Key,
    Value,
}

/// The outcome of a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// A key or a scalar value starts here.
    Scalar(usize, usize),
    /// A table or an array starts here (for block tables, its first key).
    Container(usize, usize),
    Nothing,
}

/// Where `path` is in the YAML `text` (1-based line and column).
pub(crate) fn yaml_position(text: &str, path: &[Segment], target: Target) -> Found {
    let deserializer = serde_yaml::Deserializer::from_str(text);
    let Err(error) = (Finder { path, target }).deserialize(deserializer) else {
        return Found::Nothing;
    };
    let message = error.to_string();
    let Some(location) = error.location() else {
        return Found::Nothing;
    };
    if message.contains(FOUND_SCALAR) {
        Found::Scalar(location.line(), location.column())
    } else if message.contains(FOUND_CONTAINER) {
        Found::Container(location.line(), location.column())
    } else {
        Found::Nothing
    }
}

struct Finder<'p> {
    path: &'p [Segment],
    target: Target,
}

impl Finder<'_> {
    fn scalar<E: de::Error>(&self) -> Result<(), E> {
        if self.path.is_empty() {
            Err(E::custom(FOUND_SCALAR))
        } else {
            Err(E::custom(NOT_FOUND))
        }
    }
}

impl<'de> DeserializeSeed<'de> for Finder<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Finder<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(FOUND_CONTAINER));
        };
        let Segment::Key(wanted) = first else {
            return Err(de::Error::custom(NOT_FOUND));
        };
        let probe = KeyProbe {
            wanted,
            fail_on_match: rest.is_empty() && self.target == Target::Key,
        };
        while let Some(matched) = map.next_key_seed(probe)? {
            if matched {
                map.next_value_seed(Finder {
                    path: rest,
                    target: self.target,
                })?;
                return Err(de::Error::custom(NOT_FOUND));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Err(de::Error::custom(NOT_FOUND))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(FOUND_CONTAINER));
        };
        let Segment::Index(wanted) = first else {
            return Err(de::Error::custom(NOT_FOUND));
        };
        for _ in 0..*wanted {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom(NOT_FOUND));
            }
        }
        seq.next_element_seed(Finder {
            path: rest,
            target: self.target,
        })?;
        Err(de::Error::custom(NOT_FOUND))
    }
}

/// Reads one key; `true` when it is the wanted one (or fails there, to locate the key).
#[derive(Clone, Copy)]
struct KeyProbe<'w> {
    wanted: &'w str,
    fail_on_match: bool,
}

impl KeyProbe<'_> {
    fn compare<E: de::Error>(self, key: &str) -> Result<bool, E> {
        if key != self.wanted {
            Ok(false)
        } else if self.fail_on_match {
            Err(E::custom(FOUND_SCALAR))
        } else {
            Ok(true)
        }
    }
}

impl<'de> DeserializeSeed<'de> for KeyProbe<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyProbe<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        self.compare(key)
    }

    fn visit_bool<E: de::Error>(self, key: bool) -> Result<bool, E> {
        self.compare(&key.to_string())
    }

    fn visit_i64<E: de::Error>(self, key: i64) -> Result<bool, E> {
        self.compare(&key.to_string())
    }

    fn visit_u64<E: de::Error>(self, key: u64) -> Result<bool, E> {
        self.compare(&key.to_string())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

/// Positions of the keys of block-style YAML's first two levels (`certificate:`, `  web:`).
#[derive(Debug, Clone, Default)]
pub(crate) struct ItemIndex {
    positions: BTreeMap<Vec<String>, (usize, usize)>,
}

impl ItemIndex {
    /// Scan `text`; keep only what agrees with `root`, the tree the YAML parser built.
    pub(crate) fn new(text: &str, root: &Node<'_>) -> Self {
        let lines: Vec<(usize, usize, &str)> = text
            .lines()
            .enumerate()
            .filter_map(|(number, line)| {
                let content = line.trim_start_matches(' ');
                let indent = line.len() - content.len();
                let significant = !content.is_empty()
                    && !content.starts_with('#')
                    && content != "---"
                    && content != "...";
                significant.then_some((number + 1, indent, content))
            })
            .collect();
        let mut positions = BTreeMap::new();
        // Indices into `lines` of the top-level lines; each block runs to the next one, so the
        // whole scan is one pass over the lines.
        let top: Vec<usize> = lines
            .iter()
            .enumerate()
            .filter(|(_, (_, indent, _))| *indent == 0)
            .map(|(position, _)| position)
            .collect();
        let top_keys: Vec<Option<String>> = top
            .iter()
            .map(|position| key_of(lines[*position].2))
            .collect();
        let tree_keys: Vec<&str> = root.entries().iter().map(|entry| &*entry.key).collect();
        if !same_keys(&top_keys, &tree_keys) {
            return ItemIndex { positions };
        }
        for (number, start) in top.iter().enumerate() {
            let Some(Some(section)) = top_keys.get(number) else {
                continue;
            };
            positions.insert(vec![section.clone()], (lines[*start].0, 1));
            let end = top.get(number + 1).copied().unwrap_or(lines.len());
            let block = &lines[start + 1..end];
            let Some(child_indent) = block.first().map(|(_, indent, _)| *indent) else {
                continue;
            };
            let children: Vec<(usize, usize, &str)> = block
                .iter()
                .copied()
                .filter(|(_, indent, _)| *indent == child_indent)
                .collect();
            let child_keys: Vec<Option<String>> = children
                .iter()
                .map(|(_, _, content)| key_of(content))
                .collect();
            let Some(section_node) = root.entry(section) else {
                continue;
            };
            let tree_children: Vec<&str> = section_node
                .value
                .entries()
                .iter()
                .map(|entry| &*entry.key)
                .collect();
            if !same_keys(&child_keys, &tree_children) {
                continue;
            }
            for ((line, indent, _), key) in children.iter().zip(child_keys) {
                if let Some(key) = key {
                    positions.insert(vec![section.clone(), key], (*line, indent + 1));
                }
            }
        }
        ItemIndex { positions }
    }

    /// The position of the key at `path`, if indexed.
    pub(crate) fn key_position(&self, path: &[Segment]) -> Option<(usize, usize)> {
        let keys: Option<Vec<String>> = path
            .iter()
            .map(|segment| match segment {
                Segment::Key(key) => Some(key.clone()),
                Segment::Index(_) => None,
            })
            .collect();
        self.positions.get(&keys?).copied()
    }
}

fn same_keys(scanned: &[Option<String>], parsed: &[&str]) -> bool {
    scanned.len() == parsed.len()
        && scanned
            .iter()
            .zip(parsed)
            .all(|(scanned, parsed)| scanned.as_deref() == Some(*parsed))
}

/// The key of a `key:` or `key: value` line (bare, or in simple quotes), if it is one.
fn key_of(content: &str) -> Option<String> {
    let (key, rest) = if let Some(quoted) = content.strip_prefix('"') {
        let end = quoted.find('"')?;
        let key = &quoted[..end];
        if key.contains('\\') {
            return None;
        }
        (key.to_string(), &quoted[end + 1..])
    } else if let Some(quoted) = content.strip_prefix('\'') {
        let end = quoted.find('\'')?;
        (quoted[..end].to_string(), &quoted[end + 1..])
    } else {
        if content.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@`".contains(c)) {
            return None;
        }
        let end = content
            .match_indices(':')
            .map(|(index, _)| index)
            .find(|index| {
                content[index + 1..].is_empty() || content[index + 1..].starts_with([' ', '\t'])
            })?;
        let key = content[..end].trim_end();
        if key.contains(" #") {
            return None;
        }
        let rest = &content[end..];
        return rest.starts_with(':').then(|| key.to_string());
    };
    let rest = rest.trim_start_matches(' ');
    let after = rest.strip_prefix(':')?;
    (after.is_empty() || after.starts_with([' ', '\t'])).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Segment {
        Segment::Key(name.to_string())
    }

    const TEXT: &str = "state:\n  repo: x\ncertificate:\n  web:\n    common_name: a.example\n    sans:\n      - b.example\n      - c.example\n    flow: [d, e]\n";

    #[test]
    fn finds_keys_values_and_items() {
        let web = [key("certificate"), key("web")];
        assert_eq!(yaml_position(TEXT, &web, Target::Key), Found::Scalar(4, 3));
        let name = [key("certificate"), key("web"), key("common_name")];
        assert_eq!(
            yaml_position(TEXT, &name, Target::Value),
            Found::Scalar(5, 18)
        );
        assert_eq!(yaml_position(TEXT, &name, Target::Key), Found::Scalar(5, 5));
        let san = [
            key("certificate"),
            key("web"),
            key("sans"),
            Segment::Index(1),
        ];
        assert_eq!(
            yaml_position(TEXT, &san, Target::Value),
            Found::Scalar(8, 9)
        );
        let flow = [
            key("certificate"),
            key("web"),
            key("flow"),
            Segment::Index(1),
        ];
        assert_eq!(
            yaml_position(TEXT, &flow, Target::Value),
            Found::Scalar(9, 15)
        );
        assert!(matches!(
            yaml_position(TEXT, &web, Target::Value),
            Found::Container(..)
        ));
        let missing = [key("certificate"), key("api")];
        assert_eq!(yaml_position(TEXT, &missing, Target::Key), Found::Nothing);
    }

    fn tree(text: &str) -> Node<'static> {
        let mut findings = Vec::new();
        let root = crate::config::tree::parse_yaml(text, 0, &mut findings);
        root.unwrap_or_else(|| panic!("{findings:?}"))
    }

    #[test]
    fn item_index_matches_the_parser() {
        let index = ItemIndex::new(TEXT, &tree(TEXT));
        assert_eq!(index.key_position(&[key("state")]), Some((1, 1)));
        assert_eq!(
            index.key_position(&[key("certificate"), key("web")]),
            Some((4, 3))
        );
        assert_eq!(
            index.key_position(&[key("state"), key("repo")]),
            Some((2, 3))
        );
        assert_eq!(
            index.key_position(&[key("certificate"), key("web"), key("sans")]),
            None
        );

        // Quoted keys, comments, and a block scalar whose lines look like keys.
        let text = "# top\n\"state\": # c\n  repo: x\ncertificate:\n\n  'a': {common_name: a.example}\n  b:\n    common_name: b.example\n    deploy:\n      - kind: files\n        dir: out\n        reload: |\n          c: 1\n";
        let index = ItemIndex::new(text, &tree(text));
        assert_eq!(index.key_position(&[key("state")]), Some((2, 1)));
        assert_eq!(
            index.key_position(&[key("certificate"), key("a")]),
            Some((6, 3))
        );
        assert_eq!(
            index.key_position(&[key("certificate"), key("b")]),
            Some((7, 3))
        );

        // Anything the scan misreads is dropped rather than trusted.
        let text = "certificate: {a: {common_name: a.example}}\n";
        let index = ItemIndex::new(text, &tree(text));
        assert_eq!(index.key_position(&[key("certificate"), key("a")]), None);
        let text = "? certificate\n: {}\n";
        let index = ItemIndex::new(text, &tree(text));
        assert_eq!(index.key_position(&[key("certificate")]), None);
    }
}
