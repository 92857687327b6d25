//! Thresholds: when a figure turns a check into a warning or a critical. Defaults follow common practice
//! (docs/api.md lists them); every one can be overridden or disabled per call.

use serde_json::Value as Json;

use super::Status;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Direction {
    /// Larger is worse: status when value >= level.
    Above,
    /// Smaller is worse: status when value <= level.
    Below,
}

pub struct Spec {
    pub name: &'static str,
    pub unit: &'static str,
    pub direction: Direction,
    pub warning: Option<f64>,
    pub critical: Option<f64>,
    /// Upper bound of valid levels (percentages).
    pub max: Option<f64>,
}

const MIB: f64 = 1024.0 * 1024.0;

#[rustfmt::skip]
pub const SPECS: &[Spec] = &[
    //    name                   unit         direction         warning            critical     max
    spec("probe_ms",            "ms",        Direction::Above, Some(1000.0),      Some(2000.0), None),
    spec("file_size",           "bytes",     Direction::Above, Some(1000.0 * MIB), None,        None),
    spec("freelist_pct",        "%",         Direction::Above, Some(20.0),        Some(40.0),   Some(100.0)),
    // Scattered pages cost speed, never data: a warning at most (the alert levels of requirements.md).
    spec("fragmentation",       "%",         Direction::Above, Some(20.0),        None,         Some(100.0)),
    spec("unused_pct",          "%",         Direction::Above, None,              None,         Some(100.0)),
    spec("wal_size",            "bytes",     Direction::Above, Some(64.0 * MIB),  None,         None),
    spec("disk_used_pct",       "%",         Direction::Above, Some(85.0),        Some(95.0),   Some(100.0)),
    spec("integrity",           "errors",    Direction::Above, None,              Some(1.0),    None),
    spec("integrity_age_days",  "days",      Direction::Above, Some(7.0),         None,         None),
    // "Force a maintenance after 7 days without one"; a late job is a warning, never critical.
    spec("maintenance_age_days",      "days", Direction::Above, Some(7.0),  None, None),
    spec("full_maintenance_age_days", "days", Direction::Above, Some(30.0), None, None),
    // requirements.md: age of the newest verified backup, 26 h warning, 50 h critical.
    spec("last_backup_hours",   "hours",     Direction::Above, Some(26.0),        Some(50.0),   None),
    spec("foreign_keys",        "violations",Direction::Above, Some(1.0),         None,         None),
    spec("schema_drift",        "objects",   Direction::Above, None,              None,         None),
    spec("growth_per_day",      "bytes/day", Direction::Above, Some(5.0 * MIB),   None,         None),
    spec("days_until_full",     "days",      Direction::Below, Some(30.0),        Some(7.0),    None),
];

const fn spec(
    name: &'static str,
    unit: &'static str,
    direction: Direction,
    warning: Option<f64>,
    critical: Option<f64>,
    max: Option<f64>,
) -> Spec {
    Spec { name, unit, direction, warning, critical, max }
}

/// The levels in force for one call.
#[derive(Clone, Debug, PartialEq)]
pub struct Thresholds {
    levels: Vec<(&'static str, Option<f64>, Option<f64>)>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { levels: SPECS.iter().map(|s| (s.name, s.warning, s.critical)).collect() }
    }
}

fn spec_of(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.name == name)
}

/// Whether a larger value is worse for the named threshold (None: not a graded check).
pub fn larger_is_worse(name: &str) -> Option<bool> {
    spec_of(name).map(|s| s.direction == Direction::Above)
}

/// The default warning level of a threshold.
pub fn default_warning(name: &str) -> Option<f64> {
    spec_of(name).and_then(|s| s.warning)
}

impl Thresholds {
    /// Applies `{"name": {"warning": x, "critical": y}}`; `null` disables a level, an absent key keeps
    /// the default.
    pub fn apply(&mut self, overrides: &Json) -> Result<()> {
        let map = overrides
            .as_object()
            .ok_or_else(|| Error::new("\"thresholds\" must be an object like {\"freelist_pct\": {\"warning\": 20}}"))?;
        for (name, levels) in map {
            let spec = spec_of(name).ok_or_else(|| {
                let known: Vec<_> = SPECS.iter().map(|s| s.name).collect();
                Error::new(format!("unknown threshold \"{}\" (known: {})", crate::error::cut(name), known.join(", ")))
            })?;
            let slot = self.levels.iter_mut().find(|l| l.0 == spec.name).expect("every spec has a slot");
            let levels = levels.as_object().ok_or_else(|| {
                Error::new(format!("threshold \"{name}\" must be an object with \"warning\" and/or \"critical\""))
            })?;
            for (level, value) in levels {
                let parsed = parse_level(spec, level, value)?;
                match level.as_str() {
                    "warning" => slot.1 = parsed,
                    _ => slot.2 = parsed,
                }
            }
            check_order(spec, slot.1, slot.2)?;
        }
        Ok(())
    }

    pub fn levels(&self, name: &str) -> (Option<f64>, Option<f64>) {
        self.levels.iter().find(|l| l.0 == name).map_or((None, None), |l| (l.1, l.2))
    }

