"""Sending feedback texts through Twilio's Messages API, and what each refusal means for retries."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, CALLER, LINE_NUMBER, settings_for
from voice_app.errors import SmsError
from voice_app.simulator.standin import TwilioStandIn
from voice_app.sms import UNSUBSCRIBED, TwilioTextSender, make_text_sender

MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


@pytest.fixture(scope="module")
def standin() -> Iterator[TwilioStandIn]:
    server = TwilioStandIn(ACCOUNT_SID, AUTH_TOKEN).start()
    yield server
    server.stop()


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # the assertions say what was requested; an access log only adds noise


class RefusingTwilio:
    """A Messages endpoint on 127.0.0.1 that answers every text with the error set in `answer`."""

    def __init__(self) -> None:
        self.answer: tuple[int, dict[str, Any]] = (500, {})
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._server = make_server(
            "127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_QuietHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _wsgi(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        self.requests.append((request.method, request.path, dict(request.form)))
        status, body = self.answer
        response = Response(json.dumps(body), status=status, mimetype="application/json")
        return response(environ, start_response)


@pytest.fixture(scope="module")
def refusing_server() -> Iterator[RefusingTwilio]:
    server = RefusingTwilio()
    yield server
    server.stop()


@pytest.fixture
def refusing(refusing_server: RefusingTwilio) -> RefusingTwilio:
    refusing_server.requests.clear()
    return refusing_server


def twilio_error(status: int, code: int, message: str) -> dict[str, Any]:
    """An error body as Twilio's 2010 API sends it."""
    more_info = f"https://www.twilio.com/docs/errors/{code}"
    return {"code": code, "message": message, "more_info": more_info, "status": status}


def test_a_text_arrives_from_the_line_with_the_body_and_its_sid(standin: TwilioStandIn) -> None:
    sender = TwilioTextSender(settings_for(standin.base_url))
    body = "Your practice answer: strong result with a number. Next time, say what you did."

    sid = sender.send(CALLER, body)

    sent = [text for text in standin.texts if text.sid == sid]
    assert len(sent) == 1
    assert (sent[0].to, sent[0].from_, sent[0].body) == (CALLER, LINE_NUMBER, body)


def test_a_text_with_the_wrong_token_is_refused_for_good(standin: TwilioStandIn) -> None:
    sender = TwilioTextSender(settings_for(standin.base_url, twilio_auth_token="wrong-token"))
    before = len(standin.texts)

    with pytest.raises(SmsError) as refused:
        sender.send(CALLER, "hello")

    assert refused.value.permanent is True
    assert len(standin.texts) == before


@pytest.mark.parametrize(
    ("status", "code", "permanent"),
    [
        pytest.param(400, UNSUBSCRIBED, True, id="unsubscribed"),
        pytest.param(400, 21211, True, id="invalid-number"),
        pytest.param(429, 20429, False, id="too-many-requests"),
        pytest.param(500, 20500, False, id="server-error"),
        pytest.param(503, 20503, False, id="unavailable"),
    ],
)
def test_twilio_refusals_say_whether_a_retry_can_help(
    refusing: RefusingTwilio, status: int, code: int, permanent: bool
) -> None:
    refusing.answer = (status, twilio_error(status, code, "refused"))
    sender = TwilioTextSender(settings_for(refusing.base_url))

    with pytest.raises(SmsError) as refused:
        sender.send(CALLER, "Your feedback")

    assert refused.value.permanent is permanent
    assert refused.value.code == code
    method, path, form = refusing.requests[0]
    assert (method, path) == ("POST", MESSAGES_PATH)
    assert (form["To"], form["From"], form["Body"]) == (CALLER, LINE_NUMBER, "Your feedback")


def test_an_error_page_that_is_not_json_is_still_worth_retrying(refusing: RefusingTwilio) -> None:
    refusing.answer = (502, {})
    sender = TwilioTextSender(settings_for(refusing.base_url))

    with pytest.raises(SmsError) as refused:
        sender.send(CALLER, "Your feedback")

    assert refused.value.permanent is False


def test_an_unreachable_twilio_is_worth_retrying() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    sender = TwilioTextSender(settings_for(f"http://127.0.0.1:{closed_port}"))

    with pytest.raises(SmsError) as refused:
        sender.send(CALLER, "Your feedback")

    assert refused.value.permanent is False


@pytest.mark.parametrize(
    "missing", ["twilio_account_sid", "twilio_auth_token", "twilio_phone_number"]
)
def test_texting_without_credentials_refuses_and_names_the_settings(
    refusing: RefusingTwilio, missing: str
) -> None:
    sender = make_text_sender(settings_for(refusing.base_url, **{missing: ""}))

    with pytest.raises(SmsError) as refused:
        sender.send(CALLER, "Your feedback")

    assert refused.value.permanent is True
    for setting in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_PHONE_NUMBER"):
        assert setting in str(refused.value)
    assert refusing.requests == []
