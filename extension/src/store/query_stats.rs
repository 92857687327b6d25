//! `vigil_query_stats`: query statistics saved by `query_stats_save()` so that another process (`vigil metrics`,
//! `vigil serve`) can export them. The stats capability writes it; metrics reads it through [`load_saved`].
//!
//! The totals types below are shared by the stats capability (live statistics) and metrics (their export).

use std::collections::HashMap;

use super::quote;
use crate::error::{Error, Result};
use crate::sqlite::{open_flags, Db, OwnedDb, Value};

pub const TABLE: &str = "vigil_query_stats";

/// Upper bounds (seconds) of the exported duration histogram `vigil_query_duration_seconds`, `+Inf` implied.
/// client_golang's default buckets start at 5 ms, too coarse for SQLite's sub-millisecond statements.
pub const EXPORT_BUCKETS_SECONDS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A duration histogram as Prometheus exports it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DurationHistogram {
    /// Calls at or below each bound of [`EXPORT_BUCKETS_SECONDS`], not cumulative; calls above the last bound are
    /// `count - counts.iter().sum()`.
    pub counts: [u64; 16],
    pub count: u64,
    pub sum_seconds: f64,
}

/// One normalised statement's counters (monotonic while its entry lives).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatementTotals {
    pub queryid: i64,
    /// The normalised text (constants replaced).
    pub query: String,
    pub calls: u64,
    pub rows: u64,
    pub total_seconds: f64,
    pub slow_calls: u64,
}

/// Query statistics of one process (live) or of every process that saved into a database (merged).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryTotals {
    /// Every traced statement, evicted ones included.
    pub durations: DurationHistogram,
    /// Statements at or above the slow threshold, evicted ones included.
    pub slow_total: u64,
    /// Entries evicted to keep the statement table bounded.
    pub evictions: u64,
    /// Distinct statements held now.
    pub entries: u64,
    pub statements: Vec<StatementTotals>,
}

/// Contributors not saved again for this long (a process that ended long ago) are folded into the retired
/// aggregate.
const KEEP_DAYS: i64 = 7;

/// One statement of a contribution, with what merging needs (sums, M2, buckets).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SavedStatement {
    pub queryid: i64,
    pub query: String,
    pub calls: u64,
    pub rows: u64,
    pub total_seconds: f64,
    /// Sum of squared deviations from the mean (Welford's M2), in seconds².
    pub m2_seconds: f64,
    pub min_seconds: f64,
    pub max_seconds: f64,
    pub slow_calls: u64,
    /// Not cumulative, at [`EXPORT_BUCKETS_SECONDS`].
    pub buckets: [u64; 16],
    pub fullscan_steps: u64,
    pub sorts: u64,
    pub vm_steps: u64,
    pub first_seen: String,
    pub last_seen: String,
}

/// What one process saves: its statistics of one database since it started (or reset them).
#[derive(Clone, Debug, Default)]
pub struct Contribution {
    /// When the process's statistics began (RFC 3339: its first trace, or its last query_stats_reset()): with the
    /// pid, who contributes. A restart or a reset is a new contributor, so the old one's rows stay.
    pub process_start: String,
    pub durations: DurationHistogram,
    pub slow_total: u64,
    pub evictions: u64,
    pub statements: Vec<SavedStatement>,
}

pub struct SaveOutcome {
    /// Contributors in the table after saving.
    pub contributors: i64,
    /// Contributors older than a week folded into the retired aggregate.
    pub pruned: i64,
}

/// Replaces this process's rows in the caller's main database, in a write transaction of vigil's own connection
/// (in-memory databases: on the caller's, in a savepoint); retires contributors older than a week.
pub fn save(caller: Db, contribution: &Contribution, busy_timeout_ms: i32) -> Result<SaveOutcome> {
    match caller.filename("main")? {
        Some(path) => {
            let own = OwnedDb::open(&path, open_flags::READ_WRITE, caller.vfs_name("main")?.as_deref())?;
            if own.db().is_readonly("main")? == Some(true) {
                return Err(Error::new(format!("{path} is read-only (the file or its medium)")));
            }
            own.db().set_busy_timeout(busy_timeout_ms)?;
            let mut outcome = None;
            super::in_write_transaction(own.db(), || {
                outcome = Some(write(own.db(), "main", contribution)?);
                Ok(())
            })?;
            outcome.ok_or_else(|| Error::new("nothing was saved"))
        }
        None => caller.in_savepoint("vigil_query_stats", || write(caller, "main", contribution)),
    }
}

