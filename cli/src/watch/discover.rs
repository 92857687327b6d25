//! Which databases `vigil watch` watches: re-read at every cycle, so a new database is watched within one cycle
//! and a deleted one dropped without a restart.
//!
//! Positional paths and globs follow `vigil metrics` (same labels); `--dir D --pattern P [--recursive]` adds
//! every matching file below D, labelled by its path below D. Only regular files that start with SQLite's header
//! are kept; `-wal`, `-shm`, `-journal` files and vigil's backup artefacts are skipped without a word, any other
//! file with a note. A directory walk never follows a symlink (to a directory or a file), so it cannot leave D,
//! and never opens a FIFO, device or socket.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use crate::metrics::targets::{self, Found};
use crate::metrics::Target;
use crate::Failure;

const MAGIC: &[u8; 16] = b"SQLite format 3\0";
const NOT_UTF8: &str = "its name is not UTF-8: rename it: vigil watches UTF-8 names";

/// What the command line selects.
#[derive(Clone, Debug)]
pub struct Selection {
    pub patterns: Vec<String>,
    pub dir: Option<PathBuf>,
    pub pattern: glob::Pattern,
    pub recursive: bool,
    /// `--backup-dir`: never watched, whatever lies in it.
    pub exclude: Option<PathBuf>,
}

/// Refuses a --backup-dir that is --dir or the directory of a watched database: each database's backups go into a
/// subdirectory named like its label, which there is the database itself (reported as in the way, "remove it": the
/// live database), and --dir would watch nothing (what lies in --backup-dir is never watched). A backup directory
/// below them is fine: the scan passes over it.
pub fn check_backup_dir(backups: &Path, dir: Option<&Path>, watched: &[Target]) -> Result<(), Failure> {
    let Ok(real) = std::fs::canonicalize(backups) else { return Ok(()) };
    let parents = watched.iter().map(|t| {
        let parent = t.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        (parent.to_path_buf(), format!("the directory of the watched database {}", t.path.display()))
    });
    let dirs = dir.map(|d| (d.to_path_buf(), "--dir".to_string())).into_iter().chain(parents);
    for (holder, what) in dirs {
        let Ok(holder_real) = std::fs::canonicalize(&holder) else { continue };
        if real == holder_real {
            return Err(Failure::usage(format!(
                "--backup-dir {} is {} ({}): each database's backups go into a subdirectory named after it, which \
                 there is the database itself; choose another directory (a subdirectory such as backups/ is fine)",
                crate::output::escape_controls(&backups.display().to_string()),
                what,
                crate::output::escape_controls(&holder.display().to_string()),
            )));
        }
    }
    Ok(())
}

/// One scan's result.
#[derive(Debug, Default)]
pub struct Scan {
    pub targets: Vec<Target>,
    /// Files passed over, each with why (the caller says it once per file).
    pub skipped: Vec<(PathBuf, String)>,
    /// Directories of the selection that could not be read this time (gone, renamed, unmounted, unreadable),
    /// each with why: what was watched below them is kept, since their absence says nothing of the databases.
    pub unreadable: Vec<(PathBuf, String)>,
}

impl Scan {
    /// Whether a database not found by this scan lies below a directory it could not read (keep it: only a
    /// directory read successfully says that a database vanished).
    pub fn cannot_tell(&self, path: &Path) -> bool {
        self.unreadable.iter().any(|(root, _)| within(path, root))
    }
}

/// Why a directory could not be read, in words (no `os error` numbers).
fn unreadable_why(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such directory any more (renamed, deleted or unmounted)".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::NotADirectory => "not a directory any more".into(),
        _ => crate::output::io_text(e),
    }
}

/// `path` lies below `dir`, `.` components aside (a glob's literal directory `.` holds `a.db`).
fn within(path: &Path, dir: &Path) -> bool {
    let plain = |p: &Path| p.components().filter(|c| *c != Component::CurDir).collect::<PathBuf>();
    plain(path).starts_with(plain(dir))
}

