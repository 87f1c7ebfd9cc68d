//! What the cloud asks this client to import, and how to describe a change
//! of it in the log. Pure: no I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::protocol::{DatabaseImport, Integration, IntegrationKind};

/// The assignment as cached in `state/assignment.json`, so a restart without
/// network keeps importing what it was told last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedAssignment {
    pub integration: Integration,
    pub etag: Option<String>,
    pub fetched_at: DateTime<Utc>,
}

/// One line saying what is imported, e.g.
/// `integration Avaya CMS (int_1): CSV files matching *.csv`.
pub fn summary(integration: &Integration) -> String {
    let what = match integration.kind {
        IntegrationKind::Csv => format!(
            "CSV files matching {}",
            integration
                .csv
                .as_ref()
                .map_or("*.csv", |csv| csv.pattern.as_str())
        ),
        IntegrationKind::Database => match &integration.database {
            Some(db) => format!(
                "database imports {} (time zone {})",
                db.imports
                    .iter()
                    .map(|i| format!("{} every {} s", i.id, i.every_seconds))
                    .collect::<Vec<_>>()
                    .join(", "),
                db.time_zone
            ),
            None => "a database integration without settings".to_owned(),
        },
    };
    let feed = integration
        .realtime
        .as_ref()
        .map(|rt| format!("; {}", feed_summary(rt)))
        .unwrap_or_default();
    format!(
        "integration {} ({}): {what}{feed}",
        integration.name, integration.id
    )
}

/// `a real-time feed (delimited) listening on port 9669`.
fn feed_summary(rt: &crate::protocol::RealtimeSettings) -> String {
    let format = serde_json::to_value(rt.format.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    match rt.mode {
        crate::protocol::FeedMode::Listen => format!(
            "a real-time feed ({format}) listening on port {}",
            rt.port.map_or("(none set)".to_owned(), |p| p.to_string())
        ),
        crate::protocol::FeedMode::Connect => {
            format!("a real-time feed ({format}) from {}", rt.servers.join(", "))
        }
    }
}

/// What changed between two assignments, one phrase per change, never
/// showing a connection string (it may hold a password).
pub fn changes(old: &Integration, new: &Integration) -> Vec<String> {
    let mut out = Vec::new();
    if old.id != new.id {
        out.push(format!("integration {} → {}", old.id, new.id));
    }
    if old.name != new.name {
        out.push(format!("name {:?} → {:?}", old.name, new.name));
    }
    if old.kind != new.kind {
        out.push(format!("kind {:?} → {:?}", old.kind, new.kind).to_lowercase());
    }
    let old_pattern = old.csv.as_ref().map(|c| c.pattern.as_str());
    let new_pattern = new.csv.as_ref().map(|c| c.pattern.as_str());
    if old_pattern != new_pattern {
        out.push(format!(
            "CSV pattern {} → {}",
            old_pattern.unwrap_or("none"),
            new_pattern.unwrap_or("none")
        ));
    }
    match (&old.database, &new.database) {
        (Some(a), Some(b)) => {
            if a.connection_string != b.connection_string {
                out.push("connection string changed".to_owned());
            }
            if a.time_zone != b.time_zone {
                out.push(format!("time zone {} → {}", a.time_zone, b.time_zone));
            }
            for import in &b.imports {
                match a.imports.iter().find(|i| i.id == import.id) {
                    None => out.push(format!("import {} added", import.id)),
                    Some(before) => {
                        if let Some(change) = import_change(before, import) {
                            out.push(change);
                        }
                    }
                }
            }
            for import in &a.imports {
                if !b.imports.iter().any(|i| i.id == import.id) {
                    out.push(format!("import {} removed", import.id));
                }
            }
        }
        (None, Some(_)) => out.push("database settings added".to_owned()),
        (Some(_), None) => out.push("database settings removed".to_owned()),
        (None, None) => {}
    }
    match (&old.realtime, &new.realtime) {
        (Some(a), Some(b)) if a != b => {
            out.push(format!("{} → {}", feed_summary(a), feed_summary(b)))
        }
        (None, Some(b)) => out.push(format!("{} added", feed_summary(b))),
        (Some(a), None) => out.push(format!("{} removed", feed_summary(a))),
        _ => {}
    }
    out
}

fn import_change(before: &DatabaseImport, after: &DatabaseImport) -> Option<String> {
    let mut parts = Vec::new();
    if before.query != after.query {
        parts.push("query changed".to_owned());
    }
    if before.import_type != after.import_type {
        parts.push(
            format!("type {:?} → {:?}", before.import_type, after.import_type).to_lowercase(),
        );
    }
    if before.every_seconds != after.every_seconds {
        parts.push(format!(
            "every {} s → {} s",
            before.every_seconds, after.every_seconds
        ));
    }
    if before.reconcile_hours != after.reconcile_hours {
        parts.push(format!(
            "reconciliation {} h → {} h",
            before.reconcile_hours, after.reconcile_hours
        ));
    }
    if before.backfill_days != after.backfill_days {
        parts.push(format!(
            "back-fill {} days → {} days",
            before.backfill_days, after.backfill_days
        ));
    }
    (!parts.is_empty()).then(|| format!("import {}: {}", after.id, parts.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{CsvSettings, DatabaseSettings, ImportType};

    fn csv(pattern: &str) -> Integration {
        Integration {
            id: "int_1".into(),
            name: "Avaya".into(),
            kind: IntegrationKind::Csv,
            realtime: None,
            csv: Some(CsvSettings {
                pattern: pattern.into(),
            }),
            database: None,
        }
    }

    fn db(every: u64, password: &str) -> Integration {
        Integration {
            id: "int_2".into(),
            name: "ACD".into(),
            kind: IntegrationKind::Database,
            realtime: None,
            csv: None,
            database: Some(DatabaseSettings {
                connection_string: format!("DSN=acd;PWD={password}"),
                time_zone: "Europe/Berlin".into(),
                imports: vec![DatabaseImport {
                    id: "interval".into(),
                    import_type: ImportType::Interval,
                    query: "SELECT 1".into(),
                    every_seconds: every,
                    reconcile_hours: 24,
                    backfill_days: 0,
                }],
            }),
        }
    }

    #[test]
    fn summaries_say_what_is_imported() {
        assert_eq!(
            summary(&csv("*.csv")),
            "integration Avaya (int_1): CSV files matching *.csv"
        );
        assert_eq!(
            summary(&db(900, "x")),
            "integration ACD (int_2): database imports interval every 900 s (time zone Europe/Berlin)"
        );
    }

    #[test]
    fn changes_are_listed_without_secrets() {
        assert!(changes(&csv("*.csv"), &csv("*.csv")).is_empty());
        assert_eq!(
            changes(&csv("*.csv"), &csv("*.txt")),
            vec!["CSV pattern *.csv → *.txt"]
        );
        let listed = changes(&db(900, "old-secret"), &db(10, "new-secret"));
        assert_eq!(
            listed,
            vec![
                "connection string changed",
                "import interval: every 900 s → 10 s"
            ]
        );
        assert!(!listed.join(" ").contains("secret"));
    }

    #[test]
    fn imports_added_and_removed_are_named() {
        let before = db(900, "x");
        let mut after = db(900, "x");
        after.database.as_mut().unwrap().imports[0].id = "contact".into();
        assert_eq!(
            changes(&before, &after),
            vec!["import contact added", "import interval removed"]
        );
    }
}
