//! A YAML document as a tree of nodes that remember where they came from.
//!
//! Every later error (an unknown key, a bad duration, a pipeline naming an undefined
//! component) points at a file, line and column, so the tree keeps a [`Location`] on
//! every node. Anchors and aliases are resolved while loading; merge keys (`<<`) are
//! not part of the collector's language and are rejected.

use std::fmt;
use std::sync::Arc;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError};

/// Where a node starts: the file, 1-based line and 1-based column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: Arc<str>,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    /// `~`, `null` or an empty value.
    Null,
    /// A scalar as written; `quoted` is true for quoted and block scalars, which are
    /// always strings, never numbers or booleans.
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    /// Keys are scalars; duplicates are rejected while loading.
    Map(Vec<(Node, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub location: Location,
}

impl Node {
    pub fn empty_map(location: Location) -> Node {
        Node { kind: NodeKind::Map(Vec::new()), location }
    }

    /// The text of a scalar key or value.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            NodeKind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Seq(items) => Some(items),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.kind, NodeKind::Null)
    }

    /// The value under `key` in a map.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
    }

    /// A short name of the node's kind for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            NodeKind::Null => "null",
            NodeKind::Scalar { .. } => "a scalar",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a map",
        }
    }

    /// A digest of what the node says, not where: map keys in any order, locations
    /// ignored. Two configs of a component with the same digest behave the same, so a
    /// reload keeps that component running.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut canonical = Vec::new();
        self.canonical(&mut canonical);
        Fingerprint::of(&canonical)
    }

    fn canonical(&self, out: &mut Vec<u8>) {
        match &self.kind {
            NodeKind::Null => out.push(b'~'),
            NodeKind::Scalar { text, quoted } => {
                out.push(if *quoted { b'"' } else { b'\'' });
                out.extend_from_slice(&(text.len() as u64).to_le_bytes());
                out.extend_from_slice(text.as_bytes());
            }
            NodeKind::Seq(items) => {
                out.push(b'[');
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for item in items {
                    item.canonical(out);
                }
            }
            NodeKind::Map(entries) => {
                let mut sorted: Vec<&(Node, Node)> = entries.iter().collect();
                sorted.sort_by(|a, b| a.0.as_str().cmp(&b.0.as_str()));
                out.push(b'{');
                out.extend_from_slice(&(sorted.len() as u64).to_le_bytes());
                for (key, value) in sorted {
                    key.canonical(out);
                    value.canonical(out);
                }
            }
        }
    }

    /// The node as block YAML, with the value of every key that `secret` names shown
    /// as `<masked>` (for `GET /-/config`).
    pub fn to_yaml(&self, secret: &dyn Fn(&str) -> bool) -> String {
        let mut out = String::new();
        self.write_yaml(&mut out, 0, secret);
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out
    }

    fn write_yaml(&self, out: &mut String, indent: usize, secret: &dyn Fn(&str) -> bool) {
        let pad = "  ".repeat(indent);
        match &self.kind {
            NodeKind::Map(entries) if !entries.is_empty() => {
                for (key, value) in entries {
                    let name = key.as_str().unwrap_or_default();
                    out.push_str(&pad);
                    out.push_str(&yaml_scalar(name, false));
                    out.push(':');
                    if secret(name) && !value.is_null() {
                        out.push_str(" <masked>\n");
                    } else {
                        value.write_value(out, indent, secret);
                    }
                }
            }
            NodeKind::Seq(items) if !items.is_empty() => {
                for item in items {
                    out.push_str(&pad);
                    out.push('-');
                    match &item.kind {
                        NodeKind::Map(entries) if !entries.is_empty() => {
                            // The first key on the dash's line, the rest below it.
                            let mut nested = String::new();
                            item.write_yaml(&mut nested, indent + 1, secret);
                            out.push(' ');
                            out.push_str(nested.trim_start());
                        }
                        _ => item.write_value(out, indent, secret),
                    }
                }
            }
            _ => {
                self.write_value(out, indent, secret);
            }
        }
    }

    /// After `key:` or `-`: a scalar on the same line, a collection on the next ones.
    fn write_value(&self, out: &mut String, indent: usize, secret: &dyn Fn(&str) -> bool) {
        match &self.kind {
            NodeKind::Null => out.push_str(" null\n"),
            NodeKind::Scalar { text, quoted } => {
                out.push(' ');
                out.push_str(&yaml_scalar(text, *quoted));
                out.push('\n');
            }
            NodeKind::Map(entries) if entries.is_empty() => out.push_str(" {}\n"),
            NodeKind::Seq(items) if items.is_empty() => out.push_str(" []\n"),
            _ => {
                out.push('\n');
                self.write_yaml(out, indent + 1, secret);
            }
        }
    }

    /// Deep-merges `other` into `self`: maps merge key by key, anything else is replaced.
    /// This is how several `--config` files combine, later ones winning.
    pub fn merge(&mut self, other: Node) {
        match (&mut self.kind, other.kind) {
            (NodeKind::Map(mine), NodeKind::Map(theirs)) => {
                for (key, value) in theirs {
                    match mine.iter_mut().find(|(k, _)| k.as_str() == key.as_str()) {
                        Some((_, existing)) => existing.merge(value),
                        None => mine.push((key, value)),
                    }
                }
            }
            (_, kind) => {
                self.kind = kind;
                self.location = other.location;
            }
        }
    }
}

