//! `diagnose(path)`: the checklist a DBA runs first on a database that may be damaged, as rows in order —
//! the file, its header, its journal or WAL, whether SQLite opens it and reads its schema, quick and full
//! integrity grouped per b-tree, foreign keys, the damaged pages, the newest verified backup — ending with
//! the next step to take. It works on any file from any connection and never writes: see [`open`] for how
//! the database is opened without creating or changing a file.

mod checks;
mod files;
mod integrity;
mod next_step;
mod open;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::header::{DatabaseHeader, HEADER_BYTES};
use crate::sqlite::{Db, Value};
use crate::vtab::TableFunction;
use files::PathKind;
pub use next_step::{next_step, Action, Findings};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    Skipped,
    Info,
    Warning,
    Critical,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Skipped => "skipped",
            Status::Info => "info",
            Status::Warning => "warning",
            Status::Critical => "critical",
        }
    }
}

/// One row: a step of the checklist.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub step: &'static str,
    pub status: Status,
    pub value: Value,
    pub detail: String,
}

fn row(step: &'static str, status: Status, value: impl Into<Value>, detail: impl Into<String>) -> Row {
    Row { step, status, value: value.into(), detail: detail.into() }
}

/// Every step, in the order rows come (`damaged_btree` rows, one per b-tree, follow `integrity_check`).
pub const STEPS: &[&str] = &[
    "file",
    "size",
    "page_aligned",
    "header",
    "page_size",
    "page_count",
    "freelist_count",
    "text_encoding",
    "schema_format",
    "reserved_bytes",
    "journal",
    "wal",
    "open",
    "schema",
    "quick_check",
    "integrity_check",
    "foreign_key_check",
    "damaged_pages",
    "last_verified_backup",
    "next_step",
];

/// A diagnosis in progress: its rows and what the next step depends on.
struct Diagnosis {
    rows: Vec<Row>,
    findings: Findings,
}

