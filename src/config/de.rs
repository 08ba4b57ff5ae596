//! A serde `Deserializer` over a file's `Node` tree that reports every error, not just the first.
//!
//! Each failure is recorded as a finding at the key path where it happened (unknown fields with a
//! "did you mean", wrong types, unknown enum values, missing keys), then reading goes on: an
//! unknown field is skipped, a bad optional value becomes `None`, a bad array item or table entry
//! is left out. The value that comes back is therefore only trustworthy when no error was
//! recorded under its path. Error texts never quote string values, so secrets cannot leak through
//! them. Performs no I/O.

use std::cell::RefCell;
use std::fmt;

use serde::de::value::StrDeserializer;
use serde::de::{
    self, Deserialize, DeserializeSeed, Expected, IntoDeserializer, MapAccess, SeqAccess,
    Unexpected, Visitor,
};

use super::report::{list, suggestion, Finding};
use super::tree::{Anchor, Entry, KeyPath, Node, NodeKind};

/// The findings of one file, shared by every level of the deserializer.
#[derive(Debug)]
pub(crate) struct Collector {
    file: usize,
    findings: RefCell<Vec<Finding>>,
}

impl Collector {
    pub(crate) fn new(file: usize) -> Self {
        Collector {
            file,
            findings: RefCell::new(Vec::new()),
        }
    }

    pub(crate) fn into_findings(self) -> Vec<Finding> {
        self.findings.into_inner()
    }

    fn push(&self, finding: Finding) {
        self.findings.borrow_mut().push(finding);
    }

    /// Record an error raised while reading the value at `path`.
    fn value_error(&self, path: &KeyPath, error: DeError) {
        let finding = match error {
            DeError::Reported => return,
            DeError::MissingField(field) => Finding::error(
                self.file,
                path,
                Anchor::Value,
                format!("missing required key `{field}`"),
            )
            .with_key(path.key(field).to_string()),
            DeError::UnknownField { field, expected } => {
                self.unknown_field(path, &field, expected, None);
                return;
            }
            error => {
                let hint = error.hint();
                Finding::error(self.file, path, Anchor::Value, error.to_string()).with_hint(hint)
            }
        };
        self.push(finding);
    }

    /// Record an error raised while reading the key `key` of the table at `table` (tagged by
    /// `tag` when it is one provider's table).
    fn key_error(&self, table: &KeyPath, key: &str, error: DeError, tag: Option<Tag<'_>>) {
        match error {
            DeError::Reported => {}
            DeError::UnknownField { expected, .. } => self.unknown_field(table, key, expected, tag),
            error => {
                let path = table.key(key);
                let hint = error.hint();
                self.push(
                    Finding::error(self.file, &path, Anchor::Key, error.to_string())
                        .with_hint(hint),
                );
            }
        }
    }

    fn unknown_field(&self, table: &KeyPath, field: &str, expected: &[&str], tag: Option<Tag<'_>>) {
        let what = if table.is_root() { "section" } else { "field" };
        let path = table.key(field);
        let mut message = format!("unknown {what} `{}`", super::report::shown(field));
        if let Some(tag) = tag {
            message.push_str(&format!(
                " for {} of `kind = \"{}\"`",
                tag.noun,
                super::report::shown(tag.kind)
            ));
        }
        self.push(
            Finding::error(self.file, &path, Anchor::Key, message)
                .with_hint(suggestion(field, expected)),
        );
    }
}

/// Prefix of the enum name by which a type asks for a table tagged by its `kind` key (see
/// `deserialize_enum`); the rest of the name is the noun for messages, e.g. `a CA`.
pub(crate) const KIND_TAGGED: &str = "kind-tagged:";
/// Like `KIND_TAGGED`, but a string is also accepted (visited as a string): a reference to a
/// named table, as in `deploy = ["web1", { kind = "files", ... }]`.
pub(crate) const KIND_TAGGED_OR_NAME: &str = "kind-tagged-or-name:";

/// The `kind` of a tagged table being read, for messages.
#[derive(Debug, Clone, Copy)]
struct Tag<'a> {
    /// What the table is, with its article: `a CA`, `a DNS provider`.
    noun: &'static str,
    kind: &'a str,
}

