//! The systemd unit of an instance, as text: rendering, systemd's quoting
//! rules, the proxy environment kept for the service, and reading back which
//! install folder an existing unit belongs to. Pure: no file, no process.
//!
//! systemd does not read `/etc/environment`, where the original install
//! guide tells admins to put `https_proxy`; so `service install` captures
//! the proxy variables of its own environment (sudo's PAM session applies
//! `/etc/environment`) and writes them into the unit. A value holding
//! credentials goes into a root-only environment file instead: the unit is
//! world-readable, and `Environment=` values, even from a 0600 drop-in, are
//! shown to every user by `systemctl show` (D-Bus), while the content of an
//! `EnvironmentFile=` is not.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The variables the client reads for its HTTP stack (proxy, extra CA)
/// and that the service must see as the install command did.
pub const KEPT_VARIABLES: &[&str] = &[
    "https_proxy",
    "HTTPS_PROXY",
    "http_proxy",
    "HTTP_PROXY",
    "no_proxy",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// systemd restarts the service this long after it ended, whatever the cause.
pub const RESTART_SEC: u32 = 5;
/// systemd kills and restarts the service when no `WATCHDOG=1` came for this
/// long; the client sends one every half of it.
pub const WATCHDOG_SEC: u32 = 60;
/// The client stops gracefully within `SHUTDOWN_DEADLINE` (8 s) plus the log
/// flush; systemd's SIGKILL comes only after this.
pub const TIMEOUT_STOP_SEC: u32 = 15;

/// Name of the drop-in (in `<unit>.d/`) that points at the credentials file.
pub const PROXY_DROP_IN: &str = "proxy.conf";
/// Name of the root-only environment file beside the drop-in.
pub const PROXY_ENV_FILE: &str = "proxy.env";

/// Environment variables, name and value, in the order written.
pub type Variables = Vec<(String, String)>;

/// What the unit of one instance says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitSpec {
    /// `[app] name`, shown in the description.
    pub app_name: String,
    /// Absolute path of the executable.
    pub exe: PathBuf,
    /// Absolute path of the configuration file.
    pub config: PathBuf,
    pub install_dir: PathBuf,
    pub import_dir: PathBuf,
    /// Credential-free variables, written as `Environment=`. Those with
    /// credentials go into the drop-in ([`render_proxy_drop_in`]).
    pub environment: Vec<(String, String)>,
}

/// A value systemd cannot be given safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("the path {0:?} is not valid UTF-8, which a systemd unit cannot hold; move the install folder to a plain path")]
    NotUtf8(PathBuf),
    #[error("{what} {value:?} contains a control character (a line break?), which a systemd unit cannot hold")]
    ControlCharacter { what: String, value: String },
    #[error("the path {0:?} is not absolute")]
    NotAbsolute(PathBuf),
}

