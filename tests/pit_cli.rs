//! `vigil pit …` as a user meets it: the real binary run from another directory with relative paths, a
//! writer process that never loads vigil (Debian's python3 and its SQLite 3.40), `vigil pit tick` stopped by
//! signals, restores compared with the states the writer recorded, and the errors of bad command lines.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value as Json;
use vigil_tests::*;

fn vigil_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(cli_binary()).current_dir(dir).args(args).env_remove("VIGIL_EXTENSION").output().unwrap()
}

fn spawn_vigil(dir: &Path, args: &[&str]) -> Child {
    Command::new(cli_binary())
        .current_dir(dir)
        .args(args)
        .env_remove("VIGIL_EXTENSION")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, name: &str) {
    let sent = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap();
    assert!(sent.success(), "kill -{name}");
}

/// The writer: plain python3 sqlite3 (it never loads vigil). `write DB N SEED` runs N transactions of one
/// to four statements on `items` and, in the quiet gap after each commit, prints
/// `<unix seconds> <RFC 3339 UTC ms> <max(seq) of the journal> <content hash>`; `hash DB` prints the hash.
/// The hash covers values and storage classes.
const WRITER: &str = r#"
import datetime, hashlib, random, sqlite3, sys, time

def digest(path):
    c = sqlite3.connect(path)
    rows = c.execute("SELECT id, typeof(name), name, typeof(qty), qty FROM items ORDER BY id").fetchall()
    c.close()
    return hashlib.sha256(repr(rows).encode()).hexdigest()

if sys.argv[1] == "hash":
    print(digest(sys.argv[2]))
    sys.exit(0)

path, count = sys.argv[2], int(sys.argv[3])
random.seed(int(sys.argv[4]))
c = sqlite3.connect(path, isolation_level=None, timeout=30)
for i in range(count):
    c.execute("BEGIN")
    for _ in range(random.randint(1, 4)):
        k, r = random.randint(1, 25), random.random()
        if r < 0.45:
            qty = random.choice([i, i + 0.5, None, b"\x00\xff", "7"])
            c.execute("INSERT OR REPLACE INTO items VALUES (?, ?, ?)", (k, "item %d" % i, qty))
        elif r < 0.8:
            c.execute("UPDATE items SET qty = coalesce(qty, 0) + 1, name = upper(name) WHERE id = ?", (k,))
        else:
            c.execute("DELETE FROM items WHERE id = ?", (k,))
    c.execute("COMMIT")
    time.sleep(0.025)
    now = time.time()
    stamp = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    seq = c.execute("SELECT max(seq) FROM vigil_pit_log").fetchone()[0]
    print("%.3f %s %d %s" % (now, stamp, seq, digest(path)), flush=True)
    time.sleep(0.025)
"#;

const PYTHON: &str = "/usr/bin/python3";

/// A state the writer recorded in a quiet gap.
struct Recorded {
    unix: String,
    rfc3339: String,
    seq: i64,
    hash: String,
}

fn writer(dir: &Path) -> std::path::PathBuf {
    let script = dir.join("writer.py");
    std::fs::write(&script, WRITER).unwrap();
    script
}

fn run_writer(script: &Path, db: &Path, count: u32, seed: u32) -> Vec<Recorded> {
    let out = Command::new(PYTHON)
        .arg(script)
        .args(["write", db.to_str().unwrap(), &count.to_string(), &seed.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "writer: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            Recorded { unix: f[0].into(), rfc3339: f[1].into(), seq: f[2].parse().unwrap(), hash: f[3].into() }
        })
        .collect()
}

