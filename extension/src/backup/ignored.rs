//! What backup_list leaves out of a directory, and why: every file there that is not a backup with a
//! readable manifest, so that a backup copied without its manifest, or a broken manifest, is seen.

use std::fs;
use std::path::{Path, PathBuf};

use super::dir::io_error;
use super::dir::is_temp_name;
use super::manifest::{self, Manifest};
use crate::error::Result;

pub struct Ignored {
    pub path: PathBuf,
    pub bytes: Option<u64>,
    pub reason: String,
}

/// The files of `dir` (subdirectories aside) that are neither a listed backup nor its manifest, by name.
pub fn ignored(dir: &Path, listed: &[(Manifest, PathBuf)]) -> Result<Vec<Ignored>> {
    let entries = fs::read_dir(dir).map_err(|e| io_error("cannot list", dir, e))?;
    let mut found = Vec::new();
    for entry in entries.filter_map(|entry| entry.ok()) {
        let path = entry.path();
        let known = listed.iter().any(|(_, artifact)| *artifact == path || manifest::path_for(artifact) == path);
        let Ok(metadata) = fs::symlink_metadata(&path) else { continue };
        if known || metadata.is_dir() {
            continue;
        }
        let bytes = metadata.is_file().then_some(metadata.len());
        found.push(Ignored { reason: reason(&path, &metadata), path, bytes });
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

fn reason(path: &Path, metadata: &fs::Metadata) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if is_temp_name(&name) {
        return "a temporary file of a vigil run (in progress, or left by a crash: a later run removes it)".into();
    }
    if !metadata.is_file() {
        return "not a regular file".into();
    }
    if name.ends_with(manifest::SUFFIX) {
        return match manifest::read(path) {
            Err(e) => format!("unreadable manifest: {e}"),
            Ok(_) => "a manifest not listed".into(),
        };
    }
    "no manifest: not a vigil backup, or one copied without its .vigil.json; check it with '{\"bare\":true}'".into()
}
