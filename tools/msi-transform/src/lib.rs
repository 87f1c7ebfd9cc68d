//! Windows Installer transforms built on Linux: the difference between two
//! MSI databases, written as a transform, and embedded in an MSI as a
//! sub-storage so that `msiexec /i x.msi TRANSFORMS=":instance.1"` applies it.
//!
//! Why: wixl (msitools) builds MSIs but has no `<InstanceTransforms>`, and
//! msitools can apply transforms (libmsi) but not create them. So
//! `packaging/windows/build-msi` has wixl build the base MSI and one MSI per
//! instance from the same source, and this tool writes, for each instance,
//! the transform base → instance and stores it inside the base MSI.
//!
//! # The format, as read by Wine's msi (`dlls/msi/table.c`,
//! `msi_table_apply_transform`; `dlls/msi/patch.c`) and libmsi (msitools)
//!
//! * A transform is an OLE compound file (or a sub-storage of the MSI) whose
//!   class id is `{000C1082-0000-0000-C000-000000000046}` (libmsi refuses a
//!   transform file with another one).
//! * Its streams are named like a database's: a table's stream name is the
//!   table name packed two characters per UTF-16 unit (`0-9A-Za-z._` as
//!   0..63; a pair is `0x3800 + a + (b << 6)`, a last single one
//!   `0x4800 + a`, other characters kept) after a `0x4840` prefix.
//! * `_StringPool`/`_StringData` are the transform's OWN string pool: row
//!   values reference it, not the database's. The pool starts with the
//!   codepage (bit 31 set for 3-byte references; we write 2-byte ones), then
//!   one (length, reference count) pair of u16 per string, ids from 1; the
//!   data stream holds the strings back to back in the codepage.
//! * One stream per changed table. It is a list of rows, each a u16 mask
//!   followed by values in column order, *row by row* (a database's table
//!   stream is column by column). Integers are stored as in a database
//!   (16-bit: value + 0x8000, 32-bit: value ^ 0x80000000, 0 is null),
//!   strings as ids of the transform's pool. The mask says what the row is:
//!   - `0`: delete the row; only the primary-key columns follow;
//!   - odd: `1 | n << 8`, the first n columns follow: the row is inserted,
//!     or replaces the row with the same key;
//!   - even, not 0: update; the key columns and each column i whose bit
//!     `1 << i` is set follow (so updates work on tables of at most 16
//!     columns whose first column is a key, which all tables changed here
//!     are).
//!
//!   A row's key is matched against the database's strings, so keys must
//!   exist there (they do: we only update and delete existing rows).
//! * `_Tables`/`_Columns` streams add or drop tables and columns: not needed
//!   (and refused) here, both databases have the same schema.
//! * `\u{5}SummaryInformation`: Wine refuses a transform without one, reads
//!   the validation flags from the low 16 bits of PID_CHARCOUNT (the error
//!   condition flags are the high 16), needs PID_TEMPLATE and a PID_REVNUMBER
//!   of the form `{base ProductCode}version;{new ProductCode}version;{UpgradeCode}`.
//!   We do as WiX does for instance transforms: the base's summary
//!   properties, PID_LASTAUTHOR = the new database's template, those product
//!   codes, PID_CHARCOUNT = 0 (no validation, no suppressed errors) and
//!   PID_SECURITY = 4.
//! * Embedded transforms are sub-storages of the MSI's root storage, named
//!   as in `TRANSFORMS=":name"` (the name is not encoded): Wine opens
//!   `IStorage_OpenStorage(database, "name")`. The `_Storages` table is a
//!   view of those sub-storages, not a stream, so nothing else is written.
//!
//! Binary (stream) columns can be deleted with their row but not changed or
//! inserted: the tool refuses such differences rather than write them.
//!
//! # Reading transforms back
//!
//! msitools' libmsi (0.101, `libmsi_database_apply_transform`) cannot read
//! any transform: it decodes stream names to UTF-8, where the 0x4840 prefix
//! is 3 bytes, but skips 1 (`name + 1`), so it looks for tables named
//! "\xa1\x80Property" and fails. So checks read transforms back with this
//! tool (`show`, `export`: [`parse_transform`] and [`apply`], written from
//! the same description as the writer) and under Wine, whose msi.dll
//! applies `TRANSFORMS=":instance.N"` for real.

use std::collections::{BTreeMap, BTreeSet, HashMap};
#[cfg(test)]
use std::fs;
use std::io::{self, Read, Seek, Write};
use std::path::Path;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error(e.to_string())
    }
}

fn fail<T>(message: impl Into<String>) -> Result<T> {
    Err(Error(message.into()))
}

/// The class id of a transform storage, {000C1082-0000-0000-C000-000000000046}.
pub fn transform_clsid() -> uuid::Uuid {
    uuid::Uuid::from_bytes_le([
        0x82, 0x10, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x46,
    ])
}

const SUMMARY_STREAM: &str = "\u{5}SummaryInformation";

// ---------------------------------------------------------------- names --

