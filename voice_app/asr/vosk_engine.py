"""Offline recognition with Vosk: one model shared by every thread, one recognizer per answer.

A `vosk.Model` is large and safe to share; a `KaldiRecognizer` holds the state of one stream and
is not thread-safe, so each transcription makes its own (they are cheap next to the model).
The same audio can come out with a word or two different on a later run in the same process:
Vosk's result drifts with what the shared model decoded before (alphacep/vosk-api#868).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import vosk

from voice_app.asr import Transcript, Word, decode_wav
from voice_app.audio import Samples, resample
from voice_app.errors import AudioError, ModelNotFound

DEFAULT_MODEL_RATE = 16000

CHUNK_SECONDS = 0.25

MODEL_HELP = (
    "Set VOSK_MODEL_PATH to an unpacked Vosk model folder (e.g. vosk-model-small-en-us-0.15 "
    "from https://alphacephei.com/vosk/models), or run the simulator with --perfect-asr."
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


def _checked_model_dir(model_path: str) -> Path:
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


class VoskRecognizer:
    """Transcribes WAV audio with a Vosk model loaded once and shared by all threads."""

    name = "vosk"

    def __init__(self, model_path: str) -> None:
        path = _checked_model_dir(model_path)
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

    @property
    def sample_rate(self) -> int:
        """The sample rate the model expects; audio is resampled to it."""
        return self._sample_rate

    def transcribe(self, wav: bytes) -> Transcript:
        """Transcribe the first channel of a PCM WAV file; raise `AudioError` if unreadable."""
        samples, rate = decode_wav(wav, channel=0)
        return self.transcribe_samples(samples, rate)

    def transcribe_samples(self, samples: Samples, rate: int) -> Transcript:
        """Transcribe mono int16 samples recorded at `rate` Hz."""
        if rate <= 0:
            raise AudioError(f"cannot transcribe audio with a sample rate of {rate} Hz")
        duration = len(samples) / rate
        if len(samples) == 0:
            return Transcript(text="", words=(), duration=0.0)
        audio = resample(samples, rate, self._sample_rate).astype("<i2", copy=False)
        recognizer = vosk.KaldiRecognizer(self._model, self._sample_rate)
        recognizer.SetWords(True)
        segments: list[dict[str, Any]] = []
        chunk = max(1, int(self._sample_rate * CHUNK_SECONDS))
        for start in range(0, len(audio), chunk):
            if recognizer.AcceptWaveform(audio[start : start + chunk].tobytes()):
                segments.append(json.loads(recognizer.Result()))
        segments.append(json.loads(recognizer.FinalResult()))
        return _join_segments(segments, duration)


def _join_segments(segments: list[dict[str, Any]], duration: float) -> Transcript:
    texts = [str(segment.get("text", "")).strip() for segment in segments]
    words = tuple(
        Word(
            word=str(item["word"]),
            start=float(item["start"]),
            end=float(item["end"]),
            confidence=float(item.get("conf", 1.0)),
        )
        for segment in segments
        for item in segment.get("result", ())
    )
    return Transcript(text=" ".join(t for t in texts if t), words=words, duration=duration)
