//! Backups: backup_to, backup_list, backup_verify, backup_restore and export_to.
//!
//! A backup is a consistent copy (snapshot.rs) written under a temporary name, fsynced, checked with
//! quick_check or integrity_check, optionally compressed (and the compressed stream read back), hashed,
//! renamed into place with a manifest beside it (manifest.rs), and recorded in the source database
//! (log.rs). Functions return JSON; all are SQLITE_DIRECTONLY but backup_list.

pub mod artifact;
mod buffer;
mod compress;
pub mod digest;
pub mod dir;
pub mod export;
mod feed;
mod ignored;
pub mod manifest;
pub mod options;
pub mod restore;
pub mod retention;
pub(crate) mod scratch;
pub mod snapshot;
pub mod verify;

use crate::args::path_arg;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};

use self::artifact::Output;
use self::digest::{hex, sha256_of, sha256_of_buffered, HashingReader, HashingWriter};
use self::dir::{exists, io_error, parent_of, sync_dir, TempFile};
use self::dir::{Destination, Perms};
use self::feed::{Sink, Stream};
use self::manifest::{Manifest, Position, Source, Verification};
use self::options::{BackupOptions, Compression, Verify};
use crate::error::{Error, Result};
use crate::info::{format_utc, hours_between, parse_utc, VERSION};
use crate::maintenance::elapsed_ms;
use crate::progress::Tracker;
use crate::sqlite::{self, Db, Value};
use crate::store::backup_log;
use crate::vtab::TableFunction;

const BACKUP_KEYS: &[&str] = &[
    "schema",
    "verify",
    "compress",
    "level",
    "overwrite",
    "keep",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "log",
    "busy_timeout_ms",
];

/// `backup_to(dest [, options])`.
pub fn backup_to(db: Db, args: &[Value]) -> Result<Value> {
    let dest =
        path_arg(args, 0, "the destination (a file or directory path)").map_err(|e| e.context("bad arguments"))?;
    let options = BackupOptions::parse(args.get(1), BACKUP_KEYS).map_err(|e| e.context("bad options"))?;
    let made = make(db, dest, &options)?;
    Ok(Value::Text(made.to_string()))
}

/// Where a backup goes: its directory, its planned file name, and for a generated name where the time stamp
/// ends (a collision adds `-2`, `-3`… there).
struct Planned {
    dir: PathBuf,
    name: String,
    generated: Option<usize>,
    /// A file destination as the user wrote it (results show it so).
    given: Option<PathBuf>,
    /// The source database's permission bits and owner, which every file of the backup gets.
    perms: Option<Perms>,
}

impl Planned {
    fn path(&self) -> PathBuf {
        self.given.clone().unwrap_or_else(|| self.dir.join(&self.name))
    }
}

/// Plans a backup of `source` at `dest` (dir.rs's rule: a directory, or a file named for what it holds).
fn destination(dest: &str, source: Option<&str>, options: &BackupOptions, now: DateTime<Utc>) -> Result<Planned> {
    let perms = source.and_then(|s| Perms::of(Path::new(s)));
    let planned = match dir::destination(dest, options.compression, perms)? {
        Destination::Directory(dir) => {
            let stem = match source.and_then(|s| Path::new(s).file_stem()) {
                Some(stem) => {
                    dir::utf8_path(&stem.to_string_lossy(), "the database's file name")?.display().to_string()
                }
                None => options.schema.clone(),
            };
            let stamped = format!("{stem}-{}", now.format("%Y%m%dT%H%M%S%.3fZ"));
            let name = format!("{stamped}.db{}", options.compression.suffix());
            Planned { dir, name, generated: Some(stamped.len()), given: None, perms }
        }
        Destination::File(path) => {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            Planned { dir: parent_of(&path), name, generated: None, given: Some(path), perms }
        }
    };
    let path = planned.path();
    if let Some(source) = source {
        if dir::same_file(Path::new(source), &path) {
            return Err(Error::new(format!(
                "the destination {} is the database itself; back up to another file or a directory",
                path.display()
            )));
        }
    }
    if planned.generated.is_none() && !options.overwrite && path.symlink_metadata().is_ok() {
        return Err(exists(&path));
    }
    Ok(planned)
}

/// Makes a backup of `options.schema` of `db` at `dest`; returns the function's JSON result.
pub fn make(db: Db, dest: &str, options: &BackupOptions) -> Result<Json> {
    let origin = open_origin(db, &options.schema, options.busy_timeout_ms)?;
    make_from(db, origin, options, |source, now| destination(dest, source, options, now))
}

