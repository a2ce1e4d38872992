"""Every kind of REST request the app makes, checked against Twilio's own API description.

Prism mocks the description (see tests/twilio_mock.py) and refuses a request that breaks it; the
recording proxy in front of it also reports parameters the description does not declare. Prism
answers with the description's example data, so these tests also show the app copes with
Twilio's documented answers.
"""

from __future__ import annotations

import calendar
import re
import time
from typing import TYPE_CHECKING, Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select

from tests.conftest import (
    ACCOUNT_SID,
    CALLER,
    LINE_NUMBER,
    PUBLIC_URL,
    FakeRecordings,
    Twilio,
    settings_for,
)
from voice_app.app import create_app, get_services
from voice_app.asr.scripted import embed_transcript
from voice_app.errors import RecordingFetchError, SmsError
from voice_app.recordings import TwilioRecordings
from voice_app.simulator.call import silence_wav
from voice_app.simulator.standin import new_sid
from voice_app.sms import TwilioTextSender
from voice_app.store import OutboxRow

if TYPE_CHECKING:
    from tests.twilio_mock import TwilioMock

# The `prism` fixture; imported by pytest, so that its assertions are rewritten too.
pytest_plugins = ["tests.twilio_mock"]

MESSAGES = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
BODY = "Your practice answer had a clear result. Next time, say what you did yourself."
# As in tests/twilio_mock.py: a test making more requests than this was stopped.
MAX_EXCHANGES_PER_TEST = 60
MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-fA-F]{32}$")
# The first message of the description's example list ("readFullPage1"), as Prism serves it.
EXAMPLE_MESSAGE = {
    "sid": "SMded05904ccb347238880ca9264e8fe1c",
    "to": "+18182008801",
    "from": "+12019235161",
    "body": "testing",
    "date_sent": calendar.timegm((2019, 5, 24, 17, 44, 50, 0, 0, 0)),
}


def recording_url(base_url: str) -> str:
    return f"{base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{new_sid('RE')}"


def test_a_feedback_text_is_a_valid_message_create(prism: TwilioMock) -> None:
    sid = TwilioTextSender(settings_for(prism.url)).send(CALLER, BODY)

    exchange = prism.only_exchange()
    assert (exchange.method, exchange.path) == ("POST", MESSAGES)
    assert exchange.problems() == []
    assert (exchange.form["To"], exchange.form["From"], exchange.form["Body"]) == (
        CALLER,
        LINE_NUMBER,
        BODY,
    )
    assert MESSAGE_SID.match(sid)  # the example's SID, read from Twilio's documented answer


def test_a_feedback_text_with_a_status_callback_is_a_valid_message_create(
    prism: TwilioMock,
) -> None:
    callback = f"{PUBLIC_URL}/sms/status"

    TwilioTextSender(settings_for(prism.url)).send(CALLER, BODY, status_callback=callback)

    exchange = prism.only_exchange()
    assert exchange.problems() == []
    assert exchange.form["StatusCallback"] == callback


def test_looking_for_a_text_already_sent_is_a_valid_message_list(prism: TwilioMock) -> None:
    since = time.time() - 60
    sender = TwilioTextSender(settings_for(prism.url))

    # Prism's example list holds other numbers' messages: none is ours.
    assert sender.find_sent(CALLER, BODY, since) is None

    # Prism's example always has a next page (of its own account); the proxy stops a walk that
    # never ends, and every page the app follows must be a valid request too.
    assert 0 < len(prism.exchanges) < MAX_EXCHANGES_PER_TEST
    for exchange in prism.exchanges:
        assert exchange.method == "GET" and exchange.path.endswith("/Messages.json")
        assert exchange.problems() == []
    first = prism.exchanges[0]
    assert first.path == MESSAGES
    query = dict(first.query)
    assert (query["To"], query["From"]) == (CALLER, LINE_NUMBER)
    # A DateSent filter takes a GMT day: the day `since` falls on must be inside it. (A text
    # still queued at Twilio has no sent date, so the app may well not filter by it.)
    for name in ("DateSent", "DateSent>"):
        if name in query:
            day = calendar.timegm(time.strptime(query[name][:10], "%Y-%m-%d"))
            assert day <= since
    assert "DateSent<" not in query


def test_a_text_already_sent_is_found_in_twilios_documented_list(prism: TwilioMock) -> None:
    sender = TwilioTextSender(settings_for(prism.url, twilio_phone_number=EXAMPLE_MESSAGE["from"]))

    found = sender.find_sent(
        str(EXAMPLE_MESSAGE["to"]), str(EXAMPLE_MESSAGE["body"]), EXAMPLE_MESSAGE["date_sent"] - 5
    )

    assert found == EXAMPLE_MESSAGE["sid"]
    assert all(exchange.problems() == [] for exchange in prism.exchanges)


def test_deleting_a_recording_is_a_valid_recording_delete(prism: TwilioMock) -> None:
    url = recording_url(prism.url)

    TwilioRecordings(settings_for(prism.url)).delete(url)

    exchange = prism.only_exchange()
    assert exchange.method == "DELETE"
    assert exchange.path == url.removeprefix(prism.url) + ".json"
    assert exchange.status == 204
    assert exchange.problems() == []


