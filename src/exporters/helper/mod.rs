//! What every exporter shares, written once: the sending queue (a bounded channel),
//! its consumers, retry with exponential backoff and jitter, the per-attempt timeout,
//! acknowledgements and the exporter self-metrics. An exporter only implements
//! [`Export`]: "push this payload, say whether a failure is worth retrying".

pub mod disk;
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

use crate::config::{ComponentId, ConfigDuration};
use crate::pdata::{BackendStatus, Batch, Metadata, Payload};
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
    /// The backend's status, passed back to a client that waits for the outcome.
    pub status: Option<BackendStatus>,
}

impl ExportError {
    pub fn retryable(message: impl Into<String>) -> ExportError {
        ExportError { retryable: true, message: message.into(), ..ExportError::default() }
    }

    /// Retryable, after at least `retry_after` when the server said so.
    pub fn retry_after(message: impl Into<String>, retry_after: Option<Duration>) -> ExportError {
        ExportError { retryable: true, retry_after, message: message.into(), ..ExportError::default() }
    }

    pub fn permanent(message: impl Into<String>) -> ExportError {
        ExportError { message: message.into(), ..ExportError::default() }
    }

    pub fn with_status(mut self, status: BackendStatus) -> ExportError {
        self.status = Some(status);
        self
    }
}

/// One exporter's "push this batch", as one request.
pub trait Export: Send + Sync + 'static {
    fn export(&self, payload: &Payload, metadata: &Metadata) -> impl Future<Output = Result<(), ExportError>> + Send;
}

/// Items of a batch an exporter settled on its own, for exporters that send a batch
/// as several requests: counted per item, and never sent again on a retry.
#[derive(Debug, Default)]
pub struct Tally {
    /// Items delivered so far.
    pub sent: u64,
    /// Items refused for good so far.
    pub rejected: u64,
    /// The first refusal, for the acknowledgement.
    pub rejection: Option<ExportError>,
}

impl Tally {
    pub fn reject(&mut self, items: u64, error: ExportError) {
        self.rejected += items;
        self.rejection.get_or_insert(error);
    }
}

/// "Push this batch" for exporters that split a batch into several requests. `Parts`
/// is what the exporter keeps between attempts at one batch (its requests, built once,
/// and which of them are done), so a retry sends only what failed. `Ok` means every
/// part is settled; a retryable `Err` means some part should be tried again.
pub trait ExportInParts: Send + Sync + 'static {
    type Parts: Default + Send;
    fn export_parts(
        &self,
        payload: &Payload,
        metadata: &Metadata,
        parts: &mut Self::Parts,
        tally: &mut Tally,
    ) -> impl Future<Output = Result<(), ExportError>> + Send;
}

/// A one-request exporter seen as one part.
struct Whole<E>(E);

impl<E: Export> ExportInParts for Whole<E> {
    type Parts = ();
    async fn export_parts(
        &self,
        payload: &Payload,
        metadata: &Metadata,
        _parts: &mut (),
        _tally: &mut Tally,
    ) -> Result<(), ExportError> {
        self.0.export(payload, metadata).await
    }
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
    /// When the queue is full: `false` (the default, as upstream) refuses this
    /// exporter's copy and counts it (`otelcol_exporter_enqueue_failed_*`), so one slow
    /// exporter never stalls the others; `true` waits for room (backpressure reaches
    /// the pipeline and every exporter in it).
    #[serde(default, alias = "blocking")]
    pub block_on_overflow: bool,
    /// A client that waits for its answer (OTLP) waits for the export, not just for the
    /// queue, as with no queue. Default false.
    #[serde(default)]
    pub wait_for_result: bool,
    /// What `queue_size` counts: `requests` (batches as they come; the default),
    /// `items` (spans, data points, log records) or `bytes` (their protobuf size).
    #[serde(default)]
    pub sizer: Option<Sizer>,
    /// Batching of what is queued before it is exported; off without this block.
    #[serde(default, deserialize_with = "crate::config::de::present_or_default")]
    pub batch: Option<QueueBatchConfig>,
    /// A `file_storage` extension: the queue is kept on disk there, survives restarts
    /// and kill -9, and a batch counts as taken once it is written (as upstream).
    #[serde(default)]
    pub storage: Option<String>,
    /// ocelot's bound on a persistent queue's bytes on disk, beside `queue_size`.
    /// Default 1GiB.
    #[serde(default)]
    pub max_bytes: Option<crate::config::ByteSize>,
}

