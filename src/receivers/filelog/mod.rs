//! The `filelog` receiver: tails files matched by globs, follows renames and
//! truncation by fingerprint and inode, and commits offsets only when the batch that
//! carried the lines has been acknowledged, so a restart (even after kill -9) loses no
//! line; lines in flight may repeat.
//!
//! Reading is blocking file I/O, so each receiver runs on its own thread and hands
//! batches to the pipelines with a blocking, backpressured send: while the pipelines
//! are full, the file simply stays unread on disk.

pub mod checkpoint;
pub mod config;
pub mod container;
pub mod finder;
pub mod multiline;
pub mod operators;
pub mod reader;
pub mod split;
pub mod watch;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

pub use config::FilelogConfig;

use super::StartError;
use crate::component::Consumer;
use crate::config::ComponentId;
use crate::pdata::json::hex;
use crate::pdata::{Ack, Batch, Payload};
use crate::storage::StateFile;
use crate::telemetry::{FilelogMetrics, ReceiverMetrics, Telemetry};
use checkpoint::{Checkpoint, KnownFile, PendingAcks};
use finder::Finder;
use reader::{Fingerprint, ReadSettings, TrackedFile};

pub const TYPE: &str = "filelog";

/// Records per batch handed to the pipelines.
const BATCH_RECORDS: usize = 1000;
/// Bytes read from one file per read call.
const READ_BUDGET: u64 = 256 << 10;
/// Bytes read from one file per poll, so one busy file cannot starve the others.
const FILE_POLL_BUDGET: u64 = 16 << 20;
/// Polls woken by file system events are at least this far apart.
const MIN_POLL_GAP: Duration = Duration::from_millis(20);
/// Within a long poll, acknowledged offsets are written at least this often.
const PERSIST_EVERY: Duration = Duration::from_millis(200);
/// How long a stopping receiver waits for its last batches to be acknowledged.
const STOP_ACK_WAIT: Duration = Duration::from_secs(5);
/// A file whose batch failed downstream is read again after this, doubling per
/// failure in a row up to [`MAX_RETRY_WAIT`]: the file is the buffer, it never gives up.
const FIRST_RETRY_WAIT: Duration = Duration::from_secs(1);
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

