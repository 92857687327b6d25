//! The alert lifecycle of one (database, check): pending → firing → resolving → resolved, with count hysteresis
//! (`for`, `clear`) and value hysteresis (`margin`), so that one blip sends nothing and a value wobbling around its
//! level sends at most one firing. Plain functions over plain data: no clock, no I/O.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::metrics::{CheckResult, DbReport, Target};

/// The check an unreadable database raises: its own alert, which never resolves the others.
pub const UP_CHECK: &str = "vigil_up";

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    /// Consecutive breaches before an alert fires.
    pub for_count: u32,
    /// Consecutive clean checks before a firing alert resolves.
    pub clear_count: u32,
    /// Send a firing alert again this often while it lasts (None: never).
    pub repeat: Option<Duration>,
    /// How far (a fraction of the warning level) a value must be on the good side to count as clean while firing.
    pub margin: f64,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy { for_count: 3, clear_count: 2, repeat: Some(Duration::from_secs(4 * 3600)), margin: 0.05 }
    }
}

/// One check of one database at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub db: String,
    pub path: PathBuf,
    pub check: String,
    /// ok | info | warning | critical
    pub status: String,
    pub value: Option<f64>,
    pub warning: Option<f64>,
    pub critical: Option<f64>,
    pub larger_is_worse: Option<bool>,
    pub detail: String,
    pub at: SystemTime,
}

impl Observation {
    pub fn from_check(target: &Target, check: &CheckResult, at: SystemTime) -> Observation {
        Observation {
            db: target.name.clone(),
            path: target.path.clone(),
            check: check.check.clone(),
            status: check.status.clone(),
            value: check.value.as_f64(),
            warning: check.warning,
            critical: check.critical,
            larger_is_worse: check.larger_is_worse,
            detail: check.detail.clone(),
            at,
        }
    }

    /// `vigil_up`: critical with the reason when the database could not be read, ok otherwise.
    pub fn up(target: &Target, error: Option<&str>, at: SystemTime) -> Observation {
        let (status, value, detail) = match error {
            Some(error) => ("critical", 0.0, error.to_string()),
            None => ("ok", 1.0, "the database could be read".to_string()),
        };
        Observation {
            db: target.name.clone(),
            path: target.path.clone(),
            check: UP_CHECK.into(),
            status: status.into(),
            value: Some(value),
            warning: None,
            critical: None,
            larger_is_worse: None,
            detail,
            at,
        }
    }

    /// Everything one collection says: `vigil_up`, then every check when the database could be read (when it
    /// could not, the other checks are not observed, so their alerts stay as they were).
    pub fn from_report(report: &DbReport) -> Vec<Observation> {
        let at = report.collected_at;
        let error =
            if report.up { None } else { Some(report.error.as_deref().unwrap_or("the database could not be read")) };
        let mut all = vec![Observation::up(&report.target, error, at)];
        if report.up {
            all.extend(report.checks.iter().map(|c| Observation::from_check(&report.target, c, at)));
        }
        all
    }

    fn breaches(&self) -> bool {
        matches!(self.status.as_str(), "warning" | "critical")
    }

    /// Clean enough to count towards resolving a firing alert: not breaching, and a graded value on the good side
    /// of its level by the margin (a check without numbers goes by its status).
    fn clean_while_firing(&self, margin: f64) -> bool {
        if self.breaches() {
            return false;
        }
        let (Some(value), Some(level), Some(larger_is_worse)) =
            (self.value, self.warning.or(self.critical), self.larger_is_worse)
        else {
            return true;
        };
        // A level of 0 has no room for a margin: the status alone says clean (else 0 could never resolve).
        let room = level.abs() * margin;
        if room == 0.0 {
            true
        } else if larger_is_worse {
            value < level - room
        } else {
            value > level + room
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Resolved,
}

/// A message to send.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub status: Status,
    pub db: String,
    pub path: PathBuf,
    pub check: String,
    /// warning | critical
    pub severity: String,
    pub value: Option<f64>,
    pub detail: String,
    /// The first breach.
    pub starts_at: SystemTime,
    /// When it resolved (None while firing).
    pub ends_at: Option<SystemTime>,
    pub fingerprint: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "lowercase")]
