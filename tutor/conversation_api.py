"""REST endpoints of tutoring conversations: what the tutor pages do, as JSON.

A reply is written in the background: posting a message answers at once with the pending
reply and the URL of its server-sent event stream (the same stream the page reads); poll
the reply, or read the stream, until its status is final.
"""

from __future__ import annotations

from django.db import transaction
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api_fields import StrictCharField, StrictChoiceField, StrictIntegerField, not_blank
from config.openapi import ErrorSerializer
from learners.http import UserApiRequest
from learners.selectors import course_for_member
from tutor import conversations
from tutor.conversation_selectors import (
    conversation_for_learner,
    conversation_messages,
    conversations_of_learner,
    memories_of_learner,
    reply_for_learner,
)
from tutor.models import Conversation, Memory, Message

# --- serializers -----------------------------------------------------------------------


class CitationSerializer(serializers.Serializer):
    n = serializers.IntegerField()
    chunk_id = serializers.IntegerField(allow_null=True)
    title = serializers.CharField()
    section = serializers.CharField(allow_blank=True)
    page = serializers.IntegerField(allow_null=True)
    url = serializers.CharField()
    excerpt = serializers.CharField()
    # The stubs see Field.label (its display name) here; DRF's metaclass takes declared
    # fields off the class, so at run time this is a field like the others.
    label = serializers.CharField(required=False)  # type: ignore[assignment]
    # False: the reply cites none of the passages; they are related passages, not sources.
    cited = serializers.BooleanField(required=False)


class FeedbackSerializer(serializers.Serializer):
    rating = StrictChoiceField(choices=[1, -1])
    comment = StrictCharField(
        required=False, allow_blank=True, max_length=conversations.COMMENT_MAX_CHARS
    )


class MessageSerializer(serializers.ModelSerializer):
    # Blank on the learner's own messages and on replies not yet written.
    mode = serializers.ChoiceField(choices=Message.Mode.choices, allow_blank=True, read_only=True)
    citations = CitationSerializer(many=True, read_only=True)
    feedback = serializers.SerializerMethodField()
    stream_url = serializers.SerializerMethodField()

    class Meta:
        model = Message
        fields = [
            "id",
            "role",
            "text",
            "status",
            "error",
            "mode",
            "citations",
            "model",
            "prompt_version",
            "prompt_tokens",
            "completion_tokens",
            "ttft_seconds",
            "created",
            "finished",
            "feedback",
            "stream_url",
        ]
        read_only_fields = fields

    @extend_schema_field(FeedbackSerializer(allow_null=True))
    def get_feedback(self, message: Message) -> dict | None:
        feedback = getattr(message, "feedback", None)
        return FeedbackSerializer(feedback).data if feedback is not None else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_stream_url(self, message: Message) -> str | None:
        if not (message.is_assistant and message.is_unfinished):
            return None
        course_id = self.context["course_id"]
        return reverse("conversations:stream", args=[course_id, message.pk])


class ConversationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Conversation
        fields = ["id", "title", "created", "updated"]
        read_only_fields = fields


class ConversationDetailSerializer(ConversationSerializer):
    messages = serializers.SerializerMethodField()

    class Meta(ConversationSerializer.Meta):
        fields = [*ConversationSerializer.Meta.fields, "messages"]
        read_only_fields = fields

    @extend_schema_field(MessageSerializer(many=True))
    def get_messages(self, conversation: Conversation) -> list[dict]:
        rows = conversation_messages(conversation=conversation)
        # many=True makes a ListSerializer, whose data is a list; the stubs say a dict.
        return MessageSerializer(rows, many=True, context=self.context).data  # type: ignore[return-value]


class MessagePostSerializer(serializers.Serializer):
    # The service strips the text and refuses it empty; say so in the schema too.
    text = StrictCharField(
        trim_whitespace=False,
        max_length=conversations.MESSAGE_MAX_CHARS,
        validators=[not_blank(_("Write a message first."))],
    )
    conversation = StrictIntegerField(
        required=False, help_text="Continue this conversation; without it a new one starts."
    )


class TurnSerializer(serializers.Serializer):
    conversation = ConversationSerializer()
    question = MessageSerializer()
    reply = MessageSerializer()


class MemorySerializer(serializers.ModelSerializer):
    class Meta:
        model = Memory
        fields = ["id", "summary", "conversation", "created"]
        read_only_fields = fields


# --- views -----------------------------------------------------------------------------


class ConversationListView(APIView):
    @extend_schema(responses=ConversationSerializer(many=True))
    def get(self, request: UserApiRequest, course_id: int) -> Response:
        """The learner's own conversations in the course, newest first."""
        course = course_for_member(user=request.user, course_id=course_id)
        rows = conversations_of_learner(user=request.user, course=course)
        return Response(ConversationSerializer(rows, many=True).data)


class ConversationDetailView(APIView):
    @extend_schema(responses=ConversationDetailSerializer)
    def get(self, request: UserApiRequest, course_id: int, conversation_id: int) -> Response:
        """One of the learner's conversations with its messages."""
        course = course_for_member(user=request.user, course_id=course_id)
        conversation = conversation_for_learner(
            user=request.user, course=course, conversation_id=conversation_id
        )
        data = ConversationDetailSerializer(conversation, context={"course_id": course.pk}).data
        return Response(data)


