"""Every error the practice line raises on purpose, each carrying text a person can act on.

VoiceAppError
├── ConfigError            a setting is missing or wrong; says which and how to fix it
│   └── EmbeddingModelNotFound  the interviewer's sentence model is missing; says what to run
├── RulesError             a file in grammars/ is invalid; names the file and the key
├── SpeechError
│   ├── ModelNotFound      the Vosk model is missing or broken; says what to run
│   ├── AudioError         audio that cannot be decoded (corrupt, wrong format)
│   └── RenderError        a prompt could not be rendered by the TTS child process
├── RecordingFetchError    a recording could not be fetched (refused host, not ready, too big)
└── SmsError               a text could not be sent; `permanent` says whether a retry can help
"""

from __future__ import annotations


class VoiceAppError(Exception):
    """Base of the errors this package raises; the message is meant for the person running it."""


class ConfigError(VoiceAppError):
    """A setting is missing or invalid."""


class EmbeddingModelNotFound(ConfigError):
    """The sentence model of the interviewer's semantic signal cannot be loaded."""


class RulesError(VoiceAppError):
    """A rules or question file under grammars/ does not validate."""

    def __init__(self, path: str, key: str, problem: str) -> None:
        self.path = path
        self.key = key
        self.problem = problem
        super().__init__(f"{path}: {key}: {problem}")


class SpeechError(VoiceAppError):
    """Speech recognition or synthesis failed."""


class ModelNotFound(SpeechError):
    """The speech model cannot be loaded."""


class AudioError(SpeechError):
    """Audio bytes that cannot be decoded into samples."""


class RenderError(SpeechError):
    """A prompt could not be rendered to audio."""


class RecordingFetchError(VoiceAppError):
    """A caller's recording could not be fetched from Twilio."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        self.retryable = retryable
        super().__init__(message)


class SmsError(VoiceAppError):
    """A text message could not be handed to Twilio."""

    def __init__(self, message: str, *, permanent: bool, code: int | None = None) -> None:
        self.permanent = permanent
        self.code = code
        super().__init__(message)
