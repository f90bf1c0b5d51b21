"""Pages of tutoring conversations (htmx) and the server-sent event stream of a reply.

Every page is for members of the course (others get 404), and a conversation is its
learner's alone. Forms work without JavaScript (post, then redirect); with htmx the same
views answer with the named partial of ``tutor/conversation.html``.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import connection
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseForbidden,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget

from ai.llm import llm_supports_images
from config.markdown import reply_html
from learners.consent import ai_access
from learners.http import UserRequest
from learners.models import Course
from learners.selectors import course_for_member
from tutor import conversations, images, streams
from tutor.conversation_selectors import (
    conversation_for_learner,
    conversation_latest,
    conversation_messages,
    conversation_of_member,
    conversations_of_learner,
    memories_of_learner,
    reply_for_learner,
    reply_for_learner_async,
)
from tutor.models import Conversation, Message

PAGE = "tutor/conversation.html"
SIDEBAR_CONVERSATIONS = 20
_STREAM_ID_RE = re.compile(r"\d{1,20}-\d{1,20}")


def _prepare(message: Message) -> Message:
    """Attach what the message partial shows: safe HTML of a reply, or the text streamed
    so far and where its reader should resume."""
    if message.role == Message.Role.ASSISTANT:
        if message.is_unfinished:
            try:
                message.streamed_text, message.stream_after = streams.reply_stream_snapshot(
                    message_id=message.pk
                )
            except streams.UNAVAILABLE:
                # Redis is away: the page's reader replays the stream once it is back.
                message.streamed_text, message.stream_after = "", streams.START
        else:
            message.html = reply_html(text=message.text, citations=message.citations)
    return message


def _sidebar(request: UserRequest, course: Course) -> list[Conversation]:
    # The list shows titles and links only.
    conversations = conversations_of_learner(user=request.user, course=course).only("title")
    return list(conversations[:SIDEBAR_CONVERSATIONS])


def _page(
    request: UserRequest,
    course: Course,
    conversation: Conversation | None,
    *,
    error: str = "",
    draft: str = "",
    status: int = 200,
) -> HttpResponse:
    if conversation is not None:
        # Replies whose worker died are failed by the recovery sweep (config/recovery.py),
        # not here: a GET writes nothing.
        rows = [_prepare(m) for m in conversation_messages(conversation=conversation)]
    else:
        rows = []
    context = {
        "course": course,
        "conversation": conversation,
        "messages_list": rows,
        "conversations": _sidebar(request, course),
        "error": error,
        "draft": draft,
        "message_max_chars": conversations.MESSAGE_MAX_CHARS,
        "access": ai_access(user=request.user, course=course),
    }
    return render(request, PAGE, context, status=status)


@require_GET
@login_required
def tutor_page(request: UserRequest, course_id: int) -> HttpResponse:
    """The tutor of a course: the learner's latest conversation, or an empty one to start."""
    course = course_for_member(user=request.user, course_id=course_id)
    return _page(request, course, conversation_latest(user=request.user, course=course))


@require_GET
@login_required
def conversation_detail(request: UserRequest, course_id: int, conversation_id: int) -> HttpResponse:
    course = course_for_member(user=request.user, course_id=course_id)
    conversation = conversation_for_learner(
        user=request.user, course=course, conversation_id=conversation_id
    )
    return _page(request, course, conversation)


@require_POST
@login_required
def conversation_new(request: UserRequest, course_id: int) -> HttpResponse:
    course = course_for_member(user=request.user, course_id=course_id)
    conversation = conversations.conversation_start(course=course, learner=request.user)
    return redirect("conversations:detail", course_id=course.pk, conversation_id=conversation.pk)


@require_POST
@login_required
def message_create(request: UserRequest, course_id: int) -> HttpResponse:
    text = request.POST.get("text", "")
    image = request.FILES.get("image")
    # The OCR text the student saw, and maybe corrected, in the composer (image_text_view).
    image_text = request.POST.get("image_text") if image is not None else None
    conversation_id = request.POST.get("conversation", "")
    conversation = None
    if conversation_id.isdigit():
        # The course comes with it: one query for both, 404 for either.
        conversation = conversation_of_member(
            user=request.user, course_id=course_id, conversation_id=int(conversation_id)
        )
        course = conversation.course
    else:
        course = course_for_member(user=request.user, course_id=course_id)
    started = conversation is None
    try:
        if conversation is None:
            # Validate before creating anything, so an empty first message leaves no trace.
            conversations.tutor_access_check(learner=request.user, course=course)
            conversations.message_validate(text=text, image=image)
            conversation = conversations.conversation_start(course=course, learner=request.user)
        question, reply = conversations.message_post(
            conversation=conversation,
            learner=request.user,
            text=text,
            image=image,
            image_text=image_text,
        )
    except ValidationError as error:
        message = " ".join(error.messages)
        if request.htmx:
            response = render(
                request,
                PAGE + "#composer",
                {
                    "course": course,
                    "conversation": conversation,
                    "error": message,
                    "draft": text,
                    "message_max_chars": conversations.MESSAGE_MAX_CHARS,
                },
            )
            return reswap(retarget(response, "#composer"), "outerHTML")
        status = 429 if getattr(error, "code", None) == "ai_budget" else 400
        return _page(request, course, conversation, error=message, draft=text, status=status)
    detail = reverse(
        "conversations:detail", kwargs={"course_id": course.pk, "conversation_id": conversation.pk}
    )
    if not request.htmx:
        return redirect(detail)
    if started:
        return HttpResponseClientRedirect(detail)
    return render(
        request,
        PAGE + "#turn",
        {
            "course": course,
            "conversation": conversation,
            "turn": [question, _prepare(reply)],
            "message_max_chars": conversations.MESSAGE_MAX_CHARS,
            # The sidebar again: the first message may just have given the conversation
            # its title.
            "conversations": _sidebar(request, course),
        },
    )


