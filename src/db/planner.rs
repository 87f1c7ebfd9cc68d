//! Which time windows a database import reads, and how they are bound to a
//! query's `?` parameters.
//!
//! Pure: no I/O, no clock, no actor. The caller passes "now", the persisted
//! [`Cursor`] and the integration's time zone in, so every rule is unit-tested
//! against fixed instants, including daylight-saving transitions.
//!
//! # The model
//!
//! A windowed import remembers one *watermark* `W`: everything before it was
//! read and its upload confirmed by the cloud. Each tick reads
//! `[W - reconcile, now - delay)`:
//! - `now - delay` leaves the rows still being written for the next tick;
//! - re-reading the last `reconcile` hours is how updated rows reach the
//!   cloud (the cloud deduplicates by idempotency key and by row);
//! - whatever was missed during a pause or downtime lies in the same range,
//!   so catching up needs no special case.
//!
//! Windows are half-open, cut at local midnights of the integration's time
//! zone (so a "day chunk" is a calendar day there: 23, 24 or 25 hours), and
//! at most `max_windows` of them per plan move the watermark, so one tick
//! stays bounded however long the client was away; a [`WindowPlan`] that was
//! cut short says so, and the caller plans again once that batch is committed.
//!
//! The first plan of an import starts at its *origin*: the local midnight at
//! or before `now - backfill` when back-fill is asked for, otherwise the last
//! `max(reconcile, every)` before `now - delay`, i.e. exactly what any later
//! tick re-reads anyway. The caller persists the origin with the first plan,
//! so a restart before the first commit resumes the same back-fill.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration as StdDuration;

use chrono::{
    DateTime, Days, Duration, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc,
};
use chrono::{LocalResult, SecondsFormat, SubsecRound};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::protocol::DatabaseImport;

/// How far behind "now" a window ends, so rows being written right now are
/// read by a later tick instead of being missed.
pub const DEFAULT_DELAY: Duration = Duration::seconds(60);

/// Windows per plan that move the watermark: a month of day chunks.
pub const DEFAULT_MAX_WINDOWS_PER_PLAN: usize = 31;

/// A bound on `reconcile_hours` and `backfill_days` from the cloud, far beyond
/// any real setting, so that date arithmetic can never overflow.
const MAX_LOOKBACK: Duration = Duration::days(100 * 366);

/// A half-open interval `[start, end)` of instants, always non-empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    /// `None` unless `start < end`: an empty or inverted window (a clock that
    /// went back) is never planned.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Option<Window> {
        (start < end).then_some(Window { start, end })
    }

    pub fn duration(&self) -> Duration {
        self.end - self.start
    }

    pub fn contains(&self, instant: DateTime<Utc>) -> bool {
        self.start <= instant && instant < self.end
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}, {})",
            self.start.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            self.end.to_rfc3339_opts(SecondsFormat::AutoSi, true)
        )
    }
}

/// How far behind now a window ends: rows still being written are read at
/// the next tick (the cloud deduplicates). A minute for the usual 15-minute
/// schedule; half the period for real-time imports (every 10 s), so that a
/// status change reaches the cloud within about one and a half periods.
pub fn delay_for(every: StdDuration) -> Duration {
    Duration::from_std(every / 2)
        .unwrap_or(DEFAULT_DELAY)
        .clamp(Duration::seconds(1), DEFAULT_DELAY)
}

/// The timing of one import, from its assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportSchedule {
    /// Time between two ticks.
    pub every: StdDuration,
    /// How much before the watermark each tick reads again.
    pub reconcile: Duration,
    /// How much history the first run reads; zero for none.
    pub backfill: Duration,
    /// How far behind now each window ends.
    pub delay: Duration,
}

impl ImportSchedule {
    /// The schedule of `import`. `every_seconds = 0` counts as 1 s, so a
    /// wrong assignment cannot make the importer spin.
    pub fn from_import(import: &DatabaseImport) -> Self {
        let hours = i64::try_from(import.reconcile_hours).unwrap_or(i64::MAX);
        let days = i64::try_from(import.backfill_days).unwrap_or(i64::MAX);
        ImportSchedule {
            every: StdDuration::from_secs(import.every_seconds.max(1)),
            reconcile: Duration::try_hours(hours)
                .unwrap_or(MAX_LOOKBACK)
                .min(MAX_LOOKBACK),
            backfill: Duration::try_days(days)
                .unwrap_or(MAX_LOOKBACK)
                .min(MAX_LOOKBACK),
            delay: delay_for(StdDuration::from_secs(import.every_seconds.max(1))),
        }
    }

    fn every_delta(&self) -> Duration {
        Duration::from_std(self.every)
            .unwrap_or(MAX_LOOKBACK)
            .min(MAX_LOOKBACK)
    }
}

/// Where a windowed import stands, as persisted: the start of its first
/// window, and the end of the last window whose commit the cloud confirmed
/// (`None` before the first commit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub origin: DateTime<Utc>,
    pub watermark: Option<DateTime<Utc>>,
}

/// What one tick reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowPlan {
    /// The origin of the import: the cursor's, or the one this first plan
    /// chose (persist it before reading).
    pub origin: DateTime<Utc>,
    /// Contiguous, oldest first, each within one local day. Empty when there
    /// is nothing to read yet (or the clock went back).
    pub windows: Vec<Window>,
    /// More is due than `max_windows` allowed: plan again as soon as these
    /// windows are committed, without waiting for the next tick.
    pub truncated: bool,
}

/// The windows to read at `now`. `cursor` is `None` for an import that never
/// ran. At most `max_windows` windows (at least one) end after the watermark;
/// the re-read windows before it come on top, so every plan makes progress.
///
/// A watermark after `now - delay` (the clock went back) is treated as
/// `now - delay`: nothing is planned beyond what exists, and nothing with
/// `end <= start`.
pub fn plan(
    schedule: &ImportSchedule,
    cursor: Option<Cursor>,
    now: DateTime<Utc>,
    tz: Tz,
    max_windows: usize,
) -> WindowPlan {
    let target = now - schedule.delay;
    let origin = cursor.map_or_else(|| first_start(schedule, now, tz), |c| c.origin);
    let (start, read_until) = match cursor.and_then(|c| c.watermark) {
        None => (origin, origin),
        Some(watermark) => {
            let watermark = watermark.min(target);
            // Re-reading stops at the origin (no history the import was not
            // asked for), but never starts after the watermark: that would
            // leave a gap.
            let start = (watermark - schedule.reconcile).max(origin).min(watermark);
            (start, watermark)
        }
    };
    let budget = max_windows.max(1);
    let mut windows = Vec::new();
    let mut advancing = 0;
    let mut truncated = false;
    let mut from = start;
    while from < target {
        if advancing == budget {
            truncated = true;
            break;
        }
        let end = next_local_midnight(from, tz).min(target);
        windows.push(Window { start: from, end });
        if end > read_until {
            advancing += 1;
        }
        from = end;
    }
    WindowPlan {
        origin,
        windows,
        truncated,
    }
}

/// A persisted cursor moved back before planning: see [`pull_back`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullBack {
    pub before: Cursor,
    pub after: Cursor,
    /// The database's now.
    pub now: DateTime<Utc>,
    /// The cursor was not in the future, but the database's clock went back
    /// since the previous sample (see `earliest_new`).
    pub clock_went_back: bool,
}

impl fmt::Display for PullBack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |t: Option<DateTime<Utc>>| {
            t.map_or_else(
                || "none".to_owned(),
                |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
            )
        };
        // Before the first commit only the origin can be in the future.
        let (what, from, to) = match self.before.watermark {
            Some(from) => ("watermark", from, self.after.watermark),
            None => ("start", self.before.origin, Some(self.after.origin)),
        };
        let now = text(Some(self.now));
        let from = text(Some(from));
        if self.clock_went_back {
            write!(
                f,
                "the database's clock went back since the last run (now {now}); the saved \
                 {what} {from} is pulled back so that rows stamped since then are read"
            )?;
        } else {
            write!(
                f,
                "the saved {what} {from} is in the future of the database's clock (now {now})"
            )?;
        }
        write!(
            f,
            "; reading again from {} (the cloud keeps each row once)",
            text(to)
        )
    }
}

