//! The page scan of health_report and health_tables by vigil's own page reader, against SQLite's dbstat
//! aggregate scan measured in the same run, on the same warm file, through the same host (rusqlite's bundled
//! SQLite). Goal: ≤ 1.0× the dbstat scan.
//!
//!   cargo run --release -p vigil-bench --bin scan [-- DB ...]
//!
//! Without arguments it uses bench/data/health-1024.db, generated with ../shared/bench/make_db.py (or
//! $VIGIL_MAKE_DB) when missing.

#[path = "../common.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{ensure, root};
use rusqlite::{Connection, OpenFlags};

/// Runs a statement to the end, reading every column of every row.
fn drain(conn: &Connection, sql: &str) {
    let mut stmt = conn.prepare(sql).unwrap();
    let columns = stmt.column_count();
    let mut rows = stmt.query([]).unwrap();
    while let Some(row) = rows.next().unwrap() {
        for i in 0..columns {
            let _ = row.get_ref(i).unwrap();
        }
    }
}

fn once(conn: &Connection, sql: &str) -> f64 {
    let started = Instant::now();
    drain(conn, sql);
    started.elapsed().as_secs_f64() * 1000.0
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Medians of `runs` rounds after a warm-up round; each round runs every statement once, in turn, so that a
/// shared machine's load swings hit them alike.
fn rounds(conn: &Connection, sqls: &[&str], runs: usize) -> Vec<f64> {
    for sql in sqls {
        once(conn, sql);
    }
    let mut samples = vec![Vec::new(); sqls.len()];
    for _ in 0..runs {
        for (i, sql) in sqls.iter().enumerate() {
            samples[i].push(once(conn, sql));
        }
    }
    samples.into_iter().map(median).collect()
}

const DBSTAT_AGGREGATE: &str = "SELECT * FROM dbstat WHERE aggregate = 1";
const DBSTAT_GROUPED: &str = "SELECT name, count(*), sum(ncell), sum(payload), sum(unused), sum(pgsize) \
                              FROM dbstat GROUP BY name";

fn report(method: &str) -> String {
    format!(r#"SELECT health_json('{{"fragmentation":true,"fragmentation_method":"{method}"}}')"#)
}

fn tables(method: &str) -> String {
    format!(r#"SELECT * FROM health_tables('{{"fragmentation_method":"{method}"}}')"#)
}

/// Which method a default ('auto') scan used on this file.
fn auto_method(conn: &Connection) -> String {
    conn.query_row("SELECT DISTINCT method FROM health_tables()", [], |r| r.get(0)).unwrap()
}

fn measure(db: &Path, runs: usize) {
    let conn = common::open(db, OpenFlags::SQLITE_OPEN_READ_ONLY);
    let (report_pages, report_dbstat) = (report("pages"), report("dbstat"));
    let (tables_pages, tables_dbstat) = (tables("pages"), tables("dbstat"));
    let sqls = [DBSTAT_AGGREGATE, DBSTAT_GROUPED, &report_pages, &tables_pages, &report_dbstat, &tables_dbstat];
    let ms = rounds(&conn, &sqls, runs);
    let reference = ms[0];
    println!("{:<58} {:>10} {:>8}  goal", "measure", "ms", "ratio");
    let line = |what: &str, ms: f64, goal: &str| {
        println!("{what:<58} {ms:>10.1} {:>7.2}×  {goal}", ms / reference);
    };
    line("dbstat aggregate scan (the reference)", ms[0], "");
    line("dbstat per-page scan grouped by name", ms[1], "");
    line("fragmentation scan, page reader ('pages')", ms[2], "≤ 1.0×");
    line("health_tables(), page reader ('pages')", ms[3], "≤ 1.0×");
    line("fragmentation scan through dbstat ('dbstat')", ms[4], "(before)");
    line("health_tables() through dbstat ('dbstat')", ms[5], "(before)");
    println!("'auto' uses: {}", auto_method(&conn));
}

fn main() {
    let mut dbs: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    if dbs.is_empty() {
        let db = root().join("bench/data/health-1024.db");
        ensure(&db, 1024, 20);
        dbs.push(db);
    }
    let runs = std::env::var("VIGIL_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(5);
    let version: String =
        Connection::open_in_memory().unwrap().query_row("SELECT sqlite_version()", [], |r| r.get(0)).unwrap();
    println!(
        "vigil page scan benchmark — host SQLite {version} (rusqlite bundled), warm page cache, median of {runs} rounds"
    );
    for db in dbs {
        let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0;
        println!("\n{} ({size:.0} MiB)", db.display());
        measure(&db, runs);
    }
}
