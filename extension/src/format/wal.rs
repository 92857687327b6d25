//! A WAL file read on its own (https://sqlite.org/walformat.html), as salvage and diagnose read a damaged
//! database's -wal: which frames are valid (salts and the cumulative checksum), which of them end a commit,
//! and for each page its newest committed image.

use std::collections::HashMap;

pub const WAL_HEADER_BYTES: usize = 32;
pub const FRAME_HEADER_BYTES: usize = 24;
const MAGIC_LITTLE: u32 = 0x377f_0682;
const MAGIC_BIG: u32 = 0x377f_0683;
/// The WAL format version SQLite writes and accepts.
const VERSION: u32 = 3_007_000;

/// What a WAL file holds, frame by frame, as SQLite's recovery judges it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WalScan {
    /// Why the WAL header is not valid: then SQLite ignores the whole file, and the counts below are 0.
    pub header_problem: Option<String>,
    pub page_size: u32,
    /// Whole frames in the file.
    pub frames: u32,
    /// Frames of the current generation whose checksum chain holds.
    pub valid: u32,
    /// Valid frames up to and including the last commit frame: the ones SQLite would read.
    pub committed_frames: u32,
    /// Whole frames after those: an unfinished transaction, a failed checksum, or an older generation.
    pub ignored_frames: u32,
    /// Bytes after the last whole frame (a frame cut short by a crash).
    pub torn_bytes: u64,
    /// The first frame whose checksum fails while its salt is current (a frame written incompletely).
    pub checksum_failure: Option<u32>,
    /// The first frame with an older generation's salt (left from before a WAL restart: normal).
    pub old_generation_from: Option<u32>,
    /// The first frame that could not be read (an I/O error, or the file shrank while being read).
    pub unreadable_from: Option<u32>,
    /// Database size in pages after the last committed transaction.
    pub database_pages: u32,
    /// For each page in the committed frames, the file offset of its newest image.
    pub newest: HashMap<u32, u64>,
}

use super::be_u32 as word;

