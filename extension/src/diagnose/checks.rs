//! The steps of a diagnosis, each adding its rows and what it found.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::path::Path;

use super::files;
use super::integrity::{self, Group, Trees};
use super::open::{How, Opened};
use super::{row, Diagnosis, Status};
use crate::error::Error;
use crate::format::header::DatabaseHeader;
use crate::format::journal::JournalHeader;
use crate::format::pages::{self, sidecar};
use crate::format::wal::WalScan;
use crate::salvage::survey::{Survey, TreeSurvey};
use crate::sqlite::{Db, Value};

pub fn page_aligned(d: &mut Diagnosis, fields: &DatabaseHeader, size: u64) {
    if !fields.page_size_valid() {
        d.push(row("page_aligned", Status::Skipped, Value::Null, "skipped: the header's page size is not valid"));
        return;
    }
    let page = u64::from(fields.page_size);
    match size % page {
        0 => d.push(row("page_aligned", Status::Ok, (size / page) as i64, "whole pages")),
        rest => {
            d.push(row(
                "page_aligned",
                Status::Critical,
                (size / page) as i64,
                format!("{rest} bytes past the last whole page of {page} bytes: the file was cut short or extended"),
            ));
            d.findings.file_damage.push("a partial last page".into());
        }
    }
}

/// The header rows; true when the file is not an SQLite database at all (nothing more to check). `pages_say_sqlite`:
/// vigil's page reader finds pages that parse as b-tree pages (a database whose page 1 was overwritten).
pub fn header(d: &mut Diagnosis, f: &DatabaseHeader, size: u64, pages_say_sqlite: bool) -> bool {
    let versions_ok = (1..=2).contains(&f.write_version) && (1..=2).contains(&f.read_version);
    let mode = if f.wal { "WAL mode" } else { "rollback-journal mode" };
    // Without the magic, a file is taken for a damaged database only when more of the header, or its pages, say
    // SQLite.
    let looks_like_sqlite = pages_say_sqlite || (f.page_size_valid() && (versions_ok || f.fractions == [64, 32, 32]));
    if !f.magic && (!looks_like_sqlite || size < 512) {
        let why = "no SQLite header: neither the \"SQLite format 3\" magic nor the page size and versions of one";
        d.push(row("header", Status::Critical, "not SQLite", why));
        d.findings.not_a_database = Some("not an SQLite database (no SQLite header)".into());
        return true;
    }
    let mut problems = Vec::new();
    if !f.magic {
        problems.push("the \"SQLite format 3\" magic is overwritten".to_string());
    }
    if !versions_ok {
        problems.push(format!("file format versions {}/{}", f.write_version, f.read_version));
    }
    if f.fractions != [64, 32, 32] {
        problems.push(format!("payload fractions {:?} (always 64, 32, 32)", f.fractions));
    }
    if problems.is_empty() {
        d.push(row(
            "header",
            Status::Ok,
            "SQLite format 3",
            format!("{mode} (format versions {}/{})", f.write_version, f.read_version),
        ));
    } else {
        d.push(row("header", Status::Critical, "damaged", problems.join("; ")));
        d.findings.file_damage.push("the header".into());
    }
    header_fields(d, f, size);
    false
}

