//! Query statistics (issue 14): per-statement timing of a connection traced with `query_stats_start()`, like
//! PostgreSQL's pg_stat_statements.
//!
//! CONTRACT: [`live_totals`] is what `vigil_metrics()` exports for the calling process.

pub mod normalize;

use crate::store::query_stats::QueryTotals;

/// This process's live statistics (all traced connections), or None when no connection was ever traced.
pub fn live_totals() -> Option<QueryTotals> {
    None
}