/// The earliest stamp a row written since the previous tick can bear, for
/// [`pull_back`]: the database's time at that tick, unless its clock went
/// back since; then its time `now` minus the time that `passed` on the
/// monotonic clock (whenever the step happened, the clock ran on from it).
pub fn earliest_new_stamp(
    previous: DateTime<Utc>,
    passed: Duration,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    previous.min(now.checked_sub_signed(passed).unwrap_or(previous))
}

/// Moves a persisted cursor back before planning at the database's `now`,
/// so that no row the database stamps from now on lies behind it:
/// - a watermark (or an origin) after `now - delay` was saved on a clock
///   ahead of the database's (an older version planned on this computer's
///   clock, the database was moved or restored): it goes back to
///   `now - delay`;
/// - `earliest_new` is the earliest stamp a row written since the previous
///   clock sample can bear: that sample's database time, or the database's
///   now minus the (monotonic) time since that sample if that is earlier,
///   which happens only when the database's clock went back. The watermark
///   goes back to it too.
///
/// Rows between the new and the old watermark are read again; the cloud
/// keeps each row once. `None` when the cursor can stay.
pub fn pull_back(
    schedule: &ImportSchedule,
    cursor: Cursor,
    now: DateTime<Utc>,
    earliest_new: Option<DateTime<Utc>>,
) -> Option<PullBack> {
    let target = now - schedule.delay;
    let bound = earliest_new.map_or(target, |e| e.min(target));
    let after = Cursor {
        origin: cursor.origin.min(bound),
        watermark: cursor.watermark.map(|w| w.min(bound)),
    };
    (after != cursor).then(|| PullBack {
        before: cursor,
        after,
        now,
        clock_went_back: cursor.watermark.unwrap_or(cursor.origin) <= target,
    })
}

/// The origin of an import's first plan at `now`: see the module docs.
pub fn first_start(schedule: &ImportSchedule, now: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    let target = now - schedule.delay;
    let recent = target - schedule.reconcile.max(schedule.every_delta());
    if schedule.backfill > Duration::zero() {
        recent.min(local_midnight_at_or_before(now - schedule.backfill, tz))
    } else {
        recent
    }
}

/// When the next tick is due. The first is due at once; a tick missed by a
/// pause or downtime runs once, at once (the plan catches up, not a burst of
/// ticks); a last run in the future (the clock went back) delays the next one
/// by at most one period.
pub fn next_run(
    schedule: &ImportSchedule,
    last_run: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    match last_run {
        None => now,
        Some(last) => {
            let every = schedule.every_delta();
            (last + every).clamp(now, now + every)
        }
    }
}

/// How far the back-fill of an import is, in local calendar days touched
/// from its origin; `None` without back-fill or once it is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackfillProgress {
    pub done_days: u64,
    pub total_days: u64,
}

impl BackfillProgress {
    /// Rounded down, so 100 % means complete.
    pub fn percent(&self) -> u64 {
        (self.done_days * 100)
            .checked_div(self.total_days)
            .unwrap_or(100)
    }
}

/// `412/1096 days, 37%`
impl fmt::Display for BackfillProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} days, {}%",
            self.done_days,
            self.total_days,
            self.percent()
        )
    }
}

pub fn backfill_progress(
    schedule: &ImportSchedule,
    cursor: Cursor,
    now: DateTime<Utc>,
    tz: Tz,
) -> Option<BackfillProgress> {
    if schedule.backfill <= Duration::zero() {
        return None;
    }
    let target = now - schedule.delay;
    let done_until = cursor
        .watermark
        .unwrap_or(cursor.origin)
        .max(cursor.origin)
        .min(target);
    let total_days = local_days_touched(cursor.origin, target, tz);
    let done_days = local_days_touched(cursor.origin, done_until, tz);
    (done_days < total_days).then_some(BackfillProgress {
        done_days,
        total_days,
    })
}

/// The number of local calendar days `[from, to)` touches.
fn local_days_touched(from: DateTime<Utc>, to: DateTime<Utc>, tz: Tz) -> u64 {
    if to <= from {
        return 0;
    }
    let last = local_date(to - Duration::nanoseconds(1), tz);
    let days = (last - local_date(from, tz)).num_days() + 1;
    u64::try_from(days).unwrap_or(0)
}

fn local_date(instant: DateTime<Utc>, tz: Tz) -> NaiveDate {
    instant.with_timezone(&tz).date_naive()
}

/// The instant `date` begins in `tz`. A midnight that occurs twice counts
/// its first occurrence; a midnight skipped by a DST change (e.g.
/// America/Sao_Paulo until 2018) is replaced by the change itself, the first
/// instant of that date.
pub fn local_midnight(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let midnight = date.and_time(NaiveTime::MIN);
    match tz.from_local_datetime(&midnight) {
        LocalResult::Single(instant) => instant.with_timezone(&Utc),
        LocalResult::Ambiguous(earliest, _) => earliest.with_timezone(&Utc),
        LocalResult::None => {
            let offset_before = offset_seconds(tz, (midnight - Duration::days(1)).and_utc());
            (midnight - Duration::seconds(offset_before.into())).and_utc()
        }
    }
}

/// The first local midnight strictly after `instant`.
pub fn next_local_midnight(instant: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    let mut date = local_date(instant, tz);
    loop {
        let Some(next) = date.checked_add_days(Days::new(1)) else {
            return instant + Duration::days(1);
        };
        let midnight = local_midnight(next, tz);
        if midnight > instant {
            return midnight;
        }
        date = next;
    }
}

/// The last local midnight at or before `instant`.
pub fn local_midnight_at_or_before(instant: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    let mut date = local_date(instant, tz);
    loop {
        let midnight = local_midnight(date, tz);
        if midnight <= instant {
            return midnight;
        }
        let Some(previous) = date.checked_sub_days(Days::new(1)) else {
            return instant - Duration::days(1);
        };
        date = previous;
    }
}

fn offset_seconds(tz: Tz, instant: DateTime<Utc>) -> i32 {
    tz.offset_from_utc_datetime(&instant.naive_utc())
        .fix()
        .local_minus_utc()
}

/// The two values bound to a windowed query's `?` parameters: local times of
/// the integration's time zone, `[first, second)`, as the database keeps them
/// (without offset).
///
/// Local times are not unique, so the range is the smallest one holding the
/// local time of every instant of the window:
/// - spring forward (Europe/Berlin 02:00 → 03:00): local time jumps, the
///   range just spans the missing hour, which holds no rows;
/// - fall back (03:00 → 02:00): local 02:00–03:00 happens twice and the
///   database cannot tell which; a window touching that hour reads the whole
///   local hour, once per window. A day chunk reads it once (local midnight
///   to midnight, 25 real hours); shorter windows around the change may read
///   the same rows twice, which the cloud deduplicates. Nothing is lost,
///   and the range is never inverted.
pub fn bind_parameters(window: &Window, tz: Tz) -> (NaiveDateTime, NaiveDateTime) {
    let mut first = local_naive(window.start, tz);
    let mut second = local_naive(window.end, tz);
    for change in offset_changes(window.start, window.end, tz) {
        if change.after < change.before {
            if change.at < window.end {
                first = first.min(naive_at(change.at, change.after));
            }
            second = second.max(naive_at(change.at, change.before));
        }
    }
    (first, second)
}

fn local_naive(instant: DateTime<Utc>, tz: Tz) -> NaiveDateTime {
    instant.with_timezone(&tz).naive_local()
}

fn naive_at(instant: DateTime<Utc>, offset: i32) -> NaiveDateTime {
    instant.naive_utc() + Duration::seconds(offset.into())
}

struct OffsetChange {
    /// The first instant with the new offset.
    at: DateTime<Utc>,
    before: i32,
    after: i32,
}

