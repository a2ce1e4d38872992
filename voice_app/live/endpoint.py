"""When a live answer ends: speech and silence measured frame by frame, in audio time.

Time is counted in audio received, not on the wall clock, so the decision is the same whether the
frames arrive in real time (a call) or faster (a test), and a stalled socket cannot end a turn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voice_app.audio import PHONE_RATE, Samples

# A frame is speech when its loudness (RMS of int16 samples) is above this floor and well above
# the line's own noise. Phone speech sits around 1000 to 6000; a quiet line below 100.
MIN_SPEECH_RMS = 400.0
NOISE_MARGIN = 3.0
# Speech counts as begun after this much of it, so a click or a cough does not start an answer.
SPEECH_START_MS = 120
# Silence this long after speech is a pause: a good moment to analyse what was said so far.
PAUSE_MS = 400

# Why a turn ended.
SILENCE = "silence"  # speech, then the silence window
NOTHING = "nothing"  # no speech at all within the waiting time
MAX_LENGTH = "max_length"  # the answer reached the longest allowed


def loudness(samples: Samples) -> float:
    """RMS of int16 samples."""
    if len(samples) == 0:
        return 0.0
    return float(np.sqrt(np.mean(np.square(samples.astype(np.float64)))))


@dataclass
class SpeechGate:
    """Tells speech frames from silence, following the line's noise floor."""

    noise: float = 50.0

    def is_speech(self, samples: Samples) -> bool:
        """True when this frame is louder than speech's floor and the line's noise."""
        level = loudness(samples)
        speech = level > max(MIN_SPEECH_RMS, self.noise * NOISE_MARGIN)
        if not speech:
            # The floor follows quiet frames slowly, so a noisy line raises the bar for speech.
            self.noise = 0.95 * self.noise + 0.05 * level
        return speech


@dataclass
class TurnClock:
    """Decides, frame by frame, whether the caller's turn is over, and why."""

    end_silence_ms: int
    no_speech_ms: int
    max_ms: int
    gate: SpeechGate
    heard_ms: int = 0  # all audio of the turn
    speech_ms: int = 0  # speech in the current run of speech
    silent_ms: int = 0  # silence since the last speech
    started: bool = False  # speech has begun

    @classmethod
    def create(cls, *, end_silence_ms: int, no_speech_ms: int, max_ms: int) -> TurnClock:
        """A clock for one turn, with a fresh noise floor."""
        return cls(end_silence_ms, no_speech_ms, max_ms, SpeechGate())

    def feed(self, samples: Samples) -> tuple[str | None, bool]:
        """Account for one frame; returns (why the turn ended or None, whether a pause began)."""
        frame_ms = max(1, round(len(samples) * 1000 / PHONE_RATE))
        self.heard_ms += frame_ms
        paused = False
        if self.gate.is_speech(samples):
            self.speech_ms += frame_ms
            if self.speech_ms >= SPEECH_START_MS:
                self.started = True
                self.silent_ms = 0
        else:
            self.speech_ms = 0
            before = self.silent_ms
            self.silent_ms += frame_ms
            paused = self.started and before < PAUSE_MS <= self.silent_ms
        if self.heard_ms >= self.max_ms:
            return MAX_LENGTH, paused
        if self.started and self.silent_ms >= self.end_silence_ms:
            return SILENCE, paused
        if not self.started and self.heard_ms >= self.no_speech_ms:
            return NOTHING, paused
        return None, paused
