//! Which faults the emulator injects when. Pure: the schedule is a function
//! of time, so a run can be repeated and the plot can shade the phases.
//!
//! Production time is cut into slots of [`SLOT_SECONDS`]; even slots are
//! calm, odd slots switch on the next fault set of [`FAULT_SETS`] in turn.
//! The first slot is calm, so pairing and the first imports are not
//! disturbed, and so is every other one, so the client must recover in each.

use injixo_cloud_link_protocol::emulator::{FaultMode, FaultRule};

pub const SLOT_SECONDS: f64 = 15.0;

const API: &str = "/api/cloud-link/v1/";
const UPLOADS: &str = "/api/cloud-link/v1/uploads";
const HEARTBEAT: &str = "/api/cloud-link/v1/heartbeat";
const STORAGE: &str = "/_s3/";

/// A named set of rules switched on together.
pub struct FaultSet {
    pub name: &'static str,
    pub rules: fn() -> Vec<FaultRule>,
}

fn rule(prefix: &str, mode: FaultMode, probability: f64) -> FaultRule {
    let mut rule = FaultRule::new(prefix, mode);
    rule.probability = probability;
    rule
}

/// Truncation is applied to upload paths only: a lost answer of a token
/// refresh (which rotates the refresh token) is a different hazard, not what
/// this soak measures.
pub const FAULT_SETS: &[FaultSet] = &[
    FaultSet {
        name: "503 + Retry-After on half the upload API calls",
        rules: || {
            let mut r = rule(UPLOADS, FaultMode::Status, 0.5);
            r.retry_after = Some(1);
            vec![r]
        },
    },
    FaultSet {
        name: "TCP resets on half the storage PUTs",
        rules: || vec![rule(STORAGE, FaultMode::Reset, 0.5)],
    },
    FaultSet {
        name: "slow storage (2 s) and heartbeat (5 s)",
        rules: || {
            let mut put = rule(STORAGE, FaultMode::Delay, 1.0);
            put.delay_ms = 2000;
            let mut heartbeat = rule(HEARTBEAT, FaultMode::Delay, 1.0);
            heartbeat.delay_ms = 5000;
            vec![put, heartbeat]
        },
    },
    FaultSet {
        name: "a third of upload answers cut off after the change (commits too)",
        rules: || vec![rule(UPLOADS, FaultMode::Truncate, 0.3)],
    },
    FaultSet {
        name: "API outage: every API call 503",
        rules: || vec![rule(API, FaultMode::Status, 1.0)],
    },
    FaultSet {
        name: "resets on a third of API calls and storage PUTs",
        rules: || {
            vec![
                rule(API, FaultMode::Reset, 0.3),
                rule(STORAGE, FaultMode::Reset, 0.3),
            ]
        },
    },
];

/// The fault set active `t` seconds into production, if any.
pub fn active_at(t: f64) -> Option<usize> {
    if t < 0.0 {
        return None;
    }
    let slot = (t / SLOT_SECONDS) as usize;
    (slot % 2 == 1).then_some((slot / 2) % FAULT_SETS.len())
}

/// The `(start, end)` seconds of the fault phases within `[0, production)`.
pub fn phases(production: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut start = SLOT_SECONDS;
    while start < production {
        out.push((start, (start + SLOT_SECONDS).min(production)));
        start += 2.0 * SLOT_SECONDS;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calm_and_fault_slots_alternate_through_every_set() {
        assert_eq!(active_at(0.0), None);
        assert_eq!(active_at(14.9), None);
        assert_eq!(active_at(15.0), Some(0));
        assert_eq!(active_at(30.0), None);
        assert_eq!(active_at(45.0), Some(1));
        let sets: Vec<_> = (0..24)
            .filter_map(|slot| active_at(slot as f64 * SLOT_SECONDS + 1.0))
            .collect();
        assert_eq!(sets, [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn phases_match_the_schedule_and_stop_at_the_end() {
        let p = phases(100.0);
        assert_eq!(p, [(15.0, 30.0), (45.0, 60.0), (75.0, 90.0)]);
        for (start, end) in p {
            assert!(active_at(start).is_some() && active_at(end - 0.1).is_some());
        }
        assert_eq!(phases(50.0).last(), Some(&(45.0, 50.0)));
        // A 3-minute soak goes through all six sets.
        assert_eq!(phases(180.0).len(), FAULT_SETS.len());
    }

    #[test]
    fn every_rule_is_one_the_emulator_accepts() {
        for set in FAULT_SETS {
            for rule in (set.rules)() {
                assert!(rule.path_prefix.starts_with('/'), "{}", set.name);
                assert!((0.0..=1.0).contains(&rule.probability), "{}", set.name);
            }
        }
    }
}
