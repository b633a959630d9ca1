//! Where links point and whom to believe about addresses: the public base URL (from settings,
//! never from a request's `Host` or `X-Forwarded-*` headers), the proxies whose
//! `X-Forwarded-For` is believed, and which addresses a callback may not reach.
//!
//! Pure functions of their inputs; `docs/api.md` ("Links and proxies") states the rules.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The base URL links are built from: `scheme://host[:port][/path]`, without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    /// Parses an operator's `--public-url`: http or https, a host, no credentials, query or
    /// fragment.
    pub fn parse(raw: &str) -> Result<PublicUrl, String> {
        let url = reqwest::Url::parse(raw.trim())
            .map_err(|error| format!("--public-url `{raw}` is not a URL: {error}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("--public-url `{raw}` must be http:// or https://"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("--public-url `{raw}` has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("--public-url must not carry credentials".to_owned());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "--public-url `{raw}` must not have a query or a fragment"
            ));
        }
        Ok(PublicUrl(url.as_str().trim_end_matches('/').to_owned()))
    }

    /// The URL a server listening on `address` has when none is configured: `http://` and the
    /// address, with `localhost` for an unspecified (all-interfaces) one.
    pub(crate) fn of_listener(address: SocketAddr) -> PublicUrl {
        let host = match address.ip() {
            ip if ip.is_unspecified() => "localhost".to_owned(),
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        };
        PublicUrl(format!("http://{host}:{}", address.port()))
    }

    /// The URL, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A network: an address and a prefix length (`10.0.0.0/8`, `::1/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `ADDRESS` or `ADDRESS/PREFIX`.
    pub fn parse(raw: &str) -> Result<Network, String> {
        let raw = raw.trim();
        let (address, prefix) = match raw.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (raw, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("`{raw}` is not an IP address or network"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= max)
                .ok_or_else(|| format!("`{raw}`: the prefix must be 0 to {max}"))?,
        };
        Ok(Network { address, prefix })
    }

    /// Whether `ip` is in the network.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        fn bits(ip: IpAddr) -> (u128, u8) {
            match ip {
                IpAddr::V4(ip) => (u128::from(u32::from(ip)), 32),
                IpAddr::V6(ip) => (u128::from(ip), 128),
            }
        }
        let ip = canonical(ip);
        let (network, width) = bits(self.address);
        let (candidate, candidate_width) = bits(ip);
        if width != candidate_width {
            return false;
        }
        let shift = u32::from(width - self.prefix);
        if shift >= 128 {
            return true;
        }
        (network >> shift) == (candidate >> shift)
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The proxies whose `X-Forwarded-For` is believed. Empty (the default): forwarded headers are
/// ignored and the client is the peer of the connection.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Network>);

impl TrustedProxies {
    /// From `--trusted-proxy` values (each an address or network; several may be given, or
    /// one comma-separated list).
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<TrustedProxies, String> {
        let mut networks = Vec::new();
        for value in values {
            for part in value.split(',').filter(|part| !part.trim().is_empty()) {
                networks.push(
                    Network::parse(part).map_err(|error| format!("--trusted-proxy {error}"))?,
                );
            }
        }
        Ok(TrustedProxies(networks))
    }

    /// Whether `ip` is one of the trusted proxies.
    pub(crate) fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(ip))
    }

    /// The client's address: the peer, unless the peer is a trusted proxy; then the right-most
    /// address of `X-Forwarded-For` that is not itself a trusted proxy (the last hop a trusted
    /// proxy saw). Addresses a client wrote further left are never believed.
    pub(crate) fn client(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops = forwarded_for
            .iter()
            .flat_map(|header| header.split(','))
            .map(str::trim)
            .rev();
        for hop in hops {
            match hop.parse::<IpAddr>() {
                Ok(ip) if self.trusts(ip) => continue,
                Ok(ip) => return canonical(ip),
                // A malformed hop: nothing to its left can be believed.
                Err(_) => return peer,
            }
        }
        peer
    }
}

/// Whether an address is internal: loopback, private, link-local, shared (CGNAT),
/// unspecified, multicast or broadcast — somewhere a callback from this server must not be
/// sent unless the operator allows it.
pub(crate) fn is_internal(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(ip) => internal_v4(ip),
        IpAddr::V6(ip) => internal_v6(ip),
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn public_urls_are_checked_and_trimmed() {
        assert_eq!(
            PublicUrl::parse("https://cdp.example.com/")
                .unwrap()
                .as_str(),
            "https://cdp.example.com"
        );
        assert_eq!(
            PublicUrl::parse("https://example.com/custodia/")
                .unwrap()
                .as_str(),
            "https://example.com/custodia"
        );
        for bad in [
            "ftp://x",
            "https://u:p@x",
            "https://x/?a=1",
            "not a url",
            "https://x/#f",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            PublicUrl::of_listener("0.0.0.0:8080".parse().unwrap()).as_str(),
            "http://localhost:8080"
        );
        assert_eq!(
            PublicUrl::of_listener("[::1]:9".parse().unwrap()).as_str(),
            "http://[::1]:9"
        );
    }

    #[test]
    fn networks_contain_what_their_prefix_covers() {
        let ten = Network::parse("10.0.0.0/8").unwrap();
        assert!(ten.contains(ip("10.200.1.2")));
        assert!(ten.contains(ip("::ffff:10.0.0.1")));
        assert!(!ten.contains(ip("11.0.0.1")));
        assert!(!ten.contains(ip("::1")));
        assert!(Network::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Network::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert!(Network::parse("ten").is_err());
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("10.0.0.5"), &["1.2.3.4"]), ip("10.0.0.5"));
        let proxies = TrustedProxies::parse(["10.0.0.0/8, 192.168.1.1"]).unwrap();
        // Through two trusted hops; the client's own claim further left is ignored.
        assert_eq!(
            proxies.client(ip("10.0.0.5"), &["6.6.6.6, 1.2.3.4, 192.168.1.1"]),
            ip("1.2.3.4")
        );
        // An untrusted peer's header is ignored.
        assert_eq!(proxies.client(ip("8.8.8.8"), &["1.2.3.4"]), ip("8.8.8.8"));
        assert_eq!(proxies.client(ip("10.0.0.5"), &["garbage"]), ip("10.0.0.5"));
        assert_eq!(proxies.client(ip("10.0.0.5"), &[]), ip("10.0.0.5"));
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(ip(internal)), "{internal}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "100.128.0.1"] {
            assert!(!is_internal(ip(public)), "{public}");
        }
    }
}
