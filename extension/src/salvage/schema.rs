//! The schema of a damaged file, from its sqlite_schema b-tree (rooted at page 1), or from what survives of it
//! on pages found outside every tree.

use super::cells::{read_cell, Entry, Read};
use super::walk::{Bounds, Visitor, Walker};
use crate::format::btree::{BtreePage, PageKind};
use crate::sqlite::Value;

/// One row of sqlite_schema.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaEntry {
    pub kind: String,
    pub name: String,
    pub table: String,
    pub root: u32,
    pub sql: Option<String>,
}

impl SchemaEntry {
    /// A schema row from a record, when it has the shape of one.
    pub fn from_values(values: &[Value]) -> Option<SchemaEntry> {
        let [kind, name, table, root, sql] = values else { return None };
        let kind = kind.as_str().filter(|k| ["table", "index", "view", "trigger"].contains(k))?;
        let root = match root {
            Value::Integer(n) => u32::try_from(*n).ok()?,
            Value::Null => 0,
            _ => return None,
        };
        let sql = match sql {
            Value::Text(text) => Some(text.clone()),
            Value::Null => None,
            _ => return None,
        };
        Some(SchemaEntry {
            kind: kind.to_string(),
            name: name.as_str()?.to_string(),
            table: table.as_str()?.to_string(),
            root,
            sql,
        })
    }

    pub fn is_table(&self) -> bool {
        self.kind == "table"
    }

    /// A WITHOUT ROWID table is stored in an index b-tree (the words are matched loosely: a false positive
    /// only makes the walk find pages of the wrong kind, which it reports).
    pub fn without_rowid(&self) -> bool {
        let sql = self.sql.as_deref().unwrap_or("").to_ascii_lowercase();
        let tail = sql.rsplit(')').next().unwrap_or("");
        tail.contains("without") && tail.contains("rowid")
    }

    pub fn is_virtual(&self) -> bool {
        self.sql.as_deref().is_some_and(|s| s.trim_start().to_ascii_lowercase().starts_with("create virtual"))
    }
}

/// Collects the schema rows of the sqlite_schema tree.
#[derive(Default)]
pub struct SchemaReader {
    pub entries: Vec<SchemaEntry>,
    pub rejected: usize,
}

impl Visitor for SchemaReader {
    fn entries(&mut self, walk: &mut Walker<'_>, tree: u32, page: &BtreePage<'_>, bounds: Bounds) {
        for i in 0..page.cell_count() {
            match read_cell(walk.pages, page, i, &|key| bounds.holds(key)) {
                Read::Whole(entry, chain) if walk.claim_overflow(tree, &chain) => self.add(&entry),
                _ => self.rejected += 1,
            }
        }
    }
}

impl SchemaReader {
    fn add(&mut self, entry: &Entry) {
        match SchemaEntry::from_values(&entry.values) {
            Some(found) if !self.entries.iter().any(|e| e.name.eq_ignore_ascii_case(&found.name)) => {
                self.entries.push(found)
            }
            Some(_) => {}
            None => self.rejected += 1,
        }
    }

    /// Looks at every page no tree claimed for table leaves of schema rows (the schema tree was damaged):
    /// those pages then belong to the schema tree.
    pub fn search_orphans(&mut self, walk: &mut Walker<'_>, tree: u32) {
        for number in 2..=walk.pages.page_count {
            if walk.owner(number) != super::walk::Owner::Nobody {
                continue;
            }
            let Some(bytes) = walk.pages.page(number) else { continue };
            let Ok(page) = BtreePage::parse(number, &bytes, walk.pages.usable_size()) else { continue };
            if page.kind != PageKind::LeafTable {
                continue;
            }
            let before = self.entries.len();
            let mut found = Vec::new();
            for i in 0..page.cell_count() {
                if let Read::Whole(entry, chain) = read_cell(walk.pages, &page, i, &|_| true) {
                    if SchemaEntry::from_values(&entry.values).is_some() {
                        found.push((entry, chain));
                    }
                }
            }
            // A page of schema rows only: one stray match on a page of user rows is not schema.
            if found.is_empty() || found.len() != page.cell_count() {
                continue;
            }
            for (entry, chain) in found {
                if walk.claim_overflow(tree, &chain) {
                    self.add(&entry);
                }
            }
            if self.entries.len() > before {
                walk.claim_as(number, tree);
            }
        }
    }
}
