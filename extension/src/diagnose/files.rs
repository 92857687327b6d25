//! What diagnose reads of the files before SQLite opens anything: the path's type and size, the database
//! header's fields, the rollback journal's header and the WAL's frame chain.
//!
//! The three parsers here ([`HeaderFields::parse`], [`journal_header`], [`scan_wal`]) are format knowledge
//! that belongs in `crate::format`; they are separate functions so that they can move there as they are.

use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

pub const HEADER_BYTES: usize = 100;
const MAGIC: &[u8; 16] = b"SQLite format 3\0";

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

/// `path` with `suffix` appended to its name (`-wal`, `-journal`, `-shm`), as SQLite names its side files.
pub fn side_file(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The size of a side file when it is a regular file.
pub fn side_size(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().filter(|m| m.is_file()).map(|m| m.len())
}

/// Every field of the 100-byte database header that diagnose checks, as stored (not yet judged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderFields {
    pub magic: bool,
    /// The page size field decoded (1 means 65536); 0 when the field is 0.
    pub page_size: u32,
    pub write_version: u8,
    pub read_version: u8,
    pub reserved: u8,
    /// Maximum and minimum embedded payload fractions and the leaf fraction: always 64, 32, 32.
    pub fractions: [u8; 3],
    pub change_counter: u32,
    pub page_count: u32,
    pub freelist_count: u32,
    pub schema_format: u32,
    pub encoding: u32,
    /// The change counter the in-header page count is valid for.
    pub valid_for: u32,
}

impl HeaderFields {
    pub fn parse(bytes: &[u8; HEADER_BYTES]) -> HeaderFields {
        let word = |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let page_size = match u16::from_be_bytes([bytes[16], bytes[17]]) {
            1 => 65536,
            size => u32::from(size),
        };
        HeaderFields {
            magic: &bytes[..16] == MAGIC,
            page_size,
            write_version: bytes[18],
            read_version: bytes[19],
            reserved: bytes[20],
            fractions: [bytes[21], bytes[22], bytes[23]],
            change_counter: word(24),
            page_count: word(28),
            freelist_count: word(36),
            schema_format: word(44),
            encoding: word(56),
            valid_for: word(92),
        }
    }

    pub fn page_size_valid(&self) -> bool {
        self.page_size.is_power_of_two() && (512..=65536).contains(&self.page_size)
    }

    /// The read and write versions say WAL mode.
    pub fn wal_mode(&self) -> bool {
        self.write_version == 2 || self.read_version == 2
    }
}

/// What the first bytes of a rollback journal say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalHeader {
    /// journal_mode=TRUNCATE leaves an empty file after a commit.
    Empty,
    /// journal_mode=PERSIST zeroes the header after a commit: nothing to roll back.
    Zeroed,
    /// A journal of an unfinished transaction: `records` page images (-1: unknown, synced mode), written for
    /// a database of `original_pages` pages of `page_size` bytes.
    Valid { records: i64, original_pages: u32, page_size: u32 },
    /// Not zero, not a journal header: SQLite ignores it.
    Invalid,
}

const JOURNAL_MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];

/// Reads a rollback journal's header (https://sqlite.org/fileformat2.html#the_rollback_journal).
pub fn journal_header(path: &Path) -> std::io::Result<JournalHeader> {
    let mut header = Vec::with_capacity(28);
    File::open(path)?.take(28).read_to_end(&mut header)?;
    if header.is_empty() {
        return Ok(JournalHeader::Empty);
    }
    if header.iter().take(8).all(|b| *b == 0) {
        return Ok(JournalHeader::Zeroed);
    }
    if header.len() < 28 || header[..8] != JOURNAL_MAGIC {
        return Ok(JournalHeader::Invalid);
    }
    let word = |at: usize| u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
    let records = match word(8) {
        u32::MAX => -1,
        n => i64::from(n),
    };
    Ok(JournalHeader::Valid { records, original_pages: word(16), page_size: word(24) })
}

/// The frames of a WAL file as SQLite's recovery would judge them (https://sqlite.org/walformat.html).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalFrames {
    /// Why the WAL header is not valid (then SQLite ignores the whole file).
    pub header_problem: Option<String>,
    pub page_size: u32,
    /// Whole frames in the file.
    pub frames: u64,
    /// Frames of the current generation whose checksum chain holds.
    pub valid: u64,
    /// Valid frames up to the last commit frame: what a reader sees.
    pub committed: u64,
    /// Bytes after the last whole frame (a frame cut short by a crash).
    pub torn_bytes: u64,
    /// The first frame whose checksum fails while its salt is current (a frame written incompletely).
    pub checksum_failure: Option<u64>,
    /// The first frame with an older generation's salt (left from before a WAL restart: normal).
    pub old_generation_from: Option<u64>,
}

