//! Backup and export directories against hostile and unusual files: planted manifests, FIFOs and devices,
//! a user's look-alike temporary names, private databases, invalid UTF-8 paths, same-millisecond backups,
//! ambiguous destinations, full disks and long table names. Everything goes through the real hosts and the
//! real `vigil` binary.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value as Json;
use vigil_tests::*;

/// How long anything here may take before it counts as hung.
const PROMPT: Duration = Duration::from_secs(30);

fn sql_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Runs a command, killed after `PROMPT` (a regression then fails instead of hanging the suite).
fn run_within(command: &mut Command, stdin: &str) -> Output {
    use std::io::Write;
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    let script = stdin.to_string();
    std::thread::spawn(move || input.write_all(script.as_bytes()));
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > PROMPT {
            let _ = child.kill();
            panic!("{command:?} still ran after {PROMPT:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The sqlite3 shell with vigil, under umask 022, killed when it hangs: the first value, or the error.
fn shell(db: &Path, sql: &str) -> Result<String, String> {
    let script = format!(".bail on\n.load {}\n.mode list\n{sql};\n", library().display());
    let out = run_within(Command::new("sh").args(["-c", "umask 022 && exec sqlite3 \"$0\""]).arg(db), &script);
    if !out.status.success() || !out.stderr.is_empty() {
        return Err(text(&out.stderr));
    }
    Ok(text(&out.stdout).trim().to_string())
}

/// rusqlite's bundled SQLite in a thread, given up on when it hangs.
fn rusqlite(db: &Path, sql: &str) -> Result<String, String> {
    let (db, sql, shown) = (db.to_path_buf(), sql.to_string(), sql.to_string());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let conn = Rusqlite::open(&db);
        let _ = tx.send(conn.query_row(&sql, [], |r| r.get::<_, String>(0)).map_err(|e| e.to_string()));
    });
    rx.recv_timeout(PROMPT).unwrap_or_else(|_| panic!("rusqlite: {shown} still ran after {PROMPT:?}: it hangs"))
}

/// Both hosts, as (name, run).
type Run = fn(&Path, &str) -> Result<String, String>;
const HOSTS: [(&str, Run); 2] = [("sqlite3 shell", shell), ("rusqlite", rusqlite)];

/// The `vigil` binary under umask 022, killed when it hangs.
fn vigil(args: &[&OsStr]) -> Output {
    let mut command = Command::new("sh");
    command.args(["-c", "umask 022 && exec \"$0\" \"$@\""]).arg(cli_binary()).args(args).env_remove("VIGIL_EXTENSION");
    run_within(&mut command, "")
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn json(out: Result<String, String>, what: &str) -> Json {
    serde_json::from_str(&out.unwrap_or_else(|e| panic!("{what}: {e}"))).unwrap()
}

fn backup_to(run: Run, db: &Path, dest: &str, options: &str) -> Json {
    json(run(db, &format!("SELECT backup_to({}, {})", sql_text(dest), sql_text(options))), dest)
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn set_age(path: &Path, seconds: u64) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(seconds)).unwrap();
}

/// A copy of a real manifest in `dir` under `manifest_name`, naming `file`, older than everything.
fn plant_manifest(real: &Json, dir: &Path, manifest_name: &str, file: &str, bytes: u64) -> PathBuf {
    let mut planted = real.clone();
    planted["file"] = Json::from(file);
    planted["bytes"] = Json::from(bytes);
    planted["created_at"] = Json::from("2020-01-01T00:00:00.000Z");
    planted["verification"]["result"] = Json::from("skipped");
    let path = dir.join(manifest_name);
    std::fs::write(&path, planted.to_string()).unwrap();
    path
}

fn manifest_of(artifact: &str) -> Json {
    serde_json::from_str(&std::fs::read_to_string(format!("{artifact}.vigil.json")).unwrap()).unwrap()
}

#[test]
fn retention_never_follows_a_planted_manifest_out_of_its_directory() {
    for (host, run) in HOSTS {
        let dir = scratch();
        let db = dir.path().join("app.db");
        demo_db(&db);
        let backups = dir.path().join("backups");
        std::fs::create_dir(&backups).unwrap();
        // Victims another directory's backups and a nested file, each with a manifest beside it (retention
        // deletes an artifact only with its manifest).
        let other = dir.path().join("other");
        let victims: Vec<PathBuf> =
            ["other/x.db", "other/y.db", "backups/a/b.db"].iter().map(|n| dir.path().join(n)).collect();
        for victim in &victims {
            std::fs::create_dir_all(victim.parent().unwrap()).unwrap();
            std::fs::write(victim, "precious").unwrap();
            std::fs::write(format!("{}.vigil.json", victim.display()), "{}").unwrap();
        }
        let first = backup_to(run, &db, &format!("{}/", backups.display()), "{}");
        let real = manifest_of(first["path"].as_str().unwrap());
        let fifo = backups.join("fifo.db");
        assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let planted = [
            plant_manifest(&real, &backups, "abs.db.vigil.json", &victims[0].to_string_lossy(), 8),
            plant_manifest(&real, &backups, "up.db.vigil.json", "../other/y.db", 8),
            plant_manifest(&real, &backups, "nested.db.vigil.json", "a/b.db", 8),
            plant_manifest(&real, &backups, "fifo.db.vigil.json", "fifo.db", 0),
        ];
        let out = backup_to(run, &db, &format!("{}/", backups.display()), r#"{"keep":1}"#);
        for victim in &victims {
            let left = std::fs::read_to_string(victim)
                .unwrap_or_else(|e| panic!("{host}: {} deleted: {e}: {out}", victim.display()));
            assert_eq!(left, "precious", "{host}: {} survives", victim.display());
        }
        assert!(other.join("x.db.vigil.json").exists() && other.join("y.db.vigil.json").exists(), "{host}: {out}");
        assert!(fifo.exists(), "{host}: a FIFO is not a backup to delete: {out}");
        let ignored: Vec<&str> =
            out["retention"]["ignored"].as_array().unwrap().iter().map(|i| i["path"].as_str().unwrap()).collect();
        for manifest in &planted {
            assert!(ignored.contains(&manifest.to_str().unwrap()), "{host}: {} reported: {out}", manifest.display());
            assert!(manifest.exists(), "{host}: vigil does not delete what it did not create");
        }
        assert!(out["retention"]["ignored"][0]["reason"].as_str().unwrap().contains("not a plain file name"), "{out}");
        let listed = run(
            &db,
            &format!(
                r#"SELECT group_concat(sha256_status, ' | ') FROM backup_list({}, '{{"ignored":true}}')"#,
                sql_text(&backups.to_string_lossy())
            ),
        );
        assert!(listed.as_deref().unwrap_or_default().contains("not a plain file name"), "{host}: {listed:?}");
    }
}

#[test]
fn manifests_naming_a_device_or_a_fifo_fail_promptly() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    demo_db(&db);
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let made = backup_to(rusqlite, &db, &format!("{}/", backups.display()), "{}");
    let real = manifest_of(made["path"].as_str().unwrap());
    let fifo = backups.join("fifo.db");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    std::os::unix::fs::symlink("/dev/zero", backups.join("zero.db")).unwrap();
    // bytes 0: /dev/zero and an empty FIFO pass a size check, so only refusing them keeps the hash from hanging.
    let manifests = [
        (plant_manifest(&real, &backups, "fifo.db.vigil.json", "fifo.db", 0), "is a FIFO, not a regular file"),
        (plant_manifest(&real, &backups, "zero.db.vigil.json", "zero.db", 0), "is a device, not a regular file"),
        (plant_manifest(&real, &backups, "dev.db.vigil.json", "/dev/zero", 0), "is not a plain file name"),
    ];
    for (host, run) in HOSTS {
        for (manifest, expected) in &manifests {
            // A drill that fails (`"ok": false`), or an error: either way promptly, saying why.
            let out = run(&db, &format!("SELECT backup_verify({})", sql_text(&manifest.to_string_lossy())));
            let said = out.clone().unwrap_or_else(|e| e);
            assert!(said.contains(expected), "{host}: {said}");
            if let Ok(drill) = out {
                assert_eq!(json(Ok(drill.clone()), host)["ok"], false, "{host}: {drill}");
            }
        }
        let list = backups.to_string_lossy();
        let statuses = run(
            &db,
            &format!(
                r#"SELECT group_concat(sha256_status, ' | ') FROM backup_list({}, '{{"hash":true}}')"#,
                sql_text(&list)
            ),
        );
        let statuses = statuses.unwrap_or_else(|e| panic!("{host}: {e}"));
        assert!(statuses.contains("unreadable: is a FIFO"), "{host}: {statuses}");
        assert!(statuses.contains("unreadable: is a device"), "{host}: {statuses}");
    }
    let out = vigil(&[os("backups"), backups.as_os_str(), os("--hash")]);
    assert_eq!(out.status.code(), Some(2), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("ignored"), "{}", text(&out.stdout));
    for (manifest, _) in &manifests {
        let out = vigil(&[os("verify"), manifest.as_os_str()]);
        assert_eq!(out.status.code(), Some(2), "{}{}", text(&out.stdout), text(&out.stderr));
    }
}

#[test]
fn restore_refuses_devices_the_backup_itself_and_other_backups() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    demo_db(&db);
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let first = backup_to(rusqlite, &db, &format!("{}/", backups.display()), "{}");
    let second = backup_to(rusqlite, &db, &format!("{}/", backups.display()), "{}");
    let (first, second) = (first["path"].as_str().unwrap(), second["path"].as_str().unwrap());
    let dev_before = names(Path::new("/dev"));
    let cases = [
        ("/dev/full", "it is a device"),
        ("/dev/null", "it is a device"),
        (first, "onto itself"),
        (second, "it is a vigil backup"),
        (&format!("{second}.vigil.json"), "it is a vigil backup"),
    ];
    for (host, run) in HOSTS {
        for (target, expected) in cases {
            let err = run(&db, &format!("SELECT backup_restore({}, {})", sql_text(first), sql_text(target)))
                .expect_err(target);
            assert!(err.contains(expected), "{host}: {target}: {err}");
        }
    }
    assert_eq!(names(Path::new("/dev")), dev_before, "nothing created in /dev");
    for backup in [first, second] {
        let out = json(rusqlite(&db, &format!("SELECT backup_verify({})", sql_text(backup))), backup);
        assert_eq!(out["ok"], true, "{backup} still verifies: {out}");
    }
    let out = vigil(&[os("restore"), os(first), os("/dev/full")]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("it is a device"), "{}", text(&out.stderr));
}

