//! The component table: every receiver, processor, exporter, connector and extension
//! type ocelot has, by kind, as the config module reads them and the graph builds
//! them. A component type is added here once (its factory in its kind's table); the
//! config module itself knows no component.

use crate::config::{self, Source};

/// ocelot's component types.
#[derive(Clone, Copy, Debug)]
pub struct Components;

impl config::Registry for Components {
    type Receiver = crate::receivers::ReceiverConfig;
    type Processor = crate::processors::ProcessorConfig;
    type Exporter = crate::exporters::ExporterConfig;
    type Connector = crate::connectors::ConnectorConfig;
    type Extension = crate::extensions::ExtensionConfig;

    fn receivers() -> &'static [crate::component::Factory<Self::Receiver>] {
        crate::receivers::FACTORIES
    }
    fn processors() -> &'static [crate::component::Factory<Self::Processor>] {
        crate::processors::FACTORIES
    }
    fn exporters() -> &'static [crate::component::Factory<Self::Exporter>] {
        crate::exporters::FACTORIES
    }
    fn connectors() -> &'static [crate::component::Factory<Self::Connector>] {
        crate::connectors::FACTORIES
    }
    fn extensions() -> &'static [crate::component::Factory<Self::Extension>] {
        crate::extensions::FACTORIES
    }
}

/// A validated config of ocelot's components.
pub type Config = config::Config<Components>;
pub type Loaded = config::Loaded<Components>;

/// Reads, expands, merges and validates config files, later ones winning.
pub fn load(sources: &[Source], lookup_env: &dyn Fn(&str) -> Option<String>) -> Loaded {
    config::load(sources, lookup_env)
}

/// Reads the embedded default config.
pub fn load_default() -> Loaded {
    config::load_default()
}
