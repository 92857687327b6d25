//! The pit_journal oracle (issue 12, "Tests"): a writer process that never loads vigil (tests/pit/writer.py on
//! Debian's python3, with its SQLite 3.40.1 or with the amalgamation rusqlite bundles) runs a seeded random
//! workload over every capture case of the item 2. In each quiet gap between its units of work it
//! records, in one read transaction, the journal position `max(seq)` and a canonical content hash. Restores to
//! many of those positions, and to instants inside the gaps, each into a new file, must reproduce each state
//! exactly (values and storage classes). Mutation checks break the capture on purpose and show that the oracle
//! then finds differences. Then exact transactions on connections where vigil is loaded, and the cases the
//! oracle found, each reduced to a few statements.
//!
//! A failing restore is explained row by row: the workload depends on its seed only, so the writer replays it
//! without vigil up to the recorded state and diffs that with the restored file. `PIT_ORACLE_SEED_BASE=N`
//! shifts every seed, for a longer campaign (`cargo test -p vigil-tests --test pit_oracle -- oracle_`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use rusqlite::types::Value;
use rusqlite::Connection;
use serde_json::{json, Value as Json};
use vigil_tests::*;

const PYTHON: &str = "/usr/bin/python3";

/// The SQLite library under the writer.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Library {
    /// Debian's libsqlite3 (3.40.1), the one python3 and the sqlite3 shell use.
    Debian,
    /// The amalgamation rusqlite bundles, built as a shared library and put in front with LD_LIBRARY_PATH.
    Bundled,
}

impl Library {
    fn version(self) -> String {
        match self {
            Library::Debian => system_sqlite_version(),
            Library::Bundled => rusqlite::version().to_string(),
        }
    }
}

fn system_sqlite_version() -> String {
    let out = Command::new("sqlite3").arg("--version").output().expect("the sqlite3 shell");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string()
}

/// Debian's python3 on `library`, running the writer script.
fn writer(library: Library) -> Command {
    let mut command = Command::new(PYTHON);
    if library == Library::Bundled {
        command.env("LD_LIBRARY_PATH", bundled_sqlite());
    }
    command.arg(root().join("tests/pit/writer.py"));
    command
}

fn run_ok(command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{command:?} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ------------------------------------------------------------------ the bundled SQLite as a shared library

fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root().join("target"))
}

/// The amalgamation of the libsqlite3-sys version in Cargo.lock, from the cargo registry.
fn amalgamation() -> PathBuf {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).unwrap();
    let at = lock.find("name = \"libsqlite3-sys\"\nversion = \"").expect("libsqlite3-sys in Cargo.lock");
    let version = lock[at..].split('"').nth(3).unwrap();
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"));
    let registry = home.join("registry/src");
    for index in std::fs::read_dir(&registry).unwrap() {
        let source = index.unwrap().path().join(format!("libsqlite3-sys-{version}/sqlite3/sqlite3.c"));
        if source.exists() {
            return source;
        }
    }
    panic!("no libsqlite3-sys-{version}/sqlite3/sqlite3.c under {}", registry.display())
}

/// A directory holding libsqlite3.so.0 built from rusqlite's amalgamation; built once (about half a minute)
/// and kept in target/, named by version. Built under a temporary name and renamed, so parallel test
/// processes never load a half-written library.
fn bundled_sqlite() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = target_dir().join("pit-oracle").join(format!("sqlite-{}", rusqlite::version()));
        let library = dir.join("libsqlite3.so.0");
        if !library.exists() {
            std::fs::create_dir_all(&dir).unwrap();
            let partial = dir.join(format!("libsqlite3.so.0.{}", std::process::id()));
            run_ok(
                Command::new("gcc")
                    .args(["-O1", "-shared", "-fPIC", "-DSQLITE_ENABLE_COLUMN_METADATA", "-DSQLITE_ENABLE_FTS5"])
                    .args(["-DSQLITE_ENABLE_RTREE", "-DSQLITE_ENABLE_MATH_FUNCTIONS", "-o"])
                    .arg(&partial)
                    .arg(amalgamation())
                    .args(["-lm", "-lpthread", "-ldl"]),
            );
            std::fs::rename(&partial, &library).unwrap();
        }
        dir
    })
    .clone()
}

// ------------------------------------------------------------------ a writer run and its records

