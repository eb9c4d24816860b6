//! This daemon's place in a fleet (SPEC 13, docs/operations.md#a-fleet-of-daemons): several
//! `ocpoll run` sharing one PostgreSQL state, each poll and each instance's delivery leased to
//! one of them at a time. It owns the node's identity, the lease length, the version of each
//! instance file as this node read it (a node with an older copy polls nothing of that
//! instance), the renewal of the leases it holds, and the counts `/metrics` shows.
//!
//! Without a fleet (a SQLite state) none of this runs: polls and deliveries claim nothing.

use crate::state::{ConfigVersion, NodeId, PollClaim, ResourceKey, StateError, Store};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// `[fleet] lease_seconds` when not set.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// One daemon of a fleet.
#[derive(Debug)]
pub struct Fleet {
    pub node: NodeId,
    /// How long a claim holds without renewal: how long a dead node's work waits.
    pub lease: Duration,
    /// Each running instance's file version, by instance name (refreshed at each reload).
    versions: RwLock<HashMap<String, ConfigVersion>>,
    pub counts: FleetCounts,
}

/// What `/metrics` shows of the fleet, counted since this node started.
#[derive(Debug, Default)]
pub struct FleetCounts {
    /// Polls this node ran (claims granted).
    pub polls: AtomicU64,
    /// Claims (polls and deliveries) that took over an expired lease of another node.
    pub takeovers: AtomicU64,
    /// Polls skipped because another node holds the resource or polled it already.
    pub skipped: AtomicU64,
    /// Polls refused because this node's copy of the instance file is older.
    pub stale_config: AtomicU64,
    /// Leases held at the last renewal (polls, deliveries).
    pub held_polls: AtomicU64,
    pub held_deliveries: AtomicU64,
}

/// Why a poll of this node did not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skipped {
    /// Another node polled it; next due then.
    NotDue(DateTime<Utc>),
    /// Another node is polling it, its lease runs until then.
    Held { node: String, until: DateTime<Utc> },
    /// This node's copy of the instance file is older than the fleet's newest.
    StaleConfig,
}

impl Fleet {
    pub fn new(lease: Duration) -> Fleet {
        Fleet {
            node: NodeId::generate(),
            lease,
            versions: RwLock::new(HashMap::new()),
            counts: FleetCounts::default(),
        }
    }

    /// Reads the version of every instance file this node runs (`(name, path)` pairs); a file
    /// that cannot be read keeps its previous version.
    pub fn refresh_versions<'a>(&self, files: impl Iterator<Item = (&'a str, &'a Path)>) {
        let mut versions = self
            .versions
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut next = HashMap::new();
        for (name, path) in files {
            match file_version(path) {
                Ok(version) => {
                    next.insert(name.to_owned(), version);
                }
                Err(error) => {
                    tracing::warn!(file = %path.display(), %error,
                        "cannot read the instance file's version; its polls wait");
                    if let Some(old) = versions.get(name) {
                        next.insert(name.to_owned(), old.clone());
                    }
                }
            }
        }
        *versions = next;
    }

    fn version_of(&self, instance: &str) -> Option<ConfigVersion> {
        self.versions
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(instance)
            .cloned()
    }

    /// Claims the poll of `key`: `Ok(None)` when this node may poll it now.
    pub fn claim_poll(
        &self,
        store: &Mutex<Store>,
        key: &ResourceKey,
    ) -> Result<Option<Skipped>, StateError> {
        let Some(version) = self.version_of(&key.instance) else {
            self.counts.stale_config.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(Skipped::StaleConfig));
        };
        let claim =
            Store::locked(store).claim_poll(key, &self.node, &version, self.lease, Utc::now())?;
        Ok(match claim {
            PollClaim::Granted { takeover } => {
                self.counts.polls.fetch_add(1, Ordering::Relaxed);
                if takeover {
                    self.counts.takeovers.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(instance = %key.instance, resource = %key.resource,
                        "took over the poll of a node whose lease expired");
                }
                None
            }
            PollClaim::NotDue { next_due_at } => {
                self.counts.skipped.fetch_add(1, Ordering::Relaxed);
                Some(Skipped::NotDue(next_due_at))
            }
            PollClaim::Held { node, until } => {
                self.counts.skipped.fetch_add(1, Ordering::Relaxed);
                Some(Skipped::Held { node, until })
            }
            PollClaim::StaleConfig { newest_hash } => {
                self.counts.stale_config.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(instance = %key.instance, newest = %short(&newest_hash),
                    "this node's copy of the instance file is older than another node's; not polling it (deploy the file here)");
                Some(Skipped::StaleConfig)
            }
        })
    }

    /// Gives the poll's lease back once it has committed or failed.
    pub fn release_poll(&self, store: &Mutex<Store>, key: &ResourceKey) {
        if let Err(error) = Store::locked(store).release_poll(key, &self.node) {
            // It expires on its own; another node waits at most one lease.
            tracing::warn!(instance = %key.instance, resource = %key.resource, %error,
                "cannot release the poll's lease; it will expire");
        }
    }

    /// Renews this node's leases every third of a lease, until `stop` resolves.
    pub async fn renew_until(
        self: Arc<Self>,
        store: Arc<Mutex<Store>>,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let mut every = tokio::time::interval(self.lease / 3);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = every.tick() => self.renew(&store),
            }
        }
    }

    fn renew(&self, store: &Mutex<Store>) {
        match Store::locked(store).renew_leases(&self.node, self.lease, Utc::now()) {
            Ok(held) => {
                self.counts.held_polls.store(held.polls, Ordering::Relaxed);
                self.counts
                    .held_deliveries
                    .store(held.deliveries, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::warn!(%error, "cannot renew this node's leases; other nodes may take its work over")
            }
        }
    }
}

/// The first 12 hex digits: enough to tell versions apart in a log line.
fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// The version of an instance file: SHA-256 of its bytes and its modification time.
pub fn file_version(path: &Path) -> std::io::Result<ConfigVersion> {
    let bytes = std::fs::read(path)?;
    let modified = std::fs::metadata(path)?.modified()?;
    Ok(ConfigVersion::of(&bytes, DateTime::<Utc>::from(modified)))
}
