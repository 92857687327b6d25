//! diagnose(path) and `vigil diagnose`: real damage made in the test (pages overwritten in real databases, a
//! truncated file, a hot journal left by a killed writer, a WAL without its -shm), read from the sqlite3 3.40
//! shell, Debian's python3 (SQLite 3.40.1), rusqlite's bundled SQLite and the CLI. Every diagnosis is also
//! checked to leave the directory exactly as it was: same files, bytes and modification times.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use rusqlite::Connection;
use serde_json::Value as Json;
use vigil_tests::*;

/// The steps in order, as docs/api.md lists them (damaged_btree rows come after integrity_check).
const STEPS: &[&str] = &[
    "file",
    "size",
    "page_aligned",
    "header",
    "page_size",
    "page_count",
    "freelist_count",
    "text_encoding",
    "schema_format",
    "reserved_bytes",
    "journal",
    "wal",
    "open",
    "schema",
    "quick_check",
    "integrity_check",
    "foreign_key_check",
    "damaged_pages",
    "last_verified_backup",
    "next_step",
];

/// Debian's python3 with its own sqlite3 module (SQLite 3.40.1) as a third host.
struct Python;

impl Host for Python {
    fn name(&self) -> &'static str {
        "python3 (Debian's sqlite3 module)"
    }

    fn query(&self, db: &Path, sql: &str) -> Result<Vec<Row>, String> {
        let script = r#"
import json, sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.enable_load_extension(True)
c.load_extension(sys.argv[2])
try:
    cur = c.execute(sys.argv[3])
    names = [d[0] for d in cur.description]
    print(json.dumps([dict(zip(names, r)) for r in cur.fetchall()]))
except sqlite3.Error as e:
    print(e, file=sys.stderr)
    sys.exit(1)
"#;
        let out = Command::new("/usr/bin/python3")
            .args(["-c", script])
            .arg(db)
            .arg(library())
            .arg(sql)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(text(&out.stderr).trim().to_string());
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {}", text(&out.stdout)))
    }
}

fn all_hosts() -> Vec<Box<dyn Host>> {
    vec![Box::new(Shell), Box::new(Rusqlite), Box::new(Python)]
}

/// diagnose(path) from an in-memory connection of `host`.
fn diagnose(host: &dyn Host, path: &Path) -> Vec<Row> {
    let sql = format!("SELECT * FROM diagnose('{}')", path.display().to_string().replace('\'', "''"));
    host.query(Path::new(":memory:"), &sql).unwrap_or_else(|e| panic!("{}: {e}", host.name()))
}

fn by_step(rows: &[Row]) -> BTreeMap<String, Row> {
    rows.iter().map(|r| (r["step"].as_str().unwrap().to_string(), r.clone())).collect()
}

fn steps_of(rows: &[Row]) -> Vec<String> {
    rows.iter().map(|r| r["step"].as_str().unwrap().to_string()).filter(|s| s != "damaged_btree").collect()
}

fn field(rows: &BTreeMap<String, Row>, step: &str, key: &str) -> String {
    match &rows[step][key] {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Every file in a directory with its size, modification time and digest.
fn snapshot(dir: &Path) -> Vec<(String, u64, std::time::SystemTime, String)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let meta = std::fs::metadata(&p).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), meta.len(), meta.modified().unwrap(), sha256sum(&p))
        })
        .collect();
    files.sort();
    files
}

/// A table with an index, two tables' worth of pages each, and a child table with a foreign key.
fn shop(path: &Path) {
    create_db(
        path,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b BLOB);
         CREATE INDEX t_a ON t(a);
         CREATE TABLE u(id INTEGER PRIMARY KEY, t_id REFERENCES t(id), x TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 3000)
         INSERT INTO t SELECT i, printf('%050d', i), randomblob(100) FROM n;
         INSERT INTO u SELECT id, id, 'x' FROM t WHERE id < 100;",
    );
}

