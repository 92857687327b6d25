//! The `maintenance` row: which maintenance level the other rows call for, and why.
//!
//! urgent  — integrity errors (now, or at the last recorded check): back up, then repair;
//! full    — slow probe, or fragmentation / freelist over their thresholds: only the VACUUM of `maintain`'s
//!           full level gives that space back; also a full maintenance older than its threshold;
//! standard — the last standard (or full) maintenance older than its threshold;
//! light   — WAL over its limits, or indexes without ANALYZE statistics (PRAGMA optimize, checkpoint);
//! none    — nothing to do.

use super::checks::Facts;
use super::{Check, Status};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    None,
    Light,
    Standard,
    Full,
    Urgent,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::Light => "light",
            Level::Standard => "standard",
            Level::Full => "full",
            Level::Urgent => "urgent",
        }
    }
}

/// The level a single row asks for, if any.
fn level_for(check: &Check) -> Option<Level> {
    match (check.name, check.status) {
        ("integrity", Status::Critical) => Some(Level::Urgent),
        ("probe_ms", Status::Warning | Status::Critical) => Some(Level::Full),
        ("freelist_pct" | "fragmentation", Status::Warning | Status::Critical) => Some(Level::Full),
        ("full_maintenance_age", Status::Warning | Status::Critical) => Some(Level::Full),
        ("maintenance_age", Status::Warning | Status::Critical) => Some(Level::Standard),
        ("wal_size", Status::Info | Status::Warning | Status::Critical) => Some(Level::Light),
        _ => None,
    }
}

pub fn recommend(rows: &[Check], facts: &Facts) -> Check {
    let mut level = Level::None;
    let mut status = Status::Ok;
    let mut reasons = Vec::new();
    for check in rows {
        if let Some(wanted) = level_for(check) {
            level = level.max(wanted);
            // Only integrity errors make maintenance critical; a late or heavy job is a warning at most.
            let cap = if wanted == Level::Urgent { Status::Critical } else { Status::Warning };
            status = status.max(check.status.min(cap));
            reasons.push(format!("{} is {} ({})", check.name, check.status.as_str(), value_text(check)));
        }
    }
    if !facts.has_stat1 && facts.count("index") > 0 {
        level = level.max(Level::Light);
        status = status.max(Status::Info);
        reasons.push("indexes but no ANALYZE statistics: PRAGMA optimize gathers them".to_string());
    }
    let detail = if reasons.is_empty() { "nothing to do".to_string() } else { reasons.join("; ") };
    Check::new("maintenance", level.as_str(), "level").status(status).detail(detail)
}

fn value_text(check: &Check) -> String {
    use crate::sqlite::Value;
    match &check.value {
        Value::Integer(i) => format!("{i} {}", check.unit),
        Value::Real(r) => format!("{r} {}", check.unit),
        Value::Text(t) => t.clone(),
        _ => check.detail.clone(),
    }
}
