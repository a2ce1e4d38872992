"""Faults on the way: slow recognition, restarts between any two webhooks, hang-ups at any step,
recordings that never finish downloading, and phone numbers that must not reach the logs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, CALLER, FakeRecordings, FakeTexts, Twilio
from voice_app.app import create_app, get_services
from voice_app.asr import Transcript
from voice_app.asr.scripted import ScriptedRecognizer, embed_transcript
from voice_app.config import load_settings
from voice_app.errors import RecordingFetchError
from voice_app.recordings import TwilioRecordings
from voice_app.redact import MaskPhoneNumbers
from voice_app.simulator.call import silence_wav
from voice_app.store import CallRow

CALL = "CA" + "c" * 32
RECORDINGS = [
    f"https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE{n:032d}" for n in range(4)
]


def params(**extra: str) -> dict[str, str]:
    return {"CallSid": CALL, "From": CALLER, "CallStatus": "in-progress", **extra}


class BlockingRecognizer(ScriptedRecognizer):
    """Takes as long as the test wants: transcription slower than Twilio's 15 s limit."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()

    def transcribe(self, wav: bytes, **options: Any) -> Transcript:
        self.started.set()
        self.release.wait(timeout=60)
        return super().transcribe(wav)


def test_a_slow_transcription_never_holds_up_a_webhook(
    app_config: dict[str, Any], recordings: FakeRecordings, texts: FakeTexts
) -> None:
    recognizer = BlockingRecognizer()
    recordings.audio[RECORDINGS[0]] = embed_transcript(silence_wav(2), "we cut costs by half")
    app = create_app(
        {**app_config, "workers": 2},
        recognizer=recognizer,
        recordings=recordings,
        text_sender=texts,
    )
    try:
        twilio = Twilio(app.test_client())
        twilio.twiml("/voice/incoming", **params())
        twilio.twiml("/voice/answer?turn=0", **params(RecordingUrl=RECORDINGS[0], Digits="#"))
        twilio.twiml("/voice/consent", **params(Digits="1"))
        assert recognizer.started.wait(timeout=30)

        # The recognizer is stuck; the caller keeps hearing the holding loop, at once.
        for attempt in range(1, 4):
            root = twilio.twiml(f"/voice/wait?turn=0&attempt={attempt}", **params())
            assert root.find("./Pause") is not None and root.find("./Record") is None

        recognizer.release.set()
        deadline = time.monotonic() + 30
        record = None
        attempt = 4
        while record is None and time.monotonic() < deadline:
            record = twilio.twiml(f"/voice/wait?turn=0&attempt={attempt}", **params()).find(
                "./Record"
            )
            attempt += 1
            time.sleep(0.05)
        assert record is not None
    finally:
        recognizer.release.set()
        get_services(app).worker.stop()
        get_services(app).store.dispose()


@pytest.fixture
def fresh_app_per_request(
    app_config: dict[str, Any], recordings: FakeRecordings, texts: FakeTexts
) -> Iterator[Callable[[], Twilio]]:
    """Each call of it builds a new app on the same database and stops the previous one."""
    built: list[Flask] = []

    def restart() -> Twilio:
        if built:
            previous = get_services(built[-1])
            previous.worker.drain()  # the background work the old process had time for
            previous.store.dispose()
        app = create_app(app_config, recordings=recordings, text_sender=texts)
        built.append(app)
        return Twilio(app.test_client())

    yield restart
    for app in built:
        get_services(app).store.dispose()


def test_a_restart_between_every_two_webhooks_still_gives_a_whole_call(
    fresh_app_per_request: Callable[[], Twilio], recordings: FakeRecordings, texts: FakeTexts
) -> None:
    answers = ["i led the move to a new ward system", "i trained the night staff myself"]
    for url, text in zip(RECORDINGS, answers, strict=False):
        recordings.audio[url] = embed_transcript(silence_wav(2), text)

    fresh_app_per_request().twiml("/voice/incoming", **params())
    fresh_app_per_request().twiml(
        "/voice/answer?turn=0", **params(RecordingUrl=RECORDINGS[0], Digits="#")
    )
    fresh_app_per_request().twiml("/voice/consent", **params(Digits="1"))
    follow_up = fresh_app_per_request().twiml("/voice/wait?turn=0&attempt=2", **params())
    assert follow_up.find("./Record") is not None
    fresh_app_per_request().twiml(
        "/voice/answer?turn=1", **params(RecordingUrl=RECORDINGS[1], Digits="#")
    )
    fresh_app_per_request().twiml("/voice/wait?turn=1&attempt=2", **params())
    fresh_app_per_request().twiml("/voice/status", **params(CallStatus="completed"))
    fresh_app_per_request()  # the last process runs the feedback

    assert len(texts.sent) == 1


HANG_UP_POINTS = {
    "after the greeting": 1,
    "at the texting question": 2,
    "while holding": 3,
    "during the follow-up": 4,
}


@pytest.mark.parametrize("steps_before", HANG_UP_POINTS.values(), ids=HANG_UP_POINTS.keys())
def test_hanging_up_at_any_step_finishes_the_call_once(
    app: Flask, recordings: FakeRecordings, texts: FakeTexts, steps_before: int
) -> None:
    recordings.audio[RECORDINGS[0]] = embed_transcript(silence_wav(2), "we cut costs by half")
    twilio = Twilio(app.test_client())
    steps = [
        lambda: twilio.twiml("/voice/incoming", **params()),
        lambda: twilio.twiml(
            "/voice/answer?turn=0", **params(RecordingUrl=RECORDINGS[0], Digits="#")
        ),
        lambda: twilio.twiml("/voice/consent", **params(Digits="1")),
        lambda: twilio.twiml("/voice/wait?turn=0&attempt=2", **params()),
    ]
    services = get_services(app)
    for step in steps[:steps_before]:
        step()
        services.worker.drain()

    twilio.twiml("/voice/status", **params(CallStatus="completed"))
    twilio.twiml("/voice/status", **params(CallStatus="completed", CallDuration="61"))
    services.worker.drain()

    consented = steps_before >= 3
    assert len(texts.sent) == (1 if consented else 0)
    with services.store.transaction() as session:
        call = session.get(CallRow, CALL)
        assert call is not None and call.stage == "ended" and call.feedback is not None


def test_a_recording_that_never_finishes_downloading_is_given_up_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def trickle(environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        assert request.authorization is not None

        def forever() -> Iterator[bytes]:
            yield b"RIFF"
            for _ in range(200):
                time.sleep(0.05)
                yield b"\0" * 16

        return Response(forever(), mimetype="audio/x-wav")(environ, start_response)

    server = make_server("127.0.0.1", 0, trickle, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        settings = load_settings(
            {
                "twilio_account_sid": ACCOUNT_SID,
                "twilio_auth_token": AUTH_TOKEN,
                "twilio_api_base_url": base,
            },
            environ={},
        )
        monkeypatch.setattr("voice_app.recordings._FETCH_SECONDS", 0.5)
        url = f"{base}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/RE{'d' * 32}"

        with pytest.raises(RecordingFetchError, match="to download") as error:
            TwilioRecordings(settings).fetch(url)
        assert error.value.retryable
    finally:
        server.shutdown()
        server.server_close()


def test_phone_numbers_are_masked_in_log_lines() -> None:
    record = logging.LogRecord(
        "voice_app",
        logging.ERROR,
        __file__,
        1,
        "text to %s failed: The 'To' number +15555550100 is not valid",
        ("+15555550100",),
        None,
    )

    MaskPhoneNumbers().filter(record)

    message = record.getMessage()
    assert "5555550100" not in message
    assert message.count("***00") == 2
