"""Fine-tune the sentence model's layers and a rubric head on a question's labelled corpus, and
write them beside the rules file as its `[learned] tuned` names them.

    .venv/bin/python scripts/train_encoder.py [--question accomplishment]
    .venv/bin/python scripts/train_encoder.py --folds 5 [--out benchmarks/tuned_oof.json]

Needs torch (not a dependency of the app: `.venv/bin/pip install torch`; the CPU build is enough).
The app runs the result with numpy (voice_app/tuned.py): no torch on the server.

What is trained is what scripts/bench_finetune.py measured: all-MiniLM-L6-v2's top `--top`
layers and a linear head with one output per dimension, on each answer's whole-answer vector
(the answer's normalised words, `voice_app.interviewer.normalize`, as the line encodes them),
3 epochs, seeded. The layers are stored in float16 (half the size; the difference this makes
to the log-odds is printed), the head in float32.

`--folds K` writes nothing beside the rules: it splits the tuning writers into K folds (each
writer's answers in one fold), fine-tunes on all folds but one and scores the answers of the
one left out, K times, and writes every answer's out-of-fold log-odds to `--out`. That file is
what scripts/bench_rubric.py cross-validates the judge with (fine-tuning once per writer, over
fifty times, would take a day on two cores).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

try:
    import torch  # type: ignore[import-not-found, unused-ignore]  # optional: see main()
except ImportError:  # told in main()
    torch = None  # type: ignore[assignment, unused-ignore]  # a module once torch is installed

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_finetune import SCALE, SEED, _TorchBert  # noqa: E402
from bench_rubric import Labelled, load_corpus, tuning_splits, writer_of  # noqa: E402

from voice_app import tuned  # noqa: E402
from voice_app.config import load_settings  # noqa: E402
from voice_app.embedding import MiniLMEncoder, load_encoder  # noqa: E402
from voice_app.interviewer import normalize  # noqa: E402
from voice_app.rules import DEFAULT_GRAMMARS_DIR, load_question  # noqa: E402

TOP = 6
EPOCHS = 3
LR = 3e-5
CHECKED = 64  # answers run by both the stored file (numpy) and the trained model (torch)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--question", default="accomplishment")
    parser.add_argument("--folds", type=int, default=0, help="out-of-fold log-odds instead")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "tuned_oof.json"))
    args = parser.parse_args(argv)
    if torch is None:
        sys.exit("This script needs torch: `.venv/bin/pip install torch` (CPU build is enough).")
    started = time.perf_counter()
    rules = load_question(args.question, with_model=False)
    names = list(rules.probe_order)
    encoder = load_encoder(load_settings({"semantic": True}))
    base = getattr(encoder, "inner", None)
    if not isinstance(base, MiniLMEncoder):
        sys.exit("The sentence model is missing: run scripts/install.sh.")
    splits = tuning_splits(args.question)
    by_writer: dict[str, list[Labelled]] = {}
    for split in splits:
        by_writer.setdefault(writer_of(args.question, split), []).extend(
            load_corpus(args.question, split)
        )
    corpus = [item for items in by_writer.values() for item in items]
    print(f"{len(corpus)} answers by {len(by_writer)} writers", flush=True)
    bert = _TorchBert(base)
    start = bert.layers - TOP
    if args.folds:
        return _out_of_fold(args, bert, start, by_writer, names, started)

    path = DEFAULT_GRAMMARS_DIR / "questions" / f"{args.question}.toml"
    with path.open("rb") as handle:
        name = tomllib.load(handle).get("learned", {}).get("tuned")
    if not name:
        sys.exit(f'{path}: add `tuned = "{args.question}.tuned.safetensors"` to [learned]')
    texts = [normalize(item.text) for item in corpus]
    states = bert.states(texts, start)
    labels = _labels(corpus, names)
    layers, head, seconds = bert.train(states, start, labels, EPOCHS, LR)
    trained_on = (
        f"{len(corpus)} labelled answers by {len(by_writer)} writers (tests/corpus/: "
        f"{', '.join(splits)}); top {TOP} layers, {EPOCHS} epochs, learning rate {LR:g}, "
        f"seed {SEED}; torch {torch.__version__}"
    )
    target = path.parent / name
    tuned.save(
        target,
        {
            f"encoder.layer.{start + n}.{k}": v.detach().numpy()
            for n, p in enumerate(layers)
            for k, v in p.items()
        },
        head.weight.detach().numpy(),
        head.bias.detach().numpy(),
        names,
        SCALE,
        trained_on,
        tuned.fingerprint(base),
    )
    check = tuned.load(target, names)
    checked = texts[:CHECKED]
    expect = bert.log_odds(states[: len(checked)], start, layers, head)
    got = check.log_odds(base, checked)
    print(
        f"wrote {target.relative_to(ROOT)} ({target.stat().st_size / 1e6:.1f} MB): {trained_on}\n"
        f"float16 file in numpy against the float32 model in torch, first {len(got)} answers: "
        f"largest log-odds difference {np.abs(got - expect).max():.3f}; "
        f"fine-tuning {seconds:.0f} s, whole run {time.perf_counter() - started:.0f} s"
    )
    return 0


def _labels(items: Sequence[Labelled], names: Sequence[str]) -> np.ndarray:
    return np.array([[n in item.shows for n in names] for item in items], dtype=np.float32)


def _folds(by_writer: dict[str, list[Labelled]], k: int) -> list[list[str]]:
    """Writers dealt into k folds, most answers first, each to the fold with fewest so far."""
    folds: list[list[str]] = [[] for _ in range(k)]
    sizes = [0] * k
    for writer in sorted(by_writer, key=lambda w: (-len(by_writer[w]), w)):
        smallest = sizes.index(min(sizes))
        folds[smallest].append(writer)
        sizes[smallest] += len(by_writer[writer])
    return folds


def _out_of_fold(
    args: argparse.Namespace,
    bert: _TorchBert,
    start: int,
    by_writer: dict[str, list[Labelled]],
    names: list[str],
    started: float,
) -> int:
    folds = _folds(by_writer, args.folds)
    log_odds: dict[str, list[float]] = {}
    seconds: list[float] = []
    out = Path(args.out)
    for number, held in enumerate(folds, 1):
        train = [item for w in by_writer if w not in held for item in by_writer[w]]
        test = [item for w in held for item in by_writer[w]]
        states = bert.states([normalize(item.text) for item in train + test], start)
        layers, head, took = bert.train(
            states[: len(train)], start, _labels(train, names), EPOCHS, LR
        )
        seconds.append(took)
        z = bert.log_odds(states[len(train) :], start, layers, head)
        for item, row in zip(test, z, strict=True):
            log_odds[item.id] = [round(float(v), 4) for v in row]
        print(
            f"fold {number}/{len(folds)}: {len(test)} answers by {len(held)} writers, "
            f"trained on {len(train)} in {took:.0f} s",
            flush=True,
        )
        data = {
            "question": args.question,
            "dimensions": names,
            "folds": folds,
            "settings": f"top {TOP} layers, {EPOCHS} epochs, learning rate {LR:g}, seed {SEED}, "
            f"torch {torch.__version__}",
            "fine_tuning_seconds": [round(s) for s in seconds],
            "log_odds": log_odds,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, indent=0) + "\n", encoding="utf-8")
    print(f"wrote {out} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
