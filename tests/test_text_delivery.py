"""Feedback texts against a misbehaving Twilio: exactly one text per call, or none when it must.

The whole app runs with its real REST adapters against the local stand-in of Twilio's API, which
fails the way Twilio and networks do (HTTP 500 and 429, a timeout, a dropped connection, a text
accepted but never answered, the recipient's opt-out) and counts what it really sent. The worker
runs in the test's thread; its retry delays are skipped by making waiting jobs due at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

import voice_app.twilio_rest
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, CALLER, Twilio
from voice_app.app import create_app, get_services
from voice_app.asr.scripted import embed_transcript
from voice_app.services import Services
from voice_app.simulator.call import silence_wav
from voice_app.simulator.standin import TwilioStandIn
from voice_app.store import JobRow, OptOutRow, OutboxRow, TurnRow
from voice_app.worker import DONE, FAILED, PENDING, RUNNING

CALL = "CA" + "8" * 32
ANSWER = "i rewrote the billing job and we cut the monthly close from five days to two"
# The app's REST timeout in these tests, and how long the stand-in holds a "timeout" request.
CLIENT_TIMEOUT_SECONDS = 1.5  # generous: a busy CI machine must not time out good requests
HOLD_SECONDS = 2.5
TRANSIENT_FAULTS = ["500", "429", "timeout", "drop"]


class Line:
    """The practice line as successive server processes on one database would run it."""

    def __init__(self, config: dict[str, Any], standin: TwilioStandIn) -> None:
        self.config = config
        self.standin = standin
        self.built: list[Flask] = []
        self.recording_sid = ""

    def start(self, **overrides: Any) -> Services:
        """A new process: the app with its real Twilio adapters, pointed at the stand-in."""
        app = create_app({**self.config, **overrides})
        self.built.append(app)
        return get_services(app)

    def stop(self, services: Services) -> None:
        """The process ends (its database connections with it)."""
        services.worker.stop()
        services.store.dispose()

    def call(
        self,
        services: Services,
        *,
        call_sid: str = CALL,
        from_number: str = CALLER,
        consent: str = "1",
    ) -> Twilio:
        """A caller answers one question, says whether they want a text, and the call ends."""
        self.recording_sid, url = self.standin.add_recording(
            embed_transcript(silence_wav(2), ANSWER)
        )
        twilio = self.twilio(services)
        params = {"CallSid": call_sid, "From": from_number, "CallStatus": "in-progress"}
        twilio.twiml("/voice/incoming", **params)
        twilio.twiml("/voice/answer?turn=0", **params, RecordingUrl=url, Digits="#")
        twilio.twiml("/voice/consent", **params, Digits=consent)
        twilio.post("/voice/status", **{**params, "CallStatus": "completed"})
        return twilio

    def twilio(self, services: Services) -> Twilio:
        """Twilio's webhooks, reaching the process that runs `services`."""
        app = next(app for app in self.built if get_services(app) is services)
        return Twilio(app.test_client())


def run_jobs(services: Services, *, max_runs: int = 60) -> int:
    """Run every job to the end, skipping retry delays; how many job runs it took."""
    runs = 0
    deadline = time.monotonic() + 20
    while runs < max_runs and time.monotonic() < deadline:
        with services.store.transaction() as session:
            session.execute(update(JobRow).where(JobRow.state == PENDING).values(run_after=0.0))
        if services.worker.run_once():
            runs += 1
        elif services.worker.pending_count() == 0:
            return runs
        else:
            time.sleep(0.02)  # a job another process holds: let it finish
    raise AssertionError(f"jobs still pending after {runs} runs")


def run_one_send_attempt(services: Services) -> None:
    """Run jobs until the text has been tried once (the call's transcription and feedback first)."""
    for _ in range(20):
        with services.store.transaction() as session:
            session.execute(update(JobRow).where(JobRow.state == PENDING).values(run_after=0.0))
            send = session.scalars(select(JobRow).where(JobRow.kind == "send_text")).first()
            if send is not None and send.attempts >= 1:
                return
        if not services.worker.run_once():
            break
    raise AssertionError("the text was never tried")


def outbox(services: Services) -> OutboxRow:
    with services.store.transaction() as session:
        return session.scalars(select(OutboxRow)).one()


def send_job(services: Services) -> JobRow:
    with services.store.transaction() as session:
        return session.scalars(select(JobRow).where(JobRow.kind == "send_text")).one()


@pytest.fixture
def standin() -> Iterator[TwilioStandIn]:
    server = TwilioStandIn(ACCOUNT_SID, AUTH_TOKEN).start()
    server.timeout_delay_seconds = HOLD_SECONDS
    yield server
    server.stop()


