"""The practice line's webhooks as plain calls: read the call, run the flow, save, queue work.

Each method writes in one database transaction, so the call's new state and the background jobs
it needs are committed together (a restart in between loses neither).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, fields
from typing import Any, TypeVar, cast

from sqlalchemy import Table, Text, bindparam, insert, select, update
from sqlalchemy import cast as cast_to
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from voice_app import flow, interviewer
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
    """Answers the webhooks of every call, one transaction each.

    A webhook reads the call and runs the flow before it takes the database's write lock; under
    the lock it only checks that the call is still as it read it (else runs the flow again on
    what is there now) and writes what changed. SQLite has one writer at a time, and a writer
    that parsed, rendered or analysed while holding the lock kept every other webhook waiting.
    """

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
        if self._read_call(call_sid) is None:
            outcome = flow.start(self.script, call_sid)
            with self.store.transaction() as session:
                if not read_snapshot(session, call_sid, lock=True):
                    insert_call(session, outcome.call, from_number=from_number, bank=self.bank)
                    if replay_key is not None:
                        _remember_reply(session, replay_key, call_sid, outcome.reply)
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

    # Live mode (a Media Stream): the same flow, driven by the stream instead of webhooks.

    def start_live(self, call_sid: str, from_number: str) -> None:
        """A call comes in for live mode: store it; its stream asks what to play."""

        def create() -> None:
            with self.store.transaction() as session:
                if read_snapshot(session, call_sid, lock=True):
                    return  # Twilio retried the webhook: the call is stored already
                call = flow.start_live(self.script, call_sid).call
                insert_call(session, call, from_number=from_number, bank=self.bank)

        _with_retries(create)

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

        def keep_transcript(session: Session, _outcome: Outcome) -> None:
            words = [[w.word, w.start, w.end, w.confidence] for w in transcript.words]
            values = {"transcript": transcript.text, "words": words}
            session.connection().execute(
                _KEEP_TRANSCRIPT, {"key": call_sid, "key_number": turn, **values}
            )

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
        done = _with_retries(lambda: self._decide(call_sid, handle, None, also))
        assert not isinstance(done, tuple), "no replay key, so never a replayed answer"
        return done

    def _read_call(self, call_sid: str) -> Call | None:
        with self.store.reading() as session:
            snapshot = read_snapshot(session, call_sid)
        return call_from(call_sid, snapshot) if snapshot else None

    def _event(
        self, call_sid: str, handle: Callable[[Call], Outcome], replay_key: str | None
    ) -> tuple[Step, ...]:
        return _with_retries(lambda: self._run_event(call_sid, handle, replay_key))

    def _run_event(
        self, call_sid: str, handle: Callable[[Call], Outcome], replay_key: str | None
    ) -> tuple[Step, ...]:
        done = self._decide(call_sid, handle, replay_key)
        if done is None:
            log.info("request for unknown call %s", call_sid)
            return (flow.Speak(self.script.lines.unknown_call), flow.HangUp())
        return done if isinstance(done, tuple) else done.reply

    def _decide(
        self,
        call_sid: str,
        handle: Callable[[Call], Outcome],
        replay_key: str | None,
        also: Callable[[Session, Outcome], None] | None = None,
    ) -> Outcome | tuple[Step, ...] | None:
        """Run the flow on the call and store what it changed, plus `also`; None: unknown call.

        A delivery answered before (`replay_key`) gets its stored answer (a tuple of steps).
        """
        # Without the write lock: the call as it is, and what this event makes of it.
        with self.store.reading() as session:
            replayed = _replayed(session, replay_key)
            if replayed is not None:
                return replayed  # the same webhook again (a retry): the same answer, no step
            snapshot = read_snapshot(session, call_sid)
        if not snapshot:
            return None
        outcome = handle(call_from(call_sid, snapshot))
        # Under the lock: the same call still (else the flow again, on what is there now).
        with self.store.transaction() as session:
            replayed = _replayed(session, replay_key)
            if replayed is not None:
                return replayed
            current = read_snapshot(session, call_sid, lock=True)
            if current != snapshot:
                snapshot = current
                if not snapshot:
                    return None
                outcome = handle(call_from(call_sid, snapshot))
            write_call(session, call_from(call_sid, snapshot, with_analysis=False), outcome.call)
            if also is not None:
                also(session, outcome)
            queued = self._apply_effects(session, outcome)
            if replay_key is not None:
                _remember_reply(session, replay_key, call_sid, outcome.reply)
        if queued:
            self._notify()
        return outcome

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


# The tables themselves: webhooks read and write them with plain statements, built once and run
# on the connection, without the ORM's bookkeeping, to hold the write lock as briefly as they can
# (in-process, such a statement costs about 50 us, through the ORM session 100-250 us).
_CALLS = cast(Table, CallRow.__table__)
_TURNS = cast(Table, TurnRow.__table__)
_REPLIES = cast(Table, ReplayRow.__table__)

# What the flow knows of a call (`Call`), one row per turn: the call's fields, then the turn's.
_SNAPSHOT = (
    select(
        _CALLS.c.stage,
        _CALLS.c.consent,
        _CALLS.c.consent_pending,
        _CALLS.c.consent_heard,
        _CALLS.c.probed,
        cast_to(_CALLS.c.analysis, Text),  # compared as stored; decoded only to build a Call
        _TURNS.c.number,
        _TURNS.c.question_id,
        _TURNS.c.kind,
        _TURNS.c.prompt,
        _TURNS.c.dimension,
        _TURNS.c.status,
        _TURNS.c.reprompted,
        _TURNS.c.transcript,
        _TURNS.c.asked,
    )
    .select_from(_CALLS.outerjoin(_TURNS, _TURNS.c.call_sid == _CALLS.c.call_sid))
    .where(_CALLS.c.call_sid == bindparam("call_sid"))
    .order_by(_TURNS.c.number)
)
_SNAPSHOT_LOCKED = _SNAPSHOT.with_for_update(of=_CALLS)

# A call as stored: one tuple per turn (see _SNAPSHOT); empty for an unknown call.
Snapshot = tuple[tuple[Any, ...], ...]


def read_snapshot(session: Session, call_sid: str, *, lock: bool = False) -> Snapshot:
    """The call and its turns as stored, in one query; `lock` also locks the call's row.

    FOR UPDATE serialises webhooks and jobs touching the same call on PostgreSQL; SQLite write
    transactions here begin IMMEDIATE, which serialises all writers.
    """
    query = _SNAPSHOT_LOCKED if lock else _SNAPSHOT
    rows = session.connection().execute(query, {"call_sid": call_sid})
    return tuple(tuple(row) for row in rows)


def lock_call(session: Session, call_sid: str) -> bool:
    """Lock the call's row for this transaction; False for an unknown call."""
    return session.connection().execute(_LOCK_CALL, {"key": call_sid}).first() is not None