/// One run of the oracle.
#[derive(Clone, Copy, Debug)]
struct Run {
    seed: u64,
    units: usize,
    library: Library,
    recursive_triggers: bool,
    trusted_schema: bool,
    /// Where vigil runs the restores: the sqlite3 shell (3.40) or rusqlite (bundled SQLite).
    restore_in_shell: bool,
    /// How many recorded positions, and how many instants in quiet gaps, to restore to.
    seq_restores: usize,
    time_restores: usize,
    /// Whether a difference is explained row by row (a replay of the workload; slow).
    explain: bool,
    /// The database in WAL mode (else a rollback journal).
    wal: bool,
}

/// Cases of the workload that reach core faults already reported, each shown by its own ignored test below:
/// the oracle runs leave them out so that everything else stays checked. When a fault is fixed, remove its
/// name here and the `ignore` of its test. PIT_ORACLE_ALL_CASES=1 puts them all back.
const AVOIDED: &[&str] = &[];

impl Run {
    fn options(&self) -> String {
        let on = |b: bool| if b { "on" } else { "off" };
        let avoid = if std::env::var_os("PIT_ORACLE_ALL_CASES").is_some() { String::new() } else { AVOIDED.join("+") };
        format!(
            "recursive_triggers={},trusted_schema={},avoid={avoid}",
            on(self.recursive_triggers),
            on(self.trusted_schema)
        )
    }

    fn describe(&self) -> String {
        let host = if self.restore_in_shell { "sqlite3 shell" } else { "rusqlite" };
        let mode = if self.wal { "WAL" } else { "rollback journal" };
        format!(
            "seed {} on SQLite {} ({}, {mode}), restores in the {host}",
            self.seed,
            self.library.version(),
            self.options()
        )
    }
}

/// A committed state seen in a quiet gap.
#[derive(Clone, Debug)]
struct Record {
    seq: Option<i64>,
    hash: String,
    tables: BTreeMap<String, String>,
    /// Unix ms just after the unit before it ended, and just before the next began.
    t0: i64,
    t1: i64,
    after: u64,
}

struct Recording {
    header: Json,
    records: Vec<Record>,
    summary: Json,
}

fn parse_recording(text: &str) -> Recording {
    let mut lines: Vec<Json> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let summary = lines.pop().unwrap()["summary"].clone();
    let header = lines.remove(0)["header"].clone();
    assert!(summary.is_object() && header.is_object(), "a truncated recording");
    let records = lines.iter().map(record_of).collect();
    Recording { header, records, summary }
}

fn record_of(line: &Json) -> Record {
    let tables = line["tables"].as_object().unwrap();
    Record {
        seq: line["seq"].as_i64(),
        hash: line["hash"].as_str().unwrap().to_string(),
        tables: tables.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect(),
        t0: line["t0"].as_i64().unwrap(),
        t1: line["t1"].as_i64().unwrap(),
        after: line["after"].as_u64().unwrap(),
    }
}

/// Creates the writer's schema and first rows with the writer itself (vigil not loaded).
fn set_up(db: &Path, run: &Run) {
    let mode = if run.wal { "wal" } else { "delete" };
    run_ok(writer(run.library).arg("--setup").arg(db).arg(run.seed.to_string()).arg(mode));
}

/// The tables the writer creates.
const TABLES: [&str; 10] =
    ["audit", "child", "parent", "t_gen", "t_ipk", "t_nokey", "t_ocr", "t_part", "t_text", "t_wr"];

