//! `vigil metrics` and `vigil_metrics()`: the exposition checked by Debian's promtool and by a structural checker
//! of our own (what promtool misses), unreadable databases, globs and labels, the textfile's atomicity and
//! symlink safety, read-only collection, the shipped alert rules, and the SQL function in real hosts.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vigil_tests::*;

fn vigil(dir: &Path, args: &[&str]) -> Output {
    Command::new(cli_binary()).args(args).current_dir(dir).env_remove("VIGIL_EXTENSION").output().unwrap()
}

fn metrics(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["metrics"];
    all.extend_from_slice(args);
    let out = vigil(dir, &all);
    (code(&out), text(&out.stdout), text(&out.stderr))
}

// ------------------------------------------------------------------------------------------------------------
// A structural checker for what promtool does not check: duplicate series, families split or declared twice,
// histogram buckets not cumulative, not increasing, or without `+Inf` equal to `_count`.

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// Parses one sample line: name, `{k="v",…}` with escapes, value; no timestamp allowed.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or(format!("no value: {line}"))?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '}' {
                end = Some(i);
                break;
            }
            if c == ',' {
                continue;
            }
            let eq = body[i..].find("=\"").ok_or(format!("bad label in {line}"))? + i;
            let key = body[i..eq].to_string();
            while chars.peek().is_some_and(|(j, _)| *j < eq + 2) {
                chars.next();
            }
            let mut value = String::new();
            loop {
                match chars.next().ok_or(format!("unterminated label value in {line}"))? {
                    (_, '"') => break,
                    (_, '\\') => match chars.next().map(|(_, c)| c) {
                        Some('n') => value.push('\n'),
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        other => return Err(format!("bad escape {other:?} in {line}")),
                    },
                    (_, c) => value.push(c),
                }
            }
            labels.push((key, value));
        }
        let end = end.ok_or(format!("unterminated labels in {line}"))?;
        rest = &body[end + 1..];
    }
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.len() != 1 {
        return Err(format!("expected exactly one value and no timestamp: {line}"));
    }
    let value = match fields[0] {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().map_err(|_| format!("bad value in {line}"))?,
    };
    Ok(Sample { name, labels, value })
}

/// The family a sample belongs to, given the declared types.
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types.get(base).is_some_and(|t| t == "histogram") {
                return base;
            }
        }
    }
    name
}

/// Every problem found (empty when the exposition is sound), and the samples.
fn structure(text: &str) -> (Vec<String>, Vec<Sample>) {
    let mut problems = Vec::new();
    let mut types = BTreeMap::new();
    let mut helps = HashSet::new();
    let mut finished_families: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut series = HashSet::new();
    let mut samples = Vec::new();
    if !text.is_empty() && !text.ends_with('\n') {
        problems.push("the last line does not end with a newline".to_string());
    }
    for line in text.lines() {
        let mut switch_to = |family: &str, problems: &mut Vec<String>| {
            if current.as_deref() != Some(family) {
                if let Some(previous) = current.take() {
                    finished_families.insert(previous);
                }
                if finished_families.contains(family) {
                    problems.push(format!("family {family} is not contiguous"));
                }
                current = Some(family.to_string());
            }
        };
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default().to_string();
            if !helps.insert(name.clone()) {
                problems.push(format!("two HELP lines for {name}"));
            }
            switch_to(&name, &mut problems);
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap_or_default().to_string();
            let kind = parts.next().unwrap_or_default().to_string();
            if types.insert(name.clone(), kind).is_some() {
                problems.push(format!("two TYPE lines for {name}"));
            }
            switch_to(&name, &mut problems);
        } else if line.starts_with('#') || line.is_empty() {
            continue;
        } else {
            match parse_sample(line) {
                Ok(sample) => {
                    let family = family_of(&sample.name, &types).to_string();
                    if !types.contains_key(&family) {
                        problems.push(format!("{} has no TYPE line before it", sample.name));
                    }
                    switch_to(&family, &mut problems);
                    let mut key = sample.labels.clone();
                    key.sort();
                    if !series.insert((sample.name.clone(), key)) {
                        problems.push(format!("duplicate series: {line}"));
                    }
                    samples.push(sample);
                }
                Err(e) => problems.push(e),
            }
        }
    }
    problems.extend(histogram_problems(&samples, &types));
    (problems, samples)
}

/// One histogram series: (upper bound, cumulative count) of each bucket, and `_count`.
type Histogram = (Vec<(f64, f64)>, Option<f64>);

fn histogram_problems(samples: &[Sample], types: &BTreeMap<String, String>) -> Vec<String> {
    let mut problems = Vec::new();
    for (family, _) in types.iter().filter(|(_, t)| *t == "histogram") {
        // Series of the family by labels other than `le`.
        let mut by_series: BTreeMap<Vec<(String, String)>, Histogram> = BTreeMap::new();
        let ours = |name: &str| ["_bucket", "_sum", "_count"].iter().any(|x| name == format!("{family}{x}"));
        for s in samples.iter().filter(|s| ours(&s.name)) {
            let mut labels: Vec<(String, String)> = s.labels.iter().filter(|(k, _)| k != "le").cloned().collect();
            labels.sort();
            let entry = by_series.entry(labels).or_default();
            if s.name == format!("{family}_bucket") {
                let le = s.labels.iter().find(|(k, _)| k == "le").map(|(_, v)| v.as_str()).unwrap_or("");
                let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::NAN) };
                entry.0.push((bound, s.value));
            } else if s.name == format!("{family}_count") {
                entry.1 = Some(s.value);
            }
        }
        for (labels, (buckets, count)) in by_series {
            let name = format!("{family}{labels:?}");
            if buckets.windows(2).any(|w| w[0].0.partial_cmp(&w[1].0) != Some(std::cmp::Ordering::Less)) {
                problems.push(format!("{name}: bucket bounds not increasing"));
            }
            if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
                problems.push(format!("{name}: buckets not cumulative"));
            }
            match (buckets.last(), count) {
                (Some((bound, inf)), Some(count)) if bound.is_infinite() && *inf == count => {}
                other => problems.push(format!("{name}: no +Inf bucket equal to _count: {other:?}")),
            }
        }
    }
    problems
}

