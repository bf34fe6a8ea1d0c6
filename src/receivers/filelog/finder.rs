//! Finding the files to read: `include` globs minus `exclude` globs, with `*` within a
//! path component and `**` across them, as upstream's doublestar matching. Symlinks
//! are followed (Kubernetes' `/var/log/containers/*.log` point into `/var/log/pods/`),
//! with care, since they can lend the agent's privileges to whoever made them:
//!
//! - a link is followed only where its owner could read the target itself (root's
//!   links always): the target's owner, its group when the link has that group, or
//!   world-readable. A user who can write a log directory cannot point the agent at
//!   root's files. (An approximation of the owner's rights: supplementary groups are
//!   not looked up.)
//! - `exclude` is matched against where a link points as well as the link.
//! - each directory is walked once, by (device, inode), so links into a parent do not
//!   loop; the walk is bounded in depth, entries and time.

use std::collections::HashSet;
use std::fs::Metadata;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// Directories deeper than this below a pattern's literal prefix are not walked, even
/// for `**`.
const MAX_DEPTH: usize = 32;
/// Directory entries looked at per search, at most.
const MAX_ENTRIES: usize = 200_000;
/// How long one search may take.
const MAX_WALK_TIME: Duration = Duration::from_secs(5);

/// A matching file and its identity (where a link points, for a link).
#[derive(Debug)]
pub struct FoundFile {
    pub path: PathBuf,
    pub device: u64,
    pub inode: u64,
}

/// What one search found.
#[derive(Debug, Default)]
pub struct Found {
    /// Every matching regular file, sorted by path, each once.
    pub files: Vec<FoundFile>,
    /// Directories that exist but could not be read (too many open files, say): what
    /// is under them is unknown this time, not gone.
    pub unreadable: Vec<(PathBuf, std::io::Error)>,
    /// The search stopped at its entry or time bound: what it did not reach is unknown.
    pub cut_short: bool,
    /// Links not followed: their owner could not read the target.
    pub refused_links: Vec<PathBuf>,
}

impl Found {
    pub fn paths(&self) -> Vec<PathBuf> {
        self.files.iter().map(|f| f.path.clone()).collect()
    }

    /// Whether `path` may exist though this search did not find it.
    pub fn unknown(&self, path: &Path) -> bool {
        self.cut_short || self.unreadable.iter().any(|(dir, _)| path.starts_with(dir))
    }
}

pub struct Finder {
    include: GlobSet,
    exclude: GlobSet,
    /// Where each include pattern's walk starts, and how deep it may go.
    roots: Vec<(PathBuf, usize)>,
}

fn glob_set(patterns: &[String]) -> Result<GlobSet, globset::Error> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        builder.add(GlobBuilder::new(pattern).literal_separator(true).build()?);
    }
    builder.build()
}

fn is_glob(component: &str) -> bool {
    component.contains(['*', '?', '[', '{'])
}

impl Finder {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Finder, globset::Error> {
        let roots = include
            .iter()
            .map(|pattern| {
                let mut root = PathBuf::new();
                let mut rest = 0;
                let mut recursive = false;
                let mut literal = true;
                for component in Path::new(pattern).components() {
                    let text = component.as_os_str().to_string_lossy();
                    if literal && !is_glob(&text) {
                        root.push(component);
                    } else {
                        literal = false;
                        rest += 1;
                        recursive |= text.contains("**");
                    }
                }
                if rest == 0 {
                    // A literal path: walk its directory to find it.
                    let parent = root.parent().map(Path::to_path_buf).unwrap_or_default();
                    return (parent, 1);
                }
                let depth = if recursive { MAX_DEPTH } else { rest };
                (root, depth)
            })
            .collect();
        Ok(Finder { include: glob_set(include)?, exclude: glob_set(exclude)?, roots })
    }

    /// The directories the include patterns start from, and whether below them matters.
    pub fn watch_roots(&self) -> impl Iterator<Item = (&Path, bool)> {
        self.roots.iter().map(|(root, depth)| (root.as_path(), *depth > 1))
    }

    /// Every matching regular file (following symlinks as the module says).
    pub fn find(&self) -> Found {
        let mut walk = Walk { found: Found::default(), visited: HashSet::new(), entries: 0, started: Instant::now() };
        for (root, depth) in &self.roots {
            self.walk(root, *depth, &mut walk);
        }
        // Byte order: only equal paths need to meet, and it is much cheaper than
        // comparing by components.
        walk.found
            .files
            .sort_unstable_by(|a, b| a.path.as_os_str().as_encoded_bytes().cmp(b.path.as_os_str().as_encoded_bytes()));
        walk.found.files.dedup_by(|a, b| a.path == b.path);
        walk.found
    }

