//! The schema side of a restore: puts a copy's tables back into the shape they had at the cut, as far as the
//! journal knows it. Columns added after the cut are dropped and renamed ones get their old names back; a
//! table dropped after the cut is created again and refilled from the journal when the journal holds all its
//! rows (it was empty when journaling of it began); a table first journaled after the cut is kept as it was
//! then, and the result says so.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value as Json};

use super::tracking::{self, Epoch};
use super::undo::{self, Entry, Key};
use crate::error::{Error, Result};
use crate::sqlite::Db;
use crate::store::pit::{self as store, op, LOG};
use crate::store::quote;

#[derive(Default)]
pub struct SchemaBack {
    /// Tables created again from the journal: their rows are already those of the cut.
    pub rebuilt: HashSet<String>,
    /// Tables the journal did not follow at the cut: their later changes are not undone row by row.
    pub absent_at_cut: HashSet<String>,
    pub rows_rebuilt: u64,
    pub notes: Vec<Json>,
}

/// The epoch each table had at the cut, and its current one.
struct History<'e> {
    at_cut: Option<&'e Epoch>,
    active: Option<&'e Epoch>,
    all: Vec<&'e Epoch>,
}

fn histories(epochs: &HashMap<i64, Epoch>, cut: i64) -> HashMap<String, History<'_>> {
    let mut by_name: HashMap<String, History> = HashMap::new();
    let mut sorted: Vec<&Epoch> = epochs.values().collect();
    sorted.sort_by_key(|e| e.tbl);
    for epoch in sorted {
        let history =
            by_name.entry(epoch.shape.name.clone()).or_insert(History { at_cut: None, active: None, all: Vec::new() });
        history.all.push(epoch);
        if epoch.last_seq.is_none() {
            history.active = Some(epoch);
        }
        if epoch.first_seq <= cut && epoch.last_seq.map_or(true, |last| last >= cut) {
            history.at_cut = Some(epoch);
        }
    }
    by_name
}

/// Runs inside the restore's transaction on the copy, before the rows are put back.
pub fn roll_back(db: Db, cut: i64, epochs: &HashMap<i64, Epoch>) -> Result<SchemaBack> {
    let mut back = SchemaBack::default();
    for (name, history) in histories(epochs, cut) {
        let exists = super::shape::untrackable(db, &name)?.is_none();
        if history.all.first().is_some_and(|e| e.first_seq <= cut) {
            refuse_gap(db, cut, &history)?;
        }
        match (history.at_cut, history.active) {
            (Some(then), Some(now)) if then.tbl != now.tbl => columns_back(db, cut, then, &history, &mut back)?,
            (Some(_), _) => {}
            (None, _) if exists => not_there_at_cut(db, cut, &name, &history, &mut back)?,
            (None, _) => {
                back.absent_at_cut.insert(name.clone());
            }
        }
        if !exists {
            if let Some(then) = history.at_cut {
                rebuild(db, cut, &history, then, epochs, &mut back)?;
            }
        }
    }
    Ok(back)
}

/// A table the journal did not follow at the cut. When the journal holds all its rows (it was empty when
/// first seen) its rows are undone like any other, leaving it empty, and it is dropped when the journal saw
/// it created after the cut. Otherwise its rows at the cut are unknown: it is left as it is, and said so.
/// A cut at seq S is the last state before row S + 1, so only a sighting after S dates a change after it.
fn not_there_at_cut(db: Db, cut: i64, name: &str, history: &History, back: &mut SchemaBack) -> Result<()> {
    let Some(first) = history.all.first() else { return Ok(()) };
    let created = store::event_at(db, first.first_seq)?.as_deref() == Some("created");
    // Seen created after the cut: it did not exist then, whatever rows it holds now.
    if created && sighted_after(db, last_schema_sighting(db, first.first_seq)?, cut)? {
        db.exec(&format!("DROP TABLE main.{}", quote(name)))?;
        back.absent_at_cut.insert(name.to_string());
        back.notes.push(json!({"table": name, "note": "created after the cut: dropped"}));
    } else if first.complete {
        back.notes.push(json!({"table": name, "note": format!(
            "first seen empty at seq {}, around the cut: kept, without the rows written since", first.first_seq)}));
    } else {
        back.absent_at_cut.insert(name.to_string());
        back.notes.push(json!({"table": name, "note": format!(
            "journaled only since seq {}, after the cut: left as it is now", first.first_seq)}));
    }
    Ok(())
}

