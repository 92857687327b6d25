//! `vigil serve`: an HTTP endpoint for Prometheus and load balancers. A loop refreshes a cache every
//! `--every` (each database collected in turn, read-only, the exposition rendered once); requests are answered
//! from that cache only, so no number of scrapes or health probes ever reaches a database.

mod assets;
mod cache;
mod health;
mod http;
mod pages;
mod routes;
mod series;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use clap::Args;

use self::cache::{Cache, Snapshot};
use self::http::{Request, Response};
use self::routes::Route;
use crate::metrics::{self, Options, Target};
use crate::{exit, interrupt, output, Failure, Global};

/// Not in 9100–9999, the range Prometheus' exporter port list has handed out in full, nor an IANA-assigned
/// service port we know of, and below Linux's ephemeral ports (32768+).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:18450";

#[derive(Args)]
pub struct ServeArgs {
    /// Databases: files, or globs (quote them so the shell leaves them to vigil)
    #[arg(required = true, value_name = "DB|GLOB")]
    pub patterns: Vec<String>,
    /// Where to listen: IP:PORT (port 0: any free port). Loopback by default; another address is served to
    /// whoever can reach it, without authentication
    #[arg(long, value_name = "IP:PORT", default_value = DEFAULT_LISTEN, value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// How often to refresh every database: 500ms, 10s, 1m, 1h (at least 10ms)
    #[arg(long, value_name = "PERIOD", default_value = "60s", value_parser = crate::pit::parse_period)]
    pub every: Duration,
    #[command(flatten)]
    pub collect: metrics::CollectArgs,
    /// Stop after N refreshes (a smoke test of the databases and the address): exit 0, or 3 when the last
    /// refresh could not read a database (default: until SIGINT or SIGTERM)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        format!("expected IP:PORT such as {DEFAULT_LISTEN}, [::1]:18450 or 0.0.0.0:18450 (names are not resolved)")
    })
}

pub fn run(global: &Global, args: &ServeArgs) -> Result<u8, Failure> {
    let targets = metrics::targets(&args.patterns)?;
    let options = args.collect.options(&crate::extension::open_memory(global)?)?;
    let listener = TcpListener::bind(args.listen).map_err(|e| {
        Failure::usage(format!(
            "serve: cannot listen on {}: {}; choose another --listen IP:PORT",
            args.listen,
            output::io_text(&e)
        ))
    })?;
    let bound = listener.local_addr().map_err(|e| Failure::unknown(format!("serve: {}", output::io_text(&e))))?;
    let cache = Arc::new(Cache::default());
    let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
    let every = args.every;
    let answers = cache.clone();
    http::spawn(listener, http::LIMITS, Arc::new(move |request: &Request| answer(request, &answers, &names, every)))
        .map_err(|e| Failure::unknown(format!("serve: cannot start the HTTP thread: {}", output::io_text(&e))))?;
    announce(bound, &targets, every);
    refresh_until_stopped(global, targets, options, args, cache)
}

/// The first line on stderr: where to scrape (tests read the address from it).
fn announce(bound: SocketAddr, targets: &[Target], every: Duration) {
    log(&format!(
        "listening on http://{bound} (GET /metrics, /health, /health/<db>, the dashboard at /) for {} database{}, \
         refreshed every {}",
        targets.len(),
        if targets.len() == 1 { "" } else { "s" },
        period_text(every)
    ));
    if !bound.ip().is_loopback() {
        log(&format!(
            "{} is not a loopback address: anyone who can reach it can read the health and metrics \
             of every database served (no authentication, no TLS: put a reverse proxy in front)",
            bound.ip()
        ));
    }
}

pub fn period_text(period: Duration) -> String {
    match period.as_millis() {
        ms if ms % 1000 != 0 => format!("{ms}ms"),
        ms => format!("{}s", ms / 1000),
    }
}