fn header_fields(d: &mut Diagnosis, f: &DatabaseHeader, size: u64) {
    let mut damaged = false;
    if f.page_size_valid() {
        d.push(row("page_size", Status::Ok, i64::from(f.page_size), "bytes"));
    } else {
        d.push(row("page_size", Status::Critical, i64::from(f.page_size), "not a power of two from 512 to 65536"));
        damaged = true;
    }
    page_count(d, f, size);
    let freelist = if f.freelist_count > f.page_count && f.valid_for == f.change_counter {
        row(
            "freelist_count",
            Status::Warning,
            i64::from(f.freelist_count),
            "more free pages than pages in the database",
        )
    } else {
        row("freelist_count", Status::Ok, i64::from(f.freelist_count), "pages")
    };
    d.push(freelist);
    // A database no one has written a table to yet has 0 in both fields.
    let fresh = f.encoding_code == 0 && f.schema_format == 0;
    match (f.encoding_code, fresh) {
        (1..=3, _) | (_, true) => {
            let name = ["not set yet", "UTF-8", "UTF-16le", "UTF-16be"][f.encoding_code.min(3) as usize];
            d.push(row("text_encoding", Status::Ok, name, ""));
        }
        (code, false) => {
            d.push(row(
                "text_encoding",
                Status::Critical,
                i64::from(code),
                "not 1 (UTF-8), 2 (UTF-16le) or 3 (UTF-16be)",
            ));
            damaged = true;
        }
    }
    if (1..=4).contains(&f.schema_format) || fresh {
        d.push(row("schema_format", Status::Ok, i64::from(f.schema_format), ""));
    } else {
        d.push(row("schema_format", Status::Critical, i64::from(f.schema_format), "not 1 to 4"));
        damaged = true;
    }
    let reserved = match f.reserved {
        0 => row("reserved_bytes", Status::Ok, 0, "none"),
        n => row(
            "reserved_bytes",
            Status::Info,
            i64::from(n),
            "bytes at the end of each page kept for an extension (checksums, encryption)",
        ),
    };
    d.push(reserved);
    if damaged && !d.findings.file_damage.iter().any(|w| w == "the header") {
        d.findings.file_damage.push("the header".into());
    }
}

fn page_count(d: &mut Diagnosis, f: &DatabaseHeader, size: u64) {
    let count = i64::from(f.page_count);
    if f.valid_for != f.change_counter || f.page_count == 0 {
        let why = "not kept by the SQLite that last wrote the file (before 3.7.0): the file size counts";
        d.push(row("page_count", Status::Info, count, why));
        return;
    }
    if !f.page_size_valid() {
        d.push(row("page_count", Status::Skipped, count, "skipped: no valid page size to compare with the file size"));
        return;
    }
    let in_file = size / u64::from(f.page_size);
    if u64::from(f.page_count) > in_file {
        let why = format!("the header says {} pages, the file holds {in_file}: it was cut short", f.page_count);
        d.push(row("page_count", Status::Critical, count, why));
        d.findings.file_damage.push("a truncated file".into());
    } else if u64::from(f.page_count) < in_file {
        let why = format!("the file holds {in_file} pages, the header says {}: SQLite ignores the rest", f.page_count);
        d.push(row("page_count", Status::Warning, count, why));
    } else {
        d.push(row("page_count", Status::Ok, count, "pages, as the file size says"));
    }
}

pub fn journal(d: &mut Diagnosis, path: &Path, opened: Option<&Opened>) {
    let journal = sidecar(path, "-journal");
    let Some(size) = files::side_size(&journal) else {
        d.push(row("journal", Status::Ok, Value::Null, "no rollback journal"));
        return;
    };
    let hot = opened.is_some_and(|o| matches!(o.how, How::Copy(_)) && o.rolled_back);
    let (status, detail) = match File::open(&journal).map(|file| pages::journal_header_of(&file)) {
        Err(e) => (Status::Warning, format!("cannot read it: {e}")),
        Ok(JournalHeader::Empty) => (Status::Ok, "empty (journal_mode=TRUNCATE leaves it after a commit)".into()),
        Ok(JournalHeader::Zeroed) => {
            (Status::Ok, "header zeroed: a finished transaction (journal_mode=PERSIST)".into())
        }
        Ok(JournalHeader::Invalid) => (Status::Warning, "not a journal header: SQLite ignores the file".into()),
        Ok(JournalHeader::Valid { original_pages, page_size, .. }) => {
            let originals = File::open(&journal).ok().and_then(|file| {
                crate::format::journal::scan(size, page_size, &mut |buf, at| pages::read_fully(&file, buf, at))
            });
            let images = originals.map_or_else(|| "unreadable".to_string(), |scan| scan.originals.len().to_string());
            let what = format!(
                "valid header: original images of {images} pages of {page_size} bytes (all its segments), for a \
                 database of {original_pages} pages"
            );
            if hot {
                d.findings.hot_journal = true;
                let why = "hot: a writer stopped mid-transaction; the database file holds part of it until a \
                           read-write connection rolls it back";
                (Status::Warning, format!("{why} ({what})"))
            } else {
                (Status::Info, format!("a transaction in progress, not hot ({what})"))
            }
        }
    };
    d.push(row("journal", status, size as i64, detail));
}

