//! A consistent copy of one committed state of a database, taken while other connections keep writing.
//!
//! For a database file on the host's unix VFS, vigil pins a read transaction on a connection of its own and
//! copies the file at disk speed through that connection's VFS handle (no descriptor of its own, so no POSIX
//! lock of the process is lost). In WAL mode the pages that the pinned snapshot reads from the WAL are laid
//! over the file's: writers never wait. With a rollback journal the shared lock that keeps writers from
//! committing is held only while the file is read. Everything else (in-memory and temporary databases, other
//! VFSes) is copied by SQLite's backup API in a single step, which is one read transaction too.

use std::time::Instant;

use super::feed::{Chunk, Sink};
use crate::error::{Error, Result};
use crate::health::checks::quote;
use crate::maintenance::elapsed_ms;
use crate::sqlite::{open_flags, Backup, BackupProgress, Db, OwnedDb, VfsFile};
use crate::wal::{newest_frames, WalIndexHeader};

const CHUNK: usize = 1 << 20;
const MMAP_SIZE: &str = "PRAGMA mmap_size = 1099511627776";
/// A writer commits between our two looks at the wal-index at most this often in a row before we give up.
const PIN_ATTEMPTS: usize = 1000;

/// How the copy was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    FileCopy,
    BackupApi,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::FileCopy => "file_copy",
            Method::BackupApi => "backup_api",
        }
    }
}

#[derive(Debug)]
pub struct Copied {
    pub method: Method,
    pub path: Option<String>,
    pub page_size: u32,
    pub page_count: u32,
    pub journal_mode: String,
    pub bytes: u64,
    /// How long other connections could not commit because of the copy (rollback journal only).
    pub writers_blocked_ms: f64,
}

/// Bytes copied so far and in all, for progress reports.
pub type Advance<'a> = &'a dyn Fn(u64, u64);

/// What a backup copies from: for a database file on the host's unix VFS, a read-only connection of vigil's
/// own (the file is copied through it); for anything else none (SQLite's backup API copies from the caller's
/// connection).
pub struct Origin {
    path: Option<String>,
    connection: Option<OwnedDb>,
}

impl Origin {
    /// Opens the read-only connection (waiting for locks at most `busy_timeout_ms`) where the file is copied.
    pub fn open(caller: Db, schema: &str, busy_timeout_ms: i32) -> Result<Origin> {
        let path = caller.filename(schema)?;
        let connection = match (&path, caller.vfs_name(schema)?) {
            (Some(path), Some(vfs)) if vfs.starts_with("unix") => {
                let connection = OwnedDb::open(path, open_flags::READ_ONLY, Some(&vfs))?;
                connection.db().set_busy_timeout(busy_timeout_ms)?;
                Some(connection)
            }
            _ => None,
        };
        Ok(Origin { path, connection })
    }

    /// Whether the copy can be streamed without a raw file: a file copy in WAL mode, where holding the
    /// snapshot while a slow consumer catches up stalls no writer. Asked on vigil's own connection: the
    /// caller's may have no busy timeout, and reading the mode can need a lock a writer holds.
    pub fn can_stream(&self) -> Result<bool> {
        let Some(connection) = &self.connection else { return Ok(false) };
        let mode = connection.db().query_value("PRAGMA journal_mode", &[])?;
        Ok(mode.as_str().is_some_and(|m| m.eq_ignore_ascii_case("wal")))
    }
}

/// Copies `schema` (attached: the caller checked) of the caller's connection, from `origin`, into `sink`.
pub fn copy<T: Send + 'static>(
    caller: Db,
    schema: &str,
    origin: &Origin,
    sink: &mut Sink<T>,
    advance: Advance,
) -> Result<Copied> {
    let mut copied = match &origin.connection {
        Some(connection) => {
            // Map the file (up to the host's SQLITE_MAX_MMAP_SIZE) so that pages are copied straight from it.
            connection.db().exec(MMAP_SIZE)?;
            copy_file(connection.db(), sink, advance)?
        }
        None => copy_with_backup_api(caller, schema, sink, advance)?,
    };
    copied.path = origin.path.clone();
    Ok(copied)
}

