//! Parsers for numbers and identifiers, each anchored at one word of the
//! text and reading a bounded number of bytes ahead, then validated.
//!
//! Digit groups (`4111 1111 1111 1111`, `+44 (0)20 7946 0958`, `536-22-8726`)
//! are read once per starting word; every prefix of the groups is then tried
//! as a card, SSN, NHS number, BSN, routing number, tax id and phone number.

use super::context::boundary_before;
use super::types::PiiType;
use super::validators::{
    aba_digits, bsn_digits, card_issuer, de_tax_id_digits, es_dni_valid, es_nie_valid,
    fr_nir_compact, iban_compact_valid, iban_length, it_fiscal_code_valid, luhn_digits, nhs_digits,
    ssn_digits, uk_nin_compact,
};
use super::{at, class, is_alnum, is_digit, Scan, HEX};

/// Separator bits between two digit groups.
const SP: u8 = 1;
const DA: u8 = 2;
const DO: u8 = 4;
const SL: u8 = 8;
const PA: u8 = 16;

/// At most this many digit groups are read from one start.
const MAX_GROUPS: usize = 8;
/// At most this many digits in all (a 19-digit card, a 15-digit E.164 number).
const MAX_DIGITS: usize = 20;

/// Whether a match may start at byte `s`: not glued to a word before it
/// (`v1.2`, `a-12`, `x/12`, `abc+12`, `é12`).
pub(crate) fn left_ok(text: &str, s: usize) -> bool {
    let Some(prev) = text.get(..s).and_then(|t| t.chars().next_back()) else {
        return true;
    };
    if prev.is_alphanumeric() {
        return false;
    }
    if matches!(prev, '-' | '.' | '/' | '_' | '+' | ',' | ':' | '\\') {
        return boundary_before(text, s - 1);
    }
    true
}

/// Whether a match may end at byte `e`: no letter or digit follows, nor a
/// joiner followed by one (`12.5`, `4.19.0-21`, `12345@host`).
pub(crate) fn right_ok(text: &str, e: usize) -> bool {
    right_ok_with(text, e, b"")
}

/// [`right_ok`], allowing the joiners in `allowed` (`:` before a port).
fn right_ok_with(text: &str, e: usize, allowed: &[u8]) -> bool {
    let b = text.as_bytes();
    let c = at(b, e);
    if c == 0 && e >= b.len() {
        return true;
    }
    if c >= 0x80 {
        return super::context::boundary_after(text, e);
    }
    if is_alnum(c) || c == b'@' || c == b'_' {
        return false;
    }
    if b".,-/:+".contains(&c) && !allowed.contains(&c) {
        return !is_alnum(at(b, e + 1));
    }
    true
}

/// Digit groups read from one start.
struct Groups {
    /// Where a match of the whole starts (the `+` or `(` when there is one).
    start: usize,
    plus: bool,
    paren: bool,
    n: usize,
    g: [(usize, usize); MAX_GROUPS],
    size: [u8; MAX_GROUPS],
    /// `sep[k]`: separator bits between group k and k + 1.
    sep: [u8; MAX_GROUPS],
}

fn sep_bit(c: u8) -> u8 {
    match c {
        b' ' => SP,
        b'-' => DA,
        b'.' => DO,
        b'/' => SL,
        b'(' | b')' => PA,
        _ => 0,
    }
}

fn read_groups(b: &[u8], s: usize) -> Option<Groups> {
    let prev = if s > 0 { at(b, s - 1) } else { 0 };
    let plus = prev == b'+';
    let paren = prev == b'(';
    let mut g = Groups {
        start: if plus || paren { s - 1 } else { s },
        plus,
        paren,
        n: 0,
        g: [(0, 0); MAX_GROUPS],
        size: [0; MAX_GROUPS],
        sep: [0; MAX_GROUPS],
    };
    let mut p = s;
    loop {
        let gs = p;
        while is_digit(at(b, p)) {
            p += 1;
            if p - gs > MAX_DIGITS {
                return None;
            }
        }
        let (Some(slot), Some(size)) = (g.g.get_mut(g.n), g.size.get_mut(g.n)) else {
            break;
        };
        *slot = (gs, p);
        *size = u8::try_from(p - gs).unwrap_or(u8::MAX);
        g.n += 1;
        if g.n == MAX_GROUPS {
            break;
        }
        let mut q = p;
        let mut bits = 0u8;
        while q - p < 3 {
            let bit = sep_bit(at(b, q));
            if bit == 0 || (bits & bit != 0 && bit != PA) {
                break;
            }
            bits |= bit;
            q += 1;
        }
        let joiners = (bits & (DA | DO | SL)).count_ones();
        if bits == 0 || joiners > 1 || !is_digit(at(b, q)) {
            break;
        }
        if let Some(sep) = g.sep.get_mut(g.n - 1) {
            *sep = bits;
        }
        p = q;
    }
    Some(g)
}

/// The one separator used between all of `seps` (0 for a single group).
fn uniform(seps: &[u8]) -> Option<u8> {
    match seps.split_first() {
        None => Some(0),
        Some((&f, rest)) => rest.iter().all(|&s| s == f).then_some(f),
    }
}

fn value(d: &[u8]) -> u32 {
    d.iter().fold(0u32, |a, &v| a * 10 + u32::from(v))
}

/// Card groupings: one block, fours with a shorter last block, 4-6-5, 4-6-4.
fn card_shape(sizes: &[u8], sep: Option<u8>) -> bool {
    match sep {
        Some(0) => true,
        Some(SP) | Some(DA) => {
            let Some((last, head)) = sizes.split_last() else {
                return false;
            };
            (head.len() >= 3 && head.iter().all(|&s| s == 4) && (1..=4).contains(last))
                || sizes == [4, 6, 5]
                || sizes == [4, 6, 4]
        }
        _ => false,
    }
}

