"""Short spoken replies are matched to their phrase list: yes, no, or neither."""

from __future__ import annotations

from pathlib import Path

import pytest

from voice_app.config import SHIPPED_GRAMMARS_DIR
from voice_app.errors import RulesError
from voice_app.replies import UNKNOWN, classify, grammar, load_phrases


@pytest.fixture
def yes_no() -> dict[str, tuple[str, ...]]:
    return load_phrases(SHIPPED_GRAMMARS_DIR, ("yes", "no"))


@pytest.mark.parametrize(
    ("heard", "expected"),
    [
        ("yes", "yes"),
        ("yes please", "yes"),
        ("[unk] yeah", "yes"),
        ("no thanks", "no"),
        ("nope", "no"),
        ("[unk]", None),
        ("", None),
        ("yes no", None),  # both: not a clear answer
        ("yesterday", None),  # whole words only
    ],
)
def test_a_reply_is_classified_by_its_phrase_list(
    yes_no: dict[str, tuple[str, ...]], heard: str, expected: str | None
) -> None:
    assert classify(heard, yes_no) == expected


def test_the_grammar_lets_other_words_through_as_unknown(
    yes_no: dict[str, tuple[str, ...]],
) -> None:
    phrases = grammar(yes_no)
    assert phrases[-1] == UNKNOWN
    assert "yes please" in phrases and "no thanks" in phrases
    assert len(phrases) == len(set(phrases))


def test_a_broken_phrase_list_names_its_file(tmp_path: Path) -> None:
    (tmp_path / "phrases").mkdir()
    (tmp_path / "phrases" / "yes.json").write_text('{"yes": 1}')

    with pytest.raises(RulesError, match=r"yes\.json"):
        load_phrases(tmp_path, ("yes",))
