"""A bad day: retried webhooks, unknown calls, a busy database, old data, the fallback URL."""

from __future__ import annotations

import time
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from tests.conftest import CALLER, FakeRecordings, Twilio, heard
from voice_app import line
from voice_app.asr.scripted import embed_transcript
from voice_app.cli import main
from voice_app.purge import purge
from voice_app.services import Services
from voice_app.simulator.call import silence_wav
from voice_app.store import CallRow, JobRow, OptOutRow, OutboxRow, TurnRow

CALL = "CA" + "a" * 32
RECORDING = "https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE" + "b" * 32


def params(**extra: str) -> dict[str, str]:
    return {"CallSid": CALL, "From": CALLER, "CallStatus": "in-progress", **extra}


def jobs(services: Services, kind: str) -> int:
    with services.store.transaction() as session:
        return len(session.scalars(select(JobRow).where(JobRow.kind == kind)).all())


def test_a_webhook_delivered_twice_gets_the_same_answer_and_advances_once(
    twilio: Twilio, services: Services, recordings: FakeRecordings
) -> None:
    recordings.audio[RECORDING] = embed_transcript(silence_wav(2), "we opened a new clinic")
    twilio.twiml("/voice/incoming", **params())
    form = params(RecordingUrl=RECORDING, Digits="#")
    headers = {"I-Twilio-Idempotency-Token": "token-1"}

    first = twilio.client.post(
        "/voice/answer?turn=0",
        data=form,
        headers={**headers, "X-Twilio-Signature": twilio.sign("/voice/answer?turn=0", form)},
    )
    again = twilio.client.post(
        "/voice/answer?turn=0",
        data=form,
        headers={**headers, "X-Twilio-Signature": twilio.sign("/voice/answer?turn=0", form)},
    )

    assert first.status_code == again.status_code == 200
    assert first.get_data() == again.get_data()
    assert jobs(services, "transcribe") == 1


def test_the_same_step_without_a_token_is_also_answered_once(
    twilio: Twilio, services: Services
) -> None:
    twilio.twiml("/voice/incoming", **params())

    first = twilio.twiml("/voice/answer?turn=0&silent=1", **params())
    again = twilio.twiml("/voice/answer?turn=0&silent=1", **params())

    # One re-prompt, not a re-prompt and then "let's move on".
    assert heard(first, services) == heard(again, services)
    assert heard(first, services)[0] == services.script.lines.reprompt


@pytest.mark.parametrize(
    "route",
    ["/voice/consent", "/voice/answer?turn=0", "/voice/wait?turn=0&attempt=1"],
)
def test_an_unknown_call_on_a_mid_call_route_gets_a_goodbye(
    twilio: Twilio, services: Services, route: str
) -> None:
    root = twilio.twiml(route, **params(CallSid="CA" + "f" * 32))

    assert heard(root, services) == [services.script.lines.unknown_call]
    assert root.find("./Hangup") is not None


def test_the_fallback_url_apologises_and_hangs_up(twilio: Twilio, services: Services) -> None:
    root = twilio.twiml("/voice/fallback", **params(ErrorCode="11200"))

    assert heard(root, services) == [services.script.lines.fallback]
    assert root.find("./Hangup") is not None


def test_health_reports_model_database_and_queue(twilio: Twilio, services: Services) -> None:
    twilio.twiml("/voice/incoming", **params())
    before = twilio.client.get("/healthz").get_json()["queue_depth"]
    twilio.twiml("/voice/status", **params(CallStatus="completed"))

    response = twilio.client.get("/healthz")

    assert response.status_code == 200
    body = response.get_json()
    assert body["model_loaded"] is True and body["recognizer"] == "scripted"
    assert body["database"] is True
    assert body["queue_depth"] == before + 1  # the call's feedback waits for a worker


def test_health_says_so_when_the_database_is_gone(
    twilio: Twilio, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable() -> bool:
        raise OperationalError("SELECT 1", {}, Exception("database is gone"))

    monkeypatch.setattr(services.store, "ping", unavailable)

    response = twilio.client.get("/healthz")

    assert response.status_code == 503
    assert response.get_json()["database"] is False


def test_a_briefly_locked_database_delays_a_webhook_but_loses_nothing(
    twilio: Twilio, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = services.store.transaction
    failures = iter([True, True])

    def sometimes_locked() -> Any:
        if next(failures, False):
            raise OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))
        return real()

    monkeypatch.setattr(services.store, "transaction", sometimes_locked)

    root = twilio.twiml("/voice/incoming", **params())

    assert root.find("./Record") is not None
    with real() as session:
        assert session.get(CallRow, CALL) is not None


