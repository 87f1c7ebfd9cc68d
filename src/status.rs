//! The client's live state, shared by the actors that change it and read by
//! the heartbeat and the `status` command. Plain data behind a mutex: every
//! update is a short field assignment, never I/O under the lock.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::pairing::PinOffer;
use crate::protocol::SpoolState;

#[derive(Debug, Clone, Default)]
pub struct StatusBoard(Arc<Mutex<ClientStatus>>);

impl StatusBoard {
    pub fn new(initial: ClientStatus) -> Self {
        StatusBoard(Arc::new(Mutex::new(initial)))
    }

    /// Applies `change` under the lock. A poisoned lock (a panic while
    /// updating) still yields the data: status must never take the client
    /// down.
    pub fn update(&self, change: impl FnOnce(&mut ClientStatus)) {
        change(&mut self.lock());
    }

    pub fn snapshot(&self) -> ClientStatus {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, ClientStatus> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What `status --json` prints and the heartbeat summarises.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientStatus {
    pub version: String,
    pub instance: String,
    pub pid: u32,
    pub started_at: Option<DateTime<Utc>>,
    pub install_dir: String,
    pub cloud_url: String,
    pub link: LinkStatus,
    /// One line saying what the cloud asked this client to import.
    #[serde(default)]
    pub assignment: Option<String>,
    pub cloud: CloudReachability,
    #[serde(default)]
    pub importers: BTreeMap<String, ImporterStatus>,
    #[serde(default)]
    pub spool: SpoolState,
    /// Real-time feeds by name (§7).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub feeds: BTreeMap<String, FeedStatus>,
}

/// One real-time feed, as `status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedStatus {
    /// `listening on 0.0.0.0:9669`, `connecting to 2 server(s)`, `failed: …`.
    pub state: String,
    /// Connected peers (`address:port`).
    #[serde(default)]
    pub peers: Vec<String>,
    pub events_last_minute: u64,
    pub events_total: u64,
    pub last_event_at: Option<DateTime<Utc>>,
    pub parse_errors: u64,
    /// Events committed to the journal but not yet accepted by the cloud.
    pub undelivered: u64,
    /// The last sequence the cloud accepted.
    pub delivered_sequence: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LinkStatus {
    /// Not paired; `pin` is the PIN on offer, if one could be obtained.
    #[default]
    Unpaired,
    Pairing {
        pin: PinOffer,
    },
    Linked {
        integration_id: String,
        integration_name: Option<String>,
        linked_at: DateTime<Utc>,
        /// A re-link PIN on offer, if `pin` asked for one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        relink_pin: Option<PinOffer>,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudReachability {
    /// `None` until the first request finished.
    pub reachable: Option<bool>,
    pub last_contact_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImporterStatus {
    pub state: String,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// A database import: this computer's clock minus the database's at the
    /// last run, in milliseconds (positive: this computer is ahead); `None`
    /// when the database cannot tell its time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew_ms: Option<i64>,
}
