"""The `voice-app` command: serve, simulate a call, render prompts, check the rules files."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from typing import Any

import click

from voice_app.config import load_settings
from voice_app.errors import VoiceAppError

# Caller-step options of `simulate`, in the order given on the command line.
_STEP_OPTIONS = {
    "--answer": "answer",
    "--answer-file": "answer_file",
    "--silence": "silence",
    "--keys": "keys",
    "--hangup": "hangup",
    "--hangup-mid": "hangup_mid",
}
_FLAG_STEPS = {"--silence", "--hangup"}


class _OrderedSteps(click.Command):
    """Remembers the order of the caller-step options, which click itself does not keep."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        steps: list[tuple[str, str]] = []
        position = 0
        while position < len(args):
            name, has_value, value = args[position].partition("=")
            if name in _STEP_OPTIONS:
                if name in _FLAG_STEPS:
                    steps.append((_STEP_OPTIONS[name], ""))
                elif has_value:
                    steps.append((_STEP_OPTIONS[name], value))
                elif position + 1 < len(args):
                    steps.append((_STEP_OPTIONS[name], args[position + 1]))
                    position += 1
            position += 1
        ctx.meta["caller_steps"] = steps
        return super().parse_args(ctx, args)


@click.group()
def main() -> None:
    """The interview practice line."""


@main.command(cls=_OrderedSteps)
@click.option(
    "--answer",
    "answers",
    multiple=True,
    metavar="TEXT",
    help="Say TEXT as the next answer (repeatable, in order).",
)
@click.option(
    "--answer-file",
    "answer_files",
    multiple=True,
    metavar="WAV",
    type=click.Path(exists=True, dir_okay=False),
    help="Play WAV as the next answer.",
)
@click.option(
    "--silence",
    "silences",
    multiple=True,
    is_flag=True,
    flag_value="1",
    help="Stay silent at the next answer.",
)
@click.option(
    "--keys",
    "keys",
    multiple=True,
    metavar="DIGITS",
    help="Press DIGITS instead of answering (* hears the question again).",
)
@click.option(
    "--hangup",
    "hangups",
    multiple=True,
    is_flag=True,
    flag_value="1",
    help="Hang up at the next answer without saying anything.",
)
@click.option(
    "--hangup-mid",
    "hangup_mids",
    multiple=True,
    metavar="TEXT",
    help="Say TEXT, then hang up in the middle of the answer.",
)
@click.option(
    "--perfect-asr",
    is_flag=True,
    help="Take the given text as the transcript (no speech model needed).",
)
@click.option("--no-text", is_flag=True, help="Press 2 at the texting question: no feedback text.")
@click.option(
    "--say-consent",
    default=None,
    metavar="TEXT",
    help="Say TEXT (e.g. 'yes please') at the texting question instead of pressing 1.",
)
@click.option(
    "--from", "from_number", default="+15555550100", show_default=True, help="The caller's number."
)
@click.option("--url", default=None, help="Call a running server instead of an in-process app.")
@click.option(
    "--standin-port",
    default=0,
    type=int,
    help="Port of the local Twilio REST stand-in (with --url: the port the server's "
    "TWILIO_API_BASE_URL names).",
)
@click.option(
    "--live",
    is_flag=True,
    help="Live mode (VOICE_APP_MODE=live): the call runs over a Media Stream, answers are "
    "streamed as 20 ms audio frames. With --url the server's own mode decides.",
)
@click.option(
    "--speed",
    default=1.0,
    type=click.FloatRange(min=0.1),
    show_default=True,
    help="Live mode: how many times faster than real time the stream plays.",
)
@click.option(
    "--end-with",
    type=click.Choice(["#", "silence"]),
    default="#",
    show_default=True,
    help="Live mode: how the caller ends an answer.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the call as JSON.")
