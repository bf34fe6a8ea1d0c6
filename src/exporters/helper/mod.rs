//! What every exporter shares, written once: the sending queue (a bounded channel),
//! its consumers, retry with exponential backoff and jitter, the per-attempt timeout,
//! acknowledgements and the exporter self-metrics. An exporter only implements
//! [`Export`]: "push this payload, say whether a failure is worth retrying".

mod retry;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, warn};

pub use retry::RetryConfig;

use crate::config::ComponentId;
use crate::pdata::{Batch, Payload};
use crate::telemetry::ExporterMetrics;

/// Why an export failed, decided where the failure is born.
#[derive(Debug, Clone, Default, thiserror::Error)]
#[error("{message}")]
pub struct ExportError {
    pub retryable: bool,
    /// The server's own wait hint (`Retry-After`), if it gave one.
    pub retry_after: Option<Duration>,
    pub message: String,
    /// The exporter has already logged it (throttled its own way): not logged again.
    pub logged: bool,
}

impl ExportError {
    pub fn retryable(message: impl Into<String>) -> ExportError {
        ExportError { retryable: true, message: message.into(), ..ExportError::default() }
    }

    /// Retryable, after at least `retry_after` when the server said so.
    pub fn retry_after(message: impl Into<String>, retry_after: Option<Duration>) -> ExportError {
        ExportError { retryable: true, retry_after, message: message.into(), logged: false }
    }

    pub fn permanent(message: impl Into<String>) -> ExportError {
        ExportError { message: message.into(), ..ExportError::default() }
    }
}

/// One exporter's "push this batch".
pub trait Export: Send + Sync + 'static {
    fn export(&self, payload: &Payload) -> impl Future<Output = Result<(), ExportError>> + Send;
}

/// `sending_queue`, as upstream's exporterhelper names it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// With `false`, the pipeline waits for each export (a queue of one batch).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Exports running at once. Default 10.
    #[serde(default = "default_num_consumers")]
    pub num_consumers: usize,
    /// Batches waiting to be exported; when full, the pipeline waits (backpressure)
    /// and receivers refuse new data. Default 1000.
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig { enabled: true, num_consumers: default_num_consumers(), queue_size: default_queue_size() }
    }
}

impl QueueConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_QUEUE_SIZE).contains(&self.queue_size) {
            return Err(format!("sending_queue.queue_size must be between 1 and {MAX_QUEUE_SIZE}"));
        }
        if !(1..=MAX_CONSUMERS).contains(&self.num_consumers) {
            return Err(format!("sending_queue.num_consumers must be between 1 and {MAX_CONSUMERS}"));
        }
        Ok(())
    }

    fn capacity(&self) -> usize {
        if self.enabled { self.queue_size } else { 1 }
    }

    fn consumers(&self) -> usize {
        if self.enabled { self.num_consumers } else { 1 }
    }
}

/// Batches one queue may hold; a bound on memory as much as a sanity check.
const MAX_QUEUE_SIZE: usize = 1_000_000;
/// Exports one exporter may run at once.
const MAX_CONSUMERS: usize = 10_000;

pub(crate) fn default_true() -> bool {
    true
}
fn default_num_consumers() -> usize {
    10
}
fn default_queue_size() -> usize {
    1000
}

/// How a running exporter is wired into the graph.
pub struct ExporterSettings {
    pub id: ComponentId,
    pub queue: QueueConfig,
    pub retry: RetryConfig,
    /// Per-attempt timeout; `None` for exporters that cannot hang (debug, file).
    pub timeout: Option<Duration>,
    pub metrics: ExporterMetrics,
    /// Cancelled when the shutdown deadline passes: stop retrying, drop what is left.
    pub give_up: CancellationToken,
}

/// Starts the queue and its consumers; returns the queue's sending end. The exporter
/// finishes once every sender is dropped and the queue is drained.
pub fn spawn<E: Export>(exporter: E, settings: ExporterSettings, tracker: &TaskTracker) -> mpsc::Sender<Batch> {
    let (tx, rx) = mpsc::channel(settings.queue.capacity());
    settings.metrics.queue_capacity.set(settings.queue.capacity() as i64);
    let inner = tracker.clone();
    tracker.spawn(dispatch(Arc::new(exporter), Arc::new(settings), rx, inner));
    tx
}