/// `pit_enable('*')` through the sqlite3 shell with vigil loaded; asserts every table is tracked.
fn enable(db: &Path) -> Json {
    let result = call(&Shell, db, "SELECT pit_enable('*')");
    let mut tracked: Vec<&str> = result["tracked"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    tracked.sort();
    assert_eq!(tracked, TABLES, "{result}");
    assert_eq!(result["skipped"], json!([]), "{result}");
    let warnings = result["warnings"].to_string();
    assert!(warnings.contains("t_nokey"), "a table without a declared key is tracked by rowid: {result}");
    result
}

fn write(db: &Path, run: &Run, out: &Path) -> Recording {
    let mut command = writer(run.library);
    command.arg(db).arg(run.seed.to_string()).arg(run.units.to_string()).arg(run.options()).arg(out);
    run_ok(&mut command);
    let recording = parse_recording(&std::fs::read_to_string(out).unwrap());
    assert_eq!(recording.header["sqlite_version"], json!(run.library.version()), "the writer ran on another SQLite");
    let unexpected = &recording.summary["unexpected_errors"];
    assert_eq!(unexpected, &json!([]), "the journal caused errors in a writer that never loaded vigil");
    recording
}

// ------------------------------------------------------------------ restores and their check

/// What a restore is asked for, and which record it must reproduce.
#[derive(Clone, Debug)]
struct Target {
    instant: Value,
    expected: Record,
    /// A time instant: its cut must be the record's position.
    timed: bool,
}

impl Target {
    fn describe(&self) -> String {
        let instant = match &self.instant {
            Value::Text(t) => t.clone(),
            Value::Real(r) => format!("{r} (unix seconds)"),
            other => format!("{other:?}"),
        };
        format!("{instant} (state after unit {}, seq {:?})", self.expected.after, self.expected.seq)
    }

    fn sql_literal(&self) -> String {
        match &self.instant {
            Value::Text(t) => format!("'{}'", t.replace('\'', "''")),
            Value::Real(r) => format!("{r:.3}"),
            other => panic!("{other:?}"),
        }
    }
}

/// Up to `n` items spread evenly over `items`, always with the first and the last.
fn spread<T: Clone>(items: &[T], n: usize) -> Vec<T> {
    if items.len() <= n {
        return items.to_vec();
    }
    (0..n).map(|i| items[i * (items.len() - 1) / (n - 1).max(1)].clone()).collect()
}

/// Restore targets: recorded positions (each distinct seq once), and instants in the middle of quiet gaps
/// wide enough that no statement's `at` (ms) can equal them, written in the three accepted forms.
fn targets(records: &[Record], run: &Run) -> Vec<Target> {
    let mut by_seq: Vec<Record> = Vec::new();
    for record in records.iter().filter(|r| r.seq.is_some()) {
        if by_seq.last().map(|r| r.seq) != Some(record.seq) {
            by_seq.push(record.clone());
        }
    }
    let mut targets: Vec<Target> = spread(&by_seq, run.seq_restores)
        .into_iter()
        .map(|r| Target { instant: Value::Text(format!("{{\"seq\":{}}}", r.seq.unwrap())), expected: r, timed: false })
        .collect();
    let gaps: Vec<Record> = records.iter().filter(|r| r.t1 - r.t0 >= 3).cloned().collect();
    for (i, record) in spread(&gaps, run.time_restores).into_iter().enumerate() {
        let ms = record.t0 + (record.t1 - record.t0) / 2;
        let instant = match i % 4 {
            0 => Value::Real(ms as f64 / 1000.0),
            1 => Value::Text(rfc3339(ms, 330)),
            _ => Value::Text(rfc3339(ms, 0)),
        };
        targets.push(Target { instant, expected: record, timed: true });
    }
    targets
}

/// `2026-12-01T14:03:27.250Z` (or with a `+05:30`-style offset) for unix milliseconds.
fn rfc3339(unix_ms: i64, offset_minutes: i64) -> String {
    let local = unix_ms + offset_minutes * 60_000;
    let (days, ms_of_day) = (local.div_euclid(86_400_000), local.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(days);
    let (h, m, s, ms) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60, ms_of_day / 1000 % 60, ms_of_day % 1000);
    let zone = match offset_minutes {
        0 => "Z".to_string(),
        o => format!("{}{:02}:{:02}", if o < 0 { '-' } else { '+' }, o.abs() / 60, o.abs() % 60),
    };
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}{zone}")
}

/// Year, month, day of a count of days since 1970-01-01 (proleptic Gregorian; H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// `pit_restore(instant, target)` for each target, in one process of the chosen host; the parsed result or
/// SQLite's error for each.
fn restore_all(db: &Path, targets: &[(Target, PathBuf)], in_shell: bool) -> Vec<Result<Json, String>> {
    if in_shell {
        return restore_in_shell(db, targets);
    }
    let conn = Rusqlite::open(db);
    targets
        .iter()
        .map(|(target, file)| {
            let path = file.to_str().unwrap();
            conn.query_row("SELECT pit_restore(?1, ?2)", rusqlite::params![target.instant, path], |r| {
                r.get::<_, String>(0)
            })
            .map_err(|e| e.to_string())
            .map(|text| serde_json::from_str(&text).unwrap())
        })
        .collect()
}