pub async fn start(
    id: &ComponentId,
    config: &FilelogConfig,
    consumer: Consumer,
    telemetry: &Telemetry,
    storage_dir: &Path,
    stop: CancellationToken,
    tracker: &TaskTracker,
) -> Result<(), StartError> {
    let finder = Finder::new(&config.include, &config.exclude).map_err(|e| StartError::Config(e.to_string()))?;
    crate::storage::create_private_dir(storage_dir)
        .map_err(|e| StartError::Storage(format!("cannot create storage directory {}: {e}", storage_dir.display())))?;
    let state = StateFile::new(storage_dir, &format!("{TYPE}_{id}"));
    // `start_at: end` applies to a first start only: with a state file (even an empty or
    // unreadable one) files are read from their checkpoint or the beginning.
    let loaded = state.load();
    let first_start = matches!(loaded, Ok(None));
    let checkpoint = match loaded {
        Ok(Some(bytes)) => Checkpoint::decode(&bytes).unwrap_or_else(|e| {
            warn!(receiver = %id, path = %state.path().display(), error = %e, "Checkpoint unreadable; ignoring it.");
            Checkpoint::default()
        }),
        Ok(None) => Checkpoint::default(),
        Err(e) => {
            warn!(receiver = %id, error = %e, "Checkpoint ignored.");
            Checkpoint::default()
        }
    };
    if !checkpoint.files.is_empty() {
        info!(receiver = %id, files = checkpoint.files.len(), "Resuming from checkpointed offsets.");
    }
    // Acknowledgements nudge the reader when it waits for them (no polling).
    let (acks_tx, acks_rx) = std::sync::mpsc::sync_channel::<()>(1);
    let tail = Tail {
        id: id.clone(),
        finder,
        settings: ReadSettings::new(config),
        start_at_end: config.start_at == config::StartAt::End && first_start,
        poll_interval: config.poll_interval.0,
        max_concurrent_files: config.max_concurrent_files,
        operators: operators::Operators::new(&config.operators).map_err(StartError::Config)?,
        checkpoint,
        state,
        consumer,
        metrics: telemetry.receiver(id, ""),
        file_metrics: telemetry.filelog(id),
        runtime: tokio::runtime::Handle::current(),
        stop,
        files: BTreeMap::new(),
        next_key: 0,
        committed: BTreeMap::new(),
        pending: PendingAcks::default(),
        persisted: None,
        persisted_signature: None,
        last_persist: std::time::Instant::now(),
        warned_limit: false,
        acks_tx,
        acks_rx,
        watch: None,
        forgotten: Default::default(),
        reported: Default::default(),
        delete_after_read: config.delete_after_read,
        exclude_older_than: config.exclude_older_than.map(|d| d.0).filter(|d| !d.is_zero()),
        quiet_errors: config.operators.iter().any(|o| match o {
            config::OperatorConfig::Container(c) => {
                matches!(c.on_error, container::OnError::SendQuiet | container::OnError::DropQuiet)
            }
            _ => false,
        }),
    };
    // inotify wakes the reader as soon as something changes; the poll interval stays as
    // the safety net (events can be missed, and files behind symlinks change elsewhere).
    let (wake_tx, wake_rx) = std::sync::mpsc::sync_channel::<()>(1);
    let roots = tail.finder.watch_roots().map(|(root, recursive)| (root.to_path_buf(), recursive)).collect::<Vec<_>>();
    let mut tail = tail;
    tail.watch = watch::DirWatch::start(roots.into_iter(), wake_tx.clone(), &tail.id);
    let stop_wake = tail.stop.clone();
    let acks_wake = tail.acks_tx.clone();
    tracker.spawn(async move {
        stop_wake.cancelled().await;
        let _ = wake_tx.try_send(());
        let _ = acks_wake.try_send(());
    });
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name(format!("filelog {id}"))
        .spawn(move || {
            tail.run(&wake_rx);
            let _ = done_tx.send(());
        })
        .map_err(|e| StartError::Storage(format!("cannot start the file reader thread: {e}")))?;
    tracker.spawn(async move {
        let _ = done_rx.await;
    });
    Ok(())
}

/// A file closed during this run: enough to continue it if its content shows up again.
struct Forgotten {
    fingerprint: Fingerprint,
    key: u64,
    /// Offset up to which its records were produced (sent, or dropped as blank).
    emitted: u64,
    path: String,
}

/// Closed files remembered per receiver.
const MAX_FORGOTTEN: usize = 1024;
/// A receiver whose directories inotify covers scans them with no event at least this
/// often (or every `poll_interval`, if longer).
const MIN_SCAN_PERIOD: Duration = Duration::from_secs(5);
/// A problem with one path is logged at most this often.
const REPORT_EVERY: Duration = Duration::from_secs(60);
/// Bytes of records per batch handed to the pipelines.
const BATCH_BYTES: u64 = 4 << 20;
/// File bytes read but not yet acknowledged downstream, per receiver. Past this,
/// reading waits: it bounds memory however large the exporters' queues are.
const MAX_IN_FLIGHT_BYTES: u64 = 8 << 20;

struct Tail {
    id: ComponentId,
    finder: Finder,
    settings: ReadSettings,
    /// First poll of a fresh start with `start_at: end`: existing files start at their end.
    start_at_end: bool,
    poll_interval: Duration,
    max_concurrent_files: usize,
    /// The operators after `container`.
    operators: operators::Operators,
    checkpoint: Checkpoint,
    state: StateFile,
    consumer: Consumer,
    metrics: ReceiverMetrics,
    file_metrics: FilelogMetrics,
    runtime: tokio::runtime::Handle,
    stop: CancellationToken,
    files: BTreeMap<u64, TrackedFile>,
    next_key: u64,
    /// Delivered offset per tracked file.
    committed: BTreeMap<u64, u64>,
    pending: PendingAcks,
    /// What was last written to the state file, and when.
    persisted: Option<Checkpoint>,
    persisted_signature: Option<Vec<(u64, u64, usize)>>,
    last_persist: std::time::Instant,
    warned_limit: bool,
    /// Nudged by each batch's acknowledgement as it resolves, and at stop.
    acks_tx: std::sync::mpsc::SyncSender<()>,
    acks_rx: std::sync::mpsc::Receiver<()>,
    /// inotify on the roots and on where followed links point; `None`: polling only.
    watch: Option<watch::DirWatch>,
    /// Paths whose problem was logged, and when (each at most once a minute).
    reported: std::collections::HashMap<PathBuf, std::time::Instant>,
    /// Files closed this run, newest last.
    forgotten: std::collections::VecDeque<Forgotten>,
    exclude_older_than: Option<Duration>,
    delete_after_read: bool,
    /// The container operator's `on_error` is `send_quiet` or `drop_quiet`: count its
    /// parse errors, do not log them.
    quiet_errors: bool,
}

