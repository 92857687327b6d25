//! The manifest: a JSON file beside every artifact (`<artifact>.vigil.json`) that says what the backup
//! holds and how to check it. Only files with a manifest are vigil's; retention touches nothing else.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::artifact::{io_error, parent_of, sync_file, TempFile};
use super::options::Compression;
use crate::error::{Error, Result};

pub const FORMAT: &str = "vigil-backup/1";
pub const SUFFIX: &str = ".vigil.json";

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
/// directory).
pub fn write(manifest: &Manifest, artifact: &Path, overwrite: bool) -> Result<PathBuf> {
    let path = path_for(artifact);
    let dir = parent_of(&path);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (temp, mut file) = TempFile::create(&dir, &name)?;
    let text = serde_json::to_string_pretty(manifest).map_err(|e| Error::new(e.to_string()))?;
    file.write_all(text.as_bytes()).map_err(|e| io_error("cannot write", &temp.path, e))?;
    sync_file(&file, &temp.path)?;
    temp.publish(&path, overwrite)?;
    Ok(path)
}

/// Reads the manifest of a backup, given the artifact's path or the manifest's own.
pub fn read(path: &Path) -> Result<(Manifest, PathBuf)> {
    let manifest_path = if path.to_string_lossy().ends_with(SUFFIX) { path.to_path_buf() } else { path_for(path) };
    let text = fs::read_to_string(&manifest_path).map_err(|e| {
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
            "{} has format {:?}; this vigil reads {FORMAT}",
            manifest_path.display(),
            manifest.format
        )));
    }
    let artifact = parent_of(&manifest_path).join(&manifest.file);
    Ok((manifest, artifact))
}

/// Every readable manifest in `dir` with its artifact path, oldest first.
pub fn list(dir: &Path) -> Result<Vec<(Manifest, PathBuf)>> {
    let entries = fs::read_dir(dir).map_err(|e| io_error("cannot list", dir, e))?;
    let mut found: Vec<(Manifest, PathBuf)> = entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.ends_with(SUFFIX) && !name.starts_with('.')
        })
        .filter_map(|entry| read(&entry.path()).ok())
        .collect();
    found.sort_by(|a, b| a.0.created_at.cmp(&b.0.created_at).then_with(|| a.1.cmp(&b.1)));
    Ok(found)
}
