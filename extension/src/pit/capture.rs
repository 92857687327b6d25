//! The capture: SQL triggers in the database file, so every writer journals its changes, also processes that
//! never load vigil. Rules every trigger here keeps (see docs/api.md, "What the journal sees"):
//! - only core functions allowed under `PRAGMA trusted_schema=OFF` on SQLite 3.35+ (`julianday`,
//!   `sqlite_compileoption_used`, `nullif`): no JSON, no pragma functions, so no writer ever gets an error;
//! - values copied into untyped slots, never compared or printed, so every storage class stays exact;
//! - no `NEW.rowid` on a table that has none.
//!
//! REPLACE deletes rows without firing delete triggers unless recursive_triggers is on. The BEFORE triggers
//! copy every row the new row's keys could collide with into `vigil_pit_pend`; the AFTER trigger journals as
//! deleted those that are gone (or whose key the new row took) and forgets them. A probe replaces only older
//! copies of the same rows, so a statement nested inside another (a foreign-key action, an application
//! trigger) never drops the outer statement's copies; the DELETE trigger forgets copies of the row it
//! journals, so a copy never outlives its row, and under recursive_triggers a REPLACE's delete is journaled once.

use super::shape::{KeyKind, Shape};
use crate::store::pit::{txn_expr, LOG, MASKED_SLOTS, PEND};
use crate::store::quote;

/// Trigger name suffixes, in creation order.
/// Each pair is a trigger that always runs and one that runs only while probed copies exist (`vigil_pit_pend`
/// is empty between statements almost always): the common write pays for one journal statement. The second of
/// each pair is created after the first, so SQLite, which fires a table's triggers newest first, runs it first.
pub const SUFFIXES: [&str; 10] = ["bi", "bc", "ai", "af", "bu", "bv", "au", "av", "ad", "dv"];

pub fn trigger_name(tbl: i64, suffix: &str) -> String {
    format!("vigil_pit_{tbl}_{suffix}")
}

