//! Byte-pair encoding over a tiktoken vocabulary, counting only.
//!
//! The vocabulary is the build script's compact form (a length byte and the
//! bytes of each token, by rank) kept where it is in the module's data; a
//! hash table (open addressing, twice the token count, 8 bytes a slot: rank,
//! length, offset and a hash tag) is built over it once per VM. A piece is merged as tiktoken's
//! `byte_pair_merge` does (repeatedly the adjacent pair whose merge has the
//! lowest rank, the leftmost on a tie), with a linear scan for short pieces
//! and a binary heap for long ones, so that a megabyte without a space costs
//! O(n log n), not O(n²). Both give the same parts (`tests::heap_merge_*`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::OnceLock;
use std::time::Instant;

use super::split::Splitter;
use super::Encoding;

static CL100K_DATA: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/cl100k_base.bpe"));
static O200K_DATA: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/o200k_base.bpe"));

const NO_RANK: u32 = u32::MAX;

/// Pieces up to this many bytes are merged by scanning, longer ones with a heap.
const HEAP_ABOVE: usize = 64;

/// Bytes of long pieces merged exactly for one text (see [`Encoder::count`]).
pub(super) const HEAP_BUDGET: usize = 16 << 10;

/// A vocabulary and its pre-tokenizer, built on first use.
#[derive(Debug)]
pub(super) struct Encoder {
    encoding: Encoding,
    vocab: Vocab,
    split: Splitter,
}

/// What a text may still spend on long pieces, and what those showed.
#[derive(Debug)]
pub(super) struct Budget {
    /// Bytes of long pieces that may still be merged.
    left: usize,
    /// Tokens and bytes of the long pieces merged.
    tokens: u64,
    bytes: usize,
}

impl Budget {
    /// No limit (tests).
    #[cfg(test)]
    pub(super) fn unlimited() -> Budget {
        Budget {
            left: usize::MAX,
            ..Budget::default()
        }
    }
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            left: HEAP_BUDGET,
            tokens: 0,
            bytes: 0,
        }
    }
}

/// Buffers reused from piece to piece.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    parts: Vec<(usize, u32)>,
    next: Vec<usize>,
    prev: Vec<usize>,
    rank: Vec<u32>,
    heap: BinaryHeap<Reverse<(u32, usize)>>,
}

