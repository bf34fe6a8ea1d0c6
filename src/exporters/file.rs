//! The `file` exporter: one OTLP JSON object per line, as the upstream file exporter
//! writes them (`{"resourceSpans":[…]}`), so tests and people can read the output.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use super::BuildError;
use super::helper::{Export, ExportError};
use crate::component::Validate;
use crate::pdata::Payload;

pub const TYPE: &str = "file";

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// OTLP JSON, one request per line. The only format ocelot writes.
    #[default]
    Json,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The file to write. Required.
    pub path: PathBuf,
    /// Keep what the file holds and add to it; with false (the default) it is truncated at start.
    #[serde(default)]
    pub append: bool,
    /// Only `json`.
    #[serde(default)]
    pub format: FileFormat,
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
            return Err("path must not be empty".into());
        }
        Ok(())
    }
}

pub struct FileExporter {
    writer: Arc<Mutex<BufWriter<File>>>,
}

impl FileExporter {
    pub fn new(config: &FileConfig) -> Result<FileExporter, BuildError> {
        let mut options = OpenOptions::new();
        options.create(true);
        if config.append {
            options.append(true);
        } else {
            options.write(true).truncate(true);
        }
        options.mode(config.file_mode.unwrap_or(0o644));
        let open_error = |source| BuildError::Open { path: config.path.display().to_string(), source };
        let file = options.open(&config.path).map_err(open_error)?;
        if let Some(mode) = config.file_mode {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(open_error)?;
        }
        Ok(FileExporter { writer: Arc::new(Mutex::new(BufWriter::new(file))) })
    }
}

impl Export for FileExporter {
    async fn export(&self, payload: &Payload, _metadata: &crate::pdata::Metadata) -> Result<(), ExportError> {
        let mut line = crate::pdata::json::to_json_line(payload);
        line.push('\n');
        let writer = self.writer.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut writer = writer.lock().map_err(|_| std::io::Error::other("writer lock poisoned"))?;
            writer.write_all(line.as_bytes())?;
            writer.flush()
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ExportError::permanent(format!("write failed: {e}"))),
            Err(e) => Err(ExportError::permanent(format!("write task failed: {e}"))),
        }
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
            FileExporter::new(&c).unwrap();
            assert_eq!(mode(&private), 0o600);
        }
        let default = dir.path().join("default.jsonl");
        FileExporter::new(&config(&format!("path: {}\n", default.display())).unwrap()).unwrap();
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
}