/// Records gathered for one batch, per file (each file has its own resource), with
/// the file offsets they reach.
#[derive(Default)]
struct Gathered {
    records: BTreeMap<u64, (Vec<KeyValue>, Vec<LogRecord>)>,
    /// Records whose resource an operator changed, grouped by resource as they come.
    regrouped: Vec<(Vec<KeyValue>, Vec<LogRecord>)>,
    count: usize,
    bytes: u64,
    offsets: BTreeMap<u64, u64>,
}

impl Tail {
    fn run(mut self, wake: &std::sync::mpsc::Receiver<()>) {
        // The first poll scans; later ones scan on a file system event, when inotify
        // does not cover everything, or once the scan period has passed.
        let mut woke = true;
        let mut last_scan: Option<std::time::Instant> = None;
        while !self.stop.is_cancelled() {
            let started = std::time::Instant::now();
            let scan = woke || !self.covered() || last_scan.is_none_or(|at| at.elapsed() >= self.scan_period());
            if scan {
                last_scan = Some(started);
            }
            if !self.poll(scan) {
                break;
            }
            self.start_at_end = false;
            woke = wake.recv_timeout(self.next_wait(last_scan.unwrap_or(started))).is_ok();
            // Under a storm of events (a busy file), poll at most every MIN_POLL_GAP.
            let elapsed = started.elapsed();
            if elapsed < MIN_POLL_GAP && !self.stop.is_cancelled() {
                std::thread::sleep(MIN_POLL_GAP - elapsed);
            }
        }
        // The pipelines still run: give the last batches a moment to be acknowledged.
        let waited = std::time::Instant::now();
        loop {
            self.collect();
            let left = STOP_ACK_WAIT.saturating_sub(waited.elapsed());
            if self.pending.is_empty() || left.is_zero() {
                break;
            }
            let _ = self.acks_rx.recv_timeout(left);
        }
        self.persist();
        info!(receiver = %self.id, unacknowledged_batches = self.pending.len(), "File reader stopped.");
    }

    /// Whether inotify sees every change that matters: every root and the directory
    /// of every followed link watched, on local file systems, no watch refused. Then a
    /// poll with no event need not scan; the scan period stays as the safety net.
    fn covered(&self) -> bool {
        self.watch.as_ref().is_some_and(|w| w.covers(self.finder.watch_roots().map(|(root, _)| root)))
    }

    /// How often a covered receiver scans with no event: `poll_interval`, at least
    /// [`MIN_SCAN_PERIOD`].
    fn scan_period(&self) -> Duration {
        self.poll_interval.max(MIN_SCAN_PERIOD)
    }

    /// How long to wait for an event before the next poll: `poll_interval` while
    /// something needs time (a held partial line, unacknowledged batches, a file
    /// closing, inotify not covering everything), else until the next scan; sooner
    /// for a file waiting to be read again.
    fn next_wait(&self, last_scan: std::time::Instant) -> Duration {
        let now = std::time::Instant::now();
        let busy = !self.covered() || !self.pending.is_empty() || self.files.values().any(TrackedFile::needs_time);
        let mut wait =
            if busy { self.poll_interval } else { (last_scan + self.scan_period()).saturating_duration_since(now) };
        if let Some(retry) = self.files.values().filter_map(|f| f.retry_at).min() {
            wait = wait.min(retry.saturating_duration_since(now));
        }
        wait
    }

