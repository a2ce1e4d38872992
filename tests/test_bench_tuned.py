"""The tuned-encoder benchmark: its replay of the interviewer's decision, its choice of settings."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from voice_app.interviewer import _UNVETOED, DimensionResult
from voice_app.rules import load_question

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location("bench_tuned", ROOT / "scripts/bench_tuned.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_tuned", module)
    spec.loader.exec_module(module)
    return module


def _case(
    bench: ModuleType, shows: set[str], p: float, keyword: int = 0, name: str = "results"
) -> object:
    """An answer whose only judged dimension is `name`, at probability p, with `keyword` hits."""
    rules = load_question("accomplishment", with_model=False)
    keywords = {n: DimensionResult(False, ()) for n in rules.probe_order}
    if keyword:
        keywords[name] = DimensionResult(True, tuple(f"quote {i}" for i in range(keyword)))
    probability = {n: (p if n == name else None) for n in rules.probe_order}
    item = bench.Labelled("id", "text", frozenset(shows), "")
    return bench.Case(item, keywords, None, probability)


def test_the_threshold_chosen_is_the_first_that_separates_best(bench: ModuleType) -> None:
    rules = load_question("accomplishment", with_model=False)
    cases = [_case(bench, {"results"}, 0.9) for _ in range(5)]
    cases += [_case(bench, set(), 0.72) for _ in range(5)]
    chosen = bench.choose(rules, cases)
    # 0.75 and above up to 0.9 separate them all; the first of the grid that does is kept.
    assert chosen.thresholds["results"] == 0.75
    assert bench.score(rules, cases, chosen).scores["results"].f1 == 1.0
    # The shipped threshold (0.65) credits the five at 0.72 as well.
    assert bench.score(rules, cases, bench.SHIPPED).scores["results"].f1 == pytest.approx(2 / 3)


def test_a_veto_takes_a_keyword_hit_away_unless_heard_in_enough_places(bench: ModuleType) -> None:
    rules = load_question("accomplishment", with_model=False)
    names = rules.probe_order
    settings = bench.Settings({"results": 0.25}, {}, {})
    doubted = bench.decide(_case(bench, set(), 0.1, keyword=1), names, settings)["results"]
    assert not doubted.present and doubted.hinted
    often = bench.decide(_case(bench, set(), 0.1, keyword=_UNVETOED), names, settings)["results"]
    assert often.present
    believed = bench.decide(_case(bench, set(), 0.3, keyword=1), names, settings)["results"]
    assert believed.present
    # Chosen on answers whose lone keyword hits are wrong when the judge doubts them.
    cases = [_case(bench, set(), 0.07, keyword=1) for _ in range(5)]
    cases += [_case(bench, {"results"}, 0.5, keyword=1) for _ in range(5)]
    assert bench.choose(rules, cases).vetoes["results"] == 0.1


def test_the_judge_shows_a_dimension_alone_only_where_that_is_chosen(bench: ModuleType) -> None:
    rules = load_question("accomplishment", with_model=False)
    # Sure and right without a keyword: the judge is given a threshold and shows them.
    heard = [_case(bench, {"contribution"}, 0.95, name="contribution") for _ in range(3)]
    chosen = bench.choose(rules, heard)
    assert "contribution" not in chosen.hint_only and "contribution" in chosen.thresholds
    assert bench.score(rules, heard, chosen).scores["contribution"].tp == 3
    # Sure and wrong as often as right: it only hints the dimension, and the keywords decide.
    misled = [_case(bench, {"contribution"}, 0.95, keyword=1, name="contribution")] * 3
    misled += [_case(bench, set(), 0.95, name="contribution")] * 3
    chosen = bench.choose(rules, misled)
    assert "contribution" in chosen.hint_only and "contribution" not in chosen.thresholds
    found = bench.score(rules, misled, chosen).scores["contribution"]
    assert (found.tp, found.fp) == (3, 0)
