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

/// Errors that say the database could not be read at all (locked, not a database, cannot open): its state is
/// unknown (exit 3), whatever the command.
pub fn unreadable(error: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(error.sqlite_error_code(), Some(DatabaseBusy | DatabaseLocked | NotADatabase | CannotOpen))
}

/// The extension's functions, as its messages name them; a CLI user ran a command, not a function.
const FUNCTIONS: &[&str] = &[
    "backup_to",
    "backup_verify",
    "backup_restore",
    "backup_list",
    "diagnose",
    "export_to",
    "health_report",
    "health_json",
    "health_snapshot",
    "health_tables",
    "maintain",
    "vacuum_if_fragmented",
    "wal_checkpoint",
    "pit_enable",
    "pit_disable",
    "pit_status",
    "pit_tick",
    "pit_restore",
];

/// Rewrites what the extension says in SQL terms into the CLI's: its hints name SQL calls and JSON options,
/// a CLI user has commands and flags. `db` is the database the command works on, when it has one.
pub fn cli_terms(text: &str, db: Option<&std::path::Path>) -> String {
    let db = db.map_or_else(|| "DB".to_string(), |p| p.display().to_string());
    let mut text = text.to_string();
    for function in FUNCTIONS {
        if let Some(rest) = text.strip_prefix(&format!("{function}: ")) {
            text = rest.to_string();
        }
    }
    let replacements = [
        (r#"'{"overwrite":true}'"#.to_string(), "--overwrite".to_string()),
        (r#"'{"verify":"none"}'"#.to_string(), "--verify none".to_string()),
        (r#"'{"bare":true}'"#.to_string(), "--bare".to_string()),
        ("SELECT backup_to('/path/to/backups/')".to_string(), format!("vigil backup {db} /path/to/backups/")),
        ("make one with backup_to".to_string(), format!("make one with `vigil backup {db} DIR/`")),
        ("SELECT * FROM health_report('full')".to_string(), format!("vigil health {db} --full")),
        ("SELECT maintain()".to_string(), format!("vigil maintain {db}")),
        ("raise busy_timeout_ms".to_string(), "wait longer with --busy-timeout MS".to_string()),
        ("list them with backup_list".to_string(), "list them with `vigil backups DIR`".to_string()),
        ("SELECT pit_enable('*')".to_string(), format!("vigil pit enable {db}")),
        ("pit_tick narrows this".to_string(), format!("`vigil pit tick {db}` narrows this")),
        ("(pit_enable starts one)".to_string(), format!("(`vigil pit enable {db}` starts one)")),
        ("pit_status() shows it".to_string(), format!("`vigil pit status {db}` shows it")),
        (
            "call pit_restore(instant) without a target to restore this database in place".to_string(),
            format!("leave out --into to restore {db} in place"),
        ),
        ("pit_restore writes a new file".to_string(), "vigil pit restore --into writes a new file".to_string()),
        (
            "restore from there with backup_restore".to_string(),
            format!("restore from there with `vigil restore BACKUP {db}`"),
        ),
        ("(backup_list)".to_string(), "(`vigil backups DIR` lists them)".to_string()),
        (r#"'{"consistency": "strict"}'"#.to_string(), "--strict".to_string()),
        (
            r#"'2026-12-01T14:03:27.250Z', 1764598407.25 (unix seconds) or '{"seq": 1200}'"#.to_string(),
            "--at 2026-12-01T14:03:27.250Z, --at 1764598407.25 (unix seconds) or --at seq:1200".to_string(),
        ),
    ];
    for (sql, cli) in replacements {
        text = text.replace(&sql, &cli);
    }
    seq_terms(&text)
}

/// `{"seq": N}` (pit_restore's journal position) as the CLI spells it: `seq:N`.
fn seq_terms(text: &str) -> String {
    const SQL: &str = r#"{"seq": "#;
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(SQL) {
        let after = &rest[start + SQL.len()..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        out.push_str(&rest[..start]);
        if digits > 0 && after[digits..].starts_with('}') {
            out.push_str(&format!("seq:{}", &after[..digits]));
            rest = &after[digits + 1..];
        } else {
            out.push_str(SQL);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A failure as the CLI reports it: in CLI terms, naming the database file, and for a lock the flag that
/// waits longer.
pub fn explained(failure: Failure, db: Option<&std::path::Path>, busy_timeout_ms: u32) -> Failure {
    let message = cli_terms(&failure.message, db);
    let file = db.map_or_else(String::new, |p| format!("{}: ", p.display()));
    let message = if message.contains("database is locked") || message.contains("database is busy") {
        format!(
            "{file}{message}: another connection held its lock longer than the busy timeout ({busy_timeout_ms} \
             ms); retry when it is done, or wait longer with --busy-timeout MS"
        )
    } else if message.contains("file is not a database") {
        format!("{file}{message} (not an SQLite database, or encrypted): check the path")
    } else if message.contains("attempt to write a readonly database") && db.is_some_and(has_journal) {
        format!(
            "{file}{message}: a hot journal beside it (left by a crashed writer) must be rolled back first, which only \
             a read-write connection can do: let the application open it, or run `vigil health --snapshot` once"
        )
    } else if message.contains("attempt to write a readonly database") && db.is_some_and(wal_without_shm) {
        format!(
            "{file}{message}: in WAL mode, a reader must create the -shm file beside it, in a directory this user \
             cannot write: run as a user who can, or while the application has the database open"
        )
    } else {
        message
    };
    Failure { message, ..failure }
}

/// Whether the database is in WAL mode (header bytes 18 and 19 are 2) with no `-shm` beside it: a reader must
/// then create the `-shm` file, and fails where it cannot write the directory.
fn wal_without_shm(db: &std::path::Path) -> bool {
    use std::io::Read;
    let mut header = [0u8; 20];
    let wal = std::fs::File::open(db).and_then(|mut f| f.read_exact(&mut header)).is_ok() && header[18..20] == [2, 2];
    let mut shm = db.as_os_str().to_owned();
    shm.push("-shm");
    wal && !std::path::Path::new(&shm).exists()
}

/// Whether a rollback journal lies beside the database (SQLite reading it read-only cannot roll it back).
fn has_journal(db: &std::path::Path) -> bool {
    let mut journal = db.as_os_str().to_owned();
    journal.push("-journal");
    std::path::Path::new(&journal).is_file()
}

/// User input echoed in a message: quoted, at most 80 characters.
pub fn quoted(text: &str) -> String {
    let chars = text.chars().count();
    if chars <= 80 {
        return format!("'{text}'");
    }
    format!("'{}…' ({chars} characters)", text.chars().take(80).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pit_hints_name_commands_and_flags() {
        let db = std::path::Path::new("app.db");
        let said = "pit_tick: this database has no journal: run SELECT pit_enable('*') first";
        assert_eq!(cli_terms(said, Some(db)), "this database has no journal: run vigil pit enable app.db first");
        let said = r#"pit_restore: the journal ends at seq 7; {"seq": 9} is not in it yet ({"seq": x})"#;
        assert_eq!(cli_terms(said, Some(db)), r#"the journal ends at seq 7; seq:9 is not in it yet ({"seq": x})"#);
        let said =
            "pit_restore: b.db exists: pit_restore writes a new file and never replaces one; name a new path, or \
                    call pit_restore(instant) without a target to restore this database in place";
        assert_eq!(
            cli_terms(said, Some(db)),
            "b.db exists: vigil pit restore --into writes a new file and never replaces one; name a new path, or leave \
             out --into to restore app.db in place"
        );
    }
}
