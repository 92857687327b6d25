//! maintain: graded maintenance, one row per operation.
//!
//! light    — optimize (statistics where missing or stale, bounded by analysis_limit), WAL checkpoint;
//! standard — light + ANALYZE + REINDEX of indexes an integrity check found inconsistent + foreign_key_check;
//! full     — standard + vacuum_if_fragmented (on freelist_pct, then on fragmentation: either over its threshold
//!            VACUUMs) + integrity_check afterwards (with REINDEX and a second check when the only problems are
//!            inconsistent indexes);
//! auto     — the level health_report recommends (with its page scan), with its reasons.

use std::time::Instant;

use serde_json::{json, Value as Json};

use super::checkpoint::{self, Mode};
use super::options::{MaintenanceOptions, Metric};
use super::vacuum::{self, Decision, Via};
use super::{elapsed_ms, file_bytes, Target};
use crate::backup::{self, options::Verify};
use crate::error::{Error, Result};
use crate::health::scan::problems;
use crate::health::thresholds::{default_warning, show};
use crate::health::{self, options::Options};
use crate::sqlite::{host_version_number, Db, Value};
use crate::store::maintenance_log::{self as log, Entry};
use crate::store::{has_table, quote};

pub const OPTION_KEYS: &[&str] =
    &["schema", "busy_timeout_ms", "log", "threshold", "metric", "analysis_limit", "wal_truncate_bytes"];

/// PRAGMA optimize learned to look at every table (mask 0x10000) in 3.46.0.
const OPTIMIZE_ALL_TABLES: i32 = 3_046_000;
/// Problems integrity_check reports at most per run.
const MAX_PROBLEMS: i64 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Light,
    Standard,
    Full,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Light => "light",
            Level::Standard => "standard",
            Level::Full => "full",
        }
    }
}

/// The level asked for: a fixed one, or the recommendation of health_report.
fn requested_level(value: &Value) -> Result<Option<Level>> {
    let text = match value {
        Value::Null => return Ok(None),
        Value::Text(text) => text.to_ascii_lowercase(),
        other => {
            return Err(Error::new(format!(
                "level must be text (auto, light, standard, full), not {}",
                crate::error::describe(other)
            )))
        }
    };
    match text.as_str() {
        "auto" => Ok(None),
        "light" => Ok(Some(Level::Light)),
        "standard" => Ok(Some(Level::Standard)),
        "full" => Ok(Some(Level::Full)),
        _ => {
            Err(Error::new(format!("unknown level {}: use auto, light, standard or full", crate::error::quoted(&text))))
        }
    }
}

/// One row of the result.
#[derive(Clone, Debug)]
pub struct Step {
    pub level: &'static str,
    pub operation: &'static str,
    /// planned level (plan row), done, skipped, warning, refused or failed.
    pub result: &'static str,
    pub detail: String,
    pub duration_ms: f64,
}

impl Step {
    fn to_json(&self) -> Json {
        json!({
            "level": self.level,
            "operation": self.operation,
            "result": self.result,
            "detail": self.detail,
            "duration_ms": self.duration_ms,
        })
    }
}

/// What an operation returns: its result word and detail.
type Done = (&'static str, String);

pub fn run(caller: Db, requested: Option<Level>, options: &MaintenanceOptions) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    let (level, urgent) = match requested {
        Some(level) => (level, false),
        None => match plan(caller, options, &mut steps)? {
            Some(planned) => planned,
            None => return Ok(steps),
        },
    };
    let target = Target::open(caller, &options.schema, options.busy_timeout_ms)?;
    let started = Instant::now();
    let size_before = file_bytes(&target.path);
    let mut run = Run { target: &target, options, steps: Vec::new() };
    if urgent && !safety_backup(caller, &mut run) {
        steps.extend(run.steps);
        return Ok(steps);
    }
    for (operation, work) in operations(level) {
        let clock = Instant::now();
        let (result, detail) = work(&mut run).unwrap_or_else(|e| ("failed", target.explain(e).to_string()));
        run.steps.push(Step { level: level.as_str(), operation, result, detail, duration_ms: elapsed_ms(clock) });
        if result == "failed" {
            break;
        }
    }
    let worst = overall(&run.steps);
    if options.log {
        let entry = Entry {
            function: "maintain",
            level: level.as_str().into(),
            result: worst,
            duration_ms: elapsed_ms(started),
            size_before,
            size_after: file_bytes(&target.path),
            detail: Json::Array(run.steps.iter().map(Step::to_json).collect()),
        };
        if let Err(e) = log::record(target.db(), &entry) {
            run.steps.push(Step {
                level: level.as_str(),
                operation: "log",
                result: "failed",
                detail: target.explain(e).to_string(),
                duration_ms: 0.0,
            });
        }
    }
    steps.extend(run.steps);
    Ok(steps)
}