pub fn wal(d: &mut Diagnosis, path: &Path) {
    let wal = sidecar(path, "-wal");
    let row = match files::side_size(&wal) {
        None => row("wal", Status::Ok, Value::Null, "no WAL file"),
        Some(0) => row("wal", Status::Ok, 0, "empty"),
        Some(size) => match File::open(&wal).and_then(|file| pages::scan_wal_file(&file)) {
            Err(e) => row("wal", Status::Warning, Value::Null, format!("cannot read it: {e}")),
            Ok(WalScan { unreadable_from: Some(frame), .. }) => {
                row("wal", Status::Warning, Value::Null, format!("cannot read it: frame {frame} cannot be read"))
            }
            Ok(scan) => match &scan.header_problem {
                Some(problem) => row(
                    "wal",
                    Status::Warning,
                    Value::Null,
                    format!("{size} bytes SQLite ignores: the WAL header is not valid ({problem})"),
                ),
                None => wal_row(&scan),
            },
        },
    };
    d.push(row);
}

/// The committed frames, and what SQLite's recovery ignores and why.
fn wal_row(scan: &WalScan) -> super::Row {
    let committed = scan.committed_frames;
    let mut notes = vec![format!("{} frames: {} valid, {committed} committed", scan.frames, scan.valid)];
    let mut status = Status::Ok;
    if scan.valid > committed {
        notes.push(format!("{} valid but not committed (ignored)", scan.valid - committed));
        status = Status::Warning;
    }
    if let Some(frame) = scan.checksum_failure {
        notes.push(format!("frame {frame} fails its checksum: it and the frames after it are ignored"));
        status = Status::Warning;
    }
    if scan.torn_bytes > 0 {
        notes.push(format!("a torn last frame ({} bytes)", scan.torn_bytes));
        status = Status::Warning;
    }
    if let Some(frame) = scan.old_generation_from {
        notes.push(format!("frames from {frame} on are left from before the WAL last restarted (normal)"));
    }
    if status == Status::Warning {
        notes.push("the last transaction was not written completely: its changes are lost".into());
    }
    row("wal", status, i64::from(committed), notes.join("; "))
}

/// The steps that read the database through SQLite.
pub fn database(d: &mut Diagnosis, db: Db, path: &Path) {
    let trees = match schema(d, db) {
        Some(trees) => trees,
        None => {
            damaged_pages(d, path, &[]);
            return skip_rest(d, "the schema cannot be read");
        }
    };
    let quick = pragma_messages(db, "PRAGMA quick_check(100)");
    check_row(d, "quick_check", &quick);
    let full = pragma_messages(db, "PRAGMA integrity_check(1000)");
    check_row(d, "integrity_check", &full);
    // A full check that stops with an error still leaves quick_check's messages to group.
    let groups = match full.as_ref().or(quick.as_ref()) {
        Ok(messages) => {
            let wanted: HashSet<u32> = messages
                .iter()
                .filter_map(|m| match integrity::subject(m) {
                    integrity::Subject::Page(page) if !trees.by_root.contains_key(&page) => Some(page),
                    _ => None,
                })
                .collect();
            let owners = if wanted.is_empty() { HashMap::new() } else { page_owners(db, &wanted) };
            integrity::group(messages, &trees, &|page| owners.get(&page).cloned())
        }
        Err(_) => Vec::new(),
    };
    damaged_btrees(d, &groups);
    foreign_keys(d, db);
    // The survey reads the file directly: a read transaction held meanwhile keeps writers from committing into
    // it (rollback journal) or restarting the WAL under it, so a live database is read as one state.
    let began = db.exec("BEGIN").is_ok();
    if began {
        let _ = db.query("SELECT 1 FROM sqlite_schema LIMIT 1", &[]);
    }
    damaged_pages(d, path, &groups);
    if began {
        let _ = db.exec("COMMIT");
    }
    backup(d, db);
}

