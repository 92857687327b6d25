//! export_to: the database's content as text others can read. `sql`: one dump that rebuilds the database
//! (schema, rows with their rowids, AUTOINCREMENT counters, indexes, views, triggers); `json` and `csv`: one
//! file per table. Every table is read inside one transaction, so the files agree with each other; the files
//! are written into a staging directory, fsynced, and published together (dir.rs), and nothing is
//! overwritten unless asked.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use serde_json::{json, Value as Json};

use sha2::{Digest, Sha256};

use super::digest::HashingWriter;
use super::dir::{self, exists, io_error, sync_file, Perms, Staging, MAX_NAME_BYTES};
use super::options::BackupOptions;
use crate::args::path_arg;
use crate::error::{Error, Result};
use crate::maintenance::elapsed_ms;
use crate::sqlite::{Db, Value};
use crate::store::quote;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Sql,
    Json,
    Csv,
}

impl Format {
    fn parse(value: Option<&Value>) -> Result<Format> {
        match value.and_then(Value::as_str) {
            Some("sql") => Ok(Format::Sql),
            Some("json") => Ok(Format::Json),
            Some("csv") => Ok(Format::Csv),
            _ => {
                let given = value.map_or_else(|| "nothing".to_string(), crate::error::describe);
                Err(Error::new(format!("format must be 'sql', 'json' or 'csv', not {given}")))
            }
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::Sql => "sql",
            Format::Json => "json",
            Format::Csv => "csv",
        }
    }
}

/// A table to export: its name, `CREATE` statement, the columns an INSERT may name, and the rowid alias to
/// keep rowids with (none for WITHOUT ROWID tables, or when every alias is a real column).
struct Table {
    name: String,
    sql: String,
    columns: Vec<String>,
    rowid: Option<&'static str>,
}

impl Table {
    /// The rowid alias (when kept) and the quoted columns, as a SELECT or an INSERT names them.
    fn column_list(&self) -> String {
        let mut names: Vec<String> = self.rowid.iter().map(|r| r.to_string()).collect();
        names.extend(self.columns.iter().map(|c| quote(c)));
        names.join(",")
    }
}

/// `export_to(dir, format [, options])`.
pub fn export_to(db: Db, args: &[Value]) -> Result<Value> {
    let dir = path_arg(args, 0, "the export directory").map_err(|e| e.context("bad arguments"))?;
    let format = Format::parse(args.get(1)).map_err(|e| e.context("bad arguments"))?;
    let options = BackupOptions::parse(args.get(2), &["schema", "overwrite"]).map_err(|e| e.context("bad options"))?;
    if db.is_readonly(&options.schema)?.is_none() {
        return Err(Error::new(format!("no database named {} is attached", quote(&options.schema))));
    }
    let source = db.filename(&options.schema)?;
    let perms = source.as_deref().and_then(|s| Perms::of(Path::new(s)));
    let dir = dir::export_directory(dir, perms)?;
    let started = Instant::now();
    let removed_temporaries = dir::sweep(&dir);
    let files = db.in_savepoint("vigil_export", || export(db, &dir, format, &options, perms))?;
    let result = json!({
        "dir": dir.to_string_lossy(),
        "format": format.extension(),
        "files": files,
        "removed_temporaries": removed_temporaries,
        "duration_ms": elapsed_ms(started),
    });
    Ok(Value::Text(result.to_string()))
}

