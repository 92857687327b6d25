//! A consistent copy of one committed state of a database, taken while other connections keep writing.
//!
//! For a database file on the host's unix VFS, vigil pins a read transaction on a connection of its own and
//! copies the file at disk speed through that connection's VFS handle (no descriptor of its own, so no POSIX
//! lock of the process is lost). In WAL mode the pages that the pinned snapshot reads from the WAL are laid
//! over the file's: writers never wait. With a rollback journal the shared lock that keeps writers from
//! committing is held only while the file is read. Everything else (in-memory and temporary databases, other
//! VFSes) is copied by SQLite's backup API in a single step, which is one read transaction too.

use std::time::{Duration, Instant, SystemTime};

use super::buffer::{Buffer, READ_BLOCK};
use super::feed::{Chunk, Sink};
use crate::error::{Error, Result};
use crate::format::header::{DatabaseHeader, HEADER_BYTES};
use crate::format::pages::{database_file, number, pin, wal_overlay, Pinned, MMAP_SIZE};
use crate::maintenance::elapsed_ms;
use crate::sqlite::{open_flags, Backup, BackupProgress, Db, OwnedDb, VfsFile};
use crate::store::quote;

const CHUNK: usize = 1 << 20;

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
    /// Rollback journal only: how the copy made without the lock was corrected under it.
    pub correction: Option<Correction>,
}

#[derive(Clone, Copy, Debug)]
pub struct Correction {
    /// Whether the copy was compared with the file (else the file provably did not change meanwhile).
    pub compared: bool,
    pub rewritten_bytes: u64,
}

impl Copied {
    fn of_file(pinned: &Pinned, writers_blocked_ms: f64, correction: Option<Correction>) -> Copied {
        Copied {
            method: Method::FileCopy,
            path: None,
            page_size: pinned.page_size,
            page_count: pinned.page_count,
            journal_mode: pinned.journal_mode.clone(),
            bytes: pinned.bytes(),
            writers_blocked_ms,
            correction,
        }
    }
}

/// Bytes copied so far and in all, for progress reports.
pub type Advance<'a> = &'a dyn Fn(u64, u64) -> Result<()>;

/// What a backup copies from: for a database file on the host's unix VFS, a read-only connection of vigil's
/// own (the file is copied through it); for anything else none (SQLite's backup API copies from the caller's
/// connection).
pub struct Origin {
    path: Option<String>,
    connection: Option<OwnedDb>,
    journal_mode: String,
    wal: bool,
    quiet: bool,
    /// Another connection of vigil's already holds the file's write lock (a restore about to replace it).
    held: bool,
}

impl Origin {
    /// Opens the read-only connection (waiting for locks at most `busy_timeout_ms`) where the file is copied,
    /// and learns its journal mode there: the caller's connection may have no busy timeout, and reading the
    /// mode can need a lock a writer holds.
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
        let journal_mode = match &connection {
            Some(connection) => {
                let mode = connection.db().query_value("PRAGMA journal_mode", &[])?;
                mode.as_str().unwrap_or("").to_lowercase()
            }
            None => String::new(),
        };
        let wal = journal_mode == "wal";
        let quiet = path.as_deref().and_then(modified).is_some_and(|m| is_quiet_since(m, SystemTime::now()));
        Ok(Origin { path, connection, journal_mode, wal, quiet, held: false })
    }

    /// Marks the origin as copied while a connection of vigil's own holds the database's write lock, taken
    /// after this call: no commit can come between the copy and what that connection does next. In WAL mode
    /// the copy is a snapshot as usual (readers are not blocked); with a rollback journal the lock is exclusive,
    /// so the file on disk is the committed state and is read as it is, without a lock of its own.
    pub fn held(mut self) -> Result<Origin> {
        let Some(connection) = &self.connection else {
            return Err(Error::new("the database is not a file on the unix VFS, so it cannot be copied under a lock"));
        };
        if !self.wal {
            // Read without a lock of its own: never through a memory map.
            connection.db().exec("PRAGMA mmap_size = 0")?;
        }
        self.held = true;
        Ok(self)
    }

    /// The database file's path (none for in-memory and temporary databases).
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// A file copy in WAL mode: the copy can be streamed without a raw file, since holding the snapshot while
    /// a slow consumer catches up stalls no writer.
    pub fn can_stream(&self) -> bool {
        self.connection.is_some() && self.wal
    }

    /// A file copy with a rollback journal: made without the lock, then corrected under it.
    pub fn corrects_copy(&self) -> bool {
        self.connection.is_some() && !self.wal && !self.held
    }

    /// The file was not written lately, so a copy made without the lock will likely need no correction.
    pub fn is_quiet(&self) -> bool {
        self.quiet
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
    let mut copied = match (&origin.connection, &origin.path) {
        (Some(connection), _) if origin.held && !origin.wal => {
            copy_held_file(connection.db(), &origin.journal_mode, sink, advance)?
        }
        (Some(connection), Some(path)) if !origin.wal => copy_then_correct(connection.db(), path, sink, advance)?,
        (Some(connection), _) => {
            // Map the file (up to the host's SQLITE_MAX_MMAP_SIZE) so that pages are copied straight from it.
            connection.db().exec(MMAP_SIZE)?;
            copy_file(connection.db(), origin.held, sink, advance)?
        }
        (None, _) => copy_with_backup_api(caller, schema, sink, advance)?,
    };
    copied.path = origin.path.clone();
    Ok(copied)
}

