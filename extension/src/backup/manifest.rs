//! The manifest: a JSON file beside every artifact (`<artifact>.vigil.json`) that says what the backup
//! holds and how to check it. Only files with a manifest are vigil's; retention touches nothing else. A
//! manifest names a plain file in its own directory and is named after it (dir.rs); others are ignored.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::dir::{self, io_error, parent_of, sync_file, Perms, TempFile};
use super::options::Compression;
use crate::error::{Error, Result};
pub use crate::store::pit::Position;

pub const FORMAT: &str = "vigil-backup/1";
pub const SUFFIX: &str = ".vigil.json";

/// vigil's manifests are a few kilobytes; anything far larger is not one.
const MAX_BYTES: u64 = 1 << 20;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Source {
    /// The database file, or `null` for in-memory and temporary databases.
    pub path: Option<String>,
    pub schema: String,
    pub page_size: u32,
    pub page_count: u32,
    pub journal_mode: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Verification {
    /// quick, full or none.
    pub method: String,
    /// "ok", "skipped", or the first problem found.
    pub result: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub id: String,
    /// The artifact's file name, in the manifest's directory.
    pub file: String,
    pub created_at: String,
    pub source: Source,
    pub method: String,
    pub compression: String,
    pub incremental: bool,
    /// Size and SHA-256 of the artifact as stored.
    pub bytes: u64,
    pub sha256: String,
    /// Size and SHA-256 of the database inside it (equal to the artifact's when not compressed).
    pub database_bytes: u64,
    pub database_sha256: String,
    pub verification: Verification,
    pub sqlite_version: String,
    pub vigil_version: String,
    pub duration_ms: f64,
    /// The journal position the copy holds, when the database has a point-in-time journal: the backup is then
    /// a checkpoint (pit_prune may drop journal rows it holds). Absent from older manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pit: Option<Position>,
}

impl Manifest {
    pub fn compression(&self) -> Result<Compression> {
        Compression::parse(&self.compression)
    }

    pub fn is_verified(&self) -> bool {
        self.verification.result == "ok"
    }
}

/// The manifest path of an artifact.
pub fn path_for(artifact: &Path) -> PathBuf {
    let mut name = artifact.as_os_str().to_owned();
    name.push(SUFFIX);
    PathBuf::from(name)
}

/// Writes a manifest durably beside its artifact (temporary file, fsync, rename; the caller fsyncs the
/// directory), with the backup's permission bits.
pub fn write(manifest: &Manifest, artifact: &Path, overwrite: bool, perms: Option<Perms>) -> Result<PathBuf> {
    let path = path_for(artifact);
    let dir = parent_of(&path);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (temp, mut file) = TempFile::create(&dir, &name, perms)?;
    let text = serde_json::to_string_pretty(manifest).map_err(|e| Error::new(e.to_string()))?;
    file.write_all(text.as_bytes()).map_err(|e| io_error("cannot write", &temp.path, e))?;
    sync_file(&file, &temp.path)?;
    temp.publish(&path, overwrite)?;
    Ok(path)
}

/// Reads the manifest of a backup, given the artifact's path or the manifest's own.
pub fn read(path: &Path) -> Result<(Manifest, PathBuf)> {
    let manifest_path = if path.to_string_lossy().ends_with(SUFFIX) { path.to_path_buf() } else { path_for(path) };
    let text = dir::read_small(&manifest_path, MAX_BYTES).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::new(format!(
                "{} has no vigil manifest ({} is missing): only backups made by backup_to can be verified or \
                 restored",
                path.display(),
                manifest_path.display()
            ))
        } else {
            io_error("cannot read", &manifest_path, e)
        }
    })?;
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| Error::new(format!("{} is not a valid vigil manifest: {e}", manifest_path.display())))?;
    if manifest.format != FORMAT {
        return Err(Error::new(format!(
            "{} has format {}; this vigil reads {FORMAT}",
            manifest_path.display(),
            serde_json::Value::String(manifest.format.chars().take(40).collect())
        )));
    }
    let artifact = dir::artifact_name(&manifest_path, &manifest.file)
        .map_err(|why| Error::new(format!("{} is not used: {why}", manifest_path.display())))?;
    Ok((manifest, artifact))
}

/// A directory's manifests: the usable ones with their artifacts, oldest first, and those ignored, with why.
#[derive(Default)]
pub struct Listing {
    pub backups: Vec<(Manifest, PathBuf)>,
    pub ignored: Vec<Ignored>,
}

/// A `*.vigil.json` that vigil did not use, and why (planted, damaged, not a regular file…).
pub struct Ignored {
    pub path: PathBuf,
    pub reason: String,
}

impl Ignored {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"path": self.path.to_string_lossy(), "reason": self.reason})
    }
}

/// Every manifest in `dir`: usable ones with their artifact path (oldest first), and the ignored ones.
pub fn list(dir: &Path) -> Result<Listing> {
    let entries = fs::read_dir(dir).map_err(|e| io_error("cannot list", dir, e))?;
    let mut listing = Listing::default();
    for entry in entries.filter_map(|entry| entry.ok()) {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.ends_with(SUFFIX) || name.starts_with('.') {
            continue;
        }
        match read(&entry.path()) {
            Ok(found) => listing.backups.push(found),
            Err(e) => listing.ignored.push(Ignored { path: entry.path(), reason: e.to_string() }),
        }
    }
    listing.backups.sort_by(|a, b| a.0.created_at.cmp(&b.0.created_at).then_with(|| a.1.cmp(&b.1)));
    listing.ignored.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(listing)
}
