//! What vigil reads of SQLite's WAL format (https://sqlite.org/walformat.html): the wal-index header in
//! shared memory and the frame headers of the WAL file. Both are read through the connection's VFS handles,
//! never through a file descriptor of vigil's own.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::sqlite::VfsFile;

const WAL_INDEX_VERSION: u32 = 3_007_000;
const WAL_HEADER_BYTES: u64 = super::wal::WAL_HEADER_BYTES as u64;
const FRAME_HEADER_BYTES: u64 = super::wal::FRAME_HEADER_BYTES as u64;

/// The wal-index header: which WAL frames hold the newest committed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalIndexHeader {
    /// Incremented on every header write (each commit, each WAL restart).
    pub change: u32,
    /// Last valid frame of the newest commit.
    pub max_frame: u32,
    /// Database size in pages after that commit.
    pub pages: u32,
    /// Salts of the current WAL generation, as the WAL file stores them (big-endian bytes).
    pub salt: [u8; 8],
}

impl WalIndexHeader {
    /// Reads the header from a database file's wal-index. `None` when there is none, it is not initialised,
    /// or its two copies differ because a writer is changing them right now (try again).
    pub fn read(database: &VfsFile<'_>) -> Option<WalIndexHeader> {
        let mut copies = [0u8; 96];
        if !database.read_wal_index(&mut copies) {
            return None;
        }
        let (first, second) = copies.split_at(48);
        let word = |at: usize| u32::from_ne_bytes(first[at..at + 4].try_into().unwrap_or_default());
        if first != second || word(0) != WAL_INDEX_VERSION || first[12] != 1 {
            return None;
        }
        let mut salt = [0u8; 8];
        salt.copy_from_slice(&first[32..40]);
        Some(WalIndexHeader { change: word(8), max_frame: word(16), pages: word(20), salt })
    }
}

/// For each page that frames `1..=max_frame` of the WAL hold, the file offset of its newest image.
pub fn newest_frames(wal: &VfsFile<'_>, header: &WalIndexHeader, page_size: u32) -> Result<HashMap<u32, u64>> {
    let mut frames = HashMap::new();
    let stride = FRAME_HEADER_BYTES + u64::from(page_size);
    let mut frame_header = [0u8; FRAME_HEADER_BYTES as usize];
    for frame in 0..u64::from(header.max_frame) {
        let offset = WAL_HEADER_BYTES + frame * stride;
        wal.read_at(&mut frame_header, offset)?;
        if frame_header[8..16] != header.salt {
            return Err(Error::new(format!(
                "WAL frame {} does not belong to the snapshot being copied (salt mismatch)",
                frame + 1
            )));
        }
        let page = super::be_u32(&frame_header, 0);
        frames.insert(page, offset + FRAME_HEADER_BYTES);
    }
    Ok(frames)
}
