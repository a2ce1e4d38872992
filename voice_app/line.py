"""The practice line's webhooks as plain calls: load the call, run the flow, save, queue work.

Each method runs in one database transaction, so the call's new state and the background jobs it
needs are committed together (a restart in between loses neither).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from voice_app import flow
from voice_app.asr import Transcript
from voice_app.flow import Call, Outcome, Step, Turn
from voice_app.script import Script
from voice_app.store import CallRow, ReplayRow, Store, TurnRow
from voice_app.worker import enqueue

log = logging.getLogger(__name__)

# Call statuses Twilio reports once a call is over.
FINAL_CALL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})

T = TypeVar("T")
_DB_ATTEMPTS = 4

TRANSCRIBE = "transcribe"
TRANSCRIBE_REPLY = "transcribe_reply"
FINALIZE = "finalize"
DELETE_RECORDING = "delete_recording"


class PracticeLine:
    """Answers the webhooks of every call, one transaction each."""

    def __init__(self, script: Script, store: Store, bank: str, notify: Callable[[], None]) -> None:
        self.script = script
        self.store = store
        self.bank = bank
        self._notify = notify

    def incoming(
        self, call_sid: str, from_number: str, replay_key: str | None = None
    ) -> tuple[Step, ...]:
        """A call comes in (or Twilio retries that request)."""
        return _with_retries(lambda: self._incoming(call_sid, from_number, replay_key))

    def _incoming(
        self, call_sid: str, from_number: str, replay_key: str | None
    ) -> tuple[Step, ...]:
        with self.store.transaction() as session:
            if lock_call(session, call_sid) is None:
                outcome = flow.start(self.script, call_sid)
                self._insert_call(session, outcome.call, from_number)
                if replay_key is not None:
                    session.add(
                        ReplayRow(
                            key=replay_key, call_sid=call_sid, steps=encode_steps(outcome.reply)
                        )
                    )
                return outcome.reply
        return self._event(call_sid, lambda call: flow.current_reply(self.script, call), replay_key)

    def consent(
        self,
        call_sid: str,
        digits: str,
        recording_url: str | None = None,
        replay_key: str | None = None,
    ) -> tuple[Step, ...]:
        """The caller answered the texting question: keypad, spoken reply, or nothing."""
        return self._event(
            call_sid,
            lambda call: flow.on_consent(self.script, call, digits, recording_url),
            replay_key,
        )

    def answer(
        self,
        call_sid: str,
        turn: int,
        *,
        recording_url: str | None,
        digits: str,
        hung_up: bool,
        replay_key: str | None = None,
    ) -> tuple[Step, ...]:
        """A recording of an answer ended."""
        return self._event(
            call_sid,
            lambda call: flow.on_answer(
                self.script, call, turn, recording_url=recording_url, digits=digits, hung_up=hung_up
            ),
            replay_key,
        )

    def wait(
        self, call_sid: str, turn: int, attempt: int, replay_key: str | None = None
    ) -> tuple[Step, ...]:
        """The caller is holding while an answer is transcribed."""
        # Most holding requests change nothing: answered from a read, without the write lock.
        with self.store.reading() as session:
            row = session.get(CallRow, call_sid)
            call = load_call(session, row) if row is not None else None
        if call is not None and flow.only_holding(self.script, call, turn, attempt):
            return flow.on_wait(self.script, call, turn, attempt).reply
        return self._event(
            call_sid, lambda call: flow.on_wait(self.script, call, turn, attempt), replay_key
        )

    def status(self, call_sid: str, call_status: str) -> None:
        """Twilio reports a change of the call's status."""
        if call_status in FINAL_CALL_STATUSES:
            self._event(call_sid, flow.on_hangup, None)

    # Live mode (a Media Stream): the same flow, driven by the stream instead of webhooks.

    def start_live(self, call_sid: str, from_number: str) -> None:
        """A call comes in for live mode: store it; its stream asks what to play."""

        def create() -> None:
            with self.store.transaction() as session:
                if lock_call(session, call_sid) is not None:
                    return  # Twilio retried the webhook: the call is stored already
                self._insert_call(session, flow.start_live(self.script, call_sid).call, from_number)

        _with_retries(create)

    def _insert_call(self, session: Session, call: Call, from_number: str) -> None:
        """Store a call the flow has just started."""
        row = CallRow(
            call_sid=call.call_sid,
            from_number=from_number,
            bank=self.bank,
            stage=call.stage,
            probed=[],
        )
        session.add(row)
        save_call(session, row, call)

    def resume(self, call_sid: str) -> tuple[Step, ...]:
        """What the caller should hear now, in record mode (after a live stream closed)."""
        return self._event(call_sid, lambda call: flow.current_reply(self.script, call), None)

    def live_resume(self, call_sid: str) -> Outcome | None:
        """Where a call stands, for a stream that starts; None for a call the line never took."""
        return self._live(call_sid, lambda call: flow.live_resume(self.script, call))

    def live_consent(self, call_sid: str, heard: str) -> Outcome | None:
        """The texting question was answered ("yes", "no", "unclear") or not ("none")."""
        return self._live(call_sid, lambda call: flow.on_live_consent(self.script, call, heard))

    def heard(
        self, call_sid: str, turn: int, transcript: Transcript, *, hung_up: bool = False
    ) -> Outcome | None:
        """An answer ended and was transcribed as it was spoken: store it, and go on."""

        def handle(call: Call) -> Outcome:
            return flow.on_heard(self.script, call, turn, transcript.text, hung_up=hung_up)

        def keep_transcript(session: Session, outcome: Outcome) -> None:
            stored = session.scalars(
                select(TurnRow).where(TurnRow.call_sid == call_sid, TurnRow.number == turn)
            ).first()
            if stored is not None and stored.transcript is None:
                stored.transcript = transcript.text
                stored.words = [[w.word, w.start, w.end, w.confidence] for w in transcript.words]

        return self._live(call_sid, handle, keep_transcript)

    def repeat(self, call_sid: str, turn: int) -> Outcome | None:
        """The caller pressed * during an answer: the question again."""
        return self._live(
            call_sid,
            lambda call: flow.on_answer(
                self.script, call, turn, recording_url=None, digits="*", hung_up=False
            ),
        )

    def _live(
        self,
        call_sid: str,
        handle: Callable[[Call], Outcome],
        also: Callable[[Session, Outcome], None] | None = None,
    ) -> Outcome | None:
        def run() -> tuple[Outcome | None, bool]:
            with self.store.transaction() as session:
                row = lock_call(session, call_sid)
                if row is None:
                    return None, False
                outcome = handle(load_call(session, row))
                save_call(session, row, outcome.call)
                if also is not None:
                    session.flush()
                    also(session, outcome)
                return outcome, self._apply_effects(session, outcome)

        outcome, queued = _with_retries(run)
        if queued:
            self._notify()
        return outcome

    def _event(
        self, call_sid: str, handle: Callable[[Call], Outcome], replay_key: str | None
    ) -> tuple[Step, ...]:
        return _with_retries(lambda: self._run_event(call_sid, handle, replay_key))

    def _run_event(
        self, call_sid: str, handle: Callable[[Call], Outcome], replay_key: str | None
    ) -> tuple[Step, ...]:
        with self.store.transaction() as session:
            row = lock_call(session, call_sid)
            if row is None:
                log.info("request for unknown call %s", call_sid)
                return (flow.Speak(self.script.lines.unknown_call), flow.HangUp())
            if replay_key is not None:
                replayed = session.get(ReplayRow, replay_key)
                if replayed is not None:
                    # The same webhook again (a retry): the same answer, and no second step.
                    return decode_steps(replayed.steps)
            outcome = handle(load_call(session, row))
            save_call(session, row, outcome.call)
            queued = self._apply_effects(session, outcome)
            if replay_key is not None:
                session.add(
                    ReplayRow(key=replay_key, call_sid=call_sid, steps=encode_steps(outcome.reply))
                )
        if queued:
            self._notify()
        return outcome.reply

    def _apply_effects(self, session: Session, outcome: Outcome) -> bool:
        call_sid = outcome.call.call_sid
        queued = False
        for effect in outcome.effects:
            kind, key, payload = _job_for(call_sid, effect)
            queued |= enqueue(session, kind, key, call_sid=call_sid, payload=payload)
        return queued


