//! Writing one item: gzip (level 1) and sha256 of the compressed bytes in
//! the same pass, into a temporary file that becomes an item only at
//! [`ItemWriter::commit`].

use crate::state::atomic::owner_only;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

use super::{NewItem, Spool, SpoolError, SpooledItem, SIDECAR_EXT};
use crate::state::atomic::{sync_dir, write_json_atomic};

/// Level 1: CSV compresses well even at the fastest level, and a large
/// backfill must not be held up by the CPU of a small server.
const LEVEL: u32 = 1;
const BUFFER: usize = 64 * 1024;

/// An item being written. Takes the uncompressed content through
/// [`std::io::Write`]; nothing of it is an item (or uploaded) until
/// [`ItemWriter::commit`]. Dropped without commit, it removes its file.
pub struct ItemWriter {
    spool: Spool,
    id: String,
    created_at: DateTime<Utc>,
    temp: PathBuf,
    encoder: Option<GzEncoder<Hashing<BufWriter<File>>>>,
    uncompressed: u64,
}

/// Hashes and counts what passes through to `inner`.
struct Hashing<W> {
    inner: W,
    sha256: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha256.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl ItemWriter {
    pub(super) fn create(spool: Spool, file_name: &str) -> Result<ItemWriter, SpoolError> {
        let created_at = Utc::now();
        // Sortable by time, unique, and free of anything from the file name.
        let id = format!(
            "{}-{}",
            created_at.format("%Y%m%dT%H%M%S%6fZ"),
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let temp = spool.settings().dir.join(format!(".{id}.gz.tmp"));
        let file = owner_only(OpenOptions::new().write(true).create_new(true))
            .open(&temp)
            .map_err(|source| SpoolError::Io {
                path: temp.clone(),
                source,
            })?;
        tracing::debug!("spooling {file_name} as item {id}");
        let hashing = Hashing {
            inner: BufWriter::with_capacity(BUFFER, file),
            sha256: Sha256::new(),
            bytes: 0,
        };
        Ok(ItemWriter {
            spool,
            id,
            created_at,
            temp,
            encoder: Some(GzEncoder::new(hashing, Compression::new(LEVEL))),
            uncompressed: 0,
        })
    }

    /// The item's id (also the stem of its files).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Bytes written so far, before compression.
    pub fn uncompressed_bytes(&self) -> u64 {
        self.uncompressed
    }

    /// Finishes the data (gzip trailer, fsync, rename) and then writes the
    /// sidecar atomically: from that moment the item exists and will be
    /// uploaded, also after a crash. On error nothing of the item remains.
    pub fn commit(mut self, item: NewItem) -> Result<SpooledItem, SpoolError> {
        let encoder = self.encoder.take().expect("taken only by commit");
        let data = self.spool.data_path(&self.id);
        let sidecar = self
            .spool
            .settings()
            .dir
            .join(format!("{}.{SIDECAR_EXT}", self.id));
        let temp = self.temp.clone();
        let io_at = |path: &PathBuf| {
            let path = path.clone();
            move |source| SpoolError::Io { path, source }
        };
        let result = (|| {
            let hashing = encoder.finish().map_err(io_at(&temp))?;
            let Hashing {
                inner,
                sha256,
                bytes,
            } = hashing;
            let file = inner
                .into_inner()
                .map_err(|e| io_at(&temp)(e.into_error()))?;
            file.sync_all().map_err(io_at(&temp))?;
            drop(file);
            fs::rename(&temp, &data).map_err(io_at(&temp))?;
            // The data's rename is durable before the sidecar can be.
            let dir = &self.spool.settings().dir;
            sync_dir(dir).map_err(io_at(dir))?;
            let spooled = SpooledItem {
                id: self.id.clone(),
                source: item.source,
                idempotency_key: item.idempotency_key,
                file_name: item.file_name,
                content_type: item.content_type,
                metadata: item.metadata,
                origin: item.origin,
                local: item.local,
                size: bytes,
                sha256: hex::encode(sha256.finalize()),
                uncompressed_size: self.uncompressed,
                created_at: self.created_at,
                attempts: 0,
                next_attempt_at: None,
                last_error: None,
            };
            write_json_atomic(&sidecar, &spooled).map_err(io_at(&sidecar))?;
            Ok(spooled)
        })();
        match result {
            Ok(spooled) => {
                self.spool.committed(spooled.size);
                Ok(spooled)
            }
            Err(e) => {
                let _ = fs::remove_file(&temp);
                let _ = fs::remove_file(&data);
                Err(e)
            }
        }
    }

    /// Gives the item up: its file is removed.
    pub fn abort(mut self) {
        self.discard();
    }

    fn discard(&mut self) {
        if self.encoder.take().is_some() {
            if let Err(e) = fs::remove_file(&self.temp) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(
                        "cannot remove the unfinished {}: {e}; it is removed at the next start",
                        self.temp.display()
                    );
                }
            }
        }
    }
}

impl Write for ItemWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let encoder = self
            .encoder
            .as_mut()
            .ok_or_else(|| io::Error::other("the item is already committed"))?;
        let n = encoder.write(buf)?;
        self.uncompressed += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.encoder.as_mut() {
            Some(encoder) => encoder.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for ItemWriter {
    fn drop(&mut self) {
        self.discard();
    }
}

impl std::fmt::Debug for ItemWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ItemWriter")
            .field("id", &self.id)
            .field("uncompressed", &self.uncompressed)
            .finish_non_exhaustive()
    }
}
