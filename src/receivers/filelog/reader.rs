//! One file being tailed: its identity (fingerprint, inode), how far it has been read,
//! and turning new bytes into log records.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::warn;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;

use super::config::{Compression, Encoding, FilelogConfig, OperatorConfig};
use super::container::{ContainerConfig, ContainerParser, Parsed};
use super::multiline::{Aggregator, Mode};
use super::split::{LineSplitter, Token, TokenKind};

/// Bytes read from a file per read call.
const READ_CHUNK: usize = 64 << 10;

/// The first bytes of a file, which identify it: a file that grew still starts with
/// its old fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint(pub Vec<u8>);

impl Fingerprint {
    pub fn read(file: &File, size: usize) -> std::io::Result<Fingerprint> {
        let mut buf = vec![0u8; size];
        let mut filled = 0;
        while filled < size {
            match file.read_at(&mut buf[filled..], filled as u64)? {
                0 => break,
                n => filled += n,
            }
        }
        buf.truncate(filled);
        Ok(Fingerprint(buf))
    }

    /// The first `size` decompressed bytes of a gzip file (fewer while it is short or
    /// still being written).
    pub fn read_gzip(file: &File, size: usize) -> std::io::Result<Fingerprint> {
        use std::io::Read;
        let mut decoder = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(At { file, pos: 0 }));
        let mut buf = vec![0u8; size];
        let mut filled = 0;
        while filled < size {
            match decoder.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e),
            }
        }
        buf.truncate(filled);
        Ok(Fingerprint(buf))
    }

    /// The fingerprint of `file`, decompressed when it is gzip.
    pub fn of(file: &File, size: usize, gzip: bool) -> std::io::Result<Fingerprint> {
        if gzip { Fingerprint::read_gzip(file, size) } else { Fingerprint::read(file, size) }
    }

    /// `self` is the same file as `old`, possibly grown.
    pub fn starts_with(&self, old: &Fingerprint) -> bool {
        !old.0.is_empty() && self.0.starts_with(&old.0)
    }
}

/// Reads a file by position, leaving the shared file offset alone.
struct At<F> {
    file: F,
    pos: u64,
}

impl<F: std::borrow::Borrow<File>> std::io::Read for At<F> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.borrow().read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Decompressed length of a gzip file, as far as it can be decompressed now.
pub fn gzip_len(file: &File) -> u64 {
    use std::io::Read;
    let mut decoder = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(At { file, pos: 0 }));
    let mut buf = vec![0u8; READ_CHUNK];
    let mut len = 0;
    while let Ok(n) = decoder.read(&mut buf) {
        if n == 0 {
            break;
        }
        len += n as u64;
    }
    len
}

type GzipDecoder = flate2::read::MultiGzDecoder<std::io::BufReader<At<File>>>;

/// A gzip file read as its decompressed bytes; offsets count decompressed bytes.
#[derive(Default)]
struct GzipStream {
    /// The decoder and the decompressed offset it has reached.
    decoder: Option<(GzipDecoder, u64)>,
    /// Compressed size when the whole stream was read; more members may be appended.
    complete_at: Option<u64>,
    /// Compressed size when decompression stopped at a cut-off end (still being
    /// written) or at corrupt data; tried again once the file grows.
    stalled_at: Option<u64>,
    /// The offset asked for is past the end of the decompressed content.
    beyond_end: bool,
    /// Corrupt data was met (not yet reported).
    corrupt: Option<String>,
}

impl GzipStream {
    fn read_at(&mut self, file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        use std::io::Read;
        let size = file.metadata()?.len();
        if self.complete_at == Some(size) || self.stalled_at == Some(size) {
            return Ok(0);
        }
        if self.decoder.as_ref().is_none_or(|(_, pos)| *pos != offset) {
            // (Re)start from the beginning and skip what was already read.
            let mut decoder =
                flate2::read::MultiGzDecoder::new(std::io::BufReader::new(At { file: file.try_clone()?, pos: 0 }));
            let skipped = match std::io::copy(&mut (&mut decoder).take(offset), &mut std::io::sink()) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    self.stalled_at = Some(size);
                    return Ok(0);
                }
                Err(e) => return Ok(self.corrupted(e, size)),
            };
            if skipped < offset {
                self.beyond_end = true;
                return Ok(0);
            }
            self.decoder = Some((decoder, offset));
        }
        let Some((decoder, pos)) = self.decoder.as_mut() else { return Ok(0) };
        match decoder.read(buf) {
            Ok(0) => {
                self.complete_at = Some(size);
                self.decoder = None;
                Ok(0)
            }
            Ok(n) => {
                *pos += n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                self.stalled_at = Some(size);
                self.decoder = None;
                Ok(0)
            }
            Err(e) => Ok(self.corrupted(e, size)),
        }
    }

    /// Corrupt data (or trailing garbage): what came before it counts, the rest cannot
    /// be read. Not retried until the file changes size, never counted as complete.
    fn corrupted(&mut self, error: std::io::Error, size: u64) -> usize {
        self.corrupt = Some(error.to_string());
        self.stalled_at = Some(size);
        self.decoder = None;
        0
    }
}

