//! Scans: they read every page, so they run only on request. Integrity (quick_check, or integrity_check
//! plus foreign_key_check) and b-tree layout from dbstat, with sqlite3_analyzer's definitions.

use std::collections::BTreeMap;

use super::checks::{percent, quote, Facts, SchemaObject};
use super::options::{FragmentationMethod, Integrity, Options};
use super::{Check, Status};
use crate::error::{Context as _, Error, Result};
use crate::format::pages::{pin, Pinned, SnapshotPages, MMAP_SIZE};
use crate::format::usage::{measure, TreeUsage};
use crate::sqlite::{open_flags, Db, OwnedDb, Value};

/// Runs the requested integrity scan. A database too damaged to scan yields a critical row, not an error.
pub fn integrity(db: Db, options: &Options) -> Result<Vec<Check>> {
    let q = quote(&options.schema);
    let (mode, pragma) = match options.integrity {
        Integrity::Quick => ("quick", "quick_check"),
        _ => ("full", "integrity_check"),
    };
    let sql = format!("PRAGMA {q}.{pragma}({})", options.max_errors);
    let row = match problems(db, &sql) {
        Ok(errors) => integrity_row(mode, &errors, options),
        Err(e) => Check::new("integrity", Value::Null, "errors")
            .status(Status::Critical)
            .detail(format!("{mode} check could not start: {e}")),
    };
    let mut rows = vec![row];
    if options.integrity == Integrity::Full {
        rows.push(foreign_keys(db, &q, options));
    }
    Ok(rows)
}

/// The problems an integrity pragma reports. SQLite may report some rows and then fail on a page it
/// cannot read: that failure is one more problem, not a reason to lose the rows before it.
pub(crate) fn problems(db: Db, sql: &str) -> Result<Vec<String>> {
    let mut stmt = db.prepare(sql)?;
    let mut found = Vec::new();
    loop {
        match stmt.step() {
            Ok(true) => match stmt.column(0) {
                Value::Text(text) if text == "ok" => {}
                Value::Text(text) => found.push(text),
                other => found.push(crate::error::describe(&other)),
            },
            Ok(false) => return Ok(found),
            Err(e) => {
                found.push(format!("the check stopped: {e}"));
                return Ok(found);
            }
        }
    }
}

fn integrity_row(mode: &str, errors: &[String], options: &Options) -> Check {
    let count = errors.len() as i64;
    let detail = if errors.is_empty() {
        format!("{mode} check: ok")
    } else {
        let capped = if count >= options.max_errors { " (stopped at max_errors)" } else { "" };
        format!("{mode} check found {count} problem(s){capped}: {}", errors.join("; "))
    };
    Check::new("integrity", count, "errors").detail(detail).graded(options)
}

fn foreign_keys(db: Db, q: &str, options: &Options) -> Check {
    let rows = match db.query(&format!("PRAGMA {q}.foreign_key_check"), &[]) {
        Ok(rows) => rows,
        Err(e) => {
            return Check::new("foreign_keys", Value::Null, "violations")
                .status(Status::Critical)
                .detail(format!("foreign_key_check could not complete: {e}"))
        }
    };
    let shown: Vec<String> = rows
        .iter()
        .take(options.max_errors as usize)
        .map(|r| {
            let text = |i: usize| match &r[i] {
                Value::Text(t) => t.clone(),
                Value::Integer(n) => n.to_string(),
                _ => "NULL".into(),
            };
            format!("{} rowid {} → {}", text(0), text(1), text(2))
        })
        .collect();
    let detail = if rows.is_empty() {
        "foreign_key_check: no violations".to_string()
    } else {
        format!("rows whose parent is missing: {}", shown.join("; "))
    };
    Check::new("foreign_keys", rows.len() as i64, "violations").detail(detail).graded(options)
}

/// Page usage of one b-tree, named.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Btree {
    pub name: String,
    pub usage: TreeUsage,
}

