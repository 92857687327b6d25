//! The new database a salvage builds: the schema from the damaged file's sqlite_schema, every recovered row
//! inserted through SQLite (so indexes and constraints are SQLite's own), and a lost-and-found table for what
//! could not go back where it came from. Written through the host's SQLite, in a file vigil created.

use std::collections::HashMap;
use std::path::Path;

use super::cells::Entry;
use super::schema::SchemaEntry;
use crate::error::{Context as _, Error, Result};
use crate::format::header::DatabaseHeader;
use crate::sqlite::{open_flags, Db, OwnedDb, Statement, Value};
use crate::store::quote;

/// A row that could not be put back in its table, and why.
#[derive(Debug, Clone)]
pub struct LostRow {
    pub reason: String,
    pub tree: Option<String>,
    pub root: Option<u32>,
    pub entry: Entry,
}

/// Where a table's rows go: the columns its records hold, in record order.
struct Target {
    name: String,
    /// Record position → column name, or `None` for a stored generated column (in the record, not insertable).
    columns: Vec<Option<String>>,
    /// The INTEGER PRIMARY KEY column (stored as NULL in the record: its value is the rowid).
    rowid_column: Option<usize>,
    /// How the INSERT names the rowid, for rowid tables without an INTEGER PRIMARY KEY.
    rowid_alias: Option<&'static str>,
    /// INSERTs by record length (records written before an ADD COLUMN are shorter).
    inserts: HashMap<usize, Statement<'static>>,
}

pub struct Rebuild {
    db: OwnedDb,
    /// The damaged file is attached as `vigil_source` (see `copy_table`).
    attached: bool,
    targets: HashMap<String, Target>,
    /// Rows inserted, by table.
    recovered: HashMap<String, u64>,
    /// Indexes created so far.
    indexes: std::collections::HashSet<String>,
    /// Tables copied with their indexes: integrity_check compares them.
    verify: Vec<String>,
    pub lost: Vec<LostRow>,
    pub notes: Vec<String>,
}

fn is_unique_index(entry: &SchemaEntry) -> bool {
    let sql = entry.sql.as_deref().unwrap_or("").to_ascii_lowercase();
    sql.split_whitespace().take(2).collect::<Vec<_>>() == ["create", "unique"]
}

impl Rebuild {
    /// Opens the new, empty file at `path` with the source's page size, encoding, auto_vacuum and header values.
    /// `source`: the damaged file, when SQLite may read its intact tables itself (no WAL or journal to apply:
    /// it is opened immutable, read-only, without locks).
    pub fn create(path: &str, header: &DatabaseHeader, source: Option<&Path>, caller: Option<Db>) -> Result<Rebuild> {
        let db = OwnedDb::open(path, open_flags::READ_WRITE | open_flags::CREATE | open_flags::URI, None)?;
        if let Some(caller) = caller {
            db.db().stop_when_interrupted(caller);
        }
        let auto_vacuum = match (header.largest_root, header.incremental_vacuum) {
            (0, _) => 0,
            (_, false) => 1,
            (_, true) => 2,
        };
        db.db().exec(&format!(
            "PRAGMA main.page_size = {}; PRAGMA encoding = '{}'; PRAGMA main.auto_vacuum = {auto_vacuum};
             PRAGMA main.journal_mode = MEMORY; PRAGMA main.synchronous = OFF; PRAGMA foreign_keys = OFF;
             PRAGMA main.locking_mode = EXCLUSIVE; PRAGMA main.cache_size = -131072;
             PRAGMA main.user_version = {}; PRAGMA main.application_id = {};",
            header.page_size,
            header.encoding.pragma_name(),
            header.user_version as i32,
            header.application_id as i32,
        ))?;
        // Attached after the PRAGMAs (a journal_mode or locking_mode would try to apply to it) and before BEGIN
        // (no ATTACH inside a transaction).
        let attached = source.is_some_and(|source| {
            let uri = crate::sqlite::file_uri(source, "mode=ro&immutable=1");
            db.db().query("ATTACH ?1 AS vigil_source", &[Value::from(uri)]).is_ok()
        });
        db.db().exec("BEGIN")?;
        Ok(Rebuild {
            db,
            attached,
            targets: HashMap::new(),
            recovered: HashMap::new(),
            indexes: Default::default(),
            verify: Vec::new(),
            lost: Vec::new(),
            notes: Vec::new(),
        })
    }

