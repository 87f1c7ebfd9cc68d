//! Hostile answers from "the cloud": a small HTTP server in front of the
//! emulator, which the client is pointed at as its cloud URL (plain http is
//! allowed to loopback). It forwards every request to the emulator, except
//! that the next N upload requests (`POST /uploads`) get a hostile answer:
//! malformed JSON, a huge body, an HTML page, a redirect to plain http, or a
//! slowloris trickle. The client must give up on each answer with one clear
//! log line, back off, retry, and deliver the file exactly once.

mod corpus;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corpus::*;
use support::emulator::Emulator;

const UPLOADS: &str = "/api/cloud-link/v1/uploads";
const ONE_GIB: u64 = 1 << 30;

#[derive(Clone, Copy, Debug)]
enum Hostile {
    MalformedJson,
    /// 200 with a `Content-Length` of 1 GiB, sent as fast as it is read.
    HugeBody,
    /// The same without a length: chunked, endless.
    HugeChunked,
    /// A captive portal's page with status 200.
    HtmlPage,
    /// 302 to plain http on loopback, which the client could reach.
    RedirectTo(u16),
    /// The answer's head, one byte per second.
    Slowloris,
}

#[derive(Default)]
struct Counters {
    hostile_answers: AtomicUsize,
    forwarded: AtomicUsize,
    /// Body bytes the client accepted of huge answers.
    huge_bytes_sent: AtomicU64,
}

/// The hostile server; it runs until the test process ends.
struct HostileCloud {
    url: String,
    plan: Arc<Mutex<Option<Plan>>>,
    counters: Arc<Counters>,
}

/// The next `left` requests whose request line starts with `request`
/// get `hostile`.
struct Plan {
    request: String,
    hostile: Hostile,
    left: usize,
}

impl HostileCloud {
    fn start(upstream_port: u16) -> HostileCloud {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let plan: Arc<Mutex<Option<Plan>>> = Arc::default();
        let counters: Arc<Counters> = Arc::default();
        let (p, c) = (plan.clone(), counters.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (p, c) = (p.clone(), c.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, upstream_port, &p, &c);
                });
            }
        });
        HostileCloud {
            url,
            plan,
            counters,
        }
    }

    /// The next `times` upload requests get `hostile`.
    fn arm(&self, hostile: Hostile, times: usize) {
        self.arm_for(&format!("POST {UPLOADS} "), hostile, times);
    }

    /// The next `times` requests whose request line starts with `request`
    /// (`"POST /path "`) get `hostile`.
    fn arm_for(&self, request: &str, hostile: Hostile, times: usize) {
        *self.plan.lock().unwrap() = Some(Plan {
            request: request.to_owned(),
            hostile,
            left: times,
        });
    }

    fn hostile_answers(&self) -> usize {
        self.counters.hostile_answers.load(Ordering::SeqCst)
    }
}

/// One request per connection: read it, answer it (hostile or forwarded),
/// close.
fn serve(
    stream: TcpStream,
    upstream_port: u16,
    plan: &Mutex<Option<Plan>>,
    counters: &Counters,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut head = Vec::new();
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("content-length:") {
            content_length = value.trim().parse().unwrap_or(0);
        }
        if !lower.starts_with("connection:") {
            head.push(line);
        }
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body)?;
    let request_line = head.first().cloned().unwrap_or_default();
    let hostile = {
        let mut plan = plan.lock().unwrap();
        match plan.as_mut() {
            Some(plan) if request_line.starts_with(&plan.request) && plan.left > 0 => {
                plan.left -= 1;
                Some(plan.hostile)
            }
            _ => None,
        }
    };
    let mut client = stream;
    match hostile {
        Some(hostile) => {
            counters.hostile_answers.fetch_add(1, Ordering::SeqCst);
            answer_hostile(&mut client, hostile, counters)
        }
        None => {
            counters.forwarded.fetch_add(1, Ordering::SeqCst);
            let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port))?;
            for line in &head {
                upstream.write_all(line.as_bytes())?;
            }
            upstream.write_all(b"Connection: close\r\n\r\n")?;
            upstream.write_all(&body)?;
            std::io::copy(&mut upstream, &mut client)?;
            Ok(())
        }
    }
}

