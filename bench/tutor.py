"""Benchmark the tutor's streaming path with many students at once.

    .venv/bin/python -m bench.tutor --students 50

N simulated students, each in a conversation of their own, send a message from the page
(the htmx post the composer makes, answered by the turn's partial) and read their reply's
server-sent events — all at the same moment by default (the worst case), or spread evenly
over ``--arrival-seconds``. The product runs as it does in production: the web app under
uvicorn (ASGI, ``--web-workers`` processes, like ``WEB_CONCURRENCY``), a Celery worker on
the ``llm`` queue (thread pool, one thread per student), and the OpenAI-compatible test
server (``bench/llm_server_main.py``) paced like a model of the given speed. The course
holds the demo material, so every reply runs the real retrieval (query embedding
included). It reports:

- the time to first token a student sees (post → first token event) and its overhead over
  the server's own scripted TTFT, p50 and p95;
- the peak number of chat requests in flight at the LLM server, against N (the server
  batches concurrent requests, so it should see all N at once);
- delivered tokens/s (token events the students received, over the window they arrived
  in) against produced tokens/s (tokens the worker received, over the window the server
  streamed them in), and the ideal N × tokens/s.

It creates a database and uses a Redis database of its own and drops them at the end, so a
running product is not disturbed. The numbers depend on the machine: say which.
"""

from __future__ import annotations

import argparse
import html
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

STREAM_DEADLINE_S = 180
ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


@dataclass
class StudentResult:
    posted_at: float = 0.0
    first_token_at: float | None = None
    ended_at: float | None = None
    tokens: int = 0
    events: int = 0
    status: str = ""
    error: str = ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


class Http:
    """A browser's cookies and CSRF header over one keep-alive connection."""

    def __init__(self, port: int, session: str, *, cookie_name: str = "sessionid") -> None:
        self.port = port
        self.cookies = {cookie_name: session}

    def _connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)

    def _headers(self) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}

    def _keep_cookies(self, response: http.client.HTTPResponse) -> None:
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]

    def get(self, path: str) -> tuple[int, str]:
        connection = self._connection()
        try:
            connection.request("GET", path, headers=self._headers())
            response = connection.getresponse()
            body = response.read().decode()
            self._keep_cookies(response)
            return response.status, body
        finally:
            connection.close()

    def htmx_post(self, path: str, data: dict[str, str]) -> tuple[int, str]:
        """POST a form as htmx does from the page, and return the partial it answers."""
        connection = self._connection()
        try:
            headers = {
                **self._headers(),
                "Content-Type": "application/x-www-form-urlencoded",
                "X-CSRFToken": self.cookies.get("csrftoken", ""),
                "Referer": f"http://127.0.0.1:{self.port}{path}",
                "HX-Request": "true",
            }
            connection.request("POST", path, body=urlencode(data), headers=headers)
            response = connection.getresponse()
            return response.status, response.read().decode()
        finally:
            connection.close()

    def events(self, path: str, result: StudentResult) -> None:
        connection = self._connection()
        try:
            connection.request("GET", path, headers=self._headers())
            response = connection.getresponse()
            if response.status != 200:
                result.error = f"stream answered HTTP {response.status}"
                return
            event = ""
            deadline = time.time() + STREAM_DEADLINE_S
            while True:
                if time.time() > deadline:
                    result.error = f"no end event within {STREAM_DEADLINE_S} s"
                    return
                line = response.readline()
                if not line:
                    result.error = result.error or "stream closed before its end"
                    return
                line = line.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    now = time.time()
                    if event == "token":
                        result.first_token_at = result.first_token_at or now
                        # An event may carry several tokens; the server's are words.
                        result.tokens += len(json.loads(line[6:])["text"].split())
                        result.events += 1
                    elif event == "end":
                        result.ended_at = now
                        result.status = json.loads(line[6:])["status"]
                        return
        finally:
            connection.close()


