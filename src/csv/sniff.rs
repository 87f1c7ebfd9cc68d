//! What a file looks like from its first bytes: its encoding, whether it is
//! text at all, and its delimiter. Also the incremental checks the pipeline
//! keeps running over the rest of the file ([`Utf8Validator`],
//! [`EightBitStats`], [`HeaderGuess`]), because a prefix can be misleading.
//!
//! The result is metadata for the upload: the cloud's per-integration schema
//! has the final say on how the file is parsed. Only the encodings the cloud
//! does not take change what the client does: UTF-16 and windows-1254 are
//! converted to UTF-8.

use encoding_rs::{UTF_16BE, UTF_16LE, WINDOWS_1252, WINDOWS_1254};

/// How much of a file [`sniff`] is meant to see.
pub const SNIFF_LEN: usize = 64 * 1024;

/// Records looked at for the delimiter: enough for a stable count, few enough
/// that a long header comment cannot dominate.
const SNIFF_RECORDS: usize = 100;

/// Delimiters in order of preference when two are equally consistent.
const DELIMITERS: [u8; 4] = [b';', b',', b'\t', b'|'];

/// The encodings the cloud accepts, plus UTF-16 and windows-1254 (what Excel
/// writes on Turkish Windows), which are converted to UTF-8 on upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Utf8,
    Utf8Bom,
    Utf16Le,
    Utf16Be,
    Windows1252,
    Iso8859_1,
    Iso8859_9,
    Windows1254,
}

