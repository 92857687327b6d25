//! `pit_journal`: the journal as a table, one row per journal row, read lazily in seq order.
//!
//! Images come out as JSON objects by column name of the epoch that wrote them, with export_to's value
//! conventions (BLOB as `{"$blob": "hex"}`, ±Inf as strings). Pushed down: `seq` ranges (the log's key),
//! `txn =` (a transaction's rows start at its id and follow each other), `"table" =` (the table's epochs,
//! compared under the query's collation) and `at` ranges through the time marks (see [`super::marks`]).
//! SQLite checks every constraint again on what comes back, so a pushdown may return more rows, never fewer.
//!
//! Repeated deletes are dropped: journals written before the capture journaled a REPLACE's delete once under
//! recursive_triggers hold it twice (its delete trigger, then the REPLACE probe's flush). A delete of a key
//! that the same statement already deleted, with no insert or update since, is such a repeat: a row cannot be
//! deleted twice, so the rule never hides a real delete.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};

use serde_json::{json, Value as Json};

use super::marks::{self, AtBound};
use super::shape::{KeyKind, Shape};
use super::tracking;
use crate::backup::export::json_value;
use crate::error::{Error, Result};
use crate::sqlite::{Db, Statement, Value};
use crate::store::pit::{self as store, op, LOG, TABLES};
use crate::store::quote;
use crate::vtab::{Constraint, Op, Plan, Scan, StreamTable};

pub struct PitJournal;

/// Output columns, in order; `at` is text so that it compares as the RFC 3339 text users write.
const COLUMNS: &[&str] = &[
    "seq INTEGER",
    "txn INTEGER",
    "at TEXT",
    "\"table\" TEXT",
    "op TEXT",
    "key TEXT",
    "old TEXT",
    "new TEXT",
    "txn_exact INTEGER",
    "detail TEXT",
];

mod col {
    pub const SEQ: i32 = 0;
    pub const TXN: i32 = 1;
    pub const AT: i32 = 2;
    pub const TABLE: i32 = 3;
}

/// Columns of the scan statement ([`select_list`]), then the image slots.
mod read {
    pub const SEQ: usize = 0;
    pub const TXN: usize = 1;
    pub const AT: usize = 2;
    pub const TBL: usize = 3;
    pub const OP: usize = 4;
    pub const RID: usize = 5;
    pub const RID_NEW: usize = 6;
    pub const NMASK: usize = 7;
    pub const FIRST_SLOT: usize = 8;
}

/// Deletes remembered per statement for the repeat rule; beyond this a repeat is shown rather than memory
/// spent (a repeat is shown, a real delete is never dropped).
const DEDUP_LIMIT: usize = 100_000;

impl StreamTable for PitJournal {
    const NAME: &'static str = "pit_journal";
    const COLUMNS: &'static [&'static str] = COLUMNS;
    type Scan = JournalScan;

    fn plan(constraints: &[Constraint], order_by: &[(i32, bool)]) -> Plan {
        plan(constraints, order_by)
    }

    fn scan(db: Db, plan: &str, values: &[Value], previous: Option<JournalScan>) -> Result<JournalScan> {
        JournalScan::start(db, plan, values, previous)
    }

    fn disconnect(db: Db) {
        last_scans().remove(&(db.raw() as usize));
    }
}

fn op_text(op: Op) -> Option<&'static str> {
    match op {
        Op::Eq => Some("="),
        Op::Gt => Some(">"),
        Op::Ge => Some(">="),
        Op::Lt => Some("<"),
        Op::Le => Some("<="),
        Op::Other => None,
    }
}

/// The plan text is a JSON array of `[column, op]` (`[column, op, collation]` for "table"), in argument order.
fn plan(constraints: &[Constraint], order_by: &[(i32, bool)]) -> Plan {
    let mut plan = Plan::default();
    let mut terms: Vec<Json> = Vec::new();
    let mut rows = 1_000_000.0_f64;
    for (n, c) in constraints.iter().enumerate() {
        let Some(op) = op_text(c.op).filter(|_| c.usable) else { continue };
        let term = match c.column {
            -1 | col::SEQ => {
                plan.unique |= c.op == Op::Eq;
                rows = if c.op == Op::Eq { 1.0 } else { rows / 4.0 };
                json!(["seq", op])
            }
            col::TXN if c.op == Op::Eq => {
                rows = rows.min(20.0);
                json!(["txn", op])
            }
            // Only BINARY: the time marks order `at` as bytes.
            col::AT if c.collation.eq_ignore_ascii_case("BINARY") => {
                rows /= 8.0;
                json!(["at", op])
            }
            // Exact: the rows read are those whose table name equals the value as SQLite compares them.
            col::TABLE if c.op == Op::Eq => {
                rows /= 3.0;
                plan.exact.push(n);
                json!(["table", op, c.collation])
            }
            _ => continue,
        };
        plan.uses.push(n);
        terms.push(term);
    }
    plan.text = Json::Array(terms).to_string();
    plan.rows = rows.max(1.0) as i64;
    plan.cost = rows.max(1.0);
    plan.ordered = matches!(order_by, [(-1 | col::SEQ, false)]);
    plan
}

