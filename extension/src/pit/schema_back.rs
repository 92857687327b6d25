//! The schema side of a restore: puts a copy's tables back into the shape they had at the cut, as far as the
//! journal knows it. Columns added after the cut are dropped and renamed ones get their old names back; a
//! table dropped after the cut is created again and refilled from the journal when the journal holds all its
//! rows (it was empty when journaling of it began); a table first journaled after the cut is kept as it was
//! then, and the result says so.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value as Json};

use super::tracking::{self, Epoch};
use super::undo::{self, Entry, Key};
use crate::error::Result;
use crate::sqlite::Db;
use crate::store::pit::op;
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
        match (history.at_cut, history.active) {
            (Some(then), Some(now)) if then.tbl != now.tbl => columns_back(db, then, now, &mut back)?,
            (Some(_), _) => {}
            (None, _) if exists => {
                let since = history.all.iter().map(|e| e.first_seq).filter(|s| *s > cut).min();
                back.absent_at_cut.insert(name.clone());
                back.notes.push(json!({"table": name, "note": format!(
                    "journaled only since seq {}, after the cut: left as it is now", since.unwrap_or(0))}));
            }
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

/// Drops the columns added after the cut and gives renamed columns their names at the cut.
fn columns_back(db: Db, then: &Epoch, now: &Epoch, back: &mut SchemaBack) -> Result<()> {
    let t = quote(&now.shape.name);
    tracking::drop_triggers(db, now.tbl)?;
    for column in &now.shape.columns {
        match then.shape.columns.iter().find(|c| c.slot == column.slot) {
            None => {
                let sql = format!("ALTER TABLE main.{t} DROP COLUMN {}", quote(&column.name));
                if let Err(e) = db.exec(&sql) {
                    back.notes.push(json!({"table": now.shape.name, "column": column.name,
                        "note": format!("added after the cut and kept: {}", e.message())}));
                } else {
                    back.notes.push(
                        json!({"table": now.shape.name, "column": column.name, "note": "added after the cut: dropped"}),
                    );
                }
            }
            Some(old) if old.name != column.name => {
                db.exec(&format!(
                    "ALTER TABLE main.{t} RENAME COLUMN {} TO {}",
                    quote(&column.name),
                    quote(&old.name)
                ))?;
                back.notes.push(json!({"table": now.shape.name, "column": old.name, "note": format!("renamed {} after the cut: renamed back", column.name)}));
            }
            Some(_) => {}
        }
    }
    Ok(())
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
    db.exec(&then.shape.create_sql)?;
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
