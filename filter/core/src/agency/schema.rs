//! A JSON Schema subset for tool arguments, compiled once at load.
//!
//! Supported: `type`, `properties`, `required`, `additionalProperties`,
//! `items`, `minItems`, `maxItems`, `enum`, `const`, `minLength`,
//! `maxLength` (in characters), `pattern` (unanchored), `minimum`,
//! `maximum`, `exclusiveMinimum`, `exclusiveMaximum` (numbers, as in
//! draft 6 and later), `format` (`uri`, `hostname`), and the boolean
//! schemas `true` and `false`. Annotations are ignored; any other keyword
//! (`$ref`, `oneOf`, `if`, ...) is a configuration error, so a schema never
//! silently checks less than its author meant.
//!
//! Errors name a JSON pointer and the constraint, never a value (arguments
//! may hold personal data or secrets).

use regex::{Regex, RegexBuilder};
use serde_json::{Map, Value};

/// Deepest nesting of a schema and of the values it checks.
pub const MAX_DEPTH: usize = 32;

/// Keywords that describe and never constrain.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "$comment",
];

const T_OBJECT: u8 = 1;
const T_ARRAY: u8 = 2;
const T_STRING: u8 = 4;
const T_NUMBER: u8 = 8;
const T_INTEGER: u8 = 16;
const T_BOOLEAN: u8 = 32;
const T_NULL: u8 = 64;

const TYPE_NAMES: &[(&str, u8)] = &[
    ("object", T_OBJECT),
    ("array", T_ARRAY),
    ("string", T_STRING),
    ("number", T_NUMBER),
    ("integer", T_INTEGER),
    ("boolean", T_BOOLEAN),
    ("null", T_NULL),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Uri,
    Hostname,
}

#[derive(Debug, Clone, Default)]
enum Additional {
    #[default]
    Any,
    None,
    Schema(Box<Schema>),
}

/// A compiled schema.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// `false`: nothing is valid.
    never: bool,
    types: Option<u8>,
    properties: Vec<(String, Schema)>,
    required: Vec<String>,
    additional: Additional,
    items: Option<Box<Schema>>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    enumeration: Option<Vec<Value>>,
    constant: Option<Value>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    pattern: Option<Regex>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    exclusive_minimum: Option<f64>,
    exclusive_maximum: Option<f64>,
    format: Option<Format>,
}

/// Where in a schema an error is: (dotted path below the schema, reason).
pub type SchemaError = (String, String);

fn err(at: &str, reason: impl Into<String>) -> SchemaError {
    (at.to_owned(), reason.into())
}

fn count(v: &Value, at: &str, kw: &str) -> Result<u64, SchemaError> {
    v.as_u64()
        .ok_or_else(|| err(at, format!("{kw} must be a non-negative integer")))
}

