"""Recognition on an English Vosk model: runs only when VOSK_MODEL_PATH names one.

No English model can be downloaded where this project is built, so these tests are skipped there
(the -ra summary says so and why). On a machine with `voice-app model download`'s model:

    VOSK_MODEL_PATH=~/.cache/vosk/vosk-model-small-en-us-0.15 \
        .venv/bin/pytest tests/test_asr_english.py

The speech is espeak-ng's English brought down to an 8 kHz phone recording, so the checks ask
for what a small model gets right on it: most words of a sentence, and short replies exactly.
"""

from __future__ import annotations

import difflib
import functools
import os

import pytest

from tests.audio_fixtures import speech_samples
from voice_app.asr.vosk_engine import VoskRecognizer
from voice_app.audio import PHONE_RATE, mulaw_encode, to_wav_bytes
from voice_app.config import SHIPPED_GRAMMARS_DIR
from voice_app.errors import ModelNotFound
from voice_app.replies import classify, grammar, load_phrases

MODEL_PATH = os.environ.get("VOSK_MODEL_PATH", "")
SHIPPED_LISTS = sorted(p.stem for p in (SHIPPED_GRAMMARS_DIR / "phrases").glob("*.json"))


@functools.lru_cache(maxsize=1)
def _english_model() -> tuple[VoskRecognizer | None, str]:
    if not MODEL_PATH:
        return None, (
            "English-model tests skipped: VOSK_MODEL_PATH is not set (set it to an unpacked "
            "English model, e.g. after `voice-app model download`)"
        )
    try:
        recognizer = VoskRecognizer(MODEL_PATH)
    except ModelNotFound as exc:
        return None, f"English-model tests skipped: VOSK_MODEL_PATH does not load: {exc}"
    if any(recognizer.model.vosk_model_find_word(w) < 0 for w in ("the", "yes", "project")):
        return None, f"English-model tests skipped: {MODEL_PATH} is not an English model"
    return recognizer, ""


@pytest.fixture(scope="module")
def english() -> VoskRecognizer:
    recognizer, reason = _english_model()
    if recognizer is None:
        pytest.skip(reason)
    return recognizer


def _phone_wav(text: str) -> bytes:
    return to_wav_bytes(speech_samples(text, "en-us", PHONE_RATE, 150), PHONE_RATE)


def _words_heard(said: str, heard: str) -> float:
    matcher = difflib.SequenceMatcher(a=said.lower().split(), b=heard.split())
    return sum(block.size for block in matcher.get_matching_blocks()) / len(said.split())


SENTENCE = "i led the migration of our billing system and we cut costs by twenty percent"


def test_phone_audio_is_resampled_to_the_models_rate(english: VoskRecognizer) -> None:
    assert english.sample_rate >= 16000  # the small English model refuses to upsample itself
    transcript = english.transcribe(_phone_wav(SENTENCE))
    assert _words_heard(SENTENCE, transcript.text) >= 0.6, transcript.text
    assert transcript.words[-1].end <= transcript.duration + 1e-6


def test_mulaw_stream_hears_the_same_sentence(english: VoskRecognizer) -> None:
    encoded = mulaw_encode(speech_samples(SENTENCE, "en-us", PHONE_RATE, 150))
    stream = english.open_stream(PHONE_RATE)
    for start in range(0, len(encoded), 160):
        stream.feed_mulaw(encoded[start : start + 160])
    assert _words_heard(SENTENCE, stream.finish().text) >= 0.6


def test_the_shipped_phrase_lists_use_only_words_the_model_knows(
    english: VoskRecognizer,
) -> None:
    lists = load_phrases(SHIPPED_GRAMMARS_DIR, SHIPPED_LISTS)
    missing = {name: english.missing_words(phrases) for name, phrases in lists.items()}
    assert not any(missing.values()), missing


@pytest.mark.parametrize(
    ("said", "meaning"),
    [("yes please", "yes"), ("no thanks", "no"), ("say that again", "repeat")],
)
def test_short_replies_with_the_phrase_lists(
    english: VoskRecognizer, said: str, meaning: str
) -> None:
    lists = load_phrases(SHIPPED_GRAMMARS_DIR, ["yes", "no", "repeat"])
    heard = english.transcribe(_phone_wav(said), phrases=grammar(lists))
    assert classify(heard.text, lists) == meaning, heard.text