/// Read a whole file; errors are in the collector.
pub(crate) fn deserialize<'de, T: Deserialize<'de>>(
    root: &Node<'_>,
    collector: &Collector,
) -> Option<T> {
    let path = KeyPath::root();
    match T::deserialize(NodeDeserializer::new(root, path.clone(), collector)) {
        Ok(value) => Some(value),
        Err(error) => {
            collector.value_error(&path, error);
            None
        }
    }
}

/// Why reading a value failed, in words a config author understands.
#[derive(Debug)]
pub(crate) enum DeError {
    /// Already recorded as a finding further down.
    Reported,
    Message(String),
    InvalidType {
        found: String,
        expected: String,
    },
    InvalidValue {
        found: String,
        expected: String,
    },
    UnknownVariant {
        variant: String,
        expected: &'static [&'static str],
    },
    UnknownField {
        field: String,
        expected: &'static [&'static str],
    },
    MissingField(&'static str),
    DuplicateField(&'static str),
}

impl DeError {
    fn hint(&self) -> Option<String> {
        match self {
            DeError::UnknownVariant { variant, expected } => {
                super::report::nearest(variant, expected.iter().copied())
                    .map(|near| format!("did you mean `{near}`?"))
            }
            _ => None,
        }
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeError::Reported => f.write_str("invalid value"),
            DeError::Message(message) => f.write_str(message),
            DeError::InvalidType { found, expected } => {
                write!(f, "expected {expected}, found {found}")
            }
            DeError::InvalidValue { found, expected } => {
                write!(f, "invalid value {found}, expected {expected}")
            }
            DeError::UnknownVariant { variant, expected } => write!(
                f,
                "unknown value `{}`, expected one of {}",
                super::report::shown(variant),
                list(expected.iter())
            ),
            DeError::UnknownField { field, expected } => write!(
                f,
                "unknown field `{}`, expected one of {}",
                super::report::shown(field),
                list(expected.iter())
            ),
            DeError::MissingField(field) => write!(f, "missing required key `{field}`"),
            DeError::DuplicateField(field) => write!(f, "key `{field}` is given twice"),
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        DeError::Message(message.to_string())
    }

    fn invalid_type(unexpected: Unexpected<'_>, expected: &dyn Expected) -> Self {
        DeError::InvalidType {
            found: describe_unexpected(&unexpected),
            expected: describe_expected(expected),
        }
    }

    fn invalid_value(unexpected: Unexpected<'_>, expected: &dyn Expected) -> Self {
        DeError::InvalidValue {
            found: describe_unexpected(&unexpected),
            expected: describe_expected(expected),
        }
    }

    fn invalid_length(length: usize, expected: &dyn Expected) -> Self {
        DeError::Message(format!(
            "expected {}, found {length} items",
            describe_expected(expected)
        ))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError::UnknownVariant {
            variant: variant.to_string(),
            expected,
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError::UnknownField {
            field: field.to_string(),
            expected,
        }
    }

    fn missing_field(field: &'static str) -> Self {
        DeError::MissingField(field)
    }

    fn duplicate_field(field: &'static str) -> Self {
        DeError::DuplicateField(field)
    }
}

/// Name what was found without quoting strings (they may be secrets).
fn describe_unexpected(unexpected: &Unexpected<'_>) -> String {
    match unexpected {
        Unexpected::Bool(flag) => format!("boolean `{flag}`"),
        Unexpected::Unsigned(number) => format!("integer `{number}`"),
        Unexpected::Signed(number) => format!("integer `{number}`"),
        Unexpected::Float(number) => format!("float `{number}`"),
        Unexpected::Char(_) | Unexpected::Str(_) => "a string".to_string(),
        Unexpected::Bytes(_) => "bytes".to_string(),
        Unexpected::Unit => "null".to_string(),
        Unexpected::Option => "an optional value".to_string(),
        Unexpected::NewtypeStruct => "a value".to_string(),
        Unexpected::Seq => "an array".to_string(),
        Unexpected::Map => "a table".to_string(),
        Unexpected::Enum | Unexpected::UnitVariant => "a string".to_string(),
        Unexpected::NewtypeVariant | Unexpected::TupleVariant | Unexpected::StructVariant => {
            "a table".to_string()
        }
        Unexpected::Other(other) => (*other).to_string(),
    }
}

/// serde's "struct FooTable" and "u32" in config words.
fn describe_expected(expected: &dyn Expected) -> String {
    let text = expected.to_string();
    match text.as_str() {
        "a sequence" => "an array".to_string(),
        "a map" => "a table".to_string(),
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer".to_string(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer".to_string(),
        "f32" | "f64" => "a number".to_string(),
        "a borrowed string" => "a string".to_string(),
        _ if text.starts_with("struct ") || text.starts_with("map ") => "a table".to_string(),
        _ => text,
    }
}

/// Reads one node; `path` is where it sits in the file.
pub(crate) struct NodeDeserializer<'a> {
    node: &'a Node<'a>,
    path: KeyPath,
    collector: &'a Collector,
    /// Set for the table of a `kind`-tagged item: its `kind` key is skipped (it chose the type
    /// being read) and named in unknown-field messages.
    tag: Option<Tag<'a>>,
}

impl<'a> NodeDeserializer<'a> {
    pub(crate) fn new(node: &'a Node<'a>, path: KeyPath, collector: &'a Collector) -> Self {
        NodeDeserializer {
            node,
            path,
            collector,
            tag: None,
        }
    }

    fn visit_table<'de, V: Visitor<'de>>(
        self,
        entries: &'a [Entry<'a>],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let mut access = TableAccess {
            entries: entries.iter(),
            path: self.path,
            collector: self.collector,
            current: None,
            failed: Vec::new(),
            suggested: Vec::new(),
            tag: self.tag,
        };
        match visitor.visit_map(&mut access) {
            // The key is there with a bad value, or misspelt with the right name suggested:
            // either way it is already reported.
            Err(DeError::MissingField(field))
                if access.failed.contains(&field) || access.suggested.contains(&field) =>
            {
                Err(DeError::Reported)
            }
            result => result,
        }
    }
}

