"""Background work: it survives restarts, retries what can be retried, and texts once per call."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.test import EnvironBuilder

from tests.conftest import CALLER, PUBLIC_URL, FakeRecordings, FakeTexts, Twilio, heard
from voice_app import interviewer
from voice_app.app import create_app, get_services
from voice_app.asr.scripted import embed_transcript
from voice_app.errors import RecordingFetchError
from voice_app.simulator.call import silence_wav
from voice_app.store import CallRow, JobRow, OutboxRow, Store, TurnRow
from voice_app.worker import RUNNING, Job, JobKind, RetryLater, Worker, enqueue

CALL = "CA" + "4" * 32
RECORDING = "https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE" + "5" * 32
ANSWER = "i rebuilt the returns process and we cut refund time by half"


def params(**extra: str) -> dict[str, str]:
    return {
        "CallSid": CALL,
        "From": CALLER,
        "To": "+15555550199",
        "CallStatus": "in-progress",
        **extra,
    }


class Apps:
    """Builds apps on one database, as successive server processes would be."""

    def __init__(self, config: dict[str, Any], recordings: FakeRecordings, texts: FakeTexts):
        self.config = config
        self.recordings = recordings
        self.texts = texts
        self.built: list[Flask] = []

    def start(self) -> Flask:
        app = create_app(self.config, recordings=self.recordings, text_sender=self.texts)
        self.built.append(app)
        return app

    def stop(self, app: Flask) -> None:
        get_services(app).worker.stop()
        get_services(app).store.dispose()


@pytest.fixture
def apps(
    app_config: dict[str, Any], recordings: FakeRecordings, texts: FakeTexts
) -> Iterator[Apps]:
    recordings.audio[RECORDING] = embed_transcript(silence_wav(3), ANSWER)
    factory = Apps(app_config, recordings, texts)
    yield factory
    for app in factory.built:
        factory.stop(app)


def answer_first_question(twilio: Twilio) -> None:
    twilio.twiml("/voice/incoming", **params())
    twilio.twiml("/voice/answer?turn=0", **params(RecordingUrl=RECORDING, Digits="#"))
    twilio.twiml("/voice/consent", **params(Digits="1"))


def test_a_restart_between_two_webhooks_loses_nothing(apps: Apps) -> None:
    first = apps.start()
    answer_first_question(Twilio(first.test_client()))
    apps.stop(first)  # the process dies before the transcription ran

    second = apps.start()
    get_services(second).worker.drain()
    root = Twilio(second.test_client()).twiml("/voice/wait?turn=0&attempt=2", **params())

    record = root.find("./Record")
    assert record is not None and "turn=1" in record.get("action", "")
    with get_services(second).store.transaction() as session:
        turn = session.scalars(select(TurnRow).where(TurnRow.number == 0)).one()
        assert turn.transcript == ANSWER


def test_a_job_whose_process_died_mid_run_is_picked_up_again(apps: Apps) -> None:
    app = apps.start()
    services = get_services(app)
    answer_first_question(Twilio(app.test_client()))
    with services.store.transaction() as session:
        job = session.scalars(select(JobRow).where(JobRow.kind == "transcribe")).one()
        job.state, job.lease_until = RUNNING, time.time() - 1  # claimed by a dead process

    services.worker.drain()

    with services.store.transaction() as session:
        assert session.scalars(select(TurnRow)).first().transcript == ANSWER  # type: ignore[union-attr]


def test_background_threads_do_the_work_while_the_caller_holds(
    app_config: dict[str, Any], recordings: FakeRecordings, texts: FakeTexts
) -> None:
    recordings.audio[RECORDING] = embed_transcript(silence_wav(3), ANSWER)
    app = create_app({**app_config, "workers": 2}, recordings=recordings, text_sender=texts)
    try:
        twilio = Twilio(app.test_client())
        answer_first_question(twilio)
        deadline = time.monotonic() + 30
        record = None
        attempt = 1
        while record is None and time.monotonic() < deadline:
            root = twilio.twiml(f"/voice/wait?turn=0&attempt={attempt}", **params())
            record = root.find("./Record")
            attempt += 1
            time.sleep(0.05)
        assert record is not None and "turn=1" in record.get("action", "")
    finally:
        get_services(app).worker.stop()
        get_services(app).store.dispose()


class FlakyRecordings(FakeRecordings):
    """Fails a number of times, as Twilio may ("not ready yet") just after a recording ends."""

    def __init__(self, failures: int, *, retryable: bool = True) -> None:
        super().__init__()
        self.failures = failures
        self.retryable = retryable

    def fetch(self, recording_url: str) -> bytes:
        if self.failures > 0:
            self.failures -= 1
            raise RecordingFetchError("recording unavailable", retryable=self.retryable)
        return super().fetch(recording_url)


def test_a_recording_not_ready_yet_is_fetched_again(
    app_config: dict[str, Any], texts: FakeTexts
) -> None:
    recordings = FlakyRecordings(failures=2)
    recordings.audio[RECORDING] = embed_transcript(silence_wav(3), ANSWER)
    app = create_app(app_config, recordings=recordings, text_sender=texts)
    services = get_services(app)
    try:
        answer_first_question(Twilio(app.test_client()))
        services.worker.drain()
        with services.store.transaction() as session:
            assert session.scalars(select(TurnRow)).one().transcript == ANSWER
    finally:
        services.store.dispose()


def test_a_recording_that_cannot_be_fetched_lets_the_call_move_on_with_an_apology(
    app_config: dict[str, Any], texts: FakeTexts
) -> None:
    recordings = FlakyRecordings(failures=1, retryable=False)
    app = create_app(app_config, recordings=recordings, text_sender=texts)
    services = get_services(app)
    try:
        twilio = Twilio(app.test_client())
        answer_first_question(twilio)
        services.worker.drain()
        root = twilio.twiml("/voice/wait?turn=0&attempt=2", **params())
        assert heard(root, services)[0] == services.script.lines.could_not_listen
        assert root.find("./Hangup") is not None  # nothing was heard: no follow-up to ask
    finally:
        services.store.dispose()


def test_closing_and_the_status_callback_together_send_one_text(
    apps: Apps, texts: FakeTexts
) -> None:
    app = apps.start()
    twilio = Twilio(app.test_client())
    answer_first_question(twilio)
    twilio.twiml("/voice/status", **params(CallStatus="completed"))
    twilio.twiml("/voice/status", **params(CallStatus="completed"))  # Twilio retried it
    get_services(app).worker.drain()

    assert len(texts.sent) == 1
    assert texts.sent[0][0] == CALLER
    with get_services(app).store.transaction() as session:
        message = session.scalars(select(OutboxRow)).one()
        assert message.state == "sent" and message.message_sid


def test_a_restart_between_transcription_and_follow_up_picks_from_the_stored_analysis(
    apps: Apps, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = apps.start()
    answer_first_question(Twilio(first.test_client()))
    get_services(first).worker.drain()  # transcribed, and the answer analysed, in the background
    apps.stop(first)

    second = apps.start()
    analysed: list[str] = []
    real_analyze = interviewer.analyze

    def counting_analyze(rules: Any, answers: Any) -> interviewer.Analysis:
        analysed.append(rules.id)
        return real_analyze(rules, answers)

    monkeypatch.setattr(interviewer, "analyze", counting_analyze)
    root = Twilio(second.test_client()).twiml("/voice/wait?turn=0&attempt=2", **params())

    assert analysed == []  # the webhook only read what the transcription worked out
    record = root.find("./Record")
    assert record is not None and "turn=1" in record.get("action", "")
    # The same follow-up as one worked out in the webhook, for the same answer.
    picked = parse_qs(urlsplit(record.get("action", "")).query)["probe"]
    rules = get_services(second).script.questions[0]
    fresh = interviewer.pick_follow_up(rules, real_analyze(rules, [ANSWER]), [], random.Random(0))
    assert fresh is not None and picked == [fresh.dimension]


def test_without_a_stored_analysis_the_follow_up_is_worked_out_in_the_webhook(
    apps: Apps,
) -> None:
    app = apps.start()
    services = get_services(app)
    twilio = Twilio(app.test_client())
    answer_first_question(twilio)
    services.worker.drain()
    with services.store.transaction() as session:
        call = session.get(CallRow, CALL)
        assert call is not None and call.analysis is not None
        call.analysis = None  # as a call transcribed by the previous version would be

    root = twilio.twiml("/voice/wait?turn=0&attempt=2", **params())

    record = root.find("./Record")
    assert record is not None and "turn=1" in record.get("action", "")


def test_job_threads_are_woken_once_the_webhook_answer_has_gone_out(
    app_config: dict[str, Any],
    recordings: FakeRecordings,
    texts: FakeTexts,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    woken: list[str] = []
    monkeypatch.setattr(Worker, "notify", lambda self: woken.append("woken"))
    app = create_app(app_config, recordings=recordings, text_sender=texts)
    twilio = Twilio(app.test_client())
    twilio.twiml("/voice/incoming", **params())
    woken.clear()  # prompt renders queued on the way are not what this is about
    form = params(RecordingUrl=RECORDING, Digits="#")
    environ = EnvironBuilder(
        path="/voice/answer",
        query_string="turn=0",
        method="POST",
        data=form,
        base_url=PUBLIC_URL,
        headers={"X-Twilio-Signature": twilio.sign("/voice/answer?turn=0", form)},
        environ_overrides={"RAW_URI": "/voice/answer?turn=0"},  # as gunicorn passes it
    ).get_environ()

    body = app(environ, lambda status, headers: None)  # as a WSGI server runs it
    answer = b"".join(body)
    assert b"/voice/consent" in answer and woken == []  # transcription queued, no thread woken
    body.close()  # the server has sent the answer

    assert woken == ["woken"]
    get_services(app).store.dispose()


def test_a_job_thread_runs_queued_jobs_one_after_another_each_once(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'jobs.sqlite3'}")
    store.create_schema()
    ran: list[str] = []
    failing = {"job-3"}

    def run(job: Job) -> None:
        ran.append(job.key)
        if job.key in failing:
            failing.clear()
            raise RetryLater("not yet", delay=0.0)

    worker = Worker(store, {"test": JobKind(run)}, threads=1, poll_seconds=0.05)
    with store.transaction() as session:
        for number in range(5):
            enqueue(session, "test", f"job-{number}")
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while worker.pending_count() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    with store.reading() as session:
        rows = session.scalars(select(JobRow).order_by(JobRow.key)).all()
    store.dispose()

    assert sorted(ran) == sorted([f"job-{n}" for n in range(5)] + ["job-3"])
    assert [(row.key, row.state, row.attempts) for row in rows] == [
        ("job-0", "done", 1),
        ("job-1", "done", 1),
        ("job-2", "done", 1),
        ("job-3", "done", 2),  # retried once, as it asked
        ("job-4", "done", 1),
    ]
