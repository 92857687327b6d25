//! vigil's own tables in the databases it looks after: the backup log, the maintenance log, and the readers
//! of health's snapshot history. The
//! capabilities (backup, maintenance) write them and health reads them; this module sits below all three so
//! that health imports no capability and no capability's log imports health.

pub mod backup_log;
pub mod health_history;
pub mod maintenance_log;
pub mod pit;
pub mod query_stats;

use crate::error::Result;
use crate::sqlite::{Db, Value};

/// vigil's own tables start with this prefix; they are not the user's schema.
pub const OWN_PREFIX: &str = "vigil_";

pub fn is_vigil_object(name: &str) -> bool {
    name.starts_with(OWN_PREFIX)
}

/// Double-quotes an identifier for SQL.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Whether the schema quoted as `q` has a table called `name`. Only a table: a planted VIEW (or trigger, index)
/// of that name is not vigil's, and reading a view runs whatever query its file's author wrote.
pub fn has_table(db: Db, q: &str, name: &str) -> Result<bool> {
    let found = db.query_value(
        &format!("SELECT count(*) FROM {q}.sqlite_schema WHERE type = 'table' AND name = ?1"),
        &[Value::from(name)],
    )?;
    Ok(found.as_i64() == Some(1))
}

/// Runs `work` in a write transaction taken at once (BEGIN IMMEDIATE) on a connection of vigil's own: taking the
/// write lock first lets the busy timeout wait for another writer, where a deferred transaction that read
/// first would fail at once with "database is locked" when it comes to write.
pub fn in_write_transaction(db: Db, work: impl FnOnce() -> Result<()>) -> Result<()> {
    db.exec("BEGIN IMMEDIATE")?;
    match work() {
        Ok(()) => db.exec("COMMIT"),
        Err(e) => {
            let _ = db.exec("ROLLBACK");
            Err(e)
        }
    }
}
