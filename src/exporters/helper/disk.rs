//! A sending queue on disk (`sending_queue.storage`): what an exporter has taken but
//! not delivered survives a restart, a kill -9 and (per `fsync`) a power cut.
//!
//! The queue is a directory of segment files, each a run of records:
//!
//! ```text
//! record  = length: u32 LE | crc32(body): u32 LE | body
//! body    = format (1): u8 | signal: u8 | items: u32 LE | metadata length: u32 LE
//!           | metadata | the OTLP export request, protobuf
//! ```
//!
//! Records are appended to the newest segment and read in order. A record is done once
//! its export is settled (delivered, or dropped for good and counted); the head (the
//! first record not done) is saved now and then, and segments wholly before it are
//! deleted. After a restart everything from the saved head on is sent again: at least
//! once, as the delivery tokens promise.
//!
//! On opening, every record is checked. A torn tail (the agent died mid-write) is cut
//! off; a record that fails its checksum or cannot be read, and the rest of its segment
//! (whose boundaries can no longer be trusted), is moved to `quarantine/`, counted and
//! logged once; the other segments are replayed. Nothing here panics or loops on bad
//! bytes.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use prost::Message;
use tokio::sync::Notify;
use tracing::{debug, error, info, warn};

use super::Sizer;
use crate::config::ComponentId;
use crate::pdata::{Batch, Metadata, Payload, Signal};
use crate::storage::StateFile;

/// A segment is closed for appends past this size.
const SEGMENT_BYTES: u64 = 8 << 20;
const HEADER: u64 = 8;
/// Body prefix: format, signal, items, metadata length.
const PREFIX: usize = 10;
const FORMAT: u8 = 1;
/// No record is larger (a whole export request, encoded).
pub const MAX_RECORD: u64 = 512 << 20;

/// When written records reach the disk itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// Before the batch counts as taken (`file_storage.fsync: true`): a power cut
    /// loses nothing acknowledged.
    Always,
    /// At most this long after the write (`fsync_interval`): a kill -9 loses nothing
    /// (the kernel has the data), a power cut loses up to this much.
    Every(Duration),
}

/// Where and how a queue keeps its records.
#[derive(Clone, Debug, PartialEq)]
pub struct DiskSettings {
    pub directory: PathBuf,
    pub fsync: Fsync,
    /// Bytes on disk at most (ocelot's `sending_queue.max_bytes`).
    pub max_bytes: u64,
    /// `queue_size` in `sizer` units.
    pub sizer: Sizer,
    pub queue_size: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    segment: u64,
    offset: u64,
}

/// A record's place and what it counts.
#[derive(Clone, Copy, Debug)]
pub struct Record {
    at: Position,
    /// Body length.
    len: u64,
    items: u64,
}

