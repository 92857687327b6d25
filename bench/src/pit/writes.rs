//! Write throughput and journal bytes: untracked vs pit (on a vigil connection and on one without vigil)
//! vs the JSON-trigger anchor. Every variant writes the same rows into its own fresh file, in WAL with
//! synchronous=NORMAL; the variants take turns within each round, and each figure is the best round.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rusqlite::{params, Connection, OpenFlags, Statement};

use super::{anchor, floor};
use crate::common;

const TABLE_SQL: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, status TEXT NOT NULL,
                         total_cents INTEGER NOT NULL, note TEXT, created_at INTEGER NOT NULL)";
const COLUMNS: [&str; 6] = ["id", "customer_id", "status", "total_cents", "note", "created_at"];
const INSERT: &str =
    "INSERT INTO t(id, customer_id, status, total_cents, note, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const UPDATE: &str = "UPDATE t SET status = ?2, total_cents = ?3 WHERE id = ?1";
const DELETE: &str = "DELETE FROM t WHERE id = ?1";
const STATUSES: [&str; 5] = ["new", "paid", "shipped", "delivered", "cancelled"];

#[derive(Clone, Copy, PartialEq)]
pub enum Variant {
    Untracked,
    Pit,
    PitForeign,
    Anchor,
    Floor,
}

impl Variant {
    const ALL: [Variant; 5] = [Variant::Untracked, Variant::Pit, Variant::PitForeign, Variant::Anchor, Variant::Floor];

    fn label(self) -> &'static str {
        match self {
            Variant::Untracked => "untracked",
            Variant::Pit => "pit, vigil conn",
            Variant::PitForeign => "pit, plain conn",
            Variant::Anchor => "anchor (JSON)",
            Variant::Floor => "floor (1 append)",
        }
    }

    fn file(self) -> &'static str {
        match self {
            Variant::Untracked => "writes-untracked.db",
            Variant::Pit => "writes-pit.db",
            Variant::PitForeign => "writes-pit-foreign.db",
            Variant::Anchor => "writes-anchor.db",
            Variant::Floor => "writes-floor.db",
        }
    }

    /// The journal table whose growth is the cost of tracking, if any.
    fn journal(self) -> Option<&'static str> {
        match self {
            Variant::Untracked => None,
            Variant::Pit | Variant::PitForeign => Some("vigil_pit_log"),
            Variant::Anchor => Some(anchor::HISTORY),
            Variant::Floor => Some(floor::LOG),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Insert,
    Update,
    Delete,
}

/// One timed phase: an operation over a range of ids, in one transaction or one per statement.
struct Phase {
    op: Op,
    bulk: bool,
}

/// The phases in the order they run on one file: the autocommit phases work on rows beyond the bulk ones,
/// so the table holds the bulk rows meanwhile.
const PHASES: [Phase; 6] = [
    Phase { op: Op::Insert, bulk: true },
    Phase { op: Op::Update, bulk: true },
    Phase { op: Op::Insert, bulk: false },
    Phase { op: Op::Update, bulk: false },
    Phase { op: Op::Delete, bulk: false },
    Phase { op: Op::Delete, bulk: true },
];

/// What the report prints, bulk rows first.
const REPORT_ORDER: [usize; 6] = [0, 1, 5, 2, 3, 4];

pub struct Sizes {
    pub bulk: i64,
    pub auto: i64,
}

impl Sizes {
    fn ids(&self, phase: &Phase) -> RangeInclusive<i64> {
        if phase.bulk {
            1..=self.bulk
        } else {
            self.bulk + 1..=self.bulk + self.auto
        }
    }
}

/// Bytes on pages (b-tree pages, used or not) and of payload, from dbstat.
#[derive(Clone, Copy, Default)]
struct Bytes {
    pages: f64,
    payload: f64,
}

impl Bytes {
    fn minus(self, other: Bytes) -> Bytes {
        Bytes { pages: self.pages - other.pages, payload: self.payload - other.payload }
    }

    fn per(self, n: i64) -> Bytes {
        Bytes { pages: self.pages / n as f64, payload: self.payload / n as f64 }
    }
}

/// Journal bytes per change of each bulk operation, and the user table's bytes per row.
#[derive(Default)]
struct Footprint {
    row: Bytes,
    insert: Bytes,
    update: Bytes,
    delete: Bytes,
}

