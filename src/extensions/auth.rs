//! Authenticator extensions, as upstream names them: `bearertokenauth` (a token sent
//! or checked in a header, from the config or a file re-read when it changes),
//! `basicauth` (`client_auth` sent as HTTP Basic; `htpasswd` checked on receivers) and
//! `headers_setter` (headers on every export, fixed or from the request's metadata).
//! Exporters and the otlp receiver name one with `auth: {authenticator: <id>}`; the
//! extension must be listed in `service.extensions`, as upstream requires.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use http::{HeaderName, HeaderValue};
use serde::Deserialize;

use crate::component::Validate;
use crate::pdata::Metadata;

pub const BEARER_TYPE: &str = "bearertokenauth";
pub const BASIC_TYPE: &str = "basicauth";
pub const HEADERS_SETTER_TYPE: &str = "headers_setter";

fn default_scheme() -> String {
    "Bearer".into()
}

fn default_header() -> String {
    "Authorization".into()
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BearerTokenAuthConfig {
    /// The token itself (use `${env:TOKEN}` rather than writing it in the file).
    #[serde(default)]
    pub token: Option<String>,
    /// Several tokens a receiver accepts (exporters send the first).
    #[serde(default)]
    pub tokens: Vec<String>,
    /// Or a file holding it, re-read when it changes (a rotated Kubernetes secret).
    #[serde(default)]
    pub filename: Option<PathBuf>,
    /// Put before the token. Default `Bearer`; empty sends the token alone.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// The header it goes in. Default `Authorization`.
    #[serde(default = "default_header")]
    pub header: String,
}

impl Validate for BearerTokenAuthConfig {
    fn validate(&self) -> Result<(), String> {
        if self.token.is_some() && !self.tokens.is_empty() {
            return Err("set one of token and tokens".into());
        }
        if self.token.as_deref().is_some_and(|t| t.trim().is_empty()) || self.tokens.iter().any(|t| t.trim().is_empty())
        {
            return Err("a token must not be empty".into());
        }
        let inline = self.token.is_some() || !self.tokens.is_empty();
        if inline == self.filename.is_some() {
            return Err("exactly one of token (or tokens) and filename must be set".into());
        }
        HeaderName::from_bytes(self.header.as_bytes()).map_err(|e| format!("header `{}`: {e}", self.header))?;
        Ok(())
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BasicCredentials {
    pub username: String,
    pub password: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthConfig {
    /// What exporters naming this send.
    #[serde(default)]
    pub client_auth: Option<BasicCredentials>,
    /// What receivers naming this check clients against.
    #[serde(default)]
    pub htpasswd: Option<Htpasswd>,
}

/// `htpasswd`: users and password hashes, from a file, inline, or both.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Htpasswd {
    #[serde(default)]
    pub file: Option<PathBuf>,
    #[serde(default)]
    pub inline: Option<String>,
}

impl Validate for BasicAuthConfig {
    fn validate(&self) -> Result<(), String> {
        if self.client_auth.is_none() && self.htpasswd.is_none() {
            return Err("client_auth (for exporters) or htpasswd (for receivers) is required".into());
        }
        if let Some(h) = &self.htpasswd {
            if h.file.is_none() && h.inline.is_none() {
                return Err("htpasswd needs a file or inline entries".into());
            }
            if let Some(inline) = &h.inline {
                super::htpasswd::parse(inline).map_err(|e| format!("htpasswd.inline: {e}"))?;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeaderSetting {
    pub key: String,
    /// The value to set.
    #[serde(default)]
    pub value: Option<String>,
    /// Or the request metadata key whose value is sent (the receiver's
    /// `include_metadata`, and a `batch` processor's `metadata_keys` if there is one).
    #[serde(default)]
    pub from_context: Option<String>,
    /// Sent when `from_context` finds nothing.
    #[serde(default)]
    pub default_value: Option<String>,
    /// `upsert` (the default), `insert`, `update` or `delete`, against the exporter's
    /// own `headers`.
    #[serde(default)]
    pub action: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeadersSetterConfig {
    pub headers: Vec<HeaderSetting>,
}

impl Validate for HeadersSetterConfig {
    fn validate(&self) -> Result<(), String> {
        for h in &self.headers {
            HeaderName::from_bytes(h.key.as_bytes()).map_err(|e| format!("headers: `{}`: {e}", h.key))?;
            if h.from_context.is_some() && h.value.is_some() {
                return Err(format!("headers: `{}`: set one of value and from_context", h.key));
            }
            let action = h.action.as_deref().unwrap_or("upsert");
            if !matches!(action, "upsert" | "insert" | "update" | "delete") {
                return Err(format!("headers: `{}`: action must be upsert, insert, update or delete", h.key));
            }
            if action != "delete" {
                if h.value.is_none() && h.from_context.is_none() {
                    return Err(format!("headers: `{}`: one of value and from_context is required", h.key));
                }
                for value in [&h.value, &h.default_value].into_iter().flatten() {
                    HeaderValue::from_str(value).map_err(|e| format!("headers: `{}`: {e}", h.key))?;
                }
            }
        }
        Ok(())
    }
}

/// One header change an authenticator makes to a request.
pub struct Change {
    pub action: Action,
    pub key: HeaderName,
    pub value: Source,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Set it, replacing what the exporter's `headers` gave.
    Upsert,
    /// Set it only if not already there.
    Insert,
    /// Replace it only if already there.
    Update,
    Delete,
}

/// Where a header's value comes from.
pub enum Source {
    Fixed(HeaderValue),
    /// The batch's request metadata under this key (`from_context`), else the
    /// default; with neither, the header is not set, as upstream.
    Context {
        key: String,
        default: Option<HeaderValue>,
    },
}

impl Change {
    pub fn upsert(key: HeaderName, value: HeaderValue) -> Change {
        Change { action: Action::Upsert, key, value: Source::Fixed(value) }
    }

    pub fn apply(&self, headers: &mut http::HeaderMap, metadata: &Metadata) {
        let key = &self.key;
        if self.action == Action::Delete {
            headers.remove(key);
            return;
        }
        let value = match &self.value {
            Source::Fixed(value) => Some(value.clone()),
            Source::Context { key, default } => {
                // One value only: with several, upstream cannot tell which to send.
                match metadata.get(key) {
                    [one] => HeaderValue::from_str(one).ok(),
                    _ => None,
                }
                .or_else(|| default.clone())
            }
        };
        let Some(value) = value else { return };
        match self.action {
            Action::Insert if headers.contains_key(key) => {}
            Action::Update if !headers.contains_key(key) => {}
            _ => {
                headers.insert(key.clone(), value);
            }
        }
    }
}

/// An authenticator as an exporter uses it: the header changes for each request.
pub enum ClientAuth {
    Fixed(Vec<Change>),
    TokenFile { header: HeaderName, scheme: String, path: PathBuf, cached: Mutex<Option<(SystemTime, HeaderValue)>> },
}

fn with_scheme(scheme: &str, token: &str) -> Result<HeaderValue, String> {
    let text = if scheme.is_empty() { token.to_string() } else { format!("{scheme} {token}") };
    let mut value = HeaderValue::from_str(&text).map_err(|e| format!("the token is not a valid header value: {e}"))?;
    value.set_sensitive(true);
    Ok(value)
}

impl ClientAuth {
    /// The client side of an authenticator extension, or why it has none.
    pub fn new(config: &super::ExtensionConfig) -> Result<ClientAuth, String> {
        use super::ExtensionConfig as X;
        match config {
            X::BearerTokenAuth(c) => {
                let header = HeaderName::from_bytes(c.header.as_bytes()).map_err(|e| e.to_string())?;
                match (c.token.as_ref().or(c.tokens.first()), &c.filename) {
                    (Some(token), _) => {
                        Ok(ClientAuth::Fixed(vec![Change::upsert(header, with_scheme(&c.scheme, token)?)]))
                    }
                    (None, Some(path)) => {
                        let auth = ClientAuth::TokenFile {
                            header,
                            scheme: c.scheme.clone(),
                            path: path.clone(),
                            cached: Mutex::new(None),
                        };
                        // Read once now, so a missing file fails the start.
                        auth.apply(&mut http::HeaderMap::new(), &Metadata::default())?;
                        Ok(auth)
                    }
                    (None, None) => Err("no token".into()),
                }
            }
            X::BasicAuth(c) => {
                let creds = c.client_auth.as_ref().ok_or("basicauth has no client_auth")?;
                let encoded = crate::pdata::json::base64(format!("{}:{}", creds.username, creds.password).as_bytes());
                let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).map_err(|e| e.to_string())?;
                value.set_sensitive(true);
                Ok(ClientAuth::Fixed(vec![Change::upsert(http::header::AUTHORIZATION, value)]))
            }
            X::HeadersSetter(c) => {
                let mut changes = Vec::new();
                for h in &c.headers {
                    let key = HeaderName::from_bytes(h.key.as_bytes()).map_err(|e| e.to_string())?;
                    let value_of = |text: &String| HeaderValue::from_str(text).map_err(|e| e.to_string());
                    let value = match (&h.value, &h.from_context) {
                        (Some(value), _) => Source::Fixed(value_of(value)?),
                        (None, Some(context)) => Source::Context {
                            key: context.clone(),
                            default: h.default_value.as_ref().map(value_of).transpose()?,
                        },
                        (None, None) => Source::Fixed(value_of(h.default_value.as_ref().unwrap_or(&String::new()))?),
                    };
                    let action = match h.action.as_deref().unwrap_or("upsert") {
                        "insert" => Action::Insert,
                        "update" => Action::Update,
                        "delete" => Action::Delete,
                        _ => Action::Upsert,
                    };
                    changes.push(Change { action, key, value });
                }
                Ok(ClientAuth::Fixed(changes))
            }
            _ => Err("it is not an authenticator".into()),
        }
    }

    /// The token file's header value; the file is read again when its modification
    /// time changes.
    fn token(
        path: &std::path::Path,
        scheme: &str,
        cached: &Mutex<Option<(SystemTime, HeaderValue)>>,
    ) -> Result<HeaderValue, String> {
        let modified =
            std::fs::metadata(path).and_then(|m| m.modified()).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut cached = cached.lock().map_err(|_| "token cache poisoned".to_string())?;
        if let Some((at, value)) = cached.as_ref()
            && *at == modified
        {
            return Ok(value.clone());
        }
        let token = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        // An empty (or half-written) file must never make an empty token acceptable.
        if token.trim().is_empty() {
            return Err(format!("{}: the token file is empty", path.display()));
        }
        let value = with_scheme(scheme, token.trim())?;
        *cached = Some((modified, value.clone()));
        Ok(value)
    }

    /// Applies the authenticator's headers to a request's.
    pub fn apply(&self, headers: &mut http::HeaderMap, metadata: &Metadata) -> Result<(), String> {
        match self {
            ClientAuth::Fixed(changes) => changes.iter().for_each(|c| c.apply(headers, metadata)),
            ClientAuth::TokenFile { header, scheme, path, cached } => {
                headers.insert(header.clone(), Self::token(path, scheme, cached)?);
            }
        }
        Ok(())
    }
}

/// An authenticator as a receiver uses it: checks each request's headers.
pub enum ServerAuth {
    /// The values accepted in `header`: each token with its scheme, or a token file.
    Bearer {
        header: HeaderName,
        accepted: Vec<HeaderValue>,
        file: Option<ClientAuth>,
    },
    Basic(super::htpasswd::Users),
}

/// Why a request was refused: answered 401 (HTTP) or `UNAUTHENTICATED` (gRPC).
#[derive(Debug, PartialEq, Eq)]
pub struct Unauthenticated(pub &'static str);

impl ServerAuth {
    /// The server side of an authenticator extension, or why it has none.
    pub fn new(config: &super::ExtensionConfig) -> Result<ServerAuth, String> {
        use super::ExtensionConfig as X;
        match config {
            X::BearerTokenAuth(c) => {
                let header = HeaderName::from_bytes(c.header.as_bytes()).map_err(|e| e.to_string())?;
                let accepted =
                    c.token.iter().chain(&c.tokens).map(|t| with_scheme(&c.scheme, t)).collect::<Result<_, _>>()?;
                // A file's token is what a client with this config would send, re-read when it changes.
                let file = c.filename.is_some().then(|| ClientAuth::new(config)).transpose()?;
                Ok(ServerAuth::Bearer { header, accepted, file })
            }
            X::BasicAuth(c) => {
                let h = c.htpasswd.as_ref().ok_or("basicauth has no htpasswd to check clients against")?;
                let mut text = String::new();
                if let Some(file) = &h.file {
                    text =
                        std::fs::read_to_string(file).map_err(|e| format!("htpasswd.file {}: {e}", file.display()))?;
                    text.push('\n');
                }
                text.push_str(h.inline.as_deref().unwrap_or_default());
                Ok(ServerAuth::Basic(super::htpasswd::Users::new(&text)?))
            }
            _ => Err("it cannot authenticate clients".into()),
        }
    }

    /// Checks a request; on success, what the client is known as (`auth.username` for
    /// `from_context`). Password hashes are checked off the runtime, once per credential.
    pub async fn authenticate(&self, headers: &http::HeaderMap) -> Result<Vec<(String, String)>, Unauthenticated> {
        match self {
            ServerAuth::Bearer { header, accepted, file } => {
                let given = headers.get(header).ok_or(Unauthenticated("missing authorization header"))?;
                let mut from_file = http::HeaderMap::new();
                if let Some(file) = file {
                    file.apply(&mut from_file, &Metadata::default())
                        .map_err(|_| Unauthenticated("token file unreadable"))?;
                }
                // Every candidate is compared, so the time taken does not say which matched.
                let matched = accepted
                    .iter()
                    .chain(from_file.get(header))
                    .fold(false, |found, expected| constant_time_eq(given.as_bytes(), expected.as_bytes()) | found);
                if !matched {
                    return Err(Unauthenticated("scheme or token does not match"));
                }
                Ok(Vec::new())
            }
            ServerAuth::Basic(users) => {
                let given = headers
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or(Unauthenticated("missing authorization header"))?;
                let username = users.check(given).await?;
                Ok(vec![("username".into(), username), ("raw".into(), given.to_string())])
            }
        }
    }
}

/// Equal bytes, in time that depends only on the lengths.
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `auth: {authenticator: <id>}` on an exporter.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub authenticator: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(yaml: &str) -> Result<(), String> {
        let node = crate::config::node::parse("a.yaml", yaml).unwrap();
        let config: BearerTokenAuthConfig = crate::config::de::from_node(&node).map_err(|e| e.message)?;
        config.validate()
    }

    #[test]
    fn an_empty_token_is_never_accepted() {
        assert!(bearer("token: ''\n").unwrap_err().contains("must not be empty"));
        assert!(bearer("tokens: [a, ' ']\n").unwrap_err().contains("must not be empty"));
        assert!(bearer("tokens: [a, b]\n").is_ok());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "\n").unwrap();
        let auth = ClientAuth::TokenFile {
            header: http::header::AUTHORIZATION,
            scheme: "Bearer".into(),
            path: path.clone(),
            cached: Mutex::new(None),
        };
        assert!(auth.apply(&mut http::HeaderMap::new(), &Metadata::default()).unwrap_err().contains("empty"));
    }
}
