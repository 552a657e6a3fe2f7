#!/usr/bin/env python3
"""Check target/sbom/tollgate.cdx.json against what the wasm build really compiles.

    tools/release/sbom_check.py --sbom target/sbom/tollgate.cdx.json --wasm target/tollgate.wasm \
        --dep-info target/wasm32-wasip1/wasm-release/tollgate.d

The truth here is not the generator's (cargo tree): it is cargo's own list of the units
of `cargo build --profile wasm-release --target wasm32-wasip1 -p tollgate-plugin`
(`--message-format=json`, a no-op after `make wasm`: every unit is reported, fresh or
not) and Cargo.lock. Every crate of Cargo.lock that build compiles must be a component
(name, version, purl pkg:cargo/<name>@<version>, a licence, the .crate's SHA-256 from
Cargo.lock for crates.io crates, `target` when compiled for wasm32-wasip1 else `host`),
and nothing else may be; the main component's SHA-256 is the wasm's; every file under
models/ that rustc recorded as an input is a component with its SHA-256, and is recorded
with that SHA-256 in a sum file of its folder (SHA256SUMS or *.SHA256SUMS; so
`make model-check` covers it).
Prints `N passed, N failed`.
"""

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tomllib

from checks import Checks

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CARGO = os.environ.get("CARGO", "cargo")
check = Checks("sbom-check")


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def package_key(package_id):
    """(name, version) of a cargo package id: `<source>#<name>@<version>` or `<source>#<version>`."""
    source, _, frag = package_id.partition("#")
    if "@" in frag:
        name, _, version = frag.rpartition("@")
    else:
        name, version = source.rstrip("/").rsplit("/", 1)[-1], frag
    return name, version


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sbom", required=True)
    ap.add_argument("--wasm", required=True)
    ap.add_argument("--dep-info", required=True)
    ap.add_argument("--package", default="tollgate-plugin")
    ap.add_argument("--target", default="wasm32-wasip1")
    ap.add_argument("--profile", default="wasm-release")
    args = ap.parse_args()

    with open(args.sbom) as f:
        bom = json.load(f)
    check(bom.get("bomFormat") == "CycloneDX" and bom.get("specVersion") == "1.5", "bomFormat CycloneDX, specVersion 1.5")
    check(re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", bom.get("serialNumber", "")) is not None, "serialNumber is a urn:uuid")
    main_c = (bom.get("metadata") or {}).get("component") or {}
    wasm_sha = sha256_file(args.wasm)
    check({"alg": "SHA-256", "content": wasm_sha} in (main_c.get("hashes") or []),
          f"metadata.component has the wasm's SHA-256 {wasm_sha}")

    # Cargo's units for the wasm build (fresh after `make wasm`, so nothing is compiled here).
    proc = subprocess.run([CARGO, "build", "--locked", "--profile", args.profile, "--target", args.target,
                           "-p", args.package, "--message-format=json"],
                          cwd=ROOT, capture_output=True, text=True)
    if not check(proc.returncode == 0, f"cargo build for the unit list: {proc.stderr.strip()[-2000:]}"):
        sys.exit(1)
    built, rebuilt = {}, 0
    for line in proc.stdout.splitlines():
        msg = json.loads(line) if line.startswith("{") else {}
        if msg.get("reason") != "compiler-artifact":
            continue
        key = package_key(msg["package_id"])
        in_target = any(f"{os.sep}{args.target}{os.sep}" in p for p in msg.get("filenames") or [])
        built[key] = built.get(key, False) or in_target
        rebuilt += not msg.get("fresh", True)
    if rebuilt:
        print(f"note: cargo compiled {rebuilt} stale units; the SBOM describes the tree as it is now")
    check(len(built) > 0, "cargo reported the build's units")

    with open(os.path.join(ROOT, "Cargo.lock"), "rb") as f:
        lock = {(p["name"], p["version"]): p for p in tomllib.load(f)["package"]}
    not_locked = sorted(set(built) - set(lock))
    check(not not_locked, f"built crates missing from Cargo.lock: {not_locked}")

    crates = {}
    for c in [main_c] + (bom.get("components") or []):
        if str(c.get("purl", "")).startswith("pkg:cargo/"):
            key = (c.get("name"), c.get("version"))
            check(key not in crates, f"{key}: listed twice")
            crates[key] = c
    missing = sorted(k for k in built if k in lock and k not in crates)
    extra = sorted(set(crates) - set(built))
    check(not missing, f"crates the wasm build compiles that the SBOM lacks: {missing}")
    check(not extra, f"crates in the SBOM the wasm build does not compile: {extra}")

    for key, c in sorted(crates.items()):
        if key not in built:
            continue
        name, version = key
        check(c.get("purl") == f"pkg:cargo/{name}@{version}", f"{name} {version}: purl {c.get('purl')!r}")
        lic = c.get("licenses") or []
        check(bool(lic) and all(x.get("expression") or (x.get("license") or {}).get("name") for x in lic),
              f"{name} {version}: no licence")
        checksum = lock[key].get("checksum")
        if checksum:
            check({"alg": "SHA-256", "content": checksum} in (c.get("hashes") or []),
                  f"{name} {version}: SHA-256 of the .crate is not Cargo.lock's {checksum}")
        if c is not main_c:
            props = {p.get("name"): p.get("value") for p in c.get("properties") or []}
            want = "target" if built[key] else "host"
            check(props.get("tollgate:cargo:build-kind") == want,
                  f"{name} {version}: build-kind {props.get('tollgate:cargo:build-kind')!r}, cargo built it for {want}")

    # The embedded model files: what the build read, under models/.
    with open(args.dep_info) as f:
        first = f.read().split("\n\n", 1)[0].replace("\\\n", " ")
    inputs = [os.path.normpath(p.replace("\\ ", " ")) for p in re.split(r"(?<!\\) +", first.partition(": ")[2].strip()) if p]
    # A file can be listed twice (rustc read it, and core's build script hashes it).
    models = sorted({os.path.relpath(p, ROOT) for p in inputs if p.startswith(os.path.join(ROOT, "models") + os.sep)})
    check(len(models) > 0, "the build embeds model files")
    files = {c.get("name"): c for c in bom.get("components") or [] if str(c.get("bom-ref", "")).startswith("file:")}
    check(sorted(files) == models, f"model components {sorted(files)} vs the build's inputs under models/ {models}")
    for rel in models:
        c = files.get(rel) or {}
        digest = sha256_file(os.path.join(ROOT, rel))
        check({"alg": "SHA-256", "content": digest} in (c.get("hashes") or []), f"{rel}: SHA-256 {digest}")
        # ... and recorded in one of its folder's sum files (SHA256SUMS, or LISTS.SHA256SUMS for
        # word lists written by another script), so `make model-check` covers every embedded file.
        folder = os.path.join(ROOT, os.path.dirname(rel))
        recorded = {}
        for sums in sorted(n for n in os.listdir(folder) if n == "SHA256SUMS" or n.endswith(".SHA256SUMS")):
            with open(os.path.join(folder, sums)) as f:
                recorded.update({ln.split()[1].lstrip("*"): ln.split()[0] for ln in f if len(ln.split()) == 2})
        check(recorded.get(os.path.basename(rel)) == digest,
              f"{rel}: embedded in the wasm but not recorded with this SHA-256 in a sum file of "
              f"{os.path.relpath(folder, ROOT)}")

    refs = {main_c.get("bom-ref")} | {c.get("bom-ref") for c in bom.get("components") or []}
    deps = bom.get("dependencies") or []
    dangling = sorted({d for e in deps for d in [e.get("ref")] + (e.get("dependsOn") or []) if d not in refs})
    check(not dangling, f"dependencies name unknown bom-refs: {dangling}")

    n_target = sum(1 for v in built.values() if v)
    print(f"sbom-check: {len(built)} crates built ({n_target} for {args.target}), {len(models)} model files")
    check.finish()


if __name__ == "__main__":
    main()
