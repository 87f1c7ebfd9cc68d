//! The configuration file `injixo-cloud-link.toml`: its keys, their
//! defaults, and validation that tells a person exactly what is wrong and
//! where. ConfigActor owns the loaded [`Config`] at run time.
//!
//! Parsing is done on toml's spanned document (not serde) so that every
//! problem can point at its line and column, all problems are reported at
//! once, and unknown keys get a "did you mean" suggestion.

pub mod diagnostic;

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::report::Failure;

pub use diagnostic::{Diagnostic, Location};

/// Name of the configuration file; its folder is the install folder.
pub const FILE_NAME: &str = "injixo-cloud-link.toml";
pub const DEFAULT_APP_NAME: &str = "com.injixo.cloud-link";
pub const DEFAULT_CLOUD_URL: &str = "https://www.injixo.com";
const MAX_APP_NAME_LEN: usize = 128;
const MAX_KEEP_DAYS: i64 = 36_500;
const GIB: u64 = 1 << 30;
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 10 * GIB;
pub const DEFAULT_CSV_MAX_BYTES: u64 = 10 * GIB;
pub const DEFAULT_SETTLE_SECONDS: u64 = 2;
const MAX_SETTLE_SECONDS: i64 = 3600;
/// A connected feed silent this long gets a warning (issue 13's default).
pub const DEFAULT_SILENCE_MINUTES: u64 = 10;
pub const DEFAULT_PARTIAL_LINE_SECONDS: u64 = 300;
const MAX_PARTIAL_LINE_SECONDS: i64 = 86_400;

/// Every section and key the file may hold. An unknown one is an error, so a
/// typo never silently falls back to a default.
const SCHEMA: &[(&str, &[&str])] = &[
    ("app", &["name", "verbose", "importDirectory"]),
    ("cloud", &["url"]),
    ("log", &["keepDays"]),
    ("spool", &["maxBytes"]),
    (
        "csv",
        &[
            "poll",
            "settleSeconds",
            "partialLineSeconds",
            "maxBytes",
            "afterImport",
        ],
    ),
    ("database", &["connectionString", "uid", "password"]),
    (
        "realtime",
        &["listenAddress", "allowFrom", "silenceMinutes"],
    ),
];

/// The effective configuration of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The configuration file's path (it may not exist: then all defaults).
    pub file: PathBuf,
    pub file_found: bool,
    /// The folder of the configuration file: logs, state and the default
    /// import folder live there.
    pub install_dir: PathBuf,
    pub app: AppSettings,
    pub cloud: CloudSettings,
    pub log: LogSettings,
    pub spool: SpoolSettings,
    pub csv: CsvImportSettings,
    pub database: DatabaseOverride,
    pub realtime: RealtimeLocalSettings,
    origins: BTreeMap<&'static str, Origin>,
}

/// `[realtime]`: what stays on-premise of a real-time feed (the cloud's
/// `realtime` block says the port and the format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealtimeLocalSettings {
    /// The address a listening feed binds; all interfaces by default.
    pub listen_address: std::net::IpAddr,
    /// Addresses and CIDR ranges allowed to connect; empty: all.
    pub allow_from: Vec<String>,
    /// A connected feed silent this long is warned about.
    pub silence_minutes: u64,
}