@pytest.fixture
def line(
    app_config: dict[str, Any], standin: TwilioStandIn, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Line]:
    monkeypatch.setattr(voice_app.twilio_rest, "REQUEST_TIMEOUT_SECONDS", CLIENT_TIMEOUT_SECONDS)
    config = {**app_config, "twilio_api_base_url": standin.base_url}
    config.pop("delete_recordings", None)  # the default: recordings are deleted
    factory = Line(config, standin)
    yield factory
    for app in factory.built:
        factory.stop(get_services(app))


@pytest.mark.parametrize("fault", TRANSIENT_FAULTS)
def test_a_failed_attempt_is_retried_and_one_text_arrives(
    line: Line, standin: TwilioStandIn, fault: str
) -> None:
    services = line.start()
    standin.script_message_faults([fault])

    line.call(services)
    run_jobs(services)

    texts = standin.texts_to(CALLER)
    assert len(texts) == 1
    assert standin.message_attempts == 2  # the failed attempt, then the one that got through
    message = outbox(services)
    assert (message.state, message.message_sid) == ("sent", texts[0].sid)


def test_every_transient_fault_in_a_row_still_ends_in_one_text(
    line: Line, standin: TwilioStandIn
) -> None:
    services = line.start()
    standin.script_message_faults(TRANSIENT_FAULTS)

    line.call(services)
    run_jobs(services)

    assert len(standin.texts_to(CALLER)) == 1
    assert standin.message_attempts == len(TRANSIENT_FAULTS) + 1
    assert standin.pending_faults() == []
    assert outbox(services).state == "sent"


def test_a_text_accepted_but_never_answered_is_found_not_sent_again(
    line: Line, standin: TwilioStandIn
) -> None:
    services = line.start()
    standin.script_message_faults(["accept-then-drop"])

    line.call(services)
    run_jobs(services)

    texts = standin.texts_to(CALLER)
    assert len(texts) == 1
    assert standin.message_attempts == 1  # the retry asked Twilio instead of sending again
    assert standin.list_queries, "the retry did not look for the text at Twilio"
    message = outbox(services)
    assert (message.state, message.message_sid) == ("sent", texts[0].sid)


def test_a_lookup_that_fails_is_retried_rather_than_sending_blindly(
    line: Line, standin: TwilioStandIn
) -> None:
    services = line.start()
    standin.script_message_faults(["accept-then-drop"])
    standin.script_list_faults(["500", "drop"])

    line.call(services)
    run_jobs(services)

    assert len(standin.texts_to(CALLER)) == 1
    assert standin.message_attempts == 1
    assert len(standin.list_queries) == 3
    assert standin.pending_faults() == []
    assert outbox(services).message_sid == standin.texts_to(CALLER)[0].sid


def test_an_opted_out_caller_gets_no_text_and_is_not_tried_again(
    line: Line, standin: TwilioStandIn
) -> None:
    services = line.start()
    standin.script_message_faults(["21610"])

    line.call(services)
    run_jobs(services)

    assert standin.texts_to(CALLER) == []
    assert standin.message_attempts == 1
    assert outbox(services).state == "failed"
    assert send_job(services).state in (DONE, FAILED)
    with services.store.transaction() as session:
        assert session.get(OptOutRow, CALLER) is not None

    # The same caller practises again: the line does not even try.
    line.call(services, call_sid="CA" + "9" * 32)
    run_jobs(services)
    assert standin.message_attempts == 1
    assert standin.texts_to(CALLER) == []


@pytest.mark.parametrize("fault", ["500", "timeout", "accept-then-drop"])
def test_a_restart_after_a_failed_attempt_still_sends_one_text(
    line: Line, standin: TwilioStandIn, fault: str
) -> None:
    first = line.start()
    standin.script_message_faults([fault])
    line.call(first)
    run_one_send_attempt(first)
    line.stop(first)  # the process is restarted before the retry

    second = line.start()
    run_jobs(second)

    texts = standin.texts_to(CALLER)
    assert len(texts) == 1
    assert outbox(second).message_sid == texts[0].sid


def test_a_process_that_died_mid_send_after_twilio_accepted_is_not_repeated(
    line: Line, standin: TwilioStandIn
) -> None:
    first = line.start()
    standin.script_message_faults(["accept-then-drop"])
    line.call(first)
    run_one_send_attempt(first)
    with first.store.transaction() as session:
        # The process died inside the send: its lease on the job ran out, nothing was recorded.
        job = session.scalars(select(JobRow).where(JobRow.kind == "send_text")).one()
        job.state, job.lease_until = RUNNING, time.time() - 1
    line.stop(first)

    second = line.start()
    run_jobs(second)

    assert len(standin.texts_to(CALLER)) == 1
    assert standin.message_attempts == 1
    assert outbox(second).state == "sent"


