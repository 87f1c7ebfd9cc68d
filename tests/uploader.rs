//! The UploaderActor in-process, paired by a real PairingActor, against the
//! real emulator over real HTTP: delivery exactly once with the right bytes,
//! idempotency, faults on every endpoint, expired URLs, rejection, waiting
//! for the link, shutdown and resume.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use actix::prelude::*;
use injixo_cloud_link::actors::pairing::{PairingActor, PairingEvent, PairingSettings};
use injixo_cloud_link::actors::slot::Slot;
use injixo_cloud_link::actors::supervisor::Shutdown;
use injixo_cloud_link::actors::uploader::{Delivery, Enqueued, UploaderActor, UploaderSettings};
use injixo_cloud_link::backoff::Backoff;
use injixo_cloud_link::http::{HttpClientFactory, ProxySettings, TrustedRoots};
use injixo_cloud_link::protocol::UploadSource;
use injixo_cloud_link::spool::{NewItem, Spool, SpoolSettings, SpooledItem, DEFAULT_MAX_BYTES};
use injixo_cloud_link::state::StateDir;
use injixo_cloud_link::status::StatusBoard;
use serde_json::{json, Value};
use support::emulator::Emulator;
use support::wait_for;

const PIN: Duration = Duration::from_secs(20);
const LINK: Duration = Duration::from_secs(15);
const ARRIVE: Duration = Duration::from_secs(60);

// ---- the cloud -----------------------------------------------------------------

struct Cloud {
    emulator: Emulator,
    integration: String,
}

impl Cloud {
    fn start(extra: &[&str]) -> Cloud {
        let mut args = vec!["--poll-interval", "1"];
        args.extend_from_slice(extra);
        let emulator = Emulator::start(&args);
        let integration = emulator.create_csv_integration("Uploader tests");
        Cloud {
            emulator,
            integration,
        }
    }

    fn imports(&self) -> Vec<Value> {
        let (status, body) = self.emulator.get("/_emulator/imports");
        assert_eq!(status, 200, "{body}");
        body.as_array().cloned().unwrap_or_default()
    }

    fn import_with_key(&self, key: &str) -> Value {
        let matching: Vec<Value> = self
            .imports()
            .into_iter()
            .filter(|i| i["idempotency_key"] == key)
            .collect();
        assert_eq!(matching.len(), 1, "one import for {key}: {matching:?}");
        matching[0].clone()
    }

    fn content(&self, import_id: &str) -> Vec<u8> {
        let url = format!(
            "{}/_emulator/imports/{import_id}/content",
            self.emulator.url
        );
        ureq::get(&url)
            .call()
            .expect("GET content")
            .body_mut()
            .read_to_vec()
            .expect("content body")
    }

    fn fault(&self, rule: Value) {
        let (status, body) = self.emulator.post("/_emulator/faults", &rule);
        assert!(status < 300, "fault rule {rule}: {status} {body}");
    }

    fn clear_faults(&self) {
        assert!(self.emulator.delete("/_emulator/faults") < 300);
    }

    /// The rules with the counts they have left (spent rules are gone).
    fn faults(&self) -> Vec<Value> {
        let (status, body) = self.emulator.get("/_emulator/faults");
        assert_eq!(status, 200, "{body}");
        body.as_array().cloned().unwrap_or_default()
    }

    fn log_lines(&self, needle: &str) -> usize {
        self.emulator
            .log_text()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }
}

// ---- the client: PairingActor + UploaderActor on an actix System of its own ----

#[derive(Clone)]
struct Tuning {
    concurrency: usize,
    api_timeout: Duration,
    retry: Backoff,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            concurrency: 2,
            api_timeout: Duration::from_secs(30),
            retry: Backoff::new(Duration::from_millis(200), Duration::from_secs(2)),
        }
    }
}

/// Collects the client's log lines (the actors log on the system's thread).
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

struct Client {
    system: System,
    thread: Option<JoinHandle<()>>,
    uploader: Addr<UploaderActor>,
    events: Receiver<PairingEvent>,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    board: StatusBoard,
    log: LogBuffer,
}