fn answer_hostile(
    client: &mut TcpStream,
    hostile: Hostile,
    counters: &Counters,
) -> std::io::Result<()> {
    let simple = |status: &str, content_type: &str, body: &str, extra: &str| {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
            body.len()
        )
    };
    match hostile {
        Hostile::MalformedJson => client.write_all(
            simple(
                "200 OK",
                "application/json",
                "{\"upload_id\": \"u1\", \"upl",
                "",
            )
            .as_bytes(),
        ),
        Hostile::HtmlPage => client.write_all(
            simple(
                "200 OK",
                "text/html; charset=utf-8",
                "<html><body>Please accept the terms of the hotel wifi</body></html>",
                "",
            )
            .as_bytes(),
        ),
        Hostile::RedirectTo(port) => client.write_all(
            simple(
                "302 Found",
                "text/plain",
                "",
                &format!("Location: http://127.0.0.1:{port}{UPLOADS}?sig=secret\r\n"),
            )
            .as_bytes(),
        ),
        Hostile::HugeBody | Hostile::HugeChunked => {
            let chunked = matches!(hostile, Hostile::HugeChunked);
            let framing = if chunked {
                "Transfer-Encoding: chunked".to_owned()
            } else {
                format!("Content-Length: {ONE_GIB}")
            };
            client.write_all(
                format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{framing}\r\n\r\n")
                    .as_bytes(),
            )?;
            let block = vec![b' '; 64 * 1024];
            let mut sent = 0u64;
            while sent < ONE_GIB {
                if chunked {
                    client.write_all(format!("{:x}\r\n", block.len()).as_bytes())?;
                }
                client.write_all(&block)?;
                if chunked {
                    client.write_all(b"\r\n")?;
                }
                sent += block.len() as u64;
                counters.huge_bytes_sent.store(sent, Ordering::SeqCst);
            }
            Ok(())
        }
        Hostile::Slowloris => {
            let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Padding: ";
            for byte in head.iter().chain(std::iter::repeat(&b'a')).take(120) {
                client.write_all(&[*byte])?;
                std::thread::sleep(Duration::from_secs(1));
            }
            Ok(())
        }
    }
}

/// A client linked through the hostile server, importing CSV files.
fn client_behind(
    hostile: &HostileCloud,
    cloud: &Emulator,
) -> (support::InstallDir, support::ClientProcess) {
    let install = csv_install(&hostile.url, "");
    let client = link(&install, cloud, run_command(&install));
    (install, client)
}