/// A scalar as YAML reads it back the same: plain when that is safe, else quoted
/// (JSON's escapes are YAML's).
fn yaml_scalar(text: &str, quoted: bool) -> String {
    let plain_safe = !text.is_empty()
        && !text.starts_with(|c: char| " -?:,[]{}#&*!|>'\"%@`~".contains(c))
        && !text.ends_with(' ')
        && !text.contains(": ")
        && !text.contains(" #")
        && !text.contains(|c: char| c.is_control());
    if plain_safe && !quoted { text.to_string() } else { serde_json::to_string(text).unwrap_or_default() }
}

/// A SHA-256 digest, short enough to show (`GET /-/config`, the config hash metric).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of(bytes: &[u8]) -> Fingerprint {
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
        let mut out = [0; 32];
        out.copy_from_slice(digest.as_ref());
        Fingerprint(out)
    }

    /// Combines digests, in order.
    pub fn chain(parts: &[Fingerprint]) -> Fingerprint {
        let bytes: Vec<u8> = parts.iter().flat_map(|p| p.0).collect();
        Fingerprint::of(&bytes)
    }

    /// The first 8 bytes as a number (a gauge's value).
    pub fn short(&self) -> u64 {
        let mut first = [0; 8];
        first.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(first) >> 12
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in &self.0[..12] {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A document that could not be read as YAML.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {message}")]
pub struct YamlError {
    pub location: Location,
    pub message: String,
}

/// Parses one YAML document. An empty document is an empty map.
pub fn parse(file: &str, text: &str) -> Result<Node, YamlError> {
    let file: Arc<str> = Arc::from(file);
    let mut loader = Loader { file: file.clone(), anchors: Vec::new() };
    let mut parser = Parser::new_from_str(text);
    let mut root: Option<Node> = None;
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|e| loader.scan_error(&e))?;
        match event {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                if root.is_some() {
                    return Err(YamlError {
                        location: loader.location(span.start),
                        message: "a config file holds one YAML document; found a second `---`".into(),
                    });
                }
                let node = loader.node(&mut parser, None)?;
                root = Some(node);
            }
            other => {
                return Err(YamlError {
                    location: loader.location(span.start),
                    message: format!("unexpected YAML event {other:?}"),
                });
            }
        }
    }
    let location = Location { file, line: 1, column: 1 };
    Ok(match root {
        Some(node) if !node.is_null() => node,
        _ => Node::empty_map(location),
    })
}

struct Loader {
    file: Arc<str>,
    /// Anchored nodes by anchor id, for aliases.
    anchors: Vec<(usize, Node)>,
}

/// Deeply nested input must not overflow the stack; no collector config is this deep.
const MAX_DEPTH: usize = 64;

impl Loader {
    fn location(&self, mark: saphyr_parser::Marker) -> Location {
        Location { file: self.file.clone(), line: mark.line(), column: mark.col() + 1 }
    }

    fn scan_error(&self, e: &ScanError) -> YamlError {
        YamlError { location: self.location(*e.marker()), message: e.info().to_string() }
    }

