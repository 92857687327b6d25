//! The salvage corruption corpus: undamaged originals built from real files, damaged copies of them, what a
//! salvage of each copy can at best recover (its physical limit), what `.dump` gets, and the check of a salvage's
//! output against the original. Shared by tests/salvage_corpus.rs, tests/salvage_fuzz.rs and the salvage
//! benchmark (bench/src/bin/salvage.rs), so it uses only std, rusqlite and serde_json.

#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

/// A small deterministic generator (xorshift64*): the same seed makes the same files and the same damage.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// `min` to `min + spread - 1` random bytes.
    pub fn bytes_between(&mut self, min: usize, spread: u64) -> Vec<u8> {
        let len = min + self.below(spread) as usize;
        self.bytes(len)
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// Words (some not ASCII), `min` to `min + spread - 1` bytes or a word more.
    pub fn text(&mut self, min: usize, spread: u64) -> String {
        let len = min + self.below(spread) as usize;
        const WORDS: [&str; 8] = ["salvage ", "page ", "cell ", "überlauf ", "журнал ", "b-tree ", "wal ", "рядок "];
        let mut out = String::new();
        while out.len() < len {
            out.push_str(WORDS[self.below(8) as usize]);
        }
        out
    }
}

/// An undamaged database the corpus damages copies of. A WAL original keeps committed frames in its -wal.
#[derive(Clone)]
pub struct Original {
    pub name: String,
    pub path: PathBuf,
}

impl Original {
    pub fn wal(&self) -> PathBuf {
        sidecar(&self.path, "-wal")
    }
}

pub fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

/// A fossil repository made from this project's git history (the newest `commits` commits): a real
/// application's database, with a multi-page schema, several indexes and overflow chains.
pub fn fossil_original(root: &Path, dir: &Path, commits: usize) -> Original {
    let path = dir.join("fossil.db");
    let export = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["fast-export", &format!("--max-count={commits}"), "HEAD"])
        .output()
        .expect("git must be installed (scripts/setup)");
    assert!(
        export.status.success(),
        "git fast-export in {}: {}",
        root.display(),
        String::from_utf8_lossy(&export.stderr)
    );
    let mut import = Command::new("fossil")
        .args(["import", "--git"])
        .arg(&path)
        .env("USER", "vigil")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fossil must be installed (scripts/setup installs it)");
    import.stdin.take().unwrap().write_all(&export.stdout).unwrap();
    let out = import.wait_with_output().unwrap();
    assert!(out.status.success(), "fossil import: {}", String::from_utf8_lossy(&out.stderr));
    Original { name: "fossil".into(), path }
}

/// The originals: the fossil repository of the project at `root` and one generated database per layout.
pub fn originals(root: &Path, dir: &Path) -> Vec<Original> {
    let mut all = vec![fossil_original(root, dir, 120)];
    all.extend(layouts().into_iter().map(|layout| generated_original(layout, dir)));
    all
}

/// How a generated original is laid out.
#[derive(Clone, Copy)]
pub struct Layout {
    pub name: &'static str,
    pub page_size: u32,
    pub encoding: &'static str,
    pub auto_vacuum_full: bool,
    pub wal: bool,
    /// Rows of the main table.
    pub rows: u64,
}

/// The generated originals: every layout the issue lists.
pub fn layouts() -> Vec<Layout> {
    let base = Layout { name: "", page_size: 4096, encoding: "UTF-8", auto_vacuum_full: false, wal: false, rows: 2000 };
    vec![
        Layout { name: "rowid-4k", ..base },
        Layout { name: "small-512", page_size: 512, rows: 800, ..base },
        Layout { name: "autovacuum-4k", auto_vacuum_full: true, ..base },
        Layout { name: "utf16le-64k", page_size: 65536, encoding: "UTF-16le", rows: 3000, ..base },
        Layout { name: "wal-4k", wal: true, ..base },
    ]
}

