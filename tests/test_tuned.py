"""The tuned encoder: fine-tuned layers and a head, stored as checked data, run with the app's numpy
encoder, and mixed into the learned judge."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from voice_app import tuned
from voice_app.config import load_settings
from voice_app.embedding import CachedEncoder, MiniLMEncoder, load_encoder
from voice_app.errors import EmbeddingModelNotFound, RulesError
from voice_app.interviewer import analyze
from voice_app.rules import QuestionRules, check_grammars, load_question

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("results", "values")
TEXTS = [
    "we cut the waiting list from nine months to six weeks",
    "i like working with people and i enjoy my job",
]


@pytest.fixture(scope="module")
def encoder() -> CachedEncoder:
    loaded = load_encoder(load_settings({"semantic": True}, environ={}))
    assert isinstance(loaded, CachedEncoder) and isinstance(loaded.inner, MiniLMEncoder)
    return loaded


@pytest.fixture(scope="module")
def base(encoder: CachedEncoder) -> MiniLMEncoder:
    inner = encoder.inner
    assert isinstance(inner, MiniLMEncoder)
    return inner


@pytest.fixture(scope="module")
def rules() -> QuestionRules:
    return load_question("accomplishment")


def _layer(base: MiniLMEncoder, number: int) -> dict[str, np.ndarray]:
    prefix = f"encoder.layer.{number}."
    return {k: v for k, v in base.weights.items() if k.startswith(prefix)}


def _head_file(
    path: Path, base: MiniLMEncoder, layers: dict[str, np.ndarray], **changes: object
) -> Path:
    weight = np.zeros((len(NAMES), 384), dtype=np.float32)
    weight[0, :3] = (1.0, -2.0, 0.5)
    weight[1, 10] = 3.0
    arguments: dict[str, object] = {
        "layers": layers,
        "weight": weight,
        "bias": np.array([0.25, -0.5], dtype=np.float32),
        "dimensions": NAMES,
        "scale": 10.0,
        "trained_on": "a test",
        "model_fingerprint": tuned.fingerprint(base),
    }
    arguments.update(changes)
    if "tuned_layers" in arguments:
        arguments["layers"] = arguments.pop("tuned_layers")
    tuned.save(path, **arguments)  # type: ignore[arg-type]
    return path


def test_unchanged_layers_give_the_published_vectors_read_by_the_head(
    encoder: CachedEncoder, base: MiniLMEncoder, tmp_path: Path
) -> None:
    head = tuned.load(_head_file(tmp_path / "t.safetensors", base, _layer(base, 5)), NAMES)
    assert head.fits(encoder) and head.dimensions == NAMES
    got = head.log_odds(encoder, TEXTS)
    vectors = base.encode(TEXTS).astype(np.float64) * 10.0
    expected = vectors @ head.weight.T.astype(np.float64) + head.bias
    # The layer went through float16: close, not equal.
    assert got.shape == (2, 2)
    assert np.abs(got - expected).max() < 0.05


def test_the_tuned_layers_replace_the_published_ones(
    encoder: CachedEncoder, base: MiniLMEncoder, tmp_path: Path
) -> None:
    changed = _layer(base, 5)
    key = "encoder.layer.5.output.LayerNorm.bias"
    changed[key] = changed[key] + np.linspace(-1, 1, 384, dtype=np.float32)
    same = tuned.load(_head_file(tmp_path / "a.safetensors", base, _layer(base, 5)), NAMES)
    other = tuned.load(_head_file(tmp_path / "b.safetensors", base, changed), NAMES)
    assert np.abs(same.log_odds(encoder, TEXTS) - other.log_odds(encoder, TEXTS)).max() > 0.1
    # The published model itself is untouched.
    assert np.allclose(base.encode(TEXTS[:1]), encoder.encode(TEXTS[:1]))


@pytest.mark.parametrize(
    ("changes", "key", "words"),
    [
        ({"dimensions": ("results", "charisma")}, "dimensions", "charisma"),
        ({"scale": 0.0}, "scale", "above 0"),
        ({"bias": np.zeros(3, dtype=np.float32)}, "head.bias", "one number per dimension"),
        ({"weight": np.zeros((2, 100), dtype=np.float32)}, "head.weight", "384"),
        ({"tuned_layers": {}}, "encoder.layer", "no tuned layer"),
    ],
)
def test_a_broken_tuned_file_is_refused_naming_file_and_key(
    encoder: CachedEncoder,
    base: MiniLMEncoder,
    tmp_path: Path,
    changes: dict[str, object],
    key: str,
    words: str,
) -> None:
    path = _head_file(tmp_path / "t.safetensors", base, _layer(base, 5), **changes)
    with pytest.raises(RulesError) as caught:
        tuned.load(path, NAMES)
    assert (caught.value.path, caught.value.key) == (str(path), key)
    assert words in caught.value.problem


def test_a_tuned_file_missing_a_weight_or_not_a_file_says_so(
    encoder: CachedEncoder, base: MiniLMEncoder, tmp_path: Path
) -> None:
    partial = _layer(base, 5)
    del partial["encoder.layer.5.intermediate.dense.weight"]
    path = _head_file(tmp_path / "t.safetensors", base, partial)
    with pytest.raises(
        RulesError, match=re.escape("encoder.layer.5.intermediate.dense.weight: is missing")
    ):
        tuned.load(path, NAMES)
    with pytest.raises(RulesError, match=re.escape("train_encoder.py")):
        tuned.load(tmp_path / "absent.safetensors", NAMES)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(RulesError, match="cannot be read"):
        tuned.load(garbage, NAMES)


def test_layers_tuned_from_another_model_are_refused_with_what_to_do(
    encoder: CachedEncoder, base: MiniLMEncoder, tmp_path: Path
) -> None:
    path = _head_file(tmp_path / "t.safetensors", base, _layer(base, 5), model_fingerprint=1.5)
    head = tuned.load(path, NAMES)
    with pytest.raises(EmbeddingModelNotFound, match="VOICE_APP_EMBEDDING_MODEL"):
        head.fits(encoder)


def test_an_answer_judged_with_layers_of_another_model_is_refused_not_judged_without_them(
    rules: QuestionRules, encoder: CachedEncoder, base: MiniLMEncoder, tmp_path: Path
) -> None:
    # The tuned pass runs beside the rest of the analysis: its refusal must still reach the caller.
    path = _head_file(tmp_path / "t.safetensors", base, _layer(base, 5), model_fingerprint=1.5)
    assert rules.learned is not None
    foreign = replace(rules, learned=replace(rules.learned, tuned=tuned.load(path, NAMES)))
    with pytest.raises(EmbeddingModelNotFound, match="VOICE_APP_EMBEDDING_MODEL"):
        analyze(foreign, ["i rebuilt the rota and overtime fell by a third"], encoder)


class _FlatEncoder:
    """A stand-in model: the same vector for every text."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.ones((len(texts), 384), dtype=np.float32) / np.sqrt(384)


