//! Progress of long operations, for whoever watches from another connection of the same process (the CLI
//! draws its progress bars from `vigil_progress()` on a second connection while the work runs), and the
//! point where they notice an interrupt: each report checks whether the caller's connection was interrupted
//! (sqlite3_interrupt, SQLite 3.41+), so that vigil's copy, hash and compression loops stop with
//! SQLITE_INTERRUPT and drop their temporary files.

use std::sync::Mutex;
use std::time::Instant;

use serde_json::{json, Value as Json};

use crate::error::{Error, Result};
use crate::sqlite::{Db, Value, SQLITE_INTERRUPT};

struct Running {
    id: u64,
    operation: String,
    done: u64,
    total: u64,
    started: Instant,
}

static RUNNING: Mutex<Vec<Running>> = Mutex::new(Vec::new());
static NEXT_ID: Mutex<u64> = Mutex::new(0);

/// A running operation; it disappears from `vigil_progress()` when dropped.
pub struct Tracker {
    id: u64,
    /// The connection the operation was called on, alive for the length of the call.
    caller: Option<Db>,
}

impl Tracker {
    pub fn start(operation: impl Into<String>, total: u64) -> Tracker {
        let id = {
            let mut next = NEXT_ID.lock().unwrap_or_else(|e| e.into_inner());
            *next += 1;
            *next
        };
        let entry = Running { id, operation: operation.into(), done: 0, total, started: Instant::now() };
        RUNNING.lock().unwrap_or_else(|e| e.into_inner()).push(entry);
        Tracker { id, caller: None }
    }

    /// Started by a function running on `caller`: interrupting that connection stops the operation.
    pub fn for_caller(mut self, caller: Db) -> Tracker {
        self.caller = Some(caller);
        self
    }

    /// The connection the operation was called on, when known.
    pub fn caller(&self) -> Option<Db> {
        self.caller
    }

    /// An error once the caller's connection was interrupted.
    pub fn check(&self) -> Result<()> {
        match self.caller {
            Some(db) if db.is_interrupted() => Err(Error::with_code("interrupted", SQLITE_INTERRUPT)),
            _ => Ok(()),
        }
    }

    /// A new phase (copy, compress, verify): its name, and how many bytes it will handle.
    pub fn phase(&self, operation: impl Into<String>, total: u64) {
        self.update(|r| {
            r.operation = operation.into();
            r.total = total;
            r.done = 0;
        });
    }

    /// Reports progress; an error once the caller was interrupted (see `check`).
    pub fn advance(&self, done: u64, total: u64) -> Result<()> {
        self.update(|r| {
            r.done = done;
            r.total = total;
        });
        self.check()
    }

    fn update(&self, change: impl FnOnce(&mut Running)) {
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = running.iter_mut().find(|r| r.id == self.id) {
            change(entry);
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        RUNNING.lock().unwrap_or_else(|e| e.into_inner()).retain(|r| r.id != self.id);
    }
}

/// `vigil_progress()`: the long operations running in this process, as a JSON array.
pub fn vigil_progress(_db: Db, _args: &[Value]) -> Result<Value> {
    let running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    let list: Vec<Json> = running
        .iter()
        .map(|r| {
            json!({
                "operation": r.operation,
                "done_bytes": r.done,
                "total_bytes": r.total,
                "elapsed_ms": r.started.elapsed().as_millis() as u64,
            })
        })
        .collect();
    Ok(Value::Text(Json::Array(list).to_string()))
}
