//! Opening a database that may be damaged without changing anything on disk.
//!
//! Which open is safe depends on the files beside it (checked on SQLite 3.40 and 3.5x):
//! - rollback mode: `mode=ro`. A read-only connection never rolls back a hot journal: it fails with
//!   SQLITE_READONLY_ROLLBACK instead, and then the database is read from a private copy;
//! - a WAL with frames and its -shm: `mode=ro&readonly_shm=1` maps the -shm read-only (a crashed database's
//!   WAL is then read into private memory), so neither file is written;
//! - a WAL with frames and no -shm: any connection would create the -shm, so a private copy;
//! - WAL mode with no frames (no -wal, or an empty one): the file alone is the database, and `immutable=1`
//!   reads it without creating the -wal and -shm that `mode=ro` would (immutable ignores a WAL, so it is
//!   never used while one holds frames).
//!
//! A private copy lives in a fresh 0700 directory of vigil's in the temp dir, read through SQLite, and is
//! removed when the diagnosis ends.

use std::path::{Path, PathBuf};

use crate::backup::scratch::Scratch;
use crate::error::{Error, Result};
use crate::sqlite::{file_uri, open_flags, OwnedDb};

use super::files::side_size;
use crate::format::pages::sidecar;

/// SQLITE_READONLY_ROLLBACK: a read-only connection met a hot journal it may not roll back.
const READONLY_ROLLBACK: i32 = 776;
const BUSY_TIMEOUT_MS: i32 = 5000;
/// Free space kept beyond a private copy.
const MARGIN: u64 = 16 << 20;

/// How the database was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum How {
    ReadOnly,
    ReadOnlyShm,
    Immutable,
    /// A private copy, and why the file itself could not be opened safely.
    Copy(String),
}

/// A connection to the database (or to its private copy), and the copy's files to remove afterwards.
pub struct Opened {
    // Declared first: the connection closes before the copy's files go.
    pub conn: OwnedDb,
    pub how: How,
    /// The hot journal was rolled back in the private copy.
    pub rolled_back: bool,
    _copy: Option<PrivateCopy>,
}

impl Opened {
    /// What the `open` row says.
    pub fn describe(&self) -> String {
        match &self.how {
            How::ReadOnly => "read-only (mode=ro): nothing is written".into(),
            How::ReadOnlyShm => {
                "read-only with the -shm mapped read-only (mode=ro&readonly_shm=1): the WAL is read, nothing is written"
                    .into()
            }
            How::Immutable => {
                "read-only as immutable (no frames in a WAL, so the file alone is the database): no -wal or -shm is \
                 created"
                    .into()
            }
            How::Copy(why) => {
                let rolled = if self.rolled_back { "; SQLite rolled the hot journal back in the copy" } else { "" };
                format!("{why}, so vigil read a private copy (removed afterwards){rolled}")
            }
        }
    }
}

/// A -journal, -wal or -shm beside the database that is there but is not a regular file (a FIFO, a directory,
/// a device, a symlink): SQLite would open it when reading the database (and block forever on a FIFO, or read a
/// device), so the database is not opened at all.
pub fn planted_sidecar(path: &Path) -> Option<String> {
    ["-journal", "-wal", "-shm"].iter().find_map(|suffix| {
        let side = sidecar(path, suffix);
        let meta = std::fs::symlink_metadata(&side).ok()?;
        (!meta.file_type().is_file()).then(|| {
            format!(
                "{} is not a regular file (a FIFO, directory, device or symlink): SQLite would open it, so the \
                 database was not opened; remove or rename it if nothing of yours uses it",
                side.display()
            )
        })
    })
}

