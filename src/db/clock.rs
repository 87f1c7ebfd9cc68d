//! The database's clock: which statement asks a database for its current
//! time, how its answer becomes an instant, and what the skew between it and
//! this computer's clock is worth saying.
//!
//! Windows are planned on the database's clock (as Kafka Connect JDBC bounds
//! its timestamp queries by the database's time), because the rows a window
//! reads are stamped by the database: a client clock ahead of the server's
//! (or stepped forward by a day and back) would otherwise move the watermark
//! past rows not yet written, and those rows would never be read.
//!
//! Pure: no I/O, no clock. `db::odbc` runs the statement; the caller passes
//! its answer and the client's clock in.

use std::fmt;

use chrono::{
    DateTime, Duration, LocalResult, NaiveDateTime, Offset, SecondsFormat, TimeZone, Utc,
};
use chrono_tz::Tz;

use super::connection_string::DriverKind;

/// How the text a clock statement answers is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockZone {
    /// The session's local wall time without offset: read in the
    /// integration's time zone, the zone the windows' parameters are bound
    /// in. The rows are stamped on this same wall clock, so the windows stay
    /// in step with the stamps even when the server's zone is not the
    /// integration's (the skew then shows whole hours, see [`SkewNotice`]).
    Local,
    /// Coordinated Universal Time without offset (SQLite: `'now'` is UTC).
    Utc,
}

/// One way to ask a database for its current time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockQuery {
    pub sql: &'static str,
    pub zone: ClockZone,
}

const fn local(sql: &'static str) -> ClockQuery {
    ClockQuery {
        sql,
        zone: ClockZone::Local,
    }
}

/// The statements to try, best first, for a driver family. The engine's own
/// form where the family is known (with sub-second precision); otherwise the
/// ODBC escape `{fn NOW()}` that the driver translates, then the standard
/// `CURRENT_TIMESTAMP`, then Oracle's form (which needs `FROM DUAL`).
pub fn clock_queries(kind: DriverKind) -> &'static [ClockQuery] {
    const POSTGRES: &[ClockQuery] = &[local("SELECT LOCALTIMESTAMP")];
    const MARIADB: &[ClockQuery] = &[local("SELECT NOW(6)")];
    const SQLSERVER: &[ClockQuery] = &[local("SELECT SYSDATETIME()")];
    // SQLite runs in this process: its clock is this computer's, asked
    // anyway so that one path serves every engine.
    const SQLITE: &[ClockQuery] = &[ClockQuery {
        sql: "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')",
        zone: ClockZone::Utc,
    }];
    const OTHER: &[ClockQuery] = &[
        local("SELECT {fn NOW()}"),
        local("SELECT CURRENT_TIMESTAMP"),
        local("SELECT LOCALTIMESTAMP FROM DUAL"),
    ];
    match kind {
        DriverKind::PostgreSql => POSTGRES,
        DriverKind::MariaDb => MARIADB,
        DriverKind::SqlServer => SQLSERVER,
        DriverKind::Sqlite => SQLITE,
        DriverKind::Other => OTHER,
    }
}

/// The database's answer to a clock statement, with this computer's clock
/// just before and just after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockAnswer {
    pub text: String,
    pub zone: ClockZone,
    pub asked_at: DateTime<Utc>,
    pub answered_at: DateTime<Utc>,
}

/// The database's time and this computer's at the same moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSample {
    pub database: DateTime<Utc>,
    pub client: DateTime<Utc>,
}

impl ClockSample {
    /// This computer's clock minus the database's: positive when this
    /// computer is ahead.
    pub fn skew(&self) -> Duration {
        self.client - self.database
    }
}

/// The instant `answer` names, or `None` when it is no time. The client's
/// clock is taken halfway through the round trip. A text with an offset is
/// exact; a local time that occurs twice (the hour repeated when daylight
/// saving ends) is the occurrence nearer this computer's clock; a local
/// time that does not exist (skipped when it begins) is read with the later
/// offset, i.e. as the earlier instant, so nothing is planned beyond what
/// exists.
pub fn sample(answer: &ClockAnswer, tz: Tz) -> Option<ClockSample> {
    let client = answer.asked_at + (answer.answered_at - answer.asked_at) / 2;
    let text = answer.text.trim();
    let database = match parse_with_offset(text) {
        Some(exact) => exact,
        None => {
            let naive = parse_naive(text)?;
            match answer.zone {
                ClockZone::Utc => naive.and_utc(),
                ClockZone::Local => local_instant(naive, tz, client),
            }
        }
    };
    Some(ClockSample { database, client })
}

