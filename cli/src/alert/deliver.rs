//! Delivery: one queue and one thread per sink, so that a slow or dead receiver never blocks the checks nor the
//! other sinks. Retries with backoff (1, 2, 4 … 60 s) while a message is queued, honours `Retry-After`, keeps each
//! sink's order, and bounds each queue (oldest dropped and counted). The decisions (`verdict`, `retry_delay`,
//! `parse_retry_after`) are plain functions; only `post` does I/O.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::lifecycle::Notification;
use super::payload;

/// Per POST.
pub const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// No wait between tries is longer, whatever the backoff or `Retry-After` says.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// Messages queued per sink; beyond, the oldest is dropped.
pub const QUEUE_LIMIT: usize = 1000;
/// Alertmanager pushes of the active alerts are sent at most this often.
pub const RESEND_EVERY: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Alertmanager's webhook v4 body
    #[default]
    Alertmanager,
    /// Slack's incoming webhook: {"text": …}
    Slack,
}

/// Where messages go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sink {
    Webhook {
        url: String,
        format: Format,
    },
    /// An Alertmanager: `POST {url}/api/v2/alerts`.
    Alertmanager {
        url: String,
    },
}

impl Sink {
    /// For logs and reports: the kind and `scheme://host[:port]` only (URLs can carry secrets).
    pub fn label(&self) -> String {
        match self {
            Sink::Webhook { url, format: Format::Alertmanager } => format!("webhook {}", redacted(url)),
            Sink::Webhook { url, format: Format::Slack } => format!("slack webhook {}", redacted(url)),
            Sink::Alertmanager { url } => format!("alertmanager {}", redacted(url)),
        }
    }

    /// Names the sink in a state file without its URL: 16 hex of SHA-256 over kind and URL.
    pub fn key(&self) -> String {
        let text = match self {
            Sink::Webhook { url, format } => format!("webhook {format:?} {url}"),
            Sink::Alertmanager { url } => format!("alertmanager {url}"),
        };
        Sha256::digest(text.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// [`Sink::label`] with `#n` after the kind when sinks share one (two webhooks on one host differ only by
    /// their paths, which are never shown): `webhook#2 http://h:1` is the second sink labelled `webhook http://h:1`.
    pub fn labels(sinks: &[Sink]) -> Vec<String> {
        let plain: Vec<String> = sinks.iter().map(Sink::label).collect();
        plain
            .iter()
            .enumerate()
            .map(|(i, label)| {
                if plain.iter().filter(|l| *l == label).count() < 2 {
                    return label.clone();
                }
                let n = plain[..=i].iter().filter(|l| *l == label).count();
                let (kind, url) = label.rsplit_once(' ').unwrap_or((label.as_str(), ""));
                format!("{kind}#{n} {url}")
            })
            .collect()
    }

    fn endpoint(&self) -> String {
        match self {
            Sink::Webhook { url, .. } => url.clone(),
            Sink::Alertmanager { url } => format!("{}/api/v2/alerts", url.trim_end_matches('/')),
        }
    }

    fn body(&self, notifications: &[Notification], instance: &str) -> String {
        let json = match self {
            Sink::Webhook { format: Format::Alertmanager, .. } => payload::webhook(notifications, instance),
            Sink::Webhook { format: Format::Slack, .. } => payload::slack(notifications, instance),
            Sink::Alertmanager { .. } => payload::alertmanager_push(notifications, instance),
        };
        json.to_string()
    }
}

/// `scheme://host[:port]` of a URL: never its path, query or user info, where webhook secrets live. A URL that
/// does not parse shows only its scheme (when that looks like one), whatever follows being possibly a secret.
pub fn redacted(url: &str) -> String {
    let Some((scheme, _)) = url.split_once("://") else { return "(not a URL)".into() };
    let plain_scheme = !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !plain_scheme {
        return "(not a URL)".into();
    }
    match host_and_port(url) {
        Some(host_port) => format!("{scheme}://{host_port}"),
        None => format!("{scheme}://<unparseable URL>"),
    }
}

/// `host[:port]` of a URL that parses, has a host and a port that fits 16 bits (the user info left out).
pub fn host_and_port(url: &str) -> Option<String> {
    let uri = url.parse::<ureq::http::Uri>().ok()?;
    let host = uri.host().filter(|h| !h.is_empty())?;
    let host_port = match uri.port_u16() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    // What the parser read must be all there is: a port out of range leaves text it did not use.
    let written = uri.authority()?.as_str().rsplit('@').next()?;
    (written == host_port).then_some(host_port)
}

/// A message waiting for its sink: what a `--once` run keeps in its state file for the next one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outgoing {
    /// [`Sink::key`] of its sink.
    pub sink: String,
    pub notifications: Vec<Notification>,
    /// Tries so far.
    pub attempts: u32,
    /// A periodic re-send of the active alerts (Alertmanager): replaced by a newer one rather than queued twice.
    #[serde(default)]
    pub resend: bool,
}

/// What happened to one try.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Delivered,
    /// Will try again after this long.
    Retrying(Duration),
    /// A permanent failure (4xx other than 408/429, a redirect): dropped.
    Failed,
    /// Pushed out of a full queue.
    Dropped,
}

