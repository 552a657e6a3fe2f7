//! Credentials: tokens with a known prefix, JWTs, PEM private keys, and
//! high-entropy values assigned to a key, secret, token or password.

use super::types::PiiType;
use super::validators::{char_classes, shannon_entropy};
use super::{at, is_alnum, PiiPatternError, Scan};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

/// Values assigned to these names are checked as secrets (lower case,
/// substring of the name): key, token, secret and their translations.
pub const SECRET_NAMES: &[&str] = &[
    "key",
    "secret",
    "token",
    "credential",
    "auth",
    "bearer",
    "jeton",
    "geheim",
    "schlüssel",
    "schluessel",
    "clé",
    "clave",
    "chiave",
    "chave",
    "sleutel",
    "secreto",
    "segreto",
    "segredo",
];

/// Names whose values are passwords (shorter values are enough).
pub const PASSWORD_NAMES: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "passwort",
    "kennwort",
    "passphrase",
    "contraseña",
    "contrasena",
    "senha",
    "wachtwoord",
    "mot de passe",
    "mot_de_passe",
    "mdp",
];

/// Minimum length of a secret value (passwords: [`MIN_PASSWORD`]).
pub const MIN_SECRET: usize = 16;
pub const MIN_PASSWORD: usize = 8;
/// Minimum Shannon entropy (bits per byte) of a secret value.
pub const MIN_ENTROPY: f32 = 3.0;
pub const MIN_PASSWORD_ENTROPY: f32 = 2.5;

/// Whether a query parameter (`name=`) starts at `p`.
fn query_param_at(b: &[u8], p: usize) -> bool {
    let c = at(b, p);
    if !(c.is_ascii_alphabetic() || c == b'_') {
        return false;
    }
    let e = run(b, p, |c| {
        is_alnum(c) || matches!(c, b'_' | b'-' | b'.' | b'[' | b']')
    });
    at(b, e) == b'=' && e - p <= 64
}

fn token_char(c: u8) -> bool {
    is_alnum(c) || c == b'_' || c == b'-'
}

/// The end of a run of `ok` bytes from `p`.
fn run(b: &[u8], p: usize, ok: impl Fn(u8) -> bool) -> usize {
    let mut q = p;
    while q < b.len() && ok(at(b, q)) {
        q += 1;
    }
    q
}

fn starts(b: &[u8], p: usize, lit: &[u8]) -> bool {
    b.get(p..).is_some_and(|t| t.starts_with(lit))
}

/// Longest JWT header looked at (decodes to at most 1,024 bytes).
const JWT_HEADER_MAX_CHARS: usize = 1366;

/// Whether a JWT header (base64url) decodes to a JSON object with `alg`.
pub fn jwt_header_ok(header: &[u8]) -> bool {
    // At most 1,366 characters: 1,024 decoded bytes.
    if header.len() > JWT_HEADER_MAX_CHARS {
        return false;
    }
    std::str::from_utf8(header)
        .ok()
        .and_then(crate::detect::views::base64_decode)
        .and_then(|h| serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&h).ok())
        .is_some_and(|m| m.contains_key("alg"))
}

/// Whether a word starting with these two bytes may be a prefixed token.
#[inline]
pub(crate) fn maybe_prefix(first: u8, second: u8) -> bool {
    match first {
        b'A' => matches!(
            second,
            b'K' | b'S' | b'B' | b'C' | b'G' | b'I' | b'N' | b'R' | b'P'
        ),
        b'g' => matches!(second, b'h' | b'i' | b'l'),
        b's' | b'r' | b'p' => second == b'k',
        b'x' => matches!(second, b'o' | b'a'),
        b'e' => second == b'y',
        b'h' => second == b'o',
        _ => false,
    }
}

