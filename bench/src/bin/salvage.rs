//! vigil's salvage benchmark (issue 13), in one run:
//! - `vigil salvage` of an undamaged ~1 GiB database vs `VACUUM INTO` of the same warm file by the system
//!   sqlite3 shell (goal ≤ 1.5×), with and without the emergency copy of the raw files;
//! - the corruption corpus of tests/salvage_corpus.rs: per case, rows a perfect salvage could get (the
//!   physical limit), what `vigil salvage` got, what the shell's `.dump` got;
//! - a longer fuzz run than the test's (VIGIL_BENCH_FUZZ cases, default 10000): failures by seed.
//!
//!   cargo build --release --workspace
//!   cargo run --release -p vigil-bench --bin salvage
//!
//! The database is bench/data/salvage-<MiB>.db (VIGIL_BENCH_GIB scales it, default 1), generated when missing by
//! the corpus generator, or by $VIGIL_MAKE_DB (make_db.py) when that is set. Ratios are printed, never asserted.

#[path = "../common.rs"]
mod common;
#[path = "../../../tests/salvage/corpus.rs"]
mod corpus;
#[path = "../../../tests/salvage/fuzz.rs"]
mod fuzz;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use corpus::{Contents, Damage, Map};
use rusqlite::{Connection, OpenFlags};

fn vigil() -> PathBuf {
    let path = common::root().join("target/release/vigil");
    assert!(path.exists(), "{} is missing: cargo build --release --workspace", path.display());
    path
}

fn env_number(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The benchmark database, made once and kept in bench/data.
fn database(mib: u64) -> PathBuf {
    let db = common::root().join(format!("bench/data/salvage-{mib}.db"));
    if db.exists() {
        return db;
    }
    if std::env::var("VIGIL_MAKE_DB").is_ok() {
        common::ensure(&db, mib as u32, 10);
        return db;
    }
    let dir = db.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    // The corpus generator writes about 2.2 KB per row of its main table (rows, overflow, indexes).
    let rows = mib * 1024 * 1024 / 2200;
    eprintln!("generating {} ({mib} MiB, {rows} rows per table) with the corpus generator", db.display());
    let layout = corpus::Layout { name: "salvage-generating", rows, ..corpus::layouts()[0] };
    let made = corpus::generated_original(layout, dir);
    std::fs::rename(&made.path, &db).unwrap();
    db
}

/// Seconds of one command, which must succeed (vigil salvage may exit 1: damage found).
fn seconds(command: &mut Command) -> f64 {
    let started = Instant::now();
    let out = command.output().unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{command:?}: {}", String::from_utf8_lossy(&out.stderr));
    elapsed
}

fn clear(out: &Path) {
    corpus::remove_database(out);
    let parent = out.parent().unwrap();
    let prefix = format!("{}.emergency-", out.file_name().unwrap().to_string_lossy());
    for entry in std::fs::read_dir(parent).unwrap().map(Result::unwrap) {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            std::fs::remove_dir_all(entry.path()).unwrap();
        }
    }
}

/// Undamaged salvage vs VACUUM INTO, best of `runs`, taking turns so that a drifting disk hits both.
fn undamaged(db: &Path, runs: usize) {
    let out = db.with_file_name("salvage-out.db");
    let _ = std::fs::read(db).unwrap().len(); // warm the page cache for both
    let (mut vacuum, mut bare, mut copied) = (f64::MAX, f64::MAX, f64::MAX);
    for _ in 0..runs {
        clear(&out);
        vacuum = vacuum.min(seconds(Command::new("sqlite3").arg(db).arg(format!("VACUUM INTO '{}'", out.display()))));
        clear(&out);
        bare = bare.min(seconds(Command::new(vigil()).args(["salvage", "--no-emergency-copy"]).arg(db).arg(&out)));
        clear(&out);
        copied = copied.min(seconds(Command::new(vigil()).arg("salvage").arg(db).arg(&out)));
    }
    let counts = |path: &Path| {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let tables = corpus::tables(&conn, "lost_and_found");
        let count = |t: &corpus::Table| -> i64 {
            conn.query_row(&format!("SELECT count(*) FROM {}", corpus::quoted(&t.name)), [], |r| r.get(0)).unwrap()
        };
        tables.iter().map(|t| (t.name.clone(), count(t))).collect::<Vec<_>>()
    };
    let (before, after) = (counts(db), counts(&out));
    println!("rows per table, original vs salvaged: {}", if before == after { "equal" } else { "DIFFERENT" });
    if before != after {
        println!("  original {before:?}\n  salvaged {after:?}");
    }
    clear(&out);
    let size = std::fs::metadata(db).unwrap().len() as f64 / (1 << 20) as f64;
    println!("undamaged {size:.0} MiB database, best of {runs}:");
    println!("  sqlite3 VACUUM INTO                      {vacuum:>7.2} s");
    println!("  vigil salvage --no-emergency-copy        {bare:>7.2} s   {:.2}×   goal ≤ 1.5×", bare / vacuum);
    println!("  vigil salvage (with the emergency copy)  {copied:>7.2} s   {:.2}×", copied / vacuum);
}

