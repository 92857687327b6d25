//! Maintenance: vacuum_if_fragmented, maintain, wal_checkpoint and the maintenance log.
//!
//! VACUUM cannot run on the calling connection from inside an SQL function ("SQL statements in progress"),
//! and a checkpoint cannot run on a connection that is reading. So every operation that changes the file runs
//! on a second connection to it, opened through the host's own SQLite with the caller's VFS (so that both
//! connections see each other's locks). The caller must hold no transaction, or its own locks would stop
//! that connection.

pub mod checkpoint;
pub mod maintain;
pub mod options;
pub mod vacuum;

use std::time::Instant;

use crate::error::{Error, Result};
use crate::sqlite::{open_flags, Db, OwnedDb};
use crate::store::quote;

/// SQLITE_BUSY and SQLITE_LOCKED: another connection holds a lock we need.
const BUSY: i32 = 5;
const LOCKED: i32 = 6;
const LOCK_HINT: &str = "within the busy timeout";

/// The database file a maintenance function works on, through its own connection.
pub struct Target {
    pub path: String,
    pub busy_timeout_ms: i32,
    connection: OwnedDb,
}

impl Target {
    /// Checks that the caller's `schema` can be maintained from a second connection, and opens it.
    pub fn open(caller: Db, schema: &str, busy_timeout_ms: i32) -> Result<Target> {
        match caller.is_readonly(schema)? {
            None => return Err(Error::new(format!("no database named {} is attached", quote(schema)))),
            Some(true) => {
                return Err(Error::new(format!(
                    "{} is open read-only: maintenance writes to it; open it read-write",
                    quote(schema)
                )))
            }
            Some(false) => {}
        }
        let Some(path) = caller.filename(schema)? else {
            return Err(Error::new(format!(
                "{} is an in-memory or temporary database: vigil maintains database files through a second \
                 connection, which cannot reach it; run VACUUM or PRAGMA optimize on it directly",
                quote(schema)
            )));
        };
        if !caller.is_autocommit() {
            return Err(Error::new(
                "the calling connection has an open transaction: COMMIT or ROLLBACK first (its locks would \
                 block the maintenance connection)",
            ));
        }
        if caller.in_transaction(schema)? {
            return Err(Error::new(
                "the statement calling this function also reads the database (a table, or a table-valued function \
                 such as json_each), so it holds a read lock that would block the maintenance connection: call \
                 it in a statement of its own, e.g. SELECT maintain()",
            ));
        }
        let vfs = caller.vfs_name(schema)?;
        let connection = OwnedDb::open(&path, open_flags::READ_WRITE, vfs.as_deref())?;
        connection.db().set_busy_timeout(busy_timeout_ms)?;
        Ok(Target { path, busy_timeout_ms, connection })
    }

    pub fn db(&self) -> Db {
        self.connection.db()
    }

    /// Runs statements on the maintenance connection, explaining lock timeouts.
    pub fn exec(&self, sql: &str) -> Result<()> {
        self.db().exec(sql).map_err(|e| self.explain(e))
    }

    pub fn query(&self, sql: &str) -> Result<Vec<Vec<crate::sqlite::Value>>> {
        self.db().query(sql, &[]).map_err(|e| self.explain(e))
    }

    /// The file's journal mode, lower case (`delete`, `wal`, …).
    pub fn journal_mode(&self) -> Result<String> {
        let rows = self.query("PRAGMA journal_mode")?;
        Ok(rows.first().and_then(|r| r[0].as_str().map(str::to_lowercase)).unwrap_or_default())
    }

    /// Adds what to do to an error: lock timeouts name the busy timeout; missing collations and functions
    /// are those the application registered on its own connection.
    pub fn explain(&self, error: Error) -> Error {
        let message = error.message().to_string();
        if message.contains(LOCK_HINT) {
            return error;
        }
        if matches!(error.primary_code(), BUSY | LOCKED) {
            return error.context(format!(
                "another connection holds a lock on {} and did not release it {LOCK_HINT} ({} ms); retry when it \
                 is idle, or raise busy_timeout_ms",
                self.path, self.busy_timeout_ms
            ));
        }
        if message.contains("no such collation sequence") || message.contains("no such function") {
            return error.context(
                "the schema uses a collation or function that the application registers on its own connection; \
                 vigil's maintenance connection does not have it",
            );
        }
        error
    }
}

/// Milliseconds since `started`, rounded to 0.1 ms.
pub fn elapsed_ms(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 10_000.0).round() / 10.0
}

fn bytes_of(path: &str) -> i64 {
    std::fs::metadata(path).map_or(0, |m| m.len() as i64)
}

/// Size of the WAL file of the database at `path` (0 when there is none).
pub fn wal_bytes(path: &str) -> i64 {
    bytes_of(&format!("{path}-wal"))
}

/// Size of the database file plus its WAL, in bytes (0 for a missing file).
pub fn file_bytes(path: &str) -> i64 {
    bytes_of(path) + wal_bytes(path)
}
