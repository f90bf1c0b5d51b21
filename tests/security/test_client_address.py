"""The client address: X-Forwarded-For only from TRUSTED_PROXIES (issue 16, item 3)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, RequestFactory
from django.urls import reverse

from config.client_address import client_address, trusted_proxies_parse
from learners.models import LoginThrottle

ROOT = Path(__file__).resolve().parents[2]
PROXY = "172.28.0.5"


def _address(settings, trusted: list[str], remote: str, forwarded: str | None = None) -> str:
    settings.TRUSTED_PROXIES = trusted
    headers = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    return client_address(RequestFactory().get("/", **headers))


def test_by_default_the_header_is_ignored(settings):
    assert _address(settings, [], "198.51.100.1", "203.0.113.66") == "198.51.100.1"


def test_a_client_that_is_not_a_trusted_proxy_cannot_name_another_address(settings):
    assert _address(settings, ["172.28.0.0/24"], "198.51.100.1", "10.9.9.9") == "198.51.100.1"


def test_behind_a_trusted_proxy_the_address_it_received_from_is_the_client(settings):
    assert _address(settings, ["172.28.0.0/24"], PROXY, "203.0.113.66") == "203.0.113.66"


def test_what_the_client_wrote_left_of_the_proxys_entry_is_ignored(settings):
    forged = "1.2.3.4, 203.0.113.66"  # the client sent "1.2.3.4"; Caddy appended the truth
    assert _address(settings, ["172.28.0.0/24"], PROXY, forged) == "203.0.113.66"


def test_a_chain_of_trusted_proxies_is_walked_from_the_right(settings):
    chain = "203.0.113.66, 10.0.0.2"
    assert _address(settings, ["172.28.0.0/24", "10.0.0.0/8"], PROXY, chain) == "203.0.113.66"


def test_garbage_in_the_header_stops_at_the_last_trusted_hop(settings):
    assert _address(settings, ["172.28.0.0/24"], PROXY, "<script>") == PROXY
    assert _address(settings, ["172.28.0.0/24"], PROXY, "") == PROXY


def test_ipv6_and_ports_are_understood(settings):
    assert _address(settings, ["::1"], "::1", "[2001:db8::5]:4431") == "2001:db8::5"
    assert _address(settings, ["::1"], "::1", "203.0.113.66:5000") == "203.0.113.66"


def test_a_bad_entry_is_refused_by_name():
    with pytest.raises(ImproperlyConfigured, match="not-an-ip"):
        trusted_proxies_parse(["10.0.0.0/8", "not-an-ip"])


def test_a_bad_entry_stops_the_start():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "TRUSTED_PROXIES": "x.y"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "TRUSTED_PROXIES" in result.stderr


@pytest.mark.django_db
def test_a_forged_header_neither_escapes_the_login_wait_nor_makes_another_address_wait(
    settings, student
):
    settings.TRUSTED_PROXIES = []
    settings.LOGIN_FREE_FAILURES = 3
    url = reverse("login")
    for index in range(4):  # a new forged address each time
        Client().post(
            url,
            {"username": "student", "password": "nope"},
            REMOTE_ADDR="198.51.100.1",
            HTTP_X_FORWARDED_FOR=f"10.0.0.{index}",
        )
    assert list(LoginThrottle.objects.filter(scope="address").values_list("client", flat=True)) == [
        "198.51.100.1"
    ]
    refused = Client().post(
        url,
        {"username": "student", "password": student.raw_password},
        REMOTE_ADDR="198.51.100.1",
        HTTP_X_FORWARDED_FOR="10.0.0.99",
    )
    assert refused.status_code == 429


def test_the_web_server_leaves_forwarded_headers_to_django():
    """uvicorn with ``--forwarded-allow-ips *`` made anyone's X-Forwarded-For the client
    address before Django saw the request; it must not rewrite it at all."""
    entrypoint = (ROOT / "docker" / "entrypoint.sh").read_text()
    web = entrypoint.split("web)", 1)[1].split(";;", 1)[0]
    assert "--no-proxy-headers" in web
    assert "forwarded-allow-ips" not in web


def test_the_example_trusts_exactly_the_compose_network():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert subnet == "${DOCKER_SUBNET:-" + example["TRUSTED_PROXIES"] + "}"
