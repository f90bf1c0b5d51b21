"""Load test: many users of the three roles on the product at once, on loopback.

    .venv/bin/python -m bench.load --users 200 --duration 60

The product runs as in production (``bench/stack.py``: uvicorn, Celery workers on both
queues, the OpenAI-compatible test server paced like a model) on a database of its own,
with ``--courses`` courses of demo material and an essay assignment each. Simulated users
(80 % students, 15 % teachers, 5 % admins) each loop over what such a user does — pages,
course search, a tutor message followed to the end of its stream, an essay submission —
with an exponential think time between requests, for ``--duration`` seconds. The run is
bounded: every user stops at the deadline, and at most ``--users`` requests are open.

It reports, first for one user of each role walking every page alone (the baseline of the
same run: machines here are noisy) and then under load:
- p50/p95 latency of the non-LLM pages (everything except the reply streams), and the
  ratio of the loaded p95 to the baseline's;
- the error rate (5xx, refused connections, timeouts, or an unexpected status);
- whether any task was lost: after the load stops, every tutor reply and every grading job
  must finish (done, or failed with a reason) within ``--drain`` seconds.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import random
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from bench.stack import (
    ROOT,
    Http,
    bench_database,
    follow_stream,
    percentile,
    product_stack,
    session_cookie,
)

ESSAY = (
    "Plants make their own food by photosynthesis. In the chloroplasts of leaf cells the "
    "green pigment chlorophyll captures light, and the plant uses that energy to turn "
    "carbon dioxide and water into glucose, releasing oxygen. This matters because almost "
    "every food chain starts with it, and the oxygen we breathe comes from it. "
)
RUBRIC = {
    "criteria": [
        {"name": "Argument", "min": 0, "max": 4, "step": 1},
        {"name": "Use of evidence", "min": 0, "max": 4, "step": 1},
    ]
}
ACCEPTED = {200, 204, 302}


@dataclass
class Sample:
    page: str
    seconds: float
    ok: bool
    detail: str = ""


@dataclass
class Recorder:
    samples: list[Sample] = field(default_factory=list)
    streams_ok: int = 0
    streams_failed: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, sample: Sample) -> None:
        with self.lock:
            self.samples.append(sample)


@dataclass
class SimUser:
    role: str
    session: str
    course_id: int
    assignment_id: int
    conversation_id: int | None = None
    submitted: bool = False


def _request(http: Http, recorder: Recorder, page: str, method: str, path: str, data=None):
    started = time.perf_counter()
    try:
        if method == "GET":
            status, body = http.get(path)
        else:
            status, body = http.post(path, data or {}, htmx=True)
    except Exception as exc:  # noqa: BLE001 - a refused or dropped connection is an error
        recorder.add(Sample(page, time.perf_counter() - started, False, type(exc).__name__))
        return None, ""
    ok = status in ACCEPTED
    recorder.add(Sample(page, time.perf_counter() - started, ok, "" if ok else f"HTTP {status}"))
    return status, body


def _pages(user: SimUser) -> list[tuple[str, str]]:
    """(name, path) of the pages this user's role opens."""
    c, a = user.course_id, user.assignment_id
    common = [("home", "/"), ("course", f"/courses/{c}/")]
    if user.role == "student":
        return common + [
            ("tutor", f"/courses/{c}/tutor/"),
            ("progress", f"/courses/{c}/progress/"),
            ("practice", f"/courses/{c}/practice/"),
            ("search", f"/courses/{c}/search/?q=how+do+plants+make+sugar"),
            ("assignments", f"/courses/{c}/assignments/"),
            ("assignment", f"/courses/{c}/assignments/{a}/"),
            ("profile", "/profile/"),
        ]
    if user.role == "teacher":
        return common + [
            ("materials", f"/courses/{c}/materials/"),
            ("class progress", f"/courses/{c}/progress/class/"),
            ("review queue", f"/courses/{c}/assignments/{a}/review/"),
            ("agreement", f"/courses/{c}/assignments/{a}/agreement/"),
            ("concepts", f"/courses/{c}/concepts/"),
        ]
    return common + [
        ("admin", "/admin/"),
        ("admin users", "/admin/learners/user/"),
        ("usage", f"/staff/usage/courses/{c}/"),
    ]


