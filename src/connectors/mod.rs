//! Connectors: an exporter at the end of one pipeline and a receiver at the start of
//! another.

pub mod forward;

use crate::component::{Factory, parse_config};
use crate::pdata::Signal;

#[derive(Clone, Debug, PartialEq)]
pub enum ConnectorConfig {
    Forward(forward::ForwardConfig),
}

pub static FACTORIES: &[Factory<ConnectorConfig>] = &[Factory {
    type_name: forward::TYPE,
    aliases: &[],
    signals: &Signal::ALL,
    parse: |node| parse_config(node).map(ConnectorConfig::Forward),
}];
