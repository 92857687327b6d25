//! Query statistics: the duration histogram, slow and evicted counts, and with option `statements` the top
//! statements by total time. From the statistics saved in the database (`query_stats_save()`, any process) or
//! this process's live ones (`query_stats_start()`); see [`QuerySource`].

use super::options::QuerySource;
use super::{Kind, Options, Row};
use crate::error::Result;
use crate::sqlite::Db;
use crate::stats;
use crate::store::query_stats::{self, QueryTotals, StatementTotals, EXPORT_BUCKETS_SECONDS};
use crate::store::quote;

const DURATION_HELP: &str = "Duration of traced statements (first step to completion, vigil's monotonic clock)";
/// Longest query text exported in vigil_statement_info, in characters.
const QUERY_CHARS: usize = 120;

pub fn rows(db: Db, options: &Options) -> Result<Vec<Row>> {
    let schema = &options.health.schema;
    let live = || -> Result<Option<QueryTotals>> { Ok(stats::live_totals(&db.filename(schema)?.unwrap_or_default())) };
    // A table of that name vigil cannot read (an application's own, another vigil version's, damaged) costs the
    // query series only, never the database's other metrics.
    let saved = || match query_stats::load_saved(db, &quote(schema)) {
        Ok(totals) => Ok(totals),
        Err(_) => Err(Row::gauge(
            "vigil_query_stats_unreadable",
            "1 when the saved query statistics (vigil_query_stats) could not be read: their series are left out",
            1.0,
        )),
    };
    let totals = match options.query_stats {
        QuerySource::None => Ok(None),
        QuerySource::Live => Ok(live()?),
        QuerySource::Saved => saved(),
        QuerySource::Auto => match live()? {
            Some(live) => Ok(Some(live)),
            None => saved(),
        },
    };
    let totals = match totals {
        Ok(Some(totals)) => totals,
        Ok(None) => return Ok(Vec::new()),
        Err(unreadable) => return Ok(vec![unreadable]),
    };
    let mut rows = histogram(&totals);
    rows.push(Row::counter(
        "vigil_slow_queries_total",
        "Statements at or above the slow threshold (query_stats_start's slow_ms)",
        totals.slow_total as f64,
    ));
    rows.push(Row::gauge("vigil_query_stats_entries", "Distinct statements held", totals.entries as f64));
    rows.push(Row::counter(
        "vigil_query_stats_evictions_total",
        "Statement entries evicted to keep the statistics bounded",
        totals.evictions as f64,
    ));
    rows.extend(statements(&totals.statements, options.statements));
    Ok(rows)
}

/// `_bucket` rows (cumulative, increasing, ending with `+Inf` = `_count`), `_sum`, `_count`.
fn histogram(totals: &QueryTotals) -> Vec<Row> {
    let d = &totals.durations;
    let sample = |suffix: &str, value: f64| Row {
        metric: format!("vigil_query_duration_seconds{suffix}"),
        kind: Kind::Histogram,
        help: DURATION_HELP,
        labels: Vec::new(),
        value,
    };
    let mut rows = Vec::new();
    let mut cumulative = 0u64;
    for (bound, count) in EXPORT_BUCKETS_SECONDS.iter().zip(d.counts) {
        cumulative += count;
        rows.push(sample("_bucket", cumulative as f64).label("le", bound.to_string()));
    }
    // The count includes calls above the last bound; a count below the buckets' sum would be inconsistent data.
    let count = d.count.max(cumulative);
    rows.push(sample("_bucket", count as f64).label("le", "+Inf"));
    rows.push(sample("_sum", super::millionths(counted(d.sum_seconds))));
    rows.push(sample("_count", count as f64));
    rows
}

/// A counter's value as exported: saved rows may have been planted or damaged, and a counter is never negative,
/// NaN or infinite.
fn counted(value: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        0.0
    }
}

/// (metric, type, help, the statement's value).
type StatementFamily = (&'static str, Kind, &'static str, fn(&StatementTotals) -> f64);

/// The top `n` statements by total time: calls, seconds, rows, and an info series with the normalised text.
fn statements(all: &[StatementTotals], n: usize) -> Vec<Row> {
    let mut top: Vec<&StatementTotals> = all.iter().collect();
    let time = |s: &StatementTotals| counted(s.total_seconds);
    top.sort_by(|a, b| time(b).total_cmp(&time(a)).then(a.queryid.cmp(&b.queryid)));
    top.truncate(n);
    let families: [StatementFamily; 4] = [
        ("vigil_statement_calls_total", Kind::Counter, "Calls of the statement", |s| s.calls as f64),
        ("vigil_statement_seconds_total", Kind::Counter, "Total time in the statement", |s| {
            super::millionths(s.total_seconds)
        }),
        ("vigil_statement_rows_total", Kind::Counter, "Rows the statement returned or changed", |s| s.rows as f64),
        ("vigil_statement_slow_calls_total", Kind::Counter, "Calls at or above the slow threshold", |s| {
            s.slow_calls as f64
        }),
    ];
    let mut rows = Vec::new();
    for (metric, kind, help, value) in families {
        for s in &top {
            let row = Row { metric: metric.into(), kind, help, labels: Vec::new(), value: counted(value(s)) };
            rows.push(row.label("queryid", s.queryid.to_string()));
        }
    }
    for s in &top {
        let help = "The normalised text of each exported statement (always 1; text cut to 120 characters)";
        let query: String = s.query.chars().take(QUERY_CHARS).collect();
        rows.push(
            Row::gauge("vigil_statement_info", help, 1.0).label("queryid", s.queryid.to_string()).label("query", query),
        );
    }
    rows
}
