"""Benchmark the essay-grading pipeline: many essays through the learned scorer, then
through the language model (the OpenAI-compatible test server paced like a model).

    .venv/bin/python -m bench.grading --essays 500 --threads 32 --ttft 0.5 --tokens-per-second 40

Everything runs as in production except that it is one process: essays are submitted
through ``grading.submissions.submission_submit`` (which enqueues on commit), a real Celery
worker (thread pool, queues ``llm`` and ``cpu``, ``--threads`` threads) on the real Redis
broker grades them, and the LLM test server answers each request after ``--ttft`` seconds
plus one token per 1/``--tokens-per-second`` seconds. It reports per mode:

- wall time from the first submission to the last finished proposal, and essays/s;
- for the learned scorer: a refit on every essay once all are confirmed, with the essays'
  vectors stored against making them again (the ratio is the share of time left);
- for the language model: the peak number of requests in flight at the server against the
  configured concurrency (``min(worker threads, LLM_MAX_CONCURRENCY)``), which shows
  whether the pipeline keeps the server's batch full.

With ``--llm-url URL`` the language-model part runs against a real OpenAI-compatible
server instead of the test server (the learned scorer part is skipped), through a recording
pass-through (``bench/llm_proxy.py``); the same requests are then sent straight to the
server, as many at once, to measure the server's own completions/s in the same run, and
the product's essays/s is reported against it.

    .venv/bin/python -m bench.grading --essays 8 --threads 4 --llm-url http://127.0.0.1:8080/v1

It creates a database of its own (``bench_grading``) and uses Redis database 10, flushed
first, and drops the database at the end. The numbers depend on the machine: say which.
"""

from __future__ import annotations

import argparse
import os
import time

# Words of the synthetic essays (a tuple literal keeps ruff and the reader happy).
WORDS = (
    "plants", "capture", "light", "energy", "in", "chlorophyll", "and", "store", "it", "as",
    "sugar", "while", "releasing", "oxygen", "carbon", "dioxide", "enters", "through",
    "stomata", "and", "water", "rises",
)  # fmt: skip


def _essay(index: int, quality: int) -> str:
    sentences = []
    for s in range(3 + quality * 3):
        start = (index * 7 + s * 5) % len(WORDS)
        sentence = " ".join(WORDS[(start + k) % len(WORDS)] for k in range(8 + quality))
        sentences.append(sentence.capitalize() + ".")
    return " ".join(sentences)


def _wait_all(proposal_filter, total: int, *, timeout: float) -> float:
    from grading.models import Proposal

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        finished = Proposal.objects.filter(
            status__in=[Proposal.Status.DONE, Proposal.Status.FAILED], **proposal_filter
        ).count()
        if finished >= total:
            return time.monotonic()
        time.sleep(0.2)
    raise SystemExit(f"timed out: {finished} of {total} proposals finished")