/// A page of `name`'s b-tree of the given dbstat type ('leaf', 'internal'), not its root.
fn page_of(path: &Path, name: &str, kind: &str) -> u64 {
    let conn = Connection::open(path).unwrap();
    conn.query_row(
        "SELECT pageno FROM dbstat WHERE name = ?1 AND pagetype = ?2 AND pageno != \
         (SELECT rootpage FROM sqlite_schema WHERE name = ?1) ORDER BY pageno LIMIT 1",
        [name, kind],
        |r| r.get::<_, i64>(0),
    )
    .unwrap() as u64
}

/// Overwrites 600 bytes of a page past its header: its cell pointers point nowhere.
fn damage_page(path: &Path, page: u64) {
    let size = pragma(path, "page_size") as u64;
    flip_bytes(path, (page - 1) * size + 8, 600);
}

#[test]
fn a_healthy_database_is_ok_in_every_host_and_nothing_is_written() {
    let dir = scratch();
    let db = dir.path().join("shop.db");
    shop(&db);
    let before = snapshot(dir.path());
    for host in all_hosts() {
        let rows = diagnose(host.as_ref(), &db);
        assert_eq!(steps_of(&rows), STEPS, "{}", host.name());
        for r in &rows {
            let status = r["status"].as_str().unwrap();
            assert!(matches!(status, "ok" | "info"), "{}: {r:?}", host.name());
        }
        let rows = by_step(&rows);
        assert_eq!(field(&rows, "open", "value"), "read-only", "{}", host.name());
        assert_eq!(field(&rows, "schema", "value"), "3");
        assert_eq!(field(&rows, "page_count", "value"), pragma(&db, "page_count").to_string());
        assert_eq!(field(&rows, "next_step", "value"), "none");
        assert_eq!(snapshot(dir.path()), before, "{}: diagnose changed the directory", host.name());
    }
}

#[test]
fn index_only_damage_recommends_reindex_naming_the_index() {
    let dir = scratch();
    let db = dir.path().join("shop.db");
    shop(&db);
    let page = page_of(&db, "t_a", "leaf");
    damage_page(&db, page);
    let before = snapshot(dir.path());
    for host in all_hosts() {
        let rows = diagnose(host.as_ref(), &db);
        let damaged: Vec<&str> =
            rows.iter().filter(|r| r["step"] == "damaged_btree").map(|r| r["value"].as_str().unwrap()).collect();
        assert_eq!(damaged, ["t_a"], "{}: {rows:#?}", host.name());
        let rows = by_step(&rows);
        assert_eq!(field(&rows, "integrity_check", "status"), "critical");
        assert!(
            field(&rows, "damaged_pages", "detail").contains(&format!("index t_a: page {page} (")),
            "{:?}",
            rows["damaged_pages"]
        );
        assert_eq!(field(&rows, "next_step", "value"), "reindex", "{}", host.name());
        assert!(field(&rows, "next_step", "detail").starts_with("REINDEX \"t_a\";"), "{:?}", rows["next_step"]);
        assert_eq!(snapshot(dir.path()), before);
    }
    // The advice works: REINDEX on a copy gives a database that diagnoses healthy, or, where SQLite cannot free
    // the damaged pages, fails as the advice says, whose fallback (salvage) it names.
    let copy = dir.path().join("copy.db");
    std::fs::copy(&db, &copy).unwrap();
    let rows = by_step(&diagnose(&Rusqlite, &copy));
    match Connection::open(&copy).unwrap().execute_batch("REINDEX \"t_a\";") {
        Ok(()) => assert_eq!(field(&by_step(&diagnose(&Rusqlite, &copy)), "next_step", "value"), "none"),
        Err(e) => {
            assert!(e.to_string().contains("database disk image is malformed"), "{e}");
            assert!(field(&rows, "next_step", "detail")
                .contains("malformed\": the damaged pages cannot even be freed), vigil salvage"));
        }
    }
}