    fn next<'a>(
        &self,
        parser: &mut Parser<'a, saphyr_parser::StrInput<'a>>,
    ) -> Result<(Event<'a>, Location), YamlError> {
        match parser.next_event() {
            Some(Ok((event, span))) => Ok((event, self.location(span.start))),
            Some(Err(e)) => Err(self.scan_error(&e)),
            None => Err(YamlError {
                location: Location { file: self.file.clone(), line: 0, column: 0 },
                message: "unexpected end of document".into(),
            }),
        }
    }

    /// Reads the node that starts with the next event. `first` is an event already taken.
    fn node<'a>(
        &mut self,
        parser: &mut Parser<'a, saphyr_parser::StrInput<'a>>,
        first: Option<(Event<'a>, Location)>,
    ) -> Result<Node, YamlError> {
        self.node_at(parser, first, 0)
    }

    fn node_at<'a>(
        &mut self,
        parser: &mut Parser<'a, saphyr_parser::StrInput<'a>>,
        first: Option<(Event<'a>, Location)>,
        depth: usize,
    ) -> Result<Node, YamlError> {
        let (event, location) = match first {
            Some(taken) => taken,
            None => self.next(parser)?,
        };
        if depth > MAX_DEPTH {
            return Err(YamlError { location, message: format!("nesting deeper than {MAX_DEPTH} levels") });
        }
        let (node, anchor) = match event {
            Event::Scalar(text, style, anchor, _tag) => {
                let quoted = style != ScalarStyle::Plain;
                let is_null = !quoted && matches!(text.as_ref(), "" | "~" | "null" | "Null" | "NULL");
                let kind = if is_null { NodeKind::Null } else { NodeKind::Scalar { text: text.into_owned(), quoted } };
                (Node { kind, location }, anchor)
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (event, at) = self.next(parser)?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node_at(parser, Some((event, at)), depth + 1)?);
                }
                (Node { kind: NodeKind::Seq(items), location }, anchor)
            }
            Event::MappingStart(anchor, _) => {
                let mut entries: Vec<(Node, Node)> = Vec::new();
                loop {
                    let (event, at) = self.next(parser)?;
                    if matches!(event, Event::MappingEnd) {
                        break;
                    }
                    let key = self.node_at(parser, Some((event, at)), depth + 1)?;
                    let Some(key_text) = key.as_str() else {
                        return Err(YamlError {
                            message: format!("a map key must be a scalar, found {}", key.kind_name()),
                            location: key.location,
                        });
                    };
                    if key_text == "<<" {
                        return Err(YamlError {
                            location: key.location,
                            message: "YAML merge keys (`<<`) are not supported; repeat the keys".into(),
                        });
                    }
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.as_str() == Some(key_text)) {
                        return Err(YamlError {
                            location: key.location.clone(),
                            message: format!("duplicate key `{key_text}` (first at {})", first.location),
                        });
                    }
                    let value = self.node_at(parser, None, depth + 1)?;
                    entries.push((key, value));
                }
                (Node { kind: NodeKind::Map(entries), location }, anchor)
            }
            Event::Alias(id) => {
                let Some((_, target)) = self.anchors.iter().rev().find(|(a, _)| *a == id) else {
                    return Err(YamlError { location, message: "alias to an unknown anchor".into() });
                };
                let mut node = target.clone();
                node.location = location;
                return Ok(node);
            }
            other => {
                return Err(YamlError { location, message: format!("unexpected YAML event {other:?}") });
            }
        };
        if anchor != 0 {
            self.anchors.push((anchor, node.clone()));
        }
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_ignores_key_order_and_locations_but_not_values() {
        let a = parse("a.yaml", "x: 1\ny: [a, b]\n").unwrap();
        let b = parse("b.yaml", "\n\ny: [a, b]\nx: 1\n").unwrap();
        let c = parse("c.yaml", "x: 1\ny: [b, a]\n").unwrap();
        let d = parse("d.yaml", "x: \"1\"\ny: [a, b]\n").unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint(), "list order is meaning");
        assert_ne!(a.fingerprint(), d.fingerprint(), "a quoted scalar is a string");
    }

    #[test]
    fn to_yaml_reads_back_the_same_and_masks_secrets() {
        let text = "exporters:\n  otlp:\n    endpoint: \"http://h:4317\"\n    headers:\n      authorization: Bearer x\n    tls: {}\nlist:\n  - name: a\n    value: \": #\"\n  - plain\n  - []\nempty: ~\n";
        let node = parse("a.yaml", text).unwrap();
        let shown = node.to_yaml(&|_| false);
        assert_eq!(parse("b.yaml", &shown).unwrap().fingerprint(), node.fingerprint(), "{shown}");
        let masked = node.to_yaml(&|key| key == "authorization");
        assert!(masked.contains("authorization: <masked>"), "{masked}");
        assert!(!masked.contains("Bearer"), "{masked}");
    }

    #[test]
    fn locations_are_one_based() {
        let node = parse("a.yaml", "receivers:\n  otlp:\n    protocols: {}\n").unwrap();
        let receivers = node.get("receivers").unwrap();
        assert_eq!(receivers.location.line, 2);
        assert_eq!(receivers.location.column, 3);
        let (key, _) = &receivers.as_map().unwrap()[0];
        assert_eq!(key.location.to_string(), "a.yaml:2:3");
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse("a.yaml", "a: 1\na: 2\n").unwrap_err();
        assert!(err.to_string().starts_with("a.yaml:2:1: duplicate key `a`"), "{err}");
    }

    #[test]
    fn merge_later_wins_and_maps_combine() {
        let mut a = parse("a", "x: {p: 1, q: 2}\nl: [1, 2]\n").unwrap();
        let b = parse("b", "x: {q: 3}\nl: [9]\n").unwrap();
        a.merge(b);
        let x = a.get("x").unwrap();
        assert_eq!(x.get("p").unwrap().as_str(), Some("1"));
        assert_eq!(x.get("q").unwrap().as_str(), Some("3"));
        assert_eq!(x.get("q").unwrap().location.file.as_ref(), "b");
        assert!(matches!(&a.get("l").unwrap().kind, NodeKind::Seq(items) if items.len() == 1));
    }

    #[test]
    fn empty_document_is_empty_map() {
        assert_eq!(parse("a", "").unwrap().as_map().map(|m| m.len()), Some(0));
        assert_eq!(parse("a", "# only a comment\n").unwrap().as_map().map(|m| m.len()), Some(0));
    }

    #[test]
    fn aliases_resolve() {
        let node = parse("a", "a: &x {k: v}\nb: *x\n").unwrap();
        assert_eq!(node.get("b").unwrap().get("k").unwrap().as_str(), Some("v"));
    }
}
