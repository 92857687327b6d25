//! vacuum_if_fragmented: measures as health_report does, and rewrites the database only when a figure is
//! over its threshold, there is room on disk for the rewrite, and nobody holds a lock for longer than the
//! busy timeout. VACUUM is all-or-nothing by itself (rollback journal or WAL); vigil adds the decision, the
//! disk check, the WAL truncation afterwards and the figures before and after.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;

use super::checkpoint::{self, Mode};
use super::options::{percentage, MaintenanceOptions, Method, Metric};
use super::{elapsed_ms, Target};
use crate::error::{Error, Result};
use crate::health::checks::{percent, Facts};
use crate::health::thresholds::{default_warning, show};
use crate::health::{self, Check};
use crate::sqlite::{Db, Value};
use crate::store::maintenance_log;
use crate::volume::{parent_dir, volume_of};

pub const OPTION_KEYS: &[&str] = &["schema", "busy_timeout_ms", "dry_run", "log", "metric", "method"];

/// SQLite's auto_vacuum=INCREMENTAL.
const AUTO_VACUUM_INCREMENTAL: i64 = 2;
/// Slack over the estimated space a rewrite needs: file-system blocks, the journal header, indexes that
/// come out a little larger when rebuilt.
const SPACE_MARGIN: f64 = 1.05;
/// Page cache of the maintenance connection while it rewrites, in KiB.
const VACUUM_CACHE_KIB: i64 = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Vacuumed,
    Skipped,
    Refused,
    /// dry_run: it would have vacuumed.
    Planned,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Vacuumed => "vacuumed",
            Decision::Skipped => "skipped",
            Decision::Refused => "refused",
            Decision::Planned => "planned",
        }
    }
}

/// The figures of one side of the rewrite.
#[derive(Clone, Debug)]
pub struct Figures {
    pub pct: f64,
    pub bytes: i64,
}

pub struct Outcome {
    pub decision: Decision,
    pub reason: String,
    pub method: &'static str,
    pub metric: Metric,
    pub threshold: f64,
    pub before: Figures,
    pub after: Figures,
    pub duration_ms: f64,
}

impl Outcome {
    pub fn bytes_freed(&self) -> i64 {
        self.before.bytes - self.after.bytes
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "decision": self.decision.as_str(),
            "reason": self.reason,
            "method": self.method,
            "metric": self.metric.as_str(),
            "threshold": self.threshold,
            "before_pct": self.before.pct,
            "after_pct": self.after.pct,
            "size_before": self.before.bytes,
            "size_after": self.after.bytes,
            "bytes_freed": self.bytes_freed(),
            "duration_ms": self.duration_ms,
        })
    }
}

/// The default threshold: health_report's warning level for the metric.
pub fn default_threshold(metric: Metric) -> f64 {
    default_warning(metric.as_str()).unwrap_or(20.0)
}

/// Measures on `db` the metric of `schema`, with health_report's own code.
fn measure(db: Db, schema: &str, metric: Metric) -> Result<(Facts, Figures)> {
    let (facts, fragmentation) = health::measure(db, schema, metric == Metric::Fragmentation)?;
    let pct = match fragmentation {
        Some(Check { value, .. }) => value.as_f64().ok_or_else(|| Error::new("the page scan gave no figure"))?,
        None => facts.freelist_pct(),
    };
    let bytes = (facts.file_size.unwrap_or(0) + facts.wal_size.unwrap_or(0)) as i64;
    Ok((facts, Figures { pct, bytes }))
}

/// Where the decision reads its figures and where the rewrite runs.
pub enum Via<'a> {
    /// Called on its own: measure on the caller's connection, open a maintenance connection if needed.
    Caller(Db),
    /// Inside `maintain`, after other steps changed the file: everything on its maintenance connection
    /// (the caller must not read a schema another connection changed while the caller's statement runs).
    Target(&'a Target),
}

/// The maintenance log's entry for a vacuum that rewrote the file.
fn log_entry(outcome: &Outcome) -> maintenance_log::Entry {
    maintenance_log::Entry {
        function: "vacuum_if_fragmented",
        level: "vacuum".into(),
        result: "ok",
        duration_ms: outcome.duration_ms,
        size_before: outcome.before.bytes,
        size_after: outcome.after.bytes,
        detail: outcome.to_json(),
    }
}

