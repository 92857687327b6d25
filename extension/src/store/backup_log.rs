//! `vigil_backup_log`: a row in the source database for every backup, which health_report's `last_backup`
//! check reads. Written through a read-write connection of its own that commits at once, also when the
//! caller's connection is read-only (the `vigil` CLI backs up through one): on the calling connection the
//! commit would wait for the end of the caller's statement, where a busy database would turn a finished
//! backup into an error. Inside the caller's own transaction (and for in-memory databases) it is written
//! there, in a savepoint. A file that cannot be written (read-only file or medium) gets no row, and the
//! error says why. Paths are stored absolute so that a check run from any directory finds the files.

use super::quote;
use crate::error::{Error, Result};
use crate::sqlite::{open_flags, Db, OwnedDb, Value};

pub const TABLE: &str = "vigil_backup_log";
/// Rows kept; older ones are deleted as new ones arrive.
const KEEP: i64 = 1000;

/// One backup, as recorded.
pub struct Entry<'a> {
    pub backup_id: &'a str,
    pub created_at: &'a str,
    /// Where the artifact is.
    pub path: &'a str,
    pub bytes: u64,
    pub sha256: &'a str,
    pub compression: &'a str,
    /// The check asked for (quick, full, none) and its result.
    pub verify: &'a str,
    pub verification: &'a str,
    pub duration_ms: f64,
}

pub fn record(caller: Db, schema: &str, entry: &Entry, busy_timeout_ms: i32) -> Result<()> {
    match caller.filename(schema)? {
        Some(path) if caller.is_autocommit() => {
            let own = OwnedDb::open(&path, open_flags::READ_WRITE, caller.vfs_name(schema)?.as_deref())?;
            // SQLite falls back to read-only when the file or its medium cannot be written.
            if own.db().is_readonly("main")? == Some(true) {
                return Err(Error::new(format!("{path} is read-only (the file or its medium)")));
            }
            own.db().set_busy_timeout(busy_timeout_ms)?;
            super::in_write_transaction(own.db(), || write(own.db(), "main", entry))
        }
        _ if caller.is_readonly(schema)? == Some(true) => {
            Err(Error::new("the database is open read-only inside a transaction"))
        }
        _ => write(caller, schema, entry),
    }
}

fn write(db: Db, schema: &str, entry: &Entry) -> Result<()> {
    let q = quote(schema);
    let params = [
        Value::from(entry.backup_id),
        Value::from(entry.created_at),
        Value::from(entry.path),
        Value::Integer(entry.bytes as i64),
        Value::from(entry.sha256),
        Value::from(entry.compression),
        Value::from(entry.verify),
        Value::from(entry.verification),
        Value::Real(entry.duration_ms),
    ];
    db.in_savepoint("vigil_backup_log", || {
        db.exec(&format!(
            "CREATE TABLE IF NOT EXISTS {q}.{TABLE}(
                id INTEGER PRIMARY KEY,
                backup_id TEXT NOT NULL,
                created_at TEXT NOT NULL,
                path TEXT NOT NULL,
                bytes INTEGER NOT NULL,
                sha256 TEXT NOT NULL,
                compression TEXT NOT NULL,
                verify TEXT NOT NULL,
                verification TEXT NOT NULL,
                duration_ms REAL NOT NULL)"
        ))?;
        db.query(
            &format!(
                "INSERT INTO {q}.{TABLE}(backup_id, created_at, path, bytes, sha256, compression, verify, \
                 verification, duration_ms) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)"
            ),
            &params,
        )?;
        db.query(
            &format!(
                "DELETE FROM {q}.{TABLE} WHERE id <= (SELECT id FROM {q}.{TABLE} ORDER BY id DESC LIMIT 1 OFFSET ?1)"
            ),
            &[Value::Integer(KEEP)],
        )?;
        Ok(())
    })
}

/// A recorded backup: when, where, verified how.
pub struct Recorded {
    pub created_at: String,
    pub path: String,
    pub verify: String,
    pub bytes: u64,
    pub duration_ms: f64,
}

/// Newest first, only backups whose verification passed (`verify` quick or full), at most `limit`.
pub fn verified(db: Db, schema: &str, limit: i64) -> Result<Vec<Recorded>> {
    let q = quote(schema);
    if !super::has_table(db, &q, TABLE)? {
        return Ok(Vec::new());
    }
    let rows = db.query(
        &format!(
            "SELECT created_at, path, verify, bytes, duration_ms FROM {q}.{TABLE} WHERE verification = 'ok' ORDER BY created_at DESC, \
             id DESC LIMIT ?1"
        ),
        &[Value::Integer(limit)],
    )?;
    Ok(rows
        .into_iter()
        .map(|r| Recorded {
            created_at: r[0].as_str().unwrap_or_default().to_string(),
            path: r[1].as_str().unwrap_or_default().to_string(),
            verify: r[2].as_str().unwrap_or_default().to_string(),
            bytes: r[3].as_i64().unwrap_or(0).max(0) as u64,
            duration_ms: r[4].as_f64().unwrap_or(0.0),
        })
        .collect())
}