/// One delivery event, for the caller's log.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// [`Sink::label`].
    pub sink: String,
    pub outcome: Outcome,
    /// `db/check status` of each notification in the message.
    pub alerts: Vec<String>,
    pub attempt: u32,
    /// Why not delivered (HTTP status or connection error), never the URL.
    pub reason: Option<String>,
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = self.alerts.join(", ");
        let why = self.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        match &self.outcome {
            Outcome::Delivered => write!(f, "{}: delivered {what} (attempt {})", self.sink, self.attempt),
            Outcome::Retrying(after) => write!(
                f,
                "{}: not delivered{why}; retrying {what} in {:.1} s (attempt {})",
                self.sink,
                after.as_secs_f64(),
                self.attempt
            ),
            Outcome::Failed => write!(f, "{}: failed for good{why}; dropped {what}", self.sink),
            Outcome::Dropped => write!(f, "{}: queue full ({QUEUE_LIMIT}); dropped the oldest: {what}", self.sink),
        }
    }
}

/// The caller's log: one call per delivery outcome.
pub type Logger = Arc<dyn Fn(&Event) + Send + Sync>;

/// Counts of one sink.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SinkStats {
    /// [`Sink::label`].
    pub sink: String,
    pub sent: u64,
    pub failed: u64,
    pub retried: u64,
    pub dropped: u64,
    /// Messages still waiting.
    pub queued: usize,
    /// Why the last try failed, if it did.
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DeliveryStats {
    pub sinks: Vec<SinkStats>,
}

impl DeliveryStats {
    /// Nothing left queued and nothing failed.
    pub fn all_delivered(&self) -> bool {
        self.sinks.iter().all(|s| s.queued == 0 && s.failed == 0 && s.dropped == 0)
    }
}

/// What an HTTP status means for a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    Retry,
    Permanent,
}

pub fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        408 | 429 => Verdict::Retry,
        300..=499 => Verdict::Permanent,
        _ => Verdict::Retry,
    }
}

/// The wait before try `attempt + 1` after `attempt` failed ones (1 s, 2 s, 4 s … capped at 60 s); a
/// `Retry-After` wins, also capped.
pub fn retry_delay(attempt: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(wait) = retry_after {
        return wait.min(MAX_DELAY);
    }
    let exponent = attempt.saturating_sub(1).min(6);
    Duration::from_secs(1u64 << exponent).min(MAX_DELAY)
}

/// `Retry-After`: delay-seconds or an HTTP date (a date in the past means now).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(MAX_DELAY); // too many seconds for a u64: longer than the cap anyway
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = SystemTime::from(date);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The wait an answer asks for: `Retry-After` counts on 429 (rate limited) and 503 (unavailable) only.
pub fn retry_after(status: u16, header: Option<&str>, now: SystemTime) -> Option<Duration> {
    match status {
        429 | 503 => parse_retry_after(header?, now),
        _ => None,
    }
}

struct Queue {
    entries: VecDeque<Outgoing>,
    stats: SinkStats,
    /// The front entry is being posted.
    busy: bool,
    last_resend: Option<Instant>,
    stopping: bool,
}

struct Lane {
    sink: Sink,
    /// Its entry of [`Sink::labels`].
    label: String,
    key: String,
    queue: Mutex<Queue>,
    wake: Condvar,
    log: Logger,
}

/// Sends notifications in the background; every method returns at once except `flush`.
pub struct Dispatcher {
    lanes: Vec<Arc<Lane>>,
}

