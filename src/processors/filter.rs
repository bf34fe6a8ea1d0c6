//! The `filter` processor, for logs: drops every log record for which any OTTL
//! condition is true (`logs.log_record`, and `log_conditions` with the log context's
//! paths), as upstream. A resource or scope left empty goes too. A dropped record is a
//! plain drop for its acknowledgement: done.
//!
//! `error_mode` as upstream, default `ignore`: a condition that fails to evaluate is
//! false (the record stays), counted and logged once a minute; `silent` counts without
//! logging; `propagate` drops the whole batch, refused for good.
//!
//! Conditions are compiled when the config is read, so a bad one is an error at its
//! line and column. Span, span event, metric and data point conditions, and the
//! legacy `include`/`exclude` match blocks, are refused with a clear error until their
//! contexts exist.

use std::time::{Duration, Instant};

use serde::Deserialize;
use tracing::{error, warn};

use super::Processor;
use crate::component::Validate;
use crate::config::ComponentId;
use crate::config::de::DeError;
use crate::config::node::{Location, Node};
use crate::ottl::Condition;
use crate::ottl::log::{Log, LogContext};
use crate::pdata::{Batch, Payload};
use crate::telemetry::FilterMetrics;

pub const TYPE: &str = "filter";

/// Upstream's `error_mode`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ErrorMode {
    /// An evaluation error drops the whole batch.
    Propagate,
    /// An evaluation error is logged (once a minute) and counted; the record stays.
    #[default]
    Ignore,
    /// Like `ignore`, without the log line.
    Silent,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// What an evaluation error does. Default ignore.
    #[serde(default)]
    pub error_mode: ErrorMode,
    /// `log_record`: conditions in the log context.
    #[serde(default)]
    pub logs: Option<LogsFilter>,
    /// Conditions with the log context's paths (`log.`, `resource.`, `scope.` prefixes
    /// allowed), as upstream's v0.146+ form.
    #[serde(default)]
    pub log_conditions: Vec<String>,
    /// Refused with a clear error: the span context is not built yet.
    #[serde(default)]
    pub traces: Option<serde_json::Value>,
    #[serde(default)]
    pub trace_conditions: Option<serde_json::Value>,
    /// Refused with a clear error: the metric contexts are not built yet.
    #[serde(default)]
    pub metrics: Option<serde_json::Value>,
    #[serde(default)]
    pub metric_conditions: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogsFilter {
    /// A record matching any of these is dropped.
    #[serde(default)]
    pub log_record: Vec<String>,
    /// Refused: the legacy match blocks.
    #[serde(default)]
    pub include: Option<serde_json::Value>,
    #[serde(default)]
    pub exclude: Option<serde_json::Value>,
}

impl Validate for FilterConfig {
    fn validate(&self) -> Result<(), String> {
        if self.traces.is_some() || self.trace_conditions.is_some() {
            return Err("span and span event conditions (traces, trace_conditions) are not supported yet; ocelot's filter takes logs".into());
        }
        if self.metrics.is_some() || self.metric_conditions.is_some() {
            return Err("metric and data point conditions (metrics, metric_conditions) are not supported yet; ocelot's filter takes logs".into());
        }
        if self.logs.as_ref().is_some_and(|l| l.include.is_some() || l.exclude.is_some()) {
            return Err("the legacy logs.include/logs.exclude match blocks are not supported; write them as OTTL conditions under logs.log_record".into());
        }
        Ok(())
    }
}

impl FilterConfig {
    fn conditions(&self) -> impl Iterator<Item = &String> {
        self.logs.iter().flat_map(|l| &l.log_record).chain(&self.log_conditions)
    }
}

/// Reads the config and compiles every condition, so a bad one fails the load at its
/// place inside its string.
pub fn parse(node: &Node) -> Result<FilterConfig, DeError> {
    let config: FilterConfig = crate::component::parse_config(node)?;
    let strings = [node.get("logs").and_then(|l| l.get("log_record")), node.get("log_conditions")];
    let located: Vec<&Node> = strings.into_iter().flatten().filter_map(Node::as_seq).flatten().collect();
    for text in config.conditions() {
        if let Err(e) = Condition::<Log>::parse(text) {
            let location = located.iter().find(|n| n.as_str() == Some(text)).map(|n| inside(n, text, &e));
            return Err(DeError { message: format!("invalid OTTL condition `{text}`: {}", e.message), location });
        }
    }
    Ok(config)
}

