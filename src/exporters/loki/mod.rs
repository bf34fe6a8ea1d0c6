//! The `loki` exporter: logs to Loki's push API (`logproto.PushRequest`, protobuf +
//! snappy). Streams are labelled by the resource attributes Loki's own OTLP endpoint
//! indexes by default (or the configured ones, and the upstream `loki.*` hints), the
//! other attributes go as structured metadata; entries are sorted by time in each
//! stream and requests split by size and stream count. 429 and 5xx are retried; 400
//! (out of order, too old, line too long, bad labels) is permanent: counted by reason,
//! logged once per stream per minute, never retried.

pub mod config;
pub mod encode;
pub mod proto;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;
use tracing::warn;

use config::Format;
pub use config::LokiConfig;

use crate::config::ComponentId;
use crate::exporters::BuildError;
use crate::exporters::helper::{ExportError, ExportInParts, Tally};
use crate::exporters::http::HttpPoster;
use crate::pdata::json::hex;
use crate::pdata::prometheus::naming::label_name;
use crate::pdata::prometheus::text;
use crate::pdata::{BackendStatus, Metadata, Payload};
use crate::telemetry::Telemetry;
use proto::{EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter, Timestamp};

pub const TYPE: &str = "loki";

/// The resource attributes Loki's OTLP endpoint makes index labels by default.
pub const DEFAULT_RESOURCE_LABELS: [&str; 17] = [
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment",
    "cloud.region",
    "cloud.availability_zone",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "container.name",
    "k8s.replicaset.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
];

/// The upstream exporter's hints, never sent themselves.
const HINTS: [&str; 4] = ["loki.resource.labels", "loki.attribute.labels", "loki.format", "loki.tenant"];

/// A 400 for the same stream is logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

pub struct LokiExporter {
    id: ComponentId,
    poster: HttpPoster,
    url: http::Uri,
    config: LokiConfig,
    format: Format,
    telemetry: Arc<Telemetry>,
    /// When a 400 was last logged, per stream.
    logged: Mutex<HashMap<String, Instant>>,
}

/// One tenant's streams in a batch: labels string → entries.
type Streams = HashMap<String, Vec<EntryAdapter>>;

impl LokiExporter {
    /// Adds an authenticator's headers to every request.
    pub fn with_auth(mut self, auth: Option<std::sync::Arc<crate::extensions::auth::ClientAuth>>) -> Self {
        self.poster = self.poster.with_auth(auth);
        self
    }

    pub fn new(id: &ComponentId, config: &LokiConfig, telemetry: &Arc<Telemetry>) -> Result<LokiExporter, BuildError> {
        let url = config
            .endpoint
            .parse()
            .map_err(|e| BuildError::Endpoint { endpoint: config.endpoint.clone(), reason: format!("{e}") })?;
        let poster = HttpPoster::new(&config.endpoint, &config.tls, config.timeout.0, &config.headers)?;
        let format = config.format.unwrap_or(if config.structured_metadata { Format::Raw } else { Format::Json });
        Ok(LokiExporter {
            id: id.clone(),
            poster,
            url,
            config: config.clone(),
            format,
            telemetry: telemetry.clone(),
            logged: Mutex::new(HashMap::new()),
        })
    }