impl Dispatcher {
    /// Starts one thread per sink. `pending` is what an earlier run left undelivered: each goes back to the queue
    /// of its sink if that sink is still configured, first (its order kept).
    pub fn start(sinks: Vec<Sink>, pending: Vec<Outgoing>, log: Logger) -> Dispatcher {
        let instance = payload::hostname();
        let labels = Sink::labels(&sinks);
        let lanes: Vec<Arc<Lane>> = sinks
            .into_iter()
            .zip(labels)
            .map(|(sink, label)| {
                let key = sink.key();
                let entries: VecDeque<Outgoing> = pending.iter().filter(|o| o.sink == key).cloned().collect();
                let stats = SinkStats { sink: label.clone(), ..SinkStats::default() };
                let queue = Queue { entries, stats, busy: false, last_resend: None, stopping: false };
                let log = Arc::clone(&log);
                Arc::new(Lane { sink, label, key, queue: Mutex::new(queue), wake: Condvar::new(), log })
            })
            .collect();
        for lane in &lanes {
            let (lane, instance) = (Arc::clone(lane), instance.clone());
            std::thread::spawn(move || run_lane(&lane, &instance));
        }
        Dispatcher { lanes }
    }

    /// Queues one notification for every sink.
    pub fn send(&self, notification: Notification) {
        for lane in &self.lanes {
            let outgoing = Outgoing {
                sink: lane.key.clone(),
                notifications: vec![notification.clone()],
                attempts: 0,
                resend: false,
            };
            lane.push(outgoing);
        }
    }

    /// Re-sends the active alerts to Alertmanager sinks (which expire alerts not re-sent), at most once a minute
    /// per sink; webhooks are not concerned (they got the firing message once).
    pub fn resend_active(&self, active: Vec<Notification>) {
        if active.is_empty() {
            return;
        }
        for lane in self.lanes.iter().filter(|l| matches!(l.sink, Sink::Alertmanager { .. })) {
            let mut queue = lane.queue.lock().unwrap();
            if queue.last_resend.is_some_and(|at| at.elapsed() < RESEND_EVERY) {
                continue;
            }
            queue.last_resend = Some(Instant::now());
            // A re-send still waiting is stale: the new one replaces it (unless it is being posted right now).
            let skip = usize::from(queue.busy);
            let mut index = 0;
            queue.entries.retain(|o| {
                index += 1;
                index <= skip || !o.resend
            });
            drop(queue);
            lane.push(Outgoing { sink: lane.key.clone(), notifications: active.clone(), attempts: 0, resend: true });
        }
    }

    /// Everything not yet delivered, per sink in order.
    pub fn pending(&self) -> Vec<Outgoing> {
        self.lanes.iter().flat_map(|l| l.queue.lock().unwrap().entries.iter().cloned().collect::<Vec<_>>()).collect()
    }

    /// Waits until every queue is empty or `deadline` passes; the counts then.
    pub fn flush(&self, deadline: Instant) -> DeliveryStats {
        for lane in &self.lanes {
            let mut queue = lane.queue.lock().unwrap();
            while !queue.entries.is_empty() {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                queue = lane.wake.wait_timeout(queue, deadline - now).unwrap().0;
            }
        }
        self.stats()
    }

    pub fn stats(&self) -> DeliveryStats {
        let sinks = self
            .lanes
            .iter()
            .map(|l| {
                let queue = l.queue.lock().unwrap();
                SinkStats { queued: queue.entries.len(), ..queue.stats.clone() }
            })
            .collect();
        DeliveryStats { sinks }
    }
}

impl Drop for Dispatcher {
    /// The threads stop after their current try (at most one POST timeout later); nothing waits for them.
    fn drop(&mut self) {
        for lane in &self.lanes {
            lane.queue.lock().unwrap().stopping = true;
            lane.wake.notify_all();
        }
    }
}

impl Lane {
    fn push(&self, outgoing: Outgoing) {
        let mut queue = self.queue.lock().unwrap();
        queue.entries.push_back(outgoing);
        // Never drop the entry being posted: its outcome is still to come.
        let oldest = usize::from(queue.busy);
        while queue.entries.len() > QUEUE_LIMIT && queue.entries.len() > oldest {
            if let Some(gone) = queue.entries.remove(oldest) {
                queue.stats.dropped += 1;
                drop(queue);
                self.wake.notify_all();
                (self.log)(&Event {
                    sink: self.label.clone(),
                    outcome: Outcome::Dropped,
                    alerts: describe(&gone.notifications),
                    attempt: gone.attempts,
                    reason: None,
                });
                queue = self.queue.lock().unwrap();
            }
        }
        self.wake.notify_all();
    }
}

