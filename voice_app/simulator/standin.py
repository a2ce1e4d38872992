"""A local stand-in for the parts of Twilio's REST API the app uses, on 127.0.0.1.

It serves the recordings the simulated caller makes (GET), deletes them (DELETE), and receives
the texts the app sends (POST Messages.json), checking the account's credentials like Twilio.
The app reaches it through `TWILIO_API_BASE_URL`.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from wsgiref.types import StartResponse, WSGIEnvironment

from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

ACCOUNT_PATH = "/2010-04-01/Accounts/<account>"


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


class TwilioStandIn:
    """Recordings and Messages endpoints of Twilio's 2010 API, in memory, on a loopback port."""

    def __init__(self, account_sid: str, auth_token: str, port: int = 0) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._lock = threading.Lock()
        self._recordings: dict[str, bytes] = {}
        self.deleted: list[str] = []
        self.texts: list[SentText] = []
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
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

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
        except Exception:
            return _error(404, 20404, "The requested resource was not found")
        if not self._authorised(request) or args["account"] != self.account_sid:
            return _error(401, 20003, "Authenticate")
        if endpoint == "recording":
            return self._recording(request, args["sid"], args.get("ext", "wav"))
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
        if not to or not body or not sender:
            return _error(400, 21604, "A 'To', 'From' and 'Body' parameter is required.")
        text = SentText(sid=new_sid("SM"), to=to, from_=sender, body=body)
        with self._lock:
            self.texts.append(text)
        now = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
        resource: dict[str, Any] = {
            "sid": text.sid,
            "account_sid": self.account_sid,
            "to": to,
            "from": sender,
            "body": body,
            "status": "queued",
            "num_segments": "1",
            "direction": "outbound-api",
            "date_created": now,
            "date_updated": now,
            "date_sent": None,
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
        return Response(json.dumps(resource), status=201, mimetype="application/json")


class _QuietHandler(WSGIRequestHandler):
    """Serves without an access log line per request: the dialog is what the user reads."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def _error(status: int, code: int, message: str) -> Response:
    body = {"code": code, "message": message, "more_info": "", "status": status}
    return Response(json.dumps(body), status=status, mimetype="application/json")
