//! The page scan of health_report and health_tables by vigil's own page reader (`fragmentation_method`
//! 'pages', what 'auto' picks for a database file) gives exactly dbstat's figures, in every real host: the
//! sqlite3 3.40 shell, Debian's python3 (SQLite 3.40) and rusqlite's bundled SQLite; and it reads one
//! consistent snapshot while another process commits.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use vigil_tests::*;

/// Debian's python3 with its sqlite3 module (SQLite 3.40.1): statements separated by ";\n", the last one's rows.
struct Python;

const PYTHON_HOST: &str = r#"
import json, sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
c.enable_load_extension(True)
c.load_extension(sys.argv[2])
*setup, last = sys.argv[3].split(";\n")
for statement in setup:
    c.execute(statement)
cursor = c.execute(last)
names = [d[0] for d in cursor.description]
print(json.dumps([dict(zip(names, row)) for row in cursor.fetchall()]))
"#;

impl Host for Python {
    fn name(&self) -> &'static str {
        "python3 (SQLite 3.40)"
    }

    fn query(&self, db: &Path, sql: &str) -> Result<Vec<Row>, String> {
        let out = Command::new("/usr/bin/python3")
            .args(["-c", PYTHON_HOST])
            .arg(db)
            .arg(library())
            .arg(sql)
            .output()
            .expect("Debian's python3 (scripts/setup installs it)");
        if !out.status.success() {
            return Err(text(&out.stderr));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("bad JSON from python3: {e}"))
    }
}

/// rusqlite's bundled SQLite, statements separated by ";\n" like the other hosts.
struct Bundled;

impl Host for Bundled {
    fn name(&self) -> &'static str {
        "rusqlite (bundled SQLite)"
    }

    fn query(&self, db: &Path, sql: &str) -> Result<Vec<Row>, String> {
        let conn = Rusqlite::open(db);
        conn.busy_timeout(Duration::from_secs(30)).unwrap();
        let statements: Vec<&str> = sql.split(";\n").collect();
        for statement in &statements[..statements.len() - 1] {
            conn.execute_batch(statement).map_err(|e| e.to_string())?;
        }
        rows(&conn, statements[statements.len() - 1])
    }
}

fn three_hosts() -> Vec<Box<dyn Host>> {
    vec![Box::new(Shell), Box::new(Python), Box::new(Bundled)]
}

fn options(method: &str, schema: &str) -> String {
    format!(
        r#"{{"fragmentation_method":"{method}","schema":"{schema}","include_vigil":true,"history":false,"fragmentation":true}}"#
    )
}

/// health_tables and the report's scan rows, by one method.
fn scan(host: &dyn Host, db: &Path, setup: &str, method: &str, schema: &str) -> (Vec<Row>, Vec<Row>) {
    let o = options(method, schema);
    let query = |sql: String| {
        host.query(db, &format!("{setup}{sql}")).unwrap_or_else(|e| panic!("{}: {method}: {e}", host.name()))
    };
    let tables = query(format!("SELECT * FROM health_tables('{o}') ORDER BY name"));
    let report = query(format!(
        "SELECT \"check\", value, detail FROM health_report('{o}') \
         WHERE \"check\" IN ('fragmentation', 'unused_pct', 'fragmentation_method') ORDER BY \"check\""
    ));
    (tables, report)
}

/// The page reader's figures equal dbstat's in `host`: every b-tree's rows, pages, bytes, payload, unused and
/// non-sequential percentages and overflow pages, and the report's exact totals of gaps and unused bytes.
fn assert_pages_equal_dbstat(host: &dyn Host, db: &Path, setup: &str, schema: &str, context: &str) {
    let (mut pages, pages_report) = scan(host, db, setup, "pages", schema);
    let (mut dbstat, dbstat_report) = scan(host, db, setup, "dbstat", schema);
    let context = format!("{}: {context}", host.name());
    assert!(pages.len() >= 2, "{context}: {pages:?}");
    for row in pages.iter_mut() {
        assert_eq!(row.remove("method").unwrap(), "pages", "{context}");
    }
    for row in dbstat.iter_mut() {
        assert_eq!(row.remove("method").unwrap(), "dbstat", "{context}");
    }
    assert_eq!(pages, dbstat, "{context}: health_tables");
    // Ordered by check: fragmentation, fragmentation_method, unused_pct.
    for i in [0, 2] {
        assert_eq!(pages_report[i], dbstat_report[i], "{context}: the report's scan rows");
    }
    assert_eq!(pages_report[1]["value"], "pages", "{context}");
    assert_eq!(dbstat_report[1]["value"], "dbstat", "{context}");
}

