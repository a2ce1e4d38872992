"""The local call simulator: a whole practice call with no Twilio account, public URL or phone.

`simulate(options)` starts the REST stand-in, builds the app in this process (or talks to a
running server with `url`), plays the call and returns its report.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import requests
import simple_websocket
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from voice_app.asr.scripted import embed_transcript, speech_frame
from voice_app.audio import PHONE_RATE, mulaw_encode, read_wav, resample, to_wav_bytes
from voice_app.config import load_settings
from voice_app.errors import ConfigError
from voice_app.simulator.call import CallSimulator, LiveCaller
from voice_app.simulator.dialog import (
    ANSWER,
    HANGUP,
    KEYS,
    SILENCE,
    CallerStep,
    CallReport,
    SimulationError,
)
from voice_app.simulator.standin import TwilioStandIn, new_sid
from voice_app.simulator.stream import FRAME_SECONDS, StreamSocket
from voice_app.tts import MULAW_SILENCE

__all__ = [
    "ANSWER",
    "HANGUP",
    "KEYS",
    "SILENCE",
    "CallReport",
    "CallerStep",
    "HttpTransport",
    "LiveCaller",
    "SimulationError",
    "SimulationOptions",
    "caller_frames",
    "simulate",
]

# The in-process app's public URL: never resolved, only used to build and sign URLs.
IN_PROCESS_URL = "https://practice-line.invalid"
# Words per second of the scripted caller's speech, for the length of a perfect-ASR recording.
_SPEAKING_RATE = 2.5


@dataclass
class SimulationOptions:
    """How to run a simulated call."""

    steps: list[CallerStep] = field(default_factory=list)
    perfect_asr: bool = False
    consent_key: str | None = "1"  # pressed at the texting question; None: stays silent
    consent_says: str | None = None  # said instead of pressing a key
    from_number: str = "+15555550100"
    url: str | None = None  # a running server; None builds the app in this process
    standin_port: int = 0
    app_config: dict[str, Any] = field(default_factory=dict)  # in-process setting overrides
    ask_caller: Callable[[str], str | None] | None = None
    wait_for_text_seconds: float = 30.0
    live: LiveCaller = field(default_factory=LiveCaller)  # how the caller acts in live mode


def simulate(options: SimulationOptions) -> CallReport:
    """Play one practice call and return what was said and texted."""
    settings = load_settings()
    account_sid = settings.twilio_account_sid or new_sid("AC")
    auth_token = settings.twilio_auth_token or secrets.token_hex(16)
    standin = TwilioStandIn(account_sid, auth_token, options.standin_port).start()
    try:
        make_recording = _recording_maker(
            options.perfect_asr, settings.tts_voice, settings.tts_rate
        )
        make_frames = caller_frames(options.perfect_asr, settings.tts_voice, settings.tts_rate)
        if options.url:
            return _simulate_against_server(
                options, standin, auth_token, make_recording, make_frames
            )
        with _in_process_app(options, standin, auth_token) as app:
            return _simulate_in_process(
                options, app, standin, auth_token, make_recording, make_frames
            )
    finally:
        standin.stop()


def _recording_maker(perfect_asr: bool, voice: str, rate: int) -> Callable[[str], bytes]:
    if perfect_asr:

        def scripted(text: str) -> bytes:
            # Silence as long as the words would take, carrying the words for the scripted ASR.
            seconds = max(1.0, len(text.split()) / _SPEAKING_RATE)
            silence = np.zeros(int(seconds * PHONE_RATE), dtype=np.int16)
            return embed_transcript(to_wav_bytes(silence, PHONE_RATE), text)

        return scripted

    def spoken(text: str) -> bytes:
        from voice_app.tts import synthesize

        return synthesize(text, voice=voice, rate=rate)

    return spoken


def caller_frames(perfect_asr: bool, voice: str, rate: int) -> Callable[[CallerStep], list[bytes]]:
    """What the caller sends into a live call's Media Stream for one step, as 20 ms frames."""

    def frames(step: CallerStep) -> list[bytes]:
        if perfect_asr and not step.path:
            # Speech-like frames at the speaking rate, the words riding in them for the
            # scripted recognizer.
            per_word = max(1, round(1 / (_SPEAKING_RATE * FRAME_SECONDS)))
            out: list[bytes] = []
            for word in step.text.split():
                out.append(speech_frame(word[:40]))
                out.extend(speech_frame() for _ in range(per_word - 1))
            return out
        if step.path:
            with open(step.path, "rb") as audio_file:
                samples, source_rate = read_wav(audio_file.read())
        else:
            from voice_app.tts import synthesize

            samples, source_rate = read_wav(synthesize(step.text, voice=voice, rate=rate))
        encoded = mulaw_encode(resample(samples, source_rate, PHONE_RATE))
        size = int(PHONE_RATE * FRAME_SECONDS)
        encoded += bytes([MULAW_SILENCE]) * (-len(encoded) % size)
        return [encoded[i : i + size] for i in range(0, len(encoded), size)]

    return frames


