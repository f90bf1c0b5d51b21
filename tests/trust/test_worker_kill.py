"""No lost work: a worker killed (SIGKILL) in the middle of a job, then restarted, leaves
each job done exactly once.

Each test runs a real ``celery worker`` process on the real broker and test database,
waits until a job is demonstrably half done (a material parsed and partly embedded, a
reply part streamed, an essay's grading call to the LLM in flight), kills the worker and
its pool with SIGKILL, and starts a new one. The killed task was acknowledged late, so
Redis still holds it for redelivery; the new worker's recovery sweep finds the job by its
lapsed lease, and its broker hands the old message back (a short visibility timeout
stands in for the production one of twenty minutes). The job is then delivered twice,
and the tests check that it was done once: by the rows the unique constraints allow, the
claims the jobs count, the worker's own log of each task's result, and the requests the
LLM test server received.
"""

from __future__ import annotations

import re

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from grading.models import Proposal, Review
from grading.submissions import submission_submit
from material import chunking, parsing
from material.models import Chunk, Material
from material.services import material_upload
from tests.grading.workflow_factories import ESSAY, grade_reply
from tests.trust.workers import LEASE_SECONDS, QUEUES, WorkerProcess, unacked_tasks, wait_for
from tutor import streams
from tutor.conversations import STALE_MESSAGE
from tutor.models import Message

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

INGEST_TASK = "tutor.tasks.material_ingest_task"
REPLY_TASK = "tutor.conversation_tasks.reply_write"
GRADE_TASK = "grading.tasks.proposal_llm"


def restart(workers, queue: str, name: str) -> WorkerProcess:
    """The replacement worker; its broker hands back messages unacknowledged for a second
    (in production, after the visibility timeout)."""
    return workers(queue, name=name, TEST_VISIBILITY_TIMEOUT="1")


def wait_until_the_lease_lapses(row) -> None:
    def lapsed():
        row.refresh_from_db()
        return row.lease_until is not None and row.lease_until < timezone.now()

    wait_for(lapsed, timeout=LEASE_SECONDS * 3, what="the dead worker's lease to lapse")


def results_logged(worker: WorkerProcess, task: str) -> list[str]:
    """What each run of ``task`` returned, as the worker logged it."""
    return re.findall(
        rf"Task {re.escape(task)}\[[^\]]+\] succeeded in [\d.e-]+s: (.*)", worker.log()
    )


def messages_settled(client, task: str) -> bool:
    """Every message of ``task`` delivered and acknowledged: none waiting, none held."""
    return not unacked_tasks(client, task) and all(client.llen(q) == 0 for q in QUEUES)


# --- ingestion ------------------------------------------------------------------------

TOPICS = ("photosynthesis", "respiration", "osmosis", "diffusion", "enzymes", "mitosis")


def long_markdown(sections: int) -> bytes:
    """A document of ``sections`` sections of about 50 distinct words each (one chunk
    each), more than one embedding batch."""
    parts = ["# Cell biology, at length\n"]
    for n in range(sections):
        topic = TOPICS[n % len(TOPICS)]
        sentences = [
            f"Section {n} looks at {topic} from angle {n * 7 % 13} with example {n * 31}.",
            f"In sample {n} the rate of {topic} changed by {n % 9} units per minute.",
        ]
        sentences += [
            f"Observation {n}.{k}: the {topic} measurement {k * n + 3} agreed with the model "
            f"within {k + n % 5} percent, which the class discussed in lesson {n + k}."
            for k in range(2)
        ]
        parts.append(f"## Part {n}: {topic}\n\n" + " ".join(sentences) + "\n")
    return "\n".join(parts).encode()


