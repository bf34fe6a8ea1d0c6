//! The `debug` exporter: writes what passes through to ocelot's own log.

use serde::Deserialize;
use tracing::info;

use super::helper::{Export, ExportError};
use crate::component::Validate;
use crate::config::ComponentId;
use crate::pdata::Payload;
use crate::pdata::json::hex;

pub const TYPE: &str = "debug";

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Verbosity {
    /// One summary line per batch.
    #[default]
    Basic,
    /// One line per span, data point or log record.
    Normal,
    /// The whole batch as OTLP JSON.
    Detailed,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DebugConfig {
    /// basic, normal or detailed. Default basic.
    #[serde(default)]
    pub verbosity: Verbosity,
}

impl Validate for DebugConfig {}

pub struct DebugExporter {
    name: String,
    verbosity: Verbosity,
}

impl DebugExporter {
    pub fn new(id: &ComponentId, config: &DebugConfig) -> DebugExporter {
        DebugExporter { name: id.to_string(), verbosity: config.verbosity }
    }
}

impl Export for DebugExporter {
    async fn export(&self, payload: &Payload) -> Result<(), ExportError> {
        let name = &self.name;
        match payload {
            Payload::Traces(r) => {
                info!(exporter = %name, resource_spans = r.resource_spans.len(), spans = payload.item_count(), "Traces")
            }
            Payload::Metrics(r) => info!(
                exporter = %name,
                resource_metrics = r.resource_metrics.len(),
                metrics = r.resource_metrics.iter().flat_map(|rm| &rm.scope_metrics).map(|sm| sm.metrics.len()).sum::<usize>(),
                data_points = payload.item_count(),
                "Metrics"
            ),
            Payload::Logs(r) => {
                info!(exporter = %name, resource_logs = r.resource_logs.len(), log_records = payload.item_count(), "Logs")
            }
        }
        match self.verbosity {
            Verbosity::Basic => {}
            Verbosity::Normal => log_each(name, payload),
            Verbosity::Detailed => {
                let json = crate::pdata::json::to_json_line(payload);
                info!(exporter = %name, "{json}");
            }
        }
        Ok(())
    }
}

fn log_each(name: &str, payload: &Payload) {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    match payload {
        Payload::Traces(r) => {
            for span in r.resource_spans.iter().flat_map(|rs| &rs.scope_spans).flat_map(|ss| &ss.spans) {
                info!(exporter = %name, trace_id = %hex(&span.trace_id), span_id = %hex(&span.span_id), "{}", span.name);
            }
        }
        Payload::Metrics(r) => {
            for metric in r.resource_metrics.iter().flat_map(|rm| &rm.scope_metrics).flat_map(|sm| &sm.metrics) {
                info!(exporter = %name, unit = %metric.unit, "{}", metric.name);
            }
        }
        Payload::Logs(r) => {
            for record in r.resource_logs.iter().flat_map(|rl| &rl.scope_logs).flat_map(|sl| &sl.log_records) {
                let body = match record.body.as_ref().and_then(|b| b.value.as_ref()) {
                    Some(Value::StringValue(s)) => s.clone(),
                    Some(other) => format!("{other:?}"),
                    None => String::new(),
                };
                info!(exporter = %name, severity = %record.severity_text, "{body}");
            }
        }
    }
}