/// A table no longer journaled (pit_disable) and journaled again later may have changed in between, unseen:
/// no restore to before the gap can be exact for it.
fn refuse_gap(db: Db, cut: i64, history: &History) -> Result<()> {
    for epoch in history.all.iter().filter(|e| e.first_seq > cut) {
        if store::event_at(db, epoch.first_seq)?.as_deref() == Some("retrack") {
            return Err(Error::new(format!(
                "table {} was not journaled for a while before seq {} (pit_disable, then pit_enable): its changes \
                 then are unknown, so no restore to an instant before that can be exact; restore to a later instant, \
                 or from a backup (backup_restore)",
                crate::error::quoted(&epoch.shape.name),
                epoch.first_seq
            )));
        }
    }
    Ok(())
}

/// The last moment before `seq` at which vigil saw the schema (a seal or a schema event): a change noticed at
/// `seq` by a writer without vigil happened after it.
fn last_schema_sighting(db: Db, seq: i64) -> Result<i64> {
    let seen = db.query_value(
        // Rows of the noticing transaction itself (one sync writes an event per table) are not earlier sightings.
        &format!(
            "SELECT max(seq) FROM main.{LOG} WHERE seq < ?1 AND op IN ({}, {})
             AND txn IS NOT (SELECT txn FROM main.{LOG} WHERE seq = ?1)",
            op::TICK,
            op::SCHEMA
        ),
        &[seq.into()],
    )?;
    Ok(seen.as_i64().unwrap_or(0))
}

/// Whether a schema sighting at seq `since` dates what changed after it as after the cut. A seal (pit_tick)
/// is a transaction of its own taken at the cut it marks, so one at the cut itself counts; any other row at
/// the cut does not (a cut is the last state before the next row, and the change may come before that).
fn sighted_after(db: Db, since: i64, cut: i64) -> Result<bool> {
    if since != cut {
        return Ok(since > cut);
    }
    let kind = db.query_value(&format!("SELECT op FROM main.{LOG} WHERE seq = ?1"), &[since.into()])?;
    Ok(kind.as_i64() == Some(op::TICK))
}

/// The first epoch after `then` in which `changed` holds (the epoch that noticed a change).
fn noticed_in<'e>(history: &History<'e>, then: &Epoch, changed: impl Fn(&Epoch) -> bool) -> Option<&'e Epoch> {
    history.all.iter().copied().find(|e| e.first_seq > then.first_seq && changed(e))
}

/// Drops the columns added after the cut and gives renamed columns their names at the cut. A change whose
/// moment is not known to be after the cut (made by a writer without vigil, noticed later) is left alone.
fn columns_back(db: Db, cut: i64, then: &Epoch, history: &History, back: &mut SchemaBack) -> Result<()> {
    let now = history.active.unwrap_or(then);
    let t = quote(&now.shape.name);
    tracking::drop_triggers(db, now.tbl)?;
    for column in &now.shape.columns {
        let before = then.shape.columns.iter().find(|c| c.slot == column.slot);
        if before.is_some_and(|b| b.name == column.name) {
            continue;
        }
        let slot_changed = |e: &Epoch| match e.shape.columns.iter().find(|c| c.slot == column.slot) {
            Some(c) => before.map_or(true, |b| b.name != c.name),
            None => false,
        };
        let noticed = noticed_in(history, then, slot_changed).map_or(now.first_seq, |e| e.first_seq);
        let since = last_schema_sighting(db, noticed)?;
        if !sighted_after(db, since, cut)? {
            back.notes.push(json!({"table": now.shape.name, "column": column.name, "note": format!(
                "changed by a writer without vigil at an unknown moment between seq {since} and {noticed}, around \
                 the cut: left as it is now; restore to {{\"seq\": {since}}} for the state before the change")}));
            continue;
        }
        match before {
            None => {
                let note = match drop_added_column(db, &t, &column.name) {
                    Ok(dropped) if dropped.is_empty() => "added after the cut: dropped".to_string(),
                    Ok(dropped) => {
                        format!("added after the cut: dropped, with {} made after it too", dropped.join(", "))
                    }
                    Err(e) => format!("added after the cut and kept: {}", e.message()),
                };
                back.notes.push(json!({"table": now.shape.name, "column": column.name, "note": note}));
            }
            Some(old) => {
                db.exec(&format!(
                    "ALTER TABLE main.{t} RENAME COLUMN {} TO {}",
                    quote(&column.name),
                    quote(&old.name)
                ))?;
                back.notes.push(json!({"table": now.shape.name, "column": old.name,
                    "note": format!("renamed {} after the cut: renamed back", column.name)}));
            }
        }
    }
    Ok(())
}

