//! Command line of `injixo-cloud-emulator`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use url::Url;

/// The cloud side of the injixo Cloud Link protocol, for development and tests.
///
/// Prints `listening on http(s)://HOST:PORT` as its first line on stdout;
/// logs go to stderr.
#[derive(Debug, Clone, Parser)]
#[command(name = "injixo-cloud-emulator", version)]
pub struct Cli {
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Keep integrations, clients, tokens, imports and objects here across
    /// restarts. Without it everything lives in memory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Seconds a PIN (device authorization) lives.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub pin_ttl: u64,

    /// Seconds an access token lives.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub token_ttl: u64,

    /// Seconds a refresh token lives (each refresh replaces it).
    #[arg(long, value_name = "SECONDS", default_value_t = 30 * 24 * 3600)]
    pub refresh_token_ttl: u64,

    /// Minimum seconds between two polls of the token endpoint (`interval`).
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub poll_interval: u64,

    /// Seconds a pre-signed upload URL stays valid; 0 makes URLs that are
    /// already expired (for tests of the 403 path).
    #[arg(long, value_name = "SECONDS", default_value_t = 900)]
    pub upload_url_ttl: u64,

    /// Largest upload accepted, in bytes (S3 allows 5 GiB in one PUT).
    #[arg(long, value_name = "BYTES", default_value_t = 5 * 1024 * 1024 * 1024)]
    pub max_upload_size: u64,

    /// Hand out AWS SigV4 pre-signed URLs of this S3-compatible server
    /// (path-style) instead of storing uploads in the emulator.
    #[arg(long, value_name = "URL", requires_all = ["s3_bucket", "s3_access_key", "s3_secret_key"])]
    pub s3_endpoint: Option<Url>,

    /// Bucket of --s3-endpoint; it must exist.
    #[arg(long, value_name = "NAME", requires = "s3_endpoint")]
    pub s3_bucket: Option<String>,

    /// Region used in the SigV4 signature.
    #[arg(long, value_name = "REGION", default_value = "us-east-1")]
    pub s3_region: String,

    /// Access key id for --s3-endpoint.
    #[arg(
        long,
        value_name = "KEY",
        env = "EMULATOR_S3_ACCESS_KEY",
        requires = "s3_endpoint"
    )]
    pub s3_access_key: Option<String>,

    /// Secret key for --s3-endpoint.
    #[arg(
        long,
        value_name = "SECRET",
        env = "EMULATOR_S3_SECRET_KEY",
        requires = "s3_endpoint",
        hide_env_values = true
    )]
    pub s3_secret_key: Option<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn s3_options_come_together() {
        let partial = Cli::try_parse_from(["e", "--s3-endpoint", "http://127.0.0.1:9000"]);
        assert!(partial.is_err());
        let full = Cli::try_parse_from([
            "e",
            "--s3-endpoint",
            "http://127.0.0.1:9000",
            "--s3-bucket",
            "b",
            "--s3-access-key",
            "k",
            "--s3-secret-key",
            "s",
        ])
        .unwrap();
        assert_eq!(full.s3_bucket.as_deref(), Some("b"));
        assert!(Cli::try_parse_from(["e", "--tls-cert", "c.pem"]).is_err());
    }
}
