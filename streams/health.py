"""The worker's own HTTP endpoint: ``/healthz`` for compose and ``/metrics`` for Prometheus.

``/healthz`` answers 200 only once the worker is ready: its topics exist and every agent
has started consuming (Faust's "Ready"), so a script that waits for it (``make up``) never
races the worker's start-up. Before that, and after a stop has begun, it answers 503.
``/metrics`` is the process's ``prometheus_client`` registry (see ``streams/metrics.py``).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


class Health:
    """Readiness flag plus the HTTP server that reports it (a daemon thread, so it
    answers even while the event loop is busy with a batch)."""

    def __init__(self, host: str, port: int) -> None:
        self.ready = threading.Event()
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/healthz":
                    ok = health.ready.is_set()
                    self._answer(200 if ok else 503, b"ready\n" if ok else b"starting\n")
                elif self.path == "/metrics":
                    self._answer(200, generate_latest(), CONTENT_TYPE_LATEST)
                else:
                    self._answer(404, b"not found\n")

            def _answer(self, status: int, body: bytes, kind: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: compose polls this every few seconds."""

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.ready.clear()
        self._server.shutdown()
        self._server.server_close()
