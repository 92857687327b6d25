//! `vigil serve` under load: `/metrics` from the cache under 50 concurrent clients (p50/p99 latency) and the
//! resident memory of the server sampled over 10,000 scrapes (it must stay flat), next to a reference measured
//! in the same run: Python's `http.server` (a ThreadingHTTPServer) serving the same bytes as a static file.
//!
//! cargo build --release --workspace && cargo run --release -p vigil-bench --bin serve [-- DATABASES]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "../common.rs"]
#[allow(dead_code)]
mod common;

const CLIENTS: usize = 50;
const SCRAPES: usize = 10_000;

/// A server process, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn vigil() -> PathBuf {
    common::root().join("target/release/vigil")
}

/// `count` demo databases in `dir`.
fn databases(dir: &Path, count: usize) {
    for i in 0..count {
        let path = dir.join(format!("db{i:03}.db"));
        let ok = Command::new(vigil()).arg("demo").arg(&path).output().expect("cargo build --release first");
        assert!(ok.status.success(), "vigil demo: {}", String::from_utf8_lossy(&ok.stderr));
    }
}

fn start_vigil(dir: &Path) -> Server {
    let mut child = Command::new(vigil())
        .args(["serve", "*.db", "--listen", "127.0.0.1:0", "--every", "1s"])
        .current_dir(dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    stderr.read_line(&mut first).unwrap();
    // Keep draining stderr so status lines never block the server.
    std::thread::spawn(move || for _ in stderr.lines() {});
    let addr = first.split("http://").nth(1).and_then(|r| r.split_whitespace().next()).unwrap().parse().unwrap();
    let server = Server { child, addr };
    let started = Instant::now();
    while get(server.addr, "/metrics").0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(60), "no first refresh");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

fn start_python(dir: &Path) -> Server {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("/usr/bin/python3")
        .args(["-m", "http.server", "--bind", "127.0.0.1", &port.to_string(), "--directory"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server { child, addr: format!("127.0.0.1:{port}").parse().unwrap() };
    let started = Instant::now();
    while TcpStream::connect(server.addr).is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "python3 -m http.server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// One GET on a fresh connection: (status, body).
fn get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let Ok(mut stream) = TcpStream::connect(addr) else { return (0, vec![]) };
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    if stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).is_err()
    {
        return (0, vec![]);
    }
    let mut all = Vec::new();
    if stream.read_to_end(&mut all).is_err() {
        return (0, vec![]);
    }
    let Some(end) = all.windows(4).position(|w| w == b"\r\n\r\n") else { return (0, vec![]) };
    let status = String::from_utf8_lossy(&all[..end]).split_whitespace().nth(1).and_then(|s| s.parse().ok());
    (status.unwrap_or(0), all[end + 4..].to_vec())
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

struct Run {
    latencies: Vec<Duration>,
    failures: usize,
    wall: Duration,
    rss: Vec<u64>,
}

/// GETs on one kept-alive connection, as Prometheus scrapes: (status, body length) of each.
struct KeptAlive {
    reader: BufReader<TcpStream>,
    stream: TcpStream,
    addr: SocketAddr,
}

impl KeptAlive {
    fn connect(addr: SocketAddr) -> KeptAlive {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        KeptAlive { reader: BufReader::new(stream.try_clone().unwrap()), stream, addr }
    }

    fn get(&mut self, path: &str) -> (u16, usize) {
        // One write: a request split over several would wait on Nagle's algorithm for the server's delayed ACK.
        if self.stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr).as_bytes()).is_err() {
            return (0, 0);
        }
        let (mut status, mut length) = (0, 0);
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).unwrap_or(0) == 0 {
                return (0, 0);
            }
            if line == "\r\n" {
                break;
            }
            if line.starts_with("HTTP/") {
                status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        match self.reader.read_exact(&mut body) {
            Ok(()) => (status, length),
            Err(_) => (0, 0),
        }
    }
}

/// `SCRAPES` requests of `path` from `CLIENTS` threads (a connection per request, or one kept alive per
/// client); the server's RSS sampled every 500 requests.
fn load(server: &Server, path: &str, expected_len: usize) -> Run {
    load_with(server, path, expected_len, false)
}

fn load_with(server: &Server, path: &str, expected_len: usize, keep_alive: bool) -> Run {
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let addr = server.addr;
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (done, path) = (done.clone(), path.to_string());
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                let mut failures = 0;
                let mut connection = keep_alive.then(|| KeptAlive::connect(addr));
                while done.fetch_add(1, Ordering::Relaxed) < SCRAPES {
                    let t = Instant::now();
                    let (status, length) = match connection.as_mut() {
                        Some(kept) => kept.get(&path),
                        None => {
                            let (status, body) = get(addr, &path);
                            (status, body.len())
                        }
                    };
                    latencies.push(t.elapsed());
                    if status != 200 || length < expected_len / 2 {
                        failures += 1;
                    }
                }
                (latencies, failures)
            })
        })
        .collect();
    let mut rss = vec![rss_kib(server.child.id())];
    let mut next = 500;
    while !workers.iter().all(|w| w.is_finished()) {
        if done.load(Ordering::Relaxed) >= next {
            rss.push(rss_kib(server.child.id()));
            next += 500;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    rss.push(rss_kib(server.child.id()));
    let wall = started.elapsed();
    let mut run = Run { latencies: vec![], failures: 0, wall, rss };
    for worker in workers {
        let (latencies, failures) = worker.join().unwrap();
        run.latencies.extend(latencies);
        run.failures += failures;
    }
    run.latencies.sort();
    run
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn report(name: &str, run: &Run) -> (f64, f64) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (p50, p99) = (ms(percentile(&run.latencies, 0.50)), ms(percentile(&run.latencies, 0.99)));
    let (first, last) = (run.rss[0], *run.rss.last().unwrap());
    let (min, max) = (*run.rss.iter().min().unwrap(), *run.rss.iter().max().unwrap());
    println!(
        "{name:<34} p50 {p50:>7.2} ms  p99 {p99:>7.2} ms  max {:>7.2} ms  {:>6.0} req/s  failures {}  \
         RSS KiB first {first} last {last} min {min} max {max}",
        ms(*run.latencies.last().unwrap()),
        run.latencies.len() as f64 / run.wall.as_secs_f64(),
        run.failures
    );
    (p50, p99)
}

fn main() {
    let databases_wanted: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    let dir = std::env::temp_dir().join(format!("vigil-bench-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("static")).unwrap();
    databases(&dir, databases_wanted);

    println!(
        "load average (/proc/loadavg) at the start: {}",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    let vigil_server = start_vigil(&dir);
    let (_, body) = get(vigil_server.addr, "/metrics");
    std::fs::write(dir.join("static/metrics"), &body).unwrap();
    println!(
        "/metrics of {databases_wanted} databases: {} bytes; {CLIENTS} concurrent clients, {SCRAPES} scrapes each run, \
         a connection per request (the reference closes every connection)",
        body.len()
    );
    let python = start_python(&dir.join("static"));

    // Warm both once, then measure in turn.
    let _ = load(&python, "/metrics", body.len());
    let vigil_run = load(&vigil_server, "/metrics", body.len());
    let python_run = load(&python, "/metrics", body.len());
    let (_, vigil_p99) = report("vigil serve /metrics (cache)", &vigil_run);
    let (_, python_p99) = report("python3 -m http.server (same bytes)", &python_run);
    let kept = load_with(&vigil_server, "/metrics", body.len(), true);
    report("vigil serve /metrics, kept alive", &kept);
    let health = load(&vigil_server, "/health", 10);
    report("vigil serve /health (JSON per request)", &health);
    // Memory that /health's per-request JSON leaves with the allocator's per-thread arenas is bounded: a second
    // run must not grow it again.
    let again = load(&vigil_server, "/health", 10);
    report("vigil serve /health, again", &again);
    println!(
        "p99 ratio vigil/python {:.2} (goal: p99 <= 50 ms: {})",
        vigil_p99 / python_p99,
        if vigil_p99 <= 50.0 { "met" } else { "NOT met" }
    );
    let rss = &vigil_run.rss;
    println!(
        "vigil serve RSS over {SCRAPES} scrapes: {} -> {} KiB (growth {} KiB; samples every 500 scrapes: {:?})",
        rss[0],
        rss.last().unwrap(),
        *rss.last().unwrap() as i64 - rss[0] as i64,
        rss
    );
    println!(
        "load average (/proc/loadavg) at the end: {}",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    drop(vigil_server);
    drop(python);
    let _ = std::fs::remove_dir_all(&dir);
}
