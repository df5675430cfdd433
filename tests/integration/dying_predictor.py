#!/usr/bin/python3
"""A predictor that dies mid-answer, for the gateway's retry test (Debian's grpcio only).

  dying_predictor.py --upstream 127.0.0.1:PORT

It forwards credito.v1.Predictor calls to a real predictor unchanged (bytes in, bytes out) and
answers grpc.health.v1.Health SERVING for "" and "credito.v1.Predictor", until the first
PredictBatch: to that one it sends its response headers, so that the caller's gRPC retry policy
counts the call as committed, then exits without an answer (exit code 3). Prints
{"msg":"listening","port":N} on stderr when ready (what tests/harness waits for).
"""
import argparse
import json
import os
import sys
import time
from concurrent import futures

import grpc

SERVING = b"\x08\x01"  # grpc.health.v1.HealthCheckResponse{status: SERVING}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    upstream = grpc.insecure_channel(args.upstream)

    def forward(method):
        call_upstream = upstream.unary_unary("/credito.v1.Predictor/" + method)

        def handle(req, context):
            try:
                return call_upstream(req, timeout=5)
            except grpc.RpcError as e:
                context.abort(e.code(), e.details())
        return grpc.unary_unary_rpc_method_handler(handle)

    def predict_batch(req, context):
        context.send_initial_metadata((("x-dying-predictor", "1"),))
        time.sleep(0.3)  # the headers reach the caller before the connection is reset
        print(json.dumps({"msg": "dying mid-answer", "bytes": len(req)}), file=sys.stderr,
              flush=True)
        os._exit(3)

    def check(req, context):
        return SERVING

    def watch(req, context):
        yield SERVING
        while context.is_active():
            time.sleep(0.1)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler("credito.v1.Predictor", {
            "Predict": forward("Predict"),
            "GetModelInfo": forward("GetModelInfo"),
            "PredictBatch": grpc.unary_unary_rpc_method_handler(predict_batch),
        }),
        grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
            "Check": grpc.unary_unary_rpc_method_handler(check),
            "Watch": grpc.unary_stream_rpc_method_handler(watch),
        }),
    ))
    port = server.add_insecure_port("127.0.0.1:%d" % args.port)
    server.start()
    print(json.dumps({"msg": "listening", "port": port}), file=sys.stderr, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
