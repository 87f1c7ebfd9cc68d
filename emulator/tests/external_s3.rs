//! External S3 mode against a real S3-compatible server: moto in server mode
//! (`python3 -m moto.server`, installed by scripts/setup).

mod support;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use awc::http::StatusCode;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use support::*;

const BUCKET: &str = "injixo-uploads";
const ACCESS_KEY: &str = "test-access-key";
const SECRET_KEY: &str = "test-secret-key";
const REGION: &str = "eu-west-1";

/// moto's server; killed when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_moto() -> Moto {
    let probe = Command::new("python3")
        .args(["-c", "import moto.server"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        matches!(probe, Ok(status) if status.success()),
        "python3 with moto[server] is missing: run scripts/setup to install it"
    );
    let port = free_port();
    let child = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto starts");
    let moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    wait_until(Duration::from_secs(60), "moto to listen", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    moto
}

fn bucket(moto: &Moto) -> (Bucket, Credentials) {
    let bucket = Bucket::new(
        moto.endpoint.parse().unwrap(),
        UrlStyle::Path,
        BUCKET,
        REGION,
    )
    .unwrap();
    (bucket, Credentials::new(ACCESS_KEY, SECRET_KEY))
}

#[actix_rt::test]
async fn uploads_go_to_the_s3_server_and_are_read_back() {
    let moto = start_moto();
    let (bucket, credentials) = bucket(&moto);
    let create = bucket
        .create_bucket(&credentials)
        .sign(Duration::from_secs(60));
    let response = client()
        .put(create.as_str())
        .send()
        .await
        .expect("create bucket");
    assert!(
        response.status().is_success(),
        "create bucket: {}",
        response.status()
    );

    let emulator = Emulator::start(&[
        "--s3-endpoint",
        &moto.endpoint,
        "--s3-bucket",
        BUCKET,
        "--s3-region",
        REGION,
        "--s3-access-key",
        ACCESS_KEY,
        "--s3-secret-key",
        SECRET_KEY,
    ]);
    let integration = create_csv_integration(&emulator, "CSV").await;
    let tokens = pair(&emulator, &integration, "i").await;

    let csv = b"Queue;Date;Time;IncomingCalls\nMy Inbound Queue;25/05/2020;08:00;15\n";
    let target = create_upload(&emulator, &tokens, &upload_request("key-1", csv, 1)).await;
    assert!(
        target
            .url
            .starts_with(&format!("{}/{BUCKET}/{integration}/", moto.endpoint)),
        "{}",
        target.url
    );
    assert!(target.url.contains("X-Amz-Signature="), "{}", target.url);
    assert_eq!(target.headers["Content-Type"], "text/csv");
    assert!(target.headers.contains_key("x-amz-checksum-sha256"));

    // Committing before the bytes are on the S3 server is refused.
    let (status, body) = commit(&emulator, &tokens, &target.upload_id).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::CONFLICT, "not_uploaded")
    );

    // Real S3 refuses a body that does not match the signed checksum; moto
    // stores it, so the emulator checks the object itself at commit.
    let mut tampered = csv.to_vec();
    tampered[0] = b'q';
    let (status, _) = put_body(&target, &tampered).await;
    assert!(matches!(status.as_u16(), 200 | 400), "{status}");
    let (status, body) = commit(&emulator, &tokens, &target.upload_id).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::CONFLICT, "bad_digest")
    );

    let (status, answer) = put_body(&target, csv).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // The object really is on the S3 server, under the signed key.
    let object_key = target
        .url
        .split('?')
        .next()
        .unwrap()
        .trim_start_matches(&format!("{}/{BUCKET}/", moto.endpoint))
        .to_owned();
    let get = bucket
        .get_object(Some(&credentials), &object_key)
        .sign(Duration::from_secs(60));
    let mut response = client().get(get.as_str()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.body().await.unwrap().as_ref(), csv);

    let (status, body) = commit(&emulator, &tokens, &target.upload_id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let import_id = body["import_id"].as_str().unwrap().to_owned();
    // The inspection API reads the object back from the S3 server.
    assert_eq!(
        content(&emulator, &import_id).await,
        (StatusCode::OK, csv.to_vec())
    );

    // The emulator's own store is off in this mode.
    let (status, _, _) =
        send(client().put(emulator.url(&format!("/_s3/uploads/{}", target.upload_id)))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[actix_rt::test]
async fn an_unreachable_s3_server_is_reported_as_502() {
    let port = free_port(); // nobody listens there
    let emulator = Emulator::start(&[
        "--s3-endpoint",
        &format!("http://127.0.0.1:{port}"),
        "--s3-bucket",
        BUCKET,
        "--s3-access-key",
        ACCESS_KEY,
        "--s3-secret-key",
        SECRET_KEY,
    ]);
    let integration = create_csv_integration(&emulator, "CSV").await;
    let tokens = pair(&emulator, &integration, "i").await;
    let target = create_upload(&emulator, &tokens, &upload_request("k", b"x", 0)).await;
    let (status, body) = commit(&emulator, &tokens, &target.upload_id).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::BAD_GATEWAY, "storage_unavailable")
    );
}
