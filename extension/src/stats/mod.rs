//! Query statistics (issue 14): per-statement timing of a connection traced with `query_stats_start()`, like
//! PostgreSQL's pg_stat_statements.
//!
//! [`live_totals`] is what `vigil_metrics()` exports for the calling process.
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

/// This process's live statistics of one database file (as `Db::filename` names it; "" for in-memory ones), or
/// None when no connection to it was ever traced: an application exporting one database never reports another's
/// statements under its name.
pub fn live_totals(database_file: &str) -> Option<QueryTotals> {
    let registry = registry::registry();
    let id = registry.known_database(database_file)?;
    Some(registry.query_totals(Some(id)))
}