@contextmanager
def _in_process_app(
    options: SimulationOptions, standin: TwilioStandIn, auth_token: str
) -> Iterator[Flask]:
    from voice_app.app import create_app, get_services

    with tempfile.TemporaryDirectory(prefix="voice-app-sim-") as scratch:
        config: dict[str, Any] = {
            "twilio_account_sid": standin.account_sid,
            "twilio_auth_token": auth_token,
            "twilio_phone_number": "+15005550006",
            "twilio_api_base_url": standin.base_url,
            "public_base_url": IN_PROCESS_URL,
            "insecure_skip_signature": False,
            "database_url": f"sqlite:///{os.path.join(scratch, 'simulation.sqlite3')}",
            # The simulator runs the app's background work itself while the caller holds, so a
            # call plays the same way every time.
            "workers": 0,
        }
        if options.perfect_asr:
            config["asr"] = "scripted"
        config.update(options.app_config)
        app = create_app(config)
        services = get_services(app)
        services.prompts.render_all(services.script.spoken_texts())
        try:
            yield app
        finally:
            services.worker.stop()
            services.store.dispose()


class _FlaskTransport:
    """Requests to the in-process app through Flask's test client; its Media Streams through a
    server on 127.0.0.1 started on first use (Flask's test client speaks no WebSocket)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client = app.test_client()
        self._server: BaseWSGIServer | None = None

    def open_socket(self, url: str, headers: dict[str, str]) -> StreamSocket:
        if self._server is None:
            self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
            threading.Thread(
                target=self._server.serve_forever, name="voice-app-sim-server", daemon=True
            ).start()
        local = f"ws://127.0.0.1:{self._server.server_port}{_local(url)}"
        socket: StreamSocket = simple_websocket.Client(local, headers=headers)
        return socket

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def post(self, url: str, params: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
        response = self.client.post(_local(url), data=params, headers=headers)
        return response.status_code, response.get_data(as_text=True)

    def get(self, url: str) -> tuple[int, bytes]:
        response = self.client.get(_local(url))
        return response.status_code, response.get_data()


def _local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


class HttpTransport:
    """Requests to a running server over HTTP, its Media Streams over WebSocket.

    Each webhook opens its own connection, as Twilio's do: a kept-alive connection that sat idle
    through a <Pause> as long as the server's keep-alive timeout races the server closing it.
    """

    def post(self, url: str, params: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
        response = requests.post(
            url, data=params, headers={**headers, "Connection": "close"}, timeout=15
        )
        return response.status_code, response.text

    def get(self, url: str) -> tuple[int, bytes]:
        response = requests.get(url, headers={"Connection": "close"}, timeout=15)
        return response.status_code, response.content

    def open_socket(self, url: str, headers: dict[str, str]) -> StreamSocket:
        socket: StreamSocket = simple_websocket.Client(url, headers=headers)
        return socket


def _simulate_in_process(
    options: SimulationOptions,
    app: Flask,
    standin: TwilioStandIn,
    auth_token: str,
    make_recording: Callable[[str], bytes],
    make_frames: Callable[[CallerStep], list[bytes]],
) -> CallReport:
    from voice_app.app import get_services

    worker = get_services(app).worker

    def run_background_work(_seconds: float) -> None:
        while worker.run_once():
            pass

    transport = _FlaskTransport(app)
    simulator = CallSimulator(
        transport=transport,
        app_url=IN_PROCESS_URL,
        auth_token=auth_token,
        standin=standin,
        steps=list(options.steps),
        make_recording=make_recording,
        on_hold=run_background_work,
        consent_key=options.consent_key,
        consent_says=options.consent_says,
        from_number=options.from_number,
        ask_caller=options.ask_caller,
        speech_frames=make_frames,
        live=options.live,
    )
    try:
        report = simulator.run()
    finally:
        transport.close()
    worker.drain(timeout=120)
    report.texts = list(standin.texts)
    report.recordings_kept = standin.recordings_stored()
    return report


def _simulate_against_server(
    options: SimulationOptions,
    standin: TwilioStandIn,
    auth_token: str,
    make_recording: Callable[[str], bytes],
    make_frames: Callable[[CallerStep], list[bytes]],
) -> CallReport:
    if not os.environ.get("TWILIO_AUTH_TOKEN"):
        raise ConfigError(
            "Set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN to the values the server uses, so the "
            "simulator can sign its webhooks and the server can fetch recordings from it."
        )
    simulator = CallSimulator(
        transport=HttpTransport(),
        app_url=str(options.url),
        auth_token=auth_token,
        standin=standin,
        steps=list(options.steps),
        make_recording=make_recording,
        on_hold=time.sleep,
        consent_key=options.consent_key,
        consent_says=options.consent_says,
        from_number=options.from_number,
        ask_caller=options.ask_caller,
        speech_frames=make_frames,
        live=options.live,
    )
    report = simulator.run()
    if options.consent_key == "1":
        deadline = time.monotonic() + options.wait_for_text_seconds
        while not standin.texts and time.monotonic() < deadline:
            time.sleep(0.2)
    report.texts = list(standin.texts)
    report.recordings_kept = standin.recordings_stored()
    return report
