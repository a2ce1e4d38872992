"""Does the tuned encoder (voice_app/tuned.py) make the line judge writers it never saw better, and
at which settings should the judge decide with it?

    .venv/bin/python scripts/bench_tuned.py [--oof benchmarks/tuned_oof.json]
        [--out benchmarks/tuned.md] [--cases FILE]

Cross-validation by writer folds: the folds of the out-of-fold file that
`scripts/train_encoder.py --folds 5` wrote (each answer's tuned log-odds from layers fine-tuned
on the other folds' writers). For each fold the learned judge is fitted on the other folds'
answers (as scripts/train_rubric.py fits it) and decides the fold's answers as
voice_app/interviewer.py does: keyword hits, vetoed where the judge's probability is under the
dimension's veto; dimensions the keywords missed shown at its threshold, hinted at its hint; the
first follow-up picked by `pick_follow_up`. That decision is recomputed here from the stored
probabilities, so that many settings can be tried; the run checks it against the interviewer
itself on the first answers of each fold (the count that agree is printed).

Systems, pooled over the folds:
  rules            the keywords alone
  learned          the judge as it shipped before the tuned encoder, with its settings
                   (bench_rubric's VETOES, THRESHOLDS, HINTS): the baseline
  +tuned           the same judge with the tuned encoder's log-odds mixed in
                   (learned.TUNED_SHARE), same settings
  +tuned, chosen   the same, each fold decided at the settings chosen on the other folds
                   (vetoes and thresholds per dimension for F1, a threshold or none where the
                   judge only hints the dimension; then hints for the follow-up)

The settings chosen on all folds, what the judge should ship with, are printed last.

`--cases FILE` also writes every answer's out-of-fold case as JSON lines (id, writer's labels,
the keywords' decision, the judge's probability with the tuned encoder, the line's decision at
the shipped settings): what to read when looking for where a dimension goes wrong.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_rubric import (  # noqa: E402
    HINT_ONLY,
    HINTS,
    THRESHOLDS,
    VETOES,
    Labelled,
    Run,
    Score,
    StoredTuned,
    System,
    _words_of,
    evaluate,
    fit_learned,
    load_corpus,
    pooled,
    rows_of,
    tuning_splits,
    writer_of,
)

from voice_app import learned  # noqa: E402
from voice_app.config import load_settings  # noqa: E402
from voice_app.embedding import CachedEncoder, load_encoder  # noqa: E402
from voice_app.interviewer import (  # noqa: E402
    _UNVETOED,
    Analysis,
    DimensionResult,
    analyze,
    normalize,
    pick_follow_up,
)
from voice_app.rules import QuestionRules, load_question  # noqa: E402

QUESTION = "accomplishment"
VETO_GRID = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6)
THRESHOLD_GRID = tuple(round(0.5 + 0.05 * n, 2) for n in range(10))
HINT_GRID = (0.1, 0.2, 0.3, 0.4, 0.5)
CHECKED = 40  # answers per fold decided by the interviewer itself, to check the replay


@dataclass(frozen=True)
class Settings:
    vetoes: Mapping[str, float]
    thresholds: Mapping[str, float]
    hints: Mapping[str, float]
    hint_only: frozenset[str] = frozenset()

    def threshold(self, name: str) -> float:
        return self.thresholds.get(name, learned.THRESHOLD)

    def hint(self, name: str) -> float:
        return self.hints.get(name, learned.HINT)


SHIPPED = Settings(VETOES, THRESHOLDS, HINTS, frozenset(HINT_ONLY))


@dataclass(frozen=True)
class Case:
    """One answer as the judge meets it: the keyword results, whether the jargon check took the
    background away, and the judge's probability per dimension (None: every window vetoed)."""

    item: Labelled
    keywords: Mapping[str, DimensionResult]
    jargon_dimension: str | None
    probability: Mapping[str, float | None]


def decide(case: Case, names: Sequence[str], settings: Settings) -> dict[str, DimensionResult]:
    """What interviewer._learned_results (and the jargon check after it) make of one answer."""
    out: dict[str, DimensionResult] = {}
    for name in names:
        result, p = case.keywords[name], case.probability[name]
        if name == case.jargon_dimension:
            out[name] = DimensionResult(False, ())
        elif p is None:
            out[name] = result
        elif (
            result.present
            and p < settings.vetoes.get(name, 0.0)
            and (len(result.evidence) < _UNVETOED)
        ):
            out[name] = DimensionResult(False, (), True, probability=p)
        elif result.present:
            out[name] = DimensionResult(True, result.evidence, probability=p)
        elif p >= settings.threshold(name) and name not in settings.hint_only:
            out[name] = DimensionResult(True, ("",), probability=p)
        else:
            hinted = result.hinted or p >= settings.hint(name)
            out[name] = DimensionResult(False, (), hinted, probability=p)
    return out


def first_probed(rules: QuestionRules, analysis: Analysis) -> str | None:
    """The dimension the line's first follow-up asks about (None: a deeper probe)."""
    follow_up = pick_follow_up(rules, analysis, set(), random.Random(0))
    return follow_up.dimension if follow_up else None