/// The retired aggregate's contributor key: pid 0 is never a process's. It holds what left the live
/// contributors (pruned ones, rows a reset or an eviction replaced), so that the merged sums, which Prometheus
/// reads as counters, never decrease while the database file lives.
const RETIRED_PID: i64 = 0;
const RETIRED: &str = "retired";
/// Statements the retired aggregate keeps rows for (most total time first); the others stay in its totals only.
pub const RETIRED_STATEMENTS: usize = 1000;

const COLUMNS: &str = "queryid, query, calls, rows, total_seconds, m2_seconds, min_seconds, max_seconds, \
                       slow_calls, evictions, buckets, fullscan_steps, sorts, vm_steps, first_seen, last_seen";

fn write(db: Db, schema: &str, c: &Contribution) -> Result<SaveOutcome> {
    let q = quote(schema);
    create_table(db, &q)?;
    let (pid, started) = (i64::from(std::process::id()), c.process_start.as_str());
    let saved_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut retired = load_contribution(db, &q, RETIRED_PID, RETIRED)?;
    let before = load_contribution(db, &q, pid, started)?;
    retire_what_shrank(&mut retired, before, c);
    let stale = stale_contributors(db, &q)?;
    for (stale_pid, stale_start) in &stale {
        let old = load_contribution(db, &q, *stale_pid, stale_start)?;
        merge_contribution(&mut retired, &old);
        delete_contributor(db, &q, *stale_pid, stale_start)?;
    }
    bound_statements(&mut retired);
    delete_contributor(db, &q, RETIRED_PID, RETIRED)?;
    if retired.durations.count > 0 || !retired.statements.is_empty() {
        insert_contribution(db, &q, RETIRED_PID, RETIRED, &saved_at, &retired)?;
    }
    delete_contributor(db, &q, pid, started)?;
    insert_contribution(db, &q, pid, started, &saved_at, c)?;
    let contributors = db.query_value(
        &format!("SELECT count(DISTINCT pid || ' ' || process_start) FROM {q}.{TABLE} WHERE pid <> {RETIRED_PID}"),
        &[],
    )?;
    Ok(SaveOutcome { contributors: contributors.as_i64().unwrap_or(0), pruned: stale.len() as i64 })
}

fn create_table(db: Db, q: &str) -> Result<()> {
    db.exec(&format!(
        "CREATE TABLE IF NOT EXISTS {q}.{TABLE}(
            pid INTEGER NOT NULL,
            process_start TEXT NOT NULL,
            saved_at TEXT NOT NULL,
            queryid INTEGER,
            query TEXT,
            calls INTEGER NOT NULL,
            rows INTEGER NOT NULL,
            total_seconds REAL NOT NULL,
            m2_seconds REAL NOT NULL,
            min_seconds REAL,
            max_seconds REAL,
            slow_calls INTEGER NOT NULL,
            evictions INTEGER NOT NULL,
            buckets TEXT NOT NULL,
            fullscan_steps INTEGER NOT NULL,
            sorts INTEGER NOT NULL,
            vm_steps INTEGER NOT NULL,
            first_seen TEXT,
            last_seen TEXT);
         CREATE INDEX IF NOT EXISTS {q}.vigil_query_stats_contributor ON {TABLE}(pid, process_start)"
    ))
}

/// Contributors (the retired aggregate aside) not saved for [`KEEP_DAYS`].
fn stale_contributors(db: Db, q: &str) -> Result<Vec<(i64, String)>> {
    let rows = db.query(
        &format!(
            "SELECT DISTINCT pid, process_start FROM {q}.{TABLE} WHERE pid <> {RETIRED_PID} \
             AND julianday(saved_at) < julianday('now', '-{KEEP_DAYS} days')"
        ),
        &[],
    )?;
    Ok(rows.iter().map(|r| (r[0].as_i64().unwrap_or(0), r[1].as_str().unwrap_or_default().to_string())).collect())
}

fn delete_contributor(db: Db, q: &str, pid: i64, started: &str) -> Result<()> {
    db.query(&format!("DELETE FROM {q}.{TABLE} WHERE pid = ?1 AND process_start = ?2"), &[pid.into(), started.into()])?;
    Ok(())
}

