//! One parsed configuration file as a plain tree of nodes, whichever its syntax.
//!
//! TOML and YAML both become a `Node` tree, so the typed layer (`de`) and the validation
//! (`validate`) see one shape. The tree also answers "where in the file is this key?": TOML
//! through the parser's spans, YAML by asking the YAML parser again (`locate`). Syntax errors
//! become findings here. Performs no I/O.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::path::Path as FsPath;
use std::rc::Rc;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::locate::{self, ItemIndex, Target};

mod chunked;
use super::report::{Finding, Place};
use super::Source;

/// The syntax of a configuration file, chosen by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Syntax {
    Toml,
    Yaml,
}

impl Syntax {
    /// `.yaml`/`.yml` files are YAML, everything else TOML.
    pub(crate) fn of(path: &FsPath) -> Syntax {
        match path.extension().and_then(|extension| extension.to_str()) {
            Some(extension)
                if extension.eq_ignore_ascii_case("yaml")
                    || extension.eq_ignore_ascii_case("yml") =>
            {
                Syntax::Yaml
            }
            _ => Syntax::Toml,
        }
    }
}

/// A value of the file, with the byte offset where it starts (TOML only). Strings borrow the
/// file's text where the TOML parser could (no escapes), so a large file is not copied again.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node<'a> {
    pub(crate) kind: NodeKind<'a>,
    pub(crate) offset: Option<usize>,
    /// For large tables, each key's first position in the entries, so that looking a key up
    /// costs the same in a table of 40 000 certificates as in one of 4.
    #[expect(
        clippy::box_collection,
        reason = "almost no node has an index: a box keeps every node 40 bytes smaller"
    )]
    keys: Option<Box<HashMap<Cow<'a, str>, usize>>>,
}

/// Tables with more entries than this get a key index.
const INDEXED_TABLE: usize = 16;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NodeKind<'a> {
    Table(Vec<Entry<'a>>),
    Array(Vec<Node<'a>>),
    String(Cow<'a, str>),
    /// A TOML date or date-time, in its TOML spelling.
    Datetime(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
    Null,
}

/// One `key = value` of a table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry<'a> {
    pub(crate) key: Cow<'a, str>,
    pub(crate) key_offset: Option<usize>,
    pub(crate) value: Node<'a>,
}

impl<'a> Node<'a> {
    fn new(kind: NodeKind<'a>, offset: Option<usize>) -> Self {
        let keys = match &kind {
            NodeKind::Table(entries) if entries.len() > INDEXED_TABLE => {
                let mut keys = HashMap::with_capacity(entries.len());
                for (position, entry) in entries.iter().enumerate() {
                    keys.entry(entry.key.clone()).or_insert(position);
                }
                Some(Box::new(keys))
            }
            _ => None,
        };
        Node { kind, offset, keys }
    }

    /// The entries of a table; empty for anything else.
    pub(crate) fn entries(&self) -> &[Entry<'a>] {
        match &self.kind {
            NodeKind::Table(entries) => entries,
            _ => &[],
        }
    }

    /// The entry `key` of a table.
    pub(crate) fn entry(&self, key: &str) -> Option<&Entry<'a>> {
        match &self.keys {
            Some(keys) => keys
                .get(key)
                .and_then(|position| self.entries().get(*position)),
            None => self.entries().iter().find(|entry| entry.key == key),
        }
    }

    /// The node at `segments` below this one.
    pub(crate) fn at(&self, segments: &[Segment]) -> Option<&Node<'a>> {
        let mut node = self;
        for segment in segments {
            node = match (segment, &node.kind) {
                (Segment::Key(key), NodeKind::Table(_)) => &node.entry(key)?.value,
                (Segment::Index(index), NodeKind::Array(items)) => items.get(*index)?,
                _ => return None,
            };
        }
        Some(node)
    }

    fn is_container(&self) -> bool {
        matches!(self.kind, NodeKind::Table(_) | NodeKind::Array(_))
    }

    /// How the value is named in messages: `a table`, `an integer`, ...
    pub(crate) fn describe(&self) -> &'static str {
        match self.kind {
            NodeKind::Table(_) => "a table",
            NodeKind::Array(_) => "an array",
            NodeKind::String(_) => "a string",
            NodeKind::Datetime(_) => "a date",
            NodeKind::Integer(_) => "an integer",
            NodeKind::Float(_) => "a float",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Null => "null",
        }
    }
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
}

