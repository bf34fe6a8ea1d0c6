//! Field references of the stanza operators: `body`, `body.user.id`,
//! `attributes.level`, `attributes["k8s.pod.name"]`, `resource.host`, and reading,
//! writing and removing the values they name on an entry.

use std::borrow::Cow;
use std::fmt;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, KeyValueList, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;

/// A log record on its way through the operators, with the resource it will be sent
/// under (its file's, until an operator changes it).
pub struct Entry<'r> {
    pub record: LogRecord,
    pub resource: Cow<'r, [KeyValue]>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Root {
    Body,
    Attributes,
    Resource,
}

/// A parsed field reference: a root and the map keys below it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub root: Root,
    pub path: Vec<String>,
}

impl Field {
    pub const BODY: Field = Field { root: Root::Body, path: Vec::new() };
    pub const ATTRIBUTES: Field = Field { root: Root::Attributes, path: Vec::new() };

    /// Parses a whole field reference. As upstream, a dotted key may hold any
    /// character but `.` and `[` (`attributes.@timestamp`).
    pub fn parse(text: &str) -> Result<Field, String> {
        let (field, used) = Field::scan(text, |c| c != '.' && c != '[')?;
        if used != text.len() {
            return Err(format!("invalid field `{text}`: unexpected `{}`", &text[used..]));
        }
        Ok(field)
    }

    /// Parses a field reference at the start of `text`; returns it and the bytes used.
    /// Used by the expression parser, where a field is followed by other tokens, so
    /// dotted keys are letters, digits, `_` and `-` there.
    pub fn parse_prefix(text: &str) -> Result<(Field, usize), String> {
        Field::scan(text, |c| c.is_alphanumeric() || c == '_' || c == '-')
    }

    fn scan(text: &str, key_char: impl Fn(char) -> bool) -> Result<(Field, usize), String> {
        let name_end = |s: &str| s.find(|c: char| !key_char(c)).unwrap_or(s.len());
        let root_len = text.find(|c: char| !c.is_alphanumeric()).unwrap_or(text.len());
        let root = match &text[..root_len] {
            "body" => Root::Body,
            "attributes" => Root::Attributes,
            "resource" => Root::Resource,
            other => {
                return Err(format!(
                    "invalid field `{text}`: it must start with `body`, `attributes` or `resource`, not `{other}`"
                ));
            }
        };
        let mut path = Vec::new();
        let mut pos = root_len;
        loop {
            let rest = &text[pos..];
            if let Some(after) = rest.strip_prefix('.') {
                let len = name_end(after);
                if len == 0 {
                    return Err(format!("invalid field `{text}`: a key is missing after `.`"));
                }
                path.push(after[..len].to_string());
                pos += 1 + len;
            } else if let Some(after) = rest.strip_prefix('[') {
                let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'');
                let Some(quote) = quote else {
                    return Err(format!(
                        "invalid field `{text}`: a key in brackets must be quoted, as in [\"k8s.pod.name\"]"
                    ));
                };
                let inner = &after[1..];
                let Some(close) = inner.find(quote) else {
                    return Err(format!("invalid field `{text}`: unterminated quoted key"));
                };
                if !inner[close + 1..].starts_with(']') {
                    return Err(format!("invalid field `{text}`: `]` expected after the quoted key"));
                }
                path.push(inner[..close].to_string());
                pos += 1 + 1 + close + 1 + 1;
            } else {
                return Ok((Field { root, path }, pos));
            }
        }
    }

    pub fn is_root(&self) -> bool {
        self.path.is_empty()
    }

    /// The value the field names, if the entry has it. The `attributes` and `resource`
    /// roots are not single values: use [`Field::take`] to get them as a map.
    pub fn get<'e>(&self, entry: &'e Entry<'_>) -> Option<&'e AnyValue> {
        match self.root {
            Root::Body => {
                let body = entry.record.body.as_ref()?;
                match self.path.split_first() {
                    None => Some(body),
                    Some(_) => match &body.value {
                        Some(Value::KvlistValue(map)) => lookup(&map.values, &self.path),
                        _ => None,
                    },
                }
            }
            Root::Attributes => lookup(&entry.record.attributes, &self.path),
            Root::Resource => lookup(&entry.resource, &self.path),
        }
    }

    /// Writes `value` at the field, creating maps on the way. A map written to the
    /// `attributes` or `resource` root is merged into it.
    pub fn set(&self, entry: &mut Entry<'_>, value: AnyValue) -> Result<(), String> {
        match self.root {
            Root::Body => {
                let body = entry.record.body.get_or_insert_with(AnyValue::default);
                if self.path.is_empty() {
                    // A map is merged into a map body; anything else replaces the body.
                    match (&mut body.value, value.value) {
                        (Some(Value::KvlistValue(map)), Some(Value::KvlistValue(new))) => {
                            merge(&mut map.values, new.values)
                        }
                        (slot, new) => *slot = new,
                    }
                    return Ok(());
                }
                match &mut body.value {
                    Some(Value::KvlistValue(map)) => set_in(&mut map.values, &self.path, value),
                    other => {
                        // As upstream: a body that is not a map becomes one.
                        let mut values = Vec::new();
                        set_in(&mut values, &self.path, value);
                        *other = Some(Value::KvlistValue(KeyValueList { values }));
                    }
                }
                Ok(())
            }
            Root::Attributes => set_list(&mut entry.record.attributes, &self.path, value, "attributes"),
            Root::Resource => set_list(entry.resource.to_mut(), &self.path, value, "resource"),
        }
    }

    /// Removes the field and returns its value; a root returns all of it (as a map for
    /// `attributes` and `resource`).
    pub fn take(&self, entry: &mut Entry<'_>) -> Option<AnyValue> {
        match self.root {
            Root::Body => {
                if self.path.is_empty() {
                    return entry.record.body.take();
                }
                match &mut entry.record.body.as_mut()?.value {
                    Some(Value::KvlistValue(map)) => remove_in(&mut map.values, &self.path),
                    _ => None,
                }
            }
            Root::Attributes => take_list(&mut entry.record.attributes, &self.path),
            Root::Resource => {
                if entry.resource.is_empty() {
                    // Nothing to take; the shared resource stays shared.
                    return self.path.is_empty().then(|| map(Vec::new()));
                }
                take_list(entry.resource.to_mut(), &self.path)
            }
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.root {
            Root::Body => "body",
            Root::Attributes => "attributes",
            Root::Resource => "resource",
        })?;
        for key in &self.path {
            if key.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') && !key.is_empty() {
                write!(f, ".{key}")?;
            } else {
                write!(f, "[\"{key}\"]")?;
            }
        }
        Ok(())
    }
}