@require_POST
@login_required
def image_text_view(request: UserRequest, course_id: int) -> HttpResponse:
    """What the tutor will read from a photo the student is about to send: OCR's text in an
    editable field of the composer, so the student can correct it before it is used (or a
    note that the model looks at the image itself). Nothing is stored."""
    course = course_for_member(user=request.user, course_id=course_id)
    image = request.FILES.get("image")
    context = {"course": course, "message_max_chars": conversations.MESSAGE_MAX_CHARS}
    try:
        conversations.tutor_access_check(learner=request.user, course=course)
        if image is None:
            raise ValidationError(_("Choose an image first."), code="empty")
        checked = images.image_check(file=image)
    except ValidationError as error:
        context["image_error"] = " ".join(error.messages)
        # htmx swaps only successful answers; without it the form's post is refused.
        return render(request, PAGE + "#image-text", context, status=200 if request.htmx else 400)
    if llm_supports_images():
        context["image_seen"] = True
    else:
        context["image_text"] = images.image_text_read(data=checked.data)
        context["image_read"] = True
    return render(request, PAGE + "#image-text", context)


def _reply_or_404(request: UserRequest, course_id: int, message_id: int) -> tuple[Course, Message]:
    course = course_for_member(user=request.user, course_id=course_id)
    return course, reply_for_learner(user=request.user, course=course, message_id=message_id)


def _back_to(reply: Message) -> HttpResponse:
    return redirect(
        reverse(
            "conversations:detail",
            kwargs={
                "course_id": reply.conversation.course_id,
                "conversation_id": reply.conversation_id,
            },
        )
        + f"#message-{reply.pk}"
    )


def _message_partial(
    request: UserRequest, course: Course, reply: Message, *, just_finished: bool = False
) -> HttpResponse:
    return render(
        request,
        PAGE + "#message",
        {"course": course, "message": _prepare(reply), "just_finished": just_finished},
    )


@require_GET
@login_required
def reply_detail(request: UserRequest, course_id: int, message_id: int) -> HttpResponse:
    """One reply as the message partial (the page swaps it in when its stream ends)."""
    course, reply = _reply_or_404(request, course_id, message_id)
    if not request.htmx:
        return _back_to(reply)
    # Fetched when the reply's stream ends: read it aloud if the learner asked for that.
    return _message_partial(request, course, reply, just_finished=not reply.is_unfinished)


@require_POST
@login_required
def reply_stop_view(request: UserRequest, course_id: int, message_id: int) -> HttpResponse:
    _course, reply = _reply_or_404(request, course_id, message_id)
    conversations.reply_stop(reply=reply, learner=request.user)
    if request.htmx:
        return HttpResponse(status=204)
    return _back_to(reply)


@require_POST
@login_required
def reply_retry_view(request: UserRequest, course_id: int, message_id: int) -> HttpResponse:
    course, reply = _reply_or_404(request, course_id, message_id)
    try:
        reply = conversations.reply_retry(reply=reply, learner=request.user)
    except ValidationError as error:
        flash.error(request, " ".join(error.messages))
    if request.htmx:
        return _message_partial(request, course, reply)
    return _back_to(reply)


@require_POST
@login_required
def feedback_create(request: UserRequest, course_id: int, message_id: int) -> HttpResponse:
    course, reply = _reply_or_404(request, course_id, message_id)
    rating = {"up": 1, "down": -1}.get(request.POST.get("rating", ""))
    error = ""
    try:
        if rating is None:
            raise ValidationError(_("Choose thumbs up or thumbs down."))
        conversations.feedback_record(
            reply=reply,
            learner=request.user,
            rating=rating,
            comment=request.POST.get("comment", ""),
        )
    except ValidationError as exc:
        error = " ".join(exc.messages)
    reply = reply_for_learner(user=request.user, course=course, message_id=message_id)
    if request.htmx:
        return render(
            request,
            PAGE + "#feedback",
            {
                "course": course,
                "message": reply,
                "feedback_error": error,
                "feedback_saved": not error,
            },
        )
    if error:
        flash.error(request, error)
    else:
        flash.success(request, _("Thank you for rating the reply."))
    return _back_to(reply)


# --- the stream of a reply (async: one connection holds no thread) ---------------------


def _sse(event: str, data: dict, *, event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data)}\n\n"


