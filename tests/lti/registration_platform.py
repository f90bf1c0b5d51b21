"""A small LMS on loopback for LTI Dynamic Registration (stdlib ``http.server``): it
serves an OpenID configuration and a registration endpoint, records every registration
it receives (body and headers) and answers the way it is told to (accept, refuse, lie
about its issuer). The other endpoints it advertises may point at an ``LtiTestPlatform``
so a registered tool can then be launched for real."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REGISTRATION_TOKEN = "reg-token-123"


class RegistrationPlatform:
    def __init__(
        self,
        *,
        issuer: str | None = None,
        auth_login_url: str | None = None,
        token_url: str | None = None,
        keyset_url: str | None = None,
        client_id: str = "dyn-client-1",
        deployment_id: str | None = "dyn-deployment-1",
    ) -> None:
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: Any) -> None:
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/lms" and platform.frame_page:
                    data = platform.frame_page.encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                elif self.path.startswith("/.well-known/openid-configuration"):
                    platform.configuration_requests += 1
                    self._answer(platform.configuration_status, platform.configuration())
                else:
                    self._answer(404, {"error": "not found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                platform.received.append(
                    {"path": self.path, "headers": dict(self.headers), "body": json.loads(raw)}
                )
                status, answer = platform.registration_answer(json.loads(raw))
                self._answer(status, answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.issuer = issuer or self.base
        self.auth_login_url = auth_login_url or self.base + "/authorize"
        self.token_url = token_url or self.base + "/token"
        self.keyset_url = keyset_url or self.base + "/jwks"
        self.client_id = client_id
        self.deployment_id = deployment_id
        self.configuration_status = 200
        self.leave_out: set[str] = set()
        self.refuse: tuple[int, Any] | None = None
        self.received: list[dict] = []
        self.configuration_requests = 0
        self.frame_page = ""  # the LMS page that frames the tool, served at /lms
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def configuration_url(self) -> str:
        return self.base + "/.well-known/openid-configuration"

    def configuration(self) -> dict:
        config = {
            "issuer": self.issuer,
            "authorization_endpoint": self.auth_login_url,
            "token_endpoint": self.token_url,
            "jwks_uri": self.keyset_url,
            "registration_endpoint": self.base + "/register",
            "scopes_supported": [
                "openid",
                "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
                "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
                "https://purl.imsglobal.org/spec/lti-ags/scope/score",
                "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly",
            ],
            "response_types_supported": ["id_token"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "https://purl.imsglobal.org/spec/lti-platform-configuration": {
                "product_family_code": "loopback-lms",
                "version": "1.0",
                "messages_supported": [
                    {"type": "LtiResourceLinkRequest"},
                    {"type": "LtiDeepLinkingRequest"},
                ],
            },
        }
        return {name: value for name, value in config.items() if name not in self.leave_out}

    def registration_answer(self, body: dict) -> tuple[int, Any]:
        if self.refuse:
            return self.refuse
        tool_config = dict(body.get("https://purl.imsglobal.org/spec/lti-tool-configuration", {}))
        if self.deployment_id:
            tool_config["deployment_id"] = self.deployment_id
        answer = {
            **body,
            "client_id": self.client_id,
            "https://purl.imsglobal.org/spec/lti-tool-configuration": tool_config,
        }
        return 200, answer

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
