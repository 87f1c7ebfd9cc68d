//! Lost and duplicated records: what was produced against what the cloud
//! holds. Pure.

use std::collections::{BTreeMap, BTreeSet};

/// CSV files: each file's content must be stored exactly once.
#[derive(Debug, Default, PartialEq)]
pub struct CsvOutcome {
    /// Files whose content is in no import.
    pub lost: Vec<String>,
    /// Files whose content is in more than one import.
    pub duplicated: Vec<String>,
    /// Imports whose content matches no file that was written.
    pub unexpected: usize,
}

/// `written`: sha256 of each file's content → its name. `stored`: the sha256
/// of each import's content, one entry per import.
pub fn csv(written: &BTreeMap<String, String>, stored: &[String]) -> CsvOutcome {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for sha in stored {
        *count.entry(sha.as_str()).or_default() += 1;
    }
    let mut outcome = CsvOutcome::default();
    for (sha, name) in written {
        match count.get(sha.as_str()) {
            None => outcome.lost.push(name.clone()),
            Some(1) => {}
            Some(_) => outcome.duplicated.push(name.clone()),
        }
    }
    outcome.unexpected = count
        .keys()
        .filter(|sha| !written.contains_key(**sha))
        .count();
    outcome
}

/// Database rows: the cloud's rows, deduplicated by line (windows may
/// overlap while a commit is in flight, and the cloud keeps one import per
/// window key), must be the table's rows.
#[derive(Debug, Default, PartialEq)]
pub struct DbOutcome {
    /// Keys in the table and in no import.
    pub lost: Vec<String>,
    /// Keys in an import and not in the table.
    pub unexpected: Vec<String>,
    /// Keys that arrived as two different lines (a row changed on the way).
    pub conflicting: Vec<String>,
    /// Distinct rows in the cloud.
    pub received: usize,
}

/// `table`: the key column of every row. `lines`: the distinct data lines of
/// every import; `key_of` takes a row's key out of a line.
pub fn db(
    table: &BTreeSet<String>,
    lines: &BTreeSet<String>,
    key_of: impl Fn(&str) -> Option<String>,
) -> DbOutcome {
    let mut by_key: BTreeMap<String, usize> = BTreeMap::new();
    let mut outcome = DbOutcome::default();
    for line in lines {
        match key_of(line) {
            Some(key) => *by_key.entry(key).or_default() += 1,
            None => outcome.unexpected.push(line.clone()),
        }
    }
    for (key, n) in &by_key {
        if !table.contains(key) {
            outcome.unexpected.push(key.clone());
        } else if *n > 1 {
            outcome.conflicting.push(key.clone());
        }
    }
    outcome.lost = table
        .iter()
        .filter(|k| !by_key.contains_key(*k))
        .cloned()
        .collect();
    outcome.received = by_key.keys().filter(|k| table.contains(*k)).count();
    outcome
}

/// The key of a soak row: its last CSV field (`activity`, `row-N`).
pub fn last_field(line: &str) -> Option<String> {
    let field = line.trim_end_matches('\r').rsplit(',').next()?;
    let field = field.trim_matches('"');
    field.starts_with("row-").then(|| field.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn csv_finds_lost_duplicated_and_unexpected_files() {
        let written = map(&[("a", "a.csv"), ("b", "b.csv"), ("c", "c.csv")]);
        let stored = ["a", "b", "b", "z"].map(String::from);
        let outcome = csv(&written, &stored);
        assert_eq!(outcome.lost, ["c.csv"]);
        assert_eq!(outcome.duplicated, ["b.csv"]);
        assert_eq!(outcome.unexpected, 1);
        assert_eq!(
            csv(&written, &["c", "a", "b"].map(String::from)),
            CsvOutcome::default()
        );
    }

    #[test]
    fn db_compares_keys_after_deduplication() {
        let table: BTreeSet<String> = ["row-1", "row-2", "row-3"].map(String::from).into();
        let lines: BTreeSet<String> = [
            "a,2026-01-01 00:00:00,2026-01-01 00:00:01,row-1",
            "a,2026-01-01 00:00:02,2026-01-01 00:00:03,row-2",
            "a,2026-01-01 00:00:02,2026-01-01 00:00:09,row-2",
            "a,2026-01-01 00:00:05,2026-01-01 00:00:06,row-9",
        ]
        .map(String::from)
        .into();
        let outcome = db(&table, &lines, last_field);
        assert_eq!(outcome.lost, ["row-3"]);
        assert_eq!(outcome.conflicting, ["row-2"]);
        assert_eq!(outcome.unexpected, ["row-9"]);
        assert_eq!(outcome.received, 2);
    }

    #[test]
    fn a_complete_import_passes() {
        let table: BTreeSet<String> = ["row-1", "row-2"].map(String::from).into();
        let lines: BTreeSet<String> = ["x,1,2,row-1\r", "x,3,4,\"row-2\""]
            .map(String::from)
            .into();
        let outcome = db(&table, &lines, last_field);
        assert_eq!(
            outcome,
            DbOutcome {
                received: 2,
                ..DbOutcome::default()
            }
        );
        assert_eq!(last_field("no key here"), None);
    }
}