/// The bytes of `table` and its indexes.
fn object_bytes(conn: &Connection, table: &str) -> Bytes {
    conn.query_row(
        "SELECT coalesce(sum(pgsize), 0), coalesce(sum(payload), 0) FROM dbstat
         WHERE aggregate = 1 AND name IN (SELECT name FROM sqlite_schema WHERE tbl_name = ?1)",
        [table],
        |r| Ok(Bytes { pages: r.get::<_, i64>(0)? as f64, payload: r.get::<_, i64>(1)? as f64 }),
    )
    .unwrap()
}

fn remove_database(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// Turns on tracking of `t` through vigil and checks that vigil says so.
fn pit_enable(conn: &Connection) {
    let out: String = conn.query_row("SELECT pit_enable('t')", [], |r| r.get(0)).unwrap();
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let tracked = json["tracked"].as_array().map(|a| a.iter().any(|t| t == "t")).unwrap_or(false);
    assert!(tracked, "pit_enable('t') did not track t: {out}");
}

/// A fresh file with table `t` set up for `variant`, and the connection that writes it.
fn prepare(variant: Variant, path: &Path) -> Connection {
    remove_database(path);
    let tracked = matches!(variant, Variant::Pit | Variant::PitForeign);
    let setup = if tracked { common::open(path, OpenFlags::default()) } else { Connection::open(path).unwrap() };
    setup.execute_batch(&format!("PRAGMA journal_mode=WAL; {TABLE_SQL};")).unwrap();
    match variant {
        Variant::Anchor => anchor::install(&setup, "t", &COLUMNS),
        Variant::Floor => floor::install(&setup, "t", &COLUMNS),
        Variant::Pit | Variant::PitForeign => pit_enable(&setup),
        Variant::Untracked => {}
    }
    let writer = if variant == Variant::Pit {
        setup
    } else {
        drop(setup);
        Connection::open(path).unwrap()
    };
    writer.execute_batch("PRAGMA synchronous=NORMAL").unwrap();
    writer
}

fn execute(stmt: &mut Statement, op: Op, id: i64) {
    let status = STATUSES[id as usize % STATUSES.len()];
    match op {
        Op::Insert => {
            let note = format!("deliver to the back door, order {id}");
            stmt.execute(params![id, id * 7919 % 100_000, status, id * 37 % 100_000, note, 1_700_000_000 + id])
        }
        Op::Update => stmt.execute(params![id, STATUSES[(id as usize + 1) % STATUSES.len()], id * 41 % 100_000]),
        Op::Delete => stmt.execute(params![id]),
    }
    .unwrap();
}

/// Seconds this thread has run on a CPU (Linux schedstat, ns): unlike the wall clock, it leaves out the
/// time other processes of a loaded machine hold the cores. With synchronous=NORMAL in WAL a commit does not
/// wait for the disk, so the phases are CPU work and their writes (system time, counted).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    stat.split_whitespace().next().and_then(|ns| ns.parse::<f64>().ok()).unwrap_or(f64::NAN) / 1e9
}

/// Wall and CPU seconds of one phase.
#[derive(Clone, Copy)]
struct Timing {
    wall: f64,
    cpu: f64,
}

/// Runs `phase` on `conn`.
fn run_phase(conn: &Connection, phase: &Phase, sizes: &Sizes) -> Timing {
    let sql = match phase.op {
        Op::Insert => INSERT,
        Op::Update => UPDATE,
        Op::Delete => DELETE,
    };
    let mut stmt = conn.prepare(sql).unwrap();
    let (started, cpu) = (Instant::now(), cpu_seconds());
    if phase.bulk {
        conn.execute_batch("BEGIN").unwrap();
    }
    for id in sizes.ids(phase) {
        execute(&mut stmt, phase.op, id);
    }
    if phase.bulk {
        conn.execute_batch("COMMIT").unwrap();
    }
    Timing { wall: started.elapsed().as_secs_f64(), cpu: cpu_seconds() - cpu }
}