/// The unit file `service install` writes.
pub fn render_unit(spec: &UnitSpec) -> Result<String, UnitError> {
    let exe = path_text(&spec.exe)?;
    let config = path_text(&spec.config)?;
    let install_dir = path_text(&spec.install_dir)?;
    let import_dir = path_text(&spec.import_dir)?;
    let app_name = checked("[app] name", &spec.app_name)?;

    let exec_start = [exe, "run", "--config", config]
        .iter()
        .map(|word| exec_word(word))
        .collect::<Vec<_>>()
        .join(" ");
    let mut writable = vec![path_word(install_dir)];
    if !spec.import_dir.starts_with(&spec.install_dir) {
        // A missing import folder must not stop the service from starting:
        // the client waits for it to appear.
        writable.push(path_word(&format!("-{import_dir}")));
    }

    let mut unit = String::new();
    let mut line = |text: fmt::Arguments| {
        let _ = writeln!(unit, "{text}");
    };
    line(format_args!(
        "# Written by `injixo-cloud-link service install`, which replaces it on every install."
    ));
    line(format_args!(
        "# The folder below identifies the instance: another install folder needs its own [app] name."
    ));
    line(format_args!("[Unit]"));
    line(format_args!(
        "Description=injixo Cloud Link ({})",
        escape_specifiers(app_name)
    ));
    line(format_args!("After=network-online.target"));
    line(format_args!("Wants=network-online.target"));
    line(format_args!(""));
    line(format_args!("[Service]"));
    line(format_args!("Type=notify"));
    line(format_args!("NotifyAccess=main"));
    line(format_args!("ExecStart={exec_start}"));
    // WorkingDirectory= takes the rest of the line verbatim (no unquoting),
    // so only specifiers are escaped.
    line(format_args!(
        "WorkingDirectory={}",
        escape_specifiers(install_dir)
    ));
    line(format_args!("Restart=always"));
    line(format_args!("RestartSec={RESTART_SEC}"));
    // A bad configuration (EX_CONFIG) does not heal by restarting every few
    // seconds: stop, and let the log say why.
    line(format_args!("RestartPreventExitStatus=78"));
    line(format_args!("WatchdogSec={WATCHDOG_SEC}"));
    line(format_args!("TimeoutStopSec={TIMEOUT_STOP_SEC}"));
    // Hardening that leaves ODBC alone: drivers and odbcinst.ini under /usr
    // and /etc stay readable, and the client loads them in-process.
    line(format_args!("NoNewPrivileges=yes"));
    line(format_args!("ProtectSystem=full"));
    if [&spec.install_dir, &spec.import_dir]
        .iter()
        .any(|dir| dir.starts_with("/tmp") || dir.starts_with("/var/tmp"))
    {
        // A private /tmp would hide the client's own folder from it.
        line(format_args!(
            "# PrivateTmp=yes is left out: the install or import folder is under /tmp or /var/tmp."
        ));
    } else {
        line(format_args!("PrivateTmp=yes"));
    }
    line(format_args!("ReadWritePaths={}", writable.join(" ")));
    for (name, value) in &spec.environment {
        line(format_args!(
            "Environment={}",
            environment_word(name, value)?
        ));
    }
    line(format_args!(""));
    line(format_args!("[Install]"));
    line(format_args!("WantedBy=multi-user.target"));
    Ok(unit)
}

/// The 0600 drop-in that adds the credentials file to the unit.
pub fn render_proxy_drop_in(environment_file: &Path) -> Result<String, UnitError> {
    Ok(format!(
        "# Written by `injixo-cloud-link service install`: proxy settings with credentials,\n\
         # kept out of the world-readable unit.\n\
         [Service]\n\
         EnvironmentFile={}\n",
        escape_specifiers(path_text(environment_file)?)
    ))
}

/// The 0600 environment file (systemd's `EnvironmentFile=` syntax, which
/// knows no specifiers and takes single quotes literally).
pub fn render_environment_file(variables: &[(String, String)]) -> Result<String, UnitError> {
    let mut out = String::from("# Written by `injixo-cloud-link service install`.\n");
    for (name, value) in variables {
        checked("the variable", name)?;
        checked(name, value)?;
        if value.contains('\'') {
            let escaped = value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('`', "\\`")
                .replace('$', "\\$");
            let _ = writeln!(out, "{name}=\"{escaped}\"");
        } else {
            let _ = writeln!(out, "{name}='{value}'");
        }
    }
    Ok(out)
}

/// The kept variables of an environment, split into those that may be shown
/// to everyone and those that hold credentials (any `@`, as in
/// `http://user:password@proxy:8080`, counts). Empty values are kept: an
/// empty `https_proxy=` deliberately switches off an upper-case one.
pub fn split_environment(lookup: impl Fn(&str) -> Option<String>) -> (Variables, Variables) {
    let mut public = Vec::new();
    let mut secret = Vec::new();
    for name in KEPT_VARIABLES {
        if let Some(value) = lookup(name) {
            let entry = ((*name).to_owned(), value);
            if entry.1.contains('@') {
                secret.push(entry);
            } else {
                public.push(entry);
            }
        }
    }
    (public, secret)
}

/// `%` starts a specifier in nearly every unit setting.
pub fn escape_specifiers(value: &str) -> String {
    value.replace('%', "%%")
}

/// One word of a space-separated setting (`ReadWritePaths=`,
/// `Environment=`): quoted when it has to be, `\` and `"` escaped inside
/// the quotes, `%` doubled.
pub fn quote_word(value: &str) -> String {
    let escaped = escape_specifiers(value);
    let needs_quotes = value.is_empty()
        || value
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | ';'));
    if needs_quotes {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        escaped
    }
}