    /// One poll: find files (when `scan`), read what is new, send it, commit what was
    /// acknowledged. Without a scan only files that need time are read (a held last
    /// line to flush, a file closing, one due to be read again). False once the
    /// pipelines are closed.
    fn poll(&mut self, scan: bool) -> bool {
        let seen = if scan { self.discover() } else { self.files.keys().copied().collect() };
        let observed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        let mut gathered = Gathered::default();
        let now = std::time::Instant::now();
        let keys: Vec<u64> = self
            .files
            .iter()
            .filter(|(_, f)| scan || f.needs_time() || f.retry_at.is_some_and(|at| at <= now))
            .map(|(key, _)| *key)
            .collect();
        let mut finished = Vec::new();
        // Operator outcomes of the whole poll, logged once.
        let mut report = operators::Report::default();
        let mut error_path = None;
        for key in keys {
            let mut file_bytes = 0;
            // A file whose batch failed downstream waits out its backoff.
            if self.files.get(&key).and_then(|f| f.retry_at).is_some_and(|at| at > now) {
                continue;
            }
            while let Some(file) = self.files.get_mut(&key) {
                file.retry_at = None;
                let emitted_before = file.emitted;
                // A file no longer found is flushed at its end whatever force_flush_period says.
                let out = file.read(READ_BUDGET, &self.settings, observed, !seen.contains(&key));
                if let Some(e) = &out.error {
                    warn!(receiver = %self.id, path = %file.path.display(), error = %e, "Read failed; closing the file.");
                }
                if out.restarted {
                    self.committed.insert(key, 0);
                }
                file.refresh_fingerprint(self.settings.fingerprint_size);
                // At the end, with no partial line held: a file no longer found is done.
                let at_end = out.bytes == 0;
                let drained = at_end && out.end == file.read_offset;
                file_bytes += out.bytes;
                self.file_metrics.bytes_read.inc_by(out.bytes);
                self.file_metrics.lines_cut.inc_by(out.cut);
                if !seen.contains(&key) && !file.moved {
                    // Renamed out of the include, or deleted: finished through the open descriptor.
                    file.moved = true;
                    self.file_metrics.moves.inc();
                }
                if !out.parse_errors.is_empty() {
                    self.file_metrics.parse_errors.inc_by(out.parse_errors.len() as u64);
                    if !self.quiet_errors {
                        warn!(receiver = %self.id, path = %file.path.display(), errors = out.parse_errors.len(),
                            first = %out.parse_errors[0], "Lines the container operator could not parse.");
                    }
                }
                if file.metadata_missing {
                    file.metadata_missing = false;
                    self.file_metrics.parse_errors.inc();
                    warn!(receiver = %self.id, path = %file.path.display(),
                        "No Kubernetes metadata in this path (expected /var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log).");
                }
                gathered.bytes += out.bytes;
                let quiet =
                    out.bytes == 0 && out.records.is_empty() && out.end == emitted_before && out.error.is_none();
                let emitted = file.emitted;
                // Nothing new (the common case at idle): nothing to gather or commit.
                if !quiet {
                    let group = gathered.records.entry(key).or_insert_with(|| (file.resource.clone(), Vec::new()));
                    if self.operators.is_empty() {
                        gathered.count += out.records.len();
                        if group.1.is_empty() {
                            group.1 = out.records;
                        } else {
                            group.1.extend(out.records);
                        }
                    } else {
                        let errors_before = report.errors;
                        for record in out.records {
                            let entry = operators::field::Entry { record, resource: Cow::Borrowed(&file.resource) };
                            let Some(entry) = self.operators.run(entry, &mut report) else { continue };
                            gathered.count += 1;
                            match entry.resource {
                                Cow::Borrowed(_) => group.1.push(entry.record),
                                Cow::Owned(resource) => match gathered.regrouped.last_mut() {
                                    Some((last, records)) if *last == resource => records.push(entry.record),
                                    _ => gathered.regrouped.push((resource, vec![entry.record])),
                                },
                            }
                        }
                        if report.errors > errors_before && error_path.is_none() {
                            error_path = Some(file.path.clone());
                        }
                    }
                    gathered.offsets.insert(key, out.end);
                    if (gathered.count >= BATCH_RECORDS || gathered.bytes >= BATCH_BYTES) && !self.send(&mut gathered) {
                        return false;
                    }
                }
                if out.error.is_some() {
                    finished.push(key);
                    break;
                }
                if at_end {
                    // Renamed away or deleted, and read to the end: closed once all of
                    // it is delivered (until then a failed batch may need it again).
                    let delivered = self.committed.get(&key).is_some_and(|&c| c >= emitted);
                    if drained && !seen.contains(&key) && delivered {
                        finished.push(key);
                    }
                    break;
                }
                if file_bytes >= FILE_POLL_BUDGET || self.stop.is_cancelled() {
                    break;
                }
            }
        }
        if !gathered.offsets.is_empty() && !self.send(&mut gathered) {
            return false;
        }
        self.file_metrics.parse_errors.inc_by(report.errors);
        self.file_metrics.filtered.inc_by(report.filtered);
        self.file_metrics.dropped_on_error.inc_by(report.dropped);
        if let Some(first) = report.first_error {
            let path = error_path.map(|p| p.display().to_string()).unwrap_or_default();
            warn!(receiver = %self.id, %path, errors = report.errors, %first, "Operators failed on some records.");
        }
        for key in finished {
            self.forget(key);
        }
        self.collect();
        if self.delete_after_read {
            self.delete_delivered();
        }
        self.file_metrics.open_files.set(self.files.len() as i64);
        self.persist();
        true
    }

