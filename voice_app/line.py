"""The practice line's webhooks as plain calls: load the call, run the flow, save, queue work.

Each method runs in one database transaction, so the call's new state and the background jobs it
needs are committed together (a restart in between loses neither).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, fields
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, joinedload

from voice_app import flow, interviewer
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
                row = CallRow(
                    call_sid=call_sid,
                    from_number=from_number,
                    bank=self.bank,
                    stage=outcome.call.stage,
                    probed=[],
                )
                session.add(row)
                save_call(row, outcome.call)
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
        call = self._read_call(call_sid)
        if call is not None and flow.only_holding(self.script, call, turn, attempt):
            return flow.on_wait(self.script, call, turn, attempt).reply
        return self._event(
            call_sid, lambda call: flow.on_wait(self.script, call, turn, attempt), replay_key
        )

    def status(self, call_sid: str, call_status: str) -> None:
        """Twilio reports a change of the call's status."""
        if call_status not in FINAL_CALL_STATUSES:
            return
        # After the closing the call has already ended: nothing to write, no write lock.
        call = self._read_call(call_sid)
        if call is not None and call.stage != flow.ENDED:
            self._event(call_sid, flow.on_hangup, None)

    def _read_call(self, call_sid: str) -> Call | None:
        with self.store.reading() as session:
            row = read_call(session, call_sid)
            return load_call(row) if row is not None else None

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
            outcome = handle(load_call(row))
            save_call(row, outcome.call)
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


def encode_analysis(known: flow.KnownAnalysis) -> dict[str, Any] | None:
    """A known analysis as JSON-ready values; None when it would not come back the same."""
    try:
        stored = json.loads(
            json.dumps(
                {
                    "question_id": known.question_id,
                    "answers_key": known.answers_key,
                    "analysis": asdict(known.analysis),
                }
            )
        )
    except (TypeError, ValueError):
        # A result JSON cannot hold: not kept, so the follow-up works it out when it is picked.
        return None
    return stored if decode_analysis(stored) == known else None


def decode_analysis(stored: Mapping[str, Any] | None) -> flow.KnownAnalysis | None:
    """A known analysis back from `encode_analysis`; None for nothing or an unreadable one."""
    if not stored:
        return None
    try:
        result = dict(stored["analysis"])
        result["dimensions"] = {
            name: _rebuild(interviewer.DimensionResult, value)
            for name, value in result["dimensions"].items()
        }
        analysis = _rebuild(interviewer.Analysis, result)
        return flow.KnownAnalysis(str(stored["question_id"]), str(stored["answers_key"]), analysis)
    except (KeyError, TypeError, ValueError, AttributeError):
        # Written by a version whose results had other fields: worked out afresh when needed.
        return None


def _rebuild(kind: Callable[..., T], values: Mapping[str, Any]) -> T:
    """A frozen result dataclass from its stored fields (JSON turned its tuples into lists)."""
    expected = _field_names(kind)
    if set(values) != expected:
        raise ValueError(f"stored fields {sorted(values)} are not {sorted(expected)}")
    return kind(**{name: _as_tuples(value) for name, value in values.items()})


@functools.cache
def _field_names(kind: Any) -> frozenset[str]:
    return frozenset(f.name for f in fields(kind))


def _as_tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_as_tuples(item) for item in value)
    return value


def lock_call(session: Session, call_sid: str) -> CallRow | None:
    """The call's row and its turns (one query), locked for this transaction; None if unknown."""
    # FOR UPDATE serialises webhooks and workers touching the same call on PostgreSQL; SQLite
    # transactions here already begin IMMEDIATE, which serialises all writers.
    query = (
        select(CallRow)
        .where(CallRow.call_sid == call_sid)
        .options(joinedload(CallRow.turns))
        .with_for_update(of=CallRow)
    )
    return session.scalars(query).unique().first()


def read_call(session: Session, call_sid: str) -> CallRow | None:
    """The call's row and its turns (one query), for reading only; None if unknown."""
    query = select(CallRow).where(CallRow.call_sid == call_sid).options(joinedload(CallRow.turns))
    return session.scalars(query).unique().first()


def load_call(row: CallRow) -> Call:
    """The flow's view of a stored call (its turns loaded with it, see `lock_call`)."""
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
        for t in row.turns
    ]
    return Call(
        call_sid=row.call_sid,
        stage=row.stage,
        consent=row.consent,
        probed=list(row.probed or []),
        consent_pending=row.consent_pending,
        consent_heard=row.consent_heard,
        turns=turns,
        analysis=decode_analysis(row.analysis),
    )


def save_call(row: CallRow, call: Call) -> None:
    """Store the flow's view of a call: its fields and every turn (only changes are written)."""
    if row.consent is None and call.consent is not None:
        row.consent_at = time.time()
    if row.stage != flow.ENDED and call.stage == flow.ENDED:
        row.ended_at = time.time()
    row.stage = call.stage
    row.consent = call.consent
    row.consent_pending = call.consent_pending
    row.consent_heard = call.consent_heard
    row.probed = list(call.probed)
    existing = {t.number: t for t in row.turns}
    for turn in call.turns:
        stored = existing.get(turn.number)
        if stored is None:
            row.turns.append(
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