impl<'de> serde::Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Field, D::Error> {
        let text = String::deserialize(deserializer)?;
        Field::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn lookup<'a>(list: &'a [KeyValue], path: &[String]) -> Option<&'a AnyValue> {
    let (first, rest) = path.split_first()?;
    let value = list.iter().find(|kv| kv.key == *first)?.value.as_ref()?;
    if rest.is_empty() {
        return Some(value);
    }
    match &value.value {
        Some(Value::KvlistValue(map)) => lookup(&map.values, rest),
        _ => None,
    }
}

fn set_in(list: &mut Vec<KeyValue>, path: &[String], value: AnyValue) {
    let Some((first, rest)) = path.split_first() else { return };
    let index = match list.iter().position(|kv| kv.key == *first) {
        Some(i) => i,
        None => {
            list.push(KeyValue { key: first.clone(), value: None, ..Default::default() });
            list.len() - 1
        }
    };
    let slot = &mut list[index].value;
    if rest.is_empty() {
        // As upstream, a map written onto a map is merged into it.
        match (slot.as_mut().and_then(|v| v.value.as_mut()), value.value) {
            (Some(Value::KvlistValue(map)), Some(Value::KvlistValue(new))) => merge(&mut map.values, new.values),
            (_, new) => *slot = Some(AnyValue { value: new }),
        }
        return;
    }
    let inner = slot.get_or_insert_with(AnyValue::default);
    if !matches!(inner.value, Some(Value::KvlistValue(_))) {
        inner.value = Some(Value::KvlistValue(KeyValueList::default()));
    }
    if let Some(Value::KvlistValue(map)) = &mut inner.value {
        set_in(&mut map.values, rest, value);
    }
}

fn set_list(list: &mut Vec<KeyValue>, path: &[String], value: AnyValue, name: &str) -> Result<(), String> {
    if !path.is_empty() {
        set_in(list, path, value);
        return Ok(());
    }
    match value.value {
        Some(Value::KvlistValue(map)) => {
            merge(list, map.values);
            Ok(())
        }
        _ => Err(format!("cannot set {name} to a value that is not a map")),
    }
}

