//! State on disk: small files under the storage directory (file offsets and
//! fingerprints, later queues and EWMA state), each replaced atomically.
//!
//! A write goes to a temporary file, is fsynced, renamed over the old one and the
//! directory fsynced, so a crash at any moment leaves either the old or the new
//! contents. Each file carries a header with the length and CRC-32 of its payload:
//! a torn or corrupt file is reported as [`StateError::Corrupt`] for the caller to
//! log and ignore, never a crash.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"OCELOTS1";
/// Magic, payload length (u64 LE), CRC-32 of the payload (u32 LE).
const HEADER_LEN: usize = 8 + 8 + 4;
/// Larger state files are refused on read rather than loaded: nothing ocelot keeps
/// per component comes near this.
pub const MAX_STATE_FILE: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is corrupt ({reason}); ignoring it")]
    Corrupt { path: PathBuf, reason: String },
}

/// One state file, named inside a storage directory.
#[derive(Clone, Debug)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// `name` is made safe for a file name (`filelog/app` → `filelog_app`).
    pub fn new(directory: &Path, name: &str) -> StateFile {
        let safe: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
            .collect();
        StateFile { path: directory.join(format!("{safe}.state")) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> StateError {
        StateError::Io { path: self.path.clone(), source }
    }

    fn corrupt(&self, reason: impl Into<String>) -> StateError {
        StateError::Corrupt { path: self.path.clone(), reason: reason.into() }
    }

    /// The last stored payload; `None` if there is none yet.
    pub fn load(&self) -> Result<Option<Vec<u8>>, StateError> {
        let length = match fs::metadata(&self.path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(e)),
        };
        if length > MAX_STATE_FILE {
            return Err(self.corrupt(format!("{length} bytes, more than the {MAX_STATE_FILE} allowed")));
        }
        let bytes = fs::read(&self.path).map_err(|e| self.io(e))?;
        let Some((header, payload)) = bytes.split_at_checked(HEADER_LEN) else {
            return Err(self.corrupt("shorter than its header"));
        };
        if &header[..8] != MAGIC {
            return Err(self.corrupt("not an ocelot state file"));
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&header[8..16]);
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&header[16..20]);
        if u64::from_le_bytes(len) != payload.len() as u64 {
            return Err(self.corrupt(format!(
                "torn: header says {} bytes, {} present",
                u64::from_le_bytes(len),
                payload.len()
            )));
        }
        if crc32fast::hash(payload) != u32::from_le_bytes(crc) {
            return Err(self.corrupt("checksum mismatch"));
        }
        Ok(Some(payload.to_vec()))
    }

    /// Replaces the stored payload atomically and durably. Blocking: call it from a
    /// blocking thread, never on a runtime worker.
    pub fn store(&self, payload: &[u8]) -> Result<(), StateError> {
        let directory = self.path.parent().unwrap_or(Path::new("."));
        create_private_dir(directory).map_err(|e| self.io(e))?;
        let temporary = self.path.with_extension("state.tmp");
        // State holds the first bytes of tailed files: readable by the agent's user only.
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(|e| self.io(e))?;
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        header.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        file.write_all(&header).and_then(|()| file.write_all(payload)).map_err(|e| self.io(e))?;
        file.sync_all().map_err(|e| self.io(e))?;
        drop(file);
        fs::rename(&temporary, &self.path).map_err(|e| self.io(e))?;
        // The rename is durable only once the directory is.
        File::open(directory).and_then(|d| d.sync_all()).map_err(|e| self.io(e))?;
        Ok(())
    }
}

/// Creates `directory` and its missing parents as 0700 (the agent's user only); a
/// directory that exists is left as it is (it may be shared, such as /tmp).
pub fn create_private_dir(directory: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(directory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_private_to_the_agents_user() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = StateFile::new(&dir.path().join("new/storage"), "filelog");
        state.store(b"the first bytes of a log").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(state.path()), 0o600);
        assert_eq!(mode(&dir.path().join("new/storage")), 0o700);
        assert_eq!(mode(&dir.path().join("new")), 0o700);
        // A state file left world-readable by an older version is replaced by a private one.
        fs::set_permissions(state.path(), fs::Permissions::from_mode(0o644)).unwrap();
        state.store(b"again").unwrap();
        assert_eq!(mode(state.path()), 0o600);
    }

    #[test]
    fn round_trip_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateFile::new(dir.path(), "filelog/app logs");
        assert!(state.path().ends_with("filelog_app_logs.state"));
        assert_eq!(state.load().unwrap(), None);
        state.store(b"first").unwrap();
        state.store(b"second").unwrap();
        assert_eq!(state.load().unwrap().as_deref(), Some(&b"second"[..]));
        assert!(!state.path().with_extension("state.tmp").exists());
    }

    #[test]
    fn corruption_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateFile::new(dir.path(), "x");
        state.store(b"offsets and fingerprints").unwrap();
        let mut bytes = fs::read(state.path()).unwrap();

        // A flipped bit in the payload.
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(state.path(), &bytes).unwrap();
        assert!(matches!(state.load(), Err(StateError::Corrupt { reason, .. }) if reason == "checksum mismatch"));

        // Torn: the tail missing.
        fs::write(state.path(), &bytes[..bytes.len() - 5]).unwrap();
        assert!(matches!(state.load(), Err(StateError::Corrupt { reason, .. }) if reason.starts_with("torn")));

        // Garbage and empty files.
        fs::write(state.path(), b"{\"not\": \"ours\"}").unwrap();
        assert!(matches!(state.load(), Err(StateError::Corrupt { .. })));
        fs::write(state.path(), b"").unwrap();
        let error = state.load().unwrap_err().to_string();
        assert!(error.contains("shorter than its header") && error.contains("ignoring it"), "{error}");

        // A good store recovers.
        state.store(b"fresh").unwrap();
        assert_eq!(state.load().unwrap().as_deref(), Some(&b"fresh"[..]));
    }
}
