//! The dashboard's HTML: the fleet page (`GET /`) and one page per database (`GET /db/<db>`), rendered from the
//! cache. Every name comes from a file name: HTML-escaped in text and attributes, percent-encoded in links.
//! No inline script or style: the Content-Security-Policy allows only this origin's files.

use crate::metrics::{CheckResult, DbReport};

use super::cache::Snapshot;
use super::health::status_of;

/// The charts of a database's page: (series, title). dashboard.js knows how to draw each series.
pub const CHARTS: &[(&str, &str)] = &[
    ("file_size", "File size"),
    ("freelist_count", "Free pages"),
    ("fragmentation", "Fragmentation"),
    ("wal_size", "WAL size"),
    ("backup_age", "Backup age"),
    ("growth_per_day", "Growth per day"),
    ("slow_queries", "Slow queries (total)"),
];

/// `&`, `<`, `>`, `"` and `'` as entities: safe in text and in quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Every byte but RFC 3986's unreserved characters as `%XX`: a name as one path segment.
pub fn percent_encoded(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

fn page(title: &str, body_attributes: &str, content: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n\
         <link rel=\"stylesheet\" href=\"/assets/uPlot.min.css\">\n<link rel=\"stylesheet\" href=\"/assets/dashboard.css\">\n\
         <script src=\"/assets/uPlot.iife.min.js\" defer></script>\n<script src=\"/assets/dashboard.js\" defer></script>\n\
         </head>\n<body{body_attributes}>\n{content}</body>\n</html>\n",
        escape(title)
    )
}

fn status_badge(status: &str) -> String {
    format!("<span class=\"status st-{}\">{}</span>", badge_class(status), escape(status))
}

fn nav() -> &'static str {
    "<nav><a href=\"/\">Fleet</a><a href=\"/health\">/health</a><a href=\"/metrics\">/metrics</a>\
     <a href=\"/api/v1/databases\">/api/v1/databases</a></nav>"
}

fn generated(snapshot: &Snapshot) -> String {
    let at: chrono::DateTime<chrono::Utc> = snapshot.generated_at.into();
    format!("<p class=\"note\" id=\"refreshed\">Refreshed {} UTC.</p>\n", at.format("%Y-%m-%d %H:%M:%S"))
}

/// JSON as a data block: the browser never runs it (so `default-src 'self'` allows it) and dashboard.js reads
/// it at once, drawing before any request returns. `<`, `>` and `&` only occur inside JSON strings, where their
/// `\uXXXX` forms mean the same: no `</script>` or `<!--` from a hostile name can end the block.
pub fn data_block(id: &str, json: &str) -> String {
    let mut out = String::with_capacity(json.len() + 64);
    out.push_str(&format!("<script type=\"application/json\" id=\"{id}\">"));
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            _ => out.push(c),
        }
    }
    out.push_str("</script>\n");
    out
}

/// `GET /`: every database with its status and the status of every check; `data` is /api/v1/databases's JSON,
/// embedded for dashboard.js.
pub fn fleet(snapshot: &Snapshot, data: &str) -> String {
    let mut rows = String::new();
    for report in &snapshot.reports {
        let name = &report.target.name;
        let checks: String = report
            .checks
            .iter()
            .map(|c| {
                format!(
                    "<span class=\"status st-{}\" title=\"{}\">{}</span>",
                    badge_class(&c.status),
                    escape(&format!("{}: {}", c.status, c.detail)),
                    escape(&c.check)
                )
            })
            .collect();
        let why =
            report.error.as_deref().map(|e| format!("<div class=\"note\">{}</div>", escape(e))).unwrap_or_default();
        rows.push_str(&format!(
            "<tr data-db=\"{}\"><td><a href=\"/db/{}\">{}</a>{why}</td><td>{}</td><td><div class=\"checks\">{checks}</div></td></tr>\n",
            percent_encoded(name),
            percent_encoded(name),
            escape(name),
            status_badge(status_of(report))
        ));
    }
    let content = format!(
        "<header><h1>vigil: {} database{}</h1>{}</header>\n{}\
         <table class=\"fleet\">\n<thead><tr><th>Database</th><th>Status</th><th>Checks</th></tr></thead>\n\
         <tbody>\n{rows}</tbody>\n</table>\n{}",
        snapshot.reports.len(),
        if snapshot.reports.len() == 1 { "" } else { "s" },
        nav(),
        generated(snapshot),
        data_block("fleet-data", data)
    );
    page("vigil: fleet", "", &content)
}