impl Scan<'_> {
    /// A token with a known prefix starting at `s`; returns its end.
    pub(crate) fn secret_prefix(&mut self, s: usize) -> Option<usize> {
        let b = self.b;
        let first = at(b, s);
        if !maybe_prefix(first, at(b, s + 1)) {
            return None;
        }
        if s > 0 && (token_char(at(b, s - 1)) || at(b, s - 1) >= 0x80) {
            return None;
        }
        match first {
            b'A' => self.aws_or_google(s),
            b'g' => self.github_or_gitlab(s),
            b's' | b'r' | b'p' => self.openai_anthropic_stripe(s),
            b'x' => self.slack(s),
            b'e' => self.jwt(s),
            b'h' => self.slack_webhook(s),
            _ => None,
        }
    }

    fn emit(&mut self, kind: PiiType, s: usize, e: usize, score: f32, rule: &'static str) -> usize {
        self.push(kind, s, e, score, rule);
        e
    }

    fn aws_or_google(&mut self, s: usize) -> Option<usize> {
        let b = self.b;
        if starts(b, s, b"AIza") {
            let e = run(b, s + 4, token_char);
            return (e - s == 39)
                .then(|| self.emit(PiiType::GoogleApiKey, s, e, 0.9, "secret.google-api-key"));
        }
        const AWS: [&[u8]; 11] = [
            b"AKIA", b"ASIA", b"ABIA", b"ACCA", b"AGPA", b"AIDA", b"AIPA", b"ANPA", b"ANVA",
            b"AROA", b"APKA",
        ];
        if !AWS.iter().any(|p| starts(b, s, p)) {
            return None;
        }
        let e = run(b, s + 4, |c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if e - s != 20 || is_alnum(at(b, e)) {
            return None;
        }
        let score = if starts(b, s, b"AKIA") || starts(b, s, b"ASIA") {
            0.9
        } else {
            0.75
        };
        Some(self.emit(PiiType::AwsAccessKey, s, e, score, "secret.aws-access-key"))
    }

    fn github_or_gitlab(&mut self, s: usize) -> Option<usize> {
        let b = self.b;
        if starts(b, s, b"github_pat_") {
            let e = run(b, s + 11, |c| is_alnum(c) || c == b'_');
            return (e - s - 11 >= 22)
                .then(|| self.emit(PiiType::GithubToken, s, e, 0.95, "secret.github"));
        }
        for p in [&b"ghp_"[..], b"gho_", b"ghu_", b"ghs_", b"ghr_"] {
            if starts(b, s, p) {
                let e = run(b, s + 4, is_alnum);
                return (e - s - 4 >= 30 && at(b, e) != b'_')
                    .then(|| self.emit(PiiType::GithubToken, s, e, 0.95, "secret.github"));
            }
        }
        if starts(b, s, b"glpat-") {
            let e = run(b, s + 6, token_char);
            return (e - s - 6 >= 20)
                .then(|| self.emit(PiiType::GitlabToken, s, e, 0.95, "secret.gitlab"));
        }
        None
    }

    fn openai_anthropic_stripe(&mut self, s: usize) -> Option<usize> {
        let b = self.b;
        if starts(b, s, b"sk-ant-") {
            let e = run(b, s + 7, token_char);
            return (e - s - 7 >= 32)
                .then(|| self.emit(PiiType::AnthropicApiKey, s, e, 0.95, "secret.anthropic"));
        }
        for p in [&b"sk-proj-"[..], b"sk-svcacct-", b"sk-admin-"] {
            if starts(b, s, p) {
                let e = run(b, s + p.len(), token_char);
                return (e - s - p.len() >= 20)
                    .then(|| self.emit(PiiType::OpenaiApiKey, s, e, 0.95, "secret.openai"));
            }
        }
        if starts(b, s, b"sk-") {
            let e = run(b, s + 3, is_alnum);
            let body = b.get(s + 3..e)?;
            if at(b, e) == b'-' || at(b, e) == b'_' || body.len() < 32 || char_classes(body) < 2 {
                return None;
            }
            let legacy = body.windows(8).any(|w| w == b"T3BlbkFJ");
            let score = if legacy { 0.95 } else { 0.85 };
            return Some(self.emit(PiiType::OpenaiApiKey, s, e, score, "secret.openai"));
        }
        for (p, score) in [
            (&b"sk_live_"[..], 0.95),
            (b"rk_live_", 0.95),
            (b"sk_test_", 0.85),
            (b"rk_test_", 0.85),
            (b"pk_live_", 0.8),
            (b"pk_test_", 0.6),
        ] {
            if starts(b, s, p) {
                let e = run(b, s + 8, is_alnum);
                return (e - s - 8 >= 10 && at(b, e) != b'_')
                    .then(|| self.emit(PiiType::StripeKey, s, e, score, "secret.stripe"));
            }
        }
        None
    }

    fn slack(&mut self, s: usize) -> Option<usize> {
        let b = self.b;
        let prefixed = [
            &b"xoxb-"[..],
            b"xoxp-",
            b"xoxa-",
            b"xoxr-",
            b"xoxs-",
            b"xoxo-",
            b"xapp-",
        ]
        .iter()
        .any(|p| starts(b, s, p));
        if !prefixed {
            return None;
        }
        let e = run(b, s + 5, |c| is_alnum(c) || c == b'-');
        let body = b.get(s + 5..e)?;
        (body.len() >= 10 && body.iter().any(u8::is_ascii_digit))
            .then(|| self.emit(PiiType::SlackToken, s, e, 0.95, "secret.slack"))
    }

    /// `https://hooks.slack.com/services/T.../B.../...` (from the scheme).
    fn slack_webhook(&mut self, s: usize) -> Option<usize> {
        let b = self.b;
        if !starts(b, s, b"hooks.slack.com/services/") {
            return None;
        }
        let body = s + 25;
        let e = run(b, body, |c| is_alnum(c) || c == b'/');
        if e - body < 20 || !starts(b, body, b"T") {
            return None;
        }
        let start = if s >= 8 && b.get(s - 8..s) == Some(b"https://") {
            s - 8
        } else {
            s
        };
        Some(self.emit(PiiType::SlackToken, start, e, 0.95, "secret.slack-webhook"))
    }

    /// `eyJ...` header, payload and signature in base64url, the header a
    /// JSON object with `alg`.
    fn jwt(&mut self, s: usize) -> Option<usize> {
        let b = self.b;
        if !starts(b, s, b"eyJ") {
            return None;
        }
        let h = run(b, s, token_char);
        if at(b, h) != b'.' {
            return None;
        }
        let p = run(b, h + 1, token_char);
        if p == h + 1 || at(b, p) != b'.' {
            return None;
        }
        let e = run(b, p + 1, token_char);
        if !jwt_header_ok(b.get(s..h)?) {
            return None;
        }
        Some(self.emit(PiiType::Jwt, s, e, 0.95, "secret.jwt"))
    }

    /// A PEM private key block from `-----BEGIN ... PRIVATE KEY-----` at `s`
    /// through its END line (or the end of its body when that is missing).
    pub(crate) fn pem(&mut self, s: usize) -> Option<usize> {
        if !self.on(PiiType::PrivateKey) {
            return None;
        }
        let b = self.b;
        let label_start = s + 11;
        let label_end = label_start
            + b.get(label_start..)?
                .iter()
                .take(64)
                .position(|&c| c == b'-')?;
        let label = b.get(label_start..label_end)?;
        if !starts(b, label_end, b"-----")
            || !label.ends_with(b"PRIVATE KEY") && !label.ends_with(b"PRIVATE KEY BLOCK")
        {
            return None;
        }
        let body = label_end + 5;
        let rest = self.text.get(body..)?;
        let end = match rest.find("-----END ") {
            Some(k) => {
                let e_label = body + k + 9;
                let close = e_label
                    + b.get(e_label..)?
                        .iter()
                        .take(80)
                        .position(|&c| c == b'-')
                        .unwrap_or(0);
                if starts(b, close, b"-----") {
                    close + 5
                } else {
                    e_label
                }
            }
            None => run(b, body, |c| {
                is_alnum(c)
                    || matches!(
                        c,
                        b'+' | b'/' | b'=' | b'\n' | b'\r' | b' ' | b'\\' | b':' | b',' | b'-'
                    )
            }),
        };
        self.push(PiiType::PrivateKey, s, end, 1.0, "secret.private-key");
        Some(end)
    }

    /// A value assigned with `:` or `=` at `p` to a name that says secret.
    pub(crate) fn assignment(&mut self, p: usize) -> Option<usize> {
        let b = self.b;
        let op = at(b, p);
        let next = at(b, p + 1);
        if op == b'='
            && (next == b'=' || p == 0 || matches!(at(b, p - 1), b'=' | b'!' | b'<' | b'>'))
        {
            return None;
        }
        if op == b':' && next == b'/' && at(b, p + 2) == b'/' {
            return self.url_password(p + 3);
        }
        if op == b':' && (next == b':' || next == b'/') {
            return None;
        }
        // The name: back over spaces and a quote, then name characters.
        let mut k = p;
        while k > 0 && at(b, k - 1) == b' ' && p - k < 4 {
            k -= 1;
        }
        if k > 0 && matches!(at(b, k - 1), b'"' | b'\'' | b'`') {
            k -= 1;
        }
        let name_end = k;
        // At most three words ("api key", "mot de passe"), 48 bytes.
        let mut spaces = 0;
        while k > 0 && name_end - k < 48 {
            let c = at(b, k - 1);
            if c == b' ' {
                if spaces == 2 || k < 2 || at(b, k - 2) == b' ' {
                    break;
                }
                spaces += 1;
            } else if !(is_alnum(c) || matches!(c, b'_' | b'-' | b'.') || c >= 0x80) {
                break;
            }
            k -= 1;
        }
        while k < name_end && (!self.text.is_char_boundary(k) || at(b, k) == b' ') {
            k += 1;
        }
        if k > 0 && matches!(at(b, k - 1), b'/' | b'+') {
            return None;
        }
        let name = b.get(k..name_end)?;
        if name.is_empty() {
            return None;
        }
        let (mut secret, mut password) = (false, false);
        for m in self.pats.names.find_iter(name) {
            if m.pattern().as_usize() < SECRET_NAMES.len() {
                secret = true;
            } else {
                password = true;
            }
        }
        let n = name.len();
        if n >= 4
            && name
                .get(n - 4..)
                .is_some_and(|t| t.eq_ignore_ascii_case(b"pass"))
            && (n == 4 || matches!(at(name, n - 5), b'_' | b'-' | b' '))
        {
            password = true;
        }
        if !(secret || password) {
            return None;
        }
        self.assign_value(p, name, password)
    }

    fn assign_value(&mut self, p: usize, name: &[u8], password: bool) -> Option<usize> {
        let b = self.b;
        let has = |w: &[u8]| name.windows(w.len()).any(|x| x.eq_ignore_ascii_case(w));
        let mut v = p + 1;
        while at(b, v) == b' ' && v - p < 5 {
            v += 1;
        }
        let quote = at(b, v);
        let quoted = matches!(quote, b'"' | b'\'' | b'`');
        if quoted {
            v += 1;
        }
        let stop = |c: u8| {
            c == 0
                || c.is_ascii_whitespace()
                || (quoted && c == quote)
                || (!quoted && b",;)}]\"'<>".contains(&c))
        };
        let mut e = v;
        // `&` ends an unquoted value only where a query parameter follows
        // (`?password=x&user=y`); inside a password (`Tr0ub4dor&3x`) it is a
        // character of the value, and a value cut there would leave its tail
        // unmasked.
        while e < b.len() && e - v <= 512 && !stop(at(b, e)) {
            if !quoted && at(b, e) == b'&' && query_param_at(b, e + 1) {
                break;
            }
            e += 1;
        }
        // A trailing sentence dot is not part of an unquoted value.
        if !quoted && e > v && at(b, e - 1) == b'.' {
            e -= 1;
        }
        let value = b.get(v..e)?;
        if value.is_empty() || value.len() > 512 || !self.text.is_char_boundary(e) {
            return None;
        }
        // A token with a known prefix is reported as itself.
        if let Some(end) = self.secret_prefix(v) {
            return Some(end);
        }
        if placeholder(value) || code_like(value) {
            return None;
        }
        let entropy = shannon_entropy(value);
        let classes = char_classes(value);
        if (has(b"aws") || has(b"secret") && self.aws_nearby(p))
            && value.len() == 40
            && value.iter().all(|&c| is_alnum(c) || c == b'/' || c == b'+')
            && classes >= 2
            && entropy >= MIN_ENTROPY
        {
            return Some(self.emit(PiiType::AwsSecretKey, v, e, 0.9, "secret.aws-secret-key"));
        }
        let ok = if password {
            value.len() >= MIN_PASSWORD
                && classes >= 2
                && (entropy >= MIN_PASSWORD_ENTROPY || classes >= 3)
        } else {
            value.len() >= MIN_SECRET
                && classes >= 2
                && value.iter().any(u8::is_ascii_digit)
                && entropy >= MIN_ENTROPY
        };
        if !ok {
            return None;
        }
        let score = if password { 0.75 } else { 0.8 };
        Some(self.emit(PiiType::Secret, v, e, score, "secret.assignment"))
    }

    /// A 40-character AWS secret access key outside an assignment, next to
    /// "aws" and "secret" ("AWS secret key wJalr..."); returns its end.
    pub(crate) fn aws_secret_standalone(&mut self, s: usize) -> Option<usize> {
        if !self.on(PiiType::AwsSecretKey) {
            return None;
        }
        let b = self.b;
        // A key may start with `+` or `/` ("secret /gP60H1f..."): the word at `s`
        // is then what follows it.
        let s = if s >= 1
            && matches!(at(b, s - 1), b'+' | b'/')
            && (s == 1
                || matches!(
                    at(b, s - 2),
                    b' ' | b'\t' | b'\n' | b'"' | b'\'' | b'=' | b':'
                )) {
            s - 1
        } else {
            s
        };
        let e = run(b, s, |c| is_alnum(c) || c == b'/' || c == b'+');
        let value = b.get(s..e)?;
        // Two classes are enough (letters only happens): the words around decide.
        if value.len() != 40
            || !super::numbers::left_ok(self.text, s)
            || !value.iter().any(u8::is_ascii_uppercase)
            || !value.iter().any(u8::is_ascii_lowercase)
            || shannon_entropy(value) < MIN_ENTROPY
        {
            return None;
        }
        let window = b.get(s.saturating_sub(64)..s)?;
        let has = |w: &[u8]| window.windows(w.len()).any(|x| x.eq_ignore_ascii_case(w));
        // "aws" or an AWS access key id ("access key AKIA..., secret wJalr...").
        let aws = has(b"aws") || window.windows(4).any(|x| x == b"AKIA" || x == b"ASIA");
        // "secret" and its translations (secreto, secrète, segreto, segredo, geheim).
        let secret = has(b"secr") || has(b"segre") || has(b"geheim");
        if !(aws && secret) {
            return None;
        }
        Some(self.emit(PiiType::AwsSecretKey, s, e, 0.85, "secret.aws-secret-key"))
    }

    /// Whether "aws" occurs in the 64 bytes before `p`.
    fn aws_nearby(&self, p: usize) -> bool {
        let from = p.saturating_sub(64);
        self.b
            .get(from..p)
            .is_some_and(|w| w.windows(3).any(|x| x.eq_ignore_ascii_case(b"aws")))
    }
}

