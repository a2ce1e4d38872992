"""Load test: many simultaneous simulated calls against `voice-app serve` on 127.0.0.1.

    .venv/bin/python scripts/load_test.py                       # 50 calls, perfect ASR
    .venv/bin/python scripts/load_test.py --asr vosk --calls 2,4,6,8 --stop-above 10

Each run starts one Twilio REST stand-in in this process and a fresh `voice-app serve` as a
subprocess (own temporary data folder and SQLite database), plays one call alone as the latency
baseline, then N calls at once, each in its own thread with its own caller number: signed
webhooks over HTTP, recordings served by the stand-in, the real <Pause> lengths slept
(`--hold-scale` shortens them). It prints and writes (--out) per run: calls completed, non-200
and 5xx answers, webhook latency p50/p95/p99, the caller's wait for the next question, texts per
completed call, and the server's memory (gunicorn master and workers) at start, at peak and
after the calls ended.

A caller's wait runs from posting an answer's recording until the TwiML that carries the next
question, follow-up or closing arrives: the holding period the caller hears.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import os
import platform
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import wave
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from serverharness import (  # noqa: E402
    ACCOUNT_SID,
    AUTH_TOKEN,
    VOICE_APP,
    Server,
    free_port,
    korean_model,
    process_tree,
    render_prompts,
    stop_server,
)
from serverharness import start_server as harness_start_server  # noqa: E402

from tests.audio_fixtures import KOREAN_ANSWER_SENTENCES  # noqa: E402
from voice_app.asr.scripted import embed_transcript  # noqa: E402
from voice_app.audio import PHONE_RATE, Samples, read_wav, resample, to_wav_bytes  # noqa: E402
from voice_app.simulator import ANSWER, CallerStep, SimulationError  # noqa: E402
from voice_app.simulator.call import CallSimulator  # noqa: E402
from voice_app.simulator.standin import TwilioStandIn  # noqa: E402
from voice_app.simulator.stream import StreamSocket  # noqa: E402

# Words per second of the perfect-ASR caller, for the length of its (silent) recordings.
_SPEAKING_RATE = 2.5
# espeak-ng Korean is recognised by the small Korean model at 130-150 words a minute.
_KOREAN_RATE = 140

ENGLISH_ANSWERS = [
    "i led the rebuild of our hospital's night shift rota and we cut overtime by thirty percent",
    "i interviewed every nurse on nights and wrote the rota myself over two weeks",
    "i learned to ask the team earlier and i now share drafts before i decide",
    "the hardest part was the pushback from senior staff so i ran a one month trial",
    "we measured sick days and they fell by a fifth after the change",
]
GOALS = {"errors": 0, "p99_ms": 50.0, "texts_per_call": 1}


# --- the server ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerConfig:
    """How the server under test runs."""

    asr: str
    processes: int
    threads: int
    workers: int
    turns: int
    hold_pause: int
    model_path: str
    command: tuple[str, ...] = (VOICE_APP,)


def settings_of(cfg: ServerConfig) -> dict[str, str]:
    """The server's settings for `cfg`, as an operator would give them: the environment."""
    settings = {
        "VOICE_APP_ASR": cfg.asr,
        "VOICE_APP_WORKERS": str(cfg.workers),
        "VOICE_APP_MAX_FOLLOW_UPS": str(cfg.turns - 1),
        "VOICE_APP_HOLD_PAUSE_SECONDS": str(cfg.hold_pause),
    }
    if cfg.asr == "vosk":
        settings["VOSK_MODEL_PATH"] = cfg.model_path
    return settings


def start_server(cfg: ServerConfig, data: Path, prompts: Path, standin_url: str) -> Server:
    """Start `voice-app serve` as `cfg` says and wait until every worker process is up."""
    return harness_start_server(
        data, prompts, standin_url, settings_of(cfg),
        processes=cfg.processes, threads=cfg.threads, command=cfg.command,
    )


# --- memory and CPU of the server's process tree ----------------------------------------------


def _status_kb(pid: int, key: str, path: str = "status") -> int:
    try:
        text = Path(f"/proc/{pid}/{path}").read_text()
    except OSError:
        return 0  # the process ended while we looked
    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # the process ended while we looked
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class MemorySample:
    """The server's memory at one moment: RSS summed over its processes, and PSS."""

    at: float
    rss_mb: float
    pss_mb: float
    processes: int


