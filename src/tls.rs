//! TLS settings as the collector's configtls names them: client (`tls:` under an
//! exporter) and server (`tls:` under a receiver protocol), turned into rustls
//! configs. Files are read when the component starts, not at validation.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use serde::Deserialize;

use crate::config::ConfigDuration;

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsClientConfig {
    /// Plain text, no TLS. Default false (TLS on), as upstream.
    #[serde(default)]
    pub insecure: bool,
    /// PEM file of the CAs to trust: these alone, as upstream, unless
    /// `include_system_ca_certs_pool`. Without it, the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Trust the system's roots as well as `ca_file`. Default false.
    #[serde(default)]
    pub include_system_ca_certs_pool: bool,
    /// PEM client certificate, for mTLS (with `key_file`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The name to verify the server's certificate against, instead of the endpoint's host.
    #[serde(default)]
    pub server_name_override: Option<String>,
    /// Accept any server certificate (still TLS, but no check of who answers). For
    /// tests and labs only; logged as a warning when the exporter starts.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// The oldest TLS version offered: `1.2` (the default) or `1.3`. `1.0` and `1.1`
    /// are accepted and mean 1.2, the oldest ocelot speaks.
    #[serde(default)]
    pub min_version: Option<String>,
    /// The newest TLS version offered: `1.2` or `1.3` (the default).
    #[serde(default)]
    pub max_version: Option<String>,
    /// Read `cert_file` and `key_file` again at the first handshake this long after
    /// they were last read (a renewed client certificate). Default: never.
    #[serde(default)]
    pub reload_interval: Option<ConfigDuration>,
}

/// A `reload_interval` of zero means none, as upstream.
fn interval(reload: &Option<ConfigDuration>) -> Option<Duration> {
    reload.map(|d| d.0).filter(|d| !d.is_zero())
}

/// A client certificate chain and its private key, as PEM.
pub struct IdentityPem {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} `{path}`: {source}")]
    Read { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{what} `{path}` holds no usable PEM {expected}")]
    Pem { what: &'static str, path: PathBuf, expected: &'static str },
    #[error("TLS set-up failed: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client certificate verification: {0}")]
    Verifier(String),
}

/// `"1.0"` … `"1.3"` as a rank, for comparing.
fn version_rank(field: &str, value: &str) -> Result<u8, String> {
    match value {
        "1.0" => Ok(0),
        "1.1" => Ok(1),
        "1.2" => Ok(2),
        "1.3" => Ok(3),
        other => Err(format!("tls.{field} `{other}` is not one of 1.0, 1.1, 1.2, 1.3")),
    }
}

