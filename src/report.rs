//! The top-level error report for a person: what failed, the chain of
//! causes, a hint about what to do, and the process exit code (sysexits).

use std::error::Error;
use std::fmt;
use std::time::Duration;

/// An error that ends a command: printed by `main`, then the process exits
/// with `code`.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    error: Box<dyn Error + Send + Sync + 'static>,
    hint: Option<String>,
}

impl Failure {
    pub fn new(code: i32, error: impl Into<Box<dyn Error + Send + Sync + 'static>>) -> Self {
        Failure {
            code,
            error: error.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn error(&self) -> &(dyn Error + Send + Sync + 'static) {
        self.error.as_ref()
    }
}

impl fmt::Display for Failure {
    /// ```text
    /// error: cannot open the log file /opt/icl/injixo-cloud-link.log
    ///   caused by: Permission denied (os error 13)
    ///   hint: run as the user that owns the install folder
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.error)?;
        let mut source = self.error.source();
        while let Some(cause) = source {
            write!(f, "\n  caused by: {cause}")?;
            source = cause.source();
        }
        if let Some(hint) = &self.hint {
            // After a multi-line message (a config snippet) the hint needs
            // air to be seen.
            let gap = if self.error.to_string().contains('\n') {
                "\n"
            } else {
                ""
            };
            write!(f, "\n{gap}  hint: {hint}")?;
        }
        Ok(())
    }
}

/// One line with the whole cause chain, for a log line.
pub fn chain(error: &(dyn Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// `1.5 s`, `3 min 20 s`, `2 h 5 min`, `1 day 3 h`: for log lines a person
/// reads.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 10 && d.subsec_millis() > 0 {
        format!("{:.1} s", d.as_secs_f64())
    } else if secs < 60 {
        format!("{secs} s")
    } else if secs < 3600 {
        match secs % 60 {
            0 => format!("{} min", secs / 60),
            s => format!("{} min {s} s", secs / 60),
        }
    } else if secs < 86_400 {
        format!("{} h {} min", secs / 3600, (secs % 3600) / 60)
    } else {
        let days = secs / 86_400;
        let unit = if days == 1 { "day" } else { "days" };
        match (secs % 86_400) / 3600 {
            0 => format!("{days} {unit}"),
            h => format!("{days} {unit} {h} h"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open the log file /x.log")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(human_duration(Duration::from_secs(1)), "1 s");
        assert_eq!(human_duration(Duration::from_secs(200)), "3 min 20 s");
        assert_eq!(human_duration(Duration::from_secs(300)), "5 min");
        assert_eq!(human_duration(Duration::from_secs(7500)), "2 h 5 min");
        assert_eq!(human_duration(Duration::from_secs(86_400)), "1 day");
        assert_eq!(
            human_duration(Duration::from_secs(2 * 86_400 + 3 * 3600 + 59)),
            "2 days 3 h"
        );
    }

    #[test]
    fn shows_the_cause_chain_and_the_hint() {
        let io = std::io::Error::from_raw_os_error(13);
        let f = Failure::new(exitcode::CANTCREAT, Outer(io)).hint("check the folder's owner");
        let shown = f.to_string();
        assert!(shown.starts_with("error: cannot open the log file /x.log\n  caused by: "));
        assert!(shown.contains("os error 13"), "{shown}");
        assert!(shown.ends_with("\n  hint: check the folder's owner"));
        assert!(chain(f.error()).contains(": "), "{}", chain(f.error()));
    }
}