class MessagePostView(APIView):
    @extend_schema(
        request=MessagePostSerializer,
        responses={201: TurnSerializer, 409: ErrorSerializer, 429: ErrorSerializer},
    )
    def post(self, request: UserApiRequest, course_id: int) -> Response:
        """Post a message; the tutor's reply is written in the background (follow its
        ``stream_url`` or poll it). 400 for an empty or too long message; 403
        without the consent the course needs; 409 while the previous reply is still being
        written; 429 once today's AI token budget is used up (the message is not stored)."""
        course = course_for_member(user=request.user, course_id=course_id)
        incoming = MessagePostSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        conversation = None
        if "conversation" in incoming.validated_data:
            conversation = conversation_for_learner(
                user=request.user,
                course=course,
                conversation_id=incoming.validated_data["conversation"],
            )
        text = incoming.validated_data["text"]
        with transaction.atomic():
            if conversation is None:
                conversations.tutor_access_check(learner=request.user, course=course)
                conversations.message_validate(text=text)
                conversation = conversations.conversation_start(course=course, learner=request.user)
            question, reply = conversations.message_post(
                conversation=conversation, learner=request.user, text=text
            )
        conversation.refresh_from_db()
        context = {"course_id": course.pk}
        data = {
            "conversation": ConversationSerializer(conversation).data,
            "question": MessageSerializer(question, context=context).data,
            "reply": MessageSerializer(reply, context=context).data,
        }
        return Response(data, status=status.HTTP_201_CREATED)


class ReplyDetailView(APIView):
    @extend_schema(responses=MessageSerializer)
    def get(self, request: UserApiRequest, course_id: int, message_id: int) -> Response:
        """One tutor reply: its status, text so far once final, citations and usage."""
        course = course_for_member(user=request.user, course_id=course_id)
        reply = reply_for_learner(user=request.user, course=course, message_id=message_id)
        return Response(MessageSerializer(reply, context={"course_id": course.pk}).data)


class ReplyStopView(APIView):
    @extend_schema(request=None, responses={202: None})
    def post(self, request: UserApiRequest, course_id: int, message_id: int) -> Response:
        """Ask a reply to stop; what it wrote so far is kept and its status becomes
        ``stopped``."""
        course = course_for_member(user=request.user, course_id=course_id)
        reply = reply_for_learner(user=request.user, course=course, message_id=message_id)
        conversations.reply_stop(reply=reply, learner=request.user)
        return Response(status=status.HTTP_202_ACCEPTED)


class ReplyRetryView(APIView):
    @extend_schema(
        request=None,
        responses={202: MessageSerializer, 409: ErrorSerializer, 429: ErrorSerializer},
    )
    def post(self, request: UserApiRequest, course_id: int, message_id: int) -> Response:
        """Write a failed or stopped reply again; 409 for any other, 429 once today's AI
        token budget is used up."""
        course = course_for_member(user=request.user, course_id=course_id)
        reply = reply_for_learner(user=request.user, course=course, message_id=message_id)
        reply = conversations.reply_retry(reply=reply, learner=request.user)
        data = MessageSerializer(reply, context={"course_id": course.pk}).data
        return Response(data, status=status.HTTP_202_ACCEPTED)


class ReplyFeedbackView(APIView):
    @extend_schema(
        request=FeedbackSerializer, responses={200: FeedbackSerializer, 409: ErrorSerializer}
    )
    def put(self, request: UserApiRequest, course_id: int, message_id: int) -> Response:
        """Rate a finished reply +1 or -1, with an optional comment; rating again
        replaces the earlier rating. 409 while the reply is not finished."""
        course = course_for_member(user=request.user, course_id=course_id)
        reply = reply_for_learner(user=request.user, course=course, message_id=message_id)
        incoming = FeedbackSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        feedback = conversations.feedback_record(
            reply=reply,
            learner=request.user,
            rating=incoming.validated_data["rating"],
            comment=incoming.validated_data.get("comment", ""),
        )
        return Response(FeedbackSerializer(feedback).data)


class MemoryListView(APIView):
    @extend_schema(responses=MemorySerializer(many=True))
    def get(self, request: UserApiRequest, course_id: int) -> Response:
        """What the tutor remembers of the learner's earlier sessions in the course."""
        course = course_for_member(user=request.user, course_id=course_id)
        rows = memories_of_learner(user=request.user, course=course)
        return Response(MemorySerializer(rows, many=True).data)

    @extend_schema(responses={204: None}, operation_id="tutor_memories_delete_all")
    def delete(self, request: UserApiRequest, course_id: int) -> Response:
        """Forget all of them."""
        course = course_for_member(user=request.user, course_id=course_id)
        conversations.memories_delete_all(course=course, learner=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemoryDetailView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: UserApiRequest, course_id: int, memory_id: int) -> Response:
        """Forget one session."""
        course = course_for_member(user=request.user, course_id=course_id)
        rows = memories_of_learner(user=request.user, course=course)
        memory = get_object_or_404(rows, pk=memory_id)
        conversations.memory_delete(memory=memory, learner=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