/// Writes every file into a staging directory, then publishes them all (dir.rs): a failure on the way (a
/// full disk) leaves no file under its final name, and a rerun starts afresh.
fn export(db: Db, dir: &Path, format: Format, options: &BackupOptions, perms: Option<Perms>) -> Result<Vec<Json>> {
    let q = quote(&options.schema);
    let tables = tables(db, &q)?;
    let targets: Vec<(Option<&Table>, String)> = match format {
        Format::Sql => {
            let stem = db
                .filename(&options.schema)?
                .and_then(|p| Path::new(&p).file_stem().map(|s| s.to_string_lossy().into_owned()));
            let stem = stem.unwrap_or_else(|| options.schema.clone());
            vec![(None, bounded_file_name(&stem, "sql"))]
        }
        _ => tables.iter().map(Some).zip(file_names(&tables, format.extension())).collect(),
    };
    if !options.overwrite {
        if let Some((_, name)) = targets.iter().find(|(_, name)| dir.join(name).symlink_metadata().is_ok()) {
            return Err(exists(&dir.join(name)));
        }
    }
    let mut staging = Staging::create(dir, perms)?;
    let mut files = Vec::new();
    for (table, name) in &targets {
        let (rows, bytes, sha256) = write_file(&mut staging, name, |out| match (format, table) {
            (Format::Sql, _) => dump(db, &q, &tables, out),
            (Format::Json, Some(t)) => json_rows(db, &q, t, out),
            (_, Some(t)) => csv_rows(db, &q, t, out),
            (_, None) => Ok(0),
        })
        .map_err(|e| match table {
            Some(t) => e.context(format!("exporting table {} to {name}", shown(&t.name))),
            None => e.context(format!("exporting {name}")),
        })?;
        files.push(json!({
            "table": table.map(|t| t.name.as_str()),
            "path": dir.join(name).to_string_lossy(),
            "rows": rows,
            "bytes": bytes,
            "sha256": sha256,
        }));
    }
    staging.publish(options.overwrite)?;
    Ok(files)
}

/// A table name in a message: quoted, and cut when long.
fn shown(name: &str) -> String {
    let cut: String = name.chars().take(60).collect();
    if cut.len() < name.len() {
        format!("{}…", quote(&cut))
    } else {
        quote(name)
    }
}

