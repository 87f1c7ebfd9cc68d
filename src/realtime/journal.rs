//! The durable journal of one feed: every event read is appended here
//! before the cloud hears of it, and deleted only after the cloud accepted it.
//!
//! `state/realtime/<feed>/`:
//! - `<first sequence, 20 digits>.events`: segments of JSON lines, one
//!   [`RealtimeEvent`] a line, in sequence order;
//! - `cursor.json`: the journal's identity, the last sequence the cloud
//!   accepted, and the batch being posted ([`Cursor`]).
//!
//! Two owners, two halves, no lock between them: the [`JournalWriter`] (the
//! feed's group-commit thread) appends and fsyncs, then publishes the last
//! committed sequence; the [`JournalReader`] (delivery) reads only up to a
//! published sequence, so it never sees a line being written. Every method
//! does blocking file I/O: call it from a blocking thread.
//!
//! Exactly once: a batch's bounds and idempotency key are written to the
//! cursor *before* it is posted, so after a crash the same events go again
//! under the same key and the cloud answers "duplicate" instead of storing
//! them twice. The key names the journal's random identity, so a state
//! folder deleted and recreated (sequences restart at 1) never reuses one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::protocol::{RealtimeEvent, MAX_BATCH_BYTES, MAX_BATCH_EVENTS};
use crate::state::atomic::{load_json, owner_only, sync_dir, write_json_atomic, StateError};

/// A new segment starts past this size, so that delivered events free their
/// disk space soon after delivery.
const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
const SEGMENT_EXT: &str = "events";
const CURSOR: &str = "cursor.json";
/// Room for the batch's envelope (`{"idempotency_key":…,"events":[…]}`).
const ENVELOPE_BYTES: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot {action} the real-time journal {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Cursor(#[from] StateError),
    #[error("the real-time journal {0} is still open (its previous user is finishing)")]
    Busy(PathBuf),
    #[error("the real-time journal {path} is damaged at byte {offset}: {detail}")]
    Damaged {
        path: PathBuf,
        offset: u64,
        detail: String,
    },
}

fn io_error<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> JournalError + 'a {
    move |source| JournalError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// `cursor.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Random, made when the journal is created; part of every key.
    pub journal_id: String,
    /// The last sequence the cloud accepted (0: none yet).
    pub delivered: u64,
    /// The batch being posted, if any: after a restart it is posted again,
    /// exactly as before.
    #[serde(default)]
    pub pending: Option<PendingBatch>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingBatch {
    pub first: u64,
    pub last: u64,
    pub idempotency_key: String,
}

/// A batch to post: its key and events, in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub idempotency_key: String,
    pub events: Vec<RealtimeEvent>,
}

impl Batch {
    pub fn first(&self) -> u64 {
        self.events.first().map_or(0, |e| e.sequence)
    }

    pub fn last(&self) -> u64 {
        self.events.last().map_or(0, |e| e.sequence)
    }
}

/// What [`open`] found: for the start-up log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Events committed but not yet accepted by the cloud.
    pub undelivered: u64,
    /// The last committed sequence.
    pub committed: u64,
    /// Bytes of a line cut by a crash mid-write, removed (those events were
    /// never committed: nobody was told they were kept).
    pub torn_bytes: u64,
    /// The cursor was damaged: delivery starts over from the oldest event
    /// kept, which the cloud may see twice.
    pub cursor_damaged: Option<String>,
}

/// The journals open in this process: a restarted feed must not open a
/// second writer while the old one's last group commit is still running.
static OPEN: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Held by both halves; the journal is free again when both are dropped.
/// Also counts the bytes of its segments: the writer adds what it appends,
/// the reader takes off what it deletes.
#[derive(Debug)]
struct OpenGuard(PathBuf, std::sync::atomic::AtomicU64);

impl OpenGuard {
    fn take(dir: &Path) -> Result<Arc<OpenGuard>, JournalError> {
        let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
        if open.iter().any(|d| d == dir) {
            return Err(JournalError::Busy(dir.to_path_buf()));
        }
        open.push(dir.to_path_buf());
        Ok(Arc::new(OpenGuard(
            dir.to_path_buf(),
            std::sync::atomic::AtomicU64::new(0),
        )))
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        OPEN.lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|d| *d != self.0);
    }
}

