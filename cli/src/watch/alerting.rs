//! The one place `vigil watch` meets the alert engine (`crate::alert`): each report becomes observations, a
//! dropped database's alerts resolve, messages go out in the background (never blocking the checks), and the
//! alert states and undelivered messages live in the state file, so a restart neither re-sends nor forgets.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde_json::{json, Value as Json};

use super::jobs::Job;
use super::log::{Level, Log};
use super::state::State;
use crate::alert::{Alerts, Dispatcher, Event, Logger, Notification, Observation, Outcome, Outgoing, Policy, Status};
use crate::metrics::DbReport;
use crate::Failure;

pub use crate::alert::AlertArgs as Args;

pub struct Alerting {
    alerts: Alerts,
    policy: Policy,
    /// None without any --webhook or --alertmanager: the states are still kept (and logged).
    dispatcher: Option<Dispatcher>,
    /// Undelivered messages of an earlier run when there is no sink now: kept, not lost.
    orphans: Vec<Outgoing>,
    log: Log,
    changed: bool,
}

impl Alerting {
    pub fn start(args: &Args, state: &State, log: Log) -> Result<Alerting, Failure> {
        let sinks = args.sinks()?;
        let policy = args.policy()?;
        let alerts: Alerts = from_state(&state.alerts, "alert states")?;
        let pending: Vec<Outgoing> = from_state(&state.pending, "undelivered messages")?;
        let (dispatcher, orphans) = if sinks.is_empty() {
            (None, pending)
        } else {
            (Some(Dispatcher::start(sinks, pending, logger(log))), Vec::new())
        };
        let mut alerting = Alerting { alerts, policy, dispatcher, orphans, log, changed: false };
        alerting.retire_silent_checks();
        Ok(alerting)
    }

    /// Alerts an older vigil raised on checks that no longer alert resolve once, instead of firing forever.
    fn retire_silent_checks(&mut self) {
        for check in SILENT_CHECKS {
            let why = format!("{check} no longer alerts (advice derived from the other checks)");
            for message in self.alerts.retire(check, SystemTime::now(), &why) {
                self.send(message);
            }
        }
    }

    /// Takes in a report: each check once per its own cadence (see [`observes`]). A check only the scans compute
    /// counts at its first finding: waiting `--for` daily quick checks would leave corruption unsaid for days.
    pub fn observe(&mut self, job: Job, report: &DbReport) {
        let path = absolute(&report.target.path);
        let scan_policy = Policy { for_count: 1, ..self.policy };
        for mut seen in Observation::from_report(report).into_iter().filter(|o| observes(job, &o.check)) {
            seen.path = path.clone();
            let policy = if is_scan_check(&seen.check) { &scan_policy } else { &self.policy };
            let had = !self.alerts.is_empty();
            if let Some(message) = self.alerts.observe(&seen, policy) {
                self.send(message);
            }
            self.changed |= had || !self.alerts.is_empty();
        }
    }

    /// A database no longer watched: its firing alerts resolve.
    pub fn forget(&mut self, db: &str) {
        for message in self.alerts.forget(db, SystemTime::now()) {
            self.send(message);
        }
        self.changed = true;
    }

    /// Alertmanager expires alerts not re-sent: the dispatcher re-sends the active ones (at most once a minute).
    pub fn pump(&self) {
        if let Some(dispatcher) = &self.dispatcher {
            let firing = self.alerts.firing();
            if !firing.is_empty() {
                dispatcher.resend_active(firing);
            }
        }
    }

    /// Waits for the queued messages until the deadline (retries included).
    pub fn flush(&mut self, deadline: Instant) {
        self.pump();
        if let Some(dispatcher) = &self.dispatcher {
            dispatcher.flush(deadline);
        }
    }

    /// Puts the alert states and undelivered messages into the state; whether they changed since last time. When
    /// either cannot be serialised the state is left as it was (the caller keeps the previous file rather than
    /// write them as null, which would forget every alert).
    pub fn store(&mut self, state: &mut State) -> Result<bool, String> {
        let pending: Vec<Outgoing> = match &self.dispatcher {
            Some(dispatcher) => dispatcher.pending(),
            None => self.orphans.clone(),
        };
        let unserialisable = |what: &str, e: serde_json::Error| {
            format!("cannot serialise the {what}: {}", crate::output::cut(&e.to_string(), 200))
        };
        let pending = serde_json::to_value(&pending).map_err(|e| unserialisable("undelivered alerts", e))?;
        let alerts = serde_json::to_value(&self.alerts).map_err(|e| unserialisable("alert states", e))?;
        let changed = self.changed || pending != state.pending;
        state.alerts = alerts;
        state.pending = pending;
        self.changed = false;
        Ok(changed)
    }

    fn send(&mut self, message: Notification) {
        let status = match message.status {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        };
        let level = match (message.status, message.severity.as_str()) {
            (Status::Firing, "critical") => Level::Error,
            (Status::Firing, _) => Level::Warning,
            (Status::Resolved, _) => Level::Info,
        };
        let fields = [
            ("check", json!(message.check)),
            ("status", json!(status)),
            ("severity", json!(message.severity)),
            ("fingerprint", json!(message.fingerprint)),
            ("detail", json!(message.detail)),
        ];
        self.log.event(level, Some(&message.db), "alert", &fields);
        if let Some(dispatcher) = &self.dispatcher {
            dispatcher.send(message);
        }
        self.changed = true;
    }
}

