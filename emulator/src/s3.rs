//! Where uploaded bytes go: the emulator's own S3-style store (`/_s3/...`,
//! URLs signed with an HMAC) or, with `--s3-endpoint`, a real S3-compatible
//! server that gets AWS SigV4 pre-signed URLs.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use sha2::Sha256;
use url::Url;

use crate::persist::{commit_temp_file, temp_path};
use crate::state::sha256_hex;

/// Path prefix of the emulator's own object store.
pub const OWN_STORE_PREFIX: &str = "/_s3/uploads/";

// ---------------------------------------------------------------------------
// The emulator's own pre-signed URLs
// ---------------------------------------------------------------------------

/// What a valid signed URL promises about the PUT body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPut {
    pub upload_id: String,
    pub expires_at: i64,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the URL lacks the signature parameter {0}")]
    Missing(&'static str),
    #[error("the signature does not match the request")]
    Mismatch,
    #[error("the URL has expired")]
    Expired,
}

/// Signs `PUT /_s3/uploads/{id}` URLs. The HMAC covers method, path, expiry,
/// size and sha256, so none of them can be changed without a 403.
pub struct UrlSigner {
    key: Vec<u8>,
}

impl UrlSigner {
    pub fn new(key: &str) -> Self {
        UrlSigner {
            key: key.as_bytes().to_vec(),
        }
    }

    fn mac(
        &self,
        method: &str,
        path: &str,
        expires_at: i64,
        size: u64,
        sha256: &str,
    ) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(format!("{method}\n{path}\n{expires_at}\n{size}\n{sha256}").as_bytes());
        mac
    }

    /// The full URL, below `base_url` (scheme and host the client used).
    pub fn presign_put(
        &self,
        base_url: &str,
        upload_id: &str,
        expires_at: DateTime<Utc>,
        size: u64,
        sha256: &str,
    ) -> String {
        let path = format!("{OWN_STORE_PREFIX}{upload_id}");
        let expires = expires_at.timestamp();
        let signature = hex::encode(
            self.mac("PUT", &path, expires, size, sha256)
                .finalize()
                .into_bytes(),
        );
        format!(
            "{base_url}{path}?X-Expires={expires}&X-Size={size}&X-Sha256={sha256}&X-Signature={signature}"
        )
    }

    /// Checks a request's method, path and query against the signature.
    pub fn verify(
        &self,
        method: &str,
        path: &str,
        query: &HashMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<SignedPut, SignatureError> {
        let param = |name: &'static str| query.get(name).ok_or(SignatureError::Missing(name));
        let expires_at: i64 = param("X-Expires")?
            .parse()
            .map_err(|_| SignatureError::Mismatch)?;
        let size: u64 = param("X-Size")?
            .parse()
            .map_err(|_| SignatureError::Mismatch)?;
        let sha256 = param("X-Sha256")?;
        let signature = hex::decode(param("X-Signature")?).map_err(|_| SignatureError::Mismatch)?;
        self.mac(method, path, expires_at, size, sha256)
            .verify_slice(&signature)
            .map_err(|_| SignatureError::Mismatch)?;
        // After the signature check: the expiry is only trusted once it is signed.
        if now.timestamp() >= expires_at {
            return Err(SignatureError::Expired);
        }
        let upload_id = path
            .strip_prefix(OWN_STORE_PREFIX)
            .ok_or(SignatureError::Mismatch)?
            .to_owned();
        Ok(SignedPut {
            upload_id,
            expires_at,
            size,
            sha256: sha256.clone(),
        })
    }
}

// ---------------------------------------------------------------------------
// External S3
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct ExternalS3Config {
    pub endpoint: Url,
    pub bucket: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
}

pub struct ExternalS3 {
    bucket: Bucket,
    credentials: Credentials,
    tls: Arc<rustls::ClientConfig>,
}

/// A pre-signed PUT for the client: URL plus the headers that were signed.
pub struct PresignedPut {
    pub url: String,
    pub headers: BTreeMap<String, String>,
}

impl ExternalS3 {
    pub fn new(config: ExternalS3Config) -> Result<Self, StoreError> {
        let bucket = Bucket::new(
            config.endpoint,
            UrlStyle::Path,
            config.bucket,
            config.region,
        )
        .map_err(|e| StoreError::Config(e.to_string()))?;
        Ok(ExternalS3 {
            bucket,
            credentials: Credentials::new(config.access_key, config.secret_key),
            tls: Arc::new(client_tls_config()?),
        })
    }