    /// `delete_after_read`: removes files read to the end whose every line was delivered.
    fn delete_delivered(&mut self) {
        let done: Vec<u64> = self
            .files
            .iter()
            .filter(|(key, file)| {
                file.read_offset > 0
                    && file.fully_read()
                    && file.emitted == file.read_offset
                    && self.committed.get(key).is_some_and(|&delivered| delivered >= file.read_offset)
            })
            .map(|(key, _)| *key)
            .collect();
        for key in done {
            let Some(file) = self.files.remove(&key) else { continue };
            self.committed.remove(&key);
            match std::fs::remove_file(&file.path) {
                Ok(()) => info!(receiver = %self.id, path = %file.path.display(), "Read and delivered; deleted."),
                Err(e) => {
                    warn!(receiver = %self.id, path = %file.path.display(), error = %e, "Cannot delete a file read to the end.")
                }
            }
        }
    }

    /// Commits what was acknowledged. Records refused for good are counted and passed;
    /// a file whose batch failed for now is read again from there, after a backoff.
    fn collect(&mut self) {
        let collected = self.pending.collect(&mut self.committed);
        if collected.rejected_records > 0 {
            self.file_metrics.rejected.inc_by(collected.rejected_records);
            warn!(receiver = %self.id, records = collected.rejected_records,
                "Records refused downstream for good (see the exporter's log); dropped, and reading goes on past them.");
        }
        for key in collected.delivered {
            if let Some(file) = self.files.get_mut(&key) {
                file.failures = 0;
            }
        }
        for key in collected.failed {
            self.read_again(key);
        }
        // Offsets of files neither open nor remembered are no longer needed.
        let forgotten: HashSet<u64> = self.forgotten.iter().map(|f| f.key).collect();
        self.committed.retain(|key, _| self.files.contains_key(key) || forgotten.contains(key));
    }

    /// A batch of file `key` failed downstream (retryable): the file goes back to its
    /// committed offset, the start of the failed range, and is read again after a
    /// backoff. It takes a new key, so the batches already sent past that offset
    /// neither commit nor fail it again; those lines are sent again (at least once).
    fn read_again(&mut self, key: u64) {
        let Some(offset) = self.committed.remove(&key) else { return };
        let Some(mut file) = self.files.remove(&key) else {
            // Closed since (truncated, unreadable): the lines cannot be read again.
            let path = self.forgotten.iter().find(|f| f.key == key).map(|f| f.path.clone()).unwrap_or_default();
            self.file_metrics.file_gone.inc();
            error!(receiver = %self.id, %path, offset,
                "A batch failed downstream and its file can no longer be read again; its lines are lost.");
            return;
        };
        file.rewind(offset, &self.settings);
        let wait = FIRST_RETRY_WAIT.saturating_mul(1 << file.failures.min(5)).min(MAX_RETRY_WAIT);
        file.failures = file.failures.saturating_add(1);
        file.retry_at = Some(std::time::Instant::now() + wait);
        if !self.stop.is_cancelled() {
            warn!(receiver = %self.id, path = %file.path.display(), offset, retry_in = ?wait,
                "A batch from this file failed downstream; reading it again from its last delivered offset.");
        }
        let new_key = self.next_key;
        self.next_key += 1;
        self.committed.insert(new_key, offset);
        self.files.insert(new_key, file);
    }

