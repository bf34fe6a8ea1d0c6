//! Upstream's paths for every context, resolved once at compile time into a getter
//! and, where the path can be written, a [`Write`]. A path names its context with a
//! prefix (`resource.attributes`, `span.name` from a span event) or belongs to the
//! statement's own context (`attributes`); `cache` is only the own context's.
//!
//! Setters check types as current upstream does: `set(severity_number, "9")` is an
//! error, not a silent no-op, and a scalar field cannot be set to nil.

// Each setter is one assignment: `Ok(field = value?)` keeps the sixty of them to a
// line each.
#![allow(clippy::unit_arg)]

use std::borrow::Cow;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use opentelemetry_proto::tonic::trace::v1::Status;

use super::OttlError;
use super::ast::{Field, Path};
use super::compile::{EvalError, Getter, getter, with_keys};
use super::record::{Item, Kind, Point, PointMut, Record, RecordMut};
use super::value::Val;
use super::write::{Write, steps};

/// A resolved path: how to read it, and how to write it if it can be.
pub struct Access {
    pub get: Getter,
    pub write: Option<Write>,
}

type Read = for<'c> fn(&'c Record<'c>) -> Val<'c>;
type Set = for<'a, 'b> fn(&'a mut RecordMut<'b>, Val<'static>) -> Result<(), EvalError>;
type MapRead = for<'c> fn(&'c Record<'c>) -> Option<&'c [KeyValue]>;
type MapMut = for<'a, 'b> fn(&'a mut RecordMut<'b>) -> Option<&'a mut Vec<KeyValue>>;

const RESOURCE_PATHS: &str = "attributes, dropped_attributes_count, schema_url";
const SCOPE_PATHS: &str = "name, version, attributes, dropped_attributes_count, schema_url";
const LOG_PATHS: &str = "attributes, body, body.string, dropped_attributes_count, event_name, flags, \
     observed_time, observed_time_unix_nano, severity_number, severity_text, span_id, span_id.string, time, \
     time_unix_nano, trace_id, trace_id.string";
const SPAN_PATHS: &str = "attributes, dropped_attributes_count, dropped_events_count, dropped_links_count, \
     end_time, end_time_unix_nano, flags, kind, kind.string, kind.deprecated_string, name, parent_span_id, \
     parent_span_id.string, span_id, span_id.string, start_time, start_time_unix_nano, status.code, status.message, \
     trace_id, trace_id.string, trace_state";
const EVENT_PATHS: &str = "attributes, dropped_attributes_count, event_index, name, time, time_unix_nano";
const METRIC_PATHS: &str = "aggregation_temporality, description, is_monotonic, metadata, name, type, unit";
const POINT_PATHS: &str = "attributes, count, flags, scale, start_time, start_time_unix_nano, sum, time, \
     time_unix_nano, value_double, value_int, zero_count";

/// Resolves `path` as the `kind` context reads it.
pub fn resolve(kind: Kind, path: &Path) -> Result<Access, OttlError> {
    let (owner, fields) = match path.fields.split_first() {
        Some((first, rest)) if first.keys.is_empty() && !rest.is_empty() => match Kind::parse(&first.name) {
            Some(owner) if kind.reaches(owner) => (owner, rest),
            Some(owner) => {
                return Err(OttlError::new(
                    format!("`{}` paths cannot be used in the {} context", owner.name(), kind.name()),
                    first.span,
                ));
            }
            None => (kind, &path.fields[..]),
        },
        _ => (kind, &path.fields[..]),
    };
    if let [field] = fields
        && field.name == "cache"
    {
        if owner != kind {
            return Err(OttlError::new(
                format!(
                    "`{}.cache` is not this statement's cache; the {} context has `cache`",
                    owner.name(),
                    kind.name()
                ),
                path.span,
            ));
        }
        return map(kind, field, |r| Some(r.cache), |m| Some(&mut *m.cache));
    }
    let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    let unknown = |known: &str| {
        OttlError::new(
            format!("`{}` is not a path of the {} context; its paths: {known}, cache", names.join("."), owner.name()),
            path.span,
        )
    };
    let Some((first, rest)) = fields.split_first() else { return Err(unknown("")) };
    let last = fields.last().unwrap_or(first);
    if fields[..fields.len() - 1].iter().any(|f| !f.keys.is_empty()) {
        return Err(OttlError::new("only the last part of a path can be indexed", path.span));
    }
    let scalar = |read: Read, set: Option<Set>| -> Result<Access, OttlError> {
        if !last.keys.is_empty() {
            return Err(OttlError::new(format!("`{}` cannot be indexed", names.join(".")), path.span));
        }
        Ok(Access { get: getter(move |r| Ok(read(r))), write: set.map(Write::Field) })
    };
    let second = rest.first().map(|f| f.name.as_str());
    match owner {
        Kind::Resource => match (first.name.as_str(), rest.len()) {
            ("attributes", 0) => {
                map(kind, first, |r| Some(&r.resource.attributes), |m| Some(&mut m.resource.attributes))
            }
            ("dropped_attributes_count", 0) => scalar(
                |r| Val::Int(i64::from(r.resource.dropped_attributes_count)),
                Some(|m, v| Ok(m.resource.dropped_attributes_count = want_int(v)? as u32)),
            ),
            ("schema_url", 0) => scalar(
                |r| Val::Str(Cow::Borrowed(r.resource_schema_url)),
                Some(|m, v| Ok(*m.resource_schema_url = want_str(v)?)),
            ),
            _ => Err(unknown(RESOURCE_PATHS)),
        },
        Kind::Scope => match (first.name.as_str(), rest.len()) {
            ("attributes", 0) => map(kind, first, |r| Some(&r.scope.attributes), |m| Some(&mut m.scope.attributes)),
            ("name", 0) => {
                scalar(|r| Val::Str(Cow::Borrowed(&r.scope.name)), Some(|m, v| Ok(m.scope.name = want_str(v)?)))
            }
            ("version", 0) => {
                scalar(|r| Val::Str(Cow::Borrowed(&r.scope.version)), Some(|m, v| Ok(m.scope.version = want_str(v)?)))
            }
            ("dropped_attributes_count", 0) => scalar(
                |r| Val::Int(i64::from(r.scope.dropped_attributes_count)),
                Some(|m, v| Ok(m.scope.dropped_attributes_count = want_int(v)? as u32)),
            ),
            ("schema_url", 0) => scalar(
                |r| Val::Str(Cow::Borrowed(r.scope_schema_url)),
                Some(|m, v| Ok(*m.scope_schema_url = want_str(v)?)),
            ),
            _ => Err(unknown(SCOPE_PATHS)),
        },
        Kind::Log => log_path(kind, first, second, rest.len(), scalar).ok_or_else(|| unknown(LOG_PATHS))?,
        Kind::Span => span_path(kind, first, second, rest.len(), scalar).ok_or_else(|| unknown(SPAN_PATHS))?,
        Kind::SpanEvent => match (first.name.as_str(), rest.len()) {
            ("attributes", 0) => map(
                kind,
                first,
                |r| match r.item {
                    Item::Event(_, e) => Some(&e.attributes),
                    _ => None,
                },
                |m| m.event().map(|e| &mut e.attributes),
            ),
            ("name", 0) => scalar(
                |r| event(r).map_or(Val::Nil, |e| Val::Str(Cow::Borrowed(&e.name))),
                Some(|m, v| Ok(item(m.event())?.name = want_str(v)?)),
            ),
            ("time_unix_nano", 0) => scalar(
                |r| event(r).map_or(Val::Nil, |e| Val::Int(e.time_unix_nano as i64)),
                Some(|m, v| Ok(item(m.event())?.time_unix_nano = want_int(v)? as u64)),
            ),
            ("time", 0) => scalar(
                |r| event(r).map_or(Val::Nil, |e| Val::Time(e.time_unix_nano as i64)),
                Some(|m, v| Ok(item(m.event())?.time_unix_nano = want_time(v)? as u64)),
            ),
            ("dropped_attributes_count", 0) => scalar(
                |r| event(r).map_or(Val::Nil, |e| Val::Int(i64::from(e.dropped_attributes_count))),
                Some(|m, v| Ok(item(m.event())?.dropped_attributes_count = want_int(v)? as u32)),
            ),
            ("event_index", 0) => scalar(
                |r| match r.item {
                    Item::Event(s, e) => {
                        Val::Int(s.events.iter().position(|x| std::ptr::eq(x, e)).map_or(-1, |i| i as i64))
                    }
                    _ => Val::Nil,
                },
                None,
            ),
            _ => Err(unknown(EVENT_PATHS)),
        },
        Kind::Metric => metric_path(kind, first, rest.len(), scalar).ok_or_else(|| unknown(METRIC_PATHS))?,
        Kind::DataPoint => point_path(kind, first, rest.len(), scalar).ok_or_else(|| unknown(POINT_PATHS))?,
    }
}

fn log_path(
    kind: Kind,
    first: &Field,
    second: Option<&str>,
    depth: usize,
    scalar: impl Fn(Read, Option<Set>) -> Result<Access, OttlError>,
) -> Option<Result<Access, OttlError>> {
    Some(match (first.name.as_str(), second, depth) {
        ("attributes", None, _) => map(
            kind,
            first,
            |r| match r.item {
                Item::Log(l) => Some(&l.attributes),
                _ => None,
            },
            |m| m.log().map(|l| &mut l.attributes),
        ),
        ("body", None, _) => body(kind, first),
        ("body", Some("string"), 1) => scalar(
            |r| log(r).map_or(Val::Nil, |l| Val::Str(Cow::Owned(body_string(l.body.as_ref())))),
            Some(|m, v| {
                item(m.log())?.body = Some(Val::Str(Cow::Owned(want_str(v)?)).into_any());
                Ok(())
            }),
        ),
        ("severity_number", None, 0) => scalar(
            |r| log(r).map_or(Val::Nil, |l| Val::Int(i64::from(l.severity_number))),
            Some(|m, v| Ok(item(m.log())?.severity_number = want_int(v)? as i32)),
        ),
        ("severity_text", None, 0) => scalar(
            |r| log(r).map_or(Val::Nil, |l| Val::Str(Cow::Borrowed(&l.severity_text))),
            Some(|m, v| Ok(item(m.log())?.severity_text = want_str(v)?)),
        ),
        ("time_unix_nano", None, 0) => scalar(
            |r| log(r).map_or(Val::Nil, |l| Val::Int(l.time_unix_nano as i64)),
            Some(|m, v| Ok(item(m.log())?.time_unix_nano = want_int(v)? as u64)),
        ),
        ("time", None, 0) => scalar(
            |r| log(r).map_or(Val::Nil, |l| Val::Time(l.time_unix_nano as i64)),
            Some(|m, v| Ok(item(m.log())?.time_unix_nano = want_time(v)? as u64)),
        ),
        ("observed_time_unix_nano", None, 0) => scalar(
            |r| log(r).map_or(Val::Nil, |l| Val::Int(l.observed_time_unix_nano as i64)),
            Some(|m, v| Ok(item(m.log())?.observed_time_unix_nano = want_int(v)? as u64)),
        ),
        ("observed_time", None, 0) => scalar(
            |r| log(r).map_or(Val::Nil, |l| Val::Time(l.observed_time_unix_nano as i64)),
            Some(|m, v| Ok(item(m.log())?.observed_time_unix_nano = want_time(v)? as u64)),
        ),
        ("flags", None, 0) => scalar(
            |r| log(r).map_or(Val::Nil, |l| Val::Int(i64::from(l.flags))),
            Some(|m, v| Ok(item(m.log())?.flags = want_int(v)? as u32)),
        ),
        ("dropped_attributes_count", None, 0) => scalar(
            |r| log(r).map_or(Val::Nil, |l| Val::Int(i64::from(l.dropped_attributes_count))),
            Some(|m, v| Ok(item(m.log())?.dropped_attributes_count = want_int(v)? as u32)),
        ),
        ("event_name", None, 0) => scalar(
            |r| log(r).map_or(Val::Nil, |l| Val::Str(Cow::Borrowed(&l.event_name))),
            Some(|m, v| Ok(item(m.log())?.event_name = want_str(v)?)),
        ),
        ("trace_id", None, 0) => scalar(
            |r| log(r).map_or(Val::Nil, |l| Val::Bytes(Cow::Borrowed(&l.trace_id))),
            Some(|m, v| Ok(item(m.log())?.trace_id = want_id(v, 16)?)),
        ),
        ("trace_id", Some("string"), 1) => scalar(
            |r| log(r).map_or(Val::Nil, |l| hex_string(&l.trace_id)),
            Some(|m, v| Ok(item(m.log())?.trace_id = want_hex_id(v, 16)?)),
        ),
        ("span_id", None, 0) => scalar(
            |r| log(r).map_or(Val::Nil, |l| Val::Bytes(Cow::Borrowed(&l.span_id))),
            Some(|m, v| Ok(item(m.log())?.span_id = want_id(v, 8)?)),
        ),
        ("span_id", Some("string"), 1) => scalar(
            |r| log(r).map_or(Val::Nil, |l| hex_string(&l.span_id)),
            Some(|m, v| Ok(item(m.log())?.span_id = want_hex_id(v, 8)?)),
        ),
        _ => return None,
    })
}

fn span_path(
    kind: Kind,
    first: &Field,
    second: Option<&str>,
    depth: usize,
    scalar: impl Fn(Read, Option<Set>) -> Result<Access, OttlError>,
) -> Option<Result<Access, OttlError>> {
    Some(match (first.name.as_str(), second, depth) {
        ("attributes", None, _) => {
            map(kind, first, |r| r.span().map(|s| &s.attributes[..]), |m| m.span().map(|s| &mut s.attributes))
        }
        ("name", None, 0) => scalar(
            |r| r.span().map_or(Val::Nil, |s| Val::Str(Cow::Borrowed(&s.name))),
            Some(|m, v| Ok(item(m.span())?.name = want_str(v)?)),
        ),
        ("kind", None, 0) => scalar(
            |r| r.span().map_or(Val::Nil, |s| Val::Int(i64::from(s.kind))),
            Some(|m, v| Ok(item(m.span())?.kind = want_int(v)? as i32)),
        ),
        ("kind", Some("string"), 1) => scalar(
            |r| {
                r.span().map_or(Val::Nil, |s| {
                    Val::Str(Cow::Borrowed(KIND_NAMES.get(s.kind as usize).copied().unwrap_or("")))
                })
            },
            Some(|m, v| {
                let name = want_str(v)?;
                let kind = KIND_NAMES
                    .iter()
                    .position(|k| *k == name)
                    .ok_or_else(|| format!("unknown span kind string, {name}"))?;
                Ok(item(m.span())?.kind = kind as i32)
            }),
        ),
        ("kind", Some("deprecated_string"), 1) => scalar(
            |r| {
                r.span().map_or(Val::Nil, |s| {
                    Val::Str(Cow::Borrowed(DEPRECATED_KIND_NAMES.get(s.kind as usize).copied().unwrap_or("")))
                })
            },
            Some(|m, v| {
                let name = want_str(v)?;
                let kind = DEPRECATED_KIND_NAMES
                    .iter()
                    .position(|k| *k == name)
                    .ok_or_else(|| format!("unknown span kind deprecated string, {name}"))?;
                Ok(item(m.span())?.kind = kind as i32)
            }),
        ),
        ("start_time_unix_nano", None, 0) => scalar(
            |r| r.span().map_or(Val::Nil, |s| Val::Int(s.start_time_unix_nano as i64)),
            Some(|m, v| Ok(item(m.span())?.start_time_unix_nano = want_int(v)? as u64)),
        ),
        ("end_time_unix_nano", None, 0) => scalar(
            |r| r.span().map_or(Val::Nil, |s| Val::Int(s.end_time_unix_nano as i64)),
            Some(|m, v| Ok(item(m.span())?.end_time_unix_nano = want_int(v)? as u64)),
        ),
        ("start_time", None, 0) => scalar(
            |r| r.span().map_or(Val::Nil, |s| Val::Time(s.start_time_unix_nano as i64)),
            Some(|m, v| Ok(item(m.span())?.start_time_unix_nano = want_time(v)? as u64)),
        ),
        ("end_time", None, 0) => scalar(
            |r| r.span().map_or(Val::Nil, |s| Val::Time(s.end_time_unix_nano as i64)),
            Some(|m, v| Ok(item(m.span())?.end_time_unix_nano = want_time(v)? as u64)),
        ),
        ("flags", None, 0) => scalar(
            |r| r.span().map_or(Val::Nil, |s| Val::Int(i64::from(s.flags))),
            Some(|m, v| Ok(item(m.span())?.flags = want_int(v)? as u32)),
        ),
        ("dropped_attributes_count", None, 0) => scalar(
            |r| r.span().map_or(Val::Nil, |s| Val::Int(i64::from(s.dropped_attributes_count))),
            Some(|m, v| Ok(item(m.span())?.dropped_attributes_count = want_int(v)? as u32)),
        ),
        ("dropped_events_count", None, 0) => scalar(
            |r| r.span().map_or(Val::Nil, |s| Val::Int(i64::from(s.dropped_events_count))),
            Some(|m, v| Ok(item(m.span())?.dropped_events_count = want_int(v)? as u32)),
        ),
        ("dropped_links_count", None, 0) => scalar(
            |r| r.span().map_or(Val::Nil, |s| Val::Int(i64::from(s.dropped_links_count))),
            Some(|m, v| Ok(item(m.span())?.dropped_links_count = want_int(v)? as u32)),
        ),
        ("status", Some("code"), 1) => scalar(
            |r| r.span().map_or(Val::Nil, |s| Val::Int(i64::from(s.status.as_ref().map_or(0, |st| st.code)))),
            Some(|m, v| Ok(item(m.span())?.status.get_or_insert_with(Status::default).code = want_int(v)? as i32)),
        ),
        ("status", Some("message"), 1) => scalar(
            |r| r.span().map_or(Val::Nil, |s| Val::Str(Cow::Borrowed(s.status.as_ref().map_or("", |st| &st.message)))),
            Some(|m, v| Ok(item(m.span())?.status.get_or_insert_with(Status::default).message = want_str(v)?)),
        ),
        ("trace_state", None, 0) if first.keys.is_empty() => scalar(
            |r| r.span().map_or(Val::Nil, |s| Val::Str(Cow::Borrowed(&s.trace_state))),
            Some(|m, v| Ok(item(m.span())?.trace_state = want_str(v)?)),
        ),
        ("trace_state", None, 0) => trace_state_member(first),
        ("trace_id", None, 0) => scalar(
            |r| r.span().map_or(Val::Nil, |s| Val::Bytes(Cow::Borrowed(&s.trace_id))),
            Some(|m, v| Ok(item(m.span())?.trace_id = want_id(v, 16)?)),
        ),
        ("trace_id", Some("string"), 1) => scalar(
            |r| r.span().map_or(Val::Nil, |s| hex_string(&s.trace_id)),
            Some(|m, v| Ok(item(m.span())?.trace_id = want_hex_id(v, 16)?)),
        ),
        ("span_id", None, 0) => scalar(
            |r| r.span().map_or(Val::Nil, |s| Val::Bytes(Cow::Borrowed(&s.span_id))),
            Some(|m, v| Ok(item(m.span())?.span_id = want_id(v, 8)?)),
        ),
        ("span_id", Some("string"), 1) => scalar(
            |r| r.span().map_or(Val::Nil, |s| hex_string(&s.span_id)),
            Some(|m, v| Ok(item(m.span())?.span_id = want_hex_id(v, 8)?)),
        ),
        ("parent_span_id", None, 0) => scalar(
            |r| r.span().map_or(Val::Nil, |s| Val::Bytes(Cow::Borrowed(&s.parent_span_id))),
            Some(|m, v| Ok(item(m.span())?.parent_span_id = want_id(v, 8)?)),
        ),
        ("parent_span_id", Some("string"), 1) => scalar(
            |r| r.span().map_or(Val::Nil, |s| hex_string(&s.parent_span_id)),
            Some(|m, v| Ok(item(m.span())?.parent_span_id = want_hex_id(v, 8)?)),
        ),
        _ => return None,
    })
}

fn metric_path(
    kind: Kind,
    first: &Field,
    depth: usize,
    scalar: impl Fn(Read, Option<Set>) -> Result<Access, OttlError>,
) -> Option<Result<Access, OttlError>> {
    use metric::Data;
    if depth > 0 {
        return None;
    }
    Some(match first.name.as_str() {
        "metadata" => {
            map(kind, first, |r| r.metric().map(|m| &m.metadata[..]), |m| m.metric().map(|m| &mut m.metadata))
        }
        "name" => scalar(
            |r| r.metric().map_or(Val::Nil, |m| Val::Str(Cow::Borrowed(&m.name))),
            Some(|m, v| Ok(item(m.metric())?.name = want_str(v)?)),
        ),
        "description" => scalar(
            |r| r.metric().map_or(Val::Nil, |m| Val::Str(Cow::Borrowed(&m.description))),
            Some(|m, v| Ok(item(m.metric())?.description = want_str(v)?)),
        ),
        "unit" => scalar(
            |r| r.metric().map_or(Val::Nil, |m| Val::Str(Cow::Borrowed(&m.unit))),
            Some(|m, v| Ok(item(m.metric())?.unit = want_str(v)?)),
        ),
        // Read-only: a metric changes type through the convert_* editors.
        "type" => scalar(
            |r| {
                r.metric().map_or(Val::Nil, |m| {
                    Val::Int(match &m.data {
                        None => 0,
                        Some(Data::Gauge(_)) => 1,
                        Some(Data::Sum(_)) => 2,
                        Some(Data::Histogram(_)) => 3,
                        Some(Data::ExponentialHistogram(_)) => 4,
                        Some(Data::Summary(_)) => 5,
                    })
                })
            },
            None,
        ),
        "aggregation_temporality" => scalar(
            |r| match r.metric().and_then(|m| m.data.as_ref()) {
                Some(Data::Sum(s)) => Val::Int(i64::from(s.aggregation_temporality)),
                Some(Data::Histogram(h)) => Val::Int(i64::from(h.aggregation_temporality)),
                Some(Data::ExponentialHistogram(e)) => Val::Int(i64::from(e.aggregation_temporality)),
                _ => Val::Nil,
            },
            Some(|m, v| {
                let t = want_int(v)? as i32;
                match &mut item(m.metric())?.data {
                    Some(Data::Sum(s)) => s.aggregation_temporality = t,
                    Some(Data::Histogram(h)) => h.aggregation_temporality = t,
                    Some(Data::ExponentialHistogram(e)) => e.aggregation_temporality = t,
                    _ => {}
                }
                Ok(())
            }),
        ),
        "is_monotonic" => scalar(
            |r| match r.metric().and_then(|m| m.data.as_ref()) {
                Some(Data::Sum(s)) => Val::Bool(s.is_monotonic),
                _ => Val::Nil,
            },
            Some(|m, v| {
                let b = want_bool(v)?;
                if let Some(Data::Sum(s)) = &mut item(m.metric())?.data {
                    s.is_monotonic = b;
                }
                Ok(())
            }),
        ),
        _ => return None,
    })
}

fn point_path(
    kind: Kind,
    first: &Field,
    depth: usize,
    scalar: impl Fn(Read, Option<Set>) -> Result<Access, OttlError>,
) -> Option<Result<Access, OttlError>> {
    if depth > 0 {
        return None;
    }
    Some(match first.name.as_str() {
        "attributes" => map(
            kind,
            first,
            |r| {
                point_of(r).map(|p| match p {
                    Point::Number(p) => &p.attributes[..],
                    Point::Histogram(p) => &p.attributes[..],
                    Point::Exponential(p) => &p.attributes[..],
                    Point::Summary(p) => &p.attributes[..],
                })
            },
            |m| {
                m.point().map(|p| match p {
                    PointMut::Number(p) => &mut p.attributes,
                    PointMut::Histogram(p) => &mut p.attributes,
                    PointMut::Exponential(p) => &mut p.attributes,
                    PointMut::Summary(p) => &mut p.attributes,
                })
            },
        ),
        "time_unix_nano" => scalar(
            |r| point_of(r).map_or(Val::Nil, |p| Val::Int(times(p).1 as i64)),
            Some(|m, v| Ok(*times_mut(item(m.point())?).1 = want_int(v)? as u64)),
        ),
        "start_time_unix_nano" => scalar(
            |r| point_of(r).map_or(Val::Nil, |p| Val::Int(times(p).0 as i64)),
            Some(|m, v| Ok(*times_mut(item(m.point())?).0 = want_int(v)? as u64)),
        ),
        "time" => scalar(
            |r| point_of(r).map_or(Val::Nil, |p| Val::Time(times(p).1 as i64)),
            Some(|m, v| Ok(*times_mut(item(m.point())?).1 = want_time(v)? as u64)),
        ),
        "start_time" => scalar(
            |r| point_of(r).map_or(Val::Nil, |p| Val::Time(times(p).0 as i64)),
            Some(|m, v| Ok(*times_mut(item(m.point())?).0 = want_time(v)? as u64)),
        ),
        "flags" => scalar(
            |r| point_of(r).map_or(Val::Nil, |p| Val::Int(i64::from(times(p).2))),
            Some(|m, v| Ok(*times_mut(item(m.point())?).2 = want_int(v)? as u32)),
        ),
        "value_int" => scalar(
            |r| match point_of(r) {
                Some(Point::Number(p)) => Val::Int(match p.value {
                    Some(number_data_point::Value::AsInt(i)) => i,
                    _ => 0,
                }),
                _ => Val::Nil,
            },
            Some(|m, v| match item(m.point())? {
                PointMut::Number(p) => Ok(p.value = Some(number_data_point::Value::AsInt(want_int(v)?))),
                _ => Err("value_int is only a number data point's".into()),
            }),
        ),
        "value_double" => scalar(
            |r| match point_of(r) {
                Some(Point::Number(p)) => Val::Float(match p.value {
                    Some(number_data_point::Value::AsDouble(f)) => f,
                    _ => 0.0,
                }),
                _ => Val::Nil,
            },
            Some(|m, v| match item(m.point())? {
                PointMut::Number(p) => Ok(p.value = Some(number_data_point::Value::AsDouble(want_float(v)?))),
                _ => Err("value_double is only a number data point's".into()),
            }),
        ),
        "count" => scalar(
            |r| match point_of(r) {
                Some(Point::Histogram(p)) => Val::Int(p.count as i64),
                Some(Point::Exponential(p)) => Val::Int(p.count as i64),
                Some(Point::Summary(p)) => Val::Int(p.count as i64),
                _ => Val::Nil,
            },
            Some(|m, v| {
                let n = want_int(v)? as u64;
                match item(m.point())? {
                    PointMut::Histogram(p) => p.count = n,
                    PointMut::Exponential(p) => p.count = n,
                    PointMut::Summary(p) => p.count = n,
                    PointMut::Number(_) => return Err("count is not a number data point's".into()),
                }
                Ok(())
            }),
        ),
        "sum" => scalar(
            |r| match point_of(r) {
                Some(Point::Histogram(p)) => p.sum.map_or(Val::Nil, Val::Float),
                Some(Point::Exponential(p)) => p.sum.map_or(Val::Nil, Val::Float),
                Some(Point::Summary(p)) => Val::Float(p.sum),
                _ => Val::Nil,
            },
            Some(|m, v| {
                let f = want_float(v)?;
                match item(m.point())? {
                    PointMut::Histogram(p) => p.sum = Some(f),
                    PointMut::Exponential(p) => p.sum = Some(f),
                    PointMut::Summary(p) => p.sum = f,
                    PointMut::Number(_) => return Err("sum is not a number data point's".into()),
                }
                Ok(())
            }),
        ),
        "scale" => scalar(
            |r| match point_of(r) {
                Some(Point::Exponential(p)) => Val::Int(i64::from(p.scale)),
                _ => Val::Nil,
            },
            Some(|m, v| match item(m.point())? {
                PointMut::Exponential(p) => Ok(p.scale = want_int(v)? as i32),
                _ => Err("scale is only an exponential histogram data point's".into()),
            }),
        ),
        "zero_count" => scalar(
            |r| match point_of(r) {
                Some(Point::Exponential(p)) => Val::Int(p.zero_count as i64),
                _ => Val::Nil,
            },
            Some(|m, v| match item(m.point())? {
                PointMut::Exponential(p) => Ok(p.zero_count = want_int(v)? as u64),
                _ => Err("zero_count is only an exponential histogram data point's".into()),
            }),
        ),
        _ => return None,
    })
}

const KIND_NAMES: [&str; 6] = ["Unspecified", "Internal", "Server", "Client", "Producer", "Consumer"];
/// The span kinds by number, as `kind.deprecated_string` and the legacy match blocks
/// spell them.
pub const DEPRECATED_KIND_NAMES: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];

