//! The `filter` processor: drops every item for which any OTTL condition is true, as
//! upstream. Conditions come in the per-signal blocks (`traces.span`,
//! `traces.spanevent`, `metrics.metric`, `metrics.datapoint`, `logs.log_record` and
//! each signal's `resource` list, paths in that fixed context) and in the top-level
//! `trace_conditions`, `metric_conditions` and `log_conditions` (strings whose context
//! is inferred from their paths, or groups with `context`, `conditions` and
//! `error_mode`). They run from the top down: resources, scopes, then items, then
//! span events and data points, so what a higher level dropped is not looked at
//! again. A scope or resource left empty goes too, and a metric left without data
//! points. A dropped item is a plain drop for its acknowledgement: done.
//!
//! `error_mode` as upstream, default `ignore`: a condition that fails to evaluate is
//! false (the item stays), counted and logged once a minute; `silent` counts without
//! logging; `propagate` drops the whole batch, refused for good.
//!
//! Conditions are compiled when the config is read, so a bad one is an error at its
//! line and column. The legacy `include`/`exclude` match blocks are refused with a
//! clear error.

use serde::Deserialize;
use tracing::error;

use super::Processor;
use super::ottl::{Entry, ErrorMode, Errors, located, one_style};
use crate::component::Validate;
use crate::config::ComponentId;
use crate::config::de::DeError;
use crate::config::node::Node;
use crate::ottl::{Condition, Kind, OttlError, walk};
use crate::pdata::{Batch, Signal};
use crate::telemetry::FilterMetrics;

