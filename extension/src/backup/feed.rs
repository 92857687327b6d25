//! Where the bytes of a copy go while it is made: to a consumer on another thread (a hash; a hash and a
//! compressor) that works behind the copy instead of after it.
//!
//! Two ways to feed it. A pipe hands the copy's own buffers over (the bytes are read once): the copy waits
//! when the consumer is a few buffers behind. A follower reads the raw copy back from the page cache just
//! behind its writer: the copy never waits for the consumer, which is what a copy holding a lock that
//! writers wait on needs.

use std::fs::File;
use std::io::{BufRead, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::artifact::Output;
use super::buffer::{Buffer, READ_BLOCK as BLOCK};
use super::dir::{io_error, TempFile};
use crate::error::{Error, Result};
use crate::sqlite::Mapped;

/// Buffers in flight between the copy and a piped consumer.
const POOL: usize = 8;

/// What a consumer gets: the copy's bytes in order, ending where the copy ended.
pub type Stream<'a> = &'a mut dyn BufRead;

/// A piece of the copy: a buffer it read into, or the file's pages as the VFS maps them (no copy at all).
pub enum Chunk {
    Owned(Buffer),
    Mapped(Mapped),
}

impl Chunk {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(buffer) => buffer,
            Chunk::Mapped(mapped) => mapped.bytes(),
        }
    }
}

/// The destination of a copy: the raw file (when there is one) and the consumer behind it.
pub struct Sink<T> {
    raw: Option<Output>,
    raw_temp: Option<TempFile>,
    feed: Feed<T>,
    written: u64,
    spares: Vec<Buffer>,
    /// Mappings back from the consumer (or never sent), for the copy to unfetch.
    returned: Vec<Mapped>,
    /// Mappings the consumer has not handed back yet.
    mapped_out: usize,
    /// A follower that reads nothing until released (the raw copy is still to be corrected).
    held: bool,
    /// The consumer may have taken bytes that were rewritten since: its work must be redone.
    stale: bool,
}

enum Feed<T> {
    Pipe(Pipe<T>),
    Follow(Follower<T>),
}

