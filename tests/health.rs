//! health_report, health_tables, health_json and health_snapshot in both real hosts.

use rusqlite::Connection;
use serde_json::Value as Json;
use vigil_tests::*;

const CHEAP: &[&str] = &[
    "probe_ms",
    "file_size",
    "page_size",
    "page_count",
    "freelist_count",
    "freelist_pct",
    "journal_mode",
    "auto_vacuum",
    "wal_size",
    "disk_free",
    "disk_used_pct",
    "tables",
    "indexes",
    "schema_signature",
    "maintenance_age",
    "full_maintenance_age",
    "last_backup",
    "integrity",
    "maintenance",
];

/// A table with an index, a third of its rows deleted in one block: about 30 % of pages free.
fn fragmented(path: &std::path::Path) {
    create_db(
        path,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, body TEXT);
         CREATE INDEX t_body ON t(body);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 6000)
         INSERT INTO t SELECT i, printf('%.200c', char(65 + i % 26)) || i FROM n;
         DELETE FROM t WHERE id <= 2500;",
    );
}

#[test]
fn the_library_loads_and_identifies_itself_in_both_hosts() {
    let dir = scratch();
    let db = dir.path().join("a.db");
    create_db(&db, "CREATE TABLE t(x)");
    for host in hosts() {
        let rows = host.query(&db, "SELECT vigil_version() AS v, vigil_debug() AS d, sqlite_version() AS s").unwrap();
        assert_eq!(rows[0]["v"], env!("CARGO_PKG_VERSION"), "{}", host.name());
        let debug: Json = serde_json::from_str(rows[0]["d"].as_str().unwrap()).unwrap();
        assert_eq!(debug["sqlite_version"], rows[0]["s"], "{}: the host's own SQLite", host.name());
        assert_eq!(debug["dbstat"], true, "{}", host.name());
        assert!(debug["functions"].as_array().unwrap().iter().any(|f| f == "health_report"));
    }
}

#[test]
fn the_default_report_is_the_cheap_checks_with_true_figures() {
    let dir = scratch();
    let db = dir.path().join("frag.db");
    fragmented(&db);
    let size = std::fs::metadata(&db).unwrap().len();
    let (pages, free) = (pragma(&db, "page_count"), pragma(&db, "freelist_count"));
    assert!(free > 0);
    for host in hosts() {
        let rows = host.query(&db, "SELECT * FROM health_report()").unwrap();
        let names: Vec<&str> = rows.iter().map(|r| r["check"].as_str().unwrap()).collect();
        assert_eq!(names, CHEAP, "{}", host.name());
        let checks = by_check(&rows);
        assert_eq!(checks["file_size"]["value"], size, "{}", host.name());
        assert_eq!(checks["page_count"]["value"], pages);
        assert_eq!(checks["freelist_count"]["value"], free);
        let pct = checks["freelist_pct"]["value"].as_f64().unwrap();
        assert!((pct - free as f64 * 100.0 / pages as f64).abs() < 0.01, "{pct}");
        assert_eq!(checks["freelist_pct"]["status"], "warning", "{}: {pct} % free", host.name());
        assert_eq!(checks["freelist_pct"]["threshold"], "warning ≥ 20 %, critical ≥ 40 %");
        assert_eq!(checks["integrity"]["status"], "info");
        assert!(checks["integrity"]["detail"].as_str().unwrap().starts_with("not checked in this run"));
        assert_eq!(checks["tables"]["value"], 1);
        assert_eq!(checks["indexes"]["value"], 1);
        assert_eq!(checks["journal_mode"]["value"], "delete");
        assert_eq!(checks["maintenance"]["value"], "full");
        assert_eq!(checks["maintenance"]["status"], "warning");
        for row in &rows {
            for column in ["check", "status", "value", "unit", "threshold", "detail"] {
                assert!(row.contains_key(column), "{column} missing");
            }
        }
    }
}