impl Record {
    fn cost(&self, sizer: Sizer) -> u64 {
        match sizer {
            Sizer::Requests => 1,
            Sizer::Items => self.items,
            Sizer::Bytes => self.len,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("persistent queue {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("a batch of {0} bytes is larger than a persistent queue record may be")]
    TooLarge(u64),
}

/// What a queue holds, in each unit that bounds it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub records: u64,
    pub cost: u64,
    pub bytes: u64,
}

struct State {
    /// The segment appended to, opened on the first append.
    writer: Option<File>,
    write: Position,
    /// Written, not yet handed to an export, in order.
    pending: VecDeque<Record>,
    /// Handed to an export, not yet done.
    outstanding: BTreeSet<Position>,
    used: Usage,
    /// The head as last saved.
    saved: Position,
    /// Appended since the last fsync.
    dirty: bool,
    /// The batches appended by this process and not yet handed out, up to
    /// [`CACHE_BYTES`] of records: handed out from here, not read back and decoded.
    /// The disk copy is for a restart.
    cache: HashMap<Position, (Arc<Payload>, Metadata)>,
    cached_bytes: u64,
}

/// Records' bytes whose batches stay in memory for the consumers, per queue.
const CACHE_BYTES: u64 = 16 << 20;

/// What opening a queue found, for the log and `ocelot validate --storage`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    pub records: u64,
    pub bytes: u64,
    pub segments: u64,
    /// Bytes of torn tails cut off.
    pub torn: u64,
    /// Parts moved to `quarantine/`, and their bytes.
    pub quarantined: u64,
    pub quarantined_bytes: u64,
}

/// Counters a queue moves.
#[derive(Clone, Default)]
pub struct DiskMetrics {
    pub quarantined: prometheus_client::metrics::counter::Counter,
    pub bytes: prometheus_client::metrics::gauge::Gauge,
}

pub struct DiskQueue {
    id: ComponentId,
    settings: DiskSettings,
    state: Mutex<State>,
    head: StateFile,
    /// A record was appended.
    appended: Notify,
    /// Room was freed.
    freed: Notify,
    /// Something to fsync or a head to save (or the queue is gone).
    work: Arc<Notify>,
    metrics: DiskMetrics,
}

/// Queues open in this process, by directory: an exporter restarted by a reload
/// takes over the running instance's queue instead of opening it twice.
static OPEN: Mutex<Option<HashMap<PathBuf, Weak<DiskQueue>>>> = Mutex::new(None);

impl DiskQueue {
    /// Opens (or takes over) the queue in `settings.directory`, checking every record;
    /// `true` when it was opened now, not taken over.
    pub fn open(
        id: &ComponentId,
        settings: DiskSettings,
        metrics: DiskMetrics,
    ) -> Result<(Arc<DiskQueue>, bool), DiskError> {
        let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
        let open = open.get_or_insert_with(HashMap::new);
        open.retain(|_, queue| queue.strong_count() > 0);
        if let Some(queue) = open.get(&settings.directory).and_then(Weak::upgrade) {
            return Ok((queue, false));
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| DiskError::Io { path, source }
        };
        let dir = &settings.directory;
        crate::storage::create_private_dir(dir).map_err(io(dir))?;
        let head = StateFile::new(dir, "head");
        let saved = match head.load() {
            Ok(Some(bytes)) => decode_position(&bytes).unwrap_or_default(),
            Ok(None) => Position::default(),
            Err(e) => {
                warn!(exporter = %id, error = %e, "The persistent queue's head cannot be read; replaying every segment.");
                Position::default()
            }
        };
        let (pending, scan, last) = recover(dir, saved, &metrics).map_err(io(dir))?;
        let used = pending.iter().fold(Usage::default(), |mut used, r| {
            used.records += 1;
            used.cost += r.cost(settings.sizer);
            used.bytes += HEADER + r.len;
            used
        });
        metrics.bytes.set(used.bytes as i64);
        if scan.records > 0 || scan.quarantined > 0 || scan.torn > 0 {
            info!(exporter = %id, records = scan.records, bytes = scan.bytes, torn = scan.torn,
                quarantined = scan.quarantined, "Persistent queue opened; replaying what it holds.");
        }
        let start = pending.front().map(|r| r.at).unwrap_or(Position { segment: last + 1, offset: 0 });
        let state = State {
            writer: None,
            write: Position { segment: last + 1, offset: 0 },
            pending,
            outstanding: BTreeSet::new(),
            used,
            saved: start,
            dirty: false,
            cache: HashMap::new(),
            cached_bytes: 0,
        };
        let queue = Arc::new(DiskQueue {
            id: id.clone(),
            settings,
            state: Mutex::new(state),
            head,
            appended: Notify::new(),
            freed: Notify::new(),
            work: Arc::new(Notify::new()),
            metrics,
        });
        open.insert(queue.settings.directory.clone(), Arc::downgrade(&queue));
        Ok((queue, true))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn usage(&self) -> Usage {
        self.lock().used
    }

    /// Whether `record` fits beside what is held; anything fits an empty queue.
    fn fits(&self, used: &Usage, cost: u64, bytes: u64) -> bool {
        used.records == 0
            || (used.cost + cost <= self.settings.queue_size && used.bytes + bytes <= self.settings.max_bytes)
    }

    /// Writes `batch` as a record, waiting for room first (backpressure: a full
    /// persistent queue never drops). Once this returns `Ok` the batch is safe. The
    /// encoding, the write and any fsync run on a blocking thread, not the runtime's.
    pub async fn append(self: &Arc<Self>, batch: &Batch) -> Result<(), DiskError> {
        let lost = |e: tokio::task::JoinError| DiskError::Io {
            path: self.settings.directory.clone(),
            source: std::io::Error::other(e),
        };
        let (payload, metadata) = (batch.payload.clone(), batch.metadata.clone());
        let body = tokio::task::spawn_blocking(move || encode(&payload, &metadata)).await.map_err(lost)?;
        if body.len() as u64 > MAX_RECORD {
            return Err(DiskError::TooLarge(body.len() as u64));
        }
        let items = batch.payload.item_count() as u64;
        let record_cost = Record { at: Position::default(), len: body.len() as u64, items }.cost(self.settings.sizer);
        let bytes = HEADER + body.len() as u64;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.fits(&self.lock().used, record_cost, bytes) {
                break;
            }
            freed.await;
        }
        let queue = self.clone();
        let cached = (batch.payload.clone(), batch.metadata.clone());
        tokio::task::spawn_blocking(move || queue.write(&body, items, record_cost, cached)).await.map_err(lost)??;
        self.appended.notify_one();
        if let Fsync::Every(_) = self.settings.fsync {
            self.work.notify_one();
        }
        Ok(())
    }