/// Generates an original with rusqlite's bundled SQLite: a rowid table with an INTEGER PRIMARY KEY and two
/// indexes (one UNIQUE), a rowid table without one (its rowids must survive too), a WITHOUT ROWID table,
/// rows with overflow (large TEXT and BLOB), and deleted rows (a freelist, or a shrunk file under
/// auto_vacuum=FULL). A WAL original's last transactions (updates, deletes, inserts) stay in its -wal.
pub fn generated_original(layout: Layout, dir: &Path) -> Original {
    let path = dir.join(format!("{}.db", layout.name));
    let conn = Connection::open(&path).unwrap();
    let vacuum = if layout.auto_vacuum_full { "FULL" } else { "NONE" };
    conn.execute_batch(&format!(
        "PRAGMA page_size = {}; PRAGMA encoding = '{}'; PRAGMA auto_vacuum = {vacuum};
         CREATE TABLE person(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE, score REAL, note TEXT);
         CREATE INDEX person_score ON person(score, name);
         CREATE TABLE event(at INTEGER, kind TEXT, payload BLOB);
         CREATE INDEX event_kind ON event(kind);
         CREATE TABLE tag(name TEXT PRIMARY KEY, uses INTEGER NOT NULL, about TEXT) WITHOUT ROWID;",
        layout.page_size, layout.encoding
    ))
    .unwrap();
    let mut rng = Rng::new(layout.page_size as u64 + layout.rows);
    fill(&conn, &mut rng, layout.rows);
    conn.execute_batch("DELETE FROM person WHERE id % 7 = 3; DELETE FROM event WHERE rowid % 5 = 1;").unwrap();
    if !layout.wal {
        return Original { name: layout.name.into(), path };
    }
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;").unwrap();
    conn.execute_batch(
        "UPDATE person SET score = score + 1000, note = 'changed in the wal' WHERE id % 11 = 0;
         DELETE FROM event WHERE rowid % 9 = 2;
         UPDATE tag SET uses = uses + 1 WHERE uses % 3 = 0;",
    )
    .unwrap();
    for n in 0..4 {
        conn.execute(
            "INSERT INTO person(name, email, score, note) VALUES ('wal ' || ?1, 'wal' || ?1 || '@x', ?1, NULL)",
            [n],
        )
        .unwrap();
    }
    // The committed frames stay in the -wal: copy both files while this connection still holds them (closing
    // the last connection would checkpoint).
    let kept = dir.join(format!("{}.kept.db", layout.name));
    std::fs::copy(&path, &kept).unwrap();
    std::fs::copy(sidecar(&path, "-wal"), sidecar(&kept, "-wal")).unwrap();
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(sidecar(&path, suffix));
    }
    std::fs::rename(&kept, &path).unwrap();
    std::fs::rename(sidecar(&kept, "-wal"), sidecar(&path, "-wal")).unwrap();
    Original { name: layout.name.into(), path }
}

fn fill(conn: &Connection, rng: &mut Rng, rows: u64) {
    conn.execute_batch("BEGIN").unwrap();
    let mut person = conn.prepare("INSERT INTO person(name, email, score, note) VALUES (?1, ?2, ?3, ?4)").unwrap();
    let mut event = conn.prepare("INSERT INTO event(at, kind, payload) VALUES (?1, ?2, ?3)").unwrap();
    let mut tag = conn.prepare("INSERT INTO tag(name, uses, about) VALUES (?1, ?2, ?3)").unwrap();
    for i in 0..rows {
        let note = match rng.below(10) {
            0 => Some(rng.text(3000, 9000)),
            1 | 2 => None,
            _ => Some(rng.text(20, 80)),
        };
        let name = rng.text(8, 20);
        let score = rng.below(1_000_000) as f64 / 7.0;
        person.execute(rusqlite::params![name, format!("p{i}@example.org"), score, note]).unwrap();
        let payload = if rng.below(12) == 0 { rng.bytes_between(5000, 20000) } else { rng.bytes(40) };
        event
            .execute(rusqlite::params![i as i64 * 1000 + rng.below(1000) as i64, format!("kind{}", i % 13), payload])
            .unwrap();
        if i % 3 == 0 {
            let about = if rng.below(15) == 0 { rng.text(2500, 1) } else { rng.text(30, 1) };
            tag.execute(rusqlite::params![format!("tag-{i:06}-{}", rng.below(1000)), i as i64, about]).unwrap();
        }
    }
    drop((person, event, tag));
    conn.execute_batch("COMMIT").unwrap();
}

