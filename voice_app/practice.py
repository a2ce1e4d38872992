"""The interviewer without a phone: `voice-app analyze` reads one transcript, `voice-app practice`
asks, listens to typed answers, follows up and ends with the feedback.

Both use the same rules and the same functions as a call (`interviewer.analyze`,
`pick_follow_up`, `summarize`), so they are also the quickest way to try an edited rules file.
"""

from __future__ import annotations

import json
import random
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import click

from voice_app import interviewer
from voice_app.config import load_settings
from voice_app.embedding import Encoder, load_encoder
from voice_app.errors import VoiceAppError
from voice_app.rules import QuestionRules, load_bank, load_question

DEFAULT_QUESTION = "accomplishment"


def _load(question_id: str) -> QuestionRules:
    try:
        return load_question(question_id, load_settings().grammars_path)
    except VoiceAppError as exc:
        raise click.ClickException(str(exc)) from exc


def _encoder() -> Encoder | None:
    """The sentence encoder the settings ask for (None: keyword rules only)."""
    try:
        return load_encoder(load_settings())
    except VoiceAppError as exc:
        raise click.ClickException(str(exc)) from exc


def analysis_report(
    rules: QuestionRules, transcript: str, seed: int = 0, encoder: Encoder | None = None
) -> dict[str, Any]:
    """The JSON `voice-app analyze --json` prints for one transcript."""
    analysis = interviewer.analyze(rules, [transcript], encoder)
    follow_up = interviewer.pick_follow_up(rules, analysis, set(), random.Random(seed))
    feedback = interviewer.summarize(rules, analysis)
    return {
        "question": rules.id,
        "dimensions": {
            name: {"present": result.present, "evidence": list(result.evidence)}
            for name, result in analysis.dimensions.items()
        },
        "follow_up": {
            "dimension": follow_up.dimension if follow_up else None,
            "text": follow_up.text if follow_up else "",
        },
        "summary_sms": feedback.sms,
        "unexplained_terms": list(analysis.unexplained),
        "feedback": feedback.full,
    }


@click.command("analyze")
@click.option(
    "--question",
    "question_id",
    default=DEFAULT_QUESTION,
    show_default=True,
    help="Question id (a file in grammars/questions/).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON.")
@click.option(
    "--seed", default=0, show_default=True, type=int, help="Picks the follow-up's phrasing."
)
def analyze_command(question_id: str, as_json: bool, seed: int) -> None:
    """Analyse one answer read from stdin against a question's rubric."""
    rules = _load(question_id)
    encoder = _encoder() if rules.uses_examples else None
    report = analysis_report(rules, sys.stdin.read(), seed, encoder)
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    for name, result in report["dimensions"].items():
        mark = "yes" if result["present"] else " - "
        quote = f'  "{result["evidence"][0]}"' if result["evidence"] else ""
        click.echo(f"{mark}  {name:<18}{quote}")
    if report["unexplained_terms"]:
        click.echo("unexplained: " + ", ".join(report["unexplained_terms"]))
    target = report["follow_up"]["dimension"] or "deeper probe"
    click.echo(f"\nfollow-up ({target}): {report['follow_up']['text']}")
    click.echo(f"\ntext message:\n{textwrap.fill(report['summary_sms'], 96)}")


def run_practice(
    rules: QuestionRules,
    ask: Callable[[str], str | None],
    say: Callable[[str], None],
    *,
    follow_ups: int,
    rng: random.Random,
    encoder: Encoder | None = None,
) -> interviewer.Feedback:
    """One question as a call would run it: the prompt, follow-ups, then the feedback."""
    answers: list[str] = []
    probed: set[str] = set()
    prompt: str | None = rules.prompt
    for _ in range(follow_ups + 1):
        assert prompt is not None
        answer = ask(prompt)
        if answer is None:  # end of input: stop asking
            break
        if answer.strip():
            answers.append(answer)
        if len(answers) == 0 or len(probed) >= follow_ups:
            break
        analysis = interviewer.analyze(rules, answers, encoder)
        follow_up = interviewer.pick_follow_up(rules, analysis, probed, rng)
        if follow_up is None:
            break
        probed.add(follow_up.marker)
        if follow_up.dimension:
            say(f"[probes {follow_up.dimension}]")
        prompt = follow_up.text
    return interviewer.summarize(rules, interviewer.analyze(rules, answers, encoder))


@click.command("practice")
@click.option(
    "--question",
    "question_id",
    default=None,
    help="Practise one question (default: every question of the bank).",
)
@click.option(
    "--bank", default=None, help="Question bank (default: the VOICE_APP_QUESTION_BANK setting)."
)
@click.option(
    "--follow-ups",
    type=click.IntRange(0, 10),
    default=None,
    help="Follow-up questions after each answer (default: the bank's or the setting).",
)
@click.option("--seed", type=int, default=None, help="Fix the phrasing of the follow-ups.")
def practice_command(
    question_id: str | None,
    bank: str | None,
    follow_ups: int | None,
    seed: int | None,
) -> None:
    """Practise in the terminal: type each answer on one line (an empty line skips)."""
    settings = load_settings()
    try:
        if question_id:
            questions = [load_question(question_id, settings.grammars_path)]
            bank_follow_ups = None
        else:
            loaded = load_bank(bank or settings.question_bank, settings.grammars_path)
            questions = [load_question(q, settings.grammars_path) for q in loaded.question_ids]
            bank_follow_ups = loaded.max_follow_ups
    except VoiceAppError as exc:
        raise click.ClickException(str(exc)) from exc
    rounds = (
        follow_ups
        if follow_ups is not None
        else (bank_follow_ups if bank_follow_ups is not None else settings.max_follow_ups)
    )
    rng = random.Random(seed)
    encoder = _encoder() if any(rules.uses_examples for rules in questions) else None

    def ask(prompt: str) -> str | None:
        click.echo(
            "\n"
            + textwrap.fill(prompt, 96, initial_indent="INTERVIEWER: ", subsequent_indent=" " * 13)
        )
        line = sys.stdin.readline()
        return None if line == "" else line.rstrip("\n")

    for rules in questions:
        feedback = run_practice(rules, ask, click.echo, follow_ups=rounds, rng=rng, encoder=encoder)
        click.echo("\n" + _feedback_text(rules, feedback))


def _feedback_text(rules: QuestionRules, feedback: interviewer.Feedback) -> str:
    """The full feedback, for a person reading a terminal."""
    full = feedback.full
    lines = [f"FEEDBACK ({rules.id})"]
    for item in full["dimensions"]:
        quote = f' "{item["evidence"][0]}"' if item["evidence"] else ""
        lines.append(f"  {'+' if item['present'] else '-'} {item['label']}{quote}")
    if full["unexplained_terms"]:
        lines.append("  unexplained terms: " + ", ".join(full["unexplained_terms"]))
    lines.append(
        f"  length: {full['length']['verdict']} ({sum(full['length']['answer_words'])} words)"
    )
    lines.append("\nTEXT MESSAGE:\n" + textwrap.fill(feedback.sms, 96))
    return "\n".join(lines)
