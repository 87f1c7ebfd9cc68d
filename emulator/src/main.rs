//! `injixo-cloud-emulator`: the cloud side of the Cloud Link protocol
//! (`docs/protocol.md`) for development and tests.

mod api;
mod app;
mod cli;
mod control;
mod error;
mod faults;
mod oauth;
mod page;
mod persist;
mod request_log;
mod s3;
mod state;
mod tls;
mod uploads;

use std::io::{IsTerminal, Write};
use std::net::TcpListener;
use std::process::ExitCode;

use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use clap::Parser;

use crate::app::AppState;
use crate::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // stdout belongs to the `listening on` line; logs go to stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match actix_web::rt::System::new().block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("injixo-cloud-emulator: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let tls = match (&cli.tls_cert, &cli.tls_key) {
        (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
        _ => None,
    };
    let app = web::Data::new(AppState::from_cli(&cli)?);
    let listener = TcpListener::bind(cli.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", cli.listen))?;
    let address = listener.local_addr()?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app.clone())
            .configure(app::routes)
            .wrap(from_fn(faults::inject))
            .wrap(from_fn(request_log::log_request))
    })
    .workers(2)
    .on_connect(faults::remember_socket);
    let (server, scheme) = match tls {
        Some(config) => (server.listen_rustls_0_23(listener, config)?, "https"),
        None => (server.listen(listener)?, "http"),
    };
    let server = server.run();
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {scheme}://{address}")?;
    stdout.flush()?;
    drop(stdout);
    tracing::info!("listening on {scheme}://{address}");
    server.await?;
    Ok(())
}
