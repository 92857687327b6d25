//! The floor of any trigger journal: one AFTER trigger per operation appending the typed OLD and/or NEW
//! image to a table with no declared column types (so no conversion) and no AUTOINCREMENT; no REPLACE probe,
//! no transaction id. It captures less than pit (REPLACE deletes, transactions), so it is not a competitor:
//! it shows how close any trigger journal can come to the throughput goals on this host.

use rusqlite::Connection;

/// The journal table that `install` writes to.
pub const LOG: &str = "floor_log";

/// Creates the log and the AFTER INSERT/UPDATE/DELETE triggers of the rowid table `table` with `columns`.
pub fn install(conn: &Connection, table: &str, columns: &[&str]) {
    let slots = |prefix: &str| -> String { (1..=columns.len()).map(|i| format!(", {prefix}{i}")).collect() };
    let values = |row: &str| -> String { columns.iter().map(|c| format!(", {row}.\"{c}\"")).collect() };
    let head = format!("INSERT INTO {LOG}(at, op, rid");
    conn.execute_batch(&format!(
        "CREATE TABLE {LOG}(seq INTEGER PRIMARY KEY, at, op, rid{o}{n});
         CREATE TRIGGER floor_{table}_ai AFTER INSERT ON \"{table}\" BEGIN
           {head}{n}) VALUES (julianday('now'), 1, NEW.rowid{new}); END;
         CREATE TRIGGER floor_{table}_au AFTER UPDATE ON \"{table}\" BEGIN
           {head}{o}{n}) VALUES (julianday('now'), 2, OLD.rowid{old}{new}); END;
         CREATE TRIGGER floor_{table}_ad AFTER DELETE ON \"{table}\" BEGIN
           {head}{o}) VALUES (julianday('now'), 3, OLD.rowid{old}); END;",
        o = slots("o"),
        n = slots("n"),
        old = values("OLD"),
        new = values("NEW"),
    ))
    .unwrap();
}