fn assert_sound(exposition: &str) -> Vec<Sample> {
    let (problems, samples) = structure(exposition);
    assert!(problems.is_empty(), "{problems:#?}\n{exposition}");
    let (status, said) = promtool_check(exposition);
    assert_eq!((status, said.as_str()), (0, ""), "promtool check metrics:\n{exposition}");
    samples
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v)))
        .map(|s| s.value)
}

#[test]
fn the_checker_finds_what_promtool_misses() {
    let good = "# HELP h a histogram\n# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"1\"} 3\n\
                h_bucket{le=\"+Inf\"} 4\nh_sum 2.5\nh_count 4\n# HELP g a gauge\n# TYPE g gauge\ng{db=\"a\\\"b\"} 1\n";
    assert_eq!(structure(good).0, Vec::<String>::new());
    let cases = [
        (good.replace("g{db=\"a\\\"b\"} 1\n", "g{db=\"a\\\"b\"} 1\ng{db=\"a\\\"b\"} 2\n"), "duplicate series"),
        (good.replace("h_bucket{le=\"1\"} 3", "h_bucket{le=\"1\"} 0"), "not cumulative"),
        (good.replace("h_bucket{le=\"+Inf\"} 4\n", ""), "no +Inf bucket"),
        (good.replace("h_count 4", "h_count 5"), "no +Inf bucket"),
        (good.replace("le=\"1\"", "le=\"0.05\""), "not increasing"),
        (format!("{good}h_sum 3\n"), "not contiguous"),
        (good.replace("g{db=\"a\\\"b\"} 1", "g{db=\"a\\\"b\"} 1 1700000000000"), "no timestamp"),
    ];
    for (text, problem) in &cases {
        let found = structure(text).0;
        assert!(found.iter().any(|p| p.contains(problem)), "{problem}: {found:?}\n{text}");
    }
    // What promtool lets through (the reason for the checker).
    assert_eq!(promtool_check(&cases[0].0), (0, String::new()));
}

/// Demo databases under directory names with a quote, a backslash, spaces, UTF-8 and a newline.
fn hostile_databases(dir: &Path) -> Vec<PathBuf> {
    let names = ["quote\"d dir", "back\\slash", "spa ced", "ünïcødé 数据", "new\nline"];
    names
        .iter()
        .map(|name| {
            let sub = dir.join(name);
            std::fs::create_dir(&sub).unwrap();
            let db = sub.join("app.db");
            demo_db(&db);
            db
        })
        .collect()
}

#[test]
fn promtool_accepts_the_exposition_of_databases_with_hostile_paths() {
    let dir = scratch();
    let dbs = hostile_databases(dir.path());
    let glob = format!("{}/*/app.db", dir.path().display());
    let (status, out, err) = metrics(dir.path(), &[&glob, "--quick"]);
    assert_eq!(status, 0, "{err}");
    let samples = assert_sound(&out);
    // The db label is the path below the glob's literal directory, escaped and read back intact.
    for db in &dbs {
        let parent = db.parent().unwrap().file_name().unwrap().to_string_lossy();
        let label = format!("{parent}/app.db");
        assert_eq!(value(&samples, "vigil_up", &[("db", &label)]), Some(1.0), "{label:?}\n{out}");
        assert_eq!(value(&samples, "vigil_integrity_errors", &[("db", &label)]), Some(0.0), "{label:?}");
    }
    let names: HashSet<&str> = samples.iter().map(|s| s.name.as_str()).collect();
    for required in [
        "vigil_up",
        "vigil_health_status",
        "vigil_health_overall_status",
        "vigil_database_size_bytes",
        "vigil_wal_size_bytes",
        "vigil_freelist_pages",
        "vigil_freelist_ratio",
        "vigil_disk_free_bytes",
        "vigil_backup_last_success_timestamp_seconds",
    ] {
        assert!(names.contains(required), "{required} missing:\n{out}");
    }
    // Nagios codes: the demo's freelist is over its warning threshold.
    let freelist = [("db", "spa ced/app.db"), ("check", "freelist_pct")];
    assert_eq!(value(&samples, "vigil_health_status", &freelist), Some(1.0));
    let ratio = value(&samples, "vigil_freelist_ratio", &[("db", "spa ced/app.db")]).unwrap();
    assert!(ratio > 0.0 && ratio < 1.0, "a ratio, not a percentage: {ratio}");
}

