//! The client's layers hold (ARCHITECTURE.md, "Structural invariants"):
//!
//! - the entry points (`cli`, `commands`, `daemon`, `scm`) and the actors
//!   (`actors`) sit on top; everything else in `src/` is a building block;
//! - a building block never names an actor or an entry point, so storage,
//!   HTTP, parsing and the other libraries can be read, tested and reused
//!   without the actor system;
//! - the top-level modules form no import circle: a circle would make every
//!   module in it depend on all the others (the reason for this test: one
//!   `#[cfg(windows)]` edge from `state::atomic` to the service's entry point
//!   once put 22 files, the daemon and every actor, into one circle).
//!
//! It reads `crate::<module>` paths in code (comments are skipped). Paths
//! through `super::` stay inside one top-level module and cannot break a
//! layer.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The modules above the building blocks.
const TOP: &[&str] = &["actors", "cli", "commands", "daemon", "scm"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`src/state/atomic.rs` →
/// `state`), or `None` for the crate roots.
fn top_module(file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src()).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// The modules a line of code names as `crate::<module>`, including those
/// in a group such as `crate::{a, b::c}`.
fn named_modules(line: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        // `crate::` inside a longer word (`my_crate::`) is another crate.
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            names.extend(group[..end].split(',').filter_map(leading_identifier));
        } else {
            names.extend(leading_identifier(rest));
        }
    }
    names
}

/// The identifier `text` starts with (after blanks), if any.
fn leading_identifier(text: &str) -> Option<String> {
    let name: String = text
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Top-level module → the top-level modules it names, with one example
/// line per edge for the failure message.
fn module_graph() -> BTreeMap<String, BTreeMap<String, String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in files {
        let Some(from) = top_module(&file) else {
            continue;
        };
        let text = fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for to in named_modules(code) {
                if to != from {
                    let place = format!(
                        "{}:{}: {}",
                        file.strip_prefix(src()).unwrap().display(),
                        number + 1,
                        code.trim()
                    );
                    graph
                        .entry(from.clone())
                        .or_default()
                        .entry(to)
                        .or_insert(place);
                }
            }
        }
    }
    graph
}

#[test]
fn building_blocks_never_name_an_actor_or_an_entry_point() {
    let graph = module_graph();
    assert!(
        graph.contains_key("state") && graph.contains_key("actors"),
        "the module graph was not read: {:?}",
        graph.keys()
    );
    let mut wrong = Vec::new();
    for (from, edges) in &graph {
        if TOP.contains(&from.as_str()) {
            continue;
        }
        for (to, place) in edges {
            if TOP.contains(&to.as_str()) {
                wrong.push(format!("{from} names {to} at {place}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "building blocks must not reach up to actors or entry points:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn top_level_modules_form_no_import_circle() {
    let graph = module_graph();
    // Tarjan's strongly connected components over the top-level modules.
    struct Search<'g> {
        graph: &'g BTreeMap<String, BTreeMap<String, String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        circles: Vec<Vec<&'g str>>,
    }
    impl<'g> Search<'g> {
        fn visit(&mut self, node: &'g str) {
            let n = self.index.len();
            self.index.insert(node, n);
            self.low.insert(node, n);
            self.stack.push(node);
            self.on_stack.insert(node);
            for next in self.graph.get(node).into_iter().flat_map(|e| e.keys()) {
                let next = next.as_str();
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut circle = Vec::new();
                loop {
                    let member = self.stack.pop().unwrap();
                    self.on_stack.remove(member);
                    circle.push(member);
                    if member == node {
                        break;
                    }
                }
                if circle.len() > 1 {
                    self.circles.push(circle);
                }
            }
        }
    }
    let mut search = Search {
        graph: &graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        circles: Vec::new(),
    };
    for node in graph.keys() {
        if !search.index.contains_key(node.as_str()) {
            search.visit(node);
        }
    }
    let explained: Vec<String> = search
        .circles
        .iter()
        .map(|circle| {
            let members: BTreeSet<&str> = circle.iter().copied().collect();
            let edges: Vec<String> = circle
                .iter()
                .flat_map(|from| {
                    graph[*from]
                        .iter()
                        .filter(|(to, _)| members.contains(to.as_str()))
                        .map(move |(to, place)| format!("  {from} → {to} ({place})"))
                })
                .collect();
            format!("circle {:?}:\n{}", circle, edges.join("\n"))
        })
        .collect();
    assert!(explained.is_empty(), "{}", explained.join("\n"));
}

#[test]
fn the_reader_finds_grouped_and_plain_paths_and_skips_other_crates() {
    assert_eq!(
        named_modules("use crate::{state::StateDir, actors};"),
        ["state", "actors"]
    );
    assert_eq!(
        named_modules("let x = crate::daemon::run(a, crate::cli::x);"),
        ["daemon", "cli"]
    );
    assert!(named_modules("use my_crate::state;").is_empty());
}
