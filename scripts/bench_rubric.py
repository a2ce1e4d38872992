"""How well the interviewer hears the rubric: per-dimension precision, recall and F1 on the labelled
corpus in tests/corpus/, for each split, against baselines run in the same process.

    .venv/bin/python scripts/bench_rubric.py [--question accomplishment]
        [--errors dev|heldout|blind1|blind2] [--splits dev heldout blind1 blind2 blind]
        [--fit] [--out benchmarks/rubric.md]

Splits:
  dev       looked at while tuning
  heldout   kept apart until the second round; used for tuning since then (its name is historical)
  blind1    written blind, evaluated once (macro F1 0.814, follow-up 83.3 %), tuning data since
  blind2    written blind, kept sealed while the semantic signal was built, evaluated once (rules
            only: macro F1 0.805, follow-up 87.5 %), tuning data since
  blind     the sealed split of the day (blind split 3 when it is added): written by someone who
            never saw the rules, the examples or the matcher; reported only as totals when
            tests/corpus/<question>_blind.toml exists, skipped with a note otherwise

Systems compared:
  current   the shipped rules file with the semantic signal on (VOICE_APP_SEMANTIC=true: examples
            and model beside the keyword rules)
  rules     the same file judged by the keyword rules alone: what ships by default
  plain     the same keywords as plain hits: no negation, no `ignore` lists, no jargon check, and
            `{action}` read as any word (so "i" + anything counts as contribution); no model
  v1        the first rules file (benchmarks/v1/), as shipped before the corpus existed

Cross-validation (`cv`): for each tuning split, every dimension's `min_similarity` is fitted again
on the other tuning splits only (the rule below) and the split is scored with those thresholds.
The examples themselves were written once, before blind1 was opened, and are not refitted.

Fitting `min_similarity`: the lowest similarity at which, among the answers whose best window
reaches it, at least PRECISION of them show the dimension (and at least MIN_SUPPORT answers reach
it); 1.0 (never) when no such similarity exists. `--fit` prints the values fitted on all tuning
splits, for the rules file.

Follow-up accuracy: the share of answers whose first follow-up asks about a dimension the labels
say is missing (or, for an answer labelled complete, is a deeper probe).

`--errors` lists the misjudged answers of one tuning split. It refuses `blind`: per-answer errors
of the blind split are never printed, so that its figures keep measuring answers nobody tuned on.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voice_app.config import load_settings  # noqa: E402
from voice_app.embedding import Encoder, load_encoder  # noqa: E402
from voice_app.interviewer import analyze, pick_follow_up  # noqa: E402
from voice_app.rules import Negation, QuestionRules, load_question  # noqa: E402

CORPUS_DIR = ROOT / "tests" / "corpus"
SPLITS = ("dev", "heldout", "blind1", "blind2", "blind")
# Splits whose per-answer errors may be listed: they are tuning data.
TUNING_SPLITS = ("dev", "heldout", "blind1", "blind2")
# Splits reported only when their file exists.
OPTIONAL_SPLITS = ("blind",)
F1_GOAL = 0.90
FOLLOW_UP_GOAL = 0.95
PRECISION = 0.9
MIN_SUPPORT = 5


@dataclass(frozen=True)
class Labelled:
    id: str
    text: str
    shows: frozenset[str]
    notes: str


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass
class Run:
    scores: dict[str, Score]
    follow_up_right: int
    answers: int
    errors: list[str]

    @property
    def follow_up_accuracy(self) -> float:
        return self.follow_up_right / self.answers if self.answers else 0.0

    def macro_f1(self) -> float:
        return sum(s.f1 for s in self.scores.values()) / len(self.scores)


@dataclass(frozen=True)
class System:
    rules: QuestionRules
    encoder: Encoder | None = None


def load_corpus(question: str, split: str) -> list[Labelled]:
    """The labelled answers of one split."""
    path = corpus_path(question, split)
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    return [
        Labelled(a["id"], a["text"], frozenset(a["shows"]), a.get("notes", ""))
        for a in data["answers"]
    ]


def corpus_path(question: str, split: str) -> Path:
    return CORPUS_DIR / f"{question}_{split}.toml"


def plain_rules(rules: QuestionRules) -> QuestionRules:
    """The same keywords as plain hits, without the matcher's mechanisms."""
    dimensions = {
        name: replace(
            d,
            keywords=tuple(k.replace("{action}", "{word}") for k in d.keywords),
            ignore=(),
        )
        for name, d in rules.dimensions.items()
    }
    return replace(rules, dimensions=dimensions, negation=Negation((), 1, ()), jargon=None)