fn badge_class(status: &str) -> &str {
    match status {
        "ok" | "info" | "warning" | "critical" => status,
        _ => "unknown",
    }
}

/// `GET /db/<db>`: one database's charts and checks. dashboard.js draws the charts from `history` (the JSON of
/// /api/v1/history/<db>, embedded) and then polls that path every `poll_ms`.
pub fn database(snapshot: &Snapshot, report: &DbReport, history: &str, poll_ms: u128) -> String {
    let name = &report.target.name;
    let charts: String = CHARTS
        .iter()
        .map(|(series, title)| {
            format!("<div class=\"chart\" data-series=\"{series}\" data-title=\"{title}\"><h2>{title}</h2></div>\n")
        })
        .collect();
    let error = report
        .error
        .as_deref()
        .map(|e| format!("<p class=\"note\">Last refresh could not read it: {}</p>\n", escape(e)))
        .unwrap_or_default();
    let content = format!(
        "<header><h1>{} {}</h1>{}</header>\n{}{error}<p class=\"note\" id=\"history-note\">Charts: health snapshots \
         (<code>health_snapshot()</code>, e.g. daily) and this server's recent refreshes.</p>\n\
         <section class=\"charts\">\n{charts}</section>\n<h2>Checks</h2>\n{}{}",
        escape(name),
        status_badge(status_of(report)),
        nav(),
        generated(snapshot),
        checks_table(&report.checks),
        data_block("history-data", history)
    );
    // Percent-encoded: the HTML parser would turn a CR into LF (dashboard.js takes the name from the data block).
    let attributes = format!(" data-label=\"{}\" data-poll-ms=\"{poll_ms}\"", percent_encoded(name));
    page(&format!("vigil: {name}"), &attributes, &content)
}

fn checks_table(checks: &[CheckResult]) -> String {
    let level = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let rows: String = checks
        .iter()
        .map(|c| {
            let value = match &c.value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            format!(
                "<tr><td>{}</td><td>{}</td><td class=\"value\">{}</td><td>{}</td><td>{}</td><td class=\"detail\">{}</td></tr>\n",
                escape(&c.check),
                status_badge(&c.status),
                escape(&value),
                escape(&level(c.warning)),
                escape(&level(c.critical)),
                escape(&c.detail)
            )
        })
        .collect();
    format!(
        "<table class=\"checks-table\">\n<thead><tr><th>Check</th><th>Status</th><th>Value</th><th>Warning</th>\
         <th>Critical</th><th>Detail</th></tr></thead>\n<tbody>\n{rows}</tbody>\n</table>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_text_and_attributes() {
        assert_eq!(escape("a\"<b>&'c"), "a&quot;&lt;b&gt;&amp;&#39;c");
        assert_eq!(escape("ünï€"), "ünï€");
    }

    #[test]
    fn a_data_block_cannot_be_ended_by_its_json() {
        let json = serde_json::json!({"db": "</script><!--<script>&x"}).to_string();
        let block = data_block("d", &json);
        let inner = block.strip_prefix("<script type=\"application/json\" id=\"d\">").unwrap();
        let inner = inner.strip_suffix("</script>\n").unwrap();
        assert!(!inner.contains('<') && !inner.contains('>') && !inner.contains('&'), "{inner}");
        let back: serde_json::Value = serde_json::from_str(inner).unwrap();
        assert_eq!(back["db"], "</script><!--<script>&x");
    }

    #[test]
    fn links_percent_encode_every_reserved_byte() {
        assert_eq!(percent_encoded("a b/\"<>&ü.db"), "a%20b%2F%22%3C%3E%26%C3%BC.db");
        assert_eq!(super::super::routes::percent_decoded(&percent_encoded("x/\"ü%")), Some("x/\"ü%".into()));
    }
}
