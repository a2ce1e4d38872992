"""Background work: a job table in the database and a pool of threads that runs it.

Webhooks never do slow work. They record a job in the same transaction that changes the call,
and a worker thread (in this process or any other serving the same database) claims it with a
lease. A process that dies mid-job leaves a lease that expires, and the job runs again, so a
restart resumes pending work.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import CursorResult, Executable, Table, bindparam, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from voice_app.store import JobRow, Store

log = logging.getLogger(__name__)

PENDING = "pending"
RUNNING = "running"
DONE = "done"
FAILED = "failed"


class RetryLater(Exception):
    """Raised by a job to run again after `delay` seconds; `counts` says if it uses an attempt."""

    def __init__(self, reason: str, delay: float = 1.0, *, counts: bool = True) -> None:
        super().__init__(reason)
        self.delay = delay
        self.counts = counts


@dataclass(frozen=True)
class Job:
    """A claimed job, as plain values."""

    id: int
    kind: str
    key: str
    call_sid: str | None
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class JobKind:
    """How to run one kind of job: the work, what to do when it gives up, how often to try."""

    run: Callable[[Job], None]
    give_up: Callable[[Job, str], None] = field(default=lambda job, reason: None)
    max_attempts: int = 5


def enqueue(
    session: Session,
    kind: str,
    key: str,
    *,
    call_sid: str | None = None,
    payload: Mapping[str, Any] | None = None,
    delay: float = 0.0,
) -> bool:
    """Record a job in the caller's transaction; False when the same (kind, key) exists."""
    values = {
        "kind": kind,
        "key": key,
        "call_sid": call_sid,
        "payload": dict(payload or {}),
        "run_after": time.time() + delay,
    }
    insert_unless_there = _insert_unless_there(session.get_bind().dialect.name)
    if insert_unless_there is not None:
        # One statement: the unique (kind, key) decides, whoever inserts first.
        inserted = session.connection().execute(insert_unless_there, values)
        return bool(cast(CursorResult[Any], inserted).rowcount)
    existing = session.scalar(select(JobRow.id).where(JobRow.kind == kind, JobRow.key == key))
    if existing is not None:
        return False
    try:
        with session.begin_nested():
            session.add(JobRow(**values))
    except IntegrityError:
        # Another process recorded the same job between our check and insert: one is enough.
        return False
    return True


# The jobs table itself: plain statements on it skip the ORM's bookkeeping.
_JOBS = cast(Table, JobRow.__table__)


@functools.cache
def _insert_unless_there(dialect: str) -> Executable | None:
    """INSERT INTO jobs ... ON CONFLICT DO NOTHING, in the dialects that have it."""
    if dialect == "sqlite":
        return sqlite_insert(_JOBS).on_conflict_do_nothing(index_elements=["kind", "key"])
    if dialect == "postgresql":
        return postgresql_insert(_JOBS).on_conflict_do_nothing(index_elements=["kind", "key"])
    return None


