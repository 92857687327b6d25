//! The trace hook of one connection: times each statement from its first step (SQLITE_TRACE_STMT) to its end
//! (SQLITE_TRACE_PROFILE) with the monotonic clock, counts its rows, and hands the finished call to the
//! process's registry. Normalisation is cached per statement (and per raw text), so the hot path never lexes.
//!
//! Statements vigil runs inside its own functions (on the caller's connection) are not counted: their time is
//! part of the statement that called the function, which is.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Instant;

use super::normalize;
use super::registry::{self, Call, Counters};
use crate::error::Result;
use crate::guard;
use crate::sqlite::{trace_mask, Db, StmtCounter, TraceEvent, TraceHandler, TraceHook, TracedStmt};

const MASK: u32 = trace_mask::STMT | trace_mask::PROFILE | trace_mask::ROW | trace_mask::CLOSE;
/// Statements (and bytes of their texts) remembered per connection before the ones not running are forgotten.
const MAX_SLOTS: usize = 512;
const MAX_SLOT_BYTES: usize = 4 << 20;
/// Raw statement texts whose normalisation is cached per connection, and their bytes.
const MAX_SHAPES: usize = 1024;
const MAX_SHAPE_BYTES: usize = 1 << 20;

const COUNTERS: [StmtCounter; 5] =
    [StmtCounter::FullscanStep, StmtCounter::Sort, StmtCounter::Autoindex, StmtCounter::VmStep, StmtCounter::Reprepare];

/// A normalised statement.
struct Shape {
    queryid: i64,
    text: Arc<str>,
}

struct Run {
    start: Instant,
    rows: u64,
    changes_before: i64,
}

/// A statement this connection ran: its text (the address can be reused by another statement), its shape,
/// its counters at the end of its last run, and its current run.
struct Slot {
    sql: Box<[u8]>,
    shape: Arc<Shape>,
    baseline: [u32; 5],
    run: Option<Run>,
}

/// Statement addresses hash by a multiply: they are distinct and the map is private.
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    }
}

#[derive(Default)]
struct Cache {
    slots: HashMap<usize, Slot, BuildHasherDefault<AddressHasher>>,
    slot_bytes: usize,
    shapes: HashMap<Box<[u8]>, Arc<Shape>>,
    shape_bytes: usize,
}

impl Cache {
    fn shape(&mut self, sql: &[u8]) -> Arc<Shape> {
        if let Some(shape) = self.shapes.get(sql) {
            return shape.clone();
        }
        let text = String::from_utf8_lossy(sql);
        let normalized = normalize::normalize(&text);
        let shape = Arc::new(Shape { queryid: normalize::queryid(&normalized), text: Arc::from(normalized) });
        if self.shapes.len() >= MAX_SHAPES || self.shape_bytes + sql.len() > MAX_SHAPE_BYTES {
            self.shapes.clear();
            self.shape_bytes = 0;
        }
        self.shape_bytes += sql.len();
        self.shapes.insert(sql.into(), shape.clone());
        shape
    }

    /// Keeps the table bounded: statements finalized long ago leave no trace event, so forget the idle ones.
    fn make_room(&mut self, adding: usize) {
        if self.slots.len() >= MAX_SLOTS || self.slot_bytes + adding > MAX_SLOT_BYTES {
            self.slots.retain(|_, slot| slot.run.is_some());
            self.slot_bytes = self.slots.values().map(|slot| slot.sql.len()).sum();
        }
        self.slot_bytes += adding;
    }
}

/// The hook of one connection.
pub struct Tracer {
    /// The connection's handle, as an address (the hook is shared with the process's table of hooks).
    db: usize,
    database: u32,
    cache: Mutex<Cache>,
}

fn counters(stmt: TracedStmt) -> [u32; 5] {
    COUNTERS.map(|c| stmt.counter(c))
}

impl Tracer {
    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn connection(&self) -> Db {
        Db::from_raw(self.db as *mut _)
    }

    fn statement_started(&self, stmt: TracedStmt, sql: &[u8]) {
        // Only a statement that can write may change rows (total_changes takes the connection's mutex).
        let changes_before = if stmt.is_readonly() { -1 } else { self.connection().total_changes() };
        let mut cache = self.cache();
        let id = stmt.id();
        let run = Run { start: Instant::now(), rows: 0, changes_before };
        match cache.slots.get_mut(&id) {
            // A trigger program inside the running statement.
            Some(slot) if slot.run.is_some() && sql.starts_with(b"--") => return,
            Some(slot) if *slot.sql == *sql => {
                slot.run = Some(run);
                return;
            }
            _ => {}
        }
        cache.make_room(sql.len());
        let shape = cache.shape(sql);
        // Normalising took time: the run starts now.
        let run = Run { start: Instant::now(), ..run };
        cache.slots.insert(id, Slot { sql: sql.into(), shape, baseline: counters(stmt), run: Some(run) });
    }

