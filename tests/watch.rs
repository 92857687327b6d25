//! `vigil watch`: the real binary over real databases in a directory that changes under it (databases added,
//! deleted, locked EXCLUSIVE by another process, vacuumed), real signals, real state files (hostile ones too)
//! and real backups.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use vigil_tests::receiver::{Answer, Receiver};
use vigil_tests::*;

/// Thresholds that depend on the machine or on backups nobody made are off, so statuses are the databases'.
const STEADY: &[&str] = &["--threshold", "disk_used_pct=none,none", "--threshold", "last_backup_hours=none,none"];
/// Only the cheap checks: the long jobs are tested where they matter.
const CHEAP_ONLY: &[&str] =
    &["--quick-every", "off", "--full-every", "off", "--snapshot-every", "off", "--pit-every", "off"];

/// A running `vigil watch --log-json`, its events collected; killed when dropped.
struct Watch {
    child: Child,
    events: Arc<Mutex<Vec<Json>>>,
    raw: Arc<Mutex<Vec<String>>>,
}

impl Watch {
    fn start(dir: &Path, args: &[&str]) -> Watch {
        let mut child = Command::new(cli_binary())
            .arg("watch")
            .args(args)
            .arg("--log-json")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let (into, raw_into) = (events.clone(), raw.clone());
        let pipe = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in pipe.lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<Json>(&line) {
                    into.lock().unwrap().push(event);
                }
                raw_into.lock().unwrap().push(line);
            }
        });
        Watch { child, events, raw }
    }

    fn events(&self) -> Vec<Json> {
        self.events.lock().unwrap().clone()
    }

    fn log(&self) -> String {
        self.raw.lock().unwrap().join("\n")
    }

    /// Waits (up to 30 s) for an event matching `what`; returns it.
    fn wait_for(&self, what: impl Fn(&Json) -> bool, describe: &str) -> Json {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(found) = self.events().into_iter().find(|e| what(e)) {
                return found;
            }
            assert!(Instant::now() < deadline, "no event: {describe}\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn status_of(&self, db: &str, status: &str) -> Json {
        self.wait_for(
            |e| e["event"] == "status changed" && e["db"] == db && e["status"] == status,
            &format!("{db} {status}"),
        )
    }

    /// SIGTERM; the exit code and the whole log.
    fn stop(mut self) -> (i32, String) {
        let sent = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(sent.success());
        let status = self.child.wait().unwrap();
        // Let the reader thread take the last lines.
        std::thread::sleep(Duration::from_millis(100));
        (status.code().unwrap_or(-1), self.log())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn vigil_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(cli_binary()).args(args).current_dir(dir).output().unwrap()
}

/// The demo database with ANALYZE statistics: its only warnings are freelist_pct (29 %) and the maintenance
/// that recommends a VACUUM for it.
fn demo(path: &Path) {
    let out = Command::new(cli_binary()).arg("demo").arg(path).output().unwrap();
    assert_eq!(code(&out), 0, "{}", both(&out));
    rusqlite::Connection::open(path).unwrap().execute_batch("ANALYZE").unwrap();
}

/// A small healthy database.
fn small(path: &Path) {
    create_db(path, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) VALUES ('x'); ANALYZE;");
}

fn state(path: &Path) -> Json {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn last_check(state_file: &Path, db: &str) -> u64 {
    let Ok(text) = std::fs::read_to_string(state_file) else { return 0 };
    let saved: Json = serde_json::from_str(&text).unwrap();
    saved["databases"][db]["last_run_ms"]["check"].as_u64().unwrap_or(0)
}

/// Waits (up to 30 s) until the state file records a check of `db` later than `after`; its time.
fn wait_for_a_check(state_file: &Path, db: &str, after: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let at = last_check(state_file, db);
        if at > after {
            return at;
        }
        assert!(Instant::now() < deadline, "no check of {db} saved after {after}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_directory_is_watched_as_databases_appear_lock_and_vanish() {
    let dir = scratch();
    let d = dir.path().join("dbs");
    std::fs::create_dir(&d).unwrap();
    for name in ["a.db", "b.db", "c.db"] {
        small(&d.join(name));
    }
    std::fs::write(d.join("x.db"), "not a database, but named like one").unwrap();
    std::fs::copy(d.join("a.db"), d.join("a.db-wal")).unwrap();
    let state_file = dir.path().join("state.json");
    let mut args = vec!["--dir", "dbs", "--every", "200ms", "--busy-timeout", "300", "--state", "state.json"];
    // No sink: the alert states are still kept and logged.
    args.extend(["--for", "1", "--clear", "1"]);
    args.extend(STEADY);
    args.extend(CHEAP_ONLY);
    let watch = Watch::start(dir.path(), &args);
    for db in ["a.db", "b.db", "c.db"] {
        watch.status_of(db, "info");
    }
    // Several cycles later: x.db was noted once, the -wal never, and only the three databases were added.
    std::thread::sleep(Duration::from_millis(1000));
    let events = watch.events();
    let skipped: Vec<&Json> = events.iter().filter(|e| e["event"] == "skipped").collect();
    assert_eq!(skipped.len(), 1, "{}", watch.log());
    assert!(skipped[0]["file"].as_str().unwrap().ends_with("x.db"), "{}", watch.log());
    let mut added: Vec<&str> =
        events.iter().filter(|e| e["event"] == "added").map(|e| e["db"].as_str().unwrap()).collect();
    added.sort();
    assert_eq!(added, ["a.db", "b.db", "c.db"], "{}", watch.log());

    // A fourth database appears: watched without a restart.
    small(&d.join("d.db"));
    watch.wait_for(|e| e["event"] == "added" && e["db"] == "d.db", "d.db added");
    watch.status_of("d.db", "info");

    // b.db held EXCLUSIVE by another process: unknown, while a.db keeps its schedule.
    let locker = Locker::lock(&d.join("b.db"));
    let unknown = watch.status_of("b.db", "unknown");
    assert_eq!(unknown["level"], "warning");
    let failed =
        watch.wait_for(|e| e["event"] == "job done" && e["db"] == "b.db" && e["status"] == "unknown", "b.db job");
    assert!(failed["error"].as_str().unwrap().contains("b.db"), "{failed}");
    let before = last_check(&state_file, "a.db");
    std::thread::sleep(Duration::from_millis(1500));
    let after = last_check(&state_file, "a.db");
    // The lock costs b.db 300 ms per check; a.db's checks went on every 200 ms meanwhile.
    assert!(after >= before + 600, "a.db was checked at {before} then {after} while b.db was locked\n{}", watch.log());
    let alert = |status: &'static str| {
        move |e: &Json| e["event"] == "alert" && e["db"] == "b.db" && e["check"] == "vigil_up" && e["status"] == status
    };
    let firing = watch.wait_for(alert("firing"), "vigil_up firing for b.db");
    assert_eq!(firing["severity"], "critical", "{firing}");
    drop(locker);
    watch.status_of("b.db", "info");
    watch.wait_for(alert("resolved"), "vigil_up resolved for b.db");
    assert!(!watch.events().iter().any(|e| e["event"] == "alert" && e["db"] != "b.db"), "{}", watch.log());

    // c.db deleted: dropped.
    std::fs::remove_file(d.join("c.db")).unwrap();
    watch.wait_for(|e| e["event"] == "removed" && e["db"] == "c.db", "c.db removed");
    let (code, log) = watch.stop();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("stopped by SIGTERM"), "{log}");
    let saved = state(&state_file);
    let mut dbs: Vec<&String> = saved["databases"].as_object().unwrap().keys().collect();
    dbs.sort();
    assert_eq!(dbs, ["a.db", "b.db", "d.db"]);
}

#[test]
fn a_database_goes_from_warning_to_ok_when_vacuumed() {
    let dir = scratch();
    demo(&dir.path().join("shop.db"));
    let mut args = vec!["shop.db", "--every", "200ms", "--state", "state.json"];
    args.extend(STEADY);
    args.extend(CHEAP_ONLY);
    let watch = Watch::start(dir.path(), &args);
    watch.status_of("shop.db", "warning");
    rusqlite::Connection::open(dir.path().join("shop.db")).unwrap().execute_batch("VACUUM").unwrap();
    let ok = watch.wait_for(
        |e| e["event"] == "status changed" && e["db"] == "shop.db" && e["was"] == "warning",
        "shop.db leaves warning",
    );
    assert!(ok["status"] == "ok" || ok["status"] == "info", "{ok}");
    assert_eq!(watch.stop().0, 0);
}

fn backups_in(dir: &Path) -> Vec<PathBuf> {
    let mut list: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_string_lossy().ends_with(".vigil.json"))
        .collect();
    list.sort();
    list
}