def test_ingestion_killed_midway_is_finished_once_by_the_next_worker(
    workers, broker, make_course, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    data = long_markdown(70)
    document = parsing.document_parse(name="long.md", data=data)
    expected = len(chunking.document_chunk(document.blocks))
    assert expected > 64  # two embedding batches: progress shows between them
    course = make_course("Kill course")
    first = workers("cpu", name="kill-cpu-1")

    material = material_upload(course=course, file=ContentFile(data, name="long.md"))
    wait_for(
        lambda: Material.objects.filter(
            pk=material.pk,
            status=Material.Status.PROCESSING,
            step=Material.Step.EMBEDDING,
            passages_done__gt=0,
        ).exists(),
        timeout=45,
        what="the material to be parsed and partly embedded",
    )
    first.kill()

    material.refresh_from_db()
    assert material.status == Material.Status.PROCESSING
    assert material.step == Material.Step.EMBEDDING
    assert 0 < material.passages_done < material.passages_total <= expected
    assert 10 < material.progress < 100
    assert not Chunk.objects.filter(material=material).exists()  # nothing half-written
    # Acknowledged late: the broker still holds the task to deliver again.
    assert unacked_tasks(broker, INGEST_TASK) == [[material.pk]]

    wait_until_the_lease_lapses(material)
    second = restart(workers, "cpu", "kill-cpu-2")
    wait_for(
        lambda: Material.objects.get(pk=material.pk).status not in Material.UNFINISHED,
        timeout=45,
        what="the material to be ingested by the new worker",
    )
    wait_for(
        lambda: messages_settled(broker, INGEST_TASK),
        timeout=15,
        what="the redelivered task to be done",
    )

    material.refresh_from_db()
    assert (material.status, material.progress) == (Material.Status.READY, 100)
    assert material.attempts == 2  # the killed claim and the one takeover
    positions = list(
        Chunk.objects.filter(material=material)
        .order_by("position")
        .values_list("position", flat=True)
    )
    assert positions == list(range(expected))
    assert "queued again" in second.log()  # the sweep found it
    # Delivered twice (the sweep's task and the redelivered one), ingested once. The
    # result line can reach the worker's log after the message is acknowledged.
    wait_for(
        lambda: len(results_logged(second, INGEST_TASK)) >= 2,
        timeout=15,
        what="both deliveries' results in the log",
    )
    assert sorted(results_logged(second, INGEST_TASK)) == ["'not-queued'", "'ready'"]


# --- a tutoring reply -----------------------------------------------------------------

REPLY = " ".join(f"word{i}" for i in range(60))


def test_a_reply_killed_midstream_ends_failed_and_its_retry_is_written_once(
    workers, broker, llm_server, client, student, course
):
    llm_server.script(reply=REPLY, tokens_per_second=8)
    first = workers("llm", name="kill-llm-1")
    client.force_login(student)
    response = client.post(
        reverse("conversations:post", args=[course.pk]), {"text": "Why are leaves green?"}
    )
    assert response.status_code == 302
    reply = Message.objects.get(role=Message.Role.ASSISTANT)

    wait_for(
        lambda: len(streams.reply_stream_text(message_id=reply.pk).split()) >= 3,
        timeout=40,
        what="part of the reply to stream",
    )
    first.kill()
    partial = streams.reply_stream_text(message_id=reply.pk)
    reply.refresh_from_db()
    assert reply.status == Message.Status.STREAMING
    assert 0 < len(partial.split()) < 60
    assert unacked_tasks(broker, REPLY_TASK) == [[reply.pk]]

    wait_until_the_lease_lapses(reply)
    llm_server.script(tokens_per_second=500)
    second = restart(workers, "llm", "kill-llm-2")
    # The turn is never left "writing": it ends as failed, keeping what was streamed.
    reply = wait_for(
        lambda: Message.objects.filter(pk=reply.pk, status=Message.Status.FAILED).first(),
        timeout=10,
        what="the abandoned reply to be failed",
    )
    assert (reply.error, reply.text) == (STALE_MESSAGE, partial)
    wait_for(lambda: messages_settled(broker, REPLY_TASK), timeout=15, what="the redelivered task")
    assert results_logged(second, REPLY_TASK) == ["None"]  # redelivered: nothing to do
    page = client.get(reverse("conversations:tutor", args=[course.pk]))
    assert page.status_code == 200
    assert STALE_MESSAGE in page.content.decode()
    retry_url = reverse("conversations:retry", args=[course.pk, reply.pk])
    assert retry_url in page.content.decode()

    assert client.post(retry_url).status_code == 302
    reply = wait_for(
        lambda: Message.objects.filter(pk=reply.pk, status__in=Message.FINISHED).first(),
        timeout=30,
        what="the retried reply",
    )
    assert reply.status == Message.Status.DONE
    assert reply.text == REPLY
    assert streams.reply_stream_text(message_id=reply.pk) == REPLY  # not the old text too
    turn = Message.objects.filter(conversation=reply.conversation)
    assert sorted(turn.values_list("role", flat=True)) == ["assistant", "user"]
    assert llm_server.stats.chat_requests == 2  # the killed stream and the retry


# --- a grading job --------------------------------------------------------------------


def test_grading_killed_midway_is_taken_over_and_graded_once(
    workers, broker, llm_server, student, assignment
):
    llm_server.script(json_reply=grade_reply(assignment), ttft=30)
    first = workers("llm", name="kill-llm-1")
    submission = submission_submit(assignment=assignment, learner=student, text=ESSAY)
    proposal = Proposal.objects.get(submission=submission)
    wait_for(
        lambda: (
            llm_server.stats.in_flight >= 1
            and Proposal.objects.filter(pk=proposal.pk, status=Proposal.Status.RUNNING).exists()
        ),
        timeout=30,
        what="the grading call to reach the LLM",
    )
    first.kill()
    proposal.refresh_from_db()
    assert (proposal.status, proposal.attempts) == (Proposal.Status.RUNNING, 1)
    assert unacked_tasks(broker, GRADE_TASK) == [[proposal.pk]]

    wait_until_the_lease_lapses(proposal)
    llm_server.script(ttft=0.0)
    second = restart(workers, "llm", "kill-llm-2")
    wait_for(
        lambda: Proposal.objects.filter(pk=proposal.pk, status=Proposal.Status.DONE).exists(),
        timeout=30,
        what="the essay to be graded by the new worker",
    )
    wait_for(lambda: messages_settled(broker, GRADE_TASK), timeout=15, what="the redelivery")

    proposals = Proposal.objects.filter(submission=submission)
    assert proposals.count() == 1
    proposal = proposals.get()
    assert proposal.attempts == 2
    assert proposal.model_name == llm_server.model
    assert len(proposal.criteria) == assignment.criteria.count()
    assert Review.objects.get(submission=submission).status == Review.Status.PENDING
    assert sorted(results_logged(second, GRADE_TASK)) == ["'done'", "None"]
    assert llm_server.stats.chat_requests == 2  # the killed call and the takeover
