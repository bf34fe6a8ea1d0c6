//! Listening sockets and the small HTTP server loop shared by the OTLP/HTTP receiver,
//! the health check and the self-metrics endpoint.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use tracing::{debug, warn};

/// `host:port`, `:port` (all interfaces) or `[v6]:port` → something `bind` takes.
/// Percent-encodes a URL path segment or query value: everything but RFC 3986's
/// unreserved characters.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn normalize_endpoint(endpoint: &str) -> Result<String, String> {
    let endpoint = endpoint.trim();
    let Some((host, port)) = endpoint.rsplit_once(':') else {
        return Err(format!("endpoint `{endpoint}` must be host:port, such as 127.0.0.1:4317"));
    };
    if port.parse::<u16>().is_err() {
        return Err(format!("endpoint `{endpoint}` has an invalid port `{port}`"));
    }
    if host.contains("://") || host.contains('/') {
        return Err(format!("endpoint `{endpoint}` must be host:port with no scheme or path"));
    }
    Ok(if host.is_empty() { format!("0.0.0.0:{port}") } else { endpoint.to_string() })
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {endpoint}: {source}")]
pub struct BindError {
    pub endpoint: String,
    #[source]
    pub source: std::io::Error,
}

pub async fn bind(endpoint: &str) -> Result<TcpListener, BindError> {
    let address = normalize_endpoint(endpoint)
        .map_err(|e| BindError { endpoint: endpoint.into(), source: std::io::Error::other(e) })?;
    TcpListener::bind(&address).await.map_err(|source| BindError { endpoint: endpoint.into(), source })
}

/// The listening sockets of a running graph, kept across reloads.
///
/// A component that binds through here (an otlp receiver, a health check) and is
/// restarted by a reload gets the same socket again, not a new one: connections that
/// arrive while the old instance stops and the new one starts wait in the kernel's
/// backlog instead of being refused, and another process cannot take the port in
/// between. Each instance that bound a socket is an owner; the socket closes when its
/// last owner is released. Port 0 (any free port) is never shared.
#[derive(Debug, Default)]
pub struct Listeners {
    held: std::sync::Mutex<Vec<Held>>,
}

#[derive(Debug)]
struct Held {
    address: SocketAddr,
    socket: std::net::TcpListener,
    owners: Vec<u64>,
}

impl Listeners {
    /// Binds `endpoint` for `owner`, or shares the socket already bound there.
    /// Resolving a host name blocks briefly (endpoints are addresses or `localhost`).
    pub fn bind(&self, owner: u64, endpoint: &str) -> Result<TcpListener, BindError> {
        use std::net::ToSocketAddrs;
        let fail = |source: std::io::Error| BindError { endpoint: endpoint.into(), source };
        let address = normalize_endpoint(endpoint).map_err(|e| fail(std::io::Error::other(e)))?;
        let resolved: Vec<SocketAddr> = address.to_socket_addrs().map_err(fail)?.collect();
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let socket = match held.iter_mut().find(|h| resolved.contains(&h.address)) {
            Some(h) => {
                let socket = h.socket.try_clone().map_err(fail)?;
                h.owners.push(owner);
                socket
            }
            None => {
                let socket = std::net::TcpListener::bind(resolved.as_slice()).map_err(fail)?;
                let address = socket.local_addr().map_err(fail)?;
                if !resolved.iter().any(|r| r.port() == 0) {
                    held.push(Held { address, socket: socket.try_clone().map_err(fail)?, owners: vec![owner] });
                }
                socket
            }
        };
        socket.set_nonblocking(true).map_err(fail)?;
        TcpListener::from_std(socket).map_err(fail)
    }

    /// `owner` no longer uses its sockets; those nobody else uses close (once the
    /// instance's own copy closes too).
    pub fn release(&self, owner: u64) {
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for h in held.iter_mut() {
            h.owners.retain(|o| *o != owner);
        }
        held.retain(|h| !h.owners.is_empty());
    }

