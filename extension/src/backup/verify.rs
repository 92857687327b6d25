//! Restore drills: everything a restore would rely on, checked step by step.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value as Json};

use super::artifact::{io_error, sync_file, TempFile};
use super::compress::decompressing;
use super::digest::{sha256_file, HashingWriter};
use super::manifest::Manifest;
use super::options::{Compression, Verify};
use crate::error::Result;
use crate::format::{DatabaseHeader, HEADER_BYTES};
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
}

/// A `file:` URI that opens `path` read-only and immutable: no locks, no journal, no -wal or -shm files, no
/// writes. Only for files nobody else changes (artifacts and vigil's own temporary copies).
pub fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' | '?' | '#' => uri.push_str(&format!("%{:02X}", c as u32)),
            c => uri.push(c),
        }
    }
    uri.push_str("?immutable=1");
    uri
}

pub fn open_immutable(path: &Path) -> Result<OwnedDb> {
    OwnedDb::open(&immutable_uri(path), open_flags::READ_ONLY | open_flags::URI, None)
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
    File::open(path).and_then(|mut f| f.read_exact(&mut bytes)).map_err(|e| format!("cannot read the header: {e}"))?;
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

/// Checks an artifact against its manifest: size, SHA-256, the database inside (decompressed into
/// `scratch_dir` when compressed), its header, and `level`'s integrity check. Stops at the first failure.
pub fn drill(artifact: &Path, manifest: &Manifest, level: Verify, scratch_dir: &Path) -> Result<Drill> {
    let mut drill = Drill { steps: Vec::new(), database: None, scratch: None };
    let started = Instant::now();
    let size = std::fs::metadata(artifact).map(|m| m.len()).map_err(|e| format!("{}: {e}", artifact.display()));
    let sized = size.and_then(|s| compare("bytes", &manifest.bytes.to_string(), &s.to_string()));
    if !drill.step("artifact", started, sized) {
        return Ok(drill);
    }
    let started = Instant::now();
    let hashed = sha256_file(artifact).map_err(|e| e.to_string());
    if !drill.step("sha256", started, hashed.and_then(|(h, _)| compare("sha256", &manifest.sha256, &h))) {
        return Ok(drill);
    }
    let compression = manifest.compression()?;
    let database = if compression == Compression::None {
        artifact.to_path_buf()
    } else {
        let started = Instant::now();
        let (temp, outcome) = decompress(artifact, compression, manifest, scratch_dir)?;
        let path = temp.path.clone();
        drill.scratch = Some(temp);
        if !drill.step("decompress", started, outcome) {
            return Ok(drill);
        }
        path
    };
    let started = Instant::now();
    let expected = (manifest.source.page_size, manifest.source.page_count);
    let shape = header(&database).and_then(|got| {
        compare("page size × count", &format!("{} × {}", expected.0, expected.1), &format!("{} × {}", got.0, got.1))
    });
    if !drill.step("header", started, shape) {
        return Ok(drill);
    }
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

/// Decompresses an artifact into a temporary file, checking the database's size and SHA-256.
fn decompress(
    artifact: &Path,
    compression: Compression,
    manifest: &Manifest,
    scratch_dir: &Path,
) -> Result<(TempFile, std::result::Result<String, String>)> {
    let (temp, file) = TempFile::create(scratch_dir, "restore-drill.db")?;
    let input = File::open(artifact).map_err(|e| io_error("cannot read", artifact, e))?;
    let mut writer = HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, file));
    let copied = decompressing(input, compression).and_then(|mut r| std::io::copy(&mut r, &mut writer));
    if let Err(e) = copied {
        let full = e.raw_os_error() == Some(28);
        if full {
            return Err(io_error("cannot decompress into", scratch_dir, e));
        }
        return Ok((temp, Err(format!("the {} stream is damaged: {e}", compression.as_str()))));
    }
    let (buffered, sha256, bytes) = writer.finish();
    let file = buffered.into_inner().map_err(|e| io_error("cannot write", &temp.path, e.into_error()))?;
    sync_file(&file, &temp.path)?;
    let outcome = compare("database bytes", &manifest.database_bytes.to_string(), &bytes.to_string())
        .and_then(|_| compare("database sha256", &manifest.database_sha256, &sha256));
    Ok((temp, outcome))
}