/// Writes `values` into `list`, replacing the values of keys already there. Indexed
/// past a few keys, so a line with thousands of keys stays linear.
pub fn merge(list: &mut Vec<KeyValue>, values: Vec<KeyValue>) {
    if values.len() <= 8 {
        for kv in values {
            match list.iter_mut().find(|old| old.key == kv.key) {
                Some(old) => old.value = kv.value,
                None => list.push(kv),
            }
        }
        return;
    }
    let mut index: std::collections::HashMap<String, usize> =
        list.iter().enumerate().map(|(i, kv)| (kv.key.clone(), i)).collect();
    for kv in values {
        match index.get(&kv.key) {
            Some(&i) => list[i].value = kv.value,
            None => {
                index.insert(kv.key.clone(), list.len());
                list.push(kv);
            }
        }
    }
}

fn remove_in(list: &mut Vec<KeyValue>, path: &[String]) -> Option<AnyValue> {
    let (first, rest) = path.split_first()?;
    let index = list.iter().position(|kv| kv.key == *first)?;
    if rest.is_empty() {
        return Some(list.remove(index).value.unwrap_or_default());
    }
    match &mut list[index].value.as_mut()?.value {
        Some(Value::KvlistValue(map)) => remove_in(&mut map.values, rest),
        _ => None,
    }
}

fn take_list(list: &mut Vec<KeyValue>, path: &[String]) -> Option<AnyValue> {
    if !path.is_empty() {
        return remove_in(list, path);
    }
    Some(AnyValue { value: Some(Value::KvlistValue(KeyValueList { values: std::mem::take(list) })) })
}

/// A string value.
pub fn string(text: impl Into<String>) -> AnyValue {
    AnyValue { value: Some(Value::StringValue(text.into())) }
}

/// A map value.
pub fn map(values: Vec<KeyValue>) -> AnyValue {
    AnyValue { value: Some(Value::KvlistValue(KeyValueList { values })) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(body: &str) -> Entry<'static> {
        Entry { record: LogRecord { body: Some(string(body)), ..Default::default() }, resource: Cow::Borrowed(&[]) }
    }

    #[test]
    fn parses_dotted_and_bracketed_keys() {
        let f = Field::parse("attributes[\"k8s.pod.name\"].x").unwrap();
        assert_eq!(f.root, Root::Attributes);
        assert_eq!(f.path, vec!["k8s.pod.name".to_string(), "x".to_string()]);
        assert_eq!(f.to_string(), "attributes[\"k8s.pod.name\"].x");
        assert_eq!(Field::parse("body.a.b").unwrap().path, vec!["a", "b"]);
        assert_eq!(Field::parse("resource['host.name']").unwrap().path, vec!["host.name"]);
        for bad in ["", "message", "body.", "body[k]", "body[\"k\"", "body[\"k\"]x", "attributes..a"] {
            assert!(Field::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Field::parse_prefix("body.level == \"x\"").unwrap().1, 10);
        // As upstream, dotted keys in config take any character but `.` and `[`.
        assert_eq!(Field::parse("attributes.@timestamp").unwrap().path, vec!["@timestamp"]);
    }

    #[test]
    fn set_get_take_nested_values() {
        let mut e = entry("text");
        let f = Field::parse("body.user.id").unwrap();
        f.set(&mut e, string("42")).unwrap();
        // The string body became a map.
        assert_eq!(f.get(&e), Some(&string("42")));
        Field::parse("attributes.a.b").unwrap().set(&mut e, string("x")).unwrap();
        assert_eq!(Field::parse("attributes.a.b").unwrap().get(&e), Some(&string("x")));
        assert_eq!(Field::parse("attributes.a.b").unwrap().take(&mut e), Some(string("x")));
        assert_eq!(Field::parse("attributes.a.b").unwrap().get(&e), None);
        // A map set on the attributes root merges; anything else is refused.
        let kv = KeyValue { key: "k".into(), value: Some(string("v")), ..Default::default() };
        Field::ATTRIBUTES.set(&mut e, map(vec![kv])).unwrap();
        assert_eq!(Field::parse("attributes.k").unwrap().get(&e), Some(&string("v")));
        assert!(Field::ATTRIBUTES.set(&mut e, string("v")).is_err());
        // The resource is copied only when written.
        let shared = [KeyValue { key: "host".into(), value: Some(string("h1")), ..Default::default() }];
        let mut e = Entry { record: LogRecord::default(), resource: Cow::Borrowed(&shared) };
        assert_eq!(Field::parse("resource.host").unwrap().get(&e), Some(&string("h1")));
        assert!(matches!(e.resource, Cow::Borrowed(_)));
        Field::parse("resource.env").unwrap().set(&mut e, string("prod")).unwrap();
        assert_eq!(e.resource.len(), 2);
        assert_eq!(shared.len(), 1);
    }
}