    /// Appends one record's frame to the newest segment (blocking).
    fn write(
        &self,
        body: &[u8],
        items: u64,
        record_cost: u64,
        cached: (Arc<Payload>, Metadata),
    ) -> Result<(), DiskError> {
        let bytes = HEADER + body.len() as u64;
        let mut frame = Vec::with_capacity(bytes as usize);
        frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        frame.extend_from_slice(body);
        let sync = {
            let mut state = self.lock();
            if state.writer.is_none() || state.write.offset >= SEGMENT_BYTES {
                if state.writer.is_some() {
                    state.write = Position { segment: state.write.segment + 1, offset: 0 };
                }
                let path = segment_path(&self.settings.directory, state.write.segment);
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|source| DiskError::Io { path: path.clone(), source })?;
                // What a previous run left in this segment (nothing, normally) stays.
                state.write.offset = file.metadata().map(|m| m.len()).unwrap_or(0);
                if let Some(old) = state.writer.replace(file) {
                    let _ = old.sync_data();
                }
            }
            let at = state.write;
            let written = state.writer.as_mut().map(|file| file.write_all(&frame));
            if let Some(Err(source)) = written {
                // A partial write is cut off so the segment stays readable.
                let path = segment_path(&self.settings.directory, at.segment);
                if let Some(file) = &state.writer {
                    let _ = file.set_len(at.offset);
                }
                return Err(DiskError::Io { path, source });
            }
            state.write.offset += bytes;
            state.pending.push_back(Record { at, len: body.len() as u64, items });
            if state.cached_bytes + bytes <= CACHE_BYTES.min(self.settings.max_bytes) {
                state.cached_bytes += bytes;
                state.cache.insert(at, cached);
            }
            state.used.records += 1;
            state.used.cost += record_cost;
            state.used.bytes += bytes;
            state.dirty = true;
            self.metrics.bytes.set(state.used.bytes as i64);
            match self.settings.fsync {
                Fsync::Always => state.writer.as_ref().and_then(|f| f.try_clone().ok()),
                Fsync::Every(_) => None,
            }
        };
        // Outside the lock: appends behind this one need not wait for the disk.
        if let Some(file) = sync {
            file.sync_data().map_err(|source| DiskError::Io { path: self.settings.directory.clone(), source })?;
        }
        Ok(())
    }

    /// The next record in order, read back and decoded. A record that no longer
    /// passes its checksum or cannot be decoded is quarantined and skipped.
    pub async fn next(self: &Arc<Self>) -> (Record, Batch) {
        loop {
            let record = loop {
                let appended = self.appended.notified();
                tokio::pin!(appended);
                appended.as_mut().enable();
                let popped = {
                    let mut state = self.lock();
                    let record = state.pending.pop_front();
                    record.map(|record| {
                        state.outstanding.insert(record.at);
                        let cached = state.cache.remove(&record.at);
                        if cached.is_some() {
                            state.cached_bytes = state.cached_bytes.saturating_sub(HEADER + record.len);
                        }
                        (record, cached)
                    })
                };
                match popped {
                    Some((record, Some((payload, metadata)))) => {
                        let batch = Batch { payload, acks: Vec::new(), metadata };
                        return (record, batch);
                    }
                    Some((record, None)) => break record,
                    None => appended.await,
                }
            };
            // Read back and decoded on a blocking thread.
            let queue = self.clone();
            let read = tokio::task::spawn_blocking(move || queue.read(&record))
                .await
                .unwrap_or_else(|e| Err(format!("the read stopped: {e}")));
            match read {
                Ok(batch) => return (record, batch),
                Err(reason) => {
                    self.quarantine_record(&record, &reason);
                    self.complete(&record);
                }
            }
        }
    }