def store_transcript(
    session: Session, call_sid: str, turn: int, fields: Mapping[str, Any], status: str
) -> None:
    """Store what the recording of a turn gave (`fields`); `status` only if still waiting."""
    connection = session.connection()
    connection.execute(_UPDATE_TURN, {"key": call_sid, "key_number": turn, **fields})
    # A turn the caller has since re-answered (after * or a re-prompt) keeps its own status.
    connection.execute(_SET_WAITING_STATUS, {"key": call_sid, "key_number": turn, "new": status})


def store_analysis(session: Session, call_sid: str, analysis: Mapping[str, Any]) -> None:
    """Store the analysis (`encode_analysis`) the transcription worked out."""
    session.connection().execute(_UPDATE_CALL, {"key": call_sid, "analysis": analysis})


def call_from(call_sid: str, snapshot: Snapshot, *, with_analysis: bool = True) -> Call:
    """The flow's view of a stored call (`read_snapshot`)."""
    first = snapshot[0]
    stage, consent, consent_pending, consent_heard, probed, analysis = first[:6]
    turns = [
        Turn(
            number=row[6],
            question_id=row[7],
            kind=row[8],
            prompt=row[9],
            dimension=row[10],
            status=row[11],
            reprompted=bool(row[12]),
            transcript=row[13],
            asked=row[14],
        )
        for row in snapshot
        if row[6] is not None
    ]
    return Call(
        call_sid=call_sid,
        stage=stage,
        consent=consent,
        probed=list(probed or []),
        consent_pending=bool(consent_pending),
        consent_heard=consent_heard,
        turns=turns,
        analysis=decode_analysis(json.loads(analysis)) if with_analysis and analysis else None,
    )


