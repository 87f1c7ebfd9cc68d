//! The real user journey: an admin reads the PIN in the client's log, types
//! it into the cloud's integration page in a browser, clicks Connect, and
//! the running client is linked.
#![cfg(unix)]

mod support;

use std::time::Duration;

use fantoccini::Locator;
use support::browser::ChromeDriver;
use support::emulator::Emulator;
use support::*;

#[actix_rt::test]
async fn the_pin_of_a_running_client_typed_into_the_page_links_it() {
    let cloud = Emulator::start(&[]);
    let integration = cloud.create_csv_integration("Avaya CMS interval data");
    let install = InstallDir::with_cloud(&cloud.url);
    let client = install.spawn_run();
    let pin = install.wait_for_pin(1, Duration::from_secs(20));

    let driver = ChromeDriver::start();
    let browser = driver.browser().await;
    let steps = async {
        browser
            .goto(&format!("{}/account/integrations", cloud.url))
            .await?;
        let field = browser
            .find(Locator::Id(&format!("pin-{integration}")))
            .await?;
        field.send_keys(&pin).await?;
        browser
            .find(Locator::Id(&format!("connect-{integration}")))
            .await?
            .click()
            .await?;
        let success = browser
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Id(&format!("success-{integration}")))
            .await?
            .text()
            .await?;
        if let Ok(dir) = std::env::var("SCREENSHOT_DIR") {
            let png = browser.screenshot().await?;
            std::fs::write(std::path::Path::new(&dir).join("pairing-page.png"), png).unwrap();
        }
        Ok::<_, fantoccini::error::CmdError>(success)
    }
    .await;
    let _ = browser.close().await;
    let success = steps.expect("browser steps");
    assert!(success.contains("Connected"), "{success}");

    install.wait_for_log(
        &format!("linked to integration Avaya CMS interval data ({integration})"),
        Duration::from_secs(15),
    );
    let (status, _) = client.terminate(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
}
