"""Checking that a request really comes from Twilio (X-Twilio-Signature).

Twilio signs the URL it called. Behind a proxy or a tunnel the URL the app sees differs from that
one, so the URL is rebuilt from the configured public base URL plus the raw path and query of the
request, exactly as they arrived.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from flask import Request
from twilio.request_validator import RequestValidator

# Characters a client leaves unescaped in a path (RFC 3986 pchar), so re-quoting matches it.
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"


def raw_path_and_query(request: Request) -> str:
    """The request's path and query string as the client sent them, escapes untouched."""
    environ = request.environ
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        # Some servers pass an absolute URI through; keep only its path and query.
        if "://" in raw:
            parts = urlsplit(raw)
            raw = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return str(raw)
    path = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""), safe=_PATH_SAFE)
    query = environ.get("QUERY_STRING", "")
    return f"{path}?{query}" if query else path


def signed_url(request: Request, public_base_url: str, *, websocket: bool = False) -> str:
    """The URL Twilio signed: the public base URL (when configured) plus the raw path and query.

    A WebSocket upgrade (a Media Stream) was requested at the ws(s):// form of that URL.
    """
    base = public_base_url.rstrip("/") if public_base_url else request.host_url.rstrip("/")
    if websocket:
        base = websocket_url(base)
    return base + raw_path_and_query(request)


def websocket_url(url: str) -> str:
    """An http(s) URL in its ws(s) form (https -> wss, http -> ws)."""
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    return url


def is_signed_by_twilio(
    request: Request, auth_token: str, public_base_url: str, *, websocket: bool = False
) -> bool:
    """True when X-Twilio-Signature matches the request's URL and form parameters."""
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        return False
    params: Any = request.form if request.method == "POST" and not websocket else {}
    validator = RequestValidator(auth_token)
    url = signed_url(request, public_base_url, websocket=websocket)
    return bool(validator.validate(url, params, signature))
