"""The call flow: a small state machine per call, over plain values.

Stages: interview (question, answer, holding, follow-ups, and once, while the first answer is
transcribed, the question whether to text the feedback) -> ended. Each webhook is an event
(`start`, `on_consent`, `on_answer`, `on_wait`, `on_hangup`) that updates the call's state in place
and returns an `Outcome`: what the caller hears next (`reply`, a tuple of steps the web layer
turns into TwiML) and what must happen in the background (`effects`).

Live mode (a Media Stream) drives the same state with its own events: `start_live` and
`live_resume` (what to play when the stream starts), `on_live_consent` (the texting question,
asked first), and `on_heard` (an answer that was transcribed as it was spoken, so no holding).

Nothing here knows Flask, Twilio, the database or Vosk, so every path is tested with plain values.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from voice_app import interviewer
from voice_app.embedding import Encoder
from voice_app.rules import QuestionRules
from voice_app.script import Script

# Stages of a call.
INTERVIEW = "interview"
ENDED = "ended"

# Statuses of a turn.
ASKED = "asked"  # the prompt was spoken, the caller is answering
RECORDED = "recorded"  # a recording arrived and waits for transcription
LATE = "late"  # the caller stopped waiting; the transcript still counts for the feedback
TRANSCRIBED = "transcribed"
FAILED = "failed"  # the recording could not be fetched or decoded
SKIPPED = "skipped"  # nothing was said, twice

QUESTION = "question"
FOLLOW_UP = "follow_up"


@dataclass
class Turn:
    """One question or follow-up put to the caller."""

    number: int
    question_id: str
    kind: str
    prompt: str
    dimension: str | None = None
    status: str = ASKED
    reprompted: bool = False
    transcript: str | None = None
    # How many times the prompt has been put to the caller (after * or a re-prompt it grows),
    # so that each time is a step of its own: a replayed request is told from a new one.
    asked: int = 1

    def listen(self) -> Listen:
        """The recording step for this turn's current asking."""
        return Listen(self.number, self.dimension, self.asked)


@dataclass
class Call:
    """What the flow knows of one call."""

    call_sid: str
    stage: str = INTERVIEW
    consent: bool | None = None
    # A spoken reply to the texting question is being transcribed.
    consent_pending: bool = False
    # The consent decided from speech, to confirm to the caller at the next chance:
    # "yes", "no" or "unclear".
    consent_heard: str | None = None
    probed: list[str] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    # The rubric analysis of the answers so far, worked out in the background (`analysis_ahead`)
    # so that picking the follow-up does not have to; used only while the answers are unchanged.
    analysis: KnownAnalysis | None = None

    @property
    def current(self) -> Turn | None:
        """The turn being answered (None only for a call with no question asked)."""
        return self.turns[-1] if self.turns else None

    def answers_to(self, question_id: str) -> list[str]:
        """The caller's transcribed answers to one question and its follow-ups."""
        return [
            t.transcript
            for t in self.turns
            if t.question_id == question_id and t.transcript and t.transcript.strip()
        ]


@dataclass(frozen=True)
class KnownAnalysis:
    """A rubric analysis worked out ahead of time, and which answers it read."""

    question_id: str
    answers_key: str  # `answers_key` of the answers it read
    analysis: interviewer.Analysis


# What the caller hears: steps in order.
@dataclass(frozen=True)
class Speak:
    """Say a line."""

    text: str


@dataclass(frozen=True)
class AskConsent:
    """Ask the texting question; the caller answers on the keypad or says yes or no."""

    text: str


@dataclass(frozen=True)
class Listen:
    """Record the caller's answer to a turn; `probe` is the rubric dimension it digs into."""

    turn: int
    probe: str | None = None
    ask: int = 1


@dataclass(frozen=True)
class Hold:
    """Keep the line alive while a transcription runs, then ask the flow again."""

    turn: int
    attempt: int


@dataclass(frozen=True)
class HangUp:
    """End the call."""


Step = Speak | AskConsent | Listen | Hold | HangUp


# What must happen in the background.
@dataclass(frozen=True)
class Transcribe:
    """Fetch and transcribe the recording of a turn."""

    turn: int
    recording_url: str


@dataclass(frozen=True)
class TranscribeReply:
    """Recognise a short spoken reply (`purpose`: "consent") against its phrase list."""

    purpose: str
    recording_url: str


@dataclass(frozen=True)
class DiscardRecording:
    """Delete a recording that will not be transcribed (the caller asked to hear the question)."""

    recording_url: str


@dataclass(frozen=True)
class FinishCall:
    """The call is over: build the feedback and send the text."""

    reason: str


Effect = Transcribe | TranscribeReply | DiscardRecording | FinishCall