/// The pinned read transaction: its page size and count, and in WAL mode the wal-index header it reads.
struct Pinned {
    page_size: u32,
    page_count: u32,
    journal_mode: String,
    wal: Option<WalIndexHeader>,
}

fn number(db: Db, sql: &str) -> Result<i64> {
    db.query_value(sql, &[])?.as_i64().ok_or_else(|| Error::new(format!("{sql} returned no number")))
}

/// Opens a read transaction on `db` and learns exactly which state it reads. In WAL mode that is the
/// wal-index header current when the transaction began: read before and after beginning, equal change
/// counters prove no commit came between.
fn pin(db: Db) -> Result<Pinned> {
    let mut wal_mode = false;
    for _ in 0..PIN_ATTEMPTS {
        let file = db.database_file("main")?.ok_or_else(|| Error::new("the database file is not open"))?;
        // Look at the wal-index only once this connection has read in WAL mode: mapping it otherwise would
        // create a -shm file beside a rollback-journal database.
        let before = if wal_mode { WalIndexHeader::read(&file) } else { None };
        db.exec("BEGIN")?;
        let pinned = (|| {
            db.query("SELECT 1 FROM sqlite_schema LIMIT 1", &[])?;
            let journal_mode = db.query_value("PRAGMA journal_mode", &[])?.as_str().unwrap_or("").to_lowercase();
            let page_size = number(db, "PRAGMA page_size")? as u32;
            let page_count = number(db, "PRAGMA page_count")? as u32;
            Ok::<_, Error>(Pinned { page_size, page_count, journal_mode, wal: None })
        })();
        let mut pinned = match pinned {
            Ok(p) => p,
            Err(e) => {
                let _ = db.exec("ROLLBACK");
                return Err(e);
            }
        };
        if pinned.journal_mode != "wal" {
            return Ok(pinned);
        }
        wal_mode = true;
        let after = WalIndexHeader::read(&file);
        if let (Some(before), Some(after)) = (before, after) {
            if before == after && (after.max_frame == 0 || after.pages == pinned.page_count) {
                pinned.wal = Some(after);
                return Ok(pinned);
            }
        }
        db.exec("COMMIT")?;
    }
    Err(Error::new(format!(
        "could not pin a snapshot: another connection committed during each of {PIN_ATTEMPTS} attempts"
    )))
}

fn copy_file<T: Send + 'static>(db: Db, sink: &mut Sink<T>, advance: Advance) -> Result<Copied> {
    let pinned = pin(db)?;
    let locked_since = Instant::now();
    // Writers wait for this read lock unless in WAL mode: never make them wait for the disk too.
    let holds_writers = pinned.wal.is_none();
    sink.set_waiting(!holds_writers);
    let database = db.database_file("main")?.ok_or_else(|| Error::new("the database file is not open"))?;
    let result = copy_pages(db, &database, &pinned, sink, advance);
    // Mapped pages are valid only while the read transaction (and the connection) lasts.
    for mapped in sink.end_stream() {
        database.unfetch(mapped);
    }
    let _ = db.exec("COMMIT");
    sink.set_waiting(true);
    let writers_blocked_ms = if holds_writers { elapsed_ms(locked_since) } else { 0.0 };
    let bytes = result?;
    Ok(Copied {
        method: Method::FileCopy,
        path: None,
        page_size: pinned.page_size,
        page_count: pinned.page_count,
        journal_mode: pinned.journal_mode,
        bytes,
        writers_blocked_ms,
    })
}

