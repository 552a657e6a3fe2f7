//! Context words: what the text just before a match says about it.
//!
//! As in Presidio, each type has a base score and words in seven languages
//! (en, de, fr, es, it, pt, nl) that raise it when one occurs in the
//! [`WINDOW`] bytes before the match; a few words ("order", "version",
//! "commit", ...) lower it. Matching is ASCII case-insensitive (non-ASCII
//! letters must be lower case as listed); a word must start at a word
//! boundary, and words of at most four bytes must also end at one ("tel" does not fire in "hotel" nor in "tell"), longer words are
//! prefixes ("telefon" fires in "Telefonnummer"). Dates of birth and
//! passport numbers, reported only next to a word, also accept one starting
//! within [`AFTER`] bytes after them in the same sentence ("am 15.03.1985 in
//! Bad Kissingen geboren").

use super::types::PiiType;
use super::PiiPatternError;
use std::collections::HashMap;

/// Bytes before a match searched for context words.
pub const WINDOW: usize = 64;
/// Bytes after a date of birth or passport number where a context word
/// still counts, in the same sentence ("am 15.03.1985 geboren"; dates of
/// birth: [`AFTER_BIRTH`]).
pub const AFTER: usize = 16;
/// For a date of birth, a word up to this many bytes after it counts (the
/// city of birth may come first: "am 15.03.1985 in Eisenhüttenstadt geboren").
pub const AFTER_BIRTH: usize = 48;
/// Added to the base score by a context word in the match's sentence (capped at 1.0).
pub const BOOST: f32 = 0.35;
/// Added by a context word only in an earlier sentence of the window: weaker
/// evidence ("SSN 536-22-8726. Routing number 021000021": the routing word
/// beats the SSN word for the second number).
pub const BOOST_EARLIER: f32 = 0.2;
/// Taken off the score by a negative word.
pub const PENALTY: f32 = 0.3;

