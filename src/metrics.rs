//! Prometheus metrics: the registry and every metric ocpoll exports, created once per daemon
//! and shared as `Arc<Metrics>`; `ocpoll run --metrics-addr` serves them
//! ([`crate::daemon::metrics_server`]). `tick` and the demo keep none.
//!
//! Every name starts with `ocpoll_`. Labels are instance names and resource keys only, never
//! URLs, headers or anything from a secret. The instance label is `instance_name`: Prometheus
//! gives every scraped series an `instance` label of its own (the target's address), and a
//! clash would rename ours to `exported_instance`. A resource fanned out by `pathParams` is one series:
//! its values' counts add up, and its watermark lag is the oldest of them (pathParams values
//! can be addresses or ids a user would not put on a dashboard).
//!
//! Counters, incremented where things happen (they restart from 0 with the process):
//! - `ocpoll_polls_total{instance_name, resource, result}`: finished polls; `result` is `ok`,
//!   `baseline` (a resource's first poll: no events) or `failed` (the watermark did not move).
//! - `ocpoll_records_read_total{instance_name, resource}`: records read from providers (also
//!   by polls that failed later, so a failing resource's re-reads show).
//! - `ocpoll_records_future_dated_total{instance_name, resource}`: records dated further past
//!   the provider's clock than `[poll] future_tolerance_seconds`: sent, but they moved no
//!   watermark (a provider clock or data problem worth an alert).
//! - `ocpoll_records_unreadable_total{instance_name, resource}`: records skipped because their
//!   id or date could not be read (a date format that does not match, usually).
//! - `ocpoll_events_total{instance_name, resource, type}`: events committed to the outbox;
//!   `type` is `CREATED`, `UPDATED` or `DELETED`.
//! - `ocpoll_notifications_delivered_total{instance_name}`: acknowledged with a 2xx.
//! - `ocpoll_notifications_failed_total{instance_name}`: failed attempts, a retry scheduled.
//! - `ocpoll_notifications_dead_lettered_total{instance_name}`: notifications given up on.
//! - `ocpoll_http_responses_total{side, instance_name, code}`: HTTP statuses received; `side`
//!   is `provider` (every page request, retries included) or `receiver` (every attempt).
//! - `ocpoll_webhook_receipts_total{instance_name, result}`: requests to `run --listen`;
//!   `result` is `accepted`, `duplicate` (a retry, answered 2xx, not enqueued again),
//!   `bad_signature`, `unknown` (no such instance or a wrong token; always with an empty
//!   `instance_name`, since the name in a URL is anyone's choice), `too_large`, `rate_limited`,
//!   `bad_request`, `unsupported` (method or content type), `timeout` (body too slow) or
//!   `unavailable` (the state did not take it: 503).
//!
//! Histograms, without labels (per resource they would multiply the series by the buckets):
//! - `ocpoll_poll_duration_seconds`: how long each poll took, first request to commit.
//! - `ocpoll_delivery_latency_seconds`: from a notification's outbox time (`created_at`, which
//!   the poll that committed it sets to its own start) to the receiver's 2xx, retries included.
//!
//! Gauges read from the state file at each scrape, so they are right after `ocpoll outbox
//! retry`, a restart or a `state reset` from another process:
//! - `ocpoll_outbox_pending_notifications{instance_name}`,
//!   `ocpoll_outbox_dead_letters{instance_name}`.
//! - `ocpoll_outbox_oldest_pending_age_seconds{instance_name}`: 0 when nothing is pending.
//! - `ocpoll_watermark_lag_seconds{instance_name, resource}`: now minus the watermark. The
//!   watermark is the provider's newest change, so this includes time in which nothing changed.
//!
//! Instances polled now and instances with notifications in the outbox get outbox gauges
//! (zeros included, so a graph has no gaps); watermark lag is for resources polled now only.
//!
//! Metrics observe; nothing below them calls them. The daemon's scheduler hands each finished
//! poll's plain counts ([`PollCounts`], provider statuses included: the poll's report gathers
//! them from its pages) to [`Metrics::poll_finished`]; `tick` and `try` keep no metrics.

