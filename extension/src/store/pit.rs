//! The point-in-time journal's tables, in the journaled database itself (so every writer's triggers reach
//! them and every backup carries them):
//!
//! - `vigil_pit_meta(key, value)`: format, lineage, tracking mode, last schema version seen, horizon, forks.
//! - `vigil_pit_tables`: one row per tracked table and schema epoch: its key kind, its columns and the image
//!   slot of each, its CREATE statement, and the journal range it was current for.
//! - `vigil_pit_log`: one row per change, in commit order (`seq`). Row images live in slot pairs `o<k>`/`n<k>`
//!   declared without a type, so a value keeps its exact storage class and bytes (1 stays integer, 1.0 real,
//!   BLOBs and ±Inf stay as they are) and no function runs in the writer's trigger.
//! - `vigil_pit_pend`: rows a REPLACE is about to delete, probed by BEFORE triggers; scratch only.
//! - `vigil_pit_marks`: the least and greatest `at` per block of seqs, so that pit_journal finds rows by time
//!   without an index (see `pit::marks`).

use crate::error::Result;
use crate::sqlite::{Db, Value};

pub const META: &str = "vigil_pit_meta";
pub const TABLES: &str = "vigil_pit_tables";
pub const LOG: &str = "vigil_pit_log";
pub const PEND: &str = "vigil_pit_pend";
pub const MARKS: &str = "vigil_pit_marks";

/// The layout version written into `vigil_pit_meta`.
pub const FORMAT: i64 = 1;

/// An UPDATE's new image holds only the columns whose value changed (exactly: storage class, bytes, the sign
/// of a zero); `nmask` has bit `slot - 1` set for each. Tables with more slots than this journal full new
/// images (`nmask` NULL).
pub const MASKED_SLOTS: usize = 62;

/// Journal operations (`vigil_pit_log.op`).
pub mod op {
    pub const INSERT: i64 = 1;
    pub const UPDATE: i64 = 2;
    pub const DELETE: i64 = 3;
    /// A schema change vigil noticed (table created, altered, dropped; a VACUUM).
    pub const SCHEMA: i64 = 8;
    /// A seal written by `pit_tick()`: every change before it committed before it.
    pub const TICK: i64 = 9;
}

/// Whether a name is one of vigil's journal tables (never tracked, never restored).
pub fn is_pit_table(name: &str) -> bool {
    name.starts_with("vigil_pit_")
}

/// Whether the database has a journal.
pub fn exists(db: Db) -> Result<bool> {
    super::has_table(db, "main", LOG)
}

/// Creates the journal tables (once). The log starts without image slots; [`widen`] adds them.
pub fn create(db: Db) -> Result<()> {
    db.exec(&format!(
        "CREATE TABLE IF NOT EXISTS main.{META}(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS main.{TABLES}(
           tbl INTEGER PRIMARY KEY, name TEXT NOT NULL, epoch INTEGER NOT NULL, key_kind TEXT NOT NULL,
           columns TEXT NOT NULL, rowid_alias TEXT, create_sql TEXT, first_seq INTEGER NOT NULL, last_seq INTEGER,
           complete INTEGER NOT NULL DEFAULT 0);
         CREATE TABLE IF NOT EXISTS main.{LOG}(
           seq INTEGER PRIMARY KEY, txn, at, tbl, op, rid, rid_new, nmask);
         CREATE TABLE IF NOT EXISTS main.{PEND}(tbl, rid);
         CREATE INDEX IF NOT EXISTS main.vigil_pit_pend_key ON {PEND}(tbl, rid);"
    ))?;
    create_marks(db)
}

/// pit_journal's time summary (see `pit::marks`): created with the journal, so that its first use is not a
/// schema change.
pub fn create_marks(db: Db) -> Result<()> {
    db.exec(&format!("CREATE TABLE IF NOT EXISTS main.{MARKS}(block INTEGER PRIMARY KEY, lo, hi)"))
}

