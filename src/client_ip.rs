//! Resolves the client a request comes from, for rate and in-flight keys.
//!
//! The socket peer is the client unless it is a trusted proxy. Behind a
//! trusted proxy, every `X-Forwarded-For` line, in order, forms one list
//! (a proxy may append its own line instead of extending the last one); the
//! list is walked right to left and the first hop that is not itself a
//! trusted proxy is the client. `X-Real-IP` is used only when the Gateway
//! enables it, and only when it is sent once. A trusted proxy that names no
//! usable client gets its own shared bucket rather than the proxy's address,
//! so one misconfigured proxy cannot spend every client's budget.

use std::net::{IpAddr, Ipv6Addr};

use actix_web::http::header::HeaderMap;

/// What limits are keyed by, besides the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    Ip(IpAddr),
    /// A trusted proxy sent no usable client address.
    UnknownBehindProxy,
    /// No socket peer address was available.
    Unknown,
}

impl ClientKey {
    /// The key limits count under: an IPv6 client stands for its whole
    /// `/ipv6_prefix_bits` network, since one subscriber usually holds a
    /// /64 or more and could otherwise take a fresh budget per address.
    /// IPv4 clients and the shared keys are unchanged.
    pub fn network(self, ipv6_prefix_bits: u8) -> Self {
        match self {
            ClientKey::Ip(IpAddr::V6(v6)) => {
                let host_bits = 128u32.saturating_sub(u32::from(ipv6_prefix_bits));
                let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
                ClientKey::Ip(IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)))
            }
            other => other,
        }
    }
}

/// An IP address or CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `10.0.0.1`, `10.0.0.0/8`, `::1` or `fd00::/8`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let mapped = addr.is_ipv6() && canonical(addr).is_ipv4();
        let (addr, prefix) = match (mapped, prefix) {
            // `::ffff:10.0.0.0/104` is the IPv4 block `10.0.0.0/8`.
            (true, Some(p)) if p >= 96 => (canonical(addr), Some(p - 96)),
            (true, Some(_)) => return None,
            _ => (canonical(addr), prefix),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net).into(), self.prefix, 32)
                    == masked(u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), self.prefix, 128)
                    == masked(u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        bits >> (width - prefix)
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) count as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The Gateway's proxy settings, built once at start.
#[derive(Debug, Clone, Default)]
pub struct ProxyPolicy {
    pub trusted: Vec<IpNet>,
    pub allow_real_ip_fallback: bool,
}

impl ProxyPolicy {
    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(ip))
    }

    /// The client key for a request from `peer` with these headers.
    pub fn client_key(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> ClientKey {
        let Some(peer) = peer.map(canonical) else {
            return ClientKey::Unknown;
        };
        if !self.is_trusted(peer) {
            return ClientKey::Ip(peer);
        }
        if let Some(ip) = self.forwarded_client(headers) {
            return ClientKey::Ip(ip);
        }
        if self.allow_real_ip_fallback {
            // Two lines mean someone besides the proxy set one: neither is
            // believed.
            let mut lines = headers.get_all("x-real-ip");
            let real = match (lines.next(), lines.next()) {
                (Some(only), None) => only.to_str().ok().and_then(parse_hop),
                _ => None,
            };
            if let Some(ip) = real.filter(|ip| !self.is_trusted(*ip)) {
                return ClientKey::Ip(ip);
            }
        }
        ClientKey::UnknownBehindProxy
    }

    /// The client named by `X-Forwarded-For`, read as one list made of all
    /// its lines in order. Walking from the right, trusted proxies are
    /// passed and the first other address is the client. Empty elements
    /// are skipped. An element that is not an address, or a line that is
    /// not text, ends the walk with no client: everything to its left was
    /// written by whoever wrote it, and believing it would let that sender
    /// choose its own key.
    fn forwarded_client(&self, headers: &HeaderMap) -> Option<IpAddr> {
        for line in headers.get_all("x-forwarded-for").rev() {
            let text = line.to_str().ok()?;
            for element in text.rsplit(',') {
                if element.trim().is_empty() {
                    continue;
                }
                let ip = parse_hop(element)?;
                if !self.is_trusted(ip) {
                    return Some(ip);
                }
            }
        }
        None
    }
}

