//! Connectors: an exporter at the end of one pipeline and a receiver at the start of
//! another.

pub mod forward;
pub mod routing;

use crate::component::{Factory, parse_config};
use crate::pdata::Signal;

#[derive(Clone, Debug, PartialEq)]
pub enum ConnectorConfig {
    Forward(forward::ForwardConfig),
    Routing(Box<routing::RoutingConfig>),
}

impl crate::config::RoutesTo for ConnectorConfig {
    fn routed_pipelines(&self) -> Vec<&str> {
        match self {
            ConnectorConfig::Forward(_) => Vec::new(),
            ConnectorConfig::Routing(c) => c.pipelines().collect(),
        }
    }
}

pub static FACTORIES: &[Factory<ConnectorConfig>] = &[
    Factory {
        type_name: forward::TYPE,
        aliases: &[],
        signals: &Signal::ALL,
        parse: |node| parse_config(node).map(ConnectorConfig::Forward),
    },
    Factory {
        type_name: routing::TYPE,
        aliases: &[],
        signals: &Signal::ALL,
        parse: |node| routing::parse(node).map(|c| ConnectorConfig::Routing(Box::new(c))),
    },
];
