"""Send one HTTP/2 (h2c, prior knowledge) POST whose body is followed by trailers.

With trailers the body stream never carries END_STREAM, so the filter must run
its final check from the trailers callback. Prints one JSON line:
{"status": int, "headers": [[k, v], ...], "body": str}.

usage: h2_trailers.py --port N --path /v1/chat/completions --body-file F
"""

import argparse
import json
import socket

import h2.config
import h2.connection
import h2.events


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/v1/chat/completions")
    ap.add_argument("--body-file", required=True)
    ap.add_argument("--request-id", default="h2-trailers")
    args = ap.parse_args()
    body = open(args.body_file, "rb").read()

    sock = socket.create_connection(("127.0.0.1", args.port), timeout=15)
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [
        (":method", "POST"), (":path", args.path), (":scheme", "http"),
        (":authority", f"127.0.0.1:{args.port}"),
        ("content-type", "application/json"), ("x-request-id", args.request_id),
    ])
    # Body in two DATA frames, neither with END_STREAM; then trailers end the stream.
    half = len(body) // 2
    conn.send_data(sid, body[:half])
    conn.send_data(sid, body[half:])
    conn.send_headers(sid, [("x-checksum", "trailer-value")], end_stream=True)
    sock.sendall(conn.data_to_send())

    status, headers, out, done = 0, [], b"", False
    while not done:
        data = sock.recv(65536)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                for k, v in ev.headers:
                    k, v = k.decode(), v.decode()
                    if k == ":status":
                        status = int(v)
                    headers.append([k, v])
            elif isinstance(ev, h2.events.DataReceived):
                out += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                done = True
        sock.sendall(conn.data_to_send())
    sock.close()
    print(json.dumps({"status": status, "headers": headers, "body": out.decode("utf-8", "replace")}))


if __name__ == "__main__":
    main()
