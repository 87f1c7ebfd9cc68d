//! One feed line → one agent state, per the integration's `format`.
//!
//! Pure: text and the time the line was read in, a state or a problem out.
//! A problem has a [`LineProblem::kind`] so that the feed logs each kind once
//! with an example instead of once per line.

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::protocol::{FeedEncoding, FeedFormat, FeedFormatKind, Framing};

/// A state read from a line: who, what, since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentState {
    pub agent: String,
    pub activity: String,
    pub reason: Option<String>,
    /// With the offset of the feed's time zone at that instant.
    pub timestamp: DateTime<FixedOffset>,
}

/// Why a `format` block cannot be used; the feed does not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("the feed's time zone {0:?} is not an IANA zone name (e.g. Europe/Berlin)")]
    TimeZone(String),
    #[error("the feed's fields {0:?} do not name both `agentidentifier` and `activity`")]
    Fields(Vec<String>),
    #[error("the feed's delimiter is empty")]
    Delimiter,
    #[error("a snapshot feed needs a `refresh_marker`")]
    RefreshMarker,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    #[error("the line is not valid UTF-8 (is the feed's encoding windows-1252?)")]
    NotUtf8,
    #[error("the line has {found} field(s) where the format names {expected}")]
    TooFewFields { found: usize, expected: usize },
    #[error("the line is not a JSON object: {0}")]
    NotJson(String),
    #[error("the line has no {0}")]
    Missing(&'static str),
    #[error("the timestamp {0:?} does not match the format")]
    Timestamp(String),
}

impl LineProblem {
    /// A short stable name of the problem, one log line per kind.
    pub fn kind(&self) -> &'static str {
        match self {
            LineProblem::NotUtf8 => "not UTF-8",
            LineProblem::TooFewFields { .. } => "too few fields",
            LineProblem::NotJson(_) => "not JSON",
            LineProblem::Missing(field) => field,
            LineProblem::Timestamp(_) => "bad timestamp",
        }
    }
}

#[derive(Debug, Clone)]
pub struct LineParser {
    kind: FeedFormatKind,
    framing: Framing,
    encoding: FeedEncoding,
    delimiter: String,
    /// Field positions of the delimited forms.
    agent: usize,
    activity: usize,
    timestamp: Option<usize>,
    reason: Option<usize>,
    width: usize,
    timestamp_format: Option<String>,
    zone: Tz,
    marker: Option<String>,
}

/// What a line turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    State(AgentState),
    /// `snapshot`: the start of a full refresh.
    RefreshMarker,
    /// Blank: keep-alives of some ACDs.
    Blank,
}

impl LineParser {
    pub fn new(format: &FeedFormat) -> Result<Self, FormatError> {
        let zone: Tz = format
            .time_zone
            .parse()
            .map_err(|_| FormatError::TimeZone(format.time_zone.clone()))?;
        let position = |name: &str| {
            format
                .fields
                .iter()
                .position(|f| f.trim().eq_ignore_ascii_case(name))
        };
        let delimited = format.kind != FeedFormatKind::JsonLines;
        let (agent, activity) = match (position("agentidentifier"), position("activity")) {
            (Some(agent), Some(activity)) => (agent, activity),
            _ if !delimited => (0, 0),
            _ => return Err(FormatError::Fields(format.fields.clone())),
        };
        if delimited && format.delimiter.is_empty() {
            return Err(FormatError::Delimiter);
        }
        let marker = match (&format.kind, &format.refresh_marker) {
            (FeedFormatKind::Snapshot, None) => return Err(FormatError::RefreshMarker),
            (FeedFormatKind::Snapshot, Some(m)) if m.is_empty() => {
                return Err(FormatError::RefreshMarker)
            }
            (FeedFormatKind::Snapshot, Some(m)) => Some(m.clone()),
            _ => None,
        };
        let timestamp = position("timestamp");
        let reason = position("reason");
        Ok(LineParser {
            kind: format.kind,
            framing: format.framing,
            encoding: format.encoding,
            delimiter: format.delimiter.clone(),
            agent,
            activity,
            timestamp,
            reason,
            width: [Some(agent), Some(activity), timestamp, reason]
                .into_iter()
                .flatten()
                .max()
                .map_or(0, |m| m + 1),
            timestamp_format: format.timestamp_format.clone(),
            zone,
            marker,
        })
    }

