"""A local stand-in for the parts of Twilio's REST API the app uses, on 127.0.0.1.

It serves the recordings the simulated caller makes (GET), deletes them (DELETE), receives the
texts the app sends (POST Messages.json) and lists them (GET Messages.json, with Twilio's To, From
and DateSent filters), checking the account's credentials like Twilio. The app reaches it through
`TWILIO_API_BASE_URL`.

Tests make the Messages endpoint misbehave the ways the real one can, one scripted fault per
request (`script_message_faults`, `script_list_faults`):

    "ok"               answer normally
    "500", "429"       that HTTP status with a Twilio-style JSON error; nothing is sent
    "21610"            400, code 21610: the recipient opted out (texted STOP); nothing is sent
    "timeout"          wait `timeout_delay_seconds` (longer than the app's timeout), then close
                       the connection; nothing is sent
    "drop"             close the connection without an answer; nothing is sent
    "accept-then-drop" send the text, then close the connection without an answer (the app
                       cannot know it went out: a crash between the call and its answer)
"""

from __future__ import annotations

import base64
import calendar
import contextlib
import json
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode
from wsgiref.types import StartResponse, WSGIEnvironment

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

ACCOUNT_PATH = "/2010-04-01/Accounts/<account>"

# The faults a scripted request can meet; see the module docstring.
MESSAGE_FAULTS = frozenset({"ok", "500", "429", "21610", "timeout", "drop", "accept-then-drop"})
LIST_FAULTS = frozenset({"ok", "500", "429", "timeout", "drop"})
# Twilio's list pages hold 50 resources unless PageSize says otherwise (1000 at most).
_DEFAULT_PAGE_SIZE = 50
_MAX_PAGE_SIZE = 1000
_TWILIO_ERRORS = {
    "500": (500, 20500, "Internal Server Error"),
    "429": (429, 20429, "Too Many Requests"),
    "21610": (400, 21610, "Attempt to send to unsubscribed recipient"),
}


def new_sid(prefix: str) -> str:
    """A Twilio-shaped SID: two letters and 32 hex digits."""
    return prefix + secrets.token_hex(16)


@dataclass(frozen=True)
class SentText:
    """A text the app handed to the stand-in."""

    sid: str
    to: str
    from_: str
    body: str
    status_callback: str | None = None
    sent_at: float = 0.0


class _DropConnection(ConnectionAbortedError):
    """Ends a request without an answer; the server treats it as a dropped connection."""


