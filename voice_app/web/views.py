"""The webhook views: read the request, call the practice line, answer with TwiML."""

from __future__ import annotations

import hashlib
import json
import logging

from flask import Blueprint, Response, abort, current_app, request, send_file
from sqlalchemy.exc import OperationalError
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse
from werkzeug.exceptions import RequestEntityTooLarge

from voice_app import flow
from voice_app.services import Services
from voice_app.web.signature import is_signed_by_twilio, raw_path_and_query, websocket_url
from voice_app.web.stream import STREAM_PATH
from voice_app.web.twiml import SAY_LANGUAGE, empty_response, render_steps, render_stream

log = logging.getLogger(__name__)

twilio_routes = Blueprint("twilio", __name__)
public_routes = Blueprint("public", __name__)


def _services() -> Services:
    services: Services = current_app.extensions["voice_app"]
    return services


@twilio_routes.before_request
def _require_twilio_signature() -> None:
    settings = _services().settings
    if settings.insecure_skip_signature:
        return
    if not is_signed_by_twilio(request, settings.twilio_auth_token, settings.public_base_url):
        log.warning("403: bad or missing X-Twilio-Signature on %s", request.path)
        abort(403)


@twilio_routes.app_errorhandler(RequestEntityTooLarge)
def _too_large(error: RequestEntityTooLarge) -> tuple[str, int]:
    log.warning(
        "413: a request body over %s bytes was refused on %s",
        current_app.config["MAX_CONTENT_LENGTH"],
        request.path,
    )
    return "Request body too large.", 413


def _field(name: str) -> str:
    value = request.form.get(name, "").strip()
    if not value:
        abort(400, description=f"missing form field {name}")
    return value


def _int_arg(name: str, default: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None and default is not None:
        return default
    try:
        return int(raw or "")
    except ValueError:
        abort(400, description=f"query parameter {name} must be a whole number")


def _replay_key() -> str:
    """Names this webhook delivery, so that a retry of it is answered the same and only once."""
    token = request.headers.get("I-Twilio-Idempotency-Token", "").strip()
    if token:
        return f"token:{token[:100]}"
    # Without Twilio's token: the same call, step (path and query) and parameters.
    material = json.dumps(
        [raw_path_and_query(request), sorted(request.form.items(multi=True))], ensure_ascii=False
    )
    return "step:" + hashlib.sha256(material.encode("utf-8")).hexdigest()


def _twiml(steps: tuple[flow.Step, ...]) -> Response:
    return render_steps(steps, _services().twiml_context())


@twilio_routes.post("/voice/incoming")
def incoming_call() -> Response:
    """A call comes in: greeting and consent question (live mode: the Media Stream instead)."""
    services = _services()
    call_sid = _field("CallSid")
    if services.settings.mode == "live":
        services.line.start_live(call_sid, request.form.get("From", ""))
        base = services.settings.public_base_url.rstrip("/") or request.host_url.rstrip("/")
        return render_stream(
            websocket_url(base + STREAM_PATH),
            call_sid,
            services.public_url("/voice/stream-ended"),
        )
    steps = services.line.incoming(
        call_sid, request.form.get("From", ""), replay_key=_replay_key()
    )
    return _twiml(steps)


@twilio_routes.post("/voice/stream-ended")
def stream_ended() -> Response:
    """Live mode's stream closed: hang up a finished call; otherwise go on in record mode."""
    steps = _services().line.resume(_field("CallSid"))
    return _twiml(steps)


@twilio_routes.post("/voice/consent")
def consent() -> Response:
    """The caller's reply to the texting question: a key, a short recording, or nothing."""
    silent = request.args.get("silent") == "1"
    steps = _services().line.consent(
        _field("CallSid"),
        request.form.get("Digits", ""),
        None if silent else (request.form.get("RecordingUrl") or None),
        replay_key=_replay_key(),
    )
    return _twiml(steps)


@twilio_routes.post("/voice/answer")
def answer() -> Response:
    """A recording ended, or nothing was recorded (`silent=1`)."""
    silent = request.args.get("silent") == "1"
    steps = _services().line.answer(
        _field("CallSid"),
        _int_arg("turn"),
        recording_url=None if silent else (request.form.get("RecordingUrl") or None),
        digits=request.form.get("Digits", ""),
        hung_up=request.form.get("CallStatus", "in-progress") == "completed",
        replay_key=_replay_key(),
    )
    return _twiml(steps)


@twilio_routes.post("/voice/wait")
def wait() -> Response:
    """The caller holds while the answer is transcribed."""
    steps = _services().line.wait(
        _field("CallSid"), _int_arg("turn"), _int_arg("attempt", 1), replay_key=_replay_key()
    )
    return _twiml(steps)


@twilio_routes.post("/voice/status")
def call_status() -> Response:
    """Twilio's call status callback."""
    _services().line.status(_field("CallSid"), _field("CallStatus"))
    return empty_response()


@twilio_routes.post("/sms/incoming")
def incoming_text() -> Response:
    """A text to the line's number: STOP, START, HELP, or anything else."""
    reply = _services().texts_in.handle(_field("From"), request.form.get("Body", ""))
    response = MessagingResponse()
    if reply:
        response.message(reply)
    return Response(str(response), mimetype="text/xml")


@twilio_routes.post("/sms/status")
def text_status() -> Response:
    """Twilio's status callback for a feedback text we sent."""
    raw_code = request.form.get("ErrorCode", "").strip()
    _services().texts_in.delivery_report(
        _field("MessageSid"),
        _field("MessageStatus"),
        int(raw_code) if raw_code.isdigit() else None,
        request.form.get("To", ""),
    )
    return empty_response()


@twilio_routes.post("/voice/fallback")
def fallback() -> Response:
    """Twilio's fallback URL: the primary handler failed, so apologise and end the call."""
    log.error(
        "fallback URL called for call %s (error %s)",
        request.form.get("CallSid", "?"),
        request.form.get("ErrorCode", "?"),
    )
    response = VoiceResponse()
    response.say(_services().script.lines.fallback, language=SAY_LANGUAGE)
    response.hangup()
    return Response(str(response), mimetype="text/xml")


@public_routes.get("/healthz")
def health() -> tuple[dict[str, object], int]:
    """Whether this process can take calls: model loaded, database reachable, work queued."""
    services = _services()
    try:
        database = services.store.ping()
        queue_depth: int | None = services.worker.pending_count()
    except OperationalError:
        # Reported, not raised: a health check must answer even when the database does not.
        database, queue_depth = False, None
    status = {
        "model_loaded": True,  # the app does not start without a working recognizer
        "recognizer": services.recognizer.name,
        "database": database,
        "queue_depth": queue_depth,
    }
    return status, 200 if database else 503


@public_routes.get("/prompts/<key>.wav")
def prompt_audio(key: str) -> Response:
    """A rendered prompt, for <Play>."""
    path = _services().prompts.path_for_key(key)
    if path is None:
        abort(404)
    return send_file(path, mimetype="audio/wav", max_age=86400)


@public_routes.get("/prompts/<key>.txt")
def prompt_caption(key: str) -> Response:
    """What a rendered prompt says: its caption, for the simulator and for operators."""
    caption = _services().prompts.caption_for_key(key)
    if caption is None:
        abort(404)
    return Response(caption, mimetype="text/plain; charset=utf-8")
