"""Live mode over a real WebSocket: the TwiML that opens the stream, whole simulated calls, and
the fall-back to record mode when the stream fails on the line's side."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from tests.conftest import CALLER, PUBLIC_URL, Twilio
from voice_app.app import create_app, get_services
from voice_app.errors import RenderError
from voice_app.live.sound import CachedPromptAudio
from voice_app.simulator import (
    ANSWER,
    HANGUP,
    CallerStep,
    LiveCaller,
    SimulationOptions,
    simulate,
)

CALL = "CA" + "5" * 32
ANSWERS = [
    "i rebuilt the ordering system at the bakery and cut waste by a third",
    "i wrote the new stock sheets myself and trained the two weekend staff",
    "next time i would ask the bakers before changing anything",
]
FAST = LiveCaller(speed=25)


def live_call(steps: list[CallerStep], **options: object) -> SimulationOptions:
    return SimulationOptions(
        steps=steps,
        perfect_asr=True,
        from_number=CALLER,
        app_config={"mode": "live"},
        live=options.pop("live", FAST),  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def live_app(app_config: dict[str, Any]) -> Iterator[Flask]:
    app = create_app({**app_config, "mode": "live"})
    yield app
    get_services(app).store.dispose()


def test_live_mode_answers_the_call_with_a_two_way_stream(live_app: Flask) -> None:
    client = Twilio(live_app.test_client())
    root = client.twiml("/voice/incoming", CallSid=CALL, From=CALLER)
    stream = root.find("./Connect/Stream")
    assert stream is not None
    assert stream.get("url") == PUBLIC_URL.replace("https://", "wss://") + "/voice/stream"
    parameters = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert parameters == {"call_sid": CALL}
    redirect = root.find("./Redirect")
    assert redirect is not None and (redirect.text or "").endswith("/voice/stream-ended")
    # Twilio retries the webhook: the same answer, one call.
    again = client.twiml("/voice/incoming", CallSid=CALL, From=CALLER)
    assert again.find("./Connect/Stream") is not None


def test_a_whole_live_call_ends_with_one_text_and_no_recordings() -> None:
    report = simulate(live_call([CallerStep(ANSWER, text) for text in ANSWERS]))
    line = [event for event in report.dialog if event.speaker == "line"]
    follow_ups = [event for event in line if event.dimension]
    assert len(follow_ups) == 2
    assert len(report.reply_latencies) == 3
    assert len(report.texts) == 1 and report.texts[0].to == CALLER
    assert report.recordings_made == 0
    starts = [event.at for event in line if event.at is not None]
    assert starts == sorted(starts) and len(starts) == len(line)


def test_falling_silent_ends_each_answer() -> None:
    report = simulate(
        live_call(
            [CallerStep(ANSWER, text) for text in ANSWERS],
            live=LiveCaller(end_with="silence", end_silence_ms=4000, speed=40),
        )
    )
    assert len(report.reply_latencies) == 3
    assert len(report.texts) == 1


def test_talking_over_the_follow_up_stops_it_and_the_answer_counts() -> None:
    steps = [
        CallerStep(ANSWER, ANSWERS[0]),
        CallerStep(ANSWER, ANSWERS[1], interrupt=True),
        CallerStep(ANSWER, ANSWERS[2]),
    ]
    report = simulate(live_call(steps))
    assert report.clears >= 1
    assert len(report.reply_latencies) == 3  # every answer, the interrupting one too, was heard
    assert len(report.texts) == 1


def test_a_hang_up_mid_answer_still_sends_the_feedback_once() -> None:
    report = simulate(live_call([CallerStep(HANGUP, ANSWERS[0])]))
    assert len(report.texts) == 1
    assert report.reply_latencies == []


def test_when_the_stream_fails_on_our_side_the_call_goes_on_in_record_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = CachedPromptAudio.frames
    spoken: list[str] = []

    def failing_after_first_answer(self: CachedPromptAudio, text: str) -> list[bytes]:
        spoken.append(text)
        if len(spoken) > 6:  # greeting, texting question, 3 lines, tone: then the follow-up
            raise RenderError("espeak-ng crashed")
        return real(self, text)

    monkeypatch.setattr(CachedPromptAudio, "frames", failing_after_first_answer)
    report = simulate(live_call([CallerStep(ANSWER, text) for text in ANSWERS]))
    assert report.recordings_made >= 1  # record mode took over
    assert len(report.texts) == 1
    line = [event for event in report.dialog if event.speaker == "line" and event.dimension]
    assert line, "the follow-up was still asked"


def test_stream_ended_hangs_up_a_finished_call(live_app: Flask) -> None:
    services = get_services(live_app)
    services.line.start_live(CALL, CALLER)
    services.line.status(CALL, "completed")
    root = Twilio(live_app.test_client()).twiml("/voice/stream-ended", CallSid=CALL)
    assert [verb.tag for verb in root] == ["Hangup"]


def test_stream_ended_mid_call_carries_on_in_record_mode(live_app: Flask) -> None:
    get_services(live_app).line.start_live(CALL, CALLER)
    root = Twilio(live_app.test_client()).twiml("/voice/stream-ended", CallSid=CALL)
    record = root.find("./Record")
    assert record is not None and "/voice/answer?turn=0" in (record.get("action") or "")
