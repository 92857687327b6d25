//! A real Alertmanager (Debian's prometheus-alertmanager) on loopback for the tests of the fleet path: it routes
//! every alert to one webhook at once (group_wait 500 ms) and each change within a second (group_interval 1s),
//! resolved ones included. Killed when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = "/usr/bin/prometheus-alertmanager";

pub struct Alertmanager {
    child: Child,
    /// `http://127.0.0.1:PORT`: what `--alertmanager` takes.
    pub url: String,
    dir: tempfile::TempDir,
}

impl Alertmanager {
    pub fn start(hook: &str) -> Alertmanager {
        let dir = super::scratch();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "route:\n  receiver: hook\n  group_by: [alertname, db, check]\n  group_wait: 500ms\n  \
                 group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n- name: hook\n  webhook_configs:\n  \
                 - url: {hook}\n    send_resolved: true\n"
            ),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).unwrap();
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{BINARY}: {e} (Debian package prometheus-alertmanager; scripts/setup installs it)")
            });
        let am = Alertmanager { child, url: format!("http://127.0.0.1:{port}"), dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while get_status(port, "/-/ready") != Some(200) {
            assert!(Instant::now() < deadline, "alertmanager did not become ready: {}", am.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        am
    }

    /// What Alertmanager logged, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("alertmanager.log")).unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
}
