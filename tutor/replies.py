"""Writing one tutor reply: online through the language model, offline from the passages.

``reply_write`` runs in a worker after the task claimed the reply (status ``streaming``).
Text goes to the reply's Redis stream as it is produced (``tutor/streams.py``) and the
finished reply goes to the database with its citations, model, prompt version, token usage
and time to first token. Whatever happens, the reply ends in a final status (done, stopped
or failed) and its stream gets an end marker, so no page waits forever.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from ai.budget import ai_budget_reached
from ai.ledger import LLMCallFor, Purpose
from ai.llm import (
    LLMContextExceeded,
    LLMError,
    chat_stream,
    llm_context_tokens,
    llm_error_observed,
    llm_is_configured,
    llm_supports_images,
    server_tokens_counter,
    user_message_with_image,
)
from config.jobs import Claim, Lease
from learners.models import LearnerProfile as LearnerProfileRow
from learning.practice import check_question_for
from material.concept_tags import passage_concept_ids
from material.retrieval import chunks_search
from tutor import streams
from tutor.context import (
    TUTOR_PROMPT,
    LearnerProfile,
    Passage,
    Turn,
    context_build,
    prompt_load,
    tokens_estimate,
    untrusted,
)
from tutor.conversation_selectors import reply_for_writing, reply_turns
from tutor.conversations import reply_max_seconds
from tutor.models import Conversation, Message
from tutor.reply_clean import reply_citations, reply_language, reply_text_clean

if TYPE_CHECKING:
    from learners.models import Course, User


logger = logging.getLogger(__name__)

PASSAGES_K = 6
OFFLINE_PASSAGES = 3
OFFLINE_PROMPT_VERSION = "offline.v1"
MEMORY_PROMPT = "memory_summary.v1"
STOP_POLL_SECONDS = 0.2
FLUSH_SECONDS = 0.1
TOO_SLOW_MESSAGE = gettext_noop("The reply took too long and was cut short; try again.")


# --- passages --------------------------------------------------------------------------


def passages_search(
    *, course: Course, user: User, query: str, k: int = PASSAGES_K
) -> list[Passage]:
    """The course passages that best match ``query``, numbered from 1, in rank order; each
    cites its chunk's place in the material (``chunks_search`` gives the link to it)."""
    return [
        Passage(
            n=n,
            chunk_id=result.chunk_id,
            text=result.text,
            title=result.title,
            section=result.section,
            page=result.page,
            url=result.url,
            score=result.score,
        )
        for n, result in enumerate(
            chunks_search(course=course, user=user, query=query, k=k), start=1
        )
    ]


# --- the learner -----------------------------------------------------------------------


def learner_profile(*, learner: User, weak_concepts: Sequence[str]) -> LearnerProfile:
    """What the tutor is told about the learner: language, level, goals, interests and the
    concepts they find hardest (``weak_concepts``, as ``reply_for_writing`` read them);
    never who they are. The learner's profile is the one loaded with them."""
    try:
        profile = learner.learner_profile
    except LearnerProfileRow.DoesNotExist:
        profile = LearnerProfileRow(user=learner)  # never filled in: the defaults
    goals = profile.goals
    if profile.interests:
        goals = f"{goals}\nInterests: {profile.interests}".strip()
    return LearnerProfile(
        language=learner.preferred_language,
        level=profile.get_level_display() if profile.onboarded_at else "",
        goals=goals,
        weak_concepts=tuple(weak_concepts),
    )


# --- the reply -------------------------------------------------------------------------


class _StopCheck:
    """The ``should_stop`` callback: the learner pressed Stop, the reply ran too long, or
    it is no longer this worker's (the recovery sweep ended it when its lease lapsed).

    Polls Redis at most every STOP_POLL_SECONDS, since it runs after every chunk.
    """

    def __init__(self, *, message_id: int, deadline: float, lease: Lease | None = None) -> None:
        self.message_id = message_id
        self.deadline = deadline
        self.lease = lease
        self.stopped = False
        self.timed_out = False
        self._next_poll = 0.0

    def __call__(self) -> bool:
        now = time.monotonic()
        if now > self.deadline:
            self.timed_out = True
            return True
        if self.lease is not None and self.lease.lost:
            return True
        if now >= self._next_poll:
            self._next_poll = now + STOP_POLL_SECONDS
            self.stopped = streams.reply_stop_requested(message_id=self.message_id)
        return self.stopped


