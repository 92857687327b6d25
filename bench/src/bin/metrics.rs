//! `vigil metrics` of 100 databases (cheap checks), against a reference measured in the same run: the sqlite3
//! shell reading the same PRAGMAs (page count and size, freelist, journal mode, auto_vacuum, the schema) of the
//! 100 files in one process. Goal: ≤ 1 s for the 100 databases.
//!
//!   cargo build --release --workspace
//!   cargo run --release -p vigil-bench --bin metrics [-- N]
//!
//! The databases are generated in a temporary directory: N (default 100) small shops like `vigil demo`'s.

#[path = "../common.rs"]
#[allow(dead_code)] // the other benches' helpers
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::root;

const SCHEMA: &str = "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, email TEXT UNIQUE);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER REFERENCES customers, total REAL, at TEXT);
CREATE INDEX orders_customer ON orders(customer);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
INSERT INTO customers SELECT i, 'customer ' || i, 'c' || i || '@example.com' FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
INSERT INTO orders SELECT i, 1 + i % 2000, i * 1.5, datetime(1700000000 + i, 'unixepoch') FROM n;";

fn make_databases(dir: &Path, n: usize) -> Vec<PathBuf> {
    let first = dir.join("db000.db");
    let conn = rusqlite::Connection::open(&first).unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    drop(conn);
    let mut paths = vec![first.clone()];
    for i in 1..n {
        let path = dir.join(format!("db{i:03}.db"));
        std::fs::copy(&first, &path).unwrap();
        paths.push(path);
    }
    paths
}

fn vigil_metrics(dir: &Path) -> f64 {
    let started = Instant::now();
    let out = Command::new(root().join("target/release/vigil"))
        .args(["metrics", "*.db"])
        .current_dir(dir)
        .output()
        .expect("build first: cargo build --release --workspace");
    let elapsed = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    elapsed
}

/// The sqlite3 shell reading the cheap facts of every file in one process.
fn shell_pragmas(paths: &[PathBuf]) -> f64 {
    let mut script = String::new();
    for path in paths {
        script.push_str(&format!(
            ".open --readonly '{}'\nPRAGMA page_count; PRAGMA page_size; PRAGMA freelist_count; PRAGMA journal_mode; \
             PRAGMA auto_vacuum; SELECT count(*) FROM sqlite_schema;\n",
            path.display()
        ));
    }
    let started = Instant::now();
    let mut child = Command::new("sqlite3").stdin(Stdio::piped()).stdout(Stdio::null()).spawn().expect("sqlite3");
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    started.elapsed().as_secs_f64()
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let n: usize = std::env::args().nth(1).map_or(100, |a| a.parse().expect("N: a number of databases"));
    let dir = std::env::temp_dir().join(format!("vigil-bench-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let paths = make_databases(&dir, n);
    let (mut vigil, mut shell) = (Vec::new(), Vec::new());
    vigil_metrics(&dir);
    shell_pragmas(&paths);
    // Alternate, so that a shared machine's load swings hit both alike.
    for _ in 0..7 {
        vigil.push(vigil_metrics(&dir));
        shell.push(shell_pragmas(&paths));
    }
    let (vigil, shell) = (median(vigil), median(shell));
    println!("{n} databases, median of 7 runs (wall time)");
    println!("  vigil metrics (cheap checks, {n} read-only opens, render) {:8.1} ms  goal <= 1000 ms", vigil * 1000.0);
    println!("  sqlite3 shell, the same PRAGMAs in one process             {:8.1} ms", shell * 1000.0);
    println!("  ratio vigil / shell                                         {:8.2}x", vigil / shell);
    println!("  per database: vigil {:.2} ms, shell {:.2} ms", vigil * 1000.0 / n as f64, shell * 1000.0 / n as f64);
    let _ = std::fs::remove_dir_all(&dir);
}
