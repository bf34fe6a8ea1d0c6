//! The `file` exporter, as upstream's: OTLP JSON one request per line
//! (`{"resourceSpans":[…]}`), or protobuf (and anything compressed) with each request
//! after its length in 4 big-endian bytes; zstd per request; size-based rotation;
//! one file per value of a resource attribute (`group_by`). Each batch is written to
//! the file before it is acknowledged; `flush_interval` paces fsync.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;

use super::BuildError;
use super::helper::{Export, ExportError};
use crate::component::Validate;
use crate::config::ConfigDuration;
use crate::pdata::{ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceRequest, Payload};

pub const TYPE: &str = "file";

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// OTLP JSON, one request per line (length-prefixed when compressed).
    #[default]
    Json,
    /// OTLP protobuf, each request after its length (4 bytes, big-endian).
    Proto,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FileCompression {
    #[default]
    #[serde(alias = "")]
    None,
    /// Each request compressed on its own, after its length, as upstream.
    Zstd,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RotationConfig {
    /// A file reaching this size is moved aside and a new one started. Default 100.
    #[serde(default = "default_max_megabytes")]
    pub max_megabytes: u64,
    /// Rotated files older than this many days are removed; 0 (the default) keeps them.
    #[serde(default)]
    pub max_days: u64,
    /// Rotated files kept; the oldest beyond it are removed. Default 100; 0 keeps all.
    #[serde(default = "default_max_backups")]
    pub max_backups: usize,
    /// Rotated files are named with local time instead of UTC. Default false.
    #[serde(default)]
    pub localtime: bool,
}

impl Default for RotationConfig {
    fn default() -> Self {
        RotationConfig {
            max_megabytes: default_max_megabytes(),
            max_days: 0,
            max_backups: default_max_backups(),
            localtime: false,
        }
    }
}

fn default_max_megabytes() -> u64 {
    100
}
fn default_max_backups() -> usize {
    100
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GroupByConfig {
    #[serde(default)]
    pub enabled: bool,
    /// The resource attribute whose value replaces the `*` in `path`. Default
    /// `fileexporter.path_segment`.
    #[serde(default = "default_path_segment")]
    pub resource_attribute: String,
    /// Files open at once; the least recently written is closed beyond it. Default 100.
    #[serde(default = "default_max_open_files")]
    pub max_open_files: usize,
}

impl Default for GroupByConfig {
    fn default() -> Self {
        GroupByConfig {
            enabled: false,
            resource_attribute: default_path_segment(),
            max_open_files: default_max_open_files(),
        }
    }
}

fn default_path_segment() -> String {
    "fileexporter.path_segment".into()
}
fn default_max_open_files() -> usize {
    100
}
fn default_flush_interval() -> ConfigDuration {
    ConfigDuration::from_secs(1)
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The file to write. Required. With `group_by`, one `*` stands for the value.
    pub path: PathBuf,
    /// Keep what the file holds and add to it; with false (the default) it is truncated at start.
    #[serde(default)]
    pub append: bool,
    /// `json` (the default) or `proto`.
    #[serde(default)]
    pub format: FileFormat,
    /// `zstd`, or none (the default).
    #[serde(default)]
    pub compression: FileCompression,
    /// Each batch is written to the file before it is acknowledged, so a crash of the
    /// agent loses nothing; what was written is synced to disk (fsync) this long after
    /// the first write since the last sync, bounding what a power loss can lose.
    /// Default 1s (upstream flushes its write buffer at this interval).
    #[serde(default = "default_flush_interval")]
    pub flush_interval: ConfigDuration,
    /// Size-based rotation, on when the block is present.
    #[serde(default, deserialize_with = "crate::config::de::present_or_default")]
    pub rotation: Option<RotationConfig>,
    /// One file per value of a resource attribute.
    #[serde(default)]
    pub group_by: GroupByConfig,
    /// Permissions of the file (ocelot's own option), in octal: `0600` keeps telemetry
    /// from other users. Default `0644` less the umask, as upstream writes it. Applied
    /// to a file that exists too.
    #[serde(default, deserialize_with = "octal_mode")]
    pub file_mode: Option<u32>,
}

/// `0600`, `"0600"` or `"0o600"`: YAML may read a leading-zero number as decimal, so
/// its digits are taken as octal.
fn octal_mode<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }
    let text = match Raw::deserialize(deserializer)? {
        Raw::Number(n) => n.to_string(),
        Raw::Text(t) => t,
    };
    let digits = text.trim().trim_start_matches("0o");
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 => Ok(Some(mode)),
        _ => Err(serde::de::Error::custom(format!("file_mode `{text}` must be octal permissions such as 0600"))),
    }
}

