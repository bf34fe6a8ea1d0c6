//! The data model: OTLP protobuf payloads from `opentelemetry-proto`, wrapped in a
//! [`Batch`] that carries acknowledgement tokens through the pipeline.

mod ack;
pub mod grpc;
pub mod json;
mod metadata;
pub mod prometheus;
pub mod score;
pub(crate) mod split;
pub mod synthetic;

use std::fmt;
use std::sync::Arc;

pub use ack::{Ack, AckOutcome, AckWaiter, BackendStatus, Resolution};
pub use metadata::Metadata;
pub use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
pub use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
pub use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
pub use split::{count_data_points, count_log_records, count_spans, resource_item_counts};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Signal {
    Traces,
    Metrics,
    Logs,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    pub fn from_name(name: &str) -> Option<Signal> {
        match name {
            "traces" => Some(Signal::Traces),
            "metrics" => Some(Signal::Metrics),
            "logs" => Some(Signal::Logs),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }

    /// 0, 1, 2 for traces, metrics, logs: an index into per-signal arrays.
    pub fn index(self) -> usize {
        match self {
            Signal::Traces => 0,
            Signal::Metrics => 1,
            Signal::Logs => 2,
        }
    }

    /// The OTLP gRPC service of this signal.
    pub const fn grpc_service(self) -> &'static str {
        match self {
            Signal::Traces => "opentelemetry.proto.collector.trace.v1.TraceService",
            Signal::Metrics => "opentelemetry.proto.collector.metrics.v1.MetricsService",
            Signal::Logs => "opentelemetry.proto.collector.logs.v1.LogsService",
        }
    }

    /// The OTLP gRPC method path of this signal's export.
    pub const fn grpc_path(self) -> &'static str {
        match self {
            Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
            Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        }
    }

    /// What one item of this signal is called in self-metric names.
    pub fn item_name(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Metrics => "metric_points",
            Signal::Logs => "log_records",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One signal's OTLP export request.
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    Traces(ExportTraceServiceRequest),
    Metrics(ExportMetricsServiceRequest),
    Logs(ExportLogsServiceRequest),
}

impl Payload {
    pub fn signal(&self) -> Signal {
        match self {
            Payload::Traces(_) => Signal::Traces,
            Payload::Metrics(_) => Signal::Metrics,
            Payload::Logs(_) => Signal::Logs,
        }
    }

    /// Spans, metric data points or log records.
    pub fn item_count(&self) -> usize {
        match self {
            Payload::Traces(r) => count_spans(r),
            Payload::Metrics(r) => count_data_points(r),
            Payload::Logs(r) => count_log_records(r),
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Payload::Traces(r) => r.resource_spans.is_empty(),
            Payload::Metrics(r) => r.resource_metrics.is_empty(),
            Payload::Logs(r) => r.resource_logs.is_empty(),
        }
    }

    /// The size of its protobuf encoding, in bytes.
    pub fn encoded_len(&self) -> usize {
        use prost::Message;
        match self {
            Payload::Traces(r) => r.encoded_len(),
            Payload::Metrics(r) => r.encoded_len(),
            Payload::Logs(r) => r.encoded_len(),
        }
    }

    /// Moves `other`'s resources to the end of `self`. Both must be of one signal;
    /// a payload of another signal is given back.
    pub fn append(&mut self, other: Payload) -> Result<(), Payload> {
        match (self, other) {
            (Payload::Traces(a), Payload::Traces(b)) => a.resource_spans.extend(b.resource_spans),
            (Payload::Metrics(a), Payload::Metrics(b)) => a.resource_metrics.extend(b.resource_metrics),
            (Payload::Logs(a), Payload::Logs(b)) => a.resource_logs.extend(b.resource_logs),
            (_, other) => return Err(other),
        }
        Ok(())
    }

    /// Removes and returns the first `n` items, keeping resource and scope context on
    /// both sides. Taking `n >= item_count()` takes everything.
    pub fn split_front(&mut self, n: usize) -> Payload {
        match self {
            Payload::Traces(r) => Payload::Traces(ExportTraceServiceRequest {
                resource_spans: split::split_vec_front(&mut r.resource_spans, n),
            }),
            Payload::Metrics(r) => Payload::Metrics(ExportMetricsServiceRequest {
                resource_metrics: split::split_vec_front(&mut r.resource_metrics, n),
            }),
            Payload::Logs(r) => Payload::Logs(ExportLogsServiceRequest {
                resource_logs: split::split_vec_front(&mut r.resource_logs, n),
            }),
        }
    }
}

/// A payload on its way through a pipeline, with the acknowledgement tokens of every
/// source it came from. The payload is shared (`Arc`) on fan-out; a processor that
/// changes it copies it only if another consumer still holds it.
#[derive(Clone, Debug)]
pub struct Batch {
    pub payload: Arc<Payload>,
    pub acks: Vec<Ack>,
    /// The request's metadata, when a receiver kept it (`include_metadata`).
    pub metadata: Metadata,
}

impl Batch {
    pub fn new(payload: Payload) -> Batch {
        Batch { payload: Arc::new(payload), acks: Vec::new(), metadata: Metadata::default() }
    }

    pub fn with_ack(payload: Payload, ack: Ack) -> Batch {
        Batch { payload: Arc::new(payload), acks: vec![ack], metadata: Metadata::default() }
    }

    /// With the request's metadata.
    pub fn with_metadata(mut self, metadata: Metadata) -> Batch {
        self.metadata = metadata;
        self
    }

    pub fn signal(&self) -> Signal {
        self.payload.signal()
    }

    /// The payload for changing; copied only if shared.
    pub fn payload_mut(&mut self) -> &mut Payload {
        Arc::make_mut(&mut self.payload)
    }

    /// Marks every source of this batch as not delivered for now (refused, a full
    /// queue, retries given up): worth sending again.
    pub fn fail(&self) {
        for ack in &self.acks {
            ack.fail();
        }
    }

    /// [`Batch::fail`] with the reason, for a client that waits for the outcome.
    pub fn fail_with(&self, message: &str) {
        for ack in &self.acks {
            ack.fail_with(message);
        }
    }

    /// Marks every source of this batch as dropped for good (a 4xx, invalid data).
    pub fn reject(&self, status: Option<BackendStatus>, message: &str) {
        for ack in &self.acks {
            ack.reject(status, message);
        }
    }

    /// Marks every source of this batch as kept (delivered somewhere).
    pub fn keep(&self) {
        for ack in &self.acks {
            ack.keep();
        }
    }

    /// Lets go of the reply tokens, as kept: a queue (or a processor that holds data
    /// over time) has taken the data over, and a waiting client may have its answer.
    pub fn release_replies(&mut self) {
        if self.acks.iter().any(Ack::is_reply) {
            self.acks.retain(|ack| {
                if ack.is_reply() {
                    ack.keep();
                }
                !ack.is_reply()
            });
        }
    }
}
