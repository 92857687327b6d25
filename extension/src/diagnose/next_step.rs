//! The recommendation that ends a diagnosis: what to do first, for which findings.

/// What the diagnosis found that the next step depends on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Findings {
    /// The database path as the user gave it (named in the commands recommended).
    pub path: String,
    /// Nothing to repair: the path is missing, not a file, or not an SQLite database at all. Why.
    pub not_a_database: Option<String>,
    /// Damage that loses rows or stops SQLite reading: the header, a truncated file, a file SQLite cannot
    /// open, an unreadable schema. What it is.
    pub file_damage: Vec<String>,
    /// Tables whose b-trees are damaged (or whose rows break their constraints).
    pub damaged_tables: Vec<String>,
    /// Indexes whose b-trees or entries are damaged.
    pub damaged_indexes: Vec<String>,
    /// Pages that are lost or misfiled but belong to no named b-tree (freelist, unreachable pages).
    pub page_damage: bool,
    /// A hot journal (the database itself is in its pre-rollback state until a writer opens it).
    pub hot_journal: bool,
    pub foreign_key_violations: u64,
    /// Another connection's lock kept a step from running (not damage: the diagnosis is incomplete).
    pub locked: bool,
    /// The newest verified backup whose file exists: (path, created_at).
    pub backup: Option<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    None,
    CheckPath,
    Restore,
    Salvage,
    Reindex,
    Vacuum,
    RollBack,
    ForeignKeys,
    Retry,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::CheckPath => "check_path",
            Action::Restore => "restore",
            Action::Salvage => "salvage",
            Action::Reindex => "reindex",
            Action::Vacuum => "vacuum",
            Action::RollBack => "roll_back",
            Action::ForeignKeys => "fix_foreign_keys",
            Action::Retry => "retry",
        }
    }
}

/// The step to take and how, in words a user can follow.
#[derive(Debug, Clone, PartialEq)]
pub struct NextStep {
    pub action: Action,
    pub detail: String,
}