/// Words that name a password or secret in prose ("the password is ...",
/// "das Passwort lautet ...", "le mot de passe de la base est ..."), in
/// en, de, fr, es, it, nl, pt (lower case; a word of the text must start
/// with one and end where it ends).
pub const SECRET_NOUNS: &[&str] = &[
    "password",
    "pwd",
    "passwort",
    "passwd",
    "passphrase",
    "kennwort",
    "wachtwoord",
    "contraseña",
    "contrasena",
    "senha",
    "mot de passe",
    "secret",
    "secreto",
    "segreto",
    "segredo",
    "geheimnis",
    "geheim",
    "token",
    "jeton",
    "bearer",
    "pw",
    // "API key is ...", "Der API-Schlüssel ist ...", "La clé API est ...".
    "key",
    "schlüssel",
    "schluessel",
    "clé",
    "clave",
    "chiave",
    "chave",
    "sleutel",
];

/// Words that name a user name and password pair ("the login for the staging
/// box is admin / X", "credentials: root:X", "Zugangsdaten: admin / X"), in
/// en, de, fr, es, it, nl, pt (lower case, whole ASCII words).
pub const LOGIN_NOUNS: &[&str] = &[
    "login",
    "logins",
    "credentials",
    "creds",
    "zugangsdaten",
    "anmeldedaten",
    "logindaten",
    "identifiants",
    "credenciales",
    "credenziali",
    "inloggegevens",
    "credenciais",
];