/// Opens (or creates) the journal in `dir`.
pub fn open(dir: &Path) -> Result<(JournalWriter, JournalReader, Recovered), JournalError> {
    fs::create_dir_all(dir).map_err(io_error("create", dir))?;
    let guard = OpenGuard::take(dir)?;
    let cursor_path = dir.join(CURSOR);
    let mut segments = list_segments(dir)?;
    let (cursor, cursor_damaged) = match load_json::<Cursor>(&cursor_path) {
        Ok(Some(cursor)) => (cursor, None),
        Ok(None) => (new_cursor(segments.first().map_or(0, |s| s.0 - 1)), None),
        Err(e @ StateError::Damaged { .. }) => (
            new_cursor(segments.first().map_or(0, |s| s.0 - 1)),
            Some(e.to_string()),
        ),
        Err(e) => return Err(e.into()),
    };
    if cursor_damaged.is_some() || !cursor_path.exists() {
        write_json_atomic(&cursor_path, &cursor).map_err(io_error("write", &cursor_path))?;
    }

    // The last segment may end in a line cut by a crash: cut it off.
    let mut torn_bytes = 0;
    let mut committed = cursor.delivered;
    while let Some((_, path)) = segments.last().cloned() {
        let (last, complete_len, total_len) = last_sequence(&path)?;
        if complete_len < total_len {
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_error("repair", &path))?;
            file.set_len(complete_len)
                .map_err(io_error("repair", &path))?;
            file.sync_all().map_err(io_error("repair", &path))?;
            torn_bytes += total_len - complete_len;
        }
        match last {
            Some(last) => {
                committed = committed.max(last);
                break;
            }
            None => {
                // Empty: a segment created just before a crash.
                fs::remove_file(&path).map_err(io_error("remove", &path))?;
                segments.pop();
            }
        }
    }
    let bytes: u64 = list_segments(dir)?
        .iter()
        .filter_map(|(_, path)| fs::metadata(path).ok())
        .map(|m| m.len())
        .sum();
    guard.1.store(bytes, std::sync::atomic::Ordering::SeqCst);
    let writer = JournalWriter {
        guard: Arc::clone(&guard),
        dir: dir.to_path_buf(),
        next_sequence: committed + 1,
        file: None,
        file_len: 0,
    };
    let mut reader = JournalReader {
        guard,
        dir: dir.to_path_buf(),
        cursor,
        position: None,
    };
    reader.remove_delivered_segments()?;
    let recovered = Recovered {
        undelivered: committed.saturating_sub(reader.cursor.delivered),
        committed,
        torn_bytes,
        cursor_damaged,
    };
    Ok((writer, reader, recovered))
}

fn new_cursor(delivered: u64) -> Cursor {
    Cursor {
        journal_id: uuid::Uuid::new_v4().simple().to_string(),
        delivered,
        pending: None,
    }
}

fn segment_name(first: u64) -> String {
    format!("{first:020}.{SEGMENT_EXT}")
}

/// Segments by first sequence, oldest first.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error("read", dir))? {
        let path = entry.map_err(io_error("read", dir))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some(SEGMENT_EXT) {
            continue;
        }
        if let Some(first) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|&first| first > 0)
        {
            segments.push((first, path));
        }
    }
    segments.sort();
    Ok(segments)
}

/// The last complete line's sequence, the length up to it, the file's length.
fn last_sequence(path: &Path) -> Result<(Option<u64>, u64, u64), JournalError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io_error("read", path))?;
    let total = bytes.len() as u64;
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let last_line = bytes[..complete]
        .strip_suffix(b"\n")
        .map(|b| b.rsplit(|&c| c == b'\n').next().unwrap_or(b));
    let last = match last_line {
        Some(line) if !line.is_empty() => Some(
            serde_json::from_slice::<RealtimeEvent>(line)
                .map_err(|e| JournalError::Damaged {
                    path: path.to_path_buf(),
                    offset: complete as u64 - line.len() as u64 - 1,
                    detail: e.to_string(),
                })?
                .sequence,
        ),
        _ => None,
    };
    Ok((last, complete as u64, total))
}

/// An event as read from the feed, before it has a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub agentidentifier: String,
    pub activity: String,
    pub reason: Option<String>,
    pub timestamp: String,
    pub received_at: String,
}

/// The appending half; one per journal.
#[derive(Debug)]
pub struct JournalWriter {
    guard: Arc<OpenGuard>,
    dir: PathBuf,
    next_sequence: u64,
    file: Option<(PathBuf, File)>,
    file_len: u64,
}

impl JournalWriter {
    /// The sequence of the last committed event (0: none ever).
    pub fn committed(&self) -> u64 {
        self.next_sequence - 1
    }

