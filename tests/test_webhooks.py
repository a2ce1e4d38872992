"""The webhooks as Twilio meets them: signatures, TwiML, the holding loop, texts to the number."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient
from twilio.request_validator import RequestValidator

from tests.conftest import (
    AUTH_TOKEN,
    CALLER,
    PUBLIC_URL,
    FakeRecordings,
    FakeTexts,
    Twilio,
    heard,
)
from voice_app.app import create_app, get_services
from voice_app.asr.scripted import embed_transcript
from voice_app.errors import ConfigError
from voice_app.services import Services
from voice_app.simulator.call import silence_wav
from voice_app.store import OptOutRow

CALL = "CA" + "1" * 32
RECORDING = "https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE" + "2" * 32
TWILIO_ROUTES = [
    "/voice/incoming",
    "/voice/consent",
    "/voice/answer?turn=0",
    "/voice/wait?turn=0&attempt=1",
    "/voice/status",
    "/sms/incoming",
]
QUESTION = "What do you consider to be the most important accomplishment in your career to date?"


def call_params(**extra: str) -> dict[str, str]:
    return {
        "CallSid": CALL,
        "From": CALLER,
        "To": "+15555550199",
        "CallStatus": "in-progress",
        **extra,
    }


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


@pytest.mark.parametrize("route", TWILIO_ROUTES)
def test_every_twilio_route_refuses_a_request_without_a_signature(
    twilio: Twilio, route: str
) -> None:
    assert twilio.post(route, sign=False, **call_params()).status_code == 403


@pytest.mark.parametrize("route", TWILIO_ROUTES)
def test_every_twilio_route_refuses_a_signature_made_with_another_token(
    client: FlaskClient, route: str
) -> None:
    forged = Twilio(client, token="not-the-account-token")
    assert forged.post(route, **call_params()).status_code == 403


def test_a_tampered_parameter_breaks_the_signature(client: FlaskClient) -> None:
    params = call_params()
    signature = RequestValidator(AUTH_TOKEN).compute_signature(
        PUBLIC_URL + "/voice/incoming", params
    )
    tampered = {**params, "From": "+15555550666"}

    response = client.post(
        "/voice/incoming", data=tampered, headers={"X-Twilio-Signature": signature}
    )

    assert response.status_code == 403


def test_the_signed_url_is_the_public_one_not_the_one_the_server_sees(
    client: FlaskClient,
) -> None:
    # Behind a proxy the app sees http://localhost/...; Twilio signed the public https URL.
    params = call_params()
    local = RequestValidator(AUTH_TOKEN).compute_signature(
        "http://localhost/voice/incoming", params
    )

    response = client.post("/voice/incoming", data=params, headers={"X-Twilio-Signature": local})

    assert response.status_code == 403


def test_missing_call_sid_is_a_bad_request(twilio: Twilio) -> None:
    assert twilio.post("/voice/incoming", From=CALLER).status_code == 400


def test_no_auth_token_means_the_app_refuses_to_serve(app_config: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="TWILIO_AUTH_TOKEN") as error:
        create_app({**app_config, "twilio_auth_token": ""})
    assert "VOICE_APP_INSECURE_SKIP_SIGNATURE" in str(error.value)


def test_the_development_switch_serves_unsigned_requests_and_says_so_loudly(
    app_config: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        app = create_app({**app_config, "twilio_auth_token": "", "insecure_skip_signature": True})
    try:
        response = app.test_client().post("/voice/incoming", data=call_params())
        assert response.status_code == 200
        assert any("NOT checked" in record.message for record in caplog.records)
    finally:
        get_services(app).store.dispose()


def test_an_incoming_call_hears_the_question_and_is_recorded_with_room_to_think(
    twilio: Twilio, services: Services
) -> None:
    root = twilio.twiml("/voice/incoming", **call_params(CallStatus="ringing"))

    texts = heard(root, services)
    assert texts[0] == services.settings.greeting
    assert texts[-1] == QUESTION
    record = root.find("./Record")
    assert record is not None
    assert record.get("action") == f"{PUBLIC_URL}/voice/answer?turn=0"
    assert int(record.get("timeout", "5")) >= 6  # a thinking pause must not end the answer
    assert int(record.get("maxLength", "0")) >= 120
    assert "#" in record.get("finishOnKey", "") and "*" in record.get("finishOnKey", "")
    # When nothing is recorded Twilio skips the action and runs the next verb.
    redirect = root.find("./Redirect")
    assert redirect is not None and query_of(redirect.text or "")["silent"] == ["1"]


def test_greeting_says_how_audio_is_handled_and_how_to_steer(services: Services) -> None:
    greeting = services.settings.greeting.lower()
    assert "transcribed" in greeting and "no audio is kept" in greeting
    assert "pound" in greeting and "star" in greeting


def test_a_rendered_prompt_is_played_and_an_unrendered_one_is_said(
    app_config: dict[str, Any], tmp_path: Path, recordings: FakeRecordings, texts: FakeTexts
) -> None:
    fresh = {**app_config, "data_dir": str(tmp_path / "fresh")}
    app = create_app(fresh, recordings=recordings, text_sender=texts)
    services = get_services(app)
    try:
        twilio = Twilio(app.test_client())
        before = twilio.twiml("/voice/incoming", **call_params())
        assert [say.text for say in before.findall("./Say")][-1] == QUESTION
        assert before.find("./Play") is None

        services.worker.drain()  # renders the prompts the call could not play

        after = twilio.twiml("/voice/incoming", **call_params(CallSid="CA" + "3" * 32))
        plays = after.findall("./Play")
        assert plays and after.find("./Say") is None
        audio = app.test_client().get(urlsplit(plays[-1].text or "").path)
        assert audio.status_code == 200 and audio.mimetype == "audio/wav"
        assert audio.data.startswith(b"RIFF")
        assert heard(after, services)[-1] == QUESTION
    finally:
        services.store.dispose()


def test_prompt_files_cannot_be_read_outside_the_cache(client: FlaskClient) -> None:
    assert client.get("/prompts/..%2F..%2Fetc%2Fpasswd.wav").status_code == 404
    assert client.get("/prompts/" + "0" * 32 + ".wav").status_code == 404


def test_an_answer_is_acknowledged_at_once_and_transcribed_in_the_background(
    twilio: Twilio, services: Services, recordings: FakeRecordings
) -> None:
    twilio.twiml("/voice/incoming", **call_params())
    recordings.audio[RECORDING] = embed_transcript(silence_wav(2), "we shipped it on time")

    root = twilio.twiml(
        "/voice/answer?turn=0",
        **call_params(RecordingUrl=RECORDING, RecordingDuration="2", Digits="#"),
    )

    assert recordings.fetched == []  # nothing slow on the request thread
    # The texting question: a short recording that 1 or 2 on the keypad ends.
    ask = root.find("./Record")
    assert ask is not None and urlsplit(ask.get("action", "")).path == "/voice/consent"
    assert set(ask.get("finishOnKey", "")) == {"1", "2"}

    held = twilio.twiml("/voice/consent", **call_params(Digits="1"))
    pause, redirect = held.find("./Pause"), held.find("./Redirect")
    assert pause is not None and redirect is not None
    assert query_of(redirect.text or "") == {"turn": ["0"], "attempt": ["1"]}

    still = twilio.twiml("/voice/wait?turn=0&attempt=1", **call_params())
    redirect = still.find("./Redirect")
    assert redirect is not None and query_of(redirect.text or "")["attempt"] == ["2"]

    services.worker.drain()
    follow_up = twilio.twiml("/voice/wait?turn=0&attempt=2", **call_params())

    record = follow_up.find("./Record")
    assert record is not None
    assert query_of(record.get("action", ""))["turn"] == ["1"]
    assert query_of(record.get("action", ""))["probe"]  # the dimension the follow-up digs into
    assert recordings.deleted == [RECORDING]  # audio is not kept once transcribed


def test_a_request_for_an_unknown_call_gets_a_polite_goodbye(
    twilio: Twilio, services: Services
) -> None:
    root = twilio.twiml("/voice/wait?turn=3&attempt=1", **call_params(CallSid="CA" + "9" * 32))

    assert heard(root, services) == [services.script.lines.unknown_call]
    assert root.find("./Hangup") is not None


def test_the_status_callback_is_answered_with_empty_twiml(twilio: Twilio) -> None:
    twilio.twiml("/voice/incoming", **call_params())

    root = twilio.twiml("/voice/status", **call_params(CallStatus="completed"))

    assert list(root) == []


def test_stop_and_start_texts_switch_feedback_texts_off_and_on(
    twilio: Twilio, services: Services
) -> None:
    stop = twilio.twiml("/sms/incoming", From=CALLER, Body="Stop")
    with services.store.transaction() as session:
        assert session.get(OptOutRow, CALLER) is not None
    assert stop.find("./Message") is None

    twilio.twiml("/sms/incoming", From=CALLER, Body="START")
    with services.store.transaction() as session:
        assert session.get(OptOutRow, CALLER) is None


def test_help_text_says_what_the_line_is(twilio: Twilio) -> None:
    root = twilio.twiml("/sms/incoming", From=CALLER, Body="help")

    message = root.find("./Message")
    assert message is not None and "practice" in (message.text or "").lower()
    assert "STOP" in (message.text or "")