/// The number of image slot pairs the log has.
pub fn width(db: Db) -> Result<usize> {
    let n =
        db.query_value(&format!("SELECT count(*) FROM pragma_table_info('{LOG}') WHERE name GLOB 'o[0-9]*'"), &[])?;
    Ok(n.as_i64().unwrap_or(0) as usize)
}

/// Makes room for images of `slots` columns: adding a column without a default only rewrites the schema.
pub fn widen(db: Db, slots: usize) -> Result<()> {
    for k in width(db)? + 1..=slots {
        db.exec(&format!(
            "ALTER TABLE main.{LOG} ADD COLUMN o{k}; ALTER TABLE main.{LOG} ADD COLUMN n{k};
             ALTER TABLE main.{PEND} ADD COLUMN o{k};"
        ))?;
    }
    Ok(())
}

pub fn meta(db: Db, key: &str) -> Result<Value> {
    db.query_value(&format!("SELECT value FROM main.{META} WHERE key = ?1"), &[Value::from(key)])
}

pub fn set_meta(db: Db, key: &str, value: Value) -> Result<()> {
    db.query(&format!("INSERT OR REPLACE INTO main.{META}(key, value) VALUES(?1, ?2)"), &[Value::from(key), value])?;
    Ok(())
}

/// The `event` of a schema row's JSON detail (`track`, `created`, `alter`, `retrack`, `drop`, `rowids`…).
pub fn event_name(detail: Option<&str>) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(detail?).ok()?;
    json["event"].as_str().map(str::to_string)
}

/// The event of the schema row at `seq`, if that row is one.
pub fn event_at(db: Db, seq: i64) -> Result<Option<String>> {
    let detail = db.query_value(
        &format!("SELECT rid_new FROM main.{LOG} WHERE seq = ?1 AND op = {}", op::SCHEMA),
        &[seq.into()],
    )?;
    Ok(event_name(detail.as_str()))
}

/// A random 64-bit id as hex (a lineage, a journal's id): safe inside an SQL literal.
pub fn new_id(db: Db) -> Result<Value> {
    db.query_value("SELECT lower(hex(randomblob(8)))", &[])
}

/// The seq the next journal row will get: the last one plus one. The log is not AUTOINCREMENT (that would
/// rewrite `sqlite_sequence` for every journaled change); instead nothing ever removes the last row but a
/// restore's cut, which leaves a `fork` row after every seq the cut history used ([`mark_fork`]), and a
/// prune that emptied the journal leaves its horizon.
pub fn next_seq(db: Db) -> Result<i64> {
    let next = db.query_value(
        &format!(
            "SELECT max(coalesce((SELECT max(seq) FROM main.{LOG}), 0),
                        coalesce((SELECT value FROM main.{META} WHERE key = 'horizon_seq'), 0)) + 1"
        ),
        &[],
    )?;
    Ok(next.as_i64().unwrap_or(1))
}

/// Writes the row that makes the journal go on after `used` (the last seq a replaced history used): an op-8
/// `fork` event, so that no later row takes a seq the other history gave.
pub fn mark_fork(db: Db, used: i64) -> Result<i64> {
    let seq = next_seq(db)?.max(used + 1);
    let txn = txn_expr(&db_id(db)?);
    db.query(
        &format!(
            "INSERT INTO main.{LOG}(seq, txn, at, op, rid_new) VALUES(?1, {txn}, julianday('now'), {}, ?2)",
            op::SCHEMA
        ),
        &[Value::Integer(seq), Value::from(serde_json::json!({"event": "fork", "after_seq": used}).to_string())],
    )?;
    Ok(seq)
}

/// The last journal row's seq, 0 for an empty journal.
pub fn last_seq(db: Db) -> Result<i64> {
    Ok(db.query_value(&format!("SELECT coalesce(max(seq), 0) FROM main.{LOG}"), &[])?.as_i64().unwrap_or(0))
}