#[test]
fn table_leaf_damage_recommends_salvage_and_names_the_table_and_page() {
    let dir = scratch();
    let db = dir.path().join("shop.db");
    shop(&db);
    let page = page_of(&db, "t", "leaf");
    damage_page(&db, page);
    for host in all_hosts() {
        let rows = diagnose(host.as_ref(), &db);
        let table = rows.iter().find(|r| r["step"] == "damaged_btree" && r["value"] == "t");
        assert!(table.is_some_and(|r| r["status"] == "critical"), "{}: {rows:#?}", host.name());
        let rows = by_step(&rows);
        assert!(
            field(&rows, "damaged_pages", "detail").contains(&format!("table t: page {page} (")),
            "{:?}",
            rows["damaged_pages"]
        );
        assert_eq!(field(&rows, "next_step", "value"), "salvage", "{}", host.name());
        let detail = field(&rows, "next_step", "detail");
        assert!(
            detail.starts_with(&format!("vigil salvage {} OUT", db.display())) && detail.contains("table t"),
            "{detail}"
        );
    }
}

#[test]
fn a_verified_backup_in_the_log_is_the_one_to_restore() {
    let dir = scratch();
    let db = dir.path().join("shop.db");
    shop(&db);
    let backups = dir.path().join("backups");
    let made = call(&Rusqlite, &db, &format!("SELECT backup_to('{}/')", backups.display()));
    let backup = made["path"].as_str().unwrap().to_string();
    damage_page(&db, page_of(&db, "t", "leaf"));
    for host in all_hosts() {
        let rows = by_step(&diagnose(host.as_ref(), &db));
        assert_eq!(field(&rows, "last_verified_backup", "value"), backup, "{}", host.name());
        assert!(
            field(&rows, "last_verified_backup", "detail").contains("seconds ago"),
            "{:?}",
            rows["last_verified_backup"]
        );
        assert_eq!(field(&rows, "next_step", "value"), "restore", "{}", host.name());
        let advice = format!("mv {0} {0}.damaged && vigil restore {backup} {0}", db.display());
        assert!(field(&rows, "next_step", "detail").starts_with(&advice), "{}", field(&rows, "next_step", "detail"));
    }
    // A backup whose file is gone is not recommended.
    std::fs::remove_file(&backup).unwrap();
    let rows = by_step(&diagnose(&Shell, &db));
    assert_eq!(field(&rows, "next_step", "value"), "salvage");
}

#[test]
fn header_damage_and_files_that_are_not_databases() {
    let dir = scratch();
    let db = dir.path().join("shop.db");
    shop(&db);
    let bad_size = dir.path().join("page-size.db");
    std::fs::copy(&db, &bad_size).unwrap();
    flip_bytes(&bad_size, 16, 2);
    let no_magic = dir.path().join("magic.db");
    std::fs::copy(&db, &no_magic).unwrap();
    flip_bytes(&no_magic, 0, 16);
    let text_file = dir.path().join("notes.txt");
    std::fs::write(&text_file, "not a database at all, just some words\n".repeat(40)).unwrap();
    for host in all_hosts() {
        let rows = by_step(&diagnose(host.as_ref(), &bad_size));
        assert_eq!(field(&rows, "page_size", "status"), "critical", "{}", host.name());
        assert_eq!(field(&rows, "page_aligned", "status"), "skipped");
        assert_eq!(field(&rows, "next_step", "value"), "salvage");
        assert!(field(&rows, "next_step", "detail").contains("the header"), "{:?}", rows["next_step"]);

        let rows = by_step(&diagnose(host.as_ref(), &no_magic));
        assert_eq!(field(&rows, "header", "value"), "damaged", "{}", host.name());
        assert_eq!(field(&rows, "open", "status"), "critical", "SQLite refuses it: {:?}", rows["open"]);
        // vigil's own page survey still reads the b-trees: only the header is damaged.
        assert_eq!(field(&rows, "damaged_pages", "status"), "ok", "{:?}", rows["damaged_pages"]);
        assert!(field(&rows, "damaged_pages", "detail").starts_with("none, by vigil's page survey of 4 b-trees"));
        assert_eq!(field(&rows, "next_step", "value"), "salvage");

        let rows = by_step(&diagnose(host.as_ref(), &text_file));
        assert_eq!(field(&rows, "header", "value"), "not SQLite", "{}", host.name());
        assert_eq!(field(&rows, "open", "status"), "skipped");
        assert_eq!(field(&rows, "next_step", "value"), "check_path");
    }
}

