//! The ODBC reading layer: connecting (read-only where the driver allows),
//! errors an admin can act on, and streaming a query result into CSV in
//! bounded memory.
//!
//! Everything here BLOCKS (odbc-api is synchronous): call it on a thread of
//! its own, never on the actor runtime.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{Datelike, NaiveDateTime, Timelike};
use odbc_api::buffers::{BufferDesc, ColumnarDynBuffer};
use odbc_api::handles::Record;
use odbc_api::parameter::WithDataType;
use odbc_api::sys::{ConnectionAttribute, Pointer, Timestamp, IS_UINTEGER};
use odbc_api::{
    Connection, ConnectionOptions, Cursor, DataType, DriverSpecificConnectionOptions, Environment,
    IntoParameter, ResultSetMetadata, SetConnectionAttributeArgs,
};

use super::clock::{self, ClockAnswer, ClockQuery};
use super::connection_string::{self, DriverKind};
use crate::protocol::ImportType;

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub login_timeout: Duration,
    /// Per statement; a hung query must not block an importer forever.
    pub query_timeout: Duration,
    /// Ask the driver for a read-only session (the SQL comes from the cloud).
    pub read_only: bool,
    /// Rows per server round trip where the driver lets us choose (psqlODBC `Fetch`).
    pub fetch_rows: usize,
    /// Longest text (UTF-16 units) read whole; also raises psqlODBC's 8190 limit.
    pub max_text_chars: usize,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            login_timeout: Duration::from_secs(15),
            query_timeout: Duration::from_secs(300),
            read_only: true,
            fetch_rows: 2_000,
            max_text_chars: 4096,
        }
    }
}

/// What became of the read-only request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOnly {
    /// The session itself was made read-only by SQL (PostgreSQL, MariaDB,
    /// SQLite): the server refuses writes.
    Session,
    /// `SQL_ATTR_ACCESS_MODE = SQL_MODE_READ_ONLY` was accepted. Whether the
    /// driver enforces it is its own business (see ARCHITECTURE.md notes).
    Requested,
    /// The driver refused the attribute; the session can write.
    NotSupported,
    /// Not asked for.
    Off,
}

/// Errors from the ODBC layer, each written for an admin, with a `hint()`.
/// No message ever contains a password: connection strings are masked and
/// driver messages scrubbed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("the ODBC driver manager could not be initialised: {message}")]
    Environment { message: String },
    #[error("ODBC driver {driver} is not installed; installed drivers: {}", list_or_none(.installed))]
    DriverNotInstalled {
        driver: String,
        kind: DriverKind,
        installed: Vec<String>,
    },
    #[error("ODBC data source name (DSN) {dsn:?} is not defined on this machine")]
    DataSourceNotFound { dsn: String },
    #[error("the database refused the login ({connection}): {message}")]
    Login { connection: String, message: String },
    #[error("the database is down or unreachable ({connection}): {message}")]
    Unreachable { connection: String, message: String },
    #[error("could not connect to the database ({connection}): [{state}] {message}")]
    Connect {
        connection: String,
        state: String,
        message: String,
    },
    #[error("the query did not finish within {seconds} s and was cancelled")]
    QueryTimeout { seconds: u64 },
    #[error("query for import '{import}' lacks column '{column}'; it returns: {}", .found.join(", "))]
    MissingColumn {
        import: String,
        column: String,
        found: Vec<String>,
    },
    #[error("the database rejected the query: [{state}] {message}")]
    BadSql { state: String, message: String },
    #[error("the query tried to change data in a read-only session: {message}")]
    ReadOnlyViolation { message: String },
    #[error("the query returned no result set (is it a SELECT?)")]
    NoResultSet,
    #[error("the database connection was lost: {message}")]
    ConnectionLost { message: String },
    #[error("ODBC error during {context}: [{state}] {message}")]
    Odbc {
        context: &'static str,
        state: String,
        message: String,
    },
    #[error("could not write the query result: {0}")]
    Write(#[from] std::io::Error),
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items.join(", ")
    }
}

impl DbError {
    /// What the admin can do about it.
    pub fn hint(&self) -> String {
        match self {
            DbError::Environment { .. } => {
                "install the ODBC driver manager (Debian: apt install unixodbc; Windows ships one)"
                    .into()
            }
            DbError::DriverNotInstalled { kind, .. } => {
                let package = kind.debian_package().map_or_else(
                    || "install the vendor's ODBC driver".to_string(),
                    |p| format!("on Debian/Ubuntu: apt install {p}"),
                );
                format!(
                    "{package}; on Windows install the 64-bit driver and check it in the 64-bit \
                     ODBC Data Source Administrator (Drivers tab); the name in Driver={{...}} must \
                     match an installed driver exactly"
                )
            }
            DbError::DataSourceNotFound { .. } => {
                "define the DSN as a system DSN (odbc.ini, or the 64-bit ODBC Data Source \
                 Administrator on Windows), or use Driver={...} in the connection string"
                    .into()
            }
            DbError::Login { .. } => {
                "check the user and password: in the integration's connection string in injixo, \
                 or locally in [database] uid / password"
                    .into()
            }
            DbError::Unreachable { .. } => {
                "check that the database server runs and that host, port and firewall let this \
                 machine reach it"
                    .into()
            }
            DbError::Connect { .. } => {
                "check the connection string (server, port, database name) against the database"
                    .into()
            }
            DbError::QueryTimeout { .. } => {
                "the database took too long: add an index on the queried time column, or ask \
                 for smaller windows"
                    .into()
            }
            DbError::MissingColumn { column, .. } => format!(
                "give the column the alias the import needs in the query, e.g. `... AS {column}`"
            ),
            DbError::BadSql { .. } => {
                "the query comes from the integration's settings in injixo: run it in the \
                 database's own client to correct it"
                    .into()
            }
            DbError::ReadOnlyViolation { .. } => {
                "Cloud Link only reads; change the query to a SELECT".into()
            }
            DbError::NoResultSet => "the query must be a SELECT returning rows".into(),
            DbError::ConnectionLost { .. } => {
                "the connection will be reopened on the next run; if this repeats, check the \
                 network and the database server's logs"
                    .into()
            }
            DbError::Odbc { .. } => "see the driver's message above".into(),
            DbError::Write(_) => "check free disk space in the state folder".into(),
        }
    }