impl Client {
    fn start(cloud: &Cloud, root: &Path, spool: &Spool, tuning: Tuning) -> Client {
        let (events_tx, events) = mpsc::channel();
        let (ready_tx, ready) = mpsc::channel();
        let deliveries: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let board = StatusBoard::default();
        let log = LogBuffer::default();
        let cloud_url: url::Url = cloud.emulator.url.parse().unwrap();
        let state = StateDir::new(root.join("state"));
        let thread = std::thread::spawn({
            let (deliveries, board, log, spool) = (
                deliveries.clone(),
                board.clone(),
                log.clone(),
                spool.clone(),
            );
            move || {
                let subscriber = tracing_subscriber::fmt()
                    .with_writer(move || log.clone())
                    .with_ansi(false)
                    .with_max_level(tracing::Level::INFO)
                    .finish();
                let _log = tracing::subscriber::set_default(subscriber);
                let http = HttpClientFactory::new(
                    "0.0.0-test",
                    ProxySettings::direct(),
                    &TrustedRoots::system(),
                )
                .unwrap();
                let system = System::new();
                system.block_on(async move {
                    let events_tx = Mutex::new(events_tx);
                    let pairing = PairingActor::new(PairingSettings {
                        http: http.clone(),
                        cloud_url: cloud_url.clone(),
                        state,
                        instance: "uploader-test".into(),
                        board: board.clone(),
                        listener: Arc::new(move |event: &PairingEvent| {
                            let _ = events_tx.lock().unwrap().send(event.clone());
                        }),
                        heartbeat: false,
                    })
                    .start();
                    let slot = Slot::empty();
                    slot.set(pairing);
                    let uploader = UploaderActor::new(UploaderSettings {
                        spool,
                        http,
                        cloud_url,
                        pairing: slot,
                        board,
                        concurrency: tuning.concurrency,
                        listener: Arc::new(move |delivery: &Delivery| {
                            deliveries.lock().unwrap().push(delivery.clone());
                        }),
                    })
                    .with_api_timeout(tuning.api_timeout)
                    .with_retry_policy(tuning.retry)
                    .start();
                    ready_tx.send((System::current(), uploader)).unwrap();
                });
                system.run().unwrap();
            }
        });
        let (system, uploader) = ready
            .recv_timeout(Duration::from_secs(10))
            .expect("the client's actors started");
        Client {
            system,
            thread: Some(thread),
            uploader,
            events,
            deliveries,
            board,
            log,
        }
    }

    /// Enters the client's PIN in the cloud, as a person would, and waits
    /// for the link.
    fn link(&self, cloud: &Cloud) {
        let pin = self.next_event(PIN, |e| match e {
            PairingEvent::PinOffered(answer) => Some(answer.offer.pin.clone()),
            _ => None,
        });
        assert_eq!(cloud.emulator.connect(&pin, &cloud.integration), 200);
        self.next_event(LINK, |e| {
            matches!(e, PairingEvent::Linked { .. }).then_some(())
        });
    }

