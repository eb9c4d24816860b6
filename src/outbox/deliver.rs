//! Delivery: sending the outbox's notifications to their callbacks (docs/design.md#the-outbox-and-delivery,
//! docs/events.md "Headers"). [`Sender`] makes one signed POST; [`deliver_due`] is the worker that
//! drains every due notification; what a failure means is [`super::retry::RetryLogic`]'s call.
//!
//! Where a notification dies: [`Store::outbox_delivered_all`] after a 2xx, nowhere else (a dead
//! letter stays in the outbox). The row is deleted only after the receiver's 2xx, so a crash at
//! any moment sends it again later with the same eventId and body (at least once).
//! Acknowledgements are written in batches ([`Delivery`]'s `acks`): one transaction for up to
//! [`ACK_BATCH`] of them, at the latest at the end of the pass. A crash loses at most the
//! acknowledgements not yet written; those notifications go again with their eventIds, which
//! at least once allows.
//!
//! Order and fairness: each instance's queue is drained by one task, one notification at a
//! time in outbox order, so a failing notification holds back only its own instance. Instances
//! run in parallel, bounded globally (`[delivery] max_in_flight`) and per callback host
//! (`per_host`); a permit is held for one attempt, not for a whole queue.
//!
//! The callback URL and signature keys come from the instance as loaded for this run, never from
//! the state, so fixing a URL or a key and running `ocpoll outbox retry` repairs delivery.
//!
//! Callbacks obey the outbound policy (`[http] allow`/`deny`, [`crate::http::egress`]): an IP
//! literal is checked before the POST, a name when it resolves. A refused callback is a
//! configuration decision that no retry changes, so the notification is dead-lettered at once
//! ([`AttemptOutcome::Blocked`]); fixing the URL or the policy and `ocpoll outbox retry` sends it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use chrono::Utc;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION, RETRY_AFTER};
use serde::Deserialize;
use thiserror::Error;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::retry::{AttemptContext, AttemptOutcome, RetryAction, RetryLogic, full_jitter};
use super::sign::Signer;
use crate::fleet::Fleet;
use crate::http::client::excerpt;
use crate::http::egress::{self, Egress, GuardedResolver, SystemResolver};
use crate::http::retry_after;
use crate::http::transport::TransportFailure;
use crate::instance::Instance;
use crate::instance::mask::Masker;
use crate::state::{DeliveryClaim, DueNotification, StateError, Store};

#[derive(Debug, Error)]
pub enum DeliverError {
    #[error("{0}")]
    State(#[from] StateError),
    #[error("cannot build the HTTP client for callbacks: {0}")]
    Client(String),
    #[error("the state is unavailable (a delivery task failed)")]
    Poisoned,
    #[error("a delivery task stopped: {0}")]
    Task(String),
}

/// Who receives an instance's notifications in this run.
#[derive(Clone, Debug)]
pub enum Recipient {
    /// A valid instance file with a callback URL.
    Ready(Arc<Instance>),
    /// Not sent now, for this reason (file missing or invalid, no callback URL); its
    /// notifications stay pending.
    Held(String),
}

/// What a [`deliver_due`] run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliverySummary {
    pub delivered: u64,
    pub dead_lettered: u64,
    /// Pending notifications left in the outbox afterwards (all instances), for a summary:
    /// counted by [`Delivery::pending`] only where it is shown (counting reads the whole
    /// outbox's index, which a pass must not do).
    pub pending: u64,
    /// Instances not sent to, with the reason, sorted by name.
    pub held: Vec<(String, String)>,
}

impl DeliverySummary {
    /// Adds a later pass: counts add up, held instances once.
    pub fn absorb(&mut self, later: DeliverySummary) {
        self.delivered += later.delivered;
        self.dead_lettered += later.dead_lettered;
        for held in later.held {
            if !self.held.iter().any(|(name, _)| *name == held.0) {
                self.held.push(held);
            }
        }
        self.held.sort();
    }
}

/// One signed POST. Cheap to share; reqwest pools connections per host.
pub struct Sender {
    client: reqwest::Client,
    egress: Arc<Egress>,
}

