"""The call flow on plain values: what the caller hears next and what runs in the background."""

from __future__ import annotations

from dataclasses import replace

import pytest

from voice_app import flow, interviewer
from voice_app.config import load_settings
from voice_app.flow import AskConsent, Call, HangUp, Hold, Listen, Speak
from voice_app.script import Script, load_script

WEAK_ANSWER = "um we did a big project last year and it went well i think"
URL = "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1"


@pytest.fixture
def script() -> Script:
    return load_script(load_settings({}, environ={}))


def spoken(outcome: flow.Outcome) -> list[str]:
    return [step.text for step in outcome.reply if isinstance(step, Speak | AskConsent)]


def record(script: Script, call: Call, text: str | None) -> flow.Outcome:
    """The caller answers the current turn; the transcript arrives; the caller is still holding."""
    turn = call.current
    assert turn is not None
    outcome = flow.on_answer(script, call, turn.number, recording_url=URL)
    if call.consent is None:
        flow.on_consent(script, call, "1")
    turn.status = flow.TRANSCRIBED
    turn.transcript = text or ""
    return flow.on_wait(script, call, turn.number, 1) if outcome.reply else outcome


def test_a_call_opens_with_greeting_then_the_question_then_records(script: Script) -> None:
    outcome = flow.start(script, "CA1")

    texts = spoken(outcome)
    assert texts[0] == script.greeting
    assert texts[-1] == script.questions[0].prompt
    assert outcome.reply[-1] == Listen(0)
    assert outcome.call.stage == flow.INTERVIEW


def test_first_answer_is_transcribed_while_the_caller_is_asked_about_texts(
    script: Script,
) -> None:
    call = flow.start(script, "CA1").call

    outcome = flow.on_answer(script, call, 0, recording_url=URL, digits="#")

    assert outcome.effects == (flow.Transcribe(0, URL),)
    assert isinstance(outcome.reply[-1], AskConsent)
    assert call.current is not None and call.current.status == flow.RECORDED


@pytest.mark.parametrize(("digits", "consent"), [("1", True), ("2", False), ("", False)])
def test_consent_key_decides_whether_a_text_is_sent(
    script: Script, digits: str, consent: bool
) -> None:
    call = flow.start(script, "CA1").call
    flow.on_answer(script, call, 0, recording_url=URL)

    outcome = flow.on_consent(script, call, digits)

    assert call.consent is consent
    assert outcome.reply[-1] == Hold(0, 1)
    expected = script.lines.consent_yes if consent else script.lines.consent_no
    assert spoken(outcome) == [expected]


def test_consent_is_asked_only_once(script: Script) -> None:
    call = flow.start(script, "CA1").call
    flow.on_answer(script, call, 0, recording_url=URL)
    flow.on_consent(script, call, "2")

    again = flow.on_consent(script, call, "1")

    assert call.consent is False
    assert not any(isinstance(step, AskConsent) for step in again.reply)


def test_holding_keeps_the_line_alive_until_the_transcript_is_in(script: Script) -> None:
    call = flow.start(script, "CA1").call
    flow.on_answer(script, call, 0, recording_url=URL)
    flow.on_consent(script, call, "1")

    outcome = flow.on_wait(script, call, 0, 3)

    assert outcome.reply[-1] == Hold(0, 4)
    assert outcome.effects == ()