fn open_origin(db: Db, schema: &str, busy_timeout_ms: i32) -> Result<snapshot::Origin> {
    if db.is_readonly(schema)?.is_none() {
        return Err(Error::new(format!("no database named {} is attached", crate::store::quote(schema))));
    }
    snapshot::Origin::open(db, schema, busy_timeout_ms).map_err(|e| e.context("cannot open the database to copy it"))
}

/// Makes the backup from `origin`, where `plan` says (given the source database's file and the time). `db` is
/// used only where the origin is not a file vigil copies itself (SQLite's backup API then copies from it) and
/// to record the backup in the log.
fn make_from(
    db: Db,
    origin: snapshot::Origin,
    options: &BackupOptions,
    plan: impl FnOnce(Option<&str>, DateTime<Utc>) -> Result<Planned>,
) -> Result<Json> {
    let started = Instant::now();
    let now = Utc::now();
    let schema = options.schema.as_str();
    let source = origin.path().map(str::to_string);
    let planned = plan(source.as_deref(), now)?;
    let removed_temporaries = dir::sweep(&planned.dir);
    let perms = planned.perms;
    let (dir, name) = (planned.dir.clone(), planned.name.clone());
    let final_path = planned.path();

    // Every progress report also checks for an interrupt of the caller: the loops stop, temporaries go.
    let progress = Tracker::start(format!("backup {}: copy", final_path.display()), 0).for_caller(db);
    let streamed = streams(&origin, options);
    // Declared before the sink, so it is dropped (a private directory removed) after the sink's files.
    let scratch = match options.compression {
        Compression::None => None,
        _ if streamed => None,
        _ => {
            let need = source.as_deref().map_or(0, |s| crate::maintenance::file_bytes(s).max(0) as u64);
            Some(scratch::Scratch::for_intermediate(&dir, source.as_deref().map(Path::new), need)?)
        }
    };
    let raw_dir = scratch.as_ref().map_or(dir.as_path(), |s| s.dir.as_path());
    let mut sink = sink_for(&origin, &dir, raw_dir, &name, options, perms)?;
    let copy = snapshot::copy(db, schema, &origin, &mut sink, &|done, total| progress.advance(done, total))
        .map_err(|e| e.context("cannot copy the database"));
    drop(origin);
    // The copy was corrected after the hash (and compressor) had read it: they start over on the final copy.
    let copy = copy.and_then(|copied| {
        if sink.is_stale() {
            sink.restart(consumer(&dir, &name, options, perms)?)?;
        }
        Ok(copied)
    });
    // The fsync and the check run while the consumer hashes (and compresses) behind: they overlap.
    let checked = copy.and_then(|copied| {
        sink.close_raw()?;
        progress.check()?;
        progress.phase(format!("backup {}: {} check", final_path.display(), options.verify.as_str()), 0);
        let verification = match sink.raw_path() {
            Some(raw) => check_copy(raw, options.verify, &progress)?.map_err(|problem| {
                Error::new(format!(
                    "the copy failed its {} check, so no backup was written: {problem}. The source database is \
                     damaged: run SELECT * FROM health_report('full'); to keep a copy anyway, pass \
                     '{{\"verify\":\"none\"}}'",
                    options.verify.as_str()
                ))
            })?,
            None => "skipped".to_string(), // streamed: only when not checked
        };
        // The copy is one committed state: its own journal says which (a streamed copy has no file to ask).
        let pit = match sink.raw_path() {
            Some(raw) => verify::journal_position(raw)?,
            None => None,
        };
        progress.check()?;
        Ok((copied, verification, pit))
    });
    let (copied, verification, pit) = match checked {
        Ok(checked) => checked,
        Err(error) => {
            sink.abandon();
            return Err(error);
        }
    };
    let phase = if options.compression == Compression::None { "sha256" } else { options.compression.as_str() };
    progress.phase(format!("backup {}: {phase}", final_path.display()), copied.bytes);
    let raw = sink.take_raw_file();
    let followed = sink.finish(|done| progress.advance(done, copied.bytes))?;
    if followed.database_bytes != copied.bytes {
        return Err(Error::new(format!("read back {} bytes of a {}-byte copy", followed.database_bytes, copied.bytes)));
    }
    let database_sha256 = followed.database_sha256;
    let (artifact, sha256, bytes) = match (followed.compressed, raw) {
        (None, Some(raw)) => (raw, database_sha256.clone(), copied.bytes),
        (None, None) => return Err(Error::new("the copy left no file")),
        (Some(compressed), raw) => {
            drop(raw);
            progress.check()?;
            if options.verify != Verify::None {
                check_decompresses(&compressed.temp.path, options.compression, &database_sha256)?;
                progress.check()?; // the last moment before publication: an interrupt until then stops it
            }
            (compressed.temp, compressed.sha256, compressed.bytes)
        }
    };
    let manifest = Manifest {
        format: manifest::FORMAT.into(),
        id: String::new(),
        file: name,
        created_at: format_utc(now),
        source: Source {
            path: source.clone(),
            schema: schema.into(),
            page_size: copied.page_size,
            page_count: copied.page_count,
            journal_mode: copied.journal_mode.clone(),
        },
        method: copied.method.as_str().into(),
        compression: options.compression.as_str().into(),
        incremental: false,
        bytes,
        sha256,
        database_bytes: copied.bytes,
        database_sha256,
        verification: Verification { method: options.verify.as_str().into(), result: verification },
        sqlite_version: sqlite::host_version(),
        vigil_version: VERSION.into(),
        duration_ms: 0.0,
        pit,
    };
    let (manifest, final_path) = publish(artifact, manifest, &planned, options.overwrite, started)?;
    let mut result = json!({
        "path": final_path.to_string_lossy(),
        "removed_temporaries": removed_temporaries,
        "manifest": manifest::path_for(&final_path).to_string_lossy(),
        "id": manifest.id,
        "bytes": manifest.bytes,
        "database_bytes": manifest.database_bytes,
        "pages": manifest.source.page_count,
        "page_size": manifest.source.page_size,
        "sha256": manifest.sha256,
        "database_sha256": manifest.database_sha256,
        "compression": manifest.compression,
        "verify": manifest.verification.method,
        "verified": manifest.is_verified(),
        "method": manifest.method,
        "intermediate": intermediate(options, streamed, scratch.as_ref()),
        "journal_mode": manifest.source.journal_mode,
        "writers_blocked_ms": copied.writers_blocked_ms,
        "rechecked": copied.correction.map(|c| c.compared),
        "rewritten_bytes": copied.correction.map(|c| c.rewritten_bytes),
        "duration_ms": manifest.duration_ms,
    });
    if !options.retention.is_off() {
        // The live journal's position, read again before each deletion (a pit_prune may move its horizon).
        let live = || live_position(source.as_deref(), options.busy_timeout_ms);
        result["retention"] = retention::apply(&dir, &manifest, &options.retention, &live)?;
    }
    if options.log {
        result["logged"] = match record(db, schema, &manifest, &final_path, options.busy_timeout_ms) {
            Ok(()) => json!(true),
            Err(e) => json!(format!("not recorded: {e}")),
        };
    }
    Ok(result)
}

