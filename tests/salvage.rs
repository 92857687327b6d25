//! Salvage as its users meet it: from each host and the CLI, from another directory, on a WAL with committed
//! and unfinished transactions, on a hot journal left by a killed writer, with hostile paths, interrupted, and
//! on a full disk. (The corruption corpus and the fuzz loop are in salvage_corpus.rs.)

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rusqlite::Connection;
use serde_json::Value as Json;
use vigil_tests::*;

const PYTHON: &str = "/usr/bin/python3";

fn vigil_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(cli_binary()).current_dir(dir).args(args).env_remove("VIGIL_EXTENSION").output().unwrap()
}

/// A schema with what salvage must get right: rowid and WITHOUT ROWID tables, an INTEGER PRIMARY KEY, a column
/// added later with a DEFAULT, generated columns, AUTOINCREMENT, a NOCASE column, every storage class, large
/// values on overflow pages, an index, a partial index, a view and a trigger.
const VARIED: &str = "
    PRAGMA user_version = 7; PRAGMA application_id = 1234;
    CREATE TABLE people(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT COLLATE NOCASE NOT NULL, born REAL, photo BLOB);
    CREATE TABLE \"odd \"\"name\"\"\"(k TEXT, n INT, v, PRIMARY KEY(n, k)) WITHOUT ROWID;
    CREATE TABLE g(a INT, twice INT AS (a * 2) VIRTUAL, thrice INT AS (a * 3) STORED, note);
    CREATE TABLE plain(x, y);
    CREATE INDEX people_name ON people(name);
    CREATE UNIQUE INDEX plain_y ON plain(y) WHERE y IS NOT NULL;
    CREATE VIEW adults AS SELECT * FROM people WHERE born < 2000;
    CREATE TRIGGER people_log AFTER INSERT ON people BEGIN INSERT INTO plain(x) VALUES (new.id); END;
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
    INSERT INTO people(name, born, photo)
      SELECT 'P' || i, CASE i % 4 WHEN 0 THEN NULL WHEN 1 THEN -0.0 ELSE 1900 + i / 10.0 END,
             CASE WHEN i % 50 = 0 THEN randomblob(9000) ELSE zeroblob(i % 7) END FROM n;
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
    INSERT INTO \"odd \"\"name\"\"\" SELECT 'k' || i, i % 9, CASE i % 3 WHEN 0 THEN i WHEN 1 THEN 1.5 ELSE printf('%.*c', i % 700, 'x') END FROM n;
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) INSERT INTO g(a, note) SELECT i, 'n' FROM n;
    ALTER TABLE plain ADD COLUMN z DEFAULT 'later';
    INSERT INTO plain VALUES (1, 1, 'now'), (2.5, 'text', NULL), (x'00ff', NULL, 3);
    DELETE FROM people WHERE id % 10 = 3;
";

fn varied_db(path: &Path) {
    create_db(path, VARIED);
}