    /// Worth retrying later without a change of configuration.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DbError::Unreachable { .. }
                | DbError::ConnectionLost { .. }
                | DbError::QueryTimeout { .. }
        )
    }
}

/// The process-wide ODBC environment. One per process is what the driver
/// managers expect; it lives as long as the process.
pub fn environment() -> Result<&'static Environment, DbError> {
    static ENV: OnceLock<Environment> = OnceLock::new();
    if let Some(env) = ENV.get() {
        return Ok(env);
    }
    let env = Environment::new().map_err(|e| DbError::Environment {
        message: e.to_string(),
    })?;
    Ok(ENV.get_or_init(|| env))
}

/// Names of the installed ODBC drivers (as usable in `Driver={...}`).
pub fn installed_drivers() -> Result<Vec<String>, DbError> {
    let env = environment()?;
    let drivers = env
        .drivers()
        .map_err(|e| odbc_error("listing drivers", e, ""))?;
    Ok(drivers.into_iter().map(|d| d.description).collect())
}

/// A blocking, open ODBC connection. Keep it open between runs and check
/// `is_dead()` before using it again.
pub struct DbConnection {
    conn: Connection<'static>,
    masked: String,
    driver: Option<String>,
    kind: DriverKind,
    read_only: ReadOnly,
    query_timeout: Duration,
    max_text_chars: usize,
    /// Which clock statement this connection answers, once known.
    clock: std::cell::RefCell<ClockState>,
}

/// What asking the database for its time gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClockRead {
    Answer(ClockAnswer),
    /// No statement worked: each with the database's or driver's answer.
    Unknown {
        tried: String,
    },
}

#[derive(Debug, Clone)]
enum ClockState {
    Untried,
    Works(ClockQuery),
    Unknown(String),
}

impl std::fmt::Debug for DbConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConnection")
            .field("connection", &self.masked)
            .field("read_only", &self.read_only)
            .finish()
    }
}

/// SQL_ATTR_ACCESS_MODE = SQL_MODE_READ_ONLY, set before connecting: the
/// handle of an open `Connection` is not reachable through odbc-api, and the
/// ODBC spec allows this attribute before the connection is made.
struct ReadOnlyAttribute;

impl<'c> DriverSpecificConnectionOptions<'c> for ReadOnlyAttribute {
    fn attributes(&self) -> impl Iterator<Item = SetConnectionAttributeArgs<'c>> {
        const SQL_MODE_READ_ONLY: usize = 1;
        // Safety: ACCESS_MODE is a standard integer attribute; the value is
        // passed by value, no memory is referenced.
        std::iter::once(unsafe {
            SetConnectionAttributeArgs::new(
                ConnectionAttribute::ACCESS_MODE,
                SQL_MODE_READ_ONLY as Pointer,
                IS_UINTEGER,
            )
        })
    }
}

/// The statement that makes a session refuse writes, per engine.
fn read_only_sql(kind: DriverKind) -> Option<&'static str> {
    match kind {
        DriverKind::PostgreSql => Some("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"),
        DriverKind::MariaDb => Some("SET SESSION TRANSACTION READ ONLY"),
        DriverKind::Sqlite => Some("PRAGMA query_only = ON"),
        DriverKind::SqlServer | DriverKind::Other => None,
    }
}

/// The statement that makes the server itself end queries running longer
/// than the query timeout, for drivers that accept SQL_ATTR_QUERY_TIMEOUT
/// and ignore it (measured: MariaDB Connector/ODBC 3.1 let a 10 s query
/// with a 1 s timeout run to its end). psqlODBC maps the attribute to
/// PostgreSQL's statement_timeout by itself.
fn query_timeout_sql(kind: DriverKind, timeout: Duration) -> Option<String> {
    match kind {
        DriverKind::MariaDb => Some(format!(
            "SET SESSION max_statement_time = {}",
            timeout.as_secs().max(1)
        )),
        _ => None,
    }
}

/// SQLSTATEs meaning "this driver does not do that".
fn is_not_supported(state: &str) -> bool {
    matches!(state, "HYC00" | "HY092" | "HY024" | "IM001")
}

