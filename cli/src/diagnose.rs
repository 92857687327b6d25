//! `vigil diagnose DB`: the extension's diagnose(path) from an in-memory connection, as a table or JSON.
//! The database is never opened here: diagnose opens it itself, in the ways that write nothing.

use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Map, Value as Json};

use crate::output::{fitted, text, Width};
use crate::{exit, extension, Failure, Global};

#[derive(Args)]
pub struct DiagnoseArgs {
    /// The database file (any file: diagnose says what it is)
    pub db: PathBuf,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
    /// Show every detail in full, however wide (default: fit $COLUMNS or the terminal, else 120)
    #[arg(long)]
    pub wide: bool,
}

/// The worst status of the rows (skipped and info count as ok).
fn overall(rows: &[Map<String, Json>]) -> &'static str {
    let has = |s: &str| rows.iter().any(|r| r["status"] == s);
    if has("critical") {
        "critical"
    } else if has("warning") {
        "warning"
    } else {
        "ok"
    }
}

pub fn run(global: &Global, args: &DiagnoseArgs) -> Result<u8, Failure> {
    let path =
        args.db.to_str().ok_or_else(|| Failure::usage(format!("{}: the path is not UTF-8", args.db.display())))?;
    let conn = extension::open_memory(global)?;
    let rows = crate::sql::query_rows(&conn, "SELECT step, status, value, detail FROM diagnose(?1)", [path])?;
    let status = overall(&rows);
    let next = rows.iter().find(|r| r["step"] == "next_step").cloned().unwrap_or_default();
    if args.json {
        let report = json!({
            "path": path,
            "status": status,
            "next_step": {"action": next.get("value"), "detail": next.get("detail")},
            "steps": rows,
        });
        crate::output::print_json(&report);
    } else {
        print!("{}", table(path, &rows, status, &next, Width::of_output(args.wide)));
    }
    Ok(match status {
        "critical" => exit::CRITICAL,
        "warning" => exit::WARNING,
        _ => exit::OK,
    })
}

fn table(path: &str, rows: &[Map<String, Json>], status: &str, next: &Map<String, Json>, width: Width) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .filter(|r| r["step"] != "next_step")
        .map(|r| {
            let state = text(&r["status"]);
            let state = if matches!(state.as_str(), "warning" | "critical") { state.to_uppercase() } else { state };
            vec![text(&r["step"]), state, text(&r["value"]), text(&r["detail"])]
        })
        .collect();
    let count = |s: &str| rows.iter().filter(|r| r["status"] == s).count();
    format!(
        "vigil diagnose {path}\n\n{}\nstatus: {} ({} warning, {} critical)\nnext step ({}): {}\n",
        fitted(&["STEP", "STATUS", "VALUE", "DETAIL"], &cells, width),
        status.to_uppercase(),
        count("warning"),
        count("critical"),
        text(next.get("value").unwrap_or(&Json::Null)),
        text(next.get("detail").unwrap_or(&Json::Null)),
    )
}