/// Opens `path` (absolute, symlinks resolved) for reading only. `probe` is the mode=ro connection that
/// read the header: a private copy reads the database through it, so that no descriptor of vigil's own
/// is opened and closed on the file (which would drop the process's POSIX locks on it).
pub fn open_safely(path: &Path, wal_mode: bool, probe: &OwnedDb) -> Result<Opened> {
    let wal = sidecar(path, "-wal");
    let wal_frames = side_size(&wal).unwrap_or(0) > 0;
    if wal_frames && side_size(&sidecar(path, "-shm")).is_some() {
        return open_with(path, "mode=ro&readonly_shm=1", How::ReadOnlyShm);
    }
    if wal_frames {
        let why = "the WAL holds frames and there is no -shm (any connection would create one)";
        return open_copy(path, probe, &wal, "-wal", why);
    }
    if wal_mode || side_size(&wal).is_some() {
        return open_with(path, "mode=ro&immutable=1", How::Immutable);
    }
    match open_with(path, "mode=ro", How::ReadOnly) {
        Err(e) if e.code() == READONLY_ROLLBACK => {
            let why = "a hot journal is present (a writer stopped mid-transaction) and SQLite would roll it back";
            open_copy(path, probe, &sidecar(path, "-journal"), "-journal", why)
        }
        other => other,
    }
}

fn open_with(path: &Path, params: &str, how: How) -> Result<Opened> {
    let conn = OwnedDb::open(&file_uri(path, params), open_flags::READ_ONLY | open_flags::URI, None)?;
    conn.db().set_busy_timeout(BUSY_TIMEOUT_MS)?;
    // The first read is where SQLite meets a hot journal or a locked file (schema_version reads the header
    // only: a damaged schema is the schema step's finding, not a failure to open).
    conn.db().query_value("PRAGMA schema_version", &[])?;
    Ok(Opened { conn, how, rolled_back: false, _copy: None })
}

/// A private copy's directory and files, removed on drop.
struct PrivateCopy {
    scratch: Scratch,
    database: PathBuf,
}

impl Drop for PrivateCopy {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(sidecar(&self.database, suffix));
        }
        let _ = std::fs::remove_dir(&self.scratch.dir);
    }
}

fn open_copy(path: &Path, probe: &OwnedDb, side: &Path, suffix: &str, why: &str) -> Result<Opened> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let need = size + side_size(side).unwrap_or(0) + MARGIN;
    let temp = std::env::temp_dir();
    if crate::volume::volume_of(&temp).is_some_and(|disk| disk.free < need) {
        return Err(Error::new(format!(
            "{why}; a private copy needs {need} bytes free in {} (set TMPDIR to a directory with room)",
            temp.display()
        )));
    }
    let scratch = Scratch::private_in(&temp)?;
    let copy = PrivateCopy { database: scratch.dir.join("database.db"), scratch };
    copy_database(probe, &copy.database, size)?;
    if side_size(side).is_some() {
        std::fs::copy(side, sidecar(&copy.database, suffix))
            .map_err(|e| Error::new(format!("cannot copy {} for a private copy: {e}", side.display())))?;
    }
    let conn = OwnedDb::open(&copy.database.to_string_lossy(), open_flags::READ_WRITE, None)?;
    conn.db().query_value("PRAGMA schema_version", &[])?;
    let rolled_back = suffix == "-journal" && side_size(&sidecar(&copy.database, "-journal")).unwrap_or(0) == 0;
    Ok(Opened { conn, how: How::Copy(why.to_string()), rolled_back, _copy: Some(copy) })
}

/// Copies the database file, read through the probe connection's open file, into `dest`.
fn copy_database(probe: &OwnedDb, dest: &Path, size: u64) -> Result<()> {
    use std::io::Write;
    let db = probe.db();
    let source = db.database_file("main")?.ok_or_else(|| Error::new("the database file is not open"))?;
    let failed = |e: std::io::Error| Error::new(format!("cannot write the private copy {}: {e}", dest.display()));
    let mut out = std::fs::OpenOptions::new().write(true).create_new(true).open(dest).map_err(failed)?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut offset = 0;
    while offset < size {
        let len = (size - offset).min(buffer.len() as u64) as usize;
        source.read_at(&mut buffer[..len], offset)?;
        out.write_all(&buffer[..len]).map_err(failed)?;
        offset += len as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_keep_every_byte_of_the_name() {
        assert_eq!(file_uri(Path::new("/a b/c?d#e%.db"), "mode=ro"), "file:/a%20b/c%3Fd%23e%25.db?mode=ro");
    }
}
