//! Opt-in history: health_snapshot records reports into `vigil_health_history`; with it, the report adds
//! schema drift, growth per day, days until the disk is full, and the age of the last integrity check.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value as Json};

use super::checks::{has_table, quote, Facts};
use super::options::{Integrity, Options};
use super::thresholds::show;
use super::{Check, Report, Status};
use crate::error::{Context as _, Error, Result};
use crate::info::{days_between, format_utc, now_utc, parse_utc};
use crate::sqlite::{Db, Value};

pub use crate::store::health_history::TABLE;

/// Snapshots younger than this do not give a growth rate: noise would dominate.
const MIN_GROWTH_SPAN_HOURS: i64 = 1;

fn create_sql(q: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {q}.{TABLE}(
            id INTEGER PRIMARY KEY,
            taken_at TEXT NOT NULL,
            status TEXT NOT NULL,
            file_size INTEGER,
            wal_size INTEGER,
            page_size INTEGER,
            page_count INTEGER,
            freelist_count INTEGER,
            disk_free INTEGER,
            schema_signature TEXT NOT NULL,
            schema_objects TEXT NOT NULL,
            integrity_mode TEXT,
            integrity_errors INTEGER,
            report TEXT NOT NULL
        )"
    )
}

/// Records a report; returns `{"id", "taken_at"}` of the new snapshot.
pub fn record(db: Db, report: &Report, document: &Json, options: &Options) -> Result<Json> {
    let q = quote(&options.schema);
    let facts = &report.facts;
    let integrity = report.checks.iter().find(|c| c.name == "integrity" && options.integrity != Integrity::None);
    let mode = match options.integrity {
        Integrity::None => Value::Null,
        Integrity::Quick => Value::from("quick"),
        Integrity::Full => Value::from("full"),
    };
    let taken_at = now_utc();
    let objects: BTreeMap<String, &str> = facts.objects.iter().map(|o| (o.key(), o.hash.as_str())).collect();
    let params = [
        Value::from(taken_at.as_str()),
        Value::from(report.status().as_str()),
        Value::from(facts.file_size.map(|s| s as i64)),
        Value::from(facts.wal_size.map(|s| s as i64)),
        Value::Integer(facts.page_size),
        Value::Integer(facts.page_count),
        Value::Integer(facts.freelist_count),
        Value::from(facts.disk.as_ref().map(|d| d.free as i64)),
        Value::from(facts.signature.as_str()),
        Value::Text(json!(objects).to_string()),
        mode,
        // A scan that could not complete counts as one error.
        integrity.map_or(Value::Null, |c| Value::Integer(c.value.as_i64().unwrap_or(1))),
        Value::Text(document.to_string()),
    ];
    let id = db
        .in_savepoint("vigil_snapshot", || write(db, &q, &params, options.keep))
        .context("cannot record the snapshot")?;
    Ok(json!({"id": id, "taken_at": taken_at}))
}

fn write(db: Db, q: &str, params: &[Value], keep: i64) -> Result<i64> {
    db.exec(&create_sql(q))?;
    let columns = "taken_at, status, file_size, wal_size, page_size, page_count, freelist_count, disk_free, \
                   schema_signature, schema_objects, integrity_mode, integrity_errors, report";
    let id = db.query_value(
        &format!("INSERT INTO {q}.{TABLE}({columns}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13) RETURNING id"),
        params,
    )?;
    db.query(
        &format!("DELETE FROM {q}.{TABLE} WHERE id <= (SELECT id FROM {q}.{TABLE} ORDER BY id DESC LIMIT 1 OFFSET ?1)"),
        &[Value::Integer(keep)],
    )?;
    id.as_i64().ok_or_else(|| Error::new("the snapshot got no id"))
}

struct Snapshot {
    taken_at: DateTime<Utc>,
    file_size: Option<i64>,
    objects: BTreeMap<String, String>,
    integrity_mode: Option<String>,
    integrity_errors: Option<i64>,
}

/// The first snapshot in `filter`'s order whose `taken_at` is a time. A row whose `taken_at` is not (written by
/// someone else, or damaged) is passed over: one bad row must not make the whole report fail. Among the first
/// `SCAN` rows only, so that a table full of junk costs a bounded read.
fn load(db: Db, q: &str, filter: &str, params: &[Value]) -> Result<Option<Snapshot>> {
    const SCAN: usize = 64;
    let rows = db.query(
        &format!(
            "SELECT taken_at, file_size, schema_objects, integrity_mode, integrity_errors \
             FROM {q}.{TABLE} {filter} LIMIT {SCAN}"
        ),
        params,
    )?;
    Ok(rows.into_iter().find_map(|row| {
        let taken_at = row[0].as_str().and_then(parse_utc)?;
        let objects = row[2].as_str().and_then(|t| serde_json::from_str::<BTreeMap<String, String>>(t).ok());
        Some(Snapshot {
            taken_at,
            file_size: row[1].as_i64(),
            objects: objects.unwrap_or_default(),
            integrity_mode: row[3].as_str().map(str::to_string),
            integrity_errors: row[4].as_i64(),
        })
    }))
}

