"""Short spoken replies ("yes", "no thanks", "repeat that"): which phrase list a transcript matches.

Each file `grammars/phrases/NAME.json` is a Vosk grammar (a JSON list of phrases) for one kind of
reply, NAME. Recognition with the union of the lists keeps the recognizer to those phrases; this
module then says which list the recognised words came from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from voice_app.errors import RulesError

UNKNOWN = "[unk]"  # Vosk's token for anything outside the grammar


def load_phrases(grammars_dir: Path, names: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The phrase lists `names` from grammars/phrases/, checked: lists of lowercase phrases."""
    lists: dict[str, tuple[str, ...]] = {}
    for name in names:
        path = grammars_dir / "phrases" / f"{name}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise RulesError(str(path), "(file)", "phrase list not found") from exc
        except json.JSONDecodeError as exc:
            raise RulesError(str(path), "(file)", f"not valid JSON: {exc}") from exc
        if not isinstance(data, list) or not all(isinstance(p, str) and p for p in data):
            raise RulesError(str(path), "(file)", "must be a JSON list of phrases")
        lists[name] = tuple(p.strip().lower() for p in data if p != UNKNOWN)
    return lists


def grammar(lists: Mapping[str, Sequence[str]]) -> list[str]:
    """One Vosk grammar for all the lists, with [unk] so other words are not forced into them."""
    phrases = [phrase for phrases in lists.values() for phrase in phrases]
    return [*dict.fromkeys(phrases), UNKNOWN]


def classify(text: str, lists: Mapping[str, Sequence[str]]) -> str | None:
    """The one list whose phrases the text contains; None when none does, or several do."""
    words = " " + " ".join(re.findall(r"[a-z0-9']+", text.lower())) + " "
    found = {
        name for name, phrases in lists.items() if any(f" {phrase} " in words for phrase in phrases)
    }
    return found.pop() if len(found) == 1 else None