/// The operations of a level, in order.
fn operations(level: Level) -> Vec<(&'static str, Operation)> {
    let mut operations: Vec<(&'static str, Operation)> = vec![("optimize", optimize), ("checkpoint", checkpoint_wal)];
    if level >= Level::Standard {
        operations.extend([
            ("analyze", analyze as Operation),
            ("reindex", reindex_reported),
            ("foreign_key_check", foreign_key_check),
        ]);
    }
    if level >= Level::Full {
        operations.extend([("vacuum", vacuum_step as Operation), ("integrity_check", integrity_check)]);
    }
    operations
}

/// The worst result of the steps: failed, warning (also refused), or ok.
fn overall(steps: &[Step]) -> &'static str {
    let has = |word: &str| steps.iter().any(|s| s.result == word);
    if has("failed") {
        "failed"
    } else if has("warning") || has("refused") {
        "warning"
    } else {
        "ok"
    }
}

/// Before maintaining a database with integrity errors: an unchecked copy of the file as it is (a checked copy
/// would fail), so that nothing still readable can be lost to a rewrite. False when it could not be made.
fn safety_backup(caller: Db, run: &mut Run) -> bool {
    let clock = Instant::now();
    let path = std::path::Path::new(&run.target.path);
    let schema = &run.options.schema;
    let made = backup::safety_backup(caller, schema, path, "maintenance", Verify::None, run.options.busy_timeout_ms);
    let (result, detail) = match made {
        Ok(made) => (
            "done",
            format!("{} (sha256 {})", made["path"].as_str().unwrap_or(""), made["sha256"].as_str().unwrap_or("")),
        ),
        Err(e) => ("failed", format!("{e}: nothing was changed; copy the file by hand, then run maintain('full')")),
    };
    let step = Step { level: "urgent", operation: "safety_backup", result, detail, duration_ms: elapsed_ms(clock) };
    run.steps.push(step);
    result == "done"
}

/// The `auto` plan: health_report's recommendation, as the first row, and whether it is urgent. None when
/// there is nothing to run.
fn plan(caller: Db, options: &MaintenanceOptions, steps: &mut Vec<Step>) -> Result<Option<(Level, bool)>> {
    // With the page scan (fragmentation), as `health_report('full')` has it, so that auto follows what that
    // report recommends; the integrity scan is left to the full level's own check.
    let report_options = Options { schema: options.schema.clone(), fragmentation: true, ..Options::default() };
    let report = health::build_report(caller, &report_options)?;
    let advice = report.checks.iter().find(|c| c.name == "maintenance").cloned();
    let (word, reasons) = advice.map_or(("none".to_string(), String::new()), |c| {
        (c.value.as_str().unwrap_or("none").to_string(), c.detail.clone())
    });
    let (planned, result, detail) = match word.as_str() {
        "light" => (Some((Level::Light, false)), "light", reasons),
        "standard" => (Some((Level::Standard, false)), "standard", reasons),
        "full" => (Some((Level::Full, false)), "full", reasons),
        "urgent" => (
            Some((Level::Full, true)),
            "urgent",
            format!("{reasons}: integrity errors; a copy of the file as it is first, then full maintenance"),
        ),
        _ => (None, "none", format!("health_report recommends no maintenance: {reasons}")),
    };
    steps.push(Step { level: "auto", operation: "plan", result, detail, duration_ms: 0.0 });
    Ok(planned)
}

struct Run<'a> {
    target: &'a Target,
    options: &'a MaintenanceOptions,
    steps: Vec<Step>,
}

type Operation = fn(&mut Run) -> Result<Done>;