enum Phase {
    /// Breaching `count` times in a row, not yet firing.
    Pending {
        count: u32,
    },
    Firing,
    /// Firing, and clean `count` times in a row.
    Resolving {
        count: u32,
    },
}

/// The state of one (db, check), as kept in memory and in the state file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Alert {
    db: String,
    check: String,
    path: PathBuf,
    #[serde(flatten)]
    phase: Phase,
    severity: String,
    value: Option<f64>,
    detail: String,
    starts_at: SystemTime,
    /// When a firing message was last sent (for `repeat`).
    sent_at: Option<SystemTime>,
}

impl Alert {
    fn notification(&self, status: Status, ends_at: Option<SystemTime>) -> Notification {
        Notification {
            status,
            db: self.db.clone(),
            path: self.path.clone(),
            check: self.check.clone(),
            severity: self.severity.clone(),
            value: self.value,
            detail: self.detail.clone(),
            starts_at: self.starts_at,
            ends_at,
            fingerprint: fingerprint(&self.db, &self.check),
        }
    }

    fn absorb(&mut self, seen: &Observation) {
        self.path = seen.path.clone();
        self.value = seen.value;
        self.detail = seen.detail.clone();
    }
}

/// Every alert that is pending or firing, keyed by (db, check); serialisable for the state file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "Vec<Alert>", into = "Vec<Alert>")]
pub struct Alerts {
    map: BTreeMap<(String, String), Alert>,
}

impl From<Vec<Alert>> for Alerts {
    fn from(list: Vec<Alert>) -> Alerts {
        Alerts { map: list.into_iter().map(|a| ((a.db.clone(), a.check.clone()), a)).collect() }
    }
}

impl From<Alerts> for Vec<Alert> {
    fn from(alerts: Alerts) -> Vec<Alert> {
        alerts.map.into_values().collect()
    }
}

impl Alerts {
    pub fn new() -> Alerts {
        Alerts::default()
    }

    /// Takes one observation; returns the message it calls for, if any.
    pub fn observe(&mut self, seen: &Observation, policy: &Policy) -> Option<Notification> {
        let key = (seen.db.clone(), seen.check.clone());
        let Some(alert) = self.map.get_mut(&key) else {
            if !seen.breaches() {
                return None;
            }
            let alert = Alert {
                db: seen.db.clone(),
                check: seen.check.clone(),
                path: seen.path.clone(),
                phase: Phase::Pending { count: 0 },
                severity: seen.status.clone(),
                value: seen.value,
                detail: seen.detail.clone(),
                starts_at: seen.at,
                sent_at: None,
            };
            return self.map.entry(key).or_insert(alert).pending(seen, policy);
        };
        let (message, gone) = match alert.phase {
            Phase::Pending { .. } if seen.breaches() => (alert.pending(seen, policy), false),
            Phase::Pending { .. } => (None, true),
            Phase::Firing | Phase::Resolving { .. } if seen.clean_while_firing(policy.margin) => {
                alert.resolving(seen, policy)
            }
            Phase::Firing | Phase::Resolving { .. } => (alert.firing(seen, policy), false),
        };
        if gone {
            self.map.remove(&key);
        }
        message
    }

    /// A database no longer watched: its firing alerts resolve (saying so), its pending ones vanish.
    pub fn forget(&mut self, db: &str, at: SystemTime) -> Vec<Notification> {
        let why = format!("{db} is no longer watched (removed or deleted)");
        self.drop_where(|d, _| d == db, at, &why)
    }

    /// A check that no longer alerts (an alert an older vigil kept in the state file): its firing alerts resolve
    /// (saying why), its pending ones vanish.
    pub fn retire(&mut self, check: &str, at: SystemTime, why: &str) -> Vec<Notification> {
        self.drop_where(|_, c| c == check, at, why)
    }