/// A persistent queue's default bound on disk.
pub const DEFAULT_QUEUE_MAX_BYTES: u64 = 1 << 30;

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Sizer {
    Requests,
    Items,
    Bytes,
}

impl Sizer {
    pub fn as_str(self) -> &'static str {
        match self {
            Sizer::Requests => "requests",
            Sizer::Items => "items",
            Sizer::Bytes => "bytes",
        }
    }
}

/// `sending_queue.batch`, as upstream's exporterhelper.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QueueBatchConfig {
    /// Longest a queued item waits for its batch to fill. Default 200ms.
    #[serde(default = "default_flush_timeout")]
    pub flush_timeout: ConfigDuration,
    /// A batch is exported once it has this much (in `sizer` units). Default 8192; 0
    /// exports each as it comes.
    #[serde(default = "default_min_size")]
    pub min_size: usize,
    /// Larger batches are split; 0 (the default) is no limit.
    #[serde(default)]
    pub max_size: usize,
    /// `items` or `bytes`; default the queue's `sizer` when it is set, else `items`.
    #[serde(default)]
    pub sizer: Option<Sizer>,
    #[serde(default)]
    pub partition: PartitionConfig,
}

impl Default for QueueBatchConfig {
    fn default() -> Self {
        QueueBatchConfig {
            flush_timeout: default_flush_timeout(),
            min_size: default_min_size(),
            max_size: 0,
            sizer: None,
            partition: PartitionConfig::default(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PartitionConfig {
    /// Request metadata keys: one batch per combination of their values, sent with
    /// those values (for headers_setter's `from_context`).
    #[serde(default)]
    pub metadata_keys: Vec<String>,
}

fn default_flush_timeout() -> ConfigDuration {
    ConfigDuration::from_millis(200)
}
fn default_min_size() -> usize {
    8192
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            enabled: true,
            num_consumers: default_num_consumers(),
            queue_size: default_queue_size(),
            block_on_overflow: false,
            wait_for_result: false,
            sizer: None,
            batch: None,
            storage: None,
            max_bytes: None,
        }
    }
}

impl QueueConfig {
    pub fn validate(&self) -> Result<(), String> {
        let most = match self.sizer() {
            Sizer::Requests => MAX_QUEUE_SIZE,
            Sizer::Items => MAX_QUEUE_ITEMS,
            Sizer::Bytes => MAX_QUEUE_BYTES,
        };
        if !(1..=most).contains(&self.queue_size) {
            return Err(format!(
                "sending_queue.queue_size must be between 1 and {most} when it counts {}",
                self.sizer().as_str()
            ));
        }
        if self.max_bytes.is_some() && self.storage.is_none() {
            return Err("sending_queue.max_bytes bounds a persistent queue: set sending_queue.storage too".into());
        }
        if self.storage.is_some() && !self.enabled {
            return Err("sending_queue.storage needs the queue enabled".into());
        }
        if self.storage.is_some() && self.wait_for_result {
            return Err("sending_queue.wait_for_result and storage exclude each other: with storage a batch is taken once it is on disk".into());
        }
        if self.max_bytes.is_some_and(|b| b.0 < disk::MAX_RECORD.min(1 << 20)) {
            return Err("sending_queue.max_bytes must be at least 1MiB".into());
        }
        if !(1..=MAX_CONSUMERS).contains(&self.num_consumers) {
            return Err(format!("sending_queue.num_consumers must be between 1 and {MAX_CONSUMERS}"));
        }
        if let Some(batch) = &self.batch {
            let sizer = self.batch_sizer();
            if sizer == Sizer::Requests {
                return Err("sending_queue.batch supports only `items` or `bytes` sizer, found \"requests\"".into());
            }
            if batch.flush_timeout.0.is_zero() {
                return Err("sending_queue.batch.flush_timeout must be greater than zero".into());
            }
            if sizer == self.sizer() && batch.min_size > self.queue_size {
                return Err(format!(
                    "sending_queue.batch.min_size ({}) must be at most queue_size ({}) when both count {}",
                    batch.min_size,
                    self.queue_size,
                    sizer.as_str()
                ));
            }
            if batch.max_size > 0 && batch.max_size < batch.min_size {
                return Err(format!(
                    "sending_queue.batch.max_size ({}) must be 0 or at least min_size ({})",
                    batch.max_size, batch.min_size
                ));
            }
            let mut seen = std::collections::HashSet::new();
            if let Some(key) = batch.partition.metadata_keys.iter().find(|k| !seen.insert(k.to_ascii_lowercase())) {
                return Err(format!("sending_queue.batch.partition.metadata_keys: duplicate entry `{key}`"));
            }
        }
        Ok(())
    }

    /// What `queue_size` counts.
    pub fn sizer(&self) -> Sizer {
        self.sizer.unwrap_or(Sizer::Requests)
    }

    /// What the queue's batches are sized by.
    pub fn batch_sizer(&self) -> Sizer {
        self.batch.as_ref().and_then(|b| b.sizer).or(self.sizer).unwrap_or(Sizer::Items)
    }

    /// Batches the queue's channel holds.
    fn capacity(&self) -> usize {
        if self.enabled { self.queue_size.min(MAX_QUEUE_SIZE) } else { 1 }
    }

    /// The queue's bound in items or bytes, when it counts those.
    fn sized(&self) -> Option<(Sizer, Arc<Semaphore>)> {
        match self.sizer() {
            Sizer::Requests => None,
            _ if !self.enabled => None,
            sizer => Some((sizer, Arc::new(Semaphore::new(self.queue_size)))),
        }
    }

    fn consumers(&self) -> usize {
        if self.enabled { self.num_consumers } else { 1 }
    }
}

/// Batches one queue may hold; a bound on memory as much as a sanity check.
const MAX_QUEUE_SIZE: usize = 1_000_000;
/// Items one queue may hold, with `sizer: items`.
const MAX_QUEUE_ITEMS: usize = 1_000_000_000;
/// Bytes one queue may hold, with `sizer: bytes`: 4 GiB.
const MAX_QUEUE_BYTES: usize = u32::MAX as usize;
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
    /// The queue on disk, with `sending_queue.storage`.
    pub disk: Option<Arc<disk::DiskQueue>>,
}

/// Where a pipeline hands an exporter its copy of a batch.
#[derive(Clone)]
pub struct ExporterInput {
    tx: mpsc::Sender<Queued>,
    /// The queue on disk: `tx` goes to its writer, which appends in order.
    disk: Option<Arc<disk::DiskQueue>>,
    /// With the queue on disk: the last input gone stops the exports in flight (their
    /// records go back to the queue), even while every consumer is busy retrying.
    _exports: Option<Arc<tokio_util::sync::DropGuard>>,
    /// With `sizer: items` or `bytes`: what a batch counts, and the room left.
    sized: Option<(Sizer, Arc<Semaphore>)>,
    queue: Arc<QueueConfig>,
    id: ComponentId,
    metrics: ExporterMetrics,
    /// When a full queue was last logged.
    warned: Arc<std::sync::Mutex<Option<Instant>>>,
    /// For an input that forwards to exporters of its own: what its clients wait for
    /// (theirs), (for the result, for the queue).
    waits: Option<(bool, bool)>,
}

/// The far end of a [`forwarding_input`]: batches as the pipeline handed them over.
pub struct Forwarded(mpsc::Receiver<Queued>);

impl Forwarded {
    pub async fn recv(&mut self) -> Option<Batch> {
        self.0.recv().await.map(|q| q.batch)
    }
}

/// An input with no queue of its own, for an exporter that hands batches on to
/// exporters of its own (`loadbalancing`): a full channel is backpressure, and a
/// client waits for what those exporters make it wait for.
pub fn forwarding_input(
    id: &ComponentId,
    metrics: ExporterMetrics,
    capacity: usize,
    waits_for_result: bool,
    waits_for_queue: bool,
) -> (ExporterInput, Forwarded) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let queue = QueueConfig { enabled: false, ..QueueConfig::default() };
    let input = ExporterInput {
        tx,
        disk: None,
        _exports: None,
        sized: None,
        queue: Arc::new(queue),
        id: id.clone(),
        metrics,
        warned: Arc::default(),
        waits: Some((waits_for_result, waits_for_queue)),
    };
    (input, Forwarded(rx))
}

