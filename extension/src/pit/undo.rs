//! Net undo: turns a database (a copy that carries its own journal) back into its state at a cut.
//!
//! Every key changed after the cut gets the image of its first change after the cut: an UPDATE or DELETE's
//! old row (the row as it was at the cut), or "absent" for an INSERT (or the new key of a key-changing
//! UPDATE). Applied set-wise (delete every affected key, then insert the images), never replayed row by row:
//! the images together are a state that existed, so they cannot collide with each other or with the rows
//! left alone, where a replay of `UPDATE t SET id = id + 1` could. The application's triggers stay off.

use std::collections::HashMap;

use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};

use super::shape::{self, KeyKind, Shape};
use super::tracking::{self, Epoch};
use crate::error::{Error, Result};
use crate::sqlite::{Db, Value};
use crate::store::pit::{op, LOG, PEND};
use crate::store::quote;

/// A row's identity inside its table.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Key {
    Rowid(i64),
    /// Primary-key values, encoded with their storage class.
    Values(Vec<u8>),
}

/// A row image as the journal holds it: values by slot, under the epoch that wrote it.
#[derive(Clone, Debug)]
pub(super) struct Image {
    pub rowid: Option<i64>,
    pub slots: HashMap<usize, Value>,
}

/// What the cut held for one key: the key's values (for the key condition) and its image, or `None` when the
/// key did not exist at the cut.
pub(super) struct Entry {
    pub key_values: Vec<Value>,
    pub image: Option<Image>,
}

/// The state at the cut of every key changed after it.
#[derive(Default)]
struct Plan {
    /// table name → key → state at the cut.
    tables: HashMap<String, HashMap<Key, Entry>>,
    changes: u64,
}

pub struct Applied {
    /// What the schema roll-back did or could not do.
    pub schema_notes: Vec<Json>,
    pub rebuilt: std::collections::HashSet<String>,
    pub rows_changed: u64,
    pub journal_rows_undone: u64,
    pub tables: Json,
    pub checked_rows: u64,
    /// SHA-256 of every affected key's row as read back from the restored copy, in table and key order.
    pub content_sha256: String,
}

/// Brings `db` (vigil's own connection to a copy) back to `cut`, in one transaction, and checks that every
/// affected key now holds its image at the cut.
pub fn apply(db: Db, cut: i64, progress: &crate::progress::Tracker) -> Result<Applied> {
    db.set_triggers_enabled(false)?;
    // A private copy: a larger page cache (64 MiB) keeps the rows it puts back in memory.
    db.exec("PRAGMA foreign_keys = OFF; PRAGMA cache_size = -65536")?;
    let epochs: HashMap<i64, Epoch> = tracking::all_epochs(db)?.into_iter().map(|e| (e.tbl, e)).collect();
    let rows = crate::store::pit::last_seq(db)?.saturating_sub(cut).max(0) as u64;
    progress.phase(format!("pit_restore: read {rows} journal rows after the cut"), rows);
    let plan = plan(db, cut, &epochs, (progress, rows))?;
    progress.phase(format!("pit_restore: put back {} keys", plan.tables.values().map(HashMap::len).sum::<usize>()), 0);
    db.exec("BEGIN IMMEDIATE")?;
    let applied = (|| {
        let schema = super::schema_back::roll_back(db, cut, &epochs)?;
        let current = current_shapes(db)?;
        let mut rows_changed = schema.rows_rebuilt;
        let mut per_table = serde_json::Map::new();
        for (name, keys) in &plan.tables {
            if schema.rebuilt.contains(name) || schema.absent_at_cut.contains(name) {
                continue;
            }
            let shape = current.get(name).ok_or_else(|| dropped_table_error(name))?;
            let changed = apply_table(db, shape, keys)?;
            rows_changed += changed;
            per_table.insert(name.clone(), json!(changed));
        }
        let used = crate::store::pit::next_seq(db)? - 1;
        db.query(&format!("DELETE FROM main.{LOG} WHERE seq > ?1"), &[cut.into()])?;
        if used > cut {
            crate::store::pit::mark_fork(db, used)?;
        }
        db.exec(&format!("DELETE FROM main.{PEND}"))?;
        let mut checked = 0;
        let mut digest = Sha256::new();
        let mut names: Vec<&String> = plan.tables.keys().collect();
        names.sort();
        for name in names {
            let skipped = schema.rebuilt.contains(name) || schema.absent_at_cut.contains(name);
            if let Some(shape) = current.get(name).filter(|_| !skipped) {
                checked += check_table(db, shape, &plan.tables[name], &mut digest)?;
            }
        }
        Ok(Applied {
            schema_notes: schema.notes,
            rebuilt: schema.rebuilt,
            rows_changed,
            journal_rows_undone: plan.changes,
            tables: Json::Object(per_table),
            checked_rows: checked,
            content_sha256: crate::backup::digest::hex(&digest.finalize()),
        })
    })();
    match applied {
        Ok(applied) => {
            db.exec("COMMIT")?;
            // Triggers follow the schema as restored (columns put back, tables created again).
            tracking::sync(db)?;
            for name in &applied.rebuilt {
                tracking::track_again(db, name)?;
            }
            Ok(applied)
        }
        Err(e) => {
            let _ = db.exec("ROLLBACK");
            Err(e)
        }
    }
}

