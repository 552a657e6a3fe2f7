//! The Unicode classes tiktoken's patterns use, one bit each, looked up per
//! character: `\p{Lu}`, `\p{Ll}`, `\p{Lt}`, `\p{Lm}`, `\p{Lo}`, `\p{M}`,
//! `\p{N}` and `\s`. Built once per VM from `regex-syntax`'s tables (the ones
//! the regex engines use, so the same Unicode version as tiktoken's
//! fancy-regex): a 64 KiB table for the Basic Multilingual Plane, sorted
//! ranges for the rest.

use std::sync::OnceLock;

use regex_syntax::hir::{Class, HirKind};

pub(super) const LU: u8 = 1;
pub(super) const LL: u8 = 2;
pub(super) const LT: u8 = 4;
pub(super) const LM: u8 = 8;
pub(super) const LO: u8 = 16;
pub(super) const MARK: u8 = 32;
pub(super) const NUM: u8 = 64;
pub(super) const SPACE: u8 = 128;
/// `\p{L}`.
pub(super) const LETTER: u8 = LU | LL | LT | LM | LO;
/// o200k's `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`.
pub(super) const UPPER: u8 = LU | LT | LM | LO | MARK;
/// o200k's `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`.
pub(super) const LOWER: u8 = LL | LM | LO | MARK;

const BMP: usize = 0x1_0000;

#[derive(Debug)]
pub(super) struct Classes {
    ascii: [u8; 128],
    bmp: Vec<u8>,
    /// (first, last, bits) of the characters past the BMP, sorted, disjoint.
    astral: Vec<(u32, u32, u8)>,
}

impl Classes {
    pub(super) fn get() -> Option<&'static Classes> {
        static CLASSES: OnceLock<Option<Classes>> = OnceLock::new();
        CLASSES
            .get_or_init(|| match Classes::new() {
                Ok(c) => Some(c),
                Err(e) => {
                    log::error!("tokens: character classes: {e}");
                    None
                }
            })
            .as_ref()
    }

    fn new() -> Result<Classes, String> {
        let sets = [
            (LU, r"\p{Lu}"),
            (LL, r"\p{Ll}"),
            (LT, r"\p{Lt}"),
            (LM, r"\p{Lm}"),
            (LO, r"\p{Lo}"),
            (MARK, r"\p{M}"),
            (NUM, r"\p{N}"),
            (SPACE, r"\s"),
        ];
        let mut bmp = vec![0u8; BMP];
        let mut astral_sets = Vec::new();
        let mut cuts = Vec::new();
        for (bit, pattern) in sets {
            let hir = regex_syntax::parse(pattern).map_err(|e| format!("{pattern}: {e}"))?;
            let HirKind::Class(Class::Unicode(class)) = hir.kind() else {
                return Err(format!("{pattern}: not a Unicode class"));
            };
            let mut ranges = Vec::new();
            for r in class.ranges() {
                let (start, end) = (u32::from(r.start()), u32::from(r.end()));
                let bmp_end = end.min(BMP as u32 - 1);
                if start <= bmp_end {
                    for b in bmp
                        .get_mut(start as usize..=bmp_end as usize)
                        .into_iter()
                        .flatten()
                    {
                        *b |= bit;
                    }
                }
                if end >= BMP as u32 {
                    let s = start.max(BMP as u32);
                    ranges.push((s, end));
                    cuts.push(s);
                    cuts.push(end.saturating_add(1));
                }
            }
            astral_sets.push((bit, ranges));
        }
        // Segments between consecutive cuts have constant bits.
        cuts.sort_unstable();
        cuts.dedup();
        let mut astral: Vec<(u32, u32, u8)> = Vec::new();
        for w in cuts.windows(2) {
            let &[s, e] = w else { continue };
            let bits = astral_sets
                .iter()
                .filter(|(_, ranges)| in_ranges(ranges, s))
                .fold(0u8, |b, (bit, _)| b | bit);
            if bits == 0 {
                continue;
            }
            match astral.last_mut() {
                Some(last) if last.1 + 1 == s && last.2 == bits => last.1 = e - 1,
                _ => astral.push((s, e - 1, bits)),
            }
        }
        let mut ascii = [0u8; 128];
        for (a, b) in ascii.iter_mut().zip(&bmp) {
            *a = *b;
        }
        Ok(Classes { ascii, bmp, astral })
    }

    /// The class bits of the ASCII character `b`.
    #[inline]
    pub(super) fn of_ascii(&self, b: u8) -> u8 {
        self.ascii.get(usize::from(b & 0x7f)).copied().unwrap_or(0)
    }

    /// The class bits of `c`.
    #[inline]
    pub(super) fn of(&self, c: char) -> u8 {
        let u = u32::from(c);
        if let Some(&b) = self.bmp.get(u as usize) {
            return b;
        }
        match self.astral.binary_search_by(|&(s, e, _)| {
            if e < u {
                std::cmp::Ordering::Less
            } else if s > u {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        }) {
            Ok(i) => self.astral.get(i).map_or(0, |r| r.2),
            Err(_) => 0,
        }
    }
}

fn in_ranges(ranges: &[(u32, u32)], u: u32) -> bool {
    let i = ranges.partition_point(|&(_, e)| e < u);
    ranges.get(i).is_some_and(|&(s, _)| s <= u)
}
