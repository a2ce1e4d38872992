"""A stand-in for `voice-app serve` that does no work: the floor under the load test's figures.

    .venv/bin/python scripts/load_test.py --floor     # runs it after the real server, same calls

It answers each webhook with the TwiML the practice line would send at that step of a call
with three answers (fixed text, no database, no signature check, no background jobs) and serves
one small WAV and caption for every prompt, under the same gunicorn settings as `voice-app
serve` (threaded workers, the same processes and threads). Whatever latency the load test
measures against it comes from the load generator, gunicorn and the machine, not from the app.
It takes the command line `voice-app serve` takes, so the load test starts it the same way.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import wave
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from gunicorn.app.base import BaseApplication

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voice_app.store import Store

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def _silence_wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\0\0" * 8000)
    return buffer.getvalue()


class FloorApp:
    """The WSGI app: fixed TwiML per step, prompts from memory."""

    def __init__(self, base_url: str, follow_ups: int) -> None:
        self.base = base_url
        self.follow_ups = follow_ups
        self.wav = _silence_wav()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        if environ["REQUEST_METHOD"] == "POST":
            environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        if path.startswith("/prompts/"):
            audio = path.endswith(".wav")
            start_response("200 OK", [("Content-Type", "audio/wav" if audio else "text/plain")])
            return [self.wav if audio else b"a prompt"]
        turn = int(parse_qs(environ.get("QUERY_STRING", "")).get("turn", ["0"])[0])
        start_response("200 OK", [("Content-Type", "text/xml")])
        return [self._twiml(path, turn).encode()]

    def _twiml(self, path: str, turn: int) -> str:
        if path == "/voice/incoming":
            body = self._play("greeting", "introduction", "question") + self._record(0)
        elif path == "/voice/answer" and turn == 0:
            body = self._play("thanks", "consent") + (
                f'<Record action="{self.base}/voice/consent" method="POST" timeout="3" '
                'maxLength="5" finishOnKey="12" playBeep="false" trim="trim-silence"/>'
                f'<Redirect method="POST">{self.base}/voice/consent?silent=1</Redirect>'
            )
        elif path == "/voice/answer":
            body = self._play("thanks") + self._hold(turn)
        elif path == "/voice/consent":
            body = self._play("yes") + self._hold(0)
        elif path == "/voice/wait" and turn < self.follow_ups:
            body = self._play(f"follow-up-{turn}") + self._record(turn + 1)
        elif path == "/voice/wait":
            body = self._play("closing") + "<Hangup/>"
        else:
            body = ""
        return f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'

    def _play(self, *names: str) -> str:
        return "".join(f"<Play>{self.base}/prompts/{name}.wav</Play>" for name in names)

    def _record(self, turn: int) -> str:
        action = f"{self.base}/voice/answer?turn={turn}"
        return (
            f'<Record action="{action}" method="POST" timeout="8" maxLength="300" '
            'finishOnKey="#*" playBeep="true" trim="trim-silence"/>'
            f'<Redirect method="POST">{action}&amp;silent=1</Redirect>'
        )

    def _hold(self, turn: int) -> str:
        url = f"{self.base}/voice/wait?turn={turn}&amp;attempt=1"
        return f'<Pause length="2"/><Redirect method="POST">{url}</Redirect>'


class _Gunicorn(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    def __init__(self, app: FloorApp, options: dict[str, Any]) -> None:
        self._app = app
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self) -> FloorApp:
        return self._app


def main() -> None:
    """Serve the floor app with `voice-app serve`'s gunicorn settings."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    # An empty database, so the load test's report of jobs and texts reads from somewhere.
    Store(os.environ["VOICE_APP_DATABASE_URL"]).create_schema()
    follow_ups = int(os.environ.get("VOICE_APP_MAX_FOLLOW_UPS", "2"))
    app = FloorApp(f"http://{args.host}:{args.port}", follow_ups)
    options = {
        "bind": f"{args.host}:{args.port}",
        "workers": args.processes,
        "worker_class": "gthread",
        "threads": args.threads,
        "timeout": 30,
        "graceful_timeout": 20,
        "accesslog": "-",
        "control_socket_disable": True,
    }
    _Gunicorn(app, options).run()


if __name__ == "__main__":
    main()
