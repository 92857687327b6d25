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

/// The seq range `[from, to]` outside of which no row can satisfy every bound, from the summary.
pub fn seq_range(db: Db, bounds: &[AtBound]) -> Result<(i64, i64)> {
    let mut range = (i64::MIN, i64::MAX);
    if bounds.is_empty() || !crate::store::has_table(db, "main", MARKS)? {
        return Ok(range);
    }
    let done = store::meta(db, "marks_seq")?.as_i64().unwrap_or(0);
    let tail = store::last_seq(db)? > done;
    let at = |column: &str| format!("strftime('{AT_FORMAT}', {column})");
    for bound in bounds {
        let value = Value::from(bound.text.as_str());
        let op = bound.op;
        // Rows after a lower bound: skip the leading blocks whose greatest `at` is below it.
        if matches!(op, ">" | ">=" | "=") {
            let cmp = if op == ">" { ">" } else { ">=" };
            let first = db.query_value(
                &format!("SELECT min(block) FROM main.{MARKS} WHERE hi IS NULL OR {} {cmp} ?1", at("hi")),
                &[value.clone()],
            )?;
            // Block 0 also holds any seq below 1 (only a hand-written row could have one).
            let from = first.as_i64().map_or(done + 1, |b| if b <= 0 { i64::MIN } else { b * BLOCK });
            range.0 = range.0.max(from);
        }
        // Rows before an upper bound: the trailing blocks whose least `at` is above it, when no tail follows.
        if matches!(op, "<" | "<=" | "=") && !tail {
            let cmp = if op == "<" { "<" } else { "<=" };
            let last = db.query_value(
                &format!("SELECT max(block) FROM main.{MARKS} WHERE lo IS NULL OR {} {cmp} ?1", at("lo")),
                &[value],
            )?;
            let to = last.as_i64().map_or(i64::MIN, |b| (b + 1) * BLOCK - 1);
            range.1 = range.1.min(to);
        }
    }
    Ok(range)
}