@dataclass(frozen=True)
class Outcome:
    """The result of one event: the new state, what to say, what to do."""

    call: Call
    reply: tuple[Step, ...] = ()
    effects: tuple[Effect, ...] = ()


def start(script: Script, call_sid: str) -> Outcome:
    """A call comes in: greet the caller and ask the first question."""
    rules = script.questions[0]
    turn = Turn(number=0, question_id=rules.id, kind=QUESTION, prompt=rules.prompt)
    call = Call(call_sid=call_sid, turns=[turn])
    steps = (Speak(script.greeting), Speak(script.lines.introduction), Speak(turn.prompt))
    return Outcome(call, (*steps, turn.listen()))


def start_live(script: Script, call_sid: str) -> Outcome:
    """A call comes in for live mode: the same first question, the texting question first."""
    call = start(script, call_sid).call
    return live_resume(script, call)


def live_resume(script: Script, call: Call) -> Outcome:
    """What a live stream plays when it (re)connects: where the call stands now.

    Live mode asks the texting question before the first question: there is no transcription
    wait to fill, and the caller's first answer should lead straight to its follow-up.
    """
    turn = call.current
    if call.stage == ENDED or turn is None:
        return Outcome(call, (HangUp(),))
    if call.consent is None:
        return Outcome(call, (Speak(script.greeting), AskConsent(script.lines.consent_live)))
    if turn.status == ASKED:
        return Outcome(call, (Speak(turn.prompt), turn.listen()))
    # A stream that reconnects after an answer was taken: the turn is settled, go on.
    return _advance(script, call)


def on_live_consent(script: Script, call: Call, heard: str) -> Outcome:
    """Live mode: the texting question was answered by key or speech ("yes", "no", "unclear"),
    or not at all ("none"); then the first question."""
    turn = call.current
    if call.consent is not None or call.stage == ENDED or turn is None:
        return live_resume(script, call)
    call.consent = heard == "yes"
    line = _consent_line(script, heard) if heard != "none" else script.lines.consent_no
    steps = (Speak(line), Speak(script.lines.introduction), Speak(turn.prompt), turn.listen())
    return Outcome(call, steps)


def on_heard(
    script: Script,
    call: Call,
    turn_number: int,
    transcript: str,
    *,
    hung_up: bool = False,
) -> Outcome:
    """Live mode: an answer ended (key, silence or hang-up) and was transcribed as it was spoken."""
    turn = _answering(call, turn_number)
    if turn is None:
        return live_resume(script, call)
    turn.transcript = transcript
    turn.status = TRANSCRIBED
    if hung_up:
        return _finish(call, "hangup")
    if not transcript.strip():
        return _heard_nothing(script, call, turn)
    return _advance(script, call)


def on_consent(
    script: Script, call: Call, digits: str, recording_url: str | None = None
) -> Outcome:
    """The caller answered the texting question: 1 or 2, a spoken reply, or nothing."""
    if call.consent is not None or call.consent_pending:
        return current_reply(script, call)
    key = digits.strip()[:1]
    effects: tuple[Effect, ...] = ()
    if key in ("1", "2"):
        call.consent = key == "1"
        # The key ended a short recording that nobody needs.
        effects = (DiscardRecording(recording_url),) if recording_url else ()
        steps: tuple[Step, ...] = (Speak(_consent_line(script, "yes" if call.consent else "no")),)
    elif recording_url:
        # Keypad always works; a spoken reply is recognised against the yes/no phrase list.
        call.consent_pending = True
        effects = (TranscribeReply("consent", recording_url),)
        steps = ()
    else:
        call.consent = False
        steps = (Speak(script.lines.consent_no),)
    if call.stage == ENDED:
        return Outcome(call, (*steps, HangUp()), effects)
    turn = call.current
    assert turn is not None, "a call in its interview always has a turn"
    if turn.status == RECORDED:
        return Outcome(call, (*steps, Hold(turn.number, 1)), effects)
    return Outcome(call, (*steps, *current_reply(script, call).reply), effects)


def on_consent_heard(call: Call, reply: str | None) -> None:
    """The spoken reply to the texting question was recognised as `yes`, `no`, or neither."""
    if not call.consent_pending:
        return
    call.consent_pending = False
    call.consent = reply == "yes"
    call.consent_heard = reply if reply in ("yes", "no") else "unclear"


def _consent_line(script: Script, heard: str) -> str:
    if heard == "yes":
        return script.lines.consent_yes
    if heard == "no":
        return script.lines.consent_no
    return script.lines.consent_unclear


