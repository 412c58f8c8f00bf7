//! Outbound HTTP (`wasi:http`): the policy a module's requests go through.
//!
//! The embedding host hands the runtime an [`OutboundPolicy`] per call
//! ([`super::Capabilities::outbound_http`]); the runtime knows nothing of
//! tenants or settings. A request is sent only when
//! * its scheme, host and port match one of the manifest's
//!   `allowed_outbound_hosts` ([`HostPattern`], Spin's syntax), and
//! * every address it is sent to is public — or the administrator allowed
//!   private addresses for that host ([`OutboundPolicy::private_hosts`]).
//!
//! The address is checked after DNS resolution, and the connection is made
//! to exactly the checked address, so a name that resolves to a public
//! address for the check and to `127.0.0.1` for the connection (DNS
//! rebinding) cannot reach the host's own network. How the request is sent
//! lives in [`super::http_send`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// The start of the `internal-error` message a refused request fails with,
/// so the guest SDK can tell a refusal (`HttpError::Denied`) from a
/// network failure.
pub const DENIED_PREFIX: &str = "outbound request denied: ";

/// What the host allows one module's outbound requests in one call.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    /// The manifest's `allowed_outbound_hosts`: a request must match one.
    pub allowed: Vec<HostPattern>,
    /// Set by an administrator: requests matching one of these may go to
    /// private, loopback and link-local addresses (a Proxmox host on the
    /// LAN). Without a match such addresses are refused (SSRF).
    pub private_hosts: Vec<HostPattern>,
    /// Set by an administrator: requests matching one of these do not check
    /// the server's TLS certificate (self-signed Proxmox or Plesk hosts).
    pub insecure_tls_hosts: Vec<HostPattern>,
    /// Timeouts and the response size cap.
    pub limits: OutboundLimits,
}

/// Bounds of one outbound request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundLimits {
    /// Resolving and connecting, together.
    pub connect_timeout: Duration,
    /// The whole request: connecting, TLS, headers and reading the body.
    /// The call's own deadline still applies and is often shorter.
    pub request_timeout: Duration,
    /// Largest response body a module may read, in bytes.
    pub max_response_bytes: u64,
}

impl Default for OutboundLimits {
    fn default() -> Self {
        OutboundLimits {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_response_bytes: 4 * 1024 * 1024,
        }
    }
}

impl OutboundPolicy {
    /// Whether the manifest allows `target`.
    pub fn allows(&self, target: &Target) -> bool {
        self.allowed.iter().any(|p| p.matches(target))
    }

    /// Whether an administrator allowed `target` to reach private addresses.
    pub fn allows_private(&self, target: &Target) -> bool {
        self.private_hosts.iter().any(|p| p.matches(target))
    }

    /// Whether an administrator turned TLS verification off for `target`.
    pub fn skips_tls_verification(&self, target: &Target) -> bool {
        self.insecure_tls_hosts.iter().any(|p| p.matches(target))
    }

    /// Whether a request to `target` may connect to `ip`: `Err` says why not.
    pub fn check_address(&self, target: &Target, ip: IpAddr) -> Result<(), String> {
        match AddressClass::of(ip) {
            AddressClass::Public => Ok(()),
            class if class.never_allowed() => Err(format!(
                "{target} resolves to {ip}, a {class} address, which is never reachable"
            )),
            _ if self.allows_private(target) => Ok(()),
            class => Err(format!(
                "{target} resolves to {ip}, a {class} address; an administrator must allow \
                 private addresses for this host (PUT /api/v1/modules/{{id}}/outbound, `private_hosts`)"
            )),
        }
    }
}

/// Where a request goes: scheme, host and port, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `http` or `https`.
    pub scheme: String,
    /// Lower-case name without a trailing dot, or an IP address (IPv6
    /// without brackets).
    pub host: String,
    /// The port, the scheme's default when the URL names none.
    pub port: u16,
}

impl Target {
    /// The target of `uri`; `Err` names what is missing.
    pub fn from_uri(uri: &http::Uri) -> Result<Target, String> {
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            other => return Err(format!("the scheme `{other}` is not supported")),
        };
        let host = uri.host().ok_or("the URL has no host")?;
        let host = normalise_host(host);
        if host.is_empty() {
            return Err("the URL has no host".into());
        }
        Ok(Target {
            scheme,
            host,
            port: uri.port_u16().unwrap_or(default_port),
        })
    }

    /// The host as an IP address, when it is one (IPv4-mapped IPv6
    /// addresses as IPv4).
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