    fn walk(&self, dir: &Path, depth: usize, walk: &mut Walk) {
        if depth == 0 || walk.found.cut_short {
            return;
        }
        let shown = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        let entries = match std::fs::read_dir(shown) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                walk.found.unreadable.push((dir.to_path_buf(), e));
                return;
            }
        };
        // Entries of a directory live on its device (a mount point is a directory).
        let device = match std::fs::metadata(shown) {
            Ok(meta) if !walk.visited.insert((meta.dev(), meta.ino())) => return, // Reached again through a link.
            Ok(meta) => meta.dev(),
            Err(_) => 0,
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    walk.found.unreadable.push((dir.to_path_buf(), e));
                    break;
                }
            };
            walk.entries += 1;
            if walk.entries > MAX_ENTRIES || walk.started.elapsed() > MAX_WALK_TIME {
                walk.found.cut_short = true;
                return;
            }
            let path = if dir.as_os_str().is_empty() { PathBuf::from(entry.file_name()) } else { entry.path() };
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_file() {
                // The entry's type and inode come with the directory listing: a plain
                // file costs no stat (an idle poll of many files stays cheap).
                if self.include.is_match(&path) && !self.exclude.is_match(&path) {
                    walk.found.files.push(FoundFile { path, device, inode: entry.ino() });
                }
                continue;
            }
            if kind.is_dir() {
                if depth > 1 {
                    self.walk(&path, depth - 1, walk);
                }
                continue;
            }
            if !kind.is_symlink() {
                continue; // Sockets, pipes, devices.
            }
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            let allowed = entry.metadata().is_ok_and(|link| owner_may_read(&link, &meta));
            if !allowed {
                if meta.is_file() && self.include.is_match(&path) || meta.is_dir() {
                    walk.found.refused_links.push(path);
                }
                continue;
            }
            if meta.is_file() {
                if self.include.is_match(&path)
                    && !self.exclude.is_match(&path)
                    && !self.exclude.is_match(resolve(&path))
                {
                    walk.found.files.push(FoundFile { path, device: meta.dev(), inode: meta.ino() });
                }
            } else if meta.is_dir() && depth > 1 {
                if self.exclude_covers_dir(&resolve(&path)) {
                    continue;
                }
                self.walk(&path, depth - 1, walk);
            }
        }
    }

    /// Everything under `dir` is excluded (a pattern such as `/secret/**`).
    fn exclude_covers_dir(&self, dir: &Path) -> bool {
        self.exclude.is_match(dir.join("x"))
            && self.exclude.is_match(dir.join("x.log"))
            && self.exclude.is_match(dir.join("a/b.log"))
    }
}

/// The state of one search.
struct Walk {
    found: Found,
    visited: HashSet<(u64, u64)>,
    entries: usize,
    started: Instant,
}

/// Whether a link's owner could read its target: root, the target's owner, the
/// target's group when the link has it, or anyone.
fn owner_may_read(link: &Metadata, target: &Metadata) -> bool {
    let mode = target.mode();
    let bit = if target.is_dir() { 0o5 } else { 0o4 };
    link.uid() == 0
        || (link.uid() == target.uid() && (mode >> 6) & bit == bit)
        || (link.gid() == target.gid() && (mode >> 3) & bit == bit)
        || mode & bit == bit
}

