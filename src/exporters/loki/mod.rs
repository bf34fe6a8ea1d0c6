//! The `loki` exporter: logs to Loki's push API (`logproto.PushRequest`, protobuf +
//! snappy). Streams are labelled by the resource attributes Loki's own OTLP endpoint
//! indexes by default (or the configured ones, and the upstream `loki.*` hints), the
//! other attributes go as structured metadata; entries are sorted by time in each
//! stream and requests split by size and stream count. 429 and 5xx are retried; 400
//! (out of order, too old, line too long, bad labels) is permanent: counted by reason,
//! logged once per stream per minute, never retried.

pub mod batch;
pub mod config;
pub mod encode;
pub mod proto;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use tracing::warn;

use config::Format;
pub use config::LokiConfig;

use crate::config::ComponentId;
use crate::exporters::BuildError;
use crate::exporters::helper::{ExportError, ExportInParts, Tally};
use crate::exporters::http::HttpPoster;
use crate::pdata::{BackendStatus, Metadata, Payload};
use crate::telemetry::Telemetry;
pub use batch::Push;

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
pub(crate) const HINTS: [&str; 4] = ["loki.resource.labels", "loki.attribute.labels", "loki.format", "loki.tenant"];

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

    async fn send(&self, push: &Push, metadata: &Metadata) -> Result<(), ExportError> {
        let (tenant, entries) = (push.tenant.as_str(), push.entries);
        let mut headers = vec![(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/x-protobuf"))];
        if !tenant.is_empty() {
            let value = http::HeaderValue::from_str(tenant)
                .map_err(|e| ExportError::permanent(format!("tenant `{tenant}` is not a valid header value: {e}")))?;
            headers.push((http::HeaderName::from_static("x-scope-orgid"), value));
        }
        let response = self.poster.post(&self.url, push.body.clone(), &headers, metadata).await?;
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
        self.log_rejection(push, &message, reason);
        Err(ExportError { message, logged: true, ..ExportError::default() }
            .with_status(BackendStatus::Http(status.as_u16())))
    }

    fn log_rejection(&self, push: &Push, message: &str, reason: &str) {
        let mut logged = self.logged.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        logged.retain(|_, at| now.duration_since(*at) < LOG_EVERY);
        for labels in &push.streams {
            if logged.len() < 10_000 && !logged.contains_key(labels) {
                logged.insert(labels.clone(), now);
                warn!(exporter = %self.id, stream = %labels, reason, error = %message,
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

/// One batch's push requests, built on the first attempt. A retry sends only the
/// requests not settled yet.
pub type LokiParts = Option<Vec<Push>>;

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
        for push in requests.iter_mut().filter(|p| !p.settled) {
            match self.send(push, metadata).await {
                Ok(()) => tally.sent += push.entries,
                Err(e) if e.retryable => return Err(e),
                Err(e) => tally.reject(push.entries, e),
            }
            push.settled = true;
        }
        Ok(())
    }
}

impl LokiExporter {
    /// A batch's push requests, encoded and compressed; entries past `max_streams`
    /// folded, counted and logged.
    pub fn build_requests(&self, request: &ExportLogsServiceRequest) -> Vec<Push> {
        let built = batch::build(&self.config, self.format, request);
        if built.folded > 0 {
            self.telemetry.loki_folded(&self.id).inc_by(built.folded);
            warn!(exporter = %self.id, entries = built.folded, max_streams = self.config.max_streams,
                "More streams than max_streams in one batch; the rest folded into one stream per tenant.");
        }
        built.pushes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::KeyValue;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;
    use proto::{PushRequest, StreamAdapter};

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
        exporter.build_requests(request).iter().map(|push| (decode(push), push.entries)).collect()
    }

    fn decode(push: &Push) -> PushRequest {
        let raw = snap::raw::Decoder::new().decompress_vec(&push.body).unwrap();
        PushRequest::decode(raw.as_slice()).unwrap()
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
        let built = batch::build(&loki.config, loki.format, &request(10, 2, 10));
        assert_eq!(built.folded, 12, "6 streams × 2 entries folded");
        let streams: Vec<StreamAdapter> = built.pushes.iter().flat_map(|p| decode(p).streams).collect();
        assert_eq!(streams.len(), 5, "4 streams and the folded one");
        let fold = streams.iter().find(|s| s.labels.contains("ocelot_folded")).unwrap();
        assert_eq!(fold.labels, "{env=\"prod\", ocelot_folded=\"true\", service_name=\"api\"}");
        assert_eq!(fold.entries.len(), 12);
    }
}
