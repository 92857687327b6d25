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