impl Btree {
    pub fn pages(&self) -> i64 {
        self.usage.pages()
    }

    /// Non-sequential pages: gaps / (pages − 1), as sqlite3_analyzer reports it.
    pub fn nonsequential_pct(&self) -> f64 {
        percent(self.usage.gaps as f64, (self.pages() - 1).max(0) as f64)
    }
}

/// Whether the host has the dbstat virtual table.
pub fn has_dbstat(db: Db) -> bool {
    db.prepare("SELECT 1 FROM dbstat WHERE 0").is_ok()
}

/// One pass over dbstat: every b-tree of the schema, by name.
fn dbstat_btrees(db: Db, schema: &str) -> Result<Vec<Btree>> {
    let mut stmt = db
        .prepare("SELECT name, pageno, pagetype, ncell, payload, unused, pgsize FROM dbstat(?1)")
        .context("cannot read dbstat")?;
    stmt.bind(1, &Value::from(schema))?;
    let mut btrees: BTreeMap<String, (TreeUsage, Vec<(u32, bool)>)> = BTreeMap::new();
    while stmt.step().context("dbstat scan failed")? {
        let name = match stmt.column(0) {
            Value::Text(name) => name,
            _ => continue,
        };
        let int = |i| stmt.column(i).as_i64().unwrap_or(0);
        let kind = stmt.column(2);
        let (btree, pages) = btrees.entry(name).or_default();
        let (cells, page) = (int(3), int(1));
        match kind.as_str() {
            Some("leaf") => {
                btree.leaf_pages += 1;
                btree.leaf_cells += cells;
            }
            Some("internal") => {
                btree.internal_pages += 1;
                btree.internal_cells += cells;
            }
            _ => btree.overflow_pages += 1,
        }
        btree.payload += int(4);
        btree.unused += int(5);
        btree.bytes += int(6);
        pages.push((page as u32, kind.as_str() == Some("leaf")));
    }
    Ok(btrees
        .into_iter()
        .map(|(name, (mut usage, mut pages))| {
            usage.count_gaps(&mut pages);
            Btree { name, usage }
        })
        .collect())
}

/// How long the page reader's own connection waits for a rollback-journal writer to finish committing.
const PAGE_READER_BUSY_MS: i32 = 5000;

/// Why vigil's page reader cannot read `schema` of the caller's connection, or `None` when it can: it reads a
/// database file on the unix VFS through a read-only connection of its own, so it sees only committed state.
fn page_reader_refusal(db: Db, schema: &str) -> Result<Option<String>> {
    if db.filename(schema)?.is_none() {
        return Ok(Some(format!("{} is an in-memory or temporary database", quote(schema))));
    }
    match db.vfs_name(schema)? {
        Some(vfs) if vfs.starts_with("unix") => {}
        vfs => return Ok(Some(format!("{} is served by the VFS {vfs:?}, not the unix VFS", quote(schema)))),
    }
    if !db.is_autocommit() {
        return Ok(Some(
            "the calling connection has an open transaction, whose changes only dbstat on that connection sees"
                .to_string(),
        ));
    }
    Ok(None)
}

/// Every b-tree of `schema`, measured by vigil's page reader in one read snapshot of a connection of its own.
fn page_btrees(db: Db, schema: &str) -> Result<Vec<Btree>> {
    let path = db.filename(schema)?.ok_or_else(|| Error::new("the database has no file"))?;
    let connection = OwnedDb::open(&path, open_flags::READ_ONLY, db.vfs_name(schema)?.as_deref())?;
    let own = connection.db();
    own.set_busy_timeout(PAGE_READER_BUSY_MS)?;
    // Pages are read straight from the file's memory map where the VFS maps it.
    own.exec(MMAP_SIZE)?;
    let pinned = pin(own)?;
    let measured = snapshot_btrees(own, &pinned);
    let _ = own.exec("COMMIT");
    measured
}

