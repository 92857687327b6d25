//! Page sources: a database read page by page, with the newest committed WAL frames laid over the file, or a
//! hot rollback journal's original pages, exactly as SQLite would read the last committed state. For a raw file
//! ([`FilePages`]), or for the read snapshot a live connection holds ([`SnapshotPages`]).

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::btree::BtreePage;
use super::header::{lock_page, DatabaseHeader, HEADER_BYTES};
use super::journal::{self, JournalHeader, JournalScan};
use super::wal::{self, WalScan};
use super::wal_index::{newest_frames, WalIndexHeader};
use crate::error::{self, Error};
use crate::sqlite::{Db, Mapped, OwnedVfsFile, VfsFile};

/// Pages read one at a time, each borrowed until the next is asked for.
pub trait PageSource {
    fn page_size(&self) -> u32;
    /// Bytes of each page b-tree content may use (page size minus the reserved bytes).
    fn usable_size(&self) -> u32;
    fn page_count(&self) -> u32;
    /// Page `number` (1-based), whole.
    fn page(&mut self, number: u32) -> Result<&[u8], String>;
}

/// A database file (and its -wal or -journal) read directly, for files SQLite may not be able to open. The
/// database file is opened through the host's VFS (see `OwnedVfsFile`: a plain descriptor's close would drop
/// this process's locks on it); its -wal and -journal carry no locks and are read as plain files.
pub struct FilePages {
    file: OwnedVfsFile,
    len: u64,
    pub header: DatabaseHeader,
    /// What is wrong with the header, when its fields had to be guessed or corrected.
    pub header_problems: Vec<String>,
    pub page_count: u32,
    /// The pages the database says it has: more than `page_count` when the file was truncated (a child
    /// pointer up to here is a page lost with the end of the file, not a sign of a garbage page).
    pub page_limit: u32,
    /// The header's magic string is there, or most pages look like b-tree pages.
    pub looks_like_database: bool,
    wal: Option<(File, WalScan)>,
    journal: Option<(File, JournalScan)>,
}