impl DbConnection {
    /// Connects with `conn` (the effective string: see
    /// `connection_string::effective`), adding driver tuning.
    pub fn connect(conn: &str, options: &ConnectOptions) -> Result<DbConnection, DbError> {
        let env = environment()?;
        let tuned =
            connection_string::with_driver_tuning(conn, options.fetch_rows, options.max_text_chars);
        let conn_options = ConnectionOptions {
            login_timeout_sec: Some(options.login_timeout.as_secs().max(1) as u32),
            packet_size: None,
        };
        let mut read_only = ReadOnly::Off;
        let connection = if options.read_only {
            // Safety: ACCESS_MODE is standard ODBC; a driver that does not
            // know it answers HYC00/HY092, handled below.
            let first = unsafe {
                env.connect_with_connection_string_and_driver_specific_options(
                    &tuned,
                    conn_options,
                    ReadOnlyAttribute,
                )
            };
            match first {
                Ok(c) => {
                    read_only = ReadOnly::Requested;
                    c
                }
                Err(e) if diag(&e).is_some_and(|(s, _, _)| is_not_supported(&s)) => {
                    read_only = ReadOnly::NotSupported;
                    env.connect_with_connection_string(&tuned, conn_options)
                        .map_err(|e| connect_error(e, conn))?
                }
                Err(e) => return Err(connect_error(e, conn)),
            }
        } else {
            env.connect_with_connection_string(&tuned, conn_options)
                .map_err(|e| connect_error(e, conn))?
        };
        if options.read_only {
            if let Some(sql) = read_only_sql(connection_string::driver_kind(conn)) {
                // Measured: psqlODBC 13, MariaDB Connector/ODBC 3.1 and
                // sqliteodbc accept SQL_ATTR_ACCESS_MODE yet still write, so
                // the session is made read-only in SQL where the engine can.
                connection
                    .execute(sql, (), None)
                    .map_err(|e| odbc_error("making the session read-only", e, conn))?;
                read_only = ReadOnly::Session;
            }
        }
        if let Some(sql) =
            query_timeout_sql(connection_string::driver_kind(conn), options.query_timeout)
        {
            connection
                .execute(&sql, (), None)
                .map_err(|e| odbc_error("setting the query timeout", e, conn))?;
        }
        Ok(DbConnection {
            conn: connection,
            masked: connection_string::mask(conn),
            driver: connection_string::driver_name(conn),
            kind: connection_string::driver_kind(conn),
            read_only,
            query_timeout: options.query_timeout,
            max_text_chars: options.max_text_chars,
            clock: std::cell::RefCell::new(ClockState::Untried),
        })
    }

    /// The database's current time: one short round trip, with this
    /// computer's clock just before and after it. The statement is chosen by
    /// `db::clock::clock_queries`; the first that answers is remembered for
    /// this connection, and when none does, `Unknown` says why and later
    /// calls on this connection do not ask again. A lost connection is an
    /// error, not `Unknown`.
    pub fn clock(&self) -> Result<ClockRead, DbError> {
        let candidates: Vec<ClockQuery> = match &*self.clock.borrow() {
            ClockState::Works(query) => vec![*query],
            ClockState::Unknown(tried) => {
                return Ok(ClockRead::Unknown {
                    tried: tried.clone(),
                })
            }
            ClockState::Untried => clock::clock_queries(self.kind).to_vec(),
        };
        let mut tried = Vec::new();
        for query in candidates {
            match self.ask_clock(query) {
                Ok(answer) => {
                    *self.clock.borrow_mut() = ClockState::Works(query);
                    return Ok(ClockRead::Answer(answer));
                }
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => tried.push(format!("`{}`: {e}", query.sql)),
            }
        }
        let tried = tried.join("; ");
        *self.clock.borrow_mut() = ClockState::Unknown(tried.clone());
        Ok(ClockRead::Unknown { tried })
    }

    fn ask_clock(&self, query: ClockQuery) -> Result<ClockAnswer, DbError> {
        let context = "asking the database for its time";
        let timeout = Some(self.query_timeout.as_secs().max(1) as usize);
        let asked_at = chrono::Utc::now();
        let mut cursor = self
            .conn
            .execute(query.sql, (), timeout)
            .map_err(|e| query_error(e, self, context))?
            .ok_or(DbError::NoResultSet)?;
        let mut text = Vec::new();
        let mut row = cursor
            .next_row()
            .map_err(|e| query_error(e, self, context))?
            .ok_or(DbError::NoResultSet)?;
        let present = row
            .get_text(1, &mut text)
            .map_err(|e| query_error(e, self, context))?;
        let answered_at = chrono::Utc::now();
        if !present {
            return Err(DbError::Odbc {
                context,
                state: String::new(),
                message: "the answer was NULL".to_owned(),
            });
        }
        Ok(ClockAnswer {
            text: String::from_utf8_lossy(&text).into_owned(),
            zone: query.zone,
            asked_at,
            answered_at,
        })
    }

    /// `true` when the driver knows the connection is gone (cheap: no round
    /// trip). Drivers that do not track it answer `false`; a failing read
    /// then reports `ConnectionLost`.
    pub fn is_dead(&self) -> bool {
        self.conn.is_dead().unwrap_or(true)
    }

    pub fn read_only(&self) -> ReadOnly {
        self.read_only
    }

    /// The driver named in the connection string (`None` for a DSN).
    pub fn driver(&self) -> Option<&str> {
        self.driver.as_deref()
    }

    /// The connection string with passwords masked, for logs.
    pub fn masked_connection_string(&self) -> &str {
        &self.masked
    }

    pub fn query_timeout(&self) -> Duration {
        self.query_timeout
    }

    /// The underlying connection, for statements this module does not cover
    /// (tests, diagnostics).
    pub fn raw(&self) -> &Connection<'static> {
        &self.conn
    }
}

/// SQLSTATE, native error and message of an odbc-api error.
fn diag(e: &odbc_api::Error) -> Option<(String, i32, String)> {
    let record: &Record = match e {
        odbc_api::Error::Diagnostics { record, .. }
        | odbc_api::Error::UnsupportedOdbcApiVersion(record)
        | odbc_api::Error::InvalidRowArraySize { record, .. }
        | odbc_api::Error::UnableToRepresentNull(record)
        | odbc_api::Error::OracleOdbcDriverDoesNotSupport64Bit(record) => record,
        _ => return None,
    };
    let message = odbc_api::handles::slice_to_cow_utf8(&record.message)
        .trim()
        .to_string();
    Some((
        record.state.as_str().to_string(),
        record.native_error,
        message,
    ))
}