fn mime(c: char) -> Option<u32> {
    match c {
        '0'..='9' => Some(c as u32 - '0' as u32),
        'A'..='Z' => Some(c as u32 - 'A' as u32 + 10),
        'a'..='z' => Some(c as u32 - 'a' as u32 + 36),
        '.' => Some(62),
        '_' => Some(63),
        _ => None,
    }
}

fn unmime(x: u32) -> char {
    let x = x as u8;
    (match x {
        0..=9 => b'0' + x,
        10..=35 => b'A' + x - 10,
        36..=61 => b'a' + x - 36,
        62 => b'.',
        _ => b'_',
    }) as char
}

/// The stream name of table `name` (`table`) or of a plain stream.
pub fn encode_stream_name(name: &str, table: bool) -> String {
    let mut out = String::new();
    if table {
        out.push('\u{4840}');
    }
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match mime(c) {
            Some(a) => match chars.peek().copied().and_then(mime) {
                Some(b) => {
                    chars.next();
                    out.push(char::from_u32(0x3800 + a + (b << 6)).unwrap());
                }
                None => out.push(char::from_u32(0x4800 + a).unwrap()),
            },
            None => out.push(c),
        }
    }
    out
}

/// The inverse of [`encode_stream_name`]: (name, is a table).
pub fn decode_stream_name(encoded: &str) -> (String, bool) {
    let mut out = String::new();
    let mut chars = encoded.chars().peekable();
    let table = chars.peek() == Some(&'\u{4840}');
    if table {
        chars.next();
    }
    for c in chars {
        let u = c as u32;
        if (0x3800..0x4800).contains(&u) {
            out.push(unmime((u - 0x3800) & 0x3f));
            out.push(unmime((u - 0x3800) >> 6));
        } else if (0x4800..0x4840).contains(&u) {
            out.push(unmime(u - 0x4800));
        } else {
            out.push(c);
        }
    }
    (out, table)
}

// ------------------------------------------------------- property sets --

/// A value of the summary information property set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prop {
    I2(i16),
    I4(i32),
    /// VT_LPSTR: bytes in the property set's codepage, without the NUL.
    Str(Vec<u8>),
    FileTime(u64),
}

const PID_TEMPLATE: u32 = 7;
const PID_LASTAUTHOR: u32 = 8;
const PID_REVNUMBER: u32 = 9;
const PID_CHARCOUNT: u32 = 16;
const PID_SECURITY: u32 = 19;
const FMTID_SUMMARY: [u8; 16] = [
    0xe0, 0x85, 0x9f, 0xf2, 0xf9, 0x4f, 0x68, 0x10, 0xab, 0x91, 0x08, 0x00, 0x2b, 0x27, 0xb3, 0xd9,
];

fn u16_at(d: &[u8], at: usize) -> Result<u16> {
    d.get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or_else(|| Error("property set cut short".into()))
}

fn u32_at(d: &[u8], at: usize) -> Result<u32> {
    d.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| Error("property set cut short".into()))
}

/// The properties of the first section of a property set stream.
pub fn parse_property_set(d: &[u8]) -> Result<BTreeMap<u32, Prop>> {
    if u16_at(d, 0)? != 0xfffe {
        return fail("not a property set (byte order mark)");
    }
    let section = u32_at(d, 44)? as usize;
    let count = u32_at(d, section + 4)? as usize;
    let mut props = BTreeMap::new();
    for i in 0..count {
        let pid = u32_at(d, section + 8 + 8 * i)?;
        let at = section + u32_at(d, section + 12 + 8 * i)? as usize;
        let value = match u32_at(d, at)? & 0xffff {
            2 => Prop::I2(u16_at(d, at + 4)? as i16),
            3 => Prop::I4(u32_at(d, at + 4)? as i32),
            30 => {
                let len = u32_at(d, at + 4)? as usize;
                let bytes = d
                    .get(at + 8..at + 8 + len)
                    .ok_or_else(|| Error("property set cut short".into()))?;
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                Prop::Str(bytes[..end].to_vec())
            }
            64 => Prop::FileTime(
                u64::from(u32_at(d, at + 4)?) | (u64::from(u32_at(d, at + 8)?) << 32),
            ),
            other => return fail(format!("property {pid} has unsupported type {other}")),
        };
        props.insert(pid, value);
    }
    Ok(props)
}