async fn dispatch<E: Export>(
    exporter: Arc<E>,
    settings: Arc<ExporterSettings>,
    mut rx: mpsc::Receiver<Batch>,
    tracker: TaskTracker,
) {
    let consumers = settings.queue.consumers();
    let slots = Arc::new(Semaphore::new(consumers));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        // Take a consumer slot before a batch, so a waiting batch stays counted in the queue.
        let slot = tokio::select! {
            biased;
            slot = slots.clone().acquire_owned() => slot,
            _ = tick.tick() => {
                settings.metrics.queue_size.set(rx.len() as i64);
                continue;
            }
        };
        let Ok(slot) = slot else { break };
        let batch = tokio::select! {
            biased;
            batch = rx.recv() => batch,
            _ = tick.tick() => {
                settings.metrics.queue_size.set(rx.len() as i64);
                continue;
            }
        };
        let Some(batch) = batch else { break };
        settings.metrics.queue_size.set(rx.len() as i64);
        let exporter = exporter.clone();
        let settings = settings.clone();
        tracker.spawn(async move {
            send_with_retry(exporter.as_ref(), batch, &settings).await;
            drop(slot);
        });
    }
    settings.metrics.queue_size.set(0);
    // Wait for the exports in flight before saying this exporter is done.
    let _all = slots.acquire_many(consumers as u32).await;
}

async fn send_with_retry<E: Export>(exporter: &E, batch: Batch, settings: &ExporterSettings) {
    let items = batch.payload.item_count() as u64;
    let signal = batch.signal();
    let id = &settings.id;
    let started = Instant::now();
    let mut backoff = settings.retry.backoff();
    loop {
        if settings.give_up.is_cancelled() {
            settings.metrics.send_failed(signal).inc_by(items);
            batch.fail();
            error!(exporter = %id, %signal, items, "Shutdown deadline passed before this batch was exported; dropping data.");
            return;
        }
        let attempt = async {
            match settings.timeout {
                Some(limit) => match tokio::time::timeout(limit, exporter.export(&batch.payload)).await {
                    Ok(result) => result,
                    Err(_) => Err(ExportError::retryable(format!("export timed out after {limit:?}"))),
                },
                None => exporter.export(&batch.payload).await,
            }
        };
        // An attempt in flight at the shutdown deadline is abandoned too.
        let result = tokio::select! {
            biased;
            _ = settings.give_up.cancelled() => Err(ExportError::retryable("the shutdown deadline passed during the export")),
            result = attempt => result,
        };
        let error = match result {
            Ok(()) => {
                settings.metrics.sent(signal).inc_by(items);
                return;
            }
            Err(error) => error,
        };
        if !(error.retryable && settings.retry.enabled) {
            settings.metrics.send_failed(signal).inc_by(items);
            batch.fail();
            let reason = if error.retryable { "retry_on_failure is disabled" } else { "the error is permanent" };
            if !error.logged {
                error!(exporter = %id, %signal, items, error = %error, "Export failed and {reason}; dropping data.");
            }
            return;
        }
        let Some(delay) = backoff.next_delay(started.elapsed(), error.retry_after) else {
            settings.metrics.send_failed(signal).inc_by(items);
            batch.fail();
            error!(exporter = %id, %signal, items, error = %error, elapsed = ?started.elapsed(),
                "Export failed and retry_on_failure.max_elapsed_time has passed; dropping data.");
            return;
        };
        warn!(exporter = %id, %signal, items, error = %error, retry_in = ?delay, "Export failed, retrying.");
        tokio::select! {
            biased;
            _ = settings.give_up.cancelled() => {
                settings.metrics.send_failed(signal).inc_by(items);
                batch.fail();
                error!(exporter = %id, %signal, items, error = %error,
                    "Export still failing at the shutdown deadline; dropping data.");
                return;
            }
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

#[cfg(test)]
mod tests;