#[test]
fn the_sweep_removes_only_vigils_own_stale_temporaries_and_reports_them() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    demo_db(&db);
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let user = ["report.vigil-tmp-draft", ".notes.vigil-tmp-draft", ".x.vigil-tmp-12"];
    for name in user {
        std::fs::write(backups.join(name), "mine").unwrap();
        set_age(&backups.join(name), 3600);
    }
    let stale = backups.join(".app.db.vigil-tmp-999999-3");
    std::fs::write(&stale, "crashed run").unwrap();
    set_age(&stale, 3600);
    let out = backup_to(shell, &db, &format!("{}/", backups.display()), "{}");
    for name in user {
        assert_eq!(std::fs::read_to_string(backups.join(name)).unwrap(), "mine", "{name} survives: {out}");
    }
    assert!(!stale.exists(), "a crashed run's temporary file is removed");
    assert_eq!(out["removed_temporaries"], serde_json::json!([stale.to_string_lossy()]), "{out}");
    // A killed export's staging directory goes too, with its files; a user's directory of that look stays.
    let staging = backups.join(".export.vigil-tmp-999999-4");
    let users_dir = backups.join("drafts.vigil-tmp-1-2");
    for dir in [&staging, &users_dir] {
        std::fs::create_dir(dir).unwrap();
        std::fs::write(dir.join("t.csv"), "x").unwrap();
        assert!(Command::new("touch").args(["-d", "1 hour ago"]).arg(dir).status().unwrap().success());
    }
    let out = json(shell(&db, &format!("SELECT export_to({}, 'csv')", sql_text(&backups.to_string_lossy()))), "export");
    assert!(!staging.exists(), "{out}");
    assert!(users_dir.join("t.csv").exists(), "{out}");
    assert_eq!(out["removed_temporaries"], serde_json::json!([staging.to_string_lossy()]), "{out}");
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_private_database_gets_private_backups_restores_and_exports() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    demo_db(&db);
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let mut outputs: Vec<PathBuf> = Vec::new();
    for options in ["{}", r#"{"compress":"zstd"}"#] {
        let made = backup_to(shell, &db, &format!("{}/", backups.display()), options);
        let path = PathBuf::from(made["path"].as_str().unwrap());
        outputs.extend([path.clone(), PathBuf::from(made["manifest"].as_str().unwrap())]);
    }
    let out = vigil(&[os("backup"), db.as_os_str(), backups.join("cli.db.gz").as_os_str(), os("--gzip")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    outputs.push(backups.join("cli.db.gz"));
    let backup = outputs[0].to_string_lossy().into_owned();
    let restored = dir.path().join("restored.db");
    json(
        shell(&db, &format!("SELECT backup_restore({}, {})", sql_text(&backup), sql_text(&restored.to_string_lossy()))),
        "new",
    );
    outputs.push(restored.clone());
    let compressed = outputs[2].to_string_lossy().into_owned();
    let from_zstd = dir.path().join("from-zstd.db");
    json(
        shell(
            &db,
            &format!("SELECT backup_restore({}, {})", sql_text(&compressed), sql_text(&from_zstd.to_string_lossy())),
        ),
        "zstd",
    );
    outputs.push(from_zstd);
    let replaced = json(shell(&db, &format!("SELECT backup_restore({})", sql_text(&backup))), "live");
    outputs.push(PathBuf::from(replaced["safety_backup"]["path"].as_str().unwrap()));
    let exported = dir.path().join("export");
    std::fs::create_dir(&exported).unwrap();
    for format in ["csv", "sql"] {
        let out = json(
            shell(&db, &format!("SELECT export_to({}, '{format}')", sql_text(&exported.to_string_lossy()))),
            format,
        );
        outputs.extend(out["files"].as_array().unwrap().iter().map(|f| PathBuf::from(f["path"].as_str().unwrap())));
    }
    assert!(outputs.len() > 12, "{outputs:?}");
    for path in &outputs {
        assert_eq!(mode(path), 0o600, "{} under umask 022", path.display());
    }
    let fresh = dir.path().join("fresh");
    json(shell(&db, &format!("SELECT export_to({}, 'sql')", sql_text(&fresh.to_string_lossy()))), "fresh");
    assert_eq!(mode(&fresh), 0o700, "the export directory it created");
    assert_eq!(mode(&fresh.join("app.sql")), 0o600);
}

#[test]
fn invalid_utf8_paths_are_refused_not_renamed() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    demo_db(&db);
    let mut bad = dir.path().as_os_str().as_bytes().to_vec();
    bad.extend_from_slice(b"/caf\xe9.db");
    let hex: String = bad.iter().map(|b| format!("{b:02x}")).collect();
    for (host, run) in HOSTS {
        for sql in [
            format!("SELECT backup_to(CAST(X'{hex}' AS TEXT))"),
            format!("SELECT export_to(CAST(X'{hex}' AS TEXT), 'csv')"),
            format!("SELECT backup_verify(CAST(X'{hex}' AS TEXT))"),
        ] {
            let err = run(&db, &sql).expect_err(&sql);
            assert!(err.contains("not valid UTF-8"), "{host}: {sql}: {err}");
        }
        // A NUL inside the text: the system would read the name only up to it.
        let nul: String = format!("{}/n\0x/", dir.path().display()).bytes().map(|b| format!("{b:02x}")).collect();
        let sql = format!("SELECT backup_to(CAST(X'{nul}' AS TEXT))");
        let err = run(&db, &sql).expect_err(&sql);
        assert!(err.contains("contains a NUL character"), "{host}: {sql}: {err}");
    }
    assert_eq!(names(dir.path()), ["app.db"], "nothing written under another name");
    let bad_dest = OsStr::from_bytes(&bad);
    let out = vigil(&[os("backup"), db.as_os_str(), bad_dest]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("DEST") && text(&out.stderr).contains("not valid UTF-8"),
        "{}",
        text(&out.stderr)
    );
    let out = vigil(&[os("export"), db.as_os_str(), bad_dest, os("--format"), os("csv")]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert_eq!(names(dir.path()), ["app.db"], "nothing written under another name");
}

#[test]
fn backups_started_in_the_same_millisecond_get_distinct_names() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    create_db(&db, "PRAGMA journal_mode=wal; CREATE TABLE t(x); INSERT INTO t VALUES (1);");
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let dest = format!("{}/", backups.display());
    let mut collided = false;
    for _round in 0..40 {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
        let runs: Vec<_> = (0..4)
            .map(|_| {
                let (db, dest, barrier) = (db.clone(), dest.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let conn = Rusqlite::open(&db);
                    conn.busy_timeout(Duration::from_secs(30)).unwrap();
                    barrier.wait();
                    let sql = format!(r#"SELECT backup_to({}, '{{"log":false}}')"#, sql_text(&dest));
                    conn.query_row(&sql, [], |r| r.get::<_, String>(0)).map_err(|e| e.to_string())
                })
            })
            .collect();
        let results: Vec<Result<String, String>> = runs.into_iter().map(|r| r.join().unwrap()).collect();
        let paths: Vec<String> = results
            .iter()
            .map(|r| {
                let out: Json = serde_json::from_str(r.as_ref().expect("every concurrent backup succeeds")).unwrap();
                out["path"].as_str().unwrap().to_string()
            })
            .collect();
        let mut distinct = paths.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 4, "{paths:?}");
        if paths.iter().any(|p| p.ends_with("Z-2.db")) {
            collided = true;
            for path in &paths {
                assert_eq!(
                    manifest_of(path)["file"].as_str().unwrap(),
                    Path::new(path).file_name().unwrap().to_str().unwrap()
                );
                let out = json(rusqlite(&db, &format!("SELECT backup_verify({})", sql_text(path))), path);
                assert_eq!(out["ok"], true, "{out}");
            }
            break;
        }
    }
    assert!(collided, "no two backups started in the same millisecond in 40 rounds of 4");
}

