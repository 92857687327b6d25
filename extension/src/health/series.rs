//! `health_history([options])`: the series a dashboard draws, one row per health snapshot (oldest first):
//! the recorded facts, the freelist ratio, fragmentation when the snapshot measured it, growth per day from
//! the previous snapshot, and the age of the newest verified backup at that instant (from the backup log).

use chrono::{DateTime, Utc};

use crate::args::{integer, object_arg, string};
use crate::error::{Context as _, Error, Result};
use crate::info::{format_utc, parse_utc};
use crate::sqlite::{Db, Value};
use crate::store::{backup_log, health_history, health_history::Point};
use crate::vtab::TableFunction;

const KEYS: &[&str] = &["since", "limit", "schema"];
const EXAMPLE: &str = r#"{"since":"2026-11-01T00:00:00Z","limit":100}"#;
const DEFAULT_LIMIT: i64 = 1000;
const MAX_LIMIT: i64 = 100_000;
/// Two snapshots closer than this give no growth rate: noise would dominate (as health's growth check).
const MIN_GROWTH_SPAN_SECONDS: i64 = 3600;
/// Beyond any file SQLite can make (2^32 pages of 64 KiB is 2^48 bytes) and exact in an f64.
const MAX_PLAUSIBLE_SIZE: i64 = 1 << 53;

struct Options {
    since: Option<String>,
    limit: i64,
    schema: String,
}

fn options(arg: Option<&Value>) -> Result<Options> {
    let mut options = Options { since: None, limit: DEFAULT_LIMIT, schema: "main".into() };
    for (key, value) in object_arg(arg, EXAMPLE, KEYS)?.unwrap_or_default() {
        match key.as_str() {
            "since" => {
                let text = string(&key, &value)?;
                let time = parse_utc(text).ok_or_else(|| {
                    Error::new(format!(
                        "option \"since\" must be an RFC 3339 time such as 2026-11-01T00:00:00Z, not \"{}\"",
                        crate::error::cut(text)
                    ))
                })?;
                // Stored times are UTC with milliseconds and compare as text.
                options.since = Some(format_utc(time));
            }
            "limit" => options.limit = integer(&key, &value, 1, MAX_LIMIT)?,
            "schema" => options.schema = string(&key, &value)?.to_string(),
            _ => {}
        }
    }
    Ok(options)
}

pub struct HealthHistory;

impl TableFunction for HealthHistory {
    const NAME: &'static str = "health_history";
    const COLUMNS: &'static [&'static str] = &[
        "taken_at",
        "status",
        "file_size",
        "wal_size",
        "page_count",
        "freelist_count",
        "freelist_ratio",
        "fragmentation_pct",
        "disk_free",
        "integrity_errors",
        "growth_per_day",
        "backup_age_seconds",
    ];
    const ARGS: &'static [&'static str] = &["options"];

    fn rows(db: Db, args: &[Value]) -> Result<Vec<Vec<Value>>> {
        let options = options(args.first()).context("bad options")?;
        series(db, &options)
    }
}

fn series(db: Db, options: &Options) -> Result<Vec<Vec<Value>>> {
    ensure_schema(db, &options.schema)?;
    // A row whose time is not a time (planted, or damaged) is passed over, as health's checks do: one such row
    // must not take every chart of the database away.
    let mut points: Vec<(DateTime<Utc>, Point)> =
        health_history::newest(db, &options.schema, options.since.as_deref(), options.limit)?
            .into_iter()
            .filter_map(|p| Some((parse_utc(&p.taken_at)?, p)))
            .collect();
    let Some((_, oldest)) = points.last() else { return Ok(Vec::new()) };
    let previous = health_history::before(db, &options.schema, &oldest.taken_at, oldest.id)?;
    points.reverse();
    // The backup log keeps at most its newest 1000 rows: reading every verified one is bounded.
    let mut backups: Vec<DateTime<Utc>> =
        backup_log::verified(db, &options.schema, 1000)?.iter().filter_map(|b| parse_utc(&b.created_at)).collect();
    backups.sort();
    let mut before = previous.and_then(|p| Some((parse_utc(&p.taken_at)?, p.file_size)));
    let mut rows = Vec::with_capacity(points.len());
    for (at, point) in &points {
        let growth = before.and_then(|(then, size)| growth_per_day(then, size, *at, point.file_size));
        rows.push(row(point, growth, backup_age(&backups, *at)));
        before = Some((*at, point.file_size));
    }
    Ok(rows)
}