fn skip_rest(d: &mut Diagnosis, why: &str) {
    for step in ["quick_check", "integrity_check", "foreign_key_check", "last_verified_backup"] {
        d.push(row(step, Status::Skipped, Value::Null, format!("skipped: {why}")));
    }
}

fn schema(d: &mut Diagnosis, db: Db) -> Option<Trees> {
    match db.query("SELECT type, name, rootpage FROM sqlite_schema", &[]) {
        Ok(rows) => {
            let mut trees = Trees::default();
            trees.add("sqlite_schema", "table", 1);
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for r in &rows {
                let kind = r[0].as_str().unwrap_or_default();
                let name = r[1].as_str().unwrap_or_default();
                trees.add(name, kind, r[2].as_i64().unwrap_or(0) as u32);
                *counts.entry(kind.to_string()).or_default() += 1;
            }
            let plural = |kind: &str, n: usize| match (kind, n) {
                (_, 1) => kind.to_string(),
                ("index", _) => "indexes".to_string(),
                _ => format!("{kind}s"),
            };
            let detail: Vec<String> = counts.iter().map(|(kind, n)| format!("{n} {}", plural(kind, *n))).collect();
            d.push(row("schema", Status::Ok, rows.len() as i64, format!("objects: {}", detail.join(", "))));
            Some(trees)
        }
        Err(e) => {
            d.push(row("schema", Status::Critical, Value::Null, format!("cannot read sqlite_schema: {}", e.message())));
            d.findings.file_damage.push("the schema".into());
            None
        }
    }
}

fn pragma_messages(db: Db, sql: &str) -> Result<Vec<String>, Error> {
    let rows = db.query(sql, &[])?;
    let texts: Vec<String> = rows.iter().filter_map(|r| r[0].as_str().map(str::to_string)).collect();
    Ok(integrity::messages(&texts))
}

/// SQLITE_BUSY or SQLITE_LOCKED: another connection's lock, not damage.
pub fn is_locked(error: &Error) -> bool {
    matches!(error.primary_code(), 5 | 6)
}

fn check_row(d: &mut Diagnosis, step: &'static str, result: &Result<Vec<String>, Error>) {
    let r = match result {
        Ok(messages) if messages.is_empty() => row(step, Status::Ok, 0, "ok"),
        Ok(messages) => {
            let first: Vec<&str> = messages.iter().take(3).map(String::as_str).collect();
            let more = if messages.len() > 3 { format!("; … ({} in all)", messages.len()) } else { String::new() };
            row(step, Status::Critical, messages.len() as i64, format!("{}{more}", first.join("; ")))
        }
        Err(e) if is_locked(e) => {
            d.findings.locked = true;
            row(step, Status::Warning, Value::Null, format!("not run: {} (another connection is writing)", e.message()))
        }
        Err(e) => {
            let what = "SQLite's checks stop at the damage";
            if !d.findings.file_damage.iter().any(|w| w == what) {
                d.findings.file_damage.push(what.into());
            }
            row(step, Status::Critical, Value::Null, format!("stopped with an error: {}", e.message()))
        }
    };
    d.push(r);
}

/// Page → b-tree name for the `wanted` pages, as far as dbstat reaches through the damage (one pass over
/// dbstat; SQLite 3.42 and older name pages, not trees, in integrity_check's messages); empty without dbstat.
fn page_owners(db: Db, wanted: &HashSet<u32>) -> HashMap<u32, String> {
    let mut owners = HashMap::new();
    let Ok(mut stmt) = db.prepare("SELECT pageno, name FROM dbstat") else { return owners };
    while let Ok(true) = stmt.step() {
        let page = stmt.column(0).as_i64().unwrap_or(0) as u32;
        if wanted.contains(&page) {
            owners.insert(page, stmt.column(1).as_str().unwrap_or_default().to_string());
            if owners.len() == wanted.len() {
                break;
            }
        }
    }
    owners
}