/// The check of the copy, on a thread of its own so that an interrupt of the caller is answered at once
/// (integrity_check runs on a connection of its own, which the interrupt does not reach). An abandoned check
/// finishes reading the temporary file, already unlinked, in the background.
fn check_copy(raw: &Path, level: Verify, progress: &Tracker) -> Result<std::result::Result<String, String>> {
    use std::sync::mpsc::{channel, RecvTimeoutError};
    let (sender, receiver) = channel();
    let raw = raw.to_path_buf();
    std::thread::Builder::new()
        .name("vigil-check".into())
        .spawn(move || sender.send(verify::check_database(&raw, level)))
        .map_err(|e| Error::new(format!("cannot start the check of the copy: {e}")))?;
    loop {
        match receiver.recv_timeout(std::time::Duration::from_millis(50)) {
            Ok(checked) => return Ok(checked),
            Err(RecvTimeoutError::Timeout) => progress.check()?,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error::new("the check of the copy stopped unexpectedly"))
            }
        }
    }
}

/// The source database's journal position as committed now, read on a connection of its own (the caller's
/// may be inside a transaction that still sees an older one): `None` without a journal.
fn live_position(source: Option<&str>, busy_timeout_ms: i32) -> std::result::Result<Option<Position>, String> {
    let Some(path) = source else { return Ok(None) };
    let read = || {
        let connection = sqlite::OwnedDb::open(path, sqlite::open_flags::READ_ONLY, None)?;
        connection.db().set_busy_timeout(busy_timeout_ms)?;
        crate::store::pit::position(connection.db(), "main")
    };
    read().map_err(|e| e.to_string())
}

