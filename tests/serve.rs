//! `vigil serve`: the real binary on 127.0.0.1 (port 0), real databases changed under it (corrupted, locked by
//! another process, deleted), real clients on raw sockets (slow, idle, hostile), real signals, and a real
//! Prometheus (Debian's package) scraping it and evaluating the shipped dashboard's and rules' expressions.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use vigil_tests::http::{parse_reply, raw, request, wait_for, Serve};
use vigil_tests::*;

/// A database's entry in a /health body.
fn entry<'a>(body: &'a Json, db: &str) -> &'a Json {
    body["databases"].as_array().unwrap().iter().find(|d| d["db"] == db).unwrap_or_else(|| panic!("{db} in {body}"))
}

fn collected_at(body: &Json, db: &str) -> String {
    entry(body, db)["collected_at"].as_str().unwrap().to_string()
}

fn utc_now() -> String {
    let out = Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%S.%3NZ"]).output().unwrap();
    text(&out.stdout).trim().to_string()
}

/// The first /health answer whose collection of `db` started after `since` (RFC 3339 strings of one shape
/// compare as times): the refresh that must see a change made before `since`.
fn health_after(serve: &Serve, db: &str, since: &str) -> (u16, Json) {
    let found = wait_for(Duration::from_secs(30), || {
        let (code, body) = serve.health("/health");
        (collected_at(&body, db).as_str() > since).then_some((code, body))
    });
    found.unwrap_or_else(|| panic!("no refresh of {db} after {since}: {}", serve.log()))
}

/// The demo database `name` in `dir`, made by `vigil demo`.
fn demo(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let out = Command::new(cli_binary()).arg("demo").arg(&path).output().unwrap();
    assert_eq!(code(&out), 0, "{}", both(&out));
    path
}

#[test]
fn health_turns_503_within_one_refresh_when_a_database_is_corrupted_locked_or_deleted_and_200_when_repaired() {
    let dir = scratch();
    let a = demo(dir.path(), "a.db");
    demo(dir.path(), "b.db");
    let original = std::fs::read(&a).unwrap();
    let mut serve = Serve::start(dir.path(), &["a.db", "b.db", "--every", "200ms", "--quick", "--busy-timeout", "300"]);
    serve.wait_ready();
    let (code, body) = health_after(&serve, "a.db", &utc_now());
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["healthy"], true);
    assert_eq!(serve.health("/health/a.db").0, 200);

    let expect_503 = |what: &str, serve: &Serve, status: &str| {
        let (code, body) = health_after(serve, "a.db", &utc_now());
        assert_eq!(code, 503, "{what}: {body}");
        assert_eq!(entry(&body, "a.db")["status"], status, "{what}: {body}");
        assert_eq!(entry(&body, "b.db")["up"], true, "{what}: the other database is still collected: {body}");
        assert_eq!(serve.health("/health/a.db").0, 503, "{what}");
        assert_eq!(serve.health("/health/b.db").0, 200, "{what}: b.db alone is healthy");
        body
    };
    let expect_200 = |what: &str, serve: &Serve| {
        let (code, body) = health_after(serve, "a.db", &utc_now());
        assert_eq!(code, 200, "{what}: {body}");
    };

    // A b-tree page of the orders table, flipped: quick_check sees it.
    let page = 4096 * (root_page(&a, "orders") - 1);
    flip_bytes(&a, page, 16);
    let body = expect_503("b-tree page flipped", &serve, "critical");
    let failing = entry(&body, "a.db")["failing"].as_array().unwrap().clone();
    assert!(failing.iter().any(|f| f["status"] == "critical" && f["check"].is_string()), "{body}");
    std::fs::write(&a, &original).unwrap();
    expect_200("repaired", &serve);

    // The header's magic string, flipped: the file is no database at all.
    flip_bytes(&a, 0, 16);
    let body = expect_503("header flipped", &serve, "unknown");
    assert_eq!(entry(&body, "a.db")["up"], false);
    assert!(entry(&body, "a.db")["error"].as_str().unwrap().contains("a.db"), "{body}");
    std::fs::write(&a, &original).unwrap();
    expect_200("header repaired", &serve);

    let locker = Locker::lock(&a);
    let body = expect_503("locked by another process", &serve, "unknown");
    assert!(entry(&body, "a.db")["error"].as_str().unwrap().contains("locked"), "{body}");
    drop(locker);
    expect_200("released", &serve);

    let aside = dir.path().join("a.db.aside");
    std::fs::rename(&a, &aside).unwrap();
    let body = expect_503("deleted", &serve, "unknown");
    assert!(entry(&body, "a.db")["error"].as_str().unwrap().contains("no such file"), "{body}");
    std::fs::rename(&aside, &a).unwrap();
    expect_200("restored", &serve);

    let log = serve.log();
    assert!(log.contains("a.db: ok -> critical") || log.contains("a.db: warning -> critical"), "{log}");
    serve.signal("TERM");
    assert_eq!(serve.exit_within(Duration::from_secs(10)), Some(0), "{}", serve.log());
}

