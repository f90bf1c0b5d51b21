"""Fixtures of the LTI tests: a real LTI 1.3 platform (lti1p3platform) on loopback,
registered with the tool through ``manage.py lti_platform_add``, and a browser (Django's
test client) that walks the OIDC launch between the two."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from tests.grading.workflow_factories import assignment, submit  # noqa: F401
from tests.lti.platform import LtiTestPlatform

TOOL = "http://testserver"


@pytest.fixture
def lti_platform(db, client):
    platform = LtiTestPlatform(
        tool_login_url=TOOL + "/lti/login/", tool_launch_url=TOOL + "/lti/launch/"
    )
    out = io.StringIO()
    call_command(
        "lti_platform_add",
        "--issuer",
        platform.issuer,
        "--client-id",
        platform.client_id,
        "--deployment-id",
        platform.deployment_id,
        "--auth-login-url",
        platform.auth_login_url,
        "--auth-token-url",
        platform.token_url,
        "--keyset-url",
        platform.keyset_url,
        "--json",
        stdout=out,
    )
    platform.tool_urls = json.loads(out.getvalue())
    platform.trust_tool_keys(client.get("/lti/jwks/").json())
    yield platform
    platform.stop()
