//! Alerts: the lifecycle of each (database, check) (`lifecycle`: fire once, repeat, escalate, resolve once), the
//! message bodies (`payload`: Alertmanager webhook v4, Slack, Alertmanager API v2) and their delivery in the
//! background (`deliver`). `vigil watch` flattens [`AlertArgs`] into its flags; `vigil alert-test` sends a test
//! message to every sink.

pub mod deliver;
pub mod lifecycle;
pub mod payload;

pub use deliver::{Dispatcher, Event, Format, Logger, Outcome, Outgoing, Sink, SinkStats};
pub use lifecycle::{Alerts, Notification, Observation, Policy, Status};

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use clap::Args;

use crate::{exit, Failure};

/// Where alerts go (shared by `watch` and `alert-test`).
#[derive(Args, Clone, Debug, Default)]
pub struct SinkArgs {
    /// POST alerts to this URL (repeatable)
    #[arg(long = "webhook", value_name = "URL")]
    pub webhook: Vec<String>,
    /// The body of every --webhook: Alertmanager's webhook v4 JSON, or Slack's {"text": …}
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "alertmanager")]
    pub webhook_format: Format,
    /// Push alerts to an Alertmanager at this URL (POST URL/api/v2/alerts; repeatable)
    #[arg(long = "alertmanager", value_name = "URL")]
    pub alertmanager: Vec<String>,
}

impl SinkArgs {
    /// The sinks, or a usage error naming the flag of a URL that is not http:// or https://.
    pub fn sinks(&self) -> Result<Vec<Sink>, Failure> {
        let mut sinks = Vec::new();
        for url in &self.webhook {
            checked_url("--webhook", url)?;
            sinks.push(Sink::Webhook { url: url.clone(), format: self.webhook_format });
        }
        for url in &self.alertmanager {
            checked_url("--alertmanager", url)?;
            sinks.push(Sink::Alertmanager { url: url.clone() });
        }
        Ok(sinks)
    }
}

/// A URL ureq's parser reads as http:// or https:// with a host, a port that fits, no user info; on
/// `--alertmanager` no query nor fragment either (its path gets `/api/v2/alerts` appended).
fn checked_url(flag: &str, url: &str) -> Result<(), Failure> {
    url_problem(flag, url)
        .map_or(Ok(()), |problem| Err(Failure::usage(format!("{flag}: {} {problem}", deliver::redacted(url)))))
}

fn url_problem(flag: &str, url: &str) -> Option<&'static str> {
    if url.chars().any(char::is_whitespace) {
        return Some("contains a space; give the URL without one (spaces in a path are written %20)");
    }
    let lower = url.to_ascii_lowercase();
    if !lower.starts_with("http://") && !lower.starts_with("https://") {
        return Some("is not an http:// or https:// URL; give one such as http://127.0.0.1:9093/hook");
    }
    let Ok(uri) = url.parse::<ureq::http::Uri>() else {
        return Some("is not a valid URL (check the host, the port and any \\ or [ ]); give one such as http://127.0.0.1:9093/hook");
    };
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or("");
    if authority.contains('@') {
        return Some("has user info (user:password@): credentials in URLs are not supported; put a token in the path");
    }
    if deliver::host_and_port(url).is_none() {
        return Some(
            "has no host or a port that is not a number from 1 to 65535; give one such as http://127.0.0.1:9093/hook",
        );
    }
    if flag == "--alertmanager" && (uri.query().is_some() || url.contains('#')) {
        return Some("has a query or a fragment: give the Alertmanager's base URL, such as http://127.0.0.1:9093 (vigil appends /api/v2/alerts)");
    }
    None
}

/// Alert flags of `vigil watch`.
#[derive(Args, Clone, Debug)]
pub struct AlertArgs {
    #[command(flatten)]
    pub targets: SinkArgs,
    /// Consecutive breaching checks before an alert fires
    #[arg(long = "for", value_name = "N", default_value_t = 3)]
    pub for_count: u32,
    /// Consecutive clean checks before a firing alert resolves
    #[arg(long = "clear", value_name = "N", default_value_t = 2)]
    pub clear_count: u32,
    /// Send a firing alert again this often while it lasts (0 = never)
    #[arg(long, value_name = "PERIOD", default_value = "4h")]
    pub repeat: String,
    /// While firing, a value is clean only this far on the good side of its warning level (5% or 5)
    #[arg(long, value_name = "PCT", default_value = "5%")]
    pub margin: String,
}

