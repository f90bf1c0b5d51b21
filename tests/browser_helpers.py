"""Steps that browser tests share."""

from __future__ import annotations


def login_through_form(page, base_url: str, user) -> None:
    """Log ``user`` in through the real login form of the server at ``base_url``."""
    page.goto(f"{base_url}/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(user.raw_password)
    page.get_by_role("button", name="Log in").click()
    # Wait for the page the login leads to, not the load state of the login page itself
    # (on a busy machine that is still the current page right after the click).
    page.wait_for_url(lambda url: "/login/" not in url)


def console_errors(page) -> list[str]:
    """Collect the page's console errors (CSP violations among them) from now on; the
    browser's own request for /favicon.ico is not the page's error."""
    errors: list[str] = []

    def collect(message) -> None:
        if message.type != "error":
            return
        if (message.location or {}).get("url", "").endswith("/favicon.ico"):
            return
        errors.append(message.text)

    page.on("console", collect)
    return errors
