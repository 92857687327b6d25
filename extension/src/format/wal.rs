//! A WAL file read on its own (https://sqlite.org/walformat.html), as salvage and diagnose read a damaged
//! database's -wal: which frames are valid (salts and the cumulative checksum), which of them end a commit,
//! and for each page its newest committed image.

use std::collections::HashMap;

pub const WAL_HEADER_BYTES: usize = 32;
pub const FRAME_HEADER_BYTES: usize = 24;
const MAGIC_LITTLE: u32 = 0x377f_0682;
const MAGIC_BIG: u32 = 0x377f_0683;

/// What a WAL file holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WalScan {
    pub page_size: u32,
    /// Whole frames in the file.
    pub frames: u32,
    /// Frames up to and including the last valid commit frame: the ones SQLite would read.
    pub committed_frames: u32,
    /// Whole frames after those: an unfinished transaction, a failed checksum, or an older generation.
    pub ignored_frames: u32,
    /// The file ends inside a frame (a write torn by a crash).
    pub torn: bool,
    /// Why reading stopped before the end, when a frame failed its salt or checksum.
    pub stopped: Option<String>,
    /// Database size in pages after the last committed transaction.
    pub database_pages: u32,
    /// For each page in the committed frames, the file offset of its newest image.
    pub newest: HashMap<u32, u64>,
}

fn word(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// SQLite's WAL checksum, continued from `sums` over `data` (a multiple of 8 bytes).
fn checksum(sums: (u32, u32), data: &[u8], big_endian: bool) -> (u32, u32) {
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

/// Reads a WAL file through `read_at(buffer, offset) -> bytes read`. `None` when it has no valid WAL header
/// (then SQLite ignores the file too).
pub fn scan(len: u64, read_at: &mut dyn FnMut(&mut [u8], u64) -> usize) -> Option<WalScan> {
    let mut header = [0u8; WAL_HEADER_BYTES];
    if read_at(&mut header, 0) != WAL_HEADER_BYTES {
        return None;
    }
    let magic = word(&header, 0);
    if magic != MAGIC_LITTLE && magic != MAGIC_BIG {
        return None;
    }
    let big_endian = magic == MAGIC_BIG;
    let page_size = word(&header, 8);
    let page_size = if page_size == 1 { 65536 } else { page_size };
    let mut sums = checksum((0, 0), &header[..24], big_endian);
    if !super::header::valid_page_size(page_size) || sums != (word(&header, 24), word(&header, 28)) {
        return None;
    }
    let stride = (FRAME_HEADER_BYTES + page_size as usize) as u64;
    let body = len.saturating_sub(WAL_HEADER_BYTES as u64);
    let mut scan =
        WalScan { page_size, frames: (body / stride) as u32, torn: body % stride != 0, ..WalScan::default() };
    let mut frame = vec![0u8; stride as usize];
    let mut pending: Vec<(u32, u64)> = Vec::new();
    for index in 0..scan.frames {
        let offset = WAL_HEADER_BYTES as u64 + u64::from(index) * stride;
        if read_at(&mut frame, offset) != frame.len() {
            scan.stopped = Some(format!("frame {} could not be read", index + 1));
            break;
        }
        if frame[8..16] != header[16..24] {
            scan.stopped = Some(format!("frame {} belongs to another WAL generation (salt)", index + 1));
            break;
        }
        sums = checksum(checksum(sums, &frame[..8], big_endian), &frame[FRAME_HEADER_BYTES..], big_endian);
        if sums != (word(&frame, 16), word(&frame, 20)) {
            scan.stopped = Some(format!("frame {} fails its checksum", index + 1));
            break;
        }
        let page = word(&frame, 0);
        pending.push((page, offset + FRAME_HEADER_BYTES as u64));
        let commit_size = word(&frame, 4);
        if commit_size > 0 {
            scan.newest.extend(pending.drain(..));
            scan.committed_frames = index + 1;
            scan.database_pages = commit_size;
        }
    }
    scan.ignored_frames = scan.frames - scan.committed_frames;
    Some(scan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal(page_size: u32, frames: &[(u32, u32)]) -> Vec<u8> {
        let mut out = vec![0u8; WAL_HEADER_BYTES];
        out[..4].copy_from_slice(&MAGIC_LITTLE.to_be_bytes());
        out[4..8].copy_from_slice(&3_007_000u32.to_be_bytes());
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

    fn scan_bytes(bytes: &[u8]) -> Option<WalScan> {
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
        let scan = scan_bytes(&bytes).unwrap();
        assert_eq!((scan.frames, scan.committed_frames, scan.ignored_frames, scan.database_pages), (3, 2, 1, 5));
        assert_eq!(scan.newest.len(), 2);
        assert!(!scan.torn && scan.stopped.is_none());
    }

    #[test]
    fn stops_at_a_failed_checksum_and_notices_a_torn_frame() {
        let mut bytes = wal(512, &[(2, 4), (3, 5), (4, 6)]);
        let second_frame_data = WAL_HEADER_BYTES + (FRAME_HEADER_BYTES + 512) + FRAME_HEADER_BYTES + 7;
        bytes[second_frame_data] ^= 1;
        bytes.truncate(bytes.len() - 100);
        let scan = scan_bytes(&bytes).unwrap();
        assert_eq!((scan.frames, scan.committed_frames, scan.database_pages), (2, 1, 4));
        assert!(scan.torn);
        assert!(scan.stopped.unwrap().contains("frame 2 fails its checksum"));
    }

    #[test]
    fn a_file_without_a_valid_header_is_no_wal() {
        assert!(scan_bytes(&[0u8; 64]).is_none());
        let mut bytes = wal(512, &[]);
        bytes[30] ^= 1;
        assert!(scan_bytes(&bytes).is_none());
    }
}
