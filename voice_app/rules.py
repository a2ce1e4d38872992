"""The interviewer's rules as data: question files and question banks, validated when loaded.

    grammars/questions/<id>.toml   one question: its rubric dimensions, follow-ups, feedback texts
    grammars/banks/<name>.toml     the questions one call asks, in order
    grammars/phrases/*.json        optional Vosk phrase lists: a JSON list of strings

The format is described for the people who edit it in grammars/README.md. Every problem is a
`RulesError(path, key, problem)` naming the file and the key, in words a non-programmer can act on.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from voice_app.errors import RulesError
from voice_app.interviewer import (
    NUMBER_PLACEHOLDER,
    PLACEHOLDERS,
    WORD_PLACEHOLDER,
    gsm7_safe,
    keyword_problem,
    normalize,
    normalize_keyword,
)
from voice_app.learned import LearnedModel, load_model
from voice_app.tuned import load as load_tuned

DEFAULT_GRAMMARS_DIR = Path(__file__).resolve().parent.parent / "grammars"

# About fifteen seconds of speech: longer and callers lose the thread of the question.
MAX_SPOKEN_CHARS = 250
# Limits that keep the feedback text within 320 characters even in its shortest form
# (heading + strengths intro + one praise + improve intro + suggestion).
MAX_HEADING_CHARS = 60
MAX_INTRO_CHARS = 25
MAX_PRAISE_CHARS = 50
MAX_SUGGESTION_CHARS = 150
MAX_NOTHING_HEARD_CHARS = 250
MAX_FOLLOW_UPS_LIMIT = 10
FAMILY_PLACEHOLDERS = (NUMBER_PLACEHOLDER, WORD_PLACEHOLDER)

_SAFE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_DIMENSION_NAME = re.compile(r"[a-z][a-z0-9_]*")
_TOML_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")
_FILE_KEY = "(file)"

_QUESTION_KEYS = (
    "id",
    "prompt",
    "probe_order",
    "deeper_probes",
    "dimensions",
    "negation",
    "feedback",
    "words",
    "jargon",
    "semantic",
    "learned",
)
_DIMENSION_KEYS = (
    "label",
    "keywords",
    "follow_ups",
    "suggestion",
    "praise",
    "ignore",
    "hints",
    "disclaimers",
    "examples",
    "min_similarity",
)
_SEMANTIC_KEYS = ("window", "stride", "hint_margin")
_LEARNED_KEYS = ("model", "tuned")
# An example is a phrase of about one window of speech: long enough to carry a meaning, short
# enough that one idea dominates it.
MIN_EXAMPLE_WORDS = 4
MAX_EXAMPLE_WORDS = 30
_NEGATION_KEYS = ("words", "window", "except", "aims")
_JARGON_KEYS = ("dimension", "known", "terms", "max_unexplained", "suggestion")
# Advice on length and delivery: optional in a file, these defaults apply when left out.
DEFAULT_ADVICE = {
    "too_short": "give a fuller answer of one to two minutes: the situation, what you did, the "
    "result and what you learned.",
    "too_long": "keep the answer to about two minutes: lead with the result, then the one or two "
    "steps that made it happen.",
    "too_fast": "slow down a little: about 140 words a minute is easy to follow.",
    "too_slow": "keep the pace up a little: aim for about 140 words a minute.",
    "many_fillers": "swap 'um' and 'uh' for a short silent pause; it sounds more confident.",
    "long_pauses": "plan your first sentence and your result before you start, so you do not "
    "stall mid-answer.",
}
_FEEDBACK_KEYS = (
    "heading",
    "strengths_intro",
    "improve_intro",
    "all_covered",
    "nothing_heard",
    *DEFAULT_ADVICE,
)
_BANK_KEYS = ("name", "questions", "max_follow_ups")


@dataclass(frozen=True)
class Dimension:
    """One thing a hiring manager listens for, how to spot it, ask about it and give feedback."""

    name: str
    label: str
    keywords: tuple[str, ...]
    follow_ups: tuple[str, ...]
    suggestion: str
    praise: str
    ignore: tuple[str, ...] = ()  # look-alike phrases whose words never count as a keyword here
    # Weaker signs: too loose to count as shown, but enough to doubt that the dimension is really
    # missing, so the follow-up asks first about dimensions missing without any sign.
    hints: tuple[str, ...] = ()
    # The caller saying the dimension is not there after all ("too early to say", "we never
    # measured it" for a result): an answer holding one shows the dimension by none of its
    # keywords, gives no hint of it, and is not read by the judge for it.
    disclaimers: tuple[str, ...] = ()
    # The semantic signal: phrases that show the dimension, and how close (cosine similarity of
    # sentence vectors, 0 to 1) a stretch of the answer must come to one of them to count.
    examples: tuple[str, ...] = ()
    min_similarity: float = 1.0


@dataclass(frozen=True)
class Semantic:
    """How answers are cut into overlapping windows of words for the semantic signal."""

    window: int = 20  # words per window
    stride: int = 10  # words from the start of one window to the next
    # A dimension whose best window comes within this of `min_similarity` counts as hinted.
    hint_margin: float = 0.1


@dataclass(frozen=True)
class Negation:
    """Words that cancel a keyword just after them, and look-alike phrases that do not."""

    words: tuple[str, ...]
    window: int
    exceptions: tuple[str, ...]
    # Aims, plans and hopes ("the target is to", "we're hoping to"): what follows them in the
    # same clause, however far, was not done yet, so it cancels keywords like a negation.
    aims: tuple[str, ...] = ()


@dataclass(frozen=True)
class Jargon:
    """Acronyms and jargon left unexplained count against one dimension (usually context)."""

    dimension: str
    known: tuple[str, ...]  # acronyms everyone knows ("ceo", "hr"): never count
    terms: tuple[str, ...]  # jargon words (not acronyms) that need explaining
    max_unexplained: int  # more unexplained terms than this and the dimension is not shown
    suggestion: str  # replaces the dimension's suggestion when jargon was the problem


@dataclass(frozen=True)
class FeedbackTexts:
    """The fixed wording of the feedback text message."""

    heading: str
    strengths_intro: str
    improve_intro: str
    all_covered: str
    nothing_heard: str
    too_short: str = DEFAULT_ADVICE["too_short"]
    too_long: str = DEFAULT_ADVICE["too_long"]
    too_fast: str = DEFAULT_ADVICE["too_fast"]
    too_slow: str = DEFAULT_ADVICE["too_slow"]
    many_fillers: str = DEFAULT_ADVICE["many_fillers"]
    long_pauses: str = DEFAULT_ADVICE["long_pauses"]


@dataclass(frozen=True)
class QuestionRules:
    """One question and its rubric; `dimensions` is read-only and ordered like `probe_order`."""

    id: str
    prompt: str
    dimensions: Mapping[str, Dimension]
    probe_order: tuple[str, ...]
    deeper_probes: tuple[str, ...]
    negation: Negation
    feedback: FeedbackTexts
    # Word families used in keywords as {NAME}.
    words: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    jargon: Jargon | None = None
    semantic: Semantic = field(default_factory=Semantic)
    # A judge trained on labelled answers (voice_app/learned.py): with the semantic signal on, it
    # replaces the examples for this question.
    learned: LearnedModel | None = None

    @property
    def uses_examples(self) -> bool:
        """Whether any dimension has examples for the semantic signal."""
        return any(dimension.examples for dimension in self.dimensions.values())


@dataclass(frozen=True)
class QuestionBank:
    """The questions one call asks, in order; `max_follow_ups` None means use the setting."""

    name: str
    question_ids: tuple[str, ...]
    max_follow_ups: int | None


def _kind(value: object) -> str:
    """A value's type in the words of the rules format."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text in quotes"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


