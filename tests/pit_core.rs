//! pit_journal's core walked through by real hosts and real processes: bad arguments to every pit function,
//! exact transaction ids on vigil connections, an in-place restore racing a writer that never loads vigil,
//! kill -9 of writers and of restores, schema changes by foreign writers, and instants of every kind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use serde_json::Value as Json;
use vigil_tests::*;

/// Debian's python3: its sqlite3 module (SQLite 3.40) can load extensions; the pyenv one on PATH cannot.
const PYTHON: &str = "/usr/bin/python3";

/// A value of a vigil function on a rusqlite connection with vigil loaded, parsed as JSON.
fn json_call(conn: &Connection, sql: &str) -> Result<Json, String> {
    let text: String = conn.query_row(sql, [], |r| r.get(0)).map_err(|e| e.to_string())?;
    Ok(serde_json::from_str(&text).unwrap())
}

fn vigil(db: &Path) -> Connection {
    let conn = Rusqlite::open(db);
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    conn
}

/// Reads one integer without vigil (as any process would).
fn plain_i64(db: &Path, sql: &str) -> i64 {
    let conn = Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn max_seq(db: &Path) -> i64 {
    plain_i64(db, "SELECT coalesce(max(seq), 0) FROM vigil_pit_log")
}

/// One value with its storage class, exactly (REAL by its bits).
fn typed(value: rusqlite::types::ValueRef) -> String {
    use rusqlite::types::ValueRef::*;
    match value {
        Null => "null".into(),
        Integer(i) => format!("int {i}"),
        Real(r) => format!("real {r} {:x}", r.to_bits()),
        Text(t) => format!("text {}", String::from_utf8_lossy(t)),
        Blob(b) => format!("blob {}", b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
    }
}

/// Every user table's rows in key order (rowid first for rowid tables), each value with its storage class:
/// equal maps are equal content.
fn tables(db: &Path) -> BTreeMap<String, Vec<Vec<String>>> {
    let conn = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'vigil_%' \
             AND name NOT LIKE 'sqlite_%' ORDER BY 1",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut out = BTreeMap::new();
    for name in names {
        let with_rowid = format!("SELECT rowid, * FROM \"{name}\" ORDER BY rowid");
        let mut stmt =
            conn.prepare(&with_rowid).or_else(|_| conn.prepare(&format!("SELECT * FROM \"{name}\""))).unwrap();
        let width = stmt.column_count();
        let rows = stmt
            .query_map([], |r| Ok((0..width).map(|i| typed(r.get_ref(i).unwrap())).collect::<Vec<_>>()))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        out.insert(name, rows);
    }
    out
}

/// `pit_restore(instant, target)` on a vigil connection to `db`; `instant` is SQL (a literal).
fn restore_into(db: &Path, instant: &str, target: &Path) -> Result<Json, String> {
    json_call(&vigil(db), &format!("SELECT pit_restore({instant}, '{}')", target.display()))
}

fn seq(n: i64) -> String {
    format!("'{{\"seq\":{n}}}'")
}

/// Runs a Python program (Debian's python3) with arguments; its stdout, or panics with its stderr.
fn python(program: &str, args: &[&str]) -> String {
    let out = Command::new(PYTHON).arg("-c").arg(program).args(args).output().expect("Debian's /usr/bin/python3");
    assert!(out.status.success(), "python3: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn spawn_python(program: &str, args: &[&str]) -> Child {
    Command::new(PYTHON)
        .arg("-c")
        .arg(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("Debian's /usr/bin/python3")
}

/// A pseudo-random number below `n`, different on every call (no dependency for randomness in tests).
fn random_below(n: u64) -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    (nanos.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407) >> 33) % n.max(1)
}

/// The current time as RFC 3339 UTC with milliseconds, as SQLite prints it.
fn now_rfc3339() -> String {
    Connection::open_in_memory()
        .unwrap()
        .query_row("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')", [], |r| r.get(0))
        .unwrap()
}

/// A journal row's time as RFC 3339 with milliseconds.
fn at_of(db: &Path, seq: i64) -> String {
    Connection::open(db)
        .unwrap()
        .query_row("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', at) FROM vigil_pit_log WHERE seq = ?1", [seq], |r| r.get(0))
        .unwrap()
}

fn pause(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

// ---------------------------------------------------------------------------------------------------------
// Bad arguments
// ---------------------------------------------------------------------------------------------------------

/// A refusal is one bounded line naming the function, never Rust's debug text or a panic.
fn assert_clear(host: &dyn Host, function: &str, sql: &str, err: &str) {
    let what = format!("{}: {sql:.120}", host.name());
    assert!(err.contains(&format!("{function}")), "{what}: the error does not name {function}: {err}");
    assert!(err.len() < 2500, "{what}: {} bytes of error", err.len());
    for debug in ["panicked", "Some(", "None", "Err(", "Ok(", "Error {", "RUST_BACKTRACE", "unwrap"] {
        assert!(!err.contains(debug), "{what}: Rust debug text {debug:?} in: {err}");
    }
}

fn refused(host: &dyn Host, db: &Path, function: &str, sql: &str) -> String {
    let err = host.query(db, sql).err().unwrap_or_else(|| panic!("{}: {sql:.200}: accepted", host.name()));
    assert_clear(host, function, sql, &err);
    err
}

#[test]
fn bad_arguments_to_every_pit_function_are_clear_bounded_errors() {
    let huge = "x".repeat(1_000_000);
    for host in hosts() {
        let dir = scratch();
        let db = dir.path().join("app.db");
        create_db(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v); CREATE VIRTUAL TABLE f USING fts5(body);");
        let d = dir.path().display();
        std::fs::write(dir.path().join("exists.db"), b"").unwrap();

        // Before any journal: what needs one says so and how to start it; pit_status says it is off.
        for (function, sql) in [
            ("pit_tick", "SELECT pit_tick()".to_string()),
            ("pit_disable", "SELECT pit_disable('*')".to_string()),
            ("pit_restore", format!("SELECT pit_restore({}, '{d}/new.db')", seq(0))),
            ("pit_restore", "SELECT pit_restore('2026-01-01T00:00:00Z')".to_string()),
        ] {
            let err = refused(&*host, &db, function, &sql);
            assert!(err.contains("no journal") && err.contains("pit_enable"), "{}: {err}", host.name());
        }
        let status = call(&*host, &db, "SELECT pit_status()");
        assert_eq!(status["enabled"], false, "{status}");
        assert!(!dir.path().join("new.db").exists());

        let enable_bad = [
            "SELECT pit_enable(42)".to_string(),
            "SELECT pit_enable(X'00ff')".into(),
            "SELECT pit_enable('')".into(),
            "SELECT pit_enable('no_such_table')".into(),
            "SELECT pit_enable('f')".into(),
            "SELECT pit_enable('vigil_pit_log')".into(),
            format!("SELECT pit_enable('{huge}')"),
            "SELECT pit_enable('*', 'not json')".into(),
            "SELECT pit_enable('*', '[1]')".into(),
            "SELECT pit_enable('*', 7)".into(),
            "SELECT pit_enable('*', '{\"made_up\": 1}')".into(),
            format!("SELECT pit_enable('*', '{{\"{huge}\": 1}}')"),
        ];
        for sql in &enable_bad {
            refused(&*host, &db, "pit_enable", sql);
        }
        let err = refused(&*host, &db, "pit_enable", "SELECT pit_enable('f')");
        assert!(err.contains("virtual table"), "{err}");
        let enabled = call(&*host, &db, "SELECT pit_enable('*')");
        assert_eq!(enabled["tracked"], serde_json::json!(["t"]), "{enabled}");
        assert_eq!(enabled["skipped"][0]["table"], "f", "{enabled}");

        for sql in [
            "SELECT pit_disable(42)".to_string(),
            "SELECT pit_disable(X'00')".into(),
            "SELECT pit_disable('no_such_table')".into(),
            format!("SELECT pit_disable('{huge}')"),
        ] {
            refused(&*host, &db, "pit_disable", &sql);
        }
        refused(&*host, &db, "pit_status", "SELECT pit_status(1)");
        refused(&*host, &db, "pit_tick", "SELECT pit_tick(1)");

        let instants = [
            "NULL".to_string(),
            "X'01'".into(),
            "'yesterday'".into(),
            "'2026-13-45T99:00:00Z'".into(),
            "-5".into(),
            "1e300".into(),
            "'{\"seq\": -1}'".into(),
            "'{\"seq\": \"a\"}'".into(),
            "'{\"seq\": 1, \"x\": 2}'".into(),
            "'{\"txn\": 1}'".into(),
            "'{'".into(),
            "'{\"seq\": 999999999}'".into(),
            "'2000-01-01T00:00:00Z'".into(),
            "'2999-01-01T00:00:00Z'".into(),
            "1.0".into(),
            format!("'{huge}'"),
            format!("'2026-{huge}'"),
        ];
        for instant in &instants {
            refused(&*host, &db, "pit_restore", &format!("SELECT pit_restore({instant}, '{d}/new.db')"));
        }
        let targets = [
            ("42", "must be text"),
            ("X'00'", "must be text"),
            ("''", "missing"),
            (&*format!("'{d}/exists.db'"), "exists"),
            (&*format!("'{d}'"), "exists"),
            (&*format!("'{d}/missing/dir/new.db'"), "does not exist"),
            (&*format!("'{d}/{huge}'"), ""),
        ];
        for (target, says) in targets {
            let sql = format!("SELECT pit_restore({}, {target})", seq(1));
            let err = refused(&*host, &db, "pit_restore", &sql);
            assert!(err.contains(says), "{}: {sql:.100}: {err}", host.name());
        }
        for options in
            ["'x'", "7", "'[]'", "'{\"made_up\":1}'", "'{\"consistency\":\"loose\"}'", "'{\"busy_timeout_ms\":-1}'"]
        {
            let sql = format!("SELECT pit_restore({}, '{d}/new.db', {options})", seq(1));
            refused(&*host, &db, "pit_restore", &sql);
        }
        assert!(!dir.path().join("new.db").exists(), "{}: a refused restore wrote its target", host.name());
        let leftovers: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("vigil-tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{}: {leftovers:?}", host.name());
    }
}

#[test]
fn pit_tick_inside_a_transaction_is_refused() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    create_db(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
    let conn = vigil(&db);
    json_call(&conn, "SELECT pit_enable('*')").unwrap();
    conn.execute_batch("BEGIN").unwrap();
    let err = json_call(&conn, "SELECT pit_tick()").unwrap_err();
    assert!(err.contains("pit_tick") && err.contains("outside BEGIN"), "{err}");
    conn.execute_batch("ROLLBACK").unwrap();
    let err = Shell.query(&db, "BEGIN; SELECT pit_tick()").unwrap_err();
    assert!(err.contains("pit_tick") && err.contains("outside BEGIN"), "{err}");
}

// ---------------------------------------------------------------------------------------------------------
// Exact transactions on vigil connections
// ---------------------------------------------------------------------------------------------------------

/// (seq, txn) of the journal's data rows (inserts, updates, deletes), in order.
fn txns(db: &Path) -> Vec<(i64, Option<i64>)> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT seq, txn FROM vigil_pit_log WHERE op IN (1, 2, 3) ORDER BY seq").unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
    rows
}

fn txns_after(db: &Path, after: i64) -> Vec<Option<i64>> {
    txns(db).into_iter().filter(|(s, _)| *s > after).map(|(_, t)| t).collect()
}

/// Installs the application's own commit hook (sqlite3_commit_hook, as rusqlite's `commit_hook` does) counting
/// commits: vigil takes no hook, so it must keep firing.
fn count_commits(conn: &Connection) -> &'static AtomicUsize {
    unsafe extern "C" fn hook(counter: *mut std::ffi::c_void) -> std::ffi::c_int {
        (*(counter as *const AtomicUsize)).fetch_add(1, Ordering::SeqCst);
        0
    }
    let counter: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
    let arg = counter as *const AtomicUsize as *mut std::ffi::c_void;
    unsafe { rusqlite::ffi::sqlite3_commit_hook(conn.handle(), Some(hook), arg) };
    counter
}

#[test]
fn a_vigil_connection_records_exact_transactions() {
    for journal_mode in ["delete", "wal"] {
        let dir = scratch();
        let db = dir.path().join("app.db");
        create_db(&db, &format!("PRAGMA journal_mode = {journal_mode}; CREATE TABLE t(id INTEGER PRIMARY KEY, v)"));
        let conn = vigil(&db);
        let commits = count_commits(&conn);
        json_call(&conn, "SELECT pit_enable('*')").unwrap();
        let m = journal_mode;

        // N statements in one transaction: one id, the seq of its first row.
        let start = max_seq(&db);
        conn.execute_batch("BEGIN; INSERT INTO t(v) VALUES (1); INSERT INTO t(v) VALUES (2); UPDATE t SET v = v + 10; DELETE FROM t WHERE v = 11; COMMIT;").unwrap();
        let one = txns_after(&db, start);
        assert_eq!(one.len(), 5, "{m}: {one:?}");
        assert!(one.iter().all(|t| *t == Some(start + 1)), "{m}: one transaction, one id: {one:?}");

        // Back to back, autocommit: distinct ids, each its own first seq.
        let start = max_seq(&db);
        for v in 0..3 {
            conn.execute("INSERT INTO t(v) VALUES (?1)", [v]).unwrap();
        }
        assert_eq!(txns_after(&db, start), [Some(start + 1), Some(start + 2), Some(start + 3)], "{m}");

        // A savepoint rolled back inside a transaction that commits: the rows left carry one id.
        let start = max_seq(&db);
        conn.execute_batch(
            "BEGIN; INSERT INTO t(v) VALUES ('a'); SAVEPOINT s; INSERT INTO t(v) VALUES ('gone'); ROLLBACK TO s; RELEASE s;
             INSERT INTO t(v) VALUES ('b'); COMMIT;",
        )
        .unwrap();
        assert_eq!(txns_after(&db, start), [Some(start + 1), Some(start + 1)], "{m}");
        // The first rows of a transaction rolled back to a savepoint: the id is still its first row's seq.
        let start = max_seq(&db);
        conn.execute_batch(
            "BEGIN; SAVEPOINT s; INSERT INTO t(v) VALUES ('gone'); ROLLBACK TO s; RELEASE s; INSERT INTO t(v) VALUES ('c'); COMMIT;",
        )
        .unwrap();
        assert_eq!(txns_after(&db, start), [Some(start + 1)], "{m}");

        // ROLLBACK, then a new transaction: it is named by its own first row.
        let start = max_seq(&db);
        conn.execute_batch("BEGIN; INSERT INTO t(v) VALUES ('x'); INSERT INTO t(v) VALUES ('y'); ROLLBACK;").unwrap();
        conn.execute_batch("BEGIN; INSERT INTO t(v) VALUES ('d'); INSERT INTO t(v) VALUES ('e'); COMMIT;").unwrap();
        assert_eq!(txns_after(&db, start), [Some(start + 1), Some(start + 1)], "{m}");

        // A transaction of another connection between two of ours: ours stay distinct and exact.
        let start = max_seq(&db);
        conn.execute("INSERT INTO t(v) VALUES ('mine 1')", []).unwrap();
        Connection::open(&db).unwrap().execute("INSERT INTO t(v) VALUES ('plain')", []).unwrap();
        conn.execute("INSERT INTO t(v) VALUES ('mine 2')", []).unwrap();
        assert_eq!(
            txns_after(&db, start),
            [Some(start + 1), None, Some(start + 3)],
            "{m}: a plain connection's rows are NULL"
        );

        // A plain connection's multi-statement transaction: NULL ids.
        let start = max_seq(&db);
        Connection::open(&db)
            .unwrap()
            .execute_batch("BEGIN; INSERT INTO t(v) VALUES (1); UPDATE t SET v = 2 WHERE v = 1; COMMIT;")
            .unwrap();
        assert!(txns_after(&db, start).iter().all(Option::is_none), "{m}");

        let fired = commits.load(Ordering::SeqCst);
        assert!(fired >= 8, "{m}: the application's commit hook fired {fired} times");
        let status = json_call(&conn, "SELECT pit_status()").unwrap();
        assert!(status["transactions"].as_str().unwrap().starts_with("exact"), "{m}: {status}");
    }
}

/// A restore between two exact transactions cuts at the boundary, and an instant inside one moves to its start.
#[test]
fn a_restore_between_two_vigil_transactions_cuts_at_the_boundary() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    create_db(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
    let conn = vigil(&db);
    json_call(&conn, "SELECT pit_enable('*')").unwrap();
    conn.execute_batch("BEGIN; INSERT INTO t VALUES (1, 'a'); INSERT INTO t VALUES (2, 'b'); COMMIT;").unwrap();
    let first = max_seq(&db);
    let before = tables(&db);
    pause(30);
    conn.execute_batch("BEGIN; INSERT INTO t VALUES (3, 'c');").unwrap();
    pause(60);
    conn.execute_batch("UPDATE t SET v = 'B' WHERE id = 2; COMMIT;").unwrap();
    // Inside the second transaction (after its first row, before its last): the state before it.
    let inside = at_of(&db, first + 1);
    let mid = plain_i64(&db, &format!("SELECT CAST((julianday('{inside}') - 2440587.5) * 86400000 AS INTEGER) + 30"));
    let target = dir.path().join("inside.db");
    let result = restore_into(&db, &format!("{}.{:03}", mid / 1000, mid % 1000), &target).unwrap();
    assert_eq!(result["cut"]["seq"], first, "{result}");
    assert_eq!(result["consistency"], "transaction", "{result}");
    assert_eq!(tables(&target), before);
    // A seq inside the second transaction is moved back to its start, and says so.
    let target = dir.path().join("seq.db");
    let result = restore_into(&db, &seq(first + 1), &target).unwrap();
    assert_eq!(result["cut"]["seq"], first, "{result}");
    assert_eq!(result["cut"]["moved_from"], first + 1, "{result}");
    assert_eq!(tables(&target), before);
}

// ---------------------------------------------------------------------------------------------------------
// In-place restore while a writer that never loads vigil keeps committing
// ---------------------------------------------------------------------------------------------------------

/// Commits one row at a time (a unique token each) until `stop` exists; prints each token after its commit.
const TOKEN_WRITER: &str = r#"
import os, sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
n = 0
while not os.path.exists(sys.argv[2]):
    n += 1
    con.execute("INSERT INTO t(v) VALUES (?)", ("w%d" % n,))
    print("w%d" % n, flush=True)
    time.sleep(0.003)
"#;

fn tokens(db: &Path) -> std::collections::BTreeSet<String> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT v FROM t WHERE v LIKE 'w%'").unwrap();
    let set = stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    set
}

