//! The one pass over a CSV file (sniffing, UTF-16 conversion, checksum,
//! record counting), over the input as the file's bytes. The bytes written
//! are the file's (UTF-16 and windows-1254 converted to UTF-8), the checksum
//! is the file's, and the counts agree with themselves.
#![no_main]

use std::path::Path;

use encoding_rs::{UTF_16BE, UTF_16LE, WINDOWS_1254};
use injixo_cloud_link::csv::pipeline::{prepare_from, PipelineError};
use injixo_cloud_link::csv::SNIFF_LEN;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fuzz_target!(|data: &[u8]| {
    let mut sink = Vec::new();
    let path = Path::new("fuzz.csv");
    let utf16le = data.starts_with(&[0xFF, 0xFE]);
    let utf16be = data.starts_with(&[0xFE, 0xFF]);
    match prepare_from(path, data, &mut sink, u64::MAX) {
        Ok(prepared) => {
            assert_eq!(prepared.original_bytes, data.len() as u64);
            assert_eq!(prepared.sha256, hex::encode(Sha256::digest(data)));
            assert_eq!(prepared.written_bytes, sink.len() as u64);
            if utf16le || utf16be {
                let decoder = if utf16le { UTF_16LE } else { UTF_16BE };
                let (text, _) = decoder.decode_without_bom_handling(&data[2..]);
                assert_eq!(sink, text.as_bytes(), "UTF-16 converted differently");
                assert_eq!(prepared.written_encoding, "utf-8");
            } else if prepared.encoding == "windows-1254" {
                let (text, _) = WINDOWS_1254.decode_without_bom_handling(data);
                assert_eq!(sink, text.as_bytes(), "windows-1254 converted differently");
                assert_eq!(prepared.written_encoding, "utf-8");
            } else {
                assert_eq!(sink, data, "bytes changed on the way to the spool");
                assert!(!data.contains(&0));
            }
            if prepared.written_encoding.starts_with("utf-8") {
                assert!(std::str::from_utf8(&sink).is_ok(), "{}", prepared.encoding);
            }
            // Inputs this small have no oversized record; only a first read
            // of nothing but a BOM stops the counting early.
            assert!(prepared.counts_complete || sink.starts_with(&[0xEF, 0xBB, 0xBF]));
            if prepared.rows == 0 {
                assert_eq!(prepared.columns, 0);
                assert!(!prepared.ragged && !prepared.header);
            } else {
                assert!(prepared.columns >= 1);
            }
            assert!(prepared.rows <= sink.len() as u64);
            if prepared.header {
                assert!(prepared.rows >= 2);
            }
        }
        // Only a file longer than what the sniffer sees can surprise it.
        Err(PipelineError::EncodingRevised { .. }) => assert!(data.len() > SNIFF_LEN),
        Err(PipelineError::NotText { offset }) => {
            assert!(!utf16le && !utf16be);
            assert_eq!(data.iter().position(|&b| b == 0), Some(offset as usize));
        }
        Err(other) => panic!("an in-memory file failed: {other}"),
    }
});
