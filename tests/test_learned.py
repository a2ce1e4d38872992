"""The learned judge: fitted from labelled answers, stored as checked data, and what the
interviewer does with it (adds what keywords miss, keeps the vetoes, quotes the caller)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.test_embedding import CountingEncoder
from voice_app import learned
from voice_app.config import load_settings
from voice_app.embedding import Encoder, load_encoder
from voice_app.errors import RulesError
from voice_app.interviewer import analyze, learned_features, learned_words, pick_follow_up
from voice_app.rules import QuestionRules, check_grammars, load_question

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def rules() -> QuestionRules:
    return load_question("accomplishment")


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    loaded = load_encoder(load_settings({"semantic": True}, environ={}))
    assert loaded is not None
    return loaded


def _trained_on(
    rules: QuestionRules,
    encoder: Encoder,
    labelled: Sequence[tuple[str, set[str]]],
    name: str = "above_and_beyond",
) -> QuestionRules:
    rows = [learned_features(rules, [text], encoder) for text, _ in labelled]
    model = learned.fit(rows, [shows for _, shows in labelled], [name], ridge=0.1)
    return replace(rules, learned=model)


def _beyond_judge(rules: QuestionRules) -> tuple[QuestionRules, CountingEncoder]:
    """The rules with a judge of above_and_beyond fitted on the toy corpus below."""
    encoder = CountingEncoder()
    labelled = [(t, {"above_and_beyond"}) for t in BEYOND] + [(t, set()) for t in PLAIN]
    return _trained_on(rules, encoder, labelled), encoder


# Toy corpus for a stand-in encoder (bag of words): "weekend" marks going beyond.
BEYOND = [
    "i came in at the weekend to finish it",
    "we sorted the rota and i gave up my weekend for it",
    "the weekend was when i rewired the whole stockroom",
    "i spent a weekend writing the guide",
]
PLAIN = [
    "i sorted the rota for the ward",
    "the stockroom was rewired by the contractors",
    "i wrote the guide in work hours",
    "the team finished it on time",
]


def test_a_judge_fitted_on_labelled_answers_hears_the_pattern_they_share(
    rules: QuestionRules,
) -> None:
    judged, encoder = _beyond_judge(rules)
    answer = "my manager never asked but i did the audit over a weekend"
    assert not analyze(rules, [answer]).dimensions["above_and_beyond"].present  # no keyword
    found = analyze(judged, [answer], encoder).dimensions["above_and_beyond"]
    assert found.present
    assert found.probability is not None and found.probability >= 0.5
    assert found.evidence and "weekend" in found.evidence[0]  # quotes the caller's words
    other = analyze(judged, ["i fixed the printer for the office"], encoder)
    assert not other.dimensions["above_and_beyond"].present


def test_keywords_still_count_beside_the_model(rules: QuestionRules) -> None:
    judged, encoder = _beyond_judge(rules)
    answer = "nobody asked me to but i stayed late every night to rebuild the rota"
    assert analyze(rules, [answer]).dimensions["above_and_beyond"].present
    assert analyze(judged, [answer], encoder).dimensions["above_and_beyond"].present


def test_a_veto_overrules_a_keyword_hit_the_model_does_not_believe(rules: QuestionRules) -> None:
    judged, encoder = _beyond_judge(rules)
    assert judged.learned is not None
    answer = "the team stayed late in work hours"  # a keyword of above_and_beyond, no "weekend"
    found = analyze(judged, [answer], encoder).dimensions["above_and_beyond"]
    assert found.present and found.probability is not None and found.probability < 0.5
    beyond = replace(judged.learned.dimensions["above_and_beyond"], veto=0.5)
    vetoing = replace(judged.learned, dimensions={"above_and_beyond": beyond})
    overruled = analyze(replace(rules, learned=vetoing), [answer], encoder)
    assert not overruled.dimensions["above_and_beyond"].present
    assert overruled.dimensions["above_and_beyond"].hinted  # asked about after the surely missing
    weekend = "i stayed late and came in at the weekend"
    kept = analyze(replace(rules, learned=vetoing), [weekend], encoder)
    assert kept.dimensions["above_and_beyond"].present


def test_a_hint_only_dimension_is_hinted_by_the_model_but_never_shown(
    rules: QuestionRules,
) -> None:
    encoder = CountingEncoder()
    labelled = [(t, {"contribution"}) for t in ("we rebuilt the rota", "we fixed the rota")] + [
        (t, set()) for t in ("the weather was bad", "it was a long year")
    ]
    rows = [learned_features(rules, [text], encoder) for text, _ in labelled]
    labels = [shows for _, shows in labelled]
    we = "we rebuilt the rota"
    trusted = learned.fit(rows, labels, ["contribution"], ridge=0.01)
    assert (
        analyze(replace(rules, learned=trusted), [we], encoder).dimensions["contribution"].present
    )
    hinting = learned.fit(rows, labels, ["contribution"], ridge=0.01, hint_only=["contribution"])
    found = analyze(replace(rules, learned=hinting), [we], encoder).dimensions["contribution"]
    assert found.probability is not None and found.probability >= hinting.threshold
    assert not found.present
    assert found.hinted


def test_a_negated_window_is_left_out_of_what_the_model_reads(rules: QuestionRules) -> None:
    encoder = CountingEncoder()
    labelled = [(t, {"results"}) for t in ("sales doubled", "the numbers went up")] + [
        (t, set()) for t in ("i wrote the plan", "the team met")
    ]
    judged = _trained_on(rules, encoder, labelled, "results")
    assert analyze(judged, ["the numbers went up"], encoder).dimensions["results"].present
    # The only window holds a result keyword that a negation cancels: nothing is left to read.
    negated = learned_features(rules, ["the numbers never went up"], encoder)
    assert negated["results"] is None
    assert not analyze(judged, ["the numbers never went up"], encoder).dimensions["results"].present


def test_a_probability_between_hint_and_threshold_orders_the_follow_up(
    rules: QuestionRules,
) -> None:
    judged, encoder = _beyond_judge(rules)
    answer = "i did the audit over a weekend"
    assert judged.learned is not None
    p = analyze(judged, [answer], encoder).dimensions["above_and_beyond"].probability
    assert p is not None and p > 0.5
    # Raise the bar above that probability, keep the hint below it: not shown, but hinted.
    bar = replace(judged.learned, threshold=min(0.99, p + 0.01), hint=p - 0.01)
    hinted = replace(judged, learned=bar)
    analysis = analyze(hinted, [answer], encoder)
    assert not analysis.dimensions["above_and_beyond"].present
    assert analysis.dimensions["above_and_beyond"].hinted
    follow_up = pick_follow_up(hinted, analysis, set(), random.Random(0))
    assert follow_up is not None and follow_up.dimension != "above_and_beyond"


def test_a_dimension_s_own_threshold_outranks_the_model_s(rules: QuestionRules) -> None:
    judged, encoder = _beyond_judge(rules)
    answer = "i did the audit over a weekend"
    assert judged.learned is not None
    p = analyze(judged, [answer], encoder).dimensions["above_and_beyond"].probability
    assert p is not None and judged.learned.threshold <= p < 0.99
    assert analyze(judged, [answer], encoder).dimensions["above_and_beyond"].present
    # The model's threshold is met, the dimension's own (higher) one is not: hinted, not shown.
    own = replace(judged.learned.dimensions["above_and_beyond"], threshold=p + 0.01)
    stricter = replace(judged.learned, dimensions={"above_and_beyond": own})
    found = analyze(replace(rules, learned=stricter), [answer], encoder).dimensions[
        "above_and_beyond"
    ]
    assert not found.present
    assert found.hinted


def test_a_dimension_s_own_hint_puts_a_weak_sign_after_the_surely_missing(
    rules: QuestionRules,
) -> None:
    judged, encoder = _beyond_judge(rules)
    answer = "i sorted the rota for the ward"  # no "weekend": a low probability
    assert judged.learned is not None
    plain = analyze(judged, [answer], encoder).dimensions["above_and_beyond"]
    p = plain.probability
    assert p is not None and p < judged.learned.hint
    assert not plain.present and not plain.hinted
    # The dimension's own lower hint makes the same weak sign a hint (asked about after the
    # surely missing ones; the follow-up order is tested above).
    own = replace(judged.learned.dimensions["above_and_beyond"], hint=p / 2)
    lowered = replace(rules, learned=replace(judged.learned, dimensions={"above_and_beyond": own}))
    analysis = analyze(lowered, [answer], encoder)
    assert not analysis.dimensions["above_and_beyond"].present
    assert analysis.dimensions["above_and_beyond"].hinted


def test_a_saved_model_loads_to_the_same_judgement(tmp_path: Path, rules: QuestionRules) -> None:
    judged, encoder = _beyond_judge(rules)
    assert judged.learned is not None
    own = replace(judged.learned.dimensions["above_and_beyond"], threshold=0.8, hint=0.1)
    judged = replace(judged, learned=replace(judged.learned, dimensions={"above_and_beyond": own}))
    assert judged.learned is not None
    path = tmp_path / "model.json"
    learned.dump_model(judged.learned, path)
    again = learned.load_model(path, rules.probe_order)
    assert again.threshold_of("above_and_beyond") == 0.8
    assert again.hint_of("above_and_beyond") == 0.1
    for text in [*BEYOND, *PLAIN]:
        first = analyze(judged, [text], encoder).dimensions["above_and_beyond"]
        second = analyze(replace(rules, learned=again), [text], encoder).dimensions[
            "above_and_beyond"
        ]
        assert first.present == second.present
        assert first.probability == pytest.approx(second.probability, abs=1e-4)


class FlatEncoder:
    """A stand-in model that hears nothing: the same vector for every text."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.ones((len(texts), 4), dtype=np.float32) / 2


