"""Speech synthesis for prompts: espeak-ng via pyttsx3 in a child process, cached as phone WAVs.

Every render runs `voice_app.tts_child` in its own process with a timeout, because the pyttsx3
engine can hang when reused in one process. Rendered prompts are 8 kHz mono 16-bit WAV files
named by a hash of (text, voice, rate), ready for TwiML `<Play>`; looking one up never starts a
process, so it is safe on a webhook request thread.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from voice_app.audio import PHONE_RATE, mulaw_encode, read_wav, resample, to_wav_bytes
from voice_app.errors import AudioError, RenderError
from voice_app.tts_child import EXIT_NO_ESPEAK

log = logging.getLogger(__name__)

# Bump when the rendered format changes, so old cache files are not served under new keys.
_CACHE_FORMAT = 1
_KEY_LENGTH = 32
_KEY_PATTERN = re.compile(rf"[0-9a-f]{{{_KEY_LENGTH}}}")
_STDERR_TAIL = 500
MULAW_SILENCE = 0xFF


def _child_command(output: Path, *, voice: str, rate: int) -> list[str]:
    # The text goes through stdin so a long prompt never meets the argv length limit.
    return [
        sys.executable,
        "-m",
        "voice_app.tts_child",
        "-",
        str(output),
        "--voice",
        voice,
        "--rate",
        str(rate),
    ]


def _failure(text: str, reason: str) -> RenderError:
    excerpt = text if len(text) <= 40 else text[:37] + "..."
    log.warning("prompt render failed (%r): %s", excerpt, reason)
    return RenderError(reason)


def _run_child(text: str, output: Path, *, voice: str, rate: int, timeout: float) -> None:
    command = _child_command(output, voice=voice, rate=rate)
    try:
        done = subprocess.run(
            command,
            input=text,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise _failure(
            text, f"the TTS child process did not finish within {timeout:g} s and was stopped"
        ) from None
    except OSError as exc:
        reason = f"could not start the TTS child process ({command[0]}): {exc}"
        raise _failure(text, reason) from exc
    stderr_tail = done.stderr.strip()[-_STDERR_TAIL:]
    if done.returncode == EXIT_NO_ESPEAK:
        raise _failure(text, f"{stderr_tail}; install espeak-ng: run scripts/install.sh")
    if done.returncode != 0:
        raise _failure(
            text,
            f"the TTS child process exited with code {done.returncode}: "
            f"{stderr_tail or '(nothing on stderr)'}",
        )


def synthesize(text: str, *, voice: str, rate: int, timeout: float = 20.0) -> bytes:
    """Render `text` to 8 kHz mono 16-bit WAV bytes in a child process, or raise RenderError."""
    if not text.strip():
        raise _failure(text, "nothing to say: the prompt text is empty")
    with tempfile.TemporaryDirectory(prefix="voice_app_tts_") as tmp:
        output = Path(tmp) / "prompt.wav"
        _run_child(text, output, voice=voice, rate=rate, timeout=timeout)
        try:
            raw = output.read_bytes()
        except FileNotFoundError:
            reason = "the TTS child process reported success but wrote no file"
            raise _failure(text, reason) from None
    try:
        samples, source_rate = read_wav(raw)
    except AudioError as exc:
        raise _failure(text, f"the TTS child process wrote an unreadable WAV: {exc}") from exc
    return to_wav_bytes(resample(samples, source_rate, PHONE_RATE), PHONE_RATE)


@dataclass
class RenderReport:
    """What `PromptCache.render_all` did: counts, and each failed text with its reason."""

    rendered: int = 0
    already_cached: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


class PromptCache:
    """A folder of rendered prompts, one WAV file per (text, voice, rate)."""

    def __init__(self, cache_dir: Path, *, voice: str, rate: int, timeout: float = 20.0) -> None:
        self.cache_dir = Path(cache_dir)
        self.voice = voice
        self.rate = rate
        self.timeout = timeout

    def key(self, text: str) -> str:
        """A stable hex name for `text` as spoken with this cache's voice and rate."""
        # JSON keeps the fields apart, so ("ab", "c") and ("a", "bc") cannot collide.
        material = json.dumps([_CACHE_FORMAT, text, self.voice, self.rate], ensure_ascii=False)
        return hashlib.sha256(material.encode("utf-8")).hexdigest()[:_KEY_LENGTH]

    def path_for(self, text: str) -> Path:
        """Where the rendered prompt for `text` lives (whether or not it exists yet)."""
        return self.cache_dir / f"{self.key(text)}.wav"

    def lookup(self, text: str) -> Path | None:
        """The cached prompt for `text`, or None; never renders, so safe on a request thread."""
        path = self.path_for(text)
        return path if path.is_file() else None

    def path_for_key(self, key: str) -> Path | None:
        """The cached file for a key from a URL, or None if the key is malformed or not cached."""
        if not _KEY_PATTERN.fullmatch(key):
            return None
        path = self.cache_dir / f"{key}.wav"
        return path if path.is_file() else None

    def caption_for_key(self, key: str) -> str | None:
        """The text a cached prompt speaks (its caption), or None."""
        path = self.path_for_key(key)
        if path is None:
            return None
        caption = path.with_suffix(".txt")
        return caption.read_text(encoding="utf-8") if caption.is_file() else None

    def render(self, text: str) -> Path:
        """The cached prompt for `text`, rendering it first if needed; raises RenderError."""
        cached = self.lookup(text)
        if cached is not None:
            return cached
        wav = synthesize(text, voice=self.voice, rate=self.rate, timeout=self.timeout)
        target = self.path_for(text)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        # The caption goes first, so whoever finds the audio also finds what it says.
        self._write_atomically(target.with_suffix(".txt"), text.encode("utf-8"))
        self._write_atomically(target, wav)
        return target

    def _write_atomically(self, target: Path, data: bytes) -> None:
        # Temp file in the same folder + os.replace: readers and concurrent renders of the same
        # text only ever see a complete file.
        fd, tmp_name = tempfile.mkstemp(dir=self.cache_dir, prefix=".render-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(data)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    def render_all(self, texts: Iterable[str], jobs: int = 2) -> RenderReport:
        """Render every missing prompt in `texts`, collecting failures instead of raising."""
        report = RenderReport()
        missing: list[str] = []
        for text in dict.fromkeys(texts):
            if self.lookup(text) is not None:
                report.already_cached += 1
            else:
                missing.append(text)

        def attempt(text: str) -> str | None:
            # One bad prompt (or a full disk) must not stop the rest; the report carries it.
            try:
                self.render(text)
            except RenderError as exc:  # already logged where it was raised
                return str(exc)
            except OSError as exc:
                log.warning("could not store prompt in %s: %s", self.cache_dir, exc)
                return f"could not store the rendered prompt: {exc}"
            return None

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for text, reason in zip(missing, pool.map(attempt, missing), strict=True):
                if reason is None:
                    report.rendered += 1
                else:
                    report.failed.append((text, reason))
        return report


def mulaw_frames(wav_path: Path, frame_ms: int = 20) -> list[bytes]:
    """A cached prompt as 8 kHz mu-law frames (160 bytes at 20 ms), the last padded with silence."""
    samples, rate = read_wav(Path(wav_path).read_bytes())
    encoded = mulaw_encode(resample(samples, rate, PHONE_RATE))
    size = PHONE_RATE * frame_ms // 1000
    frames = [encoded[i : i + size] for i in range(0, len(encoded), size)]
    if frames and len(frames[-1]) < size:
        frames[-1] = frames[-1].ljust(size, bytes([MULAW_SILENCE]))
    return frames