/// Everything a salvage must carry over, read without vigil: content, schema, header values.
fn fingerprint(path: &Path) -> String {
    let conn = Connection::open(path).unwrap();
    let schema: Vec<String> = conn
        .prepare("SELECT type || ' ' || name || ': ' || ifnull(sql, '') FROM sqlite_schema WHERE name NOT LIKE 'sqlite_autoindex%' ORDER BY type, name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let header: Vec<i64> = ["user_version", "application_id", "page_size", "auto_vacuum"]
        .iter()
        .map(|p| conn.query_row(&format!("PRAGMA {p}"), [], |r| r.get(0)).unwrap())
        .collect();
    let encoding: String = conn.query_row("PRAGMA encoding", [], |r| r.get(0)).unwrap();
    let sequence: Vec<(String, i64)> = conn
        .prepare("SELECT name, seq FROM sqlite_sequence ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .unwrap_or_default();
    format!("{}\n{schema:#?}\n{header:?} {encoding} {sequence:?}", content_digest(path))
}

fn salvage_json(host: &dyn Host, dir: &Path, src: &Path, dest: &Path, options: &str) -> Json {
    let db = dir.join("host.db");
    let sql = format!("SELECT salvage_to('{}', '{}', '{options}')", src.display(), dest.display());
    call(host, &db, &sql)
}

/// An undamaged database comes back identical (content, schema, header values) from the sqlite3 shell,
/// rusqlite and python3, and the report's counts are the tables' counts.
#[test]
fn an_undamaged_database_comes_back_whole_from_every_host() {
    let dir = scratch();
    let src = dir.path().join("src.db");
    varied_db(&src);
    let expected = fingerprint(&src);
    for host in hosts() {
        let dest = dir.path().join(format!("out-{}.db", host.name()));
        let report = salvage_json(host.as_ref(), dir.path(), &src, &dest, "{}");
        assert_eq!(fingerprint(&dest), expected, "{}", host.name());
        let conn = Connection::open(&dest).unwrap();
        for table in report["tables"].as_array().unwrap() {
            let name = table["name"].as_str().unwrap();
            let count: i64 = conn
                .query_row(&format!("SELECT count(*) FROM \"{}\"", name.replace('"', "\"\"")), [], |r| r.get(0))
                .unwrap();
            assert_eq!(table["rows_recovered"].as_i64(), Some(count), "{name}: {report}");
            assert_eq!(table["pages_damaged"].as_i64(), Some(0), "{name}");
        }
        assert_eq!(report["lost_and_found"]["rows"], 0, "{report}");
        let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok");
    }
    let dest = dir.path().join("out-python.db");
    let program = format!(
        "import sqlite3; c = sqlite3.connect(':memory:'); c.enable_load_extension(True); c.load_extension('{}'); \
         print(c.execute(\"SELECT salvage_to('{}', '{}')\").fetchone()[0])",
        library().display(),
        src.display(),
        dest.display()
    );
    let out = Command::new(PYTHON).arg("-c").arg(&program).output().unwrap();
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(fingerprint(&dest), expected, "python3");
}

/// UTF-16 databases and the smallest and largest page sizes, with a damaged leaf so that vigil's own reader
/// (not SQLite's copy) decodes the rows: text comes back in the source's encoding, unchanged.
#[test]
fn utf16_and_every_page_size_come_back_through_vigils_reader() {
    let dir = scratch();
    for (encoding, page_size) in [("UTF-16le", 512), ("UTF-16be", 65536), ("UTF-8", 512), ("UTF-8", 65536)] {
        let src = dir.path().join(format!("{encoding}-{page_size}.db"));
        create_db(
            &src,
            &format!(
                "PRAGMA page_size = {page_size}; PRAGMA encoding = '{encoding}';
                 CREATE TABLE t(id INTEGER PRIMARY KEY, s TEXT, b BLOB);
                 CREATE TABLE victim(x);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400)
                 INSERT INTO t SELECT i, 'héllo wörld ✓ ' || i || printf('%.*c', i * 3, 'z'), randomblob(i) FROM n;
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
                 INSERT INTO victim SELECT printf('%.*c', 200, 'v') FROM n;"
            ),
        );
        let expected = text_rows(&src);
        // A damaged leaf of t makes vigil's reader (not SQLite's copy) read the rest of t.
        let leaf = last_leaf(&src, "t");
        let lost: Vec<i64> = rowids_on_page(&src, "t", leaf);
        zero_page(&src, leaf, page_size);
        let dest = dir.path().join(format!("out-{encoding}-{page_size}.db"));
        let report = salvage_json(&Rusqlite, dir.path(), &src, &dest, "{\"emergency_copy\": false}");
        let conn = Connection::open(&dest).unwrap();
        let got_encoding: String = conn.query_row("PRAGMA encoding", [], |r| r.get(0)).unwrap();
        assert_eq!(got_encoding, encoding);
        let got = text_rows(&dest);
        let wanted: Vec<_> = expected.iter().filter(|r| !lost.contains(&r.0)).cloned().collect();
        assert_eq!(got, wanted, "{encoding} {page_size}: {report}");
        assert!(!lost.is_empty());
    }
}

/// The rows of table t (id, s, b) in rowid order.
fn text_rows(db: &Path) -> Vec<(i64, String, Vec<u8>)> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT id, s, b FROM t ORDER BY id").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
}