/// Arms `hostile` for `times` uploads, drops a good file, and checks it
/// arrives once after the hostile answers; returns the client's log.
fn survives(hostile_kind: Hostile, times: usize, expect_in_log: &str) -> String {
    let cloud = Emulator::start(&[]);
    let hostile = HostileCloud::start(cloud.port());
    let (install, _client) = client_behind(&hostile, &cloud);
    hostile.arm(hostile_kind, times);
    let content = good_csv(&format!("{hostile_kind:?}"));
    drop_file(&import_dir(&install), "good.csv", &content);
    let imports = wait_for_imports(&cloud, 1);
    assert!(imports.contains_key(&sha256_hex(&content)));
    assert_eq!(
        hostile.hostile_answers(),
        times,
        "every hostile answer was met"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(cloud.imports().len(), 1, "exactly once");
    let log = install.read_log();
    let failures = lines_with(&log, "upload of good.csv failed: ");
    assert_eq!(failures.len(), 1, "one line for repeated failures:\n{log}");
    assert!(
        failures[0].contains(expect_in_log) && failures[0].contains("; retrying in "),
        "{expect_in_log:?} in {:?}",
        failures[0]
    );
    assert!(log.contains("uploaded good.csv ("), "{log}");
    assert_no_crash(&log);
    log
}

#[test]
fn malformed_json_is_named_and_retried() {
    survives(
        Hostile::MalformedJson,
        3,
        "is not the expected JSON: EOF while parsing a string",
    );
}

#[test]
fn an_html_page_instead_of_json_is_named_with_its_content_type() {
    survives(
        Hostile::HtmlPage,
        3,
        "(the answer is text/html; charset=utf-8, not JSON: a proxy or captive portal page?)",
    );
}

#[test]
fn a_huge_body_is_cut_at_the_limit_and_retried() {
    let cloud = Emulator::start(&[]);
    let hostile = HostileCloud::start(cloud.port());
    let (install, _client) = client_behind(&hostile, &cloud);
    for (kind, name) in [
        (Hostile::HugeBody, "sized.csv"),
        (Hostile::HugeChunked, "chunked.csv"),
    ] {
        hostile.counters.huge_bytes_sent.store(0, Ordering::SeqCst);
        let before = hostile.hostile_answers();
        hostile.arm(kind, 2);
        let content = good_csv(name);
        drop_file(&import_dir(&install), name, &content);
        let imports = wait_for_imports(&cloud, cloud.imports().len() + 1);
        assert!(imports.contains_key(&sha256_hex(&content)));
        assert_eq!(hostile.hostile_answers() - before, 2);
        // The client stops reading at 8 MiB; what the socket buffers took
        // besides is small. An unbounded read would take the whole GiB.
        let sent = hostile.counters.huge_bytes_sent.load(Ordering::SeqCst);
        assert!(sent < 64 << 20, "{kind:?}: the client read {sent} bytes");
        let log = install.read_log();
        let line = lines_with(&log, &format!("upload of {name} failed: "));
        assert_eq!(line.len(), 1, "{log}");
        assert!(
            line[0].contains("the answer's body is larger than 8 MiB"),
            "{}",
            line[0]
        );
    }
    assert_no_crash(&install.read_log());
    assert_no_duplicates(&cloud);
}

#[test]
fn a_redirect_to_plain_http_is_not_followed() {
    let trap = TcpListener::bind("127.0.0.1:0").unwrap();
    let trap_port = trap.local_addr().unwrap().port();
    trap.set_nonblocking(true).unwrap();
    let log = survives(
        Hostile::RedirectTo(trap_port),
        2,
        &format!("answered 302 Found, a redirect to http://127.0.0.1:{trap_port}{UPLOADS} that the client does not follow"),
    );
    assert!(trap.accept().is_err(), "the client followed the redirect");
    assert!(
        !log.contains("sig=secret"),
        "the query stays out of the log"
    );
}

#[test]
fn a_slowloris_answer_times_out_and_is_retried() {
    survives(Hostile::Slowloris, 1, "no complete answer from 127.0.0.1:");
}

#[test]
fn a_captive_portal_at_pairing_is_named_and_pairing_goes_ahead_after_it() {
    let cloud = Emulator::start(&[]);
    let hostile = HostileCloud::start(cloud.port());
    hostile.arm_for(
        "POST /api/cloud-link/v1/oauth/device_authorization ",
        Hostile::HtmlPage,
        3,
    );
    let install = csv_install(&hostile.url, "");
    // link() waits for the PIN, which only comes once the portal is gone.
    let _client = link(&install, &cloud, run_command(&install));
    assert_eq!(hostile.hostile_answers(), 3);
    let content = good_csv("after the portal");
    drop_file(&import_dir(&install), "good.csv", &content);
    let imports = wait_for_imports(&cloud, 1);
    assert!(imports.contains_key(&sha256_hex(&content)));
    let log = install.read_log();
    let failures = lines_with(&log, "(the answer is text/html; charset=utf-8, not JSON");
    assert_eq!(failures.len(), 1, "one line for three failures:\n{log}");
    assert_no_crash(&log);
}
