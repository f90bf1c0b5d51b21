"""Pages of tutoring conversations, under each course (``conversations:`` names)."""

from django.urls import path

from tutor import conversation_api as api
from tutor import conversation_views as views

app_name = "conversations"

_REPLY = "courses/<int:course_id>/tutor/replies/<int:message_id>/"
_API = "api/courses/<int:course_id>/tutor/"

urlpatterns = [
    path("courses/<int:course_id>/tutor/", views.tutor_page, name="tutor"),
    path(
        "courses/<int:course_id>/tutor/conversations/new/",
        views.conversation_new,
        name="new",
    ),
    path(
        "courses/<int:course_id>/tutor/conversations/<int:conversation_id>/",
        views.conversation_detail,
        name="detail",
    ),
    path("courses/<int:course_id>/tutor/messages/", views.message_create, name="post"),
    path("courses/<int:course_id>/tutor/image-text/", views.image_text_view, name="image-text"),
    path(_REPLY, views.reply_detail, name="reply"),
    path(_REPLY + "stream/", views.reply_stream, name="stream"),
    path(_REPLY + "stop/", views.reply_stop_view, name="stop"),
    path(_REPLY + "retry/", views.reply_retry_view, name="retry"),
    path(_REPLY + "feedback/", views.feedback_create, name="feedback"),
    path(_REPLY + "check/", views.check_answer_view, name="check"),
    path("courses/<int:course_id>/tutor/memories/", views.memories_page, name="memories"),
    path(
        "courses/<int:course_id>/tutor/memories/<int:memory_id>/delete/",
        views.memory_delete_view,
        name="memory-delete",
    ),
    path(
        "courses/<int:course_id>/tutor/memories/delete/",
        views.memories_delete_all_view,
        name="memories-delete-all",
    ),
    # --- REST API (tutor/conversation_api.py)
    path(_API + "conversations", api.ConversationListView.as_view(), name="api-conversations"),
    path(
        _API + "conversations/<int:conversation_id>",
        api.ConversationDetailView.as_view(),
        name="api-conversation",
    ),
    path(_API + "messages", api.MessagePostView.as_view(), name="api-post"),
    path(_API + "replies/<int:message_id>", api.ReplyDetailView.as_view(), name="api-reply"),
    path(_API + "replies/<int:message_id>/stop", api.ReplyStopView.as_view(), name="api-stop"),
    path(_API + "replies/<int:message_id>/retry", api.ReplyRetryView.as_view(), name="api-retry"),
    path(
        _API + "replies/<int:message_id>/feedback",
        api.ReplyFeedbackView.as_view(),
        name="api-feedback",
    ),
    path(_API + "memories", api.MemoryListView.as_view(), name="api-memories"),
    path(_API + "memories/<int:memory_id>", api.MemoryDetailView.as_view(), name="api-memory"),
]