/// Copies the snapshot pinned on `db` into `sink` in one pass (WAL mode; or a rollback journal whose lock
/// writers then wait on for the whole copy, when the mode changed as the backup began). `held`: writers wait
/// anyway, for a lock vigil holds elsewhere.
fn copy_file<T: Send + 'static>(db: Db, held: bool, sink: &mut Sink<T>, advance: Advance) -> Result<Copied> {
    let pinned = pin(db)?;
    let locked_since = Instant::now();
    // Writers wait for this read lock unless in WAL mode: never make them wait for the disk too.
    let holds_writers = pinned.wal.is_none() || held;
    sink.set_waiting(!holds_writers);
    let database = database_file(&db)?;
    let result = copy_pages(&db, &database, &pinned, sink, advance);
    // Mapped pages are valid only while the read transaction (and the connection) lasts.
    for mapped in sink.end_stream() {
        database.unfetch(mapped);
    }
    let _ = db.exec("COMMIT");
    sink.set_waiting(true);
    let writers_blocked_ms = if holds_writers { elapsed_ms(locked_since) } else { 0.0 };
    result?;
    Ok(Copied::of_file(&pinned, writers_blocked_ms, None))
}

/// Copies the pinned snapshot in 1 MiB chunks.
fn copy_pages<T: Send + 'static>(
    db: &Db,
    database: &VfsFile,
    pinned: &Pinned,
    sink: &mut Sink<T>,
    advance: Advance,
) -> Result<()> {
    let mut chunks = Chunks::new(db, database, pinned)?;
    while let Some((offset, chunk)) = chunks.next(&mut |len| sink.buffer(len))? {
        let end = offset + chunk.bytes().len() as u64;
        sink.put(chunk)?;
        for mapped in sink.take_returned() {
            database.unfetch(mapped);
        }
        advance(end, pinned.bytes())?;
    }
    Ok(())
}

/// The pinned snapshot, chunk by chunk: the file's pages as the VFS maps them, 1 MiB at a time, where no WAL
/// frame replaces one of them (no copy in memory at all), else 128 KiB read into a buffer with the WAL
/// frames laid over.
struct Chunks<'a> {
    database: &'a VfsFile<'a>,
    wal: Option<VfsFile<'a>>,
    overlay: Vec<(u32, u64)>,
    next_overlay: usize,
    page_size: usize,
    page_count: u32,
    first_page: u32,
}

impl<'a> Chunks<'a> {
    fn new(db: &'a Db, database: &'a VfsFile<'a>, pinned: &Pinned) -> Result<Self> {
        let overlay = wal_overlay(*db, pinned)?;
        let wal = if overlay.is_empty() { None } else { db.journal_file("main")? };
        let (page_size, page_count) = (pinned.page_size as usize, pinned.page_count);
        Ok(Chunks { database, wal, overlay, next_overlay: 0, page_size, page_count, first_page: 1 })
    }