def _finish(reply: Message, **fields: Any) -> str:
    """Store the final state unless someone else (the stale check) finished it first;
    then end the stream with the status the database holds (if Redis is there: a reader
    that meets no end falls back to the stored status)."""
    fields.setdefault("finished", timezone.now())
    updated = Message.objects.filter(pk=reply.pk, status=Message.Status.STREAMING).update(
        lease_until=None, **fields
    )
    status = fields["status"] if updated else Message.objects.get(pk=reply.pk).status
    try:
        streams.reply_stream_end(message_id=reply.pk, status=status)
    except streams.UNAVAILABLE as error:
        logger.warning("Could not end the stream of reply %s: %r", reply.pk, error)
    return status


def _streamed_text(message_id: int) -> str:
    try:
        return streams.reply_stream_text(message_id=message_id)
    except streams.UNAVAILABLE:
        return ""


def message_prompt_text(message: Message) -> str:
    """A student's message as the tutor is given it: with the text OCR read from an
    attached image, marked off as the student's attachment (it is untrusted like the rest
    of the message), or a note that the image itself follows."""
    parts = [message.text] if message.text else []
    if message.image_text:
        parts.append(
            "[Text read by OCR from the image the student attached; it may contain "
            f'reading errors]\n"""\n{message.image_text}\n"""'
        )
    elif message.image and not message.image_ocr:
        parts.append("[The student attached an image.]")
    return "\n\n".join(parts)


def reply_write(*, claim: Claim) -> str:
    """Write a claimed reply (status ``streaming``) and return its final status; its lease
    is renewed meanwhile, so only a dead worker's reply is taken for abandoned."""
    with claim.lease() as lease:
        return _write(message_id=claim.pk, lease=lease)


def _write(*, message_id: int, lease: Lease) -> str:
    # The reply, its conversation, the learner and what the prompt says of them: one query;
    # the turns before it: one more (the fewer round trips, the sooner the first token).
    loaded = reply_for_writing(message_id=message_id)
    reply = loaded.reply
    conversation = reply.conversation
    question, earlier = reply_turns(reply=reply)
    if question is None:
        return _finish(
            reply, status=Message.Status.FAILED, error=gettext_noop("There is no question.")
        )
    try:
        # Nothing from an earlier attempt under this id may reach the reader.
        streams.reply_stream_reset(message_id=message_id)
        passages = passages_search(
            course=conversation.course,
            user=conversation.learner,
            query=question.text or question.image_text or "",
        )
        if llm_is_configured():
            return _write_online(
                reply,
                conversation=conversation,
                question=question,
                earlier=earlier,
                passages=passages,
                weak_concepts=loaded.weak_concepts,
                memories=loaded.memories,
                lease=lease,
            )
        return _write_offline(reply, conversation=conversation, passages=passages)
    except Exception:
        logger.exception("Writing reply %s failed", message_id)
        _finish(
            reply,
            status=Message.Status.FAILED,
            text=_streamed_text(message_id),
            error=LLMError.student_message,
        )
        raise


