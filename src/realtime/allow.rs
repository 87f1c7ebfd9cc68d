//! `[realtime] allowFrom`: which peers may connect to a listening feed.
//!
//! Pure. Entries are addresses or CIDR ranges of IPv4 or IPv6; an IPv4
//! peer that reaches a dual-stack socket as `::ffff:a.b.c.d` is matched as
//! the IPv4 address it is.

use std::net::IpAddr;

use ipnet::IpNet;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    /// Empty: everyone may connect (the firewall decides, as for the
    /// original).
    ranges: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is neither an IP address nor a CIDR range (e.g. 10.1.2.3 or 10.1.0.0/16)")]
pub struct AllowEntryError(pub String);

impl AllowList {
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, AllowEntryError> {
        let ranges = entries
            .iter()
            .map(|entry| {
                let entry = entry.as_ref().trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| AllowEntryError(entry.to_owned()))
            })
            .collect::<Result<_, _>>()?;
        Ok(AllowList { ranges })
    }

    pub fn is_open(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn allows(&self, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        self.is_open() || self.ranges.iter().any(|range| range.contains(&peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_and_ranges_of_both_families() {
        let list = AllowList::parse(&["10.1.2.3", "192.168.0.0/16", "fd00::/8"]).unwrap();
        assert!(list.allows(ip("10.1.2.3")));
        assert!(!list.allows(ip("10.1.2.4")));
        assert!(list.allows(ip("192.168.77.1")));
        assert!(list.allows(ip("fd12::1")));
        assert!(!list.allows(ip("::1")));
        assert!(
            list.allows(ip("::ffff:10.1.2.3")),
            "v4-mapped is matched as v4"
        );
    }

    #[test]
    fn an_empty_list_allows_everyone_and_a_bad_entry_is_named() {
        assert!(AllowList::parse::<&str>(&[]).unwrap().allows(ip("8.8.8.8")));
        assert_eq!(
            AllowList::parse(&["10.0.0.0/33"]).unwrap_err(),
            AllowEntryError("10.0.0.0/33".into())
        );
    }
}
