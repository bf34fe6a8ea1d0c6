//! Extensions: parts of the agent that are not in a pipeline.

pub mod health_check;

use crate::component::{Factory, parse_config};

#[derive(Clone, Debug, PartialEq)]
pub enum ExtensionConfig {
    HealthCheck(health_check::HealthCheckConfig),
}

pub static FACTORIES: &[Factory<ExtensionConfig>] = &[Factory {
    type_name: health_check::TYPE,
    signals: &[],
    parse: |node| parse_config(node).map(ExtensionConfig::HealthCheck),
}];
