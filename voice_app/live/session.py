"""One live call over a Media Stream: the call flow driven by the caller's audio as it arrives.

`LiveCall` takes Twilio's messages one at a time (`receive`) and returns the messages to send
back; it never touches the socket, so every path is tested with plain strings. It plays the
flow's steps as prompt audio followed by a mark, and acts when Twilio reports the mark played:
it listens (a streaming recognizer fed frame by frame), asks the texting question, or ends.
An answer ends on # or after the silence window; meanwhile, at each pause, the rubric analysis of
the words so far is made, so that the follow-up is ready the moment the answer ends.

Time is audio time (frames received), so tests can send audio faster than real time.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from voice_app import flow
from voice_app.asr import BoundedRecognizer, RecognitionStream
from voice_app.audio import PHONE_RATE, mulaw_decode
from voice_app.errors import VoiceAppError
from voice_app.line import PracticeLine
from voice_app.live import endpoint, protocol
from voice_app.live.sound import PromptAudio, tone_frames
from voice_app.replies import classify, grammar
from voice_app.script import Script

log = logging.getLogger(__name__)

# WebSocket close codes.
NORMAL_CLOSURE = 1000
POLICY_VIOLATION = 1008
UNSUPPORTED_DATA = 1003

# A caller who talks over a prompt for this long stops it (when barge-in is on).
BARGE_IN_MS = 240
# Audio kept from before listening started, so a barge-in keeps its first words.
LEAD_IN_FRAMES = 20
# The texting question: a short reply, ended by a short silence.
CONSENT_SILENCE_MS = 1200
CONSENT_WAIT_MS = 6000
CONSENT_MAX_MS = 8000
# Malformed messages tolerated before the stream is closed.
MAX_MALFORMED = 50

ANSWER = "answer"
CONSENT = "consent"


class Refused(VoiceAppError):
    """The stream must be closed now, with this WebSocket close code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class LiveSettings:
    """How live calls listen."""

    end_silence_ms: int = 4000
    no_speech_ms: int = 8000
    max_answer_ms: int = 300_000
    barge_in: bool = True


@dataclass
class _Listening:
    purpose: str  # ANSWER or CONSENT
    turn: int
    stream: RecognitionStream
    clock: endpoint.TurnClock
    started: float = 0.0  # wall clock when listening began
    analysed: str = ""


@dataclass
class TurnTiming:
    """One answer's end: why it ended and how long the line took to start the next prompt."""

    turn: int
    reason: str  # "#", or an `endpoint` reason
    audio_ms: int
    # How far the line was behind the caller's audio when the answer ended: the wall time it
    # took to take in the answer, less the answer's length (0 for a line that keeps up; only
    # meaningful when audio arrives in real time, as on a call).
    behind_seconds: float = 0.0
    seconds_to_reply: float = 0.0