/// What the reader needs from the config, resolved once.
pub struct ReadSettings {
    pub fingerprint_size: usize,
    pub max_log_size: usize,
    pub encoding: Encoding,
    pub force_flush_period: Duration,
    pub trim_leading: bool,
    pub trim_trailing: bool,
    pub include_file_name: bool,
    pub include_file_path: bool,
    pub include_file_name_resolved: bool,
    pub include_file_path_resolved: bool,
    pub attributes: Vec<KeyValue>,
    pub multiline: Option<Mode>,
    pub container: Option<ContainerConfig>,
    pub compression: Compression,
    /// The receiver's static `resource` attributes.
    pub resource: Vec<KeyValue>,
}

impl ReadSettings {
    pub fn new(config: &FilelogConfig) -> ReadSettings {
        let container = config.operators.iter().any(|o| matches!(o, OperatorConfig::Container(_)));
        ReadSettings {
            fingerprint_size: config.fingerprint_size.0 as usize,
            max_log_size: config.max_log_size.0 as usize,
            encoding: config.encoding,
            force_flush_period: config.force_flush_period.0,
            // Upstream never trims `nop` bodies. Lines for the container operator are not
            // trimmed either: a partial fragment's trailing space is part of the message.
            trim_leading: !config.preserve_leading_whitespaces && config.encoding != Encoding::Nop && !container,
            trim_trailing: !config.preserve_trailing_whitespaces && config.encoding != Encoding::Nop && !container,
            include_file_name: config.include_file_name,
            include_file_path: config.include_file_path,
            include_file_name_resolved: config.include_file_name_resolved,
            include_file_path_resolved: config.include_file_path_resolved,
            attributes: config.attributes.iter().map(|(k, v)| string_kv(k, v)).collect(),
            multiline: config.multiline.as_ref().and_then(|m| m.mode()),
            compression: config.compression,
            container: config.operators.iter().find_map(|o| match o {
                OperatorConfig::Container(c) => Some(c.clone()),
                _ => None,
            }),
            resource: config.resource.iter().map(|(k, v)| string_kv(k, v)).collect(),
        }
    }
}

impl ReadSettings {
    /// Whether `file` is read decompressed: always with `gzip`, by its magic bytes with `auto`.
    pub fn is_gzip(&self, file: &File) -> bool {
        match self.compression {
            Compression::None => false,
            Compression::Gzip => true,
            Compression::Auto => {
                let mut magic = [0u8; 2];
                file.read_at(&mut magic, 0).is_ok_and(|n| n == 2) && magic == [0x1f, 0x8b]
            }
        }
    }
}

pub fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_string())) }),
        ..Default::default()
    }
}

/// A file being read.
pub struct TrackedFile {
    pub path: PathBuf,
    file: File,
    pub fingerprint: Fingerprint,
    pub device: u64,
    pub inode: u64,
    /// Bytes handed to the splitter so far.
    pub read_offset: u64,
    /// Offset up to which records have been produced (the last read's `end`).
    pub emitted: u64,
    splitter: LineSplitter,
    last_growth: Instant,
    attributes: Vec<KeyValue>,
    /// No longer found under a matching path (renamed away or deleted); read to the end.
    pub moved: bool,
    /// With `multiline`: the record being joined.
    aggregator: Option<Aggregator>,
    /// With the `container` operator: its state for this file (partial lines).
    container: Option<ContainerParser>,
    /// Resource attributes of this file's records: the receiver's `resource` and
    /// `k8s.*` from its path.
    pub resource: Vec<KeyValue>,
    /// The path did not give Kubernetes metadata: reported once.
    pub metadata_missing: bool,
    /// Set for gzip files, read decompressed.
    gzip: Option<GzipStream>,
    /// The (size, modification time) at which the fingerprint was last checked (for
    /// truncation or rewriting in place) or refreshed: unchanged, neither is redone.
    validated: Option<(u64, std::time::SystemTime)>,
    refreshed_at_size: Option<u64>,
    /// The size `still_valid` just saw, for the next read.
    checked_size: Option<u64>,
    /// After a batch failed downstream: not read again before this.
    pub retry_at: Option<Instant>,
    /// Batches of this file that failed in a row, for the backoff.
    pub failures: u32,
    /// Records the last read that found data made: the next one's starting capacity,
    /// so a busy file's records are not moved as their list doubles.
    records_hint: usize,
}

