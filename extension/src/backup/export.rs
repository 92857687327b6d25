//! export_to: SQL, JSON and CSV exports.