impl Encoder {
    /// The encoder for `encoding`, built on the first call in this VM; `None`
    /// (logged once) if its data does not load, which a test rules out.
    pub(super) fn get(encoding: Encoding) -> Option<&'static Encoder> {
        static CL100K: OnceLock<Option<Encoder>> = OnceLock::new();
        static O200K: OnceLock<Option<Encoder>> = OnceLock::new();
        let cell = match encoding {
            Encoding::Cl100kBase => &CL100K,
            Encoding::O200kBase => &O200K,
        };
        cell.get_or_init(|| match Encoder::load(encoding) {
            Ok(enc) => Some(enc),
            Err(e) => {
                log::error!("tokens: {} failed to load: {e}", encoding.name());
                None
            }
        })
        .as_ref()
    }

    pub(super) fn load(encoding: Encoding) -> Result<Encoder, String> {
        let started = Instant::now();
        let (data, tokens) = match encoding {
            Encoding::Cl100kBase => (CL100K_DATA, 100_256),
            Encoding::O200kBase => (O200K_DATA, 199_998),
        };
        let vocab = Vocab::new(data, tokens)?;
        let split = Splitter::new(encoding)?;
        log::debug!(
            "tokens: {} loaded ({tokens} tokens) in {} us",
            encoding.name(),
            started.elapsed().as_micros()
        );
        Ok(Encoder {
            encoding,
            vocab,
            split,
        })
    }

    /// See [`Splitter::last_boundary`].
    pub(super) fn last_boundary(&self, text: &str, from: usize) -> Option<usize> {
        self.split.last_boundary(text, from)
    }

    pub(super) fn name(&self) -> &'static str {
        self.encoding.name()
    }

    /// The token count of `text`, and whether it is exact. Pieces longer
    /// than 64 bytes cost 100 to 400 ns a byte to merge, so they draw on
    /// `budget` (bytes, [`HEAP_BUDGET`] for a text): past it the rest of them
    /// is estimated at the ratio the merged ones showed (a run of one letter,
    /// a line of `=`: an attack, not text).
    pub(super) fn count(
        &self,
        text: &str,
        scratch: &mut Scratch,
        budget: &mut Budget,
    ) -> (u64, bool) {
        let mut tokens = 0u64;
        let mut exact = true;
        for piece in self.split.pieces(text) {
            let bytes = piece.as_bytes();
            if bytes.len() <= HEAP_ABOVE
                || bytes.len() <= budget.left
                || self.vocab.rank(bytes).is_some()
            {
                let n = self.merge(bytes, scratch, budget);
                tokens = tokens.saturating_add(n);
                continue;
            }
            exact = false;
            // What the budget allows of it, merged; the rest estimated.
            let mut cut = super::floor_char_boundary(piece, budget.left);
            match bytes.get(..cut) {
                Some(head) if head.len() > HEAP_ABOVE => {
                    let n = self.merge(head, scratch, budget);
                    tokens = tokens.saturating_add(n);
                }
                _ => cut = 0,
            }
            let rest = super::extrapolate(budget.tokens, budget.bytes, bytes.len() - cut);
            tokens = tokens.saturating_add(rest);
        }
        (tokens, exact)
    }

    fn merge(&self, bytes: &[u8], scratch: &mut Scratch, budget: &mut Budget) -> u64 {
        let n = self.vocab.count_piece(bytes, scratch) as u64;
        if bytes.len() > HEAP_ABOVE {
            budget.left = budget.left.saturating_sub(bytes.len());
            budget.tokens = budget.tokens.saturating_add(n);
            budget.bytes = budget.bytes.saturating_add(bytes.len());
        }
        n
    }

    /// The token ranks of `text` (tests compare them with tiktoken's).
    #[cfg(test)]
    pub(super) fn encode(&self, text: &str) -> Vec<u32> {
        let mut scratch = Scratch::default();
        let mut out = Vec::new();
        for piece in self.split.pieces(text) {
            let piece = piece.as_bytes();
            for (a, b) in self.vocab.parts(piece, &mut scratch) {
                out.push(
                    piece
                        .get(a..b)
                        .and_then(|t| self.vocab.rank(t))
                        .unwrap_or(NO_RANK),
                );
            }
        }
        out
    }

    #[cfg(test)]
    pub(super) fn pieces<'a>(&'a self, text: &'a str) -> Vec<&'a str> {
        self.split.pieces(text).collect()
    }

    #[cfg(test)]
    pub(super) fn vocab(&self) -> &Vocab {
        &self.vocab
    }
}

#[derive(Debug)]
pub(super) struct Vocab {
    data: &'static [u8],
    /// By hash, linear probing; 0 where empty. An entry holds a token's rank
    /// and length, then its bytes themselves if 4 or fewer (most lookups then
    /// read nothing else), else its offset in `data` and 16 more bits of its
    /// hash (so a miss rarely reads `data`).
    table: Vec<u64>,
    shift: u32,
    max_len: usize,
}

const RANK_MASK: u64 = (1 << 18) - 1;
const LEN_SHIFT: u32 = 18;
const LEN_MASK: u64 = 0xff << LEN_SHIFT;
/// Short tokens: their bytes, little-endian, from here.
const INLINE_SHIFT: u32 = 26;
const INLINE_MAX: usize = 4;
/// Long tokens: the offset (22 bits) and the tag (16 bits).
const OFFSET_SHIFT: u32 = 26;
const OFFSET_MASK: u64 = (1 << 22) - 1;
const TAG_SHIFT: u32 = 48;
const TAG_BITS: u32 = 16;

fn entry_rank(e: u64) -> u32 {
    (e & RANK_MASK) as u32
}

/// The bits an entry for `bytes` must have (besides the rank), and which.
fn key(bytes: &[u8], tag: u64) -> (u64, u64) {
    let len = (bytes.len() as u64) << LEN_SHIFT;
    if bytes.len() <= INLINE_MAX {
        let inline = bytes
            .iter()
            .enumerate()
            .fold(0u64, |w, (i, &b)| w | u64::from(b) << (8 * i));
        (
            len | inline << INLINE_SHIFT,
            LEN_MASK | 0xffff_ffff << INLINE_SHIFT,
        )
    } else {
        (
            len | tag << TAG_SHIFT,
            LEN_MASK | ((1 << TAG_BITS) - 1) << TAG_SHIFT,
        )
    }
}

