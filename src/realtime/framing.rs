//! Cutting a byte stream into lines (frames): LF, CRLF or STX…ETX.
//!
//! Pure: bytes in, frames out. A frame longer than [`MAX_FRAME`] is not
//! buffered: its bytes are counted and dropped up to its end, and the caller
//! learns its length once, so a peer that sends a gigabyte without a line
//! end costs 64 KiB of memory, not a gigabyte.

use crate::protocol::Framing;

/// The longest line kept: a state change is about 1 kB (the original's
/// system requirements), so 64 KiB leaves room for any real line.
pub const MAX_FRAME: usize = 64 * 1024;

const STX: u8 = 0x02;
const ETX: u8 = 0x03;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One line, without its terminator (a trailing CR is removed too, so
    /// that `lf` takes CRLF lines and `crlf` takes bare LF ones: exporters
    /// mix them).
    Line(Vec<u8>),
    /// A line longer than [`MAX_FRAME`], dropped; its full length.
    TooLong(usize),
}

#[derive(Debug)]
pub struct Framer {
    framing: Framing,
    max: usize,
    buffer: Vec<u8>,
    /// Bytes dropped of the current over-long frame; `Some` while skipping.
    skipping: Option<usize>,
    /// STX…ETX: inside a frame (bytes between ETX and the next STX are
    /// noise, e.g. keep-alive NULs, and are ignored).
    inside: bool,
}

impl Framer {
    pub fn new(framing: Framing) -> Self {
        Framer::with_max(framing, MAX_FRAME)
    }

    pub fn with_max(framing: Framing, max: usize) -> Self {
        Framer {
            framing,
            max,
            buffer: Vec::new(),
            skipping: None,
            inside: false,
        }
    }

    /// Feeds bytes read from the socket; returns the frames they complete.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<Frame> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            if self.framing == Framing::StxEtx && !self.inside {
                match bytes.iter().position(|&b| b == STX) {
                    Some(at) => {
                        self.inside = true;
                        bytes = &bytes[at + 1..];
                        continue;
                    }
                    None => break,
                }
            }
            let end = match self.framing {
                Framing::StxEtx => ETX,
                Framing::Lf | Framing::Crlf => b'\n',
            };
            match bytes.iter().position(|&b| b == end) {
                Some(at) => {
                    self.take(&bytes[..at]);
                    bytes = &bytes[at + 1..];
                    self.inside = false;
                    frames.push(self.finish());
                }
                None => {
                    self.take(bytes);
                    bytes = &[];
                }
            }
        }
        frames
    }

    /// Bytes of the unfinished line, for a peer that closes without a final
    /// line end (a file sent with `socat`/`nc` often ends so): the last line
    /// counts like any other.
    pub fn finish_stream(&mut self) -> Option<Frame> {
        if self.buffer.is_empty() && self.skipping.is_none() {
            return None;
        }
        if self.framing == Framing::StxEtx {
            // A frame without its ETX was cut by the disconnect: not a line.
            self.buffer.clear();
            self.skipping = None;
            return None;
        }
        Some(self.finish())
    }

    fn take(&mut self, bytes: &[u8]) {
        if let Some(skipped) = &mut self.skipping {
            *skipped += bytes.len();
        } else if self.buffer.len() + bytes.len() > self.max {
            self.skipping = Some(self.buffer.len() + bytes.len());
            self.buffer = Vec::new();
        } else {
            self.buffer.extend_from_slice(bytes);
        }
    }

    fn finish(&mut self) -> Frame {
        if let Some(length) = self.skipping.take() {
            return Frame::TooLong(length);
        }
        let mut line = std::mem::take(&mut self.buffer);
        if self.framing != Framing::StxEtx && line.last() == Some(&b'\r') {
            line.pop();
        }
        Frame::Line(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(frames: Vec<Frame>) -> Vec<String> {
        frames
            .into_iter()
            .map(|f| match f {
                Frame::Line(l) => String::from_utf8(l).unwrap(),
                Frame::TooLong(n) => format!("<{n}>"),
            })
            .collect()
    }

    #[test]
    fn lf_and_crlf_lines_split_across_reads() {
        let mut framer = Framer::new(Framing::Lf);
        assert_eq!(lines(framer.push(b"a;1\r\nb;")), ["a;1"]);
        assert_eq!(lines(framer.push(b"2\nc")), ["b;2"]);
        assert_eq!(lines(framer.push(b";3\r")), Vec::<String>::new());
        assert_eq!(lines(framer.push(b"\n")), ["c;3"]);
        let mut framer = Framer::new(Framing::Crlf);
        assert_eq!(lines(framer.push(b"x\r\ny\n")), ["x", "y"]);
    }

    #[test]
    fn stx_etx_frames_ignore_noise_between_frames() {
        let mut framer = Framer::new(Framing::StxEtx);
        assert_eq!(lines(framer.push(b"\0\0\x02a;1\x03\r\n\x02b;")), ["a;1"]);
        assert_eq!(lines(framer.push(b"2\x03")), ["b;2"]);
        // A line break inside a frame belongs to it.
        assert_eq!(lines(framer.push(b"\x02c\nd\x03")), ["c\nd"]);
    }

    #[test]
    fn an_over_long_line_is_dropped_without_being_buffered() {
        let mut framer = Framer::with_max(Framing::Lf, 8);
        assert_eq!(lines(framer.push(b"12345")), Vec::<String>::new());
        assert_eq!(lines(framer.push(b"67890")), Vec::<String>::new());
        assert!(
            framer.buffer.capacity() <= 8,
            "nothing kept of the long line"
        );
        for _ in 0..1000 {
            assert!(framer.push(b"xxxxxxxxxxxxxxxx").is_empty());
            assert!(framer.buffer.is_empty());
        }
        assert_eq!(lines(framer.push(b"1\nok\n")), ["<16011>", "ok"]);
    }

    #[test]
    fn the_last_line_without_a_line_end_counts_when_the_peer_closes() {
        let mut framer = Framer::new(Framing::Lf);
        assert_eq!(lines(framer.push(b"a\nb")), ["a"]);
        assert_eq!(framer.finish_stream(), Some(Frame::Line(b"b".to_vec())));
        assert_eq!(framer.finish_stream(), None);
        let mut framer = Framer::new(Framing::StxEtx);
        framer.push(b"\x02half");
        assert_eq!(framer.finish_stream(), None, "a cut STX frame is no line");
    }
}