impl Validate for FileConfig {
    fn validate(&self) -> Result<(), String> {
        if self.path.as_os_str().is_empty() {
            return Err("path must be non-empty".into());
        }
        if self.append && self.compression != FileCompression::None {
            return Err("append and compression enabled at the same time is not supported".into());
        }
        if self.append && self.rotation.is_some() {
            return Err("append and rotation enabled at the same time is not supported".into());
        }
        if self.flush_interval.0.is_zero() {
            return Err("flush_interval must be larger than zero".into());
        }
        if self.rotation.as_ref().is_some_and(|r| r.max_megabytes == 0) {
            return Err("rotation.max_megabytes must be at least 1".into());
        }
        if self.group_by.enabled {
            let path = self.path.to_string_lossy();
            if path.matches('*').count() != 1 {
                return Err("path must contain exactly one * when group_by is enabled".into());
            }
            if path.starts_with('*') {
                return Err("path must not start with * when group_by is enabled".into());
            }
            if self.group_by.resource_attribute.is_empty() {
                return Err("resource_attribute must not be empty when group_by is enabled".into());
            }
            if self.group_by.max_open_files == 0 {
                return Err("group_by.max_open_files must be at least 1".into());
            }
        }
        Ok(())
    }
}

/// One output file: written through (no buffer in the agent), rotated by size.
struct Sink {
    path: PathBuf,
    file: File,
    size: u64,
    /// Written since the last fsync.
    dirty: bool,
}