fn number(v: &Value, at: &str, kw: &str) -> Result<f64, SchemaError> {
    v.as_f64()
        .ok_or_else(|| err(at, format!("{kw} must be a number")))
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

impl Schema {
    /// Compile `v`. Errors carry the dotted path below the schema
    /// (`properties.cmd`, empty for the schema itself).
    pub fn compile(v: &Value) -> Result<Schema, SchemaError> {
        Schema::compile_at(v, "", 0)
    }

    fn compile_at(v: &Value, at: &str, depth: usize) -> Result<Schema, SchemaError> {
        if depth > MAX_DEPTH {
            return Err(err(at, format!("schema nested deeper than {MAX_DEPTH}")));
        }
        let obj = match v {
            Value::Bool(true) => return Ok(Schema::default()),
            Value::Bool(false) => {
                return Ok(Schema {
                    never: true,
                    ..Schema::default()
                })
            }
            Value::Object(o) => o,
            _ => return Err(err(at, "a schema must be an object or a boolean")),
        };
        let mut s = Schema::default();
        for (kw, val) in obj {
            match kw.as_str() {
                "type" => s.types = Some(types(val, at)?),
                "properties" => {
                    let Value::Object(props) = val else {
                        return Err(err(at, "properties must be an object"));
                    };
                    for (name, sub) in props {
                        let sub_at = join(&join(at, "properties"), name);
                        s.properties
                            .push((name.clone(), Schema::compile_at(sub, &sub_at, depth + 1)?));
                    }
                }
                "required" => {
                    let names = val.as_array().and_then(|a| {
                        a.iter()
                            .map(|n| n.as_str().map(str::to_owned))
                            .collect::<Option<Vec<_>>>()
                    });
                    s.required =
                        names.ok_or_else(|| err(at, "required must be an array of strings"))?;
                }
                "additionalProperties" => {
                    s.additional = match val {
                        Value::Bool(true) => Additional::Any,
                        Value::Bool(false) => Additional::None,
                        other => Additional::Schema(Box::new(Schema::compile_at(
                            other,
                            &join(at, "additionalProperties"),
                            depth + 1,
                        )?)),
                    }
                }
                "items" => {
                    if val.is_array() {
                        return Err(err(
                            at,
                            "items must be one schema (tuple form not supported)",
                        ));
                    }
                    s.items = Some(Box::new(Schema::compile_at(
                        val,
                        &join(at, "items"),
                        depth + 1,
                    )?));
                }
                "minItems" => s.min_items = Some(count(val, at, kw)?),
                "maxItems" => s.max_items = Some(count(val, at, kw)?),
                "minLength" => s.min_length = Some(count(val, at, kw)?),
                "maxLength" => s.max_length = Some(count(val, at, kw)?),
                "minimum" => s.minimum = Some(number(val, at, kw)?),
                "maximum" => s.maximum = Some(number(val, at, kw)?),
                "exclusiveMinimum" => s.exclusive_minimum = Some(number(val, at, kw)?),
                "exclusiveMaximum" => s.exclusive_maximum = Some(number(val, at, kw)?),
                "enum" => {
                    let Value::Array(values) = val else {
                        return Err(err(at, "enum must be an array"));
                    };
                    s.enumeration = Some(values.clone());
                }
                "const" => s.constant = Some(val.clone()),
                "pattern" => {
                    let Some(p) = val.as_str() else {
                        return Err(err(at, "pattern must be a string"));
                    };
                    let re = RegexBuilder::new(p)
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| err(at, format!("pattern: {e}")))?;
                    s.pattern = Some(re);
                }
                "format" => {
                    s.format = Some(match val.as_str() {
                        Some("uri") => Format::Uri,
                        Some("hostname") => Format::Hostname,
                        _ => {
                            return Err(err(at, "format must be \"uri\" or \"hostname\""));
                        }
                    })
                }
                a if ANNOTATIONS.contains(&a) => {}
                other => return Err(err(at, format!("unsupported keyword \"{other}\""))),
            }
        }
        Ok(s)
    }

    /// Check `v`; the first failure as `"/cmd: longer than maxLength 200"`
    /// (a JSON pointer, `(root)` for `v` itself, and the constraint).
    pub fn validate(&self, v: &Value) -> Result<(), String> {
        let mut ptr = String::new();
        self.validate_at(v, &mut ptr, 0)
    }

    fn validate_at(&self, v: &Value, ptr: &mut String, depth: usize) -> Result<(), String> {
        let fail = |ptr: &str, what: String| Err(format!("{}: {what}", show(ptr)));
        if depth > MAX_DEPTH {
            return fail(ptr, format!("nested deeper than {MAX_DEPTH}"));
        }
        if self.never {
            return fail(ptr, "not allowed by schema false".to_owned());
        }
        if let Some(t) = self.types {
            if type_bits(v) & t == 0 {
                return fail(ptr, format!("not of type {}", type_list(t)));
            }
        }
        if let Some(c) = &self.constant {
            if !json_eq(c, v) {
                return fail(ptr, "not equal to const".to_owned());
            }
        }
        if let Some(e) = &self.enumeration {
            if !e.iter().any(|x| json_eq(x, v)) {
                return fail(ptr, "not one of the enum values".to_owned());
            }
        }
        match v {
            Value::String(s) => {
                let chars = s.chars().count() as u64;
                if let Some(min) = self.min_length.filter(|m| chars < *m) {
                    return fail(ptr, format!("shorter than minLength {min}"));
                }
                if let Some(max) = self.max_length.filter(|m| chars > *m) {
                    return fail(ptr, format!("longer than maxLength {max}"));
                }
                if let Some(re) = &self.pattern {
                    if !re.is_match(s) {
                        return fail(ptr, "does not match pattern".to_owned());
                    }
                }
                match self.format {
                    Some(Format::Uri) if !is_uri(s) => {
                        return fail(ptr, "not a valid uri".to_owned())
                    }
                    Some(Format::Hostname) if !is_hostname(s) => {
                        return fail(ptr, "not a valid hostname".to_owned())
                    }
                    _ => {}
                }
            }
            Value::Number(n) => {
                let x = n.as_f64().unwrap_or_default();
                if let Some(m) = self.minimum.filter(|m| x < *m) {
                    return fail(ptr, format!("less than minimum {m}"));
                }
                if let Some(m) = self.maximum.filter(|m| x > *m) {
                    return fail(ptr, format!("greater than maximum {m}"));
                }
                if let Some(m) = self.exclusive_minimum.filter(|m| x <= *m) {
                    return fail(ptr, format!("not greater than exclusiveMinimum {m}"));
                }
                if let Some(m) = self.exclusive_maximum.filter(|m| x >= *m) {
                    return fail(ptr, format!("not less than exclusiveMaximum {m}"));
                }
            }
            Value::Array(items) => {
                let n = items.len() as u64;
                if let Some(min) = self.min_items.filter(|m| n < *m) {
                    return fail(ptr, format!("fewer than minItems {min} items"));
                }
                if let Some(max) = self.max_items.filter(|m| n > *m) {
                    return fail(ptr, format!("more than maxItems {max} items"));
                }
                if let Some(sub) = &self.items {
                    for (i, item) in items.iter().enumerate() {
                        let len = ptr.len();
                        ptr.push('/');
                        ptr.push_str(&i.to_string());
                        sub.validate_at(item, ptr, depth + 1)?;
                        ptr.truncate(len);
                    }
                }
            }
            Value::Object(obj) => self.validate_object(obj, ptr, depth)?,
            Value::Bool(_) | Value::Null => {}
        }
        Ok(())
    }

    fn validate_object(
        &self,
        obj: &Map<String, Value>,
        ptr: &mut String,
        depth: usize,
    ) -> Result<(), String> {
        for name in &self.required {
            if !obj.contains_key(name) {
                let len = ptr.len();
                push_token(ptr, name);
                let msg = format!("{}: required property missing", show(ptr));
                ptr.truncate(len);
                return Err(msg);
            }
        }
        for (name, value) in obj {
            let len = ptr.len();
            push_token(ptr, name);
            match self.properties.iter().find(|(n, _)| n == name) {
                Some((_, sub)) => sub.validate_at(value, ptr, depth + 1)?,
                None => match &self.additional {
                    Additional::Any => {}
                    Additional::None => {
                        return Err(format!(
                            "{}: property not allowed (additionalProperties)",
                            show(ptr)
                        ))
                    }
                    Additional::Schema(sub) => sub.validate_at(value, ptr, depth + 1)?,
                },
            }
            ptr.truncate(len);
        }
        Ok(())
    }
}

