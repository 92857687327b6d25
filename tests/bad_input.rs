//! Bad input gets a clear error or a critical row: never a panic, never an abort of the host.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use vigil_tests::*;

fn expect_error(db: &std::path::Path, sql: &str, expected: &str) {
    for host in hosts() {
        let err = host.query(db, sql).expect_err(sql);
        assert!(err.contains(expected), "{}: {sql}: {err}", host.name());
    }
}

#[test]
fn malformed_and_unknown_options_are_named() {
    let dir = scratch();
    let db = dir.path().join("a.db");
    create_db(&db, "CREATE TABLE t(x)");
    let cases = [
        ("SELECT * FROM health_report('{\"integrity\": ')", "health_report: bad options: options are not valid JSON"),
        (
            "SELECT * FROM health_report('{\"checks\":[\"nope\"]}')",
            "health_report: bad options: unknown check \"nope\"",
        ),
        ("SELECT * FROM health_report('{\"bogus\":1}')", "unknown option \"bogus\" (known: schema, integrity"),
        (
            "SELECT * FROM health_report('{\"thresholds\":{\"made_up\":{\"warning\":1}}}')",
            "unknown threshold \"made_up\" (known: probe_ms",
        ),
        (
            "SELECT * FROM health_report('{\"thresholds\":{\"freelist_pct\":{\"warning\":-5}}}')",
            "threshold \"freelist_pct\".warning must not be negative (got -5)",
        ),
        ("SELECT * FROM health_report('deep')", "unknown mode 'deep': use 'fast', 'quick', 'full'"),
        ("SELECT * FROM health_report(42)", "options must be text"),
        (
            "SELECT health_json('{\"integrity\":\"sometimes\"}')",
            "health_json: bad options: option \"integrity\" must be one of none, quick, full",
        ),
        ("SELECT * FROM health_tables('{\"max_errors\":-1}')", "health_tables: bad options: option \"max_errors\""),
        ("SELECT health_json('a', 'b')", "wrong number of arguments to function health_json()"),
        // `%` must survive the virtual-table error path (sqlite3_mprintf) intact.
        (
            "SELECT * FROM health_report('{\"schema\":\"100%\"}')",
            "no database named \"100%\" is attached (attached: main",
        ),
    ];
    for (sql, expected) in cases {
        expect_error(&db, sql, expected);
    }
    for host in hosts() {
        let rows = host.query(&db, "SELECT count(*) AS n FROM health_report(NULL)").unwrap();
        assert!(rows[0]["n"].as_i64().unwrap() > 10, "NULL options are the defaults");
    }
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = scratch();
    let db = dir.path().join("notes.txt");
    std::fs::write(&db, "These are my notes, not a database. ".repeat(200)).unwrap();
    // A table function needs the schema before vigil runs: SQLite's own message.
    for sql in ["SELECT * FROM health_report()", "SELECT * FROM health_report('full')", "SELECT * FROM health_tables()"]
    {
        expect_error(&db, sql, "file is not a database");
    }
    expect_error(&db, "SELECT health_json('full')", "file is not a database");
    // Where the host lets vigil run first (3.40's prepare does not read the schema), vigil says what to do.
    let err = Shell.query(&db, "SELECT health_json('full')").unwrap_err();
    assert!(err.contains("health_json: cannot read the database: file is not a database (check the path"), "{err}");
}

#[test]
fn an_empty_file_is_reported_not_crashed_on() {
    let dir = scratch();
    let db = dir.path().join("empty.db");
    std::fs::write(&db, b"").unwrap();
    for host in hosts() {
        let checks = by_check(&host.query(&db, "SELECT * FROM health_report('full')").unwrap());
        assert_eq!(checks["file_size"]["status"], "warning", "{}", host.name());
        assert!(checks["file_size"]["detail"].as_str().unwrap().contains("empty"));
        assert_eq!(checks["page_count"]["value"], 0);
        assert_eq!(checks["integrity"]["value"], 0);
        assert!(host.query(&db, "SELECT * FROM health_tables()").unwrap().is_empty());
    }
}