/// A clear error for a schema that is not attached, where SQLite would say "no such table: nope.sqlite_schema".
fn ensure_schema(db: Db, schema: &str) -> Result<()> {
    let names: Vec<String> = db
        .query("SELECT name FROM pragma_database_list", &[])?
        .into_iter()
        .filter_map(|row| row[0].as_str().map(str::to_string))
        .collect();
    if names.iter().any(|n| n.eq_ignore_ascii_case(schema)) {
        return Ok(());
    }
    Err(Error::new(format!(
        "unknown schema \"{}\" (attached: {})",
        crate::error::cut(schema),
        crate::error::cut(&names.join(", "))
    )))
}

/// Bytes a day between two sizes; None within an hour (noise would dominate) or when a size is not one a file
/// can have (planted extremes would overflow the difference).
fn growth_per_day(then: DateTime<Utc>, before: Option<i64>, now: DateTime<Utc>, size: Option<i64>) -> Option<f64> {
    let seconds = (now - then).num_seconds();
    if seconds < MIN_GROWTH_SPAN_SECONDS {
        return None;
    }
    let plausible = |s: i64| (0..=MAX_PLAUSIBLE_SIZE).contains(&s).then_some(s as f64);
    let (before, size) = (plausible(before?)?, plausible(size?)?);
    Some(((size - before) * 86_400.0 / seconds as f64).round())
}

/// Seconds since the newest verified backup made at or before `at`; None when there was none yet.
fn backup_age(sorted: &[DateTime<Utc>], at: DateTime<Utc>) -> Option<f64> {
    let made = sorted.partition_point(|b| *b <= at);
    let newest = sorted[..made].last()?;
    Some((at - *newest).num_milliseconds() as f64 / 1000.0)
}

fn row(point: &Point, growth: Option<f64>, backup_age: Option<f64>) -> Vec<Value> {
    let ratio = match (point.freelist_count, point.page_count) {
        (Some(free), Some(pages)) if pages > 0 => Some((free as f64 / pages as f64 * 1e6).round() / 1e6),
        _ => None,
    };
    vec![
        Value::from(point.taken_at.as_str()),
        Value::from(point.status.as_deref()),
        Value::from(point.file_size),
        Value::from(point.wal_size),
        Value::from(point.page_count),
        Value::from(point.freelist_count),
        Value::from(ratio),
        Value::from(point.fragmentation),
        Value::from(point.disk_free),
        Value::from(point.integrity_errors),
        Value::from(growth),
        Value::from(backup_age),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> DateTime<Utc> {
        parse_utc(text).unwrap()
    }

    #[test]
    fn backup_age_is_from_the_newest_backup_at_or_before_the_instant() {
        let backups = [t("2026-01-01T00:00:00Z"), t("2026-01-02T00:00:00Z")];
        assert_eq!(backup_age(&backups, t("2025-12-31T00:00:00Z")), None);
        assert_eq!(backup_age(&backups, t("2026-01-01T00:00:00Z")), Some(0.0));
        assert_eq!(backup_age(&backups, t("2026-01-01T12:00:00Z")), Some(43_200.0));
        assert_eq!(backup_age(&backups, t("2026-01-03T00:00:00Z")), Some(86_400.0));
    }

    #[test]
    fn growth_needs_an_hour_and_both_sizes() {
        let (a, b) = (t("2026-01-01T00:00:00Z"), t("2026-01-03T00:00:00Z"));
        assert_eq!(growth_per_day(a, Some(1000), b, Some(3000)), Some(1000.0));
        assert_eq!(growth_per_day(a, Some(3000), b, Some(1000)), Some(-1000.0));
        assert_eq!(growth_per_day(a, None, b, Some(1000)), None);
        assert_eq!(growth_per_day(a, Some(1), t("2026-01-01T00:59:59Z"), Some(2)), None);
        assert_eq!(growth_per_day(a, Some(i64::MIN), b, Some(i64::MAX)), None);
        assert_eq!(growth_per_day(a, Some(0), b, Some(i64::MAX)), None);
    }

    #[test]
    fn options_are_checked() {
        let parse = |text: &str| options(Some(&Value::from(text)));
        assert_eq!(
            parse(r#"{"since":"2026-01-01T01:00:00+01:00"}"#).unwrap().since.unwrap(),
            "2026-01-01T00:00:00.000Z"
        );
        assert!(parse(r#"{"since":"yesterday"}"#).err().unwrap().to_string().contains("RFC 3339"));
        assert!(parse(r#"{"limit":0}"#).is_err());
        assert!(parse(r#"{"nope":1}"#).is_err());
        assert_eq!(options(None).unwrap().limit, 1000);
    }
}
