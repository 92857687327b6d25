//! SHA-256 of what a backup writes, computed while it is written.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle, Thread};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const BLOCK: usize = 1 << 20;

pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 (hex) and length of a whole stream.
pub fn sha256_of(mut reader: impl Read) -> std::io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; BLOCK];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            return Ok((hex(&hasher.finalize()), total));
        }
        hasher.update(&buffer[..n]);
        total += n as u64;
    }
}

pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let file = File::open(path).map_err(|e| Error::new(format!("cannot read {}: {e}", path.display())))?;
    sha256_of(file).map_err(|e| Error::new(format!("cannot read {}: {e}", path.display())))
}

/// Hashes a file on another thread, reading it back just behind its writer (from the page cache), so that
/// the copy itself never waits for the hash: the database's read lock is held only as long as copying takes.
pub struct Follower {
    written: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    thread: Thread,
    handle: JoinHandle<std::io::Result<(String, u64)>>,
}

impl Follower {
    pub fn start(path: &Path) -> Result<Follower> {
        let mut file = File::open(path).map_err(|e| Error::new(format!("cannot read {}: {e}", path.display())))?;
        let written = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let (w, d) = (written.clone(), done.clone());
        let handle = thread::Builder::new()
            .name("vigil-sha256".into())
            .spawn(move || follow(&mut file, &w, &d))
            .map_err(|e| Error::new(format!("cannot start the hashing thread: {e}")))?;
        let thread = handle.thread().clone();
        Ok(Follower { written, done, thread, handle })
    }

    /// The writer has written `total` bytes so far.
    pub fn advance(&self, total: u64) {
        self.written.store(total, Ordering::Release);
        self.thread.unpark();
    }

    /// Waits for the hash of the `total` bytes written.
    pub fn finish(self, total: u64) -> Result<(String, u64)> {
        self.written.store(total, Ordering::Release);
        self.done.store(true, Ordering::Release);
        self.thread.unpark();
        match self.handle.join() {
            Ok(result) => result.map_err(|e| Error::new(format!("hashing the backup failed: {e}"))),
            Err(_) => Err(Error::new("the hashing thread panicked")),
        }
    }
}

fn follow(file: &mut File, written: &AtomicU64, done: &AtomicBool) -> std::io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; BLOCK];
    let mut position = 0u64;
    loop {
        let finished = done.load(Ordering::Acquire);
        let target = written.load(Ordering::Acquire);
        if position < target {
            let n = (target - position).min(BLOCK as u64) as usize;
            file.read_exact(&mut buffer[..n])?;
            hasher.update(&buffer[..n]);
            position += n as u64;
        } else if finished {
            return Ok((hex(&hasher.finalize()), position));
        } else {
            thread::park_timeout(Duration::from_millis(5));
        }
    }
}

/// A reader that reports how many bytes have passed through it.
pub struct Counting<R: Read, F: Fn(u64)> {
    inner: R,
    done: u64,
    report: F,
}

impl<R: Read, F: Fn(u64)> Counting<R, F> {
    pub fn new(inner: R, report: F) -> Self {
        Counting { inner, done: 0, report }
    }
}

impl<R: Read, F: Fn(u64)> Read for Counting<R, F> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buffer)?;
        self.done += n as u64;
        (self.report)(self.done);
        Ok(n)
    }
}

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: Sha256::new(), bytes: 0 }
    }

    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex(&self.hasher.finalize()), self.bytes)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(data)?;
        self.hasher.update(&data[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follower_hashes_what_was_written() {
        let dir = std::env::temp_dir().join(format!("vigil-follow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let mut out = File::create(&path).unwrap();
        let follower = Follower::start(&path).unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut total = 0;
        for chunk in data.chunks(700_000) {
            out.write_all(chunk).unwrap();
            total += chunk.len() as u64;
            follower.advance(total);
        }
        let (digest, bytes) = follower.finish(total).unwrap();
        assert_eq!(bytes, data.len() as u64);
        assert_eq!(digest, sha256_of(&data[..]).unwrap().0);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
