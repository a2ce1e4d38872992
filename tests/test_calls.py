"""Whole practice calls, played by the simulator exactly as Twilio and a caller would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from voice_app.cli import main
from voice_app.simulator import (
    ANSWER,
    HANGUP,
    KEYS,
    SILENCE,
    CallerStep,
    CallReport,
    SimulationOptions,
    simulate,
)
from voice_app.simulator.call import CallSimulator
from voice_app.simulator.standin import TwilioStandIn
from voice_app.store import CallRow, Store, TurnRow

STRONG_START = (
    "i led the rebuild of our hospital's night shift rota and we cut overtime by thirty percent"
)
SECOND = "i personally interviewed every nurse on nights and i wrote the new rota myself"
QUESTION = "What do you consider to be the most important accomplishment in your career to date?"


@pytest.fixture
def sim_config(
    tmp_path: Path, prompt_cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """In-process app settings for a simulated call: its own database, the shared prompt cache."""
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "PUBLIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "prompts").symlink_to(prompt_cache_dir)
    return {"data_dir": str(data_dir), "database_url": f"sqlite:///{tmp_path / 'calls.sqlite3'}"}


def run_call(config: dict[str, Any], *steps: CallerStep, **options: Any) -> CallReport:
    return simulate(
        SimulationOptions(steps=list(steps), perfect_asr=True, app_config=config, **options)
    )


def line_said(report: CallReport) -> list[str]:
    return [e.text for e in report.dialog if e.speaker == "line" and e.kind == "speech"]


def test_a_whole_call_ends_with_one_feedback_text_built_from_the_answers(
    sim_config: dict[str, Any],
) -> None:
    report = run_call(
        sim_config,
        CallerStep(ANSWER, STRONG_START),
        CallerStep(ANSWER, SECOND),
        CallerStep(ANSWER, "i learned to ask the team earlier"),
    )

    said = line_said(report)
    assert QUESTION in said
    follow_ups = [e for e in report.dialog if e.dimension]
    assert len(follow_ups) == 2
    assert len({e.dimension for e in follow_ups}) == 2
    assert "Your feedback is on its way by text message" in said[-1]
    assert len(report.texts) == 1
    text = report.texts[0]
    assert text.to == "+15555550100"
    assert "thirty percent" in text.body  # the feedback quotes what the caller said
    assert len(text.body) <= 320
    # Three answers and the short recording a key press ends at the texting question.
    assert report.recordings_made == 4 and report.recordings_kept == 0


def test_no_text_when_the_caller_says_no(sim_config: dict[str, Any]) -> None:
    report = run_call(sim_config, CallerStep(ANSWER, STRONG_START), consent_key="2")

    assert report.texts == []
    assert "no text message" in " ".join(line_said(report)).lower()
    assert "on its way by text" not in line_said(report)[-1]


def test_silence_gets_one_reprompt_then_the_call_moves_on(sim_config: dict[str, Any]) -> None:
    report = run_call(sim_config, CallerStep(SILENCE), CallerStep(SILENCE))

    said = line_said(report)
    assert said.count(QUESTION) == 2
    assert any(text.startswith("Sorry, I did not catch anything") for text in said)
    assert "Let's move on." in said
    assert said[-1].startswith("That is the end of this practice")
    assert report.recordings_made == 0


def test_star_repeats_the_question_and_the_discarded_recording_is_deleted(
    sim_config: dict[str, Any],
) -> None:
    report = run_call(sim_config, CallerStep(KEYS, "*"), CallerStep(ANSWER, STRONG_START))

    said = line_said(report)
    assert said.count(QUESTION) == 2
    assert report.recordings_made == 3 and report.recordings_kept == 0
    assert len(report.texts) == 1


def test_hanging_up_mid_answer_still_ends_in_feedback_from_what_was_said(
    sim_config: dict[str, Any],
) -> None:
    report = run_call(
        sim_config,
        CallerStep(ANSWER, "we moved the warehouse to a new system"),
        CallerStep(HANGUP, "we shipped forty percent more orders and"),
    )

    assert report.dialog[-1].kind == "hangup"
    assert len(report.texts) == 1
    assert "forty percent" in report.texts[0].body


def test_hanging_up_during_the_first_answer_sends_no_text_without_consent(
    sim_config: dict[str, Any],
) -> None:
    # The texting question comes while the first answer is transcribed: not reached here.
    report = run_call(sim_config, CallerStep(HANGUP, "so my biggest achievement was"))

    assert report.texts == []
    assert report.recordings_kept == 0


def test_the_simulator_uses_the_real_recognizer_when_asked_to(
    sim_config: dict[str, Any], tmp_path: Path
) -> None:
    from tests.audio_fixtures import korean_model_path, korean_speech_wav

    answer = tmp_path / "answer.wav"
    answer.write_bytes(korean_speech_wav("안녕하세요 감사합니다"))
    config = {**sim_config, "asr": "vosk", "vosk_model_path": korean_model_path()}

    report = simulate(
        SimulationOptions(steps=[CallerStep(ANSWER, path=str(answer))], app_config=config)
    )

    store = Store(config["database_url"])
    with store.transaction() as session:
        first = session.scalars(select(TurnRow).where(TurnRow.number == 0)).one()
        transcript = first.transcript or ""
        feedback = session.scalars(select(CallRow)).one().feedback or {}
    store.dispose()
    assert any("\uac00" <= ch <= "\ud7a3" for ch in transcript)  # Vosk heard Korean speech
    assert len(report.texts) == 1
    # Vosk's word timings give delivery figures, kept with the session's full feedback.
    delivery = feedback["questions"][0]["delivery"]
    assert delivery["talk_seconds"] > 0 and delivery["words"] > 0


def test_simulate_command_prints_the_call_as_json(
    sim_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICE_APP_DATA_DIR", sim_config["data_dir"])
    monkeypatch.setenv("VOICE_APP_DATABASE_URL", sim_config["database_url"])

    result = CliRunner().invoke(
        main,
        [
            "simulate",
            "--perfect-asr",
            "--json",
            "--answer",
            STRONG_START,
            "--silence",
            "--answer",
            SECOND,
        ],
    )

    assert result.exit_code == 0, result.output
    call = json.loads(result.output)
    caller_turns = [t["text"] for t in call["turns"] if t["speaker"] == "caller"]
    assert caller_turns[:4] == [STRONG_START, "1", "(silence)", SECOND]
    probes = [t["dimension"] for t in call["turns"] if t["dimension"]]
    assert probes
    assert len(call["texts"]) == 1 and call["texts"][0]["body"]


def test_simulate_command_prints_a_readable_dialog(
    sim_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICE_APP_DATA_DIR", sim_config["data_dir"])
    monkeypatch.setenv("VOICE_APP_DATABASE_URL", sim_config["database_url"])

    result = CliRunner().invoke(main, ["simulate", "--perfect-asr", "--answer", STRONG_START])

    assert result.exit_code == 0, result.output
    assert "CALLER | i led the rebuild" in result.output
    assert "[probes " in result.output
    assert "TEXT to +15555550100:" in result.output


@pytest.mark.parametrize(("reply", "texted"), [("yes please", True), ("no thanks", False)])
def test_the_texting_question_can_be_answered_out_loud(
    sim_config: dict[str, Any], reply: str, texted: bool
) -> None:
    report = run_call(sim_config, CallerStep(ANSWER, STRONG_START), consent_says=reply)

    assert (len(report.texts) == 1) is texted
    assert report.recordings_kept == 0


def test_the_simulator_follows_gather_as_twilio_does() -> None:
    class OneDocument:
        """A tiny app: a <Gather> for one key, then a goodbye."""

        def __init__(self) -> None:
            self.posts: list[tuple[str, dict[str, str]]] = []

        def post(
            self, url: str, params: dict[str, str], headers: dict[str, str]
        ) -> tuple[int, str]:
            self.posts.append((url, params))
            if url.endswith("/voice/incoming"):
                return 200, (
                    '<Response><Gather action="/menu" numDigits="1"><Say>Press 1.</Say></Gather>'
                    "<Say>No key.</Say></Response>"
                )
            return 200, "<Response><Say>Bye.</Say><Hangup/></Response>"

        def get(self, url: str) -> tuple[int, bytes]:
            return 404, b""

    standin = TwilioStandIn("AC" + "0" * 32, "token").start()
    try:
        transport = OneDocument()
        report = CallSimulator(
            transport=transport,
            app_url="https://app.invalid",
            auth_token="token",
            standin=standin,
            steps=[],
            make_recording=lambda text: b"",
            on_hold=lambda s: None,
        ).run()
    finally:
        standin.stop()

    assert [e.text for e in report.dialog] == ["Press 1.", "1", "Bye."]
    assert transport.posts[1] == (
        "https://app.invalid/menu",
        {**transport.posts[1][1], "Digits": "1"},
    )


def test_a_simulated_call_works_from_any_folder_with_the_default_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As a newcomer runs it: the default data folder `var`, relative to where they are.
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "VOICE_APP_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(main, ["simulate", "--perfect-asr", "--answer", STRONG_START])

    assert result.exit_code == 0, result.output
    assert (tmp_path / "var" / "prompts").is_dir()
    assert "TEXT to +15555550100:" in result.output
