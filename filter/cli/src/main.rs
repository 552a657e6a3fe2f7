//! `tollgate`: the filter's own detection code on the command line.
//!
//! ```text
//! tollgate scan [--config FILE]     JSON lines in on stdin, one JSON line out per input
//! tollgate config check FILE        validate a plugin configuration (exit 1 on error)
//! tollgate config schema            print the JSON Schema of the configuration
//! ```

use serde_json::{json, Value};
use std::io::{BufRead, BufWriter, Write};
use std::process::ExitCode;
use tollgate_core::api::Direction;
use tollgate_core::detect::{Action, Channel, Family, Finding};
use tollgate_core::redact::{redact, Pseudonyms};
use tollgate_core::scan::{decide, injection_score, injection_summary, scan_text, scan_value};
use tollgate_core::{PluginConfig, Policy};

const USAGE: &str = "usage:
  tollgate scan [--config FILE]   read JSON lines on stdin, write one JSON result line per input
  tollgate config check FILE      validate a plugin configuration with the filter's own code
  tollgate config schema          print the JSON Schema of the plugin configuration
  tollgate eval --task injection FILE.jsonl [--json | --scores OUT.jsonl]
                                  AUC, F1, TPR at FPR 1% / 0.1% for rules, each model, models and combined
                                  (lines: {\"text\", \"label\": 0|1, \"channel\"?})
  tollgate eval --task pii FILE.jsonl [--json]
                                  precision, recall and F1 per type (exact spans and overlap), and the
                                  share of texts without gold spans where anything fired
                                  (lines: {\"text\", \"spans\": [{\"start\", \"end\", \"type\"}]}, UTF-8 byte offsets)
  tollgate features --buckets N   JSON lines {\"text\"} in, the n-gram model's features out (for training)
  tollgate normalize              JSON lines {\"text\"} in, {\"view\", \"rules\", \"ngram\"} out: the normalised
                                  view the models see and the rule and n-gram scores (for training)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["scan"] => scan(None),
        ["scan", "--config", file] => scan(Some(file)),
        ["config", "check", file] => check(file),
        ["config", "schema"] => schema(),
        ["features", "--buckets", n] => features(n),
        ["normalize"] => normalize(),
        ["eval", "--task", "injection", file] => eval_injection(file, false, None),
        ["eval", "--task", "injection", file, "--json"] => eval_injection(file, true, None),
        ["eval", "--task", "injection", file, "--scores", out] => {
            eval_injection(file, false, Some(out))
        }
        ["eval", "--task", "pii", file] => eval_pii(file, false),
        ["eval", "--task", "pii", file, "--json"] => eval_pii(file, true),
        ["--help"] | ["-h"] | ["help"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn load_policy(file: Option<&str>) -> Result<Policy, String> {
    match file {
        None => Policy::default_policy().map_err(|e| e.to_string()),
        Some(f) => {
            let bytes = std::fs::read(f).map_err(|e| format!("{f}: {e}"))?;
            Policy::from_json(&bytes).map_err(|e| format!("{f}: {e}"))
        }
    }
}

/// The n-gram model's features of each input text, computed by the filter's
/// own code, so training sees exactly what the filter sees.
fn features(buckets: &str) -> ExitCode {
    let buckets: u32 = match buckets.parse() {
        Ok(n) if u32::is_power_of_two(n) => n,
        _ => {
            eprintln!("--buckets must be a power of two");
            return ExitCode::from(2);
        }
    };
    let stdin = std::io::stdin();
    let mut out = BufWriter::new(std::io::stdout().lock());
    for line in stdin.lock().lines() {
        let Ok(line) = line else {
            return ExitCode::from(1);
        };
        let text = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|v| v.get("text").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default();
        let view = tollgate_core::detect::normalize::Normalized::new(&text).text;
        let f = tollgate_core::detect::ngram::features(&view, buckets);
        let idx: Vec<u32> = f.iter().map(|p| p.0).collect();
        let val: Vec<f32> = f.iter().map(|p| p.1).collect();
        if writeln!(out, "{}", json!({"idx": idx, "val": val})).is_err() {
            return ExitCode::SUCCESS;
        }
    }
    let _ = out.flush();
    ExitCode::SUCCESS
}

/// The built-in rules and n-gram model as one detector, the same thresholds on
/// every channel (what `normalize` and `eval` score with).
fn first_stage(id: &str) -> Result<tollgate_core::detect::injection::InjectionDetector, String> {
    use tollgate_core::detect::injection::{ChannelThresholds, InjectionDetector, Thresholds};
    let rules =
        tollgate_core::detect::rules::builtin().map_err(|e| format!("built-in rules: {e}"))?;
    let model =
        tollgate_core::detect::ngram::builtin().map_err(|e| format!("built-in model: {e}"))?;
    let all = ChannelThresholds::all(Thresholds {
        flag: 0.5,
        block: 0.8,
    });
    Ok(InjectionDetector::new(
        id,
        Some(Box::new(rules)),
        Some(model),
        all,
    ))
}

/// The normalised view of each input text (what the models are trained on)
/// and the rule and n-gram scores of the built-in detector.
fn normalize() -> ExitCode {
    use tollgate_core::detect::ScanText;
    let detector = match first_stage("normalize") {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let stdin = std::io::stdin();
    let mut out = BufWriter::new(std::io::stdout().lock());
    for line in stdin.lock().lines() {
        let Ok(line) = line else {
            return ExitCode::from(1);
        };
        let text = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|v| v.get("text").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default();
        let scan = ScanText::new(&text);
        let s = detector.score(&scan, Channel::User).scores;
        let view = &scan.normalized().text;
        if writeln!(
            out,
            "{}",
            json!({"view": view, "rules": s.rules, "ngram": s.ngram})
        )
        .is_err()
        {
            return ExitCode::SUCCESS;
        }
    }
    let _ = out.flush();
    ExitCode::SUCCESS
}

/// The non-blank lines of a JSONL file, parsed, with their line numbers
/// (1-based); a read or parse error is printed as `FILE[:LINE]: reason`.
fn read_jsonl(file: &str) -> Result<Vec<(usize, Value)>, ExitCode> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        eprintln!("{file}: {e}");
        ExitCode::from(1)
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(v) => out.push((i + 1, v)),
            Err(e) => {
                eprintln!("{file}:{}: {e}", i + 1);
                return Err(ExitCode::from(1));
            }
        }
    }
    Ok(out)
}

/// Score a labelled file with the built-in injection detector and print
/// AUC, F1 and TPR at fixed FPR for rules only, model only and combined.
fn eval_injection(file: &str, as_json: bool, scores_out: Option<&str>) -> ExitCode {
    use tollgate_core::detect::ScanText;
    use tollgate_core::eval::metrics;
    let lines = match read_jsonl(file) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let tiny = tollgate_core::detect::tiny::builtin()
        .map_err(|e| format!("built-in second-stage model: {e}"));
    let detector = match first_stage("eval").and_then(|d| tiny.map(|t| d.with_tiny(t, 2))) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let (Some(tiny_alone), Some(ngram)) = (detector.tiny(), detector.ngram()) else {
        eprintln!("the eval detector has no second stage");
        return ExitCode::from(1);
    };
    let (mut r, mut g, mut tn, mut m, mut c) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut ran = 0usize;
    let mut errors = 0usize;
    let mut per_line = String::new();
    for (n, v) in lines {
        let label = match v.get("label").unwrap_or(&Value::Null) {
            Value::Number(x) if x.as_u64() == Some(1) => true,
            Value::Number(x) if x.as_u64() == Some(0) => false,
            Value::Bool(b) => *b,
            other => {
                eprintln!("{file}:{n}: label must be 0 or 1, got {other}");
                return ExitCode::from(1);
            }
        };
        let Some(t) = v.get("text").and_then(Value::as_str) else {
            eprintln!("{file}:{n}: text must be a string");
            return ExitCode::from(1);
        };
        let channel = match v.get("channel").and_then(Value::as_str) {
            Some("tool") => Channel::Tool,
            Some("document") => Channel::Document,
            Some("system") => Channel::System,
            _ => Channel::User,
        };
        let scan = ScanText::new(t);
        let scored = detector.score(&scan, channel);
        let s = scored.scores;
        if scored.error.is_some() {
            errors += 1;
        }
        if s.tiny.is_some() {
            ran += 1;
        }
        // The second stage alone, run on every text (the normalised view).
        let alone = match tiny_alone.score(&scan.normalized().text, 2, &|w| ngram.score(w)) {
            Ok(p) => p,
            Err(_) => {
                errors += 1;
                0.0
            }
        };
        if scores_out.is_some() {
            per_line.push_str(
                &json!({"line": n, "label": u8::from(label), "rules": s.rules,
                "ngram": s.ngram, "tiny": s.tiny, "tiny_alone": alone, "combined": s.combined})
                .to_string(),
            );
            per_line.push('\n');
        }
        r.push((s.rules, label));
        g.push((s.ngram, label));
        tn.push((alone, label));
        m.push((s.model, label));
        c.push((s.combined, label));
    }
    if errors > 0 {
        eprintln!("{errors} texts: the second stage failed");
        return ExitCode::from(1);
    }
    if let Some(out) = scores_out {
        if let Err(e) = std::fs::write(out, &per_line) {
            eprintln!("{out}: {e}");
            return ExitCode::from(1);
        }
    }
    // F1, TPR and FPR at the default block threshold of the user channel.
    let at = tollgate_core::config::DEFAULT_DIRECT_BLOCK;
    let rows = [
        ("rules", metrics(&r, at)),
        ("ngram", metrics(&g, at)),
        ("tiny", metrics(&tn, at)),
        ("model", metrics(&m, at)),
        ("combined", metrics(&c, at)),
    ];
    let ran_fraction = if c.is_empty() {
        0.0
    } else {
        ran as f64 / c.len() as f64
    };
    if as_json {
        let obj: serde_json::Map<String, Value> = rows
            .iter()
            .map(|(name, x)| {
                (
                    name.to_string(),
                    json!({"auc": x.auc, "f1": x.f1, "threshold": x.threshold,
                           "tpr_at_threshold": x.tpr_at_threshold, "fpr_at_threshold": x.fpr_at_threshold,
                           "tpr_at_fpr_1pct": x.tpr_at_fpr_1, "tpr_at_fpr_0_1pct": x.tpr_at_fpr_01,
                           "positives": x.positives, "negatives": x.negatives}),
                )
            })
            .collect();
        let mut obj = obj;
        obj.insert("second_stage_ran".into(), json!(ran_fraction));
        println!("{}", Value::Object(obj));
    } else {
        println!(
            "{file}: {} positives, {} negatives",
            rows[0].1.positives, rows[0].1.negatives
        );
        println!(
            "rules: curated rules; ngram: n-gram model; tiny: second stage alone (every text);"
        );
        println!(
            "model: n-gram + second stage as shipped (it ran on {:.1}% of texts); combined: rules + model",
            100.0 * ran_fraction
        );
        println!("(F1, TPR and FPR at the default block threshold {at})");
        println!("detector    AUC     TPR@FPR1%  TPR@FPR0.1%  F1      TPR     FPR");
        for (name, x) in &rows {
            println!(
                "{name:<10} {:6.4}  {:9.4}  {:11.4}  {:6.4}  {:6.4}  {:6.4}",
                x.auc,
                x.tpr_at_fpr_1,
                x.tpr_at_fpr_01,
                x.f1,
                x.tpr_at_threshold,
                x.fpr_at_threshold
            );
        }
    }
    ExitCode::SUCCESS
}

/// The PII detector `eval --task pii` scores: every type, flagged, with the
/// default minimum score (NER types when the build has the model).
fn pii_eval_policy() -> Result<Policy, String> {
    use tollgate_core::detect::pii::PiiType;
    let types: serde_json::Map<String, Value> = PiiType::ALL
        .iter()
        .map(|t| (t.as_str().to_string(), json!("flag")))
        .collect();
    let cfg =
        json!({"schemaVersion": 1, "detectors": [{"type": "pii", "id": "pii", "types": types}]});
    Policy::from_json(cfg.to_string().as_bytes()).map_err(|e| format!("the eval policy: {e}"))
}

/// Score a file of texts with gold spans: per-type precision, recall and F1.
fn eval_pii(file: &str, as_json: bool) -> ExitCode {
    use tollgate_core::eval::{PiiReport, Span};
    let lines = match read_jsonl(file) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let policy = match pii_eval_policy() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let mut report = PiiReport::default();
    for (n, v) in lines {
        let Some(t) = v.get("text").and_then(Value::as_str) else {
            eprintln!("{file}:{n}: text must be a string");
            return ExitCode::from(1);
        };
        let mut gold = Vec::new();
        for s in v
            .get("spans")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let (Some(start), Some(end), Some(kind)) =
                (s["start"].as_u64(), s["end"].as_u64(), s["type"].as_str())
            else {
                eprintln!("{file}:{n}: a span needs start, end and type");
                return ExitCode::from(1);
            };
            let (start, end) = (start as usize, end as usize);
            if start >= end || t.get(start..end).is_none() {
                eprintln!("{file}:{n}: span {start}..{end} is not a UTF-8 range of the text");
                return ExitCode::from(1);
            }
            gold.push(Span {
                kind: kind.to_string(),
                start,
                end,
            });
        }
        let predicted: Vec<Span> = scan_text(&policy, t, Channel::User)
            .into_iter()
            .filter(|f| f.family == Family::Pii)
            .map(|f| Span {
                kind: f.kind.to_string(),
                start: f.start,
                end: f.end,
            })
            .collect();
        report.add(&gold, &predicted);
    }
    let pct = |x: f64| {
        if x.is_nan() {
            "-".to_string()
        } else {
            format!("{:.1}", 100.0 * x)
        }
    };
    if as_json {
        let per_type: serde_json::Map<String, Value> = report
            .per_type
            .iter()
            .map(|(k, c)| {
                (
                    k.clone(),
                    json!({"gold": c.gold, "predicted": c.predicted,
                           "precision": c.precision(true), "recall": c.recall(true), "f1": c.f1(true),
                           "overlap_precision": c.precision(false), "overlap_recall": c.recall(false),
                           "overlap_f1": c.f1(false)}),
                )
            })
            .collect();
        println!(
            "{}",
            json!({"texts": report.texts, "negative_texts": report.negative_texts,
                   "negative_texts_hit": report.negative_texts_hit,
                   "negative_fp_rate": report.negative_fp_rate(), "per_type": per_type})
        );
        return ExitCode::SUCCESS;
    }
    println!(
        "{file}: {} texts, {} without gold spans",
        report.texts, report.negative_texts
    );
    println!("exact: same type and bytes; overlap: same type, any shared byte (percent)");
    println!("type                 gold  pred   P      R      F1     | P(ov)  R(ov)  F1(ov)");
    for (k, c) in &report.per_type {
        println!(
            "{k:<19} {:5} {:5}  {:>5}  {:>5}  {:>5}  | {:>5}  {:>5}  {:>5}",
            c.gold,
            c.predicted,
            pct(c.precision(true)),
            pct(c.recall(true)),
            pct(c.f1(true)),
            pct(c.precision(false)),
            pct(c.recall(false)),
            pct(c.f1(false)),
        );
    }
    println!(
        "texts without gold spans where something fired: {} of {} ({}%)",
        report.negative_texts_hit,
        report.negative_texts,
        pct(report.negative_fp_rate())
    );
    ExitCode::SUCCESS
}

fn check(file: &str) -> ExitCode {
    match load_policy(Some(file)) {
        Ok(p) => {
            println!("{file}: ok ({} detectors)", p.detectors.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

fn schema() -> ExitCode {
    let schema = schemars::schema_for!(PluginConfig);
    match serde_json::to_string_pretty(&schema) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot serialise the schema: {e}");
            ExitCode::from(1)
        }
    }
}

fn scan(config: Option<&str>) -> ExitCode {
    let policy = match load_policy(config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let stdin = std::io::stdin();
    let mut out = BufWriter::new(std::io::stdout().lock());
    for line in stdin.lock().lines() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                eprintln!("reading stdin: {e}");
                return ExitCode::from(1);
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let result = scan_line(&policy, &line);
        if writeln!(out, "{result}")
            .and_then(|()| out.flush())
            .is_err()
        {
            // The reader went away (e.g. `| head`): stop quietly.
            return ExitCode::SUCCESS;
        }
    }
    ExitCode::SUCCESS
}

/// One input line to one output object. Never fails: errors become `{"id","error"}`.
pub fn scan_line(policy: &Policy, line: &str) -> Value {
    let input: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return json!({"id": null, "error": format!("input is not valid JSON: {e}")}),
    };
    let id = input.get("id").cloned().unwrap_or(Value::Null);
    match scan_input(policy, &input) {
        Ok(v) => v_with_id(id, v),
        Err(e) => json!({"id": id, "error": e}),
    }
}

fn v_with_id(id: Value, mut v: Value) -> Value {
    if let Value::Object(map) = &mut v {
        let mut out = serde_json::Map::with_capacity(map.len() + 1);
        out.insert("id".into(), id);
        out.append(map);
        return Value::Object(out);
    }
    v
}

fn scan_input(policy: &Policy, input: &Value) -> Result<Value, String> {
    let obj = input
        .as_object()
        .ok_or("input must be a JSON object with `text`, or `path` and `request`")?;
    for key in obj.keys() {
        if !matches!(key.as_str(), "id" | "text" | "channel" | "path" | "request") {
            return Err(format!("unknown field `{key}`"));
        }
    }
    match (obj.get("text"), obj.get("request")) {
        (Some(text), None) => {
            if obj.contains_key("path") {
                return Err("`path` goes with `request`, not with `text`".into());
            }
            let text = text.as_str().ok_or("`text` must be a string")?;
            let channel: Channel =
                match obj.get("channel") {
                    None => Channel::User,
                    Some(c) => match c.as_str() {
                        Some("user") => Channel::User,
                        Some("system") => Channel::System,
                        Some("tool") => Channel::Tool,
                        Some("document") => Channel::Document,
                        _ => return Err(
                            "`channel` must be one of \"user\", \"system\", \"tool\", \"document\""
                                .into(),
                        ),
                    },
                };
            let findings = scan_text(policy, text, channel);
            let action = decide(&findings);
            let redacted = (action == Action::Redact)
                .then(|| redact(text, &findings, &mut Pseudonyms::default()));
            let model = injection_score(policy, text, channel);
            Ok(output(
                action,
                &findings,
                pii_entries(&findings, None),
                redacted,
                model,
            ))
        }
        (None, Some(request)) => {
            if obj.contains_key("channel") {
                return Err("`channel` goes with `text`, not with `request`".into());
            }
            let path = obj
                .get("path")
                .and_then(Value::as_str)
                .ok_or("`request` needs a string `path`, e.g. \"/v1/chat/completions\"")?;
            if !path.starts_with('/') {
                return Err("`path` must start with '/'".into());
            }
            if !request.is_object() {
                return Err("`request` must be a JSON object (an API request body)".into());
            }
            let api = policy.api_for_path(path);
            let scan = scan_value(policy, api, Direction::Request, request.clone());
            let findings: Vec<Finding> = scan.findings.iter().map(|f| f.finding.clone()).collect();
            let mut pii = Vec::new();
            for f in &scan.findings {
                if f.finding.family == Family::Pii {
                    let path = scan.segments.get(f.segment).map(|s| pointer(&s.path));
                    pii.extend(pii_entries(std::slice::from_ref(&f.finding), path));
                }
            }
            let redacted = match (&scan.rewritten, scan.action) {
                (Some(body), Action::Redact) => Some(String::from_utf8_lossy(body).into_owned()),
                _ => None,
            };
            let model = scan
                .segments
                .iter()
                .map(|s| injection_score(policy, &s.text, s.channel))
                .fold(0.0f32, f32::max);
            Ok(output(scan.action, &findings, pii, redacted, model))
        }
        (Some(_), Some(_)) => Err("give either `text` or `request`, not both".into()),
        (None, None) => Err("missing `text` (or `path` and `request`)".into()),
    }
}

/// JSON Pointer (RFC 6901) of a segment path.
fn pointer(path: &[tollgate_core::api::PathStep]) -> String {
    use tollgate_core::api::PathStep;
    let mut s = String::new();
    for step in path {
        s.push('/');
        match step {
            PathStep::Key(k) => s.push_str(&k.replace('~', "~0").replace('/', "~1")),
            PathStep::Index(i) => s.push_str(&i.to_string()),
        }
    }
    s
}

fn pii_entries(findings: &[Finding], path: Option<String>) -> Vec<Value> {
    findings
        .iter()
        .filter(|f| f.family == Family::Pii)
        .map(|f| {
            let mut v = json!({"type": f.kind, "start": f.start, "end": f.end, "source": f.source});
            if let (Some(p), Value::Object(m)) = (&path, &mut v) {
                m.insert("path".into(), Value::String(p.clone()));
            }
            v
        })
        .collect()
}

fn output(
    action: Action,
    findings: &[Finding],
    pii: Vec<Value>,
    redacted: Option<String>,
    detector_score: f32,
) -> Value {
    let (score, rules) = injection_summary(findings);
    let score = score.max(detector_score);
    json!({
        "action": action.as_str(),
        "injection": {"score": score, "rules": rules},
        "pii": pii,
        "redacted": redacted,
    })
}

#[cfg(test)]
mod tests;