/// Tables of every kind: rowid rows with overflow chains, an index whose keys overflow, a WITHOUT ROWID
/// table, UNIQUE autoindexes, an empty table, sqlite_sequence and sqlite_stat1, deletions leaving freeblocks
/// and free pages.
fn content(page_size: u32) -> String {
    format!(
        "CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, body BLOB);
         CREATE INDEX t_name ON t(name);
         CREATE TABLE kv(k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID;
         CREATE TABLE u(a UNIQUE, b);
         CREATE TABLE empty(x);
         CREATE TABLE gone(x);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
         INSERT INTO t(name, body) SELECT printf('name-%05d-%.*c', i, i % 40, 'n'),
             zeroblob(CASE WHEN i % 50 = 0 THEN i * 7 % (4 * {page_size}) ELSE i % 300 END) FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
         INSERT INTO kv SELECT printf('key-%06d-%.*c', i * 7919 % 100000, i % 60, 'k'),
             zeroblob(CASE WHEN i % 40 = 0 THEN 3 * {page_size} ELSE i % 200 END) FROM n;
         INSERT INTO u SELECT printf('%.*c', id % 900 + 1, 'u') || id, id FROM t WHERE id % 3 = 0;
         INSERT INTO gone SELECT zeroblob(500) FROM t;
         DELETE FROM t WHERE id % 7 = 0;
         DELETE FROM kv WHERE k LIKE 'key-01%';
         DROP TABLE gone;
         ANALYZE;"
    )
}

fn make(path: &Path, page_size: u32, pragmas: &str) {
    create_db(path, &format!("PRAGMA page_size = {page_size}; {pragmas} {}", content(page_size)));
}

#[test]
fn every_page_size_and_layout_gives_dbstats_figures_in_three_hosts() {
    let dir = scratch();
    let mut files = Vec::new();
    for page_size in [512u32, 1024, 4096, 8192, 65536] {
        let db = dir.path().join(format!("p{page_size}.db"));
        make(&db, page_size, "");
        files.push((db, format!("page size {page_size}")));
    }
    for (mode, page_size) in [("full", 1024u32), ("incremental", 4096)] {
        let db = dir.path().join(format!("av-{mode}.db"));
        make(&db, page_size, &format!("PRAGMA auto_vacuum = {mode};"));
        assert!(pragma(&db, "auto_vacuum") > 0);
        files.push((db, format!("auto_vacuum {mode} (pointer-map pages)")));
    }
    // Reserved bytes at the end of each page (checksum or encryption extensions), set by the shell.
    let reserved = dir.path().join("reserved.db");
    let out =
        shell_run(&reserved, &format!(".filectrl reserve_bytes 24\nPRAGMA page_size=2048;\n{}\n", content(2048)), &[]);
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(std::fs::read(&reserved).unwrap()[20], 24, "the shell reserved 24 bytes per page");
    files.push((reserved, "24 reserved bytes per page".to_string()));

    for (db, context) in &files {
        assert!(pragma(db, "freelist_count") > 0 || context.contains("auto_vacuum full"), "{context}: a freelist");
        for host in three_hosts() {
            assert_pages_equal_dbstat(host.as_ref(), db, "", "main", context);
        }
    }
}

#[test]
fn uncheckpointed_wal_frames_are_read_as_the_snapshot_has_them() {
    let dir = scratch();
    let db = dir.path().join("wal.db");
    make(&db, 4096, "PRAGMA journal_mode = wal;");
    // A connection that holds the WAL: frames it wrote stay uncheckpointed while the hosts scan.
    let holder = Connection::open(&db).unwrap();
    holder
        .execute_batch(
            "PRAGMA wal_autocheckpoint = 0;
             UPDATE t SET body = zeroblob(5000) WHERE id % 11 = 0;
             DELETE FROM kv WHERE k LIKE 'key-02%';
             CREATE TABLE late(x UNIQUE);
             INSERT INTO late SELECT name FROM t;",
        )
        .unwrap();
    let wal = std::fs::metadata(dir.path().join("wal.db-wal")).unwrap().len();
    assert!(wal > 100 * 4096, "the WAL holds the changes: {wal} bytes");
    for host in three_hosts() {
        assert_pages_equal_dbstat(host.as_ref(), &db, "", "main", "WAL with uncheckpointed frames");
    }
    let frames_left = std::fs::metadata(dir.path().join("wal.db-wal")).unwrap().len();
    assert!(frames_left >= wal, "nothing checkpointed the frames meanwhile");
    drop(holder);
}

#[test]
fn an_attached_schema_is_read_from_its_own_file() {
    let dir = scratch();
    let main = dir.path().join("main.db");
    create_db(&main, "CREATE TABLE m(x)");
    let other = dir.path().join("other.db");
    make(&other, 1024, "");
    let setup = format!("ATTACH '{}' AS aux;\n", other.display());
    for host in three_hosts() {
        let (mut pages, pages_report) = scan(host.as_ref(), &main, &setup, "pages", "aux");
        let (mut dbstat, _) = scan(host.as_ref(), &main, &setup, "dbstat", "aux");
        assert!(pages.iter().any(|r| r["name"] == "kv") && !pages.iter().any(|r| r["name"] == "m"));
        assert_eq!(pages_report[1]["value"], "pages");
        // dbstat sizes the pages of a schema named by its argument with main's page size (its pgsize comes from
        // the schema the table was declared in): every figure but bytes (and unused %) is compared, and the page
        // reader's bytes are the attached file's own 1024-byte pages.
        for row in pages.iter_mut().chain(dbstat.iter_mut()) {
            row.remove("method");
            row.remove("unused_pct");
        }
        for row in pages.iter_mut() {
            assert_eq!(
                row.remove("bytes").unwrap().as_i64(),
                row["pages"].as_i64().map(|p| p * 1024),
                "{}",
                host.name()
            );
        }
        for row in dbstat.iter_mut() {
            assert_eq!(
                row.remove("bytes").unwrap().as_i64(),
                row["pages"].as_i64().map(|p| p * 4096),
                "{}",
                host.name()
            );
        }
        assert_eq!(pages, dbstat, "{}: attached schema", host.name());
    }
}

#[test]
fn auto_picks_the_page_reader_for_files_and_dbstat_elsewhere() {
    let dir = scratch();
    let db = dir.path().join("a.db");
    make(&db, 4096, "");
    let method = |sql: &str| {
        let conn = Rusqlite::open(&db);
        rows(&conn, sql).map(|r| r[0].values().next().unwrap().clone())
    };
    let frag = "SELECT value FROM health_report('full') WHERE \"check\" = 'fragmentation_method'";
    assert_eq!(method(frag).unwrap(), "pages");
    assert_eq!(method("SELECT DISTINCT method FROM health_tables()").unwrap(), "pages");
    // In-memory: nothing for the page reader to open.
    let memory =
        "ATTACH ':memory:' AS mem;\nSELECT value FROM health_report('{\"fragmentation\":true,\"schema\":\"mem\"}') \
                  WHERE \"check\" = 'fragmentation_method'";
    assert_eq!(Bundled.query(&db, memory).unwrap()[0]["value"], "dbstat");
    let err = Bundled
        .query(&db, "ATTACH ':memory:' AS mem;\nSELECT * FROM health_tables('{\"fragmentation_method\":\"pages\",\"schema\":\"mem\"}')")
        .unwrap_err();
    assert!(
        err.contains("fragmentation_method 'pages' cannot read this database") && err.contains("in-memory"),
        "{err}"
    );
    // Inside a transaction the caller may hold changes only its own connection sees: dbstat there.
    let conn = Rusqlite::open(&db);
    conn.execute_batch("BEGIN; INSERT INTO empty VALUES (zeroblob(3000));").unwrap();
    let row = rows(&conn, "SELECT method, rows FROM health_tables() WHERE name = 'empty'").unwrap();
    assert_eq!((row[0]["method"].as_str(), row[0]["rows"].as_i64()), (Some("dbstat"), Some(1)));
    let err = rows(&conn, "SELECT * FROM health_tables('{\"fragmentation_method\":\"pages\"}')").unwrap_err();
    assert!(err.contains("open transaction"), "{err}");
    conn.execute_batch("ROLLBACK").unwrap();
    // An empty file has no page yet: no b-tree, as dbstat says.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    for m in ["pages", "dbstat"] {
        let sql = format!("SELECT * FROM health_tables('{{\"fragmentation_method\":\"{m}\"}}')");
        assert_eq!(Bundled.query(&empty, &sql).unwrap().len(), 0, "{m}");
    }
    let err = method("SELECT * FROM health_tables('{\"fragmentation_method\":\"bogus\"}')").unwrap_err();
    assert!(err.contains("auto, pages, dbstat, freelist"), "{err}");
}

