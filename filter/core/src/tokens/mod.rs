//! Token counts for rate-limit reservations and for streamed output whose
//! upstream reported no usage.
//!
//! OpenAI models are counted exactly with their own BPE vocabulary (feature
//! `tokenizer`, on by default): `o200k_base` for gpt-4o, gpt-4.1, gpt-4.5,
//! gpt-5, the o-series and gpt-oss; `cl100k_base` for gpt-4, gpt-3.5 and the
//! text-embedding models. The count is what tiktoken's `encode_ordinary` gives
//! for the text (special-token strings count as ordinary text, as the API
//! treats user text). Chat messages add a few tokens each for their framing
//! (3 per message and 3 for the reply in OpenAI's cookbook): that is the
//! caller's to add.
//!
//! Anything else, Claude included, is estimated at 4 bytes a token
//! (`exact == false`): Anthropic's current tokenizer is not published (the npm
//! `@anthropic-ai/tokenizer` holds the Claude 1/2 vocabulary, which no longer
//! matches Claude 3 and later), so an exact count is not to be had offline.
//!
//! Bounded work: only the first [`MAX_EXACT_BYTES`] of a text are tokenized;
//! the rest is estimated at the ratio the counted part showed, and the count
//! is then not exact. A piece (what the pre-tokenizer cuts: a word with its
//! space, a run of digits or punctuation) of more than 64 bytes is merged
//! with a heap, never quadratically, and only 16 KiB of such pieces per text
//! (a megabyte of one letter is an attack, not text): past that they are
//! estimated too. No input takes more than about 15 ms natively.
//!
//! The vocabulary is built once per VM, on first use (about 20 ms for
//! o200k_base natively, 45 ms in V8; [`preload`] it at configuration time),
//! into a hash table of 4 MiB (o200k) or 2 MiB (cl100k), besides the 2.3 MB
//! of vocabulary data in the module. The counts equal tiktoken's (tiktoken-rs
//! 0.12.1's `encode_ordinary`, checked on random text by the tests).

#[cfg(feature = "tokenizer")]
mod bpe;
#[cfg(feature = "tokenizer")]
mod class;
#[cfg(feature = "tokenizer")]
mod split;
#[cfg(test)]
mod tests;

/// Text beyond this many bytes is estimated, not tokenized, at the ratio the
/// first part showed (256 KiB is about 64k tokens of English; tokenizing it
/// takes about 2 ms natively, 15 ms for Chinese).
pub const MAX_EXACT_BYTES: usize = 256 << 10;

/// A [`Counter`] holds back text after the last place a token boundary is
/// certain (a space after a non-space, a newline); past this much without one
/// (long text without spaces, as Chinese or Japanese can be) the held text is
/// counted as it stands and the count is no longer exact.
pub const MAX_PENDING_BYTES: usize = 64 << 10;

/// The name of the estimate in [`TokenCount::encoding`].
pub const ESTIMATE: &str = "estimate";

/// How many tokens a text is for a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenCount {
    pub tokens: u64,
    /// Counted with the model's own tokenizer over the whole text.
    pub exact: bool,
    /// `"o200k_base"`, `"cl100k_base"` or [`ESTIMATE`].
    pub encoding: &'static str,
}

/// The BPE vocabularies this module knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Cl100kBase,
    O200kBase,
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Cl100kBase => "cl100k_base",
            Encoding::O200kBase => "o200k_base",
        }
    }

    /// The encoding of an OpenAI model name, as tiktoken maps it. Accepts a
    /// provider prefix (`openai/gpt-4o`, `azure/gpt-35-turbo`), fine-tuned names
    /// (`ft:gpt-4o-mini:org::id`) and any case.
    pub fn for_model(model: &str) -> Option<Encoding> {
        let name = model.trim();
        let name = name.rsplit('/').next().unwrap_or(name);
        let name = name.to_ascii_lowercase();
        let name = name.strip_prefix("ft:").unwrap_or(&name);
        let is = |family: &str| {
            name.strip_prefix(family)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', ':', '.', '@']))
        };
        // Order matters: "gpt-4o" and "gpt-4.1" before "gpt-4".
        if ["gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-oss"]
            .iter()
            .any(|p| name.starts_with(p))
            || ["gpt-5", "o1", "o3", "o4"].iter().any(|p| is(p))
        {
            return Some(Encoding::O200kBase);
        }
        if [
            "gpt-4",
            "gpt-3.5-turbo",
            "gpt-35-turbo",
            "text-embedding-3-small",
            "text-embedding-3-large",
            "text-embedding-ada-002",
            "davinci-002",
            "babbage-002",
        ]
        .iter()
        .any(|p| is(p))
        {
            return Some(Encoding::Cl100kBase);
        }
        None
    }
}

