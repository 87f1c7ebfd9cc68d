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

/// A CSV install folder for `cloud`, settling files after 1 s.
fn csv_install(cloud: &Emulator) -> InstallDir {
    let install = InstallDir::new();
    std::fs::create_dir_all(install.path().join("import")).unwrap();
    install.write_config(&format!(
        "[app]\nimportDirectory = \"import\"\n[cloud]\nurl = \"{}\"\n[csv]\nsettleSeconds = 1\n",
        cloud.url
    ));
    install
}

/// `run` trusting the PEM bundle `bundle` (and the bundled roots), with no
/// proxy.
fn spawn_trusting(install: &InstallDir, bundle: &std::path::Path) -> ClientProcess {
    let mut command = install.command(&["run"]);
    command
        .env("SSL_CERT_FILE", bundle)
        .env_remove("SSL_CERT_DIR")
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    ClientProcess::spawn(command)
}

/// Replaces `bundle` by one with the CAs `pems`, by a rename, as
/// `update-ca-certificates` replaces /etc/ssl/certs/ca-certificates.crt.
fn write_bundle(bundle: &std::path::Path, pems: &[&std::path::Path]) {
    let text: String = pems
        .iter()
        .map(|pem| std::fs::read_to_string(pem).unwrap())
        .collect();
    let fresh = bundle.with_extension("new");
    std::fs::write(&fresh, text).unwrap();
    std::fs::rename(&fresh, bundle).unwrap();
}

const NEW_CA_CSV: &[u8] = b"Queue;Date;Time;IncomingCalls\nNew CA;25/05/2020;08:00;15\n";

/// Waits (generously: the target is about a minute, and speed is not
/// asserted) until the cloud has `NEW_CA_CSV`, and says when it came.
fn wait_for_the_import(cloud: &Emulator, installed: std::time::Instant) {
    let import = wait_for("the upload", Duration::from_secs(200), || {
        cloud.imports().into_iter().next()
    });
    assert_eq!(
        cloud.import_content(import["import_id"].as_str().unwrap()),
        NEW_CA_CSV
    );
    eprintln!(
        "imported {:.1} s after the CA entered the trust store",
        installed.elapsed().as_secs_f64()
    );
}

/// Issue 14, item 1: a running client refuses a certificate signed by a CA
/// it does not know (a TLS-inspecting proxy's, here played by the emulator),
/// and trusts it without a restart once the admin installs that CA. The
/// trust store is the PEM bundle `SSL_CERT_FILE` names (the real OS store
/// needs root).
#[test]
fn a_ca_installed_while_the_client_runs_is_trusted_without_a_restart() {
    let tls = throwaway_ca();
    let unrelated = throwaway_ca_named("some other CA");
    let cloud = https_emulator(&tls);
    let integration = cloud.create_csv_integration("New CA");
    let install = csv_install(&cloud);
    let bundle = install.path().join("ca-certificates.crt");
    write_bundle(&bundle, &[&unrelated.ca_pem]);
    let _client = spawn_trusting(&install, &bundle);

    let log = install.wait_for_log("is not trusted (unknown issuer)", Duration::from_secs(30));
    assert!(!log.contains("Enter your pin"), "{log}");
    write_bundle(&bundle, &[&unrelated.ca_pem, &tls.ca_pem]);
    let installed = std::time::Instant::now();

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
    std::fs::write(install.path().join("import").join("new-ca.csv"), NEW_CA_CSV).unwrap();
    wait_for_the_import(&cloud, installed);
}

/// The same for a linked client whose uploads are refused: a proxy was put
/// in its way (here: the CA left the store) while it was stopped, and a
/// file waits in the spool. Its uploads go through about a minute after the
/// CA is installed, though the upload backoff had grown meanwhile.
#[test]
fn a_linked_client_uploads_without_a_restart_once_the_ca_is_installed() {
    let tls = throwaway_ca();
    let unrelated = throwaway_ca_named("some other CA");
    let cloud = https_emulator(&tls);
    let integration = cloud.create_csv_integration("New CA, linked");
    let install = csv_install(&cloud);
    let bundle = install.path().join("ca-certificates.crt");
    write_bundle(&bundle, &[&tls.ca_pem]);
    let client = spawn_trusting(&install, &bundle);
    let pin = install.wait_for_pin(1, Duration::from_secs(30));
    assert_eq!(cloud.connect(&pin, &integration), 200);
    install.wait_for_log("watching", Duration::from_secs(30));
    let (status, _) = client.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");

    write_bundle(&bundle, &[&unrelated.ca_pem]);
    std::fs::write(install.path().join("import").join("new-ca.csv"), NEW_CA_CSV).unwrap();
    let _client = spawn_trusting(&install, &bundle);
    wait_for(
        "a refused upload in the log",
        Duration::from_secs(60),
        || {
            let log = install.read_log();
            (log.contains("upload of new-ca.csv failed: TLS with")
                && log.contains("is not trusted (unknown issuer)"))
            .then_some(())
        },
    );
    write_bundle(&bundle, &[&unrelated.ca_pem, &tls.ca_pem]);
    let installed = std::time::Instant::now();
    wait_for_the_import(&cloud, installed);
    assert!(
        install
            .read_log()
            .contains("now trusts the certificate of 127.0.0.1"),
        "{}",
        install.read_log()
    );
}
