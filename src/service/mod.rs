//! The client as an OS service: the systemd unit (`unit`, pure), its
//! installation (`systemd`, Linux), and the notifications a `Type=notify`
//! service sends (`notify`). The `service` command that drives them is
//! `crate::commands::service`.
//!
//! An instance's service is named after its `[app] name`, through
//! service-manager's label: `com.injixo.cloud-link` is the label, and the
//! systemd unit is what service-manager derives from it (organisation and
//! application, the qualifier dropped): `injixo-cloud-link.service`, and for
//! `com.injixo.cloud-link.instance.1`, `injixo-cloud-link.instance.1.service`.
//!
//! On Windows the installer (MSI) registers the service; `windows` reports
//! its states to the Service Control Manager and applies what `recovery`
//! decides (`#[cfg(windows)]`, built and tested under Wine by
//! `scripts/windows`). Its names are computed here, where every platform's
//! tests run.

pub mod notify;
pub mod recovery;
#[cfg(target_os = "linux")]
pub mod systemd;
pub mod unit;
#[cfg(windows)]
pub mod windows;

use std::str::FromStr;

use service_manager::ServiceLabel;

use crate::config::DEFAULT_APP_NAME;

/// service-manager's label for `[app] name`.
pub fn label(app_name: &str) -> ServiceLabel {
    // from_str never fails: any text is a label.
    ServiceLabel::from_str(app_name).unwrap_or_else(|_| ServiceLabel {
        qualifier: None,
        organization: None,
        application: app_name.to_owned(),
    })
}

/// The systemd unit service-manager writes for `[app] name`.
pub fn systemd_unit_name(app_name: &str) -> String {
    format!("{}.service", label(app_name).to_script_name())
}

/// The name people see in the Windows service list: "injixo Cloud Link",
/// and "injixo Cloud Link (Instance N)" for `com.injixo.cloud-link.instance.N`
/// (the names the original installer used). Any other `[app] name` is shown
/// in brackets.
pub fn display_name(app_name: &str) -> String {
    const PRODUCT: &str = "injixo Cloud Link";
    if app_name == DEFAULT_APP_NAME {
        return PRODUCT.to_owned();
    }
    let instance = app_name
        .strip_prefix(DEFAULT_APP_NAME)
        .and_then(|rest| rest.strip_prefix(".instance."))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    match instance {
        Some(n) => format!("{PRODUCT} (Instance {n})"),
        None => format!("{PRODUCT} ({app_name})"),
    }
}

/// The Windows service's key name: the systemd unit's stem, so that one
/// instance has one name everywhere (`injixo-cloud-link`,
/// `injixo-cloud-link.instance.1`).
pub fn windows_service_name(app_name: &str) -> String {
    label(app_name).to_script_name()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_follow_service_manager() {
        assert_eq!(
            systemd_unit_name("com.injixo.cloud-link"),
            "injixo-cloud-link.service"
        );
        assert_eq!(
            systemd_unit_name("com.injixo.cloud-link.instance.1"),
            "injixo-cloud-link.instance.1.service"
        );
        assert_eq!(systemd_unit_name("acme.link"), "acme-link.service");
        assert_eq!(systemd_unit_name("link"), "link.service");
        assert_eq!(
            label("com.injixo.cloud-link").to_qualified_name(),
            "com.injixo.cloud-link"
        );
    }

    #[test]
    fn windows_names_tell_the_instance() {
        assert_eq!(display_name("com.injixo.cloud-link"), "injixo Cloud Link");
        assert_eq!(
            display_name("com.injixo.cloud-link.instance.1"),
            "injixo Cloud Link (Instance 1)"
        );
        assert_eq!(
            display_name("com.injixo.cloud-link.instance.12"),
            "injixo Cloud Link (Instance 12)"
        );
        assert_eq!(
            display_name("com.injixo.cloud-link.instance.x"),
            "injixo Cloud Link (com.injixo.cloud-link.instance.x)"
        );
        assert_eq!(display_name("acme.link"), "injixo Cloud Link (acme.link)");
        assert_eq!(
            windows_service_name("com.injixo.cloud-link"),
            "injixo-cloud-link"
        );
        assert_eq!(
            windows_service_name("com.injixo.cloud-link.instance.3"),
            "injixo-cloud-link.instance.3"
        );
    }
}