#[test]
fn an_in_place_restore_beside_a_foreign_writer_loses_nothing_and_starts_a_new_lineage() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    create_db(&db, "PRAGMA journal_mode = wal; CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
    let conn = vigil(&db);
    json_call(&conn, "SELECT pit_enable('*')").unwrap();
    conn.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) INSERT INTO t(v) SELECT 'base ' || i FROM n",
    )
    .unwrap();
    let tick = json_call(&conn, "SELECT pit_tick()").unwrap();
    let cut = tick["seq"].as_i64().unwrap();
    let lineage = json_call(&conn, "SELECT pit_status()").unwrap()["lineage"].clone();

    let stop = dir.path().join("stop");
    let writer = spawn_python(TOKEN_WRITER, &[db.to_str().unwrap(), stop.to_str().unwrap()]);
    pause(400);
    let between = now_rfc3339();
    pause(50);
    let result = json_call(&conn, &format!("SELECT pit_restore({})", seq(cut))).expect("in-place restore");
    pause(400);
    std::fs::write(&stop, b"").unwrap();
    let out = writer.wait_with_output().unwrap();
    assert!(out.status.success(), "writer: {}", String::from_utf8_lossy(&out.stderr));
    let committed: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();

    assert_eq!(result["cut"]["seq"], cut, "{result}");
    let safety = PathBuf::from(result["safety_backup"]["path"].as_str().unwrap_or_else(|| panic!("{result}")));
    assert!(safety.exists(), "{result}");
    let (kept, landed) = (tokens(&safety), tokens(&db));
    let lost: Vec<&String> = committed.iter().filter(|t| !kept.contains(*t) && !landed.contains(*t)).collect();
    assert!(committed.len() > 20, "the writer committed only {}", committed.len());
    assert!(lost.is_empty(), "committed, then in neither the safety backup nor the database: {lost:?}");
    assert!(!landed.is_empty() && !kept.is_empty(), "the writer wrote on both sides of the restore");
    assert!(integrity_ok(&db));

    let status = json_call(&vigil(&db), "SELECT pit_status()").unwrap();
    assert_ne!(status["lineage"], lineage, "the restored database starts a lineage of its own: {status}");
    assert_eq!(result["lineage"]["parent"], lineage, "{result}");

    // The replaced history is not on this database: an instant of it is refused, pointing at the safety backup.
    let err = restore_into(&db, &format!("'{between}'"), &dir.path().join("mixed.db")).unwrap_err();
    assert!(err.contains("safety backup"), "{err}");
    assert!(!dir.path().join("mixed.db").exists());
}