/// A property set stream with one section (summary information).
pub fn write_property_set(props: &BTreeMap<u32, Prop>) -> Vec<u8> {
    let mut values = Vec::new();
    let mut offsets = Vec::new();
    let header_len = 8 + 8 * props.len();
    for (&pid, value) in props {
        offsets.push((pid, (header_len + values.len()) as u32));
        match value {
            Prop::I2(v) => {
                values.extend(2u32.to_le_bytes());
                values.extend(v.to_le_bytes());
                values.extend([0, 0]);
            }
            Prop::I4(v) => {
                values.extend(3u32.to_le_bytes());
                values.extend(v.to_le_bytes());
            }
            Prop::Str(s) => {
                values.extend(30u32.to_le_bytes());
                values.extend((s.len() as u32 + 1).to_le_bytes());
                values.extend(s);
                values.push(0);
                while values.len() % 4 != 0 {
                    values.push(0);
                }
            }
            Prop::FileTime(t) => {
                values.extend(64u32.to_le_bytes());
                values.extend(t.to_le_bytes());
            }
        }
    }
    let mut out = Vec::new();
    out.extend(0xfffeu16.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out.extend(0x0002_0006u32.to_le_bytes()); // Win32, 6.0
    out.extend([0u8; 16]);
    out.extend(1u32.to_le_bytes());
    out.extend(FMTID_SUMMARY);
    out.extend(48u32.to_le_bytes());
    out.extend(((header_len + values.len()) as u32).to_le_bytes());
    out.extend((props.len() as u32).to_le_bytes());
    for (pid, offset) in offsets {
        out.extend(pid.to_le_bytes());
        out.extend(offset.to_le_bytes());
    }
    out.extend(values);
    out
}

// --------------------------------------------------------- databases --

/// How a column is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int16,
    Int32,
    Str,
    /// A stream named `Table.key1.key2…`; 2 bytes in a row.
    Binary,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
    pub key: bool,
}

/// A cell: `Stream` holds a binary column's stream.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cell {
    Null,
    Int(i32),
    Str(String),
    Stream(Vec<u8>),
}

