//! Collecting one database: opened read-only, asked for its health, turned into samples.

use std::time::{Instant, SystemTime};

use serde_json::{json, Value as Json};

use super::{DbReport, Depth, FailingCheck, Options, Sample, Target};
use crate::{extension, Failure, Global};

pub fn collect(global: &Global, target: &Target, options: &Options) -> DbReport {
    let started = Instant::now();
    let collected_at = SystemTime::now();
    let mut report = DbReport {
        target: target.clone(),
        up: false,
        error: None,
        status: None,
        failing: vec![],
        samples: vec![],
        collected_at,
    };
    match health(global, target, options) {
        Ok(health) => {
            report.up = true;
            report.status = health["status"].as_str().map(String::from);
            report.failing = failing(&health);
            report.samples = samples(&health);
            report.samples.push(gauge(
                "vigil_collect_duration_seconds",
                "Time vigil took to collect this database's metrics",
                started.elapsed().as_secs_f64(),
            ));
        }
        Err(failure) => {
            let failure = crate::sql::explained(failure, Some(&target.path), global.busy_timeout);
            let file = format!("{}: ", target.path.display());
            let message = failure.message.replacen(&format!("{file}{file}"), &file, 1);
            report.error = Some(one_line(&message));
        }
    }
    report
}

fn health(global: &Global, target: &Target, options: &Options) -> Result<Json, Failure> {
    let conn = extension::open(global, &target.path, false)?;
    let integrity = match options.depth {
        Depth::Cheap => "none",
        Depth::Quick => "quick",
        Depth::Full => "full",
    };
    let options = json!({"integrity": integrity, "fragmentation": options.depth == Depth::Full});
    crate::sql::query_json(&conn, "SELECT health_json(?1)", [options.to_string()])
}

fn one_line(message: &str) -> String {
    let line: String = message.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::output::cut(&line, 300)
}

fn failing(health: &Json) -> Vec<FailingCheck> {
    let checks = health["checks"].as_array().map(Vec::as_slice).unwrap_or_default();
    checks
        .iter()
        .filter(|c| matches!(c["status"].as_str(), Some("warning" | "critical" | "unknown")))
        .map(|c| FailingCheck {
            check: c["check"].as_str().unwrap_or_default().into(),
            status: c["status"].as_str().unwrap_or_default().into(),
            value: c["value"].clone(),
            detail: c["detail"].as_str().unwrap_or_default().into(),
        })
        .collect()
}

/// Nagios codes, as vigil's exit codes: ok/info 0, warning 1, critical 2, unknown 3.
pub fn status_code(status: &str) -> f64 {
    match status {
        "ok" | "info" => 0.0,
        "warning" => 1.0,
        "critical" => 2.0,
        _ => 3.0,
    }
}

/// Each numeric health check under a Prometheus name in base units: (check, metric, factor to the base unit, help).
const CHECK_METRICS: &[(&str, &str, f64, &str)] = &[
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
    ("integrity", "vigil_integrity_errors", 1.0, "Errors found by quick_check or integrity_check (when run)"),
    ("foreign_keys", "vigil_foreign_key_violations", 1.0, "Rows violating a foreign key (full checks only)"),
    ("fragmentation", "vigil_fragmentation_ratio", 0.01, "Share of pages out of order (full checks only, 0-1)"),
    ("unused_pct", "vigil_unused_ratio", 0.01, "Unused bytes over the file's bytes (full checks only, 0-1)"),
    ("maintenance_age", "vigil_maintenance_age_seconds", 86400.0, "Time since the last standard or full maintenance"),
    ("full_maintenance_age", "vigil_full_maintenance_age_seconds", 86400.0, "Time since the last full maintenance"),
    ("last_backup", "vigil_backup_age_seconds", 3600.0, "Time since the last verified backup"),
];

fn samples(health: &Json) -> Vec<Sample> {
    let checks = health["checks"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut samples = vec![gauge(
        "vigil_health_overall_status",
        "Overall health: 0 ok, 1 warning, 2 critical, 3 unknown (vigil's exit codes)",
        status_code(health["status"].as_str().unwrap_or("unknown")),
    )];
    for check in checks {
        let name = check["check"].as_str().unwrap_or_default();
        let mut status = gauge(
            "vigil_health_status",
            "Status of each health check: 0 ok or info, 1 warning, 2 critical, 3 unknown",
            status_code(check["status"].as_str().unwrap_or("unknown")),
        );
        status.labels.push(("check".into(), name.into()));
        samples.push(status);
    }
    for (check, metric, factor, help) in CHECK_METRICS {
        let value = checks.iter().find(|c| c["check"] == *check).and_then(|c| c["value"].as_f64());
        if let Some(value) = value {
            samples.push(gauge(metric, help, value * factor));
        }
    }
    samples
}

pub fn gauge(metric: &str, help: &str, value: f64) -> Sample {
    Sample { metric: metric.into(), kind: "gauge".into(), help: help.into(), labels: vec![], value }
}
