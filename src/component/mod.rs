//! What every component shares: its kind, the registry entry that makes its config
//! from YAML, the validation hook, and the edge a source hands its data over
//! ([`consumer`]). The other runtime traits live with their kind
//! (`processors::Processor`, `exporters::helper::Export`).

pub mod consumer;

pub use consumer::{Consumer, Consumers, ConsumersBuilder, Door, Refused, Waits};

use std::fmt;

use serde::de::DeserializeOwned;

use crate::config::de::{DeError, from_node};
use crate::config::node::Node;
use crate::pdata::Signal;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Receiver,
    Processor,
    Exporter,
    Connector,
    Extension,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Receiver, Kind::Processor, Kind::Exporter, Kind::Connector, Kind::Extension];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Receiver => "receiver",
            Kind::Processor => "processor",
            Kind::Exporter => "exporter",
            Kind::Connector => "connector",
            Kind::Extension => "extension",
        }
    }

    /// The top-level config section holding this kind.
    pub fn section(self) -> &'static str {
        match self {
            Kind::Receiver => "receivers",
            Kind::Processor => "processors",
            Kind::Exporter => "exporters",
            Kind::Connector => "connectors",
            Kind::Extension => "extensions",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One registered component type: its name, the signals it handles, and how its
/// config is read. Each kind keeps one table of these (`receivers::FACTORIES` …).
pub struct Factory<C> {
    pub type_name: &'static str,
    /// Other names of the same type: upstream's 2025–2026 renames (`otlp_grpc` for the
    /// `otlp` exporter, `file_log`, `host_metrics` …). Both spellings work, in one file too.
    pub aliases: &'static [&'static str],
    pub signals: &'static [Signal],
    pub parse: fn(&Node) -> Result<C, DeError>,
}

/// A config's own checks beyond its types: pure, no I/O.
pub trait Validate {
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

impl<C> Factory<C> {
    /// Whether `name` names this type, by its name or an alias.
    pub fn is_named(&self, name: &str) -> bool {
        self.type_name == name || self.aliases.contains(&name)
    }
}

/// Reads and validates a component config; a validation error points at the component.
pub fn parse_config<T: DeserializeOwned + Validate>(node: &Node) -> Result<T, DeError> {
    let config: T = from_node(node)?;
    config.validate().map_err(|message| DeError { message, location: Some(node.location.clone()) })?;
    Ok(config)
}
