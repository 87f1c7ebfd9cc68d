//! The client behind a real authenticating proxy (tinyproxy with Basic
//! auth), talking HTTPS to the emulator whose throwaway CA is trusted only
//! through SSL_CERT_FILE, as a TLS-inspecting corporate proxy's CA would be.

mod support;
#[path = "support/tinyproxy.rs"]
mod tinyproxy;

use std::time::Duration;

use support::emulator::Emulator;
use support::*;
use tinyproxy::Tinyproxy;

const USER: &str = "cloudlink";
const PASSWORD: &str = "Pr0xy-s3cret";

struct Https {
    _dir: tempfile::TempDir,
    ca_pem: std::path::PathBuf,
    cert_pem: std::path::PathBuf,
    key_pem: std::path::PathBuf,
    ca_der: Vec<u8>,
}

/// A CA and a certificate for 127.0.0.1 signed by it, as PEM files.
fn throwaway_ca() -> Https {
    throwaway_ca_named("proxy test CA")
}

fn throwaway_ca_named(name: &str) -> Https {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, name);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    Https {
        ca_pem: write("ca.pem", ca.pem()),
        cert_pem: write("cert.pem", format!("{}{}", leaf.pem(), ca.pem())),
        key_pem: write("key.pem", key.serialize_pem()),
        ca_der: ca.der().to_vec(),
        _dir: dir,
    }
}

fn https_emulator(tls: &Https) -> Emulator {
    Emulator::start_trusting(
        "127.0.0.1:0",
        &[
            "--tls-cert",
            tls.cert_pem.to_str().unwrap(),
            "--tls-key",
            tls.key_pem.to_str().unwrap(),
        ],
        Some(&tls.ca_der),
    )
}

/// `run` with the proxy and the CA given the way an admin would: through
/// the environment.
fn spawn_behind_proxy(install: &InstallDir, proxy_url: &str, tls: &Https) -> ClientProcess {
    let mut command = install.command(&["run"]);
    command
        .env("https_proxy", proxy_url)
        .env_remove("HTTPS_PROXY")
        .env_remove("no_proxy")
        .env_remove("NO_PROXY")
        .env("SSL_CERT_FILE", &tls.ca_pem)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    ClientProcess::spawn(command)
}

#[test]
fn pairing_and_uploads_go_through_an_authenticating_proxy_over_https() {
    let tls = throwaway_ca();
    let cloud = https_emulator(&tls);
    assert!(cloud.url.starts_with("https://"), "{}", cloud.url);
    let proxy = Tinyproxy::start(Some((USER, PASSWORD)), &[cloud.port()]);
    let integration = cloud.create_csv_integration("Behind a proxy");
    let install = InstallDir::new();
    std::fs::create_dir_all(install.path().join("import")).unwrap();
    install.write_config(&format!(
        "[app]\nimportDirectory = \"import\"\n[cloud]\nurl = \"{}\"\n[csv]\nsettleSeconds = 1\n",
        cloud.url
    ));
    let proxy_url = format!("http://{USER}:{PASSWORD}@127.0.0.1:{}", proxy.port);
    let _client = spawn_behind_proxy(&install, &proxy_url, &tls);

    let log = install.wait_for_log("Enter your pin", Duration::from_secs(30));
    assert!(
        log.contains(&format!(
            "through the proxy http://{USER}:***@127.0.0.1:{}",
            proxy.port
        )),
        "the proxy is named without its password: {log}"
    );
    let pin = install.wait_for_pin(1, Duration::from_secs(5));
    assert_eq!(cloud.connect(&pin, &integration), 200);
    install.wait_for_log("assignment received", Duration::from_secs(20));
    install.wait_for_log("watching", Duration::from_secs(20));

    let content = b"Queue;Date;Time;IncomingCalls\nProxy queue;25/05/2020;08:00;15\n";
    std::fs::write(install.path().join("import").join("via-proxy.csv"), content).unwrap();
    let import = wait_for(
        "the upload through the proxy",
        Duration::from_secs(60),
        || cloud.imports().into_iter().next(),
    );
    let id = import["import_id"].as_str().unwrap();
    assert_eq!(cloud.import_content(id), content);

    let target = format!("127.0.0.1:{}", cloud.port());
    assert!(
        proxy.connects_to(&target) >= 1,
        "the proxy's log shows the CONNECTs: {}",
        proxy.log()
    );
    let everything = format!("{}{}", install.all_logs(), cloud.log_text());
    assert!(
        !everything.contains(PASSWORD),
        "the proxy password leaked into a log"
    );
}

