"""The outbox: a text is sent once even when an attempt died mid-way; delivery reports recorded."""

from __future__ import annotations

from sqlalchemy import select

from tests.conftest import CALLER, PUBLIC_URL, FakeRecordings, FakeTexts, Twilio
from voice_app.asr.scripted import embed_transcript
from voice_app.services import Services
from voice_app.simulator.call import silence_wav
from voice_app.store import CallRow, JobRow, OptOutRow, OutboxRow
from voice_app.texts_out import OPT_OUT

CALL = "CA" + "6" * 32
RECORDING = "https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE" + "7" * 32


def params(**extra: str) -> dict[str, str]:
    return {"CallSid": CALL, "From": CALLER, "CallStatus": "in-progress", **extra}


def finished_call(twilio: Twilio, recordings: FakeRecordings, services: Services) -> None:
    """A call whose caller asked for a text, answered once and hung up; feedback queued."""
    recordings.audio[RECORDING] = embed_transcript(silence_wav(2), "we cut costs by a third")
    twilio.twiml("/voice/incoming", **params())
    twilio.twiml("/voice/answer?turn=0", **params(RecordingUrl=RECORDING, Digits="#"))
    twilio.twiml("/voice/consent", **params(Digits="1"))
    twilio.twiml("/voice/status", **params(CallStatus="completed"))


def test_the_text_asks_for_delivery_reports_and_tells_how_to_opt_out(
    twilio: Twilio, recordings: FakeRecordings, services: Services, texts: FakeTexts
) -> None:
    finished_call(twilio, recordings, services)
    services.worker.drain()

    assert len(texts.sent) == 1
    assert texts.sent[0][1].endswith(OPT_OUT)
    assert texts.status_callback == f"{PUBLIC_URL}/sms/status"


def test_an_attempt_that_died_after_reaching_twilio_is_not_sent_again(
    twilio: Twilio, recordings: FakeRecordings, services: Services, texts: FakeTexts
) -> None:
    finished_call(twilio, recordings, services)
    services.worker.drain()
    with services.store.transaction() as session:
        message = session.scalars(select(OutboxRow)).one()
        # As if the process died after Twilio accepted the text but before the answer was saved.
        message.state, message.message_sid = "sending", None
        job = session.scalars(select(JobRow).where(JobRow.kind == "send_text")).one()
        job.state = "pending"

    services.worker.drain()

    assert len(texts.sent) == 1
    with services.store.transaction() as session:
        message = session.scalars(select(OutboxRow)).one()
        assert message.state == "sent" and message.message_sid == "SM" + "1".zfill(32)


def test_delivery_reports_are_recorded_and_an_unsubscribed_number_is_opted_out(
    twilio: Twilio, recordings: FakeRecordings, services: Services
) -> None:
    finished_call(twilio, recordings, services)
    services.worker.drain()
    with services.store.transaction() as session:
        sid = session.scalars(select(OutboxRow)).one().message_sid
    assert sid

    twilio.twiml("/sms/status", MessageSid=sid, MessageStatus="undelivered", ErrorCode="21610")

    with services.store.transaction() as session:
        message = session.scalars(select(OutboxRow)).one()
        assert (message.delivery_status, message.delivery_error_code) == ("undelivered", 21610)
        assert session.get(OptOutRow, CALLER) is not None


def test_delivery_reports_need_twilios_signature(twilio: Twilio) -> None:
    response = twilio.post("/sms/status", sign=False, MessageSid="SM1", MessageStatus="delivered")
    assert response.status_code == 403


def test_the_opt_out_line_never_cuts_the_advice_short(
    twilio: Twilio, recordings: FakeRecordings, services: Services, texts: FakeTexts
) -> None:
    # Long quotes make the feedback long; the advice is its last and most useful part.
    answer = (
        "we ran a campaign to grow our newsletter because growing it was our goal for the year "
        "and the list grew from ten thousand to twenty five thousand subscribers"
    )
    recordings.audio[RECORDING] = embed_transcript(silence_wav(2), answer)
    twilio.twiml("/voice/incoming", **params())
    twilio.twiml("/voice/answer?turn=0", **params(RecordingUrl=RECORDING, Digits="#"))
    twilio.twiml("/voice/consent", **params(Digits="1"))
    twilio.twiml("/voice/status", **params(CallStatus="completed"))
    services.worker.drain()

    body = texts.sent[0][1]
    with services.store.transaction() as session:
        feedback = session.scalars(select(CallRow)).one().feedback or {}
    assert body == f"{feedback['sms']} {OPT_OUT}"  # the feedback whole, nothing cut
    assert len(body) <= 320