def _job_for(call_sid: str, effect: flow.Effect) -> tuple[str, str, dict[str, Any]]:
    """The background job (kind, unique key, payload) that carries out one effect."""
    if isinstance(effect, flow.Transcribe):
        payload: dict[str, Any] = {"turn": effect.turn, "recording_url": effect.recording_url}
        return TRANSCRIBE, f"{call_sid}:{effect.turn}:{effect.recording_url}", payload
    if isinstance(effect, flow.TranscribeReply):
        payload = {"purpose": effect.purpose, "recording_url": effect.recording_url}
        return TRANSCRIBE_REPLY, f"{call_sid}:{effect.purpose}:{effect.recording_url}", payload
    if isinstance(effect, flow.DiscardRecording):
        return DELETE_RECORDING, effect.recording_url, {"recording_url": effect.recording_url}
    return FINALIZE, call_sid, {"reason": effect.reason}


def _with_retries(work: Callable[[], T]) -> T:
    """Run one webhook's transaction, again after a moment if the database was busy."""
    for attempt in range(_DB_ATTEMPTS):
        try:
            return work()
        except OperationalError as exc:
            # The transaction was rolled back whole, so running it again cannot apply it twice.
            if attempt + 1 == _DB_ATTEMPTS:
                raise
            log.warning("database unavailable (%s); retrying", exc.orig)
            time.sleep(0.1 * 3**attempt)
    raise AssertionError("unreachable")