    /// How many sockets are held.
    pub fn len(&self) -> usize {
        self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One component instance's way to its sockets: through the graph's [`Listeners`].
#[derive(Clone, Copy, Debug)]
pub struct Owner<'a> {
    pub listeners: &'a Listeners,
    pub instance: u64,
}

impl Owner<'_> {
    pub fn bind(&self, endpoint: &str) -> Result<TcpListener, BindError> {
        self.listeners.bind(self.instance, endpoint)
    }
}

pub type HttpResponse = Response<Full<Bytes>>;

/// How long a client gets to finish the TLS handshake.
pub(crate) const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

/// How long open connections get to finish their requests at shutdown.
const CONNECTION_DRAIN: Duration = Duration::from_secs(5);

/// A failed `accept` (out of file descriptors, say) is logged at most this often.
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

/// What bounds one HTTP server's connections. Upstream's confighttp names for the
/// timeouts; upstream's defaults are 0 (none) for the OTLP receiver and health_check,
/// which lets a client hold a connection (and a file descriptor) forever with
/// unfinished headers, so ocelot's are not.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ServerLimits {
    /// A new connection must send a complete request head within this (including the
    /// TLS handshake and HTTP version detection). Zero: no limit.
    pub read_header_timeout: Duration,
    /// A connection with no request in flight for this long is closed. Zero: no limit.
    pub idle_timeout: Duration,
    /// Connections open at once; past it, new ones wait in the kernel's backlog.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            read_header_timeout: DEFAULT_READ_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

pub const DEFAULT_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Admin endpoints (health, self-metrics) take few connections; their own small cap
/// keeps them from taking a flood's file descriptors, and a flood elsewhere from
/// taking theirs.
pub const ADMIN_MAX_CONNECTIONS: usize = 64;

pub(crate) fn default_read_header_timeout() -> crate::config::ConfigDuration {
    crate::config::ConfigDuration(DEFAULT_READ_HEADER_TIMEOUT)
}
pub(crate) fn default_idle_timeout() -> crate::config::ConfigDuration {
    crate::config::ConfigDuration(DEFAULT_IDLE_TIMEOUT)
}
pub(crate) fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}

/// Serves HTTP/1.1 and HTTP/2 on `listener` until `cancel`, then lets open
/// connections finish (bounded by [`CONNECTION_DRAIN`]).
pub async fn serve_http<H, F>(listener: TcpListener, limits: ServerLimits, handler: H, cancel: CancellationToken)
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    serve_https(listener, None, limits, handler, cancel).await
}

/// When a connection is due to be closed: requests in flight, and the deadline that
/// applies while there are none (the first request head's, then the idle one).
struct ConnectionClock {
    in_flight: std::sync::atomic::AtomicUsize,
    /// Set once the first request starts: until then the connection is fresh.
    used: std::sync::atomic::AtomicBool,
    fresh: Arc<Fresh>,
    /// Milliseconds since `opened` at which an idle connection is closed; `u64::MAX`:
    /// never.
    deadline_ms: std::sync::atomic::AtomicU64,
    opened: tokio::time::Instant,
    notify: tokio::sync::Notify,
}

/// Connections accepted whose first request has not started. A server that stops
/// (at shutdown, or replaced by a reload on the same socket) lets them start it
/// before closing what is idle, so a client that connected just before the stop gets
/// its answer instead of a closed connection.
#[derive(Default)]
struct Fresh {
    count: std::sync::atomic::AtomicUsize,
    notify: tokio::sync::Notify,
}

