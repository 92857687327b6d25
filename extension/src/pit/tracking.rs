//! Which tables are journaled, under which schema epoch, and keeping that true as the schema changes:
//! `pit_enable`, `pit_disable`, and [`sync`], which every pit function runs first so that a table created,
//! altered or dropped by any writer is noticed and its triggers follow it.

use serde_json::{json, Value as Json};

use super::capture::{self, SUFFIXES};
use super::shape::{self, Shape};
use crate::error::{Error, Result};
use crate::sqlite::{Db, Value};
use crate::store::pit::{self as store, op, TABLES};
use crate::store::quote;

/// A tracked table's current epoch.
pub struct Epoch {
    pub tbl: i64,
    pub shape: Shape,
    pub first_seq: i64,
    /// Where the epoch ended (its table altered, dropped or no longer journaled); `None` while current.
    pub last_seq: Option<i64>,
    /// The table was empty when this epoch began: with the epochs before it, the journal holds all its rows.
    pub complete: bool,
}

/// The epochs whose triggers are in place (one per tracked table).
pub fn active_epochs(db: Db) -> Result<Vec<Epoch>> {
    let rows = db.query(
        &format!(
            "SELECT tbl, name, key_kind, columns, create_sql, rowid_alias, first_seq, last_seq, complete
             FROM main.{TABLES} WHERE last_seq IS NULL ORDER BY name"
        ),
        &[],
    )?;
    Ok(rows.iter().map(epoch_of_row).collect())
}

/// Every epoch the journal knows, by id.
pub fn all_epochs(db: Db) -> Result<Vec<Epoch>> {
    let rows = db.query(
        &format!(
            "SELECT tbl, name, key_kind, columns, create_sql, rowid_alias, first_seq, last_seq, complete
             FROM main.{TABLES} ORDER BY tbl"
        ),
        &[],
    )?;
    Ok(rows.iter().map(epoch_of_row).collect())
}

fn epoch_of_row(r: &Vec<Value>) -> Epoch {
    let text = |i: usize| r[i].as_str().unwrap_or_default().to_string();
    Epoch {
        tbl: r[0].as_i64().unwrap_or(0),
        shape: Shape::from_stored(&text(1), &text(2), &text(3), &text(4), r[5].as_str().map(str::to_string)),
        first_seq: r[6].as_i64().unwrap_or(0),
        last_seq: r[7].as_i64(),
        complete: r[8].as_i64() == Some(1),
    }
}

/// Whether `pit_enable('*')` asked for every table, also those created later.
fn tracks_all(db: Db) -> Result<bool> {
    Ok(store::meta(db, "tracking")?.as_str() == Some("*"))
}

/// Tables pit_disable named while every table is journaled: new tables are still picked up, these are not.
fn excluded(db: Db) -> Result<Vec<String>> {
    let text = store::meta(db, "excluded")?;
    Ok(text.as_str().and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default())
}

fn set_excluded(db: Db, names: &[String]) -> Result<()> {
    store::set_meta(db, "excluded", Value::from(serde_json::to_string(names).unwrap_or_default()))
}

/// Starts a journal in the database (tables, identity) when it has none.
fn ensure_journal(db: Db) -> Result<()> {
    if store::exists(db)? {
        return Ok(());
    }
    store::create(db)?;
    let lineage = store::new_id(db)?;
    store::set_meta(db, "format", Value::Integer(store::FORMAT))?;
    store::set_meta(db, "lineage", lineage)?;
    store::set_meta(db, "db_id", store::new_id(db)?)?;
    store::set_meta(db, "created_at", db.query_value("SELECT julianday('now')", &[])?)?;
    Ok(())
}

