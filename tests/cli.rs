//! The `vigil` binary: output, JSON, and the exit codes monitoring systems read.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value as Json;
use vigil_tests::*;

fn vigil(args: &[&str]) -> Output {
    Command::new(cli_binary()).args(args).env_remove("VIGIL_EXTENSION").output().unwrap()
}

/// Thresholds that depend on the machine (disk usage) are disabled so that the figures are the database's.
const STEADY: &[&str] = &["--threshold", "disk_used_pct=none,none"];

fn health(db: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["health", db.to_str().unwrap()];
    args.extend_from_slice(STEADY);
    args.extend_from_slice(extra);
    vigil(&args)
}

/// Makes a verified backup of `db` into a directory beside it, so that `last_backup` is ok.
fn backed_up(db: &Path) {
    let dir = db.with_extension("backups");
    std::fs::create_dir_all(&dir).unwrap();
    Rusqlite.query(db, &format!("SELECT backup_to('{}/')", dir.display())).unwrap();
}

/// Whether the human report has a row for `check` with `status`, whatever the column widths.
fn has_row(out: &Output, check: &str, status: &str) -> bool {
    text(&out.stdout).lines().any(|line| line.split_whitespace().take(2).eq([check, status]))
}

#[test]
fn exit_codes_follow_the_monitoring_convention() {
    let dir = scratch();
    let healthy = dir.path().join("healthy.db");
    create_db(&healthy, "CREATE TABLE t(x INTEGER PRIMARY KEY, y); INSERT INTO t VALUES (1, 'a');");
    let out = health(&healthy, &[]);
    assert_eq!(code(&out), 1, "never backed up: {}{}", text(&out.stdout), text(&out.stderr));
    assert!(has_row(&out, "last_backup", "WARNING"), "{}", text(&out.stdout));
    backed_up(&healthy);
    let out = health(&healthy, &[]);
    assert_eq!(code(&out), 0, "ok: {}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("status: OK"));

    let demo = dir.path().join("demo.db");
    demo_db(&demo);
    let out = health(&demo, &[]);
    assert_eq!(code(&out), 1, "warning: {}", text(&out.stdout));
    assert!(has_row(&out, "freelist_pct", "WARNING"), "{}", text(&out.stdout));

    let out = health(&demo, &["--threshold", "freelist_pct=10,25"]);
    assert_eq!(code(&out), 2, "critical by threshold: {}", text(&out.stdout));

    let corrupt = dir.path().join("corrupt.db");
    demo_db(&corrupt);
    let page = root_page(&corrupt, "orders") + 40;
    flip_bytes(&corrupt, (page - 1) * 4096, 12);
    let out = health(&corrupt, &["--quick"]);
    assert_eq!(code(&out), 2, "corrupt: {}{}", text(&out.stdout), text(&out.stderr));
    assert!(has_row(&out, "integrity", "CRITICAL"), "{}", text(&out.stdout));
    let out = health(&corrupt, &["--fast"]);
    assert_eq!(code(&out), 1, "--fast does not scan: {}", text(&out.stdout));

    let out = health(&dir.path().join("missing.db"), &[]);
    assert_eq!(code(&out), 3, "missing file");
    assert!(text(&out.stderr).contains("missing.db: no such file"), "{}", text(&out.stderr));
    assert!(!dir.path().join("missing.db").exists(), "never creates a database");

    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not a database ".repeat(500)).unwrap();
    let out = health(&notes, &[]);
    assert_eq!(code(&out), 3, "not a database: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("file is not a database"));
}

#[test]
fn usage_errors_have_their_own_code() {
    let dir = scratch();
    let db = dir.path().join("a.db");
    create_db(&db, "CREATE TABLE t(x)");
    let cases: Vec<Vec<&str>> = vec![
        vec!["health"],
        vec!["health", db.to_str().unwrap(), "--bogus"],
        vec!["health", db.to_str().unwrap(), "--fast", "--full"],
        vec!["health", db.to_str().unwrap(), "--threshold", "freelist_pct"],
        vec!["health", db.to_str().unwrap(), "--threshold", "freelist_pct=lots"],
        vec!["health", db.to_str().unwrap(), "--threshold", "no_such_check=1"],
        vec!["health", db.to_str().unwrap(), "--threshold", "freelist_pct=-3"],
        vec!["frobnicate"],
    ];
    for args in cases {
        let out = vigil(&args);
        assert_eq!(code(&out), 64, "{args:?}: {}", text(&out.stderr));
        assert!(!text(&out.stderr).is_empty());
    }
    assert_eq!(code(&vigil(&["--help"])), 0);
    assert_eq!(code(&vigil(&["--version"])), 0);
}

#[test]
fn json_output_matches_the_exit_code() {
    let dir = scratch();
    let db = dir.path().join("demo.db");
    demo_db(&db);
    let out = health(&db, &["--json", "--full", "--tables"]);
    let report: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "warning");
    assert_eq!(code(&out), 1);
    let checks: Vec<&str> = report["checks"].as_array().unwrap().iter().map(|c| c["check"].as_str().unwrap()).collect();
    assert!(checks.contains(&"foreign_keys") && checks.contains(&"fragmentation"), "{checks:?}");
    let tables = report["tables"].as_array().unwrap();
    assert!(tables.iter().any(|t| t["name"] == "orders" && t["rows"] == 10353));
}

#[test]
fn the_extension_is_found_beside_the_binary_or_named() {
    let dir = scratch();
    let db = dir.path().join("a.db");
    create_db(&db, "CREATE TABLE t(x)");
    backed_up(&db);
    let out = vigil(&["--extension", "/nonexistent/libvigil.so", "health", db.to_str().unwrap()]);
    assert_eq!(code(&out), 3);
    assert!(
        text(&out.stderr).contains("cannot load the vigil extension /nonexistent/libvigil.so"),
        "{}",
        text(&out.stderr)
    );
    let lib = library().with_extension("so");
    let out = Command::new(cli_binary())
        .args(["health", db.to_str().unwrap(), "--fast"])
        .args(STEADY)
        .env("VIGIL_EXTENSION", lib)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
}

#[test]
fn snapshot_records_history_and_demo_refuses_to_overwrite() {
    let dir = scratch();
    let db = dir.path().join("shop.db");
    let out = vigil(&["demo", db.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("created"));
    let out = vigil(&["demo", db.to_str().unwrap()]);
    assert_eq!(code(&out), 64);
    assert!(text(&out.stderr).contains("exists; pass --force"));

    let out = health(&db, &["--snapshot", "--json"]);
    let report: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["snapshot"]["id"], 1);
    let out = health(&db, &["--fast", "--json"]);
    let report: Json = serde_json::from_slice(&out.stdout).unwrap();
    let integrity = report["checks"].as_array().unwrap().iter().find(|c| c["check"] == "integrity").unwrap().clone();
    assert!(integrity["detail"].as_str().unwrap().starts_with("last quick check"), "{integrity}");
}

#[test]
fn backup_commands_verify_restore_and_report_failures_by_exit_code() {
    let dir = scratch();
    let db = dir.path().join("shop.db");
    demo_db(&db);
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let (db_arg, dir_arg) = (db.to_str().unwrap(), backups.to_str().unwrap());
    let out = vigil(&["backup", db_arg, dir_arg, "--zstd", "--keep", "2", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let made: Json = serde_json::from_slice(&out.stdout).unwrap();
    let artifact = made["path"].as_str().unwrap().to_string();
    assert!(artifact.ends_with(".db.zst") && made["verified"] == true, "{made}");
    assert!(text(&out.stderr).is_empty(), "no progress output when stderr is not a terminal");

    let out = vigil(&["verify", &artifact]);
    assert_eq!(code(&out), 0, "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("OK, restorable"));
    let restored = dir.path().join("restored.db");
    let out = vigil(&["restore", &artifact, restored.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(content_digest(&restored), content_digest(&db));

    let out = vigil(&["backups", dir_arg, "--hash"]);
    assert_eq!(code(&out), 0);
    assert!(text(&out.stdout).contains("1 backups in"), "{}", text(&out.stdout));
    flip_bytes(Path::new(&artifact), 100, 1);
    assert_eq!(code(&vigil(&["backups", dir_arg, "--hash"])), 2, "a damaged backup is critical");
    let out = vigil(&["verify", &artifact]);
    assert_eq!(code(&out), 2);
    assert!(text(&out.stdout).contains("FAILED: sha256"), "{}", text(&out.stdout));
    let out = vigil(&["restore", &artifact, restored.to_str().unwrap()]);
    assert_eq!(code(&out), 2);
    assert!(text(&out.stderr).contains("failed verification, nothing was restored"), "{}", text(&out.stderr));

    assert_eq!(code(&vigil(&["backup", db_arg, &format!("{dir_arg}/x.db"), "--gzip"])), 64);
    assert_eq!(code(&vigil(&["backup", db_arg, dir_arg, "--keep", "0"])), 64);
    assert_eq!(code(&vigil(&["backup", db_arg, &format!("{dir_arg}/missing/x.db")])), 2);
    assert_eq!(code(&vigil(&["backup", "/nonexistent.db", dir_arg])), 3);

    let exported = dir.path().join("csv");
    std::fs::create_dir(&exported).unwrap();
    let out = vigil(&["export", db_arg, exported.to_str().unwrap(), "--format", "csv"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(exported.join("orders.csv").exists());
}

#[test]
fn a_hot_journal_beside_a_database_is_named_with_what_to_do() {
    let dir = scratch();
    let db = dir.path().join("crashed.db");
    demo_db(&db);
    // A journal no writer holds: SQLite takes it for a crashed writer's and must roll it back before reading.
    std::fs::write(dir.path().join("crashed.db-journal"), b"left by a crashed writer").unwrap();
    let out = health(&db, &[]);
    assert_eq!(code(&out), 3, "{}", both(&out));
    let said = text(&out.stderr);
    assert!(said.contains("crashed.db") && said.contains("hot journal"), "{said}");
    assert!(said.contains("vigil health --snapshot"), "{said}");
    // The advice works: a read-write open rolls the journal back, and the report is then read.
    let out = health(&db, &["--snapshot"]);
    assert!(code(&out) <= 2, "{}", both(&out));
    assert!(code(&health(&db, &[])) <= 2);
}

#[test]
fn control_characters_in_a_file_name_never_reach_the_terminal_raw() {
    let dir = scratch();
    let name = dir.path().join("gone\u{1b}M\r.db");
    for args in [vec!["health", name.to_str().unwrap()], vec!["metrics", name.to_str().unwrap()]] {
        let out = vigil(&args);
        assert_eq!(code(&out), 3, "{}", both(&out));
        let said = text(&out.stderr);
        assert!(!said.contains('\u{1b}') && !said.contains('\r'), "{args:?}: {said:?}");
        assert!(said.contains("gone\\x1bM"), "{args:?}: {said:?}");
    }
}
