"""envoy/production.yaml: the production shape (fail closed, buffers above the body
limit, stream-friendly timeouts, TLS to the provider, HTTP/2 to the rate-limit service,
the hash key from Envoy's environment), and `envoy --mode validate` with a test key,
while without the key the filter refuses its configuration.

    .venv/bin/python tests/deploy/check_production.py
"""

import json

import yaml

from common import (TEST_HASH_KEY, WASM_LITE, check, envoy_validate_all, finish, hash_key_envs, log_tail,
                    plugin_policy, problem, read, rejected_line, require_wasm, schema_errors, walk, wasm_filters)

FILE = "envoy/production.yaml"


def duration_s(d):
    """Seconds of an Envoy duration string ("300s", "0.25s"), or None."""
    if isinstance(d, str) and d.endswith("s"):
        try:
            return float(d[:-1])
        except ValueError:
            return None
    return None


def http2(cluster):
    opts = cluster.get("typed_extension_protocol_options", {}).get(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions", {})
    explicit = opts.get("explicit_http_config", {})
    return "http2_protocol_options" in explicit or "http2_protocol_options" in cluster


def endpoints(cluster):
    for ep in cluster.get("load_assignment", {}).get("endpoints", []):
        for lb in ep.get("lb_endpoints", []):
            sa = lb.get("endpoint", {}).get("address", {}).get("socket_address", {})
            yield sa.get("address"), sa.get("port_value")


def check_shape(config):
    check(config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1", "admin not on loopback")
    demo = yaml.safe_load(read("envoy/demo.yaml"))
    check(config.get("stats_config", {}).get("stats_tags") == demo["stats_config"]["stats_tags"],
          "stats_tags differ from envoy/demo.yaml's")
    wasm = wasm_filters(config)
    if not check(len(wasm) == 1, f"expected one Wasm filter, found {len(wasm)}"):
        return
    w = wasm[0]
    check(w.get("fail_open") is False, "fail_open must be false")
    check(w.get("allow_on_headers_stop_iteration") is True, "allow_on_headers_stop_iteration must be true")
    check(w.get("root_id") == "tollgate", "root_id must be tollgate")
    vm = w.get("vm_config", {})
    check(vm.get("code", {}).get("local", {}).get("filename") == "target/tollgate.wasm",
          "the module must be the full build, target/tollgate.wasm")
    env = vm.get("environment_variables", {})
    check("key_values" not in env, "vm_config.environment_variables.key_values writes values into the file")
    policy = plugin_policy(w)
    if not check(isinstance(policy, dict), "no JSON policy in configuration.value"):
        return
    for e in schema_errors(policy):
        problem(f"policy: {e}")
    keys = hash_key_envs(policy)
    check(keys, "no detector takes its hash key from the environment (hashKeyEnv)")
    for k in keys:
        check(k in env.get("host_env_keys", []), f"hashKeyEnv {k} is not in vm_config.environment_variables.host_env_keys")

    max_body = policy.get("maxBodyBytes", 1048576)
    listeners = config["static_resources"]["listeners"]
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    for listener in listeners:
        check(listener.get("per_connection_buffer_limit_bytes", 0) > max_body,
              f"listener {listener['name']}: per_connection_buffer_limit_bytes not above maxBodyBytes {max_body}")
    hcms = [v for _, k, v in walk(config) if k == "typed_config" and isinstance(v, dict)
            and str(v.get("@type", "")).endswith("HttpConnectionManager")]
    for hcm in hcms:
        idle = duration_s(hcm.get("stream_idle_timeout"))
        check(idle is not None and idle >= 120, "stream_idle_timeout missing or under 120s (slow first tokens)")
        check(duration_s(hcm.get("request_timeout")) is not None, "request_timeout missing")
        for vh in hcm["route_config"]["virtual_hosts"]:
            for r in vh["routes"]:
                route = r.get("route", {})
                t = duration_s(route.get("timeout", "15s"))
                check(t == 0 or (t or 0) >= 300, f"route {r['match']}: timeout {route.get('timeout', '15s (default)')} cuts long streams")
                c = clusters.get(route.get("cluster"))
                if check(c is not None, f"route to unknown cluster {route.get('cluster')}"):
                    check(c.get("per_connection_buffer_limit_bytes", 0) > max_body,
                          f"cluster {c['name']}: per_connection_buffer_limit_bytes not above maxBodyBytes")
                    tls = c.get("transport_socket", {}).get("typed_config", {})
                    if check(str(tls.get("@type", "")).endswith("UpstreamTlsContext"), f"cluster {c['name']}: no TLS"):
                        sni = tls.get("sni")
                        check(all(a == sni for a, _ in endpoints(c)), f"cluster {c['name']}: SNI {sni} is not its address")
                        vc = tls.get("common_tls_context", {}).get("validation_context", {})
                        check("trusted_ca" in vc and vc.get("match_typed_subject_alt_names"),
                              f"cluster {c['name']}: the certificate is not verified (trusted_ca and SAN)")
                    check(c.get("type") in ("LOGICAL_DNS", "STRICT_DNS"), f"cluster {c['name']}: not resolved by DNS")
    rl = policy.get("rateLimit")
    if rl and check(rl["cluster"] in clusters, f"rateLimit.cluster {rl['cluster']} is not a cluster"):
        check(http2(clusters[rl["cluster"]]), f"cluster {rl['cluster']}: gRPC needs http2_protocol_options")
    tr = policy.get("traces")
    if tr and check(tr["cluster"] in clusters, f"traces.cluster {tr['cluster']} is not a cluster"):
        check(not http2(clusters[tr["cluster"]]), f"cluster {tr['cluster']}: OTLP/HTTP is HTTP/1.1 here")
    return keys


def main():
    text = read(FILE)
    config = yaml.safe_load(text)
    keys = check_shape(config) or []
    if not require_wasm() or not keys:
        return finish("production")
    # The lite build for the refusal: the same configuration code, a quarter of the module to compile.
    lite = text.replace("filename: target/tollgate.wasm", f"filename: {WASM_LITE}")
    results = envoy_validate_all({
        "with key": ("production.yaml", text, {k: TEST_HASH_KEY for k in keys}),
        "without key": ("production-no-key.yaml", lite, None, tuple(keys)),
    })
    ok, log = results["with key"]
    check(ok, f"{FILE} does not validate with {keys[0]} set:\n    {log_tail(log)}")
    ok, log = results["without key"]
    line = rejected_line(log) or ""
    check(not ok and "hashKeyEnv: environment variable" in line,
          f"{FILE} without {keys[0]}: expected the filter to refuse naming hashKeyEnv, got ok={ok} {line!r}:\n    {log_tail(log)}")
    finish("production")


if __name__ == "__main__":
    main()
