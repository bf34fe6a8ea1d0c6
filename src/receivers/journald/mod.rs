//! The `journald` receiver: the systemd journal, read by running `journalctl
//! --output=json --follow` as upstream does, and the cursor saved only once the
//! entries up to it are delivered (upstream saves it as soon as an entry is read), so
//! a restart, even after kill -9, loses no entry; entries in flight may repeat.
//!
//! Why journalctl and not the journal files: journalctl is the journal's reference
//! reader and ships with it. It knows every version of the file format (compact mode,
//! keyed hashes, xz/lz4/zstd compression, sealing), follows rotation and vacuuming,
//! merges the system and user journals, and evaluates matches with the journal's own
//! indexes. A reader of our own would have to track all of that release by release, and
//! a file it misread would be data lost silently; journalctl failing is loud (it exits
//! and is started again from the cursor). The price is a process and JSON per entry.
//!
//! A first start with `start_at: end` asks journalctl for the last matching entry and
//! saves its cursor before following, so a restart goes on from there and misses
//! nothing that arrived in between. A batch that fails downstream (retryable) makes the
//! reader start journalctl again after the last delivered cursor, with backoff: the
//! journal is the buffer, nothing is given up.

pub mod config;
pub mod entry;

use std::collections::VecDeque;
use std::path::Path;
use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;

use futures_util::stream::{FuturesOrdered, StreamExt};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

pub use config::JournaldConfig;

use super::StartError;
use crate::component::Consumer;
use crate::config::ComponentId;
use crate::pdata::{Ack, AckOutcome, Batch, Payload, Resolution, Signal};
use crate::receivers::filelog::operators::field::Entry as OperatorEntry;
use crate::receivers::filelog::operators::{Operators, Report};
use crate::storage::StateFile;
use crate::telemetry::{JournaldMetrics, ReceiverMetrics, Telemetry};
use entry::Shape;

pub const TYPE: &str = "journald";

/// Records per batch handed to the pipelines.
const BATCH_RECORDS: usize = 1000;
/// Bytes of entries (as journalctl wrote them) per batch.
const BATCH_BYTES: usize = 4 << 20;
/// A partial batch is sent once its first entry has waited this long.
const FLUSH_AFTER: Duration = Duration::from_millis(100);
/// A longer entry (journalctl's JSON line) is dropped and counted (`too_large`).
const MAX_ENTRY_BYTES: usize = 4 << 20;
/// Entries read and not yet delivered, in bytes; past this, reading waits (and
/// journalctl with it, on its full pipe).
const MAX_IN_FLIGHT_BYTES: usize = 8 << 20;
/// The saved cursor is written at most this often.
const PERSIST_EVERY: Duration = Duration::from_millis(200);
/// How long a stopping receiver waits for its last batches to be acknowledged.
const STOP_ACK_WAIT: Duration = Duration::from_secs(5);
/// journalctl is started again after this when it exits or a batch fails, doubling
/// per failure in a row up to [`MAX_RETRY_WAIT`].
const FIRST_RETRY_WAIT: Duration = Duration::from_secs(1);
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);
/// The start-up check (and the first start's look for the last entry) may take this long.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of journalctl's stderr logged per run of it; the rest are counted.
const STDERR_LINES: usize = 20;

/// The saved state: the cursor of the last delivered entry, or none when nothing was
/// delivered yet (the next start reads from the beginning: everything there matched
/// after the first start).
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    cursor: Option<String>,
}