    fn drop_where(&mut self, which: impl Fn(&str, &str) -> bool, at: SystemTime, why: &str) -> Vec<Notification> {
        let keys: Vec<_> = self.map.keys().filter(|(d, c)| which(d, c)).cloned().collect();
        let mut messages = Vec::new();
        for key in keys {
            let Some(mut alert) = self.map.remove(&key) else { continue };
            if !matches!(alert.phase, Phase::Pending { .. }) {
                alert.detail = format!("{why}; last: {}", alert.detail);
                messages.push(alert.notification(Status::Resolved, Some(at)));
            }
        }
        messages
    }

    /// Every firing alert (resolving ones included: they have not resolved yet), as firing messages.
    pub fn firing(&self) -> Vec<Notification> {
        self.map
            .values()
            .filter(|a| !matches!(a.phase, Phase::Pending { .. }))
            .map(|a| a.notification(Status::Firing, None))
            .collect()
    }

    /// How many alerts are pending or firing.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl Alert {
    /// One more breach before firing; fires when the count reaches `for`.
    fn pending(&mut self, seen: &Observation, policy: &Policy) -> Option<Notification> {
        let Phase::Pending { count } = self.phase else { return None };
        self.absorb(seen);
        self.severity = worse(&self.severity, &seen.status).to_string();
        if count + 1 < policy.for_count.max(1) {
            self.phase = Phase::Pending { count: count + 1 };
            return None;
        }
        self.phase = Phase::Firing;
        // The severity of the message is today's: an alert that was critical once while pending but is warning now
        // fires as warning, and escalates if it turns critical again.
        self.severity = seen.status.clone();
        self.sent_at = Some(seen.at);
        Some(self.notification(Status::Firing, None))
    }

    /// Still firing (or back from resolving, silently): escalation and repeat send again.
    fn firing(&mut self, seen: &Observation, policy: &Policy) -> Option<Notification> {
        self.phase = Phase::Firing;
        self.absorb(seen);
        if !seen.breaches() {
            // Within the margin: not clean, not a new breach either.
            return self.repeat_due(seen.at, policy).then(|| self.sent(seen.at));
        }
        let escalated = self.severity == "warning" && seen.status == "critical";
        self.severity = seen.status.clone();
        (escalated || self.repeat_due(seen.at, policy)).then(|| self.sent(seen.at))
    }

    /// One more clean check; resolves (and says it is gone) when the count reaches `clear`.
    fn resolving(&mut self, seen: &Observation, policy: &Policy) -> (Option<Notification>, bool) {
        let count = match self.phase {
            Phase::Resolving { count } => count + 1,
            _ => 1,
        };
        self.absorb(seen);
        if count < policy.clear_count.max(1) {
            self.phase = Phase::Resolving { count };
            return (None, false);
        }
        (Some(self.notification(Status::Resolved, Some(seen.at))), true)
    }

    fn repeat_due(&self, at: SystemTime, policy: &Policy) -> bool {
        match (policy.repeat, self.sent_at) {
            (Some(every), Some(sent)) if !every.is_zero() => at.duration_since(sent).is_ok_and(|d| d >= every),
            _ => false,
        }
    }

    fn sent(&mut self, at: SystemTime) -> Notification {
        self.sent_at = Some(at);
        self.notification(Status::Firing, None)
    }
}

fn worse<'a>(a: &'a str, b: &'a str) -> &'a str {
    if crate::metrics::status_rank(b) > crate::metrics::status_rank(a) {
        b
    } else {
        a
    }
}

