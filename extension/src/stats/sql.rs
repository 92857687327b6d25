//! The SQL objects of query statistics: query_stats_start / stop / reset / info / save, and the table functions
//! query_stats and slow_queries.

use serde_json::{json, Value as Json};

use super::registry::{self, rfc3339, wall_time, Registry};
use super::tracer::{self, Tracing};
use crate::args;
use crate::error::{Error, Result};
use crate::sqlite::{Db, Value};
use crate::store::query_stats as saved;
use crate::vtab::TableFunction;

const OPTIONS: [&str; 4] = ["slow_ms", "max", "slow_log", "log_parameters"];
const EXAMPLE: &str = r#"{"slow_ms": 1000, "max": 5000, "slow_log": 100, "log_parameters": false}"#;

/// Applies the options given; the others keep their current (process-wide) value.
fn apply_options(registry: &mut Registry, arg: Option<&Value>) -> Result<()> {
    let Some(options) = args::object_arg(arg, EXAMPLE, &OPTIONS)? else { return Ok(()) };
    // Check every option before changing any.
    let slow_ms = match options.get("slow_ms") {
        Some(v) => Some(v.as_f64().filter(|ms| (0.0..=86_400_000.0).contains(ms)).ok_or_else(|| {
            Error::new(format!("option \"slow_ms\" must be a number of milliseconds from 0 to 86400000, not {v}"))
        })?),
        None => None,
    };
    let max = options.get("max").map(|v| args::integer("max", v, 1, 1_000_000)).transpose()?;
    let slow_log = options.get("slow_log").map(|v| args::integer("slow_log", v, 0, 1_000_000)).transpose()?;
    let log_parameters = options.get("log_parameters").map(|v| args::boolean("log_parameters", v)).transpose()?;
    if let Some(ms) = slow_ms {
        registry.set_slow_ms(ms);
    }
    if let Some(max) = max {
        registry.set_max(max as usize);
    }
    if let Some(size) = slow_log {
        registry.set_slow_log_size(size as usize);
    }
    if let Some(on) = log_parameters {
        registry.set_log_parameters(on);
    }
    Ok(())
}

fn info_json(tracing: Tracing) -> Json {
    // Never hold the registry's lock while taking the hooks' (one order everywhere: no deadlock).
    let connections = tracer::traced_connections();
    let registry = registry::registry();
    json!({
        "tracing": tracing.name(),
        "entries": registry.entry_count(),
        "max": registry.max,
        "evictions": registry.evictions,
        "calls": registry.calls,
        "slow_ms": registry.slow_ms(),
        "slow_total": registry.slow_total,
        "slow_log": registry.slow_log_size,
        "log_parameters": registry::log_parameters(),
        "connections": connections,
        "since": rfc3339(registry.since),
    })
}

/// `query_stats_start([options])`: traces this connection; returns the info JSON.
pub fn query_stats_start(db: Db, args: &[Value]) -> Result<Value> {
    apply_options(&mut registry::registry(), args.first())?;
    // The statistics must outlive the connection that loaded vigil (see pin_library).
    crate::sqlite::pin_library();
    tracer::start(db)?;
    Ok(Value::Text(info_json(Tracing::On).to_string()))
}

/// `query_stats_stop()`: stops tracing this connection (uninstalling the callback only if it is vigil's).
pub fn query_stats_stop(db: Db, _args: &[Value]) -> Result<Value> {
    let was = tracer::stop(db);
    let mut info = info_json(Tracing::Off);
    info["was"] = json!(was.name());
    Ok(Value::Text(info.to_string()))
}

/// `query_stats_reset()`: forgets every statistic of the process; returns when (RFC 3339).
pub fn query_stats_reset(_db: Db, _args: &[Value]) -> Result<Value> {
    let mut registry = registry::registry();
    registry.reset();
    Ok(Value::Text(rfc3339(registry.since)))
}

/// `query_stats_info()`: whether this connection is traced (on / off / lost), the registry's figures, and what
/// every process saved in this database (merged).
pub fn query_stats_info(db: Db, _args: &[Value]) -> Result<Value> {
    let mut info = info_json(tracer::status(db));
    info["saved"] = match saved::load_saved(db, "\"main\"")? {
        Some(t) => json!({"calls": t.durations.count, "statements": t.entries, "slow_total": t.slow_total,
                          "evictions": t.evictions, "total_seconds": t.durations.sum_seconds}),
        None => Json::Null,
    };
    Ok(Value::Text(info.to_string()))
}

/// `query_stats_save()`: stores this process's statistics of this database in `vigil_query_stats`.
pub fn query_stats_save(db: Db, _args: &[Value]) -> Result<Value> {
    if !db.is_autocommit() {
        return Err(Error::new(
            "refused inside a transaction: it saves in a transaction of its own; call it after COMMIT or ROLLBACK",
        ));
    }
    // vigil saves on a connection of its own, which would ignore the application's read-only open.
    if db.is_readonly("main")? == Some(true) {
        return Err(Error::new(
            "refused on a read-only connection (mode=ro, -readonly, SQLITE_OPEN_READONLY): call it from a \
             connection that may write the database",
        ));
    }
    let name = db.filename("main")?.unwrap_or_default();
    let contribution = {
        let mut registry = registry::registry();
        let id = registry.database_id(&name);
        contribution(&registry, id)
    };
    let outcome = saved::save(db, &contribution, 5000)?;
    Ok(Value::Text(
        json!({"saved": contribution.statements.len(), "calls": contribution.durations.count,
               "contributors": outcome.contributors, "pruned": outcome.pruned, "table": saved::TABLE})
        .to_string(),
    ))
}