/// National significant number rules of the countries we know (`None`: a
/// country code we do not know).
fn nsn_ok(cc: u32, nsn: &[u8]) -> Option<bool> {
    let n = nsn.len();
    let f = nsn.first().copied().unwrap_or(0);
    let s = nsn.get(1).copied().unwrap_or(0);
    Some(match cc {
        1 => n == 10 && f >= 2 && nsn.get(3).is_some_and(|&x| x >= 2),
        44 => (n == 10 && [1, 2, 3, 5, 7, 8, 9].contains(&f)) || (n == 9 && f == 1),
        49 => {
            if f == 1 {
                (10..=11).contains(&n) && (5..=7).contains(&s)
            } else {
                (7..=11).contains(&n) && f != 0
            }
        }
        33 => n == 9 && f != 0,
        34 => n == 9 && (6..=9).contains(&f),
        // Italian mobiles: 3 and 8 to 10 more digits (+39 333 123 4567, +39 33 1234 56789).
        39 => (f == 0 && (6..=11).contains(&n)) || (f == 3 && (9..=11).contains(&n)),
        // 091: VoIP numbers (+31 91 546 1900).
        31 => n == 9 && ((1..=8).contains(&f) || (f == 9 && s == 1)),
        // Delhi and the other 1x area codes are landlines too (+91 11 2320 2640).
        91 => n == 10 && f >= 1,
        // Area code and subscriber, or the non-geographic 300/500/800/900 numbers.
        55 => {
            ((10..=11).contains(&n) && f != 0 && s != 0 && (n == 10 || nsn.get(2) == Some(&9)))
                || (n == 10 && [3, 5, 8, 9].contains(&f) && nsn.get(1..3) == Some(&[0, 0][..]))
        }
        61 => n == 9 && [2, 3, 4, 7, 8].contains(&f),
        _ => return None,
    })
}

/// Two-digit country codes (the rest are one digit, 1 and 7, or three).
const CC2: &[u32] = &[
    20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54, 55, 56,
    57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98,
];

fn cc_len(d: &[u8]) -> usize {
    match d.first() {
        Some(1) | Some(7) => 1,
        _ if d.get(..2).is_some_and(|p| CC2.contains(&value(p))) => 2,
        _ => 3,
    }
}

/// National formats (no country code), by the leading digits and length
/// (a North American number only compact: spaced, it has its own shape).
fn national_ok(d: &[u8], compact: bool) -> bool {
    let n = d.len();
    let at = |i: usize| d.get(i).copied().unwrap_or(0);
    if at(0) == 0 {
        let (a, b2) = (at(1), at(2));
        a != 0
            && ((n == 11 && [1, 2, 3, 5, 7, 8, 9].contains(&a))
                || (n == 10 && a == 1)
                || (a == 1 && (5..=7).contains(&b2) && (11..=12).contains(&n))
                || (a >= 2 && (9..=12).contains(&n))
                || (n == 10 && (1..=8).contains(&a))
                || (n == 11 && (6..=9).contains(&a)))
    } else {
        (compact && nanp(d))
            || (n == 9 && (6..=9).contains(&at(0)))
            || (at(0) == 3 && (9..=11).contains(&n))
            || (n == 10 && (6..=9).contains(&at(0)))
    }
}

/// A North American number: NXX NXX XXXX, optionally after a 1.
fn nanp(d: &[u8]) -> bool {
    let d = match d.len() {
        11 if d.first() == Some(&1) => d.get(1..).unwrap_or(&[]),
        _ => d,
    };
    d.len() == 10 && d.first().is_some_and(|&x| x >= 2) && d.get(3).is_some_and(|&x| x >= 2)
}

/// A Brazilian number: two-digit area code without a 0, then a landline
/// (eight digits from 2-5), a trunked mobile (eight digits from 7) or a
/// mobile (9 and eight digits).
fn brazil(d: &[u8]) -> bool {
    let n = d.len();
    let third = d.get(2).copied().unwrap_or(0);
    (10..=11).contains(&n)
        && d.first().is_some_and(|&x| x != 0)
        && d.get(1).is_some_and(|&x| x != 0)
        && ((n == 10 && ((2..=5).contains(&third) || third == 7)) || (n == 11 && third == 9))
}

/// Whether byte `s` follows groups of four letters or digits joined by
/// single spaces, the first of them an IBAN's country code and check digits.
fn in_grouped_iban(b: &[u8], s: usize) -> bool {
    let mut p = s;
    for _ in 0..8 {
        if p < 5 || at(b, p - 1) != b' ' {
            return false;
        }
        let g = p - 5;
        if !(g..p - 1).all(|k| at(b, k).is_ascii_uppercase() || is_digit(at(b, k))) {
            return false;
        }
        if g > 0 && is_alnum(at(b, g - 1)) {
            return false;
        }
        let (c0, c1) = (at(b, g), at(b, g + 1));
        if c0.is_ascii_uppercase()
            && c1.is_ascii_uppercase()
            && is_digit(at(b, g + 2))
            && is_digit(at(b, g + 3))
            && iban_length([c0, c1]).is_some()
        {
            return true;
        }
        p = g;
    }
    false
}

/// The phone score of the first `e + 1` groups with digits `d`.
fn phone(g: &Groups, e: usize, d: &[u8]) -> Option<(f32, &'static str)> {
    let sizes = g.size.get(..=e)?;
    let seps = g.sep.get(..e)?;
    // Seven groups: "+33 (0)4 70 96 73 37" (country code, trunk, five groups).
    let max_groups = if g.plus { 7 } else { 6 };
    if sizes.len() > max_groups || d.len() < 7 {
        return None;
    }
    let first = *sizes.first()?;
    let international = g.plus || d.starts_with(&[0, 0]);
    if international {
        let body = if g.plus { d } else { d.get(2..)? };
        // The country code: the first group when the number is spaced.
        let cl = if g.plus && e > 0 && (1..=3).contains(&first) {
            usize::from(first)
        } else {
            cc_len(body)
        };
        let cc = value(body.get(..cl)?);
        let mut nsn = body.get(cl..)?;
        let mut rest = sizes.get(1..).unwrap_or(&[]);
        // "+44 (0)20 ...": the trunk 0 in parentheses is not dialled.
        let trunk = g.plus
            && e >= 2
            && rest.first() == Some(&1)
            && nsn.first() == Some(&0)
            && seps.first().is_some_and(|s| s & PA != 0)
            && seps.get(1).is_some_and(|s| s & PA != 0);
        if trunk {
            nsn = nsn.get(1..)?;
            rest = rest.get(1..).unwrap_or(&[]);
        }
        // Groups after the first of the number proper have two digits or more.
        if g.plus && e > 0 && rest.iter().skip(1).any(|&s| s < 2) {
            return None;
        }
        if !g.plus && e == 0 {
            return None;
        }
        return match nsn_ok(cc, nsn) {
            Some(true) => Some((0.75, "pii.phone.international")),
            Some(false) => None,
            None => ((8..=15).contains(&(cl + nsn.len())) && nsn.first() != Some(&0) && cc != 0)
                .then_some((0.55, "pii.phone.international")),
        };
    }
    let us_lead = first == 1 && d.first() == Some(&1) && sizes.len() == 4;
    if sizes
        .iter()
        .enumerate()
        .any(|(i, &s)| s < 2 && !(i == 0 && us_lead))
    {
        return None;
    }
    if seps.iter().any(|&s| s & SL != 0 && s != SL) {
        return None;
    }
    // 3-2-4 is the shape of a US SSN (valid or not), no national phone plan's.
    if sizes == [3, 2, 4] {
        return None;
    }
    let compact = sizes.len() == 1;
    let us_shape = nanp(d) && (sizes == [3, 3, 4] || sizes == [1, 3, 3, 4]);
    if us_shape {
        return Some((0.6, "pii.phone.national"));
    }
    let br =
        brazil(d) && (sizes == [2, 4, 4] || sizes == [2, 5, 4] || (g.paren && sizes.len() == 2));
    if br || national_ok(d, compact) {
        return Some(if compact {
            (0.4, "pii.phone.national")
        } else {
            (0.55, "pii.phone.national")
        });
    }
    None
}

