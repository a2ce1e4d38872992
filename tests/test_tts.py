"""Prompt synthesis: real espeak-ng renders in a child process, the cache, and mu-law framing."""

from __future__ import annotations

import io
import math
import re
import subprocess
import sys
import threading
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voice_app import tts
from voice_app.audio import PHONE_RATE, mulaw_decode, read_wav
from voice_app.config import DEFAULT_GREETING
from voice_app.errors import RenderError
from voice_app.tts import PromptCache, mulaw_frames, synthesize

SENTENCE = "Tell me about a time you disagreed with a colleague, and how you resolved it."


@pytest.fixture
def cache(tmp_path: Path) -> PromptCache:
    return PromptCache(tmp_path / "prompts", voice="en-us", rate=165, timeout=20.0)


def _wav_facts(data: bytes) -> tuple[int, int, int, float]:
    with wave.open(io.BytesIO(data), "rb") as wav:
        return (
            wav.getframerate(),
            wav.getnchannels(),
            wav.getsampwidth(),
            wav.getnframes() / wav.getframerate(),
        )


def _rms(data: bytes) -> float:
    samples, _ = read_wav(data)
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def _forbid_children(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a TTS child was spawned: {args[0] if args else kwargs}")

    monkeypatch.setattr(subprocess, "run", refuse)  # the module object tts calls through


def test_rendered_prompt_is_audible_phone_wav_of_plausible_length() -> None:
    data = synthesize(SENTENCE, voice="en-us", rate=165)

    rate, channels, width, seconds = _wav_facts(data)
    assert (rate, channels, width) == (PHONE_RATE, 1, 2)
    assert 1.0 < seconds < 15.0
    assert _rms(data) > 300


def test_long_slow_prompt_is_rendered_in_full() -> None:
    # pyttsx3 once returned before espeak finished, so long or slow prompts came out missing.
    words = len(DEFAULT_GREETING.split())
    rate = 100

    seconds = _wav_facts(synthesize(DEFAULT_GREETING, voice="en-us", rate=rate))[3]

    assert seconds > 0.7 * words / rate * 60


def test_faster_rate_gives_shorter_audio() -> None:
    slow = _wav_facts(synthesize(SENTENCE, voice="en-us", rate=100))[3]
    fast = _wav_facts(synthesize(SENTENCE, voice="en-us", rate=300))[3]

    assert fast < slow * 0.75


@pytest.mark.parametrize("voice", ["gmw/en-us", "en-us", "EN-US", "en"])
def test_voice_accepts_espeak_id_or_language(voice: str) -> None:
    data = synthesize("Hello.", voice=voice, rate=165)

    assert _wav_facts(data)[0] == PHONE_RATE


def test_unknown_voice_raises_naming_the_voice() -> None:
    with pytest.raises(RenderError, match="klingon-xx") as caught:
        synthesize("Hello.", voice="klingon-xx", rate=165)

    assert re.search(r"available ids include: \w+/\w+", str(caught.value))


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_text_is_refused(text: str) -> None:
    with pytest.raises(RenderError, match="empty"):
        synthesize(text, voice="en-us", rate=165)


def test_hanging_child_is_stopped_by_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        tts, "_child_command",
        lambda output, **_: [sys.executable, "-c", "import time; time.sleep(30)"],
    )

    with pytest.raises(RenderError, match=r"within 1 s"):
        synthesize("Hello.", voice="en-us", rate=165, timeout=1)


def test_failing_child_reports_exit_code_and_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    script = "import sys; sys.stderr.write('espeak exploded'); sys.exit(7)"
    monkeypatch.setattr(tts, "_child_command", lambda output, **_: [sys.executable, "-c", script])

    with pytest.raises(RenderError, match=r"code 7.*espeak exploded"):
        synthesize("Hello.", voice="en-us", rate=165)


def test_missing_espeak_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real child, with pyttsx3's espeak binding made unimportable as on a bare machine.
    script = (
        "import sys; sys.modules['pyttsx3.drivers._espeak'] = None; "
        "from voice_app.tts_child import main; sys.exit(main(sys.argv[1:]))"
    )

    def command(output: Path, *, voice: str, rate: int) -> list[str]:
        return [sys.executable, "-c", script, "-", str(output), "--voice", voice]

    monkeypatch.setattr(tts, "_child_command", command)

    with pytest.raises(RenderError, match=r"install espeak-ng: run scripts/install\.sh"):
        synthesize("Hello.", voice="en-us", rate=165)


