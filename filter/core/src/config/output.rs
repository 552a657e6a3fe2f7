//! The `output` detector's configuration (OWASP LLM05, improper output
//! handling) and its compilation.

use super::ConfigError;
use crate::detect::output::{HostAllowList, OutputAction, OutputDetector, OutputOptions};
use crate::detect::Channel;
use serde::Deserialize;

/// Unsafe markup in model answers: images and links to hosts not allowed
/// (the exfiltration channel of an injected answer), active HTML, and
/// `javascript:`, `vbscript:` and `data:` targets. Scans responses only
/// (JSON answers and streams).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutputConfig {
    /// Identifier used in rule ids (`<id>.markdown_image`, `<id>.html.script`,
    /// `<id>.url.javascript`), metrics and logs.
    pub id: String,
    /// Hosts images and links may point to: exact names (`docs.example.com`)
    /// or a leading wildcard (`*.example.com`, which does not match
    /// `example.com` itself). Case-insensitive; compared with the host a
    /// browser would contact (userinfo, port and path do not count).
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// Images (markdown, reference-style) to a host not allowed.
    #[serde(default = "strip")]
    pub images: OutputAction,
    /// Links (markdown, reference definitions, autolinks) to a host not allowed.
    #[serde(default = "defang")]
    pub links: OutputAction,
    /// Active or resource-loading HTML (`<script>`, `<iframe>`, event
    /// handlers, `<img src>` to a host not allowed, ...).
    #[serde(default = "strip")]
    pub html: OutputAction,
    /// `javascript:`, `vbscript:` and `data:` targets of links, images and attributes.
    #[serde(default = "strip")]
    pub dangerous_urls: OutputAction,
    /// Bare URLs in prose to a host not allowed (many clients make them
    /// links). Absent: not reported.
    #[serde(default)]
    pub bare_urls: Option<OutputAction>,
    /// Allow `data:image/png|jpeg|gif|webp|bmp|avif` images (never SVG).
    #[serde(default)]
    pub allow_data_images: bool,
    /// Channels scanned; empty or absent means the assistant's answers only.
    #[serde(default)]
    pub channels: Vec<Channel>,
}

fn strip() -> OutputAction {
    OutputAction::Strip
}

fn defang() -> OutputAction {
    OutputAction::Defang
}

/// Check `detectors[i]` and build the detector.
pub(super) fn compile_output(i: usize, c: &OutputConfig) -> Result<OutputDetector, ConfigError> {
    let at = |field: &str| format!("detectors[{i}].{field}");
    let allow = HostAllowList::new(&c.allow_hosts)
        .map_err(|(k, reason)| ConfigError::at(at(&format!("allowHosts[{k}]")), reason))?;
    let opts = OutputOptions {
        images: c.images,
        links: c.links,
        html: c.html,
        dangerous_urls: c.dangerous_urls,
        bare_urls: c.bare_urls,
        allow_data_images: c.allow_data_images,
    };
    OutputDetector::new(&c.id, allow, opts, c.channels.clone())
        .map_err(|e| ConfigError::at(at("type"), format!("built-in patterns: {e}")))
}

#[cfg(test)]
mod tests {
    use crate::config::Policy;

    fn err(json: &str) -> String {
        match Policy::from_json(json.as_bytes()) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn errors_name_the_field() {
        let e = err(
            r#"{"schemaVersion":1,"detectors":[{"type":"output","id":"o","allowHosts":["ok.com","a.*.com"]}]}"#,
        );
        assert!(e.starts_with("config.detectors[0].allowHosts[1]: "), "{e}");
        let e =
            err(r#"{"schemaVersion":1,"detectors":[{"type":"output","id":"o","images":"mask"}]}"#);
        assert!(e.starts_with("config.detectors[0].images"), "{e}");
        let e = err(r#"{"schemaVersion":1,"detectors":[{"type":"output","id":"o","bogus":1}]}"#);
        assert!(e.contains("bogus"), "{e}");
        let ok = r#"{"schemaVersion":1,"detectors":[{"type":"output","id":"o","allowHosts":["ok.com","*.cdn.ok.com"],
            "images":"block","links":"flag","html":"defang","dangerousUrls":"strip","bareUrls":"defang",
            "allowDataImages":true,"channels":["assistant","tool"]}]}"#;
        assert_eq!(err(ok), "");
        assert!(Policy::from_json(ok.as_bytes()).is_ok_and(|p| p.scans_responses()));
    }
}