#[test]
fn every_exported_metric_is_documented_and_so_is_every_name_the_rules_and_dashboard_use() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    demo_db(&db);
    assert_eq!(code(&vigil(dir.path(), &["backup", "app.db", "backups/"])), 0);
    assert_eq!(code(&vigil(dir.path(), &["maintain", "app.db", "--level", "light"])), 0);
    let (status, out, err) = metrics(dir.path(), &["app.db", "--full", "--backups", "backups"]);
    assert_eq!(status, 0, "{err}");
    let samples = assert_sound(&out);
    let docs = std::fs::read_to_string(root().join("docs/metrics.md")).unwrap();
    let documented = |name: &str| docs.contains(&format!("`{name}`"));
    for s in &samples {
        let family = ["_bucket", "_sum", "_count"].iter().find_map(|x| s.name.strip_suffix(x)).unwrap_or(&s.name);
        assert!(documented(&s.name) || documented(family), "{} is not in docs/metrics.md", s.name);
    }
    for required in
        ["vigil_backup_files", "vigil_backup_last_size_bytes", "vigil_maintenance_last_run_timestamp_seconds"]
    {
        assert!(samples.iter().any(|s| s.name == required), "{required} missing:\n{out}");
    }
    let name = regex::Regex::new(r"\bvigil_[a-z_]+").unwrap();
    for file in ["contrib/prometheus/vigil.rules.yml", "contrib/grafana/vigil-dashboard.json"] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        for m in name.find_iter(&text) {
            let metric = m.as_str();
            let family = ["_bucket", "_sum", "_count"].iter().find_map(|x| metric.strip_suffix(x)).unwrap_or(metric);
            if metric.starts_with("vigil_sqlite") || metric == "vigil_" {
                continue;
            }
            assert!(documented(metric) || documented(family), "{file} uses {metric}, not in docs/metrics.md");
        }
    }
}

#[test]
fn the_backup_time_comes_from_the_backup_directory_or_else_the_log_and_is_0_without_one() {
    let dir = scratch();
    demo_db(&dir.path().join("app.db"));
    demo_db(&dir.path().join("other.db"));
    let before = now();
    assert_eq!(code(&vigil(dir.path(), &["backup", "app.db", "backups/"])), 0);
    let after = now();
    for args in [&["app.db", "other.db", "--backups", "backups"][..], &["app.db", "other.db"][..]] {
        let (status, out, err) = metrics(dir.path(), args);
        assert_eq!(status, 0, "{err}");
        let samples = assert_sound(&out);
        let at = value(&samples, "vigil_backup_last_success_timestamp_seconds", &[("db", "app.db")]).unwrap();
        assert!(at >= before.floor() - 1.0 && at <= after + 1.0, "{args:?}: {at} not in {before}..{after}");
        let none = value(&samples, "vigil_backup_last_success_timestamp_seconds", &[("db", "other.db")]);
        assert_eq!(none, Some(0.0), "{args:?}: other.db has no backup");
        let size = value(&samples, "vigil_backup_last_size_bytes", &[("db", "app.db")]).unwrap();
        assert_eq!(size, std::fs::metadata(dir.path().join("app.db")).unwrap().len() as f64);
        let files = value(&samples, "vigil_backup_files", &[("db", "app.db")]);
        assert_eq!(files, if args.len() == 4 { Some(1.0) } else { None }, "{args:?}");
    }
}

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

#[test]
fn unreadable_databases_report_up_0_and_exit_3_while_the_others_are_reported() {
    let dir = scratch();
    let d = dir.path();
    demo_db(&d.join("good.db"));
    demo_db(&d.join("locked.db"));
    std::fs::write(d.join("text.db"), "not a database at all, just some text that is long enough\n").unwrap();
    std::fs::create_dir(d.join("adir.db")).unwrap();
    // A journal beside a database is a hot journal (a crashed writer's): only a read-write open rolls it back.
    demo_db(&d.join("hot.db"));
    std::fs::write(d.join("hot.db-journal"), "leftover").unwrap();
    // Another process holds an exclusive lock on locked.db for the whole run.
    let mut holder = spawn_shell(&d.join("locked.db"), "BEGIN EXCLUSIVE;\nSELECT 'locked';\n.shell sleep 30\n");
    wait_for_line(&mut holder, "locked");
    let out = Command::new(cli_binary())
        .args([
            "--busy-timeout",
            "200",
            "metrics",
            "good.db",
            "locked.db",
            "missing.db",
            "text.db",
            "adir.db",
            "hot.db",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(code(&out), 3, "{}", both(&out));
    let exposition = text(&out.stdout);
    let samples = assert_sound(&exposition);
    assert_eq!(value(&samples, "vigil_up", &[("db", "good.db")]), Some(1.0));
    for bad in ["locked.db", "missing.db", "text.db", "adir.db", "hot.db"] {
        assert_eq!(value(&samples, "vigil_up", &[("db", bad)]), Some(0.0), "{bad}\n{exposition}");
        let others = samples.iter().filter(|s| s.name != "vigil_up" && s.labels.iter().any(|(_, v)| v == bad));
        assert_eq!(others.count(), 0, "{bad} has series besides vigil_up");
        assert!(text(&out.stderr).contains(&format!("vigil metrics: {bad}: ")), "{}", text(&out.stderr));
    }
    let stderr = text(&out.stderr);
    assert!(stderr.contains("--busy-timeout"), "the lock names the flag: {stderr}");
    assert!(stderr.contains("hot journal"), "{stderr}");
    assert!(stderr.lines().all(|l| l.len() < 400 && !l.contains("Error {")), "{stderr}");
    assert!(value(&samples, "vigil_database_size_bytes", &[("db", "good.db")]).is_some());
}

fn wait_for_line(child: &mut std::process::Child, expected: &str) {
    use std::io::BufRead;
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), expected);
}