/// Writes the backup into the source database's backup log, which health_report's `last_backup` reads.
fn record(db: Db, schema: &str, manifest: &Manifest, artifact: &Path, busy_timeout_ms: i32) -> Result<()> {
    let path = absolute(artifact);
    let path = path.to_string_lossy();
    let entry = backup_log::Entry {
        backup_id: &manifest.id,
        created_at: &manifest.created_at,
        path: &path,
        bytes: manifest.bytes,
        sha256: &manifest.sha256,
        compression: &manifest.compression,
        verify: &manifest.verification.method,
        verification: &manifest.verification.result,
        duration_ms: manifest.duration_ms,
    };
    backup_log::record(db, schema, &entry, busy_timeout_ms)
}

/// `path` made absolute through its (existing) directory, so that it means the same file from any working
/// directory; as given when that directory cannot be resolved.
fn absolute(path: &Path) -> PathBuf {
    let dir = std::fs::canonicalize(parent_of(path));
    match (dir, path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
    }
}

/// A backup of `schema` (whose file is `database`) taken before an operation that changes it, beside it and
/// named after the operation: `<name>-before-<operation>-<UTC>.db` (`-2`… after the time when taken). Returns
/// {path, sha256}.
pub fn safety_backup(
    db: Db,
    schema: &str,
    database: &Path,
    operation: &str,
    verify: Verify,
    busy_timeout_ms: i32,
) -> Result<Json> {
    let origin = open_origin(db, schema, busy_timeout_ms)?;
    safety_backup_from(db, schema, origin, database, operation, verify, busy_timeout_ms)
}

/// `safety_backup` from an origin opened beforehand (one copied under a lock vigil holds: see
/// `snapshot::Origin::held`).
pub fn safety_backup_from(
    db: Db,
    schema: &str,
    origin: snapshot::Origin,
    database: &Path,
    operation: &str,
    verify: Verify,
    busy_timeout_ms: i32,
) -> Result<Json> {
    let stem = database.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "database".into());
    let options = BackupOptions {
        schema: schema.into(),
        busy_timeout_ms,
        verify,
        compression: Compression::None,
        log: false,
        ..BackupOptions::default()
    };
    let made = make_from(db, origin, &options, |source, now| {
        let stamped = format!("{stem}-before-{operation}-{}", now.format("%Y%m%dT%H%M%S%.3fZ"));
        let name = format!("{stamped}.db");
        let perms = source.and_then(|s| Perms::of(Path::new(s)));
        Ok(Planned { dir: parent_of(database), name, generated: Some(stamped.len()), given: None, perms })
    })?;
    Ok(json!({"path": made["path"], "sha256": made["sha256"]}))
}

/// Where a compressed backup's raw copy went: null for a plain backup (the copy is the backup).
fn intermediate(options: &BackupOptions, streamed: bool, scratch: Option<&scratch::Scratch>) -> Json {
    match scratch {
        _ if options.compression == Compression::None => Json::Null,
        Some(scratch) => scratch.to_json(),
        None if streamed => json!({"place": "streamed", "dir": null}),
        None => Json::Null,
    }
}

/// What the work behind a copy produced: the database's hash and, for a compressed backup, the artifact.
struct Followed {
    database_sha256: String,
    database_bytes: u64,
    compressed: Option<Compressed>,
}

struct Compressed {
    temp: TempFile,
    sha256: String,
    bytes: u64,
}

/// Where the copy goes: a raw file (the backup itself, or an intermediate when compressed), with the hash and
/// the compressor working behind the copy. They take the copy's own buffers (in WAL mode streamed without a
/// raw file when compressed and unchecked), or read the raw file back when it is checked while compression
/// goes on. A rollback-journal copy is corrected under the lock after it is made: when the file was written
/// lately, so that a correction is likely, they wait for it instead of working on bytes that will change.
/// The raw copy of a compressed backup is written in `raw_dir` (see scratch.rs).
fn sink_for(
    origin: &snapshot::Origin,
    dir: &Path,
    raw_dir: &Path,
    name: &str,
    options: &BackupOptions,
    perms: Option<Perms>,
) -> Result<Sink<Followed>> {
    let compressing = options.compression != Compression::None;
    let consume = consumer(dir, name, options, perms)?;
    if streams(origin, options) {
        return Sink::piped(None, consume);
    }
    let (raw, file) = TempFile::create(raw_dir, name, perms)?;
    // A compressed backup's raw copy is an intermediate: never written behind nor fsynced.
    let output = Output::new(file, &raw.path, !compressing);
    let awaits_correction = origin.corrects_copy() && !origin.is_quiet();
    let sink = if awaits_correction {
        Sink::following(output, consume)?.held()
    } else if origin.can_stream() || origin.corrects_copy() && !compressing {
        Sink::piped(Some(output), consume)?
    } else {
        Sink::following(output, consume)?
    };
    Ok(sink.owning(raw))
}