    /// The status a value earns against the named threshold.
    pub fn status(&self, name: &str, value: f64) -> Status {
        let Some(spec) = spec_of(name) else {
            return Status::Ok;
        };
        let (warning, critical) = self.levels(name);
        let hits = |level: Option<f64>| match (level, spec.direction) {
            (Some(l), Direction::Above) => value >= l,
            (Some(l), Direction::Below) => value <= l,
            (None, _) => false,
        };
        if hits(critical) {
            Status::Critical
        } else if hits(warning) {
            Status::Warning
        } else {
            Status::Ok
        }
    }

    /// Human text of the levels in force, e.g. "warning ≥ 20 %, critical ≥ 40 %".
    pub fn describe(&self, name: &str) -> Option<String> {
        let spec = spec_of(name)?;
        let (warning, critical) = self.levels(name);
        let op = if spec.direction == Direction::Above { "≥" } else { "≤" };
        let parts: Vec<String> = [("warning", warning), ("critical", critical)]
            .iter()
            .filter_map(|(label, level)| level.map(|l| format!("{label} {op} {}", show(l, spec.unit))))
            .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

fn parse_level(spec: &Spec, level: &str, value: &Json) -> Result<Option<f64>> {
    if level != "warning" && level != "critical" {
        return Err(Error::new(format!(
            "threshold \"{}\" has unknown level \"{}\" (use \"warning\" or \"critical\")",
            spec.name,
            crate::error::cut(level)
        )));
    }
    if value.is_null() {
        return Ok(None);
    }
    let number = value.as_f64().filter(|v| v.is_finite()).ok_or_else(|| {
        Error::new(format!("threshold \"{}\".{level} must be a number or null, not {value}", spec.name))
    })?;
    if number < 0.0 {
        return Err(Error::new(format!("threshold \"{}\".{level} must not be negative (got {number})", spec.name)));
    }
    if let Some(max) = spec.max.filter(|m| number > *m) {
        return Err(Error::new(format!(
            "threshold \"{}\".{level} is a percentage: it must be at most {max} (got {number})",
            spec.name
        )));
    }
    Ok(Some(number))
}

fn check_order(spec: &Spec, warning: Option<f64>, critical: Option<f64>) -> Result<()> {
    let (Some(w), Some(c)) = (warning, critical) else {
        return Ok(());
    };
    let wrong = match spec.direction {
        Direction::Above => w > c,
        Direction::Below => w < c,
    };
    if wrong {
        let relation = if spec.direction == Direction::Above { "at most" } else { "at least" };
        return Err(Error::new(format!(
            "threshold \"{}\": warning ({w}) must be {relation} critical ({c})",
            spec.name
        )));
    }
    Ok(())
}

/// Formats a figure with its unit: bytes in MiB, others as plain numbers.
pub fn show(value: f64, unit: &str) -> String {
    match unit {
        "bytes" => format!("{} MiB", trim(value / MIB)),
        "bytes/day" => format!("{} MiB/day", trim(value / MIB)),
        "%" => format!("{} %", trim(value)),
        _ => format!("{} {unit}", trim(value)),
    }
}

fn trim(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_follow_the_requirements() {
        let t = Thresholds::default();
        assert_eq!(t.status("freelist_pct", 19.9), Status::Ok);
        assert_eq!(t.status("freelist_pct", 20.0), Status::Warning);
        assert_eq!(t.status("freelist_pct", 40.0), Status::Critical);
        assert_eq!(t.status("days_until_full", 8.0), Status::Warning);
        assert_eq!(t.status("days_until_full", 7.0), Status::Critical);
        assert_eq!(t.describe("freelist_pct").unwrap(), "warning ≥ 20 %, critical ≥ 40 %");
    }

    #[test]
    fn overrides_and_disabling() {
        let mut t = Thresholds::default();
        t.apply(&json!({"freelist_pct": {"warning": 5, "critical": null}})).unwrap();
        assert_eq!(t.status("freelist_pct", 50.0), Status::Warning);
        assert_eq!(t.describe("freelist_pct").unwrap(), "warning ≥ 5 %");
    }

    #[test]
    fn bad_thresholds_are_refused_with_a_reason() {
        let cases = [
            (json!({"nope": {"warning": 1}}), "unknown threshold \"nope\""),
            (json!({"freelist_pct": {"warning": -1}}), "must not be negative"),
            (json!({"freelist_pct": {"warning": 120}}), "at most 100"),
            (json!({"freelist_pct": {"warning": 50, "critical": 10}}), "must be at most critical"),
            (json!({"freelist_pct": {"warn": 5}}), "unknown level \"warn\""),
            (json!({"freelist_pct": {"warning": "x"}}), "must be a number"),
            (json!({"freelist_pct": 5}), "must be an object"),
            (json!([1]), "must be an object"),
        ];
        for (input, expected) in cases {
            let err = Thresholds::default().apply(&input).unwrap_err().to_string();
            assert!(err.contains(expected), "{input}: {err}");
        }
    }
}