fn parse_with_offset(text: &str) -> Option<DateTime<Utc>> {
    // `2026-12-02 09:50:00.123+00` (PostgreSQL's timestamptz), `…+01:00`, RFC 3339.
    ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"]
        .iter()
        .find_map(|format| DateTime::parse_from_str(text, format).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn parse_naive(text: &str) -> Option<NaiveDateTime> {
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
}

fn local_instant(naive: NaiveDateTime, tz: Tz, client: DateTime<Utc>) -> DateTime<Utc> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, b) => {
            let (a, b) = (a.with_timezone(&Utc), b.with_timezone(&Utc));
            if (a - client).abs() <= (b - client).abs() {
                a
            } else {
                b
            }
        }
        LocalResult::None => {
            // The offsets a day either side are those before and after the
            // gap; the larger one gives the earlier instant.
            let offset = |t: NaiveDateTime| tz.offset_from_utc_datetime(&t).fix().local_minus_utc();
            let larger = offset(naive - Duration::days(1)).max(offset(naive + Duration::days(1)));
            (naive - Duration::seconds(larger.into())).and_utc()
        }
    }
}

/// Skews up to this are clock noise and not logged.
pub const SKEW_TOLERANCE: Duration = Duration::minutes(1);

/// What to log about the skew, decided by [`SkewLog::observe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkewNotice {
    /// Beyond the tolerance (newly, or changed by more than it since the
    /// last notice).
    Large(ClockSample),
    /// Back within the tolerance after a [`SkewNotice::Large`].
    Normal(ClockSample),
}

impl fmt::Display for SkewNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (SkewNotice::Large(s) | SkewNotice::Normal(s)) = self;
        let skew = s.skew();
        let side = if skew >= Duration::zero() {
            "ahead of"
        } else {
            "behind"
        };
        let times = format!(
            "database {}, here {}",
            instant(s.database),
            instant(s.client)
        );
        match self {
            SkewNotice::Large(_) => {
                write!(
                    f,
                    "this computer's clock is {} {side} the database's ({times}); \
                     windows follow the database's clock",
                    span(skew.abs())
                )?;
                let minutes = skew.abs().num_minutes();
                if minutes >= 59 && (minutes + 1) % 60 <= 2 && minutes < 15 * 60 {
                    write!(
                        f,
                        " (about whole hours: is the database server's time zone the \
                         integration's?)"
                    )?;
                }
                Ok(())
            }
            SkewNotice::Normal(_) => write!(
                f,
                "this computer's clock agrees with the database's again ({} apart; {times})",
                span(skew.abs())
            ),
        }
    }
}

/// Remembers the last skew logged, so that a steady skew is logged once and
/// not on every tick.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SkewLog {
    logged: Option<Duration>,
}

impl SkewLog {
    pub fn observe(&mut self, sample: ClockSample) -> Option<SkewNotice> {
        let skew = sample.skew();
        let large = skew.abs() > SKEW_TOLERANCE;
        match self.logged {
            None if large => {
                self.logged = Some(skew);
                Some(SkewNotice::Large(sample))
            }
            Some(_) if !large => {
                self.logged = None;
                Some(SkewNotice::Normal(sample))
            }
            Some(before) if (skew - before).abs() > SKEW_TOLERANCE => {
                self.logged = Some(skew);
                Some(SkewNotice::Large(sample))
            }
            _ => None,
        }
    }
}

/// The skew in `status`: `clock 1 d 0 h 3 min ahead of the database's`,
/// from this computer's clock minus the database's in milliseconds.
pub fn skew_summary(skew_ms: i64) -> String {
    let skew = Duration::milliseconds(skew_ms);
    let side = if skew_ms >= 0 { "ahead of" } else { "behind" };
    format!("clock {} {side} the database's", span(skew))
}