def test_duplicated_and_out_of_order_callbacks_from_two_processes_send_one_text(
    line: Line, standin: TwilioStandIn
) -> None:
    first, second = line.start(), line.start()
    twilio_first = line.call(first)
    twilio_second = line.twilio(second)
    params = {"CallSid": CALL, "From": CALLER}
    # Twilio retries and reorders: a late consent, a stale in-progress, completed three times,
    # each reaching whichever process the load balancer picks.
    twilio_second.post("/voice/status", **params, CallStatus="completed")
    twilio_first.post("/voice/consent", **params, CallStatus="in-progress", Digits="1")
    twilio_second.post("/voice/status", **params, CallStatus="in-progress")
    twilio_first.post("/voice/status", **params, CallStatus="completed")

    for _ in range(30):  # the two processes' workers take turns
        first_ran = first.worker.run_once()
        second_ran = second.worker.run_once()
        if not (first_ran or second_ran) and first.worker.pending_count() == 0:
            break
        with first.store.transaction() as session:
            session.execute(update(JobRow).where(JobRow.state == PENDING).values(run_after=0.0))

    assert len(standin.texts_to(CALLER)) == 1


def test_two_processes_with_worker_threads_send_one_text(
    line: Line, standin: TwilioStandIn
) -> None:
    first = line.start(workers=2)
    second = line.start(workers=2)
    line.call(first)
    line.twilio(second).post("/voice/status", CallSid=CALL, From=CALLER, CallStatus="completed")

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not standin.texts_to(CALLER):
        time.sleep(0.05)
    time.sleep(0.5)  # room for a second text, if one were coming

    assert len(standin.texts_to(CALLER)) == 1


@pytest.mark.parametrize(
    ("from_number", "consent"),
    [
        pytest.param(CALLER, "2", id="said-no"),
        pytest.param("anonymous", "1", id="caller-id-withheld"),
        pytest.param("+266696687", "1", id="twilio-anonymous-number"),
    ],
)
def test_no_text_without_consent_or_a_number_to_text(
    line: Line, standin: TwilioStandIn, from_number: str, consent: str
) -> None:
    services = line.start()

    line.call(services, from_number=from_number, consent=consent)
    run_jobs(services)

    assert standin.message_attempts == 0
    with services.store.transaction() as session:
        assert session.scalars(select(OutboxRow)).first() is None


def test_the_recording_is_deleted_from_twilio_once_transcribed(
    line: Line, standin: TwilioStandIn
) -> None:
    services = line.start()

    line.call(services)
    run_jobs(services)

    assert not standin.recording_exists(line.recording_sid)
    assert standin.deleted == [line.recording_sid]
    with services.store.transaction() as session:
        turn = session.scalars(select(TurnRow).where(TurnRow.number == 0)).one()
        assert turn.transcript == ANSWER
        assert turn.recording_url is None  # nothing left pointing at the audio


def test_recordings_are_kept_when_deleting_is_turned_off(
    line: Line, standin: TwilioStandIn
) -> None:
    services = line.start(delete_recordings=False)

    line.call(services)
    run_jobs(services)

    assert standin.recording_exists(line.recording_sid)
    assert standin.deleted == []


def delivery_report(twilio: Twilio, sid: str, status: str, error_code: str = "") -> None:
    response = twilio.post(
        "/sms/status", MessageSid=sid, MessageStatus=status, ErrorCode=error_code, To=CALLER
    )
    assert response.status_code in (200, 204), response.get_data(as_text=True)


def test_delivery_reports_arriving_out_of_order_keep_the_final_status(
    line: Line, standin: TwilioStandIn
) -> None:
    services = line.start()
    twilio = line.call(services)
    run_jobs(services)
    sid = standin.texts_to(CALLER)[0].sid

    delivery_report(twilio, sid, "delivered")
    delivery_report(twilio, sid, "sent")  # Twilio does not promise callbacks in order
    delivery_report(twilio, sid, "queued")

    assert outbox(services).delivery_status == "delivered"


def test_an_undelivered_report_is_recorded_with_its_error(
    line: Line, standin: TwilioStandIn
) -> None:
    services = line.start()
    twilio = line.call(services)
    run_jobs(services)
    sid = standin.texts_to(CALLER)[0].sid

    delivery_report(twilio, sid, "sent")
    delivery_report(twilio, sid, "undelivered", "30003")

    message = outbox(services)
    assert (message.delivery_status, message.delivery_error_code) == ("undelivered", 30003)


def test_a_delivery_report_before_the_app_knew_the_sid_is_not_lost(
    line: Line, standin: TwilioStandIn
) -> None:
    services = line.start()
    standin.script_message_faults(["accept-then-drop"])
    twilio = line.call(services)
    run_one_send_attempt(services)
    # The text went out, but its answer was lost: Twilio reports delivery before the retry.
    delivery_report(twilio, standin.texts_to(CALLER)[0].sid, "delivered")

    run_jobs(services)

    assert len(standin.texts_to(CALLER)) == 1
    assert outbox(services).delivery_status == "delivered"
