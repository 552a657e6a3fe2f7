#!/usr/bin/env python3
"""CycloneDX 1.5 SBOM of the shipped wasm (target/tollgate.wasm).

    tools/release/sbom.py --wasm target/tollgate.wasm \
        --dep-info target/wasm32-wasip1/wasm-release/tollgate.d --out target/sbom/tollgate.cdx.json

What is listed, and from where (stdlib only, cargo's own views, nothing guessed):
- the crates the build compiles: `cargo tree -p tollgate-plugin --target wasm32-wasip1
  -e normal,build` (the feature resolution of that build: default features, so `ml`);
  each marked by the property `tollgate:cargo:build-kind`: `target` when compiled into
  the wasm, `host` when only built for the build machine (build scripts, proc-macros and
  what only they use). Licence, description and repository from `cargo metadata`, the
  SHA-256 of each crates.io `.crate` from Cargo.lock, the dependency edges from cargo tree;
- the vendored tract crates (vendor/) with a pedigree naming the crates.io release they
  were copied from;
- the model files embedded in the module: the files under models/ that the build's
  dep-info (`tollgate.d`, written by rustc for include_bytes!) lists, with their SHA-256;
- the module itself as metadata.component, with its SHA-256.

Deterministic: the same tree and wasm give the same file (serialNumber is a UUIDv5 of
the wasm's hash; timestamp from SOURCE_DATE_EPOCH, else the commit time of HEAD).
"""

import argparse
import datetime
import hashlib
import json
import os
import re
import subprocess
import sys
import tomllib
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CARGO = os.environ.get("CARGO", "cargo")
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"


def run(*cmd):
    try:
        return subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    except subprocess.CalledProcessError as e:
        sys.exit(f"{' '.join(cmd)}: {e.stderr.strip()}")


def first_line(*cmd):
    try:
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return ""


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def spdx(expr):
    """Cargo's old `MIT/Apache-2.0` spelling is `MIT OR Apache-2.0` in SPDX."""
    return re.sub(r"\s*/\s*", " OR ", expr.strip())


def tree(package, target, edges):
    """[(depth, name, version, proc_macro)] of `cargo tree` without dedupe (every path printed)."""
    out = run(CARGO, "tree", "--locked", "-p", package, "--target", target, "-e", edges,
              "--prefix", "depth", "--no-dedupe", "--format", "{p}")
    rows = []
    for line in out.splitlines():
        m = re.match(r"^(\d+)(\S+) v(\S+)(.*)$", line)
        if not m:
            sys.exit(f"cargo tree: unexpected line {line!r}")
        rows.append((int(m.group(1)), m.group(2), m.group(3), "(proc-macro)" in m.group(4)))
    return rows