def with_thresholds(rules: QuestionRules, thresholds: dict[str, float]) -> QuestionRules:
    """The rules with other `min_similarity` values."""
    dimensions = {
        name: replace(d, min_similarity=thresholds.get(name, d.min_similarity))
        for name, d in rules.dimensions.items()
    }
    return replace(rules, dimensions=dimensions)


def evaluate(system: System, corpus: Sequence[Labelled]) -> Run:
    """Score one system on one split."""
    rules = system.rules
    scores = {name: Score() for name in rules.probe_order}
    right = 0
    errors: list[str] = []
    for item in corpus:
        analysis = analyze(rules, [item.text], system.encoder)
        found = {name for name, result in analysis.dimensions.items() if result.present}
        for name in rules.probe_order:
            said, truth = name in found, name in item.shows
            score = scores[name]
            score.tp += said and truth
            score.fp += said and not truth
            score.fn += truth and not said
        missing = [name for name in rules.probe_order if name not in item.shows]
        follow_up = pick_follow_up(rules, analysis, set(), random.Random(0))
        target = follow_up.dimension if follow_up else None
        ok = target in missing if target else not missing
        right += ok
        wrong_dims = sorted(found ^ item.shows)
        if wrong_dims or not ok:
            parts = [f"+{n}" if n in found else f"-{n}" for n in wrong_dims]
            if not ok:
                parts.append(f"follow-up={target}")
            errors.append(f"{item.id}: {' '.join(parts)}")
    return Run(scores, right, len(corpus), errors)


def fit_thresholds(
    rules: QuestionRules, corpus: Sequence[Labelled], encoder: Encoder
) -> dict[str, float]:
    """Each dimension's `min_similarity` fitted on `corpus` (see the module docstring)."""
    never = with_thresholds(rules, {name: 2.0 for name in rules.dimensions})
    best: dict[str, list[tuple[float, bool]]] = {name: [] for name in rules.dimensions}
    for item in corpus:
        for name, result in analyze(never, [item.text], encoder).dimensions.items():
            if result.similarity is not None:
                best[name].append((result.similarity, name in item.shows))
    fitted: dict[str, float] = {}
    for name, pairs in best.items():
        if not rules.dimensions[name].examples:
            continue
        fitted[name] = 1.0
        for threshold in sorted({score for score, _ in pairs}):
            above = [shows for score, shows in pairs if score >= threshold]
            if len(above) >= MIN_SUPPORT and sum(above) >= PRECISION * len(above):
                fitted[name] = math.ceil(threshold * 100) / 100
                break
    return fitted