/// Pages of a b-tree, as dbstat lists them (rusqlite's bundled SQLite has dbstat).
fn pages_of(db: &Path, name: &str, kind: &str) -> Vec<u32> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT pageno FROM dbstat WHERE name = ?1 AND pagetype = ?2 ORDER BY pageno").unwrap();
    stmt.query_map([name, kind], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

fn last_leaf(db: &Path, table: &str) -> u32 {
    *pages_of(db, table, "leaf").last().unwrap()
}

/// The rowids stored on one leaf page (from dbstat's per-cell path order: read all rows with their page).
fn rowids_on_page(db: &Path, table: &str, page: u32) -> Vec<i64> {
    let conn = Connection::open(db).unwrap();
    let cells: i64 = conn
        .query_row("SELECT ncell FROM dbstat WHERE name = ?1 AND pageno = ?2", rusqlite::params![table, page], |r| {
            r.get(0)
        })
        .unwrap();
    // The last leaf of a rowid table holds its largest rowids.
    let mut stmt = conn.prepare(&format!("SELECT rowid FROM {table} ORDER BY rowid DESC LIMIT ?1")).unwrap();
    stmt.query_map([cells], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

fn zero_page(db: &Path, page: u32, page_size: u32) {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    file.seek(SeekFrom::Start(u64::from(page - 1) * u64::from(page_size))).unwrap();
    file.write_all(&vec![0u8; page_size as usize]).unwrap();
    file.sync_all().unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn mtime(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

/// Runs a python3 program; panics with its output when it fails.
fn python(program: &str, args: &[&str]) -> String {
    let out = Command::new(PYTHON).arg("-c").arg(program).args(args).output().unwrap();
    assert!(out.status.success(), "{}", both(&out));
    text(&out.stdout)
}

/// A WAL database whose -wal holds committed transactions (no checkpoint) and then an unfinished one, left by a
/// writer killed with SIGKILL: the salvage has exactly the committed rows; the CLI, run from another directory
/// with relative paths, copies the raw files as they were (same bytes) and never changes them; the new files
/// keep the source's permission bits.
#[test]
fn a_wal_with_committed_and_unfinished_transactions_from_the_cli_in_another_directory() {
    let root = scratch();
    let (app, elsewhere) = (root.path().join("app"), root.path().join("elsewhere"));
    std::fs::create_dir_all(&app).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    let db = app.join("live.db");
    let writer = r#"
import os, sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("PRAGMA journal_mode=WAL"); c.execute("PRAGMA wal_autocheckpoint=0"); c.execute("PRAGMA cache_size=10")
c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
for batch in range(5):
    c.execute("BEGIN")
    for i in range(200):
        c.execute("INSERT INTO t(v) VALUES (?)", ("committed %d" % i * 20,))
    c.execute("COMMIT")
c.execute("BEGIN")
for i in range(3000):
    c.execute("INSERT INTO t(v) VALUES (?)", ("unfinished %d" % i * 20,))
print("ready", flush=True)
os.kill(os.getpid(), 9)
"#;
    let out = Command::new(PYTHON).arg("-c").arg(writer).arg(&db).output().unwrap();
    assert!(text(&out.stdout).contains("ready"), "{}", both(&out));
    let wal = app.join("live.db-wal");
    assert!(std::fs::metadata(&wal).unwrap().len() > 100_000, "the unfinished transaction spilled into the WAL");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (db_hash, wal_hash, db_time) = (sha256sum(&db), sha256sum(&wal), mtime(&db));

    let out = vigil_in(&elsewhere, &["salvage", "../app/live.db", "../app/saved.db", "--json"]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let report: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["wal"]["frames_ignored"].as_u64().unwrap() > 0, "{report}");
    let saved = app.join("saved.db");
    let count: i64 = Connection::open(&saved)
        .unwrap()
        .query_row("SELECT count(*) FROM t WHERE v LIKE 'committed%'", [], |r| r.get(0))
        .unwrap();
    let all: i64 = Connection::open(&saved).unwrap().query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!((count, all), (1000, 1000), "exactly the committed rows");
    assert_eq!(std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777, 0o640, "the source's bits");

    let emergency = PathBuf::from(report["emergency_copy"].as_str().unwrap());
    let emergency = elsewhere.join(emergency);
    assert_eq!(names(&emergency), vec!["live.db", "live.db-wal"]);
    assert_eq!(sha256sum(&emergency.join("live.db")), db_hash);
    assert_eq!(sha256sum(&emergency.join("live.db-wal")), wal_hash);
    assert_eq!((sha256sum(&db), sha256sum(&wal), mtime(&db)), (db_hash, wal_hash, db_time), "the source is untouched");
    assert!(!app.join("live.db-shm").exists() || names(&app).contains(&"live.db-shm".to_string()));
}

/// A rollback-journal writer killed in the middle of a big transaction leaves a hot journal: the salvage
/// has the state before that transaction (the journal's original pages laid over the file), and neither the
/// database nor the journal is changed (no rollback happens in the user's files).
#[test]
fn a_hot_journal_is_rolled_back_in_the_salvage_not_in_the_file() {
    let dir = scratch();
    let db = dir.path().join("crashed.db");
    let writer = r#"
import os, sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("PRAGMA journal_mode=DELETE"); c.execute("PRAGMA cache_size=5")
c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
c.execute("BEGIN")
for i in range(4000):
    c.execute("INSERT INTO t(v) VALUES ('before')")
c.execute("COMMIT")
c.execute("BEGIN")
c.execute("UPDATE t SET v = 'after-' || id")
c.execute("INSERT INTO t(v) SELECT 'new' FROM t")
print("ready", flush=True)
os.kill(os.getpid(), 9)
"#;
    let out = Command::new(PYTHON).arg("-c").arg(writer).arg(&db).output().unwrap();
    assert!(text(&out.stdout).contains("ready"), "{}", both(&out));
    let journal = dir.path().join("crashed.db-journal");
    assert!(journal.exists(), "a hot journal was left");
    let (db_hash, journal_hash) = (sha256sum(&db), sha256sum(&journal));

    let dest = dir.path().join("saved.db");
    let report = salvage_json(&Rusqlite, dir.path(), &db, &dest, "{}");
    assert!(report["hot_journal"]["pages_rolled_back"].as_u64().unwrap() > 0, "{report}");
    let conn = Connection::open(&dest).unwrap();
    let rows: Vec<(String, i64)> = conn
        .prepare("SELECT v, count(*) FROM t GROUP BY v")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows, vec![("before".to_string(), 4000)], "{report}");
    assert_eq!((sha256sum(&db), sha256sum(&journal)), (db_hash, journal_hash), "no rollback in the user's files");
}

/// dest is never replaced (an existing file, a symlink, a directory); src must be a regular file (a FIFO is
/// refused at once, never opened); the errors say which argument and what to do, in SQL and on the CLI.
#[test]
fn hostile_paths_are_refused_and_left_alone() {
    let dir = scratch();
    let src = dir.path().join("src.db");
    create_db(&src, "CREATE TABLE t(x); INSERT INTO t VALUES (1);");
    let existing = dir.path().join("existing.db");
    std::fs::write(&existing, b"mine").unwrap();
    let target = dir.path().join("target.txt");
    std::fs::write(&target, b"keep").unwrap();
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let fifo = dir.path().join("fifo.db");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let host = dir.path().join("host.db");
    for (src, dest, expected) in [
        (&src, &existing, "already exists"),
        (&src, &link, "already exists"),
        (&src, &dir.path().to_path_buf(), "is a directory"),
        (&fifo, &dir.path().join("new1.db"), "not a regular file"),
        (&dir.path().to_path_buf(), &dir.path().join("new2.db"), "not a regular file"),
        (&dir.path().join("missing.db"), &dir.path().join("new3.db"), "no such file"),
        (&src, &dir.path().join("no/such/dir/x.db"), "does not exist"),
    ] {
        let sql = format!("SELECT salvage_to('{}', '{}')", src.display(), dest.display());
        let error = Rusqlite.query(&host, &sql).unwrap_err();
        assert!(error.contains("salvage_to") && error.contains(expected), "{sql}: {error}");
        assert!(error.len() < 400 && !error.contains("Error {"), "{error}");
    }
    assert_eq!(std::fs::read(&existing).unwrap(), b"mine");
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    assert_eq!(names(dir.path()), vec!["existing.db", "fifo.db", "host.db", "link.db", "src.db", "target.txt"]);
    let out = vigil_in(dir.path(), &["salvage", "src.db", "existing.db"]);
    assert_eq!(code(&out), 2, "{}", both(&out));
    assert!(text(&out.stderr).contains("existing.db already exists"), "{}", both(&out));
}

/// A disk that fills up: during the emergency copy (nothing is left behind), or while the new database is
/// written (no dest, no temporary file; the complete emergency copy is kept and named in the error).
#[test]
fn a_full_disk_leaves_no_partial_file() {
    let test = "a_full_disk_leaves_no_partial_file";
    let dir = scratch();
    let src = dir.path().join("big.db");
    create_db(
        &src,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
         INSERT INTO t(b) SELECT randomblob(3000) FROM n;",
    );
    let size = std::fs::metadata(&src).unwrap().len();
    let Some(small) = Tmpfs::mount(size / 2, "", test) else { return };
    let out = vigil_in(small.path(), &["salvage", src.to_str().unwrap(), "out.db"]);
    assert_eq!(code(&out), 2, "{}", both(&out));
    assert!(text(&out.stderr).contains("for the emergency copy"), "{}", both(&out));
    assert_eq!(names(small.path()), Vec::<String>::new(), "nothing left");
    drop(small);
    let Some(roomy) = Tmpfs::mount(size + size / 2, "", test) else { return };
    let out = vigil_in(roomy.path(), &["salvage", src.to_str().unwrap(), "out.db"]);
    assert_eq!(code(&out), 2, "{}", both(&out));
    let left = names(roomy.path());
    assert_eq!(left.len(), 1, "only the emergency copy: {left:?}");
    assert!(left[0].starts_with("out.db.emergency-"), "{left:?}");
    assert!(text(&out.stderr).contains(&left[0]), "the error names the copy: {}", both(&out));
}

/// SIGINT during a long salvage (a damaged table read row by row): exit 130, the note says OUT was not
/// created, and no OUT nor temporary file is left.
#[test]
fn ctrl_c_stops_a_salvage_and_leaves_no_output() {
    let dir = scratch();
    let src = dir.path().join("big.db");
    create_db(
        &src,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b TEXT);
         CREATE INDEX t_a ON t(a);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 600000)
         INSERT INTO t(a, b) SELECT hex(randomblob(8)), hex(randomblob(40)) FROM n;",
    );
    zero_page(&src, pages_of(&src, "t", "leaf")[100], 4096);
    let child = Command::new(cli_binary())
        .current_dir(dir.path())
        .args(["salvage", "big.db", "out.db", "--no-emergency-copy"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while names(dir.path()).iter().all(|n| !n.contains(".vigil-tmp-")) {
        assert!(started.elapsed().as_secs() < 60, "the salvage never started writing");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 130, "{}", both(&out));
    assert!(text(&out.stderr).contains("out.db was not created"), "{}", both(&out));
    assert_eq!(names(dir.path()), vec!["big.db"], "{}", both(&out));
}

/// A process that holds a write lock on its database and salvages it (no emergency copy, and with one) keeps
/// its lock: the file is read through the host's VFS, whose close never drops the process's locks (a plain
/// close(2) would, and another process could then write in the middle of the transaction).
#[test]
fn salvaging_a_database_this_process_holds_locked_keeps_the_lock() {
    let dir = scratch();
    let db = dir.path().join("lk.db");
    create_db(&db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);");
    let program = r#"
import sqlite3, subprocess, sys
db, lib, options = sys.argv[1], sys.argv[2], sys.argv[3]
app = sqlite3.connect(db, isolation_level=None)
app.execute("BEGIN IMMEDIATE"); app.execute("INSERT INTO t VALUES (2)")
tool = sqlite3.connect(":memory:"); tool.enable_load_extension(True); tool.load_extension(lib)
tool.execute("SELECT salvage_to(?, ?, ?)", (db, db + options[-5:] + ".out", options)).fetchone()
other = subprocess.run([sys.executable, "-c",
    "import sqlite3,sys; c=sqlite3.connect(sys.argv[1], timeout=0.2, isolation_level=None); c.execute('BEGIN IMMEDIATE'); print('GOT THE LOCK')",
    db], capture_output=True, text=True)
print(other.stdout.strip() or other.stderr.strip().splitlines()[-1])
"#;
    for options in ["{\"emergency_copy\": false}", "{\"emergency_copy\": true }"] {
        let out = python(program, &[db.to_str().unwrap(), library().to_str().unwrap(), options]);
        assert!(out.contains("database is locked") && !out.contains("GOT THE LOCK"), "{options}: {out}");
    }
}

/// A file past 1 GiB, whose lock page (the page holding byte 2^30) is never content: the salvage of a damaged
/// table in it reads across that page and gets every row but those of the damaged leaf.
#[test]
fn a_file_past_one_gib_is_read_across_its_lock_page() {
    let dir = scratch();
    let src = dir.path().join("big.db");
    create_db(
        &src,
        "PRAGMA page_size = 65536;
         CREATE TABLE t(id INTEGER PRIMARY KEY, tag TEXT, filler BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2200)
         INSERT INTO t SELECT i, 'row ' || i, zeroblob(500000) FROM n;",
    );
    assert!(std::fs::metadata(&src).unwrap().len() > 1 << 30);
    let leaf = pages_of(&src, "t", "leaf")[0];
    let lost = rowids_on_first_leaf(&src, leaf);
    zero_page(&src, leaf, 65536);
    let dest = dir.path().join("out.db");
    let report = salvage_json(&Rusqlite, dir.path(), &src, &dest, "{\"emergency_copy\": false}");
    let conn = Connection::open(&dest).unwrap();
    let (count, tags): (i64, i64) = conn
        .query_row(
            "SELECT count(*), count(DISTINCT tag) FROM t WHERE tag = 'row ' || id AND length(filler) = 500000",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(count, 2200 - lost, "{report}");
    assert_eq!(tags, count);
    assert_eq!(report["lost_and_found"]["rows"], 0, "{report}");
}

/// How many rows the first leaf of a rowid table holds.
fn rowids_on_first_leaf(db: &Path, leaf: u32) -> i64 {
    let conn = Connection::open(db).unwrap();
    conn.query_row("SELECT ncell FROM dbstat WHERE pageno = ?1", [leaf], |r| r.get(0)).unwrap()
}

/// A table `t` with an index, a WITHOUT ROWID table `kv` with an index, 1024-byte pages (deep trees).
fn two_kinds_db(path: &Path) {
    create_db(
        path,
        "PRAGMA page_size = 1024;
         CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, n INT);
         CREATE INDEX t_name ON t(name);
         CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;
         CREATE INDEX kv_v ON kv(v);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 8000)
         INSERT INTO t SELECT i, printf('name%06d', (i * 7919) % 8000), i FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 8000)
         INSERT INTO kv SELECT printf('key%06d', i), printf('value %d', i * 31) FROM n;",
    );
}

fn rows_of(db: &Path, sql: &str) -> Vec<String> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0)).unwrap().map(Result::unwrap).collect()
}

