//! Time marks: what lets `pit_journal` answer `WHERE at > …` without reading the whole journal, exactly.
//!
//! The journal is keyed by seq and has no index on `at` (one would cost every write). `at` grows with seq
//! except when a writer's clock steps back, so a binary search over seq alone could miss rows written before
//! a step-back. Instead, `vigil_pit_marks` summarizes the journal in blocks of [`BLOCK`] consecutive seqs:
//! the least and greatest `at` of the block's rows (NULL when a row's `at` is not a number). A reader skips a
//! block only when its summary proves that no row of it can match, so clock steps cost reading a few more
//! blocks, never a missed row.
//!
//! The summary covers the rows up to `marks_seq` (in `vigil_pit_meta`); rows after it (the tail) are read.
//! `pit_tick()` extends it, so `vigil pit tick --every 1s` keeps the tail to the last second. It stays
//! exact as the journal changes: rows only come after the greatest seq ever used (AUTOINCREMENT), and rows
//! removed (pruning, a restore's cut) only make a block's summary wider than its rows, which costs reading,
//! never a row.

use crate::error::Result;
use crate::sqlite::{Db, Value};
use crate::store::pit::{self as store, LOG};

pub const MARKS: &str = "vigil_pit_marks";

/// Seqs per summarized block: 10 million journal rows make ~2 500 marks (a few pages), read in well under a
/// millisecond, and a block of rows is read in about one.
pub const BLOCK: i64 = 4096;

/// `strftime` format of the journal's `at` as pit_journal shows it (RFC 3339 UTC with milliseconds).
pub const AT_FORMAT: &str = "%Y-%m-%dT%H:%M:%fZ";

/// Extends the summary to the journal's last row. Cheap: reads only the rows since the last call (and the
/// rest of the last block).
pub fn update(db: Db) -> Result<()> {
    if !store::exists(db)? {
        return Ok(());
    }
    db.in_savepoint("vigil_pit_marks", || {
        db.exec(&format!("CREATE TABLE IF NOT EXISTS main.{MARKS}(block INTEGER PRIMARY KEY, lo, hi)"))?;
        let done = store::meta(db, "marks_seq")?.as_i64().unwrap_or(0);
        let last = store::last_seq(db)?;
        if last <= done {
            return Ok(());
        }
        let numeric = "count(*) = sum(typeof(at) IN ('real', 'integer'))";
        db.query(
            &format!(
                "INSERT OR REPLACE INTO main.{MARKS}(block, lo, hi)
                 SELECT seq / {BLOCK}, CASE WHEN {numeric} THEN min(at) END, CASE WHEN {numeric} THEN max(at) END
                 FROM main.{LOG} WHERE seq >= ?1 AND seq <= ?2 GROUP BY seq / {BLOCK}"
            ),
            &[Value::Integer(done / BLOCK * BLOCK), Value::Integer(last)],
        )?;
        store::set_meta(db, "marks_seq", Value::Integer(last))
    })
}

/// A bound on the formatted `at`: the comparison and the text compared with (BINARY collation).
#[derive(Clone, Debug)]
pub struct AtBound {
    pub op: &'static str,
    pub text: String,
}

/// The seq ranges, in order, outside of which no row can satisfy every bound: the blocks whose summary allows
/// a match, and the rows after the summary.
pub fn seq_ranges(db: Db, bounds: &[AtBound]) -> Result<Vec<(i64, i64)>> {
    let everything = vec![(i64::MIN, i64::MAX)];
    if bounds.is_empty() || !crate::store::has_table(db, "main", MARKS)? {
        return Ok(everything);
    }
    let done = store::meta(db, "marks_seq")?.as_i64().unwrap_or(0);
    let at = |column: &str| format!("strftime('{AT_FORMAT}', {column})");
    let mut conditions = Vec::new();
    for (i, bound) in bounds.iter().enumerate() {
        // A block may hold a row after a lower bound only if its latest `at` is after it; before an upper
        // bound only if its earliest is before it. Formatting keeps the order of the Julian days.
        let (column, op) = match bound.op {
            ">" => ("hi", ">"),
            ">=" => ("hi", ">="),
            "<" => ("lo", "<"),
            "<=" => ("lo", "<="),
            _ => ("hi", ">="),
        };
        conditions.push(format!("({column} IS NULL OR {} {op} ?{})", at(column), i + 1));
        if bound.op == "=" {
            conditions.push(format!("(lo IS NULL OR {} <= ?{})", at("lo"), i + 1));
        }
    }
    let values: Vec<Value> = bounds.iter().map(|b| Value::from(b.text.as_str())).collect();
    let blocks = db
        .query(&format!("SELECT block FROM main.{MARKS} WHERE {} ORDER BY block", conditions.join(" AND ")), &values)?;
    let mut ranges: Vec<(i64, i64)> = Vec::new();
    let candidates = blocks
        .iter()
        .filter_map(|r| r[0].as_i64())
        // Block 0 also holds any seq below 1 (only a hand-written row could have one).
        .map(|b| (if b <= 0 { i64::MIN } else { b * BLOCK }, (b + 1) * BLOCK - 1))
        .chain([(done.saturating_add(1), i64::MAX)]);
    for (from, to) in candidates {
        match ranges.last_mut() {
            Some(last) if from <= last.1.saturating_add(1) => last.1 = last.1.max(to),
            _ => ranges.push((from, to)),
        }
    }
    Ok(ranges)
}
