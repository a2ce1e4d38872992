"""The body of a feedback text: GSM-7 only, within the length limit, ending with how to opt out.

One character outside GSM-7 turns a whole text into UCS-2 (70 characters a segment instead of
160), so every such character is replaced; length is counted the way carriers count it.
"""

from __future__ import annotations

from voice_app.interviewer import GSM7_BASIC, gsm7_safe

OPT_OUT = "Reply STOP to opt out."
# Characters of GSM-7's extension table take two septets each.
_EXTENDED = frozenset("^{}\\[~]|€\f")
_SINGLE_GSM, _MULTI_GSM = 160, 153
_SINGLE_UCS2, _MULTI_UCS2 = 70, 67


def is_gsm7_encodable(text: str) -> bool:
    """True when a carrier can send the text in GSM-7 (basic or extension characters)."""
    return all(c in GSM7_BASIC or c in _EXTENDED for c in text)


def septets(text: str) -> int:
    """Length of a GSM-7 text in septets (extension characters count twice)."""
    return sum(2 if c in _EXTENDED else 1 for c in text)


def segments(text: str) -> int:
    """How many SMS segments a text takes, in GSM-7 or, when it needs it, UCS-2."""
    if is_gsm7_encodable(text):
        length, single, multi = septets(text), _SINGLE_GSM, _MULTI_GSM
    else:
        length, single, multi = len(text.encode("utf-16-le")) // 2, _SINGLE_UCS2, _MULTI_UCS2
    if length <= single:
        return 1
    return -(-length // multi)


def advice_room(limit: int = 320) -> int:
    """How many characters the feedback itself may use in a text of `limit` characters."""
    return limit - septets(OPT_OUT) - 1


def compose_feedback_text(advice: str, limit: int = 320) -> str:
    """The text to send: the advice in GSM-7, then the opt-out line.

    Feedback written for `advice_room(limit)` fits whole; anything longer is cut at a word, as a
    last resort. `gsm7_safe` keeps to GSM-7's basic table, so every character is one septet.
    """
    advice = " ".join(gsm7_safe(advice).split())
    room = advice_room(limit)
    if septets(advice) > room:
        cut = advice[: max(0, room - 3)]
        cut = cut.rsplit(" ", 1)[0] if " " in cut else cut
        advice = cut.rstrip(" ,;:-") + "..."
    return f"{advice} {OPT_OUT}" if advice else OPT_OUT