/// A full queue is logged at most this often per exporter.
const FULL_QUEUE_LOG_EVERY: Duration = Duration::from_secs(10);

impl ExporterInput {
    /// A client behind this exporter waits for the export, not just for the queue.
    pub fn waits_for_result(&self) -> bool {
        if let Some((result, _)) = self.waits {
            return result;
        }
        !self.queue.enabled || self.queue.wait_for_result
    }

    /// A client behind this exporter waits until the batch is in its queue: a full
    /// queue refuses the copy (`block_on_overflow: false`) and the client must hear it
    /// when no other exporter kept the data.
    pub fn waits_for_queue(&self) -> bool {
        if let Some((_, queue)) = self.waits {
            return queue;
        }
        self.queue.enabled && !self.queue.block_on_overflow
    }

    /// Whether a client behind an exporter with this queue waits for the export, and
    /// for the queue (as [`ExporterInput::waits_for_result`] and `waits_for_queue`).
    pub fn waits_of(queue: &QueueConfig) -> (bool, bool) {
        (!queue.enabled || queue.wait_for_result, queue.enabled && !queue.block_on_overflow)
    }

    /// Hands `batch` to the exporter. With no queue it waits for room (the export
    /// itself is the answer); with a queue it lets reply tokens go once the batch is in
    /// (unless `wait_for_result`) and, when the queue is full, waits only with
    /// `block_on_overflow`; otherwise the copy is refused, counted and marked failed.
    /// `Err` gives the batch back when the exporter has stopped.
    pub async fn send(&self, mut batch: Batch) -> Result<(), Batch> {
        if self.disk.is_some() {
            // To the queue's writer, in order; its acknowledgements resolve once the
            // batch is on disk. A full writer (and a full queue behind it) is
            // backpressure.
            return self.tx.send(Queued { batch, room: None }).await.map_err(|e| e.0.batch);
        }
        if !self.queue.enabled {
            self.tx.send(Queued { batch, room: None }).await.map_err(|e| e.0.batch)?;
            self.metrics.queue_size.set((self.tx.max_capacity() - self.tx.capacity()) as i64);
            return Ok(());
        }
        // With an items or bytes sizer, the room for this batch first (a batch larger
        // than the whole queue takes all of it).
        let room = match &self.sized {
            None => None,
            Some((sizer, room)) => {
                let cost = size_of(*sizer, &batch).clamp(1, self.queue.queue_size) as u32;
                let taken = if self.queue.block_on_overflow {
                    room.clone().acquire_many_owned(cost).await.ok()
                } else {
                    room.clone().try_acquire_many_owned(cost).ok()
                };
                if taken.is_none() {
                    self.refuse(&batch);
                    return Ok(());
                }
                taken
            }
        };
        let permit = if self.queue.block_on_overflow {
            self.tx.reserve().await.ok()
        } else {
            match self.tx.try_reserve() {
                Ok(permit) => Some(permit),
                Err(mpsc::error::TrySendError::Full(())) => {
                    self.refuse(&batch);
                    return Ok(());
                }
                Err(mpsc::error::TrySendError::Closed(())) => None,
            }
        };
        let Some(permit) = permit else { return Err(batch) };
        if !self.queue.wait_for_result {
            batch.release_replies();
        }
        permit.send(Queued { batch, room });
        self.metrics.queue_size.set(self.occupancy() as i64);
        Ok(())
    }