/// The context words of a type.
pub fn words(kind: PiiType) -> &'static [&'static str] {
    match kind {
        PiiType::Email => &[
            "email", "e-mail", "mail", "courriel", "correo", "posta", "correio",
        ],
        PiiType::Phone => &[
            "phone",
            "telephone",
            "tel",
            "tel.",
            "mobile",
            "cell",
            "call",
            "fax",
            "whatsapp",
            "contact",
            "telefon",
            "handy",
            "rufnummer",
            "mobil",
            "anrufen",
            "téléphone",
            "telephone",
            "portable",
            "appeler",
            "teléfono",
            "telefono",
            "móvil",
            "movil",
            "llamar",
            "celular",
            "cellulare",
            "chiamare",
            "telefoon",
            "mobiel",
            "bellen",
            "telefone",
            "contato",
            "ligar",
            "durchwahl",
            "rückruf",
            "erreichen",
            "erreichbar",
            "joindre",
            "rappeler",
            "rappelée",
            "rappelé",
            "numéro",
            "número",
            "numero",
            "contactar",
            "contatta",
            "richiamat",
            "ligou",
            "retorno",
            "chiamami",
            "bereiken",
            "bereikbaar",
            "ligue",
        ],
        PiiType::CreditCard => &[
            "card",
            "credit",
            "debit",
            "visa",
            "mastercard",
            "amex",
            "kreditkarte",
            "karte",
            "karten",
            "carte",
            "bancaire",
            "tarjeta",
            "crédito",
            "credito",
            "carta",
            "cartão",
            "cartao",
            "kaart",
            "creditcard",
            "pan",
        ],
        PiiType::Iban => &[
            "iban",
            "account",
            "bank",
            "konto",
            "bankverbindung",
            "compte",
            "rib",
            "cuenta",
            "conto",
            "conta",
            "rekening",
            "sepa",
        ],
        PiiType::UsSsn => &["ssn", "social security", "social sec", "ss#", "ssn#"],
        PiiType::UkNin => &["national insurance", "nino", "nin", "ni number", "ni no"],
        PiiType::NhsNumber => &["nhs", "health service", "patient"],
        PiiType::EsDni => &["dni", "nif", "documento nacional", "identidad", "d.n.i"],
        PiiType::EsNie => &["nie", "nif", "extranjero", "identidad", "n.i.e"],
        PiiType::ItFiscalCode => &["codice fiscale", "cf", "c.f.", "fiscal code", "tax code"],
        PiiType::NlBsn => &["bsn", "burgerservicenummer", "sofinummer", "sofi"],
        PiiType::FrNir => &[
            "nir",
            "sécurité sociale",
            "securite sociale",
            "sécu",
            "secu",
            "insee",
            "carte vitale",
            "social security",
        ],
        PiiType::DeTaxId => &[
            "steuer",
            "steuer-id",
            "steueridentifikationsnummer",
            "identifikationsnummer",
            "idnr",
            "id-nr",
            "tin",
            "tax id",
            "tax identification",
        ],
        PiiType::Passport => &[
            "passport",
            "reisepass",
            "passnummer",
            "pass-nr",
            "passeport",
            "pasaporte",
            "passaporto",
            "paspoort",
            "passaporte",
        ],
        PiiType::IpAddress => &[
            "ip",
            "ipv4",
            "ipv6",
            "host",
            "server",
            "address",
            "ip-adresse",
            "adresse",
            "dirección",
            "direccion",
            "indirizzo",
            "endereço",
            "endereco",
            "ip-adres",
            "adres",
        ],
        PiiType::MacAddress => &[
            "mac",
            "hardware",
            "ethernet",
            "wifi",
            "wi-fi",
            "bssid",
            "adapter",
            "adresse mac",
        ],
        PiiType::UsRoutingNumber => &["routing", "aba", "rtn", "transit", "bank", "wire", "ach"],
        PiiType::DateOfBirth => &[
            "born",
            "dob",
            "d.o.b",
            "date of birth",
            "birth date",
            "birthdate",
            "birthday",
            "geboren",
            "geburtsdatum",
            "geburtstag",
            "geb.",
            "né",
            "née",
            "date de naissance",
            "naissance",
            "fecha de nacimiento",
            "nacimiento",
            "nacido",
            "nacida",
            "nato",
            "nata",
            "data di nascita",
            "nascita",
            "geboren op",
            "geboortedatum",
            "data de nascimento",
            "nascimento",
            "nascido",
            "nascida",
            "birth",
            "nació",
            "nacio",
            "nac.",
            "cumpleaños",
            "cumpleanos",
            "nacque",
            "compleanno",
            "verjaardag",
            "nasceu",
            "aniversário",
        ],
        _ => &[],
    }
}

/// Words that make a number less likely to be personal data.
pub const NEGATIVE: &[&str] = &[
    "order",
    "invoice",
    "tracking",
    "ticket",
    "version",
    "build",
    "commit",
    "sha",
    "release",
    "revision",
    "bestell",
    "rechnung",
    "sendungsnummer",
    "commande",
    "facture",
    "suivi",
    "pedido",
    "factura",
    "seguimiento",
    "versión",
    "ordine",
    "fattura",
    "versione",
    "bestelling",
    "factuur",
    "encomenda",
    "fatura",
    "versão",
    "rastreamento",
];

/// What the window before one match holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Context {
    /// Types (bits of [`PiiType`]) with a context word in the window.
    pub positive: u64,
    /// A negative word is in the window and still qualifies the match: no
    /// digit and no sentence end between them ("Order #123, the server
    /// 10.0.0.1": the order word went with its own number).
    pub negative: bool,
    /// Types with a context word after the last such negative word (for
    /// these the negative word does not count: "invoice. Tax ID 123").
    pub after_negative: u64,
    /// Types with a context word in the same sentence as the match (no
    /// sentence end between them).
    pub same_sentence: u64,
    /// Types of the context word closest before the match ("paspoortnummer
    /// X, BSN: 937179620": the BSN word is the one that goes with the number).
    pub nearest: u64,
}

impl Context {
    pub fn has(&self, kind: PiiType) -> bool {
        self.positive & kind.bit() != 0
    }

    /// Whether a negative word counts against `kind`.
    pub fn negative_for(&self, kind: PiiType) -> bool {
        self.negative && self.after_negative & kind.bit() == 0
    }
}

/// Collects the context words before one match, in text order.
struct Acc<'a> {
    text: &'a str,
    start: usize,
    ctx: Context,
    /// End of the last negative word.
    neg_end: Option<usize>,
}

