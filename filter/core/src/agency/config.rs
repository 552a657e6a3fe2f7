//! Raw serde types of the tool controls (OWASP LLM06, excessive agency),
//! exactly as users write them. [`super::ToolPolicy::compile`] turns them
//! into what requests and streams use.

use serde::Deserialize;
use std::collections::BTreeMap;

/// Which tools a model may be offered and call, and what their arguments may hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToolsConfig {
    /// Tool names the model may be offered and may call. `*` matches any run of
    /// characters anywhere in a name (`search_*`, `*_read`, `*`). Absent: every
    /// tool is allowed. Built-in tools of the Responses API (`web_search`,
    /// `file_search`, `code_interpreter`, `mcp`, ...) are named by their `type`.
    #[serde(default)]
    pub allow: Option<Vec<String>>,
    /// What to do with tool definitions in a request that `allow` does not
    /// list: `drop` removes them from the request (and a `tool_choice` that
    /// names one), `refuse` answers 403.
    #[serde(default)]
    pub on_disallowed: ToolDefinitionAction,
    /// Argument rules per tool name (exact, or a glob with `*`). Every rule
    /// whose name matches a call applies to it.
    #[serde(default)]
    pub rules: BTreeMap<String, ToolRuleConfig>,
}

/// What happens to a request offering a tool outside `allow`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum ToolDefinitionAction {
    /// Remove the tool definition from the request and send the rest on.
    Drop,
    /// Refuse the request with 403.
    #[default]
    Refuse,
}

/// Checks on the arguments of calls to one tool (or every tool a glob matches).
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToolRuleConfig {
    /// A JSON Schema the arguments object must satisfy. Supported keywords:
    /// `type`, `properties`, `required`, `additionalProperties`, `items`,
    /// `minItems`, `maxItems`, `enum`, `const`, `minLength`, `maxLength`,
    /// `pattern`, `minimum`, `maximum`, `exclusiveMinimum`,
    /// `exclusiveMaximum`, `format` (`uri`, `hostname`); annotations
    /// (`title`, `description`, `default`, `examples`, `$schema`,
    /// `$comment`) are ignored; any other keyword is a configuration error.
    /// For a free-form (custom) tool the input is validated as one string.
    #[serde(default)]
    pub schema: Option<serde_json::Value>,
    /// Regular expressions (Rust `regex` syntax, unanchored): a call is denied
    /// when any string value of its arguments, at any depth, matches one. Each
    /// also runs on a de-obfuscated copy of the value (quotes, backslashes and
    /// backticks removed, `$IFS` read as a space, whitespace collapsed).
    #[serde(default)]
    pub deny: Vec<String>,
    /// Built-in sets of deny patterns.
    #[serde(default)]
    pub deny_presets: Vec<DenyPreset>,
    /// Hosts URLs in the arguments may point to: every `http`, `https`, `ftp`,
    /// `ftps`, `ws` or `wss` URL in any string value must have its host listed,
    /// exactly (case-insensitive) or as `*.example.com` (any subdomain, not
    /// the apex). URLs of any other scheme (`file://`, `gopher://`) are then
    /// refused too. Absent: URLs are not restricted.
    #[serde(default)]
    pub allow_hosts: Option<Vec<String>>,
    /// Largest arguments (the raw JSON text of the call) in bytes.
    #[serde(default)]
    pub max_args_bytes: Option<u32>,
}

/// A built-in set of deny patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum DenyPreset {
    /// Destructive shell and SQL: `rm -rf` on `/`, `~` or a system directory,
    /// `mkfs`, `dd of=/dev/...`, the fork bomb, `chmod -R 777 /`, `curl`/`wget`
    /// piped into a shell, `shutdown`/`reboot`/`halt`/`poweroff`, `DROP
    /// TABLE`/`DATABASE`, `TRUNCATE`, `DELETE FROM` without `WHERE`, `git push
    /// --force`, `kubectl delete namespace`.
    DestructiveShell,
    /// Paths out of a working directory or to secrets: `../` (also
    /// percent-encoded), `/etc/passwd`, `/etc/shadow`, `/etc/sudoers`, `.ssh/`,
    /// `.aws/credentials`, `.env` files, `/proc/self/environ`.
    PathTraversal,
    /// URLs to the local machine or a private network: `localhost`,
    /// `127.0.0.0/8`, `0.0.0.0`, `10.0.0.0/8`, `172.16.0.0/12`,
    /// `192.168.0.0/16`, `169.254.0.0/16` (cloud metadata), `100.64.0.0/10`,
    /// `[::1]`, `fc00::/7`, `fe80::/10`, IPv4-mapped IPv6 of those, and
    /// `metadata.google.internal`; IPv4 also in decimal, octal and hex forms.
    PrivateNetwork,
}

impl DenyPreset {
    /// The name used in config and in violations.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyPreset::DestructiveShell => "destructiveShell",
            DenyPreset::PathTraversal => "pathTraversal",
            DenyPreset::PrivateNetwork => "privateNetwork",
        }
    }
}
