//! The `transform` processor: OTTL statements that change traces, metrics and logs,
//! as upstream. `trace_statements`, `metric_statements` and `log_statements` are each
//! a list of strings (the basic style: every statement's context is inferred from its
//! paths, and it runs on its own) or a list of groups (`context`, `statements`,
//! `conditions`, `error_mode`; without `context` the group's context is inferred).
//! Groups run in order, each over the whole batch at its context's level, so a
//! resource statement runs once per resource, not once per record. Within a group an
//! item's statements run in order, each checking its own `where`, and only if one of
//! the group's `conditions` holds (when it has any).
//!
//! `error_mode` as upstream, default `ignore`: a statement that fails is skipped for
//! that item, counted and logged once a minute; `silent` counts without logging;
//! `propagate` drops the whole batch, refused for good. Statements are compiled when
//! the config is read, so a bad one is an error at its line and column.

use serde::Deserialize;
use tracing::error;

use super::Processor;
use super::filter::context_of;
use super::ottl::{Entry, ErrorMode, Errors, located, one_style};
use crate::component::Validate;
use crate::config::ComponentId;
use crate::config::de::DeError;
use crate::config::node::Node;
use crate::ottl::statement::infer;
use crate::ottl::{Condition, Kind, OttlError, Statement, walk};
use crate::pdata::{Batch, Signal};
use crate::telemetry::ProcessorMetrics;

pub const TYPE: &str = "transform";

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TransformConfig {
    /// What an evaluation error does. Default ignore.
    #[serde(default)]
    pub error_mode: ErrorMode,
    /// Statements on spans and span events (and their resources and scopes).
    #[serde(default)]
    pub trace_statements: Vec<Entry<StatementGroup>>,
    /// Statements on metrics and data points.
    #[serde(default)]
    pub metric_statements: Vec<Entry<StatementGroup>>,
    /// Statements on log records.
    #[serde(default)]
    pub log_statements: Vec<Entry<StatementGroup>>,
    /// Upstream's alpha option (behind a feature gate there): refused.
    #[serde(default)]
    pub flatten_data: bool,
}

/// The advanced style: statements that run together in one context.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StatementGroup {
    /// `resource`, `scope`, `span`, `spanevent`, `metric`, `datapoint` or `log`;
    /// inferred from the statements' paths if absent.
    #[serde(default)]
    pub context: Option<String>,
    pub statements: Vec<String>,
    /// The statements run for an item only if one of these holds.
    #[serde(default)]
    pub conditions: Vec<String>,
    /// Overrides the processor's `error_mode` for this group.
    #[serde(default)]
    pub error_mode: Option<ErrorMode>,
}

impl Validate for TransformConfig {
    fn validate(&self) -> Result<(), String> {
        if self.flatten_data {
            return Err("flatten_data is not supported (upstream keeps it behind an alpha feature gate); move record data into resource attributes with a resource-context statement instead".into());
        }
        one_style(&self.trace_statements, "trace_statements")?;
        one_style(&self.metric_statements, "metric_statements")?;
        one_style(&self.log_statements, "log_statements")?;
        Ok(())
    }
}

/// A compiled group.
struct Group {
    kind: Kind,
    conditions: Vec<Condition>,
    statements: Vec<Statement>,
    mode: ErrorMode,
    /// A basic-style statement that writes only its own item and uses no cache: it
    /// may share a pass with its neighbours of the same context (see [`merge`]).
    local: bool,
}

/// Joins runs of basic-style statements of one context that only write their own
/// item into one pass over the batch: each item still sees the statements in order,
/// and as no statement writes what another item reads, the result is the same as one
/// pass per statement, for a fifth of the walking.
fn merge(groups: Vec<Group>) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::with_capacity(groups.len());
    for group in groups {
        match out.last_mut() {
            Some(last) if last.local && group.local && last.kind == group.kind && last.mode == group.mode => {
                last.statements.extend(group.statements);
            }
            _ => out.push(group),
        }
    }
    out
}

impl TransformConfig {
    /// Every group compiled, by signal; or the text that failed and why.
    fn compile(&self) -> Result<[Vec<Group>; 3], (String, OttlError)> {
        let mut out: [Vec<Group>; 3] = Default::default();
        for (signal, entries) in [
            (Signal::Traces, &self.trace_statements),
            (Signal::Metrics, &self.metric_statements),
            (Signal::Logs, &self.log_statements),
        ] {
            for entry in entries {
                let group = match entry {
                    Entry::Text(text) => compile_group(signal, None, std::slice::from_ref(text), &[], self.error_mode)?,
                    Entry::Group(g) => compile_group(
                        signal,
                        g.context.as_deref(),
                        &g.statements,
                        &g.conditions,
                        g.error_mode.unwrap_or(self.error_mode),
                    )?,
                };
                out[signal.index()].push(group);
            }
        }
        Ok(out.map(merge))
    }
}