impl<'a> NodeDeserializer<'a> {
    /// A table whose `kind` key says which variant (provider) it is; the variant's type reads
    /// the rest of the table.
    fn visit_tagged<'de, V: Visitor<'de>>(
        self,
        noun: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let NodeKind::Table(entries) = &self.node.kind else {
            return Err(DeError::InvalidType {
                found: self.node.describe().to_string(),
                expected: "a table".to_string(),
            });
        };
        let Some(kind) = entries.iter().find(|entry| entry.key == "kind") else {
            return Err(DeError::MissingField("kind"));
        };
        let NodeKind::String(kind) = &kind.value.kind else {
            self.collector.value_error(
                &self.path.key("kind"),
                DeError::InvalidType {
                    found: kind.value.describe().to_string(),
                    expected: format!("one of {}", list(variants.iter())),
                },
            );
            return Err(DeError::Reported);
        };
        visitor.visit_enum(TaggedAccess {
            deserializer: NodeDeserializer {
                tag: Some(Tag { noun, kind }),
                ..self
            },
            kind,
        })
    }
}

/// The variant (from `kind`) and content (the rest of the table) of a `kind`-tagged table.
struct TaggedAccess<'a> {
    deserializer: NodeDeserializer<'a>,
    kind: &'a str,
}

impl<'de, 'a> de::EnumAccess<'de> for TaggedAccess<'a> {
    type Error = DeError;
    type Variant = NodeDeserializer<'a>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), DeError> {
        let kind: StrDeserializer<'_, DeError> = self.kind.into_deserializer();
        match seed.deserialize(kind) {
            Ok(variant) => Ok((variant, self.deserializer)),
            Err(error) => {
                let path = self.deserializer.path.key("kind");
                self.deserializer.collector.value_error(&path, error);
                Err(DeError::Reported)
            }
        }
    }
}

impl<'de> de::VariantAccess<'de> for NodeDeserializer<'_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Err(DeError::Message("a tagged table has settings".to_string()))
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, DeError> {
        Err(DeError::Message(
            "a tagged table has named settings".to_string(),
        ))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_any(self, visitor)
    }
}

