"""No lost work when the LLM server, then Redis, goes away and comes back.

While a part is down every page still answers (no 500s): the student's message is kept,
a reply that cannot be written ends as failed with a message the student can retry from
(or waits, when Redis is the part that is away), and ``/healthz`` names what is down.
When the part returns, the work resumes: a retry is written, and what was stored during
the outage is sent again by the recovery sweep and done. A real worker (the suite's
in-process one) runs everything, on the real broker, database and LLM test server.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
import redis
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse

from ai.llm import LLMUnavailable
from config import embedded
from config.env import env_str
from config.recovery import work_recover
from grading.models import Proposal, Review, Submission
from learners.models import Concept
from learning.models import QuestionGeneration
from tests.grading.workflow_factories import ESSAY, grade_reply
from tests.llm_server import LLMTestServer
from tests.trust.workers import wait_for
from tutor.models import Message

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

REPLY = "Osmosis is the movement of water across a membrane [1]. What do you already know?"


class RestartableLLM:
    """An LLM test server that can be stopped and started again on the same address,
    answering as scripted each time."""

    def __init__(self) -> None:
        self.server = LLMTestServer().start()
        self.port = int(self.server.base_url.split(":")[-1].split("/")[0])
        self._script: dict = {}

    def script(self, **kwargs) -> None:
        self._script.update(kwargs)
        self.server.script(**kwargs)

    def down(self) -> None:
        self.server.stop()

    def up(self) -> None:
        self.server = LLMTestServer(port=self.port).start()
        self.server.script(**self._script)


@pytest.fixture
def llm(settings):
    server = RestartableLLM()
    settings.LLM_BASE_URL = server.server.base_url
    settings.LLM_MODEL = server.server.model
    settings.LLM_API_KEY = "test-key"
    settings.LLM_RETRY_BACKOFF_SECONDS = 0.01
    yield server
    server.server.stop()


def answers(client: Client, url: str, *, data: dict | None = None):
    """GET (or POST ``data`` to) a page and insist that it answered without a 5xx."""
    response = client.get(url) if data is None else client.post(url, data)
    assert response.status_code < 500, (url, response.status_code)
    return response


def teacher_pages(course, assignment, submission) -> list[str]:
    args = [course.pk, assignment.pk]
    return [
        reverse("home"),
        reverse("course-detail", args=[course.pk]),
        reverse("grading:assignments", args=[course.pk]),
        reverse("grading:assignment", args=args),
        reverse("grading:review", args=args),
        reverse("grading:review-essay", args=[*args, submission.pk]),
        reverse("grading:agreement", args=args),
    ]


def read_stream(response) -> bytes:
    """The whole body of a server-sent event response (an async iterator)."""

    async def read() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(read)()


# --- the LLM server away and back -------------------------------------------------------


def test_with_the_llm_server_down_pages_answer_and_the_work_is_done_once_it_is_back(
    celery_worker, llm, monkeypatch, client, student, teacher, course, assignment
):
    from grading import tasks

    monkeypatch.setattr(tasks, "RETRY_BASE_SECONDS", 1)  # a grading retry every 1, 2, 4 s
    llm.script(reply=REPLY, json_reply=grade_reply(assignment))
    llm.down()

    client.force_login(student)
    tutor_page = reverse("conversations:tutor", args=[course.pk])
    answers(client, tutor_page)
    response = answers(
        client, reverse("conversations:post", args=[course.pk]), data={"text": "What is osmosis?"}
    )
    assert response.status_code == 302
    question = Message.objects.get(role=Message.Role.USER)
    assert question.text == "What is osmosis?"  # kept, whatever happens to the reply
    reply = wait_for(
        lambda: Message.objects.filter(
            role=Message.Role.ASSISTANT, status__in=Message.FINISHED
        ).first(),
        timeout=30,
        what="the reply to end",
    )
    assert reply.status == Message.Status.FAILED
    assert reply.error == LLMUnavailable.student_message
    page = answers(client, tutor_page).content.decode()
    retry_url = reverse("conversations:retry", args=[course.pk, reply.pk])
    assert "not reachable right now" in page and retry_url in page

    response = answers(
        client, reverse("grading:submit", args=[course.pk, assignment.pk]), data={"text": ESSAY}
    )
    assert response.status_code == 302
    submission = Submission.objects.get(learner=student)
    wait_for(
        lambda: "LLMUnavailable" in Proposal.objects.get(submission=submission).error,
        timeout=20,
        what="the grading task to meet the unreachable LLM",
    )
    client.force_login(teacher)
    for url in teacher_pages(course, assignment, submission):
        assert answers(client, url).status_code == 200, url

    llm.up()
    # The grading task's own retry finds the server back.
    wait_for(
        lambda: Proposal.objects.filter(
            submission=submission, status=Proposal.Status.DONE
        ).exists(),
        timeout=30,
        what="the essay to be graded once the LLM is back",
    )
    assert Review.objects.get(submission=submission).status == Review.Status.PENDING
    assert Proposal.objects.filter(submission=submission).count() == 1

    client.force_login(student)
    assert answers(client, retry_url, data={}).status_code == 302
    reply = wait_for(
        lambda: Message.objects.filter(pk=reply.pk, status__in=Message.FINISHED).first(),
        timeout=30,
        what="the retried reply",
    )
    assert (reply.status, reply.text) == (Message.Status.DONE, REPLY)
    assert Message.objects.filter(conversation=reply.conversation).count() == 2
    assert REPLY.split("[")[0].strip() in answers(client, tutor_page).content.decode()


# --- Redis away and back ----------------------------------------------------------------


class EmbeddedRedis:
    """The embedded Redis of the test settings, stopped and started on the same port."""

    def __init__(self) -> None:
        self.url = django_settings.REDIS_URL
        self.port = redis.Redis.from_url(self.url).connection_pool.connection_kwargs["port"]
        self.data_dir = django_settings.VAR_DIR / "redis"

    def answers(self) -> bool:
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def down(self) -> None:
        # SIGTERM: Redis saves its append-only file and exits, as in a restart for
        # maintenance; whatever the test wrote before is there when it comes back.
        os.kill(int((self.data_dir / "redis.pid").read_text()), signal.SIGTERM)
        wait_for(lambda: not self.answers(), timeout=10, what="Redis to stop")

    def up(self) -> None:
        embedded.redis_start(self.data_dir, port=self.port)
        wait_for(self.answers, timeout=10, what="Redis to answer again")


@pytest.fixture
def redis_server(celery_worker):
    """The embedded Redis, under the test's control; running again at the end, whatever
    happened (before the worker fixture's teardown needs it)."""
    if env_str("REDIS_URL"):
        pytest.skip("REDIS_URL names a Redis this test must not stop")
    server = EmbeddedRedis()
    yield server
    if not server.answers():
        server.up()


def test_with_redis_down_pages_answer_and_stored_work_resumes_when_it_is_back(
    redis_server, llm_server, settings, client, student, teacher, course, assignment
):
    # What is queued during the outage is sent again a second after its lease lapses.
    settings.WORK_REQUEUE_SECONDS = 1
    llm_server.script(reply=REPLY, json_reply=grade_reply(assignment))
    client.force_login(student)
    tutor_page = reverse("conversations:tutor", args=[course.pk])
    answers(client, tutor_page)

    redis_server.down()
    for url in (reverse("home"), reverse("course-detail", args=[course.pk]), tutor_page):
        assert answers(client, url).status_code == 200, url
    health = client.get(reverse("healthz"))
    assert health.status_code == 503
    assert health.json()["parts"]["redis"]["ok"] is False
    assert health.json()["parts"]["database"]["ok"] is True

    # The message is stored, its reply waits; the page shows it waiting.
    response = answers(
        client, reverse("conversations:post", args=[course.pk]), data={"text": "What is osmosis?"}
    )
    assert response.status_code == 302
    question = Message.objects.get(role=Message.Role.USER)
    reply = Message.objects.get(role=Message.Role.ASSISTANT)
    assert (question.text, reply.status) == ("What is osmosis?", Message.Status.PENDING)
    assert answers(client, tutor_page).status_code == 200
    stream = answers(client, reverse("conversations:stream", args=[course.pk, reply.pk]))
    assert stream.status_code == 200
    assert b"unavailable" in read_stream(stream)  # it ends; the browser reconnects later
    # An essay is stored too, its grading waits.
    response = answers(
        client, reverse("grading:submit", args=[course.pk, assignment.pk]), data={"text": ESSAY}
    )
    assert response.status_code == 302
    submission = Submission.objects.get(learner=student)
    assert Proposal.objects.get(submission=submission).status == Proposal.Status.QUEUED
    # A failed login is refused as usual (its throttling count is in the database).
    login = answers(Client(), reverse("login"), data={"username": "student", "password": "no"})
    assert login.status_code == 200
    client.force_login(teacher)
    for url in teacher_pages(course, assignment, submission):
        assert answers(client, url).status_code == 200, url
    # Asking the model for practice questions is a job that waits, shown as queued.
    concept = Concept.objects.create(course=course, name="Osmosis")
    response = answers(
        client,
        reverse("learning:questions-generate", args=[course.pk]),
        data={"concept": str(concept.pk), "use_llm": "1", "text": "Osmosis moves water."},
    )
    assert response.status_code == 302
    generation = QuestionGeneration.objects.get(concept=concept)
    assert generation.status == QuestionGeneration.Status.QUEUED
    assert "Queued" in answers(client, response.url).content.decode()

    # An erasure would leave the learner's reply streams behind: it is refused, whole.
    eraser = Client()
    eraser.force_login(student)
    response = answers(eraser, reverse("privacy-erase"), data={"confirm": student.username})
    assert (response.status_code, response.url) == (302, reverse("privacy"))
    assert "nothing was erased" in answers(eraser, response.url).content.decode()
    assert type(student).objects.filter(pk=student.pk).exists()

    redis_server.up()
    # Beat runs the recovery sweep every minute; this sends it as beat does, through the
    # broker the worker has reconnected to.
    counts = work_recover.delay().get(timeout=45)
    assert counts["replies_resent"] == 1 and counts["proposals"] == 1
    assert counts["question_generations"] == 1
    reply = wait_for(
        lambda: Message.objects.filter(pk=reply.pk, status__in=Message.FINISHED).first(),
        timeout=30,
        what="the stored message to be answered",
    )
    assert (reply.status, reply.text) == (Message.Status.DONE, REPLY)
    wait_for(
        lambda: Proposal.objects.filter(
            submission=submission, status=Proposal.Status.DONE
        ).exists(),
        timeout=30,
        what="the stored essay to be graded",
    )
    assert Proposal.objects.filter(submission=submission).count() == 1
    wait_for(
        lambda: QuestionGeneration.objects.filter(
            pk=generation.pk, status__in=["done", "failed"]
        ).exists(),
        timeout=30,
        what="the stored question job to run",
    )
    # One reply and one grading: nothing twice.
    bodies = llm_server.chat_bodies
    assert sum(1 for b in bodies if b.get("stream")) == 1
    assert sum(1 for b in bodies if "rubric_grade" in json.dumps(b.get("response_format"))) == 1
    client.force_login(student)
    assert answers(client, tutor_page).status_code == 200
    assert client.get(reverse("healthz")).status_code == 200