def _chat(http: Http, user: SimUser, recorder: Recorder) -> None:
    data = {"text": "How do plants turn light into sugar?"}
    data["conversation"] = str(user.conversation_id)
    status, body = _request(
        http, recorder, "tutor post", "POST", f"/courses/{user.course_id}/tutor/messages/", data
    )
    if status is None:
        return
    found = re.search(r'data-stream-url="([^"]+)"', body)
    if found is None:
        with recorder.lock:
            recorder.streams_failed.append("the post answered without a reply to follow")
        return
    result = follow_stream(http, html.unescape(found.group(1)))
    with recorder.lock:
        if result.status == "done":
            recorder.streams_ok += 1
        else:
            recorder.streams_failed.append(result.error or result.status)


def _act(http: Http, user: SimUser, recorder: Recorder, rng: random.Random, pages) -> None:
    roll = rng.random()
    if user.role == "student" and roll < 0.08:
        _chat(http, user, recorder)
    elif user.role == "student" and roll < 0.11 and not user.submitted:
        user.submitted = True
        path = f"/courses/{user.course_id}/assignments/{user.assignment_id}/submit/"
        _request(http, recorder, "essay submit", "POST", path, {"text": ESSAY * 3})
    else:
        name, path = rng.choice(pages)
        _request(http, recorder, name, "GET", path)


def _simulate(user: SimUser, port: int, cookie: str, recorder, deadline, think, seed) -> None:
    from django.db import connections

    rng = random.Random(seed)
    http = Http(port, user.session, cookie_name=cookie)
    pages = _pages(user)
    try:
        http.get("/")  # the CSRF cookie
        time.sleep(rng.uniform(0, think))  # users do not all arrive in the same instant
        while time.time() < deadline:
            _act(http, user, recorder, rng, pages)
            time.sleep(min(rng.expovariate(1 / think), max(0.0, deadline - time.time())))
    finally:
        connections.close_all()


def _summary(samples: list[Sample]) -> dict:
    seconds = [s.seconds for s in samples]
    errors = [s for s in samples if not s.ok]
    return {
        "requests": len(samples),
        "p50_ms": round(percentile(seconds, 50) * 1000, 1) if seconds else None,
        "p95_ms": round(percentile(seconds, 95) * 1000, 1) if seconds else None,
        "errors": len(errors),
        "error_rate": round(len(errors) / len(samples), 4) if samples else None,
        "error_kinds": sorted({f"{s.page}: {s.detail}" for s in errors})[:10],
    }


def _seed(n_courses: int, n_users: int):
    from grading.rubrics import assignment_create
    from learners.models import Course, Membership, User
    from material.services import material_import_path, material_ingest
    from tutor.conversations import conversation_start

    courses = []
    for index in range(n_courses):
        course = Course.objects.create(title=f"Load course {index + 1}")
        for material in material_import_path(
            course=course, path=ROOT / "material" / "demo_material", enqueue=False
        ):
            material_ingest(material_id=material.pk)
        assignment = assignment_create(
            course=course, title="Why photosynthesis matters", prompt="Explain.", rubric=RUBRIC
        )
        courses.append((course, assignment))
    users = []
    for index in range(n_users):
        share = index % 20
        role = "admin" if share == 0 else "teacher" if share <= 3 else "student"
        course, assignment = courses[index % n_courses]
        user = User.objects.create_user(
            username=f"load{index}", is_staff=role == "admin", is_superuser=role == "admin"
        )
        if role != "admin":
            Membership.objects.create(user=user, course=course, role=role)
        sim = SimUser(role, session_cookie(user), course.pk, assignment.pk)
        if role == "student":
            sim.conversation_id = conversation_start(course=course, learner=user).pk
        users.append(sim)
    return users


def _baseline(users: list[SimUser], port: int, cookie: str, rounds: int) -> Recorder:
    """Every page of one user of each role, alone, ``rounds`` times."""
    recorder = Recorder()
    for role in ("student", "teacher", "admin"):
        user = next(u for u in users if u.role == role)
        http = Http(port, user.session, cookie_name=cookie)
        http.get("/")
        for _round in range(rounds):
            for name, path in _pages(user):
                _request(http, recorder, name, "GET", path)
    return recorder