/// What the constraints allow, before reading.
struct Filters {
    from: i64,
    to: i64,
    txn: Option<i64>,
    tbls: Option<Vec<i64>>,
    at: Vec<AtBound>,
    /// The seq ranges to read, in order: `from..=to` less the blocks the time marks rule out.
    ranges: Vec<(i64, i64)>,
    /// No row can match (a NULL compared, a range that closed).
    none: bool,
}

impl Filters {
    fn new() -> Filters {
        Filters { from: i64::MIN, to: i64::MAX, txn: None, tbls: None, at: Vec::new(), ranges: Vec::new(), none: false }
    }

    fn at_least(&mut self, seq: i64) {
        self.from = self.from.max(seq);
    }

    fn at_most(&mut self, seq: i64) {
        self.to = self.to.min(seq);
    }

    /// `seq <op> value`. Text and BLOB values are left to SQLite (which may convert them): no bound.
    fn seq(&mut self, op: &str, value: &Value) {
        match value {
            Value::Null => self.none = true,
            Value::Integer(i) => match op {
                "=" => {
                    self.at_least(*i);
                    self.at_most(*i)
                }
                ">" => match i.checked_add(1) {
                    Some(next) => self.at_least(next),
                    None => self.none = true,
                },
                ">=" => self.at_least(*i),
                "<" => match i.checked_sub(1) {
                    Some(previous) => self.at_most(previous),
                    None => self.none = true,
                },
                _ => self.at_most(*i),
            },
            // Saturating conversions: a bound beyond the i64 range keeps every seq on its side.
            Value::Real(r) => match op {
                "=" if r.fract() != 0.0 => self.none = true,
                "=" => {
                    self.at_least(*r as i64);
                    self.at_most(*r as i64)
                }
                ">" => self.at_least((r.floor() as i64).saturating_add(1)),
                ">=" => self.at_least(r.ceil() as i64),
                "<" => self.at_most((r.ceil() as i64).saturating_sub(1)),
                _ => self.at_most(r.floor() as i64),
            },
            Value::Text(_) | Value::RawText(_) | Value::Blob(_) => {}
        }
    }

    /// `txn = value`: the transaction's rows start at its id (the seq of its first row).
    fn txn(&mut self, value: &Value) {
        match value {
            Value::Integer(i) => {
                self.txn = Some(*i);
                self.at_least(*i);
            }
            Value::Real(r) if r.fract() == 0.0 => self.txn(&Value::Integer(*r as i64)),
            Value::Null | Value::Real(_) => self.none = true,
            Value::Text(_) | Value::RawText(_) | Value::Blob(_) => {}
        }
    }

    /// `at <op> value`: only text is pushed down (a number compares as text under SQLite's rules).
    fn at(&mut self, op: &'static str, value: &Value) {
        match value {
            Value::Null => self.none = true,
            Value::Text(text) => self.at.push(AtBound { op, text: text.clone() }),
            _ => {}
        }
    }

    /// `"table" = value` under `collation`: the epochs of that name; rows of an epoch follow its first seq.
    fn table(&mut self, db: Db, value: &Value, collation: &str) -> Result<()> {
        if value.is_null() {
            self.none = true;
            return Ok(());
        }
        let rows = db.query(
            &format!("SELECT tbl, first_seq FROM main.{TABLES} WHERE name = ?1 COLLATE {}", quote(collation)),
            std::slice::from_ref(value),
        )?;
        let ids: Vec<i64> = rows.iter().filter_map(|r| r[0].as_i64()).collect();
        match rows.iter().filter_map(|r| r[1].as_i64()).min() {
            Some(first) => self.at_least(first),
            None => self.none = true,
        }
        self.tbls = Some(ids);
        Ok(())
    }
}