impl Cell {
    fn key_text(&self) -> String {
        match self {
            Cell::Null | Cell::Stream(_) => String::new(),
            Cell::Int(i) => i.to_string(),
            Cell::Str(s) => s.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub columns: Vec<Column>,
    /// Rows by primary key.
    pub rows: BTreeMap<Vec<Cell>, Vec<Cell>>,
}

impl Table {
    fn key_of(&self, row: &[Cell]) -> Vec<Cell> {
        self.columns
            .iter()
            .zip(row)
            .filter(|(c, _)| c.key)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// The tables of an MSI database, its codepage and summary information.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Database {
    pub codepage: msi::CodePage,
    pub tables: BTreeMap<String, Table>,
    pub summary: BTreeMap<u32, Prop>,
}

impl Database {
    pub fn read(path: &Path) -> Result<Database> {
        let mut package = msi::open(path).map_err(|e| Error(format!("{}: {e}", path.display())))?;
        let mut storage = cfb::open(path)?;
        let codepage = package.database_codepage();
        let schemas: Vec<(String, Vec<Column>)> = package
            .tables()
            .map(|t| {
                let columns = t
                    .columns()
                    .iter()
                    .map(|c| Column {
                        name: c.name().to_owned(),
                        kind: match c.coltype() {
                            msi::ColumnType::Int16 => Kind::Int16,
                            msi::ColumnType::Int32 => Kind::Int32,
                            msi::ColumnType::Str(_) => Kind::Str,
                            msi::ColumnType::Binary => Kind::Binary,
                        },
                        key: c.is_primary_key(),
                    })
                    .collect();
                (t.name().to_owned(), columns)
            })
            .collect();
        let mut tables = BTreeMap::new();
        for (name, columns) in schemas {
            let mut table = Table {
                columns,
                rows: BTreeMap::new(),
            };
            let rows = package.select_rows(msi::Select::table(name.as_str()))?;
            let mut raw = Vec::new();
            for row in rows {
                raw.push(
                    (0..row.len())
                        .map(|i| match &row[i] {
                            msi::Value::Null => Cell::Null,
                            msi::Value::Int(v) => Cell::Int(*v),
                            msi::Value::Str(s) if s.is_empty() => Cell::Null,
                            msi::Value::Str(s) => Cell::Str(s.clone()),
                            msi::Value::Binary => Cell::Stream(Vec::new()),
                        })
                        .collect::<Vec<_>>(),
                );
            }
            for mut row in raw {
                let key = table.key_of(&row);
                for cell in row.iter_mut() {
                    if let Cell::Stream(data) = cell {
                        let stream_name: Vec<String> = key.iter().map(Cell::key_text).collect();
                        let stream_name = format!("{name}.{}", stream_name.join("."));
                        let encoded = encode_stream_name(&stream_name, false);
                        storage
                            .open_stream(format!("/{encoded}"))
                            .and_then(|mut s| s.read_to_end(data))
                            .map_err(|e| Error(format!("stream {stream_name}: {e}")))?;
                    }
                }
                table.rows.insert(key, row);
            }
            tables.insert(name, table);
        }
        let mut summary = Vec::new();
        storage
            .open_stream(format!("/{SUMMARY_STREAM}"))?
            .read_to_end(&mut summary)?;
        Ok(Database {
            codepage,
            tables,
            summary: parse_property_set(&summary)?,
        })
    }

    fn property(&self, name: &str) -> Result<String> {
        match self
            .tables
            .get("Property")
            .and_then(|t| t.rows.get(&vec![Cell::Str(name.to_owned())]))
            .map(|row| &row[1])
        {
            Some(Cell::Str(s)) => Ok(s.clone()),
            _ => fail(format!("the database has no property {name}")),
        }
    }
}

// --------------------------------------------------------- transforms --

/// One row operation of a transform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowOp {
    Delete(Vec<Cell>),
    /// Insert, or replace the row with the same key: every column.
    Upsert(Vec<Cell>),
    /// The row's key and the changed (column index, value)s.
    Update(Vec<Cell>, Vec<(usize, Cell)>),
}

/// The table changes and summary information of a transform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transform {
    pub tables: BTreeMap<String, Vec<RowOp>>,
    pub summary: BTreeMap<u32, Prop>,
}

/// The transform that turns `base` into `new`.
pub fn diff(base: &Database, new: &Database) -> Result<Transform> {
    let names: BTreeSet<&String> = base.tables.keys().chain(new.tables.keys()).collect();
    let mut tables = BTreeMap::new();
    for name in names {
        let (Some(a), Some(b)) = (base.tables.get(name), new.tables.get(name)) else {
            return fail(format!(
                "table {name} is in one database only: adding or dropping tables is not supported"
            ));
        };
        if a.columns != b.columns {
            return fail(format!(
                "table {name} has other columns in the two databases"
            ));
        }
        let binary = |i: usize| a.columns[i].kind == Kind::Binary;
        let mut ops = Vec::new();
        for key in a.rows.keys().filter(|k| !b.rows.contains_key(*k)) {
            ops.push(RowOp::Delete(key.clone()));
        }
        for (key, row_b) in &b.rows {
            match a.rows.get(key) {
                None => {
                    if (0..row_b.len()).any(|i| binary(i) && row_b[i] != Cell::Null) {
                        return fail(format!(
                            "table {name}: inserting a row with a stream is not supported"
                        ));
                    }
                    ops.push(RowOp::Upsert(row_b.clone()));
                }
                Some(row_a) => {
                    let changes: Vec<(usize, Cell)> = (0..row_b.len())
                        .filter(|&i| row_a[i] != row_b[i])
                        .map(|i| (i, row_b[i].clone()))
                        .collect();
                    if changes.is_empty() {
                        continue;
                    }
                    if changes.iter().any(|&(i, _)| binary(i)) {
                        return fail(format!("table {name}: changing a stream is not supported"));
                    }
                    if a.columns.len() > 16 || !a.columns[0].key {
                        return fail(format!(
                            "table {name}: updates need at most 16 columns and a key first"
                        ));
                    }
                    ops.push(RowOp::Update(key.clone(), changes));
                }
            }
        }
        if !ops.is_empty() {
            tables.insert(name.clone(), ops);
        }
    }

    // As WiX does for instance transforms: the base's summary, then what
    // says which product the transform applies to and what it makes.
    let mut summary = base.summary.clone();
    if let Some(template) = new.summary.get(&PID_TEMPLATE) {
        summary.insert(PID_LASTAUTHOR, template.clone());
    }
    summary.entry(PID_TEMPLATE).or_insert(Prop::Str(Vec::new()));
    let codes = format!(
        "{}{};{}{};{}",
        base.property("ProductCode")?,
        base.property("ProductVersion")?,
        new.property("ProductCode")?,
        new.property("ProductVersion")?,
        new.property("UpgradeCode")?,
    );
    summary.insert(PID_REVNUMBER, Prop::Str(codes.into_bytes()));
    summary.insert(PID_CHARCOUNT, Prop::I4(0));
    summary.insert(PID_SECURITY, Prop::I4(4));
    Ok(Transform { tables, summary })
}

struct Pool {
    codepage: msi::CodePage,
    ids: HashMap<String, u16>,
    strings: Vec<(Vec<u8>, u16)>,
}

impl Pool {
    fn id(&mut self, s: &str) -> Result<u16> {
        if s.is_empty() {
            return Ok(0);
        }
        if let Some(&id) = self.ids.get(s) {
            let refs = &mut self.strings[id as usize - 1].1;
            *refs = refs.saturating_add(1);
            return Ok(id);
        }
        let bytes = self.codepage.encode(s);
        if bytes.len() > 0xffff || self.strings.len() >= 0xfffe {
            return fail(
                "string pool: strings over 64 KiB or over 65534 strings are not supported",
            );
        }
        self.strings.push((bytes, 1));
        let id = self.strings.len() as u16;
        self.ids.insert(s.to_owned(), id);
        Ok(id)
    }
}

fn put_cell(out: &mut Vec<u8>, column: &Column, cell: &Cell, pool: &mut Pool) -> Result<()> {
    match (column.kind, cell) {
        (Kind::Int16, Cell::Null) | (Kind::Binary, Cell::Null) => out.extend(0u16.to_le_bytes()),
        (Kind::Int16, Cell::Int(v)) => out.extend((*v as u16 ^ 0x8000).to_le_bytes()),
        (Kind::Int32, Cell::Null) => out.extend(0u32.to_le_bytes()),
        (Kind::Int32, Cell::Int(v)) => out.extend((*v as u32 ^ 0x8000_0000).to_le_bytes()),
        (Kind::Str, Cell::Null) => out.extend(0u16.to_le_bytes()),
        (Kind::Str, Cell::Str(s)) => out.extend(pool.id(s)?.to_le_bytes()),
        (Kind::Binary, Cell::Stream(_)) => out.extend(1u16.to_le_bytes()),
        (kind, cell) => {
            return fail(format!(
                "column {}: {cell:?} in a {kind:?} column",
                column.name
            ))
        }
    }
    Ok(())
}

/// The streams of `transform` (raw CFB names → bytes). `base` gives the
/// columns of the tables it changes.
pub fn transform_streams(base: &Database, transform: &Transform) -> Result<Vec<(String, Vec<u8>)>> {
    let mut pool = Pool {
        codepage: base.codepage,
        ids: HashMap::new(),
        strings: Vec::new(),
    };
    let mut streams = Vec::new();
    for (name, ops) in &transform.tables {
        let columns = &base.tables[name].columns;
        let mut out = Vec::new();
        for op in ops {
            match op {
                RowOp::Delete(key) => {
                    out.extend(0u16.to_le_bytes());
                    for (column, cell) in columns.iter().filter(|c| c.key).zip(key) {
                        put_cell(&mut out, column, cell, &mut pool)?;
                    }
                }
                RowOp::Upsert(row) => {
                    out.extend((1u16 | ((columns.len() as u16) << 8)).to_le_bytes());
                    for (column, cell) in columns.iter().zip(row) {
                        put_cell(&mut out, column, cell, &mut pool)?;
                    }
                }
                RowOp::Update(key, changes) => {
                    let mask = changes.iter().fold(0u16, |m, &(i, _)| m | (1 << i));
                    out.extend(mask.to_le_bytes());
                    let mut keys = key.iter();
                    for (i, column) in columns.iter().enumerate() {
                        if column.key {
                            put_cell(&mut out, column, keys.next().unwrap(), &mut pool)?;
                        } else if let Some((_, cell)) = changes.iter().find(|(c, _)| *c == i) {
                            put_cell(&mut out, column, cell, &mut pool)?;
                        }
                    }
                }
            }
        }
        streams.push((encode_stream_name(name, true), out));
    }
    let codepage = base.codepage.id() as u32;
    let mut pool_stream = Vec::new();
    pool_stream.extend(((codepage & 0xffff) as u16).to_le_bytes());
    pool_stream.extend(((codepage >> 16) as u16 & 0x7fff).to_le_bytes());
    let mut data_stream = Vec::new();
    for (bytes, refs) in &pool.strings {
        pool_stream.extend((bytes.len() as u16).to_le_bytes());
        pool_stream.extend(refs.to_le_bytes());
        data_stream.extend(bytes);
    }
    streams.push((encode_stream_name("_StringPool", true), pool_stream));
    streams.push((encode_stream_name("_StringData", true), data_stream));
    streams.push((
        SUMMARY_STREAM.to_owned(),
        write_property_set(&transform.summary),
    ));
    Ok(streams)
}

fn take<'a>(data: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if data.len() < n {
        return fail("transform table stream cut short");
    }
    let (head, rest) = data.split_at(n);
    *data = rest;
    Ok(head)
}

