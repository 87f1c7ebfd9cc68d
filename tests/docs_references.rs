//! Every claim in docs/guarantees.md and docs/security.md points to the test
//! (or the code) that proves it. This keeps those pointers true: each
//! `tests/<file>.rs::<test>`, `<module>::tests::<test>` and `<module>::<item>`
//! named in backticks must exist, so renaming a test without updating the
//! documents fails here.

use std::fs;
use std::path::{Path, PathBuf};

const DOCUMENTS: &[&str] = &["docs/guarantees.md", "docs/security.md"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The texts in backticks, with line breaks (a wrapped reference) removed.
fn code_spans(text: &str) -> Vec<String> {
    let mut spans = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('`') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('`') else { break };
        let span: String = after[..end]
            .split('\n')
            .map(str::trim)
            .collect::<Vec<_>>()
            .concat();
        spans.push(span);
        rest = &after[end + 1..];
    }
    spans
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// The source files a module path such as `db::planner` can be in: the
/// client's `src/` or the emulator's `emulator/src/`, as `name.rs` or
/// `name/mod.rs`; `protocol::…` is the protocol crate.
fn module_files(segments: &[&str]) -> Vec<PathBuf> {
    let joined = segments.join("/");
    let mut files = Vec::new();
    if segments.first() == Some(&"protocol") {
        let inner = &segments[1..];
        let file = if inner.is_empty() {
            root().join("protocol/src/lib.rs")
        } else {
            root()
                .join("protocol/src")
                .join(format!("{}.rs", inner.join("/")))
        };
        if file.is_file() {
            files.push(file);
        }
    }
    for src in ["src", "emulator/src"] {
        for candidate in [
            root().join(src).join(format!("{joined}.rs")),
            root().join(src).join(&joined).join("mod.rs"),
        ] {
            if candidate.is_file() {
                files.push(candidate);
            }
        }
    }
    files
}

/// Whether `file` declares `item` (`fn item`, `const item`, …), the name
/// ending there rather than running on into a longer one.
fn defines(file: &Path, item: &str) -> bool {
    let source = fs::read_to_string(file).unwrap_or_default();
    ["fn", "const", "static", "struct", "enum", "type"]
        .iter()
        .any(|keyword| {
            let declaration = format!("{keyword} {item}");
            source.match_indices(&declaration).any(|(at, _)| {
                !source[at + declaration.len()..]
                    .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            })
        })
}

/// Where a reference points: the files it may be in and the item, or
/// `None` for a code span that is not a reference (a command, an address, a
/// type's method).
fn resolve(
    span: &str,
    previous: Option<&Vec<PathBuf>>,
) -> Option<Result<(Vec<PathBuf>, String), String>> {
    let (path, item) = span.rsplit_once("::")?;
    if !is_identifier(item) || span.contains(' ') {
        return None;
    }
    // `::name` or `…::name`: in the file of the reference before it.
    if path.is_empty() || path == "…" {
        return previous.map(|files| Ok((files.clone(), item.to_owned())));
    }
    if let Some(file) = path.strip_prefix("tests/") {
        return Some(Ok((vec![root().join("tests").join(file)], item.to_owned())));
    }
    let segments: Vec<&str> = path.split("::").collect();
    if !segments.iter().all(|s| is_identifier(s)) || segments[0].starts_with(char::is_uppercase) {
        return None;
    }
    // `module::tests::name` (tests inline or in `module/tests.rs`),
    // `module::function` or `module::Type::method`: every file along the
    // longest module path that exists.
    for cut in (1..=segments.len()).rev() {
        let mut files = module_files(&segments[..cut]);
        if segments[cut - 1] == "tests" {
            files.extend(module_files(&segments[..cut - 1]));
        }
        if !files.is_empty() {
            return Some(Ok((files, item.to_owned())));
        }
    }
    Some(Err(format!("no module file for `{span}`")))
}

#[test]
fn every_test_and_item_the_documents_name_exists() {
    let mut checked = 0;
    let mut missing = Vec::new();
    for document in DOCUMENTS {
        let text = fs::read_to_string(root().join(document)).unwrap();
        let mut previous: Option<Vec<PathBuf>> = None;
        for span in code_spans(&text) {
            match resolve(&span, previous.as_ref()) {
                None => {}
                Some(Err(problem)) => missing.push(format!("{document}: {problem}")),
                Some(Ok((files, item))) => {
                    checked += 1;
                    if !files.iter().any(|file| defines(file, &item)) {
                        let shown: Vec<_> = files
                            .iter()
                            .map(|f| f.strip_prefix(root()).unwrap_or(f).display().to_string())
                            .collect();
                        missing.push(format!(
                            "{document}: `{span}`: no `{item}` in {}",
                            shown.join(" or ")
                        ));
                    }
                    previous = Some(files);
                }
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
    // The documents name dozens of tests; a parser that finds none is broken.
    assert!(checked > 50, "only {checked} references found");
}

#[test]
fn a_reference_to_a_test_that_does_not_exist_is_caught() {
    let spans = code_spans(
        "see `tests/uploader.rs::no_such\n  _test` and `::an_already_committed_key_is_not_sent_again`",
    );
    assert_eq!(spans[0], "tests/uploader.rs::no_such_test");
    let (files, item) = resolve(&spans[0], None).unwrap().unwrap();
    assert!(!files.iter().any(|f| defines(f, &item)));
    let (files, item) = resolve(&spans[1], Some(&files)).unwrap().unwrap();
    assert!(files.iter().any(|f| defines(f, &item)), "{files:?}");
    // Tests in `src/spool/tests.rs` and in the emulator's `src/state.rs`.
    for reference in [
        "spool::tests::an_aborted_or_dropped_writer_leaves_nothing",
        "state::tests::commits_are_idempotent_and_duplicates_are_counted",
        "backoff::tests::never_overflows",
    ] {
        let (files, item) = resolve(reference, None).unwrap().unwrap();
        assert!(files.iter().any(|f| defines(f, &item)), "{reference}");
    }
    assert!(resolve("grep -rn \"Command::new\" src", None).is_none());
    assert!(resolve("::1", None).is_none());
}
