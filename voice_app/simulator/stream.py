"""Twilio's side of a live call's Media Stream, and the simulated caller behind it.

`StreamCaller` plays the protocol as Twilio does: `connected` and `start` (with the TwiML's
`<Parameter>`s), then a 20 ms media frame of the caller's audio on every tick for the whole call,
silence included; keys as `dtmf`; the line's audio "played" in real time, each `mark` echoed once
playback reaches it, and `clear` honoured (queued audio dropped, its marks echoed). It records
when each prompt starts and, for each answer, how long the line took from the end of the answer
to the first audio of its reply.

The caller answers after the tone (`tone` mark), and replies to the texting question after it
(`ask` mark). An answer ends with # or, with `end_with="silence"`, by falling silent; in that case
the end is the moment the line's own end-of-turn rule decides it, computed on the same frames.
"""

from __future__ import annotations

import base64
import json
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import simple_websocket

from voice_app.audio import mulaw_decode
from voice_app.live import endpoint
from voice_app.simulator.dialog import (
    ANSWER,
    HANGUP,
    KEYS,
    SILENCE,
    CallerStep,
    CallReport,
    DialogEvent,
    SimulationError,
)
from voice_app.simulator.standin import new_sid
from voice_app.tts import MULAW_SILENCE

FRAME_BYTES = 160
FRAME_SECONDS = 0.02
SILENT_FRAME = bytes([MULAW_SILENCE]) * FRAME_BYTES
# How long into a prompt an interrupting caller starts talking.
INTERRUPT_AFTER_FRAMES = 40


class StreamSocket(Protocol):
    """A client WebSocket (simple-websocket's Client has this shape)."""

    def send(self, data: str) -> None:
        """Send a text message."""
        ...

    def receive(self, timeout: float | None = None) -> str | bytes | None:
        """The next message, None after `timeout`; raises when the socket is closed."""
        ...

    def close(self, reason: int | None = None, message: str | None = None) -> None:
        """Close the socket."""
        ...


@dataclass
class _Played:
    """One item of the playback queue: a frame of audio, or a mark."""

    mark: str | None = None


