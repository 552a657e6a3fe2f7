//! Where each API puts tool definitions (requests) and tool calls
//! (non-streamed responses).

use crate::api::ApiKind;
use serde_json::{Map, Value};

/// One tool call of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub name: String,
    /// The arguments as JSON text (OpenAI sends a string, Anthropic an object,
    /// serialised here), or the free-form input of a custom tool.
    pub args: String,
    /// A custom tool's free-form input rather than a JSON object (Responses
    /// `custom_tool_call`, Chat `{"type":"custom"}`): check it with
    /// [`super::ToolPolicy::check_input`].
    pub freeform: bool,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// Arguments as text: a string as it is, anything else serialised, absent empty.
fn args_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The name a tool definition is known by in `api`'s requests: the function
/// (or custom tool) name, else its `type` for built-in tools.
pub fn definition_name(api: ApiKind, tool: &Value) -> String {
    let name = match api {
        ApiKind::OpenaiChat => str_at(tool, &["function", "name"])
            .or_else(|| str_at(tool, &["custom", "name"]))
            .or_else(|| str_at(tool, &["name"])),
        _ => str_at(tool, &["name"]),
    };
    name.or_else(|| str_at(tool, &["type"]))
        .unwrap_or_default()
        .to_owned()
}

/// The tool a `tool_choice` forces, if it names one: Chat
/// `{"type":"function","function":{"name"}}` (or `custom`), Responses
/// `{"type":"function","name"}` or a built-in `{"type":"web_search"}`,
/// Anthropic `{"type":"tool","name"}`. `None` for `auto`, `none`,
/// `required`, `any`, `allowed_tools`.
fn choice_name(api: ApiKind, choice: &Value) -> Option<String> {
    let ty = str_at(choice, &["type"]);
    let named = match api {
        ApiKind::OpenaiChat => str_at(choice, &["function", "name"])
            .or_else(|| str_at(choice, &["custom", "name"]))
            .or_else(|| str_at(choice, &["name"])),
        _ => str_at(choice, &["name"]),
    };
    if let Some(n) = named {
        return Some(n.to_owned());
    }
    match ty {
        None
        | Some(
            "auto" | "none" | "required" | "any" | "allowed_tools" | "tool" | "function" | "custom",
        ) => None,
        Some(t) => Some(t.to_owned()),
    }
}

/// Remove the definitions `drop` says to from `obj[field]`; their names are
/// pushed to `removed`. Returns whether the list is now empty (and was there).
fn drop_from(
    api: ApiKind,
    obj: &mut Map<String, Value>,
    field: &str,
    drop: &dyn Fn(&str) -> bool,
    removed: &mut Vec<String>,
) -> bool {
    let Some(Value::Array(list)) = obj.get_mut(field) else {
        return false;
    };
    list.retain(|t| {
        let name = definition_name(api, t);
        if drop(&name) {
            removed.push(name);
            false
        } else {
            true
        }
    });
    list.is_empty()
}

/// Every tool definition name of a request, in order (`tools[]`, then Chat's
/// legacy `functions[]`).
pub fn definition_names(api: ApiKind, body: &Value) -> Vec<String> {
    let mut names = Vec::new();
    if !matches!(
        api,
        ApiKind::OpenaiChat | ApiKind::OpenaiResponses | ApiKind::AnthropicMessages
    ) {
        return names;
    }
    if let Some(Value::Array(tools)) = body.get("tools") {
        names.extend(tools.iter().map(|t| definition_name(api, t)));
    }
    if api == ApiKind::OpenaiChat {
        if let Some(Value::Array(fns)) = body.get("functions") {
            names.extend(
                fns.iter()
                    .map(|f| str_at(f, &["name"]).unwrap_or_default().to_owned()),
            );
        }
    }
    names
}

