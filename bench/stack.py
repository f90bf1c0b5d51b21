"""The product running as in production, for benchmarks, on loopback only.

``product_stack()`` creates a database and uses a Redis database of its own (dropped at
the end, so a running product is not disturbed), then starts one process each: the
OpenAI-compatible test server (``bench/llm_server_main.py``) paced like a model, Celery
workers, and the web app under uvicorn. ``Http`` is a browser's cookies and CSRF header.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def cpu_seconds(process: subprocess.Popen) -> float:
    """CPU time used so far by a process we started and the processes it started."""
    import psutil

    try:
        root = psutil.Process(process.pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for member in family:
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


class Http:
    """A browser's cookies and CSRF header; a connection per request."""

    def __init__(self, port: int, session: str, *, cookie_name: str = "sessionid") -> None:
        self.port = port
        self.cookies = {cookie_name: session}

    def connection(self, timeout: float = 300) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def headers(self) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}

    def _keep_cookies(self, response: http.client.HTTPResponse) -> None:
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]

    def get(self, path: str) -> tuple[int, str]:
        connection = self.connection()
        try:
            connection.request("GET", path, headers=self.headers())
            response = connection.getresponse()
            body = response.read().decode()
            self._keep_cookies(response)
            return response.status, body
        finally:
            connection.close()

    def post(self, path: str, data: dict[str, str], *, htmx: bool = False) -> tuple[int, str]:
        """POST a form (as htmx does from the page with ``htmx``); the status and body."""
        connection = self.connection()
        try:
            headers = {
                **self.headers(),
                "Content-Type": "application/x-www-form-urlencoded",
                "X-CSRFToken": self.cookies.get("csrftoken", ""),
                "Referer": f"http://127.0.0.1:{self.port}{path}",
            }
            if htmx:
                headers["HX-Request"] = "true"
            connection.request("POST", path, body=urlencode(data), headers=headers)
            response = connection.getresponse()
            return response.status, response.read().decode()
        finally:
            connection.close()


@dataclass
class StreamResult:
    """What a browser saw of one reply's server-sent events."""

    first_token_at: float | None = None
    ended_at: float | None = None
    tokens: int = 0
    events: int = 0
    status: str = ""
    error: str = ""


def follow_stream(http: Http, path: str, *, deadline_s: float = 180) -> StreamResult:
    """Read a reply's events until its ``end`` event, as the page does."""
    result = StreamResult()
    connection = http.connection()
    try:
        connection.request("GET", path, headers=http.headers())
        response = connection.getresponse()
        if response.status != 200:
            result.error = f"stream answered HTTP {response.status}"
            return result
        event = ""
        deadline = time.time() + deadline_s
        while True:
            if time.time() > deadline:
                result.error = f"no end event within {deadline_s} s"
                return result
            line = response.readline()
            if not line:
                result.error = "stream closed before its end"
                return result
            line = line.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                now = time.time()
                if event == "token":
                    result.first_token_at = result.first_token_at or now
                    # An event may carry several tokens; the test server's are words.
                    result.tokens += len(json.loads(line[6:])["text"].split())
                    result.events += 1
                elif event == "end":
                    result.ended_at = now
                    result.status = json.loads(line[6:])["status"]
                    return result
    finally:
        connection.close()


@dataclass
class Stack:
    web_port: int
    llm_port: int
    workdir: Path
    redis_url: str
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def cpu_seconds(self) -> dict[str, float]:
        return {name: cpu_seconds(process) for name, process in self.processes.items()}

    def stop_llm_server(self) -> str:
        """Stop the LLM server; its log (with ``peak_in_flight=`` and ``chat_requests=``)."""
        self.processes["llm"].send_signal(signal.SIGINT)
        self.processes["llm"].wait(timeout=30)
        return (self.workdir / "llm.log").read_text()


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _celery_worker(name: str, queues: str, pool: str, concurrency: int) -> list[str]:
    return [
        str(VENV_BIN / "celery"),
        "-A",
        "config",
        "worker",
        "-Q",
        queues,
        "-P",
        pool,
        "-c",
        str(concurrency),
        "-n",
        f"{name}@%h",
        "--without-gossip",
        "--without-mingle",
        "-l",
        "info",
    ]


