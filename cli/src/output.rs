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

/// How wide a table may be: unlimited with --wide, else $COLUMNS, else the terminal's width, else (output
/// redirected) 120 columns.
#[derive(Clone, Copy)]
pub struct Width(Option<usize>);

impl Width {
    pub const UNLIMITED: Width = Width(None);

    pub fn of_output(wide: bool) -> Width {
        if wide {
            return Width::UNLIMITED;
        }
        let columns = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<usize>().ok()).filter(|&c| c > 0);
        Width(Some(columns.or_else(terminal_columns).unwrap_or(120).max(40)))
    }
}

/// The width of the terminal on stdout, when stdout is one.
fn terminal_columns() -> Option<usize> {
    // SAFETY: TIOCGWINSZ fills a winsize the size of the one passed; it fails (returns -1) on a non-terminal.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0).then_some(size.ws_col as usize)
}

/// `text` cut to `max` characters, ending in "…" when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let head: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{head}…")
}

/// Lays out rows in columns; the last column is never padded.
pub fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    fitted(header, rows, Width::UNLIMITED)
}

/// Lays out rows in columns within `width`: a last column (a detail) too long for what is left goes on the
/// lines below its row, wrapped; the other columns are short by nature.
pub fn fitted(header: &[&str], rows: &[Vec<String>], width: Width) -> String {
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
    let before_last: usize = widths[..widths.len() - 1].iter().map(|w| w + 2).sum();
    for row in rows {
        let mut row = row.clone();
        if let (Some(_), Some(last)) = (width.0, row.last_mut()) {
            // Multi-line details (integrity_check's messages) become one line to wrap.
            *last = last.split_whitespace().collect::<Vec<_>>().join(" ");
        }
        let last = row.last().map_or("", String::as_str);
        match width.0 {
            Some(total) if before_last + last.chars().count() > total => {
                // A detail too long for its column goes below its row, wrapped, at most three lines.
                let mut cells: Vec<&str> = row.iter().map(String::as_str).collect();
                cells.pop();
                cells.push("");
                out.push_str(&line(cells));
                for wrapped in wrap(last, total.saturating_sub(DETAIL_INDENT.len()).max(20), 3) {
                    out.push_str(&format!("{DETAIL_INDENT}{wrapped}\n"));
                }
            }
            _ => out.push_str(&line(row.iter().map(String::as_str).collect())),
        }
    }
    out
}

const DETAIL_INDENT: &str = "    ";

/// `text` in lines of at most `width` characters, broken at spaces where it can; at most `max_lines`, the
/// last one cut with "…" when more remained.
fn wrap(text: &str, width: usize, max_lines: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in text.split(' ') {
        let mut word = word.to_string();
        while !word.is_empty() {
            let used = current.chars().count();
            let needed = word.chars().count() + usize::from(used > 0);
            if used + needed <= width {
                if used > 0 {
                    current.push(' ');
                }
                current.push_str(&word);
                word.clear();
            } else if used > 0 {
                lines.push(std::mem::take(&mut current));
            } else {
                // A word longer than a line is split.
                let head: String = word.chars().take(width).collect();
                word = word.chars().skip(width).collect();
                lines.push(head);
            }
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    if lines.len() > max_lines {
        lines.truncate(max_lines);
        if let Some(last) = lines.last_mut() {
            *last = format!("{}…", last.chars().take(width.saturating_sub(1)).collect::<String>());
        }
    }
    lines
}

/// The health report as a table within `width` (schema hashes shortened to 16 characters unless unlimited).
pub fn report(db: &Path, report: &Json, width: Width) -> String {
    let status = report["status"].as_str().unwrap_or("unknown");
    let checks = report["checks"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = checks
        .iter()
        .map(|c| {
            let state = c["status"].as_str().unwrap_or("");
            let state = if matches!(state, "warning" | "critical") { state.to_uppercase() } else { state.to_string() };
            let mut value = figure(&c["value"], c["unit"].as_str().unwrap_or(""));
            if width.0.is_some() && c["unit"] == "sha256" {
                value = cut(&value, 16);
            }
            vec![
                text(&c["check"]),
                state,
                value,
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
        health_table(rows, width),
        status.to_uppercase(),
        count("warning"),
        count("critical"),
    )
}

/// The health table; where the threshold column leaves too little room (under 30 columns) for details,
/// each row's threshold moves into its detail.
fn health_table(rows: Vec<Vec<String>>, width: Width) -> String {
    let widest =
        |i: usize, header: &str| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0).max(header.len());
    let before_detail: usize =
        [(0, "CHECK"), (1, "STATUS"), (2, "VALUE"), (3, "THRESHOLD")].iter().map(|&(i, h)| widest(i, h) + 2).sum();
    if width.0.is_none_or(|total| before_detail + 30 <= total) {
        return fitted(&["CHECK", "STATUS", "VALUE", "THRESHOLD", "DETAIL"], &rows, width);
    }
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|mut r| {
            let detail = r.pop().unwrap_or_default();
            let threshold = r.pop().unwrap_or_default();
            r.push(match (threshold.is_empty(), detail.is_empty()) {
                (true, _) => detail,
                (false, true) => format!("({threshold})"),
                (false, false) => format!("{detail} ({threshold})"),
            });
            r
        })
        .collect();
    fitted(&["CHECK", "STATUS", "VALUE", "DETAIL (THRESHOLD)"], &rows, width)
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

/// Control characters as visible escapes (`\n`, `\r`, `\t`, `\x1b`, `\u{85}`) and a backslash doubled, so
/// that an escape in the log is always vigil's, never a name's.
/// A time as vigil's JSON, logs and alert bodies write it: RFC 3339, UTC, milliseconds (2026-12-02T03:04:05.678Z).
pub fn rfc3339(at: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An I/O error as a person reads it: "Address already in use", without Rust's "(os error 98)".
pub fn io_text(error: &std::io::Error) -> String {
    let text = error.to_string();
    text.split(" (os error").next().unwrap_or(&text).to_string()
}

pub fn escape_controls(text: &str) -> String {
    visible(text, true)
}

fn visible(text: &str, double_backslashes: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' if double_backslashes => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() && (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// A message as the terminal should show it: control characters other than line breaks as visible escapes
/// (file names are user data; an ESC in one must not drive the terminal), the rest as it is.
pub fn printable(text: &str) -> String {
    text.split('\n').map(|line| visible(line, false)).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_too_long_for_the_width_wrap_below_their_row() {
        let long = "word ".repeat(100);
        let rows = vec![vec!["integrity".to_string(), "CRITICAL".to_string(), long.trim().to_string()]];
        let table = fitted(&["CHECK", "STATUS", "DETAIL"], &rows, Width(Some(60)));
        assert!(table.lines().all(|l| l.chars().count() <= 60), "{table}");
        assert_eq!(table.lines().count(), 5, "header, row, three wrapped lines: {table}");
        assert!(table.trim_end().ends_with('…'), "{table}");
        let wide = fitted(&["CHECK", "STATUS", "DETAIL"], &rows, Width::UNLIMITED);
        assert_eq!(wide.lines().count(), 2);
    }
}