#[test]
fn thresholds_are_overridable_and_disable() {
    let dir = scratch();
    let db = dir.path().join("frag.db");
    fragmented(&db);
    let cases = [
        (r#"{"thresholds":{"freelist_pct":{"warning":50,"critical":60}}}"#, "ok"),
        (r#"{"thresholds":{"freelist_pct":{"warning":5,"critical":10}}}"#, "critical"),
        (r#"{"thresholds":{"freelist_pct":{"warning":null,"critical":null}}}"#, "ok"),
    ];
    for host in hosts() {
        for (options, expected) in cases {
            let rows = host
                .query(&db, &format!("SELECT status FROM health_report('{options}') WHERE \"check\" = 'freelist_pct'"))
                .unwrap();
            assert_eq!(rows[0]["status"], expected, "{} {options}", host.name());
        }
    }
}

#[test]
fn quick_and_full_integrity_on_a_healthy_database() {
    let dir = scratch();
    let db = dir.path().join("demo.db");
    demo_db(&db);
    for host in hosts() {
        let quick = by_check(&host.query(&db, "SELECT * FROM health_report('quick')").unwrap());
        assert_eq!(quick["integrity"]["value"], 0, "{}", host.name());
        assert_eq!(quick["integrity"]["detail"], "quick check: ok");
        assert!(!quick.contains_key("foreign_keys"));
        let full = by_check(&host.query(&db, "SELECT * FROM health_report('full')").unwrap());
        assert_eq!(full["integrity"]["detail"], "full check: ok", "{}", host.name());
        assert_eq!(full["foreign_keys"]["value"], 0);
        assert_eq!(
            full["fragmentation_method"]["value"],
            "pages",
            "{}: a file is read by vigil's page reader",
            host.name()
        );
    }
}

#[test]
fn foreign_key_violations_are_a_warning_with_the_rows_named() {
    let dir = scratch();
    let db = dir.path().join("fk.db");
    create_db(
        &db,
        "PRAGMA foreign_keys = OFF;
         CREATE TABLE parent(id INTEGER PRIMARY KEY);
         CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id));
         INSERT INTO parent VALUES (1);
         INSERT INTO child VALUES (1, 1), (2, 99), (3, 98);",
    );
    for host in hosts() {
        let checks = by_check(&host.query(&db, "SELECT * FROM health_report('{\"integrity\":\"full\"}')").unwrap());
        assert_eq!(checks["foreign_keys"]["value"], 2, "{}", host.name());
        assert_eq!(checks["foreign_keys"]["status"], "warning");
        let detail = checks["foreign_keys"]["detail"].as_str().unwrap();
        assert!(detail.contains("child rowid 2 → parent"), "{detail}");
    }
}

#[test]
fn fragmentation_and_table_stats_agree_with_sqlite() {
    let dir = scratch();
    let db = dir.path().join("frag.db");
    fragmented(&db);
    let conn = Connection::open(&db).unwrap();
    let count: i64 = conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
    let used = pragma(&db, "page_count") - pragma(&db, "freelist_count");
    for host in hosts() {
        let tables = host.query(&db, "SELECT * FROM health_tables()").unwrap();
        let find = |name: &str| tables.iter().find(|r| r["name"] == name).unwrap().clone();
        assert_eq!(find("t")["rows"], count, "{}", host.name());
        assert_eq!(find("t_body")["rows"], count, "{}: index entries", host.name());
        assert_eq!(find("t_body")["type"], "index");
        assert_eq!(find("t_body")["tbl_name"], "t");
        let pages: i64 = tables.iter().map(|r| r["pages"].as_i64().unwrap()).sum();
        assert_eq!(pages, used, "{}: every used page belongs to one b-tree", host.name());
        let bytes: Vec<i64> = tables.iter().map(|r| r["bytes"].as_i64().unwrap()).collect();
        assert!(bytes.windows(2).all(|w| w[0] >= w[1]), "largest first: {bytes:?}");

        let frag = by_check(&host.query(&db, "SELECT * FROM health_report('{\"fragmentation\":true}')").unwrap());
        let interleaved = frag["fragmentation"]["value"].as_f64().unwrap();
        assert!(interleaved > 20.0, "{}: table and index pages interleave: {interleaved}", host.name());

        let fallback = by_check(
            &host
                .query(
                    &db,
                    "SELECT * FROM health_report('{\"fragmentation\":true,\"fragmentation_method\":\"freelist\"}')",
                )
                .unwrap(),
        );
        assert_eq!(fallback["fragmentation"]["value"], frag["freelist_pct"]["value"]);
        assert_eq!(fallback["fragmentation_method"]["value"], "freelist (as requested)");
    }
    // After VACUUM every b-tree is contiguous.
    conn.execute_batch("VACUUM").unwrap();
    for host in hosts() {
        let frag = by_check(&host.query(&db, "SELECT * FROM health_report('{\"fragmentation\":true}')").unwrap());
        assert!(frag["fragmentation"]["value"].as_f64().unwrap() < 2.0, "{}: {:?}", host.name(), frag["fragmentation"]);
        assert_eq!(frag["freelist_pct"]["value"], 0.0);
    }
}

#[test]
fn health_tables_without_dbstat_counts_rows() {
    let dir = scratch();
    let db = dir.path().join("demo.db");
    demo_db(&db);
    for host in hosts() {
        let rows = host.query(&db, "SELECT * FROM health_tables('{\"fragmentation_method\":\"freelist\"}')").unwrap();
        let orders = rows.iter().find(|r| r["name"] == "orders").unwrap();
        assert_eq!(orders["rows"], 10353, "{}", host.name());
        assert_eq!(orders["method"], "count");
        assert!(orders["pages"].is_null());
    }
}

#[test]
fn health_json_is_the_report_with_an_overall_status() {
    let dir = scratch();
    let db = dir.path().join("frag.db");
    fragmented(&db);
    for host in hosts() {
        let rows = host.query(&db, "SELECT health_json() AS j").unwrap();
        let report: Json = serde_json::from_str(rows[0]["j"].as_str().unwrap()).unwrap();
        assert_eq!(report["status"], "warning", "{}", host.name());
        assert_eq!(report["schema"], "main");
        assert!(report["path"].as_str().unwrap().ends_with("frag.db"));
        let names: Vec<&str> =
            report["checks"].as_array().unwrap().iter().map(|c| c["check"].as_str().unwrap()).collect();
        assert_eq!(names, CHEAP);
        let only = host.query(&db, "SELECT health_json('{\"checks\":[\"page_size\"]}') AS j").unwrap();
        let only: Json = serde_json::from_str(only[0]["j"].as_str().unwrap()).unwrap();
        assert_eq!(only["checks"].as_array().unwrap().len(), 1);
    }
}

#[test]
fn reports_never_write_to_the_database() {
    let dir = scratch();
    let db = dir.path().join("demo.db");
    demo_db(&db);
    let before = std::fs::read(&db).unwrap();
    for host in hosts() {
        host.query(&db, "SELECT * FROM health_report('full')").unwrap();
        host.query(&db, "SELECT * FROM health_tables()").unwrap();
        host.query(&db, "SELECT health_json('quick')").unwrap();
        assert!(std::fs::read(&db).unwrap() == before, "{}: the file changed", host.name());
    }
}

#[test]
fn wal_size_is_measured() {
    let dir = scratch();
    let db = dir.path().join("wal.db");
    let writer = Connection::open(&db).unwrap();
    writer
        .execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 2000)
             INSERT INTO t SELECT randomblob(500) FROM n;",
        )
        .unwrap();
    let conn = Rusqlite::open(&db);
    let checks = by_check(&rows(&conn, "SELECT * FROM health_report()").unwrap());
    let wal = std::fs::metadata(dir.path().join("wal.db-wal")).unwrap().len();
    assert_eq!(checks["journal_mode"]["value"], "wal");
    assert_eq!(checks["wal_size"]["value"], wal);
    assert!(wal > 1_000_000);
    let small = rows(&conn, "SELECT status FROM health_report('{\"thresholds\":{\"wal_size\":{\"warning\":1000}}}') WHERE \"check\"='wal_size'").unwrap();
    assert_eq!(small[0]["status"], "warning");
}

