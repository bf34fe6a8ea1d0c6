//! OTTL's converters (uppercase functions that give values), with upstream's
//! parameters and edge cases. Arguments that must be literals (a regex) are checked
//! and compiled once, here.

use std::borrow::Cow;

use super::OttlError;
use super::ast::{Call, Value};
use super::compile::{Context, Getter, compile_value, getter, positional};
use super::value::Val;
use crate::pdata::json::any_to_json;

/// The converters there are, for the error that names an unknown one.
pub const CONVERTERS: &[&str] = &[
    "Concat",
    "IsBool",
    "IsDouble",
    "IsInt",
    "IsList",
    "IsMap",
    "IsMatch",
    "IsString",
    "Len",
    "ToLowerCase",
    "ToUpperCase",
];

/// Regular expressions compiled from a statement are at most this large.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

pub fn converter<C: Context>(call: &Call) -> Result<Getter<C>, OttlError> {
    let type_check = |kind: fn(&Val<'_>) -> bool| -> Result<Getter<C>, OttlError> {
        let [value] = positional(call, &["value"])?[..] else { return Err(arity(call)) };
        let value = compile_value::<C>(value)?;
        Ok(getter::<C>(move |ctx| Ok(Val::Bool(kind(&value(ctx)?)))))
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
            let target = compile_value::<C>(target)?;
            getter::<C>(move |ctx| {
                Ok(Val::Bool(match target(ctx)? {
                    Val::Nil => false,
                    Val::Str(s) => regex.is_match(&s),
                    other => regex.is_match(&string_like(&other)),
                }))
            })
        }
        "Len" => {
            let [target] = positional(call, &["target"])?[..] else { return Err(arity(call)) };
            let target = compile_value::<C>(target)?;
            getter::<C>(move |ctx| match target(ctx)? {
                Val::Str(s) => Ok(Val::Int(s.len() as i64)),
                Val::Map(m) => Ok(Val::Int(m.len() as i64)),
                Val::List(l) => Ok(Val::Int(l.len() as i64)),
                other => Err(format!("Len: expected a string, map or slice but got {}", other.type_name())),
            })
        }
        "ToLowerCase" | "ToUpperCase" => {
            let upper = call.name == "ToUpperCase";
            let [target] = positional(call, &["target"])?[..] else { return Err(arity(call)) };
            let target = compile_value::<C>(target)?;
            getter::<C>(move |ctx| match target(ctx)? {
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
            let items = items.iter().map(compile_value::<C>).collect::<Result<Vec<_>, _>>()?;
            getter::<C>(move |ctx| {
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

fn literal_regex(pattern: &Value) -> Result<regex::Regex, OttlError> {
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
    }
}

fn json_of_map(map: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> String {
    let object: serde_json::Map<String, serde_json::Value> =
        map.iter().map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(serde_json::Value::Null, any_to_json))).collect();
    serde_json::Value::Object(object).to_string()
}