fn odbc_error(context: &'static str, e: odbc_api::Error, conn: &str) -> DbError {
    match diag(&e) {
        Some((state, _, message)) => DbError::Odbc {
            context,
            state,
            message: connection_string::scrub(&message, conn),
        },
        None => DbError::Odbc {
            context,
            state: String::new(),
            message: connection_string::scrub(&e.to_string(), conn),
        },
    }
}

/// Classifies a failed connect by SQLSTATE (plus the native codes and
/// messages of drivers that report everything as 08001 or HY000).
fn connect_error(e: odbc_api::Error, conn: &str) -> DbError {
    let connection = connection_string::mask(conn);
    let Some((state, native, message)) = diag(&e) else {
        return odbc_error("connect", e, conn);
    };
    let message = connection_string::scrub(&message, conn);
    let lower = message.to_ascii_lowercase();
    let kind = connection_string::driver_kind(conn);
    // unixODBC: IM002 for an unknown name, or 01000 "Can't open lib" when
    // it takes the name for a library path.
    let no_driver = state == "IM002" || state == "IM003" || lower.contains("can't open lib");
    if no_driver {
        if let Some(driver) = connection_string::driver_name(conn) {
            let installed = installed_drivers().unwrap_or_default();
            if state == "IM003" || !installed.iter().any(|d| d.eq_ignore_ascii_case(&driver)) {
                return DbError::DriverNotInstalled {
                    driver,
                    kind,
                    installed,
                };
            }
        } else if let Some(dsn) = connection_string::get(conn, "dsn") {
            return DbError::DataSourceNotFound { dsn };
        }
    }
    // psqlODBC reports a refused password as 08001; MariaDB uses 28000 with
    // native 1045 (and 1698 for a socket-auth user).
    let login = state.starts_with("28")
        || matches!(native, 1045 | 1698)
        || lower.contains("authentication failed")
        || lower.contains("access denied")
        || lower.contains("no pg_hba.conf entry");
    if login {
        return DbError::Login {
            connection,
            message,
        };
    }
    // MariaDB says HY000 with native 2002/2003/2005/2013 for "can't connect".
    let unreachable = matches!(
        state.as_str(),
        "08001" | "08S01" | "08004" | "HYT00" | "HYT01"
    ) || matches!(native, 2002 | 2003 | 2005 | 2006 | 2013)
        || lower.contains("could not connect")
        || lower.contains("connection refused")
        || lower.contains("can't connect");
    if unreachable {
        return DbError::Unreachable {
            connection,
            message,
        };
    }
    DbError::Connect {
        connection,
        state,
        message,
    }
}

/// Classifies a failed execute or fetch.
fn query_error(e: odbc_api::Error, conn: &DbConnection, context: &'static str) -> DbError {
    let Some((state, native, message)) = diag(&e) else {
        return DbError::Odbc {
            context,
            state: String::new(),
            message: e.to_string(),
        };
    };
    match state.as_str() {
        "HYT00" | "HYT01" => DbError::QueryTimeout {
            seconds: conn.query_timeout.as_secs(),
        },
        // psqlODBC enforces the timeout with the server's statement_timeout,
        // whose cancel comes back as 57014 "canceling statement due to
        // statement timeout"; MariaDB's max_statement_time as native 1969.
        "57014" if message.contains("timeout") => DbError::QueryTimeout {
            seconds: conn.query_timeout.as_secs(),
        },
        _ if native == 1969 => DbError::QueryTimeout {
            seconds: conn.query_timeout.as_secs(),
        },
        "25006" => DbError::ReadOnlyViolation { message },
        // 07002: the query's `?` count does not match the parameters bound.
        s if s.starts_with("42") || s == "37000" || s == "07002" || s == "22007" => {
            DbError::BadSql { state, message }
        }
        s if s.starts_with("08") || matches!(native, 2006 | 2013) => {
            DbError::ConnectionLost { message }
        }
        // MariaDB 1792: "Cannot execute statement in a READ ONLY transaction".
        _ if native == 1792 => DbError::ReadOnlyViolation { message },
        _ if message.contains("readonly database") || message.contains("read-only") => {
            DbError::ReadOnlyViolation { message }
        }
        // SQLite has no SQLSTATEs of its own: syntax errors and unknown
        // tables come as HY000 with the engine's message.
        _ if message.contains("syntax error") || message.contains("no such ") => {
            DbError::BadSql { state, message }
        }
        _ => DbError::Odbc {
            context,
            state,
            message,
        },
    }
}

/// Memory and size limits of one read.
#[derive(Debug, Clone)]
pub struct ReadLimits {
    /// Bytes of fetch buffers; the batch size is this divided by the row width.
    pub buffer_bytes: usize,
    /// Longest text value (UTF-16 units) written whole; longer ones are cut
    /// and counted in `ReadSummary::truncated`.
    pub max_text_chars: usize,
    /// Upper bound of rows per batch, however narrow a row.
    pub max_batch_rows: usize,
    /// Rows kept in `ReadSummary::first_rows` for verbose logging.
    pub sample_rows: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            buffer_bytes: 8 << 20,
            max_text_chars: 4096,
            max_batch_rows: 10_000,
            sample_rows: 10,
        }
    }
}