/// Moves into `retired` whatever of this contributor's saved rows the new contribution would make smaller:
/// everything when its totals shrank (a reset within the same millisecond, a clock step back), else the rows of
/// statements evicted since (gone, or back with a new first_seen or smaller counts). Their calls stay in the
/// contributor's totals row, so only their statement rows move.
fn retire_what_shrank(retired: &mut Contribution, before: Contribution, now: &Contribution) {
    if totals_shrank(&before, now) {
        merge_contribution(retired, &before);
        return;
    }
    let kept: HashMap<i64, &SavedStatement> = now.statements.iter().map(|s| (s.queryid, s)).collect();
    let gone =
        before.statements.iter().filter(|old| kept.get(&old.queryid).is_none_or(|new| statement_shrank(old, new)));
    merge_statements(&mut retired.statements, gone);
}

fn totals_shrank(before: &Contribution, now: &Contribution) -> bool {
    let (b, n) = (&before.durations, &now.durations);
    n.count < b.count
        || n.sum_seconds < b.sum_seconds
        || n.counts.iter().zip(&b.counts).any(|(n, b)| n < b)
        || now.slow_total < before.slow_total
        || now.evictions < before.evictions
}

fn statement_shrank(old: &SavedStatement, new: &SavedStatement) -> bool {
    new.first_seen != old.first_seen
        || new.calls < old.calls
        || new.rows < old.rows
        || new.total_seconds < old.total_seconds
        || new.slow_calls < old.slow_calls
        || new.buckets.iter().zip(&old.buckets).any(|(n, o)| n < o)
}

fn merge_contribution(into: &mut Contribution, from: &Contribution) {
    let (d, f) = (&mut into.durations, &from.durations);
    for (a, b) in d.counts.iter_mut().zip(f.counts) {
        *a += b;
    }
    d.count += f.count;
    d.sum_seconds += f.sum_seconds;
    into.slow_total += from.slow_total;
    into.evictions += from.evictions;
    merge_statements(&mut into.statements, &from.statements);
}

/// Adds statements into a list, by queryid.
fn merge_statements<'a>(into: &mut Vec<SavedStatement>, from: impl IntoIterator<Item = &'a SavedStatement>) {
    let mut at: HashMap<i64, usize> = into.iter().enumerate().map(|(i, s)| (s.queryid, i)).collect();
    for s in from {
        match at.get(&s.queryid) {
            Some(&i) => add_statement(&mut into[i], s),
            None => {
                at.insert(s.queryid, into.len());
                into.push(s.clone());
            }
        }
    }
}

fn add_statement(t: &mut SavedStatement, s: &SavedStatement) {
    // Chan et al.'s pairwise update of the sum of squared deviations.
    let (n1, n2) = (t.calls as f64, s.calls as f64);
    if n1 + n2 > 0.0 {
        let delta = s.total_seconds / n2.max(1.0) - t.total_seconds / n1.max(1.0);
        t.m2_seconds += s.m2_seconds + delta * delta * n1 * n2 / (n1 + n2);
    }
    t.calls += s.calls;
    t.rows += s.rows;
    t.total_seconds += s.total_seconds;
    t.min_seconds = t.min_seconds.min(s.min_seconds);
    t.max_seconds = t.max_seconds.max(s.max_seconds);
    t.slow_calls += s.slow_calls;
    for (a, b) in t.buckets.iter_mut().zip(s.buckets) {
        *a += b;
    }
    t.fullscan_steps += s.fullscan_steps;
    t.sorts += s.sorts;
    t.vm_steps += s.vm_steps;
    t.first_seen = t.first_seen.clone().min(s.first_seen.clone());
    t.last_seen = t.last_seen.clone().max(s.last_seen.clone());
}

/// Keeps the retired aggregate bounded: statement rows past [`RETIRED_STATEMENTS`] (least total time) are
/// dropped; their calls stay in the aggregate's totals row.
fn bound_statements(retired: &mut Contribution) {
    if retired.statements.len() > RETIRED_STATEMENTS {
        retired.statements.sort_by(|a, b| b.total_seconds.total_cmp(&a.total_seconds).then(a.queryid.cmp(&b.queryid)));
        retired.statements.truncate(RETIRED_STATEMENTS);
    }
}

