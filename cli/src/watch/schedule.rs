//! When each (database, job) is due: pure functions of the clock, the last run and the database's label, so that
//! they are unit-tested and a restart takes the same decisions as the process it replaces.
//!
//! Each job of each database runs on a grid of slots `k·period + offset` counted from the UNIX epoch; the offset
//! is a hash of the label and the job, so a thousand databases spread over the period instead of starting
//! together, and the same database keeps its offset across restarts. A job is due at the first slot after its
//! last run: a run missed while vigil was stopped runs once at the next cycle, never in a burst.

use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime, Timelike};

/// Milliseconds since the UNIX epoch: what the state file stores.
pub type Millis = u64;

/// A stable offset in `[0, period)` for this label and job: FNV-1a, the same on every machine and release
/// (std's hasher is seeded per process), then a final mix so that labels differing in their last byte spread.
pub fn jitter(label: &str, job: &str, period: Duration) -> Millis {
    let period = period.as_millis().max(1) as u64;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in job.bytes().chain([0]).chain(label.bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    // splitmix64's finaliser.
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (hash ^ (hash >> 31)) % period
}

/// The first slot of the grid `k·period + offset` strictly after `after`.
pub fn next_slot_after(after: Millis, period: Duration, offset: Millis) -> Millis {
    let period = period.as_millis().max(1) as u64;
    let offset = offset % period;
    if after < offset {
        return offset;
    }
    let slots = (after - offset) / period + 1;
    offset.saturating_add(slots.saturating_mul(period))
}

/// When a periodic job is next due.
/// - In the loop: the first slot more than half a period after the last run, so a run off the grid (the first
///   one, or one made by `--once`) is never followed by another within half a period, and runs on the grid
///   follow each other one period apart. Never run: the first slot after the database was first seen (within
///   one period, spread by the jitter).
/// - With `--once` (cron: no later cycle to wait for, and cron's own start times wobble): a tenth of the period
///   (at most a minute) before the last run's period is over; never run: now.
pub fn due_at(last: Option<Millis>, first_seen: Millis, period: Duration, offset: Millis, once: bool) -> Millis {
    let period_ms = period.as_millis() as u64;
    match last {
        Some(last) if once => (last + period_ms).saturating_sub((period_ms / 10).min(60_000)),
        Some(last) => next_slot_after(last + period_ms / 2, period, offset),
        None if once => 0,
        None => next_slot_after(first_seen.saturating_sub(1), period, offset),
    }
}

/// Whether a periodic job is due now.
#[cfg(test)]
fn is_due(now: Millis, last: Option<Millis>, first_seen: Millis, period: Duration, offset: Millis, once: bool) -> bool {
    due_at(last, first_seen, period, offset, once) <= now
}

/// Whether maintenance is due: within the quiet hour (local time), past this database's offset into it (so that
/// databases do not all start at H:00), and not yet run on this local day.
pub fn maintain_due(now: NaiveDateTime, last_day: Option<NaiveDate>, quiet_hour: u32, offset: Duration) -> bool {
    let into_hour = Duration::from_secs(u64::from(now.minute()) * 60 + u64::from(now.second()));
    now.hour() == quiet_hour && into_hour >= offset && last_day != Some(now.date())
}

/// An offset into the quiet hour: at most 45 minutes, so a maintenance still starts inside the hour when the
/// cycle is slow.
pub fn maintain_offset(label: &str) -> Duration {
    Duration::from_millis(jitter(label, "maintain", Duration::from_secs(45 * 60)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn the_jitter_is_stable_within_the_period_and_spreads_labels() {
        let minute = 60 * S;
        assert_eq!(jitter("shop.db", "check", minute), jitter("shop.db", "check", minute));
        assert_ne!(jitter("shop.db", "check", minute), jitter("shop.db", "quick", minute));
        let offsets: Vec<Millis> = (0..1000).map(|i| jitter(&format!("t{i}.db"), "check", minute)).collect();
        assert!(offsets.iter().all(|&o| o < 60_000));
        // 1000 databases over 60 s: no second holds more than a few dozen starts.
        let mut per_second = [0u32; 60];
        for o in &offsets {
            per_second[(*o / 1000) as usize] += 1;
        }
        assert!(per_second.iter().all(|&n| n < 40), "{per_second:?}");
        assert_eq!(jitter("x", "check", Duration::ZERO), 0);
    }

    #[test]
    fn a_job_is_due_at_the_first_slot_after_its_last_run() {
        let period = 10 * S;
        assert_eq!(next_slot_after(0, period, 3_000), 3_000);
        assert_eq!(next_slot_after(3_000, period, 3_000), 13_000);
        assert_eq!(next_slot_after(12_999, period, 3_000), 13_000);
        // A run that took long (or vigil stopped for an hour): the next slot after it, once, not a catch-up.
        assert_eq!(next_slot_after(3_600_500, period, 3_000), 3_603_000);
        assert!(!is_due(12_000, Some(3_000), 0, period, 3_000, false));
        assert!(is_due(13_000, Some(3_000), 0, period, 3_000, false));
        // Off the grid (a first run): not again within half a period, then back on the grid.
        assert_eq!(due_at(Some(12_500), 0, period, 3_000, false), 23_000);
        assert_eq!(due_at(Some(7_000), 0, period, 3_000, false), 13_000);
        // --once: due a tenth of the period early, so a cron run every period never skips one.
        assert_eq!(due_at(Some(100_000), 0, period, 3_000, true), 109_000);
        assert_eq!(due_at(Some(0), 0, 3600 * S, 3_000, true), 3_540_000);
    }

    #[test]
    fn a_restart_neither_repeats_nor_skips() {
        let period = 24 * 3600 * S;
        let offset = jitter("shop.db", "quick", period);
        let ran = next_slot_after(1_000_000, period, offset);
        // Restarted one minute after the run: not due again before the next day's slot.
        assert!(!is_due(ran + 60_000, Some(ran), 0, period, offset, false));
        assert!(!is_due(ran + 60_000, Some(ran), 0, period, offset, true));
        assert!(is_due(ran + 86_400_000, Some(ran), 0, period, offset, false));
    }

    #[test]
    fn a_new_database_waits_at_most_one_period_in_the_loop_and_none_with_once() {
        let period = 60 * S;
        let seen = 1_700_000_000_000;
        let offset = jitter("new.db", "check", period);
        let first = due_at(None, seen, period, offset, false);
        assert!(first >= seen && first < seen + 60_000, "{first} vs {seen}");
        assert_eq!(due_at(None, seen, period, offset, true), 0);
    }

    #[test]
    fn maintenance_runs_once_a_day_in_the_quiet_hour_after_its_offset() {
        let at = |d: u32, h: u32, m: u32| NaiveDate::from_ymd_opt(2026, 12, d).unwrap().and_hms_opt(h, m, 0).unwrap();
        let offset = Duration::from_secs(10 * 60);
        assert!(!maintain_due(at(2, 2, 59), None, 3, offset));
        assert!(!maintain_due(at(2, 3, 5), None, 3, offset));
        assert!(maintain_due(at(2, 3, 10), None, 3, offset));
        assert!(maintain_due(at(2, 3, 59), Some(at(1, 3, 0).date()), 3, offset));
        assert!(!maintain_due(at(2, 3, 30), Some(at(2, 3, 11).date()), 3, offset));
        assert!(!maintain_due(at(2, 4, 0), None, 3, offset));
        assert!(maintain_offset("a.db") < Duration::from_secs(45 * 60));
    }
}