/// `pit_enable([table | '*' [, options]])`.
pub fn enable(db: Db, which: &str) -> Result<Json> {
    if db.filename("main")?.is_none() {
        return Err(Error::new(
            "the database is in-memory or temporary: the journal lives in the database file, open a file to journal it",
        ));
    }
    db.in_savepoint("vigil_pit_enable", || {
        ensure_journal(db)?;
        let (names, skipped) = match which {
            "*" => {
                store::set_meta(db, "tracking", Value::from("*"))?;
                set_excluded(db, &[])?;
                (shape::trackable_tables(db)?, skipped_tables(db)?)
            }
            name => {
                if let Some(reason) = shape::untrackable(db, name)? {
                    return Err(Error::new(format!("cannot journal {}: {reason}", crate::error::quoted(name))));
                }
                let rest: Vec<String> = excluded(db)?.into_iter().filter(|n| n != name).collect();
                set_excluded(db, &rest)?;
                (vec![name.to_string()], Vec::new())
            }
        };
        let mut warnings = Vec::new();
        for name in &names {
            let shape = track(db, name, false)?;
            warnings.extend(shape_warnings(&shape));
        }
        remember_schema_version(db)?;
        let tracked: Vec<String> = active_epochs(db)?.into_iter().map(|e| e.shape.name).collect();
        Ok(json!({"tracked": tracked, "enabled": names, "skipped": skipped, "warnings": warnings}))
    })
}

fn skipped_tables(db: Db) -> Result<Vec<Json>> {
    let rows = db.query("SELECT name FROM main.sqlite_schema WHERE type = 'table' ORDER BY name", &[])?;
    let mut skipped = Vec::new();
    for name in rows.iter().filter_map(|r| r[0].as_str()) {
        if let Some(reason) = shape::untrackable(db, name)? {
            if reason != "internal table" {
                skipped.push(json!({"table": name, "reason": reason}));
            }
        }
    }
    Ok(skipped)
}

fn shape_warnings(shape: &Shape) -> Vec<Json> {
    let mut warnings = Vec::new();
    if shape.key == shape::KeyKind::Rowid {
        warnings.push(json!({"table": shape.name, "warning":
            "no INTEGER PRIMARY KEY: rows are keyed by rowid, which VACUUM may renumber; a restore cannot reach back across a schema change or VACUUM of this table"}));
    }
    if shape.expression_uniques > 0 {
        warnings.push(json!({"table": shape.name, "warning":
            "a UNIQUE index on an expression: a REPLACE that deletes a row through it is journaled only with PRAGMA recursive_triggers=ON"}));
    }
    warnings
}

/// Journals `name` from now on: a new epoch when it is not tracked yet or its layout changed. Returns its shape.
/// `discovered`: a table sync found under '*', created since vigil last looked at the schema.
fn track(db: Db, name: &str, discovered: bool) -> Result<Shape> {
    let current = active_epochs(db)?.into_iter().find(|e| e.shape.name == name);
    let previous = last_epoch_shape(db, name)?;
    let shape = shape::read(db, name, previous.as_ref())?;
    match &current {
        Some(epoch) if epoch.shape.same_layout(&shape) && epoch.shape.create_sql == shape.create_sql => {
            let stale = !triggers_present(db, epoch.tbl)?
                || !triggers_newest(db, name, epoch.tbl)?
                || store::meta(db, &triggers_key(epoch.tbl))? != Value::from(triggers_digest(db, &shape, epoch.tbl)?);
            if stale {
                install_triggers(db, &shape, epoch.tbl)?;
            }
            return Ok(shape);
        }
        Some(epoch) => close_epoch(db, epoch.tbl)?,
        None => {}
    }
    let empty = db.query_value(&format!("SELECT NOT EXISTS (SELECT 1 FROM main.{})", quote(name)), &[])?;
    let epoch = previous_epoch_number(db, name)? + 1;
    let event = match (current.is_some(), epoch, discovered) {
        (true, _, _) => "alter",
        (false, 1, true) => "created",
        (false, 1, false) => "track",
        _ => "retrack",
    };
    let seq = store::append_event(db, op::SCHEMA, None, &json!({"event": event, "table": name}).to_string())?;
    db.query(
        &format!(
            "INSERT INTO main.{TABLES}(name, epoch, key_kind, columns, rowid_alias, create_sql, first_seq, complete)
             VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ),
        &[
            name.into(),
            Value::Integer(epoch),
            shape.key.as_str().into(),
            shape.columns_json().to_string().into(),
            Value::from(shape.rowid_alias.clone()),
            shape.create_sql.clone().into(),
            Value::Integer(seq),
            // Complete: the journal holds every row this table ever had, so it can be rebuilt if dropped.
            Value::Integer(i64::from(empty.as_i64() == Some(1) && event != "alter")),
        ],
    )?;
    let tbl = db.query_value("SELECT last_insert_rowid()", &[])?.as_i64().unwrap_or(0);
    db.query(&format!("UPDATE main.{} SET tbl = ?1 WHERE seq = ?2", store::LOG), &[tbl.into(), seq.into()])?;
    store::widen(db, shape.max_slot())?;
    install_triggers(db, &shape, tbl)?;
    Ok(shape)
}