fn op_of(text: &str) -> Option<&'static str> {
    ["=", ">", ">=", "<", "<="].into_iter().find(|o| *o == text)
}

fn filters(db: Db, plan: &str, values: &[Value]) -> Result<Filters> {
    let terms: Vec<Vec<String>> =
        serde_json::from_str(plan).map_err(|_| Error::new(format!("bad plan {}", crate::error::quoted(plan))))?;
    let mut f = Filters::new();
    for (term, value) in terms.iter().zip(values) {
        let op = term.get(1).and_then(|o| op_of(o)).unwrap_or("=");
        match term.first().map(String::as_str) {
            Some("seq") => f.seq(op, value),
            Some("txn") => f.txn(value),
            Some("at") => f.at(op, value),
            Some("table") => f.table(db, value, term.get(2).map_or("BINARY", String::as_str))?,
            _ => {}
        }
    }
    f.none |= f.from > f.to;
    if !f.none {
        f.ranges = marks::seq_ranges(db, &f.at)?
            .into_iter()
            .map(|(from, to)| (from.max(f.from), to.min(f.to)))
            .filter(|(from, to)| from <= to)
            .collect();
        f.none = f.ranges.is_empty();
    }
    Ok(f)
}

/// What the last pit_journal scan of each connection read, for vigil_debug(): evidence that a pushdown
/// reads a part of the journal only.
fn last_scans() -> std::sync::MutexGuard<'static, HashMap<usize, Json>> {
    static SCANS: OnceLock<Mutex<HashMap<usize, Json>>> = OnceLock::new();
    SCANS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

/// The last pit_journal scan on this connection: its plan, seq range and the journal rows it read.
pub fn last_scan(db: Db) -> Json {
    last_scans().get(&(db.raw() as usize)).cloned().unwrap_or(Json::Null)
}

/// The repeat-delete rule, per statement (rows of equal `at` and `txn`).
#[derive(Default)]
struct Dedup {
    group: Option<(Value, Value)>,
    deleted: HashSet<(i64, Vec<u8>)>,
}

impl Dedup {
    /// Whether to show the row; remembers deletes, forgets them at any insert or update.
    fn keep(&mut self, group: (Value, Value), tbl: i64, operation: i64, key: &[u8]) -> bool {
        if self.group.as_ref() != Some(&group) {
            self.group = Some(group);
            self.deleted.clear();
        }
        match operation {
            op::DELETE if self.deleted.contains(&(tbl, key.to_vec())) => false,
            op::DELETE => {
                if self.deleted.len() < DEDUP_LIMIT {
                    self.deleted.insert((tbl, key.to_vec()));
                }
                true
            }
            op::INSERT | op::UPDATE => {
                self.deleted.clear();
                true
            }
            _ => true,
        }
    }
}

/// What a cursor keeps from one scan to the next, while the schema stays the same: a join filters the same
/// cursor once per outer row.
struct Prepared {
    version: Value,
    /// Whether the database has a journal.
    journal: bool,
    epochs: HashMap<i64, Shape>,
    select: String,
    /// The last scan statement and its SQL.
    stmt: Option<(String, Statement<'static>)>,
}

impl Prepared {
    fn load(db: Db, version: Value) -> Result<Prepared> {
        let journal = store::exists(db)? && crate::store::has_table(db, "main", TABLES)?;
        let (epochs, select) = match journal {
            true => (tracking::all_epochs(db)?.into_iter().map(|e| (e.tbl, e.shape)).collect(), select_list_of(db)?),
            false => (HashMap::new(), String::new()),
        };
        Ok(Prepared { version, journal, epochs, select, stmt: None })
    }