impl<T: Send + 'static> Sink<T> {
    /// The consumer takes the copy's buffers; `raw`, when given, is written too.
    pub fn piped(raw: Option<Output>, consume: impl FnOnce(Stream) -> Result<T> + Send + 'static) -> Result<Self> {
        Ok(Sink::new(raw, Feed::Pipe(Pipe::start(consume)?)))
    }

    /// The consumer reads `raw` back behind the copy.
    pub fn following(raw: Output, consume: impl FnOnce(Stream) -> Result<T> + Send + 'static) -> Result<Self> {
        let feed = Feed::Follow(Follower::start(raw.path(), consume)?);
        Ok(Sink::new(Some(raw), feed))
    }

    fn new(raw: Option<Output>, feed: Feed<T>) -> Self {
        let (spares, returned) = (Vec::new(), Vec::new());
        Sink { raw, raw_temp: None, feed, written: 0, spares, returned, mapped_out: 0, held: false, stale: false }
    }

    /// A follower that starts reading only when [`Sink::release`]d: for a raw copy that will be corrected.
    pub fn held(mut self) -> Self {
        self.held = matches!(self.feed, Feed::Follow(_));
        self
    }

    /// A held follower may read the raw copy now.
    pub fn release(&mut self) {
        self.held = false;
        if let Feed::Follow(follower) = &self.feed {
            follower.advance(self.written);
        }
    }

    /// Reads the raw copy back at `offset`.
    pub fn read_raw_at(&self, buffer: &mut [u8], offset: u64) -> Result<()> {
        self.raw.as_ref().ok_or_else(|| Error::new("no raw copy is being written"))?.read_at(buffer, offset)
    }

    /// Corrects bytes of the raw copy. A consumer that may have taken the old ones becomes stale.
    pub fn overwrite_raw(&mut self, data: &[u8], offset: u64) -> Result<()> {
        self.raw.as_mut().ok_or_else(|| Error::new("no raw copy is being written"))?.overwrite_at(data, offset)?;
        self.stale |= !self.held;
        Ok(())
    }

    /// Cuts or extends the raw copy to `length` bytes.
    pub fn set_raw_len(&mut self, length: u64) -> Result<()> {
        if length == self.written {
            return Ok(());
        }
        self.raw.as_mut().ok_or_else(|| Error::new("no raw copy is being written"))?.set_len(length)?;
        self.written = length;
        self.stale |= !self.held;
        Ok(())
    }

    /// Whether the consumer's work must be redone ([`Sink::restart`]) because the raw copy changed under it.
    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// Drops the consumer's work and starts `consume` over, reading the finished raw copy.
    pub fn restart(&mut self, consume: impl FnOnce(Stream) -> Result<T> + Send + 'static) -> Result<()> {
        let path = self.raw_path().ok_or_else(|| Error::new("no raw copy to read again"))?.to_path_buf();
        let follower = Follower::start(&path, consume)?;
        follower.advance(self.written);
        match std::mem::replace(&mut self.feed, Feed::Follow(follower)) {
            Feed::Pipe(pipe) => pipe.abandon(),
            Feed::Follow(follower) => follower.abandon(),
        }
        (self.held, self.stale) = (false, false);
        Ok(())
    }

    /// Sorts a chunk the consumer handed back: buffers for reuse, mappings for the copy to unfetch.
    fn recycle(&mut self, chunk: Chunk) {
        match chunk {
            Chunk::Owned(buffer) => self.spares.push(buffer),
            Chunk::Mapped(mapped) => {
                self.mapped_out -= 1;
                self.returned.push(mapped);
            }
        }
    }

    /// The sink owns the raw copy's temporary file (removed with it unless taken).
    pub fn owning(mut self, raw: TempFile) -> Self {
        self.raw_temp = Some(raw);
        self
    }

    pub fn take_raw_file(&mut self) -> Option<TempFile> {
        self.raw_temp.take()
    }

    /// The raw copy's path (SQLite's backup API writes there; checks read it); None when only streamed.
    pub fn raw_path(&self) -> Option<&Path> {
        self.raw_temp.as_ref().map(|t| t.path.as_path())
    }

    /// See [`Output::set_waiting`].
    pub fn set_waiting(&mut self, waiting: bool) {
        if let Some(raw) = &mut self.raw {
            raw.set_waiting(waiting);
        }
    }

    /// An empty buffer of `len` bytes to read the next chunk into.
    pub fn buffer(&mut self, len: usize) -> Buffer {
        while self.spares.is_empty() {
            let Feed::Pipe(pipe) = &self.feed else { break };
            match pipe.empty.recv() {
                Ok(chunk) => self.recycle(chunk),
                Err(_) => break, // the consumer stopped: its error says why, at finish
            }
        }
        let mut buffer = self.spares.pop().unwrap_or_default();
        buffer.resize(len);
        buffer
    }

    /// The next chunk of the copy.
    pub fn put(&mut self, chunk: Chunk) -> Result<()> {
        if let Some(raw) = &mut self.raw {
            raw.write_chunk(chunk.bytes())?;
        }
        self.written += chunk.bytes().len() as u64;
        self.mapped_out += matches!(chunk, Chunk::Mapped(_)) as usize;
        match &self.feed {
            Feed::Pipe(pipe) => {
                if let Some(refused) = pipe.send(chunk) {
                    self.recycle(refused);
                }
            }
            Feed::Follow(follower) => {
                if !self.held {
                    follower.advance(self.written);
                }
                self.recycle(chunk);
            }
        }
        Ok(())
    }

    /// The mappings the consumer is done with, to unfetch.
    pub fn take_returned(&mut self) -> Vec<Mapped> {
        while let Feed::Pipe(pipe) = &self.feed {
            let Ok(chunk) = pipe.empty.try_recv() else { break };
            self.recycle(chunk);
        }
        std::mem::take(&mut self.returned)
    }

    /// The copy is complete (or failed): a piped consumer sees the end of the stream. Waits until every
    /// mapping is back (they must be unfetched before the copy's read transaction ends) and returns them.
    pub fn end_stream(&mut self) -> Vec<Mapped> {
        if let Feed::Pipe(pipe) = &mut self.feed {
            pipe.full = None;
        }
        while self.mapped_out > 0 {
            let Feed::Pipe(pipe) = &self.feed else { break };
            match pipe.empty.recv() {
                Ok(chunk) => self.recycle(chunk),
                Err(_) => break, // the consumer ended and dropped what it held
            }
        }
        std::mem::take(&mut self.returned)
    }

    /// SQLite wrote the raw file itself (backup API): feeds the consumer from it.
    pub fn put_raw_file(&mut self) -> Result<u64> {
        let path = self.raw_path().ok_or_else(|| Error::new("no raw copy was written"))?.to_path_buf();
        let mut file = File::open(&path).map_err(|e| io_error("cannot read", &path, e))?;
        let length = file.metadata().map_err(|e| io_error("cannot read", &path, e))?.len();
        match &self.feed {
            Feed::Follow(follower) => follower.advance(length),
            Feed::Pipe(pipe) => {
                let mut done = 0;
                while done < length {
                    let mut chunk = Buffer::new((length - done).min(BLOCK as u64) as usize);
                    file.read_exact(&mut chunk).map_err(|e| io_error("cannot read", &path, e))?;
                    done += chunk.len() as u64;
                    let _ = pipe.send(Chunk::Owned(chunk));
                }
            }
        }
        self.written = length;
        Ok(length)
    }

    /// fsyncs the raw copy when it is kept; the consumer goes on.
    pub fn close_raw(&mut self) -> Result<()> {
        match self.raw.take() {
            Some(raw) => raw.finish().map(drop),
            None => Ok(()),
        }
    }

    /// Waits for the consumer, reporting how many bytes it has taken; an error from `report` (an interrupt)
    /// stops the consumer and is returned once its thread has ended (and dropped its files).
    pub fn finish(self, report: impl Fn(u64) -> Result<()>) -> Result<T> {
        match self.feed {
            Feed::Pipe(pipe) => pipe.finish(report),
            Feed::Follow(follower) => follower.finish(self.written, report),
        }
    }

    /// The copy failed: the consumer's reads fail and its work is dropped.
    pub fn abandon(self) {
        match self.feed {
            Feed::Pipe(pipe) => pipe.abandon(),
            Feed::Follow(follower) => follower.abandon(),
        }
    }
}

