//! Writing through a path: a field's setter, or a map or log body and the keys into
//! it. As upstream: a missing map key is created, an empty value indexed with a
//! string becomes a map and with an int a slice padded with empty values, an index
//! out of bounds is an error, and indexing a value that is neither map nor slice is
//! an error.

use std::borrow::Cow;

use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList, any_value};

use super::OttlError;
use super::ast::Key;
use super::compile::{EvalError, Getter, compile_value};
use super::record::{Kind, Record, RecordMut};
use super::value::Val;

type Set = for<'a, 'b> fn(&'a mut RecordMut<'b>, Val<'static>) -> Result<(), EvalError>;
type MapMut = for<'a, 'b> fn(&'a mut RecordMut<'b>) -> Option<&'a mut Vec<KeyValue>>;
type CustomSet = Box<dyn Fn(&mut RecordMut<'_>, Val<'static>) -> Result<(), EvalError> + Send + Sync>;

/// A key of a path, compiled: literal, or read per item (`attributes[cache["k"]]`).
pub enum KeyStep {
    Str(String),
    Int(i64),
    Dyn(Getter),
}

/// How a path is written.
pub enum Write {
    /// A field of the item.
    Field(Set),
    /// A field that needs what the path said (`trace_state["k"]`).
    Custom(CustomSet),
    /// A map (attributes, cache, metadata) and the keys into it.
    Map(MapMut, Keys),
    /// The log body and the keys into it.
    Body(Keys),
}

/// A path's keys: as compiled, and resolved once already when they are all literal,
/// so writing through `attributes["k"]` allocates nothing for the key.
pub struct Keys {
    steps: Vec<KeyStep>,
    fixed: Option<Vec<Step<'static>>>,
}

impl Keys {
    fn resolve<'k>(&'k self, view: &Record<'_>) -> Result<Cow<'k, [Step<'k>]>, EvalError> {
        match &self.fixed {
            Some(fixed) => Ok(Cow::Borrowed(&fixed[..])),
            None => resolve(&self.steps, view).map(Cow::Owned),
        }
    }
}

/// Compiles a path's keys for writing; computed keys read the same record.
pub fn steps(kind: Kind, keys: &[Key]) -> Result<Keys, OttlError> {
    let steps = keys
        .iter()
        .map(|key| {
            Ok(match key {
                Key::String(k, _) => KeyStep::Str(k.clone()),
                Key::Int(i, _) => KeyStep::Int(*i),
                Key::Expr(expr) => KeyStep::Dyn(compile_value(kind, expr)?),
            })
        })
        .collect::<Result<Vec<_>, OttlError>>()?;
    let fixed = steps
        .iter()
        .map(|s| match s {
            KeyStep::Str(k) => Some(Step::Key(Cow::Owned(k.clone()))),
            KeyStep::Int(i) => Some(Step::Index(*i)),
            KeyStep::Dyn(_) => None,
        })
        .collect();
    Ok(Keys { steps, fixed })
}

#[derive(Clone)]
pub enum Step<'k> {
    Key(Cow<'k, str>),
    Index(i64),
}

/// The keys as this record names them.
fn resolve<'k>(steps: &'k [KeyStep], view: &Record<'_>) -> Result<Vec<Step<'k>>, EvalError> {
    steps
        .iter()
        .map(|step| {
            Ok(match step {
                KeyStep::Str(k) => Step::Key(Cow::Borrowed(k)),
                KeyStep::Int(i) => Step::Index(*i),
                KeyStep::Dyn(get) => match get(view)? {
                    Val::Str(s) => Step::Key(Cow::Owned(s.into_owned())),
                    Val::Int(i) => Step::Index(i),
                    other => return Err(format!("could not resolve key of type {}", other.type_name())),
                },
            })
        })
        .collect()
}

/// A new slice indexed past its end is padded with empty values up to this many.
const MAX_PADDING: usize = 1024;

fn kind_name(value: &AnyValue) -> &'static str {
    use any_value::Value;
    match &value.value {
        None => "Empty",
        Some(Value::StringValue(_)) => "Str",
        Some(Value::BoolValue(_)) => "Bool",
        Some(Value::IntValue(_)) => "Int",
        Some(Value::DoubleValue(_)) => "Double",
        Some(Value::BytesValue(_)) => "Bytes",
        Some(Value::KvlistValue(_)) => "Map",
        Some(Value::ArrayValue(_)) => "Slice",
        Some(Value::StringValueStrindex(_)) => "Int",
    }
}

/// The value at `key` in `map`, created empty if missing.
fn entry<'m>(map: &'m mut Vec<KeyValue>, key: &str) -> &'m mut AnyValue {
    let at = match map.iter().position(|kv| kv.key == key) {
        Some(at) => at,
        None => {
            map.push(KeyValue { key: key.to_string(), value: Some(AnyValue::default()), ..Default::default() });
            map.len() - 1
        }
    };
    map[at].value.get_or_insert_with(AnyValue::default)
}

