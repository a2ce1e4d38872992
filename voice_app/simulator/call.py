"""A practice call played from Twilio's side: signed webhooks, TwiML followed verb by verb.

The simulated caller follows a script of steps (answer, silence, keys, hang-up); the simulated
Twilio posts the webhooks Twilio would post, with the parameters and signature Twilio would send,
serves the caller's recordings through the REST stand-in, and sends the status callback at the end.
"""

from __future__ import annotations

import io
import time
import wave
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qs, urljoin, urlsplit

import numpy as np
from twilio.request_validator import RequestValidator

from voice_app.audio import PHONE_RATE, to_wav_bytes
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
from voice_app.simulator.standin import TwilioStandIn, new_sid
from voice_app.simulator.stream import StreamCaller, StreamSocket

# The route whose <Record> asks whether the caller wants a text.
CONSENT_PATH = "/voice/consent"


class Transport(Protocol):
    """How the simulated Twilio reaches the app."""

    def post(self, url: str, params: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
        """POST a form; the status code and body."""
        ...

    def get(self, url: str) -> tuple[int, bytes]:
        """GET a URL; the status code and body."""
        ...

    def open_socket(self, url: str, headers: dict[str, str]) -> StreamSocket:
        """Open a WebSocket (a live call's Media Stream)."""
        ...


@dataclass(frozen=True)
class LiveCaller:
    """How the caller behaves on a live call's Media Stream."""

    end_with: str = "#"  # "#", or "silence": fall silent and let the line decide
    end_silence_ms: int = 4000  # the line's VOICE_APP_LIVE_END_SILENCE_MS
    speed: float = 1.0  # 1.0 is real time; 20.0 plays the call twenty times faster


class CallSimulator:
    """Plays one call against the app, from the first ring to the status callback."""

    def __init__(
        self,
        *,
        transport: Transport,
        app_url: str,
        auth_token: str,
        standin: TwilioStandIn,
        steps: list[CallerStep],
        make_recording: Callable[[str], bytes],
        on_hold: Callable[[float], None],
        consent_key: str | None = "1",
        consent_says: str | None = None,
        from_number: str = "+15555550100",
        to_number: str = "+15555550199",
        ask_caller: Callable[[str], str | None] | None = None,
        max_webhooks: int = 500,
        speech_frames: Callable[[CallerStep], list[bytes]] | None = None,
        live: LiveCaller | None = None,
    ) -> None:
        self.transport = transport
        self.app_url = app_url.rstrip("/")
        self.validator = RequestValidator(auth_token)
        self.standin = standin
        self.steps: Iterator[CallerStep] = iter(steps)
        self.make_recording = make_recording
        self.on_hold = on_hold
        self.consent_key = consent_key
        self.consent_says = consent_says
        self.ask_caller = ask_caller
        self.max_webhooks = max_webhooks
        self.report = CallReport(call_sid=new_sid("CA"))
        self._params = {
            "CallSid": self.report.call_sid,
            "AccountSid": standin.account_sid,
            "From": from_number,
            "To": to_number,
            "Caller": from_number,
            "Called": to_number,
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
        }
        self._hung_up = False
        self.speech_frames = speech_frames
        self.live = live or LiveCaller()
        self._answered_at: float | None = None  # record mode: when an answer was posted

    def run(self) -> CallReport:
        """Play the whole call; the report of what was said and texted."""
        url: str | None = f"{self.app_url}/voice/incoming"
        extra: dict[str, str] = {"CallStatus": "ringing"}
        while url is not None:
            document = self._post(url, extra)
            if self._hung_up:
                break  # Twilio still posts the action of a recording cut short by a hang-up
            url, extra = self._follow(document, url)
        self._post(
            f"{self.app_url}/voice/status", {"CallStatus": "completed", "CallDuration": "60"}
        )
        return self.report

    def _post(self, url: str, extra: dict[str, str]) -> str:
        if self.report.webhooks >= self.max_webhooks:
            raise SimulationError(f"more than {self.max_webhooks} webhooks: is the call looping?")
        params = {**self._params, "CallStatus": "in-progress", **extra}
        signature = self.validator.compute_signature(url, params)
        status, body = self.transport.post(url, params, {"X-Twilio-Signature": signature})
        self.report.webhooks += 1
        if status != 200:
            raise SimulationError(f"POST {url} answered HTTP {status}: {body[:200]}")
        return body

    def _follow(self, document: str, url: str) -> tuple[str | None, dict[str, str]]:
        """Run a TwiML document; the next URL to request (or None at the end) and its params."""
        try:
            root = ET.fromstring(document)
        except ET.ParseError as exc:
            raise SimulationError(f"the app's answer to {url} is not XML: {exc}") from exc
        if root.tag != "Response":
            raise SimulationError(f"the app's answer to {url} is not TwiML (<{root.tag}>)")
        self._note_reply(root)
        for verb in root:
            if verb.tag == "Connect":
                self._stream(verb, url)
                if self._hung_up:
                    return None, {}
            elif verb.tag in ("Say", "Play"):
                self._hear(verb, url)
            elif verb.tag == "Pause":
                seconds = float(verb.get("length", "1"))
                self._note_hold(seconds)
                self.on_hold(seconds)
            elif verb.tag == "Gather":
                # The line asks for keys: the caller presses its consent key, or nothing.
                for inner in verb:
                    self._hear(inner, url)
                if self.consent_key:
                    self.report.dialog.append(DialogEvent("caller", self.consent_key, "keys"))
                    return urljoin(url, verb.get("action", url)), {"Digits": self.consent_key}
            elif verb.tag == "Record" and urlsplit(verb.get("action", "")).path == CONSENT_PATH:
                reply = self._consent_reply(urljoin(url, verb.get("action", url)))
                if reply is not None:
                    return reply
            elif verb.tag == "Record":
                next_request = self._record(verb, url)
                if next_request is not None or self._hung_up:
                    return next_request or (None, {})
            elif verb.tag == "Redirect":
                return urljoin(url, (verb.text or "").strip()), {}
            elif verb.tag == "Hangup":
                return None, {}
            else:
                raise SimulationError(f"unexpected TwiML verb <{verb.tag}> from {url}")
        return None, {}  # Twilio hangs up when a document ends

    def _note_reply(self, root: ET.Element) -> None:
        """Record mode: the first document that asks for the next answer (or ends) is the reply."""
        if self._answered_at is None:
            return
        for verb in root:
            action = urlsplit(verb.get("action", "")).path
            if (verb.tag == "Record" and action != CONSENT_PATH) or verb.tag == "Hangup":
                self.report.reply_latencies.append(time.perf_counter() - self._answered_at)
                self._answered_at = None
                return

    def _stream(self, verb: ET.Element, url: str) -> None:
        """Live mode: play the Media Stream that `<Connect><Stream>` asks for."""
        stream = verb.find("Stream")
        if stream is None or not stream.get("url"):
            raise SimulationError(f"<Connect> from {url} has no <Stream url=...>")
        if self.speech_frames is None:
            raise SimulationError("this simulation cannot speak into a Media Stream")
        stream_url = str(stream.get("url"))
        parameters = {
            str(p.get("name")): str(p.get("value", "")) for p in stream.findall("Parameter")
        }
        # Twilio signs the upgrade request's URL, with no parameters.
        signature = self.validator.compute_signature(stream_url, {})
        socket = self.transport.open_socket(stream_url, {"X-Twilio-Signature": signature})
        caller = StreamCaller(
            socket=socket,
            report=self.report,
            account_sid=self.standin.account_sid,
            parameters=parameters,
            steps=self.steps,
            speech_frames=self.speech_frames,
            caption=lambda key: self._caption(url, key),
            consent_key=self.consent_key,
            consent_says=self.consent_says,
            end_with=self.live.end_with,
            end_silence_ms=self.live.end_silence_ms,
            speed=self.live.speed,
        )
        caller.run()
        self.report.clears += caller.clears
        self._hung_up = caller.hung_up

    def _caption(self, url: str, key: str) -> str:
        status, caption = self.transport.get(urljoin(url, f"/prompts/{key}.txt"))
        return caption.decode("utf-8") if status == 200 else f"[prompt {key}]"

    def _hear(self, verb: ET.Element, url: str) -> None:
        if verb.tag == "Say":
            self.report.dialog.append(DialogEvent("line", (verb.text or "").strip()))
            return
        audio_url = urljoin(url, (verb.text or "").strip())
        status, audio = self.transport.get(audio_url)
        if status != 200 or not audio.startswith(b"RIFF"):
            raise SimulationError(f"<Play> {audio_url} is not playable audio (HTTP {status})")
        status, caption = self.transport.get(audio_url.rsplit(".", 1)[0] + ".txt")
        text = caption.decode("utf-8") if status == 200 else f"[audio {audio_url}]"
        self.report.dialog.append(DialogEvent("line", text))

    def _consent_reply(self, action: str) -> tuple[str, dict[str, str]] | None:
        """Answer the texting question: a key, a spoken reply, or (None) silence."""
        if self.consent_says:
            self.report.dialog.append(DialogEvent("caller", self.consent_says))
            return action, self._recording_params(self.make_recording(self.consent_says), digits="")
        if self.consent_key:
            self.report.dialog.append(DialogEvent("caller", self.consent_key, "keys"))
            return action, self._recording_params(b"", digits=self.consent_key)
        self.report.dialog.append(DialogEvent("caller", "(silence)", "silence"))
        return None

    def _note_hold(self, seconds: float) -> None:
        last = self.report.dialog[-1] if self.report.dialog else None
        if last is not None and last.kind == "hold":
            held = float(last.text.split()[1]) + seconds
            last.text = f"(holds {held:g} s)"
        else:
            self.report.dialog.append(DialogEvent("line", f"(holds {seconds:g} s)", "hold"))

    def _record(self, verb: ET.Element, url: str) -> tuple[str, dict[str, str]] | None:
        action = urljoin(url, verb.get("action", url))
        probe = parse_qs(urlsplit(action).query).get("probe", [None])[0]
        if probe:
            for event in reversed(self.report.dialog):
                if event.speaker == "line" and event.kind == "speech":
                    event.dimension = probe
                    break
        step = self._next_step()
        if step.kind == SILENCE:
            self.report.dialog.append(DialogEvent("caller", "(silence)", "silence"))
            return None  # nothing recorded: Twilio skips the action and runs the next verb
        if step.kind == KEYS:
            self.report.dialog.append(DialogEvent("caller", step.text, "keys"))
            return action, self._recording_params(b"", digits=step.text)
        if step.kind == HANGUP and not step.text:
            self.report.dialog.append(DialogEvent("caller", "(hangs up)", "hangup"))
            self._hung_up = True
            return None
        if step.path:
            with open(step.path, "rb") as audio_file:
                wav = audio_file.read()
            said = f"(plays {step.path})"
        else:
            wav = self.make_recording(step.text)
            said = step.text
        self.report.dialog.append(DialogEvent("caller", said))
        if step.kind == HANGUP:
            self.report.dialog.append(DialogEvent("caller", "(hangs up)", "hangup"))
            self._hung_up = True
            params = self._recording_params(wav, digits="hangup")
            params["CallStatus"] = "completed"
            return action, params
        self._answered_at = time.perf_counter()
        return action, self._recording_params(wav, digits="#")

    def _next_step(self) -> CallerStep:
        step = next(self.steps, None)
        if step is not None:
            return step
        if self.ask_caller is not None:
            typed = self.ask_caller("Your answer (empty line: stay silent): ")
            if typed is None:
                return CallerStep(HANGUP)
            return CallerStep(ANSWER, typed) if typed.strip() else CallerStep(SILENCE)
        return CallerStep(SILENCE)

    def _recording_params(self, wav: bytes, *, digits: str) -> dict[str, str]:
        if not wav:
            wav = silence_wav(0.2)
        sid, recording_url = self.standin.add_recording(wav)
        self.report.recordings_made += 1
        return {
            "RecordingUrl": recording_url,
            "RecordingSid": sid,
            "RecordingDuration": str(round(_wav_seconds(wav))),
            "Digits": digits,
        }


def _wav_seconds(wav: bytes) -> float:
    try:
        with wave.open(io.BytesIO(wav), "rb") as reader:
            return reader.getnframes() / float(reader.getframerate())
    except (wave.Error, EOFError):
        # A file the caller supplied that is not a WAV: Twilio would still report some length.
        return 0.0


def silence_wav(seconds: float) -> bytes:
    """A phone-rate WAV of silence."""
    return to_wav_bytes(np.zeros(int(seconds * PHONE_RATE), dtype=np.int16), PHONE_RATE)