    /// Logs a problem with `path` at most once a minute per path (a bounded number of
    /// paths is remembered).
    fn report(&mut self, path: &Path, message: impl FnOnce() -> String) {
        let now = std::time::Instant::now();
        if self.reported.len() >= MAX_FORGOTTEN {
            self.reported.retain(|_, at| now.duration_since(*at) < REPORT_EVERY);
        }
        let due = self.reported.get(path).is_none_or(|at| now.duration_since(*at) >= REPORT_EVERY);
        if due && self.reported.len() < MAX_FORGOTTEN {
            self.reported.insert(path.to_path_buf(), now);
            warn!(receiver = %self.id, path = %path.display(), "{}", message());
        }
    }

    /// Closes a file but remembers where it was, so the same content found again (a
    /// rotated copy, a file dropped after an error) continues from there.
    fn forget(&mut self, key: u64) {
        let Some(file) = self.files.remove(&key) else { return };
        self.forgotten.push_back(Forgotten {
            fingerprint: file.fingerprint.clone(),
            key,
            emitted: file.emitted,
            path: file.path.display().to_string(),
        });
        while self.forgotten.len() > MAX_FORGOTTEN {
            if let Some(old) = self.forgotten.pop_front() {
                self.committed.remove(&old.key);
            }
        }
    }