fn damaged_btrees(d: &mut Diagnosis, groups: &[Group]) {
    for group in groups {
        let status = if group.kind == "index" { Status::Warning } else { Status::Critical };
        match group.kind.as_str() {
            "index" => d.findings.damaged_indexes.push(group.name.clone()),
            "pages" => d.findings.page_damage = true,
            _ => d.findings.damaged_tables.push(group.name.clone()),
        }
        let pages = if group.pages.is_empty() { String::new() } else { format!(" on {}", pages_named(&group.pages)) };
        let first: Vec<&str> = group.messages.iter().take(2).map(String::as_str).collect();
        let detail = format!("{} {} messages{pages}: {}", group.kind, group.messages.len(), first.join("; "));
        d.push(row("damaged_btree", status, group.name.as_str(), detail));
    }
}

/// "page 8" or "pages 5, 6, …".
fn pages_named(pages: &BTreeSet<u32>) -> String {
    match pages.len() {
        1 => format!("page {}", list(pages)),
        _ => format!("pages {}", list(pages)),
    }
}

fn list(pages: &BTreeSet<u32>) -> String {
    let shown: Vec<String> = pages.iter().take(20).map(u32::to_string).collect();
    let more = if pages.len() > 20 { format!(" … ({} in all)", pages.len()) } else { String::new() };
    format!("{}{more}", shown.join(", "))
}

fn foreign_keys(d: &mut Diagnosis, db: Db) {
    let r = match db.query("SELECT \"table\", count(*) FROM pragma_foreign_key_check GROUP BY 1 ORDER BY 1", &[]) {
        Ok(rows) if rows.is_empty() => row("foreign_key_check", Status::Ok, 0, "no row lacks its parent"),
        Ok(rows) => {
            let total: i64 = rows.iter().filter_map(|r| r[1].as_i64()).sum();
            d.findings.foreign_key_violations = total as u64;
            let per: Vec<String> = rows
                .iter()
                .map(|r| format!("{} ({})", r[0].as_str().unwrap_or_default(), r[1].as_i64().unwrap_or(0)))
                .collect();
            row(
                "foreign_key_check",
                Status::Warning,
                total,
                format!("rows whose parent is missing: {}", per.join(", ")),
            )
        }
        Err(e) => {
            row("foreign_key_check", Status::Skipped, Value::Null, format!("stopped with an error: {}", e.message()))
        }
    };
    d.push(r);
}

/// Which pages are damaged: vigil's page survey (its own b-tree walk, no SQLite) when it can read the file,
/// else the pages integrity_check names. Trees the survey finds damaged and integrity_check did not name
/// (SQLite could not open the file, or stopped early) get their own `damaged_btree` rows.
pub fn damaged_pages(d: &mut Diagnosis, path: &Path, groups: &[Group]) {
    match crate::salvage::survey::survey(path) {
        Ok(survey) => surveyed(d, &survey, groups),
        Err(e) => {
            let why = format!("vigil's page survey cannot read the file ({e}); as integrity_check names them");
            named_by_integrity(d, groups, &why)
        }
    }
}

fn surveyed(d: &mut Diagnosis, survey: &Survey, groups: &[Group]) {
    let mut damaged = BTreeSet::new();
    let mut notes = Vec::new();
    for tree in survey.trees.iter().filter(|t| !t.damaged.is_empty()) {
        let pages: BTreeSet<u32> = tree.damaged.iter().map(|(page, _)| *page).collect();
        damaged.extend(pages.iter().copied());
        notes.push(format!("{} {}: {} ({})", tree.kind, tree.name, pages_named(&pages), tree.damaged[0].1));
        if !groups.iter().any(|g| g.name == tree.name) {
            survey_tree_row(d, tree, &pages);
        }
    }
    if !survey.orphan_pages.is_empty() {
        d.findings.page_damage = true;
        let orphans: BTreeSet<u32> = survey.orphan_pages.iter().copied().collect();
        notes.push(format!("{} b-tree pages no tree reaches: {}", orphans.len(), list(&orphans)));
    }
    if !survey.freelist_problems.is_empty() {
        d.findings.page_damage = true;
        notes.push(format!("freelist: {}", survey.freelist_problems.join("; ")));
    }
    let walked: u32 = survey.trees.iter().map(|t| t.pages).sum();
    let what = format!("vigil's page survey of {} b-trees ({walked} pages)", survey.trees.len());
    let r = match (damaged.is_empty(), notes.is_empty()) {
        (true, true) => row("damaged_pages", Status::Ok, 0, format!("none, by {what}")),
        (true, false) => row("damaged_pages", Status::Warning, 0, format!("{what}: {}", notes.join("; "))),
        (false, _) => {
            row("damaged_pages", Status::Critical, damaged.len() as i64, format!("{what}: {}", notes.join("; ")))
        }
    };
    d.push(r);
}

