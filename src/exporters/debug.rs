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

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DebugConfig {
    /// basic, normal or detailed. Default basic.
    #[serde(default)]
    pub verbosity: Verbosity,
    /// Lines written each second before sampling starts. Default 2, as upstream.
    #[serde(default = "default_sampling_initial")]
    pub sampling_initial: u64,
    /// Past `sampling_initial` in a second, every this-many-th line is written.
    /// Default 1 (every line).
    #[serde(default = "default_sampling_thereafter")]
    pub sampling_thereafter: u64,
    /// Through ocelot's own log (the default), or straight to standard output, unsampled.
    #[serde(default = "super::helper::default_true")]
    pub use_internal_logger: bool,
}

impl Default for DebugConfig {
    fn default() -> Self {
        DebugConfig {
            verbosity: Verbosity::default(),
            sampling_initial: default_sampling_initial(),
            sampling_thereafter: default_sampling_thereafter(),
            use_internal_logger: true,
        }
    }
}

fn default_sampling_initial() -> u64 {
    2
}
fn default_sampling_thereafter() -> u64 {
    1
}

impl Validate for DebugConfig {
    fn validate(&self) -> Result<(), String> {
        if self.sampling_thereafter == 0 {
            return Err("sampling_thereafter must be at least 1".into());
        }
        Ok(())
    }
}

pub struct DebugExporter {
    name: String,
    config: DebugConfig,
    /// The second being counted and the lines seen in it, for sampling.
    window: std::sync::Mutex<(u64, u64)>,
}

impl DebugExporter {
    pub fn new(id: &ComponentId, config: &DebugConfig) -> DebugExporter {
        DebugExporter { name: id.to_string(), config: config.clone(), window: std::sync::Mutex::new((0, 0)) }
    }

    /// Writes one line, sampled as upstream's logger samples: the first
    /// `sampling_initial` of each second, then every `sampling_thereafter`-th.
    fn line(&self, text: std::fmt::Arguments<'_>) {
        if !self.config.use_internal_logger {
            use std::io::Write;
            let _ = writeln!(std::io::stdout().lock(), "{text}");
            return;
        }
        let second = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if self.keep(second) {
            info!(exporter = %self.name, "{text}");
        }
    }

    /// Whether the next line, written in `second`, passes the sampler.
    fn keep(&self, second: u64) -> bool {
        let seen = {
            let mut window = self.window.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if window.0 != second {
                *window = (second, 0);
            }
            window.1 += 1;
            window.1
        };
        let initial = self.config.sampling_initial;
        seen <= initial || (seen - initial).is_multiple_of(self.config.sampling_thereafter)
    }
}

impl Export for DebugExporter {
    async fn export(&self, payload: &Payload, _metadata: &crate::pdata::Metadata) -> Result<(), ExportError> {
        match payload {
            Payload::Traces(r) => self.line(format_args!(
                "Traces resource_spans={} spans={}",
                r.resource_spans.len(),
                payload.item_count()
            )),
            Payload::Metrics(r) => self.line(format_args!(
                "Metrics resource_metrics={} metrics={} data_points={}",
                r.resource_metrics.len(),
                r.resource_metrics.iter().flat_map(|rm| &rm.scope_metrics).map(|sm| sm.metrics.len()).sum::<usize>(),
                payload.item_count()
            )),
            Payload::Logs(r) => self.line(format_args!(
                "Logs resource_logs={} log_records={}",
                r.resource_logs.len(),
                payload.item_count()
            )),
        }
        match self.config.verbosity {
            Verbosity::Basic => {}
            Verbosity::Normal => self.each(payload),
            Verbosity::Detailed => {
                let json = crate::pdata::json::to_json_line(payload);
                self.line(format_args!("{json}"));
            }
        }
        Ok(())
    }
}

impl DebugExporter {
    fn each(&self, payload: &Payload) {
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        match payload {
            Payload::Traces(r) => {
                for span in r.resource_spans.iter().flat_map(|rs| &rs.scope_spans).flat_map(|ss| &ss.spans) {
                    self.line(format_args!(
                        "{} trace_id={} span_id={}",
                        span.name,
                        hex(&span.trace_id),
                        hex(&span.span_id)
                    ));
                }
            }
            Payload::Metrics(r) => {
                for metric in r.resource_metrics.iter().flat_map(|rm| &rm.scope_metrics).flat_map(|sm| &sm.metrics) {
                    self.line(format_args!("{} unit={}", metric.name, metric.unit));
                }
            }
            Payload::Logs(r) => {
                for record in r.resource_logs.iter().flat_map(|rl| &rl.scope_logs).flat_map(|sl| &sl.log_records) {
                    let body = match record.body.as_ref().and_then(|b| b.value.as_ref()) {
                        Some(Value::StringValue(s)) => s.clone(),
                        Some(other) => format!("{other:?}"),
                        None => String::new(),
                    };
                    self.line(format_args!("{body} severity={}", record.severity_text));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exporter(yaml: &str) -> DebugExporter {
        let node = crate::config::node::parse("t.yaml", yaml).unwrap();
        let config: DebugConfig = crate::config::de::from_node(&node).unwrap();
        DebugExporter::new(&ComponentId::new("debug"), &config)
    }

    #[test]
    fn sampling_counts_lines_per_second_as_upstream() {
        // The first 3 lines of a second, then every 4th; a new second starts over.
        let e = exporter("sampling_initial: 3\nsampling_thereafter: 4\n");
        let pattern: Vec<bool> = (0..12).map(|_| e.keep(100)).collect();
        let which: Vec<usize> = pattern.iter().enumerate().filter(|(_, k)| **k).map(|(i, _)| i + 1).collect();
        assert_eq!(which, [1, 2, 3, 7, 11]);
        assert!(e.keep(101) && e.keep(101) && e.keep(101) && !e.keep(101));
        // Defaults write every line.
        let e = exporter("verbosity: basic\n");
        assert!((0..50).all(|_| e.keep(7)));
        let bad: Result<DebugConfig, _> =
            crate::component::parse_config(&crate::config::node::parse("t.yaml", "sampling_thereafter: 0").unwrap());
        assert!(bad.is_err());
    }
}