@click.pass_context
def simulate(
    ctx: click.Context,
    /,
    perfect_asr: bool,
    no_text: bool,
    say_consent: str | None,
    from_number: str,
    url: str | None,
    standin_port: int,
    live: bool,
    speed: float,
    end_with: str,
    as_json: bool,
    **_steps: Any,
) -> None:
    """Run a whole practice call locally: this plays Twilio and the caller.

    Answers come from --answer/--answer-file/--silence/--keys/--hangup/--hangup-mid in the order
    given; when they run out the caller types at a prompt (on a terminal) or stays silent. A
    live call cannot pause its stream for typing: give every answer on the command line.
    """
    from voice_app.simulator import CallerStep, LiveCaller, SimulationOptions, simulate

    kinds = {
        "answer": "answer",
        "answer_file": "answer",
        "silence": "silence",
        "keys": "keys",
        "hangup": "hangup",
        "hangup_mid": "hangup",
    }
    steps = [
        CallerStep(
            kinds[name],
            text="" if name == "answer_file" else value,
            path=value if name == "answer_file" else "",
        )
        for name, value in ctx.meta["caller_steps"]
    ]
    options = SimulationOptions(
        steps=steps,
        perfect_asr=perfect_asr,
        consent_key="2" if no_text else "1",
        consent_says=say_consent,
        from_number=from_number,
        url=url,
        standin_port=standin_port,
        # The dialog is the output; the app's routine log lines would bury it.
        app_config={
            "log_level": os.environ.get("VOICE_APP_LOG_LEVEL", "WARNING"),
            **({"mode": "live"} if live else {}),
        },
        ask_caller=_ask_on_terminal if sys.stdin.isatty() and not as_json else None,
        live=LiveCaller(
            end_with=end_with,
            end_silence_ms=int(os.environ.get("VOICE_APP_LIVE_END_SILENCE_MS", "4000")),
            speed=speed,
        ),
    )
    try:
        report = simulate(options)
    except VoiceAppError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2, ensure_ascii=False))
        return
    for event in report.dialog:
        who = "LINE" if event.speaker == "line" else "CALLER"
        text = f"[presses {event.text}]" if event.kind == "keys" else event.text
        if event.dimension:
            text = f"[probes {event.dimension}] {text}"
        if event.at is not None:
            text = f"({event.at:5.1f} s) {text}"
        click.echo(
            textwrap.fill(text, 96, initial_indent=f"{who:<7}| ", subsequent_indent=" " * 7 + "| ")
        )
    if not report.texts:
        click.echo("\n(no text message was sent)")
    for sent in report.texts:
        click.echo(f"\nTEXT to {sent.to}:\n{textwrap.fill(sent.body, 96)}")
    if report.reply_latencies:
        waits = ", ".join(f"{seconds * 1000:.0f} ms" for seconds in report.reply_latencies)
        click.echo(f"\n(from the end of each answer to the line's reply: {waits})")


def _ask_on_terminal(prompt: str) -> str | None:
    try:
        return input(prompt)
    except EOFError:
        return None


@main.command("render-prompts")
def render_prompts() -> None:
    """Render every prompt of the question bank into the prompt cache."""
    from voice_app.script import load_script
    from voice_app.tts import PromptCache

    settings = load_settings()
    try:
        script = load_script(settings)
    except VoiceAppError as exc:
        raise click.ClickException(str(exc)) from exc
    cache = PromptCache(settings.prompt_dir, voice=settings.tts_voice, rate=settings.tts_rate)
    report = cache.render_all(script.spoken_texts())
    click.echo(
        f"{report.rendered} rendered, {report.already_cached} already cached, "
        f"{len(report.failed)} failed, in {settings.prompt_dir}"
    )
    for text, reason in report.failed:
        click.echo(f"  failed: {text[:60]!r}: {reason}", err=True)
    if report.failed:
        sys.exit(1)


@main.command("check-grammars")
def check_grammars() -> None:
    """Check the rules, question banks, fixed lines and phrase lists under grammars/."""
    from voice_app.rules import check_grammars as check
    from voice_app.script import load_script

    settings = load_settings()
    problems = check(settings.grammars_path)
    if not problems:
        try:
            load_script(settings)
        except VoiceAppError as exc:
            problems = [str(exc)]
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        sys.exit(1)
    click.echo(f"{settings.grammars_path}: all files are valid")


@main.command()
@click.option(
    "--days", type=int, default=None, help="Retention in days (default: VOICE_APP_RETENTION_DAYS)."
)
def purge(days: int | None) -> None:
    """Delete calls, transcripts and texts older than the retention period."""
    from voice_app.purge import purge as purge_store
    from voice_app.store import Store

    settings = load_settings()
    store = Store(settings.resolved_database_url)
    store.create_schema()
    report = purge_store(store, settings.retention_days if days is None else days)
    click.echo(
        f"deleted {report.calls} calls, {report.turns} turns, {report.texts} texts, "
        f"{report.jobs} jobs, {report.replies} stored replies"
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--processes", default=2, show_default=True, type=int, help="gunicorn worker processes."
)
@click.option(
    "--threads",
    default=8,
    show_default=True,
    type=int,
    help="Threads per process answering webhooks.",
)
def serve(host: str, port: int, processes: int, threads: int) -> None:
    """Serve the webhooks with gunicorn (threaded workers)."""
    from voice_app.server import serve as run_server

    try:
        run_server(host=host, port=port, processes=processes, threads=threads)
    except VoiceAppError as exc:
        raise click.ClickException(str(exc)) from exc


def _register_commands_kept_with_their_code() -> None:
    """`model download|check`, `analyze` and `practice` live next to the code they wrap."""
    from voice_app.models import model_group
    from voice_app.practice import analyze_command, practice_command

    main.add_command(model_group, "model")
    main.add_command(analyze_command)
    main.add_command(practice_command)


_register_commands_kept_with_their_code()