class Worker:
    """A pool of threads claiming and running jobs from the store."""

    def __init__(
        self,
        store: Store,
        kinds: Mapping[str, JobKind],
        *,
        threads: int,
        lease_seconds: float = 300.0,
        poll_seconds: float = 0.5,
    ) -> None:
        self.store = store
        self.kinds = dict(kinds)
        self.threads = threads
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self._wake = threading.Condition()
        self._stopping = threading.Event()
        self._pool: list[threading.Thread] = []
        self._on_stop: list[Callable[[], None]] = []

    def start(self) -> None:
        """Start the worker threads (no-op when configured with none or already started)."""
        if self._pool:
            return
        self._stopping.clear()
        for index in range(self.threads):
            thread = threading.Thread(
                target=self._loop, name=f"voice-app-worker-{index}", daemon=True
            )
            thread.start()
            self._pool.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the threads to finish their current job and stop; then what `on_stop` named."""
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        for thread in self._pool:
            thread.join(timeout)
        self._pool = []
        while self._on_stop:
            self._on_stop.pop()()

    def on_stop(self, stop: Callable[[], None]) -> None:
        """Stop something that serves the worker threads once they have stopped."""
        self._on_stop.append(stop)

    def notify(self) -> None:
        """Wake an idle thread: a job was just recorded (it wakes the next if it finds one)."""
        # One, not all: every thread woken for one job would queue to claim it, each taking
        # the database's write lock in turn.
        with self._wake:
            self._wake.notify()

    def pending_count(self) -> int:
        """How many jobs wait or run (for health checks and tests)."""
        with self.store.reading() as session:
            rows = session.scalars(select(JobRow.id).where(JobRow.state.in_([PENDING, RUNNING])))
            return len(rows.all())

    def drain(self, timeout: float = 30.0) -> None:
        """Run every runnable job in this thread until none is left (tests, CLI one-shots)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.run_once():
                if self.pending_count() == 0:
                    return
                time.sleep(0.05)
        raise TimeoutError(f"jobs still pending after {timeout} s")

    def run_once(self) -> bool:
        """Claim and run one job; False when none was runnable."""
        # Background work: its writes wait while a webhook waits to write.
        with self.store.background():
            job = self._claim()
            if job is None:
                return False
            self.notify()  # there may be more: another thread looks while this one works
            self._settle(job, self._run(job))
            return True

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                ran = self._run_while_any()
            except Exception:
                # The loop must outlive any one failure (a database hiccup while claiming):
                # the job's lease expires and another attempt picks it up.
                log.exception("worker loop error; continuing")
                ran = False
            if not ran:
                with self._wake:
                    self._wake.wait(self.poll_seconds)

    def _run_while_any(self) -> bool:
        """Run jobs while there are any, each settled in the transaction that claims the next."""
        with self.store.background():
            job = self._claim()
            if job is None:
                return False
            while job is not None:
                self.notify()
                job = self._settle(job, self._run(job), claim_next=not self._stopping.is_set())
            return True

    def _claim(self) -> Job | None:
        # Look first without the write lock: idle threads poll often, and most polls find nothing.
        with self.store.reading() as session:
            if session.connection().execute(_ANY_DUE, {"now": time.time()}).first() is None:
                return None
        with self.store.transaction() as session:
            return self._claim_in(session)

    def _claim_in(self, session: Session) -> Job | None:
        now = time.time()
        connection = session.connection()
        if connection.dialect.update_returning:
            # One statement: mark the oldest runnable job as ours and read it back.
            claimed = connection.execute(
                _CLAIM, {"now": now, "lease": now + self.lease_seconds}
            ).first()
            return Job(*claimed) if claimed is not None else None
        oldest_id = connection.execute(_OLDEST_DUE, {"now": now}).scalar()
        row = session.get(JobRow, oldest_id) if oldest_id is not None else None
        if row is None:
            return None
        row.state = RUNNING
        row.lease_until = now + self.lease_seconds
        row.attempts += 1
        return Job(row.id, row.kind, row.key, row.call_sid, dict(row.payload), row.attempts)

    def _run(self, job: Job) -> _Settlement:
        kind = self.kinds.get(job.kind)
        if kind is None:
            return _Settlement(FAILED, f"no handler for job kind {job.kind!r}")
        try:
            kind.run(job)
        except RetryLater as retry:
            attempts = job.attempts if retry.counts else job.attempts - 1
            if attempts >= kind.max_attempts:
                return self._give_up(kind, job, str(retry))
            return _Settlement(PENDING, str(retry), delay=retry.delay, attempts=attempts)
        except Exception as exc:
            # A failed job must not take the thread down; it is retried with backoff, and
            # after its last attempt the job kind decides what the caller gets instead.
            log.exception("job %s %s failed (attempt %d)", job.kind, job.id, job.attempts)
            if job.attempts >= kind.max_attempts:
                return self._give_up(kind, job, f"{type(exc).__name__}: {exc}")
            delay = min(30.0, 0.5 * 2**job.attempts) * random.uniform(0.8, 1.2)
            return _Settlement(PENDING, f"{type(exc).__name__}: {exc}", delay=delay)
        return _Settlement(DONE, None)

    def _give_up(self, kind: JobKind, job: Job, reason: str) -> _Settlement:
        try:
            kind.give_up(job, reason)
        except Exception:
            # The job is over either way: marked failed below, never run again.
            log.exception("job %s %s: giving up failed too", job.kind, job.id)
        return _Settlement(FAILED, reason)

    def _settle(self, job: Job, settlement: _Settlement, *, claim_next: bool = False) -> Job | None:
        """Record how the job ended; with `claim_next`, claim the next one in the same go."""
        values: dict[str, Any] = {
            "state": settlement.state,
            "last_error": settlement.error,
            "lease_until": None,
            "run_after": time.time() + settlement.delay,
        }
        if settlement.attempts is not None:
            values["attempts"] = settlement.attempts
        with self.store.transaction() as session:
            session.connection().execute(_SETTLE, {"job_id": job.id, **values})
            return self._claim_in(session) if claim_next else None


@dataclass(frozen=True)
class _Settlement:
    """How a run of a job ended: its new state, why, and when to run it again."""

    state: str
    error: str | None
    delay: float = 0.0
    attempts: int | None = None


# Statements built once (a job thread runs them for every job): jobs due at :now are waiting
# and due, or claimed by a thread whose lease ran out.
_DUE = or_(
    (_JOBS.c.state == PENDING) & (_JOBS.c.run_after <= bindparam("now")),
    (_JOBS.c.state == RUNNING) & (_JOBS.c.lease_until < bindparam("now")),
)
_ANY_DUE = select(_JOBS.c.id).where(_DUE).limit(1)
_OLDEST_DUE = (
    select(_JOBS.c.id)
    .where(_DUE)
    .order_by(_JOBS.c.run_after, _JOBS.c.id)
    .limit(1)
    .with_for_update(skip_locked=True)
)
_CLAIM = (
    update(_JOBS)
    .where(_JOBS.c.id == _OLDEST_DUE.scalar_subquery())
    .values(state=RUNNING, lease_until=bindparam("lease"), attempts=_JOBS.c.attempts + 1)
    .returning(
        _JOBS.c.id,
        _JOBS.c.kind,
        _JOBS.c.key,
        _JOBS.c.call_sid,
        _JOBS.c.payload,
        _JOBS.c.attempts,
    )
)
# Sets the columns its parameters name besides job_id.
_SETTLE = update(_JOBS).where(_JOBS.c.id == bindparam("job_id"))
