//! `vigil metrics` (and the collection `vigil serve` caches): Prometheus text exposition of many databases.
//!
//! `serve` uses the same pieces: `targets`, `collect`, `render` and the collection flags.

mod collect;
mod render;
pub(crate) mod targets;
pub(crate) mod textfile;

pub use collect::rank as status_rank;

use std::path::PathBuf;

use clap::Args;

use crate::{exit, Failure, Global};

/// One database to report on.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// The `db` label: unique among the targets (a collision is a usage error).
    pub name: String,
    pub path: PathBuf,
}

impl Target {
    /// The subdirectory of a backup root that holds this database's backups: `vigil watch --backup-dir` writes
    /// there, and `--backups` reads there when it exists.
    pub fn backup_dir_name(&self) -> String {
        backup_dir_name(&self.name)
    }
}

/// One path component named from a label (`/` and `%` percent-encoded, a leading `.` too, so `shop/app.db` →
/// `shop%2Fapp.db` and no label can name `..`).
pub fn backup_dir_name(label: &str) -> String {
    let mut name = String::with_capacity(label.len());
    for (i, c) in label.chars().enumerate() {
        match c {
            '%' => name.push_str("%25"),
            '/' => name.push_str("%2F"),
            '.' if i == 0 => name.push_str("%2E"),
            c if c.is_control() => name.push_str(&format!("%{:02X}", c as u32)),
            c => name.push(c),
        }
    }
    name
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

impl Depth {
    /// From the `--quick` / `--full` flags (clap keeps them exclusive).
    pub fn from_flags(quick: bool, full: bool) -> Depth {
        if full {
            Depth::Full
        } else if quick {
            Depth::Quick
        } else {
            Depth::Cheap
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// A backup directory (`--backups DIR`): the newest verified backup of each database in it.
    pub backups: Option<PathBuf>,
    /// Per-statement series for the top N saved statements by total time (0 = none, the default).
    pub statements: usize,
    pub depth: Depth,
    /// Threshold overrides (`--threshold`, parsed as `vigil health` does): vigil_metrics's `thresholds` option.
    pub thresholds: serde_json::Map<String, serde_json::Value>,
}

/// One check of one collection, with the levels it was graded against: what alerting needs to tell a breach,
/// and how far a value is from its level.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckResult {
    pub check: String,
    /// ok | info | warning | critical
    pub status: String,
    pub value: serde_json::Value,
    pub detail: String,
    /// The warning and critical levels in force (None: no such level, or not a graded check).
    pub warning: Option<f64>,
    pub critical: Option<f64>,
    /// For a graded check: whether a larger value is worse (false: a smaller one, as days_until_full).
    pub larger_is_worse: Option<bool>,
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
#[allow(dead_code)] // collected_at: for `vigil serve`
pub struct DbReport {
    pub target: Target,
    /// Could the database be opened and read this time (`vigil_up`).
    pub up: bool,
    /// Why not, when not up: one line naming the file and what to do.
    pub error: Option<String>,
    /// Overall health status (ok | info | warning | critical); None when not up.
    pub status: Option<String>,
    pub failing: Vec<FailingCheck>,
    /// Every check of this collection, failing or not (empty when not up).
    pub checks: Vec<CheckResult>,
    pub samples: Vec<Sample>,
    /// When this report was collected.
    pub collected_at: std::time::SystemTime,
}

/// Expands DB paths and globs into targets, with unique `db` labels; an unmatched glob or a label collision is a
/// usage error. A path named explicitly is a target whatever it holds (missing or not a database: `vigil_up 0`);
/// a glob keeps only files that start with SQLite's magic header.
pub fn targets(patterns: &[String]) -> Result<Vec<Target>, Failure> {
    if patterns.is_empty() {
        return Err(Failure::usage("name at least one database file or glob"));
    }
    targets::labelled(targets::expand(patterns)?)
}

/// Collects one database, opened read-only and never written; never fails: an unreadable database is a report
/// with `up == false`.
pub fn collect(global: &Global, target: &Target, options: &Options) -> DbReport {
    collect::collect(global, target, options)
}

/// The Prometheus text exposition (format 0.0.4) of every report: one family per metric, `db` label on each
/// sample, escaped; `vigil_up` for every database.
pub fn render(reports: &[DbReport]) -> String {
    render::render(reports)
}

/// What each collection reads, shared by `vigil metrics` and `vigil serve`.
#[derive(Args)]
pub struct CollectArgs {
    /// A backup directory: export the newest verified backup of each database found in it
    #[arg(long, value_name = "DIR")]
    pub backups: Option<PathBuf>,
    /// Also export the top N saved statements by total time (per-statement series; 0: none)
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=1000))]
    pub statements: u16,
    /// Also run PRAGMA quick_check
    #[arg(long, conflicts_with = "full")]
    pub quick: bool,
    /// Also run integrity_check and the fragmentation scan
    #[arg(long)]
    pub full: bool,
    /// Override a health threshold, as `vigil health --threshold` (tunes vigil_health_status, the exit code and
    /// /health's 503)
    #[arg(long = "threshold", value_name = "NAME=WARN[,CRIT]")]
    pub thresholds: Vec<String>,
}

