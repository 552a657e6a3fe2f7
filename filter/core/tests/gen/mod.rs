//! A seeded, deterministic generator of request bodies for the property
//! tests (`properties.rs`, `bounds.rs`): no dependency, a xorshift64* stream.
//!
//! Bodies are written as raw JSON text (not through `serde_json`), so they
//! carry what serialisers never produce: `\uXXXX` escapes (surrogate pairs
//! too), `\/`, odd white space, duplicate keys, numbers such as `-0.0` and
//! `123456789012345678901234567890`, and nesting up to a chosen depth.

// Each test binary uses a different part of the generator.
#![allow(dead_code)]

use std::fmt::Write as _;

/// xorshift64* (Vigna): small, fast, good enough for test inputs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // Never zero; mix the seed so nearby seeds differ at once.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Benign words: no deny-list phrase, no injection cue, no long digit runs.
const WORDS: &[&str] = &[
    "the",
    "weather",
    "in",
    "Paris",
    "is",
    "mild",
    "today",
    "please",
    "summarise",
    "this",
    "report",
    "about",
    "gardens",
    "and",
    "rivers",
    "what",
    "time",
    "does",
    "train",
    "leave",
    "Lyon",
    "a",
    "short",
    "poem",
    "on",
    "autumn",
    "leaves",
    "café",
    "naïve",
    "résumé",
    "Ελλάδα",
    "Москва",
    "東京",
    "서울",
    "مرحبا",
    "שלום",
    "e\u{301}te\u{301}",
    "a\u{308}\u{323}",
    "\u{1D518}\u{1D52B}\u{1D526}",
    "😀",
    "👩\u{200D}💻",
    "🇫🇷",
    "\u{10348}",
    "x\u{0301}\u{0302}\u{0303}",
    "\u{202B}rtl\u{202C}",
    "ok?",
    "yes!",
    "(maybe)",
    "[note]",
    "{curly}",
    "50%",
    "3",
    "42",
    "\"quoted\"",
    "back\\slash",
    "path/to/file",
    "tab\there",
    "line\nbreak",
    "crlf\r\nend",
    "nul\u{7f}",
    "bell\u{7}",
    "£5",
    "€10",
    "¥",
];

/// A benign text of a few words.
pub fn text(rng: &mut Rng) -> String {
    let n = 1 + rng.below(12);
    let mut s = String::new();
    for i in 0..n {
        if i > 0 {
            s.push_str(rng.pick(&[" ", " ", " ", "  ", "\n", ", ", ". "]));
        }
        s.push_str(rng.pick(WORDS));
    }
    s
}

/// `s` as a JSON string literal, each character spelled one of the ways
/// JSON allows (literal, `\uXXXX`, surrogate pair, short escape).
pub fn literal(rng: &mut Rng, s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str(if rng.one_in(4) { "\\u0022" } else { "\\\"" }),
            '\\' => out.push_str(if rng.one_in(4) { "\\u005C" } else { "\\\\" }),
            '\n' => out.push_str(if rng.one_in(4) { "\\u000a" } else { "\\n" }),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '/' if rng.one_in(2) => out.push_str("\\/"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if rng.one_in(6) => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    if rng.one_in(2) {
                        let _ = write!(out, "\\u{:04X}", unit);
                    } else {
                        let _ = write!(out, "\\u{:04x}", unit);
                    }
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// White space between tokens: usually none or a space, sometimes odd.
pub fn ws(rng: &mut Rng) -> &'static str {
    if rng.one_in(2) {
        ""
    } else {
        rng.pick(&[" ", "\n", "\t", "\r\n", "  \n\t ", "\r"])
    }
}

/// Numbers `serde_json` reads (its default build refuses out-of-range floats
/// such as `1e400`; [`HUGE_FLOAT`] is tested apart).
const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "-0.0",
    "0.5",
    "1e3",
    "1E-7",
    "2.5e+10",
    "123456789012345678901234567890",
    "-9223372036854775809",
    "18446744073709551616",
    "1.7976931348623157e308",
    "5e-324",
    "0.1000000000000000055511151231257827",
    "-1",
    "1024",
];

/// A float past f64's range: `serde_json` refuses it, so the filter answers 400.
pub const HUGE_FLOAT: &str = "1e400";

/// A JSON object written by hand: members in order, duplicates allowed.
pub struct Obj<'r> {
    rng: &'r mut Rng,
    out: String,
    first: bool,
}

