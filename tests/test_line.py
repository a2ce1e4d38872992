"""The store side of the practice line: a rubric analysis kept with the call comes back whole."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from voice_app import flow, interviewer
from voice_app.config import load_settings
from voice_app.line import decode_analysis, encode_analysis
from voice_app.script import Script, load_script

CORPUS = Path(__file__).parent / "corpus" / "accomplishment_dev.toml"


@pytest.fixture(scope="module")
def script() -> Script:
    return load_script(load_settings({}, environ={}))


def corpus_answers() -> list[str]:
    answers = tomllib.loads(CORPUS.read_text(encoding="utf-8"))["answers"]
    return [str(answer["text"]) for answer in answers]


def known(script: Script, answers: list[str]) -> flow.KnownAnalysis:
    rules = script.questions[0]
    return flow.KnownAnalysis(
        rules.id, flow.answers_key(answers), interviewer.analyze(rules, answers)
    )


def test_every_corpus_answer_analysed_comes_back_from_the_store_the_same(script: Script) -> None:
    texts = corpus_answers()
    conversations = [[text] for text in texts] + [texts[:3], texts[3:5]]
    for answers in conversations:
        analysis = known(script, answers)

        stored = encode_analysis(analysis)

        assert stored is not None
        assert decode_analysis(stored) == analysis


def test_a_stored_analysis_with_other_fields_is_not_trusted(script: Script) -> None:
    stored = encode_analysis(known(script, corpus_answers()[:1]))
    assert stored is not None
    newer = {**stored, "analysis": {**stored["analysis"], "semantic_score": 0.5}}
    older = {
        **stored,
        "analysis": {k: v for k, v in stored["analysis"].items() if k != "words_heard"},
    }

    assert decode_analysis(newer) is None
    assert decode_analysis(older) is None
    assert decode_analysis(None) is None
    assert decode_analysis({"analysis": "garbled"}) is None