/// The same through one sqlite3 shell: each result line is tagged with its target's index; a target with
/// no line failed, and the shell's error lines say why.
fn restore_in_shell(db: &Path, targets: &[(Target, PathBuf)]) -> Vec<Result<Json, String>> {
    let mut script = format!(".load {}\n.mode list\n", library().display());
    for (i, (target, file)) in targets.iter().enumerate() {
        let path = file.to_str().unwrap().replace('\'', "''");
        script.push_str(&format!("SELECT '{i} ' || pit_restore({}, '{path}');\n", target.sql_literal()));
    }
    let out = shell_run(db, &script, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut results: Vec<Result<Json, String>> =
        vec![Err(format!("no result; the shell said: {errors}")); targets.len()];
    for line in stdout.lines() {
        let (index, text) = line.split_once(' ').unwrap();
        results[index.parse::<usize>().unwrap()] = Ok(serde_json::from_str(text).unwrap());
    }
    results
}

/// The writer's hash of each file, on the writer's library (so that generated columns compute alike).
fn hashes(library: Library, files: &[PathBuf]) -> BTreeMap<PathBuf, Record> {
    let mut command = writer(library);
    command.arg("--hash").args(files);
    run_ok(&mut command)
        .lines()
        .map(|l| {
            let line: Json = serde_json::from_str(l).unwrap();
            let mut fields = line.clone();
            fields["t0"] = json!(0);
            fields["t1"] = json!(0);
            fields["after"] = json!(0);
            (PathBuf::from(line["path"].as_str().unwrap()), record_of(&fields))
        })
        .collect()
}

/// The writer's hash of a database's user tables.
fn content(file: &Path) -> String {
    content_on(Library::Debian, file)
}

fn content_on(library: Library, file: &Path) -> String {
    hashes(library, &[file.to_path_buf()]).into_values().next().unwrap().hash
}

/// What the oracle found in one run.
#[derive(Default)]
struct Report {
    restores: usize,
    differences: Vec<String>,
    /// How many restores reported each `consistency`.
    consistency: BTreeMap<String, usize>,
}

impl Report {
    fn differ(&mut self, what: String) {
        self.differences.push(what);
    }
}

/// Records with the same journal position must hold the same content: otherwise a committed change left
/// no journal row.
fn check_positions(records: &[Record], report: &mut Report) {
    for pair in records.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.seq == b.seq && a.hash != b.hash {
            let tables = differing_tables(&a.tables, &b.tables);
            report.differ(format!(
                "units {}..{} changed {tables:?} without a journal row (seq {:?})",
                a.after, b.after, a.seq
            ));
        }
        if b.seq < a.seq {
            report.differ(format!(
                "the journal position went back from {:?} to {:?} after unit {}",
                a.seq, b.seq, b.after
            ));
        }
    }
}

fn differing_tables(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    names.into_iter().filter(|n| a.get(*n) != b.get(*n)).cloned().collect()
}

/// Restores every target into a new file and compares each with its record.
fn check_restores(db: &Path, dir: &Path, run: &Run, records: &[Record], report: &mut Report) {
    let targets: Vec<(Target, PathBuf)> =
        targets(records, run).into_iter().enumerate().map(|(i, t)| (t, dir.join(format!("restored-{i}.db")))).collect();
    let results = restore_all(db, &targets, run.restore_in_shell);
    let mut restored = Vec::new();
    for ((target, file), result) in targets.iter().zip(&results) {
        report.restores += 1;
        match result {
            Err(e) => report.differ(format!("restore to {} failed: {e}", target.describe())),
            Ok(r) if target.timed && r["cut"]["seq"].as_i64() != target.expected.seq => {
                report.differ(format!("restore to {} cut at {}", target.describe(), r["cut"]))
            }
            Ok(r) if !file.exists() => report.differ(format!("restore to {} made no file: {r}", target.describe())),
            Ok(r) => {
                *report.consistency.entry(r["consistency"].as_str().unwrap_or("?").to_string()).or_default() += 1;
                restored.push((target, file.clone()))
            }
        }
    }
    let files: Vec<PathBuf> = restored.iter().map(|(_, f)| f.clone()).collect();
    let seen = if files.is_empty() { BTreeMap::new() } else { hashes(run.library, &files) };
    let mut explained = 0;
    for (target, file) in restored {
        let got = &seen[&file];
        if got.hash != target.expected.hash {
            let tables = differing_tables(&target.expected.tables, &got.tables);
            let rows = if run.explain && explained < 3 { explain(run, &target.expected, &file) } else { String::new() };
            explained += 1;
            report.differ(format!("restore to {} differs in {tables:?}{rows}", target.describe()));
        }
    }
}

