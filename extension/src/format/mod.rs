//! What vigil knows of SQLite's file formats (https://sqlite.org/fileformat2.html, walformat.html), in one place
//! that backups, health and salvage share: the database header, the WAL and its index, b-tree pages and cells,
//! records, and page sources that read a file (with its WAL laid over) page by page.

pub mod btree;
pub mod header;
pub mod journal;
pub mod pages;
pub mod record;
pub mod usage;
pub mod wal;
pub mod wal_index;

/// The big-endian 32-bit integer at `at` (every multi-byte integer of SQLite's file formats is big-endian).
#[inline]
pub fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}
