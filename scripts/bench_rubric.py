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
  blind     the sealed split of the day (blind split 3, scored once: rules 0.793): written by
            someone who never saw the rules, the examples or the matcher; reported per dimension,
            never answer by answer, when tests/corpus/<question>_blind.toml exists, skipped with
            a note otherwise; with <question>_blind_second_labeller.toml beside it, a second
            labeller's agreement with its labels is reported too (the ceiling)

Systems compared:
  current   the shipped rules file with the semantic signal on (VOICE_APP_SEMANTIC=true: examples
            and model beside the keyword rules)
  rules     the same file judged by the keyword rules alone: what ships by default
  plain     the same keywords as plain hits: no negation, no `ignore` lists, no jargon check, and
            `{action}` read as any word (so "i" + anything counts as contribution); no model
  v1        the first rules file (benchmarks/v1/), as shipped before the corpus existed

Leave-one-split-out cross-validation over the tuning splits (dev, heldout, blind1, blind2; dev
and heldout share a writer): each split is scored by what was fitted in code on the other three,
then the four held-out scores are pooled (counts added up). Hand-written keyword edits cannot be
cross-validated (every tuning split was read while writing them), so `rules` there is no
estimate for unseen answers. What is cross-validated:
  pruned-kw the rules without every keyword that counts in the held-out split but never counted
            for a shown dimension in the other three (a keyword no other writer supports was most
            likely written for that split); families are kept whole, so a phrase added to a
            family for that split alone stays in (optimistic there)
  pruned    the same with every family written out, one keyword per phrase ("{teach} {people}"
            becomes "trained the team", ...): also drops the phrases no other writer supports
            (pessimistic: a sound phrase that happens to be used by one writer goes too)
  cv        rules + semantic signal, each dimension's `min_similarity` refitted on the other
            splits (rule below); the examples were written once, before blind1 was opened
  learned   a logistic regression per dimension (numpy, Newton's method, L2; deterministic) over
            the keyword verdict, a hint, the number of quotes, the best window similarity to the
            examples, the answer's length and whether "I" acted, fitted on the other splits
Calibration of the pruned pair on the rules file before this round (main at 9ddc4fd, which had
never seen blind2), judged by this round's matcher: blind2 scored 0.810 macro F1 as it was,
0.791 pruned-kw, 0.739 pruned; blind1 0.814, 0.805 and 0.782. So pruned-kw ran about 0.01 to
0.02 below the truth and pruned 0.03 to 0.07 below.

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
import itertools
import math
import random
import re
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voice_app.config import load_settings  # noqa: E402
from voice_app.embedding import Encoder, load_encoder  # noqa: E402
from voice_app.interviewer import (  # noqa: E402
    Analysis,
    DimensionResult,
    analyze,
    counted_keywords,
    pick_follow_up,
)
from voice_app.rules import Negation, QuestionRules, load_question  # noqa: E402

CORPUS_DIR = ROOT / "tests" / "corpus"
SPLITS = ("dev", "heldout", "blind1", "blind2", "blind")
# Splits whose per-answer errors may be listed: they are tuning data.
TUNING_SPLITS = ("dev", "heldout", "blind1", "blind2")
# Splits reported only when their file exists.
OPTIONAL_SPLITS = ("blind",)
FAMILY = re.compile(r"\{([a-z][a-z0-9_]*)\}")
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
    layer: Layer | None = None  # a learned layer over the rules' and the model's signals

    def analyze(self, text: str) -> Analysis:
        """The system's judgement of one answer."""
        if self.layer is not None:
            return self.layer.analyze(self.rules, text)
        return analyze(self.rules, [text], self.encoder)


# Features of one answer for one dimension, all read from the interviewer's public results: the
# keyword verdict, a hint, how many distinct quotes the keywords gave, the best window similarity
# to the dimension's examples (0 without examples), the length, and whether "I" acted.
FEATURES = ("bias", "keywords", "hinted", "quotes", "similarity", "words", "i_acted")
RIDGE = 1.0  # L2 penalty on every weight but the bias: few answers, keep the weights small
HINT_PROBABILITY = 0.25  # below 0.5 but above this: asked about after surely missing dimensions


@dataclass(frozen=True)
class Layer:
    """Logistic regression per dimension over FEATURES, fitted in code (deterministic)."""

    weights: dict[str, npt.NDArray[np.float64]]
    features: Features

    def analyze(self, rules: QuestionRules, text: str) -> Analysis:
        """The rules' analysis with each dimension's verdict replaced by the layer's."""
        base, rows = self.features.of(text)
        dimensions: dict[str, DimensionResult] = {}
        for name, result in base.dimensions.items():
            probability = float(1 / (1 + np.exp(-rows[name] @ self.weights[name])))
            present = probability >= 0.5
            dimensions[name] = DimensionResult(
                present,
                # A dimension the layer adds is quoted from the window that matched best.
                result.evidence or (self.features.window_quote(text, name) if present else ()),
                hinted=not present and (result.hinted or probability >= HINT_PROBABILITY),
                similarity=result.similarity,
            )
        return replace(base, dimensions=dimensions)


class Features:
    """FEATURES of each answer, computed once per text (they do not depend on what is fitted)."""

    def __init__(self, rules: QuestionRules, encoder: Encoder) -> None:
        self.rules = rules
        self.encoder = encoder
        # Thresholds above 1: the model reports each dimension's best similarity, never decides.
        self.measuring = with_thresholds(rules, {name: 2.0 for name in rules.dimensions})
        self.cache: dict[str, tuple[Analysis, dict[str, npt.NDArray[np.float64]]]] = {}

    def of(self, text: str) -> tuple[Analysis, dict[str, npt.NDArray[np.float64]]]:
        """The keyword rules' analysis of the answer and its feature row per dimension."""
        if text not in self.cache:
            keywords = analyze(self.rules, [text])
            measured = analyze(self.measuring, [text], self.encoder)
            words = math.log1p(keywords.words_heard) / 5
            contribution = keywords.dimensions.get("contribution")
            acted = float(contribution is not None and contribution.present)
            rows = {
                name: np.array(
                    [
                        1.0,
                        float(result.present),
                        float(result.hinted),
                        len(result.evidence) / 3,
                        measured.dimensions[name].similarity or 0.0,
                        words,
                        acted,
                    ]
                )
                for name, result in keywords.dimensions.items()
            }
            self.cache[text] = (keywords, rows)
        return self.cache[text]

    def window_quote(self, text: str, name: str) -> tuple[str, ...]:
        """The quote the semantic signal gives for a dimension, whatever its threshold."""
        anything = with_thresholds(self.rules, {name: 0.0})
        return analyze(anything, [text], self.encoder).dimensions[name].evidence


def fit_layer(corpus: Sequence[Labelled], features: Features) -> Layer:
    """Logistic regression per dimension by Newton's method with an L2 penalty (deterministic)."""
    weights: dict[str, npt.NDArray[np.float64]] = {}
    penalty = RIDGE * np.eye(len(FEATURES))
    penalty[0, 0] = 0.0
    for name in features.rules.probe_order:
        x = np.array([features.of(item.text)[1][name] for item in corpus])
        y = np.array([name in item.shows for item in corpus], dtype=np.float64)
        w = np.zeros(len(FEATURES))
        for _ in range(100):
            p = 1 / (1 + np.exp(-x @ w))
            gradient = x.T @ (p - y) + penalty @ w
            hessian = (x * (p * (1 - p))[:, None]).T @ x + penalty + 1e-9 * np.eye(len(FEATURES))
            step = np.linalg.solve(hessian, gradient)
            w -= step
            if np.abs(step).max() < 1e-9:
                break
        weights[name] = w
    return Layer(weights, features)


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
        analysis = system.analyze(item.text)
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


def agreement(
    first: Sequence[Labelled], second: dict[str, frozenset[str]], order: Sequence[str]
) -> Run:
    """A second labeller's labels scored against the first, as if they were a system.

    Their follow-up is the first dimension, in the rules' probe order, they found missing.
    """
    scores = {name: Score() for name in order}
    right = 0
    for item in first:
        found = second[item.id]
        for name in order:
            said, truth = name in found, name in item.shows
            scores[name].tp += said and truth
            scores[name].fp += said and not truth
            scores[name].fn += truth and not said
        target = next((name for name in order if name not in found), None)
        missing = [name for name in order if name not in item.shows]
        right += (target in missing) if target else not missing
    return Run(scores, right, len(first), [])


def load_second_labeller(question: str, split: str) -> dict[str, frozenset[str]] | None:
    """Another labeller's `shows` for a split, by answer id; None when there is no such file."""
    path = CORPUS_DIR / f"{question}_{split}_second_labeller.toml"
    if not path.is_file():
        return None
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    return {a["id"]: frozenset(a["shows"]) for a in data["answers"]}


def expand_families(rules: QuestionRules) -> QuestionRules:
    """The same rules with every {FAMILY} in a keyword written out, one keyword per member.

    "{teach} {people}" becomes "trained the team", "coached my juniors", ...: each phrase that can
    count is then a keyword of its own, whose hits can be counted (and dropped) one by one.
    """
    families = dict(rules.words)

    def spell(keyword: str) -> list[str]:
        pieces = keyword.split()
        choices = [
            list(families[m[1]]) if (m := FAMILY.fullmatch(p)) and m[1] in families else [p]
            for p in pieces
        ]
        return [" ".join(words) for words in itertools.product(*choices)]

    dimensions = {
        name: replace(d, keywords=tuple(dict.fromkeys(k for kw in d.keywords for k in spell(kw))))
        for name, d in rules.dimensions.items()
    }
    return replace(rules, dimensions=dimensions)


def prune_unseen(
    counted: Counted, train: Sequence[Labelled], held_out: Sequence[Labelled]
) -> tuple[QuestionRules, int]:
    """The expanded rules without the keywords that count in the held-out answers but never
    counted for a dimension an answer of `train` shows, and how many were dropped.

    With `counted` over the rules with families written out (`expand_families`), each phrase a
    family adds is judged on its own; over the rules as written, a keyword with its families
    whole. A keyword that no other writer's answer supports was most likely written after
    reading the held-out split (or happens to fit it alone): without it, the held-out score comes
    closer to what the rules would score had that split never been seen.
    """
    expanded = counted.rules
    support: dict[str, set[str]] = {name: set() for name in expanded.dimensions}
    for item in train:
        for name, keywords in counted(item.text).items():
            if name in item.shows:
                support[name].update(keywords)
    dropped: dict[str, set[str]] = {name: set() for name in expanded.dimensions}
    for item in held_out:
        for name, keywords in counted(item.text).items():
            dropped[name].update(k for k in keywords if k not in support[name])
    dimensions = {
        name: replace(d, keywords=tuple(k for k in d.keywords if k not in dropped[name]))
        for name, d in expanded.dimensions.items()
    }
    return replace(expanded, dimensions=dimensions), sum(map(len, dropped.values()))


class Counted:
    """`counted_keywords` of each answer under one set of rules, remembered across folds."""

    def __init__(self, rules: QuestionRules) -> None:
        self.rules = rules
        self.cache: dict[str, dict[str, tuple[str, ...]]] = {}

    def __call__(self, text: str) -> dict[str, tuple[str, ...]]:
        if text not in self.cache:
            self.cache[text] = counted_keywords(self.rules, [text])
        return self.cache[text]


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
                mark = " *" if system == "rules" and s.f1 < F1_GOAL else ""
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


def pooled(runs: Sequence[Run]) -> Run:
    """Several runs as one: counts added up over the answers of all of them."""
    scores = {
        name: Score(
            sum(r.scores[name].tp for r in runs),
            sum(r.scores[name].fp for r in runs),
            sum(r.scores[name].fn for r in runs),
        )
        for name in runs[0].scores
    }
    right = sum(r.follow_up_right for r in runs)
    return Run(scores, right, sum(r.answers for r in runs), [e for r in runs for e in r.errors])


def cv_table(
    folds: dict[str, dict[str, Run]], tuning: Sequence[str], order: Sequence[str]
) -> list[str]:
    """Markdown lines of the leave-one-split-out cross-validation: F1 per dimension."""
    lines = [
        "#### leave-one-split-out cross-validation (each split scored by what was fitted on the "
        "others)",
        "",
        "| held out | system | " + " | ".join(order) + " | macro F1 | follow-up right |",
        "|---|---|" + "---|" * (len(order) + 2),
    ]
    systems = list(next(iter(folds.values())))
    rows = [(split, folds[split]) for split in tuning if split in folds]
    rows.append(("pooled", {s: pooled([folds[split][s] for split in folds]) for s in systems}))
    for split, fold in rows:
        for system in systems:
            run = fold[system]
            lines.append(
                f"| {split} | {system} | "
                + " | ".join(f"{run.scores[n].f1:.2f}" for n in order)
                + f" | {run.macro_f1():.3f} | {run.follow_up_accuracy:.1%} "
                f"({run.follow_up_right}/{run.answers}) |"
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
    tuning = [s for s in splits if s in TUNING_SPLITS]
    features = Features(current, encoder)
    runs = {
        split: {name: evaluate(system, corpora[split]) for name, system in systems.items()}
        for split in splits
    }
    for split in splits:
        second = load_second_labeller(args.question, split)
        if second is not None:
            # The ceiling: how far a second careful person agrees with the labels.
            runs[split]["second labeller"] = agreement(corpora[split], second, current.probe_order)
    # Leave one split out: whatever is fitted is fitted on the other tuning splits only.
    cv_thresholds: dict[str, dict[str, float]] = {}
    folds: dict[str, dict[str, Run]] = {}
    dropped: dict[tuple[str, str], int] = {}
    keywords, phrases = Counted(current), Counted(expand_families(current))
    if len(tuning) > 1:
        for split in tuning:
            others = [item for other in tuning if other != split for item in corpora[other]]
            fold = {"rules": runs[split]["rules"]}
            for name, hits in (("pruned-kw", keywords), ("pruned", phrases)):
                pruned, dropped[name, split] = prune_unseen(hits, others, corpora[split])
                fold[name] = evaluate(System(pruned), corpora[split])
            if current.uses_examples:
                cv_thresholds[split] = fit_thresholds(current, others, encoder)
                refit = System(with_thresholds(current, cv_thresholds[split]), encoder)
                fold["cv"] = runs[split]["cv"] = evaluate(refit, corpora[split])
            fold["learned"] = evaluate(
                System(current, layer=fit_layer(others, features)), corpora[split]
            )
            folds[split] = fold

    lines = [f"### {args.question}", ""]
    for split in splits:
        # Per-dimension figures of the sealed split say nothing of its answers; those are never
        # listed (see --errors).
        lines += [*split_table(split, runs[split], current.probe_order, totals_only=False), ""]
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
    if folds:
        lines += ["", *cv_table(folds, tuning, current.probe_order), ""]
        lines.append(
            "Keywords dropped per held-out split (pruned-kw / pruned): "
            + ", ".join(
                f"{split} {dropped['pruned-kw', split]} / {dropped['pruned', split]}"
                for split in folds
            )
            + "."
        )
    sizes = ", ".join(f"{split} {len(corpora[split])} answers" for split in splits)
    goals = [
        "",
        f"Corpus: {sizes}. P/R/F1 per dimension; goals: F1 >= {F1_GOAL:.2f} per dimension (`*` "
        f"marks a miss for `rules`, the default), follow-up right >= {FOLLOW_UP_GOAL:.0%}.",
    ]
    checked = [(split, "rules", runs[split]["rules"]) for split in splits]
    if folds:
        checked += [
            ("pooled cross-validation", system, pooled([fold[system] for fold in folds.values()]))
            for system in ("pruned-kw", "pruned")
        ]
    for split, system, run in checked:
        below = [n for n in current.probe_order if run.scores[n].f1 < F1_GOAL]
        met = "met" if run.follow_up_accuracy >= FOLLOW_UP_GOAL else "not met"
        goals.append(
            f"- {split}, {system}: dimensions below goal: {', '.join(below) or 'none'}; "
            f"follow-up right {run.follow_up_accuracy:.1%} ({met})"
        )
    history = [
        "Systems: `rules` = keyword rules only, the default; `current` = keyword rules + semantic "
        "signal (VOICE_APP_SEMANTIC=true, the file's `min_similarity`); `plain`, `v1` = baselines; "
        "`cv`, `pruned-kw`, `pruned`, `learned` = fitted without the split they score (see the "
        "script's docstring).",
        "",
        "All four tuning splits (dev, heldout, blind1, blind2) were read while the keywords were "
        "written, so their `rules` and `current` figures are flattered: they are no estimate for "
        "answers nobody has seen. The cross-validated table is the closest there is: `pruned-kw` "
        "and `pruned` bracket the keyword rules on a writer they were not written for (on the "
        "previous rules file, whose blind2 figure was honest, they ran 0.02 and 0.07 below it). "
        "Only the sealed split, never listed answer by answer, measures answers nobody tuned on.",
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
        print(f"\nmisjudged answers ({args.errors}, rules):")
        for line in runs[args.errors]["rules"].errors:
            print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
