//! Health checks and maintenance as rows: each check's status, each numeric check's value in base units.

use chrono::{DateTime, Utc};

use super::{Options, Row};
use crate::error::Result;
use crate::health::{self, Check, Status};
use crate::sqlite::Db;
use crate::store::{maintenance_log, quote};

/// Each numeric health check under a Prometheus name in base units: (check, metric, factor, help).
pub const CHECK_METRICS: &[(&str, &str, f64, &str)] = &[
    ("probe_ms", "vigil_probe_duration_seconds", 0.001, "Time to read the schema (SELECT count(*) FROM sqlite_schema)"),
    ("file_size", "vigil_database_size_bytes", 1.0, "Size of the database file"),
    ("page_size", "vigil_page_size_bytes", 1.0, "Database page size"),
    ("page_count", "vigil_pages", 1.0, "Pages in the database"),
    ("freelist_count", "vigil_freelist_pages", 1.0, "Pages on the freelist (unused)"),
    ("freelist_pct", "vigil_freelist_ratio", 0.01, "Free pages over all pages (0-1)"),
    ("wal_size", "vigil_wal_size_bytes", 1.0, "Size of the write-ahead log (0 when not in WAL mode)"),
    ("disk_free", "vigil_disk_free_bytes", 1.0, "Free bytes on the volume holding the database"),
    ("disk_used_pct", "vigil_disk_used_ratio", 0.01, "Used share of the volume holding the database (0-1)"),
    ("tables", "vigil_tables", 1.0, "Tables in the schema"),
    ("indexes", "vigil_indexes", 1.0, "Indexes in the schema"),
    ("integrity", "vigil_integrity_errors", 1.0, "Errors found by quick_check or integrity_check (only when run)"),
    ("foreign_keys", "vigil_foreign_key_violations", 1.0, "Rows violating a foreign key (only with integrity full)"),
    ("fragmentation", "vigil_fragmentation_ratio", 0.01, "Share of b-tree pages out of order (only when scanned, 0-1)"),
    ("unused_pct", "vigil_unused_ratio", 0.01, "Unused bytes over the file's bytes (only when scanned, 0-1)"),
    ("growth_per_day", "vigil_growth_bytes_per_second", 1.0 / 86400.0, "Growth of the file over the history window"),
    ("days_until_full", "vigil_disk_full_in_seconds", 86400.0, "Time until the volume is full at the growth rate"),
    ("maintenance_age", "vigil_maintenance_age_seconds", 86400.0, "Time since the last standard or full maintenance"),
    ("full_maintenance_age", "vigil_full_maintenance_age_seconds", 86400.0, "Time since the last full maintenance"),
    ("last_backup", "vigil_backup_age_seconds", 3600.0, "Time since the newest verified backup in the backup log"),
];

const STATUS_HELP: &str = "Status of each health check: 0 ok or info, 1 warning, 2 critical, 3 unknown";
const OVERALL_HELP: &str = "Overall health: 0 ok or info, 1 warning, 2 critical, 3 unknown (vigil's exit codes)";
const INFO_HELP: &str = "The database's journal mode and auto_vacuum setting (always 1)";
const RECOMMENDED_HELP: &str = "Maintenance the checks call for: 0 none, 1 light, 2 standard, 3 full, 4 urgent";
const LEVELS: &[&str] = &["none", "light", "standard", "full", "urgent"];

/// Nagios codes, as vigil's exit codes: ok/info 0, warning 1, critical 2 (3, unknown, is a database that cannot
/// be read: it never reaches here).
pub fn code(status: Status) -> f64 {
    match status {
        Status::Ok | Status::Info => 0.0,
        Status::Warning => 1.0,
        Status::Critical => 2.0,
    }
}

/// A check's value in base units, rounded to millionths (of a ratio, of a second): multiplying by 0.01 or by
/// 86400 leaves binary noise such as 0.5650000000000001 that no reader wants in a series.
fn in_base_units(value: f64, factor: f64) -> f64 {
    let scaled = value * factor;
    if factor == 1.0 || !scaled.is_finite() {
        return scaled;
    }
    super::millionths(scaled)
}

pub fn rows(db: Db, options: &Options) -> Result<Vec<Row>> {
    let report = health::build_report(db, &options.health)?;
    let mut rows = vec![Row::gauge("vigil_health_overall_status", OVERALL_HELP, code(report.status()))];
    for check in &report.checks {
        let mut row = Row::gauge("vigil_health_status", STATUS_HELP, code(check.status)).label("check", check.name);
        if options.details {
            let value = health::value_json(&check.value).to_string();
            row =
                row.label("status", check.status.as_str()).label("detail", check.detail.as_str()).label("value", value);
            row = with_levels(row, check.name, options);
        }
        rows.push(row);
    }
    for (name, metric, factor, help) in CHECK_METRICS {
        if let Some(value) = find(&report.checks, name).and_then(|c| c.value.as_f64()) {
            rows.push(Row::gauge(metric, help, in_base_units(value, *factor)));
        }
    }
    let text = |name| find(&report.checks, name).and_then(|c| c.value.as_str().map(str::to_string));
    if let (Some(journal_mode), Some(auto_vacuum)) = (text("journal_mode"), text("auto_vacuum")) {
        let info = Row::gauge("vigil_database_info", INFO_HELP, 1.0);
        rows.push(info.label("journal_mode", journal_mode).label("auto_vacuum", auto_vacuum));
    }
    if let Some(level) = text("maintenance").and_then(|l| LEVELS.iter().position(|x| *x == l)) {
        rows.push(Row::gauge("vigil_maintenance_recommended_level", RECOMMENDED_HELP, level as f64));
    }
    Ok(rows)
}

/// A graded check's levels in force (`warning`, `critical`: JSON numbers or null) and `direction` (`above`: a
/// larger value is worse, `below`: a smaller one), so that alerting can tell how far a value is from a level.
fn with_levels(row: Row, check: &str, options: &Options) -> Row {
    let Some(larger_is_worse) = health::thresholds::larger_is_worse(check) else { return row };
    let (warning, critical) = options.health.thresholds.levels(check);
    let level = |l: Option<f64>| serde_json::json!(l).to_string();
    row.label("warning", level(warning))
        .label("critical", level(critical))
        .label("direction", if larger_is_worse { "above" } else { "below" })
}

fn find<'a>(checks: &'a [Check], name: &str) -> Option<&'a Check> {
    checks.iter().find(|c| c.name == name)
}

/// When each maintenance level last ran, from the maintenance log (levels light, standard, full, vacuum).
pub fn maintenance_rows(db: Db, options: &Options) -> Result<Vec<Row>> {
    const HELP: &str = "When vigil last ran each maintenance level on this database (the maintenance log)";
    let runs = maintenance_log::last_runs(db, &quote(&options.health.schema))?;
    Ok(runs
        .into_iter()
        .map(|(level, at): (String, DateTime<Utc>)| {
            let seconds = at.timestamp_millis() as f64 / 1000.0;
            Row::gauge("vigil_maintenance_last_run_timestamp_seconds", HELP, seconds).label("level", level)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_values_carry_no_binary_noise() {
        assert_eq!((56.5 * 0.01).to_string(), "0.5650000000000001", "the noise this removes");
        assert_eq!(in_base_units(56.5, 0.01).to_string(), "0.565");
        assert_eq!(in_base_units(0.3, 86400.0).to_string(), "25920");
        assert_eq!(in_base_units(1.1, 3600.0).to_string(), "3960");
        assert_eq!(in_base_units(123456789.0, 86400.0), 10666666569600.0);
        assert_eq!(in_base_units(4097.0, 1.0), 4097.0);
    }
}