/// The state a consumer thread shares with the copy.
#[derive(Default)]
struct Shared {
    written: AtomicU64,
    consumed: AtomicU64,
    done: AtomicBool,
    abandoned: AtomicBool,
}

impl Shared {
    fn check_abandoned(&self) -> std::io::Result<()> {
        if self.abandoned.load(Ordering::Acquire) {
            return Err(std::io::Error::other("the copy was abandoned"));
        }
        Ok(())
    }
}

/// The consumer's thread. Dropped unfinished (an early return), it is told to stop: never left waiting.
struct Consumer<T> {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<Result<T>>>,
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        if let Some(handle) = &self.handle {
            self.shared.abandoned.store(true, Ordering::Release);
            handle.thread().unpark();
        }
    }
}

impl<T: Send + 'static> Consumer<T> {
    fn spawn<R: BufRead + Send + 'static>(
        shared: Arc<Shared>,
        mut reader: R,
        consume: impl FnOnce(Stream) -> Result<T> + Send + 'static,
    ) -> Result<Self> {
        let handle = thread::Builder::new()
            .name("vigil-backup".into())
            .spawn(move || consume(&mut reader))
            .map_err(|e| Error::new(format!("cannot start a backup thread: {e}")))?;
        Ok(Consumer { shared, handle: Some(handle) })
    }

    fn unpark(&self) {
        if let Some(handle) = &self.handle {
            handle.thread().unpark();
        }
    }

    fn finish(mut self, report: impl Fn(u64) -> Result<()>) -> Result<T> {
        self.shared.done.store(true, Ordering::Release);
        self.unpark();
        while self.handle.as_ref().is_some_and(|h| !h.is_finished()) {
            if let Err(stop) = report(self.shared.consumed.load(Ordering::Relaxed)) {
                self.abandon();
                return Err(stop);
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.join()
    }

    fn abandon(mut self) {
        self.shared.abandoned.store(true, Ordering::Release);
        self.unpark();
        let _ = self.join();
    }

    fn join(&mut self) -> Result<T> {
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(Error::new("a backup thread panicked")),
        }
    }
}