impl Sender {
    /// A sender under `egress`, resolving names with the system.
    pub fn with_egress(egress: Arc<Egress>) -> Result<Sender, DeliverError> {
        let resolver = GuardedResolver::new(Arc::clone(&egress), Arc::new(SystemResolver));
        crate::http::crypto::install_provider();
        let client = reqwest::Client::builder()
            .user_agent(concat!("ocpoll/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(resolver)
            // A redirect would carry signed events wherever it points: never followed.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| DeliverError::Client(error.to_string()))?;
        Ok(Sender { client, egress })
    }

    /// POSTs `body` (the stored bytes, unchanged) to the instance's callback, signed with its
    /// keys as loaded now (`signer`: [`Signer::new`] of the instance's keys, or why they cannot
    /// sign), and says what came of it. Never fails: every failure is an outcome.
    pub async fn send(
        &self,
        instance: &Instance,
        signer: &Result<Signer, String>,
        id: &str,
        body: &[u8],
    ) -> AttemptOutcome {
        let Some(url) = &instance.callback_url else {
            return AttemptOutcome::Connection {
                reason: "the instance has no callback URL".to_owned(),
            };
        };
        if let Err(blocked) = self.egress.check_url(url) {
            return AttemptOutcome::Blocked {
                reason: blocked.to_string(),
            };
        }
        let headers = match signed_headers(signer, id, body, Utc::now().timestamp()) {
            Ok(headers) => headers,
            Err(reason) => return AttemptOutcome::Connection { reason },
        };
        let timeout = instance.notification.timeout;
        let request = self
            .client
            .post(url.clone())
            .headers(headers)
            .timeout(timeout)
            .body(body.to_vec());
        let outcome = match request.send().await {
            Ok(response) => read_answer(response).await,
            Err(error) => transport_outcome(&error, timeout),
        };
        masked(outcome, instance)
    }
}

/// An attempt's outcome with the instance's secrets masked: a receiver may echo what it was
/// sent (a signature, the callback URL with a token in its query), and what comes back here
/// is logged and kept as the notification's last error.
fn masked(outcome: AttemptOutcome, instance: &Instance) -> AttemptOutcome {
    match outcome {
        AttemptOutcome::Status {
            status,
            retry_after,
            location,
            excerpt,
        } if !(200..300).contains(&status) => {
            let masker = Masker::for_instance(instance);
            AttemptOutcome::Status {
                status,
                retry_after,
                location: location.map(|location| match url::Url::parse(&location) {
                    Ok(url) => masker.url(&url),
                    Err(_) => masker.text(&location),
                }),
                excerpt: masker.text(&excerpt),
            }
        }
        AttemptOutcome::Connection { reason } => AttemptOutcome::Connection {
            reason: Masker::for_instance(instance).text(&reason),
        },
        AttemptOutcome::Blocked { reason } => AttemptOutcome::Blocked {
            reason: Masker::for_instance(instance).text(&reason),
        },
        other => other,
    }
}

/// The docs/events.md headers of one attempt: `webhook-timestamp` (and so `webhook-signature`) is
/// fresh per attempt; id and body are not. `signer` holds the instance's keys, keyed once for
/// its queue, or why they cannot sign.
pub fn signed_headers(
    signer: &Result<Signer, String>,
    id: &str,
    body: &[u8],
    timestamp: i64,
) -> Result<HeaderMap, String> {
    let signer = signer.as_ref().map_err(Clone::clone)?;
    // Sized once for all six headers: no growth on the way.
    let mut headers = HeaderMap::with_capacity(6);
    let id_value =
        HeaderValue::from_str(id).map_err(|_| format!("eventId {id:?} is not a header value"))?;
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(ELEMENTS_WEBHOOK_ID, id_value.clone());
    headers.insert(WEBHOOK_ID, id_value);
    if let Some(elements) = signer.elements(body) {
        let mut elements = header_value(&elements)?;
        elements.set_sensitive(true);
        let mut standard = header_value(&signer.standard(id, timestamp, body))?;
        standard.set_sensitive(true);
        headers.insert(ELEMENTS_WEBHOOK_SIGNATURE, elements);
        headers.insert(WEBHOOK_TIMESTAMP, HeaderValue::from(timestamp));
        headers.insert(WEBHOOK_SIGNATURE, standard);
    }
    Ok(headers)
}

// The header names, built once (a name from a `&str` is parsed and checked per call).
const ELEMENTS_WEBHOOK_ID: HeaderName = HeaderName::from_static("elements-webhook-id");
const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const ELEMENTS_WEBHOOK_SIGNATURE: HeaderName =
    HeaderName::from_static("elements-webhook-signature");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

fn header_value(text: &str) -> Result<HeaderValue, String> {
    // Base64 and ASCII prefixes only, so this cannot fail; no value in the message regardless.
    HeaderValue::from_str(text).map_err(|_| "a signature is not a header value".to_owned())
}

/// Status, `Retry-After`, `Location` and a short excerpt of the body. A 2xx body is not read:
/// the status acknowledges, whatever follows (a receiver that then stalls or breaks the
/// connection has still said yes).
async fn read_answer(mut response: reqwest::Response) -> AttemptOutcome {
    let status = response.status().as_u16();
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|value: &HeaderValue| value.to_str().ok())
            .map(str::to_owned)
    };
    let retry_after =
        header(RETRY_AFTER).and_then(|text| retry_after::wait(&text, SystemTime::now()));
    let location = header(LOCATION);
    let mut excerpt_bytes = Vec::new();
    if !(200..300).contains(&status) {
        const EXCERPT_BYTES: usize = 1024;
        while excerpt_bytes.len() < EXCERPT_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => excerpt_bytes.extend_from_slice(&chunk),
                _ => break,
            }
        }
    }
    AttemptOutcome::Status {
        status,
        retry_after,
        location,
        excerpt: excerpt(&excerpt_bytes),
    }
}