    /// What the queue holds, in its sizer's units.
    fn occupancy(&self) -> usize {
        match &self.sized {
            Some((_, room)) => self.queue.queue_size.saturating_sub(room.available_permits()),
            None => self.tx.max_capacity() - self.tx.capacity(),
        }
    }

    fn refuse(&self, batch: &Batch) {
        let signal = batch.signal();
        let items = batch.payload.item_count() as u64;
        self.metrics.enqueue_failed(signal).inc_by(items);
        batch.fail_with("the exporter's sending queue is full");
        let mut warned = self.warned.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if warned.is_none_or(|at| at.elapsed() >= FULL_QUEUE_LOG_EVERY) {
            *warned = Some(Instant::now());
            error!(exporter = %self.id, %signal, items, queue_size = self.queue.queue_size,
                "Sending queue is full; this exporter's copy is dropped (block_on_overflow is false; logged every 10s).");
        }
    }
}

/// Starts the queue and its consumers; returns the queue's sending end. The exporter
/// finishes once every sender is dropped and the queue is drained.
pub fn spawn<E: Export>(exporter: E, settings: ExporterSettings, tracker: &TaskTracker) -> ExporterInput {
    spawn_in_parts(Whole(exporter), settings, tracker)
}

/// [`spawn`] for an exporter that sends a batch as several requests.
pub fn spawn_in_parts<E: ExportInParts>(
    exporter: E,
    settings: ExporterSettings,
    tracker: &TaskTracker,
) -> ExporterInput {
    let channel = if settings.disk.is_some() { DISK_WRITER_CAPACITY } else { settings.queue.capacity() };
    let (tx, rx) = mpsc::channel(channel);
    let sized = settings.queue.sized().filter(|_| settings.disk.is_none());
    let capacity =
        if sized.is_some() || settings.disk.is_some() { settings.queue.queue_size } else { settings.queue.capacity() };
    settings.metrics.queue_capacity.set(capacity as i64);
    if let Some(disk) = &settings.disk {
        settings.metrics.queue_size.set(disk.usage().cost as i64);
    }
    // With the queue on disk, exports stop once every input is gone (shutdown, or a
    // reload replacing this instance): what they held goes back to the queue.
    let mut settings = settings;
    let stop_exports = settings.give_up.child_token();
    let exports = settings.disk.is_some().then(|| Arc::new(stop_exports.clone().drop_guard()));
    if settings.disk.is_some() {
        settings.give_up = stop_exports.clone();
    }
    let input = ExporterInput {
        tx,
        disk: settings.disk.clone(),
        _exports: exports,
        sized: sized.clone(),
        queue: Arc::new(settings.queue.clone()),
        id: settings.id.clone(),
        metrics: settings.metrics.clone(),
        warned: Arc::default(),
        waits: None,
    };
    let inner = tracker.clone();
    let written = CancellationToken::new();
    let rx = match &settings.disk {
        Some(disk) => {
            tracker.spawn(write_to_disk(
                disk.clone(),
                rx,
                settings.metrics.clone(),
                settings.id.clone(),
                written.clone(),
            ));
            mpsc::channel(1).1
        }
        None => rx,
    };
    let queue = Queue { rx, sized, disk: settings.disk.clone(), tracker: tracker.clone(), written };
    tracker.spawn(dispatch(Arc::new(exporter), Arc::new(settings), queue, inner));
    input
}

