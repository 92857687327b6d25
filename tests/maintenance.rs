//! vacuum_if_fragmented, maintain, wal_checkpoint and the maintenance log, in both hosts, on real files.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use vigil_tests::*;

/// Runs a vigil function that returns one JSON document.
/// Pages in the file and on its freelist, read without vigil.
fn pages(db: &Path) -> (i64, i64) {
    (pragma(db, "page_count"), pragma(db, "freelist_count"))
}

fn bytes_on_disk(db: &Path) -> i64 {
    let size = |p: std::path::PathBuf| std::fs::metadata(p).map_or(0, |m| m.len() as i64);
    size(db.to_path_buf()) + size(db.with_extension("db-wal"))
}

fn integrity(db: &Path) -> String {
    let conn = Connection::open(db).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[test]
fn vacuum_over_the_threshold_rewrites_and_reports_true_figures() {
    for wal in [false, true] {
        for host in hosts() {
            let dir = scratch();
            let db = dir.path().join("f.db");
            fragmented_db(&db, 4000, wal);
            let digest = t_digest(&db);
            let (count, free) = pages(&db);
            let size_before = bytes_on_disk(&db);
            let out = call(host.as_ref(), &db, "SELECT vacuum_if_fragmented(10)");
            let context = format!("{} wal={wal}: {out}", host.name());
            assert_eq!(out["decision"], "vacuumed", "{context}");
            assert_eq!(out["method"], "vacuum");
            assert_eq!(out["before_pct"], round2(free as f64 * 100.0 / count as f64), "{context}");
            assert_eq!(out["size_before"], size_before, "{context}");
            let (count_after, free_after) = pages(&db);
            assert_eq!(free_after, 0);
            assert!(count_after < count - free / 2, "{count} → {count_after}");
            assert_eq!(out["after_pct"], 0.0);
            // The figures were taken before the log row was added: at most one table's pages apart.
            let size_after = out["size_after"].as_i64().unwrap();
            assert!((bytes_on_disk(&db) - size_after).abs() <= 3 * 4096, "{context}");
            assert_eq!(out["bytes_freed"], size_before - size_after);
            if wal {
                let wal_file = std::fs::metadata(db.with_extension("db-wal")).map_or(0, |m| m.len());
                assert_eq!(wal_file, 0, "WAL truncated (or removed at close)");
            }
            assert_eq!(t_digest(&db), digest, "{context}");
            assert_eq!(integrity(&db), "ok");
            let log =
                host.query(&db, "SELECT function, level, result, size_before FROM vigil_maintenance_log").unwrap();
            assert_eq!(log.len(), 1, "{context}");
            assert_eq!(log[0]["level"], "vacuum");
            assert_eq!(log[0]["size_before"], size_before);
        }
    }
}

#[test]
fn vacuum_under_the_threshold_or_in_a_dry_run_changes_nothing() {
    for host in hosts() {
        let dir = scratch();
        let db = dir.path().join("f.db");
        fragmented_db(&db, 2000, false);
        let original = std::fs::read(&db).unwrap();
        let skipped = call(host.as_ref(), &db, "SELECT vacuum_if_fragmented(95)");
        assert_eq!(skipped["decision"], "skipped", "{skipped}");
        assert!(skipped["reason"].as_str().unwrap().contains("not over the threshold of 95 %"));
        assert_eq!(skipped["bytes_freed"], 0);
        let planned = call(host.as_ref(), &db, "SELECT vacuum_if_fragmented(NULL, '{\"dry_run\":true}')");
        assert_eq!(planned["decision"], "planned", "{planned}");
        assert_eq!(planned["threshold"], 20.0, "the default is health_report's freelist warning");
        assert_eq!(std::fs::read(&db).unwrap(), original, "{}: not a byte changed, no log table", host.name());
    }
}

#[test]
fn the_skip_decision_works_on_a_read_only_database() {
    let dir = scratch();
    let db = dir.path().join("f.db");
    fragmented_db(&db, 500, false);
    let out =
        shell_run(&db, &format!(".load {}\nSELECT vacuum_if_fragmented(99);\n", library().display()), &["-readonly"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"decision\":\"skipped\""), "{out:?}");
    let out =
        shell_run(&db, &format!(".load {}\nSELECT vacuum_if_fragmented(1);\n", library().display()), &["-readonly"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("vacuum_if_fragmented: \"main\" is open read-only"), "{err}");
}

#[test]
fn incremental_databases_give_pages_back_without_a_rewrite() {
    for host in hosts() {
        let dir = scratch();
        let db = dir.path().join("i.db");
        create_db(&db, "PRAGMA auto_vacuum=INCREMENTAL");
        fill(&db, 3000);
        let out = call(host.as_ref(), &db, "SELECT vacuum_if_fragmented(10)");
        assert_eq!(out["method"], "incremental_vacuum", "{out}");
        assert_eq!(out["decision"], "vacuumed");
        assert_eq!(pages(&db).1, 0);
        let dir2 = scratch();
        let plain = dir2.path().join("p.db");
        fragmented_db(&plain, 500, false);
        let err = host.query(&plain, "SELECT vacuum_if_fragmented(1, '{\"method\":\"incremental\"}')").unwrap_err();
        assert!(err.contains("method 'incremental' needs auto_vacuum=INCREMENTAL"), "{err}");
    }
}

#[test]
fn the_fragmentation_metric_is_health_reports_figure() {
    let dir = scratch();
    let db = dir.path().join("f.db");
    fragmented_db(&db, 3000, false);
    let report = by_check(
        &Shell.query(&db, "SELECT * FROM health_report('{\"fragmentation\":true,\"history\":false}')").unwrap(),
    );
    let out = call(&Shell, &db, "SELECT vacuum_if_fragmented(100, '{\"metric\":\"fragmentation\"}')");
    assert_eq!(out["metric"], "fragmentation");
    assert_eq!(out["before_pct"], report["fragmentation"]["value"], "{out}");
}

#[test]
fn maintain_levels_run_their_operations_and_are_logged() {
    let expected: [(&str, &[&str]); 3] = [
        ("light", &["optimize", "checkpoint"]),
        ("standard", &["optimize", "checkpoint", "analyze", "reindex", "foreign_key_check"]),
        ("full", &["optimize", "checkpoint", "analyze", "reindex", "foreign_key_check", "vacuum", "integrity_check"]),
    ];
    for host in hosts() {
        let dir = scratch();
        let db = dir.path().join("m.db");
        fragmented_db(&db, 3000, true);
        for (level, operations) in expected {
            let out = call(host.as_ref(), &db, &format!("SELECT maintain('{level}')"));
            let steps: Vec<&str> =
                out["steps"].as_array().unwrap().iter().map(|s| s["operation"].as_str().unwrap()).collect();
            assert_eq!(steps, operations, "{}: {out}", host.name());
            assert_eq!(out["result"], "ok", "{out}");
            assert_eq!(out["level"], level);
        }
        let stat1 = host.query(&db, "SELECT count(*) AS n FROM sqlite_stat1").unwrap();
        assert!(stat1[0]["n"].as_i64().unwrap() > 0, "ANALYZE left statistics");
        assert_eq!(pages(&db).1, 0, "full vacuumed");
        let levels = host.query(&db, "SELECT level FROM vigil_maintenance_log ORDER BY id").unwrap();
        let levels: Vec<&str> = levels.iter().map(|r| r["level"].as_str().unwrap()).collect();
        assert_eq!(levels, ["light", "standard", "full"]);
        let report = by_check(&host.query(&db, "SELECT * FROM health_report()").unwrap());
        assert_eq!(report["maintenance_age"]["value"], 0.0);
        assert_eq!(report["full_maintenance_age"]["status"], "ok");
    }
}

#[test]
fn auto_follows_health_reports_recommendation() {
    for host in hosts() {
        let dir = scratch();
        let db = dir.path().join("demo.db");
        demo_db(&db);
        let out = call(host.as_ref(), &db, "SELECT maintain()");
        let plan = &out["steps"][0];
        assert_eq!(plan["operation"], "plan");
        assert_eq!(plan["result"], "full", "{out}");
        assert!(plan["detail"].as_str().unwrap().contains("freelist_pct is warning"), "{plan}");
        assert_eq!(out["level"], "full");
        let again = call(host.as_ref(), &db, "SELECT maintain('auto')");
        assert_eq!(again["steps"][0]["result"], "none", "nothing left to do: {again}");
        assert_eq!(again["steps"].as_array().unwrap().len(), 1);
    }
}

#[test]
fn old_maintenance_makes_health_report_warn() {
    let dir = scratch();
    let db = dir.path().join("m.db");
    fragmented_db(&db, 200, false);
    let before = by_check(&Shell.query(&db, "SELECT * FROM health_report()").unwrap());
    assert_eq!(
        before["full_maintenance_age"]["status"], "ok",
        "never maintained: {:?}",
        before["full_maintenance_age"]
    );
    call(&Shell, &db, "SELECT maintain('full')");
    let conn = Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE vigil_maintenance_log SET finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-40 days')",
        [],
    )
    .unwrap();
    for host in hosts() {
        let report = by_check(&host.query(&db, "SELECT * FROM health_report()").unwrap());
        assert_eq!(report["maintenance_age"]["status"], "warning", "{:?}", report["maintenance_age"]);
        assert_eq!(report["full_maintenance_age"]["status"], "warning");
        assert_eq!(report["full_maintenance_age"]["value"], 40.0);
        assert_eq!(report["maintenance"]["value"], "full");
        let off = host.query(&db, "SELECT * FROM health_report('{\"history\":false}')").unwrap();
        assert!(!by_check(&off).contains_key("maintenance_age"), "history off reads no vigil table");
    }
}

#[test]
fn full_maintenance_repairs_an_index_that_no_longer_matches_its_collation() {
    for host in hosts() {
        let dir = scratch();
        let db = dir.path().join("c.db");
        create_db(
            &db,
            "CREATE TABLE t(a TEXT); CREATE INDEX ia ON t(a); INSERT INTO t VALUES ('b'),('A'),('c'),('B'),('a');
             PRAGMA writable_schema=ON;
             UPDATE sqlite_schema SET sql='CREATE INDEX ia ON t(a COLLATE NOCASE)' WHERE name='ia';",
        );
        assert_ne!(integrity(&db), "ok", "the collation change leaves the index out of order");
        let out = call(host.as_ref(), &db, "SELECT maintain('full')");
        let tail: Vec<(&str, &str)> = out["steps"].as_array().unwrap()[5..]
            .iter()
            .map(|s| (s["operation"].as_str().unwrap(), s["result"].as_str().unwrap()))
            .collect();
        assert_eq!(
            tail,
            [("vacuum", "skipped"), ("integrity_check", "warning"), ("reindex", "done"), ("integrity_check", "done")],
            "{}: {out}",
            host.name()
        );
        assert_eq!(out["result"], "warning");
        assert_eq!(integrity(&db), "ok");
    }
}

#[test]
fn foreign_key_violations_are_a_warning_and_no_data_is_deleted() {
    let dir = scratch();
    let db = dir.path().join("fk.db");
    create_db(&db, "PRAGMA foreign_keys=OFF; CREATE TABLE p(id INTEGER PRIMARY KEY); CREATE TABLE c(p REFERENCES p(id)); INSERT INTO c VALUES (7);");
    let out = call(&Rusqlite, &db, "SELECT maintain('standard')");
    let fk = out["steps"].as_array().unwrap().iter().find(|s| s["operation"] == "foreign_key_check").unwrap().clone();
    assert_eq!(fk["result"], "warning", "{out}");
    assert!(fk["detail"].as_str().unwrap().starts_with("1 rows reference a missing parent (in c)"));
    assert_eq!(out["result"], "warning");
    assert_eq!(Rusqlite.query(&db, "SELECT count(*) AS n FROM c").unwrap()[0]["n"], 1);
}

/// A reader that began before the last commits keeps their frames in the WAL; truncate waits for it.
#[test]
fn wal_checkpoint_reports_frames_and_readers_that_block_it() {
    let dir = scratch();
    let db = dir.path().join("w.db");
    create_db(
        &db,
        "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x); INSERT INTO t VALUES (1);",
    );
    let mut reader = Reader::start(&db);
    let writer = Connection::open(&db).unwrap();
    writer.execute_batch("PRAGMA wal_autocheckpoint=0").unwrap();
    writer.execute_batch("CREATE TABLE u(x); INSERT INTO u VALUES (randomblob(50000));").unwrap();
    for host in hosts() {
        let out = call(host.as_ref(), &db, "SELECT wal_checkpoint()");
        assert_eq!(out["mode"], "passive");
        assert_eq!(out["blocked"], true, "{}: {out}", host.name());
        assert!(out["checkpointed"].as_i64().unwrap() < out["frames_after"].as_i64().unwrap());
        assert_eq!(out["frames_before"], out["frames_after"], "the wal-index header read right: {out}");
        let out = call(host.as_ref(), &db, "SELECT wal_checkpoint('truncate', '{\"busy_timeout_ms\":200}')");
        assert_eq!(out["blocked"], true, "{out}");
    }
    reader.finish();
    let out = call(&Shell, &db, "SELECT wal_checkpoint('TRUNCATE')");
    assert_eq!(out["blocked"], false, "{out}");
    assert_eq!(out["wal_bytes_after"], 0);
    assert!(out["wal_bytes_before"].as_i64().unwrap() > 50_000);
    let rollback = dir.path().join("r.db");
    create_db(&rollback, "CREATE TABLE t(x)");
    let out = call(&Shell, &rollback, "SELECT wal_checkpoint()");
    assert_eq!(out["detail"], "journal_mode is delete: there is no WAL to checkpoint");
}

/// Other processes read and write while vacuum and maintain run: nobody sees an error or a torn state, every
/// commit survives.
#[test]
fn vacuum_and_maintain_under_concurrent_readers_and_writers() {
    for wal in [false, true] {
        let dir = scratch();
        let db = dir.path().join("busy.db");
        fragmented_db(&db, 20_000, wal);
        create_db(&db, "CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY, v)");
        let digest = t_digest(&db);
        let writes = 400;
        let writer = spawn_shell(
            &db,
            &format!(
                ".timeout 20000\n{}",
                (1..=writes).map(|i| format!("INSERT INTO events(v) VALUES ({i});\n")).collect::<String>()
            ),
        );
        let reader = spawn_shell(&db, &".timeout 20000\nSELECT count(*), total(a) FROM t;\n".repeat(300));
        let conn = Rusqlite::open(&db);
        // The connection's own schema read waits for the writer like the shells do (rusqlite's default 5 s gave a
        // bare "database is locked" before vigil's function ran, on a loaded machine).
        conn.busy_timeout(Duration::from_secs(20)).unwrap();
        let vacuum = rows(&conn, "SELECT vacuum_if_fragmented(1, '{\"busy_timeout_ms\":20000}') AS r").unwrap();
        let maintain =
            rows(&conn, "SELECT maintain('full', '{\"busy_timeout_ms\":20000,\"threshold\":0}') AS r").unwrap();
        let writer = writer.wait_with_output().unwrap();
        let reader = reader.wait_with_output().unwrap();
        let context = format!("wal={wal} vacuum={vacuum:?} maintain={maintain:?}");
        assert!(vacuum[0]["r"].as_str().unwrap().contains("\"decision\":\"vacuumed\""), "{context}");
        assert!(maintain[0]["r"].as_str().unwrap().contains("\"result\":\"ok\""), "{context}");
        assert!(writer.status.success() && writer.stderr.is_empty(), "writer: {writer:?}");
        assert!(reader.status.success() && reader.stderr.is_empty(), "reader: {reader:?}");
        let seen: std::collections::BTreeSet<String> =
            String::from_utf8_lossy(&reader.stdout).lines().map(str::to_string).collect();
        assert_eq!(seen.len(), 1, "every read saw the same table: {seen:?}");
        let ids = Connection::open(&db)
            .unwrap()
            .query_row("SELECT count(*), min(v), max(v), count(DISTINCT v) FROM events", [], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?))
            })
            .unwrap();
        assert_eq!(ids, (writes, 1, writes, writes), "every commit is there: {context}");
        assert_eq!(t_digest(&db), digest);
        assert_eq!(integrity(&db), "ok");
    }
}