#[test]
fn in_memory_and_attached_databases() {
    let conn = Connection::open_in_memory().unwrap();
    load(&conn);
    let checks = by_check(&rows(&conn, "SELECT * FROM health_report()").unwrap());
    assert_eq!(checks["file_size"]["status"], "info");
    assert!(checks["file_size"]["value"].is_null());

    let dir = scratch();
    let other = dir.path().join("other.db");
    demo_db(&other);
    conn.execute("ATTACH ?1 AS shop", [other.to_str().unwrap()]).unwrap();
    let checks = by_check(&rows(&conn, "SELECT * FROM health_report('{\"schema\":\"shop\"}')").unwrap());
    assert_eq!(checks["tables"]["value"], 4);
    assert_eq!(checks["file_size"]["value"], std::fs::metadata(&other).unwrap().len());
}

#[test]
fn snapshots_add_drift_growth_and_integrity_age() {
    let dir = scratch();
    let db = dir.path().join("demo.db");
    demo_db(&db);
    for host in hosts() {
        let copy = dir.path().join(format!("{}.db", host.name().len()));
        std::fs::copy(&db, &copy).unwrap();
        let recorded = host.query(&copy, "SELECT health_snapshot('quick') AS s").unwrap();
        let recorded: Json = serde_json::from_str(recorded[0]["s"].as_str().unwrap()).unwrap();
        assert_eq!(recorded["snapshot"]["id"], 1, "{}", host.name());
        assert_eq!(recorded["status"], "warning");

        let checks = by_check(&host.query(&copy, "SELECT * FROM health_report()").unwrap());
        assert_eq!(checks["schema_drift"]["value"], 0, "{}: vigil's own table is not drift", host.name());
        assert_eq!(checks["integrity"]["status"], "ok");
        assert!(checks["integrity"]["detail"].as_str().unwrap().starts_with("last quick check 0 days ago"));
        assert_eq!(checks["growth_per_day"]["status"], "info", "{}: too recent for a rate", host.name());
        assert!(!checks.contains_key("vigil_health_history"));

        // Age the snapshot, change the schema and grow the file.
        let conn = Connection::open(&copy).unwrap();
        conn.execute_batch(
            "UPDATE vigil_health_history SET taken_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-10 days'),
                                              file_size = file_size - 10485760;
             CREATE TABLE audit(id INTEGER PRIMARY KEY, what TEXT);
             DROP VIEW order_totals;",
        )
        .unwrap();
        let checks =
            by_check(&host.query(&copy, "SELECT * FROM health_report('{\"growth_window_days\":30}')").unwrap());
        assert_eq!(checks["schema_drift"]["value"], 2, "{}", host.name());
        let drift = checks["schema_drift"]["detail"].as_str().unwrap();
        assert!(drift.starts_with("added table audit, removed view order_totals since the snapshot of"), "{drift}");
        assert_eq!(checks["schema_drift"]["status"], "info");
        let growth = checks["growth_per_day"]["value"].as_f64().unwrap();
        assert!((growth - 1_048_576.0).abs() < 2000.0, "{}: 10 MiB over 10 days: {growth}", host.name());
        assert_eq!(checks["days_until_full"]["status"], "ok");
        assert_eq!(checks["integrity"]["status"], "warning", "{}: last check 10 days ago", host.name());

        // Within the default 7-day window there is no baseline.
        let checks = by_check(&host.query(&copy, "SELECT * FROM health_report()").unwrap());
        assert_eq!(checks["growth_per_day"]["status"], "info");
        // history can be ignored.
        let checks = by_check(&host.query(&copy, "SELECT * FROM health_report('{\"history\":false}')").unwrap());
        assert!(!checks.contains_key("schema_drift"));
    }
}