fn transport_outcome(error: &reqwest::Error, timeout: Duration) -> AttemptOutcome {
    if let Some(blocked) = egress::find_blocked(error) {
        return AttemptOutcome::Blocked {
            reason: blocked.to_string(),
        };
    }
    if error.is_timeout() {
        return AttemptOutcome::Timeout { after: timeout };
    }
    // In a few words, host and not URL: a callback URL may carry a token in its query.
    AttemptOutcome::Connection {
        reason: TransportFailure::of(error, None).to_string(),
    }
}

/// Why a stored body cannot be sent as it is: damaged in the state file. Such a notification
/// is dead-lettered (kept for inspection) and the instance's others still flow.
pub fn check_body(id: &str, body: &[u8]) -> Result<(), String> {
    #[derive(Deserialize)]
    struct Envelope {
        message: Message,
    }
    #[derive(Deserialize)]
    struct Message {
        #[serde(rename = "eventId")]
        event_id: String,
    }
    let envelope: Envelope = serde_json::from_slice(body).map_err(|error| {
        format!("corrupted in the state file: the body is not a notification ({error})")
    })?;
    if envelope.message.event_id != id {
        return Err(format!(
            "corrupted in the state file: the body's message.eventId {:?} is not the notification's id",
            envelope.message.event_id
        ));
    }
    Ok(())
}

/// How a delivery run behaves (`[delivery]` in config.toml; the configuration builds it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// Callbacks in flight at once, over every receiver (at least one).
    pub max_in_flight: u32,
    /// Callbacks in flight at once to one host (at least one).
    pub per_host: u32,
    /// When a failed attempt is tried again, and when it is given up.
    pub retry: RetryLogic,
}

/// What one delivery attempt came to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Delivered {
    /// A 2xx, this long after the notification entered the outbox.
    Acknowledged {
        latency: Duration,
    },
    /// Failed; a retry is scheduled.
    Failed,
    DeadLettered,
}

/// Watches delivery attempt by attempt (the daemon's metrics implement it): delivery tells,
/// and knows nothing of what listens.
pub trait DeliveryObserver: Send + Sync {
    /// An attempt to `instance`'s receiver: its HTTP status when one came back, and what it
    /// came to.
    fn attempted(&self, instance: &str, receiver_status: Option<u16>, outcome: Delivered);
}

/// Acknowledgements are written (the rows deleted) in one transaction per this many...
pub const ACK_BATCH: usize = 64;
/// ...or sooner, when the oldest waiting has waited this long and another 2xx comes: the
/// acknowledgements a crash could lose (sent again, same eventIds) stay few on a slow queue.
const ACK_MAX_WAIT: Duration = Duration::from_millis(250);

/// Acknowledged notifications whose rows are not deleted yet.
#[derive(Default)]
struct PendingAcks {
    ids: Vec<String>,
    /// When the oldest of `ids` was acknowledged.
    since: Option<Instant>,
}