impl Sink {
    fn open(path: &Path, append: bool, mode: Option<u32>) -> std::io::Result<Sink> {
        let mut options = OpenOptions::new();
        options.create(true);
        if append {
            options.append(true);
        } else {
            options.write(true).truncate(true);
        }
        options.mode(mode.unwrap_or(0o644));
        let file = options.open(path)?;
        if let Some(mode) = mode {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        let size = file.metadata()?.len();
        Ok(Sink { path: path.to_path_buf(), file, size, dirty: false })
    }

    fn write(&mut self, bytes: &[u8], rotation: Option<&RotationConfig>, mode: Option<u32>) -> std::io::Result<()> {
        if let Some(rotation) = rotation
            && self.size > 0
            && self.size + bytes.len() as u64 > rotation.max_megabytes << 20
        {
            self.rotate(rotation, mode)?;
        }
        if let Err(e) = self.file.write_all(bytes) {
            // No half record stays behind to garble what follows (a full disk, say).
            let _ = self.file.set_len(self.size);
            return Err(e);
        }
        self.size += bytes.len() as u64;
        self.dirty = true;
        Ok(())
    }

    /// Moves the file aside as `<name>-<time>-size<.ext>` (upstream's rotated names),
    /// starts a new one and removes rotated files beyond `max_backups` or `max_days`.
    fn rotate(&mut self, rotation: &RotationConfig, mode: Option<u32>) -> std::io::Result<()> {
        self.file.sync_all()?;
        let now = jiff::Timestamp::now();
        let stamp = if rotation.localtime {
            now.to_zoned(jiff::tz::TimeZone::system()).strftime("%Y-%m-%dT%H-%M-%S%.3f").to_string()
        } else {
            now.strftime("%Y-%m-%dT%H-%M-%S%.3f").to_string()
        };
        let (stem, ext) = stem_and_extension(&self.path);
        let mut rotated = self.path.with_file_name(format!("{stem}-{stamp}-size{ext}"));
        if rotated.exists() {
            // Two rotations in one millisecond (writes larger than the limit).
            let fine = now.strftime("%Y-%m-%dT%H-%M-%S%.9f").to_string();
            rotated = self.path.with_file_name(format!("{stem}-{fine}-size{ext}"));
        }
        std::fs::rename(&self.path, &rotated)?;
        *self = Sink::open(&self.path, false, mode)?;
        remove_old_backups(&self.path, rotation);
        Ok(())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        if std::mem::take(&mut self.dirty) {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

/// `data.jsonl` → (`data`, `.jsonl`).
fn stem_and_extension(path: &Path) -> (String, String) {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    match name.rfind('.').filter(|&i| i > 0) {
        Some(i) => (name[..i].to_string(), name[i..].to_string()),
        None => (name, String::new()),
    }
}

/// Rotated files of `path`, oldest first (their names sort by time).
fn backups(path: &Path) -> Vec<PathBuf> {
    let (stem, ext) = stem_and_extension(path);
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            // Only `<stem>-<time>-size<ext>`: another group's `a-b-…` is not `a`'s.
            name.strip_prefix(&format!("{stem}-"))
                .and_then(|rest| rest.strip_suffix(&format!("-size{ext}")))
                .is_some_and(|stamp| jiff::civil::DateTime::strptime("%Y-%m-%dT%H-%M-%S%.f", stamp).is_ok())
        })
        .collect();
    found.sort();
    found
}

fn remove_old_backups(path: &Path, rotation: &RotationConfig) {
    let mut found = backups(path);
    if rotation.max_days > 0 {
        let limit = std::time::Duration::from_secs(rotation.max_days * 86_400);
        found.retain(|p| {
            let old =
                std::fs::metadata(p).and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|age| age > limit));
            if old {
                let _ = std::fs::remove_file(p);
            }
            !old
        });
    }
    if rotation.max_backups > 0 && found.len() > rotation.max_backups {
        for p in &found[..found.len() - rotation.max_backups] {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The open files: the one `path`, or one per group, least recently written first
/// to close.
struct Files {
    sinks: Vec<Sink>,
    /// A sync is scheduled.
    sync_due: bool,
}

impl Files {
    fn sync_all(&mut self) -> std::io::Result<()> {
        self.sync_due = false;
        self.sinks.iter_mut().try_for_each(Sink::sync)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = self.sync_all();
    }
}

pub struct FileExporter {
    config: FileConfig,
    files: Arc<Mutex<Files>>,
    /// Resources dropped under `group_by` (no usable attribute value).
    ungrouped: Counter,
}

impl FileExporter {
    pub fn new(config: &FileConfig, ungrouped: Counter) -> Result<FileExporter, BuildError> {
        let mut sinks = Vec::new();
        if !config.group_by.enabled {
            let sink = Sink::open(&config.path, config.append, config.file_mode)
                .map_err(|source| BuildError::Open { path: config.path.display().to_string(), source })?;
            sinks.push(sink);
        }
        Ok(FileExporter {
            config: config.clone(),
            files: Arc::new(Mutex::new(Files { sinks, sync_due: false })),
            ungrouped,
        })
    }

    /// One request as it goes in the file.
    fn encode(&self, payload: &Payload, out: &mut Vec<u8>) -> Result<(), ExportError> {
        let message = match self.config.format {
            FileFormat::Json => {
                let mut line = crate::pdata::json::to_json_line(payload).into_bytes();
                if self.config.compression == FileCompression::None {
                    line.push(b'\n');
                    out.extend_from_slice(&line);
                    return Ok(());
                }
                line
            }
            FileFormat::Proto => crate::pdata::json::to_proto(payload),
        };
        let message = match self.config.compression {
            FileCompression::None => message,
            FileCompression::Zstd => {
                zstd::bulk::compress(&message, ZSTD_LEVEL).map_err(|e| ExportError::permanent(format!("zstd: {e}")))?
            }
        };
        let length = u32::try_from(message.len())
            .map_err(|_| ExportError::permanent("a request over 4 GiB cannot be length-prefixed"))?;
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(&message);
        Ok(())
    }

    /// The payload split by the group_by attribute: (file, its bytes).
    fn grouped(&self, payload: &Payload) -> Result<Vec<(PathBuf, Vec<u8>)>, ExportError> {
        if !self.config.group_by.enabled {
            let mut bytes = Vec::new();
            self.encode(payload, &mut bytes)?;
            return Ok(vec![(self.config.path.clone(), bytes)]);
        }
        let attribute = &self.config.group_by.resource_attribute;
        let mut groups: Vec<(String, Payload)> = Vec::new();
        let mut dropped = 0;
        for (resource, part) in split_by_resource(payload) {
            let value = resource
                .iter()
                .find(|kv| &kv.key == attribute)
                .and_then(|kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .and_then(|v| path_segment(&v));
            let Some(value) = value else {
                dropped += part.item_count() as u64;
                continue;
            };
            match groups.iter_mut().find(|(v, _)| *v == value) {
                Some((_, group)) => {
                    let _ = group.append(part);
                }
                None => groups.push((value, part)),
            }
        }
        if dropped > 0 {
            self.ungrouped.inc_by(dropped);
            tracing::debug!(items = dropped, attribute = %attribute, "file: resources without a usable group_by attribute dropped");
        }
        let pattern = self.config.path.to_string_lossy();
        let (prefix, suffix) = pattern.split_once('*').unwrap_or((&pattern, ""));
        groups
            .into_iter()
            .map(|(value, part)| {
                let mut bytes = Vec::new();
                self.encode(&part, &mut bytes)?;
                Ok((PathBuf::from(format!("{prefix}{value}{suffix}")), bytes))
            })
            .collect()
    }
}

/// zstd's default level, as upstream's encoder uses.
const ZSTD_LEVEL: i32 = 3;

/// A group's value as a path part: relative, with no `..` (which could leave the
/// directory `path` names); a leading `./` is dropped.
fn path_segment(value: &str) -> Option<String> {
    let value = value.trim_start_matches("./");
    let path = Path::new(value);
    let safe = !value.is_empty() && path.components().all(|c| matches!(c, std::path::Component::Normal(_)));
    safe.then(|| value.to_string())
}

/// Each resource of the payload with its attributes, as a payload of its own.
fn split_by_resource(payload: &Payload) -> Vec<(Vec<KeyValue>, Payload)> {
    let attributes = |r: &Option<opentelemetry_proto::tonic::resource::v1::Resource>| {
        r.as_ref().map(|r| r.attributes.clone()).unwrap_or_default()
    };
    match payload {
        Payload::Traces(r) => r
            .resource_spans
            .iter()
            .map(|rs| {
                (
                    attributes(&rs.resource),
                    Payload::Traces(ExportTraceServiceRequest { resource_spans: vec![rs.clone()] }),
                )
            })
            .collect(),
        Payload::Metrics(r) => r
            .resource_metrics
            .iter()
            .map(|rm| {
                let request = ExportMetricsServiceRequest { resource_metrics: vec![rm.clone()] };
                (attributes(&rm.resource), Payload::Metrics(request))
            })
            .collect(),
        Payload::Logs(r) => r
            .resource_logs
            .iter()
            .map(|rl| {
                (attributes(&rl.resource), Payload::Logs(ExportLogsServiceRequest { resource_logs: vec![rl.clone()] }))
            })
            .collect(),
    }
}

impl Export for FileExporter {
    async fn export(&self, payload: &Payload, _metadata: &crate::pdata::Metadata) -> Result<(), ExportError> {
        let writes = self.grouped(payload)?;
        let files = self.files.clone();
        let (append, mode) = (self.config.append || self.config.group_by.enabled, self.config.file_mode);
        let rotation = self.config.rotation.clone();
        let max_open = self.config.group_by.max_open_files;
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
            let mut files = files.lock().map_err(|_| std::io::Error::other("file lock poisoned"))?;
            for (path, bytes) in writes {
                let at = match files.sinks.iter().position(|s| s.path == path) {
                    Some(at) => at,
                    None => {
                        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                            std::fs::create_dir_all(parent)?;
                        }
                        // Group files are appended to: one closed for room and opened again keeps what it had.
                        files.sinks.push(Sink::open(&path, append, mode)?);
                        if files.sinks.len() > max_open {
                            let mut closed = files.sinks.remove(0);
                            closed.sync()?;
                        }
                        files.sinks.len() - 1
                    }
                };
                // Most recently written last.
                let mut sink = files.sinks.remove(at);
                let result = sink.write(&bytes, rotation.as_ref(), mode);
                files.sinks.push(sink);
                result?;
            }
            Ok(!std::mem::replace(&mut files.sync_due, true))
        })
        .await;
        let schedule_sync = match written {
            Ok(Ok(schedule)) => schedule,
            // A full disk may have room later: retried (groups written before the
            // failure may be written again).
            Ok(Err(e)) => return Err(ExportError::retryable(format!("write failed: {e}"))),
            Err(e) => return Err(ExportError::permanent(format!("write task failed: {e}"))),
        };
        if schedule_sync {
            // One sync per flush_interval at most, and none while nothing is written.
            let files = self.files.clone();
            let interval = self.config.flush_interval.0;
            tokio::spawn(async move {
                tokio::time::sleep(interval).await;
                let _ = tokio::task::spawn_blocking(move || {
                    if let Ok(mut files) = files.lock()
                        && let Err(e) = files.sync_all()
                    {
                        tracing::warn!(error = %e, "file: syncing to disk failed");
                    }
                })
                .await;
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn config(yaml: &str) -> Result<FileConfig, String> {
        let node = crate::config::node::parse("t.yaml", yaml).unwrap();
        crate::config::de::from_node(&node).map_err(|e| e.to_string())
    }

    fn mode(path: &std::path::Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn file_mode_narrows_the_output_and_the_default_is_upstreams() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("private.jsonl");
        std::fs::write(&private, b"").unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
        for text in ["0600", "\"0600\"", "\"0o600\""] {
            let c = config(&format!("path: {}\nfile_mode: {text}\n", private.display())).unwrap();
            assert_eq!(c.file_mode, Some(0o600), "{text}");
            FileExporter::new(&c, Counter::default()).unwrap();
            assert_eq!(mode(&private), 0o600);
        }
        let default = dir.path().join("default.jsonl");
        FileExporter::new(&config(&format!("path: {}\n", default.display())).unwrap(), Counter::default()).unwrap();
        // SAFETY: umask only reads and sets the process mask; set back at once.
        let umask = unsafe {
            let old = libc::umask(0o022);
            libc::umask(old);
            old
        };
        assert_eq!(mode(&default), 0o644 & !umask);
        assert!(config("path: x\nfile_mode: 0999\n").unwrap_err().contains("octal"));
        assert!(config("path: x\nfile_mode: 1777\n").is_err());
    }

    fn exporter(yaml: &str) -> (FileExporter, Counter) {
        let c = config(yaml).unwrap();
        c.validate().unwrap();
        let dropped = Counter::default();
        (FileExporter::new(&c, dropped.clone()).unwrap(), dropped)
    }

    fn logs_of(resources: &[(Option<&str>, usize)]) -> Payload {
        let json = serde_json::json!({ "resourceLogs": resources.iter().map(|(segment, n)| serde_json::json!({
            "resource": { "attributes": segment.map(|s| vec![serde_json::json!({"key": "fileexporter.path_segment", "value": {"stringValue": s}})]).unwrap_or_default() },
            "scopeLogs": [{ "logRecords": (0..*n).map(|i| serde_json::json!({"body": {"stringValue": format!("line {i} {}", "x".repeat(200))}})).collect::<Vec<_>>() }]
        })).collect::<Vec<_>>() });
        crate::pdata::json::from_json(crate::pdata::Signal::Logs, json.to_string().as_bytes()).unwrap()
    }

    /// The length-prefixed messages of a file.
    fn messages(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while rest.len() >= 4 {
            let length = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            out.push(rest[4..4 + length].to_vec());
            rest = &rest[4 + length..];
        }
        assert!(rest.is_empty(), "trailing bytes");
        out
    }

    #[tokio::test]
    async fn proto_and_compressed_requests_are_length_prefixed() {
        let dir = tempfile::tempdir().unwrap();
        let payload = logs_of(&[(None, 3)]);
        let no_metadata = crate::pdata::Metadata::default();
        for (options, decode) in [
            ("format: proto\n", (|m: &[u8]| m.to_vec()) as fn(&[u8]) -> Vec<u8>),
            ("format: proto\ncompression: zstd\n", |m| zstd::decode_all(m).unwrap()),
        ] {
            let path = dir.path().join("out.bin");
            let (e, _) = exporter(&format!("path: {}\n{options}", path.display()));
            e.export(&payload, &no_metadata).await.unwrap();
            e.export(&payload, &no_metadata).await.unwrap();
            let written = messages(&std::fs::read(&path).unwrap());
            assert_eq!(written.len(), 2, "{options}");
            for m in written {
                let decoded = crate::pdata::json::from_proto(crate::pdata::Signal::Logs, &decode(&m)).unwrap();
                assert_eq!(decoded, payload, "{options}");
            }
        }
        let path = dir.path().join("out.json.zst");
        let (e, _) = exporter(&format!("path: {}\ncompression: zstd\n", path.display()));
        e.export(&payload, &no_metadata).await.unwrap();
        let written = messages(&std::fs::read(&path).unwrap());
        let json = String::from_utf8(zstd::decode_all(&written[0][..]).unwrap()).unwrap();
        assert_eq!(json, crate::pdata::json::to_json_line(&payload));
    }

    #[tokio::test]
    async fn rotation_moves_full_files_aside_and_keeps_max_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.jsonl");
        let (e, _) = exporter(&format!("path: {}\nrotation:\n  max_megabytes: 1\n  max_backups: 2\n", path.display()));
        // About 0.4 MiB a batch: a rotation every third batch.
        let payload = logs_of(&[(None, 1800)]);
        let no_metadata = crate::pdata::Metadata::default();
        // Another group's rotated file (`data-x`'s) is not one of `data`'s backups.
        let decoy = dir.path().join("data-x-2020-01-01T00-00-00.000-size.jsonl");
        std::fs::write(&decoy, "{}\n").unwrap();
        for _ in 0..10 {
            e.export(&payload, &no_metadata).await.unwrap();
        }
        let rotated = backups(&path);
        assert_eq!(rotated.len(), 2, "{rotated:?}");
        assert!(decoy.exists());
        for file in rotated.iter().chain([&path]) {
            let size = std::fs::metadata(file).unwrap().len();
            assert!(size <= 1 << 20, "{} is {size} bytes", file.display());
            let text = std::fs::read_to_string(file).unwrap();
            assert!(text.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
        }
        // data-2026-12-02T07-43-53.123-size.jsonl
        let name = rotated[0].file_name().unwrap().to_string_lossy().into_owned();
        let stamp = name.strip_prefix("data-").unwrap().strip_suffix("-size.jsonl").unwrap();
        assert_eq!(stamp.len(), "2006-01-02T15-04-05.000".len(), "{name}");
        assert!(jiff::civil::DateTime::strptime("%Y-%m-%dT%H-%M-%S%.f", stamp).is_ok(), "{name}");
    }

    #[tokio::test]
    async fn group_by_writes_a_file_per_value_and_counts_what_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let pattern = dir.path().join("logs/*.jsonl");
        let (e, dropped) =
            exporter(&format!("path: {}\ngroup_by:\n  enabled: true\n  max_open_files: 1\n", pattern.display()));
        let payload =
            logs_of(&[(Some("a"), 2), (Some("team/b"), 1), (None, 4), (Some("../escape"), 3), (Some("a"), 1)]);
        e.export(&payload, &crate::pdata::Metadata::default()).await.unwrap();
        // Closed for room (max_open_files 1) and opened again: appended to, not truncated.
        e.export(&logs_of(&[(Some("a"), 1)]), &crate::pdata::Metadata::default()).await.unwrap();
        let records = |p: &Path| -> usize {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v["resourceLogs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r["scopeLogs"][0]["logRecords"].as_array().unwrap().len())
                        .sum::<usize>()
                })
                .sum()
        };
        assert_eq!(records(&dir.path().join("logs/a.jsonl")), 4);
        assert_eq!(records(&dir.path().join("logs/team/b.jsonl")), 1);
        assert!(!dir.path().join("escape.jsonl").exists());
        assert_eq!(dropped.get(), 7);
    }

    #[tokio::test]
    async fn written_data_is_synced_after_flush_interval_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let (e, _) = exporter(&format!("path: {}\nflush_interval: 50ms\n", dir.path().join("o.jsonl").display()));
        e.export(&logs_of(&[(None, 1)]), &crate::pdata::Metadata::default()).await.unwrap();
        assert!(e.files.lock().unwrap().sinks[0].dirty);
        assert!(e.files.lock().unwrap().sync_due);
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while e.files.lock().unwrap().sync_due {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();
        assert!(!e.files.lock().unwrap().sinks[0].dirty);
    }

    #[test]
    fn invalid_combinations_are_refused_as_upstream() {
        for (yaml, error) in [
            ("path: x\nappend: true\ncompression: zstd\n", "append and compression"),
            ("path: x\nappend: true\nrotation:\n", "append and rotation"),
            ("path: x\ngroup_by: {enabled: true}\n", "exactly one *"),
            ("path: '*x'\ngroup_by: {enabled: true}\n", "must not start with *"),
            (
                "path: 'a/*'\ngroup_by: {enabled: true, resource_attribute: ''}\n",
                "resource_attribute must not be empty",
            ),
            ("path: x\nflush_interval: 0s\n", "flush_interval must be larger than zero"),
        ] {
            let e = config(yaml).unwrap().validate().unwrap_err();
            assert!(e.contains(error), "{yaml}: {e}");
        }
        assert!(config("path: x\ncompression: gzip\n").unwrap_err().contains("gzip"));
        assert!(config("path: x\nformat: text\n").unwrap_err().contains("text"));
        assert_eq!(config("path: x\nrotation:\n").unwrap().rotation, Some(RotationConfig::default()));
    }
}