fn get_cell(data: &mut &[u8], column: &Column, strings: &[String]) -> Result<Cell> {
    Ok(match column.kind {
        Kind::Int16 => match u16::from_le_bytes(take(data, 2)?.try_into().unwrap()) {
            0 => Cell::Null,
            v => Cell::Int(i32::from(v as i16 ^ i16::MIN)),
        },
        Kind::Int32 => match u32::from_le_bytes(take(data, 4)?.try_into().unwrap()) {
            0 => Cell::Null,
            v => Cell::Int((v ^ 0x8000_0000) as i32),
        },
        Kind::Str => {
            match u16::from_le_bytes(take(data, 2)?.try_into().unwrap()) {
                0 => Cell::Null,
                id => Cell::Str(strings.get(id as usize).cloned().ok_or_else(|| {
                    Error(format!("string id {id} is not in the transform's pool"))
                })?),
            }
        }
        Kind::Binary => {
            take(data, 2)?;
            return fail(format!(
                "column {}: stream values are not supported",
                column.name
            ));
        }
    })
}

/// Reads a transform from its streams (raw CFB names → bytes); `base`
/// gives the columns of its tables.
pub fn parse_transform(base: &Database, streams: &BTreeMap<String, Vec<u8>>) -> Result<Transform> {
    let stream = |name: &str| {
        streams
            .get(&encode_stream_name(name, true))
            .ok_or_else(|| Error(format!("the transform has no {name}")))
    };
    let pool = stream("_StringPool")?;
    let data = stream("_StringData")?;
    if pool.len() >= 4 && u16_at(pool, 2)? & 0x8000 != 0 {
        return fail("3-byte string references are not supported");
    }
    let mut strings = vec![String::new()];
    let mut offset = 0;
    for entry in pool.chunks_exact(4).skip(1) {
        let len = u16::from_le_bytes([entry[0], entry[1]]) as usize;
        let bytes = data
            .get(offset..offset + len)
            .ok_or_else(|| Error("string pool longer than its data".into()))?;
        strings.push(base.codepage.decode(bytes));
        offset += len;
    }
    let mut tables = BTreeMap::new();
    for (raw, bytes) in streams {
        let (name, is_table) = decode_stream_name(raw);
        if !is_table || name == "_StringPool" || name == "_StringData" {
            continue;
        }
        let Some(table) = base.tables.get(&name) else {
            return fail(format!(
                "the transform changes table {name}, which the database lacks"
            ));
        };
        let columns = &table.columns;
        let mut data = bytes.as_slice();
        let mut ops = Vec::new();
        while !data.is_empty() {
            let mask = u16::from_le_bytes(take(&mut data, 2)?.try_into().unwrap());
            if mask & 1 == 1 {
                let n = (mask >> 8) as usize;
                if n > columns.len() {
                    return fail(format!("table {name}: row of {n} columns"));
                }
                let mut row = Vec::new();
                for column in &columns[..n] {
                    row.push(get_cell(&mut data, column, &strings)?);
                }
                row.resize(columns.len(), Cell::Null);
                ops.push(RowOp::Upsert(row));
            } else {
                let mut key = Vec::new();
                let mut changes = Vec::new();
                for (i, column) in columns.iter().enumerate() {
                    if column.key {
                        key.push(get_cell(&mut data, column, &strings)?);
                    } else if mask & (1 << i) != 0 {
                        changes.push((i, get_cell(&mut data, column, &strings)?));
                    }
                }
                ops.push(if mask == 0 {
                    RowOp::Delete(key)
                } else {
                    RowOp::Update(key, changes)
                });
            }
        }
        tables.insert(name, ops);
    }
    let summary = match streams.get(SUMMARY_STREAM) {
        Some(s) => parse_property_set(s)?,
        None => return fail("the transform has no summary information"),
    };
    Ok(Transform { tables, summary })
}

