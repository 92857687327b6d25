//! SHA-256 of what a backup writes, computed while it is written.

use std::io::{BufRead, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::buffer::BlockReader;
use crate::error::{Error, Result};

pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 (hex) and length of a whole stream.
pub fn sha256_of(reader: impl Read) -> std::io::Result<(String, u64)> {
    sha256_of_buffered(BlockReader::new(reader))
}

/// The same, hashing the reader's own buffers (no copy).
pub fn sha256_of_buffered(reader: impl BufRead) -> std::io::Result<(String, u64)> {
    let mut reader = HashingReader::new(reader);
    loop {
        let n = reader.fill_buf()?.len();
        if n == 0 {
            return Ok(reader.finish());
        }
        reader.consume(n);
    }
}

pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let file =
        super::dir::open_regular(path).map_err(|e| Error::new(format!("cannot read {}: {e}", path.display())))?;
    sha256_of(file).map_err(|e| Error::new(format!("cannot read {}: {e}", path.display())))
}

/// A reader that hashes and counts what passes through it, by `read` or by `fill_buf` and `consume`.
pub struct HashingReader<R: BufRead> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: BufRead> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Sha256::new(), bytes: 0 }
    }

    /// SHA-256 (hex) and length of what was read.
    pub fn finish(self) -> (String, u64) {
        (hex(&self.hasher.finalize()), self.bytes)
    }
}

impl<R: BufRead> Read for HashingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buffer)?;
        self.hasher.update(&buffer[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for HashingReader<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, n: usize) {
        if let Ok(available) = self.inner.fill_buf() {
            self.hasher.update(&available[..n]);
        }
        self.bytes += n as u64;
        self.inner.consume(n);
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