#[test]
fn globs_keep_sqlite_files_label_below_their_literal_directory_and_usage_errors_exit_64() {
    let dir = scratch();
    let d = dir.path();
    for sub in ["a", "b"] {
        std::fs::create_dir(d.join(sub)).unwrap();
        create_db(&d.join(sub).join("app.db"), "CREATE TABLE t(x); INSERT INTO t VALUES (1);");
    }
    std::fs::write(d.join("a/notes.db"), "text").unwrap();
    // Beside a database in rollback-journal mode, a -wal file is not SQLite's business (a -journal would be a hot
    // journal, which a read-only connection cannot roll back: that database would be reported down).
    std::fs::write(d.join("a/app.db-wal"), "leftover").unwrap();
    create_db(&d.join("b/wal.db"), "PRAGMA journal_mode=wal; CREATE TABLE t(x);");
    let (status, out, err) = metrics(d, &["*/*", "a/app.db", "./a/../a/app.db"]);
    assert_eq!(status, 0, "{err}");
    assert_eq!(up_labels(&out), ["a/app.db", "b/app.db", "b/wal.db"]);

    for (args, expected) in [
        (&["*.nothing"][..], "glob '*.nothing' matches no SQLite database"),
        (&["a/[z"][..], "bad glob"),
        (&[][..], "required"),
        (&["a/app.db", "--statements", "5000"][..], "--statements"),
        (&["a/app.db", "--backups", "nowhere"][..], "--backups nowhere: not a directory"),
        (&["a/app.db", "--textfile", "nowhere"][..], "--textfile nowhere: not a directory"),
        (&["a/app.db", "--quick", "--full"][..], "cannot be used with"),
    ] {
        let (status, out, err) = metrics(d, args);
        assert_eq!(status, 64, "{args:?}: {out}{err}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(err.lines().count() <= 6, "{args:?}: {err}");
    }
}

fn up_labels(out: &str) -> Vec<String> {
    let samples = assert_sound(out);
    let mut up: Vec<String> = samples
        .iter()
        .filter(|s| s.name == "vigil_up")
        .map(|s| s.labels.iter().find(|(k, _)| k == "db").unwrap().1.clone())
        .collect();
    up.sort();
    up
}

/// A database's `db` label must not depend on which other databases share the command: a new tenant matched by
/// the glob must not rename the existing series (history, alert `for:` timers and inhibits key on it).
#[test]
fn a_label_stays_the_same_whatever_other_databases_the_command_names() {
    let dir = scratch();
    let d = dir.path();
    let srv = d.join("srv");
    std::fs::create_dir_all(srv.join("shop")).unwrap();
    demo_db(&srv.join("shop/app.db"));
    let glob = format!("{}/*/app.db", srv.display());
    let (status, out, err) = metrics(d, &[&glob]);
    assert_eq!((status, up_labels(&out)), (0, vec!["shop/app.db".to_string()]), "{err}");

    std::fs::create_dir_all(srv.join("blog")).unwrap();
    demo_db(&srv.join("blog/app.db"));
    let (status, out, err) = metrics(d, &[&glob]);
    assert_eq!((status, up_labels(&out)), (0, vec!["blog/app.db".to_string(), "shop/app.db".to_string()]), "{err}");
    let (_, out, _) = metrics(&srv.join("shop"), &["*.db"]);
    assert_eq!(up_labels(&out), ["app.db"], "'*.db': relative to the current directory");

    // Named explicitly: the file name, alone or not.
    let (status, out, err) = metrics(d, &["srv/shop/app.db"]);
    assert_eq!((status, up_labels(&out)), (0, vec!["app.db".to_string()]), "{err}");
    let (status, out, err) = metrics(d, &["srv/shop/app.db", "srv/blog/app.db"]);
    assert_eq!(status, 64, "two explicit app.db are a usage error, never renamed: {out}{err}");
    assert!(err.contains("'srv/shop/app.db' and 'srv/blog/app.db' would both be labelled db='app.db'"), "{err}");
    assert!(err.contains("glob that covers both their directories") && err.lines().count() <= 3, "{err}");
}

#[test]
fn thresholds_tune_the_health_status_as_vigil_health_does() {
    let dir = scratch();
    demo_db(&dir.path().join("app.db"));
    let overall = |args: &[&str]| {
        let (status, out, err) = metrics(dir.path(), args);
        assert_eq!(status, 0, "{err}");
        value(&assert_sound(&out), "vigil_health_overall_status", &[("db", "app.db")]).unwrap()
    };
    let status_of = |args: &[&str], check: &str| {
        let (_, out, _) = metrics(dir.path(), args);
        value(&assert_sound(&out), "vigil_health_status", &[("db", "app.db"), ("check", check)]).unwrap()
    };
    assert_eq!(status_of(&["app.db"], "tables"), 0.0);
    assert_eq!(status_of(&["app.db", "--threshold", "file_size=1,1"], "file_size"), 2.0);
    assert_eq!(overall(&["app.db", "--threshold", "file_size=1"]), 1.0, "warning only");
    assert_eq!(
        status_of(&["app.db", "--threshold", "file_size=1,1", "--threshold", "file_size=none,none"], "file_size"),
        0.0,
        "the last one wins, none disables"
    );
    let (status, _, err) = metrics(dir.path(), &["app.db", "--threshold", "file_size=lots"]);
    assert_eq!(status, 64);
    assert!(err.contains("--threshold 'file_size=lots': expected NAME=WARNING[,CRITICAL]"), "{err}");
}

/// A reader of a WAL database must create its -shm file; a user who cannot write the directory gets SQLite's
/// bare "attempt to write a readonly database" unless vigil names the cause and the way out.
#[test]
fn a_wal_database_in_a_directory_the_user_cannot_write_names_the_shm_file_and_what_to_do() {
    let dir = scratch();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    demo_db(&data.join("app.db"));
    create_db(&data.join("app.db"), "PRAGMA journal_mode=wal;");
    assert!(!data.join("app.db-shm").exists());
    use std::os::unix::fs::PermissionsExt;
    for path in [dir.path(), &data] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(data.join("app.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(cli_binary())
        .args(["metrics", data.join("app.db").to_str().unwrap()])
        .env("VIGIL_EXTENSION", library())
        .current_dir("/")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(code(&out), 3, "{}", both(&out));
    assert!(err.contains("attempt to write a readonly database"), "{err}");
    assert!(err.contains("in WAL mode, a reader must create the -shm file beside it"), "{err}");
    assert!(err.contains("run as a user who can, or while the application has the database open"), "{err}");
    assert_eq!(value(&assert_sound(&text(&out.stdout)), "vigil_up", &[("db", "app.db")]), Some(0.0));
}

#[test]
fn textfile_name_lets_several_commands_share_one_directory() {
    let dir = scratch();
    let d = dir.path();
    demo_db(&d.join("a.db"));
    demo_db(&d.join("b.db"));
    std::fs::create_dir(d.join("out")).unwrap();
    let (status, _, err) = metrics(d, &["a.db", "--textfile", "out", "--textfile-name", "vigil-a.prom"]);
    assert_eq!(status, 0, "{err}");
    let (status, _, err) = metrics(d, &["b.db", "--textfile", "out"]);
    assert_eq!(status, 0, "{err}");
    let a = std::fs::read_to_string(d.join("out/vigil-a.prom")).unwrap();
    assert_eq!(value(&assert_sound(&a), "vigil_up", &[("db", "a.db")]), Some(1.0));
    let b = std::fs::read_to_string(d.join("out/vigil.prom")).unwrap();
    assert_eq!(value(&assert_sound(&b), "vigil_up", &[("db", "b.db")]), Some(1.0));
    for bad in ["../x.prom", "x.txt", ".prom", ".hidden.prom", "sub/x.prom"] {
        let (status, _, err) = metrics(d, &["a.db", "--textfile", "out", "--textfile-name", bad]);
        assert_eq!(status, 64, "{bad}: {err}");
        assert!(err.contains("plain file name ending in .prom"), "{bad}: {err}");
    }
    let (status, _, err) = metrics(d, &["a.db", "--textfile-name", "x.prom"]);
    assert_eq!(status, 64, "needs --textfile: {err}");
}

#[test]
fn ratios_and_durations_carry_no_binary_noise() {
    let dir = scratch();
    demo_db(&dir.path().join("app.db"));
    let (status, out, err) = metrics(dir.path(), &["app.db"]);
    assert_eq!(status, 0, "{err}");
    for line in out.lines().filter(|l| !l.starts_with('#')) {
        let number = line.rsplit(' ').next().unwrap();
        let decimals = number.split_once('.').map_or(0, |(_, d)| d.trim_start_matches(|c: char| c == '-').len());
        assert!(decimals <= 6 || number.contains('e'), "{line}");
    }
}

#[test]
fn from_another_directory_with_absolute_paths_as_cron_runs_it() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    demo_db(&db);
    let out = Command::new(cli_binary())
        .args(["metrics", db.to_str().unwrap(), "--textfile", dir.path().to_str().unwrap()])
        .current_dir("/")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", both(&out));
    assert!(out.stdout.is_empty());
    let written = std::fs::read_to_string(dir.path().join("vigil.prom")).unwrap();
    let samples = assert_sound(&written);
    assert_eq!(value(&samples, "vigil_up", &[("db", "app.db")]), Some(1.0));
}

#[test]
fn collecting_never_writes_the_databases() {
    let dir = scratch();
    let d = dir.path();
    demo_db(&d.join("app.db"));
    create_db(&d.join("wal.db"), "PRAGMA journal_mode=wal; CREATE TABLE t(x); INSERT INTO t VALUES (1);");
    assert_eq!(code(&vigil(d, &["backup", "app.db", "backups/"])), 0);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let state = |name: &str| {
        let path = d.join(name);
        (sha256sum(&path), std::fs::metadata(&path).unwrap().modified().unwrap())
    };
    let before = (state("app.db"), state("wal.db"));
    for args in
        [&["app.db", "wal.db"][..], &["app.db", "wal.db", "--full", "--backups", "backups", "--statements", "5"]]
    {
        let (status, _, err) = metrics(d, args);
        assert_eq!(status, 0, "{err}");
    }
    assert_eq!((state("app.db"), state("wal.db")), before);
    assert!(!d.join("app.db-journal").exists());
}

#[test]
fn the_textfile_is_replaced_atomically_under_a_reader_and_no_temp_file_looks_like_a_prom_file() {
    let dir = scratch();
    let d = dir.path().to_path_buf();
    demo_db(&d.join("app.db"));
    let out_dir = d.join("textfile");
    std::fs::create_dir(&out_dir).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, out_dir) = (stop.clone(), out_dir.clone());
        std::thread::spawn(move || {
            let (mut reads, mut bad) = (0u32, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                if let Ok(text) = std::fs::read_to_string(out_dir.join("vigil.prom")) {
                    reads += 1;
                    let (problems, samples) = structure(&text);
                    let complete =
                        text.ends_with('\n') && samples.iter().any(|s| s.name == "vigil_collect_duration_seconds");
                    if !problems.is_empty() || !complete {
                        bad.push(text);
                    }
                }
                // Leave the cores to the writers now and then (the machine has two).
                std::thread::sleep(std::time::Duration::from_micros(200));
                for entry in std::fs::read_dir(&out_dir).unwrap().flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.ends_with(".prom") && name != "vigil.prom" {
                        bad.push(format!("stray file {name}"));
                    }
                }
            }
            (reads, bad)
        })
    };
    // 1000 rewrites by two writers at once, as overlapping cron runs would (each has its own temporary name).
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let d = d.clone();
            std::thread::spawn(move || {
                for _ in 0..500 {
                    let (status, _, err) = metrics(&d, &["app.db", "--textfile", "textfile"]);
                    assert_eq!(status, 0, "{err}");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let (reads, bad) = reader.join().unwrap();
    assert!(reads > 100, "the reader read only {reads} times");
    assert!(bad.is_empty(), "{} bad reads, first: {}", bad.len(), bad[0]);
    let left: Vec<_> = std::fs::read_dir(&out_dir).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, ["vigil.prom"], "temporary files left behind");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(out_dir.join("vigil.prom")).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o644);
}