def bench_database(name: str, redis_db: int):
    """Django set up on the test settings with a database of the benchmark's own, and
    its Redis URL; returns (old_config, redis_url) for ``teardown_databases``."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
    import django

    django.setup()
    from config.embedded import embedded_start

    embedded_start()
    import redis
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_databases

    redis_url = settings.REDIS_URL.rsplit("/", 1)[0] + f"/{redis_db}"
    connection.settings_dict["TEST"].update(NAME=name)
    connection.settings_dict["CONN_MAX_AGE"] = 0
    redis.Redis.from_url(redis_url).flushdb()  # the benchmark's own database: stale tasks go
    old_config = setup_databases(verbosity=0, interactive=False, keepdb=False)
    return old_config, redis_url


@contextmanager
def product_stack(
    *,
    redis_url: str,
    llm_args: list[str],
    llm_concurrency: int,
    web_workers: int,
    cpu_worker: bool = False,
    extra_settings: str = "",
    llm_url: str = "",
    llm_model: str = "llm-test-model",
) -> Iterator[Stack]:
    """Start the LLM test server, the workers (``llm`` queue with ``llm_concurrency``
    threads; the ``cpu`` queue too with ``cpu_worker``) and uvicorn with ``web_workers``
    processes against the benchmark's database; wait for /healthz; stop all at the end.
    With ``llm_url`` the product talks to that server (``llm_model``) and no test server
    is started."""
    from django.db import connection

    stack = Stack(
        web_port=free_port(),
        llm_port=free_port(),
        workdir=Path(tempfile.mkdtemp(prefix="bench-")),
        redis_url=redis_url,
    )
    (stack.workdir / "bench_settings.py").write_text(
        "from config.settings_test import *  # noqa\n"
        f"DATABASES['default']['NAME'] = {connection.settings_dict['NAME']!r}\n"
        f"REDIS_URL = CELERY_BROKER_URL = CELERY_RESULT_BACKEND = {redis_url!r}\n"
        "CACHES = {'default': {'BACKEND': 'django.core.cache.backends.redis.RedisCache',"
        f" 'LOCATION': {redis_url!r}}}}}\n"
        f"LLM_BASE_URL = {llm_url or f'http://127.0.0.1:{stack.llm_port}/v1'!r}\n"
        f"LLM_MODEL = {llm_model!r}\n"
        # A real CPU server answers slowly under a class (docs/llm.md, timeouts).
        f"LLM_TIMEOUT_SECONDS = {300 if llm_url else 60}\n"
        f"LLM_MAX_CONCURRENCY = {max(64, llm_concurrency)}\n"
        "ALLOWED_HOSTS = ['*']\n"
        # As in production: each process borrows connections from a pool of its own
        # (config/settings.py, DB_POOL), which the test settings otherwise leave out.
        # The embedded Postgres allows 100 connections.
        "DATABASES['default']['CONN_MAX_AGE'] = 0\n"
        # Warnings and errors (a 500's traceback) in the process's log, nothing below.
        "LOGGING = {'version': 1, 'disable_existing_loggers': False,"
        " 'handlers': {'log': {'class': 'logging.StreamHandler'}},"
        " 'root': {'handlers': ['log'], 'level': 'WARNING'}}\n" + extra_settings
    )
    env = {
        **os.environ,
        "DB_POOL": os.environ.get("DB_POOL", "1"),
        "DJANGO_SETTINGS_MODULE": "bench_settings",
        "PYTHONPATH": f"{stack.workdir}{os.pathsep}{ROOT}",
    }
    processes = stack.processes
    try:
        if not llm_url:
            processes["llm"] = _start(
                [sys.executable, "-m", "bench.llm_server_main", "--port", str(stack.llm_port)]
                + llm_args,
                env,
                stack.workdir / "llm.log",
            )
        processes["worker"] = _start(
            _celery_worker("bench-llm", "llm", "threads", llm_concurrency),
            env,
            stack.workdir / "worker.log",
        )
        if cpu_worker:
            processes["cpu-worker"] = _start(
                _celery_worker("bench-cpu", "cpu", "prefork", os.cpu_count() or 1),
                env,
                stack.workdir / "cpu-worker.log",
            )
        processes["web"] = _start(
            [
                str(VENV_BIN / "uvicorn"),
                "config.asgi:application",
                "--port",
                str(stack.web_port),
                "--workers",
                str(web_workers),
                "--log-level",
                "warning",
                "--no-access-log",
                "--timeout-worker-healthcheck",  # as docker/entrypoint.sh, which says why
                "30",
            ],
            env,
            stack.workdir / "web.log",
        )
        deadline = time.time() + 120
        while True:
            try:
                status, _body = Http(stack.web_port, "").get("/healthz")
                if status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"the product did not come up; see the logs in {stack.workdir}")
            time.sleep(0.5)
        yield stack
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def session_cookie(user) -> str:
    """A logged-in session for ``user``, as the cookie's value."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def profile_table(text: str) -> str:
    """The stats table without pstats' preamble, paths shortened to the project's."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join(
        line.replace(str(ROOT) + "/", "").replace(sys.prefix + "/lib/python3.11/", "")
        for line in lines[start:]
    )


async def asgi_get(
    application, path: str, cookies: dict[str, str], *, host: str = "127.0.0.1"
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """One GET through an ASGI application as uvicorn hands it over, in this process:
    the status, the headers (names lower-cased, in order) and the body."""
    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [
            (b"host", host.encode()),
            (b"cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": (host, 80),
    }
    sent: list[dict] = []
    requested = False

    async def receive():
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # no disconnect: Django cancels this when it is done

    async def send(message):
        sent.append(message)

    await application(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], [(k.lower(), v) for k, v in start["headers"]], body
