//! vigil's maintenance benchmarks, in one run:
//! - vacuum_if_fragmented over its threshold vs plain `VACUUM`, both in the system `sqlite3` shell on fresh
//!   copies of the same fragmented 1 GiB file, rollback journal and WAL (goal ≤ 1.0×);
//! - the skip decision on 100 MiB and 1 GiB files under the threshold (goal ≤ 50 ms, flat);
//! - maintain light and standard on the vacuumed file;
//! - the WAL before/after a truncating checkpoint while a writer commits continuously.
//!
//!   cargo run --release -p vigil-bench --bin maintenance
//!
//! Files: bench/data/vacuum-1024.db (make_db.py --fragment 31: 26 % free pages) and
//! bench/data/health-{100,1024}.db (--fragment 20: 16 % free), generated when missing.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ensure, library, root};
use rusqlite::{Connection, OpenFlags};

fn open(db: &Path) -> Connection {
    common::open(db, OpenFlags::default())
}

/// A fresh copy of `source` in `journal_mode`, flushed to disk so that no earlier write is still pending.
fn fresh_copy(source: &Path, copy: &Path, journal_mode: &str) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", copy.display()));
    }
    std::fs::copy(source, copy).unwrap();
    let conn = Connection::open(copy).unwrap();
    let _: String = conn.query_row(&format!("PRAGMA journal_mode={journal_mode}"), [], |r| r.get(0)).unwrap();
    drop(conn);
    Command::new("sync").status().unwrap();
    // Warm the page cache as for the reference: read the file once.
    let _ = std::fs::read(copy).unwrap().len();
}

/// Seconds of one `sqlite3` shell run of `commands` on `db`.
fn shell_seconds(db: &Path, commands: &[&str]) -> f64 {
    let started = Instant::now();
    let out = Command::new("sqlite3").arg(db).args(commands).output().unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(!printed.contains("\"decision\":\"skipped\""), "vigil skipped: {printed}");
    seconds
}

fn vacuum_vs_plain(source: &Path, work: &Path) {
    let load = format!(".load {}", library().with_extension("").display());
    let vigil = [load.as_str(), "SELECT vacuum_if_fragmented();"];
    for mode in ["delete", "wal"] {
        let (mut plain, mut ours) = (f64::MAX, f64::MAX);
        for _ in 0..2 {
            fresh_copy(source, work, mode);
            plain = plain.min(shell_seconds(work, &["VACUUM;"]));
            fresh_copy(source, work, mode);
            ours = ours.min(shell_seconds(work, &vigil));
        }
        println!(
            "vacuum over threshold, {mode:<6}  vigil {ours:>6.2} s   sqlite3 VACUUM {plain:>6.2} s   {:.2}×   goal ≤ 1.0×",
            ours / plain
        );
    }
}

fn median_ms(conn: &Connection, sql: &str, runs: usize) -> f64 {
    let mut samples: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            let _: String = conn.query_row(sql, [], |r| r.get(0)).unwrap();
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[runs / 2]
}

fn skip_decision(db: &Path) {
    let conn = open(db);
    let decision: String =
        conn.query_row("SELECT json_extract(vacuum_if_fragmented(), '$.decision')", [], |r| r.get(0)).unwrap();
    let ms = median_ms(&conn, "SELECT vacuum_if_fragmented()", 21);
    let size = std::fs::metadata(db).unwrap().len() as f64 / 1048576.0;
    println!("skip decision, {size:>5.0} MiB          {ms:>8.2} ms ({decision})   goal ≤ 50 ms, flat");
}

fn maintain_levels(work: &Path) {
    let conn = open(work);
    for level in ["light", "standard"] {
        let started = Instant::now();
        let result: String =
            conn.query_row(&format!("SELECT json_extract(maintain('{level}'), '$.result')"), [], |r| r.get(0)).unwrap();
        println!("maintain {level:<9} on 1 GiB     {:>8.1} ms ({result})", started.elapsed().as_secs_f64() * 1000.0);
    }
}

/// A writer commits small transactions for the whole measurement; a truncating checkpoint runs half-way.
fn checkpoint_under_writer(source: &Path, work: &Path) {
    fresh_copy(source, work, "wal");
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let (stop, latencies, path) = (stop.clone(), latencies.clone(), work.to_path_buf());
        std::thread::spawn(move || {
            let conn = Connection::open(&path).unwrap();
            conn.busy_timeout(Duration::from_secs(10)).unwrap();
            conn.execute_batch("CREATE TABLE IF NOT EXISTS bench_writes(id INTEGER PRIMARY KEY, at REAL, pad BLOB)")
                .unwrap();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                conn.execute("INSERT INTO bench_writes(at, pad) VALUES (julianday('now'), randomblob(2000))", [])
                    .unwrap();
                latencies.lock().unwrap().push(started.elapsed().as_secs_f64() * 1000.0);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(3));
    let conn = open(work);
    let out: String =
        conn.query_row("SELECT wal_checkpoint('truncate', '{\"busy_timeout_ms\":1000}')", [], |r| r.get(0)).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort_by(f64::total_cmp);
    let p99 = latencies[latencies.len() * 99 / 100];
    println!(
        "checkpoint(truncate) under a writer: WAL {} → {} bytes, blocked {}, {} ms; writer {} commits, p99 {:.1} ms, max {:.1} ms",
        json["wal_bytes_before"],
        json["wal_bytes_after"],
        json["blocked"],
        json["duration_ms"],
        latencies.len(),
        p99,
        latencies.last().unwrap()
    );
}

fn main() {
    let data = root().join("bench/data");
    let fragmented = data.join("vacuum-1024.db");
    ensure(&fragmented, 1024, 31);
    let (small, large) = (data.join("health-100.db"), data.join("health-1024.db"));
    ensure(&small, 100, 20);
    ensure(&large, 1024, 20);
    let work = data.join("work.db");
    let version = String::from_utf8_lossy(&Command::new("sqlite3").arg("--version").output().unwrap().stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    println!(
        "vigil maintenance benchmarks — vacuum in the system sqlite3 {version}, the rest in rusqlite's bundled SQLite"
    );
    vacuum_vs_plain(&fragmented, &work);
    skip_decision(&small);
    skip_decision(&large);
    maintain_levels(&work);
    checkpoint_under_writer(&fragmented, &work);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", work.display()));
    }
}