def on_answer(
    script: Script,
    call: Call,
    turn_number: int,
    *,
    recording_url: str | None,
    digits: str = "",
    hung_up: bool = False,
) -> Outcome:
    """A recording ended: by #, by silence, by * (repeat), by hang-up, or with nothing recorded."""
    turn = _answering(call, turn_number)
    if turn is None:
        # A retried or out-of-date request: repeat what the caller should hear now.
        return current_reply(script, call)
    if "*" in digits and not hung_up:
        discard = (DiscardRecording(recording_url),) if recording_url else ()
        turn.asked += 1
        return Outcome(call, (Speak(turn.prompt), turn.listen()), discard)
    if recording_url:
        turn.status = RECORDED
        transcribe = Transcribe(turn.number, recording_url)
        if hung_up:
            return _finish(call, "hangup", (transcribe,))
        if call.consent is None and not call.consent_pending:
            # The first answer is being transcribed: a good moment to ask about the text.
            steps: tuple[Step, ...] = (
                Speak(script.lines.acknowledge),
                AskConsent(script.lines.consent),
            )
        else:
            steps = (Speak(script.lines.acknowledge), Hold(turn.number, 1))
        return Outcome(call, steps, (transcribe,))
    if hung_up:
        return _finish(call, "hangup")
    return _heard_nothing(script, call, turn)


def _answering(call: Call, turn_number: int) -> Turn | None:
    """The turn `turn_number` if the caller is answering it now; None for a stale request."""
    turn = call.current
    if call.stage != INTERVIEW or turn is None or turn.number != turn_number:
        return None
    return turn if turn.status == ASKED else None


def only_holding(script: Script, call: Call, turn_number: int, attempt: int) -> bool:
    """True when `on_wait` would only keep the caller holding, changing nothing."""
    turn = call.current
    if call.stage != INTERVIEW or turn is None or turn.number != turn_number:
        return False
    if attempt * script.hold_seconds >= script.max_wait_seconds or call.consent_heard:
        return False
    return call.consent_pending or turn.status == RECORDED


def on_wait(script: Script, call: Call, turn_number: int, attempt: int) -> Outcome:
    """The caller is holding: move on once the transcript is in, or after the longest wait."""
    turn = call.current
    if call.stage != INTERVIEW or turn is None or turn.number != turn_number:
        return current_reply(script, call)
    waited_enough = attempt * script.hold_seconds >= script.max_wait_seconds
    if call.consent_pending:
        if not waited_enough:
            return Outcome(call, (Hold(turn.number, attempt + 1),))
        on_consent_heard(call, None)
    outcome = _after_wait(script, call, turn, attempt, waited_enough)
    if call.consent_heard is not None:
        heard = Speak(_consent_line(script, call.consent_heard))
        call.consent_heard = None
        return Outcome(outcome.call, (heard, *outcome.reply), outcome.effects)
    return outcome


def _after_wait(
    script: Script, call: Call, turn: Turn, attempt: int, waited_enough: bool
) -> Outcome:
    if turn.status == RECORDED:
        if not waited_enough:
            still = (Speak(script.lines.still_working),) if attempt % 5 == 0 else ()
            return Outcome(call, (*still, Hold(turn.number, attempt + 1)))
        turn.status = LATE
        return _advance(script, call, lead=script.lines.could_not_listen)
    if turn.status == TRANSCRIBED and not (turn.transcript or "").strip():
        return _heard_nothing(script, call, turn)
    if turn.status == FAILED:
        return _advance(script, call, lead=script.lines.could_not_listen)
    if turn.status in (TRANSCRIBED, LATE, SKIPPED):
        return _advance(script, call)
    return current_reply(script, call)


def on_hangup(call: Call) -> Outcome:
    """Twilio reports the call over (completed, busy, failed, no answer, canceled)."""
    if call.stage == ENDED:
        return Outcome(call)
    return _finish(call, "hangup")


def current_reply(script: Script, call: Call) -> Outcome:
    """What the caller should hear now, for a request that does not advance the call."""
    turn = call.current
    if call.stage == ENDED or turn is None:
        return Outcome(call, (HangUp(),))
    if turn.status == ASKED:
        return Outcome(call, (Speak(turn.prompt), turn.listen()))
    return Outcome(call, (Hold(turn.number, 1),))


def _heard_nothing(script: Script, call: Call, turn: Turn) -> Outcome:
    if not turn.reprompted:
        turn.reprompted = True
        turn.status = ASKED
        turn.asked += 1
        steps = (
            Speak(script.lines.reprompt),
            Speak(turn.prompt),
            turn.listen(),
        )
        return Outcome(call, steps)
    turn.status = SKIPPED
    return _advance(script, call, lead=script.lines.moving_on)


