"""The address of the client that sent a request, for throttling and logs.

``X-Forwarded-For`` is a header anyone can send; it names the client only when the
request came from a proxy we run. TRUSTED_PROXIES lists those proxies (addresses or
networks, e.g. ``172.28.0.0/24``); it is empty by default, and then the peer address
(``REMOTE_ADDR``) is the client, whatever the headers say. Behind trusted proxies the
header is read from the right: each trusted proxy appended the address it received
from, so the first address from the right that is not a trusted proxy is the client.
Anything left of it was written by the client itself and is ignored.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
UNKNOWN = "unknown"


def trusted_proxies_parse(entries: list[str] | tuple[str, ...]) -> tuple[Network, ...]:
    """TRUSTED_PROXIES as networks; a bad entry is a configuration error, named."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"TRUSTED_PROXIES: {entry!r} is not an IP address or network (e.g. 10.0.0.0/8)."
            ) from None
    return tuple(networks)


@lru_cache(maxsize=8)
def _trusted(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return trusted_proxies_parse(entries)


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _is_trusted(address, networks: tuple[Network, ...]) -> bool:
    return any(address in network for network in networks)


def client_address(request: HttpRequest) -> str:
    """The client's IP address as text (``"unknown"`` when there is none)."""
    peer = _address(request.META.get("REMOTE_ADDR", ""))
    if peer is None:
        return UNKNOWN
    networks = _trusted(tuple(settings.TRUSTED_PROXIES))
    if not networks or not _is_trusted(peer, networks):
        return str(peer)
    client = peer
    hops = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break  # garbage: the last trusted hop is as far as we can see
        client = address
        if not _is_trusted(address, networks):
            break
    return str(client)