/// One word of `ExecStart=`, which also expands `$VAR`.
pub fn exec_word(value: &str) -> String {
    quote_word(&value.replace('$', "$$"))
}

fn path_word(path: &str) -> String {
    quote_word(path)
}

/// `Environment="NAME=value"`: always quoted, so that what follows is one
/// assignment whatever the value holds.
fn environment_word(name: &str, value: &str) -> Result<String, UnitError> {
    checked("the variable", name)?;
    checked(name, value)?;
    Ok(format!(
        "\"{}\"",
        escape_specifiers(&format!("{name}={value}"))
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
    ))
}

fn checked<'a>(what: &str, value: &'a str) -> Result<&'a str, UnitError> {
    if value.chars().any(char::is_control) {
        return Err(UnitError::ControlCharacter {
            what: what.to_owned(),
            value: crate::http::proxy::redact_url(value),
        });
    }
    Ok(value)
}

fn path_text(path: &Path) -> Result<&str, UnitError> {
    if !path.is_absolute() {
        return Err(UnitError::NotAbsolute(path.to_path_buf()));
    }
    let text = path
        .to_str()
        .ok_or_else(|| UnitError::NotUtf8(path.to_path_buf()))?;
    checked("the path", text)
}

/// The install folder an existing unit runs from: its `WorkingDirectory=`,
/// else the folder of the `--config` file of its `ExecStart=`, else the
/// folder of its program. `None` when the unit says none of these.
pub fn unit_install_dir(unit: &str) -> Option<PathBuf> {
    let mut working_directory = None;
    let mut exec_start = None;
    for line in unit.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("WorkingDirectory=") {
            let value = value.trim().trim_start_matches('-');
            if !value.is_empty() && value != "~" {
                working_directory = Some(PathBuf::from(value.replace("%%", "%")));
            }
        } else if let Some(value) = line.strip_prefix("ExecStart=") {
            exec_start = Some(split_words(value.trim()));
        }
    }
    if working_directory.is_some() {
        return working_directory;
    }
    let words = exec_start?;
    let config = words
        .iter()
        .position(|w| w == "--config")
        .and_then(|i| words.get(i + 1).map(String::as_str))
        .or_else(|| words.iter().find_map(|w| w.strip_prefix("--config=")))
        .map(PathBuf::from);
    let anchor = config.or_else(|| {
        words
            .first()
            .map(|w| PathBuf::from(w.trim_start_matches(['-', '@', '+', '!', ':'])))
    })?;
    anchor.parent().map(Path::to_path_buf)
}