fn renumbered_error(name: &str) -> Error {
    Error::new(format!(
        "table {} has no INTEGER PRIMARY KEY and the schema changed (possibly a VACUUM, which renumbers its \
         rowids) after changes made since the instant: the journal cannot tell its rows apart across that; restore \
         from a backup taken before the instant (backup_restore), or give the table an INTEGER PRIMARY KEY",
        crate::error::quoted(name)
    ))
}

pub(super) fn dropped_table_error(name: &str) -> Error {
    Error::new(format!(
        "table {} was dropped after the instant and its rows are not in this database; restore from a backup \
         taken before the drop (backup_restore), then restore to the instant from it",
        crate::error::quoted(name)
    ))
}

/// The shape of every table rows are restored into, read from the copy as the schema roll-back left it, with
/// the slots of the table's last epoch (a column renamed back keeps its slot by position).
fn current_shapes(db: Db) -> Result<HashMap<String, Shape>> {
    let mut last: HashMap<String, Shape> = HashMap::new();
    for epoch in tracking::all_epochs(db)? {
        last.insert(epoch.shape.name.clone(), epoch.shape);
    }
    let mut shapes = HashMap::new();
    for (name, previous) in last {
        if shape::untrackable(db, &name)?.is_none() {
            shapes.insert(name.clone(), shape::read(db, &name, Some(&previous))?);
        }
    }
    Ok(shapes)
}

/// One journaled change, with its images under the epoch that wrote it.
pub(super) struct Change<'e> {
    pub seq: i64,
    pub epoch: &'e Epoch,
    pub op: i64,
    pub old: Option<Image>,
    pub new: Option<Image>,
    /// A schema event's JSON detail.
    pub detail: Option<String>,
}

/// Runs `visit` over the journal rows of `filter` (a WHERE clause over seq with ?1), in commit order.
pub(super) fn each_change<'e>(
    db: Db,
    filter: &str,
    bound: i64,
    epochs: &'e HashMap<i64, Epoch>,
    mut visit: impl FnMut(Change<'e>) -> Result<()>,
) -> Result<()> {
    let width = crate::store::pit::width(db)?;
    let slots: String = (1..=width).map(|k| format!(", o{k}, n{k}")).collect();
    let mut stmt = db.prepare(&format!(
        "SELECT tbl, op, rid, rid_new, nmask, seq{slots} FROM main.{LOG} WHERE {filter} AND op IN ({}, {}, {}, {}) ORDER BY seq",
        op::INSERT,
        op::UPDATE,
        op::DELETE,
        op::SCHEMA
    ))?;
    stmt.bind(1, &bound.into())?;
    while stmt.step()? {
        let tbl = stmt.column(0).as_i64().unwrap_or(0);
        let Some(epoch) = epochs.get(&tbl) else { continue };
        let operation = stmt.column(1).as_i64().unwrap_or(0);
        let seq = stmt.column(5).as_i64().unwrap_or(0);
        if operation == op::SCHEMA {
            let detail = stmt.column(3).as_str().map(str::to_string);
            visit(Change { seq, epoch, op: operation, old: None, new: None, detail })?;
            continue;
        }
        let rid = stmt.column(2).as_i64();
        let rid_new = stmt.column(3).as_i64().or(rid);
        let mask = stmt.column(4).as_i64().filter(|_| operation == op::UPDATE);
        let value = |slot: usize, offset: usize| stmt.column(6 + (slot - 1) * 2 + offset);
        let image = |offset: usize, rowid: Option<i64>| Image {
            rowid,
            slots: epoch.shape.columns.iter().map(|c| (c.slot, value(c.slot, offset))).collect(),
        };
        let old = (operation != op::INSERT).then(|| image(0, rid));
        let new = (operation != op::DELETE).then(|| match (mask, &old) {
            // An UPDATE's new image holds the changed columns; the others are as in the old image.
            (Some(mask), Some(old)) => Image {
                rowid: rid_new,
                slots: old
                    .slots
                    .iter()
                    .map(|(slot, was)| {
                        let changed = mask >> (slot - 1) & 1 == 1;
                        (*slot, if changed { value(*slot, 1) } else { was.clone() })
                    })
                    .collect(),
            },
            _ => image(1, rid_new),
        });
        visit(Change { seq, epoch, op: operation, old, new, detail: None })?;
    }
    Ok(())
}

