//! The connection to the Kubernetes API: where it is and who ocelot is to it, from
//! the pod's service account, a kubeconfig file, or nothing, as upstream's
//! `auth_type` says; then GETs of JSON objects and watch streams, each bounded.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Where the pod's service account credentials are mounted.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// A bound service account token is rotated by the kubelet; read it again this often,
/// as client-go does.
const TOKEN_REREAD: Duration = Duration::from_secs(60);
/// A GET (a list page, one object) gets this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest JSON body read for one GET: a list page of 500 pods is a few MiB.
const MAX_BODY: usize = 64 << 20;
/// The largest watch event: one object.
const MAX_EVENT: usize = 16 << 20;

/// How ocelot authenticates to the API, upstream's `auth_type`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum AuthType {
    /// No credentials, the in-cluster address.
    #[serde(rename = "none")]
    None,
    /// The pod's service account token and CA (the default).
    #[default]
    #[serde(rename = "serviceAccount")]
    ServiceAccount,
    /// `$KUBECONFIG` or `~/.kube/config`, its current context unless one is named.
    #[serde(rename = "kubeConfig")]
    KubeConfig,
    /// A client certificate (the kubelet's `auth_type: tls` only).
    #[serde(rename = "tls")]
    Tls,
}

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// Building the client failed: nothing to retry until the configuration changes.
    #[error("{0}")]
    Config(String),
    /// The API answered with an error status.
    #[error("the API answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("{0}")]
    Transport(String),
    #[error("the API's answer does not read: {0}")]
    Decode(String),
}

impl KubeError {
    /// A watch that must start again from a fresh list.
    pub fn is_gone(&self) -> bool {
        matches!(self, KubeError::Status { status: 410, .. })
    }
}

/// The bearer token of a client made with [`KubeClient::direct`].
pub enum Token {
    None,
    /// Read again every minute.
    File(PathBuf),
    Fixed(String),
}