/// The refusal of an instant of the replaced history names the file that holds it.
#[test]
fn the_refusal_of_a_replaced_instant_names_the_safety_backup_file() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    create_db(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
    let conn = vigil(&db);
    json_call(&conn, "SELECT pit_enable('*')").unwrap();
    let cut = json_call(&conn, "SELECT pit_tick()").unwrap()["seq"].as_i64().unwrap();
    conn.execute("INSERT INTO t(v) VALUES ('later')", []).unwrap();
    pause(50);
    let between = now_rfc3339();
    pause(50);
    let result = json_call(&conn, &format!("SELECT pit_restore({})", seq(cut))).unwrap();
    let safety = result["safety_backup"]["path"].as_str().unwrap().to_string();
    let err = restore_into(&db, &format!("'{between}'"), &dir.path().join("mixed.db")).unwrap_err();
    let name = Path::new(&safety).file_name().unwrap().to_string_lossy().into_owned();
    assert!(err.contains(&name), "{err}");
}

// ---------------------------------------------------------------------------------------------------------
// kill -9
// ---------------------------------------------------------------------------------------------------------

/// Runs transactions of 20 statements (inserts, updates, deletes) forever, slowly enough to be killed inside one.
const BUSY_WRITER: &str = r#"
import random, sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
rnd = random.Random(int(sys.argv[2]))
print("ready", flush=True)
while True:
    con.execute("BEGIN")
    for _ in range(20):
        k = rnd.randrange(1, 60)
        r = rnd.random()
        if r < 0.4:
            con.execute("INSERT OR REPLACE INTO t(id, v, w) VALUES (?, ?, ?)", (k, rnd.random(), rnd.randbytes(8)))
        elif r < 0.8:
            con.execute("UPDATE t SET v = ?, w = NULL WHERE id = ?", (rnd.randrange(100), k))
        else:
            con.execute("DELETE FROM t WHERE id = ?", (k,))
        time.sleep(0.001)
    con.execute("COMMIT")
"#;

fn wait_ready(child: &mut Child) {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
}