/// Reads the journal after the cut and keeps, per key, the first thing said about it.
fn plan(db: Db, cut: i64, epochs: &HashMap<i64, Epoch>, progress: (&crate::progress::Tracker, u64)) -> Result<Plan> {
    let mut plan = Plan::default();
    // Tables with changes since the cut: a later possible renumbering of their rowids makes the keys ambiguous.
    let mut changed_since_cut: std::collections::HashSet<String> = Default::default();
    let mut chain = Chain::default();
    each_change(db, "seq > ?1", cut, epochs, |change| {
        let name = &change.epoch.shape.name;
        if change.op == op::SCHEMA {
            let renumbered = crate::store::pit::event_name(change.detail.as_deref()).as_deref() == Some("rowids");
            if renumbered && changed_since_cut.contains(name) {
                return Err(renumbered_error(name));
            }
            return Ok(());
        }
        plan.changes += 1;
        if plan.changes % 4096 == 0 {
            progress.0.advance(plan.changes, progress.1.max(plan.changes))?;
        }
        changed_since_cut.insert(name.clone());
        chain.follow(&change)?;
        let keys = plan.tables.entry(name.clone()).or_default();
        if let Some(old) = change.old {
            let (key, key_values) = key_of(&change.epoch.shape, &old);
            keys.entry(key).or_insert(Entry { key_values, image: Some(old) });
        }
        if let Some(new) = change.new {
            let (key, key_values) = key_of(&change.epoch.shape, &new);
            keys.entry(key).or_insert(Entry { key_values, image: None });
        }
        Ok(())
    })?;
    Ok(plan)
}

/// Checks that the journal tells one story per key: each change's old image is the row the previous change
/// left. It breaks when an application trigger newer than vigil's ran before vigil put its own back in front
/// (the nested change journaled before its cause), or when the journal was altered; a restore across such a
/// place could not be exact, so it is refused.
#[derive(Default)]
struct Chain {
    /// (table, key) → the row after the last change seen (`None`: deleted).
    rows: HashMap<(String, Key), Option<Image>>,
}

impl Chain {
    fn follow(&mut self, change: &Change) -> Result<()> {
        let name = &change.epoch.shape.name;
        let shape = &change.epoch.shape;
        if let Some(old) = &change.old {
            let key = (name.clone(), key_of(shape, old).0);
            match self.rows.get(&key) {
                // A REPLACE under recursive_triggers journals its delete twice: the repeat says nothing new.
                Some(None) if change.op == op::DELETE => return Ok(()),
                Some(None) => return Err(out_of_order(name, change.seq)),
                Some(Some(row)) if !same_image(row, old) => return Err(out_of_order(name, change.seq)),
                _ => {}
            }
            self.rows.insert(key, None);
        }
        if let Some(new) = &change.new {
            self.rows.insert((name.clone(), key_of(shape, new).0), Some(new.clone()));
        }
        Ok(())
    }
}

