//! Real-time agent-state feeds (protocol §7): bytes from an ACD's socket
//! become agent-state changes in the cloud within a second, none lost once
//! committed to the journal.
//!
//! The pieces, each usable and tested alone:
//! - [`framing`]: bytes → lines (LF, CRLF, STX/ETX; 64 KiB cap). Pure.
//! - [`parse`]: a line → an agent state, per the integration's format. Pure.
//! - [`snapshot`]: full refreshes → changes. Pure.
//! - [`allow`]: `[realtime] allowFrom`. Pure.
//! - [`tally`]: events per minute, problems once per kind, silence. Pure.
//! - [`delivery`]: the cloud's answer → what to do. Pure.
//! - [`journal`]: the durable, exactly-once queue on disk. Blocking I/O.
//! - [`feed`]: sockets, the bounded queue and the group commit. Async I/O.
//! - [`port_owner`]: who holds a port, for the "in use" error.
//!
//! Nothing here names an actor: `actors::realtime_feed` wires it.

pub mod allow;
pub mod delivery;
pub mod feed;
pub mod framing;
pub mod journal;
pub mod parse;
pub mod port_owner;
pub mod snapshot;
pub mod tally;
