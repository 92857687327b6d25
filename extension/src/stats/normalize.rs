//! Statement normalisation: constants replaced so that `WHERE id = 1` and `WHERE id = 2` are one statement.
//!
//! [`normalize`] produces the text SQLite's own `sqlite3_normalized_sql()` produces (SQLite's `sqlite3Normalize`
//! in src/tokenize.c, which only builds with `SQLITE_ENABLE_NORMALIZE` — neither the system SQLite nor rusqlite's
//! bundled one has it), so that the statement text vigil shows is the one SQLite users know, and an
//! ENABLE_NORMALIZE build is a test oracle (tests/normalize.rs compares the two byte for byte):
//! - strings, numbers, blobs and parameters (`?`, `?NNN`, `:a`, `@a`, `$a`) become `?`; so does `NULL`, except
//!   after `IS` or `NOT`;
//! - the contents of `IN (…)` become `?,?,?` unless they hold an identifier or a `SELECT`, so `IN (1,2)` and
//!   `IN (1,2,3)` are one statement and subqueries stay as written;
//! - keywords are upper-cased, identifiers lower-cased (ASCII only) and unquoted when the quotes are not needed;
//! - comments and whitespace go; one space is kept only between two word characters;
//! - a `;` ends the text unless the statement's last token is one.
//!
//! Deviations from SQLite, each unavoidable or deliberate:
//! 1. A "double-quoted" word that SQLite resolved as a string literal (its legacy misfeature) stays an
//!    identifier here (`b="zz"` → `b=zz`; SQLite: `b=?`): only SQLite's name resolution knows, not a lexer.
//! 2. Numbers with digit separators (`1_000`, `0xff_ff`, SQLite 3.46+) become `?`; SQLite's normaliser does not
//!    know that token and keeps the literal, which would make one statement per value.
//! 3. Only the first [`MAX_INPUT_BYTES`] (64 KiB) of the text are read, and a token cut by that bound is dropped
//!    (so a cut literal never leaks): two statements alike in their first 64 KiB are one. Output is at most
//!    about 2.3 times the bytes read (the worst case, `IN()` repeated, grows 4 bytes into 9).
//!
//! Like SQLite, the text ends at a NUL character. Give it the statement's own text as SQLite keeps it
//! (`sqlite3_sql()`, the text of a `SQLITE_TRACE_STMT` event), which ends at the statement's `;`: like SQLite,
//! whitespace or a comment after that `;` would add a second one. Linear in the input (≤ 64 KiB read), one
//! allocation for the output.

/// Bytes of SQL text read; the rest is ignored (deviation 3).
pub const MAX_INPUT_BYTES: usize = 64 * 1024;

/// The statement with every literal and parameter replaced by `?`, mirroring SQLite's `sqlite3_normalized_sql`.
pub fn normalize(sql: &str) -> String {
    let (text, truncated) = bounded(sql);
    let mut out = Normalizer::new(text.len());
    let mut at = 0;
    let mut last = Kind::Start;
    while at < text.len() {
        let (kind, len) = token(&text[at..]);
        let len = len.max(1).min(text.len() - at);
        if truncated && at + len == text.len() {
            last = Kind::Illegal;
            break;
        }
        out.push(kind, &text[at..at + len]);
        last = kind;
        at += len;
    }
    if last != Kind::Semi {
        out.out.push(b';');
    }
    into_string(out.out)
}