/// Equal rowid and equal values in every slot both images hold (an epoch may have added a column).
fn same_image(a: &Image, b: &Image) -> bool {
    a.rowid == b.rowid
        && a.slots.iter().all(|(slot, value)| {
            b.slots.get(slot).is_none_or(|other| same_values(std::slice::from_ref(value), std::slice::from_ref(other)))
        })
}

fn out_of_order(name: &str, seq: i64) -> Error {
    Error::new(format!(
        "the journal of {} does not follow from one change to the next at seq {seq} (an application trigger \
         created after pit_enable ran before vigil's next call put its own triggers back in front, or the journal \
         was altered): a restore to before seq {seq} cannot be exact; restore to a later instant, or from a backup",
        crate::error::quoted(name)
    ))
}

/// A row's key and the values its key condition binds.
pub(super) fn key_of(shape: &Shape, image: &Image) -> (Key, Vec<Value>) {
    match shape.key {
        KeyKind::PrimaryKey => {
            let values: Vec<Value> =
                shape.key_columns().iter().map(|c| image.slots.get(&c.slot).cloned().unwrap_or(Value::Null)).collect();
            let mut bytes = Vec::new();
            values.iter().for_each(|v| encode(v, &mut bytes));
            (Key::Values(bytes), values)
        }
        _ => {
            let rowid = image.rowid.unwrap_or(0);
            (Key::Rowid(rowid), vec![Value::Integer(rowid)])
        }
    }
}

fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(0),
        Value::Integer(i) => {
            out.push(1);
            out.extend_from_slice(&i.to_be_bytes());
        }
        Value::Real(r) => {
            out.push(2);
            out.extend_from_slice(&r.to_bits().to_be_bytes());
        }
        Value::Text(t) => {
            out.push(3);
            out.extend_from_slice(&(t.len() as u64).to_be_bytes());
            out.extend_from_slice(t.as_bytes());
        }
        Value::RawText(t) => {
            out.push(3);
            out.extend_from_slice(&(t.len() as u64).to_be_bytes());
            out.extend_from_slice(t);
        }
        Value::Blob(b) => {
            out.push(4);
            out.extend_from_slice(&(b.len() as u64).to_be_bytes());
            out.extend_from_slice(b);
        }
    }
}

/// The key condition of a table: `rowid = ?1` or `"a" = ?1 AND "b" = ?2`.
fn key_condition(shape: &Shape) -> String {
    match shape.key {
        KeyKind::PrimaryKey => shape
            .key_columns()
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} = ?{}", quote(&c.name), i + 1))
            .collect::<Vec<_>>()
            .join(" AND "),
        _ => format!("{} = ?1", shape.rowid_name),
    }
}

/// Deletes every affected key and inserts the images that existed at the cut. Returns the keys whose row
/// changed (deleted, written, or both).
pub(super) fn apply_table(db: Db, shape: &Shape, keys: &HashMap<Key, Entry>) -> Result<u64> {
    let t = quote(&shape.name);
    let mut delete = db.prepare(&format!("DELETE FROM main.{t} WHERE {}", key_condition(shape)))?;
    let mut inserts: HashMap<Vec<bool>, crate::sqlite::Statement> = HashMap::new();
    let mut changed = 0;
    // In key order, so the b-tree is walked once rather than at random.
    let mut ordered: Vec<(&Key, &Entry)> = keys.iter().collect();
    ordered.sort_by(|a, b| a.0.cmp(b.0));
    // Every delete before any insert: an image may take a UNIQUE value that a row deleted later still holds.
    for (_, entry) in &ordered {
        delete.run(&entry.key_values)?;
        let deleted = db.changes() > 0;
        changed += u64::from(deleted || entry.image.is_some());
    }
    for image in ordered.iter().filter_map(|(_, e)| e.image.as_ref()) {
        let present = present_columns(shape, image);
        if !inserts.contains_key(&present) {
            inserts.insert(present.clone(), db.prepare(&insert_sql(shape, &present))?);
        }
        inserts.get_mut(&present).expect("prepared above").run(&row_params(shape, image))?;
    }
    Ok(changed)
}

/// Which of the table's columns an image holds: a column its epoch did not have yet gets its DEFAULT, as
/// every row untouched by the restore reads it.
fn present_columns(shape: &Shape, image: &Image) -> Vec<bool> {
    shape.columns.iter().map(|c| image.slots.contains_key(&c.slot)).collect()
}

