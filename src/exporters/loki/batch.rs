//! One batch of OTLP logs → Loki push requests, written straight as protobuf.
//!
//! What a resource contributes to its records' streams (labels, tenant, format, the
//! attributes left for structured metadata) is worked out once per resource, and
//! its records go to that stream without a label string or a map lookup each. A
//! record whose own attributes can change its labels or tenant (a configured
//! attribute label, a `loki.*` hint, a tenant attribute the resource lacks) takes
//! the general path. Entries point into the batch (a string body is not copied until
//! it is written into the request); lines in `json` or `logfmt` and each record's
//! own structured metadata are written once into the batch's arena, already
//! encoded. Requests are cut by their exact encoded size.

use std::ops::Range;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use prost::encoding::{encode_varint, encoded_len_varint};

use super::config::{Format, LokiConfig};
use super::{DEFAULT_RESOURCE_LABELS, HINTS, encode};
use crate::pdata::json::hex;
use crate::pdata::prometheus::naming::label_name;
use crate::pdata::prometheus::text;

type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// One push request, encoded and compressed, as it is sent (and sent again on a retry).
pub struct Push {
    pub tenant: String,
    /// `logproto.PushRequest`, snappy block format.
    pub body: bytes::Bytes,
    pub entries: u64,
    /// Its streams' label strings, for logging what Loki refused.
    pub streams: Vec<String>,
    /// Sent, or refused for good: not sent again.
    pub settled: bool,
}

/// A batch's pushes, and how many of its entries the `max_streams` guard folded.
pub struct Built {
    pub pushes: Vec<Push>,
    pub folded: u64,
}

enum Line<'a> {
    Borrowed(&'a [u8]),
    Arena(Range<usize>),
}

struct Entry<'a> {
    nanos: u64,
    line: Line<'a>,
    /// The resource's structured metadata, encoded (an index into `Builder::shared`).
    shared: Option<usize>,
    /// The record's own structured metadata, encoded, in the arena.
    own: Range<usize>,
    /// The encoded `EntryAdapter`'s length.
    size: usize,
}

struct Stream<'a> {
    tenant: usize,
    labels: String,
    entries: Vec<Entry<'a>>,
}

/// What a resource gives each of its records, worked out once.
struct ResourcePlan<'a> {
    /// Static and resource labels, with `service_name` filled in.
    labels: Vec<(String, String)>,
    /// Resource keys made labels: not sent again as metadata.
    used: Vec<&'a str>,
    /// Record attribute keys that would change a record's labels or tenant.
    special: Vec<String>,
    tenant: String,
    format: Format,
    /// Resource attributes that are not labels or hints.
    rest: Vec<KeyValue>,
    /// `rest` as encoded structured metadata.
    shared: Option<usize>,
    /// The stream its plain records go to, and whether it is the folded one.
    stream: Option<(usize, bool)>,
}

struct Builder<'a> {
    config: &'a LokiConfig,
    default_format: Format,
    now: u64,
    tenants: Vec<(String, HashMap<String, usize>)>,
    streams: Vec<Stream<'a>>,
    stream_count: usize,
    folded: u64,
    arena: Vec<u8>,
    shared: Vec<Vec<u8>>,
}

/// The text of a value, borrowed when it is a string.
fn value_text(value: Option<&AnyValue>) -> std::borrow::Cow<'_, str> {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => std::borrow::Cow::Borrowed(s),
        _ => std::borrow::Cow::Owned(text(value)),
    }
}

fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