impl Default for RealtimeLocalSettings {
    fn default() -> Self {
        RealtimeLocalSettings {
            listen_address: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            allow_from: Vec::new(),
            silence_minutes: DEFAULT_SILENCE_MINUTES,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSettings {
    /// The instance's identity, and the name of its OS service.
    pub name: String,
    pub verbose: bool,
    pub import_directory: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudSettings {
    pub url: url::Url,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// Rotated logs older than this many days are deleted; `None` keeps all.
    pub keep_days: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolSettings {
    /// Data waiting for upload may take this much disk; importers pause
    /// when it is full.
    pub max_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvImportSettings {
    /// Poll the folder instead of relying on OS notifications (network
    /// shares do not deliver them).
    pub poll: bool,
    /// A file is taken once its size and time stamp stayed the same this long.
    pub settle_seconds: u64,
    /// A file whose last line has no line end yet is still being written; it
    /// is taken anyway once unchanged this long (never less than
    /// `settle_seconds`).
    pub partial_line_seconds: u64,
    /// Larger files are not uploaded (one warning each).
    pub max_bytes: u64,
    pub after_import: AfterImport,
}

/// Local replacements for the cloud's connection string, so a site can keep
/// its database password on-premise.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DatabaseOverride {
    pub connection_string: Option<String>,
    pub uid: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for DatabaseOverride {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseOverride")
            .field(
                "connection_string",
                &self
                    .connection_string
                    .as_deref()
                    .map(crate::db::connection_string::mask),
            )
            .field("uid", &self.uid)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// What happens to a CSV file once the cloud confirmed its import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterImport {
    /// Leave it where it is, as the original client does.
    Keep,
    /// Move it into `imported/<date>/` beside it.
    Move,
}

/// Where an effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    File,
    Default,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_problems(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Diagnostic>,
    },
}

fn render_problems(path: &Path, problems: &[Diagnostic]) -> String {
    let mut out = match problems.len() {
        1 => format!("the configuration file {} has a problem:", path.display()),
        n => format!(
            "the configuration file {} has {n} problems:",
            path.display()
        ),
    };
    for problem in problems {
        let _ = write!(out, "\n\nerror: {problem}");
    }
    out
}

impl Config {
    /// Loads the configuration file at `path`. A missing file means all
    /// defaults.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let path = absolute(path);
        let install_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        match std::fs::read(&path) {
            Ok(bytes) => Config::from_bytes(&bytes, &path, &install_dir).map(|mut c| {
                c.file_found = true;
                c
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Config::parse("", &path, &install_dir)
            }
            Err(source) => Err(ConfigError::Read { path, source }),
        }
    }

    /// Parses the bytes of a configuration file as [`Config::load`] reads
    /// them: UTF-8, with or without a byte-order mark. Pure, so the fuzzer
    /// drives the same code as the service.
    pub fn from_bytes(
        bytes: &[u8],
        file: &Path,
        install_dir: &Path,
    ) -> Result<Config, ConfigError> {
        let Ok(text) = std::str::from_utf8(bytes) else {
            return Err(ConfigError::Invalid {
                problems: vec![Diagnostic::new("the file is not UTF-8 text")
                    .help("save it as UTF-8 (in Notepad: File > Save as > Encoding: UTF-8)")],
                path: file.to_path_buf(),
            });
        };
        // Notepad writes a byte-order mark; TOML does not allow one.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        Config::parse(text, file, install_dir)
    }

    /// Parses the text of a configuration file. `file` is only used in
    /// messages; relative paths are resolved against `install_dir`.
    pub fn parse(text: &str, file: &Path, install_dir: &Path) -> Result<Config, ConfigError> {
        let mut reader = Reader {
            text,
            file,
            problems: Vec::new(),
            origins: BTreeMap::new(),
        };
        let document = match DeTable::parse(text) {
            Ok(document) => document.into_inner(),
            Err(e) => {
                reader.syntax_error(&e);
                return Err(reader.into_error());
            }
        };
        reader.check_known_keys(&document);

        let app = reader.section(&document, "app");
        let cloud = reader.section(&document, "cloud");
        let log = reader.section(&document, "log");

        let name = reader
            .string(app, "app", "name")
            .and_then(|(name, span)| reader.valid_app_name(name, span))
            .unwrap_or_else(|| DEFAULT_APP_NAME.to_owned());
        let verbose = reader.boolean(app, "app", "verbose").unwrap_or(false);
        let import_directory = reader
            .string(app, "app", "importDirectory")
            .and_then(|(dir, span)| reader.valid_directory("importDirectory", &dir, span))
            .map(|dir| install_dir.join(dir))
            .unwrap_or_else(|| install_dir.to_path_buf());
        let url = reader
            .string(cloud, "cloud", "url")
            .and_then(|(url, span)| reader.valid_cloud_url(&url, span))
            .unwrap_or_else(|| url::Url::parse(DEFAULT_CLOUD_URL).expect("default URL is valid"));
        let keep_days = reader
            .integer(log, "log", "keepDays", 1..=MAX_KEEP_DAYS)
            .map(|days| days as u32);
        let spool = reader.section(&document, "spool");
        let csv = reader.section(&document, "csv");
        let spool_max_bytes = reader
            .byte_size(spool, "spool", "maxBytes")
            .unwrap_or(DEFAULT_SPOOL_MAX_BYTES);
        let poll = reader.boolean(csv, "csv", "poll").unwrap_or(false);
        let settle_seconds = reader
            .integer(csv, "csv", "settleSeconds", 0..=MAX_SETTLE_SECONDS)
            .map_or(DEFAULT_SETTLE_SECONDS, |s| s as u64);
        let partial_line_seconds = reader
            .integer(
                csv,
                "csv",
                "partialLineSeconds",
                0..=MAX_PARTIAL_LINE_SECONDS,
            )
            .map_or(DEFAULT_PARTIAL_LINE_SECONDS, |s| s as u64);
        let csv_max_bytes = reader
            .byte_size(csv, "csv", "maxBytes")
            .unwrap_or(DEFAULT_CSV_MAX_BYTES);
        let after_import = reader
            .string(csv, "csv", "afterImport")
            .and_then(|(value, span)| match value.as_str() {
                "keep" => Some(AfterImport::Keep),
                "move" => Some(AfterImport::Move),
                other => {
                    reader.report(
                        format!("`afterImport` in [csv] must be \"keep\" or \"move\", but it is {other:?}"),
                        span,
                        Some("\"keep\" leaves imported files in place (the default); \"move\" moves them into imported/<date>/".to_owned()),
                    );
                    None
                }
            })
            .unwrap_or(AfterImport::Keep);
        let database = reader.section(&document, "database");
        let database = DatabaseOverride {
            connection_string: reader
                .string(database, "database", "connectionString")
                .map(|(s, _)| s),
            uid: reader.string(database, "database", "uid").map(|(s, _)| s),
            password: reader
                .string(database, "database", "password")
                .map(|(s, _)| s),
        };

        let realtime = reader.section(&document, "realtime");
        let listen_address = reader
            .string(realtime, "realtime", "listenAddress")
            .and_then(|(text, span)| match text.trim().parse::<std::net::IpAddr>() {
                Ok(address) => Some(address),
                Err(_) => {
                    reader.report(
                        format!("`listenAddress` in [realtime] must be an IP address of this server, but it is {text:?}"),
                        span,
                        Some("e.g. \"10.1.2.3\", or \"0.0.0.0\" for every interface (the default)".to_owned()),
                    );
                    None
                }
            })
            .unwrap_or(RealtimeLocalSettings::default().listen_address);
        let allow_from = reader
            .string_list(realtime, "realtime", "allowFrom")
            .and_then(|(entries, span)| {
                match crate::realtime::allow::AllowList::parse(&entries) {
                    Ok(_) => Some(entries),
                    Err(e) => {
                        reader.report(
                            format!("`allowFrom` in [realtime]: {e}"),
                            span,
                            Some("list addresses and ranges in quotes: allowFrom = [\"10.1.2.3\", \"10.2.0.0/16\"]".to_owned()),
                        );
                        None
                    }
                }
            })
            .unwrap_or_default();
        let silence_minutes = reader
            .integer(realtime, "realtime", "silenceMinutes", 1..=10_080)
            .map_or(DEFAULT_SILENCE_MINUTES, |m| m as u64);

        if !reader.problems.is_empty() {
            return Err(reader.into_error());
        }
        Ok(Config {
            file: file.to_path_buf(),
            file_found: false,
            install_dir: install_dir.to_path_buf(),
            app: AppSettings {
                name,
                verbose,
                import_directory,
            },
            cloud: CloudSettings { url },
            log: LogSettings { keep_days },
            spool: SpoolSettings {
                max_bytes: spool_max_bytes,
            },
            csv: CsvImportSettings {
                poll,
                settle_seconds,
                partial_line_seconds,
                max_bytes: csv_max_bytes,
                after_import,
            },
            database,
            realtime: RealtimeLocalSettings {
                listen_address,
                allow_from,
                silence_minutes,
            },
            origins: reader.origins,
        })
    }

    /// Where the effective value of `section.key` came from.
    pub fn origin(&self, section_key: &str) -> Origin {
        self.origins
            .get(section_key)
            .copied()
            .unwrap_or(Origin::Default)
    }

    /// The effective configuration as TOML, each value annotated with its
    /// origin. What `check-config` prints.
    pub fn describe(&self) -> String {
        let origin = |key: &str| match self.origin(key) {
            Origin::File => "# from the file",
            Origin::Default => "# default",
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# configuration file: {} ({})",
            one_line(&self.file.display().to_string()),
            if self.file_found {
                "found"
            } else {
                "not found: all defaults"
            }
        );
        let _ = writeln!(
            out,
            "# install folder: {}",
            one_line(&self.install_dir.display().to_string())
        );
        let _ = writeln!(out, "\n[app]");
        let _ = writeln!(
            out,
            "name = {}  {}",
            toml_string(&self.app.name),
            origin("app.name")
        );
        let _ = writeln!(
            out,
            "verbose = {}  {}",
            self.app.verbose,
            origin("app.verbose")
        );
        let _ = writeln!(
            out,
            "importDirectory = {}  {}",
            toml_path(&self.app.import_directory.display().to_string()),
            origin("app.importDirectory")
        );
        let _ = writeln!(out, "\n[cloud]");
        let _ = writeln!(
            out,
            "url = {}  {}",
            toml_string(self.cloud.url.as_str().trim_end_matches('/')),
            origin("cloud.url")
        );
        let _ = writeln!(out, "\n[log]");
        match self.log.keep_days {
            Some(days) => {
                let _ = writeln!(out, "keepDays = {days}  {}", origin("log.keepDays"));
            }
            None => {
                let _ = writeln!(
                    out,
                    "# keepDays is not set: rotated logs are never deleted  # default"
                );
            }
        }
        let _ = writeln!(out, "\n[spool]");
        let _ = writeln!(
            out,
            "maxBytes = {:?}  {}",
            format_byte_size(self.spool.max_bytes),
            origin("spool.maxBytes")
        );
        let _ = writeln!(out, "\n[csv]");
        let _ = writeln!(out, "poll = {}  {}", self.csv.poll, origin("csv.poll"));
        let _ = writeln!(
            out,
            "settleSeconds = {}  {}",
            self.csv.settle_seconds,
            origin("csv.settleSeconds")
        );
        let _ = writeln!(
            out,
            "partialLineSeconds = {}  {}",
            self.csv.partial_line_seconds,
            origin("csv.partialLineSeconds")
        );
        let _ = writeln!(
            out,
            "maxBytes = {:?}  {}",
            format_byte_size(self.csv.max_bytes),
            origin("csv.maxBytes")
        );
        let _ = writeln!(
            out,
            "afterImport = {:?}  {}",
            match self.csv.after_import {
                AfterImport::Keep => "keep",
                AfterImport::Move => "move",
            },
            origin("csv.afterImport")
        );
        let _ = writeln!(out, "\n[database]");
        match &self.database.connection_string {
            Some(conn) => {
                let _ = writeln!(
                    out,
                    "connectionString = {}  {}",
                    toml_string(&crate::db::connection_string::mask(conn)),
                    origin("database.connectionString")
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "# connectionString is not set: the cloud's is used  # default"
                );
            }
        }
        if let Some(uid) = &self.database.uid {
            let _ = writeln!(
                out,
                "uid = {}  {}",
                toml_string(uid),
                origin("database.uid")
            );
        }
        if self.database.password.is_some() {
            let _ = writeln!(out, "password = \"***\"  {}", origin("database.password"));
        }
        let _ = writeln!(out, "\n[realtime]");
        let _ = writeln!(
            out,
            "listenAddress = {}  {}",
            toml_string(&self.realtime.listen_address.to_string()),
            origin("realtime.listenAddress")
        );
        let allow: Vec<String> = self
            .realtime
            .allow_from
            .iter()
            .map(|a| toml_string(a))
            .collect();
        let _ = writeln!(
            out,
            "allowFrom = [{}]  {}{}",
            allow.join(", "),
            origin("realtime.allowFrom"),
            if allow.is_empty() {
                ": any address may connect"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "silenceMinutes = {}  {}",
            self.realtime.silence_minutes,
            origin("realtime.silenceMinutes")
        );
        out
    }

    /// The folder that holds credentials, the spool, ledgers and the lock.
    pub fn state_dir(&self) -> PathBuf {
        self.install_dir.join("state")
    }
}

/// Text as TOML reads it back: the toml crate's encoder, not Rust's `{:?}`,
/// whose escapes differ from TOML's (`\u{feff}` is not TOML): the config
/// fuzzer found a byte-order mark inside a path written that way.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A path as TOML reads it back: a literal string when TOML allows one (no
/// `'`, no control character but tab), so Windows paths stay readable.
fn toml_path(s: &str) -> String {
    if s.chars()
        .any(|c| c == '\'' || (c.is_control() && c != '\t'))
    {
        toml_string(s)
    } else {
        format!("'{s}'")
    }
}

/// The cloud URL is a base that paths are appended to, so `…/api/` and
/// `…/api` are the same cloud; one form keeps `check-config`'s output
/// reading back as the same value (the config fuzzer found the difference).
fn without_trailing_slash(mut url: url::Url) -> url::Url {
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    url
}

/// A path shown in a `#` comment: a line break in it would end the comment
/// and turn the rest into TOML, so control characters are shown escaped.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

type Table<'i> = DeTable<'i>;

/// Walks the spanned document, collecting every problem rather than
/// stopping at the first.
struct Reader<'a> {
    text: &'a str,
    file: &'a Path,
    problems: Vec<Diagnostic>,
    origins: BTreeMap<&'static str, Origin>,
}

impl<'a> Reader<'a> {
    fn into_error(self) -> ConfigError {
        ConfigError::Invalid {
            path: self.file.to_path_buf(),
            problems: self.problems,
        }
    }

    fn locate(&self, span: Range<usize>) -> Location {
        Location::of_span(self.file.to_path_buf(), self.text, span)
    }

    fn report(&mut self, message: impl Into<String>, span: Range<usize>, help: Option<String>) {
        let mut d = Diagnostic::new(message).at(self.locate(span));
        d.help = help;
        self.problems.push(d);
    }

    fn syntax_error(&mut self, error: &toml::de::Error) {
        let message = error.message().trim().to_owned();
        let help = if message.contains("escape") {
            Some(
                "inside double quotes a backslash starts an escape: write it twice \
                 (\"c:\\\\import\") or use single quotes ('c:\\import')"
                    .to_owned(),
            )
        } else {
            None
        };
        let span = error.span().unwrap_or(0..0);
        self.report(format!("TOML syntax error: {message}"), span, help);
    }

    fn check_known_keys(&mut self, document: &Table<'_>) {
        let section_names = SCHEMA.iter().map(|(s, _)| *s);
        for (key, value) in document.iter() {
            let name = key.get_ref().as_ref();
            match SCHEMA.iter().find(|(s, _)| *s == name) {
                Some((section, keys)) => match value.get_ref() {
                    DeValue::Table(table) => self.check_section_keys(section, keys, table),
                    _ => self.report(
                        format!(
                            "`{name}` must be a section, written [{name}] on a line of its own"
                        ),
                        key.span(),
                        None,
                    ),
                },
                None => {
                    let help = match owning_section(name) {
                        Some(section) => format!("`{name}` belongs in the [{section}] section"),
                        None => match diagnostic::closest(name, section_names.clone()) {
                            Some(s) => format!("did you mean [{s}]?"),
                            None => format!("the sections are {}", list(section_names.clone())),
                        },
                    };
                    let what = if matches!(value.get_ref(), DeValue::Table(_)) {
                        "section"
                    } else {
                        "key"
                    };
                    self.report(format!("unknown {what} `{name}`"), key.span(), Some(help));
                }
            }
        }
    }

    fn check_section_keys(&mut self, section: &str, keys: &[&str], table: &Table<'_>) {
        for (key, _) in table.iter() {
            let name = key.get_ref().as_ref();
            if keys.contains(&name) {
                continue;
            }
            let help = match diagnostic::closest(name, keys.iter().copied()) {
                Some(k) => format!("did you mean `{k}`?"),
                None => match owning_section(name) {
                    Some(other) => format!("`{name}` belongs in the [{other}] section"),
                    None => format!("the keys of [{section}] are {}", list(keys.iter().copied())),
                },
            };
            self.report(
                format!("unknown key `{name}` in [{section}]"),
                key.span(),
                Some(help),
            );
        }
    }

    fn section<'d>(&self, document: &'d Table<'d>, name: &str) -> Option<&'d Table<'d>> {
        match document.get(name).map(Spanned::get_ref) {
            Some(DeValue::Table(table)) => Some(table),
            _ => None,
        }
    }

    /// The value of `section.key` if present; records the origin.
    fn value<'d>(
        &mut self,
        table: Option<&'d Table<'d>>,
        section: &'static str,
        key: &'static str,
    ) -> Option<&'d Spanned<DeValue<'d>>> {
        let value = table?.get(key)?;
        let full = SCHEMA_KEYS
            .iter()
            .find(|k| k.0 == section && k.1 == key)
            .map(|k| k.2)
            .expect("key is in SCHEMA_KEYS");
        self.origins.insert(full, Origin::File);
        Some(value)
    }

    fn wrong_type(
        &mut self,
        section: &str,
        key: &str,
        expected: &str,
        value: &Spanned<DeValue<'_>>,
    ) {
        let found = if diagnostic::is_secret_key(key) {
            describe_kind(value.get_ref())
        } else {
            describe_value(value.get_ref())
        };
        let help = match value.get_ref() {
            DeValue::String(s) if expected.contains("true or false") => {
                let s = s.as_ref().trim().to_lowercase();
                (s == "true" || s == "false")
                    .then(|| format!("write it without quotes: {key} = {s}"))
            }
            DeValue::String(s) if expected.contains("whole number") => s
                .as_ref()
                .trim()
                .parse::<i64>()
                .ok()
                .map(|n| format!("write it without quotes: {key} = {n}")),
            DeValue::Integer(_) | DeValue::Boolean(_) if expected.contains("text") => {
                Some(format!("put the value in quotes: {key} = \"...\""))
            }
            _ => None,
        };
        self.report(
            format!("`{key}` in [{section}] must be {expected}, but it is {found}"),
            value.span(),
            help,
        );
    }

    fn string(
        &mut self,
        table: Option<&Table<'_>>,
        section: &'static str,
        key: &'static str,
    ) -> Option<(String, Range<usize>)> {
        let value = self.value(table, section, key)?;
        match value.get_ref() {
            DeValue::String(s) => Some((s.as_ref().to_owned(), value.span())),
            _ => {
                self.wrong_type(section, key, "text in quotes", value);
                None
            }
        }
    }

    /// A list of texts (`["a", "b"]`); a single text counts as a list of one.
    fn string_list(
        &mut self,
        table: Option<&Table<'_>>,
        section: &'static str,
        key: &'static str,
    ) -> Option<(Vec<String>, Range<usize>)> {
        let value = self.value(table, section, key)?;
        let expected = "a list of texts in quotes, such as [\"10.1.2.3\"]";
        let items = match value.get_ref() {
            DeValue::String(s) => return Some((vec![s.as_ref().to_owned()], value.span())),
            DeValue::Array(items) => items,
            _ => {
                self.wrong_type(section, key, expected, value);
                return None;
            }
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push(s.as_ref().to_owned()),
                _ => {
                    self.wrong_type(section, key, expected, item);
                    return None;
                }
            }
        }
        Some((out, value.span()))
    }

    fn boolean(
        &mut self,
        table: Option<&Table<'_>>,
        section: &'static str,
        key: &'static str,
    ) -> Option<bool> {
        let value = self.value(table, section, key)?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(section, key, "true or false", value);
                None
            }
        }
    }

