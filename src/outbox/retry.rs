//! The delivery retry policy (docs/design.md#the-outbox-and-delivery), as a type and nothing else: given what one
//! attempt came to, it decides whether the notification is acknowledged, tried again later, or
//! dead-lettered. It sends nothing and touches no state, so every rule is a unit test.
//!
//! The rules: 2xx acknowledges. 408, 425, 429, 5xx, timeouts and broken connections are the
//! receiver's passing trouble: retry with exponential backoff and full jitter, honouring
//! `Retry-After`, never more than `backoff_max` apart, until the retry window (24 hours from
//! the moment the notification entered the outbox, by default) is over; then dead-letter. Any
//! other 4xx will not get better by repeating the same bytes: dead-letter at once. A 3xx is
//! never followed (a redirect would send signed events wherever it points): dead-letter, naming
//! the Location so the user can fix the callback URL. A notification is never dropped here:
//! giving up means a dead letter that `ocpoll outbox retry` can revive. A callback the outbound
//! policy refuses (`[http] allow`/`deny`) is dead-lettered at once, like a redirect: only a
//! change of configuration helps.

use chrono::{DateTime, Utc};
use std::time::Duration;

/// What one attempt came to, as far as the policy cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The receiver answered.
    Status {
        status: u16,
        /// `Retry-After`, already turned into a wait from now.
        retry_after: Option<Duration>,
        /// `Location` of a 3xx.
        location: Option<String>,
        /// A short, printable start of the response body.
        excerpt: String,
    },
    /// No complete answer within `event.notification.timeout.seconds`.
    Timeout { after: Duration },
    /// Refused, reset or closed before an answer, or the name did not resolve.
    Connection { reason: String },
    /// Not sent: the outbound policy (`[http] allow`/`deny`) refuses the callback's host.
    Blocked { reason: String },
}

/// The decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryAction {
    /// Delivered: remove it from the outbox.
    Ack,
    /// Try again at `at`; `error` is what the outbox remembers as its last error.
    Retry { at: DateTime<Utc>, error: String },
    /// Give up; it stays in the outbox as a dead letter with this reason.
    DeadLetter { reason: String },
}

/// Facts about the notification that the decision needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptContext {
    /// Attempts made before this one.
    pub attempts_before: u32,
    /// Where the retry window starts (entered the outbox, or its last `outbox retry`).
    pub window_start: DateTime<Utc>,
    /// `event.notification.retry.hours` of the instance, if set.
    pub window: Option<Duration>,
    pub body_bytes: usize,
    /// `event.notification.batch.bytes` of the instance, for the 413 advice.
    pub batch_bytes: usize,
}

/// Backoff and window settings (`[delivery]` in config.toml; the configuration builds them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryLogic {
    /// The first retry's backoff ceiling; it doubles per attempt.
    pub backoff_initial: Duration,
    /// The longest wait between two attempts, `Retry-After` included (default one hour).
    pub backoff_max: Duration,
    /// The retry window for instances without `event.notification.retry.hours`.
    pub default_window: Duration,
}

impl RetryLogic {
    /// Decides what `outcome` means for the notification, at `now`. `jitter` picks a point in
    /// `[0, ceiling]` (random in production, fixed in tests).
    pub fn decide(
        &self,
        outcome: &AttemptOutcome,
        context: &AttemptContext,
        now: DateTime<Utc>,
        jitter: impl FnOnce(Duration) -> Duration,
    ) -> RetryAction {
        let (error, retry_after) = match classify(outcome, context) {
            Verdict::Ack => return RetryAction::Ack,
            Verdict::Permanent(reason) => return RetryAction::DeadLetter { reason },
            Verdict::Transient { error, retry_after } => (error, retry_after),
        };
        let window = context.window.unwrap_or(self.default_window);
        let window_end = context.window_start + to_delta(window);
        if now >= window_end {
            return RetryAction::DeadLetter {
                reason: format!(
                    "gave up after {} attempts over {}: {error}",
                    context.attempts_before.saturating_add(1),
                    humantime::format_duration(window)
                ),
            };
        }
        let wait = retry_after
            .unwrap_or_else(|| jitter(self.ceiling(context.attempts_before)))
            .min(self.backoff_max);
        // One last attempt at the window's end rather than a dead letter before it.
        let at = (now + to_delta(wait)).min(window_end);
        RetryAction::Retry { at, error }
    }

