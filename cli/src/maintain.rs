//! `vigil vacuum`, `vigil maintain` and `vigil checkpoint`: call vacuum_if_fragmented, maintain and
//! wal_checkpoint, show the result, and exit 0 (done or nothing to do), 1 (refused, blocked, a warning),
//! 2 (an operation failed), 3 (could not run).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rusqlite::Connection;
use serde_json::{json, Value as Json};

use crate::output::{figure, fitted, name, print_json, text, Width};
use crate::sql::query_json;
use crate::{exit, extension, Failure, Global};

#[derive(Args)]
pub struct VacuumArgs {
    /// The database file
    pub db: PathBuf,
    /// Vacuum when the metric is over PCT percent (default: health_report's warning level, 20)
    #[arg(long, value_name = "PCT")]
    pub threshold: Option<f64>,
    /// Decide and report, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// The figure compared with the threshold
    #[arg(long, value_enum, default_value_t = Metric::FreelistPct)]
    pub metric: Metric,
    /// How to give space back: auto uses incremental_vacuum on auto_vacuum=INCREMENTAL databases
    #[arg(long, value_enum, default_value_t = Method::Auto)]
    pub method: Method,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args)]
pub struct MaintainArgs {
    /// The database file
    pub db: PathBuf,
    /// auto runs the level health_report recommends
    #[arg(long, value_enum, default_value_t = Level::Auto)]
    pub level: Level,
    /// Show every detail in full, however long (default: fit $COLUMNS or the terminal, else 120)
    #[arg(long)]
    pub wide: bool,
    /// Vacuum threshold of the full level, in percent, for freelist_pct and fragmentation (default: health_report's warning levels, 20)
    #[arg(long, value_name = "PCT")]
    pub threshold: Option<f64>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args)]
pub struct CheckpointArgs {
    /// The database file
    pub db: PathBuf,
    /// passive never waits; truncate waits (busy timeout) for readers, then empties the WAL file
    #[arg(long, value_enum, default_value_t = Mode::Passive)]
    pub mode: Mode,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args)]
pub struct Common {
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// The attached schema to work on
    #[arg(long, default_value = "main")]
    pub schema: String,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Metric {
    #[value(name = "freelist_pct")]
    FreelistPct,
    Fragmentation,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Method {
    Auto,
    Vacuum,
    Incremental,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Level {
    Auto,
    Light,
    Standard,
    Full,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Mode {
    Passive,
    Full,
    Restart,
    Truncate,
}

/// A spinner with the elapsed time on a terminal (stderr), nothing otherwise.
fn spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_message(message);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}").unwrap_or(ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Runs `SELECT function(?1, ?2)` with a spinner.
fn call(conn: &Connection, function: &str, first: Json, options: Json, doing: String) -> Result<Json, Failure> {
    let bar = spinner(doing);
    let arg = match first {
        Json::Null => rusqlite::types::Value::Null,
        Json::Number(n) => rusqlite::types::Value::Real(n.as_f64().unwrap_or(f64::NAN)),
        other => rusqlite::types::Value::Text(other.as_str().unwrap_or_default().to_string()),
    };
    let result = query_json(conn, &format!("SELECT {function}(?1, ?2)"), rusqlite::params![arg, options.to_string()]);
    bar.finish_and_clear();
    result
}

fn base_options(global: &Global, common: &Common) -> Json {
    json!({"schema": common.schema, "busy_timeout_ms": global.busy_timeout})
}

pub fn vacuum(global: &Global, args: &VacuumArgs) -> Result<u8, Failure> {
    let conn = extension::open(global, &args.db, !args.dry_run)?;
    let mut options = base_options(global, &args.common);
    options["dry_run"] = json!(args.dry_run);
    options["metric"] = json!(name(args.metric));
    options["method"] = json!(name(args.method));
    let threshold = args.threshold.map_or(Json::Null, |t| json!(t));
    let doing = format!("vacuum_if_fragmented {}", args.db.display());
    let outcome = call(&conn, "vacuum_if_fragmented", threshold, options, doing)?;
    if args.common.json {
        print_json(&outcome);
    } else {
        let pct = |key: &str| format!("{} %", text(&outcome[key]));
        println!("{}: {}", text(&outcome["decision"]), text(&outcome["reason"]));
        println!("{}: {} → {}", text(&outcome["metric"]), pct("before_pct"), pct("after_pct"));
        let bytes = |key: &str| figure(&outcome[key], "bytes");
        println!(
            "size: {} → {} (freed {}) in {} ms",
            bytes("size_before"),
            bytes("size_after"),
            bytes("bytes_freed"),
            text(&outcome["duration_ms"])
        );
    }
    Ok(if outcome["decision"] == "refused" { exit::WARNING } else { exit::OK })
}

pub fn maintain(global: &Global, args: &MaintainArgs) -> Result<u8, Failure> {
    let conn = extension::open(global, &args.db, true)?;
    let mut options = base_options(global, &args.common);
    if let Some(threshold) = args.threshold {
        options["threshold"] = json!(threshold);
    }
    let level = name(args.level);
    let doing = format!("maintain {level} {}", args.db.display());
    let outcome = call(&conn, "maintain", json!(level), options, doing)?;
    if args.common.json {
        print_json(&outcome);
    } else {
        let steps = outcome["steps"].as_array().cloned().unwrap_or_default();
        let rows: Vec<Vec<String>> = steps
            .iter()
            .map(|s| {
                vec![
                    text(&s["operation"]),
                    text(&s["result"]),
                    format!("{} ms", text(&s["duration_ms"])),
                    text(&s["detail"]),
                ]
            })
            .collect();
        let width = Width::of_output(args.wide);
        print!("{}", fitted(&["OPERATION", "RESULT", "TIME", "DETAIL"], &rows, width));
        println!(
            "\nmaintain {}: level {}, result {} in {} ms",
            args.db.display(),
            text(&outcome["level"]),
            text(&outcome["result"]).to_uppercase(),
            text(&outcome["duration_ms"])
        );
    }
    Ok(match outcome["result"].as_str() {
        Some("ok") => exit::OK,
        Some("warning") => exit::WARNING,
        _ => exit::CRITICAL,
    })
}

pub fn checkpoint(global: &Global, args: &CheckpointArgs) -> Result<u8, Failure> {
    let conn = extension::open(global, &args.db, true)?;
    let options = base_options(global, &args.common);
    let mode = name(args.mode);
    let doing = format!("wal_checkpoint {mode} {}", args.db.display());
    let outcome = call(&conn, "wal_checkpoint", json!(mode), options, doing)?;
    if args.common.json {
        print_json(&outcome);
    } else {
        let bytes = |key: &str| figure(&outcome[key], "bytes");
        println!("checkpoint ({mode}): {}", text(&outcome["detail"]));
        println!(
            "WAL: {} → {} in {} ms",
            bytes("wal_bytes_before"),
            bytes("wal_bytes_after"),
            text(&outcome["duration_ms"])
        );
    }
    Ok(if outcome["blocked"] == true { exit::WARNING } else { exit::OK })
}