impl Selection {
    /// Scans the selection. On the first scan a glob matching no database, a missing `--dir` or two databases with
    /// one label are usage errors; later they only cost the databases concerned (a tenant deleted, a directory
    /// briefly renamed) with a note.
    pub fn scan(&self, first: bool) -> Result<Scan, Failure> {
        let mut scan = Scan::default();
        let mut found = Vec::new();
        for pattern in &self.patterns {
            self.expand(pattern, first, &mut found, &mut scan)?;
        }
        if let Some(dir) = &self.dir {
            if !dir.is_dir() {
                let message =
                    format!("--dir {}: not a directory; name the directory holding the databases", dir.display());
                if first {
                    return Err(Failure::usage(message));
                }
                scan.unreadable.push((dir.clone(), "not a directory any more (renamed, deleted or unmounted)".into()));
            } else {
                self.walk(dir, dir, &mut found, &mut scan);
            }
        }
        if first {
            scan.targets = targets::labelled(found)?;
        } else {
            scan.targets = label_leniently(found, &mut scan.skipped);
        }
        Ok(scan)
    }

    fn expand(&self, pattern: &str, first: bool, found: &mut Vec<Found>, scan: &mut Scan) -> Result<(), Failure> {
        if !pattern.contains(['*', '?', '[']) {
            // Named explicitly: watched whatever it holds, so that a missing database shows as unreadable.
            found.push(Found { path: PathBuf::from(pattern), base: None });
            return Ok(());
        }
        let paths = glob::glob(pattern).map_err(|e| {
            Failure::usage(format!("bad glob {}: {} at character {}", crate::sql::quoted(pattern), e.msg, e.pos))
        })?;
        let base = targets::literal_base(pattern);
        let before = found.len();
        if let Err(e) = std::fs::read_dir(&base) {
            scan.unreadable.push((base.clone(), unreadable_why(&e)));
        }
        for path in paths {
            let path = match path {
                Ok(path) => path,
                Err(e) => {
                    scan.unreadable.push((e.path().to_path_buf(), unreadable_why(e.error())));
                    continue;
                }
            };
            if path.to_str().is_none() {
                scan.skipped.push((path, NOT_UTF8.into()));
                continue;
            }
            match self.verdict(&path, true) {
                Verdict::Database => found.push(Found { path, base: Some(base.clone()) }),
                Verdict::Note(why) => scan.skipped.push((path, why)),
                Verdict::Silent => {}
            }
        }
        if first && found.len() == before {
            return Err(Failure::usage(format!(
                "glob {} matches no SQLite database; check the pattern (quote it so the shell leaves it alone)",
                crate::sql::quoted(pattern)
            )));
        }
        Ok(())
    }

    /// Walks `dir` (below `root`), never through a symlink.
    fn walk(&self, root: &Path, dir: &Path, found: &mut Vec<Found>, scan: &mut Scan) {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => return scan.unreadable.push((dir.to_path_buf(), unreadable_why(&e))),
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else { continue };
            // Labels, logs and the state file are UTF-8: such a name is passed over, however it matches.
            if path.to_str().is_none() {
                scan.skipped.push((path, NOT_UTF8.into()));
                continue;
            }
            if kind.is_dir() {
                if self.recursive && !self.excluded(&path) {
                    self.walk(root, &path, found, scan);
                }
                continue;
            }
            let name = entry.file_name();
            if !self.pattern.matches(&name.to_string_lossy()) {
                continue;
            }
            match self.verdict(&path, false) {
                Verdict::Database => found.push(Found { path, base: Some(root.to_path_buf()) }),
                Verdict::Note(why) => scan.skipped.push((path, why)),
                Verdict::Silent => {}
            }
        }
    }

    fn excluded(&self, path: &Path) -> bool {
        let Some(exclude) = &self.exclude else { return false };
        match (std::fs::canonicalize(path), std::fs::canonicalize(exclude)) {
            (Ok(path), Ok(exclude)) => path.starts_with(exclude),
            _ => false,
        }
    }

    /// Whether a file is a database to watch. `follow`: a glob the user wrote may name a symlink to a database;
    /// a directory walk never follows one.
    fn verdict(&self, path: &Path, follow: bool) -> Verdict {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let companion = ["-wal", "-shm", "-journal", ".vigil.json"].iter().any(|s| name.ends_with(s));
        if companion || is_backup_artefact(path) || self.excluded(path) {
            return Verdict::Silent;
        }
        let meta = if follow { std::fs::metadata(path) } else { std::fs::symlink_metadata(path) };
        let Ok(meta) = meta else { return Verdict::Silent };
        if meta.file_type().is_symlink() {
            return Verdict::Note("a symlink: not followed in --dir (name it, or its target, explicitly)".into());
        }
        if !meta.is_file() {
            return Verdict::Note("not a regular file".into());
        }
        match has_sqlite_header(path, follow) {
            true => Verdict::Database,
            false => Verdict::Note("not an SQLite database (no SQLite header)".into()),
        }
    }
}

