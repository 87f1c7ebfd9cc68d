//! The log line for a file that leaves the import folder (deleted, renamed
//! away, moved after its import): one line per event, saying what happened to
//! its data. A file whose data was imported must never read as lost.
//!
//! Pure: the caller says what it had done with the file.

/// What the importer had done with a file when it went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Seen and waiting to settle: nothing of it was imported.
    Settling,
    /// Queued or being read: the reader's outcome is the one line.
    Reading,
    /// Read into the spool: uploaded, or uploaded from there.
    Imported,
    /// Skipped: the same content had been imported before.
    Duplicate,
    /// Refused (not text, too large, a foreign link), as logged then.
    Refused,
    /// Nothing the importer tracks (not ours, or moved by the importer
    /// itself, which logged that).
    Untracked,
}

/// The one line for a file called `name` that went away, if there is
/// something to say.
pub fn removal_line(name: &str, fate: Fate) -> Option<String> {
    let line = match fate {
        Fate::Settling => format!("{name} was removed before it was imported; nothing to import"),
        Fate::Imported => format!(
            "{name} was removed after it was imported; nothing is lost (its data had been \
             read for upload)"
        ),
        Fate::Duplicate => {
            format!("{name} was removed; its content had been imported before, nothing is lost")
        }
        Fate::Refused => format!("{name} was removed; it had been refused, as logged then"),
        Fate::Reading | Fate::Untracked => return None,
    };
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_event_and_none_reads_as_loss_when_the_data_was_imported() {
        let imported = removal_line("a.csv", Fate::Imported).unwrap();
        assert!(imported.starts_with("a.csv was removed after it was imported"));
        assert!(!imported.contains("before it was imported"));
        assert!(removal_line("a.csv", Fate::Duplicate)
            .unwrap()
            .contains("nothing is lost"));
        assert_eq!(
            removal_line("a.csv", Fate::Settling).unwrap(),
            "a.csv was removed before it was imported; nothing to import"
        );
        assert!(removal_line("a.csv", Fate::Refused)
            .unwrap()
            .contains("refused"));
        // The reader says what became of a file removed while read; the
        // importer's own move is logged by the move.
        assert_eq!(removal_line("a.csv", Fate::Reading), None);
        assert_eq!(removal_line("a.csv", Fate::Untracked), None);
    }
}
