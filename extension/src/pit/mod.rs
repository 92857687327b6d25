//! pit_journal: every change from every connection journaled by triggers in the database file, and the
//! database restored to any instant of the journal's window. See docs/api.md ("Point in time").

pub mod capture;
pub mod cut;
pub mod journal;
pub mod marks;
pub mod prune;
pub mod restore;
mod schema_back;
pub mod shape;
pub mod tracking;
pub mod txn;
mod undo;
pub mod window;

use serde_json::{json, Value as Json};

use crate::error::{Error, Result};
use crate::sqlite::{Db, Value};
use crate::store::pit::{self as store, op, LOG, TABLES};

/// The table argument of pit_enable/pit_disable: a table name or '*' (every table); none means '*'.
fn which_tables(args: &[Value]) -> Result<String> {
    match args.first() {
        None | Some(Value::Null) => Ok("*".into()),
        Some(Value::Text(name)) if !name.is_empty() => Ok(name.clone()),
        Some(other) => Err(Error::new(format!(
            "the first argument is a table name or '*' (every table), not {}",
            crate::error::describe(other)
        ))),
    }
}

/// `pit_enable([table | '*' [, options]])`.
pub fn pit_enable(db: Db, args: &[Value]) -> Result<Value> {
    let which = which_tables(args).map_err(|e| e.context("bad arguments"))?;
    if args.get(1).is_some_and(|o| !matches!(o, Value::Null) && o.as_str().map(str::trim) != Some("{}")) {
        return Err(Error::new("pit_enable takes no options in this version: pass NULL or '{}'").context("bad options"));
    }
    let mut result = tracking::enable(db, &which)?;
    result["transactions"] = json!(txn_mode(db));
    Ok(Value::Text(result.to_string()))
}

/// `pit_disable([table | '*'])`.
pub fn pit_disable(db: Db, args: &[Value]) -> Result<Value> {
    let which = which_tables(args).map_err(|e| e.context("bad arguments"))?;
    Ok(Value::Text(tracking::disable(db, &which)?.to_string()))
}

/// What this connection records as transaction ids.
fn txn_mode(db: Db) -> &'static str {
    let expr = match store::db_id(db) {
        Ok(id) => store::txn_expr(&id),
        Err(_) => return "unknown",
    };
    match db.query_value(&format!("SELECT {expr}"), &[]) {
        Ok(Value::Integer(_)) => "exact on this connection (vigil is loaded); NULL for writers without vigil",
        _ => "unknown on this connection: vigil could not take over sqlite_compileoption_used (loaded while a statement ran?)",
    }
}

/// `pit_tick()`: a seal, an exact cut point, and a moment to notice schema changes.
pub fn pit_tick(db: Db, args: &[Value]) -> Result<Value> {
    if !args.is_empty() {
        return Err(Error::new("pit_tick() takes no arguments").context("bad arguments"));
    }
    if !store::exists(db)? {
        return Err(Error::new("this database has no journal: run SELECT pit_enable('*') first"));
    }
    if !db.is_autocommit() {
        return Err(Error::new(
            "pit_tick() seals between transactions: call it outside BEGIN … COMMIT, so that the seal is a \
             transaction of its own",
        ));
    }
    // One write transaction: no other writer's schema change can fall between what sync saw and the seal,
    // so the seal is an exact sighting of the schema (restores rely on it to date foreign schema changes).
    db.exec("BEGIN IMMEDIATE")?;
    // Probe copies still there belong to no running statement (writers take turns, and this is one): stale.
    let sealed = db
        .exec(&format!("DELETE FROM main.{}", store::PEND))
        .and_then(|_| tracking::sync(db))
        .and_then(|noticed| Ok((noticed, store::append_event_at(db, op::TICK, None, "{}")?)))
        // pit_journal's time summary (marks.rs), under the same write lock (a transaction of its own would
        // have to upgrade a read to a write and could fail at once); its failure rolls back only itself.
        .map(|(noticed, seal)| (noticed, seal, marks::update(db).err()));
    let (noticed, (seq, at), marks_error) = match sealed.and_then(|done| db.exec("COMMIT").map(|_| done)) {
        Ok(done) => done,
        Err(e) => {
            let _ = db.exec("ROLLBACK");
            return Err(e);
        }
    };
    let mut sealed = json!({"seq": seq, "at": cut::rfc3339(db, at), "noticed": noticed.events});
    if let Some(e) = marks_error {
        sealed["marks_error"] = json!(e.message());
    }
    Ok(Value::Text(sealed.to_string()))
}

/// `pit_status()`.
pub fn pit_status(db: Db, args: &[Value]) -> Result<Value> {
    if !args.is_empty() {
        return Err(Error::new("pit_status() takes no arguments").context("bad arguments"));
    }
    if !store::exists(db)? {
        return Ok(Value::Text(
            json!({"enabled": false, "hint": "SELECT pit_enable('*') starts the journal"}).to_string(),
        ));
    }
    Ok(Value::Text(status(db)?.to_string()))
}

