//! A stand-in for systemd, for the service tests that run on any machine
//! and without root (`tests/service_systemd.rs` uses the real one, as PID 1
//! of a container): a recording shell script named `systemctl` goes first
//! on `PATH`, and `INJIXO_CLOUD_LINK_SYSTEMD_DIR` points the unit folder at
//! a temporary folder. The client writes its real files there.

#![allow(dead_code)] // each test binary uses a different subset

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Output;

use crate::support::InstallDir;

/// A unit folder and a recording `systemctl` on `PATH`.
pub struct FakeSystem {
    dir: tempfile::TempDir,
}

impl FakeSystem {
    pub fn new() -> FakeSystem {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::create_dir(dir.path().join("units")).unwrap();
        let script = dir.path().join("bin").join("systemctl");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n\
                 echo \"$*\" >> '{}'\n\
                 if [ \"$1\" = show ]; then\n\
                 printf 'MainPID=0\\nActiveState=inactive\\nUnitFileState=enabled\\n'\n\
                 fi\n\
                 exit 0\n",
                dir.path().join("calls").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeSystem { dir }
    }

    pub fn units(&self) -> PathBuf {
        self.dir.path().join("units")
    }

    /// The `systemctl` command lines run so far, oldest first.
    pub fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// `injixo-cloud-link --config … service <action>` in this fake system,
    /// with exactly `env` of the variables the install keeps.
    pub fn service(&self, install: &InstallDir, action: &str, env: &[(&str, &str)]) -> Output {
        let mut cmd = install.command(&["service", action]);
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.env("PATH", path)
            .env("INJIXO_CLOUD_LINK_SYSTEMD_DIR", self.units())
            .current_dir(install.path());
        // The variables `service install` keeps in the unit: removed from
        // each command so that the test's own environment does not leak in.
        for name in injixo_cloud_link::service::unit::KEPT_VARIABLES {
            cmd.env_remove(name);
        }
        for (name, value) in env {
            cmd.env(name, value);
        }
        cmd.output().expect("run client")
    }
}
