"""The rubric benchmark keeps its splits apart: tuning splits in full, the sealed blind split as
figures only, never its answers one by one; a second labeller's agreement as the ceiling."""

from __future__ import annotations

import gzip
import importlib.util
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
# The writers' splits of 80 answers each: six of the first batch, twelve of the second, six of
# the third, four each of the fourth to the seventh.
WRITERS = (
    *("wh", "wt", "wb", "wp", "wr", "we"),
    *("wc", "wf", "ws", "wl", "wn", "wm"),
    *("wg", "wa", "wi", "wd", "wo", "wu"),
    *("wj", "wk", "wq", "wv", "wx", "wy"),
    *("ww", "wz", "w2", "w3"),
    *("w4", "w5", "w6", "w7"),
    *("w8", "w9", "w10", "w11"),
    *("w12", "w13", "w14", "w15"),
)


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
    # Leave one writer out (here each split has a writer of its own): a row per held-out writer
    # and system, then the pooled figures.
    table = report.split("#### leave-one-writer-out cross-validation", 1)[1].split("\n\n")[1]
    rows = [line.split(" | ")[:2] for line in table.splitlines()[2:]]
    held_out = ["dev", "heldout", "blind1", "blind2", "pooled"]
    systems = ["rules", "pruned-kw", "learned@0.1", "learned", "learned@1"]
    assert rows == [[f"| {split}", system] for split in held_out for system in systems]


def test_splits_by_one_writer_are_held_out_together(bench: ModuleType, tmp_path: Path) -> None:
    for split in ("dev", "heldout"):
        path = bench.CORPUS_DIR / f"accomplishment_{split}.toml"
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("question =", 'writer = "a"\nquestion =', 1), "utf-8")
    out = tmp_path / "rubric.md"
    assert bench.main(["--out", str(out)]) == 0
    report = out.read_text(encoding="utf-8")
    table = report.split("#### leave-one-writer-out cross-validation", 1)[1].split("\n\n")[1]
    held_out = list(dict.fromkeys(line.split(" | ")[0] for line in table.splitlines()[2:]))
    assert held_out == ["| a", "| blind1", "| blind2", "| pooled"]
    assert "a (dev + heldout)" in report


