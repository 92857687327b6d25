//! What the journal needs to know of a table: its key, its stored columns (each with an image slot that stays
//! the same across renames and schema epochs), and the UNIQUE constraints a REPLACE can delete rows through.

use serde_json::{json, Value as Json};

use crate::error::{Error, Result};
use crate::sqlite::Db;
use crate::store::quote;

/// How a table's rows are identified in the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// A rowid table whose INTEGER PRIMARY KEY is the rowid: the key is stable.
    IntegerPk,
    /// Any other rowid table (a declared non-integer key, or none): keyed by rowid, which VACUUM may renumber.
    Rowid,
    /// A WITHOUT ROWID table: keyed by its PRIMARY KEY columns.
    PrimaryKey,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::IntegerPk => "ipk",
            KeyKind::Rowid => "rowid",
            KeyKind::PrimaryKey => "pk",
        }
    }
    pub fn parse(text: &str) -> KeyKind {
        match text {
            "ipk" => KeyKind::IntegerPk,
            "pk" => KeyKind::PrimaryKey,
            _ => KeyKind::Rowid,
        }
    }
    pub fn has_rowid(self) -> bool {
        self != KeyKind::PrimaryKey
    }
}

/// A stored column and its image slot (`o<slot>`/`n<slot>` in the log).
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub slot: usize,
    /// 1-based position in the PRIMARY KEY, 0 when not part of it.
    pub pk: i64,
}

/// A UNIQUE constraint (or the PRIMARY KEY of a table not keyed by rowid) as the REPLACE probe sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Unique {
    /// Column name and the collation the index compares with.
    pub columns: Vec<(String, String)>,
    /// The PRIMARY KEY of a WITHOUT ROWID table: the row's key.
    pub primary: bool,
    /// A partial index (`WHERE …`): an UPDATE of any column may bring a row into it.
    pub partial: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    pub name: String,
    pub key: KeyKind,
    /// Stored columns in table order; generated columns and the rowid alias are left out.
    pub columns: Vec<Column>,
    /// The INTEGER PRIMARY KEY column, whose value is the rowid.
    pub rowid_alias: Option<String>,
    pub uniques: Vec<Unique>,
    /// UNIQUE indexes on expressions: a REPLACE deleting through one is seen only with recursive_triggers.
    pub expression_uniques: usize,
    pub create_sql: String,
    /// The name that reaches the rowid (`rowid`, or `_rowid_`/`oid` when a column is called `rowid`).
    pub rowid_name: &'static str,
}

/// More image slots than any table can have (SQLite allows at most 32767 columns; vigil journals up to this).
pub const MAX_SLOT: usize = 32767;

/// The first of SQLite's names for the rowid that no column hides.
fn rowid_name(columns: &[String]) -> Option<&'static str> {
    ["rowid", "_rowid_", "oid"].into_iter().find(|alias| !columns.iter().any(|c| c.eq_ignore_ascii_case(alias)))
}

/// Why a table cannot be tracked, when it cannot.
pub fn untrackable(db: Db, name: &str) -> Result<Option<&'static str>> {
    if crate::store::is_vigil_object(name) || name.starts_with("sqlite_") {
        return Ok(Some("internal table"));
    }
    let sql =
        db.query_value("SELECT sql FROM main.sqlite_schema WHERE type = 'table' AND name = ?1", &[name.into()])?;
    match sql.as_str() {
        None => Ok(Some("no such table")),
        Some(s) if s.trim_start().to_ascii_uppercase().starts_with("CREATE VIRTUAL") => {
            Ok(Some("virtual table: SQLite allows no triggers on it"))
        }
        Some(_) if is_shadow(db, name)? => Ok(Some("shadow table of a virtual table")),
        Some(_) => Ok(None),
    }
}

/// Shadow tables hold a virtual table's data (fts5's `x_data`…); the virtual table owns them.
fn is_shadow(db: Db, name: &str) -> Result<bool> {
    let owners = db.query("SELECT name FROM main.sqlite_schema WHERE sql LIKE 'CREATE VIRTUAL%'", &[])?;
    Ok(owners.iter().filter_map(|r| r[0].as_str()).any(|owner| name.starts_with(&format!("{owner}_"))))
}