/// One contributor's saved rows (empty when it has none).
fn load_contribution(db: Db, q: &str, pid: i64, started: &str) -> Result<Contribution> {
    let rows = db.query(
        &format!("SELECT {COLUMNS} FROM {q}.{TABLE} WHERE pid = ?1 AND process_start = ?2"),
        &[pid.into(), started.into()],
    )?;
    let count = |v: &Value| v.as_i64().unwrap_or(0).max(0) as u64;
    let real = |v: &Value| v.as_f64().unwrap_or(0.0);
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut out = Contribution { process_start: started.to_string(), ..Default::default() };
    let mut statements = Vec::new();
    for r in &rows {
        match r[0].as_i64() {
            None => merge_contribution(
                &mut out,
                &Contribution {
                    durations: DurationHistogram {
                        counts: parse_buckets(&r[10]),
                        count: count(&r[2]),
                        sum_seconds: real(&r[4]),
                    },
                    slow_total: count(&r[8]),
                    evictions: count(&r[9]),
                    ..Default::default()
                },
            ),
            Some(queryid) => statements.push(SavedStatement {
                queryid,
                query: text(&r[1]),
                calls: count(&r[2]),
                rows: count(&r[3]),
                total_seconds: real(&r[4]),
                m2_seconds: real(&r[5]),
                min_seconds: real(&r[6]),
                max_seconds: real(&r[7]),
                slow_calls: count(&r[8]),
                buckets: parse_buckets(&r[10]),
                fullscan_steps: count(&r[11]),
                sorts: count(&r[12]),
                vm_steps: count(&r[13]),
                first_seen: text(&r[14]),
                last_seen: text(&r[15]),
            }),
        }
    }
    // A contributor has one row per statement; a bad copy of the table could have more: merge them.
    merge_statements(&mut out.statements, &statements);
    Ok(out)
}

fn insert_contribution(db: Db, q: &str, pid: i64, started: &str, saved_at: &str, c: &Contribution) -> Result<()> {
    let mut insert = db.prepare(&format!(
        "INSERT INTO {q}.{TABLE}(pid, process_start, saved_at, {COLUMNS}) \
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19)"
    ))?;
    let common = [Value::from(pid), Value::from(started), Value::from(saved_at)];
    // The totals row (queryid NULL): every call, evicted statements included.
    let d = &c.durations;
    let mut totals = common.to_vec();
    totals.extend([Value::Null, Value::Null, int(d.count), Value::Integer(0), Value::Real(d.sum_seconds)]);
    totals.extend([Value::Real(0.0), Value::Null, Value::Null, int(c.slow_total), int(c.evictions)]);
    totals.extend([buckets_json(&d.counts), int(0), int(0), int(0), Value::Null, Value::Null]);
    insert.run(&totals)?;
    for s in &c.statements {
        let mut row = common.to_vec();
        row.extend([Value::Integer(s.queryid), Value::from(s.query.as_str()), int(s.calls), int(s.rows)]);
        row.extend([Value::Real(s.total_seconds), Value::Real(s.m2_seconds), Value::Real(s.min_seconds)]);
        row.extend([Value::Real(s.max_seconds), int(s.slow_calls), int(0), buckets_json(&s.buckets)]);
        row.extend([int(s.fullscan_steps), int(s.sorts), int(s.vm_steps)]);
        row.extend([Value::from(s.first_seen.as_str()), Value::from(s.last_seen.as_str())]);
        insert.run(&row)?;
    }
    Ok(())
}

fn int(n: u64) -> Value {
    Value::Integer(n.min(i64::MAX as u64) as i64)
}

fn buckets_json(counts: &[u64; 16]) -> Value {
    Value::Text(serde_json::to_string(counts).unwrap_or_else(|_| "[]".into()))
}

fn parse_buckets(value: &Value) -> [u64; 16] {
    let parsed: Option<Vec<u64>> = value.as_str().and_then(|t| serde_json::from_str(t).ok());
    let mut counts = [0u64; 16];
    for (slot, n) in counts.iter_mut().zip(parsed.unwrap_or_default()) {
        *slot = n;
    }
    counts
}