impl<'de> de::Deserializer<'de> for NodeDeserializer<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            NodeKind::Table(entries) => self.visit_table(entries, visitor),
            NodeKind::Array(items) => visitor.visit_seq(ArrayAccess {
                items: items.iter().enumerate(),
                path: self.path,
                collector: self.collector,
            }),
            NodeKind::String(text) => visitor.visit_str(text),
            NodeKind::Datetime(text) => visitor.visit_str(text),
            NodeKind::Integer(number) => visitor.visit_i64(*number),
            NodeKind::Float(number) => visitor.visit_f64(*number),
            NodeKind::Bool(flag) => visitor.visit_bool(*flag),
            NodeKind::Null => visitor.visit_unit(),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.kind {
            NodeKind::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if let Some(noun) = name.strip_prefix(KIND_TAGGED_OR_NAME) {
            if let NodeKind::String(text) = &self.node.kind {
                return visitor.visit_str(text);
            }
            return self.visit_tagged(noun, variants, visitor);
        }
        if let Some(noun) = name.strip_prefix(KIND_TAGGED) {
            return self.visit_tagged(noun, variants, visitor);
        }
        match &self.node.kind {
            NodeKind::String(text) => {
                let deserializer: StrDeserializer<'_, DeError> = (&**text).into_deserializer();
                visitor.visit_enum(deserializer)
            }
            _ => Err(DeError::InvalidType {
                found: self.node.describe().to_string(),
                expected: format!("one of {}", list(variants.iter())),
            }),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

/// The entries of a table, with every bad key or value recorded and skipped.
struct TableAccess<'a> {
    entries: std::slice::Iter<'a, Entry<'a>>,
    path: KeyPath,
    collector: &'a Collector,
    current: Option<&'a Entry<'a>>,
    /// Keys whose value failed, so their "missing" is not reported again.
    failed: Vec<&'a str>,
    /// Fields suggested for unknown keys ("did you mean"), likewise not reported as missing.
    suggested: Vec<&'static str>,
    /// Set in a `kind`-tagged table: `kind` is skipped, and named in unknown-field messages.
    tag: Option<Tag<'a>>,
}

impl<'a> TableAccess<'a> {
    fn take_current(&mut self) -> Result<(&'a Entry<'a>, KeyPath), DeError> {
        let entry = self
            .current
            .take()
            .ok_or_else(|| DeError::Message("value read before its key".to_string()))?;
        Ok((entry, self.path.key(&entry.key)))
    }
}

impl<'de> MapAccess<'de> for TableAccess<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let tagged = self.tag.is_some();
        let Some(entry) = self.entries.find(|entry| !(tagged && entry.key == "kind")) else {
            return Ok(None);
        };
        self.current = Some(entry);
        let deserializer: StrDeserializer<'_, DeError> = (&*entry.key).into_deserializer();
        let tag = self.tag;
        seed.deserialize(deserializer).map(Some).map_err(|error| {
            self.collector.key_error(&self.path, &entry.key, error, tag);
            DeError::Reported
        })
    }

    fn next_key<K: Deserialize<'de>>(&mut self) -> Result<Option<K>, DeError> {
        for entry in self.entries.by_ref() {
            if self.tag.is_some() && entry.key == "kind" {
                continue;
            }
            let deserializer: StrDeserializer<'_, DeError> = (&*entry.key).into_deserializer();
            match K::deserialize(deserializer) {
                Ok(key) => {
                    self.current = Some(entry);
                    return Ok(Some(key));
                }
                Err(error) => {
                    if let DeError::UnknownField { field, expected } = &error {
                        self.suggested
                            .extend(super::report::nearest(field, expected.iter().copied()));
                    }
                    self.collector
                        .key_error(&self.path, &entry.key, error, self.tag);
                }
            }
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (entry, path) = self.take_current()?;
        seed.deserialize(NodeDeserializer::new(
            &entry.value,
            path.clone(),
            self.collector,
        ))
        .map_err(|error| {
            self.collector.value_error(&path, error);
            DeError::Reported
        })
    }

    fn next_value<V: Deserialize<'de>>(&mut self) -> Result<V, DeError> {
        let (entry, path) = self.take_current()?;
        match V::deserialize(NodeDeserializer::new(
            &entry.value,
            path.clone(),
            self.collector,
        )) {
            Ok(value) => Ok(value),
            Err(error) => {
                self.collector.value_error(&path, error);
                self.failed.push(&*entry.key);
                // An optional field carries on as absent; anything else stops this table.
                V::deserialize(AbsentDeserializer).map_err(|_| DeError::Reported)
            }
        }
    }

    fn next_entry<K: Deserialize<'de>, V: Deserialize<'de>>(
        &mut self,
    ) -> Result<Option<(K, V)>, DeError> {
        while let Some(key) = self.next_key::<K>()? {
            let (entry, path) = self.take_current()?;
            match V::deserialize(NodeDeserializer::new(
                &entry.value,
                path.clone(),
                self.collector,
            )) {
                Ok(value) => return Ok(Some((key, value))),
                Err(error) => self.collector.value_error(&path, error),
            }
        }
        Ok(None)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// The items of an array, with every bad item recorded and left out.
struct ArrayAccess<'a> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Node<'a>>>,
    path: KeyPath,
    collector: &'a Collector,
}

