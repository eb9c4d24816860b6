//! Leases: which daemon of a fleet (several `ocpoll run` sharing one PostgreSQL state, SPEC
//! 13) polls a resource or delivers an instance's notifications right now. A lease is claimed
//! for a while (`[fleet] lease_seconds`), renewed while its work runs and released after it;
//! a daemon that dies loses its leases when they expire, and another claims them.
//!
//! A SQLite state has one daemon (its file lock says so), so there every claim is granted and
//! nothing is kept; the types are the same so the poll and delivery code does not care.

use chrono::{DateTime, Utc};
use std::time::Duration;

use super::ResourceKey;
use super::StateError;
use super::sqlite::SqliteStore;

/// This process in a fleet: `hostname:pid:random`, new at each start.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeId(pub String);

impl NodeId {
    /// A fresh id for this process.
    pub fn generate() -> NodeId {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_owned())
            .unwrap_or_else(|_| "localhost".to_owned());
        NodeId(format!(
            "{host}:{}:{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ))
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The instance file as this node read it: a node whose copy is older than the newest one the
/// fleet has seen polls nothing of that instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigVersion {
    /// SHA-256 of the file's bytes, hex.
    pub hash: String,
    /// The file's modification time.
    pub modified: DateTime<Utc>,
}

/// The answer to a claim of a resource's poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PollClaim {
    /// This node may poll; `takeover` when it took over an expired lease of another node.
    Granted { takeover: bool },
    /// Polled already (by any node); next due then.
    NotDue { next_due_at: DateTime<Utc> },
    /// Another node holds the lease.
    Held { node: String, until: DateTime<Utc> },
    /// This node's copy of the instance file is older than the fleet's newest.
    StaleConfig { newest_hash: String },
}

/// The answer to a claim of an instance's outbox head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryClaim {
    Granted { takeover: bool },
    Held { node: String, until: DateTime<Utc> },
}

/// The leases a node holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaseCounts {
    pub polls: u64,
    pub deliveries: u64,
}

impl SqliteStore {
    /// One daemon per file: always granted.
    pub fn claim_poll(
        &mut self,
        _key: &ResourceKey,
        _node: &NodeId,
        _config: &ConfigVersion,
        _lease: Duration,
        _now: DateTime<Utc>,
    ) -> Result<PollClaim, StateError> {
        Ok(PollClaim::Granted { takeover: false })
    }

    pub fn release_poll(&mut self, _key: &ResourceKey, _node: &NodeId) -> Result<(), StateError> {
        Ok(())
    }

    /// One daemon per file: always granted.
    pub fn claim_delivery(
        &mut self,
        _instance: &str,
        _node: &NodeId,
        _lease: Duration,
        _now: DateTime<Utc>,
    ) -> Result<DeliveryClaim, StateError> {
        Ok(DeliveryClaim::Granted { takeover: false })
    }

    pub fn release_delivery(&mut self, _instance: &str, _node: &NodeId) -> Result<(), StateError> {
        Ok(())
    }

    /// Nothing is leased in a file.
    pub fn renew_leases(
        &mut self,
        _node: &NodeId,
        _lease: Duration,
        _now: DateTime<Utc>,
    ) -> Result<LeaseCounts, StateError> {
        Ok(LeaseCounts::default())
    }

    pub fn holds_delivery(
        &mut self,
        _instance: &str,
        _node: &NodeId,
        _now: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        Ok(true)
    }
}