pub async fn start(
    id: &ComponentId,
    config: &JournaldConfig,
    consumer: Consumer,
    telemetry: &Telemetry,
    storage_dir: &Path,
    stop: CancellationToken,
    tracker: &TaskTracker,
) -> Result<(), StartError> {
    let operators = Operators::new(&config.operators).map_err(StartError::Config)?;
    crate::storage::create_private_dir(storage_dir)
        .map_err(|e| StartError::Storage(format!("cannot create storage directory {}: {e}", storage_dir.display())))?;
    let state = StateFile::new(storage_dir, &format!("{TYPE}_{id}"));
    let saved = match state.load() {
        Ok(Some(bytes)) => Some(serde_json::from_slice::<Saved>(&bytes).unwrap_or_else(|e| {
            warn!(receiver = %id, path = %state.path().display(), error = %e,
                "The journal cursor is unreadable; reading the journal from the beginning.");
            Saved { cursor: None }
        })),
        Ok(None) => None,
        Err(e) => {
            warn!(receiver = %id, error = %e, "The journal cursor is unreadable; reading the journal from the beginning.");
            Some(Saved { cursor: None })
        }
    };
    let first_at_end = saved.is_none() && config.start_at == crate::receivers::filelog::config::StartAt::End;
    // One run without --follow checks the filters and the journal (a bad --grep, an
    // unreadable directory fail the start) and, on a first start at the end, finds
    // the last matching entry.
    let check = if first_at_end { "--lines=1" } else { "--lines=0" };
    let last = check_run(config, check).await?;
    let committed = match saved {
        Some(saved) => saved.cursor,
        None if first_at_end => last,
        None => None,
    };
    state
        .store(&serde_json::to_vec(&Saved { cursor: committed.clone() }).unwrap_or_default())
        .map_err(|e| StartError::Storage(format!("cannot write {}: {e}", state.path().display())))?;
    match &committed {
        Some(cursor) => info!(receiver = %id, %cursor, "Reading the journal after the saved cursor."),
        None => info!(receiver = %id, "Reading the journal from the beginning."),
    }
    let mut journal = Journal {
        id: id.clone(),
        config: config.clone(),
        shape: Shape { parse_fields: config.parse_fields, convert_message_bytes: config.convert_message_bytes },
        operators: std::sync::Arc::new(operators),
        consumer,
        receiver: telemetry.receiver(id, ""),
        metrics: telemetry.journald(id),
        state,
        committed: committed.clone(),
        read: committed,
        pending: FuturesOrdered::new(),
        pending_meta: VecDeque::new(),
        pending_bytes: 0,
        pending_entries: 0,
        dirty: false,
        last_persist: Instant::now(),
        warned_rejected: None,
        stop,
    };
    tracker.spawn(async move { journal.run().await });
    Ok(())
}

/// Runs journalctl once without following; returns the cursor of the last entry it
/// wrote, if any. A start failure, a non-zero exit or a timeout is the receiver's
/// start error, with journalctl's own words.
async fn check_run(config: &JournaldConfig, lines: &str) -> Result<Option<String>, StartError> {
    let args = config.args(&[lines.to_string()]);
    let run = Command::new(&config.journalctl_path).args(&args).stdin(Stdio::null()).kill_on_drop(true).output();
    let output = match tokio::time::timeout(CHECK_TIMEOUT, run).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => {
            return Err(StartError::Config(format!(
                "cannot run `{}` (journalctl_path): {e}; the journald receiver needs journalctl (Debian's systemd package)",
                config.journalctl_path
            )));
        }
        Err(_) => return Err(StartError::Config(format!("journalctl did not answer within {CHECK_TIMEOUT:?}"))),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(StartError::Config(format!(
            "journalctl {} failed ({}): {}",
            args.join(" "),
            output.status,
            stderr.trim()
        )));
    }
    for line in stderr.lines().filter(|l| !l.trim().is_empty()).take(STDERR_LINES) {
        warn!(message = %line, "journalctl says this.");
    }
    let last = output.stdout.split(|b| *b == b'\n').rfind(|l| !l.is_empty());
    Ok(last.and_then(|line| entry::parse(line, Shape::default()).ok()).map(|e| e.cursor))
}

type Waiting = Pin<Box<dyn std::future::Future<Output = Resolution> + Send>>;

