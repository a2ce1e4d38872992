"""How well the interviewer hears the rubric: per-dimension precision, recall and F1 on the labelled
corpus in tests/corpus/, for each split, against baselines run in the same process.

    .venv/bin/python scripts/bench_rubric.py [--question accomplishment] [--errors dev|heldout]
        [--splits dev heldout blind] [--out benchmarks/rubric.md]

Splits:
  dev       looked at while tuning
  heldout   kept apart until the second round; used for tuning since then (its name is historical)
  blind     written by someone who never saw the rules or the matcher; reported only as totals
            when tests/corpus/<question>_blind.toml exists, skipped with a note otherwise

Systems compared:
  current   the shipped rules file with every mechanism of the matcher
  plain     the same keywords as plain hits: no negation, no `ignore` lists, no jargon check, and
            `{action}` read as any word (so "i" + anything counts as contribution)
  v1        the first rules file (benchmarks/v1/), as shipped before the corpus existed

Follow-up accuracy: the share of answers whose first follow-up asks about a dimension the labels
say is missing (or, for an answer labelled complete, is a deeper probe).

`--errors` lists the misjudged answers of one tuning split (dev or heldout). It refuses `blind`:
per-answer errors of the blind split are never printed, so that its figures keep measuring how the
rules do on answers nobody tuned them on.
"""

from __future__ import annotations

import argparse
import random
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voice_app.interviewer import analyze, pick_follow_up  # noqa: E402
from voice_app.rules import Negation, QuestionRules, load_question  # noqa: E402

CORPUS_DIR = ROOT / "tests" / "corpus"
SPLITS = ("dev", "heldout", "blind")
# Splits whose per-answer errors may be listed: they are tuning data.
TUNING_SPLITS = ("dev", "heldout")
# Splits reported only when their file exists.
OPTIONAL_SPLITS = ("blind",)
F1_GOAL = 0.90
FOLLOW_UP_GOAL = 0.95


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


def load_corpus(question: str, split: str) -> list[Labelled]:
    """The labelled answers of one split."""
    path = corpus_path(question, split)
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    return [
        Labelled(a["id"], a["text"], frozenset(a["shows"]), a.get("notes", ""))
        for a in data["answers"]
    ]


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
    return replace(
        rules, dimensions=dimensions, negation=Negation((), 1, ()), jargon=None,
    )


def evaluate(rules: QuestionRules, corpus: Sequence[Labelled]) -> Run:
    """Score one system on one split."""
    scores = {name: Score() for name in rules.probe_order}
    right = 0
    errors: list[str] = []
    for item in corpus:
        analysis = analyze(rules, [item.text])
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
            parts = [
                f"+{n}" if n in found else f"-{n}" for n in wrong_dims
            ]
            if not ok:
                parts.append(f"follow-up={target}")
            errors.append(f"{item.id}: {' '.join(parts)}")
    return Run(scores, right, len(corpus), errors)


def corpus_path(question: str, split: str) -> Path:
    return CORPUS_DIR / f"{question}_{split}.toml"


def table(question: str, runs: dict[tuple[str, str], Run], order: Sequence[str]) -> list[str]:
    """Markdown lines: one row per dimension, P/R/F1 for each system and split."""
    systems = list(dict.fromkeys(system for system, _ in runs))
    splits = list(dict.fromkeys(split for _, split in runs))
    header = ["dimension"]
    for split in splits:
        for system in systems:
            header.append(f"{split} {system} P/R/F1")
    lines = [f"### {question}", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    for name in order:
        row = [name]
        for split in splits:
            for system in systems:
                s = runs[(system, split)].scores[name]
                mark = "" if system != "current" or s.f1 >= F1_GOAL else " *"
                row.append(f"{s.precision:.2f}/{s.recall:.2f}/{s.f1:.2f}{mark}")
        lines.append("| " + " | ".join(row) + " |")
    macro = ["macro F1"]
    follow = ["follow-up right"]
    for split in splits:
        for system in systems:
            run = runs[(system, split)]
            f1s = [run.scores[n].f1 for n in order]
            macro.append(f"{sum(f1s) / len(f1s):.3f}")
            follow.append(f"{run.follow_up_accuracy:.1%} ({run.follow_up_right}/{run.answers})")
    lines.append("| " + " | ".join(macro) + " |")
    lines.append("| " + " | ".join(follow) + " |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--question", default="accomplishment")
    parser.add_argument("--errors", choices=SPLITS,
                        help="list the misjudged answers of a tuning split (never blind)")
    parser.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS),
                        help="the splits to report (default: all that exist)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "rubric.md")
    args = parser.parse_args(argv)
    if args.errors and args.errors not in TUNING_SPLITS:
        print(f"refused: per-answer errors of the {args.errors} split are never listed; "
              f"use --errors {' or '.join(TUNING_SPLITS)}", file=sys.stderr)
        return 2
    if args.errors and args.errors not in args.splits:
        args.splits.append(args.errors)

    current = load_question(args.question)
    systems = {"current": current, "plain": plain_rules(current)}
    v1_dir = ROOT / "benchmarks" / "v1"
    if (v1_dir / "questions" / f"{args.question}.toml").is_file():
        systems["v1"] = load_question(args.question, v1_dir)
    notes: list[str] = []
    splits: list[str] = []
    for split in SPLITS:
        if split not in args.splits:
            notes.append(f"Split {split} not run (left out of --splits).")
            continue
        if split in OPTIONAL_SPLITS and not corpus_path(args.question, split).is_file():
            notes.append(f"Split {split} skipped: {corpus_path(args.question, split).name} "
                         "does not exist (yet).")
            continue
        splits.append(split)
    corpora = {split: load_corpus(args.question, split) for split in splits}
    runs = {
        (system, split): evaluate(rules, corpora[split])
        for system, rules in systems.items()
        for split in splits
    }
    lines = table(args.question, runs, current.probe_order)
    sizes = ", ".join(f"{split} {len(corpora[split])} answers" for split in splits)
    goals = [
        f"Corpus: {sizes}. Goals: F1 >= {F1_GOAL:.2f} per dimension (`*` marks a miss for "
        f"`current`), follow-up right >= {FOLLOW_UP_GOAL:.0%}.",
    ]
    for split in splits:
        run = runs[("current", split)]
        below = [n for n in current.probe_order if run.scores[n].f1 < F1_GOAL]
        met = "met" if run.follow_up_accuracy >= FOLLOW_UP_GOAL else "not met"
        goals.append(
            f"- {split}: dimensions below goal: {', '.join(below) or 'none'}; follow-up right "
            f"{run.follow_up_accuracy:.1%} ({met})"
        )
    history = [
        "The held-out split has been used for tuning since its first figures were reported (its "
        "name is historical); only the blind split, written without seeing the rules or the "
        "matcher and never listed answer by answer, measures answers nobody tuned on.",
    ]
    report = "\n".join(["# Rubric benchmark", "", "Written by `scripts/bench_rubric.py`.", "",
                        *history, "", *lines, "", *goals, *notes, ""])
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print(f"written to {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    if args.errors in TUNING_SPLITS:
        print(f"\nmisjudged answers ({args.errors}, current rules):")
        for line in runs[("current", args.errors)].errors:
            print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
