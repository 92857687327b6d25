//! Checkpoints (backups of a journaled database, whose manifest records the journal position they hold) and
//! pit_prune: journal rows go only below the cut of a verified checkpoint of the same lineage, restores inside
//! the window stay exact, restores before it name the checkpoint, a kill -9 mid-prune leaves a consistent file,
//! and backup retention keeps the checkpoint the window starts at.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde_json::{json, Value as Json};
use vigil_tests::*;

/// A connection with vigil loaded that waits for locks like an application would.
fn open(db: &Path) -> Connection {
    let conn = Rusqlite::open(db);
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    conn
}

/// Runs a statement returning one JSON text, or SQLite's error message.
fn try_json(conn: &Connection, sql: &str) -> Result<Json, String> {
    let text: String = conn.query_row(sql, [], |r| r.get(0)).map_err(|e| e.to_string())?;
    Ok(serde_json::from_str(&text).unwrap())
}

fn json_of(conn: &Connection, sql: &str) -> Json {
    try_json(conn, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn prune(conn: &Connection, options: Json) -> Json {
    json_of(conn, &format!("SELECT pit_prune('{options}')"))
}

/// A checkpoint: a backup into `dir` (not recorded in the database's backup log, so the only tables written
/// are the application's). Returns (artifact path, its journal cut seq).
fn checkpoint(conn: &Connection, dir: &Path) -> (PathBuf, i64) {
    let made = json_of(conn, &format!("SELECT backup_to('{}', '{{\"log\": false}}')", dir.display()));
    let path = PathBuf::from(made["path"].as_str().unwrap());
    let manifest: Json =
        serde_json::from_str(&std::fs::read_to_string(format!("{}.vigil.json", path.display())).unwrap()).unwrap();
    (path, manifest["pit"]["cut_seq"].as_i64().expect("a backup of a journaled database records its cut"))
}

fn scalar(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The current time as the journal writes it, between two pauses so that no change shares its millisecond.
fn instant(conn: &Connection) -> String {
    std::thread::sleep(Duration::from_millis(15));
    let now: String = conn.query_row("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')", [], |r| r.get(0)).unwrap();
    std::thread::sleep(Duration::from_millis(15));
    now
}

/// One transaction of inserts, updates and deletes on both tables.
fn write_round(conn: &Connection, round: i64) {
    conn.execute_batch(&format!(
        "BEGIN;
         INSERT INTO t(v) VALUES ({round}), ('r{round}'), (x'{round:02x}');
         UPDATE t SET v = v || '+' WHERE id % 3 = {round} % 3;
         DELETE FROM t WHERE id = {round} * 2;
         INSERT OR REPLACE INTO u(k, n) VALUES ('k{}', {round}.5), ('k{round}', {round});
         COMMIT;",
        round % 2
    ))
    .unwrap();
}

/// The application's content: rows of t and u with their storage classes. (The harness's content_digest also
/// reads sqlite_sequence, where the journal's AUTOINCREMENT counter rightly stays ahead after a restore.)
fn app_digest(path: &Path) -> String {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let read = |sql: &str| serde_json::to_string(&rows(&conn, sql).unwrap()).unwrap();
    let t = read("SELECT id, v, typeof(v) FROM t ORDER BY id");
    let u = read("SELECT k, n, typeof(n) FROM u ORDER BY k");
    format!("t {t}; u {u}")
}

fn journaled_db(dir: &Path) -> (PathBuf, PathBuf, Connection) {
    let db = dir.join("app.db");
    let checkpoints = dir.join("checkpoints");
    std::fs::create_dir(&checkpoints).unwrap();
    create_db(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v); CREATE TABLE u(k TEXT PRIMARY KEY, n) WITHOUT ROWID;");
    let conn = open(&db);
    json_of(&conn, "SELECT pit_enable('*')");
    (db, checkpoints, conn)
}

fn keep_nothing(dir: &Path) -> Json {
    json!({"dir": dir.to_string_lossy(), "keep": "0 seconds"})
}

#[test]
fn without_a_checkpoint_nothing_is_pruned_and_the_result_says_what_to_do() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    let empty = dir.path().join("empty");
    let plain = dir.path().join("plain");
    std::fs::create_dir(&empty).unwrap();
    std::fs::create_dir(&plain).unwrap();
    create_db(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
    let conn = open(&db);
    // A backup taken before the journal existed is no checkpoint.
    json_of(&conn, &format!("SELECT backup_to('{}', '{{\"log\": false}}')", plain.display()));
    json_of(&conn, "SELECT pit_enable('*')");
    for round in 0..3 {
        conn.execute("INSERT INTO t(v) VALUES (?1)", [round]).unwrap();
    }
    let rows = scalar(&conn, "SELECT count(*) FROM vigil_pit_log");
    let cases = [
        (json!({"keep": "0 seconds"}), "no checkpoint directory given"),
        (keep_nothing(&empty), "no checkpoint in the directory"),
        (keep_nothing(&plain), "none of its backups is of a journaled database"),
    ];
    for (options, reason) in cases {
        let result = prune(&conn, options.clone());
        assert_eq!(result["pruned_rows"], 0, "{options}: {result}");
        assert!(result["reason"].as_str().unwrap().contains(reason), "{options}: {result}");
        assert!(result["hint"].as_str().unwrap().contains("backup_to("), "{result}");
        assert_eq!(result["horizon"]["seq"], 0, "{result}");
        assert_eq!(result["window"]["before"], result["window"]["after"], "{result}");
    }
    assert_eq!(scalar(&conn, "SELECT count(*) FROM vigil_pit_log"), rows, "nothing was deleted");

    // A checkpoint younger than the keep period (7 days by default) is not used either.
    let (artifact, _) = checkpoint(&conn, &empty);
    let result = prune(&conn, json!({"dir": empty.to_string_lossy()}));
    assert_eq!(result["pruned_rows"], 0, "{result}");
    let why = result["considered"][0]["reason"].as_str().unwrap();
    assert!(why.contains("within the keep period"), "{result}");
    assert_eq!(result["considered"][0]["path"], artifact.to_string_lossy().as_ref());

    // Bad options and calls from a view are refused.
    for (options, error) in [
        ("{\"keep\": \"soon\"}", "must be a period like"),
        ("{\"keep\": \"1 day\", \"keep_days\": 1}", "not both"),
        ("{\"keep_days\": -1}", "from 0 to 36500"),
        ("{\"dirs\": \".\"}", "unknown option"),
        ("[1]", "must be a JSON object"),
    ] {
        let got = try_json(&conn, &format!("SELECT pit_prune('{options}')")).unwrap_err();
        assert!(got.contains(error), "{options}: {got}");
    }
    conn.execute_batch("CREATE VIEW p AS SELECT pit_prune() AS r").unwrap();
    let got = try_json(&conn, "SELECT r FROM p").unwrap_err();
    assert!(got.contains("unsafe use of pit_prune"), "{got}");
}

#[test]
fn a_backup_of_a_journaled_database_records_its_cut_and_verify_checks_it() {
    let dir = scratch();
    let (db, checkpoints, conn) = journaled_db(dir.path());
    write_round(&conn, 1);
    let last = scalar(&conn, "SELECT max(seq) FROM vigil_pit_log");
    let (artifact, cut) = checkpoint(&conn, &checkpoints);
    assert_eq!(cut, last, "the copy's own max(seq) is its cut");
    let lineage: String =
        conn.query_row("SELECT value FROM vigil_pit_meta WHERE key = 'lineage'", [], |r| r.get(0)).unwrap();

    let list = Shell.query(&db, &format!("SELECT pit FROM backup_list('{}')", checkpoints.display())).unwrap();
    let pit: Json = serde_json::from_str(list[0]["pit"].as_str().unwrap()).unwrap();
    assert_eq!(pit["lineage"], lineage.as_str(), "{pit}");
    assert_eq!(pit["cut_seq"], cut, "{pit}");
    assert_eq!(pit["horizon_seq"], 0, "{pit}");
    assert!(pit["cut_at"].as_str().unwrap().ends_with('Z'), "{pit}");

    let verified = call(&Shell, &db, &format!("SELECT backup_verify('{}')", artifact.display()));
    assert_eq!(verified["ok"], true, "{verified}");
    let step = verified["steps"].as_array().unwrap().iter().find(|s| s["step"] == "pit").cloned().unwrap();
    assert!(step["detail"].as_str().unwrap().contains(&format!("to {cut}")), "{step}");

    // A manifest that claims another position than the file holds fails the drill, and pit_prune skips it.
    let manifest_path = format!("{}.vigil.json", artifact.display());
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    let mut manifest: Json = serde_json::from_str(&text).unwrap();
    manifest["pit"]["cut_seq"] = json!(cut - 1);
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let verified = call(&Shell, &db, &format!("SELECT backup_verify('{}')", artifact.display()));
    assert_eq!(verified["ok"], false, "{verified}");
    assert!(verified["problem"].as_str().unwrap().starts_with("pit: the file's journal is at"), "{verified}");
    write_round(&conn, 2);
    let result = prune(&conn, keep_nothing(&checkpoints));
    assert_eq!(result["pruned_rows"], 0, "{result}");
    assert!(result["considered"][0]["reason"].as_str().unwrap().contains("failed its check: pit:"), "{result}");
}

#[test]
fn prune_drops_the_rows_below_a_checkpoint_and_every_instant_in_the_window_still_restores_exactly() {
    let dir = scratch();
    let (db, checkpoints, conn) = journaled_db(dir.path());
    let mut states = Vec::new();
    let mut taken = None;
    for round in 1..=8 {
        write_round(&conn, round);
        states.push((instant(&conn), app_digest(&db)));
        if round == 4 {
            taken = Some(checkpoint(&conn, &checkpoints));
        }
    }
    let (artifact, cut) = taken.unwrap();
    let rows_before = scalar(&conn, "SELECT count(*) FROM vigil_pit_log");

    let dry = prune(&conn, json!({"dir": checkpoints.to_string_lossy(), "keep": "0 seconds", "dry_run": true}));
    assert_eq!(dry["would_move_horizon_to"]["seq"], cut, "{dry}");
    assert_eq!(scalar(&conn, "SELECT count(*) FROM vigil_pit_log"), rows_before, "a dry run deletes nothing");

    let result = prune(&conn, keep_nothing(&checkpoints));
    let pruned = result["pruned_rows"].as_i64().unwrap();
    assert_eq!(dry["pruned_rows"], 0, "{dry}");
    assert_eq!(pruned, dry["would_prune_rows"].as_i64().unwrap(), "{result}");
    assert!(pruned > 0, "{result}");
    assert_eq!(result["horizon"]["seq"], cut, "{result}");
    assert_eq!(result["window"]["before"]["seq"], 0, "{result}");
    assert_eq!(result["checkpoint"]["cut_seq"], cut, "{result}");
    let name = artifact.file_name().unwrap().to_string_lossy().into_owned();
    assert!(result["checkpoint"]["path"].as_str().unwrap().ends_with(&name), "{result}");
    assert_eq!(scalar(&conn, "SELECT count(*) FROM vigil_pit_log WHERE seq < (SELECT value FROM vigil_pit_meta WHERE key = 'horizon_seq')"), 0);
    assert_eq!(scalar(&conn, "SELECT min(seq) FROM vigil_pit_log"), cut);
    assert_eq!(scalar(&conn, "SELECT count(*) FROM vigil_pit_log"), rows_before - pruned);
    let status = json_of(&conn, "SELECT pit_status()");
    assert_eq!(status["window"]["earliest_seq"], cut, "{status}");
    assert_eq!(status["window"]["earliest"], result["horizon"]["at"], "{status}");
    assert_eq!(status["window_checkpoint"], result["checkpoint"], "{status}");

    // The window now starts at the checkpoint's state; every recorded instant after it restores exactly.
    let horizon_at = result["horizon"]["at"].as_str().unwrap().to_string();
    let (mut inside, mut outside) = (0, 0);
    for (i, (at, digest)) in states.iter().enumerate() {
        let target = dir.path().join(format!("restored-{i}.db"));
        let restored = try_json(&conn, &format!("SELECT pit_restore('{at}', '{}')", target.display()));
        if at.as_str() >= horizon_at.as_str() {
            let restored = restored.unwrap_or_else(|e| panic!("{at} is inside the window: {e}"));
            assert_eq!(&app_digest(&target), digest, "state at {at}: {restored}");
            inside += 1;
        } else {
            let error = restored.unwrap_err();
            assert!(error.contains("before the journal's window"), "{error}");
            assert!(error.contains(&horizon_at), "the error names the window: {error}");
            assert!(error.contains(&name) && error.contains("\"base\""), "and the checkpoint: {error}");
            assert!(!target.exists());
            outside += 1;
        }
    }
    assert_eq!((inside, outside), (5, 3), "the checkpoint holds the 4th state");
    let target = dir.path().join("at-horizon.db");
    json_of(&conn, &format!("SELECT pit_restore('{{\"seq\": {cut}}}', '{}')", target.display()));
    assert_eq!(app_digest(&target), app_digest(&artifact), "the window's start is the checkpoint's state");
    let error = try_json(&conn, &format!("SELECT pit_restore('{{\"seq\": {}}}', 'x.db')", cut - 1)).unwrap_err();
    assert!(error.contains(&name), "{error}");

    // The older states are in the checkpoint: restored into a file of its own, its journal reaches them.
    let copy = dir.path().join("from-checkpoint.db");
    json_of(&conn, &format!("SELECT backup_restore('{}', '{}')", artifact.display(), copy.display()));
    let old = open(&copy);
    let target = dir.path().join("old-state.db");
    json_of(&old, &format!("SELECT pit_restore('{}', '{}')", states[1].0, target.display()));
    assert_eq!(app_digest(&target), states[1].1);
    // Or directly, starting from the checkpoint.
    let direct = dir.path().join("old-state-direct.db");
    let options = serde_json::json!({"base": artifact}).to_string();
    json_of(&conn, &format!("SELECT pit_restore('{}', '{}', '{options}')", states[1].0, direct.display()));
    assert_eq!(app_digest(&direct), states[1].1);

    // Pruning again with the same checkpoint finds nothing left below it.
    let again = prune(&conn, keep_nothing(&checkpoints));
    assert_eq!(again["pruned_rows"], 0, "{again}");
    assert!(again["considered"][0]["reason"].as_str().unwrap().contains("is not after the window's start"), "{again}");
}

#[test]
fn a_checkpoint_of_another_lineage_is_not_used() {
    let dir = scratch();
    let (db, checkpoints, conn) = journaled_db(dir.path());
    write_round(&conn, 1);
    let (_, cut) = checkpoint(&conn, &checkpoints);
    write_round(&conn, 2);
    write_round(&conn, 3);
    // An in-place restore to just after the checkpoint forks the lineage.
    let restored = json_of(&conn, &format!("SELECT pit_restore('{{\"seq\": {cut}}}')"));
    assert!(restored["lineage"]["lineage"].is_string(), "{restored}");
    drop(conn);
    let conn = open(&db);
    write_round(&conn, 4);
    let result = prune(&conn, keep_nothing(&checkpoints));
    assert_eq!(result["pruned_rows"], 0, "{result}");
    assert!(result["considered"][0]["reason"].as_str().unwrap().contains("another lineage"), "{result}");
    assert_eq!(result["horizon"]["seq"], 0, "{result}");

    // A checkpoint of the new lineage is used (compressed: checked on its decompressed database).
    let made = json_of(
        &conn,
        &format!("SELECT backup_to('{}', '{{\"log\": false, \"compress\": \"gzip\"}}')", checkpoints.display()),
    );
    let new_cut = scalar(&conn, "SELECT max(seq) FROM vigil_pit_log");
    assert!(made["path"].as_str().unwrap().ends_with(".db.gz"), "{made}");
    let result = prune(&conn, keep_nothing(&checkpoints));
    assert!(result["pruned_rows"].as_i64().unwrap() > 0, "{result}");
    assert_eq!(result["horizon"]["seq"], new_cut, "{result}");
}

#[test]
fn a_checkpoint_of_a_history_that_backup_restore_replaced_is_not_used() {
    let dir = scratch();
    let (db, checkpoints, conn) = journaled_db(dir.path());
    write_round(&conn, 1);
    let old_state = dir.path().join("old.db");
    json_of(&conn, &format!("SELECT backup_to('{}', '{{\"log\": false}}')", old_state.display()));
    write_round(&conn, 2);
    write_round(&conn, 3);
    let (replaced, cut) = checkpoint(&conn, &checkpoints);
    // Back to the old state in place: the journal goes back with it, and new changes take the same seqs.
    json_of(&conn, &format!("SELECT backup_restore('{}')", old_state.display()));
    drop(conn);
    let conn = open(&db);
    for round in 4..=7 {
        write_round(&conn, round);
    }
    assert!(scalar(&conn, "SELECT max(seq) FROM vigil_pit_log") >= cut, "the new history reached the old cut");
    let result = prune(&conn, keep_nothing(&checkpoints));
    assert_eq!(result["pruned_rows"], 0, "{result}");
    let considered = &result["considered"][0];
    assert_eq!(considered["path"], replaced.to_string_lossy().as_ref(), "{result}");
    let why = considered["reason"].as_str().unwrap();
    assert!(why.contains("another lineage") || why.contains("is not the one it recorded"), "{result}");
}

#[test]
fn rows_a_restore_needs_to_rebuild_a_dropped_table_are_kept() {
    let dir = scratch();
    let (db, checkpoints, conn) = journaled_db(dir.path());
    // Created after pit_enable('*'): the journal holds its whole life, so a restore can rebuild it after a drop.
    conn.execute_batch("CREATE TABLE z(id INTEGER PRIMARY KEY, w)").unwrap();
    json_of(&conn, "SELECT pit_tick()"); // vigil notices the new table at its next call
    conn.execute_batch("INSERT INTO z(w) VALUES ('a'), ('b')").unwrap();
    let (_, cut) = checkpoint(&conn, &checkpoints);
    conn.execute_batch("UPDATE z SET w = w || '!'").unwrap();
    let before_drop = instant(&conn);
    let expected: Vec<Row> = rows(&conn, "SELECT id, w FROM z ORDER BY id").unwrap();
    conn.execute_batch("DROP TABLE z").unwrap();
    write_round(&conn, 1);
    let result = prune(&conn, keep_nothing(&checkpoints));
    assert_eq!(result["pruned_rows"], 0, "{result}");
    let why = result["considered"][0]["reason"].as_str().unwrap();
    assert!(why.contains("table 'z' was dropped"), "{result}");
    let target = dir.path().join("before-drop.db");
    json_of(&conn, &format!("SELECT pit_restore('{before_drop}', '{}')", target.display()));
    assert_eq!(rows(&Connection::open(&target).unwrap(), "SELECT id, w FROM z ORDER BY id").unwrap(), expected);

    // A checkpoint after the drop may carry the window's start.
    let (_, after) = checkpoint(&conn, &checkpoints);
    write_round(&conn, 2);
    let result = prune(&conn, keep_nothing(&checkpoints));
    assert_eq!(result["horizon"]["seq"], after, "{result}");
    assert!(after > cut);
    drop(db);
}

#[test]
fn a_checkpoint_whose_manifest_is_locked_for_deletion_is_not_used() {
    let dir = scratch();
    let (_db, checkpoints, conn) = journaled_db(dir.path());
    write_round(&conn, 1);
    let (artifact, _) = checkpoint(&conn, &checkpoints);
    write_round(&conn, 2);
    // Backup retention takes this exclusive lock on a manifest while it deletes the backup.
    let script = "import fcntl, sys, time\nf = open(sys.argv[1])\nfcntl.flock(f, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(60)\n";
    let mut holder = Command::new("/usr/bin/python3")
        .args(["-c", script, &format!("{}.vigil.json", artifact.display())])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    let result = prune(&conn, keep_nothing(&checkpoints));
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(result["pruned_rows"], 0, "{result}");
    assert!(result["considered"][0]["reason"].as_str().unwrap().contains("locked"), "{result}");
    let result = prune(&conn, keep_nothing(&checkpoints));
    assert!(result["pruned_rows"].as_i64().unwrap() > 0, "once released it is used: {result}");
}

#[test]
fn backup_retention_never_deletes_the_checkpoint_the_window_starts_at() {
    let dir = scratch();
    let (_db, checkpoints, conn) = journaled_db(dir.path());
    let backup = |conn: &Connection| -> Json {
        json_of(conn, &format!("SELECT backup_to('{}', '{{\"log\": false, \"keep\": 1}}')", checkpoints.display()))
    };
    write_round(&conn, 1);
    let (anchor, cut) = checkpoint(&conn, &checkpoints);
    write_round(&conn, 2);
    assert_eq!(prune(&conn, keep_nothing(&checkpoints))["horizon"]["seq"], cut);

    write_round(&conn, 3);
    let first = backup(&conn);
    assert!(anchor.exists(), "keep 1 would delete it, but the window starts at it: {first}");
    assert_eq!(first["retention"]["kept_for_pit_window"], json!([anchor.to_string_lossy()]), "{first}");
    assert_eq!(first["retention"]["deleted"], json!([]), "{first}");

    write_round(&conn, 4);
    let second = backup(&conn);
    assert!(anchor.exists());
    assert_eq!(second["retention"]["deleted"], json!([first["path"]]), "an ordinary backup still goes: {second}");

    // Once the window starts at a newer checkpoint, the old one is an ordinary backup again.
    write_round(&conn, 5);
    let moved = prune(&conn, keep_nothing(&checkpoints));
    let new_anchor = moved["checkpoint"]["path"].as_str().unwrap().to_string();
    assert!(new_anchor.ends_with(second["path"].as_str().unwrap().rsplit('/').next().unwrap()), "{moved}");
    write_round(&conn, 6);
    let third = backup(&conn);
    assert!(!anchor.exists(), "{third}");
    assert!(Path::new(&new_anchor).exists(), "{third}");
}

#[test]
fn backup_retention_racing_pit_prune_never_deletes_the_checkpoint_of_the_window() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = scratch();
    let (db, checkpoints, conn) = journaled_db(dir.path());
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let backups = {
        let (db, checkpoints, stop) = (db.clone(), checkpoints.clone(), stop.clone());
        std::thread::spawn(move || {
            let conn = open(&db);
            let mut made = 0;
            while !stop.load(Ordering::Relaxed) {
                let sql = format!("SELECT backup_to('{}', '{{\"log\": false, \"keep\": 1}}')", checkpoints.display());
                json_of(&conn, &sql);
                made += 1;
            }
            made
        })
    };
    let mut moved = 0;
    for round in 1..=15 {
        write_round(&conn, round);
        let result = prune(&conn, keep_nothing(&checkpoints));
        moved += i32::from(result["pruned_rows"].as_i64().unwrap() > 0);
        let status = json_of(&conn, "SELECT pit_status()");
        if let Some(path) = status["window_checkpoint"]["path"].as_str() {
            assert!(Path::new(path).exists(), "round {round}: the window starts at {path}, deleted: {result}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    let made = backups.join().unwrap();
    assert!(made > 1 && moved > 1, "{made} backups, {moved} prunes that moved the window");
    // One more backup after the last prune: keep 1 would delete every other backup.
    write_round(&conn, 16);
    json_of(&conn, &format!("SELECT backup_to('{}', '{{\"log\": false, \"keep\": 1}}')", checkpoints.display()));
    // The window's checkpoint is there, and is the state at the window's start.
    let status = json_of(&conn, "SELECT pit_status()");
    let (path, seq) = (status["window_checkpoint"]["path"].as_str().unwrap(), status["window"]["earliest_seq"].clone());
    let target = dir.path().join("start.db");
    json_of(&conn, &format!("SELECT pit_restore('{{\"seq\": {seq}}}', '{}')", target.display()));
    assert_eq!(app_digest(&target), app_digest(Path::new(path)));
}

/// python3 (Debian's, SQLite 3.40) loading vigil and calling pit_prune; prints "start" just before the call.
fn spawn_pruner(db: &Path, options: &Json) -> std::process::Child {
    let script = "import sqlite3, sys\n\
        c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
        c.enable_load_extension(True)\n\
        c.load_extension(sys.argv[2])\n\
        print('start', flush=True)\n\
        r = c.execute('SELECT pit_prune(?)', (sys.argv[3],)).fetchone()[0]\n\
        print('done ' + r, flush=True)\n";
    Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(db)
        .arg(library())
        .arg(options.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The journal's facts after a crash: (horizon_seq, min seq, max seq, rows).
fn journal_facts(db: &Path) -> (i64, i64, i64, i64) {
    let conn = Connection::open(db).unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    conn.query_row(
        "SELECT coalesce((SELECT value FROM vigil_pit_meta WHERE key = 'horizon_seq'), 0), min(seq), max(seq), count(*)
         FROM vigil_pit_log",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
    .unwrap()
}

/// A cheap fingerprint of a big table t (the exact digest reads every row into JSON).
fn table_summary(db: &Path) -> (i64, i64, i64, String) {
    let conn = Connection::open(db).unwrap();
    let sql = "SELECT count(*), sum(id), sum(length(v)), max(v) FROM t";
    conn.query_row(sql, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).unwrap()
}

#[test]
fn kill_9_in_the_middle_of_pit_prune_leaves_a_consistent_file() {
    for mode in ["delete", "wal"] {
        kill_during_prune(mode);
    }
}

/// Kills a pit_prune at several moments of its run, on a database in journal mode `mode`.
fn kill_during_prune(mode: &str) {
    let dir = scratch();
    let (db, checkpoints, conn) = journaled_db(dir.path());
    conn.pragma_update(None, "journal_mode", mode).unwrap();
    conn.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
         INSERT INTO t(v) SELECT printf('row %d of a journal big enough to take a while', i) FROM n;
         UPDATE t SET v = v || ' (updated)';",
    )
    .unwrap();
    let (artifact, cut) = checkpoint(&conn, &checkpoints);
    write_round(&conn, 1);
    drop(conn);
    let pristine = dir.path().join("pristine.db");
    std::fs::copy(&db, &pristine).unwrap();
    let (_, first, last, rows) = journal_facts(&pristine);
    let content = table_summary(&pristine);
    let options = keep_nothing(&checkpoints);

    // One run to the end: how long a prune takes here, and what it leaves.
    let started = Instant::now();
    let out = spawn_pruner(&db, &options).wait_with_output().unwrap();
    let full = started.elapsed();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("\"pruned_rows\""), "{printed}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(journal_facts(&db), (cut, cut, last, last - cut + 1));

    let mut interrupted = 0;
    for tenth in [1, 3, 5, 7, 8, 9] {
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        std::fs::copy(&pristine, &db).unwrap();
        let mut child = spawn_pruner(&db, &options);
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "start");
        std::thread::sleep(full * tenth / 10);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut rest);
        let finished = rest.starts_with("done");
        interrupted += u32::from(!finished);
        let left = |suffix: &str| std::fs::metadata(format!("{}{suffix}", db.display())).map_or(0, |m| m.len());
        let (journal, wal) = (left("-journal"), left("-wal"));
        let (horizon, min, max, count) = journal_facts(&db);
        eprintln!("{mode}: killed at {tenth}/10 of {full:?}: finished {finished}, left -journal {journal} and -wal {wal} bytes, horizon {horizon}");
        if horizon == 0 {
            assert!(!finished, "a finished prune moved the horizon");
            assert_eq!((min, max, count), (first, last, rows), "no row gone without the horizon moving");
        } else {
            assert_eq!((horizon, min, max, count), (cut, cut, last, last - cut + 1), "every row below it gone");
        }
        assert_eq!(table_summary(&db), content, "the data is untouched");
        if tenth == 5 {
            // The window still restores from its start, whichever way the crash went.
            let conn = open(&db);
            let target = dir.path().join("after-crash.db");
            json_of(&conn, &format!("SELECT pit_restore('{{\"seq\": {cut}}}', '{}')", target.display()));
            assert_eq!(app_digest(&target), app_digest(&artifact));
        }
    }
    assert!(interrupted > 0, "at least one kill landed before pit_prune returned");
}
