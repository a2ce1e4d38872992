"""Live calls past the machine's capacity go on in record mode: the slots behind that rule."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import simple_websocket

from tests.conftest import CALLER
from tests.test_live_stream import ANSWERS, FAST
from voice_app.live.slots import CALLS_PER_CORE, LiveSlots
from voice_app.simulator import ANSWER, CallerStep, SimulationOptions, simulate
from voice_app.simulator.dialog import CallReport
from voice_app.simulator.stream import StreamCaller

HOLD_A_SLOT = """
import sys, time
from pathlib import Path
from voice_app.live.slots import LiveSlots
slot = LiveSlots(Path(sys.argv[1]), int(sys.argv[2])).take()
print("held" if slot else "none", flush=True)
time.sleep(60)
"""


def test_slots_run_out_and_come_back_when_released(tmp_path: Path) -> None:
    slots = LiveSlots(tmp_path, 2)
    first, second = slots.take(), slots.take()
    assert first is not None and second is not None
    assert slots.take() is None
    first.release()
    assert slots.take() is not None


def test_zero_means_two_calls_per_core(tmp_path: Path) -> None:
    assert LiveSlots(tmp_path, 0).count == CALLS_PER_CORE * (os.cpu_count() or 1)


def test_a_slot_held_by_another_process_counts_and_comes_back_when_it_dies(
    tmp_path: Path,
) -> None:
    other = subprocess.Popen(
        [sys.executable, "-c", HOLD_A_SLOT, str(tmp_path), "1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "held"
        assert LiveSlots(tmp_path, 1).take() is None  # another server process has it
    finally:
        other.kill()
        other.wait(10)
    assert LiveSlots(tmp_path, 1).take() is not None  # the kernel freed it with the process


def test_a_live_call_beyond_capacity_goes_on_in_record_mode(tmp_path: Path) -> None:
    held = LiveSlots(tmp_path / "live-slots", 1).take()  # the one live call the line carries
    assert held is not None
    report = simulate(
        SimulationOptions(
            steps=[CallerStep(ANSWER, text) for text in ANSWERS],
            perfect_asr=True,
            from_number=CALLER,
            app_config={"mode": "live", "live_max_calls": 1, "data_dir": str(tmp_path)},
            live=FAST,
        )
    )
    held.release()
    # Every answer was recorded (and the texting reply keyed into a recording): record mode
    # carried the whole call, and the caller still got the follow-ups and one text.
    assert report.recordings_made >= len(ANSWERS)
    follow_ups = [event for event in report.dialog if event.speaker == "line" and event.dimension]
    assert len(follow_ups) == 2
    assert len(report.texts) == 1


class _ClosedAfterConnected:
    """A stream the line closes as soon as it has read Twilio's `connected` (live mode full)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, data: str) -> None:
        if self.sent:
            raise simple_websocket.ConnectionClosed(1000, "live mode is full: record mode")
        self.sent.append(data)

    def receive(self, timeout: float | None = None) -> str | None:
        raise simple_websocket.ConnectionClosed(1000, "live mode is full: record mode")

    def close(self, reason: int | None = None, message: str | None = None) -> None:
        pass


def test_a_stream_the_line_closes_before_start_ends_quietly_for_the_simulated_caller() -> None:
    # The line may close a full stream before the caller's `start` leaves (a race the whole-call
    # test above hit in CI): the simulated Twilio must move on to the <Redirect>, not crash.
    socket = _ClosedAfterConnected()
    report = CallReport(call_sid="CA" + "7" * 32)
    caller = StreamCaller(
        socket=socket,
        report=report,
        account_sid="AC" + "7" * 32,
        parameters={},
        steps=iter([CallerStep(ANSWER, ANSWERS[0])]),
        speech_frames=lambda step: [],
        caption=lambda text: text,
    )
    caller.run()
    assert len(socket.sent) == 1 and report.dialog == [] and not caller.hung_up
