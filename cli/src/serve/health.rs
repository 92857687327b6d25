//! What /health and /health/<name> answer: a status code and a JSON body, decided from the cache alone.

use std::time::{Duration, SystemTime};

use serde_json::{json, Value as Json};

use super::cache::{is_stale, Snapshot};
use crate::metrics::DbReport;

/// A database's status word: its overall health, or `unknown` when it could not be read.
pub fn status_of(report: &DbReport) -> &str {
    match (&report.status, report.up) {
        (Some(status), true) => status,
        _ => "unknown",
    }
}

/// Does this database keep /health at 200? Not when critical or unreadable (a warning does).
pub fn is_healthy(report: &DbReport) -> bool {
    !matches!(status_of(report), "critical" | "unknown")
}

/// 200 when the snapshot is fresh and every database in it is healthy, else 503.
pub fn status_code<'a>(reports: impl IntoIterator<Item = &'a DbReport>, stale: bool) -> u16 {
    let mut reports = reports.into_iter();
    if !stale && reports.all(is_healthy) {
        200
    } else {
        503
    }
}

/// The worst of the databases' status words (unknown is the worst: nothing can be said).
pub fn worst<'a>(statuses: impl IntoIterator<Item = &'a str>) -> &'a str {
    statuses.into_iter().max_by_key(|s| crate::metrics::status_rank(s)).unwrap_or("ok")
}

/// The answer for the given databases of a snapshot (all of them, or the one /health/<name> named), `now` being
/// when the request came.
pub fn answer(snapshot: &Snapshot, only: Option<usize>, every: Duration, now: SystemTime) -> (u16, Json) {
    let reports: Vec<&DbReport> = match only {
        Some(index) => snapshot.reports.get(index).into_iter().collect(),
        None => snapshot.reports.iter().collect(),
    };
    let age = now.duration_since(snapshot.generated_at).unwrap_or_default();
    let stale = is_stale(age, every, snapshot.took, snapshot.busy_timeout);
    let code = status_code(reports.iter().copied(), stale);
    let body = json!({
        "status": worst(reports.iter().map(|r| status_of(r))),
        "healthy": code == 200,
        "stale": stale,
        "generated_at": crate::output::rfc3339(snapshot.generated_at),
        "age_seconds": round3(age.as_secs_f64()),
        "refresh_every_seconds": round3(every.as_secs_f64()),
        "databases": reports.iter().map(|r| database(r)).collect::<Vec<_>>(),
    });
    (code, body)
}

/// Before the first refresh has finished: 503, nothing can be said yet.
pub fn starting(every: Duration) -> Json {
    json!({
        "status": "unknown",
        "healthy": false,
        "stale": true,
        "generated_at": null,
        "detail": "vigil serve has not finished its first refresh yet",
        "refresh_every_seconds": round3(every.as_secs_f64()),
        "databases": [],
    })
}

fn database(report: &DbReport) -> Json {
    let failing: Vec<Json> = report
        .failing
        .iter()
        .map(|f| json!({"check": f.check, "status": f.status, "value": f.value, "detail": f.detail}))
        .collect();
    json!({
        "db": report.target.name,
        "path": report.target.path.to_string_lossy(),
        "up": report.up,
        "status": status_of(report),
        "error": report.error,
        "collected_at": crate::output::rfc3339(report.collected_at),
        "failing": failing,
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::metrics::{FailingCheck, Target};

    fn report(name: &str, up: bool, status: Option<&str>) -> DbReport {
        DbReport {
            target: Target { name: name.into(), path: format!("/srv/{name}.db").into() },
            up,
            error: (!up).then(|| format!("/srv/{name}.db: no such file")),
            status: status.map(String::from),
            failing: vec![],
            checks: vec![],
            samples: vec![],
            collected_at: SystemTime::UNIX_EPOCH,
        }
    }

    fn snapshot(reports: Vec<DbReport>) -> Snapshot {
        Snapshot {
            reports,
            metrics: Arc::from(&b""[..]),
            generated_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000),
            took: Duration::from_millis(100),
            busy_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn critical_or_unreadable_databases_make_it_503_warnings_do_not() {
        let ok = report("a", true, Some("ok"));
        let info = report("b", true, Some("info"));
        let warning = report("c", true, Some("warning"));
        let critical = report("d", true, Some("critical"));
        let down = report("e", false, None);
        assert_eq!(status_code([&ok, &info, &warning], false), 200);
        assert_eq!(status_code([&ok, &critical], false), 503);
        assert_eq!(status_code([&ok, &down], false), 503);
        assert_eq!(status_code([&ok], true), 503, "a stale cache vouches for nothing");
        assert_eq!(status_code([], false), 200);
    }

    #[test]
    fn a_report_up_without_status_is_unknown() {
        assert_eq!(status_of(&report("a", true, None)), "unknown");
        assert_eq!(status_of(&report("a", false, Some("ok"))), "unknown");
    }

    #[test]
    fn worst_status() {
        assert_eq!(worst(["ok", "warning", "info"]), "warning");
        assert_eq!(worst(["critical", "unknown", "ok"]), "unknown");
        assert_eq!(worst([]), "ok");
    }

    #[test]
    fn the_answer_names_each_database_and_its_failing_checks() {
        let mut bad = report("bad", true, Some("critical"));
        bad.failing.push(FailingCheck {
            check: "integrity".into(),
            status: "critical".into(),
            value: json!(3),
            detail: "3 errors".into(),
        });
        let snap = snapshot(vec![report("good", true, Some("ok")), bad]);
        let now = snap.generated_at + Duration::from_secs(2);
        let (code, body) = answer(&snap, None, Duration::from_secs(60), now);
        assert_eq!(code, 503);
        assert_eq!(body["status"], "critical");
        assert_eq!(body["age_seconds"], 2.0);
        assert_eq!(body["generated_at"], "1970-01-12T13:46:40.000Z");
        assert_eq!(body["databases"][1]["failing"][0]["check"], "integrity");
        assert_eq!(body["databases"][1]["failing"][0]["value"], 3);
        let (code, body) = answer(&snap, Some(0), Duration::from_secs(60), now);
        assert_eq!((code, body["databases"].as_array().unwrap().len()), (200, 1));
        assert_eq!(body["databases"][0]["db"], "good");
        let late = snap.generated_at + Duration::from_secs(186);
        let (code, body) = answer(&snap, Some(0), Duration::from_secs(60), late);
        assert_eq!((code, &body["stale"]), (503, &json!(true)));
    }
}