/// The path with symlinks resolved, for `log.file.*_resolved`.
pub fn resolve(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    #[test]
    fn star_stays_in_a_component_and_double_star_crosses() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for p in ["a.log", "b.txt", "sub/c.log", "sub/deep/d.log", "sub/skip.log"] {
            touch(&d.join(p));
        }
        let s = |p: &str| d.join(p).display().to_string();
        let finder = Finder::new(&[s("*.log")], &[]).unwrap();
        assert_eq!(finder.find().paths(), vec![d.join("a.log")]);
        let finder = Finder::new(&[s("**/*.log")], &[s("**/skip.log")]).unwrap();
        assert_eq!(finder.find().paths(), vec![d.join("a.log"), d.join("sub/c.log"), d.join("sub/deep/d.log")]);
        let finder = Finder::new(&[s("sub/*/*.log"), s("a.log")], &[]).unwrap();
        assert_eq!(finder.find().paths(), vec![d.join("a.log"), d.join("sub/deep/d.log")]);
    }

    #[test]
    fn symlinked_files_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        touch(&d.join("pods/ns_pod_uid/app/0.log"));
        std::fs::create_dir_all(d.join("containers")).unwrap();
        std::os::unix::fs::symlink(d.join("pods/ns_pod_uid/app/0.log"), d.join("containers/pod_ns_app-1.log")).unwrap();
        let finder = Finder::new(&[d.join("containers/*.log").display().to_string()], &[]).unwrap();
        let found = finder.find().paths();
        assert_eq!(found, vec![d.join("containers/pod_ns_app-1.log")]);
        assert_eq!(resolve(&found[0]), std::fs::canonicalize(d.join("pods/ns_pod_uid/app/0.log")).unwrap());
    }

    #[test]
    fn symlinked_directory_loops_are_walked_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        touch(&d.join("logs/a.log"));
        std::os::unix::fs::symlink(".", d.join("logs/l1")).unwrap();
        std::os::unix::fs::symlink(".", d.join("logs/l2")).unwrap();
        std::os::unix::fs::symlink("..", d.join("logs/up")).unwrap();
        let finder = Finder::new(&[d.join("logs/**/*.log").display().to_string()], &[]).unwrap();
        let started = Instant::now();
        let found = finder.find();
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
        assert_eq!(found.paths(), vec![d.join("logs/a.log")]);
        assert!(!found.cut_short && found.unreadable.is_empty());
    }

    #[test]
    fn exclude_is_matched_against_where_a_link_points() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        touch(&d.join("secret/key.log"));
        touch(&d.join("logs/app.log"));
        std::os::unix::fs::symlink(d.join("secret/key.log"), d.join("logs/key.log")).unwrap();
        std::os::unix::fs::symlink(d.join("secret"), d.join("logs/dir")).unwrap();
        let s = |p: &str| d.join(p).display().to_string();
        let finder = Finder::new(&[s("logs/**/*.log")], &[s("secret/**")]).unwrap();
        assert_eq!(finder.find().paths(), vec![d.join("logs/app.log")]);
    }

    /// Needs root, to own files as other users; under CI it must run.
    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        assert!(root || std::env::var_os("CI").is_none(), "this test needs root under CI");
        root
    }

    fn lchown(path: &Path, uid: u32, gid: u32) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid C string and plain ids.
        assert_eq!(unsafe { libc::lchown(c.as_ptr(), uid, gid) }, 0);
    }

    #[test]
    fn a_link_is_followed_only_where_its_owner_could_read_the_target() {
        use std::os::unix::fs::PermissionsExt;
        if !is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        touch(&d.join("private/shadow"));
        std::fs::set_permissions(d.join("private"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(d.join("private/shadow"), std::fs::Permissions::from_mode(0o600)).unwrap();
        touch(&d.join("public/open.log"));
        std::fs::set_permissions(d.join("public/open.log"), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::create_dir_all(d.join("logs")).unwrap();
        let nobody = 65534;
        // A user's links: to root's private file (refused), to a world-readable one.
        std::os::unix::fs::symlink(d.join("private/shadow"), d.join("logs/steal.log")).unwrap();
        lchown(&d.join("logs/steal.log"), nobody, nobody);
        std::os::unix::fs::symlink(d.join("private"), d.join("logs/dir")).unwrap();
        lchown(&d.join("logs/dir"), nobody, nobody);
        std::os::unix::fs::symlink(d.join("public/open.log"), d.join("logs/open.log")).unwrap();
        lchown(&d.join("logs/open.log"), nobody, nobody);
        // Root's link (as Kubernetes makes /var/log/containers): followed.
        std::os::unix::fs::symlink(d.join("private/shadow"), d.join("logs/root.log")).unwrap();
        let finder = Finder::new(&[d.join("logs/**/*.log").display().to_string()], &[]).unwrap();
        let found = finder.find();
        assert_eq!(found.paths(), vec![d.join("logs/open.log"), d.join("logs/root.log")]);
        let mut refused = found.refused_links.clone();
        refused.sort();
        assert_eq!(refused, vec![d.join("logs/dir"), d.join("logs/steal.log")]);
    }
}