#[test]
fn a_lock_held_elsewhere_gives_the_documented_error_within_the_busy_timeout() {
    let dir = scratch();
    let db = dir.path().join("l.db");
    fragmented_db(&db, 1000, false);
    let mut holder = Reader::start_with(&db, "BEGIN IMMEDIATE; INSERT INTO t(a, b) VALUES (-1, 'x');");
    for host in hosts() {
        let started = Instant::now();
        let err = host.query(&db, "SELECT vacuum_if_fragmented(1, '{\"busy_timeout_ms\":300}')").unwrap_err();
        let waited = started.elapsed().as_millis();
        assert!(
            err.contains("another connection holds a lock on") && err.contains("within the busy timeout (300 ms)"),
            "{}: {err}",
            host.name()
        );
        assert!(err.contains("database is locked"), "{err}");
        assert!(waited < 10_000, "gave up after the timeout, not later: {waited} ms");
    }
    holder.finish();
}

#[test]
fn bad_arguments_and_states_are_clear_errors() {
    let dir = scratch();
    let db = dir.path().join("b.db");
    fragmented_db(&db, 500, false);
    let cases = [
        (
            "SELECT vacuum_if_fragmented(-1)",
            "vacuum_if_fragmented: bad arguments: threshold must be a percentage from 0 to 100, not -1",
        ),
        ("SELECT vacuum_if_fragmented(100.5)", "not 100.5"),
        ("SELECT vacuum_if_fragmented('lots')", "not 'lots'"),
        ("SELECT vacuum_if_fragmented(10, '{\"log\":1}')", "bad options: option \"log\" must be true or false"),
        ("SELECT vacuum_if_fragmented(10, '{\"level\":\"x\"}')", "unknown option \"level\" (known: schema"),
        ("SELECT vacuum_if_fragmented(10, '{\"schema\":\"nope\"}')", "no database named \"nope\""),
        (
            "SELECT maintain('weekly')",
            "maintain: bad arguments: unknown level 'weekly': use auto, light, standard or full",
        ),
        ("SELECT maintain(3)", "level must be text"),
        ("SELECT maintain('light', '{\"analysis_limit\":-4}')", "option \"analysis_limit\" must be an integer"),
        ("SELECT wal_checkpoint('sometimes')", "wal_checkpoint: bad arguments: unknown mode 'sometimes'"),
        ("SELECT wal_checkpoint('passive', 'x')", "options are not valid JSON"),
    ];
    for host in hosts() {
        for (sql, expected) in cases {
            let err = host.query(&db, sql).expect_err(sql);
            assert!(err.contains(expected), "{}: {sql}: {err}", host.name());
        }
    }
    // Inside a transaction of the caller.
    let conn = Rusqlite::open(&db);
    conn.execute_batch("BEGIN; SELECT count(*) FROM t;").unwrap();
    for sql in ["SELECT vacuum_if_fragmented(1)", "SELECT maintain('light')", "SELECT wal_checkpoint()"] {
        let err = rows(&conn, sql).unwrap_err();
        assert!(err.contains("the calling connection has an open transaction: COMMIT or ROLLBACK first"), "{err}");
    }
    conn.execute_batch("ROLLBACK").unwrap();
    // In memory: no file for a second connection.
    let memory = Connection::open_in_memory().unwrap();
    load(&memory);
    let err = rows(&memory, "SELECT maintain('light')").unwrap_err();
    assert!(err.contains("\"main\" is an in-memory or temporary database"), "{err}");
    // Read-only.
    let ro = Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    load(&ro);
    let err = rows(&ro, "SELECT maintain('light')").unwrap_err();
    assert!(err.contains("\"main\" is open read-only"), "{err}");
}