/// What the reader hands over: an entry (its record, or none when the operators
/// dropped it) with its cursor and size, or a line that is not an entry.
enum Item {
    Entry(Box<Read>),
    Dropped(&'static str),
}

struct Read {
    resource: Vec<KeyValue>,
    record: Option<LogRecord>,
    cursor: String,
    bytes: usize,
}

/// Why one run of journalctl ended.
enum Ended {
    /// journalctl closed its output (exited).
    Exited,
    /// A batch failed downstream: read again after the last delivered cursor.
    Failed(String),
    /// The receiver stops.
    Stop,
}

struct Journal {
    id: ComponentId,
    config: JournaldConfig,
    shape: Shape,
    operators: std::sync::Arc<Operators>,
    consumer: Consumer,
    receiver: ReceiverMetrics,
    metrics: JournaldMetrics,
    state: StateFile,
    /// The cursor of the last delivered entry: what is saved.
    committed: Option<String>,
    /// The cursor of the last entry read: where journalctl starts again after it exits.
    read: Option<String>,
    pending: FuturesOrdered<Waiting>,
    /// Per pending batch: its last cursor, entries and bytes.
    pending_meta: VecDeque<(String, u64, usize)>,
    pending_bytes: usize,
    pending_entries: u64,
    dirty: bool,
    last_persist: Instant,
    warned_rejected: Option<Instant>,
    stop: CancellationToken,
}

/// The batch being gathered: records by resource, the last cursor in it.
#[derive(Default)]
struct Gathered {
    groups: Vec<(Vec<KeyValue>, Vec<LogRecord>)>,
    records: usize,
    entries: u64,
    bytes: usize,
    cursor: Option<String>,
    since: Option<Instant>,
}

impl Journal {
    async fn run(&mut self) {
        let mut wait = FIRST_RETRY_WAIT;
        loop {
            let read_before = self.read.clone();
            let ended = match self.spawn() {
                Ok(child) => self.follow(child).await,
                Err(e) => {
                    error!(receiver = %self.id, error = %e, "Cannot start journalctl.");
                    Ended::Exited
                }
            };
            match ended {
                Ended::Stop => break,
                Ended::Exited => {
                    self.metrics.restarts.inc();
                    if self.read != read_before {
                        wait = FIRST_RETRY_WAIT;
                    }
                    warn!(receiver = %self.id, retry_in = ?wait, "journalctl exited; starting it again after the last entry read.");
                }
                Ended::Failed(message) => {
                    self.metrics.restarts.inc();
                    // Everything after the last delivered entry is read again; the
                    // batches still pending are let go (their entries come again).
                    self.pending = FuturesOrdered::new();
                    self.pending_meta.clear();
                    self.pending_bytes = 0;
                    self.pending_entries = 0;
                    self.metrics.lag.set(0);
                    self.read = self.committed.clone();
                    warn!(receiver = %self.id, error = %message, retry_in = ?wait,
                        "A batch of journal entries failed downstream; reading again after the last delivered entry.");
                }
            }
            tokio::select! {
                _ = self.stop.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(MAX_RETRY_WAIT);
        }
        self.drain().await;
    }

    fn spawn(&self) -> std::io::Result<Child> {
        let mut start = vec!["--follow".to_string()];
        match &self.read {
            Some(cursor) => start.extend(["--after-cursor".to_string(), cursor.clone()]),
            None => start.push("--no-tail".into()),
        }
        let args = self.config.args(&start);
        debug!(receiver = %self.id, args = %args.join(" "), "Starting journalctl.");
        Command::new(&self.config.journalctl_path)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
    }

    /// Reads one run of journalctl until it exits, a batch fails, or the receiver stops.
    async fn follow(&mut self, mut child: Child) -> Ended {
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Ended::Exited;
        };
        let id = self.id.clone();
        let stderr_task = tokio::spawn(log_stderr(id, stderr));
        let (tx, mut rx) = mpsc::channel::<Item>(256);
        let reader = tokio::spawn(read_entries(
            stdout,
            tx,
            self.shape,
            self.operators.clone(),
            self.metrics.clone(),
            self.id.clone(),
        ));
        let mut gathered = Gathered::default();
        let ended = loop {
            let flush_at = gathered.since.map(|t| t + FLUSH_AFTER);
            let persist_at = self.dirty.then(|| self.last_persist + PERSIST_EVERY);
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => {
                    self.send(&mut gathered).await;
                    break Ended::Stop;
                }
                Some(resolution) = self.pending.next(), if !self.pending.is_empty() => {
                    if let Err(message) = self.settle(resolution) {
                        break Ended::Failed(message);
                    }
                }
                _ = sleep_until(persist_at), if persist_at.is_some() => self.persist(),
                _ = sleep_until(flush_at), if flush_at.is_some() => {
                    if !self.send(&mut gathered).await {
                        break Ended::Stop;
                    }
                }
                item = rx.recv(), if self.pending_bytes + gathered.bytes < MAX_IN_FLIGHT_BYTES => match item {
                    Some(Item::Entry(read)) => {
                        self.metrics.read.inc();
                        let Read { resource, record, cursor, bytes } = *read;
                        gathered.add(resource, record, cursor, bytes);
                        if (gathered.records >= BATCH_RECORDS || gathered.bytes >= BATCH_BYTES)
                            && !self.send(&mut gathered).await
                        {
                            break Ended::Stop;
                        }
                    }
                    Some(Item::Dropped(reason)) => {
                        self.metrics.dropped(reason).inc();
                    }
                    None => {
                        if !self.send(&mut gathered).await {
                            break Ended::Stop;
                        }
                        break Ended::Exited;
                    }
                },
            }
        };
        reader.abort();
        let _ = child.start_kill();
        match child.wait().await {
            Ok(status) if !status.success() && !matches!(ended, Ended::Stop | Ended::Failed(_)) => {
                warn!(receiver = %self.id, %status, "journalctl failed.");
            }
            _ => {}
        }
        let _ = stderr_task.await;
        ended
    }