/// Journals again a table a restore created again.
pub fn track_again(db: Db, name: &str) -> Result<()> {
    db.in_savepoint("vigil_pit_track", || track(db, name, false).map(|_| ()))
}

fn last_epoch_shape(db: Db, name: &str) -> Result<Option<Shape>> {
    Ok(all_epochs(db)?.into_iter().filter(|e| e.shape.name == name).last().map(|e| e.shape))
}

fn previous_epoch_number(db: Db, name: &str) -> Result<i64> {
    let n =
        db.query_value(&format!("SELECT coalesce(max(epoch), 0) FROM main.{TABLES} WHERE name = ?1"), &[name.into()])?;
    Ok(n.as_i64().unwrap_or(0))
}

pub fn triggers_present(db: Db, tbl: i64) -> Result<bool> {
    let names: Vec<Value> = SUFFIXES.iter().map(|s| Value::from(capture::trigger_name(tbl, s))).collect();
    let marks: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
    let n = db.query_value(
        &format!("SELECT count(*) FROM main.sqlite_schema WHERE type = 'trigger' AND name IN ({})", marks.join(", ")),
        &names,
    )?;
    Ok(n.as_i64() == Some(SUFFIXES.len() as i64))
}

/// Whether vigil's triggers are the newest on the table. SQLite fires a table's triggers newest first: when an
/// application trigger is newer and writes the same table, its nested change would be journaled before the
/// change that caused it, and a restore across both would be wrong. Creating them again makes them newest.
pub fn triggers_newest(db: Db, table: &str, tbl: i64) -> Result<bool> {
    let order = db.query(
        "SELECT (SELECT max(rowid) FROM main.sqlite_schema WHERE type = 'trigger' AND tbl_name = ?1
                 AND name NOT GLOB 'vigil_pit_*'),
                (SELECT min(rowid) FROM main.sqlite_schema WHERE type = 'trigger' AND name GLOB ?2)",
        &[table.into(), format!("vigil_pit_{tbl}_*").into()],
    )?;
    Ok(match (order[0][0].as_i64(), order[0][1].as_i64()) {
        (Some(app), Some(pit)) => pit > app,
        _ => true,
    })
}

fn install_triggers(db: Db, shape: &Shape, tbl: i64) -> Result<()> {
    drop_triggers(db, tbl)?;
    for sql in capture::triggers(shape, tbl, &store::db_id(db)?) {
        db.exec(&sql).map_err(|e| e.context(format!("cannot journal {}", crate::error::quoted(&shape.name))))?;
    }
    store::set_meta(db, &triggers_key(tbl), Value::from(triggers_digest(db, shape, tbl)?))
}

/// The triggers an epoch has in place are remembered by a digest of their SQL: a new UNIQUE index (the
/// probes must know it) or a new capture rule makes them differ, and they are created again.
fn triggers_key(tbl: i64) -> String {
    format!("triggers_{tbl}")
}

fn triggers_digest(db: Db, shape: &Shape, tbl: i64) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    for sql in capture::triggers(shape, tbl, &store::db_id(db)?) {
        digest.update(sql.as_bytes());
    }
    Ok(crate::backup::digest::hex(&digest.finalize()))
}

pub fn drop_triggers(db: Db, tbl: i64) -> Result<()> {
    for suffix in SUFFIXES {
        db.exec(&format!("DROP TRIGGER IF EXISTS main.{}", quote(&capture::trigger_name(tbl, suffix))))?;
    }
    Ok(())
}

