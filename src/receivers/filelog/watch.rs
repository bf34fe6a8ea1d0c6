//! File system notifications that wake the reader: inotify on the include patterns'
//! directories (and, for `**`, every directory below them, including ones created
//! later), and on the directories that followed symlinks point into.
//!
//! Only events that can mean new data or new files are asked for: writes, attribute
//! changes, creations, renames and deletions. Never opens, reads or closes without a
//! write: the reader opens these directories at every poll, and being woken by its own
//! `opendir` would make it wake itself forever. (The `notify` crate always asks for
//! opens, which is why this is inotify directly.) Polling at `poll_interval` stays the
//! safety net for what inotify cannot see: a full event queue, watch limits, network
//! file systems.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use tracing::warn;

use crate::config::ComponentId;

/// Directories watched per receiver, at most; past it, polling alone.
const MAX_WATCHED_DIRS: usize = 10_000;
/// How deep below a recursive root directories are watched.
const MAX_DEPTH: usize = 32;

fn mask() -> WatchMask {
    WatchMask::MODIFY
        | WatchMask::ATTRIB
        | WatchMask::CLOSE_WRITE
        | WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::ONLYDIR
}

/// What is watched: each watch's directory and whether new directories below it are
/// watched too.
#[derive(Default)]
struct Watched {
    by_descriptor: HashMap<WatchDescriptor, (PathBuf, bool)>,
    dirs: HashSet<PathBuf>,
    /// Said once: the watch limit was reached.
    full: bool,
    /// Some directory could not be watched, or is on a file system whose changes
    /// inotify may not see (NFS, SMB, FUSE, 9p): polling must not rely on events.
    incomplete: bool,
}

pub struct DirWatch {
    id: ComponentId,
    watches: Mutex<Watches>,
    watched: Arc<Mutex<Watched>>,
    /// Written to stop the thread.
    stop: OwnedFd,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DirWatch {
    /// Watches `roots` (recursively where the flag says) and nudges `wake` on each
    /// event. `None` when inotify is not available: the reader polls alone.
    pub fn start(
        roots: impl Iterator<Item = (PathBuf, bool)>,
        wake: std::sync::mpsc::SyncSender<()>,
        id: &ComponentId,
    ) -> Option<DirWatch> {
        let inotify = match Inotify::init() {
            Ok(inotify) => inotify,
            Err(e) => {
                warn!(receiver = %id, error = %e, "No file system notifications; polling only.");
                return None;
            }
        };
        // SAFETY: eventfd returns a new descriptor or -1, checked before it is owned.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            warn!(receiver = %id, error = %std::io::Error::last_os_error(), "No file system notifications; polling only.");
            return None;
        }
        // SAFETY: `raw` is a descriptor this function just opened and nothing else owns.
        let stop = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut watch = DirWatch {
            id: id.clone(),
            watches: Mutex::new(inotify.watches()),
            watched: Arc::default(),
            stop,
            thread: None,
        };
        for (root, recursive) in roots {
            let root = if root.as_os_str().is_empty() { PathBuf::from(".") } else { root };
            if let Err(e) = watch.add_tree(&root, recursive) {
                warn!(receiver = %id, path = %root.display(), error = %e, "Cannot watch; polling this directory only.");
            }
        }
        let stop_fd = watch.stop.as_raw_fd();
        let watched = watch.watched.clone();
        let watches = watch.watches.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let thread_id = id.clone();
        watch.thread = std::thread::Builder::new()
            .name(format!("watch {id}"))
            .spawn(move || run(inotify, watches, stop_fd, &watched, &wake, &thread_id))
            .ok();
        Some(watch)
    }

    /// Whether every one of `roots` is watched and nothing was left out.
    pub fn covers<'a>(&self, roots: impl Iterator<Item = &'a Path>) -> bool {
        let w = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
        !w.incomplete
            && roots.into_iter().all(|root| {
                let root = if root.as_os_str().is_empty() { Path::new(".") } else { root };
                w.dirs.contains(root)
            })
    }

    /// Watches `dir` too (where a followed symlink points), if it is not yet.
    pub fn add_dir(&self, dir: &Path) {
        self.ensure(dir, false);
    }

    /// Watches `dir` (and below, when `recursive`) unless it is watched already: one
    /// set lookup when it is, so it can be called at every poll.
    pub fn ensure(&self, dir: &Path, recursive: bool) {
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        let known = self.watched.lock().unwrap_or_else(PoisonError::into_inner).dirs.contains(dir);
        if !known {
            // A directory that cannot be watched (yet) is polled: nothing to say per poll.
            let _ = self.add_tree(dir, recursive);
        }
    }

    fn add_tree(&self, root: &Path, recursive: bool) -> std::io::Result<()> {
        let mut watches = self.watches.lock().unwrap_or_else(PoisonError::into_inner);
        add_tree(&mut watches, &self.watched, root, recursive, &self.id)
    }
}

