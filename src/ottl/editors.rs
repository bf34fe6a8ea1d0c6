//! OTTL's editors (lowercase functions that change the item), with upstream's
//! parameters. Arguments are evaluated on the item first, into owned values, and
//! only then is the item written; map editors change the map in place.
//! Literal arguments (regexes, globs, modes, limits) are checked once, here.

use std::borrow::Cow;

use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value};
use regex::Regex;

use super::OttlError;
use super::ast::{Call, Value};
use super::compile::{EvalError, Getter, NIL_VALUE, arguments, compile_value, positional};
use super::functions::{literal_regex, literal_string};
use super::paths::resolve;
use super::record::Kind;
use super::statement::Editor;
use super::value::Val;
use super::write::Write;

/// The editors there are, for the error that names an unknown one.
pub const EDITORS: &[&str] = &[
    "append",
    "delete_key",
    "delete_matching_keys",
    "flatten",
    "keep_keys",
    "keep_matching_keys",
    "limit",
    "merge_maps",
    "replace_all_matches",
    "replace_all_patterns",
    "replace_match",
    "replace_pattern",
    "set",
    "truncate_all",
];

pub(super) fn editor(kind: Kind, call: &Call) -> Result<Editor, OttlError> {
    if !call.keys.is_empty() {
        return Err(OttlError::new("an editor's result cannot be indexed", call.span));
    }
    Ok(match call.name.as_str() {
        "set" => {
            let [target, value] = positional(call, &["target", "value"])?[..] else { return Err(arity(call)) };
            let (target, _) = target_of(kind, target)?;
            let value = compile_value(kind, value)?;
            Box::new(move |rec| {
                let v = value(&rec.view())?.into_owned();
                target.set(rec, v)
            })
        }
        "delete_key" => {
            let [target, key] = positional(call, &["target", "key"])?[..] else { return Err(arity(call)) };
            let target = map_target(kind, target)?;
            let key = literal_string(key, "delete_key's key")?;
            Box::new(move |rec| {
                target.map_mut(rec)?.retain(|kv| kv.key != key);
                Ok(())
            })
        }
        "delete_matching_keys" | "keep_matching_keys" => {
            let keep = call.name == "keep_matching_keys";
            let [target, pattern] = positional(call, &["target", "pattern"])?[..] else { return Err(arity(call)) };
            let target = map_target(kind, target)?;
            let regex = literal_regex(pattern)?;
            Box::new(move |rec| {
                target.map_mut(rec)?.retain(|kv| regex.is_match(&kv.key) == keep);
                Ok(())
            })
        }
        "keep_keys" => {
            let [target, keys] = positional(call, &["target", "keys"])?[..] else { return Err(arity(call)) };
            let target = map_target(kind, target)?;
            let keys = string_list(keys, "keep_keys's keys")?;
            Box::new(move |rec| {
                target.map_mut(rec)?.retain(|kv| keys.contains(&kv.key));
                Ok(())
            })
        }
        "limit" => {
            let [target, limit, priority] = positional(call, &["target", "limit", "priority_keys"])?[..] else {
                return Err(arity(call));
            };
            let target = map_target(kind, target)?;
            let limit_span = limit.span();
            let limit = int_literal(limit, "limit's limit")?;
            let priority = string_list(priority, "limit's priority_keys")?;
            if limit < 0 {
                return Err(OttlError::new(
                    format!("invalid limit for limit function, {limit} cannot be negative"),
                    limit_span,
                ));
            }
            if (limit as usize) < priority.len() {
                return Err(OttlError::new(
                    format!(
                        "invalid limit for limit function, {limit} cannot be less than number of priority attributes {}",
                        priority.len()
                    ),
                    limit_span,
                ));
            }
            let limit = limit as usize;
            Box::new(move |rec| {
                let map = match target.map_mut(rec) {
                    Ok(map) => map,
                    // A missing or non-map target is left alone, as upstream.
                    Err(_) => return Ok(()),
                };
                if map.len() <= limit {
                    return Ok(());
                }
                let mut room = limit - priority.iter().filter(|k| map.iter().any(|kv| &kv.key == *k)).count();
                map.retain(|kv| {
                    if priority.contains(&kv.key) {
                        return true;
                    }
                    let keep = room > 0;
                    room = room.saturating_sub(1);
                    keep
                });
                Ok(())
            })
        }
        "truncate_all" => {
            let [target, limit] = positional(call, &["target", "limit"])?[..] else { return Err(arity(call)) };
            let target = map_target(kind, target)?;
            let span = limit.span();
            let limit = int_literal(limit, "truncate_all's limit")?;
            if limit < 0 {
                return Err(OttlError::new(
                    format!("invalid limit for truncate_all function, {limit} cannot be negative"),
                    span,
                ));
            }
            let limit = limit as usize;
            Box::new(move |rec| {
                for kv in target.map_mut(rec)?.iter_mut() {
                    if let Some(AnyValue { value: Some(any_value::Value::StringValue(s)) }) = &mut kv.value
                        && s.len() > limit
                    {
                        // Cut at the last character boundary at or before the limit, so
                        // the value stays valid UTF-8.
                        let at = (0..=limit).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
                        s.truncate(at);
                    }
                }
                Ok(())
            })
        }
        "replace_pattern" => {
            let args = arguments(call, &["target", "regex", "replacement", "function", "replacementFormat"], 3)?;
            let (target, get) = target_of(kind, args[0].unwrap_or(&NIL_VALUE))?;
            let regex = literal_regex(args[1].unwrap_or(&NIL_VALUE))?;
            let replace = Replacement::compile(kind, args[2], args[3], args[4], call)?;
            Box::new(move |rec| {
                let new = match get(&rec.view())? {
                    Val::Str(s) => replace.pattern(&regex, &s, &rec.view())?,
                    _ => None,
                };
                match new {
                    Some(new) => target.set(rec, Val::Str(Cow::Owned(new))),
                    None => Ok(()),
                }
            })
        }
        "replace_all_patterns" => {
            let args =
                arguments(call, &["target", "mode", "regex", "replacement", "function", "replacementFormat"], 4)?;
            let target = map_target(kind, args[0].unwrap_or(&NIL_VALUE))?;
            let mode_value = args[1].unwrap_or(&NIL_VALUE);
            let keys = match literal_string(mode_value, "replace_all_patterns's mode")?.as_str() {
                "key" => true,
                "value" => false,
                other => {
                    return Err(OttlError::new(
                        format!("invalid mode {other}, must be either 'key' or 'value'"),
                        mode_value.span(),
                    ));
                }
            };
            let regex = literal_regex(args[2].unwrap_or(&NIL_VALUE))?;
            let replace = Replacement::compile(kind, args[3], args[4], args[5], call)?;
            Box::new(move |rec| {
                let replacement = replace.evaluate(&rec.view())?;
                let map = target.map_mut(rec)?;
                if keys {
                    let mut renamed: Vec<KeyValue> = Vec::with_capacity(map.len());
                    for mut kv in std::mem::take(map) {
                        if let Some(new) = replace.apply_pattern(&regex, &kv.key, &replacement)? {
                            kv.key = new;
                        }
                        // A rename onto an existing key overwrites it.
                        renamed.retain(|e| e.key != kv.key);
                        renamed.push(kv);
                    }
                    *map = renamed;
                } else {
                    for kv in map.iter_mut() {
                        if let Some(AnyValue { value: Some(any_value::Value::StringValue(s)) }) = &mut kv.value
                            && let Some(new) = replace.apply_pattern(&regex, s, &replacement)?
                        {
                            *s = new;
                        }
                    }
                }
                Ok(())
            })
        }
        "replace_match" | "replace_all_matches" => {
            let all = call.name == "replace_all_matches";
            let args = arguments(call, &["target", "pattern", "replacement", "function", "replacementFormat"], 3)?;
            let target_value = args[0].unwrap_or(&NIL_VALUE);
            let pattern = args[1].unwrap_or(&NIL_VALUE);
            let glob = glob_literal(pattern)?;
            let replace = Replacement::compile(kind, args[2], args[3], args[4], call)?;
            if all {
                let target = map_target(kind, target_value)?;
                Box::new(move |rec| {
                    let replacement = replace.finish(replace.evaluate(&rec.view())?)?;
                    for kv in target.map_mut(rec)?.iter_mut() {
                        if let Some(AnyValue { value: Some(any_value::Value::StringValue(s)) }) = &mut kv.value
                            && glob.is_match(s.as_str())
                        {
                            s.clone_from(&replacement);
                        }
                    }
                    Ok(())
                })
            } else {
                let (target, get) = target_of(kind, target_value)?;
                Box::new(move |rec| {
                    let matched = matches!(get(&rec.view())?, Val::Str(s) if glob.is_match(s.as_ref()));
                    if !matched {
                        return Ok(());
                    }
                    let replacement = replace.finish(replace.evaluate(&rec.view())?)?;
                    target.set(rec, Val::Str(Cow::Owned(replacement)))
                })
            }
        }
        "merge_maps" => {
            let [target, source, strategy] = positional(call, &["target", "source", "strategy"])?[..] else {
                return Err(arity(call));
            };
            let target = map_target(kind, target)?;
            let source = compile_value(kind, source)?;
            let strategy = match literal_string(strategy, "merge_maps's strategy")?.as_str() {
                "insert" => Merge::Insert,
                "update" => Merge::Update,
                "upsert" => Merge::Upsert,
                other => {
                    return Err(OttlError::new(
                        format!("invalid value for strategy, {other}, must be 'insert', 'update' or 'upsert'"),
                        strategy.span(),
                    ));
                }
            };
            Box::new(move |rec| {
                let source = match source(&rec.view())? {
                    Val::Map(m) => m.into_owned(),
                    other => return Err(format!("expected pcommon.Map but got {}", other.type_name())),
                };
                let map = target.map_mut(rec)?;
                for kv in source {
                    match (map.iter_mut().find(|e| e.key == kv.key), strategy) {
                        (Some(existing), Merge::Update | Merge::Upsert) => existing.value = kv.value,
                        (None, Merge::Insert | Merge::Upsert) => map.push(kv),
                        _ => {}
                    }
                }
                Ok(())
            })
        }
        "flatten" => {
            let args = arguments(call, &["target", "prefix", "depth", "resolveConflicts"], 1)?;
            let target = map_target(kind, args[0].unwrap_or(&NIL_VALUE))?;
            let prefix = args[1].map(|v| literal_string(v, "flatten's prefix")).transpose()?.unwrap_or_default();
            let depth = match args[2] {
                Some(v) => {
                    let depth = int_literal(v, "flatten's depth")?;
                    if depth < 0 {
                        return Err(OttlError::new(
                            format!("invalid depth '{depth}' for flatten function, depth cannot be negative"),
                            v.span(),
                        ));
                    }
                    depth as usize
                }
                None => usize::MAX,
            };
            let resolve_conflicts = match args[3] {
                Some(Value::Bool(b, _)) => *b,
                Some(other) => {
                    return Err(OttlError::new("flatten's resolveConflicts must be true or false", other.span()));
                }
                None => false,
            };
            Box::new(move |rec| {
                let map = target.map_mut(rec)?;
                let mut out = Vec::with_capacity(map.len());
                flatten_into(&mut out, std::mem::take(map), &prefix, depth, resolve_conflicts);
                *map = out;
                Ok(())
            })
        }
        "append" => {
            let args = arguments(call, &["target", "value", "values"], 1)?;
            let (target, get) = target_of(kind, args[0].unwrap_or(&NIL_VALUE))?;
            let value = args[1].map(|v| compile_value(kind, v)).transpose()?;
            let values = match args[2] {
                Some(Value::List(items, _)) => {
                    items.iter().map(|v| compile_value(kind, v)).collect::<Result<Vec<_>, _>>()?
                }
                Some(other) => return Err(OttlError::new("append's values is a list, such as [a, b]", other.span())),
                None => Vec::new(),
            };
            if value.is_none() && values.is_empty() {
                return Err(OttlError::new("append needs a value or values", call.span));
            }
            Box::new(move |rec| {
                let view = rec.view();
                let mut list: Vec<AnyValue> = match get(&view)? {
                    Val::List(l) => l.into_owned(),
                    Val::Nil => Vec::new(),
                    Val::Map(_) => return Err("append cannot append to a map".into()),
                    other => vec![other.into_owned().into_any()],
                };
                for item in value.iter().chain(&values) {
                    list.push(item(&view)?.into_owned().into_any());
                }
                target.set(rec, Val::List(Cow::Owned(list)))
            })
        }
        name => {
            let hint = if name.chars().next().is_some_and(char::is_uppercase) {
                " (a converter gives a value; a statement starts with an editor such as set)"
            } else {
                ""
            };
            return Err(OttlError::new(
                format!("unknown editor `{name}`{hint}; known: {}", EDITORS.join(", ")),
                call.name_span,
            ));
        }
    })
}