/// The rows a restored file gets wrong: the workload is deterministic for a seed, so the writer replays it
/// without vigil up to the recorded state, and diffs.
fn explain(run: &Run, expected: &Record, restored: &Path) -> String {
    let dir = scratch();
    let db = dir.path().join("replayed.db");
    set_up(&db, run);
    let replay = Run { units: expected.after as usize, ..*run };
    write(&db, &replay, &dir.path().join("replay.jsonl"));
    if content_on(run.library, &db) != expected.hash {
        return "\n    (the replay without vigil did not reach the recorded state)".into();
    }
    let diff = run_ok(writer(run.library).arg("--diff").arg(&db).arg(restored));
    diff.lines().map(|l| format!("\n    {l}")).collect()
}

/// Sets up, enables, optionally breaks the capture (`mutate`), writes, and checks restores.
fn oracle(run: Run, mutate: impl FnOnce(&Path)) -> Report {
    let dir = scratch();
    let db = dir.path().join("live.db");
    set_up(&db, &run);
    enable(&db);
    mutate(&db);
    let recording = write(&db, &run, &dir.path().join("records.jsonl"));
    let mut report = Report::default();
    check_positions(&recording.records, &mut report);
    check_restores(&db, dir.path(), &run, &recording.records, &mut report);
    eprintln!(
        "{}: {} units ({}), {} statements, errors expected of the workload {}; {} restores (consistency {:?}), {} differences",
        run.describe(),
        run.units,
        recording.summary["units"],
        recording.summary["statements"],
        recording.summary["expected_errors"],
        report.restores,
        report.consistency,
        report.differences.len()
    );
    report
}

/// Seeds are shifted by PIT_ORACLE_SEED_BASE when set: a longer campaign runs the same tests on other seeds.
fn seeded(run: Run) -> Run {
    let base: u64 = std::env::var("PIT_ORACLE_SEED_BASE").map(|s| s.parse().unwrap()).unwrap_or(0);
    Run { seed: run.seed + base, ..run }
}

fn assert_exact(run: Run) {
    let run = seeded(run);
    let report = oracle(run, |_| ());
    assert!(report.restores > 0);
    assert!(
        report.differences.is_empty(),
        "{}: {} of {} checks failed:\n{}",
        run.describe(),
        report.differences.len(),
        report.restores,
        report.differences.join("\n")
    );
}

const BASE: Run = Run {
    seed: 1,
    units: 200,
    library: Library::Debian,
    recursive_triggers: false,
    trusted_schema: true,
    restore_in_shell: false,
    seq_restores: 25,
    time_restores: 12,
    explain: true,
    wal: false,
};

/// One run per combination of writer library, trusted_schema and recursive_triggers, each with its own seed;
/// vigil restores in the 3.40 shell for half of them and in rusqlite's bundled SQLite for the other half, and
/// half the databases are in WAL mode (both splits balanced against each setting).
fn matrix(library: Library, trusted_schema: bool, recursive_triggers: bool) {
    let bits = [library == Library::Bundled, !trusted_schema, recursive_triggers];
    let index = bits.iter().fold(0, |n, &b| 2 * n + b as u64);
    let restore_in_shell = bits[0] == bits[2];
    let wal = bits.iter().filter(|&&b| b).count() % 2 == 1;
    assert_exact(Run { seed: index + 1, library, trusted_schema, recursive_triggers, restore_in_shell, wal, ..BASE });
}

#[test]
fn oracle_sqlite_3_40_trusted_schema_on_recursive_triggers_off() {
    matrix(Library::Debian, true, false);
}

#[test]
fn oracle_sqlite_3_40_trusted_schema_on_recursive_triggers_on() {
    matrix(Library::Debian, true, true);
}

#[test]
fn oracle_sqlite_3_40_trusted_schema_off_recursive_triggers_off() {
    matrix(Library::Debian, false, false);
}

#[test]
fn oracle_sqlite_3_40_trusted_schema_off_recursive_triggers_on() {
    matrix(Library::Debian, false, true);
}

