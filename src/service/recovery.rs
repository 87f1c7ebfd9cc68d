//! What a Windows service of this client should look like to the Service
//! Control Manager, decided here (pure, tested on every platform) and applied
//! by `super::windows` once the service runs:
//!
//! - **recovery**: restart after 1 s, 10 s and 60 s, the failure count reset
//!   after a day, also when the service stops itself with an error (not only
//!   when it crashes). The SCM's default is to do nothing, so a service that
//!   died stays dead (Vector's users found theirs that way). Set only when the
//!   service has no recovery actions yet: an admin's own choice is kept.
//! - **delayed automatic start**, set together with the recovery actions (a
//!   fresh install): the client needs the network and, often, a database on
//!   the same machine, which start later than the first automatic services.
//! - **a quoted ImagePath**: an unquoted path with spaces
//!   (`C:\Program Files\injixo Cloud Link\...`) lets Windows try
//!   `C:\Program.exe` first, a known privilege escalation. Some installers
//!   (Wine's msiexec among them) write it unquoted; it is quoted whenever it
//!   is found so.

use std::time::Duration;

/// The delays before the first, second and later restarts.
pub const RESTART_DELAYS: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(10),
    Duration::from_secs(60),
];

/// After a day without failure the next one counts as the first again.
pub const FAILURE_COUNT_RESET: Duration = Duration::from_secs(24 * 60 * 60);

/// The command line with its executable quoted, when it is unquoted and the
/// executable's path has a space; `None` when it needs no change.
///
/// The executable ends at the first `.exe` followed by the end or a blank
/// (case-insensitive), which is how the SCM itself resolves an unquoted
/// path in the end.
pub fn quoted_image_path(command_line: &str) -> Option<String> {
    let trimmed = command_line.trim_start();
    if trimmed.starts_with('"') {
        return None;
    }
    let lower = trimmed.to_ascii_lowercase();
    let mut search_from = 0;
    let end = loop {
        let at = lower[search_from..].find(".exe")? + search_from + ".exe".len();
        match trimmed[at..].chars().next() {
            None => break at,
            Some(c) if c.is_whitespace() => break at,
            Some(_) => search_from = at,
        }
    };
    let (executable, arguments) = trimmed.split_at(end);
    if !executable.contains(' ') {
        return None;
    }
    Some(format!("\"{executable}\"{arguments}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unquoted_path_with_spaces_is_quoted_and_keeps_its_arguments() {
        assert_eq!(
            quoted_image_path(
                r#"C:\Program Files\injixo Cloud Link\injixo-cloud-link.exe run --config "C:\Program Files\injixo Cloud Link\injixo-cloud-link.toml""#
            )
            .as_deref(),
            Some(
                r#""C:\Program Files\injixo Cloud Link\injixo-cloud-link.exe" run --config "C:\Program Files\injixo Cloud Link\injixo-cloud-link.toml""#
            )
        );
        assert_eq!(
            quoted_image_path(
                r"C:\Program Files\injixo Cloud Link (Instance 1)\INJIXO-CLOUD-LINK.EXE"
            )
            .as_deref(),
            Some(r#""C:\Program Files\injixo Cloud Link (Instance 1)\INJIXO-CLOUD-LINK.EXE""#)
        );
    }

    #[test]
    fn quoted_or_space_free_paths_are_left_alone() {
        assert_eq!(
            quoted_image_path(r#""C:\Program Files\x\injixo-cloud-link.exe" run"#),
            None
        );
        assert_eq!(quoted_image_path(r"C:\icl\injixo-cloud-link.exe run"), None);
        assert_eq!(quoted_image_path(r"C:\no executable here"), None);
    }

    #[test]
    fn a_folder_named_like_an_executable_does_not_end_the_path() {
        assert_eq!(
            quoted_image_path(r"C:\tools.exes\Cloud Link\injixo-cloud-link.exe run").as_deref(),
            Some(r#""C:\tools.exes\Cloud Link\injixo-cloud-link.exe" run"#)
        );
    }

    #[test]
    fn restarts_come_quickly_then_back_off() {
        assert!(RESTART_DELAYS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(RESTART_DELAYS[0], Duration::from_secs(1));
        assert!(FAILURE_COUNT_RESET >= Duration::from_secs(3600));
    }
}
