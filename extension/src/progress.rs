//! Progress of long operations, for whoever watches from another connection of the same process (the CLI
//! draws its progress bars from `vigil_progress()` on a second connection while the work runs).

use std::sync::Mutex;
use std::time::Instant;

use serde_json::{json, Value as Json};

use crate::error::Result;
use crate::sqlite::{Db, Value};

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
        Tracker { id }
    }

    /// A new phase (copy, compress, verify): its name, and how many bytes it will handle.
    pub fn phase(&self, operation: impl Into<String>, total: u64) {
        self.update(|r| {
            r.operation = operation.into();
            r.total = total;
            r.done = 0;
        });
    }

    pub fn advance(&self, done: u64, total: u64) {
        self.update(|r| {
            r.done = done;
            r.total = total;
        });
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
