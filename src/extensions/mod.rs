//! Extensions: parts of the agent that are not in a pipeline.

pub mod file_storage;
pub mod health_check;

use crate::component::{Factory, parse_config};

#[derive(Clone, Debug, PartialEq)]
pub enum ExtensionConfig {
    HealthCheck(health_check::HealthCheckConfig),
    FileStorage(file_storage::FileStorageConfig),
}

pub static FACTORIES: &[Factory<ExtensionConfig>] = &[
    Factory {
        type_name: health_check::TYPE,
        aliases: &[],
        signals: &[],
        parse: |node| parse_config(node).map(ExtensionConfig::HealthCheck),
    },
    Factory {
        type_name: file_storage::TYPE,
        aliases: &[],
        signals: &[],
        parse: |node| parse_config(node).map(ExtensionConfig::FileStorage),
    },
];

impl crate::config::StorageProvider for ExtensionConfig {
    fn is_storage(&self) -> bool {
        matches!(self, ExtensionConfig::FileStorage(_))
    }
}