/// `2026-12-02T09:50:00Z`
pub fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `1 d 0 h 3 min`, `59 min 58 s`, `4.2 s`: a skew in words, rounded.
pub fn span(d: Duration) -> String {
    let secs = (d.num_milliseconds().abs() + 500) / 1000;
    if secs < 10 {
        format!("{:.1} s", d.num_milliseconds().abs() as f64 / 1000.0)
    } else if secs < 3600 {
        format!("{} min {} s", secs / 60, secs % 60)
    } else if secs < 86_400 {
        format!("{} h {} min", secs / 3600, secs % 3600 / 60)
    } else {
        format!(
            "{} d {} h {} min",
            secs / 86_400,
            secs % 86_400 / 3600,
            secs % 3600 / 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Berlin;
    use chrono_tz::UTC;

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn answer(text: &str, zone: ClockZone, client: &str) -> ClockAnswer {
        ClockAnswer {
            text: text.to_owned(),
            zone,
            asked_at: utc(client) - Duration::milliseconds(4),
            answered_at: utc(client) + Duration::milliseconds(4),
        }
    }

    #[test]
    fn every_driver_family_has_a_clock_statement() {
        for kind in [
            DriverKind::PostgreSql,
            DriverKind::MariaDb,
            DriverKind::Sqlite,
            DriverKind::SqlServer,
            DriverKind::Other,
        ] {
            assert!(!clock_queries(kind).is_empty(), "{kind:?}");
        }
        assert_eq!(clock_queries(DriverKind::Other)[0].sql, "SELECT {fn NOW()}");
    }

    #[test]
    fn answers_of_each_engine_are_read_as_instants() {
        let client = "2026-12-02T09:50:00Z";
        let cases = [
            // PostgreSQL LOCALTIMESTAMP, MariaDB NOW(6): local, Berlin (CET).
            (
                "2026-12-02 10:50:00.250000",
                ClockZone::Local,
                "2026-12-02T09:50:00.25Z",
            ),
            // SQL Server SYSDATETIME(): seven fractional digits.
            (
                "2026-12-02 10:50:00.2500000",
                ClockZone::Local,
                "2026-12-02T09:50:00.25Z",
            ),
            // SQLite: UTC.
            (
                "2026-12-02 09:50:00.250",
                ClockZone::Utc,
                "2026-12-02T09:50:00.25Z",
            ),
            // A timestamp with offset is exact whatever the zone.
            (
                "2026-12-02 09:50:00.25+00",
                ClockZone::Local,
                "2026-12-02T09:50:00.25Z",
            ),
            (
                "2026-12-02T11:50:00+02:00",
                ClockZone::Local,
                "2026-12-02T09:50:00Z",
            ),
            (
                "  2026-12-02 10:50:00 ",
                ClockZone::Local,
                "2026-12-02T09:50:00Z",
            ),
        ];
        for (text, zone, expected) in cases {
            let s = sample(&answer(text, zone, client), Berlin).unwrap();
            assert_eq!(s.database, utc(expected), "{text}");
            assert_eq!(s.client, utc(client));
        }
        assert_eq!(sample(&answer("now", ClockZone::Local, client), UTC), None);
        assert_eq!(sample(&answer("", ClockZone::Utc, client), UTC), None);
    }

    #[test]
    fn the_repeated_hour_of_autumn_is_the_occurrence_nearer_this_computers_clock() {
        // 2024-10-27 in Berlin: 02:30 local happens at 00:30Z (CEST) and 01:30Z (CET).
        let first = sample(
            &answer(
                "2024-10-27 02:30:00",
                ClockZone::Local,
                "2024-10-27T00:31:00Z",
            ),
            Berlin,
        )
        .unwrap();
        assert_eq!(first.database, utc("2024-10-27T00:30:00Z"));
        let second = sample(
            &answer(
                "2024-10-27 02:30:00",
                ClockZone::Local,
                "2024-10-27T01:29:00Z",
            ),
            Berlin,
        )
        .unwrap();
        assert_eq!(second.database, utc("2024-10-27T01:30:00Z"));
        // The skipped hour of spring (02:00-03:00 on 2024-03-31) reads as the
        // earlier instant: 02:30 with CEST's offset.
        let skipped = sample(
            &answer(
                "2024-03-31 02:30:00",
                ClockZone::Local,
                "2024-03-31T01:00:00Z",
            ),
            Berlin,
        )
        .unwrap();
        assert_eq!(skipped.database, utc("2024-03-31T00:30:00Z"));
    }

    fn at(skew_seconds: i64) -> ClockSample {
        let database = utc("2026-12-02T09:50:00Z");
        ClockSample {
            database,
            client: database + Duration::seconds(skew_seconds),
        }
    }

    #[test]
    fn a_skew_beyond_a_minute_is_logged_once_until_it_changes_or_ends() {
        let mut log = SkewLog::default();
        assert_eq!(log.observe(at(2)), None);
        assert_eq!(log.observe(at(-60)), None, "a minute is tolerated");
        assert_eq!(log.observe(at(86_400)), Some(SkewNotice::Large(at(86_400))));
        assert_eq!(log.observe(at(86_430)), None, "the same skew, not again");
        assert_eq!(log.observe(at(-3_600)), Some(SkewNotice::Large(at(-3_600))));
        assert_eq!(log.observe(at(1)), Some(SkewNotice::Normal(at(1))));
        assert_eq!(log.observe(at(0)), None);
    }

    #[test]
    fn notices_say_which_clock_is_ahead_by_how_much_and_both_times() {
        let ahead = SkewNotice::Large(at(86_400 + 180)).to_string();
        assert_eq!(
            ahead,
            "this computer's clock is 1 d 0 h 3 min ahead of the database's \
             (database 2026-12-02T09:50:00Z, here 2026-12-03T09:53:00Z); \
             windows follow the database's clock"
        );
        let behind = SkewNotice::Large(at(-3_600)).to_string();
        assert!(
            behind.contains("1 h 0 min behind the database's"),
            "{behind}"
        );
        assert!(behind.contains("time zone"), "whole hours hint: {behind}");
        let odd = SkewNotice::Large(at(-95)).to_string();
        assert!(
            odd.contains("1 min 35 s behind") && !odd.contains("time zone"),
            "{odd}"
        );
        let normal = SkewNotice::Normal(at(3)).to_string();
        assert_eq!(
            normal,
            "this computer's clock agrees with the database's again (3.0 s apart; \
             database 2026-12-02T09:50:00Z, here 2026-12-02T09:50:03Z)"
        );
        assert_eq!(span(Duration::milliseconds(-3_599_600)), "1 h 0 min");
        assert_eq!(span(Duration::milliseconds(-4_200)), "4.2 s");
        assert_eq!(skew_summary(-4_200), "clock 4.2 s behind the database's");
        assert_eq!(
            skew_summary(86_400_000),
            "clock 1 d 0 h 0 min ahead of the database's"
        );
    }
}
