"""Who may talk to ``rag serve``, and how much: a keyless server answers only requests addressed to a
loopback name and not sent by a web page of another origin, and every request body is bounded before it
is read.

A keyless server listens on loopback only, but a web page in the user's browser can still reach it: with a
cross-site form post (no preflight) or by pointing its own host name at 127.0.0.1 (DNS rebinding). The
Host and Origin checks refuse both.

Usage, on a FastAPI ``app`` (``create_app`` does this when no API keys are set)::

    app.add_middleware(LoopbackGuard, allowed_origins=["http://localhost:3000"])
"""
from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


def host_name(host: str) -> str:
    """The name in a Host header, without its port: "localhost:8000" is "localhost", "[::1]:80" is "::1"."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback_origin(origin: str) -> bool:
    """Whether a browser Origin ("http://127.0.0.1:8501") is a page served from this machine."""
    try:
        return urlsplit(origin).hostname in LOOPBACK_NAMES
    except ValueError:
        return False


def refusal(status: int, message: str) -> JSONResponse:
    """An OpenAI-style error body: one line saying why."""
    kind = "authentication_error" if status in (401, 403) else "invalid_request_error"
    return JSONResponse({"error": {"message": message, "type": kind, "code": None}}, status_code=status)


class LoopbackGuard:
    """ASGI middleware for a server without keys: a Host that is not 127.0.0.1, localhost or [::1] gets
    421, and a request from a browser page of another origin (its Origin header, or ``Sec-Fetch-Site:
    cross-site`` without one) gets 403, unless that origin is in ``allowed_origins`` (``--cors-origin``)."""

    def __init__(self, app: ASGIApp, allowed_origins: Sequence[str] = ()) -> None:
        self.app = app
        self.allowed = {o.rstrip("/") for o in allowed_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            host = headers.get(b"host", b"").decode("latin-1")
            origin = headers.get(b"origin", b"").decode("latin-1").rstrip("/")
            problem = None
            if host_name(host) not in LOOPBACK_NAMES:
                problem = (421, f"this server answers only to localhost, not to {host or 'a request without a Host'!r}")
            elif origin and origin not in self.allowed and not is_loopback_origin(origin):
                problem = (403, f"requests from web pages of {origin} are refused (add it with --cors-origin)")
            elif not origin and headers.get(b"sec-fetch-site") == b"cross-site":
                problem = (403, "cross-site requests from web pages are refused")
            if problem is not None:
                await refusal(*problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """ASGI middleware refusing request bodies over their route's limit before reading them: uploads (a
    ``POST`` to ``upload_path``) up to ``upload_bytes``, everything else up to ``json_bytes``. A body
    must say its length (Content-Length)."""

    def __init__(self, app: ASGIApp, upload_path: str, upload_bytes: int, json_bytes: int) -> None:
        self.app = app
        self.upload_path = upload_path
        self.upload_bytes = upload_bytes
        self.json_bytes = json_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = dict(scope["headers"])
            length = headers.get(b"content-length")
            limit = self.upload_bytes if scope["path"] == self.upload_path else self.json_bytes
            problem = None
            if length is None and headers.get(b"transfer-encoding"):
                problem = (411, "send the request body with a Content-Length")
            elif length is not None and (not length.isdigit() or int(length) > limit):
                problem = (413, f"request body over the {limit / (1024 * 1024):g} MB limit of {scope['path']}")
            if problem is not None:
                await refusal(*problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)