#[test]
fn oracle_bundled_sqlite_trusted_schema_on_recursive_triggers_off() {
    matrix(Library::Bundled, true, false);
}

#[test]
fn oracle_bundled_sqlite_trusted_schema_on_recursive_triggers_on() {
    matrix(Library::Bundled, true, true);
}

#[test]
fn oracle_bundled_sqlite_trusted_schema_off_recursive_triggers_off() {
    matrix(Library::Bundled, false, false);
}

#[test]
fn oracle_bundled_sqlite_trusted_schema_off_recursive_triggers_on() {
    matrix(Library::Bundled, false, true);
}

// ------------------------------------------------------------------ mutation checks: the oracle has teeth

/// Removes vigil's triggers with the given suffix (`bi`: the BEFORE INSERT probe…) from every tracked table, as
/// if the capture had never had them. Not by DROP TRIGGER: vigil notices that schema change (the next pit call
/// recreates the triggers, and a restore across an unseen schema change refuses for rowid-keyed tables). The
/// rows go from sqlite_schema with writable_schema, which leaves the schema version alone; every connection
/// opened later (the writer's, the restores') reads the schema without them.
fn drop_triggers(db: &Path, suffix: &str) {
    let conn = Connection::open(db).unwrap();
    let pattern = format!("vigil\\_pit\\_%\\_{suffix}");
    let version = |c: &Connection| c.query_row("PRAGMA schema_version", [], |r| r.get::<_, i64>(0)).unwrap();
    let before = version(&conn);
    conn.execute_batch("PRAGMA writable_schema = ON").unwrap();
    let removed = conn
        .execute("DELETE FROM sqlite_schema WHERE type = 'trigger' AND name LIKE ?1 ESCAPE '\\'", [&pattern])
        .unwrap();
    conn.execute_batch("PRAGMA writable_schema = OFF").unwrap();
    assert_eq!(removed, TABLES.len(), "one {suffix} trigger per tracked table");
    assert_eq!(version(&conn), before, "the mutation must stay unseen by vigil");
}

/// The same seeded run three times: as is, without the BEFORE INSERT probes, without the BEFORE UPDATE
/// probes (recursive_triggers off, so REPLACE deletes are seen by the probes alone). Each mutant must fail
/// more checks than the intact capture (which fails none once the capture is right).
#[test]
fn mutations_of_the_capture_are_caught() {
    let run = seeded(Run { seed: 11, units: 100, seq_restores: 20, time_restores: 8, explain: false, ..BASE });
    let intact = oracle(run, |_| ()).differences.len();
    eprintln!("intact capture: {intact} checks failed");
    for suffix in ["bi", "bu"] {
        let report = oracle(run, |db| drop_triggers(db, suffix));
        let wrong = report.differences.iter().filter(|d| d.contains(" differs in ")).count();
        eprintln!(
            "without the {suffix} triggers: {} of {} checks failed ({wrong} restores with wrong content, the others \
             failed)",
            report.differences.len(),
            report.restores
        );
        for difference in report.differences.iter().take(3) {
            eprintln!("  {difference}");
        }
        let caught = report.differences.len();
        assert!(caught > intact, "without its {suffix} triggers the capture failed {caught} checks, intact {intact}");
    }
}

// ------------------------------------------------------------------ exact transactions on vigil connections

/// A database with one table `t`, journaled, and a connection to it with vigil loaded.
fn journaled(dir: &Path) -> (PathBuf, Connection) {
    let db = dir.join("exact.db");
    create_db(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v); INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');");
    let conn = Rusqlite::open(&db);
    let result: String = conn.query_row("SELECT pit_enable('*')", [], |r| r.get(0)).unwrap();
    assert!(result.contains("\"t\""), "{result}");
    (db, conn)
}

fn position(conn: &Connection) -> i64 {
    conn.query_row("SELECT coalesce(max(seq), 0) FROM vigil_pit_log", [], |r| r.get(0)).unwrap()
}

