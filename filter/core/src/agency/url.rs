//! URLs inside argument strings: where they are, which host they name (as a
//! browser or `curl` would parse it), and whether that host is private.
//!
//! The authority ends at the first `/`, `?`, `#`, `\` (WHATWG treats `\` as
//! `/` in special schemes), whitespace, quote or angle bracket; userinfo is
//! everything up to its last `@` (`https://ok.com@evil.net` names
//! `evil.net`); the host is percent-decoded, lowercased and stripped of a
//! trailing dot.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Schemes whose host `allowHosts` checks.
pub const WEB_SCHEMES: &[&str] = &["http", "https", "ftp", "ftps", "ws", "wss"];

/// One `scheme://authority` found in a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundUrl {
    /// Lowercased scheme.
    pub scheme: String,
    /// The parsed host (IPv6 without brackets); `None` when it does not parse.
    pub host: Option<String>,
}

/// Every `scheme://` URL in `s`, in order.
pub fn find_urls(s: &str) -> Vec<FoundUrl> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut from = 0;
    while let Some(rel) = s.get(from..).and_then(|r| r.find("://")) {
        let sep = from + rel;
        // The scheme: letters, digits, `+-.` before `://`, starting with a letter.
        let mut start = sep;
        while start > 0
            && bytes
                .get(start - 1)
                .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            start -= 1;
        }
        while start < sep && !bytes.get(start).is_some_and(u8::is_ascii_alphabetic) {
            start += 1;
        }
        let after = sep + 3;
        from = after;
        if start == sep {
            continue;
        }
        let scheme = s.get(start..sep).unwrap_or_default().to_ascii_lowercase();
        let rest = s.get(after..).unwrap_or_default();
        let end = rest
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '\\' | '"' | '\'' | '<' | '>' | '`')
                    || c.is_whitespace()
            })
            .unwrap_or(rest.len());
        let authority = rest.get(..end).unwrap_or_default();
        out.push(FoundUrl {
            scheme,
            host: parse_host(authority),
        });
    }
    out
}

/// The host of an authority (`user:pass@host:port`).
fn parse_host(authority: &str) -> Option<String> {
    let hostport = match authority.rfind('@') {
        Some(at) => authority.get(at + 1..)?,
        None => authority,
    };
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        let close = v6.find(']')?;
        let inner = v6.get(..close)?;
        inner.parse::<Ipv6Addr>().ok()?;
        inner.to_ascii_lowercase()
    } else {
        let h = hostport.split(':').next().unwrap_or_default();
        let decoded = percent_decode(h)?;
        decoded.to_lowercase()
    };
    let host = host.strip_suffix('.').unwrap_or(&host).to_owned();
    if host.is_empty() {
        None
    } else {
        Some(host)
    }
}

fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Whether `host` matches an `allowHosts` entry: equal, or a subdomain of
/// `x` for `*.x`. Both lowercase without a trailing dot.
pub fn host_matches(host: &str, entry: &str) -> bool {
    match entry.strip_prefix("*.") {
        Some(parent) => host
            .strip_suffix(parent)
            .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
        None => host == entry,
    }
}

/// The `allowHosts` entry, normalised; `None` when it is not a host name,
/// an IP address or `*.` followed by a host name.
pub fn normalise_entry(entry: &str) -> Option<String> {
    let e = entry.trim().to_lowercase();
    let e = e.strip_suffix('.').unwrap_or(&e).to_owned();
    let bare = e.strip_prefix("*.").unwrap_or(&e);
    let bare = bare
        .strip_prefix('[')
        .and_then(|b| b.strip_suffix(']'))
        .unwrap_or(bare);
    if super::schema::is_hostname(bare) || bare.parse::<Ipv6Addr>().is_ok() {
        Some(if e.starts_with('[') {
            bare.to_owned()
        } else {
            e
        })
    } else {
        None
    }
}

/// Whether `host` (as [`find_urls`] gives it) is the local machine, a
/// private or link-local network, or a cloud metadata service.
pub fn is_private_host(host: &str) -> bool {
    if host == "localhost"
        || host.ends_with(".localhost")
        || host == "metadata.google.internal"
        || host == "metadata"
    {
        return true;
    }
    if let Ok(v6) = host.parse::<Ipv6Addr>() {
        return is_private_v6(v6);
    }
    parse_ipv4(host).is_some_and(is_private_v4)
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, _, _] = ip.octets();
    a == 0
        || a == 127
        || a == 10
        || (a == 172 && (16..=31).contains(&b))
        || (a == 192 && b == 168)
        || (a == 169 && b == 254)
        || (a == 100 && (64..=127).contains(&b))
}

fn is_private_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_private_v4(v4);
    }
    let first = ip.segments().first().copied().unwrap_or_default();
    ip.is_loopback()
        || ip.is_unspecified()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
}

/// An IPv4 address as `inet_aton` reads it (what `curl` and browsers accept):
/// 1 to 4 parts, each decimal, octal (`0` prefix) or hex (`0x`), the last
/// filling the remaining bytes (`127.1`, `2130706433`, `0x7f.0.0.1`).
pub fn parse_ipv4(host: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(4);
    for p in &parts {
        let n = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            if h.is_empty() {
                0
            } else {
                u64::from_str_radix(h, 16).ok()?
            }
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(p.get(1..)?, 8).ok()?
        } else {
            p.parse::<u64>().ok()?
        };
        nums.push(n);
    }
    let (last, head) = nums.split_last()?;
    if head.iter().any(|n| *n > 255) {
        return None;
    }
    let rest_bits = 8 * (4 - head.len()) as u32;
    if *last >= 1u64 << rest_bits {
        return None;
    }
    let mut v: u64 = 0;
    for n in head {
        v = (v << 8) | n;
    }
    v = (v << rest_bits) | last;
    u32::try_from(v).ok().map(Ipv4Addr::from)
}
