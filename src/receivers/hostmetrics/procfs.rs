//! The process table: one pass over `/proc/<pid>/stat` of every process, shared by
//! the `processes` and `process` scrapers. `stat` alone holds what ranking needs
//! (CPU ticks, resident and virtual memory, threads, start time), so the other files
//! of a process are read only for the processes that are emitted.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Longest name kept: task names are 15 bytes, but kernel workers show their
/// workqueue too (`kworker/u8:2-events_unbound`).
const COMM_MAX: usize = 64;

/// The fields of `/proc/<pid>/stat` the scrapers use.
#[derive(Clone, Debug, PartialEq)]
pub struct PidStat {
    pub pid: u32,
    comm: [u8; COMM_MAX],
    comm_len: u8,
    /// The state letter (`R`, `S`, `D`, `Z`…).
    pub state: u8,
    pub ppid: u32,
    pub minflt: u64,
    pub majflt: u64,
    /// CPU ticks (1/100 s) in user and kernel mode, and waiting for block I/O.
    pub utime: u64,
    pub stime: u64,
    pub blkio: u64,
    pub threads: u64,
    /// Ticks after boot when the process started.
    pub starttime: u64,
    pub vsize: u64,
    pub rss_pages: u64,
}

impl PidStat {
    /// The kernel's name for the process (cut at 15 bytes for user processes).
    pub fn comm(&self) -> &[u8] {
        &self.comm[..self.comm_len as usize]
    }

    /// The name may have been cut at 15 bytes.
    pub fn comm_maybe_cut(&self) -> bool {
        self.comm_len >= 15
    }
}

/// Parses one `stat` line; `None` for anything malformed.
pub fn parse_pid_stat(line: &[u8]) -> Option<PidStat> {
    let open = memchr::memchr(b'(', line)?;
    let close = memchr::memrchr(b')', line)?;
    if close < open {
        return None;
    }
    let pid = std::str::from_utf8(&line[..open]).ok()?.trim().parse().ok()?;
    let name = &line[open + 1..close];
    let name = &name[..name.len().min(COMM_MAX)];
    let mut comm = [0u8; COMM_MAX];
    comm[..name.len()].copy_from_slice(name);
    let rest = std::str::from_utf8(line.get(close + 1..)?).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    // Fields counted from the state (field 3 of the line) on: field 3 + i.
    let mut numbers = [0u64; 40];
    let mut count = 0;
    for (i, field) in fields.take(40).enumerate() {
        // Some fields are signed (priority, nice), none of those used here.
        numbers[i] = field.parse::<u64>().or_else(|_| field.parse::<i64>().map(|v| v.max(0) as u64)).ok()?;
        count = i + 1;
    }
    if count < 21 {
        return None;
    }
    let at = |field: usize| numbers[field - 4];
    Some(PidStat {
        pid,
        comm,
        comm_len: name.len() as u8,
        state,
        ppid: at(4).try_into().ok()?,
        minflt: at(10),
        majflt: at(12),
        utime: at(14),
        stime: at(15),
        threads: at(20),
        starttime: at(22),
        vsize: at(23),
        rss_pages: at(24),
        blkio: if count >= 39 { at(42) } else { 0 },
    })
}

/// Why a process could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unread {
    /// It exited between the listing and the read.
    Vanished,
    /// Its `stat` could not be read or parsed.
    Malformed,
}

/// The last pass over the process table.
#[derive(Default)]
pub struct Table {
    pub entries: Vec<PidStat>,
    pub vanished: u64,
    pub malformed: u64,
}

/// Reads files under `<root>/proc` into reused buffers. Files are opened relative to
/// an open `/proc` directory, so each open resolves two path components, not the
/// whole path.
pub struct Walker {
    proc: PathBuf,
    dir: Option<std::fs::File>,
    path: Vec<u8>,
    relative: Vec<u8>,
    buf: Vec<u8>,
    pids: Vec<u32>,
}

impl Walker {
    pub fn new(root: &Path) -> Walker {
        let proc = super::proc_path(root);
        let dir = std::fs::File::open(&proc).ok();
        Walker {
            proc,
            dir,
            path: Vec::with_capacity(128),
            relative: Vec::with_capacity(64),
            buf: Vec::with_capacity(4096),
            pids: Vec::new(),
        }
    }

    pub fn proc(&self) -> &Path {
        &self.proc
    }

    /// `<root>/proc/<pid>/<file>`, in the reused path buffer.
    pub fn path(&mut self, pid: u32, file: &str) -> &Path {
        use std::io::Write;
        self.path.clear();
        self.path.extend_from_slice(self.proc.as_os_str().as_bytes());
        let _ = write!(self.path, "/{pid}/{file}");
        Path::new(OsStr::from_bytes(&self.path))
    }

