"""The "perfect ASR" of the call simulator and load tests: it reads words, it recognises none.

The simulator knows what its scripted caller says, so it writes that text into the WAV it serves
as the recording, in an extra RIFF chunk that WAV readers skip. `ScriptedRecognizer` reads the
chunk back. This lets the whole app path run on a machine without a speech model, and says
nothing about how well real recognition works.

Live mode has no file: the simulator sends the words inside the audio frames themselves. A frame
that starts with `FRAME_MAGIC` carries one or a few words after a length byte, then loud filler so
that it still counts as speech; `ScriptedStream` collects those words as the frames arrive.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from voice_app.asr import Transcript, decode_wav
from voice_app.audio import PHONE_RATE, mulaw_encode
from voice_app.errors import AudioError, SpeechError

TRANSCRIPT_CHUNK_ID = b"vaTx"
FRAME_MAGIC = b"vaTw"
FRAME_BYTES = 160  # 20 ms of 8 kHz mu-law
_MAX_FRAME_TEXT = FRAME_BYTES - len(FRAME_MAGIC) - 1 - 40  # leave loud filler in every frame
_LOUD = mulaw_encode(np.array([6000, -6000], dtype=np.int16))


def speech_frame(words: str = "") -> bytes:
    """A 20 ms mu-law frame that sounds like speech and carries `words` (may be empty)."""
    data = words.encode("utf-8")
    if len(data) > _MAX_FRAME_TEXT:
        raise ValueError(f"at most {_MAX_FRAME_TEXT} bytes of words fit in one frame")
    head = FRAME_MAGIC + bytes([len(data)]) + data if data else b""
    filler = _LOUD * FRAME_BYTES
    return head + filler[: FRAME_BYTES - len(head)]


def frame_words(frame: bytes) -> str:
    """The words a `speech_frame` carries ("" for any other frame)."""
    if not frame.startswith(FRAME_MAGIC) or len(frame) <= len(FRAME_MAGIC):
        return ""
    size = frame[len(FRAME_MAGIC)]
    body = frame[len(FRAME_MAGIC) + 1 : len(FRAME_MAGIC) + 1 + size]
    return body.decode("utf-8", errors="replace")


def _chunks(wav: bytes) -> list[tuple[bytes, bytes]]:
    """Split a RIFF/WAVE file into its (id, body) chunks."""
    if len(wav) < 12 or wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise AudioError("not a RIFF/WAVE file")
    chunks: list[tuple[bytes, bytes]] = []
    offset = 12
    while offset + 8 <= len(wav):
        chunk_id = wav[offset : offset + 4]
        (size,) = struct.unpack_from("<I", wav, offset + 4)
        body = wav[offset + 8 : offset + 8 + size]  # a short last chunk keeps what is there
        chunks.append((chunk_id, body))
        offset += 8 + size + (size & 1)
    return chunks


def embed_transcript(wav: bytes, text: str) -> bytes:
    """Return the WAV with `text` stored in a transcript chunk (replacing any earlier one)."""
    decode_wav(wav)  # refuse to decorate something that is not a readable WAV
    kept = [(cid, body) for cid, body in _chunks(wav) if cid != TRANSCRIPT_CHUNK_ID]
    kept.append((TRANSCRIPT_CHUNK_ID, text.encode("utf-8")))
    parts = [b"WAVE"]
    for chunk_id, body in kept:
        parts += [chunk_id, struct.pack("<I", len(body)), body, b"\0" * (len(body) & 1)]
    payload = b"".join(parts)
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


def read_embedded_transcript(wav: bytes) -> str | None:
    """The text stored by `embed_transcript`, or None when the WAV carries none."""
    for chunk_id, body in _chunks(wav):
        if chunk_id == TRANSCRIPT_CHUNK_ID:
            try:
                return body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise AudioError(f"the transcript chunk is not UTF-8 text: {exc}") from exc
    return None


class ScriptedRecognizer:
    """Returns the transcript embedded in the WAV by the simulator; stateless, so thread-safe."""

    name = "scripted"

    def transcribe(self, wav: bytes, *, phrases: Sequence[str] | None = None) -> Transcript:
        """The embedded text ("" when absent) and the audio's duration; `AudioError` if corrupt.

        A phrase list changes nothing: the embedded text is what was said.
        """
        samples, rate = decode_wav(wav)
        text = read_embedded_transcript(wav) or ""
        return Transcript(text=text, words=(), duration=len(samples) / rate)

    def open_stream(
        self, sample_rate: int = PHONE_RATE, *, phrases: Sequence[str] | None = None
    ) -> ScriptedStream:
        """A live stream that reads the words the simulator put in its frames."""
        return ScriptedStream(sample_rate)


class ScriptedStream:
    """One live answer: the words carried by `speech_frame`s, in the order they arrived."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._words: list[str] = []
        self._fed_bytes = 0
        self._finished = False

    def feed_pcm(self, pcm: bytes) -> None:
        """PCM carries no words; only counted for the duration."""
        self._check()
        self._fed_bytes += len(pcm) // 2

    def feed_mulaw(self, data: bytes) -> None:
        """Take the words of a scripted frame (other frames are only counted)."""
        self._check()
        self._fed_bytes += len(data)
        words = frame_words(data)
        if words:
            self._words.append(words)

    def partial(self) -> str:
        """The words so far."""
        return " ".join(self._words)

    def finish(self) -> Transcript:
        """The whole answer."""
        self._check()
        self._finished = True
        return Transcript(text=self.partial(), duration=self._fed_bytes / self.sample_rate)

    def _check(self) -> None:
        if self._finished:
            raise SpeechError("this recognition stream is finished; open a new one")