    fn read(&self, record: &Record) -> Result<Batch, String> {
        let path = segment_path(&self.settings.directory, record.at.segment);
        let file = File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut frame = vec![0; (HEADER + record.len) as usize];
        file.read_exact_at(&mut frame, record.at.offset).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let (header, body) = frame.split_at(HEADER as usize);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if crc32fast::hash(body) != crc {
            return Err("the record fails its checksum".into());
        }
        decode(body)
    }

    /// `record`'s export is settled: it is done, its room freed, and segments wholly
    /// before the new head deleted.
    pub fn complete(&self, record: &Record) {
        let removable = {
            let mut state = self.lock();
            if !state.outstanding.remove(&record.at) {
                return;
            }
            state.used.records = state.used.records.saturating_sub(1);
            state.used.cost = state.used.cost.saturating_sub(record.cost(self.settings.sizer));
            state.used.bytes = state.used.bytes.saturating_sub(HEADER + record.len);
            self.metrics.bytes.set(state.used.bytes as i64);
            let head = head_of(&state);
            (state.saved.segment..head.segment).collect::<Vec<_>>()
        };
        for segment in removable {
            match std::fs::remove_file(segment_path(&self.settings.directory, segment)) {
                Ok(()) => debug!(exporter = %self.id, segment, "Persistent queue segment delivered; removed."),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => warn!(exporter = %self.id, segment, error = %e, "Cannot remove a delivered segment."),
            }
        }
        self.freed.notify_waiters();
        self.work.notify_one();
    }

    /// `record` was handed out but its export stopped before it settled: it goes back
    /// to its place in the queue, to be sent again.
    pub fn requeue(&self, record: &Record) {
        {
            let mut state = self.lock();
            if !state.outstanding.remove(&record.at) {
                return;
            }
            let place = state.pending.partition_point(|r| r.at < record.at);
            state.pending.insert(place, *record);
        }
        self.appended.notify_one();
    }

    /// Fsyncs what was appended and saves the head, if either changed. Called by
    /// [`DiskQueue::run`] and when the queue closes.
    fn sync(&self) {
        let (file, head) = {
            let mut state = self.lock();
            let file = if state.dirty { state.writer.as_ref().and_then(|f| f.try_clone().ok()) } else { None };
            state.dirty = false;
            let head = head_of(&state);
            let changed = head != state.saved;
            state.saved = head;
            (file, changed.then_some(head))
        };
        if let Some(file) = file
            && let Err(e) = file.sync_data()
        {
            error!(exporter = %self.id, error = %e, "Cannot fsync the persistent queue.");
        }
        if let Some(head) = head
            && let Err(e) = self.head.store(&encode_position(head))
        {
            warn!(exporter = %self.id, error = %e, "Cannot save the persistent queue's head; more may be sent again after a restart.");
        }
    }

    /// Fsyncs at most every `fsync_interval` (and saves the head) while there is
    /// something to do; sleeps otherwise. Ends when the queue is gone.
    pub async fn run(queue: Weak<DiskQueue>) {
        let Some((interval, work)) = queue.upgrade().map(|q| {
            let interval = match q.settings.fsync {
                Fsync::Every(interval) => interval,
                Fsync::Always => Duration::from_secs(1),
            };
            (interval, q.work.clone())
        }) else {
            return;
        };
        loop {
            work.notified().await;
            if queue.strong_count() == 0 {
                return;
            }
            tokio::time::sleep(interval).await;
            let Some(strong) = queue.upgrade() else { return };
            // fsync blocks; the last handle dropping there syncs once more, harmlessly.
            let _ = tokio::task::spawn_blocking(move || strong.sync()).await;
        }
    }

