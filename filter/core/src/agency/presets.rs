//! The built-in deny patterns ([`DenyPreset`]) and the de-obfuscation every
//! deny pattern also runs on.

use super::config::DenyPreset;
use super::url::{find_urls, is_private_host};
use regex::{Regex, RegexBuilder};

/// One pattern of a preset: its name (shown in violations) and regex.
const DESTRUCTIVE_SHELL: &[(&str, &str)] = &[
    (
        "rm -r on a root or system path",
        r"(?m)\brm\s+(?:-\S*\s+)*(?:-[a-z]*r[a-z]*|--recursive)\s+(?:-\S*\s+)*(?:/\*?(?:\s|;|&|\||$)|~/?\*?(?:\s|;|&|\||$)|\$home\b|\*(?:\s|$)|/(?:bin|boot|dev|etc|home|lib|lib64|opt|root|sbin|srv|sys|usr|var)/?(?:\s|;|&|\||\*|$))",
    ),
    ("rm --no-preserve-root", r"\brm\b.*--no-preserve-root"),
    ("mkfs", r"\bmkfs(?:\.\w+)?\b"),
    ("dd to a device", r"\bdd\b[^\n]*\bof=/dev/"),
    (
        "fork bomb",
        r":\s*\(\s*\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:",
    ),
    (
        "chmod -R 777 /",
        r"(?m)\bchmod\s+(?:-\S*\s+)*-[a-z]*r[a-z]*\s+(?:-\S*\s+)*(?:0?777|a\+rwx)\s+/\*?(?:\s|;|&|\||$)",
    ),
    (
        "download piped into a shell",
        r"\b(?:curl|wget)\b[^|\n]*\|\s*(?:sudo\s+)?(?:ba|z|da|k|fi)?sh\b",
    ),
    (
        "shutdown or reboot",
        r"(?m)(?:^|[;&|(`]|\bsudo|\bexec)\s*(?:shutdown|reboot|halt|poweroff|init\s+[06])\b",
    ),
    (
        "DROP TABLE or DATABASE",
        r"\bdrop\s+(?:table|database|schema)\b",
    ),
    ("TRUNCATE", r"\btruncate\s+(?:table\s+)?[a-z_\[`]"),
    (
        "DELETE FROM without WHERE",
        r"(?m)\bdelete\s+from\s+[^\s;]+\s*(?:;|$)",
    ),
    (
        "git push --force",
        r"\bgit\s+push\b[^\n;&|]*(?:\s--force\b|\s-f\b|\s\+\S)",
    ),
    (
        "kubectl delete namespace",
        r"\bkubectl\s+(?:\S+\s+)*delete\s+(?:ns|namespaces?)\b",
    ),
];

const PATH_TRAVERSAL: &[(&str, &str)] = &[
    ("parent directory", r"(?:^|[/\\=\s])\.\.(?:[/\\]|$)"),
    (
        "encoded parent directory",
        r"(?:%2e|\.)(?:%2e|\.)(?:%2f|%5c)|%2e%2e(?:/|\\)",
    ),
    (
        "/etc/passwd or shadow",
        r"/etc/(?:passwd|shadow|sudoers|gshadow)\b",
    ),
    ("ssh keys", r"(?:^|[/~\s=])\.ssh(?:/|$)"),
    ("aws credentials", r"\.aws/(?:credentials|config)\b"),
    (
        ".env file",
        r"(?:^|[\s/\\=:])\.env(?:\.[\w.-]+)?(?:$|[\s;&|)])",
    ),
    ("process environment", r"/proc/(?:self|\d+)/environ\b"),
];

/// Private addresses written without a scheme (`curl 169.254.169.254/latest`,
/// `nc 10.0.0.5 22`, `localhost:8080`); URLs are parsed instead.
const PRIVATE_NETWORK: &[(&str, &str)] = &[
    (
        "private network address",
        r"(?:^|[\s=@(])(?:(?:127|10)\.\d{1,3}\.\d{1,3}\.\d{1,3}|172\.(?:1[6-9]|2\d|3[01])\.\d{1,3}\.\d{1,3}|192\.168\.\d{1,3}\.\d{1,3}|169\.254\.\d{1,3}\.\d{1,3}|0\.0\.0\.0|\[::1?\])(?::\d+)?(?:[/\s)]|$)",
    ),
    ("localhost", r"(?:^|[\s=@(])localhost(?::\d+|/)"),
];

/// A compiled preset.
#[derive(Debug, Clone)]
pub struct Preset {
    pub preset: DenyPreset,
    patterns: Vec<(&'static str, Regex)>,
}

impl Preset {
    /// Compile `preset`'s patterns. They are constants, tested; a failure
    /// would be a bug, reported as a config error by the caller.
    pub fn compile(preset: DenyPreset) -> Result<Preset, String> {
        let table: &[(&str, &str)] = match preset {
            DenyPreset::DestructiveShell => DESTRUCTIVE_SHELL,
            DenyPreset::PathTraversal => PATH_TRAVERSAL,
            DenyPreset::PrivateNetwork => PRIVATE_NETWORK,
        };
        let mut patterns = Vec::with_capacity(table.len());
        for (name, re) in table {
            let re = RegexBuilder::new(re)
                .case_insensitive(true)
                .build()
                .map_err(|e| format!("{}: {name}: {e}", preset.as_str()))?;
            patterns.push((*name, re));
        }
        Ok(Preset { preset, patterns })
    }

    /// The name of the first pattern `s` (or its normalised copy `norm`) matches.
    pub fn matches(&self, s: &str, norm: &str) -> Option<&'static str> {
        if self.preset == DenyPreset::PrivateNetwork
            && find_urls(s)
                .iter()
                .chain(find_urls(norm).iter())
                .any(|u| u.host.as_deref().is_some_and(is_private_host))
        {
            return Some("private network address");
        }
        self.patterns
            .iter()
            .find(|(_, re)| re.is_match(s) || re.is_match(norm))
            .map(|(name, _)| *name)
    }
}

/// The de-obfuscated copy deny patterns also run on: quotes, backslashes and
/// backticks removed (`r''m -r""f`, `r\m`), `$IFS`/`${IFS}` read as a space,
/// runs of whitespace collapsed to one space. Returns `None` when nothing
/// changes.
pub fn normalise(s: &str) -> Option<String> {
    let suspicious = |c: char| matches!(c, '\'' | '"' | '\\' | '`' | '$') || c.is_whitespace();
    if !s.chars().any(suspicious) {
        return None;
    }
    let s = s.replace("${IFS}", " ").replace("$IFS", " ");
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if matches!(c, '\'' | '"' | '\\' | '`') {
            continue;
        }
        if c.is_whitespace() {
            if !space {
                out.push(' ');
            }
            space = true;
        } else {
            out.push(c);
            space = false;
        }
    }
    Some(out)
}
