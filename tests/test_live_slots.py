"""Live calls past the machine's capacity go on in record mode: the slots behind that rule."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import CALLER
from tests.test_live_stream import ANSWERS, FAST
from voice_app.live.slots import CALLS_PER_CORE, LiveSlots
from voice_app.simulator import ANSWER, CallerStep, SimulationOptions, simulate

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
