//! A database file is hostile: SQL stored in its schema (CHECK constraints, generated columns, index
//! expressions, partial-index WHERE clauses, views, triggers, DEFAULT values) must never reach one of vigil's
//! writing functions, in either host, while the application's own calls keep working.

use std::collections::BTreeSet;
use std::path::Path;

use rusqlite::Connection;
use vigil_tests::*;

/// Every writing function, called with arguments that would write something (`{dir}`: the scratch
/// directory; `{dir}/out` exists and is empty).
const WRITING_CALLS: &[(&str, &str)] = &[
    ("health_snapshot", "health_snapshot()"),
    ("vacuum_if_fragmented", "vacuum_if_fragmented(0)"),
    ("maintain", "maintain('full')"),
    ("wal_checkpoint", "wal_checkpoint('truncate')"),
    ("backup_to", "backup_to('{dir}/out/')"),
    ("backup_verify", "backup_verify('{dir}/out/none.db')"),
    ("backup_restore", "backup_restore('{dir}/out/none.db', '{dir}/out/restored.db')"),
    ("export_to", "export_to('{dir}/out', 'csv')"),
    ("pit_enable", "pit_enable('*')"),
    ("pit_disable", "pit_disable('*')"),
    ("pit_tick", "pit_tick()"),
    ("pit_restore", "pit_restore('{\"seq\":0}', '{dir}/out/restored.db')"),
    ("pit_prune", "pit_prune('{\"dir\":\"{dir}/out\"}')"),
    ("salvage_to", "salvage_to('{dir}/out/none.db', '{dir}/out/salvaged.db')"),
    ("query_stats_start", "query_stats_start()"),
    ("query_stats_stop", "query_stats_stop()"),
    ("query_stats_reset", "query_stats_reset()"),
    ("query_stats_save", "query_stats_save()"),
];

/// Schema objects that call `{call}`, and the application statement that makes each one run.
const PLANTED: &[(&str, &str, &str)] = &[
    ("CHECK", "CREATE TABLE c(a CHECK ({call} IS NOT NULL))", "INSERT INTO c(a) VALUES (1)"),
    ("stored generated column", "CREATE TABLE g(a, b AS ({call}) STORED)", "INSERT INTO g(a) VALUES (1)"),
    ("virtual generated column", "CREATE TABLE v(a, b AS ({call}) VIRTUAL)", "SELECT b FROM v"),
    ("index expression", "CREATE TABLE ix(a); CREATE INDEX ixe ON ix({call})", "INSERT INTO ix(a) VALUES (1)"),
    (
        "partial index WHERE",
        "CREATE TABLE p(a); CREATE INDEX pw ON p(a) WHERE {call} IS NOT NULL",
        "INSERT INTO p(a) VALUES (1)",
    ),
    ("view", "CREATE VIEW vw AS SELECT {call} AS x", "SELECT * FROM vw"),
    (
        "trigger",
        "CREATE TABLE t(a); CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT {call}; END",
        "INSERT INTO t(a) VALUES (1)",
    ),
    ("DEFAULT", "CREATE TABLE d(a, b DEFAULT ({call}))", "INSERT INTO d(a) VALUES (1)"),
];

/// vigil's refusal, or the host's own (DIRECTONLY enforced, or a non-deterministic function in the schema).
const REFUSALS: &[&str] = &["refused: it was reached from the database's schema", "unsafe use of", "prohibited in"];

const VIGIL_REFUSAL: &str = "refused: it was reached from the database's schema";

/// A database whose schema holds `object` calling `call`. SQLite checks schema SQL when it is created, not
/// when it is read (a file is whatever its author wrote), so the object is created calling a harmless
/// built-in and its stored SQL is then rewritten, as a hostile file's author would.
fn plant(db: &Path, object: &str, call: &str) {
    let conn = Connection::open(db).unwrap();
    conn.execute_batch(&object.replace("{call}", "abs(1)")).unwrap();
    conn.execute_batch("PRAGMA writable_schema = ON").unwrap();
    conn.execute("UPDATE sqlite_master SET sql = replace(sql, 'abs(1)', ?1)", [call]).unwrap();
}

fn schema(db: &Path) -> Vec<String> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY 1").unwrap();
    let names = stmt.query_map([], |r| r.get(0)).unwrap().collect::<Result<Vec<String>, _>>().unwrap();
    names
}