/// Decides, and vacuums when over the threshold. Lock, transaction and access problems are errors; a
/// rewrite that would not fit on disk is a `refused` decision.
pub fn run(via: Via, threshold: Option<f64>, options: &MaintenanceOptions) -> Result<Outcome> {
    let started = Instant::now();
    let threshold = threshold.unwrap_or_else(|| default_threshold(options.metric));
    let (facts, before) = match via {
        Via::Caller(db) => measure(db, &options.schema, options.metric)?,
        Via::Target(target) => measure(target.db(), "main", options.metric)?,
    };
    let method = choose_method(&facts, options)?;
    let mut outcome = Outcome {
        decision: Decision::Skipped,
        reason: String::new(),
        method: "none",
        metric: options.metric,
        threshold,
        after: before.clone(),
        before,
        duration_ms: 0.0,
    };
    let figure = format!("{} is {} %", options.metric.as_str(), outcome.before.pct);
    if outcome.before.pct <= threshold {
        outcome.reason = format!("{figure}, not over the threshold of {threshold} %");
    } else if options.dry_run {
        outcome.decision = Decision::Planned;
        outcome.method = method.name();
        outcome.reason = format!("dry run: {figure}, over the threshold of {threshold} %; would run {}", method.name());
    } else {
        let opened;
        let target = match via {
            Via::Caller(db) => {
                opened = Target::open(db, &options.schema, options.busy_timeout_ms)?;
                &opened
            }
            Via::Target(target) => target,
        };
        match space_shortfall(target, &facts, method) {
            Some(shortfall) => {
                outcome.decision = Decision::Refused;
                outcome.reason = format!("{figure}, over the threshold of {threshold} %, but {shortfall}");
            }
            None => {
                let note = rewrite(target, method)?;
                outcome.after = measure(target.db(), "main", options.metric)?.1;
                outcome.decision = Decision::Vacuumed;
                outcome.method = method.name();
                outcome.reason = format!("{figure}, over the threshold of {threshold} %{note}");
                outcome.duration_ms = elapsed_ms(started);
                if options.log {
                    maintenance_log::record(target.db(), &log_entry(&outcome))?;
                }
            }
        }
    }
    outcome.duration_ms = elapsed_ms(started);
    Ok(outcome)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rewrite {
    Vacuum,
    Incremental,
}

impl Rewrite {
    fn name(self) -> &'static str {
        match self {
            Rewrite::Vacuum => "vacuum",
            Rewrite::Incremental => "incremental_vacuum",
        }
    }
}

fn choose_method(facts: &Facts, options: &MaintenanceOptions) -> Result<Rewrite> {
    let incremental = facts.auto_vacuum == AUTO_VACUUM_INCREMENTAL;
    match options.method {
        Method::Vacuum => Ok(Rewrite::Vacuum),
        Method::Auto if incremental && options.metric == Metric::FreelistPct => Ok(Rewrite::Incremental),
        Method::Auto => Ok(Rewrite::Vacuum),
        Method::Incremental if !incremental => Err(Error::new(
            "method 'incremental' needs auto_vacuum=INCREMENTAL (this database does not have it): use method \
             'vacuum', or set PRAGMA auto_vacuum=INCREMENTAL followed by one VACUUM",
        )),
        Method::Incremental if options.metric == Metric::Fragmentation => Err(Error::new(
            "method 'incremental' only returns free pages to the file system; it does not reorder pages, so \
             it cannot lower the metric 'fragmentation': use method 'vacuum'",
        )),
        Method::Incremental => Ok(Rewrite::Incremental),
    }
}

/// Runs the rewrite; returns a note for the reason (empty when all went as planned).
fn rewrite(target: &Target, method: Rewrite) -> Result<String> {
    let wal = target.journal_mode()? == "wal";
    match method {
        // With a rollback journal, a 64 MiB page cache spares the copy-back re-reading pages (~20 % faster on
        // 1 GiB, bench); in WAL mode it measured no better.
        Rewrite::Vacuum if !wal => target.exec(&format!("PRAGMA cache_size=-{VACUUM_CACHE_KIB}; VACUUM"))?,
        Rewrite::Vacuum => target.exec("VACUUM")?,
        // Each row of the pragma is one step; the statement must run to its end.
        Rewrite::Incremental => {
            target.query("PRAGMA incremental_vacuum")?;
        }
    }
    // In WAL mode the rewritten pages went through the WAL: give that space back too when no reader needs it.
    if wal {
        let truncate = checkpoint::run(target, Mode::Truncate)?;
        if truncate.blocked {
            return Ok(format!(
                "; a reader kept the WAL from being truncated ({} remain in it until the next checkpoint)",
                show(truncate.wal_bytes_after as f64, "bytes")
            ));
        }
    }
    Ok(String::new())
}

