//! `vigil_metrics([options])`: a database's health, backups, maintenance, point-in-time journal and query
//! statistics as Prometheus-style rows `(metric, type, help, labels, value)`, so that any host can expose the
//! same metrics as `vigil metrics`. A layer above the capabilities: it composes their read-only parts and never
//! writes (it works on a read-only connection).
//!
//! Names follow Prometheus conventions (base units, `_total` for counters, `_timestamp_seconds`); labels are a
//! JSON object and never carry `db`: the caller knows its database. docs/metrics.md lists every metric.

mod backups;
mod checks;
mod options;
mod pit;
mod queries;

use serde_json::{Map, Value as Json};

use crate::error::{Context as _, Result};
use crate::sqlite::{Db, Value};
use crate::vtab::TableFunction;
pub use options::Options;

/// One sample: a gauge or counter value, or one of a histogram's `_bucket`/`_sum`/`_count` samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub metric: String,
    pub kind: Kind,
    pub help: &'static str,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
    Histogram,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        }
    }
}

impl Row {
    pub fn gauge(metric: &str, help: &'static str, value: f64) -> Row {
        Row { metric: metric.into(), kind: Kind::Gauge, help, labels: Vec::new(), value }
    }

    pub fn counter(metric: &str, help: &'static str, value: f64) -> Row {
        Row { kind: Kind::Counter, ..Row::gauge(metric, help, value) }
    }

    pub fn label(mut self, name: &str, value: impl Into<String>) -> Row {
        self.labels.push((name.into(), value.into()));
        self
    }

    fn labels_json(&self) -> String {
        let map: Map<String, Json> = self.labels.iter().map(|(k, v)| (k.clone(), Json::String(v.clone()))).collect();
        Json::Object(map).to_string()
    }
}

/// Every row for one schema, in a stable order (families contiguous).
pub fn collect(db: Db, options: &Options) -> Result<Vec<Row>> {
    let mut rows = vec![
        Row::gauge("vigil_up", "1 when vigil could open and read the database", 1.0),
        Row::gauge("vigil_build_info", "vigil's version and the host's SQLite version (always 1)", 1.0)
            .label("version", crate::info::VERSION)
            .label("sqlite_version", crate::sqlite::host_version()),
    ];
    rows.extend(checks::rows(db, options)?);
    rows.extend(backups::rows(db, options)?);
    rows.extend(checks::maintenance_rows(db, options)?);
    rows.extend(pit::rows(db, options)?);
    rows.extend(queries::rows(db, options)?);
    Ok(rows.into_iter().filter(|r| r.value.is_finite()).collect())
}

/// `SELECT * FROM vigil_metrics([options])`.
pub struct VigilMetrics;

impl TableFunction for VigilMetrics {
    const NAME: &'static str = "vigil_metrics";
    const COLUMNS: &'static [&'static str] = &["metric", "type", "help", "labels", "value"];
    const ARGS: &'static [&'static str] = &["options"];

    fn rows(db: Db, args: &[Value]) -> Result<Vec<Vec<Value>>> {
        let options = Options::parse(args.first()).context("bad options")?;
        Ok(collect(db, &options)?
            .into_iter()
            .map(|r| {
                vec![
                    Value::from(r.metric.as_str()),
                    Value::from(r.kind.as_str()),
                    Value::from(r.help),
                    Value::from(r.labels_json().as_str()),
                    Value::Real(r.value),
                ]
            })
            .collect())
    }
}

/// A duration or ratio rounded to millionths: sums of floating-point durations and scaled values otherwise show
/// binary noise (0.5650000000000001) in every series. Rounding is monotonic, so counters stay counters.
pub fn millionths(value: f64) -> f64 {
    if !value.is_finite() || value.abs() >= 1e9 {
        // Beyond 1e9 millionths no longer fit a double's 53 bits: whole units are precise enough there.
        return value.round();
    }
    (value * 1e6).round() / 1e6
}

/// Seconds since the Unix epoch of an RFC 3339 time.
fn timestamp(text: &str) -> Option<f64> {
    crate::info::parse_utc(text).map(|t| t.timestamp_millis() as f64 / 1000.0)
}