def _refit_seconds(assignment, learner) -> float:
    """Set ``learner``'s confirmed grades to 0 and time the scorer's refit."""
    from grading import training
    from grading.models import CriterionScore, StoredScorer

    before = StoredScorer.objects.get(assignment=assignment).trained_at
    CriterionScore.objects.filter(
        submission__assignment=assignment, submission__learner=learner
    ).update(score=0)
    started = time.monotonic()
    stored = training.scorer_train(assignment_id=assignment.pk)
    seconds = time.monotonic() - started
    if stored.trained_at == before:
        raise SystemExit("the grades changed but the scorer was not refitted")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--essays", type=int, default=500)
    parser.add_argument("--threads", type=int, default=32, help="worker threads")
    parser.add_argument("--llm-concurrency", type=int, default=64, help="LLM_MAX_CONCURRENCY")
    parser.add_argument("--ttft", type=float, default=0.5)
    parser.add_argument("--tokens-per-second", type=float, default=40.0)
    parser.add_argument("--training-essays", type=int, default=60)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument(
        "--llm-url", default="", help="a real OpenAI-compatible server's base URL (…/v1)"
    )
    parser.add_argument("--llm-model", default="", help="its model (default: the first listed)")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
    import django

    django.setup()
    from config.embedded import embedded_start

    embedded_start()
    import logging

    import redis
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    logging.getLogger().setLevel(logging.WARNING)
    for name in ("celery", "httpx2", "uvicorn", "uvicorn.access", "uvicorn.error"):
        logging.getLogger(name).setLevel(logging.WARNING)

    redis_url = settings.REDIS_URL.rsplit("/", 1)[0] + "/10"
    settings.CELERY_BROKER_URL = settings.CELERY_RESULT_BACKEND = redis_url
    settings.CACHES["default"]["LOCATION"] = redis_url
    connection.settings_dict["TEST"].update(NAME="bench_grading")
    redis.Redis.from_url(redis_url).flushdb()

    from celery.contrib.testing.worker import start_worker

    from config.celery import app
    from grading import reviews, rubrics, submissions, training
    from grading.models import CriterionScore, Proposal, SubmissionVector
    from learners.models import Course, Membership, User
    from tests.grading.workflow_factories import RUBRIC, grade_reply
    from tests.llm_server import LLMTestServer

    app.conf.broker_url = app.conf.result_backend = redis_url
    old_config = setup_databases(verbosity=0, interactive=False, keepdb=False)
    server = LLMTestServer().start()
    try:
        settings.LLM_MAX_CONCURRENCY = args.llm_concurrency
        settings.LLM_TIMEOUT_SECONDS = max(60.0, args.ttft + 400 / args.tokens_per_second)
        course = Course.objects.create(title="Benchmark course")
        learners = []
        for i in range(args.essays + args.training_essays):
            user = User.objects.create_user(username=f"bench{i}")
            learners.append(user)
        Membership.objects.bulk_create(
            Membership(user=user, course=course, role="student") for user in learners
        )
        trainees, essayists = learners[: args.training_essays], learners[args.training_essays :]

        with start_worker(
            app,
            pool="threads",
            concurrency=args.threads,
            queues=["llm", "cpu"],
            perform_ping_check=False,
            shutdown_timeout=60,
            loglevel="WARNING",
        ):
            if args.llm_url:
                _real_server(args, course, essayists)
                return
            # 1. The learned scorer alone (offline mode): train, then grade every essay.
            settings.LLM_BASE_URL = ""
            offline = rubrics.assignment_create(course=course, title="Offline", rubric=RUBRIC)
            argument, conventions = offline.criteria.all()
            for index, learner in enumerate(trainees):
                quality = index % 5
                submission = submissions.submission_submit(
                    assignment=offline, learner=learner, text=_essay(index, quality)
                )
                CriterionScore.objects.create(
                    submission=submission, criterion=argument, score=quality
                )
                CriterionScore.objects.create(
                    submission=submission, criterion=conventions, score=(quality % 5) / 2
                )
                reviews.review_refresh(submission=submission, decided=True)
            started = time.monotonic()
            training.scorer_train(assignment_id=offline.pk)
            train_s = time.monotonic() - started
            started = time.monotonic()
            for index, learner in enumerate(essayists):
                submissions.submission_submit(
                    assignment=offline, learner=learner, text=_essay(index + 1000, index % 5)
                )
            submitted = time.monotonic()
            ended = _wait_all(
                {"submission__assignment": offline, "source": "scorer"},
                args.essays,
                timeout=args.timeout,
            )
            scorer_failed = Proposal.objects.filter(
                submission__assignment=offline, status="failed"
            ).count()
            print(
                f"learned scorer: trained on {len(trainees)} essays in {train_s:.1f} s; "
                f"{args.essays} essays submitted in {submitted - started:.1f} s, all graded "
                f"after {ended - started:.1f} s = {args.essays / (ended - started):.1f} "
                f"essays/s ({scorer_failed} failed)",
                flush=True,
            )

            # 1b. A refit once the teacher has confirmed every essay, with the essays'
            # vectors stored (as the proposals left them) against one that must make them.
            graded = offline.submissions.exclude(learner__in=trainees).order_by("pk")
            CriterionScore.objects.bulk_create(
                CriterionScore(submission=submission, criterion=criterion, score=score)
                for index, submission in enumerate(graded)
                for criterion, score in ((argument, index % 5), (conventions, index % 5 / 2))
            )
            refit_stored_s = _refit_seconds(offline, trainees[1])
            SubmissionVector.objects.filter(submission__assignment=offline).delete()
            refit_cold_s = _refit_seconds(offline, trainees[2])
            print(
                f"refit on {len(trainees) + args.essays} confirmed essays: "
                f"{refit_stored_s:.1f} s with their vectors stored, {refit_cold_s:.1f} s making "
                f"them again (ratio {refit_stored_s / refit_cold_s:.2f})",
                flush=True,
            )

            # 2. The language model.
            settings.LLM_BASE_URL = server.base_url
            settings.LLM_MODEL = server.model
            online = rubrics.assignment_create(course=course, title="Online", rubric=RUBRIC)
            server.reset()
            server.script(
                json_reply=grade_reply(online),
                ttft=args.ttft,
                tokens_per_second=args.tokens_per_second,
            )
            started = time.monotonic()
            for index, learner in enumerate(essayists):
                submissions.submission_submit(
                    assignment=online, learner=learner, text=_essay(index, index % 5)
                )
            submitted = time.monotonic()
            ended = _wait_all(
                {"submission__assignment": online, "source": "llm"},
                args.essays,
                timeout=args.timeout,
            )
            stats = server.stats
            failed = Proposal.objects.filter(submission__assignment=online, status="failed")
            reply_tokens = len(str(grade_reply(online)).split())
            per_request = args.ttft + reply_tokens / args.tokens_per_second
            configured = min(args.threads, args.llm_concurrency)
            print(
                f"language model: {args.essays} essays submitted in {submitted - started:.1f} s, "
                f"all graded after {ended - started:.1f} s = "
                f"{args.essays / (ended - started):.1f} essays/s ({failed.count()} failed); "
                f"about {per_request:.1f} s per request at the server, so the ideal at "
                f"{configured} in flight is {configured / per_request:.1f} essays/s; "
                f"peak in flight {stats.peak_in_flight} (configured {configured}: "
                f"{args.threads} worker threads, LLM_MAX_CONCURRENCY {args.llm_concurrency}); "
                f"{stats.chat_requests} requests",
                flush=True,
            )
    finally:
        server.stop()
        teardown_databases(old_config, verbosity=0)
        redis.Redis.from_url(redis_url).flushdb()