_STEP_TYPES: dict[str, type[Step]] = {
    kind.__name__: kind
    for kind in (flow.Speak, flow.AskConsent, flow.Listen, flow.Hold, flow.HangUp)
}


def encode_steps(steps: tuple[Step, ...]) -> list[dict[str, Any]]:
    """Steps as JSON-ready values, to store a webhook's answer."""
    return [{"step": type(step).__name__, **asdict(step)} for step in steps]


def decode_steps(stored: list[dict[str, Any]]) -> tuple[Step, ...]:
    """Steps back from `encode_steps`."""
    return tuple(
        _STEP_TYPES[item["step"]](**{k: v for k, v in item.items() if k != "step"})
        for item in stored
    )


def lock_call(session: Session, call_sid: str) -> CallRow | None:
    """The call's row, locked for this transaction; None for an unknown call."""
    # FOR UPDATE serialises webhooks and workers touching the same call on PostgreSQL; SQLite
    # transactions here already begin IMMEDIATE, which serialises all writers.
    return session.scalars(
        select(CallRow).where(CallRow.call_sid == call_sid).with_for_update()
    ).first()


def _turn_rows(session: Session, call_sid: str) -> list[TurnRow]:
    return list(
        session.scalars(
            select(TurnRow).where(TurnRow.call_sid == call_sid).order_by(TurnRow.number)
        )
    )


def load_call(session: Session, row: CallRow) -> Call:
    """The flow's view of a stored call."""
    turns = [
        Turn(
            number=t.number,
            question_id=t.question_id,
            kind=t.kind,
            prompt=t.prompt,
            dimension=t.dimension,
            status=t.status,
            reprompted=t.reprompted,
            transcript=t.transcript,
            asked=t.asked,
        )
        for t in _turn_rows(session, row.call_sid)
    ]
    return Call(
        call_sid=row.call_sid,
        stage=row.stage,
        consent=row.consent,
        probed=list(row.probed or []),
        consent_pending=row.consent_pending,
        consent_heard=row.consent_heard,
        turns=turns,
    )


def save_call(session: Session, row: CallRow, call: Call) -> None:
    """Store the flow's view of a call: its fields and every turn."""
    if row.consent is None and call.consent is not None:
        row.consent_at = time.time()
    if row.stage != flow.ENDED and call.stage == flow.ENDED:
        row.ended_at = time.time()
    row.stage = call.stage
    row.consent = call.consent
    row.consent_pending = call.consent_pending
    row.consent_heard = call.consent_heard
    row.probed = list(call.probed)
    existing = {t.number: t for t in _turn_rows(session, row.call_sid)}
    for turn in call.turns:
        stored = existing.get(turn.number)
        if stored is None:
            session.add(
                TurnRow(
                    call_sid=row.call_sid,
                    number=turn.number,
                    question_id=turn.question_id,
                    kind=turn.kind,
                    prompt=turn.prompt,
                    dimension=turn.dimension,
                    status=turn.status,
                    reprompted=turn.reprompted,
                    asked=turn.asked,
                )
            )
        else:
            stored.status = turn.status
            stored.reprompted = turn.reprompted
            stored.asked = turn.asked