impl<'a> Acc<'a> {
    fn new(text: &'a str, start: usize) -> Self {
        Acc {
            text,
            start,
            ctx: Context::default(),
            neg_end: None,
        }
    }

    fn add(&mut self, end: usize, bits: u64, negative: bool) {
        if negative {
            self.neg_end = Some(self.neg_end.map_or(end, |e| e.max(end)));
            self.ctx.after_negative = 0;
        } else {
            self.ctx.positive |= bits;
            self.ctx.nearest = bits;
            if !ends_sentence(self.text.as_bytes(), end, self.start) {
                self.ctx.same_sentence |= bits;
            }
            if self.neg_end.is_some() {
                self.ctx.after_negative |= bits;
            }
        }
    }

    fn finish(mut self) -> Context {
        if let Some(e) = self.neg_end {
            self.ctx.negative = !closes_scope(self.text.as_bytes(), e, self.start);
        }
        self.ctx
    }
}

/// Whether `b[from..to]` holds a digit or a sentence end (the end of a
/// negative word's scope).
fn closes_scope(b: &[u8], from: usize, to: usize) -> bool {
    b.get(from..to)
        .is_some_and(|g| g.iter().any(u8::is_ascii_digit))
        || ends_sentence(b, from, to)
}

/// Whether `b[from..to]` holds a sentence end.
fn ends_sentence(b: &[u8], from: usize, to: usize) -> bool {
    sentence_end(b, from, to) < to
}

/// Where the sentence that goes on at `from` ends (at most `to`): a line
/// break, or `.` `!` `?` `;` before a space, but not the dot of a short
/// abbreviation ("no.", "Nr.", "Tel.", "n.").
fn sentence_end(b: &[u8], from: usize, to: usize) -> usize {
    let mut i = from;
    while i < to {
        let c = b.get(i).copied().unwrap_or(0);
        let next = b.get(i + 1).copied().unwrap_or(b' ');
        if c == b'\n' {
            return i;
        }
        if matches!(c, b'.' | b'!' | b'?' | b';') && next.is_ascii_whitespace() {
            let letters = b
                .get(..i)
                .unwrap_or(&[])
                .iter()
                .rev()
                .take_while(|x| x.is_ascii_alphabetic())
                .count();
            if c != b'.' || !(1..=3).contains(&letters) {
                return i;
            }
        }
        i += 1;
    }
    to
}

/// Whether `between` (the text from a date to a birth word further on) is a
/// place of birth: a preposition, then capitalised words (" in Bad
/// Kissingen ", " in Main-Höchst ", " à Saint-Étienne ").
fn place_between(between: &str) -> bool {
    let mut words = between.split_whitespace();
    let prep = words.next().is_some_and(|w| {
        ["in", "im", "à", "a", "en", "em", "te", "at"]
            .iter()
            .any(|p| w.eq_ignore_ascii_case(p))
    });
    let mut places = 0;
    for w in words {
        if !w.chars().next().is_some_and(char::is_uppercase) {
            return false;
        }
        places += 1;
    }
    prep && (1..=4).contains(&places)
}