fn python_hash(script: &Path, db: &Path) -> String {
    let out = Command::new(PYTHON).arg(script).args(["hash", db.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "hash: {}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

/// A scratch root with `data/app.db` (a table `items`) journaled by `vigil pit enable`, run from the root.
fn journaled() -> tempfile::TempDir {
    let root = scratch();
    std::fs::create_dir(root.path().join("data")).unwrap();
    create_db(
        &root.path().join("data/app.db"),
        "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT COLLATE NOCASE, qty);",
    );
    let out = vigil_in(root.path(), &["pit", "enable", "data/app.db"]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    assert!(text(&out.stdout).starts_with("journaling data/app.db: items"), "{}", both(&out));
    root
}

/// The seqs of the journal's seal rows (op 9), read without vigil.
fn seal_seqs(db: &Path) -> Vec<i64> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT seq FROM vigil_pit_log WHERE op = 9 ORDER BY seq").unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

/// `vigil pit tick --every 100ms` runs while a writer without vigil commits; SIGINT stops it with exit 130,
/// every seal it printed is in the journal and none it did not print, and the database is intact and
/// unlocked (no half-written tick). Restores into new files, at instants given as RFC 3339, unix seconds
/// and seq:N, equal the states the writer recorded then; a restore into an existing file is refused.
#[test]
fn ticks_run_beside_a_foreign_writer_and_restores_reproduce_its_recorded_states() {
    let root = journaled();
    let (dir, db) = (root.path(), root.path().join("data/app.db"));
    let script = writer(dir);
    let ticker = spawn_vigil(dir, &["pit", "tick", "data/app.db", "--every", "100ms"]);
    let recorded = run_writer(&script, &db, 40, 1);
    signal(&ticker, "INT");
    let stopped = ticker.wait_with_output().unwrap();
    assert_eq!(code(&stopped), 130, "{}", both(&stopped));
    assert!(text(&stopped.stderr).contains("interrupted by SIGINT"), "{}", both(&stopped));
    let printed: Vec<i64> = text(&stopped.stdout)
        .lines()
        .map(|line| {
            // The last may lack its time: pit_tick reads it after the commit, and the signal may interrupt that.
            assert!(
                line.starts_with("tick seq ") && (line.contains(" at 20") || line.split(' ').count() == 3),
                "{line}"
            );
            line.split(' ').nth(2).unwrap().parse().unwrap()
        })
        .collect();
    assert!(printed.len() >= 5, "ticks every 100 ms for the writer's ~2 s: {}", both(&stopped));
    assert_eq!(seal_seqs(&db), printed, "the journal holds exactly the seals the tick printed: {}", both(&stopped));
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("PRAGMA busy_timeout = 0; BEGIN IMMEDIATE; ROLLBACK;").expect("no lock left behind");
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");

    let picks = [(5, "rfc3339"), (18, "unix"), (31, "seq")];
    for (i, form) in picks {
        let state = &recorded[i];
        let at = match form {
            "rfc3339" => state.rfc3339.clone(),
            "unix" => state.unix.clone(),
            _ => format!("seq:{}", state.seq),
        };
        let into = format!("data/then-{i}.db");
        let out = vigil_in(dir, &["pit", "restore", "data/app.db", "--at", &at, "--into", &into]);
        assert_eq!(code(&out), 0, "--at {at}: {}", both(&out));
        assert!(text(&out.stdout).starts_with(&format!("restored data/app.db into {into}")), "{}", both(&out));
        assert_eq!(python_hash(&script, &dir.join(&into)), state.hash, "state {i} restored --at {at} ({form})");
    }
    assert_ne!(recorded[5].hash, recorded[39].hash, "the writer changed the table in between");

    let existing = dir.join("data/then-5.db");
    let before = sha256sum(&existing);
    let out =
        vigil_in(dir, &["pit", "restore", "data/app.db", "--at", &recorded[20].rfc3339, "--into", "data/then-5.db"]);
    assert_eq!(code(&out), 64, "{}", both(&out));
    assert!(text(&out.stderr).contains("--into data/then-5.db: exists"), "{}", both(&out));
    assert!(text(&out.stderr).contains("leave out --into to restore data/app.db in place"), "{}", both(&out));
    assert_eq!(sha256sum(&existing), before, "the existing file is untouched");
}

/// In place: the database goes back to a recorded state, the output names the safety backup prominently,
/// and that backup holds the state the restore replaced.
#[test]
fn an_in_place_restore_names_its_safety_backup_which_holds_the_replaced_state() {
    let root = journaled();
    let (dir, db) = (root.path(), root.path().join("data/app.db"));
    let script = writer(dir);
    let recorded = run_writer(&script, &db, 12, 2);
    let latest = python_hash(&script, &db);
    let out = vigil_in(dir, &["pit", "restore", "data/app.db", "--at", &recorded[4].rfc3339]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("restored data/app.db in place"), "{stdout}");
    let line = stdout.lines().find(|l| l.starts_with("SAFETY BACKUP: ")).unwrap_or_else(|| panic!("{stdout}"));
    let safety = line.rsplit(' ').next().unwrap();
    assert!(Path::new(safety).is_absolute() && Path::new(safety).exists(), "{line}");
    assert_eq!(python_hash(&script, &db), recorded[4].hash);
    assert_eq!(python_hash(&script, Path::new(safety)), latest);

    let out = vigil_in(dir, &["pit", "restore", "data/app.db", "--at", &format!("seq:{}", recorded[2].seq), "--json"]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let result: Json = serde_json::from_slice(&out.stdout).unwrap();
    let safety = result["safety_backup"]["path"].as_str().unwrap();
    assert!(text(&out.stderr).contains(&format!("the state it replaced is kept in {safety}")), "{}", both(&out));
    assert_eq!(python_hash(&script, &db), recorded[2].hash);
}

/// `--json` prints one JSON object per tick and --quiet prints nothing while it ticks; SIGTERM stops the loop
/// like SIGINT.
#[test]
fn tick_json_lines_and_quiet_and_sigterm() {
    let root = journaled();
    let dir = root.path();
    let db = root.path().join("data/app.db");
    for (flag, expect_lines) in [("--json", true), ("--quiet", false)] {
        let before = seal_seqs(&db).len();
        let mut ticker = spawn_vigil(dir, &["pit", "tick", "data/app.db", "--every", "50ms", flag]);
        let mut stdout = BufReader::new(ticker.stdout.take().unwrap());
        let mut first = String::new();
        if expect_lines {
            stdout.read_line(&mut first).unwrap();
        } else {
            // Seals of this process: its signal handling is in place by then.
            wait_for_seals(&db, before + 2);
        }
        signal(&ticker, "TERM");
        let status = ticker.wait().unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
        assert_eq!(status.code(), Some(130), "{flag}");
        if expect_lines {
            for line in first.lines().chain(rest.lines()) {
                let tick: Json = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
                assert!(tick["seq"].as_i64().unwrap() > 0 && tick["at"].is_string(), "{line}");
            }
        } else {
            assert_eq!(rest, "", "--quiet prints nothing");
        }
    }
}

/// Waits (at most a minute, on a loaded machine) until the journal holds `count` seals.
fn wait_for_seals(db: &Path, count: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while seal_seqs(db).len() < count {
        assert!(std::time::Instant::now() < deadline, "no {count} seals within a minute");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Bad command lines exit 64 naming the flag and what it takes; a database without a journal says how to
/// start one; a missing database is unknown (3).
#[test]
fn bad_flags_and_missing_journals_are_told_in_cli_terms() {
    let root = scratch();
    let dir = root.path();
    create_db(&dir.join("plain.db"), "CREATE TABLE t(a INTEGER PRIMARY KEY, b);");
    let usage: &[(&[&str], &str)] = &[
        (&["pit", "restore", "plain.db"], "--at"),
        (&["pit", "restore", "plain.db", "--at", "yesterday"], "seq:N"),
        (&["pit", "restore", "plain.db", "--at", "seq:-3"], "RFC 3339"),
        (&["pit", "tick", "plain.db", "--every", "0s"], "at least 10ms"),
        (&["pit", "tick", "plain.db", "--every", "often"], "1s, 250ms"),
        (&["pit", "log", "plain.db", "--limit", "many"], "--limit <N>"),
        (&["pit", "log", "plain.db", "--since", "soon"], "unix seconds"),
        (&["pit", "enable", "plain.db", "nosuch"], "cannot journal 'nosuch': no such table"),
        (&["pit", "rewind", "plain.db"], "unrecognized subcommand"),
    ];
    for (args, says) in usage {
        let out = vigil_in(dir, args);
        assert_eq!(code(&out), 64, "{args:?}: {}", both(&out));
        assert!(text(&out.stderr).contains(says), "{args:?} should say {says}: {}", both(&out));
    }

    let out = vigil_in(dir, &["pit", "status", "plain.db"]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    assert!(text(&out.stdout).contains("no journal; start one with `vigil pit enable plain.db`"), "{}", both(&out));
    let out = vigil_in(dir, &["pit", "restore", "plain.db", "--at", "seq:0", "--into", "new.db"]);
    assert_eq!(code(&out), 2, "{}", both(&out));
    assert!(text(&out.stderr).contains("run vigil pit enable plain.db first"), "{}", both(&out));
    assert!(!text(&out.stderr).contains("pit_enable("), "no SQL in a CLI message: {}", both(&out));
    assert!(!dir.join("new.db").exists());
    let out = vigil_in(dir, &["pit", "tick", "plain.db"]);
    assert_eq!(code(&out), 3, "{}", both(&out));
    assert!(text(&out.stderr).contains("vigil pit enable plain.db"), "{}", both(&out));
    let out = vigil_in(dir, &["pit", "status", "missing.db"]);
    assert_eq!(code(&out), 3, "{}", both(&out));
    assert!(!dir.join("missing.db").exists(), "never creates a database");
}

/// The rows of `pit log --json` that are row changes of `items` (not schema events or seals).
fn changes(rows: &[Json]) -> Vec<&Json> {
    rows.iter()
        .filter(|r| r["table"] == "items" && ["insert", "update", "delete"].contains(&r["op"].as_str().unwrap()))
        .collect()
}

/// `vigil pit log` lists a writer's changes oldest first, an update as the columns it changed; filtered by
/// table, by --since as RFC 3339, unix seconds or seq:N, cut to the last --limit with a note; --json gives
/// key, old and new as JSON.
#[test]
fn log_lists_changes_filtered_by_table_time_and_seq() {
    let root = journaled();
    let (dir, db) = (root.path(), root.path().join("data/app.db"));
    let writer = rusqlite::Connection::open(&db).unwrap();
    writer.execute_batch("INSERT INTO items VALUES (1, 'apple', 3); UPDATE items SET qty = 4 WHERE id = 1;").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(30));
    let since: String = writer.query_row("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')", [], |r| r.get(0)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(30));
    writer.execute_batch("DELETE FROM items WHERE id = 1;").unwrap();

    let out = vigil_in(dir, &["pit", "log", "data/app.db", "--table", "items", "--json"]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let rows: Vec<Json> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["op"], "schema", "the journal starts with the table's tracking: {rows:?}");
    let rows = changes(&rows);
    let ops: Vec<&str> = rows.iter().map(|r| r["op"].as_str().unwrap()).collect();
    assert_eq!(ops, ["insert", "update", "delete"], "{}", both(&out));
    assert!(rows.iter().all(|r| r["table"] == "items" && r["txn"].is_null()), "a writer without vigil: {rows:?}");
    assert_eq!((&rows[1]["old"]["qty"], &rows[1]["new"]["qty"]), (&Json::from(3), &Json::from(4)));
    let update_seq = rows[1]["seq"].as_i64().unwrap();

    let out = vigil_in(dir, &["pit", "log", "data/app.db", "--table", "items"]);
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("SEQ"), "{stdout}");
    assert!(stdout.lines().any(|l| l.contains("update") && l.ends_with("qty: 3 → 4")), "{stdout}");

    let unix: String =
        writer.query_row("SELECT printf('%.3f', (julianday(?1) - 2440587.5) * 86400)", [&since], |r| r.get(0)).unwrap();
    for since in [since, unix, format!("seq:{update_seq}")] {
        let out = vigil_in(dir, &["pit", "log", "data/app.db", "--since", &since, "--json"]);
        assert_eq!(code(&out), 0, "{}", both(&out));
        let rows: Vec<Json> = serde_json::from_slice(&out.stdout).unwrap();
        let changes = changes(&rows);
        assert_eq!(changes.len(), 1, "--since {since}: {rows:?}");
        assert_eq!(changes[0]["op"], "delete");
        assert_eq!(changes[0]["old"]["name"], "apple");
    }

    let out = vigil_in(dir, &["pit", "log", "data/app.db", "--table", "items", "--limit", "1"]);
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().filter(|l| l.contains(" items ")).count(), 1, "{stdout}");
    assert!(stdout.starts_with("SEQ"), "{stdout}");
    assert!(stdout.lines().any(|l| l.contains("delete")), "the newest is shown: {stdout}");
    assert!(stdout.contains("older changes match too"), "{stdout}");
}

/// Between two statements of a writer without vigil the cut is at a statement (`consistency: statement`);
/// `--strict` moves it back to the last exact boundary, here the seal of `vigil pit tick --count 1`.
#[test]
fn strict_cuts_at_the_last_seal_instead_of_between_foreign_statements() {
    let root = journaled();
    let (dir, db) = (root.path(), root.path().join("data/app.db"));
    let out = vigil_in(dir, &["pit", "tick", "data/app.db", "--count", "1", "--json"]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let seal: Json = serde_json::from_slice(&out.stdout).unwrap();
    let writer = rusqlite::Connection::open(&db).unwrap();
    writer.execute("INSERT INTO items VALUES (1, 'first', 1)", []).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(30));
    let between: String = writer.query_row("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')", [], |r| r.get(0)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(30));
    writer.execute("INSERT INTO items VALUES (2, 'second', 2)", []).unwrap();

    let rows = |file: &str| -> i64 {
        let conn = rusqlite::Connection::open(dir.join(file)).unwrap();
        conn.query_row("SELECT count(*) FROM items", [], |r| r.get(0)).unwrap()
    };
    let out = vigil_in(dir, &["pit", "restore", "data/app.db", "--at", &between, "--into", "data/loose.db", "--json"]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let result: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["consistency"], "statement", "{result}");
    assert_eq!(rows("data/loose.db"), 1);
    let out =
        vigil_in(dir, &["pit", "restore", "data/app.db", "--at", &between, "--into", "data/strict.db", "--strict"]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let expected = format!("restored data/app.db into data/strict.db: the state at seq {} (", seal["seq"]);
    assert!(text(&out.stdout).starts_with(&expected), "{}", both(&out));
    assert!(text(&out.stdout).contains("consistency: transaction"), "{}", both(&out));
    assert_eq!(rows("data/strict.db"), 0);
}

/// A schema change elsewhere (an index on another table) alters no journaled table: a table with a UNIQUE
/// constraint keeps its epoch (before bd6171c every such table was re-epoched, with "alter" events that never
/// happened, at every schema change; `vigil pit tick` showed them as noticed).
#[test]
fn an_index_on_another_table_alters_no_journaled_table() {
    let root = scratch();
    let dir = root.path();
    create_db(
        &dir.join("app.db"),
        "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT UNIQUE); CREATE TABLE other(a);",
    );
    assert_eq!(code(&vigil_in(dir, &["pit", "enable", "app.db"])), 0);
    rusqlite::Connection::open(dir.join("app.db")).unwrap().execute_batch("CREATE INDEX other_a ON other(a);").unwrap();
    let out = vigil_in(dir, &["pit", "tick", "app.db", "--count", "1", "--json"]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let tick: Json = serde_json::from_slice(&out.stdout).unwrap();
    let alters: Vec<&Json> = tick["noticed"].as_array().unwrap().iter().filter(|e| e["event"] == "alter").collect();
    assert!(alters.is_empty(), "no table was altered: {tick}");
}