pub const TYPE: &str = "filter";

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// What an evaluation error does. Default ignore.
    #[serde(default)]
    pub error_mode: ErrorMode,
    /// `resource`, `span` and `spanevent` conditions.
    #[serde(default)]
    pub traces: Option<TracesFilter>,
    /// `resource`, `metric` and `datapoint` conditions.
    #[serde(default)]
    pub metrics: Option<MetricsFilter>,
    /// `resource` and `log_record` conditions.
    #[serde(default)]
    pub logs: Option<LogsFilter>,
    /// The legacy span match block: refused.
    #[serde(default)]
    pub spans: Option<serde_json::Value>,
    /// Conditions with prefixed paths (`span.name`, `resource.attributes[...]`), their
    /// context inferred; or groups of `context`, `conditions`, `error_mode`.
    #[serde(default)]
    pub trace_conditions: Vec<Entry<ConditionGroup>>,
    #[serde(default)]
    pub metric_conditions: Vec<Entry<ConditionGroup>>,
    #[serde(default)]
    pub log_conditions: Vec<Entry<ConditionGroup>>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TracesFilter {
    /// A resource matching any of these is dropped with all its spans.
    #[serde(default)]
    pub resource: Vec<String>,
    #[serde(default)]
    pub span: Vec<String>,
    #[serde(default)]
    pub spanevent: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsFilter {
    #[serde(default)]
    pub resource: Vec<String>,
    #[serde(default)]
    pub metric: Vec<String>,
    #[serde(default)]
    pub datapoint: Vec<String>,
    /// Refused: the legacy match blocks.
    #[serde(default)]
    pub include: Option<serde_json::Value>,
    #[serde(default)]
    pub exclude: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogsFilter {
    #[serde(default)]
    pub resource: Vec<String>,
    /// A record matching any of these is dropped.
    #[serde(default)]
    pub log_record: Vec<String>,
    /// Refused: the legacy match blocks.
    #[serde(default)]
    pub include: Option<serde_json::Value>,
    #[serde(default)]
    pub exclude: Option<serde_json::Value>,
}

/// The advanced style of `*_conditions`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConditionGroup {
    /// The context the conditions run in; inferred from their paths if absent.
    #[serde(default)]
    pub context: Option<String>,
    pub conditions: Vec<String>,
    /// Overrides the processor's `error_mode` for this group.
    #[serde(default)]
    pub error_mode: Option<ErrorMode>,
}

impl Validate for FilterConfig {
    fn validate(&self) -> Result<(), String> {
        let legacy = self.spans.is_some()
            || self.logs.as_ref().is_some_and(|l| l.include.is_some() || l.exclude.is_some())
            || self.metrics.as_ref().is_some_and(|m| m.include.is_some() || m.exclude.is_some());
        if legacy {
            return Err("the legacy include/exclude match blocks (spans, logs.include, metrics.exclude …) are not supported; write them as OTTL conditions (traces.span, logs.log_record, metrics.metric)".into());
        }
        one_style(&self.trace_conditions, "trace_conditions")?;
        one_style(&self.metric_conditions, "metric_conditions")?;
        one_style(&self.log_conditions, "log_conditions")?;
        Ok(())
    }
}

/// One compiled condition with its context and error mode.
struct Compiled {
    kind: Kind,
    condition: Condition,
    mode: ErrorMode,
}

/// Where a level runs, from the top: resources, scopes, items, then span events and
/// data points.
fn level(kind: Kind) -> u8 {
    match kind {
        Kind::Resource => 0,
        Kind::Scope => 1,
        Kind::Span | Kind::Metric | Kind::Log => 2,
        Kind::SpanEvent | Kind::DataPoint => 3,
    }
}

impl FilterConfig {
    /// Every condition compiled, by signal, in the order they run; or the text that
    /// failed and why.
    fn compile(&self) -> Result<[Vec<Compiled>; 3], (String, OttlError)> {
        let mode = self.error_mode;
        let mut out: [Vec<Compiled>; 3] = Default::default();
        let fixed = |signal: Signal, kind: Kind, texts: &[String], out: &mut [Vec<Compiled>; 3]| {
            for text in texts {
                let condition = Condition::parse(kind, text).map_err(|e| (text.clone(), e))?;
                out[signal.index()].push(Compiled { kind, condition, mode });
            }
            Ok::<(), (String, OttlError)>(())
        };
        if let Some(t) = &self.traces {
            fixed(Signal::Traces, Kind::Resource, &t.resource, &mut out)?;
            fixed(Signal::Traces, Kind::Span, &t.span, &mut out)?;
            fixed(Signal::Traces, Kind::SpanEvent, &t.spanevent, &mut out)?;
        }
        if let Some(m) = &self.metrics {
            fixed(Signal::Metrics, Kind::Resource, &m.resource, &mut out)?;
            fixed(Signal::Metrics, Kind::Metric, &m.metric, &mut out)?;
            fixed(Signal::Metrics, Kind::DataPoint, &m.datapoint, &mut out)?;
        }
        if let Some(l) = &self.logs {
            fixed(Signal::Logs, Kind::Resource, &l.resource, &mut out)?;
            fixed(Signal::Logs, Kind::Log, &l.log_record, &mut out)?;
        }
        for (signal, entries) in [
            (Signal::Traces, &self.trace_conditions),
            (Signal::Metrics, &self.metric_conditions),
            (Signal::Logs, &self.log_conditions),
        ] {
            for entry in entries {
                let (context, texts, group_mode) = match entry {
                    Entry::Text(text) => (None, std::slice::from_ref(text), None),
                    Entry::Group(g) => (g.context.as_deref(), &g.conditions[..], g.error_mode),
                };
                let mode = group_mode.unwrap_or(mode);
                for text in texts {
                    let fail = |e: OttlError| (text.clone(), e);
                    let parsed = crate::ottl::parse_condition(text).map_err(fail)?;
                    let (kind, condition) = match context {
                        Some(name) => {
                            let kind = context_of(signal, name)
                                .map_err(|m| (text.clone(), OttlError::new(m, Default::default())))?;
                            (kind, Condition::compile(kind, &parsed).map_err(fail)?)
                        }
                        None => crate::ottl::statement::infer(signal, &[], &[&parsed], |kind| {
                            Condition::compile(kind, &parsed)
                        })
                        .map_err(fail)?,
                    };
                    out[signal.index()].push(Compiled { kind, condition, mode });
                }
            }
        }
        for list in &mut out {
            list.sort_by_key(|c| level(c.kind));
        }
        Ok(out)
    }
}

/// A `context:` name, checked against the signal.
pub fn context_of(signal: Signal, name: &str) -> Result<Kind, String> {
    let allowed = Kind::of_signal(signal);
    Kind::parse(name).filter(|k| allowed.contains(k)).ok_or_else(|| {
        format!(
            "`{name}` is not a context of {}; contexts: {}",
            signal.as_str(),
            allowed.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
        )
    })
}

/// Reads the config and compiles every condition, so a bad one fails the load at its
/// place inside its string.
pub fn parse(node: &Node) -> Result<FilterConfig, DeError> {
    let config: FilterConfig = crate::component::parse_config(node)?;
    config.validate().map_err(|message| DeError { message, location: Some(node.location.clone()) })?;
    config.compile().map_err(|(text, e)| located(node, &text, &e, "condition"))?;
    Ok(config)
}

pub struct FilterProcessor {
    id: ComponentId,
    by_signal: [Vec<Compiled>; 3],
    metrics: FilterMetrics,
    errors: Errors,
}

impl FilterProcessor {
    pub fn new(id: &ComponentId, config: &FilterConfig, metrics: FilterMetrics) -> FilterProcessor {
        // Every condition compiled when the config was read; one that fails now cannot.
        let by_signal = config.compile().unwrap_or_default();
        let errors = Errors::new(id, &metrics.processor);
        FilterProcessor { id: id.clone(), by_signal, metrics, errors }
    }
}

impl Processor for FilterProcessor {
    fn process(&mut self, mut batch: Batch, out: &mut Vec<Batch>) {
        let signal = batch.signal();
        let i = signal.index();
        let items = batch.payload.item_count() as u64;
        self.metrics.processor.incoming[i].inc_by(items);
        let conditions = &self.by_signal[i];
        let mut dropped = 0;
        let mut start = 0;
        while start < conditions.len() {
            let kind = conditions[start].kind;
            let end = start + conditions[start..].iter().take_while(|c| c.kind == kind).count();
            let level = &conditions[start..end];
            start = end;
            // A read first, on the shared batch: most batches lose nothing, and those
            // pass on without a copy. An error goes to the counting pass below.
            let hit = walk::any(&batch.payload, kind, &mut |record| {
                level.iter().any(|c| c.condition.eval(record).unwrap_or(true))
            });
            if !hit {
                continue;
            }
            let errors = &mut self.errors;
            let result = walk::retain(batch.payload_mut(), kind, &mut |record| {
                for c in level {
                    match c.condition.eval(record) {
                        Ok(true) => return Ok(true),
                        Ok(false) => {}
                        Err(e) => errors.handle(c.mode, e, "A filter condition")?,
                    }
                }
                Ok(false)
            });
            match result {
                Ok(n) => dropped += n,
                Err(e) => {
                    error!(processor = %self.id, error = %e, items,
                        "A filter condition failed (error_mode: propagate); the batch is dropped.");
                    batch.reject(None, &format!("filter processor `{}`: {e}", self.id));
                    return;
                }
            }
        }
        self.metrics.filtered[i].inc_by(dropped);
        self.metrics.processor.outgoing[i].inc_by(items - dropped);
        if batch.payload.item_count() > 0 {
            out.push(batch);
        }
    }
}
