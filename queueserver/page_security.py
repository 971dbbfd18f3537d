"""What keeps the server's web pages safe: escaped values and a Content-Security-Policy.

The clinician console keeps a token in the tab's sessionStorage, so a script injected into any
page of the origin could take it. Two layers stop that:

* ``html_page(template, **values)`` is the only way a handler puts a value into HTML: every
  value is escaped by the function, not by remembering to.
* ``SecurityHeaders`` adds a Content-Security-Policy to every HTML answer that allows only the
  inline ``<script>`` and ``<style>`` blocks of the shipped pages, by their SHA-256 hashes
  computed from the files at start. A script that reaches a page any other way (an unescaped
  value somewhere) does not run; nor does any inline event handler or ``javascript:`` URL.
"""
from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_INLINE = re.compile(r"<(script|style)(\s[^>]*)?>(.*?)</\1>", re.DOTALL | re.IGNORECASE)


def html_page(template: str, *, status_code: int = 200, **values: object) -> HTMLResponse:
    """``template`` with ``{name}`` fields filled by the HTML-escaped ``values``."""
    return HTMLResponse(template.format(**{k: html.escape(str(v), quote=True) for k, v in values.items()}),
                        status_code=status_code)


def inline_hashes(pages: Iterable[Path]) -> dict[str, list[str]]:
    """CSP source expressions (``'sha256-...'``) of the inline script and style blocks of ``pages``."""
    found: dict[str, list[str]] = {"script": [], "style": []}
    for page in pages:
        for kind, attributes, body in _INLINE.findall(page.read_text(encoding="utf-8")):
            if "src=" in attributes.lower():  # a script file of this origin: 'self' covers it
                continue
            digest = base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode()
            found[kind.lower()].append(f"'sha256-{digest}'")
    return found


def content_security_policy(pages: Iterable[Path]) -> str:
    """The policy of every HTML answer: our own inline blocks, API calls to this origin, nothing else."""
    hashes = inline_hashes(pages)
    return "; ".join([
        "default-src 'none'",
        "script-src " + " ".join(["'self'", *hashes["script"]]),
        "style-src " + " ".join(["'self'", *hashes["style"]]),
        "connect-src 'self'",
        "img-src 'self' data: blob:",  # blob: the dashboard's plots and the fleet's screenshots, fetched with the token
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ])


class SecurityHeaders:
    """ASGI middleware: the CSP (and no-sniff, no-referrer, no framing) on HTML answers; nosniff on all."""

    def __init__(self, app: ASGIApp, *, policy: str) -> None:
        self.app = app
        self.html_headers = [(b"content-security-policy", policy.encode()), (b"referrer-policy", b"no-referrer"),
                             (b"x-frame-options", b"DENY")]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", []))
                headers.append((b"x-content-type-options", b"nosniff"))
                if any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers):
                    headers.extend(self.html_headers)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
