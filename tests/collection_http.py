"""A scripted stdlib HTTP server on 127.0.0.1 (port 0) for the stage-01 client tests.

Each request pops the next scripted answer for its path (the last one repeats), so a test says
exactly what the server does: ``Reply(429, headers={"Retry-After": "1"})``, ``Reply(500)``, a
``delay_s`` longer than the client's timeout, a body cut short, and so on.  Every request is
logged with its path, query string and headers, so tests can check what the client sent.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/sparql-results+json"
    #: seconds to wait before answering (longer than the client timeout = a timeout)
    delay_s: float = 0.0
    #: announce this many more bytes than are sent, then close (a truncated transfer)
    short_by: int = 0


@dataclass
class Seen:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class ScriptedServer:
    """``with ScriptedServer({"/sparql": [Reply(429, ...), Reply(200, body)]}) as server: ...``."""

    def __init__(self, script: dict[str, list[Reply]]):
        self.script = {path: list(replies) for path, replies in script.items()}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                parsed = urllib.parse.urlsplit(self.path)
                with outer._lock:
                    outer.seen.append(
                        Seen(parsed.path, urllib.parse.parse_qs(parsed.query), dict(self.headers))
                    )
                    replies = outer.script.get(parsed.path)
                    if not replies:
                        reply = Reply(404, b"not scripted", content_type="text/plain")
                    else:
                        reply = replies.pop(0) if len(replies) > 1 else replies[0]
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(reply.body) + reply.short_by))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(reply.body)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass
                if reply.short_by:
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def count(self, path: str) -> int:
        return sum(1 for s in self.seen if s.path == path)

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