impl CollectArgs {
    /// The options of every collection; the thresholds are checked with the extension (`library`: a connection
    /// that loaded it).
    pub fn options(&self, library: &rusqlite::Connection) -> Result<Options, Failure> {
        if let Some(dir) = self.backups.as_ref().filter(|d| !d.is_dir()) {
            return Err(Failure::usage(format!(
                "--backups {}: not a directory; name the directory `vigil backup` writes into",
                dir.display()
            )));
        }
        Ok(Options {
            backups: self.backups.clone(),
            statements: self.statements.into(),
            depth: Depth::from_flags(self.quick, self.full),
            thresholds: crate::health::checked_thresholds(library, &self.thresholds)?,
        })
    }
}

#[derive(Args)]
pub struct MetricsArgs {
    /// Database files or globs (quoted, e.g. '/srv/*/data/*.db'); globs keep only SQLite files
    #[arg(value_name = "DB|GLOB", required = true)]
    pub databases: Vec<String>,
    /// Write DIR/vigil.prom atomically (node_exporter's textfile collector) instead of printing
    #[arg(long, value_name = "DIR")]
    pub textfile: Option<PathBuf>,
    /// The file --textfile writes (default vigil.prom): one name per command sharing the directory
    #[arg(long, value_name = "NAME.prom", requires = "textfile", value_parser = textfile::parse_name)]
    pub textfile_name: Option<String>,
    #[command(flatten)]
    pub collect: CollectArgs,
}

/// `vigil metrics`: exit 0 when every database could be read, 3 when one could not (its `vigil_up 0` is written).
pub fn run(global: &Global, args: &MetricsArgs) -> Result<u8, Failure> {
    // One connection holding the extension keeps its library mapped, so that each database's connection loads
    // it without SQLite's dlclose and the next dlopen mapping it all again.
    let library = crate::extension::open_memory(global)?;
    let options = args.collect.options(&library)?;
    let targets = targets(&args.databases)?;
    let mut reports: Vec<DbReport> = Vec::with_capacity(targets.len());
    for target in &targets {
        let report = collect(global, target, &options);
        // A signal interrupts the collection under way, which would read as `vigil_up 0`: publish nothing.
        if crate::interrupt::received().is_some() {
            return Err(Failure::unknown("interrupted"));
        }
        reports.push(report);
    }
    for report in reports.iter().filter(|r| !r.up) {
        let error = report.error.clone().unwrap_or_else(|| format!("{}: unreadable", report.target.path.display()));
        eprintln!("vigil metrics: {}", crate::output::escape_controls(&error));
    }
    let text = render(&reports);
    match &args.textfile {
        Some(dir) => {
            textfile::write(dir, args.textfile_name.as_deref().unwrap_or(textfile::FILE_NAME), &text)?;
        }
        None => print!("{text}"),
    }
    Ok(if reports.iter().all(|r| r.up) { exit::OK } else { exit::UNKNOWN })
}
