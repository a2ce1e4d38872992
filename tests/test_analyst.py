"""Rubric analyses in their own process: the same results, and a dead child costs nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import CALLER, FakeRecordings, FakeTexts, Twilio
from voice_app import interviewer
from voice_app.analyst import Analyst
from voice_app.app import create_app, get_services
from voice_app.asr.scripted import embed_transcript
from voice_app.config import load_settings
from voice_app.embedding import load_encoder, model_dir_of
from voice_app.rules import QuestionRules
from voice_app.script import load_script
from voice_app.simulator.call import silence_wav
from voice_app.store import CallRow

ANSWERS = [
    ["um we did a big project last year and it went well i think"],
    [
        "i led the move of our billing system to a new platform and we cut costs by twenty percent",
        "i wrote the migration plan myself and i trained the support team",
    ],
]


@pytest.fixture(scope="module")
def rules() -> QuestionRules:
    return load_script(load_settings({}, environ={})).questions[0]


@pytest.fixture
def analyst(rules: QuestionRules) -> Iterator[Analyst]:
    analyst = Analyst(load_settings({}, environ={}).grammars_path, [rules.id])
    analyst.start()
    started(analyst, rules)
    yield analyst
    analyst.stop()


def started(analyst: Analyst, rules: QuestionRules) -> None:
    """Wait until the child answers (it declines while it starts)."""
    deadline = time.monotonic() + 60
    while analyst.analyze(rules, ["warm up"]) is None and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize("answers", ANSWERS)
def test_the_analysis_process_works_out_what_this_process_would(
    analyst: Analyst, rules: QuestionRules, answers: list[str]
) -> None:
    assert analyst.analyze(rules, answers) == interviewer.analyze(rules, answers)


def test_a_dead_analysis_process_gives_no_analysis_then_is_replaced(
    analyst: Analyst, rules: QuestionRules
) -> None:
    assert analyst.analyze(rules, ANSWERS[0]) is not None
    pool = analyst._running_pool()
    for process in list(pool._processes.values()):  # type: ignore[attr-defined]
        process.kill()
        process.join(10)

    assert analyst.analyze(rules, ANSWERS[0]) is None  # the job goes on without it
    started(analyst, rules)  # a new child
    assert analyst.analyze(rules, ANSWERS[1]) == interviewer.analyze(rules, ANSWERS[1])


def test_with_background_threads_the_web_process_does_no_analysis(
    app_config: dict[str, Any],
    recordings: FakeRecordings,
    texts: FakeTexts,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def analyze(*_args: object) -> None:
        raise AssertionError("analysed in the web process")

    call = "CA" + "7" * 32
    url = "https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE" + "7" * 32
    recordings.audio[url] = embed_transcript(silence_wav(3), ANSWERS[1][0])
    app = create_app({**app_config, "workers": 2}, recordings=recordings, text_sender=texts)
    services = get_services(app)
    assert services.tasks.analyst is not None
    started(services.tasks.analyst, services.script.questions[0])
    monkeypatch.setattr(interviewer, "analyze", analyze)  # from here on, in this process
    params = {"CallSid": call, "From": CALLER, "CallStatus": "in-progress"}
    try:
        twilio = Twilio(app.test_client())
        twilio.twiml("/voice/incoming", **params)
        twilio.twiml("/voice/answer?turn=0", **params, RecordingUrl=url, Digits="#")
        twilio.twiml("/voice/consent", **params, Digits="1")
        record = None
        deadline = time.monotonic() + 60
        attempt = 1
        while record is None and time.monotonic() < deadline:
            root = twilio.twiml(f"/voice/wait?turn=0&attempt={attempt}", **params)
            record = root.find("./Record")
            attempt += 1
            time.sleep(0.1)
        assert record is not None and "turn=1" in record.get("action", "")
        with services.store.reading() as session:
            stored = session.scalars(select(CallRow.analysis)).one()
        assert stored is not None
    finally:
        services.worker.stop()
        services.store.dispose()


def test_with_the_semantic_signal_on_the_analysis_process_judges_by_meaning_too(
    rules: QuestionRules,
) -> None:
    encoder = load_encoder(load_settings({"semantic": True}, environ={}))
    assert encoder is not None
    model_dir = model_dir_of(encoder)
    assert model_dir is not None, "the packaged model's folder is known, for another process"
    answer = ["our customers waited far less and the team was much happier afterwards"]
    with_meaning = interviewer.analyze(rules, answer, encoder)
    assert with_meaning != interviewer.analyze(rules, answer)  # keywords alone judge it otherwise

    analyst = Analyst(load_settings({}, environ={}).grammars_path, [rules.id], model_dir)
    analyst.start()
    try:
        started(analyst, rules)
        there = analyst.analyze(rules, answer)
        assert there is not None
        # The same judgement; similarities agree to float precision (batches differ in padding).
        for name, here in with_meaning.dimensions.items():
            found = there.dimensions[name]
            assert (found.present, found.evidence) == (here.present, here.evidence), name
            assert found.similarity == pytest.approx(here.similarity, abs=1e-4), name
            assert found.probability == pytest.approx(here.probability, abs=1e-4), name
    finally:
        analyst.stop()
