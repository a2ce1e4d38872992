"""Turning the flow's steps into TwiML: the only place that knows TwiML's verbs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from flask import Response
from twilio.twiml.voice_response import VoiceResponse

from voice_app import flow

# espeak-ng voice names are not Twilio's; <Say> uses Twilio's default voice in this language.
SAY_LANGUAGE = "en-US"


@dataclass(frozen=True)
class TwimlContext:
    """What rendering needs besides the steps: URLs and the answer-recording settings."""

    url_for: Callable[[str], str]  # path (with query) -> absolute or relative URL Twilio can call
    prompt_url: Callable[[str], str | None]  # text -> URL of its rendered audio, if cached
    silence_timeout: int
    max_length: int
    hold_seconds: int


def render_steps(steps: Sequence[flow.Step], ctx: TwimlContext) -> Response:
    """A TwiML response for the flow's steps, served as text/xml."""
    response = VoiceResponse()
    for step in steps:
        if isinstance(step, flow.Speak):
            _speak(response, step.text, ctx)
        elif isinstance(step, flow.AskConsent):
            _speak(response, step.text, ctx)
            # A short recording that a key press ends: 1 or 2 on the keypad always works, and a
            # spoken yes or no is recognised from the recording.
            response.record(
                action=ctx.url_for("/voice/consent"),
                method="POST",
                timeout=3,
                max_length=5,
                finish_on_key="12",
                play_beep=False,
                trim="trim-silence",
            )
            response.redirect(ctx.url_for("/voice/consent?silent=1"), method="POST")
        elif isinstance(step, flow.Listen):
            query: dict[str, object] = {"turn": step.turn}
            if step.ask > 1:
                query["ask"] = step.ask
            if step.probe:
                query["probe"] = step.probe
            response.record(
                action=ctx.url_for(f"/voice/answer?{urlencode(query)}"),
                method="POST",
                timeout=ctx.silence_timeout,
                max_length=ctx.max_length,
                finish_on_key="#*",
                play_beep=True,
                trim="trim-silence",
            )
            # Twilio does not request the action URL when nothing was recorded; it runs the next
            # verb instead, which tells the flow the caller said nothing.
            response.redirect(
                ctx.url_for(f"/voice/answer?{urlencode({**query, 'silent': 1})}"), method="POST"
            )
        elif isinstance(step, flow.Hold):
            response.pause(length=ctx.hold_seconds)
            wait_query = urlencode({"turn": step.turn, "attempt": step.attempt})
            response.redirect(ctx.url_for(f"/voice/wait?{wait_query}"), method="POST")
        elif isinstance(step, flow.HangUp):
            response.hangup()
    return Response(str(response), mimetype="text/xml")


def render_stream(stream_url: str, call_sid: str, after_url: str) -> Response:
    """Live mode: connect the call to the app's Media Stream; when the stream ends, ask again.

    `<Connect><Stream>` is the two-way stream (the app plays audio back). Twilio runs the verb
    after it once the socket closes: the redirect lets the app end the call, or carry it on in
    record mode if the stream failed.
    """
    response = VoiceResponse()
    connect = response.connect()
    stream = connect.stream(url=stream_url)
    stream.parameter(name="call_sid", value=call_sid)
    response.redirect(after_url, method="POST")
    return Response(str(response), mimetype="text/xml")


def empty_response() -> Response:
    """An empty TwiML document (for callbacks whose answer Twilio ignores)."""
    return Response(str(VoiceResponse()), mimetype="text/xml")


def _speak(parent: VoiceResponse, text: str, ctx: TwimlContext) -> None:
    url = ctx.prompt_url(text)
    if url is not None:
        parent.play(url)
    else:
        parent.say(text, language=SAY_LANGUAGE)
