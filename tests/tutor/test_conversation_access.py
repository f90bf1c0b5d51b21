"""Who may use which tutor route: the conversation rows of the authorization matrix.

A conversation, its replies and memories are their learner's alone: even the course's
teacher or a site admin gets 404 for them. POSTs with an empty body are refused or
redirect, never a 2xx. ``tests/trust/test_authorization_matrix.py`` merges ``ROUTES`` into
its one table and checks every role against it.
"""

from __future__ import annotations

from django.urls import URLPattern, get_resolver

ROLES = ("anonymous", "student", "other_student", "teacher", "other_teacher", "admin")
MEMBERS = frozenset({"student", "teacher", "admin"})
OWNER = frozenset({"student"})
NOBODY = frozenset()
_T = "courses/<int:course_id>/tutor/"
_R = _T + "replies/<int:message_id>/"
_A = "api/" + _T

ROUTES = {
    _T: {"GET": MEMBERS},
    _T + "conversations/new/": {"POST": NOBODY},  # redirects to the new conversation
    _T + "conversations/<int:conversation_id>/": {"GET": OWNER},
    _T + "messages/": {"POST": NOBODY},  # an empty message: 400 for members
    _T + "image-text/": {"POST": NOBODY},  # no image: 400 for members
    _R: {"GET": NOBODY},  # a redirect to the conversation, the partial with htmx
    _R + "stream/": {"GET": OWNER},
    _R + "stop/": {"POST": NOBODY},
    _R + "retry/": {"POST": NOBODY},
    _R + "feedback/": {"POST": NOBODY},
    _R + "check/": {"POST": NOBODY},  # no question under the reply: 400 for its learner
    _T + "memories/": {"GET": MEMBERS},
    _T + "memories/<int:memory_id>/delete/": {"POST": NOBODY},
    _T + "memories/delete/": {"POST": NOBODY},
    # --- the REST API
    _A + "conversations": {"GET": MEMBERS},
    _A + "conversations/<int:conversation_id>": {"GET": OWNER},
    _A + "messages": {"POST": NOBODY},  # an empty body: 400
    _A + "replies/<int:message_id>": {"GET": OWNER},
    _A + "replies/<int:message_id>/stop": {"POST": OWNER},
    _A + "replies/<int:message_id>/retry": {"POST": NOBODY},  # a finished reply: 400
    _A + "replies/<int:message_id>/feedback": {"PUT": NOBODY},  # an empty body: 400
    _A + "memories": {"GET": MEMBERS, "DELETE": MEMBERS},  # one's own memories only
    _A + "memories/<int:memory_id>": {"DELETE": OWNER},
}


def test_the_table_names_every_conversation_route():
    resolver = get_resolver()
    routes = {
        str(p.pattern)
        for r in resolver.url_patterns
        if getattr(r, "namespace", None) == "conversations"
        for p in r.url_patterns
        if isinstance(p, URLPattern)
    }
    assert routes == set(ROUTES)
