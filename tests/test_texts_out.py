"""The feedback text: GSM-7 only, within the limit, with the opt-out line; segments counted."""

from __future__ import annotations

import pytest

from voice_app.interviewer import is_gsm7
from voice_app.texts_out import OPT_OUT, compose_feedback_text, segments, septets


def test_the_text_ends_with_how_to_opt_out() -> None:
    assert compose_feedback_text("Strong results.").endswith(OPT_OUT)


@pytest.mark.parametrize(
    "advice",
    [
        "Café “quoted” — résumé naïve ½ 🙂 " * 20,
        "word " * 200,
        "x" * 1000,
        "",
        "{braces} [brackets] ~tilde~ ^caret^ | € " * 10,
    ],
)
def test_any_advice_becomes_one_gsm7_text_within_the_limit(advice: str) -> None:
    body = compose_feedback_text(advice, limit=320)

    assert is_gsm7(body)
    assert septets(body) <= 320
    assert segments(body) <= 3
    assert body.endswith(OPT_OUT)


def test_a_long_advice_is_cut_at_a_word_with_an_ellipsis() -> None:
    body = compose_feedback_text("alpha beta gamma delta " * 30, limit=100)

    advice = body.removesuffix(" " + OPT_OUT)
    assert advice.endswith("...")
    assert advice[:-3].split()[-1] in {"alpha", "beta", "gamma", "delta"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters take two septets each
        ("€" * 81, 2),
        ("é" * 160, 1),  # é is in GSM-7's basic table
        ("ó" * 70, 1),  # ó is not: the whole text becomes UCS-2
        ("ó" * 71, 2),
    ],
)
def test_segments_are_counted_as_carriers_count_them(text: str, expected: int) -> None:
    assert segments(text) == expected
