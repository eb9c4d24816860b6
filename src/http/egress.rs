//! Where ocpoll may send requests: `[http] allow` and `deny` in config.toml, plus the addresses
//! denied by default (link-local, where cloud metadata services live). An instance file from a
//! less trusted team must not make ocpoll fetch an internal endpoint and forward what it read to
//! an outside callback.
//!
//! A destination is judged on its host name and on every address it resolves to, in this order:
//! 1. a `deny` rule that matches the name or the address blocks it;
//! 2. a default deny rule ([`DEFAULT_DENY`]) that matches blocks it, unless an `allow` rule of
//!    the same kind (a name rule for a name, an address rule for an address) matches too: an
//!    allowed *name* never unlocks a metadata *address* it happens to resolve to;
//! 3. when `allow` is not empty, only what it matches goes through;
//! 4. everything else goes through (loopback and private ranges included: ocpoll is
//!    self-hosted, and its providers and receivers are often on the same network).
//!
//! Enforcement has two halves, because reqwest resolves names but never IP literals:
//! [`Egress::check_url`] runs before every request and every redirect hop (it judges IP
//! literals fully, and names by their text), and [`GuardedResolver`] filters the addresses a
//! name resolves to, so a name (or a redirect to one) that points at 169.254.169.254 is refused
//! before any connection is attempted. With a proxy (`HTTPS_PROXY`), the resolver sees the
//! proxy's name, not the destination's: address rules then apply to URL literals only.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use thiserror::Error;
use url::{Host, Url};

/// Denied unless explicitly allowed: IPv4 and IPv6 link-local (AWS, GCP, Azure, OpenStack and
/// others serve instance metadata and credentials at 169.254.169.254), AWS's IPv6 metadata
/// address, and GCP's metadata names.
pub const DEFAULT_DENY: &[&str] = &[
    "169.254.0.0/16",
    "fe80::/10",
    "fd00:ec2::254",
    "metadata.google.internal",
    "metadata.goog",
];

/// One entry of `allow` or `deny`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HostRule {
    /// `api.example.com`: this name exactly (case and a trailing dot do not matter).
    Name(String),
    /// `*.example.com`: any name under `example.com`, at any depth, not `example.com` itself.
    Subdomains(String),
    /// `10.0.0.0/8`, `fd00::/8`, or one address (`127.0.0.1` is `127.0.0.1/32`).
    Net(ipnet::IpNet),
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error(
    "{text:?} is not a host rule: write a host name (api.example.com), *.example.com, an IP \
     address or a CIDR (10.0.0.0/8), without scheme or port"
)]
pub struct RuleError {
    text: String,
}

impl FromStr for HostRule {
    type Err = RuleError;

    fn from_str(text: &str) -> Result<HostRule, RuleError> {
        let error = || RuleError {
            text: text.to_owned(),
        };
        let trimmed = text.trim();
        let unbracketed = trimmed
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .unwrap_or(trimmed);
        if let Ok(address) = unbracketed.parse::<IpAddr>() {
            return Ok(HostRule::Net(ipnet::IpNet::from(canonical(address))));
        }
        if unbracketed.contains('/') {
            let net = unbracketed.parse::<ipnet::IpNet>().map_err(|_| error())?;
            return Ok(HostRule::Net(net.trunc()));
        }
        let name = normalize_name(trimmed);
        if let Some(domain) = name.strip_prefix("*.") {
            return if is_host_name(domain) {
                Ok(HostRule::Subdomains(domain.to_owned()))
            } else {
                Err(error())
            };
        }
        if is_host_name(&name) {
            Ok(HostRule::Name(name))
        } else {
            Err(error())
        }
    }
}

impl fmt::Display for HostRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostRule::Name(name) => f.write_str(name),
            HostRule::Subdomains(domain) => write!(f, "*.{domain}"),
            // A single address reads as itself, not as `/32`.
            HostRule::Net(net) if net.prefix_len() == net.max_prefix_len() => {
                write!(f, "{}", net.addr())
            }
            HostRule::Net(net) => write!(f, "{net}"),
        }
    }
}

impl TryFrom<String> for HostRule {
    type Error = RuleError;
    fn try_from(text: String) -> Result<HostRule, RuleError> {
        text.parse()
    }
}

impl From<HostRule> for String {
    fn from(rule: HostRule) -> String {
        rule.to_string()
    }
}

