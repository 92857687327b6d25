//! Restore drills that must not trust what they read: decompression bombs, tampered manifests, backups
//! copied without their manifest, compressed backups on a volume too small for the raw copy, and what
//! `vigil backups` ignores.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value as Json;
use vigil_tests::*;

fn sql_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn vigil(args: &[&str]) -> Output {
    Command::new(cli_binary()).args(args).env_remove("VIGIL_EXTENSION").output().unwrap()
}

/// A database of about `rows` × 1 KB.
fn sized_db(path: &Path, rows: i64) {
    create_db(
        path,
        &format!(
            "CREATE TABLE filler(id INTEGER PRIMARY KEY, body TEXT);
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows})
             INSERT INTO filler SELECT x, printf('%.1000c', char(65 + x % 26)) FROM c;"
        ),
    );
}

/// A backup of `db` into `dir` made by vigil in rusqlite, with `options`; returns backup_to's result.
fn backup(db: &Path, dir: &Path, options: &str) -> Json {
    let sql = format!("SELECT backup_to({}, {})", sql_text(&format!("{}/", dir.display())), sql_text(options));
    call(&Rusqlite, db, &sql)
}

fn artifact_of(made: &Json) -> PathBuf {
    PathBuf::from(made["path"].as_str().unwrap())
}

fn manifest_path(artifact: &Path) -> PathBuf {
    PathBuf::from(format!("{}.vigil.json", artifact.display()))
}

fn edit_manifest(artifact: &Path, edit: impl FnOnce(&mut Json)) {
    let path = manifest_path(artifact);
    let mut manifest: Json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut manifest);
    std::fs::write(&path, manifest.to_string()).unwrap();
}

/// `bytes` of zeros compressed by the reference tool (1 GiB: about 1 MiB of gzip, 32 KiB of zstd).
fn bomb(tool: &str, bytes: u64, out: &Path) {
    let script = format!("head -c {bytes} /dev/zero | {tool} -1 -c > '{}'", out.display());
    assert!(Command::new("sh").args(["-c", &script]).status().unwrap().success());
}