def score(rules: QuestionRules, cases: Sequence[Case], settings: Settings) -> Run:
    names = rules.probe_order
    scores = {name: Score() for name in names}
    right = 0
    for case in cases:
        dimensions = decide(case, names, settings)
        for name in names:
            said, truth = dimensions[name].present, name in case.item.shows
            scores[name].tp += said and truth
            scores[name].fp += said and not truth
            scores[name].fn += truth and not said
        target = first_probed(rules, Analysis(rules.id, dimensions, 0))
        missing = [name for name in names if name not in case.item.shows]
        right += target in missing if target else not missing
    return Run(scores, right, len(cases), [])


def choose(rules: QuestionRules, cases: Sequence[Case]) -> Settings:
    """Vetoes and thresholds per dimension for the best F1 on `cases` (a threshold of None: the
    judge only hints the dimension, tried first), then hints one dimension at a time in probe
    order for the most follow-ups right (the first best on a tie)."""
    vetoes: dict[str, float] = {}
    thresholds: dict[str, float] = {}
    hint_only: set[str] = set()
    for name in rules.probe_order:
        best, shown_from = -1.0, None
        for veto in VETO_GRID:
            for threshold in (None, *THRESHOLD_GRID):
                if threshold is None:
                    trial = Settings({name: veto}, {}, {}, frozenset({name}))
                elif veto < threshold:
                    trial = Settings({name: veto}, {name: threshold}, {})
                else:
                    continue
                f1 = score(rules, cases, trial).scores[name].f1
                if f1 > best:
                    best, vetoes[name], shown_from = f1, veto, threshold
        if shown_from is None:
            hint_only.add(name)
        else:
            thresholds[name] = shown_from
    hints = {name: learned.HINT for name in rules.probe_order}
    for name in rules.probe_order:
        best = -1.0
        for hint in HINT_GRID:
            if hint > thresholds.get(name, learned.THRESHOLD):
                continue
            trial = Settings(vetoes, thresholds, {**hints, name: hint}, frozenset(hint_only))
            right = score(rules, cases, trial).follow_up_right
            if right > best:
                best, hints[name] = right, hint
    return Settings(vetoes, thresholds, hints, frozenset(hint_only))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--oof", default=str(ROOT / "benchmarks" / "tuned_oof.json"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "tuned.md"))
    parser.add_argument("--cases", help="also write every answer's out-of-fold case here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    stored = json.loads(Path(args.oof).read_text(encoding="utf-8"))
    rules = load_question(QUESTION)
    rules = replace(rules, learned=None)
    names = rules.probe_order
    loaded = load_encoder(load_settings({"semantic": True}))
    assert isinstance(loaded, CachedEncoder)
    encoder = CachedEncoder(loaded.inner, entries=200_000)  # every window of the corpus
    by_writer: dict[str, list[Labelled]] = {}
    for split in tuning_splits(QUESTION):
        items = load_corpus(QUESTION, split)
        by_writer.setdefault(writer_of(QUESTION, split), []).extend(items)
    folds: list[list[str]] = stored["folds"]
    if sorted(w for fold in folds for w in fold) != sorted(by_writer):
        sys.exit(f"{args.oof} was made on other writers: rerun scripts/train_encoder.py --folds 5")
    tuned_by_id: dict[str, list[float]] = stored["log_odds"]
    rows = rows_of(rules, encoder)
    jargon = rules.jargon
    systems: dict[str, list[Case]] = {"learned": [], "+tuned": []}
    rules_runs: list[Run] = []
    checked = agreed = 0
    per_fold: list[list[Case]] = []
    parts: dict[str, dict[str, tuple[float, float | None, float]]] = {}
    for number, held in enumerate(folds, 1):
        test = [item for w in held for item in by_writer[w]]
        train = [item for w in by_writer if w not in held for item in by_writer[w]]
        judge = fit_learned(rules, train, rows).learned
        assert judge is not None
        rules_runs.append(evaluate(System(rules), test))
        fold_cases: dict[str, list[Case]] = {"learned": [], "+tuned": []}
        for item in test:
            alone = analyze(rules, [item.text])
            lost = (
                jargon.dimension
                if jargon is not None and len(alone.unexplained) > jargon.max_unexplained
                else None
            )
            features = rows(item.text)
            words = judge.word_features(_words_of(item.text))
            tuned = dict(zip(stored["dimensions"], tuned_by_id[item.id], strict=True))
            if args.cases:
                parts[item.id] = {
                    name: _parts(judge.dimensions[name], features[name], words, tuned[name])
                    for name in names
                    if features[name] is not None
                }
            for system, mixed in (("learned", False), ("+tuned", True)):
                probability: dict[str, float | None] = {}
                for name in names:
                    if features[name] is None:
                        probability[name] = None
                        continue
                    z = judge.dimensions[name].log_odds(
                        features[name], words, tuned[name] if mixed else None
                    )
                    probability[name] = float(1 / (1 + np.exp(-z)))
                fold_cases[system].append(Case(item, alone.dimensions, lost, probability))
        # The replay against the interviewer itself, with the stored log-odds in its judge.
        by_text = {normalize(item.text): tuned_by_id[item.id] for item in test}
        live = replace(
            rules, learned=replace(judge, tuned=StoredTuned(stored["dimensions"], by_text))
        )
        for case in fold_cases["+tuned"][:CHECKED]:
            real = analyze(live, [case.item.text], encoder)
            replay = decide(case, names, SHIPPED)
            checked += 1
            agreed += all(real.dimensions[n].present == replay[n].present for n in names) and (
                first_probed(live, real) == first_probed(live, Analysis(rules.id, replay, 0))
            )
        for system in systems:
            systems[system].extend(fold_cases[system])
        per_fold.append(fold_cases["+tuned"])
        print(f"fold {number}/{len(folds)}: {len(test)} answers by {len(held)} writers", flush=True)

    # Nested choice: each fold decided at the settings chosen on the other folds.
    chosen_runs: list[Run] = []
    for k, cases in enumerate(per_fold):
        others = [c for j, other in enumerate(per_fold) if j != k for c in other]
        chosen_runs.append(score(rules, cases, choose(rules, others)))
    ship = choose(rules, systems["+tuned"])
    runs = {
        "rules": pooled(rules_runs),
        "learned": score(rules, systems["learned"], SHIPPED),
        "+tuned": score(rules, systems["+tuned"], SHIPPED),
        "+tuned, chosen": pooled(chosen_runs),
    }
    lines = report(runs, names)
    answers = len(systems["learned"])
    lines += [
        "",
        f"{answers} answers by {len(by_writer)} writers in {len(folds)} folds ({args.oof}: "
        f"{stored['settings']}). Replay checked against the interviewer on {checked} answers: "
        f"{agreed} agree. Whole run {time.perf_counter() - started:.0f} s.",
        "",
        "Settings chosen on all folds (what the judge would ship with if they were adopted; it"
        " ships with bench_rubric's HINT_ONLY, VETOES, THRESHOLDS and HINTS, the `learned` and"
        " `+tuned` columns'):",
        "",
        f"- only hinted by the judge: {', '.join(sorted(ship.hint_only)) or 'none'}",
        f"- vetoes: {fmt(ship.vetoes)}",
        f"- thresholds: {fmt(ship.thresholds)}",
        f"- hints: {fmt(ship.hints)}",
    ]
    print("\n".join(lines))
    out = Path(args.out)
    out.write_text(
        "# The tuned encoder, cross-validated (`scripts/bench_tuned.py`)\n\n"
        + "\n".join(lines)
        + "\n",
        encoding="utf-8",
    )
    print(f"\nwritten to {out}")
    if args.cases:
        write_cases(Path(args.cases), systems["+tuned"], names, parts)
        print(f"cases written to {args.cases}")
    return 0 if checked == agreed else 1


def _parts(
    model: learned.DimensionModel, features: Any, words: Any, tuned: float
) -> tuple[float, float | None, float]:
    """The judge's three log-odds before they are mixed: vector model, word model, tuned."""
    return model.log_odds(features), model.word_log_odds(words), tuned


def write_cases(
    path: Path,
    cases: Sequence[Case],
    names: Sequence[str],
    parts: Mapping[str, Mapping[str, tuple[float, float | None, float]]],
) -> None:
    with path.open("w", encoding="utf-8") as out:
        for case in cases:
            line = {
                "id": case.item.id,
                "shows": sorted(case.item.shows),
                "keywords": {
                    n: len(case.keywords[n].evidence) for n in names if case.keywords[n].present
                },
                "parts": parts.get(case.item.id, {}),
                "jargon": case.jargon_dimension,
                "probability": dict(case.probability),
                "decided": [n for n, r in decide(case, names, SHIPPED).items() if r.present],
            }
            out.write(json.dumps(line) + "\n")


def fmt(values: Mapping[str, float]) -> str:
    return ", ".join(f"{name} {value:g}" for name, value in values.items())


def report(runs: Mapping[str, Run], names: Sequence[str]) -> list[str]:
    lines = [
        "F1 per dimension, pooled over the folds (each answer judged by what was fitted on the "
        "other folds' writers):",
        "",
        "| dimension | " + " | ".join(runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    for name in names:
        lines.append(
            f"| {name} | " + " | ".join(f"{r.scores[name].f1:.3f}" for r in runs.values()) + " |"
        )
    lines.append("| macro F1 | " + " | ".join(f"{r.macro_f1():.3f}" for r in runs.values()) + " |")
    lines.append(
        "| follow-up right | "
        + " | ".join(f"{r.follow_up_accuracy:.1%}" for r in runs.values())
        + " |"
    )
    below = {system: [n for n in names if run.scores[n].f1 < 0.90] for system, run in runs.items()}
    lines += [
        "",
        "Under the 0.90 goal: "
        + "; ".join(f"{system}: {', '.join(b) or 'none'}" for system, b in below.items()),
    ]
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
