//! ODBC connection strings as text: parsing `Key=Value;` pairs (with
//! `{braced; values}`), masking passwords for display, the local override of
//! the cloud's string and credentials, and driver-specific tuning. Pure: no
//! ODBC call, so every rule is unit-tested.

/// Keys whose value is a secret. Compared case-insensitively.
const PASSWORD_KEYS: &[&str] = &["pwd", "password"];
/// Keys naming the login user across drivers (psqlODBC: `Username`, MariaDB: `User`).
const USER_KEYS: &[&str] = &["uid", "user", "username", "user id"];

/// One `Key=Value` attribute as written in the string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The key, trimmed, in the case it was written.
    pub key: String,
    /// The value with its braces removed and `}}` unescaped.
    pub value: String,
    /// Byte range of the raw value (braces included) in the original string,
    /// so masking keeps everything else exactly as written. It runs to the
    /// next `;`: text after a closing brace (`Pwd={a}b;`) is part of it, so
    /// masking hides it and replacing the value removes it.
    raw_value: std::ops::Range<usize>,
    /// A `{` that is never closed: the value swallows the rest of the string.
    unclosed: bool,
}

/// Splits a connection string into its attributes. Never fails: a string
/// an ODBC driver manager would reject (unbalanced brace, a part without
/// `=`) still yields what can be read, because masking must work on any
/// input, however broken.
pub fn parse(conn: &str) -> Vec<Attribute> {
    let bytes = conn.as_bytes();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let Some(eq) = conn[pos..].find(['=', ';']).map(|i| pos + i) else {
            break; // trailing text without `=`: not an attribute
        };
        if bytes[eq] == b';' {
            pos = eq + 1; // a part without `=`
            continue;
        }
        let key = conn[pos..eq].trim().to_string();
        let mut start = eq + 1;
        while start < bytes.len() && bytes[start] == b' ' {
            start += 1;
        }
        let (value, end, unclosed) = if bytes.get(start) == Some(&b'{') {
            read_braced(conn, start)
        } else {
            let end = conn[start..].find(';').map_or(bytes.len(), |i| start + i);
            (conn[start..end].trim_end().to_string(), end, false)
        };
        // Text after a closing brace is not part of the value, but it is no
        // attribute either: it belongs to the raw value up to the next `;`.
        let end = conn[end..].find(';').map_or(bytes.len(), |i| end + i);
        out.push(Attribute {
            key,
            value,
            raw_value: start..end,
            unclosed,
        });
        pos = end + 1;
    }
    out
}

/// Reads `{...}` starting at `start` (the `{`); `}}` is an escaped `}`.
/// Returns the value, the index just past the closing brace (or the end of
/// the string), and whether the closing brace is missing.
fn read_braced(conn: &str, start: usize) -> (String, usize, bool) {
    let bytes = conn.as_bytes();
    let mut value = String::new();
    let mut i = start + 1;
    let mut run_start = i;
    while i < bytes.len() {
        if bytes[i] == b'}' {
            if bytes.get(i + 1) == Some(&b'}') {
                value.push_str(&conn[run_start..=i]);
                i += 2;
                run_start = i;
                continue;
            }
            value.push_str(&conn[run_start..i]);
            return (value, i + 1, false);
        }
        i += 1;
    }
    value.push_str(&conn[run_start..]);
    (value, bytes.len(), true)
}

/// Writes a value so that a driver manager reads it back unchanged.
pub fn quote_value(value: &str) -> String {
    let needs_braces =
        value.contains([';', '{', '}', '=']) || value.starts_with(' ') || value.ends_with(' ');
    if needs_braces {
        format!("{{{}}}", value.replace('}', "}}"))
    } else {
        value.to_string()
    }
}

fn is_key(attr: &Attribute, keys: &[&str]) -> bool {
    keys.iter().any(|k| attr.key.eq_ignore_ascii_case(k))
}

/// The value of `key` (case-insensitive), the first one if repeated.
pub fn get(conn: &str, key: &str) -> Option<String> {
    parse(conn)
        .into_iter()
        .find(|a| a.key.eq_ignore_ascii_case(key))
        .map(|a| a.value)
}

/// The connection string for display: every password value becomes `***`,
/// everything else stays as written.
pub fn mask(conn: &str) -> String {
    let mut out = String::with_capacity(conn.len());
    let mut last = 0;
    for attr in parse(conn) {
        if is_key(&attr, PASSWORD_KEYS) {
            out.push_str(&conn[last..attr.raw_value.start]);
            out.push_str("***");
            last = attr.raw_value.end;
        }
    }
    out.push_str(&conn[last..]);
    out
}