impl Scan<'_> {
    /// Digit groups starting at `s`: every prefix of them as a number.
    pub(crate) fn numeric(&mut self, s: usize) {
        // Not from the middle of a digit sequence ("7946 0958" in "+44 20 7946 0958").
        let b = self.b;
        let start = if s > 0 && matches!(at(b, s - 1), b'+' | b'(') {
            s - 1
        } else {
            s
        };
        // A card number is the exception: Luhn and the issuer prefix make it
        // specific enough to be looked for after another number too
        // ("qty 2 4111 1111 1111 1111"), where the sequence read from the
        // first number fails its check.
        let mid = start >= 2
            && matches!(at(b, start - 1), b' ' | b'-' | b'.' | b'/')
            && is_digit(at(b, start - 2));
        if mid && (start != s || !self.on(PiiType::CreditCard)) {
            return;
        }
        // Nor after a trunk prefix in parentheses ("+31(0)91 ...", "+49 (0) 0336 ...").
        let mut q = start;
        if q >= 1 && at(b, q - 1) == b' ' {
            q -= 1;
        }
        if q >= 2 && at(b, q - 1) == b')' && is_digit(at(b, q - 2)) {
            return;
        }
        // Nor from the middle of a grouped IBAN ("NL52 HIII 8966 7016 45"
        // that failed its check is no phone number either).
        if in_grouped_iban(b, start) {
            return;
        }
        let Some(g) = read_groups(b, s) else {
            return;
        };
        let mut d = [0u8; MAX_DIGITS];
        let mut len = 0usize;
        let mut best_phone: Option<(usize, f32, &'static str)> = None;
        let pure = !g.plus && !g.paren;
        for e in 0..g.n {
            let (Some(&(gs, ge)), Some(sizes), Some(seps)) =
                (g.g.get(e), g.size.get(..=e), g.sep.get(..e))
            else {
                break;
            };
            let mut full = false;
            for k in gs..ge {
                match d.get_mut(len) {
                    Some(slot) => *slot = at(self.b, k).wrapping_sub(b'0'),
                    None => full = true,
                }
                len += 1;
            }
            if full {
                break;
            }
            if !right_ok(self.text, ge) {
                continue;
            }
            let Some(digits) = d.get(..len) else {
                break;
            };
            let sep = uniform(seps);
            let start = g.g.first().map_or(s, |x| x.0);
            if mid {
                self.card(digits, sizes, sep, start, ge);
                continue;
            }
            if pure {
                self.ids(digits, sizes, sep, start, ge);
            }
            // A phone number takes the whole sequence, or stops where the
            // separator changes.
            let whole = e + 1 == g.n
                || g.sep
                    .get(e)
                    .is_some_and(|next| !seps.contains(next) && *next != SP);
            if let Some((score, rule)) = phone(&g, e, digits).filter(|_| whole) {
                if best_phone.is_none_or(|(_, sc, _)| score >= sc) {
                    best_phone = Some((ge, score, rule));
                }
            }
        }
        if let Some((end, score, rule)) = best_phone {
            self.push_ctx(PiiType::Phone, g.start, end, score, rule);
        }
    }

    /// A card number: 13 to 19 digits in a card's grouping, a known
    /// issuer prefix and a valid Luhn check digit.
    fn card(&mut self, d: &[u8], sizes: &[u8], sep: Option<u8>, start: usize, end: usize) {
        if (13..=19).contains(&d.len())
            && card_shape(sizes, sep)
            && card_issuer(d).is_some()
            && luhn_digits(d)
        {
            let base = if sizes.len() == 1 { 0.9 } else { 0.95 };
            self.push_ctx(PiiType::CreditCard, start, end, base, "pii.credit-card");
        }
    }

    /// The fixed-length numeric identifiers.
    fn ids(&mut self, d: &[u8], sizes: &[u8], sep: Option<u8>, start: usize, end: usize) {
        let n = d.len();
        let single = sizes.len() == 1;
        self.card(d, sizes, sep, start, end);
        if n == 9 {
            if ssn_digits(d) {
                let base = match (sizes, sep) {
                    ([3, 2, 4], Some(DA)) => Some(0.85),
                    ([3, 2, 4], Some(SP)) => Some(0.6),
                    ([9], _) => Some(0.3),
                    _ => None,
                };
                if let Some(base) = base {
                    self.push_ctx(PiiType::UsSsn, start, end, base, "pii.us-ssn");
                }
            }
            if bsn_digits(d) {
                let base = match (sizes, sep) {
                    ([9], _) => Some(0.35),
                    ([4, 2, 3], Some(DO)) => Some(0.6),
                    ([3, 3, 3], Some(DO | SP)) => Some(0.45),
                    _ => None,
                };
                if let Some(base) = base {
                    self.push_ctx(PiiType::NlBsn, start, end, base, "pii.nl-bsn");
                }
            }
            if single && aba_digits(d) {
                self.push_ctx(PiiType::UsRoutingNumber, start, end, 0.3, "pii.us-routing");
            }
        }
        if n == 10 && nhs_digits(d) {
            let base = match (sizes, sep) {
                ([10], _) => Some(0.4),
                ([3, 3, 4], Some(SP)) => Some(0.6),
                ([3, 3, 4], Some(DA)) => Some(0.45),
                _ => None,
            };
            if let Some(base) = base {
                self.push_ctx(PiiType::NhsNumber, start, end, base, "pii.nhs-number");
            }
        }
        if n == 11 && de_tax_id_digits(d) {
            let base = match (sizes, sep) {
                ([11], _) => Some(0.4),
                ([2, 3, 3, 3], Some(SP | SL)) => Some(0.55),
                _ => None,
            };
            if let Some(base) = base {
                self.push_ctx(PiiType::DeTaxId, start, end, base, "pii.de-tax-id");
            }
        }
    }

    /// An IPv4 address at `s` (octets 0-255 without leading zeros).
    pub(crate) fn ipv4(&mut self, s: usize) -> Option<usize> {
        if !self.on(PiiType::IpAddress) {
            return None;
        }
        let end = parse_ipv4(self.b, s)?;
        if !right_ok_with(self.text, end, b":/") {
            return None;
        }
        let b = self.b;
        // A dotted quad of single digits (1.2.3.4) is mostly a version.
        let tiny = end - s == 7;
        // "version 10.4.1.2", "v 1.2.3.4".
        let base =
            if tiny || (s >= 2 && matches!(at(b, s - 2), b'v' | b'V') && at(b, s - 1) == b' ') {
                0.45
            } else {
                0.6
            };
        self.push_ctx(PiiType::IpAddress, s, end, base, "pii.ipv4");
        Some(end)
    }

    /// A MAC address (`00:1A:2B:3C:4D:5E`, `00-1a-...`, `001a.2b3c.4d5e`) or
    /// an IPv6 address starting at the word `s..e`.
    pub(crate) fn mac_or_ipv6(&mut self, s: usize, e: usize) -> Option<usize> {
        let b = self.b;
        let sep = at(b, e);
        if !matches!(sep, b':' | b'-' | b'.') || e - s > 4 {
            return None;
        }
        let ipv6 = sep == b':' && self.on(PiiType::IpAddress);
        if !(self.on(PiiType::MacAddress) || ipv6) {
            return None;
        }
        if !(s..e).all(|k| class(at(b, k)) & HEX != 0) {
            return None;
        }
        if let Some(end) = parse_mac(b, s) {
            if right_ok(self.text, end) {
                let letters = (s..end).any(|k| at(b, k).is_ascii_alphabetic());
                let base = if letters || at(b, s + 2) == b':' {
                    0.65
                } else {
                    0.4
                };
                self.push_ctx(PiiType::MacAddress, s, end, base, "pii.mac-address");
                return Some(end);
            }
        }
        if sep == b':' {
            let (end, compressed) = parse_ipv6(b, s)?;
            if !right_ok_with(self.text, end, b"/") {
                return None;
            }
            let base = if compressed { 0.6 } else { 0.7 };
            self.push_ctx(PiiType::IpAddress, s, end, base, "pii.ipv6");
            return Some(end);
        }
        None
    }

    /// A French NIR: 15 characters (2A / 2B for Corsica), spaced in its
    /// usual groups `1 85 05 78 006 084 36` or not at all.
    pub(crate) fn fr_nir(&mut self, s: usize) {
        if !self.on(PiiType::FrNir) || !matches!(at(self.b, s), b'1'..=b'4' | b'7' | b'8') {
            return;
        }
        let b = self.b;
        let mut c = [0u8; 15];
        let mut n = 0;
        let mut p = s;
        let mut sep = 0u8;
        while n < 15 {
            let ch = at(b, p);
            let ok = is_digit(ch) || (n == 6 && (ch == b'A' || ch == b'B') && c[5] == b'2');
            if !ok {
                return;
            }
            if let Some(slot) = c.get_mut(n) {
                *slot = ch;
            }
            n += 1;
            p += 1;
            if n < 15 && matches!(n, 1 | 3 | 5 | 7 | 10 | 13) {
                let nx = at(b, p);
                if nx == b' ' || nx == b'.' {
                    if sep != 0 && sep != nx {
                        return;
                    }
                    sep = nx;
                    p += 1;
                }
            }
        }
        if !right_ok(self.text, p) || !fr_nir_compact(&c) {
            return;
        }
        let base = if sep != 0 { 0.85 } else { 0.7 };
        self.push_ctx(PiiType::FrNir, s, p, base, "pii.fr-nir");
    }

    /// A Spanish DNI: `12345678Z`, `12345678-Z`, `12345678 Z`.
    pub(crate) fn es_dni(&mut self, s: usize, e: usize) {
        if !self.on(PiiType::EsDni) {
            return;
        }
        let b = self.b;
        let (end, base) = if e - s == 9 && at(b, e - 1).is_ascii_alphabetic() {
            (e, 0.8)
        } else if e - s == 8
            && matches!(at(b, e), b'-' | b' ')
            && at(b, e + 1).is_ascii_alphabetic()
            && !is_alnum(at(b, e + 2))
        {
            (e + 2, 0.75)
        } else {
            return;
        };
        let Some(t) = self.text.get(s..end) else {
            return;
        };
        if !right_ok(self.text, end) {
            return;
        }
        if es_dni_valid(t) {
            self.push_ctx(PiiType::EsDni, s, end, base, "pii.es-dni");
        } else if at(b, end - 1).is_ascii_lowercase() && es_dni_valid(&t.to_ascii_uppercase()) {
            // "dni 24281720e": a lower-case letter, next to its word only.
            self.push_if_ctx(PiiType::EsDni, s, end, 0.5, "pii.es-dni");
        }
    }

    /// A Spanish NIE: `X1234567L`, `X1234567-L`, `X-1234567-L`.
    pub(crate) fn es_nie(&mut self, s: usize, e: usize) {
        if !self.on(PiiType::EsNie)
            || !matches!(at(self.b, s), b'X' | b'Y' | b'Z' | b'x' | b'y' | b'z')
        {
            return;
        }
        let b = self.b;
        let sep = |c: u8| c == b'-' || c == b' ';
        let end = if e - s == 9 {
            e
        } else if e - s == 8 && sep(at(b, e)) && !is_alnum(at(b, e + 2)) {
            e + 2
        } else if e - s == 1
            && sep(at(b, e))
            && (e + 1..e + 8).all(|k| is_digit(at(b, k)))
            && at(b, e + 8) == at(b, e)
            && !is_alnum(at(b, e + 10))
        {
            e + 10
        } else {
            return;
        };
        let Some(t) = self.text.get(s..end) else {
            return;
        };
        if !right_ok(self.text, end) {
            return;
        }
        if es_nie_valid(t) {
            self.push_ctx(PiiType::EsNie, s, end, 0.85, "pii.es-nie");
        } else if t.bytes().any(|c| c.is_ascii_lowercase()) && es_nie_valid(&t.to_ascii_uppercase())
        {
            self.push_if_ctx(PiiType::EsNie, s, end, 0.5, "pii.es-nie");
        }
    }

    /// An IBAN, compact or in groups of four.
    pub(crate) fn iban(&mut self, s: usize, e: usize) {
        let b = self.b;
        if !self.on(PiiType::Iban) || e - s < 4 {
            return;
        }
        let (c0, c1) = (at(b, s), at(b, s + 1));
        let same_case = (c0.is_ascii_uppercase() && c1.is_ascii_uppercase())
            || (c0.is_ascii_lowercase() && c1.is_ascii_lowercase());
        if !same_case || !is_digit(at(b, s + 2)) || !is_digit(at(b, s + 3)) {
            return;
        }
        let Some(len) = iban_length([c0.to_ascii_uppercase(), c1.to_ascii_uppercase()]) else {
            return;
        };
        let grouped = e - s == 4 && at(b, e) == b' ';
        let mut c = [0u8; 34];
        let mut n = 0;
        let mut p = s;
        let mut run = 0;
        while n < len {
            let ch = at(b, p);
            if is_alnum(ch) {
                if let Some(slot) = c.get_mut(n) {
                    *slot = ch.to_ascii_uppercase();
                }
                n += 1;
                run += 1;
                p += 1;
            } else if grouped && ch == b' ' && run == 4 && is_alnum(at(b, p + 1)) {
                run = 0;
                p += 1;
            } else {
                return;
            }
        }
        if is_alnum(at(b, p)) || !right_ok(self.text, p) {
            return;
        }
        if c.get(..n).is_some_and(iban_compact_valid) {
            self.push_ctx(PiiType::Iban, s, p, 0.95, "pii.iban");
        }
    }

    /// A UK National Insurance number: `AB123456C`, `AB 12 34 56 C`.
    pub(crate) fn uk_nin(&mut self, s: usize, e: usize) {
        if !self.on(PiiType::UkNin) {
            return;
        }
        let b = self.b;
        let mut c = [0u8; 9];
        let (end, base) = if e - s == 9 {
            for (k, slot) in c.iter_mut().enumerate() {
                *slot = at(b, s + k);
            }
            (e, 0.6)
        } else if e - s == 2 && at(b, e) == b' ' {
            // AB 12 34 56 C or AB 123456 C.
            c[0] = at(b, s);
            c[1] = at(b, s + 1);
            let mut p = e + 1;
            let mut n = 2;
            let spaced = at(b, p + 2) == b' ';
            while n < 8 {
                let (x, y) = (at(b, p), at(b, p + 1));
                if !is_digit(x) || !is_digit(y) {
                    return;
                }
                if let Some(pair) = c.get_mut(n..n + 2) {
                    pair.copy_from_slice(&[x, y]);
                }
                n += 2;
                p += 2;
                if spaced && n < 8 {
                    if at(b, p) != b' ' {
                        return;
                    }
                    p += 1;
                }
            }
            if at(b, p) != b' ' {
                return;
            }
            c[8] = at(b, p + 1);
            (p + 2, 0.65)
        } else {
            return;
        };
        if !right_ok(self.text, end) {
            return;
        }
        if uk_nin_compact(&c) {
            self.push_ctx(PiiType::UkNin, s, end, base, "pii.uk-nin");
        } else if c.iter().any(u8::is_ascii_lowercase) && uk_nin_compact(&c.to_ascii_uppercase()) {
            // "nino: yy 45 80 47 a": lower case, next to its word only.
            self.push_if_ctx(PiiType::UkNin, s, end, 0.45, "pii.uk-nin");
        }
    }

    /// An Italian codice fiscale (16 characters, omocodia allowed).
    pub(crate) fn it_fiscal_code(&mut self, s: usize, e: usize) {
        if !self.on(PiiType::ItFiscalCode) || e - s != 16 {
            return;
        }
        if let Some(t) = self.text.get(s..e) {
            if !right_ok(self.text, e) {
                return;
            }
            if it_fiscal_code_valid(t) {
                self.push_ctx(PiiType::ItFiscalCode, s, e, 0.9, "pii.it-fiscal-code");
            } else if t.bytes().all(|c| !c.is_ascii_uppercase())
                && it_fiscal_code_valid(&t.to_ascii_uppercase())
            {
                // Typed in lower case: the control character still holds.
                self.push_ctx(PiiType::ItFiscalCode, s, e, 0.6, "pii.it-fiscal-code");
            }
        }
    }

    /// A passport number in one of the national formats, only next to a
    /// passport word.
    pub(crate) fn passport(&mut self, s: usize, e: usize, flags: u8) {
        if !self.on(PiiType::Passport) || !(8..=9).contains(&(e - s)) {
            return;
        }
        let Some(w) = self.b.get(s..e) else {
            return;
        };
        // Without a digit only a German number (its alphabet has no vowel but Y,
        // so no word of prose passes: "KXWZWLXTP").
        if flags & super::DIGIT == 0 && !german_letters_passport(w) {
            return;
        }
        // A number typed in lower case ("passport n8212535") counts as well.
        let ok = if flags & super::UPPER == 0 && flags & super::LOWER != 0 {
            passport_format(&w.to_ascii_uppercase())
        } else {
            passport_format(w)
        };
        if ok && right_ok(self.text, e) {
            // The closest context word names a national id and not a passport
            // ("paspoortnummer X, BSN: 937179620"): the number is that id's.
            // (Generic words such as "numero" do not count.)
            let nearest = self.context(s).nearest;
            if nearest & super::NATIONAL_IDS != 0 && nearest & PiiType::Passport.bit() == 0 {
                return;
            }
            self.push_if_ctx(PiiType::Passport, s, e, 0.45, "pii.passport");
        }
    }

    /// A date of birth at `s` (or at the month name before it), only next to
    /// a birth word.
    pub(crate) fn date_of_birth(&mut self, s: usize) {
        if !self.on(PiiType::DateOfBirth) {
            return;
        }
        if let Some((start, end)) = parse_date(self.text, s) {
            if right_ok(self.text, end) {
                self.push_if_ctx(PiiType::DateOfBirth, start, end, 0.5, "pii.date-of-birth");
            }
        }
    }

    /// An e-mail address around the `@` at `p`; returns its end.
    ///
    /// Internationalised addresses (RFC 6531: `jörg@müller.de`, `почта@пример.рф`)
    /// are addresses too: a letter or digit of any script may be part of the
    /// local part and of a domain label, except in scripts written without
    /// spaces between words (Chinese, Japanese, Thai, ...), where such a letter
    /// is the text around the address (`请发到john@example.com`), not part of it.
    pub(crate) fn email(&mut self, p: usize) -> Option<usize> {
        if !self.on(PiiType::Email) {
            return None;
        }
        let text = self.text;
        let local_char = |c: char| email_letter(c) || "._%+-".contains(c);
        let before = |i: usize| text.get(..i).and_then(|t| t.chars().next_back());
        let after = |i: usize| text.get(i..).and_then(|t| t.chars().next());
        // At most 64 bytes of local part (RFC 5321).
        let mut q = p;
        while let Some(c) = before(q).filter(|&c| local_char(c)) {
            if p - q + c.len_utf8() > 64 {
                return None;
            }
            q -= c.len_utf8();
        }
        if q == p || after(q) == Some('.') || before(p) == Some('.') {
            return None;
        }
        // Not the user of a URL (`https://user@host`), not the tail of a word.
        if before(q).is_some_and(|c| matches!(c, ':' | '/') || email_letter(c)) {
            return None;
        }
        if text.get(q..p).is_some_and(|l| l.contains("..")) {
            return None;
        }
        let mut r = p + 1;
        let mut labels = 0;
        let mut last;
        loop {
            let ls = r;
            while let Some(c) = after(r).filter(|&c| email_letter(c) || c == '-') {
                r += c.len_utf8();
            }
            if r == ls || r - ls > 63 || after(ls) == Some('-') || before(r) == Some('-') {
                return None;
            }
            labels += 1;
            last = (ls, r);
            if after(r) == Some('.') && after(r + 1).is_some_and(email_letter) {
                r += 1;
            } else {
                break;
            }
        }
        let tld = text.get(last.0..last.1)?;
        let n_chars = tld.chars().count();
        let tld_ok = (2..=24).contains(&n_chars) && tld.chars().all(char::is_alphabetic)
            || tld.starts_with("xn--");
        // The domain parser took every label, so only a word character may
        // not follow (a comma, dash or colon after it ends the address:
        // `a@b.com,Paris` in a CSV row).
        let glued = after(r).is_some_and(|c| email_letter(c) || matches!(c, '@' | '_'));
        if labels < 2 || !tld_ok || glued {
            return None;
        }
        self.push_ctx(PiiType::Email, q, r, 0.9, "pii.email");
        Some(r)
    }
}