    fn next_event<T>(&self, timeout: Duration, want: impl Fn(&PairingEvent) -> Option<T>) -> T {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let event = self
                .events
                .recv_timeout(left)
                .expect("the pairing event in time");
            if let Some(found) = want(&event) {
                return found;
            }
        }
    }

    fn enqueue(&self, item: &SpooledItem) {
        self.uploader.do_send(Enqueued(item.clone()));
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().unwrap().clone()
    }

    fn wait_for_deliveries(&self, n: usize) -> Vec<Delivery> {
        wait_for(&format!("{n} deliveries"), ARRIVE, || {
            let all = self.deliveries();
            (all.len() >= n).then_some(all)
        })
    }

    fn log_text(&self) -> String {
        self.log.text()
    }

    /// Shutdown as the supervisor sends it; the actor must stop promptly.
    fn shut_down_uploader(&self) {
        self.uploader.do_send(Shutdown);
        wait_for("the uploader to stop", Duration::from_secs(8), || {
            (!self.uploader.connected()).then_some(())
        });
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.system.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---- spooled data --------------------------------------------------------------

fn open_spool(root: &Path) -> Spool {
    Spool::open(SpoolSettings::in_state_dir(
        &root.join("state"),
        DEFAULT_MAX_BYTES,
    ))
    .expect("open the spool")
}

/// CSV text of `rows` rows with numbers that do not repeat, so that even
/// the gzip bytes span several 64 KiB chunks when `rows` is large.
fn csv(rows: u32, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut out = b"queueidentifier;timestamp;offered;answered\n".to_vec();
    for row in 0..rows {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(
            format!(
                "q{};2025-01-01T00:{:02};{};{}\n",
                row % 13,
                row % 60,
                state % 100_000,
                state >> 44
            )
            .as_bytes(),
        );
    }
    out
}

fn spool_csv(spool: &Spool, file_name: &str, key: &str, content: &[u8]) -> SpooledItem {
    let mut writer = spool.begin(file_name).expect("room in the spool");
    writer.write_all(content).unwrap();
    let rows = content.iter().filter(|b| **b == b'\n').count() - 1;
    writer
        .commit(NewItem {
            source: UploadSource::Csv,
            idempotency_key: key.to_owned(),
            file_name: file_name.to_owned(),
            content_type: "text/csv".to_owned(),
            metadata: [
                ("rows".to_owned(), json!(rows)),
                ("encoding".to_owned(), json!("utf-8")),
            ]
            .into_iter()
            .collect(),
            origin: "csv".to_owned(),
            local: Default::default(),
        })
        .expect("commit")
}

fn key(n: u32) -> String {
    format!("{n:064x}")
}

fn rejected_files(root: &Path) -> Vec<String> {
    let dir: PathBuf = root.join("state").join("rejected");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Each item arrived once, with its bytes and metadata.
fn assert_arrived(cloud: &Cloud, items: &[(SpooledItem, Vec<u8>)]) {
    for (item, content) in items {
        let import = cloud.import_with_key(&item.idempotency_key);
        assert_eq!(import["file_name"], item.file_name.as_str());
        assert_eq!(import["content_encoding"], "gzip");
        assert_eq!(import["size"], item.size);
        assert_eq!(import["sha256"], item.sha256.as_str());
        assert_eq!(import["metadata"], json!(item.metadata));
        let import_id = import["import_id"].as_str().unwrap();
        assert!(
            cloud.content(import_id) == *content,
            "the content of {} differs",
            item.file_name
        );
    }
}

fn assert_clean_log(log: &str) {
    assert!(
        !log.contains("X-Signature"),
        "a URL signature in the log:\n{log}"
    );
    assert!(!log.contains("X-Expires"), "a URL query in the log:\n{log}");
    assert!(!log.contains("Bearer"), "a token in the log:\n{log}");
}

// ---- tests ------------------------------------------------------------------------

#[test]
fn spooled_items_arrive_once_with_their_content_and_metadata() {
    let cloud = Cloud::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let spool = open_spool(root.path());
    let client = Client::start(&cloud, root.path(), &spool, Tuning::default());
    client.link(&cloud);

    let mut items = Vec::new();
    for (n, rows) in [(1, 12_000), (2, 3), (3, 500)] {
        let content = csv(rows, n as u64);
        let item = spool_csv(&spool, &format!("stats-{n}.csv"), &key(n), &content);
        client.enqueue(&item);
        items.push((item, content));
    }
    // The big one spans several PUT chunks.
    assert!(items[0].0.size > 2 * 64 * 1024, "{}", items[0].0.size);

    let deliveries = client.wait_for_deliveries(3);
    assert_eq!(cloud.imports().len(), 3);
    assert_arrived(&cloud, &items);
    for import in cloud.imports() {
        assert_eq!(import["duplicates"], 0, "{import}");
    }
    for delivery in &deliveries {
        match delivery {
            Delivery::Committed {
                item,
                import_id,
                already,
            } => {
                assert!(!already);
                let import = cloud.import_with_key(&item.idempotency_key);
                assert_eq!(import["import_id"], import_id.as_str());
                assert_eq!(item.origin, "csv");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // A chunked PUT would have been refused with 411 (as S3 does).
    assert_eq!(cloud.log_lines(" 411 "), 0);
    assert_eq!(cloud.log_lines("PUT /_s3/uploads/"), 3);

    assert!(spool.pending().unwrap().is_empty());
    assert_eq!(spool.usage().files, 0);
    wait_for("the status board's spool to be empty", ARRIVE, || {
        let spool = client.board.snapshot().spool;
        (spool.files == 0 && spool.bytes == 0).then_some(())
    });
    let log = client.log_text();
    assert!(
        log.contains("uploaded stats-1.csv (") && log.contains(" rows) as import imp_"),
        "{log}"
    );
    assert!(log.contains("12,000 rows"), "{log}");
    assert!(!log.contains(" WARN ") && !log.contains(" ERROR "), "{log}");
    assert_clean_log(&log);
}

#[test]
fn an_already_committed_key_is_not_sent_again() {
    let cloud = Cloud::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let spool = open_spool(root.path());
    let client = Client::start(&cloud, root.path(), &spool, Tuning::default());
    client.link(&cloud);

    let first = spool_csv(&spool, "day.csv", &key(7), b"a;b\n1;2\n");
    client.enqueue(&first);
    client.wait_for_deliveries(1);

    // The same content again (same key), e.g. the file copied in twice.
    let again = spool_csv(&spool, "day-copy.csv", &key(7), b"a;b\n1;2\n");
    client.enqueue(&again);
    let deliveries = client.wait_for_deliveries(2);
    match &deliveries[1] {
        Delivery::Committed { item, already, .. } => {
            assert!(already, "{:?}", deliveries[1]);
            assert_eq!(item.id, again.id);
        }
        other => panic!("unexpected {other:?}"),
    }
    let imports = cloud.imports();
    assert_eq!(imports.len(), 1, "{imports:?}");
    assert_eq!(imports[0]["file_name"], "day.csv");
    assert_eq!(imports[0]["duplicates"], 0, "nothing committed twice");
    assert_eq!(cloud.log_lines("PUT /_s3/uploads/"), 1, "sent once");
    assert!(spool.pending().unwrap().is_empty());
    assert!(
        client.log_text().contains("day-copy.csv (")
            && client.log_text().contains("was already in the cloud"),
        "{}",
        client.log_text()
    );
}

#[test]
fn uploads_wait_out_faults_on_every_endpoint_and_then_all_arrive() {
    let cloud = Cloud::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let spool = open_spool(root.path());
    let tuning = Tuning {
        api_timeout: Duration::from_secs(2),
        ..Tuning::default()
    };
    let client = Client::start(&cloud, root.path(), &spool, tuning);
    client.link(&cloud);

    // Phase 1: the API is down. The first rule counts refusals, the second
    // keeps it down.
    let uploads = "/api/cloud-link/v1/uploads";
    cloud.fault(json!({"path_prefix": uploads, "mode": "status", "status": 503, "retry_after": 1, "count": 3}));
    cloud.fault(json!({"path_prefix": uploads, "mode": "status", "status": 503}));
    let mut items = Vec::new();
    for n in 0..4 {
        // Small: the PUT's timeout stays near the 2 s API timeout.
        let content = csv(200, 100 + n as u64);
        let item = spool_csv(&spool, &format!("part-{n}.csv"), &key(100 + n), &content);
        client.enqueue(&item);
        items.push((item, content));
    }
    wait_for("three refused attempts", ARRIVE, || {
        (cloud.faults().len() == 1).then_some(())
    });
    assert!(cloud.imports().is_empty());
    assert_eq!(spool.pending().unwrap().len(), 4, "nothing is dropped");
    assert!(
        rejected_files(root.path()).is_empty(),
        "nothing is rejected"
    );
    assert!(
        spool.pending().unwrap().iter().any(|i| i.attempts > 0
            && i.next_attempt_at.is_some()
            && i.last_error.as_deref().is_some_and(|e| e.contains("503"))),
        "the retry state is saved in the sidecars"
    );
    assert_eq!(client.board.snapshot().spool.files, 4);

    // Phase 2: the API is back, with a mix of one-off faults on every
    // endpoint: create, PUT and commit.
    cloud.clear_faults();
    let commit = "/api/cloud-link/v1/uploads/";
    let s3 = "/_s3/uploads/";
    for rule in [
        json!({"path_prefix": uploads, "mode": "reset", "count": 1}),
        json!({"path_prefix": uploads, "mode": "delay", "delay_ms": 4000, "count": 1}),
        json!({"path_prefix": s3, "mode": "status", "status": 503, "retry_after": 1, "count": 1}),
        json!({"path_prefix": s3, "mode": "reset", "count": 1}),
        json!({"path_prefix": s3, "mode": "truncate", "count": 1}),
        json!({"path_prefix": s3, "mode": "delay", "delay_ms": 6000, "count": 1}),
        json!({"path_prefix": commit, "mode": "truncate", "count": 1}),
        json!({"path_prefix": commit, "mode": "status", "status": 500, "count": 1}),
    ] {
        cloud.fault(rule);
    }
    client.wait_for_deliveries(4);
    assert_eq!(cloud.faults(), Vec::<Value>::new(), "every fault fired");
    assert_eq!(cloud.imports().len(), 4, "each exactly once");
    assert_arrived(&cloud, &items);
    assert!(spool.pending().unwrap().is_empty());
    assert!(rejected_files(root.path()).is_empty());

    let log = client.log_text();
    assert!(log.contains("upload of part-"), "{log}");
    assert!(log.contains("; retrying in "), "{log}");
    assert!(log.contains("uploads work again"), "{log}");
    assert!(!log.contains(" ERROR "), "{log}");
    assert_clean_log(&log);
}

#[test]
fn an_expired_upload_url_is_replaced_by_a_new_one() {
    // URLs live 1 s, and the first PUT is held 2.5 s before the store sees it.
    let cloud = Cloud::start(&["--upload-url-ttl", "1"]);
    let root = tempfile::tempdir().unwrap();
    let spool = open_spool(root.path());
    let client = Client::start(&cloud, root.path(), &spool, Tuning::default());
    client.link(&cloud);
    cloud.fault(
        json!({"path_prefix": "/_s3/uploads/", "mode": "delay", "delay_ms": 2500, "count": 1}),
    );

    let content = csv(50, 9);
    let item = spool_csv(&spool, "late.csv", &key(9), &content);
    client.enqueue(&item);
    client.wait_for_deliveries(1);
    assert!(
        cloud
            .emulator
            .log_text()
            .lines()
            .any(|l| l.contains("PUT /_s3/uploads/") && l.contains(" 403 ")),
        "the first PUT was refused as expired:\n{}",
        cloud.emulator.log_text()
    );
    assert_arrived(&cloud, &[(item, content)]);
    assert!(rejected_files(root.path()).is_empty());
    assert!(cloud.log_lines("POST /api/cloud-link/v1/uploads 201") >= 2);
    assert_clean_log(&client.log_text());
}

#[test]
fn a_refused_item_is_moved_aside_and_the_others_still_arrive() {
    let cloud = Cloud::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let spool = open_spool(root.path());
    let client = Client::start(&cloud, root.path(), &spool, Tuning::default());
    client.link(&cloud);
    cloud.fault(json!({"path_prefix": "/api/cloud-link/v1/uploads", "mode": "status", "status": 422, "count": 1}));

    let refused = spool_csv(&spool, "refused.csv", &key(20), b"x;y\n1;2\n");
    client.enqueue(&refused);
    let deliveries = client.wait_for_deliveries(1);
    let reason = match &deliveries[0] {
        Delivery::Rejected { item, reason } => {
            assert_eq!(item.id, refused.id);
            reason.clone()
        }
        other => panic!("unexpected {other:?}"),
    };
    assert!(reason.contains("422"), "{reason}");

    let mut others = Vec::new();
    for n in 21..23 {
        let content = csv(30, n as u64);
        let item = spool_csv(&spool, &format!("ok-{n}.csv"), &key(n), &content);
        client.enqueue(&item);
        others.push((item, content));
    }
    client.wait_for_deliveries(3);
    assert_arrived(&cloud, &others);
    assert_eq!(cloud.imports().len(), 2);

    let id = &refused.id;
    assert_eq!(
        rejected_files(root.path()),
        vec![
            format!("{id}.gz"),
            format!("{id}.json"),
            format!("{id}.reason.txt")
        ]
    );
    let reason_file =
        std::fs::read_to_string(root.path().join(format!("state/rejected/{id}.reason.txt")))
            .unwrap();
    for needle in [
        "refused.csv",
        "422 Unprocessable Entity",
        "POST http://127.0.0.1:",
        "/api/cloud-link/v1/uploads",
        "injected_fault",
    ] {
        assert!(
            reason_file.contains(needle),
            "{needle:?} in:\n{reason_file}"
        );
    }
    assert!(spool.pending().unwrap().is_empty());
    let log = client.log_text();
    let line = log
        .lines()
        .find(|l| l.contains(" ERROR ") && l.contains("refused.csv is rejected"))
        .unwrap_or_else(|| panic!("an ERROR line for the rejection:\n{log}"));
    assert!(
        line.contains("422") && line.contains("reason.txt"),
        "{line}"
    );
}

#[test]
fn spooled_items_wait_for_the_link_survive_a_shutdown_and_are_resumed() {
    let cloud = Cloud::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let mut items = Vec::new();
    {
        // A previous run spooled three items and crashed while writing a
        // fourth (a temp file, and data whose sidecar never came).
        let spool = open_spool(root.path());
        for n in 30..33 {
            let content = csv(40, n as u64);
            items.push((
                spool_csv(&spool, &format!("old-{n}.csv"), &key(n), &content),
                content,
            ));
        }
        let mut unfinished = spool.begin("crashed.csv").unwrap();
        unfinished.write_all(b"half").unwrap();
        std::mem::forget(unfinished);
        std::fs::write(
            spool
                .settings()
                .dir
                .join("20200101T000000000000Z-000000000000.gz"),
            b"orphan",
        )
        .unwrap();
    }
    let spool = open_spool(root.path());
    assert_eq!(spool.pending().unwrap().len(), 3);
    let tuning = Tuning {
        concurrency: 1,
        ..Tuning::default()
    };
    let client = Client::start(&cloud, root.path(), &spool, tuning.clone());

    // Unpaired: the items wait, quietly.
    let pin = client.next_event(PIN, |e| match e {
        PairingEvent::PinOffered(answer) => Some(answer.offer.pin.clone()),
        _ => None,
    });
    wait_for("the uploader to say it waits for the link", ARRIVE, || {
        client
            .log_text()
            .contains("uploads wait until the client is linked to the cloud (3 items spooled)")
            .then_some(())
    });
    assert!(cloud.imports().is_empty());
    assert_eq!(client.board.snapshot().spool.files, 3);
    assert!(client.deliveries().is_empty());

    assert_eq!(cloud.emulator.connect(&pin, &cloud.integration), 200);
    client.wait_for_deliveries(3);
    assert_arrived(&cloud, &items);
    // Oldest first, one at a time: committed in spool order.
    let order: Vec<String> = cloud
        .imports()
        .iter()
        .map(|i| i["file_name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(order, ["old-30.csv", "old-31.csv", "old-32.csv"]);
    let log = client.log_text();
    assert!(!log.contains(" WARN ") && !log.contains(" ERROR "), "{log}");

    // A shutdown in the middle of a PUT: the item stays and goes out after
    // the next start, once.
    cloud.fault(
        json!({"path_prefix": "/_s3/uploads/", "mode": "delay", "delay_ms": 5000, "count": 1}),
    );
    let content = csv(40, 40);
    let late = spool_csv(&spool, "late.csv", &key(40), &content);
    client.enqueue(&late);
    wait_for("the PUT to be under way", ARRIVE, || {
        cloud.faults().is_empty().then_some(())
    });
    client.shut_down_uploader();
    drop(client);
    assert_eq!(spool.pending().unwrap().len(), 1);
    assert!(cloud.imports().iter().all(|i| i["file_name"] != "late.csv"));

    let spool = open_spool(root.path());
    let client = Client::start(&cloud, root.path(), &spool, tuning);
    // Linked from the saved credentials: no PIN this time.
    client.wait_for_deliveries(1);
    assert_arrived(&cloud, &[(late, content)]);
    assert_eq!(cloud.imports().len(), 4);
    assert!(spool.pending().unwrap().is_empty());
}
