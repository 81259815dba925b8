"""The forms' CSRF token: one random value per browser session, in a cookie and in a field.

A page answered to a GET sets the cookie (``HttpOnly``, ``SameSite=Strict``, ``Path=/``)
when the browser has none, and every form carries the same value as a hidden field. A
form's POST is accepted only when both are present and equal (``hmac.compare_digest``):
another site can make a browser post a form, but it can neither read the cookie nor guess
the value. This is on top of the ``CrossSiteWrites`` middleware (Origin and
Sec-Fetch-Site), which refuses most such posts before they reach a page.
"""

from __future__ import annotations

import hmac
import re
import secrets

from fastapi import Request
from fastapi.responses import Response

from tracker_server.domain import Forbidden

COOKIE = "tracker_csrf"
FIELD = "csrf_token"
_SHAPE = re.compile(r"^[A-Za-z0-9_-]{32,128}$")


def session_token(request: Request) -> str | None:
    """The browser's token, from its cookie; None when it has none (or a malformed one)."""
    value = request.cookies.get(COOKIE, "")
    return value if _SHAPE.match(value) else None


def new_token() -> str:
    """A fresh random token (256 bits)."""
    return secrets.token_urlsafe(32)


def set_cookie(response: Response, request: Request, token: str) -> None:
    """Give the browser its token (the pages' forms repeat it in a field)."""
    response.set_cookie(
        COOKIE,
        token,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def check(request: Request, form: dict[str, str]) -> None:
    """Refuse a form whose token field is missing or differs from the browser's cookie."""
    expected = session_token(request)
    sent = form.get(FIELD, "")
    if expected is None or not sent or not hmac.compare_digest(sent, expected):
        raise Forbidden(
            "form refused: its CSRF token is missing or wrong (the page is old, cookies are "
            "off, or the form came from another site); reload the page and submit again"
        )