/// A `damaged_btree` row for a tree only the survey found damaged.
fn survey_tree_row(d: &mut Diagnosis, tree: &TreeSurvey, pages: &BTreeSet<u32>) {
    let status = if tree.kind == "index" { Status::Warning } else { Status::Critical };
    let list_for = if tree.kind == "index" { &mut d.findings.damaged_indexes } else { &mut d.findings.damaged_tables };
    if !list_for.contains(&tree.name) {
        list_for.push(tree.name.clone());
    }
    let detail =
        format!("{} damaged (vigil's page survey) on {}: {}", tree.kind, pages_named(pages), tree.damaged[0].1);
    d.push(row("damaged_btree", status, tree.name.as_str(), detail));
}

fn named_by_integrity(d: &mut Diagnosis, groups: &[Group], source: &str) {
    let pages_of = |trees: bool| -> BTreeSet<u32> {
        groups.iter().filter(|g| (g.kind != "pages") == trees).flat_map(|g| g.pages.iter().copied()).collect()
    };
    let (damaged, elsewhere) = (pages_of(true), pages_of(false));
    let mut notes = Vec::new();
    if !damaged.is_empty() {
        notes.push(format!("b-tree {}", pages_named(&damaged)));
    }
    if !elsewhere.is_empty() {
        notes.push(format!("{} pages outside any b-tree (lost or misfiled): {}", elsewhere.len(), list(&elsewhere)));
    }
    let r = if groups.is_empty() {
        row("damaged_pages", Status::Ok, 0, format!("none, {source}"))
    } else if notes.is_empty() {
        row("damaged_pages", Status::Critical, Value::Null, format!("damage found, no page named, {source}"))
    } else {
        row("damaged_pages", Status::Critical, damaged.len() as i64, format!("{}, {source}", notes.join("; ")))
    };
    d.push(r);
}

fn backup(d: &mut Diagnosis, db: Db) {
    let r = match crate::store::backup_log::verified(db, "main", 20) {
        Err(e) => row(
            "last_verified_backup",
            Status::Skipped,
            Value::Null,
            format!("the backup log cannot be read: {}", e.message()),
        ),
        Ok(recorded) => match recorded.into_iter().find(|b| Path::new(&b.path).is_file()) {
            None => row(
                "last_verified_backup",
                Status::Info,
                Value::Null,
                "none recorded whose file still exists (vigil_backup_log)",
            ),
            Some(b) => {
                let age = age_of(&b.created_at).map_or(String::new(), |a| format!(", {a} ago"));
                let detail = format!("taken {}{age}, verified ({})", b.created_at, b.verify);
                d.findings.backup = Some((b.path.clone(), b.created_at.clone()));
                row("last_verified_backup", Status::Ok, b.path.as_str(), detail)
            }
        },
    };
    d.push(r);
}

/// How long ago an RFC 3339 instant was, in the largest whole unit.
fn age_of(instant: &str) -> Option<String> {
    let then = chrono::DateTime::parse_from_rfc3339(instant).ok()?;
    let seconds = (chrono::Utc::now() - then.with_timezone(&chrono::Utc)).num_seconds().max(0);
    Some(match seconds {
        s if s >= 86_400 => format!("{} days", s / 86_400),
        s if s >= 3_600 => format!("{} hours", s / 3_600),
        s if s >= 60 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    })
}
