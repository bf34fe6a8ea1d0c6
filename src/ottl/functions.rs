//! OTTL's converters (uppercase functions that give values), with upstream's
//! parameters and edge cases. Arguments that must be literals (a regex) are checked
//! and compiled once, here.

use std::borrow::Cow;

use super::OttlError;
use super::ast::{Call, Value};
use super::compile::{EvalError, Getter, NIL_VALUE, compile_value, getter, positional};
use super::record::Kind;
use super::value::Val;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};

use crate::pdata::json::any_to_json;

/// The converters there are, for the error that names an unknown one.
pub const CONVERTERS: &[&str] = &[
    "Bool",
    "Concat",
    "Double",
    "ExtractPatterns",
    "FNV",
    "HasPrefix",
    "HasSuffix",
    "Hex",
    "Int",
    "IsBool",
    "IsDouble",
    "IsInt",
    "IsList",
    "IsMap",
    "IsMatch",
    "IsString",
    "Len",
    "Now",
    "ParseJSON",
    "ParseKeyValue",
    "SHA1",
    "SHA256",
    "SHA512",
    "SpanID",
    "Split",
    "String",
    "Substring",
    "Time",
    "ToLowerCase",
    "ToUpperCase",
    "TraceID",
    "TrimPrefix",
    "TrimSuffix",
    "Unix",
    "UnixMicro",
    "UnixMilli",
    "UnixNano",
    "UnixSeconds",
];

/// Regular expressions compiled from a statement are at most this large.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