#[test]
fn backups_keep_their_retention_per_database_and_a_restart_repeats_no_job() {
    let dir = scratch();
    let d = dir.path().join("dbs");
    std::fs::create_dir_all(d.join("sub")).unwrap();
    small(&d.join("a.db"));
    small(&d.join("sub/b.db"));
    std::fs::create_dir(dir.path().join("backups")).unwrap();
    let once = |period: &str| {
        let mut args = vec!["watch", "--once", "--dir", "dbs", "--recursive", "--state", "state.json"];
        args.extend(["--backup-dir", "backups", "--keep", "2", "--backup-every", period]);
        args.extend(["--quick-every", period, "--full-every", period, "--snapshot-every", period]);
        args.extend(STEADY);
        vigil_in(dir.path(), &args)
    };
    for _ in 0..3 {
        let out = once("10ms");
        assert_eq!(code(&out), 0, "{}", both(&out));
        assert!(both(&out).contains("job=backup status=ok"), "{}", both(&out));
        std::thread::sleep(Duration::from_millis(20)); // periods of 10 ms are over
    }
    let a = backups_in(&dir.path().join("backups/a.db"));
    let b = backups_in(&dir.path().join("backups/sub%2Fb.db"));
    assert_eq!((a.len(), b.len()), (2, 2), "{a:?} {b:?}");
    let snapshots: i64 = rusqlite::Connection::open(d.join("a.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM vigil_health_history", [], |r| r.get(0))
        .unwrap();
    assert_eq!(snapshots, 3);

    // The loop, restarted with hourly periods: nothing ran an hour ago, so nothing long runs again.
    let mut args = vec!["--dir", "dbs", "--recursive", "--state", "state.json", "--every", "200ms"];
    args.extend(["--backup-dir", "backups", "--keep", "2", "--backup-every", "1h"]);
    args.extend(["--quick-every", "1h", "--full-every", "1h", "--snapshot-every", "1h"]);
    args.extend(STEADY);
    let checked = last_check(&dir.path().join("state.json"), "a.db");
    let watch = Watch::start(dir.path(), &args);
    wait_for_a_check(&dir.path().join("state.json"), "a.db", checked);
    std::thread::sleep(Duration::from_millis(1000));
    let (code, log) = watch.stop();
    assert_eq!(code, 0, "{log}");
    assert!(!log.contains(r#""job":"backup""#) && !log.contains(r#""job":"quick""#), "{log}");
    assert!(!log.contains(r#""job":"snapshot""#) && !log.contains(r#""event":"added""#), "{log}");
    assert!(log.contains("stopped by SIGTERM"), "{log}");
    // And a cron run with the hourly periods: not due either.
    let out = once("1h");
    assert!(!both(&out).contains("job=backup"), "{}", both(&out));
    assert_eq!(backups_in(&dir.path().join("backups/a.db")), a);
}

#[test]
fn once_exits_as_metrics_and_finds_its_default_state_from_another_directory() {
    let dir = scratch();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    demo(&dir.path().join("shop.db"));
    let run = |args: &[&str]| {
        Command::new(cli_binary())
            .arg("watch")
            .args(args)
            .args(STEADY)
            .args(["--once", "--quick-every", "off", "--full-every", "off", "--snapshot-every", "off"])
            .current_dir(&elsewhere)
            .env("XDG_STATE_HOME", dir.path().join("xdg"))
            .env_remove("STATE_DIRECTORY")
            .output()
            .unwrap()
    };
    let out = run(&["../shop.db"]);
    assert_eq!(code(&out), 1, "{}", both(&out));
    let saved = state(&dir.path().join("xdg/vigil/watch-state.json"));
    assert_eq!(saved["databases"]["shop.db"]["status"], "warning");
    let out = run(&["../missing.db", "--state", "../other.json"]);
    assert_eq!(code(&out), 3, "{}", both(&out));
    assert!(text(&out.stderr).contains("missing.db: no such file"), "{}", both(&out));
    // Bad flags are usage errors naming the flag, before any database is touched.
    for (bad, flag) in [
        (&["../shop.db", "--threshold", "last_backup=1"][..], "--threshold"),
        (&["../shop.db", "--quick-every", "soon"][..], "--quick-every"),
        (&["../shop.db", "--backup-dir", "../nowhere"][..], "--backup-dir"),
        (&["--dir", "../nowhere"][..], "--dir"),
        (&["'../*.nothing'"][..], "glob"),
        (&["../shop.db", "--webhook", "ftp://x/secret"][..], "--webhook"),
    ] {
        let out = run(bad);
        assert_eq!(code(&out), 64, "{bad:?}: {}", both(&out));
        assert!(text(&out.stderr).contains(flag), "{bad:?}: {}", both(&out));
        assert!(!text(&out.stderr).contains("secret"), "{}", both(&out));
    }
}

#[test]
fn hostile_state_files_are_refused_and_one_state_serves_one_watch() {
    let dir = scratch();
    let d = dir.path();
    small(&d.join("a.db"));
    let run = |state: &str| {
        let mut args = vec!["watch", "a.db", "--once", "--state", state];
        args.extend(STEADY);
        vigil_in(d, &args)
    };

    std::fs::write(d.join("secret"), "keep me").unwrap();
    std::os::unix::fs::symlink(d.join("secret"), d.join("link.json")).unwrap();
    let out = run("link.json");
    assert_eq!(code(&out), 64, "{}", both(&out));
    assert!(text(&out.stderr).contains("is a symlink"), "{}", both(&out));
    assert_eq!(std::fs::read_to_string(d.join("secret")).unwrap(), "keep me");

    std::fs::write(d.join("junk.json"), "{\"not\": \"ours\"}").unwrap();
    let out = run("junk.json");
    assert_eq!(code(&out), 64, "{}", both(&out));
    assert!(text(&out.stderr).contains("not a vigil watch state file"), "{}", both(&out));
    assert_eq!(std::fs::read_to_string(d.join("junk.json")).unwrap(), "{\"not\": \"ours\"}");

    let fifo = d.join("fifo.json");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let out = run("fifo.json");
    assert_eq!(code(&out), 64, "{}", both(&out));
    assert!(text(&out.stderr).contains("not a regular file"), "{}", both(&out));

    let watch = Watch::start(d, &["a.db", "--every", "200ms", "--state", "shared.json"]);
    watch.wait_for(|e| e["event"] == "status changed", "first check");
    let out = run("shared.json");
    assert_eq!(code(&out), 64, "{}", both(&out));
    assert!(text(&out.stderr).contains("another vigil watch is using this state file"), "{}", both(&out));
    assert_eq!(watch.stop().0, 0);
    assert_eq!(code(&run("shared.json")), 0);
}

fn latest_seq(dir: &Path, db: &str) -> i64 {
    let out = vigil_in(dir, &["pit", "status", db, "--json"]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    serde_json::from_slice::<Json>(&out.stdout).unwrap()["window"]["latest_seq"].as_i64().unwrap()
}

#[test]
fn journaled_databases_get_pit_ticks_and_the_textfile_follows_the_fleet() {
    let dir = scratch();
    let d = dir.path();
    small(&d.join("journaled.db"));
    small(&d.join("plain.db"));
    let out = vigil_in(d, &["pit", "enable", "journaled.db"]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    std::fs::create_dir(d.join("prom")).unwrap();
    let before = latest_seq(d, "journaled.db");
    let mut args = vec!["journaled.db", "plain.db", "--every", "200ms", "--pit-every", "100ms", "--state", "s.json"];
    args.extend(["--textfile", "prom", "--quick-every", "off", "--full-every", "off", "--snapshot-every", "off"]);
    args.extend(STEADY);
    let watch = Watch::start(d, &args);
    let deadline = Instant::now() + Duration::from_secs(30);
    // Ticks seal the journal: its latest seq grows while nothing else writes.
    while latest_seq(d, "journaled.db") < before + 3 {
        assert!(Instant::now() < deadline, "no pit ticks\n{}", watch.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let prom = std::fs::read_to_string(d.join("prom/vigil.prom")).unwrap();
    assert!(prom.contains("vigil_up{db=\"journaled.db\"} 1") && prom.contains("vigil_up{db=\"plain.db\"} 1"), "{prom}");
    assert!(prom.contains("vigil_pit_journal_rows{db=\"journaled.db\"}"), "{prom}");
    let (code, log) = watch.stop();
    assert_eq!(code, 0, "{log}");
    // A plain database never gets a tick (pit_tick would fail on it, and say so).
    assert!(!log.contains("pit_tick"), "{log}");
}

// ---- Alerts, against the real receiver (tests/harness/receiver.rs) ----

/// Two versions of one database: `warn.db`, the demo with its 29 % free pages (freelist_pct and maintenance are
/// warning; maintenance never alerts), and `ok.db`, the same vacuumed (both info).
fn versions(dir: &Path) -> (PathBuf, PathBuf) {
    let warn = dir.join("versions/warn.db");
    std::fs::create_dir_all(warn.parent().unwrap()).unwrap();
    demo(&warn);
    let ok = dir.join("versions/ok.db");
    std::fs::copy(&warn, &ok).unwrap();
    rusqlite::Connection::open(&ok).unwrap().execute_batch("VACUUM").unwrap();
    (warn, ok)
}

/// Replaces `db` by a copy of `version` in one rename: the watch reads one or the other, never half of each.
fn become_(version: &Path, db: &Path) {
    let temp = db.with_extension("incoming");
    std::fs::copy(version, &temp).unwrap();
    std::fs::rename(&temp, db).unwrap();
}

/// The (status, fingerprint, body) of each webhook message about `check` that the receiver answered 200.
fn delivered(receiver: &Receiver, check: &str) -> Vec<(String, String, Json)> {
    let mut out = Vec::new();
    for request in receiver.received().into_iter().filter(|r| r.answered == 200) {
        let body = request.json();
        for alert in body["alerts"].as_array().into_iter().flatten() {
            if alert["labels"]["check"] == check {
                let status = alert["status"].as_str().unwrap().to_string();
                out.push((status, alert["fingerprint"].as_str().unwrap().to_string(), body.clone()));
            }
        }
    }
    out
}

fn alert_args<'a>(url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let every = if extra.contains(&"--once") { "10ms" } else { "200ms" };
    let mut args = vec!["shop.db", "--every", every, "--state", "state.json", "--webhook", url];
    args.extend(extra);
    args.extend(STEADY);
    args.extend(CHEAP_ONLY);
    args
}

#[test]
fn a_warning_fires_once_and_resolves_once_through_a_failing_receiver() {
    let dir = scratch();
    let (warn, ok) = versions(dir.path());
    let shop = dir.path().join("shop.db");
    become_(&warn, &shop);
    let receiver = Receiver::start();
    receiver.script(&[Answer::status(500), Answer::status(500)]);
    let url = receiver.url();
    let watch = Watch::start(dir.path(), &alert_args(&url, &["--for", "3", "--clear", "2"]));
    watch.wait_for(|e| e["event"] == "alert" && e["check"] == "freelist_pct" && e["status"] == "firing", "firing");
    // Warning for five cycles and more, then vacuumed.
    std::thread::sleep(Duration::from_millis(1200));
    become_(&ok, &shop);
    watch.wait_for(|e| e["event"] == "alert" && e["check"] == "freelist_pct" && e["status"] == "resolved", "resolved");
    let deadline = Instant::now() + Duration::from_secs(30);
    while delivered(&receiver, "freelist_pct").len() < 2 {
        assert!(Instant::now() < deadline, "not delivered\n{}", watch.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(600));
    let (code, log) = watch.stop();
    assert_eq!(code, 0, "{log}");
    let messages = delivered(&receiver, "freelist_pct");
    let statuses: Vec<&str> = messages.iter().map(|(s, _, _)| s.as_str()).collect();
    assert_eq!(statuses, ["firing", "resolved"], "{log}");
    assert_eq!(messages[0].1, messages[1].1, "one fingerprint");
    let (firing, resolved) = (&messages[0].2, &messages[1].2);
    assert_eq!(firing["version"], "4");
    assert!(firing["alerts"][0]["startsAt"].as_str().unwrap().ends_with('Z'));
    assert!(resolved["alerts"][0]["endsAt"].as_str().unwrap().starts_with("20"), "{resolved}");
    // The two 500s were retried: each message was delivered once, none twice.
    let answers: Vec<u16> = receiver.received().iter().map(|r| r.answered).collect();
    assert_eq!(answers.iter().filter(|&&a| a == 500).count(), 2, "{answers:?}");
    // maintenance is advice derived from freelist_pct: alerting on it would say the same twice.
    assert!(delivered(&receiver, "maintenance").is_empty(), "maintenance never alerts: {answers:?}");
    assert!(log.contains(r#""event":"alert not delivered""#) && log.contains(r#""reason":"#), "{log}");
    assert!(!log.contains(&url), "the webhook URL's path stays out of the log: {log}");
}

#[test]
fn a_blip_shorter_than_for_sends_nothing() {
    let dir = scratch();
    let (warn, ok) = versions(dir.path());
    let shop = dir.path().join("shop.db");
    become_(&ok, &shop);
    let receiver = Receiver::start();
    let url = receiver.url();
    let watch = Watch::start(dir.path(), &alert_args(&url, &["--for", "3"]));
    watch.status_of("shop.db", "info");
    // Warning for less than a cycle (at most two checks can see it), until a check did see it.
    for _ in 0..20 {
        become_(&warn, &shop);
        std::thread::sleep(Duration::from_millis(150));
        become_(&ok, &shop);
        std::thread::sleep(Duration::from_millis(600));
        if watch.events().iter().any(|e| e["event"] == "status changed" && e["status"] == "warning") {
            break;
        }
    }
    assert!(watch.events().iter().any(|e| e["status"] == "warning"), "no check saw the blip\n{}", watch.log());
    std::thread::sleep(Duration::from_millis(600));
    let (code, log) = watch.stop();
    assert_eq!(code, 0, "{log}");
    assert!(receiver.received().is_empty(), "{log}");
    assert!(!log.contains(r#""event":"alert""#), "{log}");
}

#[test]
fn a_value_oscillating_around_its_level_fires_at_most_once() {
    let dir = scratch();
    let d = dir.path();
    // Two sizes 2 % apart, the warning level halfway: each version is 1 % from it.
    let small_db = d.join("versions/small.db");
    std::fs::create_dir_all(small_db.parent().unwrap()).unwrap();
    create_db(&small_db, "CREATE TABLE t(b BLOB); INSERT INTO t VALUES (zeroblob(2000000)); ANALYZE;");
    let big_db = d.join("versions/big.db");
    std::fs::copy(&small_db, &big_db).unwrap();
    rusqlite::Connection::open(&big_db).unwrap().execute_batch("INSERT INTO t VALUES (zeroblob(40000))").unwrap();
    let size = |p: &Path| std::fs::metadata(p).unwrap().len() as f64;
    let (low, high) = (size(&small_db), size(&big_db));
    let level = (low + high) / 2.0;
    assert!(high / level > 1.005 && low / level < 0.995, "{low} {high}");
    let threshold = format!("file_size={level:.0}"); // bytes
    let shop = d.join("shop.db");
    become_(&big_db, &shop);
    let receiver = Receiver::start();
    let url = receiver.url();
    let watch = Watch::start(d, &alert_args(&url, &["--for", "1", "--clear", "1", "--threshold", &threshold]));
    watch.status_of("shop.db", "warning");
    for i in 0..16 {
        become_(if i % 2 == 0 { &small_db } else { &big_db }, &shop);
        std::thread::sleep(Duration::from_millis(250));
    }
    let (code, log) = watch.stop();
    assert_eq!(code, 0, "{log}");
    let flips = watch_events(&log).iter().filter(|e| e["event"] == "status changed").count();
    assert!(flips >= 4, "the oscillation was seen: {flips} status changes\n{log}");
    let firing = delivered(&receiver, "file_size").iter().filter(|(s, _, _)| s == "firing").count();
    assert_eq!(firing, 1, "{log}");
}

fn watch_events(log: &str) -> Vec<Json> {
    log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

#[test]
fn alerts_wait_for_a_receiver_that_is_down_while_the_checks_go_on() {
    let dir = scratch();
    let (warn, _) = versions(dir.path());
    become_(&warn, &dir.path().join("shop.db"));
    let mut receiver = Receiver::start();
    receiver.stop();
    let url = receiver.url();
    let watch = Watch::start(dir.path(), &alert_args(&url, &["--for", "1"]));
    watch.wait_for(|e| e["event"] == "alert not delivered", "a failed try");
    let state_file = dir.path().join("state.json");
    let before = wait_for_a_check(&state_file, "shop.db", 0);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(last_check(&state_file, "shop.db") >= before + 600, "checks went on\n{}", watch.log());
    receiver.restart();
    let deadline = Instant::now() + Duration::from_secs(60);
    while delivered(&receiver, "freelist_pct").is_empty() {
        assert!(Instant::now() < deadline, "never delivered after the receiver came back\n{}", watch.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, log) = watch.stop();
    assert_eq!(code, 0, "{log}");
    assert_eq!(delivered(&receiver, "freelist_pct").len(), 1, "{log}");
}

#[test]
fn two_cron_runs_while_warning_send_one_message_and_a_restart_still_resolves() {
    let dir = scratch();
    let (warn, ok) = versions(dir.path());
    let shop = dir.path().join("shop.db");
    become_(&warn, &shop);
    let receiver = Receiver::start();
    let url = receiver.url();
    let once = || {
        let mut args = vec!["watch"];
        args.extend(alert_args(&url, &["--once", "--for", "1", "--clear", "1"]));
        vigil_in(dir.path(), &args)
    };
    for _ in 0..2 {
        let out = once();
        assert_eq!(code(&out), 1, "{}", both(&out));
        std::thread::sleep(Duration::from_millis(20));
    }
    let messages = delivered(&receiver, "freelist_pct");
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0].0, "firing");
    // Vacuumed before the third run: the alert the first run raised resolves.
    become_(&ok, &shop);
    let out = once();
    assert_eq!(code(&out), 0, "{}", both(&out));
    let statuses: Vec<String> = delivered(&receiver, "freelist_pct").into_iter().map(|(s, _, _)| s).collect();
    assert_eq!(statuses, ["firing", "resolved"]);
}

#[test]
fn hostile_file_names_cannot_forge_log_lines() {
    let dir = scratch();
    let d = dir.path().join("dbs");
    std::fs::create_dir(&d).unwrap();
    small(&d.join("evil\nvigil watch: forged.db: status changed status=ok\u{1b}[2J.db"));
    std::fs::write(d.join("junk\n.db"), "not a database").unwrap();
    let mut args = vec!["watch", "--once", "--dir", "dbs", "--state", "s.json"];
    args.extend(STEADY);
    let out = vigil_in(dir.path(), &args);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let stderr = text(&out.stderr);
    assert!(stderr.lines().all(|l| l.starts_with("vigil watch: ")), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
    assert!(stderr.contains(r"evil\nvigil watch: forged.db"), "{stderr}");
    assert!(stderr.contains(r"junk\n.db") && stderr.contains("skipped"), "{stderr}");
    // JSON lines carry the names exactly, one object per line.
    let mut args = vec!["watch", "--once", "--dir", "dbs", "--state", "fresh.json", "--log-json"];
    args.extend(STEADY);
    let out = vigil_in(dir.path(), &args);
    let events: Vec<Json> = text(&out.stderr).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(events.iter().any(|e| e["db"].as_str().is_some_and(|db| db.contains("\nvigil watch: forged.db"))));
}

#[test]
fn sigterm_interrupts_a_check_waiting_for_a_lock_and_records_nothing_of_it() {
    let dir = scratch();
    small(&dir.path().join("a.db"));
    let locker = Locker::lock(&dir.path().join("a.db"));
    let mut args = vec!["a.db", "--every", "200ms", "--busy-timeout", "60000", "--state", "s.json"];
    args.extend(STEADY);
    args.extend(CHEAP_ONLY);
    let watch = Watch::start(dir.path(), &args);
    watch.wait_for(|e| e["event"] == "started" && e["databases"] == 1, "started");
    std::thread::sleep(Duration::from_millis(800)); // the first check now waits for the lock (up to 60 s)
    let (code, log) = watch.stop();
    drop(locker);
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("stopped by SIGTERM"), "{log}");
    // The interrupted check is not a result: no unknown status, no run recorded (it runs again after a restart).
    assert!(!log.contains("unknown"), "{log}");
    let saved = state(&dir.path().join("s.json"));
    assert!(saved["databases"]["a.db"]["last_run_ms"].as_object().unwrap().is_empty(), "{saved}");
}

#[test]
fn names_that_are_not_utf8_are_skipped_and_the_alert_state_survives() {
    use std::os::unix::ffi::OsStrExt;
    let dir = scratch();
    let d = dir.path().join("dbs");
    std::fs::create_dir(&d).unwrap();
    demo(&d.join("shop.db"));
    // Two such names: their lossy labels would collide (which stopped the watch with 64).
    for name in [&b"bad\xff.db"[..], &b"bad\xfe.db"[..]] {
        small(&d.join(std::ffi::OsStr::from_bytes(name)));
    }
    let mut args = vec!["watch", "--once", "--dir", "dbs", "--state", "s.json", "--for", "1", "--log-json"];
    args.extend(STEADY);
    args.extend(CHEAP_ONLY);
    let out = vigil_in(dir.path(), &args);
    assert_eq!(code(&out), 1, "{}", both(&out));
    let events = watch_events(&text(&out.stderr));
    let skipped: Vec<&Json> = events.iter().filter(|e| e["event"] == "skipped").collect();
    assert_eq!(skipped.len(), 2, "{}", both(&out));
    assert!(skipped.iter().all(|e| e["reason"].as_str().unwrap().contains("rename it")), "{}", both(&out));
    let saved = state(&dir.path().join("s.json"));
    assert_eq!(saved["databases"].as_object().unwrap().len(), 1, "{saved}");
    assert!(saved["alerts"].as_array().is_some_and(|a| !a.is_empty()), "{saved}");
}

#[test]
fn a_backup_dir_among_the_databases_and_bad_retention_are_refused_at_start() {
    let dir = scratch();
    std::fs::create_dir_all(dir.path().join("d3/inner")).unwrap();
    std::fs::create_dir(dir.path().join("backups")).unwrap();
    small(&dir.path().join("d3/app.db"));
    let refused = |args: &[&str], says: &str| {
        let mut all = vec!["watch", "--once", "--state", "s.json"];
        all.extend(args);
        all.extend(STEADY);
        let out = vigil_in(dir.path(), &all);
        assert_eq!(code(&out), 64, "{args:?}: {}", both(&out));
        assert!(text(&out.stderr).contains(says), "{args:?}: {}", both(&out));
    };
    refused(&["d3/app.db", "--backup-dir", "d3"], "--backup-dir d3 is the directory of the watched database");
    refused(&["--dir", "d3", "--backup-dir", "d3"], "--dir");
    refused(&["d3/app.db", "--backup-dir", "backups", "--keep", "0"], "--keep");
    refused(&["d3/app.db", "--backup-dir", "backups", "--keep-daily", "100001"], "--keep-daily");
    refused(&["d3/app.db", "--keep", "2"], "needs --backup-dir");
    assert!(!dir.path().join("d3/app.db").is_dir() && !dir.path().join("s.json").exists());
    // Outside: accepted.
    let mut args = vec!["watch", "--once", "--state", "s.json", "d3/app.db", "--backup-dir", "backups", "--keep", "1"];
    args.extend(STEADY);
    let out = vigil_in(dir.path(), &args);
    assert_eq!(code(&out), 0, "{}", both(&out));
    assert_eq!(backups_in(&dir.path().join("backups/app.db")).len(), 1);
}

#[test]
fn a_backup_subdirectory_others_can_write_is_refused_and_left_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch();
    std::fs::create_dir(dir.path().join("dbs")).unwrap();
    small(&dir.path().join("dbs/a.db"));
    let open = dir.path().join("backups/a.db");
    std::fs::create_dir_all(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut args = vec!["watch", "--once", "--state", "s.json", "dbs/a.db", "--backup-dir", "backups"];
    args.extend(STEADY);
    let out = vigil_in(dir.path(), &args);
    let log = both(&out);
    assert!(log.contains("job=backup status=failed"), "{log}");
    assert!(log.contains("mode 0777") && log.contains("chmod 700"), "{log}");
    assert_eq!(std::fs::read_dir(&open).unwrap().count(), 0, "{log}");
}

#[test]
fn stale_temp_files_go_and_a_state_of_another_version_says_which() {
    let dir = scratch();
    small(&dir.path().join("a.db"));
    std::fs::write(dir.path().join(".s.json.99999.tmp"), "{").unwrap();
    std::fs::write(dir.path().join("victim"), "keep").unwrap();
    std::os::unix::fs::symlink(dir.path().join("victim"), dir.path().join(".s.json.88888.tmp")).unwrap();
    let mut args = vec!["watch", "--once", "--state", "s.json", "a.db"];
    args.extend(STEADY);
    args.extend(CHEAP_ONLY);
    let out = vigil_in(dir.path(), &args);
    assert_eq!(code(&out), 0, "{}", both(&out));
    assert!(!dir.path().join(".s.json.99999.tmp").exists());
    assert!(std::fs::symlink_metadata(dir.path().join(".s.json.88888.tmp")).is_ok());
    assert_eq!(std::fs::read_to_string(dir.path().join("victim")).unwrap(), "keep");

    let mut saved = state(&dir.path().join("s.json"));
    saved["version"] = 2.into();
    std::fs::write(dir.path().join("s.json"), saved.to_string()).unwrap();
    let out = vigil_in(dir.path(), &args);
    assert_eq!(code(&out), 64, "{}", both(&out));
    let said = text(&out.stderr);
    assert!(said.contains("version 2") && said.contains("version 1"), "{said}");
}

#[test]
fn metrics_and_serve_read_a_watch_backup_root() {
    let dir = scratch();
    std::fs::create_dir(dir.path().join("dbs")).unwrap();
    small(&dir.path().join("dbs/a.db"));
    std::fs::create_dir(dir.path().join("backups")).unwrap();
    let mut args = vec!["watch", "--once", "--state", "s.json", "dbs/a.db", "--backup-dir", "backups"];
    args.extend(CHEAP_ONLY);
    let out = vigil_in(dir.path(), &args);
    assert!(both(&out).contains("job=backup status=ok"), "{}", both(&out));
    let last_backup = |exposition: &str| -> f64 {
        let line = exposition
            .lines()
            .find(|l| l.starts_with("vigil_backup_last_success_timestamp_seconds{"))
            .unwrap_or_else(|| panic!("no backup series: {exposition}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let out = vigil_in(dir.path(), &["metrics", "dbs/a.db", "--backups", "backups"]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    assert!(last_backup(&text(&out.stdout)) > 0.0, "{}", both(&out));
    let serve = vigil_tests::http::Serve::start(dir.path(), &["dbs/a.db", "--backups", "backups", "--every", "1s"]);
    let metrics = serve.get("/metrics").text();
    assert!(last_backup(&metrics) > 0.0, "{metrics}\n{}", serve.log());
}

/// The hour of now in UTC (the watch below runs with TZ=UTC), away from the hour's end.
fn utc_hour() -> u32 {
    let secs = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    if secs() % 3600 > 3600 - 40 {
        std::thread::sleep(Duration::from_secs(45));
    }
    ((secs() / 3600) % 24) as u32
}

#[test]
fn sigterm_waits_for_a_running_maintenance_and_leaves_no_hot_journal() {
    let dir = scratch();
    let db = dir.path().join("a.db");
    small(&db);
    // A reader's SHARED lock makes maintenance wait, journal written, for the EXCLUSIVE lock of its commit.
    let reader = rusqlite::Connection::open(&db).unwrap();
    reader.execute_batch("BEGIN; SELECT count(*) FROM t;").unwrap();
    let hour = utc_hour().to_string();
    let mut args = vec!["watch", "--once", "--state", "s.json", "a.db", "--maintain", "standard", "--quiet-hour"];
    args.extend([hour.as_str(), "--busy-timeout", "60000", "--log-json"]);
    args.extend(STEADY);
    args.extend(CHEAP_ONLY);
    let child = Command::new(cli_binary())
        .args(&args)
        .current_dir(dir.path())
        .env("TZ", "UTC")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let journal = dir.path().join("a.db-journal");
    let appeared = vigil_tests::http::wait_for(Duration::from_secs(30), || journal.exists().then_some(()));
    assert!(appeared.is_some(), "maintenance never started writing");
    let sent = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    // Longer than --once's 10 s grace: without the wait the process would exit under the journal.
    std::thread::sleep(Duration::from_secs(12));
    reader.execute_batch("COMMIT").unwrap();
    drop(reader);
    let out = child.wait_with_output().unwrap();
    let log = text(&out.stderr);
    assert_eq!(code(&out), 0, "{log}");
    assert!(log.contains("finishing maintenance of a.db before stopping"), "{log}");
    assert!(log.contains(r#""job":"maintain""#) && log.contains(r#""status":"ok""#), "{log}");
    assert!(!journal.exists(), "a hot journal was left\n{log}");
    let read_only = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let rows: i64 = read_only.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 1);
}

/// A TZ (POSIX form) whose local time is now 30 s into an hour, and that hour.
fn tz_at_the_start_of_an_hour() -> (String, u32) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let ahead = (30 + 3600 - now % 3600) % 3600; // local = UTC + ahead
    let tz = format!("VIG-0:{:02}:{:02}", ahead / 60, ahead % 60);
    (tz, (((now + ahead) / 3600) % 24) as u32)
}

#[test]
fn a_cron_run_in_the_quiet_hour_maintains_whatever_its_minute() {
    let dir = scratch();
    small(&dir.path().join("a.db"));
    // Local time 30 s into the quiet hour: before this label's offset into the hour (up to 45 min), which only
    // the loop waits for; a cron run at a fixed minute would otherwise never maintain.
    let (tz, hour) = tz_at_the_start_of_an_hour();
    let hour = hour.to_string();
    let mut args = vec!["watch", "--once", "--state", "s.json", "a.db", "--maintain", "light", "--quiet-hour"];
    args.push(&hour);
    args.extend(STEADY);
    args.extend(CHEAP_ONLY);
    let out = Command::new(cli_binary()).args(&args).current_dir(dir.path()).env("TZ", &tz).output().unwrap();
    assert_eq!(code(&out), 0, "{}", both(&out));
    assert!(both(&out).contains("job=maintain status=ok"), "TZ={tz}: {}", both(&out));
    assert!(state(&dir.path().join("s.json"))["databases"]["a.db"]["maintained_on"].is_string());
    // Once that local day.
    let out = Command::new(cli_binary()).args(&args).current_dir(dir.path()).env("TZ", &tz).output().unwrap();
    assert!(!both(&out).contains("job=maintain"), "{}", both(&out));
}

// ---- Each check on its own cadence; roots that vanish; an empty selection; what notifications and logs say ----

/// Every `--once` run of `args` in `dir`, with the webhook, STEADY thresholds and a state file.
fn cron(dir: &Path, url: &str, args: &[&str]) -> Output {
    let mut all = vec!["watch", "--once", "--log-json", "--state", "state.json", "--webhook", url];
    all.extend(args);
    all.extend(STEADY);
    vigil_in(dir, &all)
}

fn events_of(out: &Output) -> Vec<Json> {
    watch_events(&text(&out.stderr))
}

#[test]
fn a_cron_run_observes_each_check_once_so_for_3_means_three_runs() {
    let dir = scratch();
    let (warn, _) = versions(dir.path());
    become_(&warn, &dir.path().join("shop.db"));
    let receiver = Receiver::start();
    let url = receiver.url();
    // The quick and full checks run with each cheap check: one instant, three reports that all see freelist_pct.
    let args = ["shop.db", "--quick-every", "10ms", "--full-every", "10ms", "--snapshot-every", "off"];
    let args: Vec<&str> = args.into_iter().chain(["--threshold", "freelist_pct=10,20"]).collect();
    for run in 1..=3 {
        let out = cron(dir.path(), &url, &args);
        assert_eq!(code(&out), 2, "run {run}: {}", both(&out));
        let log = text(&out.stderr);
        assert!(log.contains(r#""job":"quick""#) && log.contains(r#""job":"full""#), "run {run}: {log}");
        let fired = delivered(&receiver, "freelist_pct");
        if run < 3 {
            assert!(fired.is_empty(), "run {run} of --for 3 fired: {log}");
        } else {
            assert_eq!(fired.len(), 1, "the third run fires: {log}");
            let alert = events_of(&out).into_iter().find(|e| e["event"] == "alert" && e["check"] == "freelist_pct");
            assert_eq!(alert.expect("an alert event")["level"], "error", "a critical alert is an error: {log}");
        }
        if run == 1 {
            let changed = events_of(&out).into_iter().find(|e| e["event"] == "status changed").unwrap();
            assert_eq!((changed["status"].as_str(), changed["level"].as_str()), (Some("critical"), Some("error")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(delivered(&receiver, "maintenance").is_empty());
}

#[test]
fn corruption_found_by_a_quick_check_alerts_at_once_with_an_absolute_path_and_clears_after_clean_checks() {
    let dir = scratch();
    let d = dir.path();
    let db = d.join("data/app.db");
    std::fs::create_dir_all(d.join("data")).unwrap();
    std::fs::create_dir_all(d.join("cron")).unwrap();
    demo_db(&db);
    let clean = std::fs::read(&db).unwrap();
    let page = root_page(&db, "orders") + 40;
    flip_bytes(&db, (page - 1) * 4096, 12);
    let receiver = Receiver::start();
    let url = receiver.url();
    // Default --for 3 and --clear 2; run from another directory with a relative path, as cron lines often are.
    let args = ["../data/app.db", "--quick-every", "10ms", "--full-every", "off", "--snapshot-every", "off"];
    let out = cron(&d.join("cron"), &url, &args);
    assert_eq!(code(&out), 2, "{}", both(&out));
    let fired = delivered(&receiver, "integrity");
    assert_eq!(fired.len(), 1, "the first finding fires: {}", both(&out));
    let alert = &fired[0].2["alerts"][0];
    assert_eq!((fired[0].0.as_str(), alert["labels"]["severity"].as_str()), ("firing", Some("critical")));
    let absolute = d.canonicalize().unwrap().join("data/app.db");
    assert_eq!(alert["annotations"]["path"], absolute.display().to_string(), "{alert}");
    let event = events_of(&out).into_iter().find(|e| e["event"] == "alert" && e["check"] == "integrity").unwrap();
    assert_eq!(event["level"], "error", "{event}");
    let started = events_of(&out).into_iter().find(|e| e["event"] == "started").expect("a started event");
    assert_eq!((started["databases"].as_u64(), started["every"].as_str()), (Some(1), Some("60s")), "{started}");
    assert_eq!(started["state"], "state.json");
    // Repaired: the first clean quick check keeps it firing, the second resolves it.
    std::fs::write(&db, &clean).unwrap();
    for (run, expected) in [(2, 1), (3, 2)] {
        std::thread::sleep(Duration::from_millis(20));
        let out = cron(&d.join("cron"), &url, &args);
        assert!(both(&out).contains(r#""job":"quick""#), "run {run}: {}", both(&out));
        let statuses: Vec<String> = delivered(&receiver, "integrity").into_iter().map(|(s, _, _)| s).collect();
        assert_eq!(statuses.len(), expected, "run {run}: {statuses:?}\n{}", both(&out));
    }
    let statuses: Vec<String> = delivered(&receiver, "integrity").into_iter().map(|(s, _, _)| s).collect();
    assert_eq!(statuses, ["firing", "resolved"]);
    assert!(delivered(&receiver, "maintenance").is_empty(), "maintenance (urgent) repeats integrity: never sent");
}

#[test]
fn a_maintenance_alert_kept_by_an_older_vigil_resolves_once() {
    let dir = scratch();
    let (warn, _) = versions(dir.path());
    become_(&warn, &dir.path().join("shop.db"));
    let receiver = Receiver::start();
    let url = receiver.url();
    let args = ["shop.db", "--for", "1", "--quick-every", "off", "--full-every", "off", "--snapshot-every", "off"];
    let out = cron(dir.path(), &url, &args);
    assert_eq!(code(&out), 1, "{}", both(&out));
    // The state an older vigil left: its maintenance alert firing beside freelist_pct's.
    let path = dir.path().join("state.json");
    let mut saved = state(&path);
    let alerts = saved["alerts"].as_array_mut().unwrap();
    let mut maintenance = alerts.iter().find(|a| a["check"] == "freelist_pct").unwrap().clone();
    maintenance["check"] = "maintenance".into();
    alerts.push(maintenance);
    std::fs::write(&path, saved.to_string()).unwrap();
    for _ in 0..2 {
        let out = cron(dir.path(), &url, &args);
        assert_eq!(code(&out), 1, "{}", both(&out));
    }
    let sent: Vec<String> = delivered(&receiver, "maintenance").into_iter().map(|(s, _, _)| s).collect();
    assert_eq!(sent, ["resolved"], "resolved once, never fired again");
    assert_eq!(delivered(&receiver, "freelist_pct").len(), 1, "freelist_pct fired once and still fires");
    assert!(!state(&path)["alerts"].as_array().unwrap().iter().any(|a| a["check"] == "maintenance"));
}

#[test]
fn a_first_backup_runs_at_first_sight_then_on_its_grid() {
    let dir = scratch();
    small(&dir.path().join("a.db"));
    std::fs::create_dir(dir.path().join("backups")).unwrap();
    let mut args = vec!["a.db", "--every", "200ms", "--state", "state.json", "--backup-dir", "backups"];
    args.extend(["--backup-every", "24h", "--threshold", "disk_used_pct=none,none"]);
    args.extend(CHEAP_ONLY);
    let watch = Watch::start(dir.path(), &args);
    // Without a backup last_backup warns: the first one must not wait for its slot, up to 24 h away.
    watch.wait_for(|e| e["event"] == "job done" && e["job"] == "backup" && e["status"] == "ok", "a first backup");
    std::thread::sleep(Duration::from_millis(1000));
    let (code, log) = watch.stop();
    assert_eq!(code, 0, "{log}");
    let backups = watch_events(&log).iter().filter(|e| e["event"] == "job done" && e["job"] == "backup").count();
    assert_eq!(backups, 1, "then daily, on its grid: {log}");
    assert_eq!(backups_in(&dir.path().join("backups/a.db")).len(), 1);
}

#[test]
fn a_root_that_vanishes_for_a_while_keeps_its_databases_and_says_so() {
    let dir = scratch();
    let d = dir.path();
    for (sub, name) in [("dbs", "a.db"), ("dbs", "b.db"), ("globbed", "c.db")] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
        small(&d.join(sub).join(name));
    }
    let mut args = vec!["--dir", "dbs", "globbed/*.db", "--every", "200ms", "--state", "state.json"];
    args.extend(["--for", "1", "--clear", "1"]);
    args.extend(STEADY);
    args.extend(CHEAP_ONLY);
    let watch = Watch::start(d, &args);
    for db in ["a.db", "b.db", "c.db"] {
        watch.status_of(db, "info");
    }
    // Both roots renamed away (an unmount, a rename): their databases cannot be read, but they did not vanish.
    std::fs::rename(d.join("dbs"), d.join("dbs.away")).unwrap();
    std::fs::rename(d.join("globbed"), d.join("globbed.away")).unwrap();
    for root in ["dbs", "globbed"] {
        let said = watch.wait_for(|e| e["event"] == "root unreadable" && e["root"] == root, root);
        assert_eq!(said["level"], "error", "{said}");
    }
    for db in ["a.db", "b.db", "c.db"] {
        watch.status_of(db, "unknown");
        watch.wait_for(|e| e["event"] == "alert" && e["db"] == db && e["check"] == "vigil_up", db);
    }
    std::thread::sleep(Duration::from_millis(600));
    std::fs::rename(d.join("dbs.away"), d.join("dbs")).unwrap();
    std::fs::rename(d.join("globbed.away"), d.join("globbed")).unwrap();
    for db in ["a.db", "b.db", "c.db"] {
        watch.wait_for(|e| e["event"] == "status changed" && e["db"] == db && e["was"] == "unknown", db);
    }
    watch.wait_for(|e| e["event"] == "root readable" && e["root"] == "dbs", "dbs readable");
    let (code, log) = watch.stop();
    assert_eq!(code, 0, "{log}");
    let events = watch_events(&log);
    assert!(!events.iter().any(|e| e["event"] == "removed"), "{log}");
    assert_eq!(events.iter().filter(|e| e["event"] == "added").count(), 3, "{log}");
    assert!(!log.contains("no longer watched"), "{log}");
    assert_eq!(events.iter().filter(|e| e["event"] == "root unreadable").count(), 2, "said once each: {log}");
    // Only a root read successfully drops what vanished from it.
    assert!(!state(&d.join("state.json"))["alerts"].as_array().unwrap().iter().any(|a| a["check"] == "vigil_up"));
}

#[test]
fn a_root_read_successfully_still_drops_what_vanished_from_it() {
    let dir = scratch();
    let d = dir.path();
    std::fs::create_dir(d.join("dbs")).unwrap();
    small(&d.join("dbs/a.db"));
    small(&d.join("dbs/b.db"));
    let mut args = vec!["--dir", "dbs", "--every", "200ms", "--state", "state.json"];
    args.extend(STEADY);
    args.extend(CHEAP_ONLY);
    let watch = Watch::start(d, &args);
    watch.status_of("b.db", "info");
    std::fs::remove_file(d.join("dbs/b.db")).unwrap();
    watch.wait_for(|e| e["event"] == "removed" && e["db"] == "b.db", "b.db removed");
    let (code, log) = watch.stop();
    assert_eq!(code, 0, "{log}");
    assert!(!log.contains("root unreadable"), "{log}");
}

#[test]
fn watching_nothing_is_a_warning_and_a_cron_run_of_nothing_exits_3() {
    let dir = scratch();
    let d = dir.path();
    std::fs::create_dir_all(d.join("dbs/tenant")).unwrap();
    small(&d.join("dbs/tenant/app.db"));
    let once = |extra: &[&str]| {
        let mut args = vec!["watch", "--once", "--dir", "dbs", "--state", "state.json", "--log-json"];
        args.extend(extra);
        args.extend(STEADY);
        vigil_in(d, &args)
    };
    let out = once(&[]);
    assert_eq!(code(&out), 3, "{}", both(&out));
    let events = events_of(&out);
    let warned = events.iter().find(|e| e["event"] == "nothing to watch").expect("a warning");
    assert_eq!((warned["level"].as_str(), warned["dir"].as_str()), (Some("warning"), Some("dbs")), "{warned}");
    assert_eq!(warned["pattern"], "*.db");
    assert!(warned["reason"].as_str().unwrap().ends_with("(subdirectories need --recursive)"), "{warned}");
    assert_eq!(events.iter().find(|e| e["event"] == "started").unwrap()["databases"], 0);
    // With --recursive the same directory holds one database; a pattern matching nothing says so, without the hint.
    assert_eq!(code(&once(&["--recursive"])), 0);
    let out = once(&["--recursive", "--pattern", "*.sqlite"]);
    assert_eq!(code(&out), 3, "{}", both(&out));
    let warned = events_of(&out).into_iter().find(|e| e["event"] == "nothing to watch").expect("a warning");
    assert!(!warned["reason"].as_str().unwrap().contains("--recursive"), "{warned}");
    assert_eq!(warned["pattern"], "*.sqlite");
}