    fn db(&self) -> Db {
        self.db.db()
    }

    /// Creates the tables (and their UNIQUE indexes, so that duplicates are refused row by row) of `schema`.
    pub fn create_tables(&mut self, schema: &[SchemaEntry]) {
        let tables = schema.iter().filter(|e| e.is_table() && !e.is_virtual() && !e.name.starts_with("sqlite_"));
        for entry in tables {
            if let Err(e) = self.run_schema_sql(entry) {
                self.notes
                    .push(format!("table {} could not be created ({e}): its rows go to lost_and_found", entry.name));
            }
        }
        if schema.iter().any(|e| e.name.eq_ignore_ascii_case("sqlite_stat1"))
            && self.db().exec("ANALYZE sqlite_schema").is_err()
        {
            self.notes.push("sqlite_stat1 could not be created: run ANALYZE on the new database".into());
        }
        for entry in schema.iter().filter(|e| e.is_table() && !e.is_virtual()) {
            match self.target(entry) {
                Ok(target) => {
                    self.targets.insert(entry.name.clone(), target);
                }
                Err(e) if entry.name.starts_with("sqlite_") => {
                    self.notes.push(format!("{}: {e}; its rows go to lost_and_found", entry.name))
                }
                Err(_) => {}
            }
        }
    }

    fn create_index(&mut self, entry: &SchemaEntry) {
        if self.indexes.insert(entry.name.to_ascii_lowercase()) {
            self.create_object(entry);
        }
    }

    fn create_object(&mut self, entry: &SchemaEntry) {
        if entry.sql.is_none() {
            return;
        }
        if let Err(e) = self.run_schema_sql(entry) {
            self.notes.push(format!("{} {} could not be created: {e}", entry.kind, entry.name));
        }
    }

    /// Runs a schema entry's SQL, which comes from the damaged (and possibly hostile) file: only when it is one
    /// CREATE statement of the entry's kind. Anything else (a second statement, an ATTACH, a PRAGMA) is refused.
    fn run_schema_sql(&self, entry: &SchemaEntry) -> Result<()> {
        let sql = entry.sql.as_deref().unwrap_or("");
        schema_sql_of_kind(entry, sql)?;
        if !self.db().is_single_statement(sql)? {
            return Err(Error::new("its stored SQL is not a single statement: refused"));
        }
        self.db().exec(sql)
    }

    /// Learns, from the new database's own view of the table, which column each record value belongs to.
    fn target(&self, entry: &SchemaEntry) -> Result<Target> {
        let db = self.db();
        let info = db.query(
            "SELECT name, hidden, pk, upper(type) FROM pragma_table_xinfo(?1) ORDER BY cid",
            &[Value::from(entry.name.as_str())],
        )?;
        if info.is_empty() {
            return Err(Error::new("the table does not exist in the new database"));
        }
        let stored = |row: &Vec<Value>| !matches!(row[1].as_i64(), Some(1) | Some(2));
        let name_of = |row: &Vec<Value>| {
            let name = row[0].as_str().unwrap_or("").to_string();
            (row[1].as_i64() == Some(0)).then_some(name)
        };
        let mut columns: Vec<Option<String>> = info.iter().filter(|r| stored(r)).map(name_of).collect();
        let mut rowid_column = None;
        let mut rowid_alias = None;
        if entry.without_rowid() {
            let order = db.query(
                "SELECT x.name FROM pragma_index_list(?1) AS l, pragma_index_xinfo(l.name) AS x
                 WHERE l.origin = 'pk' AND x.cid >= 0 ORDER BY x.seqno",
                &[Value::from(entry.name.as_str())],
            )?;
            let by_name: HashMap<String, Option<String>> = info
                .iter()
                .filter(|r| stored(r))
                .map(|r| (r[0].as_str().unwrap_or("").to_string(), name_of(r)))
                .collect();
            columns = order.iter().filter_map(|r| by_name.get(r[0].as_str().unwrap_or("")).cloned()).collect();
        } else {
            let keys: Vec<usize> = (0..info.len()).filter(|&i| info[i][2].as_i64().unwrap_or(0) > 0).collect();
            if let [key] = keys[..] {
                if info[key][3].as_str() == Some("INTEGER") {
                    rowid_column = info.iter().take(key).filter(|r| stored(r)).count().into();
                }
            }
            if rowid_column.is_none() {
                let taken =
                    |alias: &str| info.iter().any(|r| r[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(alias)));
                rowid_alias = ["rowid", "_rowid_", "oid"].into_iter().find(|a| !taken(a));
            }
        }
        Ok(Target { name: entry.name.clone(), columns, rowid_column, rowid_alias, inserts: HashMap::new() })
    }

