//! Writing a backup's files: written behind and fsynced (`Output`). Their temporary names, renames and the
//! directory they go to belong to dir.rs: a crash leaves either the complete file or no file under the final
//! name, and its temporary file is removed by a later run.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::dir::{io_error, sync_file};
use crate::error::Result;

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