/// systemd's word splitting as far as reading our own and simple foreign
/// units needs: double and single quotes, backslash escapes, `%%` and `$$`.
fn split_words(value: &str) -> Vec<String> {
    let value = value.replace("%%", "%").replace("$$", "$");
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Half the watchdog interval systemd gave (`WATCHDOG_USEC`): how often the
/// client says it is alive. `None` when there is no usable interval.
pub fn watchdog_ping_interval(watchdog: Option<Duration>) -> Option<Duration> {
    watchdog
        .filter(|d| !d.is_zero())
        .map(|d| d / 2)
        .filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn spec() -> UnitSpec {
        UnitSpec {
            app_name: "com.injixo.cloud-link".to_owned(),
            exe: PathBuf::from("/opt/icl/injixo-cloud-link"),
            config: PathBuf::from("/opt/icl/injixo-cloud-link.toml"),
            install_dir: PathBuf::from("/opt/icl"),
            import_dir: PathBuf::from("/srv/import"),
            environment: vec![(
                "https_proxy".to_owned(),
                "http://proxy.example:8080".to_owned(),
            )],
        }
    }

    #[cfg(unix)] // Unix paths: a systemd unit's, not absolute on Windows
    #[test]
    fn renders_the_whole_unit() {
        let unit = render_unit(&spec()).unwrap();
        for expected in [
            "[Unit]\nDescription=injixo Cloud Link (com.injixo.cloud-link)\n",
            "\nAfter=network-online.target\nWants=network-online.target\n",
            "\n[Service]\nType=notify\nNotifyAccess=main\n",
            "\nExecStart=/opt/icl/injixo-cloud-link run --config /opt/icl/injixo-cloud-link.toml\n",
            "\nWorkingDirectory=/opt/icl\n",
            "\nRestart=always\nRestartSec=5\nRestartPreventExitStatus=78\nWatchdogSec=60\nTimeoutStopSec=15\n",
            "\nNoNewPrivileges=yes\nProtectSystem=full\nPrivateTmp=yes\n",
            "\nReadWritePaths=/opt/icl -/srv/import\n",
            "\nEnvironment=\"https_proxy=http://proxy.example:8080\"\n",
            "\n[Install]\nWantedBy=multi-user.target\n",
        ] {
            assert!(unit.contains(expected), "{expected:?} missing in:\n{unit}");
        }
    }

    #[cfg(unix)] // Unix paths: a systemd unit's, not absolute on Windows
    #[test]
    fn a_folder_under_tmp_keeps_the_real_tmp() {
        let mut spec = spec();
        spec.import_dir = PathBuf::from("/var/tmp/drop");
        let unit = render_unit(&spec).unwrap();
        assert!(!unit.contains("\nPrivateTmp=yes\n"), "{unit}");
        assert!(
            unit.contains("\nNoNewPrivileges=yes\nProtectSystem=full\n"),
            "{unit}"
        );
    }

    #[cfg(unix)] // Unix paths: a systemd unit's, not absolute on Windows
    #[test]
    fn an_import_folder_inside_the_install_folder_is_not_listed_twice() {
        let mut spec = spec();
        spec.import_dir = PathBuf::from("/opt/icl/import");
        let unit = render_unit(&spec).unwrap();
        assert!(unit.contains("\nReadWritePaths=/opt/icl\n"), "{unit}");
    }

    #[cfg(unix)] // Unix paths: a systemd unit's, not absolute on Windows
    #[test]
    fn paths_with_spaces_percent_dollar_and_quotes_survive() {
        let mut spec = spec();
        spec.exe = PathBuf::from("/opt/my icl/100%/$HOME/a\"b\\c/injixo-cloud-link");
        spec.config = PathBuf::from("/opt/my icl/100%/$HOME/a\"b\\c/injixo-cloud-link.toml");
        spec.install_dir = PathBuf::from("/opt/my icl/100%/$HOME/a\"b\\c");
        spec.import_dir = PathBuf::from("/srv/in box");
        let unit = render_unit(&spec).unwrap();
        assert!(
            unit.contains(
                "\nExecStart=\"/opt/my icl/100%%/$$HOME/a\\\"b\\\\c/injixo-cloud-link\" run --config \"/opt/my icl/100%%/$$HOME/a\\\"b\\\\c/injixo-cloud-link.toml\"\n"
            ),
            "{unit}"
        );
        assert!(
            unit.contains("\nWorkingDirectory=/opt/my icl/100%%/$HOME/a\"b\\c\n"),
            "{unit}"
        );
        assert!(
            unit.contains(
                "\nReadWritePaths=\"/opt/my icl/100%%/$HOME/a\\\"b\\\\c\" \"-/srv/in box\"\n"
            ),
            "{unit}"
        );
        // What we write, we read back as the same folder.
        assert_eq!(unit_install_dir(&unit), Some(spec.install_dir.clone()));
        let without_wd: String = unit
            .lines()
            .filter(|l| !l.starts_with("WorkingDirectory="))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(unit_install_dir(&without_wd), Some(spec.install_dir));
    }

    #[test]
    fn quoting_follows_systemd_rules() {
        assert_eq!(quote_word("/plain/path"), "/plain/path");
        assert_eq!(quote_word("a b"), "\"a b\"");
        assert_eq!(quote_word("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(quote_word("back\\slash"), "\"back\\\\slash\"");
        assert_eq!(quote_word("50%"), "50%%");
        assert_eq!(quote_word("50% off"), "\"50%% off\"");
        assert_eq!(quote_word(""), "\"\"");
        assert_eq!(quote_word("it's"), "\"it's\"");
        assert_eq!(exec_word("$HOME"), "$$HOME");
        assert_eq!(
            environment_word("no_proxy", "localhost, .corp %h \"x\" \\").unwrap(),
            "\"no_proxy=localhost, .corp %%h \\\"x\\\" \\\\\""
        );
        assert_eq!(
            environment_word("https_proxy", "").unwrap(),
            "\"https_proxy=\""
        );
    }

    #[cfg(unix)] // Unix paths: a systemd unit's, not absolute on Windows
    #[test]
    fn control_characters_are_refused_without_showing_a_password() {
        let err =
            environment_word("https_proxy", "http://u:pw@p:1\nExecStart=/bin/sh").unwrap_err();
        assert!(!err.to_string().contains("pw"), "{err}");
        let mut spec = spec();
        spec.install_dir = PathBuf::from("/opt/a\nb");
        assert!(matches!(
            render_unit(&spec),
            Err(UnitError::ControlCharacter { .. })
        ));
        spec.install_dir = PathBuf::from("relative");
        assert!(matches!(render_unit(&spec), Err(UnitError::NotAbsolute(_))));
    }

    #[test]
    fn credentials_are_split_from_plain_settings() {
        let env = |name: &str| match name {
            "https_proxy" => Some("http://user:pa%40ss@proxy:8080".to_owned()),
            "NO_PROXY" => Some("localhost,10.0.0.0/8".to_owned()),
            "SSL_CERT_FILE" => Some("/etc/ssl/corp.pem".to_owned()),
            "http_proxy" => Some(String::new()),
            "PATH" => Some("/usr/bin".to_owned()),
            _ => None,
        };
        let (public, secret) = split_environment(env);
        assert_eq!(
            public,
            vec![
                ("http_proxy".to_owned(), String::new()),
                ("NO_PROXY".to_owned(), "localhost,10.0.0.0/8".to_owned()),
                ("SSL_CERT_FILE".to_owned(), "/etc/ssl/corp.pem".to_owned()),
            ]
        );
        assert_eq!(
            secret,
            vec![(
                "https_proxy".to_owned(),
                "http://user:pa%40ss@proxy:8080".to_owned()
            )]
        );
    }

    #[cfg(unix)] // Unix paths: a systemd unit's, not absolute on Windows
    #[test]
    fn the_environment_file_is_literal() {
        let text = render_environment_file(&[
            (
                "https_proxy".to_owned(),
                "http://u:p%$w\\d@proxy:8080".to_owned(),
            ),
            (
                "HTTPS_PROXY".to_owned(),
                "http://u:it's@proxy:8080".to_owned(),
            ),
        ])
        .unwrap();
        assert!(
            text.contains("\nhttps_proxy='http://u:p%$w\\d@proxy:8080'\n"),
            "{text}"
        );
        assert!(
            text.contains("\nHTTPS_PROXY=\"http://u:it's@proxy:8080\"\n"),
            "{text}"
        );
        let drop_in =
            render_proxy_drop_in(Path::new("/etc/systemd/system/a.service.d/proxy.env")).unwrap();
        assert!(drop_in
            .ends_with("[Service]\nEnvironmentFile=/etc/systemd/system/a.service.d/proxy.env\n"));
    }

    #[test]
    fn reads_the_folder_of_foreign_units() {
        assert_eq!(
            unit_install_dir("[Service]\nExecStart=/opt/other/injixo-cloud-link run\n"),
            Some(PathBuf::from("/opt/other"))
        );
        assert_eq!(
            unit_install_dir(
                "[Service]\nExecStart=-/usr/bin/icl run --config=/srv/b/injixo-cloud-link.toml\n"
            ),
            Some(PathBuf::from("/srv/b"))
        );
        assert_eq!(
            unit_install_dir("[Service]\nWorkingDirectory=-/opt/x\nExecStart=/usr/bin/y\n"),
            Some(PathBuf::from("/opt/x"))
        );
        assert_eq!(unit_install_dir("[Unit]\nDescription=nothing\n"), None);
    }

    #[test]
    fn the_watchdog_is_fed_twice_per_interval() {
        assert_eq!(
            watchdog_ping_interval(Some(Duration::from_secs(60))),
            Some(Duration::from_secs(30))
        );
        assert_eq!(watchdog_ping_interval(Some(Duration::ZERO)), None);
        assert_eq!(watchdog_ping_interval(Some(Duration::from_nanos(1))), None);
        assert_eq!(watchdog_ping_interval(None), None);
    }
}
