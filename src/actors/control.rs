//! ControlActor: serves the local control channel (`pin`, `status`) on a
//! Unix domain socket in the state folder.
//!
//! Who may ask: the socket is mode 0600 inside a 0700 folder, and each
//! connection's peer user is checked again (same user or root), so a local
//! user who is not the service's cannot read the PIN or the status.

use std::path::PathBuf;
use std::time::Duration;

use actix::prelude::*;
use tracing::{debug, info, warn};

use crate::actors::pairing::{PairingActor, RequestPin};
use crate::actors::slot::Slot;
use crate::actors::supervisor::Shutdown;
use crate::control::{ControlRequest, ControlResponse, MAX_REQUEST_BYTES};
use crate::status::StatusBoard;

/// A connection that sends nothing useful for this long is closed.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);

pub struct ControlActor {
    socket_path: PathBuf,
    board: StatusBoard,
    pairing: Slot<PairingActor>,
}

impl ControlActor {
    pub fn new(socket_path: PathBuf, board: StatusBoard, pairing: Slot<PairingActor>) -> Self {
        ControlActor {
            socket_path,
            board,
            pairing,
        }
    }
}

impl Actor for ControlActor {
    type Context = Context<Self>;

    #[cfg(unix)]
    fn started(&mut self, ctx: &mut Context<Self>) {
        match unix::bind(&self.socket_path) {
            Ok(listener) => {
                debug!(
                    "control channel listening on {}",
                    self.socket_path.display()
                );
                let board = self.board.clone();
                let pairing = self.pairing.clone();
                ctx.spawn(unix::serve(listener, board, pairing).into_actor(self));
            }
            Err(e) => {
                // Importing goes on without it; only `pin`/`status` suffer.
                warn!(
                    "cannot open the control channel {}: {e}; `pin` and `status` will not reach this client",
                    self.socket_path.display()
                );
            }
        }
    }

    #[cfg(not(unix))]
    fn started(&mut self, _: &mut Context<Self>) {
        // Windows named pipe: not built yet (this machine cannot compile for
        // Windows); `pin` and `status` fall back to what the state folder holds.
        warn!("the control channel is not available on this platform yet");
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        let _ = std::fs::remove_file(&self.socket_path);
    }
}

impl Handler<Shutdown> for ControlActor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

async fn answer(
    request: ControlRequest,
    board: &StatusBoard,
    pairing: &Slot<PairingActor>,
) -> ControlResponse {
    match request {
        ControlRequest::Status => ControlResponse::Status {
            status: Box::new(board.snapshot()),
        },
        ControlRequest::Pin => {
            let Some(pairing) = pairing.get() else {
                return ControlResponse::Error {
                    message: "pairing is restarting; try again in a few seconds".to_owned(),
                };
            };
            match pairing.send(RequestPin).await {
                Ok(Ok(answer)) => {
                    info!("PIN {} shown by the `pin` command", answer.offer.pin);
                    ControlResponse::Pin(answer)
                }
                Ok(Err(message)) => ControlResponse::Error { message },
                Err(_) => ControlResponse::Error {
                    message: "pairing is restarting; try again in a few seconds".to_owned(),
                },
            }
        }
    }
}

#[cfg(unix)]
mod unix {
    use std::path::Path;

    use actix_rt::net::{UnixListener, UnixStream};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tracing::warn;

    use super::*;

    pub(super) fn bind(path: &Path) -> std::io::Result<UnixListener> {
        use std::os::unix::fs::PermissionsExt;
        // A socket file left by a crashed run: we hold the instance lock, so
        // no live client owns it.
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(listener)
    }

    pub(super) async fn serve(
        listener: UnixListener,
        board: StatusBoard,
        pairing: Slot<PairingActor>,
    ) {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let board = board.clone();
                    let pairing = pairing.clone();
                    actix_rt::spawn(async move {
                        let _ = actix_rt::time::timeout(
                            CONNECTION_TIMEOUT,
                            handle_connection(stream, board, pairing),
                        )
                        .await;
                    });
                }
                Err(e) => {
                    warn!("control channel: accept failed: {e}; retrying in 1 s");
                    actix_rt::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn peer_allowed(stream: &UnixStream) -> bool {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        stream
            .peer_cred()
            .map(|cred| cred.uid() == me || cred.uid() == 0)
            .unwrap_or(false)
    }

    async fn handle_connection(
        stream: UnixStream,
        board: StatusBoard,
        pairing: Slot<PairingActor>,
    ) {
        if !peer_allowed(&stream) {
            warn!("control channel: refused a connection from another user");
            return;
        }
        let (read, mut write) = stream.into_split();
        let mut line = String::new();
        let mut reader = BufReader::new(read).take(MAX_REQUEST_BYTES as u64 + 1);
        let response = match reader.read_line(&mut line).await {
            Ok(n) if n > MAX_REQUEST_BYTES => ControlResponse::Error {
                message: "request too long".to_owned(),
            },
            Ok(_) => match serde_json::from_str::<ControlRequest>(line.trim()) {
                Ok(request) => answer(request, &board, &pairing).await,
                Err(e) => ControlResponse::Error {
                    message: format!("not a control request: {e}"),
                },
            },
            Err(e) => ControlResponse::Error {
                message: format!("cannot read the request: {e}"),
            },
        };
        let mut out = serde_json::to_vec(&response).unwrap_or_default();
        out.push(b'\n');
        let _ = write.write_all(&out).await;
        let _ = write.shutdown().await;
    }
}

/// The client side, used by the `pin` and `status` commands.
#[cfg(unix)]
pub mod client {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;
    use std::path::Path;
    use std::time::Duration;

    use crate::control::{ControlRequest, ControlResponse};

    #[derive(Debug, thiserror::Error)]
    pub enum AskError {
        /// No client answers on the socket: it is not running.
        #[error("no injixo Cloud Link is running from this folder")]
        NotRunning,
        #[error("the control channel failed")]
        Io(#[source] std::io::Error),
        #[error("the running client sent an answer this command does not understand: {0}")]
        BadAnswer(String),
    }

    /// Sends one request to the running client and waits for its answer.
    pub fn ask(
        socket: &Path,
        request: &ControlRequest,
        timeout: Duration,
    ) -> Result<ControlResponse, AskError> {
        let mut stream = match UnixStream::connect(socket) {
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
        let mut line = serde_json::to_vec(request).expect("requests serialise");
        line.push(b'\n');
        stream.write_all(&line).map_err(AskError::Io)?;
        let mut answer = String::new();
        BufReader::new(stream)
            .read_line(&mut answer)
            .map_err(AskError::Io)?;
        serde_json::from_str(answer.trim()).map_err(|e| AskError::BadAnswer(e.to_string()))
    }
}