/// The CREATE TRIGGER statements journaling `shape` as table id `tbl` of the journal `db_id`.
pub fn triggers(shape: &Shape, tbl: i64, db_id: &str) -> Vec<String> {
    #[allow(non_snake_case)]
    let TXN_EXPR = txn_expr(db_id);
    let t = quote(&shape.name);
    let name = |s| quote(&trigger_name(tbl, s));
    let now = "julianday('now')";
    let r = shape.rowid_name;
    let (rid_old, rid_new) = match shape.key.has_rowid() {
        true => (format!("OLD.{r}"), format!("NEW.{r}")),
        false => ("NULL".to_string(), "NULL".to_string()),
    };
    let slots_o = slot_list(shape, "o");
    let slots_n = slot_list(shape, "n");
    let old = value_list(shape, "OLD");
    let new = value_list(shape, "NEW");
    let pend_values = value_list(shape, "p");
    let changed = key_changed(shape);
    let (mask, new_changed) = changed_columns(shape);
    // The probed rows that are gone, or whose key the new row took, when `when` holds: journaled as deleted,
    // then forgotten.
    // An UPDATE takes another row's key only when its own key moved (a copy of the row itself may be left
    // from an earlier probe, and it is not gone).
    let moved = key_moved(shape);
    let gone = |pend: &str, when: &str, update: bool| {
        let took_key = pend_is_new_key(shape, pend);
        let took_key = if update { format!("(({took_key}) AND ({moved}))") } else { took_key };
        format!(
            "{pend}.tbl = {tbl} AND ({when}) AND ({took_key} OR NOT EXISTS (SELECT 1 FROM {t} AS x WHERE {}))",
            pend_row_matches(shape, "x", pend)
        )
    };
    let flush = |when: &str, update: bool| {
        format!(
            "INSERT INTO {LOG}(txn, at, tbl, op, rid{slots_o}) SELECT {TXN_EXPR}, {now}, {tbl}, 3, p.rid{pend_values}
             FROM {PEND} AS p WHERE {}; DELETE FROM {PEND} WHERE {};",
            gone("p", when, update),
            gone(PEND, when, update)
        )
    };
    let pending = format!("EXISTS (SELECT 1 FROM {PEND} WHERE tbl = {tbl})");
    let (clear_new, probe_new) = probe(shape, tbl, "NEW", None);
    let (clear_update, probe_update) = probe(shape, tbl, "NEW", Some("OLD"));
    vec![
        format!("CREATE TRIGGER main.{} BEFORE INSERT ON {t} BEGIN {probe_new} END", name("bi")),
        format!("CREATE TRIGGER main.{} BEFORE INSERT ON {t} WHEN {pending} BEGIN {clear_new} END", name("bc")),
        format!(
            "CREATE TRIGGER main.{} AFTER INSERT ON {t} BEGIN
             INSERT INTO {LOG}(txn, at, tbl, op, rid{slots_n}) VALUES({TXN_EXPR}, {now}, {tbl}, 1, {rid_new}{new}); END",
            name("ai")
        ),
        format!("CREATE TRIGGER main.{} AFTER INSERT ON {t} WHEN {pending} BEGIN {} END", name("af"), flush("1", false)),
        format!("CREATE TRIGGER main.{} BEFORE UPDATE ON {t} WHEN {changed} BEGIN {probe_update} END", name("bu")),
        format!(
            "CREATE TRIGGER main.{} BEFORE UPDATE ON {t} WHEN ({changed}) AND {pending} BEGIN {clear_update} END",
            name("bv")
        ),
        format!(
            "CREATE TRIGGER main.{} AFTER UPDATE ON {t} BEGIN
             INSERT INTO {LOG}(txn, at, tbl, op, rid, rid_new, nmask{slots_o}{slots_n})
             VALUES({TXN_EXPR}, {now}, {tbl}, 2, {rid_old}, nullif({rid_new}, {rid_old}), {mask}{old}{new_changed}); END",
            name("au")
        ),
        format!(
            "CREATE TRIGGER main.{} AFTER UPDATE ON {t} WHEN ({changed}) AND {pending} BEGIN {} {} END",
            name("av"),
            // A copy of this row left by an earlier INSERT OR IGNORE or upsert goes first: the row moved, so the
            // flush would take the copy for a deleted row. The flush runs only after a probe of this row.
            forget(shape, tbl, &moved),
            flush("1", true)
        ),
        format!(
            "CREATE TRIGGER main.{} AFTER DELETE ON {t} BEGIN
             INSERT INTO {LOG}(txn, at, tbl, op, rid{slots_o}) VALUES({TXN_EXPR}, {now}, {tbl}, 3, {rid_old}{old}); END",
            name("ad")
        ),
        format!("CREATE TRIGGER main.{} AFTER DELETE ON {t} WHEN {pending} BEGIN {} END", name("dv"), forget(shape, tbl, "1")),
    ]
}

/// Forgets probed copies of the OLD row, when `when` holds: a copy left by an INSERT OR IGNORE or an upsert
/// must not outlive its row (or its key), or a later flush would journal it as deleted. Under
/// recursive_triggers a REPLACE's delete fires this too, so its probed copy is not journaled a second time.
fn forget(shape: &Shape, tbl: i64, when: &str) -> String {
    let same_key = match shape.key {
        KeyKind::PrimaryKey => shape
            .primary_key()
            .iter()
            .map(|(c, coll)| format!("{PEND}.o{} = OLD.{} COLLATE {}", slot_of(shape, c), quote(c), quote(coll)))
            .collect::<Vec<_>>()
            .join(" AND "),
        _ => format!("{PEND}.rid = OLD.{}", shape.rowid_name),
    };
    format!("DELETE FROM {PEND} WHERE {PEND}.tbl = {tbl} AND ({when}) AND {same_key};")
}

