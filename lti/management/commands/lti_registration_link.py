"""Make a one-time LTI Dynamic Registration link to paste into an LMS."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from lti.dynamic_registration import DEFAULT_LINK_HOURS, link_create, link_url


class Command(BaseCommand):
    help = (
        "Print a one-time LTI Dynamic Registration URL (paste it into the LMS's dynamic "
        "registration screen). It works until one registration succeeds or it expires."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--hours", type=int, default=DEFAULT_LINK_HOURS, help="how long the link works"
        )
        parser.add_argument(
            "--issuer",
            default="",
            help=(
                "the exact issuer the LMS must present, for an LMS whose issuer is not on "
                "the host of its configuration URL (Canvas Cloud: https://canvas.instructure.com)"
            ),
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options):
        if not 1 <= options["hours"] <= 24 * 30:
            raise CommandError("--hours must be between 1 and 720.")
        issuer = options["issuer"].strip()
        if issuer and not issuer.startswith(("https://", "http://")):
            raise CommandError("--issuer must be a URL such as https://canvas.instructure.com.")
        link, token = link_create(hours=options["hours"], issuer=issuer)
        url = link_url(token)
        if options["json"]:
            self.stdout.write(
                json.dumps({"registration_url": url, "expires_at": link.expires_at.isoformat()})
            )
            return
        self.stdout.write("Paste this Dynamic Registration URL into the LMS (it works once):")
        self.stdout.write(f"  {url}")
        self.stdout.write(f"It expires at {link.expires_at:%Y-%m-%d %H:%M %Z}.")
