"""Rubric analyses worked out in a separate, low-priority process.

The analysis is pure Python and takes tens of milliseconds per conversation (more with heavier
signals). Run on a job thread of a web process, it holds that process's GIL, and the webhooks
answering callers in the same process wait for it. Here a child process does it instead, at a
lower scheduling priority, so that on a busy machine the webhooks get the cores first. The child
is started with `spawn` (the web process runs threads, which a fork would copy half-way) and
loads the question rules itself (and the sentence model, when the semantic signal is on); only
question ids, answers and results cross the pipe.

Until the child has started (half a second) and whenever it fails (it died, it hangs), the
caller gets None and works the analysis out itself, as without this module.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from voice_app import interviewer
from voice_app.embedding import Encoder, shared_encoder
from voice_app.rules import QuestionRules, load_question

log = logging.getLogger(__name__)

# Added to the child's nice value: webhooks (nice 0) get the cores first.
NICENESS = 10
# Longest a job waits for one analysis before it goes on without it.
TIMEOUT_SECONDS = 30.0


class Analyst:
    """Hands analyses to a child process, started on first use and again after a failure."""

    def __init__(
        self, grammars: Path, question_ids: Sequence[str], model_dir: Path | None = None
    ) -> None:
        """`model_dir`: the sentence model's folder when the semantic signal is on."""
        self.grammars = grammars
        self.question_ids = tuple(question_ids)
        self.model_dir = model_dir
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._warming: list[concurrent.futures.Future[interviewer.Analysis]] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the child, which loads the questions' rules; returns without waiting for it."""
        self._running_pool()

    def analyze(self, rules: QuestionRules, answers: Sequence[str]) -> interviewer.Analysis | None:
        """`interviewer.analyze(rules, answers)` worked out in the child; None if it cannot be."""
        pool = self._running_pool()
        if not all(future.done() for future in self._warming):
            return None  # still starting: not worth waiting for
        try:
            return pool.submit(_analyze, rules.id, tuple(answers)).result(TIMEOUT_SECONDS)
        except (BrokenProcessPool, concurrent.futures.TimeoutError, OSError) as exc:
            # The child died or hangs: start a new one next time; this analysis is done where
            # the follow-up is picked instead.
            log.warning("analysis process failed (%s); starting a new one", type(exc).__name__)
            self._restart(pool)
            return None

    def stop(self) -> None:
        """Stop the child process."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _running_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_child,
                    initargs=(str(self.grammars), str(self.model_dir or "")),
                )
                self._warming = [
                    self._pool.submit(_analyze, question_id, ("warm up",))
                    for question_id in self.question_ids
                ]
            return self._pool

    def _restart(self, failed: concurrent.futures.ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is failed:
                self._pool = None
        # Kill the child, in case it hangs rather than died (a hung child ignores shutdown).
        for process in list(getattr(failed, "_processes", {}).values()):
            process.kill()
        failed.shutdown(wait=False, cancel_futures=True)


# --- in the child process ---------------------------------------------------------------------

_GRAMMARS: list[Path] = []
_ENCODER: list[Encoder] = []


def _start_child(grammars: str, model_dir: str) -> None:
    os.nice(NICENESS)
    _GRAMMARS.append(Path(grammars))
    if model_dir:
        _ENCODER.append(shared_encoder(Path(model_dir)))


@functools.cache
def _rules(question_id: str) -> QuestionRules:
    return load_question(question_id, _GRAMMARS[0])


def _analyze(question_id: str, answers: tuple[str, ...]) -> interviewer.Analysis:
    return interviewer.analyze(_rules(question_id), answers, _ENCODER[0] if _ENCODER else None)
