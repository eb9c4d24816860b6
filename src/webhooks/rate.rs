//! The per-instance receipt rate (`webhook.rate.per_minute`): a token bucket that holds ten
//! seconds' worth of receipts (at least one), refilled continuously. A request finding it empty
//! is answered 429 with the seconds until the next token as `Retry-After`. Pure: the caller
//! passes the clock; one bucket per instance, so a flood from one leaves the others alone.

use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Bucket {
    per_minute: u32,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn new(per_minute: u32, now: Instant) -> Bucket {
        let mut bucket = Bucket {
            per_minute,
            tokens: 0.0,
            at: now,
        };
        bucket.tokens = bucket.capacity();
        bucket
    }

    fn capacity(&self) -> f64 {
        (f64::from(self.per_minute) / 6.0).max(1.0)
    }

    /// Takes one token: `Ok` to go on, or `Err(wait)` until the next one.
    pub fn take(&mut self, per_minute: u32, now: Instant) -> Result<(), Duration> {
        // A reload may change the rate; the bucket keeps what it holds.
        self.per_minute = per_minute.max(1);
        let per_second = f64::from(self.per_minute) / 60.0;
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(self.capacity());
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / per_second))
        }
    }
}

/// `Retry-After` in whole seconds, rounded up, at least 1.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_refill_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::new(60, start);
        // 60 a minute: ten seconds' worth, 10 at once.
        for _ in 0..10 {
            assert!(bucket.take(60, start).is_ok());
        }
        let wait = bucket.take(60, start).unwrap_err();
        assert_eq!(retry_after_seconds(wait), 1);
        assert!(bucket.take(60, start + Duration::from_secs(1)).is_ok());
        assert!(bucket.take(60, start + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn one_a_minute_allows_one_and_asks_for_a_minute() {
        let start = Instant::now();
        let mut bucket = Bucket::new(1, start);
        assert!(bucket.take(1, start).is_ok());
        let wait = bucket.take(1, start).unwrap_err();
        assert_eq!(retry_after_seconds(wait), 60);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1500)), 2);
    }
}
