//! Which files in the import folder are candidates: the integration's glob
//! (`*.csv` by default), minus files that are never data — the client's own
//! files, hidden files and the temporary files of editors and downloads.
//!
//! Matching is on the file name only and case-insensitive: on Windows
//! `DATA.CSV` and `data.csv` are the same file, and Excel users do not choose
//! the case of the extension.

use globset::{GlobBuilder, GlobMatcher};

#[derive(Debug, thiserror::Error)]
#[error("invalid file pattern {pattern:?}: {source}")]
pub struct PatternError {
    pub pattern: String,
    #[source]
    pub source: globset::Error,
}

/// The integration's file-name glob, compiled once.
#[derive(Debug, Clone)]
pub struct FilePattern {
    pattern: String,
    matcher: GlobMatcher,
}

impl FilePattern {
    pub fn new(pattern: &str) -> Result<FilePattern, PatternError> {
        let glob = GlobBuilder::new(pattern)
            .case_insensitive(true)
            // A name has no separator; `*` must not be able to match a folder
            // part if a caller ever passes a relative path.
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|source| PatternError {
                pattern: pattern.to_owned(),
                source,
            })?;
        Ok(FilePattern {
            pattern: pattern.to_owned(),
            matcher: glob.compile_matcher(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether `file_name` matches the glob (ignore rules not applied).
    pub fn matches(&self, file_name: &str) -> bool {
        self.matcher.is_match(file_name)
    }

    /// Whether `file_name` is to be imported: it matches and is not ignored.
    pub fn selects(&self, file_name: &str) -> bool {
        !is_ignored(file_name) && self.matches(file_name)
    }
}

impl Default for FilePattern {
    fn default() -> Self {
        FilePattern::new("*.csv").expect("the default pattern is valid")
    }
}

/// Suffixes of files still being written or owned by an editor.
const TEMPORARY_SUFFIXES: [&str; 5] = [".tmp", ".part", ".crdownload", ".swp", ".swx"];

/// The client's own files: with the default import folder (the installation
/// folder) its log, rotated logs and configuration sit beside the data, and a
/// pattern such as `*` must never upload them.
const OWN_FILES_PREFIX: &str = "injixo-cloud-link";

/// Files never imported, whatever the pattern: the client's own files
/// (`injixo-cloud-link*`), hidden files (`.name`, including the temporary
/// files of atomic writes), Office lock files (`~$name`), and unfinished
/// downloads or editor swap files (`*.tmp`, `*.part`, `*.crdownload`,
/// `*.swp`, `*.swx`). Case-insensitive.
pub fn is_ignored(file_name: &str) -> bool {
    let lower = file_name.to_lowercase();
    lower.starts_with(OWN_FILES_PREFIX)
        || lower.starts_with('.')
        || lower.starts_with("~$")
        || TEMPORARY_SUFFIXES
            .iter()
            .any(|suffix| lower.ends_with(suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_pattern_matches_csv_in_any_case() {
        let pattern = FilePattern::default();
        assert_eq!(pattern.as_str(), "*.csv");
        for name in ["interval.csv", "INTERVAL.CSV", "Export 2020-05-25.Csv"] {
            assert!(pattern.selects(name), "{name}");
        }
        for name in ["interval.csv.bak", "interval.txt", "csv"] {
            assert!(!pattern.selects(name), "{name}");
        }
    }

    #[test]
    fn integration_patterns() {
        let pattern = FilePattern::new("AgentStatus_*.txt").unwrap();
        assert!(pattern.matches("agentstatus_20220422.TXT"));
        assert!(!pattern.matches("interval_20220422.txt"));

        let pattern = FilePattern::new("{interval,contact}-*.csv").unwrap();
        assert!(pattern.matches("Interval-0800.csv"));
        assert!(pattern.matches("contact-0800.csv"));
        assert!(!pattern.matches("agent-0800.csv"));

        assert!(!FilePattern::new("*.csv").unwrap().matches("sub/x.csv"));
    }

    #[test]
    fn a_pattern_from_the_cloud_never_reaches_outside_the_folder() {
        // The importer lists the import folder itself and only asks the
        // pattern about each entry's bare name, so a pattern with a path in
        // it matches nothing rather than pointing elsewhere.
        for hostile in ["../*", "../*.csv", "/etc/*", "..\\*", "*/../*"] {
            let p = FilePattern::new(hostile).unwrap();
            for name in ["passwd", "shadow", "x.csv", "..", "."] {
                assert!(!p.selects(name), "{hostile} selects {name}");
            }
        }
        // `*` never spans a separator, should a caller pass a path.
        assert!(!FilePattern::new("*.csv").unwrap().matches("../x.csv"));
    }

    #[test]
    fn invalid_pattern_is_an_error() {
        let error = FilePattern::new("[*.csv").unwrap_err();
        assert_eq!(error.pattern, "[*.csv");
        assert!(error.to_string().contains("[*.csv"));
    }

    #[test]
    fn clients_own_files_are_ignored_even_by_a_catch_all_pattern() {
        let everything = FilePattern::new("*").unwrap();
        for name in [
            "injixo-cloud-link.log",
            "injixo-cloud-link.2022-03-10.1.log",
            "injixo-cloud-link.toml",
            "injixo-cloud-link",
            "injixo-cloud-link.exe",
            "Injixo-Cloud-Link.LOG",
        ] {
            assert!(is_ignored(name), "{name}");
            assert!(!everything.selects(name), "{name}");
        }
        assert!(everything.selects("interval.csv"));
    }

    #[test]
    fn hidden_and_temporary_files_are_ignored() {
        let pattern = FilePattern::new("*").unwrap();
        for name in [
            ".interval.csv",
            ".~lock.interval.csv#",
            "~$interval.csv",
            "interval.csv.tmp",
            "interval.TMP",
            "interval.csv.part",
            "interval.csv.crdownload",
            ".interval.csv.swp",
            "interval.csv.swp",
        ] {
            assert!(is_ignored(name), "{name}");
            assert!(!pattern.selects(name), "{name}");
        }
        for name in ["interval.csv", "~interval.csv", "temporary.csv", "part.csv"] {
            assert!(!is_ignored(name), "{name}");
        }
    }
}