    /// The next chunk and its offset in the file; `buffer(len)` gives memory to read into when needed.
    fn next(&mut self, buffer: &mut dyn FnMut(usize) -> Buffer) -> Result<Option<(u64, Chunk)>> {
        if self.first_page > self.page_count {
            return Ok(None);
        }
        let offset = (self.first_page - 1) as u64 * self.page_size as u64;
        let pages_up_to =
            |bytes: usize| (self.page_count - self.first_page + 1).min((bytes / self.page_size).max(1) as u32);
        let mut pages = pages_up_to(CHUNK);
        let overlaid = self.overlay.get(self.next_overlay).is_some_and(|&(page, _)| page < self.first_page + pages);
        let mapped = if overlaid { None } else { self.database.fetch(offset, pages as usize * self.page_size) };
        if mapped.is_none() {
            pages = pages_up_to(READ_BLOCK);
        }
        let (end_page, len) = (self.first_page + pages, pages as usize * self.page_size);
        let chunk = match mapped {
            Some(mapped) => Chunk::Mapped(mapped),
            None => {
                let mut bytes = buffer(len);
                self.database.read_at(&mut bytes, offset)?;
                while let Some(&(page, at)) = self.overlay.get(self.next_overlay).filter(|(p, _)| *p < end_page) {
                    if let Some(wal) = &self.wal {
                        let start = (page - self.first_page) as usize * self.page_size;
                        wal.read_at(&mut bytes[start..start + self.page_size], at)?;
                    }
                    self.next_overlay += 1;
                }
                Chunk::Owned(bytes)
            }
        };
        self.first_page = end_page;
        Ok(Some((offset, chunk)))
    }
}

/// How long a file must have gone unwritten for a copy made without the lock to be trusted without a
/// comparison: longer than the coarsest file system timestamp (FAT's 2 s).
const QUIET: Duration = Duration::from_secs(3);

fn modified(path: &str) -> Option<SystemTime> {
    std::fs::metadata(path).ok()?.modified().ok()
}

fn is_quiet_since(modified: SystemTime, now: SystemTime) -> bool {
    now.duration_since(modified).is_ok_and(|age| age > QUIET)
}

/// What shows whether a rollback-journal database changed between two looks under its lock: the change
/// counter that every commit increments, the size, and the modification time (which also moves when a
/// crashed writer's hot journal is rolled back: the one change that leaves the counter as it was).
#[derive(PartialEq, Eq)]
struct FileState {
    change_counter: u32,
    page_count: u32,
    size: u64,
    modified: Option<SystemTime>,
}

impl FileState {
    fn read(database: &VfsFile, path: &str, pinned: &Pinned) -> Result<FileState> {
        let mut header = [0u8; HEADER_BYTES];
        database.read_at(&mut header, 0)?;
        Ok(FileState {
            change_counter: DatabaseHeader::parse(&header).map_err(Error::new)?.change_counter,
            page_count: pinned.page_count,
            size: database.size()?,
            modified: modified(path),
        })
    }
}

/// A rollback-journal database, copied so that writers wait for a comparison instead of the copy. The file
/// is copied without the lock (writers keep committing, so the copy may mix states), then compared under the
/// lock with the copy chunk by chunk, and the chunks that differ are rewritten: the result is exactly the
/// state under the lock. The comparison is skipped when nothing can have changed since a first look under
/// the lock: same change counter, size and modification time, and the file unwritten since well before.
fn copy_then_correct<T: Send + 'static>(db: Db, path: &str, sink: &mut Sink<T>, advance: Advance) -> Result<Copied> {
    // Reads without the lock must not go through a memory map (a writer may truncate the file under it);
    // under the lock, reads into page-aligned buffers compare as fast as the map.
    db.exec("PRAGMA mmap_size = 0")?;
    let first = pin(db)?;
    if first.wal.is_some() {
        db.exec("COMMIT")?;
        db.exec(MMAP_SIZE)?;
        return copy_file(db, false, sink, advance);
    }
    let database = database_file(&db)?;
    let before = FileState::read(&database, path, &first);
    db.exec("COMMIT")?;
    let (before, released) = (before?, SystemTime::now());
    let copied = precopy(&database, first.bytes(), sink, advance);
    sink.end_stream(); // read into buffers, never mapped: nothing to unfetch
    copied?;

    let pinned = pin(db)?;
    let locked_since = Instant::now();
    sink.set_waiting(pinned.wal.is_some());
    let corrected = (|| {
        let unchanged = pinned.wal.is_none()
            && before.modified.is_some_and(|m| is_quiet_since(m, released))
            && FileState::read(&database, path, &pinned)? == before;
        if unchanged {
            return Ok(Correction { compared: false, rewritten_bytes: 0 });
        }
        let rewritten_bytes = correct(&db, &database, &pinned, sink)?;
        Ok::<_, Error>(Correction { compared: true, rewritten_bytes })
    })();
    let _ = db.exec("COMMIT");
    sink.set_waiting(true);
    sink.release();
    let writers_blocked_ms = if pinned.wal.is_none() { elapsed_ms(locked_since) } else { 0.0 };
    let corrected = corrected?;
    advance(pinned.bytes(), pinned.bytes())?;
    Ok(Copied::of_file(&pinned, writers_blocked_ms, Some(corrected)))
}

