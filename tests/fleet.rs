//! The fleet path end to end, with Debian's real Alertmanager on loopback: `vigil watch --alertmanager` pushes a
//! database's alert, Alertmanager routes it to a webhook receiver (the test's, on 127.0.0.1), firing and then
//! resolved. Also: the shipped Alertmanager and Prometheus configurations pass their own tools' checks.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use vigil_tests::alertmanager::Alertmanager;
use vigil_tests::receiver::Receiver;
use vigil_tests::*;

/// A process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Webhook bodies (Alertmanager's v4) received so far with the given status, for alerts of database `db`.
fn notifications(receiver: &Receiver, status: &str, db: &str) -> Vec<Json> {
    receiver
        .received()
        .iter()
        .map(|r| r.json())
        .filter(|body| body["status"] == status)
        .flat_map(|body| body["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|alert| alert["labels"]["db"] == db && alert["status"] == status)
        .collect()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn watch(dir: &Path, db: &Path, alertmanager: &str) -> Running {
    let child = Command::new(cli_binary())
        .arg("watch")
        .arg(db)
        .args(["--every", "300ms", "--for", "2", "--clear", "2", "--threshold", "freelist_pct=20"])
        .args(["--snapshot-every", "off", "--quick-every", "off", "--full-every", "off"])
        .arg("--alertmanager")
        .arg(alertmanager)
        .arg("--state")
        .arg(dir.join("state.json"))
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(dir.join("watch.log")).unwrap()))
        .spawn()
        .unwrap();
    Running(child)
}

#[test]
fn a_warning_fires_and_resolves_through_a_real_alertmanager() {
    let dir = scratch();
    let receiver = Receiver::start();
    let alertmanager = Alertmanager::start(&receiver.url());
    let url = alertmanager.url.clone();
    let db = dir.path().join("shop.db");
    demo_db(&db); // 29 % of its pages free: freelist_pct warns at 20
    let _watch = watch(dir.path(), &db, &url);
    let watch_log = || std::fs::read_to_string(dir.path().join("watch.log")).unwrap_or_default();

    wait_until("the firing notification", Duration::from_secs(30), || {
        !notifications(&receiver, "firing", "shop.db").is_empty()
    });
    let firing = notifications(&receiver, "firing", "shop.db");
    let alert = firing.iter().find(|a| a["labels"]["check"] == "freelist_pct").unwrap_or_else(|| {
        panic!("no freelist_pct alert in {firing:?}\nwatch: {}\nalertmanager: {}", watch_log(), alertmanager.log());
    });
    assert_eq!(alert["labels"]["alertname"], "VigilCheck");
    assert_eq!(alert["labels"]["severity"], "warning");
    assert!(alert["annotations"]["description"].as_str().unwrap().contains("pages are free"), "{alert}");
    assert!(notifications(&receiver, "resolved", "shop.db").is_empty(), "nothing resolved yet");

    // The application's maintenance frees the pages: the check turns ok, the alert resolves.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("VACUUM").unwrap();
    drop(conn);
    wait_until("the resolved notification", Duration::from_secs(30), || {
        notifications(&receiver, "resolved", "shop.db").iter().any(|a| a["labels"]["check"] == "freelist_pct")
    });
    let resolved = notifications(&receiver, "resolved", "shop.db");
    let resolved = resolved.iter().find(|a| a["labels"]["check"] == "freelist_pct").unwrap();
    assert_eq!(resolved["fingerprint"], alert["fingerprint"], "Alertmanager's one alert, firing then resolved");
    assert_ne!(resolved["endsAt"], "0001-01-01T00:00:00Z", "{resolved}");
    let firing_count = notifications(&receiver, "firing", "shop.db")
        .iter()
        .filter(|a| a["labels"]["check"] == "freelist_pct")
        .map(|a| a["startsAt"].to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert_eq!(firing_count, 1, "one alert (one startsAt), whatever Alertmanager re-notified");
}

/// The shipped configuration for the fleet path, checked by the tools that will read it.
#[test]
fn the_shipped_alertmanager_and_prometheus_configurations_are_valid() {
    let contrib = root().join("contrib");
    let out = Command::new("amtool")
        .arg("check-config")
        .arg(contrib.join("alertmanager/alertmanager.yml"))
        .output()
        .expect("amtool (Debian's prometheus-alertmanager)");
    assert!(out.status.success(), "{}", both(&out));
    assert!(text(&out.stdout).contains("SUCCESS"), "{}", both(&out));

    // prometheus.yml names its rule file relatively: check a copy beside the rules and an (empty) target list.
    let dir = scratch();
    for name in ["prometheus.yml", "vigil.rules.yml"] {
        std::fs::copy(contrib.join("prometheus").join(name), dir.path().join(name)).unwrap();
    }
    std::fs::create_dir(dir.path().join("targets")).unwrap();
    std::fs::write(dir.path().join("targets/vigil-hosts.yml"), "- targets: ['db1.example:18450']\n").unwrap();
    let out = Command::new("promtool")
        .args(["check", "config", "prometheus.yml"])
        .current_dir(dir.path())
        .output()
        .expect("promtool (Debian's prometheus)");
    assert!(out.status.success(), "{}", both(&out));
    assert!(!both(&out).contains("WARNING"), "{}", both(&out));
}

/// A unit's `ExecStart=` command line (continuation lines joined), split on blanks as systemd does for these.
fn exec_start(unit: &str) -> Vec<String> {
    let joined = unit.replace("\\\n", " ");
    let line = joined.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart=");
    line.split_whitespace().map(String::from).collect()
}

/// The unit with its paths moved into `dir` and its binary the one under test.
fn localised(unit: &str, dir: &Path) -> String {
    unit.replace("/usr/local/bin/vigil", &cli_binary().display().to_string())
        .replace("/srv/app/data", &dir.join("data").display().to_string())
        .replace("/var/backups/vigil", &dir.join("backups").display().to_string())
        .replace("/var/lib/node_exporter/textfile_collector", &dir.join("textfile").display().to_string())
        .replace("/var/lib/vigil", &dir.join("state").display().to_string())
}

const UNITS: &[&str] = &["vigil-watch.service", "vigil-serve.service", "vigil-metrics.service", "vigil-metrics.timer"];

#[test]
fn the_shipped_systemd_units_verify_and_their_commands_run() {
    let dir = scratch();
    let units = dir.path().join("units");
    for sub in ["units", "data", "backups", "textfile", "state"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    demo_db(&dir.path().join("data/shop.db"));
    demo_db(&dir.path().join("data/blog.db"));
    for name in UNITS {
        let text = std::fs::read_to_string(root().join("contrib/systemd").join(name)).unwrap();
        std::fs::write(units.join(name), localised(&text, dir.path())).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(UNITS.iter().map(|name| units.join(name)))
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("systemd-analyze (scripts/setup installs Debian's systemd)");
    assert!(out.status.success() && out.stderr.is_empty(), "{}", both(&out));

    let receiver = Receiver::start();
    for name in ["vigil-watch.service", "vigil-serve.service", "vigil-metrics.service"] {
        let mut args = exec_start(&std::fs::read_to_string(units.join(name)).unwrap());
        let program = args.remove(0);
        // Long-running units once: watch one cycle, serve one refresh on any free loopback port.
        match args[0].as_str() {
            "watch" if !args.contains(&"--once".to_string()) => args.push("--once".into()),
            "serve" => {
                let listen = args.iter().position(|a| a == "--listen").unwrap();
                args[listen + 1] = "127.0.0.1:0".into();
                args.extend(["--count".into(), "1".into()]);
            }
            _ => {}
        }
        let args: Vec<String> = args
            .into_iter()
            .map(|a| a.replace("${VIGIL_WEBHOOK}", &receiver.url()))
            // systemd does not expand globs: serve's pattern reaches vigil as written, the shell would expand it.
            .collect();
        let out = Command::new(&program)
            .args(&args)
            .env("STATE_DIRECTORY", dir.path().join("state"))
            .current_dir("/")
            .output()
            .unwrap();
        let code = code(&out);
        assert!((0..=3).contains(&code), "{name}: {program} {}: exit {code}\n{}", args.join(" "), both(&out));
        assert!(!both(&out).contains("usage"), "{name}: {}", both(&out));
    }
    assert!(dir.path().join("textfile/vigil.prom").exists(), "the timer's service wrote the textfile");
    let state = std::fs::read_dir(dir.path().join("state")).unwrap().count();
    assert!(state >= 1, "watch kept its state in $STATE_DIRECTORY");
}