    /// The scan statement for `f`, prepared again only when its SQL differs from the last one.
    fn statement(&mut self, db: Db, f: &Filters) -> Result<()> {
        let sql = scan_sql(&self.select, f);
        match &mut self.stmt {
            Some((last, stmt)) if *last == sql => stmt.reset(),
            _ => self.stmt = Some((sql.clone(), db.prepare_for_cursor(&sql)?)),
        }
        Ok(())
    }
}

pub struct JournalScan {
    db: Db,
    prepared: Prepared,
    /// Whether the statement is positioned on a row to show; columns are rendered from it on demand.
    running: bool,
    txn: Option<i64>,
    /// Seq ranges still to read after the current one.
    ranges: std::collections::VecDeque<(i64, i64)>,
    dedup: Dedup,
    started: bool,
    rows_read: u64,
    stats: Json,
}

impl JournalScan {
    fn start(db: Db, plan: &str, values: &[Value], previous: Option<JournalScan>) -> Result<JournalScan> {
        let version = db.query_value("PRAGMA main.schema_version", &[])?;
        let prepared = match previous.map(|p| p.into_prepared()) {
            Some(prepared) if prepared.version == version => prepared,
            _ => Prepared::load(db, version)?,
        };
        let mut scan = JournalScan {
            db,
            prepared,
            running: false,
            txn: None,
            ranges: Default::default(),
            dedup: Dedup::default(),
            started: false,
            rows_read: 0,
            stats: json!({"plan": plan}),
        };
        if !scan.prepared.journal {
            scan.publish();
            return Ok(scan);
        }
        let f = filters(db, plan, values)?;
        scan.stats["from"] = json!(f.ranges.first().map(|r| r.0));
        scan.stats["to"] = json!(f.ranges.last().map(|r| r.1));
        scan.stats["ranges"] = json!(f.ranges.len());
        if f.none {
            scan.publish();
            return Ok(scan);
        }
        scan.txn = f.txn;
        scan.prepared.statement(db, &f)?;
        scan.running = true;
        scan.ranges = f.ranges.into_iter().collect();
        scan.next_range()?;
        scan.advance()?;
        Ok(scan)
    }

    fn publish(&mut self) {
        self.stats["rows_read"] = json!(self.rows_read);
        last_scans().insert(self.db.raw() as usize, self.stats.clone());
    }

    /// Steps to the next row to show.
    fn advance(&mut self) -> Result<()> {
        loop {
            let Some((_, stmt)) = self.prepared.stmt.as_mut().filter(|_| self.running) else { return Ok(()) };
            if !stmt.step()? {
                if self.next_range()? {
                    continue;
                }
                return self.finish();
            }
            self.rows_read += 1;
            let txn = stmt.column(read::TXN);
            if self.txn.is_some() && txn.as_i64() != self.txn {
                // Rows of one transaction follow each other: the first row of another one ends it.
                return self.finish();
            }
            let row = Facts::of(stmt, &self.prepared.epochs);
            if !self.started && row.operation == op::DELETE {
                self.remember_earlier_deletes(&row)?;
            }
            self.started = true;
            if self.dedup.keep(row.group(), row.tbl, row.operation, &row.key) {
                return Ok(());
            }
        }
    }

    /// Points the statement at the next seq range; false when none is left.
    fn next_range(&mut self) -> Result<bool> {
        let (Some((_, stmt)), Some((from, to))) = (self.prepared.stmt.as_mut(), self.ranges.pop_front()) else {
            return Ok(false);
        };
        stmt.reset();
        stmt.bind(1, &Value::Integer(from))?;
        stmt.bind(2, &Value::Integer(to))?;
        Ok(true)
    }

    fn finish(&mut self) -> Result<()> {
        if let Some((_, stmt)) = self.prepared.stmt.as_mut() {
            stmt.reset();
        }
        self.running = false;
        self.publish();
        Ok(())
    }

    fn into_prepared(mut self) -> Prepared {
        if self.running {
            self.publish();
            self.running = false;
        }
        std::mem::replace(
            &mut self.prepared,
            Prepared {
                version: Value::Null,
                journal: false,
                epochs: HashMap::new(),
                select: String::new(),
                stmt: None,
            },
        )
    }

    /// A scan that starts inside a statement learns the deletes that statement made before its first row.
    fn remember_earlier_deletes(&mut self, first: &Facts) -> Result<()> {
        let mut stmt = self.db.prepare(&format!(
            "SELECT {} FROM main.{LOG} WHERE seq < ?1 ORDER BY seq DESC LIMIT {DEDUP_LIMIT}",
            self.prepared.select
        ))?;
        stmt.bind(1, &Value::Integer(first.seq))?;
        let mut earlier = Vec::new();
        while stmt.step()? {
            let row = Facts::of(&stmt, &self.prepared.epochs);
            if row.group() != first.group() || row.operation != op::DELETE {
                break;
            }
            earlier.push(row);
        }
        for row in earlier.into_iter().rev() {
            self.dedup.keep(row.group(), row.tbl, op::DELETE, &row.key);
        }
        Ok(())
    }
}

impl Drop for JournalScan {
    fn drop(&mut self) {
        if self.running {
            self.publish();
        }
    }
}

impl Scan for JournalScan {
    fn eof(&self) -> bool {
        !self.running
    }