impl Fresh {
    fn done(&self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.notify.notify_waiters();
        }
    }

    /// Resolves once no connection is fresh.
    async fn settled(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// How long a stopping server waits for fresh connections' first requests.
const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

impl ConnectionClock {
    fn mark_used(&self) {
        if !self.used.swap(true, Ordering::AcqRel) {
            self.fresh.done();
        }
    }
}

impl Drop for ConnectionClock {
    fn drop(&mut self) {
        self.mark_used();
    }
}

impl ConnectionClock {
    fn new(first: Duration, fresh: &Arc<Fresh>) -> Arc<ConnectionClock> {
        fresh.count.fetch_add(1, Ordering::AcqRel);
        let clock = ConnectionClock {
            in_flight: 0.into(),
            used: false.into(),
            fresh: fresh.clone(),
            deadline_ms: u64::MAX.into(),
            opened: tokio::time::Instant::now(),
            notify: tokio::sync::Notify::new(),
        };
        clock.set_deadline(first);
        Arc::new(clock)
    }

    fn set_deadline(&self, after: Duration) {
        let at = if after.is_zero() {
            u64::MAX
        } else {
            (self.opened.elapsed() + after).as_millis().min(u128::from(u64::MAX - 1)) as u64
        };
        self.deadline_ms.store(at, Ordering::Release);
    }

    /// Resolves once the connection has had no request in flight past its deadline.
    /// While a request is in flight it waits for the last one to end (which sets the
    /// idle deadline and notifies), never on a deadline already past.
    async fn expired(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let at = self.deadline_ms.load(Ordering::Acquire);
            if self.in_flight.load(Ordering::Acquire) > 0 || at == u64::MAX {
                notified.await;
                continue;
            }
            let deadline = self.opened + Duration::from_millis(at);
            tokio::select! {
                _ = &mut notified => continue,
                _ = tokio::time::sleep_until(deadline) => {}
            }
            if self.in_flight.load(Ordering::Acquire) == 0 && self.deadline_ms.load(Ordering::Acquire) == at {
                return;
            }
        }
    }
}

/// Counts a request in flight on its connection; when the last one ends the idle
/// deadline starts.
struct InFlight {
    clock: Arc<ConnectionClock>,
    idle_timeout: Duration,
}

impl InFlight {
    fn start(clock: &Arc<ConnectionClock>, idle_timeout: Duration) -> InFlight {
        clock.in_flight.fetch_add(1, Ordering::AcqRel);
        clock.mark_used();
        InFlight { clock: clock.clone(), idle_timeout }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.clock.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.clock.set_deadline(self.idle_timeout);
            self.clock.notify.notify_one();
        }
    }
}

/// [`serve_http`], with TLS when `tls` is given. The handshake runs in the
/// connection's own task, so a slow client cannot stall `accept`. A connection slot is
/// taken before `accept`, so at most `max_connections` are open at once.
pub async fn serve_https<H, F>(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ServerLimits,
    handler: H,
    cancel: CancellationToken,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut last_accept_error: Option<tokio::time::Instant> = None;
    // Connection tasks are owned here, so none outlives the server: a connection still
    // open after the drain is aborted, and with it the handler's hold on the pipelines.
    let mut connections = tokio::task::JoinSet::new();
    let fresh = Arc::new(Fresh::default());
    loop {
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: say so (not on every
                    // attempt), wait a little, keep serving.
                    if last_accept_error.is_none_or(|at| at.elapsed() >= ACCEPT_ERROR_LOG_EVERY) {
                        last_accept_error = Some(tokio::time::Instant::now());
                        let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
                        warn!(endpoint = %local, error = %e, "Cannot accept connections; retrying (logged every 10s).");
                    }
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                    continue;
                }
            },
        };
        let clock = ConnectionClock::new(limits.read_header_timeout, &fresh);
        let service_clock = clock.clone();
        let handler = handler.clone();
        let idle_timeout = limits.idle_timeout;
        let service = hyper::service::service_fn(move |request| {
            let in_flight = InFlight::start(&service_clock, idle_timeout);
            let response = handler(request, peer);
            async move {
                let response = response.await;
                drop(in_flight);
                Ok::<_, Infallible>(response)
            }
        });
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let _slot = slot;
            let serve = async {
                match tls {
                    None => {
                        let connection = builder.serve_connection(TokioIo::new(stream), service);
                        watcher.watch(connection.into_owned()).await
                    }
                    Some(acceptor) => {
                        let stream = match tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => {
                                debug!(%peer, error = %e, "TLS handshake failed");
                                return Ok(());
                            }
                            Err(_) => {
                                debug!(%peer, "TLS handshake timed out");
                                return Ok(());
                            }
                        };
                        let connection = builder.serve_connection(TokioIo::new(stream), service);
                        watcher.watch(connection.into_owned()).await
                    }
                }
            };
            // With no request in flight past its deadline (unfinished headers, or
            // idle), the connection is dropped: nothing of it is lost.
            let result = tokio::select! {
                result = serve => result,
                _ = clock.expired() => {
                    debug!(%peer, "connection closed: no complete request, or idle, past its timeout");
                    Ok(())
                }
            };
            if let Err(e) = result {
                debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(FIRST_REQUEST_GRACE, fresh.settled()).await;
    let _ = tokio::time::timeout(CONNECTION_DRAIN, graceful.shutdown()).await;
    connections.shutdown().await;
}