/// A compressed, unchecked WAL-mode copy goes straight to the compressor: no raw file.
fn streams(origin: &snapshot::Origin, options: &BackupOptions) -> bool {
    origin.can_stream() && options.compression != Compression::None && options.verify == Verify::None
}

/// The work behind the copy.
type Consume = Box<dyn FnOnce(Stream) -> Result<Followed> + Send>;

/// The work behind the copy: the database's SHA-256, and the compressed artifact when asked.
fn consumer(dir: &Path, name: &str, options: &BackupOptions, perms: Option<Perms>) -> Result<Consume> {
    if options.compression == Compression::None {
        return Ok(Box::new(|stream: Stream| {
            let (database_sha256, database_bytes) =
                sha256_of_buffered(stream).map_err(|e| Error::new(format!("cannot read back the copy: {e}")))?;
            Ok(Followed { database_sha256, database_bytes, compressed: None })
        }));
    }
    let (temp, file) = TempFile::create(dir, name, perms)?;
    let (compression, level) = (options.compression, options.level);
    Ok(Box::new(move |stream: Stream| {
        let mut input = HashingReader::new(stream);
        let mut output = HashingWriter::new(Output::new(file, &temp.path, true));
        compress::compress(&mut input, &mut output, compression, level)
            .map_err(|e| io_error("cannot compress into", &temp.path, e))?;
        let (database_sha256, database_bytes) = input.finish();
        let (written, sha256, bytes) = output.finish();
        written.finish()?;
        Ok(Followed { database_sha256, database_bytes, compressed: Some(Compressed { temp, sha256, bytes }) })
    }))
}

/// Reads a compressed artifact back and checks that it yields the copied database.
fn check_decompresses(path: &Path, compression: Compression, database_sha256: &str) -> Result<()> {
    let stream = dir::open_regular(path).map_err(|e| io_error("cannot read", path, e))?;
    let (unpacked, _) = compress::decompressing(stream, compression)
        .and_then(sha256_of)
        .map_err(|e| io_error("cannot read back", path, e))?;
    if unpacked != database_sha256 {
        return Err(Error::new("the compressed stream does not decompress to the copied database"));
    }
    Ok(())
}