/// A dotted key path such as `certificate.web.sans[1]`.
///
/// Every table entry and array item read gets one, error or not, so a path is a shared link to
/// its parent: extending one costs one small allocation and cloning one none, whatever its
/// depth (a path of its own segments made a 10,000-certificate file spend a tenth of its
/// loading time copying paths).
#[derive(Clone, Default)]
pub(crate) struct KeyPath(Option<Rc<Link>>);

/// The last segment of a path, and the path before it.
struct Link {
    parent: KeyPath,
    segment: Segment,
    /// Segments in the path up to and including this one.
    depth: usize,
}

impl KeyPath {
    pub(crate) fn root() -> Self {
        KeyPath(None)
    }

    fn child(&self, segment: Segment) -> Self {
        KeyPath(Some(Rc::new(Link {
            parent: self.clone(),
            segment,
            depth: self.depth() + 1,
        })))
    }

    pub(crate) fn key(&self, key: &str) -> Self {
        self.child(Segment::Key(key.to_string()))
    }

    pub(crate) fn index(&self, index: usize) -> Self {
        self.child(Segment::Index(index))
    }

    fn depth(&self) -> usize {
        self.0.as_ref().map_or(0, |link| link.depth)
    }

    /// The links from the last segment to the first.
    fn links(&self) -> impl Iterator<Item = &Link> {
        std::iter::successors(self.0.as_deref(), |link| link.parent.0.as_deref())
    }

    /// The segments, first to last.
    pub(crate) fn segments(&self) -> Vec<Segment> {
        self.segment_refs().into_iter().cloned().collect()
    }

    /// The segments, first to last, borrowed.
    fn segment_refs(&self) -> Vec<&Segment> {
        let mut segments: Vec<&Segment> = self.links().map(|link| &link.segment).collect();
        segments.reverse();
        segments
    }

    pub(crate) fn is_root(&self) -> bool {
        self.0.is_none()
    }

    /// The first two segments (`certificate.web`), which name a top-level item.
    pub(crate) fn item(&self) -> Option<(&str, &str)> {
        let mut first = None;
        let mut second = None;
        for link in self.links() {
            match link.depth {
                1 => first = Some(&link.segment),
                2 => second = Some(&link.segment),
                _ => {}
            }
        }
        match (first?, second?) {
            (Segment::Key(section), Segment::Key(name)) => Some((section, name)),
            _ => None,
        }
    }
}

impl PartialEq for KeyPath {
    fn eq(&self, other: &Self) -> bool {
        self.depth() == other.depth()
            && self
                .links()
                .zip(other.links())
                .all(|(left, right)| left.segment == right.segment)
    }
}

impl Eq for KeyPath {}

impl PartialOrd for KeyPath {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for KeyPath {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.segment_refs().cmp(&other.segment_refs())
    }
}

impl fmt::Debug for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPath({self})")
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.segments().iter().enumerate() {
            match segment {
                Segment::Key(key) => {
                    if position > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !key.is_empty()
                        && key
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if bare {
                        f.write_str(key)?;
                    } else {
                        write!(f, "{key:?}")?;
                    }
                }
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// What of a key path a location points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anchor {
    /// The key itself (`comon_name` in `comon_name = "x"`).
    Key,
    /// The value; for tables, where the table is introduced (its `[header]` or its key).
    Value,
}

/// Parse one file into a tree; syntax errors become findings and yield `None`.
pub(crate) fn parse<'a>(
    source: &'a Source,
    syntax: Syntax,
    file: usize,
    findings: &mut Vec<Finding>,
) -> Option<Node<'a>> {
    match syntax {
        Syntax::Toml => parse_toml(&source.text, file, findings),
        Syntax::Yaml => parse_yaml(&source.text, file, findings),
    }
}