def split_table(
    split: str, runs: dict[str, Run], order: Sequence[str], totals_only: bool
) -> list[str]:
    """Markdown lines for one split: a column per system, a row per dimension."""
    systems = list(runs)
    lines = [f"#### {split}", "", "| dimension | " + " | ".join(systems) + " |"]
    lines.append("|---|" + "---|" * len(systems))
    if not totals_only:
        for name in order:
            row = [name]
            for system in systems:
                s = runs[system].scores[name]
                mark = " *" if system == "current" and s.f1 < F1_GOAL else ""
                row.append(f"{s.precision:.2f}/{s.recall:.2f}/{s.f1:.2f}{mark}")
            lines.append("| " + " | ".join(row) + " |")
    lines.append("| macro F1 | " + " | ".join(f"{runs[s].macro_f1():.3f}" for s in systems) + " |")
    lines.append(
        "| lowest F1 | "
        + " | ".join(
            "{:.2f} ({})".format(*min((sc.f1, n) for n, sc in runs[s].scores.items()))
            for s in systems
        )
        + " |"
    )
    lines.append(
        "| follow-up right | "
        + " | ".join(
            f"{runs[s].follow_up_accuracy:.1%} ({runs[s].follow_up_right}/{runs[s].answers})"
            for s in systems
        )
        + " |"
    )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--question", default="accomplishment")
    parser.add_argument(
        "--errors", choices=SPLITS, help="list the misjudged answers of a tuning split (not blind)"
    )
    parser.add_argument(
        "--splits",
        nargs="+",
        choices=SPLITS,
        default=list(SPLITS),
        help="the splits to report (default: all that exist)",
    )
    parser.add_argument(
        "--fit", action="store_true", help="print min_similarity fitted on all tuning splits"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "rubric.md")
    args = parser.parse_args(argv)
    if args.errors and args.errors not in TUNING_SPLITS:
        print(
            f"refused: per-answer errors of the {args.errors} split are never listed; "
            f"use --errors {', '.join(TUNING_SPLITS)}",
            file=sys.stderr,
        )
        return 2
    if args.errors and args.errors not in args.splits:
        args.splits.append(args.errors)

    current = load_question(args.question)
    encoder = load_encoder(load_settings({"semantic": True}))
    assert encoder is not None  # semantic=True always gives an encoder (or raises)
    systems = {"current": System(current, encoder), "rules": System(current)}
    systems["plain"] = System(plain_rules(current))
    v1_dir = ROOT / "benchmarks" / "v1"
    if (v1_dir / "questions" / f"{args.question}.toml").is_file():
        systems["v1"] = System(load_question(args.question, v1_dir))
    notes: list[str] = []
    splits: list[str] = []
    for split in SPLITS:
        if split not in args.splits:
            notes.append(f"Split {split} not run (left out of --splits).")
            continue
        if not corpus_path(args.question, split).is_file():
            if split in OPTIONAL_SPLITS:
                notes.append(
                    f"Split {split} skipped: {corpus_path(args.question, split).name} "
                    "does not exist (yet)."
                )
            else:
                notes.append(f"Split {split} skipped: no file for this question.")
            continue
        splits.append(split)
    corpora = {split: load_corpus(args.question, split) for split in splits}
    runs = {
        split: {name: evaluate(system, corpora[split]) for name, system in systems.items()}
        for split in splits
    }
    tuning = [s for s in splits if s in TUNING_SPLITS]
    cv_thresholds: dict[str, dict[str, float]] = {}
    if current.uses_examples and len(tuning) > 1:
        for split in tuning:
            others = [item for other in tuning if other != split for item in corpora[other]]
            cv_thresholds[split] = fit_thresholds(current, others, encoder)
            refit = System(with_thresholds(current, cv_thresholds[split]), encoder)
            runs[split]["cv"] = evaluate(refit, corpora[split])

    lines = [f"### {args.question}", ""]
    for split in splits:
        totals_only = split not in TUNING_SPLITS
        lines += [*split_table(split, runs[split], current.probe_order, totals_only), ""]
    shipped = {n: d.min_similarity for n, d in current.dimensions.items() if d.examples}
    lines.append(
        "`min_similarity` in the rules file: "
        + ", ".join(f"{n} {v:.2f}" for n, v in shipped.items())
        + "."
    )
    for split, fitted in cv_thresholds.items():
        lines.append(
            f"- cv fold {split}: fitted on {' + '.join(s for s in tuning if s != split)}: "
            + ", ".join(f"{n} {v:.2f}" for n, v in fitted.items())
        )
    sizes = ", ".join(f"{split} {len(corpora[split])} answers" for split in splits)
    goals = [
        "",
        f"Corpus: {sizes}. P/R/F1 per dimension; goals: F1 >= {F1_GOAL:.2f} per dimension (`*` "
        f"marks a miss for `current`), follow-up right >= {FOLLOW_UP_GOAL:.0%}.",
    ]
    for split in splits:
        for system in ("current", "cv"):
            if system not in runs[split]:
                continue
            run = runs[split][system]
            below = [n for n in current.probe_order if run.scores[n].f1 < F1_GOAL]
            met = "met" if run.follow_up_accuracy >= FOLLOW_UP_GOAL else "not met"
            goals.append(
                f"- {split}, {system}: dimensions below goal: {', '.join(below) or 'none'}; "
                f"follow-up right {run.follow_up_accuracy:.1%} ({met})"
            )
    history = [
        "Systems: `current` = keyword rules + semantic signal (VOICE_APP_SEMANTIC=true, the "
        "file's `min_similarity`); `cv` = the same with `min_similarity` refitted without that "
        "split (cross-validation); `rules` = keyword rules only, the default; `plain`, `v1` = "
        "baselines (see the script's docstring).",
        "",
        "dev and heldout were used to tune the keywords; blind1 was written blind and first "
        "scored at macro F1 0.814 / follow-up 83.3 % (rules only) and is tuning data since. The "
        "examples were written before blind1 was opened and the keywords were not tuned on it, so "
        "the `cv` column of blind1 is the most honest figure here; `current` on blind1 is "
        "flattered by thresholds fitted with it. Only the sealed blind split, never listed answer "
        "by answer, measures answers nobody tuned on.",
    ]
    report = "\n".join(
        [
            "# Rubric benchmark",
            "",
            "Written by `scripts/bench_rubric.py`.",
            "",
            *history,
            "",
            *lines,
            *goals,
            *notes,
            "",
        ]
    )
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print(f"written to {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    if args.fit:
        fitted = fit_thresholds(current, [i for s in tuning for i in corpora[s]], encoder)
        print("\nmin_similarity fitted on " + " + ".join(tuning) + ":")
        for name, value in fitted.items():
            print(f"  [dimensions.{name}] min_similarity = {value:.2f}")
    if args.errors in TUNING_SPLITS:
        print(f"\nmisjudged answers ({args.errors}, current):")
        for line in runs[args.errors]["current"].errors:
            print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