pub fn converter(kind: Kind, call: &Call) -> Result<Getter, OttlError> {
    let type_check = |check: fn(&Val<'_>) -> bool| -> Result<Getter, OttlError> {
        let [value] = positional(call, &["value"])?[..] else { return Err(arity(call)) };
        let value = compile_value(kind, value)?;
        Ok(getter(move |ctx| Ok(Val::Bool(check(&value(ctx)?)))))
    };
    Ok(match call.name.as_str() {
        "IsString" => type_check(|v| matches!(v, Val::Str(_)))?,
        "IsBool" => type_check(|v| matches!(v, Val::Bool(_)))?,
        "IsInt" => type_check(|v| matches!(v, Val::Int(_)))?,
        "IsDouble" => type_check(|v| matches!(v, Val::Float(_)))?,
        "IsMap" => type_check(|v| matches!(v, Val::Map(_)))?,
        "IsList" => type_check(|v| matches!(v, Val::List(_)))?,
        "IsMatch" => {
            let [target, pattern] = positional(call, &["target", "pattern"])?[..] else { return Err(arity(call)) };
            let regex = literal_regex(pattern)?;
            let target = compile_value(kind, target)?;
            getter(move |ctx| {
                Ok(Val::Bool(match target(ctx)? {
                    Val::Nil => false,
                    Val::Str(s) => regex.is_match(&s),
                    other => regex.is_match(&string_like(&other)),
                }))
            })
        }
        "Len" => {
            let [target] = positional(call, &["target"])?[..] else { return Err(arity(call)) };
            let target = compile_value(kind, target)?;
            getter(move |ctx| match target(ctx)? {
                Val::Str(s) => Ok(Val::Int(s.len() as i64)),
                Val::Map(m) => Ok(Val::Int(m.len() as i64)),
                Val::List(l) => Ok(Val::Int(l.len() as i64)),
                other => Err(format!("Len: expected a string, map or slice but got {}", other.type_name())),
            })
        }
        "ToLowerCase" | "ToUpperCase" => {
            let upper = call.name == "ToUpperCase";
            let [target] = positional(call, &["target"])?[..] else { return Err(arity(call)) };
            let target = compile_value(kind, target)?;
            getter(move |ctx| match target(ctx)? {
                Val::Str(s) => Ok(Val::Str(Cow::Owned(if upper { s.to_uppercase() } else { s.to_lowercase() }))),
                other => Err(format!("expected string but got {}", other.type_name())),
            })
        }
        "Concat" => {
            let [values, delimiter] = positional(call, &["vals", "delimiter"])?[..] else { return Err(arity(call)) };
            let Value::List(items, _) = values else {
                return Err(OttlError::new("Concat's first argument is a list, such as [a, b]", values.span()));
            };
            let Value::String(delimiter, _) = delimiter else {
                return Err(OttlError::new("Concat's delimiter must be a string literal", delimiter.span()));
            };
            let delimiter = delimiter.clone();
            let items = items.iter().map(|v| compile_value(kind, v)).collect::<Result<Vec<_>, _>>()?;
            getter(move |ctx| {
                let mut out = String::new();
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(&delimiter);
                    }
                    match item(ctx)? {
                        Val::Str(s) => out.push_str(&s),
                        Val::Nil => out.push_str("<nil>"),
                        other => out.push_str(&string_like(&other)),
                    }
                }
                Ok(Val::Str(Cow::Owned(out)))
            })
        }
        "Split" => {
            let [target, delimiter] = positional(call, &["target", "delimiter"])?[..] else { return Err(arity(call)) };
            let delimiter = literal_string(delimiter, "Split's delimiter")?;
            let target = compile_value(kind, target)?;
            getter(move |ctx| {
                let s = want_string(target(ctx)?)?;
                let parts = s.split(delimiter.as_str()).map(|p| string_any(p.to_string())).collect();
                Ok(Val::List(Cow::Owned(parts)))
            })
        }
        "Substring" => {
            let [target, start, length] = positional(call, &["target", "start", "length"])?[..] else {
                return Err(arity(call));
            };
            let (target, start, length) =
                (compile_value(kind, target)?, compile_value(kind, start)?, compile_value(kind, length)?);
            getter(move |ctx| {
                let s = want_string(target(ctx)?)?;
                let (Val::Int(start), Val::Int(length)) = (start(ctx)?, length(ctx)?) else {
                    return Err("Substring's start and length must be int64".into());
                };
                if start < 0 {
                    return Err(format!("invalid start for substring function, {start} cannot be negative"));
                }
                if length <= 0 {
                    return Err(format!("invalid length for substring function, {length} cannot be negative or zero"));
                }
                let end = start.checked_add(length).filter(|&e| e as u64 <= s.len() as u64).ok_or_else(|| {
                    format!("invalid range for substring function, {start}+{length} cannot be greater than the length of target string({})", s.len())
                })?;
                Ok(Val::Str(Cow::Owned(
                    String::from_utf8_lossy(&s.as_bytes()[start as usize..end as usize]).into_owned(),
                )))
            })
        }
        "Int" => one(kind, call, "value", |v| {
            Ok(match v {
                Val::Int(i) => Val::Int(i),
                Val::Float(f) if f.is_finite() => Val::Int(f.trunc() as i64),
                Val::Str(s) => s.parse::<i64>().map_or(Val::Nil, Val::Int),
                Val::Bool(b) => Val::Int(i64::from(b)),
                _ => Val::Nil,
            })
        })?,
        "Double" => one(kind, call, "value", |v| {
            Ok(match v {
                Val::Float(f) => Val::Float(f),
                Val::Int(i) => Val::Float(i as f64),
                Val::Str(s) => s.parse::<f64>().map_or(Val::Nil, Val::Float),
                Val::Bool(b) => Val::Float(if b { 1.0 } else { 0.0 }),
                _ => Val::Nil,
            })
        })?,
        "Bool" => one(kind, call, "value", |v| {
            Ok(match v {
                Val::Bool(b) => Val::Bool(b),
                Val::Int(i) => Val::Bool(i != 0),
                Val::Float(f) => Val::Bool(f != 0.0),
                Val::Str(s) => match s.as_ref() {
                    "1" | "t" | "T" | "true" | "TRUE" | "True" => Val::Bool(true),
                    "0" | "f" | "F" | "false" | "FALSE" | "False" => Val::Bool(false),
                    _ => Val::Nil,
                },
                _ => Val::Nil,
            })
        })?,
        "String" => one(kind, call, "value", |v| {
            Ok(match v {
                Val::Nil => Val::Nil,
                Val::Str(s) => Val::Str(Cow::Owned(s.into_owned())),
                Val::Time(t) => Val::Str(Cow::Owned(time_string(t))),
                other => Val::Str(Cow::Owned(string_like(&other))),
            })
        })?,
        "ParseJSON" => one(kind, call, "target", |v| {
            let s = want_string(v)?;
            match serde_json::from_str::<serde_json::Value>(&s) {
                Ok(serde_json::Value::Object(o)) => Ok(Val::Map(Cow::Owned(json_map(o)))),
                Ok(serde_json::Value::Array(a)) => Ok(Val::List(Cow::Owned(a.into_iter().map(json_any).collect()))),
                Ok(_) => Err("ParseJSON: the target is not a JSON object or array".into()),
                Err(e) => Err(format!("ParseJSON: {e}")),
            }
        })?,
        "ParseKeyValue" => {
            let args = super::compile::arguments(call, &["target", "delimiter", "pair_delimiter"], 1)?;
            let target = compile_value(kind, args[0].unwrap_or(&NIL_VALUE))?;
            let delimiter = optional_string(args[1], "=")?;
            let pair_delimiter = optional_string(args[2], " ")?;
            if delimiter == pair_delimiter {
                return Err(OttlError::new(
                    "ParseKeyValue's delimiter and pair_delimiter cannot be the same",
                    call.span,
                ));
            }
            getter(move |ctx| {
                let s = want_string(target(ctx)?)?;
                parse_key_value(&s, &delimiter, &pair_delimiter).map(|m| Val::Map(Cow::Owned(m)))
            })
        }
        "SHA1" | "SHA256" | "SHA512" => {
            let algorithm = match call.name.as_str() {
                "SHA1" => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
                "SHA256" => &ring::digest::SHA256,
                _ => &ring::digest::SHA512,
            };
            one(kind, call, "value", move |v| {
                let s = want_string(v)?;
                Ok(Val::Str(Cow::Owned(crate::pdata::json::hex(
                    ring::digest::digest(algorithm, s.as_bytes()).as_ref(),
                ))))
            })?
        }
        "FNV" => one(kind, call, "value", |v| {
            let s = want_string(v)?;
            Ok(Val::Int(fnv1a(s.as_bytes()) as i64))
        })?,
        "HasPrefix" | "HasSuffix" | "TrimPrefix" | "TrimSuffix" => {
            let name = call.name.clone();
            let second = if name.ends_with("Prefix") { "prefix" } else { "suffix" };
            let [target, affix] = positional(call, &["target", second])?[..] else { return Err(arity(call)) };
            let affix = literal_string(affix, second)?;
            let target = compile_value(kind, target)?;
            getter(move |ctx| {
                let s = want_string(target(ctx)?)?;
                Ok(match name.as_str() {
                    "HasPrefix" => Val::Bool(s.starts_with(affix.as_str())),
                    "HasSuffix" => Val::Bool(s.ends_with(affix.as_str())),
                    "TrimPrefix" => Val::Str(Cow::Owned(s.strip_prefix(affix.as_str()).unwrap_or(&s).to_string())),
                    _ => Val::Str(Cow::Owned(s.strip_suffix(affix.as_str()).unwrap_or(&s).to_string())),
                })
            })
        }
        "Now" => {
            if !call.args.is_empty() {
                return Err(OttlError::new("Now takes no arguments", call.span));
            }
            getter(|_| Ok(Val::Time(now_nanos())))
        }
        "Unix" => {
            let args = super::compile::arguments(call, &["seconds", "nanoseconds"], 1)?;
            let seconds = compile_value(kind, args[0].unwrap_or(&NIL_VALUE))?;
            let nanos = args[1].map(|v| compile_value(kind, v)).transpose()?;
            getter(move |ctx| {
                let Val::Int(s) = seconds(ctx)? else { return Err("Unix: seconds must be int64".into()) };
                let n = match &nanos {
                    Some(n) => match n(ctx)? {
                        Val::Int(n) => n,
                        _ => return Err("Unix: nanoseconds must be int64".into()),
                    },
                    None => 0,
                };
                Ok(Val::Time(s.saturating_mul(1_000_000_000).saturating_add(n)))
            })
        }
        "UnixNano" | "UnixMicro" | "UnixMilli" | "UnixSeconds" => {
            let divisor: i64 = match call.name.as_str() {
                "UnixNano" => 1,
                "UnixMicro" => 1_000,
                "UnixMilli" => 1_000_000,
                _ => 1_000_000_000,
            };
            one(kind, call, "time", move |v| match v {
                Val::Time(t) => Ok(Val::Int(t.div_euclid(divisor))),
                other => Err(format!("expected time.Time but got {}", other.type_name())),
            })?
        }
        "Time" => {
            let args = super::compile::arguments(call, &["time", "format", "location", "locale"], 2)?;
            let target = compile_value(kind, args[0].unwrap_or(&NIL_VALUE))?;
            let format_value = args[1].unwrap_or(&NIL_VALUE);
            let format = ctime_to_strtime(&literal_string(format_value, "Time's format")?)
                .map_err(|e| OttlError::new(e, format_value.span()))?;
            let zone = match args[2] {
                None => jiff::tz::TimeZone::UTC,
                Some(v) => {
                    let name = literal_string(v, "Time's location")?;
                    if name.is_empty() {
                        jiff::tz::TimeZone::UTC
                    } else {
                        jiff::tz::TimeZone::get(&name)
                            .map_err(|e| OttlError::new(format!("unknown location `{name}`: {e}"), v.span()))?
                    }
                }
            };
            if let Some(locale) = args[3] {
                return Err(OttlError::new(
                    "Time's locale is not supported; month and day names are English",
                    locale.span(),
                ));
            }
            getter(move |ctx| {
                let s = want_string(target(ctx)?)?;
                parse_time(&s, &format, &zone).map(Val::Time)
            })
        }
        "TraceID" | "SpanID" => {
            let len = if call.name == "TraceID" { 16 } else { 8 };
            let name = call.name.clone();
            let [bytes] = positional(call, &["bytes"])?[..] else { return Err(arity(call)) };
            if let Value::Bytes(b, span) = bytes {
                if b.len() != len {
                    return Err(OttlError::new(format!("{name} takes exactly {len} bytes, got {}", b.len()), *span));
                }
                let id = b.clone();
                return Ok(getter(move |_| Ok(Val::Bytes(Cow::Owned(id.clone())))));
            }
            let bytes = compile_value(kind, bytes)?;
            getter(move |ctx| match bytes(ctx)? {
                Val::Bytes(b) if b.len() == len => Ok(Val::Bytes(Cow::Owned(b.into_owned()))),
                Val::Str(s) => decode_hex(&s)
                    .filter(|b| b.len() == len)
                    .map(|b| Val::Bytes(Cow::Owned(b)))
                    .ok_or_else(|| format!("{name}: `{s}` is not {} hex digits", len * 2)),
                other => Err(format!("{name}: expected {len} bytes or a hex string but got {}", other.type_name())),
            })
        }
        "ExtractPatterns" => {
            let [target, pattern] = positional(call, &["target", "pattern"])?[..] else { return Err(arity(call)) };
            let regex = literal_regex(pattern)?;
            if regex.capture_names().flatten().next().is_none() {
                return Err(OttlError::new(
                    "ExtractPatterns needs at least one named capture group, such as (?P<name>...)",
                    pattern.span(),
                ));
            }
            let target = compile_value(kind, target)?;
            getter(move |ctx| {
                let s = want_string(target(ctx)?)?;
                let mut out = Vec::new();
                if let Some(caps) = regex.captures(&s) {
                    for name in regex.capture_names().flatten() {
                        if let Some(m) = caps.name(name) {
                            out.push(KeyValue {
                                key: name.to_string(),
                                value: Some(string_any(m.as_str().to_string())),
                                ..Default::default()
                            });
                        }
                    }
                }
                Ok(Val::Map(Cow::Owned(out)))
            })
        }
        "Hex" => one(kind, call, "value", |v| {
            let bytes = match v {
                Val::Bytes(b) => b.into_owned(),
                Val::Str(s) => s.as_bytes().to_vec(),
                Val::Int(i) => i.to_be_bytes().to_vec(),
                Val::Float(f) => f.to_bits().to_be_bytes().to_vec(),
                Val::Bool(b) => vec![u8::from(b)],
                _ => return Ok(Val::Nil),
            };
            Ok(Val::Str(Cow::Owned(crate::pdata::json::hex(&bytes))))
        })?,
        name => {
            return Err(OttlError::new(
                format!("unknown converter `{name}`; known: {}", CONVERTERS.join(", ")),
                call.name_span,
            ));
        }
    })
}