/// What one read produced: records and, for each, the file offset just past it.
pub struct ReadOutput {
    pub records: Vec<LogRecord>,
    /// Records an operator could not parse (kept or dropped per `on_error`).
    pub parse_errors: Vec<String>,
    /// File offset up to which every record has been produced (the checkpoint value).
    pub end: u64,
    pub bytes: u64,
    /// Lines longer than `max_log_size` that were cut.
    pub cut: u64,
    /// A read that failed; what came before it is in `records`.
    pub error: Option<std::io::Error>,
    /// The file is read again from its start (a gzip file's checkpoint was past its
    /// end): the offsets committed for it start over.
    pub restarted: bool,
}

impl TrackedFile {
    pub fn open(
        path: &Path,
        file: File,
        fingerprint: Fingerprint,
        offset: u64,
        gzip: bool,
        settings: &ReadSettings,
    ) -> TrackedFile {
        let (device, inode) = file.metadata().map(|m| (m.dev(), m.ino())).unwrap_or_default();
        let mut attributes = settings.attributes.clone();
        if settings.include_file_name {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            attributes.push(string_kv("log.file.name", &name));
        }
        if settings.include_file_path {
            attributes.push(string_kv("log.file.path", &path.to_string_lossy()));
        }
        if settings.include_file_name_resolved || settings.include_file_path_resolved {
            let resolved = super::finder::resolve(path);
            if settings.include_file_name_resolved {
                let name = resolved.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                attributes.push(string_kv("log.file.name_resolved", &name));
            }
            if settings.include_file_path_resolved {
                attributes.push(string_kv("log.file.path_resolved", &resolved.to_string_lossy()));
            }
        }
        // The pod log path, or where a /var/log/containers symlink points.
        let mut resource = settings.resource.clone();
        let metadata_missing = match &settings.container {
            Some(c) if c.add_metadata_from_filepath => {
                match super::container::kubernetes_metadata(&path.to_string_lossy())
                    .or_else(|| super::container::kubernetes_metadata(&super::finder::resolve(path).to_string_lossy()))
                {
                    Some(attrs) => {
                        resource.extend(attrs);
                        false
                    }
                    None => true,
                }
            }
            _ => false,
        };
        TrackedFile {
            path: path.to_path_buf(),
            file,
            fingerprint,
            device,
            inode,
            read_offset: offset,
            emitted: offset,
            splitter: LineSplitter::new(settings.max_log_size, offset),
            last_growth: Instant::now(),
            attributes,
            moved: false,
            aggregator: settings.multiline.clone().map(|mode| Aggregator::new(mode, settings.max_log_size)),
            container: settings.container.clone().map(ContainerParser::new),
            resource,
            metadata_missing,
            gzip: gzip.then(GzipStream::default),
            validated: None,
            refreshed_at_size: None,
            checked_size: None,
            retry_at: None,
            failures: 0,
            records_hint: 0,
        }
    }

    /// Goes back to `offset` (a record boundary: a committed offset) and forgets every
    /// state held past it, so the next read produces the same records again.
    pub fn rewind(&mut self, offset: u64, settings: &ReadSettings) {
        self.read_offset = offset;
        self.emitted = offset;
        self.splitter = LineSplitter::new(settings.max_log_size, offset);
        self.aggregator = settings.multiline.clone().map(|mode| Aggregator::new(mode, settings.max_log_size));
        self.container = settings.container.clone().map(ContainerParser::new);
        if let Some(gz) = self.gzip.as_mut() {
            *gz = GzipStream::default();
        }
        self.last_growth = Instant::now();
    }

    pub fn is_gzip(&self) -> bool {
        self.gzip.is_some()
    }