#[test]
fn a_truncated_file_is_critical_and_salvaged() {
    let dir = scratch();
    let db = dir.path().join("shop.db");
    shop(&db);
    let size = std::fs::metadata(&db).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    file.set_len(size / 2 + 100).unwrap();
    drop(file);
    for host in all_hosts() {
        let rows = by_step(&diagnose(host.as_ref(), &db));
        assert_eq!(field(&rows, "page_aligned", "status"), "critical", "{}", host.name());
        assert!(field(&rows, "page_count", "detail").contains("cut short"), "{:?}", rows["page_count"]);
        assert_eq!(field(&rows, "next_step", "value"), "salvage");
    }
}

/// A WAL database with committed frames (no checkpoint), its files copied while the writer was open: what a
/// crash leaves, with or without the -shm.
fn crashed_wal(dir: &Path, with_shm: bool) -> PathBuf {
    let name = if with_shm { "with-shm" } else { "without-shm" };
    let live = dir.join(format!("live-{name}"));
    std::fs::create_dir(&live).unwrap();
    let source = live.join("w.db");
    let conn = Connection::open(&source).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE w(x);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 500) INSERT INTO w SELECT i FROM n;",
    )
    .unwrap();
    let crashed = dir.join(format!("crashed-{name}"));
    std::fs::create_dir(&crashed).unwrap();
    let suffixes: &[&str] = if with_shm { &["", "-wal", "-shm"] } else { &["", "-wal"] };
    for suffix in suffixes {
        std::fs::copy(format!("{}{suffix}", source.display()), crashed.join(format!("w.db{suffix}"))).unwrap();
    }
    drop(conn);
    crashed.join("w.db")
}

#[test]
fn a_crashed_wal_with_its_shm_is_read_with_the_shm_read_only() {
    let dir = scratch();
    let db = crashed_wal(dir.path(), true);
    let before = snapshot(db.parent().unwrap());
    for host in all_hosts() {
        let rows = by_step(&diagnose(host.as_ref(), &db));
        assert_eq!(field(&rows, "open", "value"), "read-only, read-only -shm", "{}: {:?}", host.name(), rows["open"]);
        assert_eq!(field(&rows, "schema", "value"), "1", "the table made in the WAL is seen: {:?}", rows["schema"]);
        assert_eq!(field(&rows, "next_step", "value"), "none");
        assert_eq!(snapshot(db.parent().unwrap()), before, "{}: the -shm or WAL was written", host.name());
    }
}

#[test]
fn a_wal_with_committed_frames_and_no_shm_is_read_from_a_private_copy() {
    let dir = scratch();
    let db = crashed_wal(dir.path(), false);
    let before = snapshot(db.parent().unwrap());
    for host in all_hosts() {
        let rows = by_step(&diagnose(host.as_ref(), &db));
        assert_eq!(field(&rows, "open", "value"), "private copy", "{}: {:?}", host.name(), rows["open"]);
        assert!(field(&rows, "open", "detail").contains("no -shm"), "{:?}", rows["open"]);
        assert_eq!(field(&rows, "wal", "status"), "ok", "{:?}", rows["wal"]);
        assert!(field(&rows, "wal", "value").parse::<i64>().unwrap() > 0);
        assert_eq!(field(&rows, "schema", "value"), "1", "the table made in the WAL is seen: {:?}", rows["schema"]);
        assert_eq!(field(&rows, "next_step", "value"), "none");
        assert_eq!(snapshot(db.parent().unwrap()), before, "{}: no -shm created, nothing changed", host.name());
    }
    // A frame whose checksum fails (written incompletely): it and the frames after it are ignored.
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    let frames = (std::fs::metadata(&wal).unwrap().len() - 32) / (24 + 4096);
    let original = std::fs::read(&wal).unwrap();
    flip_bytes(&wal, 32 + (frames - 1) * (24 + 4096) + 24 + 100, 1);
    let rows = by_step(&diagnose(&Python, &db));
    assert_eq!(field(&rows, "wal", "status"), "warning", "{:?}", rows["wal"]);
    let said = format!("{frames} frames: {} valid, ", frames - 1);
    assert!(field(&rows, "wal", "detail").starts_with(&said), "{said}: {:?}", rows["wal"]);
    assert!(field(&rows, "wal", "detail").contains(&format!("frame {frames} fails its checksum")));
    std::fs::write(&wal, original).unwrap();
    // A torn last frame (a crash mid-write): ignored, and said.
    let mut bytes = std::fs::read(&wal).unwrap();
    bytes.extend(std::iter::repeat_n(7u8, 1000));
    std::fs::write(&wal, bytes).unwrap();
    let rows = by_step(&diagnose(&Shell, &db));
    assert_eq!(field(&rows, "wal", "status"), "warning");
    assert!(field(&rows, "wal", "detail").contains("a torn last frame (1000 bytes)"), "{:?}", rows["wal"]);
}