/// Batches on their way to a queue on disk: few, since the queue's room is on disk.
const DISK_WRITER_CAPACITY: usize = 16;

/// The writer of a queue on disk: appends each batch in the order the inputs sent
/// them, then lets its sources go (a client gets its answer, a file tail commits its
/// offset). Encoding and writing run here, beside the pipelines.
async fn write_to_disk(
    disk: Arc<disk::DiskQueue>,
    mut rx: mpsc::Receiver<Queued>,
    metrics: ExporterMetrics,
    id: ComponentId,
    written: CancellationToken,
) {
    let mut warned: Option<Instant> = None;
    while let Some(Queued { batch, .. }) = rx.recv().await {
        match disk.append(&batch).await {
            Ok(()) => batch.keep(),
            Err(e) => {
                let signal = batch.signal();
                metrics.enqueue_failed(signal).inc_by(batch.payload.item_count() as u64);
                batch.fail_with(&e.to_string());
                if warned.is_none_or(|at| at.elapsed() >= FULL_QUEUE_LOG_EVERY) {
                    warned = Some(Instant::now());
                    error!(exporter = %id, %signal, error = %e, "Cannot write the persistent queue; this exporter's copy is refused (logged every 10s).");
                }
            }
        }
        metrics.queue_size.set(disk.usage().cost as i64);
    }
    written.cancel();
}

