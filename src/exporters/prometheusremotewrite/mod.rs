//! The `prometheusremotewrite` exporter: metrics as remote write 1.0 (protobuf +
//! snappy) to Prometheus, Mimir, Thanos, Cortex or VictoriaMetrics. Names and labels
//! come from [`crate::pdata::prometheus`]. 5xx, 429 and transport errors are retried
//! (honouring `Retry-After`); other 4xx are permanent: the samples are dropped and
//! counted by the reason the server gave, never retried.

pub mod config;
pub mod proto;

use std::sync::Arc;

use prost::Message;
use tracing::warn;

pub use config::PrwConfig;

use crate::config::ComponentId;
use crate::exporters::BuildError;
use crate::exporters::helper::{ExportError, ExportInParts, Tally};
use crate::exporters::http::HttpPoster;
use crate::pdata::prometheus::delta::DeltaState;
use crate::pdata::prometheus::{Options, Series, Translation, translate};
use crate::pdata::{BackendStatus, ExportMetricsServiceRequest, Metadata, Payload};
use crate::telemetry::Telemetry;
use proto::{BucketSpan, Histogram, Label, MetricMetadata, Sample, TimeSeries, WriteRequest};

pub const TYPE: &str = "prometheusremotewrite";

const USER_AGENT: &str = concat!("ocelot/", env!("CARGO_PKG_VERSION"));

pub struct PrwExporter {
    id: ComponentId,
    poster: HttpPoster,
    url: http::Uri,
    options: Options,
    send_metadata: bool,
    max_request_bytes: usize,
    telemetry: Arc<Telemetry>,
    /// Running totals of delta sums and histograms.
    deltas: std::sync::Mutex<DeltaState>,
    /// Requests of one batch in flight at once.
    concurrency: usize,
}

impl PrwExporter {
    /// Adds an authenticator's headers to every request.
    pub fn with_auth(mut self, auth: Option<std::sync::Arc<crate::extensions::auth::ClientAuth>>) -> Self {
        self.poster = self.poster.with_auth(auth);
        self
    }

    pub fn new(id: &ComponentId, config: &PrwConfig, telemetry: &Arc<Telemetry>) -> Result<PrwExporter, BuildError> {
        let url = config
            .endpoint
            .parse()
            .map_err(|e| BuildError::Endpoint { endpoint: config.endpoint.clone(), reason: format!("{e}") })?;
        let poster = HttpPoster::new(&config.endpoint, &config.tls, config.timeout.0, &config.headers)?;
        let options = Options {
            namespace: config.namespace.clone(),
            add_metric_suffixes: config.add_metric_suffixes,
            resource_to_telemetry: config.resource_to_telemetry_conversion.enabled,
            target_info: config.target_info.enabled,
            external_labels: config
                .external_labels
                .iter()
                .map(|(k, v)| (crate::pdata::prometheus::naming::label_name(k), v.clone()))
                .collect(),
        };
        Ok(PrwExporter {
            id: id.clone(),
            poster,
            url,
            options,
            send_metadata: config.send_metadata,
            max_request_bytes: if config.max_batch_size_bytes == 0 { 3_000_000 } else { config.max_batch_size_bytes },
            telemetry: telemetry.clone(),
            deltas: std::sync::Mutex::new(DeltaState::new(config.delta_expiry.0)),
            concurrency: config.concurrency(),
        })
    }

