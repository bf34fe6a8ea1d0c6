//! One HTTP scrape: GET the target's page within the timeout, with Prometheus'
//! headers, following redirects, and read at most the body limit (a gzip body's
//! uncompressed size counted, not its wire size).

use std::io::Read;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::config::{Authorization, BasicAuth, ScrapeConfig};
use super::text::Format;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Why a scrape failed, as the reason label of the failure counter says it.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("{0}")]
    Http(String),
    #[error("the scrape took longer than its timeout ({0:?})")]
    Timeout(Duration),
    #[error("the body is larger than body_size_limit ({0} bytes)")]
    TooLarge(u64),
    #[error("{0}")]
    Auth(String),
}

impl ScrapeError {
    pub fn reason(&self) -> &'static str {
        match self {
            ScrapeError::Http(_) => "http",
            ScrapeError::Timeout(_) => "timeout",
            ScrapeError::TooLarge(_) => "too_large",
            ScrapeError::Auth(_) => "auth",
        }
    }
}

/// A job's HTTP client and the headers every scrape of it sends.
pub struct Scraper {
    client: HttpsClient,
    compression: bool,
    follow_redirects: bool,
    basic_auth: Option<BasicAuth>,
    authorization: Option<Authorization>,
    body_limit: u64,
}

const ACCEPT: &str = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";
const MAX_REDIRECTS: usize = 10;

impl Scraper {
    pub fn new(config: &ScrapeConfig) -> Result<Scraper, String> {
        let tls = match &config.tls_config {
            Some(tls) => tls.client()?,
            None => crate::tls::TlsClientConfig::default(),
        };
        let rustls =
            tls.rustls_config().map_err(|e| format!("scrape_configs `{}`: tls_config: {e}", config.job_name))?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let mut builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config((*rustls).clone()).https_or_http();
        if let Some(name) = &tls.server_name_override {
            let name = rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|e| format!("tls_config.server_name `{name}`: {e}"))?;
            builder = builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
        }
        let connector = builder.enable_http1().enable_http2().wrap_connector(http);
        Ok(Scraper {
            client: Client::builder(TokioExecutor::new()).build(connector),
            compression: config.enable_compression,
            follow_redirects: config.follow_redirects,
            basic_auth: config.basic_auth.clone(),
            authorization: config.authorization.clone(),
            body_limit: config.body_limit(),
        })
    }

    /// The page as it came, to [`Page::decode`] off the runtime's threads.
    pub async fn scrape(&self, url: &str, timeout: Duration) -> Result<Page, ScrapeError> {
        match tokio::time::timeout(timeout, self.fetch(url, timeout)).await {
            Ok(result) => result,
            Err(_) => Err(ScrapeError::Timeout(timeout)),
        }
    }

    fn authorization(&self) -> Result<Option<String>, ScrapeError> {
        let read = |path: &std::path::Path| {
            std::fs::read_to_string(path)
                .map(|s| s.trim().to_string())
                .map_err(|e| ScrapeError::Auth(format!("cannot read {}: {e}", path.display())))
        };
        if let Some(basic) = &self.basic_auth {
            let password = match (&basic.password, &basic.password_file) {
                (_, Some(file)) => read(file)?,
                (Some(password), None) => password.clone(),
                (None, None) => String::new(),
            };
            use base64::Engine;
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{password}", basic.username));
            return Ok(Some(format!("Basic {token}")));
        }
        if let Some(auth) = &self.authorization {
            let credentials = match (&auth.credentials, &auth.credentials_file) {
                (_, Some(file)) => read(file)?,
                (Some(c), None) => c.clone(),
                (None, None) => String::new(),
            };
            return Ok(Some(format!("{} {credentials}", auth.kind)));
        }
        Ok(None)
    }

    async fn fetch(&self, url: &str, timeout: Duration) -> Result<Page, ScrapeError> {
        let authorization = self.authorization()?;
        let mut url: http::Uri = url.parse().map_err(|e| ScrapeError::Http(format!("bad URL `{url}`: {e}")))?;
        for _ in 0..=MAX_REDIRECTS {
            let mut request = http::Request::get(url.clone())
                .header(http::header::ACCEPT, ACCEPT)
                .header(http::header::USER_AGENT, concat!("ocelot/", env!("CARGO_PKG_VERSION")))
                .header("X-Prometheus-Scrape-Timeout-Seconds", format!("{}", timeout.as_secs_f64()));
            if self.compression {
                request = request.header(http::header::ACCEPT_ENCODING, "gzip");
            }
            if let Some(value) = &authorization {
                request = request.header(http::header::AUTHORIZATION, value);
            }
            let request = request.body(Empty::new()).map_err(|e| ScrapeError::Http(e.to_string()))?;
            let response = self.client.request(request).await.map_err(|e| ScrapeError::Http(format!("{url}: {e}")))?;
            let status = response.status();
            if status.is_redirection() && self.follow_redirects {
                let Some(location) = response.headers().get(http::header::LOCATION).and_then(|l| l.to_str().ok())
                else {
                    return Err(ScrapeError::Http(format!("{url}: {status} without a Location")));
                };
                url = resolve(&url, location).map_err(ScrapeError::Http)?;
                continue;
            }
            if status != http::StatusCode::OK {
                return Err(ScrapeError::Http(format!("{url}: server returned HTTP status {status}")));
            }
            let header = |name: http::header::HeaderName| {
                response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase()
            };
            let format = Format::from_content_type(&header(http::header::CONTENT_TYPE));
            let gzip = header(http::header::CONTENT_ENCODING) == "gzip";
            let declared =
                response.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if !gzip && declared.is_some_and(|n| n > self.body_limit) {
                return Err(ScrapeError::TooLarge(self.body_limit));
            }
            let mut body = response.into_body();
            let mut bytes = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| ScrapeError::Http(format!("{url}: reading the body: {e}")))?;
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                    if bytes.len() as u64 > self.body_limit {
                        return Err(ScrapeError::TooLarge(self.body_limit));
                    }
                }
            }
            return Ok(Page { body: bytes, gzip, format, limit: self.body_limit });
        }
        Err(ScrapeError::Http(format!("more than {MAX_REDIRECTS} redirects")))
    }
}