/// A letter or digit that may be part of an e-mail address: any script's,
/// except those of scripts written without spaces between words.
fn email_letter(c: char) -> bool {
    c.is_alphanumeric() && !spaceless_script(c)
}

/// Whether `c` belongs to a script written without spaces between words:
/// Thai, Lao, Myanmar, Khmer, the CJK ideographs, kana and their
/// compatibility and full-width forms.
fn spaceless_script(c: char) -> bool {
    matches!(c,
        '\u{0E00}'..='\u{0EFF}'      // Thai, Lao
        | '\u{1000}'..='\u{109F}'    // Myanmar
        | '\u{1780}'..='\u{17FF}'    // Khmer
        | '\u{2E80}'..='\u{312F}'    // CJK radicals, punctuation, kana, bopomofo
        | '\u{3190}'..='\u{31FF}'    // kanbun, CJK strokes, kana extensions
        | '\u{3400}'..='\u{4DBF}'    // CJK extension A
        | '\u{4E00}'..='\u{9FFF}'    // CJK unified ideographs
        | '\u{F900}'..='\u{FAFF}'    // CJK compatibility ideographs
        | '\u{FF00}'..='\u{FFEF}'    // half- and full-width forms
        | '\u{20000}'..='\u{3FFFF}') // CJK extensions B and later
}