    /// Matches this poll's paths to tracked files; returns the keys of files found, and
    /// of files the search could not tell about (an unreadable directory): those are
    /// not taken for moved or deleted.
    fn discover(&mut self) -> HashSet<u64> {
        if let Some(watch) = &self.watch {
            // A root removed and made again (or made after the start) is watched again.
            for (root, recursive) in self.finder.watch_roots() {
                watch.ensure(root, recursive);
            }
        }
        let mut seen = HashSet::new();
        let mut held_back = 0;
        let found = self.finder.find();
        for (dir, error) in &found.unreadable {
            self.report(dir, || format!("Cannot read this directory: {error}; its files are left as they were."));
        }
        if found.cut_short {
            let here = PathBuf::from("<search>");
            self.report(&here, || "The file search stopped at its bound (200,000 entries or 5 s); files it did not reach are left as they were.".into());
        }
        for link in &found.refused_links {
            self.report(link, || {
                "Not following this symlink: its owner could not read the target (the agent's privileges are not lent)."
                    .into()
            });
        }
        for (key, file) in &self.files {
            if found.unknown(&file.path) {
                seen.insert(*key);
            }
        }
        // Half the process's open files limit at most, so tailing never takes the
        // descriptors its servers need to accept a connection.
        let max_open = self.max_concurrent_files.min(open_files_limit() / 2).max(1);
        let mut by_inode: std::collections::HashMap<(u64, u64), u64> =
            self.files.iter().map(|(key, f)| ((f.device, f.inode), *key)).collect();
        for finder::FoundFile { path, device, inode } in found.files {
            let mut same_inode = by_inode.get(&(device, inode)).copied().filter(|key| self.files.contains_key(key));
            if same_inode.is_none() && !self.files.is_empty() {
                // The listing's inode can differ from the open file's (a file bind-mounted
                // on its own, FUSE, some overlays): ask the path itself before taking it
                // for a new file.
                if let Ok(meta) = std::fs::metadata(&path) {
                    use std::os::unix::fs::MetadataExt;
                    same_inode =
                        by_inode.get(&(meta.dev(), meta.ino())).copied().filter(|key| self.files.contains_key(key));
                }
            }
            if let Some(key) = same_inode {
                let valid = self.files.get_mut(&key).is_some_and(|f| f.still_valid(&self.settings));
                if valid {
                    if let Some(file) = self.files.get_mut(&key) {
                        file.path = path;
                    }
                    seen.insert(key);
                    continue;
                }
                // Truncated (copytruncate) or rewritten in place: a new file from offset 0.
                info!(receiver = %self.id, path = %path.display(), "File was truncated or replaced; reading it from the start.");
                self.file_metrics.truncations.inc();
                self.forget(key);
            }
            if let Some(age) = self.exclude_older_than
                && std::fs::metadata(&path)
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|since| since > age)
            {
                continue;
            }
            if self.files.len() >= max_open {
                // Read later, when files now open are finished.
                held_back += 1;
                continue;
            }
            if let Some(key) = self.track(&path) {
                seen.insert(key);
                // The same file under a second path in this search is this one.
                if let Some(file) = self.files.get(&key) {
                    by_inode.insert((file.device, file.inode), key);
                }
            }
        }
        if held_back > 0 && !self.warned_limit {
            warn!(receiver = %self.id, held_back, max_concurrent_files = self.max_concurrent_files, max_open,
                open_files_limit = open_files_limit(),
                "More matching files than this receiver may keep open (max_concurrent_files, and half the open files limit); the rest wait until open ones are finished.");
            self.warned_limit = true;
        }
        seen
    }

    fn track(&mut self, path: &PathBuf) -> Option<u64> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                self.file_metrics.open_errors.inc();
                self.report(path, || format!("Cannot open this file: {e}; trying again at each poll."));
                return None;
            }
        };
        let gzip = self.settings.is_gzip(&file);
        let fingerprint = match Fingerprint::of(&file, self.settings.fingerprint_size, gzip) {
            Ok(fingerprint) => fingerprint,
            Err(e) => {
                // Most likely a plain file under `compression: gzip`.
                self.file_metrics.open_errors.inc();
                self.report(path, || format!("Cannot read this file (gzip: {gzip}): {e}; skipping it."));
                return None;
            }
        };
        if fingerprint.0.is_empty() {
            return None; // Empty: wait until it has content.
        }
        // A full fingerprint equal to one being read is the same content under another
        // name (a rotated copy): it is already being read. Shorter, equal fingerprints
        // may be different small files, and are read.
        let full = fingerprint.0.len() == self.settings.fingerprint_size;
        if full && self.files.values().any(|f| f.fingerprint == fingerprint) {
            return None;
        }
        // A gzip file whose decompressed start is still short and is the start of a file
        // being read is most likely that file being compressed (a rotation to `.gz`):
        // it waits until the original is finished, then continues where it was read.
        if gzip && !full && self.files.values().any(|f| f.fingerprint.starts_with(&fingerprint)) {
            return None;
        }
        // A gzip file's offsets count decompressed bytes, which its size does not bound.
        let size = if gzip { u64::MAX } else { file.metadata().ok()?.len() };
        // Content seen before in this run (the longest match): continue where it was.
        let remembered = self
            .forgotten
            .iter()
            .enumerate()
            .filter(|(_, f)| fingerprint.starts_with(&f.fingerprint))
            .max_by_key(|(_, f)| f.fingerprint.0.len())
            .map(|(i, _)| i);
        let (key, offset) = match remembered.and_then(|i| self.forgotten.remove(i)) {
            Some(old) if old.emitted <= size => (old.key, old.emitted),
            _ => {
                let offset = match self.checkpoint.take_offset_for(&fingerprint) {
                    Some(offset) if offset <= size => offset,
                    _ if self.start_at_end && gzip => reader::gzip_len(&file),
                    _ if self.start_at_end => size,
                    _ => 0,
                };
                let key = self.next_key;
                self.next_key += 1;
                self.committed.insert(key, offset);
                (key, offset)
            }
        };
        // A file behind a symlink changes where the link points: watch there too.
        if let Some(watch) = &self.watch
            && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
            && let Some(dir) = finder::resolve(path).parent()
        {
            watch.add_dir(dir);
        }
        self.files.insert(key, TrackedFile::open(path, file, fingerprint, offset, gzip, &self.settings));
        Some(key)
    }

    /// Sends the gathered records as one batch, waiting while the pipelines are full.
    fn send(&mut self, gathered: &mut Gathered) -> bool {
        let Gathered { records, regrouped, count, offsets, bytes } = std::mem::take(gathered);
        let count = count as u64;
        let (ack, waiter) = Ack::with_wake(self.acks_tx.clone());
        if count == 0 {
            // Only offsets moved (blank lines, the end of a file): nothing to send, but
            // the commit still waits its turn behind the batches before it.
            drop(ack);
            self.pending.push(waiter, offsets.into_iter().collect(), 0, 0);
            return true;
        }
        let resource_logs = records
            .into_values()
            .chain(regrouped)
            .filter(|(_, records)| !records.is_empty())
            .map(|(attributes, records)| ResourceLogs {
                resource: Some(Resource { attributes, ..Default::default() }),
                scope_logs: vec![ScopeLogs { log_records: records, ..Default::default() }],
                schema_url: String::new(),
            })
            .collect();
        let payload = Payload::Logs(ExportLogsServiceRequest { resource_logs });
        let batch = Batch::with_ack(payload, ack);
        let consumer = self.consumer.clone();
        if self.runtime.block_on(consumer.consume(batch)).is_err() {
            return false;
        }
        self.metrics.accepted(crate::pdata::Signal::Logs).inc_by(count);
        self.pending.push(waiter, offsets.into_iter().collect(), bytes, count);
        // Bounded memory: past MAX_IN_FLIGHT_BYTES of unacknowledged data, reading
        // waits for acknowledgements (the lines wait on disk, not in memory). Each
        // acknowledgement, and the stop, nudges `acks_rx`: no wake-up without news.
        loop {
            self.collect();
            if self.pending.bytes() < MAX_IN_FLIGHT_BYTES || self.stop.is_cancelled() {
                break;
            }
            let _ = self.acks_rx.recv();
            if self.last_persist.elapsed() >= PERSIST_EVERY {
                self.persist();
            }
        }
        // A long poll (a big backlog) commits as it goes, so a crash repeats only what
        // was in flight, not the whole poll.
        if self.last_persist.elapsed() >= PERSIST_EVERY {
            self.collect();
            self.persist();
        }
        true
    }

    /// Writes the delivered offsets of open files, of files closed this run, and of
    /// start-up entries not matched yet, if they changed.
    fn persist(&mut self) {
        // What the checkpoint depends on, cheap to compare: at idle nothing moved, and
        // encoding it (hex of every fingerprint) is skipped. Paths are for people only.
        let signature: Vec<(u64, u64, usize)> = self
            .files
            .iter()
            .map(|(key, file)| (*key, self.committed.get(key).copied().unwrap_or(0), file.fingerprint.0.len()))
            .chain(
                self.forgotten
                    .iter()
                    .map(|f| (f.key, self.committed.get(&f.key).copied().unwrap_or(0), f.fingerprint.0.len())),
            )
            .chain(std::iter::once((u64::MAX, self.checkpoint.files.len() as u64, 0)))
            .collect();
        if self.persisted_signature.as_ref() == Some(&signature) {
            return;
        }
        let mut files: Vec<KnownFile> = self
            .files
            .iter()
            .map(|(key, file)| KnownFile {
                fingerprint: hex(&file.fingerprint.0),
                offset: self.committed.get(key).copied().unwrap_or(0),
                path: file.path.display().to_string(),
            })
            .collect();
        files.extend(self.forgotten.iter().map(|f| KnownFile {
            fingerprint: hex(&f.fingerprint.0),
            offset: self.committed.get(&f.key).copied().unwrap_or(0),
            path: f.path.clone(),
        }));
        files.extend(self.checkpoint.files.iter().take(MAX_FORGOTTEN).cloned());
        let checkpoint = Checkpoint { files };
        if self.persisted.as_ref() == Some(&checkpoint) {
            self.persisted_signature = Some(signature);
            return;
        }
        self.last_persist = std::time::Instant::now();
        match self.state.store(&checkpoint.encode()) {
            Ok(()) => {
                self.persisted = Some(checkpoint);
                self.persisted_signature = Some(signature);
            }
            Err(e) => warn!(receiver = %self.id, error = %e, "Cannot write the checkpoint; will retry."),
        }
    }
}

/// The process's soft limit on open files, read at each poll (an operator may change
/// it while the agent runs).
fn open_files_limit() -> usize {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return usize::MAX;
    }
    usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
}
