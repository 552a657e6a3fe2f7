"""The Istio manifests (istio/*.yaml).

    .venv/bin/python tests/deploy/check_istio.py manifests
        Every document parses with apiVersion, kind and metadata; the WasmPlugin is
        shaped for production (OCI image of this version with its digest, FAIL_CLOSE,
        the hash key from the host environment, fed by the Secret through the gateway
        pod); its pluginConfig validates against istio/tollgate-config.schema.json, is
        the policy of envoy/production.yaml apart from the clusters Istio names, and its
        clusters exist with the right protocol; Services select pods that exist. Then
        the real filter loads the pluginConfig as Istio hands it over (no
        allow_on_headers_stop_iteration), and refuses it with the example Secret's
        placeholder as the key.
    .venv/bin/python tests/deploy/check_istio.py ratelimit
        The rate-limit ConfigMap is envoy/ratelimit/tollgate.yaml byte for byte, and
        the service reads it from where it is mounted.
"""

import glob
import json
import os
import re
import sys

import yaml

from common import (TEST_HASH_KEY, WASM, WASM_LITE, check, envoy_validate_all, finish, hash_key_envs,
                    log_tail, path, plugin_policy, problem, read, rejected_line, require_wasm, schema_errors,
                    wasm_filters, workspace_version, yaml_docs)

CLUSTER_RE = re.compile(r"^outbound\|(\d+)\|\|([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local$")


def load():
    docs = []
    files = sorted(glob.glob(path("istio", "*.yaml")))
    check(files, "no istio/*.yaml")
    for f in files:
        rel = os.path.relpath(f, path())
        try:
            for d in yaml_docs(rel):
                ok = isinstance(d, dict) and d.get("apiVersion") and d.get("kind") and d.get("metadata", {}).get("name")
                if check(ok, f"{rel}: a document without apiVersion, kind or metadata.name"):
                    check(d["kind"] == "Namespace" or d["metadata"].get("namespace"),
                          f"{rel}: {d['kind']}/{d['metadata']['name']} has no namespace")
                    docs.append((rel, d))
        except yaml.YAMLError as e:
            problem(f"{rel}: {e}")
    return docs


def find(docs, kind, name=None, namespace=None):
    return [d for _, d in docs if d["kind"] == kind
            and (name is None or d["metadata"]["name"] == name)
            and (namespace is None or d["metadata"].get("namespace") == namespace)]


def selected_pods(docs, namespace, labels):
    """Deployments in `namespace` whose pod labels include `labels`."""
    return [d for d in find(docs, "Deployment", namespace=namespace)
            if labels and all(d["spec"]["template"]["metadata"].get("labels", {}).get(k) == v
                              for k, v in labels.items())]


def dr_h2(docs, host):
    drs = [d for d in find(docs, "DestinationRule") if d["spec"]["host"] == host]
    return [d["spec"].get("trafficPolicy", {}).get("connectionPool", {}).get("http", {}).get("h2UpgradePolicy")
            for d in drs]


def production_policy():
    config = yaml.safe_load(read("envoy/production.yaml"))
    return plugin_policy(wasm_filters(config)[0])


