"""Offline recognition with Vosk: one model shared by every thread, one recognizer per answer.

A `vosk.Model` is large and safe to share; a `KaldiRecognizer` holds the state of one stream and
is not thread-safe, so each transcription makes its own (they are cheap next to the model).
The same audio can come out with a word or two different on a later run in the same process:
Vosk's result drifts with what the shared model decoded before (alphacep/vosk-api#868).

Whole files and live audio take the same road: `transcribe` opens a `VoskStream` and feeds it
the file's samples, so resampling to the model's rate, the length limit, phrase lists and word
timings are one piece of code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soxr
import vosk

from voice_app.asr import Transcript, Word, decode_wav
from voice_app.audio import PHONE_RATE, Samples, mulaw_decode
from voice_app.errors import AudioError, ModelNotFound, SpeechError

log = logging.getLogger(__name__)

DEFAULT_MODEL_RATE = 16000

# Whole files are fed to Kaldi a quarter second at a time: fewer calls than 20 ms frames, the
# same result (Vosk's endpointing works on its own frames, whatever the chunk size).
CHUNK_SECONDS = 0.25

# Vosk writes this for speech outside a phrase list; it is not a word the caller said.
UNKNOWN = "[unk]"

MODEL_HELP = (
    "Run `voice-app model download` (fetches vosk-model-small-en-us-0.15 into the model cache), "
    "or set VOSK_MODEL_PATH to an unpacked Vosk model folder from "
    "https://alphacephei.com/vosk/models, or run the simulator with --perfect-asr."
)


def model_sample_rate(model_dir: Path) -> int:
    """The rate a model was trained on, from its conf/mfcc.conf (16000 when not stated)."""
    conf = model_dir / "conf" / "mfcc.conf"
    if not conf.is_file():
        return DEFAULT_MODEL_RATE
    for line in conf.read_text(encoding="utf-8", errors="replace").splitlines():
        option, _, value = line.strip().partition("=")
        if option == "--sample-frequency":
            try:
                rate = int(float(value))
            except ValueError:
                rate = 0  # reported just below, with the other impossible rates
            if rate <= 0:
                raise ModelNotFound(
                    f"The Vosk model at {str(model_dir)!r} is broken: {conf} has "
                    f"--sample-frequency={value!r}. {MODEL_HELP}"
                )
            return rate
    return DEFAULT_MODEL_RATE


def checked_model_dir(model_path: str) -> Path:
    """The model folder, if it looks like an unpacked Vosk model; else `ModelNotFound`."""
    if not model_path.strip():
        raise ModelNotFound(f"No Vosk speech model: VOSK_MODEL_PATH is not set. {MODEL_HELP}")
    path = Path(model_path).expanduser()
    if not path.exists():
        raise ModelNotFound(
            f"No Vosk speech model at {model_path!r}: it does not exist. {MODEL_HELP}"
        )
    if not path.is_dir():
        raise ModelNotFound(
            f"No Vosk speech model at {model_path!r}: it is a file, not a folder "
            f"(unpack the model archive first). {MODEL_HELP}"
        )
    # Vosk accepts both layouts: am/final.mdl (current models) and final.mdl (old ones).
    if not ((path / "am" / "final.mdl").is_file() or (path / "final.mdl").is_file()):
        raise ModelNotFound(
            f"No Vosk speech model at {model_path!r}: the folder has no am/final.mdl, so it is "
            f"not an unpacked Vosk model (point at the folder that holds am/, conf/, graph/). "
            f"{MODEL_HELP}"
        )
    return path


def grammar_json(phrases: Sequence[str], *, with_unknown: bool = True) -> str:
    """A phrase list as Vosk's grammar argument, with "[unk]" for anything else said.

    Without "[unk]" Vosk forces every sound (a cough, a long sentence) into one of the phrases,
    so it is added whenever the model knows it (`with_unknown`); a model without it (the small
    Korean one) would only warn and drop it.
    """
    listed = [" ".join(p.lower().split()) for p in phrases if p.strip()]
    listed = [p for p in dict.fromkeys(listed) if p != UNKNOWN]
    if not listed:
        raise SpeechError("a phrase list needs at least one phrase besides [unk]")
    if with_unknown:
        listed.append(UNKNOWN)
    return json.dumps(listed, ensure_ascii=False)


class VoskRecognizer:
    """Transcribes WAV audio with a Vosk model loaded once and shared by all threads."""

    name = "vosk"

    def __init__(self, model_path: str, *, max_seconds: float = 0.0) -> None:
        path = checked_model_dir(model_path)
        self._sample_rate = model_sample_rate(path)
        vosk.SetLogLevel(-1)  # Kaldi otherwise writes pages of model details to stderr
        try:
            self._model = vosk.Model(str(path))
        except Exception as exc:
            # vosk raises a bare Exception("Failed to create a model"); nothing half-built is
            # kept, and the error is re-raised with what to do.
            raise ModelNotFound(
                f"The Vosk model at {model_path!r} could not be loaded ({exc}); it may be "
                f"incomplete or for another Vosk version. {MODEL_HELP}"
            ) from exc
        self.model_path = str(path)
        self.max_seconds = max_seconds
        self._knows_unknown = self._model.vosk_model_find_word(UNKNOWN) >= 0

    @property
    def sample_rate(self) -> int:
        """The sample rate the model expects; audio is resampled to it."""
        return self._sample_rate

    @property
    def model(self) -> vosk.Model:
        """The loaded model (shared, read-only)."""
        return self._model

    def missing_words(self, phrases: Sequence[str]) -> list[str]:
        """Words of `phrases` the model does not know: Vosk would silently drop them."""
        words = dict.fromkeys(w for p in phrases for w in p.lower().split() if w != UNKNOWN)
        return [w for w in words if self._model.vosk_model_find_word(w) < 0]

    def transcribe(self, wav: bytes, *, phrases: Sequence[str] | None = None) -> Transcript:
        """Transcribe the first channel of a PCM WAV file; raise `AudioError` if unreadable."""
        samples, rate = decode_wav(wav, channel=0)
        return self.transcribe_samples(samples, rate, phrases=phrases)

    def transcribe_samples(
        self, samples: Samples, rate: int, *, phrases: Sequence[str] | None = None
    ) -> Transcript:
        """Transcribe mono int16 samples recorded at `rate` Hz."""
        if len(samples) == 0 and rate > 0:
            return Transcript(text="", words=(), duration=0.0)
        stream = self.open_stream(rate, phrases=phrases)
        stream.feed_samples(samples)
        return stream.finish()

    def open_stream(
        self, sample_rate: int = PHONE_RATE, *, phrases: Sequence[str] | None = None
    ) -> VoskStream:
        """Start recognising live audio at `sample_rate` Hz (8000 for Twilio Media Streams)."""
        return VoskStream(
            self._model,
            model_rate=self._sample_rate,
            input_rate=sample_rate,
            grammar=(
                grammar_json(phrases, with_unknown=self._knows_unknown)
                if phrases is not None
                else None
            ),
            max_seconds=self.max_seconds,
        )


class VoskStream:
    """One answer being recognised: audio in as it arrives, resampled, cut at the limit."""

    def __init__(
        self,
        model: vosk.Model,
        *,
        model_rate: int,
        input_rate: int,
        grammar: str | None = None,
        max_seconds: float = 0.0,
    ) -> None:
        if input_rate <= 0:
            raise AudioError(f"cannot transcribe audio with a sample rate of {input_rate} Hz")
        self.input_rate = input_rate
        self.model_rate = model_rate
        if grammar is None:
            self._recognizer = vosk.KaldiRecognizer(model, model_rate)
        else:
            self._recognizer = vosk.KaldiRecognizer(model, model_rate, grammar)
        self._recognizer.SetWords(True)
        # A streaming resampler keeps its filter state between chunks, so 20 ms frames come out
        # as the whole file would (models that refuse to upsample get their own rate).
        self._resampler = (
            soxr.ResampleStream(input_rate, model_rate, 1, dtype="int16")
            if input_rate != model_rate
            else None
        )
        self._limit = round(max_seconds * input_rate) if max_seconds > 0 else None
        self._chunk = max(1, int(model_rate * CHUNK_SECONDS))
        self._fed = 0
        self._odd_byte = b""
        self._segments: list[dict[str, Any]] = []
        self._truncated = False
        self._finished = False

    def feed_pcm(self, pcm: bytes) -> None:
        """Feed little-endian 16-bit mono PCM; an odd trailing byte waits for the next chunk."""
        data = self._odd_byte + pcm
        usable = len(data) - len(data) % 2
        self._odd_byte = data[usable:]
        self.feed_samples(np.frombuffer(data[:usable], dtype="<i2").astype(np.int16))

    def feed_mulaw(self, data: bytes) -> None:
        """Feed G.711 mu-law bytes, as Twilio Media Streams send them (after base64)."""
        self.feed_samples(mulaw_decode(data))

    def feed_samples(self, samples: Samples) -> None:
        """Feed mono int16 samples at the stream's input rate."""
        if self._finished:
            raise SpeechError("this recognition stream is finished; open a new one")
        if self._limit is not None and self._fed + len(samples) > self._limit:
            samples = samples[: max(0, self._limit - self._fed)]
            if not self._truncated:
                self._truncated = True
                log.warning(
                    "audio longer than %g s (VOICE_APP_ASR_MAX_SECONDS): the rest is not "
                    "transcribed",
                    self._limit / self.input_rate,
                )
        if len(samples) == 0:
            return
        self._fed += len(samples)
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        self._accept(samples)

    def _accept(self, audio: Samples) -> None:
        for start in range(0, len(audio), self._chunk):
            piece = audio[start : start + self._chunk].astype("<i2", copy=False)
            if self._recognizer.AcceptWaveform(piece.tobytes()):
                self._segments.append(json.loads(self._recognizer.Result()))

    def partial(self) -> str:
        """Everything recognised so far; the last words may still change."""
        if self._finished:
            return " ".join(_segment_words(s)[0] for s in self._segments).strip()
        current = json.loads(self._recognizer.PartialResult()).get("partial", "")
        texts = [_segment_words(s)[0] for s in self._segments]
        texts.append(" ".join(w for w in str(current).split() if w != UNKNOWN))
        return " ".join(t for t in texts if t)

    def finish(self) -> Transcript:
        """Flush the audio still in the resampler and the decoder; return the transcript."""
        if self._finished:
            raise SpeechError("this recognition stream is already finished")
        if self._resampler is not None and self._fed:
            self._accept(self._resampler.resample_chunk(np.zeros(0, np.int16), last=True))
        self._segments.append(json.loads(self._recognizer.FinalResult()))
        self._finished = True
        return _join_segments(
            self._segments, self._fed / self.input_rate, truncated=self._truncated
        )


def _segment_words(segment: dict[str, Any]) -> tuple[str, list[Word]]:
    words = [
        Word(
            word=str(item["word"]),
            start=float(item["start"]),
            end=float(item["end"]),
            confidence=float(item.get("conf", 1.0)),
        )
        for item in segment.get("result", ())
        if item.get("word") != UNKNOWN
    ]
    text = " ".join(w for w in str(segment.get("text", "")).split() if w != UNKNOWN)
    return text, words


def _join_segments(
    segments: list[dict[str, Any]], duration: float, *, truncated: bool = False
) -> Transcript:
    parts = [_segment_words(segment) for segment in segments]
    return Transcript(
        text=" ".join(text for text, _ in parts if text),
        words=tuple(word for _, words in parts for word in words),
        duration=duration,
        truncated=truncated,
    )
