"""A small OTLP/gRPC metrics receiver for the tests (grpcio + the PyPI
`opentelemetry-proto` package: decoding we do not control).

Every Export call is appended as one JSON line to --out (its metadata, the
request decoded, the scripted answer); answers follow --script, then OK:

    --script "unavailable,ok"          UNAVAILABLE, then OK
    --script "exhausted"               RESOURCE_EXHAUSTED without RetryInfo
    --script "exhausted_retry:1"       RESOURCE_EXHAUSTED with RetryInfo (1 s)
    --script "unavailable_retry:MAX"   UNAVAILABLE with RetryInfo (a number of
                                       seconds; MAX: the largest int64)
    --script "invalid"                 INVALID_ARGUMENT
    --script "hang"                    never answer the first call
    --script "partial:3"               OK with partial_success rejecting 3 points
    --script "big_partial:100000"      OK with a partial_success message of
                                       100,000 bytes (over the client's cap)

The server listens on --port (0: one the OS chooses) and then writes the port
it is bound to into --ready, which the tests wait for.
"""

import argparse
import json
import os
import threading
import time
from concurrent import futures

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.json_format import MessageToDict
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--script", default="")
parser.add_argument("--ready", required=True, help="file to write the bound port to once listening")
args = parser.parse_args()

script = [step for step in args.script.split(",") if step]
lock = threading.Lock()


class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def Export(self, request, context):
        with lock:
            step = script.pop(0) if script else "ok"
        name, _, arg = step.partition(":")
        record = {
            "metadata": {k: v for k, v in context.invocation_metadata()},
            "answer": name,
            "received_at": time.time(),
            "request": MessageToDict(request, preserving_proto_field_name=True),
        }
        with lock, open(args.out, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        if name == "hang":
            time.sleep(3600)
        if name == "unavailable":
            context.abort(grpc.StatusCode.UNAVAILABLE, "scripted: unavailable")
        if name == "invalid":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "scripted: invalid argument")
        if name == "exhausted":
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "scripted: exhausted, no RetryInfo")
        if name in ("exhausted_retry", "unavailable_retry"):
            seconds = 2**63 - 1 if arg == "MAX" else int(arg)
            info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds))
            detail = any_pb2.Any()
            detail.Pack(info)
            code = code_pb2.RESOURCE_EXHAUSTED if name == "exhausted_retry" else code_pb2.UNAVAILABLE
            status = status_pb2.Status(
                code=code,
                message="scripted: retry later",
                details=[detail],
            )
            context.abort_with_status(rpc_status.to_status(status))
        response = metrics_service_pb2.ExportMetricsServiceResponse()
        if name == "partial":
            response.partial_success.rejected_data_points = int(arg)
            response.partial_success.error_message = "test rejects some points"
        if name == "big_partial":
            response.partial_success.error_message = "x" * int(arg)
        return response


server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
port = server.add_insecure_port(f"127.0.0.1:{args.port}")
server.start()
# The bound port, atomically, once serving: the tests wait for this file
# (port 0 lets the OS choose, so no other process can hold it).
with open(args.ready + ".tmp", "w", encoding="utf-8") as f:
    f.write(str(port))
os.replace(args.ready + ".tmp", args.ready)
server.wait_for_termination()