def test_a_stand_in_encoder_is_judged_without_the_tuned_layers(rules: QuestionRules) -> None:
    assert rules.learned is not None and rules.learned.tuned is not None
    assert not rules.learned.tuned.fits(_FlatEncoder())
    text = "i stayed late every night for a month and the backlog was cleared"
    with_tuned = analyze(rules, [text], _FlatEncoder())
    without = analyze(
        replace(rules, learned=replace(rules.learned, tuned=None)), [text], _FlatEncoder()
    )
    assert with_tuned == without


def test_the_rules_file_names_its_tuned_file_and_a_bad_name_is_refused(tmp_path: Path) -> None:
    source = (ROOT / "grammars/questions/accomplishment.toml").read_text(encoding="utf-8")
    assert re.search(r'^tuned = "accomplishment\.tuned\.safetensors"$', source, re.M)
    grammars = tmp_path / "grammars"
    (grammars / "questions").mkdir(parents=True)
    model = (ROOT / "grammars/questions/accomplishment.model.json").read_bytes()
    (grammars / "questions/accomplishment.model.json").write_bytes(model)
    (grammars / "questions/accomplishment.toml").write_text(source, encoding="utf-8")
    problems = [str(p) for p in check_grammars(grammars)]
    assert any(
        "learned.tuned" in p and "accomplishment.tuned.safetensors" in p and "train_encoder" in p
        for p in problems
    ), problems
    renamed = source.replace(
        'tuned = "accomplishment.tuned.safetensors"', 'tuned = "accomplishment.model.json"'
    )
    (grammars / "questions/accomplishment.toml").write_text(renamed, encoding="utf-8")
    problems = [str(p) for p in check_grammars(grammars)]
    assert any("learned.tuned" in p and ".safetensors file" in p for p in problems), problems


def test_the_shipped_tuned_file_was_trained_on_the_corpus_as_it_is(
    rules: QuestionRules, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Retrain it (scripts/train_encoder.py) after editing the corpus, as the judge's model.
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import bench_rubric

    splits = bench_rubric.tuning_splits("accomplishment")
    answers = sum(len(bench_rubric.load_corpus("accomplishment", s)) for s in splits)
    assert rules.learned is not None and rules.learned.tuned is not None
    trained_on = rules.learned.tuned.trained_on
    assert trained_on.startswith(f"{answers} labelled answers by "), trained_on
    assert f"(tests/corpus/: {', '.join(splits)})" in trained_on


def test_the_shipped_tuned_encoder_makes_the_judge_surer_where_it_should_be(
    rules: QuestionRules, encoder: CachedEncoder
) -> None:
    assert rules.learned is not None and rules.learned.tuned is not None
    alone = replace(rules, learned=replace(rules.learned, tuned=None))

    def chance(judged: QuestionRules, text: str, name: str) -> float:
        probability = analyze(judged, [text], encoder).dimensions[name].probability
        assert probability is not None
        return probability

    # A measured result with no keyword for it: the judge alone credits it barely, tuned surely.
    closing = (
        "i was a junior in the accounts team and i rebuilt the month end checklist and after "
        "that the books closed on the third day instead of the tenth"
    )
    assert not analyze(rules, [closing]).dimensions["results"].present
    assert chance(rules, closing, "results") > chance(alone, closing, "results") + 0.1
    assert analyze(rules, [closing], encoder).dimensions["results"].present
    # Extra effort told in everyday words.
    extra = (
        "i stayed on after my shift for three weeks to get the new lab system working before "
        "the inspection even though it was not my job"
    )
    assert (
        chance(rules, extra, "above_and_beyond") > 0.75 > chance(alone, extra, "above_and_beyond")
    )
    # A task with no outcome stays no result.
    task = "i organised the stock room at the shop"
    assert chance(rules, task, "results") < 0.5
    assert not analyze(rules, [task], encoder).dimensions["results"].present