#[derive(Clone, Copy)]
enum Merge {
    Insert,
    Update,
    Upsert,
}

fn arity(call: &Call) -> OttlError {
    OttlError::new(format!("`{}`: wrong number of arguments", call.name), call.span)
}

/// A path an editor writes, and its getter.
fn target_of(kind: Kind, value: &Value) -> Result<(Write, Getter), OttlError> {
    let Value::Path(path) = value else {
        return Err(OttlError::new("the target must be a path, such as attributes[\"key\"]", value.span()));
    };
    let access = resolve(kind, path)?;
    let Some(write) = access.write else {
        return Err(OttlError::new("this path cannot be written", path.span));
    };
    Ok((write, access.get))
}

/// A path to a map an editor changes in place.
fn map_target(kind: Kind, value: &Value) -> Result<Write, OttlError> {
    let (write, _) = target_of(kind, value)?;
    if !write.may_be_map() {
        return Err(OttlError::new("the target must be a map, such as attributes", value.span()));
    }
    Ok(write)
}

fn glob_literal(pattern: &Value) -> Result<globset::GlobMatcher, OttlError> {
    let Value::String(text, span) = pattern else {
        return Err(OttlError::new("the pattern must be a string literal", pattern.span()));
    };
    globset::GlobBuilder::new(text)
        .literal_separator(false)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| OttlError::new(format!("invalid glob pattern: {e}"), *span))
}