    fn integer(
        &mut self,
        table: Option<&Table<'_>>,
        section: &'static str,
        key: &'static str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<i64> {
        let value = self.value(table, section, key)?;
        let expected = format!("a whole number from {} to {}", range.start(), range.end());
        let DeValue::Integer(i) = value.get_ref() else {
            self.wrong_type(section, key, &expected, value);
            return None;
        };
        match i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
            Ok(n) if range.contains(&n) => Some(n),
            _ => {
                self.report(
                    format!(
                        "`{key}` in [{section}] must be {expected}, but it is {}",
                        i.as_str()
                    ),
                    value.span(),
                    None,
                );
                None
            }
        }
    }

    /// A size in bytes: a whole number, or text with a unit ("10 GiB",
    /// "500 MB"). Must be at least 1 MiB: less cannot hold a real import.
    fn byte_size(
        &mut self,
        table: Option<&Table<'_>>,
        section: &'static str,
        key: &'static str,
    ) -> Option<u64> {
        let value = self.value(table, section, key)?;
        let expected = "a size such as 10737418240 or \"10 GiB\" (at least 1 MiB)";
        let parsed = match value.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(&i.as_str().replace('_', ""), i.radix())
                .ok()
                .and_then(|n| u64::try_from(n).ok()),
            DeValue::String(s) => parse_byte_size(s.as_ref()),
            _ => {
                self.wrong_type(section, key, expected, value);
                return None;
            }
        };
        match parsed {
            Some(n) if n >= 1 << 20 => Some(n),
            _ => {
                let shown = describe_value(value.get_ref());
                self.report(
                    format!("`{key}` in [{section}] must be {expected}, but it is {shown}"),
                    value.span(),
                    Some("units: KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)".to_owned()),
                );
                None
            }
        }
    }

    fn valid_app_name(&mut self, name: String, span: Range<usize>) -> Option<String> {
        let bad_char = name
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')));
        let problem = if name.is_empty() {
            Some("it is empty".to_owned())
        } else if let Some((i, c)) = bad_char {
            Some(format!(
                "{name:?} has {} at position {}",
                describe_char(c),
                name[..i].chars().count() + 1
            ))
        } else if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            Some(format!("{name:?} does not start with a letter or digit"))
        } else if name.len() > MAX_APP_NAME_LEN {
            Some(format!("it is longer than {MAX_APP_NAME_LEN} characters"))
        } else {
            None
        };
        match problem {
            None => Some(name),
            Some(problem) => {
                self.report(
                    format!(
                        "`name` in [app] must be a valid service name \
                         (letters, digits, '.', '-', '_'), but {problem}"
                    ),
                    span,
                    Some(
                        "give each instance a unique name such as \
                         \"com.injixo.cloud-link.instance.1\""
                            .to_owned(),
                    ),
                );
                None
            }
        }
    }

    fn valid_directory(&mut self, key: &str, dir: &str, span: Range<usize>) -> Option<PathBuf> {
        if dir.trim().is_empty() {
            self.report(
                format!("`{key}` in [app] must name a folder, but it is empty"),
                span,
                Some("remove the line to import from the install folder".to_owned()),
            );
            return None;
        }
        // Admins copy Windows paths; a backslash inside a Unix folder name is
        // never what they meant, so both separators work everywhere.
        if cfg!(windows) {
            Some(PathBuf::from(dir))
        } else {
            Some(PathBuf::from(dir.replace('\\', "/")))
        }
    }

    fn valid_cloud_url(&mut self, raw: &str, span: Range<usize>) -> Option<url::Url> {
        let problem = match url::Url::parse(raw.trim()) {
            Err(e) => Err(format!("it is not a URL ({e})")),
            Ok(url) => match url.scheme() {
                "https" => Ok(url),
                "http" if is_loopback_host(&url) => Ok(url),
                "http" => Err("plain http is only allowed to this machine (localhost); \
                     the cloud must be reached over https"
                    .to_owned()),
                other => Err(format!("its scheme is {other:?}, not https")),
            }
            .and_then(|url| {
                if url.host().is_none() {
                    Err("it has no host".to_owned())
                } else if !url.username().is_empty() || url.password().is_some() {
                    Err("it holds credentials; the client authenticates by pairing".to_owned())
                } else if url.query().is_some() || url.fragment().is_some() {
                    Err("it has a query or fragment".to_owned())
                } else {
                    Ok(without_trailing_slash(url))
                }
            }),
        };
        match problem {
            Ok(url) => Some(url),
            Err(problem) => {
                self.report(
                    format!("`url` in [cloud] must be an https URL such as {DEFAULT_CLOUD_URL:?}, but {problem}"),
                    span,
                    Some("remove the line to use the injixo cloud".to_owned()),
                );
                None
            }
        }
    }
}