/// Where a dotted quad starting at `s` ends.
fn parse_ipv4(b: &[u8], s: usize) -> Option<usize> {
    let mut p = s;
    for k in 0..4 {
        if k > 0 {
            if at(b, p) != b'.' {
                return None;
            }
            p += 1;
        }
        let os = p;
        while is_digit(at(b, p)) && p - os < 4 {
            p += 1;
        }
        let len = p - os;
        if len == 0 || len > 3 || (len > 1 && at(b, os) == b'0') {
            return None;
        }
        let v = b.get(os..p).map_or(256, |o| {
            o.iter()
                .fold(0u32, |a, &c| a * 10 + u32::from(c.wrapping_sub(b'0')))
        });
        if v > 255 {
            return None;
        }
    }
    Some(p)
}

fn hex_run(b: &[u8], p: usize) -> usize {
    let mut q = p;
    while class(at(b, q)) & HEX != 0 && q - p < 5 {
        q += 1;
    }
    q - p
}

/// Six hex pairs joined by one `:` or `-`, or three hex quads joined by `.`.
fn parse_mac(b: &[u8], s: usize) -> Option<usize> {
    let first = hex_run(b, s);
    let sep = at(b, s + first);
    let (groups, size) = match (first, sep) {
        (2, b':' | b'-') => (6, 2),
        (4, b'.') => (3, 4),
        _ => return None,
    };
    let mut p = s;
    for k in 0..groups {
        if k > 0 {
            if at(b, p) != sep {
                return None;
            }
            p += 1;
        }
        if hex_run(b, p) != size {
            return None;
        }
        p += size;
    }
    if at(b, p) == sep && class(at(b, p + 1)) & HEX != 0 {
        return None;
    }
    Some(p)
}