/// Everything a delivery run shares.
pub struct Delivery {
    pub sender: Sender,
    pub store: Arc<Mutex<Store>>,
    pub logic: RetryLogic,
    global: Arc<Semaphore>,
    per_host_limit: usize,
    per_host: Mutex<HashMap<String, Arc<Semaphore>>>,
    observer: Option<Arc<dyn DeliveryObserver>>,
    /// 2xx received, deletion not yet written: only ever added to after the 2xx, written by
    /// [`Delivery::flush_acks`] (at the latest at the end of each pass, and on drop).
    acks: Mutex<PendingAcks>,
    /// With a shared (PostgreSQL) state: an instance's queue is claimed before it is drained
    /// and released after its acknowledgements are written, so one node at a time sends it.
    fleet: Option<Arc<Fleet>>,
}

impl Drop for Delivery {
    fn drop(&mut self) {
        // A pass cut short (shutdown) leaves acknowledgements unwritten: write them, or their
        // notifications go again (same eventIds) after the next start.
        if let Err(error) = self.flush_acks() {
            tracing::warn!(%error, "cannot record delivered notifications; they will be sent again");
        }
    }
}

impl Delivery {
    /// Delivery whose callbacks obey `egress` (`Config::http.egress()`).
    pub fn with_egress(
        store: Arc<Mutex<Store>>,
        policy: DeliveryPolicy,
        egress: Arc<Egress>,
    ) -> Result<Delivery, DeliverError> {
        Ok(Delivery {
            sender: Sender::with_egress(egress)?,
            store,
            logic: policy.retry,
            global: Arc::new(Semaphore::new(policy.max_in_flight.max(1) as usize)),
            per_host_limit: policy.per_host.max(1) as usize,
            per_host: Mutex::new(HashMap::new()),
            observer: None,
            acks: Mutex::new(PendingAcks::default()),
            fleet: None,
        })
    }

    /// Tells `observer` (the daemon's metrics) what each attempt came to.
    pub fn with_observer(mut self, observer: Option<Arc<dyn DeliveryObserver>>) -> Delivery {
        self.observer = observer;
        self
    }

    /// True when the state is shared with other nodes (queues are claimed).
    pub fn in_fleet(&self) -> bool {
        self.fleet.is_some()
    }

    /// Claims each instance's queue in `fleet` before sending from it.
    pub fn with_fleet(mut self, fleet: Option<Arc<Fleet>>) -> Delivery {
        self.fleet = fleet;
        self
    }

