"""Live mode's conversation (`LiveCall`), driven with Twilio's Media Streams messages as strings."""

from __future__ import annotations

import base64
import difflib
import json
from typing import Any

import pytest

from voice_app import flow, interviewer
from voice_app.asr.scripted import speech_frame
from voice_app.live import protocol
from voice_app.live.session import POLICY_VIOLATION, LiveCall, LiveSettings, Refused
from voice_app.live.sound import CachedPromptAudio
from voice_app.services import Services
from voice_app.store import JobRow, TurnRow
from voice_app.tts import MULAW_SILENCE
from voice_app.web.stream import new_live_call

CALL = "CA" + "1" * 32
SILENT = bytes([MULAW_SILENCE]) * 160
STRONG_START = "i rebuilt the ordering system myself and cut errors by thirty percent"


def message(event: str, **body: Any) -> str:
    return json.dumps({"event": event, "streamSid": "MZ1", **body})


def start_message(call_sid: str = CALL, parameter: str | None = CALL, **media: Any) -> str:
    parameters = {"call_sid": parameter} if parameter is not None else {}
    fmt = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1, **media}
    return message(
        "start",
        start={
            "streamSid": "MZ1",
            "callSid": call_sid,
            "accountSid": "AC1",
            "mediaFormat": fmt,
            "customParameters": parameters,
        },
    )


def media(frame: bytes) -> str:
    return message("media", media={"track": "inbound", "payload": base64.b64encode(frame).decode()})


