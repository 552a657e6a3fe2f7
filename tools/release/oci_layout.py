#!/usr/bin/env python3
"""Package target/tollgate.wasm as an OCI image layout that Istio's WasmPlugin pulls.

    tools/release/oci_layout.py --wasm target/tollgate.wasm --out target/oci/tollgate

The image is the Wasm Image Specification's *compat* variant with OCI media types,
the form istio-agent tries first (pkg/wasm/imagefetcher.go: a Docker schema-2
manifest, else an OCI manifest whose last layer is
application/vnd.oci.image.layer.v1.tar+gzip holding `plugin.wasm`, else the
two-layer `application/vnd.module.wasm.content.layer.v1+wasm` artifact):

    index.json   -> manifest  application/vnd.oci.image.manifest.v1+json
                    config    application/vnd.oci.image.config.v1+json
                    layer     application/vnd.oci.image.layer.v1.tar+gzip  (plugin.wasm)

Reproducible: the same wasm and the same commit give the same digests (tar entry and
`created` from SOURCE_DATE_EPOCH, else the commit time of HEAD; gzip header without
name or time; owner 0:0, mode 0644). Stdlib only, no Docker, no oras.
"""

import argparse
import datetime
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
WASM_NAME = "plugin.wasm"

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def git(*args):
    try:
        out = subprocess.run(["git", "-C", ROOT, *args], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return ""
    return out.stdout.strip()


def plugin_version():
    """The version of filter/plugin (`version.workspace = true` resolves to the workspace's)."""
    with open(os.path.join(ROOT, "filter/plugin/Cargo.toml"), "rb") as f:
        version = tomllib.load(f)["package"]["version"]
    if isinstance(version, dict):
        with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
            version = tomllib.load(f)["workspace"]["package"]["version"]
    return version


def revision():
    """HEAD, with `-dirty` when tracked files differ from it (the image is then not that commit)."""
    head = git("rev-parse", "HEAD")
    if head and git("status", "--porcelain", "--untracked-files=no"):
        head += "-dirty"
    return head


def source_url():
    """origin's URL when it is a URL (a clone of a local path is no source to publish); no credentials."""
    url = git("remote", "get-url", "origin")
    if not re.match(r"^(https?|ssh|git)://|^[\w.-]+@[\w.-]+:", url):
        return ""
    return re.sub(r"^(https?://)[^@/]+@", r"\1", url)


def created_epoch():
    sde = os.environ.get("SOURCE_DATE_EPOCH", "")
    if sde.isdigit():
        return int(sde)
    ct = git("log", "-1", "--format=%ct")
    return int(ct) if ct.isdigit() else 0


def rfc3339(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical(obj):
    return json.dumps(obj, indent=2, sort_keys=True).encode() + b"\n"


def layer_bytes(wasm, mtime):
    """(tar.gz bytes, sha256 of the uncompressed tar): one regular file, plugin.wasm."""
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(WASM_NAME)
        info.size = len(wasm)
        info.mtime = mtime
        info.mode = 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(wasm))
    raw = tar_buf.getvalue()
    gz_buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz_buf, compresslevel=9, mtime=0) as gz:
        gz.write(raw)
    return gz_buf.getvalue(), hashlib.sha256(raw).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wasm", required=True, help="the module to package (target/tollgate.wasm)")
    ap.add_argument("--out", required=True, help="the layout directory to (re)create")
    ap.add_argument("--tag", default="", help="the ref name in index.json (default: the plugin's version)")
    ap.add_argument("--source", default=os.environ.get("OCI_SOURCE", ""),
                    help="org.opencontainers.image.source (default: OCI_SOURCE, else origin's URL)")
    args = ap.parse_args()

    with open(args.wasm, "rb") as f:
        wasm = f.read()
    if wasm[:4] != b"\0asm":
        sys.exit(f"{args.wasm}: not a wasm module")

    version = plugin_version()
    tag = args.tag or version
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}", tag):
        sys.exit(f"tag {tag!r}: not a valid OCI tag")
    epoch = created_epoch()
    created = rfc3339(epoch)
    rev = revision()
    source = args.source or source_url()

    annotations = {
        # The Wasm Image Specification (compat variant) asks for this with OCI layer types.
        "module.wasm.image/variant": "compat",
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.title": "tollgate",
        "org.opencontainers.image.description": "Tollgate: proxy-wasm LLM security filter for Envoy/Istio (wasm32-wasip1)",
        "org.opencontainers.image.licenses": "Apache-2.0",
    }
    if rev:
        annotations["org.opencontainers.image.revision"] = rev
    if source:
        annotations["org.opencontainers.image.source"] = source
    else:
        print("oci: no source URL (set OCI_SOURCE=...); org.opencontainers.image.source left out", file=sys.stderr)

    layer, diff_id = layer_bytes(wasm, epoch)
    config = canonical({
        "created": created,
        # GOOS/GOARCH spelling, as the image spec asks; the module targets wasm32-wasip1.
        "architecture": "wasm",
        "os": "wasip1",
        "config": {"Labels": annotations},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        "history": [{"created": created, "created_by": f"tools/release/oci_layout.py: {WASM_NAME} from {os.path.basename(args.wasm)}"}],
    })

    def descriptor(media_type, blob):
        return {"mediaType": media_type, "digest": f"sha256:{hashlib.sha256(blob).hexdigest()}", "size": len(blob)}

    manifest = canonical({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": descriptor(MT_CONFIG, config),
        "layers": [descriptor(MT_LAYER, layer)],
        "annotations": annotations,
    })
    manifest_desc = descriptor(MT_MANIFEST, manifest)
    manifest_desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
    index = canonical({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [manifest_desc]})

    # Written beside the target, then swapped in: no stale blobs, never half a layout.
    out = os.path.abspath(args.out)
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    blobs = os.path.join(tmp, "blobs", "sha256")
    os.makedirs(blobs)
    for blob in (layer, config, manifest):
        with open(os.path.join(blobs, hashlib.sha256(blob).hexdigest()), "wb") as f:
            f.write(blob)
    with open(os.path.join(tmp, "oci-layout"), "wb") as f:
        f.write(canonical({"imageLayoutVersion": "1.0.0"}))
    with open(os.path.join(tmp, "index.json"), "wb") as f:
        f.write(index)
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)

    rel = os.path.relpath(out)
    digest = manifest_desc["digest"]
    print(f"built {rel}:{tag} (layer {len(layer)} bytes, wasm {len(wasm)} bytes)")
    print(f"  manifest digest  {digest}   (WasmPlugin url ...@{digest} or sha256: {digest[7:]})")
    print(f"  wasm sha256      {hashlib.sha256(wasm).hexdigest()}   (WasmPlugin sha256 for file:// and http(s):// urls)")


if __name__ == "__main__":
    main()