impl AlertArgs {
    pub fn sinks(&self) -> Result<Vec<Sink>, Failure> {
        self.targets.sinks()
    }

    /// The policy, or a usage error naming the flag.
    pub fn policy(&self) -> Result<Policy, Failure> {
        if self.for_count == 0 || self.for_count > 1000 {
            return Err(Failure::usage("--for: expected a count of checks from 1 to 1000, such as --for 3"));
        }
        if self.clear_count == 0 || self.clear_count > 1000 {
            return Err(Failure::usage("--clear: expected a count of checks from 1 to 1000, such as --clear 2"));
        }
        let repeat = match self.repeat.trim() {
            "0" | "0s" | "never" => None,
            text => Some(
                crate::pit::parse_period(text).map_err(|e| Failure::usage(format!("--repeat: {e}, or 0 for never")))?,
            ),
        };
        Ok(Policy {
            for_count: self.for_count,
            clear_count: self.clear_count,
            repeat,
            margin: parse_margin(&self.margin)?,
        })
    }
}

/// `5%` or `5` → 0.05; 0 to 50 %.
pub fn parse_margin(text: &str) -> Result<f64, Failure> {
    let number = text.trim().trim_end_matches('%').trim();
    match number.parse::<f64>() {
        Ok(pct) if (0.0..=50.0).contains(&pct) => Ok(pct / 100.0),
        _ => Err(Failure::usage("--margin: expected a percentage from 0 to 50, such as 5% or 5")),
    }
}

#[derive(Args)]
pub struct AlertTestArgs {
    #[command(flatten)]
    pub targets: SinkArgs,
    /// How long to wait for every delivery (retries included)
    #[arg(long, value_name = "PERIOD", default_value = "30s")]
    pub wait: String,
    /// How long the test alert fires before it is resolved (lets an Alertmanager's group_wait pass)
    #[arg(long, value_name = "PERIOD", default_value = "0")]
    pub hold: String,
}

/// `vigil alert-test`: one firing then one resolved test alert to every sink; exit 0 when all were delivered, 2
/// when one was not.
pub fn alert_test(args: &AlertTestArgs) -> Result<u8, Failure> {
    let sinks = args.targets.sinks()?;
    if sinks.is_empty() {
        return Err(Failure::usage("alert-test: give at least one --webhook URL or --alertmanager URL"));
    }
    let wait = crate::pit::parse_period(&args.wait).map_err(|e| Failure::usage(format!("--wait: {e}")))?;
    let hold = match args.hold.trim() {
        "0" | "0s" => Duration::ZERO,
        text => crate::pit::parse_period(text).map_err(|e| Failure::usage(format!("--hold: {e}, or 0")))?,
    };
    let log: Logger = Arc::new(|event: &Event| {
        if event.outcome != Outcome::Delivered {
            eprintln!("vigil alert-test: {}", crate::output::escape_controls(&event.to_string()));
        }
    });
    let dispatcher = Dispatcher::start(sinks, Vec::new(), log);
    let (firing, resolved) = test_alerts(SystemTime::now());
    dispatcher.send(firing);
    if !hold.is_zero() {
        crate::interrupt::sleep_until(Instant::now() + hold);
    }
    dispatcher.send(Notification { ends_at: Some(SystemTime::now()), ..resolved });
    let stats = dispatcher.flush(Instant::now() + wait);
    for sink in &stats.sinks {
        println!("{}", crate::output::escape_controls(&verdict_line(sink, wait)));
    }
    Ok(if stats.all_delivered() { exit::OK } else { exit::CRITICAL })
}

fn verdict_line(sink: &SinkStats, wait: Duration) -> String {
    if sink.sent == 2 && sink.queued == 0 {
        return format!("{}: delivered (firing and resolved)", sink.sink);
    }
    let why = sink.last_error.as_deref().unwrap_or("no answer");
    let when = if sink.queued > 0 { format!(" within {}", humantime(wait)) } else { String::new() };
    format!("{}: not delivered{when}: {why} ({} of 2 delivered)", sink.sink, sink.sent)
}

fn humantime(period: Duration) -> String {
    if period.subsec_millis() == 0 {
        format!("{} s", period.as_secs())
    } else {
        format!("{} ms", period.as_millis())
    }
}