#[derive(Debug)]
pub struct ContextMatcher {
    /// Per word: lower-case bytes, types, negative, whole-word.
    entries: Vec<(&'static [u8], u64, bool, bool)>,
    /// Entry indices per bucket (see [`bucket`]).
    buckets: Vec<Vec<u16>>,
}

/// The bucket of a word starting with `a`, `b`: the first an ASCII letter,
/// the second a letter or anything else (27 columns).
fn bucket(a: u8, b: u8) -> Option<usize> {
    let a = a.to_ascii_lowercase();
    if !a.is_ascii_lowercase() {
        return None;
    }
    let b = b.to_ascii_lowercase();
    let col = if b.is_ascii_lowercase() {
        usize::from(b - b'a')
    } else {
        26
    };
    Some(usize::from(a - b'a') * 27 + col)
}

impl ContextMatcher {
    pub fn new() -> Result<Self, PiiPatternError> {
        let mut index: HashMap<&'static str, usize> = HashMap::new();
        let mut entries: Vec<(&'static [u8], u64, bool, bool)> = Vec::new();
        let mut add = |w: &'static str, bit: u64, negative: bool| {
            let i = *index.entry(w).or_insert_with(|| {
                entries.push((w.as_bytes(), 0, false, w.len() <= 4));
                entries.len() - 1
            });
            if let Some(e) = entries.get_mut(i) {
                e.1 |= bit;
                e.2 |= negative;
            }
        };
        for &kind in PiiType::ALL {
            for w in words(kind) {
                add(w, kind.bit(), false);
            }
        }
        for w in NEGATIVE {
            add(w, 0, true);
        }
        let mut buckets: Vec<Vec<u16>> = vec![Vec::new(); 26 * 27];
        for (i, (w, ..)) in entries.iter().enumerate() {
            let (Some(&a), Some(&b)) = (w.first(), w.get(1)) else {
                return Err(PiiPatternError::Context(format!(
                    "context word {:?} is shorter than two bytes",
                    String::from_utf8_lossy(w)
                )));
            };
            let slot = bucket(a, b).and_then(|k| buckets.get_mut(k));
            let (Some(slot), Ok(i)) = (slot, u16::try_from(i)) else {
                return Err(PiiPatternError::Context(format!(
                    "context word {:?} does not start with an ASCII letter",
                    String::from_utf8_lossy(w)
                )));
            };
            slot.push(i);
        }
        Ok(ContextMatcher { entries, buckets })
    }

    /// The context words starting at byte `i` (a word start), ending by `limit`.
    fn at_word(&self, text: &str, i: usize, limit: usize, mut f: impl FnMut(usize, u64, bool)) {
        let b = text.as_bytes();
        let (Some(&c0), Some(&c1)) = (b.get(i), b.get(i + 1)) else {
            return;
        };
        let Some(list) = bucket(c0, c1).and_then(|k| self.buckets.get(k)) else {
            return;
        };
        for &e in list {
            let Some(&(w, bits, negative, whole)) = self.entries.get(usize::from(e)) else {
                continue;
            };
            let end = i + w.len();
            if end > limit || !b.get(i..end).is_some_and(|t| t.eq_ignore_ascii_case(w)) {
                continue;
            }
            if whole && !boundary_after(text, end) {
                continue;
            }
            f(end, bits, negative);
        }
    }

    /// Calls `f(i)` for every word start `i` in `from..to` (an ASCII letter
    /// with no letter or digit before it).
    pub fn word_starts(text: &str, from: usize, to: usize, mut f: impl FnMut(usize)) {
        let b = text.as_bytes();
        let mut prev_alnum = from > 0 && !boundary_before(text, from);
        for i in from..to {
            let c = b.get(i).copied().unwrap_or(0);
            let alnum = c.is_ascii_alphanumeric() || c >= 0x80;
            if c.is_ascii_alphabetic() && !prev_alnum {
                f(i);
            }
            // A non-ASCII byte counts as a letter unless its character is not one.
            prev_alnum = if c >= 0x80 {
                text.is_char_boundary(i + 1) && !boundary_before(text, i + 1)
                    || (!text.is_char_boundary(i + 1) && prev_alnum)
            } else {
                alnum
            };
        }
    }

    /// [`ContextMatcher::before`] given the word starts of the text (sorted;
    /// the scan records them as it goes, so no byte is read twice).
    pub fn before_words(&self, text: &str, word_starts: &[usize], start: usize) -> Context {
        let ws = start.saturating_sub(WINDOW);
        let first = word_starts.partition_point(|&i| i < ws);
        let mut acc = Acc::new(text, start);
        for &i in word_starts.get(first..).unwrap_or(&[]) {
            if i >= start {
                break;
            }
            self.at_word(text, i, start, |end, bits, negative| {
                acc.add(end, bits, negative)
            });
        }
        acc.finish()
    }