/// Remove the definitions `drop` selects, and what would then dangle:
/// an empty `tools` with `tool_choice` and `parallel_tool_calls`, an empty
/// `functions` with `function_call`, a `tool_choice`/`function_call` naming
/// a removed tool, removed tools in a Responses `allowed_tools` choice.
/// Returns the removed names.
pub fn drop_definitions(
    api: ApiKind,
    body: &mut Value,
    drop: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let mut removed = Vec::new();
    let Some(obj) = body.as_object_mut() else {
        return removed;
    };
    if !matches!(
        api,
        ApiKind::OpenaiChat | ApiKind::OpenaiResponses | ApiKind::AnthropicMessages
    ) {
        return removed;
    }
    if drop_from(api, obj, "tools", drop, &mut removed) {
        obj.remove("tools");
        obj.remove("tool_choice");
        obj.remove("parallel_tool_calls");
    }
    if api == ApiKind::OpenaiChat {
        let fn_api = ApiKind::OpenaiResponses; // `functions[]` items are `{name}`
        if drop_from(fn_api, obj, "functions", drop, &mut removed) {
            obj.remove("functions");
            obj.remove("function_call");
        }
        if let Some(fc) = obj.get("function_call") {
            if str_at(fc, &["name"]).is_some_and(|n| removed.iter().any(|r| r == n)) {
                obj.remove("function_call");
            }
        }
    }
    if let Some(choice) = obj.get_mut("tool_choice") {
        if choice_name(api, choice).is_some_and(|n| removed.contains(&n)) {
            obj.remove("tool_choice");
        } else if str_at(choice, &["type"]) == Some("allowed_tools") {
            let mut empty = false;
            if let Some(Value::Array(list)) = choice.get_mut("tools") {
                list.retain(|t| {
                    choice_name(api, t)
                        .or_else(|| Some(definition_name(api, t)))
                        .is_none_or(|n| !removed.contains(&n))
                });
                empty = list.is_empty();
            }
            if empty {
                obj.remove("tool_choice");
            }
        }
    }
    removed
}

/// The tool calls of a non-streamed response:
///
/// * OpenAI Chat: `choices[].message.tool_calls[]` (`function{name,arguments}`
///   or `custom{name,input}`) and the legacy `function_call{name,arguments}`.
/// * OpenAI Responses: `output[]` items `function_call{name,arguments}`,
///   `mcp_call{name,arguments}`, `custom_tool_call{name,input}`.
/// * Anthropic Messages: `content[]` blocks `tool_use`, `server_tool_use`,
///   `mcp_tool_use` `{name,input}` (the input object serialised).
pub fn response_calls(api: ApiKind, body: &Value) -> Vec<ToolCall> {
    let mut calls = Vec::new();
    let call = |name: Option<&str>, args: Option<&Value>, freeform: bool| ToolCall {
        name: name.unwrap_or_default().to_owned(),
        args: args_text(args),
        freeform,
    };
    match api {
        ApiKind::OpenaiChat => {
            for ch in body
                .get("choices")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(msg) = ch.get("message") else {
                    continue;
                };
                for tc in msg
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(c) = tc.get("custom") {
                        calls.push(call(str_at(c, &["name"]), c.get("input"), true));
                    } else {
                        let f = tc.get("function");
                        calls.push(call(
                            f.and_then(|f| str_at(f, &["name"])),
                            f.and_then(|f| f.get("arguments")),
                            false,
                        ));
                    }
                }
                if let Some(fc) = msg.get("function_call").filter(|f| f.is_object()) {
                    calls.push(call(str_at(fc, &["name"]), fc.get("arguments"), false));
                }
            }
        }
        ApiKind::OpenaiResponses => {
            for item in body
                .get("output")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                match str_at(item, &["type"]) {
                    Some("function_call" | "mcp_call") => {
                        calls.push(call(str_at(item, &["name"]), item.get("arguments"), false));
                    }
                    Some("custom_tool_call") => {
                        calls.push(call(str_at(item, &["name"]), item.get("input"), true));
                    }
                    _ => {}
                }
            }
        }
        ApiKind::AnthropicMessages => {
            for block in body
                .get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if matches!(
                    str_at(block, &["type"]),
                    Some("tool_use" | "server_tool_use" | "mcp_tool_use")
                ) {
                    calls.push(call(str_at(block, &["name"]), block.get("input"), false));
                }
            }
        }
        ApiKind::OpenaiCompletions | ApiKind::OpenaiEmbeddings | ApiKind::UnknownJson => {}
    }
    calls
}