/// `(section, key, "section.key")`, for origin bookkeeping.
const SCHEMA_KEYS: &[(&str, &str, &str)] = &[
    ("app", "name", "app.name"),
    ("app", "verbose", "app.verbose"),
    ("app", "importDirectory", "app.importDirectory"),
    ("cloud", "url", "cloud.url"),
    ("log", "keepDays", "log.keepDays"),
    ("spool", "maxBytes", "spool.maxBytes"),
    ("csv", "poll", "csv.poll"),
    ("csv", "settleSeconds", "csv.settleSeconds"),
    ("csv", "partialLineSeconds", "csv.partialLineSeconds"),
    ("csv", "maxBytes", "csv.maxBytes"),
    ("csv", "afterImport", "csv.afterImport"),
    ("database", "connectionString", "database.connectionString"),
    ("database", "uid", "database.uid"),
    ("database", "password", "database.password"),
    ("realtime", "listenAddress", "realtime.listenAddress"),
    ("realtime", "allowFrom", "realtime.allowFrom"),
    ("realtime", "silenceMinutes", "realtime.silenceMinutes"),
];

/// "10 GiB", "500MB", "1.5 GB", "1048576" → bytes.
pub fn parse_byte_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.replace('_', "").parse().ok()?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = number * factor;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// 10737418240 → "10 GiB", for messages and `check-config`.
pub fn format_byte_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else if value.fract() == 0.0 {
        format!("{value} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn owning_section(key: &str) -> Option<&'static str> {
    SCHEMA
        .iter()
        .find(|(_, keys)| keys.contains(&key))
        .map(|(section, _)| *section)
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_value(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(s) => {
            let s = s.as_ref();
            if s.chars().count() > 40 {
                format!("the text {:?}…", s.chars().take(40).collect::<String>())
            } else {
                format!("the text {s:?}")
            }
        }
        DeValue::Integer(i) => format!("the number {}", i.as_str()),
        DeValue::Float(f) => format!("the number {}", f.as_str()),
        DeValue::Boolean(b) => format!("{b}"),
        DeValue::Datetime(d) => format!("the date {d}"),
        DeValue::Array(_) => "a list".to_owned(),
        DeValue::Table(_) => "a table".to_owned(),
    }
}

/// What a value is, without the value (for keys that hold secrets).
fn describe_kind(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(_) => "text",
        DeValue::Integer(_) | DeValue::Float(_) => "a number",
        DeValue::Boolean(_) => "true or false",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
    .to_owned()
}

fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        '\t' => "a tab".to_owned(),
        c => format!("{c:?}"),
    }
}

fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::File => "file",
            Origin::Default => "default",
        })
    }
}

/// A configuration problem ends the process with EX_CONFIG (78).
impl From<ConfigError> for Failure {
    fn from(error: ConfigError) -> Self {
        let hint = match &error {
            ConfigError::Invalid { .. } => {
                "fix the file, check it with `injixo-cloud-link check-config`, then start again"
            }
            ConfigError::Read { .. } => "check that the service's user may read the file",
        };
        Failure::new(exitcode::CONFIG, error).hint(hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, Vec<Diagnostic>> {
        Config::parse(
            text,
            Path::new("/opt/icl/injixo-cloud-link.toml"),
            Path::new("/opt/icl"),
        )
        .map_err(|e| match e {
            ConfigError::Invalid { problems, .. } => problems,
            other => panic!("unexpected {other}"),
        })
    }

    fn only_problem(text: &str) -> Diagnostic {
        let mut problems = parse(text).expect_err("should be invalid");
        assert_eq!(problems.len(), 1, "{problems:#?}");
        problems.remove(0)
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.app.name, DEFAULT_APP_NAME);
        assert!(!c.app.verbose);
        assert_eq!(c.app.import_directory, Path::new("/opt/icl"));
        assert_eq!(c.cloud.url.as_str(), "https://www.injixo.com/");
        assert_eq!(c.log.keep_days, None);
        assert_eq!(c.origin("app.name"), Origin::Default);
    }

    #[test]
    fn reads_every_key_and_records_origins() {
        let c = parse(
            "[app]\nname = \"com.injixo.cloud-link.instance.1\"\nverbose = true\n\
             importDirectory = \"data\\\\in\"\n[cloud]\nurl = \"http://127.0.0.1:8080\"\n\
             [log]\nkeepDays = 30\n",
        )
        .unwrap();
        assert_eq!(c.app.name, "com.injixo.cloud-link.instance.1");
        assert!(c.app.verbose);
        if cfg!(windows) {
            assert_eq!(c.app.import_directory, Path::new("/opt/icl/data\\in"));
        } else {
            assert_eq!(c.app.import_directory, Path::new("/opt/icl/data/in"));
        }
        assert_eq!(c.cloud.url.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(c.log.keep_days, Some(30));
        assert_eq!(c.origin("app.verbose"), Origin::File);
        assert_eq!(c.origin("log.keepDays"), Origin::File);
    }

    #[test]
    fn absolute_import_directory_is_kept() {
        let c = parse("[app]\nimportDirectory = '/srv/import'\n").unwrap();
        assert_eq!(c.app.import_directory, Path::new("/srv/import"));
    }

    #[test]
    fn syntax_error_points_at_line_and_column() {
        let d = only_problem("[app]\nname = \"x\nverbose = true\n");
        assert!(d.message.starts_with("TOML syntax error"), "{}", d.message);
        let loc = d.location.unwrap();
        assert_eq!(loc.line, 2);
    }

    #[test]
    fn unescaped_backslash_gets_a_hint() {
        let d = only_problem("[app]\nimportDirectory = \"c:\\import\"\n");
        assert!(d.help.unwrap().contains("single quotes"));
    }

    #[test]
    fn unknown_key_suggests_the_closest() {
        let d = only_problem("[app]\nimportDirectry = \"x\"\n");
        assert_eq!(d.message, "unknown key `importDirectry` in [app]");
        assert_eq!(d.help.as_deref(), Some("did you mean `importDirectory`?"));
        assert_eq!(d.location.unwrap().line, 2);
    }

    #[test]
    fn key_in_the_wrong_section_is_named() {
        let d = only_problem("[app]\nurl = \"https://x.example\"\n");
        assert_eq!(
            d.help.as_deref(),
            Some("`url` belongs in the [cloud] section")
        );
        let d = only_problem("verbose = true\n");
        assert_eq!(
            d.help.as_deref(),
            Some("`verbose` belongs in the [app] section")
        );
    }

    #[test]
    fn unknown_section_suggests_the_closest() {
        let d = only_problem("[aap]\nname = \"x\"\n");
        assert_eq!(d.message, "unknown section `aap`");
        assert_eq!(d.help.as_deref(), Some("did you mean [app]?"));
    }

    #[test]
    fn wrong_types_name_key_expectation_and_value() {
        let d = only_problem("[app]\nverbose = \"yes\"\n");
        assert_eq!(
            d.message,
            "`verbose` in [app] must be true or false, but it is the text \"yes\""
        );
        let d = only_problem("[app]\nverbose = \"true\"\n");
        assert_eq!(
            d.help.as_deref(),
            Some("write it without quotes: verbose = true")
        );
        let d = only_problem("[app]\nname = 42\n");
        assert_eq!(
            d.message,
            "`name` in [app] must be text in quotes, but it is the number 42"
        );
        let d = only_problem("[log]\nkeepDays = 0\n");
        assert_eq!(
            d.message,
            "`keepDays` in [log] must be a whole number from 1 to 36500, but it is 0"
        );
        let d = only_problem("[log]\nkeepDays = \"30\"\n");
        assert_eq!(
            d.help.as_deref(),
            Some("write it without quotes: keepDays = 30")
        );
    }

    #[test]
    fn invalid_service_names_are_refused() {
        for (name, needle) in [
            ("my instance", "a space at position 3"),
            ("", "it is empty"),
            ("-x", "does not start with a letter or digit"),
            ("a/b", "'/' at position 2"),
        ] {
            let d = only_problem(&format!("[app]\nname = {name:?}\n"));
            assert!(d.message.contains(needle), "{name}: {}", d.message);
        }
        assert!(parse("[app]\nname = \"com.injixo.cloud-link.instance_2\"").is_ok());
    }

    #[test]
    fn cloud_url_is_kept_without_trailing_slashes() {
        let c = parse("[cloud]\nurl = \"https://cloud.example/api//\"\n").unwrap();
        assert_eq!(c.cloud.url.as_str(), "https://cloud.example/api");
        let c = parse("[cloud]\nurl = \"https://cloud.example\"\n").unwrap();
        assert_eq!(c.cloud.url.as_str(), "https://cloud.example/");
    }

    #[test]
    fn cloud_url_must_be_https_except_loopback() {
        let d = only_problem("[cloud]\nurl = \"http://cloud.example\"\n");
        assert!(
            d.message.contains("plain http is only allowed"),
            "{}",
            d.message
        );
        assert!(parse("[cloud]\nurl = \"http://localhost:9\"\n").is_ok());
        assert!(parse("[cloud]\nurl = \"http://[::1]:9\"\n").is_ok());
        let d = only_problem("[cloud]\nurl = \"www.injixo.com\"\n");
        assert!(d.message.contains("not a URL"), "{}", d.message);
        let d = only_problem("[cloud]\nurl = \"https://u:p@x.example\"\n");
        assert!(d.message.contains("credentials"), "{}", d.message);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let problems =
            parse("[app]\nverbos = true\nname = \"a b\"\n[log]\nkeepDays = -1\n").unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:#?}");
    }

    #[test]
    fn describe_shows_values_and_origins() {
        let c = parse("[app]\nverbose = true\n").unwrap();
        let text = c.describe();
        assert!(text.contains("verbose = true  # from the file"), "{text}");
        assert!(
            text.contains("name = \"com.injixo.cloud-link\"  # default"),
            "{text}"
        );
        // What check-config prints must itself be a valid configuration.
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with("# "))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(parse(&body).is_ok(), "{body}");
    }

    #[test]
    fn partial_line_seconds_default_value_and_range() {
        let c = parse("").unwrap();
        assert_eq!(c.csv.partial_line_seconds, 300);
        assert!(c.describe().contains("partialLineSeconds = 300  # default"));
        let c = parse("[csv]\npartialLineSeconds = 30\n").unwrap();
        assert_eq!(c.csv.partial_line_seconds, 30);
        for bad in ["-1", "86401", "\"5 min\""] {
            let d = only_problem(&format!("[csv]\npartialLineSeconds = {bad}\n"));
            assert!(
                d.message.contains(
                    "`partialLineSeconds` in [csv] must be a whole number from 0 to 86400"
                ),
                "{}",
                d.message
            );
        }
    }

    #[test]
    fn sizes_take_numbers_or_units() {
        assert_eq!(parse_byte_size("10 GiB"), Some(10 << 30));
        assert_eq!(parse_byte_size("500MB"), Some(500_000_000));
        assert_eq!(parse_byte_size("1.5 gib"), Some(3 << 29));
        assert_eq!(parse_byte_size("1_048_576"), Some(1 << 20));
        assert_eq!(parse_byte_size("ten"), None);
        assert_eq!(parse_byte_size("5 parsecs"), None);
        assert_eq!(format_byte_size(10 << 30), "10 GiB");
        assert_eq!(format_byte_size(1536 << 20), "1.5 GiB");
        let c = parse("[spool]\nmaxBytes = \"2 GiB\"\n[csv]\nmaxBytes = 1073741824\nsettleSeconds = 0\nafterImport = \"move\"\npoll = true\n").unwrap();
        assert_eq!(c.spool.max_bytes, 2 << 30);
        assert_eq!(c.csv.max_bytes, 1 << 30);
        assert_eq!(c.csv.settle_seconds, 0);
        assert_eq!(c.csv.after_import, AfterImport::Move);
        assert!(c.csv.poll);
        let d = only_problem("[spool]\nmaxBytes = \"lots\"\n");
        assert!(d.message.contains("must be a size"), "{}", d.message);
        let d = only_problem("[csv]\nafterImport = \"delete\"\n");
        assert!(d.message.contains("\"keep\" or \"move\""), "{}", d.message);
        let d = only_problem("[spool]\nmaxBytes = 10\n");
        assert!(d.message.contains("at least 1 MiB"), "{}", d.message);
    }

    #[test]
    fn database_override_is_read_and_its_password_never_shown() {
        let c = parse("[database]\nconnectionString = \"DSN=acd;PWD=topsecret\"\nuid = \"wfm\"\npassword = \"hunter2\"\n").unwrap();
        assert_eq!(c.database.uid.as_deref(), Some("wfm"));
        assert_eq!(c.database.password.as_deref(), Some("hunter2"));
        let shown = format!("{}{:?}", c.describe(), c);
        assert!(
            !shown.contains("topsecret") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    /// What `check-config` prints reads back as the same config, whatever
    /// characters the file's strings hold. Regression: the config fuzzer's
    /// input with a byte-order mark and newlines inside `importDirectory`,
    /// which `{:?}` escaping had turned into TOML that does not parse.
    #[test]
    fn described_config_reads_back_with_any_characters_in_strings() {
        let fuzzer_found = [
            &include_bytes!("../../fuzz/seeds/config/regression-bom-in-multiline-path.toml")[..],
            // `url = "http://127.0/0.1:8080/"`: shown without its final slash.
            &include_bytes!("../../fuzz/seeds/config/regression-url-path-trailing-slash.toml")[..],
        ];
        let hostile = [
            "\u{feff}lead",
            "line\nbreak",
            "tab\there",
            "quote ' and \" both",
            "back\\slash",
            "del \u{7f} and nul-free controls \u{1}\u{1f}",
            "c:\\imports\\queue'1",
            "emoji \u{1f600} and \u{2028}",
        ];
        // (input, whether its connection string is shown whole: a password
        // in it is masked)
        let mut inputs: Vec<(Vec<u8>, bool)> =
            fuzzer_found.iter().map(|f| (f.to_vec(), false)).collect();
        for s in hostile {
            let quoted = toml::Value::String(s.to_owned()).to_string();
            inputs.push((
                format!("[app]\nimportDirectory = {quoted}\n[database]\nconnectionString = {quoted}\nuid = {quoted}\n")
                    .into_bytes(),
                true,
            ));
        }
        let file = Path::new("/opt/icl\n[app]\nname = 'x'/injixo-cloud-link.toml");
        let install_dir = Path::new("/opt/icl\n[app]\nname = 'x'");
        for (input, shown_whole) in inputs {
            let config = Config::from_bytes(&input, file, install_dir).unwrap();
            let described = config.describe();
            let again = Config::from_bytes(described.as_bytes(), file, install_dir)
                .unwrap_or_else(|e| panic!("does not read back:\n{described}\n{e}"));
            assert_eq!(again.app, config.app, "{described}");
            assert_eq!(again.cloud, config.cloud, "{described}");
            assert_eq!(again.database.uid, config.database.uid, "{described}");
            if shown_whole {
                assert_eq!(
                    again.database.connection_string, config.database.connection_string,
                    "{described}"
                );
            }
        }
    }

    #[test]
    fn realtime_settings_are_read_and_checked() {
        let config = parse(
            "[realtime]\nlistenAddress = \"10.1.2.3\"\nallowFrom = [\"10.1.2.0/24\", \"fd00::1\"]\nsilenceMinutes = 3\n",
        )
        .unwrap();
        assert_eq!(config.realtime.listen_address.to_string(), "10.1.2.3");
        assert_eq!(config.realtime.allow_from, ["10.1.2.0/24", "fd00::1"]);
        assert_eq!(config.realtime.silence_minutes, 3);
        assert!(config
            .describe()
            .contains("allowFrom = [\"10.1.2.0/24\", \"fd00::1\"]  # from the file"));
        let defaults = parse("").unwrap();
        assert_eq!(defaults.realtime, RealtimeLocalSettings::default());
        let problem = only_problem("[realtime]\nallowFrom = [\"10.1.2.0/33\"]\n");
        assert!(
            problem.message.contains("\"10.1.2.0/33\" is neither"),
            "{}",
            problem.message
        );
        let problem = only_problem("[realtime]\nlistenAddress = \"all\"\n");
        assert!(
            problem.message.contains("must be an IP address"),
            "{}",
            problem.message
        );
        let problem = only_problem("[realtime]\nallowFrom = [1]\n");
        assert!(
            problem.message.contains("a list of texts"),
            "{}",
            problem.message
        );
    }

    #[test]
    fn schema_keys_cover_schema() {
        for (section, keys) in SCHEMA {
            for key in *keys {
                assert!(SCHEMA_KEYS.iter().any(|k| k.0 == *section && k.1 == *key));
            }
        }
    }
}