    fn quarantine_record(&self, record: &Record, reason: &str) {
        let path = segment_path(&self.settings.directory, record.at.segment);
        let bytes = File::open(&path).ok().and_then(|file| {
            let mut frame = vec![0; (HEADER + record.len) as usize];
            file.read_exact_at(&mut frame, record.at.offset).ok().map(|()| frame)
        });
        let moved = quarantine(&self.settings.directory, record.at, &bytes.unwrap_or_default());
        self.metrics.quarantined.inc();
        error!(exporter = %self.id, segment = record.at.segment, offset = record.at.offset, %reason,
            moved_to = %moved.display(), "A persistent queue record is corrupt; quarantined and skipped.");
    }
}

impl Drop for DiskQueue {
    fn drop(&mut self) {
        self.sync();
        self.work.notify_one();
    }
}

/// The first record not done.
fn head_of(state: &State) -> Position {
    let candidates = [state.outstanding.first().copied(), state.pending.front().map(|r| r.at), Some(state.write)];
    candidates.into_iter().flatten().min().unwrap_or(state.write)
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}.seg"))
}

fn encode_position(at: Position) -> Vec<u8> {
    let mut out = at.segment.to_le_bytes().to_vec();
    out.extend_from_slice(&at.offset.to_le_bytes());
    out
}

fn decode_position(bytes: &[u8]) -> Option<Position> {
    let segment = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let offset = u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?);
    Some(Position { segment, offset })
}

fn encode(payload: &Payload, batch_metadata: &Metadata) -> Vec<u8> {
    let mut metadata = Vec::new();
    batch_metadata.encode(&mut metadata);
    let mut body = Vec::with_capacity(PREFIX + metadata.len() + payload.encoded_len());
    body.push(FORMAT);
    body.push(payload.signal().index() as u8);
    body.extend_from_slice(&(payload.item_count() as u32).to_le_bytes());
    body.extend_from_slice(&(metadata.len() as u32).to_le_bytes());
    body.extend_from_slice(&metadata);
    match payload {
        Payload::Traces(r) => r.encode_raw(&mut body),
        Payload::Metrics(r) => r.encode_raw(&mut body),
        Payload::Logs(r) => r.encode_raw(&mut body),
    }
    body
}

/// The record's body as a batch (with no acknowledgement: the queue's own is added by
/// whoever reads it).
fn decode(body: &[u8]) -> Result<Batch, String> {
    let (items, metadata_len) = prefix(body)?;
    let _ = items;
    let signal = Signal::ALL.get(body[1] as usize).copied().ok_or("unknown signal")?;
    let meta_end = PREFIX + metadata_len;
    let metadata = Metadata::decode(&body[PREFIX..meta_end]).ok_or("unreadable metadata")?;
    let proto = &body[meta_end..];
    let payload = match signal {
        Signal::Traces => Payload::Traces(Message::decode(proto).map_err(|e| e.to_string())?),
        Signal::Metrics => Payload::Metrics(Message::decode(proto).map_err(|e| e.to_string())?),
        Signal::Logs => Payload::Logs(Message::decode(proto).map_err(|e| e.to_string())?),
    };
    Ok(Batch::new(payload).with_metadata(metadata))
}

/// Items and metadata length, from a body whose format this version reads.
fn prefix(body: &[u8]) -> Result<(u64, usize), String> {
    if body.len() < PREFIX {
        return Err("the record is too short".into());
    }
    if body[0] != FORMAT {
        return Err(format!("record format {} is not one this version reads", body[0]));
    }
    let items = u32::from_le_bytes([body[2], body[3], body[4], body[5]]) as u64;
    let metadata_len = u32::from_le_bytes([body[6], body[7], body[8], body[9]]) as usize;
    if PREFIX + metadata_len > body.len() {
        return Err("the record's metadata runs past its end".into());
    }
    Ok((items, metadata_len))
}

/// Segment numbers in `dir`, ascending.
fn segments(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut found: Vec<u64> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().to_str()?.strip_suffix(".seg")?.parse().ok())
        .collect();
    found.sort_unstable();
    Ok(found)
}