fn normalise_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// One entry of `allowed_outbound_hosts` (or of an administrator's list),
/// in Spin's syntax: `scheme://host[:port]`.
///
/// * scheme: `http`, `https` or `*`;
/// * host: a name (`api.example.com`), `*.example.com` (any subdomain, not
///   `example.com` itself), `*` (any host), an IPv4 address or a bracketed
///   IPv6 address (`[fd00::1]`);
/// * port: a number, a range `8000..8010` (end excluded, as in Spin), or
///   `*`; without one, the default port of the request's scheme.
///
/// No path, query or user info: the allow-list is about where a module may
/// connect, not what it asks there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    text: String,
    scheme: Option<String>,
    host: HostMatch,
    port: PortMatch,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Any,
    Subdomains(String),
    Name(String),
    Ip(IpAddr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortMatch {
    Default,
    Any,
    Range(u16, u16),
}

impl HostPattern {
    /// Parse one pattern; `Err` says what is wrong and shows the form.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        const FORM: &str =
            "expected `scheme://host[:port]`, e.g. `https://*.example.com:8006` or `http://10.0.0.5`";
        let trimmed = text.trim();
        let (scheme, rest) = trimmed
            .split_once("://")
            .ok_or_else(|| format!("`{text}` has no scheme; {FORM}"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "*" => None,
            s @ ("http" | "https") => Some(s.to_string()),
            other => {
                return Err(format!(
                    "`{text}`: the scheme `{other}` is not supported (http, https or *)"
                ))
            }
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "`{text}` names a path, query or user; a pattern is only scheme, host and port"
            ));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (addr, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("`{text}`: `[` without `]`; {FORM}"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("`{text}`: expected `:port` after `]`"))?,
                ),
            };
            let ip: Ipv6Addr = addr
                .parse()
                .map_err(|_| format!("`{text}`: `{addr}` is not an IPv6 address"))?;
            (HostMatch::Ip(IpAddr::V6(ip).to_canonical()), port)
        } else {
            let (host, port) = match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            };
            (parse_host(text, host)?, port)
        };
        let port = match port {
            None => PortMatch::Default,
            Some("*") => PortMatch::Any,
            Some(p) => match p.split_once("..") {
                Some((from, to)) => {
                    let (from, to) = (parse_port(text, from)?, parse_port(text, to)?);
                    if from >= to {
                        return Err(format!("`{text}`: the port range `{p}` is empty"));
                    }
                    PortMatch::Range(from, to - 1)
                }
                None => {
                    let p = parse_port(text, p)?;
                    PortMatch::Range(p, p)
                }
            },
        };
        Ok(HostPattern {
            text: trimmed.to_string(),
            scheme,
            host,
            port,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether a request to `target` matches.
    pub fn matches(&self, target: &Target) -> bool {
        if self.scheme.as_ref().is_some_and(|s| *s != target.scheme) {
            return false;
        }
        let port_ok = match self.port {
            PortMatch::Any => true,
            PortMatch::Range(from, to) => (from..=to).contains(&target.port),
            PortMatch::Default => {
                target.port
                    == match target.scheme.as_str() {
                        "http" => 80,
                        _ => 443,
                    }
            }
        };
        if !port_ok {
            return false;
        }
        match (&self.host, target.ip()) {
            (HostMatch::Any, _) => true,
            (HostMatch::Ip(want), Some(ip)) => *want == ip,
            (HostMatch::Ip(_), None) => false,
            (HostMatch::Name(_) | HostMatch::Subdomains(_), Some(_)) => false,
            (HostMatch::Name(name), None) => *name == target.host,
            (HostMatch::Subdomains(suffix), None) => target
                .host
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_host(text: &str, host: &str) -> Result<HostMatch, String> {
    let host = normalise_host(host);
    if host == "*" {
        return Ok(HostMatch::Any);
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(HostMatch::Ip(IpAddr::V4(ip)));
    }
    let (subdomains, name) = match host.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, host.as_str()),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "`{text}`: `{host}` is not a host name (`*` only as the whole host or as `*.` in front)"
        ));
    }
    Ok(if subdomains {
        HostMatch::Subdomains(name.to_string())
    } else {
        HostMatch::Name(name.to_string())
    })
}

fn parse_port(text: &str, port: &str) -> Result<u16, String> {
    port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
        format!("`{text}`: `{port}` is not a port (1 to 65535, a range `a..b`, or `*`)")
    })
}

/// What kind of network an address is on, for the SSRF check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Reachable on the internet: allowed.
    Public,
    /// This machine (`127.0.0.0/8`, `::1`).
    Loopback,
    /// A private network (`10/8`, `172.16/12`, `192.168/16`).
    Private,
    /// Link-local (`169.254/16` — cloud metadata services — and `fe80::/10`).
    LinkLocal,
    /// Carrier-grade NAT (`100.64/10`).
    SharedNat,
    /// IPv6 unique local (`fc00::/7`).
    UniqueLocal,
    /// Documentation, benchmarking, protocol-assignment and reserved ranges.
    Reserved,
    /// `0.0.0.0` / `::` — on Linux, a connection to it reaches this machine.
    Unspecified,
    /// Multicast and broadcast: no HTTP server answers there.
    Multicast,
}

