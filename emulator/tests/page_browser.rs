//! The PIN page in headless Chromium, driven through chromedriver: what a
//! person does, with no JavaScript of ours involved.
#![cfg(unix)]

mod support;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use awc::http::StatusCode;
use fantoccini::{ClientBuilder, Locator};
use serde_json::json;
use support::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver in a process group of its own, so that the browsers it
/// starts die with it even when a test fails half-way.
struct ChromeDriver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
    profile_path: String,
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_chromedriver() -> ChromeDriver {
    require_file(Path::new(CHROMIUM), "Chromium");
    require_file(Path::new(CHROMEDRIVER), "chromedriver");
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let profile = tempfile::tempdir().unwrap();
    let driver = ChromeDriver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        profile_path: profile.path().to_str().unwrap().to_owned(),
        _profile: profile,
    };
    wait_until(Duration::from_secs(30), "chromedriver to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    driver
}

async fn browser(driver: &ChromeDriver) -> fantoccini::Client {
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage",
                format!("--user-data-dir={}", driver.profile_path),
            ]
        }
    });
    let capabilities = capabilities.as_object().unwrap().clone();
    let mut builder = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
    builder.capabilities(capabilities);
    let connect = builder.connect(&driver.url);
    tokio::time::timeout(Duration::from_secs(60), connect)
        .await
        .expect("a browser session within 60 s")
        .expect("a browser session")
}

#[actix_rt::test]
async fn a_person_connects_a_pin_and_sees_a_wrong_one_refused() {
    let emulator = Emulator::start(&[]);
    let driver = start_chromedriver();
    let integration = create_csv_integration(&emulator, "Avaya CMS interval data").await;
    let authorization = start_authorization(&emulator, "com.injixo.cloud-link").await;
    let browser = browser(&driver).await;
    let result =
        run_browser_steps(&browser, &emulator, &integration, &authorization.user_code).await;
    let _ = browser.close().await;
    result.unwrap();

    // The page's Connect linked the pending device authorization.
    let (status, body) = poll_token(&emulator, &authorization.device_code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["integration_id"], integration.as_str());
}

async fn run_browser_steps(
    browser: &fantoccini::Client,
    emulator: &Emulator,
    integration: &str,
    pin: &str,
) -> Result<(), fantoccini::error::CmdError> {
    let page = emulator.url("/account/integrations");
    browser.goto(&page).await?;
    let heading = browser.find(Locator::Css("h1")).await?.text().await?;
    assert_eq!(heading, "Integrations");
    let label = browser
        .find(Locator::Css(&format!("label[for='pin-{integration}']")))
        .await?
        .text()
        .await?;
    assert_eq!(label, "PIN shown during installation");

    // A wrong PIN first.
    let wrong = if pin == "000000" { "000001" } else { "000000" };
    let field = browser
        .find(Locator::Id(&format!("pin-{integration}")))
        .await?;
    field.send_keys(wrong).await?;
    browser
        .find(Locator::Id(&format!("connect-{integration}")))
        .await?
        .click()
        .await?;
    let error = browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Id(&format!("error-{integration}")))
        .await?;
    let message = error.text().await?;
    assert!(message.contains("this PIN is not known"), "{message}");

    // Then the right one.
    let field = browser
        .find(Locator::Id(&format!("pin-{integration}")))
        .await?;
    field.clear().await?;
    field.send_keys(pin).await?;
    browser
        .find(Locator::Id(&format!("connect-{integration}")))
        .await?
        .click()
        .await?;
    let success = browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Id(&format!("success-{integration}")))
        .await?;
    let message = success.text().await?;
    assert!(
        message.contains("Connected: com.injixo.cloud-link on test-host"),
        "{message}"
    );
    let client_table = browser
        .find(Locator::Id(&format!("client-{integration}")))
        .await?
        .text()
        .await?;
    assert!(client_table.contains("test-host"), "{client_table}");
    if let Ok(dir) = std::env::var("EMULATOR_SCREENSHOT_DIR") {
        let png = browser.screenshot().await?;
        std::fs::write(Path::new(&dir).join("integrations-page.png"), png)
            .expect("screenshot written");
    }
    Ok(())
}
