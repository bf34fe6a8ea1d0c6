use std::collections::BTreeMap;

use serde::Deserialize;

use super::multiline::MultilineConfig;
pub use super::operators::OperatorConfig;
use crate::component::Validate;
use crate::config::{ByteSize, ConfigDuration};

/// The `filelog` receiver, with the upstream option names and defaults.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FilelogConfig {
    /// Globs of files to read (`**` matches across directories). Required.
    pub include: Vec<String>,
    /// Globs removed from what `include` matched.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Files not modified within this long are not opened (already open ones are read
    /// to the end). Default: off.
    #[serde(default)]
    pub exclude_older_than: Option<ConfigDuration>,
    /// Where to start in files found at start-up with no checkpoint: `end` (default) or
    /// `beginning`. Files that appear later are always read from the beginning.
    #[serde(default)]
    pub start_at: StartAt,
    /// How often to look for new files and new data. Default 200ms.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: ConfigDuration,
    /// Bytes at the start of a file that identify it across renames. Default 1000 (`1kb`).
    #[serde(default = "default_fingerprint_size")]
    pub fingerprint_size: ByteSize,
    /// Longest record; a longer line is cut into several records. Default 1MiB.
    #[serde(default = "default_max_log_size")]
    pub max_log_size: ByteSize,
    /// Files open at once; more matching files wait until open ones are finished
    /// (renamed away or deleted and read to the end). Default 1024.
    #[serde(default = "default_max_concurrent_files")]
    pub max_concurrent_files: usize,
    /// `utf-8` (default; invalid bytes replaced) or `nop` (bytes kept, no line splitting).
    #[serde(default)]
    pub encoding: Encoding,
    /// Delete each file once everything in it has been read and delivered. For files
    /// that are complete when they appear: lines appended while it is deleted are lost.
    /// Needs `start_at: beginning`. Default false.
    #[serde(default)]
    pub delete_after_read: bool,
    /// Join lines into one record by a start or end pattern (stack traces).
    #[serde(default)]
    pub multiline: Option<MultilineConfig>,
    /// A last line with no newline (or, with `multiline`, the last open record) is sent
    /// once the file has not grown for this long. 0 waits
    /// for the newline forever. Default 500ms.
    #[serde(default = "default_force_flush_period")]
    pub force_flush_period: ConfigDuration,
    /// Keep spaces, tabs and `\r` at the start of each record. Default false (trimmed).
    #[serde(default)]
    pub preserve_leading_whitespaces: bool,
    /// Keep spaces, tabs and `\r` at the end of each record. Default false (trimmed).
    #[serde(default)]
    pub preserve_trailing_whitespaces: bool,
    /// Attribute `log.file.name`. Default true.
    #[serde(default = "default_true")]
    pub include_file_name: bool,
    /// Attribute `log.file.path`. Default false.
    #[serde(default)]
    pub include_file_path: bool,
    /// Attribute `log.file.name_resolved` (symlinks followed). Default false.
    #[serde(default)]
    pub include_file_name_resolved: bool,
    /// Attribute `log.file.path_resolved` (symlinks followed). Default false.
    #[serde(default)]
    pub include_file_path_resolved: bool,
    /// Static attributes added to every record.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Static resource attributes of every record.
    #[serde(default)]
    pub resource: BTreeMap<String, String>,
    /// Id of a `file_storage` extension that keeps the checkpoints. Default: the
    /// agent's `--storage-dir`.
    #[serde(default)]
    pub storage: Option<String>,
    /// `gzip`: every matched file is gzip-compressed (read decompressed, fingerprinted
    /// on its decompressed bytes, so a rotated `.gz` continues where its original was
    /// read); `auto`: detected per file by the gzip magic bytes. Default: none.
    #[serde(default)]
    pub compression: Compression,
    /// Operators applied to each record, in order.
    #[serde(default)]
    pub operators: Vec<OperatorConfig>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    Beginning,
    #[default]
    End,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    #[serde(rename = "")]
    None,
    Gzip,
    Auto,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum Encoding {
    #[default]
    #[serde(rename = "utf-8", alias = "utf8", alias = "UTF-8")]
    Utf8,
    #[serde(rename = "nop")]
    Nop,
}

fn default_poll_interval() -> ConfigDuration {
    ConfigDuration::from_millis(200)
}
fn default_fingerprint_size() -> ByteSize {
    ByteSize(1000)
}
fn default_max_log_size() -> ByteSize {
    ByteSize(1 << 20)
}
fn default_max_concurrent_files() -> usize {
    1024
}
fn default_force_flush_period() -> ConfigDuration {
    ConfigDuration::from_millis(500)
}
fn default_true() -> bool {
    true
}

/// Upstream's smallest fingerprint.
pub const MIN_FINGERPRINT_SIZE: u64 = 16;

impl Validate for FilelogConfig {
    fn validate(&self) -> Result<(), String> {
        if self.include.is_empty() {
            return Err("'include' must be specified".into());
        }
        for pattern in self.include.iter().chain(&self.exclude) {
            globset::Glob::new(pattern).map_err(|e| format!("invalid glob `{pattern}`: {e}"))?;
        }
        if self.fingerprint_size.0 < MIN_FINGERPRINT_SIZE {
            return Err(format!("fingerprint_size must be at least {MIN_FINGERPRINT_SIZE} bytes"));
        }
        if self.max_log_size.0 == 0 {
            return Err("max_log_size must be more than 0".into());
        }
        if self.max_concurrent_files == 0 {
            return Err("max_concurrent_files must be at least 1".into());
        }
        if let Some(multiline) = &self.multiline {
            multiline.validate()?;
            if self.encoding == Encoding::Nop {
                return Err("multiline cannot be used with encoding: nop".into());
            }
            if self.operators.iter().any(|o| matches!(o, OperatorConfig::Container(_))) {
                return Err(
                    "multiline cannot be combined with the container operator, which joins partial lines itself".into(),
                );
            }
        }
        super::operators::validate(&self.operators)?;
        let containers = self.operators.iter().filter(|o| matches!(o, OperatorConfig::Container(_))).count();
        if containers > 1 {
            return Err("operators: at most one container operator".into());
        }
        if containers == 1 && self.encoding == Encoding::Nop {
            return Err("the container operator needs text: it cannot be used with encoding: nop".into());
        }
        if self.delete_after_read && self.start_at == StartAt::End {
            return Err("delete_after_read needs start_at: beginning".into());
        }
        if self.poll_interval.0.is_zero() {
            return Err("poll_interval must be more than 0".into());
        }
        Ok(())
    }
}
