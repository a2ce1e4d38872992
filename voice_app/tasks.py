"""The background jobs: transcribe an answer, finish a call with its feedback, send the text.

Each job is a method here; the worker runs them on its threads, never on a webhook's.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from voice_app import flow, interviewer
from voice_app.analyst import Analyst
from voice_app.asr import BoundedRecognizer, RecognizerBusy, Transcript
from voice_app.delivery import measure_turns
from voice_app.errors import AudioError, RecordingFetchError, SmsError
from voice_app.line import (
    DELETE_RECORDING,
    FINALIZE,
    TRANSCRIBE,
    TRANSCRIBE_REPLY,
    call_from,
    decode_analysis,
    encode_analysis,
    lock_call,
    read_snapshot,
    store_analysis,
    store_transcript,
    write_call,
)
from voice_app.purge import purge
from voice_app.recordings import RecordingSource
from voice_app.redact import mask_number
from voice_app.replies import classify, grammar
from voice_app.rules import QuestionRules
from voice_app.script import Script
from voice_app.sms import UNSUBSCRIBED, TextSender
from voice_app.store import CallRow, JobRow, OptOutRow, OutboxRow, Store, TurnRow
from voice_app.texts_out import advice_room, compose_feedback_text
from voice_app.tts import PromptCache
from voice_app.worker import DONE, FAILED, Job, JobKind, RetryLater, enqueue

log = logging.getLogger(__name__)

SEND_TEXT = "send_text"
RENDER_PROMPT = "render_prompt"
PURGE = "purge"
PURGE_EVERY_SECONDS = 3600.0


def schedule_purge(session: Session, delay: float = 0.0) -> bool:
    """Queue the next hourly purge (one per hour, whichever process queues it first)."""
    hour = int((time.time() + delay) // PURGE_EVERY_SECONDS)
    return enqueue(session, PURGE, f"hour:{hour}", delay=delay)


# A number Twilio can text: E.164. Withheld caller ID arrives as "anonymous", "Restricted",
# "+266696687" (Twilio's stand-in for anonymous) or empty.
_TEXTABLE = re.compile(r"^\+[1-9]\d{7,14}$")
_ANONYMOUS = {"+266696687", "+7378742833", "+2562533", "+8656696"}


def can_text(number: str) -> bool:
    """True when the number is a real E.164 number rather than a withheld caller ID."""
    return bool(_TEXTABLE.match(number)) and number not in _ANONYMOUS


class Tasks:
    """The handlers of every kind of background job."""

    def __init__(
        self,
        *,
        store: Store,
        script: Script,
        recognizer: BoundedRecognizer,
        recordings: RecordingSource,
        text_sender: TextSender,
        prompts: PromptCache,
        delete_recordings: bool,
        sms_max_chars: int,
        status_callback: str | None,
        reply_phrases: Mapping[str, Sequence[str]],
        retention_days: int,
    ) -> None:
        self.store = store
        self.script = script
        self.recognizer = recognizer
        self.recordings = recordings
        self.text_sender = text_sender
        self.prompts = prompts
        self.delete_recordings = delete_recordings
        self.sms_max_chars = sms_max_chars
        self.status_callback = status_callback
        self.reply_phrases = reply_phrases
        self.retention_days = retention_days
        # Set while background threads run (`app.start_background_work`): analyses then run in a
        # process of their own instead of holding this process's GIL.
        self.analyst: Analyst | None = None

    def kinds(self) -> dict[str, JobKind]:
        """The job kinds, keyed by the names the web layer queues them under."""
        return {
            TRANSCRIBE: JobKind(self.transcribe, self._transcription_failed, max_attempts=8),
            TRANSCRIBE_REPLY: JobKind(self.transcribe_reply, self._reply_failed, max_attempts=6),
            FINALIZE: JobKind(self.finalize, max_attempts=5),
            SEND_TEXT: JobKind(self.send_text, self._text_failed, max_attempts=5),
            DELETE_RECORDING: JobKind(self.delete_recording, max_attempts=5),
            RENDER_PROMPT: JobKind(self.render_prompt, max_attempts=2),
            PURGE: JobKind(self.purge, max_attempts=3),
        }

    def transcribe(self, job: Job) -> None:
        """Fetch an answer's recording, transcribe it, store the transcript, delete the audio.

        The rubric analysis of the answers so far is worked out here too, in the background, and
        stored with the transcript: the webhook that picks the follow-up then only reads it.
        """
        heard, fetched = self._recognise(job)
        if isinstance(heard, str):
            log.error("call %s turn %s: %s", job.call_sid, job.payload.get("turn"), heard)
            self._store_transcript(job, status=flow.FAILED, error=heard, fetched=fetched)
            return
        words = [[w.word, w.start, w.end, w.confidence] for w in heard.words]
        self._store_transcript(
            job,
            status=flow.TRANSCRIBED,
            text=heard.text,
            words=words,
            fetched=fetched,
            analysis=self._analysis_with(job, heard.text),
        )

    def transcribe_reply(self, job: Job) -> None:
        """Recognise a short spoken reply (yes or no to the texting question) and record it."""
        heard, fetched = self._recognise(job, phrases=grammar(self.reply_phrases))
        if isinstance(heard, str):
            log.error("call %s: giving up on a spoken reply: %s", job.call_sid, heard)
            self._record_reply(job, None, fetched=fetched)
            return
        self._record_reply(job, classify(heard.text, self.reply_phrases), fetched=fetched)

    def _recognise(
        self, job: Job, phrases: list[str] | None = None
    ) -> tuple[Transcript | str, bool]:
        """The job's recording recognised, or why it cannot be (no retry helps); and whether
        it was fetched (then it is to be deleted at Twilio)."""
        url = str(job.payload["recording_url"])
        try:
            audio = self.recordings.fetch(url)
        except RecordingFetchError as exc:
            if exc.retryable:
                raise RetryLater(str(exc), delay=min(4.0, 0.5 * job.attempts)) from exc
            return str(exc), False
        try:
            heard: Transcript | str = self.recognizer.transcribe(audio, phrases=phrases)
        except RecognizerBusy as exc:
            # Every recognition slot is taken: back to the queue, the caller keeps holding.
            raise RetryLater(str(exc), delay=0.5, counts=False) from exc
        except AudioError as exc:
            heard = f"recording could not be decoded: {exc}"
        del audio  # the only copy of the caller's voice on this server
        return heard, True

    def _discard_fetched(self, session: Session, job: Job, fetched: bool) -> None:
        """Queue the deletion of a recording we fetched, with the result that makes it useless."""
        if fetched and self.delete_recordings:
            url = str(job.payload["recording_url"])
            enqueue(
                session,
                DELETE_RECORDING,
                url,
                call_sid=job.call_sid,
                payload={"recording_url": url},
            )

    def _analysis_with(self, job: Job, transcript: str) -> flow.KnownAnalysis | None:
        """The rubric analysis of the call's answers once this transcript is among them."""
        call_sid = str(job.call_sid)
        with self.store.reading() as session:
            snapshot = read_snapshot(session, call_sid)
        if not snapshot:
            return None
        call = call_from(call_sid, snapshot)
        for turn in call.turns:
            if turn.number == int(job.payload["turn"]):
                turn.transcript = transcript
        # CPU work: done before the write lock that storing the transcript takes.
        return flow.analysis_ahead(self.script, call, self._analyze)

    def _analyze(self, rules: QuestionRules, answers: Sequence[str]) -> interviewer.Analysis:
        """The rubric analysis, in the analysis process when there is one, else in this thread."""
        done = self.analyst.analyze(rules, answers) if self.analyst is not None else None
        return done if done is not None else flow.analysis_for(rules, answers, self.script.encoder)

    def _reply_failed(self, job: Job, reason: str) -> None:
        log.error("call %s: giving up on a spoken reply: %s", job.call_sid, reason)
        self._record_reply(job, None)

    def _record_reply(self, job: Job, reply: str | None, *, fetched: bool = False) -> None:
        with self.store.transaction() as session:
            self._discard_fetched(session, job, fetched)
            call_sid = str(job.call_sid)
            snapshot = read_snapshot(session, call_sid, lock=True)
            if not snapshot:
                return
            call = call_from(call_sid, snapshot, with_analysis=False)
            flow.on_consent_heard(call, reply)
            write_call(session, call_from(call_sid, snapshot, with_analysis=False), call)

    def _transcription_failed(self, job: Job, reason: str) -> None:
        log.error(
            "call %s turn %s: giving up on the recording: %s",
            job.call_sid,
            job.payload.get("turn"),
            reason,
        )
        self._store_transcript(job, status=flow.FAILED, error=reason)

    def _store_transcript(
        self,
        job: Job,
        *,
        status: str,
        text: str | None = None,
        words: list[list[Any]] | None = None,
        error: str | None = None,
        fetched: bool = False,
        analysis: flow.KnownAnalysis | None = None,
    ) -> None:
        # Encoded before the write lock is taken: CPU work.
        stored_analysis = encode_analysis(analysis) if analysis is not None else None
        call_sid = str(job.call_sid)
        with self.store.transaction() as session:
            self._discard_fetched(session, job, fetched)
            if not lock_call(session, call_sid):
                return
            if stored_analysis is not None:
                # A later transcript may have landed meanwhile: the analysis then no longer
                # matches the answers, and picking the follow-up works it out itself.
                store_analysis(session, call_sid, stored_analysis)
            fields = {"recording_url": None, "transcript": text, "words": words, "error": error}
            store_transcript(session, call_sid, int(job.payload["turn"]), fields, status)

    def finalize(self, job: Job) -> None:
        """Once every answer of a finished call is transcribed: feedback, then the text."""
        call_sid = str(job.call_sid)
        with self.store.reading() as session:
            unfinished = session.scalar(
                select(JobRow.id).where(
                    JobRow.call_sid == call_sid,
                    JobRow.kind.in_([TRANSCRIBE, TRANSCRIBE_REPLY]),
                    JobRow.state.not_in([DONE, FAILED]),
                )
            )
            if unfinished is not None:
                raise RetryLater("answers are still being transcribed", delay=0.5, counts=False)
            turns = list(
                session.scalars(
                    select(TurnRow).where(TurnRow.call_sid == call_sid).order_by(TurnRow.number)
                )
            )
            row = session.get(CallRow, call_sid)
            known = decode_analysis(row.analysis) if row is not None else None
            # The analysis is CPU work: done here, outside the write lock the next step takes.
            feedback: dict[str, Any] = self._feedback(turns, known)
        with self.store.transaction() as session:
            call = session.get(CallRow, call_sid)
            if call is None:
                return
            call.feedback = feedback
            if self._may_text(session, call):
                session.add(
                    OutboxRow(
                        call_sid=call_sid,
                        to_number=call.from_number,
                        body=compose_feedback_text(str(call.feedback["sms"]), self.sms_max_chars),
                    )
                )
                enqueue(session, SEND_TEXT, call_sid, call_sid=call_sid)

    def _feedback(
        self, turns: list[TurnRow], known: flow.KnownAnalysis | None = None
    ) -> dict[str, Any]:
        """Feedback per question asked; the text carries the advice of the first one answered.

        `known` is the analysis the transcription worked out, used for the answers it read.
        """
        per_question: list[dict[str, Any]] = []
        texts: list[tuple[bool, str]] = []
        # Written to fit beside the opt-out line, so that line never cuts the advice short.
        room = advice_room(self.sms_max_chars)
        for rules in self.script.questions:
            asked = [t for t in turns if t.question_id == rules.id]
            if not asked:
                continue
            answers = [t.transcript for t in asked if t.transcript and t.transcript.strip()]
            delivery = measure_turns(t.words for t in asked)
            feedback = interviewer.summarize(
                rules,
                flow.analysis_of(known, rules, answers, self._analyze),
                delivery=delivery,
                sms_limit=room,
            )
            per_question.append({"question": rules.id, "answers": len(answers), **feedback.full})
            texts.append((bool(answers), feedback.sms))
        if not texts:  # hung up before the first question was asked
            first = self.script.questions[0]
            nothing = interviewer.summarize(first, interviewer.analyze(first, []), sms_limit=room)
            texts.append((False, nothing.sms))
        answered = [sms for has_answers, sms in texts if has_answers]
        return {"sms": answered[0] if answered else texts[0][1], "questions": per_question}

    def _may_text(self, session: Session, call: CallRow) -> bool:
        masked = mask_number(call.from_number)
        if not call.consent:
            log.info("call %s: no text (the caller did not ask for one)", call.call_sid)
            return False
        if not can_text(call.from_number):
            log.info("call %s: no text (caller ID %s cannot receive texts)", call.call_sid, masked)
            return False
        if session.get(OptOutRow, call.from_number) is not None:
            log.info("call %s: no text (%s opted out)", call.call_sid, masked)
            return False
        existing = session.scalar(select(OutboxRow.id).where(OutboxRow.call_sid == call.call_sid))
        return existing is None

    def send_text(self, job: Job) -> None:
        """Hand the call's feedback text to Twilio, exactly once."""
        # Durable: after a power cut the mark must still say a send may have happened.
        with self.store.transaction(durable=True) as session:
            message = self._outbox(session, job)
            if message is None or message.state in ("sent", "failed"):
                return
            # "sending" here means an earlier attempt may have reached Twilio before it died.
            uncertain = message.state == "sending"
            message.state = "sending"
            to_number, body, queued_at = message.to_number, message.body, message.created_at
        try:
            sid = self.text_sender.find_sent(to_number, body, queued_at) if uncertain else None
            if sid is None:
                sid = self.text_sender.send(to_number, body, status_callback=self.status_callback)
        except SmsError as exc:
            if not exc.permanent:
                # Backoff with jitter, so texts retried together do not hit Twilio together.
                delay = min(60.0, 2.0**job.attempts) * random.uniform(0.5, 1.5)
                raise RetryLater(str(exc), delay=delay) from exc
            self._text_failed(job, str(exc), code=exc.code)
            return
        with self.store.transaction() as session:
            message = self._outbox(session, job)
            if message is not None:
                message.state = "sent"
                message.message_sid = sid
                message.sent_at = time.time()
        log.info(
            "call %s: feedback text %s (%s)",
            job.call_sid,
            "found already sent" if uncertain else "sent",
            sid,
        )

    @staticmethod
    def _outbox(session: Session, job: Job) -> OutboxRow | None:
        return session.scalars(select(OutboxRow).where(OutboxRow.call_sid == job.call_sid)).first()

    def _text_failed(self, job: Job, reason: str, code: int | None = None) -> None:
        log.error("call %s: feedback text not sent: %s", job.call_sid, reason)
        with self.store.transaction() as session:
            message = self._outbox(session, job)
            if message is None:
                return
            message.state = "failed"
            message.error = reason
            if code == UNSUBSCRIBED and session.get(OptOutRow, message.to_number) is None:
                session.add(OptOutRow(number=message.to_number))

    def delete_recording(self, job: Job) -> None:
        """Delete a recording from Twilio (audio is not kept once transcribed)."""
        try:
            self.recordings.delete(str(job.payload["recording_url"]))
        except RecordingFetchError as exc:
            if exc.retryable:
                raise RetryLater(str(exc), delay=2.0 * job.attempts) from exc
            log.error("call %s: recording not deleted: %s", job.call_sid, exc)

    def purge(self, job: Job) -> None:
        """Delete what is past the retention period, then queue the next purge."""
        report = purge(self.store, self.retention_days)
        log.info(
            "purge: %d calls, %d turns, %d texts deleted", report.calls, report.turns, report.texts
        )
        with self.store.transaction() as session:
            schedule_purge(session, delay=PURGE_EVERY_SECONDS)

    def render_prompt(self, job: Job) -> None:
        """Render a prompt that was spoken with <Say> because it was not cached yet."""
        self.prompts.render(str(job.payload["text"]))