    /// Something of this file waits on time rather than on an event: a last line or
    /// record held back (flushed after `force_flush_period`), or the file is closing
    /// (renamed away or deleted, done once delivered).
    pub fn needs_time(&self) -> bool {
        self.emitted < self.read_offset || self.moved
    }

    /// Everything in the file has been read: its end (plain), or the whole gzip stream.
    pub fn fully_read(&self) -> bool {
        match &self.gzip {
            None => self.read_offset == self.size(),
            Some(gz) => gz.complete_at == Some(self.size()),
        }
    }

    /// The file's current size through the open descriptor (works after deletion too).
    pub fn size(&self) -> u64 {
        self.file.metadata().map(|m| m.len()).unwrap_or(0)
    }

    /// Reads what is new, up to `budget` bytes, and turns it into records. A last line
    /// with no newline is held until it stops growing for `force_flush_period`.
    /// `finishing`: the file is no longer found; at its end, everything held goes out.
    pub fn read(&mut self, budget: u64, settings: &ReadSettings, observed: u64, finishing: bool) -> ReadOutput {
        let mut records = Vec::with_capacity(self.records_hint);
        let mut bytes = 0u64;
        let mut cut = 0u64;
        // A quiet plain file (the common case at idle) costs one fstat: no buffer, no read.
        let size = self.checked_size.take().unwrap_or_else(|| self.size());
        let grown = self.gzip.is_some() || size > self.read_offset;
        // The buffer fits what is new (a few lines, on a slowly growing file), up to
        // READ_CHUNK; the loop reads on until the end or the budget either way.
        let chunk_len = match self.gzip {
            Some(_) => READ_CHUNK,
            None => {
                usize::try_from(size.saturating_sub(self.read_offset)).unwrap_or(READ_CHUNK).clamp(4096, READ_CHUNK)
            }
        };
        let mut chunk = if grown { vec![0u8; chunk_len] } else { Vec::new() };
        let attributes = &self.attributes;
        let mut aggregator = self.aggregator.take();
        let mut container = self.container.take();
        let mut parse_errors = Vec::new();
        // Each token (a line, a cut piece, a flushed tail) becomes a record, or with
        // `multiline` goes through the aggregator; `line_start` is where it began.
        let mut line_start = self.splitter.consumed();
        let mut emit = |t: Token<'_>| {
            let token_start = line_start;
            let mut push = |bytes: &[u8], _end: u64| {
                if let Some(record) = make_record(bytes, settings, attributes, observed) {
                    match container.as_mut() {
                        None => records.push(record),
                        Some(parser) => {
                            if let Parsed::Failed(error) = parser.process(record, token_start, &mut records) {
                                parse_errors.push(error.to_string());
                            }
                        }
                    }
                }
            };
            match (aggregator.as_mut(), t.kind) {
                (None, kind) => {
                    if kind == TokenKind::Cut {
                        cut += 1;
                    }
                    push(t.bytes, t.end);
                }
                (Some(joined), TokenKind::Line) => joined.line(t.bytes, line_start, t.end, &mut push),
                (Some(joined), TokenKind::Flushed) => {
                    joined.line(t.bytes, line_start, t.end, &mut push);
                    joined.flush(&mut push);
                }
                (Some(joined), TokenKind::Cut) => {
                    // A line too long to join: the open record ends, the piece goes alone.
                    cut += 1;
                    joined.flush(&mut push);
                    push(t.bytes, t.end);
                }
            }
            line_start = t.end;
        };
        let mut error = None;
        while grown && bytes < budget {
            let want = chunk.len().min((budget - bytes) as usize);
            let got = match self.gzip.as_mut() {
                None => self.file.read_at(&mut chunk[..want], self.read_offset),
                Some(gz) => gz.read_at(&self.file, &mut chunk[..want], self.read_offset),
            };
            let n = match got {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    // Keep what was read and the state held; the caller closes the file.
                    error = Some(e);
                    break;
                }
            };
            self.read_offset += n as u64;
            bytes += n as u64;
            match settings.encoding {
                Encoding::Utf8 => self.splitter.push(&chunk[..n], &mut emit),
                // `nop`: no line splitting; whole chunks of at most max_log_size.
                Encoding::Nop => {
                    let mut end = self.read_offset - n as u64;
                    for piece in chunk[..n].chunks(settings.max_log_size) {
                        end += piece.len() as u64;
                        emit(Token { bytes: piece, end, kind: TokenKind::Flushed });
                    }
                    self.splitter = LineSplitter::new(settings.max_log_size, self.read_offset);
                }
            }
        }
        let mut restarted = false;
        if let Some(gz) = self.gzip.as_mut() {
            if let Some(e) = gz.corrupt.take() {
                warn!(path = %self.path.display(), offset = self.read_offset, error = %e,
                    "Corrupt gzip data: what came before it was read, the rest of the file cannot be.");
            }
            if std::mem::take(&mut gz.beyond_end) {
                warn!(path = %self.path.display(), offset = self.read_offset,
                    "The checkpoint is past the end of this gzip file's content; reading it from the start.");
                self.read_offset = 0;
                self.splitter = LineSplitter::new(settings.max_log_size, 0);
                restarted = true;
            }
        }
        let now = Instant::now();
        if bytes > 0 {
            self.last_growth = now;
        } else if error.is_none()
            && (finishing
                || (!settings.force_flush_period.is_zero()
                    && now.duration_since(self.last_growth) >= settings.force_flush_period))
        {
            // Quiet for the flush period: the last line without a newline, and the
            // record being joined, go out.
            self.splitter.flush(&mut emit);
            if let Some(joined) = aggregator.as_mut() {
                joined.flush(&mut |bytes: &[u8], _| {
                    if let Some(record) = make_record(bytes, settings, attributes, observed) {
                        records.push(record);
                    }
                });
            }
        }
        if let Some(parser) = container.as_mut() {
            parser.flush(finishing && bytes == 0, &mut records);
        }
        // The checkpoint stops before anything still held: an open multiline record,
        // partial container lines, a last line without a newline.
        let end = [
            aggregator.as_ref().and_then(Aggregator::open_since),
            container.as_ref().and_then(ContainerParser::open_since),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| self.splitter.consumed())
        .min(self.splitter.consumed());
        self.aggregator = aggregator;
        self.container = container;
        self.emitted = end;
        if bytes > 0 {
            self.records_hint = records.len();
        }
        ReadOutput { records, parse_errors, end, bytes, cut, error, restarted }
    }

    /// Re-reads the fingerprint while it is shorter than `fingerprint_size`: a short
    /// file's identity grows with it, as long as the new one starts with the old.
    pub fn refresh_fingerprint(&mut self, size: usize) {
        if self.fingerprint.0.len() >= size {
            return;
        }
        // Only a file read further can have a longer start worth comparing.
        if self.refreshed_at_size == Some(self.read_offset) {
            return;
        }
        self.refreshed_at_size = Some(self.read_offset);
        if let Ok(fresh) = Fingerprint::of(&self.file, size, self.gzip.is_some())
            && fresh.starts_with(&self.fingerprint)
        {
            self.fingerprint = fresh;
        }
    }

    /// Still the same content: the path's file starts with our fingerprint and is not
    /// shorter than what was read.
    /// (A gzip file's offset counts decompressed bytes: only its fingerprint is compared.)
    /// The fingerprint is read again only when size or modification time moved since
    /// the last check: truncating or rewriting a file changes one of them.
    pub fn still_valid(&mut self, settings: &ReadSettings) -> bool {
        let Ok(meta) = self.file.metadata() else { return false };
        let stamp = (meta.len(), meta.modified().unwrap_or(std::time::UNIX_EPOCH));
        // The next read uses this size: one fstat per file per poll. A file that grows
        // in between is read at the next poll (or wake-up).
        self.checked_size = Some(stamp.0);
        if self.validated == Some(stamp) {
            return true;
        }
        let valid = (self.gzip.is_some() || stamp.0 >= self.read_offset)
            && Fingerprint::of(&self.file, settings.fingerprint_size, self.gzip.is_some())
                .is_ok_and(|f| f.starts_with(&self.fingerprint));
        self.validated = valid.then_some(stamp);
        valid
    }
}

