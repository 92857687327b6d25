//! health_report, health_json, health_tables and health_snapshot: a database's health as SQL.
//!
//! Cheap checks (the default) read only the header, the schema and file metadata, so their cost is flat in
//! database size. Scans (integrity, fragmentation, per-b-tree sizes) read the whole file and run on request.

mod backup_age;
pub(crate) mod checks;
pub(crate) mod history;
mod maintenance_age;
pub mod options;
mod recommend;
pub(crate) mod scan;
mod series;
pub mod thresholds;

use serde_json::{json, Value as Json};

use crate::error::{Context as _, Result};
use crate::sqlite::{Db, Value};
use crate::vtab::TableFunction;
pub use options::Options;
pub use scan::has_dbstat;
pub use series::HealthHistory;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    Info,
    Warning,
    Critical,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Info => "info",
            Status::Warning => "warning",
            Status::Critical => "critical",
        }
    }
}

pub use crate::store::is_vigil_object;

/// One row of the report.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub value: Value,
    pub unit: &'static str,
    pub threshold: Option<String>,
    pub detail: String,
}

impl Check {
    pub fn new(name: &'static str, value: impl Into<Value>, unit: &'static str) -> Check {
        Check { name, status: Status::Ok, value: value.into(), unit, threshold: None, detail: String::new() }
    }

    pub fn status(mut self, status: Status) -> Check {
        self.status = status;
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Check {
        self.detail = detail.into();
        self
    }

    /// Grades the value against the threshold of the same name and records the levels in force.
    pub fn graded(mut self, options: &Options) -> Check {
        if let Some(value) = self.value.as_f64() {
            self.status = self.status.max(options.thresholds.status(self.name, value));
        }
        self.threshold = options.thresholds.describe(self.name);
        self
    }

    fn to_json(&self) -> Json {
        json!({
            "check": self.name,
            "status": self.status.as_str(),
            "value": value_json(&self.value),
            "unit": self.unit,
            "threshold": self.threshold,
            "detail": self.detail,
        })
    }
}

pub fn value_json(value: &Value) -> Json {
    match value {
        Value::Null | Value::Blob(_) => Json::Null,
        Value::Integer(i) => json!(i),
        Value::Real(r) => json!(r),
        Value::Text(t) => json!(t),
        Value::RawText(t) => json!(String::from_utf8_lossy(t)),
    }
}

/// A full report: its checks in order, and the schema it describes.
pub struct Report {
    pub checks: Vec<Check>,
    pub schema: String,
    pub path: Option<String>,
    pub facts: checks::Facts,
}

impl Report {
    pub fn status(&self) -> Status {
        self.checks.iter().map(|c| c.status).max().unwrap_or(Status::Ok)
    }

    pub fn to_json(&self) -> Json {
        json!({
            "status": self.status().as_str(),
            "schema": self.schema,
            "path": self.path,
            "generated_at": crate::info::now_utc(),
            "sqlite_version": crate::sqlite::host_version(),
            "vigil_version": crate::info::VERSION,
            "checks": self.checks.iter().map(Check::to_json).collect::<Vec<_>>(),
        })
    }
}

/// Builds the report: cheap checks, requested scans, history, then the maintenance recommendation.
pub fn build_report(db: Db, options: &Options) -> Result<Report> {
    let facts = checks::Facts::gather(db, options)?;
    let mut rows = checks::cheap(&facts, options);
    let integrity_scanned = options.integrity != options::Integrity::None;
    if integrity_scanned {
        rows.extend(scan::integrity(db, options)?);
    }
    if options.fragmentation {
        rows.extend(scan::fragmentation(db, &facts, options)?);
    }
    if options.history {
        rows.extend(history::checks(db, &facts, options, integrity_scanned)?);
        rows.extend(maintenance_age::age_checks(db, options)?);
        rows.push(backup_age::age_check(db, options)?);
    }
    if !rows.iter().any(|c| c.name == "integrity") {
        rows.push(
            Check::new("integrity", Value::Null, "errors")
                .status(Status::Info)
                .detail("not checked in this run: ask for integrity 'quick' or 'full'"),
        );
    }
    let recommendation = recommend::recommend(&rows, &facts);
    rows.push(recommendation);
    rows.retain(|c| options.wants(c.name));
    Ok(Report { checks: rows, schema: options.schema.clone(), path: facts.path.clone(), facts })
}

/// The figures maintenance decides on, as health_report computes them: the cheap facts, and with
/// `scan_pages` the `fragmentation` row of the page scan.
pub fn measure(db: Db, schema: &str, scan_pages: bool) -> Result<(checks::Facts, Option<Check>)> {
    let options = Options { schema: schema.to_string(), ..Options::default() };
    let facts = checks::Facts::gather(db, &options)?;
    let fragmentation = if scan_pages {
        scan::fragmentation(db, &facts, &options)?.into_iter().find(|c| c.name == "fragmentation")
    } else {
        None
    };
    Ok((facts, fragmentation))
}

fn options_arg(args: &[Value]) -> Result<Options> {
    Options::parse(args.first()).context("bad options")
}

/// `SELECT * FROM health_report([options])`.
pub struct HealthReport;

impl TableFunction for HealthReport {
    const NAME: &'static str = "health_report";
    const COLUMNS: &'static [&'static str] = &["check", "status", "value", "unit", "threshold", "detail"];
    const ARGS: &'static [&'static str] = &["options"];

    fn rows(db: Db, args: &[Value]) -> Result<Vec<Vec<Value>>> {
        let report = build_report(db, &options_arg(args)?)?;
        Ok(report
            .checks
            .into_iter()
            .map(|c| {
                vec![
                    Value::from(c.name),
                    Value::from(c.status.as_str()),
                    c.value,
                    Value::from(c.unit),
                    Value::from(c.threshold),
                    Value::from(c.detail),
                ]
            })
            .collect())
    }
}

/// `SELECT * FROM health_tables([options])`.
pub struct HealthTables;

impl TableFunction for HealthTables {
    const NAME: &'static str = "health_tables";
    const COLUMNS: &'static [&'static str] = scan::TABLE_COLUMNS;
    const ARGS: &'static [&'static str] = &["options"];

    fn rows(db: Db, args: &[Value]) -> Result<Vec<Vec<Value>>> {
        scan::table_rows(db, &options_arg(args)?)
    }
}

/// `health_json([options])`: the whole report as one JSON document with an overall status.
pub fn health_json(db: Db, args: &[Value]) -> Result<Value> {
    let report = build_report(db, &options_arg(args)?)?;
    Ok(Value::Text(report.to_json().to_string()))
}

/// `health_snapshot([options])`: records a report into the history table; returns the report with a
/// `snapshot` key naming the new record.
pub fn health_snapshot(db: Db, args: &[Value]) -> Result<Value> {
    let mut options = options_arg(args)?;
    options.checks = None;
    let report = build_report(db, &options)?;
    let mut document = report.to_json();
    document["snapshot"] = history::record(db, &report, &document, &options)?;
    Ok(Value::Text(document.to_string()))
}
