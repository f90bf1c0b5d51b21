"""An LTI 1.3 platform on loopback, built from ``lti1p3platform`` (a PyPI implementation
we did not write): it signs launches, serves its JWKS, issues service access tokens
against the tool's JWKS, and answers NRPS, AGS and deep-linking returns through the
library's own service handlers. Only the storage (members, line items, scores) and the
HTTP wiring are ours.

The test plays the browser: it asks the platform for a login-initiation URL, follows
the tool's redirect to the platform's authorisation endpoint, and posts what comes back
to the tool's launch URL with Django's test client.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from jwcrypto.jwk import JWK
from lti1p3platform.exceptions import LineItemNotFoundException, LtiServiceException
from lti1p3platform.framework.django.response import wrap_json_resp
from lti1p3platform.ltiplatform import LTI1P3PlatformConfAbstract
from lti1p3platform.membership import Context
from lti1p3platform.message_launch import LTIAdvantageMessageLaunchAbstract
from lti1p3platform.oidc_login import OIDCLoginAbstract
from lti1p3platform.registration import Registration
from lti1p3platform.request import Request, TRequest
from lti1p3platform.response import Response
from lti1p3platform.score import UpdateScoreStatus
from lti1p3platform.service_connector import (
    AssignmentsGradesService,
    NamesRoleProvisioningService,
)

LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
TEACHING_ASSISTANT = (
    "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"
)
ADMINISTRATOR = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Administrator"


def rsa_key_pair() -> tuple[str, str]:
    key = JWK.generate(kty="RSA", size=2048)
    return (
        key.export_to_pem(private_key=True, password=None).decode(),
        key.export_to_pem().decode(),
    )


class WsgiRequest(Request):
    def build_metadata(self, environ: dict) -> TRequest:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        content_type = environ.get("CONTENT_TYPE", "")
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        form = dict(parse_qsl(body.decode())) if "form-urlencoded" in content_type else {}
        return {
            "method": environ["REQUEST_METHOD"],
            "form_data": form,
            "json": json.loads(body) if body and "json" in content_type else None,
            "get_data": dict(parse_qsl(environ.get("QUERY_STRING", ""))),
            "headers": headers,
            "content_type": content_type,
            "path": environ.get("PATH_INFO", ""),
        }


class PlatformConf(LTI1P3PlatformConfAbstract):
    def init_platform_config(self, **kwargs: Any) -> None:
        self._registration = kwargs["registration"]

    def get_registration_by_params(self, **kwargs: Any) -> Registration:
        return self._registration


class Launcher(LTIAdvantageMessageLaunchAbstract):
    """The library's launch builder; the 'form' it renders is the data a browser posts."""

    def __init__(self, request, conf, preflight: dict) -> None:
        super().__init__(request, conf)
        self._preflight = preflight

    def get_preflight_response(self) -> dict:
        return self._preflight

    def render_launch_form(self, launch_data: dict, **kwargs: Any) -> dict:
        return launch_data


class LoginStarter(OIDCLoginAbstract):
    def set_lti_message_hint(self, **kwargs: Any) -> None:
        self._lti_message_hint = kwargs["hint"]

    def get_redirect(self, url: str) -> str:
        return url


@dataclass
class PendingLaunch:
    sub: str
    roles: list[str]
    context_id: str
    context_title: str
    message_type: str = "LtiResourceLinkRequest"
    resource_link_id: str = "link-1"
    custom: dict = field(default_factory=dict)
    name: str = ""
    email: str = ""
    lineitem: str | None = None


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class ThreadingServer(WSGIServer):
    daemon_threads = True