/// First 16 hex digits of SHA-256 over the sorted label set {alertname="VigilCheck", check, db}, written as a
/// JSON object (sorted keys, escaped values: unambiguous whatever the names hold).
pub fn fingerprint(db: &str, check: &str) -> String {
    let labels: BTreeMap<&str, &str> = [("alertname", "VigilCheck"), ("check", check), ("db", db)].into();
    let text = serde_json::to_string(&labels).unwrap_or_default();
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + second)
    }

    fn seen(status: &str, second: u64) -> Observation {
        Observation {
            db: "shop".into(),
            path: "/data/shop.db".into(),
            check: "freelist_ratio".into(),
            status: status.into(),
            value: None,
            warning: None,
            critical: None,
            larger_is_worse: None,
            detail: format!("{status} at {second}"),
            at: at(second),
        }
    }

    /// A graded check: warning at 100 (larger is worse), critical at 200.
    fn valued(value: f64, second: u64) -> Observation {
        let status = if value >= 200.0 {
            "critical"
        } else if value >= 100.0 {
            "warning"
        } else {
            "ok"
        };
        Observation {
            value: Some(value),
            warning: Some(100.0),
            critical: Some(200.0),
            larger_is_worse: Some(true),
            ..seen(status, second)
        }
    }

    /// Every message a sequence of statuses produces, one observation a minute.
    fn run(alerts: &mut Alerts, policy: &Policy, statuses: &[&str]) -> Vec<Notification> {
        statuses.iter().enumerate().filter_map(|(i, s)| alerts.observe(&seen(s, i as u64 * 60), policy)).collect()
    }

    #[test]
    fn five_warning_cycles_then_ok_fire_once_and_resolve_once_with_one_fingerprint() {
        let mut alerts = Alerts::new();
        let sent =
            run(&mut alerts, &Policy::default(), &["warning"; 5].iter().chain(&["ok"; 3]).copied().collect::<Vec<_>>());
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert_eq!(sent[0].status, Status::Firing);
        assert_eq!(sent[0].starts_at, at(0), "starts at the first breach");
        assert_eq!(sent[0].ends_at, None);
        assert_eq!(sent[1].status, Status::Resolved);
        assert_eq!(sent[1].ends_at, Some(at(6 * 60)), "resolved at the second clean check");
        assert_eq!(sent[0].fingerprint, sent[1].fingerprint);
        assert_eq!(sent[0].fingerprint.len(), 16);
        assert!(alerts.is_empty(), "resolved alerts are forgotten");
    }

    #[test]
    fn fires_on_the_for_th_breach_and_not_before() {
        let mut alerts = Alerts::new();
        let policy = Policy::default();
        assert!(alerts.observe(&seen("warning", 0), &policy).is_none());
        assert!(alerts.observe(&seen("warning", 60), &policy).is_none());
        assert_eq!(alerts.firing().len(), 0, "pending is not firing");
        let fired = alerts.observe(&seen("warning", 120), &policy).expect("third breach fires");
        assert_eq!(fired.severity, "warning");
        assert!(alerts.observe(&seen("warning", 180), &policy).is_none(), "sent once");
        assert_eq!(alerts.firing().len(), 1);
    }

    #[test]
    fn a_one_cycle_blip_sends_nothing_and_resets_the_count() {
        let mut alerts = Alerts::new();
        let sent = run(&mut alerts, &Policy::default(), &["ok", "critical", "ok", "warning", "warning", "ok", "ok"]);
        assert!(sent.is_empty(), "{sent:?}");
        assert!(alerts.is_empty());
    }

    #[test]
    fn info_is_not_a_breach() {
        let mut alerts = Alerts::new();
        assert!(run(&mut alerts, &Policy::default(), &["info"; 6]).is_empty());
        assert!(alerts.is_empty());
    }

    #[test]
    fn a_value_wobbling_one_percent_around_its_level_fires_at_most_once() {
        let policy = Policy { for_count: 1, ..Policy::default() };
        for policy in [policy, Policy::default()] {
            let mut alerts = Alerts::new();
            let sent: Vec<_> = (0..100u64)
                .filter_map(|i| alerts.observe(&valued(if i % 2 == 0 { 101.0 } else { 99.0 }, i * 60), &policy))
                .collect();
            assert!(sent.len() <= 1, "{sent:?}");
            assert!(sent.iter().all(|n| n.status == Status::Firing));
        }
    }

    #[test]
    fn a_firing_value_resolves_only_below_the_margin() {
        let mut alerts = Alerts::new();
        let policy = Policy { for_count: 1, clear_count: 2, ..Policy::default() };
        assert!(alerts.observe(&valued(120.0, 0), &policy).is_some());
        assert!(alerts.observe(&valued(96.0, 60), &policy).is_none(), "ok, but within 5 % of the level");
        assert!(alerts.observe(&valued(96.0, 120), &policy).is_none());
        assert!(alerts.observe(&valued(94.0, 180), &policy).is_none(), "first clean check");
        let resolved = alerts.observe(&valued(94.0, 240), &policy).expect("second clean check resolves");
        assert_eq!(resolved.status, Status::Resolved);
        assert_eq!(resolved.value, Some(94.0));
    }

    #[test]
    fn a_smaller_is_worse_value_resolves_only_above_the_margin() {
        let mut alerts = Alerts::new();
        let policy = Policy { for_count: 1, clear_count: 1, ..Policy::default() };
        let low = |value: f64, second| Observation {
            value: Some(value),
            warning: Some(30.0),
            larger_is_worse: Some(false),
            ..seen(if value <= 30.0 { "warning" } else { "ok" }, second)
        };
        assert!(alerts.observe(&low(20.0, 0), &policy).is_some());
        assert!(alerts.observe(&low(31.0, 60), &policy).is_none(), "31 is not above 30 × 1.05");
        assert_eq!(alerts.observe(&low(32.0, 120), &policy).map(|n| n.status), Some(Status::Resolved));
    }

    #[test]
    fn a_level_of_zero_resolves_by_status() {
        let mut alerts = Alerts::new();
        let policy = Policy { for_count: 1, clear_count: 1, ..Policy::default() };
        let zero = |value: f64, second| Observation {
            value: Some(value),
            warning: Some(0.0),
            larger_is_worse: Some(true),
            ..seen(if value > 0.0 { "warning" } else { "ok" }, second)
        };
        assert!(alerts.observe(&zero(3.0, 0), &policy).is_some());
        assert_eq!(alerts.observe(&zero(0.0, 60), &policy).map(|n| n.status), Some(Status::Resolved));
    }

    #[test]
    fn a_breach_while_resolving_returns_to_firing_silently() {
        let mut alerts = Alerts::new();
        let sent =
            run(&mut alerts, &Policy::default(), &["warning", "warning", "warning", "ok", "warning", "ok", "ok"]);
        let statuses: Vec<_> = sent.iter().map(|n| n.status).collect();
        assert_eq!(statuses, [Status::Firing, Status::Resolved]);
        assert_eq!(sent[1].ends_at, Some(at(6 * 60)), "the clean count restarted after the breach");
    }

    #[test]
    fn repeats_while_firing_every_repeat_period_and_never_with_none() {
        let hourly = Policy { for_count: 1, repeat: Some(Duration::from_secs(3600)), ..Policy::default() };
        let mut alerts = Alerts::new();
        let fired: Vec<_> = (0..=120u64).filter_map(|m| alerts.observe(&seen("warning", m * 60), &hourly)).collect();
        assert_eq!(fired.len(), 3, "at 0, 60 and 120 minutes");
        assert!(fired.iter().all(|n| n.fingerprint == fired[0].fingerprint && n.starts_at == at(0)));
        let never = Policy { repeat: None, ..hourly };
        let mut alerts = Alerts::new();
        assert_eq!((0..=600u64).filter_map(|m| alerts.observe(&seen("warning", m * 60), &never)).count(), 1);
    }

    #[test]
    fn escalation_to_critical_sends_again_and_de_escalation_does_not() {
        let mut alerts = Alerts::new();
        let sent = run(
            &mut alerts,
            &Policy::default(),
            &["warning", "warning", "warning", "critical", "critical", "warning", "critical"],
        );
        let severities: Vec<_> = sent.iter().map(|n| (n.status, n.severity.as_str())).collect();
        assert_eq!(
            severities,
            [(Status::Firing, "warning"), (Status::Firing, "critical"), (Status::Firing, "critical")],
            "escalated twice, never a message for critical → warning"
        );
    }

    #[test]
    fn an_unreadable_database_is_vigil_up_and_leaves_other_alerts_alone() {
        let target = Target { name: "shop".into(), path: "/data/shop.db".into() };
        let policy = Policy { for_count: 1, clear_count: 1, ..Policy::default() };
        let mut alerts = Alerts::new();
        assert!(alerts.observe(&seen("warning", 0), &policy).is_some());
        let down = DbReport {
            target: target.clone(),
            up: false,
            error: Some("/data/shop.db: locked".into()),
            status: None,
            failing: vec![],
            checks: vec![],
            samples: vec![],
            collected_at: at(60),
        };
        let seen_down = Observation::from_report(&down);
        assert_eq!(seen_down.len(), 1, "only vigil_up is observed");
        let fired = alerts.observe(&seen_down[0], &policy).expect("vigil_up fires");
        assert_eq!((fired.check.as_str(), fired.severity.as_str()), (UP_CHECK, "critical"));
        assert_eq!(fired.detail, "/data/shop.db: locked");
        assert_eq!(alerts.firing().len(), 2, "the freelist alert still fires");
        let up = DbReport { up: true, error: None, collected_at: at(120), ..down };
        let resolved = alerts.observe(&Observation::from_report(&up)[0], &policy).expect("vigil_up resolves");
        assert_eq!((resolved.check.as_str(), resolved.status), (UP_CHECK, Status::Resolved));
    }

    #[test]
    fn forget_resolves_firing_alerts_and_drops_pending_ones() {
        let policy = Policy { for_count: 2, ..Policy::default() };
        let mut alerts = Alerts::new();
        alerts.observe(&seen("warning", 0), &policy);
        alerts.observe(&seen("warning", 60), &policy);
        let other = Observation { check: "wal_size".into(), ..seen("warning", 60) };
        alerts.observe(&other, &policy);
        let elsewhere = Observation { db: "logs".into(), ..seen("warning", 0) };
        alerts.observe(&elsewhere, &policy);
        let gone = alerts.forget("shop", at(300));
        assert_eq!(gone.len(), 1, "{gone:?}");
        assert_eq!((gone[0].status, gone[0].check.as_str()), (Status::Resolved, "freelist_ratio"));
        assert_eq!(gone[0].ends_at, Some(at(300)));
        assert!(gone[0].detail.contains("no longer watched"), "{}", gone[0].detail);
        assert_eq!(alerts.len(), 1, "the other database's pending alert stays");
    }

    #[test]
    fn retire_resolves_one_check_everywhere_and_leaves_the_others() {
        let policy = Policy { for_count: 1, ..Policy::default() };
        let mut alerts = Alerts::new();
        alerts.observe(&Observation { check: "maintenance".into(), ..seen("warning", 0) }, &policy);
        alerts.observe(&Observation { check: "maintenance".into(), db: "logs".into(), ..seen("warning", 0) }, &policy);
        alerts.observe(&seen("warning", 0), &policy);
        let gone = alerts.retire("maintenance", at(60), "maintenance no longer alerts");
        assert_eq!(gone.len(), 2, "{gone:?}");
        assert!(gone.iter().all(|n| n.status == Status::Resolved && n.check == "maintenance"));
        assert!(gone[0].detail.starts_with("maintenance no longer alerts; last: "), "{}", gone[0].detail);
        assert_eq!(alerts.len(), 1, "freelist_ratio still fires");
    }

    #[test]
    fn the_state_survives_a_round_trip_through_json() {
        let mut alerts = Alerts::new();
        run(&mut alerts, &Policy::default(), &["warning", "warning", "warning", "ok"]);
        let text = serde_json::to_string(&alerts).unwrap();
        let mut back: Alerts = serde_json::from_str(&text).unwrap();
        assert_eq!(back, alerts);
        let resolved = back.observe(&seen("ok", 600), &Policy::default()).expect("second clean check after restart");
        assert_eq!(resolved.status, Status::Resolved);
    }

    #[test]
    fn fingerprints_depend_on_db_and_check_only() {
        assert_eq!(fingerprint("a", "b"), fingerprint("a", "b"));
        assert_ne!(fingerprint("a", "b"), fingerprint("b", "a"));
        assert_ne!(fingerprint("a\",\"check\":\"x", ""), fingerprint("a", "x"));
        assert!(fingerprint("a", "b").chars().all(|c| c.is_ascii_hexdigit()));
    }
}