/// The txn of every journal row after `after`, in commit order.
fn txns_after(conn: &Connection, after: i64) -> Vec<Option<i64>> {
    let mut stmt = conn.prepare("SELECT txn FROM vigil_pit_log WHERE seq > ?1 ORDER BY seq").unwrap();
    stmt.query_map([after], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

/// Splits `txns` into groups of the given sizes and asserts each group is one known transaction and the
/// groups are distinct transactions.
fn assert_groups(txns: &[Option<i64>], sizes: &[usize]) {
    assert_eq!(txns.len(), sizes.iter().sum::<usize>(), "journal rows: {txns:?}");
    let mut seen = Vec::new();
    let mut rest = txns;
    for &size in sizes {
        let (group, tail) = rest.split_at(size);
        assert!(group[0].is_some(), "a vigil connection's change has no txn: {txns:?}");
        assert!(group.iter().all(|t| t == &group[0]), "one transaction, several txns: {txns:?} (groups {sizes:?})");
        assert!(!seen.contains(&group[0]), "two transactions share a txn: {txns:?} (groups {sizes:?})");
        seen.push(group[0]);
        rest = tail;
    }
}

/// Exact transactions (issue 12, Tests, second bullet; tests/pit_core.rs has the single-connection cases):
/// two vigil connections committing in turn, with autocommit statements and a rollback between, each
/// transaction one txn of its own.
#[test]
fn transactions_of_two_vigil_connections_in_turn_get_distinct_txns() {
    let dir = scratch();
    let (db, conn) = journaled(dir.path());
    let other = Rusqlite::open(&db);
    let before = position(&conn);
    conn.execute_batch(
        "BEGIN; INSERT INTO t VALUES (10, 1); INSERT INTO t VALUES (11, 1); UPDATE t SET v = 2 WHERE id = 1; COMMIT;",
    )
    .unwrap();
    conn.execute_batch("BEGIN; UPDATE t SET v = 3 WHERE id = 10; DELETE FROM t WHERE id = 11; COMMIT;").unwrap();
    conn.execute_batch("INSERT INTO t VALUES (12, 'autocommit');").unwrap();
    conn.execute_batch("UPDATE t SET v = 'again' WHERE id = 12;").unwrap();
    conn.execute_batch("BEGIN; INSERT INTO t VALUES (13, 'rolled back'); ROLLBACK;").unwrap();
    conn.execute_batch("BEGIN; INSERT INTO t VALUES (14, 1); UPDATE t SET v = 4 WHERE id = 14; COMMIT;").unwrap();
    other
        .execute_batch("BEGIN; INSERT INTO t VALUES (15, 'other'); INSERT INTO t VALUES (16, 'other'); COMMIT;")
        .unwrap();
    conn.execute_batch("BEGIN; DELETE FROM t WHERE id IN (15, 16); COMMIT;").unwrap();
    assert_groups(&txns_after(&conn, before), &[3, 2, 1, 1, 2, 2, 2]);
}

// ------------------------------------------------------------------ the oracle's own parts

#[test]
fn instants_are_written_as_rfc_3339() {
    assert_eq!(rfc3339(1_796_158_897_366, 0), "2026-12-01T21:01:37.366Z");
    assert_eq!(rfc3339(1_796_158_897_366, 330), "2026-12-02T02:31:37.366+05:30");
    assert_eq!(rfc3339(951_782_400_000, 0), "2000-02-29T00:00:00.000Z");
    assert_eq!(rfc3339(4_102_444_799_999, 330), "2100-01-01T05:29:59.999+05:30");
}

/// Without vigil the writer runs its workload with no error but the workload's own, on both libraries, and
/// its --hash of the file equals the state it recorded last.
#[test]
fn the_writer_runs_without_vigil_and_hashes_files_as_it_records() {
    for library in [Library::Debian, Library::Bundled] {
        let dir = scratch();
        let db = dir.path().join("plain.db");
        let run = Run { seed: 5, units: 60, library, ..BASE };
        set_up(&db, &run);
        let recording = write(&db, &run, &dir.path().join("records.jsonl"));
        let last = recording.records.last().unwrap();
        assert!(recording.records.iter().all(|r| r.seq.is_none()), "no journal, no position");
        assert_eq!(content_on(library, &db), last.hash);
        let distinct: std::collections::BTreeSet<&String> = recording.records.iter().map(|r| &r.hash).collect();
        assert!(distinct.len() > 20, "the workload changes the content: {} states", distinct.len());
    }
}

// ------------------------------------------------------------------ cases the oracle found, one by one

/// `sql` on a new database, journaled; then `writes` from a connection without vigil; then a restore into a
/// new file to the position before the writes must hold the content from before them.
fn assert_restores_before(sql: &str, writes: &str) {
    let dir = scratch();
    let db = dir.path().join("case.db");
    create_db(&db, sql);
    let vigil = Rusqlite::open(&db);
    let _: String = vigil.query_row("SELECT pit_enable('*')", [], |r| r.get(0)).unwrap();
    let (before_seq, before) = (position(&vigil), content(&db));
    let copy = dir.path().join("before.db");
    std::fs::copy(&db, &copy).unwrap(); // no transaction is open: the file is the committed state
    Connection::open(&db).unwrap().execute_batch(writes).unwrap();
    assert_ne!(content(&db), before, "the writes change the content");
    let file = dir.path().join("restored.db");
    let instant = format!("{{\"seq\":{before_seq}}}");
    let result: String = vigil
        .query_row("SELECT pit_restore(?1, ?2)", [instant.as_str(), file.to_str().unwrap()], |r| r.get(0))
        .unwrap();
    let diff = run_ok(writer(Library::Debian).arg("--diff").arg(&copy).arg(&file));
    assert_eq!(content(&file), before, "after {writes}\n{diff}{result}");
}

/// TEXT that is not valid UTF-8 (SQLite stores any bytes; `CAST(x'…' AS TEXT)`, `upper()` or `||` of a BLOB
/// make it) comes back byte for byte, as a value and as a key, also beside a key it would equal if decoded
/// with replacement characters.
#[test]
fn text_that_is_not_utf8_is_restored_byte_for_byte() {
    assert_restores_before(
        "CREATE TABLE t(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
         INSERT INTO t VALUES (CAST(x'41ff' AS TEXT), CAST(x'00ff' AS TEXT)), (CAST(x'41efbfbd' AS TEXT), 'valid');",
        "UPDATE t SET v = 'changed'; DELETE FROM t WHERE k = CAST(x'41ff' AS TEXT);",
    );
}

/// An UPDATE OR REPLACE that makes a row enter a partial UNIQUE index (a column of the index's WHERE clause
/// changes, not an indexed column) deletes the row it now collides with; with recursive_triggers off only the
/// BEFORE UPDATE probe can see that.
#[test]
fn a_row_entering_a_partial_unique_index_by_update_or_replace_is_journaled() {
    assert_restores_before(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, email TEXT, active INTEGER);
         CREATE UNIQUE INDEX t_active_email ON t(email) WHERE active = 1;
         INSERT INTO t VALUES (1, 'a', 1), (2, 'a', 0);",
        "UPDATE OR REPLACE t SET active = 1 WHERE id = 2;",
    );
}

/// An application trigger that updates the row its table's UPDATE just changed, created after pit_enable by a
/// writer without vigil, which then runs an UPDATE that fires it before any pit call. Triggers fire newest
/// first, so the nested change is journaled before the outer one (tests/pit_core.rs shows that the next pit
/// call puts vigil's triggers back in front). The restore to the position before the UPDATE must still give
/// the row as it was (each change's OLD image is the previous change's NEW image: the order can be told), or
/// refuse; never the intermediate row.
#[test]
fn a_nested_update_by_an_application_trigger_newer_than_vigils_restores_right() {
    let dir = scratch();
    let db = dir.path().join("case.db");
    create_db(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v, n INTEGER); INSERT INTO t VALUES (1, 'orig', 0);");
    let vigil = Rusqlite::open(&db);
    let _: String = vigil.query_row("SELECT pit_enable('*')", [], |r| r.get(0)).unwrap();
    let before_seq = position(&vigil);
    let plain = Connection::open(&db).unwrap();
    plain
        .execute_batch(
            "CREATE TRIGGER app_touch AFTER UPDATE OF v ON t BEGIN UPDATE t SET n = n + 1 WHERE id = NEW.id; END;
             UPDATE t SET v = 'new' WHERE id = 1;",
        )
        .unwrap();
    let file = dir.path().join("restored.db");
    let instant = format!("{{\"seq\":{before_seq}}}");
    let result = vigil
        .query_row("SELECT pit_restore(?1, ?2)", [instant.as_str(), file.to_str().unwrap()], |r| r.get::<_, String>(0));
    match result {
        Ok(result) => {
            let restored = Connection::open(&file).unwrap();
            let row: (String, i64) =
                restored.query_row("SELECT v, n FROM t", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
            assert_eq!(row, ("orig".to_string(), 0), "{result}");
        }
        Err(refusal) => eprintln!("the restore refused: {refusal}"),
    }
}
