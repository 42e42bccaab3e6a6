//! Source-address allowlists: validated CIDR blocks (IPv4 and IPv6) and the test of a
//! request's source address against every allowlist that applies to it.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// At most this many blocks per allowlist (they go into session policies too).
pub const MAX_CIDRS: usize = 32;

/// A network block: an address and a prefix length, with the host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// An IPv4-mapped IPv6 address as its IPv4 address; anything else as it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

fn mask(prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        let full = if width == 32 {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        full & !((1u128 << (width - prefix)) - 1)
    }
}

impl Cidr {
    /// `10.0.0.0/8`, `2001:db8::/32`, or one address (`/32`, `/128`). Host bits must be
    /// zero, so a typo cannot silently widen the block.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR block"))?;
        let addr = canonical(addr);
        let (value, width) = bits(addr);
        let prefix = match prefix {
            None => width,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {width}"))?,
        };
        if value & !mask(prefix, width) != 0 {
            return Err(format!(
                "{s:?} has host bits set: write the network address of the /{prefix}"
            ));
        }
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` is inside the block (an IPv4-mapped IPv6 address counts as IPv4).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (net, width) = bits(self.addr);
        let (v, w) = bits(canonical(ip));
        w == width && (v & mask(self.prefix, width)) == net
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Parses an allowlist from a request (`field` names it in the error).
pub fn parse_list(field: &str, items: &[String]) -> Result<Vec<Cidr>, Error> {
    if items.len() > MAX_CIDRS {
        return Err(Error::invalid(
            field,
            format!("{field} may hold at most {MAX_CIDRS} blocks"),
        ));
    }
    let mut out = items
        .iter()
        .map(|s| Cidr::parse(s).map_err(|e| Error::invalid(field, e)))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by_key(ToString::to_string);
    out.dedup();
    Ok(out)
}

/// Whether `source` (the request's address as the server determined it) is inside every
/// non-empty list. An unknown source passes only when no list applies.
#[must_use]
pub fn admitted(source: Option<&str>, lists: &[&[Cidr]]) -> bool {
    let applicable: Vec<&[Cidr]> = lists.iter().copied().filter(|l| !l.is_empty()).collect();
    if applicable.is_empty() {
        return true;
    }
    let Some(ip) = source.and_then(|s| s.parse::<IpAddr>().ok()) else {
        return false;
    };
    applicable
        .iter()
        .all(|list| list.iter().any(|c| c.contains(ip)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn blocks_parse_and_contain() {
        let v4 = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(v4.contains("10.1.2.3".parse().unwrap()));
        assert!(v4.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!v4.contains("10.2.0.1".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert!(!v6.contains("10.1.2.3".parse().unwrap()));
        assert_eq!(
            Cidr::parse("192.0.2.7").unwrap().to_string(),
            "192.0.2.7/32"
        );
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        for bad in [
            "10.1.2.3/16",
            "10.0.0.0/33",
            "nope",
            "::/129",
            "1.2.3.4/x",
            "",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_applicable_list_must_admit() {
        let a = [Cidr::parse("10.0.0.0/8").unwrap()];
        let b = [Cidr::parse("10.1.0.0/16").unwrap()];
        assert!(admitted(Some("10.1.0.1"), &[&a, &b]));
        assert!(!admitted(Some("10.2.0.1"), &[&a, &b]));
        assert!(admitted(None, &[&[], &[]]));
        assert!(!admitted(None, &[&a]));
        assert!(!admitted(Some("unknown"), &[&a]));
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,60}") {
            let _ = Cidr::parse(&s);
        }

        #[test]
        fn a_block_contains_its_own_addresses(a in any::<u32>(), p in 0u8..=32) {
            let net = u32::try_from(u128::from(a) & mask(p, 32)).unwrap();
            let c = Cidr::parse(&format!("{}/{p}", std::net::Ipv4Addr::from(net))).unwrap();
            prop_assert!(c.contains(IpAddr::V4(std::net::Ipv4Addr::from(a))));
        }
    }
}
