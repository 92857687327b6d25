//! Message bodies: Alertmanager's webhook v4, Slack's incoming webhook, and Alertmanager's API v2 push. Pure
//! functions of the notifications and the host's name.

use serde_json::{json, Map, Value as Json};

use super::lifecycle::{Notification, Status};
use crate::output::{escape_controls, rfc3339};

pub const ALERT_NAME: &str = "VigilCheck";
/// What Alertmanager writes as `endsAt` while an alert fires.
pub const NO_END: &str = "0001-01-01T00:00:00Z";

/// This machine's name, the `instance` label.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn value_text(value: Option<f64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

fn status_text(status: Status) -> &'static str {
    match status {
        Status::Firing => "firing",
        Status::Resolved => "resolved",
    }
}

pub fn labels(n: &Notification, instance: &str) -> Map<String, Json> {
    let mut labels = Map::new();
    labels.insert("alertname".into(), ALERT_NAME.into());
    labels.insert("db".into(), n.db.clone().into());
    labels.insert("check".into(), n.check.clone().into());
    labels.insert("severity".into(), n.severity.clone().into());
    labels.insert("instance".into(), instance.into());
    labels
}

/// Annotations are shown as text (Alertmanager's UI, its Slack and e-mail templates): control characters are
/// escaped so that a file name cannot forge a line. Labels are data and stay exact.
pub fn annotations(n: &Notification) -> Map<String, Json> {
    let mut notes = Map::new();
    notes.insert("summary".into(), escape_controls(&summary(n)).into());
    notes.insert("description".into(), escape_controls(&n.detail).into());
    notes.insert("value".into(), value_text(n.value).into());
    notes.insert("path".into(), escape_controls(&n.path.display().to_string()).into());
    notes
}

fn summary(n: &Notification) -> String {
    match n.status {
        Status::Firing => format!("{}: {} is {}", n.db, n.check, n.severity),
        Status::Resolved => format!("{}: {} resolved", n.db, n.check),
    }
}

