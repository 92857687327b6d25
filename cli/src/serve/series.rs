//! The series the dashboard draws: each database's health snapshots (read through the extension's
//! `health_history`, read-only and bounded) and a ring of its last refreshes (so charts have recent points
//! without snapshots). The refresh loop fills them; requests only read them.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{json, Map, Value as Json};

use crate::metrics::{DbReport, Target};
use crate::{extension, Failure, Global};

/// Recent refreshes kept per database: 12 hours at the default `--every 60s`.
pub const RING_POINTS: usize = 720;
/// Snapshots read per database (health_history's own default).
pub const HISTORY_LIMIT: u32 = 1000;
/// Snapshots are taken daily: re-reading them once a minute is often enough, whatever `--every`.
pub const HISTORY_EVERY: Duration = Duration::from_secs(60);
/// Bytes of snapshots kept per database: 1000 sound snapshots take about 330 KB; planted rows cannot make a
/// database's answer (and serve's memory) hundreds of megabytes. The oldest go first, and the JSON says so.
pub const HISTORY_BYTES: usize = 1024 * 1024;

/// A read of a database's snapshots: a JSON array's text, and how many older snapshots `HISTORY_BYTES` dropped.
pub type History = (String, usize);

/// One refresh of one database, as the charts need it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recent {
    /// Unix seconds.
    pub at: f64,
    pub file_size: Option<f64>,
    pub wal_size: Option<f64>,
    pub freelist_count: Option<f64>,
    pub freelist_ratio: Option<f64>,
    pub backup_age_seconds: Option<f64>,
    pub slow_queries_total: Option<f64>,
}

/// A database's series: snapshots (oldest first) and recent refreshes (oldest first).
#[derive(Clone, Debug)]
pub struct Series {
    /// The snapshots as a JSON array's text: about 330 bytes a snapshot where parsed objects took several
    /// kilobytes (1000 snapshots of 1000 databases would have held gigabytes).
    pub snapshots: Arc<str>,
    /// Why the snapshots could not be read at the last attempt (one line, naming the file).
    pub history_error: Option<String>,
    pub history_read_at: Option<SystemTime>,
    /// Older snapshots left out of `snapshots` to keep within `HISTORY_BYTES`.
    pub snapshots_dropped: usize,
    pub recent: VecDeque<Recent>,
}

impl Default for Series {
    fn default() -> Series {
        Series {
            snapshots: Arc::from("[]"),
            history_error: None,
            history_read_at: None,
            snapshots_dropped: 0,
            recent: VecDeque::new(),
        }
    }
}

impl Series {
    /// Adds a refresh's point, dropping the oldest beyond `RING_POINTS`; an unreadable database adds none.
    pub fn remember(&mut self, report: &DbReport) {
        if !report.up {
            return;
        }
        if self.recent.len() == RING_POINTS {
            self.recent.pop_front();
        }
        self.recent.push_back(recent_of(report));
    }

    /// Whether the snapshots are due for a new read at `now`.
    pub fn history_due(&self, now: SystemTime) -> bool {
        self.history_read_at.is_none_or(|at| now.duration_since(at).map_or(true, |age| age >= HISTORY_EVERY))
    }

    /// Keeps a read of the snapshots (a JSON array's text), or why it failed (keeping the last ones read).
    pub fn set_history(&mut self, read: Result<History, String>, now: SystemTime) {
        match read {
            Ok((text, dropped)) => {
                self.snapshots = Arc::from(text);
                self.snapshots_dropped = dropped;
                self.history_error = None;
            }
            Err(error) => self.history_error = Some(error),
        }
        self.history_read_at = Some(now);
    }

    /// `GET /api/v1/history/<db>`'s body (compact JSON, the snapshots spliced in as kept).
    pub fn to_json_text(&self, db: &str, generated_at: &str) -> String {
        let recent = Json::Array(self.recent.iter().map(recent_json).collect());
        format!(
            "{{\"db\":{},\"generated_at\":{},\"history_error\":{},\"snapshots_dropped\":{},\"snapshots\":{},\
             \"recent\":{recent}}}\n",
            json!(db),
            json!(generated_at),
            json!(self.history_error),
            self.snapshots_dropped,
            self.snapshots
        )
    }
}