def test_purge_forgets_old_calls_but_keeps_opt_outs(
    twilio: Twilio, services: Services, recordings: FakeRecordings
) -> None:
    recordings.audio[RECORDING] = embed_transcript(silence_wav(2), "we opened a new clinic")
    twilio.twiml("/voice/incoming", **params())
    twilio.twiml("/voice/answer?turn=0", **params(RecordingUrl=RECORDING, Digits="#"))
    twilio.twiml("/voice/consent", **params(Digits="1"))
    twilio.twiml("/voice/status", **params(CallStatus="completed"))
    services.worker.drain()
    twilio.twiml("/sms/incoming", From=CALLER, Body="STOP")

    kept = purge(services.store, retention_days=30)
    assert kept.calls == 0

    report = purge(services.store, retention_days=30, now=time.time() + 31 * 86_400)

    assert report.calls == 1 and report.turns >= 1 and report.texts == 1
    with services.store.transaction() as session:
        assert session.scalars(select(TurnRow)).all() == []
        assert session.scalars(select(OutboxRow)).all() == []
        assert session.get(OptOutRow, CALLER) is not None


def test_purge_command_reports_what_it_deleted(
    services: Services, app_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICE_APP_DATABASE_URL", app_config["database_url"])

    result = CliRunner().invoke(main, ["purge", "--days", "0"])

    assert result.exit_code == 0, result.output
    assert result.output.startswith("deleted 0 calls")


def between_read_and_write(
    monkeypatch: pytest.MonkeyPatch, happen: Any, *, reads_before: int = 0
) -> None:
    """Run `happen` once, after a webhook has read the call and before it takes the write lock
    (after `reads_before` earlier reads without the lock)."""
    real = line.read_snapshot
    reads = [0]

    def reading_then(session: Any, call_sid: str, *, lock: bool = False) -> line.Snapshot:
        snapshot = real(session, call_sid, lock=lock)
        if not lock:
            reads[0] += 1
            if reads[0] == reads_before + 1:
                happen()
        return snapshot

    monkeypatch.setattr(line, "read_snapshot", reading_then)


def test_a_transcript_landing_while_a_webhook_is_under_way_is_not_lost(
    twilio: Twilio, services: Services, recordings: FakeRecordings, monkeypatch: pytest.MonkeyPatch
) -> None:
    recordings.audio[RECORDING] = embed_transcript(silence_wav(2), "we opened a new clinic")
    twilio.twiml("/voice/incoming", **params())
    twilio.twiml("/voice/answer?turn=0", **params(RecordingUrl=RECORDING, Digits="#"))
    twilio.twiml("/voice/consent", **params(Digits="1"))
    last_attempt = -(-services.script.max_wait_seconds // services.script.hold_seconds)
    # The caller has held as long as allowed; the transcription finishes while this request,
    # having read the call as still waiting, is on its way to give up on the answer.
    # (Its first read checks whether it only holds; its second is the one it acts on.)
    between_read_and_write(monkeypatch, services.worker.drain, reads_before=1)

    root = twilio.twiml(f"/voice/wait?turn=0&attempt={last_attempt}", **params())

    assert services.script.lines.could_not_listen not in heard(root, services)
    record = root.find("./Record")
    assert record is not None and "turn=1" in record.get("action", "")  # the follow-up
    with services.store.reading() as session:
        turn = session.scalars(select(TurnRow).where(TurnRow.number == 0)).one()
    assert turn.status == "transcribed" and turn.transcript == "we opened a new clinic"


def test_a_retry_arriving_while_the_first_delivery_is_under_way_advances_the_call_once(
    twilio: Twilio, services: Services, recordings: FakeRecordings, monkeypatch: pytest.MonkeyPatch
) -> None:
    recordings.audio[RECORDING] = embed_transcript(silence_wav(2), "we opened a new clinic")
    twilio.twiml("/voice/incoming", **params())
    form = params(RecordingUrl=RECORDING, Digits="#")
    headers = {
        "I-Twilio-Idempotency-Token": "token-2",
        "X-Twilio-Signature": twilio.sign("/voice/answer?turn=0", form),
    }
    answers = []

    def retry() -> None:
        answers.append(twilio.client.post("/voice/answer?turn=0", data=form, headers=headers))

    between_read_and_write(monkeypatch, retry)
    first = twilio.client.post("/voice/answer?turn=0", data=form, headers=headers)

    assert first.status_code == answers[0].status_code == 200
    assert first.get_data() == answers[0].get_data()
    assert jobs(services, "transcribe") == 1