/// Replays the journal of `t(id INTEGER PRIMARY KEY, v, w)` (slots 1 and 2): every change's old image is the
/// row as the journal last left it, an insert finds no row, and the end is the table's content. A change
/// committed but not journaled, or journaled but not committed, breaks the chain.
fn assert_chain(db: &Path, what: &str) {
    let conn = Connection::open(db).unwrap();
    let mut rows: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    let mut stmt = conn
        .prepare("SELECT seq, op, rid, coalesce(rid_new, rid), o1, o2, n1, n2 FROM vigil_pit_log WHERE op IN (1, 2, 3) ORDER BY seq")
        .unwrap();
    let mut cursor = stmt.query([]).unwrap();
    while let Some(r) = cursor.next().unwrap() {
        let (seq, op, rid, rid_new): (i64, i64, i64, i64) =
            (r.get(0).unwrap(), r.get(1).unwrap(), r.get(2).unwrap(), r.get(3).unwrap());
        let image = |from: usize| {
            vec![format!("int {rid}"), typed(r.get_ref(from).unwrap()), typed(r.get_ref(from + 1).unwrap())]
        };
        if op != 1 {
            let old = rows.remove(&rid);
            assert_eq!(old.as_ref(), Some(&image(4)), "{what}: seq {seq}: the old image is not the row");
        } else {
            assert!(!rows.contains_key(&rid), "{what}: seq {seq}: an insert over a journaled row");
        }
        if op != 3 {
            let mut new = image(6);
            new[0] = format!("int {rid_new}");
            rows.insert(rid_new, new);
        }
    }
    let now: Vec<Vec<String>> =
        tables(db)["t"].iter().map(|r| vec![r[0].clone(), r[2].clone(), r[3].clone()]).collect();
    assert_eq!(rows.into_values().collect::<Vec<_>>(), now, "{what}: the journal's last images are not the data");
}

fn integrity_ok(db: &Path) -> bool {
    let text: String = Connection::open(db).unwrap().query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    text == "ok"
}

#[test]
fn a_writer_killed_mid_transaction_leaves_the_journal_in_step_with_the_data() {
    for trial in 0..4u64 {
        let dir = scratch();
        let db = dir.path().join("app.db");
        let mode = if trial % 2 == 0 { "wal" } else { "delete" };
        create_db(&db, &format!("PRAGMA journal_mode = {mode}; CREATE TABLE t(id INTEGER PRIMARY KEY, v, w)"));
        json_call(&vigil(&db), "SELECT pit_enable('*')").unwrap();
        let mut writer = spawn_python(BUSY_WRITER, &[db.to_str().unwrap(), &trial.to_string()]);
        wait_ready(&mut writer);
        // Some work first (the machine may be loaded), then a kill at a random moment.
        let started = std::time::Instant::now();
        while max_seq(&db) <= 20 && started.elapsed() < Duration::from_secs(30) {
            pause(20);
        }
        pause(random_below(400));
        writer.kill().unwrap();
        writer.wait().unwrap();

        assert!(integrity_ok(&db), "trial {trial}");
        assert!(max_seq(&db) > 20, "trial {trial}: nothing was journaled");
        assert_chain(&db, &format!("trial {trial}"));
        // Undoing everything gives the empty table the journal started from.
        let start = dir.path().join("start.db");
        restore_into(&db, &seq(1), &start).unwrap();
        assert_eq!(tables(&start)["t"], Vec::<Vec<String>>::new(), "trial {trial}");
    }
}

/// Restores in place (or into argv[4]), through vigil loaded into python3, printing the result.
const RESTORER: &str = r#"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
con.enable_load_extension(True)
con.load_extension(sys.argv[2])
print("ready", flush=True)
target = sys.argv[4] if len(sys.argv) > 4 else None
print(con.execute("SELECT pit_restore(?, ?)", ('{"seq": %s}' % sys.argv[3], target)).fetchone()[0], flush=True)
"#;

/// vigil's temporary files in `dir` (`.<name>.vigil-tmp-…`), and SQLite's files beside them (`-journal`,
/// `-wal`, `-shm`).
fn temporaries(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let all: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("vigil-tmp"))
        .collect();
    let sidecar = |p: &PathBuf| ["-journal", "-wal", "-shm"].iter().any(|s| p.to_string_lossy().ends_with(s));
    all.into_iter().partition(|p| !sidecar(p))
}

/// A database of 20 000 rows with 6 000 updates after `cut`: a restore that takes a while.
fn restorable(db: &Path, journal_mode: &str) -> i64 {
    create_db(db, &format!("PRAGMA journal_mode = {journal_mode}; CREATE TABLE t(id INTEGER PRIMARY KEY, v, pad)"));
    let conn = vigil(db);
    json_call(&conn, "SELECT pit_enable('*')").unwrap();
    conn.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
         INSERT INTO t SELECT i, i, hex(randomblob(40)) FROM n",
    )
    .unwrap();
    let cut = json_call(&conn, "SELECT pit_tick()").unwrap()["seq"].as_i64().unwrap();
    conn.execute_batch("UPDATE t SET v = -v WHERE id % 10 < 3").unwrap();
    cut
}

/// Kills python3 running an in-place pit_restore after a random delay, `trials` times: each time the database
/// is the old or the restored state and intact, and the next vigil call into the directory removes the killed
/// run's temporary files (made a minute old first: the sweep spares younger ones). Returns the SQLite files
/// left beside those temporaries.
fn kill_in_place_restores(journal_mode: &str, trials: usize) -> Vec<PathBuf> {
    let dir = scratch();
    let model = dir.path().join("model.db");
    let cut = restorable(&model, journal_mode);
    let old = tables(&model);
    let restored_copy = dir.path().join("restored-model.db");
    let full = restore_into(&model, &seq(cut), &restored_copy).unwrap();
    let restored = tables(&restored_copy);
    assert_ne!(old, restored);
    let longest = full["duration_ms"].as_f64().unwrap() as u64 * 2 + 200;

    let (mut outcomes, mut sidecars) = (Vec::new(), Vec::new());
    for trial in 0..trials {
        let work = dir.path().join(format!("trial{trial}"));
        std::fs::create_dir(&work).unwrap();
        let db = work.join("app.db");
        std::fs::copy(&model, &db).unwrap();
        let mut restorer =
            spawn_python(RESTORER, &[db.to_str().unwrap(), library().to_str().unwrap(), &cut.to_string()]);
        wait_ready(&mut restorer);
        pause(random_below(longest));
        restorer.kill().unwrap();
        restorer.wait().unwrap();

        let what = format!("{journal_mode} trial {trial}");
        assert!(integrity_ok(&db), "{what}");
        let now = tables(&db);
        assert!(now == old || now == restored, "{what}: neither the old nor the restored state");
        outcomes.push(if now == old { "old" } else { "restored" });
        for temp in temporaries(&work).0 {
            let file = std::fs::File::options().write(true).open(&temp).unwrap();
            file.set_modified(SystemTime::now() - Duration::from_secs(120)).unwrap();
        }
        restore_into(&db, &seq(cut), &work.join("after.db")).unwrap();
        let (left, beside) = temporaries(&work);
        assert_eq!(left, Vec::<PathBuf>::new(), "{what}");
        sidecars.extend(beside);
    }
    eprintln!("{journal_mode}: outcomes {outcomes:?} (a full restore took {} ms)", full["duration_ms"]);
    sidecars
}

#[test]
fn an_in_place_restore_killed_at_any_moment_leaves_the_old_or_the_restored_database() {
    for mode in ["delete", "wal"] {
        kill_in_place_restores(mode, 4);
    }
}

/// A restore into a new file killed at any moment publishes nothing or the whole restored database.
#[test]
fn a_restore_into_a_new_file_killed_at_any_moment_publishes_all_or_nothing() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    let cut = restorable(&db, "wal");
    let old = tables(&db);
    let full = restore_into(&db, &seq(cut), &dir.path().join("reference.db")).unwrap();
    let restored = tables(&dir.path().join("reference.db"));
    let longest = full["duration_ms"].as_f64().unwrap() as u64 * 2 + 200;
    for trial in 0..4 {
        let target = dir.path().join(format!("new{trial}.db"));
        let (lib, cut) = (library(), cut.to_string());
        let args = [db.to_str().unwrap(), lib.to_str().unwrap(), &cut, target.to_str().unwrap()];
        let mut restorer = spawn_python(RESTORER, &args);
        wait_ready(&mut restorer);
        pause(random_below(longest));
        restorer.kill().unwrap();
        restorer.wait().unwrap();
        if target.exists() {
            assert!(integrity_ok(&target), "trial {trial}");
            assert_eq!(tables(&target), restored, "trial {trial}: a published restore is whole");
        }
        assert_eq!(tables(&db), old, "trial {trial}: the live database is untouched");
    }
}

