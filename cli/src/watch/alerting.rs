//! The one place `vigil watch` meets the alert engine (`crate::alert`): each report becomes observations, a
//! dropped database's alerts resolve, messages go out in the background (never blocking the checks), and the
//! alert states and undelivered messages live in the state file, so a restart neither re-sends nor forgets.

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
        Ok(Alerting { alerts, policy, dispatcher, orphans, log, changed: false })
    }

    /// Takes in a report: `vigil_up` and every check it ran. A cheap check does not run the integrity check (it
    /// says `info`, not checked): that must not count as clean for an alert a quick or full check raised.
    pub fn observe(&mut self, job: Job, report: &DbReport) {
        let observations = Observation::from_report(report);
        for seen in observations.iter().filter(|o| job != Job::Check || o.check != "integrity") {
            let had = !self.alerts.is_empty();
            if let Some(message) = self.alerts.observe(seen, &self.policy) {
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
        let level = if message.status == Status::Firing { Level::Warning } else { Level::Info };
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
