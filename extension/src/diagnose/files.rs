//! What diagnose learns of a path before reading it: its type and size, and its side files' sizes. What the
//! files hold is read with `crate::format` (header, journal, WAL), which salvage and backups share.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;

/// What is at a path, by its type (never opened to find out: opening a FIFO for reading would hang).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathKind {
    Regular {
        size: u64,
    },
    Missing,
    /// A directory, FIFO, socket or device: named as such.
    NotAFile(&'static str),
    Unreadable(String),
}

pub fn kind_of(path: &Path) -> PathKind {
    match std::fs::metadata(path) {
        Ok(meta) => {
            let kind = meta.file_type();
            if kind.is_file() {
                PathKind::Regular { size: meta.len() }
            } else if kind.is_dir() {
                PathKind::NotAFile("a directory")
            } else if kind.is_fifo() {
                PathKind::NotAFile("a FIFO (named pipe)")
            } else if kind.is_socket() {
                PathKind::NotAFile("a socket")
            } else if kind.is_block_device() || kind.is_char_device() {
                PathKind::NotAFile("a device")
            } else {
                PathKind::NotAFile("not a regular file")
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => PathKind::Missing,
        Err(e) => PathKind::Unreadable(e.to_string()),
    }
}

/// The size of a side file when it is a regular file.
pub fn side_size(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().filter(|m| m.is_file()).map(|m| m.len())
}
