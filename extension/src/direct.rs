//! Writing functions run only when the application's own SQL calls them, never from the database's schema.
//!
//! SQLITE_DIRECTONLY should keep CHECK constraints, generated columns, index expressions, views and triggers
//! stored in a database file from calling vigil's writing functions, but not every host enforces it: the
//! Debian sqlite3 3.40 shell runs a CHECK constraint's `backup_to(…)` on every INSERT. So vigil checks for
//! itself. SQL stored in the schema runs inside the application's statement (triggers, views and constraints
//! have no statement of their own), so a call is direct only when a statement running on the connection
//! names the function as a call in its own text. And vigil's own SQL never calls a writing function: one
//! reached while another vigil function runs came from the schema (a trigger on a table vigil writes).

use crate::error::{Error, Result};
use crate::guard;
use crate::sqlite::Db;

/// Refuses the call of the writing function `name` unless the application called it directly: every statement
/// running on the connection calls it by name. One running statement that does not could be where the call
/// came from (a statement left stepped but not reset, whose rows were not all read, is running too: its text
/// would otherwise vouch for a CHECK constraint fired by the application's next INSERT).
pub fn require_direct_call(db: Db, name: &str) -> Result<()> {
    let running = db.running_statements();
    let calling = running.iter().filter(|sql| sql.as_deref().is_some_and(|sql| calls(sql, name))).count();
    if guard::is_nested() || calling == 0 {
        return Err(Error::new(format!(
            "refused: it was reached from the database's schema (a CHECK constraint, a trigger, a view, an index \
             or a generated column), not called by your SQL; a writing function runs only when your statement \
             calls it by name, e.g. SELECT {name}(…); remove the object that calls it (SELECT name, sql FROM \
             sqlite_schema WHERE sql LIKE '%{name}%')"
        )));
    }
    if calling < running.len() {
        return Err(Error::new(format!(
            "refused: other statements are still running on this connection (a query whose rows were not all \
             read, or that was not reset), so vigil cannot tell that your SQL called it rather than the \
             database's schema through one of them; finish or reset them (in Python: read or close the cursor), \
             then call {name} in a statement of its own"
        )));
    }
    Ok(())
}

/// Whether `sql` calls the function `name`: its name (bare or quoted, any case) followed by `(`, outside
/// string literals and comments, and not where SQL puts a table name (`INTO t(…)`, `ON t(…)`, `s.t(…)`).
/// A name followed by `(…) AS` defines a common table expression (`WITH backup_to(a) AS (…)`): not a call.
pub fn calls(sql: &str, name: &str) -> bool {
    let tokens = tokenize(sql);
    tokens.windows(2).enumerate().any(|(i, pair)| {
        let names_it = matches!(&pair[0], Token::Word(w) | Token::Quoted(w) if w.eq_ignore_ascii_case(name));
        let table_position = i > 0 && introduces_table_name(&tokens[i - 1]);
        names_it && pair[1] == Token::Punct('(') && !table_position && !defines_table(&tokens, i + 1)
    })
}

