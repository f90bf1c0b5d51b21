"""Profile where one tutor turn's CPU goes before the model is asked, web and worker.

    .venv/bin/python -m bench.turn_profile --turns 20

In one process, on a database of its own (the demo material ingested, so retrieval is
real), with the OpenAI-compatible test server answering at once:

- **web**: the htmx post the composer makes (``conversations:post``, Django's test
  client), then the reply's event stream (``conversations:stream``) read to its end;
- **worker**: the reply's task body (``tutor.conversation_tasks.reply_write``: claim,
  retrieval with the query embedding, the learner's profile, the prompt and its token
  count, capabilities, ledger and budget) up to the moment the request leaves for the
  model server (``ai.llm`` opens its HTTP request), and what is left after it.

Each part runs under ``cProfile`` for ``--turns`` turns after one warm-up turn; the top
entries by cumulative time are printed (``--top``), with the wall time per turn of each
part. ``--pstats DIR`` keeps the raw profiles (``python -m pstats`` or snakeviz read them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import pstats
import subprocess
import sys
import time
from pathlib import Path

from bench.llm_proxy import served_model
from bench.stack import ROOT, Http, bench_database, free_port, profile_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--pstats", default="", help="a folder to keep the raw profiles in")
    parser.add_argument(
        "--llm-url", default="", help="a real OpenAI-compatible server instead (…/v1)"
    )
    parser.add_argument(
        "--queries", action="store_true", help="list the SQL of one turn's post and worker"
    )
    args = parser.parse_args()

    old_config, redis_url = bench_database("bench_turn_profile", redis_db=13)
    from django.conf import settings
    from django.db import connections
    from django.test.utils import override_settings, teardown_databases

    from config.celery import app

    # The posts' tasks go to the benchmark's own Redis database (no worker takes them:
    # the task body runs here), never to the tests' database.
    app.conf.broker_url = redis_url

    llm_port = free_port()
    llm = None
    if not args.llm_url:
        llm = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.llm_server_main",
                "--port",
                str(llm_port),
                "--ttft",
                "0",
                "--tokens-per-second",
                "2000",
                "--reply-words",
                "20",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        if llm is not None:
            _wait_for(llm_port)
        with override_settings(
            LLM_BASE_URL=args.llm_url or f"http://127.0.0.1:{llm_port}/v1",
            LLM_MODEL=served_model(args.llm_url) if args.llm_url else "llm-test-model",
            REDIS_URL=redis_url,
            CELERY_BROKER_URL=redis_url,
            ALLOWED_HOSTS=["*"],
        ):
            _profile(args, settings)
    finally:
        if llm is not None:
            llm.terminate()
            llm.wait(timeout=10)
        connections.close_all()
        teardown_databases(old_config, verbosity=0)


def _wait_for(port: int) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            Http(port, "").get("/v1/models")
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the LLM test server did not start")


def _profile(args, settings) -> None:
    from django.test import Client
    from django.urls import reverse

    from ai import llm
    from learners.models import Course, Membership, User
    from material.services import material_import_path, material_ingest
    from tutor import conversation_tasks
    from tutor.conversations import conversation_start
    from tutor.models import Message

    course = Course.objects.create(title="Profile course")
    for material in material_import_path(
        course=course, path=ROOT / "material" / "demo_material", enqueue=False
    ):
        material_ingest(material_id=material.pk)
    user = User.objects.create_user(username="profiled")
    Membership.objects.create(user=user, course=course, role="student")
    client = Client(enforce_csrf_checks=False, HTTP_HX_REQUEST="true")
    client.force_login(user)
    post_path = reverse("conversations:post", args=[course.pk])

    web = cProfile.Profile()
    before_request = cProfile.Profile()
    after_request = cProfile.Profile()
    timings: dict[str, list[float]] = {"web post": [], "worker to request": [], "web stream": []}

    # The worker's profile switches at the moment the request to the model leaves (the
    # client's chat call, or its low-level post the stream goes through).
    create = llm._Runtime.__init__

    def switch() -> None:
        if state["profiling"]:
            state["profiling"] = False
            before_request.disable()
            timings["worker to request"].append(time.perf_counter() - state["started"])
            after_request.enable()

    def runtime_init(self, config):
        create(self, config)
        completions = self.client.chat.completions
        chat_create, post = completions.create, self.client.post

        def create_call(*a, **kw):
            switch()
            return chat_create(*a, **kw)

        def post_call(*a, **kw):
            switch()
            return post(*a, **kw)

        completions.create = create_call
        self.client.post = post_call

    state = {"profiling": False, "started": 0.0}
    llm._Runtime.__init__ = runtime_init
    llm._runtime_current = None

    def turn(index: int, profiling: bool, sql: dict | None = None) -> None:
        conversation = conversation_start(course=course, learner=user)
        data = {"text": f"How do plants turn light into sugar? ({index})"}
        data["conversation"] = str(conversation.pk)
        started = time.perf_counter()
        if profiling:
            web.enable()
        with _captured(sql, "web post"):
            response = client.post(post_path, data)
        if profiling:
            web.disable()
            timings["web post"].append(time.perf_counter() - started)
        assert response.status_code == 200, response.content[:300]
        reply = Message.objects.filter(conversation=conversation, role=Message.Role.ASSISTANT).get()
        state.update(profiling=profiling, started=time.perf_counter())
        if profiling:
            before_request.enable()
        with _captured(sql, "worker"):
            conversation_tasks.reply_write(reply.pk)  # the task's body, as the worker runs it
        if profiling:
            after_request.disable()
            before_request.disable()  # no request at all (offline, or refused)
        state["profiling"] = False
        stream_path = reverse("conversations:stream", args=[course.pk, reply.pk])
        started = time.perf_counter()
        if profiling:
            web.enable()
        streamed = client.get(stream_path)
        body = asyncio.run(_read(streamed))
        if profiling:
            web.disable()
            timings["web stream"].append(time.perf_counter() - started)
        assert b"event: end" in body, body[-300:]

    turn(-1, profiling=False)  # warm: the embedder, the SDK, the server's capabilities
    if args.queries:
        _print_queries(turn)
    for index in range(args.turns):
        turn(index, profiling=True)

    for name, values in timings.items():
        values.sort()
        print(
            f"{name:20} p50 {values[len(values) // 2] * 1000:7.1f} ms"
            f"  mean {sum(values) / len(values) * 1000:7.1f} ms  ({len(values)} turns)"
        )
    for name, slug, profile in (
        ("web (post + stream)", "web", web),
        ("worker, before the request", "worker-before-request", before_request),
        ("worker, the request and after", "worker-request-and-after", after_request),
    ):
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats("cumulative").print_stats(args.top)
        print(f"\n===== {name}, {args.turns} turns =====")
        print(profile_table(out.getvalue()))
        if args.pstats:
            folder = Path(args.pstats)
            folder.mkdir(parents=True, exist_ok=True)
            stats.dump_stats(folder / f"{slug}.pstats")


@contextlib.contextmanager
def _captured(sql: dict | None, name: str):
    """Keep the SQL run in this thread meanwhile under ``sql[name]`` (when asked)."""
    if sql is None:
        yield
        return
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        yield
    sql[name] = captured.captured_queries


def _print_queries(turn) -> None:
    sql: dict = {}
    turn(-2, profiling=False, sql=sql)
    for name, queries in sql.items():
        print(f"===== the SQL of one turn, {name}: {len(queries)} queries =====")
        for query in queries:
            print(f"  {float(query['time']) * 1000:6.1f} ms ", " ".join(query["sql"].split())[:130])


async def _read(response) -> bytes:
    return b"".join([chunk async for chunk in response.streaming_content])


if __name__ == "__main__":
    main()