/// Whether a letters-only word of `len` bytes starting with these two may
/// be a [`LOGIN_NOUNS`] word.
#[inline]
pub(crate) fn maybe_login(len: usize, a: u8, b: u8) -> bool {
    (5..=13).contains(&len)
        && matches!(
            [a | 0x20, b | 0x20],
            [b'l', b'o'] | [b'c', b'r'] | [b'z', b'u'] | [b'a', b'n'] | [b'i', b'd'] | [b'i', b'n']
        )
}

/// The verbs and prepositions that introduce the value after a noun ("is",
/// "set ... to", "lautet", "est", "es", "è", "é").
const INTRO: &[&str] = &[
    "is", "was", "to", "as", "are", "ist", "lautet", "war", "auf", "est", "était", "es", "era",
    "è", "é", "zijn", "wordt", "naar", "sera", "será", "sarà", "lauten", "sind", "sont", "son",
    "sono", "são", "were",
];

/// The end of a value starting at `v`: up to whitespace, a NUL, the closing
/// `quote` or 65 bytes, without the sentence punctuation and closing quotes
/// after it.
fn value_end(b: &[u8], v: usize, quote: Option<u8>) -> usize {
    let mut e = v;
    while e < b.len() && e - v <= 64 && !at(b, e).is_ascii_whitespace() && at(b, e) != 0 {
        if Some(at(b, e)) == quote {
            break;
        }
        e += 1;
    }
    while e > v
        && matches!(
            at(b, e - 1),
            b'.' | b',' | b';' | b':' | b')' | b'"' | b'\''
        )
    {
        e -= 1;
    }
    e
}