impl<'r> Obj<'r> {
    pub fn new(rng: &'r mut Rng) -> Obj<'r> {
        let mut out = String::from("{");
        out.push_str(ws(rng));
        Obj {
            rng,
            out,
            first: true,
        }
    }

    pub fn rng(&mut self) -> &mut Rng {
        self.rng
    }

    /// Add `key: raw` (`raw` is already JSON).
    pub fn raw(&mut self, key: &str, raw: &str) -> &mut Self {
        if !self.first {
            self.out.push_str(ws(self.rng));
            self.out.push(',');
            self.out.push_str(ws(self.rng));
        }
        self.first = false;
        let k = literal(self.rng, key);
        self.out.push_str(&k);
        self.out.push_str(ws(self.rng));
        self.out.push(':');
        self.out.push_str(ws(self.rng));
        self.out.push_str(raw);
        self
    }

    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        let v = literal(self.rng, value);
        self.raw(key, &v)
    }

    pub fn done(mut self) -> String {
        self.out.push_str(ws(self.rng));
        self.out.push('}');
        self.out
    }
}

/// A JSON array of raw items.
pub fn array(rng: &mut Rng, items: &[String]) -> String {
    let mut out = String::from("[");
    out.push_str(ws(rng));
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(ws(rng));
            out.push(',');
            out.push_str(ws(rng));
        }
        out.push_str(item);
    }
    out.push_str(ws(rng));
    out.push(']');
    out
}

/// `depth` nested containers (arrays and objects mixed) around a number.
pub fn nested(rng: &mut Rng, depth: usize) -> String {
    let mut open = String::new();
    let mut close = Vec::new();
    for _ in 0..depth {
        if rng.one_in(2) {
            open.push('[');
            close.push(']');
        } else {
            open.push_str("{\"k\":");
            close.push('}');
        }
    }
    open.push_str(rng.pick(NUMBERS));
    while let Some(c) = close.pop() {
        open.push(c);
    }
    open
}

/// The API a generated body speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Chat,
    Responses,
    Completions,
    Embeddings,
    Anthropic,
    Unknown,
}

impl Api {
    pub const ALL: [Api; 6] = [
        Api::Chat,
        Api::Responses,
        Api::Completions,
        Api::Embeddings,
        Api::Anthropic,
        Api::Unknown,
    ];

    pub fn path(self) -> &'static str {
        match self {
            Api::Chat => "/v1/chat/completions",
            Api::Responses => "/v1/responses",
            Api::Completions => "/v1/completions",
            Api::Embeddings => "/v1/embeddings",
            Api::Anthropic => "/v1/messages",
            Api::Unknown => "/v1/other",
        }
    }
}

/// A generated body and what the generator knows about it.
pub struct Body {
    pub api: Api,
    pub bytes: Vec<u8>,
    /// The deepest nesting of containers (the top-level object counts 1).
    pub depth: usize,
    /// The body holds a number `serde_json` refuses ([`HUGE_FLOAT`]).
    pub huge_float: bool,
    /// The top-level object has `model` twice (the filter refuses such requests).
    pub duplicate_key: bool,
    /// The texts placed where the API's extraction reads them.
    pub texts: Vec<String>,
}

/// Options for [`body`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Shape {
    /// Nesting of the `metadata` member, counted from the top-level object;
    /// `None`: a random shallow depth.
    pub depth: Option<usize>,
    /// Sometimes add a float past f64's range.
    pub huge_floats: bool,
    /// Sometimes give the top-level object a second `model` member.
    pub duplicate_keys: bool,
}