/// The cases a new user met (review of issue 13): index-only damage keeps every row; a truncated file gives
/// every row of the leaves it still holds; a WITHOUT ROWID table whose interior pages are lost gets back its
/// orphan leaves and never an index's entries; a text file is not taken for a database.
#[test]
fn index_damage_truncation_and_without_rowid_orphans() {
    let dir = scratch();
    let original = dir.path().join("orig.db");
    two_kinds_db(&original);
    let all_t = rows_of(&original, "SELECT id || name || n FROM t ORDER BY id");
    let all_kv = rows_of(&original, "SELECT k || '=' || v FROM kv ORDER BY k");
    let salvage = |name: &str, damage: &dyn Fn(&Path)| -> (Json, PathBuf) {
        let broken = dir.path().join(format!("{name}.db"));
        std::fs::copy(&original, &broken).unwrap();
        damage(&broken);
        let dest = dir.path().join(format!("{name}.out.db"));
        (salvage_json(&Rusqlite, dir.path(), &broken, &dest, "{\"emergency_copy\": false}"), dest)
    };

    let index_leaf = pages_of(&original, "t_name", "leaf")[3];
    let (report, dest) = salvage("index", &|db| zero_page(db, index_leaf, 1024));
    assert_eq!(rows_of(&dest, "SELECT id || name || n FROM t ORDER BY id"), all_t, "{report}");
    assert_eq!(rows_of(&dest, "SELECT k || '=' || v FROM kv ORDER BY k"), all_kv);

    let pages = std::fs::metadata(&original).unwrap().len() / 1024;
    let keep = pages * 3 / 5;
    let beyond: i64 = Connection::open(&original)
        .unwrap()
        .query_row(
            "SELECT ifnull(sum(ncell), 0) FROM dbstat WHERE name = 't' AND pagetype = 'leaf' AND pageno > ?1",
            [keep as i64],
            |r| r.get(0),
        )
        .unwrap();
    let (report, dest) = salvage("truncated", &|db| {
        std::fs::OpenOptions::new().write(true).open(db).unwrap().set_len(keep * 1024).unwrap()
    });
    let got = rows_of(&dest, "SELECT id || name || n FROM t ORDER BY id");
    assert!(got.iter().all(|row| all_t.contains(row)), "no invented row");
    assert_eq!(got.len() as i64, all_t.len() as i64 - beyond, "every row of the leaves left: {report}");

    let interior = pages_of(&original, "kv", "internal");
    let (report, dest) = salvage("kv", &|db| interior.iter().take(2).for_each(|&p| zero_page(db, p, 1024)));
    let got = rows_of(&dest, "SELECT k || '=' || v FROM kv ORDER BY k");
    assert!(got.iter().all(|row| all_kv.contains(row)), "no index entry taken for a row: {report}");
    assert!(got.len() * 10 >= all_kv.len() * 9, "{} of {}: {report}", got.len(), all_kv.len());

    let text = dir.path().join("README.db");
    std::fs::copy(root().join("README.md"), &text).unwrap();
    let host = dir.path().join("host.db");
    let sql = format!("SELECT salvage_to('{}', '{}/x.db')", text.display(), dir.path().display());
    let error = Rusqlite.query(&host, &sql).unwrap_err();
    assert!(error.contains("is not an SQLite database"), "{error}");
}

