//! The 100-byte header at the start of every database file.

/// The fields of the database header vigil uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatabaseHeader {
    /// The first 16 bytes are "SQLite format 3\0".
    pub magic: bool,
    pub page_size: u32,
    /// The in-header database size in pages (trusted by SQLite only while `valid_for == change_counter`).
    pub page_count: u32,
    /// Incremented by every commit in rollback-journal mode.
    pub change_counter: u32,
    /// The file format's read and write versions are 2: the database is in WAL mode.
    pub wal: bool,
    /// The file format write and read versions: 1 (rollback journal) or 2 (WAL).
    pub write_version: u8,
    pub read_version: u8,
    /// Bytes at the end of each page reserved for extensions (checksums, encryption): usable = size − reserved.
    pub reserved: u8,
    /// Maximum and minimum embedded payload fractions and the leaf fraction: always 64, 32, 32.
    pub fractions: [u8; 3],
    pub freelist_trunk: u32,
    pub freelist_count: u32,
    pub schema_format: u32,
    /// Non-zero in auto_vacuum and incremental_vacuum databases, which keep pointer-map pages.
    pub largest_root: u32,
    /// UTF-8 when the code is not a valid one (see `encoding_code`).
    pub encoding: TextEncoding,
    /// The text encoding as stored: 1, 2 or 3, or 0 in a database no one has written a table to yet.
    pub encoding_code: u32,
    pub user_version: u32,
    pub incremental_vacuum: bool,
    pub application_id: u32,
    /// The change counter the in-header page count is valid for.
    pub valid_for: u32,
}

/// How the database stores TEXT (header offset 56).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextEncoding {
    Utf8,
    Utf16le,
    Utf16be,
}

impl TextEncoding {
    pub fn from_code(code: u32) -> Option<TextEncoding> {
        match code {
            1 => Some(TextEncoding::Utf8),
            2 => Some(TextEncoding::Utf16le),
            3 => Some(TextEncoding::Utf16be),
            _ => None,
        }
    }

    /// The name `PRAGMA encoding` uses.
    pub fn pragma_name(self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "UTF-8",
            TextEncoding::Utf16le => "UTF-16le",
            TextEncoding::Utf16be => "UTF-16be",
        }
    }
}

pub const HEADER_BYTES: usize = 100;
pub const MAGIC: &[u8; 16] = b"SQLite format 3\0";

impl DatabaseHeader {
    pub fn parse(bytes: &[u8; HEADER_BYTES]) -> Result<DatabaseHeader, String> {
        let header = DatabaseHeader::as_stored(bytes);
        if !header.magic {
            return Err("not an SQLite database (bad header)".into());
        }
        if !header.page_size_valid() {
            return Err(format!("the header is damaged: page size {}", header.page_size));
        }
        Ok(header)
    }

    /// Every field as stored, not yet judged (diagnose): the page size decoded even when it is not valid.
    pub fn as_stored(bytes: &[u8; HEADER_BYTES]) -> DatabaseHeader {
        DatabaseHeader::fields(bytes, stored_page_size(bytes))
    }

    /// The fields as they are, for a header whose magic or page size may be damaged (salvage, diagnose).
    pub fn fields(bytes: &[u8; HEADER_BYTES], page_size: u32) -> DatabaseHeader {
        let word = |at: usize| super::be_u32(bytes, at);
        DatabaseHeader {
            magic: DatabaseHeader::has_magic(bytes),
            page_size,
            page_count: word(28),
            change_counter: word(24),
            wal: bytes[18] == 2 || bytes[19] == 2,
            write_version: bytes[18],
            read_version: bytes[19],
            reserved: bytes[20],
            fractions: [bytes[21], bytes[22], bytes[23]],
            freelist_trunk: word(32),
            freelist_count: word(36),
            schema_format: word(44),
            largest_root: word(52),
            encoding: TextEncoding::from_code(word(56)).unwrap_or(TextEncoding::Utf8),
            encoding_code: word(56),
            user_version: word(60),
            incremental_vacuum: word(64) != 0,
            application_id: word(68),
            valid_for: word(92),
        }
    }

