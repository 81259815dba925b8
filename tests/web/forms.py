"""Posting the pages' forms as a browser does: the session's CSRF token (from the cookie a
page GET sets) in the ``csrf_token`` field, and ``confirm=yes`` for what asks first."""

from __future__ import annotations

from typing import Any

COOKIE = "tracker_csrf"


def csrf_token(client: Any, page: str = "/locks") -> str:
    """The browser session's CSRF token (a page GET sets the cookie when there is none)."""
    if COOKIE not in client.cookies:
        response = client.get(page)
        assert response.status_code == 200, response.text
    return str(client.cookies[COOKIE])


def post_form(
    client: Any, path: str, data: dict[str, str] | None = None, *, confirm: bool = True, **kw: Any
) -> Any:
    """POST a page form with the CSRF token (and ``confirm=yes`` unless told not to)."""
    fields = {"csrf_token": csrf_token(client), **(data or {})}
    if confirm:
        fields["confirm"] = "yes"
    kw.setdefault("follow_redirects", False)
    return client.post(path, data=fields, **kw)
