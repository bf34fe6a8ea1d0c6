//! The `pprof` extension, as upstream's paths: a CPU profile of the agent in pprof's
//! protobuf format at `/debug/pprof/profile?seconds=N` (what `go tool pprof` and
//! `pprof` read; sampled at 99 Hz by SIGPROF, nothing runs between requests), the
//! allocator's heap figures at `/debug/pprof/heap`, the command line at
//! `/debug/pprof/cmdline`, and with `save_to_file` a profile of the whole run written
//! at shutdown. Go's runtime profiles (goroutine, block, mutex, trace) have no
//! counterpart here and answer 404 saying so.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::component::Validate;
use crate::net;

pub const TYPE: &str = "pprof";

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PprofConfig {
    /// Address to listen on. Default `localhost:1777`, as upstream.
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// Go's block profile rate: only 0 (off) is accepted, ocelot has no such profile.
    #[serde(default)]
    pub block_profile_fraction: i64,
    /// Go's mutex profile fraction: only 0 (off) is accepted.
    #[serde(default)]
    pub mutex_profile_fraction: i64,
    /// Profile the CPU from start to shutdown and write it here (pprof format).
    #[serde(default)]
    pub save_to_file: Option<PathBuf>,
}

impl Default for PprofConfig {
    fn default() -> Self {
        PprofConfig {
            endpoint: default_endpoint(),
            block_profile_fraction: 0,
            mutex_profile_fraction: 0,
            save_to_file: None,
        }
    }
}

fn default_endpoint() -> String {
    "localhost:1777".into()
}

impl Validate for PprofConfig {
    fn validate(&self) -> Result<(), String> {
        if self.block_profile_fraction != 0 || self.mutex_profile_fraction != 0 {
            return Err("block_profile_fraction and mutex_profile_fraction set Go's runtime profiles, which ocelot does not have; leave them 0".into());
        }
        if self.save_to_file.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err("save_to_file must not be empty".into());
        }
        Ok(())
    }
}

/// Samples a second of CPU time, as Go's default rate is near.
const FREQUENCY: i32 = 99;
/// Go's default profile length, and the longest asked for.
const DEFAULT_SECONDS: u64 = 30;
const MAX_SECONDS: u64 = 600;
/// Frames in libraries whose unwinding in a signal handler is not safe.
const BLOCKLIST: &[&str] = &["libc", "libgcc", "pthread", "vdso"];

fn profiler() -> Result<pprof::ProfilerGuard<'static>, String> {
    pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY)
        .blocklist(BLOCKLIST)
        .build()
        .map_err(|e| format!("cannot start the profiler: {e}"))
}

/// The profile so far, as gzipped pprof protobuf (what Go's endpoint serves).
fn encode(guard: &pprof::ProfilerGuard<'static>) -> Result<Vec<u8>, String> {
    use pprof::protos::Message;
    let report = guard.report().build().map_err(|e| format!("building the report: {e}"))?;
    let profile = report.pprof().map_err(|e| format!("encoding the profile: {e}"))?;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&profile.encode_to_vec()).and_then(|_| encoder.finish()).map_err(|e| format!("gzip: {e}"))
}

/// The allocator's own figures (mimalloc), and the process's.
fn heap() -> String {
    let mut v = [0usize; 8];
    let [elapsed, user, system, rss, peak_rss, commit, peak_commit, faults] = &mut v;
    // SAFETY: mi_process_info only writes the eight numbers it is given pointers to.
    unsafe { libmimalloc_sys::mi_process_info(elapsed, user, system, rss, peak_rss, commit, peak_commit, faults) };
    format!(
        "# ocelot heap (mimalloc); no sampled heap profile is kept\n\
         current_rss_bytes {}\npeak_rss_bytes {}\ncurrent_commit_bytes {}\npeak_commit_bytes {}\n\
         page_faults {}\nuser_cpu_milliseconds {}\nsystem_cpu_milliseconds {}\nelapsed_milliseconds {}\n",
        v[3], v[4], v[5], v[6], v[7], v[1], v[2], v[0]
    )
}

fn seconds(query: Option<&str>) -> Result<u64, String> {
    let value = query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("seconds="))
        .map(|s| s.parse::<u64>().map_err(|_| format!("seconds `{s}` is not a whole number")))
        .transpose()?
        .unwrap_or(DEFAULT_SECONDS);
    if !(1..=MAX_SECONDS).contains(&value) {
        return Err(format!("seconds must be between 1 and {MAX_SECONDS}"));
    }
    Ok(value)
}

const INDEX: &str = "ocelot pprof\n\n/debug/pprof/profile?seconds=N  CPU profile, pprof protobuf (gzip)\n/debug/pprof/heap               allocator figures\n/debug/pprof/cmdline            the command line\n";

