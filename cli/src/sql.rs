//! Calling the extension's SQL from the CLI, and turning its errors into exit codes.

use rusqlite::Connection;
use serde_json::{json, Map, Value as Json};

use crate::{exit, Failure};

/// Errors from the extension: a refused option or argument is a usage error, a corrupt database is critical, anything
/// else (not a database, locked, unreadable) leaves the state unknown.
pub fn sql_failure(error: rusqlite::Error) -> Failure {
    let message = error.to_string();
    if message.contains(": bad options: ") || message.contains(": bad arguments: ") {
        return Failure::usage(message);
    }
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseCorrupt) => Failure { message, code: exit::CRITICAL },
        _ => Failure::unknown(message),
    }
}

/// Runs a query whose one value is a JSON document.
pub fn query_json(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Json, Failure> {
    let text: String = conn.query_row(sql, params, |row| row.get(0)).map_err(sql_failure)?;
    serde_json::from_str(&text).map_err(|e| Failure::unknown(format!("the extension returned invalid JSON: {e}")))
}

/// Every row of a table-valued query, as column → JSON value.
pub fn query_rows(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Map<String, Json>>, Failure> {
    let mut stmt = conn.prepare(sql).map_err(sql_failure)?;
    let names: Vec<String> = stmt.column_names().map(String::from).collect();
    let rows = stmt
        .query_map(params, |row| {
            let mut object = Map::new();
            for (i, name) in names.iter().enumerate() {
                let value = match row.get_ref(i)? {
                    rusqlite::types::ValueRef::Integer(n) => json!(n),
                    rusqlite::types::ValueRef::Real(r) => json!(r),
                    rusqlite::types::ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
                    _ => Json::Null,
                };
                object.insert(name.clone(), value);
            }
            Ok(object)
        })
        .map_err(sql_failure)?;
    rows.collect::<Result<_, _>>().map_err(sql_failure)
}