/// Runs a CREATE TABLE statement the journal kept: exactly one statement, a CREATE TABLE of that name (the
/// journal's tables are in the database file, so their text is as hostile as any file's).
fn create_table_again(db: Db, name: &str, sql: &str) -> Result<()> {
    let refused = || {
        Error::new(format!(
            "the journal's CREATE statement for {} is not a single CREATE TABLE of it: nothing was restored",
            crate::error::quoted(name)
        ))
    };
    let head: String = sql.trim_start().chars().take(12).collect::<String>().to_ascii_uppercase();
    if !head.starts_with("CREATE TABLE") || !db.is_single_statement(sql)? {
        return Err(refused());
    }
    db.exec(sql)?;
    if super::shape::untrackable(db, name)?.is_some() {
        return Err(refused());
    }
    Ok(())
}

/// Drops a column added after the cut. Indexes, triggers and views that name it were made after the cut too
/// (the column did not exist before): SQLite refuses the drop while they exist, so they go first, each named in
/// SQLite's refusal. Returns what went with it.
fn drop_added_column(db: Db, t: &str, column: &str) -> Result<Vec<String>> {
    let mut dropped = Vec::new();
    for _ in 0..32 {
        let Err(e) = db.exec(&format!("ALTER TABLE main.{t} DROP COLUMN {}", quote(column))) else {
            return Ok(dropped);
        };
        let message = e.message().to_string();
        let blocker = ["index", "trigger", "view"].into_iter().find_map(|kind| {
            let rest = message.strip_prefix(&format!("error in {kind} "))?;
            Some((kind, rest.split(" after drop column").next()?.to_string()))
        });
        let Some((kind, name)) = blocker else { return Err(e) };
        if name.starts_with("vigil_") || name.starts_with("sqlite_") {
            return Err(e);
        }
        db.exec(&format!("DROP {} main.{}", kind.to_ascii_uppercase(), quote(&name)))?;
        dropped.push(format!("{kind} {}", crate::error::quoted(&name)));
    }
    Err(Error::new("too many objects name the column"))
}

/// Creates a table dropped after the cut again, with its rows at the cut replayed from the journal, when the
/// journal holds its whole life; otherwise the restore stops with the reason.
fn rebuild(
    db: Db,
    cut: i64,
    history: &History,
    then: &Epoch,
    epochs: &HashMap<i64, Epoch>,
    back: &mut SchemaBack,
) -> Result<()> {
    let name = &then.shape.name;
    let followed_from_birth = history.all.first().is_some_and(|first| first.complete);
    if !followed_from_birth {
        return Err(undo::dropped_table_error(name));
    }
    create_table_again(db, name, &then.shape.create_sql)?;
    let ids: HashSet<i64> = history.all.iter().map(|e| e.tbl).collect();
    let mut rows: HashMap<Key, Entry> = HashMap::new();
    undo::each_change(db, "seq <= ?1", cut, epochs, |change| {
        if !ids.contains(&change.epoch.tbl) || change.op == op::SCHEMA {
            return Ok(());
        }
        if let Some(old) = &change.old {
            rows.remove(&undo::key_of(&then.shape, old).0);
        }
        if let Some(new) = change.new {
            let (key, key_values) = undo::key_of(&then.shape, &new);
            rows.insert(key, Entry { key_values, image: Some(new) });
        }
        Ok(())
    })?;
    back.rows_rebuilt += undo::apply_table(db, &then.shape, &rows)?;
    back.rebuilt.insert(name.clone());
    back.notes
        .push(json!({"table": name, "note": "dropped after the cut: created again and refilled from the journal"}));
    Ok(())
}
