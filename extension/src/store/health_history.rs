//! `vigil_health_history`: health_snapshot's table (health writes it through its own module). Its readers for
//! other capabilities: the series (bounded, newest first, without the report's text beyond what a series
//! needs) and the problems of the last recorded integrity check (for maintenance).

use super::{has_table, quote};
use crate::error::Result;
use crate::sqlite::{Db, Value};

pub const TABLE: &str = "vigil_health_history";

/// The problems the newest recorded integrity check found (empty without history or problems). Reads
/// the schema quoted as `q`.
pub fn last_integrity_problems(db: Db, q: &str) -> Result<Vec<String>> {
    if !has_table(db, q, TABLE)? {
        return Ok(Vec::new());
    }
    let report = db.query_value(
        &format!(
            "SELECT report FROM {q}.{TABLE} WHERE integrity_mode IS NOT NULL ORDER BY taken_at DESC, id DESC LIMIT 1"
        ),
        &[],
    )?;
    let document: serde_json::Value = report.as_str().and_then(|r| serde_json::from_str(r).ok()).unwrap_or_default();
    let detail = document["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["check"] == "integrity"))
        .and_then(|c| c["detail"].as_str())
        .unwrap_or_default();
    Ok(detail.split("; ").map(str::to_string).collect())
}

/// One recorded snapshot, as a series point needs it. Texts are cut and integers checked in SQL, so a planted
/// row cannot bring megabytes or a REAL where a count belongs.
pub struct Point {
    pub id: i64,
    /// At most `TIME_CHARS` characters.
    pub taken_at: String,
    /// One of health's status words; None for anything else.
    pub status: Option<String>,
    pub file_size: Option<i64>,
    pub wal_size: Option<i64>,
    pub page_count: Option<i64>,
    pub freelist_count: Option<i64>,
    pub disk_free: Option<i64>,
    pub integrity_errors: Option<i64>,
    /// The fragmentation check's value (%) when the snapshot measured it.
    pub fragmentation: Option<f64>,
}

/// Longer than any RFC 3339 time health writes: a longer text is not a time and is cut before Rust sees it.
const TIME_CHARS: i64 = 40;

/// The newest `limit` snapshots taken at or after `since` (RFC 3339 text, compared as text as health does),
/// newest first; empty without the table.
pub fn newest(db: Db, schema: &str, since: Option<&str>, limit: i64) -> Result<Vec<Point>> {
    let q = quote(schema);
    if !has_table(db, &q, TABLE)? {
        return Ok(Vec::new());
    }
    let filter = if since.is_some() { "WHERE taken_at >= ?2" } else { "WHERE ?2 IS NULL" };
    let params = [Value::Integer(limit), Value::from(since)];
    read(db, &q, filter, &params)
}

/// The newest snapshot taken before `taken_at` (the previous point of a series' first one), if any.
pub fn before(db: Db, schema: &str, taken_at: &str, id: i64) -> Result<Option<Point>> {
    let q = quote(schema);
    let filter = "WHERE taken_at < ?2 OR (taken_at = ?2 AND id < ?3)";
    let params = [Value::Integer(1), Value::from(taken_at), Value::Integer(id)];
    Ok(read(db, &q, filter, &params)?.into_iter().next())
}

fn read(db: Db, q: &str, filter: &str, params: &[Value]) -> Result<Vec<Point>> {
    // The rows are picked first (ids only: no report is parsed for the rows LIMIT drops; the table has no
    // index on taken_at, so the pick sorts, but reads no report), then their columns are read and checked.
    // json_extract keeps the report's text (kilobytes) out of Rust; a report that is not JSON, or has no
    // fragmentation check, gives NULL rather than an error: the other columns still make a point.
    let int = |c: &str| format!("CASE WHEN typeof({c}) = 'integer' THEN {c} END");
    let sql = format!(
        "WITH picked(id) AS MATERIALIZED (SELECT id FROM {q}.{TABLE} {filter} ORDER BY taken_at DESC, id DESC LIMIT ?1) \
         SELECT id, substr(taken_at, 1, {TIME_CHARS}), \
           CASE WHEN status IN ('ok', 'info', 'warning', 'critical') THEN status END, \
           {}, {}, {}, {}, {}, {}, \
         (SELECT CASE WHEN typeof(v) IN ('integer', 'real') THEN v END FROM (SELECT json_extract(c.value, '$.value') AS v \
          FROM json_each(CASE WHEN json_valid(report) THEN report ELSE '{{}}' END, '$.checks') AS c \
          WHERE CASE WHEN c.type = 'object' THEN json_extract(c.value, '$.check') END = 'fragmentation' LIMIT 1)) \
         FROM {q}.{TABLE} WHERE id IN (SELECT id FROM picked) ORDER BY taken_at DESC, id DESC",
        int("file_size"),
        int("wal_size"),
        int("page_count"),
        int("freelist_count"),
        int("disk_free"),
        int("integrity_errors"),
    );
    let rows = db.query(&sql, params)?;
    Ok(rows
        .into_iter()
        .map(|r| Point {
            id: r[0].as_i64().unwrap_or(0),
            taken_at: r[1].as_str().unwrap_or_default().to_string(),
            status: r[2].as_str().map(str::to_string),
            file_size: r[3].as_i64(),
            wal_size: r[4].as_i64(),
            page_count: r[5].as_i64(),
            freelist_count: r[6].as_i64(),
            disk_free: r[7].as_i64(),
            integrity_errors: r[8].as_i64(),
            fragmentation: r[9].as_f64(),
        })
        .collect())
}
