//! ControlActor: serves the local control channel (`pin`, `status`): a Unix
//! domain socket in the state folder, or on Windows a named pipe named after
//! the state folder.
//!
//! Who may ask: on Unix the socket is mode 0600 inside a 0700 folder, and
//! each connection's peer user is checked again (same user or root), so a
//! local user who is not the service's cannot read the PIN or the status.
//! On Windows the pipe keeps its default security (full access for SYSTEM,
//! Administrators and its creator, read-only for others): a request must be
//! written, so only those may ask; remote clients are refused.

use std::time::Duration;

use actix::prelude::*;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tracing::{debug, info, warn};

use crate::actors::pairing::{PairingActor, RequestPin};
use crate::actors::slot::Slot;
use crate::actors::supervisor::Shutdown;
use crate::control::{ControlRequest, ControlResponse, MAX_REQUEST_BYTES};
use crate::state::StateDir;
use crate::status::StatusBoard;

/// A connection that sends nothing useful for this long is closed.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);

pub struct ControlActor {
    state: StateDir,
    board: StatusBoard,
    pairing: Slot<PairingActor>,
    /// Bound when the actor is made, which the supervisor does before it
    /// tells systemd READY=1 (its `started` runs only later): so `pin` or
    /// `status` right after `systemctl start` finds the socket. `started`
    /// serves it.
    #[cfg(unix)]
    listener: Option<std::io::Result<std::os::unix::net::UnixListener>>,
}

impl ControlActor {
    pub fn new(state: StateDir, board: StatusBoard, pairing: Slot<PairingActor>) -> Self {
        ControlActor {
            #[cfg(unix)]
            listener: Some(unix::bind(&state.control_socket())),
            state,
            board,
            pairing,
        }
    }
}

impl Actor for ControlActor {
    type Context = Context<Self>;

    #[cfg(unix)]
    fn started(&mut self, ctx: &mut Context<Self>) {
        let socket_path = self.state.control_socket();
        let bound = self
            .listener
            .take()
            .unwrap_or_else(|| unix::bind(&socket_path))
            .and_then(actix_rt::net::UnixListener::from_std);
        match bound {
            Ok(listener) => {
                debug!("control channel listening on {}", socket_path.display());
                let board = self.board.clone();
                let pairing = self.pairing.clone();
                ctx.spawn(unix::serve(listener, board, pairing).into_actor(self));
            }
            Err(e) => {
                // Importing goes on without it; only `pin`/`status` suffer.
                warn!(
                    "cannot open the control channel {}: {e}; `pin` and `status` will not reach this client",
                    socket_path.display()
                );
            }
        }
    }

    #[cfg(windows)]
    fn started(&mut self, ctx: &mut Context<Self>) {
        let name = self.state.control_pipe_name();
        match windows::bind(&name) {
            Ok(server) => {
                debug!("control channel listening on {name}");
                let board = self.board.clone();
                let pairing = self.pairing.clone();
                ctx.spawn(windows::serve(server, name, board, pairing).into_actor(self));
            }
            Err(e) => {
                warn!(
                    "cannot open the control channel {name}: {e}; `pin` and `status` will not reach this client"
                );
            }
        }
    }

    #[cfg(not(any(unix, windows)))]
    fn started(&mut self, _: &mut Context<Self>) {
        warn!("the control channel is not available on this platform");
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        #[cfg(unix)]
        let _ = std::fs::remove_file(self.state.control_socket());
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

/// Serves one connection on its own task, for a minute at most.
fn spawn_connection<S: AsyncRead + AsyncWrite + 'static>(
    stream: S,
    board: &StatusBoard,
    pairing: &Slot<PairingActor>,
) {
    let (board, pairing) = (board.clone(), pairing.clone());
    actix_rt::spawn(async move {
        let _ =
            actix_rt::time::timeout(CONNECTION_TIMEOUT, serve_connection(stream, board, pairing))
                .await;
    });
}

/// Reads one request line from `stream`, answers it with one line.
async fn serve_connection<S: AsyncRead + AsyncWrite>(
    stream: S,
    board: StatusBoard,
    pairing: Slot<PairingActor>,
) {
    let (read, mut write) = tokio::io::split(stream);
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
    let _ = write.flush().await;
    let _ = write.shutdown().await;
}

#[cfg(unix)]
mod unix {
    use std::path::Path;

    use actix_rt::net::{UnixListener, UnixStream};
    use tracing::warn;

    use super::*;

    /// A listening socket for the event loop (non-blocking), 0600.
    pub(super) fn bind(path: &Path) -> std::io::Result<std::os::unix::net::UnixListener> {
        use std::os::unix::fs::PermissionsExt;
        // A socket file left by a crashed run: we hold the instance lock, so
        // no live client owns it.
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = std::os::unix::net::UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
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
                    if !peer_allowed(&stream) {
                        warn!("control channel: refused a connection from another user");
                        continue;
                    }
                    spawn_connection(stream, &board, &pairing);
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
}

/// The named pipe server (tokio's `named_pipe`); tested under Wine by
/// tests/windows_wine.rs, which does not check the pipe's security.
#[cfg(windows)]
mod windows {
    use tokio::net::windows::named_pipe::{NamedPipeServer, ServerOptions};
    use tracing::warn;

    use super::*;

    /// The first instance of the pipe: refused if another process already
    /// owns the name, so that the client never shares its pipe with another
    /// program (which would get some of the requests); the log says so.
    pub(super) fn bind(name: &str) -> std::io::Result<NamedPipeServer> {
        ServerOptions::new()
            .first_pipe_instance(true)
            .reject_remote_clients(true)
            .create(name)
    }

    /// One pipe instance serves one connection: a new instance is created
    /// before the connected one is handed over, so a client always finds one.
    pub(super) async fn serve(
        mut server: NamedPipeServer,
        name: String,
        board: StatusBoard,
        pairing: Slot<PairingActor>,
    ) {
        loop {
            let connected = server.connect().await;
            let served = std::mem::replace(&mut server, reopen(&name).await);
            match connected {
                Ok(()) => spawn_connection(served, &board, &pairing),
                // Dropping the failed instance closes it; the new one waits.
                Err(e) => warn!("control channel: a connection failed: {e}"),
            }
        }
    }

    async fn reopen(name: &str) -> NamedPipeServer {
        loop {
            match ServerOptions::new()
                .reject_remote_clients(true)
                .create(name)
            {
                Ok(server) => return server,
                Err(e) => {
                    warn!("control channel: cannot open {name} again: {e}; retrying in 1 s");
                    actix_rt::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::status::ClientStatus;

    /// The supervisor makes its children, then tells systemd READY=1, and
    /// only then do the children's `started` run: a socket bound there was
    /// missing for a `pin` or `status` run right after `systemctl start`
    /// (seen under a real systemd, tests/service_systemd.rs). It is bound
    /// when the actor is made.
    #[test]
    fn the_socket_is_there_once_the_actor_is_made() {
        let install = tempfile::tempdir().unwrap();
        let state = StateDir::of_install_dir(install.path());
        std::fs::create_dir_all(state.root()).unwrap();
        let _actor = ControlActor::new(
            state.clone(),
            StatusBoard::new(ClientStatus::default()),
            Slot::default(),
        );
        let socket = state.control_socket();
        assert!(socket.exists(), "{} is not bound", socket.display());
        std::os::unix::net::UnixStream::connect(&socket).expect("the socket accepts");
    }
}