/// The point a report gives: from its samples, so taken before serve drops them.
fn recent_of(report: &DbReport) -> Recent {
    let sample = |metric: &str| report.samples.iter().find(|s| s.metric == metric).map(|s| s.value);
    let at = unix_seconds(report.collected_at);
    // 0 means no verified backup: no age then.
    let backup = sample("vigil_backup_last_success_timestamp_seconds").filter(|t| *t > 0.0);
    let slow: Vec<f64> =
        report.samples.iter().filter(|s| s.metric == "vigil_slow_queries_total").map(|s| s.value).collect();
    Recent {
        at,
        file_size: sample("vigil_database_size_bytes"),
        wal_size: sample("vigil_wal_size_bytes"),
        freelist_count: sample("vigil_freelist_pages"),
        freelist_ratio: sample("vigil_freelist_ratio"),
        backup_age_seconds: backup.map(|t| (at - t).max(0.0).round()),
        slow_queries_total: (!slow.is_empty()).then(|| slow.iter().sum()),
    }
}

fn recent_json(point: &Recent) -> Json {
    json!({
        "at": (point.at * 1000.0).round() / 1000.0,
        "file_size": point.file_size,
        "wal_size": point.wal_size,
        "freelist_count": point.freelist_count,
        "freelist_ratio": point.freelist_ratio,
        "backup_age_seconds": point.backup_age_seconds,
        "slow_queries_total": point.slow_queries_total,
    })
}

pub fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

/// A database's snapshots through `health_history`, on a read-only connection, as a JSON array's text: each
/// row an object with `at` (Unix seconds) added for the charts. An error is one line naming the file.
pub fn read_history(global: &Global, target: &Target) -> Result<History, String> {
    query_history(global, &target.path).map_err(|failure| {
        let mut line = crate::sql::explained(failure, Some(&target.path), global.busy_timeout).message;
        let file = format!("{}: ", target.path.display());
        if !line.starts_with(&file) {
            line = format!("{file}{line}");
        }
        crate::output::cut(&line.split_whitespace().collect::<Vec<_>>().join(" "), 300)
    })
}

/// Each row written to its text as read: a parsed row lives only while it is written.
fn query_history(global: &Global, path: &Path) -> Result<History, Failure> {
    let conn = extension::open(global, path, false)?;
    let sql = format!("SELECT * FROM health_history('{{\"limit\":{HISTORY_LIMIT}}}')");
    let mut stmt = conn.prepare(&sql).map_err(crate::sql::sql_failure)?;
    let names: Vec<String> = stmt.column_names().map(|n| n.to_string()).collect();
    let mut rows = stmt.query([]).map_err(crate::sql::sql_failure)?;
    let mut texts = Vec::new();
    while let Some(row) = rows.next().map_err(crate::sql::sql_failure)? {
        let mut object = Map::new();
        for (i, name) in names.iter().enumerate() {
            object.insert(name.clone(), json_of(row.get_ref(i).map_err(crate::sql::sql_failure)?));
        }
        let at = object.get("taken_at").and_then(Json::as_str).and_then(parse_time);
        object.insert("at".into(), json!(at));
        texts.push(Json::Object(object).to_string());
    }
    Ok(newest_within(&texts, HISTORY_BYTES))
}

/// The newest of `rows` (oldest first) whose JSON array fits in `max_bytes`, and how many older ones did not.
fn newest_within(rows: &[String], max_bytes: usize) -> History {
    let mut bytes = 2;
    let kept = rows.iter().rev().take_while(|row| {
        bytes += row.len() + 1;
        bytes <= max_bytes
    });
    let kept = kept.count();
    let first = rows.len() - kept;
    (format!("[{}]", rows[first..].join(",")), first)
}