/// `positional` gives as many values as asked, so this is not met in practice.
fn arity(call: &Call) -> OttlError {
    OttlError::new(format!("`{}`: wrong number of arguments", call.name), call.span)
}

pub(super) fn literal_regex(pattern: &Value) -> Result<regex::Regex, OttlError> {
    let Value::String(text, span) = pattern else {
        return Err(OttlError::new("the pattern must be a string literal", pattern.span()));
    };
    regex::RegexBuilder::new(text)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| OttlError::new(format!("invalid regular expression: {e}"), *span))
}

/// A value as a `StringLikeGetter` reads it: numbers and bools as Go prints them,
/// bytes as hex, maps and lists as JSON.
fn string_like(value: &Val<'_>) -> String {
    match value {
        Val::Nil => String::new(),
        Val::Bool(b) => b.to_string(),
        Val::Int(i) => i.to_string(),
        Val::Float(f) => crate::pdata::prometheus::format_float(*f),
        Val::Str(s) => s.to_string(),
        Val::Bytes(b) => crate::pdata::json::hex(b),
        Val::Map(m) => json_of_map(m),
        Val::List(l) => serde_json::Value::Array(l.iter().map(any_to_json).collect()).to_string(),
        Val::Time(t) => time_string(*t),
    }
}

fn json_of_map(map: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> String {
    let object: serde_json::Map<String, serde_json::Value> =
        map.iter().map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(serde_json::Value::Null, any_to_json))).collect();
    serde_json::Value::Object(object).to_string()
}

