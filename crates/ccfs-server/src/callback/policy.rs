//! Which addresses callbacks may go to (`callback_deny`, `callback_allow`).
//!
//! A callBackURL is chosen by the client, so without a policy the server POSTs, signed, to
//! whatever it names: its own admin ports, a cloud metadata service. The policy is applied to
//! the address actually connected to (see [`super::client`]), never only to the URL's text, so
//! a host name that resolves to a refused address is refused too.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// A network in CIDR form (`10.0.0.0/8`, `fe80::/10`; a bare address is a network of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Network(IpNet);

impl Network {
    fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip)
    }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        s.parse::<IpNet>()
            .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
            .map(|net| Network(net.trunc()))
            .map_err(|_| {
                format!("'{s}' is not a network: write ADDRESS/PREFIX, e.g. \"10.0.0.0/8\" or \"fd00::/8\"")
            })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Network {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Networks no callback goes to unless `callback_allow` names them: link-local (cloud metadata
/// services answer there), "this network" and unspecified (connecting to 0.0.0.0 reaches the
/// host itself), multicast and broadcast.
const ALWAYS_REFUSED: &[&str] = &[
    "169.254.0.0/16",
    "fe80::/10",
    "0.0.0.0/8",
    "::/128",
    "224.0.0.0/4",
    "ff00::/8",
    "255.255.255.255/32",
];

/// The callback address policy: an address is refused when it lies in an always-refused
/// network or in `callback_deny`, unless it lies in `callback_allow` (the exception wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPolicy {
    deny: Vec<Network>,
    allow: Vec<Network>,
}

impl AddressPolicy {
    pub fn new(deny: &[Network], allow: &[Network]) -> Self {
        let mut all: Vec<Network> = ALWAYS_REFUSED
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        all.extend_from_slice(deny);
        Self {
            deny: all,
            allow: allow.to_vec(),
        }
    }

    /// Whether a callback may connect to `ip`. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`)
    /// is judged as the IPv4 address it carries, which is where the connection goes.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.allow.iter().any(|n| n.contains(ip)) || !self.deny.iter().any(|n| n.contains(ip))
    }

    /// `Err` with the reason a client reads in `lastError` when `ip` is refused.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        if self.allows(ip) {
            Ok(())
        } else {
            Err(Refused(ip.to_canonical()))
        }
    }
}

/// An address the policy refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the receiver's address {0} is refused by the callback address policy \
     (callback_deny/callback_allow)"
)]
pub struct Refused(pub IpAddr);

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<Network> {
        list.iter().map(|s| s.parse().expect("network")).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn networks_parse_and_print() {
        for (text, shown) in [
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("10.1.2.3/8", "10.0.0.0/8"),
            (" 127.0.0.1 ", "127.0.0.1/32"),
            ("::1", "::1/128"),
            ("fd00::/8", "fd00::/8"),
        ] {
            let n: Network = text.parse().expect(text);
            assert_eq!(n.to_string(), shown, "{text}");
        }
        for bad in ["", "10.0.0.0/33", "localhost", "10.0.0/8", "::1/129"] {
            let e = bad.parse::<Network>().unwrap_err();
            assert!(e.contains("ADDRESS/PREFIX"), "{bad}: {e}");
        }
    }

    #[test]
    fn by_default_loopback_and_private_pass_and_the_rest_of_the_list_is_refused() {
        let p = AddressPolicy::new(&[], &[]);
        for ok in [
            "127.0.0.1",
            "::1",
            "10.1.2.3",
            "192.168.0.9",
            "172.16.5.5",
            "fd12::1",
            "93.184.216.34",
            "2001:db8::1",
        ] {
            assert!(p.allows(ip(ok)), "{ok}");
        }
        for refused in [
            "169.254.169.254",
            "fe80::1",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "239.255.255.250",
            "ff02::1",
            "255.255.255.255",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
        ] {
            assert!(!p.allows(ip(refused)), "{refused}");
        }
        assert_eq!(
            p.check(ip("::ffff:169.254.169.254"))
                .unwrap_err()
                .to_string(),
            "the receiver's address 169.254.169.254 is refused by the callback address policy \
             (callback_deny/callback_allow)"
        );
    }

    #[test]
    fn deny_adds_and_allow_is_an_exception_that_wins() {
        let p = AddressPolicy::new(&nets(&["127.0.0.0/8", "::1/128"]), &[]);
        assert!(!p.allows(ip("127.0.0.1")));
        assert!(!p.allows(ip("::ffff:127.0.0.1")), "mapped as its IPv4");
        assert!(!p.allows(ip("::1")));
        assert!(p.allows(ip("10.0.0.1")));

        // An allow-list: everything denied but one network, and an exception to the defaults.
        let p = AddressPolicy::new(
            &nets(&["0.0.0.0/0", "::/0"]),
            &nets(&["10.20.0.0/16", "169.254.10.1"]),
        );
        assert!(p.allows(ip("10.20.3.4")));
        assert!(p.allows(ip("::ffff:10.20.3.4")));
        assert!(!p.allows(ip("10.21.0.1")));
        assert!(!p.allows(ip("8.8.8.8")));
        assert!(!p.allows(ip("2001:db8::1")));
        assert!(p.allows(ip("169.254.10.1")), "allow wins over the defaults");
        assert!(!p.allows(ip("169.254.169.254")));
    }
}