/// A stable 64-bit id of a normalised statement (the first 8 bytes of its SHA-256, as i64).
pub fn queryid(normalized: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(normalized.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// The bytes SQLite would read (up to a NUL), at most MAX_INPUT_BYTES cut at a character boundary; and whether
/// the bound cut them. Never looks past the bound, so the work is bounded whatever the input's size.
fn bounded(sql: &str) -> (&[u8], bool) {
    let mut end = sql.len().min(MAX_INPUT_BYTES);
    while !sql.is_char_boundary(end) {
        end -= 1;
    }
    let head = &sql.as_bytes()[..end];
    match head.iter().position(|&b| b == 0) {
        Some(nul) => (&head[..nul], false),
        None => (head, end < sql.len()),
    }
}

/// Tokens are cut at ASCII bytes and only ASCII letters change case, so the output is UTF-8; the lossy path
/// exists only so that a mistake could never panic.
fn into_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

// ------------------------------------------------------------------ the output

/// What the normaliser needs to know of a token (SQLite's token codes, folded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Before the first token.
    Start,
    Space,
    Comment,
    /// A string, number, blob or parameter.
    Literal,
    Null,
    Is,
    Not,
    In,
    Select,
    /// Any other keyword.
    Keyword,
    /// An identifier, quoted or not.
    Id,
    Lp,
    Rp,
    Semi,
    /// Operators and punctuation.
    Operator,
    /// What SQLite's tokenizer rejects (an unterminated string, a stray `!`): kept, upper-cased, like SQLite.
    Illegal,
}

struct Normalizer {
    out: Vec<u8>,
    /// The last token that was not whitespace (comments count, as in SQLite).
    previous: Kind,
    current: Kind,
    depth: i64,
    /// Where the `(` of an `IN (` list was written (0: not inside one), and its depth.
    in_list_at: usize,
    in_list_depth: i64,
}

impl Normalizer {
    fn new(input_len: usize) -> Normalizer {
        Normalizer {
            out: Vec::with_capacity(input_len + 8),
            previous: Kind::Start,
            current: Kind::Start,
            depth: 0,
            in_list_at: 0,
            in_list_depth: 0,
        }
    }

    fn push(&mut self, kind: Kind, text: &[u8]) {
        if self.current != Kind::Space {
            self.previous = self.current;
        }
        self.current = kind;
        match kind {
            Kind::Start | Kind::Space | Kind::Comment => {}
            Kind::Null if matches!(self.previous, Kind::Is | Kind::Not) => self.out.extend_from_slice(b" NULL"),
            Kind::Null | Kind::Literal => self.out.push(b'?'),
            Kind::Lp => self.open(),
            Kind::Rp => self.close(),
            Kind::Id => {
                self.in_list_at = 0;
                self.identifier(text);
            }
            Kind::Select => {
                self.in_list_at = 0;
                self.word(text);
            }
            Kind::Is | Kind::Not | Kind::In | Kind::Keyword | Kind::Semi | Kind::Operator | Kind::Illegal => {
                self.word(text)
            }
        }
    }

    fn open(&mut self) {
        self.depth += 1;
        if self.previous == Kind::In {
            self.in_list_at = self.out.len();
            self.in_list_depth = self.depth;
        }
        self.out.push(b'(');
    }

    /// The `)` that ends an `IN (` list of constants replaces the list with one form.
    fn close(&mut self) {
        if self.in_list_at > 0 && self.depth == self.in_list_depth {
            self.out.truncate(self.in_list_at + 1);
            self.out.extend_from_slice(b"?,?,?");
            self.in_list_at = 0;
        }
        self.depth -= 1;
        self.out.push(b')');
    }

    /// A keyword, operator or anything else SQLite keeps, upper-cased.
    fn word(&mut self, text: &[u8]) {
        if text.first().is_some_and(|&b| is_id_char(b)) {
            self.space_after_word();
        }
        let from = self.out.len();
        self.out.extend_from_slice(text);
        self.out[from..].make_ascii_uppercase();
    }

    /// Lower-cased; unquoted when the quotes are not needed (the dequoted name is one plain identifier).
    fn identifier(&mut self, text: &[u8]) {
        let from;
        if text.first().is_some_and(|&b| is_quote(b)) {
            let name = dequote(text);
            let (kind, len) = token(&name);
            if kind == Kind::Id && len == name.len() && !name.is_empty() {
                self.space_after_word();
                from = self.out.len();
                self.out.extend_from_slice(&name);
            } else {
                from = self.out.len();
                self.out.push(b'"');
                for &b in &name {
                    self.out.extend_from_slice(if b == b'"' { b"\"\"" } else { std::slice::from_ref(&b) });
                }
                self.out.push(b'"');
            }
        } else {
            self.space_after_word();
            from = self.out.len();
            self.out.extend_from_slice(text);
        }
        self.out[from..].make_ascii_lowercase();
    }

    /// Two words need a space between them; nothing else does.
    fn space_after_word(&mut self) {
        if self.out.last().is_some_and(|&b| is_id_char(b)) {
            self.out.push(b' ');
        }
    }
}

/// A quoted identifier's name: `"a""b"` → `a"b`, `` `a``b` `` → `` a`b ``, `[a b]` → `a b`.
fn dequote(text: &[u8]) -> Vec<u8> {
    let close = match text[0] {
        b'[' => b']',
        quote => quote,
    };
    let mut name = Vec::with_capacity(text.len());
    let mut i = 1;
    while i < text.len() {
        if text[i] == close {
            if at(text, i + 1) != close {
                break;
            }
            i += 1;
        }
        name.push(text[i]);
        i += 1;
    }
    name
}

// ------------------------------------------------------------------ the tokenizer (SQLite's rules)

/// The byte at `i`, or 0 past the end (SQLite reads a NUL-terminated string).
fn at(z: &[u8], i: usize) -> u8 {
    z.get(i).copied().unwrap_or(0)
}

/// Letters, digits, `_`, `$` and every non-ASCII byte.
fn is_id_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

fn is_quote(b: u8) -> bool {
    matches!(b, b'"' | b'\'' | b'`' | b'[')
}

/// SQLite's isspace: a token may start with these except VT, and continue with all of them.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// A letter or `_`: what keywords are made of.
fn is_keyword_char(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

/// The kind and length (≥ 1 unless `z` is empty) of the token at the start of `z`.
fn token(z: &[u8]) -> (Kind, usize) {
    let c = at(z, 0);
    match c {
        b' ' | b'\t' | b'\n' | 0x0c | b'\r' => (Kind::Space, 1 + z[1..].iter().take_while(|&&b| is_space(b)).count()),
        b'-' if at(z, 1) == b'-' => (Kind::Comment, 2 + z[2..].iter().take_while(|&&b| b != b'\n').count()),
        b'-' if at(z, 1) == b'>' => (Kind::Operator, if at(z, 2) == b'>' { 3 } else { 2 }),
        b'/' if at(z, 1) == b'*' && at(z, 2) != 0 => (Kind::Comment, block_comment(z)),
        b'(' => (Kind::Lp, 1),
        b')' => (Kind::Rp, 1),
        b';' => (Kind::Semi, 1),
        b'=' => (Kind::Operator, if at(z, 1) == b'=' { 2 } else { 1 }),
        b'<' => (Kind::Operator, if matches!(at(z, 1), b'=' | b'>' | b'<') { 2 } else { 1 }),
        b'>' => (Kind::Operator, if matches!(at(z, 1), b'=' | b'>') { 2 } else { 1 }),
        b'!' if at(z, 1) == b'=' => (Kind::Operator, 2),
        b'|' => (Kind::Operator, if at(z, 1) == b'|' { 2 } else { 1 }),
        b'-' | b'/' | b'+' | b'*' | b'%' | b',' | b'&' | b'~' => (Kind::Operator, 1),
        b'"' | b'\'' | b'`' => quoted(z),
        b'[' => match z.iter().position(|&b| b == b']') {
            Some(end) => (Kind::Id, end + 1),
            None => (Kind::Illegal, z.len()),
        },
        b'.' if !at(z, 1).is_ascii_digit() => (Kind::Operator, 1),
        b'.' | b'0'..=b'9' => number(z),
        b'?' => (Kind::Literal, 1 + z[1..].iter().take_while(|b| b.is_ascii_digit()).count()),
        b'$' | b'@' | b'#' | b':' => variable(z),
        b'x' | b'X' if at(z, 1) == b'\'' => blob(z),
        b'a'..=b'w' | b'A'..=b'W' => word(z),
        0xef if at(z, 1) == 0xbb && at(z, 2) == 0xbf => (Kind::Space, 3),
        _ if is_id_char(c) => (Kind::Id, identifier_end(z, 1)),
        0 if z.is_empty() => (Kind::Illegal, 0),
        _ => (Kind::Illegal, 1),
    }
}

fn identifier_end(z: &[u8], from: usize) -> usize {
    from + z[from..].iter().take_while(|&&b| is_id_char(b)).count()
}

/// `/* … */`, or to the end when unterminated (SQLite accepts that).
fn block_comment(z: &[u8]) -> usize {
    match z[2..].windows(2).position(|w| w == b"*/") {
        Some(at) => at + 4,
        None => z.len(),
    }
}

/// A 'string' (a literal), a "quoted" or `quoted` identifier, with doubled quotes inside; unterminated: illegal.
fn quoted(z: &[u8]) -> (Kind, usize) {
    let quote = z[0];
    let mut i = 1;
    while i < z.len() {
        if z[i] == quote {
            if at(z, i + 1) != quote {
                let kind = if quote == b'\'' { Kind::Literal } else { Kind::Id };
                return (kind, i + 1);
            }
            i += 1;
        }
        i += 1;
    }
    (Kind::Illegal, z.len())
}

/// Integers, decimals, exponents and hexadecimals; `_` separates digits; a trailing word character makes the
/// whole token illegal (`1abc`).
fn number(z: &[u8]) -> (Kind, usize) {
    let digits = |from: usize, hex: bool| {
        from + z[from..]
            .iter()
            .take_while(|&&b| b == b'_' || if hex { b.is_ascii_hexdigit() } else { b.is_ascii_digit() })
            .count()
    };
    let mut i;
    if z[0] == b'0' && matches!(at(z, 1), b'x' | b'X') && at(z, 2).is_ascii_hexdigit() {
        i = digits(3, true);
    } else {
        i = digits(0, false);
        if at(z, i) == b'.' {
            i = digits(i + 1, false);
        }
        if matches!(at(z, i), b'e' | b'E')
            && (at(z, i + 1).is_ascii_digit() || matches!(at(z, i + 1), b'+' | b'-') && at(z, i + 2).is_ascii_digit())
        {
            i = digits(i + 2, false);
        }
    }
    if is_id_char(at(z, i)) {
        return (Kind::Illegal, identifier_end(z, i));
    }
    (Kind::Literal, i)
}

/// `$name`, `@name`, `:name`, `#name`, with Tcl's `::` and `(index)`; without a name: illegal.
fn variable(z: &[u8]) -> (Kind, usize) {
    let mut name = 0;
    let mut i = 1;
    while i < z.len() {
        let c = z[i];
        if is_id_char(c) {
            name += 1;
        } else if c == b'(' && name > 0 {
            let end = i + 1 + z[i + 1..].iter().take_while(|&&b| !is_space(b) && b != b')').count();
            return if at(z, end) == b')' { (Kind::Literal, end + 1) } else { (Kind::Illegal, end) };
        } else if c == b':' && at(z, i + 1) == b':' {
            i += 1;
        } else {
            break;
        }
        i += 1;
    }
    (if name == 0 { Kind::Illegal } else { Kind::Literal }, i)
}

/// `x'0A1B'`: an even number of hex digits, else illegal up to the closing quote.
fn blob(z: &[u8]) -> (Kind, usize) {
    let digits = 2 + z[2..].iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if at(z, digits) == b'\'' && digits % 2 == 0 {
        return (Kind::Literal, digits + 1);
    }
    let end = digits + z[digits..].iter().take_while(|&&b| b != b'\'').count();
    (Kind::Illegal, if end < z.len() { end + 1 } else { end })
}

/// A word that may be a keyword: letters and `_` only; anything else makes it an identifier.
fn word(z: &[u8]) -> (Kind, usize) {
    let len = 1 + z[1..].iter().take_while(|&&b| is_keyword_char(b)).count();
    if is_id_char(at(z, len)) {
        return (Kind::Id, identifier_end(z, len));
    }
    (keyword(&z[..len]), len)
}

/// SQLite's keywords (sqlite3_keyword_name() of 3.54.1, all compile options on; tests/normalize.rs checks the
/// list against the oracle build), sorted. Longest: CURRENT_TIMESTAMP, 17 bytes.
const KEYWORDS: [&[u8]; 147] = [
    b"ABORT",
    b"ACTION",
    b"ADD",
    b"AFTER",
    b"ALL",
    b"ALTER",
    b"ALWAYS",
    b"ANALYZE",
    b"AND",
    b"AS",
    b"ASC",
    b"ATTACH",
    b"AUTOINCREMENT",
    b"BEFORE",
    b"BEGIN",
    b"BETWEEN",
    b"BY",
    b"CASCADE",
    b"CASE",
    b"CAST",
    b"CHECK",
    b"COLLATE",
    b"COLUMN",
    b"COMMIT",
    b"CONFLICT",
    b"CONSTRAINT",
    b"CREATE",
    b"CROSS",
    b"CURRENT",
    b"CURRENT_DATE",
    b"CURRENT_TIME",
    b"CURRENT_TIMESTAMP",
    b"DATABASE",
    b"DEFAULT",
    b"DEFERRABLE",
    b"DEFERRED",
    b"DELETE",
    b"DESC",
    b"DETACH",
    b"DISTINCT",
    b"DO",
    b"DROP",
    b"EACH",
    b"ELSE",
    b"END",
    b"ESCAPE",
    b"EXCEPT",
    b"EXCLUDE",
    b"EXCLUSIVE",
    b"EXISTS",
    b"EXPLAIN",
    b"FAIL",
    b"FILTER",
    b"FIRST",
    b"FOLLOWING",
    b"FOR",
    b"FOREIGN",
    b"FROM",
    b"FULL",
    b"GENERATED",
    b"GLOB",
    b"GROUP",
    b"GROUPS",
    b"HAVING",
    b"IF",
    b"IGNORE",
    b"IMMEDIATE",
    b"IN",
    b"INDEX",
    b"INDEXED",
    b"INITIALLY",
    b"INNER",
    b"INSERT",
    b"INSTEAD",
    b"INTERSECT",
    b"INTO",
    b"IS",
    b"ISNULL",
    b"JOIN",
    b"KEY",
    b"LAST",
    b"LEFT",
    b"LIKE",
    b"LIMIT",
    b"MATCH",
    b"MATERIALIZED",
    b"NATURAL",
    b"NO",
    b"NOT",
    b"NOTHING",
    b"NOTNULL",
    b"NULL",
    b"NULLS",
    b"OF",
    b"OFFSET",
    b"ON",
    b"OR",
    b"ORDER",
    b"OTHERS",
    b"OUTER",
    b"OVER",
    b"PARTITION",
    b"PLAN",
    b"PRAGMA",
    b"PRECEDING",
    b"PRIMARY",
    b"QUERY",
    b"RAISE",
    b"RANGE",
    b"RECURSIVE",
    b"REFERENCES",
    b"REGEXP",
    b"REINDEX",
    b"RELEASE",
    b"RENAME",
    b"REPLACE",
    b"RESTRICT",
    b"RETURNING",
    b"RIGHT",
    b"ROLLBACK",
    b"ROW",
    b"ROWS",
    b"SAVEPOINT",
    b"SELECT",
    b"SET",
    b"TABLE",
    b"TEMP",
    b"TEMPORARY",
    b"THEN",
    b"TIES",
    b"TO",
    b"TRANSACTION",
    b"TRIGGER",
    b"UNBOUNDED",
    b"UNION",
    b"UNIQUE",
    b"UPDATE",
    b"USING",
    b"VACUUM",
    b"VALUES",
    b"VIEW",
    b"VIRTUAL",
    b"WHEN",
    b"WHERE",
    b"WINDOW",
    b"WITH",
    b"WITHOUT",
];

/// A word of up to 16 bytes as one number, upper-cased and zero-padded, big-endian so that numbers sort like
/// the words: the keyword search compares integers, not strings (it is most of the normaliser's time otherwise).
const fn packed(word: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    let mut i = 0;
    while i < word.len() && i < 16 {
        bytes[i] = word[i].to_ascii_uppercase();
        i += 1;
    }
    u128::from_be_bytes(bytes)
}

/// KEYWORDS packed into an open-addressing table (linear probing, 0 = empty, load 29 %): a lookup is a multiply
/// and one or two integer compares. CURRENT_TIMESTAMP, the one keyword longer than 16 bytes, is looked up by
/// its length instead.
const TABLE_BITS: u32 = 9;
const KEYWORD_TABLE: [u128; 1 << TABLE_BITS] = {
    let mut table = [0u128; 1 << TABLE_BITS];
    let mut i = 0;
    while i < KEYWORDS.len() {
        if KEYWORDS[i].len() > 16 {
            i += 1;
            continue;
        }
        let key = packed(KEYWORDS[i]);
        let mut slot = slot_of(key);
        while table[slot] != 0 {
            slot = (slot + 1) % table.len();
        }
        table[slot] = key;
        i += 1;
    }
    table
};

const fn slot_of(key: u128) -> usize {
    let folded = (key >> 64) as u64 ^ key as u64;
    (folded.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - TABLE_BITS)) as usize
}

fn is_keyword(key: u128) -> bool {
    let mut slot = slot_of(key);
    loop {
        match KEYWORD_TABLE[slot] {
            0 => return false,
            k if k == key => return true,
            _ => slot = (slot + 1) % KEYWORD_TABLE.len(),
        }
    }
}

/// The keyword `word` is (case-insensitively), or Id.
fn keyword(word: &[u8]) -> Kind {
    const LONGEST: &[u8] = b"CURRENT_TIMESTAMP";
    if word.len() < 2 || word.len() > LONGEST.len() {
        return Kind::Id;
    }
    if word.len() == LONGEST.len() {
        return if word.eq_ignore_ascii_case(LONGEST) { Kind::Keyword } else { Kind::Id };
    }
    let key = packed(word);
    if !is_keyword(key) {
        return Kind::Id;
    }
    const NULL: u128 = packed(b"NULL");
    const IS: u128 = packed(b"IS");
    const NOT: u128 = packed(b"NOT");
    const IN: u128 = packed(b"IN");
    const SELECT: u128 = packed(b"SELECT");
    match key {
        NULL => Kind::Null,
        IS => Kind::Is,
        NOT => Kind::Not,
        IN => Kind::In,
        SELECT => Kind::Select,
        _ => Kind::Keyword,
    }
}

/// SQLite's keywords, upper-case (for tests/normalize.rs, which checks them against SQLite's own list).
pub fn keywords() -> impl Iterator<Item = &'static str> {
    KEYWORDS.iter().map(|k| std::str::from_utf8(k).unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_parameters_become_placeholders() {
        assert_eq!(normalize("select * from t where id = 1"), "SELECT*FROM t WHERE id=?;");
        assert_eq!(
            normalize("SELECT 'a', x'0A', 1.5e3, -1, 0x1F, ?, ?12, :a, @b, $c, $d::e(f)"),
            "SELECT?,?,?,-?,?,?,?,?,?,?,?;"
        );
        assert_eq!(
            normalize("SELECT NULL, a IS NULL, b IS NOT NULL FROM t"),
            "SELECT?,a IS NULL,b IS NOT NULL FROM t;"
        );
    }

    #[test]
    fn in_lists_of_constants_are_one_form_and_subqueries_stay() {
        let two = normalize("SELECT a FROM t WHERE a IN (1, 2)");
        assert_eq!(two, "SELECT a FROM t WHERE a IN(?,?,?);");
        assert_eq!(normalize("SELECT a FROM t WHERE a IN (1,2,3,4)"), two);
        assert_eq!(
            normalize("SELECT a FROM t WHERE a IN (SELECT b FROM u WHERE c IN (7))"),
            "SELECT a FROM t WHERE a IN(SELECT b FROM u WHERE c IN(?,?,?));"
        );
        assert_eq!(normalize("SELECT 1 WHERE 2 IN (x, 3)"), "SELECT?WHERE?IN(x,?);");
    }

    #[test]
    fn identifiers_lower_case_and_unquoted_when_plain_keywords_upper_case() {
        assert_eq!(
            normalize("Select \"Name\", [Two Words], `a\"b`, \"select\" From T"),
            "SELECT name,\"two words\",\"a\"\"b\",\"select\"FROM t;"
        );
        assert_eq!(normalize("select Ünïcode from t"), "SELECT Ünïcode FROM t;");
    }

    #[test]
    fn comments_and_whitespace_go_and_one_semicolon_ends() {
        assert_eq!(normalize("  SELECT /* c */ a -- d\n FROM\tt ;"), "SELECT a FROM t;");
        assert_eq!(normalize("SELECT a FROM t -- no semicolon"), "SELECT a FROM t;");
        assert_eq!(normalize(""), ";");
        assert_eq!(normalize("SELECT 1\0; DROP TABLE t"), "SELECT?;");
    }

    #[test]
    fn digit_separators_are_numbers_too() {
        assert_eq!(normalize("SELECT 1_000, 0xff_ff"), "SELECT?,?;");
    }

    #[test]
    fn unterminated_and_illegal_text_never_panics() {
        for sql in [
            "'abc",
            "\"abc",
            "[abc",
            "`a",
            "x'0",
            "x'zz'",
            "/*",
            "/* a *",
            "--",
            "$",
            "$a(b",
            "1e",
            "0x",
            "!",
            "\\",
            "?a",
            "\u{feff}a",
            "\u{1F600}",
        ] {
            let out = normalize(sql);
            assert!(out.len() <= 3 * sql.len() + 1, "{sql:?} → {out:?}");
        }
        assert_eq!(normalize("SELECT 'abc"), "SELECT'ABC;");
    }

    #[test]
    fn input_beyond_the_bound_is_ignored_and_a_cut_literal_dropped() {
        let long = format!("SELECT a FROM t WHERE b = '{}'", "x".repeat(MAX_INPUT_BYTES));
        assert_eq!(normalize(&long), "SELECT a FROM t WHERE b=;");
        let wide = format!("SELECT {}", "é".repeat(MAX_INPUT_BYTES));
        assert_eq!(normalize(&wide), "SELECT;");
    }

    #[test]
    fn variants_share_a_queryid_and_different_statements_do_not() {
        let id = |sql: &str| queryid(&normalize(sql));
        assert_eq!(id("SELECT * FROM t WHERE id = 1"), id("select * from t where id=2"));
        assert_eq!(id("SELECT * FROM t WHERE s = 'a'"), id("SELECT * FROM t WHERE s = 'b'"));
        assert_ne!(id("SELECT * FROM t WHERE id = 1"), id("SELECT * FROM u WHERE id = 1"));
        assert_eq!(queryid("SELECT?;"), queryid("SELECT?;"));
    }

    #[test]
    fn every_keyword_is_found_in_any_case_and_nothing_else() {
        assert!(KEYWORDS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(KEYWORD_TABLE.iter().filter(|&&k| k != 0).count(), KEYWORDS.len() - 1);
        assert!(KEYWORDS.iter().all(|k| keyword(k) != Kind::Id && keyword(&k.to_ascii_lowercase()) != Kind::Id));
        assert_eq!(keyword(b"current_timestamp"), Kind::Keyword);
        assert_eq!(keyword(b"CURRENT_TIMESTAMPS"), Kind::Id);
        assert_eq!(keyword(b"CURRENT_TIMESTAM"), Kind::Id);
        assert_eq!(keyword(b"not"), Kind::Not);
        assert_eq!(keyword(b"select"), Kind::Select);
        assert_eq!(keyword(b"selects"), Kind::Id);
    }
}