/// A converter of one argument, applied to its value.
fn one(
    kind: Kind,
    call: &Call,
    name: &str,
    f: impl for<'c> Fn(Val<'c>) -> Result<Val<'c>, EvalError> + Send + Sync + 'static,
) -> Result<Getter, OttlError> {
    let [value] = positional(call, &[name])?[..] else { return Err(arity(call)) };
    let value = compile_value(kind, value)?;
    Ok(getter(move |ctx| f(value(ctx)?)))
}

/// A `StringGetter`'s value: a string, else an error.
pub fn want_string(v: Val<'_>) -> Result<Cow<'_, str>, EvalError> {
    match v {
        Val::Str(s) => Ok(s),
        other => Err(format!("expected string but got {}", other.type_name())),
    }
}

pub fn literal_string(value: &Value, what: &str) -> Result<String, OttlError> {
    match value {
        Value::String(s, _) => Ok(s.clone()),
        other => Err(OttlError::new(format!("{what} must be a string literal"), other.span())),
    }
}

/// An optional string argument; an empty one means the default, as upstream.
fn optional_string(value: Option<&Value>, default: &str) -> Result<String, OttlError> {
    match value {
        None => Ok(default.to_string()),
        Some(v) => literal_string(v, "the argument").map(|s| if s.is_empty() { default.to_string() } else { s }),
    }
}

pub fn string_any(s: String) -> AnyValue {
    AnyValue { value: Some(any_value::Value::StringValue(s)) }
}

/// JSON as OTLP values, as upstream's ParseJSON: every number a double, null empty.
fn json_any(value: serde_json::Value) -> AnyValue {
    use any_value::Value as V;
    let value = match value {
        serde_json::Value::Null => None,
        serde_json::Value::Bool(b) => Some(V::BoolValue(b)),
        serde_json::Value::Number(n) => Some(V::DoubleValue(n.as_f64().unwrap_or(0.0))),
        serde_json::Value::String(s) => Some(V::StringValue(s)),
        serde_json::Value::Array(a) => Some(V::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
            values: a.into_iter().map(json_any).collect(),
        })),
        serde_json::Value::Object(o) => {
            Some(V::KvlistValue(opentelemetry_proto::tonic::common::v1::KeyValueList { values: json_map(o) }))
        }
    };
    AnyValue { value }
}

