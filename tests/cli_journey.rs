//! The `vigil` binary as a user and cron meet it: backups that count from any directory, interrupts,
//! the errors a user reads, and what the terminal shows.

use std::path::Path;
use std::process::{Command, Output};

use vigil_tests::*;

fn vigil_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(cli_binary()).current_dir(dir).args(args).env_remove("VIGIL_EXTENSION").output().unwrap()
}

/// Sends SIG`name` (INT, TERM…) to a child with kill(1), as a user's shell or cron would.
fn send_signal(child: &std::process::Child, name: &str) {
    let sent = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap();
    assert!(sent.success(), "kill -{name} {}", child.id());
}

fn vigil(args: &[&str]) -> Output {
    vigil_in(Path::new("/"), args)
}

/// Thresholds that depend on the machine (disk usage) are disabled so that the figures are the database's.
const STEADY: &[&str] = &["--threshold", "disk_used_pct=none,none"];

/// The status of `check` in the human report, whatever the column widths.
fn status_of(out: &Output, check: &str) -> Option<String> {
    text(&out.stdout).lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some(check)).then(|| words.next().unwrap_or_default().to_string())
    })
}

/// The cron recipe of docs/cli.md: a nightly `vigil backup` run from one directory with relative paths, and
/// `vigil health --fast` run every minute from another: the backup counts (last_backup ok).
#[test]
fn a_cli_backup_counts_for_health_run_from_another_directory() {
    let root = scratch();
    let (x, y) = (root.path().join("x"), root.path().join("y"));
    std::fs::create_dir_all(x.join("backups")).unwrap();
    std::fs::create_dir_all(&y).unwrap();
    create_db(&x.join("app.db"), "CREATE TABLE t(a); INSERT INTO t VALUES (1);");

    let out = vigil_in(&x, &["backup", "app.db", "backups/", "--gzip"]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    assert!(!text(&out.stderr).contains("not recorded"), "{}", both(&out));

    let db = x.join("app.db");
    let mut args = vec!["health", db.to_str().unwrap(), "--fast"];
    args.extend_from_slice(STEADY);
    let out = vigil_in(&y, &args);
    assert_eq!(status_of(&out, "last_backup").as_deref(), Some("ok"), "{}", both(&out));
    assert_eq!(code(&out), 0, "{}", both(&out));
}

/// A database on a read-only medium is backed up, and the terminal says the backup was not recorded.
#[test]
fn a_backup_that_cannot_be_recorded_says_so_on_the_terminal() {
    let Some(volume) = Tmpfs::mount(4 << 20, "", "a_backup_that_cannot_be_recorded_says_so_on_the_terminal") else {
        return;
    };
    let db = volume.path().join("ro.db");
    create_db(&db, "CREATE TABLE t(a); INSERT INTO t VALUES (1);");
    let remounted =
        Command::new("mount").args(["-o", "remount,ro"]).arg(volume.path()).status().is_ok_and(|s| s.success());
    assert!(remounted, "cannot remount the tmpfs read-only");
    let backups = scratch();
    for json in [false, true] {
        let mut args = vec!["backup", db.to_str().unwrap(), backups.path().to_str().unwrap()];
        if json {
            args.push("--json");
        }
        let out = vigil(&args);
        assert_eq!(code(&out), 0, "the backup itself succeeds: {}", both(&out));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("not recorded") && stderr.contains("read-only") && stderr.contains("ro.db"),
            "--json {json}: {}",
            both(&out)
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// A database of `mib` MiB of random (incompressible) rows: gzip takes seconds on it.
fn big_db(path: &Path, mib: usize) {
    create_db(
        path,
        &format!(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {})
             INSERT INTO t(b) SELECT randomblob(4000) FROM n;",
            mib * 256
        ),
    );
}

/// Starts `vigil backup DB DIR --gzip` and waits until its temporary files exist in DIR.
fn backup_under_way(db: &Path, dir: &Path) -> std::process::Child {
    let child = Command::new(cli_binary())
        .args(["backup", db.to_str().unwrap(), dir.to_str().unwrap(), "--gzip"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while names(dir).iter().all(|n| !n.contains(".vigil-tmp-")) {
        assert!(started.elapsed().as_secs() < 60, "the backup never started writing");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    child
}

/// SIGINT and SIGTERM during a gzip backup of a 40 MiB database: exit 130, "interrupted" on stderr, no
/// temporary nor final file left, the database untouched.
#[test]
fn an_interrupted_backup_stops_cleans_up_and_exits_130() {
    let dir = scratch();
    let db = dir.path().join("big.db");
    big_db(&db, 40);
    let before = sha256sum(&db);
    for signal in ["INT", "TERM"] {
        let backups = dir.path().join(format!("backups-{signal}"));
        std::fs::create_dir(&backups).unwrap();
        let child = backup_under_way(&db, &backups);
        send_signal(&child, signal);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(130), "SIG{signal}: {}", both(&out));
        assert!(text(&out.stderr).contains(&format!("interrupted by SIG{signal}")), "{}", both(&out));
        assert_eq!(names(&backups), Vec::<String>::new(), "SIG{signal}: nothing left in the backup directory");
        assert_eq!(sha256sum(&db), before, "the database is untouched");
    }
}

/// kill -9 leaves temporaries: `vigil backups` lists them, and the next backup (once they are over a minute
/// old) removes them.
#[test]
fn temporaries_of_a_killed_backup_are_listed_then_removed() {
    let dir = scratch();
    let db = dir.path().join("big.db");
    big_db(&db, 40);
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let mut child = backup_under_way(&db, &backups);
    child.kill().unwrap();
    child.wait().unwrap();
    let left: Vec<String> = names(&backups).into_iter().filter(|n| n.contains(".vigil-tmp-")).collect();
    assert!(!left.is_empty(), "kill -9 leaves the temporaries: {:?}", names(&backups));

    let out = vigil(&["backups", backups.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    assert!(text(&out.stdout).contains("a temporary file of a vigil run"), "{}", both(&out));
    for name in &left {
        assert!(text(&out.stdout).contains(name.as_str()), "{name} listed: {}", both(&out));
        let aged = Command::new("touch").args(["-d", "2 minutes ago"]).arg(backups.join(name)).status().unwrap();
        assert!(aged.success());
    }
    let out = vigil(&["backup", db.to_str().unwrap(), backups.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    for name in &left {
        let line =
            format!("removed a stale temporary file left by an interrupted run: {}", backups.join(name).display());
        assert!(text(&out.stdout).contains(&line), "{line}: {}", both(&out));
    }
    let now: Vec<String> = names(&backups).into_iter().filter(|n| n.contains(".vigil-tmp-")).collect();
    assert_eq!(now, Vec::<String>::new(), "the next run removed them");
}

/// Item 17: errors name the file and the fix in CLI terms; locked and not-a-database exit 3 in backup and
/// export as in health.
#[test]
fn cli_errors_name_the_file_and_the_fix_in_cli_terms() {
    let dir = scratch();
    let db = dir.path().join("a.db");
    create_db(&db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);");
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let (db_arg, dir_arg) = (db.to_str().unwrap(), backups.to_str().unwrap());

    let lock = rusqlite::Connection::open(&db).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE; INSERT INTO t VALUES (2);").unwrap();
    let export_dir = dir.path().join("export");
    for args in [
        vec!["health", db_arg, "--busy-timeout", "50"],
        vec!["backup", db_arg, dir_arg, "--busy-timeout", "50"],
        vec!["export", db_arg, export_dir.to_str().unwrap(), "--format", "csv", "--busy-timeout", "50"],
    ] {
        let out = vigil(&args);
        assert_eq!(code(&out), 3, "{args:?}: {}", both(&out));
        let stderr = text(&out.stderr);
        assert!(stderr.contains(db_arg) && stderr.contains("database is locked"), "{args:?}: {stderr}");
        assert!(stderr.contains("--busy-timeout"), "{args:?}: {stderr}");
    }
    lock.execute_batch("ROLLBACK").unwrap();

    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, "not a database ".repeat(100)).unwrap();
    for args in [
        vec!["backup", junk.to_str().unwrap(), dir_arg],
        vec!["export", junk.to_str().unwrap(), dir_arg, "--format", "sql"],
    ] {
        let out = vigil(&args);
        assert_eq!(code(&out), 3, "{args:?}: {}", both(&out));
        assert!(text(&out.stderr).contains("junk.db: file is not a database"), "{}", both(&out));
    }

    let out = vigil(&["health", dir_arg]);
    assert_eq!(code(&out), 3, "{}", both(&out));
    assert!(text(&out.stderr).contains("is a directory"), "{}", both(&out));

    let missing = dir.path().join("gone.db.gz");
    for command in ["verify", "restore"] {
        let mut args = vec![command, missing.to_str().unwrap()];
        if command == "restore" {
            args.push(db_arg);
        }
        let out = vigil(&args);
        assert_eq!(code(&out), 2, "{}", both(&out));
        let stderr = text(&out.stderr);
        assert!(stderr.contains("gone.db.gz: no such file") && !stderr.contains("manifest"), "{stderr}");
    }

    let target = backups.join("x.db");
    assert_eq!(code(&vigil(&["backup", db_arg, target.to_str().unwrap()])), 0);
    let out = vigil(&["backup", db_arg, target.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("--overwrite") && !stderr.contains("overwrite\":true"), "{stderr}");
    assert!(!stderr.contains("backup_to"), "CLI terms, not SQL: {stderr}");

    let fresh = dir.path().join("fresh.db");
    create_db(&fresh, "CREATE TABLE t(x)");
    let out = vigil(&["health", fresh.to_str().unwrap(), "--fast"]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("vigil backup") && !stdout.contains("SELECT backup_to"), "{stdout}");
}

/// Item 18: no Rust debug formatting in errors, and a huge argument is echoed only in part.
#[test]
fn errors_show_sql_values_and_bounded_arguments() {
    let dir = scratch();
    let db = dir.path().join("a.db");
    create_db(&db, "CREATE TABLE t(x)");
    let huge = "x".repeat(1 << 20);
    let cases = [
        "SELECT maintain(0)".to_string(),
        "SELECT backup_to(x'00ff')".to_string(),
        "SELECT export_to('e', 'xml')".to_string(),
        "SELECT wal_checkpoint(1.5)".to_string(),
        "SELECT * FROM health_report(x'01')".to_string(),
        format!("SELECT maintain('{huge}')"),
        format!("SELECT * FROM health_report('{huge}')"),
        format!("SELECT backup_to('b/', '{{\"{huge}\":1}}')"),
        format!("SELECT * FROM health_report('{{\"thresholds\":{{\"{huge}\":1}}}}')"),
        format!("SELECT backup_verify('{huge}')"),
        format!("SELECT * FROM backup_list('{huge}')"),
        format!("SELECT vacuum_if_fragmented('{huge}')"),
    ];
    for sql in &cases {
        for host in hosts() {
            let error = host.query(&db, sql).unwrap_err();
            let shown = &sql[..sql.len().min(60)];
            assert!(error.len() < 2500, "{}: {shown}: a {}-byte error", host.name(), error.len());
            for debug in ["Integer(", "Real(", "Blob(", "Some(", "Text(", "None"] {
                assert!(!error.contains(debug), "{}: {shown}: {error}", host.name());
            }
        }
    }
    let long = "x".repeat(100_000); // a command-line argument is at most 128 KiB
    let out = vigil(&["health", db.to_str().unwrap(), "--threshold", &long]);
    assert_eq!(code(&out), 64);
    assert!(out.stderr.len() < 2500, "{} bytes", out.stderr.len());
}

fn vigil_columns(columns: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(cli_binary());
    command.args(args).env_remove("VIGIL_EXTENSION").env_remove("COLUMNS");
    if let Some(columns) = columns {
        command.env("COLUMNS", columns);
    }
    command.output().unwrap()
}

fn widest_line(out: &Output) -> usize {
    text(&out.stdout).lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

/// Item 19: the health table fits $COLUMNS (else 120 columns when not a terminal): hashes shortened, long
/// details wrapped below their row; --wide shows everything.
#[test]
fn the_health_table_fits_the_width_and_wide_shows_everything() {
    let dir = scratch();
    let db = dir.path().join("shop.db");
    demo_db(&db);
    let page = root_page(&db, "orders") + 40;
    flip_bytes(&db, (page - 1) * 4096, 12);
    let path = db.to_str().unwrap();
    let health = ["health", path, "--full", "--threshold", "disk_used_pct=none,none"];
    for (columns, limit) in [(Some("80"), 80), (Some("100"), 100), (None, 120)] {
        let out = vigil_columns(columns, &health);
        assert_eq!(code(&out), 2, "{}", both(&out));
        assert!(widest_line(&out) <= limit, "COLUMNS={columns:?}: {}", both(&out));
        assert!(text(&out.stdout).contains("integrity") && text(&out.stdout).contains("schema_signature"));
        let maintain = vigil_columns(columns, &["maintain", path, "--level", "full"]);
        assert!(widest_line(&maintain) <= limit, "maintain COLUMNS={columns:?}: {}", both(&maintain));
    }
    let hash = {
        let out = vigil_columns(None, &["health", path, "--fast", "--json"]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let checks = report["checks"].as_array().unwrap().clone();
        checks.iter().find(|c| c["check"] == "schema_signature").unwrap()["value"].as_str().unwrap().to_string()
    };
    assert_eq!(hash.len(), 64);
    let narrow = vigil_columns(Some("80"), &health);
    assert!(!text(&narrow.stdout).contains(&hash), "the hash is shortened");
    let mut wide_args = health.to_vec();
    wide_args.push("--wide");
    let wide = vigil_columns(Some("80"), &wide_args);
    assert!(text(&wide.stdout).contains(&hash), "--wide: {}", both(&wide));
    assert!(widest_line(&wide) > 120, "--wide keeps every detail on its row");
}

/// Runs `vigil ARGS` with stderr on a pseudo-terminal (Python's pty module) and stdout into `stdout`;
/// returns everything drawn on the terminal.
fn on_terminal(stdout: &Path, args: &[&str]) -> (String, i32) {
    const SCRIPT: &str = r#"
import os, pty, subprocess, sys
master, slave = pty.openpty()
with open(sys.argv[1], "w") as out:
    p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=out, stderr=slave)
os.close(slave)
data = b""
while True:
    try:
        chunk = os.read(master, 65536)
    except OSError:
        break
    if not chunk:
        break
    data += chunk
sys.stdout.buffer.write(data)
sys.exit(p.wait())
"#;
    let out = Command::new("python3")
        .args(["-c", SCRIPT, stdout.to_str().unwrap(), cli_binary().to_str().unwrap()])
        .args(args)
        .env_remove("VIGIL_EXTENSION")
        .output()
        .unwrap();
    (text(&out.stdout), out.status.code().unwrap())
}

/// Item 20: with stdout redirected and stderr a terminal, the progress is drawn on stderr with real figures
/// for the copy and the compression, a spinner (not a bar at 0 of 0) for the check; stdout stays clean.
#[test]
fn progress_is_drawn_on_a_terminal_stderr_with_real_figures() {
    let dir = scratch();
    let db = dir.path().join("big.db");
    big_db(&db, 40);
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let stdout = dir.path().join("stdout.txt");
    let args = ["backup", db.to_str().unwrap(), backups.to_str().unwrap(), "--gzip", "--verify", "full"];
    let (terminal, status) = on_terminal(&stdout, &args);
    assert_eq!(status, 0, "{terminal}");
    let printed = std::fs::read_to_string(&stdout).unwrap();
    assert!(printed.contains("sha256:") && !printed.contains('\x1b'), "stdout is the report only: {printed}");
    assert!(terminal.contains(": gzip") && terminal.contains(" MiB/"), "progress in bytes: {terminal:?}");
    assert!(!terminal.contains("/0 B"), "no bar of an unknown total: {terminal:?}");
}

/// Item 23: `--keep-daily` alone keeps only the newest backup of each day, as its help says.
#[test]
fn keep_daily_alone_keeps_the_newest_of_the_day_as_its_help_says() {
    let dir = scratch();
    let db = dir.path().join("a.db");
    create_db(&db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);");
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let mut made = Vec::new();
    for _ in 0..3 {
        let out = vigil(&["backup", db.to_str().unwrap(), backups.to_str().unwrap(), "--keep-daily", "7", "--json"]);
        assert_eq!(code(&out), 0, "{}", both(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        made.push(json["path"].as_str().unwrap().to_string());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let left: Vec<String> = names(&backups).into_iter().filter(|n| n.ends_with(".db")).collect();
    let newest = Path::new(made.last().unwrap()).file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(left, vec![newest], "only the newest of today is kept");
    let help = text(&vigil(&["backup", "--help"]).stdout);
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        help.contains(
            "Keep only the newest backup of each of the last N days (older ones of the same day are deleted)"
        ),
        "{help}"
    );
    assert!(!help.contains("Also keep"), "{help}");
}

/// SIGINT while the copy is being checked (integrity_check, on a connection of vigil's own) is answered at
/// once too: exit 130, nothing left. The phase is read from the progress drawn on a pseudo-terminal.
#[test]
fn an_interrupt_during_the_check_stops_the_backup() {
    const SCRIPT: &str = r#"
import os, pty, signal, subprocess, sys
master, slave = pty.openpty()
p = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
os.close(slave)
data, sent = b"", False
while True:
    try:
        chunk = os.read(master, 65536)
    except OSError:
        break
    if not chunk:
        break
    data += chunk
    if not sent and b"full check" in data:
        p.send_signal(signal.SIGINT)
        sent = True
sys.stdout.write("sent" if sent else "never saw the check")
sys.exit(p.wait())
"#;
    let dir = scratch();
    let db = dir.path().join("indexed.db");
    // Many indexed rows: integrity_check checks every index entry, so the check lasts for seconds.
    create_db(
        &db,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500000)
         INSERT INTO t(a, b) SELECT hex(randomblob(8)), hex(randomblob(8)) FROM n;
         CREATE INDEX ta ON t(a); CREATE INDEX tb ON t(b);",
    );
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let out = Command::new("python3")
        .args(["-c", SCRIPT, cli_binary().to_str().unwrap(), "backup", db.to_str().unwrap()])
        .args([backups.to_str().unwrap(), "--verify", "full"])
        .env_remove("VIGIL_EXTENSION")
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "sent", "{}", both(&out));
    assert_eq!(code(&out), 130, "{}", both(&out));
    assert_eq!(names(&backups), Vec::<String>::new());
}

/// A signal is never ignored in silence: SIGINT at moments spread over a whole zstd backup (copy, check,
/// compression, read-back) either stops it (exit 130, "interrupted", nothing published) or, when it came too
/// late to stop, the backup completes and says so (new-user review: a zstd backup finished and exited 0 without
/// a word).
#[test]
fn a_signal_during_a_zstd_backup_stops_it_or_is_acknowledged() {
    let dir = scratch();
    let db = dir.path().join("big.db");
    big_db(&db, 40);
    let backup = |backups: &Path| {
        std::fs::create_dir(backups).unwrap();
        Command::new(cli_binary())
            .args(["backup", db.to_str().unwrap(), backups.to_str().unwrap(), "--zstd"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let started = std::time::Instant::now();
    let whole = backup(&dir.path().join("whole")).wait_with_output().unwrap();
    assert_eq!(code(&whole), 0, "{}", both(&whole));
    let duration = started.elapsed();
    let mut signalled = 0;
    for step in 1..=16 {
        let backups = dir.path().join(format!("b{step}"));
        let mut child = backup(&backups);
        std::thread::sleep(duration.mul_f64(0.045 * step as f64)); // until 72 % of the first run's time
        if child.try_wait().unwrap().is_some() {
            // Finished before the signal (a loaded machine made the first run slower): no signal to answer.
            continue;
        }
        let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
        signalled += 1;
        let out = child.wait_with_output().unwrap();
        match code(&out) {
            130 => {
                assert!(text(&out.stderr).contains("interrupted by SIGINT"), "{}", both(&out));
                assert_eq!(names(&backups), Vec::<String>::new(), "step {step}: nothing published");
            }
            0 => assert!(text(&out.stderr).contains("SIGINT came when"), "step {step}: silent: {}", both(&out)),
            other => panic!("step {step}: exit {other}: {}", both(&out)),
        }
    }
    assert!(signalled >= 4, "only {signalled} of 16 backups were still running when signalled");
}

/// Ctrl-C while a command waits for another process's lock (SQLite's own busy wait sleeps through
/// sqlite3_interrupt): it stops at once, exit 130, and says nothing was changed — not "database is locked".
#[test]
fn a_signal_ends_a_wait_for_a_lock_at_once() {
    let dir = scratch();
    let db = dir.path().join("a.db");
    create_db(&db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);");
    let lock = rusqlite::Connection::open(&db).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE; INSERT INTO t VALUES (2);").unwrap();
    for signal in ["INT", "TERM"] {
        let child = Command::new(cli_binary())
            .args(["health", db.to_str().unwrap(), "--fast", "--busy-timeout", "60000"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(700));
        let sent = std::time::Instant::now();
        send_signal(&child, signal);
        let out = child.wait_with_output().unwrap();
        assert!(sent.elapsed().as_secs() < 5, "SIG{signal} waited for the lock: {:?}", sent.elapsed());
        assert_eq!(out.status.code(), Some(130), "SIG{signal}: {}", both(&out));
        assert!(
            text(&out.stderr).contains(&format!("interrupted by SIG{signal}: nothing was changed")),
            "{}",
            both(&out)
        );
    }
    lock.execute_batch("ROLLBACK").unwrap();
}

/// A FIFO or a device in a database's place (a hostile or broken deployment) is reported unreadable at once:
/// SQLite's open of a FIFO would block until a writer comes, and no signal ends that wait.
#[test]
fn a_fifo_or_device_in_place_of_a_database_is_refused_not_waited_on() {
    let dir = scratch();
    let good = dir.path().join("good.db");
    create_db(&good, "CREATE TABLE t(x)");
    let fifo = dir.path().join("fifo.db");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let device = dir.path().join("zero.db");
    std::os::unix::fs::symlink("/dev/zero", &device).unwrap();
    let (fifo_arg, device_arg, good_arg) = (fifo.to_str().unwrap(), device.to_str().unwrap(), good.to_str().unwrap());
    let bounded = |args: &[&str]| {
        let out = Command::new("timeout").arg("20").arg(cli_binary()).args(args).output().unwrap();
        assert_ne!(code(&out), 124, "{args:?} hung on the FIFO");
        out
    };
    let out = bounded(&["metrics", fifo_arg, device_arg, good_arg]);
    assert_eq!(code(&out), 3, "{}", both(&out));
    let exposition = text(&out.stdout);
    for (db, up) in [("fifo.db", 0), ("zero.db", 0), ("good.db", 1)] {
        assert!(exposition.contains(&format!("vigil_up{{db=\"{db}\"}} {up}")), "{db}: {exposition}");
    }
    assert!(text(&out.stderr).contains("is a FIFO (named pipe), not a database file"), "{}", both(&out));
    assert!(text(&out.stderr).contains("is a device, not a database file"), "{}", both(&out));
    let out = bounded(&["health", fifo_arg]);
    assert_eq!(code(&out), 3, "{}", both(&out));
    let out = bounded(&["serve", fifo_arg, good_arg, "--listen", "127.0.0.1:0", "--count", "1"]);
    assert_eq!(code(&out), 3, "a refresh that could not read a database: {}", both(&out));
    assert!(text(&out.stderr).contains("FIFO"), "{}", both(&out));
}

/// Ctrl-C (or cron's SIGTERM on timeout) during `vigil metrics --textfile`: the collection under way is cut
/// short, which must not be published as a database being down — exit 130, the previous file kept as it was.
#[test]
fn an_interrupted_metrics_run_publishes_nothing() {
    let dir = scratch();
    let databases = dir.path().join("dbs");
    std::fs::create_dir(&databases).unwrap();
    demo_db(&databases.join("d0.db"));
    for i in 1..200 {
        std::fs::copy(databases.join("d0.db"), databases.join(format!("d{i}.db"))).unwrap();
    }
    let textfile = dir.path().join("textfile");
    std::fs::create_dir(&textfile).unwrap();
    let pattern = format!("{}/*.db", databases.display());
    let out = vigil(&["metrics", &pattern, "--textfile", textfile.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let published = std::fs::read(textfile.join("vigil.prom")).unwrap();
    for signal in ["INT", "TERM"] {
        let child = Command::new(cli_binary())
            .args(["metrics", &pattern, "--full", "--textfile", textfile.to_str().unwrap()])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(400));
        send_signal(&child, signal);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(130), "SIG{signal}: {}", both(&out));
        assert!(text(&out.stderr).contains("no metrics were written"), "{}", both(&out));
        assert_eq!(std::fs::read(textfile.join("vigil.prom")).unwrap(), published, "SIG{signal}: the file was kept");
        let names: Vec<_> = std::fs::read_dir(&textfile).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["vigil.prom"], "no temporary file left");
    }
}