    /// The context words starting within [`AFTER`] bytes after byte `end`
    /// (for the types only reported next to a word: a date of birth, a passport;
    /// for a date of birth within [`AFTER_BIRTH`]).
    pub fn after(&self, text: &str, end: usize) -> Context {
        // Not past the end of the sentence ("... on 13/05/2023. My date of birth").
        let to = sentence_end(text.as_bytes(), end, (end + AFTER_BIRTH).min(text.len()));
        let mut ctx = Context::default();
        Self::word_starts(text, end, to, |i| {
            let near = i - end <= AFTER;
            let place = !near && place_between(text.get(end..i).unwrap_or(""));
            self.at_word(text, i, text.len(), |_, bits, negative| {
                if near {
                    ctx.positive |= bits;
                    ctx.negative |= negative;
                } else if place {
                    ctx.positive |= bits & PiiType::DateOfBirth.bit();
                }
            })
        });
        ctx
    }

    /// The context of a match starting at byte `start` of `text`: the words
    /// that start and end within the [`WINDOW`] bytes before it.
    pub fn before(&self, text: &str, start: usize) -> Context {
        let ws = start.saturating_sub(WINDOW);
        let mut acc = Acc::new(text, start);
        Self::word_starts(text, ws, start, |i| {
            self.at_word(text, i, start, |end, bits, negative| {
                acc.add(end, bits, negative)
            })
        });
        acc.finish()
    }
}

/// Whether no letter or digit precedes byte `i`.
pub(crate) fn boundary_before(text: &str, i: usize) -> bool {
    text.get(..i)
        .and_then(|t| t.chars().next_back())
        .is_none_or(|c| !c.is_alphanumeric())
}

/// Whether no letter or digit follows byte `i`.
pub(crate) fn boundary_after(text: &str, i: usize) -> bool {
    text.get(i..)
        .and_then(|t| t.chars().next())
        .is_none_or(|c| !c.is_alphanumeric())
}

/// The score of a match from its base score and context: a context word
/// adds [`BOOST`], a negative word takes [`PENALTY`] (negative words are
/// ignored for secrets and e-mail addresses).
pub fn adjust(kind: PiiType, base: f32, ctx: &Context) -> f32 {
    let mut s = base;
    if ctx.has(kind) {
        s += if ctx.same_sentence & kind.bit() != 0 {
            BOOST
        } else {
            BOOST_EARLIER
        };
    }
    if ctx.negative_for(kind) && !kind.is_secret() && kind != PiiType::Email {
        s -= PENALTY;
    }
    s.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(text: &str) -> Context {
        let m = ContextMatcher::new().unwrap();
        m.before(text, text.len())
    }

    #[test]
    fn words_fire_on_boundaries_only() {
        assert!(ctx("Call me on ").has(PiiType::Phone));
        assert!(ctx("Telefonnummer: ").has(PiiType::Phone));
        assert!(!ctx("the hotel ").has(PiiType::Phone));
        assert!(!ctx("tell me ").has(PiiType::Phone));
        assert!(ctx("Reisepassnummer ").has(PiiType::Passport));
        assert!(ctx("fecha de nacimiento: ").has(PiiType::DateOfBirth));
        assert!(ctx("né le ").has(PiiType::DateOfBirth));
        assert!(ctx("Geburtsdatum: ").has(PiiType::DateOfBirth));
    }

    #[test]
    fn window_is_bounded_and_negative_words_count() {
        let far = format!("phone {}", "x".repeat(WINDOW));
        assert!(!ctx(&far).has(PiiType::Phone));
        assert!(ctx("Order #").negative);
        let c = ctx("version ");
        assert!((adjust(PiiType::IpAddress, 0.6, &c) - 0.3).abs() < 1e-6);
        assert!((adjust(PiiType::Jwt, 0.9, &c) - 0.9).abs() < 1e-6);
    }

    #[test]
    fn recorded_word_starts_agree_with_windows() {
        let m = ContextMatcher::new().unwrap();
        let text = "Order 1, call me 2, the hotel 3, Straße passport 4, x".repeat(3);
        let mut starts = Vec::new();
        ContextMatcher::word_starts(&text, 0, text.len(), |i| starts.push(i));
        for (i, _) in text.char_indices() {
            assert_eq!(
                m.before_words(&text, &starts, i),
                m.before(&text, i),
                "at {i}"
            );
        }
    }

    #[test]
    fn window_start_snaps_to_a_char_boundary() {
        let text = format!("{} phone: ", "€".repeat(20));
        assert!(ctx(&text).has(PiiType::Phone));
    }
}