def _write_online(
    reply: Message,
    *,
    conversation: Conversation,
    question: Message,
    earlier: list[Message],
    passages: list[Passage],
    weak_concepts: Sequence[str] = (),
    memories: Sequence[str] = (),
    lease: Lease | None = None,
) -> str:
    learner = conversation.learner
    history = [
        Turn(role=m.role, text=message_prompt_text(m) if m.role == Message.Role.USER else m.text)
        for m in earlier
    ]
    try:
        context = context_build(
            course_title=conversation.course.title,
            profile=learner_profile(learner=learner, weak_concepts=weak_concepts),
            question=message_prompt_text(question),
            passages=passages,
            memories=memories,
            history=history,
            count=server_tokens_counter(),
        )
    except LLMContextExceeded as error:
        # Asking the model cannot help: the learner is told to shorten the message (which
        # stays in the conversation to copy from).
        llm_error_observed(error, prompt_version=prompt_load(TUTOR_PROMPT).version)
        logger.info("Reply %s refused: %s", reply.pk, error.detail)
        return _finish(reply, status=Message.Status.FAILED, error=str(error)[:300])
    messages: Sequence[Mapping[str, Any]] = context.messages
    if question.image and not question.image_ocr and llm_supports_images():
        with question.image.open("rb") as file:
            image = file.read()
        messages = [
            *messages[:-1],
            user_message_with_image(
                text=messages[-1]["content"], image=image, mime_type=question.image_type
            ),
        ]
    if not connection.in_atomic_block:
        # A reply streams for many seconds; holding a database connection through it would
        # cap the replies in flight at Postgres' max_connections. _finish opens a new one.
        connection.close()
    stop = _StopCheck(
        message_id=reply.pk, deadline=time.monotonic() + reply_max_seconds(), lease=lease
    )
    language = _ReplyLanguage(expected=learner.preferred_language)
    stream = chat_stream(
        messages=messages,
        prompt_version=context.prompt_version,
        should_stop=stop,
        call=LLMCallFor(
            purpose=Purpose.TUTOR,
            user_id=learner.pk,
            course_id=conversation.course_id,
            reply_language=language,
        ),
    )
    common = {
        "mode": Message.Mode.ONLINE,
        "citations": reply_citations("", context.passages),
        "prompt_version": context.prompt_version,
        "context_tokens_estimate": context.tokens_estimate,
    }
    try:
        with stream:
            writer = streams.ReplyStreamWriter(message_id=reply.pk)
            pending: list[str] = []
            flushed_at = 0.0
            for delta in stream:
                pending.append(delta)
                now = time.monotonic()
                # Deltas that arrive within FLUSH_SECONDS of the last write go together: the
                # eye cannot tell, and Redis and the page get fewer, larger events.
                if now - flushed_at >= FLUSH_SECONDS:
                    writer.append("".join(pending))
                    pending.clear()
                    flushed_at = now
            if pending:
                writer.append("".join(pending))
    except LLMError as error:
        logger.warning("Reply %s failed: %s", reply.pk, error.detail)
        partial = reply_text_clean(error.partial_text)
        return _finish(
            reply,
            status=Message.Status.FAILED,
            text=partial,
            error=str(error)[:300],
            **{**common, "citations": reply_citations(partial, context.passages)},
            **_usage_fields(error.usage),
        )
    if stop.timed_out:
        status, error_text = Message.Status.FAILED, TOO_SLOW_MESSAGE
    elif stop.stopped:
        status, error_text = Message.Status.STOPPED, ""
    else:
        status, error_text = Message.Status.DONE, ""
    text = reply_text_clean(stream.text)
    common["citations"] = reply_citations(text, context.passages)
    if status == Message.Status.DONE:
        common["check_question"] = _check_question(conversation, context.passages)
    usage = _usage_fields(stream.usage)
    if usage:
        # A weak model may answer in another language than the learner's: the turn says
        # so (and the call's ledger row, written as the stream ended).
        usage["usage"]["language"] = language.of(text)
    return _finish(reply, status=status, text=text, error=error_text, **common, **usage)


class _ReplyLanguage:
    """``LLMCallFor.reply_language`` of a tutor reply: whether the reply (cleaned as it is
    stored) is in the learner's language; the check is kept for the reply's usage record."""

    def __init__(self, *, expected: str) -> None:
        self.expected = expected
        self._checked: tuple[str, dict] | None = None

    def of(self, text: str) -> dict:
        """``reply_language`` of the cleaned reply ``text`` (checked once)."""
        if self._checked is None or self._checked[0] != text:
            self._checked = (text, reply_language(text, expected=self.expected))
        return self._checked[1]

    def __call__(self, streamed: str) -> bool | None:
        return self.of(reply_text_clean(streamed))["matches"]