/// The txn expression every journal insert uses: NULL in a writer that never loaded vigil (the core
/// function answers 0 for an unknown option), the exact transaction id where vigil overrides
/// `sqlite_compileoption_used` (see `pit::txn`). The database's id makes the override answer only for the
/// journal it belongs to (an attached database has its own).
pub fn txn_expr(db_id: &str) -> String {
    format!("nullif(sqlite_compileoption_used('{TXN_PREFIX}{db_id}'), 0)")
}

pub const TXN_PREFIX: &str = "vigil-pit-txn:";

/// The journal's identity, set once when the journal starts (hex: safe inside an SQL literal).
pub fn db_id(db: Db) -> Result<String> {
    let id = meta(db, "db_id")?;
    Ok(id.as_str().filter(|s| s.bytes().all(|b| b.is_ascii_hexdigit())).unwrap_or("0").to_string())
}

/// Appends a row written by vigil itself (schema change, seal), with the time now; `detail` (JSON) goes in
/// `rid_new`, which such rows do not otherwise use.
pub fn append_event(db: Db, op: i64, tbl: Option<i64>, detail: &str) -> Result<i64> {
    Ok(append_event_at(db, op, tbl, detail)?.0)
}

/// [`append_event`], also returning the row's time: read by RETURNING in the same statement, so nothing is
/// read after the commit (a second read could wait on, and fail for, another writer's lock).
pub fn append_event_at(db: Db, op: i64, tbl: Option<i64>, detail: &str) -> Result<(i64, f64)> {
    let txn = txn_expr(&db_id(db)?);
    let rows = db.query(
        &format!(
            "INSERT INTO main.{LOG}(txn, at, tbl, op, rid_new) VALUES({txn}, julianday('now'), ?1, ?2, ?3)
             RETURNING seq, at"
        ),
        &[Value::from(tbl), Value::Integer(op), Value::from(detail)],
    )?;
    let row = rows.first().ok_or_else(|| crate::error::Error::new("the journal row was not written"))?;
    Ok((row[0].as_i64().unwrap_or(0), row[1].as_f64().unwrap_or(0.0)))
}

/// Where a database's journal stands: the journal position of the committed state a file holds. A backup
/// of a journaled database records it in its manifest (`pit`), which makes the backup a checkpoint.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct Position {
    /// The history the journal belongs to (an in-place restore starts a new one).
    pub lineage: String,
    /// The last journal row the state holds (its `max(seq)`), and that row's time (RFC 3339 UTC).
    pub cut_seq: i64,
    pub cut_at: Option<String>,
    /// The start of the state's own restorable window.
    pub horizon_seq: i64,
    pub horizon_at: Option<String>,
}

/// The journal position of `schema`'s committed state, `None` when it has no journal. Needs no vigil function,
/// so it reads any copy (opened read-only or immutable) as well as the live file.
pub fn position(db: Db, schema: &str) -> Result<Option<Position>> {
    let s = super::quote(schema);
    if !super::has_table(db, &s, LOG)? {
        return Ok(None);
    }
    let meta = |key: &str| format!("(SELECT value FROM {s}.{META} WHERE key = '{key}')");
    let rows = db.query(
        &format!(
            "SELECT {lineage}, last.seq, strftime('%Y-%m-%dT%H:%M:%fZ', last.at),
                    coalesce({horizon_seq}, 0), strftime('%Y-%m-%dT%H:%M:%fZ', coalesce({horizon_at}, {created_at}))
             FROM (SELECT coalesce(max(seq), 0) AS seq, (SELECT at FROM {s}.{LOG} ORDER BY seq DESC LIMIT 1) AS at
                   FROM {s}.{LOG}) AS last",
            lineage = meta("lineage"),
            horizon_seq = meta("horizon_seq"),
            horizon_at = meta("horizon_at"),
            created_at = meta("created_at"),
        ),
        &[],
    )?;
    let r = &rows[0];
    Ok(Some(Position {
        lineage: r[0].as_str().unwrap_or_default().to_string(),
        cut_seq: r[1].as_i64().unwrap_or(0),
        cut_at: r[2].as_str().map(str::to_string),
        horizon_seq: r[3].as_i64().unwrap_or(0),
        horizon_at: r[4].as_str().map(str::to_string),
    }))
}