impl Encoding {
    /// The name sent as the upload's `encoding` metadata.
    pub fn label(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Utf8Bom => "utf-8-bom",
            Encoding::Utf16Le => "utf-16le",
            Encoding::Utf16Be => "utf-16be",
            Encoding::Windows1252 => "windows-1252",
            Encoding::Iso8859_1 => "iso-8859-1",
            Encoding::Iso8859_9 => "iso-8859-9",
            Encoding::Windows1254 => "windows-1254",
        }
    }

    pub fn is_utf16(self) -> bool {
        matches!(self, Encoding::Utf16Le | Encoding::Utf16Be)
    }

    pub fn is_utf8(self) -> bool {
        matches!(self, Encoding::Utf8 | Encoding::Utf8Bom)
    }

    pub fn is_eight_bit(self) -> bool {
        matches!(
            self,
            Encoding::Windows1252
                | Encoding::Iso8859_1
                | Encoding::Iso8859_9
                | Encoding::Windows1254
        )
    }

    /// The decoder the pipeline converts this encoding to UTF-8 with, for the
    /// encodings the cloud does not take (its label alone would not let the
    /// cloud read the text right); `None`: the bytes pass unchanged.
    pub fn conversion(self) -> Option<&'static encoding_rs::Encoding> {
        match self {
            Encoding::Utf16Le => Some(UTF_16LE),
            Encoding::Utf16Be => Some(UTF_16BE),
            Encoding::Windows1254 => Some(WINDOWS_1254),
            _ => None,
        }
    }

    /// The encoding the bytes are in once the pipeline has written them: UTF-16
    /// and windows-1254 leave as UTF-8 without a BOM, everything else
    /// unchanged.
    pub fn after_conversion(self) -> Encoding {
        if self.conversion().is_some() {
            Encoding::Utf8
        } else {
            self
        }
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// A NUL byte in a file that is not UTF-16: a binary file (a spreadsheet, an
/// archive), which the cloud could not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a text file (NUL byte at offset {offset})")]
pub struct NotText {
    pub offset: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    pub encoding: Encoding,
    /// `None` for a single-column file (no candidate used consistently).
    pub delimiter: Option<char>,
}

/// Looks at the first bytes of a file (up to [`SNIFF_LEN`]). `at_eof` says the
/// prefix is the whole file, so a cut character or record at its end is real
/// and not an artefact of the cut.
pub fn sniff(prefix: &[u8], at_eof: bool) -> Result<Sniffed, NotText> {
    let encoding = detect_encoding(prefix, at_eof)?;
    let delimiter = match encoding {
        Encoding::Utf16Le | Encoding::Utf16Be => {
            detect_delimiter(&decode_utf16_prefix(prefix, encoding, at_eof), at_eof)
        }
        _ => detect_delimiter(prefix, at_eof),
    };
    Ok(Sniffed {
        encoding,
        delimiter: delimiter.map(char::from),
    })
}

/// The encoding from a BOM, UTF-8 validity, or the 8-bit heuristics of
/// [`EightBitStats::guess`].
pub fn detect_encoding(prefix: &[u8], at_eof: bool) -> Result<Encoding, NotText> {
    if prefix.starts_with(&[0xFF, 0xFE]) {
        return Ok(Encoding::Utf16Le);
    }
    if prefix.starts_with(&[0xFE, 0xFF]) {
        return Ok(Encoding::Utf16Be);
    }
    if let Some(offset) = find_nul(prefix) {
        return Err(NotText {
            offset: offset as u64,
        });
    }
    let mut validator = Utf8Validator::default();
    validator.feed(prefix);
    if at_eof {
        validator.finish();
    }
    if validator.is_valid() {
        return Ok(if prefix.starts_with(&[0xEF, 0xBB, 0xBF]) {
            Encoding::Utf8Bom
        } else {
            Encoding::Utf8
        });
    }
    let mut stats = EightBitStats::default();
    stats.feed(prefix);
    Ok(stats.guess())
}

pub fn find_nul(bytes: &[u8]) -> Option<usize> {
    // `contains` on bytes is a word-at-a-time memchr; the exact position is
    // only needed in the rare case that there is one.
    if bytes.contains(&0) {
        bytes.iter().position(|&b| b == 0)
    } else {
        None
    }
}

fn decode_utf16_prefix(prefix: &[u8], encoding: Encoding, at_eof: bool) -> Vec<u8> {
    let mut decoder = match encoding {
        Encoding::Utf16Be => UTF_16BE.new_decoder_with_bom_removal(),
        _ => UTF_16LE.new_decoder_with_bom_removal(),
    };
    let mut out = vec![
        0;
        decoder
            .max_utf8_buffer_length(prefix.len())
            .unwrap_or(prefix.len() * 3)
    ];
    let (_, _, written, _) = decoder.decode_to_utf8(prefix, &mut out, at_eof);
    out.truncate(written);
    out
}

/// The delimiter whose count per record (outside quotes) is the same in the
/// most records, and not zero. Quoted fields may hold delimiters and line
/// breaks. Works on any ASCII-compatible bytes (UTF-8 or 8-bit).
pub fn detect_delimiter(text: &[u8], at_eof: bool) -> Option<u8> {
    let records = count_delimiters_per_record(text, at_eof);
    if records.is_empty() {
        return None;
    }
    let mut best: Option<(usize, u32, u8)> = None; // (records agreeing, count, delimiter)
    for (index, &delimiter) in DELIMITERS.iter().enumerate() {
        let (count, agreeing) = most_common_count(records.iter().map(|r| r[index]));
        if count == 0 {
            continue;
        }
        let better = match best {
            None => true,
            Some((best_agreeing, best_count, _)) => (agreeing, count) > (best_agreeing, best_count),
        };
        if better {
            best = Some((agreeing, count, delimiter));
        }
    }
    best.map(|(_, _, delimiter)| delimiter)
}

/// The count shared by most records (the larger one on a tie) and how many
/// records share it.
fn most_common_count(counts: impl Iterator<Item = u32>) -> (u32, usize) {
    let mut tally: Vec<(u32, usize)> = Vec::new();
    for count in counts {
        match tally.iter_mut().find(|(c, _)| *c == count) {
            Some((_, n)) => *n += 1,
            None => tally.push((count, 1)),
        }
    }
    tally
        .into_iter()
        .max_by_key(|&(count, n)| (n, count))
        .unwrap_or((0, 0))
}

/// Per record, the count of each of [`DELIMITERS`] outside quotes. Blank
/// lines are skipped; so is a last record cut by the end of the prefix.
fn count_delimiters_per_record(text: &[u8], at_eof: bool) -> Vec<[u32; 4]> {
    let mut records = Vec::new();
    let mut counts = [0u32; 4];
    let mut in_quotes = false;
    let mut blank = true;
    for &byte in text {
        if records.len() == SNIFF_RECORDS {
            return records;
        }
        match byte {
            // A doubled quote inside a quoted field toggles twice: no change.
            b'"' => {
                in_quotes = !in_quotes;
                blank = false;
            }
            b'\n' | b'\r' if !in_quotes => {
                if !blank {
                    records.push(counts);
                }
                counts = [0; 4];
                blank = true;
            }
            _ if in_quotes => {}
            _ => {
                if let Some(index) = DELIMITERS.iter().position(|&d| d == byte) {
                    counts[index] += 1;
                }
                if !byte.is_ascii_whitespace() {
                    blank = false;
                }
            }
        }
    }
    if at_eof && !blank && records.len() < SNIFF_RECORDS {
        records.push(counts);
    }
    records
}

/// UTF-8 validation fed in arbitrary chunks: a character split between two
/// chunks is carried over, so only a real error (or a character cut by the end
/// of the file, see [`finish`](Self::finish)) makes the stream invalid.
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    carry: [u8; 4],
    carry_len: usize,
    invalid: bool,
}

