"""A recording pass-through in front of a real OpenAI-compatible server, for the benchmarks.

The product is pointed at the proxy; the proxy forwards every request to the real server
unchanged and streams the answer back as it arrives. For each chat completion it records
the request body and, from the server's side of the wire, when the request arrived, when
the server's first content token came back and when the answer ended. So the server's own
time to first token for *exactly the prompt the product built* is measured in the same run,
at the same moment and under the same load as the product's, and the benchmark can divide
one by the other. The proxy's own cost (a loopback hop and a line-by-line copy) counts
against the product, never for it.

``replay`` sends recorded bodies straight to the server, bypassing the product, to measure
the server's own throughput on the same prompts.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Exchange:
    """One chat completion as the server saw it (times from ``time.time()``)."""

    body: dict
    received_at: float
    first_content_at: float | None = None
    ended_at: float | None = None
    status: int = 0
    completion_tokens: int | None = None

    @property
    def server_ttft(self) -> float | None:
        if self.first_content_at is None:
            return None
        return self.first_content_at - self.received_at

    def last_user_text(self) -> str:
        for message in reversed(self.body.get("messages", [])):
            if message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, list):
                    return " ".join(str(part.get("text", "")) for part in content)
                return str(content)
        return ""


def _first_content(line: bytes) -> tuple[bool, int | None]:
    """(does this SSE line carry reply text, the usage's completion tokens if it has any)."""
    if not line.startswith(b"data:"):
        return False, None
    payload = line[5:].strip()
    if not payload or payload == b"[DONE]":
        return False, None
    try:
        event = json.loads(payload)
    except ValueError:
        return False, None
    usage = event.get("usage") or {}
    has_text = any(
        (choice.get("delta") or {}).get("content") for choice in event.get("choices") or []
    )
    return has_text, usage.get("completion_tokens")


class RecordingProxy:
    """``with RecordingProxy("http://127.0.0.1:8080/v1") as proxy: proxy.base_url``"""

    def __init__(self, upstream_base_url: str) -> None:
        self.upstream = urllib.parse.urlsplit(upstream_base_url.rstrip("/"))
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.upstream.path}"

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def upstream_connection(self, timeout: float = 600) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(
            self.upstream.hostname, self.upstream.port or 80, timeout=timeout
        )

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # the benchmark prints its own summary
                pass

            def do_GET(self) -> None:
                self._forward(None)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._forward(self.rfile.read(length))

            def _forward(self, body: bytes | None) -> None:
                exchange = None
                if body is not None and self.path.endswith("/chat/completions"):
                    exchange = Exchange(body=json.loads(body), received_at=time.time())
                    with proxy._lock:
                        proxy.exchanges.append(exchange)
                upstream = proxy.upstream_connection()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in HOP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                self.end_headers()
                if exchange is not None:
                    exchange.status = response.status
                try:
                    while line := response.readline():
                        if exchange is not None:
                            has_text, tokens = _first_content(line)
                            if has_text and exchange.first_content_at is None:
                                exchange.first_content_at = time.time()
                            if tokens is not None:
                                exchange.completion_tokens = tokens
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the product gave up on the answer (Stop, a timeout): so do we
                if exchange is not None:
                    exchange.ended_at = time.time()
                    if exchange.first_content_at is None and response.status == 200:
                        # A non-streamed answer: its text arrives with its end.
                        exchange.first_content_at = exchange.ended_at
                upstream.close()
                self.close_connection = True

        return Handler

    def replay(self, bodies: list[dict], *, concurrency: int) -> tuple[float, int]:
        """Send ``bodies`` straight to the server, ``concurrency`` at a time; (wall seconds,
        answers that came back 200)."""

        def send(body: dict) -> bool:
            connection = self.upstream_connection()
            try:
                connection.request(
                    "POST",
                    f"{self.upstream.path}/chat/completions",
                    body=json.dumps(body),
                    headers={"Content-Type": "application/json"},
                )
                response = connection.getresponse()
                response.read()
                return response.status == 200
            finally:
                connection.close()

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            answered = sum(pool.map(send, bodies))
        return time.monotonic() - started, answered


def served_model(base_url: str) -> str:
    """The first model the server lists at ``/v1/models``."""
    parts = urllib.parse.urlsplit(base_url.rstrip("/"))
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=10)
    try:
        connection.request("GET", f"{parts.path}/models")
        return json.loads(connection.getresponse().read())["data"][0]["id"]
    finally:
        connection.close()
