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
  streamed them in), and the ideal N × tokens/s;
- the cold start: the time to first token of the first reply after the product started
  (fresh web and worker processes, as soon as ``/healthz`` answers 200) against the
  second, warm one, for the same student and a prompt of the same size
  (``first_reply_over_second``; the goal: at most 1.2).

The product's processes use production's database pool (``DB_POOL``; ``--no-db-pool``
for a connection per request). ``--rounds R`` has the class post R times, one round after
another, for more samples.

With ``--llm-url URL`` the product talks to a real OpenAI-compatible server instead (a
llama.cpp server on a CPU, vLLM on a GPU; ``docs/llm.md``), through a recording
pass-through (``bench/llm_proxy.py``) that times the server's own first token for exactly
the request the product built, in the same run. It then reports the product's time to
first token over the server's own for the same prompt (the goal: at most 1.05x and 50 ms
added at p50). Each student asks a question of their own, so no answer is served from the
server's cache of another's prompt.

    .venv/bin/python -m bench.tutor --students 4 --llm-url http://127.0.0.1:8080/v1

It runs the product with ``bench/stack.py``, on a database and a Redis database of its own.
The numbers depend on the machine: say which.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field

from bench.llm_proxy import RecordingProxy, served_model
from bench.stack import (
    ROOT,
    Http,
    StreamResult,
    bench_database,
    follow_stream,
    percentile,
    product_stack,
    session_cookie,
)


@dataclass
class StudentResult:
    posted_at: float = 0.0
    stream: StreamResult = field(default_factory=StreamResult)
    error: str = ""


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
    parser.add_argument(
        "--llm-url", default="", help="a real OpenAI-compatible server's base URL (…/v1)"
    )
    parser.add_argument("--llm-model", default="", help="its model (default: the first listed)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="the class posts this many times, one round after another (more samples)",
    )
    parser.add_argument(
        "--no-db-pool",
        action="store_true",
        help="a database connection per request and task, not production's pool (DB_POOL=0)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON only")
    args = parser.parse_args()
    n = args.students

    old_config, redis_url = bench_database("bench_tutoring", redis_db=12)
    from django.db import connections
    from django.test.utils import teardown_databases

    from learners.models import Course, Membership, User
    from material.services import material_import_path, material_ingest
    from tutor.conversations import conversation_start

    try:
        course = Course.objects.create(title="Benchmark course")
        for material in material_import_path(
            course=course, path=ROOT / "material" / "demo_material", enqueue=False
        ):
            material_ingest(material_id=material.pk)
        sessions = []
        for i in range(n + 1):  # one more, to warm up
            user = User.objects.create_user(username=f"bench{i}")
            Membership.objects.create(user=user, course=course, role="student")
            conversation = conversation_start(course=course, learner=user)
            sessions.append((conversation.pk, session_cookie(user)))
        llm_args = [
            "--ttft",
            str(args.ttft),
            "--tokens-per-second",
            str(args.tokens_per_second),
            "--reply-words",
            str(args.reply_words),
        ]
        # The product's processes run with production's database pool unless told not to
        # (this process keeps the test settings' own connection).
        os.environ["DB_POOL"] = "0" if args.no_db_pool else "1"
        with contextlib.ExitStack() as running:
            proxy = None
            if args.llm_url:
                proxy = running.enter_context(RecordingProxy(args.llm_url))
            stack = running.enter_context(
                product_stack(
                    redis_url=redis_url,
                    llm_args=llm_args,
                    llm_concurrency=n,
                    web_workers=args.web_workers,
                    llm_url=proxy.base_url if proxy else "",
                    llm_model=args.llm_model or (served_model(args.llm_url) if proxy else ""),
                )
            )
            summary = _run(args, stack, course, sessions, proxy)
    finally:
        connections.close_all()
        teardown_databases(old_config, verbosity=0)
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key:38} {value}")


def _question(index: int) -> str:
    return f"How do plants turn light into sugar? (student {index})"