fn status(db: Db) -> Result<Json> {
    let (start_seq, start_at) = window::start(db)?;
    let counts = db.query(
        &format!("SELECT count(*), count(txn), min(seq), max(seq), max(at), sum(op = {}) FROM main.{LOG}", op::SCHEMA),
        &[],
    )?;
    let c = &counts[0];
    let rows = c[0].as_i64().unwrap_or(0);
    let bytes = db
        .query_value(&format!("SELECT sum(pgsize) FROM main.dbstat WHERE name = '{LOG}'"), &[])
        .ok()
        .and_then(|v| v.as_i64());
    let tables = tracking::active_epochs(db)?
        .iter()
        .map(|e| json!({"table": e.shape.name, "key": e.shape.key.as_str(), "since_seq": e.first_seq}))
        .collect::<Vec<_>>();
    let version = db.query_value("PRAGMA main.schema_version", &[])?;
    let epochs = db.query_value(&format!("SELECT count(*) FROM main.{TABLES}"), &[])?;
    Ok(json!({
        "enabled": true,
        "lineage": store::meta(db, "lineage")?.as_str(),
        "tracking": store::meta(db, "tracking")?.as_str().unwrap_or("tables"),
        "tables": tables,
        "window": {
            "earliest": cut::rfc3339(db, start_at), "earliest_seq": start_seq,
            "latest": "now", "latest_seq": c[3].as_i64().unwrap_or(start_seq),
            "last_change": c[4].as_f64().map(|a| cut::rfc3339(db, a)),
        },
        "journal": {
            "rows": rows, "bytes": bytes,
            "rows_without_exact_txn": rows - c[1].as_i64().unwrap_or(0),
            "share_without_exact_txn": if rows > 0 { (rows - c[1].as_i64().unwrap_or(0)) as f64 / rows as f64 } else { 0.0 },
        },
        "schema_changes_seen": c[5].as_i64().unwrap_or(0),
        "schema_epochs": epochs.as_i64(),
        "schema_change_pending": store::meta(db, "schema_version")? != version,
        "transactions": txn_mode(db),
        "forks": forks_json(db)?,
        // The checkpoint pit_prune started the window at (backup retention keeps it): older instants are there.
        "window_checkpoint": store::meta(db, "horizon_checkpoint")?.as_str().and_then(|t| serde_json::from_str::<Json>(t).ok()),
        "checkpoints": checkpoints_known(db)?,
    }))
}

/// The verified backups vigil recorded for this database (its backup log), newest first, each with the journal
/// position its manifest records: the checkpoints a restore may start from (`{"base": path}`) and pit_prune
/// may prune below. A backup whose files are gone, or of another lineage, says so.
fn checkpoints_known(db: Db) -> Result<Json> {
    let lineage = store::meta(db, "lineage")?;
    let mut known = Vec::new();
    for recorded in crate::store::backup_log::verified(db, "main", 20)? {
        let path = std::path::Path::new(&recorded.path);
        let entry = match crate::backup::manifest::read(path) {
            Ok((manifest, _)) => match manifest.pit {
                Some(pit) => json!({"path": recorded.path, "created_at": recorded.created_at,
                    "cut_seq": pit.cut_seq, "cut_at": pit.cut_at,
                    "same_lineage": lineage.as_str() == Some(pit.lineage.as_str())}),
                None => continue,
            },
            Err(_) => json!({"path": recorded.path, "created_at": recorded.created_at, "missing": true}),
        };
        known.push(entry);
    }
    Ok(Json::Array(known))
}

/// The in-place restores this database went through, times as RFC 3339: the instants from each `cut_at` to
/// its `restored_at` belong to the replaced history (a gap in the window), whose last state is its safety backup.
fn forks_json(db: Db) -> Result<Json> {
    let text = |v: &Json| v.as_f64().map(|j| cut::rfc3339(db, j));
    Ok(Json::Array(
        store::forks(db)?
            .iter()
            .map(|f| {
                json!({"lineage": f["lineage"], "parent": f["parent"], "cut_seq": f["cut_seq"],
                       "cut_at": text(&f["cut_at"]), "restored_at": text(&f["restored_at"]),
                       "replaced_to_seq": f["replaced_to_seq"], "safety_backup": f["safety_backup"],
                       "gap": "instants between cut_at and restored_at are in the safety backup only"})
            })
            .collect(),
    ))
}

/// Registers vigil's `sqlite_compileoption_used` on a connection (see [`txn`]). A failure (SQLite refuses to
/// replace a built-in while a statement runs) leaves the core function: ids are then NULL, as for any writer
/// without vigil, which pit_status reports.
pub fn install_txn_override(db: Db) {
    crate::define_txn_override(db);
}
