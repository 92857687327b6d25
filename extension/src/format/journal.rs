//! A rollback journal read on its own (https://sqlite.org/fileformat2.html#the_rollback_journal): a hot
//! journal left by a crashed writer holds the original images of the pages the unfinished transaction
//! changed. Reading them over the database file gives its last committed state, as SQLite's rollback would.

use std::collections::HashMap;

const MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];
const HEADER_BYTES: usize = 28;

/// The original pages a journal holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JournalScan {
    /// Database size in pages before the unfinished transaction.
    pub original_pages: u32,
    /// Page → offset of its original image in the journal (the first record of each page wins).
    pub originals: HashMap<u32, u64>,
    /// Records whose checksum failed (never written completely): SQLite stops there too.
    pub stopped: Option<String>,
}

use super::be_u32 as word;

/// SQLite's page-record checksum: the nonce plus every 200th byte, from the end of the page.
fn record_checksum(nonce: u32, page: &[u8]) -> u32 {
    let mut sum = nonce;
    let mut at = page.len() as isize - 200;
    while at > 0 {
        sum = sum.wrapping_add(u32::from(page[at as usize]));
        at -= 200;
    }
    sum
}

/// What the first bytes of a rollback journal (or of one of its segments) say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalHeader {
    /// journal_mode=TRUNCATE leaves an empty file after a commit.
    Empty,
    /// journal_mode=PERSIST zeroes the header after a commit: nothing to roll back.
    Zeroed,
    /// A journal of an unfinished transaction: `records` page images (0 or `u32::MAX`: not written yet, count
    /// them from the file size), written for a database of `original_pages` pages of `page_size` bytes.
    Valid { records: u32, original_pages: u32, page_size: u32, nonce: u32, sector: u32 },
    /// Not zero, not a journal header: SQLite ignores it.
    Invalid,
}

/// The state of the journal header at offset 0, read through `read_at(buffer, offset) -> bytes read`.
pub fn header_state(read_at: &mut dyn FnMut(&mut [u8], u64) -> usize) -> JournalHeader {
    header_at(0, read_at)
}

fn header_at(at: u64, read_at: &mut dyn FnMut(&mut [u8], u64) -> usize) -> JournalHeader {
    let mut header = [0u8; HEADER_BYTES];
    let got = read_at(&mut header, at);
    if got == 0 {
        return JournalHeader::Empty;
    }
    if header[..got.min(8)].iter().all(|b| *b == 0) {
        return JournalHeader::Zeroed;
    }
    if got < HEADER_BYTES || header[..8] != MAGIC {
        return JournalHeader::Invalid;
    }
    JournalHeader::Valid {
        records: word(&header, 8),
        nonce: word(&header, 12),
        original_pages: word(&header, 16),
        sector: word(&header, 20),
        page_size: word(&header, 24),
    }
}

/// Reads a journal through `read_at(buffer, offset) -> bytes read`. `None` when it is not a hot journal (no
/// header: committed, or zeroed by journal_mode=PERSIST). A journal is a series of segments, each a header at
/// a sector boundary and its records (a transaction that spilled its cache several times wrote several).
pub fn scan(len: u64, page_size: u32, read_at: &mut dyn FnMut(&mut [u8], u64) -> usize) -> Option<JournalScan> {
    let first = segment_header(0, page_size, read_at)?;
    let mut scan = JournalScan { original_pages: first.original_pages, ..JournalScan::default() };
    let record_len = u64::from(page_size) + 8;
    let mut record = vec![0u8; record_len as usize];
    let mut header_at = 0u64;
    while let Some(segment) = segment_header(header_at, page_size, read_at) {
        let mut offset = header_at + segment.sector;
        // 0 or -1: the count was never written (not synced yet): read until the end or a bad checksum.
        let count = match segment.records {
            0 | u32::MAX => len.saturating_sub(offset) / record_len,
            n => u64::from(n),
        };
        for index in 0..count {
            if read_at(&mut record, offset) != record.len() {
                break;
            }
            let page = word(&record, 0);
            let image = &record[4..4 + page_size as usize];
            if page == 0 || record_checksum(segment.nonce, image) != word(&record, 4 + page_size as usize) {
                scan.stopped = Some(format!("journal record {} is incomplete (checksum)", index + 1));
                return Some(scan);
            }
            scan.originals.entry(page).or_insert(offset + 4);
            offset += record_len;
        }
        let next = offset.div_ceil(segment.sector) * segment.sector;
        if next <= header_at || next >= len {
            break;
        }
        header_at = next;
    }
    Some(scan)
}

struct Segment {
    records: u32,
    nonce: u32,
    original_pages: u32,
    sector: u64,
}

/// The segment header at `at` when it is valid and written for pages of `page_size` bytes.
fn segment_header(at: u64, page_size: u32, read_at: &mut dyn FnMut(&mut [u8], u64) -> usize) -> Option<Segment> {
    match header_at(at, read_at) {
        JournalHeader::Valid { records, original_pages, page_size: size, nonce, sector } if size == page_size => {
            Some(Segment { records, nonce, original_pages, sector: u64::from(sector.clamp(512, 65536)) })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &[u8]) -> impl FnMut(&mut [u8], u64) -> usize + '_ {
        move |buf, at| {
            let at = (at as usize).min(bytes.len());
            let n = buf.len().min(bytes.len() - at);
            buf[..n].copy_from_slice(&bytes[at..at + n]);
            n
        }
    }

    #[test]
    fn the_header_state_tells_a_finished_journal_from_a_hot_one() {
        assert_eq!(header_state(&mut reader(&[])), JournalHeader::Empty);
        assert_eq!(header_state(&mut reader(&[0u8; 512])), JournalHeader::Zeroed);
        assert_eq!(header_state(&mut reader(&[0u8; 5])), JournalHeader::Zeroed);
        assert_eq!(header_state(&mut reader(b"not a journal header at all, no")), JournalHeader::Invalid);
        assert_eq!(header_state(&mut reader(&MAGIC)), JournalHeader::Invalid);
        let mut bytes = MAGIC.to_vec();
        for value in [u32::MAX, 77, 9, 512, 4096] {
            bytes.extend(value.to_be_bytes());
        }
        let valid =
            JournalHeader::Valid { records: u32::MAX, nonce: 77, original_pages: 9, sector: 512, page_size: 4096 };
        assert_eq!(header_state(&mut reader(&bytes)), valid);
    }

    #[test]
    fn reads_original_pages_until_an_incomplete_record() {
        let page_size = 512u32;
        let mut bytes = vec![0u8; 512];
        bytes[..8].copy_from_slice(&MAGIC);
        bytes[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        bytes[12..16].copy_from_slice(&77u32.to_be_bytes());
        bytes[16..20].copy_from_slice(&9u32.to_be_bytes());
        bytes[20..24].copy_from_slice(&512u32.to_be_bytes());
        bytes[24..28].copy_from_slice(&page_size.to_be_bytes());
        for (page, good) in [(3u32, true), (3, true), (5, false)] {
            let image = vec![page as u8; page_size as usize];
            let sum = record_checksum(77, &image) + u32::from(!good);
            bytes.extend(page.to_be_bytes());
            bytes.extend(&image);
            bytes.extend(sum.to_be_bytes());
        }
        let scan = scan(bytes.len() as u64, page_size, &mut reader(&bytes)).unwrap();
        assert_eq!(scan.original_pages, 9);
        assert_eq!(scan.originals, HashMap::from([(3, 516)]));
        assert!(scan.stopped.unwrap().contains("record 3"));
    }
}