    /// Reads `/proc/<pid>/<file>` whole into the reused buffer. Plain reads until the
    /// end: `read_to_end` would first ask the file's size and position, two more system
    /// calls per file that /proc cannot answer usefully.
    /// A file missing from a live process (no `io` without I/O accounting) comes back
    /// as an error that does not classify as the process being gone.
    pub fn read(&mut self, pid: u32, file: &str) -> std::io::Result<&[u8]> {
        let mut f = match self.open(pid, file) {
            Ok(f) => f,
            Err(e) if classify(&e) == Unread::Vanished && file != "stat" && self.alive(pid) => {
                return Err(std::io::Error::other(format!("/proc/{pid}/{file} is missing ({e})")));
            }
            Err(e) => return Err(e),
        };
        self.buf.resize(self.buf.capacity().max(4096), 0);
        let mut len = 0;
        loop {
            if len == self.buf.len() {
                self.buf.resize(len * 2, 0);
            }
            match f.read(&mut self.buf[len..]) {
                Ok(0) => break,
                // A short read is the end: /proc makes a file's text in one go, and
                // skipping the read that returns 0 saves a system call per file.
                Ok(n) if len + n < self.buf.len() => {
                    len += n;
                    break;
                }
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(&self.buf[..len])
    }

    fn open(&mut self, pid: u32, file: &str) -> std::io::Result<std::fs::File> {
        use std::io::Write;
        use std::os::fd::{AsRawFd, FromRawFd};
        let Some(dir) = &self.dir else {
            return std::fs::File::open(self.path(pid, file));
        };
        self.relative.clear();
        let _ = write!(self.relative, "{pid}/{file}\0");
        // SAFETY: `relative` is NUL-terminated and outlives the call; `dir` is an open
        // directory; a descriptor returned by openat is ours alone to own.
        let fd =
            unsafe { libc::openat(dir.as_raw_fd(), self.relative.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(unsafe { std::fs::File::from_raw_fd(fd) })
    }

    /// Whether process `pid` still exists: a file missing from a live process's
    /// directory (no `io` without I/O accounting) is not the process being gone.
    pub fn alive(&mut self, pid: u32) -> bool {
        std::fs::symlink_metadata(self.path(pid, "stat")).is_ok()
    }

    /// Lists the processes and reads each one's `stat` into `table`.
    pub fn walk(&mut self, table: &mut Table) -> Result<(), String> {
        table.entries.clear();
        table.vanished = 0;
        table.malformed = 0;
        let pids = self.list().map_err(|e| format!("{}: {e}", self.proc.display()))?;
        for &pid in &pids {
            match self.read(pid, "stat") {
                Ok(bytes) => match parse_pid_stat(bytes) {
                    Some(stat) => table.entries.push(stat),
                    None => table.malformed += 1,
                },
                Err(e) => match classify(&e) {
                    Unread::Vanished => table.vanished += 1,
                    Unread::Malformed => table.malformed += 1,
                },
            }
        }
        self.pids = pids;
        Ok(())
    }

    /// The pids in `/proc`, in the reused list. `readdir(3)` hands out names from its
    /// own buffer, where `std::fs::read_dir` allocates two values per entry.
    fn list(&mut self) -> std::io::Result<Vec<u32>> {
        let mut pids = std::mem::take(&mut self.pids);
        pids.clear();
        let path = std::ffi::CString::new(self.proc.as_os_str().as_bytes())?;
        // SAFETY: `path` is NUL-terminated; the stream is closed below on every path;
        // each entry is read before the next readdir call replaces it.
        unsafe {
            let dir = libc::opendir(path.as_ptr());
            if dir.is_null() {
                return Err(std::io::Error::last_os_error());
            }
            loop {
                let entry = libc::readdir(dir);
                if entry.is_null() {
                    break;
                }
                let name = std::ffi::CStr::from_ptr((*entry).d_name.as_ptr());
                if let Some(pid) = parse_pid(name.to_bytes()) {
                    pids.push(pid);
                }
            }
            libc::closedir(dir);
        }
        Ok(pids)
    }
}

/// A process that is gone shows as a missing file (or ESRCH on some files).
pub fn classify(e: &std::io::Error) -> Unread {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ESRCH) => Unread::Vanished,
        _ => Unread::Malformed,
    }
}

fn parse_pid(name: &[u8]) -> Option<u32> {
    if name.is_empty() || !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(name).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parens_in_the_name() {
        let line = b"4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1500 0 7 0 250 125 0 0 20 0 3 0 12345 \
                     104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 9 0 0\n";
        let s = parse_pid_stat(line).unwrap();
        assert_eq!((s.pid, s.comm(), s.state, s.ppid), (4242, &b"my (odd) name"[..], b'S', 1));
        assert_eq!((s.minflt, s.majflt, s.utime, s.stime, s.threads), (1500, 7, 250, 125, 3));
        assert_eq!((s.starttime, s.vsize, s.rss_pages, s.blkio), (12345, 104_857_600, 2560, 9));
    }

    #[test]
    fn malformed_stat_is_none() {
        for bad in [&b""[..], b"12 (x", b"12 x) S 1", b"x (a) S 1 2 3", b"1 (a) S 1 2 3\n", b"1 )a( S 1 2"] {
            assert!(parse_pid_stat(bad).is_none(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse_pid(b"123"), Some(123));
        assert_eq!(parse_pid(b"self"), None);
        assert_eq!(parse_pid(b"99999999999"), None);
    }
}
