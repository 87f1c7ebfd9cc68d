//! The TCP layer under awc: a direct connection, or a CONNECT tunnel
//! through the proxy. Written by hand because awc has no proxy support: its
//! only hook is a custom connector service that returns a TCP stream, on
//! which awc then runs TLS (for https://) and HTTP/1.1. The tunnel is that
//! stream, so the cloud's TLS runs end to end through the proxy.
//!
//! awc calls this for every new connection (pooled ones were made here
//! too), which makes it the one place that sees every target: the check
//! against plain http:// lives here as well as in `send`, so no caller can
//! bypass it by using the awc client directly.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use actix_rt::net::TcpStream;
use actix_service::Service;
use actix_tls::connect::{
    ConnectError, ConnectInfo, Connection, ConnectorService as TcpConnectorService,
};
use awc::http::Uri;
use futures_util::future::LocalBoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::error::{HttpError, ProxyError};
use super::proxy::{self, ProxySettings, ProxyUrl};

/// The connector service awc is given (`awc::Connector::connector`).
#[derive(Clone)]
pub(crate) struct TunnelConnector {
    tcp: TcpConnectorService,
    proxy: Arc<ProxySettings>,
    user_agent: Arc<str>,
}

impl TunnelConnector {
    pub(crate) fn new(proxy: Arc<ProxySettings>, user_agent: Arc<str>) -> Self {
        TunnelConnector {
            tcp: TcpConnectorService::default(),
            proxy,
            user_agent,
        }
    }

    async fn connect(
        self,
        req: ConnectInfo<Uri>,
    ) -> Result<Connection<Uri, TcpStream>, ConnectError> {
        let uri = req.request().clone();
        super::check_url(&uri).map_err(wrap)?;
        let host = req.hostname().to_owned();
        let port = req.port();
        let target = proxy::authority(&host, port);
        let scheme = uri.scheme_str().unwrap_or("https");
        let Some(proxy) = self.proxy.proxy_for(scheme, &host, port) else {
            tracing::debug!("connecting to {target} directly");
            // Direct failures go back as actix-tls reported them, so that
            // from_send_error sees the OS error unchanged.
            return self.tcp.call(req).await.map_err(|e| match e {
                ConnectError::InvalidInput => wrap(HttpError::InvalidRequest {
                    detail: format!("no usable host in {target}"),
                }),
                other => other,
            });
        };
        tracing::debug!("connecting to {target} through proxy {proxy}");
        let stream = self
            .tunnel(proxy, &host, port, &target)
            .await
            .map_err(|e| wrap(HttpError::Proxy(e)))?;
        Ok(Connection::new(uri, stream))
    }

    async fn tunnel(
        &self,
        proxy: &ProxyUrl,
        host: &str,
        port: u16,
        target: &str,
    ) -> Result<TcpStream, ProxyError> {
        let name = proxy.authority();
        // An IP literal skips the resolver (which would not take "[::1]").
        let info = match proxy.host().parse::<IpAddr>() {
            Ok(ip) => ConnectInfo::with_addr(name.clone(), SocketAddr::new(ip, proxy.port())),
            Err(_) => ConnectInfo::new(name.clone()),
        };
        let mut stream = match self.tcp.call(info).await {
            Ok(conn) => conn.into_parts().0,
            Err(ConnectError::Io(cause)) => {
                return Err(ProxyError::Unreachable { proxy: name, cause })
            }
            Err(ConnectError::Resolver(e)) => {
                return Err(ProxyError::Resolve {
                    proxy: name,
                    detail: e.to_string(),
                })
            }
            Err(ConnectError::NoRecords) => {
                return Err(ProxyError::Resolve {
                    proxy: name,
                    detail: "no DNS records".into(),
                })
            }
            Err(other) => {
                return Err(ProxyError::Unreachable {
                    proxy: name,
                    cause: io::Error::other(other.to_string()),
                })
            }
        };
        let _ = stream.set_nodelay(true);
        let request = proxy::connect_request(host, port, proxy, &self.user_agent);
        let handshake = |cause| ProxyError::Handshake {
            proxy: name.clone(),
            cause,
        };
        stream.write_all(&request).await.map_err(handshake)?;
        let head = read_reply_head(&mut stream, &name).await?;
        proxy::check_connect_reply(&head, proxy, target)?;
        Ok(stream)
    }
}

/// Reads the proxy's answer up to its blank line. One byte at a time:
/// whatever follows belongs to the tunnel (the server's first bytes), and a
/// socket cannot take back what was read too far. It is a few hundred bytes
/// once per connection.
async fn read_reply_head(stream: &mut TcpStream, proxy: &str) -> Result<Vec<u8>, ProxyError> {
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    loop {
        let n = stream
            .read(&mut byte)
            .await
            .map_err(|cause| ProxyError::Handshake {
                proxy: proxy.to_owned(),
                cause,
            })?;
        if n == 0 {
            return Err(ProxyError::Handshake {
                proxy: proxy.to_owned(),
                cause: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the proxy closed the connection before answering CONNECT",
                ),
            });
        }
        head.push(byte[0]);
        if proxy::reply_head_len(&head).is_some() {
            return Ok(head);
        }
        if head.len() >= proxy::MAX_CONNECT_REPLY {
            return Err(ProxyError::Malformed {
                proxy: proxy.to_owned(),
                detail: format!("no end of header within {} bytes", head.len()),
            });
        }
    }
}

/// Our own failures travel to `HttpError::from_send_error` inside an
/// io::Error: the only error type awc lets a connector return. (Never as
/// actix-tls's `InvalidInput`: awc panics on that one.)
fn wrap(e: HttpError) -> ConnectError {
    ConnectError::Io(io::Error::other(e))
}

impl Service<ConnectInfo<Uri>> for TunnelConnector {
    type Response = Connection<Uri, TcpStream>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    actix_service::always_ready!();

    fn call(&self, req: ConnectInfo<Uri>) -> Self::Future {
        let this = self.clone();
        Box::pin(this.connect(req))
    }
}