    /// Whether this node may send `instance`'s queue in this pass: claims its delivery lease.
    /// Always true without a fleet.
    fn claim(&self, instance: &str) -> Result<bool, DeliverError> {
        let Some(fleet) = &self.fleet else {
            return Ok(true);
        };
        let claim = self.with_store(|store| {
            store.claim_delivery(instance, &fleet.node, fleet.lease, Utc::now())
        })?;
        Ok(match claim {
            DeliveryClaim::Granted { takeover } => {
                if takeover {
                    fleet.counts.takeovers.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%instance, "took over the delivery of a node whose lease expired");
                }
                true
            }
            DeliveryClaim::Held { .. } => false,
        })
    }

    /// Whether this node still holds `instance`'s delivery lease (checked before each send: a
    /// node that stalled past its lease stops, the queue being another node's). One read; the
    /// fleet's renewal task extends the lease. Always true without a fleet.
    fn still_holds(&self, instance: &str) -> Result<bool, DeliverError> {
        let Some(fleet) = &self.fleet else {
            return Ok(true);
        };
        self.with_store(|store| store.holds_delivery(instance, &fleet.node, Utc::now()))
    }

    /// Gives back the delivery leases of `instances`, once their acknowledgements are written
    /// (so the next node starts after the last notification this one delivered).
    fn release(&self, instances: &[String]) {
        let Some(fleet) = &self.fleet else { return };
        for instance in instances {
            if let Err(error) =
                self.with_store(|store| store.release_delivery(instance, &fleet.node))
            {
                tracing::warn!(%instance, %error, "cannot release the delivery lease; it will expire");
            }
        }
    }

    fn observe(
        &self,
        instance: &str,
        head: &DueNotification,
        outcome: Option<&AttemptOutcome>,
        action: &RetryAction,
    ) {
        let Some(observer) = &self.observer else {
            return;
        };
        let status = match outcome {
            Some(AttemptOutcome::Status { status, .. }) => Some(*status),
            _ => None,
        };
        observer.attempted(
            instance,
            status,
            match action {
                RetryAction::Ack => Delivered::Acknowledged {
                    latency: (Utc::now() - head.created_at).to_std().unwrap_or_default(),
                },
                RetryAction::Retry { .. } => Delivered::Failed,
                RetryAction::DeadLetter { .. } => Delivered::DeadLettered,
            },
        );
    }

    /// Pending notifications in the outbox (all instances), for a summary or a log line.
    pub fn pending(&self) -> Result<u64, DeliverError> {
        self.with_store(|store| store.outbox_pending())
    }

    fn with_store<T>(
        &self,
        work: impl FnOnce(&mut Store) -> Result<T, StateError>,
    ) -> Result<T, DeliverError> {
        let mut store = self.store.lock().map_err(|_| DeliverError::Poisoned)?;
        Ok(work(&mut store)?)
    }

    /// `id` got its 2xx: its deletion joins the batch, written once [`ACK_BATCH`] have gathered
    /// or the oldest has waited [`ACK_MAX_WAIT`].
    fn acknowledged(&self, id: String) -> Result<(), DeliverError> {
        let batch = {
            let mut acks = self.acks.lock().map_err(|_| DeliverError::Poisoned)?;
            acks.ids.push(id);
            let since = *acks.since.get_or_insert_with(Instant::now);
            if acks.ids.len() < ACK_BATCH && since.elapsed() < ACK_MAX_WAIT {
                return Ok(());
            }
            take_acks(&mut acks)
        };
        self.write_acks(&batch)
    }

    /// Writes every acknowledgement still waiting in one transaction. Delivery calls it at the
    /// end of each pass (and before reading the next pass's queue heads); the daemon's worker
    /// after a pass cut short.
    pub fn flush_acks(&self) -> Result<(), DeliverError> {
        let batch = {
            let mut acks = self.acks.lock().map_err(|_| DeliverError::Poisoned)?;
            take_acks(&mut acks)
        };
        self.write_acks(&batch)
    }

    fn write_acks(&self, batch: &[String]) -> Result<(), DeliverError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.with_store(|store| store.outbox_delivered_all(batch).map(drop))
    }

    fn host_semaphore(&self, instance: &Instance) -> Result<Arc<Semaphore>, DeliverError> {
        let host = instance
            .callback_url
            .as_ref()
            .and_then(|url| url.host_str())
            .unwrap_or_default()
            .to_owned();
        let mut hosts = self.per_host.lock().map_err(|_| DeliverError::Poisoned)?;
        Ok(Arc::clone(hosts.entry(host).or_insert_with(|| {
            Arc::new(Semaphore::new(self.per_host_limit))
        })))
    }
}

/// What one instance's task did.
#[derive(Default)]
struct InstanceTally {
    delivered: u64,
    dead_lettered: u64,
}

/// Delivers every due notification until none is due or `deadline` passes. `recipient` says,
/// per instance name, where its notifications go; `None` leaves that instance out of this run
/// (not selected, not counted as held). A send cut short by the deadline leaves its notification
/// pending and unchanged.
pub async fn deliver_due(
    delivery: &Arc<Delivery>,
    recipient: impl Fn(&str) -> Option<Recipient>,
    deadline: Instant,
) -> Result<DeliverySummary, DeliverError> {
    // Acknowledgements of a pass cut short first: this pass's heads must not include them.
    delivery.flush_acks()?;
    // Group commit's other half: polls commit without waiting for the disk, and this one sync
    // makes them durable before any of their notifications can reach a receiver.
    delivery.with_store(|store| store.sync_relaxed())?;
    let due = delivery.with_store(|store| store.outbox_due_instances(Utc::now()))?;
    let mut summary = DeliverySummary::default();
    let mut tasks = Vec::new();
    let mut claimed = Vec::new();
    for name in due {
        match recipient(&name) {
            None => {}
            Some(Recipient::Held(reason)) => summary.held.push((name, reason)),
            Some(Recipient::Ready(instance)) => {
                if !delivery.claim(&name)? {
                    continue; // another node of the fleet is sending it
                }
                claimed.push(name);
                let delivery = Arc::clone(delivery);
                tasks.push(tokio::spawn(async move {
                    drain_instance(&delivery, &instance, deadline).await
                }));
            }
        }
    }
    for task in tasks {
        let tally = task
            .await
            .map_err(|error| DeliverError::Task(error.to_string()))??;
        summary.delivered += tally.delivered;
        summary.dead_lettered += tally.dead_lettered;
    }
    summary.held.sort();
    delivery.flush_acks()?;
    delivery.release(&claimed);
    Ok(summary)
}