    fn next(&mut self) -> Result<()> {
        self.advance()
    }

    fn column(&self, i: usize) -> Value {
        match &self.prepared.stmt {
            Some((_, stmt)) if self.running => column(stmt, &self.prepared.epochs, i),
            _ => Value::Null,
        }
    }

    fn rowid(&self) -> i64 {
        match &self.prepared.stmt {
            Some((_, stmt)) if self.running => stmt.column(read::SEQ).as_i64().unwrap_or(0),
            _ => 0,
        }
    }
}

/// `seq, txn, at, tbl, op, rid, rid_new, nmask, o1, n1, …`.
fn select_list(width: usize) -> String {
    let slots: String = (1..=width).map(|k| format!(", o{k}, n{k}")).collect();
    format!("seq, txn, at, tbl, op, rid, rid_new, nmask{slots}")
}

/// The select list for this journal: one begun before UPDATE images were masked has no `nmask` (its new
/// images are whole).
fn select_list_of(db: Db) -> Result<String> {
    let list = select_list(store::width(db)?);
    let masked =
        db.query_value(&format!("SELECT count(*) FROM pragma_table_info('{LOG}') WHERE name = 'nmask'"), &[])?;
    Ok(if masked.as_i64() == Some(1) { list } else { list.replace(", nmask", ", NULL AS nmask") })
}

/// The scan over one seq range at a time (bound by [`JournalScan::next_range`]), with the table filter.
fn scan_sql(select: &str, f: &Filters) -> String {
    let mut sql = format!("SELECT {select} FROM main.{LOG} WHERE seq >= ?1 AND seq <= ?2");
    if let Some(ids) = &f.tbls {
        let list: Vec<String> = ids.iter().map(i64::to_string).collect();
        sql.push_str(&format!(" AND tbl IN ({})", list.join(", ")));
    }
    sql.push_str(" ORDER BY seq");
    sql
}

/// What the repeat rule needs of a journal row: its statement (at, txn), table, operation and, for a
/// delete, its key.
struct Facts {
    seq: i64,
    at: Value,
    txn: Value,
    tbl: i64,
    operation: i64,
    /// A delete's key, byte for byte (the JSON `key` column replaces text that is not UTF-8).
    key: Vec<u8>,
}

impl Facts {
    fn of(stmt: &Statement, epochs: &HashMap<i64, Shape>) -> Facts {
        let tbl = stmt.column(read::TBL).as_i64();
        let operation = stmt.column(read::OP).as_i64().unwrap_or(0);
        let key = match tbl.and_then(|t| epochs.get(&t)) {
            Some(shape) if operation == op::DELETE => exact_key(stmt, shape),
            _ => Vec::new(),
        };
        Facts {
            seq: stmt.column(read::SEQ).as_i64().unwrap_or(0),
            at: stmt.column(read::AT),
            txn: stmt.column(read::TXN),
            tbl: tbl.unwrap_or(0),
            operation,
            key,
        }
    }

