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
//! exact as the journal changes: within a lineage rows only come after the greatest seq ever used
//! (see `store::pit::next_seq`), and rows removed (pruning, a restore's cut) only make a block's summary wider than its
//! rows, which costs reading, never a row. A summary made in another lineage (`marks_lineage`: an in-place
//! restore forked the history, whose seqs may then be used again) is not used, and the next tick starts over.

use crate::error::Result;
use crate::sqlite::{Db, Value};
use crate::store::pit::{self as store, LOG, MARKS};

/// Seqs per summarized block: 10 million journal rows make ~2 500 marks (a few pages), read in well under a
/// millisecond, and a block of rows is read in about one.
pub const BLOCK: i64 = 4096;

/// `strftime` format of the journal's `at` as pit_journal shows it (RFC 3339 UTC with milliseconds).
pub const AT_FORMAT: &str = "%Y-%m-%dT%H:%M:%fZ";

/// Rows summarized per call at most, so that the first `pit_tick()` on a long journal stays short (a few
/// hundred milliseconds, holding the write lock); the next calls go on where it stopped.
const MAX_ROWS_PER_UPDATE: i64 = 1 << 18;

/// Extends the summary towards the journal's last row. Cheap: reads only the rows since the last call (and
/// the rest of the last block).
pub fn update(db: Db) -> Result<()> {
    if !store::exists(db)? {
        return Ok(());
    }
    db.in_savepoint("vigil_pit_marks", || {
        // Journals begun before the summary existed get it now (a schema change, once).
        store::create_marks(db)?;
        if !current(db)? {
            // Another history (an in-place restore forked the lineage): its seqs may be used again.
            db.exec(&format!("DELETE FROM main.{MARKS}"))?;
            store::set_meta(db, "marks_seq", Value::Integer(0))?;
            store::set_meta(db, "marks_lineage", store::meta(db, "lineage")?)?;
        }
        let done = store::meta(db, "marks_seq")?.as_i64().unwrap_or(0);
        let from = done / BLOCK * BLOCK;
        let stop = db.query_value(
            &format!("SELECT seq - 1 FROM main.{LOG} WHERE seq >= ?1 ORDER BY seq LIMIT 1 OFFSET ?2"),
            &[Value::Integer(from), Value::Integer(MAX_ROWS_PER_UPDATE)],
        )?;
        let last = stop.as_i64().map_or(store::last_seq(db)?, |s| s.max(done + 1));
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
            &[Value::Integer(from), Value::Integer(last)],
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

/// Whether the summary was made in this lineage of the journal.
fn current(db: Db) -> Result<bool> {
    Ok(store::meta(db, "marks_lineage")? == store::meta(db, "lineage")?)
}

/// Whether a block whose rows' `at` lie within [lo, hi] (as text; None: unknown) may hold a row satisfying
/// `bound`.
fn may_match(bound: &AtBound, lo: Option<&str>, hi: Option<&str>) -> bool {
    let v = bound.text.as_str();
    let after = |op: &str| hi.is_none_or(|hi| if op == ">" { hi > v } else { hi >= v });
    let before = |op: &str| lo.is_none_or(|lo| if op == "<" { lo < v } else { lo <= v });
    match bound.op {
        ">" | ">=" => after(bound.op),
        "<" | "<=" => before(bound.op),
        _ => after(">=") && before("<="),
    }
}

/// The seq ranges, in order, outside of which no row can satisfy every bound: the blocks whose summary allows
/// a match, and the rows after the summary.
pub fn seq_ranges(db: Db, bounds: &[AtBound]) -> Result<Vec<(i64, i64)>> {
    let everything = vec![(i64::MIN, i64::MAX)];
    if bounds.is_empty() || !crate::store::has_table(db, "main", MARKS)? || !current(db)? {
        return Ok(everything);
    }
    let done = store::meta(db, "marks_seq")?.as_i64().unwrap_or(0);
    let mut candidates = Vec::new();
    let mut stmt = db.prepare(&format!("SELECT block, lo, hi FROM main.{MARKS} ORDER BY block"))?;
    while stmt.step()? {
        // Formatting keeps the order of Julian days in years 0000–9999, so there the text bounds of a block
        // are its extremes' text; outside them (negative years sort backwards as text) the block is read.
        let lo = calendar_text(&stmt.column(1));
        let hi = calendar_text(&stmt.column(2));
        if bounds.iter().all(|b| may_match(b, lo.as_deref(), hi.as_deref())) {
            let b = stmt.column(0).as_i64().unwrap_or(0);
            // Block 0 also holds any seq below 1 (only a hand-written row could have one).
            candidates.push((if b <= 0 { i64::MIN } else { b * BLOCK }, (b + 1) * BLOCK - 1));
        }
    }
    candidates.push((done.saturating_add(1), i64::MAX));
    let mut ranges: Vec<(i64, i64)> = Vec::new();
    for (from, to) in candidates {
        match ranges.last_mut() {
            Some(last) if from <= last.1.saturating_add(1) => last.1 = last.1.max(to),
            _ => ranges.push((from, to)),
        }
    }
    Ok(ranges)
}

/// A journal `at` as pit_journal shows it: what `strftime('%Y-%m-%dT%H:%M:%fZ', at)` prints, computed here
/// because it runs for every row read. SQLite rounds the Julian day to a whole millisecond first; other
/// values (text, years outside 0000–9999) go to SQLite itself.
pub fn at_text(db: Db, at: &Value) -> Value {
    match calendar_text(at) {
        Some(text) => Value::Text(text),
        None if at.is_null() => Value::Null,
        None => db
            .query_value(&format!("SELECT strftime('{AT_FORMAT}', ?1)"), std::slice::from_ref(at))
            .unwrap_or(Value::Null),
    }
}

/// The text of a numeric Julian day in years 0000–9999, where it sorts as the day does.
fn calendar_text(at: &Value) -> Option<String> {
    let julian = match at {
        Value::Real(_) | Value::Integer(_) => at.as_f64()?,
        _ => return None,
    };
    // 0000-01-01 and 10000-01-01 as Julian days.
    if !(1_721_059.5..5_373_484.49).contains(&julian) {
        return None;
    }
    let ms = (julian * 86_400_000.0 + 0.5) as i64 - UNIX_EPOCH_JULIAN_MS;
    let t = chrono::DateTime::from_timestamp_millis(ms)?;
    use chrono::{Datelike, Timelike};
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        ms.rem_euclid(1000)
    ))
}

/// 1970-01-01T00:00:00Z as milliseconds of Julian day.
const UNIX_EPOCH_JULIAN_MS: i64 = 210_866_760_000_000;