#[test]
fn maintenance_functions_cannot_run_from_triggers_or_views() {
    let dir = scratch();
    let db = dir.path().join("d.db");
    fragmented_db(&db, 300, false);
    for host in hosts() {
        for function in ["vacuum_if_fragmented(0)", "maintain('light')", "wal_checkpoint()"] {
            let view = format!("CREATE VIEW IF NOT EXISTS v AS SELECT {function} AS x");
            let err = host.query(&db, &format!("DROP VIEW IF EXISTS v; {view}; SELECT * FROM v")).unwrap_err();
            assert!(err.contains("unsafe use of"), "{}: {function}: {err}", host.name());
        }
    }
}

/// VACUUM needs room for the journal beside the database; a small tmpfs holds the database but not that.
#[test]
fn a_vacuum_that_would_not_fit_on_disk_is_refused() {
    let build = scratch();
    let source = build.path().join("big.db");
    fragmented_db(&source, 6000, false);
    let size = std::fs::metadata(&source).unwrap().len();
    // Room for the database and half of it again: the rollback journal of a VACUUM needs all of it.
    let Some(mount) = Tmpfs::mount(size * 3 / 2, "", "a_vacuum_that_would_not_fit_on_disk_is_refused") else {
        return;
    };
    let db = mount.path().join("big.db");
    std::fs::copy(&source, &db).unwrap();
    let original = std::fs::read(&db).unwrap();
    for host in hosts() {
        let out = call(host.as_ref(), &db, "SELECT vacuum_if_fragmented(1)");
        assert_eq!(out["decision"], "refused", "{}: {out}", host.name());
        let reason = out["reason"].as_str().unwrap();
        assert!(reason.contains("the rewrite needs about") && reason.contains("the rollback journal"), "{reason}");
        assert_eq!(std::fs::read(&db).unwrap(), original);
    }
}