fn parse_toml<'a>(text: &'a str, file: usize, findings: &mut Vec<Finding>) -> Option<Node<'a>> {
    // A large file of certificates is parsed in pieces (`chunked`), which gives the same tree;
    // anything it is not sure of, an error included, is parsed whole below.
    if let Some(root) = chunked::parse(text) {
        return Some(root);
    }
    let (table, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        let lines = LineIndex::new(text);
        for error in errors {
            let offset = error.span().map(|span| span.start).unwrap_or(0);
            let (line, column) = lines.position(text, offset);
            findings.push(Finding::syntax(
                file,
                line,
                column,
                format!("invalid TOML: {}", error.message().trim_end_matches('.')),
            ));
        }
        return None;
    }
    let span = table.span();
    let mut problems = Vec::new();
    let root = toml_node(
        Spanned::new(span, DeValue::Table(table.into_inner())),
        0,
        0,
        &mut problems,
    );
    if problems.is_empty() {
        return Some(root);
    }
    let lines = LineIndex::new(text);
    for (offset, message) in problems {
        let (line, column) = lines.position(text, offset);
        findings.push(Finding::syntax(file, line, column, message));
    }
    None
}

/// The node of a parsed value, taking its strings over rather than copying them. `base`: where
/// the parsed text starts in the file (a piece of it, `chunked`), added to every offset.
fn toml_node<'a>(
    value: Spanned<DeValue<'a>>,
    base: usize,
    depth: usize,
    problems: &mut Vec<(usize, String)>,
) -> Node<'a> {
    let offset = base + value.span().start;
    if depth > MAX_DEPTH {
        problems.push((offset, too_deep("TOML")));
        return Node::new(NodeKind::Null, Some(offset));
    }
    let kind = match value.into_inner() {
        DeValue::String(text) => NodeKind::String(text),
        DeValue::Integer(integer) => match i64::from_str_radix(integer.as_str(), integer.radix()) {
            Ok(number) => NodeKind::Integer(number),
            Err(_) => {
                problems.push((offset, "invalid TOML: integer out of range".to_string()));
                NodeKind::Null
            }
        },
        DeValue::Float(float) => match float.as_str().parse::<f64>() {
            Ok(number) => NodeKind::Float(number),
            Err(_) => {
                problems.push((offset, "invalid TOML: invalid float".to_string()));
                NodeKind::Null
            }
        },
        DeValue::Boolean(flag) => NodeKind::Bool(flag),
        DeValue::Datetime(datetime) => NodeKind::Datetime(datetime.to_string()),
        // Sized exactly: the parser's iterators give no length, and a `collect` would leave
        // room for four (at 10,000 certificates ~90,000 empty slots, ~6 MB of the tree).
        DeValue::Array(array) => {
            let mut items = Vec::with_capacity(array.len());
            items.extend(
                array
                    .into_iter()
                    .map(|item| toml_node(item, base, depth + 1, problems)),
            );
            NodeKind::Array(items)
        }
        DeValue::Table(table) => {
            let mut entries = Vec::with_capacity(table.len());
            entries.extend(table.into_iter().map(|(key, value)| Entry {
                key_offset: Some(base + key.span().start),
                key: key.into_inner(),
                value: toml_node(value, base, depth + 1, problems),
            }));
            NodeKind::Table(entries)
        }
    };
    Node::new(kind, Some(offset))
}

