//! The `file` exporter: one OTLP JSON object per line, as the upstream file exporter
//! writes them (`{"resourceSpans":[…]}`), so tests and people can read the output.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
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
        let file = options
            .open(&config.path)
            .map_err(|source| BuildError::Open { path: config.path.display().to_string(), source })?;
        Ok(FileExporter { writer: Arc::new(Mutex::new(BufWriter::new(file))) })
    }
}

impl Export for FileExporter {
    async fn export(&self, payload: &Payload) -> Result<(), ExportError> {
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
