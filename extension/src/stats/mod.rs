//! Query statistics (issue 14): per-statement timing of a connection traced with `query_stats_start()`, like
//! PostgreSQL's pg_stat_statements.
//!
//! CONTRACT: [`live_totals`] is what `vigil_metrics()` exports for the calling process.
//!
//! Layout: `tracer` (the per-connection trace hook), `registry` (the process's bounded statement table, totals
//! and slow-query log), `histogram` (Welford moments, log-linear percentiles, export buckets), `sql` (the SQL
//! objects), `normalize` (statement shapes).

pub mod histogram;
pub mod normalize;
pub mod registry;
pub mod sql;
pub mod tracer;

use crate::store::query_stats::QueryTotals;

/// This process's live statistics (all traced connections), or None when no connection was ever traced.
pub fn live_totals() -> Option<QueryTotals> {
    let registry = registry::registry();
    registry.ever_traced.then(|| registry.query_totals(None))
}