def test_the_sealed_split_is_reported_without_naming_its_answers(
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
    assert "| results |" in blind  # per dimension: the goal is per dimension
    # The goals are checked on what ships (rules + judge), not only on the rules alone.
    assert "- blind, current: dimensions below goal: " in report
    for line in blind.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert not any(cell.endswith("*") for cell in cells[2:]), line  # marks: current only
    printed = capsys.readouterr().out
    assert "misjudged answers (blind1" in printed
    assert "sealed-d0" not in printed  # no answer of the sealed split is ever named


def test_the_sealed_split_is_never_a_fold_of_the_cross_validation(
    bench: ModuleType, tmp_path: Path
) -> None:
    _write_blind(bench)
    out = tmp_path / "rubric.md"
    assert bench.main(["--out", str(out)]) == 0
    report = out.read_text(encoding="utf-8")
    table = report.split("#### leave-one-writer-out", 1)[1]
    assert "| blind |" not in table
    writers = report.split("Writers (their splits): ", 1)[1].split(".", 1)[0]
    assert writers == "dev (dev), heldout (heldout), blind1 (blind1), blind2 (blind2)"


def test_pruning_drops_the_keywords_only_the_held_out_writer_uses(bench: ModuleType) -> None:
    rules = bench.load_question("accomplishment")
    held_out = [
        bench.Labelled(
            "h", "honestly the waste does my head in and i am proud of it", {"values"}, ""
        )
    ]
    train = [bench.Labelled("t", "i am really proud of the new rota", {"values"}, "")]
    pruned, dropped = bench.prune_unseen(bench.Counted(rules), train, held_out)
    values = pruned.dimensions["values"].keywords
    assert "does my head in" not in values  # only the held-out writer says it
    assert "proud" in values  # another writer's answer supports it
    assert dropped >= 1
    # With no other writer's support left, the held-out answer shows no values.
    alone = [bench.Labelled("h", "honestly the waste does my head in", {"values"}, "")]
    pruned, _ = bench.prune_unseen(bench.Counted(rules), train, alone)
    run = bench.evaluate(bench.System(pruned), alone)
    assert run.scores["values"].fn == 1


def test_errors_of_the_sealed_split_are_refused(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_blind(bench)
    assert bench.main(["--out", str(tmp_path / "rubric.md"), "--errors", "blind"]) == 2
    assert "refused" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("split", "count"),
    [("blind1", 48), ("blind2", 72), ("blind3", 90)]
    + [(f"blind{n}", 100) for n in range(4, 20)]
    + [(w, 80) for w in WRITERS],
)
def test_the_retired_blind_splits_and_the_writers_are_tuning_data(split: str, count: int) -> None:
    with (ROOT / f"tests/corpus/accomplishment_{split}.toml").open("rb") as handle:
        answers = tomllib.load(handle)["answers"]
    assert len(answers) == count


def test_a_second_labeller_is_scored_against_the_first_labels(
    bench: ModuleType, tmp_path: Path
) -> None:
    _write_blind(bench)
    blind = bench.load_corpus("accomplishment", "blind")
    # A second labeller who agrees on every answer but one, where they miss `results`.
    lines = ['question = "accomplishment"']
    for number, item in enumerate(blind):
        shows = set(item.shows) - ({"results"} if number == 0 else set())
        lines += ["[[answers]]", f'id = "{item.id}"', f"shows = {sorted(shows)!r}"]
    second = bench.CORPUS_DIR / "accomplishment_blind_second_labeller.toml"
    second.write_text("\n".join(lines).replace("'", '"'), encoding="utf-8")
    out = tmp_path / "rubric.md"
    assert bench.main(["--out", str(out), "--splits", "blind"]) == 0
    table = out.read_text(encoding="utf-8").split("#### blind\n", 1)[1].strip().split("\n\n")[0]
    header = [cell.strip() for cell in table.splitlines()[0].strip("|").split("|")]
    column = header.index("second labeller")
    rows = {
        cells[0]: cells[column]
        for cells in (
            [c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]
        )
    }
    shown = sum("results" in item.shows for item in blind)
    recall, f1 = (shown - 1) / shown, 2 * (shown - 1) / (2 * shown - 1)
    assert rows["results"] == f"1.00/{recall:.2f}/{f1:.2f}"
    assert rows["values"] == "1.00/1.00/1.00"
    # The splits left out are named once, on one line, not one line each.
    report = out.read_text(encoding="utf-8")
    assert "Not run (left out of --splits): dev, heldout, blind1, blind2." in report
    assert "#### dev" not in report


def test_every_split_but_the_sealed_one_is_tuning_data_in_history_order(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench, "CORPUS_DIR", ROOT / "tests/corpus")
    found = bench.tuning_splits("accomplishment")
    assert found == [
        *("dev", "heldout"),
        *(f"blind{n}" for n in range(1, 20)),
        *sorted(WRITERS),
    ]
    assert bench.writer_of("accomplishment", "dev") == bench.writer_of("accomplishment", "heldout")
    assert len({bench.writer_of("accomplishment", split) for split in found}) == 60


@pytest.mark.parametrize("number", [20, 21])
def test_a_sealed_split_waiting_for_its_round_is_whole_and_no_tuning_data(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch, number: int
) -> None:
    # Checked by counts and ids only: a failure here must not print the answers' text.
    monkeypatch.setattr(bench, "CORPUS_DIR", ROOT / "tests/corpus")
    sealed = ROOT / "tests/corpus/sealed"
    answers, second = (
        tomllib.loads(gzip.decompress((sealed / name).read_bytes()).decode())
        for name in (
            f"accomplishment_blind{number}.toml.gz",
            f"accomplishment_blind{number}_second_labeller.toml.gz",
        )
    )
    ids = [item["id"] for item in answers["answers"]]
    assert (answers["writer"], len(ids), len(set(ids))) == (f"s{number}", 100, 100)
    same_ids = [item["id"] for item in second["answers"]] == ids
    assert same_ids, "the second labeller's file lists other answers"
    tuning = {bench.writer_of("accomplishment", s) for s in bench.tuning_splits("accomplishment")}
    assert f"s{number}" not in tuning


class _WordCountEncoder:
    """A stand-in sentence model whose vectors differ from text to text: letter counts."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        rows = [[text.count(letter) + 1.0 for letter in "aeiourst"] for text in texts]
        vectors = np.array(rows, dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_a_ridge_variant_with_the_shipped_word_model_is_what_a_full_fit_at_that_ridge_gives(
    bench: ModuleType,
) -> None:
    # The benchmark fits the word model once per fold and lends it to the other ridges' judges.
    rules = bench.load_question("accomplishment")
    corpus = bench.load_corpus("accomplishment", "dev")
    rows = bench.rows_of(rules, _WordCountEncoder())
    full = bench.fit_learned(rules, corpus, rows, 1.0).learned
    shipped = bench.fit_learned(rules, corpus, rows)
    lent = bench.with_words_of(bench.fit_learned(rules, corpus, rows, 1.0, words=False), shipped)
    lent = lent.learned
    assert lent.vocabulary == full.vocabulary and lent.vocabulary
    for name, model in full.dimensions.items():
        other = lent.dimensions[name]
        assert np.allclose(other.words, model.words) and other.words_bias == model.words_bias
        assert np.allclose(other.mean, model.mean) and other.bias == model.bias
