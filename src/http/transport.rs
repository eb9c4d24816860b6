//! What went wrong below HTTP, in a few words, and whether it is worth another try.
//!
//! A reqwest error is a chain five levels deep (reqwest, hyper's client, its connector, the
//! resolver or the socket or rustls) whose first words are "error sending request". An operator
//! needs the last link and the host: "DNS lookup failed for api.acme.invalid", "connection
//! refused by 127.0.0.1:1". [`TransportFailure::of`] walks the chain once and says which of a
//! few failures it was; [`TransportKind::is_retried`] is the retry rule for provider requests.
//! Neither the URL nor its query appear (an instance URL may carry an API key): only the host
//! and port.

use crate::http::egress::LookupFailed;
use std::error::Error;
use std::fmt;
use std::io;

/// The failures an operator tells apart, each with its own remedy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// The name did not resolve: a typo or a DNS outage; retrying within seconds rarely helps.
    Dns,
    /// Nothing listens on the port.
    Refused,
    /// No answer in time.
    Timeout,
    /// The TLS handshake failed (certificate, protocol): configuration, not luck.
    Tls,
    /// The connection broke after it was made (reset, closed mid-response).
    Closed,
    /// Anything else (the detail says what).
    Other,
}

impl TransportKind {
    /// Whether a provider request that failed this way is tried again within the poll: a name
    /// that does not resolve and a certificate that is refused do not fix themselves in
    /// seconds, so the poll fails at once and the next poll tries again.
    pub fn is_retried(self) -> bool {
        !matches!(self, TransportKind::Dns | TransportKind::Tls)
    }
}

/// One failure: its kind, the `host` or `host:port` it concerns, and the last link of the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportFailure {
    pub kind: TransportKind,
    pub target: String,
    pub detail: String,
}

impl TransportFailure {
    /// Classifies `error`, a reqwest error of a request to `url`.
    pub fn of(error: &reqwest::Error, url: Option<&url::Url>) -> TransportFailure {
        let url = error.url().or(url);
        let host = url.and_then(url::Url::host_str).unwrap_or("the server");
        let port = url.and_then(url::Url::port_or_known_default);
        let https = url.is_some_and(|url| url.scheme() == "https");
        TransportFailure::classify(error, error.is_timeout(), https, host, port)
    }

    /// The pure part of [`TransportFailure::of`]: `error`'s chain, whether reqwest called it a
    /// timeout, and where the request went.
    pub fn classify(
        error: &(dyn Error + 'static),
        timed_out: bool,
        https: bool,
        host: &str,
        port: Option<u16>,
    ) -> TransportFailure {
        let chain: Vec<&(dyn Error + 'static)> = chain(error).collect();
        let io_kind = chain
            .iter()
            .find_map(|link| link.downcast_ref::<io::Error>())
            .map(io::Error::kind);
        let kind = if chain.iter().any(|link| link.is::<LookupFailed>()) {
            TransportKind::Dns
        } else if timed_out || io_kind == Some(io::ErrorKind::TimedOut) {
            TransportKind::Timeout
        } else if io_kind == Some(io::ErrorKind::ConnectionRefused) {
            TransportKind::Refused
        } else if matches!(
            io_kind,
            Some(
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            )
        ) {
            TransportKind::Closed
        } else if https && io_kind == Some(io::ErrorKind::InvalidData) {
            // rustls reports a refused certificate or a failed handshake as an InvalidData
            // I/O error on the connection.
            TransportKind::Tls
        } else {
            TransportKind::Other
        };
        let target = match (kind, port) {
            (TransportKind::Refused, Some(port)) => format!("{host}:{port}"),
            _ => host.to_owned(),
        };
        TransportFailure {
            kind,
            target,
            detail: last_words(&chain),
        }
    }
}

impl fmt::Display for TransportFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let TransportFailure { target, detail, .. } = self;
        match self.kind {
            TransportKind::Dns => write!(f, "DNS lookup failed for {target}"),
            TransportKind::Refused => write!(f, "connection refused by {target}"),
            TransportKind::Timeout => write!(f, "no answer from {target} in time (timeout)"),
            TransportKind::Tls => write!(f, "TLS handshake with {target} failed: {detail}"),
            TransportKind::Closed => write!(f, "connection to {target} broke: {detail}"),
            TransportKind::Other => write!(f, "request to {target} failed: {detail}"),
        }
    }
}

