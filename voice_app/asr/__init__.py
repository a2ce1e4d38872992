"""Speech recognition behind one small interface.

A recognizer turns a WAV file (bytes) into a `Transcript`. The engine is chosen by the setting
`VOICE_APP_ASR` (see `load_recognizer`):

    vosk                    `VoskRecognizer`: offline Vosk, model folder in VOSK_MODEL_PATH
    scripted                `ScriptedRecognizer`: reads the text the call simulator embedded
    package.module:factory  a site's own engine

Plugging in your own engine: `factory(settings)` is called once at start-up with the app's
`Settings` and returns an object with a `transcribe(wav: bytes) -> Transcript` method (and,
ideally, a `name: str` used in logs). An engine that can do more implements `SpeechRecognizer`:
`transcribe(wav, *, phrases=None)` (recognition limited to a phrase list, see
`voice_app.asr.phrases`) and `open_stream(sample_rate, *, phrases=None)` (live audio).

`load_recognizer` wraps every engine in a `BoundedRecognizer`: at most VOICE_APP_ASR_THREADS
recognitions run at once, and one more raises `RecognizerBusy` at once instead of queueing on a
thread (the job is put back in the database queue; the caller keeps hearing the hold prompt).

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
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast, runtime_checkable

from voice_app.audio import PHONE_RATE, Samples, read_wav
from voice_app.config import Settings
from voice_app.errors import AudioError, ConfigError, SpeechError

log = logging.getLogger(__name__)


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
    # True when the audio ran past VOICE_APP_ASR_MAX_SECONDS and only its start was transcribed
    # (`duration` is then the length of that start).
    truncated: bool = False

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


class RecognitionStream(Protocol):
    """One live answer being recognised: feed audio as it arrives, read partials, finish once.

    Not thread-safe: one stream belongs to one conversation (one thread at a time).
    """

    def feed_pcm(self, pcm: bytes) -> None:
        """Feed little-endian 16-bit mono PCM at the stream's sample rate."""
        ...

    def feed_mulaw(self, data: bytes) -> None:
        """Feed G.711 mu-law bytes (a Media Streams frame, base64-decoded)."""
        ...

    def partial(self) -> str:
        """Everything recognised so far, the last words still subject to change."""
        ...

    def finish(self) -> Transcript:
        """End the stream and return the whole transcript; feeding after this is an error."""
        ...


@runtime_checkable
class SpeechRecognizer(Recognizer, Protocol):
    """An engine that also recognises from a phrase list and from live audio."""

    def transcribe(self, wav: bytes, *, phrases: Sequence[str] | None = None) -> Transcript:
        """Transcribe a whole WAV file, limited to `phrases` (Vosk grammar) when given."""
        ...

    def open_stream(
        self, sample_rate: int = PHONE_RATE, *, phrases: Sequence[str] | None = None
    ) -> RecognitionStream:
        """Start recognising live audio arriving at `sample_rate` Hz."""
        ...


class RecognizerBusy(SpeechError):
    """Every recognition slot is taken: try the job again shortly (no attempt is used up)."""


class BoundedRecognizer:
    """Runs at most `limit` whole-file recognitions at once; the next raises `RecognizerBusy`.

    Refusing at once, rather than blocking a worker thread, keeps the waiting answers in the
    database queue, where nothing is lost to a restart and other jobs (texts) still run. Live
    streams are not counted: they arrive at the speed of speech and must never be refused
    mid-call.
    """

    def __init__(self, engine: Recognizer, limit: int) -> None:
        if limit < 1:
            raise ConfigError(f"the recognition limit must be at least 1, got {limit}")
        self.engine = engine
        self.name = str(getattr(engine, "name", type(engine).__name__))
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)

    def transcribe(self, wav: bytes, *, phrases: Sequence[str] | None = None) -> Transcript:
        """Transcribe with the engine (with `phrases` when it supports them), if a slot is free."""
        if not self._slots.acquire(blocking=False):
            raise RecognizerBusy(
                f"all {self.limit} recognition slots are busy (VOICE_APP_ASR_THREADS)"
            )
        try:
            if phrases is not None and isinstance(self.engine, SpeechRecognizer):
                return self.engine.transcribe(wav, phrases=phrases)
            # An engine without phrase lists hears the full vocabulary; the reply is still
            # matched against the phrase list afterwards, so only accuracy is lost.
            return self.engine.transcribe(wav)
        finally:
            self._slots.release()

    def open_stream(
        self, sample_rate: int = PHONE_RATE, *, phrases: Sequence[str] | None = None
    ) -> RecognitionStream:
        """A live stream from the engine; `SpeechError` when the engine has none."""
        if not isinstance(self.engine, SpeechRecognizer):
            raise SpeechError(
                f"the speech engine {self.name!r} cannot recognise live audio (no open_stream)"
            )
        return self.engine.open_stream(sample_rate, phrases=phrases)


def bounded(recognizer: Recognizer, settings: Settings) -> BoundedRecognizer:
    """`recognizer` behind the bound on parallel recognitions (unchanged if already bounded)."""
    if isinstance(recognizer, BoundedRecognizer):
        return recognizer
    return BoundedRecognizer(recognizer, recognition_slots(settings))


def recognition_slots(settings: Settings) -> int:
    """How many recognitions may run at once: VOICE_APP_ASR_THREADS, or the CPU cores for 0."""
    return settings.asr_threads or os.cpu_count() or 2


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


def load_recognizer(settings: Settings) -> BoundedRecognizer:
    """Build the recognizer named by `settings.asr` (VOICE_APP_ASR), bounded to its slots."""
    return BoundedRecognizer(load_engine(settings), recognition_slots(settings))


def load_engine(settings: Settings) -> Recognizer:
    """The bare engine named by `settings.asr`, without the bound on parallel recognitions."""
    choice = settings.asr.strip()
    # Imported here so that `scripted` and plug-ins never load the Vosk library.
    if choice == "vosk":
        from voice_app.asr.vosk_engine import VoskRecognizer
        from voice_app.models import resolve_model_path

        return VoskRecognizer(
            resolve_model_path(settings), max_seconds=float(settings.asr_max_seconds)
        )
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
