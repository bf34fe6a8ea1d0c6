//! OTTL's values at run time: borrowed from the record where they can be (reading an
//! attribute or comparing a field allocates nothing), owned where a converter made
//! them. Comparisons follow upstream's table and never fail.

use std::borrow::Cow;
use std::cmp::Ordering;

use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList, any_value};

use super::ast::CompareOp;

#[derive(Clone, Debug, PartialEq)]
pub enum Val<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Bytes(Cow<'a, [u8]>),
    Map(Cow<'a, [KeyValue]>),
    List(Cow<'a, [AnyValue]>),
    /// A point in time, in nanoseconds since the Unix epoch (`Now()`, `Time(...)`,
    /// the `time` paths).
    Time(i64),
}

impl<'a> Val<'a> {
    /// An OTLP value as OTTL sees it: unwrapped, an empty one as nil.
    pub fn of(value: Option<&'a AnyValue>) -> Val<'a> {
        use any_value::Value;
        match value.and_then(|v| v.value.as_ref()) {
            None => Val::Nil,
            Some(Value::StringValue(s)) => Val::Str(Cow::Borrowed(s)),
            Some(Value::BoolValue(b)) => Val::Bool(*b),
            Some(Value::IntValue(i)) => Val::Int(*i),
            Some(Value::DoubleValue(f)) => Val::Float(*f),
            Some(Value::BytesValue(b)) => Val::Bytes(Cow::Borrowed(b)),
            Some(Value::KvlistValue(kv)) => Val::Map(Cow::Borrowed(&kv.values)),
            Some(Value::ArrayValue(a)) => Val::List(Cow::Borrowed(&a.values)),
            // An index into a profile's string table: no value outside profiles.
            Some(Value::StringValueStrindex(_)) => Val::Nil,
        }
    }

    /// The type's name in error messages, as upstream says it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Nil => "nil",
            Val::Bool(_) => "bool",
            Val::Int(_) => "int64",
            Val::Float(_) => "float64",
            Val::Str(_) => "string",
            Val::Bytes(_) => "[]byte",
            Val::Map(_) => "pcommon.Map",
            Val::List(_) => "pcommon.Slice",
            Val::Time(_) => "time.Time",
        }
    }

    /// `map["key"]`: nil when the key is missing.
    pub fn key(self, key: &str) -> Result<Val<'a>, String> {
        match self {
            Val::Map(Cow::Borrowed(map)) => Ok(lookup(map, key)),
            Val::Map(Cow::Owned(map)) => Ok(lookup(&map, key).into_owned()),
            Val::Nil => Ok(Val::Nil),
            other => Err(format!("type {} does not support string indexing", other.type_name())),
        }
    }

    /// `list[i]`: an error when out of bounds, as upstream.
    pub fn index(self, i: i64) -> Result<Val<'a>, String> {
        let out_of_bounds = || format!("index {i} out of bounds");
        match self {
            Val::List(Cow::Borrowed(list)) => {
                usize::try_from(i).ok().and_then(|i| list.get(i)).map(|v| Val::of(Some(v))).ok_or_else(out_of_bounds)
            }
            Val::List(Cow::Owned(list)) => usize::try_from(i)
                .ok()
                .and_then(|i| list.get(i))
                .map(|v| Val::of(Some(v)).into_owned())
                .ok_or_else(out_of_bounds),
            Val::Nil => Ok(Val::Nil),
            other => Err(format!("type {} does not support int indexing", other.type_name())),
        }
    }

    pub fn into_owned(self) -> Val<'static> {
        match self {
            Val::Nil => Val::Nil,
            Val::Bool(b) => Val::Bool(b),
            Val::Int(i) => Val::Int(i),
            Val::Float(f) => Val::Float(f),
            Val::Str(s) => Val::Str(Cow::Owned(s.into_owned())),
            Val::Bytes(b) => Val::Bytes(Cow::Owned(b.into_owned())),
            Val::Map(m) => Val::Map(Cow::Owned(m.into_owned())),
            Val::List(l) => Val::List(Cow::Owned(l.into_owned())),
            Val::Time(t) => Val::Time(t),
        }
    }

    /// The OTLP value to store: nil is the empty value.
    pub fn into_any(self) -> AnyValue {
        use any_value::Value;
        let value = match self {
            Val::Nil => None,
            Val::Bool(b) => Some(Value::BoolValue(b)),
            Val::Int(i) => Some(Value::IntValue(i)),
            Val::Float(f) => Some(Value::DoubleValue(f)),
            Val::Str(s) => Some(Value::StringValue(s.into_owned())),
            Val::Bytes(b) => Some(Value::BytesValue(b.into_owned())),
            Val::Map(m) => Some(Value::KvlistValue(KeyValueList { values: m.into_owned() })),
            Val::List(l) => Some(Value::ArrayValue(ArrayValue { values: l.into_owned() })),
            // Upstream's setters write nothing for a time.Time; an int of nanoseconds
            // is what a user can read back.
            Val::Time(t) => Some(Value::IntValue(t)),
        };
        AnyValue { value }
    }

    /// Upstream's comparison table: numbers across int and float, strings and bytes
    /// in byte order, `false < true`, nil equal only to nil (and to empty bytes),
    /// maps and lists by deep equality for `==`/`!=` only; a mismatched pair is only
    /// ever `!=`.
    pub fn compare(&self, op: CompareOp, other: &Val<'_>) -> bool {
        let ordering = match (self, other) {
            (Val::Int(a), Val::Int(b)) => Some(a.cmp(b)),
            (Val::Float(a), Val::Float(b)) => a.partial_cmp(b),
            (Val::Int(a), Val::Float(b)) => (*a as f64).partial_cmp(b),
            (Val::Float(a), Val::Int(b)) => a.partial_cmp(&(*b as f64)),
            (Val::Str(a), Val::Str(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
            (Val::Bool(a), Val::Bool(b)) => Some(a.cmp(b)),
            (Val::Bytes(a), Val::Bytes(b)) => Some(a.as_ref().cmp(b.as_ref())),
            (Val::Time(a), Val::Time(b)) => Some(a.cmp(b)),
            (Val::Nil, Val::Nil) => Some(Ordering::Equal),
            (Val::Nil, Val::Bytes(b)) | (Val::Bytes(b), Val::Nil) if b.is_empty() => Some(Ordering::Equal),
            (Val::Map(a), Val::Map(b)) => {
                return match op {
                    CompareOp::Eq => a == b,
                    CompareOp::Ne => a != b,
                    _ => false,
                };
            }
            (Val::List(a), Val::List(b)) => {
                return match op {
                    CompareOp::Eq => a == b,
                    CompareOp::Ne => a != b,
                    _ => false,
                };
            }
            _ => None,
        };
        match (op, ordering) {
            (CompareOp::Ne, None) => true,
            (_, None) => false,
            (CompareOp::Eq, Some(o)) => o == Ordering::Equal,
            (CompareOp::Ne, Some(o)) => o != Ordering::Equal,
            (CompareOp::Lt, Some(o)) => o == Ordering::Less,
            (CompareOp::Le, Some(o)) => o != Ordering::Greater,
            (CompareOp::Gt, Some(o)) => o == Ordering::Greater,
            (CompareOp::Ge, Some(o)) => o != Ordering::Less,
        }
    }
}

fn lookup<'a>(map: &'a [KeyValue], key: &str) -> Val<'a> {
    map.iter().find(|kv| kv.key == key).map_or(Val::Nil, |kv| Val::of(kv.value.as_ref()))
}