/// Hands filled buffers to the consumer and takes them back empty.
struct Pipe<T> {
    full: Option<SyncSender<Chunk>>,
    empty: Receiver<Chunk>,
    consumer: Consumer<T>,
}

impl<T: Send + 'static> Pipe<T> {
    fn start(consume: impl FnOnce(Stream) -> Result<T> + Send + 'static) -> Result<Self> {
        let (full, full_in) = sync_channel(POOL);
        let (empty_out, empty) = channel();
        for _ in 0..POOL {
            let _ = empty_out.send(Chunk::Owned(Buffer::new(BLOCK)));
        }
        let shared = Arc::new(Shared::default());
        let reader = PipeReader { full: full_in, empty: empty_out, current: None, at: 0, shared: shared.clone() };
        Ok(Pipe { full: Some(full), empty, consumer: Consumer::spawn(shared, reader, consume)? })
    }

    /// Hands a chunk over; gives it back when the consumer stopped early (its own error says why, at finish).
    fn send(&self, chunk: Chunk) -> Option<Chunk> {
        match &self.full {
            Some(full) => full.send(chunk).err().map(|refused| refused.0),
            None => Some(chunk),
        }
    }

    fn finish(mut self, report: impl Fn(u64) -> Result<()>) -> Result<T> {
        self.full = None; // the end of the stream
        self.consumer.finish(report)
    }

    fn abandon(mut self) {
        self.consumer.shared.abandoned.store(true, Ordering::Release);
        self.full = None;
        self.consumer.abandon();
    }
}

struct PipeReader {
    full: Receiver<Chunk>,
    empty: Sender<Chunk>,
    current: Option<Chunk>,
    at: usize,
    shared: Arc<Shared>,
}

impl BufRead for PipeReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.at == self.current.as_ref().map_or(0, |c| c.bytes().len()) {
            // Hand the used chunk back first: at the end of the stream the copy waits for every mapping.
            if let Some(used) = self.current.take() {
                let _ = self.empty.send(used);
            }
            self.shared.check_abandoned()?;
            let Ok(next) = self.full.recv() else {
                self.shared.check_abandoned()?;
                return Ok(&[]);
            };
            self.current = Some(next);
            self.at = 0;
        }
        Ok(self.current.as_ref().map_or(&[], |c| &c.bytes()[self.at..]))
    }

    fn consume(&mut self, n: usize) {
        self.at += n;
        self.shared.consumed.fetch_add(n as u64, Ordering::Relaxed);
    }
}

impl Read for PipeReader {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        read_buffered(self, buffer)
    }
}

fn read_buffered(reader: &mut impl BufRead, buffer: &mut [u8]) -> std::io::Result<usize> {
    let available = reader.fill_buf()?;
    let n = available.len().min(buffer.len());
    buffer[..n].copy_from_slice(&available[..n]);
    reader.consume(n);
    Ok(n)
}

/// Reads a file on another thread just behind its writer.
struct Follower<T> {
    consumer: Consumer<T>,
}