/// Offset changes at instants in `(start, end]`. Real zones change at most a
/// few times a year, so sampling every six hours and bisecting to the second
/// finds them all.
fn offset_changes(start: DateTime<Utc>, end: DateTime<Utc>, tz: Tz) -> Vec<OffsetChange> {
    const STEP: Duration = Duration::hours(6);
    let mut changes = Vec::new();
    let mut from = start;
    let mut from_offset = offset_seconds(tz, from);
    while from < end {
        let to = (from + STEP).min(end);
        let to_offset = offset_seconds(tz, to);
        if to_offset != from_offset {
            // Invariant: offset(low) == from_offset, offset(high) != from_offset.
            let (mut low, mut high) = (from, to);
            while high - low > Duration::seconds(1) {
                let middle = low + (high - low) / 2;
                if offset_seconds(tz, middle) == from_offset {
                    low = middle;
                } else {
                    high = middle;
                }
            }
            // Offsets change on whole seconds: the second in (low, high].
            let at = high.trunc_subsecs(0);
            let after = offset_seconds(tz, at);
            changes.push(OffsetChange {
                at,
                before: from_offset,
                after,
            });
            from = at;
            from_offset = after;
        } else {
            from = to;
            from_offset = to_offset;
        }
    }
    changes
}

/// Turns the end of each committed window into the watermark: the end of the
/// highest window committed with all windows before it, whatever order the
/// commits arrive in (the uploader runs two at a time).
///
/// Windows the caller decided not to upload (no rows) must be reported as
/// committed too, or the watermark stops there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitTracker {
    watermark: Option<DateTime<Utc>>,
    pending: VecDeque<(Window, bool)>,
}

impl CommitTracker {
    pub fn new(watermark: Option<DateTime<Utc>>) -> Self {
        CommitTracker {
            watermark,
            pending: VecDeque::new(),
        }
    }

    pub fn watermark(&self) -> Option<DateTime<Utc>> {
        self.watermark
    }

    /// Starts tracking a plan's windows. Anything still pending is forgotten:
    /// a new plan starts at or before the watermark, so it covers whatever
    /// the old batch left, and a late commit of an old window is ignored.
    pub fn start_batch(&mut self, windows: &[Window]) {
        self.pending = windows.iter().map(|w| (*w, false)).collect();
    }

    /// Every window of the batch is committed.
    pub fn is_settled(&self) -> bool {
        self.pending.is_empty()
    }

    /// Records the cloud's commit of `window`; returns the new watermark when
    /// it moved (persist it then).
    pub fn committed(&mut self, window: &Window) -> Option<DateTime<Utc>> {
        let entry = self.pending.iter_mut().find(|(w, _)| w == window)?;
        entry.1 = true;
        let before = self.watermark;
        while let Some((done, true)) = self.pending.front().copied() {
            self.pending.pop_front();
            self.watermark = Some(self.watermark.map_or(done.end, |w| w.max(done.end)));
        }
        (self.watermark != before)
            .then_some(self.watermark)
            .flatten()
    }
}

/// How far `windows` (in any order, overlapping or not) cover time without
/// a gap from `from`: the proof that everything below a watermark was read,
/// which the tests and the fuzzer check after every commit.
pub fn covered_until(from: DateTime<Utc>, windows: &[Window]) -> DateTime<Utc> {
    let mut sorted = windows.to_vec();
    sorted.sort();
    sorted.into_iter().fold(from, |reach, w| {
        if w.start <= reach {
            reach.max(w.end)
        } else {
            reach
        }
    })
}

/// Whether an import reads windows or a whole snapshot, from its query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryShape {
    /// No parameter: the whole result on every tick, no watermark.
    Snapshot,
    /// Two parameters: a window's start and end.
    Windowed,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error(
        "import `{import_id}`: its query has {found} `?` parameter(s); it needs none \
         (a full snapshot on every run) or exactly two (the start and end of a time window)"
    )]
    ParameterCount { import_id: String, found: usize },
    #[error("the integration's time zone `{name}` is not a known IANA time zone name")]
    UnknownTimeZone { name: String },
}

pub fn query_shape(import: &DatabaseImport) -> Result<QueryShape, QueryError> {
    match count_parameters(&import.query) {
        0 => Ok(QueryShape::Snapshot),
        2 => Ok(QueryShape::Windowed),
        found => Err(QueryError::ParameterCount {
            import_id: import.id.clone(),
            found,
        }),
    }
}

/// The time zone named by the assignment (`Europe/Berlin`).
pub fn parse_time_zone(name: &str) -> Result<Tz, QueryError> {
    name.parse().map_err(|_| QueryError::UnknownTimeZone {
        name: name.to_owned(),
    })
}