/// kill -9 in the middle of a vacuum: the next open rolls the hot journal back (or ignores the unfinished WAL
/// commit); every committed row is there and the file passes integrity_check.
#[test]
fn killing_the_process_during_a_vacuum_loses_nothing() {
    for wal in [false, true] {
        let dir = scratch();
        let db = dir.path().join("crash.db");
        fragmented_db(&db, 200_000, wal);
        let script = format!(".load {}\nSELECT vacuum_if_fragmented(0);\n", library().display());
        // How long a vacuum takes, timed on copies: the faster of two, since the first also warms the page
        // cache and a slow first run alone would put the kills after the vacuum had finished.
        let whole = (0..2)
            .map(|i| {
                let copy = dir.path().join(format!("timing-{i}.db"));
                std::fs::copy(&db, &copy).unwrap();
                let started = Instant::now();
                assert!(spawn_shell(&copy, &script).wait_with_output().unwrap().status.success());
                started.elapsed()
            })
            .min()
            .unwrap();
        let (mut killed_running, mut hot_journals) = (0, 0);
        for fraction in [0.3, 0.5, 0.7, 0.9] {
            fragment_more(&db);
            let digest = t_digest(&db);
            let mut child = spawn_shell(&db, &script);
            std::thread::sleep(whole.mul_f64(fraction));
            let running = child.try_wait().unwrap().is_none();
            child.kill().unwrap();
            child.wait().unwrap();
            let journal = db.with_extension("db-journal");
            killed_running += running as i32;
            hot_journals += std::fs::metadata(&journal).is_ok_and(|m| m.len() > 0) as i32;
            let context = format!("wal={wal} at {fraction} of {whole:?}, running={running}");
            assert_eq!(integrity(&db), "ok", "{context}");
            assert_eq!(t_digest(&db), digest, "{context}: committed data intact");
        }
        assert!(killed_running >= 2, "wal={wal}: most kills must land during the vacuum ({killed_running} did)");
        if !wal {
            assert!(hot_journals >= 1, "at least one kill left a hot journal to roll back");
        }
    }
}

