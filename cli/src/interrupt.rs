//! SIGINT (Ctrl-C) and SIGTERM: the running SQL call is interrupted (sqlite3_interrupt), vigil's loops see it
//! and stop, dropping their temporary files, and the command exits 130 saying "interrupted". A second signal
//! exits at once.
//!
//! The signals are blocked in every thread and taken by one thread of their own with sigwait, so no code runs
//! in a signal handler.

use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::Mutex;

use rusqlite::{Connection, InterruptHandle};

use crate::exit;

static RECEIVED: AtomicI32 = AtomicI32::new(0);
static WATCHED: Mutex<Vec<InterruptHandle>> = Mutex::new(Vec::new());

/// Takes over SIGINT and SIGTERM; call before any other thread starts (they inherit the blocked mask).
pub fn install() {
    // SAFETY: plain libc calls on a local, zero-initialised signal set.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return; // the default action (terminate) stays in force
        }
        set
    };
    let waiter = std::thread::Builder::new().name("vigil-signals".into()).spawn(move || loop {
        let mut signal = 0;
        // SAFETY: waits for a signal of a set blocked in every thread.
        if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
            continue;
        }
        if RECEIVED.swap(signal, Ordering::SeqCst) != 0 {
            eprintln!("vigil: interrupted again: exiting at once (temporary files may be left)");
            std::process::exit(exit::INTERRUPTED.into());
        }
        interrupt_all();
    });
    if waiter.is_err() {
        // SAFETY: unblocks what was blocked above, so the signals terminate the process as before.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    }
}

/// Connections watched at most: no command holds more open at once (a few), so the oldest handle dropped is a
/// closed connection's.
const KEEP_WATCHED: usize = 64;

fn interrupt_all() {
    for handle in WATCHED.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        handle.interrupt();
    }
}

/// Interrupts this connection's SQL when a signal arrives (at once if one already has).
pub fn watch(conn: &Connection) {
    let mut watched = WATCHED.lock().unwrap_or_else(|e| e.into_inner());
    // Handles of closed connections are never removed (rusqlite cannot say which are closed), and `vigil serve`
    // opens a connection per database per refresh: keep the newest ones, far more than any command holds open.
    if watched.len() >= KEEP_WATCHED {
        watched.remove(0);
    }
    watched.push(conn.get_interrupt_handle());
    drop(watched);
    if received().is_some() {
        interrupt_all();
    }
}

static BUSY_TIMEOUT_MS: AtomicU32 = AtomicU32::new(0);

/// Waits up to `timeout_ms` for a lock another connection holds, like SQLite's busy timeout, but gives up as
/// soon as a signal has arrived: SQLite's own busy wait sleeps through sqlite3_interrupt.
pub fn wait_for_locks(conn: &mut Connection, timeout_ms: u32) -> rusqlite::Result<()> {
    BUSY_TIMEOUT_MS.store(timeout_ms, Ordering::Relaxed);
    conn.busy_handler(Some(busy_wait))
}

/// Sleeps a little longer on each retry (as SQLite does), for at most the busy timeout in all.
fn busy_wait(retries: i32) -> bool {
    const STEPS_MS: [u64; 12] = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100];
    let retries = retries.max(0) as usize;
    let waited: u64 = (0..retries).map(|i| STEPS_MS[i.min(STEPS_MS.len() - 1)]).sum();
    let timeout = u64::from(BUSY_TIMEOUT_MS.load(Ordering::Relaxed));
    if received().is_some() || waited >= timeout {
        return false;
    }
    let step = STEPS_MS[retries.min(STEPS_MS.len() - 1)].min(timeout - waited);
    std::thread::sleep(std::time::Duration::from_millis(step));
    received().is_none()
}

/// Sleeps until `until` in short naps, returning early (false) when a signal arrived.
pub fn sleep_until(until: std::time::Instant) -> bool {
    loop {
        if received().is_some() {
            return false;
        }
        let now = std::time::Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(std::time::Duration::from_millis(20)));
    }
}

/// The signal received, by name.
pub fn received() -> Option<&'static str> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        libc::SIGINT => Some("SIGINT"),
        libc::SIGTERM => Some("SIGTERM"),
        _ => Some("a signal"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watching_a_connection_per_refresh_keeps_a_bounded_list() {
        for _ in 0..3 * KEEP_WATCHED {
            let conn = Connection::open_in_memory().unwrap();
            watch(&conn);
        }
        assert_eq!(WATCHED.lock().unwrap().len(), KEEP_WATCHED);
    }
}