#[test]
fn wrong_proxy_credentials_are_named_and_not_shown() {
    let tls = throwaway_ca();
    let cloud = https_emulator(&tls);
    let proxy = Tinyproxy::start(Some((USER, PASSWORD)), &[cloud.port()]);
    let install = InstallDir::with_cloud(&cloud.url);
    let wrong = "not-the-Password";
    let proxy_url = format!("http://{USER}:{wrong}@127.0.0.1:{}", proxy.port);
    let _client = spawn_behind_proxy(&install, &proxy_url, &tls);

    let log = install.wait_for_log("proxy rejected the credentials", Duration::from_secs(30));
    assert!(
        !log.contains(wrong),
        "the wrong password is not shown: {log}"
    );
    assert!(log.contains(&format!("{USER}:***@")), "{log}");
}

/// Issue 14, item 1: a running client refuses a certificate signed by a CA
/// it does not know (a TLS-inspecting proxy's, here played by the emulator),
/// and trusts it without a restart once the admin installs that CA. The
/// trust store is the PEM bundle `SSL_CERT_FILE` names, replaced by a
/// rename, as `update-ca-certificates` replaces
/// /etc/ssl/certs/ca-certificates.crt (the real OS store needs root).
#[test]
fn a_ca_installed_while_the_client_runs_is_trusted_without_a_restart() {
    let tls = throwaway_ca();
    let unrelated = throwaway_ca_named("some other CA");
    let cloud = https_emulator(&tls);
    let integration = cloud.create_csv_integration("New CA");
    let install = InstallDir::new();
    std::fs::create_dir_all(install.path().join("import")).unwrap();
    install.write_config(&format!(
        "[app]\nimportDirectory = \"import\"\n[cloud]\nurl = \"{}\"\n[csv]\nsettleSeconds = 1\n",
        cloud.url
    ));
    let bundle = install.path().join("ca-certificates.crt");
    std::fs::copy(&unrelated.ca_pem, &bundle).unwrap();
    let mut command = install.command(&["run"]);
    command
        .env("SSL_CERT_FILE", &bundle)
        .env_remove("SSL_CERT_DIR")
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let _client = ClientProcess::spawn(command);

    let log = install.wait_for_log("is not trusted (unknown issuer)", Duration::from_secs(30));
    assert!(!log.contains("Enter your pin"), "{log}");

    let both = format!(
        "{}{}",
        std::fs::read_to_string(&unrelated.ca_pem).unwrap(),
        std::fs::read_to_string(&tls.ca_pem).unwrap()
    );
    let fresh = install.path().join("ca-certificates.crt.new");
    std::fs::write(&fresh, both).unwrap();
    std::fs::rename(&fresh, &bundle).unwrap();
    let installed = std::time::Instant::now();

    // Generous: the target is about a minute, and speed is not asserted.
    let pin = install.wait_for_pin(1, Duration::from_secs(200));
    eprintln!(
        "a PIN came {:.1} s after the CA entered the trust store",
        installed.elapsed().as_secs_f64()
    );
    let log = install.read_log();
    assert!(
        log.contains("now trusts the certificate of 127.0.0.1"),
        "the log says the reloaded roots made TLS work: {log}"
    );
    assert_eq!(cloud.connect(&pin, &integration), 200);
    install.wait_for_log("watching", Duration::from_secs(30));
    let content = b"Queue;Date;Time;IncomingCalls\nNew CA;25/05/2020;08:00;15\n";
    std::fs::write(install.path().join("import").join("new-ca.csv"), content).unwrap();
    let import = wait_for("the upload", Duration::from_secs(60), || {
        cloud.imports().into_iter().next()
    });
    assert_eq!(
        cloud.import_content(import["import_id"].as_str().unwrap()),
        content
    );
    eprintln!(
        "imported {:.1} s after the CA entered the trust store",
        installed.elapsed().as_secs_f64()
    );
}