/// Moves `bytes` (found at `at`) to `quarantine/`; returns where.
fn quarantine(dir: &Path, at: Position, bytes: &[u8]) -> PathBuf {
    let aside = dir.join("quarantine");
    let path = aside.join(format!("{:020}-{:012}.bad", at.segment, at.offset));
    let written = crate::storage::create_private_dir(&aside).and_then(|()| {
        let mut file = OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(&path)?;
        file.write_all(bytes)
    });
    if let Err(e) = written {
        warn!(path = %path.display(), error = %e, "Cannot keep the quarantined bytes; they are dropped.");
    }
    path
}

/// Scans the segments from `head`: the records to replay, what was found, and the
/// last segment number (0 when none). Segments before the head are deleted; torn
/// tails are cut off; corrupt parts are quarantined.
fn recover(dir: &Path, head: Position, metrics: &DiskMetrics) -> std::io::Result<(VecDeque<Record>, Scan, u64)> {
    let mut scan = Scan::default();
    let mut pending = VecDeque::new();
    let all = segments(dir)?;
    let last = all.last().copied().unwrap_or(0);
    for &segment in &all {
        let path = segment_path(dir, segment);
        if segment < head.segment {
            std::fs::remove_file(&path)?;
            continue;
        }
        scan.segments += 1;
        let start = if segment == head.segment { head.offset } else { 0 };
        let is_last = segment == last;
        let found = scan_segment(&path, segment, start, is_last, &mut scan, metrics)?;
        pending.extend(found);
    }
    Ok((pending, scan, last))
}

/// Where a segment stops being readable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bad {
    pub offset: usize,
    /// Cut short (a torn write) rather than wrong.
    pub short: bool,
    pub what: &'static str,
}

/// Parses the records of one segment's bytes from `start`: each good record's offset,
/// body length and items, and where (and why) the bytes stop making sense. Never
/// panics, whatever the bytes.
pub fn parse_segment(bytes: &[u8], start: usize) -> (Vec<(usize, u64, u64)>, Option<Bad>) {
    let mut records = Vec::new();
    let mut at = start.min(bytes.len());
    let bad = |offset, short, what| Some(Bad { offset, short, what });
    loop {
        let rest = &bytes[at..];
        if rest.is_empty() {
            return (records, None);
        }
        if rest.len() < HEADER as usize {
            return (records, bad(at, true, "a partial record header"));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as u64;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len > MAX_RECORD || (len as usize) < PREFIX {
            return (records, bad(at, false, "an impossible record length"));
        }
        let Some(body) = rest.get(HEADER as usize..(HEADER + len) as usize) else {
            return (records, bad(at, true, "a record cut short"));
        };
        if crc32fast::hash(body) != crc {
            return (records, bad(at, false, "a record that fails its checksum"));
        }
        match prefix(body) {
            Ok((items, _)) => records.push((at, len, items)),
            Err(_) => return (records, bad(at, false, "a record in a format this version does not read")),
        }
        at += (HEADER + len) as usize;
    }
}

/// One segment's good records from `start`; cuts a torn tail (the last segment only)
/// or quarantines what follows a bad record.
fn scan_segment(
    path: &Path,
    segment: u64,
    start: u64,
    is_last: bool,
    scan: &mut Scan,
    metrics: &DiskMetrics,
) -> std::io::Result<Vec<Record>> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let (found, bad) = parse_segment(&bytes, start as usize);
    let records: Vec<Record> = found
        .into_iter()
        .map(|(offset, len, items)| Record { at: Position { segment, offset: offset as u64 }, len, items })
        .collect();
    scan.records += records.len() as u64;
    scan.bytes += records.iter().map(|r| HEADER + r.len).sum::<u64>();
    if let Some(Bad { offset, short, what }) = bad {
        let lost = bytes.len() as u64 - offset as u64;
        let file = OpenOptions::new().write(true).open(path)?;
        if short && is_last {
            // The agent died while writing it: nothing acknowledged is in it.
            scan.torn += lost;
            warn!(path = %path.display(), offset, bytes = lost, "The persistent queue ends in a torn record (the agent stopped mid-write); cut off.");
        } else {
            let moved = quarantine(
                path.parent().unwrap_or(path),
                Position { segment, offset: offset as u64 },
                &bytes[offset..],
            );
            scan.quarantined += 1;
            scan.quarantined_bytes += lost;
            metrics.quarantined.inc();
            error!(path = %path.display(), offset, bytes = lost, found = what, moved_to = %moved.display(),
                "The persistent queue holds corrupt data; the rest of this segment is quarantined, the other segments are replayed.");
        }
        file.set_len(offset as u64)?;
        file.sync_all()?;
    }
    Ok(records)
}