fn put_field(out: &mut Vec<u8>, key: u8, bytes: &[u8]) {
    out.push(key);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// A `LabelPairAdapter` as field 3 of an entry; an empty value is left out, as Loki
/// drops it.
fn put_pair(out: &mut Vec<u8>, name: &str, value: &str) {
    if value.is_empty() {
        return;
    }
    let name_len = if name.is_empty() { 0 } else { field_len(name.len()) };
    out.push(0x1a);
    encode_varint((name_len + field_len(value.len())) as u64, out);
    if !name.is_empty() {
        put_field(out, 0x0a, name.as_bytes());
    }
    put_field(out, 0x12, value.as_bytes());
}

/// An attribute as a structured metadata pair: its key as a label name (as
/// `label_name` makes it, written in place for ASCII keys), its value as text.
fn put_attribute(out: &mut Vec<u8>, kv: &KeyValue) {
    let value = value_text(kv.value.as_ref());
    let key = kv.key.as_bytes();
    if value.is_empty() {
        return;
    }
    if key.is_empty() || !key.is_ascii() {
        put_pair(out, &label_name(&kv.key), &value);
        return;
    }
    let clean = |b: u8| if b.is_ascii_alphanumeric() || b == b'_' { b } else { b'_' };
    let first = clean(key[0]);
    let prefix: &[u8] = if first.is_ascii_digit() {
        b"key_"
    } else if first == b'_' && key.get(1).map(|b| clean(*b)) != Some(b'_') {
        b"key"
    } else {
        b""
    };
    let name_len = prefix.len() + key.len();
    out.push(0x1a);
    encode_varint((field_len(name_len) + field_len(value.len())) as u64, out);
    out.push(0x0a);
    encode_varint(name_len as u64, out);
    out.extend_from_slice(prefix);
    out.extend(key.iter().map(|b| clean(*b)));
    put_field(out, 0x12, value.as_bytes());
}

fn timestamp_len(nanos: u64) -> usize {
    let (seconds, sub) = (nanos / 1_000_000_000, nanos % 1_000_000_000);
    (if seconds > 0 { 1 + encoded_len_varint(seconds) } else { 0 })
        + if sub > 0 { 1 + encoded_len_varint(sub) } else { 0 }
}

fn put_timestamp(out: &mut Vec<u8>, nanos: u64) {
    let (seconds, sub) = (nanos / 1_000_000_000, nanos % 1_000_000_000);
    out.push(0x0a);
    encode_varint(timestamp_len(nanos) as u64, out);
    if seconds > 0 {
        out.push(0x08);
        encode_varint(seconds, out);
    }
    if sub > 0 {
        out.push(0x10);
        encode_varint(sub, out);
    }
}

impl<'a> Builder<'a> {
    fn line_bytes<'b>(&'b self, entry: &'b Entry<'a>) -> &'b [u8] {
        match &entry.line {
            Line::Borrowed(bytes) => bytes,
            Line::Arena(range) => &self.arena[range.clone()],
        }
    }

    fn shared_bytes(&self, entry: &Entry<'a>) -> &[u8] {
        entry.shared.map_or(&[][..], |i| self.shared[i].as_slice())
    }

    /// The stream of these labels in this tenant, made if new (or the tenant's
    /// folded stream past `max_streams`); and whether it is the folded one.
    fn stream(&mut self, tenant: &str, mut labels: Vec<(String, String)>) -> (usize, bool) {
        let t = match self.tenants.iter().position(|(name, _)| name == tenant) {
            Some(t) => t,
            None => {
                self.tenants.push((tenant.to_string(), HashMap::default()));
                self.tenants.len() - 1
            }
        };
        let mut key = encode::label_string(&labels);
        let mut folded = false;
        if let Some(&i) = self.tenants[t].1.get(&key) {
            return (i, false);
        }
        if self.stream_count >= self.config.max_streams {
            // Cardinality guard: keep the static labels and service_name only.
            labels.retain(|(n, _)| n == "service_name" || self.config.labels.static_labels.contains_key(n));
            labels.push(("ocelot_folded".into(), "true".into()));
            key = encode::label_string(&labels);
            folded = true;
            if let Some(&i) = self.tenants[t].1.get(&key) {
                return (i, true);
            }
        } else {
            self.stream_count += 1;
        }
        let i = self.streams.len();
        self.streams.push(Stream { tenant: t, labels: key.clone(), entries: Vec::new() });
        self.tenants[t].1.insert(key, i);
        (i, folded)
    }

    fn plan(&mut self, resource: &'a [KeyValue]) -> ResourcePlan<'a> {
        let config = self.config;
        let find = |key: &str| resource.iter().find(|kv| kv.key == key).map(|kv| text(kv.value.as_ref()));
        let resource_hint = find("loki.resource.labels").unwrap_or_default();
        let (mut labels, used) = resource_labels(config, resource, &resource_hint);
        if !labels.iter().any(|(n, _)| n == "service_name") {
            labels.push(("service_name".into(), "unknown_service".into()));
        }
        // Record attributes that would change what this plan says.
        let mut special: Vec<String> = find("loki.attribute.labels")
            .map(|hint| hint.split(',').map(|h| h.trim().to_string()).collect())
            .unwrap_or_default();
        let tenant = match find("loki.tenant") {
            Some(attribute) => match find(&attribute) {
                Some(tenant) => tenant,
                None => {
                    special.push(attribute);
                    config.tenant_id.clone().unwrap_or_default()
                }
            },
            None => config.tenant_id.clone().unwrap_or_default(),
        };
        let format = find("loki.format").and_then(|f| Format::parse(&f)).unwrap_or(self.default_format);
        let rest: Vec<KeyValue> = resource
            .iter()
            .filter(|kv| !used.contains(&kv.key.as_str()) && !HINTS.contains(&kv.key.as_str()))
            .cloned()
            .collect();
        let shared = (format == Format::Raw && config.structured_metadata && !rest.is_empty()).then(|| {
            let mut bytes = Vec::new();
            for kv in &rest {
                put_attribute(&mut bytes, kv);
            }
            self.shared.push(bytes);
            self.shared.len() - 1
        });
        ResourcePlan { labels, used, special, tenant, format, rest, shared, stream: None }
    }

    /// Whether a record's attributes leave its resource's plan as it is.
    fn plain(&self, plan: &ResourcePlan<'a>, record: &LogRecord) -> bool {
        record.attributes.iter().all(|kv| {
            !HINTS.contains(&kv.key.as_str())
                && !self.config.labels.attributes.contains_key(&kv.key)
                && !plan.special.contains(&kv.key)
        })
    }

    fn add(&mut self, request: &'a ExportLogsServiceRequest) {
        for resource_logs in &request.resource_logs {
            let resource: &[KeyValue] = resource_logs.resource.as_ref().map(|r| r.attributes.as_slice()).unwrap_or(&[]);
            let mut plan = self.plan(resource);
            for scope_logs in &resource_logs.scope_logs {
                let scope = scope_logs.scope.as_ref();
                for record in &scope_logs.log_records {
                    if self.plain(&plan, record) {
                        let (stream, folded) = match plan.stream {
                            Some(s) => s,
                            None => {
                                let (stream, folded) =
                                    *plan.stream.insert(self.stream(&plan.tenant, plan.labels.clone()));
                                let records = resource_logs.scope_logs.iter().map(|s| s.log_records.len()).sum();
                                self.streams[stream].entries.reserve(records);
                                (stream, folded)
                            }
                        };
                        self.folded += u64::from(folded);
                        let rest: std::borrow::Cow<'_, [KeyValue]> =
                            if record.attributes.iter().any(|kv| plan.used.contains(&kv.key.as_str())) {
                                record
                                    .attributes
                                    .iter()
                                    .filter(|kv| !plan.used.contains(&kv.key.as_str()))
                                    .cloned()
                                    .collect()
                            } else {
                                std::borrow::Cow::Borrowed(&record.attributes)
                            };
                        let (format, shared) = (plan.format, plan.shared);
                        self.entry(stream, record, scope, format, &plan.rest, &rest, shared);
                    } else {
                        self.general(record, resource, scope);
                    }
                }
            }
        }
    }

    /// A record whose own attributes take part in its labels, tenant or format.
    fn general(&mut self, record: &'a LogRecord, resource: &'a [KeyValue], scope: Option<&'a InstrumentationScope>) {
        let config = self.config;
        let find = |key: &str| {
            record.attributes.iter().chain(resource).find(|kv| kv.key == key).map(|kv| text(kv.value.as_ref()))
        };
        let resource_first = |key: &str| {
            resource.iter().chain(&record.attributes).find(|kv| kv.key == key).map(|kv| text(kv.value.as_ref()))
        };
        // Labels: static, then resource, then record attributes.
        let resource_hint = find("loki.resource.labels").unwrap_or_default();
        let attribute_hint = find("loki.attribute.labels").unwrap_or_default();
        let (mut labels, mut used) = resource_labels(config, resource, &resource_hint);
        for kv in &record.attributes {
            let configured = config.labels.attributes.get(&kv.key).map(String::as_str);
            let hinted = attribute_hint.split(',').any(|h| h.trim() == kv.key);
            if let Some(label) = configured.or(hinted.then_some("")) {
                promote(&mut labels, &kv.key, label, text(kv.value.as_ref()));
                used.push(&kv.key);
            }
        }
        if !labels.iter().any(|(n, _)| n == "service_name") {
            labels.push(("service_name".into(), "unknown_service".into()));
        }
        let tenant = resource_first("loki.tenant")
            .and_then(|attribute| resource_first(&attribute))
            .or_else(|| config.tenant_id.clone())
            .unwrap_or_default();
        let format = resource_first("loki.format").and_then(|f| Format::parse(&f)).unwrap_or(self.default_format);
        let keep = |kv: &&KeyValue| !used.contains(&kv.key.as_str()) && !HINTS.contains(&kv.key.as_str());
        let record_rest: Vec<KeyValue> = record.attributes.iter().filter(keep).cloned().collect();
        let resource_rest: Vec<KeyValue> = resource.iter().filter(keep).cloned().collect();
        let (stream, folded) = self.stream(&tenant, labels);
        self.folded += u64::from(folded);
        self.entry(stream, record, scope, format, &resource_rest, &record_rest, None);
    }

    /// Adds a record's entry to a stream. `shared` is the resource's metadata when
    /// encoded once for all its records; otherwise `resource_rest` is encoded here.
    #[allow(clippy::too_many_arguments)]
    fn entry(
        &mut self,
        stream: usize,
        record: &'a LogRecord,
        scope: Option<&InstrumentationScope>,
        format: Format,
        resource_rest: &[KeyValue],
        record_rest: &[KeyValue],
        shared: Option<usize>,
    ) {
        let line = match format {
            Format::Raw => match record.body.as_ref().and_then(|b| b.value.as_ref()) {
                Some(Value::StringValue(s)) => Line::Borrowed(s.as_bytes()),
                None => Line::Borrowed(&[]),
                Some(_) => self.arena_line(&encode::body_text(record)),
            },
            Format::Json => self.arena_line(&encode::json_line(record, record_rest, resource_rest, scope)),
            Format::Logfmt => self.arena_line(&encode::logfmt_line(record, record_rest, resource_rest, scope)),
        };
        let start = self.arena.len();
        if format == Format::Raw && self.config.structured_metadata {
            let out = &mut self.arena;
            if shared.is_none() {
                for kv in resource_rest {
                    put_attribute(out, kv);
                }
            }
            for kv in record_rest {
                put_attribute(out, kv);
            }
            if record.trace_id.iter().any(|b| *b != 0) {
                put_pair(out, "trace_id", &hex(&record.trace_id));
            }
            if record.span_id.iter().any(|b| *b != 0) {
                put_pair(out, "span_id", &hex(&record.span_id));
            }
            put_pair(out, "severity_text", &record.severity_text);
            if record.severity_number != 0 {
                put_pair(out, "severity_number", &record.severity_number.to_string());
            }
        }
        let own = start..self.arena.len();
        let nanos = [record.time_unix_nano, record.observed_time_unix_nano, self.now]
            .into_iter()
            .find(|t| *t > 0)
            .unwrap_or(self.now);
        let mut entry = Entry { nanos, line, shared, own, size: 0 };
        let line_len = self.line_bytes(&entry).len();
        entry.size = field_len(timestamp_len(nanos))
            + if line_len > 0 { field_len(line_len) } else { 0 }
            + self.shared_bytes(&entry).len()
            + entry.own.len();
        self.streams[stream].entries.push(entry);
    }

    fn arena_line(&mut self, line: &str) -> Line<'a> {
        let start = self.arena.len();
        self.arena.extend_from_slice(line.as_bytes());
        Line::Arena(start..self.arena.len())
    }

    /// Writes one entry's `EntryAdapter` (without its own key and length).
    fn put_entry(&self, out: &mut Vec<u8>, entry: &Entry<'a>) {
        put_timestamp(out, entry.nanos);
        let line = self.line_bytes(entry);
        if !line.is_empty() {
            put_field(out, 0x12, line);
        }
        out.extend_from_slice(self.shared_bytes(entry));
        out.extend_from_slice(&self.arena[entry.own.clone()]);
    }

    /// The pushes: per tenant (by name), streams by labels, each stream's entries in
    /// time order, cut under `max_request_size` and `max_streams_per_request`.
    fn finish(mut self) -> Vec<Push> {
        let max_bytes = self.config.max_request_size.0 as usize;
        let max_streams = self.config.max_streams_per_request;
        let mut order: Vec<usize> = (0..self.streams.len()).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (&self.streams[a], &self.streams[b]);
            self.tenants[a.tenant].0.cmp(&self.tenants[b.tenant].0).then_with(|| a.labels.cmp(&b.labels))
        });
        for stream in &mut self.streams {
            stream.entries.sort_by_key(|e| e.nanos);
        }
        // Pieces of streams (stream, entries) per request, then each request written.
        let mut requests: Vec<Vec<(usize, Range<usize>)>> = Vec::new();
        let mut current: Vec<(usize, Range<usize>)> = Vec::new();
        let mut bytes = 0usize;
        let mut tenant = None;
        for s in order {
            let stream = &self.streams[s];
            if tenant.is_some_and(|t| t != stream.tenant) && !current.is_empty() {
                requests.push(std::mem::take(&mut current));
                bytes = 0;
            }
            tenant = Some(stream.tenant);
            // The stream's own field and its labels, with room for its length.
            let overhead = 1 + 5 + field_len(stream.labels.len());
            let mut start = 0;
            for (i, entry) in stream.entries.iter().enumerate() {
                let size = field_len(entry.size);
                let full = bytes + size + overhead > max_bytes || current.len() >= max_streams;
                if full && (i > start || !current.is_empty()) {
                    if i > start {
                        current.push((s, start..i));
                    }
                    requests.push(std::mem::take(&mut current));
                    bytes = 0;
                    start = i;
                }
                bytes += size;
            }
            if start < stream.entries.len() {
                current.push((s, start..stream.entries.len()));
                bytes += overhead;
            }
        }
        if !current.is_empty() {
            requests.push(current);
        }
        let mut encoder = snap::raw::Encoder::new();
        let mut buf = Vec::new();
        let mut pushes = Vec::with_capacity(requests.len());
        for pieces in requests {
            buf.clear();
            // Each piece's `StreamAdapter` length, once: the buffer is sized from them.
            let lens: Vec<usize> = pieces
                .iter()
                .map(|(s, range)| {
                    let stream = &self.streams[*s];
                    field_len(stream.labels.len())
                        + stream.entries[range.clone()].iter().map(|e| field_len(e.size)).sum::<usize>()
                })
                .collect();
            buf.reserve(lens.iter().map(|len| field_len(*len)).sum());
            let mut entries = 0u64;
            let mut streams = Vec::with_capacity(pieces.len());
            for ((s, range), body) in pieces.iter().zip(lens) {
                let stream = &self.streams[*s];
                let list = &stream.entries[range.clone()];
                buf.push(0x0a);
                encode_varint(body as u64, &mut buf);
                put_field(&mut buf, 0x0a, stream.labels.as_bytes());
                for entry in list {
                    buf.push(0x12);
                    encode_varint(entry.size as u64, &mut buf);
                    let before = buf.len();
                    self.put_entry(&mut buf, entry);
                    debug_assert_eq!(buf.len() - before, entry.size);
                }
                entries += list.len() as u64;
                streams.push(stream.labels.clone());
            }
            let mut body = vec![0; snap::raw::max_compress_len(buf.len())];
            // Compressing a buffer into one of max_compress_len cannot fail.
            let n = encoder.compress(&buf, &mut body).unwrap_or(0);
            body.truncate(n);
            let tenant = self.tenants[self.streams[pieces[0].0].tenant].0.clone();
            pushes.push(Push { tenant, body: body.into(), entries, streams, settled: false });
        }
        pushes
    }
}