/// Whether a word of `len` bytes starting with these three may be a
/// [`SECRET_NOUNS`] word (one table check per word of prose).
#[inline]
pub(crate) fn maybe_noun(len: usize, a: u8, b: u8, c: u8) -> bool {
    // "pw", and "cl" of "clé" (its ASCII head).
    (len == 2 && matches!([a | 0x20, b | 0x20], [b'p', b'w'] | [b'c', b'l']))
        || (3..=10).contains(&len)
            && matches!(
                [a | 0x20, b | 0x20, c | 0x20],
                [b'p', b'a', b's']
                    | [b'k', b'e', b'y']
                    | [b's', b'c', b'h']
                    | [b'c', b'l', b'a']
                    | [b'c', b'h', b'i' | b'a']
                    | [b's', b'l', b'e']
                    | [b'b', b'e', b'a']
                    | [b'p', b'w', b'd']
                    | [b'k', b'e', b'n']
                    | [b'w', b'a', b'c']
                    | [b'c', b'o', b'n']
                    | [b's', b'e', b'n' | b'c' | b'g']
                    | [b'm', b'o', b't']
                    | [b'g', b'e', b'h']
                    | [b't', b'o', b'k']
                    | [b'j', b'e', b't']
            )
}

/// A value in prose after a secret noun: 8 to 64 bytes with a letter and
/// two character classes, and a digit or symbol (or, letters only, at least
/// three of each case: `QwErTyUiOp`); not an address, a URL or a placeholder.
fn prose_value_ok(v: &[u8]) -> bool {
    let n = v.len();
    if !(MIN_PASSWORD..=64).contains(&n) || placeholder(v) || v.iter().any(|c| b"()[]".contains(c))
    {
        return false;
    }
    if !v.iter().any(u8::is_ascii_alphabetic) || char_classes(v) < 2 {
        return false;
    }
    if v.windows(3).any(|w| w == b"://") {
        return false;
    }
    if let Some(at_sign) = v.iter().position(|&c| c == b'@') {
        if v.get(at_sign + 1..).is_some_and(|d| d.contains(&b'.')) {
            return false;
        }
    }
    let other = v.iter().any(|c| !c.is_ascii_alphabetic());
    let upper = v.iter().filter(|c| c.is_ascii_uppercase()).count();
    let lower = v.iter().filter(|c| c.is_ascii_lowercase()).count();
    // Letters only: mixed case that no word has (`QwErTyUiOp`, `wChjdkhpZwp`;
    // not `JavaScript`, `McDonald`).
    other || (upper >= 3 && lower >= 3) || case_switches(v) >= 4
}