/// The b-trees dbstat lists (sqlite_schema on page 1, then every schema entry with a root page), measured in
/// the snapshot pinned on `db`.
fn snapshot_btrees(db: Db, pinned: &Pinned) -> Result<Vec<Btree>> {
    if pinned.page_count == 0 {
        return Ok(Vec::new()); // an empty file: not even sqlite_schema has a page yet (dbstat lists nothing)
    }
    let mut names = vec!["sqlite_schema".to_string()];
    let mut roots = vec![1u32];
    for row in db.query("SELECT name, rootpage FROM sqlite_schema WHERE rootpage != 0", &[])? {
        let root = row[1].as_i64().and_then(|r| u32::try_from(r).ok());
        let root = root.ok_or_else(|| Error::new(format!("sqlite_schema: bad rootpage {:?}", row[1])))?;
        names.push(row[0].as_str().unwrap_or_default().to_string());
        roots.push(root);
    }
    let mut pages = SnapshotPages::new(&db, pinned)?;
    let usage = measure(&mut pages, &roots).map_err(Error::new)?;
    let mut btrees: Vec<Btree> = names.into_iter().zip(usage).map(|(name, usage)| Btree { name, usage }).collect();
    btrees.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(btrees)
}

/// Where the b-tree figures come from.
enum Plan {
    /// The page reader; `dbstat_after_failure`: auto mode, dbstat is there if the page reader fails.
    Pages {
        dbstat_after_failure: bool,
    },
    Dbstat {
        why: Option<String>,
    },
    /// No page scan: the reason, as the `fragmentation_method` row shows it.
    Freelist(&'static str),
}

fn plan(db: Db, options: &Options) -> Result<Plan> {
    let refusal = || page_reader_refusal(db, &options.schema);
    match options.fragmentation_method {
        FragmentationMethod::Freelist => Ok(Plan::Freelist("freelist (as requested)")),
        FragmentationMethod::Dbstat if has_dbstat(db) => Ok(Plan::Dbstat { why: None }),
        FragmentationMethod::Dbstat => Err(Error::new(
            "this SQLite host has no dbstat virtual table (built without SQLITE_ENABLE_DBSTAT_VTAB): \
             use fragmentation_method 'pages', 'freelist' or 'auto'",
        )),
        FragmentationMethod::Pages => match refusal()? {
            None => Ok(Plan::Pages { dbstat_after_failure: false }),
            Some(why) => Err(Error::new(format!(
                "fragmentation_method 'pages' cannot read this database: {why}; use 'auto' (dbstat then)"
            ))),
        },
        FragmentationMethod::Auto => Ok(match refusal()? {
            None => Plan::Pages { dbstat_after_failure: has_dbstat(db) },
            Some(why) if has_dbstat(db) => Plan::Dbstat { why: Some(why) },
            Some(_) => Plan::Freelist("freelist (this host has no dbstat, and the page reader cannot read it)"),
        }),
    }
}

/// The b-trees, with the method that measured them and what it says about itself.
fn measured_btrees(db: Db, options: &Options, plan: Plan) -> Result<(Vec<Btree>, &'static str, String)> {
    let from_dbstat = |why: Option<String>| {
        let detail = match why {
            None => "sqlite3_analyzer's definitions, from dbstat".to_string(),
            Some(why) => format!("sqlite3_analyzer's definitions, from dbstat (not the page reader: {why})"),
        };
        Ok((dbstat_btrees(db, &options.schema)?, "dbstat", detail))
    };
    match plan {
        Plan::Pages { dbstat_after_failure } => match page_btrees(db, &options.schema) {
            Ok(btrees) => Ok((btrees, "pages", "sqlite3_analyzer's definitions, from vigil's page reader".into())),
            Err(e) if dbstat_after_failure => from_dbstat(Some(format!("it failed: {e}"))),
            Err(e) => Err(e.context("the page reader failed")),
        },
        Plan::Dbstat { why } => from_dbstat(why),
        Plan::Freelist(_) => Err(Error::new("no page scan was planned")),
    }
}

/// Fragmentation rows: overall non-sequential pages % and unused bytes %, or the freelist fallback.
pub fn fragmentation(db: Db, facts: &Facts, options: &Options) -> Result<Vec<Check>> {
    let plan = plan(db, options)?;
    if let Plan::Freelist(reason) = plan {
        return Ok(vec![
            Check::new("fragmentation", facts.freelist_pct(), "%")
                .detail("free pages / all pages: page order inside b-trees needs a page scan")
                .graded(options),
            Check::new("fragmentation_method", reason, "").status(Status::Info),
        ]);
    }
    let (btrees, method, method_detail) = match measured_btrees(db, options, plan) {
        Ok(measured) => measured,
        Err(e) => {
            return Ok(vec![Check::new("fragmentation", Value::Null, "%")
                .status(Status::Critical)
                .detail(format!("the page scan could not complete: {e}"))])
        }
    };
    let btrees: Vec<Btree> =
        btrees.into_iter().filter(|b| options.include_vigil || !super::is_vigil_object(&b.name)).collect();
    let gaps: i64 = btrees.iter().map(|b| b.usage.gaps).sum();
    let spans: i64 = btrees.iter().map(|b| (b.pages() - 1).max(0)).sum();
    let unused: i64 = btrees.iter().map(|b| b.usage.unused).sum();
    let bytes: i64 = btrees.iter().map(|b| b.usage.bytes).sum();
    let worst = btrees
        .iter()
        .filter(|b| b.pages() > 1 && actionable(&b.name))
        .max_by(|a, b| a.nonsequential_pct().total_cmp(&b.nonsequential_pct()));
    let worst = match worst {
        Some(b) => {
            format!("; most scattered: {} ({} %)", user_name(db, &options.schema, &b.name)?, b.nonsequential_pct())
        }
        None => String::new(),
    };
    Ok(vec![
        Check::new("fragmentation", percent(gaps as f64, spans as f64), "%")
            .detail(format!("non-sequential pages: {gaps} of {spans} page steps in {} b-trees{worst}", btrees.len()))
            .graded(options),
        Check::new("unused_pct", percent(unused as f64, bytes as f64), "%")
            .detail(format!(
                "{unused} unused bytes in {} pages of b-trees",
                btrees.iter().map(Btree::pages).sum::<i64>()
            ))
            .graded(options),
        Check::new("fragmentation_method", method, "").detail(method_detail),
    ])
}

/// Whether the user can act on a b-tree by name: their own tables and indexes, and the automatic indexes of
/// their UNIQUE and PRIMARY KEY constraints (through the table). sqlite_schema, sqlite_stat1, sqlite_sequence:
/// SQLite's own, only a VACUUM of the whole file reorders them.
fn actionable(name: &str) -> bool {
    !name.starts_with("sqlite_") || name.starts_with(AUTOINDEX)
}

const AUTOINDEX: &str = "sqlite_autoindex_";

/// A b-tree in the user's terms: an automatic index is named by the table whose constraint made it.
fn user_name(db: Db, schema: &str, name: &str) -> Result<String> {
    if !name.starts_with(AUTOINDEX) {
        return Ok(name.to_string());
    }
    let table = internal_object(db, schema, name)?.table;
    Ok(format!("the UNIQUE/PRIMARY KEY index of table {table}"))
}

pub const TABLE_COLUMNS: &[&str] = &[
    "name",
    "type",
    "tbl_name",
    "rows",
    "pages",
    "bytes",
    "payload_bytes",
    "unused_pct",
    "nonsequential_pct",
    "overflow_pages",
    "method",
];

/// health_tables: one row per table and index with size, entries and layout, largest first.
pub fn table_rows(db: Db, options: &Options) -> Result<Vec<Vec<Value>>> {
    let facts = Facts::gather(db, options)?;
    let mut objects: Vec<&SchemaObject> =
        facts.objects.iter().filter(|o| o.kind == "table" || o.kind == "index").collect();
    let plan = plan(db, options)?;
    if let Plan::Freelist(_) = plan {
        return count_rows(db, &facts, &objects);
    }
    let (btrees, method, _) = measured_btrees(db, options, plan)?;
    let internal: Vec<SchemaObject> = btrees
        .iter()
        .filter(|b| b.name.starts_with("sqlite_"))
        .map(|b| internal_object(db, &options.schema, &b.name))
        .collect::<Result<_>>()?;
    objects.extend(internal.iter());
    let mut rows: Vec<Vec<Value>> = btrees
        .iter()
        .filter_map(|b| objects.iter().find(|o| o.name == b.name).map(|o| btree_row(b, o, method)))
        .collect();
    rows.sort_by(|a, b| b[5].as_i64().cmp(&a[5].as_i64()).then_with(|| a[0].as_str().cmp(&b[0].as_str())));
    Ok(rows)
}

/// sqlite_schema, sqlite_stat1, sqlite_sequence, autoindexes: real storage, outside the hashed schema.
fn internal_object(db: Db, schema: &str, name: &str) -> Result<SchemaObject> {
    let row = db.query(
        &format!("SELECT type, tbl_name FROM {}.sqlite_schema WHERE name = ?1", quote(schema)),
        &[Value::from(name)],
    )?;
    let (kind, table) = match row.first() {
        Some(r) => (r[0].as_str().unwrap_or("table").to_string(), r[1].as_str().unwrap_or(name).to_string()),
        None => ("table".to_string(), name.to_string()),
    };
    Ok(SchemaObject {
        kind,
        name: name.to_string(),
        table,
        hash: String::new(),
        without_rowid: false,
        virtual_table: false,
    })
}

fn btree_row(b: &Btree, object: &SchemaObject, method: &str) -> Vec<Value> {
    // Rowid tables keep one row per leaf cell; index b-trees (and WITHOUT ROWID tables) keep entries in
    // interior cells too.
    let u = &b.usage;
    let entries =
        if object.kind == "index" || object.without_rowid { u.leaf_cells + u.internal_cells } else { u.leaf_cells };
    vec![
        Value::from(b.name.as_str()),
        Value::from(object.kind.as_str()),
        Value::from(object.table.as_str()),
        Value::Integer(entries),
        Value::Integer(b.pages()),
        Value::Integer(u.bytes),
        Value::Integer(u.payload),
        Value::Real(percent(u.unused as f64, u.bytes as f64)),
        Value::Real(b.nonsequential_pct()),
        Value::Integer(u.overflow_pages),
        Value::from(method),
    ]
}

/// Without dbstat: row counts by counting; sizes are unknown (NULL).
fn count_rows(db: Db, facts: &Facts, objects: &[&SchemaObject]) -> Result<Vec<Vec<Value>>> {
    let q = quote(&facts.schema);
    objects
        .iter()
        .filter(|o| o.kind == "table" && !o.virtual_table)
        .map(|o| {
            let count = db
                .query_value(&format!("SELECT count(*) FROM {q}.{}", quote(&o.name)), &[])
                .context(format!("cannot count the rows of {}", o.name))?;
            let mut row =
                vec![Value::from(o.name.as_str()), Value::from("table"), Value::from(o.table.as_str()), count];
            row.extend(std::iter::repeat_n(Value::Null, 6));
            row.push(Value::from("count"));
            Ok(row)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_follow_sqlite3_analyzer() {
        let mut usage = TreeUsage { leaf_pages: 4, internal_pages: 1, ..TreeUsage::default() };
        // root 2, leaves 3, 4 then 9, 10: one gap (9 after 4).
        usage.count_gaps(&mut [(9, true), (2, false), (3, true), (10, true), (4, true)]);
        let b = Btree { name: "t".into(), usage };
        assert_eq!(b.usage.gaps, 1);
        assert_eq!(b.nonsequential_pct(), 25.0);
    }
}
