//! vigil's health benchmarks: each figure next to the SQLite operation it builds on, measured in the same
//! run, on the same warm file, through the same host (rusqlite's bundled SQLite).
//!
//!   cargo run --release -p vigil-bench -- [DB ...]
//!
//! Without arguments it uses bench/data/health-100.db and bench/data/health-1024.db, generating them with
//! ../shared/bench/make_db.py (or $VIGIL_MAKE_DB) when missing.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{drain, ensure, root};
use rusqlite::{Connection, OpenFlags};

fn open(db: &Path) -> Connection {
    common::open(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
}

/// Median wall time of `runs` executions after one warm-up, in ms.
fn time(conn: &Connection, sqls: &[&str], runs: usize) -> f64 {
    let once = || {
        let started = Instant::now();
        for sql in sqls {
            drain(conn, sql);
        }
        started.elapsed().as_secs_f64() * 1000.0
    };
    once();
    let mut samples: Vec<f64> = (0..runs).map(|_| once()).collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

struct Line {
    what: &'static str,
    vigil: f64,
    reference: Option<(&'static str, f64)>,
    goal: &'static str,
}

fn measure(db: &Path) -> Vec<Line> {
    let conn = open(db);
    let scan_runs = 3;
    let vs = |what, vigil: &[&str], reference_name, reference: &[&str], goal| {
        let reference_ms = time(&conn, reference, scan_runs);
        let vigil_ms = time(&conn, vigil, scan_runs);
        Line { what, vigil: vigil_ms, reference: Some((reference_name, reference_ms)), goal }
    };
    vec![
        Line {
            what: "default report (cheap checks)",
            vigil: time(&conn, &["SELECT health_json()"], 21),
            reference: None,
            goal: "≤ 50 ms at 1 GiB, flat",
        },
        vs("quick mode", &["SELECT health_json('quick')"], "PRAGMA quick_check", &["PRAGMA quick_check"], "≤ 1.1×"),
        vs(
            "full integrity (integrity + foreign keys)",
            &["SELECT health_json('{\"integrity\":\"full\"}')"],
            "integrity_check + foreign_key_check",
            &["PRAGMA integrity_check", "PRAGMA foreign_key_check"],
            "≤ 1.1×",
        ),
        vs(
            "fragmentation scan",
            &["SELECT health_json('{\"fragmentation\":true}')"],
            "dbstat aggregate scan",
            &["SELECT * FROM dbstat WHERE aggregate = 1"],
            "≤ 1.2×",
        ),
        vs(
            "per-table stats (health_tables)",
            &["SELECT * FROM health_tables()"],
            "dbstat aggregate scan",
            &["SELECT * FROM dbstat WHERE aggregate = 1"],
            "≤ 1.2×",
        ),
    ]
}

fn main() {
    let mut dbs: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    if dbs.is_empty() {
        for mb in [100, 1024] {
            let db = root().join(format!("bench/data/health-{mb}.db"));
            ensure(&db, mb, 20);
            dbs.push(db);
        }
    }
    let version: String =
        Connection::open_in_memory().unwrap().query_row("SELECT sqlite_version()", [], |r| r.get(0)).unwrap();
    println!("vigil health benchmarks — host SQLite {version} (rusqlite bundled), warm page cache, median of runs");
    for db in dbs {
        let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0;
        println!("\n{} ({size:.0} MiB)", db.display());
        println!("{:<44} {:>10} {:>38} {:>8}  goal", "measure", "vigil ms", "reference ms", "ratio");
        for line in measure(&db) {
            let (reference, ratio) = match line.reference {
                Some((name, ms)) => (format!("{name} {ms:.1}"), format!("{:.2}×", line.vigil / ms)),
                None => (String::new(), String::new()),
            };
            println!("{:<44} {:>10.1} {:>38} {:>8}  {}", line.what, line.vigil, reference, ratio, line.goal);
        }
    }
}
