//! Issue 14, review fixes: the query statistics `vigil metrics` exports from `vigil_query_stats` are counters, so
//! their merged sums must never decrease while the database file lives (a contributor pruned after a week, an
//! application's query_stats_reset(), a statement evicted and back), and query_stats_save() must not write into
//! a database the application opened read-only. Each application here is a real Debian python3 process; the
//! sums are read from the real `vigil metrics` output, as Prometheus would scrape them.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use rusqlite::Connection;
use vigil_tests::*;

/// A database with an indexed table of 100 rows.
fn table_db(dir: &Path) -> std::path::PathBuf {
    let db = dir.join("app.db");
    create_db(
        &db,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, w TEXT);
         WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 100)
         INSERT INTO t SELECT v, 'x' || v FROM s;",
    );
    db
}

/// One python3 process (an application) with vigil loaded on `db`; `snap()` prints the `vigil metrics` output
/// between `---` lines, so a test reads the exported counters at points inside one process's life. `save()` saves
/// with tracing stopped (else each save would count the previous one as a new call), prints the result, snaps and
/// traces again.
fn application(db: &Path, script: &str) -> (String, Vec<BTreeMap<String, f64>>) {
    let program = format!(
        "import sqlite3, sys, json, subprocess\ncon = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
         con.enable_load_extension(True)\ncon.load_extension(sys.argv[2])\n\
         def one(sql):\n    return con.execute(sql).fetchone()[0]\n\
         def run(sql, n):\n    for i in range(n): con.execute(sql, (i % 100 + 1,)).fetchall()\n\
         def snap():\n    out = subprocess.run([sys.argv[3], 'metrics', sys.argv[1], '--statements', '1000'], \
         capture_output=True, text=True)\n    assert out.returncode == 0, out.stderr\n    \
         print('---'); print(out.stdout, end=''); print('---')\n\
         def save():\n    one('SELECT query_stats_stop()'); print(one('SELECT query_stats_save()')); snap()\n    \
         one('SELECT query_stats_start()')\n{script}"
    );
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(program)
        .arg(db)
        .arg(library())
        .arg(cli_binary())
        .output()
        .unwrap();
    assert!(out.status.success(), "python3: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let snapshots = stdout.split("---\n").skip(1).step_by(2).map(counters).collect();
    let printed = stdout.split("---\n").step_by(2).collect::<Vec<_>>().concat();
    (printed, snapshots)
}

/// The query-statistics counter series of an exposition: `name{labels}` → value.
fn counters(exposition: &str) -> BTreeMap<String, f64> {
    exposition
        .lines()
        .filter(|l| l.starts_with("vigil_query_duration_seconds") || l.starts_with("vigil_slow_queries_total"))
        .chain(exposition.lines().filter(|l| l.starts_with("vigil_statement_") && !l.contains("_info")))
        .chain(exposition.lines().filter(|l| l.starts_with("vigil_query_stats_evictions_total")))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap_or_else(|_| panic!("{l}")))
        })
        .collect()
}

/// Every series of `before` is still there in `after`, with a value at least as large.
fn assert_non_decreasing(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, step: &str) {
    assert!(!before.is_empty(), "{step}: nothing exported");
    for (series, old) in before {
        let new = after.get(series).unwrap_or_else(|| panic!("{step}: {series} vanished: {after:#?}"));
        assert!(new >= old, "{step}: {series} went from {old} to {new}");
    }
}

/// A series of the database app.db by its metric name.
fn value(snapshot: &BTreeMap<String, f64>, name: &str) -> f64 {
    let series = format!("{name}{{db=\"app.db\"}}");
    *snapshot.get(&series).unwrap_or_else(|| panic!("no {series} in {snapshot:#?}"))
}

/// Ages every saved row by `days`, as if the processes had saved that long ago.
fn age_saved_rows(db: &Path, days: i64) {
    let conn = Connection::open(db).unwrap();
    conn.execute(
        &format!("UPDATE vigil_query_stats SET saved_at = strftime('%Y-%m-%dT%H:%M:%fZ', saved_at, '-{days} days')"),
        [],
    )
    .unwrap();
}