/// Refreshes on a fixed schedule on a thread of its own; this thread waits for a signal (exit 0 at once, even
/// when a refresh is waiting for a lock: the databases are only read, so nothing is left half done) or for
/// the `--count` refreshes.
fn refresh_until_stopped(
    global: &Global,
    targets: Vec<Target>,
    options: Options,
    args: &ServeArgs,
    cache: Arc<Cache>,
) -> Result<u8, Failure> {
    let (done, finished) = std::sync::mpsc::channel();
    let (global, every, count) = (global.clone(), args.every, args.count);
    std::thread::Builder::new()
        .name("vigil-refresh".into())
        .spawn(move || {
            let all_up = refresh_loop(&global, &targets, &options, every, count, &cache);
            let _ = done.send(all_up);
        })
        .map_err(|e| Failure::unknown(format!("serve: cannot start the refresh thread: {}", output::io_text(&e))))?;
    loop {
        if interrupt::received().is_some() {
            return Ok(stopped());
        }
        if let Ok(all_up) = finished.recv_timeout(Duration::from_millis(20)) {
            return Ok(interrupt::received().map_or_else(|| counted_exit(all_up), |_| stopped()));
        }
    }
}

/// After `--count` refreshes, as `vigil metrics` exits: 3 when the last refresh could not read a database.
fn counted_exit(all_up: bool) -> u8 {
    if all_up {
        exit::OK
    } else {
        exit::UNKNOWN
    }
}

/// Refreshes until a signal came or `count` refreshes are done; whether the last refresh read every database.
fn refresh_loop(
    global: &Global,
    targets: &[Target],
    options: &Options,
    every: Duration,
    count: Option<u64>,
    cache: &Cache,
) -> bool {
    // A connection holding the extension keeps its library mapped for the life of the loop: each database's
    // connection then loads it without SQLite's dlclose and a new dlopen per database and refresh.
    let _library = crate::extension::open_memory(global).ok();
    let started = Instant::now();
    let mut done = 0;
    let mut previous: Option<Arc<Snapshot>> = None;
    loop {
        let Some(snapshot) = refresh(global, targets, options, cache) else { return false };
        for line in changes(previous.as_deref(), &snapshot) {
            log(&line);
        }
        let all_up = snapshot.reports.iter().all(|r| r.up);
        cache.publish(snapshot);
        previous = cache.latest();
        done += 1;
        if count == Some(done) || !interrupt::sleep_until(started + crate::pit::next_slot(started.elapsed(), every)) {
            return all_up;
        }
    }
}

fn stopped() -> u8 {
    log(&format!("stopped by {}", interrupt::received().unwrap_or("a signal")));
    exit::OK
}

/// One line of serve's log on stderr. Names, paths and details come from file names and database contents:
/// escaped, a newline in a file name cannot forge a second line (journald splits on it) nor a terminal escape
/// reach the operator's terminal.
fn log(line: &str) {
    eprintln!("vigil serve: {}", crate::output::escape_controls(line));
}

/// Collects every database once, one after the other, and renders the exposition; None when a signal came.
/// The dashboard's series get each database's point, and its snapshots when due.
fn refresh(global: &Global, targets: &[Target], options: &Options, cache: &Cache) -> Option<Snapshot> {
    let started = Instant::now();
    let mut reports = Vec::with_capacity(targets.len());
    for target in targets {
        if interrupt::received().is_some() {
            return None;
        }
        reports.push(metrics::collect(global, target, options));
    }
    if interrupt::received().is_some() {
        return None;
    }
    // The snapshots' reads are part of the refresh: `took` (the duration metric, and /health's staleness
    // allowance) must count them, or 300 databases' histories made /health flap "stale" while took said 5 s.
    remember(global, &reports, cache, SystemTime::now());
    let took = started.elapsed();
    let generated_at = SystemTime::now();
    let mut text = metrics::render(&reports);
    text.push_str(&own_metrics(took, generated_at));
    for report in &mut reports {
        report.samples = Vec::new(); // rendered: only /health's fields are kept
    }
    let busy_timeout = Duration::from_millis(global.busy_timeout.into());
    Some(Snapshot { reports, metrics: Arc::from(text.into_bytes()), generated_at, took, busy_timeout })
}