/// A batch in the queue, with the room it takes in a queue sized in items or bytes
/// (given back when it leaves).
pub struct Queued {
    batch: Batch,
    room: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// The size of a batch in the sizer's units.
fn size_of(sizer: Sizer, batch: &Batch) -> usize {
    match sizer {
        Sizer::Requests => 1,
        Sizer::Items => batch.payload.item_count(),
        Sizer::Bytes => batch.payload.encoded_len(),
    }
}

/// The queue's receiving end.
struct Queue {
    rx: mpsc::Receiver<Queued>,
    sized: Option<(Sizer, Arc<Semaphore>)>,
    disk: Option<Arc<disk::DiskQueue>>,
    /// Where a record's completion is awaited.
    tracker: TaskTracker,
    /// With the queue on disk: cancelled once the writer has written what every input
    /// sent, and every input is gone.
    written: CancellationToken,
}

impl Queue {
    /// The next batch, its room given back and the size gauge moved. From disk: the
    /// next record, whose export settling marks it done; `None` once every input is
    /// gone (what is still on disk waits for the next start, or for the instance a
    /// reload started on the same queue).
    async fn next(&mut self, settings: &ExporterSettings) -> Option<Batch> {
        if let Some(disk) = &self.disk {
            let (record, mut batch) = tokio::select! {
                biased;
                _ = self.written.cancelled() => return None,
                next = disk.next() => next,
            };
            let (ack, waiter) = crate::pdata::Ack::new();
            batch.acks.push(ack);
            let disk = disk.clone();
            let give_up = settings.give_up.clone();
            let gauge = settings.metrics.queue_size.clone();
            self.tracker.spawn(async move {
                let resolution = waiter.wait().await;
                // Stopped before it settled: back in the queue, for the instance a reload
                // started or the next start.
                if resolution.outcome == crate::pdata::AckOutcome::Failed && give_up.is_cancelled() {
                    disk.requeue(&record);
                } else {
                    disk.complete(&record);
                }
                gauge.set(disk.usage().cost as i64);
            });
            return Some(batch);
        }
        let Queued { batch, room } = self.rx.recv().await?;
        drop(room);
        let occupancy = match &self.sized {
            Some((_, room)) => settings.queue.queue_size.saturating_sub(room.available_permits()),
            None => self.rx.len(),
        };
        settings.metrics.queue_size.set(occupancy as i64);
        Some(batch)
    }
}

async fn dispatch<E: ExportInParts>(
    exporter: Arc<E>,
    settings: Arc<ExporterSettings>,
    mut queue: Queue,
    tracker: TaskTracker,
) {
    let consumers = settings.queue.consumers();
    let slots = Arc::new(Semaphore::new(consumers));
    let export = |batch: Batch, slot: tokio::sync::OwnedSemaphorePermit| {
        let exporter = exporter.clone();
        let settings = settings.clone();
        tracker.spawn(async move {
            send_with_retry(exporter.as_ref(), batch, &settings).await;
            drop(slot);
        });
    };
    // The queue size gauge moves where batches enter (ExporterInput::send) and leave
    // (here): no timer wakes an idle exporter; a batching queue wakes only at its
    // flush deadline.
    match settings.queue.batch.as_ref().filter(|_| settings.queue.enabled) {
        None => loop {
            // Take a consumer slot before a batch, so a waiting batch stays counted in the queue.
            let Ok(slot) = slots.clone().acquire_owned().await else { break };
            let Some(batch) = queue.next(&settings).await else { break };
            export(batch, slot);
        },
        Some(config) => {
            use crate::processors::Processor;
            let bytes = settings.queue.batch_sizer() == Sizer::Bytes;
            let mut batcher =
                crate::processors::batch::BatchProcessor::for_queue(config, bytes, settings.queue.wait_for_result);
            let mut out = Vec::new();
            loop {
                let deadline = batcher.deadline();
                let open = tokio::select! {
                    batch = queue.next(&settings) => match batch {
                        Some(batch) => {
                            batcher.process(batch, &mut out);
                            true
                        }
                        None => {
                            batcher.flush(&mut out);
                            false
                        }
                    },
                    _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                        batcher.on_deadline(Instant::now(), &mut out);
                        true
                    }
                };
                for batch in out.drain(..) {
                    let Ok(slot) = slots.clone().acquire_owned().await else { break };
                    export(batch, slot);
                }
                if !open {
                    break;
                }
            }
        }
    }
    settings.metrics.queue_size.set(0);
    // Wait for the exports in flight before saying this exporter is done.
    let _all = slots.acquire_many(consumers as u32).await;
}