impl AddressClass {
    /// The class of `ip`. IPv6 addresses that carry an IPv4 address
    /// (IPv4-mapped, IPv4-compatible, NAT64, 6to4) are classed by it, so
    /// `::ffff:127.0.0.1` counts as loopback.
    pub fn of(ip: IpAddr) -> AddressClass {
        match ip {
            IpAddr::V4(v4) => v4_class(v4),
            IpAddr::V6(v6) => v6_class(v6),
        }
    }

    /// Classes no administrator setting opens: they never name an HTTP
    /// server a module should reach.
    pub fn never_allowed(self) -> bool {
        matches!(self, AddressClass::Unspecified | AddressClass::Multicast)
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::SharedNat => "shared (carrier-grade NAT)",
            AddressClass::UniqueLocal => "unique local (IPv6 private)",
            AddressClass::Reserved => "reserved",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Multicast => "multicast or broadcast",
        })
    }
}

fn v4_class(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        _ if ip.is_unspecified() => AddressClass::Unspecified,
        (0, _, _) => AddressClass::Reserved,
        (127, _, _) => AddressClass::Loopback,
        (10, _, _) | (192, 168, _) => AddressClass::Private,
        (172, 16..=31, _) => AddressClass::Private,
        (169, 254, _) => AddressClass::LinkLocal,
        (100, 64..=127, _) => AddressClass::SharedNat,
        (192, 0, 0) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => AddressClass::Reserved,
        (198, 18..=19, _) => AddressClass::Reserved,
        _ if ip.is_broadcast() || ip.is_multicast() => AddressClass::Multicast,
        (240..=255, _, _) => AddressClass::Reserved,
        _ => AddressClass::Public,
    }
}