use crate::detect::EventCounts;
use crate::outbox::deliver::{Delivered, DeliveryObserver};
use crate::state::{OutboxDepth, ResourceKey, ResourceStatusRow};
use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// The `Content-Type` of what [`Metrics::encode`] writes (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds of the poll duration buckets, in seconds: 50 ms doubling to about 7 minutes.
const POLL_DURATION_BUCKETS: [f64; 14] = [
    0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, 102.4, 204.8, 409.6,
];

/// Upper bounds of the delivery latency buckets, in seconds: sub-second when the receiver is
/// up, up to a day (the default retry window) when it was down.
const DELIVERY_LATENCY_BUCKETS: [f64; 16] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0,
    86400.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    instance_name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    instance_name: String,
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PollLabels {
    instance_name: String,
    resource: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    instance_name: String,
    resource: String,
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaseLabels {
    node: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceiptLabels {
    instance_name: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    side: &'static str,
    instance_name: String,
    code: u16,
}

/// Who answered an HTTP request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Provider,
    Receiver,
}

impl Side {
    fn as_str(self) -> &'static str {
        match self {
            Side::Provider => "provider",
            Side::Receiver => "receiver",
        }
    }
}

/// A gauge holding seconds (prometheus-client's f64 gauge).
type SecondsGauge = Gauge<f64, AtomicU64>;

