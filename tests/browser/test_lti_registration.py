"""LTI Dynamic Registration in a real browser: the LMS frames the registration URL, the
page shows in its frame (frame-ancestors lets the LMS's origin in), and "Done" sends the
LMS the org.imsglobal.lti.close message from our static script (strict CSP)."""

from __future__ import annotations

import io
import json
from urllib.parse import urlencode, urlsplit

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from lti.models import LtiPlatform
from tests.lti.registration_platform import REGISTRATION_TOKEN, RegistrationPlatform

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LMS_PAGE = """<!doctype html><html><body><h1>LMS</h1>
<script>
  window.received = [];
  window.addEventListener("message", (event) => { window.received.push(event.data); });
</script>
<iframe id="tool" src="%s" width="800" height="600"></iframe>
</body></html>"""


def test_the_lms_frames_the_registration_and_gets_the_close_message(page, live_server):
    lms = RegistrationPlatform()
    try:
        out = io.StringIO()
        call_command("lti_registration_link", "--json", stdout=out)
        path = urlsplit(json.loads(out.getvalue())["registration_url"]).path
        query = urlencode(
            {
                "openid_configuration": lms.configuration_url,
                "registration_token": REGISTRATION_TOKEN,
            }
        )
        lms.frame_page = LMS_PAGE % f"{live_server.url}{path}?{query}"
        page.goto(lms.base + "/lms")
        tool = page.frame_locator("#tool")
        expect(tool.get_by_role("heading", name="The tutor is registered")).to_be_visible()
        assert LtiPlatform.objects.get().client_id == "dyn-client-1"
        assert page.evaluate("window.received") == []
        tool.get_by_role("button", name="Done: back to the LMS").click()
        page.wait_for_function("window.received.length > 0")
        assert page.evaluate("window.received") == [{"subject": "org.imsglobal.lti.close"}]
    finally:
        lms.stop()