def test_holding_is_bounded_then_the_call_moves_on(script: Script) -> None:
    call = flow.start(script, "CA1").call
    flow.on_answer(script, call, 0, recording_url=URL)
    flow.on_consent(script, call, "1")
    last_attempt = -(-script.max_wait_seconds // script.hold_seconds)  # rounded up

    outcome = flow.on_wait(script, call, 0, last_attempt)

    assert spoken(outcome)[0] == script.lines.could_not_listen
    assert not any(isinstance(step, Hold) for step in outcome.reply)
    assert call.turns[0].status == flow.LATE


def test_follow_up_probes_the_first_missing_dimension_in_the_rules_order(script: Script) -> None:
    call = flow.start(script, "CA1").call

    outcome = record(script, call, WEAK_ANSWER)

    rules = script.questions[0]
    follow_up = call.current
    assert follow_up is not None and follow_up.kind == flow.FOLLOW_UP
    assert follow_up.dimension == rules.probe_order[0]
    assert follow_up.prompt in rules.dimensions[rules.probe_order[0]].follow_ups
    assert outcome.reply[-1] == Listen(1, follow_up.dimension)


def test_no_dimension_is_probed_twice_and_the_call_closes_after_the_follow_ups(
    script: Script,
) -> None:
    script = replace(script, max_follow_ups=3)
    call = flow.start(script, "CA1").call

    record(script, call, WEAK_ANSWER)
    record(script, call, "it was good")
    record(script, call, "yes it was")
    closing = record(script, call, "i do not know")

    dimensions = [t.dimension for t in call.turns if t.kind == flow.FOLLOW_UP]
    assert len(dimensions) == 3 and len(set(dimensions)) == 3
    assert spoken(closing)[-1] == script.lines.closing_with_text
    assert closing.reply[-1] == HangUp()
    assert closing.effects == (flow.FinishCall("completed"),)
    assert call.stage == flow.ENDED


def test_closing_without_consent_does_not_promise_a_text(script: Script) -> None:
    script = replace(script, max_follow_ups=0)
    call = flow.start(script, "CA1").call
    flow.on_answer(script, call, 0, recording_url=URL)
    flow.on_consent(script, call, "2")
    call.turns[0].status = flow.TRANSCRIBED
    call.turns[0].transcript = WEAK_ANSWER

    closing = flow.on_wait(script, call, 0, 1)

    assert spoken(closing)[-1] == script.lines.closing_without_text


def test_silence_gets_one_friendly_reprompt_then_the_call_moves_on(script: Script) -> None:
    script = replace(script, max_follow_ups=0)
    call = flow.start(script, "CA1").call

    first = flow.on_answer(script, call, 0, recording_url=None)
    second = flow.on_answer(script, call, 0, recording_url=None)

    assert spoken(first)[0] == script.lines.reprompt
    assert first.reply[-1] == Listen(0, ask=2)  # a step of its own: not mistaken for a replay
    assert spoken(second)[0] == script.lines.moving_on
    assert call.turns[0].status == flow.SKIPPED
    assert second.reply[-1] == HangUp()


def test_an_empty_transcript_counts_as_silence(script: Script) -> None:
    call = flow.start(script, "CA1").call

    outcome = record(script, call, "")

    assert spoken(outcome)[0] == script.lines.reprompt
    assert outcome.reply[-1] == Listen(0, ask=2)
    assert call.turns[0].status == flow.ASKED


def test_star_repeats_the_question_and_discards_the_recording(script: Script) -> None:
    call = flow.start(script, "CA1").call

    outcome = flow.on_answer(script, call, 0, recording_url=URL, digits="*")

    assert spoken(outcome) == [script.questions[0].prompt]
    assert outcome.reply[-1] == Listen(0, ask=2)
    assert outcome.effects == (flow.DiscardRecording(URL),)
    assert call.turns[0].status == flow.ASKED


def test_hanging_up_mid_answer_transcribes_what_was_said_and_finishes(script: Script) -> None:
    call = flow.start(script, "CA1").call

    outcome = flow.on_answer(script, call, 0, recording_url=URL, digits="hangup", hung_up=True)

    assert outcome.effects == (flow.Transcribe(0, URL), flow.FinishCall("hangup"))
    assert call.stage == flow.ENDED


def test_status_callback_after_the_closing_does_not_finish_twice(script: Script) -> None:
    call = flow.start(script, "CA1").call
    assert flow.on_hangup(call).effects == (flow.FinishCall("hangup"),)

    assert flow.on_hangup(call).effects == ()


def test_a_stale_request_repeats_what_the_caller_should_hear_and_changes_nothing(
    script: Script,
) -> None:
    call = flow.start(script, "CA1").call
    flow.on_answer(script, call, 0, recording_url=URL)

    outcome = flow.on_answer(script, call, 0, recording_url=URL + "2")

    assert outcome.effects == ()
    assert outcome.reply == (Hold(0, 1),)


def test_phrasing_is_stable_within_a_call_and_varies_between_calls(script: Script) -> None:
    def first_follow_up(call_sid: str) -> str:
        call = flow.start(script, call_sid).call
        record(script, call, WEAK_ANSWER)
        assert call.current is not None
        return call.current.prompt

    assert first_follow_up("CA-same") == first_follow_up("CA-same")
    assert len({first_follow_up(f"CA{i}") for i in range(30)}) > 1


def test_a_spoken_reply_to_the_texting_question_is_recognised_in_the_background(
    script: Script,
) -> None:
    call = flow.start(script, "CA1").call
    flow.on_answer(script, call, 0, recording_url=URL)

    outcome = flow.on_consent(script, call, "", recording_url=URL + "c")

    assert outcome.effects == (flow.TranscribeReply("consent", URL + "c"),)
    assert outcome.reply == (Hold(0, 1),)
    assert call.consent is None and call.consent_pending


def test_the_caller_holds_until_the_spoken_reply_is_understood_then_hears_it_confirmed(
    script: Script,
) -> None:
    call = flow.start(script, "CA1").call
    flow.on_answer(script, call, 0, recording_url=URL)
    flow.on_consent(script, call, "", recording_url=URL + "c")
    call.turns[0].status, call.turns[0].transcript = flow.TRANSCRIBED, WEAK_ANSWER

    assert flow.on_wait(script, call, 0, 1).reply == (Hold(0, 2),)

    flow.on_consent_heard(call, "yes")
    outcome = flow.on_wait(script, call, 0, 2)

    assert call.consent is True
    assert spoken(outcome)[0] == script.lines.consent_yes
    assert isinstance(outcome.reply[-1], Listen)  # then the follow-up


def test_an_unclear_spoken_reply_means_no_text(script: Script) -> None:
    call = flow.start(script, "CA1").call
    flow.on_answer(script, call, 0, recording_url=URL)
    flow.on_consent(script, call, "", recording_url=URL + "c")
    call.turns[0].status, call.turns[0].transcript = flow.TRANSCRIBED, WEAK_ANSWER

    flow.on_consent_heard(call, None)
    outcome = flow.on_wait(script, call, 0, 1)

    assert call.consent is False
    assert spoken(outcome)[0] == script.lines.consent_unclear


def test_a_key_press_at_the_texting_question_discards_its_short_recording(
    script: Script,
) -> None:
    call = flow.start(script, "CA1").call
    flow.on_answer(script, call, 0, recording_url=URL)

    outcome = flow.on_consent(script, call, "1", recording_url=URL + "c")

    assert call.consent is True
    assert outcome.effects == (flow.DiscardRecording(URL + "c"),)


def test_holding_is_recognised_as_changing_nothing(script: Script) -> None:
    call = flow.start(script, "CA1").call
    flow.on_answer(script, call, 0, recording_url=URL)
    flow.on_consent(script, call, "1")
    before = replace(call, turns=[replace(t) for t in call.turns])

    assert flow.only_holding(script, call, 0, 1)
    outcome = flow.on_wait(script, call, 0, 1)
    assert outcome.effects == () and call == before

    call.turns[0].status = flow.TRANSCRIBED
    assert not flow.only_holding(script, call, 0, 2)  # the transcript is in: the call moves on
    last_attempt = -(-script.max_wait_seconds // script.hold_seconds)
    call.turns[0].status = flow.RECORDED
    assert not flow.only_holding(script, call, 0, last_attempt)  # waited long enough


# Live mode: the same state, driven by a stream.


def test_live_mode_asks_about_texts_before_the_question(script: Script) -> None:
    outcome = flow.start_live(script, "CA1")
    assert spoken(outcome) == [script.greeting, script.lines.consent_live]
    assert isinstance(outcome.reply[-1], AskConsent)
    outcome = flow.on_live_consent(script, outcome.call, "unclear")
    assert outcome.call.consent is False
    assert spoken(outcome) == [
        script.lines.consent_unclear,
        script.lines.introduction,
        script.questions[0].prompt,
    ]
    assert outcome.reply[-1] == Listen(0)


def test_a_heard_answer_leads_straight_to_a_follow_up_with_no_holding(script: Script) -> None:
    call = flow.on_live_consent(script, flow.start_live(script, "CA1").call, "yes").call
    outcome = flow.on_heard(script, call, 0, WEAK_ANSWER)
    assert not any(isinstance(step, Hold) for step in outcome.reply)
    listen = outcome.reply[-1]
    assert isinstance(listen, Listen) and listen.turn == 1 and listen.probe is not None
    assert call.turns[0].transcript == WEAK_ANSWER
    # The same answer again (a retry) changes nothing.
    again = flow.on_heard(script, call, 0, WEAK_ANSWER)
    assert len(again.call.turns) == 2


def test_a_hang_up_mid_answer_keeps_the_words_and_finishes(script: Script) -> None:
    call = flow.on_live_consent(script, flow.start_live(script, "CA1").call, "yes").call
    outcome = flow.on_heard(script, call, 0, WEAK_ANSWER, hung_up=True)
    assert outcome.effects == (flow.FinishCall("hangup"),)
    assert call.stage == flow.ENDED and call.turns[0].transcript == WEAK_ANSWER


def test_the_analysis_made_while_an_answer_is_spoken_is_reused(
    script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = script.questions[0]
    first = flow.analysis_for(rules, [WEAK_ANSWER])
    monkeypatch.setattr(flow.interviewer, "analyze", lambda *_: pytest.fail("analysed again"))
    assert flow.analysis_for(rules, [WEAK_ANSWER]) is first


STRONG_ANSWER = (
    "i led the move of our billing system to a new platform and we cut costs by twenty percent"
)


def transcribed(script: Script, text: str) -> Call:
    """A call whose first answer has just been transcribed; the caller is holding."""
    call = flow.start(script, "CA1").call
    flow.on_answer(script, call, 0, recording_url=URL)
    flow.on_consent(script, call, "1")
    call.turns[0].status = flow.TRANSCRIBED
    call.turns[0].transcript = text
    return call


@pytest.mark.parametrize("text", [WEAK_ANSWER, STRONG_ANSWER])
def test_a_follow_up_from_the_analysis_worked_out_ahead_is_the_one_worked_out_then(
    script: Script, text: str
) -> None:
    fresh = transcribed(script, text)
    ahead = transcribed(script, text)
    ahead.analysis = flow.analysis_ahead(script, ahead)

    assert ahead.analysis is not None
    assert ahead.analysis.analysis == interviewer.analyze(script.questions[0], [text])
    assert flow.on_wait(script, ahead, 0, 1).reply == flow.on_wait(script, fresh, 0, 1).reply
    assert ahead.turns == fresh.turns and ahead.probed == fresh.probed


def shown_first(script: Script, answers: list[str]) -> flow.KnownAnalysis:
    """An analysis of `answers` that (wrongly) finds the first dimension of the rules shown."""
    rules = script.questions[0]
    real = interviewer.analyze(rules, [WEAK_ANSWER])
    first = interviewer.DimensionResult(True, ("a quote",))
    analysis = replace(real, dimensions={**real.dimensions, rules.probe_order[0]: first})
    return flow.KnownAnalysis(rules.id, flow.answers_key(answers), analysis)


def test_picking_the_follow_up_reads_the_analysis_worked_out_ahead(script: Script) -> None:
    call = transcribed(script, WEAK_ANSWER)
    call.analysis = shown_first(script, [WEAK_ANSWER])

    flow.on_wait(script, call, 0, 1)

    # Worked out afresh, the weak answer is asked about the first dimension (test above).
    assert call.current is not None and call.current.kind == flow.FOLLOW_UP
    assert call.current.dimension != script.questions[0].probe_order[0]


def test_an_analysis_of_other_answers_is_not_used(script: Script) -> None:
    call = transcribed(script, WEAK_ANSWER)
    call.analysis = shown_first(script, ["what the caller said before correcting it"])

    flow.on_wait(script, call, 0, 1)

    assert call.current is not None
    assert call.current.dimension == script.questions[0].probe_order[0]


def test_an_analysis_made_before_the_latest_answer_is_worked_out_again(script: Script) -> None:
    call = transcribed(script, WEAK_ANSWER)
    call.analysis = flow.analysis_ahead(script, call)
    flow.on_wait(script, call, 0, 1)
    follow_up = call.current
    assert follow_up is not None
    flow.on_answer(script, call, follow_up.number, recording_url=URL + "2")
    follow_up.status, follow_up.transcript = flow.TRANSCRIBED, STRONG_ANSWER

    again = flow.analysis_ahead(script, call)

    assert again is not None and again != call.analysis
    assert again.analysis == interviewer.analyze(script.questions[0], [WEAK_ANSWER, STRONG_ANSWER])


def test_an_analysis_already_worked_out_is_not_done_twice(
    script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    call = transcribed(script, WEAK_ANSWER)
    call.analysis = flow.analysis_ahead(script, call)

    def analyze(*_args: object) -> None:
        raise AssertionError("analysed again")

    monkeypatch.setattr(interviewer, "analyze", analyze)
    assert flow.analysis_ahead(script, call) is call.analysis
    flow.on_wait(script, call, 0, 1)  # picks the follow-up without analysing
    assert call.current is not None and call.current.kind == flow.FOLLOW_UP