def test_cache_key_is_stable_and_depends_on_text_voice_and_rate(tmp_path: Path) -> None:
    base = PromptCache(tmp_path, voice="en-us", rate=165)
    key = base.key("Hello.")

    assert key == PromptCache(tmp_path / "elsewhere", voice="en-us", rate=165).key("Hello.")
    assert len({
        key,
        base.key("Hello!"),
        PromptCache(tmp_path, voice="en", rate=165).key("Hello."),
        PromptCache(tmp_path, voice="en-us", rate=166).key("Hello."),
    }) == 4
    assert base.path_for("Hello.") == tmp_path / f"{key}.wav"


def test_lookup_finds_prompt_only_after_render(cache: PromptCache) -> None:
    assert cache.lookup(SENTENCE) is None

    path = cache.render(SENTENCE)

    assert cache.lookup(SENTENCE) == path
    assert path.is_file()
    assert _wav_facts(path.read_bytes())[0] == PHONE_RATE


def test_second_render_does_not_spawn_a_child(
    cache: PromptCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = cache.render(SENTENCE)
    mtime = first.stat().st_mtime_ns
    _forbid_children(monkeypatch)

    assert cache.render(SENTENCE) == first
    assert first.stat().st_mtime_ns == mtime


def test_lookup_neither_spawns_nor_loads_pyttsx3(tmp_path: Path) -> None:
    # A fresh interpreter, so modules imported by other tests cannot hide an import.
    script = (
        "import subprocess, sys\n"
        "from pathlib import Path\n"
        "def refuse(*a, **k): raise SystemExit('spawned a child')\n"
        "subprocess.run = refuse\n"
        "from voice_app.tts import PromptCache\n"
        "cache = PromptCache(Path(sys.argv[1]), voice='en-us', rate=165)\n"
        "assert cache.lookup('Hello.') is None\n"
        "assert cache.path_for_key(cache.key('Hello.')) is None\n"
        "assert 'pyttsx3' not in sys.modules, 'pyttsx3 was imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=False
    )

    assert done.returncode == 0, done.stderr


def test_path_for_key_serves_only_cached_well_formed_keys(cache: PromptCache) -> None:
    path = cache.render("Hello.")
    key = path.stem

    assert cache.path_for_key(key) == path
    assert cache.path_for_key("0" * len(key)) is None  # well formed, not cached
    for bad in ["../etc/passwd", f"../{key}", "z" * len(key), key[:-1], key + "0",
                key.upper(), f"{key}\n", "", f"{key}.wav"]:
        assert cache.path_for_key(bad) is None, bad


def test_concurrent_renders_of_one_text_leave_one_complete_file(cache: PromptCache) -> None:
    results: list[Path] = []
    def render() -> None:
        results.append(cache.render("Same text."))

    threads = [threading.Thread(target=render) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(results)) == 1 and len(results) == 4
    assert sorted(p.name for p in cache.cache_dir.iterdir()) == sorted(
        [results[0].name, results[0].with_suffix(".txt").name]
    )
    assert _rms(results[0].read_bytes()) > 300


def test_render_all_counts_rendered_cached_and_failed(cache: PromptCache) -> None:
    cache.render("Already here.")

    report = cache.render_all(
        ["Already here.", "First new.", "Second new.", "First new.", "  "], jobs=2
    )

    assert report.already_cached == 1
    assert report.rendered == 2
    assert [text for text, _ in report.failed] == ["  "]
    assert "empty" in report.failed[0][1]
    assert cache.lookup("First new.") is not None
    assert cache.lookup("Second new.") is not None
    assert sorted(p.suffix for p in cache.cache_dir.iterdir()) == [".txt"] * 3 + [".wav"] * 3


def test_render_all_collects_child_failures(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path, voice="klingon-xx", rate=165)

    report = cache.render_all(["One.", "Two."])

    assert report.rendered == 0
    assert sorted(text for text, _ in report.failed) == ["One.", "Two."]
    assert all("klingon-xx" in reason for _, reason in report.failed)
    assert list(tmp_path.iterdir()) == []


def test_render_failure_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="voice_app.tts"), pytest.raises(RenderError):
        synthesize("Hello.", voice="klingon-xx", rate=165)

    assert len(caplog.records) == 1
    assert "klingon-xx" in caplog.records[0].getMessage()


def test_mulaw_frames_cover_the_prompt_in_160_byte_frames(cache: PromptCache) -> None:
    path = cache.render(SENTENCE)
    samples, _ = read_wav(path.read_bytes())

    frames = mulaw_frames(path)

    assert all(len(frame) == 160 for frame in frames)
    assert len(frames) == math.ceil(len(samples) / 160)
    stream = b"".join(frames)
    assert stream[len(samples):] == b"\xff" * (len(stream) - len(samples))
    decoded = mulaw_decode(stream[: len(samples)]).astype(np.float64)
    # mu-law is lossy, but the decoded stream must still be the same speech.
    assert np.corrcoef(decoded, samples.astype(np.float64))[0, 1] > 0.99