/// What a read produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadSummary {
    pub rows: u64,
    /// Lower-case column names, in the query's order (the CSV header).
    pub columns: Vec<String>,
    /// Column → number of values cut at `max_text_chars`.
    pub truncated: BTreeMap<String, u64>,
    /// Up to `sample_rows` rows as written (NULL as "").
    pub first_rows: Vec<Vec<String>>,
    /// Batch size the buffers were sized for.
    pub batch_rows: usize,
}

impl ReadSummary {
    /// The warning to log (and show in status) when values were cut.
    pub fn warning(&self) -> Option<String> {
        if self.truncated.is_empty() {
            return None;
        }
        let parts: Vec<String> = self
            .truncated
            .iter()
            .map(|(c, n)| format!("{c}: {n}"))
            .collect();
        Some(format!(
            "text values longer than the limit were cut (values per column: {})",
            parts.join(", ")
        ))
    }
}

/// How a column is fetched and written.
#[derive(Debug, Clone, Copy)]
enum ColumnKind {
    /// UTF-8 text fetched as SQL_C_CHAR, from drivers measured to deliver
    /// UTF-8 there whatever the locale (see `fetches_utf8`). The buffer has
    /// room for `4 * limit + 1` bytes: a value that fills it has more than
    /// `limit` characters, so a cut is always noticed.
    Utf8Text {
        limit: usize,
    },
    /// UTF-16 text with room for `limit + 1` units: a value filling the
    /// extra unit is longer than `limit`, i.e. truncated (odbc-api's slices
    /// do not expose per-row indicators).
    WideText {
        limit: usize,
    },
    /// Integers of at most 32 bits (signed or not), fetched as i64: the
    /// driver's integer conversion is cheaper than its text one, and no
    /// such value can overflow an i64.
    Integer,
    /// Binary values written as lower-case hex, as psqlODBC does for bytea
    /// and as ODBC specifies for binary-to-text; fetched raw because
    /// MariaDB's driver hands the bytes out as "text" (cut at a NUL).
    /// `limit` bytes are written whole (hex: twice that in characters).
    Binary {
        limit: usize,
    },
    /// SQL BIT as `1` or `0` (MariaDB's driver gives a raw 0x01 as text).
    Bit,
    Timestamp,
    Date,
}

impl ColumnKind {
    fn buffer(self) -> BufferDesc {
        match self {
            ColumnKind::Utf8Text { limit } => BufferDesc::Text {
                max_str_len: utf8_buffer_len(limit),
            },
            ColumnKind::WideText { limit } => BufferDesc::WText {
                max_str_len: limit + 1,
            },
            ColumnKind::Integer => BufferDesc::I64 { nullable: true },
            ColumnKind::Binary { limit } => BufferDesc::Binary {
                max_bytes: limit + 1,
            },
            // As an integer: MariaDB Connector/ODBC 3.1 answers every
            // bound SQL_C_BIT value with NULL (measured).
            ColumnKind::Bit => BufferDesc::I64 { nullable: true },
            ColumnKind::Timestamp => BufferDesc::Timestamp { nullable: true },
            ColumnKind::Date => BufferDesc::Date { nullable: true },
        }
    }

    /// Bytes of fetch buffer one row of this column takes.
    fn row_bytes(self) -> usize {
        let indicator = std::mem::size_of::<isize>();
        indicator
            + match self {
                ColumnKind::Utf8Text { limit } => utf8_buffer_len(limit) + 1,
                ColumnKind::WideText { limit } => (limit + 2) * 2,
                ColumnKind::Integer => 8,
                ColumnKind::Binary { limit } => limit + 1,
                ColumnKind::Bit => 8,
                ColumnKind::Timestamp => std::mem::size_of::<Timestamp>(),
                ColumnKind::Date => 6,
            }
    }
}

/// The longest value (in characters) a text-fetched column is read whole
/// up to; longer ones are cut and counted. Sized from what the driver
/// declares where that is a real bound, because the fetch buffer of a batch
/// is rows × this.
fn text_limit(data_type: &DataType, kind: DriverKind, cap: usize) -> usize {
    // Floor for numbers and the like: an unconstrained PostgreSQL
    // `numeric` is declared with a default precision its values can exceed.
    const NON_TEXT_FLOOR: usize = 64;
    let limit = match data_type {
        // SQLite declares types but keeps values of any length and kind.
        _ if kind == DriverKind::Sqlite => cap,
        // Twice the declared length: drivers disagree on whether it counts
        // characters or bytes.
        DataType::Char { length }
        | DataType::WChar { length }
        | DataType::Varchar { length }
        | DataType::WVarchar { length }
        | DataType::LongVarchar { length }
        | DataType::WLongVarchar { length } => length.map_or(cap, |n| n.get().saturating_mul(2)),
        DataType::Unknown | DataType::Other { .. } => cap,
        other => other
            .display_size()
            .map_or(cap, |n| n.get().saturating_mul(2).max(NON_TEXT_FLOOR)),
    };
    limit.clamp(1, cap)
}

/// Bytes that always hold `limit` characters of UTF-8, plus one byte more
/// so that a longer value is seen to be longer.
fn utf8_buffer_len(limit: usize) -> usize {
    limit * 4 + 1
}