fn scalar(db: &Path, sql: &str) -> i64 {
    Connection::open(db).unwrap().query_row(sql, [], |r| r.get(0)).unwrap()
}

const LOOKUP: &str = "SELECT w FROM t WHERE id = ?";

#[test]
fn a_reset_does_not_make_the_exported_counters_go_backwards_and_saving_twice_changes_nothing() {
    let dir = scratch();
    let db = table_db(dir.path());
    let (printed, snaps) = application(
        &db,
        &format!(
            "one('SELECT query_stats_start(\\'{{\"slow_ms\": 0}}\\')')\nrun('{LOOKUP}', 20)\n\
             save()\n\
             save()\n\
             one('SELECT query_stats_reset()')\nrun('{LOOKUP}', 3)\n\
             save()\n"
        ),
    );
    let [saved, saved_again, after_reset] = &snaps[..] else { panic!("{snaps:?}") };
    assert_eq!(saved, saved_again, "saving twice without new calls changed the export");
    assert_eq!(value(saved, "vigil_slow_queries_total"), 20.0);
    assert_non_decreasing(saved, after_reset, "query_stats_reset() then save");
    // 20 before, then query_stats_reset()'s own statement (it ends after the reset) and 3 lookups.
    assert_eq!(value(after_reset, "vigil_slow_queries_total"), 24.0, "{printed}");
    assert_eq!(value(after_reset, "vigil_query_duration_seconds_count"), 24.0);
    // The reset is a new contributor of the same process; the rows saved before it stay.
    assert!(printed.contains("\"contributors\":2"), "{printed}");
}

#[test]
fn pruning_a_week_old_contributor_keeps_its_counts_in_the_retired_aggregate() {
    let dir = scratch();
    let db = table_db(dir.path());
    let (_, first) = application(
        &db,
        &format!("one('SELECT query_stats_start(\\'{{\"slow_ms\": 0}}\\')')\nrun('{LOOKUP}', 20)\nsave()\n"),
    );
    age_saved_rows(&db, 8);
    let script = format!("one('SELECT query_stats_start(\\'{{\"slow_ms\": 0}}\\')')\nrun('{LOOKUP}', 2)\nsave()\n");
    let (printed, second) = application(&db, &script);
    assert!(printed.contains("\"pruned\":1") && printed.contains("\"contributors\":1"), "{printed}");
    assert_non_decreasing(&first[0], &second[0], "the first contributor pruned");
    assert_eq!(value(&second[0], "vigil_slow_queries_total"), 22.0);
    assert_eq!(scalar(&db, "SELECT count(*) FROM vigil_query_stats WHERE pid = 0 AND queryid IS NULL"), 1);
    // A second prune folds into the same aggregate.
    age_saved_rows(&db, 8);
    let (printed, third) = application(&db, &script);
    assert!(printed.contains("\"pruned\":1"), "{printed}");
    assert_non_decreasing(&second[0], &third[0], "the second contributor pruned");
    assert_eq!(value(&third[0], "vigil_slow_queries_total"), 24.0);
    assert_eq!(
        scalar(&db, "SELECT sum(calls) FROM vigil_query_stats WHERE query LIKE 'SELECT w FROM t WHERE id%'"),
        24
    );
    assert_eq!(scalar(&db, "SELECT count(*) FROM vigil_query_stats WHERE pid = 0 AND queryid IS NULL"), 1);
}