/// The in-place restores this database went through, oldest first: {parent, lineage, cut_seq, cut_at,
/// restored_at, safety_backup}.
pub fn forks(db: Db) -> Result<Vec<serde_json::Value>> {
    let text = meta(db, "forks")?;
    Ok(text.as_str().and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default())
}

/// Starts a new lineage: the database's history branches off after `cut_seq` (a restore). Seqs after the cut
/// may be used again by the new history; the lineage tells the two apart, as a timeline does in PostgreSQL.
pub fn record_fork(db: Db, cut_seq: i64, cut_at: Option<f64>) -> Result<serde_json::Value> {
    let parent = meta(db, "lineage")?;
    let lineage = new_id(db)?;
    let now = db.query_value("SELECT julianday('now')", &[])?;
    let mut all = forks(db)?;
    all.push(serde_json::json!({"parent": parent.as_str(), "lineage": lineage.as_str(), "cut_seq": cut_seq,
                                "cut_at": cut_at, "restored_at": now.as_f64()}));
    set_meta(db, "forks", Value::from(serde_json::Value::Array(all).to_string()))?;
    set_meta(db, "lineage", lineage.clone())?;
    Ok(serde_json::json!({"lineage": lineage.as_str(), "parent": parent.as_str(), "fork_seq": cut_seq}))
}

/// Completes the fork an in-place restore recorded: the moment the restored state was published (the
/// replaced history ran until then) and the safety backup that holds its last state.
pub fn fork_published(db: Db, safety_backup: Option<&str>) -> Result<()> {
    let mut all = forks(db)?;
    let now = db.query_value("SELECT julianday('now')", &[])?;
    let replaced_to = safety_backup.map(|path| continue_after(db, path)).transpose()?.flatten();
    if let Some(last) = all.last_mut() {
        last["restored_at"] = serde_json::json!(now.as_f64());
        last["safety_backup"] = serde_json::json!(safety_backup);
        last["replaced_to_seq"] = serde_json::json!(replaced_to);
    }
    set_meta(db, "forks", Value::from(serde_json::Value::Array(all).to_string()))
}

/// Makes the new history's journal go on after the last seq the replaced one used (its safety backup holds
/// it), so a seq never names two moments. Returns that seq.
fn continue_after(db: Db, safety_backup: &str) -> Result<Option<i64>> {
    let kept = crate::sqlite::OwnedDb::open(safety_backup, crate::sqlite::open_flags::READ_ONLY, None)?;
    if !exists(kept.db())? {
        return Ok(None);
    }
    let used = next_seq(kept.db())? - 1;
    mark_fork(db, used)?;
    Ok(Some(used))
}

/// After `backup_restore` replaced a journaled database in place: the journal now ends where the backup's
/// did, so the history from there on is a new lineage, and instants between that cut and now belong to the
/// replaced one (its last state is the safety backup).
pub fn fork_after_backup_restore(db: Db, safety_backup: Option<&str>) -> Result<()> {
    if !exists(db)? {
        return Ok(());
    }
    let last = db.query(&format!("SELECT seq, at FROM main.{LOG} ORDER BY seq DESC LIMIT 1"), &[])?;
    let (cut_seq, cut_at) = last.first().map_or((0, None), |r| (r[0].as_i64().unwrap_or(0), r[1].as_f64()));
    record_fork(db, cut_seq, cut_at)?;
    fork_published(db, safety_backup)
}
