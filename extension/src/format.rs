//! What vigil reads of SQLite's database file format (https://sqlite.org/fileformat2.html): the 100-byte
//! header at the start of every database file.

/// The fields of the database header vigil uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatabaseHeader {
    pub page_size: u32,
    /// The in-header database size in pages (trusted by SQLite only while `valid_for == change_counter`).
    pub page_count: u32,
    /// Incremented by every commit in rollback-journal mode.
    pub change_counter: u32,
    /// The file format's read and write versions are 2: the database is in WAL mode.
    pub wal: bool,
}

pub const HEADER_BYTES: usize = 100;
const MAGIC: &[u8; 16] = b"SQLite format 3\0";

impl DatabaseHeader {
    pub fn parse(bytes: &[u8; HEADER_BYTES]) -> Result<DatabaseHeader, String> {
        if &bytes[..16] != MAGIC {
            return Err("not an SQLite database (bad header)".into());
        }
        let page_size = match u16::from_be_bytes([bytes[16], bytes[17]]) {
            1 => 65536,
            size => u32::from(size),
        };
        if !page_size.is_power_of_two() || page_size < 512 {
            return Err(format!("the header is damaged: page size {page_size}"));
        }
        let word = |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        Ok(DatabaseHeader {
            page_size,
            page_count: word(28),
            change_counter: word(24),
            wal: bytes[18] == 2 || bytes[19] == 2,
        })
    }
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
        assert_eq!(parsed, DatabaseHeader { page_size: 4096, page_count: 42, change_counter: 7, wal: true });
        assert_eq!(DatabaseHeader::parse(&header(1)).unwrap().page_size, 65536);
    }

    #[test]
    fn refuses_other_files_and_impossible_page_sizes() {
        assert!(DatabaseHeader::parse(&[0u8; HEADER_BYTES]).unwrap_err().contains("not an SQLite database"));
        assert!(DatabaseHeader::parse(&header(1000)).unwrap_err().contains("page size 1000"));
    }
}
