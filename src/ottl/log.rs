//! The `log` context: one log record with its resource and scope, and upstream's
//! paths for them (`attributes`, `body`, `severity_number`, `resource.attributes`,
//! `instrumentation_scope.name` …) and the `SEVERITY_NUMBER_*` enums.

use std::borrow::Cow;

use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::OttlError;
use super::ast::{Field, Path};
use super::compile::{Context, Getter, getter, with_keys};
use super::value::Val;

/// One record as the log context sees it.
pub struct LogContext<'a> {
    pub resource: &'a Resource,
    pub scope: &'a InstrumentationScope,
    pub record: &'a LogRecord,
    /// The per-record scratch map (`cache`).
    pub cache: &'a [KeyValue],
}

const LOG_PATHS: &[&str] = &[
    "attributes",
    "body",
    "body.string",
    "cache",
    "dropped_attributes_count",
    "event_name",
    "flags",
    "observed_time_unix_nano",
    "severity_number",
    "severity_text",
    "span_id",
    "span_id.string",
    "time_unix_nano",
    "trace_id",
    "trace_id.string",
    "resource.attributes",
    "resource.dropped_attributes_count",
    "scope.attributes",
    "scope.name",
    "scope.version",
];

const SEVERITY_NAMES: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

fn unknown(path: &Path, fields: &[Field]) -> OttlError {
    let text: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    OttlError::new(
        format!("`{}` is not a path of the log context; paths: {}", text.join("."), LOG_PATHS.join(", ")),
        path.span,
    )
}

/// A scalar field that takes no keys.
fn scalar(
    path: &Path,
    field: &Field,
    get: impl for<'c> Fn(&'c LogContext<'c>) -> Val<'c> + Send + Sync + 'static,
) -> Result<Getter<Log>, OttlError> {
    if !field.keys.is_empty() {
        return Err(OttlError::new(format!("`{}` cannot be indexed", field.name), path.span));
    }
    Ok(getter::<Log>(move |ctx| Ok(get(ctx))))
}

fn hex_string<'c>(bytes: &[u8]) -> Val<'c> {
    Val::Str(Cow::Owned(crate::pdata::json::hex(bytes)))
}

/// The log context, for [`super::compile::Condition`]`<Log>`.
pub struct Log;

impl Context for Log {
    type Ctx<'c> = LogContext<'c>;

    const NAME: &'static str = "log";

    fn path(path: &Path, fields: &[Field]) -> Result<Getter<Self>, OttlError> {
        let Some((first, rest)) = fields.split_first() else { return Err(unknown(path, fields)) };
        let map = |get: for<'c> fn(&'c LogContext<'c>) -> &'c [KeyValue], field: &Field| {
            with_keys::<Self>(getter::<Self>(move |ctx| Ok(Val::Map(Cow::Borrowed(get(ctx))))), &field.keys)
        };
        match (first.name.as_str(), rest) {
            ("resource", [second]) => match second.name.as_str() {
                "attributes" => map(|c| &c.resource.attributes, second),
                "dropped_attributes_count" => {
                    scalar(path, second, |c| Val::Int(i64::from(c.resource.dropped_attributes_count)))
                }
                _ => Err(unknown(path, fields)),
            },
            ("scope" | "instrumentation_scope", [second]) => match second.name.as_str() {
                "attributes" => map(|c| &c.scope.attributes, second),
                "name" => scalar(path, second, |c| Val::Str(Cow::Borrowed(&c.scope.name))),
                "version" => scalar(path, second, |c| Val::Str(Cow::Borrowed(&c.scope.version))),
                _ => Err(unknown(path, fields)),
            },
            ("attributes", []) => map(|c| &c.record.attributes, first),
            ("cache", []) => map(|c| c.cache, first),
            ("body", []) => {
                let base = getter::<Self>(|ctx| Ok(Val::of(ctx.record.body.as_ref())));
                if first.keys.is_empty() {
                    return Ok(base);
                }
                // Only a map or slice body can be indexed, as upstream says.
                let checked = getter::<Self>(move |ctx| match base(ctx)? {
                    v @ (Val::Map(_) | Val::List(_)) => Ok(v),
                    other => Err(format!("log bodies of type {} cannot be indexed", other.type_name())),
                });
                with_keys::<Self>(checked, &first.keys)
            }
            ("body", [second]) if second.name == "string" => scalar(path, second, |c| {
                match Val::of(c.record.body.as_ref()) {
                    Val::Str(s) => Val::Str(s),
                    Val::Nil => Val::Str(Cow::Borrowed("")),
                    Val::Int(i) => Val::Str(Cow::Owned(i.to_string())),
                    Val::Bool(b) => Val::Str(Cow::Owned(b.to_string())),
                    Val::Float(f) => Val::Str(Cow::Owned(crate::pdata::prometheus::format_float(f))),
                    Val::Bytes(b) => hex_string(&b),
                    // Maps and lists as JSON (`Body().AsString()`).
                    _ => Val::Str(Cow::Owned(
                        c.record
                            .body
                            .as_ref()
                            .map_or_else(String::new, |b| crate::pdata::json::any_to_json(b).to_string()),
                    )),
                }
            }),
            ("severity_number", []) => scalar(path, first, |c| Val::Int(i64::from(c.record.severity_number))),
            ("severity_text", []) => scalar(path, first, |c| Val::Str(Cow::Borrowed(&c.record.severity_text))),
            ("time_unix_nano", []) => scalar(path, first, |c| Val::Int(c.record.time_unix_nano as i64)),
            ("observed_time_unix_nano", []) => {
                scalar(path, first, |c| Val::Int(c.record.observed_time_unix_nano as i64))
            }
            ("flags", []) => scalar(path, first, |c| Val::Int(i64::from(c.record.flags))),
            ("dropped_attributes_count", []) => {
                scalar(path, first, |c| Val::Int(i64::from(c.record.dropped_attributes_count)))
            }
            ("event_name", []) => scalar(path, first, |c| Val::Str(Cow::Borrowed(&c.record.event_name))),
            ("trace_id", []) => scalar(path, first, |c| Val::Bytes(Cow::Borrowed(&c.record.trace_id))),
            ("span_id", []) => scalar(path, first, |c| Val::Bytes(Cow::Borrowed(&c.record.span_id))),
            ("trace_id", [second]) if second.name == "string" => {
                scalar(path, second, |c| hex_string(&c.record.trace_id))
            }
            ("span_id", [second]) if second.name == "string" => scalar(path, second, |c| hex_string(&c.record.span_id)),
            _ => Err(unknown(path, fields)),
        }
    }

    fn enum_value(name: &str) -> Option<i64> {
        let level = name.strip_prefix("SEVERITY_NUMBER_")?;
        if level == "UNSPECIFIED" {
            return Some(0);
        }
        let (base, step) = match level.char_indices().find(|(_, c)| c.is_ascii_digit()) {
            Some((at, _)) => (&level[..at], level[at..].parse::<i64>().ok().filter(|n| (2..=4).contains(n))? - 1),
            None => (level, 0),
        };
        let index = SEVERITY_NAMES.iter().position(|n| *n == base)? as i64;
        Some(index * 4 + 1 + step)
    }
}
