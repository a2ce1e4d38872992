"""The Media Stream route of live mode: a WebSocket per call, carried by `LiveCall`.

Twilio opens it from `<Connect><Stream>` and signs the upgrade request like any webhook. A bad
signature, or a start message for a call this line is not answering, closes the socket with 1008
before any work. When the socket ends because of a fault on this side, the call is left as it
stands: Twilio then follows the `<Redirect>` after `<Connect>`, and the call goes on in record
mode from the same state. So does a call that finds every live slot of the machine taken
(`VOICE_APP_LIVE_MAX_CALLS`, see voice_app/live/slots.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed

from voice_app.live.protocol import MAX_MESSAGE_BYTES
from voice_app.live.session import (
    NORMAL_CLOSURE,
    POLICY_VIOLATION,
    LiveCall,
    LiveSettings,
    Refused,
)
from voice_app.live.slots import LiveSlots
from voice_app.live.sound import CachedPromptAudio
from voice_app.services import Services
from voice_app.web.signature import is_signed_by_twilio

log = logging.getLogger(__name__)

STREAM_PATH = "/voice/stream"
# Twilio sends a media frame every 20 ms for the whole call; this long without one is a dead
# socket (the call is settled as a hang-up).
IDLE_SECONDS = 20.0

sock = Sock()
stream_routes = Blueprint("stream", __name__)


def socket_options() -> dict[str, Any]:
    """simple-websocket server options: messages past 4x the protocol's limit drop the socket."""
    return {"max_message_size": 4 * MAX_MESSAGE_BYTES, "ping_interval": None}


def _services() -> Services:
    services: Services = current_app.extensions["voice_app"]
    return services


def _prompt_audio(services: Services) -> CachedPromptAudio:
    audio = current_app.extensions.get("voice_app_live_audio")
    if audio is None:
        audio = CachedPromptAudio(services.prompts)
        current_app.extensions["voice_app_live_audio"] = audio
    return audio


def _live_slots(services: Services) -> LiveSlots:
    slots = current_app.extensions.get("voice_app_live_slots")
    if slots is None:
        folder = Path(services.settings.data_dir).resolve() / "live-slots"
        slots = LiveSlots(folder, services.settings.live_max_calls)
        current_app.extensions["voice_app_live_slots"] = slots
    return slots


def new_live_call(services: Services, prompts: CachedPromptAudio) -> LiveCall:
    """A `LiveCall` wired to the app's parts and settings."""
    settings = services.settings
    return LiveCall(
        line=services.line,
        script=services.script,
        recognizer=services.recognizer,
        prompts=prompts,
        reply_phrases=services.tasks.reply_phrases,
        settings=LiveSettings(
            end_silence_ms=settings.live_end_silence_ms,
            no_speech_ms=settings.record_silence_timeout * 1000,
            max_answer_ms=settings.record_max_seconds * 1000,
            barge_in=settings.live_barge_in,
        ),
    )


@sock.route(STREAM_PATH, bp=stream_routes)  # type: ignore[untyped-decorator]  # flask-sock has no types
def media_stream(ws: Any) -> None:
    """One call's Media Stream, from Twilio's `connected` message to its `stop` or a drop."""
    services = _services()
    settings = services.settings
    if not settings.insecure_skip_signature and not is_signed_by_twilio(
        request, settings.twilio_auth_token, settings.public_base_url, websocket=True
    ):
        log.warning("1008: bad or missing X-Twilio-Signature on the media stream upgrade")
        # Twilio speaks first (`connected`); closing after that message, rather than in the same
        # instant as the handshake, lets every client read the close code.
        ws.receive(timeout=2)
        ws.close(POLICY_VIOLATION, "bad signature")
        return
    slots = _live_slots(services)
    slot = slots.take()
    if slot is None:
        # Live recognition cannot queue: past the machine's capacity every live caller would
        # fall behind. Twilio's <Redirect> carries this call on in record mode instead.
        log.warning("live mode full (%d calls at once): a call goes on in record mode", slots.count)
        ws.receive(timeout=2)
        ws.close(NORMAL_CLOSURE, "live mode is full: record mode")
        return
    try:
        _carry(ws, new_live_call(services, _prompt_audio(services)))
    finally:
        slot.release()


def _carry(ws: Any, call: LiveCall) -> None:
    """Run one live call over its socket; settle it at the end unless record mode takes over."""
    settle = True
    try:
        while not call.ended:
            message = ws.receive(timeout=IDLE_SECONDS)
            if message is None:
                log.warning("live call %s: silent for %g s; closing", call.call_sid, IDLE_SECONDS)
                break
            for out in call.receive(message):
                ws.send(out)
    except Refused as exc:
        log.warning("live stream closed (%d): %s", exc.code, exc.reason)
        settle = exc.code != NORMAL_CLOSURE  # a hand-over to record mode keeps the call going
        ws.close(exc.code, exc.reason)
        return
    except ConnectionClosed:
        pass  # the caller hung up, or Twilio ended the stream: settle below
    except Exception:
        # A fault on this side (a database outage, a prompt that cannot be rendered): leave the
        # call as it stands; Twilio's <Redirect> after the stream carries it on in record mode.
        log.exception("live call %s: the stream failed; record mode takes over", call.call_sid)
        settle = False
    finally:
        if settle:
            try:
                call.close()
            except Exception:
                log.exception("live call %s: could not settle the call", call.call_sid)
    ws.close()