async fn handle(request: hyper::Request<hyper::body::Incoming>, file_profile: bool) -> net::HttpResponse {
    use http::StatusCode;
    match request.uri().path() {
        "/debug/pprof" | "/debug/pprof/" => net::text_response(StatusCode::OK, INDEX),
        "/debug/pprof/heap" | "/debug/pprof/allocs" => net::text_response(StatusCode::OK, heap()),
        "/debug/pprof/cmdline" => net::text_response(StatusCode::OK, std::env::args().collect::<Vec<_>>().join("\0")),
        "/debug/pprof/profile" => {
            if file_profile {
                return net::text_response(
                    StatusCode::CONFLICT,
                    "save_to_file is profiling the whole run; one profile runs at a time\n",
                );
            }
            let seconds = match seconds(request.uri().query()) {
                Ok(s) => s,
                Err(e) => return net::text_response(StatusCode::BAD_REQUEST, format!("{e}\n")),
            };
            let guard = match profiler() {
                Ok(guard) => guard,
                Err(e) => {
                    return net::text_response(StatusCode::CONFLICT, format!("{e} (one profile runs at a time)\n"));
                }
            };
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            let encoded = tokio::task::spawn_blocking(move || encode(&guard)).await;
            match encoded {
                Ok(Ok(body)) => {
                    let mut response = net::text_response(StatusCode::OK, body);
                    let headers = response.headers_mut();
                    headers
                        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/octet-stream"));
                    headers.insert(
                        http::header::CONTENT_DISPOSITION,
                        http::HeaderValue::from_static("attachment; filename=\"profile\""),
                    );
                    response
                }
                Ok(Err(e)) => net::text_response(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
                Err(e) => net::text_response(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
            }
        }
        "/debug/pprof/goroutine"
        | "/debug/pprof/block"
        | "/debug/pprof/mutex"
        | "/debug/pprof/threadcreate"
        | "/debug/pprof/trace"
        | "/debug/pprof/symbol" => net::text_response(
            StatusCode::NOT_FOUND,
            "a Go runtime profile: ocelot has none; see /debug/pprof/ for what it serves\n",
        ),
        _ => net::text_response(StatusCode::NOT_FOUND, "not found; see /debug/pprof/\n"),
    }
}

/// Serves the endpoints until `cancel`; with `save_to_file`, profiles the whole run
/// and writes the profile when it ends.
pub async fn serve(config: PprofConfig, listener: tokio::net::TcpListener, cancel: CancellationToken) {
    let whole_run = match &config.save_to_file {
        Some(path) => match profiler() {
            Ok(guard) => Some((path.clone(), guard)),
            Err(e) => {
                tracing::error!(error = %e, "pprof: save_to_file cannot profile this run.");
                None
            }
        },
        None => None,
    };
    let file_profile = whole_run.is_some();
    let handler = move |request, _peer| handle(request, file_profile);
    let limits = net::ServerLimits {
        read_header_timeout: net::default_read_header_timeout().0,
        idle_timeout: net::default_idle_timeout().0,
        max_connections: net::ADMIN_MAX_CONNECTIONS,
    };
    net::serve_http(listener, limits, handler, cancel).await;
    if let Some((path, guard)) = whole_run {
        let written = tokio::task::spawn_blocking(move || {
            let body = encode(&guard)?;
            std::fs::write(&path, body).map_err(|e| format!("{}: {e}", path.display()))
        })
        .await;
        match written {
            Ok(Ok(())) => tracing::info!("pprof: the run's CPU profile is written (save_to_file)."),
            Ok(Err(e)) => tracing::error!(error = %e, "pprof: writing save_to_file failed."),
            Err(e) => tracing::error!(error = %e, "pprof: writing save_to_file failed."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_default_to_thirty_and_are_bounded() {
        assert_eq!(seconds(None), Ok(30));
        assert_eq!(seconds(Some("debug=1&seconds=5")), Ok(5));
        assert!(seconds(Some("seconds=0")).is_err());
        assert!(seconds(Some("seconds=601")).is_err());
        assert!(seconds(Some("seconds=x")).unwrap_err().contains("whole number"));
    }

    #[test]
    fn go_runtime_fractions_are_refused() {
        let c = PprofConfig { mutex_profile_fraction: 5, ..PprofConfig::default() };
        assert!(c.validate().unwrap_err().contains("Go's runtime"));
        assert!(PprofConfig::default().validate().is_ok());
    }

    #[test]
    fn heap_figures_come_from_the_allocator() {
        let text = heap();
        let rss: u64 =
            text.lines().find_map(|l| l.strip_prefix("current_rss_bytes ")).and_then(|v| v.parse().ok()).unwrap_or(0);
        assert!(rss > 0, "{text}");
    }
}