def _run(args, stack, course, sessions, proxy: RecordingProxy | None) -> dict:
    from django.conf import settings
    from django.db import connections
    from django.urls import reverse

    from tutor.models import Message

    n = args.students
    post_path = reverse("conversations:post", args=[course.pk])

    def run_student(
        index: int, result: StudentResult, start_at: float | None = None, asked: int = -1
    ) -> None:
        conversation_id, session = sessions[index]
        browser = Http(stack.web_port, session, cookie_name=settings.SESSION_COOKIE_NAME)
        try:
            # The conversation's page, and its CSRF cookie.
            browser.get(reverse("conversations:detail", args=[course.pk, conversation_id]))
            if start_at is not None:
                time.sleep(max(0.0, start_at - time.time()))
            result.posted_at = time.time()
            status, partial = browser.post(
                post_path,
                {
                    "text": _question(index if asked < 0 else asked),
                    "conversation": str(conversation_id),
                },
                htmx=True,
            )
            found = re.search(r'data-stream-url="([^"]+)"', partial)
            if status != 200 or found is None:
                result.error = f"the post answered HTTP {status} without a reply to follow"
                return
            # As the page does: follow the new reply's stream.
            # A real CPU server may take minutes to answer a class at once.
            result.stream = follow_stream(
                browser, html.unescape(found.group(1)), deadline_s=900 if proxy else 180
            )
        except Exception as exc:  # noqa: BLE001 - a benchmark reports, it does not stop
            result.error = f"{type(exc).__name__}: {exc}"
        finally:
            connections.close_all()

    # The first reply after the product started (fresh web and worker processes, /healthz
    # answering 200): what warming up at process start did not cover shows here. Then
    # the same student once more, warm, to compare with.
    first, warm = StudentResult(), StudentResult()
    run_student(n, first, asked=10_000)
    Message.objects.all().delete()  # the same prompt's size again: no history
    run_student(n, warm, asked=10_001)
    for name, result in (("first", first), ("second", warm)):
        if result.stream.status != "done":
            raise RuntimeError(f"the {name} reply failed ({result.error or result.stream.error})")
    cold_start = {
        "first_reply_ttft_s": round(first.stream.first_token_at - first.posted_at, 3),
        "second_reply_ttft_s": round(warm.stream.first_token_at - warm.posted_at, 3),
    }
    Message.objects.all().delete()
    if proxy is not None:
        proxy.exchanges.clear()

    results: list[StudentResult] = []
    cpu_before = stack.cpu_seconds()
    started = time.time()
    for _round in range(args.rounds):
        batch = [StudentResult() for _ in range(n)]
        results.extend(batch)
        # Every student's page is loaded before the first post (the threads need time to
        # start), then the posts go at their planned moments.
        first_post = time.time() + 2.0 + n * 0.02
        spacing = args.arrival_seconds / max(n - 1, 1)
        threads = [
            threading.Thread(
                target=run_student,
                args=[i, batch[i], first_post + i * spacing, _round * n + i],
            )
            for i in range(n)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
    wall = time.time() - started
    # Where the machine's CPU went while the students chatted (the benchmark's own client
    # threads are the rest).
    cpu_used = {name: round(t - cpu_before[name], 2) for name, t in stack.cpu_seconds().items()}

    if proxy is not None:
        return {**_real_server_summary(args, results, proxy, wall, cpu_used), **cold_start}
    llm_log = stack.stop_llm_server()
    peak = re.search(r"peak_in_flight=(\d+)", llm_log)
    requests = re.search(r"chat_requests=(\d+)", llm_log)

    done = [r for r in results if r.stream.first_token_at is not None and r.stream.status == "done"]
    ttfts = [r.stream.first_token_at - r.posted_at for r in done]
    overheads = [t - args.ttft for t in ttfts]
    delivered = sum(r.stream.tokens for r in results)
    delivery_window = max(
        max((r.stream.ended_at or 0.0 for r in done), default=0.0)
        - min((r.stream.first_token_at for r in done), default=0.0),
        1e-9,
    )
    rows = list(
        Message.objects.filter(role=Message.Role.ASSISTANT).values_list(
            "completion_tokens", "text", "claimed_at", "ttft_seconds", "finished"
        )
    )
    # Where the time to first token goes, from what each reply recorded.
    phases = list(
        Message.objects.filter(role=Message.Role.ASSISTANT, status="done").values_list(
            "created", "claimed_at", "finished", "usage"
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

    def p(values: list[float], q: float) -> float | None:
        return round(percentile(values, q), 3) if values else None

    return {
        "students": n,
        "cpu_cores": os.cpu_count(),
        "arrival_seconds": args.arrival_seconds,
        "web_workers": args.web_workers,
        "server_ttft_s": args.ttft,
        "server_tokens_per_second_per_stream": args.tokens_per_second,
        "reply_tokens": args.reply_words,
        "replies_done": len(done),
        "failures": [
            r.error or r.stream.error or r.stream.status for r in results if r not in done
        ],
        "ttft_seen_p50_s": p(ttfts, 50),
        "ttft_seen_p95_s": p(ttfts, 95),
        "ttft_overhead_p50_s": p(overheads, 50),
        "ttft_overhead_p95_s": p(overheads, 95),
        **cold_start,
        "first_reply_over_second": round(
            cold_start["first_reply_ttft_s"] / cold_start["second_reply_ttft_s"], 2
        ),
        "post_to_claim_p50_s": p(to_claim, 50),
        "claim_to_llm_request_p50_s": p(to_request, 50),
        "llm_ttft_at_worker_p50_s": p(worker_ttft, 50),
        "llm_peak_in_flight": int(peak.group(1)) if peak else None,
        "llm_chat_requests_incl_warm_up": int(requests.group(1)) if requests else None,
        "tokens_produced": produced,
        "tokens_delivered": delivered,
        "token_events_delivered": sum(r.stream.events for r in results),
        "produced_tokens_per_second": round(produced / production_window, 1),
        "delivered_tokens_per_second": round(delivered / delivery_window, 1),
        "ideal_tokens_per_second": round(n * args.tokens_per_second, 1),
        "production_window_s": round(production_window, 2),
        "delivery_window_s": round(delivery_window, 2),
        "wall_s": round(wall, 2),
        "cpu_seconds_web": cpu_used["web"],
        "cpu_seconds_worker": cpu_used["worker"],
        "cpu_seconds_llm_server": cpu_used["llm"],
        "logs": str(stack.workdir),
    }


def _real_server_summary(args, results, proxy: RecordingProxy, wall: float, cpu_used) -> dict:
    """The product's time to first token against the server's own for the same request."""
    by_student = {}
    for exchange in proxy.exchanges:
        for index in range(len(results)):
            if _question(index) in exchange.last_user_text():
                by_student.setdefault(index, exchange)
    pairs, before, after = [], [], []
    for index, result in enumerate(results):
        exchange = by_student.get(index)
        if result.stream.first_token_at is None or exchange is None:
            continue
        if exchange.server_ttft is None:
            continue
        pairs.append((result.stream.first_token_at - result.posted_at, exchange.server_ttft))
        # Where the added time goes: before the request reached the server (the post, the
        # queue, the claim, retrieval, the prompt and its token count), and after its
        # first token (the worker, the Redis stream, the event stream to the page).
        before.append(exchange.received_at - result.posted_at)
        after.append(result.stream.first_token_at - exchange.first_content_at)
    product = [p for p, _s in pairs]
    server = [s for _p, s in pairs]
    ratios = [p / s for p, s in pairs if s > 0]
    added = [p - s for p, s in pairs]

    def p(values: list[float], q: float) -> float | None:
        return round(percentile(values, q), 3) if values else None

    return {
        "students": len(results),
        "cpu_cores": os.cpu_count(),
        "llm_url": args.llm_url,
        "llm_model": args.llm_model or served_model(args.llm_url),
        "replies_done": sum(1 for r in results if r.stream.status == "done"),
        "failures": [
            r.error or r.stream.error or r.stream.status
            for r in results
            if r.stream.status != "done"
        ],
        "pairs_measured": len(pairs),
        "product_ttft_p50_s": p(product, 50),
        "product_ttft_p95_s": p(product, 95),
        "server_ttft_p50_s": p(server, 50),
        "server_ttft_p95_s": p(server, 95),
        "ttft_ratio_p50": p(ratios, 50),
        "ttft_ratio_p95": p(ratios, 95),
        "ttft_added_p50_ms": round(percentile(added, 50) * 1000, 1) if added else None,
        "ttft_added_p95_ms": round(percentile(added, 95) * 1000, 1) if added else None,
        "post_to_server_request_p50_ms": round(percentile(before, 50) * 1000, 1)
        if before
        else None,
        "server_first_token_to_page_p50_ms": round(percentile(after, 50) * 1000, 1)
        if after
        else None,
        "server_requests": len(proxy.exchanges),
        "wall_s": round(wall, 2),
        "cpu_seconds_web": cpu_used["web"],
        "cpu_seconds_worker": cpu_used["worker"],
    }


if __name__ == "__main__":
    main()