/// The static labels, then the resource attributes configured (or by default, or
/// named in the `loki.resource.labels` hint) as labels; and the keys made labels.
fn resource_labels<'a>(
    config: &LokiConfig,
    resource: &'a [KeyValue],
    resource_hint: &str,
) -> (Vec<(String, String)>, Vec<&'a str>) {
    let mut labels: Vec<(String, String)> =
        config.labels.static_labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut used = Vec::new();
    for kv in resource {
        let configured = match &config.labels.resource {
            Some(map) => map.get(&kv.key).map(String::as_str),
            None => DEFAULT_RESOURCE_LABELS.contains(&kv.key.as_str()).then_some(""),
        };
        let hinted = resource_hint.split(',').any(|h| h.trim() == kv.key);
        if let Some(label) = configured.or(hinted.then_some("")) {
            promote(&mut labels, &kv.key, label, text(kv.value.as_ref()));
            used.push(kv.key.as_str());
        }
    }
    (labels, used)
}

/// Adds a label unless its value is empty or a label of that name is there already.
fn promote(labels: &mut Vec<(String, String)>, key: &str, label: &str, value: String) {
    let name = if label.is_empty() { label_name(key) } else { label.to_string() };
    if !value.is_empty() && !labels.iter().any(|(n, _)| *n == name) {
        labels.push((name, value));
    }
}