class _Checker:
    """Reads values out of one parsed file, collecting every problem instead of stopping."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.problems: list[RulesError] = []
        # Tables already reported missing: their keys are not reported missing one by one.
        self.missing_tables: set[str] = set()

    def problem(self, key: str, text: str) -> None:
        """Record one problem at `key`."""
        self.problems.append(RulesError(self.path, key, text))

    def missing(self, key: str, where: str, how: str) -> None:
        """Report a missing key, unless its whole table was already reported missing."""
        if where not in self.missing_tables:
            self.problem(key, f"missing: {how}")

    def unknown_keys(self, table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
        """Report keys the format does not know, suggesting the nearest known one."""
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.problem(
                    _join(where, key), f"unknown key{hint}; known keys: " + ", ".join(allowed)
                )

    def table(self, data: Mapping[str, Any], key: str, where: str = "") -> dict[str, Any]:
        """A required table, or an empty one after recording the problem."""
        value = data.get(key)
        if value is None:
            self.problem(_join(where, key), f"missing: add a [{_join(where, key)}] section")
            self.missing_tables.add(_join(where, key))
            return {}
        if not isinstance(value, dict):
            self.problem(_join(where, key), f"should be a table, found {_kind(value)}")
            self.missing_tables.add(_join(where, key))
            return {}
        return value

    def text(
        self,
        data: Mapping[str, Any],
        key: str,
        where: str = "",
        *,
        limit: int = 0,
        spoken: bool = False,
        sms: bool = False,
    ) -> str:
        """A required non-empty text, checked against the limits of where it is used."""
        full_key = _join(where, key)
        value = data.get(key)
        if value is None:
            self.missing(full_key, where, f'add a line like  {key} = "..."')
            return ""
        if not isinstance(value, str):
            self.problem(full_key, f"should be text in quotes, found {_kind(value)}")
            return ""
        self._check_text(full_key, value, limit=limit, spoken=spoken, sms=sms)
        return value

    def texts(
        self,
        data: Mapping[str, Any],
        key: str,
        where: str = "",
        *,
        spoken: bool = False,
    ) -> tuple[str, ...]:
        """A required non-empty list of non-empty texts."""
        full_key = _join(where, key)
        value = data.get(key)
        if value is None:
            self.missing(full_key, where, f'add a line like  {key} = ["...", "..."]')
            return ()
        if not isinstance(value, list):
            self.problem(full_key, f"should be a list in square brackets, found {_kind(value)}")
            return ()
        if not value:
            self.problem(full_key, "is empty: give at least one")
            return ()
        items: list[str] = []
        for index, item in enumerate(value):
            item_key = f"{full_key}[{index}]"
            if not isinstance(item, str):
                self.problem(item_key, f"should be text in quotes, found {_kind(item)}")
                continue
            self._check_text(item_key, item, spoken=spoken)
            items.append(item)
        return tuple(items)

    def whole_number(
        self,
        data: Mapping[str, Any],
        key: str,
        where: str = "",
        *,
        low: int,
        high: int,
    ) -> int | None:
        """A whole number within [low, high], or None (missing or invalid)."""
        value = self._number(data, key, where, low, high, whole=True)
        return None if value is None else int(value)

    def fraction(
        self,
        data: Mapping[str, Any],
        key: str,
        where: str = "",
        *,
        low: float,
        high: float,
    ) -> float | None:
        """A number (whole or decimal) within [low, high], or None (missing or invalid)."""
        value = self._number(data, key, where, low, high, whole=False)
        return None if value is None else float(value)

    def _number(
        self,
        data: Mapping[str, Any],
        key: str,
        where: str,
        low: float,
        high: float,
        *,
        whole: bool,
    ) -> int | float | None:
        full_key = _join(where, key)
        value = data.get(key)
        if value is None:
            return None
        # TOML true/false are Python bools, which are ints: refuse them explicitly.
        if isinstance(value, bool) or not isinstance(value, int if whole else int | float):
            expected = "a whole number" if whole else "a number such as 0.5"
            self.problem(full_key, f"should be {expected}, found {_kind(value)}")
            return None
        if not low <= value <= high:
            self.problem(full_key, f"should be between {low} and {high}, found {value}")
            return None
        return value

    def _check_text(
        self,
        key: str,
        value: str,
        *,
        limit: int = 0,
        spoken: bool = False,
        sms: bool = False,
    ) -> None:
        if not value.strip():
            self.problem(key, "is empty")
            return
        if spoken and len(value) > MAX_SPOKEN_CHARS:
            self.problem(
                key,
                f"is {len(value)} characters; spoken texts must be at most "
                f"{MAX_SPOKEN_CHARS} (about fifteen seconds) so callers can follow",
            )
        if sms:
            unsendable = sorted({c for c in value if gsm7_safe(c) == "?" and c != "?"})
            if unsendable:
                self.problem(
                    key, "has characters a text message cannot carry: " + " ".join(unsendable)
                )
            length = len(gsm7_safe(value))
            if limit and length > limit:
                self.problem(
                    key, f"is {length} characters; at most {limit} fit in the feedback text message"
                )


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _read_toml(path: Path, checker: _Checker) -> dict[str, Any] | None:
    """The parsed file, or None after recording why it cannot be read."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        siblings = sorted(p.stem for p in path.parent.glob("*.toml"))
        known = ", ".join(siblings) if siblings else "none"
        checker.problem(_FILE_KEY, f"no such file (files in {path.parent.name}/: {known})")
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11's TOMLDecodeError has no line attribute; the message ends "(at line N, ...)".
        found = _TOML_LINE.search(str(exc))
        key = f"line {found[1]}" if found else _FILE_KEY
        checker.problem(key, f"not valid TOML: {_TOML_LINE.sub('', str(exc)).strip()}")
    except (OSError, UnicodeDecodeError) as exc:
        checker.problem(_FILE_KEY, f"cannot be read: {exc}")
    return None