    pub fn kind(&self) -> FeedFormatKind {
        self.kind
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The zone of timestamps without an offset (and of logged-out events).
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// Decodes and parses one frame. `received_at` stands in for a missing
    /// timestamp field.
    pub fn parse(&self, frame: &[u8], received_at: DateTime<Utc>) -> Result<Line, LineProblem> {
        let text = self.decode(frame)?;
        let text = text.trim_matches(|c: char| c == '\r' || c == '\n' || c == '\0');
        if text.trim().is_empty() {
            return Ok(Line::Blank);
        }
        if let Some(marker) = &self.marker {
            if text.starts_with(marker.as_str()) {
                return Ok(Line::RefreshMarker);
            }
        }
        match self.kind {
            FeedFormatKind::JsonLines => self.parse_json(text, received_at),
            FeedFormatKind::Delimited | FeedFormatKind::Snapshot => {
                self.parse_delimited(text, received_at)
            }
        }
        .map(Line::State)
    }

    fn decode<'a>(&self, frame: &'a [u8]) -> Result<std::borrow::Cow<'a, str>, LineProblem> {
        match self.encoding {
            FeedEncoding::Utf8 => {
                let frame = frame.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(frame);
                std::str::from_utf8(frame)
                    .map(std::borrow::Cow::Borrowed)
                    .map_err(|_| LineProblem::NotUtf8)
            }
            // Every byte is a character in windows-1252 (WHATWG's mapping).
            FeedEncoding::Windows1252 => Ok(encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(frame)
                .0),
        }
    }

    fn parse_delimited(
        &self,
        text: &str,
        received_at: DateTime<Utc>,
    ) -> Result<AgentState, LineProblem> {
        let fields: Vec<&str> = text.split(self.delimiter.as_str()).map(unquote).collect();
        if fields.len() < self.width {
            // A missing optional last field (`reason`) is fine.
            let needed = [Some(self.agent), Some(self.activity), self.timestamp]
                .into_iter()
                .flatten()
                .max()
                .map_or(0, |m| m + 1);
            if fields.len() < needed {
                return Err(LineProblem::TooFewFields {
                    found: fields.len(),
                    expected: self.width,
                });
            }
        }
        let agent = non_empty(fields[self.agent]).ok_or(LineProblem::Missing("agentidentifier"))?;
        let activity = non_empty(fields[self.activity]).ok_or(LineProblem::Missing("activity"))?;
        let reason = self
            .reason
            .and_then(|i| fields.get(i).copied())
            .and_then(non_empty);
        let timestamp = match self.timestamp {
            Some(i) => self.timestamp(fields[i])?,
            None => received_at.with_timezone(&self.zone).fixed_offset(),
        };
        Ok(AgentState {
            agent: agent.to_owned(),
            activity: activity.to_owned(),
            reason: reason.map(str::to_owned),
            timestamp,
        })
    }

    fn parse_json(
        &self,
        text: &str,
        received_at: DateTime<Utc>,
    ) -> Result<AgentState, LineProblem> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| LineProblem::NotJson(e.to_string()))?;
        let object = value
            .as_object()
            .ok_or_else(|| LineProblem::NotJson("not an object".to_owned()))?;
        // Case-insensitive names: `agentId`-style exporters vary in case.
        let field = |name: &str| {
            object
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        let text_of = |value: &serde_json::Value| match value {
            serde_json::Value::String(s) => non_empty(s).map(str::to_owned),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let agent = field("agentidentifier")
            .and_then(text_of)
            .ok_or(LineProblem::Missing("agentidentifier"))?;
        let activity = field("activity")
            .and_then(text_of)
            .ok_or(LineProblem::Missing("activity"))?;
        let reason = field("reason").and_then(text_of);
        let timestamp = match field("timestamp") {
            None | Some(serde_json::Value::Null) => {
                received_at.with_timezone(&self.zone).fixed_offset()
            }
            Some(value) => self.timestamp(&text_of(value).unwrap_or_default())?,
        };
        Ok(AgentState {
            agent,
            activity,
            reason,
            timestamp,
        })
    }

    /// A timestamp in the feed's format and zone.
    fn timestamp(&self, text: &str) -> Result<DateTime<FixedOffset>, LineProblem> {
        let text = text.trim();
        let bad = || LineProblem::Timestamp(text.chars().take(64).collect());
        if let Some(format) = &self.timestamp_format {
            if let Ok(t) = DateTime::parse_from_str(text, format) {
                return Ok(t);
            }
            let naive = NaiveDateTime::parse_from_str(text, format).map_err(|_| bad())?;
            return self.in_zone(naive).ok_or_else(bad);
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Ok(t);
        }
        for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
            if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
                return self.in_zone(naive).ok_or_else(bad);
            }
        }
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            let seconds: i64 = text.parse().map_err(|_| bad())?;
            // Milliseconds since 1970 when the number is that large.
            let utc = if seconds > 100_000_000_000 {
                DateTime::from_timestamp_millis(seconds)
            } else {
                DateTime::from_timestamp(seconds, 0)
            };
            return utc
                .map(|t| t.with_timezone(&self.zone).fixed_offset())
                .ok_or_else(bad);
        }
        Err(bad())
    }

    /// A wall-clock time of the feed's zone. In the hour repeated when DST
    /// ends, the first (summer) instant; in the hour skipped when it starts,
    /// the instant one hour later, since the clock on the wall the ACD read
    /// was in the wrong zone for those minutes.
    fn in_zone(&self, naive: NaiveDateTime) -> Option<DateTime<FixedOffset>> {
        match self.zone.from_local_datetime(&naive) {
            LocalResult::Single(t) => Some(t.fixed_offset()),
            LocalResult::Ambiguous(first, _) => Some(first.fixed_offset()),
            LocalResult::None => self
                .zone
                .from_local_datetime(&(naive + chrono::Duration::hours(1)))
                .earliest()
                .map(|t| t.fixed_offset()),
        }
    }
}

