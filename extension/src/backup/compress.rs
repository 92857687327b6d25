//! Compression of backup artifacts, streamed: memory stays flat whatever the database size.
//!
//! gzip is compressed in 1 MiB blocks on every core and joined into one standard gzip member (each block a
//! raw deflate stream ended by a sync flush, as pigz does); zstd uses libzstd's own worker threads.

use std::io::{self, BufRead, Read, Write};
use std::thread;

use flate2::{Compress, Compression as Level, FlushCompress, Status};

use super::buffer::BlockReader;
use super::options::Compression;

const BLOCK: usize = 1 << 20;
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

fn workers() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8)
}

/// Compresses everything `input` yields into `output`.
pub fn compress(
    input: impl BufRead,
    output: impl Write,
    compression: Compression,
    level: Option<i32>,
) -> io::Result<()> {
    match compression {
        Compression::None => copy_all(input, output),
        Compression::Gzip => gzip(input, output, level.unwrap_or(6) as u32),
        Compression::Zstd => zstd_stream(input, output, level.unwrap_or(3)),
    }
}

/// Writes the input's own buffers out, without copying them first.
fn copy_all(mut input: impl BufRead, mut output: impl Write) -> io::Result<()> {
    loop {
        let available = input.fill_buf()?;
        if available.is_empty() {
            return output.flush();
        }
        output.write_all(available)?;
        let n = available.len();
        input.consume(n);
    }
}

fn zstd_stream(input: impl BufRead, output: impl Write, level: i32) -> io::Result<()> {
    let mut encoder = zstd::stream::write::Encoder::new(output, level)?;
    encoder.multithread(workers() as u32)?;
    encoder.include_checksum(true)?;
    copy_all(input, &mut encoder)?;
    encoder.finish().map(|_| ())
}

/// Reads up to `buffer.len()` bytes, fewer only at the end of the stream.
fn fill(input: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// One gzip member, its blocks compressed in parallel.
fn gzip(mut input: impl Read, mut output: impl Write, level: u32) -> io::Result<()> {
    let batch = workers() * 2;
    let mut blocks: Vec<Vec<u8>> = vec![vec![0u8; BLOCK]; batch];
    let mut crc = crc32fast::Hasher::new();
    let mut length = 0u64;
    output.write_all(&GZIP_HEADER)?;
    loop {
        let mut filled = Vec::with_capacity(batch);
        for block in blocks.iter_mut() {
            let n = fill(&mut input, block)?;
            filled.push(n);
            if n < BLOCK {
                break;
            }
        }
        let last_batch = filled.last().is_none_or(|&n| n < BLOCK);
        let count = filled.len();
        let compressed: Vec<io::Result<(Vec<u8>, crc32fast::Hasher)>> = thread::scope(|scope| {
            let handles: Vec<_> = blocks[..count]
                .iter()
                .zip(&filled)
                .enumerate()
                .map(|(i, (block, &n))| {
                    let last = last_batch && i + 1 == count;
                    scope.spawn(move || deflate_block(&block[..n], level, last))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(io::Error::other("deflate panicked"))))
                .collect()
        });
        for (result, &n) in compressed.into_iter().zip(&filled) {
            let (bytes, block_crc) = result?;
            output.write_all(&bytes)?;
            crc.combine(&block_crc);
            length += n as u64;
        }
        if last_batch {
            break;
        }
    }
    output.write_all(&crc.finalize().to_le_bytes())?;
    output.write_all(&(length as u32).to_le_bytes())?;
    output.flush()
}

/// A raw deflate stream of one block: ends with a sync flush (byte-aligned, not final) or, for the last
/// block, the final block.
fn deflate_block(data: &[u8], level: u32, last: bool) -> io::Result<(Vec<u8>, crc32fast::Hasher)> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(data);
    let mut compressor = Compress::new(Level::new(level), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let flush = if last { FlushCompress::Finish } else { FlushCompress::Sync };
    loop {
        let consumed = compressor.total_in() as usize;
        let status = compressor.compress_vec(&data[consumed..], &mut out, flush).map_err(io::Error::other)?;
        let all_in = compressor.total_in() as usize == data.len();
        let complete = if last { status == Status::StreamEnd } else { all_in && out.len() < out.capacity() };
        if complete {
            return Ok((out, crc));
        }
        out.reserve(out.capacity().max(64 * 1024));
    }
}

/// A reader of the database inside an artifact.
pub fn decompressing(input: impl Read + 'static, compression: Compression) -> io::Result<Box<dyn Read>> {
    Ok(match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BlockReader::new(input))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(BlockReader::new(input))?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| ((i * 7919) % 97) as u8 ^ (i / 4096) as u8).collect()
    }

    #[test]
    fn gzip_and_zstd_round_trip() {
        for len in [0, 1, BLOCK - 1, BLOCK, 3 * BLOCK + 17, 9 * BLOCK] {
            let data = sample(len);
            for compression in [Compression::Gzip, Compression::Zstd] {
                let mut packed = Vec::new();
                compress(&data[..], &mut packed, compression, None).unwrap();
                let mut unpacked = Vec::new();
                decompressing(io::Cursor::new(packed), compression).unwrap().read_to_end(&mut unpacked).unwrap();
                assert!(unpacked == data, "{compression:?} {len}");
            }
        }
    }

    #[test]
    fn gzip_is_one_standard_member() {
        let data = sample(3 * BLOCK + 5);
        let mut packed = Vec::new();
        compress(&data[..], &mut packed, Compression::Gzip, Some(6)).unwrap();
        // A single-member decoder reads it all: one header, one trailer with the whole CRC and length.
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(&packed[..]).read_to_end(&mut unpacked).unwrap();
        assert!(unpacked == data);
    }
}