/// Password values in `conn` (non-empty), so that a driver's message that
/// echoes one can be scrubbed.
pub fn secrets(conn: &str) -> Vec<String> {
    parse(conn)
        .into_iter()
        .filter(|a| is_key(a, PASSWORD_KEYS) && !a.value.is_empty())
        .map(|a| a.value)
        .collect()
}

/// Replaces every occurrence of a password of `conn` in `text` by `***`.
pub fn scrub(text: &str, conn: &str) -> String {
    let mut text = text.to_string();
    for secret in secrets(conn) {
        text = text.replace(&secret, "***");
    }
    text
}

/// Sets `keys[0]`'s value: the first attribute matching any of `keys` keeps
/// its position and spelling, later duplicates are removed, and a missing
/// one is appended.
fn set_value(conn: &str, keys: &[&str], value: &str) -> String {
    let attrs = parse(conn);
    let mut out = String::with_capacity(conn.len() + value.len() + 8);
    let mut last = 0;
    let mut done = false;
    for attr in &attrs {
        if !is_key(attr, keys) {
            continue;
        }
        if !done {
            out.push_str(&conn[last..attr.raw_value.start]);
            out.push_str(&quote_value(value));
            last = attr.raw_value.end;
            done = true;
        } else {
            // Drop `;Key=value` of a duplicate (from the `;` before it).
            let key_start = conn[..attr.raw_value.start].rfind(';').map_or(0, |i| i + 1);
            let cut_from = key_start.saturating_sub(1).max(last);
            out.push_str(&conn[last..cut_from]);
            last = attr.raw_value.end;
        }
    }
    out.push_str(&conn[last..]);
    if !done {
        append(&mut out, &keys[0].to_ascii_uppercase(), &quote_value(value));
    }
    out
}

/// Appends `key=value;` as an attribute of its own. After a `{` that is
/// never closed it closes the brace first: otherwise the unclosed value
/// would swallow the new attribute, and a local password would end up in
/// the driver's name, unmasked.
fn append(conn: &mut String, key: &str, value: &str) {
    if parse(conn).last().is_some_and(|a| a.unclosed) {
        conn.push('}');
    }
    if !conn.is_empty() && !conn.trim_end().ends_with(';') {
        conn.push(';');
    }
    conn.push_str(&format!("{key}={value};"));
}

/// The local `[database] uid` / `password` override: each given one replaces
/// its own part of the string (whatever key spelling it used), the other
/// part stays the cloud's.
pub fn with_credentials(conn: &str, uid: Option<&str>, password: Option<&str>) -> String {
    let mut conn = conn.to_string();
    if let Some(uid) = uid {
        conn = set_value(&conn, USER_KEYS, uid);
    }
    if let Some(password) = password {
        conn = set_value(&conn, PASSWORD_KEYS, password);
    }
    conn
}

/// The string to connect with: a local `[database] connectionString` wins
/// over the cloud's, then the local credentials replace their parts.
pub fn effective(
    cloud: &str,
    local: Option<&str>,
    uid: Option<&str>,
    password: Option<&str>,
) -> String {
    let base = local.filter(|s| !s.trim().is_empty()).unwrap_or(cloud);
    with_credentials(base, uid, password)
}

/// Attributes with which a connection string makes the driver manager or a
/// driver load a library or read/write a file of the string's choosing. The
/// cloud has no business sending them: unixODBC loads `Driver=/path/lib.so`
/// as given (code execution as the service's user), `FILEDSN` reads a DSN
/// file (which may name such a driver), `SAVEFILE` writes the string, password
/// included, to a file; SQLite ODBC's `LoadExt` loads extension libraries and
/// MariaDB Connector/ODBC's `PLUGIN_DIR` picks where auth plugins load from.
const LOADER_KEYS: &[&str] = &["filedsn", "savefile", "loadext", "plugin_dir"];

/// A connection string from the cloud that would make this machine load a
/// library or touch a file the cloud chose.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the connection string from the cloud is refused: {reason}; an admin of this machine can \
     allow it by setting [database] connectionString in the configuration file"
)]
pub struct UnsafeConnectionString {
    /// What is refused, without the attribute's value (it may be a path
    /// with a password-like secret; keys are enough to act on).
    pub reason: String,
}

