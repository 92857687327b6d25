//! Which databases `vigil metrics` and `vigil serve` report on, and the `db` label each one gets.
//!
//! A label must not depend on which other databases share the command: dashboards, alert `for:` timers and
//! history key on it, so a new tenant appearing under a glob must not rename the others.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use super::Target;
use crate::Failure;

/// The first 16 bytes of every SQLite database file.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// A database found on the command line, and the directory its label is relative to.
#[derive(Debug)]
pub struct Found {
    pub path: PathBuf,
    /// For a glob's match: the glob's literal (wildcard-free) leading directory. None for a path named
    /// explicitly, whose label is its file name.
    pub base: Option<PathBuf>,
}

/// Paths named explicitly are kept whatever they hold (a missing or damaged one must show as `vigil_up 0`);
/// files matched by a glob are kept only when they start with SQLite's magic header, so that `-wal`, `-shm`,
/// journals and other files beside the databases are skipped.
pub fn expand(patterns: &[String]) -> Result<Vec<Found>, Failure> {
    let mut found = Vec::new();
    for pattern in patterns {
        if !is_glob(pattern) {
            found.push(Found { path: PathBuf::from(pattern), base: None });
            continue;
        }
        let matched = glob::glob(pattern)
            .map_err(|e| Failure::usage(format!("bad glob {}: {} at character {}", quoted(pattern), e.msg, e.pos)))?;
        let before = found.len();
        let base = literal_base(pattern);
        found.extend(
            matched
                .filter_map(Result::ok)
                .filter(|path| is_sqlite_file(path))
                .map(|path| Found { path, base: Some(base.clone()) }),
        );
        if found.len() == before {
            return Err(Failure::usage(format!(
                "glob {} matches no SQLite database; check the pattern (quote it so the shell leaves it alone)",
                quoted(pattern)
            )));
        }
    }
    Ok(found)
}

fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// The glob's leading components up to (not including) the first with a wildcard: `/srv/*/app.db` → `/srv`,
/// `*.db` → `.` (the current directory).
pub fn literal_base(pattern: &str) -> PathBuf {
    let mut base = PathBuf::new();
    for component in Path::new(pattern).components() {
        if is_glob(&component.as_os_str().to_string_lossy()) {
            break;
        }
        base.push(component);
    }
    if base.as_os_str().is_empty() {
        base.push(".");
    }
    base
}

fn is_sqlite_file(path: &Path) -> bool {
    let mut header = [0u8; 16];
    // Only regular files: a FIFO matched by a glob must not block the read.
    let regular = std::fs::metadata(path).map(|m| m.is_file()).unwrap_or(false);
    regular && std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut header)).is_ok() && &header == MAGIC
}

/// One target per distinct file (the same file named twice, by glob or path, is one target: the first naming
/// wins), labelled on its own: a glob's match by its path below the glob's literal directory, a path named
/// explicitly by its file name. Two targets with one label are a usage error, never a silent renaming.
pub fn labelled(found: Vec<Found>) -> Result<Vec<Target>, Failure> {
    let mut seen = HashSet::new();
    let mut targets: Vec<Target> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    for Found { path, base } in found {
        let absolute = components(&absolute(&path));
        let identity = std::fs::canonicalize(&path).unwrap_or_else(|_| PathBuf::from(absolute.join("/")));
        if !seen.insert(identity) {
            continue;
        }
        let name = label(&absolute, base.as_deref());
        if let Some(&other) = by_name.get(&name) {
            return Err(collision(&name, &targets[other].path, &path));
        }
        by_name.insert(name.clone(), targets.len());
        targets.push(Target { name, path });
    }
    Ok(targets)
}

/// The label of one database: its components below `base` (when it lies below it), else its file name.
fn label(absolute: &[String], base: Option<&Path>) -> String {
    let file_name = || absolute.last().cloned().unwrap_or_default();
    let Some(base) = base else { return file_name() };
    let base = components(&self::absolute(base));
    match absolute.strip_prefix(base.as_slice()) {
        Some(rest) if !rest.is_empty() => rest.join("/"),
        _ => file_name(),
    }
}

fn collision(name: &str, first: &Path, second: &Path) -> Failure {
    Failure::usage(format!(
        "{} and {} would both be labelled db={}; name them through one glob that covers both their directories \
         (e.g. '/srv/*/app.db' labels them shop/app.db and blog/app.db), or name them in separate commands",
        quoted(&first.display().to_string()),
        quoted(&second.display().to_string()),
        quoted(name)
    ))
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

fn quoted(text: &str) -> String {
    crate::sql::quoted(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(path: &str, base: Option<&str>) -> Found {
        Found { path: PathBuf::from(path), base: base.map(PathBuf::from) }
    }

    fn names(found: Vec<Found>) -> Vec<String> {
        labelled(found).unwrap().into_iter().map(|t| t.name).collect()
    }

    #[test]
    fn globs_label_below_their_literal_directory() {
        assert_eq!(literal_base("/srv/*/app.db"), PathBuf::from("/srv"));
        assert_eq!(literal_base("*.db"), PathBuf::from("."));
        assert_eq!(literal_base("/srv/**/x.db"), PathBuf::from("/srv"));
        assert_eq!(literal_base("data/t[0-9]/a.db"), PathBuf::from("data"));
        let glob = Some("/srv");
        assert_eq!(names(vec![found("/srv/shop/app.db", glob)]), ["shop/app.db"]);
        assert_eq!(
            names(vec![found("/srv/blog/app.db", glob), found("/srv/shop/app.db", glob)]),
            ["blog/app.db", "shop/app.db"]
        );
        assert_eq!(names(vec![found("/srv/a/b/x.db", glob)]), ["a/b/x.db"]);
    }

    #[test]
    fn explicit_paths_are_their_file_names_whoever_else_is_there() {
        assert_eq!(names(vec![found("/x/a/app.db", None), found("/x/other.db", None)]), ["app.db", "other.db"]);
        assert_eq!(
            names(vec![found("/x/app.db", None), found("/x/./app.db", None), found("/x/y/../app.db", None)]),
            ["app.db"]
        );
    }

    #[test]
    fn a_label_collision_names_both_paths() {
        let error = labelled(vec![found("/x/a/app.db", None), found("/x/b/app.db", None)]).unwrap_err();
        assert_eq!(error.code, crate::exit::USAGE);
        assert!(error.message.contains("'/x/a/app.db' and '/x/b/app.db'"), "{}", error.message);
        assert!(error.message.contains("glob"), "{}", error.message);
    }
}
