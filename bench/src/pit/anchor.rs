//! The anchor: a trigger journal of JSON row images, the common design of history tools such as
//! sqlite-history-json (written here from that description, not from their code). Every change appends one
//! row with a text timestamp and the whole OLD and/or NEW row as `json_object`.

use rusqlite::Connection;

/// The history table that `install` writes to.
pub const HISTORY: &str = "anchor_history";

/// Creates the history table and the AFTER INSERT/UPDATE/DELETE triggers of `table` (an INTEGER PRIMARY KEY
/// table) whose columns are `columns`.
pub fn install(conn: &Connection, table: &str, columns: &[&str]) {
    let image = |row: &str| {
        let pairs: Vec<String> = columns.iter().map(|c| format!("'{c}', {row}.\"{c}\"")).collect();
        format!("json_object({})", pairs.join(", "))
    };
    let now = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";
    let head = format!("INSERT INTO {HISTORY}(at, tbl, op, row_id, old, new) VALUES ({now}, '{table}'");
    conn.execute_batch(&format!(
        "CREATE TABLE {HISTORY}(id INTEGER PRIMARY KEY, at TEXT NOT NULL, tbl TEXT NOT NULL, op TEXT NOT NULL,
                                row_id INTEGER, old TEXT, new TEXT);
         CREATE TRIGGER anchor_{table}_ai AFTER INSERT ON \"{table}\" BEGIN
           {head}, 'insert', NEW.rowid, NULL, {new}); END;
         CREATE TRIGGER anchor_{table}_au AFTER UPDATE ON \"{table}\" BEGIN
           {head}, 'update', NEW.rowid, {old}, {new}); END;
         CREATE TRIGGER anchor_{table}_ad AFTER DELETE ON \"{table}\" BEGIN
           {head}, 'delete', OLD.rowid, {old}, NULL); END;",
        new = image("NEW"),
        old = image("OLD"),
    ))
    .unwrap();
}