impl<'de> Deserialize<'de> for HostRule {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<HostRule, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for HostRule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl HostRule {
    fn matches_name(&self, name: &str) -> bool {
        match self {
            HostRule::Name(rule) => rule == name,
            HostRule::Subdomains(domain) => name
                .strip_suffix(domain.as_str())
                .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.')),
            HostRule::Net(_) => false,
        }
    }

    fn matches_address(&self, address: IpAddr) -> bool {
        match self {
            HostRule::Net(net) => net.contains(&address),
            _ => false,
        }
    }

    fn is_address_rule(&self) -> bool {
        matches!(self, HostRule::Net(_))
    }
}

/// Lower case, without the trailing dot of a fully qualified name (`Metadata.Google.Internal.`
/// is the same host as `metadata.google.internal`).
fn normalize_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// IPv4-mapped IPv6 addresses (`::ffff:169.254.169.254`) are the IPv4 address they carry.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_canonical(),
        v4 => v4,
    }
}

/// Why a destination is refused. Names the host and the rule; never a URL (its query or
/// user info may carry a credential).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub struct Blocked {
    /// The host as written in the URL or looked up.
    pub host: String,
    /// The address it resolved to, when the block came from resolution.
    pub address: Option<IpAddr>,
    pub reason: BlockReason,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockReason {
    /// A `deny` rule of config.toml.
    Denied(HostRule),
    /// One of [`DEFAULT_DENY`].
    DeniedByDefault(HostRule),
    /// `allow` is set and matches neither the name nor the address.
    NotAllowed,
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)?;
        if let Some(address) = self.address.filter(|a| a.to_string() != self.host) {
            write!(f, " (resolved to {address})")?;
        }
        match &self.reason {
            BlockReason::Denied(rule) => write!(f, " is blocked by http.deny {rule}"),
            BlockReason::DeniedByDefault(rule) => write!(
                f,
                " is blocked by http.deny {rule} (denied by default: link-local and cloud \
                 metadata addresses; add it to [http] allow in config.toml to reach it)"
            ),
            BlockReason::NotAllowed => write!(f, " is blocked: it is not in http.allow"),
        }
    }
}

/// The outbound policy of one process: `[http] allow` and `deny` plus [`DEFAULT_DENY`].
#[derive(Clone, Debug)]
pub struct Egress {
    allow: Vec<HostRule>,
    deny: Vec<HostRule>,
    default_deny: Vec<HostRule>,
}

impl Default for Egress {
    /// Only the default denies.
    fn default() -> Egress {
        Egress::new(Vec::new(), Vec::new())
    }
}

impl Egress {
    pub fn new(allow: Vec<HostRule>, deny: Vec<HostRule>) -> Egress {
        let default_deny = DEFAULT_DENY
            .iter()
            .filter_map(|rule| rule.parse().ok())
            .collect();
        Egress {
            allow,
            deny,
            default_deny,
        }
    }

    /// Judges a URL by its host as written: an IP literal fully, a name by its text (its
    /// addresses are judged when it resolves, by [`GuardedResolver`]).
    pub fn check_url(&self, url: &Url) -> Result<(), Blocked> {
        match url.host() {
            Some(Host::Ipv4(v4)) => self.check_resolved(&v4.to_string(), IpAddr::V4(v4)),
            Some(Host::Ipv6(v6)) => self.check_resolved(&v6.to_string(), IpAddr::V6(v6)),
            Some(Host::Domain(name)) => self.check_name(name),
            None => Ok(()),
        }
    }

    /// Judges a host name before it is looked up: `deny` and default name rules, and `allow`
    /// when it has only name rules (with address rules, the resolved address may still be
    /// allowed, so that waits for [`Egress::check_resolved`]).
    pub fn check_name(&self, host: &str) -> Result<(), Blocked> {
        let name = normalize_name(host);
        // A name that is an address in disguise (`127.0.0.1.`) is judged as the address.
        if let Ok(address) = name.parse::<IpAddr>() {
            return self.check_resolved(host, address);
        }
        let blocked = |reason| {
            Err(Blocked {
                host: host.to_owned(),
                address: None,
                reason,
            })
        };
        if let Some(rule) = self.deny.iter().find(|rule| rule.matches_name(&name)) {
            return blocked(BlockReason::Denied(rule.clone()));
        }
        let allowed = self.allow.iter().any(|rule| rule.matches_name(&name));
        if let Some(rule) = self.default_deny.iter().find(|r| r.matches_name(&name))
            && !allowed
        {
            return blocked(BlockReason::DeniedByDefault(rule.clone()));
        }
        let addresses_may_allow = self.allow.iter().any(HostRule::is_address_rule);
        if !self.allow.is_empty() && !allowed && !addresses_may_allow {
            return blocked(BlockReason::NotAllowed);
        }
        Ok(())
    }