/// Adds each database's point to its ring (from the samples, which are dropped next) and reads the snapshots of
/// those due, read-only and bounded: a database whose history cannot be read keeps its last series.
fn remember(global: &Global, reports: &[metrics::DbReport], cache: &Cache, now: SystemTime) {
    // Read without the lock: requests keep being answered meanwhile.
    let histories: Vec<Option<Result<series::History, String>>> = reports
        .iter()
        .enumerate()
        .map(|(i, report)| {
            (report.up && cache.history_due(i, now)).then(|| series::read_history(global, &report.target))
        })
        .collect();
    cache.update_series(reports.len(), |all| {
        for ((series, report), history) in all.iter_mut().zip(reports).zip(histories) {
            series.remember(report);
            if let Some(read) = history {
                // Once per new error, not once a minute.
                match &read {
                    Err(error) if series.history_error.as_ref() != Some(error) => {
                        log(&format!("{}: history: {error}", report.target.name))
                    }
                    _ => {}
                }
                series.set_history(read, now);
            }
        }
    });
}

/// serve's own families, after the databases' (which never use the `vigil_serve_` prefix).
fn own_metrics(took: Duration, at: SystemTime) -> String {
    let at = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    format!(
        "# HELP vigil_serve_refresh_duration_seconds How long vigil serve's last refresh of every database took.\n\
         # TYPE vigil_serve_refresh_duration_seconds gauge\n\
         vigil_serve_refresh_duration_seconds {:.6}\n\
         # HELP vigil_serve_refresh_timestamp_seconds When vigil serve's last refresh finished (Unix time).\n\
         # TYPE vigil_serve_refresh_timestamp_seconds gauge\n\
         vigil_serve_refresh_timestamp_seconds {at:.3}\n",
        took.as_secs_f64()
    )
}

/// One line per database whose status changed since the previous refresh (every database on the first).
fn changes(previous: Option<&Snapshot>, now: &Snapshot) -> Vec<String> {
    let before = |name: &str| {
        previous
            .and_then(|p| p.reports.iter().find(|r| r.target.name == name))
            .map(|r| health::status_of(r).to_string())
    };
    now.reports
        .iter()
        .filter_map(|report| {
            let status = health::status_of(report);
            let was = before(&report.target.name);
            if was.as_deref() == Some(status) {
                return None;
            }
            let why = match (&report.error, report.failing.first()) {
                (Some(error), _) => format!(": {error}"),
                (None, Some(check)) => format!(" ({}: {})", check.check, detail_or_value(check)),
                (None, None) => String::new(),
            };
            let from = was.map(|w| format!("{w} -> ")).unwrap_or_default();
            Some(format!("{}: {from}{status}{why}", report.target.name))
        })
        .collect()
}

/// A failing check's detail, or its value when the detail is empty (a log line "disk_used_pct: " told nothing).
fn detail_or_value(check: &metrics::FailingCheck) -> String {
    match (&check.detail, &check.value) {
        (detail, _) if !detail.is_empty() => detail.clone(),
        (_, serde_json::Value::String(text)) => text.clone(),
        (_, value) => format!("value {value}"),
    }
}

/// Every request's answer, from the cache alone (http.rs adds the headers that keep a browser to this origin's
/// files, to every answer).
fn answer(request: &Request, cache: &Cache, names: &[String], every: Duration) -> Response {
    match routes::route(&request.method, &request.target, names) {
        Route::Metrics => match cache.latest() {
            Some(snapshot) => Response {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                headers: vec![],
                body: snapshot.metrics.clone(),
            },
            None => Response::text(503, "vigil serve has not finished its first refresh yet\n"),
        },
        Route::Health => health_response(cache, None, every),
        Route::HealthOf(index) => health_response(cache, Some(index), every),
        Route::Fleet => with_snapshot(cache, |snapshot| {
            let data = databases_json(snapshot).to_string();
            html(pages::fleet(snapshot, &data))
        }),
        Route::Page(index) => with_snapshot(cache, |snapshot| match snapshot.reports.get(index) {
            Some(report) => {
                let history = history_text(cache, snapshot, &names[index], index);
                html(pages::database(snapshot, report, &history, poll_interval(every).as_millis()))
            }
            None => not_found(),
        }),
        Route::ApiDatabases => with_snapshot(cache, |snapshot| json_response(databases_json(snapshot))),
        Route::ApiHistory(index) => with_snapshot(cache, |snapshot| {
            let text = history_text(cache, snapshot, &names[index], index);
            Response {
                status: 200,
                content_type: "application/json",
                headers: vec![],
                body: Arc::from(text.into_bytes()),
            }
        }),
        Route::Asset(index) => {
            let asset = &assets::ASSETS[index];
            Response { status: 200, content_type: asset.content_type, headers: vec![], body: Arc::from(asset.body) }
        }
        Route::NotFound => not_found(),
        Route::MethodNotAllowed => {
            let mut response = Response::text(405, "method not allowed: use GET or HEAD\n");
            response.headers.push(("Allow", routes::ALLOWED.into()));
            response
        }
    }
}

