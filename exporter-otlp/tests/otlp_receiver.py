"""A small OTLP/HTTP metrics receiver for the tests.

It decodes every request with the PyPI package `opentelemetry-proto` (code we
do not control), appends it as one JSON line to --out, and answers with the
responses scripted by --script, then 200 for everything after:

    --script "503:1,200"   first a 503 with Retry-After: 1, then a 200
    --script "503:MAX"     Retry-After: 18446744073709551615 (u64::MAX seconds);
                           FAR and PAST: HTTP dates in 9999 and 1970
    --script "400"         a 400
    --script "hang"        never answer the first request
    --script "partial:3"   a 200 whose partial_success rejects 3 data points

GET /ready answers 200 once the server listens.
"""

import argparse
import gzip
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--script", default="")
parser.add_argument("--ready", required=True, help="file to write the bound port to once listening")
args = parser.parse_args()

script = [step for step in args.script.split(",") if step]
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_):
        pass

    def do_GET(self):
        if self.path == "/ready":
            self.reply(200, b"ready", "text/plain")
        else:
            self.reply(404, b"", "text/plain")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportMetricsServiceRequest()
        request.ParseFromString(body)
        with lock:
            step = script.pop(0) if script else "200"
        status, _, arg = step.partition(":")
        record = {
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "answer": status,
            "received_at": time.time(),
            "request": MessageToDict(request, preserving_proto_field_name=True),
        }
        with lock, open(args.out, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        if status == "hang":
            time.sleep(3600)
            return
        if status == "partial":
            response = ExportMetricsServiceResponse()
            response.partial_success.rejected_data_points = int(arg)
            response.partial_success.error_message = "test rejects some points"
            self.reply(200, response.SerializeToString(), "application/x-protobuf")
            return
        code = int(status)
        named = {
            "MAX": "18446744073709551615",
            "FAR": "Fri, 31 Dec 9999 23:59:59 GMT",
            "PAST": "Thu, 01 Jan 1970 00:00:00 GMT",
        }
        extra = {"Retry-After": named.get(arg, arg)} if arg else {}
        payload = ExportMetricsServiceResponse().SerializeToString() if code == 200 else b"scripted failure"
        self.reply(code, payload, "application/x-protobuf", extra)

    def reply(self, code, payload, content_type, extra=None):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload)


def announce(port):
    """Writes the bound port to --ready, atomically: the tests wait for it
    (port 0 lets the OS choose, so no other process can hold it)."""
    with open(args.ready + ".tmp", "w", encoding="utf-8") as f:
        f.write(str(port))
    os.replace(args.ready + ".tmp", args.ready)


server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
server.daemon_threads = True
announce(server.server_address[1])
server.serve_forever()