@sync_to_async
def _release_connection() -> None:
    """Close this request's database connection: a stream lasts as long as the reply, and
    holding a connection through each would cap the open streams at max_connections."""
    if not connection.in_atomic_block:
        connection.close()


async def _reply_events(message_id: int, after: str) -> AsyncIterator[str]:
    # Browsers reconnect after this many ms when the connection drops, sending the last id.
    yield "retry: 1500\n\n"
    try:
        async for chunk in _relay(message_id, after):
            yield chunk
    except streams.UNAVAILABLE:
        # Redis is away. A reply that ended meanwhile is fetched from the database;
        # otherwise this response ends and the browser reconnects, resuming from the last
        # id it saw once Redis answers again.
        status = await _stored_status(message_id)
        if status is None or status in Message.FINISHED:
            yield _sse("end", {"status": status or Message.Status.FAILED})
        else:
            yield ": the reply stream is unavailable; reconnecting\n\n"


async def _stored_status(message_id: int) -> str | None:
    rows = Message.objects.filter(pk=message_id).values_list("status", flat=True)
    status = await rows.afirst()
    await _release_connection()
    return status


async def _relay(message_id: int, after: str) -> AsyncIterator[str]:
    # The events one read found together go out as one write (a busy process reads several).
    async for batch in streams.reply_stream_batches(message_id=message_id, after=after):
        if batch is None:
            status = await _stored_status(message_id)
            if status is None or status in Message.FINISHED:
                # Finished, but its stream has expired or was never written (stopped while
                # waiting on a worker that lost it): the page fetches the stored reply.
                yield _sse("end", {"status": status or Message.Status.FAILED})
                return
            yield ": waiting\n\n"
            continue
        yield "".join(
            _sse("end", {"status": event.status}, event_id=event.id)
            if event.kind == streams.KIND_END
            else _sse("token", {"text": event.text}, event_id=event.id)
            for event in batch
        )
        if batch[-1].kind == streams.KIND_END:
            return


@require_GET
async def reply_stream(
    request: HttpRequest, course_id: int, message_id: int
) -> HttpResponse | StreamingHttpResponse:
    """Server-sent events of a reply being written: ``token`` events with text, then one
    ``end`` event with the final status. Resumes after ``Last-Event-ID`` (sent by the
    browser when it reconnects) or ``?after=`` (the page's snapshot), else from the start."""
    user = await request.auser()
    if not user.is_authenticated:
        return HttpResponseForbidden()
    reply = await reply_for_learner_async(user=user, course_id=course_id, message_id=message_id)
    if reply is None:
        raise Http404
    after = request.headers.get("Last-Event-ID") or request.GET.get("after") or streams.START
    if not _STREAM_ID_RE.fullmatch(after):
        after = streams.START
    await _release_connection()
    if reply.status in Message.FINISHED and after == streams.START:
        events: AsyncIterator[str] = _finished_events(reply.status)
    else:
        events = _reply_events(reply.pk, after)
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    # Proxies such as nginx would otherwise hold the events back in a buffer.
    response["X-Accel-Buffering"] = "no"
    return response


async def _finished_events(status: str) -> AsyncIterator[str]:
    yield _sse("end", {"status": status})


@require_POST
@login_required
def check_answer_view(request: UserRequest, course_id: int, message_id: int) -> HttpResponse:
    """The learner's answer to the check question under a reply: checked, recorded as
    evidence of mastery, and the question's part of the reply shown with the outcome."""
    course, reply = _reply_or_404(request, course_id, message_id)
    answer = request.POST.get("answer", "")
    error = ""
    try:
        conversations.reply_check_answer(reply=reply, learner=request.user, answer=answer)
    except ValidationError as exc:
        error = " ".join(exc.messages)
    reply = reply_for_learner(user=request.user, course=course, message_id=message_id)
    if request.htmx:
        context = {"course": course, "message": reply, "check_error": error, "draft": answer}
        return render(request, PAGE + "#check", context)
    if error:
        flash.error(request, error)
    return _back_to(reply)


# --- memories --------------------------------------------------------------------------


@require_GET
@login_required
def memories_page(request: UserRequest, course_id: int) -> HttpResponse:
    course = course_for_member(user=request.user, course_id=course_id)
    return render(
        request,
        "tutor/conversation_memories.html",
        {"course": course, "memories": memories_of_learner(user=request.user, course=course)},
    )


@require_POST
@login_required
def memory_delete_view(request: UserRequest, course_id: int, memory_id: int) -> HttpResponse:
    course = course_for_member(user=request.user, course_id=course_id)
    memory = get_object_or_404(memories_of_learner(user=request.user, course=course), pk=memory_id)
    conversations.memory_delete(memory=memory, learner=request.user)
    flash.success(request, _("The tutor has forgotten that session."))
    return redirect("conversations:memories", course_id=course.pk)


@require_POST
@login_required
def memories_delete_all_view(request: UserRequest, course_id: int) -> HttpResponse:
    course = course_for_member(user=request.user, course_id=course_id)
    conversations.memories_delete_all(course=course, learner=request.user)
    flash.success(request, _("The tutor has forgotten all your sessions in this course."))
    return redirect("conversations:memories", course_id=course.pk)
