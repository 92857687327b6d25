//! health_report's `last_backup` row, read from the backup log.

use std::path::Path;

use chrono::Utc;

use super::options::Options;
use super::{Check, Status};
use crate::error::Result;
use crate::info::{hours_between, parse_utc};
use crate::sqlite::{Db, Value};
use crate::store::backup_log;

/// Hours since the newest verified backup whose file still exists. A database with no such backup is a
/// warning: "looks healthy, isn't backing up" is the gap to catch.
pub fn age_check(db: Db, options: &Options) -> Result<Check> {
    const NAME: &str = "last_backup";
    let recorded = backup_log::verified(db, &options.schema, 100)?;
    let found = recorded.iter().find(|r| Path::new(&r.path).exists());
    let Some(newest) = found else {
        let detail = match recorded.first() {
            Some(r) => format!("the recorded backups are gone (the newest was {}); make one with backup_to", r.path),
            None => "no verified backup recorded; make one: SELECT backup_to('/path/to/backups/')".to_string(),
        };
        // Thresholds switched off ("none,none") mean the user does not want backups watched here.
        let watched = options.thresholds.levels("last_backup_hours") != (None, None);
        let status = if watched { Status::Warning } else { Status::Info };
        return Ok(Check::new(NAME, Value::Null, "hours").status(status).detail(detail));
    };
    let at = parse_utc(&newest.created_at).unwrap_or_default();
    let hours = hours_between(at, Utc::now());
    let mut check = Check::new(NAME, hours, "hours");
    check.status = options.thresholds.status("last_backup_hours", hours);
    check.threshold = options.thresholds.describe("last_backup_hours");
    Ok(check.detail(format!("{} at {} ({} verified)", newest.path, newest.created_at, newest.verify)))
}