/// The space a rewrite needs, by volume: (directory, bytes, what for).
fn space_needed(target: &Target, facts: &Facts, method: Rewrite) -> Result<Vec<(PathBuf, f64, String)>> {
    let page = facts.page_size as f64;
    let live = (facts.page_count - facts.freelist_count).max(0) as f64 * page;
    let db_dir = parent_dir(&target.path).to_path_buf();
    if method == Rewrite::Incremental {
        // Pages moved into the freed slots go through the journal (or the WAL) first.
        return Ok(vec![(db_dir, facts.freelist_count as f64 * page, "the journal".into())]);
    }
    let mut needs = if facts.journal_mode.eq_ignore_ascii_case("wal") {
        // Every page of the new image is appended to the WAL, with a 24-byte frame header.
        vec![(db_dir, live * (page + 24.0) / page, "the rewritten pages in the WAL".to_string())]
    } else {
        // The rollback journal keeps the original of every page before it is overwritten or cut off.
        vec![(db_dir, facts.file_size.unwrap_or(0) as f64, "the rollback journal".to_string())]
    };
    if let Some(temp) = temp_directory(target.db())? {
        needs.push((temp.clone(), live, format!("the temporary copy in {}", temp.display())));
    }
    Ok(needs)
}

/// None when the rewrite fits on disk, else what is missing, in words.
fn space_shortfall(target: &Target, facts: &Facts, method: Rewrite) -> Option<String> {
    let needs = space_needed(target, facts, method).ok()?;
    // Needs on one volume add up; volumes are told apart by device number.
    let mut volumes: Vec<(u64, PathBuf, f64, Vec<String>)> = Vec::new();
    for (dir, bytes, what) in needs {
        let device = std::fs::metadata(&dir).map(|m| m.dev()).ok()?;
        match volumes.iter_mut().find(|v| v.0 == device) {
            Some(volume) => {
                volume.2 += bytes;
                volume.3.push(what);
            }
            None => volumes.push((device, dir, bytes, vec![what])),
        }
    }
    volumes.into_iter().find_map(|(_, dir, bytes, what)| {
        let free = volume_of(&dir)?.free as f64;
        let wanted = bytes * SPACE_MARGIN;
        (wanted > free).then(|| {
            format!(
                "the rewrite needs about {} free on the volume of {} ({}) and only {} is free ({} % short); \
                 free some space, or run it where the disk is larger",
                show(wanted, "bytes"),
                dir.display(),
                what.join(" and "),
                show(free, "bytes"),
                percent(wanted - free, wanted)
            )
        })
    })
}

/// Where VACUUM's temporary database goes on this connection; None when it stays in memory. Mirrors the
/// unix VFS: PRAGMA temp_store_directory, $SQLITE_TMPDIR, $TMPDIR, /var/tmp, /usr/tmp, /tmp, then ".".
fn temp_directory(db: Db) -> Result<Option<PathBuf>> {
    let temp_store = db.query_value("PRAGMA temp_store", &[])?.as_i64().unwrap_or(0);
    let compiled = crate::sqlite::host_compile_options()
        .iter()
        .find_map(|o| o.strip_prefix("TEMP_STORE=").and_then(|v| v.parse::<i64>().ok()))
        .unwrap_or(1);
    let in_memory = compiled == 3 || (compiled == 2 && temp_store != 1) || (compiled == 1 && temp_store == 2);
    if in_memory {
        return Ok(None);
    }
    let configured = db.query_value("PRAGMA temp_store_directory", &[])?;
    let candidates = configured
        .as_str()
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .into_iter()
        .chain(["SQLITE_TMPDIR", "TMPDIR"].iter().filter_map(|v| std::env::var_os(v).map(PathBuf::from)))
        .chain(["/var/tmp", "/usr/tmp", "/tmp"].iter().map(PathBuf::from));
    Ok(Some(candidates.into_iter().find(|d| is_writable_dir(d)).unwrap_or_else(|| PathBuf::from("."))))
}

fn is_writable_dir(dir: &Path) -> bool {
    use nix::unistd::{access, AccessFlags};
    dir.is_dir() && access(dir, AccessFlags::W_OK | AccessFlags::X_OK).is_ok()
}

/// `vacuum_if_fragmented([threshold_pct [, options]])`: the outcome as a JSON object.
pub fn vacuum_if_fragmented(db: Db, args: &[Value]) -> Result<Value> {
    let threshold = match args.first() {
        None | Some(Value::Null) => None,
        Some(given) => Some(percentage(given).map_err(|e| e.context("bad arguments"))?),
    };
    let options = MaintenanceOptions::parse(args.get(1), OPTION_KEYS).map_err(|e| e.context("bad options"))?;
    Ok(Value::Text(run(Via::Caller(db), threshold, &options)?.to_json().to_string()))
}
