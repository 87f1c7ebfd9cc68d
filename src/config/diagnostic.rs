//! Rendering of configuration problems for a person: where in the file, the
//! offending line with a caret under it, and a hint. Pure: takes the file's
//! text, writes nothing.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

/// One problem found in the configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    /// Where it is: file, 1-based line and column, the line's text and the
    /// width of the caret run. `None` when the problem is not in the file.
    pub location: Option<Location>,
    pub help: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub line_text: String,
    pub width: usize,
}

impl Location {
    /// Locates a byte span of `text`. Columns count characters, not bytes,
    /// so the caret sits under the right character in non-ASCII lines.
    pub fn of_span(file: PathBuf, text: &str, span: Range<usize>) -> Location {
        let start = floor_char_boundary(text, span.start.min(text.len()));
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line_text = mask_secret(text[line_start..line_end].trim_end_matches('\r'));
        let line = text[..start].matches('\n').count() + 1;
        let column = text[line_start..start].chars().count() + 1;
        let end = floor_char_boundary(text, span.end.clamp(start, line_end));
        let width = text[start..end].chars().count().max(1);
        Location {
            file,
            line,
            column,
            line_text: line_text.to_owned(),
            width,
        }
    }
}

/// Keys whose values are, or may contain, a password.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
    ["password", "connectionString"]
        .iter()
        .any(|secret| key.eq_ignore_ascii_case(secret))
}

/// A file line as a message shows it: the value of a secret key replaced by
/// `***`, whatever is wrong with the line (it may still be the password).
fn mask_secret(line: &str) -> String {
    match line.split_once('=') {
        Some((key, _)) if is_secret_key(key) || looks_secret(key) => format!("{key}= ***"),
        _ => line.to_owned(),
    }
}

/// A misspelt secret key (`pasword`) still holds the secret.
fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["pass", "word", "pwd", "secret", "connection", "token"]
        .iter()
        .any(|part| key.contains(part))
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

impl Diagnostic {
    pub fn new(message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            location: None,
            help: None,
        }
    }

    pub fn at(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    /// ```text
    /// unknown key `importDirectry` in [app]
    ///   --> /opt/icl/injixo-cloud-link.toml:3:1
    ///    |
    ///  3 | importDirectry = "c:/import"
    ///    | ^^^^^^^^^^^^^^
    ///    = help: did you mean `importDirectory`?
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        let gutter = self
            .location
            .as_ref()
            .map_or(1, |l| l.line.to_string().len());
        if let Some(loc) = &self.location {
            let pad = " ".repeat(gutter);
            write!(
                f,
                "\n{pad}--> {}:{}:{}\n{pad} |\n{:>gutter$} | {}\n{pad} | {}{}",
                loc.file.display(),
                loc.line,
                loc.column,
                loc.line,
                loc.line_text,
                " ".repeat(loc.column - 1),
                "^".repeat(loc.width),
            )?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n{} = help: {help}", " ".repeat(gutter))?;
        }
        Ok(())
    }
}

/// The known name closest to a misspelt one, if any is close enough to be
/// a plausible typo. Case differences alone always match.
pub fn closest<'a>(unknown: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = unknown.to_lowercase();
    known
        .into_iter()
        .map(|candidate| {
            let candidate_lower = candidate.to_lowercase();
            let score = if candidate_lower == lower {
                1.0
            } else if strsim::damerau_levenshtein(&lower, &candidate_lower) <= 1 {
                // One typo (a swap, a missing letter) in a short name.
                0.95
            } else {
                strsim::jaro_winkler(&lower, &candidate_lower)
            };
            (candidate, score)
        })
        .filter(|(_, score)| *score >= 0.8)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(candidate, _)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_a_span_by_line_and_character_column() {
        let text = "[app]\nname = \"é x\"\n";
        let start = text.find("x").unwrap();
        let loc = Location::of_span("f.toml".into(), text, start..start + 1);
        assert_eq!((loc.line, loc.column, loc.width), (2, 11, 1));
        assert_eq!(loc.line_text, "name = \"é x\"");
    }

    #[test]
    fn secret_values_are_never_shown() {
        let text = "[database]\npassword = 12345678\n \"connectionString\" = \"Pwd=x\" y\n";
        let loc = Location::of_span(PathBuf::from("f"), text, 22..30);
        assert_eq!(loc.line_text, "password = ***");
        let loc = Location::of_span(PathBuf::from("f"), text, 54..55);
        assert_eq!(loc.line_text, " \"connectionString\" = ***");
        let loc = Location::of_span(PathBuf::from("f"), "pasword = \"x\"\n", 0..7);
        assert_eq!(loc.line_text, "pasword = ***", "a misspelt key too");
        let loc = Location::of_span(PathBuf::from("f"), "uid = 5\n", 6..7);
        assert_eq!(loc.line_text, "uid = 5");
    }

    #[test]
    fn span_at_end_of_file_is_located_on_the_last_line() {
        let text = "[app]\nname = ";
        let loc = Location::of_span("f.toml".into(), text, text.len()..text.len());
        assert_eq!((loc.line, loc.column, loc.width), (2, 8, 1));
    }

    #[test]
    fn renders_snippet_with_caret_and_help() {
        let text = "[app]\nimportDirectry = \"x\"\n";
        let start = text.find("importDirectry").unwrap();
        let d = Diagnostic::new("unknown key `importDirectry` in [app]")
            .at(Location::of_span(
                "/etc/x.toml".into(),
                text,
                start..start + 14,
            ))
            .help("did you mean `importDirectory`?");
        let shown = d.to_string();
        assert_eq!(
            shown,
            "unknown key `importDirectry` in [app]\n --> /etc/x.toml:2:1\n  |\n2 | importDirectry = \"x\"\n  | ^^^^^^^^^^^^^^\n  = help: did you mean `importDirectory`?"
        );
    }

    #[test]
    fn suggests_close_names_only() {
        let keys = ["name", "verbose", "importDirectory"];
        assert_eq!(closest("importDirectry", keys), Some("importDirectory"));
        assert_eq!(closest("importdirectory", keys), Some("importDirectory"));
        assert_eq!(closest("verbos", keys), Some("verbose"));
        assert_eq!(closest("colour", keys), None);
        assert_eq!(closest("aap", ["app", "cloud", "log"]), Some("app"));
    }
}
