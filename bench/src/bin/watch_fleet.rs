//! `vigil watch` over a fleet: N small databases (default 1000) checked every PERIOD (default 5s, a shortened
//! schedule of the 60s default) for a while (default 120s). Prints the watch's CPU as a share of one core, its
//! resident memory over time, how late any database's check came (the largest gap between two recorded checks
//! of one database, in intervals), and the CPU of one cycle against one `vigil metrics` pass over the same
//! databases, measured in the same run.
//!
//!   cargo build --release --workspace
//!   cargo run --release -p vigil-bench --bin watch_fleet [-- N PERIOD_S DURATION_S]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn release(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release").join(name);
    assert!(path.exists(), "{} is missing: cargo build --release --workspace", path.display());
    path
}

fn arg(i: usize, default: u64) -> u64 {
    std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

/// CPU seconds (user + system) of the children this process waited for.
fn children_cpu() -> f64 {
    // SAFETY: getrusage fills a zeroed struct this function owns.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// CPU seconds and resident KiB of a running process, from /proc.
fn process_figures(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // After the command name: state is field 0, utime 11, stime 12 (fields 14 and 15 of proc(5)).
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (cpu, rss)
}

fn make_fleet(dir: &Path, n: u64) {
    let first = dir.join("db0000.db");
    let conn = rusqlite::Connection::open(&first).unwrap();
    conn.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 500)
         INSERT INTO t(v) SELECT hex(randomblob(40)) FROM c; ANALYZE;",
    )
    .unwrap();
    drop(conn);
    for i in 1..n {
        std::fs::copy(&first, dir.join(format!("db{i:04}.db"))).unwrap();
    }
}

/// Each database's recorded check times, from the state file.
fn checks(state: &Path) -> HashMap<String, u64> {
    let Ok(text) = std::fs::read_to_string(state) else { return HashMap::new() };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else { return HashMap::new() };
    let mut out = HashMap::new();
    for (db, s) in json["databases"].as_object().into_iter().flatten() {
        if let Some(at) = s["last_run_ms"]["check"].as_u64() {
            out.insert(db.clone(), at);
        }
    }
    out
}

fn main() {
    let (n, period_s, duration_s) = (arg(1, 1000), arg(2, 5), arg(3, 120));
    let vigil = release("vigil");
    let root = std::env::temp_dir().join(format!("vigil-watch-bench-{}", std::process::id()));
    let dir = root.join("fleet");
    std::fs::create_dir_all(&dir).unwrap();
    make_fleet(&dir, n);
    let pattern = format!("{}/*.db", dir.display());

    // Reference: one `vigil metrics` pass over the same databases (the cost of one cycle done by cron).
    let before = children_cpu();
    let started = Instant::now();
    let status = Command::new(&vigil).args(["metrics", &pattern]).stdout(Stdio::null()).status().unwrap();
    assert!(status.success());
    let (metrics_cpu, metrics_wall) = (children_cpu() - before, started.elapsed().as_secs_f64());

    let state = root.join("state.json");
    let mut child = Command::new(&vigil)
        .arg("watch")
        .arg("--dir")
        .arg(&dir)
        .args(["--every", &format!("{period_s}s"), "--quick-every", "off", "--full-every", "off"])
        .args(["--snapshot-every", "off", "--pit-every", "off", "--threshold", "disk_used_pct=none,none"])
        .arg("--state")
        .arg(&state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let start = Instant::now();
    let mut last_seen: HashMap<String, u64> = HashMap::new();
    let mut worst_gap_ms = 0u64;
    let mut rss = Vec::new();
    let mut cpu_after_first_cycle = None;
    while start.elapsed() < Duration::from_secs(duration_s) {
        std::thread::sleep(Duration::from_secs(1));
        for (db, at) in checks(&state) {
            if let Some(previous) = last_seen.insert(db, at) {
                if at > previous {
                    worst_gap_ms = worst_gap_ms.max(at - previous);
                }
            }
        }
        let elapsed = start.elapsed().as_secs();
        if elapsed.is_multiple_of(period_s) {
            let (cpu, kib) = process_figures(pid);
            rss.push(kib);
            if cpu_after_first_cycle.is_none() && elapsed >= 2 * period_s {
                cpu_after_first_cycle = Some((cpu, Instant::now()));
            }
        }
    }
    let (cpu_end, _) = process_figures(pid);
    let (cpu_mark, at_mark) = cpu_after_first_cycle.unwrap_or((0.0, start));
    let steady_seconds = at_mark.elapsed().as_secs_f64();
    let share = (cpu_end - cpu_mark) / steady_seconds;
    let cycles = steady_seconds / period_s as f64;
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = child.wait();
    let watched = last_seen.len();
    let _ = std::fs::remove_dir_all(&root);

    println!("vigil watch: {n} databases, checks every {period_s}s, {duration_s}s");
    println!("  databases with recorded checks: {watched}");
    println!("  CPU (steady state): {:.2} % of one core", share * 100.0);
    println!("  CPU per cycle: {:.3} s; one `vigil metrics` pass: {metrics_cpu:.3} s CPU, {metrics_wall:.2} s wall; ratio {:.2}x",
        share * period_s as f64, share * period_s as f64 / metrics_cpu.max(1e-9));
    println!("  at the default --every 60s that is {:.2} % of one core", share * period_s as f64 / 60.0 * 100.0);
    println!("  cycles measured: {cycles:.1}");
    println!(
        "  largest gap between two checks of one database: {:.2} intervals",
        worst_gap_ms as f64 / (period_s * 1000) as f64
    );
    let kib = |v: Option<&u64>| v.copied().unwrap_or(0);
    println!(
        "  RSS: {} KiB after the first cycle, {} KiB at the end (samples: {:?})",
        kib(rss.get(1)),
        kib(rss.last()),
        rss
    );
}