/// Reads from `offset` until `buffer` is full or the file ends; the bytes read (fewer on an I/O error).
pub fn read_fully(file: &File, buffer: &mut [u8], offset: u64) -> usize {
    let mut done = 0;
    while done < buffer.len() {
        match file.read_at(&mut buffer[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    done
}

pub fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A regular file's handle, or `None` when the path is missing or not a regular file (a planted FIFO or
/// device is never opened: opening a FIFO for reading would hang).
pub fn open_regular(path: &Path) -> std::io::Result<Option<File>> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_file() => File::open(path).map(Some),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A WAL file's frames, read from an open file (see `wal::scan`).
pub fn scan_wal_file(file: &File) -> std::io::Result<WalScan> {
    let len = file.metadata()?.len();
    Ok(wal::scan(len, &mut |buf, at| read_fully(file, buf, at)))
}

/// A rollback journal's header state, read from an open file.
pub fn journal_header_of(file: &File) -> JournalHeader {
    journal::header_state(&mut |buf, at| read_fully(file, buf, at))
}

impl FilePages {
    /// Opens `path` (a regular file) and its -wal or -journal when they are regular files with valid headers.
    pub fn open(path: &Path) -> Result<FilePages, String> {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => return Err(format!("{} is not a regular file", path.display())),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        }
        let text = path.to_str().ok_or_else(|| format!("{} is not a UTF-8 path", path.display()))?;
        let file = OwnedVfsFile::open_database(text)
            .map_err(|e| format!("cannot read {}: {}", path.display(), e.message()))?;
        let len = file.size().map_err(|e| e.message().to_string())?;
        let mut first = [0u8; HEADER_BYTES];
        file.read_at(&mut first, 0);
        let mut problems = Vec::new();
        let magic = DatabaseHeader::has_magic(&first);
        let wal = Self::open_wal(path);
        // Without the magic string nothing in the header can be trusted: the page size is inferred from the
        // pages themselves, and the fields that would make the reader skip pages (reserved bytes, pointer
        // maps, the freelist) are ignored.
        let field = if magic { DatabaseHeader::page_size_field(&first) } else { None };
        // A plausible but wrong page size (damage that left another power of two) is caught by the pages. At
        // half the real size only every other boundary starts a page; at a size too large, half of it explains
        // the pages as well (every boundary of it is also one of the real size), so that size is suspect.
        let field = field.filter(|&size| {
            let here = btree_fraction(&file, len, size);
            size == 512 || here == 0.0 || btree_fraction(&file, len, size / 2) < 0.75 * here
        });
        let (page_size, btree_fraction) = match field {
            Some(size) => (size, None),
            None => {
                let (guessed, fraction) = match wal.as_ref() {
                    Some((_, w)) => (w.page_size, 1.0),
                    None => guess_page_size(&file, len),
                };
                let what = if magic { "the header's page size is damaged" } else { "the header is damaged" };
                problems.push(format!("{what}; reading {guessed}-byte pages"));
                (guessed, Some(fraction))
            }
        };
        let mut header = DatabaseHeader::fields(&first, page_size);
        if !magic {
            (header.reserved, header.largest_root, header.incremental_vacuum) = (0, 0, false);
            (header.freelist_trunk, header.freelist_count) = (0, 0);
        }
        if u32::from(header.reserved) >= page_size - 480 {
            problems.push(format!("the header's reserved-bytes field ({}) is impossible; using 0", header.reserved));
            header.reserved = 0;
        }
        // A damaged reserved-bytes field hides the end of every page: cells there seem to run past the page. When
        // more cells parse without it, it is wrong (a real reserve is never used by cells: both counts are equal).
        let reserved = u32::from(header.reserved);
        if reserved > 0
            && cells_that_parse(&file, len, page_size, page_size)
                > cells_that_parse(&file, len, page_size, page_size - reserved)
        {
            problems.push(format!("the header's reserved-bytes field ({reserved}) does not fit the pages; using 0"));
            header.reserved = 0;
        }
        let wal = wal.filter(|(_, w)| w.page_size == page_size && w.committed_frames > 0);
        let journal = if wal.is_none() { Self::open_journal(path, page_size) } else { None };
        let from_file = len.div_ceil(u64::from(page_size)).min(u64::from(u32::MAX)) as u32;
        // A size the WAL or journal claims is believed only as far as it could be true: each page past the end
        // of the file needs a frame or a journal record of its own (a crafted size must not make the reader
        // allocate for billions of pages).
        let page_count = match (&wal, &journal) {
            (Some((_, w)), _) => w.database_pages.min(from_file.saturating_add(w.committed_frames)),
            (None, Some((_, j))) if j.original_pages > 0 => {
                j.original_pages.min(from_file.saturating_add(j.originals.len() as u32))
            }
            _ => from_file,
        };
        let claimed = if magic && header.page_count_is_current() { header.page_count } else { page_count };
        if claimed > from_file && wal.is_none() {
            problems.push(format!("the file holds {from_file} pages but the database has {claimed}: it was truncated"));
        }
        let looks_like_database = magic || btree_fraction.is_some_and(|f| f >= MIN_BTREE_FRACTION);
        Ok(FilePages {
            file,
            len,
            header,
            header_problems: problems,
            page_count,
            page_limit: claimed.max(page_count),
            looks_like_database,
            wal,
            journal,
        })
    }

    /// The -wal when it is a regular file with a valid header (SQLite ignores it otherwise).
    fn open_wal(path: &Path) -> Option<(File, WalScan)> {
        let file = open_regular(&sidecar(path, "-wal")).ok()??;
        let scan = scan_wal_file(&file).ok()?;
        scan.header_problem.is_none().then_some((file, scan))
    }

    fn open_journal(path: &Path, page_size: u32) -> Option<(File, JournalScan)> {
        let file = open_regular(&sidecar(path, "-journal")).ok()??;
        let len = file.metadata().ok()?.len();
        let scan = journal::scan(len, page_size, &mut |buf, at| read_fully(&file, buf, at))?;
        Some((file, scan))
    }

    pub fn page_size(&self) -> u32 {
        self.header.page_size
    }

    pub fn usable_size(&self) -> u32 {
        self.header.usable_size()
    }

    pub fn wal(&self) -> Option<&WalScan> {
        self.wal.as_ref().map(|(_, w)| w)
    }

    pub fn journal(&self) -> Option<&JournalScan> {
        self.journal.as_ref().map(|(_, j)| j)
    }

    /// Reads page `number` (1-based) into `buffer` (one page long). False when the page lies past the end of
    /// the file; a page cut short by it is zero-padded (see `valid_bytes`).
    pub fn read(&self, number: u32, buffer: &mut [u8]) -> bool {
        if number == 0 || number > self.page_count {
            return false;
        }
        let size = self.page_size() as usize;
        if let Some((wal, scan)) = &self.wal {
            if let Some(&at) = scan.newest.get(&number) {
                return read_fully(wal, &mut buffer[..size], at) == size;
            }
        }
        if let Some((journal, scan)) = &self.journal {
            if let Some(&at) = scan.originals.get(&number) {
                return read_fully(journal, &mut buffer[..size], at) == size;
            }
        }
        let offset = u64::from(number - 1) * size as u64;
        if offset >= self.len {
            return false;
        }
        // A page cut short by the end of the file is read zero-padded; `valid_bytes` says where its bytes end, so
        // that nothing past the cut is taken for data.
        let got = self.file.read_at(&mut buffer[..size], offset);
        buffer[got..size].fill(0);
        got > 0
    }

    /// How many bytes of page `number` the file really holds: less than a page only for a last page cut short
    /// by the end of the file (and not replaced by a WAL frame or journal record).
    pub fn valid_bytes(&self, number: u32) -> usize {
        let size = self.page_size() as u64;
        let replaced = self.wal().is_some_and(|w| w.newest.contains_key(&number))
            || self.journal().is_some_and(|j| j.originals.contains_key(&number));
        let end = u64::from(number) * size;
        if replaced || end <= self.len {
            return size as usize;
        }
        self.len.saturating_sub(end - size) as usize
    }

    /// Page `number` whole, for reads that cannot tell a cut page's padding from data (overflow pages).
    pub fn whole_page(&self, number: u32) -> Option<Vec<u8>> {
        self.page(number).filter(|_| self.valid_bytes(number) == self.page_size() as usize)
    }

    /// Page `number` as a new buffer.
    pub fn page(&self, number: u32) -> Option<Vec<u8>> {
        let mut buffer = vec![0u8; self.page_size() as usize];
        self.read(number, &mut buffer).then_some(buffer)
    }

    /// Whether `number` is a pointer-map page (auto_vacuum databases) or the lock page: never b-tree content.
    pub fn is_structural(&self, number: u32) -> bool {
        number == lock_page(self.page_size()) || self.is_pointer_map(number)
    }

    pub fn is_pointer_map(&self, number: u32) -> bool {
        if self.header.largest_root == 0 || number < 2 {
            return false;
        }
        // SQLite's ptrmapPageno: the map page of the group `number` falls in, moved one page on when it would be
        // the lock page.
        let per_map = self.usable_size() / 5 + 1;
        let mut map = (number - 2) / per_map * per_map + 2;
        if map == lock_page(self.page_size()) {
            map += 1;
        }
        map == number
    }
}

/// The share of sampled boundaries of `size` that start a page parsing as a b-tree page. The samples are odd
/// multiples of `size` spread over the whole file: at the real page size and above, every one is a page start;
/// below it, none is (so the real size is the smallest that scores high), and spreading them keeps one region
/// of the file (overflow pages, say) from deciding.
fn btree_fraction(file: &OwnedVfsFile, len: u64, size: u32) -> f64 {
    const SAMPLES: u64 = 128;
    let pages = len / u64::from(size);
    let mut page = vec![0u8; size as usize];
    let mut tried = 0;
    let mut matching = 0;
    let mut last = 0;
    for j in 0..SAMPLES {
        let k = (j * pages / SAMPLES) | 1;
        if k >= pages || k == last {
            continue;
        }
        last = k;
        tried += 1;
        let whole = file.read_at(&mut page, k * u64::from(size)) == page.len();
        if whole && BtreePage::parse(k as u32 + 1, &page, size).is_ok() {
            matching += 1;
        }
    }
    f64::from(matching) / f64::from(tried.max(1))
}

/// How many cells of the file's first b-tree pages (up to 64 pages) parse with `usable` bytes per page.
fn cells_that_parse(file: &OwnedVfsFile, len: u64, size: u32, usable: u32) -> usize {
    let mut page = vec![0u8; size as usize];
    let mut cells = 0;
    for number in 1..=(len / u64::from(size)).min(64) as u32 {
        if file.read_at(&mut page, u64::from(number - 1) * u64::from(size)) != page.len() {
            break;
        }
        if let Ok(parsed) = BtreePage::parse(number, &page, usable) {
            cells += (0..parsed.cell_count()).filter(|&i| parsed.cell(i).is_ok()).count();
        }
    }
    cells
}

/// Below this share of pages that look like b-tree pages, a file without the header's magic string is not
/// taken for a database (random bytes or text pass the page-header checks far more rarely; a database whose
/// pages are mostly overflow pages still has some b-tree pages in every 20).
const MIN_BTREE_FRACTION: f64 = 0.05;

/// When the header's page size is damaged: the smallest size at which about as many pages start like b-tree
/// pages as at the best size (every multiple of the real size matches too, smaller sizes match less often),
/// and the share of pages that do at that size.
fn guess_page_size(file: &OwnedVfsFile, len: u64) -> (u32, f64) {
    let sizes: Vec<(u32, f64)> =
        (9..=16).map(|shift| 1u32 << shift).map(|size| (size, btree_fraction(file, len, size))).collect();
    let best = sizes.iter().map(|&(_, f)| f).fold(0.0, f64::max);
    sizes.iter().find(|&&(_, f)| best > 0.0 && f >= 0.75 * best).copied().unwrap_or((4096, 0.0))
}

/// A raw file's pages through one reused buffer.
pub struct FileReader<'a> {
    pages: &'a FilePages,
    buffer: Vec<u8>,
}

impl<'a> FileReader<'a> {
    pub fn new(pages: &'a FilePages) -> FileReader<'a> {
        FileReader { pages, buffer: vec![0u8; pages.page_size() as usize] }
    }
}

impl PageSource for FileReader<'_> {
    fn page_size(&self) -> u32 {
        self.pages.page_size()
    }

    fn usable_size(&self) -> u32 {
        self.pages.usable_size()
    }

    fn page_count(&self) -> u32 {
        self.pages.page_count
    }

    fn page(&mut self, number: u32) -> Result<&[u8], String> {
        if !self.pages.read(number, &mut self.buffer) {
            return Err(format!("page {number} lies past the end of the file"));
        }
        Ok(&self.buffer)
    }
}

/// Asks for the whole file to be mappable (SQLite caps it at its SQLITE_MAX_MMAP_SIZE).
pub const MMAP_SIZE: &str = "PRAGMA mmap_size = 1099511627776";
/// A writer commits between our two looks at the wal-index at most this often in a row before we give up.
const PIN_ATTEMPTS: usize = 1000;

/// A read transaction pinned on a connection: its page size and count, and in WAL mode the wal-index header
/// it reads.
pub struct Pinned {
    pub page_size: u32,
    pub page_count: u32,
    pub journal_mode: String,
    pub wal: Option<WalIndexHeader>,
}

impl Pinned {
    pub fn bytes(&self) -> u64 {
        self.page_count as u64 * self.page_size as u64
    }
}

pub fn number(db: Db, sql: &str) -> error::Result<i64> {
    db.query_value(sql, &[])?.as_i64().ok_or_else(|| Error::new(format!("{sql} returned no number")))
}

/// Opens a read transaction on `db` (its `main` schema) and learns exactly which state it reads. In WAL mode
/// that is the wal-index header current when the transaction began: read before and after beginning, equal
/// change counters prove no commit came between. The caller ends the transaction (COMMIT).
pub fn pin(db: Db) -> error::Result<Pinned> {
    let mut wal_mode = false;
    for _ in 0..PIN_ATTEMPTS {
        let file = database_file(&db)?;
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

pub fn database_file(db: &Db) -> error::Result<VfsFile<'_>> {
    db.database_file("main")?.ok_or_else(|| Error::new("the database file is not open"))
}

/// (page, offset in the WAL) of every page the pinned snapshot reads from the WAL, by page number.
pub fn wal_overlay(db: Db, pinned: &Pinned) -> error::Result<Vec<(u32, u64)>> {
    let Some(header) = pinned.wal.filter(|h| h.max_frame > 0) else { return Ok(Vec::new()) };
    let wal = db.journal_file("main")?.ok_or_else(|| Error::new("the WAL file is not open"))?;
    let mut frames: Vec<(u32, u64)> =
        newest_frames(&wal, &header, pinned.page_size)?.into_iter().filter(|(p, _)| *p <= pinned.page_count).collect();
    frames.sort_unstable();
    Ok(frames)
}

/// Pages of the file mapped at once: a window the VFS maps with one fetch (xFetch takes an int length).
const WINDOW: u64 = 1 << 28;

/// The snapshot pinned on a connection ([`pin`]), page by page through the connection's own VFS handles: the
/// file's pages as the VFS maps them (read into a buffer where it maps nothing), the pinned WAL frames laid
/// over. Valid while the read transaction lasts; dropping it hands the mappings back.
pub struct SnapshotPages<'a> {
    database: VfsFile<'a>,
    wal: Option<VfsFile<'a>>,
    overlay: HashMap<u32, u64>,
    windows: Vec<Option<Option<Mapped>>>,
    /// Bytes of the file the VFS can map (whole pages); pages past it are read.
    mappable: u64,
    buffer: Vec<u8>,
    page_size: u32,
    usable: u32,
    page_count: u32,
}

impl<'a> SnapshotPages<'a> {
    /// `db` must hold the read transaction `pinned` describes, with `mmap_size` set to map the file.
    pub fn new(db: &'a Db, pinned: &Pinned) -> error::Result<SnapshotPages<'a>> {
        let database = database_file(db)?;
        let overlay: HashMap<u32, u64> = wal_overlay(*db, pinned)?.into_iter().collect();
        let wal = if overlay.is_empty() { None } else { db.journal_file("main")? };
        let page_size = pinned.page_size;
        let mappable = database.size()? / u64::from(page_size) * u64::from(page_size);
        let windows = (0..pinned.bytes().div_ceil(WINDOW)).map(|_| None).collect();
        let mut pages = SnapshotPages {
            database,
            wal,
            overlay,
            windows,
            mappable,
            buffer: vec![0u8; page_size as usize],
            page_size,
            usable: page_size,
            page_count: pinned.page_count,
        };
        if pages.page_count > 0 {
            let mut header = [0u8; HEADER_BYTES];
            header.copy_from_slice(&pages.page(1).map_err(Error::new)?[..HEADER_BYTES]);
            pages.usable = DatabaseHeader::parse(&header).map_err(Error::new)?.usable_size();
        }
        Ok(pages)
    }

    /// Maps window `index` on first use; false when the VFS maps nothing there.
    fn map_window(&mut self, index: usize) -> bool {
        let start = index as u64 * WINDOW;
        let (database, mappable) = (&self.database, self.mappable);
        let Some(slot) = self.windows.get_mut(index) else { return false };
        slot.get_or_insert_with(|| {
            let len = (start + WINDOW).min(mappable).saturating_sub(start);
            if len == 0 {
                return None;
            }
            database.fetch(start, len as usize)
        })
        .is_some()
    }
}

impl PageSource for SnapshotPages<'_> {
    fn page_size(&self) -> u32 {
        self.page_size
    }

    fn usable_size(&self) -> u32 {
        self.usable
    }

    fn page_count(&self) -> u32 {
        self.page_count
    }

    fn page(&mut self, number: u32) -> Result<&[u8], String> {
        if number == 0 || number > self.page_count {
            return Err(format!("page {number} is outside the database ({} pages)", self.page_count));
        }
        let size = self.page_size as usize;
        let offset = u64::from(number - 1) * size as u64;
        let failed = |e: Error| format!("cannot read page {number}: {e}");
        // Most scans have no WAL frames to lay over: no hashing per page then.
        let overlaid = if self.overlay.is_empty() { None } else { self.overlay.get(&number).copied() };
        if let Some(at) = overlaid {
            let wal = self.wal.as_ref().ok_or_else(|| format!("cannot read page {number}: the WAL is not open"))?;
            wal.read_at(&mut self.buffer, at).map_err(failed)?;
            return Ok(&self.buffer);
        }
        let window = (offset / WINDOW) as usize;
        if offset + size as u64 <= self.mappable && self.map_window(window) {
            if let Some(Some(mapped)) = &self.windows[window] {
                let start = (offset % WINDOW) as usize;
                return Ok(&mapped.bytes()[start..start + size]);
            }
        }
        self.database.read_at(&mut self.buffer, offset).map_err(failed)?;
        Ok(&self.buffer)
    }
}

impl Drop for SnapshotPages<'_> {
    fn drop(&mut self) {
        for mapped in self.windows.drain(..).flatten().flatten() {
            self.database.unfetch(mapped);
        }
    }
}