/// Opens a database read-only, never creating anything beside it. WAL files are read from a private copy:
/// opening them needs a -shm, which must not appear beside a corpus file.
pub fn open_read_only(path: &Path, scratch: &Path) -> Connection {
    if sidecar(path, "-wal").exists() {
        let copy = scratch.join(format!("read-{}", path.file_name().unwrap().to_string_lossy()));
        copy_database(path, &copy);
        return Connection::open(&copy).unwrap();
    }
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

/// Removes a database file and the files SQLite keeps beside it.
pub fn remove_database(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(sidecar(path, suffix));
    }
}

/// Copies a database file and its -wal (when present), replacing any earlier copy.
pub fn copy_database(from: &Path, to: &Path) {
    remove_database(to);
    std::fs::copy(from, to).unwrap();
    if sidecar(from, "-wal").exists() {
        std::fs::copy(sidecar(from, "-wal"), sidecar(to, "-wal")).unwrap();
    }
}

/// A user table of an original: how its rows are keyed.
#[derive(Clone, Debug)]
pub struct Table {
    pub name: String,
    pub without_rowid: bool,
    /// The INTEGER PRIMARY KEY column (stored as NULL in the record: its value is the rowid).
    pub ipk: Option<usize>,
}

pub fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The user tables of a database (not sqlite_*, not `skip`).
pub fn tables(conn: &Connection, skip: &str) -> Vec<Table> {
    let names: Vec<(String, String)> = conn
        .prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get::<_, Option<String>>(1)?.unwrap_or_default())))
        .unwrap()
        .map(Result::unwrap)
        .filter(|(name, _)| name != skip)
        .collect();
    names.into_iter().map(|(name, sql)| describe(conn, name, &sql)).collect()
}

