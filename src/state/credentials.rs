//! The link to the cloud (`credentials.json`) and the installation's
//! identity (`installation.json`).

use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::atomic::{load_json, write_json_atomic, write_secret_json_atomic, StateError};
use crate::protocol::TokenResponse;

/// What the client holds once paired. Never logged: `Debug` hides the tokens.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// The cloud that issued them; another `[cloud] url` means pairing again.
    pub cloud_url: String,
    pub integration_id: String,
    #[serde(default)]
    pub integration_name: Option<String>,
    pub access_token: String,
    pub refresh_token: String,
    pub expires_at: DateTime<Utc>,
    pub linked_at: DateTime<Utc>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("cloud_url", &self.cloud_url)
            .field("integration_id", &self.integration_id)
            .field("integration_name", &self.integration_name)
            .field("access_token", &"***")
            .field("refresh_token", &"***")
            .field("expires_at", &self.expires_at)
            .field("linked_at", &self.linked_at)
            .finish()
    }
}

impl Credentials {
    /// Credentials from a fresh token answer (pairing).
    pub fn linked(token: TokenResponse, cloud_url: &str, now: DateTime<Utc>) -> Self {
        Credentials {
            cloud_url: cloud_url.to_owned(),
            integration_id: token.integration_id,
            integration_name: None,
            access_token: token.access_token,
            refresh_token: token.refresh_token,
            expires_at: expiry(now, token.expires_in),
            linked_at: now,
        }
    }

    /// The same link with refreshed tokens. Refresh tokens rotate, so the
    /// new one replaces the old.
    pub fn refreshed(&self, token: TokenResponse, now: DateTime<Utc>) -> Self {
        Credentials {
            access_token: token.access_token,
            refresh_token: token.refresh_token,
            expires_at: expiry(now, token.expires_in),
            integration_id: token.integration_id,
            ..self.clone()
        }
    }

    /// When to refresh: a minute before expiry, or at 80 % of a short
    /// lifetime, so that a token never expires while in use.
    pub fn refresh_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let left = self.expires_at - now;
        let margin = std::cmp::min(Duration::seconds(60), left / 5).max(Duration::zero());
        self.expires_at - margin
    }

    /// Loads the credentials; `None` when the client is not paired. A damaged
    /// file is moved aside (never silently deleted) and reported.
    pub fn load(path: &Path) -> Result<Option<Credentials>, StateError> {
        load_json(path)
    }

    pub fn store(&self, path: &Path) -> Result<(), StateError> {
        write_secret_json_atomic(path, self).map_err(|source| StateError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Forgets the link (it was removed in the cloud).
    pub fn delete(path: &Path) -> Result<(), StateError> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Write {
                path: path.to_path_buf(),
                source,
            }),
        }
    }
}

/// The longest token lifetime believed. A longer `expires_in` (up to
/// u64::MAX from a broken cloud) would overflow the date arithmetic or store
/// a date the file cannot hold; refreshing after a year costs nothing.
const MAX_TOKEN_LIFETIME: Duration = Duration::days(366);

fn expiry(now: DateTime<Utc>, expires_in: u64) -> DateTime<Utc> {
    let lifetime = i64::try_from(expires_in)
        .ok()
        .and_then(Duration::try_seconds)
        .map_or(MAX_TOKEN_LIFETIME, |d| d.min(MAX_TOKEN_LIFETIME));
    now + lifetime
}

/// A UUID created once per installation and sent with every pairing, so the
/// cloud can tell a reinstalled client from a second one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallationId {
    pub installation_id: String,
    pub created_at: DateTime<Utc>,
    /// The install folder it was created in (absent in files of older
    /// versions): a copied folder is told from a moved one by it (see
    /// `super::origin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_dir: Option<PathBuf>,
}

impl InstallationId {
    /// The installation of the state file `path`, created for `install_dir`
    /// on first use.
    pub fn load_or_create(
        path: &Path,
        install_dir: Option<&Path>,
    ) -> Result<InstallationId, StateError> {
        if let Some(existing) = load_json::<InstallationId>(path)? {
            return Ok(existing);
        }
        let created = InstallationId {
            installation_id: uuid::Uuid::new_v4().to_string(),
            created_at: Utc::now(),
            install_dir: install_dir
                .map(|dir| std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())),
        };
        write_json_atomic(path, &created).map_err(|source| StateError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(created)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(expires_in: u64) -> TokenResponse {
        TokenResponse {
            access_token: "at-secret".into(),
            token_type: "Bearer".into(),
            expires_in,
            refresh_token: "rt-secret".into(),
            integration_id: "int_1".into(),
        }
    }

    #[test]
    fn round_trips_and_hides_tokens_in_debug() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.json");
        assert_eq!(Credentials::load(&path).unwrap(), None);
        let now = Utc::now();
        let c = Credentials::linked(token(3600), "https://x.example/", now);
        c.store(&path).unwrap();
        assert_eq!(Credentials::load(&path).unwrap(), Some(c.clone()));
        let shown = format!("{c:?}");
        assert!(!shown.contains("secret"), "{shown}");
        Credentials::delete(&path).unwrap();
        Credentials::delete(&path).unwrap();
        assert_eq!(Credentials::load(&path).unwrap(), None);
    }

    #[test]
    fn refresh_is_due_before_expiry() {
        let now = Utc::now();
        let long = Credentials::linked(token(3600), "u", now);
        assert_eq!(long.refresh_at(now), now + Duration::seconds(3540));
        let short = Credentials::linked(token(10), "u", now);
        assert_eq!(short.refresh_at(now), now + Duration::seconds(8));
        let expired = Credentials::linked(token(0), "u", now);
        assert!(expired.refresh_at(now + Duration::seconds(5)) <= now);
    }

    #[test]
    fn a_wild_token_lifetime_neither_panics_nor_makes_an_unloadable_file() {
        // Seen while writing the protocol fuzz target, which covers it now
        // (fuzz/fuzz_targets/protocol.rs): a token answer with an
        // `expires_in` chrono cannot hold as a duration panicked.
        let now = Utc::now();
        for expires_in in [u64::MAX, i64::MAX as u64, 9_223_372_036_854_776] {
            let c = Credentials::linked(token(expires_in), "u", now);
            assert_eq!(c.expires_at, now + Duration::days(366));
            let again = c.refreshed(token(expires_in), now);
            assert_eq!(again.expires_at, c.expires_at);
            let stored = serde_json::to_vec(&again).unwrap();
            assert_eq!(
                serde_json::from_slice::<Credentials>(&stored).unwrap(),
                again
            );
        }
    }

    #[test]
    fn a_damaged_file_is_moved_aside_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.json");
        std::fs::write(&path, b"{not json").unwrap();
        let err = Credentials::load(&path).unwrap_err();
        let StateError::Damaged { moved_to, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(std::fs::read(moved_to).unwrap(), b"{not json");
        assert!(!path.exists());
    }

    #[test]
    fn installation_id_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("installation.json");
        let a = InstallationId::load_or_create(&path, Some(dir.path())).unwrap();
        let b = InstallationId::load_or_create(&path, None).unwrap();
        assert_eq!(a, b);
        assert!(uuid::Uuid::parse_str(&a.installation_id).is_ok());
    }
}