def _check_question(conversation: Conversation, passages: Sequence[Passage]):
    """The teacher-approved question asked under a finished reply, on a concept its
    passages teach (None when they are untagged or have no questions)."""
    concept_ids = passage_concept_ids(chunk_ids=[p.chunk_id for p in passages])
    return check_question_for(learner=conversation.learner, concept_ids=concept_ids)


def _usage_fields(usage: Any) -> dict[str, Any]:
    if usage is None:
        return {}
    return {
        "model": usage.model,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "ttft_seconds": usage.time_to_first_token_s,
        "usage": usage.as_dict(),
    }


# --- offline ---------------------------------------------------------------------------

_DEFINITION_RE = re.compile(
    r"^(?:(?P<article>The|An?)\s+)?(?P<term>[^\W\d][\w\s()'-]{1,60}?)\s+"
    r"(?P<verb>is|are|means|refers to)\s+(?P<rest>.{8,})$",
    re.IGNORECASE,
)
_PASSIVE_RE = re.compile(r"(?:\w+ed|made|found|known|given|taken|seen|done|built)\b", re.I)
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+")
_WORD_RE = re.compile(r"[^\W\d_]{7,}")


def check_question(passage: Passage) -> str:
    """A question that checks understanding of a passage, made from its own words."""
    text = " ".join(passage.text.split())
    sentences = [s for s in _SENTENCE_RE.split(text) if len(s) > 20]
    for sentence in sentences:
        match = _DEFINITION_RE.match(sentence)
        if (
            match
            and len(match.group("term").split()) <= 5
            # "X is used to ..." describes what happens to X; it does not define it.
            and not _PASSIVE_RE.match(match.group("rest"))
        ):
            term = match.group("term")
            if match.group("article"):
                term = f"{match.group('article').lower()} {term}"
            verb = match.group("verb").lower()
            if verb in ("means", "refers to"):
                return _(
                    "In your own words, what does %(term)s mean? Check your answer against [%(n)d]."
                ) % {
                    "term": term,
                    "n": passage.n,
                }
            return _(
                "In your own words, what %(verb)s %(term)s? Check your answer against [%(n)d]."
            ) % {
                "verb": verb,
                "term": term,
                "n": passage.n,
            }
    for sentence in sentences:
        words = sorted(set(_WORD_RE.findall(sentence)), key=len, reverse=True)
        if words and len(sentence) < 300:
            blank = re.sub(rf"\b{re.escape(words[0])}\b", "_____", sentence, count=1)
            return _("Fill in the blank without looking: “%(sentence)s” Then check [%(n)d].") % {
                "sentence": blank,
                "n": passage.n,
            }
    return _("Which idea in [%(n)d] could you explain to a classmate, and how?") % {"n": passage.n}


def _quote(text: str, limit: int = 600) -> str:
    """The passage as a Markdown quote, line by line (tables and lists stay intact), cut
    at a line or word boundary after about ``limit`` characters."""
    lines: list[str] = []
    used = 0
    for line in text.strip().splitlines():
        if used + len(line) > limit:
            if not lines:
                lines.append(line[:limit].rsplit(" ", 1)[0] + " …")
            else:
                lines.append("…")
            break
        lines.append(line)
        used += len(line)
    return "\n".join(f"> {line}".rstrip() for line in lines)


def offline_reply_text(*, passages: list[Passage]) -> str:
    """The offline reply: the best passages, cited, and a check question from them."""
    if not passages:
        return _(
            "The tutor is offline (no language model is configured), and the course material "
            "does not seem to cover this. Try other words, or ask your teacher."
        )
    parts = [
        _(
            "The tutor is offline (no language model is configured), so here are the passages "
            "of the course material that match your message best."
        )
    ]
    for passage in passages[:OFFLINE_PASSAGES]:
        parts.append(f"**{passage.source}** [{passage.n}]\n\n{_quote(passage.text)}")
    question = check_question(passages[0])
    parts.append(_("**Check your understanding:** %(question)s") % {"question": question})
    return "\n\n".join(parts)