    async fn send(&self, request: &WriteRequest, samples: u64, metadata: &Metadata) -> Result<(), ExportError> {
        let body = snap::raw::Encoder::new()
            .compress_vec(&request.encode_to_vec())
            .map_err(|e| ExportError::permanent(format!("snappy: {e}")))?;
        let headers = [
            (http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/x-protobuf")),
            (http::header::CONTENT_ENCODING, http::HeaderValue::from_static("snappy")),
            (
                http::HeaderName::from_static("x-prometheus-remote-write-version"),
                http::HeaderValue::from_static("0.1.0"),
            ),
            (http::header::USER_AGENT, http::HeaderValue::from_static(USER_AGENT)),
        ];
        let response = self.poster.post(&self.url, body, &headers, metadata).await?;
        let status = response.status;
        if status.is_success() {
            return Ok(());
        }
        let message = format!("HTTP {} from {}: {}", status.as_u16(), self.url, response.text);
        if status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS {
            return Err(ExportError::retry_after(message, response.retry_after));
        }
        // Refused for good: never retried, counted by the server's reason.
        self.telemetry.exporter_dropped(&self.id, rejection_reason(&response.text)).inc_by(samples);
        Err(ExportError::permanent(message).with_status(BackendStatus::Http(status.as_u16())))
    }
}

/// The write requests for one batch, each under `max_request_bytes` (a series
/// bigger than that goes alone), with the samples each carries.
pub fn write_requests(
    translation: Translation,
    send_metadata: bool,
    max_request_bytes: usize,
) -> Vec<(WriteRequest, u64)> {
    let metadata: Vec<MetricMetadata> = if send_metadata {
        translation
            .metadata
            .into_iter()
            .map(|m| MetricMetadata { r#type: m.kind, metric_family_name: m.family, help: m.help, unit: m.unit })
            .collect()
    } else {
        Vec::new()
    };
    let metadata_bytes: usize = metadata.iter().map(|m| m.encoded_len() + 4).sum();
    let mut requests = Vec::new();
    let mut current = WriteRequest { timeseries: Vec::new(), metadata: metadata.clone() };
    let (mut bytes, mut samples) = (metadata_bytes, 0u64);
    for series in translation.series {
        let series = time_series(series);
        let size = series.encoded_len() + 4;
        if !current.timeseries.is_empty() && bytes + size > max_request_bytes {
            let full =
                std::mem::replace(&mut current, WriteRequest { timeseries: Vec::new(), metadata: metadata.clone() });
            requests.push((full, samples));
            (bytes, samples) = (metadata_bytes, 0);
        }
        bytes += size;
        samples += (series.samples.len() + series.histograms.len()) as u64;
        current.timeseries.push(series);
    }
    if !current.timeseries.is_empty() {
        requests.push((current, samples));
    }
    requests
}

/// The reason in a Prometheus-compatible server's 4xx body, as a label value.
pub fn rejection_reason(body: &str) -> &'static str {
    let body = body.to_ascii_lowercase();
    if body.contains("out of order") {
        "out_of_order"
    } else if body.contains("out of bounds") {
        "out_of_bounds"
    } else if body.contains("duplicate sample") {
        "duplicate_sample"
    } else if body.contains("too old") {
        "too_old"
    } else if body.contains("label") {
        "invalid_labels"
    } else {
        "rejected"
    }
}

fn time_series(series: Series) -> TimeSeries {
    let spans =
        |spans: Vec<(i32, u32)>| spans.into_iter().map(|(offset, length)| BucketSpan { offset, length }).collect();
    TimeSeries {
        labels: series.labels.into_iter().map(|(name, value)| Label { name, value }).collect(),
        samples: series.samples.into_iter().map(|(value, timestamp)| Sample { value, timestamp }).collect(),
        histograms: series
            .histograms
            .into_iter()
            .map(|h| Histogram {
                count_int: h.count,
                sum: h.sum,
                schema: h.schema,
                zero_threshold: h.zero_threshold,
                zero_count_int: h.zero_count,
                negative_spans: spans(h.negative_spans),
                negative_deltas: h.negative_deltas,
                positive_spans: spans(h.positive_spans),
                positive_deltas: h.positive_deltas,
                reset_hint: 0,
                timestamp: h.timestamp_ms,
            })
            .collect(),
    }
}

/// One batch's write requests, translated once on the first attempt (so delta state
/// moves once): (request, samples, the batch's data points it stands for, settled).
pub type PrwParts = Option<Vec<(WriteRequest, u64, u64, bool)>>;

impl ExportInParts for PrwExporter {
    type Parts = PrwParts;

    async fn export_parts(
        &self,
        payload: &Payload,
        metadata: &Metadata,
        parts: &mut PrwParts,
        tally: &mut Tally,
    ) -> Result<(), ExportError> {
        let Payload::Metrics(request) = payload else { return Ok(()) };
        let requests = parts.get_or_insert_with(|| self.build_requests(request, payload.item_count() as u64));
        // Up to `num_consumers` requests at once (series are split across requests, never
        // within one). Only requests not settled are sent; a retryable failure ends the
        // attempt once its group is done, and a retry resumes with what is left.
        let mut retry = None;
        let pending: Vec<&mut (WriteRequest, u64, u64, bool)> = requests.iter_mut().filter(|r| !r.3).collect();
        let mut pending = pending.into_iter().peekable();
        while pending.peek().is_some() {
            let group: Vec<_> = pending.by_ref().take(self.concurrency).collect();
            let results = futures_util::future::join_all(group.iter().map(|r| self.send(&r.0, r.1, metadata))).await;
            for (part, result) in group.into_iter().zip(results) {
                match result {
                    Ok(()) => tally.sent += part.2,
                    Err(e) if e.retryable => {
                        retry.get_or_insert(e);
                        continue;
                    }
                    Err(e) => tally.reject(part.2, e),
                }
                part.3 = true;
            }
            if retry.is_some() {
                break;
            }
        }
        retry.map_or(Ok(()), Err)
    }
}

impl PrwExporter {
    fn build_requests(
        &self,
        request: &ExportMetricsServiceRequest,
        points: u64,
    ) -> Vec<(WriteRequest, u64, u64, bool)> {
        let mut translation = Translation::default();
        {
            // A poisoned lock only means a panic elsewhere mid-update: the totals stay usable.
            let mut deltas = self.deltas.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            translate(request, &self.options, &mut deltas, &mut translation);
        }
        translation.sort_samples();
        for (points, why, metric) in std::mem::take(&mut translation.dropped) {
            self.telemetry.exporter_dropped(&self.id, why.as_str()).inc_by(points);
            warn!(exporter = %self.id, metric, points, reason = why.as_str(), "Data points not sent: no remote-write form for them.");
        }
        let requests = write_requests(translation, self.send_metadata, self.max_request_bytes);
        // The batch's data points shared out by samples, the last request taking the rest.
        let total: u64 = requests.iter().map(|(_, samples)| *samples).sum::<u64>().max(1);
        let count = requests.len();
        let mut given = 0;
        requests
            .into_iter()
            .enumerate()
            .map(|(i, (request, samples))| {
                let share =
                    if i + 1 == count { points - given } else { (points * samples / total).min(points - given) };
                given += share;
                (request, samples, share, false)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_from_prometheus_bodies() {
        assert_eq!(rejection_reason("out of order sample"), "out_of_order");
        assert_eq!(rejection_reason("out of bounds"), "out_of_bounds");
        assert_eq!(rejection_reason("duplicate sample for timestamp"), "duplicate_sample");
        assert_eq!(rejection_reason("too old sample"), "too_old");
        assert_eq!(rejection_reason("something else"), "rejected");
    }
}

#[cfg(test)]
mod request_tests {
    use super::*;
    use crate::pdata::prometheus::Metadata;

    fn translation(series: usize) -> Translation {
        let mut t = Translation::default();
        t.metadata.push(Metadata { kind: 2, family: "up".into(), help: "Up.".into(), unit: String::new() });
        for i in 0..series {
            t.series.push(Series {
                labels: vec![("__name__".into(), "up".into()), ("pod".into(), format!("pod-{i:04}"))],
                samples: vec![(1.0, 1000), (2.0, 2000)],
                histograms: Vec::new(),
                family: 0,
            });
        }
        t
    }

    #[test]
    fn batches_split_under_max_batch_size_bytes_with_metadata_on_each() {
        let requests = write_requests(translation(1000), true, 8_000);
        assert!(requests.len() > 1);
        assert_eq!(requests.iter().map(|(_, n)| n).sum::<u64>(), 2000);
        for (request, _) in &requests {
            assert!(request.encoded_len() <= 8_000, "{}", request.encoded_len());
            assert_eq!(request.metadata.len(), 1);
            assert_eq!(request.metadata[0].metric_family_name, "up");
        }
        let without = write_requests(translation(3), false, 3_000_000);
        assert_eq!(without.len(), 1);
        assert!(without[0].0.metadata.is_empty());
    }
}