async fn send_with_retry<E: ExportInParts>(exporter: &E, batch: Batch, settings: &ExporterSettings) {
    let items = batch.payload.item_count() as u64;
    let signal = batch.signal();
    let id = &settings.id;
    let started = Instant::now();
    let mut backoff = settings.retry.backoff();
    let mut parts = E::Parts::default();
    let mut tally = Tally::default();
    // What the metrics have counted of `tally` so far.
    let (mut counted_sent, mut counted_rejected) = (0, 0);
    loop {
        if settings.give_up.is_cancelled() {
            if settings.disk.is_some() {
                return kept_on_disk(&batch, settings);
            }
            let left = give_up(&batch, items, &tally, settings, "the shutdown deadline passed");
            error!(exporter = %id, %signal, items = left, "Shutdown deadline passed before this batch was exported; dropping data.");
            return;
        }
        let attempt = async {
            match settings.timeout {
                Some(limit) => {
                    match tokio::time::timeout(
                        limit,
                        exporter.export_parts(&batch.payload, &batch.metadata, &mut parts, &mut tally),
                    )
                    .await
                    {
                        Ok(result) => result,
                        Err(_) => Err(ExportError::retryable(format!("export timed out after {limit:?}"))),
                    }
                }
                None => exporter.export_parts(&batch.payload, &batch.metadata, &mut parts, &mut tally).await,
            }
        };
        // An attempt in flight at the shutdown deadline is abandoned too.
        let result = tokio::select! {
            biased;
            _ = settings.give_up.cancelled() => Err(ExportError::retryable("the shutdown deadline passed during the export")),
            result = attempt => result,
        };
        // Parts settled in this attempt are counted now, whatever comes of the rest.
        settings.metrics.sent(signal).inc_by(tally.sent - counted_sent);
        settings.metrics.send_failed(signal).inc_by(tally.rejected - counted_rejected);
        (counted_sent, counted_rejected) = (tally.sent, tally.rejected);
        let left = items.saturating_sub(tally.sent + tally.rejected);
        let error = match result {
            Ok(()) => {
                settings.metrics.status.ok();
                settings.metrics.sent(signal).inc_by(left);
                if left > 0 || tally.sent > 0 {
                    batch.keep();
                }
                if let Some(rejection) = &tally.rejection {
                    batch.reject(rejection.status, &rejection.message);
                }
                return;
            }
            Err(error) => error,
        };
        if !(error.retryable && settings.retry.enabled) {
            settings.metrics.status.permanent(&error.message);
            settings.metrics.send_failed(signal).inc_by(left);
            if tally.sent > 0 {
                batch.keep();
            }
            let reason = if error.retryable { "retry_on_failure is disabled" } else { "the error is permanent" };
            if error.retryable {
                batch.fail_with(&error.message);
            } else {
                batch.reject(error.status, &error.message);
            }
            if !error.logged {
                error!(exporter = %id, %signal, items = left, error = %error, "Export failed and {reason}; dropping data.");
            }
            return;
        }
        settings.metrics.status.recoverable(&error.message);
        let Some(delay) = backoff.next_delay(started.elapsed(), error.retry_after) else {
            give_up(&batch, items, &tally, settings, &error.message);
            error!(exporter = %id, %signal, items = left, error = %error, elapsed = ?started.elapsed(),
                "Export failed and retry_on_failure.max_elapsed_time has passed; dropping data.");
            return;
        };
        warn!(exporter = %id, %signal, items = left, error = %error, retry_in = ?delay, "Export failed, retrying.");
        tokio::select! {
            biased;
            _ = settings.give_up.cancelled() => {
                if settings.disk.is_some() {
                    return kept_on_disk(&batch, settings);
                }
                let left = give_up(&batch, items, &tally, settings, &error.message);
                error!(exporter = %id, %signal, items = left, error = %error,
                    "Export still failing at the shutdown deadline; dropping data.");
                return;
            }
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Gives up on what is left of a batch (retryable failures): counted as failed, and
/// the sources told it was not delivered, so one that can replay does. Returns the
/// items left.
/// An export stopped before it settled (shutdown, or this instance replaced by a
/// reload) whose record is on disk: nothing is dropped; the record goes back to the
/// queue for the next instance or the next start.
fn kept_on_disk(batch: &Batch, settings: &ExporterSettings) {
    batch.fail_with("stopped before the export settled; it stays in the persistent queue");
    tracing::debug!(exporter = %settings.id, items = batch.payload.item_count(), "Export stopped; the batch stays in the persistent queue.");
}

fn give_up(batch: &Batch, items: u64, tally: &Tally, settings: &ExporterSettings, why: &str) -> u64 {
    let left = items.saturating_sub(tally.sent + tally.rejected);
    settings.metrics.send_failed(batch.signal()).inc_by(left);
    if tally.sent > 0 {
        batch.keep();
    }
    batch.fail_with(why);
    left
}

#[cfg(test)]
mod tests;
