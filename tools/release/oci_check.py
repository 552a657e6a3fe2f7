#!/usr/bin/env python3
"""Check the OCI image layout written by `make oci` (written apart from oci_layout.py on purpose).

    tools/release/oci_check.py --layout target/oci/tollgate --wasm target/tollgate.wasm --tag 0.1.0

Every blob is re-hashed and compared with the digest and size of each descriptor naming
it; the media types are those istio-agent's compat path reads (OCI manifest, OCI config,
one application/vnd.oci.image.layer.v1.tar+gzip layer); the layer, un-gzipped and
un-tarred, holds `plugin.wasm` byte-identical to the built module; index.json names the
manifest with org.opencontainers.image.ref.name = the tag. Prints `N passed, N failed`.
"""

import argparse
import datetime
import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import zlib

from checks import Checks

check = Checks("oci-check")


def load_json(path, what):
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        check(False, f"{what}: {e}")
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layout", required=True)
    ap.add_argument("--wasm", required=True)
    ap.add_argument("--tag", required=True)
    args = ap.parse_args()
    blob_dir = os.path.join(args.layout, "blobs", "sha256")

    layout = load_json(os.path.join(args.layout, "oci-layout"), "oci-layout")
    check(layout == {"imageLayoutVersion": "1.0.0"}, f"oci-layout is {layout}")

    # Every blob's name is the sha256 of its bytes.
    blobs = {}
    for name in sorted(os.listdir(blob_dir)) if os.path.isdir(blob_dir) else []:
        with open(os.path.join(blob_dir, name), "rb") as f:
            data = f.read()
        blobs[name] = data
        check(hashlib.sha256(data).hexdigest() == name, f"blob {name}: content hashes to {hashlib.sha256(data).hexdigest()}")
    referenced = set()

    def fetch(desc, what, media_type):
        """The blob a descriptor names, after checking digest, size and media type."""
        if not isinstance(desc, dict):
            check(False, f"{what}: no descriptor")
            return None
        check(desc.get("mediaType") == media_type, f"{what}: mediaType {desc.get('mediaType')!r}, want {media_type!r}")
        m = re.fullmatch(r"sha256:([0-9a-f]{64})", str(desc.get("digest", "")))
        if not check(m is not None, f"{what}: digest {desc.get('digest')!r} is not sha256:<64 hex>"):
            return None
        hexd = m.group(1)
        referenced.add(hexd)
        data = blobs.get(hexd)
        if not check(data is not None, f"{what}: blob {hexd} missing"):
            return None
        check(hashlib.sha256(data).hexdigest() == hexd, f"{what}: digest does not match the blob")
        check(desc.get("size") == len(data), f"{what}: size {desc.get('size')} but the blob has {len(data)} bytes")
        return data

    index = load_json(os.path.join(args.layout, "index.json"), "index.json") or {}
    check(index.get("schemaVersion") == 2, "index.json: schemaVersion 2")
    check(index.get("mediaType") == "application/vnd.oci.image.index.v1+json", "index.json: mediaType")
    manifests = index.get("manifests") or []
    check(len(manifests) == 1, f"index.json: one manifest, found {len(manifests)}")
    desc = manifests[0] if manifests else None
    ref = ((desc or {}).get("annotations") or {}).get("org.opencontainers.image.ref.name")
    check(ref == args.tag, f"index.json: org.opencontainers.image.ref.name {ref!r}, want {args.tag!r}")

    raw = fetch(desc, "manifest", "application/vnd.oci.image.manifest.v1+json")
    manifest = json.loads(raw) if raw else {}
    check(manifest.get("schemaVersion") == 2, "manifest: schemaVersion 2")
    check(manifest.get("mediaType") == "application/vnd.oci.image.manifest.v1+json", "manifest: mediaType field")
    ann = manifest.get("annotations") or {}
    check(ann.get("module.wasm.image/variant") == "compat", "manifest: module.wasm.image/variant = compat")
    check(ann.get("org.opencontainers.image.version") not in (None, ""), "manifest: org.opencontainers.image.version")
    check(re.fullmatch(r"[0-9a-f]{40}(-dirty)?", ann.get("org.opencontainers.image.revision", "")) is not None,
          f"manifest: org.opencontainers.image.revision {ann.get('org.opencontainers.image.revision')!r}")
    try:
        datetime.datetime.strptime(ann.get("org.opencontainers.image.created", ""), "%Y-%m-%dT%H:%M:%SZ")
        check(True, "")
    except ValueError:
        check(False, f"manifest: org.opencontainers.image.created {ann.get('org.opencontainers.image.created')!r} is not RFC 3339 UTC")
    if "org.opencontainers.image.source" in ann:
        check(re.match(r"^(https?|ssh|git)://|^[\w.-]+@", ann["org.opencontainers.image.source"]) is not None,
              "manifest: org.opencontainers.image.source is a URL")

    config_raw = fetch(manifest.get("config"), "config", "application/vnd.oci.image.config.v1+json")
    config = json.loads(config_raw) if config_raw else {}
    check(bool(config.get("architecture")) and bool(config.get("os")), "config: architecture and os set")

    # istio-agent reads the last layer; there must be exactly one, a gzip'd tar with plugin.wasm.
    layers = manifest.get("layers") or []
    check(len(layers) == 1, f"manifest: one layer, found {len(layers)}")
    layer = fetch(layers[0] if layers else None, "layer", "application/vnd.oci.image.layer.v1.tar+gzip")
    with open(args.wasm, "rb") as f:
        wasm = f.read()
    if layer is not None:
        try:
            tar_bytes = gzip.decompress(layer)
        except (OSError, EOFError, zlib.error) as e:
            check(False, f"layer: not gzip: {e}")
            tar_bytes = b""
        diff_ids = (config.get("rootfs") or {}).get("diff_ids")
        check(diff_ids == [f"sha256:{hashlib.sha256(tar_bytes).hexdigest()}"], f"config: rootfs.diff_ids {diff_ids} vs the layer's tar")
        try:
            with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
                members = tar.getmembers()
                files = [m for m in members if m.isfile()]
                check(len(members) == 1 and len(files) == 1 and os.path.basename(files[0].name) == "plugin.wasm",
                      f"layer: holds exactly plugin.wasm, found {[m.name for m in members]}")
                got = tar.extractfile(files[0]).read() if files else b""
        except tarfile.TarError as e:
            check(False, f"layer: not a tar: {e}")
            got = b""
        check(got == wasm, f"layer: plugin.wasm ({len(got)} bytes) differs from {args.wasm} ({len(wasm)} bytes)")
        check(got[:4] == b"\0asm", "layer: plugin.wasm starts with the wasm magic (istio-agent checks it)")

    stray = sorted(set(blobs) - referenced)
    check(not stray, f"blobs no descriptor names: {stray}")

    check.finish()


if __name__ == "__main__":
    main()