// ---- fixtures ----

/// A table t(a, b) and an index on b filled with `rows` rows, with the first 60 % of them deleted.
fn fragmented_db(path: &Path, rows: i64, wal: bool) {
    if wal {
        create_db(path, "PRAGMA journal_mode=WAL");
    }
    fill(path, rows);
}

fn fill(path: &Path, rows: i64) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT); CREATE INDEX tb ON t(b);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows})
         INSERT INTO t SELECT x, hex(randomblob(150)) FROM c;
         DELETE FROM t WHERE a <= {rows} * 6 / 10;"
    ))
    .unwrap();
}

/// Adds and deletes rows so that the next vacuum has work to do.
fn fragment_more(path: &Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "INSERT INTO t(b) SELECT hex(randomblob(150)) FROM t LIMIT 20000; \
         DELETE FROM t WHERE a IN (SELECT a FROM t ORDER BY a LIMIT 20000);",
    )
    .unwrap();
}

fn t_digest(path: &Path) -> String {
    let conn = Connection::open(path).unwrap();
    conn.query_row("SELECT count(*) || ':' || total(a) || ':' || total(length(b)) || ':' || max(b) FROM t", [], |r| {
        r.get(0)
    })
    .unwrap()
}

/// Another process with an open transaction, held until `finish`.
struct Reader {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
}

