//! The cheap checks: header figures, schema, file and volume metadata. None of them reads table data, so
//! their cost does not grow with the database.

use std::time::Instant;

use sha2::{Digest, Sha256};

use super::options::Options;
use super::thresholds::show;
use super::{Check, Status};
use crate::error::{Context as _, Error, Result};
use crate::sqlite::{Db, Value};
use crate::volume::{disk_of, Disk};

pub use crate::store::{has_table, quote};

/// A schema object, as hashed for the signature and for drift.
#[derive(Clone, Debug, PartialEq)]
pub struct SchemaObject {
    pub kind: String,
    pub name: String,
    pub table: String,
    pub hash: String,
    pub without_rowid: bool,
    pub virtual_table: bool,
}

impl SchemaObject {
    pub fn key(&self) -> String {
        format!("{} {}", self.kind, self.name)
    }
}

/// What the cheap checks measured; scans, history and the recommendation build on it.
#[derive(Clone, Debug, PartialEq)]
pub struct Facts {
    pub schema: String,
    pub path: Option<String>,
    pub probe_ms: f64,
    pub file_size: Option<u64>,
    pub wal_size: Option<u64>,
    pub page_size: i64,
    pub page_count: i64,
    pub freelist_count: i64,
    pub journal_mode: String,
    pub auto_vacuum: i64,
    pub journal_size_limit: i64,
    pub disk: Option<Disk>,
    pub objects: Vec<SchemaObject>,
    pub signature: String,
    pub has_stat1: bool,
}

impl Facts {
    pub fn gather(db: Db, options: &Options) -> Result<Facts> {
        let schema = options.schema.clone();
        ensure_schema(db, &schema)?;
        let q = quote(&schema);
        let started = Instant::now();
        db.query_value(&format!("SELECT count(*) FROM {q}.sqlite_schema"), &[]).map_err(unreadable)?;
        let probe_ms = started.elapsed().as_secs_f64() * 1000.0;
        let pragma = |name: &str| -> Result<Value> {
            db.query_value(&format!("PRAGMA {q}.{name}"), &[]).context(format!("PRAGMA {name} failed"))
        };
        let int = |name: &str| -> Result<i64> { Ok(pragma(name)?.as_i64().unwrap_or(0)) };
        let path = db.filename(&schema)?;
        let objects = schema_objects(db, &q, options.include_vigil)?;
        let has_stat1 = has_table(db, &q, "sqlite_stat1")?;
        Ok(Facts {
            probe_ms,
            file_size: path.as_deref().and_then(|p| std::fs::metadata(p).ok()).map(|m| m.len()),
            wal_size: path.as_deref().map(|p| std::fs::metadata(format!("{p}-wal")).map_or(0, |m| m.len())),
            disk: path.as_deref().and_then(disk_of),
            page_size: int("page_size")?,
            page_count: int("page_count")?,
            freelist_count: int("freelist_count")?,
            journal_mode: pragma("journal_mode")?.as_str().unwrap_or("unknown").to_string(),
            auto_vacuum: int("auto_vacuum")?,
            journal_size_limit: int("journal_size_limit")?,
            signature: signature(&objects),
            objects,
            has_stat1,
            path,
            schema,
        })
    }

    pub fn freelist_pct(&self) -> f64 {
        percent(self.freelist_count as f64, self.page_count as f64)
    }

    pub fn count(&self, kind: &str) -> i64 {
        self.objects.iter().filter(|o| o.kind == kind).count() as i64
    }
}

pub fn percent(part: f64, whole: f64) -> f64 {
    if whole <= 0.0 {
        0.0
    } else {
        (part * 100.0 / whole * 100.0).round() / 100.0
    }
}

fn unreadable(error: Error) -> Error {
    explain_read_error(error).context("cannot read the database")
}

fn ensure_schema(db: Db, schema: &str) -> Result<()> {
    let names: Vec<String> = db
        .query("SELECT name FROM pragma_database_list", &[])
        .map_err(unreadable)?
        .into_iter()
        .filter_map(|row| row[0].as_str().map(str::to_string))
        .collect();
    if names.iter().any(|n| n.eq_ignore_ascii_case(schema)) {
        return Ok(());
    }
    Err(Error::new(format!("no database named \"{schema}\" is attached (attached: {})", names.join(", "))))
}

/// Adds what the user can do to errors met while reading.
fn explain_read_error(error: Error) -> Error {
    let hint = match error.primary_code() {
        5 | 6 => "another connection holds a lock; retry later or raise the busy timeout",
        26 => "check the path: this file is not an SQLite database, or it is encrypted",
        11 => "the database is corrupt: run an integrity check and restore from a backup",
        _ => return error,
    };
    let code = error.code();
    Error::with_code(format!("{} ({hint})", error.message()), code)
}