fn compile_group(
    signal: Signal,
    context: Option<&str>,
    statements: &[String],
    conditions: &[String],
    mode: ErrorMode,
) -> Result<Group, (String, OttlError)> {
    let parsed_statements = statements
        .iter()
        .map(|t| crate::ottl::parse_statement(t).map_err(|e| (t.clone(), e)))
        .collect::<Result<Vec<_>, _>>()?;
    let parsed_conditions = conditions
        .iter()
        .map(|t| crate::ottl::parse_condition(t).map_err(|e| (t.clone(), e)))
        .collect::<Result<Vec<_>, _>>()?;
    // The text of the first part that fails, for the error's place.
    let texts: Vec<&String> = statements.iter().chain(conditions).collect();
    let build = |kind: Kind| -> Result<(Vec<Statement>, Vec<Condition>), (usize, OttlError)> {
        let statements = parsed_statements
            .iter()
            .enumerate()
            .map(|(i, s)| Statement::compile(kind, s).map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()?;
        let conditions = parsed_conditions
            .iter()
            .enumerate()
            .map(|(i, c)| Condition::compile(kind, c).map_err(|e| (parsed_statements.len() + i, e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((statements, conditions))
    };
    let (kind, (statements, conditions)) = match context {
        Some(name) => {
            let kind = context_of(signal, name).map_err(|m| {
                (texts.first().map(|t| t.to_string()).unwrap_or_default(), OttlError::new(m, Default::default()))
            })?;
            (kind, build(kind).map_err(|(i, e)| (texts[i].clone(), e))?)
        }
        None => {
            let mut failed_at = 0;
            let statements: Vec<&crate::ottl::ast::Statement> = parsed_statements.iter().collect();
            let conditions: Vec<&crate::ottl::ast::BoolExpr> = parsed_conditions.iter().collect();
            infer(signal, &statements, &conditions, |kind| {
                build(kind).map_err(|(i, e)| {
                    failed_at = i;
                    e
                })
            })
            .map_err(|e| (texts.get(failed_at).map(|t| t.to_string()).unwrap_or_default(), e))?
        }
    };
    // A basic-style statement (one, no context, no conditions) may share a pass.
    let local = context.is_none()
        && conditions.is_empty()
        && matches!(&parsed_statements[..], [s] if crate::ottl::statement::is_local(kind, s));
    Ok(Group { kind, conditions, statements, mode, local })
}

/// Reads the config and compiles every statement, so a bad one fails the load at
/// its place inside its string.
pub fn parse(node: &Node) -> Result<TransformConfig, DeError> {
    let config: TransformConfig = crate::component::parse_config(node)?;
    config.compile().map_err(|(text, e)| located(node, &text, &e, "statement"))?;
    Ok(config)
}

pub struct TransformProcessor {
    id: ComponentId,
    by_signal: [Vec<Group>; 3],
    metrics: ProcessorMetrics,
    errors: Errors,
}

impl TransformProcessor {
    pub fn new(id: &ComponentId, config: &TransformConfig, metrics: ProcessorMetrics) -> TransformProcessor {
        // Every statement compiled when the config was read; one that fails now cannot.
        let by_signal = config.compile().unwrap_or_default();
        let errors = Errors::new(id, &metrics);
        TransformProcessor { id: id.clone(), by_signal, metrics, errors }
    }
}

impl Processor for TransformProcessor {
    fn process(&mut self, mut batch: Batch, out: &mut Vec<Batch>) {
        let i = batch.signal().index();
        let items = batch.payload.item_count() as u64;
        self.metrics.incoming[i].inc_by(items);
        for group in &self.by_signal[i] {
            let errors = &mut self.errors;
            let result = walk::for_each_mut(batch.payload_mut(), group.kind, &mut |record| {
                if !group.conditions.is_empty() {
                    let mut any = false;
                    for condition in &group.conditions {
                        match condition.eval(&record.view()) {
                            Ok(true) => {
                                any = true;
                                break;
                            }
                            Ok(false) => {}
                            Err(e) => errors.handle(group.mode, e, "A transform condition")?,
                        }
                    }
                    if !any {
                        return Ok(());
                    }
                }
                for statement in &group.statements {
                    if let Err(e) = statement.exec(record) {
                        errors.handle(group.mode, e, "A transform statement")?;
                    }
                }
                Ok(())
            });
            if let Err(e) = result {
                error!(processor = %self.id, error = %e, items,
                    "A transform statement failed (error_mode: propagate); the batch is dropped.");
                batch.reject(None, &format!("transform processor `{}`: {e}", self.id));
                return;
            }
        }
        self.metrics.outgoing[i].inc_by(batch.payload.item_count() as u64);
        out.push(batch);
    }
}

#[cfg(test)]
#[path = "transform_tests.rs"]
mod tests;
