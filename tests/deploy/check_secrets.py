"""No plaintext secret in the deployment files: istio/, envoy/production.yaml, deploy/.

Secrets reach the filter through the environment only (Envoy
`vm_config.environment_variables.host_env_keys`, Istio `vmConfig.env` with
`valueFrom: HOST`, compose `${VAR}`); API keys appear as SHA-256 only; Secret
manifests hold placeholders. Embedded JSON policies (Envoy's `configuration.value`)
are parsed and checked like the YAML around them.

    .venv/bin/python tests/deploy/check_secrets.py
"""

import glob
import json
import os
import re

import yaml

from common import check, finish, path, problem, walk

SCANNED = ["istio/**/*", "envoy/production.yaml", "deploy/**/*"]
# Field names whose value is a secret when written out (config spellings: camelCase or
# snake_case; the PII detector's upper-case type names such as PRIVATE_KEY are not fields).
SECRET_FIELD = re.compile(r"^(hash_?[kK]ey|password|passwd|secret|token|api_?[kK]ey|private_?[kK]ey|credentials?|"
                          r"client_?[sS]ecret|access_?[kK]ey|auth_?[tT]oken|bearer_?[tT]oken)$")
# Secrets by their look, anywhere in the text (comments included).
SECRET_TEXT = [
    (re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"), "an OpenAI/Anthropic API key"),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b"), "a GitHub token"),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), "a Slack token"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r'"hashKey"\s*:\s*"'), "a plaintext hashKey"),
]
PLACEHOLDER = re.compile(r"^(REPLACE[-_A-Z0-9]*|CHANGE[-_]?ME|<[^>]+>|\$\{[A-Za-z_][A-Za-z0-9_]*(:?[-?][^}]*)?\})$")


def files():
    out = set()
    for pattern in SCANNED:
        out.update(f for f in glob.glob(path(pattern), recursive=True) if os.path.isfile(f))
    return sorted(out)


def embedded(value):
    """A string that is a JSON object (Envoy's inline policy), parsed."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return None


def scan_tree(tree, where, report):
    for at, key, value in walk(tree):
        loc = f"{where}: {'/'.join(at + (str(key),))}"
        sub = embedded(value)
        if sub is not None:
            scan_tree(sub, f"{where} (embedded JSON at {'/'.join(at + (str(key),))})", report)
        if key == "hashKey" and value is not None:
            report(f"{loc}: plaintext hashKey (use hashKeyEnv and the environment)")
        elif key == "key_values":
            report(f"{loc}: vm_config.environment_variables.key_values writes the value into the config (use host_env_keys)")
        elif isinstance(key, str) and SECRET_FIELD.match(key) and isinstance(value, (str, int)) \
                and not PLACEHOLDER.match(str(value)):
            report(f"{loc}: a literal value for a secret field")
        if key == "apiKeys" and isinstance(value, list):
            for i, k in enumerate(value):
                if not (isinstance(k, dict) and set(k) <= {"sha256", "tenant", "team", "agent"}
                        and re.fullmatch(r"[0-9a-f]{64}", str(k.get("sha256", "")))):
                    report(f"{loc}/{i}: an API key entry must be its SHA-256 (64 hex) and names only")
        if key == "env" and isinstance(value, list) and at[-1:] == ("vmConfig",):
            for e in value:
                if isinstance(e, dict) and (e.get("valueFrom") != "HOST" or "value" in e):
                    report(f"{loc}: {e.get('name')} is INLINE (its value sits in the WasmPlugin); use valueFrom: HOST")
        if key == "environment" and isinstance(value, dict):  # compose
            for name, v in value.items():
                if re.search(r"(?i)(KEY|SECRET|TOKEN|PASSWORD)$", name):
                    if v is not None and not PLACEHOLDER.match(str(v)):
                        report(f"{loc}/{name}: a literal secret; pass it from the caller's environment (${{{name}}})")
    if isinstance(tree, dict) and tree.get("kind") == "Secret":
        for section in ("data", "stringData"):
            for name, v in (tree.get(section) or {}).items():
                if not PLACEHOLDER.match(str(v)):
                    report(f"{where}: Secret {tree['metadata'].get('name')} {section}.{name} is not a placeholder")


def scan_text(text, where, report):
    for rx, what in SECRET_TEXT:
        for m in rx.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            report(f"{where}:{line}: looks like {what}")


def scan_file(f, report):
    rel = os.path.relpath(f, path())
    with open(f, encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    scan_text(text, rel, report)
    if f.endswith((".yaml", ".yml")):
        try:
            for doc in yaml.safe_load_all(text):
                if doc is not None:
                    scan_tree(doc, rel, report)
        except yaml.YAMLError as e:
            report(f"{rel}: does not parse: {e}")
    elif f.endswith(".json") and not f.endswith(".schema.json"):  # a schema describes fields, holds no values
        try:
            scan_tree(json.loads(text), rel, report)
        except ValueError as e:
            report(f"{rel}: does not parse: {e}")


def self_test():
    """Each kind of leak is caught (so a clean result means something)."""
    sample = {
        "vm_config": {"environment_variables": {"key_values": {"TOLLGATE_HASH_KEY": "abc"}}},
        "configuration": {"value": json.dumps({"detectors": [{"type": "pii", "id": "p", "hashKey": "0123456789abcdef"}],
                                               "identity": {"apiKeys": [{"key": "sk-live", "tenant": "t"}]}})},
        "spec": {"vmConfig": {"env": [{"name": "TOLLGATE_HASH_KEY", "value": "abc"}]}},
        "services": {"envoy": {"environment": {"TOLLGATE_HASH_KEY": "abcdef0123456789"}}},
        "redis": {"password": "hunter2"},
    }
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"hash-key": "0123456789abcdef"}}
    found = []
    scan_tree(sample, "sample", found.append)
    scan_tree(secret, "secret", found.append)
    scan_text('x: {"hashKey": "0123456789abcdef"} # sk-proj-' + "a" * 24 + "\n", "text", found.append)
    kinds = ["key_values", "plaintext hashKey", "API key entry", "INLINE", "literal secret", "not a placeholder",
             "literal value for a secret field",
             "looks like a plaintext hashKey", "looks like an OpenAI"]
    for k in kinds:
        check(any(k in f for f in found), f"self-test: the scanner misses {k!r}: {found}")


def main():
    self_test()
    scanned = files()
    check(any(f.endswith("wasmplugin.yaml") for f in scanned) and any(f.endswith("production.yaml") for f in scanned)
          and any(f.endswith("compose.yaml") for f in scanned), f"expected files missing from the scan: {scanned}")
    for f in scanned:
        scan_file(f, problem)
    finish(f"secrets ({len(scanned)} files)")


if __name__ == "__main__":
    main()