    /// Inserts a recovered row into its table; a row SQLite refuses (a constraint) goes to lost_and_found.
    pub fn insert(&mut self, table: &str, root: u32, entry: Entry) {
        let db = self.db();
        let Some(target) = self.targets.get_mut(table) else {
            return self.lose("no table to put it in", table, root, entry);
        };
        let fields = entry.values.len();
        if fields > target.columns.len() || fields == 0 {
            let reason = format!("the record has {fields} values, the table {} columns", target.columns.len());
            return self.lose(&reason, table, root, entry);
        }
        match target.run(db, &entry) {
            Ok(()) => *self.recovered.entry(table.to_string()).or_default() += 1,
            Err(e) => {
                let reason = format!("refused by the table: {}", crate::error::cut(e.message()));
                self.lose(&reason, table, root, entry)
            }
        }
    }

    /// Before a table's rows are inserted one by one: its UNIQUE indexes, so that a duplicate is refused row by
    /// row (and kept in lost_and_found) instead of failing the index afterwards.
    pub fn prepare_rows(&mut self, schema: &[SchemaEntry], table: &str) {
        for index in schema.iter().filter(|e| e.kind == "index" && e.table == table && is_unique_index(e)) {
            self.create_index(index);
        }
    }

    /// Rows inserted into AUTOINCREMENT tables have made SQLite write its own sqlite_sequence rows: the
    /// source's, recovered last, replace them.
    pub fn prepare_sequence(&mut self) {
        if self.targets.contains_key("sqlite_sequence") {
            let _ = self.db().exec("DELETE FROM sqlite_sequence");
        }
    }

    /// Copies a table that the survey found whole (every page, cell, record and overflow chain sound) with
    /// SQLite's own INSERT … SELECT, which moves records without decoding them. `entries`: how many the survey
    /// counted; any difference, or any error, undoes the copy and the caller reads the table itself.
    pub fn copy_table(&mut self, schema: &[SchemaEntry], table: &str, entries: u64) -> bool {
        if !self.attached || !self.targets.contains_key(table) {
            return false;
        }
        // With the same indexes on both sides SQLite copies the table's records and its index b-trees as they are
        // (keeping rowids; without them it would renumber the rows of a table without INTEGER PRIMARY KEY). A
        // copied index could carry damage no page check sees (a changed byte in a key): the final check compares
        // every copied table with its indexes (integrity_check).
        let indexes: Vec<SchemaEntry> =
            schema.iter().filter(|e| e.kind == "index" && e.sql.is_some() && e.table == table).cloned().collect();
        for index in &indexes {
            self.create_index(index);
        }
        if schema.iter().any(|e| e.kind == "index" && e.table == table) {
            self.verify.push(table.to_string());
        }
        let db = self.db();
        let q = quote(table);
        let copied = db.in_savepoint("vigil_copy", || {
            db.exec(&format!("INSERT INTO main.{q} SELECT * FROM vigil_source.{q}"))?;
            match db.changes() as u64 {
                n if n == entries => Ok(n),
                n => Err(Error::new(format!("{n} rows copied, {entries} counted"))),
            }
        });
        match copied {
            Ok(n) => {
                self.recovered.insert(table.to_string(), n);
                true
            }
            Err(_) => {
                // SQLite met damage the survey did not see: no more copies from that file.
                self.attached = false;
                false
            }
        }
    }

    pub fn lose(&mut self, reason: &str, tree: &str, root: u32, entry: Entry) {
        self.lost.push(LostRow { reason: reason.to_string(), tree: Some(tree.to_string()), root: Some(root), entry });
    }

    /// A row of a page no table could be given.
    pub fn lose_orphan(&mut self, reason: &str, entry: Entry) {
        self.lost.push(LostRow { reason: reason.to_string(), tree: None, root: None, entry });
    }

    pub fn recovered(&self, table: &str) -> u64 {
        self.recovered.get(table).copied().unwrap_or(0)
    }

