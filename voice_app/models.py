"""Speech models: where the app finds its Vosk model, fetching one, and checking it works.

    VOSK_MODEL_PATH set           that folder, whatever model it holds
    VOSK_MODEL_PATH empty         VOICE_APP_MODEL_CACHE/VOICE_APP_VOSK_MODEL
                                  (~/.cache/vosk/vosk-model-small-en-us-0.15 by default)

`voice-app model download [NAME]` fetches a model with Vosk's own downloader (its model list,
its progress bar) into the cache; `voice-app model check` loads the model the app would use and
transcribes a sample, printing the load time and the real-time factor.
"""

from __future__ import annotations

import shutil
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import URLError

import click

from voice_app.config import Settings, load_settings
from voice_app.errors import ModelNotFound, VoiceAppError

DEFAULT_MODEL = "vosk-model-small-en-us-0.15"
SAMPLE_TEXT = "Tell me about a project you led and what changed because of it."


class ModelDownloadError(VoiceAppError):
    """A model could not be fetched or unpacked; the message says what happened."""


def model_cache(settings: Settings) -> Path:
    """The folder models are downloaded into (VOICE_APP_MODEL_CACHE)."""
    return Path(settings.model_cache_dir).expanduser()


def resolve_model_path(settings: Settings) -> str:
    """The model folder the app uses: VOSK_MODEL_PATH, else the configured model in the cache.

    Only decides where to look; `VoskRecognizer` says what is wrong with what it finds there.
    """
    if settings.vosk_model_path.strip():
        return settings.vosk_model_path
    cached = model_cache(settings) / settings.vosk_model_name
    if cached.is_dir():
        return str(cached)
    raise ModelNotFound(
        f"No Vosk speech model: VOSK_MODEL_PATH is not set and {cached} does not exist. "
        f"Run `voice-app model download {settings.vosk_model_name}` to fetch it, or set "
        "VOSK_MODEL_PATH to an unpacked Vosk model folder from "
        "https://alphacephei.com/vosk/models, or run the simulator with --perfect-asr."
    )


def download_model(name: str, cache_dir: Path) -> Path:
    """Fetch model `name` into `cache_dir` with Vosk's downloader; return its folder.

    A model already in the cache is not fetched again. Vosk's downloader loads the model once
    it is unpacked, so a model that comes back from here is known to load.
    """
    import requests
    import vosk

    from voice_app.asr.vosk_engine import VoskRecognizer, checked_model_dir

    target = cache_dir / name
    if target.is_dir():
        try:
            checked_model_dir(str(target))
        except ModelNotFound as exc:
            raise ModelDownloadError(
                f"{target} exists but is not a complete Vosk model: delete it and download again."
            ) from exc
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    vosk.SetLogLevel(-1)
    # Vosk searches MODEL_DIRS for the model and downloads into the last one: with only the
    # cache listed, the model lands there and nowhere else.
    saved_dirs = vosk.MODEL_DIRS
    vosk.MODEL_DIRS = [cache_dir]
    try:
        _vosk_downloader().get_model_path(name, None)
        # Loading it is the check that the archive held a whole model.
        VoskRecognizer(str(target))
    except SystemExit:
        # Vosk's downloader prints "model name ... does not exist" and calls sys.exit(1).
        raise ModelDownloadError(
            f"{name!r} is not in Vosk's model list ({vosk.MODEL_LIST_URL}); see "
            "https://alphacephei.com/vosk/models for the names."
        ) from None
    except (requests.RequestException, URLError, OSError, ValueError) as exc:
        # Nothing usable was made: remove what the failed download left so a rerun starts clean.
        _remove_partial(target)
        raise ModelDownloadError(
            f"Could not download {name!r} from {vosk.MODEL_PRE_URL}: {exc}"
        ) from exc
    except zipfile.BadZipFile as exc:
        _remove_partial(target)
        raise ModelDownloadError(f"The download of {name!r} is not a valid zip: {exc}") from exc
    except ModelNotFound as exc:
        _remove_partial(target)
        raise ModelNotFound(
            f"{name!r} was downloaded but does not load as a Vosk model; it was removed. {exc}"
        ) from exc
    finally:
        vosk.MODEL_DIRS = saved_dirs
    return target


def _downloader_class() -> type:
    import vosk

    class VoskDownloader(vosk.Model):  # type: ignore[misc]  # vosk ships no type hints
        """Vosk's own model search and download (list, progress bar, unzip), loading nothing."""

        def __init__(self) -> None:
            self._handle = None  # no model: only the download methods are used

        def __del__(self) -> None:
            pass  # nothing was loaded, so nothing to free

    return VoskDownloader