/// The test pair: db "vigil-alert-test", check "alert_test".
pub fn test_alerts(now: SystemTime) -> (Notification, Notification) {
    let firing = Notification {
        status: Status::Firing,
        db: "vigil-alert-test".into(),
        path: "vigil-alert-test".into(),
        check: "alert_test".into(),
        severity: "warning".into(),
        value: None,
        detail: "a test alert sent by vigil alert-test; nothing is wrong".into(),
        starts_at: now,
        ends_at: None,
        fingerprint: lifecycle::fingerprint("vigil-alert-test", "alert_test"),
    };
    let resolved = Notification { status: Status::Resolved, ends_at: Some(now), ..firing.clone() };
    (firing, resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(repeat: &str, margin: &str) -> AlertArgs {
        AlertArgs {
            targets: SinkArgs::default(),
            for_count: 3,
            clear_count: 2,
            repeat: repeat.into(),
            margin: margin.into(),
        }
    }

    #[test]
    fn policy_from_flags() {
        let policy = args("4h", "5%").policy().unwrap();
        assert_eq!(policy, Policy::default());
        assert_eq!(args("0", "5").policy().unwrap().repeat, None);
        assert_eq!(args("30m", "10").policy().unwrap().margin, 0.1);
        assert!(args("soon", "5").policy().unwrap_err().message.starts_with("--repeat"));
        assert!(args("4h", "80%").policy().unwrap_err().message.starts_with("--margin"));
        let zero = AlertArgs { for_count: 0, ..args("4h", "5") };
        assert_eq!(zero.policy().unwrap_err().code, exit::USAGE);
    }

    #[test]
    fn only_http_and_https_urls_are_sinks() {
        let sinks = |url: &str| SinkArgs { webhook: vec![url.into()], ..SinkArgs::default() }.sinks();
        assert!(sinks("https://hooks.slack.com/services/X").is_ok());
        assert!(sinks("HTTP://127.0.0.1:1/x").is_ok());
        for bad in ["ftp://x", "http://", "http:///x", "127.0.0.1:9093", "file:///etc/passwd", "http://a b"] {
            let failure = sinks(bad).unwrap_err();
            assert_eq!(failure.code, exit::USAGE, "{bad}");
            assert!(failure.message.starts_with("--webhook: "), "{}", failure.message);
        }
        let am = SinkArgs { alertmanager: vec!["ftp://x".into()], ..SinkArgs::default() }.sinks();
        assert!(am.unwrap_err().message.starts_with("--alertmanager: "));
    }

    fn webhook_error(url: &str) -> String {
        let failure = SinkArgs { webhook: vec![url.into()], ..SinkArgs::default() }.sinks().unwrap_err();
        assert_eq!(failure.code, exit::USAGE, "{url}");
        assert!(failure.message.starts_with("--webhook: "), "{}", failure.message);
        failure.message
    }

    #[test]
    fn malformed_urls_are_usage_errors_that_never_show_the_path() {
        for bad in
            ["http://h:1\\services/SECRET", "http://[::1/SECRET", "http://h\u{e9}st/SECRET", "http://h:65536/SECRET"]
        {
            let message = webhook_error(bad);
            assert!(!message.contains("SECRET") && !message.contains("services"), "{message}");
            assert!(message.contains("http://<unparseable URL>"), "{message}");
        }
        assert!(SinkArgs { webhook: vec!["http://h:65535/x?t=1#f".into()], ..SinkArgs::default() }.sinks().is_ok());
        assert!(SinkArgs { webhook: vec!["http://[::1]:9/x".into()], ..SinkArgs::default() }.sinks().is_ok());
    }

    #[test]
    fn user_info_and_spaces_say_what_is_wrong() {
        let message = webhook_error("http://user:hunter2@h:1/x");
        assert!(message.contains("credentials in URLs are not supported"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        let message = webhook_error("http://h/a b");
        assert!(message.contains("contains a space"), "{message}");
        assert!(!message.contains("not an http://"), "{message}");
    }

    #[test]
    fn an_alertmanager_url_takes_no_query_nor_fragment() {
        let am = |url: &str| SinkArgs { alertmanager: vec![url.into()], ..SinkArgs::default() }.sinks();
        for bad in ["http://h/ok?x=1", "http://h:9093#top"] {
            let message = am(bad).unwrap_err().message;
            assert!(
                message.starts_with("--alertmanager: http://h") && message.contains("query or a fragment"),
                "{message}"
            );
        }
        assert!(am("http://h:9093/prefix/").is_ok());
    }
}