#[test]
fn a_killed_restore_leaves_no_sqlite_files_beside_its_temporary_copy() {
    for mode in ["delete", "wal"] {
        let left = kill_in_place_restores(mode, 4);
        assert!(left.is_empty(), "{mode}: {left:?}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Schema changes by writers that never load vigil
// ---------------------------------------------------------------------------------------------------------

/// Runs SQL in the sqlite3 shell without vigil (a foreign writer); its error text, if any.
fn foreign(db: &Path, sql: &str) -> Result<(), String> {
    let out = shell_run(db, &format!(".bail on\n{sql}\n"), &[]);
    match out.status.success() && out.stderr.is_empty() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

type State = BTreeMap<String, Vec<Vec<String>>>;

/// (seq, state) now.
fn snapshot(db: &Path) -> (i64, State) {
    (max_seq(db), tables(db))
}

/// The first `n` columns of a table's rows (rowid first).
fn first_columns(state: &State, table: &str, n: usize) -> Vec<Vec<String>> {
    state[table].iter().map(|r| r[..n].to_vec()).collect()
}

#[test]
fn foreign_column_changes_are_noticed_and_restores_across_them_are_correct() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    create_db(
        &db,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a); INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three');",
    );
    json_call(&vigil(&db), "SELECT pit_enable('*')").unwrap();
    foreign(&db, "UPDATE t SET a = 'ONE' WHERE id = 1;").unwrap();
    let s1 = snapshot(&db);
    foreign(
        &db,
        "ALTER TABLE t ADD COLUMN b; UPDATE t SET a = 'TWO' WHERE id = 2; INSERT INTO t VALUES (4, 'four', 'b4');",
    )
    .unwrap();
    let s2 = snapshot(&db);
    let tick = json_call(&vigil(&db), "SELECT pit_tick()").unwrap();
    assert!(tick["noticed"].to_string().contains("alter"), "{tick}");
    foreign(&db, "UPDATE t SET b = 'b' || id; UPDATE t SET a = 'THREE' WHERE id = 3; DELETE FROM t WHERE id = 1;")
        .unwrap();
    let s3 = snapshot(&db);
    foreign(&db, "ALTER TABLE t RENAME COLUMN a TO name; UPDATE t SET name = upper(name) || '!';").unwrap();
    let s4 = snapshot(&db);
    json_call(&vigil(&db), "SELECT pit_tick()").unwrap();
    foreign(&db, "UPDATE t SET name = 'renamed', b = 'x';").unwrap();

    let restore = |(seq_n, _): &(i64, State), name: &str| {
        let target = dir.path().join(name);
        restore_into(&db, &seq(*seq_n), &target).unwrap_or_else(|e| panic!("{name}: {e}"));
        tables(&target)
    };
    // Before the ADD COLUMN, which vigil saw only at the tick (no seal between the cut and the ALTER, so its
    // moment is unknown): the rows as they were, the added column kept, the renamed one named back.
    let r1 = restore(&s1, "s1.db");
    assert_eq!(first_columns(&r1, "t", 3), first_columns(&s1.1, "t", 3), "s1: before the ADD COLUMN");
    // Between the ADD COLUMN and the tick that noticed it, after the tick, after the RENAME COLUMN: all of it.
    assert_eq!(restore(&s2, "s2.db"), s2.1, "s2: after the ADD COLUMN, before vigil noticed it");
    assert_eq!(restore(&s3, "s3.db"), s3.1, "s3: after the tick");
    assert_eq!(restore(&s4, "s4.db"), s4.1, "s4: after the RENAME COLUMN");
}

#[test]
fn tables_created_and_dropped_by_foreign_writers() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    create_db(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY, a); INSERT INTO t VALUES (1, 'one');");
    json_call(&vigil(&db), "SELECT pit_enable('*')").unwrap();
    foreign(&db, "CREATE TABLE u(k TEXT PRIMARY KEY, v) WITHOUT ROWID; INSERT INTO u VALUES ('a', 1);").unwrap();
    let tick = json_call(&vigil(&db), "SELECT pit_tick()").unwrap();
    assert!(tick["noticed"].to_string().contains("\"track\""), "{tick}");
    let status = json_call(&vigil(&db), "SELECT pit_status()").unwrap();
    assert!(status["tables"].to_string().contains("\"u\""), "{status}");
    foreign(&db, "INSERT INTO u VALUES ('b', 2); UPDATE u SET v = 10 WHERE k = 'a';").unwrap();
    let with_u = snapshot(&db);
    foreign(&db, "UPDATE u SET v = 20 WHERE k = 'b';").unwrap();
    let restored = dir.path().join("with_u.db");
    restore_into(&db, &seq(with_u.0), &restored).unwrap();
    assert_eq!(tables(&restored), with_u.1);

    foreign(&db, "DROP TABLE u; INSERT INTO t VALUES (2, 'two');").unwrap();
    let tick = json_call(&vigil(&db), "SELECT pit_tick()").unwrap();
    assert!(tick["noticed"].to_string().contains("\"drop\""), "{tick}");
    // The rows of u changed after the cut are gone with the table: a clear error, nothing written.
    // u had a row before the journal followed it: its rows at the cut are unknown, a clear error.
    let target = dir.path().join("across.db");
    let err = restore_into(&db, &seq(with_u.0), &target).unwrap_err();
    assert!(err.contains("dropped") && err.contains("'u'"), "{err}");
    assert!(!target.exists());

    // A table journaled from its birth (empty when noticed) is created again and refilled.
    foreign(&db, "CREATE TABLE w(id INTEGER PRIMARY KEY, v);").unwrap();
    json_call(&vigil(&db), "SELECT pit_tick()").unwrap();
    foreign(&db, "INSERT INTO w VALUES (1, 'x'), (2, X'00'); UPDATE w SET v = 1.5 WHERE id = 1;").unwrap();
    let with_w = snapshot(&db);
    foreign(&db, "DROP TABLE w;").unwrap();
    json_call(&vigil(&db), "SELECT pit_tick()").unwrap();
    let target = dir.path().join("with_w.db");
    let result = restore_into(&db, &seq(with_w.0), &target).unwrap();
    assert_eq!(tables(&target), with_w.1, "{result}");
}

#[test]
fn a_restore_across_a_drop_table_never_silently_lacks_the_table() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    create_db(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY, a); CREATE TABLE u(id INTEGER PRIMARY KEY, v); INSERT INTO u VALUES (1, 'kept');");
    json_call(&vigil(&db), "SELECT pit_enable('*')").unwrap();
    let before = snapshot(&db);
    foreign(&db, "DROP TABLE u; INSERT INTO t VALUES (1, 'one');").unwrap();
    json_call(&vigil(&db), "SELECT pit_tick()").unwrap();
    let target = dir.path().join("across.db");
    match restore_into(&db, &seq(before.0), &target) {
        Ok(result) => assert_eq!(tables(&target), before.1, "a restore reported success without u: {result}"),
        Err(e) => assert!(e.contains("dropped"), "{e}"),
    }
}

