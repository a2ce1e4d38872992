"""Train a question's learned judge (voice_app/learned.py) on its labelled corpus and write it
beside the rules file, as the rules file's `[learned] model` names it.

    .venv/bin/python scripts/train_rubric.py [--question accomplishment] [--check]

Fits on every tuning split in tests/corpus/ (never the sealed split), with the same features and
the same fit as the cross-validation in scripts/bench_rubric.py, which is where its figures come
from. Deterministic: the same corpus and rules give the same file. `--check` writes nothing and
exits 1 when the file on disk differs from what training gives now (the rules' negation lists
or the corpus changed since it was made).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_rubric import (  # noqa: E402
    HINT_ONLY,
    HINTS,
    THRESHOLDS,
    VETOES,
    fit_learned,
    load_corpus,
    rows_of,
    tuning_splits,
    writer_of,
)

from voice_app import learned  # noqa: E402
from voice_app.config import load_settings  # noqa: E402
from voice_app.embedding import load_encoder  # noqa: E402
from voice_app.rules import DEFAULT_GRAMMARS_DIR, load_question  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--question", default="accomplishment")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the model file is not what training gives"
    )
    args = parser.parse_args(argv)
    path = DEFAULT_GRAMMARS_DIR / "questions" / f"{args.question}.toml"
    rules = load_question(args.question, with_model=False)

    with path.open("rb") as handle:
        name = tomllib.load(handle).get("learned", {}).get("model")
    if not name:
        print(
            f'{path}: no [learned] table: add\n\n[learned]\nmodel = "{args.question}.model.json"'
            "\n\nthen run this again",
            file=sys.stderr,
        )
        return 2
    splits = tuning_splits(args.question)
    corpus = [item for split in splits for item in load_corpus(args.question, split)]
    writers = sorted({writer_of(args.question, split) for split in splits})
    encoder = load_encoder(load_settings({"semantic": True}))
    assert encoder is not None  # semantic=True always gives an encoder (or raises)

    def listed(settings: dict[str, float]) -> str:
        return ", ".join(f"{name} {value}" for name, value in settings.items())

    trained_on = (
        f"{len(corpus)} labelled answers by {len(writers)} writers (tests/corpus/: "
        f"{', '.join(splits)}); ridge {learned.RIDGE}; word model: {learned.WORDS} words, "
        f"ridge {learned.WORDS_RIDGE}, share {learned.WORDS_SHARE}; "
        f"only hints: {', '.join(HINT_ONLY) or 'none'}; "
        f"vetoes: {listed(VETOES)}; own thresholds: {listed(THRESHOLDS)}; "
        f"own hints: {listed(HINTS)}"
    )
    model = fit_learned(rules, corpus, rows_of(rules, encoder), trained_on=trained_on).learned
    assert model is not None
    target = path.parent / name
    if args.check:
        with tempfile.TemporaryDirectory() as folder:
            fresh = Path(folder) / name
            learned.dump_model(model, fresh)
            same = target.is_file() and fresh.read_bytes() == target.read_bytes()
        print(f"{target.relative_to(ROOT)}: {'up to date' if same else 'OUT OF DATE: retrain'}")
        return 0 if same else 1
    learned.dump_model(model, target)
    print(f"wrote {target.relative_to(ROOT)}: {model.trained_on}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