def insert_call(session: Session, call: Call, *, from_number: str, bank: str) -> None:
    """Store a new call and its first turns."""
    now = time.time()
    connection = session.connection()
    connection.execute(
        _INSERT_CALL,
        {
            "call_sid": call.call_sid,
            "from_number": from_number,
            "bank": bank,
            "stage": call.stage,
            "consent": call.consent,
            "consent_pending": call.consent_pending,
            "consent_heard": call.consent_heard,
            "probed": list(call.probed),
            "created_at": now,
            "updated_at": now,
        },
    )
    for turn in call.turns:
        connection.execute(_INSERT_TURN, _turn_values(call.call_sid, turn))


def write_call(session: Session, before: Call, after: Call) -> None:
    """Store what the flow changed in a call: its fields and its turns, nothing else."""
    now = time.time()
    changed: dict[str, Any] = {
        name: getattr(after, name)
        for name in ("stage", "consent", "consent_pending", "consent_heard")
        if getattr(after, name) != getattr(before, name)
    }
    if list(after.probed) != list(before.probed):
        changed["probed"] = list(after.probed)
    if before.consent is None and after.consent is not None:
        changed["consent_at"] = now
    if before.stage != flow.ENDED and after.stage == flow.ENDED:
        changed["ended_at"] = now
    connection = session.connection()
    if changed:
        changed["updated_at"] = now
        connection.execute(_UPDATE_CALL, {"key": after.call_sid, **changed})
    stored = {turn.number: turn for turn in before.turns}
    for turn in after.turns:
        old = stored.get(turn.number)
        if old is None:
            connection.execute(_INSERT_TURN, _turn_values(after.call_sid, turn))
        elif (old.status, old.reprompted, old.asked) != (turn.status, turn.reprompted, turn.asked):
            connection.execute(
                _UPDATE_TURN,
                {
                    "key": after.call_sid,
                    "key_number": turn.number,
                    "status": turn.status,
                    "reprompted": turn.reprompted,
                    "asked": turn.asked,
                },
            )


# The columns an UPDATE sets are those its parameters name besides the key.
_INSERT_CALL = insert(_CALLS)
_UPDATE_CALL = update(_CALLS).where(_CALLS.c.call_sid == bindparam("key"))
_INSERT_TURN = insert(_TURNS)
_UPDATE_TURN = update(_TURNS).where(
    _TURNS.c.call_sid == bindparam("key"), _TURNS.c.number == bindparam("key_number")
)
_SET_WAITING_STATUS = (
    update(_TURNS)
    .where(
        _TURNS.c.call_sid == bindparam("key"),
        _TURNS.c.number == bindparam("key_number"),
        _TURNS.c.status.in_([flow.RECORDED, flow.LATE]),
    )
    .values(status=bindparam("new"))
)
_LOCK_CALL = (
    select(_CALLS.c.call_sid).where(_CALLS.c.call_sid == bindparam("key")).with_for_update()
)
# A transcript heard live is stored once: a retried event does not overwrite it.
_KEEP_TRANSCRIPT = (
    update(_TURNS)
    .where(
        _TURNS.c.call_sid == bindparam("key"),
        _TURNS.c.number == bindparam("key_number"),
        _TURNS.c.transcript.is_(None),
    )
    .values(transcript=bindparam("transcript"), words=bindparam("words"))
)
_REPLAYED = select(_REPLIES.c.steps).where(_REPLIES.c.key == bindparam("key"))
_INSERT_REPLY = insert(_REPLIES)


def _turn_values(call_sid: str, turn: Turn) -> dict[str, Any]:
    return {
        "call_sid": call_sid,
        "number": turn.number,
        "question_id": turn.question_id,
        "kind": turn.kind,
        "prompt": turn.prompt,
        "dimension": turn.dimension,
        "status": turn.status,
        "reprompted": turn.reprompted,
        "asked": turn.asked,
    }


def _replayed(session: Session, replay_key: str | None) -> tuple[Step, ...] | None:
    """The answer stored for this webhook delivery, if it was answered before."""
    if replay_key is None:
        return None
    stored = session.connection().execute(_REPLAYED, {"key": replay_key}).scalar()
    return decode_steps(stored) if stored is not None else None


def _remember_reply(
    session: Session, replay_key: str, call_sid: str, steps: tuple[Step, ...]
) -> None:
    session.connection().execute(
        _INSERT_REPLY,
        {
            "key": replay_key,
            "call_sid": call_sid,
            "steps": encode_steps(steps),
            "created_at": time.time(),
        },
    )
