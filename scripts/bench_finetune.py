"""Would a sentence model fitted to the rubric read the eight dimensions better than the frozen one?

    .venv/bin/python scripts/bench_finetune.py [--top 6] [--epochs 3] [--quick]
        [--out benchmarks/finetune.md]

Needs torch (not a dependency of the app: `.venv/bin/pip install torch`; the CPU build is enough).

The learned judge (voice_app/learned.py) reads vectors of all-MiniLM-L6-v2 as it was published:
its results and above_and_beyond stay under the goal however its reader is built (logistic
regression, a hidden layer, windows scored alone: README, Rubric benchmark). This measures the
other lever, on writers no system here was fitted on: the answers of the eleven writers of blind
splits 4 to 14 (each across all fields, 100 answers) are the test set; every other tuning
writer's answers are the training set. Run in the same process, on the same split:

- `judge now`: the shipped learned judge (vector and word models, fitted as
  scripts/train_rubric.py fits it) on the training writers, by itself (no keywords);
- `frozen whole`: the published model's whole-answer vector alone, read per dimension by a
  logistic regression fitted to convergence (`voice_app.learned.logistic`, the judge's ridge):
  what the fine-tuned model's vector replaces;
- `fine-tuned`: a linear head (eight outputs, one per dimension) trained together with the
  model's top `--top` layers on that same whole-answer vector (the lower layers stay frozen and
  are computed once);
- `judge + fine-tuned`: the mean of the two log-odds, shares fixed beforehand, not fitted.

Per dimension, the area under the ROC curve and the best F1 over thresholds (chosen on the test
answers themselves, for every system alike: an upper bound that ranks systems, not a figure the
line would reach). The torch model is checked against voice_app/embedding.py's numpy encoder on
the first answers before anything is trained (largest difference printed). Seeded; results vary a
little with the torch build and thread count.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

try:
    import torch  # type: ignore[import-not-found, unused-ignore]  # optional: see main()
except ImportError:  # told in main(): only this benchmark needs it
    torch = None  # type: ignore[assignment, unused-ignore]  # a module once torch is installed

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_rubric import (  # noqa: E402
    Labelled,
    _words_of,
    fit_learned,
    load_corpus,
    rows_of,
    tuning_splits,
    writer_of,
)

from voice_app.config import load_settings  # noqa: E402
from voice_app.embedding import MiniLMEncoder, load_encoder  # noqa: E402
from voice_app.learned import RIDGE, LearnedModel, logistic  # noqa: E402
from voice_app.rules import load_question  # noqa: E402

QUESTION = "accomplishment"
TEST_SPLITS = tuple(f"blind{n}" for n in range(4, 15))
BATCH = 16
HEAD_LR = 1e-3
SCALE = 10.0  # the head reads the unit-length vector times this (cosines are small numbers)
SEED = 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=6, help="top layers fine-tuned (1 to 6)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=3e-5, help="learning rate of those layers")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "finetune.md"))
    parser.add_argument(
        "--quick", action="store_true", help="a try-out: two training and two test splits"
    )
    args = parser.parse_args(argv)
    if torch is None:
        sys.exit("This benchmark needs torch: `.venv/bin/pip install torch` (CPU build is enough).")
    torch.manual_seed(SEED)
    started = time.perf_counter()

    rules = load_question(QUESTION, with_model=False)
    encoder = load_encoder(load_settings({"semantic": True}))
    # The encoder the judge uses, under its cache: the torch copy is made from its weights.
    numpy_model = getattr(encoder, "inner", None)
    if encoder is None or not isinstance(numpy_model, MiniLMEncoder):
        sys.exit("The sentence model is missing: run scripts/install.sh.")
    names = list(rules.probe_order)
    train: list[Labelled] = []
    test: list[Labelled] = []
    wanted = TEST_SPLITS[:2] if args.quick else TEST_SPLITS
    test_writers = {writer_of(QUESTION, split) for split in wanted}
    splits = [*wanted, "wa", "wb"] if args.quick else tuning_splits(QUESTION)
    train_writers: set[str] = set()
    test_splits: list[str] = []
    for split in splits:
        if writer_of(QUESTION, split) in test_writers:
            test.extend(load_corpus(QUESTION, split))
            test_splits.append(split)
        else:
            train.extend(load_corpus(QUESTION, split))
            train_writers.add(writer_of(QUESTION, split))
    if not test:
        sys.exit(f"None of {', '.join(TEST_SPLITS)} is in tests/corpus/: nothing to test on.")
    y_train = np.array([[n in item.shows for n in names] for item in train], dtype=np.float32)
    y_test = np.array([[n in item.shows for n in names] for item in test], dtype=np.float32)
    print(
        f"{len(train)} training answers by {len(train_writers)} writers, "
        f"{len(test)} test answers by {len(test_writers)} writers",
        flush=True,
    )

    rows = rows_of(rules, encoder)
    judge = fit_learned(rules, train, rows).learned
    assert judge is not None
    judge_z = np.array(
        [
            [_judge_log_odds(judge, rows(item.text)[n], _words_of(item.text), n) for n in names]
            for item in test
        ]
    )

    bert = _TorchBert(numpy_model)
    start = bert.layers - args.top
    states = bert.states([item.text for item in train + test], start)
    with torch.no_grad():
        frozen = np.concatenate(
            [bert.pooled(states[i : i + 64], start).numpy() for i in range(0, len(states), 64)]
        )
    difference = float(np.abs(frozen[:8] - numpy_model.encode([a.text for a in train[:8]])).max())
    print(f"torch model against the numpy encoder: largest difference {difference:.1e}", flush=True)
    frozen_z = np.column_stack(
        [
            _logistic_log_odds(frozen[: len(train)], y_train[:, d], frozen[len(train) :])
            for d in range(len(names))
        ]
    )
    tuned_z, seconds = bert.fit_head(states, start, y_train, args.epochs, args.lr)

    systems = {
        "judge now": judge_z,
        "frozen whole": frozen_z,
        f"fine-tuned (top {args.top})": tuned_z,
        "judge + fine-tuned": (judge_z + tuned_z) / 2,
    }
    lines = _report(systems, y_test, names)
    lines += [
        "",
        f"{len(train)} training answers by {len(train_writers)} writers; "
        f"{len(test)} test answers by the {len(test_writers)} writers of "
        f"{', '.join(test_splits)}. Top {args.top} layers, {args.epochs} epochs, "
        f"learning rate {args.lr:g} (head {HEAD_LR:g}), batch {BATCH}, seed {SEED}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads. Fine-tuning took "
        f"{seconds:.0f} s, the whole run {time.perf_counter() - started:.0f} s. "
        f"Torch model against the numpy encoder: largest difference {difference:.1e}.",
    ]
    print("\n".join(lines))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "# Fine-tuning the sentence model (`scripts/bench_finetune.py`)\n\n"
        + "\n".join(lines)
        + "\n",
        encoding="utf-8",
    )
    print(f"\nwritten to {out}")
    return 0


def _judge_log_odds(judge: LearnedModel, features: Any, words: frozenset[str], name: str) -> float:
    """The shipped judge's log-odds for one dimension; very unlikely when every window was
    vetoed (the interviewer then reads no window for it)."""
    if features is None or name not in judge.dimensions:
        return -10.0
    return judge.dimensions[name].log_odds(np.asarray(features), judge.word_features(words))


def _logistic_log_odds(x: np.ndarray, y: np.ndarray, test: np.ndarray) -> np.ndarray:
    w = logistic(list(x.astype(np.float64)), list(y.astype(bool)), RIDGE)
    z: np.ndarray = test.astype(np.float64) @ w[:-1] + w[-1]
    return z


def _report(systems: dict[str, np.ndarray], truth: np.ndarray, names: list[str]) -> list[str]:
    header = "| dimension | " + " | ".join(systems) + " |"
    lines = [
        "AUC / best F1 per dimension on the test writers (best F1: threshold chosen on the test",
        "answers, for every system alike).",
        "",
        header,
        "|---|" + "---|" * len(systems),
    ]
    sums = {s: [0.0, 0.0] for s in systems}
    for d, name in enumerate(names):
        cells = []
        for system, z in systems.items():
            auc, f1 = _auc(z[:, d], truth[:, d]), _best_f1(z[:, d], truth[:, d])
            sums[system][0] += auc / len(names)
            sums[system][1] += f1 / len(names)
            cells.append(f"{auc:.3f} / {f1:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| mean | " + " | ".join(f"{a:.3f} / {f:.3f}" for a, f in sums.values()) + " |")
    return lines


def _auc(score: np.ndarray, truth: np.ndarray) -> float:
    """The probability that a random positive scores above a random negative (ties count half)."""
    pos, neg = score[truth == 1], score[truth == 0]
    above = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(above / (len(pos) * len(neg)))


def _best_f1(score: np.ndarray, truth: np.ndarray) -> float:
    best = 0.0
    for threshold in np.unique(score):
        said = score >= threshold
        tp = float((said & (truth == 1)).sum())
        if tp:
            best = max(best, 2 * tp / (said.sum() + (truth == 1).sum()))
    return best


class _TorchBert:
    """all-MiniLM-L6-v2 in torch, from the numpy encoder's own weights and tokenizer, so that what
    is measured is the model the line runs."""

    def __init__(self, numpy_model: MiniLMEncoder) -> None:
        self.model = numpy_model
        self.heads = numpy_model.heads
        self.eps = numpy_model.eps
        self.layers = numpy_model.layers
        self.w = {k: torch.tensor(np.asarray(v)) for k, v in numpy_model.weights.items()}

    def _params(self, layer: int) -> dict[str, Any]:
        prefix = f"encoder.layer.{layer}."
        return {k[len(prefix) :]: v for k, v in self.w.items() if k.startswith(prefix)}

    def _layer(self, x: Any, blocked: Any, p: dict[str, Any]) -> Any:
        """One BERT layer, as voice_app/embedding.py computes it (weights stored as x @ W)."""
        batch, length, hidden = x.shape
        size = hidden // self.heads
        f = torch.nn.functional

        def heads(v: Any) -> Any:
            return v.reshape(batch, length, self.heads, size).transpose(1, 2)

        q = heads(x @ p["attention.self.query.weight"] + p["attention.self.query.bias"])
        k = heads(x @ p["attention.self.key.weight"] + p["attention.self.key.bias"])
        v = heads(x @ p["attention.self.value.weight"] + p["attention.self.value.bias"])
        scores = torch.softmax(q @ k.transpose(2, 3) / float(np.sqrt(size)) + blocked, dim=-1)
        context = (scores @ v).transpose(1, 2).reshape(batch, length, hidden)
        x = f.layer_norm(
            context @ p["attention.output.dense.weight"] + p["attention.output.dense.bias"] + x,
            (hidden,),
            p["attention.output.LayerNorm.weight"],
            p["attention.output.LayerNorm.bias"],
            self.eps,
        )
        inner = f.gelu(x @ p["intermediate.dense.weight"] + p["intermediate.dense.bias"])
        return f.layer_norm(
            inner @ p["output.dense.weight"] + p["output.dense.bias"] + x,
            (hidden,),
            p["output.LayerNorm.weight"],
            p["output.LayerNorm.bias"],
            self.eps,
        )

    def states(self, texts: Sequence[str], upto: int) -> list[Any]:
        """Each text's token states after the embeddings and the first `upto` layers."""
        w = self.w
        out: list[Any] = []
        with torch.no_grad():
            for text in texts:
                e = self.model.tokenizer.encode(text)
                ids = torch.tensor(e.ids)[None]
                x = (
                    w["embeddings.word_embeddings.weight"][ids]
                    + w["embeddings.position_embeddings.weight"][: ids.shape[1]][None]
                    + w["embeddings.token_type_embeddings.weight"][torch.tensor(e.type_ids)[None]]
                )
                x = torch.nn.functional.layer_norm(
                    x,
                    (x.shape[-1],),
                    w["embeddings.LayerNorm.weight"],
                    w["embeddings.LayerNorm.bias"],
                    self.eps,
                )
                unblocked = torch.zeros((1, 1, 1, ids.shape[1]))
                for layer in range(upto):
                    x = self._layer(x, unblocked, self._params(layer))
                out.append(x[0])
        return out

    def pooled(self, states: Sequence[Any], start: int, top: Sequence[dict[str, Any]] = ()) -> Any:
        """Unit-length mean-pooled vectors of states taken on through layers `start` to the last
        (with the weights in `top` where given: the trainable copies)."""
        length = max(s.shape[0] for s in states)
        x = torch.zeros((len(states), length, states[0].shape[1]))
        mask = torch.zeros((len(states), length))
        for i, s in enumerate(states):
            x[i, : s.shape[0]] = s
            mask[i, : s.shape[0]] = 1
        blocked = ((1 - mask) * -1e9)[:, None, None, :]
        for n, layer in enumerate(range(start, self.layers)):
            x = self._layer(x, blocked, top[n] if top else self._params(layer))
        vectors = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return torch.nn.functional.normalize(vectors, dim=-1)

    def fit_head(
        self,
        states: Sequence[Any],
        start: int,
        y_train: np.ndarray,
        epochs: int,
        lr: float,
    ) -> tuple[np.ndarray, float]:
        """Train on the first len(y_train) states (see `train`); the log-odds of the rest (the
        test answers), and the seconds training took."""
        n_train = len(y_train)
        layers, head, seconds = self.train(states[:n_train], start, y_train, epochs, lr)
        return self.log_odds(states[n_train:], start, layers, head), seconds

    def log_odds(
        self, states: Sequence[Any], start: int, layers: Sequence[dict[str, Any]], head: Any
    ) -> np.ndarray:
        """The head's log-odds (one row per state, one column per dimension) of states taken
        after layer `start`, through the trained `layers`, 64 at a time."""
        with torch.no_grad():
            z = torch.cat(
                [
                    head(self.pooled(states[i : i + 64], start, layers) * SCALE)
                    for i in range(0, len(states), 64)
                ]
            )
        return np.asarray(z.numpy(), dtype=np.float64)

    def train(
        self, states: Sequence[Any], start: int, labels: np.ndarray, epochs: int, lr: float
    ) -> tuple[list[dict[str, Any]], Any, float]:
        """Train a linear head and copies of the layers from `start` on, on states taken after
        layer `start` and their labels (one column per dimension): the trained layers (each a
        dict of weights, stored for x @ W like voice_app/embedding.py's), the head, and the
        seconds it took."""
        torch.manual_seed(SEED)
        layers = [
            {k: v.clone().requires_grad_(True) for k, v in self._params(i).items()}
            for i in range(start, self.layers)
        ]
        head = torch.nn.Linear(int(states[0].shape[1]), labels.shape[1])
        groups: list[dict[str, Any]] = [
            {"params": list(head.parameters()), "lr": HEAD_LR},
            {"params": [v for p in layers for v in p.values()], "lr": lr},
        ]
        optimiser = torch.optim.AdamW(groups, weight_decay=0.01)
        truth = torch.tensor(labels)
        rng = np.random.default_rng(SEED)
        began = time.perf_counter()
        for _ in range(epochs):
            order = rng.permutation(len(states))
            for chunk in range(0, len(states), 256):  # batches of like length, chunks shuffled
                block = sorted(order[chunk : chunk + 256], key=lambda i: states[i].shape[0])
                for b in range(0, len(block), BATCH):
                    batch = block[b : b + BATCH]
                    vectors = self.pooled([states[i] for i in batch], start, layers)
                    loss = torch.nn.functional.binary_cross_entropy_with_logits(
                        head(vectors * SCALE), truth[batch]
                    )
                    optimiser.zero_grad()
                    loss.backward()  # type: ignore[no-untyped-call, unused-ignore]  # untyped in torch
                    optimiser.step()
        return layers, head, time.perf_counter() - began


if __name__ == "__main__":
    raise SystemExit(main())