/// The corpus through the release CLI: rows per case vs the physical limit vs `.dump`.
fn corpus_figures(work: &Path) {
    let originals = corpus::originals(&common::root(), work);
    println!("\n{:<58} {:>7} {:>8} {:>6} {:>7} {:>8}", "corpus case", "limit", "salvage", "+l&f", ".dump", "not orig");
    let (mut limit_total, mut salvage_total, mut dump_total) = (0, 0, 0);
    for original in &originals {
        let contents = Contents::read(&original.path, work);
        let map = Map::read(&original.path, work);
        for case in corpus::cases_of(original, &map, &contents) {
            let src = work.join("case.db");
            let dest = work.join("case.out.db");
            corpus::make_damaged(&case, &src);
            clear(&dest);
            let torn = matches!(case.damage, Damage::TornWal).then(|| Contents::read(&src, work));
            let contents = torn.as_ref().unwrap_or(&contents);
            let damaged = corpus::damaged_pages(&case.damage, &map);
            let limit = contents.total() - corpus::rows_physically_lost(&map, &damaged, contents);
            let dump = corpus::dump_rows(&src, contents, work);
            let status =
                Command::new(vigil()).args(["salvage", "--no-emergency-copy"]).arg(&src).arg(&dest).output().unwrap();
            let (got, found, alien) = if dest.exists() {
                let verdict = corpus::judge(&dest, contents, "lost_and_found");
                (verdict.matched, verdict.matched_in_lost_and_found, verdict.foreign.len())
            } else {
                eprintln!("{}: {}", case.name, String::from_utf8_lossy(&status.stderr).trim());
                (0, 0, 0)
            };
            println!("{:<58} {limit:>7} {got:>8} {found:>6} {dump:>7} {alien:>8}", case.name);
            limit_total += limit;
            salvage_total += got + found;
            dump_total += dump;
        }
    }
    let share = |n: usize| 100.0 * n as f64 / limit_total as f64;
    println!(
        "corpus total: limit {limit_total}, salvage {salvage_total} ({:.1} %, goal ≥ 95 %), .dump {dump_total} ({:.1} %)",
        share(salvage_total),
        share(dump_total)
    );
}

fn load_release(conn: &Connection) {
    unsafe {
        conn.load_extension_enable().unwrap();
        conn.load_extension(common::library(), None::<&str>).expect("build the extension first: cargo build --release");
        conn.load_extension_disable().unwrap();
    }
}

/// The fuzz loop of tests/salvage_fuzz.rs with more cases, on the release build.
fn long_fuzz(work: &Path, cases: u64) {
    const SEED: u64 = 0xB3_7C4_5A1;
    let subjects = fuzz::subjects(work);
    let worker = fuzz::Worker::start(load_release);
    let (src, dest) = (work.join("fuzz.db"), work.join("fuzz.out.db"));
    let started = Instant::now();
    let (mut salvaged, mut failures) = (0, Vec::new());
    for seed in SEED..SEED + cases {
        let mutation = fuzz::mutate(seed, &subjects);
        fuzz::apply(&mutation, &subjects, &src);
        corpus::remove_database(&dest);
        let Some(outcome) = worker.salvage(&src, &dest, Duration::from_secs(30)) else {
            println!("fuzz: seed {seed} hangs (over 30 s): {mutation:?}");
            return;
        };
        salvaged += outcome.is_ok() as u64;
        let problems = fuzz::problems(&mutation, &subjects[mutation.subject], outcome, &dest);
        if !problems.is_empty() {
            let name = &subjects[mutation.subject].original.name;
            failures.push(format!(
                "seed {seed} ({name}, {} flips, cut {:?}): {problems:?}",
                mutation.flips.len(),
                mutation.cut
            ));
        }
    }
    let cut = failures.iter().filter(|f| !f.contains("cut None")).count();
    println!(
        "\nfuzz: {cases} cases from seed {SEED} in {:.1} s: {salvaged} salvaged, {} failed ({cut} of them cut short)",
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    // The first few of each kind: a file cut short, and flips only.
    let (short, flipped): (Vec<&String>, Vec<&String>) = failures.iter().partition(|f| !f.contains("cut None"));
    for failure in short.iter().take(5).chain(flipped.iter().take(5)) {
        println!("  {failure}");
    }
}

fn main() {
    let gib = env_number("VIGIL_BENCH_GIB", 1.0);
    let db = database((gib * 1024.0) as u64);
    let conn = common::open(&db, OpenFlags::SQLITE_OPEN_READ_ONLY);
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
    drop(conn);
    println!("database {} ({pages} pages)", db.display());
    undamaged(&db, env_number("VIGIL_BENCH_RUNS", 2.0) as usize);
    let work = common::root().join("bench/data/salvage-work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    corpus_figures(&work);
    long_fuzz(&work, env_number("VIGIL_BENCH_FUZZ", 10000.0) as u64);
    let _ = std::fs::remove_dir_all(&work);
}
