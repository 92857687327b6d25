//! Files a backup publishes: written under a temporary name beside the destination, fsynced, renamed into
//! place without replacing anything (unless asked), then the directory fsynced. A crash leaves either the
//! complete file or no file under the final name; its temporary file is removed by a later run.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{renameat2, Flock, FlockArg, RenameFlags, AT_FDCWD};

use crate::error::{Error, Result};

/// Prefix of temporary files; a crash can leave them behind, never under a final name.
pub const TEMP_MARK: &str = ".vigil-tmp-";

/// A temporary file nobody holds and older than this was left by a crash.
const STALE_AFTER: Duration = Duration::from_secs(60);

/// A file being written; removed on drop unless published. It holds a flock while it exists, which is how a
/// later run tells a crashed run's leftovers from a file another process is writing.
pub struct TempFile {
    pub path: PathBuf,
    published: bool,
    _held: Option<Flock<File>>,
}

impl TempFile {
    /// Creates a new, empty temporary file in `dir`, for a final file named `name`, after removing the
    /// leftovers of crashed runs there.
    pub fn create(dir: &Path, name: &str) -> Result<(TempFile, File)> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        remove_stale(dir);
        let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".{name}{TEMP_MARK}{}-{unique}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io_error("cannot create a temporary file in", dir, e))?;
        let held = File::open(&path).ok().and_then(|f| Flock::lock(f, FlockArg::LockExclusiveNonblock).ok());
        Ok((TempFile { path, published: false, _held: held }, file))
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

/// How much written data may wait for writeback before the writer starts it, and how much may be in flight
/// before the writer waits for it.
const WRITE_BEHIND: u64 = 8 << 20;

/// A file being written for keeps: writeback starts every 8 MiB and the writer waits for the window before
/// the last one, so dirty data stays near 16 MiB. The final fsync is then short, and other processes' fsyncs
/// (a database writer's commit) never queue behind a gigabyte of ours.
pub struct Output {
    file: File,
    path: PathBuf,
    durable: bool,
    waiting: bool,
    written: u64,
    started: u64,
    settled: u64,
}

impl Output {
    /// `durable`: the file is kept (written behind and fsynced); otherwise an intermediate that is deleted.
    pub fn new(file: File, path: &Path, durable: bool) -> Output {
        Output { file, path: path.to_path_buf(), durable, waiting: true, written: 0, started: 0, settled: 0 }
    }

    /// While a lock other connections wait for is held, start writeback but never wait for the disk.
    pub fn set_waiting(&mut self, waiting: bool) {
        self.waiting = waiting;
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write_chunk(&mut self, chunk: &[u8]) -> Result<()> {
        self.write_all(chunk).map_err(|e| io_error("cannot write", &self.path, e))
    }

    /// Reads back what was written at `offset` (bytes past the end read as zeros).
    pub fn read_at(&self, buffer: &mut [u8], offset: u64) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let mut done = 0;
        while done < buffer.len() {
            match self.file.read_at(&mut buffer[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error("cannot read back", &self.path, e)),
            }
        }
        buffer[done..].fill(0);
        Ok(())
    }

    /// Rewrites bytes already written (the final fsync makes them durable).
    pub fn overwrite_at(&mut self, data: &[u8], offset: u64) -> Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.write_all_at(data, offset).map_err(|e| io_error("cannot write", &self.path, e))
    }

    /// Cuts or extends (with zeros) the file to `length` bytes; later writes go on from there.
    pub fn set_len(&mut self, length: u64) -> Result<()> {
        use std::io::{Seek, SeekFrom};
        self.file.set_len(length).map_err(|e| io_error("cannot resize", &self.path, e))?;
        self.file.seek(SeekFrom::Start(length)).map_err(|e| io_error("cannot resize", &self.path, e))?;
        self.written = length;
        self.started = self.started.min(length);
        self.settled = self.settled.min(length);
        Ok(())
    }

    /// fsyncs a durable file and hands it back.
    pub fn finish(self) -> Result<File> {
        if self.durable {
            sync_file(&self.file, &self.path)?;
        }
        Ok(self.file)
    }

    fn write_behind(&mut self) {
        if !self.durable || self.written - self.started < WRITE_BEHIND {
            return;
        }
        sync_range(&self.file, self.started, self.written - self.started, false);
        if self.waiting && self.started > self.settled {
            sync_range(&self.file, self.settled, self.started - self.settled, true);
            self.settled = self.started;
        }
        self.started = self.written;
    }
}

impl Write for Output {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(data)?;
        self.written += n as u64;
        self.write_behind();
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Starts writeback of a range (`wait`: and waits for it). Advisory: durability comes from the final fsync,
/// so errors are left to it.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // nix has no sync_file_range
fn sync_range(file: &File, offset: u64, length: u64, wait: bool) {
    use std::os::fd::AsRawFd;
    let flags = if wait {
        libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER
    } else {
        libc::SYNC_FILE_RANGE_WRITE
    };
    // SAFETY: a valid descriptor of an open file; the call only reads its arguments.
    unsafe { libc::sync_file_range(file.as_raw_fd(), offset as i64, length as i64, flags) };
}

#[cfg(not(target_os = "linux"))]
fn sync_range(_file: &File, _offset: u64, _length: u64, _wait: bool) {}

/// Removes temporary files of vigil's in `dir` that no process holds and that are over a minute old (a run
/// takes its lock right after creating the file). Best effort: what cannot be removed stays.
pub fn remove_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().contains(TEMP_MARK) {
            continue;
        }
        let old = entry.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok());
        if old.is_none_or(|age| age < STALE_AFTER) {
            continue;
        }
        let Ok(file) = File::open(entry.path()) else { continue };
        if let Ok(_unheld) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            let _ = std::fs::remove_file(entry.path());
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
    let place = if path.as_os_str().is_empty() { String::new() } else { format!(" {}", path.display()) };
    Error::new(format!("{what}{place}: {error}{hint}"))
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