    pub fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        sha256_hex: &str,
        ttl: Duration,
    ) -> PresignedPut {
        let checksum = hex::decode(sha256_hex)
            .map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes))
            .unwrap_or_default();
        let mut action = self.bucket.put_object(Some(&self.credentials), key);
        // Signed headers: S3 refuses a PUT whose headers differ, and it checks
        // the body against x-amz-checksum-sha256 (400 BadDigest).
        action
            .headers_mut()
            .insert("content-type", content_type.to_owned());
        action
            .headers_mut()
            .insert("x-amz-checksum-sha256", checksum.clone());
        let url = action.sign(ttl).to_string();
        let headers = BTreeMap::from([
            ("Content-Type".to_owned(), content_type.to_owned()),
            ("x-amz-checksum-sha256".to_owned(), checksum),
        ]);
        PresignedPut { url, headers }
    }

    fn client(&self) -> awc::Client {
        awc::Client::builder()
            .connector(awc::Connector::new().rustls_0_23(self.tls.clone()))
            .timeout(Duration::from_secs(60))
            .finish()
    }

    pub async fn get(&self, key: &str, limit: usize) -> Result<Vec<u8>, StoreError> {
        let url = self
            .bucket
            .get_object(Some(&self.credentials), key)
            .sign(Duration::from_secs(60));
        let mut response = self
            .client()
            .get(url.as_str())
            .send()
            .await
            .map_err(|e| StoreError::Remote(e.to_string()))?;
        match response.status().as_u16() {
            200 => {}
            404 => return Err(StoreError::NotFound(key.to_owned())),
            other => return Err(StoreError::Remote(format!("GET {key} answered {other}"))),
        }
        let body = response
            .body()
            .limit(limit)
            .await
            .map_err(|e| StoreError::Remote(e.to_string()))?;
        Ok(body.to_vec())
    }
}

fn client_tls_config() -> Result<rustls::ClientConfig, StoreError> {
    let mut roots = rustls::RootCertStore::empty();
    // An S3 server behind a certificate of the OS trust store works out of the box.
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

// ---------------------------------------------------------------------------
// The object store
// ---------------------------------------------------------------------------

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object {0} not found")]
    NotFound(String),
    #[error("object store I/O: {0}")]
    Io(#[from] io::Error),
    #[error("external S3: {0}")]
    Remote(String),
    #[error("external S3 configuration: {0}")]
    Config(String),
}

pub enum ObjectStore {
    Memory(Mutex<HashMap<String, Vec<u8>>>),
    Directory(PathBuf),
    External(ExternalS3),
}

impl ObjectStore {
    pub fn memory() -> Self {
        ObjectStore::Memory(Mutex::new(HashMap::new()))
    }

    pub fn external(&self) -> Option<&ExternalS3> {
        match self {
            ObjectStore::External(s3) => Some(s3),
            _ => None,
        }
    }

    fn file_of(dir: &std::path::Path, key: &str) -> PathBuf {
        // Keys carry client-chosen file names: hash them into a safe name.
        dir.join(sha256_hex(key))
    }

    /// A writer for an object of the own store; the object appears only on
    /// [`ObjectWriter::finish`].
    pub fn writer(&self, key: &str) -> Result<ObjectWriter, StoreError> {
        match self {
            ObjectStore::Memory(_) => Ok(ObjectWriter::Memory {
                key: key.to_owned(),
                bytes: Vec::new(),
            }),
            ObjectStore::Directory(dir) => {
                let path = Self::file_of(dir, key);
                let temp = temp_path(&path);
                let file = File::create(&temp)?;
                Ok(ObjectWriter::File { file, temp, path })
            }
            ObjectStore::External(_) => Err(StoreError::Config(
                "objects go to the external S3 server, not to the emulator".into(),
            )),
        }
    }

    pub async fn read(&self, key: &str, limit: usize) -> Result<Vec<u8>, StoreError> {
        match self {
            ObjectStore::Memory(objects) => objects
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(key)
                .cloned()
                .ok_or_else(|| StoreError::NotFound(key.to_owned())),
            ObjectStore::Directory(dir) => match fs::read(Self::file_of(dir, key)) {
                Ok(bytes) => Ok(bytes),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    Err(StoreError::NotFound(key.to_owned()))
                }
                Err(e) => Err(e.into()),
            },
            ObjectStore::External(s3) => s3.get(key, limit).await,
        }
    }
}