/// A process (Debian's python3) holding a WAL database open after a commit, until its stdin closes.
fn live_writer(db: &Path) -> std::process::Child {
    let script = r#"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("PRAGMA journal_mode=WAL")
c.execute("PRAGMA wal_autocheckpoint=0")
c.execute("CREATE TABLE w(x)")
c.execute("INSERT INTO w VALUES (1)")
print("ready", flush=True)
sys.stdin.read()
"#;
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    child
}

#[test]
fn wal_databases_with_a_shm_or_without_frames_create_no_file() {
    let dir = scratch();
    let db = dir.path().join("w.db");
    // Live: another process holds the -wal and -shm open; the -shm is mapped read-only, so not even a read
    // mark is written. (Where the host process itself has the database open, SQLite shares that connection's
    // -shm, and the read takes a read mark in it as any reader does.)
    let mut writer = live_writer(&db);
    let before = snapshot(dir.path());
    assert_eq!(before.len(), 3, "{before:?}");
    for host in all_hosts() {
        let rows = by_step(&diagnose(host.as_ref(), &db));
        assert_eq!(field(&rows, "open", "value"), "read-only, read-only -shm", "{}: {:?}", host.name(), rows["open"]);
        assert_eq!(field(&rows, "schema", "value"), "1");
        // Every whole frame is committed: (file size − WAL header) / (frame header + page).
        let wal_bytes = std::fs::metadata(dir.path().join("w.db-wal")).unwrap().len();
        assert_eq!(field(&rows, "wal", "value"), ((wal_bytes - 32) / (24 + 4096)).to_string(), "{:?}", rows["wal"]);
        assert_eq!(snapshot(dir.path()), before, "{}: the -shm was written", host.name());
    }
    drop(writer.stdin.take());
    writer.wait().unwrap();
    // Closed cleanly: no -wal or -shm; a read-only open would create both.
    assert!(!dir.path().join("w.db-wal").exists());
    let before = snapshot(dir.path());
    for host in all_hosts() {
        let rows = by_step(&diagnose(host.as_ref(), &db));
        assert_eq!(field(&rows, "open", "value"), "immutable", "{}: {:?}", host.name(), rows["open"]);
        assert_eq!(field(&rows, "header", "detail"), "WAL mode (format versions 2/2)");
        assert_eq!(snapshot(dir.path()), before, "{}: a -wal or -shm was created", host.name());
    }
}

