//! A running `vigil serve` and a plain HTTP/1.1 client for its tests: one request per connection, read to the
//! end, and a poller for conditions that a server reaches within some time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Reply {
    /// Head and body, for failure messages.
    pub fn text(&self) -> String {
        format!("{}\n{}", self.head, String::from_utf8_lossy(&self.body))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// One HTTP/1.1 request on a fresh connection (Connection: close), read to the end.
pub fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
    raw(addr, format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
}

/// Sends `bytes` as they are and reads the answer to the end of the connection.
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream.write_all(bytes).unwrap();
    let mut all = Vec::new();
    stream.read_to_end(&mut all).unwrap();
    parse_reply(&all)
}

pub fn parse_reply(all: &[u8]) -> Reply {
    let end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| {
        panic!("no HTTP head in {:?}", String::from_utf8_lossy(all));
    });
    let head = String::from_utf8_lossy(&all[..end]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    Reply { status, head, body: all[end + 4..].to_vec() }
}

/// Polls `probe` every 50 ms until it gives a value or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if started.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `vigil serve`, killed when dropped (also when a test fails).
pub struct Serve {
    pub child: Child,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    /// Starts `vigil serve ARGS --listen 127.0.0.1:0` in `dir` and waits for the line naming its address.
    pub fn start(dir: &Path, args: &[&str]) -> Serve {
        let mut child = Command::new(super::cli_binary())
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let pipe = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in pipe.lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let mut serve = Serve { child, addr: "127.0.0.1:0".parse().unwrap(), stderr };
        let found = wait_for(Duration::from_secs(30), || {
            let lines = serve.stderr.lock().unwrap();
            let first = lines.first()?;
            let rest = first.split("listening on http://").nth(1)?;
            rest.split_whitespace().next()?.parse::<SocketAddr>().ok()
        });
        serve.addr = found.unwrap_or_else(|| panic!("vigil serve did not announce its address: {}", serve.log()));
        serve
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A 200 answer's JSON.
    pub fn json(&self, path: &str) -> Json {
        let reply = self.get(path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        serde_json::from_slice(&reply.body).unwrap()
    }

    pub fn get(&self, path: &str) -> Reply {
        request(self.addr, "GET", path)
    }

    /// /health's JSON once the first refresh is in the cache.
    pub fn health(&self, path: &str) -> (u16, Json) {
        let reply = self.get(path);
        (reply.status, serde_json::from_slice(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.text())))
    }

    pub fn wait_ready(&self) {
        let ready = wait_for(Duration::from_secs(30), || (self.get("/metrics").status == 200).then_some(()));
        assert!(ready.is_some(), "no refresh finished: {}", self.log());
    }

    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill").args(["-s", name, &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok, "kill -s {name}");
    }

    /// The exit code once it ended, waiting up to `limit`.
    pub fn exit_within(&mut self, limit: Duration) -> Option<i32> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
