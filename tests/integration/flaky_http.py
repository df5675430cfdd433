#!/usr/bin/env python3
"""A small HTTP proxy for the store tests, Python stdlib only: it forwards every request to an
upstream S3 server unchanged (the Host header included, so SigV4 signatures still verify) unless
a fault is armed, in which case the next requests get that fault instead.

  flaky_http.py --upstream 127.0.0.1:PORT [--port 0]

Prints {"msg":"listening","port":N} on stderr when ready (what tests/harness waits for).
Control, never forwarded:
  GET /__flaky?mode=M&count=N  the next N requests get fault M; answers the counters
  GET /__flaky                 answers {"requests":R,"faults":F,"armed":N,"mode":M}
Faults: 503 (an S3 ServiceUnavailable answer after reading the body), reset (close without
answering), truncate (forward, but send only half of a 2xx body, then close), hang (read the
request, then say nothing for 10 s).
"""
import argparse
import http.client
import http.server
import json
import sys
import threading
import time
import urllib.parse

HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection", "te",
       "upgrade"}


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.faults = 0
        self.armed = 0
        self.mode = "503"

    def take(self):
        """Counts a request; returns the fault it gets, or None."""
        with self.lock:
            self.requests += 1
            if self.armed > 0:
                self.armed -= 1
                self.faults += 1
                return self.mode
            return None

    def snapshot(self):
        with self.lock:
            return {"requests": self.requests, "faults": self.faults, "armed": self.armed,
                    "mode": self.mode}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None
    upstream = None

    def log_message(self, fmt, *args):  # quiet: the test reads counters, not logs
        pass

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _control(self):
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        if "mode" in q or "count" in q:
            with self.state.lock:
                self.state.mode = q.get("mode", [self.state.mode])[0]
                self.state.armed = int(q.get("count", ["1"])[0])
        body = json.dumps(self.state.snapshot()).encode()
        self.send_response_only(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _fault(self, mode):
        if mode == "503":
            body = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ServiceUnavailable'
                    b"</Code><Message>Please reduce your request rate.</Message></Error>")
            self.send_response_only(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return
        if mode == "hang":
            time.sleep(10)
        self.close_connection = True

    def _forward(self, body, truncate):
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for k, v in self.headers.items():
            if k.lower() not in HOP:
                conn.putheader(k, v)
        conn.endheaders(body if body or self.command == "PUT" else None)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in HOP and k.lower() != "content-length":
                self.send_header(k, v)
        length = resp.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
        if length is not None:
            self.send_header("Content-Length", length)
        self.end_headers()
        conn.close()
        if truncate and 200 <= resp.status < 300 and len(data) > 1:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)

    def _handle(self):
        if urllib.parse.urlsplit(self.path).path == "/__flaky":
            self._control()
            return
        fault = self.state.take()
        if fault == "hang":
            self._fault(fault)
            return
        body = self._body()
        if fault in ("503", "reset"):
            self._fault(fault)
            return
        self._forward(body, fault == "truncate")

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _handle


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True, help="HOST:PORT of the S3 server")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    host, port = a.upstream.rsplit(":", 1)
    Handler.state = State()
    Handler.upstream = (host, int(port))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    sys.stderr.write(json.dumps({"msg": "listening", "port": srv.server_address[1]}, separators=(",", ":")) + "\n")
    sys.stderr.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
