//! Where a restore cuts the journal: the instant a user names (RFC 3339 text, unix seconds, `{"seq": N}`) and
//! the position of the commit order it becomes.
//!
//! A transaction's instant is the time of its last change. The cut at T keeps the longest prefix of the
//! commit order whose transactions all ran at or before T: rows carry their statement's time, so the cut
//! falls before the first row later than T, moved back to the start of that row's transaction when the
//! transaction is known. Between two rows of writers that never loaded vigil the transaction is not known:
//! the cut is then exact for statements only, and the result says so (`consistency`).

use serde_json::{json, Value as Json};

use crate::error::{Error, Result};
use crate::sqlite::{Db, Value};
use crate::store::pit::{self as store, op, LOG};

/// What the user asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum Instant {
    /// A time, as a Julian day number (the journal's `at`).
    Time { julian: f64, text: String },
    /// Everything up to and including this journal row.
    Seq(i64),
}

/// Parses `instant`: RFC 3339 text (any offset), unix seconds (a number), or `'{"seq": N}'`.
pub fn parse(db: Db, instant: &Value) -> Result<Instant> {
    let example = "'2026-12-01T14:03:27.250Z', 1764598407.25 (unix seconds) or '{\"seq\": 1200}'";
    match instant {
        Value::Integer(_) | Value::Real(_) => {
            let seconds = instant.as_f64().unwrap_or(f64::NAN);
            if !seconds.is_finite() || !(0.0..=253_402_300_799.0).contains(&seconds) {
                return Err(Error::new(format!("the instant {seconds} is not a unix time in seconds; use {example}")));
            }
            let text = db.query_value("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', ?1, 'unixepoch')", &[seconds.into()])?;
            Ok(Instant::Time { julian: seconds / 86400.0 + 2_440_587.5, text: text.as_str().unwrap_or("").into() })
        }
        Value::Text(text) if text.trim_start().starts_with('{') => parse_seq(text, example),
        Value::Text(text) if looks_like_rfc3339(text) => {
            let julian = db.query_value("SELECT julianday(?1)", &[text.as_str().into()])?;
            match julian.as_f64() {
                Some(julian) => Ok(Instant::Time { julian, text: text.clone() }),
                None => Err(Error::new(format!("{} is not a valid time; use {example}", crate::error::quoted(text)))),
            }
        }
        other => Err(Error::new(format!("the instant must be {example}, not {}", crate::error::describe(other)))),
    }
}

fn looks_like_rfc3339(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() >= 10 && bytes[..4].iter().all(u8::is_ascii_digit) && bytes[4] == b'-'
}

fn parse_seq(text: &str, example: &str) -> Result<Instant> {
    let json: Json = serde_json::from_str(text)
        .map_err(|_| Error::new(format!("{} is not valid JSON; use {example}", crate::error::quoted(text))))?;
    match json.as_object().map(|o| (o.len(), o.get("seq").and_then(Json::as_i64))) {
        Some((1, Some(seq))) if seq >= 0 => Ok(Instant::Seq(seq)),
        _ => Err(Error::new(format!("{} is not an instant; use {example}", crate::error::quoted(text)))),
    }
}

/// A position in the commit order: the journal rows up to `seq` are in, the rest out.
#[derive(Clone, Debug, PartialEq)]
pub struct Cut {
    pub seq: i64,
    /// Time of the last change kept (Julian day), `None` when the cut keeps no change.
    pub at: Option<f64>,
    /// "transaction": the cut is a transaction boundary; "statement": between two statements of writers
    /// that never loaded vigil, which may have been one transaction; "row": between two rows of such writers
    /// written in the same millisecond, which may have been one statement (only a `{"seq"}` cut lands there).
    pub consistency: &'static str,
    /// Set when a `{"seq"}` inside a known transaction was moved back to its start.
    pub moved_from: Option<i64>,
}

impl Cut {
    pub fn to_json(&self, db: Db) -> Json {
        json!({"seq": self.seq, "at": self.at.map(|a| rfc3339(db, a)), "consistency": self.consistency,
               "moved_from": self.moved_from})
    }
}

/// Formats a Julian day as RFC 3339 UTC with milliseconds.
/// Computed in Rust for the calendar years (no statement to run, so it works also after an interrupt).
pub fn rfc3339(db: Db, julian: f64) -> String {
    super::marks::at_text(db, &Value::Real(julian)).as_str().map(str::to_string).unwrap_or_default()
}

/// One journal row's position facts.
#[derive(Clone, Copy)]
struct Row {
    seq: i64,
    txn: Option<i64>,
    op: i64,
    at: Option<f64>,
}

fn row_at(db: Db, sql: &str, param: Value) -> Result<Option<Row>> {
    let rows = db.query(&format!("SELECT seq, txn, op, at FROM main.{LOG} {sql}"), &[param])?;
    Ok(rows.first().map(|r| Row {
        seq: r[0].as_i64().unwrap_or(0),
        txn: r[1].as_i64(),
        op: r[2].as_i64().unwrap_or(0),
        at: r[3].as_f64(),
    }))
}