/// A body of `api` whose scanned texts are made by `make_text` (called once per text).
pub fn body(
    rng: &mut Rng,
    api: Api,
    shape: Shape,
    make_text: &mut dyn FnMut(&mut Rng) -> String,
) -> Body {
    let mut texts = Vec::new();
    let mut text = |rng: &mut Rng| {
        let t = make_text(rng);
        texts.push(t.clone());
        t
    };
    let depth = shape.depth.unwrap_or_else(|| 2 + rng.below(6));
    // The metadata member sits one level below the top object.
    let meta = nested(rng, depth.saturating_sub(1));
    let huge_float = shape.huge_floats && rng.one_in(16);
    let mut o = Obj::new(rng);
    // A duplicate `model` key: serde_json would keep the last one, an upstream
    // may keep the first; the filter refuses it.
    let duplicate_key = shape.duplicate_keys && o.rng().one_in(4);
    if duplicate_key {
        o.str("model", "gpt-3.5-turbo");
    }
    match api {
        Api::Chat => {
            o.str("model", "gpt-4o");
            let n = 1 + o.rng().below(4);
            let mut msgs = Vec::new();
            for i in 0..n {
                let role = if i % 2 == 0 { "user" } else { "assistant" };
                let t = text(o.rng());
                let mut m = Obj::new(o.rng());
                m.str("role", role).str("content", &t);
                msgs.push(m.done());
            }
            let a = array(o.rng(), &msgs);
            o.raw("messages", &a);
        }
        Api::Responses => {
            o.str("model", "gpt-4o");
            let t = text(o.rng());
            if o.rng().one_in(2) {
                o.str("input", &t);
            } else {
                let mut part = Obj::new(o.rng());
                part.str("type", "input_text").str("text", &t);
                let part = part.done();
                let content = array(o.rng(), &[part]);
                let mut m = Obj::new(o.rng());
                m.str("role", "user").raw("content", &content);
                let m = m.done();
                let input = array(o.rng(), &[m]);
                o.raw("input", &input);
            }
            let t = text(o.rng());
            o.str("instructions", &t);
        }
        Api::Completions => {
            o.str("model", "gpt-3.5-turbo-instruct");
            let t = text(o.rng());
            o.str("prompt", &t);
        }
        Api::Embeddings => {
            o.str("model", "text-embedding-3-small");
            let items: Vec<String> = (0..1 + o.rng().below(3))
                .map(|_| {
                    let t = text(o.rng());
                    literal(o.rng(), &t)
                })
                .collect();
            let a = array(o.rng(), &items);
            o.raw("input", &a);
        }
        Api::Anthropic => {
            o.str("model", "claude-sonnet-4");
            o.raw("max_tokens", "1024");
            let t = text(o.rng());
            o.str("system", &t);
            let t = text(o.rng());
            let mut block = Obj::new(o.rng());
            block.str("type", "text").str("text", &t);
            let block = block.done();
            let content = array(o.rng(), &[block]);
            let mut m = Obj::new(o.rng());
            m.str("role", "user").raw("content", &content);
            let m = m.done();
            let msgs = array(o.rng(), &[m]);
            o.raw("messages", &msgs);
        }
        Api::Unknown => {
            if duplicate_key {
                o.str("model", "local-model");
            }
            let t = text(o.rng());
            o.str("question", &t);
            let t = text(o.rng());
            let mut inner = Obj::new(o.rng());
            inner.str("note", &t);
            let inner = inner.done();
            o.raw("extra", &inner);
        }
    }
    let n = o.rng().pick(NUMBERS);
    o.raw("temperature", n);
    if huge_float {
        o.raw("top_p", HUGE_FLOAT);
    }
    // Non-text members (numbers, booleans, null): never scanned, never changed.
    o.raw("metadata", &meta);
    o.raw("stream", "false");
    o.raw("user", "null");
    let bytes = o.done().into_bytes();
    Body {
        api,
        bytes,
        depth: depth.max(2),
        huge_float,
        duplicate_key,
        texts,
    }
}

/// A card number of `len` digits with a valid Luhn check digit.
pub fn luhn_card(rng: &mut Rng) -> String {
    let prefix: &str = rng.pick(&["4", "51", "55", "37"]);
    let len = if prefix == "37" { 15 } else { 16 };
    let mut digits: Vec<u32> = prefix.chars().filter_map(|c| c.to_digit(10)).collect();
    while digits.len() < len - 1 {
        digits.push(rng.below(10) as u32);
    }
    // Luhn: double every second digit from the right, the check digit excluded.
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    digits.push((10 - sum % 10) % 10);
    digits
        .iter()
        .filter_map(|d| char::from_digit(*d, 10))
        .collect()
}

/// An e-mail address.
pub fn email(rng: &mut Rng) -> String {
    let user: &str = rng.pick(&["anna.meier", "bob", "j.doe+tag", "x_y", "marie-claire"]);
    let host: &str = rng.pick(&[
        "example.com",
        "mail.example.org",
        "uni-xyz.de",
        "corp.co.uk",
    ]);
    format!("{user}{}@{host}", rng.below(1000))
}

/// An AWS access key id (`AKIA` and 16 upper-case letters or digits).
pub fn aws_key(rng: &mut Rng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut s = String::from("AKIA");
    for _ in 0..16 {
        s.push(ALPHABET[rng.below(ALPHABET.len())] as char);
    }
    s
}

/// A string literal or the bytes between two literals of a JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token<'a> {
    /// Bytes outside string literals (structure, numbers, white space).
    Other(&'a [u8]),
    /// A string literal, quotes included.
    Str(&'a [u8]),
}

/// Split valid JSON text into string literals and everything else.
pub fn tokens(json: &[u8]) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while i < json.len() {
        if json[i] == b'"' {
            if pos < i {
                out.push(Token::Other(&json[pos..i]));
            }
            let start = i;
            i += 1;
            while i < json.len() && json[i] != b'"' {
                i += if json[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(Token::Str(&json[start..i.min(json.len())]));
            pos = i;
        } else {
            i += 1;
        }
    }
    if pos < json.len() {
        out.push(Token::Other(&json[pos..]));
    }
    out
}
