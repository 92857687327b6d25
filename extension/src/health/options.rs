//! Options of health_report, health_json, health_tables and health_snapshot: NULL, a mode word
//! ('fast', 'quick', 'full') or a JSON object (docs/api.md lists every key).

use serde_json::{Map, Value as Json};

use super::thresholds::Thresholds;
use crate::args::{bad_choice, boolean, integer, object_arg, string};
use crate::error::{Error, Result};
use crate::sqlite::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Integrity {
    None,
    Quick,
    Full,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragmentationMethod {
    /// vigil's page reader for a database file on the unix VFS, else dbstat when the host has it, else the
    /// freelist.
    Auto,
    Dbstat,
    Freelist,
    /// vigil's page reader (format::usage) over a read snapshot of its own.
    Pages,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub schema: String,
    pub integrity: Integrity,
    pub fragmentation: bool,
    pub fragmentation_method: FragmentationMethod,
    pub thresholds: Thresholds,
    pub history: bool,
    pub include_vigil: bool,
    pub checks: Option<Vec<String>>,
    pub max_errors: i64,
    pub growth_window_days: f64,
    pub keep: i64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            schema: "main".into(),
            integrity: Integrity::None,
            fragmentation: false,
            fragmentation_method: FragmentationMethod::Auto,
            thresholds: Thresholds::default(),
            history: true,
            include_vigil: false,
            checks: None,
            max_errors: 10,
            growth_window_days: 7.0,
            keep: 1000,
        }
    }
}

const KEYS: &[&str] = &[
    "schema",
    "integrity",
    "fragmentation",
    "fragmentation_method",
    "thresholds",
    "history",
    "include_vigil",
    "checks",
    "max_errors",
    "growth_window_days",
    "keep",
];

/// Names a check row can have; `checks` may only name these.
pub const CHECK_NAMES: &[&str] = &[
    "probe_ms",
    "file_size",
    "page_size",
    "page_count",
    "freelist_count",
    "freelist_pct",
    "journal_mode",
    "auto_vacuum",
    "wal_size",
    "disk_free",
    "disk_used_pct",
    "tables",
    "indexes",
    "schema_signature",
    "integrity",
    "foreign_keys",
    "fragmentation",
    "unused_pct",
    "fragmentation_method",
    "schema_drift",
    "growth_per_day",
    "days_until_full",
    "maintenance_age",
    "full_maintenance_age",
    "last_backup",
    "maintenance",
];

impl Options {
    /// Parses the optional argument of a health function.
    pub fn parse(arg: Option<&Value>) -> Result<Options> {
        let mut options = Options::default();
        match arg {
            None | Some(Value::Null) => {}
            Some(Value::Text(text)) if text.trim_start().starts_with('{') => {
                if let Some(map) = object_arg(arg, r#"{"integrity":"quick"}"#, KEYS)? {
                    options.apply(&map)?;
                }
            }
            Some(Value::Text(mode)) => options.apply_mode(mode.trim())?,
            Some(other) => {
                return Err(Error::new(format!(
                    "options must be text: a mode ('fast', 'quick', 'full') or a JSON object, not {}",
                    crate::error::describe(other)
                )))
            }
        }
        Ok(options)
    }

    fn apply_mode(&mut self, mode: &str) -> Result<()> {
        match mode {
            "fast" | "" => {}
            "quick" => self.integrity = Integrity::Quick,
            "full" => {
                self.integrity = Integrity::Full;
                self.fragmentation = true;
            }
            other => {
                return Err(Error::new(format!(
                    "unknown mode {}: use 'fast', 'quick', 'full' or a JSON object of options",
                    crate::error::quoted(other)
                )))
            }
        }
        Ok(())
    }

    fn apply(&mut self, map: &Map<String, Json>) -> Result<()> {
        for (key, value) in map {
            match key.as_str() {
                "schema" => self.schema = string(key, value)?.to_string(),
                "integrity" => {
                    self.integrity = match string(key, value)? {
                        "none" => Integrity::None,
                        "quick" => Integrity::Quick,
                        "full" => Integrity::Full,
                        other => return Err(bad_choice(key, other, "none, quick, full")),
                    }
                }
                "fragmentation" => self.fragmentation = boolean(key, value)?,
                "fragmentation_method" => {
                    self.fragmentation_method = match string(key, value)? {
                        "auto" => FragmentationMethod::Auto,
                        "dbstat" => FragmentationMethod::Dbstat,
                        "freelist" => FragmentationMethod::Freelist,
                        "pages" => FragmentationMethod::Pages,
                        other => return Err(bad_choice(key, other, "auto, pages, dbstat, freelist")),
                    }
                }
                "thresholds" => self.thresholds.apply(value)?,
                "history" => self.history = boolean(key, value)?,
                "include_vigil" => self.include_vigil = boolean(key, value)?,
                "checks" => self.checks = Some(check_list(value)?),
                "max_errors" => self.max_errors = integer(key, value, 1, 10_000)?,
                "keep" => self.keep = integer(key, value, 1, 1_000_000)?,
                "growth_window_days" => {
                    self.growth_window_days = value
                        .as_f64()
                        .filter(|d| d.is_finite() && *d > 0.0)
                        .ok_or_else(|| Error::new(format!("option \"{key}\" must be a positive number of days")))?
                }
                _ => unreachable!("object_arg admits only KEYS, and each is handled"),
            }
        }
        Ok(())
    }

    /// Whether a check row is wanted in the output.
    pub fn wants(&self, check: &str) -> bool {
        self.checks.as_ref().is_none_or(|list| list.iter().any(|c| c == check))
    }
}

fn check_list(value: &Json) -> Result<Vec<String>> {
    let list = value.as_array().ok_or_else(|| Error::new("option \"checks\" must be an array of check names"))?;
    list.iter()
        .map(|item| {
            let name = item.as_str().unwrap_or_default();
            if CHECK_NAMES.contains(&name) {
                Ok(name.to_string())
            } else {
                Err(Error::new(format!(
                    "unknown check {} (known: {})",
                    crate::error::cut(&item.to_string()),
                    CHECK_NAMES.join(", ")
                )))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Options> {
        Options::parse(Some(&Value::Text(text.into())))
    }

    #[test]
    fn modes_and_json() {
        assert_eq!(parse("quick").unwrap().integrity, Integrity::Quick);
        let full = parse("full").unwrap();
        assert!(full.fragmentation && full.integrity == Integrity::Full);
        let o = parse(r#"{"integrity":"full","thresholds":{"freelist_pct":{"warning":5}}}"#).unwrap();
        assert_eq!(o.integrity, Integrity::Full);
        assert_eq!(o.thresholds.levels("freelist_pct"), (Some(5.0), Some(40.0)));
    }

    #[test]
    fn bad_options_name_the_problem() {
        let cases = [
            ("{\"integrity\":", "not valid JSON"),
            ("[1,2]", "unknown mode"),
            ("{\"bogus\":1}", "unknown option \"bogus\""),
            ("{\"integrity\":\"deep\"}", "must be one of none, quick, full"),
            ("{\"checks\":[\"nope\"]}", "unknown check \"nope\""),
            ("{\"max_errors\":0}", "from 1 to 10000"),
            ("{\"history\":\"yes\"}", "true or false"),
            ("sideways", "unknown mode 'sideways'"),
        ];
        for (input, expected) in cases {
            let err = parse(input).unwrap_err().to_string();
            assert!(err.contains(expected), "{input}: {err}");
        }
        let err = Options::parse(Some(&Value::Integer(3))).unwrap_err().to_string();
        assert!(err.contains("options must be text"), "{err}");
    }
}