fn schema_objects(db: Db, q: &str, include_vigil: bool) -> Result<Vec<SchemaObject>> {
    let rows = db.query(
        &format!(
            "SELECT type, name, tbl_name, coalesce(sql, '') FROM {q}.sqlite_schema \
             WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name"
        ),
        &[],
    )?;
    Ok(rows
        .into_iter()
        .filter(|row| include_vigil || !super::is_vigil_object(row[1].as_str().unwrap_or_default()))
        .map(|row| {
            let text = |i: usize| row[i].as_str().unwrap_or_default().to_string();
            let sql = normalise_sql(&text(3));
            let mut hasher = Sha256::new();
            for part in [text(0), text(1), text(2), sql.clone()] {
                hasher.update(part.as_bytes());
                hasher.update([0]);
            }
            SchemaObject {
                without_rowid: text(0) == "table" && sql.to_ascii_uppercase().ends_with("WITHOUT ROWID"),
                virtual_table: sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL TABLE"),
                kind: text(0),
                name: text(1),
                table: text(2),
                hash: hex(&hasher.finalize()),
            }
        })
        .collect())
}

/// Whitespace runs become one space, so that reformatting a CREATE statement is not a schema change.
fn normalise_sql(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn signature(objects: &[SchemaObject]) -> String {
    let mut hasher = Sha256::new();
    for object in objects {
        hasher.update(format!("{}\n{}\n", object.key(), object.hash).as_bytes());
    }
    hex(&hasher.finalize())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const JOURNAL_LIMIT_HINT: &str = "a checkpoint (PRAGMA wal_checkpoint(TRUNCATE)) brings it back";

/// The rows of the cheap checks, in report order.
pub fn cheap(facts: &Facts, options: &Options) -> Vec<Check> {
    let mut rows = vec![
        Check::new("probe_ms", round2(facts.probe_ms), "ms")
            .detail("time to read the schema (SELECT count(*) FROM sqlite_schema)")
            .graded(options),
        file_size(facts, options),
        Check::new("page_size", facts.page_size, "bytes"),
        Check::new("page_count", facts.page_count, "pages"),
        Check::new("freelist_count", facts.freelist_count, "pages").detail("pages on the freelist (unused)"),
        Check::new("freelist_pct", facts.freelist_pct(), "%")
            .detail(format!("{} of {} pages are free", facts.freelist_count, facts.page_count))
            .graded(options),
        Check::new("journal_mode", facts.journal_mode.as_str(), ""),
        Check::new("auto_vacuum", auto_vacuum_name(facts.auto_vacuum), ""),
        wal_size(facts, options),
    ];
    rows.extend(disk_rows(facts, options));
    rows.push(Check::new("tables", facts.count("table"), "tables").detail(format!(
        "{} views, {} triggers",
        facts.count("view"),
        facts.count("trigger")
    )));
    rows.push(Check::new("indexes", facts.count("index"), "indexes"));
    rows.push(
        Check::new("schema_signature", facts.signature.as_str(), "sha256")
            .detail(format!("SHA-256 of {} normalised schema objects", facts.objects.len())),
    );
    rows
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn auto_vacuum_name(mode: i64) -> &'static str {
    match mode {
        1 => "full",
        2 => "incremental",
        _ => "none",
    }
}

fn file_size(facts: &Facts, options: &Options) -> Check {
    let Some(size) = facts.file_size else {
        return Check::new("file_size", Value::Null, "bytes")
            .status(Status::Info)
            .detail("in-memory or temporary database: no file");
    };
    let check = Check::new("file_size", size as i64, "bytes").graded(options);
    if facts.page_count == 0 {
        return check
            .status(Status::Warning)
            .detail("the database is empty: no schema and no data (a new file, or a truncated one)");
    }
    check.detail(show(size as f64, "bytes"))
}

fn wal_size(facts: &Facts, options: &Options) -> Check {
    let Some(size) = facts.wal_size else {
        return Check::new("wal_size", Value::Null, "bytes").status(Status::Info).detail("no file");
    };
    let check = Check::new("wal_size", size as i64, "bytes").graded(options);
    let limit = facts.journal_size_limit;
    if limit >= 0 && size as i64 > limit {
        let detail = format!("larger than journal_size_limit ({limit} bytes): {JOURNAL_LIMIT_HINT}");
        let status = Status::Info.max(check.status);
        return check.status(status).detail(detail);
    }
    let detail = match (facts.journal_mode.as_str(), size) {
        ("wal", 0) => "no WAL file yet, or fully checkpointed".to_string(),
        ("wal", _) => show(size as f64, "bytes"),
        (_, 0) => "not in WAL mode".to_string(),
        (mode, _) => format!("a WAL file is present although journal_mode is {mode}"),
    };
    check.detail(detail)
}

fn disk_rows(facts: &Facts, options: &Options) -> Vec<Check> {
    let Some(disk) = &facts.disk else {
        let unknown = |name| {
            Check::new(name, Value::Null, "").status(Status::Info).detail("no file, or the volume cannot be read")
        };
        return vec![unknown("disk_free"), unknown("disk_used_pct")];
    };
    vec![
        Check::new("disk_free", disk.free as i64, "bytes")
            .detail(format!("{} free on the volume holding the database", show(disk.free as f64, "bytes"))),
        Check::new("disk_used_pct", disk.used_pct, "%").graded(options),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(quote("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn reformatting_sql_is_not_a_change() {
        assert_eq!(normalise_sql("CREATE  TABLE t(\n  a,\tb)"), "CREATE TABLE t( a, b)");
    }

    #[test]
    fn percent_is_safe_on_empty_databases() {
        assert_eq!(percent(3.0, 0.0), 0.0);
        assert_eq!(percent(1.0, 3.0), 33.33);
    }
}
