"""What live mode plays: the cached prompts as 20 ms mu-law frames, and the answer tone."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from voice_app.audio import PHONE_RATE, mulaw_encode
from voice_app.tts import MULAW_SILENCE, PromptCache, mulaw_frames

log = logging.getLogger(__name__)

FRAME_BYTES = PHONE_RATE // 50  # 20 ms


class PromptAudio(Protocol):
    """Frames for a prompt's text."""

    def key(self, text: str) -> str:
        """The prompt's name in the cache (its caption is served at /prompts/KEY.txt)."""
        ...

    def frames(self, text: str) -> list[bytes]:
        """The prompt as 20 ms mu-law frames."""
        ...


class CachedPromptAudio:
    """Prompts from the rendered cache, kept in memory as frames after their first use.

    A prompt missing from the cache is rendered on the spot (slow: the caller hears a gap), and
    logged, since every prompt is rendered ahead of time at start-up.
    """

    def __init__(self, prompts: PromptCache, keep: int = 512) -> None:
        self.prompts = prompts
        self.keep = keep
        self._frames: dict[str, list[bytes]] = {}
        self._lock = threading.Lock()

    def key(self, text: str) -> str:
        """The prompt's cache key."""
        return self.prompts.key(text)

    def frames(self, text: str) -> list[bytes]:
        """The prompt as frames; renders it first when it is not cached yet."""
        with self._lock:
            found = self._frames.get(text)
        if found is not None:
            return found
        path: Path | None = self.prompts.lookup(text)
        if path is None:
            log.warning("live prompt not rendered ahead of time, rendering now: %.40r", text)
            path = self.prompts.render(text)
        frames = mulaw_frames(path)
        with self._lock:
            if len(self._frames) >= self.keep:
                self._frames.pop(next(iter(self._frames)))
            self._frames[text] = frames
        return frames


def tone_frames(hz: float = 1000.0, ms: int = 240, level: int = 6000) -> list[bytes]:
    """The tone that tells the caller to start answering, then a little silence."""
    t = np.arange(PHONE_RATE * ms // 1000) / PHONE_RATE
    samples = (level * np.sin(2 * np.pi * hz * t)).astype(np.int16)
    encoded = mulaw_encode(samples) + bytes([MULAW_SILENCE]) * (FRAME_BYTES * 3)
    usable = len(encoded) - len(encoded) % FRAME_BYTES
    return [encoded[i : i + FRAME_BYTES] for i in range(0, usable, FRAME_BYTES)]