class LtiTestPlatform:
    """One platform with one client id and deployment for the tool."""

    def __init__(
        self,
        *,
        tool_login_url: str,
        tool_launch_url: str,
        client_id="tutor-tool",
        deployment_id="deployment-1",
    ) -> None:
        self.server = make_server(
            "127.0.0.1", 0, self.wsgi, server_class=ThreadingServer, handler_class=QuietHandler
        )
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.issuer = self.base
        self.client_id = client_id
        self.deployment_id = deployment_id
        self.private_pem, self.public_pem = rsa_key_pair()
        self.extra_published: list[dict] = []
        self.tool_login_url = tool_login_url
        self.tool_launch_url = tool_launch_url
        self.registration = self._registration(client_id, deployment_id)
        self.pending: dict[str, PendingLaunch] = {}
        self.members: dict[str, list[dict]] = {}
        self.line_items: dict[str, dict[str, dict]] = {}
        self.scores: list[dict] = []
        self.deep_link_items: list[dict] = []
        self.down = False
        self.token_requests = 0
        self.keyset_requests = 0
        self.id_token_expiration = 300
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    # -- set-up ------------------------------------------------------------------

    def _registration(self, client_id: str, deployment_id: str) -> Registration:
        return (
            Registration()
            .set_iss(self.issuer)
            .set_client_id(client_id)
            .set_deployment_id(deployment_id)
            .set_platform_public_key(self.public_pem)
            .set_platform_private_key(self.private_pem)
            .set_oidc_login_url(self.tool_login_url)
            .set_launch_url(self.tool_launch_url)
            .set_deeplink_launch_url(self.tool_launch_url)
        )

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def auth_login_url(self) -> str:
        return self.base + "/authorize"

    @property
    def token_url(self) -> str:
        return self.base + "/token"

    @property
    def keyset_url(self) -> str:
        return self.base + "/jwks"

    def memberships_url(self, context_id: str) -> str:
        return f"{self.base}/nrps/{context_id}"

    def lineitems_url(self, context_id: str) -> str:
        return f"{self.base}/lineitems/{context_id}"

    def trust_tool_keys(self, jwks: dict) -> None:
        """What the LMS admin does by pasting the tool's JWKS URL: the platform now
        verifies the tool's signed requests with these keys."""
        self.registration.set_tool_key_set(jwks)

    def rotate_key(self, *, publish: bool = True) -> None:
        """Sign with a new key; published in the JWKS or (publish=False) not."""
        old_public = self.public_pem
        self.private_pem, self.public_pem = rsa_key_pair()
        self.registration.set_platform_private_key(self.private_pem)
        self.registration.set_platform_public_key(self.public_pem if publish else old_public)

    # -- the browser's side of a launch -------------------------------------------

    def login_initiation_url(self, launch: PendingLaunch, *, registration=None) -> str:
        hint = uuid.uuid4().hex
        self.pending[hint] = launch
        starter = LoginStarter(None, PlatformConf(registration=registration or self.registration))
        starter.set_lti_message_hint(hint=hint)
        return starter.initiate_login(launch.sub)

    def authorize(self, query: dict, *, registration=None) -> dict:
        """The platform's OIDC authorisation endpoint: the launch form's data."""
        registration = registration or self.registration
        launch = self.pending[query["lti_message_hint"]]
        conf = PlatformConf(registration=registration)
        launcher = Launcher(None, conf, query)
        launcher.set_id_token_expiration(self.id_token_expiration)
        launcher.set_user_data(
            launch.sub,
            launch.roles,
            full_name=launch.name or None,
            email_address=launch.email or None,
        )
        launcher.set_launch_context_claim(launch.context_id, context_title=launch.context_title)
        launcher.set_resource_link_claim(launch.resource_link_id)
        if launch.custom:
            launcher.set_custom_parameters_claim(launch.custom)
        launcher.set_nrps(self.memberships_url(launch.context_id))
        launcher.set_ags(self.lineitems_url(launch.context_id), launch.lineitem)
        if launch.message_type == "LtiDeepLinkingRequest":
            launcher.set_dl(
                self.base + "/deep_link_return",
                title="Add content",
                accept_types={"ltiResourceLink"},
            )
        return launcher.lti_launch()

    # -- HTTP --------------------------------------------------------------------

    def wsgi(self, environ, start_response):
        request = WsgiRequest(environ)
        path = request.path.strip("/").split("/")
        try:
            result = self._route(request, path)
        except LtiServiceException as error:
            result = Response(None, error.status_code, error.message)
        except KeyError:
            result = Response(None, 404, "not found")
        if not isinstance(result, Response):
            status, body = result
            result = Response(body, status, "success" if status < 300 else str(body))
        # The library's own rendering of a service response (content, Link: rel=next).
        response = wrap_json_resp(result)
        start_response(f"{response.status_code} {response.reason_phrase}", list(response.items()))
        return [response.content]

    def _route(self, request: WsgiRequest, path: list[str]):
        conf = PlatformConf(registration=self.registration)
        if self.down and path[0] in {"token", "lineitems", "nrps"}:
            return 503, "maintenance"
        if path == ["jwks"]:
            self.keyset_requests += 1
            return 200, {"keys": self.registration.get_jwks() + self.extra_published}
        if path == ["token"]:
            self.token_requests += 1
            return 200, conf.get_access_token(request.form_data)
        if path == ["deep_link_return"]:
            self.deep_link_items.extend(conf.validate_deeplinking_resp(request.form_data))
            return 200, {"ok": True}
        if path[0] == "nrps":
            service = Roster(request, conf, self.memberships_url(path[1]), self, path[1])
            response = service.handle_get_members()
        elif path[0] == "lineitems":
            service = Gradebook(request, conf, self.lineitems_url(path[1]), self, path[1])
            if len(path) == 2 and request.method == "GET":
                response = service.handle_get_lineitems()
            elif len(path) == 2:
                response = service.handle_create_lineitem()
            elif len(path) == 4 and path[3] == "scores":
                response = service.handle_update_score(path[2])
            else:
                response = service.handle_get_lineitem(path[2])
        else:
            raise KeyError(path)
        return response