/// User tables of the main schema that can be tracked, in name order.
pub fn trackable_tables(db: Db) -> Result<Vec<String>> {
    let rows = db.query("SELECT name FROM main.sqlite_schema WHERE type = 'table' ORDER BY name", &[])?;
    let mut names = Vec::new();
    for name in rows.iter().filter_map(|r| r[0].as_str()) {
        if untrackable(db, name)?.is_none() {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

/// Reads a table's shape; slots are taken from `previous` (the table's last epoch) by name, then by position
/// for a renamed column, and new columns get slots after every slot the table ever used.
pub fn read(db: Db, name: &str, previous: Option<&Shape>) -> Result<Shape> {
    let q = quote(name);
    let create_sql = db
        .query_value("SELECT sql FROM main.sqlite_schema WHERE type = 'table' AND name = ?1", &[name.into()])?
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Error::new(format!("no table {} in the main schema", crate::error::quoted(name))))?;
    // table_xinfo: hidden 2 and 3 are generated columns, which SQLite computes again on restore.
    let rows = db.query(&format!("SELECT cid, name, pk, hidden FROM main.pragma_table_xinfo({})", lit(name)), &[])?;
    let all_names: Vec<String> = rows.iter().filter_map(|r| r[1].as_str().map(str::to_string)).collect();
    let reachable_rowid = rowid_name(&all_names);
    let without_rowid = match reachable_rowid {
        Some(alias) => db.prepare(&format!("SELECT {alias} FROM main.{q} LIMIT 0")).is_err(),
        None => true,
    };
    let pk_count = rows.iter().filter(|r| r[2].as_i64().unwrap_or(0) > 0).count();
    let pk_index = db
        .query_value(&format!("SELECT count(*) FROM main.pragma_index_list({}) WHERE origin = 'pk'", lit(name)), &[])?
        .as_i64()
        .unwrap_or(0);
    let rowid_alias = if !without_rowid && pk_count == 1 && pk_index == 0 {
        rows.iter().find(|r| r[2].as_i64().unwrap_or(0) > 0).and_then(|r| r[1].as_str()).map(str::to_string)
    } else {
        None
    };
    let key = match (without_rowid, &rowid_alias) {
        (true, _) => KeyKind::PrimaryKey,
        (false, Some(_)) => KeyKind::IntegerPk,
        (false, None) => KeyKind::Rowid,
    };
    let stored: Vec<(usize, String, i64)> = rows
        .iter()
        .filter(|r| matches!(r[3].as_i64(), Some(0) | Some(1)))
        .filter_map(|r| Some((r[0].as_i64()? as usize, r[1].as_str()?.to_string(), r[2].as_i64().unwrap_or(0))))
        .filter(|(_, n, _)| Some(n) != rowid_alias.as_ref())
        .collect();
    let rowid_name = match reachable_rowid {
        Some(alias) => alias,
        None if !without_rowid || rows.iter().all(|r| r[2].as_i64().unwrap_or(0) == 0) => {
            return Err(Error::new(format!(
                "cannot journal {}: its columns named rowid, _rowid_ and oid hide the rowid",
                crate::error::quoted(name)
            )))
        }
        None => "rowid",
    };
    let columns = assign_slots(&stored, previous);
    let (uniques, expression_uniques) = unique_constraints(db, name, key)?;
    Ok(Shape { name: name.to_string(), key, columns, rowid_alias, uniques, expression_uniques, create_sql, rowid_name })
}

/// A string literal for pragma table-valued functions.
pub fn lit(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn assign_slots(stored: &[(usize, String, i64)], previous: Option<&Shape>) -> Vec<Column> {
    let old = previous.map(|p| p.columns.as_slice()).unwrap_or(&[]);
    let mut next = old.iter().map(|c| c.slot).max().unwrap_or(0);
    let mut taken: Vec<usize> = Vec::new();
    let mut columns = Vec::new();
    for (position, (_, name, pk)) in stored.iter().enumerate() {
        let by_name = old.iter().find(|c| &c.name == name).map(|c| c.slot);
        // A rename keeps the column's position; a column of the old epoch whose name is gone is a rename.
        let by_rename = old.get(position).filter(|c| !stored.iter().any(|(_, n, _)| n == &c.name)).map(|c| c.slot);
        let slot = match by_name.or(by_rename).filter(|s| !taken.contains(s)) {
            Some(slot) => slot,
            None => {
                next += 1;
                next
            }
        };
        taken.push(slot);
        columns.push(Column { name: name.clone(), slot, pk: *pk });
    }
    columns
}

/// UNIQUE indexes (and the PRIMARY KEY of tables not keyed by the rowid alias), with their collations.
fn unique_constraints(db: Db, name: &str, key: KeyKind) -> Result<(Vec<Unique>, usize)> {
    let indexes = db.query(
        &format!("SELECT name, origin, partial FROM main.pragma_index_list({}) WHERE \"unique\" = 1", lit(name)),
        &[],
    )?;
    let mut uniques = Vec::new();
    let mut expressions = 0;
    for index in &indexes {
        let index_name = index[0].as_str().unwrap_or_default();
        let primary = key == KeyKind::PrimaryKey && index[1].as_str() == Some("pk");
        let parts = db.query(
            &format!(
                "SELECT cid, name, coll FROM main.pragma_index_xinfo({}) WHERE key = 1 ORDER BY seqno",
                lit(index_name)
            ),
            &[],
        )?;
        if parts.iter().any(|p| p[0].as_i64() == Some(-2)) {
            expressions += 1;
            continue;
        }
        let columns = parts
            .iter()
            .filter_map(|p| Some((p[1].as_str()?.to_string(), p[2].as_str().unwrap_or("BINARY").to_string())))
            .collect();
        uniques.push(Unique { columns, primary, partial: index[2].as_i64() == Some(1) });
    }
    Ok((uniques, expressions))
}

impl Shape {
    pub fn columns_json(&self) -> Json {
        Json::Array(self.columns.iter().map(|c| json!({"name": c.name, "slot": c.slot, "pk": c.pk})).collect())
    }

    /// The shape stored for an epoch (columns and key only; enough to read and apply images).
    pub fn from_stored(name: &str, key: &str, columns: &str, create_sql: &str, rowid_alias: Option<String>) -> Shape {
        let parsed: Json = serde_json::from_str(columns).unwrap_or(Json::Null);
        let columns: Vec<Column> = parsed
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| {
                        Some(Column {
                            name: c["name"].as_str()?.to_string(),
                            // The journal is in the file and may have been tampered with: a slot outside the
                            // log's range would read another column.
                            slot: c["slot"].as_u64().filter(|s| (1..=MAX_SLOT as u64).contains(s))? as usize,
                            pk: c["pk"].as_i64().unwrap_or(0),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut names: Vec<String> = columns.iter().map(|c: &Column| c.name.clone()).collect();
        names.extend(rowid_alias.clone());
        Shape {
            name: name.to_string(),
            key: KeyKind::parse(key),
            columns,
            rowid_alias,
            uniques: Vec::new(),
            expression_uniques: 0,
            create_sql: create_sql.to_string(),
            rowid_name: rowid_name(&names).unwrap_or("rowid"),
        }
    }

    pub fn max_slot(&self) -> usize {
        self.columns.iter().map(|c| c.slot).max().unwrap_or(0)
    }

    /// Primary-key columns in key order (WITHOUT ROWID tables).
    pub fn key_columns(&self) -> Vec<&Column> {
        let mut keys: Vec<&Column> = self.columns.iter().filter(|c| c.pk > 0).collect();
        keys.sort_by_key(|c| c.pk);
        keys
    }

    /// The key of a WITHOUT ROWID table with the collations its index compares with.
    pub fn primary_key(&self) -> Vec<(String, String)> {
        match self.uniques.iter().find(|u| u.primary) {
            Some(u) => u.columns.clone(),
            None => self.key_columns().iter().map(|c| (c.name.clone(), "BINARY".to_string())).collect(),
        }
    }

    /// Whether two epochs of a table journal the same way (same columns, slots and key).
    /// (UNIQUE indexes are not part of an epoch: they change the triggers' probes only.)
    pub fn same_layout(&self, other: &Shape) -> bool {
        self.key == other.key && self.columns == other.columns
    }
}