/// One instance's queue, in order, one at a time, until nothing of it is due now or the
/// deadline passes.
async fn drain_instance(
    delivery: &Delivery,
    instance: &Instance,
    deadline: Instant,
) -> Result<InstanceTally, DeliverError> {
    let mut tally = InstanceTally::default();
    let host = delivery.host_semaphore(instance)?;
    // Keyed once for the whole queue; a key that cannot sign fails each attempt as before.
    let signer = Signer::new(&instance.signature_keys).map_err(|error| error.to_string());
    // The last notification acknowledged: its row may wait for its batch, the next head is
    // after it.
    let mut acknowledged = None;
    while Instant::now() < deadline {
        // Permits first, body second: a task waiting for its turn holds no body in memory.
        // Semaphores are never closed, so acquiring cannot fail.
        let _global = delivery.global.acquire().await.ok();
        let _host = host.acquire().await.ok();
        let head = delivery.with_store(|store| {
            store.outbox_due_head_after(&instance.name, acknowledged, Utc::now())
        })?;
        // Nothing due: a retry in backoff waits for a later run, not for this one (a tick
        // against a receiver that is down must not spend its whole delivery time waiting).
        let Some(head) = head else { break };
        if !delivery.still_holds(&instance.name)? {
            break;
        }
        if let Err(reason) = check_body(&head.id, &head.body) {
            delivery.with_store(|store| store.outbox_dead_letter(&head.id, &reason))?;
            delivery.observe(
                &instance.name,
                &head,
                None,
                &RetryAction::DeadLetter { reason },
            );
            tally.dead_lettered += 1;
            continue;
        }
        let outcome = {
            let send = delivery
                .sender
                .send(instance, &signer, &head.id, &head.body);
            match tokio::time::timeout_at(deadline, send).await {
                Ok(outcome) => outcome,
                // Out of time mid-send: it stays pending as it was, and goes again next run.
                Err(_) => break,
            }
        };
        let action = decide(delivery, instance, &head, &outcome);
        delivery.observe(&instance.name, &head, Some(&outcome), &action);
        match action {
            RetryAction::Ack => {
                acknowledged = Some(head.seq);
                delivery.acknowledged(head.id)?;
                tally.delivered += 1;
            }
            RetryAction::Retry { at, error } => {
                tracing::warn!(instance = %instance.name, event_id = %head.id,
                    attempt = head.attempts + 1, next_attempt = %at.to_rfc3339(), %error,
                    "delivery failed; will retry");
                delivery.with_store(|store| store.outbox_attempt_failed(&head.id, at, &error))?;
            }
            RetryAction::DeadLetter { reason } => {
                tracing::error!(instance = %instance.name, event_id = %head.id,
                    attempt = head.attempts + 1, %reason, "delivery failed; dead-lettered");
                delivery.with_store(|store| store.outbox_dead_letter(&head.id, &reason))?;
                tally.dead_lettered += 1;
            }
        }
    }
    Ok(tally)
}

fn take_acks(acks: &mut PendingAcks) -> Vec<String> {
    acks.since = None;
    std::mem::take(&mut acks.ids)
}

fn decide(
    delivery: &Delivery,
    instance: &Instance,
    head: &DueNotification,
    outcome: &AttemptOutcome,
) -> RetryAction {
    let context = AttemptContext {
        attempts_before: head.attempts,
        window_start: head.window_start,
        window: instance.notification.retry_for,
        body_bytes: head.body.len(),
        batch_bytes: instance.notification.batch_bytes,
    };
    delivery
        .logic
        .decide(outcome, &context, Utc::now(), full_jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_that_is_not_json_or_has_another_id_is_corrupted() {
        assert!(check_body("A", br#"{"message":{"eventId":"A","events":[]}}"#).is_ok());
        let not_json = check_body("A", br#"{"message":{"eventId":"A""#).unwrap_err();
        assert!(not_json.contains("corrupted"), "{not_json}");
        let other = check_body("A", br#"{"message":{"eventId":"B"}}"#).unwrap_err();
        assert!(other.contains("\"B\""), "{other}");
        assert!(check_body("A", b"").is_err());
        assert!(check_body("A", br#"{"message":{}}"#).is_err());
    }
}
