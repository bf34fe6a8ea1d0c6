//! List + watch of one kind of object, as client-go's reflector does it: list (in
//! pages) to learn every object and the resource version, then watch from that
//! version with bookmarks, resume from the last version seen when a watch ends, and
//! list again when the server says the version is gone (410). Errors are logged and
//! retried with backoff; the caller only ever sees a full list or one change.
//!
//! Between events it sleeps on the socket: no polling.

use std::marker::PhantomData;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use super::client::{KubeClient, KubeError, Lines};
use super::objects::{List, WatchEvent};
pub use crate::net::percent_encode as encode;

/// Objects per list page.
const PAGE: usize = 500;
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long the server keeps a watch open before ending it (client-go picks 5 to 10
/// minutes at random so that agents do not all come back at once).
const WATCH_SECONDS: (u64, u64) = (300, 600);
/// Past the watch's own end, how long a silent stream is trusted before it is taken
/// for a dead connection.
const WATCH_GRACE: Duration = Duration::from_secs(30);
/// A watch that ends sooner than this with nothing on it is taken for a failure (a
/// proxy that closes it), so it is not opened again at once, as client-go does.
const WATCH_MIN_LIFE: Duration = Duration::from_secs(1);
/// Lists again after a 410 at once this many times in a row; then with backoff.
const GONE_AT_ONCE: u32 = 3;

/// What changed.
#[derive(Debug)]
pub enum Update<T> {
    /// Every object there is (after a first list, or a relist): replaces what was known.
    Listed(Vec<T>),
    Added(T),
    Modified(T),
    Deleted(T),
}

pub struct Reflector<T> {
    client: KubeClient,
    /// `/api/v1/pods`.
    path: String,
    /// `fieldSelector=…&labelSelector=…`, encoded; may be empty.
    selectors: String,
    resource_version: Option<String>,
    /// The open watch, when it must end by (its timeout and grace), when it opened and
    /// whether anything came on it.
    watch: Option<OpenWatch>,
    backoff: Duration,
    /// 410s in a row.
    gone: u32,
    errors: Counter,
    _objects: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned + HasVersion> Reflector<T> {
    /// `field_selector` and `label_selector` as the API takes them (`spec.nodeName=n1`).
    pub fn new(client: KubeClient, path: &str, field_selector: &str, label_selector: &str, errors: Counter) -> Self {
        let mut selectors = Vec::new();
        if !field_selector.is_empty() {
            selectors.push(format!("fieldSelector={}", encode(field_selector)));
        }
        if !label_selector.is_empty() {
            selectors.push(format!("labelSelector={}", encode(label_selector)));
        }
        Reflector {
            client,
            path: path.to_string(),
            selectors: selectors.join("&"),
            resource_version: None,
            watch: None,
            backoff: MIN_BACKOFF,
            gone: 0,
            errors,
            _objects: PhantomData,
        }
    }

    /// The next change; waits (without polling) until there is one. Not meant to be
    /// dropped before it answers (a dropped list starts over; run it in a task of its
    /// own when other work must not wait for it).
    pub async fn next(&mut self) -> Update<T> {
        loop {
            match self.step().await {
                Ok(Some(update)) => {
                    self.backoff = MIN_BACKOFF;
                    if !matches!(update, Update::Listed(_)) {
                        self.gone = 0;
                    }
                    return update;
                }
                Ok(None) => {}
                Err(e) => {
                    self.watch = None;
                    if e.is_gone() {
                        // Normal: the server compacted past the version; not an error,
                        // unless it keeps happening.
                        debug!(path = %self.path, "The watch's resource version is gone; listing again.");
                        self.resource_version = None;
                        self.gone += 1;
                        if self.gone <= GONE_AT_ONCE {
                            continue;
                        }
                    }
                    self.errors.inc();
                    warn!(path = %self.path, error = %e, retry_in = ?self.backoff, "Kubernetes list/watch failed; retrying.");
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One list, or one line of the watch: `None` when that line changed nothing.
    async fn step(&mut self) -> Result<Option<Update<T>>, KubeError> {
        let Some(version) = self.resource_version.clone() else {
            let (items, version) = self.list().await?;
            self.resource_version = Some(version);
            return Ok(Some(Update::Listed(items)));
        };
        if self.watch.is_none() {
            let seconds = fastrand::u64(WATCH_SECONDS.0..=WATCH_SECONDS.1);
            let opened = tokio::time::Instant::now();
            let mut query = format!(
                "{}?watch=true&allowWatchBookmarks=true&resourceVersion={}&timeoutSeconds={seconds}",
                self.path,
                encode(&version)
            );
            if !self.selectors.is_empty() {
                query.push('&');
                query.push_str(&self.selectors);
            }
            let lines = self.client.watch(&query).await?;
            let deadline = opened + Duration::from_secs(seconds) + WATCH_GRACE;
            self.watch = Some(OpenWatch { lines, deadline, opened, quiet: true });
        }
        let Some(open) = self.watch.as_mut() else { return Ok(None) };
        let line = match tokio::time::timeout_at(open.deadline, open.lines.next()).await {
            Ok(line) => line?,
            Err(_) => return Err(KubeError::Transport("the watch went silent past its end".into())),
        };
        let Some(line) = line else {
            // The server ended the watch (its timeout): resume from where it was.
            let at_once = open.quiet && open.opened.elapsed() < WATCH_MIN_LIFE;
            self.watch = None;
            if at_once {
                return Err(KubeError::Transport("the watch ended as soon as it opened".into()));
            }
            return Ok(None);
        };
        open.quiet = false;
        let event = WatchEvent::<T>::parse(&line).map_err(|e| KubeError::Decode(e.to_string()))?;
        let (update, version) = match event {
            WatchEvent::Added(o) => {
                let v = o.version().to_string();
                (Some(Update::Added(o)), v)
            }
            WatchEvent::Modified(o) => {
                let v = o.version().to_string();
                (Some(Update::Modified(o)), v)
            }
            WatchEvent::Deleted(o) => {
                let v = o.version().to_string();
                (Some(Update::Deleted(o)), v)
            }
            WatchEvent::Bookmark(v) => (None, v),
            WatchEvent::Undecodable { version, error } => {
                // Skipped and counted; the watch goes on past it.
                self.errors.inc();
                warn!(path = %self.path, %error, "A watched object does not read; it is skipped.");
                (None, version)
            }
            WatchEvent::Error { code, message } => {
                return Err(KubeError::Status { status: code, message: format!("watch {}: {message}", self.path) });
            }
        };
        if !version.is_empty() {
            self.resource_version = Some(version);
        }
        Ok(update)
    }

    async fn list(&self) -> Result<(Vec<T>, String), KubeError> {
        let mut items = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let mut query = format!("{}?limit={PAGE}", self.path);
            if !self.selectors.is_empty() {
                query.push('&');
                query.push_str(&self.selectors);
            }
            if let Some(token) = &next {
                query.push_str("&continue=");
                query.push_str(&encode(token));
            }
            let page: List = self.client.get(&query).await?;
            for item in page.items {
                match T::deserialize(item) {
                    Ok(object) => items.push(object),
                    Err(e) => {
                        self.errors.inc();
                        warn!(path = %self.path, error = %e, "A listed object does not read; it is skipped.");
                    }
                }
            }
            if page.metadata.continue_token.is_empty() {
                return Ok((items, page.metadata.resource_version));
            }
            next = Some(page.metadata.continue_token);
        }
    }
}

struct OpenWatch {
    lines: Lines,
    deadline: tokio::time::Instant,
    opened: tokio::time::Instant,
    /// Nothing came on it yet.
    quiet: bool,
}

/// An object whose resource version a watch resumes from.
pub trait HasVersion {
    fn version(&self) -> &str;
}

impl HasVersion for super::objects::Pod {
    fn version(&self) -> &str {
        &self.metadata.resource_version
    }
}

impl HasVersion for super::objects::Namespace {
    fn version(&self) -> &str {
        &self.metadata.resource_version
    }
}

impl HasVersion for super::objects::Node {
    fn version(&self) -> &str {
        &self.metadata.resource_version
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn selectors_are_percent_encoded() {
        assert_eq!(super::encode("spec.nodeName=node-1,a!=b"), "spec.nodeName%3Dnode-1%2Ca%21%3Db");
    }
}