impl Scan<'_> {
    /// A secret noun at the word `s..`, then a value a few words on ("Set
    /// the webhook secret to X", "La contraseña de la base de datos es X");
    /// returns where the pass resumes.
    pub(crate) fn secret_phrase(&mut self, s: usize, e: usize) -> Option<usize> {
        // The ASCII head of every noun is 2 to 10 letters ("pw", "cl" of "clé", "contrase").
        if !(2..=10).contains(&(e - s)) || !self.on(PiiType::Secret) {
            return None;
        }
        let b = self.b;
        let head = b.get(s..e)?;
        let noun = SECRET_NOUNS.iter().find(|w| {
            let w = w.as_bytes();
            w.get(..head.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(head))
                && w.get(head.len()).is_none_or(|&c| c == b' ' || c >= 0x80)
                && b.get(s..s + w.len())
                    .is_some_and(|t| t.eq_ignore_ascii_case(w))
                && super::context::boundary_after(self.text, s + w.len())
        })?;
        let p = s + noun.len();
        // The value right after the noun ("password Falcon9105@", "a senha
        // Tiger8440@", "Password - X"): only one that no word of prose is.
        if let Some(end) = self.prose_value(p, true) {
            return Some(end);
        }
        let verb_end = self.intro_after(p, |c| c == b' ' || c == b'-')?;
        self.prose_value(verb_end, false)
    }

    /// From `p` (after a noun): up to six filler words (letters only), each
    /// after one or two `sep` bytes, then one of [`INTRO`]; returns where
    /// that verb ends.
    fn intro_after(&self, mut p: usize, sep: impl Fn(u8) -> bool) -> Option<usize> {
        let b = self.b;
        for _ in 0..7 {
            let ws = run(b, p, &sep);
            if ws == p || ws - p > 2 {
                return None;
            }
            let we = self.word_end(ws);
            if we == ws {
                return None;
            }
            let word = self.text.get(ws..we)?;
            if INTRO.iter().any(|w| word.eq_ignore_ascii_case(w)) {
                return Some(we);
            }
            if word.len() > 16 || !word.chars().all(char::is_alphabetic) {
                return None;
            }
            p = we;
        }
        None
    }

    /// A login noun at the word `s..e`, then (after `:` or a few words and a
    /// verb) a user name and a password, `user / password` or
    /// `user:password`: the password is reported; returns where the pass
    /// resumes.
    pub(crate) fn login_pair(&mut self, s: usize, e: usize) -> Option<usize> {
        if !self.on(PiiType::Secret) {
            return None;
        }
        let b = self.b;
        let word = b.get(s..e)?;
        if !LOGIN_NOUNS
            .iter()
            .any(|w| word.eq_ignore_ascii_case(w.as_bytes()))
        {
            return None;
        }
        if at(b, e) == b':' {
            return self.pair_value(e + 1);
        }
        let we = self.intro_after(e, |c| c == b' ')?;
        self.pair_value(if at(b, we) == b':' { we + 1 } else { we })
    }

    /// `user / password` or `user:password` after optional spaces at `p`.
    fn pair_value(&mut self, p: usize) -> Option<usize> {
        let b = self.b;
        let u = run(b, p, |c| c == b' ');
        if u - p > 2 {
            return None;
        }
        let user_end = run(b, u, |c| is_alnum(c) || matches!(c, b'.' | b'_' | b'-'));
        if user_end == u || user_end - u > 64 {
            return None;
        }
        // " / ", " : ", "/" or ":" (the same spacing on both sides).
        let v = match (at(b, user_end), at(b, user_end + 1), at(b, user_end + 2)) {
            (b' ', b'/' | b':', b' ') => user_end + 3,
            (b'/' | b':', c, _) if c > b' ' => user_end + 1,
            _ => return None,
        };
        let end = value_end(b, v, None);
        if !self.text.is_char_boundary(end) {
            return None;
        }
        let value = b.get(v..end)?;
        if value.contains(&b'/') || known_prefix(value) || !prose_value_ok(value) {
            return None;
        }
        Some(self.emit(PiiType::Secret, v, end, 0.75, "secret.login-pair"))
    }

    /// The end of the word (Unicode letters and digits) at `p`.
    fn word_end(&self, p: usize) -> usize {
        let Some(t) = self.text.get(p..) else {
            return p;
        };
        p + t
            .char_indices()
            .find(|(_, c)| !c.is_alphanumeric())
            .map_or(t.len(), |(i, _)| i)
    }

    /// The value after an introducing word ending at `p`; `direct`: right
    /// after the noun, without a verb (then it needs a digit and no `/`, and a
    /// known token or AWS key is left to the word scan).
    fn prose_value(&mut self, p: usize, direct: bool) -> Option<usize> {
        let b = self.b;
        // "password: X" and "password=X" are assignments (their own rule).
        if direct && at(b, p) != b' ' {
            return None;
        }
        let mut v = p;
        while matches!(at(b, v), b' ' | b':') && v - p < 3 {
            v += 1;
        }
        if direct && at(b, v) == b'-' && at(b, v + 1) == b' ' {
            v += 2;
        }
        if v == p {
            return None;
        }
        let quote = at(b, v);
        let quoted = matches!(quote, b'"' | b'\'' | b'`');
        if quoted {
            v += 1;
        }
        let e = value_end(b, v, quoted.then_some(quote));
        if !self.text.is_char_boundary(v) || !self.text.is_char_boundary(e) {
            return None;
        }
        if direct {
            let value = b.get(v..e)?;
            // A digit, and no path ("pwd /home/u2"), nor a word before its
            // punctuation ("Passwort vergessen?").
            let digit = value.iter().any(u8::is_ascii_digit);
            let path = value.contains(&b'/') || matches!(value.first(), Some(b'~' | b'.'));
            if !digit
                || path
                || !prose_value_ok(value)
                || e - v == 40
                || maybe_prefix(at(b, v), at(b, v + 1))
            {
                return None;
            }
            return Some(self.emit(PiiType::Secret, v, e, 0.7, "secret.phrase"));
        }
        if let Some(end) = self.secret_prefix(v) {
            return Some(end);
        }
        // A known prefix whose token is not complete ("The key is AKIAIOSFODNN7",
        // a stream cut mid-key): not a generic secret, the token when it is whole.
        if b.get(v..e).is_some_and(known_prefix) {
            return None;
        }
        // "my AWS secret access key is wJalr...": the AWS key is reported as itself.
        if e - v == 40 {
            if let Some(end) = self.aws_secret_standalone(v) {
                return Some(end);
            }
        }
        let value = b.get(v..e)?;
        if !prose_value_ok(value) {
            return None;
        }
        Some(self.emit(PiiType::Secret, v, e, 0.75, "secret.phrase"))
    }

    /// The password of `scheme://user:password@host` (`p`: after `://`).
    fn url_password(&mut self, p: usize) -> Option<usize> {
        if !self.on(PiiType::Secret) {
            return None;
        }
        let b = self.b;
        let user_end = run(b, p, |c| {
            is_alnum(c) || matches!(c, b'.' | b'_' | b'-' | b'%')
        });
        // The user may be empty ("redis://:pass@cache:6379").
        if at(b, user_end) != b':' {
            return None;
        }
        let v = user_end + 1;
        let url_char = |c: u8| c > b' ' && c < 0x80 && !matches!(c, b'@' | b'/' | b'"' | b'\'');
        let mut e = run(b, v, url_char);
        // An unescaped `@` in the password ("app:Tiger7827@@db.internal"): the
        // user info ends at the last `@` before the host.
        while at(b, e) == b'@' {
            let next = run(b, e + 1, url_char);
            if at(b, next) != b'@' {
                break;
            }
            e = next;
        }
        if at(b, e) != b'@' || !is_alnum(at(b, e + 1)) {
            return None;
        }
        let value = b.get(v..e)?;
        let word = |w: &[u8]| value.eq_ignore_ascii_case(w);
        if value.len() < 6
            || placeholder(value)
            || word(b"password")
            || word(b"passwd")
            || word(b"secret")
            || char_classes(value) < 2
        {
            return Some(e + 1);
        }
        self.emit(PiiType::Secret, v, e, 0.8, "secret.url-password");
        // Past the `@`: the host is no e-mail domain.
        Some(e + 1)
    }
}