pub(crate) fn parse_yaml(
    text: &str,
    file: usize,
    findings: &mut Vec<Finding>,
) -> Option<Node<'static>> {
    // The YAML parser slows down steeply with the depth of flow collections (`[[[[...`): refuse
    // a deep document before parsing it.
    if let Some(offset) = yaml_flow_too_deep(text) {
        let (line, column) = LineIndex::new(text).position(text, offset);
        findings.push(Finding::syntax(file, line, column, too_deep("YAML")));
        return None;
    }
    let parsed = serde_yaml::from_str::<serde_yaml::Value>(text).and_then(|mut value| {
        value.apply_merge()?;
        Ok(value)
    });
    let value = match parsed {
        Ok(value) => value,
        Err(error) => {
            let (line, column) = error
                .location()
                .map(|location| (location.line(), location.column()))
                .unwrap_or((1, 1));
            findings.push(Finding::syntax(
                file,
                line,
                column,
                format!("invalid YAML: {}", yaml_message(&error.to_string())),
            ));
            return None;
        }
    };
    let mut problems = Vec::new();
    let root = match value {
        serde_yaml::Value::Null => Node::new(NodeKind::Table(Vec::new()), None),
        value => yaml_node(value, 0, &mut problems),
    };
    if let Some(problem) = problems.into_iter().next() {
        findings.push(Finding::syntax(file, 1, 1, problem));
        return None;
    }
    Some(root)
}

/// How deeply tables and arrays may nest in a file. certform's own schema needs 5 levels
/// (`certificate.web.deploy[0].dir`); the rest is slack for anchors and style, not for documents
/// built to make the parser slow.
pub(crate) const MAX_DEPTH: usize = 32;

fn too_deep(syntax: &str) -> String {
    format!("invalid {syntax}: tables and arrays nest deeper than {MAX_DEPTH} levels")
}

/// The byte offset where YAML flow collections (`[`, `{`) first nest deeper than `MAX_DEPTH`,
/// found in one pass without parsing. Quoted scalars and comments are skipped; outside flow
/// collections a bracket counts only where a value can start, so `a: x[1` is not an opener.
fn yaml_flow_too_deep(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut comment = false;
    // The last byte that was not a space or tab on this line, if any.
    let mut previous: Option<u8> = None;
    let mut after_blank = true;
    let bytes = text.as_bytes();
    let mut offset = 0;
    while let Some(&byte) = bytes.get(offset) {
        offset += 1;
        if byte == b'\n' {
            comment = false;
            previous = None;
            after_blank = true;
            continue;
        }
        if comment {
            continue;
        }
        match quote {
            Some(b'\'') => {
                if byte == b'\'' {
                    if bytes.get(offset) == Some(&b'\'') {
                        offset += 1;
                    } else {
                        quote = None;
                    }
                }
                continue;
            }
            Some(_) => {
                if byte == b'\\' {
                    offset += 1;
                } else if byte == b'"' {
                    quote = None;
                }
                continue;
            }
            None => {}
        }
        // Outside flow collections, `[` and `{` open one only where a value starts.
        let value_start = after_blank && matches!(previous, None | Some(b':' | b'-' | b'?' | b','));
        let in_flow_after_indicator = depth > 0 && matches!(previous, Some(b'[' | b'{' | b','));
        match byte {
            b'#' if after_blank => comment = true,
            b'\'' | b'"' if after_blank || in_flow_after_indicator => quote = Some(byte),
            b'[' | b'{' if depth > 0 || value_start => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(offset - 1);
                }
            }
            b']' | b'}' if depth > 0 => depth -= 1,
            _ => {}
        }
        after_blank = matches!(byte, b' ' | b'\t');
        if !after_blank {
            previous = Some(byte);
        }
    }
    None
}

/// serde_yaml's message without its own ` at line L column C` (the diagnostic has its location).
fn yaml_message(message: &str) -> String {
    let Some(start) = message.find(" at line ") else {
        return message.to_string();
    };
    let rest = &message[start + " at line ".len()..];
    let end = rest
        .find(',')
        .map(|comma| start + " at line ".len() + comma)
        .unwrap_or(message.len());
    let mut cleaned = String::with_capacity(message.len());
    cleaned.push_str(&message[..start]);
    cleaned.push_str(&message[end..]);
    cleaned
}