/// Runs every phase of `variant` on a fresh file; with `measure`, also its footprint (outside the timing).
fn run_variant(variant: Variant, path: &Path, sizes: &Sizes, measure: bool) -> ([Timing; 6], Option<Footprint>) {
    let conn = prepare(variant, path);
    let mut seconds = [Timing { wall: 0.0, cpu: 0.0 }; 6];
    let mut footprint = Footprint::default();
    let journal = |conn: &Connection| variant.journal().map(|j| object_bytes(conn, j)).unwrap_or_default();
    for (i, phase) in PHASES.iter().enumerate() {
        let before = if measure { journal(&conn) } else { Bytes::default() };
        seconds[i] = run_phase(&conn, phase, sizes);
        if measure && phase.bulk {
            let per_change = journal(&conn).minus(before).per(sizes.bulk);
            match phase.op {
                Op::Insert => {
                    footprint.insert = per_change;
                    footprint.row = object_bytes(&conn, "t").per(sizes.bulk);
                }
                Op::Update => footprint.update = per_change,
                Op::Delete => footprint.delete = per_change,
            }
        }
    }
    drop(conn);
    remove_database(path);
    (seconds, measure.then_some(footprint))
}

pub struct Results {
    /// Best seconds per variant (in `Variant::ALL` order) and phase, by the wall clock and by CPU time.
    wall: Vec<[f64; 6]>,
    cpu: Vec<[f64; 6]>,
    footprints: Vec<Option<Footprint>>,
    runs: usize,
    wal: Vec<(Variant, [f64; 3])>,
}

/// `runs` rounds; in each, every variant in turn (the order rotates between rounds).
pub fn measure(dir: &Path, sizes: &Sizes, runs: usize, with_pit: bool) -> Results {
    let variants: Vec<Variant> =
        Variant::ALL.into_iter().filter(|v| with_pit || !matches!(v, Variant::Pit | Variant::PitForeign)).collect();
    let (mut wall, mut cpu) = (vec![[f64::MAX; 6]; Variant::ALL.len()], vec![[f64::MAX; 6]; Variant::ALL.len()]);
    let mut footprints: Vec<Option<Footprint>> = (0..Variant::ALL.len()).map(|_| None).collect();
    for round in 0..runs {
        for k in 0..variants.len() {
            let variant = variants[(round + k) % variants.len()];
            let slot = Variant::ALL.iter().position(|v| *v == variant).unwrap();
            let path: PathBuf = dir.join(variant.file());
            let (seconds, footprint) = run_variant(variant, &path, sizes, round == 0);
            for (k, t) in seconds.iter().enumerate() {
                wall[slot][k] = wall[slot][k].min(t.wall);
                cpu[slot][k] = cpu[slot][k].min(t.cpu);
            }
            if footprint.is_some() {
                footprints[slot] = footprint;
            }
        }
    }
    let wal = variants.iter().map(|v| (*v, wal_pages(*v, &dir.join(v.file())))).collect();
    Results { wall, cpu, footprints, runs, wal }
}

/// WAL pages written per autocommit statement of each operation (1000 of each, checkpoints off): what every
/// commit has to write and later checkpoint.
fn wal_pages(variant: Variant, path: &Path) -> [f64; 3] {
    let conn = prepare(variant, path);
    conn.execute_batch("PRAGMA wal_autocheckpoint=0").unwrap();
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    let frames = || {
        let bytes = std::fs::metadata(format!("{}-wal", path.display())).map(|m| m.len() as i64).unwrap_or(0);
        (bytes - 32).max(0) as f64 / (page_size + 24) as f64
    };
    let sizes = Sizes { bulk: 0, auto: 1000 };
    let mut pages = [0.0; 3];
    for (k, op) in [Op::Insert, Op::Update, Op::Delete].into_iter().enumerate() {
        let before = frames();
        run_phase(&conn, &Phase { op, bulk: false }, &sizes);
        pages[k] = (frames() - before) / sizes.auto as f64;
    }
    drop(conn);
    remove_database(path);
    pages
}

fn phase_label(phase: &Phase, sizes: &Sizes) -> String {
    let op = match phase.op {
        Op::Insert => "INSERT",
        Op::Update => "UPDATE",
        Op::Delete => "DELETE",
    };
    if phase.bulk {
        format!("bulk {op} ({} rows, 1 txn)", sizes.bulk)
    } else {
        format!("autocommit {op} ({} stmts)", sizes.auto)
    }
}

/// Which clock a table of figures is in.
#[derive(Clone, Copy, PartialEq)]
pub enum Clock {
    Cpu,
    Wall,
}