pub enum ObjectWriter {
    Memory {
        key: String,
        bytes: Vec<u8>,
    },
    File {
        file: File,
        temp: PathBuf,
        path: PathBuf,
    },
}

impl ObjectWriter {
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        match self {
            ObjectWriter::Memory { bytes, .. } => bytes.extend_from_slice(chunk),
            ObjectWriter::File { file, .. } => file.write_all(chunk)?,
        }
        Ok(())
    }

    pub fn finish(self, store: &ObjectStore) -> Result<(), StoreError> {
        match (self, store) {
            (ObjectWriter::Memory { key, bytes }, ObjectStore::Memory(objects)) => {
                objects
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, bytes);
                Ok(())
            }
            (ObjectWriter::File { file, temp, path }, _) => {
                file.sync_all()?;
                drop(file);
                commit_temp_file(&temp, &path)
                    .map_err(|e| StoreError::Io(io::Error::other(e.to_string())))
            }
            _ => Err(StoreError::Config("writer and store do not match".into())),
        }
    }

    /// Drops a rejected body.
    pub fn abort(self) {
        if let ObjectWriter::File { file, temp, .. } = self {
            drop(file);
            let _ = fs::remove_file(temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query_of(url: &str) -> (String, HashMap<String, String>) {
        let url = Url::parse(url).unwrap();
        let query = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        (url.path().to_owned(), query)
    }

    #[test]
    fn a_signed_url_verifies_and_any_change_breaks_it() {
        let signer = UrlSigner::new("key");
        let now = Utc::now();
        let url = signer.presign_put(
            "http://127.0.0.1:1",
            "up_1",
            now + chrono::Duration::seconds(60),
            3,
            "ab",
        );
        let (path, query) = query_of(&url);
        let signed = signer.verify("PUT", &path, &query, now).unwrap();
        assert_eq!(signed.size, 3);
        assert_eq!(signed.upload_id, "up_1");

        assert_eq!(
            signer.verify("GET", &path, &query, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            signer.verify("PUT", "/_s3/uploads/up_2", &query, now),
            Err(SignatureError::Mismatch)
        );
        let mut bigger = query.clone();
        bigger.insert("X-Size".into(), "4".into());
        assert_eq!(
            signer.verify("PUT", &path, &bigger, now),
            Err(SignatureError::Mismatch)
        );
        let mut later = query.clone();
        later.insert("X-Expires".into(), (now.timestamp() + 9999).to_string());
        assert_eq!(
            signer.verify("PUT", &path, &later, now),
            Err(SignatureError::Mismatch)
        );
        let other_key = UrlSigner::new("other");
        assert_eq!(
            other_key.verify("PUT", &path, &query, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            signer.verify("PUT", &path, &query, now + chrono::Duration::seconds(60)),
            Err(SignatureError::Expired)
        );
        let mut unsigned = query;
        unsigned.remove("X-Signature");
        assert_eq!(
            signer.verify("PUT", &path, &unsigned, now),
            Err(SignatureError::Missing("X-Signature"))
        );
    }

    #[test]
    fn sigv4_urls_name_the_bucket_path_style_and_sign_the_checksum() {
        let s3 = ExternalS3::new(ExternalS3Config {
            endpoint: Url::parse("http://127.0.0.1:9000").unwrap(),
            bucket: "uploads".into(),
            region: "eu-west-1".into(),
            access_key: "AKIA".into(),
            secret_key: "secret".into(),
        })
        .unwrap();
        let put = s3.presign_put(
            "int_1/up_1/a.csv",
            "text/csv",
            &sha256_hex(b"x"),
            Duration::from_secs(900),
        );
        assert!(
            put.url
                .starts_with("http://127.0.0.1:9000/uploads/int_1/up_1/a.csv?"),
            "{}",
            put.url
        );
        assert!(put.url.contains("X-Amz-Signature="));
        assert!(put.url.contains("x-amz-checksum-sha256"));
        assert_eq!(put.headers["Content-Type"], "text/csv");
    }
}
