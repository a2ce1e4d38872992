"""Audio conversion shared by recognition and synthesis: WAV in and out, resampling, mu-law.

Samples are mono int16 numpy arrays. No use of `audioop` (gone from Python 3.13).
"""

from __future__ import annotations

import io
import wave

import numpy as np
import numpy.typing as npt
import soxr

from voice_app.errors import AudioError

Samples = npt.NDArray[np.int16]

PHONE_RATE = 8000


def read_wav(data: bytes, channel: int = 0) -> tuple[Samples, int]:
    """Decode a PCM WAV file into one channel of int16 samples and its sample rate."""
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            channels = wav.getnchannels()
            width = wav.getsampwidth()
            rate = wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise AudioError(f"not a readable PCM WAV file: {exc}") from exc
    if width == 2:
        samples = np.frombuffer(frames[: len(frames) - len(frames) % 2], dtype="<i2")
    elif width == 1:  # 8-bit WAV is unsigned
        samples = (np.frombuffer(frames, dtype=np.uint8).astype(np.int16) - 128) << 8
    else:
        raise AudioError(f"unsupported WAV sample width of {width} bytes; expected 8 or 16 bit")
    usable = len(samples) - len(samples) % channels
    samples = samples[:usable].reshape(-1, channels)[:, min(channel, channels - 1)]
    return np.ascontiguousarray(samples, dtype=np.int16), rate


def resample(samples: Samples, from_rate: int, to_rate: int) -> Samples:
    """Convert samples to another rate with a proper anti-aliasing filter."""
    if from_rate == to_rate or len(samples) == 0:
        return samples
    converted = soxr.resample(samples, from_rate, to_rate)
    return np.asarray(converted, dtype=np.int16)


def to_wav_bytes(samples: Samples, rate: int) -> bytes:
    """Encode mono int16 samples as a PCM WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()


def _mulaw_decode_table() -> Samples:
    codes = ~np.arange(256, dtype=np.uint8)
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = ((mantissa.astype(np.int32) << 3) + 0x84) << exponent
    values = np.where(sign != 0, 0x84 - magnitude, magnitude - 0x84)
    return values.astype(np.int16)


_MULAW_TABLE = _mulaw_decode_table()


def mulaw_decode(data: bytes) -> Samples:
    """Decode G.711 mu-law bytes (Twilio Media Streams) into int16 samples."""
    return _MULAW_TABLE[np.frombuffer(data, dtype=np.uint8)]


def mulaw_encode(samples: Samples) -> bytes:
    """Encode int16 samples as G.711 mu-law bytes."""
    pcm = samples.astype(np.int32)
    sign = np.where(pcm < 0, 0x80, 0x00)
    magnitude = np.minimum(np.abs(pcm), 32635) + 0x84
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    encoded = ~(sign | (exponent << 4) | mantissa) & 0xFF
    return bytes(encoded.astype(np.uint8).tobytes())