/// A database with a hot journal: Debian's python3 (rollback mode, a cache too small for the transaction, so
/// changed pages reach the file before the commit) killed with SIGKILL mid-transaction.
fn hot_journal(dir: &Path) -> PathBuf {
    let db = dir.join("j.db");
    create_db(
        &db,
        "CREATE TABLE t(x);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 2000)
         INSERT INTO t SELECT zeroblob(1000) FROM n;",
    );
    let script = r#"
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("PRAGMA cache_size=10")
c.execute("BEGIN")
c.execute("UPDATE t SET x = randomblob(1000)")
print("ready", flush=True)
time.sleep(600)
"#;
    let mut writer = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(&db)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(writer.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    writer.kill().unwrap(); // SIGKILL
    writer.wait().unwrap();
    db
}

#[test]
fn a_hot_journal_is_never_rolled_back_the_copy_is() {
    let dir = scratch();
    let db = hot_journal(dir.path());
    let journal = dir.path().join("j.db-journal");
    assert!(std::fs::metadata(&journal).unwrap().len() > 0, "the killed writer left its journal");
    let before = snapshot(dir.path());
    for host in all_hosts() {
        let rows = by_step(&diagnose(host.as_ref(), &db));
        assert_eq!(field(&rows, "journal", "status"), "warning", "{}: {:?}", host.name(), rows["journal"]);
        assert!(field(&rows, "journal", "detail").starts_with("hot:"), "{:?}", rows["journal"]);
        assert_eq!(field(&rows, "open", "value"), "private copy");
        assert!(
            field(&rows, "open", "detail").contains("rolled the hot journal back in the copy"),
            "{:?}",
            rows["open"]
        );
        assert_eq!(field(&rows, "integrity_check", "status"), "ok");
        assert_eq!(field(&rows, "next_step", "value"), "roll_back");
        assert_eq!(snapshot(dir.path()), before, "{}: the journal or database changed", host.name());
    }
    // The private copy goes to $TMPDIR and is removed when the diagnosis ends.
    let temp = scratch();
    let out = Command::new(cli_binary()).args(["diagnose"]).arg(&db).env("TMPDIR", temp.path()).output().unwrap();
    assert_eq!(code(&out), 1, "a hot journal is a warning: {}", both(&out));
    assert!(text(&out.stdout).contains("next step (roll_back)"), "{}", both(&out));
    assert_eq!(std::fs::read_dir(temp.path()).unwrap().count(), 0, "the private copy was left behind");
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn a_read_only_directory_and_a_file_owned_by_someone_else() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let db = hot_journal(&ro);
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let before = snapshot(&ro);
    let rows = by_step(&diagnose(&Shell, &db));
    assert_eq!(field(&rows, "open", "value"), "private copy", "{:?}", rows["open"]);
    assert_eq!(field(&rows, "integrity_check", "status"), "ok");
    assert_eq!(snapshot(&ro), before);
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();

    // Another user (nobody) running the CLI on a file only its owner may read.
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let private = shared.join("private.db");
    shop(&private);
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    for path in [dir.path(), &shared] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(cli_binary())
        .args(["diagnose", "--extension"])
        .arg(library().with_extension("so"))
        .arg(&private)
        .output();
    match out {
        Ok(out) if text(&out.stderr).contains("setpriv:") => eprintln!("SKIPPED the other-user case: {}", both(&out)),
        Ok(out) => {
            assert_eq!(code(&out), 2, "{}", both(&out));
            assert!(text(&out.stdout).contains("cannot read it"), "{}", both(&out));
        }
        Err(e) => eprintln!("SKIPPED the other-user case: no setpriv ({e})"),
    }
}

fn vigil(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(cli_binary()).args(args).current_dir(cwd).env_remove("VIGIL_EXTENSION").output().unwrap()
}

#[test]
fn the_cli_prints_the_checklist_and_exits_by_the_worst_status() {
    let dir = scratch();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    shop(&data.join("shop.db"));
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();

    let out = vigil(&["diagnose", "../data/shop.db"], &elsewhere);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let printed = text(&out.stdout);
    assert!(printed.starts_with("vigil diagnose ../data/shop.db\n"), "{printed}");
    assert!(printed.contains("status: OK (0 warning, 0 critical)"), "{printed}");
    assert!(printed.contains("next step (none): nothing: the database is healthy"), "{printed}");

    let out = vigil(&["diagnose", "../data/shop.db", "--json"], &elsewhere);
    let report: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "ok");
    assert_eq!(report["steps"].as_array().unwrap().len(), STEPS.len());

    damage_page(&data.join("shop.db"), page_of(&data.join("shop.db"), "t_a", "leaf"));
    let out = vigil(&["diagnose", "data/shop.db"], dir.path());
    assert_eq!(code(&out), 2, "integrity_check fails: {}", both(&out));
    assert!(text(&out.stdout).contains("next step (reindex): REINDEX \"t_a\";"), "{}", both(&out));
}