/// A rollback-journal file whose exclusive lock another connection of vigil's holds: the file is the committed
/// state (a hot journal was rolled back when that lock was taken), copied whole without a lock of our own.
fn copy_held_file<T: Send + 'static>(
    db: Db,
    journal_mode: &str,
    sink: &mut Sink<T>,
    advance: Advance,
) -> Result<Copied> {
    let database = database_file(&db)?;
    let mut bytes = [0u8; HEADER_BYTES];
    database.read_at(&mut bytes, 0)?;
    let header = DatabaseHeader::parse(&bytes).map_err(Error::new)?;
    if header.wal {
        return Err(Error::new("the database switched to WAL mode meanwhile; run the operation again"));
    }
    let page_size = header.page_size;
    sink.set_waiting(false); // writers wait for the lock: never for the disk too
    let page_count = (database.size()? / u64::from(page_size)) as u32;
    let pinned = Pinned { page_size, page_count, journal_mode: journal_mode.into(), wal: None };
    let copied = precopy(&database, pinned.bytes(), sink, advance);
    sink.end_stream(); // read into buffers, never mapped: nothing to unfetch
    sink.set_waiting(true);
    copied?;
    Ok(Copied::of_file(&pinned, 0.0, None))
}

/// Copies the file's first `total` bytes without a lock, through the VFS's reads.
fn precopy<T: Send + 'static>(database: &VfsFile, total: u64, sink: &mut Sink<T>, advance: Advance) -> Result<()> {
    let mut offset = 0;
    while offset < total {
        let len = (total - offset).min(READ_BLOCK as u64) as usize;
        let mut buffer = sink.buffer(len);
        database.read_at(&mut buffer, offset)?;
        sink.put(Chunk::Owned(buffer))?;
        offset += len as u64;
        advance(offset, total)?;
    }
    Ok(())
}

/// Under the lock: compares the pinned snapshot with the raw copy and rewrites the chunks that differ.
/// Returns the bytes rewritten.
fn correct<T: Send + 'static>(db: &Db, database: &VfsFile, pinned: &Pinned, sink: &mut Sink<T>) -> Result<u64> {
    sink.set_raw_len(pinned.bytes())?;
    let mut ours = Buffer::new(READ_BLOCK);
    let mut spare: Option<Buffer> = None;
    let mut rewritten = 0;
    let mut chunks = Chunks::new(db, database, pinned)?;
    loop {
        let next = chunks.next(&mut |len| {
            let mut buffer = spare.take().unwrap_or_default();
            buffer.resize(len);
            buffer
        })?;
        let Some((offset, chunk)) = next else { break };
        let theirs = chunk.bytes();
        let compared = differs(sink, theirs, offset, &mut ours).and_then(|differs| {
            if !differs {
                return Ok(());
            }
            rewritten += theirs.len() as u64;
            sink.overwrite_raw(theirs, offset)
        });
        match chunk {
            Chunk::Mapped(mapped) => database.unfetch(mapped),
            Chunk::Owned(buffer) => spare = Some(buffer),
        }
        compared?;
    }
    Ok(rewritten)
}

/// Whether the raw copy at `offset` differs from `theirs`, read back a cache-sized piece at a time.
fn differs<T: Send + 'static>(sink: &Sink<T>, theirs: &[u8], offset: u64, ours: &mut [u8]) -> Result<bool> {
    for (i, theirs) in theirs.chunks(ours.len()).enumerate() {
        let ours = &mut ours[..theirs.len()];
        sink.read_raw_at(ours, offset + (i * READ_BLOCK) as u64)?;
        if ours != theirs {
            return Ok(true);
        }
    }
    Ok(false)
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
    advance(bytes, bytes)?;
    Ok(Copied {
        method: Method::BackupApi,
        path: None,
        page_size,
        page_count,
        journal_mode,
        bytes,
        writers_blocked_ms: 0.0,
        correction: None,
    })
}