/// A foreign DROP COLUMN of a journaled column fails in SQLite itself, naming vigil's trigger, on 3.40 (the
/// shell) and on the bundled SQLite; the documented way (pit_disable, ALTER, pit_enable) works.
#[test]
fn a_foreign_drop_column_of_a_journaled_column_fails_naming_vigils_trigger() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    create_db(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY, a, b); INSERT INTO t VALUES (1, 'a', 'b');");
    json_call(&vigil(&db), "SELECT pit_enable('*')").unwrap();
    let shell = foreign(&db, "ALTER TABLE t DROP COLUMN b;").unwrap_err();
    assert!(shell.contains("error in trigger vigil_pit_") && shell.contains("after drop column"), "3.40: {shell}");
    let bundled = Connection::open(&db).unwrap().execute_batch("ALTER TABLE t DROP COLUMN b").unwrap_err().to_string();
    assert!(
        bundled.contains("error in trigger vigil_pit_") && bundled.contains("after drop column"),
        "bundled: {bundled}"
    );
    eprintln!("3.40: {}\nbundled: {bundled}", shell.trim());

    let conn = vigil(&db);
    let before_migration = max_seq(&db);
    json_call(&conn, "SELECT pit_disable('t')").unwrap();
    conn.execute_batch("ALTER TABLE t DROP COLUMN b").unwrap();
    json_call(&conn, "SELECT pit_enable('t')").unwrap();
    let cut = max_seq(&db);
    let before = tables(&db);
    foreign(&db, "UPDATE t SET a = 'changed';").unwrap();
    let target = dir.path().join("after-drop.db");
    restore_into(&db, &seq(cut), &target).unwrap();
    assert_eq!(tables(&target), before);
    // Before the migration: the table was not journaled for a moment, so no restore there can be exact.
    let err = restore_into(&db, &seq(before_migration), &dir.path().join("before-drop.db")).unwrap_err();
    assert!(err.contains("not journaled for a while"), "{err}");
}

// ---------------------------------------------------------------------------------------------------------
// Instants
// ---------------------------------------------------------------------------------------------------------

#[test]
fn instants_outside_the_window_inside_a_transaction_and_time_against_seq() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    create_db(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
    json_call(&vigil(&db), "SELECT pit_enable('*')").unwrap();
    let start = now_rfc3339();
    pause(30);
    foreign(&db, "INSERT INTO t VALUES (1, 'a');").unwrap();
    let after_a = snapshot(&db);
    pause(60);
    let tick = json_call(&vigil(&db), "SELECT pit_tick()").unwrap();
    pause(60);
    // One foreign transaction of two statements 100 ms apart.
    let shell = spawn_shell(
        &db,
        "BEGIN; INSERT INTO t VALUES (2, 'b');\n.shell sleep 0.1\nINSERT INTO t VALUES (3, 'c'); COMMIT;\n",
    );
    let out = shell.wait_with_output().unwrap();
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let all = snapshot(&db);
    let first_b = after_a.0 + 2; // after the tick's row

    let fails = |instant: &str, says: &str| {
        let err = restore_into(&db, instant, &dir.path().join("never.db")).unwrap_err();
        assert!(err.contains("pit_restore") && err.contains(says), "{instant}: {err}");
    };
    fails("'2001-01-01T00:00:00Z'", "before the journal's window");
    fails("978307200", "before the journal's window");
    fails("'2999-01-01T00:00:00Z'", "in the future");
    fails(&seq(all.0 + 5), "not in it yet");
    assert!(!dir.path().join("never.db").exists());

    // The start of the window: nothing changed yet.
    let r = restore_into(&db, &format!("'{start}'"), &dir.path().join("start.db")).unwrap();
    assert_eq!(tables(&dir.path().join("start.db"))["t"].len(), 0, "{r}");

    // Time and seq agree: the tick's time cuts where its seq does.
    let by_time =
        restore_into(&db, &format!("'{}'", tick["at"].as_str().unwrap()), &dir.path().join("time.db")).unwrap();
    let by_seq = restore_into(&db, &seq(tick["seq"].as_i64().unwrap()), &dir.path().join("seq.db")).unwrap();
    assert_eq!(by_time["cut"]["seq"], by_seq["cut"]["seq"], "{by_time} {by_seq}");
    assert_eq!(by_time["consistency"], "transaction", "{by_time}");
    assert_eq!(tables(&dir.path().join("time.db")), after_a.1);
    // The same time written with an offset.
    let offset: String = Connection::open_in_memory()
        .unwrap()
        .query_row(
            "SELECT strftime('%Y-%m-%dT%H:%M:%f', ?1, '+1 hour') || '+01:00'",
            [tick["at"].as_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    let by_offset = restore_into(&db, &format!("'{offset}'"), &dir.path().join("offset.db")).unwrap();
    assert_eq!(by_offset["cut"]["seq"], by_seq["cut"]["seq"], "{offset}: {by_offset}");
    assert_eq!(tables(&dir.path().join("seq.db")), after_a.1);

    // Between the two statements of the foreign transaction: a statement-level cut, said so; strict goes back to
    // the seal.
    let b_at = at_of(&db, first_b);
    let inside = plain_i64(&db, &format!("SELECT CAST((julianday('{b_at}') - 2440587.5) * 86400000 AS INTEGER) + 50"));
    let instant = format!("{}.{:03}", inside / 1000, inside % 1000);
    let loose = restore_into(&db, &instant, &dir.path().join("loose.db")).unwrap();
    assert_eq!(loose["cut"]["seq"], first_b, "{loose}");
    assert_eq!(loose["consistency"], "statement", "{loose}");
    let strict_sql = format!(
        "SELECT pit_restore({instant}, '{}', '{{\"consistency\":\"strict\"}}')",
        dir.path().join("strict.db").display()
    );
    let strict = json_call(&vigil(&db), &strict_sql).unwrap();
    assert_eq!(strict["cut"]["seq"], tick["seq"], "{strict}");
    assert_eq!(strict["consistency"], "transaction", "{strict}");
    assert_eq!(tables(&dir.path().join("strict.db")), after_a.1);
}

// ---------------------------------------------------------------------------------------------------------
// The journal's own promises
// ---------------------------------------------------------------------------------------------------------

/// A writer that never loads vigil, on SQLite 3.40 with trusted_schema off and recursive_triggers off or on,
/// writes every kind of change without an error from the journal, and a restore to each state reproduces it
/// (values and storage classes).
#[test]
fn a_foreign_writer_with_trusted_schema_off_is_journaled_exactly() {
    for recursive in ["OFF", "ON"] {
        foreign_writer_steps_restore_exactly(recursive);
    }
}

fn foreign_writer_steps_restore_exactly(recursive_triggers: &str) {
    let dir = scratch();
    let db = dir.path().join("app.db");
    create_db(
        &db,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v, name TEXT COLLATE NOCASE UNIQUE, g AS (v || '!'));
         CREATE TABLE k(a, b, v, PRIMARY KEY (a, b)) WITHOUT ROWID;
         CREATE TABLE nokey(v);
         CREATE TABLE parent(id INTEGER PRIMARY KEY);
         CREATE TABLE child(id INTEGER PRIMARY KEY, pid REFERENCES parent(id) ON DELETE CASCADE);
         CREATE TABLE r(id INTEGER PRIMARY KEY, u UNIQUE ON CONFLICT REPLACE);",
    );
    let enabled = json_call(&vigil(&db), "SELECT pit_enable('*')").unwrap();
    assert!(enabled["warnings"].to_string().contains("nokey"), "{enabled}");
    let steps = [
        "INSERT INTO t(id, v, name) VALUES (1, 1, 'abc'), (2, 'x', 'def'), (3, NULL, 'ghi')",
        "UPDATE t SET v = 1.0 WHERE id = 1",
        "UPDATE t SET name = 'ABC' WHERE id = 1",
        "UPDATE t SET v = X'00ff' WHERE id = 2",
        "UPDATE t SET v = 1e999 WHERE id = 3",
        "INSERT OR REPLACE INTO t(id, v, name) VALUES (4, 0.1 + 0.2, 'DEF')",
        "INSERT INTO t(id, v, name) VALUES (1, 'upsert', 'zzz') ON CONFLICT(id) DO UPDATE SET v = excluded.v",
        "UPDATE t SET id = 10 WHERE id = 1",
        "UPDATE OR REPLACE t SET name = 'ghi' WHERE id = 4",
        "INSERT INTO k VALUES (1, 'a', 1), (1, 'b', 2); UPDATE k SET b = 'c' WHERE b = 'a'",
        "INSERT INTO nokey VALUES (1), (2); DELETE FROM nokey WHERE v = 1",
        "INSERT INTO parent VALUES (1), (2); INSERT INTO child VALUES (1, 1), (2, 1), (3, 2)",
        "DELETE FROM parent WHERE id = 1",
        "INSERT INTO r VALUES (1, 'a'), (2, 'b'); INSERT INTO r VALUES (3, 'a')",
        "DELETE FROM t WHERE id = 10",
    ];
    let mut states = Vec::new();
    for step in steps {
        let script = format!(
            "PRAGMA trusted_schema = OFF; PRAGMA recursive_triggers = {recursive_triggers}; PRAGMA foreign_keys = ON; {step};"
        );
        let out = Command::new(PYTHON)
            .args(["-c", "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1], isolation_level=None)\nc.executescript(sys.argv[2])"])
            .arg(&db)
            .arg(&script)
            .output()
            .unwrap();
        assert!(out.status.success(), "{step}: {}", String::from_utf8_lossy(&out.stderr));
        states.push(snapshot(&db));
    }
    assert_eq!(states[12].1["child"].len(), 1, "the cascade ran");
    for (i, (cut, state)) in states.iter().enumerate() {
        let target = dir.path().join(format!("s{i}.db"));
        let result = restore_into(&db, &seq(*cut), &target).unwrap();
        let what = format!("recursive_triggers {recursive_triggers}, after step {i} ({})", steps[i]);
        assert_eq!(&tables(&target), state, "{what}: {result}");
    }
}

#[test]
fn python_writers_never_load_vigil_and_the_journal_holds_their_rows() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    create_db(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
    json_call(&vigil(&db), "SELECT pit_enable('*')").unwrap();
    let printed = python(
        "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.execute('INSERT INTO t(v) VALUES (1)')\nc.commit()\nprint(c.execute('SELECT count(*), count(txn) FROM vigil_pit_log WHERE op = 1').fetchone())",
        &[db.to_str().unwrap()],
    );
    assert_eq!(printed.trim(), "(1, 0)");
}

/// pit_disable(table) under pit_enable('*') stops that table for good: a later schema change noticed by
/// pit_tick does not journal it again.
#[test]
fn a_table_disabled_under_star_stays_disabled_after_a_schema_change() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    create_db(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY, a); CREATE TABLE keep(id INTEGER PRIMARY KEY);");
    let conn = vigil(&db);
    json_call(&conn, "SELECT pit_enable('*')").unwrap();
    let disabled = json_call(&conn, "SELECT pit_disable('t')").unwrap();
    assert_eq!(disabled["stopped"], serde_json::json!(["t"]), "{disabled}");
    assert_eq!(disabled["still_tracked"], serde_json::json!(["keep"]), "{disabled}");
    foreign(&db, "CREATE TABLE later(x);").unwrap();
    json_call(&conn, "SELECT pit_tick()").unwrap();
    let tracked: Vec<String> = json_call(&conn, "SELECT pit_status()").unwrap()["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tracked, ["keep", "later"], "t was disabled");
}

/// An application trigger created after pit_enable that updates the row being updated would fire before vigil's
/// (SQLite runs the newest trigger first) and its nested change be journaled before the outer one: the next pit
/// call makes vigil's triggers the newest again.
#[test]
fn an_application_trigger_created_after_pit_enable_does_not_corrupt_restores() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    create_db(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY, a, b); INSERT INTO t VALUES (1, 'a0', 'b0');");
    json_call(&vigil(&db), "SELECT pit_enable('*')").unwrap();
    foreign(&db, "CREATE TRIGGER app AFTER UPDATE OF a ON t BEGIN UPDATE t SET b = 'b1' WHERE id = NEW.id; END;")
        .unwrap();
    json_call(&vigil(&db), "SELECT pit_tick()").unwrap();
    let before = snapshot(&db);
    foreign(&db, "UPDATE t SET a = 'a1';").unwrap();
    let target = dir.path().join("before.db");
    restore_into(&db, &seq(before.0), &target).unwrap();
    assert_eq!(tables(&target), before.1);
}