def dep_info_files(path):
    """The inputs rustc recorded for the final artifact (Makefile syntax, `\\ ` escapes spaces)."""
    with open(path) as f:
        text = f.read()
    first = text.split("\n\n", 1)[0].replace("\\\n", " ")
    _, _, deps = first.partition(": ")
    return [p.replace("\\ ", " ") for p in re.split(r"(?<!\\) +", deps.strip()) if p]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wasm", required=True)
    ap.add_argument("--dep-info", required=True, help="rustc's .d of the cdylib (lists the embedded files)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--package", default="tollgate-plugin")
    ap.add_argument("--target", default="wasm32-wasip1")
    ap.add_argument("--profile", default="wasm-release")
    args = ap.parse_args()

    # Without --filter-platform: build scripts run on the host, so their
    # dependencies (sha2's cpufeatures for the model sums) are host crates that
    # the wasm32 filter leaves out.
    meta = json.loads(run(CARGO, "metadata", "--locked", "--format-version", "1"))
    by_key = {}
    for p in meta["packages"]:
        key = (p["name"], p["version"])
        if key in by_key:
            sys.exit(f"{key}: two packages with the same name and version; cannot tell them apart")
        by_key[key] = p
    with open(os.path.join(ROOT, "Cargo.lock"), "rb") as f:
        lock = {(p["name"], p["version"]): p for p in tomllib.load(f)["package"]}

    # Everything the build compiles, and the dependency edges between them.
    all_rows = tree(args.package, args.target, "normal,build")
    used, edges, stack = set(), {}, []
    for depth, name, version, _ in all_rows:
        key = (name, version)
        used.add(key)
        del stack[depth:]
        if stack:
            edges.setdefault(stack[-1], set()).add(key)
        stack.append(key)
    # What is compiled into the wasm: normal edges, not through a proc-macro (that runs on the host).
    in_wasm, macro_path = set(), []
    for depth, name, version, proc_macro in tree(args.package, args.target, "normal"):
        del macro_path[depth:]
        macro_path.append(proc_macro or (bool(macro_path) and macro_path[-1]))
        if not macro_path[-1]:
            in_wasm.add((name, version))
    root_key = (all_rows[0][1], all_rows[0][2])

    def bom_ref(key):
        return f"pkg:cargo/{key[0]}@{key[1]}"

    def crate_component(key):
        p = by_key.get(key)
        if p is None:
            sys.exit(f"{key[0]} {key[1]}: in cargo tree but not in cargo metadata")
        c = {"type": "library", "bom-ref": bom_ref(key), "name": key[0], "version": key[1]}
        if p.get("description"):
            c["description"] = " ".join(p["description"].split())
        c["scope"] = "required"
        if p.get("license"):
            c["licenses"] = [{"expression": spdx(p["license"])}]
        elif p.get("license_file"):
            c["licenses"] = [{"license": {"name": f"see {os.path.basename(p['license_file'])} in the crate"}}]
        c["purl"] = bom_ref(key)
        checksum = (lock.get(key) or {}).get("checksum")
        if checksum:
            c["hashes"] = [{"alg": "SHA-256", "content": checksum}]
        if p.get("repository"):
            c["externalReferences"] = [{"type": "vcs", "url": p["repository"]}]
        props = [{"name": "tollgate:cargo:build-kind", "value": "target" if key in in_wasm else "host"}]
        if p.get("source") is None:
            rel = os.path.relpath(os.path.dirname(p["manifest_path"]), ROOT)
            props.append({"name": "tollgate:cargo:source", "value": f"path {rel}"})
            if rel.startswith("vendor" + os.sep):
                c["pedigree"] = {
                    "ancestors": [{"type": "library", "name": key[0], "version": key[1], "purl": bom_ref(key)}],
                    "notes": f"Copied from the crates.io release into {rel} with one cargo feature added "
                             "so the linker can drop code Tollgate never uses (vendor/README.md).",
                }
        elif p["source"] != CRATES_IO:
            props.append({"name": "tollgate:cargo:source", "value": p["source"]})
        c["properties"] = props
        return c

    # The embedded model files, as rustc recorded them for this build.
    models_dir = os.path.join(ROOT, "models") + os.sep
    model_files = sorted({os.path.relpath(os.path.normpath(f), ROOT)
                          for f in dep_info_files(args.dep_info) if os.path.normpath(f).startswith(models_dir)})
    model_components = []
    for rel in model_files:
        props = [{"name": "tollgate:embedded-in", "value": os.path.basename(args.wasm)}]
        d = os.path.dirname(rel)
        for sums in sorted(n for n in os.listdir(os.path.join(ROOT, d))
                           if n == "SHA256SUMS" or n.endswith(".SHA256SUMS")):
            with open(os.path.join(ROOT, d, sums)) as f:
                if any(ln.split()[1:2] == [os.path.basename(rel)] for ln in f):
                    props.append({"name": "tollgate:sha256-recorded-in", "value": f"{d}/{sums}"})
        if os.path.exists(os.path.join(ROOT, d, "MODEL_CARD.md")):
            props.append({"name": "tollgate:model-card", "value": f"{d}/MODEL_CARD.md"})
        model_components.append({
            "type": "machine-learning-model" if rel.endswith((".onnx", ".tgng")) else "data",
            "bom-ref": f"file:{rel}",
            "name": rel,
            "hashes": [{"alg": "SHA-256", "content": sha256_file(os.path.join(ROOT, rel))}],
            "properties": props,
        })

    wasm_sha = sha256_file(args.wasm)
    plugin = by_key[root_key]
    main_component = crate_component(root_key)
    main_component.update({
        "type": "application",
        "hashes": [{"alg": "SHA-256", "content": wasm_sha}],
    })
    main_component.pop("scope", None)
    main_component["properties"] = [
        {"name": "tollgate:file", "value": os.path.relpath(os.path.abspath(args.wasm), ROOT)},
        {"name": "tollgate:size", "value": str(os.path.getsize(args.wasm))},
        {"name": "tollgate:cargo:target", "value": args.target},
        {"name": "tollgate:cargo:profile", "value": args.profile},
        {"name": "tollgate:cargo:features", "value": "default = [" + ", ".join(plugin["features"].get("default", [])) + "]"},
    ]

    sde = os.environ.get("SOURCE_DATE_EPOCH", "")
    epoch = int(sde) if sde.isdigit() else int(first_line("git", "log", "-1", "--format=%ct") or 0)
    tools = []
    for name, cmd in (("rustc", ["rustc", "-V"]), ("cargo", [CARGO, "-V"]), ("wasm-opt", ["wasm-opt", "--version"])):
        line = first_line(*cmd)
        m = re.search(r"\d+(\.\d+)*\S*", line.split(" ", 1)[1] if " " in line else "")
        if m:
            tools.append({"type": "application", "name": name, "version": m.group(0), "description": line})

    others = sorted(used - {root_key})
    dependencies = [{"ref": bom_ref(k), "dependsOn": sorted(bom_ref(d) for d in edges.get(k, ()))} for k in [root_key] + others]
    dependencies[0]["dependsOn"] += [c["bom-ref"] for c in model_components]
    dependencies += [{"ref": c["bom-ref"], "dependsOn": []} for c in model_components]

    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'tollgate.wasm/sha256/' + wasm_sha)}",
        "version": 1,
        "metadata": {
            "timestamp": datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": tools},
            "component": main_component,
        },
        "components": [crate_component(k) for k in others] + model_components,
        "dependencies": dependencies,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(bom, f, indent=2)
        f.write("\n")
    os.replace(tmp, args.out)
    n_wasm = len(in_wasm - {root_key})
    print(f"wrote {os.path.relpath(args.out)}: {len(others)} crates ({n_wasm} in the wasm, "
          f"{len(others) - n_wasm} build-host only), {len(model_components)} model files, wasm sha256 {wasm_sha}")


if __name__ == "__main__":
    main()