/// What goes in each request's `Authorization` header.
enum Credentials {
    None,
    Fixed(http::HeaderValue),
    /// A token file, read again every [`TOKEN_REREAD`].
    TokenFile {
        path: PathBuf,
        cached: Mutex<Option<(Instant, http::HeaderValue)>>,
    },
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// A client of one API server.
#[derive(Clone)]
pub struct KubeClient {
    inner: Arc<Inner>,
}

struct Inner {
    /// `https://host:port`, no trailing slash.
    server: String,
    credentials: Credentials,
    client: HttpsClient,
}

/// The parts of a kubeconfig file ocelot reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
struct KubeConfigFile {
    clusters: Vec<Named<Cluster>>,
    users: Vec<Named<User>>,
    contexts: Vec<Named<Context>>,
    current_context: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Named<T> {
    name: String,
    #[serde(alias = "cluster", alias = "user", alias = "context")]
    value: T,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
struct Cluster {
    server: String,
    certificate_authority: Option<PathBuf>,
    certificate_authority_data: Option<String>,
    insecure_skip_tls_verify: bool,
    tls_server_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
struct User {
    token: Option<String>,
    #[serde(rename = "tokenFile")]
    token_file: Option<PathBuf>,
    client_certificate: Option<PathBuf>,
    client_certificate_data: Option<String>,
    client_key: Option<PathBuf>,
    client_key_data: Option<String>,
    username: Option<String>,
    password: Option<String>,
    exec: Option<serde_json::Value>,
    #[serde(rename = "auth-provider")]
    auth_provider: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Context {
    cluster: String,
    user: String,
}

/// What a client is made of, before the HTTP client exists.
struct Settings {
    server: String,
    ca_pem: Option<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    skip_verify: bool,
    server_name: Option<String>,
    credentials: Credentials,
}

impl KubeClient {
    /// A client for `auth_type`; `context` picks a kubeconfig context other than the
    /// current one.
    pub fn new(auth: AuthType, context: Option<&str>) -> Result<KubeClient, KubeError> {
        let settings = match auth {
            AuthType::ServiceAccount | AuthType::None => in_cluster(auth == AuthType::ServiceAccount)?,
            AuthType::KubeConfig => from_kubeconfig(&kubeconfig_path()?, context)?,
            AuthType::Tls => {
                return Err(KubeError::Config("auth_type `tls` is for the kubelet, not the API server".into()));
            }
        };
        KubeClient::from_settings(settings)
    }

    /// A client from this kubeconfig file's current context (Prometheus'
    /// `kubeconfig_file`).
    pub fn from_kubeconfig_file(path: &Path) -> Result<KubeClient, KubeError> {
        KubeClient::from_settings(from_kubeconfig(path, None)?)
    }

    /// A client of `server` with this token and CA (the kubelet receiver, a
    /// Prometheus `api_server`).
    pub fn direct(
        server: &str,
        token: Token,
        ca_pem: Option<Vec<u8>>,
        identity: Option<(Vec<u8>, Vec<u8>)>,
        skip_verify: bool,
    ) -> Result<KubeClient, KubeError> {
        let credentials = match token {
            Token::File(path) => Credentials::TokenFile { path, cached: Mutex::new(None) },
            Token::Fixed(token) => Credentials::Fixed(bearer(&token)?),
            Token::None => Credentials::None,
        };
        KubeClient::from_settings(Settings {
            server: server.trim_end_matches('/').to_string(),
            ca_pem,
            identity,
            skip_verify,
            server_name: None,
            credentials,
        })
    }

    fn from_settings(settings: Settings) -> Result<KubeClient, KubeError> {
        let tls = rustls_config(&settings)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let mut builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http();
        if let Some(name) = &settings.server_name {
            let name = rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|e| KubeError::Config(format!("tls-server-name `{name}`: {e}")))?;
            builder = builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
        }
        let connector = builder.enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let inner = Inner { server: settings.server, credentials: settings.credentials, client };
        Ok(KubeClient { inner: Arc::new(inner) })
    }

    /// `https://host:port` of the server.
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    fn authorization(&self) -> Result<Option<http::HeaderValue>, KubeError> {
        match &self.inner.credentials {
            Credentials::None => Ok(None),
            Credentials::Fixed(value) => Ok(Some(value.clone())),
            Credentials::TokenFile { path, cached } => {
                let mut cached = cached.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some((read_at, value)) = cached.as_ref()
                    && read_at.elapsed() < TOKEN_REREAD
                {
                    return Ok(Some(value.clone()));
                }
                let token = std::fs::read_to_string(path)
                    .map_err(|e| KubeError::Config(format!("reading the token {}: {e}", path.display())))?;
                let value = bearer(token.trim())?;
                *cached = Some((Instant::now(), value.clone()));
                Ok(Some(value))
            }
        }
    }

    async fn send(&self, path_and_query: &str) -> Result<http::Response<Incoming>, KubeError> {
        let url = format!("{}{path_and_query}", self.inner.server);
        let mut request = http::Request::get(&url)
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::USER_AGENT, concat!("ocelot/", env!("CARGO_PKG_VERSION")))
            .body(Empty::new())
            .map_err(|e| KubeError::Config(format!("the request to {url}: {e}")))?;
        if let Some(value) = self.authorization()? {
            request.headers_mut().insert(http::header::AUTHORIZATION, value);
        }
        let response =
            self.inner.client.request(request).await.map_err(|e| KubeError::Transport(format!("GET {url}: {e}")))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body = read_limited(response.into_body(), 4096).await.unwrap_or_default();
        let message = match serde_json::from_slice::<super::objects::Status>(&body) {
            Ok(s) if !s.message.is_empty() => s.message,
            _ => String::from_utf8_lossy(&body).trim().chars().take(300).collect(),
        };
        Err(KubeError::Status { status, message: format!("GET {path_and_query}: {message}") })
    }

    /// GETs one JSON document (an object, a list page, the kubelet's summary).
    pub async fn get<T: DeserializeOwned>(&self, path_and_query: &str) -> Result<T, KubeError> {
        let body = self.get_bytes(path_and_query, MAX_BODY).await?;
        serde_json::from_slice(&body).map_err(|e| KubeError::Decode(format!("GET {path_and_query}: {e}")))
    }

    /// GETs a body of at most `limit` bytes, within the request timeout.
    pub async fn get_bytes(&self, path_and_query: &str, limit: usize) -> Result<Bytes, KubeError> {
        let fetch = async {
            let response = self.send(path_and_query).await?;
            read_limited(response.into_body(), limit).await
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, fetch).await {
            Ok(result) => result,
            Err(_) => Err(KubeError::Transport(format!("GET {path_and_query} took longer than {REQUEST_TIMEOUT:?}"))),
        }
    }

    /// Opens a watch stream: one JSON event per line.
    pub async fn watch(&self, path_and_query: &str) -> Result<Lines, KubeError> {
        let response = match tokio::time::timeout(REQUEST_TIMEOUT, self.send(path_and_query)).await {
            Ok(response) => response?,
            Err(_) => return Err(KubeError::Transport(format!("opening the watch {path_and_query} timed out"))),
        };
        Ok(Lines { body: response.into_body(), buffer: BytesMut::new(), scanned: 0 })
    }
}

/// A streamed body cut into lines, each at most [`MAX_EVENT`] bytes.
pub struct Lines {
    body: Incoming,
    buffer: BytesMut,
    /// How much of `buffer` is known to hold no newline.
    scanned: usize,
}

impl Lines {
    /// The next non-empty line; `None` when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<Bytes>, KubeError> {
        loop {
            if let Some(found) = memchr::memchr(b'\n', &self.buffer[self.scanned..]) {
                let end = self.scanned + found;
                self.scanned = 0;
                let line = self.buffer.split_to(end + 1).freeze();
                let line = line.slice(..end);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some(line));
            }
            self.scanned = self.buffer.len();
            if self.buffer.len() > MAX_EVENT {
                return Err(KubeError::Decode(format!("a watch event is larger than {MAX_EVENT} bytes")));
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(mut data) = frame.into_data() {
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            self.buffer.extend_from_slice(chunk);
                            let n = chunk.len();
                            data.advance(n);
                        }
                    }
                }
                Some(Err(e)) => return Err(KubeError::Transport(format!("the watch stream broke: {e}"))),
                None => return Ok(None),
            }
        }
    }
}