impl Utf8Validator {
    pub fn is_valid(&self) -> bool {
        !self.invalid
    }

    /// Feeds the next bytes; returns whether the stream is still valid.
    pub fn feed(&mut self, mut chunk: &[u8]) -> bool {
        if self.invalid {
            return false;
        }
        if self.carry_len > 0 {
            let width = utf8_width(self.carry[0]);
            let take = (width - self.carry_len).min(chunk.len());
            let mut joined = [0u8; 4];
            joined[..self.carry_len].copy_from_slice(&self.carry[..self.carry_len]);
            joined[self.carry_len..self.carry_len + take].copy_from_slice(&chunk[..take]);
            let joined = &joined[..self.carry_len + take];
            match std::str::from_utf8(joined) {
                Ok(_) => self.carry_len = 0,
                Err(error) if error.error_len().is_none() => {
                    self.carry[..joined.len()].copy_from_slice(joined);
                    self.carry_len = joined.len();
                    return true;
                }
                Err(_) => {
                    self.invalid = true;
                    return false;
                }
            }
            chunk = &chunk[take..];
        }
        match std::str::from_utf8(chunk) {
            Ok(_) => true,
            Err(error) if error.error_len().is_none() => {
                let tail = &chunk[error.valid_up_to()..];
                self.carry[..tail.len()].copy_from_slice(tail);
                self.carry_len = tail.len();
                true
            }
            Err(_) => {
                self.invalid = true;
                false
            }
        }
    }

    /// The end of the stream: a character still incomplete is an error.
    pub fn finish(&mut self) -> bool {
        if self.carry_len > 0 {
            self.invalid = true;
        }
        !self.invalid
    }
}

/// The length of the UTF-8 sequence a lead byte announces (1 for bytes that
/// cannot lead, so that they fail validation at once).
fn utf8_width(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 1,
    }
}

/// Byte statistics to tell apart the single-byte code pages: ISO-8859-1,
/// ISO-8859-9 and windows-1252, which the cloud accepts, and windows-1254,
/// what Excel writes on Turkish Windows. Only bytes 0x80–0xFF differ between
/// them, so only those are counted.
///
/// Each code page reads the counted bytes as characters, and the text it
/// reads is scored by how plausible its letters are for the languages that
/// use the code page ([`letter_weight`]): Turkish letters (ğ ı ş İ …) in a
/// Turkish code page, Western European letters (ä ß é è œ …) in a Western
/// one. A code page that leaves a byte undefined cannot be it; a C1 control
/// character (what the ISO code pages make of 0x80–0x9F, where the Windows
/// ones have € and curly quotes) costs much, since text never holds one.
/// On a tie (the code pages read the bytes alike), the first of
/// [`CODE_PAGES`] wins: windows-1252 (the superset of ISO-8859-1, what Excel
/// writes on Western European Windows; the WHATWG Encoding Standard reads the
/// label "iso-8859-1" as windows-1252 for the same reason), and ISO-8859-9
/// before windows-1254 (the same bytes without € and curly quotes, and a
/// label the cloud takes as it is).
#[derive(Debug, Clone)]
pub struct EightBitStats {
    high: [u64; 128],
}

impl Default for EightBitStats {
    fn default() -> Self {
        EightBitStats { high: [0; 128] }
    }
}

/// The single-byte code pages told apart, in order of preference on a tie.
pub const CODE_PAGES: [Encoding; 4] = [
    Encoding::Windows1252,
    Encoding::Iso8859_1,
    Encoding::Iso8859_9,
    Encoding::Windows1254,
];

/// Turkish letters outside ASCII, as a Turkish code page reads them.
const TURKISH_LETTERS: &str = "çğıöşüâîûÇĞİÖŞÜÂÎÛ";
/// Letters of a Western code page at the places where the Turkish code pages
/// have ğ ı ş Ğ İ Ş: Icelandic and Faroese, which the cloud does not support.
const RARE_WESTERN_LETTERS: &str = "ðýþÐÝÞ";
/// What a C1 control character costs: one outweighs several letters.
const C1_PENALTY: i64 = -20;

/// The character byte `byte` (0x80–0xFF) stands for in `code_page`; `None`
/// where the code page leaves it undefined.
fn decode_high(code_page: Encoding, byte: u8) -> Option<char> {
    let windows = match code_page {
        Encoding::Windows1254 => WINDOWS_1254,
        Encoding::Iso8859_9 if byte >= 0xA0 => WINDOWS_1254, // the same from 0xA0
        Encoding::Windows1252 => WINDOWS_1252,
        _ => return Some(char::from(byte)), // ISO: the byte is the code point
    };
    let bytes = [byte];
    let (text, _) = windows.decode_without_bom_handling(&bytes);
    let c = text.chars().next()?;
    // The WHATWG tables map the bytes windows-125x leaves undefined to the
    // C1 control of the same number.
    (!is_c1(c)).then_some(c)
}

