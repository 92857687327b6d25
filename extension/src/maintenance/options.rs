//! Options of the maintenance functions: NULL or a JSON object. Each function accepts the keys it uses
//! (docs/api.md lists them) and rejects the others by name.

use serde_json::{Map, Value as Json};

use crate::args::{bad_choice, boolean, integer, object_arg, string};
use crate::error::{Error, Result};
use crate::sqlite::Value;

/// The figure vacuum_if_fragmented compares with its threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// health_report's `freelist_pct`: read from the header, flat in database size.
    FreelistPct,
    /// health_report's `fragmentation` (non-sequential pages): one pass over every page.
    Fragmentation,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::FreelistPct => "freelist_pct",
            Metric::Fragmentation => "fragmentation",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// incremental_vacuum when the database has auto_vacuum=INCREMENTAL and the metric is the freelist.
    Auto,
    Vacuum,
    Incremental,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MaintenanceOptions {
    pub schema: String,
    pub busy_timeout_ms: i32,
    pub dry_run: bool,
    pub log: bool,
    pub metric: Metric,
    /// Whether `metric` was given: `maintain` then VACUUMs on that figure only, not on either.
    pub metric_given: bool,
    pub method: Method,
    /// vacuum_if_fragmented's threshold inside `maintain`; NULL: the health threshold.
    pub threshold: Option<f64>,
    /// Rows PRAGMA optimize / ANALYZE samples per index (0: all).
    pub analysis_limit: i64,
    /// WAL size above which `maintain` truncates the WAL (default: health_report's wal_size warning).
    pub wal_truncate_bytes: Option<i64>,
}

impl Default for MaintenanceOptions {
    fn default() -> Self {
        MaintenanceOptions {
            schema: "main".into(),
            busy_timeout_ms: 5000,
            dry_run: false,
            log: true,
            metric: Metric::FreelistPct,
            metric_given: false,
            method: Method::Auto,
            threshold: None,
            analysis_limit: 1000,
            wal_truncate_bytes: None,
        }
    }
}

impl MaintenanceOptions {
    /// Parses the options argument of `function`, which accepts only the keys in `allowed`.
    pub fn parse(arg: Option<&Value>, allowed: &[&str]) -> Result<MaintenanceOptions> {
        let mut options = MaintenanceOptions::default();
        if let Some(map) = object_arg(arg, r#"{"busy_timeout_ms":1000}"#, allowed)? {
            options.apply(&map)?;
        }
        Ok(options)
    }

    fn apply(&mut self, map: &Map<String, Json>) -> Result<()> {
        for (key, value) in map {
            match key.as_str() {
                "schema" => self.schema = string(key, value)?.to_string(),
                "busy_timeout_ms" => self.busy_timeout_ms = integer(key, value, 0, 3_600_000)? as i32,
                "dry_run" => self.dry_run = boolean(key, value)?,
                "log" => self.log = boolean(key, value)?,
                "metric" => {
                    self.metric_given = true;
                    self.metric = match string(key, value)? {
                        "freelist_pct" => Metric::FreelistPct,
                        "fragmentation" => Metric::Fragmentation,
                        other => return Err(bad_choice(key, other, "freelist_pct, fragmentation")),
                    }
                }
                "method" => {
                    self.method = match string(key, value)? {
                        "auto" => Method::Auto,
                        "vacuum" => Method::Vacuum,
                        "incremental" => Method::Incremental,
                        other => return Err(bad_choice(key, other, "auto, vacuum, incremental")),
                    }
                }
                "threshold" => self.threshold = Some(percentage(&Value::Real(value.as_f64().unwrap_or(f64::NAN)))?),
                "analysis_limit" => self.analysis_limit = integer(key, value, 0, 1_000_000_000)?,
                "wal_truncate_bytes" => self.wal_truncate_bytes = Some(integer(key, value, 0, i64::MAX)?),
                _ => unreachable!("object_arg admits only allowed keys, and each is handled"),
            }
        }
        Ok(())
    }
}

/// A threshold in percent: a number from 0 to 100.
pub fn percentage(value: &Value) -> Result<f64> {
    value.as_f64().filter(|p| (0.0..=100.0).contains(p)).ok_or_else(|| {
        let shown = match value {
            Value::Real(r) if r.is_nan() => "not a number".to_string(),
            Value::Text(t) => crate::error::quoted(t),
            other => other.as_f64().map_or_else(|| crate::error::describe(other), |f| f.to_string()),
        };
        Error::new(format!("threshold must be a percentage from 0 to 100, not {shown}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[&str] = &["schema", "busy_timeout_ms", "dry_run", "metric", "method", "threshold"];

    fn parse(text: &str) -> Result<MaintenanceOptions> {
        MaintenanceOptions::parse(Some(&Value::Text(text.into())), ALL)
    }

    #[test]
    fn options_parse_and_default() {
        let o = parse(r#"{"dry_run":true,"metric":"fragmentation","busy_timeout_ms":250}"#).unwrap();
        assert!(o.dry_run && o.metric == Metric::Fragmentation && o.busy_timeout_ms == 250);
        assert_eq!(MaintenanceOptions::parse(None, ALL).unwrap(), MaintenanceOptions::default());
    }

    #[test]
    fn bad_options_name_the_problem() {
        let cases = [
            ("{\"log\":false}", "unknown option \"log\""),
            ("{\"metric\":\"bloat\"}", "one of freelist_pct, fragmentation"),
            ("{\"busy_timeout_ms\":-1}", "from 0 to 3600000"),
            ("{\"threshold\":101}", "from 0 to 100, not 101"),
            ("{\"threshold\":\"x\"}", "not a number"),
            ("[]", "must be a JSON object"),
            ("{", "not valid JSON"),
        ];
        for (input, expected) in cases {
            let err = parse(input).unwrap_err().to_string();
            assert!(err.contains(expected), "{input}: {err}");
        }
    }

    #[test]
    fn percentages_are_checked() {
        assert_eq!(percentage(&Value::Integer(20)).unwrap(), 20.0);
        for bad in [Value::Integer(-1), Value::Real(100.5), Value::Text("abc".into()), Value::Null] {
            assert!(percentage(&bad).is_err(), "{bad:?}");
        }
    }
}