async fn read_limited(mut body: Incoming, limit: usize) -> Result<Bytes, KubeError> {
    let mut bytes = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| KubeError::Transport(format!("reading the answer: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > limit {
                return Err(KubeError::Decode(format!("the answer is larger than {limit} bytes")));
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes.freeze())
}

fn bearer(token: &str) -> Result<http::HeaderValue, KubeError> {
    http::HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| KubeError::Config("the token is not a valid header value".into()))
}

/// The API server as a pod sees it: `KUBERNETES_SERVICE_HOST`/`_PORT`, with the
/// service account's token and CA (or no token, for `auth_type: none`).
fn in_cluster(with_token: bool) -> Result<Settings, KubeError> {
    let (Ok(host), Ok(port)) = (std::env::var("KUBERNETES_SERVICE_HOST"), std::env::var("KUBERNETES_SERVICE_PORT"))
    else {
        return Err(KubeError::Config(
            "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set: not running in a pod? Outside a cluster use auth_type: kubeConfig".into(),
        ));
    };
    let host = if host.contains(':') { format!("[{host}]") } else { host };
    let dir = Path::new(SERVICE_ACCOUNT_DIR);
    let ca_pem = std::fs::read(dir.join("ca.crt")).ok();
    let credentials = if with_token {
        let path = dir.join("token");
        if !path.exists() {
            return Err(KubeError::Config(format!(
                "auth_type serviceAccount: {} is missing; is automountServiceAccountToken off?",
                path.display()
            )));
        }
        Credentials::TokenFile { path, cached: Mutex::new(None) }
    } else {
        Credentials::None
    };
    Ok(Settings {
        server: format!("https://{host}:{port}"),
        ca_pem,
        identity: None,
        skip_verify: false,
        server_name: None,
        credentials,
    })
}

/// `$KUBECONFIG` (its first file: ocelot does not merge a list) or `~/.kube/config`.
fn kubeconfig_path() -> Result<PathBuf, KubeError> {
    match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(list) => Ok(std::env::split_paths(&list).next().unwrap_or_default()),
        None => match std::env::var_os("HOME") {
            Some(home) => Ok(PathBuf::from(home).join(".kube/config")),
            None => Err(KubeError::Config("auth_type kubeConfig: neither KUBECONFIG nor HOME is set".into())),
        },
    }
}

