"""`phoenix serve`, with its OTLP gRPC receiver bound to loopback.

    target/phoenix-venv/bin/python tests/phoenix/serve.py

Configure it with Phoenix's own environment variables (PHOENIX_HOST, PHOENIX_PORT,
PHOENIX_GRPC_PORT, PHOENIX_WORKING_DIR, ...). PHOENIX_HOST binds the HTTP server
(UI, REST API, OTLP/HTTP at /v1/traces), but Phoenix 20.26.1 binds the gRPC
receiver to "[::]:PHOENIX_GRPC_PORT" whatever the host (phoenix/server/grpc_server.py),
so on a test machine or a laptop it would listen on every interface. This wrapper
rewrites that address to PHOENIX_HOST (default 127.0.0.1) before Phoenix starts.
"""

import os
import sys

import grpc.aio._server as grpc_server

HOST = os.environ.setdefault("PHOENIX_HOST", "127.0.0.1")
_insecure = grpc_server.Server.add_insecure_port
_secure = grpc_server.Server.add_secure_port


def _local(address):
    return f"{HOST}:{address.rsplit(':', 1)[1]}"


def add_insecure_port(self, address):
    return _insecure(self, _local(address))


def add_secure_port(self, address, credentials):
    return _secure(self, _local(address), credentials)


grpc_server.Server.add_insecure_port = add_insecure_port
grpc_server.Server.add_secure_port = add_secure_port

if __name__ == "__main__":
    from phoenix.server.main import main

    sys.argv = ["phoenix", "serve", *sys.argv[1:]]
    sys.exit(main())
