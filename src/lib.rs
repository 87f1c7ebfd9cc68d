//! injixo Cloud Link: the on-premise connector that imports CSV files and
//! ODBC query results into the injixo cloud. See `ARCHITECTURE.md`.

pub mod actors;
pub mod assignment;
pub mod backoff;
pub mod cli;
pub mod cloud;
pub mod commands;
pub mod config;
pub mod control;
pub mod csv;
pub mod daemon;
pub mod db;
pub mod http;
pub mod logging;
pub mod malloc;
pub mod pairing;
pub use injixo_cloud_link_protocol as protocol;
pub mod realtime;
pub mod report;
#[cfg(windows)]
mod scm;
pub mod service;
pub mod spool;
pub mod state;
pub mod status;
#[cfg(windows)]
mod win32;
