//! The `resource` processor: upstream's attribute actions on every resource's
//! attributes (its `attributes:` list; `insert`, `update`, `upsert`, `delete`,
//! `hash`, `extract`, `convert`).

use serde::Deserialize;

use super::Processor;
use super::actions::{Action, ActionConfig, compile};
use crate::component::Validate;
use crate::config::de::DeError;
use crate::config::node::Node;
use crate::pdata::Batch;
use crate::telemetry::ProcessorMetrics;

pub const TYPE: &str = "resource";

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResourceConfig {
    /// The actions, applied in order to each resource's attributes.
    pub attributes: Vec<ActionConfig>,
}

impl Validate for ResourceConfig {
    fn validate(&self) -> Result<(), String> {
        compile(&self.attributes).map(|_| ())
    }
}

pub fn parse(node: &Node) -> Result<ResourceConfig, DeError> {
    let config: ResourceConfig = crate::component::parse_config(node)?;
    Ok(config)
}

pub struct ResourceProcessor {
    actions: Vec<Action>,
    metrics: ProcessorMetrics,
}

impl ResourceProcessor {
    pub fn new(config: &ResourceConfig, metrics: ProcessorMetrics) -> ResourceProcessor {
        // Validated when the config was read.
        ResourceProcessor { actions: compile(&config.attributes).unwrap_or_default(), metrics }
    }
}

impl Processor for ResourceProcessor {
    fn process(&mut self, mut batch: Batch, out: &mut Vec<Batch>) {
        let i = batch.signal().index();
        let items = batch.payload.item_count() as u64;
        self.metrics.incoming[i].inc_by(items);
        let metadata = batch.metadata.clone();
        let resources: Vec<&mut Vec<_>> = super::resource_attributes(batch.payload_mut());
        for attributes in resources {
            for action in &self.actions {
                action.apply(attributes, &metadata);
            }
        }
        self.metrics.outgoing[i].inc_by(items);
        out.push(batch);
    }
}
