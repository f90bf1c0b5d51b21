"""Database sessions (``SESSION_ENGINE``), read with one plain query.

Every signed-in request reads its session. Django's database store builds that read
with the ORM, whose query compilation cost more CPU than the query itself (about 1.3 ms
against 0.3 ms for the same SELECT as plain SQL, measured on the benchmark's database;
issue 19: pages under 200 users on two cores). Everything else is Django's store: the
same table, the same expiry rule (a row past ``expire_date`` is no session), writes,
deletes (logout) and ``clearsessions`` through the ORM, so a deleted session is gone at
once, as before; nothing is cached anywhere else.
"""

from __future__ import annotations

from django.contrib.sessions.backends import db
from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import connections, router
from django.utils import timezone


class SessionStore(db.SessionStore):
    def _get_session_from_db(self) -> AbstractBaseSession | None:
        key = self.session_key
        if key is None:
            return None
        model = self.model
        using = router.db_for_read(model)
        connection = connections[using]
        table = connection.ops.quote_name(model._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT session_data, expire_date FROM {table}"  # noqa: S608 - our table name
                " WHERE session_key = %s AND expire_date > %s",
                [key, timezone.now()],
            )
            row = cursor.fetchone()
        if row is None:
            self._session_key = None  # as Django's store: a new session if one is saved
            return None
        session = model(session_key=key, session_data=row[0], expire_date=row[1])
        session._state.adding = False
        session._state.db = using
        return session