    /// The record position of a rowid table's INTEGER PRIMARY KEY (always NULL in its records).
    pub fn rowid_column(&self, table: &str) -> Option<usize> {
        self.targets.get(table).and_then(|t| t.rowid_column)
    }

    pub fn columns(&self, table: &str) -> Option<usize> {
        self.targets.get(table).map(|t| t.columns.len())
    }

    /// Creates the other indexes (SQLite builds them from the recovered rows), views, triggers and virtual
    /// tables, and lost_and_found; commits.
    pub fn finish(&mut self, schema: &[SchemaEntry], lost_table: &str) -> Result<u64> {
        self.targets.clear();
        for entry in schema.iter().filter(|e| e.kind == "index") {
            self.create_index(entry);
        }
        for kind in ["view", "trigger"] {
            for entry in schema.iter().filter(|e| e.kind == kind) {
                self.create_object(entry);
            }
        }
        self.create_virtual_tables(schema);
        let lost = self.write_lost(lost_table)?;
        self.db().exec("COMMIT").context("cannot commit the new database")?;
        // Detached even after a failed copy stopped using it.
        let _ = self.db().exec("DETACH vigil_source");
        self.attached = false;
        Ok(lost)
    }

    /// Virtual tables are entered into the schema as `.dump` does: their modules may not exist here, and their
    /// shadow tables, recovered as ordinary tables, already hold their data.
    fn create_virtual_tables(&mut self, schema: &[SchemaEntry]) {
        let virtual_tables: Vec<&SchemaEntry> = schema.iter().filter(|e| e.is_virtual()).collect();
        if virtual_tables.is_empty() {
            return;
        }
        let db = self.db();
        let _ = db.exec("PRAGMA writable_schema = ON");
        for entry in virtual_tables {
            if let Err(e) = schema_sql_of_kind(entry, entry.sql.as_deref().unwrap_or("")) {
                self.notes.push(format!("virtual table {} could not be entered: {e}", entry.name));
                continue;
            }
            let params = [
                Value::from(entry.name.as_str()),
                Value::from(entry.table.as_str()),
                Value::from(entry.sql.as_deref().unwrap_or("")),
            ];
            if let Err(e) = db.query("INSERT INTO sqlite_schema VALUES('table', ?1, ?2, 0, ?3)", &params) {
                self.notes.push(format!("virtual table {} could not be entered: {e}", entry.name));
            }
        }
        let _ = db.exec("PRAGMA writable_schema = OFF");
    }

    /// Writes the lost rows (when there are any) into a table of that name; returns how many.
    fn write_lost(&mut self, name: &str) -> Result<u64> {
        if self.lost.is_empty() {
            return Ok(0);
        }
        let width = self.lost.iter().map(|l| l.entry.values.len()).max().unwrap_or(0);
        let values: String = (0..width).map(|i| format!(", c{i}")).collect();
        self.db().exec(&format!(
            "CREATE TABLE {}(reason TEXT, tree TEXT, root_page INTEGER, page INTEGER, cell INTEGER, rowid INTEGER, \
             fields INTEGER{values})",
            quote(name)
        ))?;
        let marks: String = (0..7 + width).map(|i| if i == 0 { "?".to_string() } else { ",?".to_string() }).collect();
        let db = self.db();
        let mut stmt = db.prepare(&format!("INSERT INTO {} VALUES({marks})", quote(name)))?;
        for lost in &self.lost {
            let mut row = vec![
                Value::from(lost.reason.as_str()),
                lost.tree.as_deref().map_or(Value::Null, Value::from),
                lost.root.map_or(Value::Null, |r| Value::Integer(r.into())),
                Value::Integer(lost.entry.page.into()),
                Value::Integer(lost.entry.cell as i64),
                lost.entry.rowid.map_or(Value::Null, Value::Integer),
                Value::Integer(lost.entry.values.len() as i64),
            ];
            row.extend(lost.entry.values.iter().cloned());
            row.resize(7 + width, Value::Null);
            stmt.run(&row)?;
        }
        Ok(self.lost.len() as u64)
    }