/// A table name as a file name: letters, digits, `-`, `_` and inner dots stay, every other byte is %XX.
fn file_name(name: &str) -> String {
    let mut out = String::new();
    for (i, byte) in name.bytes().enumerate() {
        let keep = byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' || (byte == b'.' && i > 0);
        if keep {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `file_name(name).extension`, or when that would exceed dir.rs's limit, its first bytes then `~` and 16 hex
/// digits of the name's SHA-256 (still unique, and within every file system's 255 bytes).
fn bounded_file_name(name: &str, extension: &str) -> String {
    let encoded = file_name(name);
    if encoded.len() + 1 + extension.len() <= MAX_NAME_BYTES {
        return format!("{encoded}.{extension}");
    }
    hashed_file_name(name, &encoded, extension)
}

fn hashed_file_name(name: &str, encoded: &str, extension: &str) -> String {
    let hash = &super::digest::hex(&Sha256::digest(name.as_bytes()))[..16];
    let room = MAX_NAME_BYTES - 1 - extension.len() - 1 - hash.len();
    format!("{}~{hash}.{extension}", &encoded[..encoded.len().min(room)])
}

/// One file name per table: bounded, and distinct even where a file system ignores case (`T` and `t`): a
/// name already taken gets the hashed form.
fn file_names(tables: &[Table], extension: &str) -> Vec<String> {
    let mut taken = std::collections::HashSet::new();
    tables
        .iter()
        .map(|t| {
            let mut name = bounded_file_name(&t.name, extension);
            if !taken.insert(name.to_lowercase()) {
                name = hashed_file_name(&t.name, &file_name(&t.name), extension);
                taken.insert(name.to_lowercase());
            }
            name
        })
        .collect()
}

fn write_file(
    staging: &mut Staging,
    name: &str,
    fill: impl FnOnce(&mut dyn Write) -> Result<u64>,
) -> Result<(u64, u64, String)> {
    let (file, path) = staging.file(name)?;
    let mut writer = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
    let rows = fill(&mut writer)?;
    let (buffered, sha256, bytes) = writer.finish();
    let file: File = buffered.into_inner().map_err(|e| io_error("cannot write", &path, e.into_error()))?;
    sync_file(&file, &path)?;
    Ok((rows, bytes, sha256))
}

fn tables(db: Db, q: &str) -> Result<Vec<Table>> {
    let rows = db.query(
        &format!(
            "SELECT name, sql FROM {q}.sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
             ORDER BY rowid"
        ),
        &[],
    )?;
    rows.into_iter()
        .map(|row| {
            let name = row[0].as_str().unwrap_or_default().to_string();
            let sql = row[1].as_str().unwrap_or_default().to_string();
            // table_xinfo: hidden 2 and 3 are generated columns, which an INSERT may not name.
            let info = db.query(
                &format!("SELECT name, hidden FROM {q}.pragma_table_xinfo(?1)"),
                &[Value::from(name.as_str())],
            )?;
            let columns: Vec<String> = info
                .iter()
                .filter(|c| !matches!(c[1].as_i64(), Some(2 | 3)))
                .map(|c| c[0].as_str().unwrap_or_default().to_string())
                .collect();
            let without_rowid = sql.to_ascii_uppercase().replace(char::is_whitespace, "").contains("WITHOUTROWID");
            let all: Vec<String> = info.iter().map(|c| c[0].as_str().unwrap_or_default().to_lowercase()).collect();
            let rowid = if without_rowid || sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL") {
                None
            } else {
                ["rowid", "oid", "_rowid_"].into_iter().find(|alias| !all.iter().any(|c| c == alias))
            };
            Ok(Table { name, sql, columns, rowid })
        })
        .collect()
}

fn write_err(error: std::io::Error) -> Error {
    io_error("cannot write", Path::new(""), error)
}

/// Streams `SELECT [rowid,] columns FROM table`, calling `each` per row; returns the row count.
fn each_row(db: Db, q: &str, table: &Table, mut each: impl FnMut(&[Value]) -> Result<()>) -> Result<u64> {
    let order = if table.rowid.is_some() { " ORDER BY rowid" } else { "" };
    let sql = format!("SELECT {} FROM {q}.{}{order}", table.column_list(), quote(&table.name));
    let mut stmt = db.prepare(&sql)?;
    let mut count = 0;
    while stmt.step()? {
        each(&stmt.row())?;
        count += 1;
    }
    Ok(count)
}

/// An SQL literal that reads back as the same value and type.
fn sql_literal(value: &Value) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(r) if r.is_infinite() => if *r > 0.0 { "1e999" } else { "-1e999" }.into(),
        Value::Real(r) => format!("{r:?}"),
        Value::Text(t) => format!("'{}'", t.replace('\'', "''")),
        Value::RawText(t) => format!("CAST(X'{}' AS TEXT)", super::digest::hex(t)),
        Value::Blob(b) => format!("X'{}'", super::digest::hex(b)),
    }
}

fn dump(db: Db, q: &str, tables: &[Table], out: &mut dyn Write) -> Result<u64> {
    writeln!(out, "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;").map_err(write_err)?;
    let mut rows = 0;
    for table in tables {
        writeln!(out, "{};", table.sql).map_err(write_err)?;
        if table.sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL") {
            continue;
        }
        let head = format!("INSERT INTO {}({}) VALUES(", quote(&table.name), table.column_list());
        rows += each_row(db, q, table, |row| {
            let values: Vec<String> = row.iter().map(sql_literal).collect();
            writeln!(out, "{head}{});", values.join(",")).map_err(write_err)
        })?;
    }
    let has_sequence = crate::store::has_table(db, q, "sqlite_sequence")?;
    if has_sequence {
        writeln!(out, "DELETE FROM sqlite_sequence;").map_err(write_err)?;
        for row in db.query(&format!("SELECT name, seq FROM {q}.sqlite_sequence"), &[])? {
            writeln!(
                out,
                "INSERT INTO sqlite_sequence(name,seq) VALUES({},{});",
                sql_literal(&row[0]),
                sql_literal(&row[1])
            )
            .map_err(write_err)?;
        }
    }
    let others = db.query(
        &format!(
            "SELECT sql FROM {q}.sqlite_schema WHERE type IN ('index', 'view', 'trigger') AND sql IS NOT NULL \
             ORDER BY rowid"
        ),
        &[],
    )?;
    for row in others {
        writeln!(out, "{};", row[0].as_str().unwrap_or_default()).map_err(write_err)?;
    }
    writeln!(out, "COMMIT;").map_err(write_err)?;
    Ok(rows)
}

