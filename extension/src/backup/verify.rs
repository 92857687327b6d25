//! Restore drills: everything a restore would rely on, checked step by step.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value as Json};

use super::compress::decompressing;
use super::digest::{sha256_file, HashingWriter};
use super::dir::{io_error, sync_file, TempFile};
use super::dir::{open_regular, regular_metadata, Perms};
use super::manifest::{self, Manifest, Position};
use super::options::{Compression, Verify};
use crate::error::{Error, Result};
use crate::format::header::{DatabaseHeader, HEADER_BYTES};
use crate::maintenance::elapsed_ms;
use crate::sqlite::{open_flags, OwnedDb};

/// One checked step of a drill.
#[derive(Debug)]
pub struct Step {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
    pub duration_ms: f64,
}

impl Step {
    pub fn to_json(&self) -> Json {
        json!({"step": self.name, "ok": self.ok, "detail": self.detail, "duration_ms": self.duration_ms})
    }
}

/// The outcome of a drill. `database` is the verified database file: the artifact itself, or (compressed)
/// a decompressed temporary copy that lives as long as the drill.
pub struct Drill {
    pub steps: Vec<Step>,
    pub database: Option<PathBuf>,
    pub scratch: Option<TempFile>,
    /// The database's page count, once its header was read.
    pub page_count: Option<u32>,
}

impl Drill {
    pub fn ok(&self) -> bool {
        self.steps.iter().all(|s| s.ok)
    }

    /// The first failed step, as "step: detail".
    pub fn problem(&self) -> Option<String> {
        self.steps.iter().find(|s| !s.ok).map(|s| format!("{}: {}", s.name, s.detail))
    }

    fn step(&mut self, name: &'static str, started: Instant, outcome: std::result::Result<String, String>) -> bool {
        let ok = outcome.is_ok();
        let detail = outcome.unwrap_or_else(|e| e);
        self.steps.push(Step { name, ok, detail, duration_ms: elapsed_ms(started) });
        ok
    }

    /// Records the decompress step; the drill keeps the decompressed file (removed with the drill). Its path
    /// when the step passed.
    fn decompressed(
        &mut self,
        temp: TempFile,
        started: Instant,
        outcome: std::result::Result<String, String>,
    ) -> Option<PathBuf> {
        let path = temp.path.clone();
        self.scratch = Some(temp);
        self.step("decompress", started, outcome).then_some(path)
    }
}

/// A `file:` URI that opens `path` read-only and immutable: no locks, no journal, no -wal or -shm files, no
/// writes. Only for files nobody else changes (artifacts and vigil's own temporary copies).
pub fn immutable_uri(path: &Path) -> String {
    crate::sqlite::file_uri(path, "immutable=1")
}

pub fn open_immutable(path: &Path) -> Result<OwnedDb> {
    OwnedDb::open(&immutable_uri(path), open_flags::READ_ONLY | open_flags::URI, None)
}

/// The journal position a database file holds (see `store::pit::position`), `None` without a journal.
pub fn journal_position(path: &Path) -> Result<Option<Position>> {
    let db = open_immutable(path)?;
    crate::store::pit::position(db.db(), "main").map_err(|e| e.context("cannot read the copy's journal position"))
}

/// Checks that the database's journal is where the manifest says (a checkpoint's `pit`).
fn check_position(database: &Path, expected: &Position) -> std::result::Result<String, String> {
    let found = journal_position(database).map_err(|e| e.to_string())?;
    match found {
        Some(found) if &found == expected => Ok(format!(
            "journal of lineage {} holds seq {} to {} (as the manifest says)",
            found.lineage, found.horizon_seq, found.cut_seq
        )),
        Some(found) => Err(format!(
            "the file's journal is at {}, the manifest says {}",
            serde_json::to_string(&found).unwrap_or_default(),
            serde_json::to_string(expected).unwrap_or_default()
        )),
        None => Err("the manifest records a journal position, but the file has no journal (vigil_pit_log)".into()),
    }
}