    /// Full jitter's ceiling for the retry after `attempts` attempts: initial * 2^attempts,
    /// capped. (Full jitter spreads out the retries of many notifications that failed together
    /// against one receiver.)
    fn ceiling(&self, attempts: u32) -> Duration {
        self.backoff_initial
            .saturating_mul(2u32.saturating_pow(attempts.min(31)))
            .min(self.backoff_max)
    }
}

/// A uniformly random wait in `[0, ceiling]`.
pub fn full_jitter(ceiling: Duration) -> Duration {
    let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::random_range(0..=ceiling_ms))
}

enum Verdict {
    Ack,
    Permanent(String),
    Transient {
        error: String,
        retry_after: Option<Duration>,
    },
}

fn classify(outcome: &AttemptOutcome, context: &AttemptContext) -> Verdict {
    let (status, retry_after, location, excerpt) = match outcome {
        AttemptOutcome::Timeout { after } => {
            return Verdict::Transient {
                error: format!(
                    "no answer within {} (timeout)",
                    humantime::format_duration(*after)
                ),
                retry_after: None,
            };
        }
        AttemptOutcome::Connection { reason } => {
            return Verdict::Transient {
                error: format!("connection failed: {reason}"),
                retry_after: None,
            };
        }
        // The policy is configuration: the same bytes to the same host stay refused.
        AttemptOutcome::Blocked { reason } => {
            return Verdict::Permanent(format!(
                "not sent: {reason}; fix event.notification.callback.url or [http] in \
                 config.toml, then `ocpoll outbox retry`"
            ));
        }
        AttemptOutcome::Status {
            status,
            retry_after,
            location,
            excerpt,
        } => (*status, *retry_after, location, excerpt),
    };
    let error = status_text(status, excerpt);
    match status {
        200..=299 => Verdict::Ack,
        300..=399 => Verdict::Permanent(format!(
            "{error} (redirect to {}; redirects are not followed: set the callback URL to the final address)",
            location.as_deref().unwrap_or("no Location")
        )),
        413 => Verdict::Permanent(format!(
            "{error} (the receiver refused a {}-byte notification: lower \
             event.notification.batch.bytes, now {}, so notifications are smaller)",
            context.body_bytes, context.batch_bytes
        )),
        408 | 425 | 429 | 500..=599 => Verdict::Transient { error, retry_after },
        _ => Verdict::Permanent(format!(
            "{error} (not retried: only 408, 425, 429 and 5xx are)"
        )),
    }
}

fn status_text(status: u16, excerpt: &str) -> String {
    if excerpt.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {excerpt}")
    }
}

