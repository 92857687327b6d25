//! A small HTTP/1.1 server for answers already in memory: GET and HEAD, no request bodies, nothing from disk.
//!
//! Written on std rather than taken from tiny_http 0.12, whose client loop reads a header line into a Vec
//! without bound, has no deadline for a whole request head (a client sending a byte a second never trips a
//! socket timeout) and starts a thread for every connection without a limit. Here a request head must arrive
//! whole within `head_deadline` and `head_bytes`, a response must be taken within `write_deadline`, and at
//! most `max_connections` connections are open: a new one pushes out the one that has waited longest for its
//! next request, so idle clients cannot lock others out. Conversations run on pooled threads (starting a thread
//! per connection cost p99 86 ms against 14 ms pooled, bench/src/bin/serve.rs, 50 clients on 2 cores).

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    /// Request line and headers together.
    pub head_bytes: usize,
    /// From the moment a connection waits for a request until its head is complete (idle keep-alive included).
    pub head_deadline: Duration,
    /// For writing one whole response.
    pub write_deadline: Duration,
}

pub const LIMITS: Limits = Limits {
    max_connections: 128,
    head_bytes: 8 * 1024,
    head_deadline: Duration::from_secs(5),
    write_deadline: Duration::from_secs(10),
};

/// What the server tells the handler about a request.
pub struct Request {
    pub method: String,
    pub target: String,
}

pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Arc<[u8]>,
}

impl Response {
    pub fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: vec![],
            body: Arc::from(body.as_bytes()),
        }
    }
}

pub type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// Headers every answer carries, refusals included: a browser keeps to this origin's files and never guesses a
/// type.
const GUARD_HEADERS: &str =
    "Content-Security-Policy: default-src 'self'\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n";

/// The Host values a server bound to a loopback address answers (None: any, when bound elsewhere). A web page
/// whose name was rebound to 127.0.0.1 sends its own name as Host: it gets 421, never the dashboard's data.
fn loopback_hosts(addr: SocketAddr) -> Option<Arc<[String]>> {
    if !addr.ip().is_loopback() {
        return None;
    }
    let port = addr.port();
    let own = match addr {
        SocketAddr::V4(v4) => v4.ip().to_string(),
        SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
    };
    Some(Arc::from([format!("{own}:{port}"), format!("localhost:{port}"), format!("[::1]:{port}")]))
}

/// Whether a request's Host (lower-cased) may be answered; HTTP/1.0 may send none.
fn host_allowed(hosts: Option<&[String]>, host: Option<&str>, http11: bool) -> bool {
    match (hosts, host) {
        (None, _) => true,
        (Some(_), None) => !http11,
        (Some(hosts), Some(host)) => hosts.iter().any(|h| h == host),
    }
}

