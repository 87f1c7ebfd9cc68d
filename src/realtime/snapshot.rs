//! Snapshot feeds: each refresh lists every logged-in agent; only changes
//! go to the cloud.
//!
//! Pure. A line whose agent's state differs from what the last refresh said
//! is a change at once (no need to wait for the refresh to end, so a change
//! reaches the cloud as fast as in a delimited feed); an agent that was in
//! the previous refresh but not in this one is logged out when the next
//! refresh starts, the only moment its absence is known. One differ per
//! connection: a standby ACD server sends its own refreshes.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, FixedOffset};

use crate::protocol::LOGGED_OUT;
use crate::realtime::parse::AgentState;

#[derive(Debug, Default)]
pub struct SnapshotDiffer {
    /// Each agent's last known (activity, reason).
    known: HashMap<String, (String, Option<String>)>,
    /// Agents listed since the current refresh started.
    listed: HashSet<String>,
    /// A refresh has started (lines before the first marker may be the tail
    /// of a refresh joined midway: they count, but nobody is logged out on
    /// their account).
    started: bool,
}

impl SnapshotDiffer {
    pub fn new() -> Self {
        SnapshotDiffer::default()
    }

    /// A state line of the refresh: the change, if it is one.
    pub fn line(&mut self, state: AgentState) -> Option<AgentState> {
        self.listed.insert(state.agent.clone());
        let now = (state.activity.clone(), state.reason.clone());
        match self.known.get(&state.agent) {
            Some(before) if *before == now => None,
            _ => {
                self.known.insert(state.agent.clone(), now);
                Some(state)
            }
        }
    }

    /// A refresh starts: everyone the previous refresh listed and that one
    /// did not is logged out, as of `at` (the marker's arrival). Sorted by
    /// agent, so the order is the same on every run.
    pub fn refresh(&mut self, at: DateTime<FixedOffset>) -> Vec<AgentState> {
        let mut gone = Vec::new();
        if self.started {
            let mut missing: Vec<String> = self
                .known
                .iter()
                .filter(|(agent, (activity, _))| {
                    activity != LOGGED_OUT && !self.listed.contains(*agent)
                })
                .map(|(agent, _)| agent.clone())
                .collect();
            missing.sort();
            for agent in missing {
                self.known.remove(&agent);
                gone.push(AgentState {
                    agent,
                    activity: LOGGED_OUT.to_owned(),
                    reason: None,
                    timestamp: at,
                });
            }
        }
        self.started = true;
        self.listed.clear();
        gone
    }

    /// Agents currently known (for status and tests).
    pub fn agents(&self) -> usize {
        self.known.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    fn st(agent: &str, activity: &str) -> AgentState {
        AgentState {
            agent: agent.into(),
            activity: activity.into(),
            reason: None,
            timestamp: at("2026-12-02T08:00:00+01:00"),
        }
    }

    fn agents(changes: &[AgentState]) -> Vec<(String, String)> {
        changes
            .iter()
            .map(|s| (s.agent.clone(), s.activity.clone()))
            .collect()
    }

    #[test]
    fn only_changes_and_departures_come_out() {
        let mut d = SnapshotDiffer::new();
        assert!(d.refresh(at("2026-12-02T08:00:00+01:00")).is_empty());
        // The first refresh: everything is new.
        assert!(d.line(st("1", "ACD")).is_some());
        assert!(d.line(st("2", "AUX")).is_some());
        assert!(d.line(st("3", "AVAIL")).is_some());
        assert!(d.refresh(at("2026-12-02T08:00:10+01:00")).is_empty());
        // Second: 1 unchanged, 2 changed, 3 missing, 4 new.
        assert!(d.line(st("1", "ACD")).is_none());
        assert_eq!(
            agents(&[d.line(st("2", "ACD")).unwrap()]),
            [("2".into(), "ACD".into())]
        );
        assert!(d.line(st("4", "AUX")).is_some());
        let gone = d.refresh(at("2026-12-02T08:00:20+01:00"));
        assert_eq!(agents(&gone), [("3".into(), LOGGED_OUT.into())]);
        assert_eq!(gone[0].timestamp, at("2026-12-02T08:00:20+01:00"));
        // Third: the same again yields nothing; 3 is not logged out twice.
        for (a, s) in [("1", "ACD"), ("2", "ACD"), ("4", "AUX")] {
            assert!(d.line(st(a, s)).is_none());
        }
        assert!(d.refresh(at("2026-12-02T08:00:30+01:00")).is_empty());
        // 3 comes back: a change.
        assert!(d.line(st("3", "AVAIL")).is_some());
    }

    #[test]
    fn a_reason_change_is_a_change() {
        let mut d = SnapshotDiffer::new();
        d.refresh(at("2026-12-02T08:00:00+01:00"));
        d.line(st("1", "AUX"));
        let mut with_reason = st("1", "AUX");
        with_reason.reason = Some("7".into());
        assert!(d.line(with_reason).is_some());
    }

    #[test]
    fn lines_before_the_first_marker_log_nobody_out() {
        let mut d = SnapshotDiffer::new();
        assert!(d.line(st("9", "ACD")).is_some());
        assert!(d.refresh(at("2026-12-02T08:00:00+01:00")).is_empty());
        assert!(d.line(st("1", "ACD")).is_some());
        let gone = d.refresh(at("2026-12-02T08:00:10+01:00"));
        assert_eq!(agents(&gone), [("9".into(), LOGGED_OUT.into())]);
    }
}
