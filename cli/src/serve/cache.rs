//! The cache every request is answered from: the latest refresh of every database, with the exposition
//! pre-rendered. Requests only read it (a lock held for an `Arc` clone); the refresh loop alone replaces it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

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
}

#[derive(Default)]
pub struct Cache {
    latest: Mutex<Option<Arc<Snapshot>>>,
}

impl Cache {
    /// The latest snapshot; None before the first refresh finished.
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn publish(&self, snapshot: Snapshot) {
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(snapshot));
    }
}

/// Is a snapshot of this age too old to vouch for the databases? Refreshes run every `every` and the last one
/// took `took`: three missed refreshes (plus that duration, so that many slow databases are not "stale" by
/// their size alone) mean the loop is stuck, e.g. on a lock that outlasts the busy timeout again and again.
pub fn is_stale(age: Duration, every: Duration, took: Duration) -> bool {
    age > every.saturating_mul(3).saturating_add(took)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staleness_allows_three_periods_plus_the_refresh_time() {
        let s = Duration::from_secs;
        assert!(!is_stale(s(0), s(60), s(0)));
        assert!(!is_stale(s(180), s(60), s(0)));
        assert!(is_stale(s(181), s(60), s(0)));
        assert!(!is_stale(s(185), s(60), s(5)));
        assert!(is_stale(s(186), s(60), s(5)));
        assert!(!is_stale(Duration::MAX, Duration::MAX, Duration::MAX), "saturates, never overflows");
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
        });
        assert_eq!(&*cache.latest().unwrap().metrics, b"x 1\n");
    }
}