/// Serves `listener` on a thread of its own until the process ends.
pub fn spawn(listener: TcpListener, limits: Limits, handler: Arc<Handler>) -> io::Result<()> {
    let slots = Arc::new(Slots::default());
    let workers = Arc::new(Workers::default());
    let hosts = loopback_hosts(listener.local_addr()?);
    std::thread::Builder::new().name("vigil-http".into()).spawn(move || {
        for stream in listener.incoming() {
            match stream {
                Ok(stream) => admit(stream, &slots, &workers, limits, &handler, &hosts),
                // Out of file descriptors and the like: let some connections finish.
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    })?;
    Ok(())
}

/// The open connections: each with a clone of its socket (to push it out) and whether it is waiting for a
/// request (may be pushed out) or answering one (is not).
#[derive(Default)]
struct Slots {
    open: Mutex<HashMap<u64, Slot>>,
    next: AtomicU64,
}

struct Slot {
    socket: TcpStream,
    waiting_since: Option<Instant>,
}

impl Slots {
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Slot>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Room for one more connection, pushing out the longest-waiting one when full; false when every
    /// connection is busy answering.
    fn make_room(&self, max: usize) -> bool {
        let mut table = self.table();
        if table.len() < max {
            return true;
        }
        let oldest = table.iter().filter_map(|(id, s)| s.waiting_since.map(|t| (t, *id))).min();
        match oldest {
            Some((_, id)) => {
                if let Some(slot) = table.remove(&id) {
                    let _ = slot.socket.shutdown(Shutdown::Both);
                }
                true
            }
            None => false,
        }
    }

    fn insert(&self, socket: TcpStream) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.table().insert(id, Slot { socket, waiting_since: Some(Instant::now()) });
        id
    }

    /// Marks a connection waiting or answering; false when it was pushed out meanwhile.
    fn mark(&self, id: u64, waiting: bool) -> bool {
        match self.table().get_mut(&id) {
            Some(slot) => {
                slot.waiting_since = waiting.then(Instant::now);
                true
            }
            None => false,
        }
    }

    fn remove(&self, id: u64) {
        self.table().remove(&id);
    }
}

fn admit(
    stream: TcpStream,
    slots: &Arc<Slots>,
    workers: &Arc<Workers>,
    limits: Limits,
    handler: &Arc<Handler>,
    hosts: &Option<Arc<[String]>>,
) {
    if !slots.make_room(limits.max_connections) {
        return busy(stream);
    }
    let Ok(clone) = stream.try_clone() else { return };
    let id = slots.insert(clone);
    let (slots2, handler, hosts) = (slots.clone(), handler.clone(), hosts.clone());
    let job = Box::new(move || {
        converse(stream, id, &slots2, limits, &*handler, hosts.as_deref());
        slots2.remove(id);
    });
    if workers.run(job).is_err() {
        slots.remove(id);
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The threads that hold conversations, kept for the next connection rather than started and ended for each
/// one; a thread idle for 30 s ends. There are about as many as connections open at once (`max_connections`).
#[derive(Default)]
struct Workers {
    queue: Mutex<VecDeque<Job>>,
    ready: Condvar,
    /// Threads waiting for a job that none has been promised to.
    idle: AtomicUsize,
}

impl Workers {
    /// Hands the job to an idle thread, or starts one for it.
    fn run(self: &Arc<Self>, job: Job) -> io::Result<()> {
        if self.promise_idle() {
            self.queue.lock().unwrap_or_else(|e| e.into_inner()).push_back(job);
            self.ready.notify_one();
            return Ok(());
        }
        let workers = self.clone();
        std::thread::Builder::new().name("vigil-http-conn".into()).stack_size(256 * 1024).spawn(move || {
            job();
            workers.take_jobs();
        })?;
        Ok(())
    }

    fn promise_idle(&self) -> bool {
        self.idle.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }

    fn take_jobs(&self) {
        loop {
            self.idle.fetch_add(1, Ordering::SeqCst);
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            let job = loop {
                if let Some(job) = queue.pop_front() {
                    break job;
                }
                let (guard, waited) =
                    self.ready.wait_timeout(queue, Duration::from_secs(30)).unwrap_or_else(|e| e.into_inner());
                queue = guard;
                // Leave only when no job was promised to this thread (or another idle one can take it).
                if waited.timed_out() && queue.is_empty() && self.promise_idle() {
                    return;
                }
            };
            drop(queue);
            job();
        }
    }
}

/// Every connection is answering a request: say so at once rather than queue.
fn busy(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let body = "vigil serve: too many connections; retry\n";
    let _ = write!(
        stream,
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain; charset=utf-8\r\n\
         {GUARD_HEADERS}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Answers the requests of one connection until it closes, errs, times out or asks to close.
fn converse(
    mut stream: TcpStream,
    id: u64,
    slots: &Slots,
    limits: Limits,
    handler: &Handler,
    hosts: Option<&[String]>,
) {
    let _ = stream.set_nodelay(true);
    let mut pending = Vec::new();
    loop {
        if !slots.mark(id, true) {
            return;
        }
        let head = match read_head(&mut stream, &mut pending, limits) {
            Ok(head) => head,
            // No byte of a next request: close without a word. A 408 here would be unsolicited, and a client
            // sending its next request on a kept-alive connection as it arrives would take it for the answer.
            Err(HeadError::Closed | HeadError::Idle) => return,
            Err(HeadError::TooLarge) => return refuse(&mut stream, 431, "request head over 8 KiB", limits),
            Err(HeadError::TimedOut) => return refuse(&mut stream, 408, "request head too slow", limits),
        };
        if !slots.mark(id, false) {
            return;
        }
        let Some(parsed) = parse_head(&head) else {
            return refuse(&mut stream, 400, "malformed request", limits);
        };
        if !host_allowed(hosts, parsed.host.as_deref(), parsed.http11) {
            let why = "this server answers only Host 127.0.0.1, localhost or [::1] with its port (DNS rebinding guard)";
            return refuse(&mut stream, 421, why, limits);
        }
        let response = handler(&parsed.request);
        let head_only = parsed.request.method == "HEAD";
        if send(&mut stream, &response, parsed.keep_alive, head_only, limits).is_err() || !parsed.keep_alive {
            return;
        }
    }
}

#[derive(Debug, PartialEq)]
enum HeadError {
    Closed,
    TooLarge,
    /// A head started but did not finish within the deadline (slowloris): 408.
    TimedOut,
    /// The deadline passed before any byte of a request arrived.
    Idle,
}

/// Reads until the blank line ending a request head, within the deadline and size; bytes after it (a
/// pipelined request) stay in `pending`.
fn read_head(stream: &mut TcpStream, pending: &mut Vec<u8>, limits: Limits) -> Result<Vec<u8>, HeadError> {
    let deadline = Instant::now() + limits.head_deadline;
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = head_end(pending) {
            let rest = pending.split_off(end);
            return Ok(std::mem::replace(pending, rest));
        }
        if pending.len() >= limits.head_bytes {
            return Err(HeadError::TooLarge);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Err(timed_out(pending));
        }
        let room = (limits.head_bytes - pending.len()).min(chunk.len());
        match stream.read(&mut chunk[..room]) {
            Ok(0) => return Err(HeadError::Closed),
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(timed_out(pending))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(HeadError::Closed),
        }
    }
}

/// A deadline passed: an idle connection when nothing of a request has come, a slow one otherwise.
fn timed_out(pending: &[u8]) -> HeadError {
    if pending.is_empty() {
        HeadError::Idle
    } else {
        HeadError::TimedOut
    }
}

/// Where the head ends (just past its blank line), tolerating bare LF line ends.
fn head_end(bytes: &[u8]) -> Option<usize> {
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

struct Parsed {
    request: Request,
    keep_alive: bool,
    http11: bool,
    /// Lower-cased.
    host: Option<String>,
}

/// The request line and the headers that matter: Connection, and whether a body follows (never read: the
/// connection closes after the answer instead).
fn parse_head(head: &[u8]) -> Option<Parsed> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.lines();
    let mut parts = lines.next()?.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || method.is_empty() || !target.starts_with(['/', '*', 'h']) {
        return None;
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return None,
    };
    let mut keep_alive = http11;
    let mut host = None;
    for line in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        let value = value.trim().to_ascii_lowercase();
        match name.trim().to_ascii_lowercase().as_str() {
            "connection" if value.contains("close") => keep_alive = false,
            "connection" if value.contains("keep-alive") => keep_alive = true,
            "content-length" if value != "0" => keep_alive = false,
            "transfer-encoding" => keep_alive = false,
            "host" => host = Some(value),
            _ => {}
        }
    }
    Some(Parsed { request: Request { method: method.into(), target: target.into() }, keep_alive, http11, host })
}

fn refuse(stream: &mut TcpStream, status: u16, why: &str, limits: Limits) {
    let _ = send(stream, &Response::text(status, &format!("{why}\n")), false, false, limits);
}

fn send(
    stream: &mut TcpStream,
    response: &Response,
    keep_alive: bool,
    head_only: bool,
    limits: Limits,
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: {}\r\n{GUARD_HEADERS}",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let deadline = Instant::now() + limits.write_deadline;
    write_before(stream, head.as_bytes(), deadline)?;
    if !head_only {
        write_before(stream, &response.body, deadline)?;
    }
    stream.flush()
}

/// Writes all of `bytes` unless the client takes longer than the deadline to read them.
fn write_before(stream: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(&bytes[..bytes.len().min(64 * 1024)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_ends_at_the_first_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET"), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.1\nHost: x\n\n"), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[test]
    fn parsing_keeps_method_target_and_connection() {
        let p = parse_head(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!((p.request.method.as_str(), p.request.target.as_str(), p.keep_alive), ("GET", "/metrics", true));
        assert!(!parse_head(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").unwrap().keep_alive);
        assert!(!parse_head(b"GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(parse_head(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap().keep_alive);
        assert!(!parse_head(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n").unwrap().keep_alive, "body never read");
    }

    #[test]
    fn malformed_heads_are_refused() {
        for head in [
            &b"GET /\r\n\r\n"[..],
            b"GET / HTTP/2\r\n\r\n",
            b"GET / HTTP/1.1 x\r\n\r\n",
            b"\xff / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET ../x HTTP/1.1\r\n\r\n",
        ] {
            assert!(parse_head(head).is_none(), "{}", String::from_utf8_lossy(head));
        }
    }

    /// A server with a 300 ms head deadline answering 200 "ok" to everything.
    fn short_deadline_server() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits { head_deadline: Duration::from_millis(300), ..LIMITS };
        spawn(listener, limits, Arc::new(|_: &Request| Response::text(200, "ok\n"))).unwrap();
        addr
    }

    /// Everything the server sends until it closes the connection.
    fn read_all(stream: &mut TcpStream) -> String {
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut all = Vec::new();
        let _ = stream.read_to_end(&mut all);
        String::from_utf8_lossy(&all).into_owned()
    }

    #[test]
    fn an_idle_keep_alive_connection_is_closed_silently_a_slow_head_gets_408() {
        let addr = short_deadline_server();
        let mut kept = TcpStream::connect(addr).unwrap();
        kept.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).unwrap();
        let said = read_all(&mut kept);
        assert!(said.starts_with("HTTP/1.1 200 OK\r\n") && said.ends_with("\r\n\r\nok\n"), "{said:?}");
        assert_eq!(said.matches("HTTP/1.1").count(), 1, "only the answer, no unsolicited 408: {said:?}");

        let mut silent = TcpStream::connect(addr).unwrap();
        assert_eq!(read_all(&mut silent), "", "a connection that never sent a byte is closed without a word");

        let mut slow = TcpStream::connect(addr).unwrap();
        slow.write_all(b"GET /metrics HTTP/1.1\r\nHo").unwrap();
        assert!(read_all(&mut slow).starts_with("HTTP/1.1 408 Request Timeout\r\n"), "a started head is refused");
    }

    #[test]
    fn refusals_carry_the_guard_headers_too() {
        let addr = short_deadline_server();
        let mut slow = TcpStream::connect(addr).unwrap();
        slow.write_all(b"GET /metrics HTTP/1.1\r\nHo").unwrap();
        let said = read_all(&mut slow);
        assert!(said.starts_with("HTTP/1.1 408 ") && said.contains(GUARD_HEADERS), "{said:?}");
        for head in [&b"GET / HTTP/9\r\n\r\n"[..], &[b'a'; 9000][..]] {
            let mut bad = TcpStream::connect(addr).unwrap();
            bad.write_all(head).unwrap();
            let said = read_all(&mut bad);
            assert!(said.starts_with("HTTP/1.1 4") && said.contains(GUARD_HEADERS), "{said:?}");
        }
    }

    #[test]
    fn on_loopback_only_its_own_host_names_are_answered() {
        let addr = short_deadline_server();
        let port = addr.port();
        let ask = |head: String| {
            let mut client = TcpStream::connect(addr).unwrap();
            client.write_all(head.as_bytes()).unwrap();
            read_all(&mut client)
        };
        for host in [format!("127.0.0.1:{port}"), format!("LocalHost:{port}"), format!("[::1]:{port}")] {
            let said = ask(format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"));
            assert!(said.starts_with("HTTP/1.1 200 OK\r\n"), "{host}: {said:?}");
        }
        assert!(ask("GET / HTTP/1.0\r\n\r\n".into()).starts_with("HTTP/1.1 200 "), "HTTP/1.0 may send no Host");
        for head in [
            format!("GET / HTTP/1.1\r\nHost: evil.example:{port}\r\n\r\n"),
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_string(),
            "GET / HTTP/1.1\r\n\r\n".to_string(),
        ] {
            let said = ask(head.clone());
            assert!(said.starts_with("HTTP/1.1 421 Misdirected Request\r\n"), "{head:?}: {said:?}");
            assert!(said.contains(GUARD_HEADERS) && said.ends_with("guard)\n"), "{said:?}");
        }
        assert_eq!(loopback_hosts("0.0.0.0:80".parse().unwrap()), None, "bound elsewhere: any Host");
    }

    #[test]
    fn workers_are_reused_and_every_job_runs() {
        let workers = Arc::new(Workers::default());
        let (done, finished) = std::sync::mpsc::channel();
        let threads = Arc::new(Mutex::new(std::collections::HashSet::new()));
        for round in 0..3 {
            for _ in 0..8 {
                let (done, threads) = (done.clone(), threads.clone());
                workers
                    .run(Box::new(move || {
                        threads.lock().unwrap().insert(std::thread::current().id());
                        std::thread::sleep(Duration::from_millis(20));
                        done.send(()).unwrap();
                    }))
                    .unwrap();
            }
            for _ in 0..8 {
                finished.recv_timeout(Duration::from_secs(10)).unwrap();
            }
            // Let every thread get back to waiting before the next round.
            while workers.idle.load(Ordering::SeqCst) < 8 {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(threads.lock().unwrap().len(), 8, "round {round}: the same 8 threads");
        }
    }

    #[test]
    fn a_full_table_pushes_out_the_longest_waiting_connection_never_a_busy_one() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let slots = Slots::default();
        let mut clients = vec![];
        let mut ids = vec![];
        for _ in 0..3 {
            clients.push(TcpStream::connect(addr).unwrap());
            ids.push(slots.insert(listener.accept().unwrap().0));
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(slots.make_room(4));
        slots.mark(ids[0], false); // answering: never pushed out
        assert!(slots.make_room(3));
        assert!(slots.table().contains_key(&ids[0]) && !slots.table().contains_key(&ids[1]));
        let mut byte = [0u8; 1];
        assert_eq!(clients[1].read(&mut byte).unwrap(), 0, "the pushed-out client sees its connection closed");
        slots.mark(ids[2], false);
        assert!(!slots.make_room(2), "everyone answering: no room");
    }
}