fn to_delta(duration: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(duration).unwrap_or(chrono::TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
    }

    fn logic() -> RetryLogic {
        RetryLogic {
            backoff_initial: Duration::from_secs(5),
            backoff_max: Duration::from_secs(3600),
            default_window: Duration::from_secs(86_400),
        }
    }

    fn context(attempts_before: u32) -> AttemptContext {
        AttemptContext {
            attempts_before,
            window_start: at(0),
            window: None,
            body_bytes: 2_000_000,
            batch_bytes: 1_048_576,
        }
    }

    fn status(status: u16) -> AttemptOutcome {
        AttemptOutcome::Status {
            status,
            retry_after: None,
            location: None,
            excerpt: String::new(),
        }
    }

    /// Decides at `now` with the jitter at its ceiling, so waits are predictable.
    fn decide(outcome: &AttemptOutcome, context: &AttemptContext, now: i64) -> RetryAction {
        logic().decide(outcome, context, at(now), |ceiling| ceiling)
    }

    fn retry_at(action: RetryAction) -> DateTime<Utc> {
        match action {
            RetryAction::Retry { at, .. } => at,
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    fn dead_reason(action: RetryAction) -> String {
        match action {
            RetryAction::DeadLetter { reason } => reason,
            other => panic!("expected a dead letter, got {other:?}"),
        }
    }

    #[test]
    fn a_blocked_callback_is_dead_lettered_at_once() {
        let blocked = AttemptOutcome::Blocked {
            reason: "169.254.169.254 is blocked by http.deny 169.254.0.0/16".into(),
        };
        let reason = dead_reason(decide(&blocked, &context(0), 1));
        assert!(reason.contains("http.deny 169.254.0.0/16"), "{reason}");
        assert!(reason.contains("outbox retry"), "{reason}");
    }

    #[test]
    fn every_2xx_acknowledges() {
        for code in [200, 201, 202, 204, 299] {
            assert_eq!(decide(&status(code), &context(0), 10), RetryAction::Ack);
        }
    }

    #[test]
    fn transient_statuses_and_transport_failures_retry() {
        let transient = [
            status(408),
            status(425),
            status(429),
            status(500),
            status(502),
            status(503),
            status(599),
            AttemptOutcome::Timeout {
                after: Duration::from_secs(15),
            },
            AttemptOutcome::Connection {
                reason: "connection refused".into(),
            },
        ];
        for outcome in transient {
            assert_eq!(
                retry_at(decide(&outcome, &context(0), 10)),
                at(15),
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn other_4xx_dead_letter_at_once_with_the_status_and_excerpt() {
        for code in [400, 401, 403, 404, 410, 422] {
            let outcome = AttemptOutcome::Status {
                status: code,
                retry_after: None,
                location: None,
                excerpt: "no such hook".into(),
            };
            let reason = dead_reason(decide(&outcome, &context(0), 10));
            assert!(
                reason.starts_with(&format!("HTTP {code}: no such hook")),
                "{reason}"
            );
        }
    }

    #[test]
    fn a_redirect_is_a_dead_letter_naming_its_location() {
        let outcome = AttemptOutcome::Status {
            status: 301,
            retry_after: None,
            location: Some("https://new.example/hook".into()),
            excerpt: String::new(),
        };
        let reason = dead_reason(decide(&outcome, &context(0), 10));
        assert!(reason.contains("HTTP 301"), "{reason}");
        assert!(reason.contains("https://new.example/hook"), "{reason}");
        assert!(reason.contains("not followed"), "{reason}");
    }

    #[test]
    fn a_413_says_to_lower_batch_bytes() {
        let reason = dead_reason(decide(&status(413), &context(0), 10));
        assert!(
            reason.contains("event.notification.batch.bytes"),
            "{reason}"
        );
        assert!(reason.contains("2000000-byte"), "{reason}");
    }

    #[test]
    fn backoff_doubles_per_attempt_and_is_capped_at_the_maximum() {
        let waits: Vec<i64> = (0..12)
            .map(|attempts| {
                (retry_at(decide(&status(503), &context(attempts), 0)) - at(0)).num_seconds()
            })
            .collect();
        assert_eq!(
            waits,
            [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
        );
        // Even after absurdly many attempts (no overflow).
        let wait = retry_at(decide(&status(503), &context(u32::MAX), 0)) - at(0);
        assert_eq!(wait.num_seconds(), 3600);
    }

    #[test]
    fn full_jitter_stays_within_the_ceiling() {
        for _ in 0..200 {
            let wait = full_jitter(Duration::from_secs(5));
            assert!(wait <= Duration::from_secs(5), "{wait:?}");
        }
        assert_eq!(full_jitter(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let told = |seconds| AttemptOutcome::Status {
            status: 503,
            retry_after: Some(Duration::from_secs(seconds)),
            location: None,
            excerpt: String::new(),
        };
        assert_eq!(retry_at(decide(&told(120), &context(0), 0)), at(120));
        assert_eq!(retry_at(decide(&told(0), &context(3), 0)), at(0));
        assert_eq!(retry_at(decide(&told(7200), &context(0), 0)), at(3600));
    }

    #[test]
    fn the_window_ends_in_one_last_attempt_then_a_dead_letter() {
        // 24 h default window: a retry due after it is pulled in to its end...
        let near_end = 86_400 - 10;
        assert_eq!(
            retry_at(decide(&status(503), &context(20), near_end)),
            at(86_400)
        );
        // ... and a failure at or after the end dead-letters, saying why.
        let reason = dead_reason(decide(&status(503), &context(20), 86_400));
        assert!(
            reason.starts_with("gave up after 21 attempts over 1day: HTTP 503"),
            "{reason}"
        );
    }

    #[test]
    fn the_instance_window_wins_over_the_default() {
        let context = AttemptContext {
            window: Some(Duration::from_secs(3600)),
            ..context(0)
        };
        assert_eq!(retry_at(decide(&status(500), &context, 3598)), at(3600));
        dead_reason(decide(&status(500), &context, 3600));
    }
}
