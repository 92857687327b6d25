//! The FFI boundary: every callback runs here, so that a panic becomes an SQL error instead of aborting
//! the host process, and every error names the SQL function it came from.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{Error, Result};

thread_local! {
    /// How many vigil callbacks are running on this thread, one inside another.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Counts a running callback for as long as it lives, also when it unwinds.
struct Running;

impl Running {
    fn enter() -> Running {
        DEPTH.with(|d| d.set(d.get() + 1));
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// Whether the running callback was reached from inside another vigil callback (through SQL that vigil ran).
pub fn is_nested() -> bool {
    DEPTH.with(|d| d.get() > 1)
}

/// Whether a vigil callback is running on this thread: SQL run now is vigil's own (query statistics skip it).
pub fn is_running() -> bool {
    DEPTH.with(|d| d.get() > 0)
}

/// Runs `work` for the SQL function `name`; errors and panics come back as `"<name>: <what>"`.
pub fn run<T>(name: &str, work: impl FnOnce() -> Result<T>) -> Result<T> {
    let _running = Running::enter();
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(result) => result.map_err(|e| e.context(name)),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(Error::new(format!(
                "{name}: internal error ({what}); the database was not changed by vigil, please report this"
            )))
        }
    }
}

/// Virtual-table error messages go through sqlite3_mprintf as a format string: escape `%`.
pub fn escape_percent(message: &str) -> String {
    message.replace('%', "%%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_naming_the_function() {
        let result: Result<()> = run("health_report", || panic!("boom"));
        let message = result.unwrap_err().to_string();
        assert!(message.starts_with("health_report: internal error (boom)"), "{message}");
    }

    #[test]
    fn errors_are_prefixed_with_the_function_name() {
        let result: Result<()> = run("health_json", || Err(Error::new("bad options: x")));
        assert_eq!(result.unwrap_err().to_string(), "health_json: bad options: x");
    }

    #[test]
    fn a_callback_inside_another_is_nested() {
        assert!(!is_nested());
        let inner = run("outer", || run("inner", || Ok(is_nested())));
        assert_eq!(inner, Ok(true));
        let _ = run("outer", || -> Result<()> { panic!("boom") });
        assert_eq!(run("alone", || Ok(is_nested())), Ok(false));
    }

    #[test]
    fn percent_signs_are_escaped_for_mprintf() {
        assert_eq!(escape_percent("95% done"), "95%% done");
    }
}