/// A map path: its keys read through, and written through [`Write::Map`].
fn map(kind: Kind, field: &Field, read: MapRead, write: MapMut) -> Result<Access, OttlError> {
    let base = getter(move |r| Ok(read(r).map_or(Val::Nil, |m| Val::Map(Cow::Borrowed(m)))));
    Ok(Access { get: with_keys(kind, base, &field.keys)?, write: Some(Write::Map(write, steps(kind, &field.keys)?)) })
}

/// `body`, `body["k"]`, `body[0]`: only a map or slice body can be indexed.
fn body(kind: Kind, field: &Field) -> Result<Access, OttlError> {
    let base = getter(|r| Ok(log(r).map_or(Val::Nil, |l| Val::of(l.body.as_ref()))));
    let get = if field.keys.is_empty() {
        base
    } else {
        let checked = getter(move |r| match base(r)? {
            v @ (Val::Map(_) | Val::List(_)) => Ok(v),
            other => Err(format!("log bodies of type {} cannot be indexed", other.type_name())),
        });
        with_keys(kind, checked, &field.keys)?
    };
    Ok(Access { get, write: Some(Write::Body(steps(kind, &field.keys)?)) })
}

/// `trace_state["key"]`: a member of the W3C trace state, `""` when absent.
fn trace_state_member(field: &Field) -> Result<Access, OttlError> {
    let [super::ast::Key::String(key, _)] = &field.keys[..] else {
        return Err(OttlError::new("trace_state takes exactly one string key", field.span));
    };
    let (k1, k2) = (key.clone(), key.clone());
    let get = getter(move |r| {
        Ok(r.span().map_or(Val::Nil, |s| {
            let value = s.trace_state.split(',').filter_map(|m| m.trim().split_once('=')).find(|(k, _)| *k == k1);
            Val::Str(Cow::Owned(value.map_or("", |(_, v)| v).to_string()))
        }))
    });
    let write = Write::Custom(Box::new(move |m, v| {
        let value = want_str(v)?;
        let span = item(m.span())?;
        let mut members: Vec<String> = span
            .trace_state
            .split(',')
            .map(str::trim)
            .filter(|member| !member.is_empty() && member.split_once('=').is_none_or(|(k, _)| k != k2))
            .map(str::to_string)
            .collect();
        // A new or changed member goes first, as the W3C rules for mutation say.
        members.insert(0, format!("{k2}={value}"));
        span.trace_state = members.join(",");
        Ok(())
    }));
    Ok(Access { get, write: Some(write) })
}