/// A restore to an instant after a foreign ADD COLUMN … DEFAULT that vigil had not noticed yet: the rows it
/// writes back come from images without the column, and must read the column's DEFAULT, as every row did then.
#[test]
fn a_column_added_with_a_default_reads_it_in_rows_restored_from_older_images() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    create_db(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY, a); INSERT INTO t VALUES (1, 'one');");
    json_call(&vigil(&db), "SELECT pit_enable('*')").unwrap();
    foreign(&db, "ALTER TABLE t ADD COLUMN b DEFAULT 'd';").unwrap();
    let added = snapshot(&db);
    foreign(&db, "UPDATE t SET a = 'ONE';").unwrap();
    json_call(&vigil(&db), "SELECT pit_tick()").unwrap();
    let target = dir.path().join("added.db");
    restore_into(&db, &seq(added.0), &target).unwrap();
    assert_eq!(tables(&target), added.1);
}

/// A VACUUM renumbers the rowids of a table without INTEGER PRIMARY KEY; pit_enable warns that a restore cannot
/// reach back across it, so such a restore must be refused, never a silent mix of old and new rowids.
#[test]
fn a_restore_across_a_vacuum_of_a_rowid_keyed_table_is_refused_or_exact() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    create_db(&db, "CREATE TABLE n(v); INSERT INTO n VALUES ('a'), ('b'), ('c'), ('d');");
    json_call(&vigil(&db), "SELECT pit_enable('*')").unwrap();
    let before = snapshot(&db);
    foreign(&db, "DELETE FROM n WHERE v IN ('a', 'b'); UPDATE n SET v = 'C' WHERE v = 'c'; VACUUM;").unwrap();
    json_call(&vigil(&db), "SELECT pit_tick()").unwrap();
    foreign(&db, "UPDATE n SET v = v || '!';").unwrap();
    let target = dir.path().join("before.db");
    match restore_into(&db, &seq(before.0), &target) {
        Ok(result) => assert_eq!(tables(&target), before.1, "{result}"),
        Err(e) => assert!(e.contains("VACUUM") || e.contains("rowid"), "{e}"),
    }
}

/// Changes made while a table was not journaled (between pit_disable and pit_enable) cannot be undone: a
/// restore to an instant before that gap must be refused, never a silent mix of the two states.
#[test]
fn a_restore_across_a_journaling_gap_is_refused_or_exact() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    create_db(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY, a); INSERT INTO t VALUES (1, 'one'), (2, 'two');");
    let conn = vigil(&db);
    json_call(&conn, "SELECT pit_enable('t')").unwrap();
    let before = snapshot(&db);
    foreign(&db, "UPDATE t SET a = 'ONE' WHERE id = 1;").unwrap();
    json_call(&conn, "SELECT pit_disable('t')").unwrap();
    foreign(&db, "UPDATE t SET a = 'TWO' WHERE id = 2;").unwrap();
    json_call(&conn, "SELECT pit_enable('t')").unwrap();
    foreign(&db, "UPDATE t SET a = 'One' WHERE id = 1;").unwrap();
    let target = dir.path().join("before.db");
    match restore_into(&db, &seq(before.0), &target) {
        Ok(result) => assert_eq!(tables(&target), before.1, "{result}"),
        Err(e) => assert!(e.contains("not journaled") || e.contains("disable"), "{e}"),
    }
}

/// vigil's own tables (health history, backup and maintenance logs) are never journaled: a restore must not
/// forget a backup taken after the instant.
#[test]
fn vigils_own_tables_are_never_journaled() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    create_db(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY, a)");
    let conn = vigil(&db);
    conn.query_row("SELECT health_snapshot()", [], |_| Ok(())).unwrap();
    let enabled = json_call(&conn, "SELECT pit_enable('*')").unwrap();
    assert_eq!(enabled["tracked"], serde_json::json!(["t"]), "{enabled}");
    let err = json_call(&conn, "SELECT pit_enable('vigil_health_history')").unwrap_err();
    assert!(err.contains("internal table"), "{err}");
    let cut = json_call(&conn, "SELECT pit_tick()").unwrap()["seq"].as_i64().unwrap();
    json_call(&conn, &format!("SELECT backup_to('{}/')", dir.path().join("b").display())).unwrap();
    json_call(&conn, &format!("SELECT pit_restore({})", seq(cut))).unwrap();
    let logged = plain_i64(&db, "SELECT count(*) FROM vigil_backup_log WHERE path LIKE '%/b/%'");
    assert_eq!(logged, 1, "the backup taken after the instant stays recorded");
}

