"""The dashboards attack's probe (tests/integration/dashscan.py) finds a Dask page where one
is served, and does not wait on listeners that speak no HTTP: a class's machine has hundreds
(kernels' ZeroMQ ports, Dask comms), and the scan ran out of time in CI before it learnt that."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.integration.dashscan import probe


class DaskLike(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html>bokeh dask dashboard</html>" if self.path == "/status" else b"no"
        self.send_response(200 if self.path == "/status" else 404)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_the_probe_finds_a_served_page_and_skips_silent_listeners_quickly():
    server = ThreadingHTTPServer(("127.0.0.1", 0), DaskLike)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    silent = [socket.create_server(("127.0.0.1", 0)) for _ in range(6)]  # accept, never answer
    try:
        scope: dict = {}
        started = time.monotonic()
        exec(probe(["c1"], ["/services/dask-gateway"]), scope)
        took = time.monotonic() - started
        assert f"127.0.0.1:{server.server_address[1]}/status" in scope["answered"]
        assert not any(f":{s.getsockname()[1]}/" in a for s in silent for a in scope["answered"])
        # six silent listeners, five paths each, 3 s per try: 90 s one by one; in parallel
        # and one try each, a few seconds
        assert took < 30, took
    finally:
        server.shutdown()
        server.server_close()
        for s in silent:
            s.close()
