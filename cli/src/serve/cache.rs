//! The cache every request is answered from: the latest refresh of every database, with the exposition
//! pre-rendered. Requests only read it (a lock held for an `Arc` clone); the refresh loop alone replaces it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::series::Series;
use crate::metrics::DbReport;

/// One complete refresh: every database collected once, one after the other.
pub struct Snapshot {
    /// The reports without their samples (those live on only in `metrics`).
    pub reports: Vec<DbReport>,
    /// The Prometheus text exposition of the whole refresh.
    pub metrics: Arc<[u8]>,
    /// When the refresh finished.
    pub generated_at: SystemTime,
    /// How long the refresh took.
    pub took: Duration,
    /// How long a refresh may wait for one database's lock (`--busy-timeout`).
    pub busy_timeout: Duration,
}

#[derive(Default)]
pub struct Cache {
    latest: Mutex<Option<Arc<Snapshot>>>,
    /// The dashboard's series, one per target in the targets' order (empty before the first refresh).
    series: Mutex<Vec<Series>>,
}

impl Cache {
    /// The latest snapshot; None before the first refresh finished.
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn publish(&self, snapshot: Snapshot) {
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(snapshot));
    }

    /// A copy of one database's series (a request renders it without holding the lock).
    pub fn series_of(&self, index: usize) -> Option<Series> {
        self.series.lock().unwrap_or_else(|e| e.into_inner()).get(index).cloned()
    }

    /// Whether a database's snapshots are due for a new read (true before its first).
    pub fn history_due(&self, index: usize, now: SystemTime) -> bool {
        self.series.lock().unwrap_or_else(|e| e.into_inner()).get(index).is_none_or(|s| s.history_due(now))
    }

    /// Lets the refresh loop update every database's series; `count` sizes the table on first use.
    pub fn update_series(&self, count: usize, update: impl FnOnce(&mut [Series])) {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        series.resize_with(count, Series::default);
        update(&mut series);
    }
}

/// Is a snapshot of this age too old to vouch for the databases? The refresh after it starts at most `every`
/// after it was published (the next slot) and takes about as long as it did (`took`: databases already locked
/// then are in it), plus up to `busy_timeout` for a database newly locked by another process (a refresh waits
/// that long for each lock, then reports the database `unknown` and goes on). Three periods instead of one
/// leave room for a slow disk or a busy machine; only beyond all that is the loop stuck. Without the busy
/// timeout, one locked database made the cache stale during each blocked refresh whenever 3 × `every` was
/// shorter than the busy timeout, and /health then failed for every database.
pub fn is_stale(age: Duration, every: Duration, took: Duration, busy_timeout: Duration) -> bool {
    age > every.saturating_mul(3).saturating_add(took).saturating_add(busy_timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staleness_allows_three_periods_plus_the_refresh_time_plus_the_busy_timeout() {
        let s = Duration::from_secs;
        assert!(!is_stale(s(0), s(60), s(0), s(0)));
        assert!(!is_stale(s(180), s(60), s(0), s(0)));
        assert!(is_stale(s(181), s(60), s(0), s(0)));
        assert!(!is_stale(s(185), s(60), s(5), s(0)));
        assert!(is_stale(s(186), s(60), s(5), s(0)));
        assert!(!is_stale(s(190), s(60), s(5), s(5)));
        assert!(is_stale(s(191), s(60), s(5), s(5)));
        assert!(!is_stale(Duration::MAX, Duration::MAX, Duration::MAX, Duration::MAX), "saturates, never overflows");
    }

    #[test]
    fn a_refresh_blocked_by_a_newly_locked_database_does_not_make_the_cache_stale() {
        let ms = Duration::from_millis;
        // --every 100ms --busy-timeout 5000: the last refresh took 10 ms; the next starts at most 100 ms later
        // and waits 5 s for the lock: published at an age of about 5.11 s.
        let (every, took, busy) = (ms(100), ms(10), ms(5000));
        assert!(!is_stale(every + took + busy, every, took, busy));
        // That refresh took 5.01 s; the ones after it, still locked, take as long again.
        let took = busy + took;
        assert!(!is_stale(every + took, every, took, busy));
        // A loop that has not published for three more periods beyond all that is stuck.
        assert!(is_stale(every * 3 + took + busy + ms(1), every, took, busy));
    }

    #[test]
    fn the_cache_is_empty_until_published() {
        let cache = Cache::default();
        assert!(cache.latest().is_none());
        cache.publish(Snapshot {
            reports: vec![],
            metrics: Arc::from(&b"x 1\n"[..]),
            generated_at: SystemTime::now(),
            took: Duration::ZERO,
            busy_timeout: Duration::ZERO,
        });
        assert_eq!(&*cache.latest().unwrap().metrics, b"x 1\n");
    }
}
