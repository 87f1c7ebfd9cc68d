//! What a file looks like from its first bytes: its encoding, whether it is
//! text at all, and its delimiter. Also the incremental checks the pipeline
//! keeps running over the rest of the file ([`Utf8Validator`],
//! [`EightBitStats`], [`HeaderGuess`]), because a prefix can be misleading.
//!
//! The result is metadata for the upload: the cloud's per-integration schema
//! has the final say on how the file is parsed. Only UTF-16 changes what the
//! client does (it is converted to UTF-8).

use encoding_rs::{UTF_16BE, UTF_16LE};

/// How much of a file [`sniff`] is meant to see.
pub const SNIFF_LEN: usize = 64 * 1024;

/// Records looked at for the delimiter: enough for a stable count, few enough
/// that a long header comment cannot dominate.
const SNIFF_RECORDS: usize = 100;

/// Delimiters in order of preference when two are equally consistent.
const DELIMITERS: [u8; 4] = [b';', b',', b'\t', b'|'];

/// The encodings the cloud accepts, plus UTF-16 (converted to UTF-8 on upload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Utf8,
    Utf8Bom,
    Utf16Le,
    Utf16Be,
    Windows1252,
    Iso8859_1,
    Iso8859_9,
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
            Encoding::Windows1252 | Encoding::Iso8859_1 | Encoding::Iso8859_9
        )
    }

    /// The encoding the bytes are in once the pipeline has written them: UTF-16
    /// leaves as UTF-8 without a BOM, everything else unchanged.
    pub fn after_conversion(self) -> Encoding {
        if self.is_utf16() {
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

/// Byte statistics to tell apart the 8-bit encodings the cloud accepts. Only
/// bytes 0x80–0xFF differ between them, so only those are counted.
///
/// The rules, in order:
/// 1. Bytes 0x80–0x9F that windows-1252 prints (€ ‚ „ … ‘ ’ “ ” – — Š Ž …)
///    and none of the five it leaves undefined → **windows-1252**. In the ISO
///    encodings these are C1 control codes, which text never contains.
/// 2. The letters that only ISO-8859-9 has at 0xD0 0xDD 0xDE 0xF0 0xFD 0xFE
///    (Ğ İ Ş ğ ı ş; in Latin-1 Ð Ý Þ ð ý þ, which Western European text
///    hardly uses) make up at least a fifth of the non-ASCII letters →
///    **iso-8859-9**. (Icelandic, which uses ð þ ý, would be mistaken for it;
///    the cloud does not support Icelandic text anyway.)
/// 3. Any of 0x81 0x8D 0x8F 0x90 0x9D, which windows-1252 does not define →
///    **iso-8859-1**.
/// 4. Otherwise **windows-1252**: without bytes 0x80–0x9F the text reads the
///    same in both, and windows-1252 is the superset — it is what Excel
///    writes on Western European Windows, and it stays right if a € or a
///    curly quote turns up past the part we looked at (the WHATWG Encoding
///    Standard treats the label "iso-8859-1" as windows-1252 for the same
///    reason).
#[derive(Debug, Clone)]
pub struct EightBitStats {
    high: [u64; 128],
}

impl Default for EightBitStats {
    fn default() -> Self {
        EightBitStats { high: [0; 128] }
    }
}

const UNDEFINED_IN_WINDOWS_1252: [u8; 5] = [0x81, 0x8D, 0x8F, 0x90, 0x9D];
const TURKISH_ONLY_IN_ISO_8859_9: [u8; 6] = [0xD0, 0xDD, 0xDE, 0xF0, 0xFD, 0xFE];

impl EightBitStats {
    pub fn feed(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if byte >= 0x80 {
                self.high[usize::from(byte - 0x80)] += 1;
            }
        }
    }

    fn count(&self, byte: u8) -> u64 {
        self.high[usize::from(byte - 0x80)]
    }

    pub fn guess(&self) -> Encoding {
        let undefined: u64 = UNDEFINED_IN_WINDOWS_1252
            .iter()
            .map(|&b| self.count(b))
            .sum();
        let c1: u64 = (0x80..=0x9F).map(|b| self.count(b)).sum();
        let printable_c1 = c1 - undefined;
        if printable_c1 > 0 && undefined == 0 {
            return Encoding::Windows1252;
        }
        let letters: u64 = (0xC0..=0xFF)
            .filter(|&b| b != 0xD7 && b != 0xF7) // × and ÷
            .map(|b| self.count(b))
            .sum();
        let turkish: u64 = TURKISH_ONLY_IN_ISO_8859_9
            .iter()
            .map(|&b| self.count(b))
            .sum();
        if turkish > 0 && turkish * 5 >= letters {
            return Encoding::Iso8859_9;
        }
        if undefined > 0 {
            return Encoding::Iso8859_1;
        }
        Encoding::Windows1252
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