fn describe(conn: &Connection, name: String, sql: &str) -> Table {
    let without_rowid = sql.to_uppercase().replace(char::is_whitespace, "").contains("WITHOUTROWID");
    let columns: Vec<(String, i64)> = conn
        .prepare(&format!("PRAGMA table_info({})", quoted(&name)))
        .unwrap()
        .query_map([], |r| Ok((r.get::<_, String>(2)?, r.get::<_, i64>(5)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let keys: Vec<usize> = (0..columns.len()).filter(|&i| columns[i].1 > 0).collect();
    let ipk = match keys[..] {
        [i] if !without_rowid && columns[i].0.eq_ignore_ascii_case("INTEGER") => Some(i),
        _ => None,
    };
    Table { name, without_rowid, ipk }
}

/// A multiset of rows, each hashed from its values (type included).
#[derive(Default, Clone)]
pub struct Multiset(pub HashMap<u64, usize>);

impl Multiset {
    pub fn add(&mut self, key: u64) {
        *self.0.entry(key).or_default() += 1;
    }

    /// Takes one `key` out; false when none was left.
    pub fn take(&mut self, key: u64) -> bool {
        match self.0.get_mut(&key) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    pub fn len(&self) -> usize {
        self.0.values().sum()
    }
}

fn hash_value(value: ValueRef, hasher: &mut DefaultHasher) {
    match value {
        ValueRef::Null => 0u8.hash(hasher),
        ValueRef::Integer(n) => (1u8, n).hash(hasher),
        ValueRef::Real(r) => (2u8, r.to_bits()).hash(hasher),
        ValueRef::Text(t) => (3u8, t).hash(hasher),
        ValueRef::Blob(b) => (4u8, b).hash(hasher),
    }
}

/// Row keys: `full` with the rowid (rowid tables), `fields` the column values only (for `.dump`, which
/// renumbers rowids), `record` as the row's record stores it (the INTEGER PRIMARY KEY column NULL).
#[derive(Default, Clone)]
pub struct TableRows {
    pub full: Multiset,
    pub fields: Multiset,
    pub record: Multiset,
    /// Each row's (full, record) keys, in the order read.
    pub pairs: Vec<(u64, u64)>,
}

fn key_of(rowid: Option<i64>, values: &[ValueRef], null_at: Option<usize>) -> u64 {
    let mut hasher = DefaultHasher::new();
    rowid.hash(&mut hasher);
    values.len().hash(&mut hasher);
    for (i, v) in values.iter().enumerate() {
        hash_value(if Some(i) == null_at { ValueRef::Null } else { *v }, &mut hasher);
    }
    hasher.finish()
}

/// Every row of `table` in `conn` (an error when the table cannot be read to the end).
pub fn read_rows(conn: &Connection, table: &Table) -> Result<TableRows, String> {
    let select = if table.without_rowid { "SELECT *" } else { "SELECT rowid, *" };
    let mut stmt = conn.prepare(&format!("{select} FROM {}", quoted(&table.name))).map_err(|e| e.to_string())?;
    let columns = stmt.column_count();
    let mut cursor = stmt.query([]).map_err(|e| e.to_string())?;
    let mut out = TableRows::default();
    while let Some(row) = cursor.next().map_err(|e| e.to_string())? {
        let values: Vec<ValueRef> = (0..columns).map(|i| row.get_ref(i).unwrap()).collect();
        let (rowid, fields) =
            if table.without_rowid { (None, &values[..]) } else { (Some(values[0].as_i64().unwrap()), &values[1..]) };
        let (full, record) = (key_of(rowid, fields, None), key_of(rowid, fields, table.ipk));
        out.full.add(full);
        out.fields.add(key_of(None, fields, None));
        out.record.add(record);
        out.pairs.push((full, record));
    }
    Ok(out)
}

/// The rows of every user table of an undamaged database.
pub struct Contents {
    pub tables: Vec<Table>,
    pub rows: HashMap<String, TableRows>,
}

impl Contents {
    pub fn read(path: &Path, scratch: &Path) -> Contents {
        let conn = open_read_only(path, scratch);
        let tables = tables(&conn, "");
        let rows = tables.iter().map(|t| (t.name.clone(), read_rows(&conn, t).unwrap())).collect();
        Contents { tables, rows }
    }

    pub fn total(&self) -> usize {
        self.rows.values().map(|r| r.full.len()).sum()
    }
}

/// One page as dbstat sees it in the original.
#[derive(Clone, Debug)]
pub struct Page {
    pub tree: String,
    pub path: String,
    pub number: u32,
    pub kind: String,
    pub cells: u32,
}

/// The pages of an original, by dbstat (rusqlite's bundled SQLite has it), plus its header fields.
pub struct Map {
    pub pages: Vec<Page>,
    pub page_size: u32,
    pub page_count: u32,
    pub freelist_trunk: u32,
    pub auto_vacuum: bool,
}

impl Map {
    pub fn read(path: &Path, scratch: &Path) -> Map {
        let conn = open_read_only(path, scratch);
        let pages = conn
            .prepare("SELECT name, path, pageno, pagetype, ncell FROM dbstat ORDER BY pageno")
            .unwrap()
            .query_map([], |r| {
                Ok(Page { tree: r.get(0)?, path: r.get(1)?, number: r.get(2)?, kind: r.get(3)?, cells: r.get(4)? })
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let pragma = |name: &str| conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0)).unwrap();
        let header = std::fs::read(path).unwrap();
        Map {
            pages,
            page_size: pragma("page_size") as u32,
            page_count: pragma("page_count") as u32,
            freelist_trunk: u32::from_be_bytes(header[32..36].try_into().unwrap()),
            auto_vacuum: pragma("auto_vacuum") != 0,
        }
    }

    /// Pages of `kind` ("leaf", "internal", "overflow") in trees that `wanted` accepts.
    pub fn of(&self, kind: &str, wanted: impl Fn(&str) -> bool) -> Vec<&Page> {
        self.pages.iter().filter(|p| p.kind == kind && wanted(&p.tree)).collect()
    }

    /// The freelist leaf pages listed by the first trunk page.
    pub fn freelist_leaves(&self, file: &[u8]) -> Vec<u32> {
        if self.freelist_trunk == 0 {
            return Vec::new();
        }
        let trunk = &file[(self.freelist_trunk as usize - 1) * self.page_size as usize..];
        let count = u32::from_be_bytes(trunk[4..8].try_into().unwrap()) as usize;
        (0..count).map(|i| u32::from_be_bytes(trunk[8 + 4 * i..12 + 4 * i].try_into().unwrap())).collect()
    }
}

/// What is done to a copy of an original.
#[derive(Clone, Debug)]
pub enum Damage {
    /// Pages overwritten with zeros.
    Zero(Vec<u32>),
    /// Pages overwritten with seeded random bytes.
    Garbage(Vec<u32>, u64),
    /// Bytes `from..to` of page 1 (the header is 0..100, the schema b-tree's page header follows).
    Page1(usize, usize, u64),
    /// One byte set to a value.
    Byte(usize, u8),
    /// Nothing: the undamaged original.
    Nothing,
    /// The file cut to this many bytes.
    Truncate(u64),
    /// The -wal cut in the middle of its last frame.
    TornWal,
}

/// One damaged file of the corpus.
pub struct Case {
    pub name: String,
    pub original: Original,
    pub damage: Damage,
}

/// The damage done to copies of one original: pages of every kind its map has, picked by dbstat.
pub fn cases_of(original: &Original, map: &Map, contents: &Contents) -> Vec<Case> {
    let case = |name: &str, damage: Damage| Case {
        name: format!("{} {name}", original.name),
        original: original.clone(),
        damage,
    };
    if original.wal().exists() {
        return vec![case("wal intact", Damage::Nothing), case("wal torn last frame", Damage::TornWal)];
    }
    let user = |tree: &str| contents.tables.iter().any(|t| t.name == tree);
    let without_rowid = |tree: &str| contents.tables.iter().any(|t| t.name == tree && t.without_rowid);
    let index = |tree: &str| !user(tree) && !tree.starts_with("sqlite_schema") && tree != "sqlite_master";
    let schema = |tree: &str| tree == "sqlite_schema" || tree == "sqlite_master";
    let middle = |pages: Vec<&Page>| pages.get(pages.len() / 2).map(|p| p.number);
    let seed = original.name.len() as u64 * 1000;
    let mut cases = Vec::new();
    let mut add = |name: &str, page: Option<u32>, zero: bool| {
        if let Some(page) = page {
            let damage = if zero { Damage::Zero(vec![page]) } else { Damage::Garbage(vec![page], seed + page as u64) };
            cases.push(case(&format!("{name} p{page}"), damage));
        }
    };
    let leaves = map.of("leaf", |t| user(t) && !without_rowid(t));
    add("table leaf zeroed", leaves.get(leaves.len() / 3).map(|p| p.number), true);
    add("table leaf garbage", leaves.get(leaves.len() * 2 / 3).map(|p| p.number), false);
    add("table interior garbage", middle(map.of("internal", |t| user(t) && !without_rowid(t))), false);
    add("overflow zeroed", middle(map.of("overflow", user)), true);
    add("index leaf garbage", middle(map.of("leaf", index)), false);
    add("index interior zeroed", middle(map.of("internal", index)), true);
    add("without-rowid leaf garbage", middle(map.of("leaf", without_rowid)), false);
    add("without-rowid interior zeroed", middle(map.of("internal", without_rowid)), true);
    add("schema leaf zeroed", map.of("leaf", schema).iter().map(|p| p.number).find(|&n| n != 1), true);
    let file = std::fs::read(&original.path).unwrap();
    if map.freelist_trunk != 0 {
        add("freelist trunk zeroed", Some(map.freelist_trunk), true);
        add("freelist leaf garbage", map.freelist_leaves(&file).first().copied(), false);
    }
    if map.auto_vacuum {
        add("pointer-map garbage", Some(2), false);
    }
    let mut rng = Rng::new(seed + 7);
    let several: Vec<u32> = (0..4).map(|_| 2 + rng.below(map.page_count as u64 - 1) as u32).collect();
    cases.push(case(&format!("4 random pages garbage {several:?}"), Damage::Garbage(several, seed + 8)));
    let page_size = map.page_size as usize;
    cases.push(case("page 1 b-tree garbage", Damage::Page1(100, page_size.min(4096), seed + 9)));
    cases.push(case("header magic garbage", Damage::Page1(0, 16, seed + 10)));
    cases.push(case("header page count zeroed", Damage::Page1(28, 32, seed + 11)));
    cases.push(case("header reserved-space byte 226", Damage::Byte(20, 226)));
    let cut = (map.page_count as u64 * 7 / 10) * map.page_size as u64 + map.page_size as u64 / 2;
    cases.push(case("truncated at 70 %", Damage::Truncate(cut)));
    cases
}

/// Writes the damaged copy of `case` at `path` (and its -wal for WAL originals).
pub fn make_damaged(case: &Case, path: &Path) {
    copy_database(&case.original.path, path);
    let mut file = std::fs::read(path).unwrap();
    let page_size = page_size_of(&std::fs::read(&case.original.path).unwrap());
    let page = |n: u32| (n as usize - 1) * page_size..n as usize * page_size;
    match &case.damage {
        Damage::Zero(pages) => pages.iter().for_each(|&n| file[page(n)].fill(0)),
        Damage::Garbage(pages, seed) => {
            let mut rng = Rng::new(*seed);
            pages.iter().for_each(|&n| file[page(n)].copy_from_slice(&rng.bytes(page_size)));
        }
        Damage::Page1(from, to, seed) => file[*from..*to].copy_from_slice(&Rng::new(*seed).bytes(to - from)),
        Damage::Truncate(len) => file.truncate(*len as usize),
        Damage::Byte(offset, value) => file[*offset] = *value,
        Damage::Nothing => {}
        Damage::TornWal => {
            let wal = sidecar(path, "-wal");
            let len = std::fs::metadata(&wal).unwrap().len();
            let frame = 24 + page_size as u64;
            assert!(len > 32 + frame, "{}: no frames to tear", case.name);
            std::fs::OpenOptions::new().write(true).open(&wal).unwrap().set_len(len - frame / 2).unwrap();
        }
    }
    std::fs::write(path, file).unwrap();
}

pub fn page_size_of(header: &[u8]) -> usize {
    match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536,
        n => n as usize,
    }
}

/// The pages a damage destroys (zeroed, overwritten or cut off), by page number.
pub fn damaged_pages(damage: &Damage, map: &Map) -> BTreeSet<u32> {
    match damage {
        Damage::Zero(pages) | Damage::Garbage(pages, _) => pages.iter().copied().collect(),
        Damage::Truncate(len) => ((*len / map.page_size as u64) as u32 + 1..=map.page_count).collect(),
        Damage::Page1(..) | Damage::Byte(..) | Damage::TornWal | Damage::Nothing => BTreeSet::new(),
    }
}

/// Rows a perfect salvage cannot get back: every cell of a destroyed table leaf page (and, in a WITHOUT ROWID
/// table, of a destroyed interior page: its cells are rows too), and one row per destroyed overflow chain
/// whose own page survived. Index pages hold no rows of their own.
pub fn rows_physically_lost(map: &Map, damaged: &BTreeSet<u32>, contents: &Contents) -> usize {
    let table = |tree: &str| contents.tables.iter().find(|t| t.name == tree);
    let destroyed_paths: BTreeSet<(&str, &str)> =
        map.pages.iter().filter(|p| damaged.contains(&p.number)).map(|p| (p.tree.as_str(), p.path.as_str())).collect();
    let mut lost = 0;
    let mut chains = BTreeSet::new();
    for page in map.pages.iter().filter(|p| damaged.contains(&p.number)) {
        let Some(table) = table(&page.tree) else { continue };
        match page.kind.as_str() {
            "leaf" => lost += page.cells as usize,
            "internal" if table.without_rowid => lost += page.cells as usize,
            "overflow" => {
                let cell = page.path.split('+').next().unwrap();
                let owner = &cell[..=cell.rfind('/').unwrap()];
                if !destroyed_paths.contains(&(page.tree.as_str(), owner)) {
                    chains.insert((page.tree.clone(), cell.to_string()));
                }
            }
            _ => {}
        }
    }
    lost + chains.len()
}

/// Whether a leaf or interior page of a user table's b-tree was destroyed: a salvage must notice that.
pub fn table_pages_hit(map: &Map, damaged: &BTreeSet<u32>, contents: &Contents) -> bool {
    map.pages
        .iter()
        .filter(|p| damaged.contains(&p.number) && (p.kind == "leaf" || p.kind == "internal"))
        .any(|p| contents.tables.iter().any(|t| t.name == p.tree))
}

/// Destroyed overflow pages of user tables: each may leave one altered row behind.
pub fn overflow_hits(map: &Map, damaged: &BTreeSet<u32>, contents: &Contents) -> usize {
    map.pages
        .iter()
        .filter(|p| damaged.contains(&p.number) && p.kind == "overflow")
        .filter(|p| contents.tables.iter().any(|t| t.name == p.tree))
        .count()
}

/// How a salvage's output compares with the original.
#[derive(Debug, Default, Clone)]
pub struct Verdict {
    /// Rows of user tables found in the original.
    pub matched: usize,
    /// lost_and_found rows that are intact rows of the original not already recovered in their table.
    pub matched_in_lost_and_found: usize,
    /// Rows of user tables that are not in the original.
    pub foreign: Vec<String>,
    pub integrity: String,
    /// count(*) of each table of the output.
    pub counts: HashMap<String, usize>,
}

/// Reads a salvage's output: integrity, every user table's rows against `original`, lost_and_found.
pub fn judge(out: &Path, original: &Contents, lost_and_found: &str) -> Verdict {
    let conn = Connection::open_with_flags(out, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let integrity: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut verdict = Verdict { integrity: integrity.join("; "), ..Verdict::default() };
    let mut left: HashMap<String, TableRows> = original.rows.clone();
    for table in tables(&conn, lost_and_found) {
        let shape = original.tables.iter().find(|t| t.name == table.name).unwrap_or(&table);
        let rows = read_rows(&conn, shape).unwrap_or_else(|e| panic!("{}: table {}: {e}", out.display(), table.name));
        verdict.counts.insert(table.name.clone(), rows.full.len());
        let mut remaining = left.remove(&table.name).unwrap_or_default();
        for &(full, record) in &rows.pairs {
            if remaining.full.take(full) {
                remaining.record.take(record);
                verdict.matched += 1;
            } else {
                verdict.foreign.push(format!("{}: row hash {full:016x}", table.name));
            }
        }
        left.insert(table.name.clone(), remaining);
    }
    let (found, count) = lost_and_found_matches(&conn, lost_and_found, original, &mut left);
    verdict.matched_in_lost_and_found = found;
    if let Some(count) = count {
        verdict.counts.insert(lost_and_found.to_string(), count);
    }
    verdict
}

/// lost_and_found rows `(reason, tree, root_page, page, cell, rowid, fields, c0, …)` that are intact rows of
/// the original, matched as their record stores them, taken out of `left` (the rows not recovered yet).
fn lost_and_found_matches(
    conn: &Connection,
    name: &str,
    original: &Contents,
    left: &mut HashMap<String, TableRows>,
) -> (usize, Option<usize>) {
    let Ok(mut stmt) = conn.prepare(&format!("SELECT * FROM {}", quoted(name))) else { return (0, None) };
    let columns = stmt.column_count();
    let mut cursor = stmt.query([]).unwrap();
    let (mut found, mut count) = (0, 0);
    while let Some(row) = cursor.next().unwrap() {
        count += 1;
        let values: Vec<ValueRef> = (0..columns).map(|i| row.get_ref(i).unwrap()).collect();
        let tree = values[1].as_str().ok().map(String::from);
        let rowid = values[5].as_i64().ok();
        let fields = values[6].as_i64().unwrap_or(0).clamp(0, (columns - 7) as i64) as usize;
        let cells = &values[7..7 + fields];
        for table in &original.tables {
            if tree.as_deref().is_some_and(|t| t != table.name) {
                continue;
            }
            let key = key_of(if table.without_rowid { None } else { rowid }, cells, None);
            if left.get_mut(&table.name).is_some_and(|rows| rows.record.take(key)) {
                found += 1;
                break;
            }
        }
    }
    (found, Some(count))
}

/// Rows `.dump` of the system sqlite3 shell gets out of a damaged file: its script with the final ROLLBACK
/// turned into COMMIT, loaded into a fresh database, counted where they exist in the original (by column
/// values: `.dump` renumbers rowids of tables without an INTEGER PRIMARY KEY).
pub fn dump_rows(damaged: &Path, original: &Contents, scratch: &Path) -> usize {
    let copy = scratch.join("dump-source.db");
    copy_database(damaged, &copy);
    let dump = Command::new("sqlite3").arg(&copy).arg(".dump").output().expect("the sqlite3 shell");
    let script = String::from_utf8_lossy(&dump.stdout);
    let script = match script.rfind("ROLLBACK; -- due to errors") {
        Some(at) => format!("{}COMMIT;\n", &script[..at]),
        None => script.into_owned(),
    };
    let fresh = scratch.join("dump-loaded.db");
    remove_database(&fresh);
    let mut load = Command::new("sqlite3")
        .arg(&fresh)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    load.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    load.wait().unwrap();
    let conn = Connection::open_with_flags(&fresh, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut matched = 0;
    for table in &original.tables {
        let Ok(rows) = read_rows(&conn, table) else { continue };
        let mut remaining = original.rows[&table.name].fields.clone();
        for (&key, &n) in &rows.fields.0 {
            matched += (0..n).filter(|_| remaining.take(key)).count();
        }
    }
    matched
}
