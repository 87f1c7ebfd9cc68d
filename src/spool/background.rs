//! Hands bytes to a writer that runs on a thread of its own, so that the
//! costly end of a pipeline (sha256, gzip, the file) overlaps with the
//! producing end (an ODBC fetch) on a machine with more than one core.
//!
//! Written by hand: std's bounded channel does everything needed here
//! (back-pressure, buffer recycling), and a crate for it would only wrap
//! the same twenty lines.

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

/// Bytes per hand-over: large enough that the channel costs nothing per
/// byte, small enough that the chunks in flight stay a few hundred KiB.
const CHUNK: usize = 128 * 1024;
/// Chunks that may wait for the writer thread. Bounds memory: at most
/// `(QUEUE + 2) * CHUNK` bytes are held, whatever the speed difference.
const QUEUE: usize = 4;

/// A [`Write`] whose bytes are written by `W` on another thread.
///
/// Call [`BackgroundWriter::finish`] to get `W` back after everything was
/// written. Dropped without `finish`, it waits for the thread and drops
/// `W` there (an `ItemWriter` then removes its temporary file).
pub struct BackgroundWriter<W: Write + Send + 'static> {
    buffer: Vec<u8>,
    full: Option<SyncSender<Vec<u8>>>,
    empty: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<W>>>,
}

impl<W: Write + Send + 'static> BackgroundWriter<W> {
    /// Starts the thread (named `name`, for `top -H` and panics).
    pub fn spawn(name: String, mut inner: W) -> io::Result<BackgroundWriter<W>> {
        let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(QUEUE);
        let (empty_tx, empty_rx) = mpsc::sync_channel::<Vec<u8>>(QUEUE + 1);
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            for mut chunk in full_rx {
                inner.write_all(&chunk)?;
                chunk.clear();
                // The producer may be gone (it finished or failed): the
                // chunk is then simply dropped.
                let _ = empty_tx.try_send(chunk);
            }
            inner.flush()?;
            Ok(inner)
        })?;
        Ok(BackgroundWriter {
            buffer: Vec::with_capacity(CHUNK),
            full: Some(full_tx),
            empty: empty_rx,
            thread: Some(thread),
        })
    }

    fn hand_over(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let next = self
            .empty
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let chunk = std::mem::replace(&mut self.buffer, next);
        let sent = self.full.as_ref().map(|tx| tx.send(chunk));
        match sent {
            Some(Ok(())) => Ok(()),
            // The thread stopped early: it failed. Its error is the one
            // to report, not "channel closed".
            _ => Err(self.join_error()),
        }
    }

    fn join(&mut self) -> io::Result<W> {
        self.full = None;
        match self.thread.take() {
            Some(thread) => match thread.join() {
                Ok(result) => result,
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    Err(io::Error::other(format!(
                        "the writer thread panicked: {message}"
                    )))
                }
            },
            None => Err(io::Error::other("the writer thread already ended")),
        }
    }

    fn join_error(&mut self) -> io::Error {
        match self.join() {
            Err(e) => e,
            Ok(_) => io::Error::other("the writer thread ended before the data did"),
        }
    }

    /// Writes what is left, waits for the thread and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.hand_over()?;
        self.join()
    }
}

impl<W: Write + Send + 'static> Write for BackgroundWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.buffer.len() + buf.len() > CHUNK {
            self.hand_over()?;
        }
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    /// Does not wait for the thread: data reaches `W` in order, and
    /// [`BackgroundWriter::finish`] is the point where all of it has.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write + Send + 'static> Drop for BackgroundWriter<W> {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn bytes_arrive_whole_and_in_order_across_many_chunks() {
        let sink = Shared::default();
        let mut writer = BackgroundWriter::spawn("test".into(), sink.clone()).unwrap();
        let mut expected = Vec::new();
        for i in 0..200_000u32 {
            let piece = format!("{i},");
            writer.write_all(piece.as_bytes()).unwrap();
            expected.extend_from_slice(piece.as_bytes());
        }
        // A write larger than a chunk goes through whole as well.
        let big = vec![b'x'; 3 * CHUNK + 17];
        writer.write_all(&big).unwrap();
        expected.extend_from_slice(&big);
        writer.finish().unwrap();
        assert_eq!(*sink.0.lock().unwrap(), expected);
    }

    struct FailsAfter(usize);

    impl Write for FailsAfter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.0 < buf.len() {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
            }
            self.0 -= buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_writer_threads_error_reaches_the_producer() {
        let mut writer = BackgroundWriter::spawn("test".into(), FailsAfter(CHUNK)).unwrap();
        let piece = vec![b'y'; 1000];
        let mut failed = None;
        for _ in 0..10_000 {
            if let Err(e) = writer.write_all(&piece) {
                failed = Some(e);
                break;
            }
        }
        let error = match failed {
            Some(e) => e,
            None => writer.finish().err().expect("the writer must fail"),
        };
        assert_eq!(error.kind(), io::ErrorKind::StorageFull, "{error}");
    }

    #[test]
    fn dropping_without_finish_drops_the_inner_writer() {
        struct NoteDrop(Arc<Mutex<bool>>);
        impl Write for NoteDrop {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        impl Drop for NoteDrop {
            fn drop(&mut self) {
                *self.0.lock().unwrap() = true;
            }
        }
        let dropped = Arc::new(Mutex::new(false));
        let mut writer =
            BackgroundWriter::spawn("test".into(), NoteDrop(Arc::clone(&dropped))).unwrap();
        writer.write_all(b"abc").unwrap();
        drop(writer);
        assert!(*dropped.lock().unwrap());
    }
}