/// Renames the artifact into place (a generated name takes the next free number when another backup took
/// it in the same millisecond), writes its manifest, and makes both durable. Returns the final path.
fn publish(
    artifact: TempFile,
    mut manifest: Manifest,
    planned: &Planned,
    overwrite: bool,
    started: Instant,
) -> Result<(Manifest, PathBuf)> {
    manifest.duration_ms = elapsed_ms(started);
    let path = match planned.generated {
        Some(stamp_end) => artifact.publish_unique(&planned.dir, |n| dir::numbered(&planned.name, stamp_end, n))?,
        None => {
            artifact.publish(&planned.path(), overwrite)?;
            planned.path()
        }
    };
    manifest.file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    manifest.id = backup_id(&manifest.database_sha256, &manifest.created_at, &path);
    if let Err(e) = manifest::write(&manifest, &path, overwrite, planned.perms) {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    sync_dir(&planned.dir)?;
    Ok((manifest, path))
}

fn backup_id(database_sha256: &str, created_at: &str, path: &Path) -> String {
    let mut hasher = Sha256::new();
    hasher.update(database_sha256.as_bytes());
    hasher.update(created_at.as_bytes());
    hasher.update(path.to_string_lossy().as_bytes());
    hasher.update(std::process::id().to_le_bytes());
    hex(&hasher.finalize())[..16].to_string()
}

/// Restore drills run the full integrity_check unless told otherwise.
fn drill_defaults() -> BackupOptions {
    BackupOptions { verify: Verify::Full, ..BackupOptions::default() }
}

/// `backup_verify(path [, options])`: a restore drill of one backup (with `bare`, of an artifact alone).
pub fn backup_verify(_db: Db, args: &[Value]) -> Result<Value> {
    let path = Path::new(path_arg(args, 0, "the backup path").map_err(|e| e.context("bad arguments"))?);
    let options = BackupOptions::parse_over(drill_defaults(), args.get(1), &["verify", "bare"])
        .map_err(|e| e.context("bad options"))?;
    let backup = verify::Backup::open(path, options.bare)?;
    let _reading = retention::hold(&backup.artifact);
    let scratch = scratch::Scratch::private_in(&std::env::temp_dir())?;
    let drill = verify::drill_backup(&backup, options.verify, &scratch.dir)?;
    let bare = backup.manifest.is_none();
    let result = json!({
        "path": backup.artifact.to_string_lossy(),
        "id": backup.id(),
        "ok": drill.ok(),
        "bare": bare,
        "hash_verified": !bare && drill.ok(),
        "problem": drill.problem(),
        "steps": drill.steps.iter().map(verify::Step::to_json).collect::<Vec<_>>(),
    });
    Ok(Value::Text(result.to_string()))
}

/// `SELECT * FROM backup_list(dir [, options])`: one row per manifest in a directory, oldest first.
pub struct BackupList;

impl TableFunction for BackupList {
    const NAME: &'static str = "backup_list";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "path",
        "created_at",
        "age_hours",
        "bytes",
        "compression",
        "verify",
        "verified",
        "sha256",
        "sha256_status",
        "source",
        "pit",
    ];
    const ARGS: &'static [&'static str] = &["dir", "options"];

    fn rows(_db: Db, args: &[Value]) -> Result<Vec<Vec<Value>>> {
        let dir = Path::new(path_arg(args, 0, "the backup directory").map_err(|e| e.context("bad arguments"))?);
        if !dir.is_dir() {
            return Err(Error::new(format!("{} is not a directory", dir.display())));
        }
        let options = BackupOptions::parse(args.get(1), &["hash", "ignored"]).map_err(|e| e.context("bad options"))?;
        let now = Utc::now();
        let listing = manifest::list(dir)?;
        let skipped = if options.ignored { ignored::ignored(dir, &listing.backups)? } else { Vec::new() };
        let mut rows: Vec<Vec<Value>> =
            listing.backups.into_iter().map(|(m, artifact)| list_row(m, &artifact, options.hash, now)).collect();
        rows.extend(skipped.iter().map(ignored_row));
        Ok(rows)
    }
}

/// How an artifact compares with its manifest; only a regular file is read (a FIFO or device never hangs).
fn sha256_status(m: &Manifest, artifact: &Path, hash: bool) -> String {
    match dir::regular_metadata(artifact) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "missing".into(),
        Err(e) => format!("unreadable: {e}"),
        Ok(_) if !hash => "not checked".into(),
        Ok(_) => match digest::sha256_file(artifact) {
            Ok((h, _)) if h == m.sha256 => "ok".into(),
            Ok(_) => "mismatch".into(),
            Err(e) => format!("unreadable: {e}"),
        },
    }
}

/// A file the listing ignored: its path, size, and `sha256_status` 'ignored: <why>'; the rest NULL.
fn ignored_row(file: &ignored::Ignored) -> Vec<Value> {
    let mut row = vec![Value::Null; BackupList::COLUMNS.len()];
    row[1] = Value::from(file.path.to_string_lossy().as_ref());
    row[4] = file.bytes.map_or(Value::Null, |b| Value::Integer(b as i64));
    row[9] = Value::from(format!("ignored: {}", file.reason).as_str());
    row
}

fn list_row(m: Manifest, artifact: &Path, hash: bool, now: DateTime<Utc>) -> Vec<Value> {
    let age_hours = parse_utc(&m.created_at).map_or(Value::Null, |t| Value::Real(hours_between(t, now)));
    let status = sha256_status(&m, artifact, hash);
    vec![
        Value::from(m.id.as_str()),
        Value::from(artifact.to_string_lossy().as_ref()),
        Value::from(m.created_at.as_str()),
        age_hours,
        Value::Integer(m.bytes as i64),
        Value::from(m.compression.as_str()),
        Value::from(m.verification.method.as_str()),
        Value::Integer(m.is_verified() as i64),
        Value::from(m.sha256.as_str()),
        Value::from(status.as_str()),
        Value::from(m.source.path.as_deref()),
        m.pit.as_ref().map_or(Value::Null, |p| Value::from(serde_json::to_string(p).unwrap_or_default())),
    ]
}
