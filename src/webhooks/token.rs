//! The URL token of a webhooks instance (docs/instances.md#webhook-url): a per-instance secret
//! of 256 random bits in the receiving URL's last segment. `ocpoll webhooks url` makes it and
//! keeps it in the state; `--rotate` replaces it, and the old one keeps working for a grace
//! period. Pure: randomness and the clock come from the caller.
//!
//! A wrong token and an unknown instance must look the same from outside (no oracle), so the
//! comparison is constant-time and runs even when there is nothing to compare against.

use crate::instance::Secret;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// A new token from 32 random bytes: 43 URL-safe characters.
pub fn new_token(random: [u8; 32]) -> Secret {
    Secret::new(URL_SAFE_NO_PAD.encode(random))
}

/// The tokens an instance accepts now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tokens {
    pub current: Secret,
    /// The token before the last rotation, and until when it is still accepted.
    pub previous: Option<(Secret, DateTime<Utc>)>,
}

impl Tokens {
    /// True when `given` is the current token, or the previous one within its grace period.
    pub fn accepts(&self, given: &str, now: DateTime<Utc>) -> bool {
        let current = same(self.current.expose(), given);
        let previous = match &self.previous {
            Some((token, until)) => same(token.expose(), given) & (now < *until),
            None => same("", given) & false,
        };
        current | previous
    }
}

/// Compares in time independent of where the strings differ: both are hashed first, so neither
/// their lengths nor a common prefix show in the timing.
pub fn same(expected: &str, given: &str) -> bool {
    let a = Sha256::digest(expected.as_bytes());
    let b = Sha256::digest(given.as_bytes());
    a.iter()
        .zip(b.iter())
        .fold(0u8, |diff, (x, y)| diff | (x ^ y))
        == 0
}

/// What an unknown instance costs: one comparison, as for a known one.
pub fn compare_nothing(given: &str) -> bool {
    same("\0no instance", given) & false
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn tokens_are_long_and_url_safe() {
        let token = new_token([0xfb; 32]);
        assert_eq!(token.expose().len(), 43);
        assert!(
            token
                .expose()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(new_token([1; 32]), new_token([2; 32]));
    }

    #[test]
    fn the_previous_token_works_until_its_grace_ends() {
        let now = Utc::now();
        let tokens = Tokens {
            current: Secret::new("new"),
            previous: Some((Secret::new("old"), now + TimeDelta::hours(24))),
        };
        assert!(tokens.accepts("new", now));
        assert!(tokens.accepts("old", now));
        assert!(!tokens.accepts("old", now + TimeDelta::hours(24)));
        assert!(!tokens.accepts("ne", now));
        assert!(!tokens.accepts("", now));
        assert!(!compare_nothing("new"));
    }
}
