"""The image's HEALTHCHECK: GET /healthz on the local web server, healthy on 200 only.

Sent with a Host header from ALLOWED_HOSTS (Django refuses others) over plain HTTP, which
the settings exempt from the HTTPS redirect. Standard library only: it runs every few
seconds and must start fast.
"""

from __future__ import annotations

import http.client
import os
import sys


def host_header() -> str:
    for host in os.environ.get("ALLOWED_HOSTS", "").split(","):
        host = host.strip()
        if host and host != "*" and not host.startswith("."):
            return host
    return "localhost"


def main() -> int:
    port = int(os.environ.get("PORT", "8000"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=8)
    try:
        connection.request("GET", "/healthz", headers={"Host": host_header()})
        response = connection.getresponse()
        body = response.read(2000).decode(errors="replace")
    except OSError as error:
        print(f"healthz: no answer on port {port}: {error}")
        return 1
    finally:
        connection.close()
    if response.status != 200:
        print(f"healthz: HTTP {response.status}: {body}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