/// Whether an UPDATE moved the row to another key.
fn key_moved(shape: &Shape) -> String {
    match shape.key {
        KeyKind::PrimaryKey => shape
            .primary_key()
            .iter()
            .map(|(c, _)| format!("NEW.{q} IS NOT OLD.{q} COLLATE BINARY", q = quote(c)))
            .collect::<Vec<_>>()
            .join(" OR "),
        _ => format!("NEW.{r} IS NOT OLD.{r}", r = shape.rowid_name),
    }
}

/// `, o3, o5…` for the shape's slots.
fn slot_list(shape: &Shape, prefix: &str) -> String {
    shape.columns.iter().map(|c| format!(", {prefix}{}", c.slot)).collect()
}

/// `, OLD."a", OLD."b"…` (or `p.o3…` for the pending table's rows).
fn value_list(shape: &Shape, row: &str) -> String {
    match row {
        "p" => shape.columns.iter().map(|c| format!(", p.o{}", c.slot)).collect(),
        _ => shape.columns.iter().map(|c| format!(", {row}.{}", quote(&c.name))).collect(),
    }
}

/// An UPDATE's new image: only the columns whose value changed, and the mask saying which (see
/// `store::pit::MASKED_SLOTS`); wider tables journal the whole new row and a NULL mask.
fn changed_columns(shape: &Shape) -> (String, String) {
    if shape.max_slot() > MASKED_SLOTS {
        return ("NULL".into(), value_list(shape, "NEW"));
    }
    let differs = |c: &str| {
        let c = quote(c);
        // Exact: IS under BINARY compares bytes and numbers, typeof tells 1 from 1.0, and a real zero is always
        // kept (IS cannot tell 0.0 from -0.0).
        format!(
            "(NEW.{c} IS NOT OLD.{c} COLLATE BINARY OR typeof(NEW.{c}) <> typeof(OLD.{c}) \
             OR (typeof(NEW.{c}) = 'real' AND NEW.{c} = 0))"
        )
    };
    let mask: Vec<String> = shape.columns.iter().map(|c| format!("({} << {})", differs(&c.name), c.slot - 1)).collect();
    let values: String = shape
        .columns
        .iter()
        .map(|c| format!(", CASE WHEN {} THEN NEW.{} END", differs(&c.name), quote(&c.name)))
        .collect();
    let mask = if mask.is_empty() { "0".to_string() } else { mask.join(" | ") };
    (mask, values)
}

/// When an UPDATE may collide with another row: its rowid or a column of a UNIQUE constraint changed (compared
/// exactly, so a case change under NOCASE counts).
fn key_changed(shape: &Shape) -> String {
    // A partial UNIQUE index takes in a row when any column its WHERE reads changes: probe every UPDATE (the
    // flush journals only rows really gone, so probing more is safe).
    if shape.uniques.iter().any(|u| u.partial) {
        return "1".into();
    }
    let mut terms: Vec<String> = Vec::new();
    if shape.key.has_rowid() {
        terms.push(format!("NEW.{r} IS NOT OLD.{r}", r = shape.rowid_name));
    }
    for unique in &shape.uniques {
        for (column, _) in &unique.columns {
            let c = quote(column);
            let term = format!("NEW.{c} IS NOT OLD.{c} COLLATE BINARY");
            if !terms.contains(&term) {
                terms.push(term);
            }
        }
    }
    if terms.is_empty() {
        "0".into()
    } else {
        terms.join(" OR ")
    }
}

