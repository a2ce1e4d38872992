"""Rules files as their editor meets them: the shipped ones load, broken ones say file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from voice_app.errors import RulesError
from voice_app.rules import (
    MAX_SPOKEN_CHARS,
    check_grammars,
    load_bank,
    load_question,
    spoken_texts,
)

RUBRIC = (
    "results", "contribution", "context", "values", "helping_others", "company_goals",
    "above_and_beyond", "reflection",
)

# A small valid question file; each test below breaks one thing in it, as an editor might.
QUESTION = '''\
id = "teamwork"
prompt = "Tell me about a time you worked in a team."
probe_order = ["results", "contribution"]
deeper_probes = ["What would you do differently?"]

[dimensions.results]
label = "results you can show"
keywords = ["{number} percent", "reduced", "volunteer*"]
follow_ups = ["What changed because of it?"]
suggestion = "put a number on the result."
praise = "clear results"

[dimensions.contribution]
label = "what you did yourself"
keywords = ["i led", "my part"]
follow_ups = ["What was your own part?", "Which decisions were yours?"]
suggestion = "say what you did yourself."
praise = "your own part"

[negation]
words = ["not", "never"]
window = 3
except = ["not only"]

[feedback]
heading = "Practice feedback."
strengths_intro = "What worked:"
improve_intro = "Next time:"
all_covered = "You covered it all."
nothing_heard = "We did not catch an answer. Call again."
too_short = "Say more."
'''

BANK = '''\
name = "team"
questions = ["teamwork"]
max_follow_ups = 2
'''


def write_grammars(root: Path, question: str = QUESTION, bank: str = BANK) -> Path:
    (root / "questions").mkdir(parents=True)
    (root / "banks").mkdir()
    (root / "questions" / "teamwork.toml").write_text(question, encoding="utf-8")
    (root / "banks" / "team.toml").write_text(bank, encoding="utf-8")
    return root


def test_shipped_rules_validate() -> None:
    assert check_grammars() == []


def test_shipped_question_has_the_eight_dimension_rubric() -> None:
    rules = load_question("accomplishment")
    assert set(rules.dimensions) == set(RUBRIC)
    assert sorted(rules.probe_order) == sorted(RUBRIC)
    assert list(rules.dimensions) == list(rules.probe_order)
    assert rules.prompt == (
        "What do you consider to be the most important accomplishment in your career to date?"
    )
    for dimension in rules.dimensions.values():
        assert len(dimension.follow_ups) >= 2, f"{dimension.name}: vary the phrasing"
    assert rules.deeper_probes


def test_shipped_questions_each_have_their_own_rubric() -> None:
    folder = Path(__file__).parent.parent / "grammars" / "questions"
    questions = {path.stem for path in folder.glob("*.toml")}
    assert {"accomplishment", "failure", "conflict", "leadership", "hard_decision"} <= questions
    prompts = set()
    for question_id in questions:
        rules = load_question(question_id)
        assert len(rules.dimensions) >= 5, question_id
        assert all(len(d.follow_ups) >= 2 for d in rules.dimensions.values()), question_id
        prompts.add(rules.prompt)
    assert len(prompts) == len(questions)
    assert set(load_question("failure").dimensions) != set(load_question("conflict").dimensions)


def test_the_example_career_centre_bank_asks_several_questions() -> None:
    bank = load_bank("career_centre")
    assert bank.question_ids[0] == "accomplishment" and len(bank.question_ids) >= 5
    assert bank.max_follow_ups == 1
    texts = spoken_texts(bank)
    assert load_question("conflict").prompt in texts


def test_word_families_ignore_and_jargon_load(tmp_path: Path) -> None:
    extra = QUESTION.replace(
        'keywords = ["i led", "my part"]',
        'keywords = ["i led", "my part", "{teach} {people}", "i {action}"]\nignore = ["i led on"]',
    ) + FAMILIES
    root = write_grammars(tmp_path, extra)
    assert check_grammars(root) == []
    rules = load_question("teamwork", root)
    assert rules.words["people"] == ("the team", "new start*")
    assert rules.dimensions["contribution"].ignore == ("i led on",)
    assert rules.jargon is not None and rules.jargon.max_unexplained == 1
    assert rules.feedback.too_short == "Say more."


FAMILIES = '''
[words]
people = ["the team", "new start*"]
teach = ["trained", "coached"]

[jargon]
dimension = "results"
max_unexplained = 1
known = ["ceo"]
suggestion = "explain {terms} in plain words."
'''


@pytest.mark.parametrize(
    ("old", "new", "key", "words"),
    [
        pytest.param('"i led", "my part"', '"i led", "{teach} {peeple}"',
                     "dimensions.contribution.keywords[1]", "not a placeholder",
                     id="unknown-family"),
        pytest.param('people = ["the team", "new start*"]', 'people = ["the {teach}"]',
                     "words.people[0]", "may use only", id="family-inside-family"),
        pytest.param('dimension = "results"', 'dimension = "reslts"', "jargon.dimension",
                     "not a dimension", id="jargon-unknown-dimension"),
        pytest.param("max_unexplained = 1", "max_unexplained = -2", "jargon.max_unexplained",
                     "between", id="jargon-negative"),
        pytest.param('"Say more."', '"' + "more " * 40 + '"', "feedback.too_short",
                     "at most 150", id="advice-too-long"),
    ],
)
def test_broken_families_and_jargon_name_file_and_key(
    tmp_path: Path, old: str, new: str, key: str, words: str
) -> None:
    text = QUESTION + FAMILIES
    text = text.replace('"i led", "my part"', '"i led", "my part", "{teach} {people}"')
    assert old in text
    root = write_grammars(tmp_path, text.replace(old, new, 1))
    problems = check_grammars(root)
    assert any(f"teamwork.toml: {key}: " in p and words in p for p in problems), problems


def test_shipped_bank_asks_the_accomplishment_question() -> None:
    bank = load_bank("default")
    assert bank.question_ids == ("accomplishment",)
    assert bank.max_follow_ups is None  # the setting decides


def test_spoken_texts_cover_everything_the_line_says(tmp_path: Path) -> None:
    texts = spoken_texts(load_bank("default"))
    rules = load_question("accomplishment")
    assert texts[0] == rules.prompt
    assert set(rules.deeper_probes) <= set(texts)
    for dimension in rules.dimensions.values():
        assert set(dimension.follow_ups) <= set(texts)
    assert len(texts) == len(set(texts))
    assert all(len(text) <= MAX_SPOKEN_CHARS for text in texts)
    own = write_grammars(tmp_path)
    assert spoken_texts(load_bank("team", own), own) == [
        "Tell me about a time you worked in a team.",
        "What changed because of it?",
        "What was your own part?",
        "Which decisions were yours?",
        "What would you do differently?",
    ]


def test_a_valid_file_loads_with_its_parts(tmp_path: Path) -> None:
    root = write_grammars(tmp_path)
    assert check_grammars(root) == []
    rules = load_question("teamwork", root)
    assert rules.dimensions["contribution"].follow_ups == (
        "What was your own part?", "Which decisions were yours?"
    )
    assert rules.negation.window == 3 and rules.negation.exceptions == ("not only",)
    assert load_bank("team", root).max_follow_ups == 2


BROKEN_QUESTIONS = [
    pytest.param('label = "results you can show"', 'label = "results you can show', "line 7",
                 "not valid TOML", id="bad-toml"),
    pytest.param('label = "what you did yourself"\n', "", "dimensions.contribution.label",
                 "missing", id="missing-key"),
    pytest.param('keywords = ["i led", "my part"]', 'keywords = "i led"',
                 "dimensions.contribution.keywords", "should be a list", id="wrong-type"),
    pytest.param("window = 3", "window = true", "negation.window", "whole number",
                 id="bool-is-not-a-number"),
    pytest.param('keywords = ["i led", "my part"]', "keywords = []",
                 "dimensions.contribution.keywords", "is empty", id="empty-keywords"),
    pytest.param('follow_ups = ["What changed because of it?"]', "follow_ups = []",
                 "dimensions.results.follow_ups", "is empty", id="empty-follow-ups"),
    pytest.param('["results", "contribution"]', '["results", "contribution", "resuts"]',
                 "probe_order[2]", "did you mean 'results'", id="probe-order-unknown"),
    pytest.param('["results", "contribution"]', '["results"]', "probe_order",
                 "'contribution'", id="probe-order-missing-one"),
    pytest.param('["results", "contribution"]', '["results", "contribution", "results"]',
                 "probe_order[2]", "twice", id="probe-order-twice"),
    pytest.param('["i led", "my part"]', '["i led", "my part", "I led."]',
                 "dimensions.contribution.keywords[2]", "repeats item 0", id="duplicate-keyword"),
    pytest.param('["not", "never"]', '["not", "never", "didn\'t", "didnt"]',
                 "negation.words[3]", "repeats item 2", id="duplicate-after-apostrophe"),
    pytest.param('"What changed because of it?"', '"' + "So, " * 90 + 'what changed?"',
                 "dimensions.results.follow_ups[0]", f"at most {MAX_SPOKEN_CHARS}",
                 id="follow-up-too-long"),
    pytest.param('["What would you do differently?"]', '["' + "Well " * 60 + '"]',
                 "deeper_probes[0]", "characters", id="deeper-probe-too-long"),
    pytest.param('"{number} percent"', '"{amount} percent"', "dimensions.results.keywords[0]",
                 "not a placeholder", id="unknown-placeholder"),
    pytest.param('"volunteer*"', '"*teer"', "dimensions.results.keywords[2]", "star",
                 id="star-not-at-end"),
    pytest.param('"reduced"', '"um"', "dimensions.results.keywords[1]", "no words left",
                 id="keyword-only-filler"),
    pytest.param('except = ["not only"]', 'except = ["not only"]\naims = ["hoping to", "{plans}"]',
                 "negation.aims[1]", "not a placeholder", id="aims-unknown-placeholder"),
    pytest.param('praise = "clear results"', 'praise = "clear results \U0001f600"',
                 "dimensions.results.praise", "cannot carry", id="emoji-in-text-message"),
    pytest.param('suggestion = "put a number on the result."', 'suggestion = "' + "x" * 151 + '"',
                 "dimensions.results.suggestion", "at most 150", id="suggestion-too-long"),
    pytest.param('follow_ups = ["What was', 'folow_ups = ["What was',
                 "dimensions.contribution.folow_ups", "did you mean 'follow_ups'",
                 id="misspelt-key"),
    pytest.param('id = "teamwork"', 'id = "team-work"', "id", "teamwork.toml",
                 id="id-differs-from-file-name"),
    pytest.param("[feedback]", "[feedbak]", "feedback", "missing", id="missing-table"),
    pytest.param("[dimensions.results]", "[dimensions.Results]", "dimensions.Results",
                 "lowercase", id="dimension-name-not-plain"),
]


@pytest.mark.parametrize(("old", "new", "key", "words"), BROKEN_QUESTIONS)
def test_a_broken_question_file_names_file_and_key(
    tmp_path: Path, old: str, new: str, key: str, words: str
) -> None:
    assert old in QUESTION
    root = write_grammars(tmp_path, QUESTION.replace(old, new, 1))
    with pytest.raises(RulesError) as caught:
        load_question("teamwork", root)
    problems = check_grammars(root)
    errors = [caught.value, *(p for p in problems)]
    assert caught.value.path.endswith("teamwork.toml")
    assert any(f"teamwork.toml: {key}: " in str(e) and words in str(e) for e in errors), problems


BROKEN_BANKS = [
    pytest.param('["teamwork"]', '["teamwork", "leadership"]', "questions[1]",
                 "no question 'leadership'", id="unknown-question"),
    pytest.param('["teamwork"]', "[]", "questions", "is empty", id="no-questions"),
    pytest.param("max_follow_ups = 2", "max_follow_ups = true", "max_follow_ups",
                 "whole number", id="max-follow-ups-bool"),
    pytest.param("max_follow_ups = 2", "max_follow_ups = -1", "max_follow_ups", "between",
                 id="max-follow-ups-negative"),
    pytest.param('name = "team"', 'name = "teams"', "name", "team.toml", id="name-mismatch"),
    pytest.param('["teamwork"]', '["../teamwork"]', "questions[0]", "not a question id",
                 id="path-in-question-id"),
    pytest.param("max_follow_ups = 2", "max_followups = 2", "max_followups",
                 "did you mean 'max_follow_ups'", id="misspelt-key"),
]


@pytest.mark.parametrize(("old", "new", "key", "words"), BROKEN_BANKS)
def test_a_broken_bank_names_file_and_key(
    tmp_path: Path, old: str, new: str, key: str, words: str
) -> None:
    assert old in BANK
    root = write_grammars(tmp_path, bank=BANK.replace(old, new, 1))
    with pytest.raises(RulesError) as caught:
        load_bank("team", root)
    assert caught.value.path.endswith("team.toml")
    assert caught.value.key == key
    assert words in caught.value.problem
    assert any(f"team.toml: {key}: " in p for p in check_grammars(root))


def test_a_missing_question_file_is_named(tmp_path: Path) -> None:
    root = write_grammars(tmp_path)
    with pytest.raises(RulesError) as caught:
        load_question("leadership", root)
    assert caught.value.path.endswith("leadership.toml")
    assert "teamwork" in caught.value.problem  # lists what does exist


def test_names_that_are_not_file_names_are_refused(tmp_path: Path) -> None:
    root = write_grammars(tmp_path)
    with pytest.raises(RulesError):
        load_question("../banks/team", root)
    with pytest.raises(RulesError):
        load_bank("Team Bank", root)


def test_bad_toml_reports_its_line(tmp_path: Path) -> None:
    root = write_grammars(tmp_path, QUESTION.replace("window = 3", "window = 3 3"))
    with pytest.raises(RulesError) as caught:
        load_question("teamwork", root)
    line = QUESTION.splitlines().index("window = 3") + 1
    assert caught.value.key == f"line {line}"


@pytest.mark.parametrize(
    ("content", "key", "words"),
    [
        ('["yes", "no",]', "line 1", "not valid JSON"),
        ('{"yes": 1}', "(file)", "JSON list"),
        ('["yes", 3]', "[1]", "non-empty phrase"),
        ('["yes", "No"]', "[1]", "lowercase"),
    ],
)
def test_vosk_phrase_lists_are_checked(
    tmp_path: Path, content: str, key: str, words: str
) -> None:
    root = write_grammars(tmp_path)
    (root / "phrases").mkdir()
    (root / "phrases" / "keypad.json").write_text('["yes", "no", "[unk]"]', encoding="utf-8")
    assert check_grammars(root) == []
    (root / "phrases" / "keypad.json").write_text(content, encoding="utf-8")
    problems = check_grammars(root)
    assert len(problems) == 1
    assert f"keypad.json: {key}: " in problems[0] and words in problems[0]


def test_check_grammars_reports_every_problem_not_just_the_first(tmp_path: Path) -> None:
    broken = QUESTION.replace("keywords = []", "").replace(
        'praise = "clear results"', "praise = 3"
    ).replace('"i led", "my part"', '"i led", "i led"')
    root = write_grammars(tmp_path, broken)
    problems = check_grammars(root)
    assert any("dimensions.results.praise" in p for p in problems)
    assert any("dimensions.contribution.keywords[1]" in p for p in problems)


def test_hints_are_optional_and_checked_like_keywords(tmp_path: Path) -> None:
    import shutil

    from voice_app.rules import check_grammars, load_question

    shipped = load_question("accomplishment")
    assert shipped.dimensions["results"].hints
    assert not shipped.dimensions["above_and_beyond"].hints
    source = Path(__file__).resolve().parent.parent / "grammars"
    copy = tmp_path / "grammars"
    shutil.copytree(source, copy)
    path = copy / "questions" / "accomplishment.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('hints = [\n    "now",', 'hints = [\n    "{nowt}",', 1),
                    encoding="utf-8")
    problems = check_grammars(copy)
    assert any("dimensions.results.hints[0]" in p and "{nowt}" in p for p in problems), problems


def test_disclaimers_are_optional_and_checked_like_keywords(tmp_path: Path) -> None:
    import shutil

    from voice_app.rules import check_grammars, load_question

    shipped = load_question("accomplishment")
    assert "too early to {tell}" in shipped.dimensions["results"].disclaimers
    assert not shipped.dimensions["values"].disclaimers
    copy = tmp_path / "grammars"
    shutil.copytree(Path(__file__).resolve().parent.parent / "grammars", copy)
    path = copy / "questions" / "accomplishment.toml"
    text = path.read_text(encoding="utf-8")
    broken = text.replace('"too early to {tell}"', '"too early to {tel}"', 1)
    path.write_text(broken, encoding="utf-8")
    problems = check_grammars(copy)
    named = [p for p in problems if "dimensions.results.disclaimers[0]" in p and "{tel}" in p]
    assert named, problems


EXAMPLES = '''
examples = ["the waiting time came down from hours to minutes", "sales went up a lot that year"]
min_similarity = 0.5
'''
SEMANTIC = '''
[semantic]
window = 16
stride = 8
hint_margin = 0.05
'''


def test_examples_and_the_semantic_table_load(tmp_path: Path) -> None:
    text = QUESTION.replace('praise = "clear results"\n', 'praise = "clear results"' + EXAMPLES)
    root = write_grammars(tmp_path, text + SEMANTIC)
    rules = load_question("teamwork", root)
    assert rules.dimensions["results"].examples[1] == "sales went up a lot that year"
    assert rules.dimensions["results"].min_similarity == 0.5
    assert not rules.dimensions["contribution"].examples  # optional per dimension
    assert rules.uses_examples
    assert (rules.semantic.window, rules.semantic.stride, rules.semantic.hint_margin) == (
        16, 8, 0.05,
    )
    plain = load_question("teamwork", write_grammars(tmp_path / "plain"))
    assert not plain.uses_examples


@pytest.mark.parametrize(
    ("old", "new", "key", "words"),
    [
        pytest.param('"sales went up a lot that year"', '"went up"',
                     "dimensions.results.examples[1]", "4 to 30 words", id="example-too-short"),
        pytest.param('"sales went up a lot that year"', "3",
                     "dimensions.results.examples[1]", "text in quotes", id="example-not-text"),
        pytest.param('"sales went up a lot that year"', '"The waiting time came down, from hours '
                     'to minutes!"', "dimensions.results.examples[1]", "repeats item 0",
                     id="example-repeated"),
        pytest.param("min_similarity = 0.5", "min_similarity = 1.5",
                     "dimensions.results.min_similarity", "between", id="similarity-above-one"),
        pytest.param("min_similarity = 0.5", 'min_similarity = "high"',
                     "dimensions.results.min_similarity", "a number", id="similarity-text"),
        pytest.param("min_similarity = 0.5", "", "dimensions.results.min_similarity",
                     "missing", id="similarity-missing"),
        pytest.param("examples = [", "exemples = [", "dimensions.results.min_similarity",
                     "no examples", id="similarity-without-examples"),
        pytest.param("stride = 8", "stride = 30", "semantic.stride", "longer than the window",
                     id="stride-past-window"),
        pytest.param("hint_margin = 0.05", "hint_margin = 2", "semantic.hint_margin", "between",
                     id="margin-too-big"),
    ],
)
def test_a_bad_example_list_names_file_and_key(
    tmp_path: Path, old: str, new: str, key: str, words: str
) -> None:
    text = QUESTION.replace('praise = "clear results"\n', 'praise = "clear results"' + EXAMPLES)
    text += SEMANTIC
    assert old in text
    root = write_grammars(tmp_path, text.replace(old, new, 1))
    problems = check_grammars(root)
    assert any(f"teamwork.toml: {key}: " in p and words in p for p in problems), problems
    with pytest.raises(RulesError):
        load_question("teamwork", root)
