"""The app's parts, built once by `create_app` and shared by views, worker and simulator."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from voice_app.asr import BoundedRecognizer
from voice_app.config import Settings
from voice_app.line import PracticeLine
from voice_app.script import Script
from voice_app.store import Store
from voice_app.tasks import RENDER_PROMPT, Tasks
from voice_app.texts_in import IncomingTexts
from voice_app.tts import PromptCache
from voice_app.web.twiml import TwimlContext
from voice_app.worker import Worker, enqueue

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything one app instance owns."""

    settings: Settings
    store: Store
    script: Script
    recognizer: BoundedRecognizer
    prompts: PromptCache
    line: PracticeLine
    tasks: Tasks
    texts_in: IncomingTexts
    worker: Worker

    def public_url(self, path: str) -> str:
        """A URL Twilio can call: absolute when the public base URL is known, else relative."""
        base = self.settings.public_base_url.rstrip("/")
        return f"{base}{path}" if base else path

    def prompt_url(self, text: str) -> str | None:
        """The URL of a prompt's rendered audio; None (and a render queued) when not cached."""
        path = self.prompts.lookup(text)
        if path is not None:
            return self.public_url(f"/prompts/{path.stem}.wav")
        with self.store.transaction() as session:
            queued = enqueue(session, RENDER_PROMPT, self.prompts.key(text), payload={"text": text})
        if queued:
            log.info("prompt not rendered yet, spoken with <Say> meanwhile: %.40r", text)
            self.worker.notify()
        return None

    def twiml_context(self) -> TwimlContext:
        """How steps become TwiML in this app."""
        return TwimlContext(
            url_for=self.public_url,
            prompt_url=self.prompt_url,
            silence_timeout=self.settings.record_silence_timeout,
            max_length=self.settings.record_max_seconds,
            hold_seconds=self.script.hold_seconds,
        )