/// Whether `v` starts like a token of a known kind (AWS, Google, GitHub,
/// GitLab, OpenAI / Anthropic / Stripe, Slack, JWT).
fn known_prefix(v: &[u8]) -> bool {
    [
        &b"AKIA"[..],
        b"ASIA",
        b"AIza",
        b"ghp_",
        b"gho_",
        b"ghu_",
        b"ghs_",
        b"ghr_",
        b"github_pat_",
        b"glpat-",
        b"sk-",
        b"sk_",
        b"rk_",
        b"xox",
        b"eyJ",
    ]
    .iter()
    .any(|p| v.starts_with(p))
}

/// Values that stand for a secret rather than being one.
fn placeholder(v: &[u8]) -> bool {
    let has = |w: &[u8]| v.windows(w.len()).any(|x| x.eq_ignore_ascii_case(w));
    // `%DB_PASS%` and `%(password)s`, but not a value that merely starts with `%`.
    let percent = v.first() == Some(&b'%') && (v.last() == Some(&b'%') || v.get(1) == Some(&b'('));
    percent
        || dollar_placeholder(v)
        || matches!(v.first(), Some(b'{' | b'<' | b'['))
        // `xxx` / `XXX` (not `nXxxU`, which a random key may hold).
        || v.windows(3).any(|w| w == b"xxx" || w == b"XXX")
        || [
            &b"***"[..],
            b"...",
            b"changeme",
            b"your",
            b"placeholder",
            b"redacted",
            b"dummy",
        ]
        .iter()
        .any(|w| has(w))
}