impl Vocab {
    fn new(data: &'static [u8], tokens: usize) -> Result<Vocab, String> {
        if tokens > RANK_MASK as usize || data.len() > OFFSET_MASK as usize {
            return Err("vocabulary too large for the table's fields".into());
        }
        let bits = (tokens * 2)
            .next_power_of_two()
            .trailing_zeros()
            .clamp(4, 64 - TAG_BITS);
        let mut vocab = Vocab {
            data,
            table: vec![0u64; 1 << bits],
            shift: 64 - bits,
            max_len: 0,
        };
        let mask = vocab.table.len() - 1;
        let mut at = 0usize;
        let mut rank = 0u64;
        while let Some(&len) = data.get(at) {
            let offset = at + 1;
            let bytes = data
                .get(offset..offset + usize::from(len))
                .filter(|b| !b.is_empty())
                .ok_or_else(|| format!("token {rank} is cut short"))?;
            if vocab.rank(bytes).is_some() {
                return Err(format!("token {rank} repeats an earlier one"));
            }
            let (slot, tag) = vocab.slot(bytes);
            let (bits, _) = key(bytes, tag);
            let entry = if bytes.len() <= INLINE_MAX {
                rank | bits
            } else {
                rank | bits | (offset as u64) << OFFSET_SHIFT
            };
            let mut slot = slot;
            while vocab.table.get(slot).is_some_and(|&e| e != 0) {
                slot = (slot + 1) & mask;
            }
            if let Some(s) = vocab.table.get_mut(slot) {
                *s = entry;
            }
            vocab.max_len = vocab.max_len.max(bytes.len());
            rank += 1;
            at = offset + usize::from(len);
        }
        if rank != tokens as u64 {
            return Err(format!("{rank} tokens, expected {tokens}"));
        }
        Ok(vocab)
    }

    /// The first slot to probe for `bytes`, and their tag.
    #[inline]
    fn slot(&self, bytes: &[u8]) -> (usize, u64) {
        let h = hash(bytes);
        (
            (h >> self.shift) as usize,
            (h >> (self.shift - TAG_BITS)) & ((1 << TAG_BITS) - 1),
        )
    }

    /// The rank of `bytes` if they are one token.
    pub(super) fn rank(&self, bytes: &[u8]) -> Option<u32> {
        if bytes.is_empty() || bytes.len() > self.max_len {
            return None;
        }
        let table_mask = self.table.len() - 1;
        let (mut slot, tag) = self.slot(bytes);
        let (want, mask) = key(bytes, tag);
        let inline = bytes.len() <= INLINE_MAX;
        loop {
            let e = *self.table.get(slot)?;
            if e == 0 {
                return None;
            }
            if e & mask == want {
                if inline {
                    return Some(entry_rank(e));
                }
                let offset = ((e >> OFFSET_SHIFT) & OFFSET_MASK) as usize;
                if self.data.get(offset..offset + bytes.len()) == Some(bytes) {
                    return Some(entry_rank(e));
                }
            }
            slot = (slot + 1) & table_mask;
        }
    }

    fn pair_rank(&self, piece: &[u8], from: usize, to: usize) -> u32 {
        piece
            .get(from..to)
            .and_then(|b| self.rank(b))
            .unwrap_or(NO_RANK)
    }

    /// How many tokens one piece is.
    fn count_piece(&self, piece: &[u8], scratch: &mut Scratch) -> usize {
        if piece.len() <= 1 || self.rank(piece).is_some() {
            // Every single byte is a token in these vocabularies.
            return usize::from(!piece.is_empty());
        }
        if piece.len() <= HEAP_ABOVE {
            self.merge_scan(piece, scratch);
            scratch.parts.len().saturating_sub(1)
        } else {
            self.merge_heap(piece, scratch)
        }
    }

    /// The byte ranges of the tokens of `piece`.
    #[cfg(test)]
    pub(super) fn parts(&self, piece: &[u8], scratch: &mut Scratch) -> Vec<(usize, usize)> {
        self.parts_with(piece, scratch, piece.len() > HEAP_ABOVE)
    }

    /// [`Vocab::parts`] with the merge chosen: the two must agree.
    #[cfg(test)]
    pub(super) fn parts_with(
        &self,
        piece: &[u8],
        scratch: &mut Scratch,
        heap: bool,
    ) -> Vec<(usize, usize)> {
        if piece.len() <= 1 || self.rank(piece).is_some() {
            return if piece.is_empty() {
                Vec::new()
            } else {
                vec![(0, piece.len())]
            };
        }
        let starts: Vec<usize> = if heap {
            self.merge_heap(piece, scratch);
            let mut starts = Vec::new();
            let mut i = 0;
            while i < piece.len() {
                starts.push(i);
                i = scratch.next[i];
            }
            starts
        } else {
            self.merge_scan(piece, scratch);
            scratch.parts.iter().map(|&(s, _)| s).collect()
        };
        let mut out = Vec::new();
        for (i, &s) in starts.iter().enumerate() {
            let e = starts.get(i + 1).copied().unwrap_or(piece.len());
            if s < piece.len() {
                out.push((s, e.min(piece.len())));
            }
        }
        out
    }