    /// Groups a batch into streams per tenant; also returns how many entries were folded
    /// by the `max_streams` guard.
    pub fn streams(&self, request: &ExportLogsServiceRequest) -> (HashMap<String, Streams>, u64) {
        let mut tenants: HashMap<String, Streams> = HashMap::new();
        let mut stream_count = 0usize;
        let mut folded = 0u64;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        for resource_logs in &request.resource_logs {
            let resource: &[KeyValue] = resource_logs.resource.as_ref().map(|r| r.attributes.as_slice()).unwrap_or(&[]);
            for scope_logs in &resource_logs.scope_logs {
                for record in &scope_logs.log_records {
                    let find = |key: &str| {
                        record
                            .attributes
                            .iter()
                            .chain(resource)
                            .find(|kv| kv.key == key)
                            .map(|kv| text(kv.value.as_ref()))
                    };
                    let resource_first = |key: &str| {
                        resource
                            .iter()
                            .chain(&record.attributes)
                            .find(|kv| kv.key == key)
                            .map(|kv| text(kv.value.as_ref()))
                    };
                    // Labels: static, then resource, then record attributes.
                    let mut labels: Vec<(String, String)> =
                        self.config.labels.static_labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    let mut used: Vec<&str> = Vec::new();
                    let promote = |labels: &mut Vec<(String, String)>, key: &str, label: &str, value: String| {
                        let name = if label.is_empty() { label_name(key) } else { label.to_string() };
                        if !value.is_empty() && !labels.iter().any(|(n, _)| *n == name) {
                            labels.push((name, value));
                        }
                    };
                    let resource_hint = find("loki.resource.labels").unwrap_or_default();
                    let attribute_hint = find("loki.attribute.labels").unwrap_or_default();
                    for kv in resource {
                        let configured = match &self.config.labels.resource {
                            Some(map) => map.get(&kv.key).map(String::as_str),
                            None => DEFAULT_RESOURCE_LABELS.contains(&kv.key.as_str()).then_some(""),
                        };
                        let hinted = resource_hint.split(',').any(|h| h.trim() == kv.key);
                        if let Some(label) = configured.or(hinted.then_some("")) {
                            promote(&mut labels, &kv.key, label, text(kv.value.as_ref()));
                            used.push(&kv.key);
                        }
                    }
                    for kv in &record.attributes {
                        let configured = self.config.labels.attributes.get(&kv.key).map(String::as_str);
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
                        .or_else(|| self.config.tenant_id.clone())
                        .unwrap_or_default();
                    let format = resource_first("loki.format").and_then(|f| Format::parse(&f)).unwrap_or(self.format);
                    let keep = |kv: &&KeyValue| !used.contains(&kv.key.as_str()) && !HINTS.contains(&kv.key.as_str());
                    let record_rest: Vec<KeyValue> = record.attributes.iter().filter(keep).cloned().collect();
                    let resource_rest: Vec<KeyValue> = resource.iter().filter(keep).cloned().collect();
                    let scope = scope_logs.scope.as_ref();
                    let (line, structured_metadata) = match format {
                        Format::Raw => {
                            let metadata = if self.config.structured_metadata {
                                structured_metadata(record, &resource_rest, &record_rest)
                            } else {
                                Vec::new()
                            };
                            (encode::body_text(record), metadata)
                        }
                        Format::Json => (encode::json_line(record, &record_rest, &resource_rest, scope), Vec::new()),
                        Format::Logfmt => {
                            (encode::logfmt_line(record, &record_rest, &resource_rest, scope), Vec::new())
                        }
                    };
                    let nanos = [record.time_unix_nano, record.observed_time_unix_nano, now]
                        .into_iter()
                        .find(|t| *t > 0)
                        .unwrap_or(now);
                    let entry =
                        EntryAdapter { timestamp: Some(Timestamp::from_nanos(nanos)), line, structured_metadata };
                    let streams = tenants.entry(tenant).or_default();
                    let mut key = encode::label_string(&labels);
                    if !streams.contains_key(&key) {
                        if stream_count >= self.config.max_streams {
                            // Cardinality guard: keep the static labels and service_name only.
                            labels.retain(|(n, _)| {
                                n == "service_name" || self.config.labels.static_labels.contains_key(n)
                            });
                            labels.push(("ocelot_folded".into(), "true".into()));
                            key = encode::label_string(&labels);
                            folded += 1;
                        } else {
                            stream_count += 1;
                        }
                    }
                    streams.entry(key).or_default().push(entry);
                }
            }
        }
        (tenants, folded)
    }

    /// The requests for one tenant: entries sorted by time per stream, split under
    /// `max_request_size` and `max_streams_per_request`. Returns (request, entries).
    pub fn requests(&self, streams: Streams) -> Vec<(PushRequest, u64)> {
        let max_bytes = self.config.max_request_size.0 as usize;
        let mut requests = Vec::new();
        let mut current = PushRequest::default();
        let (mut bytes, mut entries) = (0usize, 0u64);
        let mut streams: Vec<(String, Vec<EntryAdapter>)> = streams.into_iter().collect();
        streams.sort_by(|a, b| a.0.cmp(&b.0));
        for (labels, mut list) in streams {
            list.sort_by_key(|e| e.timestamp.map(|t| t.as_nanos()).unwrap_or(0));
            // A stream too big for one request is cut into pieces, each in time order.
            let mut piece = StreamAdapter { labels: labels.clone(), entries: Vec::new() };
            for entry in list {
                let size = entry.encoded_len() + 8;
                let full = bytes + size + labels.len() > max_bytes
                    || current.streams.len() >= self.config.max_streams_per_request;
                if full && (!piece.entries.is_empty() || !current.streams.is_empty()) {
                    if !piece.entries.is_empty() {
                        current.streams.push(std::mem::replace(
                            &mut piece,
                            StreamAdapter { labels: labels.clone(), entries: Vec::new() },
                        ));
                    }
                    requests.push((std::mem::take(&mut current), entries));
                    (bytes, entries) = (0, 0);
                }
                bytes += size;
                entries += 1;
                piece.entries.push(entry);
            }
            if !piece.entries.is_empty() {
                bytes += labels.len() + 8;
                current.streams.push(piece);
            }
        }
        if !current.streams.is_empty() {
            requests.push((current, entries));
        }
        requests
    }

    async fn send(
        &self,
        tenant: &str,
        request: &PushRequest,
        entries: u64,
        metadata: &Metadata,
    ) -> Result<(), ExportError> {
        let body = snap::raw::Encoder::new()
            .compress_vec(&request.encode_to_vec())
            .map_err(|e| ExportError::permanent(format!("snappy: {e}")))?;
        let mut headers = vec![(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/x-protobuf"))];
        if !tenant.is_empty() {
            let value = http::HeaderValue::from_str(tenant)
                .map_err(|e| ExportError::permanent(format!("tenant `{tenant}` is not a valid header value: {e}")))?;
            headers.push((http::HeaderName::from_static("x-scope-orgid"), value));
        }
        let response = self.poster.post(&self.url, body, &headers, metadata).await?;
        let status = response.status;
        if status.is_success() {
            return Ok(());
        }
        let message = format!("HTTP {} from {}: {}", status.as_u16(), self.url, response.text);
        if status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS {
            return Err(ExportError::retry_after(message, response.retry_after));
        }
        // Refused for good (out of order, too old, line too long, bad labels): never
        // retried, counted by reason, logged once per stream per minute.
        let reason = rejection_reason(&response.text);
        self.telemetry.exporter_dropped(&self.id, reason).inc_by(entries);
        self.log_rejection(request, &message, reason);
        Err(ExportError { message, logged: true, ..ExportError::default() }
            .with_status(BackendStatus::Http(status.as_u16())))
    }

    fn log_rejection(&self, request: &PushRequest, message: &str, reason: &str) {
        let mut logged = self.logged.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        logged.retain(|_, at| now.duration_since(*at) < LOG_EVERY);
        for stream in &request.streams {
            if logged.len() < 10_000 && !logged.contains_key(&stream.labels) {
                logged.insert(stream.labels.clone(), now);
                warn!(exporter = %self.id, stream = %stream.labels, reason, error = %message,
                    "Loki refused entries of this stream; they are dropped (logged once a minute per stream).");
            }
        }
    }
}

/// The reason in Loki's 4xx body, as a label value.
pub fn rejection_reason(body: &str) -> &'static str {
    let body = body.to_ascii_lowercase();
    if body.contains("out of order") || body.contains("too far behind") {
        "out_of_order"
    } else if body.contains("too old") {
        "too_old"
    } else if body.contains("too new") {
        "too_new"
    } else if body.contains("max entry size") || body.contains("line too long") {
        "line_too_long"
    } else if body.contains("label") {
        "invalid_labels"
    } else {
        "rejected"
    }
}

/// Structured metadata of a `raw` entry: the attributes that are not labels, trace and
/// span ids, severity.
fn structured_metadata(
    record: &opentelemetry_proto::tonic::logs::v1::LogRecord,
    resource: &[KeyValue],
    attributes: &[KeyValue],
) -> Vec<LabelPairAdapter> {
    let mut pairs: Vec<LabelPairAdapter> = resource
        .iter()
        .chain(attributes)
        .map(|kv| LabelPairAdapter { name: label_name(&kv.key), value: text(kv.value.as_ref()) })
        .filter(|p| !p.value.is_empty())
        .collect();
    if record.trace_id.iter().any(|b| *b != 0) {
        pairs.push(LabelPairAdapter { name: "trace_id".into(), value: hex(&record.trace_id) });
    }
    if record.span_id.iter().any(|b| *b != 0) {
        pairs.push(LabelPairAdapter { name: "span_id".into(), value: hex(&record.span_id) });
    }
    if !record.severity_text.is_empty() {
        pairs.push(LabelPairAdapter { name: "severity_text".into(), value: record.severity_text.clone() });
    }
    if record.severity_number != 0 {
        pairs.push(LabelPairAdapter { name: "severity_number".into(), value: record.severity_number.to_string() });
    }
    pairs
}

/// One batch's push requests, built on the first attempt: (tenant, request, entries,
/// settled). A retry sends only the requests not settled yet.
pub type LokiParts = Option<Vec<(String, PushRequest, u64, bool)>>;

impl ExportInParts for LokiExporter {
    type Parts = LokiParts;

    async fn export_parts(
        &self,
        payload: &Payload,
        metadata: &Metadata,
        parts: &mut LokiParts,
        tally: &mut Tally,
    ) -> Result<(), ExportError> {
        let Payload::Logs(request) = payload else { return Ok(()) };
        let requests = parts.get_or_insert_with(|| self.build_requests(request));
        // Requests go in order; the first retryable failure ends the attempt (the
        // backend is likely down for the rest too), and a retry resumes there.
        for (tenant, request, entries, settled) in requests.iter_mut().filter(|r| !r.3) {
            match self.send(tenant, request, *entries, metadata).await {
                Ok(()) => tally.sent += *entries,
                Err(e) if e.retryable => return Err(e),
                Err(e) => tally.reject(*entries, e),
            }
            *settled = true;
        }
        Ok(())
    }
}

impl LokiExporter {
    fn build_requests(&self, request: &ExportLogsServiceRequest) -> Vec<(String, PushRequest, u64, bool)> {
        let (tenants, folded) = self.streams(request);
        if folded > 0 {
            self.telemetry.loki_folded(&self.id).inc_by(folded);
            warn!(exporter = %self.id, entries = folded, max_streams = self.config.max_streams,
                "More streams than max_streams in one batch; the rest folded into one stream per tenant.");
        }
        let mut tenants: Vec<(String, Streams)> = tenants.into_iter().collect();
        tenants.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Vec::new();
        for (tenant, streams) in tenants {
            for (request, entries) in self.requests(streams) {
                out.push((tenant.clone(), request, entries, false));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn exporter(yaml: &str) -> LokiExporter {
        let node = crate::config::node::parse("t.yaml", &format!("endpoint: http://127.0.0.1:1/push\n{yaml}")).unwrap();
        let config: LokiConfig = crate::config::de::from_node(&node).unwrap();
        LokiExporter::new(&ComponentId::parse("loki").unwrap(), &config, &Telemetry::new()).unwrap()
    }

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(Value::StringValue(value.into())) }),
            ..Default::default()
        }
    }

    /// `pods` resources (one stream each) of `lines` records with `size`-byte bodies.
    fn request(pods: usize, lines: usize, size: usize) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: (0..pods)
                .map(|p| ResourceLogs {
                    resource: Some(Resource {
                        attributes: vec![kv("service.name", "api"), kv("k8s.pod.name", &format!("pod-{p}"))],
                        ..Default::default()
                    }),
                    scope_logs: vec![ScopeLogs {
                        log_records: (0..lines)
                            .map(|i| LogRecord {
                                // Newest first: the requests must put them back in order.
                                time_unix_nano: 1_000_000 - i as u64,
                                body: Some(AnyValue { value: Some(Value::StringValue("x".repeat(size))) }),
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
        }
    }

    fn split(exporter: &LokiExporter, request: &ExportLogsServiceRequest) -> Vec<(PushRequest, u64)> {
        let (tenants, _) = exporter.streams(request);
        tenants.into_values().flat_map(|s| exporter.requests(s)).collect()
    }

    #[test]
    fn requests_stay_under_the_size_and_stream_limits_in_time_order() {
        let loki = exporter("max_request_size: 10kb\nmax_streams_per_request: 3\n");
        let requests = split(&loki, &request(10, 40, 500));
        let total: u64 = requests.iter().map(|(_, n)| n).sum();
        assert_eq!(total, 400);
        for (push, entries) in &requests {
            assert!(push.encoded_len() <= 10_000 + 600, "{}", push.encoded_len());
            assert!(push.streams.len() <= 3);
            assert_eq!(*entries as usize, push.streams.iter().map(|s| s.entries.len()).sum::<usize>());
            for stream in &push.streams {
                let times: Vec<u64> = stream.entries.iter().map(|e| e.timestamp.unwrap().as_nanos()).collect();
                assert!(times.windows(2).all(|w| w[0] <= w[1]));
            }
        }
        // Across requests too, each stream's pieces go in time order.
        let pod0: Vec<u64> = requests
            .iter()
            .flat_map(|(p, _)| &p.streams)
            .filter(|s| s.labels.contains("pod-0\""))
            .flat_map(|s| s.entries.iter().map(|e| e.timestamp.unwrap().as_nanos()))
            .collect();
        assert_eq!(pod0.len(), 40);
        assert!(pod0.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn streams_past_max_streams_are_folded_and_counted() {
        let loki = exporter("max_streams: 4\nlabels: {static: {env: prod}}\n");
        let (tenants, folded) = loki.streams(&request(10, 2, 10));
        let streams = &tenants[""];
        assert_eq!(folded, 12, "6 streams × 2 entries folded");
        assert_eq!(streams.len(), 5, "4 streams and the folded one");
        let fold = streams.keys().find(|k| k.contains("ocelot_folded")).unwrap();
        assert_eq!(fold, "{env=\"prod\", ocelot_folded=\"true\", service_name=\"api\"}");
        assert_eq!(streams[fold].len(), 12);
    }
}
