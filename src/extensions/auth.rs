//! Authenticator extensions, as upstream names them: `bearertokenauth` (a token sent
//! or checked in a header, from the config or a file re-read when it changes),
//! `basicauth` (`client_auth` sent as HTTP Basic) and `headers_setter` (fixed headers
//! on every export). Exporters name one with `auth: {authenticator: <id>}`; the
//! extension must be listed in `service.extensions`, as upstream requires. Receivers
//! do not authenticate clients yet.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use http::{HeaderName, HeaderValue};
use serde::Deserialize;

use crate::component::Validate;

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
        if self.token.is_some() == self.filename.is_some() {
            return Err("exactly one of token and filename must be set".into());
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
    /// The server side (an htpasswd file): refused until ocelot checks passwords.
    #[serde(default)]
    pub htpasswd: Option<serde_json::Value>,
}

impl Validate for BasicAuthConfig {
    fn validate(&self) -> Result<(), String> {
        if self.htpasswd.is_some() {
            return Err("htpasswd (basicauth as a receiver's authenticator) is not supported yet: receivers do not authenticate clients".into());
        }
        if self.client_auth.is_none() {
            return Err("client_auth (username, password) is required".into());
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
    /// Refused: requests carry no client metadata in ocelot's batches.
    #[serde(default)]
    pub from_context: Option<String>,
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
            if h.from_context.is_some() {
                return Err(format!(
                    "headers: `{}`: from_context is not supported (batches carry no request metadata); give a value",
                    h.key
                ));
            }
            let action = h.action.as_deref().unwrap_or("upsert");
            if !matches!(action, "upsert" | "insert" | "update" | "delete") {
                return Err(format!("headers: `{}`: action must be upsert, insert, update or delete", h.key));
            }
            if action != "delete" {
                let value = h.value.as_ref().or(h.default_value.as_ref());
                let value = value.ok_or_else(|| format!("headers: `{}`: a value is required", h.key))?;
                HeaderValue::from_str(value).map_err(|e| format!("headers: `{}`: {e}", h.key))?;
            }
        }
        Ok(())
    }
}

/// One header change an authenticator makes to a request.
pub enum Change {
    /// Set it, replacing what the exporter's `headers` gave.
    Upsert(HeaderName, HeaderValue),
    /// Set it only if not already there.
    Insert(HeaderName, HeaderValue),
    /// Replace it only if already there.
    Update(HeaderName, HeaderValue),
    Delete(HeaderName),
}

impl Change {
    pub fn apply(&self, headers: &mut http::HeaderMap) {
        match self {
            Change::Upsert(k, v) => {
                headers.insert(k.clone(), v.clone());
            }
            Change::Insert(k, v) => {
                if !headers.contains_key(k) {
                    headers.insert(k.clone(), v.clone());
                }
            }
            Change::Update(k, v) => {
                if headers.contains_key(k) {
                    headers.insert(k.clone(), v.clone());
                }
            }
            Change::Delete(k) => {
                headers.remove(k);
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
                match (&c.token, &c.filename) {
                    (Some(token), _) => {
                        Ok(ClientAuth::Fixed(vec![Change::Upsert(header, with_scheme(&c.scheme, token)?)]))
                    }
                    (None, Some(path)) => {
                        let auth = ClientAuth::TokenFile {
                            header,
                            scheme: c.scheme.clone(),
                            path: path.clone(),
                            cached: Mutex::new(None),
                        };
                        // Read once now, so a missing file fails the start.
                        auth.apply(&mut http::HeaderMap::new())?;
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
                Ok(ClientAuth::Fixed(vec![Change::Upsert(http::header::AUTHORIZATION, value)]))
            }
            X::HeadersSetter(c) => {
                let mut changes = Vec::new();
                for h in &c.headers {
                    let key = HeaderName::from_bytes(h.key.as_bytes()).map_err(|e| e.to_string())?;
                    let value = || {
                        let text = h.value.as_ref().or(h.default_value.as_ref()).cloned().unwrap_or_default();
                        HeaderValue::from_str(&text).map_err(|e| e.to_string())
                    };
                    changes.push(match h.action.as_deref().unwrap_or("upsert") {
                        "insert" => Change::Insert(key, value()?),
                        "update" => Change::Update(key, value()?),
                        "delete" => Change::Delete(key),
                        _ => Change::Upsert(key, value()?),
                    });
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
        let value = with_scheme(scheme, token.trim())?;
        *cached = Some((modified, value.clone()));
        Ok(value)
    }

    /// Applies the authenticator's headers to a request's.
    pub fn apply(&self, headers: &mut http::HeaderMap) -> Result<(), String> {
        match self {
            ClientAuth::Fixed(changes) => changes.iter().for_each(|c| c.apply(headers)),
            ClientAuth::TokenFile { header, scheme, path, cached } => {
                headers.insert(header.clone(), Self::token(path, scheme, cached)?);
            }
        }
        Ok(())
    }
}

/// `auth: {authenticator: <id>}` on an exporter.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub authenticator: String,
}