def _drain(timeout: float) -> dict:
    """Wait for every tutor reply and grading job to finish; what did not is lost."""
    from grading.models import Proposal, Submission
    from tutor.models import Message

    deadline = time.time() + timeout
    while True:
        replies = Message.objects.filter(role=Message.Role.ASSISTANT)
        open_replies = replies.filter(status__in=Message.UNFINISHED).count()
        jobs = Proposal.objects.all()
        open_jobs = jobs.filter(status__in=["queued", "running"]).count()
        if (open_replies == 0 and open_jobs == 0) or time.time() > deadline:
            break
        time.sleep(1)
    submissions = Submission.objects.count()
    without_job = Submission.objects.filter(proposals__isnull=True).count()
    return {
        "tutor_replies": replies.count(),
        "tutor_replies_done": replies.filter(status=Message.Status.DONE).count(),
        "tutor_replies_failed": replies.filter(status=Message.Status.FAILED).count(),
        "tutor_replies_unfinished": open_replies,
        "essays_submitted": submissions,
        "grading_jobs": jobs.count(),
        "grading_jobs_done": jobs.filter(status="done").count(),
        "grading_jobs_failed": jobs.filter(status="failed").count(),
        "grading_jobs_unfinished": open_jobs,
        "essays_without_a_grading_job": without_job,
        "tasks_lost": open_replies + open_jobs + without_job,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--think", type=float, default=3.0, help="mean seconds between actions")
    parser.add_argument("--courses", type=int, default=4)
    parser.add_argument("--web-workers", type=int, default=2, help="uvicorn processes")
    parser.add_argument("--baseline-rounds", type=int, default=5)
    parser.add_argument("--drain", type=float, default=180.0, help="seconds to finish tasks")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON only")
    args = parser.parse_args()

    old_config, redis_url = bench_database("bench_load", redis_db=11)
    from django.conf import settings
    from django.db import connections
    from django.test.utils import teardown_databases

    try:
        users = _seed(args.courses, args.users)
        cookie = settings.SESSION_COOKIE_NAME
        with product_stack(
            redis_url=redis_url,
            llm_args=["--ttft", "0.3", "--tokens-per-second", "30", "--reply-words", "120"],
            llm_concurrency=max(16, args.users // 4),
            web_workers=args.web_workers,
            cpu_worker=True,
        ) as stack:
            baseline = _baseline(users, stack.web_port, cookie, args.baseline_rounds)
            recorder = Recorder()
            deadline = time.time() + args.duration
            threads = [
                threading.Thread(
                    target=_simulate,
                    args=[user, stack.web_port, cookie, recorder, deadline, args.think, i],
                )
                for i, user in enumerate(users)
            ]
            cpu_before = stack.cpu_seconds()
            started = time.time()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=args.duration + 600)
            wall = time.time() - started
            drained = _drain(args.drain)
            cpu = {k: round(v - cpu_before[k], 1) for k, v in stack.cpu_seconds().items()}
            logs = str(stack.workdir)
    finally:
        connections.close_all()
        teardown_databases(old_config, verbosity=0)

    loaded = _summary(recorder.samples)
    alone = _summary(baseline.samples)
    by_page: dict[str, list[Sample]] = defaultdict(list)
    for sample in recorder.samples:
        by_page[sample.page].append(sample)
    summary = {
        "users": args.users,
        "roles": {r: sum(u.role == r for u in users) for r in ("student", "teacher", "admin")},
        "cpu_cores": os.cpu_count(),
        "duration_s": args.duration,
        "think_s": args.think,
        "wall_s": round(wall, 1),
        "baseline_alone": alone,
        "under_load": loaded,
        "p95_ratio_load_over_alone": (
            round(loaded["p95_ms"] / alone["p95_ms"], 2)
            if loaded["p95_ms"] and alone["p95_ms"]
            else None
        ),
        "requests_per_second": round(loaded["requests"] / wall, 1),
        "per_page_p95_ms": {
            page: round(percentile([s.seconds for s in samples], 95) * 1000, 1)
            for page, samples in sorted(by_page.items())
        },
        "reply_streams_done": recorder.streams_ok,
        "reply_streams_not_done": recorder.streams_failed[:10],
        **drained,
        "cpu_seconds": cpu,
        "logs": logs,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
