//! pit_journal benchmarks (issue 12), in one run, each figure next to its reference and its goal:
//! - write throughput per operation, bulk and autocommit: untracked vs pit (written on a connection with
//!   vigil loaded and on one without) vs the anchor, a trigger journal of JSON row images, and vs the floor of
//!   any trigger journal (one typed append per change);
//! - journal bytes per change vs the changed row's own size;
//! - pit_restore to an instant with 100 000 changes after it vs backup_restore, on a generated database;
//! - a pit_journal query for one table over the last minute of a 10-million-row journal.
//!
//!   cargo run --release -p vigil-bench --bin pit -- [--mib 1024] [--runs 5] [--only writes,restore,query]
//!
//! The restore database is bench/data/pit-<mib>.db (make_db.py, generated when missing); scratch files go to
//! bench/data/pit-work/ and are removed at the end.

#[path = "pit/anchor.rs"]
mod anchor;
mod common;
#[path = "pit/floor.rs"]
mod floor;
#[path = "pit/query.rs"]
mod query;
#[path = "pit/restore.rs"]
mod restore;
#[path = "pit/writes.rs"]
mod writes;

use std::path::Path;
use std::time::Instant;

use common::{ensure, root};
use rusqlite::{Connection, OpenFlags};

struct Args {
    mib: u32,
    runs: usize,
    bulk: i64,
    auto: i64,
    changes: i64,
    journal_rows: i64,
    only: Vec<String>,
}

const USAGE: &str = "usage: pit [--mib N (1024)] [--runs N (5)] [--bulk ROWS (50000)] [--auto STMTS (5000)] \
                     [--changes N (100000)] [--journal-rows N (10000000)] [--only writes,restore,query]";

fn parse_args() -> Args {
    let mut args = Args {
        mib: 1024,
        runs: 5,
        bulk: 50_000,
        auto: 5_000,
        changes: 100_000,
        journal_rows: 10_000_000,
        only: vec!["writes".into(), "restore".into(), "query".into()],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value\n{USAGE}"));
        let number = || value.parse::<i64>().unwrap_or_else(|_| panic!("{flag} wants a number\n{USAGE}"));
        match flag.as_str() {
            "--mib" => args.mib = number() as u32,
            "--runs" => args.runs = number().max(1) as usize,
            "--bulk" => args.bulk = number(),
            "--auto" => args.auto = number(),
            "--changes" => args.changes = number(),
            "--journal-rows" => args.journal_rows = number(),
            "--only" => args.only = value.split(',').map(str::to_string).collect(),
            _ => panic!("unknown argument {flag}\n{USAGE}"),
        }
    }
    args
}

/// Whether the loaded vigil has the pit functions (the benchmark's pit columns need them).
fn has_pit() -> bool {
    let conn = common::open(Path::new(":memory:"), OpenFlags::default());
    conn.query_row("SELECT count(*) FROM pragma_function_list WHERE name = 'pit_enable'", [], |r| r.get::<_, i64>(0))
        .unwrap()
        > 0
}

fn main() {
    let args = parse_args();
    let started = Instant::now();
    let work = root().join("bench/data/pit-work");
    std::fs::create_dir_all(&work).unwrap();
    let version: String =
        Connection::open_in_memory().unwrap().query_row("SELECT sqlite_version()", [], |r| r.get(0)).unwrap();
    let with_pit = has_pit();
    println!(
        "vigil pit_journal benchmarks — host SQLite {version} (rusqlite bundled), {}",
        common::library().display()
    );
    if !with_pit {
        println!("(this build of vigil has no pit_enable: the pit columns are left out)");
    }
    let wanted = |part: &str| args.only.iter().any(|p| p == part);
    if wanted("writes") {
        let sizes = writes::Sizes { bulk: args.bulk, auto: args.auto };
        let results = writes::measure(&work, &sizes, args.runs, with_pit);
        writes::print(&results, &sizes, writes::Clock::Cpu);
        writes::print(&results, &sizes, writes::Clock::Wall);
        writes::print_footprint(&results);
    }
    if wanted("restore") {
        let db = root().join(format!("bench/data/pit-{}.db", args.mib));
        ensure(&db, args.mib, 0);
        restore::run(&db, &work, args.changes, args.runs.min(3), with_pit);
    }
    if wanted("query") && with_pit {
        query::run(&work, args.journal_rows);
    }
    let _ = std::fs::remove_dir_all(&work);
    println!("\n(whole run: {:.0} s)", started.elapsed().as_secs_f64());
}
