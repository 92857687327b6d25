//! Types and constants of SQLite's `sqlite3ext.h`, for `sqlite-loadable`.
//!
//! Replaces the crates.io `sqlite3ext-sys`, whose build script runs bindgen (needs libclang) and compiles
//! a whole SQLite into a static library. vigil must never link a second SQLite into the process, so this
//! crate carries types only: there is no `extern "C"` function here, and any direct call to an
//! `sqlite3_*` symbol fails to link. Every call goes through the host's `sqlite3_api_routines`.
#![allow(non_upper_case_globals, non_camel_case_types, non_snake_case, dead_code)]
#![allow(clippy::all)]

include!("bindings.rs");
