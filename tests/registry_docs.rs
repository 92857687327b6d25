//! The docs are the contract: every SQL object registered is documented (and nothing else), and every
//! example in docs/ runs and prints what the docs show. Also: the library never carries its own SQLite.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use regex::Regex;
use vigil_tests::*;

fn doc(name: &str) -> String {
    std::fs::read_to_string(root().join("docs").join(name)).unwrap()
}

/// Names from the `### \`name(...)\`` headings of docs/api.md.
fn documented_names() -> BTreeSet<String> {
    let heading = Regex::new(r"(?m)^### `([a-z_0-9]+)\(").unwrap();
    heading.captures_iter(&doc("api.md")).map(|c| c[1].to_string()).collect()
}

const CATALOG: &str = "SELECT name FROM pragma_function_list UNION SELECT name FROM pragma_module_list";

#[test]
fn registered_objects_are_exactly_the_documented_ones_in_both_hosts() {
    let dir = scratch();
    let db = dir.path().join("a.db");
    create_db(&db, "CREATE TABLE t(x)");
    let documented = documented_names();
    assert!(documented.contains("health_report"), "{documented:?}");

    let names =
        |rows: Vec<Row>| -> BTreeSet<String> { rows.iter().map(|r| r["name"].as_str().unwrap().to_string()).collect() };
    // Without vigil, through each host's own catalog.
    let plain_shell = {
        let out = shell_run(&db, &format!(".mode json\n{CATALOG};\n"), &[]);
        let rows: Vec<Row> = serde_json::from_slice(&out.stdout).unwrap();
        names(rows)
    };
    let plain_rusqlite = names(rows(&rusqlite::Connection::open(&db).unwrap(), CATALOG).unwrap());
    for (host, plain) in [(&Shell as &dyn Host, plain_shell), (&Rusqlite as &dyn Host, plain_rusqlite)] {
        let loaded = names(host.query(&db, CATALOG).unwrap());
        let added: BTreeSet<String> = loaded.difference(&plain).cloned().collect();
        assert_eq!(added, documented, "{}: registered vs docs/api.md", host.name());
    }
}

/// Compares output with the docs: whitespace runs are one space, `…` matches any text within a line.
fn assert_matches(expected: &str, actual: &str, context: &str) {
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let expected: Vec<String> = expected.trim_end().lines().map(norm).collect();
    let actual: Vec<String> = actual.trim_end().lines().map(norm).collect();
    assert_eq!(
        expected.len(),
        actual.len(),
        "{context}: line count\nexpected:\n{}\nactual:\n{}",
        expected.join("\n"),
        actual.join("\n")
    );
    for (e, a) in expected.iter().zip(&actual) {
        let pattern = e.split('…').map(regex::escape).collect::<Vec<_>>().join(".*");
        let ok = Regex::new(&format!("^{pattern}$")).unwrap().is_match(a);
        assert!(ok, "{context}:\nexpected: {e}\nactual:   {a}");
    }
}

/// (first block, the block right after it) for blocks fenced with ```first followed by ```second.
fn example_pairs(text: &str, first: &str, second: &str) -> Vec<(String, String)> {
    let block = Regex::new(&format!(r"(?s)```{first}\n(.*?)```\s*```{second}\n(.*?)```")).unwrap();
    block.captures_iter(text).map(|c| (c[1].to_string(), c[2].to_string())).collect()
}

#[test]
fn every_sql_example_in_the_api_docs_prints_what_it_shows() {
    let dir = scratch();
    let db = dir.path().join("demo.db");
    demo_db(&db);
    let examples = example_pairs(&doc("api.md"), "sql", "text");
    assert!(examples.len() >= 8, "found {} examples", examples.len());
    for (sql, expected) in examples {
        let script = format!(".load {}\n{sql}", library().display());
        // In the database's directory, so that examples can name files beside it.
        let mut shell = Command::new("sqlite3")
            .args(["-box", "demo.db"])
            .current_dir(dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        shell.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        let out = shell.wait_with_output().unwrap();
        assert!(out.stderr.is_empty(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        assert_matches(&expected, &String::from_utf8_lossy(&out.stdout), sql.trim());
    }
}

#[test]
fn every_cli_example_prints_what_it_shows_and_exits_as_documented() {
    let dir = scratch();
    let console = Regex::new(r"(?s)```console\n\$ vigil ([^\n]*)\n(.*?)\[exit (\d+)\]\n```").unwrap();
    let text = doc("cli.md");
    let examples: Vec<_> = console.captures_iter(&text).collect();
    assert!(examples.len() >= 4, "found {}", examples.len());
    for example in examples {
        let args: Vec<&str> = example[1].split_whitespace().collect();
        let out = Command::new(cli_binary())
            .args(&args)
            .current_dir(dir.path())
            .env_remove("VIGIL_EXTENSION")
            .output()
            .unwrap();
        let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_matches(&example[2], &printed, &example[1]);
        assert_eq!(out.status.code().unwrap().to_string(), example[3], "exit code of vigil {}", &example[1]);
    }
}

#[test]
fn the_library_exports_only_its_entry_point_and_links_no_sqlite() {
    let library = library().with_extension("so");
    let symbols = |flag: &str| -> Vec<String> {
        let out = Command::new("nm").args(["-D", flag]).arg(&library).output().expect("nm (binutils) is installed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().last().map(String::from))
            .collect()
    };
    let defined: Vec<String> = symbols("--defined-only").into_iter().filter(|s| s.starts_with("sqlite3")).collect();
    assert_eq!(defined, ["sqlite3_vigil_init"], "a second SQLite must never be linked in");
    let imported: Vec<String> = symbols("--undefined-only").into_iter().filter(|s| s.contains("sqlite")).collect();
    assert!(imported.is_empty(), "every SQLite call goes through the host's API table: {imported:?}");
    assert!(Path::new(&library).exists());
}