impl TlsClientConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err("tls.cert_file and tls.key_file must be given together".into());
        }
        let min = self.min_version.as_deref().map(|v| version_rank("min_version", v)).transpose()?.unwrap_or(2);
        let max = self.max_version.as_deref().map(|v| version_rank("max_version", v)).transpose()?.unwrap_or(3);
        if max < 2 {
            return Err("tls.max_version below 1.2 cannot be met: ocelot speaks TLS 1.2 and 1.3".into());
        }
        if min > max {
            return Err("tls.min_version is newer than tls.max_version".into());
        }
        Ok(())
    }

    /// Whether these settings need ocelot's own TLS connector rather than the gRPC
    /// library's (which has no version limits and always verifies).
    pub fn needs_own_connector(&self) -> bool {
        self.insecure_skip_verify
            || self.min_version.is_some()
            || self.max_version.is_some()
            || interval(&self.reload_interval).is_some()
    }

    fn versions(&self) -> Vec<&'static rustls::SupportedProtocolVersion> {
        let rank = |v: &Option<String>, default| v.as_deref().and_then(|v| version_rank("", v).ok()).unwrap_or(default);
        let (min, max) = (rank(&self.min_version, 2), rank(&self.max_version, 3));
        [(2, &rustls::version::TLS12), (3, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(r, _)| (min..=max).contains(r))
            .map(|(_, v)| v)
            .collect()
    }

    pub fn read_ca(&self) -> Result<Option<Vec<u8>>, TlsError> {
        self.ca_file.as_ref().map(|path| read(path, "tls.ca_file")).transpose()
    }

    /// The client certificate and key PEMs, for mTLS.
    pub fn read_identity(&self) -> Result<Option<IdentityPem>, TlsError> {
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                Ok(Some(IdentityPem { cert: read(cert, "tls.cert_file")?, key: read(key, "tls.key_file")? }))
            }
            _ => Ok(None),
        }
    }

    /// Whether the system's roots are trusted: with no `ca_file`, or when asked. Pinning
    /// a private CA with `ca_file` must not also trust every public one.
    pub fn trusts_system_roots(&self) -> bool {
        self.ca_file.is_none() || self.include_system_ca_certs_pool
    }

    /// A rustls client config: `ca_file` or the system roots (or both, as
    /// [`TlsClientConfig::trusts_system_roots`] says), and the client identity.
    /// ALPN is left to the HTTP client, which sets what it speaks.
    pub fn rustls_config(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let roots = self.root_store()?;
        self.rustls_config_with(roots)
    }

    fn root_store(&self) -> Result<rustls::RootCertStore, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        if self.trusts_system_roots() {
            for cert in rustls_native_certs::load_native_certs().certs {
                // A broken system certificate must not stop the others from working.
                let _ = roots.add(cert);
            }
        }
        if let (Some(pem), Some(path)) = (self.read_ca()?, &self.ca_file) {
            let certs = parse_certs(&pem, path, "tls.ca_file")?;
            for cert in certs {
                roots.add(cert)?;
            }
        }
        Ok(roots)
    }

    fn rustls_config_with(&self, roots: rustls::RootCertStore) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versioned =
            rustls::ClientConfig::builder_with_provider(provider.clone()).with_protocol_versions(&self.versions())?;
        let builder = if self.insecure_skip_verify {
            tracing::warn!(
                "tls.insecure_skip_verify: the server's certificate is not checked; anyone on the path can read what is exported."
            );
            versioned.dangerous().with_custom_certificate_verifier(Arc::new(AnyServer(provider.clone())))
        } else {
            versioned.with_root_certificates(roots)
        };
        let config = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                let reloader = CertReloader::new(cert, key, interval(&self.reload_interval), provider)?;
                builder.with_client_cert_resolver(Arc::new(reloader))
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}

