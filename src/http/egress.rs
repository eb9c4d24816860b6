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

/// An IPv6 address that carries an IPv4 address is judged as that IPv4 address:
/// - IPv4-mapped, `::ffff:a.b.c.d` (`::ffff:169.254.169.254`);
/// - IPv4-compatible, `::a.b.c.d` (deprecated, RFC 4291; `::169.254.169.254`), except `::` and
///   `::1`, the unspecified and loopback IPv6 addresses, which stay themselves;
/// - NAT64 with the well-known prefix, `64:ff9b::/96` (RFC 6052; `64:ff9b::a9fe:a9fe`): on a
///   network with a NAT64 gateway, a connection to it reaches the IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = address else {
        return address;
    };
    let segments = v6.segments();
    let [a, b, c, d] = v6.octets()[12..] else {
        unreachable!("an IPv6 address has 16 octets")
    };
    let embedded = IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d));
    match segments[..6] {
        [0, 0, 0, 0, 0, 0xffff] => embedded,
        [0, 0, 0, 0, 0, 0] if u32::from_be_bytes([a, b, c, d]) > 1 => embedded,
        [0x64, 0xff9b, 0, 0, 0, 0] => embedded,
        _ => address,
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
        // The IPv4 address an IPv6 form carries is what is judged; a rule written for the IPv6
        // form itself (`64:ff9b::/96`) still matches it.
        let written = address;
        let address = canonical(address);
        let matches_either =
            |rule: &HostRule| rule.matches_address(address) || rule.matches_address(written);
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
            .find(|rule| rule.matches_name(&name) || matches_either(rule))
        {
            return blocked(BlockReason::Denied(rule.clone()));
        }
        let name_allowed = self.allow.iter().any(|rule| rule.matches_name(&name));
        // Only a rule for the address itself unlocks a default deny: allowing `64:ff9b::/96`
        // does not allow the metadata address through NAT64.
        let address_unlocked = self.allow.iter().any(|rule| rule.matches_address(address));
        for rule in &self.default_deny {
            let denied = (rule.matches_name(&name) && !name_allowed)
                || (matches_either(rule) && !address_unlocked);
            if denied {
                return blocked(BlockReason::DeniedByDefault(rule.clone()));
            }
        }
        let address_allowed = self.allow.iter().any(matches_either);
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

/// A name that did not resolve: typed, so that the HTTP error it ends up in can say "DNS lookup
/// failed" and not be retried (`super::transport`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DNS lookup failed for {host}: {reason}")]
pub struct LookupFailed {
    pub host: String,
    pub reason: String,
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
            let addresses: Vec<SocketAddr> = resolving
                .await
                .map_err(|error| LookupFailed {
                    host: host.clone(),
                    reason: error.to_string(),
                })?
                .collect();
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

    /// Issue 13, item 10: every IPv6 form that carries a denied IPv4 address is that address.
    #[test]
    fn ipv6_forms_of_an_ipv4_address_are_judged_as_it() {
        let metadata_forms = [
            "http://[::ffff:169.254.169.254]/",
            "http://[::169.254.169.254]/",
            "http://[::a9fe:a9fe]/",
            "http://[64:ff9b::169.254.169.254]/",
            "http://[64:ff9b::a9fe:a9fe]/",
        ];
        let egress = Egress::default();
        for denied in metadata_forms {
            let blocked = egress.check_url(&url(denied)).unwrap_err();
            assert_eq!(
                blocked.reason,
                BlockReason::DeniedByDefault("169.254.0.0/16".parse().unwrap()),
                "{denied}"
            );
            assert_eq!(blocked.address, Some("169.254.169.254".parse().unwrap()));
        }
        // Resolved addresses too: a name that resolves to a NAT64 form of the metadata address.
        for form in ["::169.254.169.254", "64:ff9b::a9fe:a9fe"] {
            let address: IpAddr = form.parse().unwrap();
            assert!(
                egress
                    .check_resolved("innocent.example.com", address)
                    .is_err(),
                "{form}"
            );
        }
        // A private range in deny catches its IPv6 forms; allow matches them too.
        let egress = Egress::new(Vec::new(), rules(&["10.0.0.0/8"]));
        for denied in [
            "http://[::ffff:10.1.2.3]/",
            "http://[::10.1.2.3]/",
            "http://[64:ff9b::10.1.2.3]/",
            "http://[64:ff9b::a01:203]/",
        ] {
            let blocked = egress.check_url(&url(denied)).unwrap_err();
            assert_eq!(
                blocked.reason,
                BlockReason::Denied("10.0.0.0/8".parse().unwrap()),
                "{denied}"
            );
        }
        let egress = Egress::new(rules(&["10.0.0.0/8"]), Vec::new());
        assert_eq!(
            egress.check_url(&url("http://[64:ff9b::10.1.2.3]/")),
            Ok(())
        );
        assert_eq!(egress.check_url(&url("http://[::10.1.2.3]/")), Ok(()));
        assert!(
            egress
                .check_url(&url("http://[64:ff9b::b01:203]/"))
                .is_err()
        );
        // `::1` and `::` are IPv6 loopback and unspecified, not 0.0.0.1 and 0.0.0.0; other IPv6
        // addresses are left alone.
        assert_eq!(
            canonical("::1".parse().unwrap()),
            "::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            canonical("::".parse().unwrap()),
            "::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            canonical("64:ff9b:1::a9fe:a9fe".parse().unwrap()),
            "64:ff9b:1::a9fe:a9fe".parse::<IpAddr>().unwrap()
        );
        let egress = Egress::new(rules(&["::1"]), Vec::new());
        assert_eq!(egress.check_url(&url("http://[::1]:9/")), Ok(()));
        // A rule written for the IPv6 form still matches it, and allowing the whole NAT64
        // prefix does not unlock the metadata address through it.
        let egress = Egress::new(Vec::new(), rules(&["64:ff9b::/96"]));
        assert!(
            egress
                .check_url(&url("http://[64:ff9b::a01:203]/"))
                .is_err()
        );
        let egress = Egress::new(rules(&["64:ff9b::/96"]), Vec::new());
        assert_eq!(egress.check_url(&url("http://[64:ff9b::a01:203]/")), Ok(()));
        assert!(
            egress
                .check_url(&url("http://[64:ff9b::a9fe:a9fe]/"))
                .is_err()
        );
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