#[test]
fn a_symlink_or_fifo_planted_at_the_textfile_is_replaced_not_followed() {
    let dir = scratch();
    let d = dir.path();
    demo_db(&d.join("app.db"));
    std::fs::create_dir(d.join("out")).unwrap();
    std::fs::write(d.join("victim"), "precious\n").unwrap();
    std::os::unix::fs::symlink(d.join("victim"), d.join("out/vigil.prom")).unwrap();
    let (status, _, err) = metrics(d, &["app.db", "--textfile", "out"]);
    assert_eq!(status, 0, "{err}");
    assert_eq!(std::fs::read_to_string(d.join("victim")).unwrap(), "precious\n");
    let meta = std::fs::symlink_metadata(d.join("out/vigil.prom")).unwrap();
    assert!(meta.file_type().is_file(), "the symlink was replaced by a file");
    assert_sound(&std::fs::read_to_string(d.join("out/vigil.prom")).unwrap());

    std::fs::remove_file(d.join("out/vigil.prom")).unwrap();
    let fifo = std::ffi::CString::new(d.join("out/vigil.prom").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc_mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let (status, _, err) = metrics(d, &["app.db", "--textfile", "out"]);
    assert_eq!(status, 0, "{err}");
    assert!(std::fs::symlink_metadata(d.join("out/vigil.prom")).unwrap().file_type().is_file());
}

/// Sets a path's modification time `secs_ago` seconds back, without following a symlink or opening a FIFO.
fn age(path: &Path, secs_ago: u64) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let out = Command::new("touch").args(["-h", "-d", &format!("@{}", now - secs_ago)]).arg(path).output().unwrap();
    assert_eq!(code(&out), 0, "{}", both(&out));
}