    fn row(&self, stmt: TracedStmt) {
        if let Some(run) = self.cache().slots.get_mut(&stmt.id()).and_then(|slot| slot.run.as_mut()) {
            run.rows += 1;
        }
    }

    fn statement_finished(&self, stmt: TracedStmt) {
        let end = Instant::now();
        let (run, shape, counters) = {
            let mut cache = self.cache();
            let Some(slot) = cache.slots.get_mut(&stmt.id()) else { return };
            let Some(run) = slot.run.take() else { return };
            let now = counters(stmt);
            let delta: Counters = std::array::from_fn(|i| u64::from(now[i].wrapping_sub(slot.baseline[i])));
            slot.baseline = now;
            (run, slot.shape.clone(), delta)
        };
        let ns = end.saturating_duration_since(run.start).as_nanos().min(u128::from(u64::MAX)) as u64;
        let connection = self.connection();
        // Rows returned; for a statement that returned none, the rows it changed (if it changed any).
        let rows = if run.rows > 0 {
            run.rows
        } else if run.changes_before >= 0 && connection.total_changes() != run.changes_before {
            connection.changes().max(0) as u64
        } else {
            0
        };
        let parameters = (registry::log_parameters() && ns >= registry::slow_threshold_ns())
            .then(|| stmt.expanded_sql(registry::TEXT_BYTES))
            .flatten();
        registry::registry().record(Call {
            database: self.database,
            queryid: shape.queryid,
            query: &shape.text,
            ns,
            rows,
            counters,
            at: end,
            parameters,
        });
    }

    /// Whether one of the statements running on the connection now was seen starting: proof that this hook
    /// is still the connection's trace callback (asked from inside a running statement).
    fn sees_running(&self, running: &[usize]) -> bool {
        let cache = self.cache();
        running.iter().any(|id| cache.slots.get(id).is_some_and(|slot| slot.run.is_some()))
    }
}

impl TraceHandler for Tracer {
    fn event(&self, event: TraceEvent<'_>) {
        match event {
            // SQL vigil runs inside its own functions is part of the caller's statement.
            TraceEvent::Stmt { .. } if guard::is_running() => {}
            TraceEvent::Stmt { stmt, sql } => self.statement_started(stmt, sql),
            TraceEvent::Row { stmt } => self.row(stmt),
            TraceEvent::Profile { stmt, .. } => self.statement_finished(stmt),
            TraceEvent::Close { db } => {
                hooks().remove(&(db.raw() as usize));
            }
        }
    }
}

/// Every connection of the process vigil traces (or traced until the host replaced its callback).
static HOOKS: LazyLock<Mutex<HashMap<usize, TraceHook<Tracer>>>> = LazyLock::new(Default::default);

fn hooks() -> MutexGuard<'static, HashMap<usize, TraceHook<Tracer>>> {
    HOOKS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether a connection's statements are being counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracing {
    Off,
    On,
    /// Started, but the host has since installed its own trace callback (one per connection).
    Lost,
}

impl Tracing {
    pub fn name(self) -> &'static str {
        match self {
            Tracing::Off => "off",
            Tracing::On => "on",
            Tracing::Lost => "lost",
        }
    }
}

/// The state of `db`'s tracing, asked from a statement running on it.
pub fn status(db: Db) -> Tracing {
    let Some(hook) = hooks().get(&(db.raw() as usize)).cloned() else { return Tracing::Off };
    if hook.handler().sees_running(&db.running_statement_ids()) {
        Tracing::On
    } else {
        Tracing::Lost
    }
}

/// Installs a fresh hook on `db` (also over a lost one, or one whose connection address was reused).
pub fn start(db: Db) -> Result<()> {
    let name = db.filename("main")?.unwrap_or_default();
    let database = {
        let mut registry = registry::registry();
        registry.ever_traced = true;
        registry.database_id(&name)
    };
    let hook = TraceHook::new(Tracer { db: db.raw() as usize, database, cache: Mutex::default() });
    hook.install(db, MASK)?;
    if let Some(old) = hooks().insert(db.raw() as usize, hook) {
        // The new hook replaced it in SQLite (or the host had): SQLite holds it no more.
        old.release();
    }
    Ok(())
}

/// Stops tracing `db`; uninstalls the callback only when it is still vigil's. Returns what it was.
pub fn stop(db: Db) -> Tracing {
    let was = status(db);
    if let Some(hook) = hooks().remove(&(db.raw() as usize)) {
        match was {
            Tracing::On => hook.uninstall(db),
            Tracing::Lost | Tracing::Off => hook.release(),
        }
    }
    was
}

/// How many connections of the process have a hook.
pub fn traced_connections() -> usize {
    hooks().len()
}