fn is_c1(c: char) -> bool {
    ('\u{80}'..='\u{9f}').contains(&c)
}

/// How plausible `c` is in a text written in `code_page`.
pub fn letter_weight(code_page: Encoding, c: char) -> i64 {
    let turkish = matches!(code_page, Encoding::Iso8859_9 | Encoding::Windows1254);
    if is_c1(c) {
        C1_PENALTY
    } else if !c.is_alphabetic() {
        0 // symbols and punctuation: no evidence either way
    } else if turkish {
        // Other letters turn up in foreign names.
        if TURKISH_LETTERS.contains(c) {
            3
        } else {
            1
        }
    } else if RARE_WESTERN_LETTERS.contains(c) {
        0
    } else {
        3
    }
}

/// The code page a file is read as, and, when another one would read it as
/// text too but differently, which one and how sure the choice is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodePageChoice {
    pub encoding: Encoding,
    /// The best other code page that reads every byte as a printable
    /// character, but not as the same text.
    pub runner_up: Option<Encoding>,
    /// Of the evidence the two weigh differently, the share that speaks for
    /// `encoding`, in percent (50: a coin toss; 100 when there is no
    /// runner-up).
    pub confidence_percent: u8,
}

impl CodePageChoice {
    /// The log line for file `name` when two code pages fit (one line per
    /// file, saying what the cloud gets).
    pub fn log_line(&self, name: &str) -> Option<String> {
        let other = self.runner_up?;
        let converted = if self.encoding.conversion().is_some() {
            "; converted to UTF-8 for the cloud, which does not take it"
        } else {
            ""
        };
        Some(format!(
            "{name}: {} rather than {other}, by the letters it uses (confidence {} %){converted}",
            self.encoding, self.confidence_percent
        ))
    }
}

impl EightBitStats {
    pub fn feed(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if byte >= 0x80 {
                self.high[usize::from(byte - 0x80)] += 1;
            }
        }
    }

    /// The bytes seen, with how often.
    fn seen(&self) -> impl Iterator<Item = (u8, i64)> + '_ {
        (0x80..=0xFFu8)
            .map(|b| (b, self.high[usize::from(b - 0x80)] as i64))
            .filter(|&(_, n)| n > 0)
    }

    /// The plausibility of the text as `code_page` reads it; `None` if it
    /// leaves a byte seen undefined.
    fn score(&self, code_page: Encoding) -> Option<i64> {
        self.seen().try_fold(0i64, |sum, (byte, n)| {
            let c = decode_high(code_page, byte)?;
            Some(sum.saturating_add(n.saturating_mul(letter_weight(code_page, c))))
        })
    }

    /// Reads every byte seen as a printable character.
    fn fits(&self, code_page: Encoding) -> bool {
        self.seen()
            .all(|(byte, _)| decode_high(code_page, byte).is_some_and(|c| !is_c1(c)))
    }

    fn reads_alike(&self, a: Encoding, b: Encoding) -> bool {
        self.seen()
            .all(|(byte, _)| decode_high(a, byte) == decode_high(b, byte))
    }

    pub fn choice(&self) -> CodePageChoice {
        let mut best: Option<(Encoding, i64)> = None;
        for code_page in CODE_PAGES {
            if let Some(score) = self.score(code_page) {
                if best.is_none_or(|(_, top)| score > top) {
                    best = Some((code_page, score));
                }
            }
        }
        // ISO-8859-1 defines every byte, so there always is a best.
        let (encoding, _) = best.unwrap_or((Encoding::Iso8859_1, 0));
        let runner_up = CODE_PAGES
            .into_iter()
            .filter(|&other| {
                other != encoding && self.fits(other) && !self.reads_alike(encoding, other)
            })
            .filter_map(|other| Some((other, self.score(other)?)))
            .fold(
                None,
                |top: Option<(Encoding, i64)>, (other, score)| match top {
                    Some((_, best)) if best >= score => top,
                    _ => Some((other, score)),
                },
            )
            .map(|(other, _)| other);
        let confidence_percent = match runner_up {
            Some(other) => self.confidence(encoding, other),
            None => 100,
        };
        CodePageChoice {
            encoding,
            runner_up,
            confidence_percent,
        }
    }

    /// The share of the evidence for `chosen` over `other`, counting only the
    /// bytes the two weigh differently.
    fn confidence(&self, chosen: Encoding, other: Encoding) -> u8 {
        let (mut for_chosen, mut for_other) = (0i64, 0i64);
        for (byte, n) in self.seen() {
            let weight = |code_page| {
                decode_high(code_page, byte).map_or(C1_PENALTY, |c| letter_weight(code_page, c))
            };
            let (a, b) = (weight(chosen), weight(other));
            if a != b {
                // Shifted so that the weaker reading counts as no evidence.
                let low = a.min(b);
                for_chosen += n * (a - low);
                for_other += n * (b - low);
            }
        }
        match for_chosen + for_other {
            0 => 50,
            total => u8::try_from(for_chosen * 100 / total).unwrap_or(100),
        }
    }

    pub fn guess(&self) -> Encoding {
        self.choice().encoding
    }
}