@dataclass
class StreamCaller:
    """Plays one Media Stream: Twilio's messages out, the line's audio and marks in."""

    socket: StreamSocket
    report: CallReport
    account_sid: str
    parameters: dict[str, str]
    steps: Iterator[CallerStep]
    speech_frames: Callable[[CallerStep], list[bytes]]
    caption: Callable[[str], str]
    consent_key: str | None = "1"
    consent_says: str | None = None
    end_with: str = "#"  # or "silence"
    end_silence_ms: int = 4000
    speed: float = 1.0  # 1.0 is real time; 10.0 plays the call ten times faster (must be > 0)
    max_call_seconds: float = 1800.0
    stream_sid: str = field(default_factory=lambda: new_sid("MZ"))
    clears: int = 0
    hung_up: bool = False

    _playback: deque[_Played] = field(default_factory=deque)
    _saying: deque[bytes | str] = field(default_factory=deque)  # frames, or "dtmf:D", "stop"
    _prompt_started: float | None = None
    _waiting_since: float | None = None  # the end of an answer, until the reply's first frame
    _clock: endpoint.TurnClock | None = None  # the line's end-of-turn rule, on our frames
    _interrupt: CallerStep | None = None
    _heard_frames: int = 0
    _sequence: int = 0
    _started: float = 0.0
    _ticks: int = 0

    def run(self) -> None:
        """Play the stream until the line closes it (or the caller hangs up)."""
        if self.speed <= 0:
            raise SimulationError("the stream's speed must be above 0 (1.0 is real time)")
        self._started = time.perf_counter()
        try:
            self._open()
        except (simple_websocket.ConnectionClosed, OSError):
            return  # the line closed the stream at once (live mode full, a bad signature)
        while True:
            try:
                if not self._take_messages():
                    return  # the line closed the stream
                self._play_one_frame()
                if not self._say_one_frame():
                    return  # the caller hung up
            except (simple_websocket.ConnectionClosed, OSError):
                return  # the line closed the stream (or its socket) while we were sending
            self._ticks += 1
            if self._now() > self.max_call_seconds:
                raise SimulationError(f"the stream ran past {self.max_call_seconds:g} s of audio")
            due = self._started + self._ticks * FRAME_SECONDS / self.speed
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)

    def _open(self) -> None:
        """Twilio's first two messages: `connected`, then `start` with the TwiML's parameters."""
        self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        self._send(
            {
                "event": "start",
                "start": {
                    "streamSid": self.stream_sid,
                    "accountSid": self.account_sid,
                    "callSid": self.report.call_sid,
                    "tracks": ["inbound"],
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                    "customParameters": self.parameters,
                },
                "streamSid": self.stream_sid,
            }
        )

    def _now(self) -> float:
        """Seconds of stream (audio time) so far, whatever the speed."""
        return self._ticks * FRAME_SECONDS

    def _send(self, message: dict[str, object]) -> None:
        self._sequence += 1
        self.socket.send(json.dumps({**message, "sequenceNumber": str(self._sequence)}))

    # The line's side.

    def _take_messages(self) -> bool:
        while True:
            try:
                raw = self.socket.receive(timeout=0)
            except simple_websocket.ConnectionClosed:
                return False
            if raw is None:
                return True
            message = json.loads(raw)
            event = message.get("event")
            if event == "media":
                base64.b64decode(message["media"]["payload"])
                if self._waiting_since is not None:
                    self.report.reply_latencies.append(time.perf_counter() - self._waiting_since)
                    self._waiting_since = None
                self._playback.append(_Played())
            elif event == "mark":
                self._playback.append(_Played(mark=str(message["mark"]["name"])))
            elif event == "clear":
                self.clears += 1
                marks = [item.mark for item in self._playback if item.mark]
                self._playback.clear()
                self._prompt_started = None
                for name in marks:
                    self._echo_mark(name, played=False)

    def _play_one_frame(self) -> None:
        while self._playback and self._playback[0].mark is not None:
            name = self._playback.popleft().mark
            assert name is not None
            self._echo_mark(name, played=True)
        if self._playback:
            self._playback.popleft()
            if self._prompt_started is None:
                self._prompt_started = self._now()
            self._heard_frames += 1
            if self._interrupt is not None and self._heard_frames >= INTERRUPT_AFTER_FRAMES:
                self._start_answer(self._interrupt)
                self._interrupt = None

    def _echo_mark(self, name: str, *, played: bool) -> None:
        self._send({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})
        kind, _, rest = name.partition(".")
        key = rest.partition(".")[2]
        if kind == "tone":
            # The tone before an answer names the rubric dimension the question probes.
            if played and key:
                for event in reversed(self.report.dialog):
                    if event.speaker == "line":
                        event.dimension = key
                        break
            key = ""
        if played and key:
            at = self._prompt_started if self._prompt_started is not None else self._now()
            self.report.dialog.append(DialogEvent("line", self.caption(key), at=round(at, 3)))
        self._prompt_started = None
        if not played:
            return
        if kind == "tone":
            self._heard_frames = 0
            self._next_answer()
        elif kind == "ask":
            self._reply_to_texting_question()

    # The caller's side.

    def _reply_to_texting_question(self) -> None:
        if self.consent_says:
            self.report.dialog.append(DialogEvent("caller", self.consent_says))
            self._saying.extend(self.speech_frames(CallerStep(ANSWER, self.consent_says)))
        elif self.consent_key:
            self.report.dialog.append(DialogEvent("caller", self.consent_key, "keys"))
            self._saying.append(f"dtmf:{self.consent_key}")
        else:
            self.report.dialog.append(DialogEvent("caller", "(silence)", "silence"))

    def _next_answer(self) -> None:
        step = next(self.steps, CallerStep(SILENCE))
        if step.interrupt:
            # Next time the line speaks, the caller talks over it.
            self._interrupt = CallerStep(step.kind, step.text, step.path)
            self._start_answer(CallerStep(SILENCE))
            return
        self._start_answer(step)

    def _start_answer(self, step: CallerStep) -> None:
        self._saying.clear()
        if step.kind == SILENCE:
            self.report.dialog.append(DialogEvent("caller", "(silence)", "silence"))
            return
        if step.kind == KEYS:
            self.report.dialog.append(DialogEvent("caller", step.text, "keys"))
            self._saying.extend(f"dtmf:{key}" for key in step.text)
            return
        if step.kind == HANGUP and not step.text:
            self.report.dialog.append(DialogEvent("caller", "(hangs up)", "hangup"))
            self._saying.append("stop")
            return
        said = f"(plays {step.path})" if step.path else step.text
        self.report.dialog.append(DialogEvent("caller", said, at=round(self._now(), 3)))
        self._saying.extend(self.speech_frames(step))
        if step.kind == HANGUP:
            self.report.dialog.append(DialogEvent("caller", "(hangs up)", "hangup"))
            self._saying.append("stop")
        elif self.end_with == "#":
            self._saying.append("dtmf:#")
        else:
            self._clock = endpoint.TurnClock.create(
                end_silence_ms=self.end_silence_ms, no_speech_ms=10**9, max_ms=10**9
            )

    def _say_one_frame(self) -> bool:
        frame = SILENT_FRAME
        while self._saying and isinstance(self._saying[0], str):
            action = str(self._saying.popleft())
            if action == "stop":
                self._send({"event": "stop", "streamSid": self.stream_sid, "stop": {}})
                self.socket.close()
                self.hung_up = True
                return False
            digit = action.split(":", 1)[1]
            self._send({"event": "dtmf", "streamSid": self.stream_sid, "dtmf": {"digit": digit}})
            if digit == "#":
                self._waiting_since = time.perf_counter()
        if self._saying:
            item = self._saying.popleft()
            frame = item if isinstance(item, bytes) else SILENT_FRAME
        self._send(
            {
                "event": "media",
                "streamSid": self.stream_sid,
                "media": {"track": "inbound", "payload": base64.b64encode(frame).decode()},
            }
        )
        if self._clock is not None:
            why, _ = self._clock.feed(mulaw_decode(frame))
            if why is not None:
                # The line's rule ends the answer on this very frame.
                self._clock = None
                self._waiting_since = time.perf_counter()
        return True
