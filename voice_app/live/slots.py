"""How many live calls this machine carries at once: one lock file per slot.

A live call's recognition cannot wait for a free core (the audio keeps coming), so past a few
calls per core every live caller falls behind (benchmarks/latency.md: 4 calls kept up on 2
cores, 6 fell 17 s behind). A stream that finds no free slot hands its call over to record mode,
whose answers queue for the recognizer instead.

The slots are files in the data folder, each held with an exclusive `flock` while a stream runs:
shared by every server process on the machine, and freed by the kernel when a process dies, so a
crash never leaks a slot.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

# Live calls per CPU core when the setting leaves it to the machine (VOICE_APP_LIVE_MAX_CALLS=0).
CALLS_PER_CORE = 2


class Slot:
    """A held slot; `release` frees it (also done by the kernel if the process dies)."""

    def __init__(self, handle: int) -> None:
        self._handle: int | None = handle

    def release(self) -> None:
        """Free the slot for the next live call."""
        if self._handle is not None:
            os.close(self._handle)  # closing the file drops its lock
            self._handle = None


class LiveSlots:
    """`count` slots under `folder`; `take` gives a free one or None."""

    def __init__(self, folder: Path, count: int) -> None:
        self.folder = folder
        self.count = count if count > 0 else CALLS_PER_CORE * (os.cpu_count() or 1)

    def take(self) -> Slot | None:
        """A free slot, held until released; None when every slot is taken."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for number in range(self.count):
            handle = os.open(self.folder / f"slot-{number}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(handle)
                continue
            return Slot(handle)
        return None