/// Checks a connection string that came from the cloud: a driver is named by
/// its registered name (`Driver={PostgreSQL Unicode}`, resolved through
/// odbcinst.ini, which only the admin controls), never by a path, and no
/// attribute in [`LOADER_KEYS`] is present. A local `[database]
/// connectionString` is the admin's own choice and is not checked.
pub fn check_from_cloud(conn: &str) -> Result<(), UnsafeConnectionString> {
    for attr in parse(conn) {
        if attr.key.eq_ignore_ascii_case("driver") && attr.value.contains(['/', '\\']) {
            return Err(UnsafeConnectionString {
                reason: "`Driver=` is a file path, not the name of an installed driver".to_owned(),
            });
        }
        if is_key(&attr, LOADER_KEYS) {
            return Err(UnsafeConnectionString {
                reason: format!(
                    "`{}=` makes the driver load or write a local file",
                    attr.key
                ),
            });
        }
    }
    Ok(())
}

/// The string to connect with, from the cloud's and the local `[database]`
/// settings: [`effective`], with the cloud's string checked by
/// [`check_from_cloud`] when it is the one used.
pub fn effective_checked(
    cloud: &str,
    local: Option<&str>,
    uid: Option<&str>,
    password: Option<&str>,
) -> Result<String, UnsafeConnectionString> {
    if local.is_none_or(|s| s.trim().is_empty()) {
        check_from_cloud(cloud)?;
    }
    Ok(effective(cloud, local, uid, password))
}

/// The `Driver={...}` name, when the string names a driver (not a DSN).
pub fn driver_name(conn: &str) -> Option<String> {
    get(conn, "driver").filter(|d| !d.trim().is_empty())
}

/// Driver families we tune for or give install hints for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverKind {
    PostgreSql,
    /// MariaDB Connector/ODBC or MySQL Connector/ODBC.
    MariaDb,
    Sqlite,
    SqlServer,
    Other,
}

impl DriverKind {
    /// Classifies a driver name (`PostgreSQL Unicode`, `ODBC Driver 18 for
    /// SQL Server`, a path to `psqlodbcw.so`...).
    pub fn of(driver: &str) -> DriverKind {
        let d = driver.to_ascii_lowercase();
        if d.contains("postgres") || d.contains("psqlodbc") {
            DriverKind::PostgreSql
        } else if d.contains("mariadb") || d.contains("mysql") || d.contains("maodbc") {
            DriverKind::MariaDb
        } else if d.contains("sqlite") {
            DriverKind::Sqlite
        } else if d.contains("sql server") || d.contains("msodbcsql") {
            DriverKind::SqlServer
        } else {
            DriverKind::Other
        }
    }

    /// The Debian/Ubuntu package that installs this driver.
    pub fn debian_package(self) -> Option<&'static str> {
        match self {
            DriverKind::PostgreSql => Some("odbc-postgresql"),
            DriverKind::MariaDb => Some("odbc-mariadb"),
            DriverKind::Sqlite => Some("libsqliteodbc"),
            DriverKind::SqlServer => Some("msodbcsql18"),
            DriverKind::Other => None,
        }
    }
}

/// The driver family of `conn`, from its `Driver=` (a DSN gives `Other`).
pub fn driver_kind(conn: &str) -> DriverKind {
    driver_name(conn).map_or(DriverKind::Other, |d| DriverKind::of(&d))
}

