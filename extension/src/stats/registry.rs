//! The process's statement table: one entry per (database, normalised statement), bounded (the least-called
//! entries are evicted, and counted), plus per-database totals that keep evicted statements, and the slow-query
//! ring. One mutex, taken once per finished statement and never while SQL runs.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use super::histogram::{export_bucket, merge_export, record_export_at, LogHistogram, Moments};
use crate::store::query_stats::{DurationHistogram, QueryTotals, StatementTotals};

pub const DEFAULT_SLOW_MS: f64 = 1000.0;
pub const DEFAULT_MAX: usize = 5000;
pub const DEFAULT_SLOW_LOG: usize = 100;
/// Longest statement text kept (normalised text, or expanded parameters in the slow log).
pub const TEXT_BYTES: usize = 4096;

/// Read lock-free by the trace hook, before it takes the registry's mutex.
static SLOW_NS: AtomicU64 = AtomicU64::new((DEFAULT_SLOW_MS * 1e6) as u64);
static LOG_PARAMETERS: AtomicBool = AtomicBool::new(false);

/// Wall-clock time of an `Instant`: hooks read only the monotonic clock; reports convert.
static ANCHOR: LazyLock<(Instant, SystemTime)> = LazyLock::new(|| (Instant::now(), SystemTime::now()));

pub fn wall_time(at: Instant) -> SystemTime {
    let (instant, system) = *ANCHOR;
    match at.checked_duration_since(instant) {
        Some(after) => system + after,
        None => system - instant.duration_since(at),
    }
}

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn slow_threshold_ns() -> u64 {
    SLOW_NS.load(Ordering::Relaxed)
}

pub fn log_parameters() -> bool {
    LOG_PARAMETERS.load(Ordering::Relaxed)
}

/// `sqlite3_stmt_status` counters of one run, in the order of [`crate::sqlite::StmtCounter`]'s values 1–5.
pub type Counters = [u64; 5];

/// One finished run of a statement.
pub struct Call<'a> {
    pub database: u32,
    pub queryid: i64,
    pub query: &'a Arc<str>,
    pub ns: u64,
    pub rows: u64,
    pub counters: Counters,
    pub at: Instant,
    /// The statement with its parameters' values, only for slow calls with `log_parameters`.
    pub parameters: Option<String>,
}

/// (database, queryid): queryids are already hashes, so the table mixes them with a multiply, not SipHash.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key {
    database: u32,
    queryid: i64,
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64((self.queryid as u64) ^ (u64::from(self.database) << 32).rotate_left(7));
    }
}

#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub struct Entry {
    pub query: Arc<str>,
    /// Durations in milliseconds.
    pub moments: Moments,
    pub total_ns: u64,
    pub min_ns: u64,
    pub max_ns: u64,
    pub rows: u64,
    pub slow_calls: u64,
    pub counters: Counters,
    pub histogram: LogHistogram,
    pub export: DurationHistogram,
    pub first_seen: Instant,
    pub last_seen: Instant,
}

impl Entry {
    fn new(query: Arc<str>, at: Instant) -> Entry {
        Entry {
            query,
            moments: Moments::default(),
            total_ns: 0,
            min_ns: u64::MAX,
            max_ns: 0,
            rows: 0,
            slow_calls: 0,
            counters: [0; 5],
            histogram: LogHistogram::default(),
            export: DurationHistogram::default(),
            first_seen: at,
            last_seen: at,
        }
    }

    /// Adds a call; returns the entry's text when the call goes to the slow-query log (`logged`).
    fn add(&mut self, call: &Call, slow: bool, bucket: usize, logged: bool) -> Option<Arc<str>> {
        self.moments.add(call.ns as f64 / 1e6);
        self.total_ns += call.ns;
        self.min_ns = self.min_ns.min(call.ns);
        self.max_ns = self.max_ns.max(call.ns);
        self.rows += call.rows;
        self.slow_calls += u64::from(slow);
        for (total, run) in self.counters.iter_mut().zip(call.counters) {
            *total += run;
        }
        self.histogram.record(call.ns);
        record_export_at(&mut self.export, bucket, call.ns as f64 / 1e9);
        self.last_seen = call.at;
        logged.then(|| self.query.clone())
    }

    /// The `p` quantile in milliseconds.
    pub fn quantile_ms(&self, p: f64) -> f64 {
        self.histogram.quantile(p, self.min_ns, self.max_ns).unwrap_or(0) as f64 / 1e6
    }
}