def check_wasmplugin(docs):
    plugins = find(docs, "WasmPlugin")
    if not check(len(plugins) == 1, f"expected one WasmPlugin, found {len(plugins)}"):
        return None
    wp = plugins[0]
    ns = wp["metadata"]["namespace"]
    spec = wp["spec"]
    check(wp["apiVersion"] == "extensions.istio.io/v1alpha1", f"WasmPlugin apiVersion {wp['apiVersion']}")
    version = workspace_version()
    check(re.fullmatch(rf"oci://[^\s]+/tollgate:{re.escape(version or '?')}", spec.get("url", "")),
          f"url {spec.get('url')!r} is not oci://.../tollgate:{version}")
    check(re.fullmatch(r"[0-9a-f]{64}", str(spec.get("sha256", ""))), "sha256 is not 64 hex digits")
    check(spec.get("imagePullPolicy") in ("IfNotPresent", "Always"), "imagePullPolicy unset")
    check(spec.get("failStrategy") == "FAIL_CLOSE", "failStrategy must be FAIL_CLOSE")
    check(spec.get("phase") in ("AUTHN", "AUTHZ", "STATS"), f"phase {spec.get('phase')!r}: the plugin would run at the router's end")
    check(isinstance(spec.get("priority"), int), "priority unset")
    check(spec.get("pluginName") == "tollgate", "pluginName (the root_id) must be tollgate")
    check(spec.get("type", "HTTP") == "HTTP", "type must be HTTP")

    # The workload: a gateway Deployment whose istio-proxy takes the key from the Secret.
    labels = spec.get("selector", {}).get("matchLabels", {})
    pods = selected_pods(docs, ns, labels)
    if not check(pods, f"selector {labels} matches no Deployment in {ns}"):
        return wp
    env = spec.get("vmConfig", {}).get("env", [])
    for e in env:
        check(e.get("valueFrom") == "HOST" and "value" not in e,
              f"vmConfig.env {e.get('name')}: must be valueFrom: HOST (an INLINE value sits in the resource)")
    host_env = {e.get("name") for e in env if e.get("valueFrom") == "HOST"}
    policy = spec.get("pluginConfig", {})
    for k in hash_key_envs(policy):
        check(k in host_env, f"hashKeyEnv {k} is not in vmConfig.env")
    for pod in pods:
        containers = {c["name"]: c for c in pod["spec"]["template"]["spec"]["containers"]}
        proxy = containers.get("istio-proxy")
        if not check(proxy, f"Deployment {pod['metadata']['name']}: no istio-proxy container"):
            continue
        check(pod["spec"]["template"]["metadata"].get("annotations", {}).get("inject.istio.io/templates") == "gateway",
              f"Deployment {pod['metadata']['name']}: not an injected gateway")
        penv = {e["name"]: e for e in proxy.get("env", [])}
        for k in host_env:
            ref = penv.get(k, {}).get("valueFrom", {}).get("secretKeyRef")
            if check(ref, f"Deployment {pod['metadata']['name']}: {k} not from a secretKeyRef"):
                secrets = find(docs, "Secret", ref["name"], ns)
                check(secrets and ref["key"] in {**secrets[0].get("data", {}), **secrets[0].get("stringData", {})},
                      f"{k}: Secret {ns}/{ref['name']} with key {ref['key']} not in istio/")
    return wp


def check_policy(docs, policy):
    for e in schema_errors(policy):
        problem(f"pluginConfig: {e}")
    check(policy.get("pauseAtHeaders") is False,
          "pluginConfig.pauseAtHeaders must be false: Istio cannot set allow_on_headers_stop_iteration")
    check("hashKey" not in json.dumps(policy).replace('"hashKeyEnv"', ""), "pluginConfig carries a plaintext hashKey")
    for key in policy.get("identity", {}).get("apiKeys", []):
        check(set(key) <= {"sha256", "tenant", "team", "agent"} and re.fullmatch(r"[0-9a-f]{64}", key.get("sha256", "")),
              f"apiKeys entry {key.get('tenant')}: only sha256 (64 hex), tenant, team, agent")
    rl, tr = policy.get("rateLimit", {}), policy.get("traces", {})
    m = CLUSTER_RE.match(rl.get("cluster", ""))
    if check(m, f"rateLimit.cluster {rl.get('cluster')!r} is not outbound|PORT||NAME.NS.svc.cluster.local"):
        port, name, ns = int(m.group(1)), m.group(2), m.group(3)
        svcs = find(docs, "Service", name, ns)
        if check(svcs, f"rateLimit.cluster: no Service {ns}/{name}"):
            ports = [p for p in svcs[0]["spec"]["ports"] if p["port"] == port]
            check(ports and (ports[0].get("name", "").startswith("grpc") or ports[0].get("appProtocol") == "grpc"),
                  f"Service {ns}/{name} port {port} is not named grpc: Istio would not speak HTTP/2 to it")
            check(selected_pods(docs, ns, svcs[0]["spec"].get("selector")), f"Service {ns}/{name} selects no pods")
        check("UPGRADE" in dr_h2(docs, f"{name}.{ns}.svc.cluster.local"),
              f"no DestinationRule upgrading {name}.{ns} to HTTP/2")
    m = CLUSTER_RE.match(tr.get("cluster", ""))
    if check(m, f"traces.cluster {tr.get('cluster')!r} is not outbound|PORT||NAME.NS.svc.cluster.local"):
        host = f"{m.group(2)}.{m.group(3)}.svc.cluster.local"
        check("DO_NOT_UPGRADE" in dr_h2(docs, host), f"no DestinationRule keeping {host} on HTTP/1.1")
        check(tr.get("authority") in (host, f"{host}:{m.group(1)}"), "traces.authority is not the collector's name")
    # The same policy as the plain-Envoy deployment, apart from what Istio names.
    prod = production_policy()
    mine = json.loads(json.dumps(policy))
    mine.pop("pauseAtHeaders", None)
    for p in (prod, mine):
        p.get("rateLimit", {}).pop("cluster", None)
        p.get("traces", {}).pop("cluster", None)
        p.get("traces", {}).pop("authority", None)
    if mine != prod:
        diff = sorted(k for k in set(mine) | set(prod) if mine.get(k) != prod.get(k))
        problem(f"pluginConfig differs from envoy/production.yaml's policy in {diff} (beyond clusters and pauseAtHeaders)")