pub fn print(results: &Results, sizes: &Sizes, clock: Clock) {
    let best = if clock == Clock::Cpu { &results.cpu } else { &results.wall };
    let what = if clock == Clock::Cpu {
        "rows per CPU-second of the writing thread (other processes' load left out)"
    } else {
        "rows per wall-clock second (the same rounds; includes the load of a shared machine)"
    };
    println!(
        "\nWRITE THROUGHPUT — {what}, and ratio to untracked; best of {} interleaved rounds; table t (6 columns, \
         INTEGER PRIMARY KEY, no other index), one prepared statement per row, WAL, synchronous=NORMAL",
        results.runs
    );
    print!("{:<34}", "operation");
    for v in Variant::ALL {
        print!(" {:>20}", v.label());
    }
    println!("  goal: pit vigil/plain");
    for i in REPORT_ORDER {
        let phase = &PHASES[i];
        let n = sizes.ids(phase).count() as f64;
        let base = best[0][i];
        print!("{:<34}", phase_label(phase, sizes));
        for (slot, _) in Variant::ALL.iter().enumerate() {
            let s = best[slot][i];
            if s == f64::MAX {
                print!(" {:>20}", "—");
            } else if slot == 0 {
                print!(" {:>20.0}", n / s);
            } else {
                print!(" {:>12.0} {:>6.2}×", n / s, base / s);
            }
        }
        let goal = if phase.bulk { 0.5 } else { 0.8 };
        println!("  ≥ {goal}×: {}", verdict(best, i, goal));
    }
    if clock == Clock::Wall {
        return;
    }
    println!(
        "(pit, vigil conn: written on the connection that loaded vigil, exact transaction ids; pit, plain conn: a \
         connection without vigil, the same triggers; floor: one typed append per change, no REPLACE capture, \
         no transaction id — what any trigger journal costs at least)"
    );
}

/// For each pit column of phase `i`: whether it reaches `goal`, and whether it is ahead of the anchor.
fn verdict(best: &[[f64; 6]], i: usize, goal: f64) -> String {
    let base = best[0][i];
    let anchor = best[3][i];
    let marks: Vec<String> = [1, 2]
        .iter()
        .filter(|slot| best[**slot][i] != f64::MAX)
        .map(|slot| {
            let s = best[*slot][i];
            let reached = if base / s >= goal { "met" } else { "missed" };
            let ahead = if s < anchor { "ahead of anchor" } else { "BEHIND anchor" };
            format!("{reached}, {ahead}")
        })
        .collect();
    if marks.is_empty() {
        "(pit not measured)".into()
    } else {
        marks.join(" / ")
    }
}

pub fn print_footprint(results: &Results) {
    println!(
        "\nJOURNAL BYTES PER CHANGE — growth of the journal table and its indexes (dbstat) over each bulk phase ÷ \
         rows, vs table t's own bytes per row after the bulk INSERT"
    );
    let row = results.footprints[0].as_ref().map(|f| f.row).unwrap_or_default();
    println!("row of t: {:.1} B on pages, {:.1} B payload", row.pages, row.payload);
    println!("{:<28} {:>24} {:>24} {:>24}  goal", "journal", "per INSERT", "per UPDATE", "per DELETE");
    for (slot, v) in Variant::ALL.iter().enumerate() {
        let (Some(f), Some(name)) = (&results.footprints[slot], v.journal()) else { continue };
        if *v == Variant::PitForeign {
            continue; // the same triggers as the vigil connection's
        }
        let cell = |b: Bytes| format!("{:.1} B {:.2}× ({:.1})", b.pages, b.pages / row.pages, b.payload);
        println!(
            "{:<28} {:>24} {:>24} {:>24}  {}",
            format!("{} ({name})", v.label()),
            cell(f.insert),
            cell(f.update),
            cell(f.delete),
            if *v == Variant::Pit { "UPDATE ≤ 1.5× row" } else { "" }
        );
    }
    println!(
        "(cells: bytes on pages, i.e. b-tree pages with their free space; ratio to the row's bytes on pages; \
         (payload: record bytes))"
    );
    println!("\nWAL pages written per autocommit statement (1000 of each, no checkpoint): INSERT / UPDATE / DELETE");
    for (v, pages) in &results.wal {
        println!("{:<28} {:>6.2} / {:>6.2} / {:>6.2}", v.label(), pages[0], pages[1], pages[2]);
    }
}
