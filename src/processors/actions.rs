//! Upstream's attribute actions (`attraction`), shared by the `attributes` processor
//! (on spans, log records and data points) and the `resource` processor (on
//! resources): `insert`, `update`, `upsert`, `delete`, `hash`, `extract`, `convert`,
//! applied in order to one attribute map.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use regex::Regex;
use serde::Deserialize;

use super::matching::json_value;
use crate::ottl::functions::string_any;
use crate::ottl::value::Val;
use crate::pdata::Metadata;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ActionConfig {
    /// The attribute acted on (required except for `delete` and `hash` with a pattern).
    #[serde(default)]
    pub key: Option<String>,
    /// What `insert`, `update` and `upsert` write (any YAML value).
    #[serde(default)]
    pub value: Option<serde_json::Value>,
    /// Or the value of this attribute of the same item.
    #[serde(default)]
    pub from_attribute: Option<String>,
    /// Or a value of the request's context: `metadata.<key>` (the receiver's
    /// `include_metadata`), `auth.<attribute>` (what its authenticator learnt).
    #[serde(default)]
    pub from_context: Option<String>,
    /// `delete`, `hash`: a regex over keys; `extract`: a regex with named groups over
    /// the value.
    #[serde(default)]
    pub pattern: Option<String>,
    /// `convert`: `int`, `double` or `string`.
    #[serde(default)]
    pub converted_type: Option<String>,
    pub action: String,
}

enum Source {
    Value(AnyValue),
    Attribute(String),
    Context(String),
}

#[derive(Clone, Copy)]
enum Convert {
    Int,
    Double,
    String,
}

enum Op {
    Insert(Source),
    Update(Source),
    Upsert(Source),
    Delete,
    Hash,
    Extract(Regex),
    Convert(Convert),
}

/// One compiled action.
pub struct Action {
    key: Option<String>,
    /// `delete` and `hash`: keys matching this are acted on too.
    keys: Option<Regex>,
    op: Op,
}

/// Compiles the list, with the number of the action at fault in the error.
pub fn compile(configs: &[ActionConfig]) -> Result<Vec<Action>, String> {
    if configs.is_empty() {
        return Err("`actions` (or the resource processor's `attributes`) needs at least one action".into());
    }
    configs
        .iter()
        .enumerate()
        .map(|(i, c)| Action::new(c).map_err(|e| format!("action {} ({}): {e}", i + 1, c.action)))
        .collect()
}

impl Action {
    fn new(c: &ActionConfig) -> Result<Action, String> {
        let regex = |p: &str| Regex::new(p).map_err(|e| format!("invalid pattern `{p}`: {e}"));
        let source = || -> Result<Source, String> {
            match (&c.value, &c.from_attribute, &c.from_context) {
                (Some(v), None, None) => Ok(Source::Value(json_value(v))),
                (None, Some(a), None) => Ok(Source::Attribute(a.clone())),
                (None, None, Some(context)) => Ok(Source::Context(context.clone())),
                _ => Err("exactly one of value, from_attribute, from_context must be set".into()),
            }
        };
        let needs_key = || c.key.clone().ok_or_else(|| "key is required".to_string());
        let no_pattern = || match c.pattern {
            Some(_) => Err("pattern is only for delete, hash and extract".to_string()),
            None => Ok(()),
        };
        let op = match c.action.as_str() {
            "insert" | "update" | "upsert" => {
                no_pattern()?;
                needs_key()?;
                let s = source()?;
                match c.action.as_str() {
                    "insert" => Op::Insert(s),
                    "update" => Op::Update(s),
                    _ => Op::Upsert(s),
                }
            }
            "delete" | "hash" => {
                if c.key.is_none() && c.pattern.is_none() {
                    return Err("key or pattern is required".into());
                }
                if c.value.is_some() || c.from_attribute.is_some() || c.from_context.is_some() {
                    return Err("value, from_attribute and from_context are not used by this action".into());
                }
                if c.action == "delete" { Op::Delete } else { Op::Hash }
            }
            "extract" => {
                needs_key()?;
                let pattern = c.pattern.as_deref().ok_or("extract needs a pattern")?;
                let r = regex(pattern)?;
                if r.capture_names().flatten().next().is_none() {
                    return Err("the pattern needs named groups, such as (?P<name>...)".into());
                }
                return Ok(Action { key: c.key.clone(), keys: None, op: Op::Extract(r) });
            }
            "convert" => {
                no_pattern()?;
                needs_key()?;
                Op::Convert(match c.converted_type.as_deref() {
                    Some("int") => Convert::Int,
                    Some("double") => Convert::Double,
                    Some("string") => Convert::String,
                    other => return Err(format!("converted_type must be int, double or string, not {other:?}")),
                })
            }
            other => {
                return Err(format!(
                    "unknown action `{other}`; actions: insert, update, upsert, delete, hash, extract, convert"
                ));
            }
        };
        if c.converted_type.is_some() && !matches!(op, Op::Convert(_)) {
            return Err("converted_type is only for convert".into());
        }
        let keys = c.pattern.as_deref().map(regex).transpose()?;
        Ok(Action { key: c.key.clone(), keys, op })
    }

