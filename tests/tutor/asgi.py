"""The product's ASGI app on uvicorn in a background thread, against the test database.

pytest-django's ``live_server`` is WSGI, which buffers a streaming response whole; the
tutor's server-sent events need the real ASGI server to arrive one by one. Tests that use
it need ``django_db(transaction=True)`` so the server's connections see their rows.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn


class AsgiServer:
    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(256)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self) -> AsgiServer:
        from config.asgi import application

        config = uvicorn.Config(
            application, lifespan="off", access_log=False, log_level="warning", loop="asyncio"
        )
        self._server = uvicorn.Server(config)
        sockets = [self._sock]
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve(sockets=sockets)),
            name="asgi-test-server",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("The ASGI test server did not start.")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._server.force_exit = True  # open event streams would hold a graceful exit
            self._thread.join(timeout=10)
        self._sock.close()


@pytest.fixture(scope="session")
def asgi_server_session(django_db_setup) -> Iterator[AsgiServer]:
    from django.db import connection

    # Connections opened by the server's (and the worker's) threads must close when their
    # request (task) ends, or the test database cannot be dropped at the end of the run.
    connection.settings_dict["CONN_MAX_AGE"] = 0
    server = AsgiServer().start()
    yield server
    server.stop()


@pytest.fixture
def asgi_server(asgi_server_session: AsgiServer, transactional_db) -> AsgiServer:
    return asgi_server_session