fn log<'c>(r: &Record<'c>) -> Option<&'c opentelemetry_proto::tonic::logs::v1::LogRecord> {
    match r.item {
        Item::Log(l) => Some(l),
        _ => None,
    }
}

fn event<'c>(r: &Record<'c>) -> Option<&'c opentelemetry_proto::tonic::trace::v1::span::Event> {
    match r.item {
        Item::Event(_, e) => Some(e),
        _ => None,
    }
}

fn point_of<'c>(r: &Record<'c>) -> Option<Point<'c>> {
    match r.item {
        Item::Point(_, p) => Some(p),
        _ => None,
    }
}

/// (start, time, flags) of any data point.
fn times(p: Point<'_>) -> (u64, u64, u32) {
    match p {
        Point::Number(p) => (p.start_time_unix_nano, p.time_unix_nano, p.flags),
        Point::Histogram(p) => (p.start_time_unix_nano, p.time_unix_nano, p.flags),
        Point::Exponential(p) => (p.start_time_unix_nano, p.time_unix_nano, p.flags),
        Point::Summary(p) => (p.start_time_unix_nano, p.time_unix_nano, p.flags),
    }
}

fn times_mut(p: PointMut<'_>) -> (&mut u64, &mut u64, &mut u32) {
    match p {
        PointMut::Number(p) => (&mut p.start_time_unix_nano, &mut p.time_unix_nano, &mut p.flags),
        PointMut::Histogram(p) => (&mut p.start_time_unix_nano, &mut p.time_unix_nano, &mut p.flags),
        PointMut::Exponential(p) => (&mut p.start_time_unix_nano, &mut p.time_unix_nano, &mut p.flags),
        PointMut::Summary(p) => (&mut p.start_time_unix_nano, &mut p.time_unix_nano, &mut p.flags),
    }
}

