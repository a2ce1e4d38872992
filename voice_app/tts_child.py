"""Render one prompt to a WAV file with pyttsx3 + espeak-ng, then exit.

Run as `python -m voice_app.tts_child TEXT OUTPUT --voice V --rate R` (TEXT `-` reads stdin).
Each render gets its own process because the pyttsx3 engine can hang when reused in one process;
the parent (`voice_app.tts`) enforces a timeout. pyttsx3 is imported only inside `main`, so the
parent can import the exit codes below without loading it.
"""

from __future__ import annotations

import argparse
import sys
import threading
import wave
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NO_ESPEAK = 3
EXIT_UNKNOWN_VOICE = 4
EXIT_NO_AUDIO = 5


def find_voice(voices: Iterable[Any], wanted: str) -> str | None:
    """The id of the voice named by `wanted`: an espeak id, its last part, a language or a name."""
    wanted = wanted.strip().lower()
    candidates = list(voices)

    def languages(voice: Any) -> list[str]:
        # Older pyttsx3 releases hand languages back as bytes.
        return [
            lang.decode("utf-8", "ignore").lower() if isinstance(lang, bytes) else str(lang).lower()
            for lang in getattr(voice, "languages", None) or []
        ]

    # Most specific first, so "en" picks gmw/en rather than the first voice that speaks some "en".
    tests: tuple[Callable[[Any], bool], ...] = (
        lambda v: str(v.id).lower() == wanted,
        lambda v: str(v.id).lower().rsplit("/", 1)[-1] == wanted,
        lambda v: wanted in languages(v),
        lambda v: str(v.name or "").lower() == wanted,
    )
    for test in tests:
        for voice in candidates:
            if test(voice):
                return str(voice.id)
    return None


def _suggestions(voices: Iterable[Any], wanted: str, limit: int = 10) -> list[str]:
    ids = sorted(str(v.id) for v in voices)
    prefix = wanted.strip().lower()[:2]
    close = [i for i in ids if i.rsplit("/", 1)[-1].startswith(prefix)] if prefix else []
    # Nothing alike: the prompts are English, so English ids are the likeliest useful hint.
    english = [i for i in ids if i.rsplit("/", 1)[-1].startswith("en")]
    return (close or english or ids)[:limit]


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m voice_app.tts_child", description="Render one prompt to a WAV file."
    )
    parser.add_argument("text", help="text to speak, or - to read it from stdin (UTF-8)")
    parser.add_argument("output", type=Path, help="WAV file to write (22050 Hz mono 16-bit)")
    parser.add_argument("--voice", default="en-us", help="espeak voice id, language or name")
    parser.add_argument("--rate", type=int, default=165, help="words per minute")
    return parser.parse_args(argv)


def _has_audio(path: Path) -> bool:
    try:
        with wave.open(str(path), "rb") as wav:
            return wav.getnframes() > 0
    except (OSError, wave.Error, EOFError):
        # Missing or truncated file: the caller reports "no audio", which is the truth.
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """Render the prompt named on the command line; return the process exit code."""
    args = _parse_args(argv)
    text = sys.stdin.buffer.read().decode("utf-8") if args.text == "-" else args.text
    if not text.strip():
        print("nothing to say: the text is empty", file=sys.stderr)
        return EXIT_FAILED
    try:
        import pyttsx3

        engine = pyttsx3.init("espeak")
    except (ImportError, OSError, RuntimeError) as exc:
        # pyttsx3's espeak driver raises RuntimeError/ImportError when libespeak-ng is absent.
        print(f"espeak-ng is not usable: {exc}", file=sys.stderr)
        return EXIT_NO_ESPEAK

    voices = engine.getProperty("voices")
    voice_id = find_voice(voices, args.voice)
    if voice_id is None:
        some = ", ".join(_suggestions(voices, args.voice))
        print(f"unknown voice {args.voice!r}; available ids include: {some}", file=sys.stderr)
        return EXIT_UNKNOWN_VOICE
    engine.setProperty("voice", voice_id)
    engine.setProperty("rate", args.rate)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    finished = threading.Event()
    engine.connect("finished-utterance", lambda **_: finished.set())
    engine.save_to_file(text, str(args.output))
    engine.runAndWait()
    # pyttsx3's espeak driver returns from runAndWait while espeak is still synthesizing on its
    # own thread; long or slow prompts came out missing. The parent's timeout bounds this wait.
    finished.wait()
    if not _has_audio(args.output):
        print(f"espeak-ng produced no audio in {args.output}", file=sys.stderr)
        return EXIT_NO_AUDIO
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