/// Runs quick_check or integrity_check on a database file: "ok", or the problems found.
pub fn check_database(path: &Path, level: Verify) -> std::result::Result<String, String> {
    let pragma = match level {
        Verify::None => return Ok("skipped".into()),
        Verify::Quick => "PRAGMA quick_check(10)",
        Verify::Full => "PRAGMA integrity_check(10)",
    };
    let db = open_immutable(path).map_err(|e| e.to_string())?;
    let rows = db.db().query(pragma, &[]).map_err(|e| e.to_string())?;
    let lines: Vec<String> = rows.iter().filter_map(|r| r.first()?.as_str().map(str::to_string)).collect();
    if lines == ["ok"] {
        Ok("ok".into())
    } else {
        Err(lines.join("; "))
    }
}

/// Reads the 100-byte header of a database file: (page size, page count).
fn header(path: &Path) -> std::result::Result<(u32, u32), String> {
    let mut bytes = [0u8; HEADER_BYTES];
    open_regular(path)
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read the header: {e}"))?;
    let header = DatabaseHeader::parse(&bytes)?;
    Ok((header.page_size, header.page_count))
}

fn compare(what: &str, expected: &str, got: &str) -> std::result::Result<String, String> {
    if expected == got {
        Ok(format!("{what} {got}"))
    } else {
        Err(format!("{what} is {got}, the manifest says {expected}"))
    }
}

/// A backup to drill: an artifact and its manifest, or (`bare`) an artifact alone.
pub struct Backup {
    pub artifact: PathBuf,
    pub manifest: Option<Manifest>,
}

impl Backup {
    /// The backup at `path` (an artifact or its manifest). Without a manifest, only with `bare`.
    pub fn open(path: &Path, bare: bool) -> Result<Backup> {
        let named_manifest = path.to_string_lossy().ends_with(manifest::SUFFIX);
        if named_manifest || manifest::path_for(path).exists() {
            let (manifest, artifact) = manifest::read(path)?;
            return Ok(Backup { artifact, manifest: Some(manifest) });
        }
        if !path.exists() {
            return Err(Error::new(format!("{}: no such file", path.display())));
        }
        if path.is_dir() {
            return Err(Error::new(format!(
                "{} is a directory: name one backup file in it (list them with backup_list)",
                path.display()
            )));
        }
        if !bare {
            return Err(Error::new(format!(
                "{} has no vigil manifest ({} is missing), so nothing says what it must hold: to check it as a \
                 bare SQLite file (plain, .gz or .zst; integrity-checked but not verified against a hash), pass \
                 '{{\"bare\":true}}'",
                path.display(),
                manifest::path_for(path).display()
            )));
        }
        Ok(Backup { artifact: path.to_path_buf(), manifest: None })
    }

    pub fn id(&self) -> Option<&str> {
        self.manifest.as_ref().map(|m| m.id.as_str())
    }
}

/// Drills a backup: against its manifest, or as a bare artifact.
pub fn drill_backup(backup: &Backup, level: Verify, scratch_dir: &Path) -> Result<Drill> {
    match &backup.manifest {
        Some(manifest) => drill(&backup.artifact, manifest, level, scratch_dir),
        None => drill_bare(&backup.artifact, level, scratch_dir),
    }
}

/// Checks an artifact against its manifest: size, SHA-256, the database inside (decompressed into
/// `scratch_dir` when compressed; for a plain artifact its size and hash are the database's), its header, and
/// `level`'s integrity check. Stops at the first failure.
pub fn drill(artifact: &Path, manifest: &Manifest, level: Verify, scratch_dir: &Path) -> Result<Drill> {
    let mut drill = Drill { steps: Vec::new(), database: None, scratch: None, page_count: None };
    let started = Instant::now();
    let size = regular_metadata(artifact).map(|m| m.len()).map_err(|e| format!("{}: {e}", artifact.display()));
    let sized = size.and_then(|s| compare("bytes", &manifest.bytes.to_string(), &s.to_string()));
    if !drill.step("artifact", started, sized) {
        return Ok(drill);
    }
    let compression = manifest.compression()?;
    let started = Instant::now();
    let hashed = sha256_file(artifact).map_err(|e| e.to_string());
    let matched = hashed.and_then(|(h, n)| {
        let artifact = compare("sha256", &manifest.sha256, &h)?;
        if compression != Compression::None {
            return Ok(artifact);
        }
        compare("database bytes", &manifest.database_bytes.to_string(), &n.to_string())?;
        compare("database sha256", &manifest.database_sha256, &h).map(|_| format!("{artifact} (the database's)"))
    });
    if !drill.step("sha256", started, matched) {
        return Ok(drill);
    }
    let database = if compression == Compression::None {
        artifact.to_path_buf()
    } else {
        let started = Instant::now();
        let limit = Limit { bytes: manifest.database_bytes, why: "the manifest promises (database_bytes)".into() };
        let (temp, outcome) = decompress(artifact, compression, |_| Ok(limit), scratch_dir)?;
        let outcome = outcome.and_then(|(sha256, bytes)| {
            compare("database bytes", &manifest.database_bytes.to_string(), &bytes.to_string())?;
            compare("database sha256", &manifest.database_sha256, &sha256)
        });
        match drill.decompressed(temp, started, outcome) {
            Some(path) => path,
            None => return Ok(drill),
        }
    };
    let started = Instant::now();
    let expected = (manifest.source.page_size, manifest.source.page_count);
    let shape = header(&database).and_then(|got| {
        compare("page size × count", &format!("{} × {}", expected.0, expected.1), &format!("{} × {}", got.0, got.1))
    });
    if !drill.step("header", started, shape) {
        return Ok(drill);
    }
    drill.page_count = Some(expected.1);
    let mut drill = finish(drill, database, level)?;
    if let (Some(expected), Some(database)) = (&manifest.pit, drill.database.clone()) {
        let started = Instant::now();
        if !drill.step("pit", started, check_position(&database, expected)) {
            drill.database = None;
        }
    }
    Ok(drill)
}