/// The pointer as shown in messages: `(root)` for the whole value, member
/// names cut to 40 characters (they come from the model).
fn show(ptr: &str) -> &str {
    if ptr.is_empty() {
        "(root)"
    } else {
        ptr
    }
}

/// Append `/name` (RFC 6901 escaped, cut to 40 characters).
pub(crate) fn push_token(ptr: &mut String, name: &str) {
    ptr.push('/');
    for (i, c) in name.chars().enumerate() {
        if i == 40 {
            ptr.push('…');
            break;
        }
        match c {
            '~' => ptr.push_str("~0"),
            '/' => ptr.push_str("~1"),
            c if c.is_control() => ptr.push('?'),
            c => ptr.push(c),
        }
    }
}

fn types(v: &Value, at: &str) -> Result<u8, SchemaError> {
    let one = |name: &str| {
        TYPE_NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| *b)
            .ok_or_else(|| err(at, format!("unknown type \"{name}\"")))
    };
    match v {
        Value::String(s) => one(s),
        Value::Array(a) if !a.is_empty() => {
            let mut bits = 0;
            for t in a {
                let Some(s) = t.as_str() else {
                    return Err(err(at, "type must be a string or an array of strings"));
                };
                bits |= one(s)?;
            }
            Ok(bits)
        }
        _ => Err(err(at, "type must be a string or an array of strings")),
    }
}

fn type_bits(v: &Value) -> u8 {
    match v {
        Value::Object(_) => T_OBJECT,
        Value::Array(_) => T_ARRAY,
        Value::String(_) => T_STRING,
        Value::Bool(_) => T_BOOLEAN,
        Value::Null => T_NULL,
        Value::Number(n) => {
            let integral = n.is_i64()
                || n.is_u64()
                || n.as_f64()
                    .is_some_and(|f| f.is_finite() && f.fract() == 0.0);
            if integral {
                T_NUMBER | T_INTEGER
            } else {
                T_NUMBER
            }
        }
    }
}

fn type_list(bits: u8) -> String {
    let names: Vec<&str> = TYPE_NAMES
        .iter()
        .filter(|(_, b)| bits & b != 0)
        .map(|(n, _)| *n)
        .collect();
    names.join(" or ")
}

/// JSON equality with numbers compared by value (`1` equals `1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(i), Some(j)) => i == j,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// An absolute URI: `scheme:` then at least one character, no whitespace.
fn is_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// An RFC 1123 host name: dot-separated labels of letters, digits and
/// hyphens, 1-63 characters each, not starting or ending with a hyphen.
pub(crate) fn is_hostname(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}
