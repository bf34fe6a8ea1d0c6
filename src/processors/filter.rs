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
//! line and column. The legacy match blocks (`spans`, `logs` and `metrics` with
//! `include`/`exclude`, `match_type` strict or regexp) keep an item if it matches
//! `include` (when given) and not `exclude` (when given); a signal takes either
//! those or OTTL conditions, not both.

use serde::Deserialize;
use tracing::error;

use super::Processor;
use super::matching::{MatchConfig, Matcher, Subject};
use super::ottl::{Entry, ErrorMode, Errors, located, one_style};
use crate::component::Validate;
use crate::config::ComponentId;
use crate::config::de::DeError;
use crate::config::node::Node;
use crate::ottl::record::Item;
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
    /// The legacy span match block.
    #[serde(default)]
    pub spans: Option<LegacyBlock>,
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
    /// The legacy match blocks: keep only what matches `include`.
    #[serde(default)]
    pub include: Option<MatchConfig>,
    /// Drop what matches `exclude`.
    #[serde(default)]
    pub exclude: Option<MatchConfig>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogsFilter {
    #[serde(default)]
    pub resource: Vec<String>,
    /// A record matching any of these is dropped.
    #[serde(default)]
    pub log_record: Vec<String>,
    /// The legacy match blocks: keep only what matches `include`.
    #[serde(default)]
    pub include: Option<MatchConfig>,
    /// Drop what matches `exclude`.
    #[serde(default)]
    pub exclude: Option<MatchConfig>,
}

/// A legacy match block: keep what matches `include`, drop what matches `exclude`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LegacyBlock {
    #[serde(default)]
    pub include: Option<MatchConfig>,
    #[serde(default)]
    pub exclude: Option<MatchConfig>,
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
        for (signal, block) in self.legacy_blocks() {
            let (include, exclude) = block;
            for (name, m) in [("include", include), ("exclude", exclude)] {
                if let Some(m) = m {
                    Matcher::new(m).map_err(|e| format!("{} {name}: {e}", signal.as_str()))?;
                }
            }
            if (include.is_some() || exclude.is_some()) && self.has_conditions(signal) {
                return Err(format!(
                    "cannot use OTTL conditions and include/exclude for {} at the same time",
                    signal.as_str()
                ));
            }
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

type Blocks<'a> = (Option<&'a MatchConfig>, Option<&'a MatchConfig>);

impl FilterConfig {
    /// The legacy include/exclude blocks, by signal.
    fn legacy_blocks(&self) -> [(Signal, Blocks<'_>); 3] {
        [
            (Signal::Traces, self.spans.as_ref().map_or((None, None), |b| (b.include.as_ref(), b.exclude.as_ref()))),
            (Signal::Metrics, self.metrics.as_ref().map_or((None, None), |b| (b.include.as_ref(), b.exclude.as_ref()))),
            (Signal::Logs, self.logs.as_ref().map_or((None, None), |b| (b.include.as_ref(), b.exclude.as_ref()))),
        ]
    }

    /// Whether the signal has OTTL conditions.
    fn has_conditions(&self, signal: Signal) -> bool {
        match signal {
            Signal::Traces => {
                self.traces
                    .as_ref()
                    .is_some_and(|t| !(t.resource.is_empty() && t.span.is_empty() && t.spanevent.is_empty()))
                    || !self.trace_conditions.is_empty()
            }
            Signal::Metrics => {
                self.metrics
                    .as_ref()
                    .is_some_and(|m| !(m.resource.is_empty() && m.metric.is_empty() && m.datapoint.is_empty()))
                    || !self.metric_conditions.is_empty()
            }
            Signal::Logs => {
                self.logs.as_ref().is_some_and(|l| !(l.resource.is_empty() && l.log_record.is_empty()))
                    || !self.log_conditions.is_empty()
            }
        }
    }

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
    config.compile().map_err(|(text, e)| located(node, &text, &e, "condition"))?;
    Ok(config)
}

/// A signal's legacy blocks, compiled.
#[derive(Default)]
struct Legacy {
    include: Option<Matcher>,
    exclude: Option<Matcher>,
}

impl Legacy {
    fn is_empty(&self) -> bool {
        self.include.is_none() && self.exclude.is_none()
    }

    /// Whether the legacy blocks drop this item.
    fn drops(&self, record: &crate::ottl::Record<'_>) -> bool {
        let subject = match record.item {
            Item::Span(s) => Subject::Span(s),
            Item::Log(l) => Subject::Log(l),
            Item::Metric(m) => Subject::Metric(m),
            _ => return false,
        };
        let included = self.include.as_ref().is_none_or(|m| m.matches(record.resource, record.scope, &subject));
        !included || self.exclude.as_ref().is_some_and(|m| m.matches(record.resource, record.scope, &subject))
    }
}

pub struct FilterProcessor {
    id: ComponentId,
    by_signal: [Vec<Compiled>; 3],
    legacy: [Legacy; 3],
    metrics: FilterMetrics,
    errors: Errors,
}

impl FilterProcessor {
    pub fn new(id: &ComponentId, config: &FilterConfig, metrics: FilterMetrics) -> FilterProcessor {
        // Every condition compiled when the config was read; one that fails now cannot.
        let by_signal = config.compile().unwrap_or_default();
        let errors = Errors::new(id, &metrics.processor);
        let mut legacy: [Legacy; 3] = Default::default();
        for (signal, (include, exclude)) in config.legacy_blocks() {
            legacy[signal.index()] = Legacy {
                include: include.and_then(|m| Matcher::new(m).ok()),
                exclude: exclude.and_then(|m| Matcher::new(m).ok()),
            };
        }
        FilterProcessor { id: id.clone(), by_signal, legacy, metrics, errors }
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
        let legacy = &self.legacy[i];
        let item = match signal {
            Signal::Traces => Kind::Span,
            Signal::Metrics => Kind::Metric,
            Signal::Logs => Kind::Log,
        };
        if !legacy.is_empty() && walk::any(&batch.payload, item, &mut |record| legacy.drops(record)) {
            dropped += walk::retain(batch.payload_mut(), item, &mut |record| Ok(legacy.drops(record))).unwrap_or(0);
        }
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