def _keywords(
    checker: _Checker,
    table: Mapping[str, Any],
    key: str,
    where: str,
    families: Collection[str] = (),
) -> tuple[str, ...]:
    """A list of keywords: each usable by the matcher, none repeated once normalised."""
    keywords = checker.texts(table, key, where)
    seen: dict[str, int] = {}
    raw = table.get(key, [])
    for index, keyword in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(keyword, str) or not keyword.strip():
            continue
        item_key = f"{_join(where, key)}[{index}]"
        trouble = keyword_problem(keyword, families)
        if trouble:
            checker.problem(item_key, f"{keyword!r}: {trouble}")
            continue
        normal = normalize_keyword(keyword)
        if normal in seen:
            checker.problem(
                item_key,
                f"{keyword!r} repeats item {seen[normal]} "
                f"({raw[seen[normal]]!r}); list each keyword once",
            )
        else:
            seen[normal] = index
    return keywords


def _examples(checker: _Checker, table: Mapping[str, Any], where: str) -> tuple[str, ...]:
    """A dimension's optional `examples`: phrases of a few words, none repeated."""
    if "examples" not in table:
        if "min_similarity" in table:
            checker.problem(
                _join(where, "min_similarity"),
                'has no examples to compare with: add  examples = ["...", "..."]',
            )
        return ()
    examples = checker.texts(table, "examples", where)
    seen: dict[str, int] = {}
    for index, example in enumerate(examples):
        item_key = f"{_join(where, 'examples')}[{index}]"
        words = normalize(example).split()
        if not MIN_EXAMPLE_WORDS <= len(words) <= MAX_EXAMPLE_WORDS:
            checker.problem(
                item_key,
                f"{example!r} has {len(words)} words; write a phrase of {MIN_EXAMPLE_WORDS} to "
                f"{MAX_EXAMPLE_WORDS} words, as a caller would say it",
            )
        plain = " ".join(words)
        if plain in seen:
            checker.problem(item_key, f"{example!r} repeats item {seen[plain]}; list each once")
        else:
            seen[plain] = index
    if "min_similarity" not in table:
        checker.missing(
            _join(where, "min_similarity"),
            where,
            "add a line like  min_similarity = 0.5  (how close an answer must come to an example)",
        )
    return examples


