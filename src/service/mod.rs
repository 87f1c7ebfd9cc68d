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

pub mod notify;
#[cfg(target_os = "linux")]
pub mod systemd;
pub mod unit;

use std::str::FromStr;

use service_manager::ServiceLabel;

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
}