class Twilio:
    """Twilio's side of one stream: what was played, which marks are pending."""

    def __init__(self, call: LiveCall, services: Services) -> None:
        self.call = call
        self.services = services
        self.sent: list[dict[str, Any]] = []
        self.marks: list[str] = []

    def send(self, raw: str) -> list[dict[str, Any]]:
        out = [json.loads(item) for item in self.call.receive(raw)]
        self.sent.extend(out)
        for item in out:
            if item["event"] == "mark":
                self.marks.append(item["mark"]["name"])
            elif item["event"] == "clear":
                self.marks.clear()
        return out

    def play_all(self) -> list[str]:
        """Twilio finishes playing: echo every pending mark; the prompts' texts, in order."""
        said = []
        while self.marks:
            name = self.marks.pop(0)
            key = name.split(".", 2)[2]
            spoken = name.startswith(("say", "ask"))
            caption = self.services.prompts.caption_for_key(key) if spoken else None
            if caption:
                said.append(caption)
            self.send(message("mark", mark={"name": name}))
        return said

    def speak(self, text: str, frames_per_word: int = 20) -> None:
        for word in text.split():
            self.send(media(speech_frame(word)))
            for _ in range(frames_per_word - 1):
                self.send(media(speech_frame()))

    def silence(self, ms: int) -> None:
        for _ in range(ms // 20):
            self.send(media(SILENT))

    def key(self, digit: str) -> None:
        self.send(message("dtmf", dtmf={"track": "inbound_track", "digit": digit}))

    def audio_frames_since(self, index: int) -> int:
        return sum(1 for item in self.sent[index:] if item["event"] == "media")


@pytest.fixture
def live(services: Services) -> LiveCall:
    services.prompts.render_all(services.script.spoken_texts())
    services.line.start_live(CALL, "+15555550100")
    return new_live_call(services, CachedPromptAudio(services.prompts))


def begin(live: LiveCall, services: Services, consent: str = "1") -> Twilio:
    """Start the stream, hear the greeting and texting question, answer it; ready to answer."""
    twilio = Twilio(live, services)
    twilio.send(message("connected", protocol="Call", version="1.0.0"))
    twilio.send(start_message())
    said = twilio.play_all()
    assert said == [services.script.greeting, services.script.lines.consent_live]
    twilio.key(consent)
    said = twilio.play_all()
    assert said[-1] == services.script.questions[0].prompt
    return twilio


def turns(services: Services) -> list[TurnRow]:
    with services.store.reading() as session:
        rows = session.query(TurnRow).filter_by(call_sid=CALL).order_by(TurnRow.number).all()
        session.expunge_all()
        return rows


def jobs(services: Services, kind: str) -> int:
    with services.store.reading() as session:
        return session.query(JobRow).filter_by(kind=kind).count()


def test_a_live_call_asks_the_follow_up_the_moment_the_answer_ends(
    live: LiveCall, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    twilio = begin(live, services)
    calls: list[list[str]] = []
    real = interviewer.analyze

    def counting(rules: Any, answers: Any, encoder: Any = None) -> interviewer.Analysis:
        calls.append(list(answers))
        return real(rules, answers, encoder)

    monkeypatch.setattr(interviewer, "analyze", counting)
    twilio.speak(STRONG_START)
    twilio.silence(600)  # a pause: the words so far are analysed while the caller thinks
    assert calls == [[STRONG_START]]
    before = len(twilio.sent)
    twilio.key("#")
    # The follow-up's audio goes out in the reply to the # itself, with no new analysis.
    assert twilio.audio_frames_since(before) > 0
    assert calls == [[STRONG_START]]
    said = twilio.play_all()
    follow_up = said[-1]
    rules = services.script.questions[0]
    assert follow_up in [p for d in rules.dimensions.values() for p in d.follow_ups]
    assert turns(services)[0].transcript == STRONG_START
    assert turns(services)[1].dimension not in ("results", "contribution")


def test_silence_ends_an_answer_after_the_window_in_audio_time(
    services: Services,
) -> None:
    services.prompts.render_all(services.script.spoken_texts())
    services.line.start_live(CALL, "+15555550100")
    live = new_live_call(services, CachedPromptAudio(services.prompts))
    live.settings = LiveSettings(end_silence_ms=2000, no_speech_ms=8000, max_answer_ms=60_000)
    twilio = begin(live, services)
    twilio.speak("i trained the new starters myself")
    twilio.silence(1900)  # a thinking pause shorter than the window: still the caller's turn
    assert live.timings == []
    twilio.silence(200)
    assert [t.reason for t in live.timings] == ["silence"]
    assert turns(services)[0].transcript == "i trained the new starters myself"


def test_nothing_said_asks_again_then_moves_on(live: LiveCall, services: Services) -> None:
    twilio = begin(live, services)
    twilio.silence(8000)  # VOICE_APP_RECORD_SILENCE_SECONDS with no speech at all
    said = twilio.play_all()
    assert said[0] == services.script.lines.reprompt
    twilio.silence(8000)
    said = twilio.play_all()
    assert said[0] == services.script.lines.moving_on


def test_star_repeats_the_question(live: LiveCall, services: Services) -> None:
    twilio = begin(live, services)
    twilio.speak("um")
    twilio.key("*")
    assert twilio.play_all() == [services.script.questions[0].prompt]
    twilio.speak(STRONG_START)
    twilio.key("#")
    assert turns(services)[0].transcript == STRONG_START


def test_talking_over_a_prompt_stops_it_and_keeps_the_words(
    live: LiveCall, services: Services
) -> None:
    twilio = begin(live, services)
    twilio.speak(STRONG_START)
    before = len(twilio.sent)
    twilio.key("#")
    assert twilio.audio_frames_since(before) > 0  # the follow-up is playing, marks pending
    twilio.speak("because i hate seeing customers wait")
    assert any(item["event"] == "clear" for item in twilio.sent[before:])
    twilio.key("#")
    assert turns(services)[1].transcript == "because i hate seeing customers wait"


def test_with_barge_in_off_the_prompt_plays_to_the_end(services: Services) -> None:
    services.prompts.render_all(services.script.spoken_texts())
    services.line.start_live(CALL, "+15555550100")
    live = new_live_call(services, CachedPromptAudio(services.prompts))
    live.settings = LiveSettings(barge_in=False)
    twilio = begin(live, services)
    twilio.speak(STRONG_START)
    before = len(twilio.sent)
    twilio.key("#")
    twilio.speak("talking over it")
    assert not any(item["event"] == "clear" for item in twilio.sent[before:])


def test_the_texting_question_heard_as_a_spoken_no(live: LiveCall, services: Services) -> None:
    twilio = Twilio(live, services)
    twilio.send(start_message())
    twilio.play_all()
    twilio.speak("no thanks", frames_per_word=10)
    twilio.silence(1200)
    said = twilio.play_all()
    assert said[0] == services.script.lines.consent_no
    assert said[-1] == services.script.questions[0].prompt


@pytest.mark.parametrize(
    ("start", "why"),
    [
        (start_message(call_sid="CA" + "9" * 32, parameter="CA" + "9" * 32), "not answering"),
        (start_message(parameter="CA" + "2" * 32), "not the call"),
        (start_message(parameter=None), "not the call"),
    ],
)
def test_a_stream_for_another_call_is_refused_before_any_work(
    live: LiveCall, services: Services, start: str, why: str
) -> None:
    with pytest.raises(Refused) as refused:
        live.receive(start)
    assert refused.value.code == POLICY_VIOLATION and why in refused.value.reason
    live.close()
    assert jobs(services, "finalize") == 0


def test_a_stream_for_an_ended_call_is_refused(live: LiveCall, services: Services) -> None:
    services.line.status(CALL, "completed")
    with pytest.raises(Refused):
        live.receive(start_message())


def test_bad_messages_are_ignored_and_the_call_goes_on(live: LiveCall, services: Services) -> None:
    twilio = Twilio(live, services)
    assert live.receive(media(SILENT)) == []  # media before start
    for bad in [
        "not json",
        "[1, 2]",
        json.dumps({"no": "event"}),
        message("media", media={"payload": "***"}),
        message("media", media={"payload": base64.b64encode(b"x" * 9000).decode()}),
        message("dtmf", dtmf={"digit": "x"}),
        message("something-new", detail=1),
        "x" * (protocol.MAX_MESSAGE_BYTES + 1),
    ]:
        assert live.receive(bad) == []
    twilio.send(start_message())
    assert twilio.play_all() == [services.script.greeting, services.script.lines.consent_live]


def test_too_many_malformed_messages_close_the_stream(live: LiveCall) -> None:
    live.receive(start_message())
    with pytest.raises(Refused):
        for _ in range(100):
            live.receive("not json")


@pytest.mark.parametrize("ending", ["stop", "drop"])
def test_a_hang_up_mid_answer_keeps_the_words_and_settles_the_call_once(
    live: LiveCall, services: Services, ending: str
) -> None:
    twilio = begin(live, services)
    twilio.speak(STRONG_START)
    if ending == "stop":
        twilio.send(message("stop", stop={"accountSid": "AC1", "callSid": CALL}))
    live.close()  # the socket closes after a stop, or drops
    live.close()
    services.line.status(CALL, "completed")  # Twilio's status callback comes too
    assert live.ended
    assert turns(services)[0].transcript == STRONG_START
    assert jobs(services, "finalize") == 1
    services.worker.drain(timeout=30)
    assert len(services.tasks.text_sender.sent) == 1  # type: ignore[attr-defined]


def test_the_closing_plays_then_the_stream_ends(live: LiveCall, services: Services) -> None:
    twilio = begin(live, services)
    for _ in range(services.script.max_follow_ups + 1):
        twilio.speak(STRONG_START)
        twilio.key("#")
        said = twilio.play_all()
    assert said[-1] == services.script.lines.closing_with_text
    assert live.ended
    resumed = services.line.live_resume(CALL)
    assert resumed is not None and resumed.call.stage == flow.ENDED


def test_a_step_only_record_mode_can_play_hands_the_call_to_record_mode(
    live: LiveCall, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    twilio = begin(live, services)
    holding = flow.Outcome(flow.Call(CALL), (flow.Hold(0, 1),))
    monkeypatch.setattr(services.line, "heard", lambda *args, **kwargs: holding)
    twilio.speak(STRONG_START)
    with pytest.raises(Refused) as refused:
        twilio.key("#")
    assert refused.value.code == 1000  # closed normally: Twilio's <Redirect> carries the call on


def test_real_vosk_hears_a_streamed_answer_as_it_hears_the_whole_file(
    app_config: dict[str, Any], recordings: Any, texts: Any
) -> None:
    """The Korean model (the only one a registry carries) on the live path, frame by frame."""
    from tests.audio_fixtures import korean_recognizer, korean_speech_samples
    from voice_app.app import create_app, get_services
    from voice_app.audio import PHONE_RATE, mulaw_decode, mulaw_encode, to_wav_bytes

    engine = korean_recognizer()
    app = create_app(
        {**app_config, "mode": "live"}, recognizer=engine, recordings=recordings, text_sender=texts
    )
    services = get_services(app)
    try:
        services.prompts.render_all(services.script.spoken_texts())
        services.line.start_live(CALL, "+15555550100")
        live = new_live_call(services, CachedPromptAudio(services.prompts))
        twilio = begin(live, services)
        sentence = "저는 작년에 우리 팀의 새로운 일정 관리 시스템을 만들었습니다"
        speech = korean_speech_samples(sentence)
        audio = mulaw_encode(speech)
        for start in range(0, len(audio) - 160, 160):
            twilio.send(media(audio[start : start + 160]))
        twilio.key("#")
        streamed = turns(services)[0].transcript or ""
        # The same phone-quality signal, decoded from mu-law, as one file.
        whole = engine.transcribe(to_wav_bytes(mulaw_decode(audio), PHONE_RATE)).text
        assert streamed.strip()
        # SAME_SPEECH of tests/test_asr.py: what the same speech transcribed twice reaches.
        assert difflib.SequenceMatcher(a=streamed, b=whole).ratio() > 0.6, (streamed, whole)
        assert twilio.play_all()  # and the line went on to a follow-up
    finally:
        services.store.dispose()