    /// Bytes the journal's segments take on disk (delivered segments are
    /// deleted by the reader and no longer count).
    pub fn bytes(&self) -> u64 {
        self.guard.1.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Appends the events as one group, durable (fsync'd) when this
    /// returns; gives the last sequence. On an error nothing of the group is
    /// kept (the file is cut back), so the caller may try the same group
    /// again.
    pub fn append(&mut self, events: &[NewEvent]) -> Result<u64, JournalError> {
        if events.is_empty() {
            return Ok(self.committed());
        }
        if self.file.is_none() || self.file_len >= SEGMENT_BYTES {
            self.start_segment()?;
        }
        let mut bytes = Vec::with_capacity(events.len() * 160);
        let mut sequence = self.next_sequence;
        for event in events {
            let event = RealtimeEvent {
                sequence,
                agentidentifier: event.agentidentifier.clone(),
                activity: event.activity.clone(),
                reason: event.reason.clone(),
                timestamp: event.timestamp.clone(),
                received_at: event.received_at.clone(),
            };
            serde_json::to_writer(&mut bytes, &event).expect("an event serialises");
            bytes.push(b'\n');
            sequence += 1;
        }
        let (path, file) = self.file.as_mut().expect("a segment is open");
        let written = file.write_all(&bytes).and_then(|()| file.sync_data());
        if let Err(source) = written {
            // Cut back to the last group, so no half line stays behind.
            let _ = file.set_len(self.file_len);
            let _ = file.seek(SeekFrom::Start(self.file_len));
            return Err(JournalError::Io {
                action: "append to",
                path: path.clone(),
                source,
            });
        }
        self.file_len += bytes.len() as u64;
        self.guard
            .1
            .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::SeqCst);
        self.next_sequence = sequence;
        Ok(self.committed())
    }

    fn start_segment(&mut self) -> Result<(), JournalError> {
        let path = self.dir.join(segment_name(self.next_sequence));
        let mut file = owner_only(OpenOptions::new().create(true).append(true))
            .open(&path)
            .map_err(io_error("create", &path))?;
        // A segment left by the previous run: continue it.
        self.file_len = file
            .seek(SeekFrom::End(0))
            .map_err(io_error("open", &path))?;
        sync_dir(&self.dir).map_err(io_error("sync", &self.dir))?;
        self.file = Some((path, file));
        Ok(())
    }
}

/// The delivering half; one per journal.
#[derive(Debug)]
pub struct JournalReader {
    guard: Arc<OpenGuard>,
    dir: PathBuf,
    cursor: Cursor,
    /// Where the next unread line starts: segment, byte offset, sequence.
    position: Option<(PathBuf, u64, u64)>,
}

impl JournalReader {
    pub fn delivered(&self) -> u64 {
        self.cursor.delivered
    }

    /// The batch to post next: the pending one again, or a new one of the
    /// events after the last delivered, up to `committed` and the protocol's
    /// limits, recorded as pending before it is returned. `None`: nothing to
    /// send.
    pub fn next_batch(&mut self, committed: u64) -> Result<Option<Batch>, JournalError> {
        if let Some(pending) = self.cursor.pending.clone() {
            let events = self.read(pending.first, pending.last, usize::MAX)?;
            if events.last().map(|e| e.sequence) == Some(pending.last) {
                return Ok(Some(Batch {
                    idempotency_key: pending.idempotency_key,
                    events,
                }));
            }
            // The pending events are not all there (a journal cut by hand):
            // form a new batch of what there is.
            self.cursor.pending = None;
        }
        if committed <= self.cursor.delivered {
            return Ok(None);
        }
        let first = self.cursor.delivered + 1;
        let last = committed.min(self.cursor.delivered + MAX_BATCH_EVENTS as u64);
        let events = self.read(first, last, MAX_BATCH_BYTES - ENVELOPE_BYTES)?;
        let (Some(head), Some(tail)) = (events.first(), events.last()) else {
            return Ok(None);
        };
        let pending = PendingBatch {
            first: head.sequence,
            last: tail.sequence,
            idempotency_key: format!(
                "rt-{}-{}-{}",
                self.cursor.journal_id, head.sequence, tail.sequence
            ),
        };
        self.cursor.pending = Some(pending.clone());
        self.save()?;
        Ok(Some(Batch {
            idempotency_key: pending.idempotency_key,
            events,
        }))
    }

    /// The cloud accepted `batch` (or refused it for good and it was set
    /// aside): it is delivered, and segments wholly delivered are deleted.
    pub fn acknowledge(&mut self, batch: &Batch) -> Result<(), JournalError> {
        self.cursor.delivered = self.cursor.delivered.max(batch.last());
        self.cursor.pending = None;
        self.save()?;
        self.remove_delivered_segments()
    }

