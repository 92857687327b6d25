//! Collecting one database: opened read-only, asked for `vigil_metrics()`, its rows turned into samples; the
//! failing checks for /health come from the same rows (option `details`), so the checks run once.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use rusqlite::Connection;
use serde_json::{json, Value as Json};

use super::{CheckResult, DbReport, Depth, FailingCheck, Options, Sample, Target};
use crate::{extension, Failure, Global};

pub fn collect(global: &Global, target: &Target, options: &Options) -> DbReport {
    let started = Instant::now();
    let mut report = DbReport {
        target: target.clone(),
        up: false,
        error: None,
        status: None,
        failing: vec![],
        checks: vec![],
        samples: vec![],
        collected_at: SystemTime::now(),
    };
    let rows = options_json(options, target).and_then(|o| {
        let conn = extension::open(global, &target.path, false)?;
        metric_rows(&conn, &o)
    });
    match rows {
        Ok(rows) => {
            report.up = true;
            for sample in rows {
                absorb(&mut report, sample);
            }
            report.samples.push(Sample {
                metric: "vigil_collect_duration_seconds".into(),
                kind: "gauge".into(),
                help: "Time vigil took to collect this database's metrics".into(),
                labels: vec![],
                // Microseconds: the clock says more than the collection can mean.
                value: started.elapsed().as_micros() as f64 / 1e6,
            });
        }
        Err(failure) => report.error = Some(explained(failure, global, target)),
    }
    report
}

fn options_json(options: &Options, target: &Target) -> Result<Json, Failure> {
    let integrity = match options.depth {
        Depth::Cheap => "none",
        Depth::Quick => "quick",
        Depth::Full => "full",
    };
    let mut json = json!({
        "integrity": integrity,
        "statements": options.statements,
        // The CLI never traces: the statistics are those the applications saved.
        "query_stats": "saved",
        "details": true,
        "thresholds": options.thresholds,
    });
    if let Some(root) = &options.backups {
        let dir = own_backups(root, target);
        let dir = dir.to_str().ok_or_else(|| {
            Failure::usage(format!("--backups {}: the path is not UTF-8; rename the directory", dir.display()))
        })?;
        json["backups"] = json!(dir);
    }
    Ok(json)
}

/// `--backups DIR`: the database's own subdirectory when DIR holds one (as `vigil watch --backup-dir DIR` writes
/// them: DIR/<label>/), else DIR itself (as `vigil backup` writes them). A symlink there is not followed.
fn own_backups(root: &Path, target: &Target) -> PathBuf {
    let own = root.join(target.backup_dir_name());
    match std::fs::symlink_metadata(&own) {
        Ok(meta) if meta.is_dir() => own,
        _ => root.to_path_buf(),
    }
}

fn metric_rows(conn: &Connection, options: &Json) -> Result<Vec<Sample>, Failure> {
    let sql = "SELECT metric, type, help, labels, value FROM vigil_metrics(?1)";
    let mut stmt = conn.prepare(sql).map_err(crate::sql::sql_failure)?;
    let rows = stmt
        .query_map([options.to_string()], |row| {
            let labels: String = row.get(3)?;
            Ok(Sample {
                metric: row.get(0)?,
                kind: row.get(1)?,
                help: row.get(2)?,
                labels: labels_of(&labels),
                value: row.get(4)?,
            })
        })
        .map_err(crate::sql::sql_failure)?;
    rows.collect::<Result<_, _>>().map_err(crate::sql::sql_failure)
}

fn labels_of(text: &str) -> Vec<(String, String)> {
    let Ok(Json::Object(map)) = serde_json::from_str::<Json>(text) else { return vec![] };
    map.into_iter().map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), String::from))).collect()
}

/// Keeps a sample; a check's `status` and `detail` labels (asked for with `details`), and `value`, feed the report's status and
/// failing checks and are not exported.
fn absorb(report: &mut DbReport, mut sample: Sample) {
    if sample.metric == "vigil_health_status" {
        let take = |labels: &mut Vec<(String, String)>, name: &str| {
            let i = labels.iter().position(|(k, _)| k == name)?;
            Some(labels.remove(i).1)
        };
        let status = take(&mut sample.labels, "status").unwrap_or_default();
        // In CLI terms: serve's log and /health speak to someone at a shell, not in SQL.
        let detail = take(&mut sample.labels, "detail").unwrap_or_default();
        let detail = crate::sql::cli_terms(&detail, Some(&report.target.path));
        let value: Json =
            take(&mut sample.labels, "value").and_then(|v| serde_json::from_str(&v).ok()).unwrap_or_default();
        let check = sample.labels.iter().find(|(k, _)| k == "check").map(|(_, v)| v.clone()).unwrap_or_default();
        if rank(&status) > rank(report.status.as_deref().unwrap_or("ok")) || report.status.is_none() {
            report.status = Some(status.clone());
        }
        let level = |labels: &mut Vec<(String, String)>, name: &str| {
            take(labels, name).and_then(|v| serde_json::from_str::<Json>(&v).ok()).and_then(|v| v.as_f64())
        };
        let warning = level(&mut sample.labels, "warning");
        let critical = level(&mut sample.labels, "critical");
        let larger_is_worse = take(&mut sample.labels, "direction").map(|d| d == "above");
        if matches!(status.as_str(), "warning" | "critical" | "unknown") {
            report.failing.push(FailingCheck {
                check: check.clone(),
                status: status.clone(),
                value: value.clone(),
                detail: detail.clone(),
            });
        }
        report.checks.push(CheckResult { check, status, value, detail, warning, critical, larger_is_worse });
    }
    report.samples.push(sample);
}

/// How bad a status word is, for taking the worst of several (unknown, or anything unexpected, is the worst:
/// nothing can be said).
pub fn rank(status: &str) -> u8 {
    match status {
        "ok" => 0,
        "info" => 1,
        "warning" => 2,
        "critical" => 3,
        _ => 4,
    }
}

fn explained(failure: Failure, global: &Global, target: &Target) -> String {
    let failure = crate::sql::explained(failure, Some(&target.path), global.busy_timeout);
    let file = format!("{}: ", target.path.display());
    let mut message = failure.message.replacen(&format!("{file}{file}"), &file, 1);
    if !message.starts_with(&file) {
        message = format!("{file}{message}");
    }
    let line: String = message.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::output::cut(&line, 300)
}