/// Whether the first record is a header: none of its fields looks like a
/// number, date or time, while some field of the next records does.
#[derive(Debug, Clone, Default)]
pub struct HeaderGuess {
    first_has_value: Option<bool>,
    later_has_value: bool,
    records_seen: u32,
}

/// Records after the first that are looked at.
const HEADER_LOOKAHEAD: u32 = 20;

impl HeaderGuess {
    /// Whether more records would still change the guess.
    pub fn wants_more(&self) -> bool {
        self.records_seen <= HEADER_LOOKAHEAD && !self.later_has_value
    }

    pub fn observe<'a>(&mut self, mut fields: impl Iterator<Item = &'a [u8]>) {
        if !self.wants_more() {
            return;
        }
        let has_value = fields.any(looks_like_value);
        match self.first_has_value {
            None => self.first_has_value = Some(has_value),
            Some(_) => self.later_has_value |= has_value,
        }
        self.records_seen += 1;
    }

    pub fn header_likely(&self) -> bool {
        self.first_has_value == Some(false) && self.later_has_value
    }
}

/// `230`, `-1,5`, `25/05/2020`, `08:34:29`, `2022-04-22T08:00:00Z`, `1e3`:
/// digits and number/date punctuation, no words.
pub fn looks_like_value(field: &[u8]) -> bool {
    field.iter().any(u8::is_ascii_digit)
        && field
            .iter()
            .all(|&b| b.is_ascii_digit() || b" \t.,:-/+'%TZEe".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: &str = "Queue;Date;Time;IncomingCalls;AnsweredCalls;AHT\n\
        My Inbound Queue;25/05/2020;08:00;15;14;230\n\
        My Inbound Queue;25/05/2020;08:15;12;12;198\n";

    fn windows_1252(text: &str) -> Vec<u8> {
        let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(text);
        assert!(!unmappable);
        bytes.into_owned()
    }

    fn iso_8859_9(text: &str) -> Vec<u8> {
        // encoding_rs implements windows-1254, which equals ISO-8859-9 outside
        // 0x80–0x9F; the sample text uses none of those.
        let (bytes, _, unmappable) = encoding_rs::WINDOWS_1254.encode(text);
        assert!(!unmappable);
        assert!(!bytes.iter().any(|b| (0x80..=0x9F).contains(b)));
        bytes.into_owned()
    }

    fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
        let mut bytes = if big_endian {
            vec![0xFE, 0xFF]
        } else {
            vec![0xFF, 0xFE]
        };
        for unit in text.encode_utf16() {
            let pair = if big_endian {
                unit.to_be_bytes()
            } else {
                unit.to_le_bytes()
            };
            bytes.extend_from_slice(&pair);
        }
        bytes
    }

    #[test]
    fn plain_utf8_with_semicolons() {
        let sniffed = sniff(INTERVAL.as_bytes(), true).unwrap();
        assert_eq!(sniffed.encoding, Encoding::Utf8);
        assert_eq!(sniffed.encoding.label(), "utf-8");
        assert_eq!(sniffed.delimiter, Some(';'));
    }

    #[test]
    fn utf8_with_bom_and_accents() {
        let mut bytes = vec![0xEF, 0xBB, 0xBF];
        bytes.extend_from_slice("Queue,Date\nFile d'attente é,25/05/2020\n".as_bytes());
        let sniffed = sniff(&bytes, true).unwrap();
        assert_eq!(sniffed.encoding, Encoding::Utf8Bom);
        assert_eq!(sniffed.encoding.label(), "utf-8-bom");
        assert_eq!(sniffed.delimiter, Some(','));
    }

    #[test]
    fn windows_1252_semicolons_with_accents() {
        let bytes = windows_1252(
            "Queue;Date;Time;IncomingCalls\nSupport Français é;25/05/2020;08:00;15\n\
             Kundenservice Übersee ü;25/05/2020;08:00;7\n",
        );
        let sniffed = sniff(&bytes, true).unwrap();
        assert_eq!(sniffed.encoding, Encoding::Windows1252);
        assert_eq!(sniffed.encoding.label(), "windows-1252");
        assert_eq!(sniffed.delimiter, Some(';'));
    }

    #[test]
    fn printable_c1_bytes_mean_windows_1252() {
        let bytes = windows_1252("Queue;Revenue\nVentes;100 €\n“Premium” – Support;5\n");
        assert_eq!(sniff(&bytes, true).unwrap().encoding, Encoding::Windows1252);
    }

    #[test]
    fn bytes_undefined_in_windows_1252_mean_iso_8859_1() {
        let mut bytes = b"Queue;Calls\nSpecial ".to_vec();
        bytes.extend_from_slice(&[0xE9, 0x81, b';', b'1', b'\n']);
        assert_eq!(sniff(&bytes, true).unwrap().encoding, Encoding::Iso8859_1);
    }

    #[test]
    fn turkish_letters_mean_iso_8859_9() {
        let bytes = iso_8859_9(
            "Kuyruk;Tarih;Saat;GelenÇağrı\nİstanbul Müşteri Hizmetleri;25/05/2020;08:00;15\n\
             Ağrı Destek Şubesi;25/05/2020;08:15;9\n",
        );
        let sniffed = sniff(&bytes, true).unwrap();
        assert_eq!(sniffed.encoding, Encoding::Iso8859_9);
        assert_eq!(sniffed.encoding.label(), "iso-8859-9");
        assert_eq!(sniffed.delimiter, Some(';'));
    }

    /// Real-world shaped rows as Excel writes them on German, French and
    /// Turkish Windows.
    const GERMAN: &str = "Warteschlange;Datum;Anrufe\r\nKundenservice Düsseldorf;25.05.2020;15\r\n\
        Störungsannahme Größe XL;25.05.2020;7\r\nRückruf Übersee;25.05.2020;3\r\n";
    const GERMAN_EURO: &str = "Warteschlange;Umsatz\r\nKundenservice Düsseldorf;1.250,00 €\r\n\
        „Premium“ Störungsannahme – Größe XL;98,50 €\r\n";
    const FRENCH: &str = "File d'attente;Date;Appels\r\nService clientèle Québec;25/05/2020;15\r\n\
        Équipe réclamations à Orléans;25/05/2020;7\r\nCœur de métier;25/05/2020;3\r\n";
    const FRENCH_EURO: &str = "File d'attente;Montant\r\nService clientèle Québec;1 250,00 €\r\n\
        “Équipe” réclamations – Orléans;98,50 €\r\n";
    const TURKISH: &str = "Kuyruk;Tarih;Çağrı\r\nİstanbul Çağrı Merkezi;25.05.2020;15\r\n\
        Müşteri Hizmetleri Ağrı;25.05.2020;7\r\nŞikâyet Hattı Iğdır;25.05.2020;3\r\n";
    const TURKISH_EURO: &str = "Kuyruk;Tutar\r\nİstanbul Çağrı Merkezi;1.250,00 €\r\n\
        “Premium” Müşteri Hizmetleri – Ağrı;98,50 €\r\nŞikâyet Hattı Iğdır;0,00 €\r\n";

    fn windows_1254(text: &str) -> Vec<u8> {
        let (bytes, _, unmappable) = encoding_rs::WINDOWS_1254.encode(text);
        assert!(!unmappable);
        bytes.into_owned()
    }

    fn choice_of(bytes: &[u8]) -> CodePageChoice {
        let mut stats = EightBitStats::default();
        stats.feed(bytes);
        stats.choice()
    }

    #[test]
    fn the_code_page_follows_the_letters_the_text_uses() {
        // Western European text: windows-1252, with or without € and
        // quotes; nothing else reads it differently and still as text, or
        // only as Turkish letters where German and French have theirs.
        for text in [GERMAN, GERMAN_EURO, FRENCH, FRENCH_EURO] {
            let choice = choice_of(&windows_1252(text));
            assert_eq!(choice.encoding, Encoding::Windows1252, "{text}");
            assert_eq!(choice.runner_up, None, "{text}");
            assert_eq!(
                sniff(&windows_1252(text), true).unwrap().delimiter,
                Some(';')
            );
        }
        // Turkish without € and quotes: ISO-8859-9 (the same bytes as
        // windows-1254), windows-1252 would fit, but read Ý þ ð ý.
        let choice = choice_of(&iso_8859_9(TURKISH));
        assert_eq!(choice.encoding, Encoding::Iso8859_9);
        assert_eq!(choice.runner_up, Some(Encoding::Windows1252));
        assert_eq!(choice.confidence_percent, 100);
        // Turkish with € and curly quotes, as Excel on Turkish Windows
        // writes it: windows-1254. This was labelled windows-1252 ("printable
        // 0x80–0x9F means windows-1252"), and İstanbul Çağrı Merkezi arrived
        // as Ýstanbul Çaðrý Merkezi.
        let bytes = windows_1254(TURKISH_EURO);
        let choice = choice_of(&bytes);
        assert_eq!(choice.encoding, Encoding::Windows1254);
        assert_eq!(choice.runner_up, Some(Encoding::Windows1252));
        assert_eq!(choice.confidence_percent, 100);
        let sniffed = sniff(&bytes, true).unwrap();
        assert_eq!(sniffed.encoding, Encoding::Windows1254);
        assert_eq!(sniffed.encoding.label(), "windows-1254");
        assert_eq!(sniffed.encoding.after_conversion(), Encoding::Utf8);
        assert_eq!(sniffed.delimiter, Some(';'));
    }

    #[test]
    fn the_choice_is_logged_only_when_two_code_pages_fit() {
        let choice = choice_of(&windows_1254(TURKISH_EURO));
        assert_eq!(
            choice.log_line("tr.csv").unwrap(),
            "tr.csv: windows-1254 rather than windows-1252, by the letters it uses \
             (confidence 100 %); converted to UTF-8 for the cloud, which does not take it"
        );
        let choice = choice_of(&iso_8859_9(TURKISH));
        assert_eq!(
            choice.log_line("tr.csv").unwrap(),
            "tr.csv: iso-8859-9 rather than windows-1252, by the letters it uses (confidence 100 %)"
        );
        assert_eq!(
            choice_of(&windows_1252(GERMAN_EURO)).log_line("de.csv"),
            None
        );
    }

    #[test]
    fn a_stray_icelandic_letter_does_not_make_german_turkish() {
        // Ý in a German text full of ä and ß: still windows-1252, and the
        // confidence says the Turkish reading was considered.
        let text = "Name;Ort\r\nÄrger mit Größe;Straße\r\nÝmir Björk;Reykjavík\r\nmäßig;süß\r\n";
        let choice = choice_of(&windows_1252(text));
        assert_eq!(choice.encoding, Encoding::Windows1252);
        assert_eq!(choice.runner_up, Some(Encoding::Iso8859_9));
        assert!((50..100).contains(&choice.confidence_percent), "{choice:?}");
        // The other way round: one ä among Turkish letters stays Turkish.
        let text = "İstanbul Çağrı Merkezi;Ağrı Şubesi;Iğdır;Händel\n";
        assert_eq!(choice_of(&iso_8859_9(text)).encoding, Encoding::Iso8859_9);
    }

    #[test]
    fn undefined_bytes_rule_out_a_windows_code_page() {
        // 0x8E is Ž in windows-1252 and undefined in windows-1254.
        let choice = choice_of(&windows_1252("Žužemberk;Škofja Loka;Müller\n"));
        assert_eq!(choice.encoding, Encoding::Windows1252);
        assert_eq!(choice.runner_up, None, "ISO reads C1 controls, 1254 cannot");
        // 0x81 is undefined in both: ISO-8859-1 or -9, by the letters.
        let mut bytes = iso_8859_9("İstanbul Çağrı Merkezi ");
        bytes.push(0x81);
        assert_eq!(choice_of(&bytes).encoding, Encoding::Iso8859_9);
        assert_eq!(choice_of(&[0x81]).encoding, Encoding::Iso8859_1);
        assert_eq!(EightBitStats::default().guess(), Encoding::Windows1252);
    }

    #[test]
    fn utf16_with_bom_both_byte_orders() {
        for (big_endian, expected) in [(false, Encoding::Utf16Le), (true, Encoding::Utf16Be)] {
            let sniffed = sniff(&utf16(INTERVAL, big_endian), true).unwrap();
            assert_eq!(sniffed.encoding, expected);
            assert_eq!(sniffed.delimiter, Some(';'));
        }
        assert_eq!(Encoding::Utf16Le.label(), "utf-16le");
        assert_eq!(Encoding::Utf16Be.label(), "utf-16be");
        assert_eq!(Encoding::Utf16Be.after_conversion(), Encoding::Utf8);
    }

    #[test]
    fn quoted_fields_hide_delimiters_and_line_breaks() {
        let text = "Name;Comment;Calls\n\
                    \"Sales, North\";\"multi\nline, with, commas\";3\n\
                    \"Sales, South\";\"a, b, c, d\";4\n\
                    \"Support\";\"say \"\"hi, there\"\"\";5\n";
        assert_eq!(sniff(text.as_bytes(), true).unwrap().delimiter, Some(';'));
    }

    #[test]
    fn decimal_commas_do_not_beat_a_consistent_semicolon() {
        let text = "Queue;AHT;Rate\nA;1,5;0,25\nB;12;0,5\nC;3,25;1\n";
        assert_eq!(detect_delimiter(text.as_bytes(), true), Some(b';'));
    }

    #[test]
    fn tabs_and_pipes() {
        assert_eq!(detect_delimiter(b"a\tb\tc\n1\t2\t3\n", true), Some(b'\t'));
        assert_eq!(detect_delimiter(b"a|b\n1|2\n", true), Some(b'|'));
    }

    #[test]
    fn single_column_has_no_delimiter() {
        let text = "AgentID\n816\n817\n\"Smith, John\"\n";
        let sniffed = sniff(text.as_bytes(), true).unwrap();
        assert_eq!(sniffed.delimiter, None);
        assert_eq!(sniff(b"", true).unwrap().delimiter, None);
    }

    #[test]
    fn a_record_cut_by_the_prefix_is_not_counted() {
        // The cut last line would make `;` look inconsistent (2 of 3 records).
        let text = b"a;b;c\n1;2;3\n4;5";
        assert_eq!(count_delimiters_per_record(text, false).len(), 2);
        assert_eq!(count_delimiters_per_record(text, true).len(), 3);
        assert_eq!(detect_delimiter(text, false), Some(b';'));
    }

    #[test]
    fn nul_byte_is_not_text() {
        let mut bytes = b"PK\x03\x04".to_vec();
        bytes.extend_from_slice(&[0, 0, 1]);
        assert_eq!(sniff(&bytes, false), Err(NotText { offset: 4 }));
        // UTF-16 has NUL bytes in every ASCII character.
        assert!(sniff(&utf16("a;b\n", false), true).is_ok());
    }

    #[test]
    fn multibyte_character_cut_at_prefix_end_is_still_utf8() {
        let text = "Queue;Name\nA;Müller\n".as_bytes();
        let cut = text.iter().position(|&b| b == 0xC3).unwrap() + 1;
        assert_eq!(detect_encoding(&text[..cut], false), Ok(Encoding::Utf8));
        // The same bytes as a whole file end in a broken character.
        assert_eq!(
            detect_encoding(&text[..cut], true),
            Ok(Encoding::Windows1252)
        );
        let euro = "Amount €".as_bytes();
        for cut in euro.len() - 2..euro.len() {
            assert_eq!(detect_encoding(&euro[..cut], false), Ok(Encoding::Utf8));
        }
    }

    #[test]
    fn validator_carries_characters_across_chunks() {
        let text = "Ğ€𝄞 é;ü\n".repeat(3);
        let bytes = text.as_bytes();
        for split in 1..bytes.len() {
            let mut validator = Utf8Validator::default();
            assert!(validator.feed(&bytes[..split]));
            assert!(validator.feed(&bytes[split..]));
            assert!(validator.finish(), "split at {split}");
        }
        // Byte by byte.
        let mut validator = Utf8Validator::default();
        for byte in bytes {
            assert!(validator.feed(std::slice::from_ref(byte)));
        }
        assert!(validator.finish());
    }

    #[test]
    fn validator_rejects_invalid_sequences_even_across_chunks() {
        let mut validator = Utf8Validator::default();
        assert!(validator.feed(&[b'a', 0xE2, 0x82]));
        assert!(!validator.feed(b"x"));
        assert!(!validator.is_valid());

        let mut validator = Utf8Validator::default();
        assert!(!validator.feed(&[b'a', 0xE9, b'b']));

        let mut validator = Utf8Validator::default();
        assert!(validator.feed(&[0xF0, 0x9D]));
        assert!(!validator.finish());
    }

    #[test]
    fn header_guess() {
        let rows: [&[&[u8]]; 3] = [
            &[b"StartDate", b"StartTime", b"AgentID", b"AgentActivityID"],
            &[b"2022-04-22", b"08:34:29", b"816", b"1013"],
            &[b"2022-04-22", b"08:40:02", b"817", b"1014"],
        ];
        let mut guess = HeaderGuess::default();
        for row in rows {
            guess.observe(row.iter().copied());
        }
        assert!(guess.header_likely());

        let mut guess = HeaderGuess::default();
        for row in &rows[1..] {
            guess.observe(row.iter().copied());
        }
        assert!(!guess.header_likely());

        assert!(looks_like_value(b"25/05/2020"));
        assert!(looks_like_value(b"-1,5"));
        assert!(!looks_like_value(b"AHT"));
        assert!(!looks_like_value(b"Queue 1"));
    }
}
