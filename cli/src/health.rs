//! `vigil health` and `vigil demo`.

use std::path::{Path, PathBuf};

use clap::Args;
use rusqlite::Connection;
use serde_json::{json, Map, Value as Json};

use crate::sql::query_json;
use crate::{exit, extension, output, Failure, Global};

#[derive(Args)]
pub struct HealthArgs {
    /// The database file
    pub db: PathBuf,
    /// Cheap checks only: flat cost whatever the database size (for monitoring every minute)
    #[arg(long, conflicts_with_all = ["quick", "full"])]
    pub fast: bool,
    /// Cheap checks plus PRAGMA quick_check (the default)
    #[arg(long, conflicts_with = "full")]
    pub quick: bool,
    /// Cheap checks plus integrity_check, foreign_key_check and the fragmentation scan
    #[arg(long)]
    pub full: bool,
    /// Also list every table and index with its size, rows and fragmentation
    #[arg(long)]
    pub tables: bool,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
    /// Show every figure and detail in full, however wide (default: fit $COLUMNS or the terminal, else 120)
    #[arg(long)]
    pub wide: bool,
    /// Override a threshold: NAME=WARNING[,CRITICAL]; an empty level keeps the default, "none" disables it
    #[arg(long = "threshold", value_name = "NAME=WARN[,CRIT]")]
    pub thresholds: Vec<String>,
    /// Record this report in the database's history table (vigil_health_history)
    #[arg(long)]
    pub snapshot: bool,
    /// The attached schema to report on
    #[arg(long, default_value = "main")]
    pub schema: String,
}

/// The options document handed to health_json / health_snapshot / health_tables.
fn options(args: &HealthArgs) -> Result<Json, Failure> {
    let integrity = if args.fast {
        "none"
    } else if args.full {
        "full"
    } else {
        "quick"
    };
    let thresholds = parse_thresholds(&args.thresholds)?;
    Ok(json!({
        "schema": args.schema,
        "integrity": integrity,
        "fragmentation": args.full,
        "thresholds": thresholds,
    }))
}

/// `--threshold`s parsed and asked once of the extension (on `conn`, any connection that loaded it): one it does
/// not know would make every check of every database fail — each database `unknown`, `vigil_up 0`, a 503 and an
/// alert for each — so it is a usage error at start in the commands that watch many databases.
pub fn checked_thresholds(conn: &Connection, specs: &[String]) -> Result<Map<String, Json>, Failure> {
    let thresholds = parse_thresholds(specs)?;
    if thresholds.is_empty() {
        return Ok(thresholds);
    }
    let options = json!({"integrity": "none", "thresholds": thresholds}).to_string();
    match query_json(conn, "SELECT health_json(?1)", [options]) {
        Ok(_) => Ok(thresholds),
        Err(failure) => {
            let why = failure.message.trim_start_matches("health_json: ").trim_start_matches("bad options: ");
            Err(Failure::usage(format!("--threshold: {why}")))
        }
    }
}

/// Every `--threshold NAME=WARN[,CRIT]` as the `thresholds` option of health_json and vigil_metrics.
pub fn parse_thresholds(specs: &[String]) -> Result<Map<String, Json>, Failure> {
    let mut thresholds = Map::new();
    for spec in specs {
        let (name, levels) = parse_threshold(spec)?;
        thresholds.insert(name, levels);
    }
    Ok(thresholds)
}

fn parse_threshold(spec: &str) -> Result<(String, Json), Failure> {
    let bad = || {
        Failure::usage(format!(
            "--threshold {}: expected NAME=WARNING[,CRITICAL], e.g. freelist_pct=10,30",
            crate::sql::quoted(spec)
        ))
    };
    let (name, levels) = spec.split_once('=').ok_or_else(bad)?;
    let mut parts = levels.split(',');
    let mut object = Map::new();
    for level in ["warning", "critical"] {
        match parts.next().map(str::trim) {
            None | Some("") => {}
            Some("none") => {
                object.insert(level.into(), Json::Null);
            }
            Some(number) => {
                let value: f64 = number.parse().map_err(|_| bad())?;
                object.insert(level.into(), json!(value));
            }
        }
    }
    if parts.next().is_some() || name.trim().is_empty() {
        return Err(bad());
    }
    Ok((name.trim().to_string(), Json::Object(object)))
}

fn table_rows(conn: &Connection, options: &Json) -> Result<Vec<Map<String, Json>>, Failure> {
    crate::sql::query_rows(conn, "SELECT * FROM health_tables(?1)", [options.to_string()])
}

pub fn run(global: &Global, args: &HealthArgs) -> Result<u8, Failure> {
    let options = options(args)?;
    let conn = extension::open(global, &args.db, args.snapshot)?;
    let function = if args.snapshot { "health_snapshot" } else { "health_json" };
    let mut report = query_json(&conn, &format!("SELECT {function}(?1)"), [options.to_string()])?;
    let tables = if args.tables { Some(table_rows(&conn, &options)?) } else { None };
    if args.json {
        if let Some(tables) = &tables {
            report["tables"] = json!(tables);
        }
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        print!("{}", output::report(&args.db, &report, output::Width::of_output(args.wide)));
        if let Some(tables) = &tables {
            print!("\n{}", output::tables(tables));
        }
    }
    Ok(match report["status"].as_str() {
        Some("ok" | "info") => exit::OK,
        Some("warning") => exit::WARNING,
        Some("critical") => exit::CRITICAL,
        _ => exit::UNKNOWN,
    })
}

const DEMO_SQL: &str = include_str!("../../sql/demo.sql");

/// Builds the demo database beside its final name, then renames it into place.
pub fn demo(path: &Path, force: bool) -> Result<u8, Failure> {
    if path.exists() && !force {
        return Err(Failure::usage(format!("{} exists; pass --force to replace it", path.display())));
    }
    let partial = path.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let build = || -> rusqlite::Result<()> {
        let conn = Connection::open(&partial)?;
        conn.execute_batch(DEMO_SQL)?;
        conn.close().map_err(|(_, e)| e)
    };
    if let Err(e) = build() {
        let _ = std::fs::remove_file(&partial);
        return Err(Failure::unknown(format!("cannot build the demo database: {e}")));
    }
    std::fs::rename(&partial, path).map_err(|e| Failure::unknown(format!("cannot create {}: {e}", path.display())))?;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    println!(
        "created {} ({:.1} MiB): a small shop with customers, products, orders and order_items",
        path.display(),
        size as f64 / 1048576.0
    );
    println!("next: vigil health {}", path.display());
    Ok(exit::OK)
}