#[test]
fn a_decompression_bomb_stops_at_what_the_manifest_promises() {
    let dir = scratch();
    let db = dir.path().join("small.db");
    sized_db(&db, 20);
    for (compress, tool) in [("gzip", "gzip"), ("zstd", "zstd")] {
        let backups = dir.path().join(compress);
        std::fs::create_dir(&backups).unwrap();
        let artifact = artifact_of(&backup(&db, &backups, &format!(r#"{{"compress":"{compress}"}}"#)));
        bomb(tool, 1 << 30, &artifact);
        let bytes = std::fs::metadata(&artifact).unwrap().len();
        // The manifest matches the artifact; only the database it promises (a few KB) is a lie.
        edit_manifest(&artifact, |m| {
            m["bytes"] = bytes.into();
            m["sha256"] = sha256sum(&artifact).into();
        });
        let promised = std::fs::read_to_string(manifest_path(&artifact)).unwrap();
        let promised: Json = serde_json::from_str(&promised).unwrap();
        let promised = promised["database_bytes"].as_u64().unwrap();
        assert!(promised < 1 << 20, "{promised}");

        // The kernel bounds every file the CLI writes to 4 MiB (ulimit -f, in KiB): a drill that wrote
        // past the promise would be killed by SIGXFSZ instead of answering.
        let temp = scratch();
        let script = format!("ulimit -f 4096; exec '{}' verify '{}'", cli_binary().display(), artifact.display());
        let out = Command::new("sh").args(["-c", &script]).env("TMPDIR", temp.path()).output().unwrap();
        let context = format!("{compress}: {:?} {}{}", out.status, text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(2), "{context}");
        let expected = format!("inflates beyond the {promised} bytes the manifest promises");
        assert!(text(&out.stdout).contains(&expected), "{context}");
        assert_eq!(std::fs::read_dir(temp.path()).unwrap().count(), 0, "{context}: the temp dir is left clean");

        for host in hosts() {
            let sql = format!("SELECT backup_verify({})", sql_text(&artifact.to_string_lossy()));
            let out = call(host.as_ref(), &db, &sql);
            assert_eq!(out["ok"], false, "{}: {out}", host.name());
            assert!(out["problem"].as_str().unwrap().contains(&expected), "{}: {out}", host.name());
        }
        let target = dir.path().join(format!("restored-{compress}.db"));
        let sql = format!(
            "SELECT backup_restore({}, {})",
            sql_text(&artifact.to_string_lossy()),
            sql_text(&target.to_string_lossy())
        );
        let error = Rusqlite.query(&db, &sql).unwrap_err();
        assert!(error.contains(&expected) && error.contains("nothing was restored"), "{error}");
        assert!(!target.exists());
    }
}

#[test]
fn a_plain_backup_is_checked_against_the_database_hash_and_size_of_its_manifest() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    sized_db(&db, 50);
    for (field, forged) in [("database_sha256", Json::from("0".repeat(64))), ("database_bytes", Json::from(4096))] {
        let backups = dir.path().join(field);
        std::fs::create_dir(&backups).unwrap();
        let artifact = artifact_of(&backup(&db, &backups, "{}"));
        edit_manifest(&artifact, |m| m[field] = forged.clone());
        for host in hosts() {
            let out =
                call(host.as_ref(), &db, &format!("SELECT backup_verify({})", sql_text(&artifact.to_string_lossy())));
            let context = format!("{} {field}: {out}", host.name());
            assert_eq!(out["ok"], false, "{context}");
            let what = field.replace('_', " ");
            assert!(out["problem"].as_str().unwrap().contains(&format!("{what} is ")), "{context}");
        }
        let out = vigil(&["verify", artifact.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{field}: {}", text(&out.stdout));
    }
}

#[test]
fn a_compressed_backup_needs_no_room_for_the_raw_copy_on_the_destination() {
    let Some(small) = Tmpfs::mount(20 << 20, "", "a_compressed_backup_needs_no_room_for_the_raw_copy") else {
        return;
    };
    let dir = scratch();
    let db = dir.path().join("big.db");
    sized_db(&db, 30_000); // about 31 MB, compresses to well under 1 MB
    assert!(std::fs::metadata(&db).unwrap().len() > 30_000_000);

    // The raw copy goes beside the source database: the CLI, gzip, checked. (The backup is then recorded in
    // the database's vigil_backup_log, which changes the file: its hash is taken before.)
    let before = sha256sum(&db);
    let out = vigil(&["backup", db.to_str().unwrap(), &format!("{}/", small.path().display()), "--gzip", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    let made: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(made["intermediate"]["place"], "source", "{made}");
    let reference = Command::new("sh")
        .args(["-c", &format!("gzip -dc '{}' | sha256sum", made["path"].as_str().unwrap())])
        .output()
        .unwrap();
    let unpacked = text(&reference.stdout).split_whitespace().next().unwrap().to_string();
    assert_eq!(unpacked, before);
    assert_eq!(made["database_sha256"], unpacked.as_str());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "only the database is left beside it: {leftovers:?}");

    // With no room beside the source either, a private directory in the temp dir, removed afterwards.
    let Some(source_volume) = Tmpfs::mount(40 << 20, "", "a_compressed_backup_needs_no_room_for_the_raw_copy") else {
        return;
    };
    let crowded = source_volume.path().join("big.db");
    std::fs::copy(&db, &crowded).unwrap();
    let temp = scratch();
    let sql =
        format!("SELECT backup_to({}, '{{\"compress\":\"zstd\"}}')", sql_text(&format!("{}/", small.path().display())));
    let out = Command::new("sqlite3")
        .arg(&crowded)
        .arg(format!(".load {}", library().display()))
        .arg(&sql)
        .env("TMPDIR", temp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let made: Json = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(made["intermediate"]["place"], "temp", "{made}");
    assert!(made["intermediate"]["dir"].as_str().unwrap().starts_with(temp.path().to_str().unwrap()), "{made}");
    assert_eq!(std::fs::read_dir(temp.path()).unwrap().count(), 0, "the private directory is removed");
    let zstd = Command::new("sh")
        .args(["-c", &format!("zstd -dc '{}' | sha256sum", made["path"].as_str().unwrap())])
        .output()
        .unwrap();
    assert_eq!(text(&zstd.stdout).split_whitespace().next().unwrap(), sha256sum(&db));
}

/// Backups of `db` (plain, gzip, zstd) copied without their manifests into `bare`.
fn bare_copies(db: &Path, dir: &Path) -> Vec<PathBuf> {
    let backups = dir.join("backups");
    let bare = dir.join("bare");
    std::fs::create_dir_all(&backups).unwrap();
    std::fs::create_dir_all(&bare).unwrap();
    ["none", "gzip", "zstd"]
        .iter()
        .map(|compress| {
            let artifact = artifact_of(&backup(db, &backups, &format!(r#"{{"compress":"{compress}"}}"#)));
            let copy = bare.join(artifact.file_name().unwrap());
            std::fs::copy(&artifact, &copy).unwrap();
            copy
        })
        .collect()
}

#[test]
fn a_backup_without_its_manifest_is_checked_and_restored_only_when_asked() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    demo_db(&db);
    let digest = content_digest(&db);
    for (n, copy) in bare_copies(&db, dir.path()).iter().enumerate() {
        let path = sql_text(&copy.to_string_lossy());
        for host in hosts() {
            let context = format!("{} {}", host.name(), copy.display());
            let refused = host.query(&db, &format!("SELECT backup_verify({path})")).unwrap_err();
            assert!(
                refused.contains("has no vigil manifest") && refused.contains(r#"'{"bare":true}'"#),
                "{context}: {refused}"
            );
            let out = call(host.as_ref(), &db, &format!(r#"SELECT backup_verify({path}, '{{"bare":true}}')"#));
            assert_eq!(
                (&out["ok"], &out["bare"], &out["hash_verified"]),
                (&Json::from(true), &Json::from(true), &Json::from(false)),
                "{context}: {out}"
            );
            let target = dir.path().join(format!("restored-{n}-{}.db", host.name().len()));
            let sql =
                format!(r#"SELECT backup_restore({path}, {}, '{{"bare":true}}')"#, sql_text(&target.to_string_lossy()));
            let out = call(host.as_ref(), &db, &sql);
            assert_eq!((&out["ok"], &out["bare"]), (&Json::from(true), &Json::from(true)), "{context}: {out}");
            assert_eq!(content_digest(&target), digest, "{context}");
        }
        let shown = copy.to_str().unwrap();
        let out = vigil(&["verify", shown]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{shown}: {stderr}");
        assert!(stderr.contains("has no vigil manifest") && stderr.contains("pass --bare"), "{stderr}");
        assert!(!stderr.contains("{\"bare\""), "CLI terms only: {stderr}");
        let out = vigil(&["verify", "--bare", shown]);
        assert_eq!(out.status.code(), Some(0), "{shown}: {}{}", text(&out.stdout), text(&out.stderr));
        assert!(text(&out.stdout).contains("could not be verified against a hash"), "{}", text(&out.stdout));
        let target = dir.path().join(format!("cli-restored-{n}.db"));
        let out = vigil(&["restore", shown, target.to_str().unwrap()]);
        assert!(out.status.code() != Some(0) && text(&out.stderr).contains("--bare") && !target.exists());
        let out = vigil(&["restore", "--bare", shown, target.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{shown}: {}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(content_digest(&target), digest);
    }
}

#[test]
fn a_damaged_bare_artifact_fails_its_drill() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    demo_db(&db);
    let copies = bare_copies(&db, dir.path());
    let plain = &copies[0];
    flip_bytes(plain, root_page(&db, "orders") * 4096 - 4096 + 200, 64);
    let out = call(
        &Rusqlite,
        &db,
        &format!(r#"SELECT backup_verify({}, '{{"bare":true}}')"#, sql_text(&plain.to_string_lossy())),
    );
    assert_eq!(out["ok"], false, "{out}");
    let junk = dir.path().join("bare/notes.db.gz");
    std::fs::write(&junk, "not compressed at all").unwrap();
    let out = call(
        &Rusqlite,
        &db,
        &format!(r#"SELECT backup_verify({}, '{{"bare":true}}')"#, sql_text(&junk.to_string_lossy())),
    );
    assert!(out["problem"].as_str().unwrap().contains("is not an SQLite database, nor gzip or zstd"), "{out}");
}

#[test]
fn backups_lists_the_files_it_ignored_and_why() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    sized_db(&db, 20);
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let kept = artifact_of(&backup(&db, &backups, "{}"));
    std::fs::copy(&kept, backups.join("copied.db")).unwrap();
    std::fs::write(backups.join("broken.db.vigil.json"), "{ not json").unwrap();
    std::fs::write(backups.join("broken.db"), "x").unwrap();

    let listing = sql_text(&backups.to_string_lossy());
    let plain = Rusqlite.query(&db, &format!("SELECT * FROM backup_list({listing})")).unwrap();
    assert_eq!(plain.len(), 1, "without the option, backups only: {plain:?}");
    let rows = Rusqlite.query(&db, &format!(r#"SELECT * FROM backup_list({listing}, '{{"ignored":true}}')"#)).unwrap();
    assert_eq!(rows[0].keys().collect::<Vec<_>>(), plain[0].keys().collect::<Vec<_>>(), "same columns");
    let status = |name: &str| {
        let row = rows.iter().find(|r| r["path"].as_str().unwrap().ends_with(name)).unwrap();
        row["sha256_status"].as_str().unwrap().to_string()
    };
    assert!(status("copied.db").starts_with("ignored: no manifest"), "{rows:?}");
    assert!(status("broken.db.vigil.json").starts_with("ignored: unreadable manifest"), "{rows:?}");
    assert!(status("broken.db").starts_with("ignored: no manifest"), "{rows:?}");

    let out = vigil(&["backups", backups.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("1 backups in") && stdout.contains("ignored 3 files:"), "{stdout}");
    let line = |name: &str| stdout.lines().find(|l| l.contains(&format!("{name}:"))).unwrap_or_default().to_string();
    assert!(line("copied.db").contains("no manifest") && line("copied.db").contains("--bare"), "{stdout}");
    assert!(line("broken.db.vigil.json").contains("unreadable manifest"), "{stdout}");
}

/// An SQLite header of 4096-byte pages declaring `pages` pages (kept valid: the "version valid for" number
/// equals the change counter), then 256 MiB of zeros, gzip-compressed into `out`.
fn header_bomb(pages: u32, out: &Path) {
    let mut header = [0u8; 100];
    header[..16].copy_from_slice(b"SQLite format 3\0");
    header[16..18].copy_from_slice(&4096u16.to_be_bytes());
    header[18..24].copy_from_slice(&[1, 1, 0, 64, 32, 32]);
    header[24..28].copy_from_slice(&1u32.to_be_bytes());
    header[28..32].copy_from_slice(&pages.to_be_bytes());
    header[92..96].copy_from_slice(&1u32.to_be_bytes());
    let head = out.with_extension("head");
    std::fs::write(&head, header).unwrap();
    let script =
        format!("{{ cat '{}'; head -c 1073741824 /dev/zero; }} | gzip -1 -c > '{}'", head.display(), out.display());
    assert!(Command::new("sh").args(["-c", &script]).status().unwrap().success());
}

#[test]
fn a_bare_bomb_stops_at_its_header_or_before_the_temp_volume_is_full() {
    let Some(temp) = Tmpfs::mount(96 << 20, "", "a_bare_bomb_stops_before_the_temp_volume_is_full") else { return };
    let dir = scratch();
    let zeros = dir.path().join("zeros.db.gz");
    bomb("gzip", 256 << 20, &zeros);
    let small = dir.path().join("small.db.gz");
    header_bomb(2, &small);
    let huge = dir.path().join("huge.db.gz");
    header_bomb(u32::MAX / 2, &huge);
    for (artifact, expected) in [
        (&zeros, "does not start with an SQLite header".to_string()),
        (&small, "inflates beyond the 8192 bytes its SQLite header declares".to_string()),
        (&huge, format!("bytes fit in {}/vigil-", temp.path().display())),
    ] {
        let out = Command::new(cli_binary())
            .args(["verify", "--bare", artifact.to_str().unwrap()])
            .env("TMPDIR", temp.path())
            .env_remove("VIGIL_EXTENSION")
            .output()
            .unwrap();
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{stdout}{}", text(&out.stderr));
        assert!(stdout.contains(&expected), "{expected}: {stdout}");
        assert_eq!(std::fs::read_dir(temp.path()).unwrap().count(), 0, "nothing left in the temp dir");
    }
}

#[test]
fn private_temp_directories_left_by_a_killed_run_are_removed_and_nothing_else() {
    let dir = scratch();
    let db = dir.path().join("app.db");
    sized_db(&db, 20);
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let artifact = artifact_of(&backup(&db, &backups, r#"{"compress":"gzip"}"#));
    let temp = scratch();
    let plant = |name: &str, mode: &str| {
        let planted = temp.path().join(name);
        std::fs::create_dir(&planted).unwrap();
        std::fs::write(planted.join(".app.db.gz.vigil-tmp-999999-0"), "left by kill -9").unwrap();
        let script = format!("chmod {mode} '{0}' && touch -d '-2 minutes' '{0}'/.app* '{0}'", planted.display());
        assert!(Command::new("sh").args(["-c", &script]).status().unwrap().success());
        planted
    };
    let abandoned = plant("vigil-0123456789abcdef", "700");
    let shared = plant("vigil-fedcba9876543210", "755");
    let users = plant("vigil-notes", "700");
    let out = Command::new(cli_binary())
        .args(["verify", artifact.to_str().unwrap()])
        .env("TMPDIR", temp.path())
        .env_remove("VIGIL_EXTENSION")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!abandoned.exists(), "vigil's own abandoned directory is removed");
    assert!(shared.join(".app.db.gz.vigil-tmp-999999-0").exists(), "not private: not vigil's");
    assert!(users.join(".app.db.gz.vigil-tmp-999999-0").exists(), "not vigil's name");
    assert_eq!(std::fs::read_dir(temp.path()).unwrap().count(), 2);
}
