//! The `file_storage` extension: a directory where components that name it in their
//! `storage` option (the `filelog` receiver's checkpoints) keep their state. Without
//! one, state lives under `--storage-dir`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::component::Validate;

pub const TYPE: &str = "file_storage";

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileStorageConfig {
    /// Where state files go. Default: the agent's `--storage-dir`.
    #[serde(default)]
    pub directory: Option<PathBuf>,
    /// Create `directory` (and its parents) when missing, instead of failing the
    /// start. Default false, as upstream: a missing directory is usually a missing mount.
    #[serde(default)]
    pub create_directory: bool,
    /// Fsync every write to a persistent sending queue before the batch counts as
    /// taken: a power cut loses nothing acknowledged, at the cost of a disk flush per
    /// batch. Default false, as upstream.
    #[serde(default)]
    pub fsync: bool,
    /// With `fsync: false`, how often written queue records are flushed to the disk
    /// (ocelot's option). A kill -9 loses nothing either way (the kernel holds the
    /// data); a power cut or kernel crash loses up to this much. Default 1s.
    #[serde(default = "default_fsync_interval")]
    pub fsync_interval: crate::config::ConfigDuration,
}

fn default_fsync_interval() -> crate::config::ConfigDuration {
    crate::config::ConfigDuration(std::time::Duration::from_secs(1))
}

impl Default for FileStorageConfig {
    fn default() -> Self {
        FileStorageConfig {
            directory: None,
            create_directory: false,
            fsync: false,
            fsync_interval: default_fsync_interval(),
        }
    }
}

impl Validate for FileStorageConfig {
    fn validate(&self) -> Result<(), String> {
        if self.directory.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            return Err("directory must not be empty".into());
        }
        if !self.fsync && self.fsync_interval.0.is_zero() {
            return Err("fsync_interval must be more than 0s (or set fsync: true)".into());
        }
        Ok(())
    }
}

impl FileStorageConfig {
    /// When a persistent queue's writes reach the disk.
    pub fn fsync_policy(&self) -> crate::exporters::helper::disk::Fsync {
        use crate::exporters::helper::disk::Fsync;
        if self.fsync { Fsync::Always } else { Fsync::Every(self.fsync_interval.0) }
    }

    /// The directory to use, checked (or created) now so that a missing mount fails
    /// the start rather than every write.
    pub fn prepare(&self, default_dir: &Path) -> Result<PathBuf, String> {
        let Some(directory) = &self.directory else {
            return Ok(default_dir.to_path_buf());
        };
        if self.create_directory {
            crate::storage::create_private_dir(directory)
                .map_err(|e| format!("cannot create storage directory {}: {e}", directory.display()))?;
        }
        match std::fs::metadata(directory) {
            Ok(meta) if meta.is_dir() => Ok(directory.clone()),
            Ok(_) => Err(format!("storage directory {} is not a directory", directory.display())),
            Err(e) => Err(format!(
                "storage directory {} is not usable: {e} (create it, or set create_directory: true)",
                directory.display()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_directory_fails_unless_created() {
        let base = std::env::temp_dir().join(format!("ocelot-fs-{}", std::process::id()));
        let dir = base.join("a/b");
        let config = FileStorageConfig { directory: Some(dir.clone()), ..FileStorageConfig::default() };
        let error = config.prepare(Path::new("/unused")).unwrap_err();
        assert!(error.contains("create_directory: true"), "{error}");
        let config =
            FileStorageConfig { directory: Some(dir.clone()), create_directory: true, ..FileStorageConfig::default() };
        assert_eq!(config.prepare(Path::new("/unused")).unwrap(), dir);
        assert!(dir.is_dir());
        let config = FileStorageConfig::default();
        assert_eq!(config.prepare(Path::new("/default")).unwrap(), PathBuf::from("/default"));
        std::fs::remove_dir_all(base).unwrap();
    }
}
