//! The configuration file: `Config::from_bytes` is what `Config::load` does
//! with the file's bytes. Any input gives a config or a rendered error, and
//! what `check-config` prints for a config reads back as the same config.
#![no_main]

use std::path::Path;

use injixo_cloud_link::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let file = Path::new("/opt/icl/injixo-cloud-link.toml");
    let install_dir = Path::new("/opt/icl");
    match Config::from_bytes(data, file, install_dir) {
        Ok(config) => {
            let described = config.describe();
            let again =
                Config::from_bytes(described.as_bytes(), file, install_dir).unwrap_or_else(|e| {
                    panic!("check-config output does not read back:\n{described}\n{e}")
                });
            // Sizes are shown rounded ("1.5 GiB"); everything else is exact.
            assert_eq!(again.app, config.app, "{described}");
            assert_eq!(again.cloud, config.cloud, "{described}");
            assert_eq!(again.log, config.log, "{described}");
            assert_eq!(again.csv.poll, config.csv.poll);
            assert_eq!(again.csv.settle_seconds, config.csv.settle_seconds);
            assert_eq!(again.csv.after_import, config.csv.after_import);
            assert_eq!(again.database.uid, config.database.uid, "{described}");
            let _ = format!("{config:?}");
        }
        Err(error) => {
            let message = error.to_string();
            assert!(!message.is_empty());
        }
    }
});