fn quoted_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Shell-quotes a path when it needs it.
fn shell_word(text: &str) -> String {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-._+:@%".contains(&b)) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Data damage is repaired from the newest verified backup when there is one, else by salvage; damage
/// confined to indexes by REINDEX (lossless, so it comes before a restore); lost pages by VACUUM.
pub fn next_step(f: &Findings) -> NextStep {
    let db = shell_word(&f.path);
    if let Some(why) = &f.not_a_database {
        return NextStep { action: Action::CheckPath, detail: format!("nothing to repair: {why}") };
    }
    let mut damage: Vec<String> = f.file_damage.clone();
    damage.extend(f.damaged_tables.iter().map(|t| format!("table {t}")));
    if !damage.is_empty() {
        let what = damage.join(", ");
        return match &f.backup {
            Some((backup, at)) => NextStep {
                action: Action::Restore,
                detail: format!(
                    "mv {db} {db}.damaged && vigil restore {} {db} (the newest verified backup, taken {at}; \
                     damaged: {what}); then vigil salvage {db}.damaged OUT gets back the rows written since",
                    shell_word(backup)
                ),
            },
            None => NextStep {
                action: Action::Salvage,
                detail: format!(
                    "vigil salvage {db} OUT: copies every row still readable into a new database OUT (damaged: \
                     {what}; no verified backup of this database is recorded)"
                ),
            },
        };
    }
    if f.locked {
        return NextStep {
            action: Action::Retry,
            detail: format!(
                "vigil diagnose {db} again when the writer is done: its lock kept SQLite's checks from running"
            ),
        };
    }
    if !f.damaged_indexes.is_empty() {
        let statements: Vec<String> =
            f.damaged_indexes.iter().map(|i| format!("REINDEX {};", quoted_ident(i))).collect();
        return NextStep {
            action: Action::Reindex,
            detail: format!(
                "{} (only indexes are damaged: they are rebuilt from their tables); if SQLite refuses (\"database \
                 disk image is malformed\": the damaged pages cannot even be freed), vigil salvage {db} OUT copies \
                 every row, all intact, into a new database with its indexes rebuilt",
                statements.join(" ")
            ),
        };
    }
    if f.page_damage {
        return NextStep {
            action: Action::Vacuum,
            detail: "VACUUM (or vigil maintain) rebuilds the file: pages that no b-tree or the freelist accounts for \
                     are dropped; the tables and indexes are intact"
                .into(),
        };
    }
    if f.hot_journal {
        return NextStep {
            action: Action::RollBack,
            detail: format!(
                "open {db} read-write once (sqlite3 {db} 'PRAGMA quick_check') so that SQLite rolls back the \
                 interrupted transaction; its rolled-back state checked healthy"
            ),
        };
    }
    if f.foreign_key_violations > 0 {
        return NextStep {
            action: Action::ForeignKeys,
            detail: format!(
                "PRAGMA foreign_key_check lists the {} rows whose parent is missing: if the application enforces \
                 these foreign keys (PRAGMA foreign_keys=ON), fix them; many applications declare REFERENCES \
                 without enforcing them, and then these rows are as the application wrote them",
                f.foreign_key_violations
            ),
        };
    }
    NextStep { action: Action::None, detail: "nothing: the database is healthy".into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings() -> Findings {
        Findings { path: "shop.db".into(), ..Findings::default() }
    }

    #[test]
    fn a_healthy_database_needs_nothing() {
        assert_eq!(next_step(&findings()).action, Action::None);
    }

    #[test]
    fn index_only_damage_is_reindexed_by_name_even_with_a_backup() {
        let f = Findings {
            damaged_indexes: vec!["t_a".into(), "odd\"name".into()],
            backup: Some(("/b/shop.db".into(), "2026-01-01T00:00:00.000Z".into())),
            ..findings()
        };
        let step = next_step(&f);
        assert_eq!(step.action, Action::Reindex);
        assert!(step.detail.starts_with("REINDEX \"t_a\"; REINDEX \"odd\"\"name\";"), "{}", step.detail);
    }

    #[test]
    fn table_damage_restores_the_verified_backup_or_else_salvages() {
        let damaged =
            Findings { damaged_tables: vec!["orders".into()], damaged_indexes: vec!["i".into()], ..findings() };
        let step = next_step(&damaged);
        assert_eq!(step.action, Action::Salvage);
        assert!(step.detail.starts_with("vigil salvage shop.db OUT"), "{}", step.detail);
        assert!(step.detail.contains("table orders"), "{}", step.detail);
        let with_backup = Findings { backup: Some(("/b/my shop.db".into(), "2026-01-01".into())), ..damaged };
        let step = next_step(&with_backup);
        assert_eq!(step.action, Action::Restore);
        assert!(
            step.detail.starts_with("mv shop.db shop.db.damaged && vigil restore '/b/my shop.db' shop.db"),
            "{}",
            step.detail
        );
    }

    #[test]
    fn file_damage_counts_as_data_damage() {
        let f = Findings { file_damage: vec!["truncated".into()], ..findings() };
        assert_eq!(next_step(&f).action, Action::Salvage);
    }

    #[test]
    fn lesser_findings_come_in_order_of_harm() {
        let f = Findings { page_damage: true, hot_journal: true, foreign_key_violations: 2, ..findings() };
        assert_eq!(next_step(&f).action, Action::Vacuum);
        let f = Findings { hot_journal: true, foreign_key_violations: 2, ..findings() };
        assert_eq!(next_step(&f).action, Action::RollBack);
        let f = Findings { foreign_key_violations: 2, ..findings() };
        assert_eq!(next_step(&f).action, Action::ForeignKeys);
        let f = Findings { locked: true, damaged_indexes: vec!["i".into()], ..findings() };
        assert_eq!(next_step(&f).action, Action::Retry, "a partial diagnosis is no ground for a repair");
        let f = Findings { locked: true, damaged_tables: vec!["t".into()], ..findings() };
        assert_eq!(next_step(&f).action, Action::Salvage, "damage seen is damage");
        let f =
            Findings { not_a_database: Some("no such file".into()), damaged_tables: vec!["t".into()], ..findings() };
        assert_eq!(next_step(&f).action, Action::CheckPath);
    }
}