/// The estimate used where no tokenizer applies: 4 bytes a token, rounded up.
pub fn estimate(text: &str) -> TokenCount {
    TokenCount {
        tokens: estimate_bytes(text.len() as u64),
        exact: false,
        encoding: ESTIMATE,
    }
}

fn estimate_bytes(bytes: u64) -> u64 {
    bytes.div_ceil(4)
}

/// The tokens of `text` for `model` (see the module documentation). Never
/// panics; at most [`MAX_EXACT_BYTES`] are tokenized.
pub fn count(model: &str, text: &str) -> TokenCount {
    match Encoding::for_model(model) {
        Some(encoding) => count_with(encoding, text),
        None => estimate(text),
    }
}

/// The tokens of `text` in `encoding`, or the estimate if the vocabulary is
/// not compiled in (feature `tokenizer`).
pub fn count_with(encoding: Encoding, text: &str) -> TokenCount {
    #[cfg(feature = "tokenizer")]
    if let Some(enc) = bpe::Encoder::get(encoding) {
        let cut = floor_char_boundary(text, MAX_EXACT_BYTES);
        let (head, tail) = text.split_at(cut);
        let mut scratch = bpe::Scratch::default();
        let (tokens, exact) = enc.count(head, &mut scratch, &mut bpe::Budget::default());
        return TokenCount {
            tokens: tokens.saturating_add(extrapolate(tokens, head.len(), tail.len())),
            exact: exact && tail.is_empty(),
            encoding: encoding.name(),
        };
    }
    let _ = encoding;
    estimate(text)
}

/// Whether the tokenizer for `encoding` is compiled in and loads. The first
/// call per VM builds it (the vocabulary's hash table): call this at
/// configuration time to keep that off the first request.
pub fn preload(encoding: Encoding) -> bool {
    #[cfg(feature = "tokenizer")]
    let loaded = bpe::Encoder::get(encoding).is_some();
    #[cfg(not(feature = "tokenizer"))]
    let loaded = {
        let _ = encoding;
        false
    };
    loaded
}

/// Tokens for `rest` bytes at the ratio `tokens / bytes` seen so far (4 bytes
/// a token if nothing was seen), rounded up.
#[cfg(feature = "tokenizer")]
fn extrapolate(tokens: u64, bytes: usize, rest: usize) -> u64 {
    if rest == 0 {
        return 0;
    }
    if bytes == 0 || tokens == 0 {
        return estimate_bytes(rest as u64);
    }
    let t = u128::from(tokens) * rest as u128;
    let est = t.div_ceil(bytes as u128);
    u64::try_from(est).unwrap_or(u64::MAX)
}