/// The merged statistics every process saved into `schema` (a quoted schema name), or None when nothing was saved.
pub fn load_saved(db: Db, schema_quoted: &str) -> Result<Option<QueryTotals>> {
    if !super::has_table(db, schema_quoted, TABLE)? {
        return Ok(None);
    }
    let table = format!("{schema_quoted}.{TABLE}");
    // Bounded whatever the table holds (planted or damaged rows included): contributors' totals rows are few (a
    // week's processes plus the retired set), and statements are summed by SQLite, the costliest first.
    let totals = db.query(
        &format!(
            "SELECT calls, total_seconds, slow_calls, evictions, buckets FROM {table} WHERE queryid IS NULL \
             ORDER BY saved_at DESC LIMIT {MAX_CONTRIBUTORS_READ}"
        ),
        &[],
    )?;
    let statements = db.query(
        &format!(
            "SELECT queryid, min(substr(query, 1, {QUERY_CHARS_READ})), sum(max(calls, 0)), sum(max(rows, 0)), \
             sum(total_seconds), sum(max(slow_calls, 0)) FROM {table} WHERE queryid IS NOT NULL \
             GROUP BY queryid ORDER BY sum(total_seconds) DESC LIMIT {MAX_STATEMENTS_READ}"
        ),
        &[],
    )?;
    if totals.is_empty() && statements.is_empty() {
        return Ok(None);
    }
    let entries = db.query_value(&format!("SELECT count(DISTINCT queryid) FROM {table}"), &[])?;
    let count = |v: &Value| v.as_i64().unwrap_or(0).max(0) as u64;
    let mut out = QueryTotals::default();
    for r in &totals {
        for (a, b) in out.durations.counts.iter_mut().zip(parse_buckets(&r[4])) {
            *a = a.saturating_add(b);
        }
        out.durations.count = out.durations.count.saturating_add(count(&r[0]));
        out.durations.sum_seconds += r[1].as_f64().unwrap_or(0.0);
        out.slow_total = out.slow_total.saturating_add(count(&r[2]));
        out.evictions = out.evictions.saturating_add(count(&r[3]));
    }
    out.statements = statements
        .iter()
        .filter_map(|r| {
            Some(StatementTotals {
                queryid: r[0].as_i64()?,
                query: r[1].as_str().unwrap_or_default().to_string(),
                calls: count(&r[2]),
                rows: count(&r[3]),
                total_seconds: r[4].as_f64().unwrap_or(0.0),
                slow_calls: count(&r[5]),
            })
        })
        .collect();
    out.entries = count(&entries);
    Ok(Some(out))
}

/// Contributors' totals rows read at most (the newest saves): far more than a week of processes.
const MAX_CONTRIBUTORS_READ: usize = 10_000;
/// Statements read at most, the costliest first: more than `vigil metrics --statements` exports (1000).
const MAX_STATEMENTS_READ: usize = 5_000;
/// Characters of a statement's text read: more than any export shows.
const QUERY_CHARS_READ: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(seconds: &[f64]) -> SavedStatement {
        let n = seconds.len() as f64;
        let mean = seconds.iter().sum::<f64>() / n;
        SavedStatement {
            queryid: 7,
            calls: seconds.len() as u64,
            total_seconds: seconds.iter().sum(),
            m2_seconds: seconds.iter().map(|x| (x - mean) * (x - mean)).sum(),
            min_seconds: seconds.iter().cloned().fold(f64::MAX, f64::min),
            max_seconds: seconds.iter().cloned().fold(0.0, f64::max),
            ..Default::default()
        }
    }

    #[test]
    fn merging_two_contributions_of_a_statement_gives_the_moments_of_all_their_calls() {
        let (a, b) = ([0.001, 0.004, 0.002], [0.010, 0.030]);
        let mut into = vec![statement(&a)];
        merge_statements(&mut into, &[statement(&b)]);
        let all = statement(&[&a[..], &b[..]].concat());
        assert_eq!(into.len(), 1);
        assert_eq!(into[0].calls, all.calls);
        assert!((into[0].total_seconds - all.total_seconds).abs() < 1e-12);
        assert!((into[0].m2_seconds - all.m2_seconds).abs() < 1e-12, "{} vs {}", into[0].m2_seconds, all.m2_seconds);
        assert_eq!((into[0].min_seconds, into[0].max_seconds), (0.001, 0.030));
    }

    #[test]
    fn the_retired_aggregate_keeps_the_statements_with_the_most_total_time() {
        let mut retired = Contribution::default();
        retired.statements = (0..RETIRED_STATEMENTS as i64 + 5)
            .map(|i| SavedStatement { queryid: i, total_seconds: i as f64, ..Default::default() })
            .collect();
        bound_statements(&mut retired);
        assert_eq!(retired.statements.len(), RETIRED_STATEMENTS);
        assert!(retired.statements.iter().all(|s| s.queryid >= 5));
    }
}