/// `ocelot validate --storage`: what the queue in `dir` holds, checking every record,
/// without changing anything.
pub fn inspect(dir: &Path) -> std::io::Result<(Scan, Vec<String>)> {
    let mut scan = Scan::default();
    let mut problems = Vec::new();
    for segment in segments(dir)? {
        let path = segment_path(dir, segment);
        let mut bytes = Vec::new();
        File::open(&path)?.read_to_end(&mut bytes)?;
        scan.segments += 1;
        let (found, bad) = parse_segment(&bytes, 0);
        scan.records += found.len() as u64;
        scan.bytes += found.iter().map(|(_, len, _)| HEADER + len).sum::<u64>();
        if let Some(Bad { offset, short, what }) = bad {
            let torn = if short { " (a torn write)" } else { "" };
            problems.push(format!(
                "{}: {what}{torn} at byte {offset}; {} bytes from there",
                path.display(),
                bytes.len() - offset
            ));
            scan.quarantined += 1;
            scan.quarantined_bytes += (bytes.len() - offset) as u64;
        }
    }
    Ok((scan, problems))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdata::split::tests::logs;

    fn settings(dir: &Path, queue_size: u64) -> DiskSettings {
        DiskSettings {
            directory: dir.to_path_buf(),
            fsync: Fsync::Every(Duration::from_millis(10)),
            max_bytes: 1 << 30,
            sizer: Sizer::Requests,
            queue_size,
        }
    }

    fn open(dir: &Path, queue_size: u64) -> (Arc<DiskQueue>, DiskMetrics) {
        let metrics = DiskMetrics::default();
        let (queue, fresh) =
            DiskQueue::open(&ComponentId::new("test"), settings(dir, queue_size), metrics.clone()).unwrap();
        assert!(fresh);
        (queue, metrics)
    }

    fn batch(records: usize) -> Batch {
        let shape: Vec<usize> = vec![records];
        Batch::new(logs(&[&shape])).with_metadata(Metadata::from_pairs([("x-tenant", "a"), ("x-tenant", "b")]))
    }

    #[tokio::test]
    async fn records_come_back_in_order_with_their_metadata_and_done_ones_are_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, _) = open(dir.path(), 100);
        for n in 1..=3 {
            queue.append(&batch(n)).await.unwrap();
        }
        let (first, got) = queue.next().await;
        assert_eq!(got.payload.item_count(), 1);
        assert_eq!(got.metadata.get("X-Tenant"), ["a", "b"]);
        queue.complete(&first);
        let (_second, got) = queue.next().await;
        assert_eq!(got.payload.item_count(), 2);
        assert_eq!(queue.usage().records, 2);
        drop(queue);
        // The second was handed out but not done: it comes back, before the third.
        let (queue, _) = open(dir.path(), 100);
        let counts: Vec<usize> =
            vec![queue.next().await.1.payload.item_count(), queue.next().await.1.payload.item_count()];
        assert_eq!(counts, [2, 3]);
    }

    #[tokio::test]
    async fn a_full_queue_waits_for_room() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, _) = open(dir.path(), 2);
        queue.append(&batch(1)).await.unwrap();
        queue.append(&batch(1)).await.unwrap();
        let third = batch(1);
        let waiting = queue.append(&third);
        tokio::pin!(waiting);
        assert!(tokio::time::timeout(Duration::from_millis(50), waiting.as_mut()).await.is_err(), "full: it waits");
        let (record, _) = queue.next().await;
        queue.complete(&record);
        tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
        assert_eq!(queue.usage().records, 2);
    }

    #[tokio::test]
    async fn max_bytes_bounds_the_queue_too() {
        let dir = tempfile::tempdir().unwrap();
        let sample = batch(10);
        let one = HEADER + encode(&sample.payload, &sample.metadata).len() as u64;
        let settings = DiskSettings { max_bytes: 2 * one, ..settings(dir.path(), 100) };
        let (queue, _) = DiskQueue::open(&ComponentId::new("bytes"), settings, DiskMetrics::default()).unwrap();
        queue.append(&batch(10)).await.unwrap();
        queue.append(&batch(10)).await.unwrap();
        let third = batch(10);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), queue.append(&third)).await.is_err(),
            "over max_bytes: it waits"
        );
        assert_eq!(queue.usage().bytes, 2 * one);
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_off_and_the_rest_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, _) = open(dir.path(), 100);
        for n in 1..=3 {
            queue.append(&batch(n)).await.unwrap();
        }
        drop(queue);
        let segment = segment_path(dir.path(), 1);
        let len = std::fs::metadata(&segment).unwrap().len();
        OpenOptions::new().write(true).open(&segment).unwrap().set_len(len - 5).unwrap();
        let (queue, metrics) = open(dir.path(), 100);
        assert_eq!(queue.usage().records, 2);
        assert_eq!(queue.next().await.1.payload.item_count(), 1);
        assert_eq!(queue.next().await.1.payload.item_count(), 2);
        assert_eq!(metrics.quarantined.get(), 0, "a torn tail is not corruption");
        let (scan, problems) = inspect(dir.path()).unwrap();
        assert_eq!((scan.records, problems.len()), (2, 0), "{problems:?}");
    }

    #[tokio::test]
    async fn a_corrupt_record_quarantines_the_rest_of_its_segment_and_other_segments_replay() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, _) = open(dir.path(), 100);
        for n in 1..=3 {
            queue.append(&batch(n)).await.unwrap();
        }
        drop(queue);
        // A later run appends to a segment of its own.
        let (queue, _) = open(dir.path(), 100);
        queue.append(&batch(7)).await.unwrap();
        drop(queue);
        let segment = segment_path(dir.path(), 1);
        let mut bytes = std::fs::read(&segment).unwrap();
        let first_len = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
        let inside_second = 8 + first_len + 8 + 3;
        bytes[inside_second] ^= 0xff;
        std::fs::write(&segment, &bytes).unwrap();
        let (scan, problems) = inspect(dir.path()).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("checksum"), "{problems:?}");
        assert_eq!(scan.records, 2, "the first record and the other segment's");

        let (queue, metrics) = open(dir.path(), 100);
        assert_eq!(metrics.quarantined.get(), 1);
        let counts = vec![queue.next().await.1.payload.item_count(), queue.next().await.1.payload.item_count()];
        assert_eq!(counts, [1, 7]);
        let aside: Vec<_> = std::fs::read_dir(dir.path().join("quarantine")).unwrap().collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(std::fs::metadata(&segment).unwrap().len() as usize, 8 + first_len);
        // Opening again finds nothing more to quarantine: it never loops on the same bytes.
        drop(queue);
        let (_queue, metrics) = open(dir.path(), 100);
        assert_eq!(metrics.quarantined.get(), 0);
    }

    #[tokio::test]
    async fn garbage_in_a_segment_never_panics() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path()).unwrap();
        for (n, bytes) in
            [&b""[..], b"\xff\xff\xff\xff\x00\x00\x00\x00", b"\x05\x00\x00\x00abcdxyz", &[0u8; 64]].iter().enumerate()
        {
            std::fs::write(segment_path(dir.path(), n as u64 + 1), bytes).unwrap();
        }
        let _ = inspect(dir.path()).unwrap();
        let (queue, _) = open(dir.path(), 100);
        assert_eq!(queue.usage().records, 0);
    }

    #[tokio::test]
    async fn delivered_segments_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, _) = open(dir.path(), 100);
        queue.append(&batch(1)).await.unwrap();
        // Roll to a second segment, as a full one would.
        queue.lock().write.offset = SEGMENT_BYTES;
        queue.append(&batch(2)).await.unwrap();
        assert_eq!(segments(dir.path()).unwrap(), [1, 2]);
        let (record, _) = queue.next().await;
        queue.complete(&record);
        assert_eq!(segments(dir.path()).unwrap(), [2]);
    }
}