/// The largest char boundary of `s` at or below `max`.
#[cfg(feature = "tokenizer")]
fn floor_char_boundary(s: &str, max: usize) -> usize {
    if max >= s.len() {
        return s.len();
    }
    let mut i = max;
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Counts text that arrives in pieces (a stream's deltas) without keeping it:
/// what lies before the last certain token boundary is counted at once, the
/// rest (usually the last word) is held. The total equals [`count`] of the
/// whole text, as long as no more than [`MAX_PENDING_BYTES`] go by without
/// such a boundary and the text stays within [`MAX_EXACT_BYTES`].
#[derive(Debug)]
pub struct Counter {
    /// Bytes pushed, for the estimate.
    bytes: u64,
    /// The exact count, where the model has a tokenizer here.
    #[cfg(feature = "tokenizer")]
    exact: Option<Exact>,
}

impl Counter {
    /// A counter for `model`'s encoding (the estimate if it has none here).
    pub fn new(model: &str) -> Counter {
        let encoding = Encoding::for_model(model);
        #[cfg(not(feature = "tokenizer"))]
        let _ = encoding;
        Counter {
            bytes: 0,
            #[cfg(feature = "tokenizer")]
            exact: encoding.and_then(bpe::Encoder::get).map(Exact::new),
        }
    }

    /// Adds the next piece of text.
    pub fn push(&mut self, text: &str) {
        self.bytes = self.bytes.saturating_add(text.len() as u64);
        #[cfg(feature = "tokenizer")]
        if let Some(exact) = &mut self.exact {
            exact.push(text);
        }
    }

    /// The tokens so far, for a running budget: those counted, plus the
    /// held-back tail (a word or so) at 4 bytes a token. Never more than
    /// [`Counter::finish`] would say by more than that tail's estimate.
    pub fn tokens(&self) -> u64 {
        #[cfg(feature = "tokenizer")]
        if let Some(exact) = &self.exact {
            let tail = estimate_bytes(exact.pending.len() as u64);
            let over = extrapolate(exact.tokens, exact.counted, exact.overflow);
            return exact.tokens.saturating_add(tail).saturating_add(over);
        }
        estimate_bytes(self.bytes)
    }

    /// The count of everything pushed.
    pub fn finish(self) -> TokenCount {
        #[cfg(feature = "tokenizer")]
        if let Some(exact) = self.exact {
            return exact.finish();
        }
        TokenCount {
            tokens: estimate_bytes(self.bytes),
            exact: false,
            encoding: ESTIMATE,
        }
    }
}

#[cfg(feature = "tokenizer")]
#[derive(Debug)]
struct Exact {
    enc: &'static bpe::Encoder,
    scratch: bpe::Scratch,
    /// What is left of the bytes of long pieces this text may merge.
    budget: bpe::Budget,
    /// Text after the last certain boundary, not counted yet.
    pending: String,
    tokens: u64,
    /// Bytes tokenized so far (excluding `pending`).
    counted: usize,
    /// Bytes past `MAX_EXACT_BYTES`, to extrapolate.
    overflow: usize,
    exact: bool,
}

#[cfg(feature = "tokenizer")]
impl Exact {
    fn new(enc: &'static bpe::Encoder) -> Exact {
        Exact {
            enc,
            scratch: bpe::Scratch::default(),
            budget: bpe::Budget::default(),
            pending: String::new(),
            tokens: 0,
            counted: 0,
            overflow: 0,
            exact: true,
        }
    }

    fn push(&mut self, text: &str) {
        let room = MAX_EXACT_BYTES.saturating_sub(self.counted + self.pending.len());
        let cut = floor_char_boundary(text, room);
        let (head, tail) = text.split_at(cut);
        if !tail.is_empty() {
            self.exact = false;
            self.overflow = self.overflow.saturating_add(tail.len());
        }
        if head.is_empty() {
            return;
        }
        let searched = self.pending.len();
        self.pending.push_str(head);
        let flush = match self.enc.last_boundary(&self.pending, searched) {
            Some(at) => at,
            None if self.pending.len() > MAX_PENDING_BYTES => {
                self.exact = false;
                self.pending.len()
            }
            None => return,
        };
        let done = self.pending.get(..flush).unwrap_or_default();
        let counted = self.enc.count(done, &mut self.scratch, &mut self.budget);
        self.add(counted);
        self.counted += flush;
        self.pending.drain(..flush);
    }

    fn add(&mut self, (tokens, exact): (u64, bool)) {
        self.tokens = self.tokens.saturating_add(tokens);
        self.exact &= exact;
    }

    fn finish(mut self) -> TokenCount {
        let pending = std::mem::take(&mut self.pending);
        let counted = self
            .enc
            .count(&pending, &mut self.scratch, &mut self.budget);
        self.add(counted);
        self.counted += pending.len();
        TokenCount {
            tokens: self.tokens.saturating_add(extrapolate(
                self.tokens,
                self.counted,
                self.overflow,
            )),
            exact: self.exact,
            encoding: self.enc.name(),
        }
    }
}
