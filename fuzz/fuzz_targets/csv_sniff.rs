//! The CSV sniffer: encoding, text-or-binary and delimiter from a file's
//! first bytes, and the incremental UTF-8 check the pipeline feeds chunk by
//! chunk. The first byte says whether the input is the whole file and where
//! the chunks are cut; the rest is the file.
#![no_main]

use injixo_cloud_link::csv::sniff::{
    detect_encoding, looks_like_value, sniff, Encoding, HeaderGuess, Utf8Validator,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, file)) = data.split_first() else {
        return;
    };
    let at_eof = control & 1 == 1;

    let utf16 = file.starts_with(&[0xFF, 0xFE]) || file.starts_with(&[0xFE, 0xFF]);
    let first_nul = file.iter().position(|&b| b == 0);
    match sniff(file, at_eof) {
        Err(not_text) => {
            assert!(!utf16, "a UTF-16 file is text");
            assert_eq!(Some(not_text.offset as usize), first_nul);
        }
        Ok(sniffed) => {
            assert!(utf16 || first_nul.is_none());
            if let Some(d) = sniffed.delimiter {
                assert!([';', ',', '\t', '|'].contains(&d), "{d:?}");
            }
            assert_eq!(Ok(sniffed.encoding), detect_encoding(file, at_eof));
            if !utf16 {
                // UTF-8 exactly when the bytes are, but for a character cut
                // by the end of a prefix that is not the whole file.
                let valid = match std::str::from_utf8(file) {
                    Ok(_) => true,
                    Err(e) => !at_eof && e.error_len().is_none(),
                };
                assert_eq!(sniffed.encoding.is_utf8(), valid, "{:?}", sniffed.encoding);
                assert_eq!(
                    sniffed.encoding == Encoding::Utf8Bom,
                    valid && file.starts_with(&[0xEF, 0xBB, 0xBF])
                );
            }
        }
    }

    // Fed in chunks of 1 to 16 bytes, the validator agrees with std.
    let mut validator = Utf8Validator::default();
    let chunk = usize::from(control >> 4) + 1;
    for piece in file.chunks(chunk) {
        validator.feed(piece);
    }
    assert_eq!(validator.finish(), std::str::from_utf8(file).is_ok());

    let mut header = HeaderGuess::default();
    for line in file.split(|&b| b == b'\n') {
        header.observe(line.split(|&b| b == b';'));
    }
    let _ = header.header_likely();
    if looks_like_value(file) {
        assert!(file.iter().any(u8::is_ascii_digit));
    }
});
