//! Test harness: the built vigil library loaded into real SQLite hosts — the system `sqlite3` shell as a
//! subprocess, and rusqlite with its bundled (newer) SQLite — plus helpers for real files on disk.
//!
//! The library must be built first (`cargo build --workspace`; scripts/test does it).

pub mod alertmanager;
pub mod http;
pub mod receiver;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rusqlite::types::ValueRef;
use rusqlite::Connection;
use serde_json::{json, Map, Value as Json};

pub type Row = Map<String, Json>;

fn target_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target")
}

/// The project's root directory.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn built(name: &str) -> PathBuf {
    let path = target_dir().join("debug").join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --workspace` first (scripts/test does)", path.display());
    path
}

/// The built extension, without its suffix, the way a user `.load`s it.
pub fn library() -> PathBuf {
    if let Ok(path) = std::env::var("VIGIL_EXTENSION") {
        return PathBuf::from(path);
    }
    built("libvigil.so").with_extension("")
}

pub fn cli_binary() -> PathBuf {
    built("vigil")
}

/// A real SQLite host that can load vigil.
pub trait Host {
    fn name(&self) -> &'static str;
    /// Runs one statement on `db` with vigil loaded; rows as column → JSON value, or SQLite's error text.
    fn query(&self, db: &Path, sql: &str) -> Result<Vec<Row>, String>;
}

/// The system `sqlite3` shell (3.40.1 on the reference machine), one process per query.
pub struct Shell;

impl Host for Shell {
    fn name(&self) -> &'static str {
        "sqlite3 shell"
    }

    fn query(&self, db: &Path, sql: &str) -> Result<Vec<Row>, String> {
        let script = format!(".bail on\n.load {}\n.mode json\n{sql};\n", library().display());
        let out = shell_run(db, &script, &[]);
        if !out.status.success() || !out.stderr.is_empty() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<Row> =
            serde_json::from_str(&text).map_err(|e| format!("bad JSON from the shell: {e}: {text}"))?;
        Ok(rows)
    }
}

/// Runs the sqlite3 shell on `db` with `script` on stdin.
pub fn shell_run(db: &Path, script: &str, args: &[&str]) -> std::process::Output {
    let mut child = Command::new("sqlite3")
        .args(args)
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the sqlite3 shell must be installed (apt-get install sqlite3)");
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// rusqlite with its bundled modern SQLite, loading the same library.
pub struct Rusqlite;

impl Rusqlite {
    pub fn open(db: &Path) -> Connection {
        let conn = Connection::open(db).unwrap();
        load(&conn);
        conn
    }
}

pub fn load(conn: &Connection) {
    unsafe {
        conn.load_extension_enable().unwrap();
        conn.load_extension(library(), None::<&str>).expect("vigil loads into rusqlite");
        conn.load_extension_disable().unwrap();
    }
}

pub fn rows(conn: &Connection, sql: &str) -> Result<Vec<Row>, String> {
    let mut stmt = conn.prepare(sql).map_err(|e| e.to_string())?;
    let names: Vec<String> = stmt.column_names().map(String::from).collect();
    let mut out = Vec::new();
    let mut cursor = stmt.query([]).map_err(|e| e.to_string())?;
    while let Some(row) = cursor.next().map_err(|e| e.to_string())? {
        let mut object = Map::new();
        for (i, name) in names.iter().enumerate() {
            let value = match row.get_ref(i).unwrap() {
                ValueRef::Null => Json::Null,
                ValueRef::Integer(n) => json!(n),
                ValueRef::Real(r) => json!(r),
                ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
                ValueRef::Blob(b) => {
                    json!(b.iter().map(|x| format!("{x:02x}")).collect::<String>())
                }
            };
            object.insert(name.clone(), value);
        }
        out.push(object);
    }
    Ok(out)
}

impl Host for Rusqlite {
    fn name(&self) -> &'static str {
        "rusqlite (bundled SQLite)"
    }

    /// Waits up to 30 s for locks, like an application beside a busy writer: under a writer committing back to
    /// back and a loaded machine, rusqlite's default 5 s was not always enough for the statement's own schema read
    /// (twice in about fifteen full runs, before vigil's function ran: the error lacked vigil's "backup_to:"). The
    /// shell host keeps no timeout, so a wait of vigil's own on the caller's connection still fails there.
    fn query(&self, db: &Path, sql: &str) -> Result<Vec<Row>, String> {
        let conn = Connection::open(db).map_err(|e| e.to_string())?;
        conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(|e| e.to_string())?;
        load(&conn);
        rows(&conn, sql)
    }
}

/// Runs a statement whose one value is a JSON document (vigil's scalar functions) and parses it.
pub fn call(host: &dyn Host, db: &Path, sql: &str) -> Json {
    let rows = host.query(db, sql).unwrap_or_else(|e| panic!("{}: {sql}: {e}", host.name()));
    let text = rows[0].values().next().unwrap().as_str().unwrap().to_string();
    serde_json::from_str(&text).unwrap()
}

/// SHA-256 of a file by the reference tool.
pub fn sha256sum(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string()
}

/// Both hosts: every host test runs its assertions in each.
pub fn hosts() -> Vec<Box<dyn Host>> {
    vec![Box::new(Shell), Box::new(Rusqlite)]
}

/// A scratch directory that disappears with the test.
pub fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Creates a database at `path` from SQL, with rusqlite (no extension).
pub fn create_db(path: &Path, sql: &str) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(sql).unwrap();
}

/// The demo database of sql/demo.sql.
pub fn demo_db(path: &Path) {
    create_db(path, &std::fs::read_to_string(root().join("sql/demo.sql")).unwrap());
}

/// An integer pragma of a database, read without vigil.
pub fn pragma(path: &Path, name: &str) -> i64 {
    Connection::open(path).unwrap().query_row(&format!("PRAGMA {name}"), [], |r| r.get(0)).unwrap()
}

/// Rows of a report keyed by check name.
pub fn by_check(rows: &[Row]) -> std::collections::BTreeMap<String, Row> {
    rows.iter().map(|r| (r["check"].as_str().unwrap().to_string(), r.clone())).collect()
}

/// Overwrites bytes of a file at an offset: real corruption.
pub fn flip_bytes(path: &Path, offset: u64, len: usize) {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut buffer = vec![0u8; len];
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.read_exact(&mut buffer).unwrap();
    for b in buffer.iter_mut() {
        *b ^= 0xA5;
    }
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(&buffer).unwrap();
    file.sync_all().unwrap();
}

/// The page number where a table's (or index's) b-tree root lives.
pub fn root_page(path: &Path, name: &str) -> u64 {
    let conn = Connection::open(path).unwrap();
    conn.query_row("SELECT rootpage FROM sqlite_schema WHERE name = ?1", [name], |r| r.get::<_, i64>(0)).unwrap() as u64
}

/// A digest of every table's rows (schema and content, in rowid order), read without vigil: equal digests
/// mean equal content, whatever the file layout.
pub fn content_digest(path: &Path) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut tables: Vec<(String, String)> = conn
        .prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'vigil_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get::<_, Option<String>>(1)?.unwrap_or_default())))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    tables.retain(|(name, _)| !name.starts_with("sqlite_stat"));
    let mut hasher = DefaultHasher::new();
    let mut rows_seen = 0u64;
    for (name, sql) in &tables {
        sql.hash(&mut hasher);
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        let without_rowid = sql.to_uppercase().contains("WITHOUT ROWID");
        let order = if without_rowid { "" } else { " ORDER BY rowid" };
        for row in rows(&conn, &format!("SELECT * FROM {quoted}{order}")).unwrap() {
            serde_json::to_string(&row).unwrap().hash(&mut hasher);
            rows_seen += 1;
        }
    }
    format!("{} tables, {rows_seen} rows, {:016x}", tables.len(), hasher.finish())
}

/// Starts the sqlite3 shell on `db`, feeding it `script` on stdin from another thread.
pub fn spawn_shell(db: &Path, script: &str) -> std::process::Child {
    let mut child = Command::new("sqlite3")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let script = script.to_string();
    std::thread::spawn(move || stdin.write_all(script.as_bytes()));
    child
}

/// A tmpfs of `bytes` mounted on a scratch directory, unmounted on drop; `None` (after printing why) where
/// this process may not mount.
pub struct Tmpfs {
    pub dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(bytes: u64, extra: &str, test: &str) -> Option<Tmpfs> {
        let dir = scratch();
        let options = format!("size={}k{extra}", bytes.div_ceil(1024));
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &options, "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("SKIPPED {test}: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(Tmpfs { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// The exit code of a finished command (a test fails when a signal ended it).
pub fn code(out: &std::process::Output) -> i32 {
    out.status.code().unwrap()
}

/// A command's output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Both streams of a command, for assertion messages.
pub fn both(out: &std::process::Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr))
}

/// `promtool check metrics` on stdin: (exit code, everything it printed).
pub fn promtool_check(exposition: &str) -> (i32, String) {
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/setup installs it)");
    let mut stdin = child.stdin.take().unwrap();
    let input = exposition.to_string();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    (code(&out), format!("{}{}", text(&out.stdout), text(&out.stderr)))
}

/// Holds `BEGIN EXCLUSIVE` on a database from Debian's python3 (another process) until dropped.
pub struct Locker(std::process::Child);

impl Locker {
    pub fn lock(db: &Path) -> Locker {
        use std::io::BufRead;
        let script = "import sqlite3, sys\n\
            c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
            c.execute('BEGIN EXCLUSIVE')\n\
            print('locked', flush=True)\n\
            sys.stdin.readline()\n\
            c.execute('ROLLBACK')\n";
        let mut child = std::process::Command::new("/usr/bin/python3")
            .args(["-c", script])
            .arg(db)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "locked");
        Locker(child)
    }
}

impl Drop for Locker {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}