fn run_lane(lane: &Lane, instance: &str) {
    let agent = agent();
    loop {
        let outgoing = {
            let mut queue = lane.queue.lock().unwrap();
            while queue.entries.is_empty() && !queue.stopping {
                queue = lane.wake.wait(queue).unwrap();
            }
            if queue.stopping {
                return;
            }
            queue.busy = true;
            queue.entries[0].clone()
        };
        let attempt = outgoing.attempts + 1;
        let result = post(&agent, &lane.sink, &lane.sink.body(&outgoing.notifications, instance));
        let (outcome, reason) = match result {
            Ok(Answer { status, .. }) if verdict(status) == Verdict::Delivered => (Outcome::Delivered, None),
            Ok(Answer { status, retry_after }) if verdict(status) == Verdict::Retry => {
                (Outcome::Retrying(retry_delay(attempt, retry_after)), Some(format!("HTTP {status}")))
            }
            Ok(Answer { status, .. }) => (Outcome::Failed, Some(format!("HTTP {status}"))),
            Err(reason) => (Outcome::Retrying(retry_delay(attempt, None)), Some(reason)),
        };
        (lane.log)(&Event {
            sink: lane.label.clone(),
            outcome: outcome.clone(),
            alerts: describe(&outgoing.notifications),
            attempt,
            reason: reason.clone(),
        });
        if !settle(lane, outcome, reason) {
            return;
        }
    }
}

/// Records a try's outcome; waits out a retry delay (woken early only to stop). False when stopping.
fn settle(lane: &Lane, outcome: Outcome, reason: Option<String>) -> bool {
    let mut queue = lane.queue.lock().unwrap();
    queue.busy = false;
    queue.stats.last_error = reason;
    match outcome {
        Outcome::Delivered | Outcome::Failed | Outcome::Dropped => {
            queue.entries.pop_front();
            if outcome == Outcome::Delivered {
                queue.stats.sent += 1;
            } else {
                queue.stats.failed += 1;
            }
        }
        Outcome::Retrying(delay) => {
            queue.stats.retried += 1;
            if let Some(front) = queue.entries.front_mut() {
                front.attempts += 1;
            }
            let until = Instant::now() + delay;
            while !queue.stopping {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                queue = lane.wake.wait_timeout(queue, until - now).unwrap().0;
            }
        }
    }
    lane.wake.notify_all();
    !queue.stopping
}

fn describe(notifications: &[Notification]) -> Vec<String> {
    notifications
        .iter()
        .map(|n| {
            let status = match n.status {
                super::lifecycle::Status::Firing => "firing",
                super::lifecycle::Status::Resolved => "resolved",
            };
            format!("{}/{} {status}", n.db, n.check)
        })
        .collect()
}

struct Answer {
    status: u16,
    retry_after: Option<Duration>,
}

/// One client per sink: its kept-alive connection serves the next message. Statuses are answers, not errors;
/// redirects are not followed (a webhook that moved is a configuration to fix).
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(POST_TIMEOUT))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// One POST with a 10 s timeout; an error says what went wrong without the URL.
fn post(agent: &ureq::Agent, sink: &Sink, body: &str) -> Result<Answer, String> {
    let url = sink.endpoint();
    let response =
        agent.post(&url).header("Content-Type", "application/json").send(body).map_err(|e| error_text(&e, &url))?;
    let status = response.status().as_u16();
    let header = response.headers().get("retry-after").and_then(|v| v.to_str().ok());
    Ok(Answer { status, retry_after: retry_after(status, header, SystemTime::now()) })
}

fn error_text(error: &ureq::Error, url: &str) -> String {
    let text = match error {
        ureq::Error::Timeout(_) => "timed out after 10 s".to_string(),
        ureq::Error::HostNotFound => "host not found".to_string(),
        ureq::Error::ConnectionFailed => "connection failed".to_string(),
        ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        ureq::Error::Io(e) => format!("network error: {e}"),
        other => other.to_string(),
    };
    let text = if is_tls_to_plain_port(&text) { format!("{text} (does the port speak https?)") } else { text };
    // Whatever the error says, it must not leak the URL's path or query.
    let short: String = text.replace(url, &redacted(url)).chars().take(200).collect();
    crate::output::escape_controls(&short)
}