/// Drivers that hand out UTF-8 for SQL_C_CHAR whatever the process's
/// locale (measured with LANG=C and C.UTF-8 on psqlODBC 13 "Unicode",
/// MariaDB Connector/ODBC 3.1 and sqliteodbc 0.9998). Narrow fetching
/// skips a UTF-8 → UTF-16 → UTF-8 round trip per value: about a fifth of
/// the read's CPU. On Windows SQL_C_CHAR is the ANSI code page, and other
/// drivers are not known: wide it is.
fn fetches_utf8(kind: DriverKind) -> bool {
    cfg!(not(windows))
        && matches!(
            kind,
            DriverKind::PostgreSql | DriverKind::MariaDb | DriverKind::Sqlite
        )
}

/// Where `text` must be cut so that it keeps at most `limit` characters;
/// `None` when it is short enough.
fn cut_after_chars(text: &str, limit: usize) -> Option<usize> {
    // Fewer bytes than the limit means fewer characters too.
    if text.len() <= limit {
        return None;
    }
    text.char_indices().nth(limit).map(|(at, _)| at)
}

/// The UTF-8 text of a fetched value, cut at `limit` characters; the flag
/// says it was cut. A value that filled the buffer was cut by the driver,
/// maybe inside a character: the partial character is dropped. Invalid
/// UTF-8 (a driver not keeping its word) becomes U+FFFD, never a panic.
fn utf8_field(bytes: &[u8], limit: usize) -> (std::borrow::Cow<'_, str>, bool) {
    let filled = bytes.len() >= utf8_buffer_len(limit);
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(e) if filled && e.error_len().is_none() => {
            // Only the last character is incomplete: the buffer's cut.
            std::borrow::Cow::Borrowed(
                std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default(),
            )
        }
        Err(_) => String::from_utf8_lossy(bytes),
    };
    match cut_after_chars(&text, limit) {
        Some(at) => {
            let cut = match text {
                std::borrow::Cow::Borrowed(t) => std::borrow::Cow::Borrowed(&t[..at]),
                std::borrow::Cow::Owned(mut t) => {
                    t.truncate(at);
                    std::borrow::Cow::Owned(t)
                }
            };
            (cut, true)
        }
        None => (text, filled),
    }
}

fn to_sql_timestamp(t: NaiveDateTime) -> Timestamp {
    Timestamp {
        year: t.year() as i16,
        month: t.month() as u16,
        day: t.day() as u16,
        hour: t.hour() as u16,
        minute: t.minute() as u16,
        second: t.second() as u16,
        fraction: 0,
    }
}

fn import_name(import: ImportType) -> &'static str {
    match import {
        ImportType::Interval => "interval",
        ImportType::Contact => "contact",
        ImportType::AgentStatus => "agent_status",
    }
}