class Roster(NamesRoleProvisioningService):
    def __init__(self, request, conf, url, platform: LtiTestPlatform, context_id: str):
        super().__init__(request, conf, url)
        self.platform = platform
        self.context_id = context_id

    def get_member_data_page(self, page=1, limit=None, role=None, since=None, **kwargs):
        return {"content": list(self.platform.members.get(self.context_id, [])), "has_next": False}

    def get_context_by_id(self) -> Context:
        return Context(id=self.context_id, label=self.context_id, title=self.context_id)


class Gradebook(AssignmentsGradesService):
    def __init__(self, request, conf, url, platform: LtiTestPlatform, context_id: str):
        super().__init__(request, conf, url)
        self.platform = platform
        self.items = platform.line_items.setdefault(context_id, {})
        self.url = url

    def find_lineitems(
        self,
        page=1,
        limit=None,
        line_item_id=None,
        resource_link_id=None,
        resource_id=None,
        tag=None,
        **kwargs,
    ):
        found = [
            item
            for item in self.items.values()
            if (resource_id is None or item.get("resourceId") == resource_id)
            and (tag is None or item.get("tag") == tag)
        ]
        return {"content": found, "has_next": False}

    def find_lineitem(self, line_item_id: str):
        for item_id, item in self.items.items():
            if item_id == line_item_id:
                return item
        raise LineItemNotFoundException()

    def create_lineitem(self, creation_data):
        item_id = uuid.uuid4().hex[:8]
        item = dict(creation_data, id=f"{self.url}/{item_id}")
        self.items[item_id] = item
        return item

    def update_lineitem(self, update_data):
        raise NotImplementedError

    def delete_lineitem(self, line_item_id):
        raise NotImplementedError

    def get_results(self, line_item_id, page=1, limit=None, user_id=None):
        raise NotImplementedError

    def update_score(self, line_item_id: str, score) -> UpdateScoreStatus:
        if line_item_id not in self.items:
            raise LineItemNotFoundException()
        self.platform.scores.append(dict(score, line_item=line_item_id, received=time.time()))
        return UpdateScoreStatus.SUCCESS


def query_of(url: str) -> dict:
    return dict(parse_qsl(urlsplit(url).query))