def _word_judge(rules: QuestionRules) -> QuestionRules:
    """The rules with a judge of above_and_beyond fitted on the toy corpus, whose sentence
    vectors carry nothing: all it knows is in its word model."""
    corpus = [(t, {"above_and_beyond"}) for t in BEYOND] + [(t, set()) for t in PLAIN]
    encoder = FlatEncoder()
    model = learned.fit(
        [learned_features(rules, [text], encoder) for text, _ in corpus],
        [shows for _, shows in corpus],
        ["above_and_beyond"],
        found=[learned_words([text]) for text, _ in corpus],
    )
    return replace(rules, learned=model)


def test_the_word_model_hears_a_word_the_sentence_vectors_do_not(
    rules: QuestionRules, tmp_path: Path
) -> None:
    judged = _word_judge(rules)
    assert judged.learned is not None and "weekend" in judged.learned.vocabulary

    def chance(model: learned.LearnedModel, text: str) -> float:
        found = analyze(replace(rules, learned=model), [text], FlatEncoder())
        probability = found.dimensions["above_and_beyond"].probability
        assert probability is not None
        return probability

    weekend, plain = "i redid the audit over a weekend", "i redid the audit for the office"
    assert chance(judged.learned, weekend) > 0.5 > chance(judged.learned, plain)
    # Without its word model the same judge cannot tell them apart.
    deaf = replace(
        judged.learned,
        dimensions={name: replace(d, words=None) for name, d in judged.learned.dimensions.items()},
    )
    assert chance(deaf, weekend) == pytest.approx(chance(deaf, plain))
    # Saved and loaded, it hears the same.
    path = tmp_path / "model.json"
    learned.dump_model(judged.learned, path)
    again = learned.load_model(path, rules.probe_order)
    assert again.vocabulary == judged.learned.vocabulary
    assert chance(again, weekend) == pytest.approx(chance(judged.learned, weekend), abs=1e-4)