    fn save(&self) -> Result<(), JournalError> {
        let path = self.dir.join(CURSOR);
        write_json_atomic(&path, &self.cursor).map_err(io_error("write", &path))
    }

    /// Deletes each segment whose successor starts at or before the first
    /// undelivered sequence (the newest segment stays: the writer owns it).
    fn remove_delivered_segments(&mut self) -> Result<(), JournalError> {
        let segments = list_segments(&self.dir)?;
        let next = self.cursor.delivered + 1;
        for pair in segments.windows(2) {
            let (_, path) = &pair[0];
            if pair[1].0 <= next {
                let size = fs::metadata(path).map_or(0, |m| m.len());
                fs::remove_file(path).map_err(io_error("remove", path))?;
                self.guard
                    .1
                    .fetch_sub(size, std::sync::atomic::Ordering::SeqCst);
                if self.position.as_ref().is_some_and(|(p, _, _)| p == path) {
                    self.position = None;
                }
            }
        }
        Ok(())
    }

    /// Events `first..=last`, stopping early past `max_bytes` of lines.
    fn read(
        &mut self,
        first: u64,
        last: u64,
        max_bytes: usize,
    ) -> Result<Vec<RealtimeEvent>, JournalError> {
        let (mut path, mut offset) = match &self.position {
            Some((path, offset, next)) if *next == first => (path.clone(), *offset),
            _ => match self.seek(first)? {
                Some(found) => found,
                None => return Ok(Vec::new()),
            },
        };
        let mut events = Vec::new();
        let mut bytes = 0;
        let mut next = first;
        'segments: loop {
            let mut file = BufReader::new(File::open(&path).map_err(io_error("read", &path))?);
            file.seek(SeekFrom::Start(offset))
                .map_err(io_error("read", &path))?;
            let mut line = Vec::new();
            loop {
                if next > last || bytes >= max_bytes {
                    break 'segments;
                }
                line.clear();
                let n = file
                    .read_until(b'\n', &mut line)
                    .map_err(io_error("read", &path))?;
                if n == 0 || line.last() != Some(&b'\n') {
                    // The end of this segment: the next starts at `next`.
                    let following = self.dir.join(segment_name(next));
                    if following.exists() && following != path {
                        path = following;
                        offset = 0;
                        continue 'segments;
                    }
                    break 'segments;
                }
                let event: RealtimeEvent =
                    serde_json::from_slice(&line).map_err(|e| JournalError::Damaged {
                        path: path.clone(),
                        offset,
                        detail: e.to_string(),
                    })?;
                if bytes + n > max_bytes && !events.is_empty() {
                    break 'segments;
                }
                offset += n as u64;
                if event.sequence < next {
                    continue; // before the batch (a seek within a segment)
                }
                next = event.sequence + 1;
                bytes += n;
                events.push(event);
            }
        }
        self.position = Some((path, offset, next));
        Ok(events)
    }