/// Walks `steps` from `value`, creating what is missing.
fn descend<'v>(mut value: &'v mut AnyValue, steps: &[Step<'_>]) -> Result<&'v mut AnyValue, EvalError> {
    use any_value::Value;
    for step in steps {
        let created = value.value.is_none();
        if created {
            value.value = Some(match step {
                Step::Key(_) => Value::KvlistValue(KeyValueList::default()),
                Step::Index(_) => Value::ArrayValue(ArrayValue::default()),
            });
        }
        let kind = kind_name(value);
        value = match (step, &mut value.value) {
            (Step::Key(k), Some(Value::KvlistValue(kv))) => entry(&mut kv.values, k),
            (Step::Index(i), Some(Value::ArrayValue(a))) => {
                let out_of_bounds = || format!("index {i} out of bounds");
                let at = usize::try_from(*i).map_err(|_| out_of_bounds())?;
                // A new slice is padded up to the index, within reason.
                if created && at < MAX_PADDING {
                    a.values.resize(at + 1, AnyValue::default());
                }
                a.values.get_mut(at).ok_or_else(out_of_bounds)?
            }
            (Step::Key(_), _) => return Err(format!("type {kind} does not support string indexing")),
            (Step::Index(_), _) => return Err(format!("type {kind} does not support int indexing")),
        };
    }
    Ok(value)
}

/// Walks `steps` from `value` without creating anything: `None` where a key is missing.
fn find<'v>(mut value: &'v mut AnyValue, steps: &[Step<'_>]) -> Result<Option<&'v mut AnyValue>, EvalError> {
    use any_value::Value;
    for step in steps {
        let kind = kind_name(value);
        value = match (step, &mut value.value) {
            (Step::Key(k), Some(Value::KvlistValue(kv))) => {
                match kv.values.iter_mut().find(|e| e.key == *k).and_then(|e| e.value.as_mut()) {
                    Some(v) => v,
                    None => return Ok(None),
                }
            }
            (Step::Index(i), Some(Value::ArrayValue(a))) => usize::try_from(*i)
                .ok()
                .and_then(|at| a.values.get_mut(at))
                .ok_or_else(|| format!("index {i} out of bounds"))?,
            (_, None) => return Ok(None),
            (Step::Key(_), _) => return Err(format!("type {kind} does not support string indexing")),
            (Step::Index(_), _) => return Err(format!("type {kind} does not support int indexing")),
        };
    }
    Ok(Some(value))
}

fn body_of<'a>(rec: &'a mut RecordMut<'_>) -> Result<&'a mut Option<AnyValue>, EvalError> {
    rec.log().map(|l| &mut l.body).ok_or_else(|| "there is no log body in this context".to_string())
}

impl Write {
    /// Writes `value` at the path.
    pub fn set(&self, rec: &mut RecordMut<'_>, value: Val<'static>) -> Result<(), EvalError> {
        match self {
            Write::Field(set) => set(rec, value),
            Write::Custom(set) => set(rec, value),
            Write::Map(root, keys) => {
                let steps = keys.resolve(&rec.view())?;
                let map = root(rec).ok_or_else(|| "the map is not in this context".to_string())?;
                match steps.split_first() {
                    None => match value {
                        Val::Map(m) => *map = m.into_owned(),
                        Val::Nil => map.clear(),
                        other => return Err(format!("expects a map but got {}", other.type_name())),
                    },
                    Some((Step::Key(k), rest)) => *descend(entry(map, k), rest)? = value.into_any(),
                    Some((Step::Index(_), _)) => return Err("a map is indexed with strings".into()),
                }
                Ok(())
            }
            Write::Body(keys) => {
                let steps = keys.resolve(&rec.view())?;
                let body = body_of(rec)?;
                if steps.is_empty() {
                    *body = Some(value.into_any());
                    return Ok(());
                }
                let kind = body.as_ref().map_or("Empty", kind_name);
                match body {
                    Some(
                        b
                        @ AnyValue { value: Some(any_value::Value::KvlistValue(_) | any_value::Value::ArrayValue(_)) },
                    ) => {
                        *descend(b, &steps)? = value.into_any();
                        Ok(())
                    }
                    _ => Err(format!("log bodies of type {kind} cannot be indexed")),
                }
            }
        }
    }

    /// The map at the path, for editors that change a map in place; an error if the
    /// path holds something else or nothing.
    pub fn map_mut<'a>(&self, rec: &'a mut RecordMut<'_>) -> Result<&'a mut Vec<KeyValue>, EvalError> {
        let not_a_map = |kind: &str| format!("expected pcommon.Map but got {kind}");
        let (steps, value) = match self {
            Write::Field(_) | Write::Custom(_) => return Err(not_a_map("a field")),
            Write::Map(root, keys) => {
                let steps = keys.resolve(&rec.view())?;
                let map = root(rec).ok_or_else(|| "the map is not in this context".to_string())?;
                let Some((Step::Key(k), rest)) = steps.split_first() else { return Ok(map) };
                let Some(value) = map.iter_mut().find(|e| e.key == *k).and_then(|e| e.value.as_mut()) else {
                    return Err(not_a_map("nil"));
                };
                (
                    rest.iter()
                        .map(|s| match s {
                            Step::Key(k) => Step::Key(Cow::Owned(k.to_string())),
                            Step::Index(i) => Step::Index(*i),
                        })
                        .collect::<Vec<_>>(),
                    value,
                )
            }
            Write::Body(keys) => {
                let steps: Vec<Step<'static>> = keys
                    .resolve(&rec.view())?
                    .iter()
                    .cloned()
                    .map(|s| match s {
                        Step::Key(k) => Step::Key(Cow::Owned(k.into_owned())),
                        Step::Index(i) => Step::Index(i),
                    })
                    .collect();
                let Some(body) = body_of(rec)?.as_mut() else { return Err(not_a_map("nil")) };
                (steps, body)
            }
        };
        match find(value, &steps)? {
            Some(AnyValue { value: Some(any_value::Value::KvlistValue(kv)) }) => Ok(&mut kv.values),
            Some(other) => Err(not_a_map(kind_name(other))),
            None => Err(not_a_map("nil")),
        }
    }

    /// Whether the path is a map or something in one (a target of the map editors).
    pub fn may_be_map(&self) -> bool {
        matches!(self, Write::Map(..) | Write::Body(..))
    }
}
