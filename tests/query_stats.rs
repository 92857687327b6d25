//! Query statistics (issue 14): query_stats_start / query_stats / slow_queries / query_stats_info /
//! query_stats_save in real hosts — rusqlite's bundled SQLite, the sqlite3 3.40 shell and Debian's python3.
//!
//! The statistics are per process, and rusqlite loads vigil into this test process: the tests that use rusqlite
//! take one lock and begin with query_stats_reset() and explicit options.

use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use rusqlite::{params, Connection};
use serde_json::Value as Json;
use vigil_tests::*;

static PROCESS: Mutex<()> = Mutex::new(());

fn exclusive() -> MutexGuard<'static, ()> {
    PROCESS.lock().unwrap_or_else(|p| p.into_inner())
}

/// A database with an indexed table of 1000 rows.
fn table_db(dir: &Path) -> std::path::PathBuf {
    let db = dir.join("q.db");
    create_db(
        &db,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER, w TEXT);
         WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 1000)
         INSERT INTO t SELECT value, value * 2, 'x' || value FROM s;
         CREATE INDEX t_v ON t(v);",
    );
    db
}

fn json_of(conn: &Connection, sql: &str) -> Json {
    let text: String = conn.query_row(sql, [], |r| r.get(0)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A traced rusqlite connection with the process's statistics cleared.
fn traced(db: &Path, options: &str) -> Connection {
    let conn = Rusqlite::open(db);
    conn.query_row("SELECT query_stats_reset()", [], |_| Ok(())).unwrap();
    // Options are process-wide: back to the defaults first, whatever another test set.
    let defaults = r#"{"slow_ms": 1000, "max": 5000, "slow_log": 100, "log_parameters": false}"#;
    conn.query_row(&format!("SELECT query_stats_start('{defaults}')"), [], |_| Ok(())).unwrap();
    let info = json_of(&conn, &format!("SELECT query_stats_start('{options}')"));
    assert_eq!(info["tracing"], "on", "{info}");
    conn
}

/// query_stats rows of statements whose text contains `needle`, as JSON objects.
fn stats_of(conn: &Connection, needle: &str) -> Vec<Row> {
    rows(conn, "SELECT * FROM query_stats")
        .unwrap()
        .into_iter()
        .filter(|r| r["query"].as_str().unwrap().contains(needle))
        .collect()
}

fn f(row: &Row, column: &str) -> f64 {
    row[column].as_f64().unwrap_or_else(|| panic!("{column} in {row:?}"))
}

fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[test]
fn the_statement_table_stays_bounded_and_the_most_called_statements_survive() {
    let _one = exclusive();
    let dir = scratch();
    let db = table_db(dir.path());
    let conn = traced(&db, r#"{"max": 50, "slow_ms": 1000}"#);
    for _round in 0..20 {
        for hot in 0..10 {
            conn.query_row(&format!("SELECT count(*) AS hot_{hot} FROM t WHERE v < 100"), [], |_| Ok(())).unwrap();
        }
    }
    for cold in 0..500 {
        conn.query_row(&format!("SELECT {cold} AS cold_{cold}"), [], |_| Ok(())).unwrap();
    }
    let info = json_of(&conn, "SELECT query_stats_info()");
    assert!(info["entries"].as_u64().unwrap() <= 50, "{info}");
    assert!(info["evictions"].as_u64().unwrap() >= 450, "{info}");
    assert_eq!(info["max"], 50);
    for hot in 0..10 {
        let kept = stats_of(&conn, &format!("AS hot_{hot} "));
        let calls: f64 = kept.iter().map(|r| f(r, "calls")).sum();
        assert_eq!(calls, 20.0, "hot statement {hot} lost calls or was evicted: {kept:?}");
    }
    // Evicted statements still count in the totals a metrics export reads.
    assert!(info["calls"].as_u64().unwrap() >= 700, "{info}");
}

/// Runs a recursive CTE of `n` steps: a statement whose duration the test controls.
fn count_to(conn: &Connection, n: i64) -> i64 {
    let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?1) SELECT count(*) FROM c";
    conn.prepare_cached(sql).unwrap().query_row([n], |r| r.get(0)).unwrap()
}

#[test]
fn percentiles_are_within_five_percent_and_mean_and_stddev_are_exact() {
    let _one = exclusive();
    let dir = scratch();
    let db = table_db(dir.path());
    // Every call is slow (threshold 0), so the slow log holds each call's exact duration.
    let conn = traced(&db, r#"{"slow_ms": 0, "slow_log": 10000}"#);
    let mut seed = 7u64;
    for _ in 0..1500 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let n = 1 + ((seed >> 33) % 3000) as i64;
        assert_eq!(count_to(&conn, n), n);
    }
    let row = stats_of(&conn, "WITH RECURSIVE").pop().expect("the CTE has a row");
    assert_eq!(f(&row, "calls"), 1500.0);
    let queryid = row["queryid"].as_i64().unwrap();
    let mut durations: Vec<f64> = conn
        .prepare("SELECT duration_ms FROM slow_queries WHERE queryid = ?1")
        .unwrap()
        .query_map([queryid], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(durations.len(), 1500);
    durations.sort_by(f64::total_cmp);
    for (column, p) in [("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)] {
        let exact = nearest_rank(&durations, p);
        let error = (f(&row, column) - exact).abs() / exact;
        assert!(error <= 0.05, "{column}: {} vs exact {exact} ({:.2} %)", f(&row, column), error * 100.0);
    }
    let n = durations.len() as f64;
    let mean = durations.iter().sum::<f64>() / n;
    let stddev = (durations.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n).sqrt();
    assert!((f(&row, "mean_ms") - mean).abs() <= 1e-9 * mean, "mean {} vs {mean}", f(&row, "mean_ms"));
    assert!((f(&row, "stddev_ms") - stddev).abs() <= 1e-9 * stddev, "stddev {} vs {stddev}", f(&row, "stddev_ms"));
    assert!((f(&row, "total_ms") - mean * n).abs() <= 1e-9 * mean * n);
    assert_eq!(f(&row, "min_ms"), durations[0]);
    assert_eq!(f(&row, "max_ms"), *durations.last().unwrap());
    assert_eq!(f(&row, "slow_calls"), 1500.0);
}

#[test]
fn a_fifty_millisecond_statement_is_measured_within_twenty_percent_of_the_wall_clock() {
    let _one = exclusive();
    let dir = scratch();
    let db = table_db(dir.path());
    let conn = traced(&db, r#"{"slow_ms": 0, "slow_log": 100}"#);
    // Calibrate: steps per millisecond on this machine now.
    let started = Instant::now();
    count_to(&conn, 200_000);
    let per_ms = 200_000.0 / started.elapsed().as_secs_f64() / 1e3;
    let n = (per_ms * 50.0) as i64;
    let mut checked = 0;
    for _ in 0..5 {
        let started = Instant::now();
        count_to(&conn, n);
        let wall_ms = started.elapsed().as_secs_f64() * 1e3;
        let measured: f64 = conn
            .query_row("SELECT duration_ms FROM slow_queries(1) WHERE query LIKE 'WITH%'", [], |r| r.get(0))
            .or_else(|_| {
                conn.query_row(
                    "SELECT duration_ms FROM slow_queries WHERE query LIKE 'WITH%' ORDER BY at DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap();
        assert!(wall_ms > 10.0, "calibration failed: {wall_ms} ms");
        let error = (measured - wall_ms).abs() / wall_ms;
        assert!(error <= 0.2, "measured {measured} ms, wall clock {wall_ms} ms");
        checked += 1;
    }
    assert_eq!(checked, 5);
}

#[test]
fn sub_millisecond_point_lookups_are_timed_with_the_monotonic_clock() {
    let _one = exclusive();
    let dir = scratch();
    let db = table_db(dir.path());
    let conn = traced(&db, r#"{"slow_ms": 1000}"#);
    let mut stmt = conn.prepare("SELECT w FROM t WHERE id = ?1").unwrap();
    for i in 0..10_000 {
        let w: String = stmt.query_row([1 + i % 1000], |r| r.get(0)).unwrap();
        assert!(w.starts_with('x'));
    }
    drop(stmt);
    let row = stats_of(&conn, "FROM t WHERE id").pop().unwrap();
    assert_eq!(f(&row, "calls"), 10_000.0);
    assert_eq!(f(&row, "rows"), 10_000.0);
    // SQLite's own profile time would say 0 for nearly all of them (millisecond resolution).
    let p50 = f(&row, "p50_ms");
    assert!(p50 > 0.0 && p50 < 1.0, "p50 {p50} ms");
    assert!(f(&row, "min_ms") > 0.0);
    assert!(f(&row, "vm_steps") > 0.0);
    assert_eq!(f(&row, "slow_calls"), 0.0);
}

#[test]
fn rows_count_returned_rows_or_changed_rows_and_vigil_own_sql_is_not_counted() {
    let _one = exclusive();
    let dir = scratch();
    let db = table_db(dir.path());
    let conn = traced(&db, "{}");
    conn.query_row("SELECT count(*) FROM (SELECT 1)", [], |_| Ok(())).unwrap();
    let mut stmt = conn.prepare("SELECT id FROM t WHERE id IN (1, 2, 3)").unwrap();
    assert_eq!(stmt.query_map([], |_| Ok(())).unwrap().count(), 3);
    drop(stmt);
    conn.execute("UPDATE t SET w = 'y' WHERE id <= 7", []).unwrap();
    conn.execute("CREATE TABLE u(a)", []).unwrap();
    let health: String = conn.query_row("SELECT health_json()", [], |r| r.get(0)).unwrap();
    assert!(health.contains("status"));
    assert_eq!(f(&stats_of(&conn, "FROM t WHERE id IN")[0], "rows"), 3.0);
    assert_eq!(f(&stats_of(&conn, "UPDATE t SET")[0], "rows"), 7.0);
    assert_eq!(f(&stats_of(&conn, "CREATE TABLE u")[0], "rows"), 0.0);
    assert_eq!(stats_of(&conn, "health_json").len(), 1);
    // health_json runs pragmas and schema queries of its own on this connection: part of its caller's time.
    let all = rows(&conn, "SELECT query FROM query_stats").unwrap();
    for row in &all {
        let query = row["query"].as_str().unwrap().to_ascii_lowercase();
        assert!(!query.contains("pragma") && !query.contains("sqlite_schema"), "vigil's own SQL counted: {query}");
    }
}

#[test]
fn a_trigger_does_not_restart_the_timing_of_its_statement() {
    let _one = exclusive();
    let dir = scratch();
    let db = table_db(dir.path());
    let conn = traced(&db, r#"{"slow_ms": 0, "slow_log": 10}"#);
    conn.execute_batch(
        "CREATE TABLE log(n); CREATE TRIGGER t_log AFTER UPDATE ON t BEGIN INSERT INTO log VALUES (new.id); END;",
    )
    .unwrap();
    conn.execute("UPDATE t SET v = v + 1", []).unwrap();
    let row = stats_of(&conn, "UPDATE t SET v").pop().unwrap();
    assert_eq!(f(&row, "calls"), 1.0);
    assert_eq!(f(&row, "rows"), 1000.0);
    assert!(stats_of(&conn, "TRIGGER t_log").len() <= 1, "a trigger program is not a statement of its own");
    assert!(stats_of(&conn, "-- TRIGGER").is_empty());
}

#[test]
fn statements_differing_only_in_constants_share_a_row() {
    let _one = exclusive();
    let dir = scratch();
    let db = table_db(dir.path());
    let conn = traced(&db, "{}");
    for sql in [
        "SELECT w FROM t WHERE id = 1",
        "SELECT w FROM t WHERE id = 2",
        "SELECT w FROM t WHERE id IN (1, 2)",
        "SELECT w FROM t WHERE id IN (1, 2, 3)",
    ] {
        conn.prepare(sql).unwrap().query_map([], |_| Ok(())).unwrap().for_each(drop);
    }
    let stats =
        rows(&conn, "SELECT queryid, query, calls FROM query_stats WHERE query LIKE 'SELECT w FROM t%'").unwrap();
    assert_eq!(stats.len(), 2, "id = 1 / id = 2 and IN (1,2) / IN (1,2,3) are two statements: {stats:?}");
    assert!(stats.iter().all(|r| r["calls"] == 2), "{stats:?}");
}

#[test]
fn bad_options_give_clear_errors_naming_the_function() {
    let dir = scratch();
    let db = table_db(dir.path());
    for host in hosts() {
        for (sql, expected) in [
            ("SELECT query_stats_start('{\"max\": 0}')", "query_stats_start: option \"max\" must be an integer from 1"),
            ("SELECT query_stats_start('{\"maximum\": 5}')", "query_stats_start: unknown option \"maximum\""),
            ("SELECT query_stats_start('not json')", "query_stats_start: options are not valid JSON"),
            ("SELECT query_stats_start('{\"slow_ms\": -1}')", "query_stats_start: option \"slow_ms\" must be a number"),
            ("SELECT query_stats_start('{\"log_parameters\": 1}')", "option \"log_parameters\" must be true or false"),
            ("SELECT query_stats_start(42)", "query_stats_start: options must be a JSON object as text"),
            ("SELECT * FROM slow_queries(-1)", "slow_queries: limit must be a non-negative integer"),
        ] {
            let error = host.query(&db, sql).expect_err(sql);
            assert!(error.contains(expected), "{}: {sql}: {error}", host.name());
            assert!(!error.contains("panicked") && error.len() < 400, "{error}");
        }
    }
}

#[test]
fn save_is_refused_inside_a_transaction() {
    let _one = exclusive();
    let dir = scratch();
    let db = table_db(dir.path());
    let conn = traced(&db, "{}");
    conn.execute_batch("BEGIN").unwrap();
    let error = conn.query_row("SELECT query_stats_save()", [], |_| Ok(())).unwrap_err().to_string();
    assert!(error.contains("query_stats_save: refused inside a transaction"), "{error}");
    conn.execute_batch("ROLLBACK").unwrap();
    let saved = json_of(&conn, "SELECT query_stats_save()");
    assert_eq!(saved["contributors"], 1, "{saved}");
}

#[test]
fn writers_cannot_be_called_from_a_view_or_a_trigger() {
    let dir = scratch();
    let db = table_db(dir.path());
    create_db(
        &db,
        "CREATE VIEW starts AS SELECT query_stats_start() AS s;
         CREATE VIEW saves AS SELECT query_stats_save() AS s;
         CREATE TABLE x(a);
         CREATE TRIGGER x_reset AFTER INSERT ON x BEGIN SELECT query_stats_reset(); END;",
    );
    for host in hosts() {
        for sql in ["SELECT * FROM starts", "SELECT * FROM saves", "INSERT INTO x VALUES (1)"] {
            let error = host.query(&db, sql).expect_err(sql);
            assert!(
                error.contains("unsafe use of query_stats_") || error.contains("refused"),
                "{}: {error}",
                host.name()
            );
        }
    }
    let count: i64 = Connection::open(&db).unwrap().query_row("SELECT count(*) FROM x", [], |r| r.get(0)).unwrap();
    assert_eq!(count, 0);
}

/// Debian's python3 (its sqlite3 module is SQLite 3.40.1): runs `script` with `con` open on `db`, vigil loaded.
fn python(db: &Path, script: &str) -> String {
    let program = format!(
        "import sqlite3, sys, json\ncon = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
         con.enable_load_extension(True)\ncon.load_extension(sys.argv[2])\n\
         def one(sql):\n    return con.execute(sql).fetchone()[0]\n{script}"
    );
    let out = Command::new("/usr/bin/python3").arg("-c").arg(program).arg(db).arg(library()).output().unwrap();
    assert!(out.status.success(), "python3: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn tracing_is_lost_when_python_sets_its_own_trace_callback_and_stop_leaves_it_alone() {
    let dir = scratch();
    let db = table_db(dir.path());
    let out = python(
        &db,
        "seen = []\n\
         print(json.loads(one(\"SELECT query_stats_start()\"))['tracing'])\n\
         print(json.loads(one(\"SELECT query_stats_info()\"))['tracing'])\n\
         con.set_trace_callback(seen.append)\n\
         print(json.loads(one(\"SELECT query_stats_info()\"))['tracing'])\n\
         print(json.loads(one(\"SELECT query_stats_stop()\"))['was'])\n\
         before = len(seen)\n\
         one('SELECT count(*) FROM t')\n\
         print('host callback still called' if len(seen) > before else 'host callback removed')\n\
         print(json.loads(one(\"SELECT query_stats_info()\"))['tracing'])\n\
         con.set_trace_callback(None)\n\
         print(json.loads(one(\"SELECT query_stats_start()\"))['tracing'])\n\
         print(json.loads(one(\"SELECT query_stats_info()\"))['tracing'])\n",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["on", "on", "lost", "lost", "host callback still called", "off", "on", "on"], "{out}");
}

#[test]
fn the_shell_trace_command_makes_tracing_lost() {
    let dir = scratch();
    let db = table_db(dir.path());
    let script = format!(
        ".load {}\nSELECT json_extract(query_stats_start(), '$.tracing');\nSELECT json_extract(query_stats_info(), \
         '$.tracing');\n.trace off\nSELECT json_extract(query_stats_info(), '$.tracing');\n",
        library().display()
    );
    let out = shell_run(&db, &script, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["on", "on", "lost"],
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A sqlite3 shell process that traces, runs the point lookup `calls` times and saves.
fn save_from_a_shell(db: &Path, calls: usize) -> Json {
    let lookups = "SELECT w FROM t WHERE id = 5;\n".repeat(calls);
    let script =
        format!(".load {}\nSELECT query_stats_start();\n{lookups}SELECT query_stats_save();\n", library().display());
    let out = shell_run(db, &script, &[]);
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

#[test]
fn statistics_saved_by_two_processes_merge_in_the_database() {
    let dir = scratch();
    let db = table_db(dir.path());
    let first = save_from_a_shell(&db, 3);
    assert_eq!(first["contributors"], 1, "{first}");
    let second = save_from_a_shell(&db, 5);
    assert_eq!(second["contributors"], 2, "{second}");
    let conn = Connection::open(&db).unwrap();
    let (contributors, calls): (i64, i64) = conn
        .query_row(
            "SELECT count(DISTINCT pid || process_start), sum(calls) FROM vigil_query_stats WHERE query LIKE \
             'SELECT w FROM t WHERE id%'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((contributors, calls), (2, 8));
    // load_saved (what `vigil metrics` exports) merges every contributor: query_stats_info shows its totals.
    let conn = Rusqlite::open(&db);
    let saved = json_of(&conn, "SELECT query_stats_info()")["saved"].clone();
    let totals: i64 = Connection::open(&db)
        .unwrap()
        .query_row("SELECT sum(calls) FROM vigil_query_stats WHERE queryid IS NULL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(saved["calls"], totals, "{saved}");
    // Neither query_stats_start() (it began before tracing) nor query_stats_save() (it ends after saving) is in it.
    assert_eq!(totals, 8);
    let distinct: i64 = Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(DISTINCT queryid) FROM vigil_query_stats WHERE queryid IS NOT NULL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(saved["statements"], distinct);
    // Saving again replaces the process's own rows instead of adding to them.
    let again = python(&db, "one('SELECT query_stats_start()')\none('SELECT 1')\none('SELECT query_stats_save()')\nprint(json.loads(one('SELECT query_stats_save()'))['contributors'])\n");
    assert_eq!(again.trim(), "3");
    let per_process: i64 = Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT max(n) FROM (SELECT count(*) AS n FROM vigil_query_stats WHERE queryid IS NULL GROUP BY pid, process_start)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(per_process, 1);
}

#[test]
fn closing_a_traced_connection_frees_its_hook() {
    let _one = exclusive();
    let dir = scratch();
    let db = table_db(dir.path());
    let watcher = traced(&db, "{}");
    let before = json_of(&watcher, "SELECT query_stats_info()")["connections"].as_u64().unwrap();
    let other = Rusqlite::open(&db);
    other.query_row("SELECT query_stats_start()", [], |_| Ok(())).unwrap();
    other.query_row("SELECT count(*) FROM t WHERE v = ?1", params![4], |_| Ok(())).unwrap();
    assert_eq!(json_of(&watcher, "SELECT query_stats_info()")["connections"].as_u64().unwrap(), before + 1);
    drop(other);
    assert_eq!(json_of(&watcher, "SELECT query_stats_info()")["connections"].as_u64().unwrap(), before);
    let stopped = json_of(&watcher, "SELECT query_stats_stop()");
    assert_eq!(stopped["was"], "on");
    assert_eq!(json_of(&watcher, "SELECT query_stats_info()")["tracing"], "off");
}

#[test]
fn parameters_reach_the_slow_log_only_when_asked_for() {
    let _one = exclusive();
    let dir = scratch();
    let db = table_db(dir.path());
    let conn = traced(&db, r#"{"slow_ms": 0, "slow_log": 5, "log_parameters": false}"#);
    conn.query_row("SELECT w FROM t WHERE id = ?1", [417], |_| Ok(())).unwrap();
    let kept: Option<String> = conn
        .query_row("SELECT parameters FROM slow_queries(1) WHERE query LIKE '%FROM t WHERE id%'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, None);
    conn.query_row(r#"SELECT query_stats_start('{"log_parameters": true}')"#, [], |_| Ok(())).unwrap();
    conn.query_row("SELECT w FROM t WHERE id = ?1", [418], |_| Ok(())).unwrap();
    let kept: Option<String> = conn
        .query_row("SELECT parameters FROM slow_queries(1) WHERE query LIKE '%FROM t WHERE id%'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept.as_deref(), Some("SELECT w FROM t WHERE id = 418"));
    // The ring holds the newest `slow_log` calls only.
    for i in 0..20 {
        conn.query_row("SELECT w FROM t WHERE id = ?1", [i + 1], |_| Ok(())).unwrap();
    }
    let held: i64 = conn.query_row("SELECT count(*) FROM slow_queries", [], |r| r.get(0)).unwrap();
    assert_eq!(held, 5);
    conn.query_row(
        r#"SELECT query_stats_start('{"log_parameters": false, "slow_ms": 1000, "slow_log": 100}')"#,
        [],
        |_| Ok(()),
    )
    .unwrap();
}

#[test]
fn vigil_metrics_exports_only_the_statements_of_its_own_database() {
    let _one = exclusive();
    let dir = scratch();
    let traced_db = table_db(dir.path());
    let other_db = dir.path().join("other.db");
    create_db(&other_db, "CREATE TABLE u(x)");
    let conn = traced(&traced_db, "{}");
    for id in 1..=20 {
        conn.query_row("SELECT v FROM t WHERE id = ?1", [id], |_| Ok(())).unwrap();
    }
    let count_of = |db: &Path| -> f64 {
        let conn = Rusqlite::open(db);
        conn.query_row(
            "SELECT coalesce(max(value), -1) FROM vigil_metrics('{\"query_stats\":\"live\"}') \
             WHERE metric = 'vigil_query_duration_seconds_count'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert!(count_of(&traced_db) >= 20.0, "the traced database's own calls");
    // An application exporting another database of the same process gets none of the traced one's statements.
    assert_eq!(count_of(&other_db), -1.0);
}

/// A web app opening a connection per request: SQLite unloads vigil with each connection that loaded it, yet
/// the statistics of every request stay (the library pins itself when tracing starts).
#[test]
fn statistics_outlive_the_connections_of_a_connection_per_request_app() {
    let dir = scratch();
    let db = table_db(dir.path());
    let script = r#"
con.close()
def request(i):
    c = sqlite3.connect(sys.argv[1], isolation_level=None)
    c.enable_load_extension(True)
    c.load_extension(sys.argv[2])
    c.execute("SELECT query_stats_start()").fetchone()
    c.execute("SELECT w FROM t WHERE id = ?", (i,)).fetchone()
    c.close()
for i in range(1, 31):
    request(i)
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.enable_load_extension(True)
c.load_extension(sys.argv[2])
print(c.execute("SELECT calls FROM query_stats WHERE query LIKE '%FROM t WHERE id%'").fetchone()[0])
"#;
    assert_eq!(python(&db, script).trim(), "30");
}

/// `vigil metrics` of a database whose saved statistics were tampered with: counters never negative, NaN or
/// infinite, promtool still accepts the text; a table of that name vigil cannot read costs the query series only.
#[test]
fn planted_or_foreign_saved_statistics_never_take_the_database_down() {
    let dir = scratch();
    let db = table_db(dir.path());
    save_from_a_shell(&db, 5);
    let metrics = || {
        let out =
            Command::new(cli_binary()).args(["metrics", db.to_str().unwrap(), "--statements", "5"]).output().unwrap();
        (code(&out), text(&out.stdout))
    };
    let planted = Rusqlite::open(&db);
    planted
        .execute_batch(
            "UPDATE vigil_query_stats SET total_seconds = -1.5, rows = -7, slow_calls = -2 WHERE queryid IS NOT NULL;
             UPDATE vigil_query_stats SET total_seconds = 9e999 WHERE queryid IS NULL;",
        )
        .unwrap();
    let (status, exposition) = metrics();
    assert_eq!(status, 0, "{exposition}");
    for line in exposition.lines().filter(|l| l.starts_with("vigil_statement_") || l.starts_with("vigil_query_")) {
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(value.is_finite() && value >= 0.0, "{line}");
    }
    assert!(exposition.contains("vigil_statement_seconds_total{"), "{exposition}");
    assert_eq!(promtool_check(&exposition), (0, String::new()));

    planted.execute_batch("DROP TABLE vigil_query_stats; CREATE TABLE vigil_query_stats(a); INSERT INTO vigil_query_stats VALUES (1);").unwrap();
    let (status, exposition) = metrics();
    assert_eq!(status, 0, "{exposition}");
    assert!(exposition.contains("vigil_up{db=\"q.db\"} 1"), "{exposition}");
    assert!(exposition.contains("vigil_query_stats_unreadable{db=\"q.db\"} 1"), "{exposition}");
    assert!(exposition.contains("vigil_database_size_bytes{db=\"q.db\"}"), "{exposition}");
    assert!(!exposition.contains("vigil_query_duration_seconds"), "{exposition}");
}

/// Calls of a statement whose text contains `needle`, as this connection's query_stats shows them.
fn calls_of(conn: &Connection, needle: &str) -> f64 {
    stats_of(conn, needle).first().map_or(0.0, |row| f(row, "calls"))
}

#[test]
fn calls_of_another_connection_are_visible_as_soon_as_they_finished() {
    // A reader sees every call that finished before it, from any connection and thread, closed or not, and
    // however the tracer buffers them (a per-connection batch folded at read time was tried: 64 calls).
    let _one = exclusive();
    let dir = scratch();
    let db = table_db(dir.path());
    let reader = traced(&db, "{}");
    let (writer_db, lookups) = (db.clone(), 7);
    let other = std::thread::spawn(move || {
        let conn = Rusqlite::open(&writer_db);
        conn.query_row("SELECT query_stats_start()", [], |_| Ok(())).unwrap();
        for id in 0..lookups {
            conn.query_row("SELECT w AS other_conn FROM t WHERE id = ?1", [id + 1], |_| Ok(())).unwrap();
        }
        conn
    })
    .join()
    .unwrap();
    assert_eq!(calls_of(&reader, "other_conn"), 7.0, "another thread's connection, still open");
    let info = json_of(&reader, "SELECT query_stats_info()");
    assert!(info["calls"].as_u64().unwrap() >= 7, "{info}");
    for id in 0..150 {
        other.query_row("SELECT w AS other_conn FROM t WHERE id = ?1", [id + 1], |_| Ok(())).unwrap();
    }
    assert_eq!(calls_of(&reader, "other_conn"), 157.0, "more calls than one batch");
    other.query_row("SELECT w AS other_conn FROM t WHERE id = 1", [], |_| Ok(())).unwrap();
    drop(other);
    assert_eq!(calls_of(&reader, "other_conn"), 158.0, "a closed connection's last calls");
    // vigil_metrics on an untraced connection of the same process, and query_stats_save, see them too.
    let exporter = Rusqlite::open(&db);
    let exported: f64 = exporter
        .query_row(
            "SELECT max(value) FROM vigil_metrics('{\"query_stats\":\"live\"}') \
             WHERE metric = 'vigil_query_duration_seconds_count'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(exported >= 158.0, "vigil_metrics saw {exported} calls");
    let saved = json_of(&reader, "SELECT query_stats_save()");
    assert!(saved["calls"].as_f64().unwrap() >= 158.0, "{saved}");
    // A reset forgets calls still in a batch too.
    reader.query_row("SELECT query_stats_reset()", [], |_| Ok(())).unwrap();
    assert_eq!(calls_of(&reader, "other_conn"), 0.0);
}

#[test]
fn rows_are_counted_per_statement_when_statements_interleave() {
    let _one = exclusive();
    let dir = scratch();
    let db = table_db(dir.path());
    let conn = traced(&db, "{}");
    let mut five = conn.prepare("SELECT id AS five FROM t WHERE id <= 5").unwrap();
    let mut three = conn.prepare("SELECT id AS three FROM t WHERE id <= 3").unwrap();
    let mut outer = five.query([]).unwrap();
    let mut seen = 0;
    while outer.next().unwrap().is_some() {
        seen += 1;
        // Another statement starts and finishes between two rows of the first one.
        let mut inner = three.query([]).unwrap();
        while inner.next().unwrap().is_some() {}
    }
    drop(outer);
    assert_eq!(seen, 5);
    assert_eq!(f(&stats_of(&conn, "AS five")[0], "rows"), 5.0);
    assert_eq!(f(&stats_of(&conn, "AS three")[0], "rows"), 15.0);
    assert_eq!(f(&stats_of(&conn, "AS three")[0], "calls"), 5.0);
}