/// One slow call, as the slow-query log keeps it.
pub struct SlowCall {
    pub at: Instant,
    pub database: u32,
    pub queryid: i64,
    pub ns: u64,
    pub query: Arc<str>,
    pub parameters: Option<String>,
}

/// Every traced statement of one database, evicted ones included.
#[derive(Default)]
pub struct DatabaseTotals {
    pub durations: DurationHistogram,
    pub slow_total: u64,
    pub evictions: u64,
}

pub struct Registry {
    pub max: usize,
    pub slow_log_size: usize,
    entries: HashMap<Key, Entry, std::hash::BuildHasherDefault<KeyHasher>>,
    /// Interned main-database file names ("" for in-memory and temporary databases).
    databases: Vec<String>,
    /// Indexed by database id.
    totals: Vec<DatabaseTotals>,
    pub slow: VecDeque<SlowCall>,
    pub evictions: u64,
    pub slow_total: u64,
    pub calls: u64,
    /// When the statistics began (the first trace, or the last reset).
    pub since: SystemTime,
    /// Whether any connection of this process was ever traced.
    pub ever_traced: bool,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| Mutex::new(Registry::new()));

/// The process's registry. A panic while it was held leaves consistent-enough counters: keep going.
pub fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Registry {
    fn new() -> Registry {
        LazyLock::force(&ANCHOR);
        Registry {
            max: DEFAULT_MAX,
            slow_log_size: DEFAULT_SLOW_LOG,
            entries: HashMap::default(),
            databases: Vec::new(),
            totals: Vec::new(),
            slow: VecDeque::new(),
            evictions: 0,
            slow_total: 0,
            calls: 0,
            since: SystemTime::now(),
            ever_traced: false,
        }
    }

    pub fn set_slow_ms(&mut self, ms: f64) {
        SLOW_NS.store((ms * 1e6) as u64, Ordering::Relaxed);
    }

    pub fn slow_ms(&self) -> f64 {
        slow_threshold_ns() as f64 / 1e6
    }

    pub fn set_log_parameters(&mut self, on: bool) {
        LOG_PARAMETERS.store(on, Ordering::Relaxed);
    }

    pub fn set_max(&mut self, max: usize) {
        self.max = max.max(1);
        if self.entries.len() > self.max {
            let excess = self.entries.len() - self.max;
            self.evict(excess);
        }
    }

    pub fn set_slow_log_size(&mut self, size: usize) {
        self.slow_log_size = size;
        while self.slow.len() > size {
            self.slow.pop_front();
        }
    }

    pub fn database_id(&mut self, name: &str) -> u32 {
        match self.databases.iter().position(|d| d == name) {
            Some(i) => i as u32,
            None => {
                self.databases.push(name.to_string());
                (self.databases.len() - 1) as u32
            }
        }
    }

    /// The id of a database some traced connection has used, without interning a new one.
    pub fn known_database(&self, name: &str) -> Option<u32> {
        self.databases.iter().position(|d| d == name).map(|i| i as u32)
    }

    pub fn database_name(&self, id: u32) -> &str {
        self.databases.get(id as usize).map_or("", String::as_str)
    }

    pub fn record(&mut self, call: Call) {
        let slow = call.ns >= slow_threshold_ns();
        let seconds = call.ns as f64 / 1e9;
        let bucket = export_bucket(seconds);
        let totals = self.totals_mut(call.database);
        record_export_at(&mut totals.durations, bucket, seconds);
        totals.slow_total += u64::from(slow);
        self.calls += 1;
        self.slow_total += u64::from(slow);
        let key = Key { database: call.database, queryid: call.queryid };
        let logged = slow && self.slow_log_size > 0;
        // One lookup for a known statement (the common case).
        let query = match self.entries.get_mut(&key) {
            Some(entry) => entry.add(&call, slow, bucket, logged),
            None => self.new_entry(key, call.query, call.at).add(&call, slow, bucket, logged),
        };
        if let Some(query) = query {
            if self.slow.len() >= self.slow_log_size {
                self.slow.pop_front();
            }
            self.slow.push_back(SlowCall {
                at: call.at,
                database: call.database,
                queryid: call.queryid,
                ns: call.ns,
                query,
                parameters: call.parameters,
            });
        }
    }

    fn new_entry(&mut self, key: Key, query: &Arc<str>, at: Instant) -> &mut Entry {
        if self.entries.len() >= self.max {
            // pg_stat_statements' way: free 5 % at once, so that a stream of new statements does not evict
            // on every call.
            let batch = (self.max / 20).max(1).max(self.entries.len() + 1 - self.max);
            self.evict(batch);
        }
        self.entries.entry(key).or_insert_with(|| Entry::new(cut_shared(query), at))
    }

    /// Evicts the `n` least-called entries (the least recently used first among equals).
    fn evict(&mut self, n: usize) {
        let n = n.min(self.entries.len());
        if n == 0 {
            return;
        }
        let mut ranked: Vec<(u64, Instant, Key)> =
            self.entries.iter().map(|(k, e)| (e.moments.count, e.last_seen, *k)).collect();
        ranked.select_nth_unstable_by(n - 1, |a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        for (_, _, key) in &ranked[..n] {
            self.entries.remove(key);
            self.totals_mut(key.database).evictions += 1;
        }
        self.evictions += n as u64;
    }

    pub fn reset(&mut self) {
        self.entries.clear();
        self.totals.clear();
        self.slow.clear();
        self.evictions = 0;
        self.slow_total = 0;
        self.calls = 0;
        self.since = SystemTime::now();
    }

    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    /// Entries with their database, most total time first.
    pub fn entries(&self) -> Vec<(&str, i64, &Entry)> {
        let mut all: Vec<(&str, i64, &Entry)> =
            self.entries.iter().map(|(k, e)| (self.database_name(k.database), k.queryid, e)).collect();
        all.sort_by(|a, b| b.2.total_ns.cmp(&a.2.total_ns).then(a.1.cmp(&b.1)));
        all
    }

    /// The entries of one database.
    pub fn entries_of(&self, database: u32) -> impl Iterator<Item = (i64, &Entry)> {
        self.entries.iter().filter(move |(k, _)| k.database == database).map(|(k, e)| (k.queryid, e))
    }

    pub fn totals_of(&self, database: u32) -> Option<&DatabaseTotals> {
        self.totals.get(database as usize)
    }

    fn totals_mut(&mut self, database: u32) -> &mut DatabaseTotals {
        let at = database as usize;
        if self.totals.len() <= at {
            self.totals.resize_with(at + 1, DatabaseTotals::default);
        }
        &mut self.totals[at]
    }

    /// This process's statistics: one database's (`Some(id)`) or all of them.
    pub fn query_totals(&self, database: Option<u32>) -> QueryTotals {
        let mut out = QueryTotals::default();
        for (id, totals) in self.totals.iter().enumerate() {
            if database.is_none_or(|d| d as usize == id) {
                merge_export(&mut out.durations, &totals.durations);
                out.slow_total += totals.slow_total;
                out.evictions += totals.evictions;
            }
        }
        for (key, entry) in &self.entries {
            if database.is_none_or(|d| d == key.database) {
                out.statements.push(StatementTotals {
                    queryid: key.queryid,
                    query: entry.query.to_string(),
                    calls: entry.moments.count,
                    rows: entry.rows,
                    total_seconds: entry.total_ns as f64 / 1e9,
                    slow_calls: entry.slow_calls,
                });
            }
        }
        out.statements.sort_by_key(|s| s.queryid);
        out.entries = out.statements.len() as u64;
        out
    }
}

fn cut_shared(text: &Arc<str>) -> Arc<str> {
    if text.len() <= TEXT_BYTES {
        text.clone()
    } else {
        Arc::from(crate::error::cut_bytes(text.as_bytes(), TEXT_BYTES))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(registry: &mut Registry, queryid: i64, ns: u64) {
        let query: Arc<str> = Arc::from(format!("SELECT {queryid}"));
        registry.record(Call {
            database: 0,
            queryid,
            query: &query,
            ns,
            rows: 1,
            counters: [0; 5],
            at: Instant::now(),
            parameters: None,
        });
    }

    #[test]
    fn the_table_stays_bounded_and_the_most_called_statements_survive() {
        let mut registry = Registry::new();
        registry.set_max(100);
        for hot in 0..10 {
            for _ in 0..50 {
                call(&mut registry, hot, 1000);
            }
        }
        for cold in 10..2000 {
            call(&mut registry, cold, 1000);
            assert!(registry.entry_count() <= 100);
        }
        assert!(registry.evictions >= 1900, "{}", registry.evictions);
        let totals = registry.query_totals(None);
        for hot in 0..10 {
            let kept = totals.statements.iter().find(|s| s.queryid == hot).expect("a hot statement was evicted");
            assert_eq!(kept.calls, 50);
        }
        assert_eq!(totals.durations.count, 2490, "evicted calls stay in the totals");
        assert_eq!(totals.evictions, registry.evictions);
    }
}