#[test]
fn a_killed_runs_temporary_files_are_removed_at_the_next_run_and_nothing_else() {
    let dir = scratch();
    let d = dir.path();
    demo_db(&d.join("app.db"));
    let out = d.join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(d.join("victim"), "precious\n").unwrap();
    // What a run killed between creating its temporary file and renaming it leaves: removed when old.
    let leftover = out.join(".vigil.prom.4242.123456789.0.tmp");
    std::fs::write(&leftover, "vigil_up{db=\"app.db\"} 1\n").unwrap();
    age(&leftover, 120);
    // A concurrent run's temporary file (young), and planted things of the same pattern: left alone.
    let young = out.join(".vigil.prom.4243.5.0.tmp");
    std::fs::write(&young, "being written\n").unwrap();
    let link = out.join(".vigil.prom.4244.5.0.tmp");
    std::os::unix::fs::symlink(d.join("victim"), &link).unwrap();
    age(&link, 120);
    age(&d.join("victim"), 120);
    let fifo = out.join(".vigil.prom.4245.5.0.tmp");
    let made = Command::new("mkfifo").arg(&fifo).output().unwrap();
    assert_eq!(code(&made), 0, "{}", both(&made));
    age(&fifo, 120);
    // Old regular files of other names: not vigil's.
    let others = [".vigil.prom.4246.5.0.tmp.bak", ".vigil.prom.x.5.0.tmp", "node.prom", ".vigil.prom.tmp"];
    for name in others {
        std::fs::write(out.join(name), "theirs\n").unwrap();
        age(&out.join(name), 120);
    }

    let (status, _, err) = metrics(d, &["app.db", "--textfile", "out"]);
    assert_eq!(status, 0, "{err}");
    assert!(!leftover.exists(), "the killed run's leftover was removed");
    assert_eq!(std::fs::read_to_string(&young).unwrap(), "being written\n");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the symlink is still there");
    assert_eq!(std::fs::read_to_string(d.join("victim")).unwrap(), "precious\n", "its target untouched");
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO is still there");
    for name in others {
        assert_eq!(std::fs::read_to_string(out.join(name)).unwrap(), "theirs\n", "{name}");
    }
    assert_sound(&std::fs::read_to_string(out.join("vigil.prom")).unwrap());
}