    /// Judges one address `host` resolved to (or `host` itself, an IP literal).
    pub fn check_resolved(&self, host: &str, address: IpAddr) -> Result<(), Blocked> {
        let name = normalize_name(host);
        let address = canonical(address);
        let blocked = |reason| {
            Err(Blocked {
                host: host.to_owned(),
                address: Some(address),
                reason,
            })
        };
        if let Some(rule) = self
            .deny
            .iter()
            .find(|rule| rule.matches_name(&name) || rule.matches_address(address))
        {
            return blocked(BlockReason::Denied(rule.clone()));
        }
        let name_allowed = self.allow.iter().any(|rule| rule.matches_name(&name));
        let address_allowed = self.allow.iter().any(|rule| rule.matches_address(address));
        for rule in &self.default_deny {
            let unlocked = (rule.matches_name(&name) && !name_allowed)
                || (rule.matches_address(address) && !address_allowed);
            if unlocked {
                return blocked(BlockReason::DeniedByDefault(rule.clone()));
            }
        }
        if !self.allow.is_empty() && !name_allowed && !address_allowed {
            return blocked(BlockReason::NotAllowed);
        }
        Ok(())
    }
}

/// Finds a [`Blocked`] in an error's chain (reqwest wraps what the resolver or the redirect
/// policy returned several layers deep).
pub fn find_blocked<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e Blocked> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(blocked) = error.downcast_ref::<Blocked>() {
            return Some(blocked);
        }
        current = error.source();
    }
    None
}

/// A resolver that asks `inner` and keeps only the addresses the policy allows: a name with
/// one allowed and one denied address connects to the allowed one; a name with none left
/// fails with the first address's [`Blocked`], before any connection is attempted.
pub struct GuardedResolver {
    egress: Arc<Egress>,
    inner: Arc<dyn Resolve>,
}

impl GuardedResolver {
    pub fn new(egress: Arc<Egress>, inner: Arc<dyn Resolve>) -> GuardedResolver {
        GuardedResolver { egress, inner }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let egress = Arc::clone(&self.egress);
        // Judged by name first: a denied name is not even looked up.
        if let Err(blocked) = egress.check_name(&host) {
            return Box::pin(std::future::ready(Err(blocked.into())));
        }
        let resolving = self.inner.resolve(name);
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = resolving.await?.collect();
            let mut first_blocked = None;
            let mut kept = Vec::new();
            for address in addresses {
                match egress.check_resolved(&host, address.ip()) {
                    Ok(()) => kept.push(address),
                    Err(blocked) => {
                        first_blocked.get_or_insert(blocked);
                    }
                }
            }
            match (kept.is_empty(), first_blocked) {
                (true, Some(blocked)) => Err(blocked.into()),
                _ => Ok(Box::new(kept.into_iter()) as Addrs),
            }
        })
    }
}