fn yaml_node(value: serde_yaml::Value, depth: usize, problems: &mut Vec<String>) -> Node<'static> {
    if depth > MAX_DEPTH {
        problems.push(too_deep("YAML"));
        return Node::new(NodeKind::Null, None);
    }
    let kind = match value {
        serde_yaml::Value::Null => NodeKind::Null,
        serde_yaml::Value::Bool(flag) => NodeKind::Bool(flag),
        serde_yaml::Value::Number(number) => {
            if let Some(integer) = number.as_i64() {
                NodeKind::Integer(integer)
            } else if number.is_f64() {
                NodeKind::Float(number.as_f64().unwrap_or(f64::NAN))
            } else {
                problems.push(format!("invalid YAML: integer `{number}` out of range"));
                NodeKind::Null
            }
        }
        serde_yaml::Value::String(text) => NodeKind::String(Cow::Owned(text)),
        serde_yaml::Value::Sequence(items) => NodeKind::Array(
            items
                .into_iter()
                .map(|item| yaml_node(item, depth + 1, problems))
                .collect(),
        ),
        serde_yaml::Value::Mapping(mapping) => {
            let mut entries = Vec::with_capacity(mapping.len());
            for (key, value) in mapping {
                let key = match key {
                    serde_yaml::Value::String(text) => text,
                    serde_yaml::Value::Number(number) => number.to_string(),
                    serde_yaml::Value::Bool(flag) => flag.to_string(),
                    _ => {
                        problems.push("invalid YAML: keys must be strings".to_string());
                        continue;
                    }
                };
                entries.push(Entry {
                    key: Cow::Owned(key),
                    key_offset: None,
                    value: yaml_node(value, depth + 1, problems),
                });
            }
            NodeKind::Table(entries)
        }
        serde_yaml::Value::Tagged(tagged) => return yaml_node(tagged.value, depth, problems),
    };
    Node::new(kind, None)
}

/// Byte offsets of line starts, to turn offsets into 1-based line and column.
#[derive(Debug, Clone)]
pub(crate) struct LineIndex {
    starts: Vec<usize>,
    /// Whether each line is plain ASCII, where a column is a byte difference; only the other
    /// lines have their characters counted, so many findings on one long line stay cheap.
    ascii: Vec<bool>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        let mut ascii = Vec::new();
        let mut line_ascii = true;
        for (offset, byte) in text.bytes().enumerate() {
            line_ascii &= byte.is_ascii();
            if byte == b'\n' {
                starts.push(offset + 1);
                ascii.push(line_ascii);
                line_ascii = true;
            }
        }
        ascii.push(line_ascii);
        LineIndex { starts, ascii }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub(crate) fn position(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(text.len());
        let line = self.starts.partition_point(|start| *start <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let column = if self.ascii.get(line - 1).copied().unwrap_or(false) {
            offset - start
        } else {
            text.get(start..offset)
                .map(|prefix| prefix.chars().count())
                .unwrap_or(offset - start)
        };
        (line, column + 1)
    }
}

/// How many YAML re-parses (see `locate`) one file may spend on diagnostics, at most, and how
/// many bytes they may read in all; past that, a diagnostic points at its item instead, which
/// keeps a large file full of errors fast.
const YAML_LOOKUPS: usize = 256;
const YAML_LOOKUP_BYTES: usize = 4_000_000;

/// A parsed file kept for resolving key paths into `line:column`.
#[derive(Debug)]
pub(crate) struct FileText<'a> {
    pub(crate) source: &'a Source,
    pub(crate) syntax: Syntax,
    pub(crate) root: Option<Node<'a>>,
    lines: LineIndex,
    items: ItemIndex,
    lookups_left: Cell<usize>,
}

impl<'a> FileText<'a> {
    pub(crate) fn new(source: &'a Source, syntax: Syntax, root: Option<Node<'a>>) -> Self {
        let items = match (&root, syntax) {
            (Some(root), Syntax::Yaml) => ItemIndex::new(&source.text, root),
            _ => ItemIndex::default(),
        };
        FileText {
            source,
            syntax,
            root,
            lines: LineIndex::new(&source.text),
            items,
            lookups_left: Cell::new(
                (YAML_LOOKUP_BYTES / source.text.len().max(1)).clamp(8, YAML_LOOKUPS),
            ),
        }
    }