/// An IPv6 address from `s`: its end and whether `::` compresses it. Eight groups, or fewer with one `::`; a trailing dotted
/// quad counts as two groups. Needs a digit and five hex digits in all (so
/// `a::b` in code is not an address).
fn parse_ipv6(b: &[u8], s: usize) -> Option<(usize, bool)> {
    let mut p = s;
    let mut groups = 0;
    let mut compressed = false;
    let mut hex_digits = 0;
    let mut digit = false;
    loop {
        if let Some(end) = parse_ipv4(b, p).filter(|_| groups > 0 && groups <= 6) {
            groups += 2;
            digit = true;
            hex_digits += 4;
            p = end;
            break;
        }
        let len = hex_run(b, p);
        if len == 0 || len > 4 {
            if len > 4 {
                return None;
            }
            break;
        }
        digit |= (p..p + len).any(|k| is_digit(at(b, k)));
        hex_digits += len;
        groups += 1;
        p += len;
        if at(b, p) != b':' {
            break;
        }
        if at(b, p + 1) == b':' {
            if compressed {
                return None;
            }
            compressed = true;
            p += 2;
            if class(at(b, p)) & HEX == 0 {
                break;
            }
        } else if class(at(b, p + 1)) & HEX != 0 {
            p += 1;
        } else {
            break;
        }
    }
    let ok = if compressed {
        (2..=7).contains(&groups)
    } else {
        groups == 8
    };
    (ok && digit && hex_digits >= 5).then_some((p, compressed))
}