def analysis_for(
    rules: QuestionRules, answers: Sequence[str], encoder: Encoder | None = None
) -> interviewer.Analysis:
    """The rubric analysis of one question's answers, remembered for the latest few inputs.

    A pure function's memo: live mode analyses an answer while it is spoken, and the follow-up
    picked when the answer ends then finds the analysis already made.
    """
    key = (id(rules), id(encoder), tuple(answers))
    with _MEMO_LOCK:
        found = _MEMO.get(key)
        if found is not None and found[0] is rules and found[1] is encoder:
            _MEMO.move_to_end(key)
            return found[2]
    analysis = interviewer.analyze(rules, list(answers), encoder)
    with _MEMO_LOCK:
        # The rules and encoder are kept with their analysis, so a reused id() never matches.
        _MEMO[key] = (rules, encoder, analysis)
        while len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
    return analysis


_MEMO_SIZE = 256
_MEMO_LOCK = threading.Lock()
_MEMO: OrderedDict[
    tuple[int, int, tuple[str, ...]],
    tuple[QuestionRules, Encoder | None, interviewer.Analysis],
] = OrderedDict()


def _advance(script: Script, call: Call, lead: str | None = None) -> Outcome:
    """Ask the next follow-up, or the next question, or close the call."""
    turn = call.current
    assert turn is not None, "advance is only called during the interview"
    lead_steps = (Speak(lead),) if lead else ()
    rules = script.rules(turn.question_id)
    answers = call.answers_to(rules.id)
    follow_ups_done = sum(
        1 for t in call.turns if t.question_id == rules.id and t.kind == FOLLOW_UP
    )
    follow_up = None
    if answers and follow_ups_done < script.max_follow_ups:
        analysis = analysis_of(call.analysis, rules, answers, _analyzer(script))
        probed = [p.split(":", 1)[1] for p in call.probed if p.startswith(f"{rules.id}:")]
        rng = random.Random(f"{call.call_sid}:{turn.number + 1}")
        follow_up = interviewer.pick_follow_up(rules, analysis, probed, rng)
    if follow_up is not None:
        call.probed = [*call.probed, f"{rules.id}:{follow_up.marker}"]
        new = Turn(
            number=turn.number + 1,
            question_id=rules.id,
            kind=FOLLOW_UP,
            prompt=follow_up.text,
            dimension=follow_up.dimension,
        )
        call.turns = [*call.turns, new]
        return Outcome(call, (*lead_steps, Speak(new.prompt), new.listen()))
    next_rules = script.question_after(rules.id)
    if next_rules is not None:
        new = Turn(turn.number + 1, next_rules.id, QUESTION, next_rules.prompt)
        call.turns = [*call.turns, new]
        steps = (Speak(script.lines.next_question), Speak(new.prompt), new.listen())
        return Outcome(call, (*lead_steps, *steps))
    closing = script.lines.closing_with_text if call.consent else script.lines.closing_without_text
    return _finish(call, "completed", reply=(*lead_steps, Speak(closing), HangUp()))


def _finish(
    call: Call, reason: str, effects: tuple[Effect, ...] = (), reply: tuple[Step, ...] = ()
) -> Outcome:
    call.stage = ENDED
    return Outcome(call, reply, (*effects, FinishCall(reason)))


# How an analysis is worked out: `interviewer.analyze`, or the same run elsewhere.
Analyze = Callable[[QuestionRules, Sequence[str]], interviewer.Analysis]


def answers_key(answers: Sequence[str]) -> str:
    """A short fingerprint of answers: tells whether an analysis read exactly these."""
    return hashlib.sha256(json.dumps(list(answers)).encode("utf-8")).hexdigest()[:32]


def analysis_ahead(
    script: Script, call: Call, analyze: Analyze | None = None
) -> KnownAnalysis | None:
    """The analysis the next follow-up (and the feedback) will need, for the background to do.

    `analyze` works it out (by default `analysis_for` with the script's encoder, here; or the
    same run elsewhere).
    """
    turn = call.current
    if turn is None:
        return None
    rules = script.rules(turn.question_id)
    answers = call.answers_to(rules.id)
    if not answers:
        return None
    known = _reading(call.analysis, rules.id, answers)
    if known is not None:
        return known
    analysis = (analyze or _analyzer(script))(rules, answers)
    return KnownAnalysis(rules.id, answers_key(answers), analysis)


def _analyzer(script: Script) -> Analyze:
    """The analysis worked out here, with the script's sentence encoder (if any)."""
    return lambda rules, answers: analysis_for(rules, answers, script.encoder)


def analysis_of(
    known: KnownAnalysis | None,
    rules: QuestionRules,
    answers: Sequence[str],
    analyze: Analyze,
) -> interviewer.Analysis:
    """The analysis worked out ahead when it read these very answers; else worked out now."""
    reading = _reading(known, rules.id, answers)
    return reading.analysis if reading is not None else analyze(rules, answers)


def _reading(
    known: KnownAnalysis | None, question_id: str, answers: Sequence[str]
) -> KnownAnalysis | None:
    """`known` if it read exactly these answers to this question."""
    if known is None or known.question_id != question_id:
        return None
    return known if known.answers_key == answers_key(answers) else None
