//! The one place `vigil watch` meets the alert engine: observations from each report, forgetting a dropped
//! database, delivery that never blocks the checks, and the alert states kept in the state file.
//!
//! Placeholder until the alert engine lands: no alert flags, nothing sent.

use std::time::Instant;

use super::log::Log;
use super::state::State;
use crate::metrics::DbReport;
use crate::Failure;

#[derive(clap::Args)]
pub struct Args {}

pub struct Alerting {}

impl Alerting {
    pub fn start(_args: &Args, _state: &State, _log: Log) -> Result<Alerting, Failure> {
        Ok(Alerting {})
    }
    pub fn observe(&mut self, _job: super::jobs::Job, _report: &DbReport) {}
    pub fn forget(&mut self, _db: &str) {}
    pub fn pump(&mut self) {}
    pub fn flush(&mut self, _deadline: Instant) {}
    pub fn store(&mut self, _state: &mut State) -> bool {
        false
    }
}
