"""Shared fixtures: an app wired with fakes at the adapter seams, and a signed-webhook helper."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from twilio.request_validator import RequestValidator
from werkzeug.test import TestResponse

from voice_app.app import create_app, get_services
from voice_app.config import Settings, load_settings
from voice_app.services import Services

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-auth-token"
PUBLIC_URL = "https://line.example.test"
CALLER = "+15555550100"


LINE_NUMBER = "+15005550006"


def settings_for(base_url: str, **overrides: Any) -> Settings:
    """Settings for the real REST adapters talking to a Twilio API (or stand-in) at `base_url`."""
    values = {
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_phone_number": LINE_NUMBER,
        "twilio_api_base_url": base_url,
        **overrides,
    }
    return load_settings(values, environ={})


class FakeRecordings:
    """Recordings served from memory, as Twilio's REST API would; deletions recorded."""

    def __init__(self) -> None:
        self.audio: dict[str, bytes] = {}
        self.fetched: list[str] = []
        self.deleted: list[str] = []

    def fetch(self, recording_url: str) -> bytes:
        self.fetched.append(recording_url)
        return self.audio[recording_url]

    def delete(self, recording_url: str) -> None:
        self.deleted.append(recording_url)


class FakeTexts:
    """Collects the texts the app sends instead of handing them to Twilio."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, to: str, body: str, *, status_callback: str | None = None) -> str:
        self.sent.append((to, body))
        self.status_callback = status_callback
        return f"SM{len(self.sent):032d}"

    def find_sent(self, to: str, body: str, since: float) -> str | None:
        for number, (sent_to, sent_body) in enumerate(self.sent, start=1):
            if (sent_to, sent_body) == (to, body):
                return f"SM{number:032d}"
        return None


@pytest.fixture(scope="session")
def prompt_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One prompt cache for the whole test session: prompts render once."""
    return tmp_path_factory.mktemp("prompts-cache")


@pytest.fixture
def app_config(tmp_path: Path, prompt_cache_dir: Path) -> dict[str, Any]:
    """Settings for a test app: signed requests, scripted ASR, a database of its own."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "prompts").symlink_to(prompt_cache_dir)
    return {
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_phone_number": "+15005550006",
        "twilio_api_base_url": "http://127.0.0.1:9",
        "public_base_url": PUBLIC_URL,
        "asr": "scripted",
        "data_dir": str(data_dir),
        "database_url": f"sqlite:///{tmp_path / 'test.sqlite3'}",
        "workers": 0,
    }


@pytest.fixture
def recordings() -> FakeRecordings:
    return FakeRecordings()


@pytest.fixture
def texts() -> FakeTexts:
    return FakeTexts()


@pytest.fixture
def app(
    app_config: dict[str, Any], recordings: FakeRecordings, texts: FakeTexts
) -> Iterator[Flask]:
    app = create_app(app_config, recordings=recordings, text_sender=texts)
    yield app
    get_services(app).worker.stop()
    get_services(app).store.dispose()


@pytest.fixture
def services(app: Flask) -> Services:
    return get_services(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class Twilio:
    """Posts webhooks the way Twilio does: form-encoded, signed against the public URL."""

    def __init__(self, client: FlaskClient, token: str = AUTH_TOKEN) -> None:
        self.client = client
        self.validator = RequestValidator(token)

    def sign(self, path: str, params: dict[str, str]) -> str:
        return str(self.validator.compute_signature(PUBLIC_URL + path, params))

    def post(self, path: str, *, sign: bool = True, **params: str) -> TestResponse:
        headers = {"X-Twilio-Signature": self.sign(path, params)} if sign else {}
        return self.client.post(path, data=params, headers=headers)

    def twiml(self, path: str, **params: str) -> ET.Element:
        response = self.post(path, **params)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.mimetype == "text/xml"
        return ET.fromstring(response.get_data(as_text=True))


def heard(root: ET.Element, services: Services) -> list[str]:
    """What the caller hears, in order: <Say> text, or the caption of a <Play>ed prompt."""
    texts = []
    for verb in root.iter():
        if verb.tag == "Say":
            texts.append(verb.text or "")
        elif verb.tag == "Play":
            key = Path(urlsplit(verb.text or "").path).stem
            texts.append(services.prompts.caption_for_key(key) or "?")
    return texts


@pytest.fixture
def twilio(client: FlaskClient) -> Twilio:
    return Twilio(client)
