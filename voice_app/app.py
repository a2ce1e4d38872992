"""The application factory: settings in, a Flask app with its services wired up out."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response, after_this_request, g, has_request_context
from werkzeug.middleware.proxy_fix import ProxyFix

from voice_app import interviewer, redact
from voice_app.analyst import Analyst
from voice_app.asr import Recognizer, bounded, load_recognizer
from voice_app.config import Settings, load_settings
from voice_app.embedding import Encoder, load_encoder, model_dir_of
from voice_app.errors import ConfigError
from voice_app.line import PracticeLine
from voice_app.recordings import RecordingSource, TwilioRecordings
from voice_app.replies import load_phrases
from voice_app.script import load_script
from voice_app.services import Services
from voice_app.sms import TextSender, make_text_sender
from voice_app.store import Store
from voice_app.tasks import Tasks, schedule_purge
from voice_app.texts_in import IncomingTexts
from voice_app.tts import PromptCache
from voice_app.worker import Worker

log = logging.getLogger("voice_app")

# The phrase lists (grammars/phrases/) a reply to the texting question is recognised against.
CONSENT_REPLIES = ("yes", "no")


def create_app(
    config: Mapping[str, Any] | None = None,
    *,
    recognizer: Recognizer | None = None,
    text_sender: TextSender | None = None,
    recordings: RecordingSource | None = None,
    encoder: Encoder | None = None,
    start_background: bool = True,
) -> Flask:
    """Build the app. `config` overrides settings by field name; the adapters replace defaults.

    Without an `encoder`, the sentence model named by the settings is loaded (once per process);
    when it is missing the app refuses to start and says what to install (EmbeddingModelNotFound).

    With `start_background`, the worker threads and prompt rendering start at once; a server
    that forks after building the app starts them in each child with `start_background_work`.
    """
    settings = load_settings(config)
    _configure_logging(settings)
    _check_signature_settings(settings)
    store = Store(settings.resolved_database_url)
    store.create_schema()
    script = load_script(settings, encoder if encoder is not None else load_encoder(settings))
    for rules in script.questions:
        # Compile the rubric's patterns and embed the examples now, before a server forks, not on
        # each first call.
        interviewer.analyze(rules, ["warm up"], script.encoder)
    prompts = PromptCache(settings.prompt_dir, voice=settings.tts_voice, rate=settings.tts_rate)
    worker = Worker(store, {}, threads=settings.workers)
    line = PracticeLine(script, store, settings.question_bank, _after_response(worker.notify))
    tasks = Tasks(
        store=store,
        script=script,
        recognizer=bounded(recognizer, settings) if recognizer else load_recognizer(settings),
        recordings=recordings or TwilioRecordings(settings),
        text_sender=text_sender or make_text_sender(settings),
        prompts=prompts,
        delete_recordings=settings.delete_recordings,
        sms_max_chars=settings.sms_max_chars,
        # Delivery reports need a URL Twilio can reach; without one, texts go without them.
        reply_phrases=load_phrases(settings.grammars_path, CONSENT_REPLIES),
        retention_days=settings.retention_days,
        status_callback=(
            f"{settings.public_base_url.rstrip('/')}/sms/status"
            if settings.public_base_url
            else None
        ),
    )
    worker.kinds = tasks.kinds()
    services = Services(
        settings=settings,
        store=store,
        script=script,
        recognizer=tasks.recognizer,
        prompts=prompts,
        line=line,
        tasks=tasks,
        texts_in=IncomingTexts(store),
        worker=worker,
    )

    app = Flask("voice_app")
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024  # Twilio's webhook forms are a few KB
    app.extensions["voice_app"] = services
    if settings.trust_forwarded:
        # One proxy in front rewrites scheme, host and port; only then are its headers trusted.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1, x_port=1)  # type: ignore[method-assign]
    from voice_app.web.stream import sock, socket_options, stream_routes
    from voice_app.web.views import public_routes, twilio_routes

    app.register_blueprint(twilio_routes)
    app.register_blueprint(public_routes)
    app.config["SOCK_SERVER_OPTIONS"] = socket_options()
    app.register_blueprint(stream_routes)
    sock.init_app(app)

    if start_background:
        start_background_work(app)
    return app


def start_background_work(app: Flask) -> None:
    """Start the worker threads and render missing prompts (when workers are configured)."""
    services = get_services(app)
    if services.settings.workers > 0:
        with services.store.transaction() as session:
            schedule_purge(session)
        # Rubric analyses leave this process, whose GIL the webhooks need (see analyst.py);
        # not with an encoder another process cannot load (one a test passed in).
        encoder = services.script.encoder
        model_dir = model_dir_of(encoder) if encoder is not None else None
        if encoder is None or model_dir is not None:
            questions = [rules.id for rules in services.script.questions]
            analyst = Analyst(services.settings.grammars_path, questions, model_dir)
            services.tasks.analyst = analyst
            services.worker.on_stop(analyst.stop)
            analyst.start()
        services.worker.start()
        _render_prompts_in_background(services)


def _after_response(wake: Callable[[], None]) -> Callable[[], None]:
    """`wake`, put off until the current request's answer has been sent (at once outside one).

    A job thread woken while the webhook still renders its TwiML competes with it for this
    process's GIL; the caller's answer goes first, the job a moment later.
    """

    def wake_after_response() -> None:
        if not has_request_context():
            wake()
            return
        if g.get("wake_after_response"):
            return
        g.wake_after_response = True

        @after_this_request
        def wake_on_close(response: Response) -> Response:
            response.call_on_close(wake)
            return response

    return wake_after_response


def get_services(app: Flask) -> Services:
    """The services of an app built by `create_app`."""
    services: Services = app.extensions["voice_app"]
    return services


def _check_signature_settings(settings: Settings) -> None:
    if settings.insecure_skip_signature:
        log.warning(
            "!!! VOICE_APP_INSECURE_SKIP_SIGNATURE is on: requests are NOT checked for Twilio's "
            "signature. Anyone who can reach this server can drive calls. Development only. !!!"
        )
        return
    if not settings.twilio_auth_token:
        raise ConfigError(
            "TWILIO_AUTH_TOKEN is not set, so Twilio's signatures cannot be checked and the app "
            "will not serve. Set it to your account's auth token, or for local development only "
            "set VOICE_APP_INSECURE_SKIP_SIGNATURE=1."
        )
    if not settings.public_base_url:
        log.warning(
            "PUBLIC_BASE_URL is not set: signatures are checked against the URL each request "
            "names, which fails behind proxies and tunnels. Set it to the https URL Twilio calls."
        )


def _render_prompts_in_background(services: Services) -> None:
    missing = [
        text for text in services.script.spoken_texts() if services.prompts.lookup(text) is None
    ]
    if not missing:
        return

    def render() -> None:
        report = services.prompts.render_all(missing)
        log.info("prompts rendered: %d new, %d failed", report.rendered, len(report.failed))

    threading.Thread(target=render, name="voice-app-prompts", daemon=True).start()


def _configure_logging(settings: Settings) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=settings.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    log.setLevel(settings.log_level.upper())
    # Phone numbers never reach the logs, whoever logs them (ours, twilio's, the server's).
    redact.install(logging.getLogger().handlers)
    # The twilio client logs every request's headers at INFO; that is noise, not news.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
