"""Make a new tool signing key; the old one stays in the JWKS for the overlap period."""

from django.core.management.base import BaseCommand

from lti.keys import rotate_key


class Command(BaseCommand):
    help = (
        "Rotate the LTI tool signing key (the JWKS keeps the old one for LTI_KEY_OVERLAP_SECONDS)."
    )

    def handle(self, *args, **options):
        key = rotate_key()
        self.stdout.write(f"New signing key: {key.kid}")
