//! Alerts against a real HTTP receiver on 127.0.0.1: the receiver harness itself, then `vigil alert-test` with the
//! real binary (payload shapes, retries, Retry-After, receiver down, bad flags).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use vigil_tests::receiver::{Answer, Receiver};

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