def sample_memory(root: int, started: float) -> MemorySample:
    """RSS (counts shared pages once per process) and PSS (splits them) of the server tree."""
    pids = process_tree(root)
    rss = sum(_status_kb(pid, "VmRSS") for pid in pids)
    pss = sum(_status_kb(pid, "Pss", "smaps_rollup") for pid in pids)
    return MemorySample(time.monotonic() - started, rss / 1024, pss / 1024, len(pids))


class MemoryWatch:
    """Samples the server's memory every `interval` seconds in a background thread."""

    def __init__(self, root: int, interval: float = 1.0) -> None:
        self.root = root
        self.interval = interval
        self.started = time.monotonic()
        self.samples: list[MemorySample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(sample_memory(self.root, self.started))
            self._stop.wait(self.interval)

    def peak(self) -> MemorySample:
        """The sample with the most RSS."""
        return max(self.samples, key=lambda s: s.rss_mb)


def server_cpu_seconds(root: int) -> float:
    """CPU seconds used so far by the server's live processes."""
    return sum(_cpu_seconds(pid) for pid in process_tree(root))


def machine_cpu_seconds() -> float:
    """CPU seconds all cores of the machine have been busy so far (every process, from /proc)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used while the `with` block ran: by the server, by this process (the load
    generator), and by every other process on the machine (they share the cores)."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.server = self.client = self.other = 0.0

    def __enter__(self) -> CpuMeter:
        self._start = (
            server_cpu_seconds(self.server_pid), time.process_time(), machine_cpu_seconds()
        )
        return self

    def __exit__(self, *_exc: object) -> None:
        server, client, machine = self._start
        self.server = server_cpu_seconds(self.server_pid) - server
        self.client = time.process_time() - client
        self.other = max(0.0, machine_cpu_seconds() - machine - self.server - self.client)


# --- the calls --------------------------------------------------------------------------------


@dataclass
class CallStats:
    """What one simulated call measured."""

    number: str
    latencies: list[float] = field(default_factory=list)  # webhook POSTs, seconds
    by_path: dict[str, list[float]] = field(default_factory=dict)
    get_latencies: list[float] = field(default_factory=list)  # prompt audio and captions
    statuses: list[int] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    connection_errors: int = 0
    completed: bool = False
    error: str = ""


class MeasuringTransport:
    """HTTP to the server, one connection per request (as behind nginx), timing every request.

    It also times the caller's waits: from posting an answer until an answer arrives that asks
    the next question (<Record> to /voice/answer) or ends the call (<Hangup>).
    """

    def __init__(self, stats: CallStats, listen_scale: float = 0.0) -> None:
        self.stats = stats
        self.session = requests.Session()
        self._wait_started: float | None = None
        # Paced (`--paced`): the caller hears each prompt out, as long as its audio lasts
        # (times this scale), before Twilio goes on to the next verb.
        self.listen_scale = listen_scale

    def post(self, url: str, params: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
        """POST a webhook; its status and body."""
        parts = urlsplit(url)
        is_answer = parts.path == "/voice/answer" and "silent" not in parse_qs(parts.query)
        started = time.perf_counter()
        if is_answer and params.get("RecordingUrl"):
            self._wait_started = started
        try:
            response = self.session.post(
                url, data=params, headers={**headers, "Connection": "close"}, timeout=15
            )
        except requests.RequestException:
            self.stats.connection_errors += 1
            raise
        finished = time.perf_counter()
        self.stats.latencies.append(finished - started)
        self.stats.by_path.setdefault(parts.path, []).append(finished - started)
        self.stats.statuses.append(response.status_code)
        if self._wait_started is not None and _asks_or_ends(response.text):
            self.stats.waits.append(finished - self._wait_started)
            self._wait_started = None
        return response.status_code, response.text

    def get(self, url: str) -> tuple[int, bytes]:
        """GET a prompt's audio or caption."""
        started = time.perf_counter()
        try:
            response = self.session.get(url, headers={"Connection": "close"}, timeout=15)
        except requests.RequestException:
            self.stats.connection_errors += 1
            raise
        self.stats.get_latencies.append(time.perf_counter() - started)
        if self.listen_scale and response.content.startswith(b"RIFF"):
            listening = _wav_seconds(response.content) * self.listen_scale
            time.sleep(listening)
            if self._wait_started is not None:
                # Hearing a prompt (the texting question, a holding line) is not waiting in
                # silence: the caller's wait counts only the rest.
                self._wait_started += listening
        return response.status_code, response.content


    def open_socket(self, url: str, headers: dict[str, str]) -> StreamSocket:
        """Live mode is not load-tested here (scripts/bench_latency.py measures live calls)."""
        raise SimulationError("scripts/load_test.py plays record-mode calls only")


def _wav_seconds(wav: bytes) -> float:
    with wave.open(io.BytesIO(wav)) as reader:
        return float(reader.getnframes() / reader.getframerate())


def _asks_or_ends(document: str) -> bool:
    try:
        root = ET.fromstring(document)
    except ET.ParseError:
        return False  # not TwiML: the simulator reports it
    for verb in root:
        if verb.tag == "Hangup":
            return True
        if verb.tag == "Record" and urlsplit(verb.get("action", "")).path == "/voice/answer":
            return True
    return False


def scripted_recordings(turns: int) -> tuple[list[str], Callable[[str], bytes]]:
    """Perfect-ASR answers: silence as long as the words, carrying the words for the server."""
    answers = [ENGLISH_ANSWERS[i % len(ENGLISH_ANSWERS)] for i in range(turns)]

    def make(text: str) -> bytes:
        seconds = max(1.0, len(text.split()) / _SPEAKING_RATE)
        silence = np.zeros(int(seconds * PHONE_RATE), dtype=np.int16)
        return embed_transcript(to_wav_bytes(silence, PHONE_RATE), text)

    return answers, make


def _korean_speech(text: str) -> Samples:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        sys.exit("espeak-ng is needed for --asr vosk: scripts/install.sh")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "speech.wav"
        subprocess.run(
            [espeak, "-v", "ko", "-s", str(_KOREAN_RATE), "-w", str(out), text],
            check=True, capture_output=True, timeout=30,
        )
        samples, rate = read_wav(out.read_bytes())
    return resample(samples, rate, PHONE_RATE)


def spoken_recordings(
    turns: int, seconds: float
) -> tuple[list[str], Callable[[str], bytes], list[float]]:
    """Korean answers of at least `seconds` each, spoken by espeak-ng, at phone rate (8 kHz)."""
    sentences = [_korean_speech(text) for text in KOREAN_ANSWER_SENTENCES]
    pause = np.zeros(int(0.6 * PHONE_RATE), dtype=np.int16)
    wavs: dict[str, bytes] = {}
    lengths: list[float] = []
    for turn in range(turns):
        pieces: list[Samples] = []
        index = turn
        while sum(len(p) for p in pieces) < seconds * PHONE_RATE:
            pieces += [sentences[index % len(sentences)], pause]
            index += 1
        audio = np.concatenate(pieces)
        wavs[f"korean answer {turn + 1}"] = to_wav_bytes(audio, PHONE_RATE)
        lengths.append(len(audio) / PHONE_RATE)
    return list(wavs), wavs.__getitem__, lengths


def play_call(
    server: Server,
    standin: TwilioStandIn,
    stats: CallStats,
    answers: list[str],
    make_recording: Callable[[str], bytes],
    hold_scale: float,
    paced: bool = False,
) -> None:
    """One whole call; failures are recorded in `stats`, never raised.

    `paced`: the caller also takes the time a person takes (times `hold_scale`): hears every
    prompt out, and speaks each answer for as long as its recording lasts, times a factor of
    its own between 0.6 and 1.6 (callers speak at different lengths, so calls drift apart).
    """
    speaking = random.Random(stats.number).uniform(0.6, 1.6) * hold_scale if paced else 0.0

    def record(text: str) -> bytes:
        wav = make_recording(text)
        time.sleep(_wav_seconds(wav) * speaking)  # Twilio posts once the caller has finished
        return wav

    simulator = CallSimulator(
        transport=MeasuringTransport(stats, hold_scale if paced else 0.0),
        app_url=server.url,
        auth_token=AUTH_TOKEN,
        standin=standin,
        steps=[CallerStep(ANSWER, text) for text in answers],
        make_recording=record,
        on_hold=lambda seconds: time.sleep(seconds * hold_scale),
        consent_key="1",
        from_number=stats.number,
        max_webhooks=200,
    )
    try:
        simulator.run()
        stats.completed = True
    except (SimulationError, requests.RequestException) as exc:
        # Recorded as a failed call; the run goes on with the others.
        stats.error = f"{type(exc).__name__}: {exc}"[:300]


@dataclass
class Batch:
    """The calls of one batch and how long they took."""

    calls: list[CallStats]
    wall: float
    unfinished: int


def run_batch(
    server: Server,
    standin: TwilioStandIn,
    count: int,
    first_number: int,
    answers: list[str],
    make_recording: Callable[[str], bytes],
    hold_scale: float,
    deadline_seconds: float,
    ramp: float = 0.0,
    paced: bool = False,
) -> Batch:
    """`count` calls, each in its own thread, started over `ramp` seconds (0: all at once)."""
    calls = [CallStats(number=f"+1555{first_number + i:07d}") for i in range(count)]
    threads = [
        threading.Thread(
            target=play_call,
            args=(server, standin, stats, answers, make_recording, hold_scale, paced),
            daemon=True,
        )
        for stats in calls
    ]
    started = time.monotonic()
    for index, thread in enumerate(threads):
        thread.start()
        if ramp and index + 1 < count:
            time.sleep(ramp / (count - 1))
    deadline = started + deadline_seconds
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    unfinished = sum(thread.is_alive() for thread in threads)
    return Batch(calls, time.monotonic() - started, unfinished)


def wait_for_texts(standin: TwilioStandIn, expected: int, seconds: float) -> None:
    """Wait until `expected` texts arrived or `seconds` passed."""
    deadline = time.monotonic() + seconds
    while len(standin.texts) < expected and time.monotonic() < deadline:
        time.sleep(0.2)


# --- figures ----------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile of `values` (0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, int(np.ceil(share * len(ordered))))
    return ordered[rank - 1]


@dataclass
class Figures:
    """The figures of one batch of calls."""

    calls: int
    completed: int
    webhooks: int
    non_200: int
    errors_5xx: int
    connection_errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    get_p99_ms: float
    wait_p50: float
    wait_max: float
    texts_exactly_one: int
    texts_total: int
    wall: float
    failures: list[str]
    by_path: dict[str, tuple[int, float, float]]  # path: count, p50 ms, p99 ms


def figures(batch: Batch, standin: TwilioStandIn) -> Figures:
    """Sum up a batch: latencies over every webhook, texts counted per caller number."""
    latencies = [x for c in batch.calls for x in c.latencies]
    gets = [x for c in batch.calls for x in c.get_latencies]
    statuses = [s for c in batch.calls for s in c.statuses]
    waits = [w for c in batch.calls for w in c.waits]
    completed = [c for c in batch.calls if c.completed]
    per_call = [len(standin.texts_to(c.number)) for c in completed]
    return Figures(
        calls=len(batch.calls),
        completed=len(completed),
        webhooks=len(latencies),
        non_200=sum(s != 200 for s in statuses),
        errors_5xx=sum(s >= 500 for s in statuses),
        connection_errors=sum(c.connection_errors for c in batch.calls),
        p50_ms=percentile(latencies, 0.50) * 1000,
        p95_ms=percentile(latencies, 0.95) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        max_ms=max(latencies, default=0.0) * 1000,
        get_p99_ms=percentile(gets, 0.99) * 1000,
        wait_p50=percentile(waits, 0.50),
        wait_max=max(waits, default=0.0),
        texts_exactly_one=sum(n == 1 for n in per_call),
        texts_total=sum(len(standin.texts_to(c.number)) for c in batch.calls),
        wall=batch.wall,
        failures=[f"{c.number}: {c.error}" for c in batch.calls if c.error][:5],
        by_path=_by_path(batch.calls),
    )


def _by_path(calls: list[CallStats]) -> dict[str, tuple[int, float, float]]:
    paths: dict[str, list[float]] = {}
    for call in calls:
        for path, values in call.by_path.items():
            paths.setdefault(path, []).extend(values)
    return {
        path: (len(v), percentile(v, 0.5) * 1000, percentile(v, 0.99) * 1000)
        for path, v in sorted(paths.items())
    }


def path_line(figures: Figures) -> str:
    """Webhook latency per route: count, p50 and p99."""
    return "Per route (count, p50 / p99 ms): " + "; ".join(
        f"`{path}` {n}, {p50:.1f} / {p99:.1f}" for path, (n, p50, p99) in figures.by_path.items()
    )


def database_facts(data: Path) -> dict[str, str]:
    """Jobs by state, retried jobs and the outbox, read from the run's SQLite file."""
    path = data / "voice_app.sqlite3"
    facts: dict[str, str] = {}
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        states = db.execute("SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state")
        facts["jobs"] = ", ".join(f"{kind} {state} {n}" for kind, state, n in states)
        retried = db.execute("SELECT COUNT(*) FROM jobs WHERE attempts > 1").fetchone()[0]
        facts["jobs run more than once"] = str(retried)
        errors = db.execute(
            "SELECT DISTINCT last_error FROM jobs WHERE last_error IS NOT NULL LIMIT 3"
        ).fetchall()
        facts["job errors"] = "; ".join(str(e[0])[:120] for e in errors) or "none"
        outbox = db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state")
        facts["outbox"] = ", ".join(f"{state} {n}" for state, n in outbox)
    return facts


def log_problems(log: str) -> dict[str, int]:
    """Counts of worrying lines in the server log."""
    return {
        "tracebacks": log.count("Traceback"),
        "ERROR lines": len(re.findall(r" ERROR ", log)),
        "database is locked": log.count("database is locked"),
        "worker timeouts": log.count("WORKER TIMEOUT"),
    }


@dataclass
class RunResult:
    """One server's run: the baseline call, the batch, memory and CPU."""

    calls: int
    baseline: Figures
    load: Figures
    memory_start: MemorySample
    memory_before: MemorySample
    memory_peak: MemorySample
    memory_after: MemorySample
    server_cpu: float
    client_cpu: float
    other_cpu: float  # other processes on the machine during the batch (they share the cores)
    database: dict[str, str]
    log: dict[str, int]
    settle: float


def run_once(
    args: argparse.Namespace,
    cfg: ServerConfig,
    calls: int,
    scratch: Path,
    prompts: Path,
    standin: TwilioStandIn,
    answers: list[str],
    make_recording: Callable[[str], bytes],
) -> RunResult:
    """A fresh server: one call alone (baseline), then `calls` at once, then a quiet spell."""
    server = start_server(cfg, scratch / f"run-{calls}", prompts, standin.base_url)
    try:
        time.sleep(2)  # let the workers finish starting (prompt check, first connections)
        memory_start = sample_memory(server.process.pid, time.monotonic())
        base_batch = run_batch(
            server, standin, 1, 9_000_000 + calls, answers, make_recording, args.hold_scale, 300
        )
        wait_for_texts(standin, len(standin.texts) + 1, 30)
        baseline = figures(base_batch, standin)
        memory_before = sample_memory(server.process.pid, time.monotonic())
        texts_before = len(standin.texts)
        with MemoryWatch(server.process.pid) as watch:
            with CpuMeter(server.process.pid) as cpu:
                batch = run_batch(
                    server, standin, calls, calls * 10_000, answers, make_recording,
                    args.hold_scale, args.deadline, args.ramp, args.paced,
                )
                completed = sum(c.completed for c in batch.calls)
                wait_for_texts(standin, texts_before + completed, 60)
            time.sleep(args.settle)
        load = figures(batch, standin)
        memory_after = watch.samples[-1]
        return RunResult(
            calls=calls,
            baseline=baseline,
            load=load,
            memory_start=memory_start,
            memory_before=memory_before,
            memory_peak=watch.peak(),
            memory_after=memory_after,
            server_cpu=cpu.server,
            client_cpu=cpu.client,
            other_cpu=cpu.other,
            database=database_facts(server.data),
            log=log_problems(server.log()),
            settle=args.settle,
        )
    finally:
        stop_server(server)


@dataclass
class FloorResult:
    """The same batch against `scripts/floor_server.py`, a server that does no work."""

    load: Figures
    server_cpu: float
    client_cpu: float
    other_cpu: float


def run_floor(
    args: argparse.Namespace,
    cfg: ServerConfig,
    calls: int,
    scratch: Path,
    prompts: Path,
    standin: TwilioStandIn,
    answers: list[str],
    make_recording: Callable[[str], bytes],
) -> FloorResult:
    """The same calls at once against a server answering fixed TwiML: the generator's floor."""
    floor = replace(cfg, command=(sys.executable, str(ROOT / "scripts" / "floor_server.py")))
    server = start_server(floor, scratch / f"floor-{calls}", prompts, standin.base_url)
    try:
        time.sleep(2)
        with CpuMeter(server.process.pid) as cpu:
            batch = run_batch(
                server, standin, calls, 5_000_000 + calls * 10_000, answers, make_recording,
                args.hold_scale, args.deadline, args.ramp, args.paced,
            )
        return FloorResult(figures(batch, standin), cpu.server, cpu.client, cpu.other)
    finally:
        stop_server(server)


# --- the report -------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


WAIT_PACED = "Caller's wait in silence (prompts heard meanwhile not counted) p50 / max"


def result_table(
    result: RunResult,
    wait_goal: float | None,
    floor: FloorResult | None = None,
    paced: bool = False,
) -> str:
    """A markdown table: the batch against the single-call baseline of the same server."""
    b, f = result.baseline, result.load
    ratio = f"{f.p99_ms / b.p99_ms:.1f}x" if b.p99_ms else ""
    errors = f.non_200 + f.connection_errors + (f.calls - f.completed)
    wait_verdict = (
        f"< {wait_goal:g} s: {_verdict(f.wait_max < wait_goal)}" if wait_goal is not None else ""
    )
    mem_growth = result.memory_after.rss_mb - result.memory_before.rss_mb
    rows = [
        ("Calls completed", f"{b.completed}/{b.calls}", f"{f.completed}/{f.calls}",
         f"all: {_verdict(f.completed == f.calls)}"),
        ("Webhooks posted", str(b.webhooks), str(f.webhooks), ""),
        ("Non-200 answers (5xx)", f"{b.non_200} ({b.errors_5xx})",
         f"{f.non_200} ({f.errors_5xx})", f"0: {_verdict(errors == 0)}"),
        ("Connection errors", str(b.connection_errors), str(f.connection_errors), ""),
        ("Webhook latency p50", f"{b.p50_ms:.1f} ms", f"{f.p50_ms:.1f} ms", ""),
        ("Webhook latency p95", f"{b.p95_ms:.1f} ms", f"{f.p95_ms:.1f} ms", ""),
        ("Webhook latency p99", f"{b.p99_ms:.1f} ms", f"{f.p99_ms:.1f} ms ({ratio})",
         f"< 50 ms: {_verdict(f.p99_ms < GOALS['p99_ms'])}"),
        ("Webhook latency max", f"{b.max_ms:.1f} ms", f"{f.max_ms:.1f} ms", ""),
        ("Prompt GET latency p99", f"{b.get_p99_ms:.1f} ms", f"{f.get_p99_ms:.1f} ms", ""),
        (WAIT_PACED if paced else "Caller's wait p50 / max",
         f"{b.wait_p50:.1f} / {b.wait_max:.1f} s",
         f"{f.wait_p50:.1f} / {f.wait_max:.1f} s", wait_verdict),
        ("Calls with exactly one text", f"{b.texts_exactly_one}/{b.completed}",
         f"{f.texts_exactly_one}/{f.completed}",
         f"all: {_verdict(f.texts_exactly_one == f.completed == f.calls)}"),
        ("Texts sent to the batch's callers", str(b.texts_total), str(f.texts_total), ""),
        ("Wall time of the batch", f"{b.wall:.1f} s", f"{f.wall:.1f} s", ""),
        ("Server memory, RSS sum (PSS)",
         f"start {result.memory_start.rss_mb:.0f} ({result.memory_start.pss_mb:.0f}) MB, "
         f"after {result.memory_before.rss_mb:.0f} ({result.memory_before.pss_mb:.0f}) MB",
         f"peak {result.memory_peak.rss_mb:.0f} ({result.memory_peak.pss_mb:.0f}) MB, "
         f"{result.settle:g} s after {result.memory_after.rss_mb:.0f} "
         f"({result.memory_after.pss_mb:.0f}) MB",
         f"growth kept: {mem_growth:+.0f} MB"),
        ("CPU during the batch", "", f"server {result.server_cpu:.0f} s, "
         f"load generator {result.client_cpu:.0f} s, other processes {result.other_cpu:.0f} s",
         ""),
    ]
    if floor is not None:
        f0 = floor.load
        rows.append(
            (
                "Same calls, server doing no work: p50 / p95 / p99",
                "",
                f"{f0.p50_ms:.1f} / {f0.p95_ms:.1f} / {f0.p99_ms:.1f} ms",
                f"floor: {f0.completed}/{f0.calls} calls, server {floor.server_cpu:.0f} s CPU, "
                f"load generator {floor.client_cpu:.0f} s, other processes {floor.other_cpu:.0f} s",
            )
        )
    lines = [
        "| Measure | 1 call alone (baseline) | " + f"{result.calls} calls at once | Goal |",
        "|---|---|---|---|",
    ]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines)