/// Runs `sql` (with the window's start and end bound to its two `?` as SQL
/// timestamps, when given) and streams the result into `sink` as RFC 4180
/// UTF-8 CSV: a header of the lower-case column names in the query's order,
/// timestamps as `YYYY-MM-DD HH:MM:SS` (fractions cut, never rounded, so a
/// row stays inside its window), dates as `YYYY-MM-DD`, NULL as an empty
/// field, everything else as the driver's text. Nothing is written when a
/// required column is missing.
pub fn read_to_csv(
    conn: &DbConnection,
    sql: &str,
    params: Option<(NaiveDateTime, NaiveDateTime)>,
    import_type: ImportType,
    sink: &mut impl Write,
    limits: &ReadLimits,
) -> Result<ReadSummary, DbError> {
    let timeout = Some(conn.query_timeout.as_secs().max(1) as usize);
    let cursor = match params {
        // SQLite has no timestamp type: values are text compared as text,
        // and sqliteodbc renders a bound timestamp with `.000`, which would
        // move both window edges. Bind the text a stored value has.
        Some((start, end)) if conn.kind == DriverKind::Sqlite => {
            let fmt = |t: NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S").to_string();
            let (start, end) = (fmt(start).into_parameter(), fmt(end).into_parameter());
            conn.conn.execute(sql, (&start, &end), timeout)
        }
        Some((start, end)) => {
            // Precision 0: whole seconds, which every driver accepts (SQL
            // Server rejects a precision above its column's).
            let param = |t| WithDataType {
                value: to_sql_timestamp(t),
                data_type: DataType::Timestamp { precision: 0 },
            };
            let (start, end) = (param(start), param(end));
            conn.conn.execute(sql, (&start, &end), timeout)
        }
        None => conn.conn.execute(sql, (), timeout),
    }
    .map_err(|e| query_error(e, conn, "executing the query"))?;
    let mut cursor = cursor.ok_or(DbError::NoResultSet)?;

    let meta_err = |e| query_error(e, conn, "reading the result's columns");
    let count = cursor.num_result_cols().map_err(meta_err)? as u16;
    let mut columns = Vec::with_capacity(count as usize);
    let mut kinds = Vec::with_capacity(count as usize);
    // Never above the connection's limit: psqlODBC cuts text at that limit
    // + 1 itself, which is only detectable while our buffer is smaller.
    let cap = limits.max_text_chars.min(conn.max_text_chars).max(1);
    let utf8 = fetches_utf8(conn.kind);
    // SQLite keeps any value in an INTEGER (or BLOB, or BIT) column ('n/a'
    // too): its text is the only faithful form there.
    let typed_integers = matches!(
        conn.kind,
        DriverKind::PostgreSql | DriverKind::MariaDb | DriverKind::SqlServer
    );
    for i in 1..=count {
        columns.push(cursor.col_name(i).map_err(meta_err)?.to_lowercase());
        let kind = match cursor.col_data_type(i).map_err(meta_err)? {
            DataType::Timestamp { .. } => ColumnKind::Timestamp,
            DataType::Date => ColumnKind::Date,
            DataType::TinyInt | DataType::SmallInt | DataType::Integer if typed_integers => {
                ColumnKind::Integer
            }
            DataType::Bit if typed_integers => ColumnKind::Bit,
            DataType::Binary { length } | DataType::Varbinary { length } if typed_integers => {
                ColumnKind::Binary {
                    limit: length
                        .map_or(cap / 2, |n| n.get())
                        .clamp(1, (cap / 2).max(1)),
                }
            }
            DataType::LongVarbinary { .. } if typed_integers => ColumnKind::Binary {
                limit: (cap / 2).max(1),
            },
            other => {
                let limit = text_limit(&other, conn.kind, cap);
                if utf8 {
                    ColumnKind::Utf8Text { limit }
                } else {
                    ColumnKind::WideText { limit }
                }
            }
        };
        kinds.push(kind);
    }
    for required in import_type.required_columns() {
        if !columns.iter().any(|c| c == required) {
            return Err(DbError::MissingColumn {
                import: import_name(import_type).to_string(),
                column: (*required).to_string(),
                found: columns,
            });
        }
    }

    let row_width: usize = kinds.iter().map(|k| k.row_bytes()).sum::<usize>().max(1);
    let batch_rows = (limits.buffer_bytes / row_width).clamp(1, limits.max_batch_rows.max(1));
    let buffer = ColumnarDynBuffer::try_from_descs(batch_rows, kinds.iter().map(|k| k.buffer()))
        .map_err(|e| odbc_error("allocating fetch buffers", e, ""))?;
    let mut block = cursor
        .bind_buffer(buffer)
        .map_err(|e| query_error(e, conn, "binding fetch buffers"))?;

    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .buffer_capacity(64 * 1024)
        .from_writer(sink);
    out.write_record(&columns).map_err(csv_error)?;

    let mut summary = ReadSummary {
        columns,
        batch_rows,
        ..ReadSummary::default()
    };
    let mut truncated = vec![0u64; kinds.len()];
    let mut field = String::with_capacity(256);
    let mut number = itoa::Buffer::new();
    loop {
        let batch = match block.fetch() {
            Ok(Some(batch)) => batch,
            Ok(None) => break,
            Err(e) => return Err(query_error(e, conn, "fetching rows")),
        };
        let rows = batch.num_rows();
        for row in 0..rows {
            let sample = summary.first_rows.len() < limits.sample_rows;
            let mut sampled = Vec::new();
            for (col, kind) in kinds.iter().enumerate() {
                let view = batch.column(col);
                // Each arm writes the field; NULL is an empty field.
                let written: &str = match *kind {
                    ColumnKind::Utf8Text { limit } => {
                        match view.as_text().and_then(|t| t.get(row)) {
                            Some(bytes) => {
                                let (text, cut) = utf8_field(bytes, limit);
                                truncated[col] += u64::from(cut);
                                out.write_field(text.as_bytes()).map_err(csv_error)?;
                                if sample {
                                    sampled.push(text.into_owned());
                                }
                                continue;
                            }
                            None => "",
                        }
                    }
                    ColumnKind::WideText { limit } => {
                        field.clear();
                        if let Some(units) = view.as_wide_text().and_then(|t| t.get(row)) {
                            let mut units = units;
                            if units.len() > limit {
                                truncated[col] += 1;
                                let mut cut = limit;
                                // Never split a surrogate pair.
                                if (0xD800..0xDC00).contains(&units[cut - 1]) {
                                    cut -= 1;
                                }
                                units = &units[..cut];
                            }
                            field.extend(
                                char::decode_utf16(units.iter().copied())
                                    .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)),
                            );
                        }
                        &field
                    }
                    ColumnKind::Integer => {
                        match view.as_nullable_slice::<i64>().and_then(|s| s.get(row)) {
                            Some(n) => number.format(*n),
                            None => "",
                        }
                    }
                    ColumnKind::Binary { limit } => {
                        field.clear();
                        if let Some(bytes) = view.as_binary().and_then(|b| b.get(row)) {
                            let bytes = if bytes.len() > limit {
                                truncated[col] += 1;
                                &bytes[..limit]
                            } else {
                                bytes
                            };
                            push_hex(&mut field, bytes);
                        }
                        &field
                    }
                    ColumnKind::Bit => {
                        match view.as_nullable_slice::<i64>().and_then(|s| s.get(row)) {
                            Some(0) => "0",
                            Some(_) => "1",
                            None => "",
                        }
                    }
                    ColumnKind::Timestamp => {
                        field.clear();
                        if let Some(t) = view
                            .as_nullable_slice::<Timestamp>()
                            .and_then(|s| s.get(row))
                        {
                            push_date(&mut field, t.year, t.month, t.day);
                            field.push(' ');
                            push_two_digits(&mut field, t.hour);
                            field.push(':');
                            push_two_digits(&mut field, t.minute);
                            field.push(':');
                            push_two_digits(&mut field, t.second);
                        }
                        &field
                    }
                    ColumnKind::Date => {
                        field.clear();
                        if let Some(d) = view
                            .as_nullable_slice::<odbc_api::sys::Date>()
                            .and_then(|s| s.get(row))
                        {
                            push_date(&mut field, d.year, d.month, d.day);
                        }
                        &field
                    }
                };
                out.write_field(written).map_err(csv_error)?;
                if sample {
                    sampled.push(written.to_owned());
                }
            }
            out.write_record(None::<&[u8]>).map_err(csv_error)?;
            if sample {
                summary.first_rows.push(sampled);
            }
        }
        summary.rows += rows as u64;
    }
    out.flush()?;
    for (col, n) in truncated.into_iter().enumerate() {
        if n > 0 {
            summary.truncated.insert(summary.columns[col].clone(), n);
        }
    }
    Ok(summary)
}