/// The system's resolver (`getaddrinfo`, on tokio's blocking pool), as reqwest's own default.
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(texts: &[&str]) -> Vec<HostRule> {
        texts.iter().map(|text| text.parse().unwrap()).collect()
    }

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn rules_parse_names_wildcards_addresses_and_networks() {
        assert_eq!(
            "API.Example.com.".parse(),
            Ok(HostRule::Name("api.example.com".into()))
        );
        assert_eq!(
            "*.example.com".parse(),
            Ok(HostRule::Subdomains("example.com".into()))
        );
        assert_eq!(
            "127.0.0.1".parse::<HostRule>().unwrap().to_string(),
            "127.0.0.1"
        );
        assert_eq!("[::1]".parse::<HostRule>().unwrap().to_string(), "::1");
        // Host bits are dropped: 10.1.2.3/8 means 10.0.0.0/8.
        assert_eq!(
            "10.1.2.3/8".parse::<HostRule>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        for bad in [
            "",
            "*.",
            "10.0.0.0/33",
            "https://example.com",
            "example.com:443",
            "a..b",
            "*.*.example.com",
        ] {
            assert!(
                bad.parse::<HostRule>().is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let rule: HostRule = "*.example.com".parse().unwrap();
        assert!(rule.matches_name("a.example.com"));
        assert!(rule.matches_name("a.b.example.com"));
        assert!(!rule.matches_name("example.com"));
        assert!(!rule.matches_name("badexample.com"));
    }

    #[test]
    fn metadata_addresses_are_denied_by_default_and_private_ones_are_not() {
        let egress = Egress::default();
        let blocked = egress
            .check_url(&url("http://169.254.169.254/latest/meta-data/"))
            .unwrap_err();
        assert_eq!(
            blocked.reason,
            BlockReason::DeniedByDefault("169.254.0.0/16".parse().unwrap())
        );
        assert!(
            blocked.to_string().contains("http.deny 169.254.0.0/16"),
            "{blocked}"
        );
        for denied in [
            "http://[fe80::1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[fd00:ec2::254]/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.google.internal./",
            // WHATWG URL parsing turns the decimal form into the dotted one.
            "http://2852039166/",
        ] {
            assert!(egress.check_url(&url(denied)).is_err(), "{denied}");
        }
        for allowed in [
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://10.1.2.3/",
            "http://192.168.0.10/",
            "https://api.example.com/",
            "http://localhost/",
        ] {
            assert_eq!(egress.check_url(&url(allowed)), Ok(()), "{allowed}");
        }
    }

    #[test]
    fn a_resolved_metadata_address_is_blocked_whatever_the_name() {
        let egress = Egress::default();
        let metadata: IpAddr = "169.254.169.254".parse().unwrap();
        let blocked = egress
            .check_resolved("innocent.example.com", metadata)
            .unwrap_err();
        assert_eq!(
            blocked.to_string().split(" (denied").next().unwrap(),
            "innocent.example.com (resolved to 169.254.169.254) is blocked by http.deny 169.254.0.0/16"
        );
        // Allowing the name does not unlock the metadata address it points to.
        let egress = Egress::new(rules(&["innocent.example.com"]), Vec::new());
        assert!(
            egress
                .check_resolved("innocent.example.com", metadata)
                .is_err()
        );
        // An explicit address rule does.
        let egress = Egress::new(rules(&["169.254.169.254"]), Vec::new());
        assert_eq!(egress.check_resolved("meta", metadata), Ok(()));
    }

    #[test]
    fn allow_keeps_everything_else_out_and_deny_wins_over_allow() {
        let egress = Egress::new(
            rules(&["127.0.0.1/32", "*.example.com"]),
            rules(&["bad.example.com"]),
        );
        assert_eq!(egress.check_url(&url("http://127.0.0.1:9/")), Ok(()));
        let other = egress.check_url(&url("http://127.0.0.2:9/")).unwrap_err();
        assert_eq!(other.reason, BlockReason::NotAllowed);
        assert_eq!(
            other.to_string(),
            "127.0.0.2 is blocked: it is not in http.allow"
        );
        assert_eq!(egress.check_url(&url("https://api.example.com/")), Ok(()));
        let denied = egress
            .check_url(&url("https://bad.example.com/"))
            .unwrap_err();
        assert_eq!(
            denied.to_string(),
            "bad.example.com is blocked by http.deny bad.example.com"
        );
        // A name outside allow may still resolve into an allowed network: judged at resolution.
        assert_eq!(egress.check_url(&url("http://localhost/")), Ok(()));
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(egress.check_resolved("localhost", loopback), Ok(()));
        let elsewhere: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(egress.check_resolved("localhost", elsewhere).is_err());
        // With name rules only, a name outside them is refused before any lookup.
        let names_only = Egress::new(rules(&["api.example.com"]), Vec::new());
        assert!(names_only.check_name("other.example.com").is_err());
    }

    #[test]
    fn blocked_errors_are_found_in_a_chain() {
        #[derive(Debug, Error)]
        #[error("outer")]
        struct Outer(#[source] Blocked);
        let blocked = Egress::default()
            .check_url(&url("http://169.254.169.254/"))
            .unwrap_err();
        let outer = Outer(blocked.clone());
        assert_eq!(find_blocked(&outer), Some(&blocked));
    }
}