    /// Hands the gathered entries to the pipelines, waiting while they are full; false
    /// when the pipelines are gone (shutting down).
    async fn send(&mut self, gathered: &mut Gathered) -> bool {
        let Gathered { groups, records, entries, bytes, cursor, .. } = std::mem::take(gathered);
        let Some(cursor) = cursor else { return true };
        let (ack, waiter) = Ack::new();
        if records > 0 {
            let resource_logs = groups
                .into_iter()
                .map(|(attributes, log_records)| ResourceLogs {
                    resource: Some(Resource { attributes, ..Default::default() }),
                    scope_logs: vec![ScopeLogs { log_records, ..Default::default() }],
                    schema_url: String::new(),
                })
                .collect();
            let batch = Batch::with_ack(Payload::Logs(ExportLogsServiceRequest { resource_logs }), ack);
            if self.consumer.consume(batch).await.is_err() {
                return false;
            }
            self.receiver.accepted(Signal::Logs).inc_by(records as u64);
        } else {
            // Only filtered entries: nothing to send, but the cursor waits its turn.
            drop(ack);
        }
        self.pending.push_back(Box::pin(waiter.wait()));
        self.pending_meta.push_back((cursor, entries, bytes));
        self.pending_bytes += bytes;
        self.pending_entries += entries;
        self.metrics.lag.set(self.pending_entries as i64);
        true
    }