/// `base` with `transform` applied (as Wine does: a missing row to update or
/// delete is an error here, to catch a transform made for another database).
pub fn apply(base: &Database, transform: &Transform) -> Result<Database> {
    let mut db = base.clone();
    for (name, ops) in &transform.tables {
        let table = db.tables.get_mut(name).expect("checked by parse_transform");
        for op in ops {
            match op {
                RowOp::Delete(key) => {
                    if table.rows.remove(key).is_none() {
                        return fail(format!("table {name}: no row {key:?} to delete"));
                    }
                }
                RowOp::Upsert(row) => {
                    let key = table.key_of(row);
                    table.rows.insert(key, row.clone());
                }
                RowOp::Update(key, changes) => {
                    let Some(row) = table.rows.get_mut(key) else {
                        return fail(format!("table {name}: no row {key:?} to update"));
                    };
                    for (i, cell) in changes {
                        row[*i] = cell.clone();
                    }
                }
            }
        }
    }
    Ok(db)
}

/// A table in `msiinfo export`'s layout: column names, column types
/// (here only the storage kind), table name and keys, then one row a line,
/// fields separated by tabs.
pub fn export(db: &Database, name: &str) -> Result<String> {
    let Some(table) = db.tables.get(name) else {
        return fail(format!("no table {name}"));
    };
    let line = |fields: Vec<String>| fields.join("\t") + "\n";
    let mut out = line(table.columns.iter().map(|c| c.name.clone()).collect());
    out += &line(
        table
            .columns
            .iter()
            .map(|c| format!("{:?}", c.kind))
            .collect(),
    );
    out += &line(
        std::iter::once(name.to_owned())
            .chain(
                table
                    .columns
                    .iter()
                    .filter(|c| c.key)
                    .map(|c| c.name.clone()),
            )
            .collect(),
    );
    for row in table.rows.values() {
        out += &line(
            row.iter()
                .map(|cell| match cell {
                    Cell::Null => String::new(),
                    Cell::Int(v) => v.to_string(),
                    Cell::Str(s) => s.clone(),
                    Cell::Stream(_) => "[stream]".to_owned(),
                })
                .collect(),
        );
    }
    Ok(out)
}

// ------------------------------------------------------------ storages --

fn read_streams<F: Read + Seek>(
    storage: &mut cfb::CompoundFile<F>,
    path: &str,
) -> Result<BTreeMap<String, Vec<u8>>> {
    let names: Vec<String> = storage
        .read_storage(path)?
        .filter(|e| e.is_stream())
        .map(|e| e.name().to_owned())
        .collect();
    let mut streams = BTreeMap::new();
    for name in names {
        let mut data = Vec::new();
        storage
            .open_stream(format!("{}/{name}", path.trim_end_matches('/')))?
            .read_to_end(&mut data)?;
        streams.insert(name, data);
    }
    Ok(streams)
}