/// `GET /api/v1/history/<db>`'s JSON text, also embedded in the database's page.
fn history_text(cache: &Cache, snapshot: &Snapshot, name: &str, index: usize) -> String {
    let series = cache.series_of(index).unwrap_or_default();
    series.to_json_text(name, &output::rfc3339(snapshot.generated_at))
}

/// How often a page asks for new data: every refresh, but not more than once a second.
fn poll_interval(every: Duration) -> Duration {
    every.max(Duration::from_secs(1))
}

fn not_found() -> Response {
    Response::text(
        404,
        "not found: vigil serve answers /, /db/<db>, /metrics, /health, /health/<db>, /api/v1/databases, \
         /api/v1/history/<db> and /assets/<name>\n",
    )
}

/// An answer from the latest snapshot; 503 before the first refresh finished.
fn with_snapshot(cache: &Cache, answer: impl FnOnce(&Snapshot) -> Response) -> Response {
    match cache.latest() {
        Some(snapshot) => answer(&snapshot),
        None => Response::text(503, "vigil serve has not finished its first refresh yet\n"),
    }
}

fn html(page: String) -> Response {
    Response {
        status: 200,
        content_type: "text/html; charset=utf-8",
        headers: vec![],
        body: Arc::from(page.into_bytes()),
    }
}

fn json_response(body: serde_json::Value) -> Response {
    let mut text = serde_json::to_string_pretty(&body).unwrap_or_default();
    text.push('\n');
    Response { status: 200, content_type: "application/json", headers: vec![], body: Arc::from(text.into_bytes()) }
}

/// `GET /api/v1/databases`: every database with its status and every check, and where its series are.
fn databases_json(snapshot: &Snapshot) -> serde_json::Value {
    let databases: Vec<serde_json::Value> = snapshot
        .reports
        .iter()
        .map(|report| {
            let checks: Vec<serde_json::Value> = report
                .checks
                .iter()
                .map(|c| {
                    serde_json::json!({"check": c.check, "status": c.status, "value": c.value, "detail": c.detail,
                        "warning": c.warning, "critical": c.critical})
                })
                .collect();
            let segment = pages::percent_encoded(&report.target.name);
            serde_json::json!({
                "db": report.target.name,
                "status": health::status_of(report),
                "up": report.up,
                "error": report.error,
                "collected_at": output::rfc3339(report.collected_at),
                "checks": checks,
                "page": format!("/db/{segment}"),
                "history": format!("/api/v1/history/{segment}"),
            })
        })
        .collect();
    serde_json::json!({"generated_at": output::rfc3339(snapshot.generated_at), "databases": databases})
}