impl<T: Send + 'static> Follower<T> {
    fn start(path: &Path, consume: impl FnOnce(Stream) -> Result<T> + Send + 'static) -> Result<Self> {
        let file = File::open(path).map_err(|e| io_error("cannot read", path, e))?;
        let shared = Arc::new(Shared::default());
        let reader = FollowReader { file, buffer: Buffer::new(BLOCK), filled: 0, at: 0, shared: shared.clone() };
        Ok(Follower { consumer: Consumer::spawn(shared, reader, consume)? })
    }

    /// The writer has written `total` bytes so far.
    fn advance(&self, total: u64) {
        self.consumer.shared.written.store(total, Ordering::Release);
        self.consumer.unpark();
    }

    fn finish(self, total: u64, report: impl Fn(u64) -> Result<()>) -> Result<T> {
        self.advance(total);
        self.consumer.finish(report)
    }

    fn abandon(self) {
        self.consumer.abandon();
    }
}

/// The follower's view of the file: reads wait for the writer, and end where the writer finished.
struct FollowReader {
    file: File,
    buffer: Buffer,
    filled: usize,
    at: usize,
    shared: Arc<Shared>,
}

impl BufRead for FollowReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.at == self.filled {
            self.shared.check_abandoned()?;
            let finished = self.shared.done.load(Ordering::Acquire);
            let target = self.shared.written.load(Ordering::Acquire);
            let position = self.shared.consumed.load(Ordering::Relaxed);
            if position < target {
                let n = (target - position).min(BLOCK as u64) as usize;
                self.file.read_exact(&mut self.buffer[..n])?;
                (self.filled, self.at) = (n, 0);
            } else if finished {
                return Ok(&[]);
            } else {
                thread::park_timeout(Duration::from_millis(5));
            }
        }
        Ok(&self.buffer[self.at..self.filled])
    }

    fn consume(&mut self, n: usize) {
        self.at += n;
        self.shared.consumed.fetch_add(n as u64, Ordering::Relaxed);
    }
}

impl Read for FollowReader {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        read_buffered(self, buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::digest::{sha256_of, sha256_of_buffered};

    fn sample() -> Vec<u8> {
        (0..3_000_000u32).map(|i| (i % 251) as u8).collect()
    }

    fn feed_in_chunks(sink: &mut Sink<(String, u64)>, data: &[u8]) {
        for piece in data.chunks(700_000) {
            let mut chunk = sink.buffer(piece.len());
            chunk.copy_from_slice(piece);
            sink.put(Chunk::Owned(chunk)).unwrap();
        }
    }

    #[test]
    fn piped_and_following_consumers_see_every_byte_in_order() {
        let dir = std::env::temp_dir().join(format!("vigil-feed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let data = sample();
        let expected = sha256_of(&data[..]).unwrap();
        for follow in [false, true] {
            let path = dir.join(format!("raw-{follow}"));
            let raw = Output::new(File::create(&path).unwrap(), &path, false);
            let hash = |stream: Stream| Ok(sha256_of_buffered(stream).unwrap());
            let mut sink = if follow { Sink::following(raw, hash) } else { Sink::piped(Some(raw), hash) }.unwrap();
            feed_in_chunks(&mut sink, &data);
            assert!(sink.end_stream().is_empty());
            sink.close_raw().unwrap();
            assert_eq!(sink.finish(|_| Ok(())).unwrap(), expected, "follow {follow}");
            assert_eq!(std::fs::read(&path).unwrap(), data);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_abandoned_copy_fails_the_consumer_without_hanging() {
        let mut sink = Sink::piped(None, |stream: Stream| {
            let mut all = Vec::new();
            stream.read_to_end(&mut all).map_err(|e| Error::new(e.to_string()))?;
            Ok((String::new(), all.len() as u64))
        })
        .unwrap();
        feed_in_chunks(&mut sink, &sample()[..1_000_000]);
        sink.abandon();
    }
}