/// A batch's push requests.
pub fn build(config: &LokiConfig, default_format: Format, request: &ExportLogsServiceRequest) -> Built {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let mut builder = Builder {
        config,
        default_format,
        now,
        tenants: Vec::new(),
        streams: Vec::new(),
        stream_count: 0,
        folded: 0,
        arena: Vec::new(),
        shared: Vec::new(),
    };
    builder.add(request);
    let folded = builder.folded;
    Built { pushes: builder.finish(), folded }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exporters::loki::proto::{LabelPairAdapter, PushRequest};
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(Value::StringValue(value.into())) }),
            ..Default::default()
        }
    }

    fn config(yaml: &str) -> LokiConfig {
        let node = crate::config::node::parse("t.yaml", &format!("endpoint: http://127.0.0.1:1/push\n{yaml}")).unwrap();
        crate::config::de::from_node(&node).unwrap()
    }

    fn record(body: &str, time: u64, attributes: Vec<KeyValue>) -> LogRecord {
        LogRecord {
            time_unix_nano: time,
            body: Some(AnyValue { value: Some(Value::StringValue(body.into())) }),
            attributes,
            ..Default::default()
        }
    }

    fn push(config: &LokiConfig, resources: Vec<(Vec<KeyValue>, Vec<LogRecord>)>) -> Vec<(String, PushRequest)> {
        let request = ExportLogsServiceRequest {
            resource_logs: resources
                .into_iter()
                .map(|(attributes, log_records)| ResourceLogs {
                    resource: Some(Resource { attributes, ..Default::default() }),
                    scope_logs: vec![ScopeLogs { log_records, ..Default::default() }],
                    ..Default::default()
                })
                .collect(),
        };
        build(config, Format::Raw, &request)
            .pushes
            .iter()
            .map(|p| {
                let raw = snap::raw::Decoder::new().decompress_vec(&p.body).unwrap();
                (p.tenant.clone(), PushRequest::decode(raw.as_slice()).unwrap())
            })
            .collect()
    }

    #[test]
    fn metadata_names_are_label_names() {
        for key in ["log.file.name", "1abc", "_x", "__x", "_", "a-b c", "é.k", "k8s.pod.uid", "x_1", ""] {
            let mut out = Vec::new();
            put_attribute(&mut out, &kv(key, "v"));
            let mut expected = Vec::new();
            put_pair(&mut expected, &label_name(key), "v");
            assert_eq!(out, expected, "{key:?}");
        }
    }

    #[test]
    fn records_that_change_their_labels_or_tenant_take_their_own_stream() {
        let config = config("labels: {attributes: {level: level}}\n");
        let resource = vec![
            kv("service.name", "api"),
            kv("host.name", "h1"),
            kv("loki.tenant", "team"),
            kv("loki.attribute.labels", "kind"),
        ];
        let records = vec![
            record("plain", 3, vec![kv("log.file.name", "a.log")]),
            record("levelled", 2, vec![kv("level", "warn")]),
            record("hinted", 1, vec![kv("kind", "audit")]),
            record("own tenant", 4, vec![kv("team", "blue")]),
            record("plain again", 5, vec![kv("service.name", "shadowed")]),
        ];
        let pushes = push(&config, vec![(resource, records)]);
        let streams: Vec<(String, String, Vec<String>, Vec<LabelPairAdapter>)> = pushes
            .iter()
            .flat_map(|(tenant, p)| {
                p.streams.iter().flat_map(move |s| {
                    s.entries.iter().map(move |e| {
                        (tenant.clone(), s.labels.clone(), vec![e.line.clone()], e.structured_metadata.clone())
                    })
                })
            })
            .collect();
        let find = |line: &str| streams.iter().find(|s| s.2[0] == line).unwrap();
        let plain = find("plain");
        assert_eq!((plain.0.as_str(), plain.1.as_str()), ("", "{service_name=\"api\"}"));
        let names: Vec<&str> = plain.3.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["host_name", "log_file_name"], "resource first, hints never");
        assert_eq!(find("levelled").1, "{level=\"warn\", service_name=\"api\"}");
        assert_eq!(find("hinted").1, "{kind=\"audit\", service_name=\"api\"}");
        assert_eq!(find("own tenant").0, "blue", "the tenant attribute from the record");
        let again = find("plain again");
        assert_eq!(again.1, "{service_name=\"api\"}");
        assert!(again.3.iter().all(|p| p.name != "service_name"), "a label's key is not metadata again");
        // Only the plain records share a stream: in time order.
        let shared: Vec<&str> = pushes
            .iter()
            .filter(|(tenant, _)| tenant.is_empty())
            .flat_map(|(_, p)| &p.streams)
            .filter(|s| s.labels == "{service_name=\"api\"}")
            .flat_map(|s| s.entries.iter().map(|e| e.line.as_str()))
            .collect();
        assert_eq!(shared, ["plain", "plain again"]);
    }
}
