//! Files a backup publishes: written under a temporary name beside the destination, fsynced, renamed into
//! place without replacing anything (unless asked), then the directory fsynced. A crash leaves either the
//! complete file or no file under the final name.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};

use crate::error::{Error, Result};

/// Prefix of temporary files; a crash can leave them behind, never under a final name.
pub const TEMP_MARK: &str = ".vigil-tmp-";

/// A file being written; removed on drop unless published.
pub struct TempFile {
    pub path: PathBuf,
    published: bool,
}

impl TempFile {
    /// Creates a new, empty temporary file in `dir`, for a final file named `name`.
    pub fn create(dir: &Path, name: &str) -> Result<(TempFile, File)> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".{name}{TEMP_MARK}{}-{unique}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io_error("cannot create a temporary file in", dir, e))?;
        Ok((TempFile { path, published: false }, file))
    }

    /// Moves the file to `destination`; fails when it exists, unless `overwrite`.
    pub fn publish(mut self, destination: &Path, overwrite: bool) -> Result<()> {
        rename(&self.path, destination, overwrite)?;
        self.published = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

pub fn io_error(what: &str, path: &Path, error: std::io::Error) -> Error {
    let hint = match error.kind() {
        std::io::ErrorKind::NotFound => ": the directory does not exist; create it first",
        std::io::ErrorKind::PermissionDenied => ": permission denied; choose a directory this process may write",
        _ if error.raw_os_error() == Some(28) => ": the disk is full; free space or choose another volume",
        _ => "",
    };
    Error::new(format!("{what} {}: {error}{hint}", path.display()))
}

pub fn sync_file(file: &File, path: &Path) -> Result<()> {
    file.sync_all().map_err(|e| io_error("cannot fsync", path, e))
}

/// Makes renames and deletions in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error("cannot fsync the directory", dir, e))
}

/// Renames without replacing an existing file (renameat2 NOREPLACE; a check before the rename where the
/// file system lacks it).
fn rename(from: &Path, to: &Path, overwrite: bool) -> Result<()> {
    let flags = if overwrite { RenameFlags::empty() } else { RenameFlags::RENAME_NOREPLACE };
    match renameat2(AT_FDCWD, from, AT_FDCWD, to, flags) {
        Ok(()) => Ok(()),
        Err(Errno::EEXIST) => Err(exists(to)),
        Err(Errno::EINVAL | Errno::ENOSYS) => {
            if !overwrite && to.exists() {
                return Err(exists(to));
            }
            std::fs::rename(from, to).map_err(|e| io_error("cannot rename a temporary file to", to, e))
        }
        Err(errno) => Err(io_error("cannot rename a temporary file to", to, std::io::Error::from(errno))),
    }
}

pub fn exists(path: &Path) -> Error {
    Error::new(format!(
        "{} already exists: vigil never overwrites a file unless asked; choose another name, a directory, or \
         '{{\"overwrite\":true}}'",
        path.display()
    ))
}

/// The directory of a file path ("." for a bare name).
pub fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