#[test]
fn a_read_only_database_reports_but_refuses_snapshots() {
    let dir = scratch();
    let db = dir.path().join("ro.db");
    demo_db(&db);
    let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    load(&conn);
    assert!(rows(&conn, "SELECT * FROM health_report('full')").unwrap().len() > 10);
    let err = rows(&conn, "SELECT health_snapshot()").unwrap_err();
    assert!(err.contains("health_snapshot: cannot record the snapshot: attempt to write a readonly database"), "{err}");

    let out = shell_run(&db, &format!(".load {}\nSELECT health_snapshot();\n", library().display()), &["-readonly"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("attempt to write a readonly database"), "{err}");
}

#[test]
fn a_locked_database_is_a_clear_error_within_the_busy_timeout() {
    let dir = scratch();
    let db = dir.path().join("locked.db");
    demo_db(&db);
    let holder = Connection::open(&db).unwrap();
    holder
        .execute_batch(
            "BEGIN EXCLUSIVE; INSERT INTO customers(email, name, country, created_at) VALUES ('x', 'x', 'x', 'x');",
        )
        .unwrap();

    let out = shell_run(&db, &format!(".load {}\n.timeout 100\nSELECT health_json();\n", library().display()), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("health_json: cannot read the database: database is locked (another connection holds a lock"),
        "{err}"
    );

    let conn = Connection::open(&db).unwrap();
    conn.busy_timeout(std::time::Duration::from_millis(100)).unwrap();
    load(&conn);
    let started = std::time::Instant::now();
    let err = rows(&conn, "SELECT health_json()").unwrap_err();
    assert!(err.contains("database is locked"), "{err}");
    assert!(started.elapsed().as_secs() < 5, "gave up within the busy timeout");
    holder.execute_batch("ROLLBACK").unwrap();
    assert!(rows(&conn, "SELECT health_json()").is_ok(), "works once the lock is gone");
}

/// Flips bytes in the header of a leaf page of `orders`: b-tree corruption that only a scan can see.
fn corrupt_btree(db: &std::path::Path) {
    let conn = Connection::open(db).unwrap();
    let page: i64 = conn
        .query_row("SELECT pageno FROM dbstat WHERE name = 'orders' AND pagetype = 'leaf' LIMIT 1 OFFSET 20", [], |r| {
            r.get(0)
        })
        .unwrap();
    drop(conn);
    flip_bytes(db, (page as u64 - 1) * 4096, 12);
}

#[test]
fn a_corrupt_btree_is_critical_in_every_scan_and_crashes_nothing() {
    let dir = scratch();
    let db = dir.path().join("corrupt.db");
    demo_db(&db);
    corrupt_btree(&db);
    for host in hosts() {
        let db = dir.path().join(format!("corrupt-{}.db", host.name().len()));
        std::fs::copy(dir.path().join("corrupt.db"), &db).unwrap();
        let cheap = by_check(&host.query(&db, "SELECT * FROM health_report()").unwrap());
        assert_eq!(cheap["integrity"]["status"], "info", "{}: cheap checks do not read b-trees", host.name());
        for mode in ["quick", "full"] {
            let checks = by_check(&host.query(&db, &format!("SELECT * FROM health_report('{mode}')")).unwrap());
            assert_eq!(checks["integrity"]["status"], "critical", "{} {mode}", host.name());
            assert!(checks["integrity"]["value"].as_i64().unwrap() >= 1);
            assert_eq!(checks["maintenance"]["value"], "urgent");
            assert_eq!(checks["maintenance"]["status"], "critical");
        }
        let checks = by_check(&host.query(&db, "SELECT * FROM health_report('full')").unwrap());
        let detail = checks["integrity"]["detail"].as_str().unwrap();
        assert!(detail.contains("btreeInitPage() returns error code 11"), "{}: {detail}", host.name());
        assert!(checks.contains_key("fragmentation"), "the page scan completes or reports critical");
        // health_tables either errors clearly or returns rows; it never takes the host down.
        if let Err(err) = host.query(&db, "SELECT * FROM health_tables()") {
            assert!(err.contains("health_tables: dbstat scan failed: database disk image is malformed"), "{err}");
        }
        let snapshot = host.query(&db, "SELECT health_snapshot('quick') AS s");
        assert!(snapshot.is_ok(), "{}: {snapshot:?}", host.name());
        // maintain() on an urgent database copies the file as it is before anything rewrites it.
        let damaged = sha256sum(&db);
        let out = call(host.as_ref(), &db, "SELECT maintain()");
        let steps = out["steps"].as_array().unwrap();
        assert_eq!(
            (steps[0]["operation"].as_str(), steps[0]["result"].as_str()),
            (Some("plan"), Some("urgent")),
            "{out}"
        );
        assert_eq!(
            (steps[1]["operation"].as_str(), steps[1]["result"].as_str()),
            (Some("safety_backup"), Some("done")),
            "{out}"
        );
        let detail = steps[1]["detail"].as_str().unwrap();
        let safety = Path::new(detail.split(" (sha256").next().unwrap());
        assert!(safety.file_name().unwrap().to_string_lossy().contains("-before-maintenance-"), "{detail}");
        assert_eq!(sha256sum(safety), damaged, "{}: the safety backup is the damaged file, byte for byte", host.name());
        assert!(steps.len() > 2, "full maintenance follows the safety backup: {out}");
    }
    // The recorded critical result is what the next cheap report says.
    let db = dir.path().join(format!("corrupt-{}.db", Rusqlite.name().len()));
    let checks = by_check(&Rusqlite.query(&db, "SELECT * FROM health_report()").unwrap());
    assert_eq!(checks["integrity"]["status"], "critical");
    assert_eq!(checks["maintenance"]["value"], "urgent");
}

#[test]
fn a_corrupt_header_or_schema_is_a_clear_error() {
    let dir = scratch();
    let db = dir.path().join("schema.db");
    demo_db(&db);
    flip_bytes(&db, 0, 16);
    expect_error(&db, "SELECT * FROM health_report()", "file is not a database");

    let db = dir.path().join("schema2.db");
    demo_db(&db);
    flip_bytes(&db, 100, 8); // the sqlite_schema b-tree header on page 1
    for host in hosts() {
        let err = host.query(&db, "SELECT * FROM health_report('quick')").unwrap_err();
        assert!(err.contains("malformed"), "{}: {err}", host.name());
    }
}