fn v6_class(ip: Ipv6Addr) -> AddressClass {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_class(v4);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from(((hi as u32) << 16) | lo as u32);
    match s {
        _ if ip.is_unspecified() => AddressClass::Unspecified,
        _ if ip.is_loopback() => AddressClass::Loopback,
        // IPv4-compatible (deprecated) `::a.b.c.d`.
        [0, 0, 0, 0, 0, 0, hi, lo] => v4_class(embedded(hi, lo)),
        // NAT64 `64:ff9b::a.b.c.d`: the gateway connects to the IPv4 address.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => v4_class(embedded(hi, lo)),
        // 6to4 `2002:aabb:ccdd::`.
        [0x2002, hi, lo, ..] => v4_class(embedded(hi, lo)),
        _ if s[0] & 0xff00 == 0xff00 => AddressClass::Multicast,
        _ if s[0] & 0xfe00 == 0xfc00 => AddressClass::UniqueLocal,
        _ if s[0] & 0xffc0 == 0xfe80 => AddressClass::LinkLocal,
        // Site-local (deprecated, still routed as private by some networks).
        _ if s[0] & 0xffc0 == 0xfec0 => AddressClass::UniqueLocal,
        // Documentation `2001:db8::/32`, discard `100::/64`, NAT64 local use
        // `64:ff9b:1::/48`, Teredo `2001::/32` (tunnels to IPv4 we cannot check).
        [0x2001, 0xdb8, ..] | [0x100, 0, 0, 0, ..] | [0x64, 0xff9b, 1, ..] | [0x2001, 0, ..] => {
            AddressClass::Reserved
        }
        _ => AddressClass::Public,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Target {
        Target::from_uri(&url.parse().unwrap()).unwrap()
    }

    fn matches(pattern: &str, url: &str) -> bool {
        HostPattern::parse(pattern).unwrap().matches(&target(url))
    }

    #[test]
    fn patterns_match_scheme_host_and_port_as_spin_does() {
        assert!(matches(
            "https://*.example.com:8006",
            "https://pve.example.com:8006/api2"
        ));
        assert!(matches(
            "https://*.example.com:8006",
            "https://a.b.example.com:8006"
        ));
        assert!(!matches(
            "https://*.example.com:8006",
            "https://example.com:8006"
        ));
        assert!(!matches(
            "https://*.example.com:8006",
            "https://badexample.com:8006"
        ));
        assert!(!matches(
            "https://*.example.com:8006",
            "http://pve.example.com:8006"
        ));
        assert!(!matches(
            "https://*.example.com:8006",
            "https://pve.example.com"
        ));
        assert!(matches(
            "https://api.example.com",
            "https://API.example.com./v1"
        ));
        assert!(!matches(
            "https://api.example.com",
            "https://api.example.com:444"
        ));
        assert!(matches("*://api.example.com", "http://api.example.com"));
        assert!(matches("*://api.example.com", "https://api.example.com"));
        assert!(!matches(
            "*://api.example.com",
            "http://api.example.com:443"
        ));
        assert!(matches("http://127.0.0.1:*", "http://127.0.0.1:39211/x"));
        assert!(matches(
            "http://10.0.0.5:8000..8010",
            "http://10.0.0.5:8009"
        ));
        assert!(!matches(
            "http://10.0.0.5:8000..8010",
            "http://10.0.0.5:8010"
        ));
        assert!(matches("https://*", "https://anything.example"));
        assert!(matches("http://[::1]:8080", "http://[::1]:8080"));
        // An IPv4-mapped IPv6 address is the IPv4 address it carries.
        assert!(matches(
            "http://127.0.0.1:*",
            "http://[::ffff:127.0.0.1]:80"
        ));
        // A name never matches an address pattern, nor the other way round.
        assert!(!matches("http://127.0.0.1:*", "http://localhost:80"));
        assert!(!matches("http://localhost:*", "http://127.0.0.1:80"));
    }

    #[test]
    fn bad_patterns_are_refused_saying_what_is_wrong() {
        for (pattern, says) in [
            ("example.com", "has no scheme"),
            ("ftp://example.com", "scheme `ftp`"),
            ("https://example.com/api", "path"),
            ("https://user@example.com", "path, query or user"),
            ("https://ex*ample.com", "not a host name"),
            ("https://*.*.example.com", "not a host name"),
            ("https://", "not a host name"),
            ("https://example.com:0", "not a port"),
            ("https://example.com:99999", "not a port"),
            ("https://example.com:9..9", "empty"),
            ("https://[::1", "without `]`"),
            ("https://[zz::1]:80", "not an IPv6 address"),
        ] {
            let e = HostPattern::parse(pattern).unwrap_err();
            assert!(e.contains(says), "{pattern}: {e}");
        }
        assert_eq!(
            HostPattern::parse(" https://x.example.com/ ")
                .unwrap()
                .as_str(),
            "https://x.example.com/"
        );
    }

    #[test]
    fn private_loopback_and_link_local_addresses_of_both_families_are_classed() {
        let class = |s: &str| AddressClass::of(s.parse().unwrap());
        for (ip, want) in [
            ("8.8.8.8", AddressClass::Public),
            ("2a00:1450:4001::1", AddressClass::Public),
            ("127.0.0.1", AddressClass::Loopback),
            ("127.255.0.9", AddressClass::Loopback),
            ("::1", AddressClass::Loopback),
            ("10.1.2.3", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("172.31.255.255", AddressClass::Private),
            ("192.168.1.1", AddressClass::Private),
            ("169.254.169.254", AddressClass::LinkLocal),
            ("fe80::1", AddressClass::LinkLocal),
            ("100.100.0.1", AddressClass::SharedNat),
            ("fd00::1", AddressClass::UniqueLocal),
            ("fc00::1", AddressClass::UniqueLocal),
            ("::ffff:127.0.0.1", AddressClass::Loopback),
            ("::ffff:10.0.0.1", AddressClass::Private),
            ("::ffff:169.254.169.254", AddressClass::LinkLocal),
            ("::127.0.0.1", AddressClass::Loopback),
            ("64:ff9b::a9fe:a9fe", AddressClass::LinkLocal),
            ("2002:7f00:1::", AddressClass::Loopback),
            ("0.0.0.0", AddressClass::Unspecified),
            ("::", AddressClass::Unspecified),
            ("224.0.0.1", AddressClass::Multicast),
            ("255.255.255.255", AddressClass::Multicast),
            ("ff02::1", AddressClass::Multicast),
            ("192.0.2.1", AddressClass::Reserved),
            ("2001:db8::1", AddressClass::Reserved),
        ] {
            assert_eq!(class(ip), want, "{ip}");
        }
        assert_eq!(class("172.32.0.1"), AddressClass::Public);
        assert_eq!(class("100.128.0.1"), AddressClass::Public);
    }

    #[test]
    fn private_addresses_need_the_administrators_opt_in_for_that_host() {
        let policy = OutboundPolicy {
            allowed: vec![HostPattern::parse("http://*:*").unwrap()],
            private_hosts: vec![HostPattern::parse("http://pve.lan:8006").unwrap()],
            ..Default::default()
        };
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let e = policy
            .check_address(&target("http://evil.example:8006"), loopback)
            .unwrap_err();
        assert!(e.contains("a loopback address"), "{e}");
        assert!(e.contains("private_hosts"), "{e}");
        policy
            .check_address(&target("http://pve.lan:8006"), loopback)
            .unwrap();
        let e = policy
            .check_address(&target("http://pve.lan:8006"), "0.0.0.0".parse().unwrap())
            .unwrap_err();
        assert!(e.contains("never reachable"), "{e}");
        policy
            .check_address(
                &target("http://evil.example:80"),
                "93.184.215.14".parse().unwrap(),
            )
            .unwrap();
    }
}
