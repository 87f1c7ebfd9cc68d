//! The one pass over a CSV file on its way into the spool. Blocking I/O: run
//! it on a thread where blocking is allowed (never on the actor runtime).
//!
//! Design: the file is read once, in chunks of [`BUFFER_SIZE`], by a tee
//! ([`Tee`]) that implements `futures::io::AsyncRead` and is the input of a
//! csv-async reader. Each time csv-async pulls a chunk, the tee
//! - hashes the original bytes (sha256: the dedup checksum and the upload's
//!   idempotency key) and checks the size limit,
//! - checks for NUL bytes and keeps validating UTF-8 across chunk boundaries
//!   (or gathers 8-bit statistics once UTF-8 is ruled out),
//! - converts UTF-16 and windows-1254 to UTF-8 (the encodings the cloud does
//!   not take; see [`Encoding::conversion`]), and
//! - writes the resulting bytes to the sink (the spool item) before handing
//!   them to csv-async, which counts the records.
//!
//! csv-async is driven by `futures::executor::block_on` on the calling thread.
//! The tee never returns `Pending` (its reads are plain blocking reads), so
//! the executor never parks: it is a loop, not a runtime. Memory is the
//! chunk buffers, csv-async's buffer and one record, whatever the file size;
//! a record that grows past [`MAX_RECORD_BYTES`] (an unbalanced quote that
//! swallows the rest of the file) stops the counting, and the tee pumps the
//! rest through on its own, so the file is still uploaded whole.
//!
//! The code page of an 8-bit file is decided on the whole file, but bytes
//! leave for the sink as they are read: when the whole file calls for another
//! conversion than its first [`SNIFF_LEN`] bytes did (Turkish letters, or a €,
//! only further down), the pass ends with
//! [`PipelineError::EncodingRevised`], and the caller discards the sink and
//! reads the file again with [`prepare_as`] and that encoding.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};
use csv_async::{AsyncReaderBuilder, ByteRecord};
use encoding_rs::Decoder;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::ledger::RefusalReason;
use super::sniff::{
    self, CodePageChoice, EightBitStats, Encoding, HeaderGuess, Utf8Validator, SNIFF_LEN,
};

/// Size of each read. Large enough that hashing, validation and syscalls work
/// on big slices; small enough to be irrelevant for memory.
pub const BUFFER_SIZE: usize = 256 * 1024;

/// A record larger than this is not a CSV record but an unbalanced quote (or
/// a file without line breaks); csv-async would buffer it whole, so counting
/// stops there. Contact-centre rows are a few hundred bytes.
pub const MAX_RECORD_BYTES: u64 = 1024 * 1024;

/// Why a file did not make it through. `NotText` and `TooLarge` are verdicts
/// on the file (remember them, see [`PipelineError::refusal`]); the others
/// are about this attempt. In every case the caller aborts the spool item.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("not a text file (NUL byte at offset {offset})")]
    NotText { offset: u64 },
    /// `size` is the file's size, or the bytes read so far if it grew past
    /// the limit while being read.
    #[error("the file is too large ({size} bytes; the limit is {max} bytes)")]
    TooLarge { size: u64, max: u64 },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} was removed while it was being read", path.display())]
    Vanished { path: PathBuf },
    /// Written to while being read, despite having looked stable: what was
    /// read is not one version of the file. Try again once it settles.
    #[error("{} changed while it was being read", path.display())]
    Changed { path: PathBuf },
    #[error("cannot write to the spool: {0}")]
    Sink(#[source] io::Error),
    /// The whole file is in an encoding that is written differently from
    /// the one its first part suggested (see the module documentation):
    /// what the sink got is not to be used; read it again as `encoding`.
    #[error(
        "{} is {encoding} as a whole, not {sniffed} as its first part suggested; it is read again",
        path.display()
    )]
    EncodingRevised {
        path: PathBuf,
        sniffed: Encoding,
        encoding: Encoding,
    },
    /// Unix: a symbolic link owned by one user to a file owned by another.
    /// The service reads as root; following such a link would let anyone who
    /// can write into the import folder upload any file of the machine (a
    /// link to /etc/shadow). A link is followed only when its owner also owns
    /// the file, as Apache's `SymLinksIfOwnerMatch`.
    #[error(
        "{} is a symbolic link owned by user id {link_owner} to a file of user id {file_owner}; \
         links are followed only to files of their own owner",
        path.display()
    )]
    ForeignLink {
        path: PathBuf,
        link_owner: u32,
        file_owner: u32,
    },
}

impl PipelineError {
    /// The refusal to remember in the ledger, for errors that will recur
    /// until the file changes.
    pub fn refusal(&self) -> Option<RefusalReason> {
        match self {
            PipelineError::NotText { .. } => Some(RefusalReason::NotText),
            PipelineError::TooLarge { .. } => Some(RefusalReason::TooLarge),
            PipelineError::ForeignLink { .. } => Some(RefusalReason::ForeignLink),
            _ => None,
        }
    }
}

/// What the pass found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// Lower-hex sha256 of the file's bytes as they are on disk (before any
    /// conversion).
    pub sha256: String,
    pub original_bytes: u64,
    /// Bytes written to the sink (differs from `original_bytes` when
    /// converted).
    pub written_bytes: u64,
    /// The encoding of the original file; see [`Encoding::label`].
    pub encoding: &'static str,
    /// The encoding of the bytes written to the sink.
    pub written_encoding: &'static str,
    pub delimiter: Option<char>,
    /// Records, header included; blank lines are not records.
    pub rows: u64,
    /// The largest number of fields in a record.
    pub columns: u32,
    /// Not every record has the same number of fields.
    pub ragged: bool,
    /// The first record looks like a header (names, where the next records
    /// have numbers, dates or times).
    pub header: bool,
    /// False when counting stopped at a record larger than
    /// [`MAX_RECORD_BYTES`]: `rows` and `columns` then cover the file only up
    /// to there (the bytes written are still the whole file).
    pub counts_complete: bool,
    /// For an 8-bit file that another code page would also read as text, but
    /// differently: the choice and its confidence, for the log.
    pub code_page_choice: Option<CodePageChoice>,
}