/// A fetched body, still compressed if it came so.
pub struct Page {
    body: Vec<u8>,
    gzip: bool,
    format: Format,
    limit: u64,
}

impl Page {
    /// The page's text and format: inflated (within the body limit) and checked as
    /// UTF-8. CPU work on up to the limit's bytes: for a blocking thread.
    pub fn decode(self) -> Result<(String, Format), ScrapeError> {
        let body = if self.gzip { gunzip(&self.body, self.limit)? } else { self.body };
        let text = String::from_utf8(body).map_err(|_| ScrapeError::Http("the page is not UTF-8".into()))?;
        Ok((text, self.format))
    }
}

/// Decompresses at most `limit` bytes; more is an error, not a cut page.
fn gunzip(compressed: &[u8], limit: u64) -> Result<Vec<u8>, ScrapeError> {
    let mut out = Vec::new();
    let decoder = flate2::read::GzDecoder::new(compressed);
    decoder
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| ScrapeError::Http(format!("the gzip body is corrupt: {e}")))?;
    if out.len() as u64 > limit {
        return Err(ScrapeError::TooLarge(limit));
    }
    Ok(out)
}

/// A redirect's Location against the URL it came from.
fn resolve(base: &http::Uri, location: &str) -> Result<http::Uri, String> {
    if location.contains("://") {
        return location.parse().map_err(|e| format!("redirect to `{location}`: {e}"));
    }
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or("");
    let path = if location.starts_with('/') {
        location.to_string()
    } else {
        let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
        format!("{dir}/{location}")
    };
    format!("{scheme}://{authority}{path}").parse().map_err(|e| format!("redirect to `{location}`: {e}"))
}