impl Reader {
    fn start(db: &Path) -> Reader {
        Reader::start_with(db, "BEGIN; SELECT count(*) FROM t;")
    }

    fn start_with(db: &Path, sql: &str) -> Reader {
        use std::io::{BufRead, Write};
        let mut child = std::process::Command::new("sqlite3")
            .arg(db)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{sql}\nSELECT 'ready';").unwrap();
        stdin.flush().unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        while let Some(Ok(line)) = lines.next() {
            if line == "ready" {
                break;
            }
        }
        Reader { child, stdin }
    }

    fn finish(&mut self) {
        use std::io::Write;
        let _ = writeln!(self.stdin, "COMMIT;\n.quit");
        let _ = self.child.wait();
    }
}

/// Two tables filled in turns: their pages alternate in the file, so page order (fragmentation) is far over
/// 20 % while no page is free (freelist_pct 0 %). The UNIQUE column's automatic index is scattered too.
fn interleaved_db(path: &Path) {
    let mut conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE a(id INTEGER PRIMARY KEY, email TEXT UNIQUE, body TEXT); \
         CREATE TABLE b(id INTEGER PRIMARY KEY, body TEXT);",
    )
    .unwrap();
    let tx = conn.transaction().unwrap();
    for i in 0..3000 {
        tx.execute("INSERT INTO a(email, body) VALUES (hex(randomblob(8)), hex(randomblob(150)))", []).unwrap();
        tx.execute("INSERT INTO b(id, body) VALUES (?1, hex(randomblob(150)))", [i]).unwrap();
    }
    tx.commit().unwrap();
}