/// Runs `level`'s integrity check; the drill's database is set when every step passed.
fn finish(mut drill: Drill, database: PathBuf, level: Verify) -> Result<Drill> {
    if level != Verify::None {
        let started = Instant::now();
        let name = if level == Verify::Full { "integrity_check" } else { "quick_check" };
        if !drill.step(name, started, check_database(&database, level)) {
            return Ok(drill);
        }
    }
    drill.database = Some(database);
    Ok(drill)
}

/// Checks an artifact that has no manifest: its format from its first bytes, the database inside
/// (decompressed, bounded by the scratch volume's free space and the size its header declares), the header
/// against the file's size, and `level`'s integrity check. No hash can be compared: the result says so.
pub fn drill_bare(artifact: &Path, level: Verify, scratch_dir: &Path) -> Result<Drill> {
    let mut drill = Drill { steps: Vec::new(), database: None, scratch: None, page_count: None };
    let started = Instant::now();
    let sniffed = sniff(artifact);
    let compression = sniffed.as_ref().ok().copied();
    let described = sniffed.and_then(|c| {
        let (sha256, bytes) = sha256_file(artifact).map_err(|e| e.to_string())?;
        let format = if c == Compression::None { "SQLite database" } else { c.as_str() };
        Ok(format!("bare {format}, {bytes} bytes, sha256 {sha256}: no manifest, so no hash to verify it against"))
    });
    if !drill.step("artifact", started, described) {
        return Ok(drill);
    }
    let database = match compression {
        Some(Compression::None) | None => artifact.to_path_buf(),
        Some(compression) => {
            let started = Instant::now();
            let (temp, outcome) = decompress(artifact, compression, |head| bare_limit(scratch_dir, head), scratch_dir)?;
            let outcome =
                outcome.map(|(sha256, bytes)| format!("database bytes {bytes}, sha256 {sha256} (unverified)"));
            match drill.decompressed(temp, started, outcome) {
                Some(path) => path,
                None => return Ok(drill),
            }
        }
    };
    let started = Instant::now();
    let length = std::fs::metadata(&database).map(|m| m.len()).unwrap_or(0);
    let shape = header(&database).and_then(|(size, count)| {
        let declared = u64::from(size) * u64::from(count);
        compare("file bytes (page size × count)", &declared.to_string(), &length.to_string())
            .map(|_| format!("{size} × {count} pages"))
            .map(|detail| (detail, count))
    });
    let page_count = shape.as_ref().ok().map(|(_, count)| *count);
    if !drill.step("header", started, shape.map(|(detail, _)| detail)) {
        return Ok(drill);
    }
    drill.page_count = page_count;
    finish(drill, database, level)
}

/// The format of a bare artifact, from its first bytes.
fn sniff(artifact: &Path) -> std::result::Result<Compression, String> {
    let mut magic = [0u8; 16];
    let mut file = open_regular(artifact).map_err(|e| format!("cannot read {}: {e}", artifact.display()))?;
    let n = file.read(&mut magic).map_err(|e| format!("cannot read {}: {e}", artifact.display()))?;
    match &magic[..n] {
        [0x1f, 0x8b, ..] => Ok(Compression::Gzip),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Ok(Compression::Zstd),
        m if m == b"SQLite format 3\0" => Ok(Compression::None),
        _ => Err(format!("{} is not an SQLite database, nor gzip or zstd", artifact.display())),
    }
}