/// Writes a standalone transform file (.mst).
pub fn write_transform_file(path: &Path, streams: &[(String, Vec<u8>)]) -> Result<()> {
    let mut storage = cfb::create(path)?;
    storage.set_storage_clsid("/", transform_clsid())?;
    for (name, data) in streams {
        storage.create_stream(format!("/{name}"))?.write_all(data)?;
    }
    storage.flush()?;
    Ok(())
}

/// The streams of a standalone transform file, checking its class id.
pub fn read_transform_file(path: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut storage = cfb::open(path)?;
    if *storage.root_entry().clsid() != transform_clsid() {
        return fail(format!("{}: not a transform (class id)", path.display()));
    }
    read_streams(&mut storage, "/")
}

/// Stores `streams` as the sub-storage `name` of the MSI at `msi_path`,
/// replacing one of that name.
pub fn embed(msi_path: &Path, name: &str, streams: &BTreeMap<String, Vec<u8>>) -> Result<()> {
    let mut storage = cfb::open_rw(msi_path)?;
    let path = format!("/{name}");
    if storage.exists(&path) {
        storage.remove_storage_all(&path)?;
    }
    storage.create_storage(&path)?;
    storage.set_storage_clsid(&path, transform_clsid())?;
    for (stream, data) in streams {
        storage
            .create_stream(format!("{path}/{stream}"))?
            .write_all(data)?;
    }
    storage.flush()?;
    Ok(())
}

/// The streams of the sub-storage `name` of the MSI at `msi_path`.
pub fn extract(msi_path: &Path, name: &str) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut storage = cfb::open(msi_path)?;
    let path = format!("/{name}");
    if !storage.is_storage(&path) {
        return fail(format!("{} has no sub-storage {name}", msi_path.display()));
    }
    if *storage.entry(&path)?.clsid() != transform_clsid() {
        return fail(format!("{name}: not a transform (class id)"));
    }
    read_streams(&mut storage, &path)
}

/// The names of the MSI's sub-storages.
pub fn sub_storages(msi_path: &Path) -> Result<Vec<String>> {
    let storage = cfb::open(msi_path)?;
    Ok(storage
        .read_root_storage()
        .filter(|e| e.is_storage())
        .map(|e| e.name().to_owned())
        .collect())
}