fn json_of(value: rusqlite::types::ValueRef) -> Json {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Integer(i) => json!(i),
        ValueRef::Real(r) => json!(r),
        ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
        ValueRef::Null | ValueRef::Blob(_) => Json::Null,
    }
}

fn parse_time(text: &str) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_millis() as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Sample;

    fn report(up: bool, samples: &[(&str, f64)], at: SystemTime) -> DbReport {
        DbReport {
            target: Target { name: "a".into(), path: "a.db".into() },
            up,
            error: None,
            status: Some("ok".into()),
            failing: vec![],
            checks: vec![],
            samples: samples
                .iter()
                .map(|(metric, value)| Sample {
                    metric: metric.to_string(),
                    kind: "gauge".into(),
                    help: String::new(),
                    labels: vec![],
                    value: *value,
                })
                .collect(),
            collected_at: at,
        }
    }

    #[test]
    fn a_refresh_gives_a_point_from_its_samples() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        let samples = [
            ("vigil_database_size_bytes", 4096.0),
            ("vigil_backup_last_success_timestamp_seconds", 9_000.0),
            ("vigil_slow_queries_total", 2.0),
            ("vigil_slow_queries_total", 3.0),
        ];
        let point = recent_of(&report(true, &samples, at));
        assert_eq!(point.file_size, Some(4096.0));
        assert_eq!(point.backup_age_seconds, Some(1000.0));
        assert_eq!(point.slow_queries_total, Some(5.0));
        assert_eq!(point.wal_size, None);
        let none = recent_of(&report(true, &[("vigil_backup_last_success_timestamp_seconds", 0.0)], at));
        assert_eq!((none.backup_age_seconds, none.slow_queries_total), (None, None), "0: no backup");
    }

    #[test]
    fn the_ring_is_bounded_and_skips_unreadable_databases() {
        let mut series = Series::default();
        for i in 0..RING_POINTS + 5 {
            series.remember(&report(true, &[], SystemTime::UNIX_EPOCH + Duration::from_secs(i as u64)));
        }
        series.remember(&report(false, &[], SystemTime::now()));
        assert_eq!(series.recent.len(), RING_POINTS);
        assert_eq!(series.recent.front().unwrap().at, 5.0, "the oldest went first");
    }

    #[test]
    fn history_is_read_again_after_a_minute() {
        let mut series = Series::default();
        let now = SystemTime::now();
        assert!(series.history_due(now));
        series.set_history(Err("a.db: locked".into()), now);
        assert!(!series.history_due(now + Duration::from_secs(59)));
        assert!(series.history_due(now + HISTORY_EVERY));
        let body: Json = serde_json::from_str(&series.to_json_text("a\"", "t")).unwrap();
        assert_eq!((body["db"].as_str(), body["history_error"].as_str()), (Some("a\""), Some("a.db: locked")));
        assert_eq!(body["snapshots"], json!([]));
        series.set_history(Ok((r#"[{"at":1.5}]"#.into(), 0)), now);
        let body: Json = serde_json::from_str(&series.to_json_text("a", "t")).unwrap();
        assert_eq!((body["snapshots"][0]["at"].as_f64(), &body["history_error"]), (Some(1.5), &Json::Null));
        assert_eq!(body["snapshots_dropped"], 0);
    }

    #[test]
    fn the_history_keeps_its_newest_snapshots_within_its_bytes() {
        let rows: Vec<String> = (0..5).map(|i| format!("{{\"at\":{i}}}")).collect();
        assert_eq!(newest_within(&rows, 1000), (r#"[{"at":0},{"at":1},{"at":2},{"at":3},{"at":4}]"#.into(), 0));
        let (text, dropped) = newest_within(&rows, 20);
        assert_eq!((text.as_str(), dropped), (r#"[{"at":3},{"at":4}]"#, 3), "the oldest go first");
        assert!(text.len() <= 20);
        assert_eq!(newest_within(&[], 10), ("[]".into(), 0));
    }
}
