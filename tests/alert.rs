//! Alerts against a real HTTP receiver on 127.0.0.1: the receiver harness itself, then `vigil alert-test` with the
//! real binary (payload shapes, retries, Retry-After, receiver down, bad flags).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use regex::Regex;
use serde_json::{json, Value as Json};
use vigil_tests::alertmanager::Alertmanager;
use vigil_tests::receiver::{Answer, Receiver};
use vigil_tests::{both, cli_binary, code, text};

/// A raw HTTP/1.1 POST; returns the status line's code, or None when the connection is refused.
fn post(port: u16, path: &str, body: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn receiver_records_requests_and_answers_from_its_script() {
    let receiver = Receiver::start();
    receiver.script(&[Answer::status(500), Answer::status(429).header("Retry-After", "1")]);
    assert_eq!(post(receiver.port(), "/hook", r#"{"a":1}"#), Some(500));
    assert_eq!(post(receiver.port(), "/hook", r#"{"a":2}"#), Some(429));
    assert_eq!(post(receiver.port(), "/other", r#"{"a":3}"#), Some(200));
    assert!(receiver.wait_for(3, Duration::from_secs(5)));
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].json()["a"], 1);
    assert_eq!(got[2].path, "/other");
    assert_eq!(got[1].answered, 429);
    assert_eq!(got[0].header("Content-Type"), Some("application/json"));
    assert!(got[0].at <= got[1].at);
    assert!(!receiver.wait_for(4, Duration::from_millis(200)));
}

#[test]
fn stopping_the_receiver_also_closes_kept_alive_connections() {
    let mut receiver = Receiver::start();
    let mut stream = TcpStream::connect(("127.0.0.1", receiver.port())).unwrap();
    stream.write_all(b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}").unwrap();
    assert!(receiver.wait_for(1, Duration::from_secs(5)));
    receiver.stop();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    let answer = String::from_utf8_lossy(&rest);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let again = stream.write_all(b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(receiver.received().len(), 1, "nothing served after stop ({again:?})");
}

#[test]
fn receiver_stops_and_restarts_on_the_same_port() {
    let mut receiver = Receiver::start();
    let port = receiver.port();
    receiver.stop();
    assert_eq!(post(port, "/hook", "{}"), None, "a stopped receiver refuses connections");
    receiver.restart();
    assert_eq!(receiver.port(), port);
    assert_eq!(post(port, "/hook", "{}"), Some(200));
    assert!(receiver.url().starts_with(&format!("http://127.0.0.1:{port}/")));
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string()
}

fn alert_test(args: &[&str]) -> std::process::Output {
    Command::new(cli_binary()).arg("alert-test").args(args).output().unwrap()
}

fn is_rfc3339_utc(text: &str) -> bool {
    Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$").unwrap().is_match(text)
}

/// The webhook v4 body of the test alert, times aside (checked apart).
fn expected_webhook(status: &str, summary: &str) -> Json {
    let labels = json!({"alertname": "VigilCheck", "db": "vigil-alert-test", "check": "alert_test",
        "severity": "warning", "instance": hostname()});
    let notes = json!({"summary": summary, "description": "a test alert sent by vigil alert-test; nothing is wrong",
        "value": "", "path": "vigil-alert-test"});
    json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"VigilCheck\", check=\"alert_test\", db=\"vigil-alert-test\"}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "vigil",
        "groupLabels": {"alertname": "VigilCheck", "check": "alert_test", "db": "vigil-alert-test"},
        "commonLabels": labels,
        "commonAnnotations": notes,
        "externalURL": "",
        "alerts": [{"status": status, "labels": labels, "annotations": notes, "generatorURL": ""}],
    })
}

/// Removes the alert's times and fingerprint after checking their form; returns (startsAt, endsAt).
fn take_times(body: &mut Json) -> (String, String) {
    let alert = body["alerts"][0].as_object_mut().unwrap();
    let fingerprint = alert.remove("fingerprint").unwrap();
    assert!(Regex::new("^[0-9a-f]{16}$").unwrap().is_match(fingerprint.as_str().unwrap()), "{fingerprint}");
    let starts = alert.remove("startsAt").unwrap().as_str().unwrap().to_string();
    let ends = alert.remove("endsAt").unwrap().as_str().unwrap().to_string();
    assert!(is_rfc3339_utc(&starts), "{starts}");
    (starts, ends)
}

#[test]
fn alert_test_sends_firing_then_resolved_as_alertmanager_webhook_v4() {
    let receiver = Receiver::start();
    let out = alert_test(&["--webhook", &receiver.url()]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    assert_eq!(
        text(&out.stdout),
        format!("webhook http://127.0.0.1:{}: delivered (firing and resolved)\n", receiver.port())
    );
    let got = receiver.received();
    assert_eq!(got.len(), 2, "one firing, one resolved: {got:?}");
    assert_eq!((got[0].method.as_str(), got[0].path.as_str()), ("POST", "/hook"));
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    let (mut firing, mut resolved) = (got[0].json(), got[1].json());
    let fingerprints = (firing["alerts"][0]["fingerprint"].clone(), resolved["alerts"][0]["fingerprint"].clone());
    assert_eq!(fingerprints.0, fingerprints.1, "one alert, one fingerprint");
    let (starts, ends) = take_times(&mut firing);
    assert_eq!(ends, "0001-01-01T00:00:00Z", "firing: no end, as Alertmanager writes it");
    assert_eq!(firing, expected_webhook("firing", "vigil-alert-test: alert_test is warning"));
    let (starts_again, ended) = take_times(&mut resolved);
    assert_eq!(starts_again, starts);
    assert!(is_rfc3339_utc(&ended) && ended >= starts, "{ended}");
    assert_eq!(resolved, expected_webhook("resolved", "vigil-alert-test: alert_test resolved"));
}

#[test]
fn alert_test_sends_slack_text() {
    let receiver = Receiver::start();
    let out = alert_test(&["--webhook", &receiver.url(), "--webhook-format", "slack"]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    assert!(text(&out.stdout).starts_with("slack webhook http://127.0.0.1:"), "{}", both(&out));
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    let host = hostname();
    assert_eq!(
        got[0].json(),
        json!({"text": format!("[FIRING WARNING] vigil-alert-test: alert_test: a test alert sent by vigil alert-test; nothing is wrong (vigil-alert-test on {host})")})
    );
    assert_eq!(
        got[1].json(),
        json!({"text": format!("[RESOLVED] vigil-alert-test: alert_test: a test alert sent by vigil alert-test; nothing is wrong (vigil-alert-test on {host})")})
    );
}

#[test]
fn alert_test_pushes_to_alertmanagers_v2_api() {
    let receiver = Receiver::start();
    let out = alert_test(&["--alertmanager", &receiver.base_url()]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].path, "/api/v2/alerts");
    let firing = got[0].json();
    let alert = firing.as_array().expect("an array of alerts")[0].as_object().unwrap().clone();
    let keys: Vec<&str> = alert.keys().map(String::as_str).collect();
    assert_eq!(keys, ["annotations", "generatorURL", "labels", "startsAt"], "firing: no endsAt");
    assert_eq!(alert["labels"]["alertname"], "VigilCheck");
    assert_eq!(alert["labels"]["instance"], hostname());
    let resolved = got[1].json();
    assert!(is_rfc3339_utc(resolved[0]["endsAt"].as_str().unwrap()), "{resolved}");
}

#[test]
fn a_message_answered_500_twice_then_200_is_delivered_once_after_backoff() {
    let receiver = Receiver::start();
    receiver.script(&[Answer::status(500), Answer::status(500)]);
    let out = alert_test(&["--webhook", &receiver.url()]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let got = receiver.received();
    let statuses: Vec<(String, u16)> =
        got.iter().map(|r| (r.json()["status"].as_str().unwrap().into(), r.answered)).collect();
    let expected: Vec<(String, u16)> =
        [("firing", 500), ("firing", 500), ("firing", 200), ("resolved", 200)].map(|(s, c)| (s.into(), c)).into();
    assert_eq!(statuses, expected, "retried in order, delivered once, the resolved one after it");
    assert!(got[1].at - got[0].at >= Duration::from_millis(950), "backoff 1 s");
    assert!(got[2].at - got[1].at >= Duration::from_millis(1950), "then 2 s");
    assert!(text(&out.stderr).contains("HTTP 500"), "{}", both(&out));
}

#[test]
fn a_429_with_retry_after_waits_that_long_and_delivers_once() {
    let receiver = Receiver::start();
    // 2 s: longer than the first backoff step (1 s), so waiting this long can only come from the header.
    receiver.script(&[Answer::status(429).header("Retry-After", "2")]);
    let out = alert_test(&["--webhook", &receiver.url(), "--webhook-format", "slack"]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let got = receiver.received();
    assert_eq!(got.iter().map(|r| r.answered).collect::<Vec<_>>(), [429, 200, 200]);
    assert_eq!(got[0].body, got[1].body, "the same message again");
    assert!(got[1].at - got[0].at >= Duration::from_millis(1950), "waited {:?}", got[1].at - got[0].at);
}

#[test]
fn a_permanent_4xx_is_not_retried_and_exits_2() {
    let receiver = Receiver::start();
    receiver.script(&[Answer::status(404), Answer::status(404)]);
    let out = alert_test(&["--webhook", &receiver.url()]);
    assert_eq!(code(&out), 2, "{}", both(&out));
    assert_eq!(receiver.received().len(), 2, "each message tried once");
    assert!(text(&out.stdout).contains("not delivered: HTTP 404 (0 of 2 delivered)"), "{}", both(&out));
}

#[test]
fn a_receiver_that_is_down_exits_2_naming_only_scheme_host_and_port() {
    let mut receiver = Receiver::start();
    let port = receiver.port();
    receiver.stop();
    let secret_url = format!("http://127.0.0.1:{port}/services/T000/SECRET?token=hunter2");
    let out = alert_test(&["--webhook", &secret_url, "--wait", "1500ms"]);
    assert_eq!(code(&out), 2, "{}", both(&out));
    let printed = both(&out);
    assert!(
        printed.contains(&format!("webhook http://127.0.0.1:{port}: not delivered within 1500 ms: connection refused")),
        "{printed}"
    );
    assert!(!printed.contains("SECRET") && !printed.contains("hunter2") && !printed.contains("/services"), "{printed}");
}

#[test]
fn a_receiver_down_then_up_gets_the_messages_after_it_recovers() {
    let mut receiver = Receiver::start();
    receiver.stop();
    let child = Command::new(cli_binary())
        .args(["alert-test", "--webhook", &receiver.url(), "--wait", "20s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(receiver.received().is_empty());
    receiver.restart();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}", both(&out));
    let got = receiver.received();
    let statuses: Vec<_> = got.iter().map(|r| r.json()["status"].as_str().unwrap().to_string()).collect();
    assert_eq!(statuses, ["firing", "resolved"], "each once, in order");
    assert!(text(&out.stderr).contains("connection refused; retrying"), "{}", both(&out));
}

#[test]
fn urls_that_are_not_http_are_usage_errors() {
    for (flag, url) in
        [("--webhook", "ftp://x"), ("--alertmanager", "file:///etc/passwd"), ("--webhook", "hooks.slack.com/x")]
    {
        let out = alert_test(&[flag, url]);
        assert_eq!(code(&out), 64, "{flag} {url}: {}", both(&out));
        assert!(text(&out.stderr).contains(&format!("{flag}: ")), "{}", both(&out));
        assert!(text(&out.stderr).contains("is not an http:// or https:// URL"), "{}", both(&out));
    }
    let out = alert_test(&[]);
    assert_eq!(code(&out), 64, "{}", both(&out));
    let out = alert_test(&["--webhook", "http://127.0.0.1:1/", "--webhook-format", "teams"]);
    assert_eq!(code(&out), 64, "{}", both(&out));
}

#[test]
fn firing_then_resolved_reach_a_receiver_through_a_real_alertmanager() {
    let receiver = Receiver::start();
    let am = Alertmanager::start(&receiver.url());
    let out = alert_test(&["--alertmanager", &am.url, "--hold", "3s"]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    assert!(receiver.wait_for(2, Duration::from_secs(30)), "got {:?}", receiver.received());
    let got = receiver.received();
    let statuses: Vec<String> = got.iter().map(|r| r.json()["status"].as_str().unwrap().to_string()).collect();
    assert_eq!(statuses, ["firing", "resolved"], "{got:?}");
    for message in &got {
        let body = message.json();
        assert_eq!(body["version"], "4");
        assert_eq!(body["alerts"][0]["labels"]["db"], "vigil-alert-test");
        assert_eq!(body["alerts"][0]["labels"]["check"], "alert_test");
        assert_eq!(
            body["alerts"][0]["annotations"]["description"],
            "a test alert sent by vigil alert-test; nothing is wrong"
        );
    }
    assert_ne!(got[1].json()["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
}

#[test]
fn malformed_urls_exit_64_naming_the_flag_and_never_the_path() {
    for (flag, url, says) in [
        ("--webhook", "http://127.0.0.1:1\\services/T0/SECRET", "<unparseable URL>"),
        ("--webhook", "http://[::1/SECRET", "<unparseable URL>"),
        ("--webhook", "http://127.0.0.1:70000/SECRET", "<unparseable URL>"),
        ("--webhook", "http://user:SECRET@127.0.0.1:1/x", "credentials in URLs are not supported"),
        ("--webhook", "http://127.0.0.1:1/a SECRET", "contains a space"),
        ("--alertmanager", "http://127.0.0.1:1/ok?SECRET=1", "query or a fragment"),
    ] {
        let out = alert_test(&[flag, url]);
        assert_eq!(code(&out), 64, "{flag} {url}: {}", both(&out));
        let printed = both(&out);
        assert!(printed.contains(&format!("{flag}: ")) && printed.contains(says), "{url}: {printed}");
        assert!(!printed.contains("SECRET") && !printed.contains("services"), "{printed}");
    }
}

#[test]
fn two_sinks_on_one_host_are_told_apart_by_an_index() {
    let receiver = Receiver::start();
    let other = format!("{}/other/SECRET", receiver.base_url());
    let out = alert_test(&["--webhook", &other, "--webhook", &receiver.url()]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let port = receiver.port();
    assert_eq!(
        text(&out.stdout),
        format!(
            "webhook#1 http://127.0.0.1:{port}: delivered (firing and resolved)\n\
             webhook#2 http://127.0.0.1:{port}: delivered (firing and resolved)\n"
        )
    );
    assert_eq!(receiver.received().len(), 4);
}

#[test]
fn https_to_a_plain_http_port_asks_whether_the_port_speaks_https() {
    // A plain HTTP server: it answers whatever arrives (here a TLS hello) with an HTTP status line.
    let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = plain.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in plain.incoming().flatten() {
            let mut hello = [0u8; 512];
            let _ = stream.read(&mut hello);
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    let out = alert_test(&["--webhook", &format!("https://127.0.0.1:{port}/hook"), "--wait", "500ms"]);
    assert_eq!(code(&out), 2, "{}", both(&out));
    assert!(text(&out.stdout).contains("(does the port speak https?)"), "{}", both(&out));
}
