"""What a simulated call is made of: the caller's steps, and the report of what was said."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from voice_app.errors import VoiceAppError
from voice_app.simulator.standin import SentText

# Kinds of caller steps.
ANSWER = "answer"  # say `text` (or play the WAV at `path`), then press #
SILENCE = "silence"  # say nothing until the recording times out
KEYS = "keys"  # press `text` on the keypad instead of answering (e.g. "*" to hear it again)
HANGUP = "hangup"  # hang up; with `text`, after saying it (mid-answer)


@dataclass(frozen=True)
class CallerStep:
    """One thing the simulated caller does when the line records an answer."""

    kind: str
    text: str = ""
    path: str = ""
    # Live mode: start this answer while the line is still speaking (talking over the prompt).
    interrupt: bool = False


@dataclass
class DialogEvent:
    """One line of the dialog as a listener on the call would report it."""

    speaker: str  # "line" or "caller"
    text: str
    kind: str = "speech"  # speech, keys, silence, hold, hangup
    dimension: str | None = None  # for a follow-up: the rubric dimension it probes
    at: float | None = None  # live mode: seconds into the stream (audio time) when it started


@dataclass
class CallReport:
    """What happened on a simulated call."""

    call_sid: str
    dialog: list[DialogEvent] = field(default_factory=list)
    texts: list[SentText] = field(default_factory=list)
    webhooks: int = 0
    recordings_made: int = 0
    recordings_kept: int = 0  # still stored at Twilio when the report was taken
    # Per answer: seconds from the end of the answer to the reply's first audio (live) or to
    # the TwiML carrying the reply (record mode).
    reply_latencies: list[float] = field(default_factory=list)
    clears: int = 0  # live mode: prompts the caller talked over (playback cleared)

    def as_json(self) -> dict[str, Any]:
        """The report as JSON-ready values."""
        return {
            "call_sid": self.call_sid,
            "turns": [asdict(event) for event in self.dialog],
            "texts": [{"to": t.to, "from": t.from_, "body": t.body} for t in self.texts],
            "webhooks": self.webhooks,
            "recordings_made": self.recordings_made,
            "recordings_kept": self.recordings_kept,
            "reply_latencies": [round(x, 4) for x in self.reply_latencies],
        }


class SimulationError(VoiceAppError):
    """The app answered in a way Twilio would not accept."""
