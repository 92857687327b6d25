//! `vigil_backup_log`: a row in the source database for every backup, which health_report's `last_backup`
//! check reads. Written through a connection of its own that commits at once: on the calling connection the
//! commit would wait for the end of the caller's statement, where a busy database would turn a finished
//! backup into an error. Inside the caller's own transaction (and for in-memory databases) it is written
//! there, in a savepoint. A read-only database gets no row.

use std::path::Path;

use chrono::Utc;

use super::manifest::Manifest;
use crate::error::{Error, Result};
use crate::health::checks::{has_table, quote};
use crate::health::options::Options;
use crate::health::{Check, Status};
use crate::info::{hours_between, parse_utc};
use crate::sqlite::{open_flags, Db, OwnedDb, Value};

pub const TABLE: &str = "vigil_backup_log";
/// Rows kept; older ones are deleted as new ones arrive.
const KEEP: i64 = 1000;

pub fn record(caller: Db, schema: &str, manifest: &Manifest, artifact: &Path, busy_timeout_ms: i32) -> Result<()> {
    if caller.is_readonly(schema)? == Some(true) {
        return Err(Error::new("the database is open read-only"));
    }
    match caller.filename(schema)? {
        Some(path) if caller.is_autocommit() => {
            let own = OwnedDb::open(&path, open_flags::READ_WRITE, caller.vfs_name(schema)?.as_deref())?;
            own.db().set_busy_timeout(busy_timeout_ms)?;
            write(own.db(), "main", manifest, artifact)
        }
        _ => write(caller, schema, manifest, artifact),
    }
}

fn write(db: Db, schema: &str, manifest: &Manifest, artifact: &Path) -> Result<()> {
    let q = quote(schema);
    let params = [
        Value::from(manifest.id.as_str()),
        Value::from(manifest.created_at.as_str()),
        Value::from(artifact.to_string_lossy().as_ref()),
        Value::Integer(manifest.bytes as i64),
        Value::from(manifest.sha256.as_str()),
        Value::from(manifest.compression.as_str()),
        Value::from(manifest.verification.method.as_str()),
        Value::from(manifest.verification.result.as_str()),
        Value::Real(manifest.duration_ms),
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
}

/// Newest first, only backups whose verification passed (`verify` quick or full), at most `limit`.
pub fn verified(db: Db, schema: &str, limit: i64) -> Result<Vec<Recorded>> {
    let q = quote(schema);
    if !has_table(db, &q, TABLE)? {
        return Ok(Vec::new());
    }
    let rows = db.query(
        &format!(
            "SELECT created_at, path, verify FROM {q}.{TABLE} WHERE verification = 'ok' ORDER BY created_at DESC, \
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
        })
        .collect())
}

/// health_report's `last_backup`: hours since the newest verified backup whose file still exists. A
/// database with no such backup is a warning: "looks healthy, isn't backing up" is the gap to catch.
pub fn age_check(db: Db, options: &Options) -> Result<Check> {
    const NAME: &str = "last_backup";
    let recorded = verified(db, &options.schema, 100)?;
    let found = recorded.iter().find(|r| Path::new(&r.path).exists());
    let Some(newest) = found else {
        let detail = match recorded.first() {
            Some(r) => format!("the recorded backups are gone (the newest was {}); make one with backup_to", r.path),
            None => "no verified backup recorded; make one: SELECT backup_to('/path/to/backups/')".to_string(),
        };
        // Thresholds switched off ("none,none") mean the user does not want backups watched here.
        let watched = options.thresholds.levels("last_backup_hours") != (None, None);
        let status = if watched { Status::Warning } else { Status::Info };
        return Ok(Check::new(NAME, Value::Null, "hours").status(status).detail(detail));
    };
    let at = parse_utc(&newest.created_at).unwrap_or_default();
    let hours = hours_between(at, Utc::now());
    let mut check = Check::new(NAME, hours, "hours");
    check.status = options.thresholds.status("last_backup_hours", hours);
    check.threshold = options.thresholds.describe("last_backup_hours");
    Ok(check.detail(format!("{} at {} ({} verified)", newest.path, newest.created_at, newest.verify)))
}