def check_services(docs):
    for svc in find(docs, "Service"):
        ns, sel = svc["metadata"]["namespace"], svc["spec"].get("selector")
        pods = selected_pods(docs, ns, sel)
        if check(pods, f"Service {ns}/{svc['metadata']['name']} selects no Deployment"):
            declared = {p.get("containerPort") for c in pods[0]["spec"]["template"]["spec"]["containers"]
                        for p in c.get("ports", [])}
            for p in svc["spec"]["ports"]:
                check(p.get("targetPort", p["port"]) in declared,
                      f"Service {ns}/{svc['metadata']['name']}: targetPort {p.get('targetPort')} not a container port")


def istio_like_envoy(wp, wasm):
    """The Envoy config istiod would make of the WasmPlugin, on a loopback listener."""
    spec = wp["spec"]
    policy = spec["pluginConfig"]
    host_env = [e["name"] for e in spec.get("vmConfig", {}).get("env", []) if e.get("valueFrom") == "HOST"]
    clusters = [policy["rateLimit"]["cluster"], policy["traces"]["cluster"], "llm"]
    config = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9901}}},
        "static_resources": {
            "listeners": [{
                "name": "gateway",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "gateway",
                        "route_config": {"virtual_hosts": [{"name": "llm", "domains": ["*"], "routes": [
                            {"match": {"prefix": "/"}, "route": {"cluster": "llm"}}]}]},
                        "http_filters": [
                            {"name": "tollgate", "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                                "config": {
                                    "name": wp["metadata"]["name"], "root_id": spec["pluginName"],
                                    # What failStrategy FAIL_CLOSE sets; Istio has no allow_on_headers_stop_iteration.
                                    "fail_open": spec.get("failStrategy") == "FAIL_OPEN",
                                    "vm_config": {
                                        "runtime": "envoy.wasm.runtime.v8",
                                        "code": {"local": {"filename": wasm}},
                                        "environment_variables": {"host_env_keys": host_env}},
                                    "configuration": {
                                        "@type": "type.googleapis.com/google.protobuf.StringValue",
                                        "value": json.dumps(policy)}}}},
                            {"name": "envoy.filters.http.router", "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}],
            "clusters": [{
                "name": c, "type": "STATIC", "connect_timeout": "1s",
                "load_assignment": {"cluster_name": c, "endpoints": [{"lb_endpoints": [{"endpoint": {
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": 1}}}}]}]}}
                for c in clusters]}}
    return json.dumps(config, indent=1)


def manifests():
    docs = load()
    wp = check_wasmplugin(docs)
    check_services(docs)
    if wp is None:
        return finish("istio")
    check_policy(docs, wp["spec"]["pluginConfig"])
    if not require_wasm():
        return finish("istio")
    keys = [e["name"] for e in wp["spec"].get("vmConfig", {}).get("env", [])]
    secret = find(docs, "Secret", namespace=wp["metadata"]["namespace"])
    placeholder = next(iter(secret[0].get("stringData", {}).values()), None) if secret else None
    jobs = {"test key": ("istio-wasmplugin.json", istio_like_envoy(wp, WASM), {k: TEST_HASH_KEY for k in keys})}
    if check(placeholder, "secret-example.yaml has no stringData placeholder"):
        jobs["placeholder"] = ("istio-wasmplugin-placeholder.json", istio_like_envoy(wp, WASM_LITE),
                               {k: placeholder for k in keys})
    results = envoy_validate_all(jobs)
    ok, log = results["test key"]
    check(ok, f"the WasmPlugin's pluginConfig does not load in the filter (Istio's way, "
              f"no allow_on_headers_stop_iteration): {rejected_line(log)}\n    {log_tail(log)}")
    if "placeholder" in results:
        ok, log = results["placeholder"]
        line = rejected_line(log) or ""
        check(not ok and "hashKeyEnv: must be at least" in line,
              f"the example Secret's placeholder {placeholder!r} was not refused as a key: ok={ok} {line!r}")
    finish("istio")


def ratelimit():
    docs = load()
    shipped = read("envoy/ratelimit/tollgate.yaml")
    deps = find(docs, "Deployment", "ratelimit")
    if not check(deps, "no ratelimit Deployment"):
        return finish("istio-ratelimit")
    pod = deps[0]["spec"]["template"]["spec"]
    ns = deps[0]["metadata"]["namespace"]
    c = pod["containers"][0]
    check(re.fullmatch(r"(docker\.io/)?envoyproxy/ratelimit:[0-9a-f]{8,}", c["image"]),
          f"image {c['image']} is not envoyproxy/ratelimit at a pinned commit tag")
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    config_dir = f"{env.get('RUNTIME_ROOT')}/{env.get('RUNTIME_SUBDIRECTORY')}/config"
    mounts = [m for m in c.get("volumeMounts", []) if m["mountPath"] == config_dir]
    if check(mounts, f"nothing mounted at {config_dir} ($RUNTIME_ROOT/$RUNTIME_SUBDIRECTORY/config)"):
        vol = next((v for v in pod["volumes"] if v["name"] == mounts[0]["name"]), {})
        cm_name = vol.get("configMap", {}).get("name")
        cms = find(docs, "ConfigMap", cm_name, ns)
        if check(cms, f"ConfigMap {ns}/{cm_name} not in istio/"):
            data = cms[0].get("data", {})
            check(list(data) == ["tollgate.yaml"], f"ConfigMap {cm_name}: keys {list(data)}, expected tollgate.yaml")
            check(data.get("tollgate.yaml") == shipped,
                  f"ConfigMap {cm_name} is not envoy/ratelimit/tollgate.yaml byte for byte: copy the file in")
    redis_host, _, redis_port = (env.get("REDIS_URL") or "").partition(":")
    name, _, rns = redis_host.partition(".")
    rns = rns.split(".")[0] or ns
    svc = find(docs, "Service", name, rns)
    check(svc and any(str(p["port"]) == redis_port for p in svc[0]["spec"]["ports"]),
          f"REDIS_URL {env.get('REDIS_URL')} is no Service port in istio/")
    rl_svc = find(docs, "Service", "ratelimit", ns)
    check(rl_svc and any(str(p.get("targetPort")) == env.get("GRPC_PORT") for p in rl_svc[0]["spec"]["ports"]),
          "the ratelimit Service does not target GRPC_PORT")
    wp = find(docs, "WasmPlugin")
    if wp:
        domain = wp[0]["spec"]["pluginConfig"].get("rateLimit", {}).get("domain", "tollgate")
        check(yaml.safe_load(shipped).get("domain") == domain, f"rate-limit domain is not the plugin's {domain}")
    finish("istio-ratelimit")


if __name__ == "__main__":
    {"manifests": manifests, "ratelimit": ratelimit}[sys.argv[1] if len(sys.argv) > 1 else "manifests"]()