fn listing(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

#[test]
fn schema_objects_never_reach_a_writing_function() {
    for host in hosts() {
        for (function, call) in WRITING_CALLS {
            for (kind, object, trigger) in PLANTED {
                let dir = scratch();
                let out = dir.path().join("out");
                std::fs::create_dir(&out).unwrap();
                let db = dir.path().join("planted.db");
                let call = call.replace("{dir}", &dir.path().display().to_string());
                plant(&db, object, &call);
                let (files_before, schema_before) = (listing(dir.path()), schema(&db));

                let what = format!("{}: {kind} calling {function}", host.name());
                let err = host.query(&db, trigger).expect_err(&format!("{what}: the statement ran"));
                assert!(REFUSALS.iter().any(|r| err.contains(r)), "{what}: unclear error: {err}");
                assert!(listing(&out).is_empty(), "{what}: wrote {:?}", listing(&out));
                assert_eq!(listing(dir.path()), files_before, "{what}: files beside the database changed");
                assert_eq!(schema(&db), schema_before, "{what}: the schema changed");
                assert!(err.len() < 600 && !err.contains("Some("), "{what}: {err}");
            }
        }
    }
}

/// The Debian sqlite3 3.40 shell does not enforce SQLITE_DIRECTONLY for CHECK constraints: vigil must.
#[test]
fn a_check_constraint_is_refused_by_vigil_on_the_shell() {
    for (function, call) in WRITING_CALLS {
        let dir = scratch();
        std::fs::create_dir(dir.path().join("out")).unwrap();
        let db = dir.path().join("planted.db");
        plant(&db, PLANTED[0].1, &call.replace("{dir}", &dir.path().display().to_string()));
        let err = Shell.query(&db, PLANTED[0].2).expect_err(&format!("a CHECK ran {function}"));
        assert!(err.contains(&format!("{function}: {VIGIL_REFUSAL}")), "{function}: {err}");
        assert!(err.contains(&format!("SELECT {function}(…)")), "the fix is named: {err}");
        assert!(listing(&dir.path().join("out")).is_empty(), "{function} wrote files");
    }
}

/// The test's list is every function vigil registers as writing (SQLITE_DIRECTONLY).
#[test]
fn every_writing_function_is_tested() {
    let directonly = |conn: &Connection| -> BTreeSet<String> {
        let sql = "SELECT DISTINCT name FROM pragma_function_list WHERE flags & 0x80000";
        let mut stmt = conn.prepare(sql).unwrap();
        let names = stmt.query_map([], |r| r.get(0)).unwrap().collect::<Result<BTreeSet<String>, _>>().unwrap();
        names
    };
    let plain = directonly(&Connection::open_in_memory().unwrap());
    let vigil = directonly(&Rusqlite::open(Path::new(":memory:")));
    let writing: BTreeSet<String> = vigil.difference(&plain).cloned().collect();
    let tested: BTreeSet<String> = WRITING_CALLS.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(writing, tested);
}

/// Direct calls keep working on a file with a planted object (a CHECK for the shell, a trigger for the bundled
/// SQLite, which refuses to load a CHECK calling a DIRECTONLY function): any case, comments before `(`, a
/// quoted name, bound parameters, sqlite3_exec, the CLI's own calls.
#[test]
fn direct_calls_still_run() {
    let dir = scratch();
    let (out, evil) = (dir.path().join("out"), dir.path().join("evil"));
    std::fs::create_dir(&out).unwrap();
    std::fs::create_dir(&evil).unwrap();
    let evil_call = format!("backup_to('{}/')", evil.display());
    let (check_db, trigger_db) = (dir.path().join("check.db"), dir.path().join("trigger.db"));
    plant(&check_db, PLANTED[0].1, &evil_call);
    plant(&trigger_db, PLANTED[6].1, &evil_call);
    let target = format!("'{}/'", out.display());
    let direct = [
        format!("SELECT backup_to({target})"),
        format!("select BACKUP_TO /* into */ (\n{target}, '{{}}')"),
        format!("SELECT \"backup_to\"({target})"),
    ];
    for (host, db) in [(&Shell as &dyn Host, &check_db), (&Rusqlite, &trigger_db)] {
        for sql in &direct {
            let rows = host.query(db, sql).unwrap_or_else(|e| panic!("{}: {sql}: {e}", host.name()));
            assert!(rows[0].values().next().unwrap().as_str().unwrap().contains("\"verified\":true"));
        }
        host.query(db, "SELECT health_snapshot()").unwrap();
    }
    let conn = Rusqlite::open(&trigger_db);
    let params = [format!("{}/", out.display()), "{}".into()];
    let result: String = conn.query_row("SELECT backup_to(?1, ?2)", params, |r| r.get(0)).unwrap();
    assert!(result.contains("\"verified\":true"), "{result}");
    std::fs::create_dir(dir.path().join("csv")).unwrap();
    sqlite3_exec(&conn, &format!("SELECT 1; SELECT export_to('{}/csv', 'csv');", dir.path().display()));
    assert!(!listing(&dir.path().join("csv")).is_empty(), "export_to through sqlite3_exec wrote nothing");

    let cli = std::process::Command::new(cli_binary()).arg("backup").arg(&trigger_db).arg(&out).output().unwrap();
    assert!(cli.status.success(), "vigil backup: {}", String::from_utf8_lossy(&cli.stderr));
    assert!(listing(&evil).is_empty(), "the planted object ran");
}

/// vigil's own SQL never calls a writing function: a CHECK on a table vigil writes (its health history) is
/// refused even while the application's statement calls that very function.
#[test]
fn a_constraint_on_vigils_own_table_is_refused() {
    let dir = scratch();
    let (evil, mine) = (dir.path().join("evil"), dir.path().join("mine"));
    std::fs::create_dir(&evil).unwrap();
    std::fs::create_dir(&mine).unwrap();
    let db = dir.path().join("app.db");
    Rusqlite::open(&db).query_row("SELECT health_snapshot()", [], |_| Ok(())).unwrap();
    let check = format!("id INTEGER PRIMARY KEY CHECK (backup_to('{}/') IS NOT NULL),", evil.display());
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch("PRAGMA writable_schema = ON").unwrap();
    let rewrite = "UPDATE sqlite_master SET sql = replace(sql, 'id INTEGER PRIMARY KEY,', ?1) WHERE name = 'vigil_health_history'";
    assert_eq!(conn.execute(rewrite, [&check]).unwrap(), 1);
    drop(conn);
    for host in hosts() {
        let sql = format!("SELECT health_snapshot(), backup_to('{}/')", mine.display());
        let err = host.query(&db, &sql).expect_err("the constraint ran");
        assert!(REFUSALS.iter().any(|r| err.contains(r)), "{}: {err}", host.name());
        assert!(listing(&evil).is_empty(), "{}: the constraint wrote a backup", host.name());
    }
}

/// Runs SQL through sqlite3_exec itself, as C hosts do.
fn sqlite3_exec(conn: &Connection, sql: &str) {
    let sql = std::ffi::CString::new(sql).unwrap();
    let mut message = std::ptr::null_mut();
    let rc =
        unsafe { rusqlite::ffi::sqlite3_exec(conn.handle(), sql.as_ptr(), None, std::ptr::null_mut(), &mut message) };
    let text =
        (!message.is_null()).then(|| unsafe { std::ffi::CStr::from_ptr(message) }.to_string_lossy().into_owned());
    unsafe { rusqlite::ffi::sqlite3_free(message.cast()) };
    assert_eq!(rc, 0, "sqlite3_exec: {text:?}");
}

/// An application statement calling backup_to that is left stepped but not reset (a Python cursor not read to
/// its end) does not vouch for the CHECK constraint fired by the application's next INSERT (Debian's python3,
/// whose SQLite 3.40 does not enforce DIRECTONLY for CHECK); nor does a common table expression named like
/// the function (the 3.40 shell).
#[test]
fn neither_a_paused_statement_nor_a_table_named_like_the_function_vouches_for_the_schema() {
    let dir = scratch();
    let (good, evil) = (dir.path().join("good"), dir.path().join("evil"));
    std::fs::create_dir(&good).unwrap();
    std::fs::create_dir(&evil).unwrap();
    let db = dir.path().join("planted.db");
    plant(&db, "CREATE TABLE c(a CHECK ({call} IS NOT NULL))", &format!("backup_to('{}/')", evil.display()));
    let script = r#"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.enable_load_extension(True)
con.load_extension(sys.argv[2])
paused = con.execute("SELECT backup_to(?) FROM (SELECT 1 UNION ALL SELECT 2)", (sys.argv[3] + "/",))
try:
    con.execute("INSERT INTO c(a) VALUES (1)")
    print("inserted")
except sqlite3.Error as e:
    print(e)
"#;
    let out = std::process::Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(&db)
        .arg(library().with_extension(""))
        .arg(&good)
        .output()
        .expect("Debian's python3 (scripts/setup installs it)");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("backup_to: refused: other statements are still running"), "{printed}");
    assert_eq!(listing(&good).len(), 2, "the application's own backup ran: {:?}", listing(&good));
    assert!(listing(&evil).is_empty(), "the CHECK constraint wrote {:?}", listing(&evil));

    let cte = "WITH backup_to(a) AS (SELECT 1) INSERT INTO c(a) SELECT a FROM backup_to";
    let err = Shell.query(&db, cte).expect_err("a CTE named backup_to vouched for the CHECK");
    assert!(err.contains(VIGIL_REFUSAL), "{err}");
    assert!(listing(&evil).is_empty(), "the CHECK constraint wrote {:?}", listing(&evil));
}
