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

use common::{drain, ensure, root};
use rusqlite::{Connection, OpenFlags};

/// CPU time this thread has run, in ms (/proc/thread-self/schedstat): every statement here runs on the calling
/// thread, and on a shared machine the wall clock swings with the load of others far more than this does.
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    stat.split_whitespace().next().and_then(|ns| ns.parse::<f64>().ok()).unwrap_or(0.0) / 1e6
}

/// (wall ms, CPU ms) of one run.
fn once(conn: &Connection, sql: &str) -> (f64, f64) {
    let (started, cpu) = (Instant::now(), cpu_ms());
    drain(conn, sql);
    (started.elapsed().as_secs_f64() * 1000.0, cpu_ms() - cpu)
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Medians (wall, CPU) of `runs` rounds after a warm-up round; each round runs every statement once, in turn,
/// so that a shared machine's load swings hit them alike.
fn rounds(conn: &Connection, sqls: &[&str], runs: usize) -> Vec<(f64, f64)> {
    for sql in sqls {
        once(conn, sql);
    }
    let mut samples = vec![(Vec::new(), Vec::new()); sqls.len()];
    for _ in 0..runs {
        for (i, sql) in sqls.iter().enumerate() {
            let (wall, cpu) = once(conn, sql);
            samples[i].0.push(wall);
            samples[i].1.push(cpu);
        }
    }
    samples.into_iter().map(|(wall, cpu)| (median(wall), median(cpu))).collect()
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
    let (wall_reference, cpu_reference) = ms[0];
    println!("{:<50} {:>9} {:>7} {:>9} {:>7}  goal", "measure", "wall ms", "ratio", "CPU ms", "ratio");
    let lines = [
        ("dbstat aggregate scan (the reference)", ""),
        ("dbstat per-page scan grouped by name", ""),
        ("fragmentation scan, page reader ('pages')", "≤ 1.0×"),
        ("health_tables(), page reader ('pages')", "≤ 1.0×"),
        ("fragmentation scan through dbstat ('dbstat')", "(before)"),
        ("health_tables() through dbstat ('dbstat')", "(before)"),
    ];
    for ((what, goal), (wall, cpu)) in lines.iter().zip(&ms) {
        println!(
            "{what:<50} {wall:>9.1} {:>6.2}× {cpu:>9.1} {:>6.2}×  {goal}",
            wall / wall_reference,
            cpu / cpu_reference
        );
    }
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