    /// Applies the action to `attributes` of an item of a batch with this metadata.
    pub fn apply(&self, attributes: &mut Vec<KeyValue>, metadata: &Metadata) {
        let key = self.key.as_deref().unwrap_or_default();
        let position = |attributes: &[KeyValue]| attributes.iter().position(|kv| kv.key == key);
        let resolve = |source: &Source, attributes: &[KeyValue]| match source {
            Source::Value(v) => Some(v.clone()),
            Source::Attribute(from) => attributes.iter().find(|kv| &kv.key == from).and_then(|kv| kv.value.clone()),
            Source::Context(from) => metadata.lookup(from).map(string_any),
        };
        match &self.op {
            Op::Insert(source) => {
                if position(attributes).is_none()
                    && let Some(value) = resolve(source, attributes)
                {
                    attributes.push(KeyValue { key: key.to_string(), value: Some(value), ..Default::default() });
                }
            }
            Op::Update(source) => {
                if let Some(at) = position(attributes)
                    && let Some(value) = resolve(source, attributes)
                {
                    attributes[at].value = Some(value);
                }
            }
            Op::Upsert(source) => {
                if let Some(value) = resolve(source, attributes) {
                    match position(attributes) {
                        Some(at) => attributes[at].value = Some(value),
                        None => {
                            attributes.push(KeyValue { key: key.to_string(), value: Some(value), ..Default::default() })
                        }
                    }
                }
            }
            Op::Delete => attributes.retain(|kv| !self.selects(&kv.key)),
            Op::Hash => {
                for kv in attributes.iter_mut().filter(|kv| self.selects(&kv.key)) {
                    if let Some(hashed) = hash(kv.value.as_ref()) {
                        kv.value = Some(string_any(hashed));
                    }
                }
            }
            Op::Extract(regex) => {
                let Some(at) = position(attributes) else { return };
                let Val::Str(text) = Val::of(attributes[at].value.as_ref()) else { return };
                let Some(caps) = regex.captures(&text) else { return };
                let found: Vec<(String, String)> = regex
                    .capture_names()
                    .flatten()
                    .filter_map(|name| caps.name(name).map(|m| (name.to_string(), m.as_str().to_string())))
                    .collect();
                for (name, value) in found {
                    match attributes.iter().position(|kv| kv.key == name) {
                        Some(i) => attributes[i].value = Some(string_any(value)),
                        None => attributes.push(KeyValue {
                            key: name,
                            value: Some(string_any(value)),
                            ..Default::default()
                        }),
                    }
                }
            }
            Op::Convert(to) => {
                let Some(at) = position(attributes) else { return };
                if let Some(value) = convert(Val::of(attributes[at].value.as_ref()), *to) {
                    attributes[at].value = Some(value);
                }
            }
        }
    }

    fn selects(&self, key: &str) -> bool {
        self.key.as_deref() == Some(key) || self.keys.as_ref().is_some_and(|r| r.is_match(key))
    }
}

/// SHA-256 of the value's bytes, as hex (upstream hashes strings, and ints, doubles
/// and bools by their big-endian bytes); other types are left alone.
fn hash(value: Option<&AnyValue>) -> Option<String> {
    let bytes = match Val::of(value) {
        Val::Str(s) => s.as_bytes().to_vec(),
        Val::Int(i) => i.to_be_bytes().to_vec(),
        Val::Float(f) => f.to_bits().to_be_bytes().to_vec(),
        Val::Bool(b) => vec![u8::from(b)],
        _ => return None,
    };
    Some(crate::pdata::json::hex(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref()))
}

/// The value converted, or `None` where it cannot be (left unchanged, as upstream).
fn convert(value: Val<'_>, to: Convert) -> Option<AnyValue> {
    use any_value::Value as V;
    let out = match (to, value) {
        (Convert::Int, Val::Int(i)) => V::IntValue(i),
        (Convert::Int, Val::Float(f)) if f.is_finite() => V::IntValue(f.trunc() as i64),
        (Convert::Int, Val::Bool(b)) => V::IntValue(i64::from(b)),
        (Convert::Int, Val::Str(s)) => V::IntValue(s.trim().parse().ok()?),
        (Convert::Double, Val::Float(f)) => V::DoubleValue(f),
        (Convert::Double, Val::Int(i)) => V::DoubleValue(i as f64),
        (Convert::Double, Val::Bool(b)) => V::DoubleValue(if b { 1.0 } else { 0.0 }),
        (Convert::Double, Val::Str(s)) => V::DoubleValue(s.trim().parse().ok()?),
        (Convert::String, Val::Str(s)) => V::StringValue(s.into_owned()),
        (Convert::String, Val::Int(i)) => V::StringValue(i.to_string()),
        (Convert::String, Val::Float(f)) => V::StringValue(crate::pdata::prometheus::format_float(f)),
        (Convert::String, Val::Bool(b)) => V::StringValue(b.to_string()),
        _ => return None,
    };
    Some(AnyValue { value: Some(out) })
}
