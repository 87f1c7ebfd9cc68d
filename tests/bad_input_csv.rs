//! The bad-input corpus for CSV import, end to end: each kind of broken or
//! strange file is dropped into the import folder of a real client, together
//! with a good file of its own. Each has a defined outcome and a clear log
//! line, and none crashes the client or holds up the good files.

mod corpus;
mod support;

use std::io::Write;
use std::time::Duration;

use corpus::*;
use support::emulator::Emulator;

/// A file of exactly `lines` lines `a;1`, written without holding it whole.
fn tiny_rows(path: &std::path::Path, lines: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines * 4);
    for _ in 0..lines {
        out.extend_from_slice(b"a;1\n");
    }
    std::fs::File::create(path)
        .unwrap()
        .write_all(&out)
        .unwrap();
    out
}

#[test]
fn broken_csv_content_has_a_defined_outcome_and_never_holds_up_good_files() {
    let cloud = Emulator::start(&[]);
    let install = csv_install(&cloud.url, "");
    let _client = link(&install, &cloud, run_command(&install));
    let import = import_dir(&install);

    let mut single_line = vec![b'x'; 10 * 1024 * 1024];
    single_line.extend_from_slice(b"\n");
    let mut nul = b"Queue;Calls\nA;1\n".to_vec();
    nul.extend_from_slice(b"B;\x002\n");
    // Windows-1252 text, not UTF-8: passes through unchanged.
    let latin1 = b"Queue;Name\nQ1;Caf\xe9 Fran\xe7ais\nQ2;\x80 5\n".to_vec();
    let ragged = b"a;b;c\n1;2\n1;2;3;4\n\n5\n".to_vec();
    let unterminated = b"Queue;Name\nQ1;\"never closed\nQ2;x\n".to_vec();

    let imported_as_is: Vec<(&str, Vec<u8>)> = vec![
        ("empty.csv", Vec::new()),
        ("bom-only.csv", b"\xEF\xBB\xBF".to_vec()),
        ("latin1.csv", latin1.clone()),
        ("ragged.csv", ragged.clone()),
        ("unterminated-quote.csv", unterminated.clone()),
        ("single-line-10mb.csv", single_line.clone()),
    ];
    for (name, content) in &imported_as_is {
        drop_file(&import, name, content);
        drop_file(&import, &format!("good-{name}"), &good_csv(name));
    }
    drop_file(&import, "nul.csv", &nul);
    drop_file(&import, "good-nul.csv", &good_csv("nul"));
    let staged = install.path().join("million.tmp-staging");
    let million = tiny_rows(&staged, 1_000_000);
    std::fs::rename(&staged, import.join("million-rows.csv")).unwrap();
    drop_file(&import, "good-million.csv", &good_csv("million"));

    // Every file but nul.csv arrives, each once: 7 broken-but-importable
    // files and 8 good ones.
    let imports = wait_for_imports(&cloud, 15);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(cloud.imports().len(), 15, "{:#?}", cloud.imports());
    assert_no_duplicates(&cloud);

    let meta = |content: &[u8]| {
        let import = imports.get(&sha256_hex(content)).unwrap_or_else(|| {
            panic!(
                "not imported: {:?}",
                String::from_utf8_lossy(&content[..content.len().min(40)])
            )
        });
        let id = import["import_id"].as_str().unwrap();
        assert_eq!(
            cloud.import_content(id),
            content,
            "content of {}",
            import["file_name"]
        );
        import["metadata"].clone()
    };
    for (name, _) in &imported_as_is {
        meta(&good_csv(name));
    }
    meta(&good_csv("nul"));
    meta(&good_csv("million"));

    // Empty and BOM-only: imported as they are, with no rows.
    let empty = meta(b"");
    assert_eq!(
        (empty["rows"].as_u64(), empty["columns"].as_u64()),
        (Some(0), Some(0))
    );
    let bom = meta(b"\xEF\xBB\xBF");
    assert_eq!(bom["original_encoding"], "utf-8-bom");
    assert_eq!(bom["rows"], 0);
    // Not UTF-8: an 8-bit encoding is named, the bytes are not converted.
    let latin = meta(&latin1);
    assert_eq!(latin["encoding"], "windows-1252", "{latin}");
    // Ragged rows: counted, flagged, imported.
    let ragged_meta = meta(&ragged);
    assert_eq!(ragged_meta["ragged"], true);
    assert_eq!(ragged_meta["rows"], 4, "blank lines are no records");
    assert_eq!(ragged_meta["columns"], 4);
    // An unterminated quote swallows the rest of the (small) file into one
    // field: two records, imported whole for the cloud to judge.
    let quote_meta = meta(&unterminated);
    assert_eq!(quote_meta["rows"], 2, "{quote_meta}");
    // 10 MB without a line break: uploaded whole, counts marked incomplete.
    let long = meta(&single_line);
    assert_eq!(long["counts_complete"], false, "{long}");
    // A million tiny rows: all counted.
    let many = meta(&million);
    assert_eq!(many["rows"], 1_000_000);
    assert_eq!(many["ragged"], false);
    // NUL bytes: refused, never uploaded.
    assert!(!imports.contains_key(&sha256_hex(&nul)));

    let log = install.read_log();
    assert_eq!(
        lines_with(
            &log,
            "not importing nul.csv: not a text file (NUL byte at offset 18)"
        )
        .len(),
        1,
        "{log}"
    );
    assert_eq!(
        lines_with(&log, "single-line-10mb.csv has a record longer than 1 MiB").len(),
        1,
        "{log}"
    );
    for name in [
        "empty.csv",
        "bom-only.csv",
        "latin1.csv",
        "ragged.csv",
        "million-rows.csv",
    ] {
        assert_eq!(
            lines_with(&log, &format!("uploaded {name} (")).len(),
            1,
            "{name}: {log}"
        );
    }
    assert!(
        log.contains("uploaded million-rows.csv (4.0 MB, 1,000,000 rows)"),
        "{log}"
    );
    assert_no_crash(&log);
    assert_eq!(install.spooled_files(), 0);

    // The refusal is remembered: the same NUL file is not read again, and a
    // fixed version of it is imported.
    std::fs::write(import.join("nul.csv"), b"Queue;Calls\nA;1\nB;2\n").unwrap();
    wait_for_imports(&cloud, 16);
    let log = install.read_log();
    assert_eq!(lines_with(&log, "not importing nul.csv").len(), 1, "{log}");
}