/// A text listing of a transform, one operation a line.
pub fn describe(base: &Database, transform: &Transform) -> String {
    let mut out = String::new();
    for (name, ops) in &transform.tables {
        let columns = &base.tables[name].columns;
        for op in ops {
            let line = match op {
                RowOp::Delete(key) => format!("{name}: delete {key:?}"),
                RowOp::Upsert(row) => format!("{name}: insert {row:?}"),
                RowOp::Update(key, changes) => {
                    let changes: Vec<String> = changes
                        .iter()
                        .map(|(i, c)| format!("{} = {c:?}", columns[*i].name))
                        .collect();
                    format!("{name}: update {key:?}: {}", changes.join(", "))
                }
            };
            out.push_str(&line);
            out.push('\n');
        }
    }
    for (pid, prop) in &transform.summary {
        let value = match prop {
            Prop::Str(s) => String::from_utf8_lossy(s).into_owned(),
            other => format!("{other:?}"),
        };
        out.push_str(&format!("summary {pid}: {value}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An MSI with a Property table and a table of every column kind the
    /// transforms write (16- and 32-bit integers, nullable, a two-column key).
    fn write_msi(path: &Path, product_code: &str, rows: &[(&str, i32, Option<i32>, &str)]) {
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .unwrap();
        let mut package = msi::Package::create(msi::PackageType::Installer, file).unwrap();
        package
            .create_table(
                "Property",
                vec![
                    msi::Column::build("Property").primary_key().id_string(72),
                    msi::Column::build("Value").text_string(0),
                ],
            )
            .unwrap();
        package
            .insert_rows(
                msi::Insert::into("Property").rows(
                    [
                        ("ProductCode", product_code),
                        ("ProductVersion", "1.2.3"),
                        ("UpgradeCode", "{F8403338-C30A-4BA0-8FCD-5BABD843B711}"),
                    ]
                    .iter()
                    .map(|(k, v)| vec![msi::Value::from(*k), msi::Value::from(*v)])
                    .collect(),
                ),
            )
            .unwrap();
        package
            .create_table(
                "Things",
                vec![
                    msi::Column::build("Name").primary_key().id_string(72),
                    msi::Column::build("Seq").primary_key().int16(),
                    msi::Column::build("Big").nullable().int32(),
                    msi::Column::build("Text").nullable().text_string(255),
                ],
            )
            .unwrap();
        package
            .insert_rows(
                msi::Insert::into("Things").rows(
                    rows.iter()
                        .map(|&(name, seq, big, text)| {
                            vec![
                                msi::Value::from(name),
                                msi::Value::Int(seq),
                                big.map_or(msi::Value::Null, msi::Value::Int),
                                if text.is_empty() {
                                    msi::Value::Null
                                } else {
                                    msi::Value::from(text)
                                },
                            ]
                        })
                        .collect(),
                ),
            )
            .unwrap();
        package.flush().unwrap();
    }

    #[test]
    fn a_transform_from_a_to_b_applied_to_a_gives_b() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, mst) = (
            dir.path().join("a.msi"),
            dir.path().join("b.msi"),
            dir.path().join("t.mst"),
        );
        let base_code = "{11111111-1111-1111-1111-111111111111}";
        let new_code = "{22222222-2222-2222-2222-222222222222}";
        write_msi(
            &a,
            base_code,
            &[
                ("kept", 1, Some(7), "same"),
                ("changed", 2, Some(-5), "before"),
                ("to_null", 3, Some(1 << 20), "gone"),
                ("deleted", 4, None, ""),
                ("changed", -3, None, "two-column key"),
            ],
        );
        write_msi(
            &b,
            new_code,
            &[
                ("kept", 1, Some(7), "same"),
                ("changed", 2, Some(i32::MIN + 1), "after, é"),
                ("to_null", 3, None, ""),
                ("inserted", 5, Some(-1), "new"),
                ("changed", -3, Some(0), "two-column key"),
            ],
        );
        let (base, new) = (Database::read(&a).unwrap(), Database::read(&b).unwrap());
        let transform = diff(&base, &new).unwrap();
        write_transform_file(&mst, &transform_streams(&base, &transform).unwrap()).unwrap();

        let read_back = parse_transform(&base, &read_transform_file(&mst).unwrap()).unwrap();
        assert_eq!(read_back.tables, transform.tables);
        let applied = apply(&base, &read_back).unwrap();
        assert_eq!(applied.tables, new.tables);

        // Only what differs is written: one update of the Property table,
        // and in Things an update per changed row, a delete, an insert.
        assert_eq!(
            transform.tables["Property"],
            [RowOp::Update(
                vec![Cell::Str("ProductCode".into())],
                vec![(1, Cell::Str(new_code.into()))]
            )]
        );
        assert_eq!(transform.tables["Things"].len(), 5);
        let codes =
            format!("{base_code}1.2.3;{new_code}1.2.3;{{F8403338-C30A-4BA0-8FCD-5BABD843B711}}");
        assert_eq!(
            read_back.summary[&PID_REVNUMBER],
            Prop::Str(codes.into_bytes())
        );
        assert_eq!(read_back.summary[&PID_CHARCOUNT], Prop::I4(0));
    }

    #[test]
    fn an_embedded_transform_reads_back_and_keeps_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.msi"), dir.path().join("b.msi"));
        let code_a = "{11111111-1111-1111-1111-111111111111}";
        let code_b = "{33333333-3333-3333-3333-333333333333}";
        write_msi(&a, code_a, &[("x", 1, None, "")]);
        write_msi(&b, code_b, &[("x", 1, Some(2), "y")]);
        let (base, new) = (Database::read(&a).unwrap(), Database::read(&b).unwrap());
        let streams: BTreeMap<String, Vec<u8>> =
            transform_streams(&base, &diff(&base, &new).unwrap())
                .unwrap()
                .into_iter()
                .collect();
        embed(&a, "instance.1", &streams).unwrap();
        embed(&a, "instance.1", &streams).unwrap(); // replaces
        assert_eq!(sub_storages(&a).unwrap(), ["instance.1"]);
        assert_eq!(extract(&a, "instance.1").unwrap(), streams);
        // The database itself is unchanged by the embedding.
        let embedded_in = Database::read(&a).unwrap();
        assert_eq!(embedded_in, base);
        let applied = apply(&base, &parse_transform(&base, &streams).unwrap()).unwrap();
        assert_eq!(applied.tables, new.tables);
    }

    #[test]
    fn stream_names_are_packed_as_the_msi_crate_and_windows_do() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.msi");
        write_msi(&a, "{11111111-1111-1111-1111-111111111111}", &[]);
        let storage = cfb::open(&a).unwrap();
        let names: Vec<String> = storage
            .read_root_storage()
            .map(|e| e.name().to_owned())
            .collect();
        for table in [
            "Property",
            "Things",
            "_StringPool",
            "_StringData",
            "_Tables",
        ] {
            let encoded = encode_stream_name(table, true);
            assert!(names.contains(&encoded), "{table} in {names:?}");
            assert_eq!(decode_stream_name(&encoded), (table.to_owned(), true));
        }
        assert_eq!(
            decode_stream_name(&encode_stream_name("Binary.Icon-1.x", false)),
            ("Binary.Icon-1.x".to_owned(), false)
        );
    }

    #[test]
    fn a_different_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.msi");
        write_msi(&a, "{11111111-1111-1111-1111-111111111111}", &[]);
        let base = Database::read(&a).unwrap();
        let mut new = base.clone();
        new.tables.remove("Things");
        assert!(diff(&base, &new)
            .unwrap_err()
            .to_string()
            .contains("Things"));
    }
}