    /// The segment holding `sequence`, and the offset to read it from (the
    /// segment's start: `read` skips the lines before it).
    fn seek(&self, sequence: u64) -> Result<Option<(PathBuf, u64)>, JournalError> {
        Ok(list_segments(&self.dir)?
            .into_iter()
            .rev()
            .find(|(first, _)| *first <= sequence)
            .map(|(_, path)| (path, 0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: u64) -> NewEvent {
        NewEvent {
            agentidentifier: format!("{}", i % 7),
            activity: format!("A{i}"),
            reason: None,
            timestamp: "2026-12-02T08:00:00+01:00".into(),
            received_at: "2026-12-02T07:00:00.000Z".into(),
        }
    }

    fn activities(batch: &Batch) -> Vec<String> {
        batch.events.iter().map(|e| e.activity.clone()).collect()
    }

    #[test]
    fn events_are_delivered_in_order_once_and_the_key_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, mut reader, recovered) = open(dir.path()).unwrap();
        assert_eq!(recovered.committed, 0);
        let committed = writer
            .append(&(1..=5).map(event).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(committed, 5);
        let batch = reader.next_batch(committed).unwrap().unwrap();
        assert_eq!(activities(&batch), ["A1", "A2", "A3", "A4", "A5"]);
        assert_eq!((batch.first(), batch.last()), (1, 5));
        // A crash before the answer: the same batch, the same key, even
        // though more events came meanwhile.
        writer.append(&[event(6)]).unwrap();
        drop((writer, reader));
        let (writer, mut reader, recovered) = open(dir.path()).unwrap();
        assert_eq!(recovered.undelivered, 6);
        let again = reader.next_batch(writer.committed()).unwrap().unwrap();
        assert_eq!(again, batch);
        reader.acknowledge(&again).unwrap();
        let rest = reader.next_batch(writer.committed()).unwrap().unwrap();
        assert_eq!(activities(&rest), ["A6"]);
        assert_ne!(rest.idempotency_key, batch.idempotency_key);
        reader.acknowledge(&rest).unwrap();
        assert_eq!(reader.next_batch(writer.committed()).unwrap(), None);
        // Sequences go on after a restart with everything delivered.
        drop((writer, reader));
        let (mut writer, _, recovered) = open(dir.path()).unwrap();
        assert_eq!(recovered.undelivered, 0);
        assert_eq!(writer.append(&[event(7)]).unwrap(), 7);
    }

    #[test]
    fn a_line_cut_by_a_crash_is_removed_and_its_sequence_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, _, _) = open(dir.path()).unwrap();
        writer.append(&[event(1), event(2)]).unwrap();
        let segment = dir.path().join(segment_name(1));
        let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
        file.write_all(br#"{"sequence":3,"agentid"#).unwrap();
        drop((writer, file));
        let (mut writer, mut reader, recovered) = open(dir.path()).unwrap();
        assert_eq!(recovered.committed, 2);
        assert_eq!(recovered.torn_bytes, 22);
        assert_eq!(writer.append(&[event(3)]).unwrap(), 3);
        let batch = reader.next_batch(3).unwrap().unwrap();
        assert_eq!(activities(&batch), ["A1", "A2", "A3"]);
    }

    #[test]
    fn the_reader_never_reads_past_what_was_committed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, mut reader, _) = open(dir.path()).unwrap();
        writer
            .append(&(1..=4).map(event).collect::<Vec<_>>())
            .unwrap();
        let batch = reader.next_batch(2).unwrap().unwrap();
        assert_eq!(batch.last(), 2);
        reader.acknowledge(&batch).unwrap();
        assert_eq!(reader.next_batch(4).unwrap().unwrap().first(), 3);
    }

    #[test]
    fn batches_keep_to_the_protocols_limits_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, mut reader, _) = open(dir.path()).unwrap();
        let mut big = event(0);
        big.reason = Some("r".repeat(4000));
        // 3,000 events of about 4 kB: several segments, batches by bytes.
        for group in 0..30 {
            let events: Vec<NewEvent> = (0..100)
                .map(|i| {
                    let mut e = big.clone();
                    e.activity = format!("A{}", group * 100 + i + 1);
                    e
                })
                .collect();
            writer.append(&events).unwrap();
        }
        assert!(list_segments(dir.path()).unwrap().len() > 1);
        let mut seen = 0;
        while let Some(batch) = reader.next_batch(writer.committed()).unwrap() {
            let json = serde_json::to_vec(&batch.events).unwrap();
            assert!(
                json.len() + ENVELOPE_BYTES <= MAX_BATCH_BYTES,
                "{}",
                json.len()
            );
            assert!(batch.events.len() <= MAX_BATCH_EVENTS);
            for e in &batch.events {
                seen += 1;
                assert_eq!(e.sequence, seen);
                assert_eq!(e.activity, format!("A{seen}"));
            }
            reader.acknowledge(&batch).unwrap();
        }
        assert_eq!(seen, 3000);
        assert_eq!(
            list_segments(dir.path()).unwrap().len(),
            1,
            "delivered segments deleted"
        );
    }

    #[test]
    fn a_journal_is_opened_once_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, reader, _) = open(dir.path()).unwrap();
        assert!(matches!(open(dir.path()), Err(JournalError::Busy(_))));
        drop(reader);
        assert!(
            matches!(open(dir.path()), Err(JournalError::Busy(_))),
            "the writer still holds it"
        );
        drop(writer);
        assert!(open(dir.path()).is_ok());
    }

    #[test]
    fn a_damaged_cursor_starts_over_from_the_oldest_event_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, mut reader, _) = open(dir.path()).unwrap();
        writer.append(&[event(1), event(2)]).unwrap();
        let b = reader.next_batch(1).unwrap().unwrap();
        reader.acknowledge(&b).unwrap();
        drop((writer, reader));
        fs::write(dir.path().join(CURSOR), b"{not json").unwrap();
        let (_, mut reader, recovered) = open(dir.path()).unwrap();
        assert!(recovered.cursor_damaged.is_some());
        assert_eq!(reader.next_batch(2).unwrap().unwrap().first(), 1);
    }
}