/// Every metric, typed; see the module documentation for what each means.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    polls: Family<PollLabels, Counter>,
    poll_duration: Histogram,
    records_read: Family<ResourceLabels, Counter>,
    records_unreadable: Family<ResourceLabels, Counter>,
    records_future_dated: Family<ResourceLabels, Counter>,
    events: Family<EventLabels, Counter>,
    delivered: Family<InstanceLabels, Counter>,
    delivery_failed: Family<InstanceLabels, Counter>,
    dead_lettered: Family<InstanceLabels, Counter>,
    delivery_latency: Histogram,
    http_responses: Family<HttpLabels, Counter>,
    webhook_receipts: Family<ReceiptLabels, Counter>,
    outbox_pending: Family<InstanceLabels, Gauge>,
    outbox_dead: Family<InstanceLabels, Gauge>,
    outbox_oldest_age: Family<InstanceLabels, SecondsGauge>,
    watermark_lag: Family<ResourceLabels, SecondsGauge>,
    oauth_revoked: Family<InstanceLabels, Gauge>,
    fleet_polls: Family<NodeLabels, Gauge>,
    fleet_skipped: Family<NodeLabels, Gauge>,
    fleet_stale: Family<NodeLabels, Gauge>,
    fleet_takeovers: Family<NodeLabels, Gauge>,
    fleet_leases: Family<LeaseLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let metrics = Metrics {
            registry: Registry::with_prefix("ocpoll"),
            polls: Family::default(),
            poll_duration: Histogram::new(POLL_DURATION_BUCKETS),
            records_read: Family::default(),
            records_unreadable: Family::default(),
            records_future_dated: Family::default(),
            events: Family::default(),
            delivered: Family::default(),
            delivery_failed: Family::default(),
            dead_lettered: Family::default(),
            delivery_latency: Histogram::new(DELIVERY_LATENCY_BUCKETS),
            http_responses: Family::default(),
            webhook_receipts: Family::default(),
            outbox_pending: Family::default(),
            outbox_dead: Family::default(),
            outbox_oldest_age: Family::default(),
            watermark_lag: Family::default(),
            oauth_revoked: Family::default(),
            fleet_polls: Family::default(),
            fleet_skipped: Family::default(),
            fleet_stale: Family::default(),
            fleet_takeovers: Family::default(),
            fleet_leases: Family::default(),
        };
        metrics.registered()
    }

    /// One request to the webhooks listener (see the module documentation for `result`).
    pub fn webhook_receipt(&self, instance: &str, result: &'static str) {
        self.webhook_receipts
            .get_or_create(&ReceiptLabels {
                instance_name: instance.to_owned(),
                result,
            })
            .inc();
    }

    /// Registers clones of every metric (they share their values) under its exported name.
    fn registered(mut self) -> Metrics {
        let r = &mut self.registry;
        r.register("polls", "Finished polls by result", self.polls.clone());
        r.register_with_unit(
            "poll_duration",
            "How long polls took, first request to commit",
            Unit::Seconds,
            self.poll_duration.clone(),
        );
        r.register(
            "records_read",
            "Records read from providers",
            self.records_read.clone(),
        );
        r.register(
            "records_unreadable",
            "Records skipped because their id or date could not be read",
            self.records_unreadable.clone(),
        );
        r.register(
            "records_future_dated",
            "Records dated in the future: sent, but the watermark did not move past them",
            self.records_future_dated.clone(),
        );
        r.register(
            "events",
            "Events committed to the outbox, by type",
            self.events.clone(),
        );
        r.register(
            "notifications_delivered",
            "Notifications acknowledged by their receiver with a 2xx",
            self.delivered.clone(),
        );
        r.register(
            "notifications_failed",
            "Failed delivery attempts with a retry scheduled",
            self.delivery_failed.clone(),
        );
        r.register(
            "notifications_dead_lettered",
            "Notifications dead-lettered (given up on)",
            self.dead_lettered.clone(),
        );
        r.register_with_unit(
            "delivery_latency",
            "From a notification's outbox time (its poll's start) to its receiver's 2xx",
            Unit::Seconds,
            self.delivery_latency.clone(),
        );
        r.register(
            "http_responses",
            "HTTP statuses received from providers and receivers",
            self.http_responses.clone(),
        );
        r.register(
            "webhook_receipts",
            "Webhook requests received, by result",
            self.webhook_receipts.clone(),
        );
        r.register(
            "outbox_pending_notifications",
            "Notifications waiting for delivery (read from the state at scrape time)",
            self.outbox_pending.clone(),
        );
        r.register(
            "outbox_dead_letters",
            "Dead-lettered notifications kept in the state (read at scrape time)",
            self.outbox_dead.clone(),
        );
        r.register_with_unit(
            "outbox_oldest_pending_age",
            "Age of the oldest pending notification, 0 when none (read at scrape time)",
            Unit::Seconds,
            self.outbox_oldest_age.clone(),
        );
        r.register_with_unit(
            "watermark_lag",
            "Now minus the watermark, the newest change seen at the provider (read at scrape time)",
            Unit::Seconds,
            self.watermark_lag.clone(),
        );
        r.register(
            "oauth_reauthorization_required",
            "1 when the provider revoked the instance's OAuth grant (invalid_grant): its polls \
             are stopped until `ocpoll auth` (read at scrape time)",
            self.oauth_revoked.clone(),
        );
        r.register(
            "fleet_polls",
            "With a PostgreSQL state: polls this node claimed and ran since it started",
            self.fleet_polls.clone(),
        );
        r.register(
            "fleet_polls_skipped",
            "With a PostgreSQL state: polls left to another node (it polled or polls them)",
            self.fleet_skipped.clone(),
        );
        r.register(
            "fleet_polls_stale_file",
            "With a PostgreSQL state: polls refused because this node's copy of the instance \
             file is older than another node's",
            self.fleet_stale.clone(),
        );
        r.register(
            "fleet_lease_takeovers",
            "With a PostgreSQL state: leases this node took over from a node whose lease expired",
            self.fleet_takeovers.clone(),
        );
        r.register(
            "fleet_leases_held",
            "With a PostgreSQL state: leases this node held at its last renewal, by kind (poll, delivery)",
            self.fleet_leases.clone(),
        );
        self
    }

    /// Copies this node's fleet counts into its gauges (at each scrape). Gauges rather than
    /// counters: the counts live in the fleet, which counts whether or not metrics are served.
    pub fn set_fleet(&self, fleet: &crate::fleet::Fleet) {
        use std::sync::atomic::Ordering::Relaxed;
        let node = NodeLabels {
            node: fleet.node.0.clone(),
        };
        let counts = &fleet.counts;
        let as_gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        self.fleet_polls
            .get_or_create(&node)
            .set(as_gauge(counts.polls.load(Relaxed)));
        self.fleet_skipped
            .get_or_create(&node)
            .set(as_gauge(counts.skipped.load(Relaxed)));
        self.fleet_stale
            .get_or_create(&node)
            .set(as_gauge(counts.stale_config.load(Relaxed)));
        self.fleet_takeovers
            .get_or_create(&node)
            .set(as_gauge(counts.takeovers.load(Relaxed)));
        for (kind, held) in [
            ("poll", &counts.held_polls),
            ("delivery", &counts.held_deliveries),
        ] {
            self.fleet_leases
                .get_or_create(&LeaseLabels {
                    node: node.node.clone(),
                    kind,
                })
                .set(as_gauge(held.load(Relaxed)));
        }
    }

    /// Counts a finished poll of `key` (a daemon poll; `elapsed` from its start to its end).
    pub fn poll_finished(&self, key: &ResourceKey, report: &PollCounts, elapsed: Duration) {
        let resource = resource_labels(key);
        let result = match (report.failed, report.baseline) {
            (true, _) => "failed",
            (false, true) => "baseline",
            (false, false) => "ok",
        };
        self.polls
            .get_or_create(&PollLabels {
                instance_name: key.instance.clone(),
                resource: key.resource.clone(),
                result,
            })
            .inc();
        self.poll_duration.observe(elapsed.as_secs_f64());
        self.records_read
            .get_or_create(&resource)
            .inc_by(report.records_read);
        if report.records_future_dated > 0 {
            self.records_future_dated
                .get_or_create(&resource)
                .inc_by(report.records_future_dated);
        }
        if report.records_unreadable > 0 {
            self.records_unreadable
                .get_or_create(&resource)
                .inc_by(report.records_unreadable);
        }
        for (code, count) in &report.provider_statuses {
            self.http_responses
                .get_or_create(&HttpLabels {
                    side: Side::Provider.as_str(),
                    instance_name: key.instance.clone(),
                    code: *code,
                })
                .inc_by(*count);
        }
        if !report.failed {
            for (event_type, count) in report.events_by_type.iter() {
                self.events
                    .get_or_create(&EventLabels {
                        instance_name: key.instance.clone(),
                        resource: key.resource.clone(),
                        r#type: event_type.as_str(),
                    })
                    .inc_by(count);
            }
        }
    }

    /// Counts what one delivery attempt to `instance`'s receiver came to.
    pub fn delivery(&self, instance: &str, outcome: Delivered) {
        let labels = InstanceLabels {
            instance_name: instance.to_owned(),
        };
        match outcome {
            Delivered::Acknowledged { latency } => {
                self.delivered.get_or_create(&labels).inc();
                self.delivery_latency.observe(latency.as_secs_f64());
            }
            Delivered::Failed => {
                self.delivery_failed.get_or_create(&labels).inc();
            }
            Delivered::DeadLettered => {
                self.dead_lettered.get_or_create(&labels).inc();
            }
        }
    }

    /// Counts one HTTP status received by `instance`'s requests.
    pub fn http_status(&self, side: Side, instance: &str, code: u16) {
        self.http_responses
            .get_or_create(&HttpLabels {
                side: side.as_str(),
                instance_name: instance.to_owned(),
                code,
            })
            .inc();
    }

    /// Replaces the state gauges with `view` (the series of instances and resources no
    /// longer in it disappear).
    pub fn set_state(&self, view: &StateView) {
        self.outbox_pending.clear();
        self.outbox_dead.clear();
        self.outbox_oldest_age.clear();
        self.watermark_lag.clear();
        self.oauth_revoked.clear();
        for (instance, revoked) in &view.oauth_revoked {
            self.oauth_revoked
                .get_or_create(&InstanceLabels {
                    instance_name: instance.clone(),
                })
                .set(i64::from(*revoked));
        }
        for (instance, outbox) in &view.outbox {
            let labels = InstanceLabels {
                instance_name: instance.clone(),
            };
            let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            self.outbox_pending
                .get_or_create(&labels)
                .set(count(outbox.pending));
            self.outbox_dead
                .get_or_create(&labels)
                .set(count(outbox.dead));
            self.outbox_oldest_age
                .get_or_create(&labels)
                .set(outbox.oldest_pending_age_seconds);
        }
        for ((instance, resource), lag) in &view.watermark_lag_seconds {
            self.watermark_lag
                .get_or_create(&ResourceLabels {
                    instance_name: instance.clone(),
                    resource: resource.clone(),
                })
                .set(*lag);
        }
    }

    /// Everything in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