extern "C" {
    #[link_name = "mkfifo"]
    fn libc_mkfifo(path: *const std::os::raw::c_char, mode: u32) -> i32;
}

#[test]
fn the_shipped_alert_rules_pass_promtool_check_and_their_unit_tests() {
    let dir = root().join("contrib/prometheus");
    for args in [&["check", "rules", "vigil.rules.yml"][..], &["test", "rules", "vigil.rules.test.yml"]] {
        let out = Command::new("promtool").args(args).current_dir(&dir).output().unwrap();
        assert_eq!(code(&out), 0, "promtool {args:?}: {}", both(&out));
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("contrib/grafana/vigil-dashboard.json")).unwrap())
            .unwrap();
    let variables: Vec<&str> =
        dashboard["templating"]["list"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(variables, ["datasource", "job", "db"]);
}

fn panel<'a>(dashboard: &'a serde_json::Value, title: &str) -> &'a serde_json::Value {
    let panels = dashboard["panels"].as_array().unwrap();
    panels.iter().find(|p| p["title"].as_str().unwrap().starts_with(title)).unwrap_or_else(|| panic!("{title}"))
}

/// What the review found wrong in the shipped dashboard: a table fed a range query, a backup age of 56 years
/// for a database without a backup, and "ok" for a status that may be info.
#[test]
fn the_dashboard_tables_are_instant_backup_age_skips_no_backup_and_0_reads_ok_or_info() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("contrib/grafana/vigil-dashboard.json")).unwrap())
            .unwrap();
    for table in dashboard["panels"].as_array().unwrap().iter().filter(|p| p["type"] == "table") {
        for target in table["targets"].as_array().unwrap() {
            assert_eq!(
                (&target["instant"], &target["format"]),
                (&serde_json::json!(true), &serde_json::json!("table"))
            );
        }
    }
    let top = panel(&dashboard, "Top statements");
    assert_eq!(top["fieldConfig"]["defaults"]["unit"], "percentunit", "seconds per second is a share");
    let age = panel(&dashboard, "Backup age")["targets"][0]["expr"].as_str().unwrap();
    assert!(age.contains("vigil_backup_last_success_timestamp_seconds{") && age.ends_with("> 0)"), "{age}");
    let none = panel(&dashboard, "No verified backup")["targets"][0]["expr"].as_str().unwrap();
    assert!(none.contains("== bool 0"), "{none}");
    let mapping = &panel(&dashboard, "Health checks")["fieldConfig"]["defaults"]["mappings"][0]["options"]["0"];
    assert_eq!(mapping["text"], "ok/info");
}