impl Diagnosis {
    fn push(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// Ends early: every step not reached is skipped for `why`, then the next step.
    fn finish(mut self, why: &str) -> Vec<Row> {
        for step in STEPS.iter().filter(|s| **s != "next_step") {
            if !self.rows.iter().any(|r| r.step == *step) {
                self.rows.push(row(step, Status::Skipped, Value::Null, format!("skipped: {why}")));
            }
        }
        self.end()
    }

    fn end(mut self) -> Vec<Row> {
        let step = next_step(&self.findings);
        let status = match step.action {
            Action::None => Status::Ok,
            Action::ForeignKeys | Action::RollBack | Action::Vacuum | Action::Reindex | Action::Retry => {
                Status::Warning
            }
            _ => Status::Critical,
        };
        self.rows.push(row("next_step", status, step.action.as_str(), step.detail));
        let order = |step: &str| STEPS.iter().position(|s| *s == step).unwrap_or(STEPS.len());
        let integrity = order("integrity_check");
        self.rows.sort_by_key(|r| if r.step == "damaged_btree" { integrity } else { order(r.step) });
        self.rows
    }
}

/// Runs the whole checklist on `path` (relative to the host process's working directory).
pub fn diagnose(path: &str) -> Vec<Row> {
    let mut d = Diagnosis { rows: Vec::new(), findings: Findings { path: path.to_string(), ..Findings::default() } };
    let given = Path::new(path);
    let not_a_file = match files::kind_of(given) {
        PathKind::Regular { size } => Ok(size),
        PathKind::Missing => Err("no such file".to_string()),
        PathKind::NotAFile(what) => Err(format!("{what}, not a database file")),
        PathKind::Unreadable(e) => Err(format!("cannot look at it: {e}")),
    };
    let size = match not_a_file {
        Ok(size) => size,
        Err(why) => {
            d.push(row("file", Status::Critical, path, why.clone()));
            d.findings.not_a_database = Some(why.clone());
            return d.finish(&why);
        }
    };
    let canonical = std::fs::canonicalize(given).unwrap_or_else(|_| given.to_path_buf());
    d.push(row("file", Status::Ok, canonical.to_string_lossy().as_ref(), "a regular file"));
    if size == 0 {
        let why = "the file is empty (SQLite reads an empty file as a new database; if it held one, restore a backup)";
        d.push(row("size", Status::Warning, 0, why));
        d.findings.not_a_database = Some(why.into());
        return d.finish("the file is empty");
    }
    d.push(row("size", Status::Ok, size as i64, "bytes"));
    run_from_header(d, &canonical, size)
}

/// Reads the header through a read-only connection (never a descriptor of vigil's own: see [`open`]).
fn read_header(path: &Path) -> Result<(crate::sqlite::OwnedDb, [u8; HEADER_BYTES])> {
    let probe = crate::sqlite::OwnedDb::open(
        &crate::sqlite::file_uri(path, "mode=ro"),
        crate::sqlite::open_flags::READ_ONLY | crate::sqlite::open_flags::URI,
        None,
    )?;
    let mut bytes = [0u8; HEADER_BYTES];
    let db = probe.db();
    let file = db.database_file("main")?.ok_or_else(|| Error::new("SQLite did not open the file"))?;
    file.read_at(&mut bytes, 0)?;
    Ok((probe, bytes))
}

fn run_from_header(mut d: Diagnosis, path: &Path, size: u64) -> Vec<Row> {
    let (probe, bytes) = match read_header(path) {
        Ok(read) => read,
        Err(e) => {
            let why = format!("cannot read it: {}", e.message());
            d.push(row("header", Status::Critical, Value::Null, why.clone()));
            d.findings.not_a_database = Some(why.clone());
            return d.finish(&why);
        }
    };
    let fields = DatabaseHeader::as_stored(&bytes);
    checks::page_aligned(&mut d, &fields, size);
    // Asked only of a file without the magic string (the survey opens the file again later).
    let pages_say_sqlite =
        !fields.magic && crate::format::pages::FilePages::open(path).is_ok_and(|p| p.looks_like_database);
    if checks::header(&mut d, &fields, size, pages_say_sqlite) {
        return d.finish("not an SQLite database");
    }
    if let Some(why) = open::planted_sidecar(path) {
        d.push(row("open", Status::Critical, Value::Null, why.clone()));
        d.findings.file_damage.push(why.clone());
        checks::damaged_pages(&mut d, path, &[]);
        return d.finish(&why);
    }
    let opened = open::open_safely(path, fields.wal, &probe);
    checks::journal(&mut d, path, opened.as_ref().ok());
    checks::wal(&mut d, path);
    let opened = match opened {
        Ok(opened) => opened,
        Err(e) if checks::is_locked(&e) => {
            let why = format!(
                "{}: another connection held a write lock for over 5 s; try again when it is done",
                e.message()
            );
            d.push(row("open", Status::Warning, Value::Null, why));
            d.findings.locked = true;
            return d.finish("the database is locked");
        }
        Err(e) => {
            let why = format!("SQLite cannot open it: {}", e.message());
            d.push(row("open", Status::Critical, Value::Null, why.clone()));
            d.findings.file_damage.push("SQLite cannot open it".into());
            checks::damaged_pages(&mut d, path, &[]);
            return d.finish(&why);
        }
    };
    drop(probe);
    // A private copy is how the file was read, not a finding: the journal row warns of a hot journal.
    let status = if matches!(opened.how, open::How::Copy(_)) { Status::Info } else { Status::Ok };
    d.push(row("open", status, how_name(&opened.how), opened.describe()));
    checks::database(&mut d, opened.conn.db(), path);
    d.end()
}

fn how_name(how: &open::How) -> &'static str {
    match how {
        open::How::ReadOnly => "read-only",
        open::How::ReadOnlyShm => "read-only, read-only -shm",
        open::How::Immutable => "immutable",
        open::How::Copy(_) => "private copy",
    }
}

/// `SELECT * FROM diagnose(path)`.
pub struct Diagnose;

impl TableFunction for Diagnose {
    const NAME: &'static str = "diagnose";
    const COLUMNS: &'static [&'static str] = &["step", "status", "value", "detail"];
    const ARGS: &'static [&'static str] = &["path"];

    fn rows(_db: Db, args: &[Value]) -> Result<Vec<Vec<Value>>> {
        let path = match args.first() {
            Some(Value::Text(path)) if !path.is_empty() => PathBuf::from(path),
            Some(other) => {
                return Err(Error::new(format!(
                    "bad arguments: the path must be a file name (text), not {}: SELECT * FROM diagnose('app.db')",
                    crate::error::describe(other)
                )))
            }
            None => return Err(Error::new("bad arguments: name the database file: SELECT * FROM diagnose('app.db')")),
        };
        Ok(diagnose(&path.to_string_lossy())
            .into_iter()
            .map(|r| vec![Value::from(r.step), Value::from(r.status.as_str()), r.value, Value::from(r.detail)])
            .collect())
    }
}