/// rustls's words when an https:// URL reaches a port that answers in plain HTTP.
fn is_tls_to_plain_port(text: &str) -> bool {
    text.contains("InvalidContentType") || text.contains("corrupt message")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_and_caps_at_sixty() {
        let delays: Vec<u64> = (1..=9).map(|a| retry_delay(a, None).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry_delay(u32::MAX, None), MAX_DELAY);
    }

    #[test]
    fn retry_after_wins_and_is_capped() {
        assert_eq!(retry_delay(5, Some(Duration::from_secs(1))), Duration::from_secs(1));
        assert_eq!(retry_delay(1, Some(Duration::from_secs(3600))), MAX_DELAY);
        assert_eq!(retry_delay(1, Some(Duration::ZERO)), Duration::ZERO);
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 1 ", now), Some(Duration::from_secs(1)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), Some(Duration::ZERO), "past: now");
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(parse_retry_after("999999999999999999999", now), Some(MAX_DELAY), "past u64: the cap");
    }

    #[test]
    fn retry_after_counts_on_429_and_503_only() {
        let now = SystemTime::now();
        assert_eq!(retry_after(429, Some("7"), now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(503, Some("7"), now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(500, Some("7"), now), None);
        assert_eq!(retry_after(429, None, now), None);
    }

    #[test]
    fn statuses_deliver_retry_or_fail_for_good() {
        for (status, expected) in [
            (200, Verdict::Delivered),
            (202, Verdict::Delivered),
            (204, Verdict::Delivered),
            (408, Verdict::Retry),
            (429, Verdict::Retry),
            (500, Verdict::Retry),
            (503, Verdict::Retry),
            (400, Verdict::Permanent),
            (404, Verdict::Permanent),
            (301, Verdict::Permanent),
        ] {
            assert_eq!(verdict(status), expected, "HTTP {status}");
        }
    }

    #[test]
    fn urls_are_shown_as_scheme_host_and_port_only() {
        assert_eq!(redacted("https://hooks.slack.com/services/T0/B0/SECRET"), "https://hooks.slack.com");
        assert_eq!(redacted("http://user:pw@127.0.0.1:9093/x?token=1"), "http://127.0.0.1:9093");
        assert_eq!(redacted("http://[::1]:8080"), "http://[::1]:8080");
        assert_eq!(redacted("nonsense"), "(not a URL)");
        let sink = Sink::Webhook { url: "https://hooks.slack.com/services/SECRET".into(), format: Format::Slack };
        assert!(!sink.label().contains("SECRET"));
        assert!(!sink.key().contains("SECRET") && sink.key().len() == 16);
    }

    #[test]
    fn malformed_urls_show_only_their_scheme() {
        for url in [
            "http://h:1\\services/T0/SECRET",
            "http://[::1/SECRET",
            "http://h\u{e9}st/SECRET",
            "http://a@b\\SECRET@c/x",
            "http://h:99999/SECRET",
        ] {
            let shown = redacted(url);
            assert_eq!(shown, "http://<unparseable URL>", "{url}");
        }
        assert_eq!(redacted("java\nscript://x/SECRET"), "(not a URL)");
        assert_eq!(redacted("https://u:p@h:8443/SECRET?t=1#f"), "https://h:8443");
    }

    #[test]
    fn sinks_sharing_a_label_are_numbered() {
        let hook = |path: &str| Sink::Webhook { url: format!("http://h:1/{path}"), format: Format::Alertmanager };
        let am = Sink::Alertmanager { url: "http://h:1".into() };
        let labels = Sink::labels(&[hook("a/SECRET"), am, hook("b/SECRET")]);
        assert_eq!(labels, ["webhook#1 http://h:1", "alertmanager http://h:1", "webhook#2 http://h:1"]);
        let slack = |p: &str| Sink::Webhook { url: format!("https://s/{p}"), format: Format::Slack };
        assert_eq!(Sink::labels(&[slack("x"), slack("y")]), ["slack webhook#1 https://s", "slack webhook#2 https://s"]);
    }

    #[test]
    fn tls_to_a_plain_port_says_so() {
        let text = "tls: received corrupt message of type InvalidContentType";
        assert!(is_tls_to_plain_port(text));
        assert!(!is_tls_to_plain_port("connection refused"));
    }

    #[test]
    fn an_alertmanager_sink_posts_to_the_v2_api() {
        let sink = Sink::Alertmanager { url: "http://127.0.0.1:9093/".into() };
        assert_eq!(sink.endpoint(), "http://127.0.0.1:9093/api/v2/alerts");
    }

    fn note(check: &str) -> Notification {
        let (firing, _) = crate::alert::test_alerts(SystemTime::UNIX_EPOCH);
        Notification { check: check.into(), ..firing }
    }

    /// A sink nobody listens on (port 1 on loopback refuses): everything stays queued.
    fn dead(kind: &str) -> Sink {
        let url = "http://127.0.0.1:1".to_string();
        match kind {
            "alertmanager" => Sink::Alertmanager { url },
            _ => Sink::Webhook { url, format: Format::Alertmanager },
        }
    }

    fn quiet() -> Logger {
        Arc::new(|_: &Event| {})
    }

    #[test]
    fn a_full_queue_drops_its_oldest_and_counts_them() {
        let dispatcher = Dispatcher::start(vec![dead("webhook")], Vec::new(), quiet());
        for i in 0..QUEUE_LIMIT + 5 {
            dispatcher.send(note(&format!("c{i}")));
        }
        let stats = dispatcher.stats();
        assert_eq!(stats.sinks[0].dropped, 5);
        assert_eq!(stats.sinks[0].queued, QUEUE_LIMIT);
        let pending = dispatcher.pending();
        assert_eq!(pending.last().unwrap().notifications[0].check, format!("c{}", QUEUE_LIMIT + 4), "newest kept");
        assert!(!stats.all_delivered());
    }

    #[test]
    fn pending_messages_go_back_to_their_own_sink_only() {
        let sink = dead("webhook");
        let mine = Outgoing { sink: sink.key(), notifications: vec![note("a")], attempts: 3, resend: false };
        let other =
            Outgoing { sink: "0000000000000000".into(), notifications: vec![note("b")], attempts: 0, resend: false };
        let dispatcher = Dispatcher::start(vec![sink], vec![mine.clone(), other], quiet());
        dispatcher.send(note("c"));
        let pending = dispatcher.pending();
        let checks: Vec<_> = pending.iter().map(|o| o.notifications[0].check.as_str()).collect();
        assert_eq!(checks, ["a", "c"], "the earlier run's message first, a forgotten sink's dropped");
        assert!(pending[0].attempts >= 3);
        let text = serde_json::to_string(&pending).unwrap();
        assert!(!text.contains("127.0.0.1:1"), "the state file never holds a sink's URL: {text}");
        let back: Vec<Outgoing> = serde_json::from_str(&text).unwrap();
        assert_eq!(back.len(), 2);
    }

    #[test]
    fn active_alerts_are_resent_to_alertmanagers_only_and_at_most_once_a_minute() {
        let dispatcher = Dispatcher::start(vec![dead("alertmanager"), dead("webhook")], Vec::new(), quiet());
        dispatcher.resend_active(vec![note("a"), note("b")]);
        dispatcher.resend_active(vec![note("a")]);
        let pending = dispatcher.pending();
        assert_eq!(pending.len(), 1, "{pending:?}");
        assert!(pending[0].resend);
        assert_eq!(pending[0].sink, dead("alertmanager").key());
        assert_eq!(pending[0].notifications.len(), 2, "the first call's set: the second came within the minute");
    }

    #[test]
    fn flush_returns_at_its_deadline_with_what_is_left() {
        let dispatcher = Dispatcher::start(vec![dead("webhook")], Vec::new(), quiet());
        dispatcher.send(note("a"));
        let stats = dispatcher.flush(Instant::now() + Duration::from_millis(300));
        assert_eq!((stats.sinks[0].sent, stats.sinks[0].queued), (0, 1));
        assert_eq!(stats.sinks[0].last_error.as_deref(), Some("connection refused"));
        assert!(stats.sinks[0].retried >= 1);
    }

    #[test]
    fn sending_never_waits_for_a_receiver_that_does_not_answer() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", silent.local_addr().unwrap());
        let dispatcher = Dispatcher::start(vec![Sink::Webhook { url, format: Format::Slack }], Vec::new(), quiet());
        dispatcher.send(note("a"));
        // The POST is in flight (accepted, never answered) while the caller goes on queueing.
        let (_connection, _) = silent.accept().unwrap();
        dispatcher.send(note("b"));
        dispatcher.send(note("c"));
        let checks: Vec<_> = dispatcher.pending().iter().map(|o| o.notifications[0].check.clone()).collect();
        assert_eq!(checks, ["a", "b", "c"], "in order, the first one still waiting for its answer");
        assert_eq!(dispatcher.stats().sinks[0].sent, 0);
    }
}
