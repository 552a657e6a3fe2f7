#!/usr/bin/env python3
"""Every crate not from crates.io is a workspace member or a vendored crate under vendor/.

cargo-deny's `sources` check covers registries and git; path crates are outside it.
This closes the gap: `cargo metadata` (all targets, all features) must show no path
crate elsewhere, and every directory of vendor/ with a Cargo.toml must be in use
(a stale copy would otherwise linger unreviewed). Prints `N passed, N failed`.
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"


def main():
    out = subprocess.run([os.environ.get("CARGO", "cargo"), "metadata", "--locked", "--format-version", "1", "--all-features"],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    meta = json.loads(out)
    members = set(meta["workspace_members"])
    vendor = os.path.join(ROOT, "vendor") + os.sep
    failed, passed, vendored = [], 0, set()
    for p in meta["packages"]:
        src = p.get("source")
        where = os.path.relpath(os.path.dirname(p["manifest_path"]), ROOT)
        if src == CRATES_IO:
            passed += 1
        elif src is None and p["id"] in members:
            passed += 1
        elif src is None and p["manifest_path"].startswith(vendor):
            vendored.add(where)
            passed += 1
        else:
            failed.append(f"{p['name']} {p['version']}: source {src or 'path ' + where} is neither crates.io, a workspace member nor vendor/")
    for d in sorted(os.listdir(vendor)):
        if os.path.isfile(os.path.join(vendor, d, "Cargo.toml")):
            rel = os.path.join("vendor", d)
            if rel in vendored:
                passed += 1
            else:
                failed.append(f"{rel}: vendored but no crate of the workspace uses it")
    for f in failed:
        print(f"FAIL {f}")
    print(f"path-sources: vendored in use: {', '.join(sorted(vendored)) or 'none'}")
    print(f"path-sources: {passed} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