#[test]
fn the_cli_on_paths_that_are_not_databases_never_hangs() {
    let dir = scratch();
    std::fs::write(dir.path().join("empty.db"), b"").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "hello\n".repeat(200)).unwrap();
    std::fs::create_dir(dir.path().join("folder")).unwrap();
    let fifo = dir.path().join("pipe");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let cases = [
        ("missing.db", "no such file"),
        ("folder", "a directory, not a database file"),
        ("pipe", "a FIFO (named pipe), not a database file"),
        ("empty.db", "the file is empty"),
        ("notes.txt", "no SQLite header"),
    ];
    for (name, says) in cases {
        let mut child = Command::new(cli_binary())
            .args(["diagnose", name])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed().as_secs() > 60 {
                child.kill().unwrap();
                panic!("vigil diagnose {name} hung");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        assert_eq!(code(&out), 2, "{name}: {}", both(&out));
        assert!(text(&out.stdout).contains(says), "{name}: {}", both(&out));
        assert!(text(&out.stdout).contains("next step (check_path): nothing to repair"), "{name}: {}", both(&out));
    }
}

#[test]
fn bad_arguments_are_refused_with_the_call_to_make() {
    for host in all_hosts() {
        for call in ["SELECT * FROM diagnose()", "SELECT * FROM diagnose(NULL)", "SELECT * FROM diagnose(42)"] {
            let err = host.query(Path::new(":memory:"), call).unwrap_err();
            assert!(
                err.contains("diagnose: bad arguments:") && err.contains("diagnose('app.db')"),
                "{}: {call}: {err}",
                host.name()
            );
        }
    }
}

/// A process with a connection in a write transaction on the database runs diagnose on it from another
/// connection: afterwards another process must still be refused the write lock. (Closing any descriptor of a
/// file drops all of the process's POSIX locks on it: vigil's page survey reads the file through the host's VFS,
/// which defers that close while the process holds locks.)
#[test]
fn the_locks_of_the_calling_process_survive_a_diagnosis() {
    let dir = scratch();
    let db = dir.path().join("locked.db");
    shop(&db);
    let script = r#"
import json, sqlite3, subprocess, sys
db, lib = sys.argv[1], sys.argv[2]
writer = sqlite3.connect(db, isolation_level=None)
writer.execute("BEGIN IMMEDIATE")
writer.execute("INSERT INTO u(t_id, x) VALUES (1, 'pending')")
def second_writer():
    probe = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)\ntry:\n    c.execute('BEGIN IMMEDIATE')\n    print('granted')\nexcept sqlite3.Error as e:\n    print('refused: %s' % e)\n"
    return subprocess.run([sys.executable, "-c", probe, db], capture_output=True, text=True).stdout.strip()
before = second_writer()
reader = sqlite3.connect(":memory:")
reader.enable_load_extension(True)
reader.load_extension(lib)
rows = dict(reader.execute("SELECT step, detail FROM diagnose(?)", (db,)).fetchall())
print(json.dumps({"before": before, "after": second_writer(), "damaged_pages": rows["damaged_pages"]}))
writer.execute("COMMIT")
"#;
    let out = Command::new("/usr/bin/python3").args(["-c", script]).arg(&db).arg(library()).output().unwrap();
    assert!(out.status.success(), "{}", both(&out));
    let seen: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["before"], "refused: database is locked", "{seen}");
    assert_eq!(seen["after"], "refused: database is locked", "the writer's lock was dropped: {seen}");
    assert!(!seen["damaged_pages"].as_str().unwrap().contains("skipped"), "the survey ran: {seen}");
    let pending: i64 = Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM u WHERE x = 'pending'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(pending, 1, "the writer committed after the diagnosis");
}