/// Copies the pinned snapshot in 1 MiB chunks: the file's pages as the VFS maps them where no WAL frame
/// replaces one of them (no copy in memory at all), else read into a buffer with the WAL frames laid over.
fn copy_pages<T: Send + 'static>(
    db: Db,
    database: &VfsFile,
    pinned: &Pinned,
    sink: &mut Sink<T>,
    advance: Advance,
) -> Result<u64> {
    let page_size = pinned.page_size as usize;
    let overlay = wal_overlay(db, pinned)?;
    let wal = if overlay.is_empty() { None } else { db.journal_file("main")? };
    let total = pinned.page_count as u64 * page_size as u64;
    let pages_per_chunk = (CHUNK / page_size).max(1);
    let mut next_overlay = overlay.iter().peekable();
    let mut written = 0u64;
    let mut first_page = 1u32;
    while first_page <= pinned.page_count {
        let pages = (pinned.page_count - first_page + 1).min(pages_per_chunk as u32);
        let len = pages as usize * page_size;
        let overlaid = next_overlay.peek().is_some_and(|&&(page, _)| page < first_page + pages);
        let mapped = if overlaid { None } else { database.fetch(written, len) };
        let chunk = match mapped {
            Some(mapped) => Chunk::Mapped(mapped),
            None => {
                let mut buffer = sink.buffer(len);
                database.read_at(&mut buffer, written)?;
                while let Some(&&(page, offset)) = next_overlay.peek() {
                    if page >= first_page + pages {
                        break;
                    }
                    if let Some(wal) = &wal {
                        let at = (page - first_page) as usize * page_size;
                        wal.read_at(&mut buffer[at..at + page_size], offset)?;
                    }
                    next_overlay.next();
                }
                Chunk::Owned(buffer)
            }
        };
        written += len as u64;
        sink.put(chunk)?;
        for mapped in sink.take_returned() {
            database.unfetch(mapped);
        }
        advance(written, total);
        first_page += pages;
    }
    Ok(written)
}

/// (page, offset in the WAL) of every page the pinned snapshot reads from the WAL, by page number.
fn wal_overlay(db: Db, pinned: &Pinned) -> Result<Vec<(u32, u64)>> {
    let Some(header) = pinned.wal.filter(|h| h.max_frame > 0) else { return Ok(Vec::new()) };
    let wal = db.journal_file("main")?.ok_or_else(|| Error::new("the WAL file is not open"))?;
    let mut frames: Vec<(u32, u64)> =
        newest_frames(&wal, &header, pinned.page_size)?.into_iter().filter(|(p, _)| *p <= pinned.page_count).collect();
    frames.sort_unstable();
    Ok(frames)
}

/// SQLite's backup API, all pages in one step (one read transaction: consistent, and never restarted).
fn copy_with_backup_api<T: Send + 'static>(
    caller: Db,
    schema: &str,
    sink: &mut Sink<T>,
    advance: Advance,
) -> Result<Copied> {
    let out_path = sink.raw_path().ok_or_else(|| Error::new("the backup API needs a file to write"))?;
    let path = out_path.to_str().ok_or_else(|| Error::new("the backup path is not valid UTF-8"))?;
    let dest = OwnedDb::open(path, open_flags::READ_WRITE, None)?;
    let journal_mode = caller.query_value(&format!("PRAGMA {}.journal_mode", quote(schema)), &[])?;
    let journal_mode = journal_mode.as_str().unwrap_or("").to_lowercase();
    let (page_size, page_count) = {
        let dest_db = dest.db();
        let mut backup = Backup::new(&dest_db, "main", &caller, schema)?;
        while backup.step(-1)? != BackupProgress::Done {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        drop(backup);
        let db = dest.db();
        (number(db, "PRAGMA page_size")? as u32, number(db, "PRAGMA page_count")? as u32)
    };
    drop(dest);
    let bytes = sink.put_raw_file()?;
    advance(bytes, bytes);
    Ok(Copied {
        method: Method::BackupApi,
        path: None,
        page_size,
        page_count,
        journal_mode,
        bytes,
        writers_blocked_ms: 0.0,
    })
}