/// At most how many bytes a decompression may write, and why.
struct Limit {
    bytes: u64,
    why: String,
}

/// Space kept free on a volume when a bare artifact's size is unknown.
const RESERVE: u64 = 64 << 20;

/// The bound of a bare artifact's database: the size its header declares when SQLite keeps it valid, and
/// never more than fits in `dir` (its free space less `RESERVE`). Data that does not start with an SQLite
/// header is refused at once.
fn bare_limit(dir: &Path, head: &[u8]) -> std::result::Result<Limit, String> {
    let not_a_database = || "the decompressed data does not start with an SQLite header: not a database".to_string();
    let bytes: &[u8; HEADER_BYTES] = head.try_into().map_err(|_| not_a_database())?;
    let header = DatabaseHeader::parse(bytes).map_err(|_| not_a_database())?;
    let free = crate::volume::volume_of(dir).map_or(u64::MAX, |disk| disk.free).saturating_sub(RESERVE);
    // SQLite trusts the in-header size only when the "version valid for" number matches the change counter.
    let trusted = header.page_count_is_current();
    match u64::from(header.page_size) * u64::from(header.page_count) {
        declared if trusted && declared <= free => {
            Ok(Limit { bytes: declared, why: "its SQLite header declares (page size × page count)".into() })
        }
        _ => Ok(Limit { bytes: free, why: format!("fit in {} (its free space less 64 MiB)", dir.display()) }),
    }
}

/// What a decompression yielded: the database's SHA-256 and size, or what is wrong with the stream.
type Inflated = std::result::Result<(String, u64), String>;

/// Decompresses an artifact into a temporary file in `scratch_dir`, writing at most the bytes `limit_for`
/// allows once it has seen the first 100 (the SQLite header): a stream that inflates further is refused when it
/// crosses the limit, not after it has filled the volume. The outcome: the database's SHA-256 and size, or what
/// is wrong with the stream.
fn decompress(
    artifact: &Path,
    compression: Compression,
    limit_for: impl FnOnce(&[u8]) -> std::result::Result<Limit, String>,
    scratch_dir: &Path,
) -> Result<(TempFile, Inflated)> {
    let (temp, file) = TempFile::create(scratch_dir, "restore-drill.db", Perms::of(artifact))?;
    let input = open_regular(artifact).map_err(|e| io_error("cannot read", artifact, e))?;
    let mut writer = HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, file));
    let damaged = |e: std::io::Error| format!("the {} stream is damaged: {e}", compression.as_str());
    let mut head = [0u8; HEADER_BYTES];
    let started = decompressing(input, compression).and_then(|mut r| Ok((read_up_to(&mut r, &mut head)?, r)));
    let (n, rest) = match started {
        Ok(started) => started,
        Err(e) => return Ok((temp, Err(damaged(e)))),
    };
    let limit = match limit_for(&head[..n]) {
        Ok(limit) => limit,
        Err(problem) => return Ok((temp, Err(problem))),
    };
    let mut stream = (&head[..n]).chain(rest).take(limit.bytes.saturating_add(1));
    if let Err(e) = std::io::copy(&mut stream, &mut writer) {
        if e.raw_os_error() == Some(28) {
            return Err(io_error("cannot decompress into", scratch_dir, e));
        }
        return Ok((temp, Err(damaged(e))));
    }
    let (buffered, sha256, bytes) = writer.finish();
    if bytes > limit.bytes {
        let refused = format!(
            "the {} stream inflates beyond the {} bytes {}: stopped there (the artifact is damaged or not what \
             it claims)",
            compression.as_str(),
            limit.bytes,
            limit.why
        );
        return Ok((temp, Err(refused)));
    }
    let file = buffered.into_inner().map_err(|e| io_error("cannot write", &temp.path, e.into_error()))?;
    sync_file(&file, &temp.path)?;
    Ok((temp, Ok((sha256, bytes))))
}

/// Reads up to `buffer.len()` bytes, fewer only at the end of the stream.
fn read_up_to(reader: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