const WAL_HEADER_BYTES: usize = 32;
const FRAME_HEADER_BYTES: usize = 24;

fn be_word(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The WAL checksum: pairs of 32-bit words in the byte order the WAL's magic names, summed into two
/// running totals that continue from frame to frame.
fn wal_checksum(data: &[u8], big_endian: bool, mut sums: (u32, u32)) -> (u32, u32) {
    for pair in data.chunks_exact(8) {
        let word = |at: usize| {
            let bytes = [pair[at], pair[at + 1], pair[at + 2], pair[at + 3]];
            if big_endian {
                u32::from_be_bytes(bytes)
            } else {
                u32::from_le_bytes(bytes)
            }
        };
        sums.0 = sums.0.wrapping_add(word(0)).wrapping_add(sums.1);
        sums.1 = sums.1.wrapping_add(word(4)).wrapping_add(sums.0);
    }
    sums
}

/// Reads a WAL file frame by frame (one page in memory at a time) and follows its checksum chain.
pub fn scan_wal(path: &Path) -> std::io::Result<WalFrames> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut header = [0u8; WAL_HEADER_BYTES];
    let mut scan = WalFrames::default();
    if len < WAL_HEADER_BYTES as u64 {
        scan.header_problem = Some(format!("{len} bytes: shorter than a WAL header"));
        return Ok(scan);
    }
    reader.read_exact(&mut header)?;
    let magic = be_word(&header, 0);
    let page_size = be_word(&header, 8);
    scan.page_size = page_size;
    let big_endian = magic & 1 == 1;
    let sums = wal_checksum(&header[..24], big_endian, (0, 0));
    if magic & !1 != 0x377f_0682 || be_word(&header, 4) != 3_007_000 {
        scan.header_problem = Some("no WAL magic number or version".into());
    } else if !page_size.is_power_of_two() || !(512..=65536).contains(&page_size) {
        scan.header_problem = Some(format!("page size {page_size}"));
    } else if sums != (be_word(&header, 24), be_word(&header, 28)) {
        scan.header_problem = Some("the header's checksum fails".into());
    }
    if scan.header_problem.is_some() {
        return Ok(scan);
    }
    let frame_len = FRAME_HEADER_BYTES as u64 + u64::from(page_size);
    let body = len - WAL_HEADER_BYTES as u64;
    scan.frames = body / frame_len;
    scan.torn_bytes = body % frame_len;
    follow_frames(&mut reader, &header[16..24], big_endian, sums, page_size, &mut scan)?;
    Ok(scan)
}

fn follow_frames(
    reader: &mut impl Read,
    salt: &[u8],
    big_endian: bool,
    mut sums: (u32, u32),
    page_size: u32,
    scan: &mut WalFrames,
) -> std::io::Result<()> {
    let mut frame = vec![0u8; FRAME_HEADER_BYTES + page_size as usize];
    for number in 1..=scan.frames {
        reader.read_exact(&mut frame)?;
        if &frame[8..16] != salt {
            scan.old_generation_from = Some(number);
            return Ok(());
        }
        let next = wal_checksum(&frame[FRAME_HEADER_BYTES..], big_endian, wal_checksum(&frame[..8], big_endian, sums));
        if be_word(&frame, 0) == 0 || next != (be_word(&frame, 16), be_word(&frame, 20)) {
            scan.checksum_failure = Some(number);
            return Ok(());
        }
        sums = next;
        scan.valid = number;
        if be_word(&frame, 4) != 0 {
            scan.committed = number;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_fields_are_read_where_the_format_puts_them() {
        let mut bytes = [0u8; HEADER_BYTES];
        bytes[..16].copy_from_slice(MAGIC);
        bytes[16..18].copy_from_slice(&1u16.to_be_bytes());
        bytes[18] = 2;
        bytes[19] = 2;
        bytes[21..24].copy_from_slice(&[64, 32, 32]);
        bytes[28..32].copy_from_slice(&9u32.to_be_bytes());
        bytes[56..60].copy_from_slice(&2u32.to_be_bytes());
        let fields = HeaderFields::parse(&bytes);
        assert!(fields.magic && fields.wal_mode() && fields.page_size_valid());
        assert_eq!((fields.page_size, fields.page_count, fields.encoding), (65536, 9, 2));
        bytes[17] = 3;
        assert!(!HeaderFields::parse(&bytes).page_size_valid());
    }

    #[test]
    fn the_wal_checksum_follows_the_byte_order_of_the_magic() {
        let data = [0, 0, 0, 1, 0, 0, 0, 2];
        assert_eq!(wal_checksum(&data, true, (0, 0)), (1, 3));
        assert_eq!(wal_checksum(&data, false, (0, 0)), (1 << 24, (2 << 24) + (1 << 24)));
    }
}
