//! Which databases `vigil metrics` and `vigil serve` report on, and the `db` label each one gets.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use super::Target;
use crate::Failure;

/// The first 16 bytes of every SQLite database file.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Paths named explicitly are kept whatever they hold (a missing or damaged one must show as `vigil_up 0`);
/// files matched by a glob are kept only when they start with SQLite's magic header, so that `-wal`, `-shm`,
/// journals and other files beside the databases are skipped.
pub fn expand(patterns: &[String]) -> Result<Vec<PathBuf>, Failure> {
    let mut paths = Vec::new();
    for pattern in patterns {
        if !is_glob(pattern) {
            paths.push(PathBuf::from(pattern));
            continue;
        }
        let matched = glob::glob(pattern)
            .map_err(|e| Failure::usage(format!("bad glob {}: {} at character {}", quoted(pattern), e.msg, e.pos)))?;
        let before = paths.len();
        paths.extend(matched.filter_map(Result::ok).filter(|path| is_sqlite_file(path)));
        if paths.len() == before {
            return Err(Failure::usage(format!(
                "glob {} matches no SQLite database; check the pattern (quote it so the shell leaves it alone)",
                quoted(pattern)
            )));
        }
    }
    Ok(paths)
}

fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

fn is_sqlite_file(path: &Path) -> bool {
    let mut header = [0u8; 16];
    // Only regular files: a FIFO matched by a glob must not block the read.
    let regular = std::fs::metadata(path).map(|m| m.is_file()).unwrap_or(false);
    regular && std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut header)).is_ok() && &header == MAGIC
}

/// One target per distinct file (the same file named twice, by glob or path, is one target), labelled with its
/// file name or, when file names collide, the shortest path suffix that tells them apart.
pub fn labelled(paths: Vec<PathBuf>) -> Result<Vec<Target>, Failure> {
    let mut seen = HashSet::new();
    let mut unique = Vec::new();
    for path in paths {
        let absolute = absolute(&path);
        let identity = std::fs::canonicalize(&path).unwrap_or_else(|_| PathBuf::from(components(&absolute).join("/")));
        if seen.insert(identity) {
            unique.push((path, absolute));
        }
    }
    let suffixes: Vec<Vec<String>> = unique.iter().map(|(_, absolute)| components(absolute)).collect();
    let mut targets = Vec::new();
    for (i, (path, absolute)) in unique.iter().enumerate() {
        let name = distinguishing_suffix(i, &suffixes).unwrap_or_else(|| absolute.display().to_string());
        targets.push(Target { name, path: path.clone() });
    }
    let mut names = HashSet::new();
    for target in &targets {
        if !names.insert(target.name.clone()) {
            return Err(Failure::usage(format!(
                "two databases would both be labelled db={}; name them by distinct paths",
                quoted(&target.name)
            )));
        }
    }
    Ok(targets)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Path components without the root, `.` and `..` resolved lexically.
fn components(path: &Path) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    parts
}

/// The last k components of path i, k as small as makes it differ from every other path's last k.
fn distinguishing_suffix(i: usize, all: &[Vec<String>]) -> Option<String> {
    let mine = &all[i];
    let mut needed = 1;
    for (j, other) in all.iter().enumerate() {
        if j != i {
            let common = mine.iter().rev().zip(other.iter().rev()).take_while(|(a, b)| a == b).count();
            needed = needed.max(common + 1);
        }
    }
    (needed <= mine.len()).then(|| mine[mine.len() - needed..].join("/"))
}

fn quoted(text: &str) -> String {
    crate::sql::quoted(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(paths: &[&str]) -> Vec<String> {
        labelled(paths.iter().map(PathBuf::from).collect()).unwrap().into_iter().map(|t| t.name).collect()
    }

    #[test]
    fn file_names_unless_they_collide() {
        assert_eq!(names(&["/x/a/app.db", "/x/b/app.db", "/x/other.db"]), ["a/app.db", "b/app.db", "other.db"]);
        assert_eq!(names(&["/x/a/app.db", "/y/a/app.db"]), ["x/a/app.db", "y/a/app.db"]);
        assert_eq!(names(&["/x/app.db", "/x/./app.db", "/x/y/../app.db"]), ["app.db"]);
    }
}