/// One `X-Forwarded-For` element: an IP literal, optionally with a port
/// (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(raw: &str) -> Option<IpAddr> {
    let s = raw.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (host, _) = rest.split_once(']')?;
        return host.parse::<IpAddr>().ok().map(canonical);
    }
    let (host, port) = s.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::test_headers as headers;

    fn policy(trusted: &[&str], real_ip: bool) -> ProxyPolicy {
        ProxyPolicy {
            trusted: trusted.iter().map(|s| IpNet::parse(s).unwrap()).collect(),
            allow_real_ip_fallback: real_ip,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_blocks_match_their_members_only() {
        let net = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")));
        assert!(IpNet::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(IpNet::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(IpNet::parse("10.0.0.0/33").is_none());
        let mapped = IpNet::parse("::ffff:10.0.0.0/104").unwrap();
        assert!(mapped.contains(ip("10.200.0.1")));
        assert!(!mapped.contains(ip("11.0.0.1")));
        assert!(IpNet::parse("::ffff:10.0.0.0/64").is_none());
        assert!(IpNet::parse("nope").is_none());
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let p = policy(&["10.0.0.1"], false);
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            p.client_key(Some(ip("9.9.9.9")), &h),
            ClientKey::Ip(ip("9.9.9.9"))
        );
    }

    #[test]
    fn forwarded_hops_are_walked_right_to_left_past_trusted_proxies() {
        let p = policy(&["10.0.0.0/8"], false);
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4:999, 10.0.0.7")]);
        assert_eq!(
            p.client_key(Some(ip("10.0.0.1")), &h),
            ClientKey::Ip(ip("1.2.3.4"))
        );
    }

    #[test]
    fn a_trusted_proxy_without_a_usable_hop_gets_the_shared_unknown_bucket() {
        let p = policy(&["127.0.0.1"], false);
        let h = headers(&[("x-forwarded-for", "garbage"), ("x-real-ip", "5.5.5.5")]);
        assert_eq!(
            p.client_key(Some(ip("127.0.0.1")), &h),
            ClientKey::UnknownBehindProxy
        );
        let with_real_ip = policy(&["127.0.0.1"], true);
        assert_eq!(
            with_real_ip.client_key(Some(ip("127.0.0.1")), &h),
            ClientKey::Ip(ip("5.5.5.5"))
        );
    }

    #[test]
    fn every_forwarded_line_is_one_list_read_from_the_right() {
        let p = policy(&["10.0.0.0/8"], false);
        let proxy = Some(ip("10.0.0.1"));
        // The client forged the first line; the proxy added its own.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "1.2.3.4"),
        ]);
        assert_eq!(p.client_key(proxy, &h), ClientKey::Ip(ip("1.2.3.4")));
        // Trusted hops are passed across line boundaries; empty elements
        // are skipped.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 1.2.3.4"),
            ("x-forwarded-for", "10.0.0.7,,"),
            ("x-forwarded-for", " , 10.0.0.8"),
        ]);
        assert_eq!(p.client_key(proxy, &h), ClientKey::Ip(ip("1.2.3.4")));
    }

    #[test]
    fn an_unreadable_forwarded_element_ends_the_walk_without_a_client() {
        let p = policy(&["10.0.0.0/8"], false);
        let proxy = Some(ip("10.0.0.1"));
        for right in ["unknown", "1.2.3.4.5", "_hidden"] {
            let h = headers(&[("x-forwarded-for", &format!("6.6.6.6, {right}"))]);
            assert_eq!(
                p.client_key(proxy, &h),
                ClientKey::UnknownBehindProxy,
                "{right}"
            );
            let h = headers(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", right)]);
            assert_eq!(
                p.client_key(proxy, &h),
                ClientKey::UnknownBehindProxy,
                "{right} on its own line"
            );
        }
    }

    #[test]
    fn a_real_ip_sent_twice_is_not_believed() {
        let p = policy(&["127.0.0.1"], true);
        let proxy = Some(ip("127.0.0.1"));
        let once = headers(&[("x-real-ip", "5.5.5.5")]);
        assert_eq!(p.client_key(proxy, &once), ClientKey::Ip(ip("5.5.5.5")));
        let twice = headers(&[("x-real-ip", "6.6.6.6"), ("x-real-ip", "5.5.5.5")]);
        assert_eq!(p.client_key(proxy, &twice), ClientKey::UnknownBehindProxy);
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_network() {
        let key = |s: &str| ClientKey::Ip(ip(s));
        assert_eq!(
            key("2001:db8:1:2:aaaa::1").network(64),
            key("2001:db8:1:2::")
        );
        assert_eq!(
            key("2001:db8:1:2:aaaa::1").network(64),
            key("2001:db8:1:2:ffff:ffff:ffff:ffff").network(64)
        );
        assert_ne!(
            key("2001:db8:1:2::1").network(64),
            key("2001:db8:1:3::1").network(64)
        );
        assert_eq!(key("2001:db8:1:2::1").network(48), key("2001:db8:1::"));
        assert_eq!(key("2001:db8::1").network(128), key("2001:db8::1"));
        assert_eq!(key("2001:db8::1").network(0), key("::"));
        assert_eq!(key("192.0.2.7").network(64), key("192.0.2.7"));
        assert_eq!(ClientKey::Unknown.network(64), ClientKey::Unknown);
    }
}
