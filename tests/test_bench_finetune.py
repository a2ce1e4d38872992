"""The fine-tuning benchmark's measures, and what it says without torch (not an app dependency)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location(
        "bench_finetune", ROOT / "scripts/bench_finetune.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_finetune", module)
    spec.loader.exec_module(module)
    return module


def test_auc_counts_pairs_ranked_right_and_ties_as_half(bench: ModuleType) -> None:
    truth = np.array([1, 1, 0, 0])
    assert bench._auc(np.array([0.9, 0.8, 0.1, 0.2]), truth) == 1.0
    assert bench._auc(np.array([0.1, 0.2, 0.9, 0.8]), truth) == 0.0
    # One positive above both negatives, the other tied with one and below the other: (2+0.5)/4.
    assert bench._auc(np.array([0.9, 0.5, 0.5, 0.7]), truth) == pytest.approx(0.625)


def test_best_f1_is_the_best_threshold_on_the_given_answers(bench: ModuleType) -> None:
    truth = np.array([1, 1, 0, 0, 1])
    # Thresholds 0.9 (1 of 3 found, no false alarm): 0.5; 0.6 (1 of 3, one false alarm): 0.4;
    # 0.3 (all 3, one false alarm): 6/7, the best; 0.1 (all 3, two false alarms): 0.75.
    score = np.array([0.9, 0.3, 0.6, 0.1, 0.3])
    assert bench._best_f1(score, truth) == pytest.approx(6 / 7)
    assert bench._best_f1(np.zeros(5), np.zeros(5)) == 0.0


def test_without_torch_it_says_what_to_install(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench, "torch", None)
    with pytest.raises(SystemExit) as stop:
        bench.main(["--quick"])
    assert "pip install torch" in str(stop.value)