def _cpu_seconds(process: subprocess.Popen) -> float:
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


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=50)
    parser.add_argument("--ttft", type=float, default=0.3, help="server seconds to first token")
    parser.add_argument("--tokens-per-second", type=float, default=30.0, help="per stream")
    parser.add_argument("--reply-words", type=int, default=150)
    parser.add_argument(
        "--arrival-seconds",
        type=float,
        default=0.0,
        help="spread the students' posts evenly over this many seconds (0: all at once)",
    )
    parser.add_argument(
        "--web-workers", type=int, default=2, help="uvicorn processes (WEB_CONCURRENCY)"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON only")
    args = parser.parse_args()
    n = args.students

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection, connections

    redis_url = settings.REDIS_URL.rsplit("/", 1)[0] + "/12"
    connection.settings_dict["TEST"].update(NAME="bench_tutoring")
    connection.settings_dict["CONN_MAX_AGE"] = 0

    import redis
    from django.test import Client
    from django.test.utils import setup_databases, teardown_databases
    from django.urls import reverse

    from learners.models import Course, Membership, User
    from tutor.conversations import conversation_start
    from tutor.models import Message
    from tutor.services import material_import_path, material_ingest

    redis.Redis.from_url(redis_url).flushdb()  # the benchmark's own database: stale tasks go
    old_config = setup_databases(verbosity=0, interactive=False, keepdb=False)
    workdir = Path(tempfile.mkdtemp(prefix="bench-tutor-"))
    processes: dict[str, subprocess.Popen] = {}
    try:
        course = Course.objects.create(title="Benchmark course")
        for material in material_import_path(
            course=course, path=ROOT / "tutor" / "demo_material", enqueue=False
        ):
            material_ingest(material_id=material.pk)
        sessions = []
        for i in range(n + 1):  # one more, to warm up
            user = User.objects.create_user(username=f"bench{i}")
            Membership.objects.create(user=user, course=course, role="student")
            client = Client()
            client.force_login(user)
            conversation = conversation_start(course=course, learner=user)
            sessions.append((conversation.pk, client.cookies[settings.SESSION_COOKIE_NAME].value))

        llm_port, web_port = _free_port(), _free_port()
        (workdir / "bench_settings.py").write_text(
            "from config.settings_test import *  # noqa\n"
            f"DATABASES['default']['NAME'] = {connection.settings_dict['NAME']!r}\n"
            f"REDIS_URL = CELERY_BROKER_URL = CELERY_RESULT_BACKEND = {redis_url!r}\n"
            "CACHES = {'default': {'BACKEND': 'django.core.cache.backends.redis.RedisCache',"
            f" 'LOCATION': {redis_url!r}}}}}\n"
            f"LLM_BASE_URL = 'http://127.0.0.1:{llm_port}/v1'\n"
            "LLM_MODEL = 'llm-test-model'\n"
            f"LLM_MAX_CONCURRENCY = {max(64, n)}\n"
            "ALLOWED_HOSTS = ['*']\n"
            # Django's advice under ASGI; the embedded Postgres allows 100 connections.
            "DATABASES['default']['CONN_MAX_AGE'] = 0\n"
            "LOGGING = {'version': 1, 'root': {'level': 'WARNING'}}\n"
        )
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench_settings",
            "PYTHONPATH": f"{workdir}{os.pathsep}{ROOT}",
        }
        processes["llm"] = _start(
            [
                sys.executable,
                "-m",
                "bench.llm_server_main",
                "--port",
                str(llm_port),
                "--ttft",
                str(args.ttft),
                "--tokens-per-second",
                str(args.tokens_per_second),
                "--reply-words",
                str(args.reply_words),
            ],
            env,
            workdir / "llm.log",
        )
        processes["worker"] = _start(
            [
                str(VENV_BIN / "celery"),
                "-A",
                "config",
                "worker",
                "-Q",
                "llm",
                "-P",
                "threads",
                "-c",
                str(n),
                "-n",
                "bench-llm@%h",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "info",
            ],
            env,
            workdir / "worker.log",
        )
        processes["web"] = _start(
            [
                str(VENV_BIN / "uvicorn"),
                "config.asgi:application",
                "--port",
                str(web_port),
                "--workers",
                str(args.web_workers),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env,
            workdir / "web.log",
        )

        deadline = time.time() + 120
        while True:
            try:
                status, _body = Http(web_port, "").get("/healthz")
                if status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"the product did not come up; see the logs in {workdir}")
            time.sleep(0.5)

        post_path = reverse("conversations:post", args=[course.pk])

        def run_student(index: int, result: StudentResult, start_at: float | None = None) -> None:
            conversation_id, session = sessions[index]
            browser = Http(web_port, session, cookie_name=settings.SESSION_COOKIE_NAME)
            try:
                # The conversation's page, and its CSRF cookie.
                browser.get(reverse("conversations:detail", args=[course.pk, conversation_id]))
                if start_at is not None:
                    time.sleep(max(0.0, start_at - time.time()))
                result.posted_at = time.time()
                status, partial = browser.htmx_post(
                    post_path,
                    {
                        "text": "How do plants turn light into sugar?",
                        "conversation": str(conversation_id),
                    },
                )
                found = re.search(r'data-stream-url="([^"]+)"', partial)
                if status != 200 or found is None:
                    result.error = f"the post answered HTTP {status} without a reply to follow"
                    return
                # As the page does: follow the new reply's stream.
                browser.events(html.unescape(found.group(1)), result)
            except Exception as exc:  # noqa: BLE001 - a benchmark reports, it does not stop
                result.error = f"{type(exc).__name__}: {exc}"
            finally:
                connections.close_all()

        # One reply first: the worker loads the SDK and the embedder on first use.
        warm = StudentResult()
        run_student(n, warm)
        if warm.status != "done":
            raise RuntimeError(f"the warm-up reply failed ({warm.error or warm.status})")
        Message.objects.all().delete()

        results = [StudentResult() for _ in range(n)]
        # Every student's page is loaded before the first post (the threads need time to
        # start), then the posts go at their planned moments.
        first_post = time.time() + 2.0 + n * 0.02
        spacing = args.arrival_seconds / max(n - 1, 1)
        threads = [
            threading.Thread(target=run_student, args=[i, results[i], first_post + i * spacing])
            for i in range(n)
        ]
        cpu_before = {name: _cpu_seconds(process) for name, process in processes.items()}
        started = time.time()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        wall = time.time() - started
        # Where the machine's CPU went while the students chatted (the benchmark's own
        # client threads are the rest).
        cpu_used = {
            name: round(_cpu_seconds(process) - cpu_before[name], 2)
            for name, process in processes.items()
        }

        processes["llm"].send_signal(signal.SIGINT)
        processes["llm"].wait(timeout=30)
        llm_log = (workdir / "llm.log").read_text()
        peak = re.search(r"peak_in_flight=(\d+)", llm_log)
        requests = re.search(r"chat_requests=(\d+)", llm_log)

        done = [r for r in results if r.first_token_at is not None and r.status == "done"]
        ttfts = [r.first_token_at - r.posted_at for r in done]
        overheads = [t - args.ttft for t in ttfts]
        delivered = sum(r.tokens for r in results)
        delivery_window = max(
            max((r.ended_at or 0.0 for r in done), default=0.0)
            - min((r.first_token_at for r in done), default=0.0),
            1e-9,
        )
        rows = list(
            Message.objects.filter(role=Message.Role.ASSISTANT).values_list(
                "completion_tokens", "text", "started", "ttft_seconds", "finished"
            )
        )
        # Where the time to first token goes, from what each reply recorded.
        phases = list(
            Message.objects.filter(role=Message.Role.ASSISTANT, status="done").values_list(
                "created", "started", "finished", "usage"
            )
        )
        to_claim = [(s - c).total_seconds() for c, s, _f, _u in phases]
        to_request = [(f.timestamp() - u["total_s"]) - s.timestamp() for _c, s, f, u in phases]
        worker_ttft = [u["time_to_first_token_s"] for *_rest, u in phases]
        produced = sum(tokens or len(text.split()) for tokens, text, *_rest in rows)
        first_tokens = [s.timestamp() + t for _c, _x, s, t, _f in rows if s and t is not None]
        production_window = max(
            max((f.timestamp() for *_rest, f in rows if f), default=0.0)
            - min(first_tokens, default=0.0),
            1e-9,
        )
        summary = {
            "students": n,
            "cpu_cores": os.cpu_count(),
            "arrival_seconds": args.arrival_seconds,
            "web_workers": args.web_workers,
            "server_ttft_s": args.ttft,
            "server_tokens_per_second_per_stream": args.tokens_per_second,
            "reply_tokens": args.reply_words,
            "replies_done": len(done),
            "failures": [r.error or r.status for r in results if r not in done],
            "ttft_seen_p50_s": round(_percentile(ttfts, 50), 3) if ttfts else None,
            "ttft_seen_p95_s": round(_percentile(ttfts, 95), 3) if ttfts else None,
            "ttft_overhead_p50_s": round(_percentile(overheads, 50), 3) if ttfts else None,
            "ttft_overhead_p95_s": round(_percentile(overheads, 95), 3) if ttfts else None,
            "post_to_claim_p50_s": round(_percentile(to_claim, 50), 3) if to_claim else None,
            "claim_to_llm_request_p50_s": (
                round(_percentile(to_request, 50), 3) if to_request else None
            ),
            "llm_ttft_at_worker_p50_s": (
                round(_percentile(worker_ttft, 50), 3) if worker_ttft else None
            ),
            "llm_peak_in_flight": int(peak.group(1)) if peak else None,
            "llm_chat_requests_incl_warm_up": int(requests.group(1)) if requests else None,
            "tokens_produced": produced,
            "tokens_delivered": delivered,
            "token_events_delivered": sum(r.events for r in results),
            "produced_tokens_per_second": round(produced / production_window, 1),
            "delivered_tokens_per_second": round(delivered / delivery_window, 1),
            "ideal_tokens_per_second": round(n * args.tokens_per_second, 1),
            "production_window_s": round(production_window, 2),
            "delivery_window_s": round(delivery_window, 2),
            "wall_s": round(wall, 2),
            "cpu_seconds_web": cpu_used["web"],
            "cpu_seconds_worker": cpu_used["worker"],
            "cpu_seconds_llm_server": cpu_used["llm"],
            "logs": str(workdir),
        }
        if args.json:
            print(json.dumps(summary))
        else:
            for key, value in summary.items():
                print(f"{key:38} {value}")
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        connections.close_all()
        teardown_databases(old_config, verbosity=0)


if __name__ == "__main__":
    main()
