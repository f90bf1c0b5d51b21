"""docs/lti.md names only commands, options, URLs and settings that exist."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
from django.core.management import get_commands, load_command_class
from django.urls import Resolver404, resolve

DOC = (Path(__file__).resolve().parents[2] / "docs" / "lti.md").read_text()


def _options(command: str) -> set[str]:
    parser = load_command_class(get_commands()[command], command).create_parser(
        "manage.py", command
    )
    return {opt for action in parser._actions for opt in action.option_strings}


def test_every_command_and_option_in_the_doc_exists():
    commands = set(re.findall(r"manage\.py (\w+)", DOC))
    assert {"lti_platform_add", "lti_registration_link", "lti_rotate_key"} <= commands
    known = get_commands()
    for command in commands:
        assert command in known, command
    options = set().union(*(_options(c) for c in commands))
    mentioned = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", DOC))
    assert mentioned and mentioned <= options, mentioned - options


def test_every_tool_path_in_the_doc_resolves():
    paths = set(re.findall(r"`(/(?:lti|courses|privacy)[^`\s]*)`", DOC))
    assert {"/lti/login/", "/courses/<course_id>/lms/"} <= paths
    for path in paths:
        path = re.sub(r"<course_id>", "1", re.sub(r"<(token|anything)>", "abc", path))
        try:
            resolve(path)
        except Resolver404:
            raise AssertionError(f"docs/lti.md names {path}, which is no URL of ours") from None


def test_every_setting_in_the_doc_exists():
    for name in set(re.findall(r"`(LTI_[A-Z_]+|TRUST_X_FORWARDED_PROTO|SITE_URL)`", DOC)):
        if name != "TRUST_X_FORWARDED_PROTO":  # read from the environment only
            assert hasattr(settings, name), name