/// US (9 digits, a letter and 8 digits), UK (9 digits), DE
/// ([CFGHJKLMNPRTVWXYZ0-9]{9}), FR (2 digits, 2 letters, 5 digits), ES (3
/// letters, 6 digits), IT (2 letters, 7 digits), NL (2 letters, 6 letters
/// or digits, a digit; no O), IN and AU (a letter, 7 digits), BR (2
/// letters, 6 digits).
pub fn passport_format(w: &[u8]) -> bool {
    let n = w.len();
    let up = |r: std::ops::Range<usize>| {
        w.get(r)
            .is_some_and(|x| x.iter().all(u8::is_ascii_uppercase))
    };
    let dig =
        |r: std::ops::Range<usize>| w.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    let de = |c: &u8| c.is_ascii_digit() || b"CFGHJKLMNPRTVWXYZ".contains(c);
    let nl = |c: &u8| c.is_ascii_uppercase() && *c != b'O';
    match n {
        9 => {
            dig(0..9)
                || (up(0..1) && dig(1..9))
                || w.iter().all(de)
                || (dig(0..2) && up(2..4) && dig(4..9))
                || (up(0..3) && dig(3..9))
                || (up(0..2) && dig(2..9))
                || (w.get(..2).is_some_and(|x| x.iter().all(nl))
                    && w.get(2..8)
                        .is_some_and(|x| x.iter().all(|c| nl(c) || c.is_ascii_digit()))
                    && dig(8..9))
        }
        8 => (up(0..1) && dig(1..8)) || (up(0..2) && dig(2..8)),
        _ => false,
    }
}

/// A German passport number of letters only: C, F, G, H, J or K, then eight
/// of CFGHJKLMNPRTVWXYZ.
fn german_letters_passport(w: &[u8]) -> bool {
    w.len() == 9
        && w.first().is_some_and(|c| b"CFGHJK".contains(c))
        && w.iter().all(|c| b"CFGHJKLMNPRTVWXYZ".contains(c))
}

/// Month names and abbreviations in en, de, fr, es, it, pt, nl.
#[rustfmt::skip]
const MONTHS: &[(&str, u8)] = &[
    ("january", 1), ("jan", 1), ("januar", 1), ("jänner", 1), ("janvier", 1), ("janv", 1),
    ("enero", 1), ("ene", 1), ("gennaio", 1), ("gen", 1), ("janeiro", 1), ("januari", 1),
    ("february", 2), ("feb", 2), ("februar", 2), ("février", 2), ("fevrier", 2), ("févr", 2),
    ("febrero", 2), ("febbraio", 2), ("fevereiro", 2), ("fev", 2), ("februari", 2),
    ("march", 3), ("mar", 3), ("märz", 3), ("maerz", 3), ("mrz", 3), ("mars", 3), ("marzo", 3),
    ("março", 3), ("marco", 3), ("maart", 3), ("mrt", 3),
    ("april", 4), ("apr", 4), ("avril", 4), ("avr", 4), ("abril", 4), ("abr", 4), ("aprile", 4),
    ("may", 5), ("mai", 5), ("mayo", 5), ("maggio", 5), ("mag", 5), ("maio", 5), ("mei", 5),
    ("june", 6), ("jun", 6), ("juni", 6), ("juin", 6), ("junio", 6), ("giugno", 6), ("giu", 6),
    ("junho", 6),
    ("july", 7), ("jul", 7), ("juli", 7), ("juillet", 7), ("juil", 7), ("julio", 7),
    ("luglio", 7), ("lug", 7), ("julho", 7),
    ("august", 8), ("aug", 8), ("août", 8), ("aout", 8), ("agosto", 8), ("ago", 8),
    ("augustus", 8),
    ("september", 9), ("sep", 9), ("sept", 9), ("septembre", 9), ("septiembre", 9),
    ("setiembre", 9), ("settembre", 9), ("set", 9), ("setembro", 9),
    ("october", 10), ("oct", 10), ("oktober", 10), ("okt", 10), ("octobre", 10),
    ("octubre", 10), ("ottobre", 10), ("ott", 10), ("outubro", 10), ("out", 10),
    ("november", 11), ("nov", 11), ("novembre", 11), ("noviembre", 11), ("novembro", 11),
    ("december", 12), ("dec", 12), ("dezember", 12), ("dez", 12), ("décembre", 12),
    ("decembre", 12), ("déc", 12), ("diciembre", 12), ("dic", 12), ("dicembre", 12),
    ("dezembro", 12),
];

/// The month of a month name (any case, a trailing dot allowed).
pub fn month_number(word: &str) -> Option<u8> {
    let w = word.trim_end_matches('.');
    // Every name is 3-10 bytes and starts with one of these letters.
    let first = w.as_bytes().first().map(u8::to_ascii_lowercase);
    if !(3..=10).contains(&w.len()) || !first.is_some_and(|c| b"adefgjlmnos".contains(&c)) {
        return None;
    }
    if w.is_ascii() {
        return MONTHS
            .iter()
            .find(|(m, _)| m.eq_ignore_ascii_case(w))
            .map(|&(_, n)| n);
    }
    let w = w.to_lowercase();
    MONTHS.iter().find(|(m, _)| *m == w).map(|&(_, n)| n)
}

/// The letters of a word starting at byte `p` (Unicode letters).
fn letters_at(text: &str, p: usize) -> &str {
    let Some(t) = text.get(p..) else {
        return "";
    };
    let end = t
        .char_indices()
        .find(|(_, c)| !c.is_alphabetic())
        .map_or(t.len(), |(i, _)| i);
    t.get(..end).unwrap_or("")
}

fn digits_at(b: &[u8], p: usize, max: usize) -> (u32, usize) {
    let mut q = p;
    let mut v = 0u32;
    while is_digit(at(b, q)) && q - p < max + 1 {
        v = v * 10 + u32::from(at(b, q) - b'0');
        q += 1;
    }
    (v, q - p)
}

fn valid_day_month(d: u32, m: u32) -> bool {
    (1..=12).contains(&m) && (1..=31).contains(&d)
}

fn valid_year(y: u32, len: usize) -> bool {
    (len == 4 && (1900..=2030).contains(&y)) || len == 2
}