def test_fetching_a_recordings_audio_is_not_described_but_names_a_described_recording(
    prism: TwilioMock,
) -> None:
    """Twilio's description has no path for a recording's media (`Recordings/{Sid}.wav`, which
    Twilio serves and documents in prose): it describes only the resource's JSON
    (`Recordings/{Sid}.json`). So Prism cannot check the download itself; what is checked is
    that the account and recording SIDs the app puts in that path are the ones the described
    Recording resource accepts. The download is covered against the stand-in in
    tests/test_recordings.py.
    """
    url = recording_url(prism.url)

    with pytest.raises(RecordingFetchError):
        TwilioRecordings(settings_for(prism.url)).fetch(url)  # Prism: no such path

    exchange = prism.only_exchange()
    assert exchange.method == "GET" and exchange.path.endswith(".wav")
    assert prism.operation("GET", exchange.path) is None  # still undescribed: check it if it is
    described_path = exchange.path.removesuffix(".wav") + ".json"
    operation = prism.operation("GET", described_path)
    assert operation is not None
    parameters = prism.description()["paths"][operation.template]["get"]["parameters"]
    sids = re.findall(r"(?:AC|RE)[0-9a-fA-F]{32}", described_path)
    values = dict(zip(("AccountSid", "Sid"), sids, strict=True))
    for parameter in parameters:
        if parameter["in"] == "path":
            assert re.match(parameter["schema"]["pattern"], values[parameter["name"]])


class SplitRecordings:
    """Audio from memory (Prism has none to serve), deletions through the real REST client."""

    def __init__(self, audio: FakeRecordings, rest: TwilioRecordings) -> None:
        self.audio = audio
        self.rest = rest

    def fetch(self, recording_url: str) -> bytes:
        return self.audio.fetch(recording_url)

    def delete(self, recording_url: str) -> None:
        self.rest.delete(recording_url)


def test_a_whole_call_makes_only_valid_requests(
    prism: TwilioMock, app_config: dict[str, Any]
) -> None:
    config = {**app_config, "twilio_api_base_url": prism.url, "delete_recordings": True}
    url = recording_url(prism.url)
    audio = FakeRecordings()
    audio.audio[url] = embed_transcript(silence_wav(3), "i led the move and cut costs by a third")
    recordings = SplitRecordings(audio, TwilioRecordings(settings_for(prism.url)))
    app: Flask = create_app(config, recordings=recordings)
    services = get_services(app)
    try:
        call = {"CallSid": "CA" + "7" * 32, "From": CALLER, "To": "+15555550199"}
        twilio = Twilio(app.test_client())
        twilio.twiml("/voice/incoming", **call, CallStatus="in-progress")
        twilio.twiml("/voice/answer?turn=0", **call, RecordingUrl=url, Digits="#")
        twilio.twiml("/voice/consent", **call, Digits="1")
        twilio.post("/voice/status", **call, CallStatus="completed")
        services.worker.drain()

        kinds = sorted({(e.method, e.path.rsplit("/", 2)[-2]) for e in prism.exchanges})
        assert ("POST", ACCOUNT_SID) in kinds  # .../Accounts/AC.../Messages.json
        assert ("DELETE", "Recordings") in kinds
        for exchange in prism.exchanges:
            assert exchange.problems() == [], f"{exchange.method} {exchange.path}"
        texts = [e for e in prism.exchanges if e.method == "POST"]
        assert len(texts) == 1
        assert texts[0].form.get("StatusCallback") == f"{PUBLIC_URL}/sms/status"
        with services.store.transaction() as session:
            message = session.scalars(select(OutboxRow)).one()
            assert message.state == "sent" and MESSAGE_SID.match(message.message_sid or "")
    finally:
        services.worker.stop()
        services.store.dispose()


# The checks can fail: requests that break the description are refused or reported.


def test_a_text_with_a_status_callback_that_is_no_url_is_refused(prism: TwilioMock) -> None:
    sender = TwilioTextSender(settings_for(prism.url))

    with pytest.raises(SmsError) as refused:
        sender.send(CALLER, BODY, status_callback="not a url")

    assert refused.value.permanent is True
    assert prism.only_exchange().status == 422
    assert any("StatusCallback" in problem for problem in prism.only_exchange().problems())


def test_a_text_without_a_recipient_is_refused(prism: TwilioMock) -> None:
    answer = requests.post(
        prism.url + MESSAGES, data={"From": LINE_NUMBER, "Body": BODY}, auth=(ACCOUNT_SID, "x")
    )

    assert answer.status_code == 422
    assert any("'To'" in problem for problem in prism.only_exchange().problems())


def test_a_request_without_credentials_is_refused(prism: TwilioMock) -> None:
    answer = requests.delete(recording_url(prism.url) + ".json")

    assert answer.status_code == 401
    assert prism.only_exchange().problems() != []


def test_a_misspelt_filter_is_reported_though_prism_lets_it_pass(prism: TwilioMock) -> None:
    answer = requests.get(
        prism.url + MESSAGES,
        params={"To": CALLER, "DateSentAfter": "2024-01-01"},
        auth=(ACCOUNT_SID, "x"),
    )

    assert answer.status_code == 200  # Prism ignores query parameters it does not know
    template = MESSAGES.replace(ACCOUNT_SID, "{AccountSid}")
    assert prism.only_exchange().problems() == [
        f"query parameter 'DateSentAfter' is not declared by {template}"
    ]
