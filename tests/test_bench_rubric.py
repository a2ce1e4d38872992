"""The rubric benchmark keeps its splits apart: tuning splits in full, the sealed blind split as
totals only, and never its answers one by one."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The bench script, reading its corpus from a temporary folder of small splits."""
    spec = importlib.util.spec_from_file_location("bench_rubric", ROOT / "scripts/bench_rubric.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_rubric", module)  # dataclasses look it up there
    spec.loader.exec_module(module)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    source = (ROOT / "tests/corpus/accomplishment_dev.toml").read_text(encoding="utf-8")
    answers = source.split("[[answers]]")
    header = 'question = "accomplishment"\n'
    for number, split in enumerate(("dev", "heldout", "blind1", "blind2")):
        chosen = answers[1 + 6 * number : 7 + 6 * number]
        text = header + "".join("[[answers]]" + a for a in chosen)
        (corpus / f"accomplishment_{split}.toml").write_text(text, encoding="utf-8")
    monkeypatch.setattr(module, "CORPUS_DIR", corpus)
    return module


def _write_blind(bench: ModuleType) -> None:
    dev = bench.CORPUS_DIR / "accomplishment_dev.toml"
    blind = dev.read_text(encoding="utf-8").replace('id = "d0', 'id = "sealed-d0')
    (bench.CORPUS_DIR / "accomplishment_blind.toml").write_text(blind, encoding="utf-8")


def test_without_the_sealed_file_the_blind_split_is_skipped_with_a_note(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rubric.md"
    assert bench.main(["--out", str(out)]) == 0
    report = out.read_text(encoding="utf-8")
    for split in ("dev", "heldout", "blind1", "blind2"):
        assert f"#### {split}" in report
    assert "#### blind\n" not in report
    assert "Split blind skipped: accomplishment_blind.toml does not exist" in report
    assert "cv fold blind1: fitted on dev + heldout + blind2" in report


def test_the_sealed_split_is_reported_as_totals_only(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_blind(bench)
    out = tmp_path / "rubric.md"
    assert bench.main(["--out", str(out), "--errors", "blind1"]) == 0
    report = out.read_text(encoding="utf-8")
    blind = report.split("#### blind\n", 1)[1].strip().split("\n\n", 1)[0]
    header = blind.splitlines()[0]
    assert header.startswith("| dimension | current | rules |")
    assert "cv" not in header  # thresholds are never fitted on the sealed split
    assert "| macro F1 |" in blind and "| follow-up right |" in blind
    assert "| results |" not in blind  # no per-dimension rows
    printed = capsys.readouterr().out
    assert "misjudged answers (blind1" in printed
    assert "sealed-d0" not in printed  # no answer of the sealed split is ever named


def test_errors_of_the_sealed_split_are_refused(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_blind(bench)
    assert bench.main(["--out", str(tmp_path / "rubric.md"), "--errors", "blind"]) == 2
    assert "refused" in capsys.readouterr().err


@pytest.mark.parametrize(("split", "count"), [("blind1", 48), ("blind2", 72)])
def test_the_retired_blind_splits_are_tuning_data(split: str, count: int) -> None:
    with (ROOT / f"tests/corpus/accomplishment_{split}.toml").open("rb") as handle:
        answers = tomllib.load(handle)["answers"]
    assert len(answers) == count