fn int_literal(value: &Value, what: &str) -> Result<i64, OttlError> {
    match value {
        Value::Int(i, _) => Ok(*i),
        other => Err(OttlError::new(format!("{what} must be an integer literal"), other.span())),
    }
}

fn string_list(value: &Value, what: &str) -> Result<Vec<String>, OttlError> {
    let Value::List(items, _) = value else {
        return Err(OttlError::new(format!("{what} must be a list of strings, such as [\"a\", \"b\"]"), value.span()));
    };
    items.iter().map(|v| literal_string(v, what)).collect()
}

/// The replacement of the replace editors: a string (with `$1` references for
/// regexes), optionally passed through a hash function and a `%s` format.
struct Replacement {
    value: Getter,
    function: Option<&'static ring::digest::Algorithm>,
    format: Option<String>,
}

impl Replacement {
    fn compile(
        kind: Kind,
        replacement: Option<&Value>,
        function: Option<&Value>,
        format: Option<&Value>,
        call: &Call,
    ) -> Result<Replacement, OttlError> {
        let value = compile_value(kind, replacement.unwrap_or(&NIL_VALUE))?;
        let function = match function {
            None => None,
            Some(Value::Enum(name, span)) => Some(match name.as_str() {
                "SHA1" => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
                "SHA256" => &ring::digest::SHA256,
                "SHA512" => &ring::digest::SHA512,
                other => {
                    return Err(OttlError::new(
                        format!("`{other}` cannot be the function of {}; use SHA1, SHA256 or SHA512", call.name),
                        *span,
                    ));
                }
            }),
            Some(other) => {
                return Err(OttlError::new("the function must be a converter's name, such as SHA256", other.span()));
            }
        };
        let format = match format {
            None => None,
            Some(v) => {
                let text = literal_string(v, "replacementFormat")?;
                if text.matches("%s").count() != 1 || text.replace("%s", "").contains('%') {
                    return Err(OttlError::new(
                        "replacementFormat must contain exactly one %s and no other verb",
                        v.span(),
                    ));
                }
                Some(text)
            }
        };
        if format.is_some() && function.is_none() {
            return Err(OttlError::new("replacementFormat needs a function", call.span));
        }
        Ok(Replacement { value, function, format })
    }