/// Whether the parenthesis at `open` closes before `AS (`, as a common table expression's column list does.
fn defines_table(tokens: &[Token], open: usize) -> bool {
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate().skip(open) {
        match token {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') if depth == 1 => {
                let is = |at: usize, word: &str| matches!(tokens.get(at), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word));
                // `AS (`, `AS MATERIALIZED`, `AS NOT MATERIALIZED`; a call's alias is `AS name`.
                let body = matches!(tokens.get(i + 2), Some(Token::Punct('(')))
                    || is(i + 2, "MATERIALIZED")
                    || is(i + 2, "NOT");
                return is(i + 1, "AS") && body;
            }
            Token::Punct(')') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Tokens after which a name followed by `(` is a table or index with a column list, not a function call.
fn introduces_table_name(token: &Token) -> bool {
    const KEYWORDS: [&str; 7] = ["INTO", "TABLE", "VIEW", "INDEX", "ON", "REFERENCES", "EXISTS"];
    match token {
        Token::Word(w) => KEYWORDS.iter().any(|k| w.eq_ignore_ascii_case(k)),
        Token::Punct(c) => *c == '.',
        _ => false,
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    /// A bare identifier or keyword.
    Word(String),
    /// A `"…"`, `` `…` `` or `[…]` identifier, unquoted.
    Quoted(String),
    /// A string or blob literal (its content does not matter here).
    Literal,
    Punct(char),
}

/// SQLite's tokens, as far as finding calls needs: comments and whitespace dropped, literals opaque.
fn tokenize(sql: &str) -> Vec<Token> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let rest = &chars[i..];
        if c.is_whitespace() {
            i += 1;
        } else if rest.starts_with(&['-', '-']) {
            i = skip_until(&chars, i + 2, &['\n']);
        } else if rest.starts_with(&['/', '*']) {
            i = skip_until(&chars, i + 2, &['*', '/']);
        } else if c == '\'' {
            i = quoted_end(&chars, i, '\'');
            tokens.push(Token::Literal);
        } else if let Some(close) = identifier_quote(c) {
            let end = quoted_end(&chars, i, close);
            // Without its closing quote when it has one (an unterminated name runs to the end of the text).
            let inner_end = if end > i + 1 && chars[end - 1] == close { end - 1 } else { end };
            let inner: String = chars[i + 1..inner_end].iter().collect();
            tokens.push(Token::Quoted(inner.replace(&format!("{close}{close}"), &close.to_string())));
            i = end;
        } else if is_word_char(c) {
            let start = i;
            while i < chars.len() && is_word_char(chars[i]) {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            tokens.push(Token::Punct(c));
            i += 1;
        }
    }
    tokens
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

fn identifier_quote(open: char) -> Option<char> {
    match open {
        '"' => Some('"'),
        '`' => Some('`'),
        '[' => Some(']'),
        _ => None,
    }
}

/// The index just past the quoted text opened at `start`; a doubled closing quote is part of the text
/// (except in `[…]`, which has no escape).
fn quoted_end(chars: &[char], start: usize, close: char) -> usize {
    let mut i = start + 1;
    while i < chars.len() {
        if chars[i] == close {
            if close != ']' && chars.get(i + 1) == Some(&close) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    chars.len()
}

/// The index just past `end` found from `from` (the end of the text when it never comes).
fn skip_until(chars: &[char], from: usize, end: &[char]) -> usize {
    (from..chars.len()).find(|&i| chars[i..].starts_with(end)).map_or(chars.len(), |i| i + end.len())
}

#[cfg(test)]
mod tests {
    use super::calls;

    #[test]
    fn a_call_in_any_case_spacing_or_quoting_is_found() {
        for sql in [
            "SELECT backup_to('x')",
            "select BACKUP_TO(?1, ?2)",
            "SELECT backup_to /* why */ (\n'x')",
            "SELECT backup_to -- comment\n ('x')",
            "SELECT \"backup_to\"('x')",
            "SELECT [backup_to]('x'), `backup_to`('y')",
            "INSERT INTO log SELECT backup_to('d')",
            "SELECT 1 WHERE (SELECT backup_to('d')) IS NOT NULL",
            "SELECT backup_to('x') AS r",
            "SELECT backup_to(a) AS \"r\" FROM t",
            "WITH w AS (SELECT backup_to('x') AS r) SELECT r FROM w",
        ] {
            assert!(calls(sql, "backup_to"), "{sql}");
        }
    }

    #[test]
    fn a_name_that_is_not_a_call_is_not_found() {
        for sql in [
            "INSERT INTO c VALUES(1)",
            "SELECT * FROM vw",
            "SELECT 'backup_to(' || x FROM t",
            "SELECT 1 /* backup_to('x') */",
            "SELECT 1 -- backup_to('x')",
            "SELECT \"backup_to(\" FROM t",
            "SELECT * FROM \"backup_to('x')\"",
            "WITH backup_to(a) AS (SELECT 1) INSERT INTO orders SELECT a, 'x' FROM backup_to",
            "WITH x AS (SELECT 1), \"backup_to\"(a, b) AS MATERIALIZED (SELECT 1, 2) SELECT * FROM backup_to",
            "SELECT my_backup_to('x'), backup_to_x('y'), backup_to",
            "INSERT INTO backup_to(a) VALUES (1)",
            "INSERT INTO main.backup_to(a) VALUES (1)",
            "CREATE TABLE IF NOT EXISTS backup_to(a)",
            "CREATE INDEX i ON backup_to(a)",
            "SELECT x'00' AS backup_to",
            "SELECT 'it''s backup_to(' FROM t",
            "SELECT 1 /* unterminated backup_to(",
            "SELECT \"backup_to",
            "SELECT [",
        ] {
            assert!(!calls(sql, "backup_to"), "{sql}");
        }
    }
}