/// `YYYY-MM-DD` (years outside 0..=9999 as the number they are, with a
/// sign when negative), without the formatting machinery: this runs once
/// per timestamp of a million-row read.
fn push_date(out: &mut String, year: i16, month: u16, day: u16) {
    if (0..=9999).contains(&year) {
        let y = year as u16;
        push_two_digits(out, y / 100);
        push_two_digits(out, y % 100);
    } else {
        use std::fmt::Write as _;
        let _ = write!(out, "{year:04}");
    }
    out.push('-');
    push_two_digits(out, month);
    out.push('-');
    push_two_digits(out, day);
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

fn push_two_digits(out: &mut String, n: u16) {
    if n < 100 {
        out.push(char::from(b'0' + (n / 10) as u8));
        out.push(char::from(b'0' + (n % 10) as u8));
    } else {
        use std::fmt::Write as _;
        let _ = write!(out, "{n}");
    }
}

fn csv_error(e: csv::Error) -> DbError {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => DbError::Write(e),
        other => DbError::Write(std::io::Error::other(format!("{other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_utf8_values_pass_unchanged() {
        let (text, cut) = utf8_field("Zoë € 😀 日本".as_bytes(), 100);
        assert_eq!((text.as_ref(), cut), ("Zoë € 😀 日本", false));
        // Exactly the limit in characters, more in bytes: not cut.
        let (text, cut) = utf8_field("ääää".as_bytes(), 4);
        assert_eq!((text.as_ref(), cut), ("ääää", false));
    }

    #[test]
    fn values_over_the_limit_are_cut_at_a_character_boundary() {
        let (text, cut) = utf8_field("äöüäöü".as_bytes(), 4);
        assert_eq!((text.as_ref(), cut), ("äöüä", true));
        let (text, cut) = utf8_field(b"abcdef", 3);
        assert_eq!((text.as_ref(), cut), ("abc", true));
    }

    #[test]
    fn a_value_cut_by_the_driver_inside_a_character_loses_only_that_character() {
        // Limit 2: buffer of 9 bytes, filled by three 4-byte emoji cut
        // after their first byte of the third.
        let full = "😀😀😀".as_bytes();
        let (text, cut) = utf8_field(&full[..utf8_buffer_len(2)], 2);
        assert_eq!((text.as_ref(), cut), ("😀😀", true));
        // Limit 1: a buffer of 5 bytes holding one emoji and a cut one.
        let (text, cut) = utf8_field(&full[..utf8_buffer_len(1)], 1);
        assert_eq!((text.as_ref(), cut), ("😀", true));
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters_not_a_panic() {
        let (text, cut) = utf8_field(b"caf\xe9 ok", 100);
        assert_eq!((text.as_ref(), cut), ("caf\u{fffd} ok", false));
        let (text, cut) = utf8_field(b"\xff\xfe\xfd\xfc\xfb", 2);
        assert_eq!((text.as_ref(), cut), ("\u{fffd}\u{fffd}", true));
    }

    #[test]
    fn dates_are_zero_padded_and_odd_years_still_written() {
        let mut s = String::new();
        push_date(&mut s, 2026, 3, 9);
        s.push('|');
        push_date(&mut s, 7, 12, 31);
        s.push('|');
        push_date(&mut s, -44, 3, 15);
        s.push('|');
        push_two_digits(&mut s, 123);
        s.push('|');
        push_hex(&mut s, &[0x00, 0xff, 0x10, 0xab]);
        assert_eq!(s, "2026-03-09|0007-12-31|-044-03-15|123|00ff10ab");
    }

    #[test]
    fn text_limits_follow_declared_sizes_where_they_bind() {
        use std::num::NonZeroUsize;
        let varchar = DataType::Varchar {
            length: NonZeroUsize::new(20),
        };
        assert_eq!(text_limit(&varchar, DriverKind::PostgreSql, 4096), 40);
        assert_eq!(text_limit(&varchar, DriverKind::Sqlite, 4096), 4096);
        let long = DataType::LongVarchar { length: None };
        assert_eq!(text_limit(&long, DriverKind::MariaDb, 4096), 4096);
        let huge = DataType::WLongVarchar {
            length: NonZeroUsize::new(1 << 30),
        };
        assert_eq!(text_limit(&huge, DriverKind::SqlServer, 4096), 4096);
        let numeric = DataType::Numeric {
            precision: 28,
            scale: 6,
        };
        assert!(text_limit(&numeric, DriverKind::PostgreSql, 4096) >= 64);
        let other = DataType::Other {
            data_type: odbc_api::sys::SqlDataType(-11),
            column_size: None,
            decimal_digits: 0,
        };
        assert_eq!(text_limit(&other, DriverKind::PostgreSql, 4096), 4096);
        assert_eq!(text_limit(&varchar, DriverKind::MariaDb, 8), 8);
    }

    #[test]
    fn only_drivers_measured_to_give_utf8_fetch_narrow() {
        assert_eq!(fetches_utf8(DriverKind::PostgreSql), cfg!(not(windows)));
        assert_eq!(fetches_utf8(DriverKind::MariaDb), cfg!(not(windows)));
        assert_eq!(fetches_utf8(DriverKind::Sqlite), cfg!(not(windows)));
        assert!(!fetches_utf8(DriverKind::SqlServer));
        assert!(!fetches_utf8(DriverKind::Other));
    }
}