    /// The raw page-size field, decoded (1 means 65536); `None` when it is not a valid page size.
    pub fn page_size_field(bytes: &[u8; HEADER_BYTES]) -> Option<u32> {
        Some(stored_page_size(bytes)).filter(|&size| valid_page_size(size))
    }

    pub fn page_size_valid(&self) -> bool {
        valid_page_size(self.page_size)
    }

    pub fn has_magic(bytes: &[u8]) -> bool {
        bytes.len() >= 16 && &bytes[..16] == MAGIC
    }

    /// Bytes of each page b-tree content may use.
    pub fn usable_size(&self) -> u32 {
        self.page_size - u32::from(self.reserved)
    }

    /// Whether the in-header page count is current (SQLite ignores it otherwise and uses the file size).
    pub fn page_count_is_current(&self) -> bool {
        self.valid_for == self.change_counter && self.page_count > 0
    }
}

/// The page-size field decoded (1 means 65536; 0 stays 0).
fn stored_page_size(bytes: &[u8; HEADER_BYTES]) -> u32 {
    match u16::from_be_bytes([bytes[16], bytes[17]]) {
        1 => 65536,
        size => u32::from(size),
    }
}

pub fn valid_page_size(size: u32) -> bool {
    size.is_power_of_two() && (512..=65536).contains(&size)
}

/// The page that holds the lock bytes at 1 GiB: never used for content.
pub fn lock_page(page_size: u32) -> u32 {
    (1u64 << 30) as u32 / page_size + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(page_size: u16) -> [u8; HEADER_BYTES] {
        let mut bytes = [0u8; HEADER_BYTES];
        bytes[..16].copy_from_slice(MAGIC);
        bytes[16..18].copy_from_slice(&page_size.to_be_bytes());
        bytes[18] = 2;
        bytes[24..28].copy_from_slice(&7u32.to_be_bytes());
        bytes[28..32].copy_from_slice(&42u32.to_be_bytes());
        bytes
    }

    #[test]
    fn reads_the_fields_vigil_uses() {
        let parsed = DatabaseHeader::parse(&header(4096)).unwrap();
        assert_eq!((parsed.page_size, parsed.page_count, parsed.change_counter, parsed.wal), (4096, 42, 7, true));
        assert_eq!(DatabaseHeader::parse(&header(1)).unwrap().page_size, 65536);
    }

    #[test]
    fn refuses_other_files_and_impossible_page_sizes() {
        assert!(DatabaseHeader::parse(&[0u8; HEADER_BYTES]).unwrap_err().contains("not an SQLite database"));
        assert!(DatabaseHeader::parse(&header(1000)).unwrap_err().contains("page size 1000"));
    }

    #[test]
    fn as_stored_keeps_what_diagnose_judges() {
        let mut bytes = header(1);
        bytes[19] = 2;
        bytes[21..24].copy_from_slice(&[64, 32, 32]);
        bytes[56..60].copy_from_slice(&2u32.to_be_bytes());
        let fields = DatabaseHeader::as_stored(&bytes);
        assert!(fields.magic && fields.wal && fields.page_size_valid());
        assert_eq!((fields.page_size, fields.page_count, fields.encoding_code), (65536, 42, 2));
        assert_eq!((fields.write_version, fields.read_version, fields.fractions), (2, 2, [64, 32, 32]));
        bytes[56..60].copy_from_slice(&9u32.to_be_bytes());
        bytes[17] = 3;
        bytes[0] = b's';
        let damaged = DatabaseHeader::as_stored(&bytes);
        assert!(!damaged.magic && !damaged.page_size_valid());
        assert_eq!((damaged.page_size, damaged.encoding_code, damaged.encoding), (3, 9, TextEncoding::Utf8));
    }
}
