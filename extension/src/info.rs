//! vigil_version() and vigil_debug(): what is loaded, into which host.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use crate::error::Result;
use crate::sqlite::{self, Db, Value};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_HASH: &str = env!("VIGIL_GIT_HASH");

/// Compile options of the host that change what vigil sees or does.
const RELEVANT_OPTIONS: &[&str] = &[
    "ENABLE_DBSTAT_VTAB",
    "SECURE_DELETE",
    "DEFAULT_RECURSIVE_TRIGGERS",
    "DEFAULT_FOREIGN_KEYS",
    "THREADSAFE",
    "DEFAULT_WAL_SYNCHRONOUS",
    "DEFAULT_SYNCHRONOUS",
    "DEFAULT_JOURNAL_SIZE_LIMIT",
    "DEFAULT_PAGE_SIZE",
    "OMIT_WAL",
    "TRUSTED_SCHEMA",
];

/// Days from `earlier` to `later`, to 0.1 day.
pub fn days_between(earlier: DateTime<Utc>, later: DateTime<Utc>) -> f64 {
    ((later - earlier).num_seconds() as f64 / 86_400.0 * 10.0).round() / 10.0
}

/// Hours from `earlier` to `later`, to 0.1 hour.
pub fn hours_between(earlier: DateTime<Utc>, later: DateTime<Utc>) -> f64 {
    ((later - earlier).num_seconds() as f64 / 360.0).round() / 10.0
}

/// Reads a time written by [`format_utc`] (any RFC 3339 time), in UTC.
pub fn parse_utc(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

pub fn now_utc() -> String {
    format_utc(Utc::now())
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-11-21T10:31:02.123Z` (sorts as text).
pub fn format_utc(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn vigil_version(_db: Db, _args: &[Value]) -> Result<Value> {
    Ok(Value::from(VERSION))
}

pub fn vigil_debug(db: Db, _args: &[Value]) -> Result<Value> {
    let options: Vec<String> = sqlite::host_compile_options()
        .into_iter()
        .filter(|o| RELEVANT_OPTIONS.iter().any(|r| o.split('=').next() == Some(*r)))
        .collect();
    let report = json!({
        "vigil_version": VERSION,
        "git_hash": GIT_HASH,
        "sqlite_version": sqlite::host_version(),
        "sqlite_source_id": sqlite::host_source_id(),
        "dbstat": crate::health::has_dbstat(db),
        "compile_options": options,
        "functions": crate::registered_names(),
        "pit_journal_last_scan": crate::pit::journal::last_scan(db),
    });
    Ok(Value::Text(report.to_string()))
}