def memory_trace(result: RunResult) -> str:
    """Where the memory went: the numbers, in words."""
    return (
        f"Memory (RSS summed over {result.memory_peak.processes} processes; PSS counts pages "
        f"shared copy-on-write once): start {result.memory_start.rss_mb:.0f} MB, after the "
        f"baseline call {result.memory_before.rss_mb:.0f} MB, peak "
        f"{result.memory_peak.rss_mb:.0f} MB at {result.memory_peak.at:.0f} s into the batch, "
        f"{result.memory_after.rss_mb:.0f} MB {result.settle:g} s after the calls ended."
    )


def machine_facts() -> str:
    """Cores, CPU, memory, Python and library versions, date."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        match = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = match.group(1).strip() if match else cpu
    memory_kb = _status_kb_file("/proc/meminfo", "MemTotal")
    versions = []
    for package in ("gunicorn", "flask", "sqlalchemy", "vosk"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions.append(f"{package} {importlib.metadata.version(package)}")
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory_kb / 1024 / 1024:.0f} GB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"{', '.join(versions)}; {time.strftime('%Y-%m-%d')}"
    )


def _status_kb_file(path: str, key: str) -> int:
    with contextlib.suppress(OSError):
        match = re.search(rf"^{key}:\s+(\d+) kB", Path(path).read_text(), re.MULTILINE)
        if match:
            return int(match.group(1))
    return 0


def section(
    args: argparse.Namespace,
    cfg: ServerConfig,
    results: list[RunResult],
    notes: list[str],
    floors: dict[int, FloorResult] | None = None,
) -> str:
    """The markdown section of this run, with the command line and machine facts."""
    title = "Perfect ASR (scripted)" if cfg.asr == "scripted" else "Real Vosk (Korean model)"
    if args.paced:
        title += ", callers at a person's pace"
    command = " ".join(["scripts/load_test.py", *sys.argv[1:]])
    out = [
        f"## {title}",
        "",
        f"`.venv/bin/python {command}`",
        "",
        f"Machine: {machine_facts()}.",
        "",
        f"Server: `voice-app serve --processes {cfg.processes} --threads {cfg.threads}`, "
        f"VOICE_APP_ASR={cfg.asr}, VOICE_APP_WORKERS={cfg.workers}, VOICE_APP_ASR_THREADS "
        f"default (one per core), SQLite in a temporary folder, "
        f"VOICE_APP_HOLD_PAUSE_SECONDS={cfg.hold_pause}. Calls: {cfg.turns} answers each "
        f"(main question and {cfg.turns - 1} follow-ups), the caller presses 1 for the text; "
        f"<Pause> slept x{args.hold_scale:g}; "
        + (
            f"paced: each caller hears every prompt out and speaks each answer for its length "
            f"(x{args.hold_scale:g}, times a factor of its own between 0.6 and 1.6; the "
            "baseline call is not paced); "
            if args.paced
            else "not paced: a caller answers the moment a recording starts; "
        )
        + (f"calls started over {args.ramp:g} s; " if args.ramp else "all calls started at once; ")
        + "one new connection per request (as from nginx); "
        f"load generator and REST stand-in in one process on the same {os.cpu_count()} cores.",
        "",
    ]
    out += notes
    for result in results:
        wait_goal = args.stop_above if cfg.asr == "vosk" else None
        floor = (floors or {}).get(result.calls)
        out += [
            f"### {result.calls} simultaneous calls",
            "",
            result_table(result, wait_goal, floor, args.paced),
            "",
        ]
        out += [path_line(result.load) + ".", ""]
        if floor is not None:
            out += [
                "Floor (`--floor`): the same calls, in the same run, against "
                "`scripts/floor_server.py`, which answers every webhook with fixed TwiML and "
                "does nothing else (no database, no signature check, no jobs) under the same "
                f"gunicorn settings. {path_line(floor.load)}.",
                "",
            ]
        out += [memory_trace(result), ""]
        out += [
            "Database after the run: "
            + "; ".join(f"{k}: {v}" for k, v in result.database.items())
            + ". Server log: "
            + ", ".join(f"{k} {v}" for k, v in result.log.items())
            + ".",
            "",
        ]
        if result.load.failures:
            out += ["Failed calls (first five): " + "; ".join(result.load.failures), ""]
    if cfg.asr == "vosk" and args.stop_above is not None:
        fitting = [r.calls for r in results if r.load.wait_max < args.stop_above
                   and r.load.completed == r.calls]
        best = max(fitting, default=0)
        out += [
            f"Largest number of simultaneous calls with every caller's wait under "
            f"{args.stop_above:g} s: **{best}**.",
            "",
        ]
    return "\n".join(out)


HEADER = """# Load test