fn unquote(field: &str) -> &str {
    let field = field.trim();
    field
        .strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .unwrap_or(field)
}

fn non_empty(s: &str) -> Option<&str> {
    let s = s.trim();
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(kind: FeedFormatKind) -> FeedFormat {
        FeedFormat {
            kind,
            framing: Framing::Lf,
            encoding: FeedEncoding::Utf8,
            delimiter: ";".into(),
            fields: ["timestamp", "agentidentifier", "activity", "reason"]
                .map(String::from)
                .to_vec(),
            timestamp_format: Some("%Y-%m-%d %H:%M:%S".into()),
            time_zone: "Europe/Berlin".into(),
            refresh_marker: None,
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-12-02T07:34:29.120Z".parse().unwrap()
    }

    fn state(line: Result<Line, LineProblem>) -> AgentState {
        match line {
            Ok(Line::State(s)) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_delimited_line_gets_the_offset_of_its_zone() {
        let parser = LineParser::new(&format(FeedFormatKind::Delimited)).unwrap();
        let s = state(parser.parse(b"2026-12-02 08:34:29;816;AUX;7", now()));
        assert_eq!(s.agent, "816");
        assert_eq!(s.activity, "AUX");
        assert_eq!(s.reason.as_deref(), Some("7"));
        assert_eq!(s.timestamp.to_rfc3339(), "2026-12-02T08:34:29+01:00");
        // Summer time in the same zone.
        let s = state(parser.parse(b"2026-07-02 08:34:29;816;AVAIL", now()));
        assert_eq!(s.timestamp.to_rfc3339(), "2026-07-02T08:34:29+02:00");
        assert_eq!(s.reason, None, "a missing last field is no reason");
    }

    #[test]
    fn dst_changes_give_one_instant_each() {
        let parser = LineParser::new(&format(FeedFormatKind::Delimited)).unwrap();
        // 02:30 happens twice on 2026-10-25 in Berlin: the first, summer one.
        let s = state(parser.parse(b"2026-10-25 02:30:00;1;A", now()));
        assert_eq!(s.timestamp.to_rfc3339(), "2026-10-25T02:30:00+02:00");
        // 02:30 does not exist on 2026-03-29: an hour later, in summer time.
        let s = state(parser.parse(b"2026-03-29 02:30:00;1;A", now()));
        assert_eq!(s.timestamp.to_rfc3339(), "2026-03-29T03:30:00+02:00");
    }

    #[test]
    fn fields_are_found_by_name_and_others_skipped() {
        let mut f = format(FeedFormatKind::Delimited);
        f.delimiter = "|".into();
        f.fields = ["split", "activity", "agentidentifier", "timestamp"]
            .map(String::from)
            .to_vec();
        f.timestamp_format = None;
        let parser = LineParser::new(&f).unwrap();
        let s = state(parser.parse(b"3| \"ACD\" |4711|2026-12-02T08:00:00+01:00", now()));
        assert_eq!((s.agent.as_str(), s.activity.as_str()), ("4711", "ACD"));
        assert_eq!(s.timestamp.to_rfc3339(), "2026-12-02T08:00:00+01:00");
        let s = state(parser.parse(b"3|ACD|4711|1796196869", now()));
        assert_eq!(s.timestamp.to_rfc3339(), "2026-12-02T08:34:29+01:00");
    }

    #[test]
    fn problems_have_kinds() {
        let parser = LineParser::new(&format(FeedFormatKind::Delimited)).unwrap();
        let kind = |line: &[u8]| parser.parse(line, now()).unwrap_err().kind();
        assert_eq!(kind(b"2026-12-02 08:34:29;816"), "too few fields");
        assert_eq!(kind(b"yesterday;816;AUX"), "bad timestamp");
        assert_eq!(kind(b"2026-12-02 08:34:29;;AUX"), "agentidentifier");
        assert_eq!(kind(b"2026-12-02 08:34:29;816;\xff"), "not UTF-8");
        assert_eq!(parser.parse(b"  ", now()), Ok(Line::Blank));
    }

    #[test]
    fn windows_1252_text_is_decoded() {
        let mut f = format(FeedFormatKind::Delimited);
        f.encoding = FeedEncoding::Windows1252;
        let parser = LineParser::new(&f).unwrap();
        let s = state(parser.parse(b"2026-12-02 08:34:29;816;Pause \x80;M\xfcde", now()));
        assert_eq!(s.activity, "Pause €");
        assert_eq!(s.reason.as_deref(), Some("Müde"));
    }

    #[test]
    fn json_lines_take_the_same_names_in_any_case() {
        let mut f = format(FeedFormatKind::JsonLines);
        f.timestamp_format = None;
        let parser = LineParser::new(&f).unwrap();
        let s = state(parser.parse(
            br#"{"AgentIdentifier": 816, "activity": "AUX", "reason": "7", "timestamp": "2026-12-02 08:34:29.5", "x": [1]}"#,
            now(),
        ));
        assert_eq!(s.agent, "816");
        assert_eq!(s.timestamp.to_rfc3339(), "2026-12-02T08:34:29.500+01:00");
        let s = state(parser.parse(br#"{"agentidentifier": "9", "activity": "ACD"}"#, now()));
        assert_eq!(s.timestamp.to_rfc3339(), "2026-12-02T08:34:29.120+01:00");
        assert_eq!(
            parser.parse(b"[1,2]", now()).unwrap_err().kind(),
            "not JSON"
        );
        assert_eq!(
            parser
                .parse(br#"{"agentidentifier": "9"}"#, now())
                .unwrap_err()
                .kind(),
            "activity"
        );
    }

    #[test]
    fn bad_formats_are_refused_before_the_feed_starts() {
        let mut f = format(FeedFormatKind::Delimited);
        f.time_zone = "Berlin".into();
        assert!(matches!(LineParser::new(&f), Err(FormatError::TimeZone(_))));
        let mut f = format(FeedFormatKind::Delimited);
        f.fields = vec!["timestamp".into(), "agent".into()];
        assert!(matches!(LineParser::new(&f), Err(FormatError::Fields(_))));
        let f = format(FeedFormatKind::Snapshot);
        assert_eq!(LineParser::new(&f).unwrap_err(), FormatError::RefreshMarker);
    }

    #[test]
    fn a_snapshot_marker_line_is_recognised() {
        let mut f = format(FeedFormatKind::Snapshot);
        f.refresh_marker = Some("#REFRESH".into());
        let parser = LineParser::new(&f).unwrap();
        assert_eq!(
            parser.parse(b"#REFRESH 08:00", now()),
            Ok(Line::RefreshMarker)
        );
    }
}
