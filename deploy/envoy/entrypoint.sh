#!/bin/sh
# Start Envoy through func-e with the mounted config. Arguments are Envoy's.
set -eu
if [ -z "${TOLLGATE_HASH_KEY:-}" ]; then
  # A local stack must start with one command: without a key from the caller, use a
  # random one for this run (`hash` tags then change at every restart). Set
  # TOLLGATE_HASH_KEY (>= 16 bytes) for stable tags; never commit it.
  echo "tollgate: TOLLGATE_HASH_KEY not set, using a random key for this run" >&2
  TOLLGATE_HASH_KEY=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
  export TOLLGATE_HASH_KEY
fi
exec func-e run -c /etc/envoy/envoy.yaml "$@"