/// A table filled in order whose later half was deleted: half the pages are free, the rest stay in order.
fn emptied_db(path: &Path) {
    create_db(
        path,
        "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 4000)
         INSERT INTO t SELECT x, hex(randomblob(150)) FROM c;
         DELETE FROM t WHERE a > 2000;",
    );
}

/// The report's figures that decide on maintenance, from health_report('full').
fn full_report(host: &dyn Host, db: &Path) -> std::collections::BTreeMap<String, Row> {
    by_check(&host.query(db, "SELECT * FROM health_report('full')").unwrap())
}

fn copy_of(source: &Path, dir: &Path, name: &str) -> std::path::PathBuf {
    let copy = dir.join(name);
    std::fs::copy(source, &copy).unwrap();
    copy
}

/// What health_report recommends clears its warning, whichever figure raised it: fragmentation over its
/// threshold with the freelist under its own, or the reverse; from SQL (`maintain('full')` and `maintain()`)
/// and from the CLI (`vigil maintain --level full` and `vigil maintain`). The report never names SQLite's
/// internal b-trees.
#[test]
fn following_the_recommendation_clears_it() {
    // (name, how it is built, the figure over its threshold, the figure under it)
    let scenarios: [Scenario; 2] = [
        ("interleaved", interleaved_db, "fragmentation", "freelist_pct"),
        ("emptied", emptied_db, "freelist_pct", "fragmentation"),
    ];
    for host in hosts() {
        for (scenario, build, over, under) in scenarios {
            let dir = scratch();
            let source = dir.path().join(format!("{scenario}.db"));
            build(&source);
            let what = format!("{}: {scenario}", host.name());
            let before = full_report(host.as_ref(), &source);
            assert_ne!(before[over]["status"], "ok", "{what}: {:?}", before[over]);
            assert_eq!(before[under]["status"], "ok", "{what}: {:?}", before[under]);
            assert_eq!(before["maintenance"]["value"], "full", "{what}: {:?}", before["maintenance"]);
            let advice = before["maintenance"]["detail"].as_str().unwrap();
            assert!(advice.starts_with(&format!("{over} is ")), "{what}: {advice}");
            for row in before.values() {
                let detail = row["detail"].as_str().unwrap_or_default();
                let internal = ["sqlite_autoindex", "sqlite_stat", "sqlite_sequence"];
                assert!(!internal.iter().any(|i| detail.contains(i)), "{what}: names SQLite's internals: {detail}");
            }

            for (i, way) in WAYS.iter().enumerate() {
                let db = copy_of(&source, dir.path(), &format!("copy{i}.db"));
                follow(host.as_ref(), &db, way);
                let after = full_report(host.as_ref(), &db);
                assert_eq!(after[over]["status"], "ok", "{what}: after {way}: {:?}", after[over]);
                assert_eq!(after["maintenance"]["value"], "none", "{what}: after {way}: {:?}", after["maintenance"]);
                assert_eq!(integrity(&db), "ok");
            }
        }
    }
}

