//! The maintenance log: `vigil_maintenance_log` in the maintained database records each run of `maintain`
//! and each vacuum that rewrote the file, so that health_report can tell how long ago each level ran.

use chrono::{DateTime, Utc};
use serde_json::Value as Json;

use super::has_table;
use crate::error::{Context as _, Result};
use crate::info::{now_utc, parse_utc};
use crate::sqlite::{Db, Value};

pub const TABLE: &str = "vigil_maintenance_log";
/// Rows kept; older ones are deleted as new ones arrive.
const KEEP: i64 = 1000;

const CREATE: &str = "CREATE TABLE IF NOT EXISTS main.vigil_maintenance_log(
    id INTEGER PRIMARY KEY,
    finished_at TEXT NOT NULL,
    function TEXT NOT NULL,
    level TEXT NOT NULL,
    result TEXT NOT NULL,
    duration_ms REAL NOT NULL,
    size_before INTEGER,
    size_after INTEGER,
    detail TEXT NOT NULL
)";

/// One run, as recorded.
pub struct Entry {
    pub function: &'static str,
    /// light, standard, full, or vacuum (a vacuum_if_fragmented run).
    pub level: String,
    /// ok, or warning / failed when an operation reported a problem.
    pub result: &'static str,
    pub duration_ms: f64,
    pub size_before: i64,
    pub size_after: i64,
    pub detail: Json,
}

/// Appends an entry on the maintenance connection (schema `main` is the maintained file there).
pub fn record(db: Db, entry: &Entry) -> Result<()> {
    let params = [
        Value::from(now_utc()),
        Value::from(entry.function),
        Value::from(entry.level.as_str()),
        Value::from(entry.result),
        Value::Real(entry.duration_ms),
        Value::Integer(entry.size_before),
        Value::Integer(entry.size_after),
        Value::Text(entry.detail.to_string()),
    ];
    let write = || -> Result<()> {
        db.exec(CREATE)?;
        db.query(
            &format!(
                "INSERT INTO main.{TABLE}(finished_at, function, level, result, duration_ms, size_before, \
                 size_after, detail) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)"
            ),
            &params,
        )?;
        db.query(
            &format!(
                "DELETE FROM main.{TABLE} WHERE id <= (SELECT id FROM main.{TABLE} ORDER BY id DESC LIMIT 1 OFFSET ?1)"
            ),
            &[Value::Integer(KEEP)],
        )?;
        Ok(())
    };
    super::in_write_transaction(db, write).context("cannot record the run in vigil_maintenance_log")
}

/// When each level last ran successfully: (level, finished_at).
pub fn last_runs(db: Db, q: &str) -> Result<Vec<(String, DateTime<Utc>)>> {
    if !has_table(db, q, TABLE)? {
        return Ok(Vec::new());
    }
    // Only time-shaped texts compete for the max, and a row that still does not parse is passed over: one planted or
    // damaged row must not hide the real runs nor make the whole report fail.
    let rows = db.query(
        &format!(
            "SELECT level, max(finished_at) FROM {q}.{TABLE} \
             WHERE result <> 'failed' AND finished_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T*' \
             GROUP BY level"
        ),
        &[],
    )?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let level = row[0].as_str().unwrap_or_default().to_string();
            let at = row[1].as_str().and_then(parse_utc)?;
            Some((level, at))
        })
        .collect())
}