/// `insecure_skip_verify`: any certificate is taken for the server's, but the
/// handshake's signatures are still checked, so the session is at least with the
/// holder of that certificate's key.
#[derive(Debug)]
pub(crate) struct AnyServer(pub(crate) Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Server TLS settings (`tls:` under a receiver's protocol), as configtls names them.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    /// PEM certificate chain the server presents. Required with `tls`.
    pub cert_file: PathBuf,
    /// PEM private key of `cert_file`. Required with `tls`.
    pub key_file: PathBuf,
    /// PEM CAs for client certificates: when set, clients must present one (mTLS).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// Read `cert_file` and `key_file` again at the first handshake this long after
    /// they were last read (a renewed certificate, without a restart). Default: never.
    #[serde(default)]
    pub reload_interval: Option<ConfigDuration>,
}

impl TlsServerConfig {
    /// Reads the files and builds a rustls server config that offers `alpn`.
    pub fn rustls_config(&self, alpn: &[&[u8]]) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder =
            rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
        let builder = match &self.client_ca_file {
            Some(path) => {
                let pem = read(path, "tls.client_ca_file")?;
                let mut roots = rustls::RootCertStore::empty();
                for cert in parse_certs(&pem, path, "tls.client_ca_file")? {
                    roots.add(cert)?;
                }
                let verifier =
                    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| TlsError::Verifier(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let reloader = CertReloader::new(&self.cert_file, &self.key_file, interval(&self.reload_interval), provider)?;
        let mut config = builder.with_cert_resolver(Arc::new(reloader));
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// The own certificate and key, read again from their files once `reload_interval`
/// has passed, at the next handshake that needs them (configtls's `reload_interval`:
/// no timer runs). A reload that fails keeps the certificate that works and logs why.
#[derive(Debug)]
pub struct CertReloader {
    cert_file: PathBuf,
    key_file: PathBuf,
    interval: Option<Duration>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// The certificate in use and when to read the files again.
    state: Mutex<(Arc<CertifiedKey>, Instant)>,
}

impl CertReloader {
    pub fn new(
        cert_file: &Path,
        key_file: &Path,
        interval: Option<Duration>,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<CertReloader, TlsError> {
        let key = load_certified_key(cert_file, key_file, &provider)?;
        let next = Instant::now() + interval.unwrap_or_default();
        Ok(CertReloader {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            interval,
            provider,
            state: Mutex::new((key, next)),
        })
    }

    fn current(&self) -> Option<Arc<CertifiedKey>> {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(interval) = self.interval
            && Instant::now() >= state.1
        {
            state.1 = Instant::now() + interval;
            match load_certified_key(&self.cert_file, &self.key_file, &self.provider) {
                Ok(key) => state.0 = key,
                Err(e) => {
                    tracing::warn!(error = %e, "tls.reload_interval: reading the certificate again failed; the one loaded before stays in use.")
                }
            }
        }
        Some(state.0.clone())
    }
}

impl rustls::server::ResolvesServerCert for CertReloader {
    fn resolve(&self, _client_hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

impl rustls::client::ResolvesClientCert for CertReloader {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.current()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn load_certified_key(
    cert_file: &Path,
    key_file: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let cert_pem = read(cert_file, "tls.cert_file")?;
    let certs = parse_certs(&cert_pem, cert_file, "tls.cert_file")?;
    let key_pem = read(key_file, "tls.key_file")?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::Pem {
        what: "tls.key_file",
        path: key_file.to_path_buf(),
        expected: "private key",
    })?;
    let signing_key = provider.key_provider.load_private_key(key)?;
    let key = CertifiedKey::new(certs, signing_key);
    key.keys_match().map_err(TlsError::Rustls)?;
    Ok(Arc::new(key))
}

pub(crate) fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { what, path: path.to_path_buf(), source })
}

fn parse_certs(pem: &[u8], path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem).filter_map(Result::ok).collect();
    if certs.is_empty() {
        return Err(TlsError::Pem { what, path: path.to_path_buf(), expected: "certificate" });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::ResolvesClientCert;

    fn write_pair(dir: &Path, name: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap().self_signed(&key).unwrap();
        std::fs::write(dir.join("c.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("c.key"), key.serialize_pem()).unwrap();
        cert.der().to_vec()
    }

    #[test]
    fn a_client_certificate_is_read_again_after_the_interval_only() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_pair(dir.path(), "first");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("c.key"));
        let fixed = CertReloader::new(&cert, &key, None, provider.clone()).unwrap();
        let reloading = CertReloader::new(&cert, &key, Some(Duration::from_secs(3600)), provider).unwrap();
        let presented = |r: &CertReloader| r.resolve(&[], &[]).unwrap().cert[0].to_vec();
        assert_eq!(presented(&reloading), first);
        let second = write_pair(dir.path(), "second");
        assert_eq!(presented(&reloading), first, "not before the interval");
        // The interval passes.
        reloading.state.lock().unwrap().1 = Instant::now();
        assert_eq!(presented(&reloading), second);
        assert_eq!(presented(&fixed), first, "no reload_interval: never read again");
        // A pair that does not match is refused at start.
        std::fs::write(dir.path().join("other.key"), rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        assert!(CertReloader::new(&cert, &dir.path().join("other.key"), None, provider).is_err());
    }
}