type Scenario = (&'static str, fn(&Path), &'static str, &'static str);

/// Ways to run the recommended level `full`, from SQL and from the CLI.
const WAYS: [&str; 4] =
    ["SELECT maintain('full')", "SELECT maintain()", "vigil maintain --level full", "vigil maintain"];

fn follow(host: &dyn Host, db: &Path, way: &str) {
    match way {
        "vigil maintain --level full" => cli_maintain(db, &["--level", "full"]),
        "vigil maintain" => cli_maintain(db, &[]),
        sql => {
            let out = call(host, db, sql);
            assert_eq!(out["level"], "full", "{sql}: {out}");
            let vacuum = out["steps"].as_array().unwrap().iter().find(|s| s["operation"] == "vacuum").unwrap();
            assert_eq!(vacuum["result"], "done", "{sql}: {out}");
        }
    }
}

/// Runs `vigil maintain DB ARGS`; it must succeed and say it vacuumed.
fn cli_maintain(db: &Path, args: &[&str]) {
    let out = std::process::Command::new(cli_binary()).arg("maintain").arg(db).args(args).output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "vigil maintain {args:?}: {printed}{}", String::from_utf8_lossy(&out.stderr));
    let vacuum = printed.lines().find(|l| l.starts_with("vacuum ")).unwrap_or_default();
    assert!(vacuum.contains(" done "), "vigil maintain {args:?} did not vacuum: {printed}");
}

/// The fragmentation row names the most scattered b-tree in the user's terms: a UNIQUE constraint's automatic
/// index by its table, never `sqlite_autoindex_…`, which no statement can name.
#[test]
fn the_most_scattered_btree_is_named_by_its_table() {
    let dir = scratch();
    let db = dir.path().join("unique.db");
    // Keys inserted in order, then all changed in place: the table's pages stay in order, the index's scatter.
    create_db(
        &db,
        "CREATE TABLE u(id INTEGER PRIMARY KEY, k TEXT UNIQUE, pad TEXT);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000)
         INSERT INTO u SELECT x, printf('%016d', x), hex(randomblob(100)) FROM c;
         UPDATE u SET k = hex(randomblob(8));",
    );
    for host in hosts() {
        let report = full_report(host.as_ref(), &db);
        let detail = report["fragmentation"]["detail"].as_str().unwrap();
        assert!(
            detail.contains("most scattered: the UNIQUE/PRIMARY KEY index of table u ("),
            "{}: {detail}",
            host.name()
        );
    }
}

/// After a full maintenance (which vacuums), the age rows list what ran and never say "vacuum never"
/// (new-user review).
#[test]
fn the_maintenance_age_rows_list_only_what_ran() {
    let dir = scratch();
    let db = dir.path().join("demo.db");
    demo_db(&db);
    call(&Rusqlite, &db, "SELECT maintain('full')");
    let rows =
        Rusqlite.query(&db, "SELECT \"check\", detail FROM health_report() WHERE \"check\" LIKE '%age'").unwrap();
    let checks = by_check(&rows);
    let detail = checks["full_maintenance_age"]["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("(full 0 days ago)"), "{detail}");
    assert!(!detail.contains("never"), "{detail}");
}