fn optimize(run: &mut Run) -> Result<Done> {
    let limit = run.options.analysis_limit;
    run.target.exec(&format!("PRAGMA analysis_limit={limit}"))?;
    if host_version_number() >= OPTIMIZE_ALL_TABLES {
        run.target.exec("PRAGMA optimize(0x10002)")?;
        return Ok(("done", format!("PRAGMA optimize over every table (analysis_limit={limit})")));
    }
    // Older hosts only optimize what the connection itself has queried: a fresh connection has queried
    // nothing, so analyze the indexed tables that have no statistics yet.
    let missing = tables_without_statistics(run.target.db())?;
    if missing.is_empty() {
        return Ok(("done", "every indexed table has statistics".into()));
    }
    for table in &missing {
        run.target.exec(&format!("ANALYZE main.{}", quote(table)))?;
    }
    Ok(("done", format!("analyzed {} table(s) without statistics: {}", missing.len(), missing.join(", "))))
}

fn tables_without_statistics(db: Db) -> Result<Vec<String>> {
    let analyzed = if has_table(db, "main", "sqlite_stat1")? {
        "AND NOT EXISTS (SELECT 1 FROM sqlite_stat1 s WHERE s.tbl = t.name)"
    } else {
        ""
    };
    let rows = db.query(
        &format!(
            "SELECT t.name FROM sqlite_schema t WHERE t.type = 'table' AND t.name NOT LIKE 'sqlite_%' \
             AND EXISTS (SELECT 1 FROM sqlite_schema i WHERE i.type = 'index' AND i.tbl_name = t.name) \
             {analyzed} ORDER BY t.name"
        ),
        &[],
    )?;
    Ok(rows.into_iter().filter_map(|r| r[0].as_str().map(str::to_string)).collect())
}

/// PASSIVE always; TRUNCATE (waiting at most the busy timeout) when the WAL stays over its limit.
fn checkpoint_wal(run: &mut Run) -> Result<Done> {
    let passive = checkpoint::run(run.target, Mode::Passive)?;
    if passive.frames_after.is_none() {
        return Ok(("skipped", passive.detail));
    }
    let limit = run.options.wal_truncate_bytes.unwrap_or_else(default_wal_limit);
    // Readers routinely hold a few frames back from a passive checkpoint: only a WAL that stays too large
    // because of them is worth a warning.
    if passive.wal_bytes_after <= limit {
        return Ok(("done", format!("passive: {}", passive.detail)));
    }
    let truncate = checkpoint::run(run.target, Mode::Truncate)?;
    let result = if truncate.blocked { "warning" } else { "done" };
    Ok((
        result,
        format!(
            "passive: {}; WAL {} was over {}: truncate: {}",
            passive.detail,
            show(passive.wal_bytes_after as f64, "bytes"),
            show(limit as f64, "bytes"),
            truncate.detail
        ),
    ))
}

fn default_wal_limit() -> i64 {
    default_warning("wal_size").unwrap_or(64.0 * 1024.0 * 1024.0) as i64
}

fn analyze(run: &mut Run) -> Result<Done> {
    run.target.exec("PRAGMA analysis_limit=0; ANALYZE main")?;
    Ok(("done", "ANALYZE of every table and index".into()))
}

/// REINDEX is needed when an index no longer matches its table: after corruption, or when a collation or
/// function an index depends on changed. integrity_check is what finds that; a standard run rebuilds the
/// indexes the last recorded check (health_snapshot) named.
fn reindex_reported(run: &mut Run) -> Result<Done> {
    let named = crate::store::health_history::last_integrity_problems(run.target.db(), "\"main\"")?;
    let indexes = inconsistent_indexes(run.target.db(), &named)?;
    if indexes.is_empty() {
        return Ok(("skipped", "no index was reported inconsistent by the last recorded integrity check".into()));
    }
    rebuild(run.target, &indexes)
}

fn rebuild(target: &Target, indexes: &[String]) -> Result<Done> {
    for index in indexes {
        target.exec(&format!("REINDEX main.{}", quote(index)))?;
    }
    Ok(("done", format!("rebuilt {}", indexes.join(", "))))
}

/// Indexes of the database named in integrity_check messages ("row 3 missing from index i", "wrong # of
/// entries in index i", "non-unique entry in index i").
fn inconsistent_indexes(db: Db, messages: &[String]) -> Result<Vec<String>> {
    let existing: Vec<String> = db
        .query("SELECT name FROM sqlite_schema WHERE type = 'index'", &[])?
        .into_iter()
        .filter_map(|r| r[0].as_str().map(str::to_string))
        .collect();
    let mut found: Vec<String> = Vec::new();
    for message in messages {
        let Some(at) = message.find(" index ") else { continue };
        let name =
            message[at + 7..].split_whitespace().next().unwrap_or_default().trim_matches(|c| c == '"' || c == ',');
        if existing.iter().any(|e| e == name) && !found.iter().any(|f| f == name) {
            found.push(name.to_string());
        }
    }
    Ok(found)
}