/// A python3 process appending rows to `w`, one commit each, deterministically: the file after N commits is
/// the same whoever makes it. Prints each id once committed; stops after `limit` rows.
const APPENDER: &str = r#"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
for i in range(1, int(sys.argv[2]) + 1):
    c.execute("INSERT INTO w(id, body) VALUES (?, zeroblob(? * 37 % 9000))", (i, i))
    print(i, flush=True)
"#;

fn appender(db: &Path, limit: usize) -> std::process::Child {
    Command::new("/usr/bin/python3")
        .args(["-c", APPENDER])
        .arg(db)
        .arg(limit.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Scans taken while another process commits each read one committed state: the figures equal dbstat's on a
/// file made by replaying exactly as many commits (which the scan's own row count of `w` tells).
fn scans_under_a_writer_are_snapshots(journal_mode: &str) {
    let dir = scratch();
    let start = dir.path().join("start.db");
    create_db(
        &start,
        &format!("PRAGMA journal_mode = {journal_mode}; CREATE TABLE w(id INTEGER PRIMARY KEY, body BLOB); CREATE INDEX w_body ON w(length(body), id);"),
    );
    let live = dir.path().join("live.db");
    std::fs::copy(&start, &live).unwrap();
    let mut writer = appender(&live, 1_000_000);
    let mut lines = std::io::BufReader::new(writer.stdout.take().unwrap()).lines();
    let _ = lines.next(); // the first commit is in
    let reader = std::thread::spawn(move || lines.map_while(Result::ok).count());
    let sql = format!("SELECT * FROM health_tables('{}') ORDER BY name", options("pages", "main"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut scans = Vec::new();
    while scans.len() < 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        scans.push(Bundled.query(&live, &sql).unwrap());
    }
    writer.kill().unwrap();
    let stderr = text(&writer.wait_with_output().unwrap().stderr);
    let committed = reader.join().unwrap();
    assert!(committed > 50, "the writer kept committing ({committed} commits): {stderr}");
    let mut seen = std::collections::BTreeSet::new();
    for mut scan in scans {
        let commits = scan.iter().find(|r| r["name"] == "w").unwrap()["rows"].as_i64().unwrap() as usize;
        seen.insert(commits);
        let replay = dir.path().join(format!("replay-{commits}.db"));
        std::fs::copy(&start, &replay).unwrap();
        let out = appender(&replay, commits).wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let o = options("dbstat", "main");
        let mut expected =
            Bundled.query(&replay, &format!("SELECT * FROM health_tables('{o}') ORDER BY name")).unwrap();
        for row in expected.iter_mut().chain(scan.iter_mut()) {
            row.remove("method");
        }
        assert_eq!(scan, expected, "{journal_mode}: the scan at {commits} commits");
    }
    assert!(seen.len() > 1, "{journal_mode}: the scans saw the writer move on: {seen:?}");
}

#[test]
fn a_scan_while_a_writer_commits_reads_one_snapshot_in_wal_mode() {
    scans_under_a_writer_are_snapshots("wal");
}

#[test]
fn a_scan_while_a_writer_commits_reads_one_snapshot_with_a_rollback_journal() {
    scans_under_a_writer_are_snapshots("delete");
}
