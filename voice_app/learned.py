"""A rubric judge learned from labelled answers: the semantic signal of a question that has one.

Keyword rules see only the phrasings someone wrote down. This judge has read how many writers
say each dimension: per dimension, a logistic regression over sentence vectors of the caller's
words. The answer is cut into the semantic signal's windows (voice_app/interviewer.py makes them
and their vectors); the features of a conversation for one dimension are the mean and the
elementwise maximum of its window vectors, leaving out windows that hold a negated keyword of
that dimension ("we never measured it" is no result, however it sounds), and the vector of each
whole answer, averaged over the caller's answers (what a window cannot see: how the parts of
the story hang together). Beside it a word model per dimension, a logistic regression over
which of the training answers' commonest words and word pairs the conversation uses, reads the
words themselves (what a sentence vector blurs: "the rota still runs", "in my own time"); the
judge's log-odds are the two models' averaged. The output is the probability that a hiring
manager would say the conversation shows the dimension. The model also says how the interviewer
uses it (voice_app/interviewer.py): the probability at which a dimension the keywords missed
counts (`threshold`) or is hinted (`hint`), each also per dimension where set, dimensions it may
only hint (`hint_only`), and dimensions whose keyword hits it may overrule (`veto`).

The model is data: a JSON file beside the question's rules file, named by its `[learned]` table,
made by `scripts/train_rubric.py` from the labelled corpus in tests/corpus/ and checked on load.
Fitting lives here too, so that the training script and the benchmark's cross-validation fit the
same way. Pure numpy, no I/O but `load_model` and `dump_model`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from voice_app.errors import RulesError

Floats = npt.NDArray[np.float64]
FORMAT = 3  # 2: a `whole` weight vector beside `mean` and `max`; 3: the word model
# L2 penalty on every weight but the bias. Chosen by leave-one-writer-out cross-validation
# over 0.1, 0.3 and 1 (see scripts/bench_rubric.py); few answers per writer, keep weights small.
RIDGE = 0.3
# The probabilities at which a dimension the keywords missed counts as shown, and as hinted.
# Chosen by leave-one-writer-out cross-validation on 23 writers (benchmarks/rubric.md): the
# keywords already find most of what is there, so the judge only adds what it is sure of; 0.5
# (the natural choice) gave too much credit (precision 0.66-0.86 per dimension, most under 0.80,
# on the twelve writers the keywords were not written on).
THRESHOLD = 0.7
HINT = 0.4
# The word model: the WORDS words and word pairs found in most training answers, its own L2
# penalty (stronger than the vector model's: a weight for each word, most seen rarely), and the
# share of its log-odds in the judge's. Leave-one-writer-out over 38 writers (an offline harness,
# closing note of the round that added it): 800 or 1500 words gave the same; shares 0.4 to 0.8
# all helped, 0.5 most (follow-up right 94.6 -> 95.3 %); only ridge 3 was tried.
WORDS = 1500
WORDS_RIDGE = 3.0
WORDS_SHARE = 0.5
# The share of the tuned encoder's log-odds (voice_app/tuned.py) in the judge's, where the
# question has one. scripts/bench_finetune.py: the mean of the two (0.5) read the eleven writers
# of blind splits 4 to 14 a little better than the tuned encoder alone (mean AUC 0.971 against
# 0.970), and far better than the judge alone (0.937); fixed beforehand, not fitted.
TUNED_SHARE = 0.5
FILE_KEY = "(file)"
TRAIN = "scripts/train_rubric.py"
_NEWTON_STEPS = 60


class Tuned(Protocol):
    """Log-odds per dimension read from whole answers by a model of its own (voice_app/tuned.py's
    TunedHead; the benchmarks' stored out-of-fold figures)."""

    dimensions: tuple[str, ...]  # one column of `log_odds` each

    def fits(self, encoder: Any) -> bool:
        """Whether it can run with this sentence encoder (stand-ins in tests cannot)."""
        ...

    def log_odds(self, encoder: Any, texts: Sequence[str]) -> Floats:
        """One row per whole answer (normalised), one column per dimension."""
        ...


@dataclass(frozen=True)
class DimensionModel:
    """One dimension's logistic regression: weights on the mean and the max of window vectors and
    on the whole answers' vector."""

    mean: Floats
    max: Floats
    whole: Floats
    bias: float
    # Its probability only orders the follow-ups, never counts as shown: for a dimension a
    # sentence vector cannot see ("I rebuilt it" and "we rebuilt it" are the same to it).
    hint_only: bool = False
    # A keyword hit with a probability below this does not count (only hints): keywords are cues,
    # some loose ("because", "for years" for the background). 0: never.
    veto: float = 0.0
    # The probability at which the judge alone shows this dimension, when it is not the model's
    # `threshold`: higher where the judge over-credits (a long shift heard as going beyond), lower
    # where it is surer.
    threshold: float | None = None
    # The probability at which a dimension not shown counts as hinted, when it is not the model's
    # `hint`: low for a dimension whose absence is often misheard (a result said in plain words).
    hint: float | None = None
    # The word model's weights, one per word of the model's `vocabulary`, and its bias; None in
    # a model without a vocabulary.
    words: Floats | None = None
    words_bias: float = 0.0

    def probability(
        self,
        windows: npt.NDArray[Any],
        whole: npt.NDArray[Any],
        words: npt.NDArray[Any] | None = None,
        tuned: float | None = None,
    ) -> float:
        """How likely a conversation shows the dimension, from its windows' vectors, its whole
        answers' vector (`whole_vector`), when the model has a word model its word features
        (`LearnedModel.word_features`), and when the question has a tuned encoder its log-odds
        for the dimension (`tuned_log_odds`)."""
        return float(1 / (1 + np.exp(-self.log_odds(pool(windows, whole), words, tuned))))

    def log_odds(
        self,
        features: npt.NDArray[Any],
        words: npt.NDArray[Any] | None = None,
        tuned: float | None = None,
    ) -> float:
        """The judge's log-odds from a conversation's pooled vector features (`pool`), when the
        model has a word model its word features, and mixed with the tuned encoder's log-odds
        where given (TUNED_SHARE)."""
        z = float(features @ np.concatenate([self.mean, self.max, self.whole])) + self.bias
        heard = None if words is None else self.word_log_odds(words)
        if heard is not None:
            z = (1 - WORDS_SHARE) * z + WORDS_SHARE * heard
        if tuned is not None:
            z = (1 - TUNED_SHARE) * z + TUNED_SHARE * tuned
        return z

    def word_log_odds(self, words: npt.NDArray[Any]) -> float | None:
        """The word model's own log-odds from a conversation's word features; None in a model
        without a word model."""
        if self.words is None:
            return None
        return float(np.asarray(words, dtype=np.float64) @ self.words) + self.words_bias

    def window_scores(self, windows: npt.NDArray[Any]) -> Floats:
        """How much each window alone speaks for the dimension: picks the quote to show."""
        return np.asarray(windows, dtype=np.float64) @ (self.mean + self.max)


@dataclass(frozen=True)
class LearnedModel:
    """Per-dimension models of one question, and the probabilities at which they decide."""

    dimensions: Mapping[str, DimensionModel]
    size: int  # length of one sentence vector
    threshold: float = THRESHOLD  # at or above: the dimension counts as shown
    # At or above (and below threshold): hinted, asked about after the surely missing ones.
    hint: float = HINT
    trained_on: str = ""  # what the model was fitted on, for whoever reads the file
    vocabulary: tuple[str, ...] = ()  # the word model's words and word pairs; () for none
    # The question's tuned encoder (voice_app/tuned.py, its own file), mixed in where it runs.
    tuned: Tuned | None = None

    def word_features(self, found: Collection[str]) -> Floats:
        """The word model's features of a conversation whose `grams` are `found`."""
        return word_vector(found, self.vocabulary)

    def threshold_of(self, name: str) -> float:
        """The probability at or above which the judge alone shows dimension `name`."""
        own = self.dimensions[name].threshold
        return self.threshold if own is None else own

    def hint_of(self, name: str) -> float:
        """The probability at or above which dimension `name`, not shown, is hinted."""
        own = self.dimensions[name].hint
        return self.hint if own is None else own


def grams(answers: Sequence[Sequence[str]]) -> frozenset[str]:
    """The words and the pairs of adjacent words (joined by a space) of a conversation's answers,
    each answer given as its normalised words."""
    found: set[str] = set()
    for words in answers:
        found.update(words)
        found.update(f"{a} {b}" for a, b in pairwise(words))
    return frozenset(found)


def vocabulary(conversations: Sequence[Collection[str]], size: int = WORDS) -> tuple[str, ...]:
    """The `size` grams found in most of the conversations (ties in alphabetical order)."""
    counts = Counter(gram for found in conversations for gram in found)
    return tuple(sorted(counts, key=lambda gram: (-counts[gram], gram))[:size])


def word_vector(found: Collection[str], words: Sequence[str]) -> Floats:
    """1 for each of `words` in `found`, 0 for the others, scaled to length 1 (or all 0)."""
    vector = np.array([gram in found for gram in words], dtype=np.float64)
    return vector / max(1.0, float(np.sqrt(vector.sum())))


def whole_vector(answers: npt.NDArray[Any]) -> Floats:
    """The conversation's whole-answer feature: the mean of each answer's own vector."""
    vectors: Floats = np.asarray(answers, dtype=np.float64)
    mean: Floats = vectors.mean(axis=0)
    return mean


def pool(windows: npt.NDArray[Any], whole: npt.NDArray[Any]) -> Floats:
    """The features of a conversation for one dimension: mean and max of its window vectors, then
    the whole answers' vector (`whole_vector`)."""
    vectors = np.asarray(windows, dtype=np.float64)
    return np.concatenate(
        [vectors.mean(axis=0), vectors.max(axis=0), np.asarray(whole, dtype=np.float64)]
    )


def fit_dimension(
    features: Sequence[Floats],
    shows: Sequence[bool],
    ridge: float = RIDGE,
    hint_only: bool = False,
    veto: float = 0.0,
    threshold: float | None = None,
    hint: float | None = None,
) -> DimensionModel:
    """The vector model of one dimension (see `logistic`); the word model is added by `fit`."""
    w = logistic(features, shows, ridge)
    size = (len(w) - 1) // 3
    return DimensionModel(
        w[:size],
        w[size : 2 * size],
        w[2 * size : -1],
        float(w[-1]),
        hint_only,
        veto,
        threshold,
        hint,
    )


def logistic(features: Sequence[Floats], shows: Sequence[bool], ridge: float) -> Floats:
    """Logistic regression by Newton's method with an L2 penalty (deterministic): the weights of
    the features, then the bias."""
    x = np.array(features, dtype=np.float64)
    y = np.array(shows, dtype=np.float64)
    x = np.hstack([x, np.ones((len(x), 1))])
    width = x.shape[1]
    penalty = ridge * np.eye(width)
    penalty[-1, -1] = 0.0  # the bias is free
    w = np.zeros(width)
    for _ in range(_NEWTON_STEPS):
        p = 1 / (1 + np.exp(-(x @ w)))
        gradient = x.T @ (p - y) + penalty @ w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + penalty + 1e-9 * np.eye(width)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def fit(
    rows: Sequence[Mapping[str, Floats | None]],
    labels: Sequence[Collection[str]],
    names: Sequence[str],
    *,
    ridge: float = RIDGE,
    trained_on: str = "",
    hint_only: Collection[str] = (),
    vetoes: Mapping[str, float] = MappingProxyType({}),
    thresholds: Mapping[str, float] = MappingProxyType({}),
    hints: Mapping[str, float] = MappingProxyType({}),
    found: Sequence[Collection[str]] | None = None,
) -> LearnedModel:
    """A model for each of `names`, from each answer's pooled features and its labels; those in
    `hint_only` only ever hint, `vetoes` sets a dimension's `veto`, `thresholds` and `hints` its
    own `threshold` and `hint`. With `found`, each answer's `grams`, each dimension also gets a
    word model over the WORDS commonest grams.

    `rows[i][name]` is None when every window of answer i was vetoed for that dimension: such an
    answer teaches that dimension nothing and is left out of its vector model's fit (not of the
    word model's: a negated word is a word too).
    """
    words = vocabulary(found) if found is not None else ()
    word_rows = [word_vector(gram_set, words) for gram_set in found] if found is not None else []
    dimensions: dict[str, DimensionModel] = {}
    size = 0
    for name in names:
        pairs = [(row[name], name in shown) for row, shown in zip(rows, labels, strict=True)]
        kept = [(f, s) for f, s in pairs if f is not None]
        if not kept:
            continue
        size = len(kept[0][0]) // 3
        model = fit_dimension(
            [f for f, _ in kept],
            [s for _, s in kept],
            ridge,
            name in hint_only,
            vetoes.get(name, 0.0),
            thresholds.get(name),
            hints.get(name),
        )
        if words:
            w = logistic(word_rows, [name in shown for shown in labels], WORDS_RIDGE)
            model = replace(model, words=w[:-1], words_bias=float(w[-1]))
        dimensions[name] = model
    return LearnedModel(MappingProxyType(dimensions), size, trained_on=trained_on, vocabulary=words)


def dump_model(model: LearnedModel, path: Path) -> None:
    """Write the model as JSON (weights rounded to 6 significant digits: far below their noise),
    one line per setting and per weight vector, so that a retrain's diff stays readable."""

    def numbers(values: Floats) -> list[float]:
        return [float(f"{v:.6g}") for v in values]

    def dimension(d: DimensionModel) -> dict[str, Any]:
        out: dict[str, Any] = {"bias": float(f"{d.bias:.6g}")}
        if d.hint_only:
            out["hint_only"] = True
        if d.veto:
            out["veto"] = d.veto
        if d.threshold is not None:
            out["threshold"] = d.threshold
        if d.hint is not None:
            out["hint"] = d.hint
        out = {**out, "mean": numbers(d.mean), "max": numbers(d.max), "whole": numbers(d.whole)}
        if d.words is not None:
            out["words_bias"] = float(f"{d.words_bias:.6g}")
            out["words"] = numbers(d.words)
        return out

    data = {
        "format": FORMAT,
        "trained_on": model.trained_on,
        "size": model.size,
        "threshold": model.threshold,
        "hint": model.hint,
        "vocabulary": list(model.vocabulary),
        "dimensions": {name: dimension(d) for name, d in model.dimensions.items()},
    }
    # Indented JSON, with each list of numbers or of words put back on one line.
    text = re.sub(
        r'\[(?:[-+0-9.eE,\s]|"[^"\\]*")*\]',
        lambda m: json.dumps(json.loads(m[0])),
        json.dumps(data, indent=1),
    )
    path.write_text(text + "\n", encoding="utf-8")


def _number(value: object) -> bool:
    """Whether a value read from JSON is a number (true and false are not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_model(path: Path, dimension_names: Collection[str]) -> LearnedModel:
    """Read and check a model file; raises RulesError naming the file and the key at fault."""
    where = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RulesError(
            where, FILE_KEY, "does not exist: make it with scripts/train_rubric.py"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RulesError(
            where, FILE_KEY, f"cannot be read as JSON ({error}): remake it ({TRAIN})"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RulesError(where, "format", f"must be {FORMAT}: retrain with scripts/train_rubric.py")
    size = data.get("size")
    if not isinstance(size, int) or size <= 0:
        raise RulesError(where, "size", "must be a positive whole number (the vector length)")
    threshold, hint = data.get("threshold"), data.get("hint")
    for key, value in (("threshold", threshold), ("hint", hint)):
        if not isinstance(value, (int, float)) or not 0 < value < 1:
            raise RulesError(where, key, "must be a probability between 0 and 1")
    assert isinstance(threshold, (int, float)) and isinstance(hint, (int, float))
    if hint > threshold:
        raise RulesError(where, "hint", f"is above threshold ({threshold}); hints come below it")
    words = data.get("vocabulary")
    if not isinstance(words, list) or not all(isinstance(w, str) and w for w in words):
        raise RulesError(where, "vocabulary", f"must be a list of words and word pairs ({TRAIN})")
    table = data.get("dimensions")
    if not isinstance(table, dict) or not table:
        raise RulesError(where, "dimensions", "must map dimension names to their weights")
    dimensions: dict[str, DimensionModel] = {}
    for name, weights in table.items():
        key = f"dimensions.{name}"
        if name not in dimension_names:
            raise RulesError(where, key, f"is not a dimension of the question: retrain ({TRAIN})")
        if not isinstance(weights, dict):
            raise RulesError(where, key, "must hold bias, mean, max and whole")
        vectors: dict[str, Floats] = {}
        for part in ("mean", "max", "whole"):
            values = weights.get(part)
            if (
                not isinstance(values, list)
                or len(values) != size
                or not all(isinstance(v, (int, float)) for v in values)
            ):
                raise RulesError(where, f"{key}.{part}", f"must be a list of {size} numbers")
            vectors[part] = np.array(values, dtype=np.float64)
        bias = weights.get("bias")
        if not isinstance(bias, (int, float)):
            raise RulesError(where, f"{key}.bias", "must be a number")
        hint_only = weights.get("hint_only", False)
        if not isinstance(hint_only, bool):
            raise RulesError(where, f"{key}.hint_only", "must be true or false")
        own = weights.get("threshold")
        if own is not None and not (_number(own) and hint <= own < 1):
            raise RulesError(
                where, f"{key}.threshold", f"must be a probability from hint ({hint}) up to 1"
            )
        shows_at = threshold if own is None else own
        own_hint = weights.get("hint")
        if own_hint is not None and not (_number(own_hint) and 0 < own_hint <= shows_at):
            raise RulesError(
                where, f"{key}.hint", f"must be a probability above 0 up to threshold ({shows_at})"
            )
        veto = weights.get("veto", 0.0)
        if not (_number(veto) and 0 <= veto < shows_at):
            raise RulesError(
                where, f"{key}.veto", f"must be a probability from 0 up to threshold ({shows_at})"
            )
        word_weights = _word_weights(where, key, weights, len(words))
        dimensions[name] = DimensionModel(
            vectors["mean"],
            vectors["max"],
            vectors["whole"],
            float(bias),
            hint_only,
            float(veto),
            None if own is None else float(own),
            None if own_hint is None else float(own_hint),
            None if word_weights is None else word_weights[0],
            0.0 if word_weights is None else word_weights[1],
        )
    return LearnedModel(
        MappingProxyType(dimensions),
        size,
        float(threshold),
        float(hint),
        str(data.get("trained_on", "")),
        tuple(words),
    )


def _word_weights(
    where: str, key: str, weights: Mapping[str, Any], count: int
) -> tuple[Floats, float] | None:
    """A dimension's word model as read from its file entry: one weight per vocabulary word and
    a bias, or None when the model has no vocabulary."""
    values, bias = weights.get("words"), weights.get("words_bias")
    if not count:
        if values is not None:
            raise RulesError(where, f"{key}.words", "is set but the model has no vocabulary")
        return None
    if not isinstance(values, list) or len(values) != count or not all(map(_number, values)):
        raise RulesError(where, f"{key}.words", f"must be a list of {count} numbers (one a word)")
    if not isinstance(bias, (int, float)) or isinstance(bias, bool):
        raise RulesError(where, f"{key}.words_bias", "must be a number")
    return np.array(values, dtype=np.float64), float(bias)