    /// The check the finished file gets: integrity_check (b-trees, and every index against its table) when SQLite
    /// copied tables with their indexes; quick_check (b-trees) when SQLite built every b-tree from inserted rows.
    pub fn check_pragma(&self) -> &'static str {
        if self.verify.is_empty() {
            "quick_check"
        } else {
            "integrity_check"
        }
    }

    /// SQLite's own check of the finished file, that every table holds the rows inserted into it, and the
    /// journal mode the source used.
    pub fn check(&self, wal: bool) -> Result<()> {
        let pragma = self.check_pragma();
        let problems = self.db().query(&format!("PRAGMA main.{pragma}"), &[])?;
        let first = problems.first().and_then(|r| r[0].as_str()).unwrap_or("");
        if first != "ok" {
            return Err(Error::new(format!("the new database fails {pragma}: {}", crate::error::cut(first))));
        }
        for (table, inserted) in &self.recovered {
            let count = self.db().query_value(&format!("SELECT count(*) FROM {}", quote(table)), &[])?;
            let count = count.as_i64().unwrap_or(-1);
            if count != *inserted as i64 {
                return Err(Error::new(format!(
                    "the new database's table {table} holds {count} rows, {inserted} were inserted"
                )));
            }
        }
        if wal {
            self.db().exec("PRAGMA main.journal_mode = WAL")?;
        }
        Ok(())
    }

    /// Closes the new database (its file is complete on disk once the caller fsyncs it).
    pub fn close(self) {
        drop(self.targets);
        drop(self.db);
    }
}

impl Target {
    /// Inserts one record's values.
    fn run(&mut self, db: Db, entry: &Entry) -> Result<()> {
        self.prepare(db, entry.values.len())?;
        let Target { inserts, columns, rowid_column, rowid_alias, .. } = self;
        let stmt = inserts.get_mut(&entry.values.len()).expect("prepared above");
        let bound = bind_row(stmt, columns, *rowid_column, rowid_alias.is_some(), entry);
        let done = bound.and_then(|_| stmt.step());
        stmt.reset();
        done.map(|_| ())
    }

    fn prepare(&mut self, db: Db, fields: usize) -> Result<()> {
        if !self.inserts.contains_key(&fields) {
            let mut names: Vec<String> = Vec::new();
            if let Some(alias) = self.rowid_alias {
                names.push(alias.to_string());
            }
            names.extend(self.columns[..fields].iter().flatten().map(|n| quote(n)));
            let marks = vec!["?"; names.len()].join(",");
            let sql = format!("INSERT INTO {}({}) VALUES({marks})", quote(&self.name), names.join(","));
            let stmt = db.prepare_for_cursor(&sql)?;
            self.inserts.insert(fields, stmt);
        }
        Ok(())
    }
}

/// Whether a schema entry's SQL starts as a CREATE statement of the entry's kind does.
fn schema_sql_of_kind(entry: &SchemaEntry, sql: &str) -> Result<()> {
    let lower = sql.trim_start().to_ascii_lowercase();
    let words: Vec<&str> =
        lower.split(|c: char| c.is_whitespace() || c == '(' || c == '"').filter(|w| !w.is_empty()).take(3).collect();
    let fits = match (entry.kind.as_str(), &words[..]) {
        ("table", ["create", "virtual", "table"]) => entry.is_virtual(),
        ("table", ["create", "table", ..]) => !entry.is_virtual(),
        ("index", ["create", "index", ..]) | ("index", ["create", "unique", "index"]) => true,
        ("view", ["create", "view", ..]) => true,
        ("trigger", ["create", "trigger", ..]) => true,
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(Error::new(format!("its stored SQL is not a CREATE {} statement: refused", entry.kind.to_uppercase())))
    }
}

/// Binds a record's values to an INSERT built by `Target::statement`.
fn bind_row(
    stmt: &mut Statement<'_>,
    columns: &[Option<String>],
    rowid_column: Option<usize>,
    named_rowid: bool,
    entry: &Entry,
) -> Result<()> {
    let mut slot = 1;
    if named_rowid {
        stmt.bind(slot, &entry.rowid.map_or(Value::Null, Value::Integer))?;
        slot += 1;
    }
    for (i, value) in entry.values.iter().enumerate() {
        if columns[i].is_none() {
            continue;
        }
        match (rowid_column == Some(i), value, entry.rowid) {
            (true, Value::Null, Some(rowid)) => stmt.bind(slot, &Value::Integer(rowid))?,
            _ => stmt.bind(slot, value)?,
        }
        slot += 1;
    }
    Ok(())
}