/// Checks only the integrity and page scans (quick and full checks) compute. A cheap check does not run them:
/// its `integrity` row is the last recorded scan's (or `info`, not checked), which the scans already observed.
pub const SCAN_CHECKS: &[&str] = &["integrity", "foreign_keys", "fragmentation", "unused_pct", "fragmentation_method"];

/// Checks that never alert: `maintenance` is advice derived from the others (it would repeat their alerts, and
/// flap between a scan's "integrity is critical" and a cheap check's "nothing to do").
pub const SILENT_CHECKS: &[&str] = &["maintenance"];

fn is_scan_check(check: &str) -> bool {
    SCAN_CHECKS.contains(&check)
}

/// Whether a report of this job counts as an observation of this check: a cheap check observes every check but
/// the scans' (`vigil_up` included), a quick or full check only the scans'; so each check is counted once per its
/// own cadence, and `--for 3` means three checks, not the three reports of one instant.
pub fn observes(job: Job, check: &str) -> bool {
    if SILENT_CHECKS.contains(&check) {
        return false;
    }
    match job {
        Job::Check => !is_scan_check(check),
        Job::Quick | Job::Full => is_scan_check(check),
        _ => false,
    }
}

/// The database's path for people reading a notification far from the command line: absolute, its directory
/// resolved (`../srv/app.db` means nothing in Slack); as given when the directory cannot be resolved.
fn absolute(path: &Path) -> PathBuf {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    match (std::fs::canonicalize(parent), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
    }
}

/// A part of the state file, `null` when absent; a part this vigil cannot read is refused like a foreign file.
fn from_state<T: serde::de::DeserializeOwned + Default>(value: &Json, what: &str) -> Result<T, Failure> {
    if value.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(value.clone()).map_err(|_| {
        Failure::usage(format!(
            "--state: its {what} are not readable by this vigil; move the state file away (its alerts would be \
             sent again) or name another --state FILE"
        ))
    })
}

/// Delivery outcomes as log events (the sink's label never carries a URL's path or secret).
fn logger(log: Log) -> Logger {
    Arc::new(move |event: &Event| {
        let (name, level) = match event.outcome {
            Outcome::Delivered => ("alert sent", Level::Info),
            Outcome::Retrying(_) => ("alert not delivered", Level::Warning),
            Outcome::Failed | Outcome::Dropped => ("alert failed", Level::Error),
        };
        let mut fields = vec![
            ("sink", json!(event.sink)),
            ("alerts", json!(event.alerts.join(", "))),
            ("attempt", json!(event.attempt)),
        ];
        if let Outcome::Retrying(after) = event.outcome {
            fields.push(("retry_in_s", json!((after.as_secs_f64() * 10.0).round() / 10.0)));
        }
        if let Some(reason) = &event.reason {
            fields.push(("reason", json!(reason)));
        }
        log.event(level, None, name, &fields);
    })
}

#[cfg(test)]
mod store_tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn state_that_cannot_be_serialised_is_not_stored_as_null() {
        let policy = Policy { for_count: 1, ..Policy::default() };
        let log = Log { json: true };
        let mut alerting =
            Alerting { alerts: Alerts::default(), policy, dispatcher: None, orphans: vec![], log, changed: false };
        let seen = Observation {
            db: "a.db".into(),
            path: std::ffi::OsStr::from_bytes(b"/x/bad\xff.db").into(),
            check: "freelist_ratio".into(),
            status: "warning".into(),
            value: Some(0.5),
            warning: Some(0.2),
            critical: Some(0.6),
            larger_is_worse: Some(true),
            detail: String::new(),
            at: SystemTime::now(),
        };
        let _ = alerting.alerts.observe(&seen, &policy);
        assert!(!alerting.alerts.is_empty());
        let mut state = State { alerts: json!({"kept": true}), pending: json!([]), ..State::default() };
        let error = alerting.store(&mut state).unwrap_err();
        assert!(error.contains("alert states"), "{error}");
        assert_eq!(state.alerts, json!({"kept": true}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_check_is_observed_by_one_cadence_and_maintenance_by_none() {
        for check in ["vigil_up", "freelist_pct", "last_backup", "wal_size"] {
            assert!(observes(Job::Check, check), "{check}");
            assert!(!observes(Job::Quick, check) && !observes(Job::Full, check), "{check}");
        }
        for check in SCAN_CHECKS {
            assert!(!observes(Job::Check, check), "{check}");
            assert!(observes(Job::Quick, check) && observes(Job::Full, check), "{check}");
        }
        for job in Job::ALL {
            assert!(!observes(job, "maintenance"), "{job:?}");
        }
    }

    #[test]
    fn notification_paths_are_absolute_and_resolved() {
        let here = std::env::current_dir().unwrap().canonicalize().unwrap();
        let up = here.parent().unwrap().to_path_buf();
        assert_eq!(absolute(Path::new("shop.db")), here.join("shop.db"));
        assert_eq!(absolute(Path::new("../shop.db")), up.join("shop.db"));
        assert_eq!(absolute(Path::new("/nowhere/x/../shop.db")), Path::new("/nowhere/x/../shop.db"));
    }
}