#[test]
fn snapshot_retention_keeps_the_newest() {
    let dir = scratch();
    let db = dir.path().join("a.db");
    create_db(&db, "CREATE TABLE t(x)");
    let conn = Rusqlite::open(&db);
    for _ in 0..5 {
        rows(&conn, "SELECT health_snapshot('{\"keep\":3}')").unwrap();
    }
    let ids =
        rows(&conn, "SELECT group_concat(id) AS ids FROM (SELECT id FROM vigil_health_history ORDER BY id)").unwrap();
    assert_eq!(ids[0]["ids"], "3,4,5");
}

#[test]
fn writing_functions_cannot_run_from_triggers_or_views() {
    let dir = scratch();
    let db = dir.path().join("a.db");
    create_db(&db, "CREATE TABLE t(x); CREATE TABLE log(y)");
    for host in hosts() {
        host.query(&db, "CREATE VIEW IF NOT EXISTS v AS SELECT health_snapshot() AS s").unwrap();
        let err = host.query(&db, "SELECT * FROM v").unwrap_err();
        assert!(err.contains("unsafe use of health_snapshot()"), "{}: {err}", host.name());
        host.query(
            &db,
            "CREATE TRIGGER IF NOT EXISTS tr AFTER INSERT ON t BEGIN INSERT INTO log SELECT health_snapshot(); END",
        )
        .unwrap();
        let err = host.query(&db, "INSERT INTO t VALUES (1)").unwrap_err();
        assert!(err.contains("unsafe use of health_snapshot()"), "{}: {err}", host.name());
    }
}