/// The `?` parameter markers of `sql`: those outside string literals
/// (`'...'`), quoted identifiers (`"..."`, `` `...` ``, `[...]`) and comments
/// (`-- ...` to the end of the line, `/* ... */`, not nested). A doubled
/// quote inside a literal is an escaped quote. Backslash escapes (MySQL
/// without `NO_BACKSLASH_ESCAPES`) and PostgreSQL dollar quoting are not
/// understood: standard SQL has neither.
pub fn count_parameters(sql: &str) -> usize {
    let bytes = sql.as_bytes();
    let mut count = 0;
    let mut i = 0;
    // Scans to the byte after the closing `close`; a doubled `close` inside
    // counts as one escaped character, not the end.
    let skip_quoted = |mut i: usize, close: u8| -> usize {
        while i < bytes.len() {
            if bytes[i] == close {
                if bytes.get(i + 1) == Some(&close) {
                    i += 2;
                    continue;
                }
                return i + 1;
            }
            i += 1;
        }
        i
    };
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1).copied()) {
            (b'?', _) => {
                count += 1;
                i += 1;
            }
            (b'\'', _) => i = skip_quoted(i + 1, b'\''),
            (b'"', _) => i = skip_quoted(i + 1, b'"'),
            (b'`', _) => i = skip_quoted(i + 1, b'`'),
            (b'[', _) => i = skip_quoted(i + 1, b']'),
            (b'-', Some(b'-')) => {
                i += 2;
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            (b'/', Some(b'*')) => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    count
}

/// The idempotency key of a window's upload: the lower-case hex sha256 of
/// [`canonical_window`]. The same rows of the same window give the same key,
/// so a retry after a crash is recognised by the cloud; changed rows (a
/// reconciled update) give a new one.
pub fn window_key(
    integration_id: &str,
    import_id: &str,
    window: &Window,
    content_sha256: &str,
) -> String {
    hex::encode(Sha256::digest(canonical_window(
        integration_id,
        import_id,
        window,
        content_sha256,
    )))
}

/// `db-window/v1`, then each field as `<byte length>:<value>\n`, so no two
/// different inputs share a string (the ids come from the cloud and may hold
/// any character). Instants are RFC 3339 UTC with nanoseconds.
pub fn canonical_window(
    integration_id: &str,
    import_id: &str,
    window: &Window,
    content_sha256: &str,
) -> String {
    canonical(
        "db-window/v1",
        &[
            integration_id,
            import_id,
            &instant_text(window.start),
            &instant_text(window.end),
            &content_sha256.to_ascii_lowercase(),
        ],
    )
}

/// The idempotency key of a snapshot's upload. The time of the read is part
/// of it: the same content read again later is a new fact ("still so"), and
/// without it a state that came back (A, B, A) would be taken for a retry.
pub fn snapshot_key(
    integration_id: &str,
    import_id: &str,
    read_at: DateTime<Utc>,
    content_sha256: &str,
) -> String {
    hex::encode(Sha256::digest(canonical(
        "db-snapshot/v1",
        &[
            integration_id,
            import_id,
            &instant_text(read_at),
            &content_sha256.to_ascii_lowercase(),
        ],
    )))
}

fn canonical(kind: &str, fields: &[&str]) -> String {
    let mut text = format!("{kind}\n");
    for field in fields {
        text.push_str(&format!("{}:{field}\n", field.len()));
    }
    text
}

fn instant_text(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn real_time_imports_trail_now_by_half_their_period() {
        assert_eq!(delay_for(StdDuration::from_secs(10)), Duration::seconds(5));
        assert_eq!(delay_for(StdDuration::from_secs(900)), DEFAULT_DELAY);
        assert_eq!(delay_for(StdDuration::from_secs(1)), Duration::seconds(1));
    }

    use super::*;
    use chrono_tz::America::{New_York, Sao_Paulo};
    use chrono_tz::Australia::Lord_Howe;
    use chrono_tz::Europe::Berlin;
    use chrono_tz::UTC;

    use crate::protocol::ImportType;

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn naive(text: &str) -> NaiveDateTime {
        text.parse().unwrap()
    }

    fn window(start: &str, end: &str) -> Window {
        Window::new(utc(start), utc(end)).unwrap()
    }

    fn schedule(every_seconds: u64, reconcile_hours: i64, backfill_days: i64) -> ImportSchedule {
        ImportSchedule {
            every: StdDuration::from_secs(every_seconds),
            reconcile: Duration::hours(reconcile_hours),
            backfill: Duration::days(backfill_days),
            delay: DEFAULT_DELAY,
        }
    }

    fn cursor(origin: &str, watermark: Option<&str>) -> Option<Cursor> {
        Some(Cursor {
            origin: utc(origin),
            watermark: watermark.map(utc),
        })
    }

    fn import(query: &str, every: u64, reconcile: u64, backfill: u64) -> DatabaseImport {
        DatabaseImport {
            id: "interval".into(),
            import_type: ImportType::Interval,
            query: query.into(),
            every_seconds: every,
            reconcile_hours: reconcile,
            backfill_days: backfill,
        }
    }

    /// Commits every window of `plan` in order and returns the new cursor.
    fn commit_all(cursor: Cursor, plan: &WindowPlan) -> Cursor {
        let mut tracker = CommitTracker::new(cursor.watermark);
        tracker.start_batch(&plan.windows);
        for w in &plan.windows {
            tracker.committed(w);
        }
        assert!(tracker.is_settled());
        Cursor {
            watermark: tracker.watermark(),
            ..cursor
        }
    }

    #[test]
    fn the_schedule_follows_the_import_and_tolerates_wild_values() {
        let s = ImportSchedule::from_import(&import("q", 900, 24, 1095));
        assert_eq!(s, schedule(900, 24, 1095));
        let wild = ImportSchedule::from_import(&import("q", 0, u64::MAX, u64::MAX));
        assert_eq!(wild.every, StdDuration::from_secs(1));
        assert_eq!(wild.reconcile, MAX_LOOKBACK);
        assert_eq!(wild.backfill, MAX_LOOKBACK);
        let now = utc("2026-11-25T16:00:00Z");
        let p = plan(&wild, None, now, Berlin, 3);
        assert_eq!(p.windows.len(), 3);
        assert!(p.truncated);
    }

    #[test]
    fn real_time_ticks_reread_the_reconcile_hour_up_to_a_minute_ago() {
        let s = schedule(10, 1, 0);
        let now = utc("2026-06-10T12:00:00Z");
        let c = cursor("2026-06-10T00:00:00Z", Some("2026-06-10T11:58:50Z"));
        let p = plan(&s, c, now, Berlin, DEFAULT_MAX_WINDOWS_PER_PLAN);
        assert_eq!(
            p.windows,
            [window("2026-06-10T10:58:50Z", "2026-06-10T11:59:00Z")]
        );
        assert!(!p.truncated);
        let c = commit_all(c.unwrap(), &p);
        assert_eq!(c.watermark, Some(utc("2026-06-10T11:59:00Z")));
        assert_eq!(next_run(&s, Some(now), now), now + Duration::seconds(10));
        let later = now + Duration::seconds(10);
        let p = plan(&s, Some(c), later, Berlin, DEFAULT_MAX_WINDOWS_PER_PLAN);
        assert_eq!(
            p.windows,
            [window("2026-06-10T10:59:00Z", "2026-06-10T11:59:10Z")]
        );
    }

    #[test]
    fn fifteen_minute_ticks_with_the_default_reconcile_are_cut_at_local_midnight() {
        let s = schedule(900, 24, 0);
        let now = utc("2026-06-10T10:00:00Z");
        let c = cursor("2026-06-01T00:00:00Z", Some("2026-06-10T09:44:00Z"));
        let p = plan(&s, c, now, Berlin, DEFAULT_MAX_WINDOWS_PER_PLAN);
        // Midnight of 10 June in Berlin (CEST) is 22:00 UTC the day before.
        assert_eq!(
            p.windows,
            [
                window("2026-06-09T09:44:00Z", "2026-06-09T22:00:00Z"),
                window("2026-06-09T22:00:00Z", "2026-06-10T09:59:00Z"),
            ]
        );
    }

    #[test]
    fn every_tick_rereads_the_reconcile_hours_before_the_watermark() {
        let s = schedule(900, 24, 0);
        let mut now = utc("2026-06-10T10:00:00Z");
        let mut c = Cursor {
            origin: utc("2026-06-01T00:00:00Z"),
            watermark: Some(utc("2026-06-10T09:44:00Z")),
        };
        for _ in 0..5 {
            let p = plan(&s, Some(c), now, UTC, DEFAULT_MAX_WINDOWS_PER_PLAN);
            let watermark = c.watermark.unwrap();
            assert_eq!(p.windows[0].start, watermark - Duration::hours(24));
            assert_eq!(p.windows.last().unwrap().end, now - DEFAULT_DELAY);
            c = commit_all(c, &p);
            now += Duration::minutes(15);
        }
    }

    #[test]
    fn the_reread_never_reaches_before_the_origin() {
        let s = schedule(900, 24, 0);
        let c = cursor("2026-06-10T08:00:00Z", Some("2026-06-10T09:00:00Z"));
        let p = plan(&s, c, utc("2026-06-10T10:00:00Z"), UTC, 5);
        assert_eq!(
            p.windows,
            [window("2026-06-10T08:00:00Z", "2026-06-10T09:59:00Z")]
        );
    }

    #[test]
    fn a_first_run_without_backfill_reads_what_every_later_tick_rereads() {
        let now = utc("2026-06-10T10:00:00Z");
        let target = now - DEFAULT_DELAY;
        let p = plan(&schedule(900, 24, 0), None, now, UTC, 5);
        assert_eq!(p.origin, target - Duration::hours(24));
        assert_eq!(p.windows[0].start, p.origin);
        // Nothing to re-read: one schedule period.
        let p = plan(&schedule(900, 0, 0), None, now, UTC, 5);
        assert_eq!(
            p.windows,
            [Window::new(target - Duration::minutes(15), target).unwrap()]
        );
        let p = plan(&schedule(10, 0, 0), None, now, UTC, 5);
        assert_eq!(p.origin, now - Duration::seconds(70));
    }

    #[test]
    fn a_backfill_of_1095_days_goes_day_by_day_oldest_first_and_reports_progress() {
        let s = schedule(900, 24, 1095);
        let mut now = utc("2026-11-25T16:00:00Z");
        let first = plan(&s, None, now, Berlin, 31);
        // The local midnight (CET) at or before now - 1095 days.
        assert_eq!(first.origin, utc("2023-11-25T23:00:00Z"));
        let mut c = Cursor {
            origin: first.origin,
            watermark: None,
        };
        assert_eq!(
            backfill_progress(&s, c, now, Berlin),
            Some(BackfillProgress {
                done_days: 0,
                total_days: 1096
            })
        );
        let mut new_days = Vec::new();
        let mut batches = 0;
        loop {
            let p = plan(&s, Some(c), now, Berlin, 31);
            let watermark = c.watermark.unwrap_or(c.origin);
            new_days.extend(p.windows.iter().filter(|w| w.end > watermark).copied());
            assert!(p.windows.iter().filter(|w| w.end > watermark).count() <= 31);
            c = commit_all(c, &p);
            batches += 1;
            now += Duration::seconds(1);
            match backfill_progress(&s, c, now, Berlin) {
                Some(progress) => {
                    assert_eq!(progress.total_days, 1096);
                    assert_eq!(progress.done_days, 31 * batches);
                }
                None => break,
            }
            assert!(p.truncated, "progress left although the plan was complete");
        }
        assert_eq!(batches, 36);
        assert_eq!(new_days.len(), 1096);
        assert_eq!(new_days[0].start, first.origin);
        for pair in new_days.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        for day in &new_days[..new_days.len() - 1] {
            let start = day.start.with_timezone(&Berlin);
            let end = day.end.with_timezone(&Berlin);
            assert_eq!(start.time(), NaiveTime::MIN, "{day}");
            assert_eq!(end.time(), NaiveTime::MIN, "{day}");
            assert_eq!(end.date_naive(), start.date_naive().succ_opt().unwrap());
        }
        assert_eq!(
            c.watermark,
            Some(now - Duration::seconds(1) - DEFAULT_DELAY)
        );
    }

    #[test]
    fn progress_is_counted_in_local_days_and_ends_when_caught_up() {
        let s = schedule(900, 24, 1095);
        let now = utc("2026-11-25T16:00:00Z");
        let origin = utc("2023-11-25T23:00:00Z");
        let at = |watermark: Option<DateTime<Utc>>| {
            backfill_progress(&s, Cursor { origin, watermark }, now, Berlin)
        };
        let day_412 = local_midnight(local_date(origin, Berlin) + Days::new(412), Berlin);
        let progress = at(Some(day_412)).unwrap();
        assert_eq!(progress.to_string(), "412/1096 days, 37%");
        assert_eq!(at(Some(now - DEFAULT_DELAY)), None);
        assert_eq!(at(Some(now + Duration::days(1))), None);
        assert_eq!(
            backfill_progress(
                &schedule(900, 24, 0),
                Cursor {
                    origin,
                    watermark: None
                },
                now,
                Berlin
            ),
            None
        );
        let empty = BackfillProgress {
            done_days: 0,
            total_days: 0,
        };
        assert_eq!(empty.percent(), 100);
    }

    #[test]
    fn three_days_of_downtime_are_caught_up_in_day_chunks() {
        let s = schedule(900, 24, 0);
        let c = cursor("2026-01-01T00:00:00Z", Some("2026-03-10T08:00:00Z"));
        let p = plan(
            &s,
            c,
            utc("2026-03-13T08:30:00Z"),
            UTC,
            DEFAULT_MAX_WINDOWS_PER_PLAN,
        );
        assert_eq!(
            p.windows,
            [
                window("2026-03-09T08:00:00Z", "2026-03-10T00:00:00Z"),
                window("2026-03-10T00:00:00Z", "2026-03-11T00:00:00Z"),
                window("2026-03-11T00:00:00Z", "2026-03-12T00:00:00Z"),
                window("2026-03-12T00:00:00Z", "2026-03-13T00:00:00Z"),
                window("2026-03-13T00:00:00Z", "2026-03-13T08:29:00Z"),
            ]
        );
        assert!(!p.truncated);
    }

    #[test]
    fn a_plan_holds_at_most_max_windows_past_the_watermark_and_the_next_continues() {
        let s = schedule(900, 24, 0);
        let now = utc("2026-03-13T08:30:00Z");
        let c = cursor("2026-01-01T00:00:00Z", Some("2026-03-10T08:00:00Z"));
        let p = plan(&s, c, now, UTC, 2);
        assert_eq!(
            p.windows,
            [
                // Re-read only: not counted, so every plan moves the watermark.
                window("2026-03-09T08:00:00Z", "2026-03-10T00:00:00Z"),
                window("2026-03-10T00:00:00Z", "2026-03-11T00:00:00Z"),
                window("2026-03-11T00:00:00Z", "2026-03-12T00:00:00Z"),
            ]
        );
        assert!(p.truncated);
        let c = commit_all(c.unwrap(), &p);
        let p = plan(&s, Some(c), now, UTC, 2);
        assert_eq!(
            p.windows,
            [
                window("2026-03-11T00:00:00Z", "2026-03-12T00:00:00Z"),
                window("2026-03-12T00:00:00Z", "2026-03-13T00:00:00Z"),
                window("2026-03-13T00:00:00Z", "2026-03-13T08:29:00Z"),
            ]
        );
        assert!(!p.truncated);
        // Zero counts as one: a plan always makes progress.
        let p = plan(&s, Some(c), now + Duration::days(3), UTC, 0);
        assert_eq!(
            p.windows
                .iter()
                .filter(|w| w.end > c.watermark.unwrap())
                .count(),
            1
        );
        assert!(p.truncated);
    }

    #[test]
    fn a_clock_that_went_back_plans_no_inverted_window_and_nothing_beyond_now() {
        let now = utc("2026-06-10T10:00:00Z");
        let target = now - DEFAULT_DELAY;
        let future = cursor("2026-06-01T00:00:00Z", Some("2026-06-10T12:00:00Z"));
        let p = plan(&schedule(900, 1, 0), future, now, UTC, 5);
        assert_eq!(
            p.windows,
            [Window::new(target - Duration::hours(1), target).unwrap()]
        );
        let p = plan(&schedule(900, 0, 0), future, now, UTC, 5);
        assert!(p.windows.is_empty() && !p.truncated);
        let origin_in_future = cursor("2026-06-11T00:00:00Z", None);
        assert!(plan(&schedule(900, 24, 0), origin_in_future, now, UTC, 5)
            .windows
            .is_empty());
        assert_eq!(Window::new(now, now), None);
        assert_eq!(Window::new(now, target), None);
    }

    #[test]
    fn a_watermark_in_the_future_is_pulled_back_to_the_databases_now_minus_the_delay() {
        let s = schedule(5, 0, 0);
        let now = utc("2026-12-02T10:00:00Z");
        let bound = now - DEFAULT_DELAY;
        let future = Cursor {
            origin: utc("2026-12-02T09:00:00Z"),
            watermark: Some(utc("2026-12-03T10:00:00Z")),
        };
        let pulled = pull_back(&s, future, now, None).unwrap();
        assert_eq!(
            pulled.after,
            Cursor {
                origin: future.origin,
                watermark: Some(bound)
            }
        );
        assert!(!pulled.clock_went_back);
        assert_eq!(
            pulled.to_string(),
            "the saved watermark 2026-12-03T10:00:00Z is in the future of the database's clock \
             (now 2026-12-02T10:00:00Z); reading again from 2026-12-02T09:59:00Z (the cloud \
             keeps each row once)"
        );
        // The next plan reads on from there, and a commit moves it again.
        let c = commit_all(pulled.after, &plan(&s, Some(pulled.after), now, UTC, 5));
        let later = now + Duration::seconds(5);
        let p = plan(&s, Some(c), later, UTC, 5);
        assert_eq!(
            p.windows,
            [Window::new(bound, later - DEFAULT_DELAY).unwrap()]
        );
        // An origin in the future (a first plan on a clock a day ahead).
        let first = Cursor {
            origin: utc("2026-12-03T09:58:00Z"),
            watermark: None,
        };
        let pulled = pull_back(&s, first, now, None).unwrap();
        assert_eq!(pulled.after.origin, bound);
        assert!(pulled.to_string().starts_with(
            "the saved start 2026-12-03T09:58:00Z is in the future of the database's clock"
        ));
        // Nothing to do for a cursor at or before the bound.
        let fine = Cursor {
            origin: future.origin,
            watermark: Some(bound),
        };
        assert_eq!(pull_back(&s, fine, now, None), None);
        assert_eq!(pull_back(&s, fine, now, Some(bound)), None);
    }

    #[test]
    fn a_database_clock_that_went_back_pulls_the_watermark_to_the_earliest_new_stamp() {
        let s = schedule(5, 0, 0);
        // The last tick ran at database time 10:00:00 and read up to 09:59:00;
        // five seconds later the database says 09:00:05: its clock went back
        // an hour at some moment in between, so rows written since bear
        // stamps from 09:00:00 on.
        let c = Cursor {
            origin: utc("2026-12-02T08:00:00Z"),
            watermark: Some(utc("2026-12-02T09:59:00Z")),
        };
        let now = utc("2026-12-02T09:00:05Z");
        let earliest = utc("2026-12-02T09:00:00Z");
        let pulled = pull_back(&s, c, now, Some(earliest)).unwrap();
        assert_eq!(pulled.after.watermark, Some(now - DEFAULT_DELAY));
        assert!(earliest > now - DEFAULT_DELAY);
        assert!(
            !pulled.clock_went_back,
            "the watermark is also in the future"
        );
        // A clock that went back by less than the delay leaves the watermark
        // after now - delay, yet before the earliest new stamp.
        let c = Cursor {
            origin: utc("2026-12-02T08:00:00Z"),
            watermark: Some(utc("2026-12-02T09:58:50Z")),
        };
        let now = utc("2026-12-02T10:00:00Z");
        let pulled = pull_back(&s, c, now, Some(utc("2026-12-02T09:58:30Z"))).unwrap();
        assert!(pulled.clock_went_back);
        assert_eq!(pulled.after.watermark, Some(utc("2026-12-02T09:58:30Z")));
        assert!(pulled
            .to_string()
            .starts_with("the database's clock went back since the last run"));
    }

    /// A database whose clock may step, stamping the rows it stores; the
    /// importer plans on that clock as `DbPollActor` does (pull back, plan,
    /// read, commit) with reconcile 0, so any row behind a wrong watermark
    /// stays unread.
    struct StampingDatabase {
        schedule: ImportSchedule,
        tz: Tz,
        /// True time: the monotonic clock of the importer.
        t: DateTime<Utc>,
        /// The database's clock minus true time.
        offset: Duration,
        /// Stamp, and whether a read returned it.
        rows: Vec<(DateTime<Utc>, bool)>,
        cursor: Option<Cursor>,
        last_sample: Option<(DateTime<Utc>, DateTime<Utc>)>,
    }

    impl StampingDatabase {
        fn now(&self) -> DateTime<Utc> {
            self.t + self.offset
        }

        fn write(&mut self) {
            self.rows.push((self.now(), false));
        }

        fn tick(&mut self) {
            let now = self.now();
            let earliest_new = self
                .last_sample
                .map(|(database, at)| earliest_new_stamp(database, self.t - at, now));
            self.last_sample = Some((now, self.t));
            let mut cursor = self.cursor;
            if let Some(pulled) =
                cursor.and_then(|c| pull_back(&self.schedule, c, now, earliest_new))
            {
                assert!(pulled.after.watermark <= pulled.before.watermark);
                cursor = Some(pulled.after);
            }
            let p = plan(&self.schedule, cursor, now, self.tz, 3);
            let c = cursor.unwrap_or(Cursor {
                origin: p.origin,
                watermark: None,
            });
            for w in &p.windows {
                for row in self.rows.iter_mut().filter(|r| w.contains(r.0)) {
                    row.1 = true;
                }
            }
            self.cursor = Some(commit_all(c, &p));
        }
    }

    #[test]
    fn every_row_the_database_stamps_is_read_whatever_its_clock_does() {
        let zones = [UTC, Berlin, New_York, Lord_Howe];
        for seed in 1..=300u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let every = [5, 10, 60, 900][rng.below(4) as usize];
            let mut db = StampingDatabase {
                schedule: ImportSchedule {
                    every: StdDuration::from_secs(every),
                    reconcile: Duration::zero(),
                    backfill: Duration::zero(),
                    delay: delay_for(StdDuration::from_secs(every)),
                },
                tz: zones[rng.below(zones.len() as u64) as usize],
                t: utc("2020-01-01T00:00:00Z")
                    + Duration::seconds(rng.below(8 * 365 * 86_400) as i64),
                offset: Duration::zero(),
                rows: Vec::new(),
                cursor: None,
                last_sample: None,
            };
            let every = Duration::seconds(every as i64);
            // The import starts before the rows: what came before its first
            // tick is history it was not asked for (no back-fill).
            db.tick();
            for _ in 0..200 {
                // Between two ticks: rows, and perhaps one step of the
                // database's clock (back or forth, up to two days, or back
                // to true time), before, between or after them. (A step
                // back and forth again between two ticks is invisible to
                // any sample at the ticks: only a reconcile covers that.)
                let mut stepped = false;
                for _ in 0..rng.below(4) {
                    match rng.below(8) {
                        0 | 1 if stepped => db.write(),
                        0 => {
                            let step = rng.below(4 * 86_400) as i64 - 2 * 86_400;
                            db.offset += Duration::seconds(step);
                            stepped = true;
                        }
                        1 => {
                            db.offset = Duration::zero();
                            stepped = true;
                        }
                        _ => db.write(),
                    }
                    db.t += Duration::milliseconds(
                        rng.below(every.num_milliseconds() as u64 / 3) as i64
                    );
                }
                db.t += every;
                db.tick();
            }
            // From here the database's clock runs steadily: rows stamped in
            // its future are read when it gets there.
            let last = db.rows.iter().map(|r| r.0).max();
            while last.is_some_and(|last| db.now() - db.schedule.delay <= last) {
                db.t += Duration::hours(6).max(every);
                db.tick();
            }
            db.t += every;
            db.tick();
            let lost = db.rows.iter().filter(|r| !r.1).count();
            assert_eq!(
                lost,
                0,
                "seed {seed}: {lost} of {} rows never read",
                db.rows.len()
            );
        }
    }

    #[test]
    fn a_database_on_local_time_across_the_autumn_change_loses_no_row() {
        use crate::db::clock::{sample, ClockAnswer, ClockZone};
        // The database keeps Berlin wall time without offset, stamps rows
        // with it, and tells it as text. 2024-10-27: 02:00-03:00 local
        // happens twice. With this computer's clock within 30 min the
        // repeated hour is read as the right occurrence; 40 min off, the
        // wrong one, and the database's clock seems to step by an hour:
        // the pull-back re-reads what that would skip.
        for client_ahead in [0, 20, 40, -40] {
            let s = schedule(600, 0, 0);
            let mut t = utc("2024-10-26T22:00:00Z");
            let mut stamps: Vec<(NaiveDateTime, bool)> = Vec::new();
            let mut cursor: Option<Cursor> = None;
            let mut last: Option<(DateTime<Utc>, DateTime<Utc>)> = None;
            while t < utc("2024-10-27T06:00:00Z") {
                stamps.push((local_naive(t, Berlin), false));
                t += Duration::minutes(5);
                let text = local_naive(t, Berlin)
                    .format("%Y-%m-%d %H:%M:%S%.6f")
                    .to_string();
                let client = t + Duration::minutes(client_ahead);
                let answer = ClockAnswer {
                    text,
                    zone: ClockZone::Local,
                    asked_at: client,
                    answered_at: client,
                };
                let now = sample(&answer, Berlin).unwrap().database;
                let earliest_new =
                    last.map(|(database, at)| earliest_new_stamp(database, t - at, now));
                last = Some((now, t));
                let mut c = cursor;
                if let Some(pulled) = c.and_then(|c| pull_back(&s, c, now, earliest_new)) {
                    c = Some(pulled.after);
                }
                let p = plan(&s, c, now, Berlin, 5);
                let c = c.unwrap_or(Cursor {
                    origin: p.origin,
                    watermark: None,
                });
                for w in &p.windows {
                    let (first, second) = bind_parameters(w, Berlin);
                    for row in stamps.iter_mut().filter(|r| first <= r.0 && r.0 < second) {
                        row.1 = true;
                    }
                }
                cursor = Some(commit_all(c, &p));
                t += Duration::minutes(5);
            }
            let lost: Vec<_> = stamps.iter().filter(|r| !r.1).map(|r| r.0).collect();
            assert_eq!(
                lost,
                [],
                "of {} rows, client {client_ahead} min ahead",
                stamps.len()
            );
        }
    }

    #[test]
    fn next_run_is_one_period_after_the_last_and_never_a_burst() {
        let s = schedule(10, 1, 0);
        let now = utc("2026-06-10T10:00:00Z");
        assert_eq!(next_run(&s, None, now), now);
        let ten = Duration::seconds(10);
        assert_eq!(
            next_run(&s, Some(now - Duration::seconds(4)), now),
            now + Duration::seconds(6)
        );
        assert_eq!(next_run(&s, Some(now - Duration::days(3)), now), now);
        assert_eq!(next_run(&s, Some(now + Duration::hours(1)), now), now + ten);
    }

    #[test]
    fn day_chunks_in_berlin_are_23_and_25_hours_on_the_dst_days() {
        let s = schedule(900, 24, 0);
        let spring = plan(
            &s,
            cursor("2024-03-29T23:00:00Z", None),
            utc("2024-04-01T22:01:00Z"),
            Berlin,
            10,
        );
        assert_eq!(
            spring.windows,
            [
                window("2024-03-29T23:00:00Z", "2024-03-30T23:00:00Z"),
                window("2024-03-30T23:00:00Z", "2024-03-31T22:00:00Z"),
                window("2024-03-31T22:00:00Z", "2024-04-01T22:00:00Z"),
            ]
        );
        assert_eq!(spring.windows[1].duration(), Duration::hours(23));
        let autumn = plan(
            &s,
            cursor("2024-10-25T22:00:00Z", None),
            utc("2024-10-27T23:01:00Z"),
            Berlin,
            10,
        );
        assert_eq!(
            autumn.windows,
            [
                window("2024-10-25T22:00:00Z", "2024-10-26T22:00:00Z"),
                window("2024-10-26T22:00:00Z", "2024-10-27T23:00:00Z"),
            ]
        );
        assert_eq!(autumn.windows[1].duration(), Duration::hours(25));
    }

    #[test]
    fn a_day_without_midnight_starts_at_the_dst_change() {
        // Brazil's DST began at midnight on 4 November 2018: 00:00 -03 became 01:00 -02.
        let day = NaiveDate::from_ymd_opt(2018, 11, 4).unwrap();
        assert_eq!(local_midnight(day, Sao_Paulo), utc("2018-11-04T03:00:00Z"));
        assert_eq!(
            next_local_midnight(utc("2018-11-03T12:00:00Z"), Sao_Paulo),
            utc("2018-11-04T03:00:00Z")
        );
        assert_eq!(
            local_midnight_at_or_before(utc("2018-11-04T10:00:00Z"), Sao_Paulo),
            utc("2018-11-04T03:00:00Z")
        );
        assert_eq!(
            next_local_midnight(utc("2018-11-04T03:00:00Z"), Sao_Paulo),
            utc("2018-11-05T02:00:00Z")
        );
    }

    #[test]
    fn parameters_across_the_berlin_spring_forward_span_the_missing_hour() {
        // 2024-03-31 01:00 UTC: 02:00 CET became 03:00 CEST.
        let day = window("2024-03-30T23:00:00Z", "2024-03-31T22:00:00Z");
        assert_eq!(
            bind_parameters(&day, Berlin),
            (naive("2024-03-31T00:00:00"), naive("2024-04-01T00:00:00"))
        );
        let across = window("2024-03-31T00:30:00Z", "2024-03-31T01:30:00Z");
        assert_eq!(
            bind_parameters(&across, Berlin),
            (naive("2024-03-31T01:30:00"), naive("2024-03-31T03:30:00"))
        );
        let before = window("2024-03-31T00:00:00Z", "2024-03-31T01:00:00Z");
        let after = window("2024-03-31T01:00:00Z", "2024-03-31T02:00:00Z");
        assert_eq!(
            bind_parameters(&before, Berlin),
            (naive("2024-03-31T01:00:00"), naive("2024-03-31T03:00:00"))
        );
        assert_eq!(
            bind_parameters(&after, Berlin),
            (naive("2024-03-31T03:00:00"), naive("2024-03-31T04:00:00"))
        );
    }

    #[test]
    fn parameters_across_the_berlin_fall_back_read_the_repeated_hour_whole() {
        // 2024-10-27 01:00 UTC: 03:00 CEST became 02:00 CET; 02:00-03:00 happens twice.
        let day = window("2024-10-26T22:00:00Z", "2024-10-27T23:00:00Z");
        assert_eq!(
            bind_parameters(&day, Berlin),
            (naive("2024-10-27T00:00:00"), naive("2024-10-28T00:00:00"))
        );
        let cases = [
            // The first 02:00-03:00 (CEST), up to the change.
            (
                "2024-10-27T00:00:00Z",
                "2024-10-27T01:00:00Z",
                "02:00",
                "03:00",
            ),
            // The second (CET), from the change.
            (
                "2024-10-27T01:00:00Z",
                "2024-10-27T02:00:00Z",
                "02:00",
                "03:00",
            ),
            // Across the change: naive 02:59 to 02:01 would be inverted.
            (
                "2024-10-27T00:59:00Z",
                "2024-10-27T01:01:00Z",
                "02:00",
                "03:00",
            ),
            (
                "2024-10-27T00:30:00Z",
                "2024-10-27T01:00:00Z",
                "02:30",
                "03:00",
            ),
            (
                "2024-10-27T01:00:00Z",
                "2024-10-27T01:30:00Z",
                "02:00",
                "02:30",
            ),
            // Inside one occurrence: the database cannot tell them apart.
            (
                "2024-10-27T00:10:00Z",
                "2024-10-27T00:20:00Z",
                "02:10",
                "02:20",
            ),
            (
                "2024-10-27T01:10:00Z",
                "2024-10-27T01:20:00Z",
                "02:10",
                "02:20",
            ),
        ];
        for (start, end, first, second) in cases {
            let bound = bind_parameters(&window(start, end), Berlin);
            let expected = (
                naive(&format!("2024-10-27T{first}:00")),
                naive(&format!("2024-10-27T{second}:00")),
            );
            assert_eq!(bound, expected, "[{start}, {end})");
        }
    }

    #[test]
    fn bound_parameters_always_hold_every_instant_of_the_window() {
        let mut rng = Rng(0x5eed);
        let changes = [
            utc("2024-03-31T01:00:00Z"),
            utc("2024-10-27T01:00:00Z"),
            utc("2024-11-03T06:00:00Z"),
        ];
        for _ in 0..2000 {
            let tz = [Berlin, New_York, Lord_Howe][rng.below(3) as usize];
            let around = changes[rng.below(3) as usize];
            let start = around + Duration::seconds(rng.below(4 * 3600) as i64 - 2 * 3600);
            let end = start + Duration::seconds(1 + rng.below(3 * 3600) as i64);
            let w = Window::new(start, end).unwrap();
            let (first, second) = bind_parameters(&w, tz);
            assert!(first < second, "{w} in {tz}");
            let mut t = start;
            while t < end {
                let local = local_naive(t, tz);
                assert!(first <= local && local < second, "{t} of {w} in {tz}");
                t += Duration::seconds(97);
            }
        }
    }

    #[test]
    fn parameters_inside_literals_identifiers_and_comments_do_not_count() {
        let cases = [
            ("SELECT * FROM stats WHERE ts >= ? AND ts < ?", 2),
            ("SELECT * FROM agents", 0),
            ("SELECT '?' AS q, \"a?\" FROM t WHERE x = ?", 1),
            ("SELECT 'it''s ?' FROM t", 0),
            ("SELECT \"say \"\"?\"\"\" FROM t", 0),
            ("SELECT 1 -- why?\nFROM t WHERE a >= ? AND a < ?", 2),
            ("SELECT 1 FROM t -- ?", 0),
            ("/* ? */ SELECT ? /* ?? */", 1),
            ("SELECT [Answered?], `b?` FROM t", 0),
            ("SELECT [a]]?] FROM t WHERE x = ?", 1),
            ("SELECT 'ä?', ?, 'ö' FROM t", 1),
            ("SELECT a - b / c FROM t WHERE x = ? AND y < ?", 2),
            ("SELECT '?", 0),
            ("SELECT 1 /* ?", 0),
            ("SELECT ?? ", 2),
            ("", 0),
        ];
        for (sql, expected) in cases {
            assert_eq!(count_parameters(sql), expected, "{sql}");
        }
    }

    #[test]
    fn a_query_with_one_or_three_parameters_is_refused_naming_the_import() {
        assert_eq!(
            query_shape(&import(
                "SELECT * FROM a WHERE t >= ? AND t < ?",
                900,
                24,
                0
            )),
            Ok(QueryShape::Windowed)
        );
        assert_eq!(
            query_shape(&import("SELECT * FROM a -- ?", 900, 24, 0)),
            Ok(QueryShape::Snapshot)
        );
        for sql in ["SELECT * FROM a WHERE t >= ?", "SELECT ?, ?, ?"] {
            let err = query_shape(&import(sql, 900, 24, 0)).unwrap_err();
            let message = err.to_string();
            assert!(message.contains("import `interval`"), "{message}");
            assert!(message.contains("exactly two"), "{message}");
        }
        assert_eq!(parse_time_zone("Europe/Berlin"), Ok(Berlin));
        let err = parse_time_zone("Mars/Olympus").unwrap_err();
        assert!(err.to_string().contains("Mars/Olympus"));
    }

    #[test]
    fn window_keys_are_stable_and_differ_in_every_field() {
        let w = window("2026-06-10T00:00:00Z", "2026-06-11T00:00:00Z");
        let sha = "ab".repeat(32);
        let key = window_key("int_1", "interval", &w, &sha);
        assert_eq!(key.len(), 64);
        assert!(key
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(
            key,
            window_key("int_1", "interval", &w, &sha.to_uppercase())
        );
        let other = window("2026-06-10T00:00:00Z", "2026-06-11T00:00:01Z");
        let variants = [
            window_key("int_2", "interval", &w, &sha),
            window_key("int_1", "contact", &w, &sha),
            window_key("int_1", "interval", &other, &sha),
            window_key("int_1", "interval", &w, &"cd".repeat(32)),
            // Field boundaries are part of the key.
            window_key("int_1i", "nterval", &w, &sha),
        ];
        for variant in variants {
            assert_ne!(variant, key);
        }
        assert_eq!(
            canonical_window("i", "x", &w, "AB"),
            "db-window/v1\n1:i\n1:x\n30:2026-06-10T00:00:00.000000000Z\n\
             30:2026-06-11T00:00:00.000000000Z\n2:ab\n"
        );
        let at = utc("2026-06-10T00:00:00Z");
        assert_ne!(
            snapshot_key("int_1", "agents", at, &sha),
            snapshot_key("int_1", "agents", at + Duration::seconds(10), &sha)
        );
    }

    #[test]
    fn the_watermark_is_the_end_of_the_contiguous_committed_windows() {
        let a = window("2026-06-08T00:00:00Z", "2026-06-09T00:00:00Z");
        let b = window("2026-06-09T00:00:00Z", "2026-06-10T00:00:00Z");
        let c = window("2026-06-10T00:00:00Z", "2026-06-10T09:00:00Z");
        let mut tracker = CommitTracker::new(Some(utc("2026-06-09T00:00:00Z")));
        tracker.start_batch(&[a, b, c]);
        assert_eq!(tracker.committed(&c), None);
        assert_eq!(tracker.committed(&a), None, "a re-read never lowers it");
        assert_eq!(tracker.committed(&b), Some(c.end));
        assert!(tracker.is_settled());
        assert_eq!(tracker.committed(&b), None, "a late repeat changes nothing");

        let mut fresh = CommitTracker::new(None);
        fresh.start_batch(&[a, b]);
        assert_eq!(fresh.committed(&a), Some(a.end));
        fresh.start_batch(&[c]);
        assert_eq!(fresh.committed(&b), None, "forgotten with its batch");
        assert_eq!(fresh.watermark(), Some(a.end));
    }

    /// xorshift64*: enough randomness for exploring clocks, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    struct Simulation {
        schedule: ImportSchedule,
        tz: Tz,
        max_windows: usize,
        cursor: Option<Cursor>,
        committed: Vec<Window>,
    }

    impl Simulation {
        /// One tick at `now`: plan, check the plan, then commit its windows
        /// (all of them in order, or with `rng` a random subset in random
        /// order, as a crash or a rejected upload would leave them).
        fn tick(&mut self, now: DateTime<Utc>, rng: Option<&mut Rng>) -> WindowPlan {
            let p = plan(&self.schedule, self.cursor, now, self.tz, self.max_windows);
            let c = *self.cursor.get_or_insert(Cursor {
                origin: p.origin,
                watermark: None,
            });
            self.check(&p, c, now);
            let mut order: Vec<usize> = (0..p.windows.len()).collect();
            // Coverage is checked after each random tick and once at the end
            // (checking it after every settling tick makes the test quadratic).
            let rng_given = rng.is_some();
            if let Some(rng) = rng {
                for i in (1..order.len()).rev() {
                    order.swap(i, rng.below(i as u64 + 1) as usize);
                }
                if rng.below(4) == 0 {
                    order.truncate(rng.below(order.len() as u64 + 1) as usize);
                }
            }
            let mut tracker = CommitTracker::new(c.watermark);
            tracker.start_batch(&p.windows);
            for i in order {
                self.committed.push(p.windows[i]);
                if let Some(watermark) = tracker.committed(&p.windows[i]) {
                    assert!(c.watermark.is_none_or(|old| watermark > old));
                    self.cursor = Some(Cursor {
                        watermark: Some(watermark),
                        ..c
                    });
                }
            }
            if rng_given {
                self.assert_covered();
            }
            p
        }

        fn check(&self, p: &WindowPlan, c: Cursor, now: DateTime<Utc>) {
            let target = now - self.schedule.delay;
            let read_until = c.watermark.unwrap_or(c.origin);
            if let Some(first) = p.windows.first() {
                assert!(first.start <= read_until.min(target).max(c.origin.min(read_until)));
                assert!(p.truncated || p.windows.last().unwrap().end == target);
            }
            for w in &p.windows {
                assert!(w.start < w.end && w.end <= target, "{w}");
                assert!(w.end <= next_local_midnight(w.start, self.tz), "{w}");
            }
            for pair in p.windows.windows(2) {
                assert_eq!(pair[0].end, pair[1].start);
            }
            let advancing = p.windows.iter().filter(|w| w.end > read_until).count();
            assert!(advancing <= self.max_windows);
        }

        /// Everything from the origin to the watermark was committed.
        fn assert_covered(&self) {
            let Some(Cursor {
                origin,
                watermark: Some(watermark),
            }) = self.cursor
            else {
                return;
            };
            let reach = covered_until(origin, &self.committed);
            assert!(reach >= watermark, "gap at {reach}, watermark {watermark}");
        }
    }

    #[test]
    fn consecutive_ticks_cover_everything_from_the_origin_without_a_gap() {
        let zones = [UTC, Berlin, New_York, Sao_Paulo, Lord_Howe];
        for seed in 1..=300u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let every = [10, 60, 900, 3600][rng.below(4) as usize];
            let mut sim = Simulation {
                schedule: ImportSchedule {
                    every: StdDuration::from_secs(every),
                    reconcile: Duration::hours(rng.below(49) as i64),
                    backfill: Duration::days(rng.below(40) as i64),
                    delay: Duration::seconds(rng.below(121) as i64),
                },
                tz: zones[rng.below(zones.len() as u64) as usize],
                max_windows: 1 + rng.below(5) as usize,
                cursor: None,
                committed: Vec::new(),
            };
            let every = Duration::seconds(every as i64);
            let mut now = utc("2012-01-01T00:00:00Z")
                + Duration::seconds(rng.below(12 * 365 * 86_400) as i64);
            for _ in 0..150 {
                now += match rng.below(10) {
                    0..=6 => every,
                    7 => Duration::seconds(rng.below(5 * 86_400) as i64),
                    8 => -Duration::seconds(rng.below(3 * 3_600) as i64),
                    _ => Duration::seconds(rng.below(3 * every.num_seconds() as u64) as i64),
                };
                sim.tick(now, Some(&mut rng));
            }
            // From here time only moves forward and every commit succeeds.
            let mut settled = false;
            for _ in 0..100_000 {
                now += every;
                let p = sim.tick(now, None);
                let watermark = sim.cursor.unwrap().watermark;
                if !p.truncated && watermark == Some(now - sim.schedule.delay) {
                    settled = true;
                    break;
                }
            }
            assert!(settled, "seed {seed} never caught up");
            sim.assert_covered();
        }
    }
}