@dataclass
class LiveCall:
    """The conversation on one Media Stream."""

    line: PracticeLine
    script: Script
    recognizer: BoundedRecognizer
    prompts: PromptAudio
    reply_phrases: Mapping[str, Sequence[str]]
    settings: LiveSettings = field(default_factory=LiveSettings)
    clock: Callable[[], float] = time.perf_counter

    stream_sid: str = ""
    call_sid: str = ""
    ended: bool = False  # nothing more to do: close the socket
    timings: list[TurnTiming] = field(default_factory=list)
    _call: flow.Call | None = None
    _pending: list[str] = field(default_factory=list)
    _after_playback: flow.Step | None = None
    _listening: _Listening | None = None
    _marks: int = 0
    _malformed: int = 0
    _early_media: int = 0
    _finalised: bool = False
    _barge: endpoint.SpeechGate = field(default_factory=endpoint.SpeechGate)
    _barge_ms: int = 0
    _recent: deque[bytes] = field(default_factory=lambda: deque(maxlen=LEAD_IN_FRAMES))
    _out: list[str] = field(default_factory=list)
    _reply_clock: float | None = None
    # Finished recognizers, let go on the next audio frame: freeing a Vosk recognizer takes
    # about 0.1 s, which must not stand between an answer's end and the reply.
    _spent: list[RecognitionStream] = field(default_factory=list)

    def receive(self, message: str | bytes) -> list[str]:
        """Handle one message from Twilio; returns the messages to send back, in order."""
        self._out = []
        try:
            event = protocol.parse(message)
        except protocol.ProtocolError as exc:
            self._malformed += 1
            if self._malformed <= 3:
                log.warning("live %s: ignored a malformed message: %s", self.call_sid, exc)
            if self._malformed > MAX_MALFORMED:
                raise Refused(UNSUPPORTED_DATA, "too many malformed messages") from exc
            return []
        if isinstance(event, protocol.Start):
            self._start(event)
        elif self.call_sid == "":
            self._before_start(event)
        elif isinstance(event, protocol.Media):
            self._media(event.audio)
        elif isinstance(event, protocol.Dtmf):
            self._key(event.digit)
        elif isinstance(event, protocol.Mark):
            self._mark(event.name)
        elif isinstance(event, protocol.Stop):
            self.close()
        out, self._out = self._out, []
        return out

    def close(self) -> None:
        """The stream is over (stop, or the socket dropped): settle the call, exactly once."""
        self.ended = True
        if self._finalised or not self.call_sid:
            return
        self._finalised = True
        listening, self._listening = self._listening, None
        if listening is not None and listening.purpose == ANSWER:
            # A hang-up mid-answer: what was said still counts for the feedback.
            self.line.heard(self.call_sid, listening.turn, listening.stream.finish(), hung_up=True)
        else:
            self.line.status(self.call_sid, "completed")

    # Events.

    def _before_start(self, event: protocol.Event) -> None:
        if isinstance(event, protocol.Media):
            self._early_media += 1
            if self._early_media == 1:
                log.warning("live: media before the stream's start message, ignored")
        elif isinstance(event, protocol.Stop):
            self.ended = True

    def _start(self, event: protocol.Start) -> None:
        if self.call_sid:
            raise Refused(POLICY_VIOLATION, "a second start message on one stream")
        if event.encoding != "audio/x-mulaw" or event.sample_rate != PHONE_RATE:
            raise Refused(
                UNSUPPORTED_DATA, f"unsupported audio {event.encoding} at {event.sample_rate} Hz"
            )
        if event.parameters.get("call_sid") != event.call_sid:
            raise Refused(POLICY_VIOLATION, "callSid is not the call the stream was opened on")
        outcome = self.line.live_resume(event.call_sid)
        if outcome is None or outcome.call.stage == flow.ENDED:
            raise Refused(POLICY_VIOLATION, "the stream names a call this line is not answering")
        self.call_sid = event.call_sid
        self.stream_sid = event.stream_sid
        log.info("live call %s: stream started", self.call_sid)
        self._play(outcome)

    def _media(self, audio: bytes) -> None:
        self._spent.clear()
        listening = self._listening
        if listening is None:
            self._recent.append(audio)
            if self._pending and self._may_barge_in():
                self._watch_barge_in(audio)
            return
        listening.stream.feed_mulaw(audio)
        why, paused = listening.clock.feed(mulaw_decode(audio))
        if why is not None:
            self._end_listening(why)
        elif paused and listening.purpose == ANSWER:
            self._analyse_so_far(listening)

    def _key(self, digit: str) -> None:
        listening = self._listening
        waiting = self._after_playback
        if (listening is not None and listening.purpose == CONSENT) or (
            listening is None and isinstance(waiting, flow.AskConsent)
        ):
            if digit in ("1", "2"):
                self._stop_playback()
                self._settle_consent("yes" if digit == "1" else "no")
            return
        if listening is None or listening.purpose != ANSWER:
            return  # keys during a prompt are not answers
        if digit == "#":
            self._end_listening("#")
        elif digit == "*":
            self._listening = None
            self._spent.append(listening.stream)
            self._reply(self.line.repeat(self.call_sid, listening.turn))

    def _mark(self, name: str) -> None:
        if name not in self._pending:
            return  # a mark of playback that was cleared
        self._pending.remove(name)
        if not self._pending:
            self._playback_done()

    # Playing the flow's steps.

    def _play(self, outcome: flow.Outcome) -> None:
        """Send the steps' audio, each prompt followed by a mark named after it.

        Marks are named KIND.N.KEY: `say` for a prompt, `ask` for the texting question (a reply
        follows), `tone` for the tone before an answer; KEY names the prompt's cached audio (for a
        tone: the rubric dimension the question probes, if any).
        """
        self._call = outcome.call
        self._after_playback = None
        self._recent.clear()
        for step in outcome.reply:
            if isinstance(step, flow.Speak):
                self._send_prompt("say", step.text)
            elif isinstance(step, flow.AskConsent):
                self._send_prompt("ask", step.text)
                self._after_playback = step
            elif isinstance(step, flow.Listen):
                self._send_audio(tone_frames())
                self._send_mark("tone", step.probe or "")
                self._after_playback = step
            elif isinstance(step, flow.HangUp):
                self._after_playback = step
            else:
                # Holding belongs to record mode; a live call never waits for a job. Hand the
                # call to record mode (Twilio's <Redirect>) rather than leave the caller in
                # silence.
                raise Refused(NORMAL_CLOSURE, f"a record-mode step in a live call: {step}")
        if not self._pending:
            self._send_mark("end", "")

    def _send_prompt(self, kind: str, text: str) -> None:
        self._send_audio(self.prompts.frames(text))
        self._send_mark(kind, self.prompts.key(text))

    def _send_mark(self, kind: str, key: str) -> None:
        self._marks += 1
        name = f"{kind}.{self._marks}.{key}"
        self._pending.append(name)
        self._out.append(protocol.mark_message(self.stream_sid, name))

    def _send_audio(self, frames: list[bytes]) -> None:
        if frames and self._reply_clock is not None:
            timing = self.timings[-1]
            timing.seconds_to_reply = self.clock() - self._reply_clock
            self._reply_clock = None
            # scripts/bench_latency.py reads these figures from the log.
            log.info(
                "live call %s: answer %d ended (%s) after %.2f s of audio, %.0f ms behind it; "
                "reply audio in %.1f ms",
                self.call_sid,
                timing.turn,
                timing.reason,
                timing.audio_ms / 1000,
                timing.behind_seconds * 1000,
                timing.seconds_to_reply * 1000,
            )
        self._out.extend(protocol.media_message(self.stream_sid, frame) for frame in frames)

    def _playback_done(self, lead_in: Sequence[bytes] = ()) -> None:
        step, self._after_playback = self._after_playback, None
        if isinstance(step, flow.Listen):
            self._listen(ANSWER, step.turn, lead_in)
        elif isinstance(step, flow.AskConsent):
            self._listen(CONSENT, -1, lead_in)
        elif isinstance(step, flow.HangUp):
            self.ended = True
            self._finalised = True  # the flow has finished the call already

    def _may_barge_in(self) -> bool:
        return self.settings.barge_in and isinstance(
            self._after_playback, flow.Listen | flow.AskConsent
        )

    def _watch_barge_in(self, audio: bytes) -> None:
        if not self._barge.is_speech(mulaw_decode(audio)):
            self._barge_ms = 0
            return
        self._barge_ms += len(audio) * 1000 // PHONE_RATE
        if self._barge_ms >= BARGE_IN_MS:
            log.info("live call %s: the caller talked over the prompt; listening", self.call_sid)
            lead_in = list(self._recent)
            self._stop_playback()
            self._playback_done(lead_in)

    def _stop_playback(self) -> None:
        if self._pending:
            self._out.append(protocol.clear_message(self.stream_sid))
            self._pending.clear()
        self._barge_ms = 0

    # Listening.

    def _listen(self, purpose: str, turn: int, lead_in: Sequence[bytes]) -> None:
        if purpose == CONSENT:
            stream = self.recognizer.open_stream(PHONE_RATE, phrases=grammar(self.reply_phrases))
            clock = endpoint.TurnClock.create(
                end_silence_ms=CONSENT_SILENCE_MS,
                no_speech_ms=CONSENT_WAIT_MS,
                max_ms=CONSENT_MAX_MS,
            )
        else:
            stream = self.recognizer.open_stream(PHONE_RATE)
            clock = endpoint.TurnClock.create(
                end_silence_ms=self.settings.end_silence_ms,
                no_speech_ms=self.settings.no_speech_ms,
                max_ms=self.settings.max_answer_ms,
            )
        self._listening = _Listening(purpose, turn, stream, clock, started=self.clock())
        # The words that talked over the prompt belong to the answer.
        for audio in lead_in:
            if self._listening is not None:
                self._media(audio)

    def _analyse_so_far(self, listening: _Listening) -> None:
        call = self._call
        text = listening.stream.partial()
        if call is None or not text or text == listening.analysed:
            return
        listening.analysed = text
        turn = call.current
        if turn is None:
            return
        rules = self.script.rules(turn.question_id)
        flow.analysis_for(rules, [*call.answers_to(rules.id), text], self.script.encoder)

    def _end_listening(self, why: str) -> None:
        listening, self._listening = self._listening, None
        assert listening is not None
        decided = self.clock()
        transcript = listening.stream.finish()
        self._spent.append(listening.stream)
        if listening.purpose == CONSENT:
            if why == endpoint.NOTHING or transcript.is_empty:
                heard = "none"
            else:
                heard = classify(transcript.text, self.reply_phrases) or "unclear"
            self._settle_consent(heard)
            return
        audio = listening.clock.heard_ms / 1000
        behind = max(0.0, decided - listening.started - audio)
        self.timings.append(TurnTiming(listening.turn, why, listening.clock.heard_ms, behind))
        self._reply_clock = decided
        self._reply(self.line.heard(self.call_sid, listening.turn, transcript))

    def _settle_consent(self, heard: str) -> None:
        listening, self._listening = self._listening, None
        if listening is not None:
            listening.stream.finish()
            self._spent.append(listening.stream)
        self._reply(self.line.live_consent(self.call_sid, heard))

    def _reply(self, outcome: flow.Outcome | None) -> None:
        if outcome is None:
            # The call's data is gone (purged): nothing to continue.
            self.ended = True
            self._finalised = True
            return
        self._play(outcome)