/// Where an error at `e.span` of `text` is in the YAML file: on the string's line for
/// a one-line string (past its opening quote), or the line within a multi-line one.
pub fn inside(node: &Node, text: &str, e: &crate::ottl::OttlError) -> Location {
    let (line, column) = e.line_column(text);
    let mut location = node.location.clone();
    if line == 1 {
        let quoted = matches!(&node.kind, crate::config::node::NodeKind::Scalar { quoted: true, .. });
        location.column += column - 1 + usize::from(quoted);
    } else {
        location.line += line - 1;
        location.column = column;
    }
    location
}

pub struct FilterProcessor {
    id: ComponentId,
    conditions: Vec<Condition<Log>>,
    error_mode: ErrorMode,
    metrics: FilterMetrics,
    last_logged: Option<Instant>,
}

/// An evaluation error is logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

impl FilterProcessor {
    pub fn new(id: &ComponentId, config: &FilterConfig, metrics: FilterMetrics) -> FilterProcessor {
        // Every condition compiled when the config was read; one that fails now cannot.
        let conditions = config.conditions().filter_map(|text| Condition::<Log>::parse(text).ok()).collect();
        FilterProcessor { id: id.clone(), conditions, error_mode: config.error_mode, metrics, last_logged: None }
    }

    /// Whether `ctx` matches any condition; `Err` with the first error under `propagate`.
    fn matches(&mut self, ctx: &LogContext<'_>) -> Result<bool, String> {
        for condition in &self.conditions {
            match condition.eval(ctx) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(e) => {
                    self.metrics.ottl_errors.inc();
                    match self.error_mode {
                        ErrorMode::Propagate => return Err(e),
                        ErrorMode::Silent => {}
                        ErrorMode::Ignore => {
                            if self.last_logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
                                self.last_logged = Some(Instant::now());
                                warn!(processor = %self.id, error = %e,
                                    "A filter condition failed on a record; it is kept (error_mode: ignore; logged once a minute).");
                            }
                        }
                    }
                }
            }
        }
        Ok(false)
    }
}

impl Processor for FilterProcessor {
    fn process(&mut self, mut batch: Batch, out: &mut Vec<Batch>) {
        let Payload::Logs(request) = batch.payload.as_ref() else {
            out.push(batch);
            return;
        };
        let items = batch.payload.item_count() as u64;
        self.metrics.incoming_logs.inc_by(items);
        // First which records go, on the shared payload: a batch nothing is dropped
        // from is passed on without a copy.
        let mut drop = Vec::new();
        let default_resource = Default::default();
        let default_scope = Default::default();
        for rl in &request.resource_logs {
            let resource = rl.resource.as_ref().unwrap_or(&default_resource);
            for sl in &rl.scope_logs {
                let scope = sl.scope.as_ref().unwrap_or(&default_scope);
                for record in &sl.log_records {
                    let ctx = LogContext { resource, scope, record, cache: &[] };
                    match self.matches(&ctx) {
                        Ok(matched) => drop.push(matched),
                        Err(e) => {
                            error!(processor = %self.id, error = %e, items,
                                "A filter condition failed (error_mode: propagate); the batch is dropped.");
                            batch.reject(None, &format!("filter processor `{}`: {e}", self.id));
                            return;
                        }
                    }
                }
            }
        }
        let dropped = drop.iter().filter(|d| **d).count() as u64;
        if dropped > 0 {
            let Payload::Logs(request) = batch.payload_mut() else { return };
            let mut flags = drop.into_iter();
            for rl in &mut request.resource_logs {
                for sl in &mut rl.scope_logs {
                    sl.log_records.retain(|_| !flags.next().unwrap_or(false));
                }
                rl.scope_logs.retain(|sl| !sl.log_records.is_empty());
            }
            request.resource_logs.retain(|rl| !rl.scope_logs.is_empty());
            self.metrics.filtered_logs.inc_by(dropped);
        }
        self.metrics.outgoing_logs.inc_by(items - dropped);
        if batch.payload.item_count() > 0 {
            out.push(batch);
        }
    }
}
