//! The local control channel between the running client and the `pin` and
//! `status` commands: one JSON line asked, one JSON line answered, over a
//! Unix domain socket in the state folder that only the client's own user
//! (or root) can open.

use serde::{Deserialize, Serialize};

use crate::pairing::PinOffer;
use crate::status::ClientStatus;

/// Longest request line the server reads; anything longer is refused.
pub const MAX_REQUEST_BYTES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum ControlRequest {
    Status,
    /// A PIN valid for at least a minute: the current one, or a new one.
    Pin,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum ControlResponse {
    Status { status: Box<ClientStatus> },
    Pin(PinAnswer),
    Error { message: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinAnswer {
    pub offer: PinOffer,
    /// "integration A (int_1)" when the client is linked (a re-link PIN).
    pub linked_to: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_one_small_json_object() {
        let line = serde_json::to_string(&ControlRequest::Pin).unwrap();
        assert_eq!(line, r#"{"command":"pin"}"#);
        let parsed: ControlRequest = serde_json::from_str(r#"{"command":"status"}"#).unwrap();
        assert_eq!(parsed, ControlRequest::Status);
    }
}
