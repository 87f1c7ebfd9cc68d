//! The soak's figures, its verdict, the table people read and the plot's
//! data.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use plotters::style::RGBColor;

use crate::check::{CsvOutcome, DbOutcome};
use crate::growth::{self, Growth, Tolerance};
use crate::plot::{Line, Panel, Plot};
use crate::Sample;

/// 16 MiB: the database client allocates an 8 MiB fetch buffer per query
/// (`ReadLimits::buffer_bytes`), which glibc sometimes keeps after the free
/// (its mmap threshold adapts), so RSS steps up and down by 8 MiB for
/// minutes at a time without any leak; the 30-minute run showed such a step.
pub const RSS_TOLERANCE: Tolerance = Tolerance {
    absolute: 16.0,
    relative: 0.2,
};
pub const FD_TOLERANCE: Tolerance = Tolerance {
    absolute: 6.0,
    relative: 0.0,
};
pub const THREAD_TOLERANCE: Tolerance = Tolerance {
    absolute: 4.0,
    relative: 0.0,
};

/// Start, end and maximum of one measure.
#[derive(Debug, Clone, Copy, Default)]
pub struct Span {
    pub start: f64,
    pub end: f64,
    pub max: f64,
}

impl Span {
    fn of(values: &[f64]) -> Span {
        Span {
            start: values.first().copied().unwrap_or(f64::NAN),
            end: values.last().copied().unwrap_or(f64::NAN),
            max: values.iter().copied().fold(f64::NAN, f64::max),
        }
    }
}

pub struct ClientFigures {
    pub label: &'static str,
    pub rss_mib: Span,
    pub fds: Span,
    pub threads: Span,
    pub spool_max: u64,
    pub rss_growth: Option<Growth>,
    pub fd_growth: Option<Growth>,
    pub thread_growth: Option<Growth>,
    pub panics: usize,
    pub restarts: usize,
    pub clean_exit: bool,
}

impl ClientFigures {
    pub fn new(
        label: &'static str,
        samples: &[Sample],
        index: usize,
        production_end: f64,
        panics: usize,
        restarts: usize,
        clean_exit: bool,
    ) -> ClientFigures {
        let series = |f: &dyn Fn(&Sample) -> f64| -> Vec<(f64, f64)> {
            samples.iter().map(|s| (s.t, f(s))).collect()
        };
        let rss = series(&|s| s.proc[index].rss_kib as f64 / 1024.0);
        let fds = series(&|s| s.proc[index].fds as f64);
        let threads = series(&|s| s.proc[index].threads as f64);
        let values = |v: &[(f64, f64)]| v.iter().map(|(_, x)| *x).collect::<Vec<_>>();
        let warmup = growth::warmup_end(production_end);
        ClientFigures {
            label,
            rss_mib: Span::of(&values(&rss)),
            fds: Span::of(&values(&fds)),
            threads: Span::of(&values(&threads)),
            spool_max: samples.iter().map(|s| s.spool[index]).max().unwrap_or(0),
            rss_growth: growth::assess(&rss, warmup, production_end, RSS_TOLERANCE),
            fd_growth: growth::assess(&fds, warmup, production_end, FD_TOLERANCE),
            thread_growth: growth::assess(&threads, warmup, production_end, THREAD_TOLERANCE),
            panics,
            restarts,
            clean_exit,
        }
    }

    fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (what, g) in [
            ("RSS", &self.rss_growth),
            ("open descriptors", &self.fd_growth),
            ("threads", &self.thread_growth),
        ] {
            match g {
                None => out.push(format!(
                    "{} client: {what} not judged (run too short)",
                    self.label
                )),
                Some(g) if g.grew() => out.push(format!(
                    "{} client: {what} grew from {:.1} to {:.1} (allowed +{:.1})",
                    self.label, g.first_median, g.last_median, g.allowed
                )),
                Some(_) => {}
            }
        }
        if self.panics > 0 {
            out.push(format!(
                "{} client: {} panic line(s) in its log",
                self.label, self.panics
            ));
        }
        if self.restarts > 0 {
            out.push(format!(
                "{} client: {} actor restart(s)",
                self.label, self.restarts
            ));
        }
        if !self.clean_exit {
            out.push(format!("{} client: no clean exit on SIGTERM", self.label));
        }
        out
    }
}