/// The labels and annotations every alert of a message shares, as Alertmanager computes its common* fields.
fn common(all: &[Map<String, Json>]) -> Map<String, Json> {
    let Some((first, rest)) = all.split_first() else { return Map::new() };
    first
        .iter()
        .filter(|(k, v)| rest.iter().all(|m| m.get(*k) == Some(v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A label set as Alertmanager prints it in a group key: `{check="…", db="…"}` (values JSON-quoted).
fn label_text(labels: &Map<String, Json>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

/// Alertmanager's webhook v4 body for one or more notifications.
pub fn webhook(notifications: &[Notification], instance: &str) -> Json {
    let alerts: Vec<Json> = notifications
        .iter()
        .map(|n| {
            json!({
                "status": status_text(n.status),
                "labels": labels(n, instance),
                "annotations": annotations(n),
                "startsAt": rfc3339(n.starts_at),
                "endsAt": n.ends_at.map(rfc3339).unwrap_or_else(|| NO_END.into()),
                "generatorURL": "",
                "fingerprint": n.fingerprint,
            })
        })
        .collect();
    let all_labels: Vec<_> = notifications.iter().map(|n| labels(n, instance)).collect();
    let all_notes: Vec<_> = notifications.iter().map(annotations).collect();
    let common_labels = common(&all_labels);
    let group_labels: Map<String, Json> = common_labels
        .iter()
        .filter(|(k, _)| ["alertname", "db", "check"].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let firing = notifications.iter().any(|n| n.status == Status::Firing);
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{}", label_text(&group_labels)),
        "truncatedAlerts": 0,
        "status": if firing { "firing" } else { "resolved" },
        "receiver": "vigil",
        "groupLabels": group_labels,
        "commonLabels": common_labels,
        "commonAnnotations": common(&all_notes),
        "externalURL": "",
        "alerts": alerts,
    })
}

/// Slack's `&`, `<` and `>` are control characters in message text; so are newlines (one line per alert):
/// control characters are escaped first, so that a name cannot forge a second line.
pub fn slack_escape(text: &str) -> String {
    escape_controls(text).replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Slack's incoming-webhook body: one line per notification.
pub fn slack(notifications: &[Notification], instance: &str) -> Json {
    let lines: Vec<String> = notifications
        .iter()
        .map(|n| {
            let head = match n.status {
                Status::Firing => format!("[FIRING {}]", n.severity.to_uppercase()),
                Status::Resolved => "[RESOLVED]".to_string(),
            };
            let value = n.value.map(|v| format!(" (value {v})")).unwrap_or_default();
            // Each field escaped on its own: the line's layout is vigil's, never a field's.
            format!(
                "{head} {}: {}{value}: {} ({} on {})",
                slack_escape(&n.db),
                slack_escape(&n.check),
                slack_escape(&n.detail),
                slack_escape(&n.path.display().to_string()),
                slack_escape(instance)
            )
        })
        .collect();
    json!({ "text": lines.join("\n") })
}

/// Alertmanager API v2 push (`POST /api/v2/alerts`): a JSON array. A firing alert carries no `endsAt`, so that
/// Alertmanager resolves it by itself (after its resolve_timeout) if vigil stops re-sending it.
pub fn alertmanager_push(notifications: &[Notification], instance: &str) -> Json {
    let alerts: Vec<Json> = notifications
        .iter()
        .map(|n| {
            let mut alert = json!({
                "labels": labels(n, instance),
                "annotations": annotations(n),
                "startsAt": rfc3339(n.starts_at),
                "generatorURL": "",
            });
            if let Some(ends_at) = n.ends_at {
                alert["endsAt"] = rfc3339(ends_at).into();
            }
            alert
        })
        .collect();
    Json::Array(alerts)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn firing() -> Notification {
        Notification {
            status: Status::Firing,
            db: "shop".into(),
            path: "/data/shop.db".into(),
            check: "freelist_ratio".into(),
            severity: "warning".into(),
            value: Some(0.31),
            detail: "31 % of pages are free <vacuum> & save".into(),
            starts_at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_250),
            ends_at: None,
            fingerprint: "0123456789abcdef".into(),
        }
    }

    fn resolved() -> Notification {
        Notification {
            status: Status::Resolved,
            ends_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_600)),
            ..firing()
        }
    }

    #[test]
    fn webhook_v4_has_alertmanagers_shape() {
        let body = webhook(&[firing()], "host1");
        let labels = json!({"alertname": "VigilCheck", "db": "shop", "check": "freelist_ratio",
            "severity": "warning", "instance": "host1"});
        let notes = json!({"summary": "shop: freelist_ratio is warning",
            "description": "31 % of pages are free <vacuum> & save", "value": "0.31", "path": "/data/shop.db"});
        let expected = json!({
            "version": "4",
            "groupKey": "{}:{alertname=\"VigilCheck\", check=\"freelist_ratio\", db=\"shop\"}",
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "vigil",
            "groupLabels": {"alertname": "VigilCheck", "db": "shop", "check": "freelist_ratio"},
            "commonLabels": labels,
            "commonAnnotations": notes,
            "externalURL": "",
            "alerts": [{"status": "firing", "labels": labels, "annotations": notes,
                "startsAt": "2023-11-14T22:13:20.250Z", "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "", "fingerprint": "0123456789abcdef"}],
        });
        assert_eq!(body, expected);
    }

    #[test]
    fn a_resolved_webhook_carries_its_end_and_summary() {
        let body = webhook(&[resolved()], "host1");
        assert_eq!(body["status"], "resolved");
        assert_eq!(body["alerts"][0]["status"], "resolved");
        assert_eq!(body["alerts"][0]["endsAt"], "2023-11-14T22:23:20.000Z");
        assert_eq!(body["alerts"][0]["annotations"]["summary"], "shop: freelist_ratio resolved");
    }

    #[test]
    fn common_fields_keep_only_what_every_alert_shares() {
        let other = Notification { check: "wal_size".into(), ..firing() };
        let body = webhook(&[firing(), other], "h");
        assert_eq!(body["groupLabels"], json!({"alertname": "VigilCheck", "db": "shop"}));
        assert!(body["commonLabels"].get("check").is_none());
        assert_eq!(body["alerts"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn slack_text_names_everything_and_escapes_controls() {
        let body = slack(&[firing()], "host1");
        assert_eq!(
            body,
            json!({"text": "[FIRING WARNING] shop: freelist_ratio (value 0.31): 31 % of pages are free &lt;vacuum&gt; &amp; save (/data/shop.db on host1)"})
        );
        let body = slack(&[resolved()], "host1");
        assert!(body["text"].as_str().unwrap().starts_with("[RESOLVED] shop: freelist_ratio"));
        let forged = Notification {
            db: "x\n[RESOLVED] shop".into(),
            detail: "a\rb\u{7}c \\n".into(),
            path: "/d/\u{1b}[31m.db\n".into(),
            check: "c\tk".into(),
            ..firing()
        };
        let text = slack(&[forged], "h\nost")["text"].as_str().unwrap().to_string();
        assert_eq!(
            text,
            "[FIRING WARNING] x\\n[RESOLVED] shop: c\\tk (value 0.31): a\\rb\\x07c \\\\n (/d/\\x1b[31m.db\\n on h\\nost)"
        );
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }

    #[test]
    fn annotations_escape_controls_and_labels_stay_exact() {
        let forged = Notification { db: "x\ny".into(), detail: "a\nb".into(), path: "/p\n".into(), ..firing() };
        for body in [webhook(&[forged.clone()], "h")["alerts"][0].clone(), alertmanager_push(&[forged], "h")[0].clone()]
        {
            assert_eq!(body["labels"]["db"], "x\ny", "a label is data: JSON escapes it");
            assert_eq!(body["annotations"]["summary"], "x\\ny: freelist_ratio is warning");
            assert_eq!(body["annotations"]["description"], "a\\nb");
            assert_eq!(body["annotations"]["path"], "/p\\n");
        }
    }

    #[test]
    fn alertmanager_push_is_an_array_with_ends_at_only_when_resolved() {
        let body = alertmanager_push(&[firing(), resolved()], "host1");
        let alerts = body.as_array().unwrap();
        assert_eq!(alerts.len(), 2);
        assert!(alerts[0].get("endsAt").is_none());
        assert_eq!(alerts[1]["endsAt"], "2023-11-14T22:23:20.000Z");
        assert_eq!(alerts[0]["labels"]["alertname"], "VigilCheck");
        assert_eq!(alerts[0]["startsAt"], "2023-11-14T22:13:20.250Z");
        let keys: Vec<_> = alerts[1].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["annotations", "endsAt", "generatorURL", "labels", "startsAt"]);
    }
}