class TwilioStandIn:
    """Recordings and Messages endpoints of Twilio's 2010 API, in memory, on a loopback port."""

    def __init__(self, account_sid: str, auth_token: str, port: int = 0) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._lock = threading.Lock()
        self._recordings: dict[str, bytes] = {}
        self.deleted: list[str] = []
        self.texts: list[SentText] = []
        # Every POST to Messages.json, including the ones a fault swallowed.
        self.message_attempts = 0
        # The query of every GET of Messages.json, as the app sent it.
        self.list_queries: list[dict[str, str]] = []
        self.timeout_delay_seconds = 15.0  # longer than the app's REST timeout
        self._message_faults: deque[str] = deque()
        self._list_faults: deque[str] = deque()
        self._stopping = threading.Event()
        self._urls = Map(
            [
                Rule(f"{ACCOUNT_PATH}/Recordings/<sid>", endpoint="recording"),
                Rule(f"{ACCOUNT_PATH}/Recordings/<sid>.<ext>", endpoint="recording"),
                Rule(f"{ACCOUNT_PATH}/Messages.json", endpoint="messages"),
            ]
        )
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", port, self._wsgi, threaded=True, request_handler=_QuietHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """The URL to give the app as TWILIO_API_BASE_URL."""
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> TwilioStandIn:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (requests held by a "timeout" fault end at once)."""
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def script_message_faults(
        self, faults: Iterable[str], *, timeout_delay: float | None = None
    ) -> None:
        """Queue faults for the next texts, one per POST; later POSTs are answered normally."""
        self._queue(self._message_faults, faults, MESSAGE_FAULTS, timeout_delay)

    def script_list_faults(
        self, faults: Iterable[str], *, timeout_delay: float | None = None
    ) -> None:
        """Queue faults for the next listings of Messages.json, one per GET."""
        self._queue(self._list_faults, faults, LIST_FAULTS, timeout_delay)

    def pending_faults(self) -> list[str]:
        """The scripted faults no request has met yet (texts first, then listings)."""
        with self._lock:
            return [*self._message_faults, *self._list_faults]

    def texts_to(self, number: str) -> list[SentText]:
        """The texts sent to one number, oldest first."""
        with self._lock:
            return [text for text in self.texts if text.to == number]

    def _queue(
        self,
        queue: deque[str],
        faults: Iterable[str],
        known: frozenset[str],
        timeout_delay: float | None,
    ) -> None:
        faults = list(faults)
        unknown = [fault for fault in faults if fault not in known]
        if unknown:
            raise ValueError(f"unknown fault(s) {unknown}; choose from {sorted(known)}")
        with self._lock:
            queue.extend(faults)
            if timeout_delay is not None:
                self.timeout_delay_seconds = timeout_delay

    def add_recording(self, wav: bytes) -> tuple[str, str]:
        """Store a recording; its SID and the RecordingUrl Twilio would send (no extension)."""
        sid = new_sid("RE")
        with self._lock:
            self._recordings[sid] = wav
        return sid, f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Recordings/{sid}"

    def recordings_stored(self) -> int:
        """How many recordings are stored (not deleted)."""
        with self._lock:
            return len(self._recordings)

    def recording_exists(self, sid: str) -> bool:
        """True while a recording has not been deleted."""
        with self._lock:
            return sid in self._recordings

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        request = Request(environ)
        response = self._dispatch(request)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        adapter = self._urls.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match(method=None)
        except HTTPException:
            # No such resource here, as Twilio would say.
            return _error(404, 20404, "The requested resource was not found")
        if not self._authorised(request) or args["account"] != self.account_sid:
            return _error(401, 20003, "Authenticate")
        if endpoint == "recording":
            return self._recording(request, args["sid"], args.get("ext", "wav"))
        if request.method == "GET":
            return self._list_messages(request)
        if request.method != "POST":
            return _error(405, 20004, "Method not allowed")
        return self._create_message(request)

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            # A garbled header is simply not authorised.
            return False
        return user == self.account_sid and password == self.auth_token

    def _recording(self, request: Request, sid: str, ext: str) -> Response:
        with self._lock:
            wav = self._recordings.get(sid)
            if request.method == "DELETE" and wav is not None:
                del self._recordings[sid]
                self.deleted.append(sid)
        if wav is None:
            return _error(404, 20404, f"The requested resource /Recordings/{sid} was not found")
        if request.method == "DELETE":
            return Response(status=204)
        if request.method != "GET" or ext not in ("wav", ""):
            return _error(405, 20004, "Method not allowed")
        return Response(wav, mimetype="audio/x-wav")

    def _create_message(self, request: Request) -> Response:
        to, sender, body = (request.form.get(k, "") for k in ("To", "From", "Body"))
        with self._lock:
            self.message_attempts += 1
            fault = self._message_faults.popleft() if self._message_faults else "ok"
        if fault in _TWILIO_ERRORS:
            return _error(*_TWILIO_ERRORS[fault])
        if fault in ("timeout", "drop"):
            self._drop(request, wait=fault == "timeout")
        if not to or not body or not sender:
            return _error(400, 21604, "A 'To', 'From' and 'Body' parameter is required.")
        text = SentText(
            sid=new_sid("SM"),
            to=to,
            from_=sender,
            body=body,
            status_callback=request.form.get("StatusCallback") or None,
            sent_at=time.time(),
        )
        with self._lock:
            self.texts.append(text)
        if fault == "accept-then-drop":
            self._drop(request, wait=False)
        resource = self._message_resource(text)
        # Just created: Twilio answers "queued" and fills date_sent in once the carrier has it.
        resource.update(status="queued", date_sent=None)
        return Response(json.dumps(resource), status=201, mimetype="application/json")

    def _list_messages(self, request: Request) -> Response:
        query = {key: request.args.get(key, "") for key in request.args}
        with self._lock:
            self.list_queries.append(query)
            fault = self._list_faults.popleft() if self._list_faults else "ok"
        if fault in _TWILIO_ERRORS:
            return _error(*_TWILIO_ERRORS[fault])
        if fault in ("timeout", "drop"):
            self._drop(request, wait=fault == "timeout")
        try:
            # DateSent is a day (YYYY-MM-DD, GMT); the key carries "<" or ">" for a range.
            bounds = {
                op: _day_start(query[key])
                for op, key in (("=", "DateSent"), ("<", "DateSent<"), (">", "DateSent>"))
                if key in query
            }
            page = int(query.get("Page", "0"))
            page_size = min(int(query.get("PageSize", _DEFAULT_PAGE_SIZE)), _MAX_PAGE_SIZE)
        except ValueError as exc:
            return _error(400, 20001, f"Invalid list parameter: {exc}")
        if page < 0 or page_size < 1:
            return _error(400, 20001, "Page and PageSize must be positive")
        with self._lock:
            texts = list(self.texts)
        matching = [
            text
            for text in reversed(texts)  # newest first, as Twilio lists them
            if query.get("To", text.to) == text.to
            and query.get("From", text.from_) == text.from_
            and _sent_within(text.sent_at, bounds)
        ]
        start = page * page_size
        shown = matching[start : start + page_size]
        path = request.path

        def page_uri(number: int) -> str:
            filters = {k: v for k, v in query.items() if k not in ("Page", "PageSize", "PageToken")}
            return f"{path}?{urlencode({**filters, 'PageSize': page_size, 'Page': number})}"

        listing = {
            "messages": [self._message_resource(text) for text in shown],
            "page": page,
            "page_size": page_size,
            "uri": page_uri(page),
            "first_page_uri": page_uri(0),
            "next_page_uri": page_uri(page + 1) if start + page_size < len(matching) else None,
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
            "start": start,
            "end": start + len(shown) - 1,
        }
        return Response(json.dumps(listing), status=200, mimetype="application/json")

    def _message_resource(self, text: SentText) -> dict[str, Any]:
        created = _http_date(text.sent_at)
        return {
            "sid": text.sid,
            "account_sid": self.account_sid,
            "to": text.to,
            "from": text.from_,
            "body": text.body,
            "status": "sent",
            "num_segments": "1",
            "direction": "outbound-api",
            "date_created": created,
            "date_updated": created,
            "date_sent": created,
            "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{text.sid}.json",
            "error_code": None,
            "error_message": None,
            "price": None,
            "price_unit": "USD",
            "messaging_service_sid": None,
            "num_media": "0",
            "subresource_uris": {},
        }

    def _drop(self, request: Request, *, wait: bool) -> None:
        """Close the request's connection without an answer, at once or after the timeout."""
        if wait:
            self._stopping.wait(self.timeout_delay_seconds)
        connection: socket.socket = request.environ["werkzeug.socket"]
        # OSError: the client has hung up already, so the connection is gone either way.
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)
        raise _DropConnection("connection dropped on purpose")


class _QuietHandler(WSGIRequestHandler):
    """Serves without an access log line per request: the dialog is what the user reads."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def _error(status: int, code: int, message: str) -> Response:
    more_info = f"https://www.twilio.com/docs/errors/{code}"
    body = {"code": code, "message": message, "more_info": more_info, "status": status}
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _http_date(epoch: float) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(epoch))


def _day_start(value: str) -> float:
    """The start (GMT) of the day a DateSent filter names: YYYY-MM-DD, or an ISO date-time."""
    day = time.strptime(value[:10], "%Y-%m-%d")
    return float(calendar.timegm(day))


def _sent_within(sent_at: float, bounds: dict[str, float]) -> bool:
    day = _day_start(time.strftime("%Y-%m-%d", time.gmtime(sent_at)))
    return (
        day == bounds.get("=", day) and day <= bounds.get("<", day) and day >= bounds.get(">", day)
    )