/// A date starting at `s` (or at a month name just before it): its span.
/// `15.03.1985`, `03/15/1985`, `1985-03-15`, `15 March 1985`,
/// `15. März 1985`, `15 de marzo de 1985`, `1er mars 1985`, `March 15, 1985`.
pub(crate) fn parse_date(text: &str, s: usize) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let (v1, l1) = digits_at(b, s, 4);
    let sep = at(b, s + l1);
    // Numeric dates.
    if matches!(sep, b'.' | b'/' | b'-') {
        let (v2, l2) = digits_at(b, s + l1 + 1, 2);
        let p3 = s + l1 + 1 + l2;
        if (1..=2).contains(&l2) && at(b, p3) == sep {
            let (v3, l3) = digits_at(b, p3 + 1, 4);
            let end = p3 + 1 + l3;
            let ok = if l1 == 4 {
                (1..=2).contains(&l3) && (1900..=2030).contains(&v1) && valid_day_month(v3, v2)
            } else {
                (1..=2).contains(&l1)
                    && (l3 == 4 || (l3 == 2 && sep != b'-'))
                    && valid_year(v3, l3)
                    && (valid_day_month(v1, v2) || valid_day_month(v2, v1))
            };
            return ok.then_some((s, end));
        }
        if sep != b'.' {
            return None;
        }
    }
    if !(1..=2).contains(&l1) || !(1..=31).contains(&v1) {
        return None;
    }
    // Textual: day [suffix][.] [de|of] month [,] [de] year.
    let mut p = s + l1;
    for suffix in [&b"st"[..], b"nd", b"rd", b"th", b"er"] {
        if b.get(p..).is_some_and(|t| t.starts_with(suffix)) && !is_alnum(at(b, p + 2)) {
            p += 2;
            break;
        }
    }
    if at(b, p) == b'.' {
        p += 1;
    }
    let day_end = p;
    if matches!(at(b, p), b' ' | b'-') {
        p += 1;
        for w in [&b"de "[..], b"of "] {
            if b.get(p..).is_some_and(|t| t.starts_with(w)) {
                p += 3;
            }
        }
        let word = letters_at(text, p);
        if !word.is_empty() && month_number(word).is_some() {
            p += word.len();
            if at(b, p) == b'.' {
                p += 1;
            }
            if matches!(at(b, p), b' ' | b'-') {
                p += 1;
                if b.get(p..).is_some_and(|t| t.starts_with(b"de ")) {
                    p += 3;
                }
                let (y, ly) = digits_at(b, p, 4);
                if ly == 4 && (1900..=2030).contains(&y) {
                    return Some((s, p + 4));
                }
            }
            return None;
        }
    }
    // Month first: "March 15, 1985".
    if at(b, s.checked_sub(1)?) != b' ' {
        return None;
    }
    let before = text.get(..s - 1)?;
    let ms = before
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphabetic() || *c == '.')
        .last()
        .map(|(i, _)| i)?;
    month_number(before.get(ms..)?)?;
    let mut p = day_end;
    if at(b, p) == b',' {
        p += 1;
    }
    if at(b, p) != b' ' {
        return None;
    }
    let (y, ly) = digits_at(b, p + 1, 4);
    (ly == 4 && (1900..=2030).contains(&y)).then_some((ms, p + 5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_separators() {
        let t = b"+44 (0)20 7946 0958 x";
        let g = read_groups(t, 1).unwrap();
        assert!(g.plus);
        assert_eq!(g.start, 0);
        assert_eq!(&g.size[..g.n], &[2, 1, 2, 4, 4]);
        assert_eq!(g.sep[0], SP | PA);
        assert_eq!(g.sep[1], PA);
    }

    #[test]
    fn phone_rules() {
        let d = |s: &str| s.bytes().map(|c| c - b'0').collect::<Vec<_>>();
        assert_eq!(nsn_ok(44, &d("2079460958")), Some(true));
        assert_eq!(nsn_ok(44, &d("207946095")), Some(false));
        assert_eq!(nsn_ok(34, &d("512345678")), Some(false));
        assert_eq!(nsn_ok(1, &d("1555550123")), Some(false));
        assert_eq!(nsn_ok(41, &d("441234567")), None);
        assert!(national_ok(&d("02079460958"), false));
        assert!(national_ok(&d("0612345678"), false));
        assert!(!national_ok(&d("5550123"), true));
        assert!(national_ok(&d("4155550132"), true) && !national_ok(&d("4155550132"), false));
        assert!(nanp(&d("2125550123")) && !nanp(&d("2120550123")));
        assert!(brazil(&d("11912345678")));
    }

    #[test]
    fn dates() {
        fn span(t: &str, s: usize) -> Option<&str> {
            parse_date(t, s).map(|(a, b)| &t[a..b])
        }
        assert_eq!(span("15.03.1985", 0), Some("15.03.1985"));
        assert_eq!(span("1985-03-15", 0), Some("1985-03-15"));
        assert_eq!(span("03/15/1985", 0), Some("03/15/1985"));
        assert_eq!(span("15 de marzo de 1985", 0), Some("15 de marzo de 1985"));
        assert_eq!(span("15. März 1985", 0), Some("15. März 1985"));
        assert_eq!(span("1er mars 1985", 0), Some("1er mars 1985"));
        assert_eq!(span("on March 15, 1985", 9), Some("March 15, 1985"));
        assert_eq!(span("32.03.1985", 0), None);
        assert_eq!(span("15.13.1985", 0), None);
        assert_eq!(span("15 apples 1985", 0), None);
    }

    #[test]
    fn ipv6_forms() {
        fn end(t: &str) -> Option<&str> {
            parse_ipv6(t.as_bytes(), 0).map(|(e, _)| &t[..e])
        }
        assert_eq!(
            end("2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
            Some("2001:0db8:85a3:0000:0000:8a2e:0370:7334")
        );
        assert_eq!(end("2001:db8::1 x"), Some("2001:db8::1"));
        assert_eq!(end("fe80::1"), Some("fe80::1"));
        assert_eq!(end("::ffff:192.0.2.1"), None);
        assert_eq!(end("a::b"), None);
        assert_eq!(end("10:22:33"), None);
        assert_eq!(end("00:1A:2B:3C:4D:5E"), None);
    }

    #[test]
    fn passports() {
        assert!(passport_format(b"123456789"));
        assert!(passport_format(b"C01X00T47"));
        assert!(passport_format(b"12AB34567"));
        assert!(passport_format(b"YA1234567"));
        assert!(passport_format(b"J1234567"));
        assert!(!passport_format(b"abcdefgh1"));
    }
}