#[test]
fn a_damaged_schema_page_and_a_damaged_without_rowid_table_are_table_damage() {
    let dir = scratch();
    let schema = dir.path().join("schema.db");
    shop(&schema);
    // Page 1 after the 100-byte file header is sqlite_schema's b-tree page.
    flip_bytes(&schema, 100 + 8, 400);
    let keyed = dir.path().join("keyed.db");
    create_db(
        &keyed,
        "CREATE TABLE w(k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 5000)
         INSERT INTO w SELECT printf('%08d', i), randomblob(100) FROM n;",
    );
    damage_page(&keyed, page_of(&keyed, "w", "leaf"));
    for host in all_hosts() {
        let rows = by_step(&diagnose(host.as_ref(), &schema));
        assert_eq!(field(&rows, "schema", "status"), "critical", "{}: {:?}", host.name(), rows["schema"]);
        assert_eq!(field(&rows, "quick_check", "status"), "skipped");
        assert_eq!(field(&rows, "next_step", "value"), "salvage");
        assert!(field(&rows, "next_step", "detail").contains("the schema"), "{:?}", rows["next_step"]);

        let rows = diagnose(host.as_ref(), &keyed);
        let w = rows.iter().find(|r| r["step"] == "damaged_btree" && r["value"] == "w");
        assert!(w.is_some_and(|r| r["status"] == "critical"), "{}: {rows:#?}", host.name());
        assert_eq!(field(&by_step(&rows), "next_step", "value"), "salvage");
    }
}

/// A writer holding the database's exclusive lock (Debian's python3, BEGIN EXCLUSIVE) is not damage: the
/// diagnosis says it is locked and to try again, exit 1.
#[test]
fn a_locked_database_is_retried_not_repaired() {
    let dir = scratch();
    let db = dir.path().join("busy.db");
    shop(&db);
    let script = r#"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN EXCLUSIVE")
c.execute("INSERT INTO u(t_id, x) VALUES (1, 'pending')")
print("ready", flush=True)
sys.stdin.read()
"#;
    let mut writer = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(&db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(writer.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let rows = by_step(&diagnose(&Shell, &db));
    assert_eq!(field(&rows, "open", "status"), "warning", "{:?}", rows["open"]);
    assert!(field(&rows, "open", "detail").contains("database is locked"), "{:?}", rows["open"]);
    assert_eq!(field(&rows, "next_step", "value"), "retry");
    let out = vigil(&["diagnose", "busy.db"], dir.path());
    assert_eq!(code(&out), 1, "{}", both(&out));
    assert!(text(&out.stdout).contains("next step (retry): vigil diagnose busy.db again"), "{}", both(&out));
    drop(writer.stdin.take());
    writer.wait().unwrap();
}

/// A FIFO, a directory or a symlink planted as -journal, -wal or -shm: SQLite would open it (and block forever
/// on a FIFO) when reading the database, so diagnose never opens the database and says why, at once.
#[test]
fn planted_sidecars_never_hang_or_get_opened() {
    let dir = scratch();
    let db = dir.path().join("a.db");
    create_db(&db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);");
    for (suffix, plant) in [("-journal", "fifo"), ("-wal", "dir"), ("-shm", "symlink")] {
        let side = dir.path().join(format!("a.db{suffix}"));
        match plant {
            "fifo" => assert!(Command::new("mkfifo").arg(&side).status().unwrap().success()),
            "dir" => std::fs::create_dir(&side).unwrap(),
            _ => std::os::unix::fs::symlink("/dev/zero", &side).unwrap(),
        }
        let out = Command::new("timeout")
            .args(["20", cli_binary().to_str().unwrap(), "diagnose", db.to_str().unwrap()])
            .env_remove("VIGIL_EXTENSION")
            .output()
            .unwrap();
        assert_eq!(code(&out), 2, "{suffix}: {}", both(&out));
        assert!(text(&out.stdout).contains("is not a regular file"), "{suffix}: {}", both(&out));
        if plant == "dir" {
            std::fs::remove_dir(&side).unwrap();
        } else {
            std::fs::remove_file(&side).unwrap();
        }
    }
}
