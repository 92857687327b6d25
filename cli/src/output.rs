//! Human-readable tables for a terminal.

use std::path::Path;

use serde_json::{Map, Value as Json};

/// The command-line spelling of a value of a clap enum (`freelist_pct`, `quick`, …).
pub fn name(value: impl clap::ValueEnum) -> String {
    value.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
}

pub fn print_json(value: &Json) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

pub fn text(value: &Json) -> String {
    match value {
        Json::Null => String::new(),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A figure with its unit, bytes shown in KiB/MiB/GiB.
pub fn figure(value: &Json, unit: &str) -> String {
    let Some(number) = value.as_f64() else {
        return text(value);
    };
    match unit {
        "bytes" => size(number),
        "bytes/day" => format!("{}/day", size(number)),
        "" | "level" | "sha256" => text(value),
        _ => format!("{} {unit}", text(value)),
    }
}

fn size(bytes: f64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Lays out rows in columns; the last column is never padded.
pub fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        let mut out = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

pub fn report(db: &Path, report: &Json) -> String {
    let status = report["status"].as_str().unwrap_or("unknown");
    let checks = report["checks"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = checks
        .iter()
        .map(|c| {
            let state = c["status"].as_str().unwrap_or("");
            let state = if matches!(state, "warning" | "critical") { state.to_uppercase() } else { state.to_string() };
            vec![
                text(&c["check"]),
                state,
                figure(&c["value"], c["unit"].as_str().unwrap_or("")),
                text(&c["threshold"]),
                crate::sql::cli_terms(&text(&c["detail"]), Some(db)),
            ]
        })
        .collect();
    let count = |s: &str| checks.iter().filter(|c| c["status"] == s).count();
    format!(
        "vigil health {} ({})\n\n{}\nstatus: {} ({} warning, {} critical)\n",
        db.display(),
        text(&report["schema"]),
        columns(&["CHECK", "STATUS", "VALUE", "THRESHOLD", "DETAIL"], &rows),
        status.to_uppercase(),
        count("warning"),
        count("critical"),
    )
}

pub fn tables(tables: &[Map<String, Json>]) -> String {
    let rows: Vec<Vec<String>> = tables
        .iter()
        .map(|t| {
            let pct = |key: &str| t[key].as_f64().map_or(String::new(), |v| format!("{v:.1} %"));
            vec![
                text(&t["name"]),
                text(&t["type"]),
                text(&t["tbl_name"]),
                text(&t["rows"]),
                text(&t["pages"]),
                t["bytes"].as_f64().map_or(String::new(), size),
                pct("unused_pct"),
                pct("nonsequential_pct"),
            ]
        })
        .collect();
    columns(&["NAME", "TYPE", "TABLE", "ROWS", "PAGES", "SIZE", "UNUSED", "NON-SEQUENTIAL"], &rows)
}