pub struct Summary {
    pub started: DateTime<Utc>,
    pub minutes: f64,
    pub bin_dir: PathBuf,
    pub clients: Vec<ClientFigures>,
    pub csv_files: usize,
    pub csv_rows: u64,
    pub csv_outcome: CsvOutcome,
    pub csv_imports: usize,
    pub csv_duplicate_commits: u64,
    pub db_rows: u64,
    pub db_producer_reconnects: u64,
    pub db_outcome: DbOutcome,
    pub db_imports: usize,
    pub db_lines_with_repeats: u64,
    pub db_duplicate_commits: u64,
    pub fault_toggles: u64,
    pub faults_fired: BTreeMap<String, u64>,
    pub drained_after: Option<f64>,
    pub drain_limit: u64,
}

fn few(items: &[String]) -> String {
    let shown: Vec<&str> = items.iter().take(5).map(String::as_str).collect();
    let more = items.len().saturating_sub(5);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

impl Summary {
    pub fn failures(&self) -> Vec<String> {
        let mut out: Vec<String> = self.clients.iter().flat_map(|c| c.failures()).collect();
        let csv = &self.csv_outcome;
        if !csv.lost.is_empty() {
            out.push(format!("CSV files lost: {}", few(&csv.lost)));
        }
        if !csv.duplicated.is_empty() {
            out.push(format!("CSV files stored twice: {}", few(&csv.duplicated)));
        }
        if csv.unexpected > 0 {
            out.push(format!(
                "{} CSV imports match no file written",
                csv.unexpected
            ));
        }
        let db = &self.db_outcome;
        if !db.lost.is_empty() {
            out.push(format!("database rows lost: {}", few(&db.lost)));
        }
        if !db.unexpected.is_empty() {
            out.push(format!(
                "database rows not in the table: {}",
                few(&db.unexpected)
            ));
        }
        if !db.conflicting.is_empty() {
            out.push(format!(
                "database rows that arrived in two forms: {}",
                few(&db.conflicting)
            ));
        }
        if self.drained_after.is_none() {
            out.push(format!(
                "the spools did not drain within {} s",
                self.drain_limit
            ));
        }
        out
    }

    pub fn passed(&self) -> bool {
        self.failures().is_empty()
    }

    pub fn markdown(&self, plot_name: Option<&str>) -> String {
        let mut t = String::new();
        let push = |t: &mut String, s: String| {
            t.push_str(&s);
            t.push('\n');
        };
        push(
            &mut t,
            format!("# Soak: {} min of production\n", self.minutes),
        );
        push(
            &mut t,
            format!(
                "Started {} UTC; binaries from `{}`; emulator in memory; 2 rows/s into \
                 PostgreSQL, a CSV file every 2 s; faults on every other 15 s.\n",
                self.started.format("%Y-%m-%d %H:%M"),
                self.bin_dir.display()
            ),
        );
        let [a, b] = [&self.clients[0], &self.clients[1]];
        push(
            &mut t,
            format!("| measure | {} client | {} client |", a.label, b.label),
        );
        push(&mut t, "| --- | ---: | ---: |".into());
        let span = |s: &Span, digits: usize| {
            format!(
                "{:.d$} / {:.d$} / {:.d$}",
                s.start,
                s.end,
                s.max,
                d = digits
            )
        };
        let row = |t: &mut String, what: &str, x: String, y: String| {
            push(t, format!("| {what} | {x} | {y} |"))
        };
        row(
            &mut t,
            "RSS start / end / max (MiB)",
            span(&a.rss_mib, 1),
            span(&b.rss_mib, 1),
        );
        row(
            &mut t,
            "open fds start / end / max",
            span(&a.fds, 0),
            span(&b.fds, 0),
        );
        row(
            &mut t,
            "threads start / end / max",
            span(&a.threads, 0),
            span(&b.threads, 0),
        );
        row(
            &mut t,
            "spool items, max",
            a.spool_max.to_string(),
            b.spool_max.to_string(),
        );
        let growth = |g: &Option<Growth>, digits: usize| match g {
            None => "not judged".to_owned(),
            Some(g) => format!(
                "{:.d$} → {:.d$} (limit +{:.d$}){}",
                g.first_median,
                g.last_median,
                g.allowed,
                if g.grew() { " GREW" } else { "" },
                d = digits
            ),
        };
        row(
            &mut t,
            "RSS median, first → last third (MiB)",
            growth(&a.rss_growth, 1),
            growth(&b.rss_growth, 1),
        );
        row(
            &mut t,
            "fds median, first → last third",
            growth(&a.fd_growth, 1),
            growth(&b.fd_growth, 1),
        );
        row(
            &mut t,
            "threads median, first → last third",
            growth(&a.thread_growth, 1),
            growth(&b.thread_growth, 1),
        );
        row(
            &mut t,
            "records sent",
            format!("{} files ({} rows)", self.csv_files, self.csv_rows),
            format!("{} rows", self.db_rows),
        );
        let csv = &self.csv_outcome;
        row(
            &mut t,
            "records received",
            format!(
                "{} files, each once",
                self.csv_files - csv.lost.len() - csv.duplicated.len()
            ),
            format!("{} distinct rows", self.db_outcome.received),
        );
        row(
            &mut t,
            "lost / duplicated",
            format!(
                "{} / {}",
                csv.lost.len(),
                csv.duplicated.len() + csv.unexpected
            ),
            format!(
                "{} / {}",
                self.db_outcome.lost.len(),
                self.db_outcome.unexpected.len() + self.db_outcome.conflicting.len()
            ),
        );
        row(
            &mut t,
            "imports in the cloud (row lines incl. re-reads)",
            self.csv_imports.to_string(),
            format!("{} ({} lines)", self.db_imports, self.db_lines_with_repeats),
        );
        row(
            &mut t,
            "repeated commits the cloud absorbed",
            self.csv_duplicate_commits.to_string(),
            self.db_duplicate_commits.to_string(),
        );
        row(
            &mut t,
            "panics / actor restarts / clean exit",
            format!(
                "{} / {} / {}",
                a.panics,
                a.restarts,
                if a.clean_exit { "yes" } else { "no" }
            ),
            format!(
                "{} / {} / {}",
                b.panics,
                b.restarts,
                if b.clean_exit { "yes" } else { "no" }
            ),
        );
        let fired: u64 = self.faults_fired.values().sum();
        let by_mode: Vec<String> = self
            .faults_fired
            .iter()
            .map(|(mode, n)| format!("{} {mode}", n))
            .collect();
        push(
            &mut t,
            format!(
                "\nFaults: switched {} times (on and off); {} requests hit ({}).",
                self.fault_toggles,
                fired,
                by_mode.join(", ")
            ),
        );
        if self.db_producer_reconnects > 0 {
            push(
                &mut t,
                format!(
                    "PostgreSQL went away under the row producer {} time(s) (restarted by \
                     someone else on this machine); rows count as sent only when the table \
                     holds them.",
                    self.db_producer_reconnects
                ),
            );
        }
        push(
            &mut t,
            match self.drained_after {
                Some(s) => format!(
                    "Drain: {s:.0} s after production stopped, both spools were empty and every record was in the cloud."
                ),
                None => format!("Drain: NOT finished within {} s.", self.drain_limit),
            },
        );
        push(
            &mut t,
            "Growth rule: median of the last third of the production samples (every 10 s, \
             after a warm-up of max(30 s, 10 %)) against the first third; limits max(16 MiB, \
             20 %) for RSS, +6 descriptors, +4 threads."
                .into(),
        );
        let failures = self.failures();
        push(
            &mut t,
            if failures.is_empty() {
                "\n**Verdict: PASS**".into()
            } else {
                format!("\n**Verdict: FAIL**: {}", failures.join("; "))
            },
        );
        if let Some(name) = plot_name {
            push(
                &mut t,
                format!("\n![RSS and spool depth over time]({name})"),
            );
        }
        t
    }

    pub fn plot<'a>(
        &self,
        samples: &[Sample],
        faults: &'a [(f64, f64)],
        drain_from: f64,
    ) -> Plot<'a> {
        let colors = [RGBColor(31, 119, 180), RGBColor(214, 39, 40)];
        let lines = |f: &dyn Fn(&Sample, usize) -> f64| -> Vec<Line> {
            self.clients
                .iter()
                .enumerate()
                .map(|(i, c)| Line {
                    name: format!("{} client", c.label),
                    color: colors[i % colors.len()],
                    points: samples.iter().map(|s| (s.t, f(s, i))).collect(),
                })
                .collect()
        };
        Plot {
            title: format!(
                "injixo Cloud Link soak: {} min, {} UTC",
                self.minutes,
                self.started.format("%Y-%m-%d %H:%M")
            ),
            panels: vec![
                Panel {
                    title: "RSS (MiB)".into(),
                    lines: lines(&|s, i| s.proc[i].rss_kib as f64 / 1024.0),
                },
                Panel {
                    title: "spool depth (items)".into(),
                    lines: lines(&|s, i| s.spool[i] as f64),
                },
            ],
            faults,
            drain_from,
        }
    }
}

