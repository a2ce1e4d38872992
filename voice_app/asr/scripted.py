"""The "perfect ASR" of the call simulator and load tests: it reads words, it recognises none.

The simulator knows what its scripted caller says, so it writes that text into the WAV it serves
as the recording, in an extra RIFF chunk that WAV readers skip. `ScriptedRecognizer` reads the
chunk back. This lets the whole app path run on a machine without a speech model, and says
nothing about how well real recognition works.
"""

from __future__ import annotations

import struct

from voice_app.asr import Transcript, decode_wav
from voice_app.errors import AudioError

TRANSCRIPT_CHUNK_ID = b"vaTx"


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

    def transcribe(self, wav: bytes) -> Transcript:
        """The embedded text ("" when absent) and the audio's duration; `AudioError` if corrupt."""
        samples, rate = decode_wav(wav)
        text = read_embedded_transcript(wav) or ""
        return Transcript(text=text, words=(), duration=len(samples) / rate)
