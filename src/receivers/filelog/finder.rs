//! Finding the files to read: `include` globs minus `exclude` globs, with `*` within a
//! path component and `**` across them, as upstream's doublestar matching. Symlinked
//! files are followed (Kubernetes' `/var/log/containers/*.log` point into
//! `/var/log/pods/`); the walk is bounded by each pattern's depth.

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// Directories deeper than this below a pattern's literal prefix are not walked, even
/// for `**`: a bound on work and on symlink loops.
const MAX_DEPTH: usize = 32;

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

    /// Every matching regular file (following symlinks), sorted, each once.
    pub fn find(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for (root, depth) in &self.roots {
            self.walk(root, *depth, &mut found);
        }
        found.sort();
        found.dedup();
        found
    }

    fn walk(&self, dir: &Path, depth: usize, found: &mut Vec<PathBuf>) {
        if depth == 0 {
            return;
        }
        let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() { Path::new(".") } else { dir }) else {
            return;
        };
        for entry in entries.flatten() {
            let path = if dir.as_os_str().is_empty() { PathBuf::from(entry.file_name()) } else { entry.path() };
            // Follows symlinks: a link to a file is read as that file.
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            if meta.is_file() {
                if self.include.is_match(&path) && !self.exclude.is_match(&path) {
                    found.push(path);
                }
            } else if meta.is_dir() && depth > 1 {
                self.walk(&path, depth - 1, found);
            }
        }
    }
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
        assert_eq!(finder.find(), vec![d.join("a.log")]);
        let finder = Finder::new(&[s("**/*.log")], &[s("**/skip.log")]).unwrap();
        assert_eq!(finder.find(), vec![d.join("a.log"), d.join("sub/c.log"), d.join("sub/deep/d.log")]);
        let finder = Finder::new(&[s("sub/*/*.log"), s("a.log")], &[]).unwrap();
        assert_eq!(finder.find(), vec![d.join("a.log"), d.join("sub/deep/d.log")]);
    }

    #[test]
    fn symlinked_files_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        touch(&d.join("pods/ns_pod_uid/app/0.log"));
        std::fs::create_dir_all(d.join("containers")).unwrap();
        std::os::unix::fs::symlink(d.join("pods/ns_pod_uid/app/0.log"), d.join("containers/pod_ns_app-1.log")).unwrap();
        let finder = Finder::new(&[d.join("containers/*.log").display().to_string()], &[]).unwrap();
        let found = finder.find();
        assert_eq!(found, vec![d.join("containers/pod_ns_app-1.log")]);
        assert_eq!(resolve(&found[0]), std::fs::canonicalize(d.join("pods/ns_pod_uid/app/0.log")).unwrap());
    }
}