def _write_offline(reply: Message, *, conversation: Conversation, passages: list[Passage]) -> str:
    with translation.override(conversation.learner.preferred_language):
        text = offline_reply_text(passages=passages)
    streams.reply_stream_append(message_id=reply.pk, text=text)
    return _finish(
        reply,
        status=Message.Status.DONE,
        text=text,
        mode=Message.Mode.OFFLINE,
        citations=[p.citation() for p in passages[:OFFLINE_PASSAGES]],
        prompt_version=OFFLINE_PROMPT_VERSION,
        check_question=_check_question(conversation, passages[:OFFLINE_PASSAGES]),
    )


# --- memory ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Summary:
    text: str
    model: str = ""
    prompt_version: str = ""
    usage: dict[str, Any] = dataclasses.field(default_factory=dict)


# The notes are plain text, not JSON: a small model asked for a JSON string ran to its
# token limit inside it (the reply was then unusable), while plain text cut at the limit is
# still notes. They are cut to MEMORY_SUMMARY_CHARS here.
MEMORY_SUMMARY_CHARS = 800
MEMORY_INPUT_TOKENS = 3000
MEMORY_ANSWER_TOKENS = 300


def _memory_offline(questions: list[str]) -> Summary:
    """What was asked, in the learner's words: the memory when no model can write one."""
    shown = [" ".join(q.split())[:120] for q in questions[-5:]]
    return Summary(text="Asked about: " + "; ".join(shown), prompt_version="memory_offline.v1")


def conversation_summarize(*, conversation: Conversation) -> Summary | None:
    """A short summary of a session for later ones; None when there is nothing to keep.

    When the model cannot write it (unreachable, refusing, unusable answers) the memory
    is the offline one, and the failure a log line: a session's end never fails.
    """
    turns = [
        m
        for m in conversation.messages.order_by("pk")
        if m.text.strip() and m.status != Message.Status.FAILED
    ]
    questions = [m.text for m in turns if m.role == Message.Role.USER]
    if not questions:
        return None
    if not llm_is_configured() or ai_budget_reached(
        user=conversation.learner, course=conversation.course
    ):
        # No model to summarise with (or none for this learner today).
        return _memory_offline(questions)
    prompt = prompt_load(MEMORY_PROMPT)
    # The transcript's room: at most MEMORY_INPUT_TOKENS, and what the model's context
    # leaves (estimated high: non-ASCII text counts a token per byte).
    budget = min(
        MEMORY_INPUT_TOKENS,
        llm_context_tokens() - MEMORY_ANSWER_TOKENS - tokens_estimate(prompt.text) - 64,
    )
    lines: list[str] = []
    for message in reversed(turns):
        line = f"{message.role}: {untrusted(message.text)}"
        budget -= tokens_estimate(line)
        if budget < 0:
            break
        lines.append(line)
    transcript = "\n\n".join(reversed(lines))
    try:
        stream = chat_stream(
            messages=[
                {"role": "system", "content": prompt.text},
                {"role": "user", "content": f"<conversation>\n{transcript}\n</conversation>"},
            ],
            prompt_version=prompt.version,
            max_tokens=MEMORY_ANSWER_TOKENS,
            call=LLMCallFor(
                purpose=Purpose.MEMORY,
                user_id=conversation.learner_id,
                course_id=conversation.course_id,
            ),
        )
        written = "".join(stream)
    except LLMError as error:
        logger.warning(
            "The memory of conversation %s is the offline one: the model could not write it "
            "(%s: %s)",
            conversation.pk,
            type(error).__name__,
            error.detail,
        )
        return _memory_offline(questions)
    text = reply_text_clean(written.strip())[:MEMORY_SUMMARY_CHARS].strip()
    if not text:
        return _memory_offline(questions)
    usage = stream.usage  # set once the stream is read to its end
    return Summary(
        text=text,
        model=usage.model if usage else "",
        prompt_version=prompt.version,
        usage=usage.as_dict() if usage else {},
    )
