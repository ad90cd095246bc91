# One C-core gRPC watch client for `node scripts/bench-watch.mjs --grpcio` (Debian python3-grpcio).
# Reads one JSON object on stdin: { "port", "connections", "timeout_s" (0: no deadline),
# "jobs": [{ "token", "request_hex", "count" }] }; opens every job's WatchProjection streams,
# round robin over `connections` separate channels (each its own HTTP/2 connection), waits
# for each stream's first message, prints {"opened": n, "errors": n} on one line, then holds
# the streams until stdin closes, and cancels them. Requests are bytes the orchestrator
# encoded, so no generated Python code is needed.
import json
import sys

import grpc

PATH = "/secrets.v1.SecretService/WatchProjection"


def main():
    job = json.loads(sys.stdin.readline())
    channels = [
        grpc.insecure_channel(f"127.0.0.1:{job['port']}", options=[("grpc.use_local_subchannel_pool", 1), ("grpc.enable_retries", 0)])
        for _ in range(job["connections"])
    ]
    methods = [c.unary_stream(PATH, request_serializer=None, response_deserializer=None) for c in channels]
    timeout = job["timeout_s"] or None
    calls = []
    i = 0
    for j in job["jobs"]:
        request = bytes.fromhex(j["request_hex"])
        md = (("authorization", f"Bearer {j['token']}"),)
        for _ in range(j["count"]):
            calls.append(methods[i % len(methods)](request, metadata=md, timeout=timeout))
            i += 1
    opened = errors = 0
    for call in calls:
        try:
            next(call)
            opened += 1
        except grpc.RpcError:
            errors += 1
    print(json.dumps({"opened": opened, "errors": errors}), flush=True)
    sys.stdin.read()
    for call in calls:
        call.cancel()
    for c in channels:
        c.close()


main()