    /// tiktoken's `_byte_pair_merge`: leaves in `scratch.parts` the start of
    /// each token and a final `(piece.len(), _)`. `piece` is 2 bytes or more.
    fn merge_scan(&self, piece: &[u8], scratch: &mut Scratch) {
        let parts = &mut scratch.parts;
        parts.clear();
        let mut min = (NO_RANK, usize::MAX);
        for i in 0..piece.len().saturating_sub(1) {
            let rank = self.pair_rank(piece, i, i + 2);
            if rank < min.0 {
                min = (rank, i);
            }
            parts.push((i, rank));
        }
        parts.push((piece.len().saturating_sub(1), NO_RANK));
        parts.push((piece.len(), NO_RANK));
        // The rank of parts[i] merged with the two after it (before the merge
        // of i and i + 1 is recorded: so it is the new pair at i).
        let rank_at = |parts: &[(usize, u32)], i: usize| match (parts.get(i), parts.get(i + 3)) {
            (Some(&(a, _)), Some(&(b, _))) => self.pair_rank(piece, a, b),
            _ => NO_RANK,
        };
        while min.0 != NO_RANK {
            let i = min.1;
            if i > 0 {
                let r = rank_at(parts, i - 1);
                if let Some(p) = parts.get_mut(i - 1) {
                    p.1 = r;
                }
            }
            let r = rank_at(parts, i);
            if let Some(p) = parts.get_mut(i) {
                p.1 = r;
            }
            if i + 1 < parts.len() {
                parts.remove(i + 1);
            }
            min = (NO_RANK, usize::MAX);
            for (i, &(_, rank)) in parts.iter().enumerate().take(parts.len().saturating_sub(1)) {
                if rank < min.0 {
                    min = (rank, i);
                }
            }
        }
    }

    /// The same merges with a heap of (rank, start) and a linked list of
    /// parts, each named by its first byte; returns the token count and
    /// leaves in `scratch.next` the start of the part after each live one.
    fn merge_heap(&self, piece: &[u8], scratch: &mut Scratch) -> usize {
        let n = piece.len();
        let Scratch {
            next,
            prev,
            rank,
            heap,
            ..
        } = scratch;
        next.clear();
        next.extend(1..=n);
        prev.clear();
        prev.extend((0..n).map(|i| i.wrapping_sub(1)));
        rank.clear();
        rank.extend((0..n).map(|i| self.pair_rank(piece, i, i + 2)));
        heap.clear();
        heap.extend(
            rank.iter()
                .enumerate()
                .filter(|&(_, &r)| r != NO_RANK)
                .map(|(i, &r)| Reverse((r, i))),
        );
        let end_of = |next: &[usize], i: usize| next.get(i).copied().unwrap_or(n);
        let mut parts = n;
        while let Some(Reverse((r, i))) = heap.pop() {
            if rank.get(i).copied() != Some(r) {
                continue; // stale: this part merged since, or its pair changed
            }
            // Merge part i with the one after it.
            let j = end_of(next, i);
            let after = end_of(next, j);
            if let Some(x) = next.get_mut(i) {
                *x = after;
            }
            if let Some(x) = prev.get_mut(after) {
                *x = i;
            }
            if let Some(x) = rank.get_mut(j) {
                *x = NO_RANK;
            }
            parts -= 1;
            // The new pair at i, and the one before it.
            let r_i = if after < n {
                self.pair_rank(piece, i, end_of(next, after))
            } else {
                NO_RANK
            };
            if let Some(x) = rank.get_mut(i) {
                *x = r_i;
            }
            if r_i != NO_RANK {
                heap.push(Reverse((r_i, i)));
            }
            let p = prev.get(i).copied().unwrap_or(usize::MAX);
            if p < n {
                let r_p = self.pair_rank(piece, p, after);
                if let Some(x) = rank.get_mut(p) {
                    *x = r_p;
                }
                if r_p != NO_RANK {
                    heap.push(Reverse((r_p, p)));
                }
            }
        }
        parts
    }
}

/// FxHash-style, 8 bytes at a time; the top bits index the table.
fn hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let w = rest
            .iter()
            .enumerate()
            .fold(0u64, |w, (i, &b)| w | u64::from(b) << (8 * i));
        h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    }
    h
}