/// The checks history adds; none when there is no history table.
pub fn checks(db: Db, facts: &Facts, options: &Options, integrity_scanned: bool) -> Result<Vec<Check>> {
    let q = quote(&options.schema);
    if !has_table(db, &q, TABLE)? {
        return Ok(Vec::new());
    }
    let now = Utc::now();
    let Some(last) = load(db, &q, "ORDER BY taken_at DESC, id DESC", &[])? else {
        return Ok(Vec::new());
    };
    let mut rows = vec![drift(facts, &last, options)];
    rows.extend(growth(db, &q, facts, options, now)?);
    if !integrity_scanned {
        let checked = load(db, &q, "WHERE integrity_mode IS NOT NULL ORDER BY taken_at DESC, id DESC", &[])?;
        rows.push(last_integrity(checked, options, now));
    }
    Ok(rows)
}

fn drift(facts: &Facts, last: &Snapshot, options: &Options) -> Check {
    let current: BTreeMap<String, &str> = facts.objects.iter().map(|o| (o.key(), o.hash.as_str())).collect();
    let mut changes = Vec::new();
    for (key, hash) in &current {
        match last.objects.get(key) {
            None => changes.push(format!("added {key}")),
            Some(old) if old != hash => changes.push(format!("changed {key}")),
            _ => {}
        }
    }
    changes.extend(last.objects.keys().filter(|k| !current.contains_key(*k)).map(|k| format!("removed {k}")));
    let since = format!("since the snapshot of {}", format_utc(last.taken_at));
    let detail =
        if changes.is_empty() { format!("no change {since}") } else { format!("{} {since}", changes.join(", ")) };
    let status = if changes.is_empty() { Status::Ok } else { Status::Info };
    Check::new("schema_drift", changes.len() as i64, "objects").status(status).detail(detail).graded(options)
}

fn growth(db: Db, q: &str, facts: &Facts, options: &Options, now: DateTime<Utc>) -> Result<Vec<Check>> {
    let window_start = now - Duration::seconds((options.growth_window_days * 86_400.0) as i64);
    let newest_allowed = now - Duration::hours(MIN_GROWTH_SPAN_HOURS);
    let baseline = load(
        db,
        q,
        "WHERE taken_at >= ?1 AND taken_at <= ?2 AND file_size IS NOT NULL ORDER BY taken_at, id",
        &[Value::from(format_utc(window_start)), Value::from(format_utc(newest_allowed))],
    )?;
    let (Some(base), Some(size)) = (baseline.as_ref().and_then(|b| b.file_size.map(|s| (b, s))), facts.file_size)
    else {
        let detail = format!(
            "needs a snapshot at least {MIN_GROWTH_SPAN_HOURS} h old within the last {} days",
            options.growth_window_days
        );
        let pending = |name| Check::new(name, Value::Null, "").status(Status::Info).detail(detail.clone());
        return Ok(vec![pending("growth_per_day"), pending("days_until_full")]);
    };
    let days = (now - base.0.taken_at).num_seconds() as f64 / 86_400.0;
    let per_day = ((size as i64 - base.1) as f64 / days).round();
    let growth = Check::new("growth_per_day", per_day, "bytes/day")
        .detail(format!("{} → {} over {:.1} days", show(base.1 as f64, "bytes"), show(size as f64, "bytes"), days))
        .graded(options);
    let full = match facts.disk.as_ref() {
        Some(disk) if per_day > 0.0 => {
            let days_left = ((disk.free as f64 / per_day) * 10.0).round() / 10.0;
            Check::new("days_until_full", days_left, "days")
                .detail(format!("{} free at {} per day", show(disk.free as f64, "bytes"), show(per_day, "bytes/day")))
                .graded(options)
        }
        Some(_) => Check::new("days_until_full", Value::Null, "days").detail("not growing"),
        None => Check::new("days_until_full", Value::Null, "days").status(Status::Info).detail("volume unknown"),
    };
    Ok(vec![growth, full])
}

fn last_integrity(checked: Option<Snapshot>, options: &Options, now: DateTime<Utc>) -> Check {
    let Some(snapshot) = checked else {
        return Check::new("integrity", Value::Null, "errors")
            .status(Status::Info)
            .detail("never checked: no snapshot with an integrity scan ('quick' or 'full')");
    };
    let age_days = days_between(snapshot.taken_at, now);
    let errors = snapshot.integrity_errors.unwrap_or(0);
    let mode = snapshot.integrity_mode.unwrap_or_default();
    let when = format!("last {mode} check {age_days} days ago ({})", format_utc(snapshot.taken_at));
    let age_status = options.thresholds.status("integrity_age_days", age_days);
    let mut check = Check::new("integrity", errors, "errors").graded(options);
    check.status = check.status.max(age_status);
    let age_limit = options.thresholds.describe("integrity_age_days").map(|t| format!("; age {t}")).unwrap_or_default();
    check.threshold = Some(format!("{}{age_limit}", check.threshold.unwrap_or_default()));
    let verdict = if errors > 0 { format!("found {errors} problem(s)") } else { "ok".to_string() };
    check.detail(format!("{when}: {verdict}"))
}