/// The item a setter writes; missing only if a context runs a path it does not own,
/// which resolution prevents.
fn item<T>(item: Option<T>) -> Result<T, EvalError> {
    item.ok_or_else(|| "the path's item is not in this context".to_string())
}

/// A log body as `Body().AsString()`: strings as they are, maps and lists as JSON.
pub fn body_string(body: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match Val::of(body) {
        Val::Str(s) => s.into_owned(),
        Val::Nil => String::new(),
        Val::Int(i) => i.to_string(),
        Val::Bool(b) => b.to_string(),
        Val::Float(f) => crate::pdata::prometheus::format_float(f),
        Val::Bytes(b) => crate::pdata::json::base64(&b),
        _ => body.map_or_else(String::new, |b| crate::pdata::json::any_to_json(b).to_string()),
    }
}

fn hex_string<'c>(bytes: &[u8]) -> Val<'c> {
    Val::Str(Cow::Owned(crate::pdata::json::hex(bytes)))
}

const NIL: &str = "setting a value to nil is not supported";

pub fn want_int(v: Val<'_>) -> Result<i64, EvalError> {
    match v {
        Val::Int(i) => Ok(i),
        Val::Nil => Err(NIL.into()),
        other => Err(format!("expects int64 but got {}", other.type_name())),
    }
}

