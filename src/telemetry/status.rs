//! Component status, as upstream's component-status health reports it: each
//! exporter says how its last export went; the health check's `/status` shows it per
//! pipeline, and a reload's verify window reads it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

/// Upstream's status names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Status {
    #[serde(rename = "StatusStarting")]
    Starting,
    #[serde(rename = "StatusOK")]
    Ok,
    #[serde(rename = "StatusRecoverableError")]
    RecoverableError,
    #[serde(rename = "StatusPermanentError")]
    PermanentError,
}

impl Status {
    pub fn is_error(self) -> bool {
        matches!(self, Status::RecoverableError | Status::PermanentError)
    }
}

/// One component's status, and since when.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub status: Status,
    pub error: Option<String>,
    /// When this status began (a repeat of the same status keeps it).
    pub since: SystemTime,
}

/// Every component's status, by `kind:id` (`exporter:otlp`).
#[derive(Default)]
pub struct Statuses {
    entries: Mutex<BTreeMap<String, Entry>>,
}

impl Statuses {
    pub fn handle(self: &Arc<Statuses>, key: String) -> StatusHandle {
        StatusHandle { statuses: self.clone(), key: Arc::from(key) }
    }

    /// A new instance of `key` starts: what the old one reported no longer counts.
    pub fn reset(&self, key: &str) {
        self.set(key, Status::Starting, None);
    }

    pub fn get(&self, key: &str) -> Option<Entry> {
        self.lock().get(key).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, key: &str, status: Status, error: Option<String>) {
        let mut entries = self.lock();
        match entries.get_mut(key) {
            Some(entry) if entry.status == status => entry.error = error,
            Some(entry) => *entry = Entry { status, error, since: SystemTime::now() },
            None => {
                entries.insert(key.to_string(), Entry { status, error, since: SystemTime::now() });
            }
        }
    }
}

/// What one component reports through.
#[derive(Clone)]
pub struct StatusHandle {
    statuses: Arc<Statuses>,
    key: Arc<str>,
}

impl StatusHandle {
    pub fn ok(&self) {
        self.statuses.set(&self.key, Status::Ok, None);
    }

    /// Failing, and trying again.
    pub fn recoverable(&self, error: &str) {
        self.statuses.set(&self.key, Status::RecoverableError, Some(error.to_string()));
    }

    /// Failing for good: the data was dropped.
    pub fn permanent(&self, error: &str) {
        self.statuses.set(&self.key, Status::PermanentError, Some(error.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_status_keeps_its_start_and_a_reset_forgets_errors() {
        let statuses = Arc::new(Statuses::default());
        let handle = statuses.handle("exporter:otlp".into());
        handle.recoverable("connection refused");
        let first = statuses.get("exporter:otlp").unwrap();
        handle.recoverable("connection reset");
        let second = statuses.get("exporter:otlp").unwrap();
        assert_eq!(first.since, second.since);
        assert_eq!(second.error.as_deref(), Some("connection reset"));
        statuses.reset("exporter:otlp");
        assert_eq!(statuses.get("exporter:otlp").unwrap().status, Status::Starting);
        handle.ok();
        assert_eq!(
            statuses.get("exporter:otlp").unwrap(),
            Entry { error: None, ..statuses.get("exporter:otlp").unwrap() }
        );
        assert!(!statuses.get("exporter:otlp").unwrap().status.is_error());
    }
}