fn json_map(object: serde_json::Map<String, serde_json::Value>) -> Vec<KeyValue> {
    object.into_iter().map(|(key, v)| KeyValue { key, value: Some(json_any(v)), ..Default::default() }).collect()
}

/// `k1=v1 k2="v 2"`: pairs split where the pair delimiter is outside quotes, keys and
/// values trimmed and unquoted; a pair without the delimiter is an error.
fn parse_key_value(s: &str, delimiter: &str, pair_delimiter: &str) -> Result<Vec<KeyValue>, EvalError> {
    if s.is_empty() {
        return Err("cannot parse from empty string".into());
    }
    let mut pairs = Vec::new();
    let (mut start, mut quote, mut i) = (0, None, 0);
    let bytes = s.as_bytes();
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'"' || c == b'\'' => quote = Some(c),
            // Compared as bytes: `i` may sit inside a multi-byte character, and a match
            // of the delimiter can only start on a character's first byte.
            None if bytes[i..].starts_with(pair_delimiter.as_bytes()) => {
                pairs.push(&s[start..i]);
                i += pair_delimiter.len();
                start = i;
                continue;
            }
            None => {}
        }
        i += 1;
    }
    pairs.push(&s[start..]);
    let unquote = |t: &str| {
        let t = t.trim();
        let quoted =
            t.len() >= 2 && (t.starts_with('"') && t.ends_with('"') || t.starts_with('\'') && t.ends_with('\''));
        if quoted { t[1..t.len() - 1].to_string() } else { t.to_string() }
    };
    let mut out: Vec<KeyValue> = Vec::new();
    for pair in pairs.into_iter().filter(|p| !p.trim().is_empty()) {
        let Some((key, value)) = pair.split_once(delimiter) else {
            return Err(format!("cannot split {pair:?} into 2 items, got 1 item(s)"));
        };
        let (key, value) = (unquote(key), unquote(value));
        match out.iter_mut().find(|kv| kv.key == key) {
            Some(kv) => kv.value = Some(string_any(value)),
            None => out.push(KeyValue { key, value: Some(string_any(value)), ..Default::default() }),
        }
    }
    Ok(out)
}