fn want_float(v: Val<'_>) -> Result<f64, EvalError> {
    match v {
        Val::Float(f) => Ok(f),
        Val::Nil => Err(NIL.into()),
        other => Err(format!("expects float64 but got {}", other.type_name())),
    }
}

fn want_bool(v: Val<'_>) -> Result<bool, EvalError> {
    match v {
        Val::Bool(b) => Ok(b),
        Val::Nil => Err(NIL.into()),
        other => Err(format!("expects bool but got {}", other.type_name())),
    }
}

pub fn want_str(v: Val<'_>) -> Result<String, EvalError> {
    match v {
        Val::Str(s) => Ok(s.into_owned()),
        Val::Nil => Err(NIL.into()),
        other => Err(format!("expects string but got {}", other.type_name())),
    }
}

fn want_time(v: Val<'_>) -> Result<i64, EvalError> {
    match v {
        Val::Time(t) => Ok(t),
        Val::Nil => Err(NIL.into()),
        other => Err(format!("expects time.Time but got {}", other.type_name())),
    }
}

/// A trace or span id: bytes of exactly `len`.
fn want_id(v: Val<'_>, len: usize) -> Result<Vec<u8>, EvalError> {
    match v {
        Val::Bytes(b) if b.len() == len => Ok(b.into_owned()),
        Val::Bytes(b) => Err(format!("expects an id of {len} bytes but got {}", b.len())),
        Val::Nil => Err(NIL.into()),
        other => Err(format!("expects an id of {len} bytes but got {}", other.type_name())),
    }
}

/// An id from its hex string of `2 × len` digits.
fn want_hex_id(v: Val<'_>, len: usize) -> Result<Vec<u8>, EvalError> {
    let text = want_str(v)?;
    super::functions::decode_hex(&text)
        .filter(|b| b.len() == len)
        .ok_or_else(|| format!("`{text}` is not an id of {} hex digits", len * 2))
}
