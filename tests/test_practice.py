"""`voice-app analyze` and `voice-app practice` as a person at a terminal uses them."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from voice_app.cli import main
from voice_app.interviewer import SMS_LIMIT, is_gsm7
from voice_app.rules import load_question

RUBRIC = {
    "results", "contribution", "context", "values", "helping_others", "company_goals",
    "above_and_beyond", "reflection",
}

WE_ONLY = "so we built a new rota and the team cut overtime by a third and uh we were happy"


def test_analyze_json_has_every_dimension_and_a_follow_up() -> None:
    result = CliRunner().invoke(main, ["analyze", "--json"], input=WE_ONLY)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["question"] == "accomplishment"
    assert set(report["dimensions"]) >= RUBRIC
    assert report["dimensions"]["results"] == {
        "present": True, "evidence": ["the team cut overtime by a third"]
    }
    assert report["dimensions"]["contribution"]["present"] is False
    assert report["follow_up"]["dimension"] == "contribution"
    rules = load_question("accomplishment")
    assert report["follow_up"]["text"] in rules.dimensions["contribution"].follow_ups
    assert len(report["summary_sms"]) <= SMS_LIMIT and is_gsm7(report["summary_sms"])


def test_analyze_a_complete_answer_offers_a_deeper_probe() -> None:
    answer = (
        "when i joined the store as a manager the problem was staff turnover was fifty percent "
        "and the company goal was keeping good people so i redesigned the training and i "
        "mentored every new starter on my own time and turnover dropped to fifteen percent it "
        "matters to me because i started on the shop floor and looking back i would have "
        "involved the team sooner"
    )
    report = json.loads(CliRunner().invoke(main, ["analyze", "--json"], input=answer).output)
    assert all(d["present"] for d in report["dimensions"].values())
    assert report["follow_up"]["dimension"] is None
    assert report["follow_up"]["text"] in load_question("accomplishment").deeper_probes


def test_analyze_other_questions_and_plain_output() -> None:
    answer = "i missed a deadline because i underestimated the work and since then i plan better"
    result = CliRunner().invoke(main, ["analyze", "--question", "failure"], input=answer)
    assert result.exit_code == 0, result.output
    assert "ownership" in result.output and "follow-up" in result.output
    report = json.loads(
        CliRunner().invoke(main, ["analyze", "--question", "failure", "--json"],
                           input=answer).output
    )
    assert set(report["dimensions"]) == set(load_question("failure").dimensions)


def test_analyze_an_unknown_question_says_what_exists() -> None:
    result = CliRunner().invoke(main, ["analyze", "--question", "teamwork"], input="hi")
    assert result.exit_code != 0
    assert "teamwork.toml" in result.output and "accomplishment" in result.output


def test_practice_follows_up_on_what_is_missing_then_gives_feedback() -> None:
    typed = "\n".join([
        WE_ONLY,
        "i rewrote the rota myself over a weekend",  # answers the contribution follow-up
        "it mattered to me because my team were exhausted",
    ]) + "\n"
    result = CliRunner().invoke(
        main, ["practice", "--question", "accomplishment", "--follow-ups", "2", "--seed", "3"],
        input=typed,
    )
    assert result.exit_code == 0, result.output
    assert "most important accomplishment" in result.output
    assert "[probes contribution]" in result.output
    assert "[probes values]" in result.output, "the second follow-up follows the new answer"
    assert result.output.index("[probes contribution]") < result.output.index("[probes values]")
    assert "FEEDBACK" in result.output and "TEXT MESSAGE" in result.output
    assert '"i rewrote the rota myself' in result.output  # quoted as evidence


@pytest.mark.parametrize("typed", ["", "\n"])
def test_practice_copes_with_no_answer(typed: str) -> None:
    result = CliRunner().invoke(main, ["practice", "--question", "accomplishment"], input=typed)
    assert result.exit_code == 0, result.output
    assert load_question("accomplishment").feedback.nothing_heard[:30] in result.output.replace(
        "\n", " "
    )


def test_practice_runs_a_whole_bank() -> None:
    typed = "i led it\n" * 20
    result = CliRunner().invoke(
        main, ["practice", "--bank", "career_centre", "--follow-ups", "0"], input=typed
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("FEEDBACK (") == 5


def test_analyze_uses_the_sentence_model_when_it_is_turned_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No keyword of the rules file says "result" here; the learned judge hears one, and is sure
    # of it (0.97 with the models of 2026-12-07; the sentence before this one was a borderline
    # result, 0.42 after a retraining, and a test of the switch must not hang on a borderline).
    answer = "we lost dozens of parcels a week before and these days it is one or two at most"
    monkeypatch.setenv("VOICE_APP_SEMANTIC", "false")
    rules_only = json.loads(CliRunner().invoke(main, ["analyze", "--json"], input=answer).output)
    assert rules_only["dimensions"]["results"]["present"] is False
    monkeypatch.setenv("VOICE_APP_SEMANTIC", "true")
    report = json.loads(CliRunner().invoke(main, ["analyze", "--json"], input=answer).output)
    assert report["dimensions"]["results"]["present"] is True