/// The kubeconfig file's cluster and user for `context` (or the current context).
fn from_kubeconfig(path: &Path, context: Option<&str>) -> Result<Settings, KubeError> {
    let fail = |reason: String| KubeError::Config(format!("kubeconfig {}: {reason}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let node = crate::config::node::parse(&path.display().to_string(), &text).map_err(|e| fail(e.to_string()))?;
    let file: KubeConfigFile = crate::config::de::from_node(&node).map_err(|e| fail(e.to_string()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let resolve = |p: &PathBuf| if p.is_relative() { base.join(p) } else { p.clone() };
    let wanted = context.filter(|c| !c.is_empty()).unwrap_or(&file.current_context);
    let Some(ctx) = file.contexts.iter().find(|c| c.name == wanted) else {
        return Err(fail(format!("no context `{wanted}`")));
    };
    let Some(cluster) = file.clusters.iter().find(|c| c.name == ctx.value.cluster) else {
        return Err(fail(format!("context `{wanted}` names cluster `{}`, which is not there", ctx.value.cluster)));
    };
    let cluster = &cluster.value;
    let user = file.users.iter().find(|u| u.name == ctx.value.user).map(|u| &u.value);
    let default_user = User::default();
    let user = user.unwrap_or(&default_user);
    if user.exec.is_some() || user.auth_provider.is_some() {
        return Err(fail(format!(
            "user `{}` authenticates with an exec or auth-provider plugin, which ocelot does not run; use a token or a client certificate",
            ctx.value.user
        )));
    }
    let data = |field: &str, b64: &Option<String>, file: &Option<PathBuf>| -> Result<Option<Vec<u8>>, KubeError> {
        if let Some(b64) = b64 {
            return STANDARD.decode(b64.trim()).map(Some).map_err(|e| fail(format!("{field}-data: {e}")));
        }
        file.as_ref()
            .map(|p| std::fs::read(resolve(p)).map_err(|e| fail(format!("{field} {}: {e}", p.display()))))
            .transpose()
    };
    let ca_pem = data("certificate-authority", &cluster.certificate_authority_data, &cluster.certificate_authority)?;
    let cert = data("client-certificate", &user.client_certificate_data, &user.client_certificate)?;
    let key = data("client-key", &user.client_key_data, &user.client_key)?;
    let identity = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => return Err(fail("a client certificate needs both its certificate and its key".into())),
    };
    let credentials = if let Some(token) = &user.token {
        Credentials::Fixed(bearer(token)?)
    } else if let Some(path) = &user.token_file {
        Credentials::TokenFile { path: resolve(path), cached: Mutex::new(None) }
    } else if let (Some(name), Some(password)) = (&user.username, &user.password) {
        let value = format!("Basic {}", STANDARD.encode(format!("{name}:{password}")));
        Credentials::Fixed(http::HeaderValue::from_str(&value).map_err(|_| fail("username or password".into()))?)
    } else {
        Credentials::None
    };
    if cluster.server.is_empty() {
        return Err(fail(format!("cluster `{}` has no server", ctx.value.cluster)));
    }
    Ok(Settings {
        server: cluster.server.trim_end_matches('/').to_string(),
        ca_pem,
        identity,
        skip_verify: cluster.insecure_skip_tls_verify,
        server_name: cluster.tls_server_name.clone(),
        credentials,
    })
}

fn rustls_config(settings: &Settings) -> Result<rustls::ClientConfig, KubeError> {
    let mut roots = rustls::RootCertStore::empty();
    match &settings.ca_pem {
        Some(pem) => {
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(pem).filter_map(Result::ok).collect();
            if certs.is_empty() {
                return Err(KubeError::Config("the cluster's CA holds no PEM certificate".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| KubeError::Config(format!("the cluster's CA: {e}")))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versioned = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| KubeError::Config(e.to_string()))?;
    let builder = if settings.skip_verify {
        tracing::warn!("The Kubernetes API's certificate is not checked (insecure-skip-tls-verify).");
        versioned.dangerous().with_custom_certificate_verifier(Arc::new(crate::tls::AnyServer(provider)))
    } else {
        versioned.with_root_certificates(roots)
    };
    let config = match &settings.identity {
        Some((cert, key)) => {
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(cert).filter_map(Result::ok).collect();
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|_| KubeError::Config("the client key is not a PEM private key".into()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| KubeError::Config(format!("the client certificate: {e}")))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(config)
}
