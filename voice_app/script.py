"""What a call says: the question bank's questions, the fixed lines and the timing, loaded once.

The fixed lines live in `grammars/lines.toml`; the questions and their follow-ups in
`grammars/questions/`; which questions a call asks in `grammars/banks/`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from voice_app.config import Settings
from voice_app.embedding import Encoder
from voice_app.errors import RulesError
from voice_app.rules import QuestionRules, load_bank, load_question, question_texts


@dataclass(frozen=True)
class Lines:
    """The fixed lines of a call (see grammars/lines.toml for what each is for)."""

    consent: str
    consent_live: str
    consent_yes: str
    consent_no: str
    consent_unclear: str
    introduction: str
    acknowledge: str
    still_working: str
    reprompt: str
    moving_on: str
    could_not_listen: str
    next_question: str
    closing_with_text: str
    closing_without_text: str
    unknown_call: str
    fallback: str


def load_lines(path: Path) -> Lines:
    """Read and check the fixed lines file; every key must be there, as text."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RulesError(str(path), "(file)", "file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(str(path), "(file)", f"not valid TOML: {exc}") from exc
    expected = [f.name for f in fields(Lines)]
    for key in expected:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise RulesError(str(path), key, "missing, or not a non-empty text")
    unknown = sorted(set(data) - set(expected))
    if unknown:
        raise RulesError(str(path), unknown[0], "unknown key (a typo?)")
    return Lines(**{key: data[key].strip() for key in expected})


@dataclass(frozen=True)
class Script:
    """Everything the call flow says and how long it waits."""

    greeting: str
    lines: Lines
    questions: tuple[QuestionRules, ...]
    max_follow_ups: int
    hold_seconds: int
    max_wait_seconds: int
    # The sentence encoder behind the interviewer's semantic signal (None: keyword rules only).
    # An adapter chosen by create_app from the settings; tests pass a fake.
    encoder: Encoder | None = None

    def rules(self, question_id: str) -> QuestionRules:
        """The rules of one question of the bank."""
        for rules in self.questions:
            if rules.id == question_id:
                return rules
        raise KeyError(question_id)

    def question_after(self, question_id: str) -> QuestionRules | None:
        """The next question of the bank, or None after the last one."""
        ids = [rules.id for rules in self.questions]
        position = ids.index(question_id)
        return self.questions[position + 1] if position + 1 < len(ids) else None

    def spoken_texts(self) -> list[str]:
        """Every text a call may speak, for rendering prompts ahead of time."""
        texts = [self.greeting, *(getattr(self.lines, f.name) for f in fields(Lines))]
        for rules in self.questions:
            texts.extend(question_texts(rules))
        return list(dict.fromkeys(texts))


def load_script(settings: Settings, encoder: Encoder | None = None) -> Script:
    """Load the question bank named in the settings, its questions and the fixed lines."""
    grammars = settings.grammars_path
    bank = load_bank(settings.question_bank, grammars)
    questions = tuple(load_question(question_id, grammars) for question_id in bank.question_ids)
    return Script(
        greeting=settings.greeting,
        lines=load_lines(grammars / "lines.toml"),
        questions=questions,
        max_follow_ups=(
            bank.max_follow_ups if bank.max_follow_ups is not None else settings.max_follow_ups
        ),
        hold_seconds=max(1, settings.hold_pause_seconds),
        max_wait_seconds=settings.max_wait_seconds,
        encoder=encoder,
    )
