//! backup_to, backup_list, backup_verify, backup_restore in real hosts, with real files, writer processes,
//! killed processes and flipped bytes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde_json::Value as Json;
use vigil_tests::*;

fn sql_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn backup_sql(dest: &Path, options: &str) -> String {
    format!("SELECT backup_to({}, {})", sql_text(&dest.to_string_lossy()), sql_text(options))
}

/// A database of about `rows` × 1 KB in a filler table plus an (empty) writer table `w`.
fn sized_db(path: &Path, rows: i64, journal_mode: &str) {
    create_db(
        path,
        &format!(
            "PRAGMA journal_mode={journal_mode};
             CREATE TABLE filler(id INTEGER PRIMARY KEY, body TEXT);
             CREATE INDEX filler_body ON filler(substr(body, 1, 20));
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows})
             INSERT INTO filler SELECT x, hex(randomblob(500)) FROM c;
             CREATE TABLE w(id INTEGER PRIMARY KEY, at TEXT);"
        ),
    );
}

fn manifest_of(artifact: &Path) -> Json {
    let text = std::fs::read_to_string(format!("{}.vigil.json", artifact.display())).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Decompresses an artifact with the reference tool into `out`.
fn unpack(artifact: &Path, out: &Path) {
    let tool = if artifact.to_string_lossy().ends_with(".gz") { "gzip" } else { "zstd" };
    let data = Command::new(tool).args(["-d", "-c"]).arg(artifact).output().unwrap();
    assert!(data.status.success(), "{tool} -d failed on {}", artifact.display());
    std::fs::write(out, data.stdout).unwrap();
}

#[test]
fn a_backup_is_a_verified_identical_copy_with_a_manifest() {
    for host in hosts() {
        for mode in ["delete", "wal"] {
            let dir = scratch();
            let db = dir.path().join("app.db");
            demo_db(&db);
            Connection::open(&db).unwrap().pragma_update(None, "journal_mode", mode).unwrap();
            let backups = dir.path().join("backups");
            std::fs::create_dir(&backups).unwrap();
            let digest = content_digest(&db);
            let out = call(host.as_ref(), &db, &format!("SELECT backup_to({})", sql_text(&backups.to_string_lossy())));
            let context = format!("{} {mode}: {out}", host.name());
            let artifact = PathBuf::from(out["path"].as_str().unwrap());
            let name = artifact.file_name().unwrap().to_string_lossy().into_owned();
            assert!(name.starts_with("app-") && name.ends_with("Z.db"), "{context}");
            assert_eq!(out["verified"], true, "{context}");
            assert_eq!(out["method"], "file_copy", "{context}");
            assert_eq!(out["journal_mode"], mode, "{context}");
            assert_eq!(out["sha256"].as_str().unwrap(), sha256sum(&artifact), "{context}");
            assert_eq!(out["bytes"].as_u64().unwrap(), std::fs::metadata(&artifact).unwrap().len(), "{context}");
            assert_eq!(
                out["pages"].as_i64().unwrap() * out["page_size"].as_i64().unwrap(),
                out["bytes"].as_i64().unwrap()
            );
            assert_eq!(content_digest(&artifact), digest, "{context}");
            assert_eq!(quick_check(&artifact), "ok", "{context}");
            let manifest = manifest_of(&artifact);
            for key in ["id", "created_at", "sqlite_version", "vigil_version", "sha256", "database_sha256"] {
                assert!(manifest[key].as_str().is_some_and(|v| !v.is_empty()), "{context}: manifest {key}");
            }
            assert_eq!(manifest["source"]["path"].as_str().unwrap(), db.to_string_lossy(), "{context}");
            assert_eq!(manifest["verification"]["result"], "ok", "{context}");
            assert_eq!(manifest["compression"], "none");
            assert_eq!(manifest["file"].as_str().unwrap(), name);
            // The backup is recorded in the source database.
            let logged: i64 = Connection::open(&db)
                .unwrap()
                .query_row("SELECT count(*) FROM vigil_backup_log WHERE path = ?1", [artifact.to_str()], |r| r.get(0))
                .unwrap();
            assert_eq!(logged, 1, "{context}");
            // Nothing else is left in the directory: no temporary files, no -wal or -shm of a verification.
            let mut names: Vec<String> =
                std::fs::read_dir(&backups).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
            names.sort();
            assert_eq!(names, vec![name.clone(), format!("{name}.vigil.json")], "{context}");
            // A rollback-journal source gets no -shm from the WAL check.
            assert!(!Path::new(&format!("{}-shm", db.display())).exists() || mode == "wal", "{context}");
        }
    }
}

fn quick_check(path: &Path) -> String {
    Connection::open(path).unwrap().query_row("PRAGMA quick_check", [], |r| r.get(0)).unwrap()
}

#[test]
fn compressed_backups_are_standard_streams_that_verify_and_restore() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    sized_db(&db, 3000, "wal");
    let digest = content_digest(&db);
    for (compression, suffix) in [("gzip", "gz"), ("zstd", "zst")] {
        for host in hosts() {
            let artifact = dir.path().join(format!("app-{}.db.{suffix}", host.name().len()));
            let out = call(host.as_ref(), &db, &backup_sql(&artifact, &format!(r#"{{"compress":"{compression}"}}"#)));
            let context = format!("{} {compression}: {out}", host.name());
            assert_eq!(out["compression"], compression, "{context}");
            assert!(out["bytes"].as_u64().unwrap() < out["database_bytes"].as_u64().unwrap() * 6 / 10, "{context}");
            assert_eq!(out["sha256"].as_str().unwrap(), sha256sum(&artifact), "{context}");
            let unpacked = dir.path().join(format!("unpacked-{suffix}.db"));
            unpack(&artifact, &unpacked);
            assert_eq!(sha256sum(&unpacked), out["database_sha256"].as_str().unwrap(), "{context}");
            assert_eq!(content_digest(&unpacked), digest, "{context}");
            let verified =
                call(host.as_ref(), &db, &format!("SELECT backup_verify({})", sql_text(&artifact.to_string_lossy())));
            assert_eq!(verified["ok"], true, "{context}: {verified}");
            let steps: Vec<&str> =
                verified["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
            assert_eq!(steps, ["artifact", "sha256", "decompress", "header", "integrity_check"], "{context}");
            let restored = dir.path().join(format!("restored-{suffix}-{}.db", host.name().len()));
            let out = call(
                host.as_ref(),
                &db,
                &format!(
                    "SELECT backup_restore({}, {})",
                    sql_text(&artifact.to_string_lossy()),
                    sql_text(&restored.to_string_lossy())
                ),
            );
            assert_eq!(out["ok"], true, "{context}: {out}");
            assert_eq!(out["safety_backup"], Json::Null, "a new file replaces nothing");
            assert_eq!(content_digest(&restored), digest, "{context}");
            std::fs::remove_file(&unpacked).unwrap();
        }
    }
}

/// The acceptance test of consistency: a writer process commits one row at a time (ids 1, 2, 3, …) while
/// backups run; every backup holds exactly ids 1..k for some k, and passes integrity_check. The writer never
/// pauses, so in rollback mode a reader gets its lock only in the gaps between commits: the busy timeout is
/// long (60 s) for a loaded machine, where those gaps are rare.
#[test]
fn backups_under_a_steady_writer_hold_one_committed_state() {
    for mode in ["wal", "delete"] {
        let dir = scratch();
        let db = dir.path().join("busy.db");
        sized_db(&db, 30_000, mode);
        let inserts = ".timeout 60000\n".to_string()
            + &"INSERT INTO w(at) VALUES (strftime('%Y-%m-%d %H:%M:%f','now'));\n".repeat(200_000);
        let mut writer = spawn_shell(&db, &inserts);
        std::thread::sleep(Duration::from_millis(300));
        let mut last_k = 0;
        // Plain and checked; compressed and unchecked (in WAL mode streamed to the compressor, no raw copy);
        // compressed and checked (compressed behind a raw copy).
        let variants = [
            ("", r#"{"verify":"full","busy_timeout_ms":60000}"#),
            (".zst", r#"{"verify":"none","compress":"zstd","busy_timeout_ms":60000}"#),
            (".gz", r#"{"verify":"quick","compress":"gzip","busy_timeout_ms":60000}"#),
            ("", r#"{"verify":"quick","busy_timeout_ms":60000}"#),
        ];
        for (i, (host, (suffix, options))) in hosts().iter().cycle().zip(variants).enumerate() {
            let artifact = dir.path().join(format!("b{i}.db{suffix}"));
            let out = call(host.as_ref(), &db, &backup_sql(&artifact, options));
            let context = format!("{mode} backup {i} ({}, {options}): {out}", host.name());
            assert_eq!(out["verified"], !options.contains("none"), "{context}");
            let database = checked_database(&artifact, &out, &context);
            let count = assert_ids_without_gap(&database, &context);
            assert!(count > 0, "{context}: the writer committed before the backup");
            assert!(count >= last_k, "{context}");
            last_k = count;
            std::fs::remove_file(&database).unwrap();
            let _ = std::fs::remove_file(&artifact);
        }
        assert!(writer.try_wait().unwrap().is_none(), "{mode}: the writer kept writing through every backup");
        writer.kill().unwrap();
        let output = writer.wait_with_output().unwrap();
        assert!(output.stderr.is_empty(), "{mode}: writer errors: {}", String::from_utf8_lossy(&output.stderr));
    }
}

/// A thread of the test process that repeats `work` on its own connection (20 s busy timeout) until stopped.
struct LoopingWriter {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<usize>,
}

impl LoopingWriter {
    fn start(db: &Path, work: impl Fn(&Connection, &Path) + Send + 'static) -> LoopingWriter {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (db, stopped) = (db.to_path_buf(), stop.clone());
        let handle = std::thread::spawn(move || {
            let conn = Connection::open(&db).unwrap();
            conn.busy_timeout(Duration::from_secs(20)).unwrap();
            let mut rounds = 0;
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                work(&conn, &db);
                rounds += 1;
            }
            rounds
        });
        LoopingWriter { stop, handle }
    }

    /// Stops the writer; returns how many rounds it did.
    fn stop(self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

/// Sets a file's modification time to one fixed instant in the past, from another process (no descriptor of
/// ours on the file).
fn age_mtime(path: &Path) {
    let status = Command::new("touch").args(["-c", "-m", "-d", "@1700000000"]).arg(path).status().unwrap();
    assert!(status.success(), "touch failed on {}", path.display());
}

/// The database a backup holds (decompressed beside a compressed artifact by the reference tool), checked:
/// its hash is the manifest's database_sha256 and it passes quick_check.
fn checked_database(artifact: &Path, out: &Json, context: &str) -> PathBuf {
    let name = artifact.to_string_lossy();
    let database = match name.strip_suffix(".gz").or_else(|| name.strip_suffix(".zst")) {
        Some(unpacked) => {
            let unpacked = PathBuf::from(unpacked);
            unpack(artifact, &unpacked);
            unpacked
        }
        None => artifact.to_path_buf(),
    };
    assert_eq!(sha256sum(&database), out["database_sha256"].as_str().unwrap(), "{context}");
    assert_eq!(quick_check(&database), "ok", "{context}");
    database
}

/// The ids of table `w` in a copy: they must be exactly 1..count.
fn assert_ids_without_gap(database: &Path, context: &str) -> i64 {
    let (count, min, max): (i64, Option<i64>, Option<i64>) = Connection::open(database)
        .unwrap()
        .query_row("SELECT count(*), min(id), max(id) FROM w", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap();
    if count > 0 {
        assert_eq!((min, max), (Some(1), Some(count)), "{context}: ids 1..k without a gap");
    }
    count
}

/// With a rollback journal the file is copied without the lock, then compared under it. A file that has not
/// been written lately, and is not written during the copy, needs no comparison; one written just before is
/// compared (and nothing rewritten when nobody wrote during the copy).
#[test]
fn a_quiet_rollback_journal_database_is_copied_once() {
    for host in hosts() {
        let dir = scratch();
        let db = dir.path().join("quiet.db");
        sized_db(&db, 3_000, "delete");
        for (i, (aged, rechecked)) in [(true, false), (false, true)].into_iter().enumerate() {
            if aged {
                age_mtime(&db);
            } else {
                Connection::open(&db).unwrap().execute("INSERT INTO w(at) VALUES ('now')", []).unwrap();
            }
            let digest = content_digest(&db);
            let artifact = dir.path().join(format!("b{i}.db"));
            let out = call(host.as_ref(), &db, &backup_sql(&artifact, r#"{"log":false}"#));
            let context = format!("{} aged {aged}: {out}", host.name());
            assert_eq!(out["rechecked"], rechecked, "{context}");
            assert_eq!(out["rewritten_bytes"], 0, "{context}");
            assert_eq!(out["database_sha256"].as_str().unwrap(), sha256sum(&db), "{context}");
            assert_eq!(content_digest(&artifact), digest, "{context}");
        }
    }
}

/// A writer that sets the file's modification time back after every commit cannot make a rollback-journal
/// backup skip its comparison: every commit also moves the header's change counter. Each backup holds
/// exactly one committed state, and the hash and compressed stream are of the corrected copy.
#[test]
fn a_writer_hiding_its_commits_from_the_file_time_cannot_tear_a_backup() {
    let dir = scratch();
    let db = dir.path().join("sly.db");
    sized_db(&db, 30_000, "delete");
    let writer = LoopingWriter::start(&db, |conn, db| {
        // One row at the end of the file and one near its start: a copy that mixes states shows it.
        conn.execute_batch(
            "BEGIN; INSERT INTO w(at) VALUES (strftime('%Y-%m-%d %H:%M:%f','now'));
             UPDATE filler SET body = (SELECT max(id) FROM w) WHERE id = 1; COMMIT;",
        )
        .unwrap();
        age_mtime(db);
        // Pauses let most backups take their second look after the time was set back.
        std::thread::sleep(Duration::from_millis(25));
    });
    std::thread::sleep(Duration::from_millis(200));
    let variants = [
        ("", r#"{"verify":"quick","busy_timeout_ms":20000}"#),
        (".gz", r#"{"verify":"quick","compress":"gzip","busy_timeout_ms":20000}"#),
        (".zst", r#"{"verify":"none","compress":"zstd","busy_timeout_ms":20000}"#),
    ];
    let mut corrected = 0;
    for round in 0..3 {
        for (i, (host, (suffix, options))) in hosts().iter().cycle().zip(variants).enumerate() {
            let artifact = dir.path().join(format!("b{round}-{i}.db{suffix}"));
            let out = call(host.as_ref(), &db, &backup_sql(&artifact, options));
            let context = format!("backup {round}-{i} ({}, {options}): {out}", host.name());
            let database = checked_database(&artifact, &out, &context);
            let count = assert_ids_without_gap(&database, &context);
            assert!(count > 0, "{context}: the writer committed before");
            let tally: String = Connection::open(&database)
                .unwrap()
                .query_row("SELECT body FROM filler WHERE id = 1", [], |r| r.get(0))
                .unwrap();
            assert_eq!(tally, count.to_string(), "{context}: the first page and the last of one commit");
            corrected += (out["rewritten_bytes"].as_u64().unwrap() > 0) as usize;
            std::fs::remove_file(&database).unwrap();
            let _ = std::fs::remove_file(&artifact);
        }
    }
    assert!(writer.stop() > 0, "the writer committed");
    assert!(corrected > 0, "no backup caught a commit made during its copy: the test proved nothing");
}

/// The file a rollback-journal backup copies without the lock may grow and shrink under it (a writer fills a
/// table, empties it, and VACUUMs the file back down): the correction under the lock cuts or extends the copy,
/// and every backup is one committed state.
#[test]
fn a_file_that_grows_and_shrinks_during_the_copy_is_copied_as_one_state() {
    let dir = scratch();
    let db = dir.path().join("breathing.db");
    sized_db(&db, 20_000, "delete");
    Connection::open(&db).unwrap().execute_batch("CREATE TABLE churn(x)").unwrap();
    let writer = LoopingWriter::start(&db, |conn, _| {
        conn.execute_batch(
            "INSERT INTO churn SELECT randomblob(1000) FROM filler LIMIT 5000;
             DELETE FROM churn; VACUUM;",
        )
        .unwrap();
    });
    let sizes = std::collections::BTreeSet::from_iter((0..6).map(|i| {
        let artifact = dir.path().join(format!("b{i}.db"));
        let host = &hosts()[i % 2];
        let out = call(host.as_ref(), &db, &backup_sql(&artifact, r#"{"busy_timeout_ms":20000,"log":false}"#));
        let context = format!("backup {i} ({}): {out}", host.name());
        let database = checked_database(&artifact, &out, &context);
        let (filler, churn): (i64, i64) = Connection::open(&database)
            .unwrap()
            .query_row("SELECT (SELECT count(*) FROM filler), (SELECT count(*) FROM churn)", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(filler, 20_000, "{context}");
        assert!(churn == 0 || churn == 5_000, "{context}: churn {churn} is no committed state");
        out["bytes"].as_u64().unwrap()
    }));
    assert!(writer.stop() > 0, "the writer committed");
    eprintln!("backup sizes seen: {sizes:?}");
}

#[test]
fn in_memory_databases_are_copied_through_the_backup_api() {
    let dir = scratch();
    let conn = Connection::open_in_memory().unwrap();
    load(&conn);
    conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1), ('two'), (x'03');").unwrap();
    let artifact = dir.path().join("memory.db");
    let out: String = conn.query_row(&backup_sql(&artifact, "{}"), [], |r| r.get(0)).unwrap();
    let out: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(out["method"], "backup_api", "{out}");
    assert_eq!(out["verified"], true);
    assert_eq!(out["logged"], true, "the log row goes into the in-memory database itself");
    let copy = Connection::open(&artifact).unwrap();
    let n: i64 = copy.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 3);
    assert_eq!(manifest_of(&artifact)["source"]["path"], Json::Null);
}

/// Page sizes from 512 to 65536, both journal modes: backup → restore into a new file gives the same content
/// and the same bytes.
#[test]
fn every_page_size_round_trips() {
    let dir = scratch();
    for (i, page_size) in [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536].into_iter().enumerate() {
        let mode = if i % 2 == 0 { "wal" } else { "delete" };
        let db = dir.path().join(format!("p{page_size}.db"));
        create_db(&db, &format!("PRAGMA page_size={page_size}; PRAGMA journal_mode={mode}; CREATE TABLE seed(x);"));
        sized_db(&db, 400, mode);
        // Leave recent commits in the WAL so that the copy has to lay them over the file.
        let conn = Connection::open(&db).unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        conn.execute_batch("UPDATE filler SET body = upper(body) WHERE id % 3 = 0; INSERT INTO w(at) VALUES ('x');")
            .unwrap();
        let host = &hosts()[i % 2];
        let artifact = dir.path().join(format!("p{page_size}-backup.db"));
        let out = call(host.as_ref(), &db, &backup_sql(&artifact, r#"{"log":false}"#));
        assert_eq!(out["page_size"], page_size, "{out}");
        let restored = dir.path().join(format!("p{page_size}-restored.db"));
        let sql = format!(
            "SELECT backup_restore({}, {})",
            sql_text(&artifact.to_string_lossy()),
            sql_text(&restored.to_string_lossy())
        );
        let restore = call(host.as_ref(), &db, &sql);
        assert_eq!(restore["ok"], true, "{page_size}: {restore}");
        assert_eq!(content_digest(&restored), content_digest(&db), "{page_size} {mode}");
        assert_eq!(sha256sum(&restored), out["database_sha256"].as_str().unwrap());
        drop(conn);
    }
}

#[test]
fn a_flipped_byte_is_caught_and_restore_refuses() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    sized_db(&db, 2000, "wal");
    for (options, suffix) in [("{}", ""), (r#"{"compress":"gzip"}"#, ".gz"), (r#"{"compress":"zstd"}"#, ".zst")] {
        let artifact = dir.path().join(format!("b.db{suffix}"));
        let out = call(&Shell, &db, &backup_sql(&artifact, options));
        let size = out["bytes"].as_u64().unwrap();
        for offset in [size / 3, size - 20] {
            flip_bytes(&artifact, offset, 1);
            for host in hosts() {
                let context = format!("{} {options} at {offset}", host.name());
                let path = sql_text(&artifact.to_string_lossy());
                let verified = call(host.as_ref(), &db, &format!("SELECT backup_verify({path})"));
                assert_eq!(verified["ok"], false, "{context}: {verified}");
                assert!(verified["problem"].as_str().unwrap().starts_with("sha256: "), "{context}: {verified}");
                let before = std::fs::read(&db).unwrap();
                let target = dir.path().join("target.db");
                std::fs::copy(&db, &target).unwrap();
                for target_sql in ["NULL".to_string(), sql_text(&target.to_string_lossy())] {
                    let err = host.query(&db, &format!("SELECT backup_restore({path}, {target_sql})")).unwrap_err();
                    assert!(err.contains("failed verification, nothing was restored: sha256"), "{context}: {err}");
                }
                assert_eq!(std::fs::read(&db).unwrap(), before, "{context}: the live database is untouched");
                let listed = host
                    .query(
                        &db,
                        &format!(
                            "SELECT sha256_status FROM backup_list({}, '{{\"hash\":true}}')",
                            sql_text(&dir.path().to_string_lossy())
                        ),
                    )
                    .unwrap();
                assert!(listed.iter().any(|r| r["sha256_status"] == "mismatch"), "{context}: {listed:?}");
            }
            flip_bytes(&artifact, offset, 1);
        }
        // Corruption the hash cannot see because the manifest was made for it: the integrity check catches it.
        if suffix.is_empty() {
            let root = root_page(&artifact, "filler") - 1;
            let page_size = out["page_size"].as_u64().unwrap();
            flip_bytes(&artifact, root * page_size + 8, 40);
            let mut manifest = manifest_of(&artifact);
            manifest["sha256"] = Json::from(sha256sum(&artifact));
            manifest["database_sha256"] = manifest["sha256"].clone();
            std::fs::write(format!("{}.vigil.json", artifact.display()), manifest.to_string()).unwrap();
            let verified =
                call(&Shell, &db, &format!("SELECT backup_verify({})", sql_text(&artifact.to_string_lossy())));
            assert_eq!(verified["ok"], false, "{verified}");
            assert!(verified["problem"].as_str().unwrap().starts_with("integrity_check: "), "{verified}");
        }
        std::fs::remove_file(&artifact).unwrap();
        std::fs::remove_file(format!("{}.vigil.json", artifact.display())).unwrap();
    }
}

#[test]
fn restoring_into_the_live_database_keeps_what_it_replaces() {
    for host in hosts() {
        let dir = scratch();
        let db = dir.path().join("live.db");
        sized_db(&db, 500, "wal");
        let artifact = dir.path().join("good.db");
        let good = content_digest(&db);
        call(host.as_ref(), &db, &backup_sql(&artifact, "{}"));
        // A bad statement after the backup; another connection stays open through the restore.
        Connection::open(&db).unwrap().execute_batch("DELETE FROM filler WHERE id > 10; DROP TABLE w;").unwrap();
        let damaged = content_digest(&db);
        let other = Connection::open(&db).unwrap();
        let out =
            call(host.as_ref(), &db, &format!("SELECT backup_restore({})", sql_text(&artifact.to_string_lossy())));
        let context = format!("{}: {out}", host.name());
        assert_eq!(out["ok"], true, "{context}");
        assert_eq!(content_digest(&db), good, "{context}");
        let n: i64 = other.query_row("SELECT count(*) FROM filler", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 500, "{context}: the open connection sees the restored database");
        let safety = PathBuf::from(out["safety_backup"]["path"].as_str().unwrap());
        assert!(safety.file_name().unwrap().to_string_lossy().starts_with("live-before-restore-"), "{context}");
        assert_eq!(content_digest(&safety), damaged, "{context}: the replaced state is kept");
        assert_eq!(manifest_of(&safety)["verification"]["result"], "ok");
        let steps: Vec<&str> = out["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
        assert_eq!(steps, ["artifact", "sha256", "header", "integrity_check", "restore", "check"], "{context}");
    }
}

#[test]
fn retention_keeps_the_newest_and_only_touches_its_own_files() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    demo_db(&db);
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let stranger = backups.join("notes-20200101T000000.000Z.db");
    std::fs::write(&stranger, "not ours").unwrap();
    let dest = sql_text(&format!("{}/", backups.display()));
    let mut made = Vec::new();
    for _ in 0..4 {
        let out = call(&Shell, &db, &format!(r#"SELECT backup_to({dest}, '{{"keep":2}}')"#));
        made.push(out["path"].as_str().unwrap().to_string());
        std::thread::sleep(Duration::from_millis(5));
    }
    let listed = Rusqlite.query(&db, &format!("SELECT path FROM backup_list({dest})")).unwrap();
    let paths: Vec<&str> = listed.iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(paths, [made[2].as_str(), made[3].as_str()], "the last two, oldest first");
    assert!(stranger.exists(), "a file without a manifest is never deleted");
    // A backup being read (its manifest locked by a drill or restore elsewhere) is not deleted.
    let mut holder = Command::new("flock")
        .args(["-s"])
        .arg(format!("{}.vigil.json", made[2]))
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let out = call(&Shell, &db, &format!(r#"SELECT backup_to({dest}, '{{"keep":1}}')"#));
    holder.kill().unwrap();
    let _ = holder.wait();
    assert_eq!(out["retention"]["in_use"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(out["retention"]["deleted"].as_array().unwrap().len(), 1, "{out}");
    assert!(Path::new(&made[2]).exists());
}

#[test]
fn bad_destinations_and_options_get_clear_errors() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    demo_db(&db);
    let existing = dir.path().join("exists.db");
    std::fs::write(&existing, "x").unwrap();
    let d = dir.path().display();
    let cases = [
        (format!("SELECT backup_to('{d}/missing/b.db')"), "does not exist; create it first"),
        (format!("SELECT backup_to('{d}/nodir')"), "has no extension"),
        (format!(r#"SELECT backup_to('{d}/b.db.zst', '{{"compress":"gzip"}}')"#), "ends in .zst"),
        (format!("SELECT backup_to('{}')", db.display()), "is the database itself"),
        (format!(r#"SELECT backup_to('{}', '{{"overwrite":true}}')"#, db.display()), "is the database itself"),
        (format!("SELECT backup_to('{}')", existing.display()), "already exists"),
        (format!(r#"SELECT backup_to('{d}/b.db', '{{"compress":"gzip"}}')"#), "name it"),
        (format!(r#"SELECT backup_to('{d}/b.db', '{{"keep":0}}')"#), "from 1 to 100000, not 0"),
        (format!(r#"SELECT backup_to('{d}/b.db', '{{"keep_weekly":-1}}')"#), "not -1"),
        (format!(r#"SELECT backup_to('{d}/b.db', '{{"verify":"maybe"}}')"#), "one of quick, full, none"),
        (format!(r#"SELECT backup_to('{d}/b.db', '{{"compress":')"#), "not valid JSON"),
        (format!(r#"SELECT backup_to('{d}/b.db', '{{"colour":"red"}}')"#), "unknown option \"colour\""),
        (format!(r#"SELECT backup_to('{d}/b.db', '{{"schema":"nope"}}')"#), "no database named \"nope\""),
        ("SELECT backup_to('')".to_string(), "destination (a file or directory path) is missing"),
        ("SELECT backup_to(NULL)".to_string(), "is missing"),
        ("SELECT backup_to(42)".to_string(), "must be text"),
        (format!("SELECT backup_verify('{}')", existing.display()), "has no vigil manifest"),
        (format!("SELECT backup_restore('{d}/nothing.db')"), "nothing.db: no such file"),
        (format!("SELECT * FROM backup_list('{d}/missing')"), "is not a directory"),
    ];
    for host in hosts() {
        for (sql, expected) in &cases {
            let err = host.query(&db, sql).unwrap_err();
            assert!(err.contains(expected), "{}: {sql}: {err}", host.name());
        }
        assert_eq!(std::fs::read(&existing).unwrap(), b"x");
        let created: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(created.len(), 2, "{}: no file left behind: {created:?}", host.name());
        // From a trigger or a view it cannot run at all.
        create_db(&db, &format!("CREATE VIEW v AS SELECT backup_to('{d}/v.db')"));
        let err = host.query(&db, "SELECT * FROM v").unwrap_err();
        assert!(err.contains("unsafe use of backup_to"), "{}: {err}", host.name());
        create_db(&db, "DROP VIEW v");
    }
}

#[test]
fn a_full_disk_or_read_only_directory_leaves_nothing_behind() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    sized_db(&db, 3000, "wal");
    let size = std::fs::metadata(&db).unwrap().len();
    let test = "a_full_disk_or_read_only_directory_leaves_nothing_behind";
    let Some(small) = Tmpfs::mount(size / 2, "", test) else { return };
    for host in hosts() {
        let err = host.query(&db, &backup_sql(&small.path().join("b.db"), "{}")).unwrap_err();
        assert!(err.contains("the disk is full"), "{}: {err}", host.name());
        assert_eq!(std::fs::read_dir(small.path()).unwrap().count(), 0, "{}: the temporary file is gone", host.name());
    }
    let Some(read_only) = Tmpfs::mount(size * 2, ",ro", test) else { return };
    let err = Shell.query(&db, &backup_sql(&read_only.path().join("b.db"), "{}")).unwrap_err();
    assert!(err.contains("cannot create a temporary file in"), "{err}");
}

/// kill -9 of the process making a backup, at moments spread over its duration: the final name holds either
/// nothing or a complete backup that verifies.
#[test]
fn killing_a_backup_never_leaves_a_partial_file_under_the_final_name() {
    let dir = scratch();
    let db = dir.path().join("big.db");
    sized_db(&db, 20_000, "wal");
    let artifact = dir.path().join("b.db.gz");
    let script = format!(".load {}\n{};\n", library().display(), backup_sql(&artifact, r#"{"compress":"gzip"}"#));
    let started = Instant::now();
    assert!(spawn_shell(&db, &script).wait_with_output().unwrap().status.success());
    let duration = started.elapsed();
    let (mut complete, mut absent) = (0, 0);
    for step in 0..8 {
        std::fs::remove_file(&artifact).ok();
        std::fs::remove_file(format!("{}.vigil.json", artifact.display())).ok();
        let mut child = spawn_shell(&db, &script);
        std::thread::sleep(duration.mul_f64(0.1 + 0.12 * step as f64));
        child.kill().unwrap();
        child.wait().unwrap();
        if artifact.exists() {
            assert!(Command::new("gzip").arg("-t").arg(&artifact).status().unwrap().success(), "kill {step}");
            if Path::new(&format!("{}.vigil.json", artifact.display())).exists() {
                let verified =
                    call(&Shell, &db, &format!("SELECT backup_verify({})", sql_text(&artifact.to_string_lossy())));
                assert_eq!(verified["ok"], true, "kill {step}: {verified}");
            }
            complete += 1;
        } else {
            absent += 1;
        }
    }
    assert!(absent >= 2, "{absent} kills landed before the rename ({complete} after)");
    assert_eq!(quick_check(&db), "ok");
    // The killed runs' temporary files: the next backup removes those over a minute old that nobody holds,
    // and leaves a fresh one (a run that just started) and a held one (a run still writing).
    let temps = || -> Vec<PathBuf> {
        let names = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path());
        names.filter(|p| p.to_string_lossy().contains(".vigil-tmp-")).collect()
    };
    let leftovers = temps();
    assert!(!leftovers.is_empty(), "the kills before the rename left temporary files");
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for path in &leftovers {
        std::fs::File::options().write(true).open(path).unwrap().set_modified(an_hour_ago).unwrap();
    }
    let fresh = dir.path().join(".fresh.db.vigil-tmp-1-0");
    std::fs::write(&fresh, b"being written").unwrap();
    let held = dir.path().join(".held.db.vigil-tmp-1-1");
    std::fs::write(&held, b"being written").unwrap();
    std::fs::File::options().write(true).open(&held).unwrap().set_modified(an_hour_ago).unwrap();
    let mut holder = Command::new("flock").arg(&held).args(["sleep", "30"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    call(&Shell, &db, &backup_sql(&dir.path().join("next.db"), "{}"));
    holder.kill().unwrap();
    holder.wait().unwrap();
    let mut left = temps();
    left.sort();
    assert_eq!(left, [fresh, held], "stale temporary files removed, the others kept");
}

/// kill -9 during a restore into an existing file: the file holds its old content or the backup's, never
/// a mix, and passes integrity_check.
#[test]
fn killing_a_restore_leaves_the_target_as_it_was_or_restored() {
    let dir = scratch();
    let source = dir.path().join("source.db");
    sized_db(&source, 20_000, "delete");
    let artifact = dir.path().join("b.db");
    call(&Shell, &source, &backup_sql(&artifact, "{}"));
    let restored_digest = content_digest(&source);
    let target = dir.path().join("target.db");
    sized_db(&target, 15_000, "delete");
    let old_digest = content_digest(&target);
    let script = format!(
        ".load {}\nSELECT backup_restore({}, {}, '{{\"verify\":\"none\"}}');\n",
        library().display(),
        sql_text(&artifact.to_string_lossy()),
        sql_text(&target.to_string_lossy())
    );
    let pristine = std::fs::read(&target).unwrap();
    let started = Instant::now();
    assert!(spawn_shell(&db_for_restores(&dir), &script).wait_with_output().unwrap().status.success());
    let duration = started.elapsed();
    let mut outcomes = std::collections::BTreeMap::new();
    for step in 0..8 {
        std::fs::write(&target, &pristine).unwrap();
        let mut child = spawn_shell(&db_for_restores(&dir), &script);
        std::thread::sleep(duration.mul_f64(0.1 + 0.12 * step as f64));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(quick_check(&target), "ok", "kill {step}");
        let digest = content_digest(&target);
        let outcome = if digest == old_digest {
            "unchanged"
        } else if digest == restored_digest {
            "restored"
        } else {
            panic!("kill {step}: the target holds neither state")
        };
        *outcomes.entry(outcome).or_insert(0) += 1;
    }
    assert!(outcomes.contains_key("unchanged"), "{outcomes:?}");
}

/// The database the restoring shell is connected to (not the target).
fn db_for_restores(dir: &tempfile::TempDir) -> PathBuf {
    let path = dir.path().join("host.db");
    if !path.exists() {
        create_db(&path, "CREATE TABLE x(y)");
    }
    path
}

const AWKWARD: &str = r#"
    CREATE TABLE "odd ""name"", with/slash"(id INTEGER PRIMARY KEY AUTOINCREMENT, txt TEXT, raw BLOB, num REAL,
                                            shout AS (upper(txt)));
    INSERT INTO "odd ""name"", with/slash"(txt, raw, num) VALUES
        ('plain', x'00ff10', 1.5),
        ('quote "x", comma
newline', NULL, 1e300),
        ('', x'', 0.1),
        (NULL, NULL, NULL),
        ('ünïcødé ✓', x'41', -2.0);
    DELETE FROM "odd ""name"", with/slash" WHERE txt = 'plain';
    CREATE TABLE no_alias(a, b);
    INSERT INTO no_alias(rowid, a, b) VALUES (10, 1, 2), (20, 3, 4);
    CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
    INSERT INTO kv VALUES ('b', 2), ('a', 1);
    CREATE VIEW odd_view AS SELECT count(*) AS n FROM kv;
    CREATE TRIGGER kv_guard BEFORE DELETE ON kv BEGIN SELECT RAISE(ABORT, 'no'); END;
"#;

#[test]
fn the_sql_export_rebuilds_the_database_exactly() {
    for host in hosts() {
        let dir = scratch();
        let db = dir.path().join("shop.db");
        demo_db(&db);
        create_db(&db, AWKWARD);
        let out =
            call(host.as_ref(), &db, &format!("SELECT export_to({}, 'sql')", sql_text(&dir.path().to_string_lossy())));
        let dump = PathBuf::from(out["files"][0]["path"].as_str().unwrap());
        assert_eq!(dump.file_name().unwrap(), "shop.sql", "{out}");
        let rebuilt = dir.path().join("rebuilt.db");
        let loaded = shell_run(&rebuilt, &std::fs::read_to_string(&dump).unwrap(), &["-bail"]);
        assert!(loaded.status.success(), "{}", String::from_utf8_lossy(&loaded.stderr));
        assert_eq!(content_digest(&rebuilt), content_digest(&db), "{}", host.name());
        let same = |sql: &str| {
            let read = |p: &Path| rows(&Connection::open(p).unwrap(), sql).unwrap();
            assert_eq!(read(&rebuilt), read(&db), "{}: {sql}", host.name());
        };
        same("SELECT rowid, * FROM no_alias");
        same("SELECT * FROM sqlite_sequence");
        same("SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name NOT LIKE 'vigil%' ORDER BY name");
        same(r#"SELECT shout, typeof(num) FROM "odd ""name"", with/slash""#);
        assert_eq!(quick_check(&rebuilt), "ok");
    }
}

#[test]
fn json_and_csv_exports_keep_nulls_blobs_unicode_and_quotes() {
    let dir = scratch();
    let db = dir.path().join("shop.db");
    create_db(&db, AWKWARD);
    let path = sql_text(&dir.path().to_string_lossy());
    let out = call(&Shell, &db, &format!("SELECT export_to({path}, 'csv')"));
    let files: Vec<&str> = out["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    let odd = dir.path().join("odd%20%22name%22%2C%20with%2Fslash.csv");
    assert_eq!(
        files,
        [
            odd.to_str().unwrap(),
            &format!("{}/no_alias.csv", dir.path().display()),
            &format!("{}/kv.csv", dir.path().display())
        ]
    );
    assert_eq!(
        std::fs::read_to_string(&odd).unwrap(),
        "id,txt,raw,num\r\n2,\"quote \"\"x\"\", comma\nnewline\",,1e300\r\n3,\"\",,0.1\r\n4,,,\r\n5,ünïcødé ✓,41,-2.0\r\n"
    );
    assert_eq!(std::fs::read_to_string(dir.path().join("kv.csv")).unwrap(), "k,v\r\na,1\r\nb,2\r\n");
    let out = call(&Rusqlite, &db, &format!("SELECT export_to({path}, 'json')"));
    assert_eq!(out["files"][0]["rows"], 4);
    let text = std::fs::read_to_string(dir.path().join("odd%20%22name%22%2C%20with%2Fslash.json")).unwrap();
    assert!(text.starts_with("[\n{\"id\":2,\"txt\":\"quote"), "columns in table order: {text}");
    let parsed: Json = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed[0]["txt"], "quote \"x\", comma\nnewline");
    assert_eq!(parsed[1]["raw"]["$blob"], "");
    assert_eq!(parsed[2]["txt"], Json::Null);
    assert_eq!(parsed[3]["txt"], "ünïcødé ✓");
    assert_eq!(parsed[3]["raw"]["$blob"], "41");
    // A second export into the same directory refuses to overwrite, unless asked.
    let err = Shell.query(&db, &format!("SELECT export_to({path}, 'json')")).unwrap_err();
    assert!(err.contains("already exists"), "{err}");
    call(&Shell, &db, &format!(r#"SELECT export_to({path}, 'json', '{{"overwrite":true}}')"#));
    let err = Shell.query(&db, &format!("SELECT export_to({path}, 'xml')")).unwrap_err();
    assert!(err.contains("format must be 'sql', 'json' or 'csv'"), "{err}");
}

/// A process (Debian's python3, its own sqlite3 module) that inserts ids 1, 2, 3, … into `w`, one commit each,
/// about every 2 ms, waiting up to 60 s for locks, and prints each id once its commit has returned.
struct CommittingWriter {
    child: std::process::Child,
    committed: std::sync::Arc<std::sync::Mutex<Vec<i64>>>,
    reader: std::thread::JoinHandle<()>,
}

const COMMITTING_WRITER: &str = r#"
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
i = 0
while True:
    i += 1
    conn.execute("INSERT INTO w(id, at) VALUES (?, strftime('%Y-%m-%d %H:%M:%f', 'now'))", (i,))
    print(i, flush=True)
    time.sleep(0.002)
"#;

impl CommittingWriter {
    fn start(db: &Path) -> CommittingWriter {
        use std::io::BufRead;
        let mut child = Command::new("python3")
            .args(["-c", COMMITTING_WRITER])
            .arg(db)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let committed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stdout, seen) = (child.stdout.take().unwrap(), committed.clone());
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                seen.lock().unwrap().push(line.trim().parse().unwrap());
            }
        });
        CommittingWriter { child, committed, reader }
    }

    fn count(&self) -> usize {
        self.committed.lock().unwrap().len()
    }

    fn wait_for(&self, commits: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.count() < commits {
            assert!(Instant::now() < deadline, "the writer committed only {} rows in 30 s", self.count());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the writer; returns every id it saw committed, and what it printed on stderr.
    fn stop(mut self) -> (Vec<i64>, String) {
        assert!(self.child.try_wait().unwrap().is_none(), "the writer died");
        self.child.kill().unwrap();
        let output = self.child.wait_with_output().unwrap();
        self.reader.join().unwrap();
        let committed = self.committed.lock().unwrap().clone();
        (committed, String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn ids_of(database: &Path) -> Vec<i64> {
    let conn = Connection::open(database).unwrap();
    let mut statement = conn.prepare("SELECT id FROM w ORDER BY id").unwrap();
    let ids = statement.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    ids
}

/// Issue 11, item 1: a restore over a database that another process keeps writing (a commit every ~2 ms)
/// loses no committed write. Every id the writer saw committed is either in the safety backup (which must be
/// exactly ids 1..k: the state the restore replaced) or in the restored database (exactly ids k+1..: written
/// after it), in WAL and rollback-journal modes, from the CLI (run from the database's directory with relative
/// paths) and from SQL in place in both hosts. The writer waits on its busy timeout and never sees an error.
#[test]
fn a_restore_under_a_live_writer_loses_no_committed_write() {
    for mode in ["wal", "delete"] {
        for how in ["cli", "sqlite3 shell", "rusqlite", "cli"] {
            let dir = scratch();
            let db = dir.path().join("live.db");
            sized_db(&db, 3000, mode);
            let artifact = dir.path().join("good.db");
            call(&Rusqlite, &db, &backup_sql(&artifact, "{}"));
            let writer = CommittingWriter::start(&db);
            writer.wait_for(50);
            let restore_sql = "SELECT backup_restore('good.db', NULL, '{\"busy_timeout_ms\":30000}')";
            let out: Json = match how {
                "cli" => {
                    let run =
                        vigil_in(dir.path(), &["restore", "good.db", "live.db", "--json", "--busy-timeout", "30000"]);
                    let stdout = String::from_utf8_lossy(&run.stdout);
                    let stderr = String::from_utf8_lossy(&run.stderr);
                    assert_eq!(run.status.code(), Some(0), "{mode}/{how}: {stdout} {stderr}");
                    serde_json::from_str(&stdout).unwrap()
                }
                "sqlite3 shell" => {
                    let script = format!(".timeout 30000\n.load {}\n{restore_sql};\n", library().display());
                    let run = Command::new("sh")
                        .arg("-c")
                        .arg("sqlite3 live.db")
                        .current_dir(dir.path())
                        .stdin(std::process::Stdio::piped())
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::piped())
                        .spawn()
                        .and_then(|mut child| {
                            use std::io::Write;
                            child.stdin.take().unwrap().write_all(script.as_bytes())?;
                            child.wait_with_output()
                        })
                        .unwrap();
                    let stdout = String::from_utf8_lossy(&run.stdout);
                    assert!(run.stderr.is_empty(), "{mode}/{how}: {}", String::from_utf8_lossy(&run.stderr));
                    serde_json::from_str(stdout.trim()).unwrap()
                }
                _ => {
                    // In place from the application's own connection, its working directory the database's.
                    let conn = Connection::open(&db).unwrap();
                    conn.busy_timeout(Duration::from_secs(30)).unwrap();
                    load(&conn);
                    let sql = restore_sql.replace("'good.db'", &sql_text(&artifact.to_string_lossy()));
                    let text: String = conn.query_row(&sql, [], |r| r.get(0)).unwrap();
                    serde_json::from_str(&text).unwrap()
                }
            };
            let context = format!("{mode}, {how}: {out}");
            assert_eq!(out["ok"], true, "{context}");
            let before = writer.count();
            writer.wait_for(before + 50);
            let (committed, errors) = writer.stop();
            assert_eq!(errors, "", "{context}: the writer got an error");
            let safety = dir.path().join(out["safety_backup"]["path"].as_str().unwrap());
            let kept = ids_of(&safety);
            let k = kept.len() as i64;
            assert_eq!(kept, (1..=k).collect::<Vec<_>>(), "{context}: the safety backup holds ids 1..k");
            let after = ids_of(&db);
            let last = k + after.len() as i64;
            assert_eq!(after, (k + 1..=last).collect::<Vec<_>>(), "{context}: the restored database holds k+1..");
            let lost: Vec<i64> = committed.iter().copied().filter(|id| *id > last).collect();
            assert!(lost.is_empty(), "{context}: committed ids in neither file: {lost:?}");
            assert!(k >= 50 && !after.is_empty(), "{context}: writes before ({k}) and after the restore");
            assert_eq!(quick_check(&db), "ok", "{context}");
        }
    }
}

/// A restore into a database another process keeps locked does not start: exit 2, the message names the file
/// and the CLI flag that waits longer, and nothing changed (no safety backup either).
#[test]
fn a_restore_into_a_locked_database_names_the_file_and_the_flag() {
    let dir = scratch();
    let db = dir.path().join("held.db");
    sized_db(&db, 200, "delete");
    let artifact = dir.path().join("good.db");
    call(&Rusqlite, &db, &backup_sql(&artifact, "{}"));
    let before = content_digest(&db);
    let mut child = hold_lock(&db, "c.execute('BEGIN EXCLUSIVE')", 60.0);
    let out = vigil_in(dir.path(), &["restore", "good.db", "held.db", "--busy-timeout", "300"]);
    child.kill().unwrap();
    child.wait().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("held.db") && stderr.contains("--busy-timeout"), "{stderr}");
    assert!(!stderr.contains("busy_timeout_ms"), "SQL terms on the CLI: {stderr}");
    assert_eq!(content_digest(&db), before, "the target is unchanged");
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("before-restore"))
        .collect();
    assert!(left.is_empty(), "no safety backup of a restore that did not start: {left:?}");
}

/// A backup made while the application holds a short write transaction is still recorded: the log waits for
/// the lock on the busy timeout (new-user review: it gave up at once, so a nightly backup could silently not
/// count).
#[test]
fn a_backup_during_a_short_write_transaction_is_recorded() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    sized_db(&db, 200, "wal");
    // A first backup creates the log table: the second one's log write starts by reading, then writes.
    call(&Rusqlite, &db, &backup_sql(&dir.path().join("first.db"), "{}"));
    let mut child = hold_lock(&db, "c.execute('BEGIN IMMEDIATE'); c.execute('INSERT INTO w(at) VALUES (1)')", 1.5);
    let out = vigil_in(dir.path(), &["backup", "app.db", "b/", "--json"]);
    assert!(child.wait().unwrap().success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    let made: Json = serde_json::from_str(&stdout).unwrap();
    assert_eq!(made["logged"], true, "{made}");
    let logged: i64 =
        Connection::open(&db).unwrap().query_row("SELECT count(*) FROM vigil_backup_log", [], |r| r.get(0)).unwrap();
    assert_eq!(logged, 2);
}

/// `vigil verify DIR` (a directory instead of one backup) says so and names the command that lists backups
/// (new-user review: it asked for a manifest or --bare).
#[test]
fn verifying_a_directory_says_it_is_one() {
    let dir = scratch();
    std::fs::create_dir(dir.path().join("backups")).unwrap();
    for command in ["verify", "restore"] {
        let mut args = vec![command, "backups"];
        if command == "restore" {
            args.push("x.db");
        }
        let out = vigil_in(dir.path(), &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("backups is a directory") && stderr.contains("vigil backups DIR"),
            "{command}: {stderr}"
        );
        assert!(!stderr.contains("--bare") && !stderr.contains("backup_list"), "{command}: {stderr}");
    }
    assert!(!dir.path().join("x.db").exists());
}

/// A python3 process on `db` that runs `statements` (on its connection `c`, autocommit), says when they ran, then
/// holds what they took for `seconds` and commits; returned once the statements ran.
fn hold_lock(db: &Path, statements: &str, seconds: f64) -> std::process::Child {
    use std::io::BufRead;
    let script = format!(
        "import sqlite3, sys, time\nc = sqlite3.connect(sys.argv[1], isolation_level=None)\n{statements}\n\
         print('locked', flush=True)\ntime.sleep({seconds})\nc.execute('COMMIT')\n"
    );
    let mut child =
        Command::new("python3").args(["-c", &script]).arg(db).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    child
}

/// The `vigil` binary run in `dir` (so that relative paths are the user's), with its library found beside it.
fn vigil_in(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(cli_binary()).args(args).current_dir(dir).env_remove("VIGIL_EXTENSION").output().unwrap()
}

/// `vigil backup`'s retention flags are checked at start (1..=100000, as backup_to says), not by the backup.
#[test]
fn retention_flags_out_of_range_are_usage_errors() {
    let dir = scratch();
    let db = dir.path().join("a.db");
    create_db(&db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);");
    for (flag, value) in [("--keep", "0"), ("--keep-daily", "-1"), ("--keep-monthly", "100001")] {
        let out = Command::new(cli_binary())
            .args(["backup", db.to_str().unwrap(), dir.path().join("out/").to_str().unwrap()])
            .arg(format!("{flag}={value}"))
            .output()
            .unwrap();
        assert_eq!(code(&out), 64, "{flag} {value}: {}", both(&out));
        assert!(text(&out.stderr).contains(flag), "{}", both(&out));
        assert!(!dir.path().join("out").exists());
    }
}