/// A restore to an instant before a table existed (created by any writer and journaled from its birth under
/// '*') succeeds, and the table holds none of its later rows.
#[test]
fn a_restore_to_before_a_table_was_created_succeeds() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    create_db(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY)");
    let conn = vigil(&db);
    json_call(&conn, "SELECT pit_enable('*')").unwrap();
    let cut = json_call(&conn, "SELECT pit_tick()").unwrap()["seq"].as_i64().unwrap();
    let before = tables(&db);
    foreign(&db, "CREATE TABLE u(id INTEGER PRIMARY KEY, v);").unwrap();
    json_call(&conn, "SELECT pit_tick()").unwrap();
    foreign(&db, "INSERT INTO u VALUES (1, 'x'); INSERT INTO t VALUES (5);").unwrap();
    let target = dir.path().join("before.db");
    let result = restore_into(&db, &seq(cut), &target).unwrap();
    let mut restored = tables(&target);
    assert!(restored.remove("u").unwrap_or_default().is_empty(), "{result}");
    assert_eq!(restored, before, "{result}");
}

/// A REPLACE whose delete fires a statement on the same table (a foreign-key SET NULL action, an application
/// BEFORE trigger writing the table) keeps its probed rows: the nested statement's probe replaces only copies
/// of the rows it collides with itself. Both restored exactly, recursive_triggers off (found by the attacker
/// review: the nested probe used to clear the outer statement's copies, and the deleted row was lost).
#[test]
fn a_replace_with_a_statement_nested_in_it_journals_the_row_it_deletes() {
    let cases = [
        (
            "CREATE TABLE t(id INTEGER PRIMARY KEY, pid INTEGER UNIQUE REFERENCES t(id) ON DELETE SET NULL, v);
             INSERT INTO t VALUES (1, NULL, 'root'), (2, 1, 'child');",
            "PRAGMA foreign_keys = ON; INSERT OR REPLACE INTO t VALUES (1, NULL, 'newroot');",
        ),
        (
            "CREATE TABLE t(id INTEGER PRIMARY KEY, e UNIQUE, v);
             CREATE TRIGGER app_bi BEFORE INSERT ON t WHEN NEW.v = 'x' BEGIN
               INSERT OR REPLACE INTO t VALUES (100, 'side', 'side');
             END;
             INSERT INTO t VALUES (1, 'a', 'o');",
            "INSERT OR REPLACE INTO t VALUES (2, 'a', 'x');",
        ),
    ];
    for (schema, write) in cases {
        let dir = scratch();
        let db = dir.path().join("app.db");
        create_db(&db, schema);
        json_call(&vigil(&db), "SELECT pit_enable('*')").unwrap();
        let before = snapshot(&db);
        foreign(&db, write).unwrap();
        let target = dir.path().join("before.db");
        let result = restore_into(&db, &seq(before.0), &target).unwrap();
        assert_eq!(tables(&target), before.1, "{write}: {result}");
    }
}

/// A restore can start from a checkpoint (`{"base": backup}`): a backup carries the journal up to its cut, so
/// an instant of a history an in-place restore replaced is reached from that restore's safety backup, which
/// the refusal names, and any instant of a checkpoint's window from the checkpoint.
#[test]
fn a_restore_starts_from_a_checkpoint_or_the_safety_backup_of_a_replaced_history() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    create_db(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
    let conn = vigil(&db);
    json_call(&conn, "SELECT pit_enable('*')").unwrap();
    foreign(&db, "INSERT INTO t VALUES (1, 'a');").unwrap();
    let first = snapshot(&db);
    foreign(&db, "UPDATE t SET v = 'b'; INSERT INTO t VALUES (2, 'c');").unwrap();
    let second = snapshot(&db);
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let checkpoint = json_call(&conn, &format!("SELECT backup_to('{}/')", backups.display())).unwrap();
    let checkpoint = checkpoint["path"].as_str().unwrap().to_string();
    let status = json_call(&conn, "SELECT pit_status()").unwrap();
    let known = &status["checkpoints"][0];
    assert_eq!(known["path"], checkpoint.as_str(), "pit_status lists the checkpoint: {status}");
    assert_eq!(known["cut_seq"], second.0, "{status}");
    assert_eq!(known["same_lineage"], true, "{status}");

    let replaced = json_call(&conn, &format!("SELECT pit_restore({})", seq(first.0))).unwrap();
    let safety = replaced["safety_backup"]["path"].as_str().unwrap().to_string();
    assert_eq!(tables(&db), first.1, "{replaced}");

    let err = restore_into(&db, &seq(second.0), &dir.path().join("refused.db")).unwrap_err();
    assert!(err.contains(&safety) && err.contains("base"), "{err}");
    for base in [&safety, &checkpoint] {
        let target = dir.path().join(format!("from-{}.db", if base == &safety { "safety" } else { "checkpoint" }));
        let options = serde_json::json!({ "base": base }).to_string();
        let sql = format!("SELECT pit_restore({}, '{}', '{options}')", seq(second.0), target.display());
        let result = json_call(&conn, &sql).unwrap();
        assert_eq!(result["base"]["kind"], "checkpoint", "{result}");
        assert_eq!(tables(&target), second.1, "{base}: {result}");
    }
}

/// After an in-place restore the journal goes on after the last seq the replaced history used (its writes
/// between the copy and the lock are in the safety backup), so a seq never names two moments, and a seq of the
/// replaced history is refused (found by the new-user review: seqs were given again).
#[test]
fn after_an_in_place_restore_no_seq_names_two_moments() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    create_db(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
    let conn = vigil(&db);
    json_call(&conn, "SELECT pit_enable('*')").unwrap();
    foreign(&db, "INSERT INTO t VALUES (1, 'a');").unwrap();
    let first = snapshot(&db);
    foreign(&db, "INSERT INTO t VALUES (2, 'b'); INSERT INTO t VALUES (3, 'c');").unwrap();
    let replaced_last = max_seq(&db);
    json_call(&conn, &format!("SELECT pit_restore({})", seq(first.0))).unwrap();
    foreign(&db, "INSERT INTO t VALUES (4, 'd');").unwrap();
    let written = plain_i64(&db, "SELECT max(seq) FROM vigil_pit_log WHERE op = 1");
    assert!(written > replaced_last, "the new history's rows come after {replaced_last}: {written}");
    let err = restore_into(&db, &seq(replaced_last), &dir.path().join("old.db")).unwrap_err();
    assert!(err.contains("not in this database's history"), "{err}");
}

/// A migration by a writer without vigil between two seals (ADD COLUMN with an index on it, a new table
/// filled at once): a restore to the first seal gives the schema and rows as they were then (found by the
/// new-user review: the table stayed with its rows, the column stayed because of its index).
#[test]
fn a_restore_to_the_seal_before_a_migration_undoes_it() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    create_db(&db, "CREATE TABLE orders(id INTEGER PRIMARY KEY, total); INSERT INTO orders VALUES (1, 10), (2, 20);");
    let conn = vigil(&db);
    json_call(&conn, "SELECT pit_enable('*')").unwrap();
    let seal = json_call(&conn, "SELECT pit_tick()").unwrap()["seq"].as_i64().unwrap();
    let before = tables(&db);
    foreign(
        &db,
        "BEGIN; ALTER TABLE orders ADD COLUMN coupon; CREATE TABLE coupons(code TEXT PRIMARY KEY, pct);
         CREATE INDEX orders_coupon ON orders(coupon); INSERT INTO coupons VALUES ('X', 5); COMMIT;",
    )
    .unwrap();
    json_call(&conn, "SELECT pit_tick()").unwrap();
    foreign(&db, "UPDATE orders SET coupon = 'X' WHERE id = 1; INSERT INTO orders VALUES (3, 30, 'X');").unwrap();
    let target = dir.path().join("before.db");
    let result = restore_into(&db, &seq(seal), &target).unwrap();
    assert_eq!(tables(&target), before, "{result}");
}