/// Every sample as CSV, to judge a run again or plot it otherwise.
pub fn samples_csv(labels: [&str; 2], samples: &[Sample]) -> String {
    let mut out = String::from("seconds");
    for label in labels {
        for measure in ["rss_kib", "fds", "threads", "spool_items"] {
            out.push_str(&format!(",{}_{measure}", label.to_lowercase()));
        }
    }
    out.push('\n');
    for s in samples {
        out.push_str(&format!("{:.1}", s.t));
        for i in 0..2 {
            let p = s.proc[i];
            out.push_str(&format!(
                ",{},{},{},{}",
                p.rss_kib, p.fds, p.threads, s.spool[i]
            ));
        }
        out.push('\n');
    }
    out
}

/// Requests the emulator hit with a fault, by mode, from its log lines
/// `injecting Reset fault into PUT /_s3/…`.
pub fn faults_fired(emulator_log: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in emulator_log.lines() {
        if let Some(rest) = line.split("injecting ").nth(1) {
            if let Some(mode) = rest.split_whitespace().next() {
                *out.entry(mode.to_lowercase()).or_default() += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fired_faults_are_counted_by_mode() {
        let log = "INFO injecting Reset fault into PUT /_s3/uploads/up_1\n\
                   INFO POST /api/cloud-link/v1/uploads 201 0.4ms\n\
                   INFO injecting Status fault into POST /api/cloud-link/v1/uploads\n\
                   INFO injecting Reset fault into PUT /_s3/uploads/up_2\n";
        let fired = faults_fired(log);
        assert_eq!(fired.get("reset"), Some(&2));
        assert_eq!(fired.get("status"), Some(&1));
    }

    #[test]
    fn samples_are_written_as_csv_per_client() {
        use crate::procs::ProcSample;
        let p = |rss_kib| ProcSample {
            rss_kib,
            fds: 20,
            threads: 5,
        };
        let samples = [Sample {
            t: 10.0,
            proc: [p(1000), p(2000)],
            spool: [3, 0],
        }];
        let text = samples_csv(["CSV", "database"], &samples);
        let mut lines = text.lines();
        assert!(lines
            .next()
            .unwrap()
            .starts_with("seconds,csv_rss_kib,csv_fds,"));
        assert_eq!(lines.next(), Some("10.0,1000,20,5,3,2000,20,5,0"));
    }

    #[test]
    fn spans_take_start_end_and_max() {
        let s = Span::of(&[3.0, 9.0, 4.0]);
        assert_eq!((s.start, s.end, s.max), (3.0, 4.0, 9.0));
    }
}