def _vosk_downloader() -> Any:
    return _downloader_class()()


def _remove_partial(target: Path) -> None:
    archive = target.with_name(target.name + ".zip")
    archive.unlink(missing_ok=True)
    if target.is_dir():
        shutil.rmtree(target, ignore_errors=True)


@dataclass(frozen=True)
class ModelCheck:
    """What `check_model` measured."""

    model_path: str
    sample_rate: int
    load_seconds: float
    audio_seconds: float
    transcribe_seconds: float
    text: str
    missing_phrase_words: dict[str, list[str]]

    @property
    def real_time_factor(self) -> float:
        """Seconds of work per second of audio (below 1 keeps up with a caller)."""
        return self.transcribe_seconds / self.audio_seconds if self.audio_seconds else 0.0


def check_model(settings: Settings, sample_wav: bytes | None = None) -> ModelCheck:
    """Load the model the app would use and transcribe a sample (a rendered prompt by default)."""
    from voice_app.asr.vosk_engine import VoskRecognizer
    from voice_app.audio import read_wav
    from voice_app.replies import load_phrases
    from voice_app.tts import synthesize

    path = resolve_model_path(settings)
    started = time.perf_counter()
    recognizer = VoskRecognizer(path, max_seconds=float(settings.asr_max_seconds))
    load_seconds = time.perf_counter() - started
    if sample_wav is None:
        sample_wav = synthesize(SAMPLE_TEXT, voice=settings.tts_voice, rate=settings.tts_rate)
    samples, rate = read_wav(sample_wav)
    started = time.perf_counter()
    transcript = recognizer.transcribe(sample_wav)
    transcribe_seconds = time.perf_counter() - started
    names = sorted(path.stem for path in (settings.grammars_path / "phrases").glob("*.json"))
    missing = {
        name: words
        for name, phrases in load_phrases(settings.grammars_path, names).items()
        if (words := recognizer.missing_words(phrases))
    }
    return ModelCheck(
        model_path=recognizer.model_path,
        sample_rate=recognizer.sample_rate,
        load_seconds=load_seconds,
        audio_seconds=len(samples) / rate,
        transcribe_seconds=transcribe_seconds,
        text=transcript.text,
        missing_phrase_words=missing,
    )


@click.group("model")
def model_group() -> None:
    """Download and check the Vosk speech model."""


@model_group.command("download")
@click.argument("name", required=False)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder to unpack into (default: VOICE_APP_MODEL_CACHE).",
)
def download_command(name: str | None, cache_dir: str | None) -> None:
    """Fetch a Vosk model (default: VOICE_APP_VOSK_MODEL) into the model cache."""
    settings = load_settings()
    name = name or settings.vosk_model_name or DEFAULT_MODEL
    cache = Path(cache_dir).expanduser() if cache_dir else model_cache(settings)
    try:
        folder = download_model(name, cache)
    except VoiceAppError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{name} is in {folder}")
    if settings.vosk_model_path.strip():
        click.echo(f"VOSK_MODEL_PATH is set ({settings.vosk_model_path}): the app uses that one.")
    elif name != settings.vosk_model_name:
        click.echo(f"To use it: export VOICE_APP_VOSK_MODEL={name} (or VOSK_MODEL_PATH={folder})")


@model_group.command("check")
@click.option(
    "--wav",
    "wav_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Transcribe this WAV file instead of a rendered sample sentence.",
)
def check_command(wav_path: str | None) -> None:
    """Load the model the app would use, transcribe a sample, print load time and speed."""
    settings = load_settings()
    sample = Path(wav_path).read_bytes() if wav_path else None
    try:
        report = check_model(settings, sample)
    except VoiceAppError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"model        {report.model_path} ({report.sample_rate} Hz)")
    click.echo(f"load time    {report.load_seconds:.2f} s")
    click.echo(
        f"sample       {report.audio_seconds:.1f} s of audio in {report.transcribe_seconds:.2f} s"
        f": real-time factor {report.real_time_factor:.3f}"
    )
    click.echo(f"heard        {report.text!r}")
    for name, words in report.missing_phrase_words.items():
        click.echo(
            f"warning: phrase list {name!r} has words this model does not know (never heard): "
            + ", ".join(words),
            err=True,
        )