def test_a_veto_overrules_one_doubted_keyword_but_not_keywords_heard_in_three_places(
    rules: QuestionRules,
) -> None:
    # A judge that doubts every context keyword (veto 1.0): one loose cue is overruled and only
    # hinted; the background told three times over is not.
    corpus = [(t, {"context"}) for t in BEYOND] + [(t, set()) for t in PLAIN]
    model = learned.fit(
        [learned_features(rules, [text], FlatEncoder()) for text, _ in corpus],
        [shows for _, shows in corpus],
        ["context"],
        vetoes={"context": 1.0},
    )
    judged = replace(rules, learned=model)
    once = "the problem was staff turnover at the store"
    thrice = (
        "when i joined the store as a manager the problem was staff turnover was fifty percent "
        "and turnover dropped to fifteen percent"
    )
    for text, quotes in ((once, 1), (thrice, 3)):
        assert len(analyze(rules, [text]).dimensions["context"].evidence) == quotes
    overruled = analyze(judged, [once], FlatEncoder()).dimensions["context"]
    assert not overruled.present and overruled.hinted
    assert analyze(judged, [thrice], FlatEncoder()).dimensions["context"].present


def test_the_word_model_reads_words_and_word_pairs_commonest_first() -> None:
    found = learned.grams([["we", "cut", "costs"], ["i", "cut", "it"]])
    assert {"cut", "cut costs", "we cut", "i cut", "cut it"} <= found
    assert "costs i" not in found  # a pair never spans two answers
    common = learned.vocabulary([{"b", "a"}, {"b", "c"}, {"b", "a"}], size=2)
    assert common == ("b", "a")