/// Adds what a driver needs to read large results in bounded memory and long
/// text whole, unless the admin set it. psqlODBC otherwise loads the whole
/// result set into memory (no `UseDeclareFetch`) and cuts text at 8190
/// characters (`MaxLongVarcharSize`). `MaxLongVarcharSize` is set one above
/// `max_text_chars` so that a longer value still overflows our buffer and is
/// counted as truncated instead of arriving silently cut by the driver.
pub fn with_driver_tuning(conn: &str, fetch_rows: usize, max_text_chars: usize) -> String {
    if driver_kind(conn) != DriverKind::PostgreSql {
        return conn.to_string();
    }
    let mut out = conn.to_string();
    let fetch = fetch_rows.max(1).to_string();
    let long = (max_text_chars + 1).to_string();
    for (key, value) in [
        ("UseDeclareFetch", "1"),
        ("Fetch", fetch.as_str()),
        ("MaxLongVarcharSize", long.as_str()),
    ] {
        if get(&out, key).is_none() {
            append(&mut out, key, value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(conn: &str) -> Vec<(String, String)> {
        parse(conn).into_iter().map(|a| (a.key, a.value)).collect()
    }

    #[test]
    fn parses_plain_and_braced_values() {
        assert_eq!(
            kv("Driver={PostgreSQL Unicode};Server=db1; Port = 5432 ;Pwd={a;b}}c};"),
            vec![
                ("Driver".into(), "PostgreSQL Unicode".into()),
                ("Server".into(), "db1".into()),
                ("Port".into(), "5432".into()),
                ("Pwd".into(), "a;b}c".into()),
            ]
        );
        assert_eq!(kv("DSN=acd"), vec![("DSN".into(), "acd".into())]);
        assert_eq!(kv(""), vec![]);
        assert_eq!(kv(";;junk;A=1"), vec![("A".into(), "1".into())]);
        // Unterminated brace: the rest is the value, nothing is lost or panics.
        assert_eq!(
            kv("Uid=x;Pwd={open;Server=y"),
            vec![
                ("Uid".into(), "x".into()),
                ("Pwd".into(), "open;Server=y".into())
            ]
        );
    }

    #[test]
    fn masks_every_password_spelling_and_keeps_the_rest() {
        assert_eq!(
            mask("Driver={MariaDB Unicode};Uid=wfm;PWD=s3cret;Server=h"),
            "Driver={MariaDB Unicode};Uid=wfm;PWD=***;Server=h"
        );
        assert_eq!(
            mask("Server=h;password={x;y}};z};pwd=two"),
            "Server=h;password=***;pwd=***"
        );
        assert_eq!(mask("Pwd="), "Pwd=***");
        assert_eq!(mask("Pwd={never closed;Server=h"), "Pwd=***");
        assert_eq!(mask("DSN=acd"), "DSN=acd");
        assert!(!mask("Uid=a;PassWord = hunter2 ;").contains("hunter2"));
    }

    #[test]
    fn text_after_a_closing_brace_goes_with_its_value() {
        // Found by fuzzing (fuzz/fuzz_targets/protocol.rs): the local password
        // replaced only `{p;w}` and kept the text after it, so the driver got
        // `l0cal-Secret333}d}` as the password.
        let cloud = "Driver={Postgr$eSQL Unicode};Server=db;Uid=u;Pwd={p;w}333}d};";
        let effective = with_credentials(cloud, Some("reader"), Some("l0cal-Secret"));
        assert_eq!(
            effective,
            "Driver={Postgr$eSQL Unicode};Server=db;Uid=reader;Pwd=l0cal-Secret;"
        );
        assert_eq!(get(&effective, "pwd").as_deref(), Some("l0cal-Secret"));
        assert_eq!(
            mask(cloud),
            "Driver={Postgr$eSQL Unicode};Server=db;Uid=u;Pwd=***;"
        );
        assert_eq!(mask("Pwd={a}b"), "Pwd=***");
    }

    #[test]
    fn local_credentials_are_not_swallowed_by_an_unclosed_brace() {
        // Found by fuzzing (fuzz/fuzz_targets/protocol.rs): appended after a
        // `{` that is never closed, the local password became part of the
        // driver's name, which masking does not hide (and a "cannot load
        // driver" message may echo).
        let cloud = "Driver={Pos77777777777777777777777777777777777777777tginterval";
        let effective = with_credentials(cloud, Some("reader"), Some("l0cal-Secret"));
        assert_eq!(
            effective,
            "Driver={Pos77777777777777777777777777777777777777777tginterval};\
             UID=reader;PWD=l0cal-Secret;"
        );
        assert_eq!(secrets(&effective), ["l0cal-Secret"]);
        assert!(!mask(&effective).contains("l0cal-Secret"));
        let tuned = with_driver_tuning("Driver={PostgreSQL Unicode", 100, 10);
        assert_eq!(get(&tuned, "Fetch").as_deref(), Some("100"), "{tuned}");
    }

    #[test]
    fn scrubs_echoed_passwords() {
        assert_eq!(
            scrub("login failed for s3cret", "Uid=a;Pwd=s3cret"),
            "login failed for ***"
        );
        assert_eq!(scrub("no secret", "Uid=a;Pwd="), "no secret");
    }

    #[test]
    fn credentials_replace_their_own_part() {
        let cloud = "Driver={PostgreSQL Unicode};Server=h;Username=cloud;Pwd=cloudpw;";
        assert_eq!(
            with_credentials(cloud, Some("local"), None),
            "Driver={PostgreSQL Unicode};Server=h;Username=local;Pwd=cloudpw;"
        );
        assert_eq!(
            with_credentials(cloud, None, Some("p;w}")),
            "Driver={PostgreSQL Unicode};Server=h;Username=cloud;Pwd={p;w}}};"
        );
        assert_eq!(
            with_credentials("Driver={X};Server=h", Some("u"), Some("p")),
            "Driver={X};Server=h;UID=u;PWD=p;"
        );
        // Duplicates are collapsed so the driver cannot pick the cloud's one.
        assert_eq!(
            with_credentials("Pwd=a;Server=h;Password=b", None, Some("c")),
            "Pwd=c;Server=h"
        );
        let replaced = with_credentials(cloud, None, Some("p;w}"));
        assert_eq!(get(&replaced, "pwd").as_deref(), Some("p;w}"));
    }

    #[test]
    fn local_connection_string_wins() {
        assert_eq!(effective("DSN=cloud", None, None, None), "DSN=cloud");
        assert_eq!(
            effective("DSN=cloud", Some("DSN=local"), None, None),
            "DSN=local"
        );
        assert_eq!(effective("DSN=cloud", Some("  "), None, None), "DSN=cloud");
        assert_eq!(
            effective("DSN=cloud;Uid=a", Some("DSN=local;Uid=b"), None, Some("p")),
            "DSN=local;Uid=b;PWD=p;"
        );
    }

    #[test]
    fn the_cloud_cannot_name_a_driver_library_or_a_file_to_load() {
        for ok in [
            "Driver={PostgreSQL Unicode};Server=h;Pwd=a/b\\c",
            "DSN=acd",
            "Driver={SQLite3};Database=/var/lib/acd/acd.db",
        ] {
            assert_eq!(check_from_cloud(ok), Ok(()), "{ok}");
        }
        for refused in [
            "Driver=/tmp/evil.so;Server=h",
            "driver={/usr/lib/x86_64-linux-gnu/odbc/psqlodbcw.so}",
            "Driver=C:\\evil\\odbc.dll",
            "Driver=..\\evil.dll",
            "DSN=acd;FILEDSN=/tmp/x.dsn",
            "Driver={PostgreSQL Unicode};SaveFile=/etc/cron.d/x",
            "Driver={SQLite3};Database=/tmp/a.db;LoadExt=/tmp/evil.so",
            "Driver={MariaDB Unicode};plugin_dir=/tmp",
        ] {
            let e = check_from_cloud(refused).unwrap_err();
            assert!(
                e.to_string().contains("[database] connectionString"),
                "{refused}: {e}"
            );
            assert!(!e.to_string().contains("/tmp"), "no value echoed: {e}");
        }
        // The admin's own string is trusted; the cloud's is checked even
        // when only the local credentials replace parts of it.
        assert_eq!(
            effective_checked("Driver=/tmp/evil.so", Some("DSN=acd"), None, None).as_deref(),
            Ok("DSN=acd")
        );
        assert!(effective_checked("Driver=/tmp/evil.so", None, Some("u"), Some("p")).is_err());
        assert!(effective_checked("Driver=/tmp/evil.so", Some(" "), None, None).is_err());
    }

    #[test]
    fn detects_driver_families() {
        assert_eq!(
            driver_name("driver={PostgreSQL Unicode};x=1").as_deref(),
            Some("PostgreSQL Unicode")
        );
        assert_eq!(driver_name("DSN=acd"), None);
        assert_eq!(driver_kind("Driver={MariaDB Unicode}"), DriverKind::MariaDb);
        assert_eq!(
            driver_kind("Driver={MySQL ODBC 8.0 Unicode Driver}"),
            DriverKind::MariaDb
        );
        assert_eq!(driver_kind("Driver={SQLite3}"), DriverKind::Sqlite);
        assert_eq!(
            driver_kind("Driver={ODBC Driver 18 for SQL Server}"),
            DriverKind::SqlServer
        );
        assert_eq!(
            driver_kind("Driver=/usr/lib/psqlodbcw.so"),
            DriverKind::PostgreSql
        );
        assert_eq!(driver_kind("Driver={Acme}"), DriverKind::Other);
    }

    #[test]
    fn tunes_psqlodbc_unless_the_admin_did() {
        assert_eq!(
            with_driver_tuning("Driver={PostgreSQL Unicode};Server=h", 1000, 4096),
            "Driver={PostgreSQL Unicode};Server=h;UseDeclareFetch=1;Fetch=1000;MaxLongVarcharSize=4097;"
        );
        assert_eq!(
            with_driver_tuning(
                "Driver={PostgreSQL Unicode};usedeclarefetch=0;FETCH=5;",
                1000,
                10
            ),
            "Driver={PostgreSQL Unicode};usedeclarefetch=0;FETCH=5;MaxLongVarcharSize=11;"
        );
        assert_eq!(
            with_driver_tuning("Driver={SQLite3};", 1000, 10),
            "Driver={SQLite3};"
        );
        assert_eq!(with_driver_tuning("DSN=pg", 1000, 10), "DSN=pg");
    }
}