/// Request bodies at least this large are inflated and decoded off the runtime's
/// worker threads, so a few big requests cannot stall every other connection (health
/// checks, self-metrics, small requests).
pub const OFFLOAD_BYTES: usize = 256 << 10;

/// Big bodies decoded at once, one per core; the rest wait their turn.
static DECODE_SLOTS: std::sync::LazyLock<std::sync::Arc<tokio::sync::Semaphore>> = std::sync::LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::sync::Arc::new(tokio::sync::Semaphore::new(cores))
});

/// Runs `work` (inflating, decoding) inline for a body under [`OFFLOAD_BYTES`], else
/// on the blocking pool once a decode slot is free. `None` if the work panicked.
pub async fn decode_off_runtime<T: Send + 'static>(
    size: usize,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    if size < OFFLOAD_BYTES {
        return Some(work());
    }
    // The slot goes with the work: a request dropped meanwhile does not free it early.
    let slot = DECODE_SLOTS.clone().acquire_owned().await.ok()?;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        work()
    })
    .await
    .ok()
}

#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    #[error("the body inflates past the size limit")]
    TooLarge,
    #[error("unsupported Content-Encoding")]
    Unsupported,
    #[error("corrupt compressed body: {0}")]
    Corrupt(std::io::Error),
}

/// Inflates a request body by its `Content-Encoding` (`gzip`, `zstd`, or none),
/// reading at most `limit` bytes of output, so a small bomb cannot grow past it.
pub fn decompress_body(encoding: &str, body: Bytes, limit: usize) -> Result<Bytes, DecompressError> {
    use std::io::Read;
    let reader: Box<dyn Read> = match encoding {
        "" | "identity" => return Ok(body),
        "gzip" => Box::new(flate2::read::MultiGzDecoder::new(&body[..])),
        "zstd" => Box::new(zstd::stream::read::Decoder::new(&body[..]).map_err(DecompressError::Corrupt)?),
        _ => return Err(DecompressError::Unsupported),
    };
    // Read one byte past the limit to tell "exactly at the limit" from "over it".
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    reader.take(limit as u64 + 1).read_to_end(&mut out).map_err(DecompressError::Corrupt)?;
    if out.len() > limit {
        return Err(DecompressError::TooLarge);
    }
    Ok(Bytes::from(out))
}

pub fn text_response(status: http::StatusCode, body: impl Into<Bytes>) -> HttpResponse {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {

    #[tokio::test]
    async fn listeners_share_a_socket_until_the_last_owner_releases_it() {
        let pool = super::Listeners::default();
        let first = pool.bind(1, "127.0.0.1:0").unwrap();
        assert!(pool.is_empty(), "port 0 is never shared");
        let endpoint = first.local_addr().unwrap().to_string();
        drop(first);
        let a = pool.bind(1, &endpoint).unwrap();
        // A second instance gets the same socket, not EADDRINUSE.
        let b = pool.bind(2, &endpoint).unwrap();
        assert_eq!(pool.len(), 1);
        drop(a);
        pool.release(1);
        let client = tokio::net::TcpStream::connect(&endpoint).await.unwrap();
        let (_accepted, peer) = b.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        drop(b);
        pool.release(2);
        assert!(pool.is_empty());
        assert!(tokio::net::TcpStream::connect(&endpoint).await.is_err(), "closed with its last owner");
    }
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(normalize_endpoint(":4317").unwrap(), "0.0.0.0:4317");
        assert_eq!(normalize_endpoint("localhost:4317").unwrap(), "localhost:4317");
        assert_eq!(normalize_endpoint("[::1]:4317").unwrap(), "[::1]:4317");
        assert!(normalize_endpoint("4317").is_err());
        assert!(normalize_endpoint("http://x:1").is_err());
        assert!(normalize_endpoint("x:99999").is_err());
    }
}