/// SQL stored in sqlite_schema is the damaged file's, and may be hostile: an entry whose SQL is several
/// statements (an ATTACH of another database and a DROP in it, a CREATE in it) or a statement of another kind
/// than the entry's is refused (named in the notes), never run; everything else is salvaged.
#[test]
fn hostile_sql_in_the_schema_is_never_run() {
    let dir = scratch();
    let victim = dir.path().join("victim.db");
    create_db(&victim, "CREATE TABLE important(x); INSERT INTO important VALUES ('precious');");
    let src = dir.path().join("hostile.db");
    create_db(&src, "CREATE TABLE t(a); INSERT INTO t VALUES (1); CREATE TABLE u(a); CREATE TABLE w(a);");
    let planted = dir.path().join("planted.db");
    let conn = Connection::open(&src).unwrap();
    conn.execute_batch("PRAGMA writable_schema = ON").unwrap();
    let attach_drop = format!("CREATE TABLE u(a); ATTACH '{}' AS p; DROP TABLE p.important", victim.display());
    let attach_create = format!("ATTACH '{}' AS q; CREATE TABLE q.x(y)", planted.display());
    conn.execute("UPDATE sqlite_schema SET sql = ?1 WHERE name = 'u'", [&attach_drop]).unwrap();
    conn.execute("UPDATE sqlite_schema SET sql = ?1 WHERE name = 'w'", [&attach_create]).unwrap();
    drop(conn);
    let dest = dir.path().join("out.db");
    let report = salvage_json(&Rusqlite, dir.path(), &src, &dest, "{\"emergency_copy\": false}");
    let kept: String =
        Connection::open(&victim).unwrap().query_row("SELECT x FROM important", [], |r| r.get(0)).unwrap();
    assert_eq!(kept, "precious", "{report}");
    assert!(!planted.exists(), "no file created by stored SQL");
    let notes = report["notes"].to_string();
    assert!(notes.contains("table u could not be created") && notes.contains("refused"), "{notes}");
    assert!(notes.contains("table w could not be created"), "{notes}");
    let t: i64 = Connection::open(&dest).unwrap().query_row("SELECT a FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(t, 1);
}

/// A WAL whose one valid frame claims a database of two billion pages: believed only as far as frames could
/// make it true (no allocation for billions of pages, no abort of the host).
#[test]
fn a_crafted_wal_size_is_not_believed() {
    let dir = scratch();
    let src = dir.path().join("w.db");
    create_db(&src, "CREATE TABLE t(a); INSERT INTO t VALUES (1), (2);");
    let program = r#"
import struct, sys
db = sys.argv[1]
page = open(db, 'rb').read(4096)
def cksum(data, s0, s1):
    for i in range(0, len(data), 8):
        a, b = struct.unpack('<II', data[i:i + 8])
        s0 = (s0 + a + s1) & 0xffffffff
        s1 = (s1 + b + s0) & 0xffffffff
    return s0, s1
header = struct.pack('>IIIIII', 0x377f0682, 3007000, 4096, 0, 7, 9)
s0, s1 = cksum(header, 0, 0)
header += struct.pack('>II', s0, s1)
frame = struct.pack('>IIII', 1, 2147483000, 7, 9)
s0, s1 = cksum(frame[:8], s0, s1)
s0, s1 = cksum(page, s0, s1)
open(db + '-wal', 'wb').write(header + frame + struct.pack('>II', s0, s1) + page)
"#;
    python(program, &[src.to_str().unwrap()]);
    let out = Command::new("prlimit")
        .args(["--as=2000000000", "--"])
        .arg(cli_binary())
        .args(["salvage", src.to_str().unwrap(), dir.path().join("out.db").to_str().unwrap(), "--json"])
        .env_remove("VIGIL_EXTENSION")
        .output()
        .unwrap();
    assert!(matches!(code(&out), 0 | 1), "{}", both(&out));
    let report: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["pages"].as_u64().unwrap() < 100, "{report}");
}