/// A variable standing for the value: `${DB_PASS}`, `$(cat f)`, `$DB_PASS`,
/// `$db_pass`, `$dbPassword`; not a password that starts with `$`
/// (`$sM%0HmYTuFL57`, `$lDTyEpzEcyAc2`: symbols, or case changing at random).
fn dollar_placeholder(v: &[u8]) -> bool {
    let Some((&b'$', rest)) = v.split_first() else {
        return false;
    };
    match rest.first() {
        None | Some(b'{' | b'(') => true,
        Some(_) => {
            rest.iter().all(|&c| is_alnum(c) || c == b'_')
                && rest.first().is_some_and(|c| !c.is_ascii_digit())
                && case_switches(rest) <= 3
        }
    }
}

/// How often the case changes between two adjacent letters (`dbPassword`: 2,
/// `wChjdkhpZwp`: 4); digits and symbols in between do not count.
fn case_switches(v: &[u8]) -> usize {
    let mut n = 0;
    let mut last: Option<bool> = None;
    for &c in v {
        if c.is_ascii_alphabetic() {
            let up = c.is_ascii_uppercase();
            if last.is_some_and(|l| l != up) {
                n += 1;
            }
            last = Some(up);
        }
    }
    n
}

/// Values that are code rather than a literal: a call or an index
/// (`getpass(`, `env[`), or a name (letters, `_` and `.` only:
/// `userPassword`, `self.secret_value`, `process.env.TOKEN`).
fn code_like(v: &[u8]) -> bool {
    v.iter().any(|c| b"()[]".contains(c))
        || v.iter()
            .all(|&c| c.is_ascii_alphabetic() || c == b'_' || c == b'.')
}

/// The matcher of [`SECRET_NAMES`] then [`PASSWORD_NAMES`] (ASCII case-insensitive).
pub(crate) fn name_matcher() -> Result<AhoCorasick, PiiPatternError> {
    AhoCorasickBuilder::new()
        .kind(Some(AhoCorasickKind::DFA))
        .match_kind(MatchKind::LeftmostLongest)
        .ascii_case_insensitive(true)
        .build(SECRET_NAMES.iter().chain(PASSWORD_NAMES))
        .map_err(|e| PiiPatternError::Context(e.to_string()))
}
