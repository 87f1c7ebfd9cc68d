use std::io::{Read, Write};

use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};

use super::*;

fn settings(root: &Path, max_bytes: u64) -> SpoolSettings {
    SpoolSettings::in_state_dir(root, max_bytes)
}

fn new_item(key: &str) -> NewItem {
    NewItem {
        source: UploadSource::Csv,
        idempotency_key: key.to_owned(),
        file_name: format!("{key}.csv"),
        content_type: "text/csv".to_owned(),
        metadata: BTreeMap::from([("rows".to_owned(), serde_json::json!(2))]),
        origin: "csv".to_owned(),
        local: BTreeMap::from([("path".to_owned(), serde_json::json!("/import/x.csv"))]),
    }
}

fn spool_bytes(spool: &Spool, key: &str, content: &[u8]) -> SpooledItem {
    let mut writer = spool.begin(&format!("{key}.csv")).unwrap();
    writer.write_all(content).unwrap();
    assert_eq!(writer.uncompressed_bytes(), content.len() as u64);
    writer.commit(new_item(key)).unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    list(dir).unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

#[test]
fn a_committed_item_is_gzip_with_the_sha256_of_what_is_sent() {
    let root = tempfile::tempdir().unwrap();
    let spool = Spool::open(settings(root.path(), DEFAULT_MAX_BYTES)).unwrap();
    let content: Vec<u8> = (0..200_000u32)
        .flat_map(|i| format!("{i};queue {};{}\n", i % 7, i * 31).into_bytes())
        .collect();
    let item = spool_bytes(&spool, "a", &content);

    let gz = fs::read(spool.data_path(&item.id)).unwrap();
    assert_eq!(gz.len() as u64, item.size);
    assert!(item.size < content.len() as u64 / 2, "compressed");
    assert_eq!(item.sha256, hex::encode(Sha256::digest(&gz)));
    assert_eq!(gunzip(&gz), content);
    assert_eq!(item.uncompressed_size, content.len() as u64);
    assert_eq!(item.metadata["rows"], 2);
    assert_eq!(spool.load(&item.id).unwrap(), item);
    assert_eq!(
        spool.usage(),
        SpoolUsage {
            files: 1,
            bytes: item.size
        }
    );
    // Nothing but the item's two files.
    assert_eq!(
        names(&spool.settings().dir),
        vec![format!("{}.gz", item.id), format!("{}.json", item.id)]
    );
}

#[test]
fn pending_lists_oldest_first_and_survives_a_reopen() {
    let root = tempfile::tempdir().unwrap();
    let spool = Spool::open(settings(root.path(), DEFAULT_MAX_BYTES)).unwrap();
    let ids: Vec<String> = ["one", "two", "three"]
        .iter()
        .map(|k| spool_bytes(&spool, k, k.as_bytes()).id)
        .collect();
    let pending: Vec<String> = spool.pending().unwrap().into_iter().map(|i| i.id).collect();
    assert_eq!(pending, ids);

    let reopened = Spool::open(settings(root.path(), DEFAULT_MAX_BYTES)).unwrap();
    let keys: Vec<String> = reopened
        .pending()
        .unwrap()
        .into_iter()
        .map(|i| i.idempotency_key)
        .collect();
    assert_eq!(keys, ["one", "two", "three"]);
    assert_eq!(reopened.usage(), spool.usage());
}

/// What a writer still open when the process died leaves behind: its temp
/// file. Returns the file's name.
#[cfg(unix)]
fn leave_an_unfinished_item(spool: &Spool) -> String {
    let mut unfinished = spool.begin("unfinished.csv").unwrap();
    unfinished.write_all(b"half of it").unwrap();
    let temp_name = format!(".{}.gz.tmp", unfinished.id());
    // Never dropped, as in a crash (dropping removes the file).
    std::mem::forget(unfinished);
    temp_name
}

/// Windows: the forgotten writer above would keep its file open in this
/// process, and a file deleted while open keeps its name until the last
/// handle closes (Wine; Windows before POSIX delete semantics), while after a
/// real crash no handle is left. So the temp file is written the way the
/// writer names it, and closed.
#[cfg(windows)]
fn leave_an_unfinished_item(spool: &Spool) -> String {
    let temp_name = ".20250101T000000000001Z-0123456789ab.gz.tmp".to_owned();
    fs::write(spool.settings().dir.join(&temp_name), b"half of it").unwrap();
    temp_name
}

#[test]
fn open_removes_what_a_crash_left_unfinished_and_keeps_committed_items() {
    let root = tempfile::tempdir().unwrap();
    let spool = Spool::open(settings(root.path(), DEFAULT_MAX_BYTES)).unwrap();
    let kept = spool_bytes(&spool, "kept", b"a;b\n1;2\n");

    // A writer still open when the process died: only its temp file exists.
    let temp_name = leave_an_unfinished_item(&spool);
    // Data renamed into place, but the sidecar was never written.
    let orphan = spool.settings().dir.join("20250101T000000000000Z-abc.gz");
    fs::write(&orphan, b"not committed").unwrap();
    // A sidecar update interrupted before its rename.
    let stale_tmp = spool
        .settings()
        .dir
        .join(format!(".{}.json.123.tmp", kept.id));
    fs::write(&stale_tmp, b"{").unwrap();
    assert!(names(&spool.settings().dir).contains(&temp_name));

    let reopened = Spool::open(settings(root.path(), DEFAULT_MAX_BYTES)).unwrap();
    assert_eq!(
        names(&reopened.settings().dir),
        vec![format!("{}.gz", kept.id), format!("{}.json", kept.id)]
    );
    assert_eq!(reopened.pending().unwrap(), vec![kept.clone()]);
    assert_eq!(
        reopened.usage(),
        SpoolUsage {
            files: 1,
            bytes: kept.size
        }
    );
}

#[test]
fn a_sidecar_without_data_is_moved_aside_with_a_reason_not_uploaded() {
    let root = tempfile::tempdir().unwrap();
    let spool = Spool::open(settings(root.path(), DEFAULT_MAX_BYTES)).unwrap();
    let lost = spool_bytes(&spool, "lost", b"x");
    fs::remove_file(spool.data_path(&lost.id)).unwrap();

    let reopened = Spool::open(settings(root.path(), DEFAULT_MAX_BYTES)).unwrap();
    assert!(reopened.pending().unwrap().is_empty());
    let paths = reopened.rejected_paths(&lost.id);
    assert!(paths.sidecar.exists());
    let reason = fs::read_to_string(&paths.reason).unwrap();
    assert!(reason.contains("data file is missing"), "{reason}");
}

#[test]
fn an_aborted_or_dropped_writer_leaves_nothing() {
    let root = tempfile::tempdir().unwrap();
    let spool = Spool::open(settings(root.path(), DEFAULT_MAX_BYTES)).unwrap();
    let mut writer = spool.begin("a.csv").unwrap();
    writer.write_all(b"abc").unwrap();
    writer.abort();
    let mut writer = spool.begin("b.csv").unwrap();
    writer.write_all(b"abc").unwrap();
    drop(writer);
    assert!(names(&spool.settings().dir).is_empty());
    assert_eq!(spool.usage(), SpoolUsage::default());
}

#[test]
fn a_full_spool_refuses_new_items_until_room_is_made() {
    let root = tempfile::tempdir().unwrap();
    let spool = Spool::open(settings(root.path(), 30)).unwrap();
    assert!(spool.has_room());
    // Random-ish bytes do not compress: well over the 30-byte budget.
    let content: Vec<u8> = (0..100u32).map(|i| (i * 7919 % 251) as u8).collect();
    let first = spool_bytes(&spool, "first", &content);
    assert!(first.size >= 30);
    assert!(!spool.has_room());
    match spool.begin("second.csv") {
        Err(SpoolError::Full { used, budget }) => {
            assert_eq!((used, budget), (first.size, 30));
        }
        other => panic!("expected Full, got {other:?}"),
    }
    let message = SpoolError::Full {
        used: 40,
        budget: 30,
    }
    .to_string();
    assert!(message.contains("maxBytes"), "{message}");

    spool.remove(&first).unwrap();
    assert!(spool.has_room());
    assert_eq!(spool.usage(), SpoolUsage::default());
    assert!(names(&spool.settings().dir).is_empty());
    spool_bytes(&spool, "second", b"fits");
}

#[test]
fn reject_moves_data_and_sidecar_and_writes_the_reason() {
    let root = tempfile::tempdir().unwrap();
    let spool = Spool::open(settings(root.path(), DEFAULT_MAX_BYTES)).unwrap();
    let item = spool_bytes(&spool, "bad", b"a;b\n");
    let other = spool_bytes(&spool, "good", b"c;d\n");
    let why = Rejection {
        refused: "POST http://127.0.0.1:1/api/cloud-link/v1/uploads".into(),
        status: "422 Unprocessable Entity".into(),
        message: "the columns are wrong (invalid_request)".into(),
        at: Utc::now(),
    };
    let paths = spool.reject(&item, &why).unwrap();

    assert_eq!(gunzip(&fs::read(&paths.data).unwrap()), b"a;b\n");
    let moved: SpooledItem = serde_json::from_slice(&fs::read(&paths.sidecar).unwrap()).unwrap();
    assert_eq!(moved, item);
    let reason = fs::read_to_string(&paths.reason).unwrap();
    for needle in [
        "bad.csv",
        "422 Unprocessable Entity",
        "the columns are wrong",
        "/api/cloud-link/v1/uploads",
        &item.id,
    ] {
        assert!(reason.contains(needle), "{needle:?} in {reason}");
    }
    assert_eq!(spool.pending().unwrap(), vec![other.clone()]);
    assert_eq!(
        spool.usage(),
        SpoolUsage {
            files: 1,
            bytes: other.size
        }
    );
    // A reopen does not take the rejected item back.
    let reopened = Spool::open(settings(root.path(), DEFAULT_MAX_BYTES)).unwrap();
    assert_eq!(reopened.pending().unwrap(), vec![other]);
}

#[test]
fn an_interrupted_reject_is_finished_at_open() {
    let root = tempfile::tempdir().unwrap();
    let spool = Spool::open(settings(root.path(), DEFAULT_MAX_BYTES)).unwrap();
    let item = spool_bytes(&spool, "bad", b"a;b\n");
    let paths = spool.rejected_paths(&item.id);
    // The reason and the data moved, then the process died.
    fs::write(&paths.reason, "refused: 422").unwrap();
    fs::rename(spool.data_path(&item.id), &paths.data).unwrap();

    let reopened = Spool::open(settings(root.path(), DEFAULT_MAX_BYTES)).unwrap();
    assert!(reopened.pending().unwrap().is_empty());
    assert!(paths.sidecar.exists() && paths.data.exists());
    assert_eq!(fs::read_to_string(&paths.reason).unwrap(), "refused: 422");
}

#[test]
fn sidecar_updates_keep_the_item_and_never_revive_a_removed_one() {
    let root = tempfile::tempdir().unwrap();
    let spool = Spool::open(settings(root.path(), DEFAULT_MAX_BYTES)).unwrap();
    let mut item = spool_bytes(&spool, "k", b"x");
    item.attempts = 3;
    item.last_error = Some("503".into());
    item.next_attempt_at = Some(Utc::now());
    spool.update(&item).unwrap();
    assert_eq!(spool.load(&item.id).unwrap(), item);

    spool.remove(&item).unwrap();
    spool.update(&item).unwrap();
    assert!(spool.pending().unwrap().is_empty());
    assert!(names(&spool.settings().dir).is_empty());
}

#[test]
fn the_spool_is_shareable_across_threads() {
    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
    assert_send_sync_clone::<Spool>();
    fn assert_send<T: Send>() {}
    assert_send::<ItemWriter>();
}