def _values(**changes: object) -> dict[str, object]:
    """One dimension's weights in a model file of vectors of length 3, with `changes`."""
    return {"bias": 0, "mean": [0] * 3, "max": [0] * 3, "whole": [0] * 3, **changes}


def _model_file(tmp_path: Path, **changes: object) -> Path:
    data = {
        "format": 3,
        "size": 3,
        "threshold": 0.5,
        "hint": 0.3,
        "vocabulary": [],
        "dimensions": {"values": _values(bias=0.1, mean=[0, 1, 2])},
    }
    data.update(changes)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("changes", "key", "words"),
    [
        ({"format": 9}, "format", "retrain"),
        ({"hint": 0.7}, "hint", "above threshold"),
        ({"threshold": 1.5}, "threshold", "between 0 and 1"),
        (
            {"dimensions": {"values": _values(hint_only=1)}},
            "dimensions.values.hint_only",
            "true or false",
        ),
        (
            {"dimensions": {"values": _values(veto=0.6)}},
            "dimensions.values.veto",
            "up to threshold",
        ),
        (
            {"dimensions": {"values": _values(threshold=1)}},
            "dimensions.values.threshold",
            "from hint",
        ),
        ({"dimensions": {"values": _values(hint=0)}}, "dimensions.values.hint", "above 0"),
        (
            {"dimensions": {"values": _values(threshold=0.4, veto=0.45)}},
            "dimensions.values.veto",
            "up to threshold (0.4)",
        ),
        ({"dimensions": {"charisma": _values()}}, "dimensions.charisma", "not a dimension"),
        (
            {"dimensions": {"values": _values(mean=[0, 0])}},
            "dimensions.values.mean",
            "list of 3 numbers",
        ),
        # A model made before the whole-answer vector: retrain it.
        (
            {"format": 1, "dimensions": {"values": {"bias": 0, "mean": [0] * 3, "max": [0] * 3}}},
            "format",
            "retrain",
        ),
        (
            {"dimensions": {"values": {"bias": 0, "mean": [0] * 3, "max": [0] * 3}}},
            "dimensions.values.whole",
            "list of 3 numbers",
        ),
        # A model made before the word model (format 2): retrain it.
        ({"format": 2}, "format", "retrain"),
        ({"vocabulary": "weekend"}, "vocabulary", "list of words"),
        (
            {"vocabulary": ["weekend", "my own"], "dimensions": {"values": _values(words=[1])}},
            "dimensions.values.words",
            "list of 2 numbers",
        ),
        (
            {"vocabulary": ["weekend"], "dimensions": {"values": _values(words=[1])}},
            "dimensions.values.words_bias",
            "a number",
        ),
        (
            {"dimensions": {"values": _values(words=[1], words_bias=0)}},
            "dimensions.values.words",
            "no vocabulary",
        ),
    ],
)
def test_a_broken_model_file_is_refused_naming_file_and_key(
    tmp_path: Path, changes: dict[str, object], key: str, words: str
) -> None:
    path = _model_file(tmp_path, **changes)
    with pytest.raises(RulesError) as caught:
        learned.load_model(path, ("values", "results"))
    assert caught.value.path == str(path)
    assert caught.value.key == key
    assert words in caught.value.problem