    /// Line and column of a place; the nearest enclosing key when the path does not exist.
    pub(crate) fn position(&self, place: &Place) -> (usize, usize) {
        match place {
            Place::At { line, column } => (*line, *column),
            Place::Path { path, anchor } => match self.syntax {
                Syntax::Toml => self.toml_position(path, *anchor),
                Syntax::Yaml => self.yaml_position(path, *anchor),
            },
        }
    }

    fn toml_position(&self, path: &KeyPath, anchor: Anchor) -> (usize, usize) {
        let Some(root) = &self.root else {
            return (1, 1);
        };
        let mut offset = root.offset.unwrap_or(0);
        let mut node = root;
        let segments = path.segment_refs();
        let count = segments.len();
        for (position, segment) in segments.into_iter().enumerate() {
            let last = position + 1 == count;
            match segment {
                Segment::Key(key) => {
                    let Some(entry) = node.entry(key) else {
                        break;
                    };
                    offset = match (last, anchor) {
                        (true, Anchor::Key) => entry.key_offset,
                        _ => entry.value.offset.or(entry.key_offset),
                    }
                    .unwrap_or(offset);
                    node = &entry.value;
                }
                Segment::Index(index) => {
                    let NodeKind::Array(items) = &node.kind else {
                        break;
                    };
                    let Some(item) = items.get(*index) else {
                        break;
                    };
                    offset = item.offset.unwrap_or(offset);
                    node = item;
                }
            }
        }
        self.lines.position(&self.source.text, offset)
    }

    fn yaml_position(&self, path: &KeyPath, anchor: Anchor) -> (usize, usize) {
        let segments = path.segments();
        let segments = segments.as_slice();
        let container = self
            .root
            .as_ref()
            .and_then(|root| root.at(segments))
            .is_some_and(Node::is_container);
        if anchor == Anchor::Key || container {
            if let Some(position) = self.items.key_position(segments) {
                return position;
            }
        }
        self.yaml_search(segments, anchor).unwrap_or_else(|| {
            (1..=segments.len().min(2))
                .rev()
                .find_map(|length| self.items.key_position(&segments[..length]))
                .unwrap_or((1, 1))
        })
    }