#[test]
fn a_statement_evicted_and_back_keeps_counting_up() {
    let dir = scratch();
    let db = table_db(dir.path());
    let (a, b, c) =
        ("SELECT w AS a FROM t WHERE id = ?", "SELECT w AS b FROM t WHERE id = ?", "SELECT w AS c FROM t WHERE id = ?");
    let (printed, snaps) = application(
        &db,
        &format!(
            "one('SELECT query_stats_start(\\'{{\"slow_ms\": 0, \"max\": 2}}\\')')\n\
             run('{a}', 2)\nsave()\n\
             run('{b}', 5)\nrun('{c}', 5)\nsave()\n\
             run('{a}', 1)\nsave()\n\
             print(one('SELECT query_stats_info()'))\n"
        ),
    );
    assert_eq!(snaps.len(), 3, "{printed}");
    assert_non_decreasing(&snaps[0], &snaps[1], "a evicted");
    assert_non_decreasing(&snaps[1], &snaps[2], "a back, b evicted");
    assert!(printed.contains("\"evictions\":2"), "{printed}");
    let calls_of = |alias: &str| {
        scalar(&db, &format!("SELECT sum(calls) FROM vigil_query_stats WHERE query LIKE 'SELECT w AS {alias} FROM%'"))
    };
    assert_eq!((calls_of("a"), calls_of("b"), calls_of("c")), (3, 5, 5));
    assert_eq!(value(&snaps[2], "vigil_slow_queries_total"), 13.0);
}

#[test]
fn the_retired_aggregate_keeps_at_most_a_thousand_statement_rows_and_every_call_in_its_totals() {
    let dir = scratch();
    let db = table_db(dir.path());
    let (_, first) = application(
        &db,
        "one('SELECT query_stats_start(\\'{\"slow_ms\": 0}\\')')\n\
         for i in range(1100): con.execute('SELECT count(*) AS c%d FROM t' % i).fetchall()\n\
         save()\n",
    );
    age_saved_rows(&db, 8);
    let (printed, second) =
        application(&db, &format!("one('SELECT query_stats_start()')\nrun('{LOOKUP}', 1)\nsave()\n"));
    assert!(printed.contains("\"pruned\":1"), "{printed}");
    assert_eq!(scalar(&db, "SELECT count(*) FROM vigil_query_stats WHERE pid = 0 AND queryid IS NOT NULL"), 1000);
    assert_eq!(scalar(&db, "SELECT sum(calls) FROM vigil_query_stats WHERE pid = 0 AND queryid IS NULL"), 1100);
    for series in ["vigil_slow_queries_total", "vigil_query_duration_seconds_count", "vigil_query_duration_seconds_sum"]
    {
        assert!(value(&second[0], series) >= value(&first[0], series), "{series}");
    }
}

#[test]
fn save_is_refused_on_a_connection_opened_read_only_and_the_file_is_unchanged() {
    let dir = scratch();
    let db = table_db(dir.path());
    let before = sha256sum(&db);
    let program = "import sqlite3, sys\ncon = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True, \
                   isolation_level=None)\ncon.enable_load_extension(True)\ncon.load_extension(sys.argv[2])\n\
                   con.execute('SELECT query_stats_start()')\ncon.execute('SELECT count(*) FROM t').fetchall()\n\
                   try:\n    con.execute('SELECT query_stats_save()').fetchall()\n    print('saved')\n\
                   except sqlite3.Error as e:\n    print(e)\n";
    let out = Command::new("/usr/bin/python3").arg("-c").arg(program).arg(&db).arg(library()).output().unwrap();
    let printed = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(printed.starts_with("query_stats_save: refused on a read-only connection"), "{printed}");
    assert!(printed.len() < 300 && !printed.contains("panicked"), "{printed}");
    assert_eq!(sha256sum(&db), before, "python mode=ro: the file changed");
    let script = format!(
        ".load {}\nSELECT query_stats_start();\nSELECT count(*) FROM t;\nSELECT query_stats_save();\n",
        library().display()
    );
    let out = shell_run(&db, &script, &["-readonly"]);
    let error = text(&out.stderr);
    assert!(error.contains("query_stats_save: refused on a read-only connection"), "{error}");
    assert_eq!(sha256sum(&db), before, "sqlite3 -readonly: the file changed");
    // The same process may save through a connection that can write.
    let out = shell_run(&db, &script, &[]);
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("\"contributors\":1"), "{}", text(&out.stdout));
}