#[test]
fn destinations_follow_one_rule() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    demo_db(&db);
    let d = dir.path();
    let out = vigil(&[os("backup"), db.as_os_str(), d.join("nodir").as_os_str()]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("end it with '/'"), "{}", text(&out.stderr));
    assert!(!d.join("nodir").exists(), "no file named like a directory");
    let new_dir = format!("{}/new/deeper/", d.display());
    let out = vigil(&[os("backup"), db.as_os_str(), os(&new_dir), os("--zstd")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let made = names(&d.join("new/deeper"));
    assert!(made.len() == 2 && made[0].ends_with(".db.zst"), "{made:?}");
    for (name, flag) in
        [("x.db.gz", "--zstd"), ("x.db.zst", "--gzip"), ("x.db.zst", "--verify=quick"), ("x.db", "--gzip")]
    {
        let out = vigil(&[os("backup"), db.as_os_str(), d.join(name).as_os_str(), os(flag)]);
        assert_eq!(out.status.code(), Some(64), "{name} {flag}: {}", text(&out.stderr));
        assert!(!d.join(name).exists());
    }
    let out = vigil(&[os("export"), db.as_os_str(), d.join("exported").as_os_str(), os("--format"), os("csv")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(d.join("exported/customers.csv").is_file());
    for (host, run) in HOSTS {
        let sub = format!("{}/sql-{}/", d.display(), host.len());
        let out = backup_to(run, &db, &sub, "{}");
        assert!(out["path"].as_str().unwrap().starts_with(&sub), "{host}: {out}");
        let into = format!("{}/export-{}", d.display(), host.len());
        json(run(&db, &format!("SELECT export_to({}, 'json')", sql_text(&into))), host);
        assert!(Path::new(&into).join("orders.json").is_file(), "{host}");
        let err = run(&db, &format!("SELECT export_to({}, 'json')", sql_text(&db.to_string_lossy()))).unwrap_err();
        assert!(err.contains("is not a directory"), "{host}: {err}");
    }
}

#[test]
fn an_export_that_fills_the_disk_leaves_no_final_files_and_a_rerun_works() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    create_db(
        &db,
        "CREATE TABLE a(x); INSERT INTO a VALUES ('small');
         CREATE TABLE b(x); INSERT INTO b VALUES ('small');
         CREATE TABLE big(x);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 2000)
         INSERT INTO big SELECT hex(randomblob(500)) FROM c;",
    );
    let test = "an_export_that_fills_the_disk_leaves_no_final_files_and_a_rerun_works";
    let Some(small) = Tmpfs::mount(512 * 1024, "", test) else { return };
    let into = small.path().join("export");
    std::fs::create_dir(&into).unwrap();
    for (host, run) in HOSTS {
        let err = run(&db, &format!("SELECT export_to({}, 'csv')", sql_text(&into.to_string_lossy()))).unwrap_err();
        assert!(err.contains("the disk is full") && err.contains("table \"big\""), "{host}: {err}");
        assert_eq!(names(&into), Vec::<String>::new(), "{host}: no file under a final name, no temporary left");
    }
    let grown = Command::new("mount").args(["-o", "remount,size=8m"]).arg(small.path()).status().unwrap();
    assert!(grown.success());
    let out = json(shell(&db, &format!("SELECT export_to({}, 'csv')", sql_text(&into.to_string_lossy()))), "rerun");
    assert_eq!(out["files"].as_array().unwrap().len(), 3, "{out}");
    assert_eq!(names(&into), ["a.csv", "b.csv", "big.csv"]);
}

#[test]
fn a_300_character_table_name_exports_under_a_bounded_name() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    let long = "t".repeat(300);
    let accented = "é".repeat(120);
    create_db(
        &db,
        &format!(
            "CREATE TABLE \"{long}\"(x); INSERT INTO \"{long}\" VALUES (1);
             CREATE TABLE \"{long}x\"(x); INSERT INTO \"{long}x\" VALUES (2);
             CREATE TABLE \"{accented}\"(x); INSERT INTO \"{accented}\" VALUES (3);"
        ),
    );
    for (host, run) in HOSTS {
        for format in ["csv", "json"] {
            let into = dir.path().join(format!("{format}-{}", host.len()));
            std::fs::create_dir(&into).unwrap();
            let out =
                json(run(&db, &format!("SELECT export_to({}, '{format}')", sql_text(&into.to_string_lossy()))), host);
            let files = out["files"].as_array().unwrap();
            assert_eq!(files.len(), 3, "{host}: {out}");
            for file in files {
                let name = Path::new(file["path"].as_str().unwrap()).file_name().unwrap().len();
                assert!(name <= 255, "{host}: {file}");
                assert_eq!(file["rows"], 1, "{host}: {file}");
            }
            assert_eq!(names(&into).len(), 3, "{host}: distinct files");
        }
    }
}