#[test]
fn the_shell_recipe_runs() {
    let dir = scratch();
    let db = dir.path().join("demo.db");
    demo_db(&db);
    let recipe = std::fs::read_to_string(root().join("sql/health.sql")).unwrap();
    let recipe = recipe.replace(".load ./target/release/libvigil", &format!(".load {}", library().display()));
    let out = shell_run(&db, &recipe, &[]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let row = printed.lines().find(|l| l.starts_with("│ freelist_pct ")).unwrap_or_default();
    assert!(row.contains("│ warning │ 29.18"), "{printed}");
    assert!(printed.contains("│ orders_by_customer "), "{printed}");
}

#[test]
fn health_history_gives_the_series_of_the_snapshots_in_both_hosts() {
    for host in hosts() {
        let dir = scratch();
        let db = dir.path().join("h.db");
        create_db(&db, "CREATE TABLE t(x)");
        let count = |sql: &str| host.query(&db, sql).unwrap().len();
        assert_eq!(count("SELECT * FROM health_history()"), 0, "{}: no history, no rows", host.name());
        for _ in 0..3 {
            call(host.as_ref(), &db, "SELECT health_snapshot()");
        }
        call(host.as_ref(), &db, &format!("SELECT backup_to('{}/')", dir.path().join("b").display()));
        // Three days, sizes 1000 → 3000 → 2000; one report that is not JSON; the backup 2.5 days ago, and a
        // failed one 1.5 days ago that must not count.
        Connection::open(&db)
            .unwrap()
            .execute_batch(
                "UPDATE vigil_health_history SET taken_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', (id - 4) || ' days'),
                     file_size = CASE id WHEN 1 THEN 1000 WHEN 2 THEN 3000 ELSE 2000 END;
                 UPDATE vigil_health_history SET report = 'not json' WHERE id = 2;
                 UPDATE vigil_backup_log SET created_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-60 hours');
                 INSERT INTO vigil_backup_log(backup_id, created_at, path, bytes, sha256, compression, verify,
                     verification, duration_ms)
                   SELECT 'x', strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-36 hours'), path, bytes, sha256, compression,
                     verify, 'failed', duration_ms FROM vigil_backup_log;",
            )
            .unwrap();
        let rows = host
            .query(&db, "SELECT file_size, growth_per_day, backup_age_seconds, freelist_ratio FROM health_history()")
            .unwrap();
        let column = |name: &str| rows.iter().map(|r| r[name].as_f64()).collect::<Vec<_>>();
        assert_eq!(column("file_size"), [Some(1000.0), Some(3000.0), Some(2000.0)], "{}: oldest first", host.name());
        assert_eq!(column("growth_per_day"), [None, Some(2000.0), Some(-1000.0)], "{}", host.name());
        let ages = column("backup_age_seconds");
        assert_eq!(ages[0], None, "{}: no backup before the first snapshot", host.name());
        assert!((ages[1].unwrap() - 12.0 * 3600.0).abs() < 5.0, "{}: {ages:?}", host.name());
        assert!((ages[2].unwrap() - 36.0 * 3600.0).abs() < 5.0, "{}: the failed backup does not count", host.name());
        assert!(rows.iter().all(|r| r["freelist_ratio"].as_f64() == Some(0.0)));

        let newest = host.query(&db, r#"SELECT growth_per_day FROM health_history('{"limit":1}')"#).unwrap();
        assert_eq!(newest[0]["growth_per_day"].as_f64(), Some(-1000.0), "{}: from the snapshot before", host.name());
        let since = host
            .query(&db, r#"SELECT * FROM health_history(json_object('since', strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-30 hours')))"#)
            .unwrap();
        assert_eq!(since.len(), 1, "{}", host.name());
        let error = host.query(&db, r#"SELECT * FROM health_history('{"limit":0}')"#).unwrap_err();
        assert!(error.contains("health_history") && error.contains("\"limit\""), "{}: {error}", host.name());

        Connection::open(&db)
            .unwrap()
            .execute_batch("UPDATE vigil_health_history SET taken_at = 'x' WHERE id = 2")
            .unwrap();
        // A row whose time is not a time is passed over: the others still make a series.
        let rows = host.query(&db, "SELECT file_size, growth_per_day FROM health_history()").unwrap();
        let sizes: Vec<_> = rows.iter().map(|r| r["file_size"].as_f64()).collect();
        assert_eq!(sizes, [Some(1000.0), Some(2000.0)], "{}: {rows:?}", host.name());
    }
}

/// Planted rows and objects in vigil's own tables (a file is hostile) give bounded, sound answers: a VIEW named
/// like vigil's tables is not read (it ran a planted recursive query), statuses are vigil's words or NULL,
/// texts are cut, extreme sizes give NULL growth rather than an overflow, and an unknown schema is named.
#[test]
fn health_history_survives_planted_objects_and_values() {
    for host in hosts() {
        let dir = scratch();
        let db = dir.path().join("p.db");
        create_db(
            &db,
            "CREATE TABLE t(x);
             CREATE VIEW vigil_health_history AS SELECT 1 AS nothing_vigil_reads;
             CREATE VIEW vigil_backup_log AS SELECT 1 AS nothing_vigil_reads;
             CREATE VIEW vigil_maintenance_log AS SELECT 1 AS nothing_vigil_reads;",
        );
        let rows = host.query(&db, "SELECT * FROM health_history()");
        assert_eq!(rows.map(|r| r.len()), Ok(0), "{}: a view is not vigil's table", host.name());
        let report = host.query(&db, "SELECT * FROM health_report()");
        assert!(report.is_ok(), "{}: {report:?}", host.name());

        let db = dir.path().join("q.db");
        create_db(&db, "CREATE TABLE t(x)");
        for _ in 0..4 {
            call(host.as_ref(), &db, "SELECT health_snapshot()");
        }
        Connection::open(&db)
            .unwrap()
            .execute_batch(
                "UPDATE vigil_health_history SET taken_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', (id - 5) || ' days');
                 UPDATE vigil_health_history SET file_size = -9223372036854775808, status = printf('%.100000c', 'x')
                   WHERE id = 1;
                 UPDATE vigil_health_history SET file_size = 9223372036854775807 WHERE id = 2;
                 UPDATE vigil_health_history SET file_size = 1e300, page_count = 1e300 WHERE id = 3;
                 UPDATE vigil_health_history SET taken_at = taken_at || printf('%.100000c', 'y') WHERE id = 4;",
            )
            .unwrap();
        let rows = host
            .query(&db, "SELECT taken_at, status, file_size, page_count, growth_per_day FROM health_history()")
            .unwrap_or_else(|e| panic!("{}: {e}", host.name()));
        assert_eq!(rows.len(), 3, "{}: the row whose time is 100 KB long is passed over", host.name());
        assert!(rows[0]["status"].is_null(), "{}: {:.80}", host.name(), rows[0]["status"].to_string());
        let word = rows[1]["status"].as_str().unwrap_or_default();
        assert!(["ok", "info", "warning", "critical"].contains(&word), "{}: {word}", host.name());
        assert!(rows[1]["growth_per_day"].is_null(), "{}: MIN→MAX is absurd: {:?}", host.name(), rows[1]);
        assert!(rows[2]["file_size"].is_null() && rows[2]["page_count"].is_null(), "{}: {:?}", host.name(), rows[2]);
        assert!(rows.iter().all(|r| r["taken_at"].as_str().is_some_and(|t| t.len() < 40)), "{}", host.name());

        let error = host.query(&db, r#"SELECT * FROM health_history('{"schema":"nope"}')"#).unwrap_err();
        assert!(
            error.contains("unknown schema \"nope\"") && error.contains("attached: main"),
            "{}: {error}",
            host.name()
        );
    }
}

/// A history or maintenance-log row with a time that is not one (planted, or damaged) is passed over: the report
/// still comes, from the rows that are sound, in both hosts; before, one such row made every report of the
/// database fail, and `vigil metrics`/`serve` called it unreadable.
#[test]
fn a_bad_time_in_vigils_own_tables_is_passed_over_not_fatal() {
    let dir = scratch();
    let db = dir.path().join("a.db");
    create_db(&db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);");
    for host in hosts() {
        call(host.as_ref(), &db, "SELECT health_snapshot()");
    }
    call(&Rusqlite, &db, "SELECT maintain('standard')");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "UPDATE vigil_health_history SET taken_at = 'nope' WHERE id = (SELECT max(id) FROM vigil_health_history);
         INSERT INTO vigil_maintenance_log(finished_at, function, level, result, duration_ms, size_before, size_after,
                                           detail)
         SELECT 'zzz', function, level, result, duration_ms, size_before, size_after, detail
         FROM vigil_maintenance_log LIMIT 1;",
    )
    .unwrap();
    drop(conn);
    for host in hosts() {
        let rows = host.query(&db, "SELECT * FROM health_report()").unwrap_or_else(|e| panic!("{}: {e}", host.name()));
        let checks = by_check(&rows);
        assert_eq!(checks["schema_drift"]["status"], "ok", "{}: drift from the sound snapshot", host.name());
        assert!(checks.contains_key("maintenance_age"), "{}: {rows:?}", host.name());
    }
    let out = std::process::Command::new(cli_binary()).arg("metrics").arg(&db).output().unwrap();
    assert!(text(&out.stdout).contains("vigil_up{db=\"a.db\"} 1"), "{}", both(&out));
}

/// Loading vigil into a connection and closing it leaves nothing behind: SQLite frees each function's state when
/// the connection closes. Before, every load kept about 2.4 KB for the life of the process (7 MB per 3000 loads
/// here): `vigil watch` and `vigil serve` open a connection per database per cycle and grew by 140 MB an hour
/// over 1000 databases; so does any application opening a connection per request.
#[test]
fn loading_into_many_connections_does_not_grow_the_process() {
    let dir = scratch();
    let script = format!(
        r#"
import sqlite3
def rss():
    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS'))
def loads(n):
    for _ in range(n):
        c = sqlite3.connect({db:?})
        c.enable_load_extension(True)
        c.load_extension({lib:?})
        c.execute("SELECT vigil_version(), health_json()").fetchall()
        c.close()
loads(300)
before = rss()
loads(3000)
print(rss() - before)
"#,
        db = dir.path().join("a.db").display().to_string(),
        lib = library().display().to_string(),
    );
    let out = std::process::Command::new("/usr/bin/python3").arg("-c").arg(&script).output().unwrap();
    assert!(out.status.success(), "{}", both(&out));
    let growth_kib: i64 = text(&out.stdout).trim().parse().unwrap();
    // Allocator noise is tens of KiB; the leak was 7,000.
    assert!(growth_kib < 1024, "RSS grew by {growth_kib} KiB over 3000 loads");
}
