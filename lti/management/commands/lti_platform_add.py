"""Register an LMS (an LTI 1.3 platform) and print what to copy back into it."""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import URLValidator

from lti.registration import platform_save
from lti.views import tool_urls


class Command(BaseCommand):
    help = (
        "Register an LTI 1.3 platform (or update one with the same issuer and client id) "
        "and print the tool's login-initiation, launch and JWKS URLs."
    )

    def add_arguments(self, parser):
        parser.add_argument("--issuer", required=True)
        parser.add_argument("--client-id", required=True)
        parser.add_argument(
            "--deployment-id", action="append", required=True, help="may be given more than once"
        )
        parser.add_argument("--auth-login-url", required=True)
        parser.add_argument("--auth-token-url", required=True)
        parser.add_argument("--keyset-url", required=True)
        parser.add_argument("--auth-audience", default="")
        parser.add_argument("--name", default="")
        parser.add_argument(
            "--frame-origin", action="append", default=[], help="an origin that frames the tool"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options):
        validate = URLValidator(schemes=["http", "https"])
        for option in ("auth_login_url", "auth_token_url", "keyset_url"):
            try:
                validate(options[option])
            except ValidationError as error:
                raise CommandError(
                    f"--{option.replace('_', '-')} is not a URL: {options[option]!r}"
                ) from error
        if not options["issuer"].strip() or not options["client_id"].strip():
            raise CommandError("--issuer and --client-id must not be empty.")
        platform, created = platform_save(
            issuer=options["issuer"],
            client_id=options["client_id"],
            deployment_ids=options["deployment_id"],
            auth_login_url=options["auth_login_url"],
            auth_token_url=options["auth_token_url"],
            keyset_url=options["keyset_url"],
            auth_audience=options["auth_audience"],
            name=options["name"],
            frame_origins=options["frame_origin"],
        )
        urls = tool_urls()
        if options["json"]:
            self.stdout.write(json.dumps(urls))
            return
        verb = "Registered" if created else "Updated"
        self.stdout.write(
            f"{verb} {platform} (deployments: {', '.join(options['deployment_id'])})."
        )
        self.stdout.write("Copy these into the LMS:")
        self.stdout.write(f"  OIDC login initiation URL: {urls['login_url']}")
        self.stdout.write(f"  Launch (redirect / target link) URL: {urls['launch_url']}")
        self.stdout.write(f"  Public keyset (JWKS) URL: {urls['jwks_url']}")