def _uncached(body: dict) -> dict:
    """``body`` with a word put before its last message's text: a server that caches
    prompt prefixes (llama.cpp, vLLM) reuses the shared system prompt, as it did for the
    product, but reads the essay again instead of answering from the cache of the request
    it has just served."""
    messages = [dict(m) for m in body["messages"]]
    last = messages[-1]
    if isinstance(last.get("content"), str):
        last["content"] = "Again: " + last["content"]
    return {**body, "messages": messages}


def _real_server(args, course, essayists) -> None:
    """Grade every essay through a real server; then the server alone on the same requests."""
    from django.conf import settings

    from bench.llm_proxy import RecordingProxy, served_model
    from grading import rubrics, submissions
    from grading.models import Proposal
    from tests.grading.workflow_factories import RUBRIC

    with RecordingProxy(args.llm_url) as proxy:
        settings.LLM_BASE_URL = proxy.base_url
        settings.LLM_MODEL = args.llm_model or served_model(args.llm_url)
        settings.LLM_TIMEOUT_SECONDS = 300.0  # a CPU server under a class (docs/llm.md)
        online = rubrics.assignment_create(course=course, title="Online", rubric=RUBRIC)
        started = time.monotonic()
        for index, learner in enumerate(essayists):
            submissions.submission_submit(
                assignment=online, learner=learner, text=_essay(index, index % 5)
            )
        ended = _wait_all(
            {"submission__assignment": online, "source": "llm"},
            args.essays,
            timeout=args.timeout,
        )
        product_s = ended - started
        failed = Proposal.objects.filter(submission__assignment=online, status="failed").count()
        requests = list(proxy.exchanges)
        # Each essay's first request (a repair adds the model's reply and a message to it).
        shortest = min(len(e.body["messages"]) for e in requests)
        firsts = [_uncached(e.body) for e in requests if len(e.body["messages"]) == shortest]
        concurrency = min(args.threads, args.llm_concurrency)
        server_s, answered = proxy.replay(firsts, concurrency=concurrency)
    product_rate = args.essays / product_s
    server_rate = answered / server_s
    print(
        f"real server {settings.LLM_MODEL} at {args.llm_url}: {args.essays} essays graded by the "
        f"product in {product_s:.1f} s = {product_rate:.3f} essays/s ({failed} failed, "
        f"{len(requests)} requests); the server alone on the {len(firsts)} first requests, "
        f"{concurrency} at once: {server_s:.1f} s = {server_rate:.3f} completions/s; "
        f"ratio {product_rate / server_rate:.2f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