/// FNV-1a, 64 bits, as Go's `hash/fnv.New64a`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

fn now_nanos() -> i64 {
    jiff::Timestamp::now().as_nanosecond() as i64
}

fn time_string(nanos: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(nanos)).map_or_else(|_| nanos.to_string(), |t| t.to_string())
}

pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// Upstream's ctime-style directives (`%Y-%m-%d %H:%M:%S.%L %z`) as jiff's strtime:
/// `%L`, `%f` and `%s` are fractions of a second there, `%o` an unpadded month, `%i`
/// and `%j` offsets; `%Z` (a zone abbreviation) cannot be parsed reliably and is
/// refused.
fn ctime_to_strtime(format: &str) -> Result<String, String> {
    let mut out = String::with_capacity(format.len());
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(d) = chars.next() else { return Err("the format ends in a lone %".into()) };
        out.push_str(match d {
            'Y' | 'y' | 'm' | 'b' | 'h' | 'B' | 'd' | 'e' | 'a' | 'A' | 'H' | 'I' | 'l' | 'p' | 'M' | 'S' | 'z'
            | 'D' | 'F' | 'T' | 'R' | 'n' | 't' | '%' => {
                out.push('%');
                out.push(d);
                continue;
            }
            'o' => "%m",
            'q' => "%d",
            'L' | 'f' | 's' => "%f",
            'i' => "%:::z",
            'j' => "%:z",
            'c' => "%a %b %e %H:%M:%S %Y",
            'x' => "%m/%d/%y",
            'X' => "%H:%M:%S",
            'r' => "%I:%M:%S %p",
            'Z' => return Err("%Z (a zone abbreviation) is not supported; use %z or the location argument".into()),
            other => return Err(format!("unsupported time directive %{other}")),
        });
    }
    Ok(out)
}

/// A time in `format`, in `zone` unless the text carries an offset.
fn parse_time(text: &str, format: &str, zone: &jiff::tz::TimeZone) -> Result<i64, EvalError> {
    let parsed = jiff::fmt::strtime::parse(format, text).map_err(|e| format!("Time: {e}"))?;
    let timestamp = if parsed.offset().is_some() {
        parsed.to_timestamp().map_err(|e| format!("Time: {e}"))?
    } else {
        let civil = parsed.to_datetime().map_err(|e| format!("Time: {e}"))?;
        zone.to_ambiguous_zoned(civil).compatible().map_err(|e| format!("Time: {e}"))?.timestamp()
    };
    i64::try_from(timestamp.as_nanosecond()).map_err(|_| "Time: out of range".to_string())
}