def _semantic(checker: _Checker, data: Mapping[str, Any]) -> Semantic:
    """The optional [semantic] table: window and stride in words, hint margin."""
    if "semantic" not in data:
        return Semantic()
    table = checker.table(data, "semantic")
    checker.unknown_keys(table, _SEMANTIC_KEYS, "semantic")
    default = Semantic()
    window = checker.whole_number(table, "window", "semantic", low=4, high=60) or default.window
    stride = checker.whole_number(table, "stride", "semantic", low=1, high=60) or default.stride
    if stride > window:
        checker.problem(
            "semantic.stride",
            f"is {stride}, longer than the window ({window}): words would be skipped",
        )
    margin = checker.fraction(table, "hint_margin", "semantic", low=0.0, high=0.5)
    return Semantic(window, stride, default.hint_margin if margin is None else margin)


def _parse_question(
    path: Path, data: dict[str, Any], checker: _Checker, *, with_model: bool = True
) -> QuestionRules:
    """Build a QuestionRules from a parsed file, recording every problem in `checker`."""
    checker.unknown_keys(data, _QUESTION_KEYS, "")
    question_id = checker.text(data, "id")
    if not _SAFE_NAME.fullmatch(path.stem):
        checker.problem(_FILE_KEY, "file names use only lowercase letters, digits, '-' and '_'")
    elif question_id and question_id != path.stem:
        checker.problem(
            "id",
            f"is {question_id!r} but the file is {path.name}: they must match (id = {path.stem!r})",
        )
    prompt = checker.text(data, "prompt", spoken=True)
    deeper = checker.texts(data, "deeper_probes", spoken=True)
    words = _word_families(checker, data)

    dimensions: dict[str, Dimension] = {}
    for name, table in checker.table(data, "dimensions").items():
        where = f"dimensions.{name}"
        if not _DIMENSION_NAME.fullmatch(name):
            # Names double as follow-up markers and feedback keys: keep them plain.
            checker.problem(where, "a dimension name uses only lowercase letters, digits and '_'")
        if not isinstance(table, dict):
            checker.problem(where, f"should be a table [{where}], found {_kind(table)}")
            continue
        checker.unknown_keys(table, _DIMENSION_KEYS, where)
        similarity = checker.fraction(table, "min_similarity", where, low=0.0, high=1.0)
        dimensions[name] = Dimension(
            name=name,
            label=checker.text(table, "label", where),
            keywords=_keywords(checker, table, "keywords", where, words),
            follow_ups=checker.texts(table, "follow_ups", where, spoken=True),
            suggestion=checker.text(
                table, "suggestion", where, limit=MAX_SUGGESTION_CHARS, sms=True
            ),
            praise=checker.text(table, "praise", where, limit=MAX_PRAISE_CHARS, sms=True),
            ignore=(_keywords(checker, table, "ignore", where, words) if "ignore" in table else ()),
            hints=(_keywords(checker, table, "hints", where, words) if "hints" in table else ()),
            disclaimers=(
                _keywords(checker, table, "disclaimers", where, words)
                if "disclaimers" in table
                else ()
            ),
            examples=_examples(checker, table, where),
            min_similarity=1.0 if similarity is None else similarity,
        )
    if "dimensions" in data and isinstance(data["dimensions"], dict) and not dimensions:
        checker.problem("dimensions", "has no dimensions: add at least one [dimensions.NAME]")

    probe_order = checker.texts(data, "probe_order")
    for index, name in enumerate(probe_order):
        if name not in dimensions:
            close = difflib.get_close_matches(name, list(dimensions), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            checker.problem(
                f"probe_order[{index}]", f"{name!r} is not a dimension in this file{hint}"
            )
        elif probe_order.index(name) != index:
            checker.problem(f"probe_order[{index}]", f"{name!r} is listed twice")
    left_out = [name for name in dimensions if name not in probe_order]
    if left_out and "probe_order" in data:
        checker.problem(
            "probe_order",
            "does not list "
            + ", ".join(map(repr, left_out))
            + ": every dimension must appear once",
        )

    negation_table = checker.table(data, "negation")
    checker.unknown_keys(negation_table, _NEGATION_KEYS, "negation")
    negation = Negation(
        words=_keywords(checker, negation_table, "words", "negation"),
        window=checker.whole_number(negation_table, "window", "negation", low=1, high=10) or 1,
        exceptions=(
            _keywords(checker, negation_table, "except", "negation")
            if "except" in negation_table
            else ()
        ),
        aims=(
            _keywords(checker, negation_table, "aims", "negation", words)
            if "aims" in negation_table
            else ()
        ),
    )
    if "window" not in negation_table:
        checker.missing("negation.window", "negation", "add a line like  window = 3")

    jargon = _jargon(checker, data, dimensions, words)

    feedback_table = checker.table(data, "feedback")
    checker.unknown_keys(feedback_table, _FEEDBACK_KEYS, "feedback")
    advice = {
        key: checker.text(feedback_table, key, "feedback", limit=MAX_SUGGESTION_CHARS, sms=True)
        for key in DEFAULT_ADVICE
        if key in feedback_table
    }
    feedback = FeedbackTexts(
        heading=checker.text(
            feedback_table, "heading", "feedback", limit=MAX_HEADING_CHARS, sms=True
        ),
        strengths_intro=checker.text(
            feedback_table, "strengths_intro", "feedback", limit=MAX_INTRO_CHARS, sms=True
        ),
        improve_intro=checker.text(
            feedback_table, "improve_intro", "feedback", limit=MAX_INTRO_CHARS, sms=True
        ),
        all_covered=checker.text(
            feedback_table, "all_covered", "feedback", limit=MAX_SUGGESTION_CHARS, sms=True
        ),
        nothing_heard=checker.text(
            feedback_table, "nothing_heard", "feedback", limit=MAX_NOTHING_HEARD_CHARS, sms=True
        ),
        **advice,
    )
    ordered = {name: dimensions[name] for name in probe_order if name in dimensions}
    return QuestionRules(
        id=question_id,
        prompt=prompt,
        dimensions=MappingProxyType(ordered),
        probe_order=probe_order,
        deeper_probes=deeper,
        negation=negation,
        feedback=feedback,
        words=MappingProxyType(words),
        jargon=jargon,
        semantic=_semantic(checker, data),
        learned=_learned(path, checker, data, tuple(ordered)) if with_model else None,
    )


def _learned(
    path: Path, checker: _Checker, data: Mapping[str, Any], names: tuple[str, ...]
) -> LearnedModel | None:
    """The optional [learned] table: `model`, a JSON file beside the rules file, and `tuned`, an
    optional safetensors file beside it (voice_app/tuned.py)."""
    if "learned" not in data:
        return None
    table = checker.table(data, "learned")
    checker.unknown_keys(table, _LEARNED_KEYS, "learned")
    name = checker.text(table, "model", "learned")
    if not name:
        return None
    if Path(name).name != name or not name.endswith(".json"):
        checker.problem("learned.model", f"{name!r}: name a .json file beside the rules file")
        return None
    try:
        model = load_model(path.parent / name, names)
    except RulesError as error:
        checker.problem("learned.model", f"{error.path}: {error.key}: {error.problem}")
        return None
    if "tuned" not in table:
        return model
    tuned_name = checker.text(table, "tuned", "learned")
    if Path(tuned_name).name != tuned_name or not tuned_name.endswith(".safetensors"):
        checker.problem(
            "learned.tuned", f"{tuned_name!r}: name a .safetensors file beside the rules file"
        )
        return model
    try:
        return replace(model, tuned=load_tuned(path.parent / tuned_name, names))
    except RulesError as error:
        checker.problem("learned.tuned", f"{error.path}: {error.key}: {error.problem}")
        return model


def _word_families(checker: _Checker, data: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """The optional [words] table: NAME = ["phrase", ...], used in keywords as {NAME}."""
    if "words" not in data:
        return {}
    table = checker.table(data, "words")
    families: dict[str, tuple[str, ...]] = {}
    for name in table:
        where = f"words.{name}"
        if not _DIMENSION_NAME.fullmatch(name):
            checker.problem(where, "a family name uses only lowercase letters, digits and '_'")
            continue
        if f"{{{name}}}" in PLACEHOLDERS:
            checker.problem(where, f"{{{name}}} is built in; choose another name")
            continue
        phrases = _keywords(checker, table, name, "words")
        for index, phrase in enumerate(phrases):
            nested = [w for w in phrase.split() if "{" in w and w not in FAMILY_PLACEHOLDERS]
            if nested:
                checker.problem(
                    f"{where}[{index}]",
                    f"{phrase!r}: a family may use only "
                    f"{' and '.join(FAMILY_PLACEHOLDERS)}, not {nested[0]}",
                )
        families[name] = phrases
    return families


def _jargon(
    checker: _Checker,
    data: Mapping[str, Any],
    dimensions: Mapping[str, Dimension],
    words: Mapping[str, tuple[str, ...]],
) -> Jargon | None:
    """The optional [jargon] table."""
    if "jargon" not in data:
        return None
    table = checker.table(data, "jargon")
    checker.unknown_keys(table, _JARGON_KEYS, "jargon")
    dimension = checker.text(table, "dimension", "jargon")
    if dimension and dimension not in dimensions:
        checker.problem("jargon.dimension", f"{dimension!r} is not a dimension in this file")
    limit = checker.whole_number(table, "max_unexplained", "jargon", low=0, high=20)
    if "max_unexplained" not in table:
        checker.missing("jargon.max_unexplained", "jargon", "add a line like  max_unexplained = 1")
    return Jargon(
        dimension=dimension,
        known=_keywords(checker, table, "known", "jargon") if "known" in table else (),
        terms=_keywords(checker, table, "terms", "jargon", words) if "terms" in table else (),
        max_unexplained=limit or 0,
        suggestion=checker.text(
            table, "suggestion", "jargon", limit=MAX_SUGGESTION_CHARS, sms=True
        ),
    )


def _check_name(kind: str, name: str, path: Path) -> None:
    """Refuse names that are not plain file names (they come from settings and bank files)."""
    if not _SAFE_NAME.fullmatch(name):
        raise RulesError(
            str(path),
            _FILE_KEY,
            f"{kind} name {name!r} must use only lowercase letters, digits, '-' and '_'",
        )


def _question_problems(
    path: Path, *, with_model: bool = True
) -> tuple[QuestionRules | None, list[RulesError]]:
    checker = _Checker(path)
    data = _read_toml(path, checker)
    if data is None:
        return None, checker.problems
    rules = _parse_question(path, data, checker, with_model=with_model)
    return (None if checker.problems else rules), checker.problems


def load_question(
    question_id: str, grammars_dir: Path = DEFAULT_GRAMMARS_DIR, *, with_model: bool = True
) -> QuestionRules:
    """Load and validate grammars/questions/<question_id>.toml; raises RulesError.

    `with_model=False` leaves out the learned judge (its file is not read): for training it.
    """
    path = Path(grammars_dir) / "questions" / f"{question_id}.toml"
    _check_name("question", question_id, path)
    rules, problems = _question_problems(path, with_model=with_model)
    if problems:
        raise problems[0]
    assert rules is not None  # no problems means the rules were built
    return rules


def _parse_bank(path: Path, data: dict[str, Any], checker: _Checker) -> QuestionBank:
    """Build a QuestionBank from a parsed file; questions must exist as files."""
    checker.unknown_keys(data, _BANK_KEYS, "")
    name = checker.text(data, "name")
    if not _SAFE_NAME.fullmatch(path.stem):
        checker.problem(_FILE_KEY, "file names use only lowercase letters, digits, '-' and '_'")
    elif name and name != path.stem:
        checker.problem(
            "name",
            f"is {name!r} but the file is {path.name}: they must match (name = {path.stem!r})",
        )
    question_ids = checker.texts(data, "questions")
    questions_dir = path.parent.parent / "questions"
    for index, question_id in enumerate(question_ids):
        key = f"questions[{index}]"
        if not _SAFE_NAME.fullmatch(question_id):
            checker.problem(
                key,
                f"{question_id!r} is not a question id (lowercase letters, digits, '-' and '_')",
            )
        elif not (questions_dir / f"{question_id}.toml").is_file():
            known = ", ".join(sorted(p.stem for p in questions_dir.glob("*.toml"))) or "none"
            checker.problem(
                key,
                f"no question {question_id!r}: there is no "
                f"questions/{question_id}.toml (known: {known})",
            )
        elif question_ids.index(question_id) != index:
            checker.problem(key, f"{question_id!r} is listed twice")
    max_follow_ups = checker.whole_number(data, "max_follow_ups", low=0, high=MAX_FOLLOW_UPS_LIMIT)
    return QuestionBank(name=name, question_ids=question_ids, max_follow_ups=max_follow_ups)


def _bank_problems(path: Path) -> tuple[QuestionBank | None, list[RulesError]]:
    checker = _Checker(path)
    data = _read_toml(path, checker)
    if data is None:
        return None, checker.problems
    bank = _parse_bank(path, data, checker)
    return (None if checker.problems else bank), checker.problems


def load_bank(name: str, grammars_dir: Path = DEFAULT_GRAMMARS_DIR) -> QuestionBank:
    """Load and check grammars/banks/<name>.toml (its questions must exist); raises RulesError."""
    path = Path(grammars_dir) / "banks" / f"{name}.toml"
    _check_name("bank", name, path)
    bank, problems = _bank_problems(path)
    if problems:
        raise problems[0]
    assert bank is not None  # no problems means the bank was built
    return bank


def _phrase_problems(path: Path) -> list[RulesError]:
    """Problems of one Vosk phrase list: a JSON list of non-empty lowercase strings."""
    checker = _Checker(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        checker.problem(f"line {exc.lineno}", f"not valid JSON: {exc.msg}")
        return checker.problems
    except (OSError, UnicodeDecodeError) as exc:
        checker.problem(_FILE_KEY, f"cannot be read: {exc}")
        return checker.problems
    if not isinstance(data, list) or not data:
        checker.problem(_FILE_KEY, 'should be a non-empty JSON list of phrases, like ["yes", "no"]')
        return checker.problems
    for index, phrase in enumerate(data):
        if not isinstance(phrase, str) or not phrase.strip():
            checker.problem(f"[{index}]", "should be a non-empty phrase in quotes")
        elif phrase != phrase.lower():
            # Vosk's vocabulary is lowercase: a capitalised word is unknown and never recognised.
            checker.problem(f"[{index}]", f"{phrase!r} should be lowercase, as Vosk writes words")
    return checker.problems


def check_grammars(grammars_dir: Path = DEFAULT_GRAMMARS_DIR) -> list[str]:
    """Every problem in the question, bank and phrase files, as readable lines; [] when all good."""
    root = Path(grammars_dir)
    problems: list[RulesError] = []
    question_files = sorted((root / "questions").glob("*.toml"))
    if not question_files:
        problems.append(RulesError(str(root / "questions"), _FILE_KEY, "no question files"))
    for path in question_files:
        problems.extend(_question_problems(path)[1])
    bank_files = sorted((root / "banks").glob("*.toml"))
    if not bank_files:
        problems.append(RulesError(str(root / "banks"), _FILE_KEY, "no question bank files"))
    for path in bank_files:
        problems.extend(_bank_problems(path)[1])
    for path in sorted((root / "phrases").glob("*.json")):
        problems.extend(_phrase_problems(path))
    return [str(problem) for problem in problems]


def question_texts(rules: QuestionRules) -> list[str]:
    """Every text the line speaks for one question: its prompt, follow-ups and deeper probes."""
    texts = [rules.prompt]
    for dimension in rules.dimensions.values():
        texts.extend(dimension.follow_ups)
    texts.extend(rules.deeper_probes)
    return texts


def spoken_texts(bank: QuestionBank, grammars_dir: Path = DEFAULT_GRAMMARS_DIR) -> list[str]:
    """Every text the line speaks for a bank's questions (prompts, follow-ups, deeper probes)."""
    texts = [
        text
        for question_id in bank.question_ids
        for text in question_texts(load_question(question_id, grammars_dir))
    ]
    return list(dict.fromkeys(texts))  # once each, in order of first use
