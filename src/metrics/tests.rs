use super::*;
use crate::detect::EventType;
use crate::state::{ResourceState, ResourceStatusRow};
use chrono::TimeDelta;

fn key(instance: &str, resource: &str, path_params: &str) -> ResourceKey {
    ResourceKey {
        instance: instance.to_owned(),
        resource: resource.to_owned(),
        path_params: path_params.to_owned(),
    }
}

/// The value of the sample line `series` (name and labels exactly as encoded), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

fn committed(records: u64, events: &[(EventType, u64)]) -> PollCounts {
    PollCounts {
        records_read: records,
        events_by_type: events.iter().copied().collect(),
        ..PollCounts::default()
    }
}

#[test]
fn polls_count_by_result_with_their_records_and_events() {
    let metrics = Metrics::new();
    let crm = key("crm", "contacts", "");
    let baseline = PollCounts {
        baseline: true,
        records_read: 5,
        ..PollCounts::default()
    };
    metrics.poll_finished(&crm, &baseline, Duration::from_millis(30));
    let changes = committed(3, &[(EventType::Created, 1), (EventType::Updated, 2)]);
    metrics.poll_finished(&crm, &changes, Duration::from_secs(2));
    let failed = PollCounts {
        records_read: 4,
        failed: true,
        // A failed poll committed nothing, whatever its report says.
        events_by_type: [(EventType::Created, 9)].into_iter().collect(),
        ..PollCounts::default()
    };
    metrics.poll_finished(&crm, &failed, Duration::from_secs(1));

    let text = metrics.encode().unwrap();
    let labels = r#"instance_name="crm",resource="contacts""#;
    for (result, count) in [("ok", 1.0), ("baseline", 1.0), ("failed", 1.0)] {
        let series = format!(r#"ocpoll_polls_total{{{labels},result="{result}"}}"#);
        assert_eq!(sample(&text, &series), Some(count), "{series} in\n{text}");
    }
    let records = format!("ocpoll_records_read_total{{{labels}}}");
    assert_eq!(sample(&text, &records), Some(12.0), "{text}");
    let created = format!(r#"ocpoll_events_total{{{labels},type="CREATED"}}"#);
    let updated = format!(r#"ocpoll_events_total{{{labels},type="UPDATED"}}"#);
    assert_eq!(sample(&text, &created), Some(1.0), "{text}");
    assert_eq!(sample(&text, &updated), Some(2.0), "{text}");
    assert_eq!(
        sample(&text, "ocpoll_poll_duration_seconds_count"),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, r#"ocpoll_poll_duration_seconds_bucket{le="0.05"}"#),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn fanned_out_resources_are_one_series() {
    let metrics = Metrics::new();
    let report = committed(1, &[(EventType::Updated, 1)]);
    metrics.poll_finished(&key("g", "cal/{id}", "id=a"), &report, Duration::ZERO);
    metrics.poll_finished(&key("g", "cal/{id}", "id=b"), &report, Duration::ZERO);
    let text = metrics.encode().unwrap();
    let series = r#"ocpoll_polls_total{instance_name="g",resource="cal/{id}",result="ok"}"#;
    assert_eq!(sample(&text, series), Some(2.0), "{text}");
    assert!(!text.contains("id=a"), "{text}");
}

#[test]
fn delivery_outcomes_and_latency() {
    let metrics = Metrics::new();
    metrics.delivery("crm", Delivered::Failed);
    metrics.delivery(
        "crm",
        Delivered::Acknowledged {
            latency: Duration::from_millis(300),
        },
    );
    metrics.delivery("crm", Delivered::DeadLettered);
    metrics.http_status(Side::Receiver, "crm", 503);
    metrics.http_status(Side::Receiver, "crm", 503);
    let text = metrics.encode().unwrap();
    for (name, value) in [
        (
            r#"ocpoll_notifications_delivered_total{instance_name="crm"}"#,
            1.0,
        ),
        (
            r#"ocpoll_notifications_failed_total{instance_name="crm"}"#,
            1.0,
        ),
        (
            r#"ocpoll_notifications_dead_lettered_total{instance_name="crm"}"#,
            1.0,
        ),
        (
            r#"ocpoll_http_responses_total{side="receiver",instance_name="crm",code="503"}"#,
            2.0,
        ),
        ("ocpoll_delivery_latency_seconds_count", 1.0),
        (r#"ocpoll_delivery_latency_seconds_bucket{le="0.25"}"#, 0.0),
        (r#"ocpoll_delivery_latency_seconds_bucket{le="0.5"}"#, 1.0),
    ] {
        assert_eq!(sample(&text, name), Some(value), "{name} in\n{text}");
    }
}

#[test]
fn provider_statuses_count_for_the_polled_instance_failed_polls_included() {
    let metrics = Metrics::new();
    let crm = key("crm", "contacts", "");
    let retried = PollCounts {
        provider_statuses: [(429, 1), (200, 1)].into(),
        ..PollCounts::default()
    };
    metrics.poll_finished(&crm, &retried, Duration::ZERO);
    let failed = PollCounts {
        failed: true,
        provider_statuses: [(500, 2)].into(),
        ..PollCounts::default()
    };
    metrics.poll_finished(&key("other", "contacts", ""), &failed, Duration::ZERO);
    let text = metrics.encode().unwrap();
    let series = |code| {
        format!(
            r#"ocpoll_http_responses_total{{side="provider",instance_name="crm",code="{code}"}}"#
        )
    };
    assert_eq!(sample(&text, &series(429)), Some(1.0), "{text}");
    assert_eq!(sample(&text, &series(200)), Some(1.0), "{text}");
    assert_eq!(sample(&text, &series(500)), None, "{text}");
    let other = r#"ocpoll_http_responses_total{side="provider",instance_name="other",code="500"}"#;
    assert_eq!(sample(&text, other), Some(2.0), "{text}");
}

fn status_row(
    instance: &str,
    resource: &str,
    path_params: &str,
    watermark: DateTime<Utc>,
) -> ResourceStatusRow {
    ResourceStatusRow {
        key: key(instance, resource, path_params),
        state: ResourceState {
            watermark: Some(watermark),
            ..ResourceState::default()
        },
    }
}

#[test]
fn the_state_view_has_zeros_for_quiet_instances_and_the_worst_lag_of_a_fan_out() {
    let now = Utc::now();
    let ago = |seconds| now - TimeDelta::seconds(seconds);
    let statuses = vec![
        status_row("crm", "contacts", "", ago(90)),
        status_row("g", "cal", "id=a", ago(10)),
        status_row("g", "cal", "id=b", ago(600)),
        // Ahead of ocpoll's clock (provider skew): no negative lag.
        status_row("g", "tasks", "", now + TimeDelta::seconds(30)),
        // Not polled any more (file removed): no lag that would grow forever.
        status_row("old", "contacts", "", ago(99_999)),
    ];
    let depths = HashMap::from([
        (
            "crm".to_owned(),
            OutboxDepth {
                pending: 2,
                dead: 1,
                oldest_pending_at: Some(ago(42)),
            },
        ),
        (
            "old".to_owned(),
            OutboxDepth {
                pending: 0,
                dead: 3,
                oldest_pending_at: None,
            },
        ),
    ]);
    let polled: BTreeSet<(String, String)> = [("crm", "contacts"), ("g", "cal"), ("g", "tasks")]
        .into_iter()
        .map(|(i, r)| (i.to_owned(), r.to_owned()))
        .collect();
    let view = state_view(&statuses, &depths, &polled, now);

    let crm = &view.outbox["crm"];
    assert_eq!((crm.pending, crm.dead), (2, 1));
    assert!((crm.oldest_pending_age_seconds - 42.0).abs() < 1e-9);
    assert_eq!(view.outbox["g"], OutboxGauges::default());
    assert_eq!(
        view.outbox["old"].dead, 3,
        "an orphan's dead letters still show"
    );

    let lag = |i: &str, r: &str| {
        view.watermark_lag_seconds
            .get(&(i.to_owned(), r.to_owned()))
    };
    assert_eq!(lag("crm", "contacts"), Some(&90.0));
    assert_eq!(lag("g", "cal"), Some(&600.0));
    assert_eq!(lag("g", "tasks"), Some(&0.0));
    assert_eq!(lag("old", "contacts"), None);
}

#[test]
fn state_gauges_are_replaced_at_each_scrape() {
    let metrics = Metrics::new();
    let mut view = StateView::default();
    view.outbox.insert(
        "gone".to_owned(),
        OutboxGauges {
            pending: 4,
            dead: 0,
            oldest_pending_age_seconds: 12.5,
        },
    );
    view.watermark_lag_seconds
        .insert(("gone".to_owned(), "contacts".to_owned()), 7.0);
    metrics.set_state(&view);
    let text = metrics.encode().unwrap();
    assert_eq!(
        sample(
            &text,
            r#"ocpoll_outbox_pending_notifications{instance_name="gone"}"#
        ),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"ocpoll_outbox_oldest_pending_age_seconds{instance_name="gone"}"#
        ),
        Some(12.5),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"ocpoll_watermark_lag_seconds{instance_name="gone",resource="contacts"}"#
        ),
        Some(7.0),
        "{text}"
    );

    metrics.set_state(&StateView::default());
    let text = metrics.encode().unwrap();
    assert!(!text.contains("gone"), "{text}");
}

#[test]
fn a_revoked_oauth_grant_is_a_gauge_to_alert_on() {
    let metrics = Metrics::new();
    let mut view = StateView::default();
    view.oauth_revoked.insert("google".into(), true);
    view.oauth_revoked.insert("fine".into(), false);
    metrics.set_state(&view);
    let text = metrics.encode().unwrap();
    assert_eq!(
        sample(
            &text,
            r#"ocpoll_oauth_reauthorization_required{instance_name="google"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"ocpoll_oauth_reauthorization_required{instance_name="fine"}"#
        ),
        Some(0.0),
        "{text}"
    );
    metrics.set_state(&StateView::default());
    assert!(!metrics.encode().unwrap().contains("google"));
}

#[test]
fn every_metric_is_named_ocpoll_with_help_and_a_type() {
    let metrics = Metrics::new();
    let report = PollCounts {
        records_unreadable: 1,
        records_future_dated: 1,
        ..committed(1, &[(EventType::Deleted, 1)])
    };
    metrics.poll_finished(&key("crm", "contacts", ""), &report, Duration::ZERO);
    for outcome in [
        Delivered::Acknowledged {
            latency: Duration::ZERO,
        },
        Delivered::Failed,
        Delivered::DeadLettered,
    ] {
        metrics.delivery("crm", outcome);
    }
    metrics.http_status(Side::Provider, "crm", 200);
    let mut view = StateView::default();
    view.outbox
        .insert("crm".to_owned(), OutboxGauges::default());
    view.watermark_lag_seconds
        .insert(("crm".to_owned(), "contacts".to_owned()), 1.0);
    metrics.set_state(&view);
    let text = metrics.encode().unwrap();
    let helps: Vec<&str> = text.lines().filter(|l| l.starts_with("# HELP ")).collect();
    assert_eq!(helps.len(), 15, "{text}");
    let future = r#"ocpoll_records_future_dated_total{instance_name="crm",resource="contacts"}"#;
    assert_eq!(sample(&text, future), Some(1.0), "{text}");
    for line in text.lines().filter(|l| l.starts_with('#')) {
        let name = line.split(' ').nth(2).unwrap();
        assert!(name.starts_with("ocpoll_"), "{line}");
    }
    for unit_name in [
        "ocpoll_poll_duration_seconds",
        "ocpoll_delivery_latency_seconds",
        "ocpoll_outbox_oldest_pending_age_seconds",
        "ocpoll_watermark_lag_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {unit_name} ")),
            "{unit_name} in\n{text}"
        );
    }
}

#[test]
fn a_fleet_node_shows_its_polls_takeovers_and_leases() {
    use std::sync::atomic::Ordering::Relaxed;
    let metrics = Metrics::new();
    let fleet = crate::fleet::Fleet::new(std::time::Duration::from_secs(30));
    fleet.counts.polls.store(7, Relaxed);
    fleet.counts.skipped.store(3, Relaxed);
    fleet.counts.takeovers.store(2, Relaxed);
    fleet.counts.stale_config.store(5, Relaxed);
    fleet.counts.held_polls.store(4, Relaxed);
    fleet.counts.held_deliveries.store(1, Relaxed);
    metrics.set_fleet(&fleet);
    let text = metrics.encode().unwrap();
    let node = &fleet.node.0;
    assert_eq!(
        sample(&text, &format!(r#"ocpoll_fleet_polls{{node="{node}"}}"#)),
        Some(7.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!(r#"ocpoll_fleet_polls_skipped{{node="{node}"}}"#)
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!(r#"ocpoll_fleet_polls_stale_file{{node="{node}"}}"#)
        ),
        Some(5.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!(r#"ocpoll_fleet_lease_takeovers{{node="{node}"}}"#)
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!(r#"ocpoll_fleet_leases_held{{node="{node}",kind="poll"}}"#)
        ),
        Some(4.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!(r#"ocpoll_fleet_leases_held{{node="{node}",kind="delivery"}}"#)
        ),
        Some(1.0)
    );
}
