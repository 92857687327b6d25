//! `vigil metrics` (and the collection `vigil serve` caches): Prometheus text exposition of many databases.
//!
//! CONTRACT (issue 14, shared by the metrics and serve work): `serve` uses exactly these items. The metrics
//! engineer owns this module's bodies (and may add private items and submodules); changing a signature means
//! telling the serve engineer.
#![allow(dead_code)] // until `vigil metrics` and `vigil serve` use every item

use std::path::PathBuf;

use crate::{Failure, Global};

/// One database to report on.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// The `db` label: unique among the targets (a collision is a usage error).
    pub name: String,
    pub path: PathBuf,
}

/// How much work each collection does.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Depth {
    /// Cheap checks only: flat cost whatever the size (the default for metrics and serve).
    #[default]
    Cheap,
    /// Plus PRAGMA quick_check.
    Quick,
    /// Plus integrity_check and the fragmentation scan.
    Full,
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// A backup directory (`--backups DIR`): the newest verified backup of each database in it.
    pub backups: Option<PathBuf>,
    /// Per-statement series for the top N saved statements by total time (0 = none, the default).
    pub statements: usize,
    pub depth: Depth,
}

/// A check that is not ok, as /health names it.
#[derive(Clone, Debug, PartialEq)]
pub struct FailingCheck {
    pub check: String,
    /// warning | critical | unknown
    pub status: String,
    pub value: serde_json::Value,
    pub detail: String,
}

/// One sample of the exposition (`kind` is the family's type: gauge, counter or histogram; a histogram's samples
/// are named `<family>_bucket` with an `le` label, `<family>_sum` and `<family>_count`).
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub metric: String,
    pub kind: String,
    pub help: String,
    /// Labels other than `db`, which [`render`] adds from the report's target.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// What one collection learned of one database.
#[derive(Clone, Debug)]
pub struct DbReport {
    pub target: Target,
    /// Could the database be opened and read this time (`vigil_up`).
    pub up: bool,
    /// Why not, when not up: one line naming the file and what to do.
    pub error: Option<String>,
    /// Overall health status (ok | info | warning | critical); None when not up.
    pub status: Option<String>,
    pub failing: Vec<FailingCheck>,
    pub samples: Vec<Sample>,
    /// When this report was collected.
    pub collected_at: std::time::SystemTime,
}

/// Expands DB paths and globs into targets, with unique `db` labels; an unmatched glob, a non-database file
/// named explicitly or a label collision is a usage error.
pub fn targets(_patterns: &[String]) -> Result<Vec<Target>, Failure> {
    Err(Failure::usage("vigil metrics: not built yet"))
}

/// Collects one database, opened read-only and never written; never fails: an unreadable database is a report
/// with `up == false`.
pub fn collect(_global: &Global, target: &Target, _options: &Options) -> DbReport {
    DbReport {
        target: target.clone(),
        up: false,
        error: Some("not built yet".into()),
        status: None,
        failing: vec![],
        samples: vec![],
        collected_at: std::time::SystemTime::now(),
    }
}

/// The Prometheus text exposition (format 0.0.4) of every report: one family per metric, `db` label on each
/// sample, escaped; `vigil_up` for every database.
pub fn render(_reports: &[DbReport]) -> String {
    String::new()
}
