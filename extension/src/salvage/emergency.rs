//! The emergency copy: before anything else, the damaged database's raw files (database, -wal, -journal) are
//! copied as they are into a new directory beside the salvage's destination, fsynced. Whatever happens next,
//! the bytes the user had are kept; and salvage reads the copy, a still image nobody else writes.

use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::backup::dir::{self, io_error, sync_dir, sync_file, Perms};
use crate::error::{Error, Result};
use crate::format::journal::JournalHeader;
use crate::format::pages::{journal_header_of, sidecar};
use crate::sqlite::OwnedVfsFile;

/// Copies `src` and its sidecars into `<dest>.emergency-<UTC time>/`; returns the directory and the copy of
/// the database file (its sidecars beside it under the same names).
pub fn copy(src: &Path, dest: &Path, perms: Option<Perms>) -> Result<(PathBuf, PathBuf)> {
    let name = src.file_name().ok_or_else(|| Error::new(format!("{} names no file", src.display())))?;
    check_room(src, dest)?;
    let directory = create_directory(dest)?;
    let copy = directory.join(name);
    let mut written = Vec::new();
    let copied = (|| {
        let to = copy.clone();
        written.push(to.clone());
        copy_database(src, &to, perms)?;
        for suffix in ["-wal", "-journal"] {
            let from = sidecar(src, suffix);
            let Ok(file) = dir::open_regular(&from) else { continue };
            // A journal without a hot journal's header holds nothing to roll back (SQLite ignores it), and may be
            // any size: only a hot one is part of the database's state.
            if suffix == "-journal" && !matches!(journal_header_of(&file), JournalHeader::Valid { .. }) {
                continue;
            }
            let to = sidecar(&copy, suffix);
            written.push(to.clone());
            copy_file(file, &from, &to, perms)?;
        }
        sync_dir(&directory)?;
        sync_dir(&dir::parent_of(dest))
    })();
    if let Err(e) = copied {
        // A copy that could not be completed (a full disk) is no copy: leave nothing behind.
        for file in &written {
            let _ = std::fs::remove_file(file);
        }
        let _ = std::fs::remove_dir(&directory);
        return Err(e.context("the emergency copy failed (nothing was salvaged; the damaged files are untouched)"));
    }
    Ok((directory, copy))
}

/// The copy's files must fit on the volume of dest, with 5 % to spare: refused before anything is written.
fn check_room(src: &Path, dest: &Path) -> Result<()> {
    let size = |path: &Path| std::fs::metadata(path).ok().filter(|m| m.is_file()).map_or(0, |m| m.len());
    let needed = ["", "-wal", "-journal"].iter().map(|s| size(&sidecar(src, s))).sum::<u64>();
    let parent = dir::parent_of(dest);
    let Some(free) = crate::volume::volume_of(&parent).map(|disk| disk.free) else { return Ok(()) };
    if needed + needed / 20 > free {
        return Err(Error::new(format!(
            "not enough free space in {} for the emergency copy of the damaged files ({} MiB needed, {} MiB free): \
             free some space, put the new database elsewhere, or skip the copy (emergency_copy false, \
             --no-emergency-copy)",
            parent.display(),
            needed.div_ceil(1 << 20),
            free >> 20
        )));
    }
    Ok(())
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

/// The database file itself is read through the VFS (a plain descriptor's close would drop this process's
/// locks on it).
fn copy_database(src: &Path, to: &Path, perms: Option<Perms>) -> Result<()> {
    use std::io::Write;
    let text = src.to_str().ok_or_else(|| dir::not_utf8("the damaged database's path"))?;
    let mut file = OwnedVfsFile::open_database(text)?;
    // As a reader would: a rollback-journal writer cannot commit into the file while it is copied (a WAL
    // writer only appends to the -wal, copied after it).
    file.lock_shared(std::time::Duration::from_secs(5));
    let len = file.size()?;
    let mut out = create(to, perms)?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    while offset < len {
        let want = buffer.len().min((len - offset) as usize);
        let got = file.read_at(&mut buffer[..want], offset);
        if got == 0 {
            break;
        }
        out.write_all(&buffer[..got]).map_err(|e| io_error("cannot write", to, e))?;
        offset += got as u64;
    }
    sync_file(&out, to)
}

fn create(to: &Path, perms: Option<Perms>) -> Result<File> {
    let out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(to)
        .map_err(|e| io_error("cannot create", to, e))?;
    if let Some(perms) = perms {
        perms.apply(&out, to)?;
    }
    Ok(out)
}

fn copy_file(mut from: File, from_path: &Path, to: &Path, perms: Option<Perms>) -> Result<()> {
    let mut out = create(to, perms)?;
    std::io::copy(&mut from, &mut out).map_err(|e| io_error("cannot copy", from_path, e))?;
    sync_file(&out, to)
}