fn resource_labels(key: &ResourceKey) -> ResourceLabels {
    ResourceLabels {
        instance_name: key.instance.clone(),
        resource: key.resource.clone(),
    }
}

/// One instance's outbox, as the gauges show it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutboxGauges {
    pub pending: u64,
    pub dead: u64,
    pub oldest_pending_age_seconds: f64,
}

/// The state gauges' values at one instant, computed by [`state_view`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateView {
    pub outbox: BTreeMap<String, OutboxGauges>,
    /// Per (instance, resource).
    pub watermark_lag_seconds: BTreeMap<(String, String), f64>,
    /// Per instance with OAuth state: whether its grant was revoked.
    pub oauth_revoked: BTreeMap<String, bool>,
}

/// The gauges' values from the state's rows (`Store::statuses`, `Store::outbox_depth`):
/// `polled` holds the (instance, resource) pairs polled now. Pure, so it is tested without a
/// state file; a clock running behind a watermark gives 0, never a negative age.
pub fn state_view(
    statuses: &[ResourceStatusRow],
    depths: &HashMap<String, OutboxDepth>,
    polled: &BTreeSet<(String, String)>,
    now: DateTime<Utc>,
) -> StateView {
    let seconds_since = |then: DateTime<Utc>| ((now - then).as_seconds_f64()).max(0.0);
    let mut view = StateView::default();
    let polled_instances = polled.iter().map(|(instance, _)| instance);
    for instance in polled_instances.chain(depths.keys()) {
        let gauges = depths.get(instance).map(|depth| OutboxGauges {
            pending: depth.pending,
            dead: depth.dead,
            oldest_pending_age_seconds: depth.oldest_pending_at.map_or(0.0, seconds_since),
        });
        view.outbox
            .insert(instance.clone(), gauges.unwrap_or_default());
    }
    for row in statuses {
        let pair = (row.key.instance.clone(), row.key.resource.clone());
        let Some(watermark) = row.state.watermark else {
            continue;
        };
        if !polled.contains(&pair) {
            continue;
        }
        let lag = seconds_since(watermark);
        let worst = view.watermark_lag_seconds.entry(pair).or_insert(lag);
        *worst = worst.max(lag);
    }
    view
}

impl DeliveryObserver for Metrics {
    fn attempted(&self, instance: &str, receiver_status: Option<u16>, outcome: Delivered) {
        if let Some(code) = receiver_status {
            self.http_status(Side::Receiver, instance, code);
        }
        self.delivery(instance, outcome);
    }
}

/// What a finished poll adds to the counters, as plain counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollCounts {
    /// The poll failed: nothing was committed (its events are not counted).
    pub failed: bool,
    /// A resource's first poll: no events.
    pub baseline: bool,
    pub records_read: u64,
    /// Records skipped because their id or date could not be read.
    pub records_unreadable: u64,
    /// Records dated past the provider's clock (sent; the watermark did not move past them).
    pub records_future_dated: u64,
    /// Committed events of each type.
    pub events_by_type: EventCounts,
    /// Provider responses of each HTTP status, retries included.
    pub provider_statuses: BTreeMap<u16, u64>,
}

#[cfg(test)]
mod tests;
