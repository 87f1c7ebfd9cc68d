//! Reading a log folder after a test, for the rotation tests (included by
//! path, so that tests without the `support` module can use it too).

use std::path::Path;

const CURRENT: &str = "injixo-cloud-link.log";
const ROTATED_PREFIX: &str = "injixo-cloud-link.";

/// The log files (`*.log`) in `dir`, sorted by name, each with its lines.
pub fn log_files(dir: &Path) -> Vec<(String, Vec<String>)> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".log"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let text = std::fs::read_to_string(dir.join(&name)).unwrap();
            let lines = text.lines().map(str::to_owned).collect();
            (name, lines)
        })
        .collect()
}

/// Checks that `files` are exactly `names` and that every line of each file
/// is of the file's day: the date in a rotated file's name, `current_day`
/// for the current log.
pub fn assert_each_day_in_its_own_file(
    files: &[(String, Vec<String>)],
    names: &[&str],
    current_day: &str,
) {
    let found: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(found, names, "{files:#?}");
    for (name, lines) in files {
        let day = match name.as_str() {
            CURRENT => current_day,
            rotated => &rotated[ROTATED_PREFIX.len()..][..10],
        };
        assert!(
            lines.iter().all(|line| line.starts_with(day)),
            "{name} holds only lines of {day}: {lines:#?}"
        );
    }
}

/// The one line of `lines` that contains `needle`; fails if there are none
/// or several.
pub fn the_one_line<'a>(lines: &'a [String], needle: &str) -> &'a str {
    let found: Vec<&String> = lines.iter().filter(|line| line.contains(needle)).collect();
    assert_eq!(found.len(), 1, "one line with {needle:?}: {lines:#?}");
    found[0]
}
