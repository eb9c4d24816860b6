//! Leases: which node of a fleet polls a resource, and which delivers an instance's outbox
//! head, until when (issue 18). What it owns: the types both backends share, and the SQLite
//! backend's (trivial) side of the API.
//!
//! With SQLite one process owns the file (the poller lock beside it guarantees it), so every
//! claim is granted, releasing and renewing do nothing, and the delivery lease is always held.
//! The PostgreSQL backend (`postgres::lease`) is where claims can be refused: another live
//! node holds the lease, or this node read an older copy of the instance file than another.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::sqlite::SqliteStore;
use super::{ResourceKey, StateError};

/// This process in a fleet: `hostname:pid:random`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeId(pub String);

impl NodeId {
    /// A new id for this process: its host name, pid and 8 random hex digits (a restarted
    /// process with a reused pid is still another node).
    pub fn generate() -> NodeId {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".to_owned());
        let random: u32 = rand::random();
        NodeId(format!("{host}:{}:{random:08x}", std::process::id()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The instance file as this node read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigVersion {
    /// SHA-256 (hex) of the file's bytes.
    pub hash: String,
    /// The file's modification time.
    pub modified: DateTime<Utc>,
}

impl ConfigVersion {
    /// The version of a file's `bytes` modified at `modified`.
    pub fn of(bytes: &[u8], modified: DateTime<Utc>) -> ConfigVersion {
        use sha2::Digest;
        ConfigVersion {
            hash: hex::encode(sha2::Sha256::digest(bytes)),
            modified,
        }
    }
}

/// The answer to [`super::Store::claim_poll`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PollClaim {
    /// Poll it now. `takeover`: the previous holder was another node whose lease expired (its
    /// poll may have been cut short; this one starts over from the committed watermark).
    Granted { takeover: bool },
    /// Not due yet (another node polled it meanwhile).
    NotDue { next_due_at: DateTime<Utc> },
    /// Another node holds the lease.
    Held { node: String, until: DateTime<Utc> },
    /// Another node has read a newer copy of the instance file: this node polls nothing of the
    /// instance until it reloads.
    StaleConfig { newest_hash: String },
}

/// The answer to [`super::Store::claim_delivery`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryClaim {
    Granted { takeover: bool },
    Held { node: String, until: DateTime<Utc> },
}

/// What a node still holds after [`super::Store::renew_leases`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LeaseCounts {
    pub polls: u64,
    pub deliveries: u64,
}

/// The SQLite backend: one process per file, so leases are always this process's.
impl SqliteStore {
    /// Claims the poll of `key` for `node` until `now + lease`. Always granted with SQLite.
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

    /// Gives the poll lease of `key` back. Nothing to do with SQLite.
    pub fn release_poll(&mut self, _key: &ResourceKey, _node: &NodeId) -> Result<(), StateError> {
        Ok(())
    }

    /// Claims delivery of `instance`'s outbox. Always granted with SQLite.
    pub fn claim_delivery(
        &mut self,
        _instance: &str,
        _node: &NodeId,
        _lease: Duration,
        _now: DateTime<Utc>,
    ) -> Result<DeliveryClaim, StateError> {
        Ok(DeliveryClaim::Granted { takeover: false })
    }

    /// Gives the delivery lease of `instance` back. Nothing to do with SQLite.
    pub fn release_delivery(&mut self, _instance: &str, _node: &NodeId) -> Result<(), StateError> {
        Ok(())
    }

    /// Extends every lease this node holds to now+lease; returns what it still holds (a lease
    /// already taken over by another node is not extended). None with SQLite.
    pub fn renew_leases(
        &mut self,
        _node: &NodeId,
        _lease: Duration,
        _now: DateTime<Utc>,
    ) -> Result<LeaseCounts, StateError> {
        Ok(LeaseCounts::default())
    }

    /// Whether this node still holds the delivery lease of `instance` (checked before each
    /// send). Always with SQLite.
    pub fn holds_delivery(
        &mut self,
        _instance: &str,
        _node: &NodeId,
        _now: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        Ok(true)
    }
}

/// `now + lease`, saturating far in the future for absurd leases.
pub(crate) fn lease_until(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(lease)
        .ok()
        .and_then(|delta| now.checked_add_signed(delta))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Store;

    #[test]
    fn sqlite_grants_every_claim() {
        let mut store = Store::open_in_memory().unwrap();
        let node = NodeId::generate();
        assert_eq!(node.0.split(':').count(), 3, "{node}");
        assert_ne!(node, NodeId::generate());
        let key = ResourceKey::new("crm", "contacts", &Default::default());
        let config = ConfigVersion::of(b"{}", Utc::now());
        let lease = Duration::from_secs(30);
        assert_eq!(
            store
                .claim_poll(&key, &node, &config, lease, Utc::now())
                .unwrap(),
            PollClaim::Granted { takeover: false }
        );
        assert_eq!(
            store
                .claim_delivery("crm", &node, lease, Utc::now())
                .unwrap(),
            DeliveryClaim::Granted { takeover: false }
        );
        assert!(store.holds_delivery("crm", &node, Utc::now()).unwrap());
        assert_eq!(
            store.renew_leases(&node, lease, Utc::now()).unwrap(),
            LeaseCounts::default()
        );
        store.release_poll(&key, &node).unwrap();
        store.release_delivery("crm", &node).unwrap();
    }
}