    /// Ask the YAML parser (see `locate`); `None` once the lookup budget is spent.
    fn yaml_search(&self, path: &[Segment], anchor: Anchor) -> Option<(usize, usize)> {
        let text = &self.source.text;
        let search = |segments: &[Segment], target: Target| {
            let left = self.lookups_left.get();
            if left == 0 {
                return None;
            }
            self.lookups_left.set(left - 1);
            Some(locate::yaml_position(text, segments, target))
        };
        let mut segments = path;
        let mut target = match anchor {
            Anchor::Key => Target::Key,
            Anchor::Value => Target::Value,
        };
        while !segments.is_empty() {
            let container = self
                .root
                .as_ref()
                .and_then(|root| root.at(segments))
                .is_some_and(Node::is_container);
            if target == Target::Key || container {
                if let Some(position) = self.items.key_position(segments) {
                    return Some(position);
                }
            }
            let ends_with_key = matches!(segments.last(), Some(Segment::Key(_)));
            let target_now = if target == Target::Key && !ends_with_key {
                Target::Value
            } else {
                target
            };
            match search(segments, target_now)? {
                locate::Found::Scalar(line, column) => return Some((line, column)),
                locate::Found::Container(line, column) => {
                    if ends_with_key {
                        if let locate::Found::Scalar(line, column) = search(segments, Target::Key)?
                        {
                            return Some((line, column));
                        }
                    }
                    return Some((line, column));
                }
                locate::Found::Nothing => {}
            }
            segments = &segments[..segments.len() - 1];
            target = Target::Value;
        }
        Some((1, 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table's and list's vector in `node` holds exactly its items.
    fn assert_no_spare_room(node: &Node<'_>) {
        match &node.kind {
            NodeKind::Table(entries) => {
                assert_eq!(entries.capacity(), entries.len(), "a table with spare room");
                entries
                    .iter()
                    .for_each(|entry| assert_no_spare_room(&entry.value));
            }
            NodeKind::Array(items) => {
                assert_eq!(items.capacity(), items.len(), "a list with spare room");
                items.iter().for_each(assert_no_spare_room);
            }
            _ => {}
        }
    }

    #[test]
    fn a_toml_tree_holds_no_spare_room_whole_or_in_pieces() {
        let certificate = |i: usize| {
            format!(
                "\n[certificate.c{i}]\ncommon_name = \"h{i}.example\"\nsans = [\"a{i}.example\"]\n\
                 deploy = [{{ kind = \"files\", dir = \"out/c{i}\" }}]\n"
            )
        };
        let small = format!("[state]\nrepo = \"s\"\n{}", certificate(0));
        // Over the size parsed in pieces (`chunked`).
        let large = format!(
            "[state]\nrepo = \"s\"\n{}",
            (0..4_000).map(certificate).collect::<String>()
        );
        assert!(large.len() > 256 * 1024);
        for text in [small, large] {
            let mut findings = Vec::new();
            let root = parse_toml(&text, 0, &mut findings).expect("parses");
            assert!(findings.is_empty());
            assert_no_spare_room(&root);
        }
    }

    #[test]
    fn key_paths_render_dotted() {
        let path = KeyPath::root()
            .key("certificate")
            .key("web")
            .key("sans")
            .index(1);
        assert_eq!(path.to_string(), "certificate.web.sans[1]");
        assert_eq!(KeyPath::root().key("a.b").to_string(), "\"a.b\"");
        assert_eq!(path.item(), Some(("certificate", "web")));
    }

    #[test]
    fn key_paths_share_their_parents_and_compare_by_segments() {
        let web = KeyPath::root().key("certificate").key("web");
        let sans = web.key("sans");
        let (first, second) = (sans.index(0), sans.index(1));
        // Children of one parent are independent values.
        assert_eq!(first.to_string(), "certificate.web.sans[0]");
        assert_eq!(second.to_string(), "certificate.web.sans[1]");
        assert_eq!(sans.to_string(), "certificate.web.sans");
        assert_eq!(
            first.segments(),
            vec![
                Segment::Key("certificate".to_string()),
                Segment::Key("web".to_string()),
                Segment::Key("sans".to_string()),
                Segment::Index(0),
            ]
        );
        // Equal by segments, however they were built.
        let rebuilt = KeyPath::root()
            .key("certificate")
            .key("web")
            .key("sans")
            .index(1);
        assert_eq!(second, rebuilt);
        assert_ne!(first, second);
        assert_ne!(sans, first);
        assert_ne!(
            KeyPath::root().key("a").key("b"),
            KeyPath::root().key("b").key("b")
        );
        assert!(first < second);
        assert!(sans < first);
        assert!(KeyPath::root().key("a").key("z") < KeyPath::root().key("b"));
        assert_eq!(
            first.cmp(&rebuilt.clone()),
            std::cmp::Ordering::Less,
            "{first:?} {rebuilt:?}"
        );
        // `item` is the first two keys, whatever the depth.
        assert_eq!(first.item(), Some(("certificate", "web")));
        assert_eq!(web.item(), Some(("certificate", "web")));
        assert_eq!(KeyPath::root().key("state").item(), None);
        assert_eq!(KeyPath::root().key("a").index(0).key("b").item(), None);
        assert!(KeyPath::root().is_root());
        assert!(!web.is_root());
        assert_eq!(KeyPath::root().to_string(), "");
    }

    #[test]
    fn line_index_counts_characters() {
        let text = "a\nbü = 1\n";
        let lines = LineIndex::new(text);
        assert_eq!(lines.position(text, 0), (1, 1));
        assert_eq!(lines.position(text, 2), (2, 1));
        assert_eq!(lines.position(text, 5), (2, 3));
        assert_eq!(lines.position(text, 999), (3, 1));
    }

    #[test]
    fn yaml_messages_lose_their_own_location() {
        assert_eq!(
            yaml_message(
                "did not find expected key at line 3 column 1, while parsing a block mapping"
            ),
            "did not find expected key, while parsing a block mapping"
        );
        assert_eq!(yaml_message("plain"), "plain");
    }
}