fn trim(mut bytes: &[u8], leading: bool, trailing: bool) -> &[u8] {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    if leading {
        while let Some((first, rest)) = bytes.split_first() {
            if !ws(first) {
                break;
            }
            bytes = rest;
        }
    }
    if trailing {
        while let Some((last, rest)) = bytes.split_last() {
            if !ws(last) {
                break;
            }
            bytes = rest;
        }
    }
    bytes
}

/// One record per token; empty tokens (blank lines after trimming) make none.
fn make_record(bytes: &[u8], settings: &ReadSettings, attributes: &[KeyValue], observed: u64) -> Option<LogRecord> {
    let mut bytes = trim(bytes, settings.trim_leading, settings.trim_trailing);
    if settings.container.is_some() {
        // CRLF files: the `\r` is the line ending's, not the message's.
        bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    }
    if bytes.is_empty() {
        return None;
    }
    let body = match settings.encoding {
        // Valid UTF-8 (nearly every line) takes std's word-at-a-time check; the
        // lossy scan, much slower, only runs on a line that fails it.
        Encoding::Utf8 => any_value::Value::StringValue(match std::str::from_utf8(bytes) {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(bytes).into_owned(),
        }),
        Encoding::Nop => any_value::Value::BytesValue(bytes.to_vec()),
    };
    Some(LogRecord {
        observed_time_unix_nano: observed,
        body: Some(AnyValue { value: Some(body) }),
        attributes: attributes.to_vec(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming() {
        assert_eq!(trim(b" \tabc\r", true, true), b"abc");
        assert_eq!(trim(b" abc\r", false, true), b" abc");
        assert_eq!(trim(b" abc\r", true, false), b"abc\r");
        assert_eq!(trim(b"   ", true, true), b"");
    }

    #[test]
    fn fingerprints_match_by_prefix() {
        let a = Fingerprint(b"hello".to_vec());
        assert!(Fingerprint(b"hello world".to_vec()).starts_with(&a));
        assert!(!Fingerprint(b"help".to_vec()).starts_with(&a));
        assert!(!a.starts_with(&Fingerprint(Vec::new())));
    }
}

#[cfg(test)]
mod gzip_tests {
    use super::*;
    use std::io::Write;

    fn settings() -> ReadSettings {
        let config: FilelogConfig =
            serde_json::from_value(serde_json::json!({"include": ["*.gz"], "compression": "gzip"})).unwrap();
        ReadSettings::new(&config)
    }

    fn gzip_file(dir: &Path, lines: usize, trailer: &[u8]) -> PathBuf {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for i in 0..lines {
            writeln!(encoder, "line {i}").unwrap();
        }
        let mut bytes = encoder.finish().unwrap();
        bytes.extend_from_slice(trailer);
        let path = dir.join("a.log.gz");
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn open(path: &Path, offset: u64, settings: &ReadSettings) -> TrackedFile {
        let file = File::open(path).unwrap();
        let fingerprint = Fingerprint::of(&file, settings.fingerprint_size, true).unwrap();
        TrackedFile::open(path, file, fingerprint, offset, true, settings)
    }

    #[test]
    fn trailing_garbage_keeps_what_came_before_and_is_not_retried() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings();
        let path = gzip_file(dir.path(), 500, b"\0\0\0\0");
        let mut file = open(&path, 0, &settings);
        let out = file.read(u64::MAX, &settings, 0, false);
        assert_eq!(out.records.len(), 500);
        assert!(out.error.is_none());
        // Not complete (the rest could not be read), and nothing more on the next reads.
        assert!(!file.fully_read());
        assert_eq!(file.read(u64::MAX, &settings, 0, false).bytes, 0);
    }

    #[test]
    fn a_checkpoint_past_the_end_reads_the_file_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings();
        let path = gzip_file(dir.path(), 300, b"");
        let mut file = open(&path, 1 << 20, &settings);
        let first = file.read(u64::MAX, &settings, 0, false);
        assert!(first.restarted && first.records.is_empty() && first.end == 0);
        let second = file.read(u64::MAX, &settings, 0, false);
        assert_eq!(second.records.len(), 300);
        assert!(file.fully_read());
    }

    #[test]
    fn a_gzip_file_being_written_is_read_as_it_completes() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings();
        let path = gzip_file(dir.path(), 2000, b"");
        let whole = std::fs::read(&path).unwrap();
        std::fs::write(&path, &whole[..whole.len() / 3]).unwrap();
        let mut file = open(&path, 0, &settings);
        let first = file.read(u64::MAX, &settings, 0, false);
        assert!(!file.fully_read());
        std::fs::write(&path, &whole).unwrap();
        let second = file.read(u64::MAX, &settings, 0, true);
        assert_eq!(first.records.len() + second.records.len(), 2000);
        assert!(file.fully_read());
    }
}