    /// The oldest pending batch resolved: its cursor is delivered, or it failed.
    fn settle(&mut self, resolution: Resolution) -> Result<(), String> {
        let Some((cursor, entries, bytes)) = self.pending_meta.pop_front() else { return Ok(()) };
        self.pending_bytes -= bytes;
        self.pending_entries -= entries;
        self.metrics.lag.set(self.pending_entries as i64);
        match resolution.outcome {
            AckOutcome::Delivered => {}
            AckOutcome::Rejected => {
                self.metrics.dropped("rejected").inc_by(entries);
                if self.warned_rejected.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                    self.warned_rejected = Some(Instant::now());
                    warn!(receiver = %self.id, entries, error = %resolution.message,
                        "Journal entries were refused downstream for good; they are dropped (counted in ocelot_receiver_journald_dropped_entries_total).");
                }
            }
            AckOutcome::Failed => return Err(resolution.message),
        }
        self.committed = Some(cursor);
        self.dirty = true;
        Ok(())
    }

    fn persist(&mut self) {
        self.dirty = false;
        self.last_persist = Instant::now();
        let saved = Saved { cursor: self.committed.clone() };
        if let Err(e) = self.state.store(&serde_json::to_vec(&saved).unwrap_or_default()) {
            warn!(receiver = %self.id, path = %self.state.path().display(), error = %e, "Cannot save the journal cursor.");
        }
    }

    /// On stop: waits (a bounded time) for the batches in flight, then saves the cursor.
    async fn drain(&mut self) {
        let deadline = Instant::now() + STOP_ACK_WAIT;
        while !self.pending.is_empty() {
            match tokio::time::timeout_at(deadline, self.pending.next()).await {
                Ok(Some(resolution)) => {
                    if self.settle(resolution).is_err() {
                        break;
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        if !self.pending_meta.is_empty() {
            info!(receiver = %self.id, entries = self.pending_entries,
                "Stopping with journal entries not yet delivered; they are read again at the next start.");
        }
        self.persist();
    }
}

impl Gathered {
    fn add(&mut self, resource: Vec<KeyValue>, record: Option<LogRecord>, cursor: String, bytes: usize) {
        if let Some(record) = record {
            match self.groups.iter_mut().rfind(|(r, _)| *r == resource) {
                Some((_, records)) => records.push(record),
                None => self.groups.push((resource, vec![record])),
            }
            self.records += 1;
        }
        self.entries += 1;
        self.bytes += bytes;
        self.cursor = Some(cursor);
        self.since.get_or_insert_with(Instant::now);
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Reads journalctl's output line by line, parses each entry and runs the operators.
/// A line longer than [`MAX_ENTRY_BYTES`] is skipped to its end without being held.
async fn read_entries(
    stdout: impl AsyncRead + Unpin,
    tx: mpsc::Sender<Item>,
    shape: Shape,
    operators: std::sync::Arc<Operators>,
    metrics: JournaldMetrics,
    id: ComponentId,
) {
    let mut reader = BufReader::with_capacity(256 << 10, stdout);
    let mut line = Vec::new();
    let mut too_long = false;
    let mut reported = 0usize;
    loop {
        let available = match reader.fill_buf().await {
            Ok([]) => return,
            Ok(buf) => buf,
            Err(e) => {
                warn!(receiver = %id, error = %e, "Cannot read journalctl's output.");
                return;
            }
        };
        let (part, complete) = match memchr::memchr(b'\n', available) {
            Some(end) => (&available[..end], Some(end + 1)),
            None => (available, None),
        };
        if !too_long {
            if line.len() + part.len() > MAX_ENTRY_BYTES {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(part);
            }
        }
        let used = complete.unwrap_or(available.len());
        reader.consume(used);
        if complete.is_none() {
            continue;
        }
        let item = if std::mem::take(&mut too_long) {
            Item::Dropped("too_large")
        } else if line.is_empty() {
            continue;
        } else {
            let bytes = line.len();
            match entry::parse(&line, shape) {
                Ok(parsed) => {
                    let (resource, record) = apply(&operators, parsed.record, &metrics, &id, &mut reported);
                    Item::Entry(Box::new(Read { resource, record, cursor: parsed.cursor, bytes }))
                }
                Err(e) => {
                    if reported < STDERR_LINES {
                        reported += 1;
                        warn!(receiver = %id, error = %e, "A line from journalctl is not a journal entry; skipped.");
                    }
                    Item::Dropped("invalid")
                }
            }
        };
        line.clear();
        if tx.send(item).await.is_err() {
            return;
        }
    }
}

/// The operators on one record: its resource and the record, or none when dropped.
fn apply(
    operators: &Operators,
    record: LogRecord,
    metrics: &JournaldMetrics,
    id: &ComponentId,
    reported: &mut usize,
) -> (Vec<KeyValue>, Option<LogRecord>) {
    if operators.is_empty() {
        return (Vec::new(), Some(record));
    }
    let mut report = Report::default();
    let out = operators.run(OperatorEntry { record, resource: std::borrow::Cow::Owned(Vec::new()) }, &mut report);
    if report.filtered > 0 {
        metrics.dropped("filtered").inc_by(report.filtered);
    }
    if report.dropped > 0 {
        metrics.dropped("operator_error").inc_by(report.dropped);
    }
    if let Some(message) = report.first_error
        && *reported < STDERR_LINES
    {
        *reported += 1;
        warn!(receiver = %id, error = %message, "An operator failed on a journal entry.");
    }
    match out {
        Some(entry) => (entry.resource.into_owned(), Some(entry.record)),
        None => (Vec::new(), None),
    }
}

async fn log_stderr(id: ComponentId, stderr: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(stderr).lines();
    let mut logged = 0;
    while let Ok(Some(line)) = lines.next_line().await {
        if logged < STDERR_LINES && !line.trim().is_empty() {
            logged += 1;
            warn!(receiver = %id, message = %line, "journalctl says this.");
        }
    }
}