    fn group(&self) -> (Value, Value) {
        (self.at.clone(), self.txn.clone())
    }
}

fn op_name(operation: i64) -> String {
    match operation {
        op::INSERT => "insert".into(),
        op::UPDATE => "update".into(),
        op::DELETE => "delete".into(),
        op::SCHEMA => "schema".into(),
        op::TICK => "tick".into(),
        other => format!("op {other}"),
    }
}

/// Output column `i` of the row the statement is on.
fn column(stmt: &Statement, epochs: &HashMap<i64, Shape>, i: usize) -> Value {
    let operation = stmt.column(read::OP).as_i64().unwrap_or(0);
    let is_change = matches!(operation, op::INSERT | op::UPDATE | op::DELETE);
    let shape = stmt.column(read::TBL).as_i64().and_then(|t| epochs.get(&t));
    let change_shape = shape.filter(|_| is_change);
    let rid = stmt.column(read::RID).as_i64();
    match i {
        0 => stmt.column(read::SEQ),
        1 => stmt.column(read::TXN),
        2 => at_text(stmt),
        3 => Value::from(shape.map(|s| s.name.clone())),
        4 => Value::from(op_name(operation)),
        5 => Value::from(change_shape.map(|s| key(stmt, s, operation))),
        6 => Value::from(change_shape.filter(|_| operation != op::INSERT).map(|s| image(stmt, s, false, rid))),
        7 => {
            let rowid = stmt.column(read::RID_NEW).as_i64().or(rid);
            Value::from(change_shape.filter(|_| operation != op::DELETE).map(|s| image(stmt, s, true, rowid)))
        }
        8 => Value::Integer(i64::from(!stmt.column(read::TXN).is_null())),
        9 if !is_change => stmt.column(read::RID_NEW),
        _ => Value::Null,
    }
}

/// A value of the old or new image. An UPDATE's new image holds only the columns it changed (their bits are
/// set in `nmask`, NULL for wide tables, which journal every column): the others are as in the old image.
fn slot_value(stmt: &Statement, slot: usize, new: bool) -> Value {
    if slot == 0 {
        return Value::Null;
    }
    let unchanged = new
        && stmt.column(read::OP).as_i64() == Some(op::UPDATE)
        && stmt.column(read::NMASK).as_i64().is_some_and(|mask| (mask >> (slot - 1)) & 1 == 0);
    let i = read::FIRST_SLOT + (slot - 1) * 2 + usize::from(new && !unchanged);
    if i >= stmt.column_count() {
        return Value::Null;
    }
    stmt.column(i)
}

/// A deleted row's key as bytes that tell every stored value apart (storage class, then its bytes).
fn exact_key(stmt: &Statement, shape: &Shape) -> Vec<u8> {
    let values = match shape.key {
        KeyKind::PrimaryKey => shape.key_columns().iter().map(|c| slot_value(stmt, c.slot, false)).collect(),
        KeyKind::IntegerPk | KeyKind::Rowid => vec![stmt.column(read::RID)],
    };
    let mut bytes = Vec::new();
    for value in values {
        let (class, data): (u8, Vec<u8>) = match value {
            Value::Null => (0, Vec::new()),
            Value::Integer(i) => (1, i.to_be_bytes().to_vec()),
            Value::Real(r) => (2, r.to_bits().to_be_bytes().to_vec()),
            Value::Text(t) => (3, t.into_bytes()),
            Value::RawText(t) => (3, t),
            Value::Blob(b) => (4, b),
        };
        bytes.push(class);
        bytes.extend_from_slice(&(data.len() as u64).to_be_bytes());
        bytes.extend_from_slice(&data);
    }
    bytes
}

/// A JSON object written member by member, keys in the order given (serde_json's maps would sort them).
struct Object(String);

impl Object {
    fn new() -> Object {
        Object(String::from("{"))
    }

    fn add(&mut self, name: &str, value: &Value) {
        use std::fmt::Write;
        if self.0.len() > 1 {
            self.0.push(',');
        }
        let _ = write!(self.0, "{}:{}", Json::from(name), json_value(value));
    }

    fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// A row image; a table whose INTEGER PRIMARY KEY is the rowid gets that column from the rowid.
fn image(stmt: &Statement, shape: &Shape, new: bool, rowid: Option<i64>) -> String {
    let mut object = Object::new();
    if let Some(alias) = &shape.rowid_alias {
        object.add(alias, &Value::from(rowid));
    }
    for column in &shape.columns {
        object.add(&column.name, &slot_value(stmt, column.slot, new));
    }
    object.finish()
}

/// `{"rowid": n}` (`"new_rowid"` too when an update moved the row), or the PRIMARY KEY columns of a WITHOUT
/// ROWID table, from the image that has them.
fn key(stmt: &Statement, shape: &Shape, operation: i64) -> String {
    let mut object = Object::new();
    match shape.key {
        KeyKind::PrimaryKey => {
            let new = operation == op::INSERT;
            for column in shape.key_columns() {
                object.add(&column.name, &slot_value(stmt, column.slot, new));
            }
        }
        KeyKind::IntegerPk | KeyKind::Rowid => {
            object.add("rowid", &stmt.column(read::RID));
            if let Some(moved) = stmt.column(read::RID_NEW).as_i64().filter(|_| operation == op::UPDATE) {
                object.add("new_rowid", &Value::Integer(moved));
            }
        }
    }
    object.finish()
}

/// The row's `at` as text (see [`marks::at_text`]).
fn at_text(stmt: &Statement) -> Value {
    marks::at_text(stmt.db(), &stmt.column(read::AT))
}