Written by `.venv/bin/python scripts/load_test.py` (see its docstring). Every run starts a fresh
`voice-app serve` on 127.0.0.1 with its own SQLite database, plays one call alone as the
baseline, then N calls at once. Latency is measured by the load generator around each webhook
POST (client side, including its own scheduling on the shared cores). The caller's wait runs
from posting an answer until the TwiML with the next question, follow-up or closing arrives.
"""


def write_section(path: Path, key: str, text: str) -> None:
    """Replace this ASR's section of the report file, keeping the other's."""
    start, end = f"<!-- load_test:{key} -->", f"<!-- /load_test:{key} -->"
    block = f"{start}\n{text}\n{end}"
    current = path.read_text() if path.exists() else HEADER
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _m: block, current)
    else:
        updated = current.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(updated)


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", default="50",
                        help="simultaneous calls; a comma list (2,4,6) runs one server per N")
    parser.add_argument("--turns", type=int, default=3, help="answers per call (>= 1)")
    parser.add_argument("--asr", choices=("scripted", "vosk"), default="scripted")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4,
                        help="VOICE_APP_WORKERS: background threads per process")
    parser.add_argument("--hold-pause", type=int, default=2,
                        help="VOICE_APP_HOLD_PAUSE_SECONDS of the server")
    parser.add_argument("--hold-scale", type=float, default=1.0,
                        help="sleep this share of each <Pause> (1 = real time)")
    parser.add_argument("--paced", action="store_true",
                        help="callers hear prompts out and speak their answers (x --hold-scale)")
    parser.add_argument("--ramp", type=float, default=0.0,
                        help="start the calls evenly over this many seconds (0: all at once)")
    parser.add_argument("--answer-seconds", type=float, default=20.0,
                        help="--asr vosk: length of each spoken answer")
    parser.add_argument("--stop-above", type=float, default=10.0,
                        help="--asr vosk: stop the list of N once a caller waits this long (s)")
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds after the calls end before the last memory sample")
    parser.add_argument("--deadline", type=float, default=600.0,
                        help="most seconds a batch of calls may take")
    parser.add_argument("--server-command", default=VOICE_APP,
                        help="how to run voice-app (e.g. a profiling wrapper); split on spaces")
    parser.add_argument("--floor", action="store_true",
                        help="also run the same calls against scripts/floor_server.py (no work)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "load.md")
    args = parser.parse_args(argv)
    args.call_counts = [int(n) for n in str(args.calls).split(",") if n.strip()]
    if args.turns < 1 or not args.call_counts or min(args.call_counts) < 1:
        parser.error("--turns and every --calls must be at least 1")
    return args


def main() -> None:
    """Run the load test and write the report."""
    args = parse_args()
    model = os.environ.get("VOSK_MODEL_PATH") or (korean_model() if args.asr == "vosk" else "")
    cfg = ServerConfig(
        asr=args.asr, processes=args.processes, threads=args.threads, workers=args.workers,
        turns=args.turns, hold_pause=args.hold_pause, model_path=model,
        command=tuple(args.server_command.split()),
    )
    notes: list[str] = []
    if args.asr == "vosk":
        answers, make_recording, lengths = spoken_recordings(args.turns, args.answer_seconds)
        notes += [
            f"Answers: Korean speech from espeak-ng (-v ko -s {_KOREAN_RATE}) at 8 kHz, "
            f"{', '.join(f'{s:.1f}' for s in lengths)} s per turn; model `{model}`. "
            f"The list of N stops at the first N whose longest wait reaches "
            f"{args.stop_above:g} s.",
            "",
        ]
    else:
        answers, make_recording = scripted_recordings(args.turns)
    standin = TwilioStandIn(ACCOUNT_SID, AUTH_TOKEN, free_port()).start()
    results: list[RunResult] = []
    floors: dict[int, FloorResult] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="voice-app-load-") as folder:
            scratch = Path(folder)
            prompts = scratch / "prompts-cache"
            prompts.mkdir()
            render_data = scratch / "render"
            render_data.mkdir()
            (render_data / "prompts").symlink_to(prompts)
            print("rendering prompts ...", flush=True)
            render_prompts(render_data, settings_of(cfg))
            for calls in args.call_counts:
                print(f"running {calls} simultaneous calls ...", flush=True)
                result = run_once(
                    args, cfg, calls, scratch, prompts, standin, answers, make_recording
                )
                results.append(result)
                if args.floor:
                    print(f"running {calls} calls against the floor server ...", flush=True)
                    floors[calls] = run_floor(
                        args, cfg, calls, scratch, prompts, standin, answers, make_recording
                    )
                table = result_table(result, args.stop_above, floors.get(calls), args.paced)
                print(f"\n{calls} calls:\n{table}", flush=True)
                print(f"baseline: {path_line(result.baseline)}", flush=True)
                print(f"batch: {path_line(result.load)}\n", flush=True)
                if args.asr == "vosk" and result.load.wait_max >= args.stop_above:
                    break
    finally:
        standin.stop()
    key = f"{args.asr}-paced" if args.paced else args.asr
    write_section(args.out, key, section(args, cfg, results, notes, floors))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