/// Ends an epoch at the journal's current end and removes its triggers.
fn close_epoch(db: Db, tbl: i64) -> Result<()> {
    drop_triggers(db, tbl)?;
    let last = store::last_seq(db)?;
    db.query(&format!("UPDATE main.{TABLES} SET last_seq = ?1 WHERE tbl = ?2"), &[last.into(), tbl.into()])?;
    Ok(())
}

fn remember_schema_version(db: Db) -> Result<()> {
    let version = db.query_value("PRAGMA main.schema_version", &[])?;
    store::set_meta(db, "schema_version", version)
}

/// `pit_disable([table | '*'])`: removes the triggers; the history stays (pit_prune removes it).
pub fn disable(db: Db, which: &str) -> Result<Json> {
    if !store::exists(db)? {
        return Err(Error::new("this database has no journal: nothing to disable (pit_enable starts one)"));
    }
    db.in_savepoint("vigil_pit_disable", || {
        let active = active_epochs(db)?;
        let stopping: Vec<&Epoch> = active.iter().filter(|e| which == "*" || e.shape.name == which).collect();
        if stopping.is_empty() {
            return Err(Error::new(format!("{} is not journaled", crate::error::quoted(which))));
        }
        if which == "*" {
            store::set_meta(db, "tracking", Value::from("tables"))?;
        } else if tracks_all(db)? {
            let mut names = excluded(db)?;
            names.push(which.to_string());
            set_excluded(db, &names)?;
        }
        for epoch in &stopping {
            store::append_event(db, op::SCHEMA, Some(epoch.tbl), &json!({"event": "disable"}).to_string())?;
            close_epoch(db, epoch.tbl)?;
        }
        remember_schema_version(db)?;
        let rows = db.query_value(&format!("SELECT count(*) FROM main.{}", store::LOG), &[])?;
        Ok(json!({
            "stopped": stopping.iter().map(|e| e.shape.name.clone()).collect::<Vec<_>>(),
            "still_tracked": active.iter().filter(|e| which != "*" && e.shape.name != which)
                .map(|e| e.shape.name.clone()).collect::<Vec<_>>(),
            "history": {"journal_rows": rows.as_i64(),
                        "note": "the journal keeps its rows: restores inside the window still work; pit_prune removes them"},
        }))
    })
}

/// What [`sync`] noticed.
#[derive(Default)]
pub struct Noticed {
    pub events: Vec<Json>,
}

/// Brings tracking in line with the schema: called by every pit function before it reads the journal. Cheap
/// when nothing changed (one pragma read).
pub fn sync(db: Db) -> Result<Noticed> {
    let mut noticed = Noticed::default();
    if !store::exists(db)? {
        return Ok(noticed);
    }
    let version = db.query_value("PRAGMA main.schema_version", &[])?;
    if store::meta(db, "schema_version")? == version {
        return Ok(noticed);
    }
    db.in_savepoint("vigil_pit_sync", || {
        for epoch in active_epochs(db)? {
            let name = epoch.shape.name.clone();
            if shape::untrackable(db, &name)?.is_some() {
                close_epoch(db, epoch.tbl)?;
                let detail = json!({"event": "drop", "table": name});
                store::append_event(db, op::SCHEMA, Some(epoch.tbl), &detail.to_string())?;
                noticed.events.push(detail);
                continue;
            }
            let before = epoch.shape.clone();
            let after = track(db, &name, false)?;
            if !before.same_layout(&after) || before.create_sql != after.create_sql {
                noticed.events.push(json!({"event": "alter", "table": name}));
            }
            if after.key == shape::KeyKind::Rowid {
                // Any schema version change may hide a VACUUM, which can renumber these rowids.
                let detail = json!({"event": "rowids", "table": name});
                store::append_event(db, op::SCHEMA, Some(epoch.tbl), &detail.to_string())?;
                noticed.events.push(detail);
            }
        }
        if tracks_all(db)? {
            let mut skip: Vec<String> = active_epochs(db)?.into_iter().map(|e| e.shape.name).collect();
            skip.extend(excluded(db)?);
            for name in shape::trackable_tables(db)? {
                if !skip.contains(&name) {
                    track(db, &name, true)?;
                    noticed.events.push(json!({"event": "track", "table": name}));
                }
            }
        }
        remember_schema_version(db)
    })?;
    Ok(noticed)
}
