//! The emergency copy: before anything else, the damaged database's raw files (database, -wal, -journal) are
//! copied as they are into a new directory beside the salvage's destination, fsynced. Whatever happens next,
//! the bytes the user had are kept; and salvage reads the copy, a still image nobody else writes.

use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::backup::dir::{self, io_error, sync_dir, sync_file, Perms};
use crate::error::{Error, Result};
use crate::format::pages::sidecar;

/// Copies `src` and its sidecars into `<dest>.emergency-<UTC time>/`; returns the directory and the copy of
/// the database file (its sidecars beside it under the same names).
pub fn copy(src: &Path, dest: &Path, perms: Option<Perms>) -> Result<(PathBuf, PathBuf)> {
    let directory = create_directory(dest)?;
    let name = src.file_name().ok_or_else(|| Error::new(format!("{} names no file", src.display())))?;
    let copy = directory.join(name);
    for suffix in ["", "-wal", "-journal"] {
        let from = sidecar(src, suffix);
        let file = match dir::open_regular(&from) {
            Ok(file) => file,
            Err(_) if !suffix.is_empty() => continue,
            Err(e) => return Err(io_error("cannot read", &from, e)),
        };
        copy_file(file, &from, &sidecar(&copy, suffix), perms)?;
    }
    sync_dir(&directory)?;
    sync_dir(&dir::parent_of(dest))?;
    Ok((directory, copy))
}

fn create_directory(dest: &Path) -> Result<PathBuf> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("salvage");
    let parent = dir::parent_of(dest);
    for n in 0..100 {
        let suffix = if n == 0 { String::new() } else { format!("-{n}") };
        let path = parent.join(format!("{name}.emergency-{stamp}{suffix}"));
        match DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error("cannot create the emergency copy's directory in", &parent, e)),
        }
    }
    Err(Error::new(format!("no free name for an emergency copy in {}", parent.display())))
}

fn copy_file(mut from: File, from_path: &Path, to: &Path, perms: Option<Perms>) -> Result<()> {
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(to)
        .map_err(|e| io_error("cannot create", to, e))?;
    if let Some(perms) = perms {
        perms.apply(&out, to)?;
    }
    std::io::copy(&mut from, &mut out).map_err(|e| io_error("cannot copy", from_path, e))?;
    sync_file(&out, to)
}