    fn evaluate(&self, view: &super::record::Record<'_>) -> Result<String, EvalError> {
        match (self.value)(view)? {
            Val::Str(s) => Ok(s.into_owned()),
            other => Err(format!("the replacement must be a string but got {}", other.type_name())),
        }
    }

    /// The function and format applied to an expanded replacement.
    fn finish(&self, expanded: String) -> Result<String, EvalError> {
        let Some(algorithm) = self.function else { return Ok(expanded) };
        let hashed = crate::pdata::json::hex(ring::digest::digest(algorithm, expanded.as_bytes()).as_ref());
        Ok(match &self.format {
            Some(format) => format.replacen("%s", &hashed, 1),
            None => hashed,
        })
    }

    /// `text` with every match of `regex` replaced, or `None` if nothing matched
    /// (`replace_all` borrows the text back then).
    fn apply_pattern(&self, regex: &Regex, text: &str, replacement: &str) -> Result<Option<String>, EvalError> {
        let changed = |out: Cow<'_, str>| match out {
            Cow::Borrowed(_) => None,
            Cow::Owned(s) => Some(s),
        };
        if self.function.is_none() {
            return Ok(changed(regex.replace_all(text, replacement)));
        }
        let mut error = None;
        let out = regex.replace_all(text, |caps: &regex::Captures<'_>| {
            let mut expanded = String::new();
            caps.expand(replacement, &mut expanded);
            self.finish(expanded).unwrap_or_else(|e| {
                error = Some(e);
                String::new()
            })
        });
        match error {
            Some(e) => Err(e),
            None => Ok(changed(out)),
        }
    }

    fn pattern(
        &self,
        regex: &Regex,
        text: &str,
        view: &super::record::Record<'_>,
    ) -> Result<Option<String>, EvalError> {
        if !regex.is_match(text) {
            return Ok(None);
        }
        let replacement = self.evaluate(view)?;
        self.apply_pattern(regex, text, &replacement)
    }
}

