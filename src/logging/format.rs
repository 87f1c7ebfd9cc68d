//! The log line format:
//! `2026-11-25T14:03:07.123+01:00  INFO pairing: linked to integration X (int_1)`.
//!
//! The `YYYY-MM-DD` at the very start of each record is also what the file
//! writer rotates by, so it must stay there.

use std::fmt;
use std::sync::Arc;

use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::rotation::short_target;
use super::Clock;

pub(super) struct LineFormat {
    clock: Arc<dyn Clock>,
}

impl LineFormat {
    pub(super) fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock }
    }
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // Records from the `log` crate (dependencies) carry their real
        // target only in the normalized metadata.
        let normalized = event.normalized_metadata();
        let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let timestamp = self.clock.now().format("%Y-%m-%dT%H:%M:%S%.3f%:z");
        write!(writer, "{timestamp} ")?;
        let level = *metadata.level();
        if writer.has_ansi_escapes() {
            write!(writer, "\x1b[{}m{level:>5}\x1b[0m ", level_colour(level))?;
        } else {
            write!(writer, "{level:>5} ")?;
        }
        write!(writer, "{}: ", short_target(metadata.target()))?;
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

fn level_colour(level: Level) -> &'static str {
    match level {
        Level::ERROR => "31",
        Level::WARN => "33",
        Level::INFO => "32",
        Level::DEBUG => "34",
        Level::TRACE => "35",
    }
}