/// SQLite's WAL checksum, continued from `sums` over `data` (a multiple of 8 bytes): pairs of 32-bit words in
/// the byte order the WAL's magic names, summed into two running totals that continue from frame to frame.
pub fn checksum(sums: (u32, u32), data: &[u8], big_endian: bool) -> (u32, u32) {
    let (mut s0, mut s1) = sums;
    for pair in data.chunks_exact(8) {
        let read = |b: &[u8]| {
            let b: [u8; 4] = [b[0], b[1], b[2], b[3]];
            if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        s0 = s0.wrapping_add(read(&pair[..4])).wrapping_add(s1);
        s1 = s1.wrapping_add(read(&pair[4..])).wrapping_add(s0);
    }
    (s0, s1)
}

/// Reads a WAL file through `read_at(buffer, offset) -> bytes read`, one frame in memory at a time. A file
/// without a valid WAL header (which SQLite ignores too) has `header_problem` set and no frames.
pub fn scan(len: u64, read_at: &mut dyn FnMut(&mut [u8], u64) -> usize) -> WalScan {
    let mut header = [0u8; WAL_HEADER_BYTES];
    let ValidHeader { page_size, big_endian, sums } = match check_header(len, &mut header, read_at) {
        Ok(valid) => valid,
        Err((page_size, problem)) => {
            return WalScan { header_problem: Some(problem), page_size, ..WalScan::default() };
        }
    };
    let stride = (FRAME_HEADER_BYTES + page_size as usize) as u64;
    let body = len - WAL_HEADER_BYTES as u64;
    let mut scan =
        WalScan { page_size, frames: (body / stride) as u32, torn_bytes: body % stride, ..WalScan::default() };
    follow_frames(&mut scan, &header[16..24], big_endian, sums, read_at);
    scan.ignored_frames = scan.frames - scan.committed_frames;
    scan
}

/// What the frames of a valid WAL header need: their page size, byte order, and the checksum they continue.
struct ValidHeader {
    page_size: u32,
    big_endian: bool,
    sums: (u32, u32),
}

/// Reads and checks the WAL header; when it is not valid, its page size and what is wrong.
fn check_header(
    len: u64,
    header: &mut [u8; WAL_HEADER_BYTES],
    read_at: &mut dyn FnMut(&mut [u8], u64) -> usize,
) -> Result<ValidHeader, (u32, String)> {
    if len < WAL_HEADER_BYTES as u64 {
        return Err((0, format!("{len} bytes: shorter than a WAL header")));
    }
    if read_at(header, 0) != WAL_HEADER_BYTES {
        return Err((0, "the WAL header cannot be read".into()));
    }
    let magic = word(header, 0);
    let page_size = word(header, 8);
    let big_endian = magic == MAGIC_BIG;
    let sums = checksum((0, 0), &header[..24], big_endian);
    if (magic != MAGIC_LITTLE && magic != MAGIC_BIG) || word(header, 4) != VERSION {
        Err((page_size, "no WAL magic number or version".into()))
    } else if !super::header::valid_page_size(page_size) {
        Err((page_size, format!("page size {page_size}")))
    } else if sums != (word(header, 24), word(header, 28)) {
        Err((page_size, "the header's checksum fails".into()))
    } else {
        Ok(ValidHeader { page_size, big_endian, sums })
    }
}

/// Follows the checksum chain from the header's `sums` until the end, a frame of another generation (`salt`)
/// or a frame that fails its checksum, noting the commits and each committed page's newest image.
fn follow_frames(
    scan: &mut WalScan,
    salt: &[u8],
    big_endian: bool,
    mut sums: (u32, u32),
    read_at: &mut dyn FnMut(&mut [u8], u64) -> usize,
) {
    let stride = FRAME_HEADER_BYTES + scan.page_size as usize;
    let mut frame = vec![0u8; stride];
    let mut pending: Vec<(u32, u64)> = Vec::new();
    for number in 1..=scan.frames {
        let offset = WAL_HEADER_BYTES as u64 + u64::from(number - 1) * stride as u64;
        if read_at(&mut frame, offset) != frame.len() {
            scan.unreadable_from = Some(number);
            return;
        }
        if frame[8..16] != *salt {
            scan.old_generation_from = Some(number);
            return;
        }
        let next = checksum(checksum(sums, &frame[..8], big_endian), &frame[FRAME_HEADER_BYTES..], big_endian);
        let page = word(&frame, 0);
        if page == 0 || next != (word(&frame, 16), word(&frame, 20)) {
            scan.checksum_failure = Some(number);
            return;
        }
        sums = next;
        scan.valid = number;
        pending.push((page, offset + FRAME_HEADER_BYTES as u64));
        let commit_size = word(&frame, 4);
        if commit_size > 0 {
            scan.newest.extend(pending.drain(..));
            scan.committed_frames = number;
            scan.database_pages = commit_size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal(page_size: u32, frames: &[(u32, u32)]) -> Vec<u8> {
        let mut out = vec![0u8; WAL_HEADER_BYTES];
        out[..4].copy_from_slice(&MAGIC_LITTLE.to_be_bytes());
        out[4..8].copy_from_slice(&VERSION.to_be_bytes());
        out[8..12].copy_from_slice(&page_size.to_be_bytes());
        out[16..24].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut sums = checksum((0, 0), &out[..24], false);
        out[24..28].copy_from_slice(&sums.0.to_be_bytes());
        out[28..32].copy_from_slice(&sums.1.to_be_bytes());
        for &(page, commit) in frames {
            let mut frame = vec![0u8; FRAME_HEADER_BYTES + page_size as usize];
            frame[..4].copy_from_slice(&page.to_be_bytes());
            frame[4..8].copy_from_slice(&commit.to_be_bytes());
            frame[8..16].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
            frame[FRAME_HEADER_BYTES] = page as u8;
            sums = checksum(checksum(sums, &frame[..8], false), &frame[FRAME_HEADER_BYTES..], false);
            frame[16..20].copy_from_slice(&sums.0.to_be_bytes());
            frame[20..24].copy_from_slice(&sums.1.to_be_bytes());
            out.extend(frame);
        }
        out
    }

    fn scan_bytes(bytes: &[u8]) -> WalScan {
        scan(bytes.len() as u64, &mut |buf, at| {
            let at = at as usize;
            let end = (at + buf.len()).min(bytes.len());
            let n = end.saturating_sub(at);
            buf[..n].copy_from_slice(&bytes[at..at + n]);
            n
        })
    }

    #[test]
    fn keeps_committed_frames_and_ignores_an_unfinished_transaction() {
        let bytes = wal(512, &[(2, 0), (3, 5), (2, 0)]);
        let scan = scan_bytes(&bytes);
        assert_eq!((scan.frames, scan.committed_frames, scan.ignored_frames, scan.database_pages), (3, 2, 1, 5));
        assert_eq!((scan.valid, scan.newest.len()), (3, 2));
        assert_eq!((scan.torn_bytes, scan.checksum_failure, scan.old_generation_from), (0, None, None));
        assert_eq!(scan.header_problem, None);
    }

    #[test]
    fn stops_at_a_failed_checksum_and_notices_a_torn_frame() {
        let mut bytes = wal(512, &[(2, 4), (3, 5), (4, 6)]);
        let second_frame_data = WAL_HEADER_BYTES + (FRAME_HEADER_BYTES + 512) + FRAME_HEADER_BYTES + 7;
        bytes[second_frame_data] ^= 1;
        bytes.truncate(bytes.len() - 100);
        let scan = scan_bytes(&bytes);
        assert_eq!((scan.frames, scan.valid, scan.committed_frames, scan.database_pages), (2, 1, 1, 4));
        assert_eq!((scan.torn_bytes, scan.checksum_failure), (FRAME_HEADER_BYTES as u64 + 512 - 100, Some(2)));
    }

    #[test]
    fn frames_of_an_older_generation_end_the_chain_without_a_failure() {
        let mut bytes = wal(512, &[(2, 4), (3, 5), (4, 6)]);
        let third_frame_salt = WAL_HEADER_BYTES + 2 * (FRAME_HEADER_BYTES + 512) + 8;
        bytes[third_frame_salt] ^= 1;
        let scan = scan_bytes(&bytes);
        assert_eq!((scan.frames, scan.valid, scan.committed_frames, scan.ignored_frames), (3, 2, 2, 1));
        assert_eq!((scan.old_generation_from, scan.checksum_failure), (Some(3), None));
    }

    #[test]
    fn a_file_without_a_valid_header_says_why_and_has_no_frames() {
        let problem = |bytes: &[u8]| scan_bytes(bytes).header_problem.unwrap();
        assert!(problem(&[0u8; 20]).contains("shorter than a WAL header"));
        assert!(problem(&[0u8; 64]).contains("no WAL magic"));
        let mut bytes = wal(512, &[(2, 4)]);
        bytes[30] ^= 1;
        assert!(problem(&bytes).contains("checksum fails"));
        assert_eq!(scan_bytes(&bytes).frames, 0);
        let mut bytes = wal(512, &[]);
        bytes[8..12].copy_from_slice(&1000u32.to_be_bytes());
        assert!(problem(&bytes).contains("page size 1000"));
    }

    #[test]
    fn the_checksum_follows_the_byte_order_of_the_magic() {
        let data = [0, 0, 0, 1, 0, 0, 0, 2];
        assert_eq!(checksum((0, 0), &data, true), (1, 3));
        assert_eq!(checksum((0, 0), &data, false), (1 << 24, (2 << 24) + (1 << 24)));
    }
}