def test_check_grammars_names_a_missing_model_and_how_to_make_it(tmp_path: Path) -> None:
    grammars = tmp_path / "grammars"
    (grammars / "questions").mkdir(parents=True)
    source = (ROOT / "grammars/questions/accomplishment.toml").read_text(encoding="utf-8")
    (grammars / "questions/accomplishment.toml").write_text(source, encoding="utf-8")
    problems = [str(p) for p in check_grammars(grammars)]
    assert any(
        "learned.model" in p and "accomplishment.model.json" in p and "train_rubric" in p
        for p in problems
    ), problems
    escaping = source.replace('model = "accomplishment.model.json"', 'model = "../x.json"')
    (grammars / "questions/accomplishment.toml").write_text(escaping, encoding="utf-8")
    problems = [str(p) for p in check_grammars(grammars)]
    assert any("learned.model" in p and "beside the rules file" in p for p in problems), problems


def test_the_shipped_judge_hears_what_no_keyword_lists(
    rules: QuestionRules, encoder: Encoder
) -> None:
    # Said in everyday words the keyword rules do not cover: the trained model still hears them.
    assert rules.learned is not None
    assert not [n for n, d in rules.learned.dimensions.items() if d.hint_only]
    assert {n: d.veto for n, d in rules.learned.dimensions.items() if d.veto} == {
        "results": 0.25,
        "contribution": 0.4,
        "values": 0.1,
        "context": 0.5,
        "reflection": 0.4,
        "company_goals": 0.1,
        "helping_others": 0.2,
    }
    assert {n: rules.learned.threshold_of(n) for n in rules.learned.dimensions} == {
        **{n: rules.learned.threshold for n in rules.learned.dimensions},
        "results": 0.65,
        "values": 0.65,
        "context": 0.55,
        "reflection": 0.8,
        "helping_others": 0.55,
        "above_and_beyond": 0.6,
    }
    assert {n: rules.learned.hint_of(n) for n in rules.learned.dimensions} == {
        **{n: rules.learned.hint for n in rules.learned.dimensions},
        "results": 0.1,
        "contribution": 0.3,
    }
    for name, answer in (
        (
            "above_and_beyond",
            "none of that was in my job description i just kept turning up on sundays to get it "
            "finished and i never claimed the hours",
        ),
        (
            # No "i" with an action verb for the keywords, yet plainly the speaker's own work.
            "contribution",
            "the new rota was all my own work start to finish drew it up on the kitchen table "
            "over a weekend and took it to the manager on monday",
        ),
    ):
        assert not analyze(rules, [answer]).dimensions[name].present, name
        assert analyze(rules, [answer], encoder).dimensions[name].present, name
    # Shown by the judge too since it tells "I" from "we": a team's story is still no one's own.
    team = (
        "we were a team of six and we rebuilt the whole booking system together over the summer "
        "and the team did a great job and everybody pulled their weight"
    )
    assert not analyze(rules, [team], encoder).dimensions["contribution"].present


def test_the_model_file_is_what_training_on_the_corpus_gives() -> None:
    # Retrain after editing the corpus or the rules; training is deterministic.
    done = subprocess.run(
        [sys.executable, "scripts/train_rubric.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
