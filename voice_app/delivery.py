"""How an answer was delivered, from the recogniser's word timings: talk time, pace, pauses,
filler words.

Pure functions over word timings, as `voice_app.asr.Word` objects or as the store keeps them
(`[[word, start, end, confidence], ...]` per turn). Times are seconds from the start of each
turn's audio, so turns are measured one by one and then added up (`measure_turns`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from voice_app.asr import Word

# Words a minute that listeners find comfortable in an interview answer.
COMFORTABLE_PACE = (130, 160)
# A silence this long between two words reads as a stall rather than a breath.
LONG_PAUSE_SECONDS = 2.0
# Below this much speech a pace figure says more about the silence than the speaker.
MIN_SECONDS_FOR_PACE = 15.0
# Hesitation sounds and phrases, counted (not judged) as filler words.
HESITATIONS = frozenset({"um", "umm", "uh", "uhh", "uhm", "er", "erm", "ah", "hmm", "mm"})
HESITATION_PHRASES = frozenset({("you", "know"), ("i", "mean")})
# Fillers a minute above which they are worth mentioning.
MANY_FILLERS_PER_MINUTE = 6.0
# Long pauses in one conversation above which they are worth mentioning.
MANY_LONG_PAUSES = 3

WordLike = Word | Sequence[Any]


@dataclass(frozen=True)
class Delivery:
    """Delivery figures of one or more answers; `pace` is "slow", "comfortable", "fast" or None."""

    talk_seconds: float
    words: int
    words_per_minute: float | None
    long_pauses: int
    longest_pause: float
    fillers: int
    filler_words: dict[str, int] = field(default_factory=dict)

    @property
    def pace(self) -> str | None:
        """How the pace compares with the comfortable range; None when too little was said."""
        if self.words_per_minute is None:
            return None
        low, high = COMFORTABLE_PACE
        if self.words_per_minute < low:
            return "slow"
        if self.words_per_minute > high:
            return "fast"
        return "comfortable"

    @property
    def fillers_per_minute(self) -> float:
        """Filler words per minute of talk."""
        return self.fillers / (self.talk_seconds / 60) if self.talk_seconds > 0 else 0.0

    def advice_keys(self) -> list[str]:
        """Delivery problems worth a line of advice, most useful first (keys of the texts)."""
        keys: list[str] = []
        if self.pace == "fast":
            keys.append("too_fast")
        if self.fillers >= 3 and self.fillers_per_minute > MANY_FILLERS_PER_MINUTE:
            keys.append("many_fillers")
        if self.long_pauses >= MANY_LONG_PAUSES:
            keys.append("long_pauses")
        if self.pace == "slow":
            keys.append("too_slow")
        return keys

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the stored feedback."""
        low, high = COMFORTABLE_PACE
        return {
            "talk_seconds": round(self.talk_seconds, 1),
            "words": self.words,
            "words_per_minute": (
                None if self.words_per_minute is None else round(self.words_per_minute)
            ),
            "comfortable_pace": [low, high],
            "pace": self.pace,
            "long_pauses": self.long_pauses,
            "longest_pause_seconds": round(self.longest_pause, 1),
            "fillers": self.fillers,
            "filler_words": dict(self.filler_words),
        }


def _timing(word: WordLike) -> tuple[str, float, float]:
    if isinstance(word, Word):
        return word.word, float(word.start), float(word.end)
    return str(word[0]), float(word[1]), float(word[2])


def measure_delivery(words: Iterable[WordLike]) -> Delivery:
    """Delivery figures of one answer from its word timings (Word objects or stored lists)."""
    timed = sorted((_timing(w) for w in words), key=lambda t: t[1])
    if not timed:
        return Delivery(0.0, 0, None, 0, 0.0, 0)
    talk = max(0.0, max(end for _, _, end in timed) - timed[0][1])
    gaps = [
        max(0.0, start - previous_end) for (_, _, previous_end), (_, start, _) in pairwise(timed)
    ]
    long_gaps = [gap for gap in gaps if gap >= LONG_PAUSE_SECONDS]
    fillers = _count_fillers([w.lower() for w, _, _ in timed])
    spoken = len(timed) - sum(n * len(f.split()) for f, n in fillers.items())
    return Delivery(
        talk_seconds=talk,
        words=spoken,
        words_per_minute=spoken / (talk / 60) if talk >= MIN_SECONDS_FOR_PACE else None,
        long_pauses=len(long_gaps),
        longest_pause=max(gaps, default=0.0),
        fillers=sum(fillers.values()),
        filler_words=dict(fillers),
    )


def measure_turns(turns: Iterable[Iterable[WordLike] | None]) -> Delivery | None:
    """Delivery over several answers (each timed from 0); None when no turn has timings."""
    parts = [measure_delivery(turn) for turn in turns if turn]
    parts = [part for part in parts if part.words or part.fillers]
    if not parts:
        return None
    talk = sum(p.talk_seconds for p in parts)
    words = sum(p.words for p in parts)
    fillers: Counter[str] = Counter()
    for part in parts:
        fillers.update(part.filler_words)
    return Delivery(
        talk_seconds=talk,
        words=words,
        words_per_minute=words / (talk / 60) if talk >= MIN_SECONDS_FOR_PACE else None,
        long_pauses=sum(p.long_pauses for p in parts),
        longest_pause=max(p.longest_pause for p in parts),
        fillers=sum(fillers.values()),
        filler_words=dict(fillers),
    )


def _count_fillers(words: Sequence[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    i = 0
    while i < len(words):
        pair = (words[i], words[i + 1]) if i + 1 < len(words) else None
        if pair in HESITATION_PHRASES:
            counts[" ".join(pair)] += 1
            i += 2
            continue
        if words[i] in HESITATIONS:
            counts[words[i]] += 1
        i += 1
    return counts
