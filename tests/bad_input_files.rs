//! The bad-input corpus for the import folder itself: paths that match the
//! pattern but are no readable file. Each is logged once with what it is,
//! none blocks the scan or the good files beside it, and a fixed one is
//! imported.
//!
//! Permission denied: the tests run as root, and root reads any file
//! whatever its mode. So the client runs under `setpriv` without
//! CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (dropped from its bounding set):
//! still root, owner of its install folder, but a root-owned file of mode
//! 000 is refused by the kernel with EACCES, exactly as a file the service
//! account may not read.

mod corpus;
mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use corpus::*;
use support::emulator::Emulator;
use support::*;

/// `run` without the capabilities that let root ignore file modes.
fn run_without_dac_override(install: &InstallDir) -> Command {
    let probe = Command::new("setpriv")
        .args(["--bounding-set", "-dac_override,-dac_read_search", "true"])
        .status()
        .expect("setpriv (util-linux) is installed");
    assert!(probe.success(), "setpriv cannot drop capabilities here");
    let mut command = Command::new("setpriv");
    command
        .args(["--bounding-set", "-dac_override,-dac_read_search", "--"])
        .arg(CLIENT)
        .arg("--config")
        .arg(install.config_path())
        .arg("run")
        .env_remove("INJIXO_CLOUD_LINK_CONFIG")
        .env_remove("INJIXO_CLOUD_LINK_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

#[test]
fn paths_that_are_no_readable_file_are_logged_once_and_never_block_good_files() {
    let cloud = Emulator::start(&[]);
    let install = csv_install(&cloud.url, "");
    let _client = link(&install, &cloud, run_without_dac_override(&install));
    let import = import_dir(&install);

    // A symbolic link loop, a dangling link, a folder and a named pipe named
    // like CSV files; a file the client may not read.
    std::os::unix::fs::symlink("loop.csv", import.join("loop.csv")).unwrap();
    std::os::unix::fs::symlink("nowhere/gone.csv", import.join("dangling.csv")).unwrap();
    std::fs::create_dir(import.join("x.csv")).unwrap();
    std::fs::write(import.join("x.csv").join("inner.csv"), good_csv("inner")).unwrap();
    let fifo = std::ffi::CString::new(import.join("pipe.csv").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let secret = good_csv("secret");
    std::fs::write(import.join("secret.csv"), &secret).unwrap();
    std::fs::set_permissions(import.join("secret.csv"), PermissionsExt::from_mode(0o000)).unwrap();
    // A file removed between detection and read (while it settles).
    std::fs::write(import.join("removed.csv"), good_csv("removed")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::remove_file(import.join("removed.csv")).unwrap();
    let goods: Vec<Vec<u8>> = (0..5).map(|n| good_csv(&format!("good {n}"))).collect();
    for (n, content) in goods.iter().enumerate() {
        drop_file(&import, &format!("good-{n}.csv"), content);
    }

    let imports = wait_for_imports(&cloud, goods.len());
    for content in &goods {
        assert!(imports.contains_key(&sha256_hex(content)));
    }
    let log = install.wait_for_log("cannot import secret.csv", Duration::from_secs(20));
    let once = |needle: &str| {
        assert_eq!(
            lines_with(&log, needle).len(),
            1,
            "{needle:?} once in:\n{log}"
        );
    };
    once("not importing loop.csv: cannot look at it: Too many levels of symbolic links");
    once("not importing dangling.csv: it is a symbolic link to a file that does not exist");
    once("not importing x.csv: it is a folder, not a file");
    once("not importing pipe.csv: it is a named pipe (FIFO), not a file");
    once("cannot import secret.csv: cannot read");
    assert!(log.contains("Permission denied (os error 13)"), "{log}");
    once("removed.csv was removed before it was imported; nothing to import");

    // A full scan (every 30 s) looks at all of them again: nothing more is
    // logged, and nothing else arrives (not the folder's inner file either).
    std::thread::sleep(Duration::from_secs(33));
    let log = install.read_log();
    for name in [
        "loop.csv",
        "dangling.csv",
        "x.csv",
        "pipe.csv",
        "secret.csv",
    ] {
        assert_eq!(
            lines_with(&log, &format!(" {name}: ")).len(),
            1,
            "{name}:\n{log}"
        );
    }
    assert_eq!(cloud.imports().len(), goods.len());

    // Fixed: readable again, and a real file where the folder was.
    std::fs::set_permissions(import.join("secret.csv"), PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::remove_dir_all(import.join("x.csv")).unwrap();
    drop_file(&import, "x.csv", &good_csv("x is a file now"));
    let imports = wait_for_imports(&cloud, goods.len() + 2);
    assert!(imports.contains_key(&sha256_hex(&secret)));
    assert!(imports.contains_key(&sha256_hex(&good_csv("x is a file now"))));
    let log = install.wait_for_log(
        "secret.csv could be read this time",
        Duration::from_secs(10),
    );
    assert_no_crash(&log);
    assert_no_duplicates(&cloud);
}
