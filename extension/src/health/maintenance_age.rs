//! health_report's rows on maintenance age, read from the maintenance log.

use chrono::{DateTime, Utc};

use super::options::Options;
use super::Check;
use crate::error::Result;
use crate::info::{days_between, format_utc};
use crate::sqlite::{Db, Value};
use crate::store::{maintenance_log::last_runs, quote};

/// Levels that count for each age row: a full maintenance is also a standard one.
const AGE_ROWS: &[(&str, &str, &[&str])] = &[
    ("maintenance_age", "maintenance_age_days", &["standard", "full"]),
    ("full_maintenance_age", "full_maintenance_age_days", &["full"]),
];

/// Days since the last standard-or-full and the last full run.
pub fn age_checks(db: Db, options: &Options) -> Result<Vec<Check>> {
    let runs = last_runs(db, &quote(&options.schema))?;
    let now = Utc::now();
    let days = |at: DateTime<Utc>| days_between(at, now);
    // What ran, by level; "vacuum" is a VACUUM run on its own (a full maintenance vacuums too).
    let history: Vec<String> =
        [("light", "light"), ("standard", "standard"), ("full", "full"), ("vacuum", "VACUUM alone")]
            .iter()
            .filter_map(|(level, label)| {
                runs.iter().find(|(l, _)| l == level).map(|(_, at)| format!("{label} {} days ago", days(*at)))
            })
            .collect();
    let history = if history.is_empty() { String::new() } else { format!(" ({})", history.join(", ")) };
    Ok(AGE_ROWS
        .iter()
        .map(|&(name, threshold, levels)| {
            let last = runs.iter().filter(|(l, _)| levels.contains(&l.as_str())).map(|(_, at)| *at).max();
            let Some(at) = last else {
                // Unknown, not late: vigil cannot see maintenance done by other means.
                return Check::new(name, Value::Null, "days")
                    .detail(format!("no {} maintenance recorded by vigil{history}", levels.join(" or ")));
            };
            let age = days(at);
            let mut check = Check::new(name, age, "days");
            check.status = options.thresholds.status(threshold, age);
            check.threshold = options.thresholds.describe(threshold);
            check.detail(format!("last {} maintenance at {}{history}", levels.join(" or "), format_utc(at)))
        })
        .collect())
}