fn insert_sql(shape: &Shape, present: &[bool]) -> String {
    let mut names: Vec<String> =
        shape.columns.iter().zip(present).filter(|(_, p)| **p).map(|(c, _)| quote(&c.name)).collect();
    if shape.key.has_rowid() {
        names.insert(0, shape.rowid_name.into());
    }
    let marks: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
    if names.is_empty() {
        return format!("INSERT INTO main.{} DEFAULT VALUES", quote(&shape.name));
    }
    format!("INSERT INTO main.{}({}) VALUES({})", quote(&shape.name), names.join(", "), marks.join(", "))
}

/// The values an image binds, in the order of [`insert_sql`]: rowid first for rowid tables, then the
/// columns the image holds.
pub(super) fn row_params(shape: &Shape, image: &Image) -> Vec<Value> {
    let mut params = Vec::new();
    if shape.key.has_rowid() {
        params.push(image.rowid.map_or(Value::Null, Value::Integer));
    }
    params.extend(shape.columns.iter().filter_map(|c| image.slots.get(&c.slot).cloned()));
    params
}

/// Reads every affected key back: present with exactly its image (values and storage classes), or absent.
/// Feeds what it read, in key order, to `digest`: the content hash the result reports.
fn check_table(db: Db, shape: &Shape, keys: &HashMap<Key, Entry>, digest: &mut Sha256) -> Result<u64> {
    let t = quote(&shape.name);
    let names: String = shape.columns.iter().map(|c| format!(", {}", quote(&c.name))).collect();
    let rowid = if shape.key.has_rowid() { shape.rowid_name } else { "NULL" };
    let mut read = db.prepare(&format!("SELECT {rowid}{names} FROM main.{t} WHERE {}", key_condition(shape)))?;
    let mut ordered: Vec<(&Key, &Entry)> = keys.iter().collect();
    ordered.sort_by(|a, b| a.0.cmp(b.0));
    let mut checked = 0;
    for (_, entry) in ordered {
        read.bind_all(&entry.key_values)?;
        let found = if read.step()? { Some(read.row()) } else { None };
        read.reset();
        let same = match (&found, &entry.image) {
            (Some(row), Some(image)) => same_values(&held_values(shape, row, image), &row_params(shape, image)),
            (None, None) => true,
            // A key that did not exist at the cut may still match another row under its collation ('a' and
            // 'A' under NOCASE): what matters is that no row has exactly this key.
            (Some(row), None) => {
                shape.key == KeyKind::PrimaryKey && !same_values(&key_of_row(shape, row), &entry.key_values)
            }
            (None, Some(_)) => false,
        };
        if !same {
            return Err(Error::new(format!(
                "the restored copy does not hold the journaled row of {} at the cut; nothing was published",
                crate::error::quoted(&shape.name)
            )));
        }
        let mut bytes = Vec::new();
        shape.name.as_bytes().iter().for_each(|b| bytes.push(*b));
        found.iter().flatten().for_each(|v| encode(v, &mut bytes));
        digest.update(&bytes);
        checked += 1;
    }
    Ok(checked)
}

/// The primary-key values of a row read back (NULL first, then every column) of a WITHOUT ROWID table.
fn key_of_row(shape: &Shape, row: &[Value]) -> Vec<Value> {
    let position = |name: &str| shape.columns.iter().position(|c| c.name == name).map(|i| i + 1);
    shape.key_columns().iter().filter_map(|c| position(&c.name).map(|i| row[i].clone())).collect()
}

/// A row read back (rowid or NULL first, then every column), cut to what [`row_params`] binds for `image`.
fn held_values(shape: &Shape, row: &[Value], image: &Image) -> Vec<Value> {
    let mut values = Vec::new();
    if shape.key.has_rowid() {
        values.push(row[0].clone());
    }
    let held = shape.columns.iter().zip(&row[1..]).filter(|(c, _)| image.slots.contains_key(&c.slot));
    values.extend(held.map(|(_, v)| v.clone()));
    values
}

/// Exact equality: same storage class and same bytes (REAL compared bit for bit).
fn same_values(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (Value::Real(p), Value::Real(q)) => p.to_bits() == q.to_bits(),
            _ => x == y,
        })
}
