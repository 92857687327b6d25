//! integrity_check's messages grouped by the b-tree they are about. SQLite names a tree in three ways,
//! depending on the message and the version: by its root ("Tree 5 page 7 cell 2: …", 3.43 and later), by
//! a page of it ("On tree page 7 cell 2: …", "Page 7: …", 3.42 and earlier), or by an index's name ("row 3
//! missing from index i", "wrong # of entries in index i"). Roots map to names through sqlite_schema, other
//! pages through dbstat when the host has it (vigil's page survey will replace that).

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What one message is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// The b-tree rooted at this page.
    Root(u32),
    /// A page of some b-tree (which one, the caller looks up).
    Page(u32),
    /// A page no b-tree or freelist reaches ("Page 9 is never used").
    Unreachable(u32),
    /// A table or index by name (index entry counts, NULL or CHECK constraint failures).
    Named(String),
    Freelist,
    Other,
}

/// SQLite's generic message, which says nothing of where, when a check stops at damage it cannot step over.
const MALFORMED: &str = "database disk image is malformed";

/// Splits SQLite's output rows into messages (3.40 joins a b-tree's messages with newlines in one row),
/// dropping the "*** in database main ***" banners, and the generic "malformed" when others say where.
pub fn messages(rows: &[String]) -> Vec<String> {
    let mut all: Vec<String> = rows
        .iter()
        .flat_map(|row| row.lines())
        .map(str::trim)
        .filter(|line| !line.is_empty() && *line != "ok" && !line.starts_with("*** in database"))
        .map(str::to_string)
        .collect();
    if all.iter().any(|m| m != MALFORMED) {
        all.retain(|m| m != MALFORMED);
    }
    all
}

fn number_after(text: &str, prefix: &str) -> Option<u32> {
    let rest = text.strip_prefix(prefix)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn name_after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    text.find(marker).map(|at| text[at + marker.len()..].trim())
}

/// What an integrity_check message is about.
pub fn subject(message: &str) -> Subject {
    if let Some(root) = number_after(message, "Tree ") {
        return Subject::Root(root);
    }
    if message.starts_with("Freelist") || message.contains("freelist") {
        return Subject::Freelist;
    }
    if message.ends_with("is never used") || message.ends_with("never used") {
        if let Some(page) = number_after(message, "Page ") {
            return Subject::Unreachable(page);
        }
    }
    for prefix in ["On tree page ", "On page ", "Page "] {
        if let Some(page) = number_after(message, prefix) {
            return Subject::Page(page);
        }
    }
    for marker in ["missing from index ", "entries in index ", "non-unique entry in index "] {
        if let Some(name) = name_after(message, marker) {
            return Subject::Named(name.to_string());
        }
    }
    for marker in ["constraint failed in ", " value in "] {
        if let Some(name) = name_after(message, marker) {
            let table = name.split('.').next().unwrap_or(name);
            return Subject::Named(table.to_string());
        }
    }
    Subject::Other
}

/// The pages a message names after its subject ("… invalid page number 99" is about the tree, not page 99).
fn page_of(message: &str, subject: &Subject) -> Option<u32> {
    match subject {
        Subject::Page(page) | Subject::Unreachable(page) => Some(*page),
        Subject::Root(_) => message.find(" page ").and_then(|at| number_after(&message[at..], " page ")),
        _ => None,
    }
}

/// The messages about one b-tree (or about the freelist, unreachable pages, or nothing known).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    pub name: String,
    /// "table", "index", or "pages" for what is not a b-tree of the schema.
    pub kind: String,
    pub messages: Vec<String>,
    pub pages: BTreeSet<u32>,
}

/// The schema's b-trees: root page → (name, type), and name → type.
#[derive(Debug, Default)]
pub struct Trees {
    pub by_root: HashMap<u32, (String, String)>,
    pub kinds: HashMap<String, String>,
}

impl Trees {
    pub fn add(&mut self, name: &str, kind: &str, root: u32) {
        if root > 0 {
            self.by_root.insert(root, (name.to_string(), kind.to_string()));
        }
        self.kinds.insert(name.to_string(), kind.to_string());
    }
}

/// Groups messages by b-tree. `page_owner` names the b-tree a (non-root) page belongs to, when known.
pub fn group(messages: &[String], trees: &Trees, page_owner: &dyn Fn(u32) -> Option<String>) -> Vec<Group> {
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for message in messages {
        let subject = subject(message);
        let name = match &subject {
            Subject::Root(root) => trees.by_root.get(root).map(|(n, _)| n.clone()),
            Subject::Page(page) => trees.by_root.get(page).map(|(n, _)| n.clone()).or_else(|| page_owner(*page)),
            Subject::Named(name) => Some(name.clone()),
            _ => None,
        };
        let (name, kind) = match (&subject, name) {
            (_, Some(name)) => {
                let kind = trees.kinds.get(&name).cloned().unwrap_or_else(|| "table".into());
                (name, kind)
            }
            (Subject::Freelist, None) => ("(freelist)".to_string(), "pages".to_string()),
            (Subject::Unreachable(_), None) => ("(pages no b-tree reaches)".to_string(), "pages".to_string()),
            _ => ("(b-tree not known)".to_string(), "pages".to_string()),
        };
        let group = groups.entry(name.clone()).or_insert_with(|| Group { name, kind, ..Group::default() });
        group.pages.extend(page_of(message, &subject));
        group.messages.push(message.clone());
    }
    groups.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_of_old_and_new_sqlite_name_their_subject() {
        assert_eq!(subject("Tree 5 page 7 cell 2: Offset 30583 out of range"), Subject::Root(5));
        assert_eq!(subject("On tree page 8 cell 62: Offset 30583 out of range 632..4092"), Subject::Page(8));
        assert_eq!(subject("Page 2: btreeInitPage() returns error code 11"), Subject::Page(2));
        assert_eq!(subject("Page 9 is never used"), Subject::Unreachable(9));
        assert_eq!(subject("row 12 missing from index t_a"), Subject::Named("t_a".into()));
        assert_eq!(subject("wrong # of entries in index t_a"), Subject::Named("t_a".into()));
        assert_eq!(subject("NULL value in t.a"), Subject::Named("t".into()));
        assert_eq!(subject("Freelist: size is 3 but should be 4"), Subject::Freelist);
        assert_eq!(subject("something new"), Subject::Other);
    }

    #[test]
    fn messages_are_grouped_by_the_tree_their_page_belongs_to() {
        let rows = vec![
            "*** in database main ***\nOn tree page 8 cell 1: bad\nOn tree page 8 cell 2: bad".to_string(),
            "Tree 2 page 5 cell 0: bad".to_string(),
            "wrong # of entries in index t_a".to_string(),
            "Page 30 is never used".to_string(),
        ];
        let mut trees = Trees::default();
        trees.add("t", "table", 2);
        trees.add("t_a", "index", 3);
        let owner = |page: u32| (page == 8).then(|| "t_a".to_string());
        let groups = group(&messages(&rows), &trees, &owner);
        let summary: Vec<(&str, &str, usize, Vec<u32>)> = groups
            .iter()
            .map(|g| (g.name.as_str(), g.kind.as_str(), g.messages.len(), g.pages.iter().copied().collect()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("(pages no b-tree reaches)", "pages", 1, vec![30]),
                ("t", "table", 1, vec![5]),
                ("t_a", "index", 3, vec![8]),
            ]
        );
    }
}