enum Verdict {
    Database,
    Note(String),
    Silent,
}

/// A backup vigil wrote: its manifest lies beside it.
fn is_backup_artefact(path: &Path) -> bool {
    let mut manifest = path.as_os_str().to_owned();
    manifest.push(".vigil.json");
    Path::new(&manifest).exists()
}

/// Reads the first 16 bytes without blocking (a FIFO swapped in after the check cannot hang the scan) and
/// without following a symlink unless asked.
fn has_sqlite_header(path: &Path, follow: bool) -> bool {
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    let Ok(mut file) = OpenOptions::new().read(true).custom_flags(flags).open(path) else { return false };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut header = [0u8; 16];
    file.read_exact(&mut header).is_ok() && &header == MAGIC
}

/// Labels as `vigil metrics` does, but a second database with a label already taken is passed over with a note
/// instead of stopping the watch.
fn label_leniently(found: Vec<Found>, skipped: &mut Vec<(PathBuf, String)>) -> Vec<Target> {
    let mut seen = HashSet::new();
    let mut by_name: HashMap<String, PathBuf> = HashMap::new();
    let mut out = Vec::new();
    for one in found {
        let path = one.path.clone();
        let identity = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if !seen.insert(identity) {
            continue;
        }
        let Ok(mut labelled) = targets::labelled(vec![one]) else { continue };
        let Some(target) = labelled.pop() else { continue };
        if let Some(first) = by_name.get(&target.name) {
            let why = format!("its label db={} is taken by {}", target.name, first.display());
            skipped.push((path, why));
            continue;
        }
        by_name.insert(target.name.clone(), target.path.clone());
        out.push(target);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selection(dir: &Path, pattern: &str, recursive: bool) -> Selection {
        Selection {
            patterns: vec![],
            dir: Some(dir.to_path_buf()),
            pattern: glob::Pattern::new(pattern).unwrap(),
            recursive,
            exclude: None,
        }
    }

    fn database(path: &Path) {
        let mut bytes = MAGIC.to_vec();
        bytes.resize(512, 0);
        std::fs::write(path, bytes).unwrap();
    }

    fn names(scan: &Scan) -> Vec<String> {
        scan.targets.iter().map(|t| t.name.clone()).collect()
    }

    #[test]
    fn a_directory_keeps_databases_and_notes_other_files() {
        let dir = std::env::temp_dir().join(format!("vigil-discover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        database(&dir.join("a.db"));
        database(&dir.join("sub/b.db"));
        database(&dir.join("a.db-wal"));
        database(&dir.join("old.db"));
        std::fs::write(dir.join("old.db.vigil.json"), "{}").unwrap();
        std::fs::write(dir.join("x.db"), "not a database").unwrap();
        std::os::unix::fs::symlink(dir.join("sub"), dir.join("link")).unwrap();
        std::os::unix::fs::symlink(dir.join("a.db"), dir.join("alias.db")).unwrap();
        let flat = selection(&dir, "*.db", false).scan(true).unwrap();
        assert_eq!(names(&flat), ["a.db"]);
        let noted: Vec<String> =
            flat.skipped.iter().map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(noted, ["alias.db", "x.db"]);
        let deep = selection(&dir, "*.db", true).scan(true).unwrap();
        assert_eq!(names(&deep), ["a.db", "sub/b.db"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_that_are_not_utf8_are_skipped_with_a_note() {
        use std::os::unix::ffi::OsStrExt;
        let dir = std::env::temp_dir().join(format!("vigil-discover-utf8-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        database(&dir.join("a.db"));
        // Two names that would share one lossy label: both skipped, not a label collision.
        database(&dir.join(std::ffi::OsStr::from_bytes(b"bad\xff.db")));
        database(&dir.join(std::ffi::OsStr::from_bytes(b"bad\xfe.db")));
        let scan = selection(&dir, "*.db", false).scan(true).unwrap();
        assert_eq!(names(&scan), ["a.db"]);
        assert_eq!(scan.skipped.len(), 2);
        assert!(scan.skipped.iter().all(|(_, why)| why == NOT_UTF8), "{:?}", scan.skipped);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