fn health_response(cache: &Cache, only: Option<usize>, every: Duration) -> Response {
    let (status, body) = match cache.latest() {
        Some(snapshot) => health::answer(&snapshot, only, every, SystemTime::now()),
        None => (503, health::starting(every)),
    };
    let mut text = serde_json::to_string_pretty(&body).unwrap_or_default();
    text.push('\n');
    Response { status, content_type: "application/json", headers: vec![], body: Arc::from(text.into_bytes()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::DbReport;

    fn snapshot(statuses: &[(&str, Option<&str>)]) -> Snapshot {
        let reports = statuses
            .iter()
            .map(|(name, status)| DbReport {
                target: Target { name: name.to_string(), path: std::path::PathBuf::from(name) },
                up: status.is_some(),
                error: status.is_none().then(|| "gone.db: no such file".to_string()),
                status: status.map(String::from),
                failing: vec![],
                checks: vec![],
                samples: vec![],
                collected_at: SystemTime::now(),
            })
            .collect();
        Snapshot {
            reports,
            metrics: Arc::from(&b"m 1\n"[..]),
            generated_at: SystemTime::now(),
            took: Duration::ZERO,
            busy_timeout: Duration::ZERO,
        }
    }

    #[test]
    fn status_changes_are_logged_once() {
        let first = snapshot(&[("a", Some("ok")), ("b", None)]);
        assert_eq!(changes(None, &first), ["a: ok", "b: unknown: gone.db: no such file"]);
        assert!(changes(Some(&first), &snapshot(&[("a", Some("ok")), ("b", None)])).is_empty());
        assert_eq!(changes(Some(&first), &snapshot(&[("a", Some("critical")), ("b", None)])), ["a: ok -> critical"]);
    }

    #[test]
    fn a_failing_check_without_detail_is_logged_with_its_value() {
        let mut later = snapshot(&[("base.db", Some("warning"))]);
        let check = |detail: &str| metrics::FailingCheck {
            check: "disk_used_pct".into(),
            status: "warning".into(),
            value: serde_json::json!(97.5),
            detail: detail.into(),
        };
        later.reports[0].failing.push(check(""));
        assert_eq!(changes(None, &later), ["base.db: warning (disk_used_pct: value 97.5)"]);
        later.reports[0].failing[0] = check("97.5 % of the disk is used");
        assert_eq!(changes(None, &later), ["base.db: warning (disk_used_pct: 97.5 % of the disk is used)"]);
    }

    #[test]
    fn answers_come_from_the_cache() {
        let cache = Cache::default();
        let names = vec!["a".to_string()];
        let ask = |method: &str, target: &str| {
            answer(&Request { method: method.into(), target: target.into() }, &cache, &names, Duration::from_secs(60))
        };
        assert_eq!(ask("GET", "/metrics").status, 503, "nothing collected yet");
        assert_eq!(ask("GET", "/health").status, 503);
        cache.publish(snapshot(&[("a", Some("warning"))]));
        let metrics = ask("GET", "/metrics");
        assert_eq!((metrics.status, &*metrics.body), (200, &b"m 1\n"[..]));
        assert!(metrics.content_type.starts_with("text/plain; version=0.0.4"));
        assert_eq!(ask("GET", "/health").status, 200);
        assert_eq!(ask("GET", "/health/a").status, 200);
        assert_eq!(ask("GET", "/health/b").status, 404);
        let post = ask("POST", "/health");
        assert_eq!((post.status, &post.headers[0]), (405, &("Allow", "GET, HEAD".to_string())));
        assert_eq!(ask("GET", "/").status, 200);
        assert_eq!(ask("GET", "/db/a").status, 200);
        assert_eq!(ask("GET", "/db/b").status, 404);
        assert_eq!(ask("GET", "/assets/../Cargo.toml").status, 404);
        let history: serde_json::Value = serde_json::from_slice(&ask("GET", "/api/v1/history/a").body).unwrap();
        assert_eq!((history["db"].as_str(), history["recent"].as_array().map(Vec::len)), (Some("a"), Some(0)));
    }

    #[test]
    fn listen_addresses_are_ip_and_port() {
        assert_eq!(parse_listen("127.0.0.1:0").unwrap().port(), 0);
        assert!(parse_listen("[::1]:9").is_ok());
        assert!(parse_listen("localhost:9").unwrap_err().contains("IP:PORT"));
        assert!(parse_listen("127.0.0.1").is_err());
    }

    #[test]
    fn log_lines_escape_control_characters_and_backslashes() {
        assert_eq!(crate::output::escape_controls("a.db: ok"), "a.db: ok");
        assert_eq!(crate::output::escape_controls("x\nvigil serve: forged.db: ok"), "x\\nvigil serve: forged.db: ok");
        assert_eq!(
            crate::output::escape_controls("\r\t\u{1b}[31m\u{7f}\u{85}\u{2028}"),
            "\\r\\t\\x1b[31m\\x7f\\u{85}\\u{2028}"
        );
        assert_eq!(
            crate::output::escape_controls("back\\slash \\n"),
            "back\\\\slash \\\\n",
            "a name's own backslash is doubled"
        );
        assert_eq!(crate::output::escape_controls("ünï€ode"), "ünï€ode");
    }

    #[test]
    fn periods_are_printed_as_given() {
        assert_eq!(period_text(Duration::from_secs(60)), "60s");
        assert_eq!(period_text(Duration::from_millis(500)), "500ms");
    }
}