fn contribution(registry: &Registry, database: u32) -> saved::Contribution {
    let totals = registry.totals_of(database);
    let statements = registry
        .entries_of(database)
        .map(|(queryid, e)| saved::SavedStatement {
            queryid,
            query: e.query.to_string(),
            calls: e.moments.count,
            rows: e.rows,
            total_seconds: e.total_ns as f64 / 1e9,
            m2_seconds: e.moments.m2 / 1e6,
            min_seconds: e.min_ns as f64 / 1e9,
            max_seconds: e.max_ns as f64 / 1e9,
            slow_calls: e.slow_calls,
            buckets: e.export.counts,
            fullscan_steps: e.counters[0],
            sorts: e.counters[1],
            vm_steps: e.counters[3],
            first_seen: rfc3339(wall_time(e.first_seen)),
            last_seen: rfc3339(wall_time(e.last_seen)),
        })
        .collect();
    saved::Contribution {
        // A reset starts a new contributor: its smaller figures must not replace the rows saved before it.
        process_start: rfc3339(registry.since),
        durations: totals.map(|t| t.durations.clone()).unwrap_or_default(),
        slow_total: totals.map_or(0, |t| t.slow_total),
        evictions: totals.map_or(0, |t| t.evictions),
        statements,
    }
}

/// `query_stats`: one row per normalised statement of this process, most total time first.
pub struct QueryStats;

impl TableFunction for QueryStats {
    const NAME: &'static str = "query_stats";
    const COLUMNS: &'static [&'static str] = &[
        "queryid",
        "query",
        "calls",
        "rows",
        "total_ms",
        "mean_ms",
        "stddev_ms",
        "min_ms",
        "max_ms",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "slow_calls",
        "fullscan_steps",
        "sorts",
        "autoindex_rows",
        "vm_steps",
        "reprepares",
        "first_seen",
        "last_seen",
        "database",
    ];
    const ARGS: &'static [&'static str] = &[];

    fn rows(_db: Db, _args: &[Value]) -> Result<Vec<Vec<Value>>> {
        let registry = registry::registry();
        let rows = registry
            .entries()
            .into_iter()
            .map(|(database, queryid, e)| {
                let mut row = vec![
                    Value::Integer(queryid),
                    Value::from(&*e.query),
                    Value::Integer(e.moments.count as i64),
                    Value::Integer(e.rows as i64),
                    Value::Real(e.total_ns as f64 / 1e6),
                    Value::Real(e.moments.mean),
                    Value::Real(e.moments.stddev()),
                    Value::Real(e.min_ns as f64 / 1e6),
                    Value::Real(e.max_ns as f64 / 1e6),
                    Value::Real(e.quantile_ms(0.50)),
                    Value::Real(e.quantile_ms(0.95)),
                    Value::Real(e.quantile_ms(0.99)),
                    Value::Integer(e.slow_calls as i64),
                ];
                row.extend(e.counters.iter().map(|&c| Value::Integer(c as i64)));
                row.push(Value::from(rfc3339(wall_time(e.first_seen))));
                row.push(Value::from(rfc3339(wall_time(e.last_seen))));
                row.push(Value::from(database));
                row
            })
            .collect();
        Ok(rows)
    }
}

/// `slow_queries([limit])`: the slow-query log, newest first.
pub struct SlowQueries;

impl TableFunction for SlowQueries {
    const NAME: &'static str = "slow_queries";
    const COLUMNS: &'static [&'static str] = &["at", "queryid", "duration_ms", "query", "parameters", "database"];
    const ARGS: &'static [&'static str] = &["limit"];

    fn rows(_db: Db, args: &[Value]) -> Result<Vec<Vec<Value>>> {
        let limit = match args.first() {
            None | Some(Value::Null) => usize::MAX,
            Some(Value::Integer(n)) if *n >= 0 => *n as usize,
            Some(other) => {
                return Err(Error::new(format!(
                    "limit must be a non-negative integer, not {}",
                    crate::error::describe(other)
                )))
            }
        };
        let registry = registry::registry();
        let rows = registry
            .slow
            .iter()
            .rev()
            .take(limit)
            .map(|call| {
                vec![
                    Value::from(rfc3339(wall_time(call.at))),
                    Value::Integer(call.queryid),
                    Value::Real(call.ns as f64 / 1e6),
                    Value::from(&*call.query),
                    Value::from(call.parameters.clone()),
                    Value::from(registry.database_name(call.database)),
                ]
            })
            .collect();
        Ok(rows)
    }
}