/// Nested maps joined with `.` and slices keyed by index, `depth` levels deep.
fn flatten_into(out: &mut Vec<KeyValue>, map: Vec<KeyValue>, prefix: &str, depth: usize, resolve_conflicts: bool) {
    for kv in map {
        let key = if prefix.is_empty() { kv.key } else { format!("{prefix}.{}", kv.key) };
        match kv.value {
            Some(AnyValue { value: Some(any_value::Value::KvlistValue(inner)) }) if depth > 0 => {
                flatten_into(out, inner.values, &key, depth - 1, resolve_conflicts);
            }
            Some(AnyValue { value: Some(any_value::Value::ArrayValue(ArrayValue { values })) }) if depth > 0 => {
                let items = values
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| KeyValue { key: i.to_string(), value: Some(v), ..Default::default() })
                    .collect();
                flatten_into(out, items, &key, depth - 1, resolve_conflicts);
            }
            value => put(out, key, value, resolve_conflicts),
        }
    }
}

fn put(out: &mut Vec<KeyValue>, key: String, value: Option<AnyValue>, resolve_conflicts: bool) {
    match out.iter().position(|e| e.key == key) {
        Some(at) if !resolve_conflicts => out[at].value = value,
        Some(_) => {
            let mut n = 0;
            let key = loop {
                let candidate = format!("{key}.{n}");
                if !out.iter().any(|e| e.key == candidate) {
                    break candidate;
                }
                n += 1;
            };
            out.push(KeyValue { key, value, ..Default::default() });
        }
        None => out.push(KeyValue { key, value, ..Default::default() }),
    }
}