/// JSON: an array of objects, one per row, keys in column order. BLOBs are `{"$blob": "<hex>"}`, infinite
/// reals the strings "Infinity"/"-Infinity" (JSON has no such numbers).
pub(crate) fn json_value(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Integer(i) => json!(i),
        Value::Real(r) if r.is_finite() => json!(r),
        Value::Real(r) => json!(if *r > 0.0 { "Infinity" } else { "-Infinity" }),
        Value::Text(t) => json!(t),
        // JSON text is UTF-8: bytes that are not become U+FFFD.
        Value::RawText(t) => json!(String::from_utf8_lossy(t)),
        Value::Blob(b) => json!({"$blob": super::digest::hex(b)}),
    }
}

fn json_rows(db: Db, q: &str, table: &Table, out: &mut dyn Write) -> Result<u64> {
    let skip = table.rowid.is_some() as usize;
    write!(out, "[").map_err(write_err)?;
    let mut first = true;
    let rows = each_row(db, q, table, |row| {
        // Written by hand to keep the keys in column order (serde_json's maps sort them).
        let members: Vec<String> =
            table.columns.iter().zip(&row[skip..]).map(|(c, v)| format!("{}:{}", json!(c), json_value(v))).collect();
        let separator = if first { "\n" } else { ",\n" };
        first = false;
        write!(out, "{separator}{{{}}}", members.join(",")).map_err(write_err)
    })?;
    writeln!(out, "\n]").map_err(write_err)?;
    Ok(rows)
}

/// CSV (RFC 4180): a header row; NULL is an empty field, the empty string a quoted empty field `""`; fields
/// with a comma, quote, CR or LF are quoted with quotes doubled; BLOBs are hexadecimal; lines end in CRLF.
fn csv_field(value: &Value) -> String {
    let text = match value {
        Value::Null => return String::new(),
        Value::Text(t) if t.is_empty() => return "\"\"".into(),
        Value::Blob(b) => super::digest::hex(b),
        Value::RawText(t) => String::from_utf8_lossy(t).into_owned(),
        Value::Real(r) if r.is_infinite() => if *r > 0.0 { "Infinity" } else { "-Infinity" }.into(),
        Value::Real(r) => format!("{r:?}"),
        Value::Integer(i) => i.to_string(),
        Value::Text(t) => t.clone(),
    };
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn csv_rows(db: Db, q: &str, table: &Table, out: &mut dyn Write) -> Result<u64> {
    let header: Vec<String> = table.columns.iter().map(|c| csv_field(&Value::from(c.as_str()))).collect();
    write!(out, "{}\r\n", header.join(",")).map_err(write_err)?;
    let skip = table.rowid.is_some() as usize;
    each_row(db, q, table, |row| {
        let fields: Vec<String> = row[skip..].iter().map(csv_field).collect();
        write!(out, "{}\r\n", fields.join(",")).map_err(write_err)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_fields() {
        assert_eq!(sql_literal(&Value::Real(1.0)), "1.0");
        assert_eq!(sql_literal(&Value::Real(0.1)), "0.1");
        assert_eq!(sql_literal(&Value::Text("it's".into())), "'it''s'");
        assert_eq!(sql_literal(&Value::Blob(vec![0, 255])), "X'00ff'");
        assert_eq!(csv_field(&Value::Null), "");
        assert_eq!(csv_field(&Value::Text(String::new())), "\"\"");
        assert_eq!(csv_field(&Value::Text("a \"b\",\nc".into())), "\"a \"\"b\"\",\nc\"");
        assert_eq!(file_name("weird/name .x"), "weird%2Fname%20.x");
        assert_eq!(file_name(".hidden"), "%2Ehidden");
        let long = bounded_file_name(&"é".repeat(150), "csv");
        assert!(long.len() <= MAX_NAME_BYTES && long.ends_with(".csv") && long.contains('~'), "{long}");
        assert_ne!(long, bounded_file_name(&format!("{}x", "é".repeat(150)), "csv"));
    }
}