/// Where `instant` cuts the journal of `db`. `strict` moves a statement-level cut back to the last exact one.
pub fn locate(db: Db, instant: &Instant, strict: bool) -> Result<Cut> {
    let last = store::last_seq(db)?;
    let (seq, moved_from) = match instant {
        Instant::Seq(seq) if *seq > last => {
            return Err(Error::new(format!("the journal ends at seq {last}; {{\"seq\": {seq}}} is not in it yet")));
        }
        Instant::Seq(seq) => {
            let start = transaction_start(db, *seq)?;
            (start, (start != *seq).then_some(*seq))
        }
        Instant::Time { julian, .. } => {
            let first_later = first_row_after(db, *julian)?;
            match first_later {
                None => (last, None),
                Some(row) => (transaction_start(db, row.seq - 1)?, None),
            }
        }
    };
    let mut cut = seq;
    let mut consistency = boundary(db, cut)?;
    if strict {
        while consistency != "transaction" && cut > 0 {
            cut = row_at(db, "WHERE seq < ?1 ORDER BY seq DESC LIMIT 1", cut.into())?.map_or(0, |r| r.seq);
            consistency = boundary(db, cut)?;
        }
    }
    let at =
        db.query_value(&format!("SELECT at FROM main.{LOG} WHERE seq <= ?1 ORDER BY seq DESC LIMIT 1"), &[cut.into()])?;
    Ok(Cut { seq: cut, at: at.as_f64(), consistency, moved_from })
}

/// The first journal row (in commit order) written after the time `julian`. The time marks (see
/// `pit::marks`) rule out the blocks of rows that are all earlier, so a long journal is not read from its
/// start; a block is skipped only when it cannot hold such a row, so a clock that stepped back changes nothing.
fn first_row_after(db: Db, julian: f64) -> Result<Option<Row>> {
    let bound = super::marks::AtBound { op: ">=", text: rfc3339(db, julian) };
    for (from, to) in super::marks::seq_ranges(db, &[bound])? {
        let found = db.query(
            &format!(
                "SELECT seq, txn, op, at FROM main.{LOG} WHERE seq BETWEEN ?1 AND ?2 AND at > ?3 ORDER BY seq LIMIT 1"
            ),
            &[from.into(), to.into(), julian.into()],
        )?;
        if let Some(r) = found.first() {
            return Ok(Some(Row {
                seq: r[0].as_i64().unwrap_or(0),
                txn: r[1].as_i64(),
                op: r[2].as_i64().unwrap_or(0),
                at: r[3].as_f64(),
            }));
        }
    }
    Ok(None)
}

/// The cut that keeps everything up to `seq`, moved back to the start of a known transaction `seq + 1`
/// belongs to, so a transaction is never split.
fn transaction_start(db: Db, seq: i64) -> Result<i64> {
    match row_at(db, "WHERE seq > ?1 ORDER BY seq LIMIT 1", seq.into())? {
        Some(Row { txn: Some(txn), .. }) if txn <= seq => Ok(txn - 1),
        _ => Ok(seq),
    }
}

/// Whether the cut after `seq` is a transaction boundary.
fn boundary(db: Db, seq: i64) -> Result<&'static str> {
    let before = row_at(db, "WHERE seq <= ?1 ORDER BY seq DESC LIMIT 1", seq.into())?;
    let after = row_at(db, "WHERE seq > ?1 ORDER BY seq LIMIT 1", seq.into())?;
    Ok(match (before, after) {
        (None, _) | (_, None) => "transaction",
        (Some(b), _) if b.txn.is_some() || b.op == op::TICK || b.op == op::SCHEMA => "transaction",
        (_, Some(a)) if a.txn == Some(a.seq) || a.op == op::TICK || a.op == op::SCHEMA => "transaction",
        // Rows of one statement share its time: a cut between two rows of the same time may split one.
        (Some(b), Some(a)) if b.at == a.at => "row",
        _ => "statement",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seq_instant_is_a_json_object_with_one_non_negative_seq() {
        assert_eq!(parse_seq("{\"seq\": 12}", "").unwrap(), Instant::Seq(12));
        assert!(parse_seq("{\"seq\": -1}", "").is_err());
        assert!(parse_seq("{\"seq\": 1, \"x\": 2}", "").is_err());
        assert!(parse_seq("{\"txn\": 1}", "").is_err());
        assert!(parse_seq("{", "").is_err());
    }

    #[test]
    fn only_date_shaped_text_is_taken_for_a_time() {
        assert!(looks_like_rfc3339("2026-12-01T14:03:27.250Z"));
        assert!(!looks_like_rfc3339("now"));
        assert!(!looks_like_rfc3339("12-01-2026"));
    }
}
