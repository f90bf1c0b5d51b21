"""Enrol a class from a CSV file: a preview that names every problem, then all or nothing.

The file has a header row naming its columns: ``username`` and/or ``email`` (at least one
identifies each person), ``name`` and ``role`` (student or teacher). A person the site
does not know yet gets an account without a password and an email with a link to choose
one (``learners.accounts``). Nothing is written until every row is clean, and the import
checks the file again inside its transaction, so what the preview promised is what
happens — or nothing does.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from django.contrib.auth.hashers import make_password
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.utils.translation import gettext as _

from learners.models import AuditEvent, Course, Membership, User

ENROLMENT_CSV_MAX_BYTES = 1024 * 1024
ENROLMENT_CSV_MAX_ROWS = 2000
NAME_MAX_CHARS = 150

# Header spellings people's spreadsheets use, to the column they mean.
_COLUMNS = {
    "username": "username",
    "user name": "username",
    "login": "username",
    "email": "email",
    "e-mail": "email",
    "email address": "email",
    "name": "name",
    "full name": "name",
    "display name": "name",
    "role": "role",
}
_ROLES = {
    "student": Membership.Role.STUDENT,
    "students": Membership.Role.STUDENT,
    "learner": Membership.Role.STUDENT,
    "teacher": Membership.Role.TEACHER,
    "teachers": Membership.Role.TEACHER,
}


class EnrolmentNotClean(Exception):
    """The file changed meaning between preview and import (or was never clean)."""

    def __init__(self, preview: EnrolmentPreview):
        super().__init__("the enrolment file has problems")
        self.preview = preview


@dataclass
class EnrolmentRow:
    line: int
    username: str = ""
    email: str = ""
    name: str = ""
    role: str = ""
    user: User | None = None
    current_role: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def action(self) -> str:
        """What the import will do: create, enrol, change_role or nothing."""
        if self.user is None:
            return "create"
        if self.current_role is None:
            return "enrol"
        if self.current_role != self.role:
            return "change_role"
        return "nothing"

    @property
    def action_label(self) -> str:
        return {
            "create": _("New account, enrolled"),
            "enrol": _("Enrolled"),
            "change_role": _("Role changes"),
            "nothing": _("Already enrolled: no change"),
        }[self.action]

    @property
    def person(self) -> str:
        return self.username or self.email


@dataclass
class EnrolmentPreview:
    rows: list[EnrolmentRow] = field(default_factory=list)
    # Problems with the file as a whole (size, encoding, columns).
    problems: list[str] = field(default_factory=list)

    @property
    def problem_rows(self) -> list[EnrolmentRow]:
        return [row for row in self.rows if row.problems]

    @property
    def is_clean(self) -> bool:
        return bool(self.rows) and not self.problems and not self.problem_rows

    def _count(self, action: str) -> int:
        return sum(1 for row in self.rows if row.action == action and not row.problems)

    @property
    def new_accounts(self) -> int:
        return self._count("create")

    @property
    def enrolments(self) -> int:
        return self._count("create") + self._count("enrol")

    @property
    def role_changes(self) -> int:
        return self._count("change_role")

    @property
    def unchanged(self) -> int:
        return self._count("nothing")


@dataclass
class EnrolmentResult:
    created: list[User]
    enrolled: int
    role_changes: int
    unchanged: int


def _decode(data: bytes) -> tuple[str | None, str | None]:
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        return None, _(
            "The file is not UTF-8 text: line %(line)d has a character that cannot be read. "
            "In your spreadsheet, save it as “CSV UTF-8” and upload it again."
        ) % {"line": line}


def _delimiter(text: str) -> str:
    header = text.split("\n", 1)[0]
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _header(cells: list[str]) -> tuple[list[str], list[str]]:
    columns: list[str] = []
    problems: list[str] = []
    for cell in cells:
        label = " ".join(cell.strip().lower().replace("_", " ").split())
        column = _COLUMNS.get(label)
        if column is None:
            problems.append(
                _("Unknown column “%(column)s”: the columns are username, email, name and role.")
                % {"column": cell.strip()}
            )
            continue
        if column in columns:
            problems.append(_("The column “%(column)s” appears twice.") % {"column": column})
        columns.append(column)
    if "role" not in columns:
        problems.append(_("The header has no “role” column."))
    if "username" not in columns and "email" not in columns:
        problems.append(_("The header needs a “username” or an “email” column (or both)."))
    return columns, problems


def _read_rows(text: str) -> tuple[list[EnrolmentRow], list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    try:
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            return [], [_("The file is empty: the first line must name the columns.")]
        columns, problems = _header(header)
        if problems:
            return [], problems
        rows: list[EnrolmentRow] = []
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) == ENROLMENT_CSV_MAX_ROWS:
                return rows, [
                    _(
                        "The file has more than %(max)d people. Import at most %(max)d at a "
                        "time: split the file and upload each part."
                    )
                    % {"max": ENROLMENT_CSV_MAX_ROWS}
                ]
            row = EnrolmentRow(line=reader.line_num)
            if len(cells) != len(columns):
                row.problems.append(
                    _("This line has %(found)d values; the header names %(expected)d.")
                    % {"found": len(cells), "expected": len(columns)}
                )
            for column, cell in zip(columns, cells, strict=False):
                setattr(row, column, cell.strip())
            rows.append(row)
    except csv.Error as error:
        return [], [
            _("Line %(line)d cannot be read as CSV (%(error)s).")
            % {"line": reader.line_num, "error": error}
        ]
    if not rows:
        return [], [_("The file names its columns but lists nobody.")]
    return rows, []


def _check_fields(row: EnrolmentRow, *, actor: User) -> None:
    raw_role = row.role
    row.role = _ROLES.get(raw_role.lower(), "")
    if not raw_role:
        row.problems.append(_("The role is empty: use student or teacher."))
    elif not row.role:
        row.problems.append(
            _("Unknown role “%(role)s”: use student or teacher.") % {"role": raw_role}
        )
    elif row.role == Membership.Role.TEACHER and not actor.is_staff:
        row.problems.append(_("Only an administrator can enrol teachers."))
    if not row.username and not row.email:
        row.problems.append(_("Give a username or an email address."))
    if row.username:
        try:
            UnicodeUsernameValidator()(row.username)
            if len(row.username) > 150:
                raise ValidationError("too long")
        except ValidationError:
            row.problems.append(
                _("“%(username)s” is not a valid username (letters, digits and @ . + - _ only).")
                % {"username": row.username[:60]}
            )
    if row.email:
        try:
            validate_email(row.email)
        except ValidationError:
            row.problems.append(
                _("“%(email)s” is not a valid email address.") % {"email": row.email[:80]}
            )
    if len(row.name) > NAME_MAX_CHARS:
        row.problems.append(
            _("The name is longer than %(max)d characters.") % {"max": NAME_MAX_CHARS}
        )


def _check_duplicates(rows: list[EnrolmentRow]) -> None:
    seen: dict[tuple[str, str], int] = {}
    for row in rows:
        for key in (("username", row.username.lower()), ("email", row.email.lower())):
            if not key[1]:
                continue
            if key in seen:
                row.problems.append(
                    _("The same person as line %(line)d (%(value)s).")
                    % {"line": seen[key], "value": key[1]}
                )
                break
            seen[key] = row.line


def _match_accounts(rows: list[EnrolmentRow], *, course: Course, actor: User) -> None:
    """Find each row's existing account (one query per column) and current role."""
    usernames = {(row.username or row.email).lower() for row in rows}
    emails = {row.email.lower() for row in rows if row.email}
    by_username = {
        u.username.lower(): u
        for u in User.objects.annotate(username_lower=Lower("username")).filter(
            username_lower__in=usernames
        )
    }
    by_email: dict[str, list[User]] = {}
    for user in User.objects.annotate(email_lower=Lower("email")).filter(email_lower__in=emails):
        by_email.setdefault(user.email_lower, []).append(user)
    found = {u.pk for u in by_username.values()} | {
        u.pk for users in by_email.values() for u in users
    }
    roles = dict(
        Membership.objects.filter(course=course, user_id__in=found).values_list("user_id", "role")
    )
    for row in rows:
        named = by_username.get(row.username.lower()) if row.username else None
        mailed = by_email.get(row.email.lower(), []) if row.email else []
        if named and mailed and named not in mailed:
            row.problems.append(
                _("The username “%(username)s” and the email address belong to different accounts.")
                % {"username": row.username}
            )
            continue
        if named is None and len(mailed) > 1:
            row.problems.append(
                _("Several accounts have this email address: give the username as well.")
            )
            continue
        row.user = named or (mailed[0] if mailed else None)
        if row.user is None:
            if not row.email:
                row.problems.append(
                    _("There is no account “%(username)s”: a new account needs an email address.")
                    % {"username": row.username}
                )
            elif not row.username and row.email.lower() in by_username:
                row.problems.append(
                    _("The username “%(username)s” is taken by another account: add a username.")
                    % {"username": row.email}
                )
            continue
        row.current_role = roles.get(row.user.pk)
        if row.current_role and row.role and row.current_role != row.role:
            if row.user.pk == actor.pk:
                row.problems.append(_("You cannot change your own role."))
            elif row.current_role == Membership.Role.TEACHER and not actor.is_staff:
                row.problems.append(_("Only an administrator can change a teacher's role."))


