//! The `attributes` processor: upstream's attribute actions on the attributes of
//! spans, log records and metric data points, for the items its `include` and
//! `exclude` blocks select (include first, then exclude; without them, all).

use serde::Deserialize;

use super::Processor;
use super::actions::{Action, ActionConfig, compile};
use super::matching::{MatchConfig, Matcher, Subject};
use crate::component::Validate;
use crate::config::de::DeError;
use crate::config::node::Node;
use crate::ottl::record::{PointMut, point_count, point_mut};
use crate::pdata::{Batch, Metadata, Payload};
use crate::telemetry::ProcessorMetrics;

pub const TYPE: &str = "attributes";

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AttributesConfig {
    /// Applied in order.
    pub actions: Vec<ActionConfig>,
    /// Only items matching these properties are changed.
    #[serde(default)]
    pub include: Option<MatchConfig>,
    /// Items matching these are left alone.
    #[serde(default)]
    pub exclude: Option<MatchConfig>,
}

impl Validate for AttributesConfig {
    fn validate(&self) -> Result<(), String> {
        compile(&self.actions)?;
        for (name, block) in [("include", &self.include), ("exclude", &self.exclude)] {
            if let Some(block) = block {
                Matcher::new(block).map_err(|e| format!("{name}: {e}"))?;
            }
        }
        Ok(())
    }
}

pub fn parse(node: &Node) -> Result<AttributesConfig, DeError> {
    let config: AttributesConfig = crate::component::parse_config(node)?;
    Ok(config)
}

pub struct AttributesProcessor {
    actions: Vec<Action>,
    include: Option<Matcher>,
    exclude: Option<Matcher>,
    metrics: ProcessorMetrics,
}

impl AttributesProcessor {
    pub fn new(config: &AttributesConfig, metrics: ProcessorMetrics) -> AttributesProcessor {
        // Validated when the config was read.
        let actions = compile(&config.actions).unwrap_or_default();
        let include = config.include.as_ref().and_then(|c| Matcher::new(c).ok());
        let exclude = config.exclude.as_ref().and_then(|c| Matcher::new(c).ok());
        AttributesProcessor { actions, include, exclude, metrics }
    }

    fn selected(
        &self,
        resource: &opentelemetry_proto::tonic::resource::v1::Resource,
        scope: &opentelemetry_proto::tonic::common::v1::InstrumentationScope,
        subject: Subject<'_>,
    ) -> bool {
        self.include.as_ref().is_none_or(|m| m.matches(resource, scope, &subject))
            && !self.exclude.as_ref().is_some_and(|m| m.matches(resource, scope, &subject))
    }

    fn apply(&self, attributes: &mut Vec<opentelemetry_proto::tonic::common::v1::KeyValue>, metadata: &Metadata) {
        for action in &self.actions {
            action.apply(attributes, metadata);
        }
    }
}

impl Processor for AttributesProcessor {
    fn process(&mut self, mut batch: Batch, out: &mut Vec<Batch>) {
        let i = batch.signal().index();
        let items = batch.payload.item_count() as u64;
        self.metrics.incoming[i].inc_by(items);
        let no_resource = Default::default();
        let no_scope = Default::default();
        let metadata = batch.metadata.clone();
        let metadata = &metadata;
        match batch.payload_mut() {
            Payload::Traces(request) => {
                for rs in &mut request.resource_spans {
                    let resource = rs.resource.as_ref().unwrap_or(&no_resource);
                    for ss in &mut rs.scope_spans {
                        let scope = ss.scope.as_ref().unwrap_or(&no_scope);
                        for span in &mut ss.spans {
                            if self.selected(resource, scope, Subject::Span(span)) {
                                self.apply(&mut span.attributes, metadata);
                            }
                        }
                    }
                }
            }
            Payload::Logs(request) => {
                for rl in &mut request.resource_logs {
                    let resource = rl.resource.as_ref().unwrap_or(&no_resource);
                    for sl in &mut rl.scope_logs {
                        let scope = sl.scope.as_ref().unwrap_or(&no_scope);
                        for record in &mut sl.log_records {
                            if self.selected(resource, scope, Subject::Log(record)) {
                                self.apply(&mut record.attributes, metadata);
                            }
                        }
                    }
                }
            }
            Payload::Metrics(request) => {
                for rm in &mut request.resource_metrics {
                    let resource = rm.resource.as_ref().unwrap_or(&no_resource);
                    for sm in &mut rm.scope_metrics {
                        let scope = sm.scope.as_ref().unwrap_or(&no_scope);
                        for metric in &mut sm.metrics {
                            if !self.selected(resource, scope, Subject::Metric(metric)) {
                                continue;
                            }
                            for p in 0..point_count(metric) {
                                match point_mut(metric, p) {
                                    Some(PointMut::Number(p)) => self.apply(&mut p.attributes, metadata),
                                    Some(PointMut::Histogram(p)) => self.apply(&mut p.attributes, metadata),
                                    Some(PointMut::Exponential(p)) => self.apply(&mut p.attributes, metadata),
                                    Some(PointMut::Summary(p)) => self.apply(&mut p.attributes, metadata),
                                    None => {}
                                }
                            }
                        }
                    }
                }
            }
        }
        self.metrics.outgoing[i].inc_by(items);
        out.push(batch);
    }
}

#[cfg(test)]
#[path = "attributes_tests.rs"]
mod tests;