impl Prepared {
    /// The upload's metadata. `source_file` is the file's name and
    /// `modified_at` its mtime, as the caller observed them.
    pub fn metadata(&self, source_file: &str, modified_at: SystemTime) -> BTreeMap<String, Value> {
        let mut metadata = BTreeMap::new();
        let mut put = |key: &str, value: Value| {
            metadata.insert(key.to_owned(), value);
        };
        put("encoding", self.written_encoding.into());
        put("original_encoding", self.encoding.into());
        put(
            "delimiter",
            self.delimiter.map_or(Value::Null, |d| d.to_string().into()),
        );
        put("rows", self.rows.into());
        put("columns", self.columns.into());
        put("ragged", self.ragged.into());
        put("header", self.header.into());
        if !self.counts_complete {
            put("counts_complete", false.into());
        }
        put("original_sha256", self.sha256.clone().into());
        put("original_size", self.original_bytes.into());
        put("source_file", source_file.into());
        put(
            "modified_at",
            DateTime::<Utc>::from(modified_at)
                .to_rfc3339_opts(SecondsFormat::Secs, true)
                .into(),
        );
        metadata
    }
}

/// Refuses `path` when it is a symbolic link (the last component; the
/// import folder itself is the admin's choice) whose owner does not own
/// `opened`, the file actually opened through it.
#[cfg(unix)]
fn check_link_owner(path: &Path, opened: &std::fs::Metadata) -> Result<(), PipelineError> {
    use std::os::unix::fs::MetadataExt;
    let link = std::fs::symlink_metadata(path).map_err(|source| classify_io(path, source))?;
    if link.file_type().is_symlink() && link.uid() != opened.uid() {
        return Err(PipelineError::ForeignLink {
            path: path.to_path_buf(),
            link_owner: link.uid(),
            file_owner: opened.uid(),
        });
    }
    Ok(())
}

/// Reads the file at `path` once, writes its bytes (UTF-16 and windows-1254
/// converted to UTF-8) to `sink`, and returns its checksum, encoding and
/// counts. Stops at the first NUL byte or once `max_bytes` is exceeded; the
/// sink then holds a partial file, which the caller discards (as after
/// [`PipelineError::EncodingRevised`], then to call [`prepare_as`]).
pub fn prepare<W: Write + Send>(
    path: &Path,
    sink: &mut W,
    max_bytes: u64,
) -> Result<Prepared, PipelineError> {
    prepare_as(path, sink, max_bytes, None)
}

/// [`prepare`], reading the file as `encoding` when given (what
/// [`PipelineError::EncodingRevised`] said) instead of what its first bytes
/// suggest.
pub fn prepare_as<W: Write + Send>(
    path: &Path,
    sink: &mut W,
    max_bytes: u64,
    encoding: Option<Encoding>,
) -> Result<Prepared, PipelineError> {
    let io_error = |source: io::Error| classify_io(path, source);
    let file = File::open(path).map_err(io_error)?;
    let before = file.metadata().map_err(io_error)?;
    // Checked on the open file, so swapping the link after the check
    // changes nothing about what is read.
    #[cfg(unix)]
    check_link_owner(path, &before)?;
    if before.len() > max_bytes {
        return Err(PipelineError::TooLarge {
            size: before.len(),
            max: max_bytes,
        });
    }

    let prepared = pass(path, file, sink, max_bytes, encoding)?;
    check_unchanged(path, &before, prepared.original_bytes)?;
    Ok(prepared)
}

/// The pass of [`prepare`] over any reader, without the checks on the file
/// itself (its size before reading, and that it did not change while read).
/// `path` only names the source in errors. Pure when `source` is in memory,
/// which is how the fuzzer drives the sniffing, conversion and counting.
pub fn prepare_from<R: Read + Unpin + Send, W: Write + Send>(
    path: &Path,
    source: R,
    sink: &mut W,
    max_bytes: u64,
) -> Result<Prepared, PipelineError> {
    pass(path, source, sink, max_bytes, None)
}

fn pass<R: Read + Unpin + Send, W: Write + Send>(
    path: &Path,
    mut source: R,
    sink: &mut W,
    max_bytes: u64,
    forced: Option<Encoding>,
) -> Result<Prepared, PipelineError> {
    let prefix = read_prefix(&mut source).map_err(|error| classify_io(path, error))?;
    let at_eof = prefix.len() < SNIFF_LEN;
    let mut sniffed = sniff::sniff(&prefix, at_eof).map_err(|not_text| PipelineError::NotText {
        offset: not_text.offset,
    })?;
    if let Some(encoding) = forced {
        sniffed.encoding = encoding;
    }

    let tee = Tee::new(path, source, prefix, sniffed.encoding, sink, max_bytes);
    let delimiter = sniffed.delimiter.map_or(NO_DELIMITER, |d| d as u8);
    let mut reader = AsyncReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(BUFFER_SIZE)
        .create_reader(tee);

    let counted = futures::executor::block_on(async {
        let mut counts = Counts::default();
        let mut record = ByteRecord::new();
        loop {
            match reader.read_byte_record(&mut record).await {
                Ok(true) => {
                    counts.add(&record);
                    let end = reader.position().byte();
                    reader.get_mut().parsed_up_to = end;
                }
                Ok(false) => return Ok(counts),
                Err(error) => return Err(error),
            }
        }
    });
    let mut tee = reader.into_inner();
    if let Some(failure) = tee.failure.take() {
        return Err(failure);
    }
    // With byte records and `flexible`, csv-async has no error of its own; an
    // I/O error not recorded by the tee would be a bug, reported as I/O.
    let counts = counted.map_err(|error| PipelineError::Io {
        path: path.to_owned(),
        source: io::Error::other(error.to_string()),
    })?;
    // csv-async may stop before the end of the file: at an oversized record
    // (`parse_cut`), or when its first read holds nothing but a UTF-8 BOM
    // (csv-core strips it and takes the empty rest for the end). Whatever
    // it did not read still goes to the sink; its records are not counted.
    let uncounted = tee.pump_rest()?;
    let counts_complete = !tee.parse_cut && uncounted == 0;
    let (encoding, code_page_choice) = match forced {
        Some(encoding) => (encoding, tee.code_page_choice()),
        None => tee.final_encoding(sniffed.encoding),
    };
    if encoding.conversion() != sniffed.encoding.conversion() {
        return Err(PipelineError::EncodingRevised {
            path: path.to_owned(),
            sniffed: sniffed.encoding,
            encoding,
        });
    }
    let (hasher, original_bytes, written_bytes) =
        (tee.hasher, tee.original_bytes, tee.written_bytes);
    sink.flush().map_err(PipelineError::Sink)?;

    Ok(Prepared {
        sha256: hex::encode(hasher.finalize()),
        original_bytes,
        written_bytes,
        encoding: encoding.label(),
        written_encoding: encoding.after_conversion().label(),
        delimiter: sniffed.delimiter,
        rows: counts.rows,
        columns: counts.columns,
        ragged: counts.ragged,
        header: counts.header.header_likely(),
        counts_complete,
        code_page_choice,
    })
}

