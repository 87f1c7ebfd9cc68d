//! Which log records also go to the Windows Event Log, and as what (pure,
//! tested on every platform; `event_log` sends them on Windows).
//!
//! An admin looks in the Event Log for what a service did and what went
//! wrong, not for its routine: starts and stops (the daemon and supervisor
//! lines), and every warning and error (a failed start, an importer that
//! fails, the cloud out of reach). Everything else stays in the log file.

use tracing::Level;

/// The Event Log's entry types we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Information,
    Warning,
    Error,
}

impl EventKind {
    /// The event id: one per kind, since the message is the text itself.
    pub fn id(self) -> u32 {
        match self {
            EventKind::Information => 1,
            EventKind::Warning => 2,
            EventKind::Error => 3,
        }
    }
}

/// The kind of entry a record of `level` from `target` becomes, if any.
pub fn event_kind(level: Level, target: &str) -> Option<EventKind> {
    match level {
        Level::ERROR => Some(EventKind::Error),
        Level::WARN => Some(EventKind::Warning),
        Level::INFO if is_life_cycle(target) => Some(EventKind::Information),
        _ => None,
    }
}

/// The daemon's and the supervisor's own lines: start, stop, restarts.
fn is_life_cycle(target: &str) -> bool {
    let module = target.rsplit("::").next().unwrap_or(target);
    matches!(module, "daemon" | "supervisor")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_errors_and_the_life_cycle_go_to_the_event_log() {
        assert_eq!(
            event_kind(Level::ERROR, "injixo_cloud_link::actors::db_poll"),
            Some(EventKind::Error)
        );
        assert_eq!(
            event_kind(Level::WARN, "injixo_cloud_link::actors::uploader"),
            Some(EventKind::Warning)
        );
        assert_eq!(
            event_kind(Level::INFO, "injixo_cloud_link::daemon"),
            Some(EventKind::Information)
        );
        assert_eq!(
            event_kind(Level::INFO, "injixo_cloud_link::actors::supervisor"),
            Some(EventKind::Information)
        );
    }

    #[test]
    fn routine_lines_stay_in_the_log_file() {
        assert_eq!(
            event_kind(Level::INFO, "injixo_cloud_link::actors::uploader"),
            None
        );
        assert_eq!(event_kind(Level::DEBUG, "injixo_cloud_link::daemon"), None);
        assert_eq!(event_kind(Level::INFO, "daemonize"), None);
        assert_ne!(EventKind::Warning.id(), EventKind::Error.id());
    }
}