fn foreign_key_check(run: &mut Run) -> Result<Done> {
    let rows = run.target.query("PRAGMA main.foreign_key_check")?;
    if rows.is_empty() {
        return Ok(("done", "no foreign key violations".into()));
    }
    let mut distinct: Vec<String> = rows.iter().filter_map(|r| r[0].as_str().map(str::to_string)).collect();
    distinct.sort();
    distinct.dedup();
    Ok((
        "warning",
        format!(
            "{} rows reference a missing parent (in {}); vigil does not delete data",
            rows.len(),
            distinct.join(", ")
        ),
    ))
}

/// VACUUMs when any figure that makes health_report recommend `full` is over its threshold: the freelist
/// (from the header), then page order (one pass over the pages), so that running the recommended level
/// clears the warning. The `metric` option narrows it to one figure.
fn vacuum_step(run: &mut Run) -> Result<Done> {
    let metrics = if run.options.metric_given {
        vec![run.options.metric]
    } else {
        vec![Metric::FreelistPct, Metric::Fragmentation]
    };
    let mut reasons = Vec::new();
    for metric in metrics {
        let options = MaintenanceOptions { log: false, dry_run: false, metric, ..run.options.clone() };
        let outcome = vacuum::run(Via::Target(run.target), run.options.threshold, &options)?;
        let sizes =
            format!("{} → {}", show(outcome.before.bytes as f64, "bytes"), show(outcome.after.bytes as f64, "bytes"));
        match outcome.decision {
            Decision::Vacuumed => return Ok(("done", format!("{}: {sizes}", outcome.reason))),
            Decision::Refused => return Ok(("warning", outcome.reason)),
            _ => reasons.push(outcome.reason),
        }
    }
    Ok(("skipped", reasons.join("; ")))
}

/// integrity_check after the rewrite. When every problem is an inconsistent index, REINDEX repairs it: the
/// rows record the repair and a second check.
fn integrity_check(run: &mut Run) -> Result<Done> {
    let sql = format!("PRAGMA main.integrity_check({MAX_PROBLEMS})");
    let found = problems(run.target.db(), &sql)?;
    if found.is_empty() {
        return Ok(("done", "integrity_check: ok".into()));
    }
    let indexes = inconsistent_indexes(run.target.db(), &found)?;
    let only_indexes = !indexes.is_empty() && found.iter().all(|m| indexes.iter().any(|i| m.contains(i.as_str())));
    if !only_indexes {
        return Ok(("failed", format!("integrity_check found {} problem(s): {}", found.len(), found.join("; "))));
    }
    let clock = Instant::now();
    let (result, detail) = rebuild(run.target, &indexes)?;
    run.steps.push(Step {
        level: "full",
        operation: "integrity_check",
        result: "warning",
        detail: format!("integrity_check found {} inconsistent index entries: {}", found.len(), found.join("; ")),
        duration_ms: 0.0,
    });
    run.steps.push(Step { level: "full", operation: "reindex", result, detail, duration_ms: elapsed_ms(clock) });
    let again = problems(run.target.db(), &sql)?;
    Ok(if again.is_empty() {
        ("done", "integrity_check after REINDEX: ok".into())
    } else {
        ("failed", format!("integrity_check after REINDEX found {} problem(s): {}", again.len(), again.join("; ")))
    })
}

/// `maintain([level [, options]])`: the level run, the overall result and one object per operation.
pub fn maintain(db: Db, args: &[Value]) -> Result<Value> {
    let requested = requested_level(args.first().unwrap_or(&Value::Null)).map_err(|e| e.context("bad arguments"))?;
    let options = MaintenanceOptions::parse(args.get(1), OPTION_KEYS).map_err(|e| e.context("bad options"))?;
    let started = Instant::now();
    let steps = run(db, requested, &options)?;
    let level = steps.iter().rev().map(|s| s.level).find(|l| *l != "auto").unwrap_or("none");
    Ok(Value::Text(
        json!({
            "requested": requested.map_or("auto", Level::as_str),
            "level": level,
            "result": overall(&steps),
            "duration_ms": elapsed_ms(started),
            "steps": steps.iter().map(Step::to_json).collect::<Vec<_>>(),
        })
        .to_string(),
    ))
}
