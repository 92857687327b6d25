//! `vigil_query_stats`: query statistics saved by `query_stats_save()` so that another process (`vigil metrics`,
//! `vigil serve`) can export them. The stats capability writes it; metrics reads it through [`load_saved`].
//!
//! CONTRACT (issue 14, shared by the stats and metrics work): the types below are what both sides use. The stats
//! engineer owns this file's table, its writer and `load_saved`'s body.

use crate::error::Result;
use crate::sqlite::Db;

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

/// The merged statistics every process saved into `schema` (a quoted schema name), or None when nothing was saved.
pub fn load_saved(_db: Db, _schema_quoted: &str) -> Result<Option<QueryTotals>> {
    Ok(None)
}
