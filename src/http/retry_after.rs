//! The `Retry-After` header (RFC 9110 section 10.2.3): delta seconds or an HTTP-date. Read in
//! one place for both directions ocpoll talks: providers' answers to a poll's GET (`client`) and
//! receivers' answers to a callback (delivery, in the outbox).

use std::time::{Duration, SystemTime};

/// When a `Retry-After` value ends, seen from `now`; None when it is neither form (or the end
/// is past what a `SystemTime` holds).
pub fn until(header: &str, now: SystemTime) -> Option<SystemTime> {
    match parse(header)? {
        RetryAfter::Delay(delay) => now.checked_add(delay),
        RetryAfter::Date(date) => Some(date),
    }
}

/// A `Retry-After` value as a wait from `now`: the delta seconds, or the time until the
/// HTTP-date (none for a date in the past). None when it is neither form.
pub fn wait(header: &str, now: SystemTime) -> Option<Duration> {
    match parse(header)? {
        RetryAfter::Delay(delay) => Some(delay),
        RetryAfter::Date(date) => Some(date.duration_since(now).unwrap_or(Duration::ZERO)),
    }
}

enum RetryAfter {
    Delay(Duration),
    Date(SystemTime),
}

fn parse(header: &str) -> Option<RetryAfter> {
    let header = header.trim();
    if let Ok(seconds) = header.parse::<u64>() {
        return Some(RetryAfter::Delay(Duration::from_secs(seconds)));
    }
    httpdate::parse_http_date(header).ok().map(RetryAfter::Date)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = at(1_784_000_000);
        assert_eq!(until("120", now), Some(now + Duration::from_secs(120)));
        assert_eq!(
            until("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(at(784_111_777))
        );
        assert_eq!(until("soon", now), None);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::now();
        assert_eq!(wait(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            wait("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(wait("later", now), None);
    }
}