/// The delimiter for a file without one: NUL, which a text file does not
/// contain, so every record is one field.
const NO_DELIMITER: u8 = 0;

fn read_prefix<R: Read>(source: &mut R) -> io::Result<Vec<u8>> {
    let mut prefix = Vec::with_capacity(SNIFF_LEN);
    Read::by_ref(source)
        .take(SNIFF_LEN as u64)
        .read_to_end(&mut prefix)?;
    Ok(prefix)
}

fn classify_io(path: &Path, source: io::Error) -> PipelineError {
    if source.kind() == io::ErrorKind::NotFound {
        PipelineError::Vanished {
            path: path.to_owned(),
        }
    } else {
        PipelineError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// The file must still be there, as it was when opened, and all of it read.
fn check_unchanged(
    path: &Path,
    before: &std::fs::Metadata,
    bytes_read: u64,
) -> Result<(), PipelineError> {
    let after = std::fs::metadata(path).map_err(|source| classify_io(path, source))?;
    let same_mtime = match (before.modified(), after.modified()) {
        (Ok(before), Ok(after)) => before == after,
        _ => true, // no mtime on this platform: size is all we can compare
    };
    if after.len() != before.len() || bytes_read != before.len() || !same_mtime {
        return Err(PipelineError::Changed {
            path: path.to_owned(),
        });
    }
    Ok(())
}

#[derive(Debug, Default)]
struct Counts {
    rows: u64,
    columns: u32,
    first_columns: Option<u32>,
    ragged: bool,
    header: HeaderGuess,
}

impl Counts {
    fn add(&mut self, record: &ByteRecord) {
        let fields = u32::try_from(record.len()).unwrap_or(u32::MAX);
        self.rows += 1;
        self.columns = self.columns.max(fields);
        match self.first_columns {
            None => self.first_columns = Some(fields),
            Some(first) => self.ragged |= first != fields,
        }
        if self.header.wants_more() {
            self.header.observe(record.iter());
        }
    }
}

/// The reader csv-async pulls from; see the module documentation.
struct Tee<'a, R: Read, W: Write> {
    path: &'a Path,
    source: R,
    /// The bytes already read for sniffing, served before the file's next.
    prefix: Vec<u8>,
    prefix_served: usize,
    /// For converted encodings only: the raw chunk, and its conversion not
    /// yet handed out.
    decoder: Option<Decoder>,
    raw: Vec<u8>,
    converted: Vec<u8>,
    converted_served: usize,
    source_done: bool,

    hasher: Sha256,
    original_bytes: u64,
    written_bytes: u64,
    max_bytes: u64,
    check_nul: bool,
    /// Present while the file is still valid UTF-8.
    utf8: Option<Utf8Validator>,
    /// Present once the file is known to be 8-bit.
    eight_bit: Option<EightBitStats>,
    sink: &'a mut W,
    /// The error that stopped the pass; csv-async only sees a generic one.
    failure: Option<PipelineError>,

    /// Bytes handed to csv-async, and its position after the last record.
    delivered: u64,
    parsed_up_to: u64,
    /// Counting stopped at an oversized record.
    parse_cut: bool,
}

impl<'a, R: Read, W: Write> Tee<'a, R, W> {
    fn new(
        path: &'a Path,
        source: R,
        prefix: Vec<u8>,
        encoding: Encoding,
        sink: &'a mut W,
        max_bytes: u64,
    ) -> Self {
        let decoder = encoding.conversion().map(|from| {
            if encoding.is_utf16() {
                from.new_decoder_with_bom_removal()
            } else {
                from.new_decoder_without_bom_handling()
            }
        });
        let (raw, converted) = match &decoder {
            Some(decoder) => (
                vec![0; BUFFER_SIZE],
                Vec::with_capacity(
                    decoder
                        .max_utf8_buffer_length(BUFFER_SIZE)
                        .unwrap_or(BUFFER_SIZE * 3),
                ),
            ),
            None => (Vec::new(), Vec::new()),
        };
        Tee {
            path,
            source,
            prefix,
            prefix_served: 0,
            decoder,
            raw,
            converted,
            converted_served: 0,
            source_done: false,
            hasher: Sha256::new(),
            original_bytes: 0,
            written_bytes: 0,
            max_bytes,
            check_nul: !encoding.is_utf16(),
            utf8: encoding.is_utf8().then(Utf8Validator::default),
            eight_bit: encoding.is_eight_bit().then(EightBitStats::default),
            sink,
            failure: None,
            delivered: 0,
            parsed_up_to: 0,
            parse_cut: false,
        }
    }

    /// The next original bytes (the sniffed prefix first), inspected.
    fn read_source(&mut self, dst: &mut [u8]) -> Result<usize, PipelineError> {
        let read = if self.prefix_served < self.prefix.len() {
            let rest = &self.prefix[self.prefix_served..];
            let n = rest.len().min(dst.len());
            dst[..n].copy_from_slice(&rest[..n]);
            self.prefix_served += n;
            if self.prefix_served == self.prefix.len() {
                self.prefix = Vec::new();
                self.prefix_served = 0;
            }
            n
        } else {
            loop {
                match self.source.read(dst) {
                    Ok(n) => break n,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    Err(error) => return Err(classify_io(self.path, error)),
                }
            }
        };
        self.inspect(&dst[..read])?;
        Ok(read)
    }

    fn inspect(&mut self, bytes: &[u8]) -> Result<(), PipelineError> {
        let offset = self.original_bytes;
        self.original_bytes += bytes.len() as u64;
        if self.original_bytes > self.max_bytes {
            return Err(PipelineError::TooLarge {
                size: self.original_bytes,
                max: self.max_bytes,
            });
        }
        if self.check_nul {
            if let Some(at) = sniff::find_nul(bytes) {
                return Err(PipelineError::NotText {
                    offset: offset + at as u64,
                });
            }
        }
        self.hasher.update(bytes);
        if let Some(validator) = &mut self.utf8 {
            if !validator.feed(bytes) {
                self.utf8 = None;
                self.eight_bit = Some(EightBitStats::default());
            }
        }
        if let Some(stats) = &mut self.eight_bit {
            stats.feed(bytes);
        }
        Ok(())
    }

    fn write_sink(&mut self, bytes: &[u8]) -> Result<(), PipelineError> {
        self.sink.write_all(bytes).map_err(PipelineError::Sink)?;
        self.written_bytes += bytes.len() as u64;
        Ok(())
    }

    /// Fills `buf` with the next bytes for csv-async, after writing them to
    /// the sink. 0 at the end of the file.
    fn next_chunk(&mut self, buf: &mut [u8]) -> Result<usize, PipelineError> {
        if self.decoder.is_none() {
            let n = self.read_source(buf)?;
            self.write_sink(&buf[..n])?;
            return Ok(n);
        }
        loop {
            let pending = &self.converted[self.converted_served..];
            if !pending.is_empty() {
                let n = pending.len().min(buf.len());
                buf[..n].copy_from_slice(&pending[..n]);
                self.converted_served += n;
                return Ok(n);
            }
            if self.source_done {
                return Ok(0);
            }
            self.convert_next()?;
        }
    }

    /// Reads and converts one raw chunk into `converted`, and writes it out.
    fn convert_next(&mut self) -> Result<(), PipelineError> {
        let mut raw = std::mem::take(&mut self.raw);
        let read = self.read_source(&mut raw);
        let result = read.and_then(|n| {
            let last = n == 0;
            let decoder = self
                .decoder
                .as_mut()
                .expect("a converted encoding has a decoder");
            self.converted.clear();
            self.converted_served = 0;
            let mut input = &raw[..n];
            loop {
                let spare = self.converted.capacity() - self.converted.len();
                let needed = decoder
                    .max_utf8_buffer_length(input.len())
                    .unwrap_or(usize::MAX);
                if spare < needed.min(BUFFER_SIZE * 3) {
                    self.converted.reserve(needed.min(BUFFER_SIZE * 3));
                }
                let start = self.converted.len();
                self.converted.resize(self.converted.capacity(), 0);
                let (result, consumed, written, _replaced) =
                    decoder.decode_to_utf8(input, &mut self.converted[start..], last);
                self.converted.truncate(start + written);
                input = &input[consumed..];
                if result == encoding_rs::CoderResult::InputEmpty {
                    break;
                }
            }
            self.source_done = last;
            let converted = std::mem::take(&mut self.converted);
            let written = self.write_sink(&converted);
            self.converted = converted;
            written
        });
        self.raw = raw;
        result
    }

    /// Hashes and forwards the rest of the file without counting; returns
    /// the number of bytes forwarded.
    fn pump_rest(&mut self) -> Result<u64, PipelineError> {
        let mut scratch = vec![0; BUFFER_SIZE];
        let mut pumped = 0;
        loop {
            match self.next_chunk(&mut scratch)? {
                0 => return Ok(pumped),
                n => pumped += n as u64,
            }
        }
    }

    /// The encoding of the whole file, and for an 8-bit one the choice of
    /// its code page when another would read it differently.
    fn final_encoding(&mut self, sniffed: Encoding) -> (Encoding, Option<CodePageChoice>) {
        if let Some(validator) = &mut self.utf8 {
            if validator.finish() {
                return (sniffed, None);
            }
        }
        match &self.eight_bit {
            Some(stats) => (stats.guess(), self.code_page_choice()),
            // A UTF-8 file whose only fault is a character cut by its end.
            None if sniffed.is_utf8() => (EightBitStats::default().guess(), None),
            None => (sniffed, None),
        }
    }

    fn code_page_choice(&self) -> Option<CodePageChoice> {
        self.eight_bit
            .as_ref()
            .map(EightBitStats::choice)
            .filter(|choice| choice.runner_up.is_some())
    }
}

impl<R: Read + Unpin, W: Write> futures::io::AsyncRead for Tee<'_, R, W> {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.failure.is_some() {
            return Poll::Ready(Err(io::Error::other("the CSV pass stopped")));
        }
        if this.parse_cut || this.delivered - this.parsed_up_to > MAX_RECORD_BYTES {
            // An end of input for csv-async only: it completes the record it
            // holds, and `prepare` pumps the rest.
            this.parse_cut = true;
            return Poll::Ready(Ok(0));
        }
        match this.next_chunk(buf) {
            Ok(n) => {
                this.delivered += n as u64;
                Poll::Ready(Ok(n))
            }
            Err(failure) => {
                let message = failure.to_string();
                this.failure = Some(failure);
                Poll::Ready(Err(io::Error::other(message)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufWriter;

    const HEADER: &str = "Queue;Date;Time;IncomingCalls;AnsweredCalls;AHT\n";

    fn interval_rows(rows: usize) -> String {
        let mut text = String::from(HEADER);
        for n in 0..rows {
            text.push_str(&format!(
                "My Inbound Queue {};25/05/2020;{:02}:{:02};15;14;230\n",
                n % 7,
                (n / 4) % 24,
                (n % 4) * 15
            ));
        }
        text
    }

    fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    fn run(path: &Path) -> (Result<Prepared, PipelineError>, Vec<u8>) {
        let mut sink = Vec::new();
        let result = prepare(path, &mut sink, u64::MAX);
        (result, sink)
    }

    fn utf16le(text: &str) -> Vec<u8> {
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        bytes
    }

    #[test]
    fn utf8_passes_through_with_checksum_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let text = interval_rows(9);
        let path = write_file(dir.path(), "interval.csv", text.as_bytes());
        let (result, sink) = run(&path);
        let prepared = result.unwrap();
        assert_eq!(sink, text.as_bytes());
        assert_eq!(
            prepared,
            Prepared {
                sha256: sha256_hex(text.as_bytes()),
                original_bytes: text.len() as u64,
                written_bytes: text.len() as u64,
                encoding: "utf-8",
                written_encoding: "utf-8",
                delimiter: Some(';'),
                rows: 10,
                columns: 6,
                ragged: false,
                header: true,
                counts_complete: true,
                code_page_choice: None,
            }
        );
    }

    #[test]
    fn a_utf16_file_cut_in_a_character_ends_in_a_replacement_character() {
        // Found by fuzzing (fuzz/fuzz_targets/csv_count.rs): csv-async
        // stopped reading after a first chunk of only a UTF-8 BOM (here the
        // converted U+FEFF), so the rest, the U+FFFD of the cut character,
        // never reached the spool.
        let mut sink = Vec::new();
        let file: &[u8] = &[0xFE, 0xFF, 0xFE, 0xFF, 0xFE];
        let prepared = prepare_from(Path::new("cut.csv"), file, &mut sink, u64::MAX).unwrap();
        assert_eq!(sink, "\u{feff}\u{fffd}".as_bytes());
        assert_eq!(prepared.written_bytes, 6);
        // The counting stopped after the BOM (csv-core takes a first read of
        // only a BOM for the end), and says so.
        assert!(!prepared.counts_complete);
    }

    #[test]
    fn utf16_is_converted_to_utf8_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        // Non-ASCII (2-, 3- and 4-byte UTF-8, a surrogate pair in UTF-16) all
        // along a file spanning several chunks and the sniffed prefix.
        let mut text = String::from("Queue;Date;Calls\n");
        for n in 0..12_000 {
            text.push_str(&format!("File d'attente é Ğ € 𝄞 {n};25/05/2020;{n}\n"));
        }
        let mut big_endian = vec![0xFE, 0xFF];
        big_endian.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
        for (bytes, label) in [(utf16le(&text), "utf-16le"), (big_endian, "utf-16be")] {
            assert!(bytes.len() > 3 * BUFFER_SIZE);
            let path = write_file(dir.path(), "interval-utf16.csv", &bytes);
            let (result, sink) = run(&path);
            let prepared = result.unwrap();
            assert!(sink == text.as_bytes(), "{label}: converted text differs");
            assert_eq!(prepared.sha256, sha256_hex(&bytes));
            assert_eq!(prepared.original_bytes, bytes.len() as u64);
            assert_eq!(prepared.written_bytes, text.len() as u64);
            assert_eq!(prepared.encoding, label);
            assert_eq!(prepared.written_encoding, "utf-8");
            assert_eq!(prepared.delimiter, Some(';'));
            assert_eq!((prepared.rows, prepared.columns), (12_001, 3));
        }
    }

    #[test]
    fn ragged_file_with_quoted_line_breaks() {
        let dir = tempfile::tempdir().unwrap();
        let text = "StartDate,StartTime,AgentID,AgentActivityID,Comment\r\n\
                    2022-04-22,08:34:29,816,1013,\"left early,\r\nback at 10\"\r\n\
                    \r\n\
                    2022-04-22,08:40:02,817,1014\r\n\
                    2022-04-22,08:41:00,818,1013,\"say \"\"hi\"\"\",extra\r\n\
                    2022-04-22,08:42:00,819,1013,\"no newline at end\"";
        let path = write_file(dir.path(), "agent-status.csv", text.as_bytes());
        let (result, sink) = run(&path);
        let prepared = result.unwrap();
        assert_eq!(sink, text.as_bytes());
        assert_eq!(prepared.delimiter, Some(','));
        assert_eq!(prepared.rows, 5);
        assert_eq!(prepared.columns, 6);
        assert!(prepared.ragged);
        assert!(prepared.header);
    }

    #[test]
    fn single_column_file() {
        let dir = tempfile::tempdir().unwrap();
        let text = "AgentID\n816\n\"Smith, John\"\n817\n";
        let path = write_file(dir.path(), "agents.csv", text.as_bytes());
        let prepared = run(&path).0.unwrap();
        assert_eq!(prepared.delimiter, None);
        assert_eq!(
            (prepared.rows, prepared.columns, prepared.ragged),
            (4, 1, false)
        );
    }

    #[test]
    fn example_files_are_what_the_readme_says() {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let interval_utf8 = std::fs::read(examples.join("interval-utf8.csv")).unwrap();
        for (name, encoding, rows, columns) in [
            ("interval-utf8.csv", "utf-8", 11, 6),
            ("contact-windows1252.csv", "windows-1252", 9, 6),
            ("agent-status.csv", "utf-8", 9, 4),
            ("interval-utf16.csv", "utf-16le", 11, 6),
        ] {
            let (result, sink) = run(&examples.join(name));
            let prepared = result.unwrap();
            assert_eq!(prepared.encoding, encoding, "{name}");
            assert_eq!(prepared.delimiter, Some(';'), "{name}");
            assert_eq!((prepared.rows, prepared.columns), (rows, columns), "{name}");
            assert!(prepared.header && !prepared.ragged, "{name}");
            if name == "interval-utf16.csv" {
                let crlf = String::from_utf8(interval_utf8.clone()).unwrap();
                assert_eq!(sink, crlf.replace('\n', "\r\n").as_bytes());
            }
        }
    }

    #[test]
    fn empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "empty.csv", b"");
        let (result, sink) = run(&path);
        let prepared = result.unwrap();
        assert!(sink.is_empty());
        assert_eq!(prepared.sha256, sha256_hex(b""));
        assert_eq!(
            (prepared.rows, prepared.columns, prepared.header),
            (0, 0, false)
        );
    }

    #[test]
    fn too_large_stops_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let text = interval_rows(100);
        let path = write_file(dir.path(), "big.csv", text.as_bytes());
        let mut sink = Vec::new();
        let error = prepare(&path, &mut sink, 100).unwrap_err();
        assert!(
            matches!(error, PipelineError::TooLarge { size, max: 100 } if size == text.len() as u64),
            "{error:?}"
        );
        assert_eq!(error.refusal(), Some(RefusalReason::TooLarge));
        assert!(sink.is_empty());
    }

    #[test]
    fn nul_byte_stops_early() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = interval_rows(80_000).into_bytes();
        let offset = 1_000_003;
        bytes[offset] = 0;
        assert!(bytes.len() > offset + 4 * BUFFER_SIZE);
        let path = write_file(dir.path(), "report.csv", &bytes);
        let (result, sink) = run(&path);
        let error = result.unwrap_err();
        assert!(
            matches!(error, PipelineError::NotText { offset: at } if at == offset as u64),
            "{error:?}"
        );
        assert_eq!(error.refusal(), Some(RefusalReason::NotText));
        assert!(sink.len() <= offset, "wrote {} bytes", sink.len());

        // In the sniffed prefix: nothing is written at all.
        let path = write_file(dir.path(), "sheet.xlsx.csv", b"PK\x03\x04\x00\x00rest");
        let (result, sink) = run(&path);
        assert!(matches!(result, Err(PipelineError::NotText { offset: 4 })));
        assert!(sink.is_empty());
    }

    #[test]
    fn late_invalid_utf8_downgrades_to_an_8bit_encoding() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = interval_rows(20_000).into_bytes();
        assert!(bytes.len() > 2 * SNIFF_LEN);
        // Windows-1252: "Support Français é", "€ 5".
        bytes.extend_from_slice(b"Support Fran\xE7ais \xE9;25/05/2020;08:00;15;14;\x80 5\n");
        let path = write_file(dir.path(), "contact.csv", &bytes);
        let (result, sink) = run(&path);
        let prepared = result.unwrap();
        assert_eq!(prepared.encoding, "windows-1252");
        assert_eq!(prepared.written_encoding, "windows-1252");
        assert_eq!(sink, bytes, "8-bit files pass through unchanged");
        assert_eq!(prepared.sha256, sha256_hex(&bytes));
        assert_eq!(prepared.rows, 20_002);

        // Turkish (ISO-8859-9) text late in the file.
        let mut bytes = interval_rows(20_000).into_bytes();
        bytes.extend_from_slice(b"\xDDstanbul M\xFC\xFEteri;25/05/2020;08:00;1;1;1\n");
        bytes.extend_from_slice(b"A\xF0r\xFD;25/05/2020;08:00;1;1;1\n");
        let path = write_file(dir.path(), "turkish.csv", &bytes);
        assert_eq!(run(&path).0.unwrap().encoding, "iso-8859-9");

        // Valid UTF-8 throughout, with a character across a chunk boundary.
        let mut text = "x".repeat(BUFFER_SIZE - 1);
        text.push_str("é;ü\n");
        let path = write_file(dir.path(), "utf8.csv", text.as_bytes());
        assert_eq!(run(&path).0.unwrap().encoding, "utf-8");
    }

    fn windows_1254(text: &str) -> Vec<u8> {
        let (bytes, _, unmappable) = encoding_rs::WINDOWS_1254.encode(text);
        assert!(!unmappable);
        bytes.into_owned()
    }

    const TURKISH_EURO: &str =
        "Kuyruk;Tarih;Tutar\r\nİstanbul Çağrı Merkezi;25.05.2020;1.250,00 €\r\n\
        “Premium” Müşteri Hizmetleri – Ağrı;25.05.2020;98,50 €\r\n";

    #[test]
    fn windows_1254_is_converted_to_utf8() {
        let dir = tempfile::tempdir().unwrap();
        // Across chunks, so the single-byte decoder carries on between them.
        let mut text = String::from(TURKISH_EURO);
        while text.len() < 3 * BUFFER_SIZE {
            text.push_str("Şikâyet Hattı Iğdır “gece”;25.05.2020;0,00 €\r\n");
        }
        let bytes = windows_1254(&text);
        let path = write_file(dir.path(), "tr.csv", &bytes);
        let (result, sink) = run(&path);
        let prepared = result.unwrap();
        assert!(sink == text.as_bytes(), "converted text differs");
        assert_eq!(prepared.encoding, "windows-1254");
        assert_eq!(prepared.written_encoding, "utf-8");
        assert_eq!(
            prepared.sha256,
            sha256_hex(&bytes),
            "the original's checksum"
        );
        assert_eq!(prepared.original_bytes, bytes.len() as u64);
        assert_eq!(prepared.written_bytes, text.len() as u64);
        let choice = prepared.code_page_choice.unwrap();
        assert_eq!(choice.runner_up, Some(Encoding::Windows1252));
        assert_eq!(choice.confidence_percent, 100);
    }

    #[test]
    fn a_code_page_decided_only_past_the_sniffed_part_reads_the_file_again() {
        let dir = tempfile::tempdir().unwrap();
        // Turkish letters at first (ISO-8859-9, sent as it is), a € only
        // past the first 64 KiB: the whole file is windows-1254.
        let mut text = String::from("Kuyruk;Tarih;Tutar\r\n");
        while text.len() < 2 * SNIFF_LEN {
            text.push_str("İstanbul Çağrı Merkezi;25.05.2020;1.250,00\r\n");
        }
        text.push_str("Müşteri Hizmetleri Ağrı;25.05.2020;98,50 €\r\n");
        let bytes = windows_1254(&text);
        let path = write_file(dir.path(), "late-euro.csv", &bytes);
        let error = run(&path).0.unwrap_err();
        assert!(
            matches!(
                error,
                PipelineError::EncodingRevised {
                    sniffed: Encoding::Iso8859_9,
                    encoding: Encoding::Windows1254,
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(error.refusal(), None);
        let mut sink = Vec::new();
        let prepared = prepare_as(&path, &mut sink, u64::MAX, Some(Encoding::Windows1254)).unwrap();
        assert!(sink == text.as_bytes(), "converted text differs");
        assert_eq!(prepared.encoding, "windows-1254");
        assert_eq!(prepared.written_encoding, "utf-8");

        // Without the €, the same file is ISO-8859-9 throughout: no second
        // read, the bytes pass unchanged.
        let text = text.replace(" €", "");
        let bytes = windows_1254(&text);
        let path = write_file(dir.path(), "no-euro.csv", &bytes);
        let (result, sink) = run(&path);
        assert_eq!(result.unwrap().encoding, "iso-8859-9");
        assert!(sink == bytes);
    }

    #[test]
    fn utf8_bom_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = b"\xEF\xBB\xBF".to_vec();
        bytes.extend_from_slice(interval_rows(3).as_bytes());
        let path = write_file(dir.path(), "bom.csv", &bytes);
        let (result, sink) = run(&path);
        let prepared = result.unwrap();
        assert_eq!(prepared.encoding, "utf-8-bom");
        assert_eq!(sink, bytes);
        assert!(prepared.header);
    }

    #[test]
    fn unbalanced_quote_stops_counting_but_not_the_upload() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = interval_rows(10);
        text.push_str("\"oops;25/05/2020;08:00;1;1;1\n");
        text.push_str(&interval_rows(60_000));
        assert!(text.len() as u64 > 2 * MAX_RECORD_BYTES);
        let path = write_file(dir.path(), "broken.csv", text.as_bytes());
        let (result, sink) = run(&path);
        let prepared = result.unwrap();
        assert!(!prepared.counts_complete);
        assert_eq!(prepared.rows, 12);
        assert!(sink == text.as_bytes());
        assert_eq!(prepared.sha256, sha256_hex(text.as_bytes()));
        let metadata = prepared.metadata("broken.csv", SystemTime::UNIX_EPOCH);
        assert_eq!(metadata["counts_complete"], false);
    }

    #[cfg(unix)]
    #[test]
    fn a_link_to_another_users_file_is_refused_and_to_its_owners_followed() {
        use std::os::unix::fs::{lchown, symlink};
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: giving a link to another user needs root (CI runs as root)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let secret = write_file(dir.path(), "root-only.txt", interval_rows(2).as_bytes());
        // A user who may write into the import folder links to root's file.
        let foreign = dir.path().join("x.csv");
        symlink(&secret, &foreign).unwrap();
        lchown(&foreign, Some(65534), Some(65534)).unwrap();
        let (result, sink) = run(&foreign);
        let error = result.unwrap_err();
        assert!(
            matches!(
                error,
                PipelineError::ForeignLink {
                    link_owner: 65534,
                    file_owner: 0,
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(error.refusal(), Some(RefusalReason::ForeignLink));
        assert!(sink.is_empty(), "nothing read");
        // The owner's own link is followed.
        let own = dir.path().join("y.csv");
        symlink(&secret, &own).unwrap();
        let (result, sink) = run(&own);
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(sink, interval_rows(2).as_bytes());
    }

    #[test]
    fn missing_file_has_vanished() {
        let dir = tempfile::tempdir().unwrap();
        let error = run(&dir.path().join("gone.csv")).0.unwrap_err();
        assert!(matches!(error, PipelineError::Vanished { .. }), "{error:?}");
        assert_eq!(error.refusal(), None);
    }

    /// Appends `extra` to the file being read, once, at the first write:
    /// like a writer that was not done with it.
    struct AppendingSink {
        path: PathBuf,
        extra: Vec<u8>,
        appended: bool,
    }

    impl AppendingSink {
        fn new(path: &Path, extra: impl Into<Vec<u8>>) -> Self {
            AppendingSink {
                path: path.to_path_buf(),
                extra: extra.into(),
                appended: false,
            }
        }
    }

    impl Write for AppendingSink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if !self.appended {
                let mut file = std::fs::OpenOptions::new().append(true).open(&self.path)?;
                file.write_all(&self.extra)?;
                self.appended = true;
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn file_written_during_the_pass_is_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "busy.csv", interval_rows(100).as_bytes());
        let mut sink = AppendingSink::new(&path, &b"late;row;1;2;3;4\n"[..]);
        let error = prepare(&path, &mut sink, u64::MAX).unwrap_err();
        assert!(matches!(error, PipelineError::Changed { .. }), "{error:?}");
    }

    #[test]
    fn growing_past_the_limit_while_read_is_too_large() {
        let dir = tempfile::tempdir().unwrap();
        let text = interval_rows(5_000);
        assert!(text.len() > SNIFF_LEN);
        let path = write_file(dir.path(), "growing.csv", text.as_bytes());
        let max = text.len() as u64 + 1000;
        // The file grows past the limit while it is read.
        let mut sink = AppendingSink::new(&path, interval_rows(50_000));
        let error = prepare(&path, &mut sink, max).unwrap_err();
        assert!(
            matches!(error, PipelineError::TooLarge { size, max: m } if size > max && m == max),
            "{error:?}"
        );
    }

    struct FailingSink;

    impl Write for FailingSink {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn sink_error_is_reported_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "a.csv", interval_rows(10).as_bytes());
        let error = prepare(&path, &mut FailingSink, u64::MAX).unwrap_err();
        assert!(matches!(&error, PipelineError::Sink(e) if e.to_string() == "disk full"));
    }

    #[test]
    fn metadata_for_the_upload() {
        let prepared = Prepared {
            sha256: "ab".repeat(32),
            original_bytes: 200,
            written_bytes: 100,
            encoding: "utf-16le",
            written_encoding: "utf-8",
            delimiter: Some(';'),
            rows: 10,
            columns: 6,
            ragged: false,
            header: true,
            counts_complete: true,
            code_page_choice: None,
        };
        let mtime = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_590_393_600);
        let metadata = prepared.metadata("interval.csv", mtime);
        let expected = serde_json::json!({
            "encoding": "utf-8",
            "original_encoding": "utf-16le",
            "delimiter": ";",
            "rows": 10,
            "columns": 6,
            "ragged": false,
            "header": true,
            "original_sha256": "ab".repeat(32),
            "original_size": 200,
            "source_file": "interval.csv",
            "modified_at": "2020-05-25T08:00:00Z",
        });
        assert_eq!(serde_json::to_value(&metadata).unwrap(), expected);
        let single_column = Prepared {
            delimiter: None,
            ..prepared
        };
        assert_eq!(single_column.metadata("a", mtime)["delimiter"], Value::Null);
    }

    /// Writes `rows` interval rows to `path` without holding them in memory.
    fn generate(path: &Path, min_bytes: u64) -> u64 {
        let mut out = BufWriter::new(File::create(path).unwrap());
        out.write_all(HEADER.as_bytes()).unwrap();
        let mut written = HEADER.len() as u64;
        let mut n = 0u64;
        while written < min_bytes {
            let row = format!(
                "My Inbound Queue {};25/05/2020;{:02}:{:02};{};{};{}\n",
                n % 13,
                (n / 4) % 24,
                (n % 4) * 15,
                n % 97,
                n % 89,
                100 + n % 400
            );
            out.write_all(row.as_bytes()).unwrap();
            written += row.len() as u64;
            n += 1;
        }
        out.flush().unwrap();
        written
    }

    #[cfg(target_os = "linux")]
    fn peak_rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    #[cfg(target_os = "linux")]
    const MEMORY_PROBE_FILE: &str = "INJIXO_CSV_MEMORY_PROBE_FILE";

    /// Runs in a process of its own (see the next test), so that its peak RSS
    /// is this pass's and not that of tests running beside it.
    #[cfg(target_os = "linux")]
    #[test]
    #[ignore = "run by fifty_megabytes_stream_with_flat_memory in a child process"]
    fn memory_probe() {
        let Some(path) = std::env::var_os(MEMORY_PROBE_FILE) else {
            return;
        };
        let prepared = prepare(Path::new(&path), &mut io::sink(), u64::MAX).unwrap();
        assert!(prepared.counts_complete);
        println!(
            "probe: bytes={} peak_rss_kib={}",
            prepared.original_bytes,
            peak_rss_kib()
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn fifty_megabytes_stream_with_flat_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.csv");
        let size = generate(&path, 50 << 20);
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "csv::pipeline::tests::memory_probe"])
            .args(["--ignored", "--nocapture", "--test-threads=1"])
            .env(MEMORY_PROBE_FILE, &path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}");
        let field = |name: &str| -> u64 {
            let start = stdout.find(name).unwrap_or_else(|| panic!("{stdout}")) + name.len();
            let digits: String = stdout[start..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().unwrap()
        };
        assert_eq!(field("bytes="), size);
        let peak_mib = field("peak_rss_kib=") / 1024;
        // The whole test process, harness included; a pass that buffered the
        // file would need 50 MiB for it alone.
        assert!(peak_mib < 32, "peak RSS {peak_mib} MiB");
    }

    /// `cargo test --release -p injixo-cloud-link --lib csv::pipeline::tests::throughput -- --ignored --nocapture`
    #[test]
    #[ignore = "benchmark: run in release with --nocapture"]
    fn throughput() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.csv");
        let size = generate(&path, 200 << 20);
        // Warm the page cache so the figure is the pipeline's, not the disk's.
        std::io::copy(&mut File::open(&path).unwrap(), &mut io::sink()).unwrap();
        let mb = size as f64 / 1e6;

        let started = std::time::Instant::now();
        let prepared = prepare(&path, &mut io::sink(), u64::MAX).unwrap();
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "pipeline: {mb:.0} MB, {} rows in {seconds:.2} s = {:.0} MB/s",
            prepared.rows,
            mb / seconds
        );

        let started = std::time::Instant::now();
        let mut file = File::open(&path).unwrap();
        let mut buffer = vec![0; BUFFER_SIZE];
        let mut hasher = Sha256::new();
        loop {
            let n = file.read(&mut buffer).unwrap();
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
        }
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(hex::encode(hasher.finalize()), prepared.sha256);
        println!("read + sha256 alone: {:.0} MB/s", mb / seconds);

        let small: Vec<PathBuf> = (0..1000)
            .map(|n| {
                write_file(
                    dir.path(),
                    &format!("small-{n}.csv"),
                    interval_rows(20).as_bytes(),
                )
            })
            .collect();
        let started = std::time::Instant::now();
        for path in &small {
            prepare(path, &mut io::sink(), u64::MAX).unwrap();
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "small files (21 rows): {:.0} files/s",
            small.len() as f64 / seconds
        );
    }
}
