//! Extensions: parts of the agent that are not in a pipeline.

pub mod auth;
pub mod file_storage;
pub mod health_check;
pub mod htpasswd;
pub mod pprof;
pub mod zpages;

use crate::component::{Factory, parse_config};

#[derive(Clone, Debug, PartialEq)]
pub enum ExtensionConfig {
    HealthCheck(health_check::HealthCheckConfig),
    FileStorage(file_storage::FileStorageConfig),
    BearerTokenAuth(auth::BearerTokenAuthConfig),
    BasicAuth(auth::BasicAuthConfig),
    HeadersSetter(auth::HeadersSetterConfig),
    Zpages(zpages::ZpagesConfig),
    Pprof(pprof::PprofConfig),
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
    Factory {
        type_name: auth::BEARER_TYPE,
        aliases: &["bearer_token_auth"],
        signals: &[],
        parse: |node| parse_config(node).map(ExtensionConfig::BearerTokenAuth),
    },
    Factory {
        type_name: auth::BASIC_TYPE,
        aliases: &["basic_auth"],
        signals: &[],
        parse: |node| parse_config(node).map(ExtensionConfig::BasicAuth),
    },
    Factory {
        type_name: auth::HEADERS_SETTER_TYPE,
        aliases: &["headerssetter"],
        signals: &[],
        parse: |node| parse_config(node).map(ExtensionConfig::HeadersSetter),
    },
    Factory {
        type_name: pprof::TYPE,
        aliases: &[],
        signals: &[],
        parse: |node| parse_config(node).map(ExtensionConfig::Pprof),
    },
    Factory {
        type_name: zpages::TYPE,
        aliases: &[],
        signals: &[],
        parse: |node| parse_config(node).map(ExtensionConfig::Zpages),
    },
];

impl crate::config::StorageProvider for ExtensionConfig {
    fn is_storage(&self) -> bool {
        matches!(self, ExtensionConfig::FileStorage(_))
    }

    fn is_authenticator(&self) -> bool {
        matches!(
            self,
            ExtensionConfig::BearerTokenAuth(_) | ExtensionConfig::BasicAuth(_) | ExtensionConfig::HeadersSetter(_)
        )
    }

    fn auth_problem(&self, server: bool) -> Option<String> {
        match (self, server) {
            (ExtensionConfig::BasicAuth(c), true) if c.htpasswd.is_none() => {
                Some("a receiver needs basicauth's htpasswd to check clients against".into())
            }
            (ExtensionConfig::BasicAuth(c), false) if c.client_auth.is_none() => {
                Some("an exporter needs basicauth's client_auth to send".into())
            }
            (ExtensionConfig::HeadersSetter(_), true) => Some("headers_setter only sets headers on exports".into()),
            _ => None,
        }
    }
}
