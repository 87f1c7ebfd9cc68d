//! CSV files dropped in the import folder: which files to take ([`pattern`]),
//! when they are complete ([`stability`]), what they contain ([`sniff`]), the
//! single streaming pass that checksums, converts and counts them on their way
//! into the spool ([`pipeline`]), and what was already imported or refused
//! ([`ledger`]); whether the watch is still on the import folder
//! ([`folder`]) and what to log when a file goes away ([`removal`]).
//!
//! Everything except `pipeline` and `ledger` is pure: no I/O, no clock, no
//! actor. The client does not parse CSV for the cloud (the integration's
//! schema in the cloud does); it counts records and labels the encoding and
//! delimiter as metadata, and converts only UTF-16 and Windows-1254, which the
//! cloud does not take.

pub mod folder;
pub mod ledger;
pub mod pattern;
pub mod pipeline;
pub mod removal;
pub mod sniff;
pub mod stability;

pub use ledger::{Imported, Ledger, LedgerError, LedgerWarning, RefusalReason};
pub use pattern::{is_ignored, FilePattern, PatternError};
pub use pipeline::{prepare, PipelineError, Prepared, BUFFER_SIZE, MAX_RECORD_BYTES};
pub use sniff::{sniff, Encoding, NotText, Sniffed, SNIFF_LEN};
pub use stability::{
    ends_mid_line, Observation, Settling, Verdict, DEFAULT_PARTIAL_LINE_QUIET, DEFAULT_SETTLE,
};