def enrolment_preview(*, course: Course, data: bytes, actor: User) -> EnrolmentPreview:
    """Read an enrolment CSV and say, row by row, what importing it would do or why not."""
    if len(data) > ENROLMENT_CSV_MAX_BYTES:
        return EnrolmentPreview(
            problems=[
                _(
                    "The file is larger than %(mb)d MB. Import at most %(max)d people at a "
                    "time: split the file and upload each part."
                )
                % {"mb": ENROLMENT_CSV_MAX_BYTES // (1024 * 1024), "max": ENROLMENT_CSV_MAX_ROWS}
            ]
        )
    text, problem = _decode(data)
    if text is None:
        return EnrolmentPreview(problems=[problem or ""])
    rows, problems = _read_rows(text)
    preview = EnrolmentPreview(rows=rows, problems=problems)
    if problems:
        return preview
    for row in rows:
        _check_fields(row, actor=actor)
    _check_duplicates(rows)
    _match_accounts([row for row in rows if not row.problems], course=course, actor=actor)
    return preview


def enrolment_import(*, course: Course, data: bytes, actor: User) -> EnrolmentResult:
    """Import a clean enrolment CSV in one transaction; raise ``EnrolmentNotClean`` (and
    write nothing) when any row has a problem now."""
    try:
        with transaction.atomic():
            preview = enrolment_preview(course=course, data=data, actor=actor)
            if not preview.is_clean:
                raise EnrolmentNotClean(preview)
            return _enrolment_write(course=course, rows=preview.rows, actor=actor)
    except IntegrityError:
        # Someone enrolled one of these people meanwhile: the preview is out of date.
        raise EnrolmentNotClean(enrolment_preview(course=course, data=data, actor=actor)) from None


def _account(row: EnrolmentRow) -> User:
    """The account of a row that joins or changes role: matched, or created for it."""
    assert row.user is not None
    return row.user


def _enrolment_write(*, course: Course, rows: list[EnrolmentRow], actor: User) -> EnrolmentResult:
    from learners.accounts import first_sign_in_enqueue

    new = [row for row in rows if row.action == "create"]
    joining = [row for row in rows if row.action in ("create", "enrol")]
    changing = [row for row in rows if row.action == "change_role"]
    unchanged = sum(1 for row in rows if row.action == "nothing")
    new_rows = {id(row) for row in new}
    created = User.objects.bulk_create(
        [
            User(
                username=row.username or row.email.lower(),
                email=row.email,
                display_name=row.name,
                password=make_password(None),
            )
            for row in new
        ]
    )
    for row, user in zip(new, created, strict=True):
        row.user = user
    Membership.objects.bulk_create(
        [Membership(user=row.user, course=course, role=row.role) for row in joining]
    )
    for role in Membership.Role.values:
        Membership.objects.filter(
            course=course, user__in=[row.user for row in changing if row.role == role]
        ).update(role=role)
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                action=AuditEvent.Action.ROLE_CHANGED,
                actor_id=actor.pk,
                actor_label=str(actor),
                course_id=course.pk,
                target_type="learners.user",
                target_id=str(_account(row).pk),
                before={"role": row.current_role},
                after={"role": row.role},
                reason=_("Enrolled from a CSV file"),
                details={"line": row.line, "created_account": id(row) in new_rows},
            )
            for row in joining + changing
        ]
    )
    first_sign_in_enqueue(users=created)
    return EnrolmentResult(
        created=created,
        enrolled=len(joining),
        role_changes=len(changing),
        unchanged=unchanged,
    )