#[test]
fn unknown_paths_are_404_other_methods_405_head_has_no_body_and_nothing_is_read_from_disk() {
    let dir = scratch();
    demo(dir.path(), "shop.db");
    let odd = dir.path().join("we \"ird\\ ü.db");
    std::fs::copy(dir.path().join("shop.db"), &odd).unwrap();
    std::fs::write(dir.path().join("Cargo.toml"), "[package] secret").unwrap();
    let serve = Serve::start(dir.path(), &["shop.db", "we \"ird\\ ü.db", "--every", "1h"]);
    serve.wait_ready();

    let metrics = serve.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert_eq!(metrics.header("Content-Type").unwrap(), "text/plain; version=0.0.4; charset=utf-8");
    let head = request(serve.addr, "HEAD", "/metrics");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "HEAD has no body");
    assert_eq!(head.header("Content-Length"), Some(metrics.body.len().to_string()), "the cache did not change");

    let (code, all) = serve.health("/health");
    assert_eq!(code, 200, "{all}");
    let odd_name = all["databases"][1]["db"].as_str().unwrap().to_string();
    let encoded: String = odd_name.bytes().map(|b| format!("%{b:02X}")).collect();
    let (code, one) = serve.health(&format!("/health/{encoded}"));
    assert_eq!((code, one["databases"][0]["db"].as_str()), (200, Some(odd_name.as_str())));
    let head = request(serve.addr, "HEAD", "/health/shop.db");
    assert_eq!((head.status, head.body.len()), (200, 0));

    for path in [
        "/health/nope",
        "/health/..%2f..%2fetc%2fpasswd",
        "/health/..%2fCargo.toml",
        "/../Cargo.toml",
        "/Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/metrics/../../etc/passwd",
        "/shop.db",
        "/health/shop.db/x",
        "/etc/passwd",
    ] {
        let reply = serve.get(path);
        assert_eq!(reply.status, 404, "{path}: {}", reply.text());
        let body = String::from_utf8_lossy(&reply.body);
        assert!(!body.contains("secret") && !body.contains("root:") && !body.contains("SQLite format"), "{path}");
    }
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        for path in ["/metrics", "/health", "/health/shop.db"] {
            let reply = request(serve.addr, method, path);
            assert_eq!(reply.status, 405, "{method} {path}");
            assert_eq!(reply.header("Allow").as_deref(), Some("GET, HEAD"), "{method} {path}");
        }
    }
    let post = format!("POST /metrics HTTP/1.1\r\nHost: {}\r\nContent-Length: 4\r\n\r\nabcd", serve.addr);
    assert_eq!(raw(serve.addr, post.as_bytes()).status, 405);
    let garbage = raw(serve.addr, b"GARBAGE\r\n\r\n");
    assert_eq!(garbage.status, 400);
    // Refusals carry the browser guards too; a Host that is not this loopback address (DNS rebinding) gets 421.
    assert_eq!(garbage.header("Content-Security-Policy").as_deref(), Some("default-src 'self'"));
    assert_eq!(garbage.header("X-Content-Type-Options").as_deref(), Some("nosniff"));
    let port = serve.addr.port();
    for host in [format!("rebound.example:{port}"), "127.0.0.1".to_string()] {
        let rebound = raw(serve.addr, format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        assert_eq!(rebound.status, 421, "{host}");
        assert!(rebound.text().contains("DNS rebinding") && !rebound.text().contains("vigil_up"), "{host}");
        assert_eq!(rebound.header("Content-Security-Policy").as_deref(), Some("default-src 'self'"));
    }
    let localhost = raw(serve.addr, format!("GET /metrics HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n").as_bytes());
    assert_eq!(localhost.status, 200);
    assert_eq!(raw(serve.addr, b"GET /metrics HTTP/1.0\r\n\r\n").status, 200, "HTTP/1.0 may send no Host");
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    let mut stream = TcpStream::connect(serve.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = stream.write_all(huge.as_bytes()); // the server may close before taking it all
    let mut all = Vec::new();
    let _ = stream.read_to_end(&mut all);
    assert!(all.starts_with(b"HTTP/1.1 431 "), "{}", String::from_utf8_lossy(&all));
    assert_eq!(serve.get("/metrics").status, 200, "still serving");
}

#[test]
fn requests_are_answered_from_the_cache_never_from_the_database() {
    let dir = scratch();
    let db = demo(dir.path(), "shop.db");
    let serve = Serve::start(dir.path(), &["shop.db", "--every", "1h"]);
    serve.wait_ready();
    let (code, before) = serve.health("/health");
    assert_eq!(code, 200, "{before}");
    let metrics = serve.get("/metrics").body;
    // Gone, and then a directory in its place: no request notices until the next refresh, an hour away.
    std::fs::remove_file(&db).unwrap();
    std::fs::create_dir(&db).unwrap();
    for _ in 0..50 {
        let (code, now) = serve.health("/health");
        assert_eq!(
            (code, &now["generated_at"], &now["databases"]),
            (200, &before["generated_at"], &before["databases"])
        );
        assert_eq!(serve.get("/metrics").body, metrics);
    }
}

/// Reads one response of a kept-alive connection (head, then exactly Content-Length bytes of body), leaving the
/// connection at the next one; returns its status line.
fn read_one_response(reader: &mut BufReader<TcpStream>) -> String {
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    reader.read_exact(&mut vec![0u8; length]).unwrap();
    status
}

#[test]
fn keep_alive_connections_answer_several_requests() {
    let dir = scratch();
    demo(dir.path(), "shop.db");
    let serve = Serve::start(dir.path(), &["shop.db", "--every", "1h"]);
    serve.wait_ready();
    let mut stream = TcpStream::connect(serve.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    for path in ["/metrics", "/health", "/nope", "/metrics"] {
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", serve.addr).unwrap();
        let status = read_one_response(&mut reader);
        let expected = if path == "/nope" { " 404 " } else { " 200 " };
        assert!(status.contains(expected), "{path}: {status}");
    }
}

#[test]
fn an_idle_keep_alive_connection_is_closed_without_an_unsolicited_408() {
    let dir = scratch();
    demo(dir.path(), "shop.db");
    let serve = Serve::start(dir.path(), &["shop.db", "--every", "1h"]);
    serve.wait_ready();
    let mut stream = TcpStream::connect(serve.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {}\r\n\r\n", serve.addr).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    read_one_response(&mut reader);
    // Kept alive and idle past the 5 s head deadline, as Prometheus' connection between scrapes: closed, and
    // nothing sent that a client's next request could take for its answer.
    let waited = Instant::now();
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert_eq!(String::from_utf8_lossy(&rest), "", "closed after {:?}", waited.elapsed());
    // A head that started and stalled still gets its 408.
    let mut slow = TcpStream::connect(serve.addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHo").unwrap();
    let mut said = Vec::new();
    let _ = slow.read_to_end(&mut said);
    assert!(said.starts_with(b"HTTP/1.1 408 "), "{}", String::from_utf8_lossy(&said));
}

#[test]
fn file_names_with_newlines_or_escapes_cannot_forge_log_lines() {
    let dir = scratch();
    demo(dir.path(), "shop.db");
    let forger = "evil\nvigil serve: forged.db";
    std::fs::copy(dir.path().join("shop.db"), dir.path().join(forger)).unwrap();
    let missing = "gone\r\u{1b}Mvigil serve: fake.db"; // ESC M: a terminal's reverse line feed
    let out = Command::new(cli_binary())
        .args(["serve", "shop.db", forger, missing, "--listen", "127.0.0.1:0", "--every", "10ms", "--count", "1"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(code(&out), 3, "--count exits 3 when its last refresh could not read a database: {}", both(&out));
    let log = text(&out.stderr);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 4, "the address and one line per database:\n{log}");
    assert!(!log.contains(['\r', '\u{1b}']), "no raw control character: {log:?}");
    assert!(lines.iter().any(|l| l.starts_with("vigil serve: evil\\nvigil serve: forged.db: ")), "{log}");
    assert!(lines.iter().any(|l| l.starts_with("vigil serve: gone\\r\\x1bMvigil serve: fake.db: unknown: ")), "{log}");
    assert!(log.contains("\\x1bMvigil serve: fake.db: no such file"), "the error's path escaped too: {log}");
    assert!(
        lines.iter().all(|l| !l.starts_with("vigil serve: forged") && !l.starts_with("vigil serve: fake")),
        "{log}"
    );
}

#[test]
fn a_refresh_blocked_by_a_lock_within_the_busy_timeout_leaves_the_other_databases_healthy() {
    let dir = scratch();
    let a = demo(dir.path(), "a.db");
    demo(dir.path(), "b.db");
    // 3 × --every (300 ms) is far shorter than the busy timeout: each refresh now waits 2 s for a.db.
    let serve = Serve::start(dir.path(), &["a.db", "b.db", "--every", "100ms", "--busy-timeout", "2000"]);
    serve.wait_ready();
    let locker = Locker::lock(&a);
    let started = Instant::now();
    let mut probes = 0;
    while started.elapsed() < Duration::from_secs(5) {
        let (code, body) = serve.health("/health/b.db");
        assert_eq!((code, &body["stale"]), (200, &Json::Bool(false)), "after {:?}: {body}", started.elapsed());
        probes += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, body) = health_after(&serve, "a.db", &utc_now());
    assert_eq!(code, 503, "{body}");
    assert_eq!(entry(&body, "a.db")["status"], "unknown", "{body}");
    assert_eq!(body["stale"], false, "{body}");
    drop(locker);
    eprintln!("{probes} probes of b.db answered 200 while every refresh waited 2 s for a.db");
}

#[test]
fn a_client_sending_one_byte_a_second_is_dropped_while_metrics_keeps_answering() {
    let dir = scratch();
    demo(dir.path(), "shop.db");
    let serve = Serve::start(dir.path(), &["shop.db", "--every", "1h"]);
    serve.wait_ready();
    let addr = serve.addr;
    let slow = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        let request = b"GET /metrics HTTP/1.1\r\nHost: a-slow-client.example\r\nUser-Agent: one-byte-a-second\r\n\r\n";
        let started = Instant::now();
        for (sent, byte) in request.iter().enumerate() {
            if stream.write_all(&[*byte]).is_err() {
                return (sent, request.len(), started.elapsed(), Vec::new());
            }
            std::thread::sleep(Duration::from_secs(1));
            // Closed by the server? A read that does not block tells.
            stream.set_nonblocking(true).unwrap();
            let mut buffer = [0u8; 512];
            let answer = stream.read(&mut buffer);
            stream.set_nonblocking(false).unwrap();
            match answer {
                Ok(n) => return (sent + 1, request.len(), started.elapsed(), buffer[..n].to_vec()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return (sent + 1, request.len(), started.elapsed(), Vec::new()),
            }
        }
        (request.len(), request.len(), started.elapsed(), b"the whole request went through".to_vec())
    });
    let mut answered = 0;
    while !slow.is_finished() {
        let reply = serve.get("/metrics");
        assert_eq!(reply.status, 200, "another client is answered meanwhile");
        answered += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    let (sent, request_len, after, said) = slow.join().unwrap();
    assert!(sent < request_len, "the slow client was dropped before it finished its head ({sent} bytes, {after:?})");
    assert!(said.is_empty() || said.starts_with(b"HTTP/1.1 408 "), "{}", String::from_utf8_lossy(&said));
    assert!(answered >= 10, "{answered} answers to the other client");
    eprintln!("slow client dropped after {sent} bytes, {after:?}; {answered} scrapes answered meanwhile");
}

#[test]
fn many_idle_connections_do_not_stop_service() {
    let dir = scratch();
    demo(dir.path(), "shop.db");
    let serve = Serve::start(dir.path(), &["shop.db", "--every", "1h"]);
    serve.wait_ready();
    // More than the server keeps open (128): silent ones, and ones that sent half a request.
    let mut idle = Vec::new();
    for i in 0..300 {
        let mut stream = TcpStream::connect(serve.addr).unwrap();
        if i % 2 == 0 {
            stream.write_all(b"GET /metrics HTTP/1.1\r\nHost:").unwrap();
        }
        idle.push(stream);
    }
    for _ in 0..20 {
        assert_eq!(serve.get("/metrics").status, 200);
        assert_eq!(serve.health("/health").0, 200);
    }
    // The oldest idle connections were pushed out to make room.
    let mut closed = 0;
    for stream in &mut idle {
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut buffer = [0u8; 64];
        let reset = |e: &std::io::Error| e.kind() == std::io::ErrorKind::ConnectionReset;
        if matches!(stream.read(&mut buffer), Ok(0)) || stream.read(&mut buffer).is_err_and(|e| reset(&e)) {
            closed += 1;
        }
    }
    assert!(closed > 0, "no idle connection was pushed out");
}

#[test]
fn sigterm_and_sigint_stop_it_with_exit_0_also_while_a_database_is_locked() {
    let dir = scratch();
    let db = demo(dir.path(), "shop.db");
    for signal in ["TERM", "INT"] {
        let mut serve = Serve::start(dir.path(), &["shop.db", "--every", "100ms"]);
        serve.wait_ready();
        let sent = Instant::now();
        serve.signal(signal);
        assert_eq!(serve.exit_within(Duration::from_secs(10)), Some(0), "SIG{signal}: {}", serve.log());
        let said = wait_for(Duration::from_secs(5), || {
            serve.log().ends_with(&format!("stopped by SIG{signal}")).then_some(())
        });
        assert!(said.is_some(), "{}", serve.log());
        eprintln!("SIG{signal}: exited 0 after {:?}", sent.elapsed());
    }
    // A refresh waiting for a lock (for up to 60 s) is interrupted.
    let locker = Locker::lock(&db);
    let mut serve = Serve::start(dir.path(), &["shop.db", "--every", "100ms", "--busy-timeout", "60000"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(serve.get("/metrics").status, 503, "the first refresh is still waiting for the lock");
    let sent = Instant::now();
    serve.signal("TERM");
    let code = serve.exit_within(Duration::from_secs(20));
    drop(locker);
    assert_eq!(code, Some(0), "{}", serve.log());
    eprintln!("SIGTERM during a locked refresh: exited 0 after {:?}", sent.elapsed());
}

#[test]
fn databases_are_never_written_over_many_scrapes_and_refreshes() {
    let dir = scratch();
    let db = demo(dir.path(), "shop.db");
    let before = (sha256sum(&db), std::fs::metadata(&db).unwrap().modified().unwrap());
    let listing = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    };
    // A WAL database no other process has open: its file is not written either (SQLite's read-only open still
    // makes the -wal and -shm it needs when they are missing, empty, in its own directory).
    std::fs::create_dir(dir.path().join("wal")).unwrap();
    let wal = dir.path().join("wal/app.db");
    std::fs::copy(&db, &wal).unwrap();
    rusqlite::Connection::open(&wal).unwrap().query_row("PRAGMA journal_mode = wal", [], |_| Ok(())).unwrap();
    let wal_before = (sha256sum(&wal), std::fs::metadata(&wal).unwrap().modified().unwrap());
    let files = listing(dir.path());
    let serve = Serve::start(dir.path(), &["shop.db", "wal/app.db", "--every", "50ms", "--quick"]);
    serve.wait_ready();
    let first = serve.health("/health").1["generated_at"].clone();
    for _ in 0..200 {
        assert_eq!(serve.get("/metrics").status, 200);
        assert!(matches!(serve.health("/health/shop.db").0, 200 | 503));
        assert_eq!(serve.health("/health/app.db").1["databases"][0]["up"], true);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_ne!(serve.health("/health").1["generated_at"], first, "refreshed meanwhile");
    assert_eq!(listing(dir.path()), files, "no -journal, -wal or -shm created");
    drop(serve);
    let after = (sha256sum(&db), std::fs::metadata(&db).unwrap().modified().unwrap());
    assert_eq!(before, after, "bytes and mtime unchanged");
    let wal_after = (sha256sum(&wal), std::fs::metadata(&wal).unwrap().modified().unwrap());
    assert_eq!(wal_before, wal_after, "the WAL database's bytes and mtime unchanged");
    eprintln!("beside the WAL database: {:?}", listing(&dir.path().join("wal")));
}

#[test]
fn promtool_check_metrics_passes_on_metrics_with_odd_database_names() {
    let dir = scratch();
    demo(dir.path(), "shop.db");
    for name in ["we \"ird\".db", "back\\slash.db", "spa ce.db", "ünï€ode.db"] {
        std::fs::copy(dir.path().join("shop.db"), dir.path().join(name)).unwrap();
    }
    let serve = Serve::start(dir.path(), &["*.db", "--every", "1h"]);
    serve.wait_ready();
    let metrics = serve.get("/metrics");
    let text = String::from_utf8(metrics.body).unwrap();
    for name in ["we \\\"ird\\\".db", "back\\\\slash.db", "spa ce.db", "ünï€ode.db"] {
        assert!(text.contains(&format!("db=\"{name}\"")), "{name} escaped in:\n{text}");
    }
    assert_eq!(promtool_check(&text), (0, String::new()), "promtool says nothing of a clean exposition");
}

#[test]
fn bad_flags_are_usage_errors_and_other_addresses_are_announced() {
    let dir = scratch();
    demo(dir.path(), "shop.db");
    for (args, says) in [
        (&["shop.db", "--every", "5x"][..], "--every"),
        (&["shop.db", "--every", "1ms"][..], "at least 10ms"),
        (&["shop.db", "--listen", "localhost:1"][..], "IP:PORT"),
        (&["nothing-*.db"][..], "nothing-*.db"),
        (&["shop.db", "--quick", "--full"][..], "--full"),
    ] {
        let out = Command::new(cli_binary()).arg("serve").args(args).current_dir(dir.path()).output().unwrap();
        assert_eq!(code(&out), 64, "{args:?}: {}", both(&out));
        assert!(text(&out.stderr).contains(says), "{args:?}: {}", both(&out));
    }
    // The port is taken: a clear error naming --listen.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(cli_binary())
        .args(["serve", "shop.db", "--listen", &addr])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(code(&out), 64, "{}", both(&out));
    assert!(text(&out.stderr).contains(&format!("cannot listen on {addr}")), "{}", both(&out));
    assert!(text(&out.stderr).contains("--listen"), "{}", both(&out));

    // Any address: served, and said on stderr.
    let out = Command::new(cli_binary())
        .args(["serve", "shop.db", "--listen", "0.0.0.0:0", "--every", "10ms", "--count", "2"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", both(&out));
    assert!(text(&out.stderr).contains("0.0.0.0 is not a loopback address"), "{}", both(&out));
    let out = Command::new(cli_binary())
        .args(["serve", "shop.db", "--listen", "127.0.0.1:0", "--every", "10ms", "--count", "1"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", both(&out));
    assert!(!text(&out.stderr).contains("loopback"), "{}", both(&out));
}

/// `--count N` is a smoke test: it must fail (3, as `vigil metrics`) when the last refresh could not read a
/// database, and pass (0) when it could.
#[test]
fn count_exits_3_when_the_last_refresh_could_not_read_a_database() {
    let dir = scratch();
    demo(dir.path(), "shop.db");
    let serve = |dbs: &[&str]| {
        let out = Command::new(cli_binary())
            .arg("serve")
            .args(dbs)
            .args(["--listen", "127.0.0.1:0", "--every", "10ms", "--count", "2"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        (code(&out), text(&out.stderr))
    };
    let (status, err) = serve(&["shop.db", "gone.db"]);
    assert_eq!(status, 3, "{err}");
    assert!(err.contains("gone.db: unknown"), "{err}");
    assert_eq!(serve(&["shop.db"]).0, 0);
}

/// `--threshold` (vigil health's syntax) reaches vigil_metrics: a check made critical turns /health to 503;
/// check details speak CLI (`vigil backup DB DIR/`), not SQL.
#[test]
fn thresholds_turn_health_503_and_details_name_cli_commands() {
    let dir = scratch();
    demo(dir.path(), "shop.db");
    let serve = Serve::start(dir.path(), &["shop.db", "--every", "10s"]);
    serve.wait_ready();
    let (status, body) = serve.health("/health/shop.db");
    assert_eq!(status, 200, "{body}");
    let details = body.to_string();
    assert!(details.contains("vigil backup shop.db /path/to/backups/"), "{details}");
    assert!(!details.contains("SELECT"), "{details}");
    drop(serve);

    let serve = Serve::start(dir.path(), &["shop.db", "--every", "10s", "--threshold", "file_size=1,1"]);
    serve.wait_ready();
    let (status, body) = serve.health("/health/shop.db");
    assert_eq!(status, 503, "{body}");
    assert!(body.to_string().contains("\"check\":\"file_size\""), "{body}");
    let metrics = serve.get("/metrics").text();
    assert!(metrics.contains("vigil_health_status{db=\"shop.db\",check=\"file_size\"} 2"), "{metrics}");
    drop(serve);

    let out = Command::new(cli_binary())
        .args(["serve", "shop.db", "--threshold", "nonsense", "--count", "1"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(code(&out), 64, "{}", both(&out));
    assert!(text(&out.stderr).contains("--threshold 'nonsense': expected NAME=WARNING[,CRITICAL]"), "{}", both(&out));
}

// ---------------------------------------------------------------------------------------------------------------
// A real Prometheus.

/// A port nobody listens on now (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Debian's prometheus on loopback, killed when dropped.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn scraping(target: SocketAddr) -> Prometheus {
        let dir = scratch();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: vigil\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new("/usr/bin/prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("/usr/bin/prometheus (Debian package prometheus; scripts/setup installs it)");
        Prometheus { child, addr, _dir: dir }
    }

    /// An instant query through the HTTP API: (status, result).
    fn query(&self, expr: &str) -> Option<(String, Json)> {
        let encoded: String = expr
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let mut stream = TcpStream::connect(self.addr).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let path = format!("/api/v1/query?query={encoded}");
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.addr).ok()?;
        let mut all = Vec::new();
        stream.read_to_end(&mut all).ok()?;
        let reply = parse_reply(&all);
        let body = if reply.header("Transfer-Encoding").is_some_and(|v| v.contains("chunked")) {
            unchunk(&reply.body)
        } else {
            reply.body
        };
        let json: Json = serde_json::from_slice(&body).ok()?;
        Some((json["status"].as_str()?.to_string(), json["data"]["result"].clone()))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unchunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = body.windows(2).position(|w| w == b"\r\n") else { return out };
        let size = usize::from_str_radix(String::from_utf8_lossy(&body[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[end + 2..end + 2 + size]);
        body = &body[end + 2 + size + 2..];
    }
}

/// Every `expr` of the shipped dashboard's panels, Grafana's variables replaced by what matches everything.
fn dashboard_exprs(path: &Path) -> Vec<String> {
    let dashboard: Json = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    exprs
        .into_iter()
        .map(|e| {
            e.replace("$__rate_interval", "1m")
                .replace("$__interval", "1m")
                .replace("$__range", "5m")
                .replace("${db}", ".*")
                .replace("$db", ".*")
                .replace("${job}", ".*")
                .replace("$job", ".*")
        })
        .collect()
}

fn collect_exprs(value: &Json, out: &mut Vec<String>) {
    match value {
        Json::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", Json::String(expr)) if !expr.is_empty() => out.push(expr.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        Json::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// Every `expr:` of the shipped rules file (one line each, or a folded/literal block under it).
fn rule_exprs(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut exprs = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else { continue };
        let rest = rest.trim();
        if rest.is_empty() || rest == "|" || rest == ">" || rest.starts_with("|-") || rest.starts_with(">-") {
            let indent = line.len() - line.trim_start().len();
            let block: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim())
                .collect();
            exprs.push(block.join(" "));
        } else {
            exprs.push(rest.trim_matches(|c| c == '\'' || c == '"').to_string());
        }
    }
    exprs
}

/// An alert rule's expression is empty while nothing is wrong; the series it compares must exist: the
/// expression with its last comparison (`> 0`, `== 2`, `< 0`…) taken off.
fn without_threshold(expr: &str) -> String {
    let comparison = regex::Regex::new(r"(?s)^(.*?)\s*(==|!=|>=|<=|>|<)\s*(bool\s+)?[-+0-9.e*/() ]+$").unwrap();
    match comparison.captures(expr.trim()) {
        Some(c) => c[1].to_string(),
        None => expr.to_string(),
    }
}

/// An application's statements timed with query_stats_start() and saved with query_stats_save() (some of them
/// slow: the threshold is 0 ms), so that the exposition has query histograms and per-statement series.
/// An application's statements timed with query_stats_start() and saved with query_stats_save() (every one of
/// them slow: the threshold is 0 ms), so that the exposition has query histograms and per-statement series.
fn save_query_stats(db: &Path) {
    let conn = Rusqlite::open(db);
    rows(&conn, r#"SELECT query_stats_start('{"slow_ms": 0}')"#).unwrap();
    for id in 1..=50 {
        rows(&conn, &format!("SELECT * FROM customers WHERE id = {id}")).unwrap();
        rows(&conn, "SELECT count(*) FROM orders").unwrap();
    }
    let saved = rows(&conn, "SELECT query_stats_save() AS saved").unwrap();
    assert!(saved[0]["saved"].as_str().unwrap().contains("\"saved\""), "{saved:?}");
}

#[test]
fn a_real_prometheus_scrapes_serve_and_every_dashboard_and_rule_expression_returns_data() {
    let dir = scratch();
    let db = demo(dir.path(), "shop.db");
    let backup = Command::new(cli_binary()).arg("backup").arg(&db).arg("backups/").current_dir(dir.path()).output();
    let backup = backup.unwrap();
    assert_eq!(code(&backup), 0, "{}", both(&backup));
    save_query_stats(&db);
    let serve = Serve::start(dir.path(), &["shop.db", "--every", "500ms", "--backups", "backups", "--statements", "5"]);
    serve.wait_ready();
    let prometheus = Prometheus::scraping(serve.addr);

    let up = wait_for(Duration::from_secs(60), || {
        let (_, result) = prometheus.query("up{job=\"vigil\"}")?;
        (result[0]["value"][1] == "1").then_some(())
    });
    assert!(up.is_some(), "Prometheus never saw the target up");
    // rate() and deriv() need two samples in their window, and more scrapes make them steadier.
    std::thread::sleep(Duration::from_secs(4));

    let (_, result) = prometheus.query("vigil_up{db=\"shop.db\"}").unwrap();
    assert_eq!(result[0]["value"][1], "1", "{result}");
    let (_, result) = prometheus.query("count(vigil_health_status{db=\"shop.db\"})").unwrap();
    assert!(result[0]["value"][1].as_str().unwrap().parse::<u32>().unwrap() >= 10, "{result}");

    let dashboard = root().join("contrib/grafana/vigil-dashboard.json");
    let rules = root().join("contrib/prometheus/vigil.rules.yml");
    // (where from, an expression that must return data); serve's own series too.
    let mut checks: Vec<(String, String)> = vec![("serve".into(), "vigil_serve_refresh_duration_seconds".into())];
    for expr in dashboard_exprs(&dashboard) {
        checks.push(("dashboard".into(), expr));
    }
    let rule_count = rule_exprs(&rules).len();
    let mut absent_rules = 0;
    for expr in rule_exprs(&rules) {
        match expr.trim().strip_prefix("absent(").and_then(|e| e.strip_suffix(')')) {
            // absent(X) is empty while X exists: X must return data and absent(X) none.
            Some(inner) => {
                checks.push(("rule (the series absent() watches)".into(), inner.to_string()));
                let (status, result) = prometheus.query(&expr).unwrap();
                assert_eq!((status.as_str(), &result), ("success", &serde_json::json!([])), "{expr} with data");
                absent_rules += 1;
            }
            None => checks.push(("rule".into(), without_threshold(&expr))),
        }
    }
    assert_eq!(absent_rules, 1, "VigilMetricsAbsent's absent(vigil_up) is checked");
    assert!(checks.len() >= 20 && rule_count >= 5, "{checks:?}");
    let mut failures = Vec::new();
    for (what, expr) in &checks {
        match prometheus.query(expr) {
            Some((status, result)) if status == "success" && result.as_array().is_some_and(|r| !r.is_empty()) => {}
            other => failures.push(format!("{what}: {expr}: {other:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} expressions returned no data:\n{}",
        failures.len(),
        checks.len(),
        failures.join("\n")
    );
    eprintln!("{} expressions returned data", checks.len());
}
