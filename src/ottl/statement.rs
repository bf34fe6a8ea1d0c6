//! Statements: an editor with its optional `where` condition, compiled for one
//! context, and upstream's context inference (the most specific context any path
//! names, else the signal's own item).

use super::ast::{BoolExpr, Key, Path, Value};
use super::compile::{Condition, EvalError};
use super::record::{Kind, RecordMut};
use super::{OttlError, ast};
use crate::pdata::Signal;

pub(super) type Editor = Box<dyn Fn(&mut RecordMut<'_>) -> Result<(), EvalError> + Send + Sync>;

/// A compiled statement: `editor(args) where condition`.
pub struct Statement {
    condition: Option<Condition>,
    editor: Editor,
}

impl Statement {
    pub fn compile(kind: Kind, statement: &ast::Statement) -> Result<Statement, OttlError> {
        let condition = statement.condition.as_ref().map(|c| Condition::compile(kind, c)).transpose()?;
        let editor = super::editors::editor(kind, &statement.editor)?;
        Ok(Statement { condition, editor })
    }

    /// Parses and compiles `text` in the `kind` context.
    pub fn parse(kind: Kind, text: &str) -> Result<Statement, OttlError> {
        Self::compile(kind, &super::parse_statement(text)?)
    }

    /// Runs the editor on `record` if the condition holds.
    pub fn exec(&self, record: &mut RecordMut<'_>) -> Result<(), EvalError> {
        if let Some(condition) = &self.condition
            && !condition.eval(&record.view())?
        {
            return Ok(());
        }
        (self.editor)(record)
    }
}

/// Whether a statement only writes its own item and uses no `cache`: several such
/// statements of one context may run item by item in one pass over the batch with
/// the same result as one pass each.
pub fn is_local(kind: Kind, statement: &ast::Statement) -> bool {
    let mut uses_cache = false;
    let mut visit = |path: &Path| {
        uses_cache |= path.fields.iter().any(|f| f.name == "cache");
    };
    for_each_path_in_call(&statement.editor, &mut visit);
    if let Some(c) = &statement.condition {
        for_each_path_in_bool(c, &mut visit);
    }
    let own_target = match statement.editor.args.first().map(|a| &a.value) {
        Some(Value::Path(path)) => match &path.fields[..] {
            [first, _, ..] if first.keys.is_empty() => Kind::parse(&first.name).is_none_or(|k| k == kind),
            _ => true,
        },
        _ => true,
    };
    own_target && !uses_cache
}

fn for_each_path_in_call(call: &ast::Call, f: &mut dyn FnMut(&Path)) {
    for arg in &call.args {
        for_each_path(&arg.value, f);
    }
}

fn for_each_path(value: &Value, f: &mut dyn FnMut(&Path)) {
    match value {
        Value::Path(p) => {
            f(p);
            for field in &p.fields {
                for key in &field.keys {
                    if let Key::Expr(v) = key {
                        for_each_path(v, f);
                    }
                }
            }
        }
        Value::Converter(c) => for_each_path_in_call(c, f),
        Value::List(items, _) => items.iter().for_each(|v| for_each_path(v, f)),
        Value::Map(items, _) => items.iter().for_each(|(_, v)| for_each_path(v, f)),
        Value::Math { lhs, rhs, .. } => {
            for_each_path(lhs, f);
            for_each_path(rhs, f);
        }
        _ => {}
    }
}

fn for_each_path_in_bool(expr: &BoolExpr, f: &mut dyn FnMut(&Path)) {
    match expr {
        BoolExpr::Or(a, b) | BoolExpr::And(a, b) => {
            for_each_path_in_bool(a, f);
            for_each_path_in_bool(b, f);
        }
        BoolExpr::Not(inner, _) => for_each_path_in_bool(inner, f),
        BoolExpr::Compare { lhs, rhs, .. } => {
            for_each_path(lhs, f);
            for_each_path(rhs, f);
        }
        BoolExpr::Value(v) => for_each_path(v, f),
    }
}

/// The most specific context first, as upstream's inference ranks them.
const PRIORITY: [Kind; 7] =
    [Kind::Log, Kind::DataPoint, Kind::Metric, Kind::SpanEvent, Kind::Span, Kind::Resource, Kind::Scope];

/// The signal's own item, for statements whose paths name no context.
fn item_kind(signal: Signal) -> Kind {
    match signal {
        Signal::Logs => Kind::Log,
        Signal::Metrics => Kind::Metric,
        Signal::Traces => Kind::Span,
    }
}

/// Infers the context of statements and conditions of one group, for a signal, and
/// compiles them with `compile`: the most specific context a path names; if that
/// context cannot compile them (an enum or path of a lower one), the lower contexts
/// of the signal in turn. Paths naming no context belong to the signal's own item.
pub fn infer<T>(
    signal: Signal,
    statements: &[&ast::Statement],
    conditions: &[&BoolExpr],
    mut compile: impl FnMut(Kind) -> Result<T, OttlError>,
) -> Result<(Kind, T), OttlError> {
    let mut named = Vec::new();
    for s in statements {
        call_prefixes(&s.editor, &mut named);
        if let Some(c) = &s.condition {
            bool_prefixes(c, &mut named);
        }
    }
    for c in conditions {
        bool_prefixes(c, &mut named);
    }
    let allowed = Kind::of_signal(signal);
    if let Some((kind, span)) = named.iter().find(|(k, _)| !allowed.contains(k)) {
        return Err(OttlError::new(
            format!(
                "`{}` paths are not part of {} (contexts: {})",
                kind.name(),
                signal.as_str(),
                allowed.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
            ),
            *span,
        ));
    }
    let inferred = PRIORITY.into_iter().find(|k| named.iter().any(|(n, _)| n == k)).unwrap_or(item_kind(signal));
    let first = match compile(inferred) {
        Ok(out) => return Ok((inferred, out)),
        Err(e) => e,
    };
    // Lower contexts: those that reach the inferred one.
    for kind in PRIORITY.into_iter().rev() {
        if kind != inferred
            && allowed.contains(&kind)
            && kind.reaches(inferred)
            && let Ok(out) = compile(kind)
        {
            return Ok((kind, out));
        }
    }
    Err(first)
}

fn path_prefix(path: &Path, out: &mut Vec<(Kind, super::Span)>) {
    if let [first, _, ..] = &path.fields[..]
        && first.keys.is_empty()
        && let Some(kind) = Kind::parse(&first.name)
    {
        out.push((kind, first.span));
    }
    for field in &path.fields {
        keys_prefixes(&field.keys, out);
    }
}

fn keys_prefixes(keys: &[Key], out: &mut Vec<(Kind, super::Span)>) {
    for key in keys {
        if let Key::Expr(v) = key {
            value_prefixes(v, out);
        }
    }
}

fn call_prefixes(call: &ast::Call, out: &mut Vec<(Kind, super::Span)>) {
    for arg in &call.args {
        value_prefixes(&arg.value, out);
    }
    keys_prefixes(&call.keys, out);
}

fn value_prefixes(value: &Value, out: &mut Vec<(Kind, super::Span)>) {
    match value {
        Value::Path(p) => path_prefix(p, out),
        Value::Converter(c) => call_prefixes(c, out),
        Value::List(items, _) => items.iter().for_each(|v| value_prefixes(v, out)),
        Value::Map(items, _) => items.iter().for_each(|(_, v)| value_prefixes(v, out)),
        Value::Math { lhs, rhs, .. } => {
            value_prefixes(lhs, out);
            value_prefixes(rhs, out);
        }
        _ => {}
    }
}

fn bool_prefixes(expr: &BoolExpr, out: &mut Vec<(Kind, super::Span)>) {
    match expr {
        BoolExpr::Or(a, b) | BoolExpr::And(a, b) => {
            bool_prefixes(a, out);
            bool_prefixes(b, out);
        }
        BoolExpr::Not(inner, _) => bool_prefixes(inner, out),
        BoolExpr::Compare { lhs, rhs, .. } => {
            value_prefixes(lhs, out);
            value_prefixes(rhs, out);
        }
        BoolExpr::Value(v) => value_prefixes(v, out),
    }
}
