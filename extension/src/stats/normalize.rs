//! Statement normalisation: constants replaced so that `WHERE id = 1` and `WHERE id = 2` are one statement.
//!
//! CONTRACT (issue 14): the stats capability calls exactly these two functions. PLACEHOLDER bodies until the
//! normaliser lands.

/// The statement with every literal and parameter replaced by `?`, mirroring SQLite's `sqlite3_normalized_sql`.
pub fn normalize(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A stable 64-bit id of a normalised statement (the first 8 bytes of its SHA-256, as i64).
pub fn queryid(normalized: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(normalized.as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}
