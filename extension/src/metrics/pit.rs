//! The point-in-time journal's window, when the journal is enabled (pit_status()).

use serde_json::Value as Json;

use super::{timestamp, Options, Row};
use crate::error::Result;
use crate::sqlite::{Db, Value};

/// Only the `main` schema carries a journal (pit_enable works on it).
pub fn rows(db: Db, options: &Options) -> Result<Vec<Row>> {
    if options.health.schema != "main" || !crate::store::pit::exists(db)? {
        return Ok(Vec::new());
    }
    let status = match crate::pit::pit_status(db, &[])? {
        Value::Text(text) => serde_json::from_str::<Json>(&text).unwrap_or_default(),
        _ => Json::Null,
    };
    let mut rows = Vec::new();
    let window = &status["window"];
    if let Some(start) = window["earliest"].as_str().and_then(timestamp) {
        let help = "Earliest instant pit_restore can reach (the start of the journal's window)";
        rows.push(Row::gauge("vigil_pit_window_start_timestamp_seconds", help, start));
    }
    if let Some(last) = window["last_change"].as_str().and_then(timestamp) {
        let help = "When the journal last recorded a change";
        rows.push(Row::gauge("vigil_pit_last_change_timestamp_seconds", help, last));
    }
    if let Some(n) = status["journal"]["rows"].as_f64() {
        rows.push(Row::gauge("vigil_pit_journal_rows", "Rows in the point-in-time journal", n));
    }
    if let Some(n) = status["journal"]["bytes"].as_f64() {
        rows.push(Row::gauge("vigil_pit_journal_size_bytes", "Bytes the point-in-time journal takes", n));
    }
    Ok(rows)
}
