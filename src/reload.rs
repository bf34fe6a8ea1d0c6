//! Reloading the config while the agent runs: what asks for it (SIGHUP,
//! `--watch-config`, `POST /-/reload`), the answer a reload gives, and the running
//! config as `GET /-/config` shows it.

use std::collections::BTreeSet;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};

use crate::pipeline::Changes;
use crate::registry::Config;
use crate::telemetry::ReloadResult;

/// What asked for a reload, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Signal,
    Watch,
    Http,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Signal => "SIGHUP",
            Trigger::Watch => "--watch-config",
            Trigger::Http => "POST /-/reload",
        }
    }
}

pub struct Request {
    pub trigger: Trigger,
    /// Where the answer goes, when someone waits for it.
    pub reply: Option<oneshot::Sender<Answer>>,
}

/// A reload's outcome, as `POST /-/reload` answers it (JSON).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Answer {
    pub result: ReloadResult,
    /// Why it failed or was rolled back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The hash of the config running now.
    pub hash: String,
    /// What the reload did, node by node (on success).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
}

/// The running config, and as shown.
struct Shown {
    config: Arc<Config>,
    yaml: String,
    hash: String,
    loaded_at: SystemTime,
}

/// The admin endpoints' handle on reloads: ask for one, see what runs.
#[derive(Clone)]
pub struct Control {
    requests: mpsc::Sender<Request>,
    shown: Arc<RwLock<Shown>>,
    started_at: SystemTime,
}

impl Control {
    pub fn new(config: &Arc<Config>) -> (Control, mpsc::Receiver<Request>) {
        let (requests, rx) = mpsc::channel(8);
        let started_at = SystemTime::now();
        let shown = Arc::new(RwLock::new(shown(config, started_at)));
        (Control { requests, shown, started_at }, rx)
    }

    /// The running config.
    pub fn config(&self) -> Arc<Config> {
        self.shown.read().unwrap_or_else(PoisonError::into_inner).config.clone()
    }

    /// When the running config was loaded.
    pub fn loaded_at(&self) -> SystemTime {
        self.shown.read().unwrap_or_else(PoisonError::into_inner).loaded_at
    }

    /// When the agent started.
    pub fn started_at(&self) -> SystemTime {
        self.started_at
    }

    /// Asks for a reload and waits for its outcome; `None` when the agent is stopping.
    pub async fn reload(&self, trigger: Trigger) -> Option<Answer> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(Request { trigger, reply: Some(reply) }).await.ok()?;
        answer.await.ok()
    }

    /// Asks for a reload without waiting (a signal, a file change).
    pub fn request(&self, trigger: Trigger) {
        // A full queue already holds a reload that reads the files afresh.
        let _ = self.requests.try_send(Request { trigger, reply: None });
    }

    /// `config` runs from now on.
    pub fn running(&self, config: &Arc<Config>, since: SystemTime) {
        *self.shown.write().unwrap_or_else(PoisonError::into_inner) = shown(config, since);
    }

    /// The running config as YAML, secrets masked, with its hash and load time in a
    /// leading comment; and the hash alone.
    pub fn show(&self) -> (String, String) {
        let shown = self.shown.read().unwrap_or_else(PoisonError::into_inner);
        let loaded = jiff::Timestamp::try_from(shown.loaded_at).map(|t| t.to_string()).unwrap_or_default();
        (format!("# hash: {}\n# loaded: {loaded}\n{}", shown.hash, shown.yaml), shown.hash.clone())
    }
}

fn shown(config: &Arc<Config>, loaded_at: SystemTime) -> Shown {
    Shown {
        config: config.clone(),
        yaml: config.document.to_yaml(&is_secret),
        hash: config.fingerprint.to_string(),
        loaded_at,
    }
}

/// Keys whose values `GET /-/config` masks: passwords, tokens, keys and the headers
/// that carry credentials.
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    const PARTS: &[&str] = &["password", "secret", "token", "api_key", "apikey", "api-key", "authorization", "cookie"];
    PARTS.iter().any(|p| key.contains(p)) || key == "key_pem" || key.ends_with("_key")
}

/// How long the config files must be quiet after a change before they are read: an
/// editor's save or a ConfigMap update is several events.
pub const WATCH_DEBOUNCE: Duration = Duration::from_millis(500);

/// Watches the config files for `--watch-config`; runs until the process ends.
pub struct Watch {
    _thread: std::thread::JoinHandle<()>,
}

/// Watches the directories of `paths` (and of where they link to): a write, a file
/// moved or created in place, or a Kubernetes ConfigMap's `..data` link swapped. Once
/// quiet for [`WATCH_DEBOUNCE`], the files are read and a reload is asked for only if
/// their contents changed. It wakes on nothing else: reading the files is not an event
/// it listens to.
pub fn watch(paths: &[PathBuf], control: Control) -> anyhow::Result<Watch> {
    use anyhow::Context;
    use inotify::{Inotify, WatchMask};
    if paths.is_empty() {
        anyhow::bail!("--watch-config needs --config files to watch (the embedded default never changes)");
    }
    let inotify = Inotify::init().context("--watch-config: inotify")?;
    let mut dirs = BTreeSet::new();
    for path in paths {
        dirs.insert(parent_of(path));
        if let Ok(target) = std::fs::canonicalize(path) {
            dirs.insert(parent_of(&target));
        }
    }
    let mask = WatchMask::CLOSE_WRITE
        | WatchMask::MOVED_TO
        | WatchMask::MOVED_FROM
        | WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF;
    for dir in &dirs {
        inotify.watches().add(dir, mask).with_context(|| format!("--watch-config: cannot watch {}", dir.display()))?;
    }
    let paths = paths.to_vec();
    let thread = std::thread::Builder::new()
        .name("watch config".into())
        .spawn(move || watch_loop(inotify, &paths, &control))
        .context("--watch-config: cannot start its thread")?;
    tracing::info!(directories = dirs.len(), "Watching the config files for changes.");
    Ok(Watch { _thread: thread })
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn watch_loop(mut inotify: inotify::Inotify, paths: &[PathBuf], control: &Control) {
    let contents = || paths.iter().map(|p| std::fs::read(p).ok()).collect::<Vec<_>>();
    let mut seen = contents();
    let mut buffer = [0u8; 4096];
    loop {
        if let Err(e) = inotify.read_events_blocking(&mut buffer) {
            tracing::warn!(error = %e, "Watching the config files failed; SIGHUP and POST /-/reload still reload.");
            return;
        }
        // Quiet for the debounce time: everything the change consists of has landed.
        loop {
            let mut fd = libc::pollfd { fd: inotify.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd, for the duration of the call.
            let ready = unsafe { libc::poll(&mut fd, 1, WATCH_DEBOUNCE.as_millis() as libc::c_int) };
            if ready <= 0 {
                break;
            }
            let _ = inotify.read_events(&mut buffer);
        }
        let now = contents();
        if now != seen {
            seen = now;
            tracing::info!("A config file changed.");
            control.request(Trigger::Watch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_secret;

    #[test]
    fn credentials_are_secret_and_paths_are_not() {
        for key in ["password", "bearer_token", "Authorization", "X-Api-Key", "key_pem", "client_secret", "private_key"]
        {
            assert!(is_secret(key), "{key}");
        }
        for key in ["key_file", "cert_file", "endpoint", "username", "ca_pem", "keys", "key"] {
            assert!(!is_secret(key), "{key}");
        }
    }
}
