//! vigil serve's dashboard for real: the real binary over databases with real health snapshots (spread over
//! days by rewriting their taken_at), a real verified backup and saved query statistics, drawn by a real
//! headless Chromium with every other origin unresolvable, and screenshot by a real headless Firefox ESR at its
//! load event (so from the data embedded in the page). Each browser's test skips loudly only when it is missing
//! and $VIGIL_REQUIRE_CHROMIUM / $VIGIL_REQUIRE_FIREFOX is unset (scripts/test sets both).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::Value as Json;
use vigil_tests::http::{request, wait_for, Serve};
use vigil_tests::*;

const ODD: &str = "odd \"<>&ü.db";
/// A name with a carriage return (a file name may hold one).
const CR: &str = "carriage\rreturn.db";
/// The stroke colour of every chart's series (dashboard.js).
const STROKE: (u8, u8, u8) = (0x1f, 0x4f, 0xd8);
const CHARTS: usize = 7;
/// The `.error` element's background and the chart frames' colour (dashboard.css).
const ERROR: (u8, u8, u8) = (0xff, 0x00, 0xc8);
const FRAME: (u8, u8, u8) = (0xc3, 0xcb, 0xd5);

fn encoded(name: &str) -> String {
    name.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// A database with history: four snapshots a day apart (with fragmentation measured), growing in between, a
/// verified backup made before them all, and saved query statistics with slow calls.
fn database_with_history(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let conn = rusqlite::Connection::open(&path).unwrap();
    load(&conn);
    conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t(x)").unwrap();
    let backups = dir.join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let _: String = conn.query_row("SELECT backup_to(?1)", [backups.to_str().unwrap()], |r| r.get(0)).unwrap();
    for n in 0..4 {
        conn.execute(
            "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?1) \
             INSERT INTO t SELECT randomblob(2000) FROM k",
            [50 * (n + 1)],
        )
        .unwrap();
        // Checkpointed (not truncated): the file grows and the WAL keeps its size.
        conn.execute_batch("DELETE FROM t WHERE rowid % 3 = 0; PRAGMA wal_checkpoint(PASSIVE);").unwrap();
        let _: String = conn
            .query_row(r#"SELECT health_snapshot('{"integrity":"full","fragmentation":true}')"#, [], |r| r.get(0))
            .unwrap();
    }
    // Spread the snapshots over the last four days, the backup before them all.
    conn.execute_batch(
        "UPDATE vigil_health_history SET taken_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', (id - 5) || ' days');
         UPDATE vigil_backup_log SET created_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-5 days');",
    )
    .unwrap();
    let _: String = conn.query_row(r#"SELECT query_stats_start('{"slow_ms": 0}')"#, [], |r| r.get(0)).unwrap();
    for _ in 0..5 {
        let _: i64 = conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
    }
    let _: String = conn.query_row("SELECT query_stats_save()", [], |r| r.get(0)).unwrap();
    let _: String = conn.query_row("SELECT query_stats_stop()", [], |r| r.get(0)).unwrap();
    path
}

/// Serves shop.db and ODD (with history) and `others`.
fn start_fleet(dir: &Path, others: &[&str]) -> Serve {
    database_with_history(dir, "shop.db");
    database_with_history(dir, ODD);
    let serve = Serve::start(dir, &[&["shop.db", ODD], others, &["--every", "200ms"]].concat());
    // Ready when both have their snapshots and a few recent refreshes.
    let ready = wait_for(Duration::from_secs(30), || {
        let ok = ["shop.db", ODD].iter().all(|db| {
            let reply = serve.get(&format!("/api/v1/history/{}", encoded(db)));
            let body: Json = serde_json::from_slice(&reply.body).unwrap_or_default();
            reply.status == 200
                && body["snapshots"].as_array().is_some_and(|s| s.len() == 4)
                && body["recent"].as_array().is_some_and(|r| r.len() >= 3)
        });
        ok.then_some(())
    });
    assert!(ready.is_some(), "no history served: {}", serve.log());
    serve
}

#[test]
fn the_api_serves_every_series_names_are_escaped_and_only_known_paths_answer() {
    let dir = scratch();
    // A snapshot whose taken_at is not a time is passed over: the other three still make the series (before,
    // one such row took every chart of the database away).
    let broken = database_with_history(dir.path(), "broken.db");
    rusqlite::Connection::open(broken)
        .unwrap()
        .execute_batch("UPDATE vigil_health_history SET taken_at = '0000-x' WHERE id = 1")
        .unwrap();
    let serve = start_fleet(dir.path(), &["broken.db"]);

    let all = serve.json("/api/v1/databases");
    let dbs = all["databases"].as_array().unwrap();
    assert_eq!(dbs.len(), 3);
    assert_eq!(dbs[1]["db"], ODD, "UTF-8 and quotes kept in JSON");
    assert_eq!(dbs[1]["page"], format!("/db/{}", "odd%20%22%3C%3E%26%C3%BC.db"));
    for db in dbs {
        assert_eq!(db["up"], true, "{db}");
        assert!(db["checks"].as_array().unwrap().iter().any(|c| c["check"] == "file_size" && c["status"] == "ok"));
    }

    let history = serve.json(&format!("/api/v1/history/{}", encoded(ODD)));
    assert_eq!(history["db"], ODD);
    let snapshots = history["snapshots"].as_array().unwrap();
    let days: Vec<f64> = snapshots.iter().map(|s| s["at"].as_f64().unwrap()).collect();
    assert!(days.windows(2).all(|w| (w[1] - w[0] - 86_400.0).abs() < 5.0), "a day apart, oldest first: {days:?}");
    assert!(snapshots[0]["growth_per_day"].is_null(), "no snapshot before the first");
    for s in &snapshots[1..] {
        assert!(s["growth_per_day"].as_f64().unwrap() > 0.0, "it grew every day: {s}");
    }
    for (n, s) in snapshots.iter().enumerate() {
        let age = s["backup_age_seconds"].as_f64().unwrap();
        let expected = (n as f64 + 1.0) * 86_400.0;
        assert!((age - expected).abs() < 5.0, "backup age at snapshot {n}: {age}");
        assert!(s["fragmentation_pct"].is_number() && s["freelist_ratio"].is_number(), "{s}");
    }
    let broken = serve.json("/api/v1/history/broken.db");
    assert!(broken["history_error"].is_null(), "{broken}");
    assert_eq!(broken["snapshots"].as_array().unwrap().len(), 3, "{broken}");
    assert_eq!(broken["snapshots_dropped"], 0);

    let recent = history["recent"].as_array().unwrap();
    let last = recent.last().unwrap();
    assert!(last["file_size"].as_f64().unwrap() > 0.0);
    assert!(last["slow_queries_total"].as_f64().unwrap() >= 5.0, "slow_ms 0: every saved call is slow: {last}");
    assert!(last["backup_age_seconds"].as_f64().unwrap() >= 5.0 * 86_400.0);

    let fleet = serve.get("/");
    assert_eq!(fleet.status, 200);
    assert_eq!(fleet.header("Content-Type").as_deref(), Some("text/html; charset=utf-8"));
    assert_eq!(fleet.header("Content-Security-Policy").as_deref(), Some("default-src 'self'"));
    assert_eq!(fleet.header("X-Content-Type-Options").as_deref(), Some("nosniff"));
    let html = String::from_utf8(fleet.body.clone()).unwrap();
    assert!(html.contains("odd &quot;&lt;&gt;&amp;ü.db"), "escaped: {html}");
    assert!(!html.contains("\"<>&"), "never raw");
    assert!(html.contains("href=\"/db/odd%20%22%3C%3E%26%C3%BC.db\""));
    let page = serve.get(&format!("/db/{}", encoded(ODD)));
    assert_eq!(page.status, 200);
    let page = String::from_utf8(page.body).unwrap();
    assert!(page.contains("data-label=\"odd%20%22%3C%3E%26%C3%BC.db\"") && !page.contains("\"<>&"));
    // The page embeds its history (what /api/v1/history answers), the hostile name unable to end the block.
    let block = embedded(&page, "history-data");
    assert!(block.contains(r#"odd \"\u003c\u003e\u0026ü.db"#) && !block.contains('<'), "{block}");
    let embedded_history: Json = serde_json::from_str(&block).unwrap();
    assert_eq!(embedded_history["db"], ODD);
    assert_eq!(embedded_history["snapshots"], history["snapshots"], "the same snapshots as the API");
    assert!(!embedded_history["recent"].as_array().unwrap().is_empty());
    let fleet_data: Json = serde_json::from_str(&embedded(&html, "fleet-data")).unwrap();
    assert_eq!(fleet_data["databases"][1]["db"], ODD);
    assert_eq!(fleet_data["databases"].as_array().unwrap().len(), 3);

    for path in [
        "/assets/../Cargo.toml",
        "/assets/..%2FCargo.toml",
        "/assets/nope.js",
        "/db/unknown",
        "/db/",
        "/api/v1/history/unknown",
    ] {
        assert_eq!(serve.get(path).status, 404, "{path}");
    }
    let asset = serve.get("/assets/uPlot.iife.min.js");
    assert_eq!(asset.status, 200);
    assert_eq!(asset.body, std::fs::read(root().join("cli/assets/uplot/uPlot.iife.min.js")).unwrap());
    let head = request(serve.addr, "HEAD", "/");
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert!(head.header("Content-Length").unwrap().parse::<usize>().unwrap() > 100);
    for path in ["/", "/db/shop.db", "/api/v1/databases", "/assets/dashboard.js"] {
        let post = request(serve.addr, "POST", path);
        assert_eq!(post.status, 405, "{path}");
    }
}

/// The text of a page's JSON data block with this id.
fn embedded(page: &str, id: &str) -> String {
    let open = format!("<script type=\"application/json\" id=\"{id}\">");
    let start = page.find(&open).unwrap_or_else(|| panic!("no {id} block: {page}")) + open.len();
    let end = page[start..].find("</script>").unwrap() + start;
    page[start..end].to_string()
}

fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|d| d.join("chromium")).find(|p| p.is_file()));
    if found.is_none() {
        assert!(
            std::env::var_os("VIGIL_REQUIRE_CHROMIUM").is_none(),
            "VIGIL_REQUIRE_CHROMIUM is set but chromium is not installed: run scripts/setup"
        );
        eprintln!(
            "\n\n*** SKIPPED: chromium is not installed (Debian package chromium; scripts/setup installs it) ***\n\n"
        );
    }
    found
}

/// Runs headless Chromium on `url` with every other origin unresolvable; (stdout, stderr).
fn run_chromium(chromium: &Path, profile: &Path, url: &str, extra: &[&str]) -> (String, String) {
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1280,900",
            "--force-device-scale-factor=1",
            "--hide-scrollbars",
            "--virtual-time-budget=10000",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--enable-logging=stderr",
            "--v=0",
            "--no-first-run",
            "--disable-extensions",
            "--disable-sync",
            "--disable-background-networking",
            "--disable-component-update",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "chromium failed on {url}: {stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

/// Console messages and failed requests in Chromium's log.
fn page_problems(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("net::ERR") || l.contains("Failed to load resource"))
        .map(String::from)
        .collect()
}

/// Decodes a PNG with Python's zlib (8-bit RGB or RGBA, every PNG row filter) into `rows`, `width`, `height`
/// and `bpp`, then runs `task`, which prints its answer as JSON; `args` are its sys.argv[2:].
fn png_query(png: &Path, task: &str, args: &[Json]) -> Json {
    const DECODE: &str = r#"
import json, struct, sys, zlib
data = open(sys.argv[1], 'rb').read()
pos, idat = 8, b''
while pos < len(data):
    length, kind = struct.unpack('>I4s', data[pos:pos + 8])
    chunk = data[pos + 8:pos + 8 + length]
    if kind == b'IHDR':
        width, height, depth, color = struct.unpack('>IIBB', chunk[:10])
    elif kind == b'IDAT':
        idat += chunk
    pos += 12 + length
assert depth == 8 and color in (2, 6), (depth, color)
bpp = 3 if color == 2 else 4
raw, stride = zlib.decompress(idat), width * bpp
rows, prev, i = [], bytearray(stride), 0
for _ in range(height):
    f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0
        b = prev[x]
        c = prev[x - bpp] if x >= bpp else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(line); prev = line
def near(row, x, colour, tolerance):
    r, g, b = row[x * bpp:x * bpp + 3]
    return abs(r - colour[0]) < tolerance and abs(g - colour[1]) < tolerance and abs(b - colour[2]) < tolerance
def count(box, colour, tolerance):
    x0, y0, w, h = box
    return sum(1 for y in range(y0, min(y0 + h, height)) for x in range(x0, min(x0 + w, width)) if near(rows[y], x, colour, tolerance))
args = [json.loads(a) for a in sys.argv[2:]]
"#;
    let out = Command::new("/usr/bin/python3")
        .args(["-c", &format!("{DECODE}{task}")])
        .arg(png)
        .args(args.iter().map(|a| a.to_string()))
        .output()
        .unwrap();
    assert!(out.status.success(), "PNG decode: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn rgb(colour: (u8, u8, u8)) -> Json {
    serde_json::json!([colour.0, colour.1, colour.2])
}

/// Counts, inside each box (x, y, w, h), the pixels of the series' stroke colour.
fn stroke_pixels(png: &Path, boxes: &[(u32, u32, u32, u32)]) -> Vec<u64> {
    let task = "print(json.dumps([count(box, args[1], 40) for box in args[0]]))";
    serde_json::from_value(png_query(png, task, &[serde_json::json!(boxes), rgb(STROKE)])).unwrap()
}

/// Finds the inside (x, y, w, h) of every chart's frame (dashboard.css gives `.chart` a border of a colour
/// nothing else has): rows holding a long run of that colour are a frame's top or bottom, paired by column.
const FRAMES: &str = r#"
edges = []
for y in range(height):
    x = 0
    while x < width:
        if near(rows[y], x, args[0], 10):
            start = x
            while x < width and near(rows[y], x, args[0], 10): x += 1
            if x - start >= 150 and not any(abs(e[0] - y) <= 2 and abs(e[1] - start) <= 2 for e in edges):
                edges.append((y, start, x))
        else:
            x += 1
frames = []
for left in sorted(set(e[1] for e in edges)):
    column = sorted(e for e in edges if e[1] == left)
    for top, bottom in zip(column[0::2], column[1::2]):
        frames.append((top[1] + 1, top[0] + 1, top[2] - top[1] - 2, bottom[0] - top[0] - 1))
frames.sort(key=lambda b: (b[1], b[0]))
"#;

/// What a screenshot shows, in one decoding: the chart frames, the series pixels in each, the error pixels.
struct Picture {
    frames: Vec<(u32, u32, u32, u32)>,
    series: Vec<u64>,
    errors: u64,
}

fn picture(png: &Path) -> Picture {
    let task = format!(
        "{FRAMES}print(json.dumps([frames, [count(f, args[1], 40) for f in frames], \
         count((0, 0, width, height), args[2], 40)]))"
    );
    let found = png_query(png, &task, &[rgb(FRAME), rgb(STROKE), rgb(ERROR)]);
    let (frames, series, errors) = serde_json::from_value(found).unwrap();
    Picture { frames, series, errors }
}

/// Every `src=`, `href=` and `url(` in a served text that points to another origin.
fn off_origin(text: &str) -> Vec<String> {
    let reference = Regex::new(r#"(?i)(?:src|href)\s*=\s*["']?\s*([^"'\s>]+)|url\(\s*["']?\s*([^"')\s]+)"#).unwrap();
    reference
        .captures_iter(text)
        .filter_map(|c| c.get(1).or(c.get(2)).map(|m| m.as_str().to_string()))
        .filter(|target| {
            let lower = target.to_ascii_lowercase();
            lower.starts_with("//") || lower.contains("://") || lower.starts_with("javascript:")
        })
        .collect()
}

#[test]
fn the_dashboard_draws_every_chart_in_headless_chromium_without_errors_or_other_origins() {
    let Some(chromium) = chromium() else { return };
    let dir = scratch();
    // A CR in a name: the HTML parser turns it into LF inside an attribute, and the page polled a wrong name
    // (404, an error shown) while the name came from data-label.
    database_with_history(dir.path(), CR);
    // One snapshot and a size that does not move: a single point had an x axis of years, and the y axis
    // repeated "1.2 MiB / 1.2 MiB / 1.2 MiB".
    let flat = dir.path().join("flat.db");
    create_db(&flat, "CREATE TABLE t(x); INSERT INTO t VALUES (randomblob(100000));");
    call(&Rusqlite, &flat, r#"SELECT health_snapshot('{"fragmentation":true}')"#);
    let serve = start_fleet(dir.path(), &[CR, "flat.db"]);
    let profile = dir.path().join("chromium-profile");

    // Nothing served points anywhere else (the vendored files included).
    let mut served = vec!["/".to_string(), "/db/shop.db".to_string(), format!("/db/{}", encoded(ODD))];
    served.extend(
        ["dashboard.js", "dashboard.css", "uPlot.iife.min.js", "uPlot.min.css"].map(|a| format!("/assets/{a}")),
    );
    for path in &served {
        let reply = serve.get(path);
        assert_eq!(reply.status, 200, "{path}");
        let found = off_origin(&String::from_utf8_lossy(&reply.body));
        assert!(found.is_empty(), "{path} refers to another origin: {found:?}");
    }

    let (fleet, log) = run_chromium(&chromium, &profile, &serve.url("/"), &["--dump-dom"]);
    assert!(fleet.contains("data-ready=\"1\"") && fleet.contains("data-charts=\"0\""), "{fleet}");
    assert!(page_problems(&log).is_empty(), "{:?}", page_problems(&log));

    let point_count = Regex::new(r#"data-points="(\d+)""#).unwrap();
    let chart_box = Regex::new(r#"data-box="(\d+),(\d+),(\d+),(\d+)""#).unwrap();
    for db in ["shop.db", ODD, CR] {
        let url = serve.url(&format!("/db/{}", encoded(db)));
        let (dom, log) = run_chromium(&chromium, &profile, &url, &["--dump-dom"]);
        assert!(dom.contains("data-ready=\"1\""), "{db}: not ready: {dom}\n{log}");
        assert!(dom.contains(&format!("data-charts=\"{CHARTS}\"")), "{db}: {dom}");
        assert!(!dom.contains("class=\"error\""), "{db}: the page shows an error: {dom}");
        assert!(dom.matches("<canvas").count() >= CHARTS, "{db}: a canvas per chart");
        let points: Vec<u32> = point_count.captures_iter(&dom).map(|c| c[1].parse().unwrap()).collect();
        assert_eq!(points.len(), CHARTS, "{db}");
        assert!(points.iter().all(|p| *p >= 1), "{db}: every chart has data: {points:?}");
        assert!(page_problems(&log).is_empty(), "{db}: {:?}", page_problems(&log));

        let boxes: Vec<(u32, u32, u32, u32)> = chart_box
            .captures_iter(&dom)
            .map(|c| (c[1].parse().unwrap(), c[2].parse().unwrap(), c[3].parse().unwrap(), c[4].parse().unwrap()))
            .collect();
        assert_eq!(boxes.len(), CHARTS, "{db}");
        let artifacts = root().join("target/test-artifacts");
        std::fs::create_dir_all(&artifacts).unwrap();
        let png = artifacts.join(format!("dashboard-{}.png", db.replace(|c: char| !c.is_ascii_alphanumeric(), "_")));
        let _ = std::fs::remove_file(&png);
        let (_, log) = run_chromium(&chromium, &profile, &url, &[&format!("--screenshot={}", png.display())]);
        assert!(png.exists(), "no screenshot: {log}");
        let drawn = stroke_pixels(&png, &boxes);
        println!("dashboard screenshot: {} (series pixels per chart: {drawn:?})", png.display());
        assert!(drawn.iter().all(|n| *n >= 50), "{db}: every chart box has its series drawn: {drawn:?} in {boxes:?}");
        let seen = picture(&png);
        assert_eq!(seen.errors, 0, "{db}: the .error element shows in {}", png.display());
        assert_eq!(seen.frames.len(), CHARTS, "{db}: the frames the Firefox test finds charts by: {:?}", seen.frames);
    }

    let (dom, log) = run_chromium(&chromium, &profile, &serve.url("/db/flat.db"), &["--dump-dom"]);
    assert!(dom.contains("data-ready=\"1\""), "flat.db: not ready: {dom}\n{log}");
    let ticks: Vec<String> =
        Regex::new(r#"data-ticks="([^"]*)""#).unwrap().captures_iter(&dom).map(|c| c[1].into()).collect();
    assert!(ticks.len() >= 4, "flat.db: the drawn charts' tick labels: {ticks:?}");
    for labels in &ticks {
        let labels: Vec<&str> = labels.split('|').collect();
        let distinct: std::collections::HashSet<&&str> = labels.iter().collect();
        assert_eq!(distinct.len(), labels.len(), "flat.db: tick labels must differ: {labels:?}");
    }
    let spans: Vec<f64> =
        Regex::new(r#"data-xspan="(\d+)""#).unwrap().captures_iter(&dom).map(|c| c[1].parse().unwrap()).collect();
    assert!(!spans.is_empty() && spans.iter().all(|s| *s <= 2.0 * 86_400.0), "flat.db: x spans in seconds: {spans:?}");
}

fn firefox() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|d| d.join("firefox-esr")).find(|p| p.is_file()));
    if found.is_none() {
        assert!(
            std::env::var_os("VIGIL_REQUIRE_FIREFOX").is_none(),
            "VIGIL_REQUIRE_FIREFOX is set but firefox-esr is not installed: run scripts/setup"
        );
        eprintln!(
            "\n\n*** SKIPPED: firefox-esr is not installed (Debian package firefox-esr; scripts/setup installs it) ***\n\n"
        );
    }
    found
}

/// Preferences of the fresh profile: no first-run pages, no updates or telemetry, console messages on
/// stdout, and every origin but the loopback server behind a proxy that does not exist (port 9 is closed).
const FIREFOX_PREFS: &str = r#"
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.enabled", false);
user_pref("app.update.auto", false);
user_pref("devtools.console.stdout.content", true);
user_pref("network.proxy.type", 1);
user_pref("network.proxy.http", "127.0.0.1");
user_pref("network.proxy.http_port", 9);
user_pref("network.proxy.ssl", "127.0.0.1");
user_pref("network.proxy.ssl_port", 9);
user_pref("network.proxy.no_proxies_on", "127.0.0.1");
user_pref("network.proxy.allow_hijacking_localhost", false);
"#;

/// Firefox's headless screenshot of `url` (taken at the page's load event: no fetch has returned yet, so
/// what it shows was drawn from the page's data block); (stdout, stderr).
fn firefox_screenshot(firefox: &Path, home: &Path, url: &str, png: &Path) -> (String, String) {
    let profile = home.join("firefox-profile");
    std::fs::create_dir_all(&profile).unwrap();
    std::fs::write(profile.join("user.js"), FIREFOX_PREFS).unwrap();
    let _ = std::fs::remove_file(png);
    let out = Command::new(firefox)
        .args(["--headless", "--no-remote", "--profile"])
        .arg(&profile)
        .arg("--screenshot")
        .arg(png)
        .args(["--window-size=1280,900", url])
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_CACHE_HOME")
        .env("MOZ_CRASHREPORTER_DISABLE", "1")
        .output()
        .unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success() && png.exists(), "firefox-esr failed on {url}: {stdout}\n{stderr}");
    (stdout, stderr)
}

#[test]
fn the_dashboard_draws_every_chart_in_headless_firefox_at_load_without_errors() {
    let Some(firefox) = firefox() else { return };
    let dir = scratch();
    let serve = start_fleet(dir.path(), &[]);
    let home = dir.path().join("home");
    let artifacts = root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let started = Instant::now();
    let mut shots = 0;
    let mut in_firefox = Duration::ZERO;
    let pages =
        [("fleet", "/".to_string()), ("shop", "/db/shop.db".to_string()), ("odd", format!("/db/{}", encoded(ODD)))];
    for (name, path) in pages {
        let png = artifacts.join(format!("dashboard-firefox-{name}.png"));
        let shot = Instant::now();
        let (stdout, stderr) = firefox_screenshot(&firefox, &home, &serve.url(&path), &png);
        in_firefox += shot.elapsed();
        shots += 1;
        let Picture { frames, series: drawn, errors } = picture(&png);
        println!("firefox screenshot: {} (chart frames {frames:?}, series pixels per chart {drawn:?})", png.display());
        assert_eq!(errors, 0, "{path}: the .error element shows in {}", png.display());
        for line in stdout.lines().chain(stderr.lines()) {
            assert!(!line.contains("JavaScript error") && !line.starts_with("console.error"), "{path}: {line}");
        }
        if name == "fleet" {
            assert!(frames.is_empty(), "the fleet page has no charts: {frames:?}");
            continue;
        }
        assert_eq!(frames.len(), CHARTS, "{path}: a frame per chart in {}", png.display());
        assert!(
            drawn.iter().all(|n| *n >= 50),
            "{path}: every chart box has its series drawn: {drawn:?} in {frames:?}"
        );
    }
    // The detector can fail: a box of that magenta is seen.
    let control = artifacts.join("dashboard-firefox-control.png");
    let magenta = "data:text/html,<div style='background:%23ff00c8;width:60px;height:20px'></div>";
    firefox_screenshot(&firefox, &home, magenta, &control);
    assert!(picture(&control).errors >= 1000, "the error colour is seen in {}", control.display());
    println!(
        "firefox: {shots} screenshots, {:.1} s in firefox-esr, {:.1} s with the pictures' decoding",
        in_firefox.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
