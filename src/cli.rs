//! Command line: `injixo-cloud-link [--config PATH] [run | check-config]`.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, FILE_NAME};
use crate::report::Failure;

#[derive(Debug, Parser)]
#[command(
    name = "injixo-cloud-link",
    version,
    about = "injixo Cloud Link: imports CSV files and database query results into injixo",
    long_about = None
)]
pub struct Cli {
    /// The configuration file; its folder is the install folder (logs, state,
    /// default import folder). Default: injixo-cloud-link.toml beside the
    /// executable.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "INJIXO_CLOUD_LINK_CONFIG"
    )]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run in the foreground (what the service runs; the default).
    Run,
    /// Check the configuration file and print the effective configuration.
    CheckConfig,
    /// Show a PIN that links this client to an integration (pairs in the
    /// foreground when no client runs).
    Pin {
        /// Print JSON lines instead of the banner.
        #[arg(long)]
        json: bool,
    },
    /// Show what the client is doing. Exit code 0 when it runs, 3 when not.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Install, remove, start, stop or inspect this folder's OS service,
    /// named after `[app] name`.
    Service {
        #[command(subcommand)]
        action: crate::commands::service::ServiceAction,
    },
}

/// Parses the arguments, runs the command, and returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    exitcode::OK
                }
                _ => exitcode::USAGE,
            };
        }
    };
    let result = config_path(cli.config).and_then(|path| match cli.command {
        None | Some(Command::Run) => {
            let console = std::io::stderr().is_terminal();
            // Started by the Service Control Manager, Windows runs it as a service.
            #[cfg(windows)]
            let ran = crate::scm::run(&path, console);
            #[cfg(not(windows))]
            let ran = crate::daemon::run(&path, console);
            ran.map(|()| exitcode::OK)
        }
        Some(Command::CheckConfig) => check_config(&path).map(|()| exitcode::OK),
        Some(Command::Pin { json }) => {
            crate::commands::pin::run(&path, json).map(|()| exitcode::OK)
        }
        Some(Command::Status { json }) => crate::commands::status::run(&path, json),
        Some(Command::Service { action }) => crate::commands::service::run(&path, action),
    });
    match result {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("{failure}");
            failure.code
        }
    }
}

fn config_path(given: Option<PathBuf>) -> Result<PathBuf, Failure> {
    if let Some(path) = given {
        return Ok(path);
    }
    let exe = std::env::current_exe().map_err(|e| {
        Failure::new(exitcode::OSERR, e).hint("give the configuration file with --config PATH")
    })?;
    let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    Ok(dir.join(FILE_NAME))
}

fn check_config(path: &std::path::Path) -> Result<(), Failure> {
    let config = Config::load(path)?;
    print!("{}", config.describe());
    if !config.app.import_directory.is_dir() {
        eprintln!(
            "note: the import folder {} does not exist yet; CSV files are only imported once it does",
            config.app.import_directory.display()
        );
    }
    Ok(())
}