impl Drop for DirWatch {
    fn drop(&mut self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to the eventfd this struct owns.
        unsafe { libc::write(self.stop.as_raw_fd(), (&raw const one).cast(), 8) };
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Adds a watch on `root` and, when `recursive`, on every directory below it.
fn add_tree(
    watches: &mut Watches,
    watched: &Mutex<Watched>,
    root: &Path,
    recursive: bool,
    id: &ComponentId,
) -> std::io::Result<()> {
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    let mut first = true;
    while let Some((dir, depth)) = stack.pop() {
        {
            let mut w = watched.lock().unwrap_or_else(PoisonError::into_inner);
            if w.dirs.contains(&dir) {
                continue;
            }
            if w.dirs.len() >= MAX_WATCHED_DIRS {
                w.incomplete = true;
                if !w.full {
                    w.full = true;
                    warn!(receiver = %id, limit = MAX_WATCHED_DIRS, "Too many directories to watch; the rest are polled.");
                }
                return Ok(());
            }
            match watches.add(&dir, mask()) {
                Ok(wd) => {
                    w.by_descriptor.insert(wd, (dir.clone(), recursive));
                    w.dirs.insert(dir.clone());
                    if remote(&dir) {
                        w.incomplete = true;
                    }
                }
                Err(e) if first => return Err(e),
                Err(e) => {
                    w.incomplete = true;
                    if e.raw_os_error() == Some(libc::ENOSPC) && !w.full {
                        w.full = true;
                        warn!(receiver = %id, error = %e,
                            "The inotify watch limit is reached (fs.inotify.max_user_watches); the rest are polled.");
                    }
                    continue;
                }
            }
        }
        first = false;
        if recursive && depth < MAX_DEPTH {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                // Real directories only: a linked one is watched where the link points.
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push((entry.path(), depth + 1));
                }
            }
        }
    }
    Ok(())
}

/// A file system whose changes made elsewhere (another host, a FUSE daemon) inotify
/// does not report.
fn remote(dir: &Path) -> bool {
    const NFS: i64 = 0x6969;
    const SMB: i64 = 0x517b;
    const CIFS: i64 = 0xff53_4d42;
    const SMB2: i64 = 0xfe53_4d42;
    const FUSE: i64 = 0x6573_5546;
    const NINE_P: i64 = 0x0102_1997;
    const CEPH: i64 = 0x00c3_6400;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else { return true };
    // SAFETY: statfs writes into the zeroed struct passed, given a valid C string.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(path.as_ptr(), &mut stat) } != 0 {
        return true;
    }
    #[allow(clippy::unnecessary_cast)]
    let kind = stat.f_type as i64;
    [NFS, SMB, CIFS, SMB2, FUSE, NINE_P, CEPH].contains(&kind)
}

fn run(
    mut inotify: Inotify,
    mut watches: Watches,
    stop: i32,
    watched: &Mutex<Watched>,
    wake: &std::sync::mpsc::SyncSender<()>,
    id: &ComponentId,
) {
    let mut buffer = vec![0u8; 64 << 10];
    loop {
        let mut fds = [
            libc::pollfd { fd: inotify.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: stop, events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: two valid pollfd structs; no timeout: this thread sleeps until news.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if ready < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        if fds[1].revents != 0 {
            return;
        }
        let events = match inotify.read_events(&mut buffer) {
            Ok(events) => events,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return,
        };
        let mut new_dirs = Vec::new();
        for event in events {
            if event.mask.contains(EventMask::ISDIR)
                && event.mask.intersects(EventMask::CREATE | EventMask::MOVED_TO)
                && let Some(name) = event.name
            {
                let w = watched.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some((parent, true)) = w.by_descriptor.get(&event.wd) {
                    new_dirs.push(parent.join(name));
                }
            }
            if event.mask.contains(EventMask::IGNORED) {
                let mut w = watched.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some((dir, _)) = w.by_descriptor.remove(&event.wd) {
                    w.dirs.remove(&dir);
                }
            }
        }
        for dir in new_dirs {
            let _ = add_tree(&mut watches, watched, &dir, true, id);
        }
        // Full means a wake-up is already pending: nothing is lost.
        let _ = wake.try_send(());
    }
}
