//! The local control channel between the running client and the `pin` and
//! `status` commands: one JSON line asked, one JSON line answered, over a
//! Unix domain socket in the state folder that only the client's own user
//! (or root) can open, or on Windows a named pipe named after the state
//! folder. The messages and the asking side ([`client`]) live here; the
//! serving side is `ControlActor`.

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

/// The client side, used by the `pin` and `status` commands.
#[cfg(any(unix, windows))]
pub mod client {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::time::Duration;

    use super::{ControlRequest, ControlResponse};
    use crate::state::StateDir;

    #[derive(Debug, thiserror::Error)]
    pub enum AskError {
        /// No client answers on the channel: it is not running.
        #[error("no injixo Cloud Link is running from this folder")]
        NotRunning,
        #[error("the control channel failed")]
        Io(#[source] std::io::Error),
        #[error("the running client sent an answer this command does not understand: {0}")]
        BadAnswer(String),
    }

    /// Sends one request to the client running from the install folder of
    /// `state` and waits for its answer.
    pub fn ask(
        state: &StateDir,
        request: &ControlRequest,
        timeout: Duration,
    ) -> Result<ControlResponse, AskError> {
        exchange(connect(state, timeout)?, request)
    }

    fn exchange<S: Read + Write>(
        mut stream: S,
        request: &ControlRequest,
    ) -> Result<ControlResponse, AskError> {
        let mut line = serde_json::to_vec(request).expect("requests serialise");
        line.push(b'\n');
        stream.write_all(&line).map_err(AskError::Io)?;
        let mut answer = String::new();
        BufReader::new(stream)
            .read_line(&mut answer)
            .map_err(AskError::Io)?;
        serde_json::from_str(answer.trim()).map_err(|e| AskError::BadAnswer(e.to_string()))
    }

    #[cfg(unix)]
    fn connect(
        state: &StateDir,
        timeout: Duration,
    ) -> Result<std::os::unix::net::UnixStream, AskError> {
        let stream = match std::os::unix::net::UnixStream::connect(state.control_socket()) {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Err(AskError::NotRunning)
            }
            Err(e) => return Err(AskError::Io(e)),
        };
        stream
            .set_read_timeout(Some(timeout))
            .map_err(AskError::Io)?;
        stream
            .set_write_timeout(Some(timeout))
            .map_err(AskError::Io)?;
        Ok(stream)
    }

    /// The named pipe, opened as a file. A pipe handle has no read
    /// timeout: the server closes a connection after a minute at most.
    #[cfg(windows)]
    fn connect(state: &StateDir, timeout: Duration) -> Result<std::fs::File, AskError> {
        /// ERROR_PIPE_BUSY: every instance of the pipe is serving someone.
        const PIPE_BUSY: i32 = 231;
        let name = state.control_pipe_name();
        let deadline = std::time::Instant::now() + timeout.min(Duration::from_secs(5));
        loop {
            match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&name)
            {
                Ok(pipe) => return Ok(pipe),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(AskError::NotRunning)
                }
                Err(e)
                    if e.raw_os_error() == Some(PIPE_BUSY)
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(AskError::Io(e)),
            }
        }
    }
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