impl<'de> SeqAccess<'de> for ArrayAccess<'_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some((index, item)) = self.items.next() else {
            return Ok(None);
        };
        let path = self.path.index(index);
        seed.deserialize(NodeDeserializer::new(item, path.clone(), self.collector))
            .map(Some)
            .map_err(|error| {
                self.collector.value_error(&path, error);
                DeError::Reported
            })
    }

    fn next_element<T: Deserialize<'de>>(&mut self) -> Result<Option<T>, DeError> {
        for (index, item) in self.items.by_ref() {
            let path = self.path.index(index);
            match T::deserialize(NodeDeserializer::new(item, path.clone(), self.collector)) {
                Ok(value) => return Ok(Some(value)),
                Err(error) => self.collector.value_error(&path, error),
            }
        }
        Ok(None)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// Stands in for a value that failed: `None` for options, an error for anything else.
struct AbsentDeserializer;

impl<'de> de::Deserializer<'de> for AbsentDeserializer {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, DeError> {
        Err(DeError::Reported)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_none()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple tuple_struct map struct
        enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;
    use crate::config::report::Place;
    use crate::config::tree::{parse, Syntax};
    use crate::config::Source;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        name: String,
        size: Option<u32>,
        tags: Option<Vec<String>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        item: BTreeMap<String, Item>,
    }

    fn read(text: &str) -> (Option<File>, Vec<Finding>) {
        let source = Source {
            path: "/c/a.toml".into(),
            text: text.to_string(),
        };
        let mut findings = Vec::new();
        let root = parse(&source, Syntax::Toml, 0, &mut findings);
        assert!(findings.is_empty(), "{findings:?}");
        let root = root.unwrap_or_else(|| panic!("no tree"));
        let collector = Collector::new(0);
        let file = deserialize::<File>(&root, &collector);
        (file, collector.into_findings())
    }

    #[test]
    fn collects_every_error_and_keeps_going() {
        let (file, findings) = read(
            "[item.a]\nname = \"x\"\nsize = \"big\"\nnmae = 1\ntags = [\"a\", 5, \"c\"]\n\n[item.b]\nsize = 3\n\n[item.c]\nname = \"ok\"\n",
        );
        let keys: Vec<(&str, &str)> = findings
            .iter()
            .map(|finding| (finding.key.as_str(), finding.message.as_str()))
            .collect();
        assert!(keys.contains(&(
            "item.a.size",
            "expected a non-negative integer, found a string"
        )));
        assert!(keys.contains(&("item.a.nmae", "unknown field `nmae`")));
        assert!(keys.contains(&("item.a.tags[1]", "expected a string, found integer `5`")));
        assert!(keys.contains(&("item.b.name", "missing required key `name`")));
        assert_eq!(findings.len(), 4, "{findings:?}");
        let nmae = findings
            .iter()
            .find(|finding| finding.key == "item.a.nmae")
            .unwrap_or_else(|| panic!("no finding"));
        assert_eq!(nmae.hint.as_deref(), Some("did you mean `name`?"));
        assert!(matches!(
            nmae.place,
            Place::Path {
                anchor: Anchor::Key,
                ..
            }
        ));
        let file = file.unwrap_or_else(|| panic!("file dropped"));
        let c = file.item.get("c").unwrap_or_else(|| panic!("no item `c`"));
        assert_eq!(
            (c.name.as_str(), c.size, c.tags.as_ref()),
            ("ok", None, None)
        );
        let a = file.item.get("a").unwrap_or_else(|| panic!("no item `a`"));
        assert_eq!(
            a.tags.as_deref(),
            Some(&["a".to_string(), "c".to_string()][..])
        );
    }
}