/// Copies into the pending table the rows whose key the `row` (NEW) would collide with; `except` names the
/// row being updated, which cannot collide with itself.
/// Returns (the statement that drops older copies of the same rows, the statement that copies them).
fn probe(shape: &Shape, tbl: i64, row: &str, except: Option<&str>) -> (String, String) {
    let t = quote(&shape.name);
    let mut terms: Vec<String> = Vec::new();
    if shape.key.has_rowid() {
        terms.push(format!("{r} = {row}.{r}", r = shape.rowid_name));
    }
    for unique in &shape.uniques {
        terms.push(equal_columns(&unique.columns, "", &format!("{row}.")));
    }
    if terms.is_empty() {
        // Every table has a rowid or a primary key: not reached, but a trigger body may not be empty.
        return ("SELECT 1;".into(), "SELECT 1;".into());
    }
    let rid = if shape.key.has_rowid() { shape.rowid_name } else { "NULL" };
    let columns: String = shape.columns.iter().map(|c| format!(", {}", quote(&c.name))).collect();
    let exclude = match (except, shape.key) {
        (None, _) => String::new(),
        (Some(old), KeyKind::PrimaryKey) => {
            format!(" AND NOT ({})", equal_columns(&shape.primary_key(), "", &format!("{old}.")))
        }
        (Some(old), _) => format!(" AND {r} IS NOT {old}.{r}", r = shape.rowid_name),
    };
    let conflicts = format!("({}){exclude}", terms.join(" OR "));
    // Copies of the same rows left by an earlier probe go first; copies of other rows may belong to a
    // statement still running around this one (a foreign-key action, an application trigger), so they stay.
    let stale = match shape.key {
        KeyKind::PrimaryKey => format!(
            "EXISTS (SELECT 1 FROM {t} WHERE {conflicts} AND {})",
            shape
                .primary_key()
                .iter()
                .map(|(c, coll)| format!("{} = {PEND}.o{} COLLATE {}", quote(c), slot_of(shape, c), quote(coll)))
                .collect::<Vec<_>>()
                .join(" AND ")
        ),
        _ => format!("{PEND}.rid IN (SELECT {r} FROM {t} WHERE {conflicts})", r = shape.rowid_name),
    };
    (
        format!("DELETE FROM {PEND} WHERE {PEND}.tbl = {tbl} AND {stale};"),
        format!(
            "INSERT INTO {PEND}(tbl, rid{}) SELECT {tbl}, {rid}{columns} FROM {t} WHERE {conflicts};",
            slot_list(shape, "o")
        ),
    )
}

/// `(a = NEW."a" COLLATE "NOCASE" AND b = …)`: a match under the constraint's own collations.
fn equal_columns(columns: &[(String, String)], left: &str, right: &str) -> String {
    let parts: Vec<String> = columns
        .iter()
        .map(|(c, coll)| format!("{left}{q} = {right}{q} COLLATE {}", quote(coll), q = quote(c)))
        .collect();
    format!("({})", parts.join(" AND "))
}

/// A pending row (`pend`: its table name or alias) is the one the new row replaced in place: it had the new
/// row's key.
fn pend_is_new_key(shape: &Shape, pend: &str) -> String {
    match shape.key {
        KeyKind::PrimaryKey => {
            let parts: Vec<String> = shape
                .primary_key()
                .iter()
                .map(|(c, coll)| format!("{pend}.o{} = NEW.{} COLLATE {}", slot_of(shape, c), quote(c), quote(coll)))
                .collect();
            parts.join(" AND ")
        }
        _ => format!("{pend}.rid = NEW.{}", shape.rowid_name),
    }
}

/// The table row `x` that has the pending row's key.
fn pend_row_matches(shape: &Shape, x: &str, pend: &str) -> String {
    match shape.key {
        KeyKind::PrimaryKey => {
            let parts: Vec<String> = shape
                .primary_key()
                .iter()
                .map(|(c, coll)| format!("{x}.{} = {pend}.o{} COLLATE {}", quote(c), slot_of(shape, c), quote(coll)))
                .collect();
            parts.join(" AND ")
        }
        _ => format!("{x}.{} = {pend}.rid", shape.rowid_name),
    }
}

fn slot_of(shape: &Shape, column: &str) -> usize {
    shape.columns.iter().find(|c| c.name == column).map(|c| c.slot).unwrap_or(0)
}
