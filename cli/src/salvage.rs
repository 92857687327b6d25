//! `vigil salvage BROKEN OUT`: every readable row of a damaged database into a new one, through `salvage_to`.

use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Value as Json};

use crate::backup::{must_exist, path_value, run, Output};
use crate::output::{columns, print_json, text};
use crate::{exit, extension, Failure, Global};

#[derive(Args)]
pub struct SalvageArgs {
    /// The damaged database (its -wal or -journal beside it is read too; nothing is written to them)
    pub broken: PathBuf,
    /// The new database to create (must not exist)
    pub out: PathBuf,
    /// Do not copy the damaged files into OUT.emergency-<time>/ first
    #[arg(long)]
    pub no_emergency_copy: bool,
    #[command(flatten)]
    pub output: Output,
}

pub fn salvage(global: &Global, args: &SalvageArgs) -> Result<u8, Failure> {
    must_exist(&args.broken)?;
    let conn = extension::open_memory(global)?;
    let options = json!({"emergency_copy": !args.no_emergency_copy}).to_string();
    let params = vec![path_value(&args.broken, "BROKEN")?, path_value(&args.out, "OUT")?, options.into()];
    let out = run(global, conn, "SELECT salvage_to(?1, ?2, ?3)", params)?;
    if args.output.json {
        print_json(&out);
    } else {
        print!("{}", summary(&out));
    }
    Ok(if damage_found(&out) { exit::WARNING } else { exit::OK })
}

/// Anything damaged, lost or set aside: the salvage finished, but the new database is not the whole story.
fn damage_found(out: &Json) -> bool {
    let count = |v: &Json| v.as_u64().unwrap_or(0);
    count(&out["pages_damaged"]) > 0
        || count(&out["lost_and_found"]["rows"]) > 0
        || out["notes"].as_array().is_some_and(|notes| !notes.is_empty())
        || out["tables"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["rows_lost_estimate"].is_null() || count(&t["rows_lost_estimate"]) > 0))
}

fn summary(out: &Json) -> String {
    let tables = out["tables"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = tables
        .iter()
        .map(|t| {
            ["name", "rows_recovered", "pages_damaged", "rows_lost_estimate", "lost_and_found"]
                .iter()
                .map(|k| if t[*k].is_null() { "unknown".to_string() } else { text(&t[*k]) })
                .collect()
        })
        .collect();
    let mut s = columns(&["TABLE", "ROWS RECOVERED", "PAGES DAMAGED", "ROWS LOST (EST.)", "IN LOST_AND_FOUND"], &rows);
    let lost = &out["lost_and_found"];
    if lost["rows"].as_u64().unwrap_or(0) > 0 {
        s += &format!(
            "\n{} rows kept in table {} ({} with a broken overflow chain, {} orphan pages no table could claim)\n",
            text(&lost["rows"]),
            text(&lost["table"]),
            text(&lost["damaged_rows"]),
            text(&lost["orphan_pages"])
        );
    }
    for note in out["notes"].as_array().cloned().unwrap_or_default() {
        s += &format!("note: {}\n", text(&note));
    }
    if let Some(dir) = out["emergency_copy"].as_str() {
        s += &format!("\nthe damaged files as they were: {dir}\n");
    }
    s += &format!(
        "{}: {} rows recovered, {} pages damaged; check: {}\n",
        text(&out["dest"]),
        text(&out["rows_recovered"]),
        text(&out["pages_damaged"]),
        text(&out["check"])
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_salvage_that_lost_or_set_aside_rows_exits_1() {
        let clean = json!({"pages_damaged": 0, "lost_and_found": {"rows": 0}, "tables": [{"rows_lost_estimate": 0}]});
        assert!(!damage_found(&clean));
        assert!(damage_found(&json!({"pages_damaged": 2})));
        assert!(damage_found(&json!({"lost_and_found": {"rows": 1}})));
        assert!(damage_found(&json!({"tables": [{"rows_lost_estimate": 3}]})));
        assert!(damage_found(&json!({"notes": ["the header is damaged; reading 4096-byte pages"]})));
    }
}