fn chain<'e>(error: &'e (dyn Error + 'static)) -> impl Iterator<Item = &'e (dyn Error + 'static)> {
    std::iter::successors(Some(error), |link: &&'e (dyn Error + 'static)| {
        (*link).source()
    })
}

/// The innermost link's message: the one that says what happened ("invalid peer certificate:
/// UnknownIssuer", "connection reset by peer"). A reqwest error as the last link would name the
/// URL; its kind alone is said then.
fn last_words(chain: &[&(dyn Error + 'static)]) -> String {
    let Some(last) = chain.last() else {
        return String::new();
    };
    match last.downcast_ref::<reqwest::Error>() {
        Some(error) if error.is_body() => "the response body could not be read".to_owned(),
        Some(error) if error.is_decode() => "the response body could not be decoded".to_owned(),
        Some(_) => "the request could not be sent".to_owned(),
        None => last.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error with a source, like hyper's wrappers.
    #[derive(Debug)]
    struct Wrapper(&'static str, Box<dyn Error + Send + Sync>);

    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(self.1.as_ref())
        }
    }

    fn wrapped(inner: impl Error + Send + Sync + 'static) -> Wrapper {
        Wrapper(
            "error sending request",
            Box::new(Wrapper("client error (Connect)", Box::new(inner))),
        )
    }

    fn classify(error: &Wrapper, https: bool) -> TransportFailure {
        TransportFailure::classify(error, false, https, "api.acme.invalid", Some(443))
    }

    #[test]
    fn a_failed_lookup_is_dns_and_not_retried() {
        let lookup = LookupFailed {
            host: "api.acme.invalid".to_owned(),
            reason: "Name or service not known".to_owned(),
        };
        let failure = classify(&wrapped(lookup), true);
        assert_eq!(failure.kind, TransportKind::Dns);
        assert_eq!(
            failure.to_string(),
            "DNS lookup failed for api.acme.invalid"
        );
        assert!(!failure.kind.is_retried());
    }

    #[test]
    fn io_kinds_say_what_happened() {
        let cases = [
            (io::ErrorKind::ConnectionRefused, TransportKind::Refused),
            (io::ErrorKind::TimedOut, TransportKind::Timeout),
            (io::ErrorKind::ConnectionReset, TransportKind::Closed),
            (io::ErrorKind::InvalidData, TransportKind::Tls),
            (io::ErrorKind::PermissionDenied, TransportKind::Other),
        ];
        for (io_kind, expected) in cases {
            let error = wrapped(io::Error::new(io_kind, "the last words"));
            let failure = classify(&error, true);
            assert_eq!(failure.kind, expected, "{io_kind:?}");
            assert_eq!(failure.detail, "the last words");
            assert!(!failure.to_string().contains("error sending request"));
        }
        // InvalidData on plain HTTP is no TLS failure.
        let error = wrapped(io::Error::new(io::ErrorKind::InvalidData, "junk"));
        assert_eq!(classify(&error, false).kind, TransportKind::Other);
    }

    #[test]
    fn a_refused_connection_names_host_and_port() {
        let error = wrapped(io::Error::from(io::ErrorKind::ConnectionRefused));
        let failure = TransportFailure::classify(&error, false, false, "127.0.0.1", Some(1));
        assert_eq!(failure.to_string(), "connection refused by 127.0.0.1:1");
        assert!(failure.kind.is_retried());
    }

    #[test]
    fn reqwests_timeout_flag_wins() {
        let error = wrapped(io::Error::other("deadline"));
        let failure = TransportFailure::classify(&error, true, false, "h", None);
        assert_eq!(failure.kind, TransportKind::Timeout);
        assert_eq!(failure.to_string(), "no answer from h in time (timeout)");
    }
}
