"""Speech recognition behind one small interface.

A recognizer turns a WAV file (bytes) into a `Transcript`. The engine is chosen by the setting
`VOICE_APP_ASR` (see `load_recognizer`):

    vosk                    `VoskRecognizer`: offline Vosk, model folder in VOSK_MODEL_PATH
    scripted                `ScriptedRecognizer`: reads the text the call simulator embedded
    package.module:factory  a site's own engine

Plugging in your own engine: `factory(settings)` is called once at start-up with the app's
`Settings` and returns an object with a `transcribe(wav: bytes) -> Transcript` method (and,
ideally, a `name: str` used in logs).

- `wav` is a whole PCM WAV file as Twilio serves recordings: usually 8000 Hz, 16-bit, mono,
  though two-channel files happen (channel 0 is the caller). Resampling is the engine's job;
  `decode_wav` below and `voice_app.audio.resample` do both.
- Return a `Transcript`: `text` is what was said ("" for silence, which is not an error),
  `words` the per-word timings in seconds from the start of the audio when the engine has them
  (else empty), `duration` the audio's length in seconds.
- Raise `voice_app.errors.AudioError` for audio that cannot be decoded: the answer is marked
  failed at once. Any other exception is retried with backoff, as for a passing fault.
- `transcribe` is called from several worker threads at once on the same object: keep shared
  state read-only (a loaded model) and make per-call state (a decoder stream) inside the call.
- It runs on a worker thread, never on a webhook request, so it may take seconds.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Protocol, cast

from voice_app.audio import Samples, read_wav
from voice_app.config import Settings
from voice_app.errors import AudioError, ConfigError


@dataclass(frozen=True)
class Word:
    """One recognised word with its timing in seconds from the start of the audio."""

    word: str
    start: float
    end: float
    confidence: float = 1.0


@dataclass(frozen=True)
class Transcript:
    """What the caller said: the text and, when the engine gives them, word timings."""

    text: str
    words: tuple[Word, ...] = field(default_factory=tuple)
    duration: float = 0.0

    @property
    def is_empty(self) -> bool:
        """True when nothing was recognised."""
        return not self.text.strip()


class Recognizer(Protocol):
    """The interface every speech engine implements."""

    name: str

    def transcribe(self, wav: bytes) -> Transcript:
        """Transcribe a whole WAV file; raise `AudioError` when it cannot be decoded."""
        ...


def decode_wav(wav: bytes, channel: int = 0) -> tuple[Samples, int]:
    """`read_wav` for recordings from outside: every way a WAV can be broken is an `AudioError`."""
    try:
        samples, rate = read_wav(wav, channel)
    except RuntimeError as exc:
        # The wave module raises a bare RuntimeError when a header chunk claims more bytes than
        # the file has; nothing was decoded, so reporting it as bad audio loses nothing.
        raise AudioError("not a readable PCM WAV file: a chunk runs past the end") from exc
    if rate <= 0:
        raise AudioError(f"not a usable WAV file: its header gives a sample rate of {rate} Hz")
    return samples, rate


_PLUGIN_FORM = (
    "VOICE_APP_ASR must be `vosk`, `scripted`, or an import path `package.module:factory` "
    "whose factory(settings) returns an object with a transcribe(wav) method"
)


def load_recognizer(settings: Settings) -> Recognizer:
    """Build the recognizer named by `settings.asr` (VOICE_APP_ASR)."""
    choice = settings.asr.strip()
    # Imported here so that `scripted` and plug-ins never load the Vosk library.
    if choice == "vosk":
        from voice_app.asr.vosk_engine import VoskRecognizer

        return VoskRecognizer(settings.vosk_model_path)
    if choice == "scripted":
        from voice_app.asr.scripted import ScriptedRecognizer

        return ScriptedRecognizer()
    return _load_plugin(choice, settings)


def _load_plugin(choice: str, settings: Settings) -> Recognizer:
    module_name, colon, attribute = choice.partition(":")
    if not colon or not module_name.strip() or not attribute.strip():
        raise ConfigError(f"{_PLUGIN_FORM}; got {choice!r}.")
    try:
        target: object = importlib.import_module(module_name.strip())
    except ImportError as exc:
        raise ConfigError(
            f"{_PLUGIN_FORM}; cannot import module {module_name!r} of {choice!r}: {exc}."
        ) from exc
    for part in attribute.strip().split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise ConfigError(
                f"{_PLUGIN_FORM}; module {module_name!r} has no {attribute!r}."
            ) from exc
    if not callable(target):
        raise ConfigError(f"{_PLUGIN_FORM}; {choice!r} is not callable.")
    recognizer = target(settings)
    if not callable(getattr(recognizer, "transcribe", None)):
        raise ConfigError(
            f"{_PLUGIN_FORM}; {choice!r} returned {type(recognizer).__name__}, "
            "which has no transcribe method."
        )
    return cast(Recognizer, recognizer)