#[test]
fn vigil_metrics_in_the_sqlite3_shell_and_python_on_read_only_connections() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    demo_db(&db);
    let before = sha256sum(&db);
    let sql = "SELECT metric, type, labels, value FROM vigil_metrics('{\"integrity\":\"quick\"}')";
    let shell = shell_run(&db, &format!(".load {}\n.mode json\n{sql};\n", library().display()), &["-readonly"]);
    assert!(shell.status.success() && shell.stderr.is_empty(), "{}", both(&shell));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&shell.stdout).unwrap();
    let find = |rows: &[serde_json::Value], metric: &str| rows.iter().find(|r| r["metric"] == metric).cloned();
    assert_eq!(find(&rows, "vigil_up").unwrap()["value"], 1.0);
    assert_eq!(find(&rows, "vigil_integrity_errors").unwrap()["value"], 0.0);
    let status = find(&rows, "vigil_health_status").unwrap();
    let labels: serde_json::Value = serde_json::from_str(status["labels"].as_str().unwrap()).unwrap();
    assert!(labels["check"].is_string() && labels.get("db").is_none(), "{labels}");

    let script = format!(
        "import sqlite3, json, sys\n\
         c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)\n\
         c.enable_load_extension(True)\nc.load_extension(sys.argv[2])\n\
         rows = c.execute(\"{}\").fetchall()\n\
         print(json.dumps([[m, t, json.loads(l), v] for m, t, l, v in rows]))\n",
        sql.replace('"', "\\\"")
    );
    let out = Command::new("/usr/bin/python3")
        .args(["-c", &script, db.to_str().unwrap(), library().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", both(&out));
    let py: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let names = |rows: &[serde_json::Value], key: &str| -> Vec<String> {
        rows.iter().map(|r| if key.is_empty() { r[0].as_str() } else { r[key].as_str() }.unwrap().to_string()).collect()
    };
    assert_eq!(names(&py, ""), names(&rows, "metric"), "same metrics in both hosts");
    assert!(py.iter().all(|r| ["gauge", "counter", "histogram"].contains(&r[1].as_str().unwrap())));

    // Bad options name the function and the option.
    for (options, expected) in [
        (r#"{"statements":-1}"#, "vigil_metrics: bad options: option \"statements\""),
        (r#"{"bogus":1}"#, "vigil_metrics: bad options: unknown option \"bogus\""),
        (r#"{"query_stats":"later"}"#, "option \"query_stats\" must be one of auto, saved, live, none"),
        (r#"{"backups":"/no/such/dir"}"#, "option \"backups\": /no/such/dir is not a directory"),
        (r#"{"integrity":"deep"}"#, "option \"integrity\" must be one of none, quick, full"),
        (r#"{"schema":"nope"}"#, "vigil_metrics: "),
        ("not json", "options are not valid JSON"),
    ] {
        let script = format!(".load {}\nSELECT * FROM vigil_metrics('{options}');\n", library().display());
        let err = text(&shell_run(&db, &script, &[]).stderr);
        assert!(err.contains(expected) && err.lines().count() == 1 && err.len() < 500, "{options}: {err}");
    }
    assert_eq!(sha256sum(&db), before);
}

/// Query statistics saved by an application process, exported by `vigil metrics --statements N`: the
/// per-statement calls equal what the application's own query_stats() counted, and the histogram is sound.
#[test]
fn saved_query_statistics_are_exported_with_the_calls_the_application_counted() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    demo_db(&db);
    let conn = Rusqlite::open(&db);
    if conn.query_row("SELECT query_stats_start()", [], |_| Ok(())).is_err() {
        eprintln!("SKIPPED: query_stats_start() is not on this branch yet");
        return;
    }
    for i in 0..50 {
        conn.query_row("SELECT count(*) FROM customers WHERE id > ?1", [i], |_| Ok(())).unwrap();
    }
    for i in 0..20 {
        conn.execute("UPDATE products SET price_cents = price_cents WHERE id = ?1", [i]).unwrap();
    }
    let counted: Vec<(String, i64)> = {
        let mut stmt = conn.prepare("SELECT queryid, calls FROM query_stats ORDER BY total_ms DESC").unwrap();
        stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?.to_string(), r.get(1)?))).unwrap().map(Result::unwrap).collect()
    };
    conn.query_row("SELECT query_stats_save()", [], |_| Ok(())).unwrap();
    drop(conn);
    let (status, out, err) = metrics(dir.path(), &["app.db", "--statements", "100"]);
    assert_eq!(status, 0, "{err}");
    let samples = assert_sound(&out);
    for (queryid, calls) in &counted {
        let exported = value(&samples, "vigil_statement_calls_total", &[("queryid", queryid)]);
        assert_eq!(exported, Some(*calls as f64), "queryid {queryid}\n{out}");
    }
    let total: i64 = counted.iter().map(|(_, c)| c).sum();
    assert!(value(&samples, "vigil_query_duration_seconds_count", &[]).unwrap() >= total as f64);
    assert!(samples.iter().filter(|s| s.name == "vigil_query_duration_seconds_bucket").count() == 17);
    let (_, top2, _) = metrics(dir.path(), &["app.db", "--statements", "2"]);
    let top2 = assert_sound(&top2);
    assert_eq!(top2.iter().filter(|s| s.name == "vigil_statement_calls_total").count(), 2.min(counted.len()));
}

#[test]
fn the_point_in_time_window_is_exported_when_the_journal_is_enabled_and_only_then() {
    let dir = scratch();
    let d = dir.path();
    demo_db(&d.join("plain.db"));
    demo_db(&d.join("pit.db"));
    let before = now();
    let enable = "SELECT pit_enable('*');\nUPDATE products SET price_cents = price_cents + 1 WHERE id < 5;\n";
    let out = shell_run(&d.join("pit.db"), &format!(".load {}\n{enable}", library().display()), &[]);
    assert!(out.status.success() && out.stderr.is_empty(), "{}", both(&out));
    let after = now();
    let digest = sha256sum(&d.join("pit.db"));
    let (status, out, err) = metrics(d, &["plain.db", "pit.db"]);
    assert_eq!(status, 0, "{err}");
    let samples = assert_sound(&out);
    let pit = |name: &str, db: &str| value(&samples, name, &[("db", db)]);
    let start = pit("vigil_pit_window_start_timestamp_seconds", "pit.db").unwrap();
    let last = pit("vigil_pit_last_change_timestamp_seconds", "pit.db").unwrap();
    assert!(before - 1.0 <= start && start <= last && last <= after + 1.0, "{before} {start} {last} {after}");
    assert!(pit("vigil_pit_journal_rows", "pit.db").unwrap() >= 4.0);
    for name in ["vigil_pit_window_start_timestamp_seconds", "vigil_pit_journal_rows"] {
        assert_eq!(pit(name, "plain.db"), None, "{name} without a journal");
    }
    assert_eq!(sha256sum(&d.join("pit.db")), digest);
}

/// An unknown threshold is the command line's mistake: exit 64 naming it, before any database is read, in
/// `vigil metrics` and `vigil serve` alike (it made every database `unknown`, `vigil_up 0` and /health 503).
#[test]
fn an_unknown_threshold_is_a_usage_error_not_a_fleet_of_unknown_databases() {
    let dir = scratch();
    let db = dir.path().join("a.db");
    demo_db(&db);
    let metrics = std::process::Command::new(cli_binary())
        .args(["metrics", "--threshold", "last_backup=none,none"])
        .arg(&db)
        .output()
        .unwrap();
    let serve = std::process::Command::new(cli_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--count", "1", "--threshold", "last_backup=none"])
        .arg(&db)
        .output()
        .unwrap();
    for out in [metrics, serve] {
        assert_eq!(code(&out), 64, "{}", both(&out));
        assert!(text(&out.stderr).contains("--threshold: unknown threshold \"last_backup\""), "{}", both(&out));
        assert!(text(&out.stderr).contains("last_backup_hours"), "the known names are listed: {}", both(&out));
        assert!(out.stdout.is_empty());
    }
}
