//! Raw serde types of the per-tenant access policy (`access`): what each
//! tenant and role may call, with which caps, tools and detectors, and what
//! is only recorded (shadow mode). Compiled by [`crate::access::AccessPolicy`].

use crate::detect::Action;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Per-tenant policy. Each request's profile is `default`, then its tenant's
/// profile, then the role's (top-level `roles`, then the tenant's own
/// `roles`): a field set at a later level replaces the earlier one
/// (`actions` maps are merged key by key).
#[derive(Debug, Clone, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessConfig {
    /// What every tenant gets unless its own profile says otherwise.
    #[serde(default)]
    pub default: ProfileConfig,
    /// Profiles by tenant (the tenant of `identity`).
    #[serde(default)]
    pub tenants: BTreeMap<String, ProfileConfig>,
    /// Profiles by role, for every tenant (the role of `identity`).
    #[serde(default)]
    pub roles: BTreeMap<String, ProfileConfig>,
}

/// One level of a profile. Absent fields inherit.
#[derive(Debug, Clone, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileConfig {
    /// Endpoints allowed: API names (`openaiChat`, `openaiResponses`,
    /// `openaiCompletions`, `openaiEmbeddings`, `anthropicMessages`,
    /// `unknownJson`) or path patterns starting with `/` (`*` matches any
    /// run of characters, e.g. `/v1/models*`). Others get 403.
    #[serde(default)]
    pub endpoints: Option<Vec<String>>,
    /// Models allowed (`*` matches any run of characters: `gpt-4o*`). A
    /// request naming another model gets 403; one naming none passes.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// The largest output cap a request may ask for (`max_tokens`,
    /// `max_completion_tokens`, `max_output_tokens`).
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// A request over `maxTokens`: `clamp` (rewritten to `maxTokens`; a
    /// request without a cap gets one) or `refuse` (400).
    #[serde(default)]
    pub max_tokens_mode: Option<CapMode>,
    /// The most characters of prompt text (every scanned string of the request).
    #[serde(default)]
    pub max_prompt_chars: Option<u64>,
    /// The most prompt tokens (counted with the model's tokenizer where the
    /// build has it, else estimated as 4 bytes a token).
    #[serde(default)]
    pub max_prompt_tokens: Option<u64>,
    /// The most messages (`messages`, or `input` items of the Responses API).
    #[serde(default)]
    pub max_messages: Option<u64>,
    /// Tools: which the model may be offered and may call, with what arguments (OWASP LLM06).
    #[serde(default)]
    pub tools: Option<crate::agency::ToolsConfig>,
    /// Detectors that apply (their `id`s); absent: every detector.
    #[serde(default)]
    pub detectors: Option<Vec<String>>,
    /// Action overrides by finding type (`EMAIL`), detector id or rule id
    /// (`*` allowed): `allow`, `flag`, `redact` (mask) or `block`.
    #[serde(default)]
    pub actions: Option<BTreeMap<String, Action>>,
    /// Dry run of this whole profile: every decision (refusals, findings,
    /// rewrites) is made and recorded, none is enforced.
    #[serde(default)]
    pub shadow: Option<bool>,
    /// Dry run of some decisions only: finding types, detector ids, rule ids
    /// (`*` allowed) or access decisions (`MODEL_NOT_ALLOWED`,
    /// `ENDPOINT_NOT_ALLOWED`, `TOOL_NOT_ALLOWED`, `MAX_TOKENS`,
    /// `PROMPT_TOO_LARGE`, `TOO_MANY_MESSAGES`, `REPETITION`, `CANARY_LEAK`,
    /// `SYSTEM_PROMPT_LEAK`, `OUTPUT_LOOP`).
    #[serde(default)]
    pub shadow_rules: Option<Vec<String>>,
    /// System prompt leakage (LLM07): a canary token and n-gram overlap.
    #[serde(default)]
    pub system_prompt: Option<SystemPromptConfig>,
    /// Repetition and context flooding (LLM10).
    #[serde(default)]
    pub flooding: Option<FloodingConfig>,
    /// A tenant's roles (only in `tenants`), applied after the top-level
    /// role of the same name.
    #[serde(default)]
    pub roles: BTreeMap<String, ProfileConfig>,
}

/// Clamp or refuse an output cap over the profile's.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum CapMode {
    #[default]
    Clamp,
    Refuse,
}

/// A decision that is either recorded or enforced.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum FlagOrBlock {
    #[default]
    Flag,
    Block,
}

/// System prompt leakage checks.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SystemPromptConfig {
    /// Add a per-request canary token to the system prompt (the request is
    /// rewritten) and catch it in the response.
    #[serde(default)]
    pub canary: bool,
    /// A response that reproduces at least this share (0..1) of the
    /// request's system prompt word n-grams, or a run of
    /// `leakRunWords` consecutive words of it, is a leak; 0 turns it off.
    #[serde(default = "default_leak_threshold")]
    pub leak_threshold: f32,
    /// Words per n-gram.
    #[serde(default = "default_ngram")]
    pub ngram: usize,
    /// A run of this many consecutive words of the system prompt is a leak
    /// too (0: off).
    #[serde(default = "default_leak_run")]
    pub leak_run_words: usize,
    /// What a leak gets: `flag`, or `block` (502 for JSON, the stream ends
    /// with the API's error event).
    #[serde(default)]
    pub action: FlagOrBlock,
}

fn default_leak_threshold() -> f32 {
    0.5
}
fn default_ngram() -> usize {
    6
}
fn default_leak_run() -> usize {
    40
}

/// Repetition and flooding checks.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FloodingConfig {
    /// Prompts shorter than this many words are not checked.
    #[serde(default = "default_min_words")]
    pub min_words: usize,
    /// A prompt whose most frequent word 4-gram is at least this share of
    /// all its 4-grams is flooding.
    #[serde(default = "default_top_share")]
    pub max_top_share: f32,
    /// ...or whose distinct 4-grams are below this share.
    #[serde(default = "default_min_distinct")]
    pub min_distinct: f32,
    /// What a flooding prompt gets (`block`: 400).
    #[serde(default)]
    pub action: FlagOrBlock,
    /// End a streamed answer that loops (the same 4-gram at least
    /// `maxTopShare` of the last words, past `minWords`).
    #[serde(default)]
    pub output_loops: bool,
}

fn default_min_words() -> usize {
    200
}
fn default_top_share() -> f32 {
    0.2
}
fn default_min_distinct() -> f32 {
    0.1
}
